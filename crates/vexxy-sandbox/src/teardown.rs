//! Tearing a sandbox down, verifying nothing is left, and reaping the
//! sandboxes of dead vexxy processes.

use std::{
    fmt, fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant, SystemTime},
};

use crate::{
    host::{CommandSpec, Host, HostHandle, RealHost},
    owner::{read_record, InitRecord, OwnerRecord, INIT_FILE, OWNER_FILE},
    ExitStatus, SandboxError,
};

/// How long the init gets to die after SIGKILL.
const INIT_EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the cgroups get to become empty.
const CGROUP_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one runtime command during teardown.
const RUNTIME_TIMEOUT: Duration = Duration::from_secs(15);
/// A sandbox directory without an owner record younger than this is being
/// created; older, it is the leftover of a crash.
const OWNERLESS_GRACE: Duration = Duration::from_secs(60);
/// ECHILD, EBUSY, EINVAL, ENOENT, ENOTEMPTY
const ECHILD: i32 = 10;
const EBUSY: i32 = 16;
const EINVAL: i32 = 22;
const ENOENT: i32 = 2;
const ENOTEMPTY: i32 = 39;

/// The host paths of one sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Paths {
    /// `<state_root>/sandboxes/<id>`: the bundle directory.
    pub(crate) dir: PathBuf,
    /// The scratch tmpfs mount point.
    pub(crate) scratch: PathBuf,
    pub(crate) upper: PathBuf,
    pub(crate) work: PathBuf,
    /// The overlay mount point: the bundle's `rootfs`.
    pub(crate) rootfs: PathBuf,
    /// Bind mount of the container's network namespace.
    pub(crate) netns: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) pid_file: PathBuf,
    pub(crate) lock: PathBuf,
    pub(crate) stdout: PathBuf,
    pub(crate) stderr: PathBuf,
    pub(crate) runtime_log: PathBuf,
    pub(crate) hosts: PathBuf,
    pub(crate) hostname: PathBuf,
}

impl Paths {
    pub(crate) fn new(state_root: &Path, id: &str) -> Self {
        let dir = sandboxes_dir(state_root).join(id);
        let scratch = dir.join("scratch");
        Self {
            upper: scratch.join("upper"),
            work: scratch.join("work"),
            stdout: scratch.join("stdout.log"),
            stderr: scratch.join("stderr.log"),
            runtime_log: scratch.join("runtime.log"),
            hosts: scratch.join("hosts"),
            hostname: scratch.join("hostname"),
            rootfs: dir.join("rootfs"),
            netns: dir.join("netns"),
            config: dir.join("config.json"),
            pid_file: dir.join("init.pid"),
            lock: dir.join("lock"),
            scratch,
            dir,
        }
    }
}

pub(crate) fn sandboxes_dir(state_root: &Path) -> PathBuf {
    state_root.join("sandboxes")
}

pub(crate) fn runtime_root(state_root: &Path) -> PathBuf {
    state_root.join("runtime")
}

pub(crate) fn cgroup_lock(state_root: &Path) -> PathBuf {
    state_root.join("cgroups.lock")
}

/// The cgroup of a sandbox, relative to each hierarchy root.
pub(crate) fn cgroup_rel(id: &str) -> PathBuf {
    Path::new("vexxy").join(id)
}

/// Sandbox ids: what we generate, and what reaping accepts from directory
/// names before passing them to the runtime.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with(['.', '-'])
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Everything teardown needs to know about one sandbox.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) id: String,
    pub(crate) paths: Paths,
    pub(crate) state_root: PathBuf,
    pub(crate) runtime: PathBuf,
    pub(crate) runtime_root: PathBuf,
    pub(crate) init: Option<InitRecord>,
    /// The init's exit status, once collected.
    pub(crate) exit: Option<ExitStatus>,
    /// The PID namespace, held open so its inode cannot be reused while we
    /// verify; `None` when the init was already gone.
    pub(crate) pidns: Option<(u64, HostHandle)>,
}

/// How one teardown step went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// The step did its work (with a note, possibly empty).
    Done(String),
    /// Nothing to do (with the reason).
    Skipped(String),
    /// The step failed; later steps still ran.
    Failed(String),
}

