//! The narrow interface to the kernel and to other processes.
//!
//! Every mount, signal, wait, cgroup and `/proc` access of the sandbox goes
//! through [`Host`], so the orchestration (ordering, retries, verification,
//! reaping) can be tested against a fake. [`RealHost`] is the Linux
//! implementation. Plain file work inside the sandbox's own state directory
//! (writing `config.json`, removing the directory) is done with `std::fs`.

use std::{
    any::Any,
    ffi::{CString, OsString},
    fmt, fs,
    io::{self, Read},
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use rustix::{
    event::{poll, PollFd, PollFlags, Timespec},
    fs::{flock, FlockOperation},
    mount::{mount, mount_bind, unmount, MountFlags, UnmountFlags},
    process::{
        getpid, kill_process, pidfd_open, set_child_subreaper, waitpid, Pid, PidfdFlags, Signal,
        WaitOptions,
    },
};

use crate::ExitStatus;

/// A command to run to completion, e.g. a runtime subcommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Append stdout to this file instead of capturing it.
    pub stdout: Option<PathBuf>,
    /// Append stderr to this file instead of capturing it.
    pub stderr: Option<PathBuf>,
    /// Kill the command (SIGKILL) when it runs longer than this.
    pub timeout: Duration,
}

impl CommandSpec {
    /// A command with captured output and a 30 s timeout.
    pub fn new<I, A>(program: impl Into<PathBuf>, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            stdout: None,
            stderr: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// The command line, for messages.
    pub fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// A held resource (a file lock, an open namespace); dropping it releases
/// the resource.
pub type HostHandle = Box<dyn Any + Send + Sync>;

/// Identity of a process that survives pid reuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// Host pid.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub starttime: u64,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    /// Start time in clock ticks since boot.
    pub starttime: u64,
    /// The process has exited and waits to be reaped.
    pub zombie: bool,
}

/// Which cgroup hierarchies the host has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupLayout {
    /// Controllers with a v1 hierarchy under /sys/fs/cgroup.
    pub v1_controllers: Vec<String>,
    /// Controllers enabled in the v2 hierarchy (empty for an empty
    /// hybrid `unified` mount).
    pub v2_controllers: Vec<String>,
    /// cgroup v1 memory+swap accounting (`memory.memsw.*`) is available.
    pub memsw: bool,
    /// cgroup v2 is the only hierarchy (/sys/fs/cgroup is cgroup2).
    pub unified_only: bool,
}

/// Kernel and process operations the sandbox needs.
pub trait Host: fmt::Debug + Send + Sync {
    /// Our effective uid.
    fn effective_uid(&self) -> u32;
    /// The contents of `/proc/filesystems`.
    fn filesystems(&self) -> io::Result<String>;
    /// The cgroup hierarchies of the host.
    fn cgroup_layout(&self) -> CgroupLayout;
    /// Our hard `RLIMIT_NOFILE` (`None`: unlimited). The container cannot
    /// get more without `CAP_SYS_RESOURCE`.
    fn nofile_hard_limit(&self) -> Option<u64>;
    /// Finds an executable: a path containing `/` as is, else in `PATH`.
    fn find_program(&self, program: &Path) -> Option<PathBuf>;

