//! Creating, starting and waiting for a sandbox.

use std::{
    fmt, fs,
    io::{self, Read, Seek, SeekFrom},
    os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use vexxy_rootfs::RootFs;

use crate::{
    host::{CommandSpec, Host, HostHandle, RealHost},
    owner::{write_record, InitRecord, OwnerRecord, INIT_FILE, OWNER_FILE},
    preflight::preflight_with,
    spec::{build_spec, SpecInput},
    teardown::{
        cgroup_lock, reap_leftovers_with_host, runtime_root, sandboxes_dir, teardown, Paths, Target,
    },
    user::resolve_user,
    SandboxConfig, SandboxError, TeardownReport,
};

/// Timeout of `runc create` and `runc start`.
const RUNTIME_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes of runtime error output put in an error message.
const ERROR_TAIL: usize = 4096;

/// How the container init ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
    /// It is gone but its status could not be collected (we were not its
    /// parent, e.g. the child-subreaper attribute could not be set).
    Unknown,
}

impl ExitStatus {
    /// The exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Exited(c) => Some(*c),
            _ => None,
        }
    }

    /// The killing signal, if a signal killed it.
    pub fn signal(&self) -> Option<i32> {
        match self {
            Self::Signaled(s) => Some(*s),
            _ => None,
        }
    }

    /// Exited with code 0.
    pub fn success(&self) -> bool {
        *self == Self::Exited(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited(c) => write!(f, "exit code {c}"),
            Self::Signaled(s) => write!(f, "killed by signal {s}"),
            Self::Unknown => f.write_str("exit status unknown"),
        }
    }
}

/// A created container: its init waits in its new namespaces until
/// [`start`](Self::start). Torn down by [`teardown`](Self::teardown) or,
/// best effort, on drop.
pub struct Sandbox {
    host: Arc<dyn Host>,
    pub(crate) target: Target,
    lower: PathBuf,
    init: InitRecord,
    started: bool,
    torn_down: bool,
    /// Held for the sandbox's life: tells reapers the owner is alive.
    _lock: Option<HostHandle>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("id", &self.target.id)
            .field("dir", &self.target.paths.dir)
            .field("init_pid", &self.init.pid)
            .field("started", &self.started)
            .field("exit", &self.target.exit)
            .finish_non_exhaustive()
    }
}

fn io_err(id: &str, action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SandboxError {
    let (id, path) = (id.to_owned(), path.to_owned());
    move |source| SandboxError::Io {
        id,
        action,
        path,
        source,
    }
}

/// A fresh sandbox id: `vx` and 12 random hex digits.
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 6];
    let random = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        // Unique enough without randomness: time, pid and a counter.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mix = nanos
            ^ (u64::from(std::process::id()) << 32)
            ^ COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        bytes.copy_from_slice(&mix.to_le_bytes()[..6]);
    }
    let mut id = String::from("vx");
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

fn mkdir_private(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o700).create(path)
}

fn mkdir_all_private(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(path)
}

/// The last `max` bytes of a file, lossily decoded; empty when unreadable.
fn file_tail(path: &Path, max: usize) -> String {
    let read = || -> io::Result<Vec<u8>> {
        let mut f = fs::File::open(path)?;
        let len = f.metadata()?.len();
        let max = max as u64;
        if len > max {
            f.seek(SeekFrom::Start(len - max))?;
        }
        let mut buf = Vec::new();
        f.take(max).read_to_end(&mut buf)?;
        Ok(buf)
    };
    match read() {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            tracing::debug!(path = %path.display(), "cannot read output: {e}");
            String::new()
        }
    }
}

/// The messages of a runtime's JSON log (`{"level":..,"msg":..}` lines),
/// or the raw text.
fn runtime_log_messages(text: &str) -> String {
    let mut msgs = Vec::new();
    for line in text.lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => {
                let level = v["level"].as_str().unwrap_or("");
                if matches!(level, "error" | "fatal" | "warning" | "panic") {
                    if let Some(m) = v["msg"].as_str() {
                        msgs.push(m.to_owned());
                    }
                }
            }
            Err(_) if !line.trim().is_empty() => msgs.push(line.trim().to_owned()),
            Err(_) => {}
        }
    }
    msgs.join("; ")
}