/// One step of a teardown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeardownStep {
    /// What the step does, e.g. `runtime kill`, `unmount /run/vexxy/...`.
    pub name: String,
    /// How it went.
    pub outcome: StepOutcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// Something that verification found still present after teardown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leftover {
    /// A live process in the sandbox's PID namespace.
    Process {
        /// Host pid.
        pid: u32,
    },
    /// A mount under the sandbox directory.
    Mount {
        /// The mount point.
        path: PathBuf,
    },
    /// A cgroup directory of the sandbox.
    Cgroup {
        /// The directory.
        path: PathBuf,
    },
    /// The sandbox directory or the runtime's state directory.
    Dir {
        /// The directory.
        path: PathBuf,
    },
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Process { pid } => write!(f, "process {pid}"),
            Self::Mount { path } => write!(f, "mount {}", path.display()),
            Self::Cgroup { path } => write!(f, "cgroup {}", path.display()),
            Self::Dir { path } => write!(f, "directory {}", path.display()),
        }
    }
}

/// What a teardown did and what it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeardownReport {
    /// The sandbox id.
    pub id: String,
    /// Every step, in order.
    pub steps: Vec<TeardownStep>,
    /// What verification found still present (empty when clean).
    pub leftovers: Vec<Leftover>,
    /// The init's exit status, if it was collected.
    pub init_exit: Option<ExitStatus>,
    /// Total time.
    pub elapsed: Duration,
}

impl TeardownReport {
    /// Verification found nothing left.
    pub fn is_clean(&self) -> bool {
        self.leftovers.is_empty()
    }

    /// The step with this name.
    pub fn step(&self, name: &str) -> Option<&TeardownStep> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The leftovers, comma-separated (`none` when clean).
    pub fn leftover_summary(&self) -> String {
        if self.leftovers.is_empty() {
            return "none".into();
        }
        self.leftovers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn record(&mut self, name: impl Into<String>, start: Instant, outcome: StepOutcome) {
        let name = name.into();
        match &outcome {
            StepOutcome::Failed(why) => {
                tracing::warn!(sandbox = %self.id, step = %name, "teardown step failed: {why}")
            }
            o => tracing::debug!(sandbox = %self.id, step = %name, outcome = ?o, "teardown step"),
        }
        self.steps.push(TeardownStep {
            name,
            outcome,
            elapsed: start.elapsed(),
        });
    }
}

fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
}

fn runtime_cmd(t: &Target, args: &[&str]) -> CommandSpec {
    let mut all: Vec<std::ffi::OsString> = vec!["--root".into(), t.runtime_root.clone().into()];
    all.extend(args.iter().map(Into::into));
    let mut c = CommandSpec::new(&t.runtime, all);
    c.timeout = RUNTIME_TIMEOUT;
    c
}

/// Whether runtime error output says the container is already gone or
/// not running (runc, crun and youki wordings).
fn says_gone(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    [
        "does not exist",
        "not running",
        "no such file",
        "not found",
        "container not running",
        "is stopped",
    ]
    .iter()
    .any(|w| s.contains(w))
}

/// Runs `runtime <args>`; `Done` on success, `Skipped` when the runtime
/// says the container is gone, else `Failed`.
fn runtime_step(host: &dyn Host, t: &Target, args: &[&str]) -> StepOutcome {
    let cmd = runtime_cmd(t, args);
    match host.run(&cmd) {
        Ok(out) if out.status.success() => StepOutcome::Done(String::new()),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            if says_gone(&err) {
                StepOutcome::Skipped(format!("container gone: {err}"))
            } else {
                StepOutcome::Failed(format!("`{}`: {} {err}", cmd.display(), out.status))
            }
        }
        Err(e) => StepOutcome::Failed(format!("`{}`: {e}", cmd.display())),
    }
}

/// Mount points at or below `dir`, most recent first (the order to
/// unmount them in).
fn mounts_under(host: &dyn Host, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut m: Vec<PathBuf> = host
        .mount_points()?
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect();
    m.reverse();
    Ok(m)
}

/// Removes `dir` recursively without ever descending into another
/// filesystem (a mount we failed to remove).
pub(crate) fn remove_tree(dir: &Path) -> io::Result<()> {
    let dev = fs::symlink_metadata(dir)?.dev();
    remove_tree_on(dir, dev)
}