    /// Mounts a tmpfs of `size_bytes` (nosuid, nodev, mode 0700) on `target`.
    fn mount_tmpfs(&self, target: &Path, size_bytes: u64) -> io::Result<()>;
    /// Mounts an overlay of one read-only `lower` layer on `target`.
    fn mount_overlay(
        &self,
        lower: &Path,
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> io::Result<()>;
    /// Bind-mounts `source` on `target` (both files, or both directories).
    fn bind_mount(&self, source: &Path, target: &Path) -> io::Result<()>;
    /// Unmounts `target`; `detach` makes it lazy (`MNT_DETACH`).
    fn unmount(&self, target: &Path, detach: bool) -> io::Result<()>;
    /// Every mount point of our mount namespace, in mount order.
    fn mount_points(&self) -> io::Result<Vec<PathBuf>>;

    /// Runs a command to completion (or its timeout).
    fn run(&self, cmd: &CommandSpec) -> io::Result<Output>;
    /// Our own process identity.
    fn current_process(&self) -> io::Result<ProcessIdentity>;
    /// `/proc/<pid>/stat` of a process; `None` when there is no such pid.
    fn process_info(&self, pid: u32) -> io::Result<Option<ProcInfo>>;
    /// Whether `pid` is a live (non-zombie) process started at `starttime`.
    fn process_alive(&self, pid: u32, starttime: u64) -> bool {
        matches!(self.process_info(pid), Ok(Some(i)) if i.starttime == starttime && !i.zombie)
    }
    /// Inode of `/proc/<pid>/ns/pid`.
    fn pid_namespace_inode(&self, pid: u32) -> io::Result<u64>;
    /// Opens `/proc/<pid>/ns/pid` and keeps it open, so the namespace (and
    /// its inode number) stays reserved while the handle lives; returns the
    /// namespace inode with the handle.
    fn pin_pid_namespace(&self, pid: u32) -> io::Result<(u64, HostHandle)>;
    /// Every process whose PID namespace has this inode, with whether it
    /// is a zombie.
    fn pid_namespace_members(&self, inode: u64) -> io::Result<Vec<(u32, bool)>>;
    /// Sends SIGKILL.
    fn kill(&self, pid: u32) -> io::Result<()>;
    /// Reaps `pid` if it is our child and has exited (`waitpid(WNOHANG)`);
    /// `Err(ECHILD)` when it is not our child.
    fn try_reap(&self, pid: u32) -> io::Result<Option<ExitStatus>>;
    /// Waits up to `timeout` for `pid` to exit; `true` once it has exited
    /// (or is gone).
    fn wait_for_exit(&self, pid: u32, timeout: Duration) -> io::Result<bool>;
    /// Makes us a child subreaper, so orphaned descendants (the container
    /// init, once `runc create` exits) become our children.
    fn become_subreaper(&self) -> io::Result<()>;

    /// The existing directories `<hierarchy>/<rel>` of every cgroup
    /// hierarchy under /sys/fs/cgroup.
    fn cgroup_dirs(&self, rel: &Path) -> Vec<PathBuf>;
    /// The pids in `<dir>/cgroup.procs`.
    fn cgroup_procs(&self, dir: &Path) -> io::Result<Vec<u32>>;
    /// Removes an (empty) cgroup directory.
    fn remove_cgroup(&self, dir: &Path) -> io::Result<()>;

    /// Takes an advisory lock on `path` (created if missing); `None` when
    /// `wait` is false and someone else holds a conflicting lock.
    fn lock(&self, path: &Path, exclusive: bool, wait: bool) -> io::Result<Option<HostHandle>>;
}

/// The Linux implementation of [`Host`].
#[derive(Clone, Debug)]
pub struct RealHost {
    cgroup_root: PathBuf,
}

impl Default for RealHost {
    fn default() -> Self {
        Self {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

impl RealHost {
    /// The host at `/proc` and `/sys/fs/cgroup`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cgroup hierarchies: mount points of cgroup and cgroup2
    /// filesystems at or below the cgroup root.
    fn cgroup_hierarchies(&self) -> Vec<PathBuf> {
        let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for line in info.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fstype = right.split(' ').next().unwrap_or("");
            if fstype != "cgroup" && fstype != "cgroup2" {
                continue;
            }
            let Some(mp) = left.split(' ').nth(4) else {
                continue;
            };
            let mp = PathBuf::from(unescape_mountinfo(mp));
            if mp.starts_with(&self.cgroup_root) && !out.contains(&mp) {
                out.push(mp);
            }
        }
        out
    }
}

fn pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid pid {pid}")))
}

/// Undoes mountinfo's octal escapes (`\040` for space...).
pub(crate) fn unescape_mountinfo(s: &str) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    OsString::from_vec(out)
}

/// Parses `/proc/<pid>/stat`: state and start time.
pub(crate) fn parse_stat(stat: &str) -> Option<ProcInfo> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    // field 3 is the state; starttime is field 22 → 19 fields further
    let starttime = fields.nth(18)?.parse().ok()?;
    Some(ProcInfo {
        starttime,
        zombie: state == "Z" || state == "X",
    })
}

impl Host for RealHost {
    fn effective_uid(&self) -> u32 {
        rustix::process::geteuid().as_raw()
    }

    fn filesystems(&self) -> io::Result<String> {
        fs::read_to_string("/proc/filesystems")
    }

