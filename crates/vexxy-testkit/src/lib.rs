//! Test support for vexxy's integration tests that run real sandboxes:
//! skip rules, the cached test images, host snapshots, and running code
//! inside a network namespace. A dev-dependency only; it panics freely
//! because a failed helper is a failed test.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod hooks;
pub mod pg;

use std::{
    collections::BTreeMap,
    fs,
    io::Read,
    os::{
        fd::AsFd,
        unix::fs::{MetadataExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    sync::{RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use vexxy_sandbox::{
    preflight, ExitStatus, Limits, ProcessConfig, Sandbox, SandboxConfig, SandboxError,
    TeardownReport,
};

/// Sandbox tests hold it shared; the test comparing the host before and
/// after holds it exclusively, so no other sandbox exists meanwhile.
static HOST: RwLock<()> = RwLock::new(());

pub fn shared() -> RwLockReadGuard<'static, ()> {
    HOST.read().unwrap_or_else(|e| e.into_inner())
}

pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    HOST.write().unwrap_or_else(|e| e.into_inner())
}

/// `true` (after printing why) when the sandbox cannot run here: not root
/// or no runc. Any other preflight failure fails the test.
pub fn skip() -> bool {
    match preflight(Path::new("runc")) {
        Ok(()) => false,
        Err(e @ (SandboxError::NotRoot { .. } | SandboxError::RuntimeMissing { .. })) => {
            println!("SKIP: {e}");
            true
        }
        Err(e) => panic!("sandbox preflight failed: {e}"),
    }
}

/// `true` (after printing why) when sandboxed, traced runs cannot happen
/// here: [`skip`], or a tracer that cannot load for want of root or BTF.
/// Any other tracer failure fails the test.
pub fn cannot_trace() -> bool {
    if skip() {
        return true;
    }
    match vexxy_trace::preflight() {
        Ok(()) => false,
        Err(e) if e.is_unsupported() => {
            println!("SKIP: {e}");
            true
        }
        Err(e) => panic!("tracer preflight failed: {e}"),
    }
}

/// `${VEXXY_TEST_IMAGES:-${VEXXY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vexxy}/test-images}`
pub fn test_images_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VEXXY_TEST_IMAGES") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("VEXXY_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|c| c.join("vexxy"))
        })
        .expect("HOME or XDG_CACHE_HOME must be set");
    cache.join("test-images")
}

/// The directory of a built test image (`oci/`, `rootfs/`, archives), or
/// `None` after printing why when it was not built here; in CI (`CI` set)
/// a missing image fails the test instead.
pub fn test_image(name: &str) -> Option<PathBuf> {
    let dir = test_images_dir().join(name);
    if dir.join("oci/index.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "test image {} is missing in CI: scripts/build-test-images.sh must run first",
        dir.display()
    );
    println!(
        "SKIP: test image {} is absent (run scripts/build-test-images.sh --with-archives)",
        dir.display()
    );
    None
}

/// `oci:<the test image's layout>:latest`, see [`test_image`].
pub fn test_image_ref(name: &str) -> Option<String> {
    test_image(name).map(|d| format!("oci:{}:latest", d.join("oci").display()))
}

/// The rootfs of a test image; fails with what to run when it is missing.
pub fn image_rootfs(name: &str) -> PathBuf {
    let dir = test_images_dir().join(name).join("rootfs");
    assert!(
        dir.join("bin/sh").exists() || dir.join("usr/bin/sh").exists(),
        "test image {name} missing at {}: run scripts/build-test-images.sh (as root) first",
        dir.display()
    );
    dir
}

pub fn nginx_rootfs() -> PathBuf {
    image_rootfs("nginx")
}

/// A configuration for `argv` in the nginx image with small limits.
pub fn config(argv: &[&str]) -> SandboxConfig {
    config_in(&nginx_rootfs(), argv)
}

pub fn config_in(rootfs: &Path, argv: &[&str]) -> SandboxConfig {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let process = ProcessConfig::from_image_config(&[], &argv, &[], None, None);
    let mut c = SandboxConfig::new(rootfs, process);
    c.limits = Limits {
        cpus: 1.0,
        memory_bytes: 256 << 20,
        pids: 256,
        scratch_bytes: 64 << 20,
    };
    c
}