fn remove_tree_on(dir: &Path, dev: u64) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = fs::symlink_metadata(&path)?;
        if meta.dev() != dev {
            return Err(io::Error::other(format!(
                "{} is on another filesystem (a mount point)",
                path.display()
            )));
        }
        if meta.is_dir() {
            remove_tree_on(&path, dev)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    fs::remove_dir(dir)
}

/// Tears a sandbox down. Never fails: every step runs, failures are
/// recorded, and verification lists what is left. Idempotent.
pub(crate) fn teardown(host: &dyn Host, t: &mut Target) -> TeardownReport {
    let start_all = Instant::now();
    let mut r = TeardownReport {
        id: t.id.clone(),
        steps: Vec::new(),
        leftovers: Vec::new(),
        init_exit: t.exit,
        elapsed: Duration::ZERO,
    };
    let runtime_state = t.runtime_root.join(&t.id);

    // 1. SIGKILL every process of the container, through the runtime.
    let s = Instant::now();
    let outcome = if runtime_state.exists() {
        runtime_step(host, t, &["kill", "--all", &t.id, "KILL"])
    } else {
        StepOutcome::Skipped("no runtime state".into())
    };
    r.record("runtime kill", s, outcome);

    // 2. SIGKILL the init directly (its death kills its PID namespace),
    //    in case the runtime state was lost or the runtime failed.
    let s = Instant::now();
    let init_alive = t
        .init
        .is_some_and(|i| host.process_alive(i.pid, i.starttime));
    let outcome = match (t.init, init_alive) {
        (Some(i), true) => match host.kill(i.pid) {
            Ok(()) => StepOutcome::Done(format!("sent SIGKILL to {}", i.pid)),
            Err(e) => StepOutcome::Failed(format!("kill {}: {e}", i.pid)),
        },
        (Some(_), false) => StepOutcome::Skipped("init not running".into()),
        (None, _) => StepOutcome::Skipped("no init recorded".into()),
    };
    r.record("kill init", s, outcome);

    // 3. Wait for the init to die and reap it when it is our child.
    let s = Instant::now();
    let outcome = reap_init(host, t);
    r.init_exit = t.exit;
    r.record("reap init", s, outcome);

    // 4. Delete the container in the runtime (state and cgroups).
    let s = Instant::now();
    let outcome = if runtime_state.exists() {
        runtime_step(host, t, &["delete", "--force", &t.id])
    } else {
        StepOutcome::Skipped("no runtime state".into())
    };
    r.record("runtime delete", s, outcome);

    // 5. Wait until no process is left in the sandbox's cgroups.
    let s = Instant::now();
    let outcome = drain_cgroups(host, &t.id);
    r.record("cgroup drain", s, outcome);

    // 6. Remove the cgroups the runtime left, and the shared parent when
    //    it is empty and no sandbox is being created.
    let s = Instant::now();
    let outcome = remove_cgroups(host, t);
    r.record("cgroup remove", s, outcome);

    // 7. Unmount everything under the sandbox directory, newest first.
    match mounts_under(host, &t.paths.dir) {
        Ok(mounts) => {
            for m in mounts {
                let s = Instant::now();
                let outcome = unmount_one(host, &m);
                r.record(format!("unmount {}", m.display()), s, outcome);
            }
        }
        Err(e) => r.record(
            "unmount",
            Instant::now(),
            StepOutcome::Failed(format!("read mountinfo: {e}")),
        ),
    }

    // 8. Remove the runtime's state directory if the runtime left it.
    let s = Instant::now();
    let outcome = if runtime_state.exists() {
        match mounts_under(host, &runtime_state) {
            Ok(m) if m.is_empty() => match fs::remove_dir_all(&runtime_state) {
                Ok(()) => StepOutcome::Done(String::new()),
                Err(e) => StepOutcome::Failed(format!("{}: {e}", runtime_state.display())),
            },
            Ok(_) => StepOutcome::Failed("mounts remain under the runtime state".into()),
            Err(e) => StepOutcome::Failed(format!("read mountinfo: {e}")),
        }
    } else {
        StepOutcome::Skipped("already gone".into())
    };
    r.record("remove runtime state", s, outcome);

    // 9. Remove the sandbox directory, never across a mount point.
    let s = Instant::now();
    let outcome = if t.paths.dir.exists() {
        match mounts_under(host, &t.paths.dir) {
            Ok(m) if m.is_empty() => match remove_tree(&t.paths.dir) {
                Ok(()) => StepOutcome::Done(String::new()),
                Err(e) => StepOutcome::Failed(format!("{}: {e}", t.paths.dir.display())),
            },
            Ok(m) => StepOutcome::Failed(format!("{} mount(s) remain", m.len())),
            Err(e) => StepOutcome::Failed(format!("read mountinfo: {e}")),
        }
    } else {
        StepOutcome::Skipped("already gone".into())
    };
    r.record("remove sandbox dir", s, outcome);

    // 10. Verify.
    let s = Instant::now();
    verify(host, t, &mut r);
    let outcome = if r.leftovers.is_empty() {
        StepOutcome::Done("nothing left".into())
    } else {
        StepOutcome::Failed(r.leftover_summary())
    };
    r.record("verify", s, outcome);
    // The namespace may be released now.
    t.pidns = None;
    r.elapsed = start_all.elapsed();
    if r.is_clean() {
        tracing::info!(sandbox = %t.id, elapsed = ?r.elapsed, "sandbox torn down");
    } else {
        tracing::warn!(sandbox = %t.id, leftovers = %r.leftover_summary(), "sandbox teardown incomplete");
    }
    r
}

