//! The truth vexxy's tracer is checked against, derived without it: the
//! image's entrypoint run under `strace` outside any sandbox (chrooted into
//! an overlay of the image's rootfs, in a private network namespace), and
//! package ownership read straight from dpkg's file lists.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// What the program and its children did, as strace saw it. Paths are
/// image paths: both the name a call was given (absolute ones) and, for
/// opened and mapped files, the file the descriptor ended up on.
#[derive(Debug, Default, Clone)]
pub struct Truth {
    pub executed: BTreeSet<String>,
    pub opened: BTreeSet<String>,
    /// Files mapped executable (`mmap`/`mprotect` with `PROT_EXEC` of a file
    /// descriptor).
    pub mapped: BTreeSet<String>,
}

impl Truth {
    /// Every path used in any way.
    pub fn used(&self) -> BTreeSet<&str> {
        self.executed
            .iter()
            .chain(&self.opened)
            .chain(&self.mapped)
            .map(String::as_str)
            .collect()
    }
}

/// An overlay of `rootfs` (so the cached image is never written), with
/// /proc and /dev, unmounted on drop.
struct Overlay {
    dir: tempfile::TempDir,
    mounted: Vec<PathBuf>,
}

impl Overlay {
    fn new(rootfs: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vexxy-truth-")
            .tempdir()
            .unwrap();
        let (upper, work, merged) = (
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("merged"),
        );
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d).unwrap();
        }
        let mut o = Self {
            dir,
            mounted: Vec::new(),
        };
        o.mount(&[
            "-t",
            "overlay",
            "overlay",
            "-o",
            &format!(
                "lowerdir={},upperdir={},workdir={}",
                rootfs.display(),
                upper.display(),
                work.display()
            ),
            merged.to_str().unwrap(),
        ]);
        o.mounted.push(merged.clone());
        for sub in ["proc", "dev", "tmp"] {
            fs::create_dir_all(merged.join(sub)).unwrap();
        }
        let proc_dir = merged.join("proc");
        o.mount(&["-t", "proc", "proc", proc_dir.to_str().unwrap()]);
        o.mounted.push(proc_dir);
        let dev = merged.join("dev");
        o.mount(&["--rbind", "/dev", dev.to_str().unwrap()]);
        o.mounted.push(dev);
        o
    }

    fn mount(&self, args: &[&str]) {
        let st = Command::new("mount").args(args).status().unwrap();
        assert!(st.success(), "mount {args:?} failed");
    }

    fn merged(&self) -> PathBuf {
        self.dir.path().join("merged")
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        for m in self.mounted.iter().rev() {
            let _ = Command::new("umount").arg("-R").arg("-l").arg(m).status();
        }
    }
}

