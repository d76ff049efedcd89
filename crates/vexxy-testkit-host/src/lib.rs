//! Test support for vexxy's tests that run real sandboxes and the eBPF
//! tracer: the root/runc/BTF gates, sandbox configurations, running code
//! inside a network namespace, and host snapshots scoped to the sandboxes
//! a test created. Re-exports all of `vexxy-testkit` (the gates of
//! [`vexxy_testkit::skip_or_fail`], the test images, `pg`, `hooks`,
//! `poll`), so a test needs this one crate.
//!
//! It depends on vexxy-sandbox and vexxy-trace (whose build compiles the
//! BPF programs with clang): only the crates whose tests run them use it.
//! A dev-dependency only; it panics freely because a failed helper is a
//! failed test.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub use vexxy_testkit::*;

mod containerd;
mod truth;
pub use containerd::Containerd;
pub use truth::{dpkg_owners, strace_outside_sandbox, used_packages, Truth};

use std::{
    collections::BTreeMap,
    fs,
    io::Read,
    os::{
        fd::AsFd,
        unix::fs::{MetadataExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use vexxy_sandbox::{
    preflight, ExitStatus, Limits, ProcessConfig, Sandbox, SandboxConfig, SandboxError,
    TeardownReport,
};

/// The gate of sandbox tests: `true` when sandboxes can run here (root and
/// runc); else `SKIP` outside CI, a failure in CI (see
/// [`vexxy_testkit::skip_or_fail`]). Any other preflight failure fails the
/// test everywhere.
pub fn require_sandbox() -> bool {
    match preflight(Path::new("runc")) {
        Ok(()) => true,
        Err(e @ (SandboxError::NotRoot { .. } | SandboxError::RuntimeMissing { .. })) => {
            skip_or_fail(format!("no sandbox here: {e}"));
            false
        }
        Err(e) => panic!("sandbox preflight failed: {e}"),
    }
}

/// The gate of tracer tests: `true` when the eBPF tracer can load here
/// (root and a kernel with BTF); else `SKIP` outside CI, a failure in CI.
/// Any other tracer failure fails the test everywhere.
pub fn require_tracer() -> bool {
    match vexxy_trace::preflight() {
        Ok(()) => true,
        Err(e) if e.is_unsupported() => {
            skip_or_fail(format!("no tracer here: {e}"));
            false
        }
        Err(e) => panic!("tracer preflight failed: {e}"),
    }
}

/// The gate of sandboxed, traced runs: [`require_sandbox`] and
/// [`require_tracer`].
pub fn require_trace() -> bool {
    require_sandbox() && require_tracer()
}

/// A configuration for `argv` in the nginx test image with small limits.
/// The test has passed the gate `image_rootfs("nginx")` first.
pub fn config(argv: &[&str]) -> SandboxConfig {
    let rootfs = image_rootfs("nginx").expect("the nginx test image (gate on it first)");
    config_in(&rootfs, argv)
}

/// A configuration for `argv` in `rootfs` with small limits.
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

/// The cgroup directories of the sandbox `id` (`/vexxy/<id>` in each v1
/// hierarchy, or in the unified one) that exist on the host.
pub fn sandbox_cgroups(id: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    dir_entries(root)
        .into_iter()
        .chain([root.to_path_buf()])
        .map(|h| h.join("vexxy").join(id))
        .filter(|c| c.is_dir())
        .collect()
}

/// What the sandbox `id` (state under `state_root`) left on the host: its
/// sandbox and runtime directories, mount points under them, its cgroups.
/// Other sandboxes, of this test process or another, are not looked at.
pub fn sandbox_leftovers(state_root: &Path, id: &str) -> Vec<String> {
    let dirs = [
        state_root.join("sandboxes").join(id),
        state_root.join("runtime").join(id),
    ];
    let mut left: Vec<String> = dirs
        .iter()
        .filter(|d| d.symlink_metadata().is_ok())
        .map(|d| format!("directory {}", d.display()))
        .collect();
    left.extend(
        mount_points()
            .into_iter()
            .filter(|m| dirs.iter().any(|d| Path::new(m).starts_with(d)))
            .map(|m| format!("mount {m}")),
    );
    left.extend(
        sandbox_cgroups(id)
            .into_iter()
            .map(|c| format!("cgroup {}", c.display())),
    );
    left
}

/// The ids of the sandboxes under `state_root` whose owner record names
/// one of `pids` (the vexxy processes a test started): the sandboxes a
/// test can call its own when another process creates them. A directory
/// without a readable owner record is nobody's.
pub fn sandboxes_owned_by(state_root: &Path, pids: &[u32]) -> Vec<String> {
    dir_entries(&state_root.join("sandboxes"))
        .into_iter()
        .filter(|dir| {
            fs::read(dir.join("owner.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|owner| owner["pid"].as_u64())
                .is_some_and(|pid| pids.iter().any(|&p| u64::from(p) == pid))
        })
        .filter_map(|dir| Some(dir.file_name()?.to_str()?.to_owned()))
        .collect()
}

/// The mount points of our mount namespace.
pub fn mount_points() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .collect()
}

/// The mount points of `before` (a [`mount_points`] snapshot) that are
/// gone now, leaving out sandboxes' own (under a `sandboxes` directory):
/// those of other sandboxes come and go while a test runs.
pub fn mounts_lost_since(before: &[String]) -> Vec<String> {
    let now = mount_points();
    before
        .iter()
        .filter(|m| {
            !Path::new(m)
                .components()
                .any(|c| c.as_os_str() == "sandboxes")
        })
        .filter(|m| !now.contains(m))
        .cloned()
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