fn reap_init(host: &dyn Host, t: &mut Target) -> StepOutcome {
    let Some(init) = t.init else {
        return StepOutcome::Skipped("no init recorded".into());
    };
    if t.exit.is_some() {
        return StepOutcome::Skipped("already reaped".into());
    }
    match host.process_info(init.pid) {
        Ok(Some(info)) if info.starttime == init.starttime => {}
        _ => return StepOutcome::Skipped("init gone".into()),
    }
    match host.wait_for_exit(init.pid, INIT_EXIT_TIMEOUT) {
        Ok(true) => {}
        Ok(false) => {
            return StepOutcome::Failed(format!(
                "init {} still running {INIT_EXIT_TIMEOUT:?} after SIGKILL",
                init.pid
            ))
        }
        Err(e) => return StepOutcome::Failed(format!("wait for init {}: {e}", init.pid)),
    }
    // The exit is visible; the zombie may take a moment to be reapable.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match host.try_reap(init.pid) {
            Ok(Some(status)) => {
                t.exit = Some(status);
                return StepOutcome::Done(format!("init exited: {status}"));
            }
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
            Ok(None) => return StepOutcome::Failed(format!("init {} not reapable", init.pid)),
            Err(e) if errno(&e) == Some(ECHILD) => {
                return StepOutcome::Skipped("init exited; not our child".into())
            }
            Err(e) => return StepOutcome::Failed(format!("waitpid {}: {e}", init.pid)),
        }
    }
}