/// Runs `argv` (with `env`, `KEY=VALUE`) chrooted into an overlay of
/// `rootfs` under `strace -f`, in a private network namespace with
/// loopback up; calls `exercise` with that namespace's path (use
/// [`crate::in_netns`] to connect), then stops everything and returns
/// what strace saw. Needs root, `strace`, `unshare` and `mount`.
pub fn strace_outside_sandbox(
    rootfs: &Path,
    argv: &[&str],
    env: &[&str],
    exercise: impl FnOnce(&Path),
) -> Truth {
    let overlay = Overlay::new(rootfs);
    let merged = overlay.merged();
    let log = overlay.dir.path().join("strace.log");
    // env runs before strace, so only `chroot` (a host program, whose own
    // events `parse` drops) and the image's programs are traced
    let mut script = String::from("ip link set lo up 2>/dev/null || true; exec env -i");
    for e in env {
        script.push(' ');
        script.push_str(&shell_quote(e));
    }
    script.push_str(
        " strace -f -qq -y -s 512 -e trace=execve,execveat,open,openat,openat2,mmap,mprotect -o ",
    );
    script.push_str(&shell_quote(log.to_str().unwrap()));
    script.push_str(" chroot ");
    script.push_str(&shell_quote(merged.to_str().unwrap()));
    for a in argv {
        script.push(' ');
        script.push_str(&shell_quote(a));
    }
    let mut child: Child = Command::new("unshare")
        .args(["--net", "--fork", "--kill-child", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // the forked child of unshare holds the new network namespace
    let ns = crate::poll(Duration::from_secs(10), || {
        let children =
            fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id()))
                .ok()?;
        let pid: u32 = children.split_whitespace().next()?.parse().ok()?;
        let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let mine = fs::read_link("/proc/self/ns/net").ok()?;
        (fs::read_link(&ns).ok()? != mine).then_some(ns)
    })
    .expect("the traced program's network namespace");
    // hold the namespace open, so the client's path stays valid
    let held = fs::File::open(&ns).unwrap();
    let ns_id = fs::read_link(&ns).unwrap();
    let ns_path = PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        std::os::fd::AsRawFd::as_raw_fd(&held)
    ));
    exercise(&ns_path);
    drop(held);
    // Kill the workload (every process of the namespace but strace):
    // strace then sees its tracees gone, writes its log and exits, and so
    // does unshare. unshare itself ignores SIGTERM.
    let stopped = crate::poll(Duration::from_secs(10), || {
        for pid in pids_in_netns(&ns_id) {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() != "strace" {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        matches!(child.try_wait(), Ok(Some(_))).then_some(())
    });
    if stopped.is_none() {
        for pid in pids_in_netns(&ns_id) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = fs::read_to_string(&log).unwrap_or_default();
    parse(&text, &merged)
}

/// The processes whose network namespace is `ns_id` (`net:[…]`).
fn pids_in_netns(ns_id: &Path) -> Vec<u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|l| l == ns_id))
        .collect()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Parses `strace -f -y` output. `merged` is the chroot's host path, which
/// `-y` descriptor paths start with.
fn parse(text: &str, merged: &Path) -> Truth {
    let prefix = merged.to_str().unwrap();
    let image_path = |host: &str| -> Option<String> {
        let rest = host.strip_prefix(prefix)?;
        Some(if rest.is_empty() {
            "/".to_owned()
        } else {
            rest.to_owned()
        })
    };
    let mut t = Truth::default();
    // The first traced process is the host's `chroot`: its events up to and
    // including its own exec are of host files.
    let mut chroot_pid: Option<&str> = None;
    let mut chroot_execs = 0;
    // A call another thread interrupted is split in two lines:
    // "PID openat(…, \"/x\", … <unfinished ...>" and later
    // "PID <... openat resumed>) = 3</…/x>": joined before reading.
    let mut pending: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(start) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(pid, start);
            continue;
        }
        let joined;
        let call: &str = if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some(start) = pending.remove(pid) else {
                continue;
            };
            let tail = resumed.split_once("resumed>").map_or("", |(_, t)| t);
            joined = format!("{start}{tail}");
            &joined
        } else if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            rest
        } else {
            // "+++ exited with 0 +++", "--- SIGCHLD …"
            continue;
        };
        let name = call.split('(').next().unwrap_or("");
        let first = *chroot_pid.get_or_insert(pid);
        if pid == first && chroot_execs < 2 {
            if name == "execve" {
                chroot_execs += 1;
            }
            if chroot_execs < 2 {
                continue;
            }
        }
        let quoted = first_quoted(call);
        let ret_fd_path = call
            .rsplit_once(" = ")
            .and_then(|(_, r)| r.split_once('<'))
            .and_then(|(_, p)| p.strip_suffix('>'))
            .and_then(image_path);
        let failed = call
            .rsplit_once(" = ")
            .is_some_and(|(_, r)| r.starts_with('-'));
        if failed {
            continue;
        }
        match name {
            "execve" | "execveat" => {
                if let Some(q) = quoted.filter(|q| q.starts_with('/')) {
                    t.executed.insert(q);
                }
            }
            "open" | "openat" | "openat2" => {
                if let Some(q) = quoted.filter(|q| q.starts_with('/')) {
                    t.opened.insert(q);
                }
                if let Some(p) = ret_fd_path {
                    t.opened.insert(p);
                }
            }
            "mmap" | "mprotect" if call.contains("PROT_EXEC") => {
                // the descriptor argument: "3</path>"
                if let Some(p) = fd_arg_path(call).and_then(|p| image_path(&p)) {
                    t.mapped.insert(p);
                }
            }
            _ => {}
        }
    }
    // the directory reads of the dynamic loader are not uses of files
    t.opened.retain(|p| !p.ends_with('/'));
    t
}