/// Creates, starts and waits (up to `timeout`) for a sandbox; returns the
/// exit status, stdout, stderr and the (clean) teardown report.
pub fn run(
    config: SandboxConfig,
    timeout: Duration,
) -> (Option<ExitStatus>, String, String, TeardownReport) {
    let mut sb = Sandbox::create(config).expect("create");
    sb.start().expect("start");
    let status = sb.wait_exit(Instant::now() + timeout).expect("wait");
    let out = sb.stdout_tail(1 << 20);
    let err = sb.stderr_tail(1 << 20);
    let report = sb.teardown().expect("clean teardown");
    (status, out, err, report)
}

/// Waits until `f` returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `f` on a thread that has joined the network namespace at `ns`.
pub fn in_netns<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = fs::File::open(ns).expect("open netns");
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns into the sandbox's network namespace");
            f()
        })
        .join()
        .expect("netns thread")
    })
}

/// `GET /` over HTTP/1.0 from 127.0.0.1:`port`; the response or the error.
pub fn http_get(port: u16) -> std::io::Result<String> {
    use std::io::Write;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Where a cgroup file of the sandbox lives (v1 controller hierarchy, or v2).
pub fn cgroup_file(controller: &str, cgroup: &str, file: &str) -> Option<PathBuf> {
    let rel = cgroup.trim_start_matches('/');
    [
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(rel)
            .join(file),
        Path::new("/sys/fs/cgroup").join(rel).join(file),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// Every `vexxy` cgroup directory (and children) on the host.
pub fn vexxy_cgroups() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(hier) = fs::read_dir("/sys/fs/cgroup") else {
        return out;
    };
    for h in hier.flatten() {
        let v = h.path().join("vexxy");
        if v.is_dir() {
            out.push(v.clone());
            if let Ok(children) = fs::read_dir(&v) {
                out.extend(children.flatten().map(|c| c.path()).filter(|p| p.is_dir()));
            }
        }
    }
    if Path::new("/sys/fs/cgroup/vexxy").is_dir()
        && !out.contains(&PathBuf::from("/sys/fs/cgroup/vexxy"))
    {
        out.push("/sys/fs/cgroup/vexxy".into());
    }
    out
}

/// The mount points of our mount namespace.
pub fn mount_points() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .collect()
}

/// Entries of a directory (empty when it does not exist).
pub fn dir_entries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// A digest of a whole tree: every path with its type, mode, owner, size,
/// mtime, symlink target and file content.
pub fn tree_digest(root: &Path) -> (String, usize) {
    let mut entries: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).expect("lstat");
            let mut desc = format!(
                "{:o} {}:{} {} {}.{}",
                m.permissions().mode(),
                m.uid(),
                m.gid(),
                m.len(),
                m.mtime(),
                m.mtime_nsec()
            );
            if m.file_type().is_symlink() {
                desc.push_str(&format!(
                    " -> {}",
                    fs::read_link(&p).expect("readlink").display()
                ));
            } else if m.is_file() {
                let mut h = Sha256::new();
                let mut f = fs::File::open(&p).expect("open");
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = f.read(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                desc.push_str(&format!(" {:x}", h.finalize()));
            } else if m.is_dir() {
                stack.push(p.clone());
            }
            entries.insert(p.strip_prefix(root).expect("prefix").to_owned(), desc);
        }
    }
    let mut h = Sha256::new();
    for (p, d) in &entries {
        h.update(p.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        h.update(d.as_bytes());
        h.update(b"\n");
    }
    (format!("{:x}", h.finalize()), entries.len())
}

/// The host's own non-loopback IPv4 address, if it has a route anywhere.
pub fn host_ip() -> Option<std::net::Ipv4Addr> {
    for probe in ["10.255.255.1:80", "192.0.2.1:80", "8.8.8.8:53"] {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        if s.connect(probe).is_ok() {
            if let Ok(std::net::SocketAddr::V4(a)) = s.local_addr() {
                if !a.ip().is_loopback() && !a.ip().is_unspecified() {
                    return Some(*a.ip());
                }
            }
        }
    }
    None
}