fn drain_cgroups(host: &dyn Host, id: &str) -> StepOutcome {
    let dirs = host.cgroup_dirs(&cgroup_rel(id));
    if dirs.is_empty() {
        return StepOutcome::Skipped("no cgroup".into());
    }
    let start = Instant::now();
    let mut killed = 0usize;
    loop {
        let mut pids: Vec<u32> = Vec::new();
        for d in &dirs {
            if let Ok(p) = host.cgroup_procs(d) {
                pids.extend(p);
            }
        }
        pids.sort_unstable();
        pids.dedup();
        if pids.is_empty() {
            return StepOutcome::Done(if killed > 0 {
                format!("killed {killed} stray process(es)")
            } else {
                String::new()
            });
        }
        if start.elapsed() >= CGROUP_DRAIN_TIMEOUT {
            return StepOutcome::Failed(format!("processes still in the cgroup: {pids:?}"));
        }
        // Anything still in the sandbox's cgroup after a moment is ours to
        // kill (a runtime that failed to).
        if start.elapsed() >= Duration::from_millis(500) {
            for p in &pids {
                if host.kill(*p).is_ok() {
                    killed += 1;
                }
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn remove_cgroups(host: &dyn Host, t: &Target) -> StepOutcome {
    let dirs = host.cgroup_dirs(&cgroup_rel(&t.id));
    let mut failed = Vec::new();
    for d in &dirs {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match host.remove_cgroup(d) {
                Ok(()) => break,
                Err(e) if errno(&e) == Some(ENOENT) => break,
                Err(e) if errno(&e) == Some(EBUSY) && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10))
                }
                Err(e) => {
                    failed.push(format!("{}: {e}", d.display()));
                    break;
                }
            }
        }
    }
    // The shared parent `/vexxy`: only while no sandbox is being created
    // (creators hold the lock shared), and only if empty.
    let mut parents = 0;
    if let Ok(Some(_guard)) = host.lock(&cgroup_lock(&t.state_root), true, false) {
        for p in host.cgroup_dirs(Path::new("vexxy")) {
            match host.remove_cgroup(&p) {
                Ok(()) => parents += 1,
                Err(e) if matches!(errno(&e), Some(EBUSY | ENOTEMPTY | ENOENT)) => {}
                Err(e) => tracing::debug!(path = %p.display(), "keeping cgroup parent: {e}"),
            }
        }
    }
    if !failed.is_empty() {
        StepOutcome::Failed(failed.join("; "))
    } else if dirs.is_empty() && parents == 0 {
        StepOutcome::Skipped("no cgroup left by the runtime".into())
    } else {
        StepOutcome::Done(format!(
            "removed {} cgroup dir(s), {parents} empty parent(s)",
            dirs.len()
        ))
    }
}

fn unmount_one(host: &dyn Host, m: &Path) -> StepOutcome {
    for attempt in 0..5 {
        match host.unmount(m, false) {
            Ok(()) => return StepOutcome::Done(String::new()),
            Err(e) if matches!(errno(&e), Some(EINVAL | ENOENT)) => {
                return StepOutcome::Skipped(format!("not mounted: {e}"))
            }
            Err(e) if errno(&e) == Some(EBUSY) && attempt < 4 => {
                thread::sleep(Duration::from_millis(20 << attempt))
            }
            Err(e) if errno(&e) == Some(EBUSY) => break,
            Err(e) => return StepOutcome::Failed(format!("unmount: {e}")),
        }
    }
    match host.unmount(m, true) {
        Ok(()) => StepOutcome::Done("busy: lazily detached".into()),
        Err(e) => StepOutcome::Failed(format!("busy, and lazy detach failed: {e}")),
    }
}

fn verify(host: &dyn Host, t: &Target, r: &mut TeardownReport) {
    if let Some((inode, _)) = &t.pidns {
        match host.pid_namespace_members(*inode) {
            Ok(members) => {
                for (pid, zombie) in members {
                    if zombie {
                        // A dead process waiting for its parent: reap it if
                        // it is ours, otherwise it holds nothing but a pid.
                        match host.try_reap(pid) {
                            Ok(Some(_)) => continue,
                            Err(e) if errno(&e) == Some(ECHILD) => {
                                tracing::debug!(sandbox = %t.id, pid, "zombie of another parent");
                                continue;
                            }
                            _ => {}
                        }
                    }
                    r.leftovers.push(Leftover::Process { pid });
                }
            }
            Err(e) => tracing::warn!(sandbox = %t.id, "cannot scan /proc: {e}"),
        }
    }
    match mounts_under(host, &t.paths.dir) {
        Ok(m) => r
            .leftovers
            .extend(m.into_iter().map(|path| Leftover::Mount { path })),
        Err(e) => tracing::warn!(sandbox = %t.id, "cannot read mountinfo: {e}"),
    }
    r.leftovers.extend(
        host.cgroup_dirs(&cgroup_rel(&t.id))
            .into_iter()
            .map(|path| Leftover::Cgroup { path }),
    );
    for dir in [&t.paths.dir, &t.runtime_root.join(&t.id)] {
        if fs::symlink_metadata(dir).is_ok() {
            r.leftovers.push(Leftover::Dir { path: dir.clone() });
        }
    }
}