    fn cgroup_layout(&self) -> CgroupLayout {
        let mut layout = CgroupLayout::default();
        let unified_only = fs::metadata(self.cgroup_root.join("cgroup.controllers")).is_ok();
        layout.unified_only = unified_only;
        let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
            return layout;
        };
        for line in info.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or("");
            let super_opts = r.nth(1).unwrap_or("");
            let Some(mp) = left.split(' ').nth(4) else {
                continue;
            };
            let mp = PathBuf::from(unescape_mountinfo(mp));
            if !mp.starts_with(&self.cgroup_root) {
                continue;
            }
            match fstype {
                "cgroup" => {
                    for opt in super_opts.split(',') {
                        if matches!(opt, "rw" | "ro") || opt.contains('=') {
                            continue;
                        }
                        if !layout.v1_controllers.iter().any(|c| c == opt) {
                            layout.v1_controllers.push(opt.to_owned());
                        }
                        if opt == "memory" {
                            layout.memsw |= mp.join("memory.memsw.limit_in_bytes").exists();
                        }
                    }
                }
                "cgroup2" => {
                    if let Ok(c) = fs::read_to_string(mp.join("cgroup.controllers")) {
                        layout
                            .v2_controllers
                            .extend(c.split_ascii_whitespace().map(str::to_owned));
                    }
                }
                _ => {}
            }
        }
        layout
    }

    fn nofile_hard_limit(&self) -> Option<u64> {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum
    }

    fn find_program(&self, program: &Path) -> Option<PathBuf> {
        let is_exec = |p: &Path| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                .unwrap_or(false)
        };
        if program.as_os_str().as_bytes().contains(&b'/') {
            return is_exec(program).then(|| program.to_owned());
        }
        let path = std::env::var_os("PATH").unwrap_or_else(|| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        });
        std::env::split_paths(&path)
            .map(|d| d.join(program))
            .find(|p| is_exec(p))
    }

    fn mount_tmpfs(&self, target: &Path, size_bytes: u64) -> io::Result<()> {
        let data = CString::new(format!("size={size_bytes},mode=0700"))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        mount(
            "vexxy-scratch",
            target,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            data.as_c_str(),
        )
        .map_err(io::Error::from)
    }

    fn mount_overlay(
        &self,
        lower: &Path,
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> io::Result<()> {
        let mut data = OsString::from("lowerdir=");
        data.push(lower);
        data.push(",upperdir=");
        data.push(upper);
        data.push(",workdir=");
        data.push(work);
        let data = CString::new(data.as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        mount(
            "vexxy-rootfs",
            target,
            "overlay",
            MountFlags::empty(),
            data.as_c_str(),
        )
        .map_err(io::Error::from)
    }

    fn bind_mount(&self, source: &Path, target: &Path) -> io::Result<()> {
        mount_bind(source, target).map_err(io::Error::from)
    }

    fn unmount(&self, target: &Path, detach: bool) -> io::Result<()> {
        let flags = if detach {
            UnmountFlags::DETACH | UnmountFlags::NOFOLLOW
        } else {
            UnmountFlags::NOFOLLOW
        };
        unmount(target, flags).map_err(io::Error::from)
    }

    fn mount_points(&self) -> io::Result<Vec<PathBuf>> {
        let info = fs::read_to_string("/proc/self/mountinfo")?;
        Ok(info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|mp| PathBuf::from(unescape_mountinfo(mp)))
            .collect())
    }

    fn run(&self, cmd: &CommandSpec) -> io::Result<Output> {
        let mut c = Command::new(&cmd.program);
        c.args(&cmd.args).stdin(Stdio::null());
        let open = |p: &Path| fs::OpenOptions::new().create(true).append(true).open(p);
        match &cmd.stdout {
            Some(p) => c.stdout(open(p)?),
            None => c.stdout(Stdio::piped()),
        };
        match &cmd.stderr {
            Some(p) => c.stderr(open(p)?),
            None => c.stderr(Stdio::piped()),
        };
        let mut child = c.spawn()?;
        let reader = |pipe: Option<Box<dyn Read + Send>>| {
            let (tx, rx) = mpsc::channel();
            if let Some(mut pipe) = pipe {
                thread::spawn(move || {
                    let mut buf = Vec::new();
                    // bounded: runtime output is small; keep at most 1 MiB
                    let _ = pipe.by_ref().take(1 << 20).read_to_end(&mut buf);
                    let _ = io::copy(&mut pipe, &mut io::sink());
                    let _ = tx.send(buf);
                });
            } else {
                let _ = tx.send(Vec::new());
            }
            rx
        };
        let out_rx = reader(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err_rx = reader(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + cmd.timeout;
        let mut pause = Duration::from_millis(1);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} timed out after {:?}", cmd.display(), cmd.timeout),
                ));
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        // A grandchild may keep a pipe open: do not wait for it for long.
        let grace = Duration::from_secs(2);
        let stdout = out_rx.recv_timeout(grace).unwrap_or_default();
        let stderr = err_rx.recv_timeout(grace).unwrap_or_default();
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    fn current_process(&self) -> io::Result<ProcessIdentity> {
        let pid = getpid().as_raw_nonzero().get().unsigned_abs();
        let info = self
            .process_info(pid)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "/proc/self/stat"))?;
        Ok(ProcessIdentity {
            pid,
            starttime: info.starttime,
            boot_id: fs::read_to_string("/proc/sys/kernel/random/boot_id")?
                .trim()
                .to_owned(),
        })
    }

    fn process_info(&self, pid: u32) -> io::Result<Option<ProcInfo>> {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(s) => parse_stat(&s).map(Some).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("/proc/{pid}/stat: unparsable"),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            // ESRCH: the process vanished while we read
            Err(e) if e.raw_os_error() == Some(3) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn pid_namespace_inode(&self, pid: u32) -> io::Result<u64> {
        Ok(fs::metadata(format!("/proc/{pid}/ns/pid"))?.ino())
    }

    fn pin_pid_namespace(&self, pid: u32) -> io::Result<(u64, HostHandle)> {
        let file = fs::File::open(format!("/proc/{pid}/ns/pid"))?;
        let ino = file.metadata()?.ino();
        Ok((ino, Box::new(file)))
    }

    fn pid_namespace_members(&self, inode: u64) -> io::Result<Vec<(u32, bool)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir("/proc")? {
            let Ok(entry) = entry else { continue };
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(ino) = self.pid_namespace_inode(p) else {
                continue;
            };
            if ino != inode {
                continue;
            }
            let zombie = matches!(self.process_info(p), Ok(Some(i)) if i.zombie);
            out.push((p, zombie));
        }
        Ok(out)
    }

    fn kill(&self, p: u32) -> io::Result<()> {
        kill_process(pid(p)?, Signal::KILL).map_err(io::Error::from)
    }

    fn try_reap(&self, p: u32) -> io::Result<Option<ExitStatus>> {
        match waitpid(Some(pid(p)?), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => Ok(Some(
                match (status.exit_status(), status.terminating_signal()) {
                    (Some(code), _) => ExitStatus::Exited(code),
                    (None, Some(sig)) => ExitStatus::Signaled(sig),
                    _ => ExitStatus::Unknown,
                },
            )),
            Ok(None) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn wait_for_exit(&self, p: u32, timeout: Duration) -> io::Result<bool> {
        let fd = match pidfd_open(pid(p)?, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::SRCH) => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ts = Timespec {
                tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: left.subsec_nanos().into(),
            };
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(n) => return Ok(n > 0),
                Err(rustix::io::Errno::INTR) => {
                    if left.is_zero() {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn become_subreaper(&self) -> io::Result<()> {
        set_child_subreaper(Some(getpid())).map_err(io::Error::from)
    }

    fn cgroup_dirs(&self, rel: &Path) -> Vec<PathBuf> {
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        self.cgroup_hierarchies()
            .into_iter()
            .map(|h| h.join(rel))
            .filter(|d| d.is_dir())
            .collect()
    }

    fn cgroup_procs(&self, dir: &Path) -> io::Result<Vec<u32>> {
        Ok(fs::read_to_string(dir.join("cgroup.procs"))?
            .split_ascii_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    fn remove_cgroup(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir)
    }

    fn lock(&self, path: &Path, exclusive: bool, wait: bool) -> io::Result<Option<HostHandle>> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        let op = match (exclusive, wait) {
            (true, true) => FlockOperation::LockExclusive,
            (true, false) => FlockOperation::NonBlockingLockExclusive,
            (false, true) => FlockOperation::LockShared,
            (false, false) => FlockOperation::NonBlockingLockShared,
        };
        loop {
            match flock(&file, op) {
                Ok(()) => return Ok(Some(Box::new(file))),
                Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Builds an [`Output`] (for the fake host).
#[cfg(test)]
pub(crate) fn output(code: i32, stdout: &str, stderr: &str) -> Output {
    use std::os::unix::process::ExitStatusExt as _;
    Output {
        status: std::process::ExitStatus::from_raw(code << 8),
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing() {
        let s = "1234 (a) b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21";
        assert_eq!(
            parse_stat(s),
            Some(ProcInfo {
                starttime: 987654,
                zombie: false
            })
        );
        let z = "7 (sh) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 42 20";
        assert_eq!(
            parse_stat(z).map(|i| (i.starttime, i.zombie)),
            Some((42, true))
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo("/a\\040b"), OsString::from("/a b"));
        assert_eq!(unescape_mountinfo("/a\\"), OsString::from("/a\\"));
        assert_eq!(unescape_mountinfo("/a\\09"), OsString::from("/a\\09"));
    }

    #[test]
    fn real_host_reads_itself() {
        let h = RealHost::new();
        let me = h.current_process().expect("self");
        assert!(h.process_alive(me.pid, me.starttime));
        assert!(!h.process_alive(me.pid, me.starttime + 1));
        assert!(h.pid_namespace_inode(me.pid).expect("ns") > 0);
    }

    #[test]
    fn run_captures_and_times_out() {
        let h = RealHost::new();
        let out = h
            .run(&CommandSpec::new(
                "sh",
                ["-c", "echo out; echo err >&2; exit 3"],
            ))
            .expect("run");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        let mut slow = CommandSpec::new("sleep", ["5"]);
        slow.timeout = Duration::from_millis(100);
        let t = Instant::now();
        let err = h.run(&slow).expect_err("timeout");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