impl Sandbox {
    /// Reaps leftovers of dead vexxy processes, mounts the scratch tmpfs
    /// and the overlay, writes `config.json` and runs `runc create`. Returns
    /// with the container init created but waiting (not started), so a
    /// tracer can be armed on its PID namespace first. On any error,
    /// everything created so far is torn down again.
    ///
    /// Makes this process a child subreaper (process-wide), so the init is
    /// reparented to it and its exit status can be collected.
    pub fn create(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        Self::create_with_host(config, Arc::new(RealHost::new()))
    }

    /// [`create`](Self::create) on a given [`Host`].
    pub fn create_with_host(
        config: SandboxConfig,
        host: Arc<dyn Host>,
    ) -> Result<Sandbox, SandboxError> {
        config.validate()?;
        let runtime = preflight_with(host.as_ref(), &config.runtime)?;
        let rootfs = RootFs::open(&config.rootfs).map_err(|e| {
            SandboxError::InvalidConfig(format!("rootfs {}: {e}", config.rootfs.display()))
        })?;
        let lower = rootfs.host_root().to_owned();
        let user = resolve_user(&rootfs, config.process.user.as_deref())?;

        let state_root = &config.state_root;
        let rt_root = runtime_root(state_root);
        for d in [sandboxes_dir(state_root), rt_root.clone()] {
            mkdir_all_private(&d).map_err(|source| SandboxError::StateRoot { path: d, source })?;
        }
        match reap_leftovers_with_host(state_root, host.as_ref()) {
            Ok(ids) if !ids.is_empty() => {
                tracing::info!(count = ids.len(), ids = ?ids, "reaped leftover sandboxes")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("reaping leftover sandboxes: {e}"),
        }
        host.become_subreaper().map_err(io_err(
            "-",
            "become child subreaper for",
            Path::new("/proc/self"),
        ))?;
        let me =
            host.current_process()
                .map_err(io_err("-", "read", Path::new("/proc/self/stat")))?;

        // A new directory under a fresh id; its owner record comes first.
        let (id, paths) = {
            let mut attempt = 0;
            loop {
                let id = new_id();
                let paths = Paths::new(state_root, &id);
                match mkdir_private(&paths.dir) {
                    Ok(()) => break (id, paths),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => {
                        attempt += 1
                    }
                    Err(e) => return Err(io_err(&id, "create", &paths.dir)(e)),
                }
            }
        };
        let owner = OwnerRecord::new(&me, &runtime, &rt_root);
        if let Err(e) = write_record(&paths.dir, OWNER_FILE, &owner) {
            let _ = fs::remove_dir_all(&paths.dir);
            return Err(io_err(&id, "write owner record in", &paths.dir)(e));
        }
        let lock = match host.lock(&paths.lock, true, false) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(sandbox = %id, "cannot lock {}: {e}", paths.lock.display());
                None
            }
        };
        tracing::debug!(sandbox = %id, dir = %paths.dir.display(), "creating sandbox");