/// Tears down the sandboxes under `state_root` whose owning vexxy process
/// is dead (pid, start time and boot id recorded in the sandbox directory),
/// and runtime state left without a sandbox directory. Returns the ids
/// cleaned up completely; incomplete ones are logged.
pub fn reap_leftovers(state_root: &Path) -> Result<Vec<String>, SandboxError> {
    reap_leftovers_with_host(state_root, &RealHost::new())
}

/// [`reap_leftovers`] on a given [`Host`].
pub fn reap_leftovers_with_host(
    state_root: &Path,
    host: &dyn Host,
) -> Result<Vec<String>, SandboxError> {
    let state_err = |path: &Path| {
        let path = path.to_owned();
        move |source| SandboxError::StateRoot { path, source }
    };
    let me = host
        .current_process()
        .map_err(state_err(Path::new("/proc/self")))?;
    let mut reaped = Vec::new();
    let sandboxes = sandboxes_dir(state_root);
    let entries = match fs::read_dir(&sandboxes) {
        Ok(e) => e
            .collect::<Result<Vec<_>, _>>()
            .map_err(state_err(&sandboxes))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(state_err(&sandboxes)(e)),
    };
    for entry in entries {
        let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let dir = entry.path();
        let is_dir = fs::symlink_metadata(&dir)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if !valid_id(&id) || !is_dir {
            continue;
        }
        let owner = match read_record::<OwnerRecord>(&dir, OWNER_FILE) {
            Ok(Some(o)) if o.alive(host, &me) => continue,
            Ok(Some(o)) => Some(o),
            Ok(None) | Err(_) => {
                let age = fs::symlink_metadata(&dir)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .unwrap_or(Duration::ZERO);
                if age < OWNERLESS_GRACE {
                    tracing::debug!(sandbox = %id, "no owner record yet; leaving it");
                    continue;
                }
                None
            }
        };
        // Exclusive with the owner and with other reapers.
        let _lock = match host.lock(&dir.join("lock"), true, false) {
            Ok(Some(l)) => Some(l),
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(sandbox = %id, "cannot lock: {e}");
                None
            }
        };
        let init = read_record::<InitRecord>(&dir, INIT_FILE).ok().flatten();
        let pidns = init.and_then(|i| pin_if_alive(host, i));
        let (runtime, runtime_root) = match owner {
            Some(o) => (o.runtime, o.runtime_root),
            None => ("runc".into(), runtime_root(state_root)),
        };
        tracing::info!(sandbox = %id, "reaping the sandbox of a dead vexxy process");
        let mut target = Target {
            paths: crate::teardown::Paths::new(state_root, &id),
            id: id.clone(),
            state_root: state_root.to_owned(),
            runtime,
            runtime_root,
            init,
            exit: None,
            pidns,
        };
        if teardown(host, &mut target).is_clean() {
            reaped.push(id);
        }
    }
    // Runtime state without a sandbox directory: the directory is created
    // before and removed after the runtime state, so this is always a
    // leftover.
    let rt_root = runtime_root(state_root);
    if let Ok(entries) = fs::read_dir(&rt_root) {
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !valid_id(&id)
                || !entry.path().is_dir()
                || fs::symlink_metadata(sandboxes.join(&id)).is_ok()
            {
                continue;
            }
            tracing::info!(sandbox = %id, "reaping runtime state without a sandbox directory");
            let mut target = Target {
                paths: Paths::new(state_root, &id),
                id: id.clone(),
                state_root: state_root.to_owned(),
                runtime: "runc".into(),
                runtime_root: rt_root.clone(),
                init: None,
                exit: None,
                pidns: None,
            };
            if teardown(host, &mut target).is_clean() {
                reaped.push(id);
            }
        }
    }
    Ok(reaped)
}

/// Pins the init's PID namespace if the init still runs (checked after
/// opening, so a reused pid cannot slip in).
pub(crate) fn pin_if_alive(host: &dyn Host, init: InitRecord) -> Option<(u64, HostHandle)> {
    if !host.process_alive(init.pid, init.starttime) {
        return None;
    }
    let (inode, handle) = host.pin_pid_namespace(init.pid).ok()?;
    (inode == init.pidns_inode && host.process_alive(init.pid, init.starttime))
        .then_some((inode, handle))
}