fn first_quoted(call: &str) -> Option<String> {
    let start = call.find('"')? + 1;
    let end = start + call[start..].find('"')?;
    Some(call[start..end].to_owned())
}

fn fd_arg_path(call: &str) -> Option<String> {
    let start = call.find('<')? + 1;
    let end = start + call[start..].find('>')?;
    Some(call[start..end].to_owned())
}

/// dpkg's file lists of the image: path as listed → packages listing it.
pub fn dpkg_owners(rootfs: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut owners: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let info = rootfs.join("var/lib/dpkg/info");
    for entry in fs::read_dir(&info).unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".list") else {
            continue;
        };
        let package = stem.split(':').next().unwrap().to_owned();
        for line in fs::read_to_string(entry.path()).unwrap().lines() {
            if line.starts_with('/') && line != "/." {
                owners
                    .entry(line.to_owned())
                    .or_default()
                    .insert(package.clone());
            }
        }
    }
    owners
}

/// The packages that own a name of a file the truth used: a listed path
/// that is the used path, or that leads to the same file (`realpath`
/// inside the chroot, run by the system's coreutils, not by vexxy).
pub fn used_packages(rootfs: &Path, truth: &Truth) -> BTreeMap<String, BTreeSet<String>> {
    let owners = dpkg_owners(rootfs);
    let canonical = |paths: Vec<&str>| -> Vec<String> {
        if paths.is_empty() {
            return Vec::new();
        }
        let out = Command::new("chroot")
            .arg(rootfs)
            .arg("realpath")
            .arg("-m")
            .arg("--")
            .args(&paths)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let used: Vec<&str> = truth.used().into_iter().collect();
    let used_canonical: BTreeSet<String> = canonical(used.clone()).into_iter().collect();
    let listed: Vec<&str> = owners.keys().map(String::as_str).collect();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for chunk in listed.chunks(2000) {
        let resolved = canonical(chunk.to_vec());
        for (path, real) in chunk.iter().zip(resolved) {
            let hit = used.contains(path) || used_canonical.contains(&real);
            if hit && !rootfs.join(path.trim_start_matches('/')).is_dir() {
                for p in &owners[*path] {
                    out.entry(p.clone()).or_default().insert((*path).to_owned());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strace_lines() {
        let m = Path::new("/tmp/x/merged");
        let text = r#"12 execve("/usr/sbin/chroot", ["chroot"], 0x7ffd /* 1 var */) = 0
12 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>
12 execve("/usr/bin/redis-server", ["redis-server"], 0x7ffd /* 1 var */) = 0
12 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3</tmp/x/merged/etc/ld.so.cache>
12 mmap(NULL, 2000, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_DENYWRITE, 3</tmp/x/merged/usr/lib/x86_64-linux-gnu/libc.so.6>, 0x28000) = 0x7f00
12 openat(AT_FDCWD, "/etc/localtime", O_RDONLY) = 4</tmp/x/merged/usr/share/zoneinfo/Etc/UTC>
12 openat(AT_FDCWD, "/nope", O_RDONLY) = -1 ENOENT (No such file or directory)
13 openat(AT_FDCWD, "/app/x/package.json", O_RDONLY|O_CLOEXEC <unfinished ...>
12 openat(AT_FDCWD, "/etc/hosts", O_RDONLY <unfinished ...>
13 <... openat resumed>) = -1 ENOENT (No such file or directory)
12 <... openat resumed>) = 5</tmp/x/merged/etc/hosts>
12 +++ exited with 0 +++
"#;
        let t = parse(text, m);
        assert!(t.executed.contains("/usr/bin/redis-server"));
        assert!(!t.executed.contains("/usr/sbin/chroot"));
        assert!(t.opened.contains("/etc/localtime"));
        assert!(t.opened.contains("/usr/share/zoneinfo/Etc/UTC"));
        assert!(!t.opened.contains("/nope"));
        assert!(!t.opened.contains("/app/x/package.json"));
        assert!(t.opened.contains("/etc/hosts"));
        assert!(t.mapped.contains("/usr/lib/x86_64-linux-gnu/libc.so.6"));
    }
}