        let mut sandbox = Sandbox {
            host,
            target: Target {
                id,
                paths,
                state_root: state_root.clone(),
                runtime,
                runtime_root: rt_root,
                init: None,
                exit: None,
                pidns: None,
            },
            lower,
            init: InitRecord {
                pid: 0,
                starttime: 0,
                pidns_inode: 0,
            },
            started: false,
            torn_down: false,
            _lock: lock,
        };
        match sandbox.set_up(&config, &user) {
            Ok(()) => {
                tracing::info!(
                    sandbox = %sandbox.target.id,
                    init_pid = sandbox.init.pid,
                    pidns = sandbox.init.pidns_inode,
                    "sandbox created"
                );
                Ok(sandbox)
            }
            Err(e) => {
                sandbox.torn_down = true;
                let report = teardown(sandbox.host.as_ref(), &mut sandbox.target);
                if !report.is_clean() {
                    tracing::error!(
                        sandbox = %report.id,
                        leftovers = %report.leftover_summary(),
                        "cleanup after a failed create is incomplete"
                    );
                }
                Err(e)
            }
        }
    }

    fn set_up(
        &mut self,
        config: &SandboxConfig,
        user: &crate::user::ResolvedUser,
    ) -> Result<(), SandboxError> {
        let host = Arc::clone(&self.host);
        let t = &self.target;
        let id = t.id.clone();
        let p = t.paths.clone();

        // Scratch tmpfs: overlay upper/work, output files, /etc files.
        mkdir_private(&p.scratch).map_err(io_err(&id, "create", &p.scratch))?;
        host.mount_tmpfs(&p.scratch, config.limits.scratch_bytes)
            .map_err(io_err(&id, "mount scratch tmpfs on", &p.scratch))?;
        for d in [&p.upper, &p.work] {
            mkdir_private(d).map_err(io_err(&id, "create", d))?;
        }
        // The container's `/` takes the upper directory's mode.
        let lower_mode = fs::metadata(&self.lower)
            .map_err(io_err(&id, "stat", &self.lower))?
            .mode()
            & 0o7777;
        fs::set_permissions(&p.upper, fs::Permissions::from_mode(lower_mode))
            .map_err(io_err(&id, "chmod", &p.upper))?;
        mkdir_private(&p.rootfs).map_err(io_err(&id, "create", &p.rootfs))?;
        host.mount_overlay(&self.lower, &p.upper, &p.work, &p.rootfs)
            .map_err(io_err(&id, "mount overlay on", &p.rootfs))?;

        let hosts = format!(
            "127.0.0.1\tlocalhost {h}\n::1\tlocalhost ip6-localhost ip6-loopback {h}\n",
            h = config.hostname
        );
        for (path, text) in [
            (&p.hosts, hosts),
            (&p.hostname, format!("{}\n", config.hostname)),
        ] {
            fs::write(path, text).map_err(io_err(&id, "write", path))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o644))
                .map_err(io_err(&id, "chmod", path))?;
        }
        for f in [&p.stdout, &p.stderr] {
            fs::write(f, b"").map_err(io_err(&id, "create", f))?;
        }

        let layout = host.cgroup_layout();
        let cgroups_path = format!("/vexxy/{id}");
        let spec = build_spec(&SpecInput {
            process: &config.process,
            user,
            limits: &config.limits,
            hostname: &config.hostname,
            cgroups_path: &cgroups_path,
            cgroups: &layout,
            nofile_hard: host.nofile_hard_limit(),
            hosts_file: &p.hosts,
            hostname_file: &p.hostname,
        })?;
        let json = serde_json::to_vec_pretty(&spec)
            .map_err(|e| io_err(&id, "serialize", &p.config)(io::Error::other(e)))?;
        fs::write(&p.config, json).map_err(io_err(&id, "write", &p.config))?;

        // Create the container; hold the cgroup lock shared so no teardown
        // removes the `/vexxy` parent cgroup under the runtime.
        let mut cmd = CommandSpec::new(
            &t.runtime,
            [
                "--root".into(),
                t.runtime_root.clone().into_os_string(),
                "--log".into(),
                p.runtime_log.clone().into_os_string(),
                "--log-format".into(),
                "json".into(),
                "create".into(),
                "--bundle".into(),
                p.dir.clone().into_os_string(),
                "--pid-file".into(),
                p.pid_file.clone().into_os_string(),
                id.clone().into(),
            ],
        );
        cmd.stdout = Some(p.stdout.clone());
        cmd.stderr = Some(p.stderr.clone());
        cmd.timeout = RUNTIME_TIMEOUT;
        let out = {
            let _guard = host
                .lock(&cgroup_lock(&t.state_root), false, true)
                .map_err(io_err(&id, "lock", &cgroup_lock(&t.state_root)))?;
            host.run(&cmd)
        };
        let command = format!("{} create", t.runtime.display());
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let mut detail = runtime_log_messages(&file_tail(&p.runtime_log, ERROR_TAIL));
                let stderr = file_tail(&p.stderr, ERROR_TAIL);
                let stderr = stderr.trim();
                if !stderr.is_empty() && !detail.contains(stderr) {
                    detail = format!("{detail} {stderr}");
                }
                return Err(SandboxError::Runtime {
                    id,
                    command,
                    detail: format!("{}: {}", o.status, detail.trim()),
                });
            }
            Err(e) => {
                return Err(SandboxError::Runtime {
                    id,
                    command,
                    detail: e.to_string(),
                })
            }
        }

        // The init: pid, identity and PID namespace, recorded for reapers.
        let pid_text = fs::read_to_string(&p.pid_file).map_err(io_err(&id, "read", &p.pid_file))?;
        let pid: u32 = pid_text.trim().parse().map_err(|_| SandboxError::State {
            id: id.clone(),
            detail: format!(
                "pid file {} holds {:?}",
                p.pid_file.display(),
                pid_text.trim()
            ),
        })?;
        let info = host
            .process_info(pid)
            .map_err(io_err(&id, "read", Path::new(&format!("/proc/{pid}/stat"))))?
            .filter(|i| !i.zombie)
            .ok_or_else(|| SandboxError::State {
                id: id.clone(),
                detail: format!("container init {pid} exited right after create"),
            })?;
        let (pidns_inode, ns_handle) = host.pin_pid_namespace(pid).map_err(io_err(
            &id,
            "open",
            Path::new(&format!("/proc/{pid}/ns/pid")),
        ))?;
        let init = InitRecord {
            pid,
            starttime: info.starttime,
            pidns_inode,
        };
        self.init = init;
        self.target.init = Some(init);
        self.target.pidns = Some((pidns_inode, ns_handle));
        write_record(&p.dir, INIT_FILE, &init).map_err(io_err(
            &id,
            "write init record in",
            &p.dir,
        ))?;

        // Keep the network namespace reachable after the init is gone.
        fs::write(&p.netns, b"").map_err(io_err(&id, "create", &p.netns))?;
        let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        host.bind_mount(&ns, &p.netns).map_err(io_err(
            &id,
            "bind-mount the network namespace on",
            &p.netns,
        ))?;
        Ok(())
    }

    /// The sandbox id (also the runtime's container id).
    pub fn id(&self) -> &str {
        &self.target.id
    }

    /// Host pid of the container init.
    pub fn init_pid(&self) -> u32 {
        self.init.pid
    }

    /// Inode of the container's PID namespace (`/proc/<pid>/ns/pid`). The
    /// namespace is held open until teardown, so the number is not reused
    /// meanwhile.
    pub fn pid_namespace_inode(&self) -> u64 {
        self.init.pidns_inode
    }

    /// A bind mount of the container's network namespace in the sandbox
    /// directory; it outlives the init and stays valid until teardown.
    pub fn net_namespace_path(&self) -> PathBuf {
        self.target.paths.netns.clone()
    }

    /// The image rootfs (the overlay's read-only lower directory), as a
    /// canonical host path.
    pub fn lower_dir(&self) -> &Path {
        &self.lower
    }

    /// The overlay's upper directory: where the workload's writes land.
    pub fn upper_dir(&self) -> &Path {
        &self.target.paths.upper
    }

    /// The merged overlay: the container's `/` as seen from the host.
    pub fn rootfs_dir(&self) -> &Path {
        &self.target.paths.rootfs
    }

    /// The sandbox's cgroup path, relative to each hierarchy root
    /// (`/vexxy/<id>`).
    pub fn cgroup_path(&self) -> String {
        format!("/vexxy/{}", self.target.id)
    }

    /// The file receiving the workload's stdout (in the scratch tmpfs).
    pub fn stdout_path(&self) -> &Path {
        &self.target.paths.stdout
    }

    /// The file receiving the workload's stderr (in the scratch tmpfs).
    pub fn stderr_path(&self) -> &Path {
        &self.target.paths.stderr
    }

    /// Starts the workload (`runc start`).
    pub fn start(&mut self) -> Result<(), SandboxError> {
        if self.started {
            return Err(SandboxError::State {
                id: self.target.id.clone(),
                detail: "already started".into(),
            });
        }
        let t = &self.target;
        let mut cmd = CommandSpec::new(
            &t.runtime,
            [
                "--root".into(),
                t.runtime_root.clone().into_os_string(),
                "start".into(),
                std::ffi::OsString::from(&t.id),
            ],
        );
        cmd.timeout = RUNTIME_TIMEOUT;
        let command = format!("{} start", t.runtime.display());
        match self.host.run(&cmd) {
            Ok(o) if o.status.success() => {
                self.started = true;
                tracing::debug!(sandbox = %t.id, "sandbox started");
                Ok(())
            }
            Ok(o) => Err(SandboxError::Runtime {
                id: t.id.clone(),
                command,
                detail: format!(
                    "{}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            }),
            Err(e) => Err(SandboxError::Runtime {
                id: t.id.clone(),
                command,
                detail: e.to_string(),
            }),
        }
    }

    /// Waits until the init exits or `deadline` passes. `Ok(None)`: still
    /// running at the deadline (call [`teardown`](Self::teardown) to kill
    /// it). The status is kept: later calls return it again.
    pub fn wait_exit(&mut self, deadline: Instant) -> Result<Option<ExitStatus>, SandboxError> {
        if let Some(s) = self.target.exit {
            return Ok(Some(s));
        }
        let pid = self.init.pid;
        let id = self.target.id.clone();
        let wait_err = |source| SandboxError::Io {
            id: id.clone(),
            action: "wait for",
            path: PathBuf::from(format!("/proc/{pid}")),
            source,
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let exited = self.host.wait_for_exit(pid, left).map_err(wait_err)?;
            if !exited {
                return Ok(None);
            }
            match self.host.try_reap(pid) {
                Ok(Some(status)) => {
                    tracing::debug!(sandbox = %id, %status, "container init exited");
                    self.target.exit = Some(status);
                    return Ok(Some(status));
                }
                Ok(None) => {
                    // exited but not yet reapable: a moment's race
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) if e.raw_os_error() == Some(10) => {
                    // ECHILD: not our child; it is gone, status unknown
                    self.target.exit = Some(ExitStatus::Unknown);
                    return Ok(Some(ExitStatus::Unknown));
                }
                Err(e) => return Err(wait_err(e)),
            }
        }
    }

    /// The last `max` bytes of the workload's stdout (lossy UTF-8).
    pub fn stdout_tail(&self, max: usize) -> String {
        file_tail(&self.target.paths.stdout, max)
    }

    /// The last `max` bytes of the workload's stderr (lossy UTF-8).
    pub fn stderr_tail(&self, max: usize) -> String {
        file_tail(&self.target.paths.stderr, max)
    }

    /// Kills every process, deletes the container, drains and removes its
    /// cgroups, unmounts, removes the sandbox directory and runtime state,
    /// then verifies nothing is left. Errors with
    /// [`SandboxError::TeardownIncomplete`] (carrying the report) when
    /// verification finds leftovers.
    pub fn teardown(mut self) -> Result<TeardownReport, SandboxError> {
        self.torn_down = true;
        let report = teardown(self.host.as_ref(), &mut self.target);
        if report.is_clean() {
            Ok(report)
        } else {
            Err(SandboxError::TeardownIncomplete {
                report: Box::new(report),
            })
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.torn_down {
            self.torn_down = true;
            let report = teardown(self.host.as_ref(), &mut self.target);
            if !report.is_clean() {
                tracing::error!(
                    sandbox = %report.id,
                    leftovers = %report.leftover_summary(),
                    "teardown on drop incomplete"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert!(crate::teardown::valid_id(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(a.len(), 14);
    }

    #[test]
    fn runtime_log_is_summarised() {
        let log = r#"{"level":"info","msg":"hi","time":"x"}
{"level":"error","msg":"runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH","time":"x"}"#;
        assert_eq!(
            runtime_log_messages(log),
            "runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(runtime_log_messages("plain text\n"), "plain text");
    }

    #[test]
    fn tail_reads_the_end() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("out");
        fs::write(&f, "0123456789").expect("write");
        assert_eq!(file_tail(&f, 4), "6789");
        assert_eq!(file_tail(&f, 100), "0123456789");
        assert_eq!(file_tail(&dir.path().join("missing"), 4), "");
    }
}
