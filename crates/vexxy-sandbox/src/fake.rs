//! A recording fake [`Host`] simulating runc, mounts, processes and
//! cgroups, for testing the orchestration without root.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    ffi::OsString,
    fs, io,
    path::{Path, PathBuf},
    process::Output,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use crate::{
    host::{output, CgroupLayout, CommandSpec, Host, HostHandle, ProcInfo, ProcessIdentity},
    ExitStatus,
};

pub(crate) const ME: u32 = 100;
const HIERARCHIES: [&str; 3] = ["cpu", "memory", "pids"];

#[derive(Debug, Clone)]
pub(crate) struct FakeProc {
    pub(crate) starttime: u64,
    pub(crate) pidns: u64,
    pub(crate) exit: Option<ExitStatus>,
    pub(crate) our_child: bool,
}

#[derive(Debug)]
pub(crate) struct FakeState {
    pub(crate) euid: u32,
    pub(crate) filesystems: String,
    pub(crate) layout: CgroupLayout,
    pub(crate) log: Vec<String>,
    pub(crate) mounts: Vec<PathBuf>,
    pub(crate) procs: HashMap<u32, FakeProc>,
    /// container id → init pid
    pub(crate) containers: HashMap<String, u32>,
    /// cgroup dir → pids
    pub(crate) cgroups: BTreeMap<PathBuf, Vec<u32>>,
    pub(crate) next_pid: u32,
    /// Failure injection.
    pub(crate) create_error: Option<String>,
    pub(crate) busy_unmounts: HashMap<PathBuf, usize>,
    pub(crate) stuck_mounts: HashSet<PathBuf>,
    pub(crate) runtime_kill_ineffective: bool,
    pub(crate) delete_leaves_cgroups: bool,
    pub(crate) busy_locks: HashSet<PathBuf>,
    /// Status the init exits with when started (`None`: it keeps running).
    pub(crate) exit_on_start: Option<ExitStatus>,
}

#[derive(Debug)]
pub(crate) struct FakeHost {
    state: Mutex<FakeState>,
}

fn errno(n: i32) -> io::Error {
    io::Error::from_raw_os_error(n)
}

impl FakeHost {
    pub(crate) fn new() -> Self {
        let mut procs = HashMap::new();
        procs.insert(
            ME,
            FakeProc {
                starttime: 1,
                pidns: 1,
                exit: None,
                our_child: false,
            },
        );
        Self {
            state: Mutex::new(FakeState {
                euid: 0,
                filesystems: "nodev\ttmpfs\nnodev\toverlay\n".into(),
                layout: CgroupLayout {
                    v1_controllers: HIERARCHIES.iter().map(|s| s.to_string()).collect(),
                    v2_controllers: Vec::new(),
                    memsw: true,
                    unified_only: false,
                },
                log: Vec::new(),
                mounts: vec![PathBuf::from("/")],
                procs,
                containers: HashMap::new(),
                cgroups: BTreeMap::new(),
                next_pid: 1000,
                create_error: None,
                busy_unmounts: HashMap::new(),
                stuck_mounts: HashSet::new(),
                runtime_kill_ineffective: false,
                delete_leaves_cgroups: false,
                busy_locks: HashSet::new(),
                exit_on_start: None,
            }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, FakeState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Position of the first log entry starting with `prefix`.
    pub(crate) fn pos(&self, prefix: &str) -> Option<usize> {
        self.state().log.iter().position(|l| l.starts_with(prefix))
    }

    /// A process that is not ours (for owner records).
    pub(crate) fn add_process(&self, pid: u32, starttime: u64) {
        self.state().procs.insert(
            pid,
            FakeProc {
                starttime,
                pidns: 1,
                exit: None,
                our_child: false,
            },
        );
    }

    /// Simulates a container left behind by a dead process: runtime state,
    /// running init (not our child), cgroups.
    pub(crate) fn add_container(&self, runtime_root: &Path, id: &str) -> u32 {
        let mut s = self.state();
        let pid = s.next_pid;
        s.next_pid += 1;
        s.procs.insert(
            pid,
            FakeProc {
                starttime: 5000 + u64::from(pid),
                pidns: 9000 + u64::from(pid),
                exit: None,
                our_child: false,
            },
        );
        s.containers.insert(id.to_owned(), pid);
        for h in HIERARCHIES {
            s.cgroups.insert(cg(h, "vexxy"), Vec::new());
            s.cgroups.insert(cg(h, &format!("vexxy/{id}")), vec![pid]);
        }
        drop(s);
        let _ = fs::create_dir_all(runtime_root.join(id));
        pid
    }

    fn kill_locked(s: &mut FakeState, pid: u32) {
        if let Some(p) = s.procs.get_mut(&pid) {
            if p.exit.is_none() {
                p.exit = Some(ExitStatus::Signaled(9));
            }
        }
        for procs in s.cgroups.values_mut() {
            procs.retain(|p| *p != pid);
        }
    }

    fn runtime(&self, args: &[String], cmd: &CommandSpec) -> io::Result<Output> {
        let mut s = self.state();
        let mut i = 0;
        let mut runtime_root = PathBuf::new();
        let mut log = None;
        while i < args.len() && args[i].starts_with("--") {
            match args[i].as_str() {
                "--root" => runtime_root = PathBuf::from(&args[i + 1]),
                "--log" => log = Some(PathBuf::from(&args[i + 1])),
                _ => {}
            }
            i += 2;
        }
        let rest = &args[i.min(args.len())..];
        let sub = rest.first().map(String::as_str).unwrap_or("");
        let id = rest.last().cloned().unwrap_or_default();
        match sub {
            "create" => {
                s.log.push(format!("runtime create {id}"));
                if let Some(err) = s.create_error.clone() {
                    if let Some(log) = log {
                        let line = serde_json::json!({"level": "error", "msg": err});
                        let _ = fs::write(log, format!("{line}\n"));
                    }
                    return Ok(output(1, "", ""));
                }
                // the runtime reads the bundle: it must be there
                let bundle = rest
                    .iter()
                    .position(|a| a == "--bundle")
                    .map(|p| PathBuf::from(&rest[p + 1]))
                    .unwrap_or_default();
                if !bundle.join("config.json").is_file() {
                    return Ok(output(1, "", "no config.json"));
                }
                let pid_file = rest
                    .iter()
                    .position(|a| a == "--pid-file")
                    .map(|p| PathBuf::from(&rest[p + 1]))
                    .unwrap_or_default();
                assert!(
                    cmd.stdout.is_some() && cmd.stderr.is_some(),
                    "create output must go to files"
                );
                let pid = s.next_pid;
                s.next_pid += 1;
                s.procs.insert(
                    pid,
                    FakeProc {
                        starttime: 5000 + u64::from(pid),
                        pidns: 9000 + u64::from(pid),
                        exit: None,
                        our_child: true,
                    },
                );
                s.containers.insert(id.clone(), pid);
                for h in HIERARCHIES {
                    s.cgroups.insert(cg(h, "vexxy"), Vec::new());
                    s.cgroups.insert(cg(h, &format!("vexxy/{id}")), vec![pid]);
                }
                fs::create_dir_all(runtime_root.join(&id))?;
                fs::write(pid_file, pid.to_string())?;
                Ok(output(0, "", ""))
            }
            "start" => {
                s.log.push(format!("runtime start {id}"));
                let Some(&pid) = s.containers.get(&id) else {
                    return Ok(output(1, "", "container does not exist"));
                };
                if let Some(status) = s.exit_on_start {
                    if let Some(p) = s.procs.get_mut(&pid) {
                        p.exit = Some(status);
                    }
                    for procs in s.cgroups.values_mut() {
                        procs.retain(|p| *p != pid);
                    }
                }
                Ok(output(0, "", ""))
            }
            "kill" => {
                s.log.push(format!(
                    "runtime kill {}",
                    rest.get(2).cloned().unwrap_or_default()
                ));
                let id = rest.get(2).cloned().unwrap_or_default();
                let Some(&pid) = s.containers.get(&id) else {
                    return Ok(output(1, "", "container does not exist"));
                };
                if !s.runtime_kill_ineffective {
                    Self::kill_locked(&mut s, pid);
                }
                Ok(output(0, "", ""))
            }
            "delete" => {
                s.log.push(format!("runtime delete {id}"));
                let Some(pid) = s.containers.remove(&id) else {
                    return Ok(output(1, "", "container does not exist"));
                };
                Self::kill_locked(&mut s, pid);
                if !s.delete_leaves_cgroups {
                    for h in HIERARCHIES {
                        s.cgroups.remove(&cg(h, &format!("vexxy/{id}")));
                    }
                }
                let _ = fs::remove_dir_all(runtime_root.join(&id));
                Ok(output(0, "", ""))
            }
            other => Ok(output(
                1,
                "",
                &format!("fake runtime: unknown command {other}"),
            )),
        }
    }
}

fn cg(h: &str, rel: &str) -> PathBuf {
    Path::new("/fake/cgroup").join(h).join(rel)
}

impl Host for FakeHost {
    fn effective_uid(&self) -> u32 {
        self.state().euid
    }

    fn filesystems(&self) -> io::Result<String> {
        Ok(self.state().filesystems.clone())
    }

    fn cgroup_layout(&self) -> CgroupLayout {
        self.state().layout.clone()
    }

    fn nofile_hard_limit(&self) -> Option<u64> {
        Some(20000)
    }

    fn find_program(&self, program: &Path) -> Option<PathBuf> {
        (program == Path::new("runc")).then(|| PathBuf::from("/usr/bin/runc"))
    }

    fn mount_tmpfs(&self, target: &Path, size: u64) -> io::Result<()> {
        let mut s = self.state();
        s.log
            .push(format!("mount tmpfs {} {size}", target.display()));
        s.mounts.push(target.to_owned());
        Ok(())
    }

    fn mount_overlay(
        &self,
        lower: &Path,
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> io::Result<()> {
        assert!(upper.is_dir() && work.is_dir() && target.is_dir() && lower.is_dir());
        let mut s = self.state();
        s.log.push(format!("mount overlay {}", target.display()));
        s.mounts.push(target.to_owned());
        Ok(())
    }

    fn bind_mount(&self, source: &Path, target: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.log.push(format!(
            "mount bind {} {}",
            source.display(),
            target.display()
        ));
        s.mounts.push(target.to_owned());
        Ok(())
    }

    fn unmount(&self, target: &Path, detach: bool) -> io::Result<()> {
        let mut s = self.state();
        s.log.push(format!(
            "unmount{} {}",
            if detach { "-detach" } else { "" },
            target.display()
        ));
        let Some(pos) = s.mounts.iter().rposition(|m| m == target) else {
            return Err(errno(22));
        };
        if s.stuck_mounts.contains(target) {
            return Err(errno(if detach { 1 } else { 16 }));
        }
        if !detach {
            if let Some(n) = s.busy_unmounts.get_mut(target) {
                if *n > 0 {
                    *n -= 1;
                    return Err(errno(16));
                }
            }
        }
        s.mounts.remove(pos);
        Ok(())
    }

    fn mount_points(&self) -> io::Result<Vec<PathBuf>> {
        Ok(self.state().mounts.clone())
    }

    fn run(&self, cmd: &CommandSpec) -> io::Result<Output> {
        let args: Vec<String> = cmd
            .args
            .iter()
            .map(|a: &OsString| a.to_string_lossy().into_owned())
            .collect();
        if args == ["--version"] {
            return Ok(output(0, "runc version fake\n", ""));
        }
        self.runtime(&args, cmd)
    }

    fn current_process(&self) -> io::Result<ProcessIdentity> {
        Ok(ProcessIdentity {
            pid: ME,
            starttime: 1,
            boot_id: "boot".into(),
        })
    }

    fn process_info(&self, pid: u32) -> io::Result<Option<ProcInfo>> {
        Ok(self.state().procs.get(&pid).map(|p| ProcInfo {
            starttime: p.starttime,
            zombie: p.exit.is_some(),
        }))
    }

    fn pid_namespace_inode(&self, pid: u32) -> io::Result<u64> {
        self.state()
            .procs
            .get(&pid)
            .map(|p| p.pidns)
            .ok_or_else(|| errno(2))
    }

    fn pin_pid_namespace(&self, pid: u32) -> io::Result<(u64, HostHandle)> {
        let ino = self.pid_namespace_inode(pid)?;
        self.state().log.push(format!("pin pidns {pid}"));
        Ok((ino, Box::new(())))
    }

    fn pid_namespace_members(&self, inode: u64) -> io::Result<Vec<(u32, bool)>> {
        Ok(self
            .state()
            .procs
            .iter()
            .filter(|(_, p)| p.pidns == inode)
            .map(|(pid, p)| (*pid, p.exit.is_some()))
            .collect())
    }

    fn kill(&self, pid: u32) -> io::Result<()> {
        let mut s = self.state();
        s.log.push(format!("kill {pid}"));
        if !s.procs.contains_key(&pid) {
            return Err(errno(3));
        }
        Self::kill_locked(&mut s, pid);
        Ok(())
    }

    fn try_reap(&self, pid: u32) -> io::Result<Option<ExitStatus>> {
        let mut s = self.state();
        match s.procs.get(&pid) {
            Some(p) if p.our_child => match p.exit {
                Some(status) => {
                    s.procs.remove(&pid);
                    s.log.push(format!("reap {pid}"));
                    Ok(Some(status))
                }
                None => Ok(None),
            },
            _ => Err(errno(10)),
        }
    }

    fn wait_for_exit(&self, pid: u32, _timeout: Duration) -> io::Result<bool> {
        Ok(self
            .state()
            .procs
            .get(&pid)
            .is_none_or(|p| p.exit.is_some()))
    }

    fn become_subreaper(&self) -> io::Result<()> {
        self.state().log.push("subreaper".into());
        Ok(())
    }

    fn cgroup_dirs(&self, rel: &Path) -> Vec<PathBuf> {
        let s = self.state();
        HIERARCHIES
            .iter()
            .map(|h| Path::new("/fake/cgroup").join(h).join(rel))
            .filter(|d| s.cgroups.contains_key(d))
            .collect()
    }

    fn cgroup_procs(&self, dir: &Path) -> io::Result<Vec<u32>> {
        self.state()
            .cgroups
            .get(dir)
            .cloned()
            .ok_or_else(|| errno(2))
    }

    fn remove_cgroup(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state();
        let Some(procs) = s.cgroups.get(dir) else {
            return Err(errno(2));
        };
        let has_children = s.cgroups.keys().any(|k| k != dir && k.starts_with(dir));
        if !procs.is_empty() || has_children {
            return Err(errno(16));
        }
        s.cgroups.remove(dir);
        s.log.push(format!("rmcgroup {}", dir.display()));
        Ok(())
    }

    fn lock(&self, path: &Path, exclusive: bool, wait: bool) -> io::Result<Option<HostHandle>> {
        let s = self.state();
        if exclusive && !wait && s.busy_locks.contains(path) {
            return Ok(None);
        }
        Ok(Some(Box::new(())))
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Instant};

    use super::*;
    use crate::{
        owner::{write_record, OwnerRecord, OWNER_FILE},
        reap_leftovers_with_host, Leftover, ProcessConfig, Sandbox, SandboxConfig, SandboxError,
        StepOutcome,
    };

    struct Fixture {
        _root: tempfile::TempDir,
        rootfs: PathBuf,
        state_root: PathBuf,
        host: Arc<FakeHost>,
    }

    fn fixture() -> Fixture {
        let root = tempfile::tempdir().expect("tmp");
        let rootfs = root.path().join("rootfs");
        fs::create_dir_all(rootfs.join("etc")).expect("etc");
        fs::write(rootfs.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("passwd");
        let state_root = root.path().join("state");
        Fixture {
            rootfs,
            state_root,
            host: Arc::new(FakeHost::new()),
            _root: root,
        }
    }

    impl Fixture {
        fn config(&self) -> SandboxConfig {
            let mut c = SandboxConfig::new(
                &self.rootfs,
                ProcessConfig::from_image_config(&[], &["true".into()], &[], None, None),
            );
            c.state_root = self.state_root.clone();
            c
        }

        fn create(&self) -> Result<Sandbox, SandboxError> {
            Sandbox::create_with_host(self.config(), self.host.clone())
        }

        fn sandbox_dirs(&self) -> Vec<PathBuf> {
            fs::read_dir(self.state_root.join("sandboxes"))
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        }
    }

    #[test]
    fn create_sets_up_in_order_and_writes_records() {
        let f = fixture();
        let sb = f.create().expect("create");
        let dir = f.state_root.join("sandboxes").join(sb.id());
        let h = &f.host;
        let order = [
            "subreaper",
            "mount tmpfs",
            "mount overlay",
            "runtime create",
            "pin pidns",
            "mount bind /proc/",
        ];
        let pos: Vec<usize> = order
            .iter()
            .map(|p| h.pos(p).unwrap_or_else(|| panic!("{p} missing")))
            .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{:?}", h.state().log);
        assert!(dir.join("owner.json").is_file());
        assert!(dir.join("init.json").is_file());
        assert!(dir.join("config.json").is_file());
        assert_eq!(sb.upper_dir(), dir.join("scratch/upper"));
        assert_eq!(sb.net_namespace_path(), dir.join("netns"));
        assert_eq!(sb.pid_namespace_inode(), 9000 + u64::from(sb.init_pid()));
        assert_eq!(sb.cgroup_path(), format!("/vexxy/{}", sb.id()));
        let cfg: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("config.json")).expect("read"))
                .expect("json");
        assert_eq!(cfg["linux"]["cgroupsPath"], format!("/vexxy/{}", sb.id()));
        sb.teardown().expect("teardown");
    }

    #[test]
    fn teardown_order_and_verification() {
        let f = fixture();
        let mut sb = f.create().expect("create");
        sb.start().expect("start");
        let id = sb.id().to_owned();
        let pid = sb.init_pid();
        let dir = f.state_root.join("sandboxes").join(&id);
        let report = sb.teardown().expect("clean teardown");
        let h = &f.host;
        let order = [
            format!("runtime kill {id}"),
            format!("runtime delete {id}"),
            format!("unmount {}", dir.join("netns").display()),
            format!("unmount {}", dir.join("rootfs").display()),
            format!("unmount {}", dir.join("scratch").display()),
        ];
        let pos: Vec<usize> = order
            .iter()
            .map(|p| {
                h.pos(p)
                    .unwrap_or_else(|| panic!("{p} missing: {:?}", h.state().log))
            })
            .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{:?}", h.state().log);
        assert!(h.pos(&format!("reap {pid}")).expect("reaped") < pos[1]);
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.init_exit, Some(ExitStatus::Signaled(9)));
        assert!(!dir.exists());
        assert!(!f.state_root.join("runtime").join(&id).exists());
        assert!(h.state().cgroups.is_empty(), "{:?}", h.state().cgroups);
        assert_eq!(h.state().mounts, vec![PathBuf::from("/")]);
        for name in [
            "runtime kill",
            "runtime delete",
            "remove sandbox dir",
            "verify",
        ] {
            let step = report.step(name).unwrap_or_else(|| panic!("{name}"));
            assert!(matches!(step.outcome, StepOutcome::Done(_)), "{step:?}");
        }
    }

    #[test]
    fn teardown_is_idempotent() {
        let f = fixture();
        let sb = f.create().expect("create");
        let id = sb.id().to_owned();
        let mut target = crate::teardown::Target {
            id: id.clone(),
            paths: crate::teardown::Paths::new(&f.state_root, &id),
            state_root: f.state_root.clone(),
            runtime: "runc".into(),
            runtime_root: f.state_root.join("runtime"),
            init: sb.target.init,
            exit: None,
            pidns: None,
        };
        let first = crate::teardown::teardown(f.host.as_ref(), &mut target);
        assert!(first.is_clean(), "{first:?}");
        let log_len = f.host.state().log.len();
        let second = crate::teardown::teardown(f.host.as_ref(), &mut target);
        assert!(second.is_clean(), "{second:?}");
        for step in &second.steps {
            if step.name != "verify" {
                assert!(matches!(step.outcome, StepOutcome::Skipped(_)), "{step:?}");
            }
        }
        // the second run changed nothing on the host
        assert_eq!(
            f.host.state().log.len(),
            log_len,
            "{:?}",
            f.host.state().log
        );
        // and the sandbox's own teardown afterwards is clean too
        sb.teardown().expect("third");
    }

    #[test]
    fn drop_tears_down() {
        let f = fixture();
        let sb = f.create().expect("create");
        let dir = f.state_root.join("sandboxes").join(sb.id());
        drop(sb);
        assert!(!dir.exists());
        assert_eq!(f.host.state().mounts, vec![PathBuf::from("/")]);
    }

    #[test]
    fn failed_create_cleans_up_and_names_the_cause() {
        let f = fixture();
        f.host.state().create_error = Some("exec: \"nope\": executable file not found".into());
        let e = f.create().expect_err("create fails");
        let msg = e.to_string();
        assert!(msg.contains("executable file not found"), "{msg}");
        assert!(msg.contains("create"), "{msg}");
        assert!(f.sandbox_dirs().is_empty());
        assert_eq!(f.host.state().mounts, vec![PathBuf::from("/")]);
        assert!(f.host.pos("unmount").is_some());
    }

    #[test]
    fn busy_mount_is_lazily_detached() {
        let f = fixture();
        let sb = f.create().expect("create");
        let rootfs = f.state_root.join("sandboxes").join(sb.id()).join("rootfs");
        f.host.state().busy_unmounts.insert(rootfs.clone(), 100);
        let report = sb.teardown().expect("clean");
        let step = report
            .step(&format!("unmount {}", rootfs.display()))
            .expect("step");
        assert_eq!(
            step.outcome,
            StepOutcome::Done("busy: lazily detached".into())
        );
        assert!(f
            .host
            .pos(&format!("unmount-detach {}", rootfs.display()))
            .is_some());
    }

    #[test]
    fn stuck_mount_is_reported_and_never_crossed() {
        let f = fixture();
        let sb = f.create().expect("create");
        let dir = f.state_root.join("sandboxes").join(sb.id());
        let scratch = dir.join("scratch");
        f.host.state().stuck_mounts.insert(scratch.clone());
        // a file "inside the mount" must survive
        fs::write(scratch.join("keep"), "x").expect("write");
        let e = sb.teardown().expect_err("incomplete");
        let SandboxError::TeardownIncomplete { report } = e else {
            panic!("{e}")
        };
        assert!(report.leftovers.contains(&Leftover::Mount {
            path: scratch.clone()
        }));
        assert!(report
            .leftovers
            .contains(&Leftover::Dir { path: dir.clone() }));
        assert!(scratch.join("keep").is_file());
        assert!(matches!(
            report.step("remove sandbox dir").map(|s| &s.outcome),
            Some(StepOutcome::Failed(_))
        ));
    }

    #[test]
    fn strays_in_the_cgroup_are_killed_and_cgroups_removed() {
        let f = fixture();
        let sb = f.create().expect("create");
        let id = sb.id().to_owned();
        {
            let mut s = f.host.state();
            s.runtime_kill_ineffective = true;
            s.delete_leaves_cgroups = true;
            // a process that escaped the init's death
            s.procs.insert(
                4242,
                FakeProc {
                    starttime: 1,
                    pidns: 77,
                    exit: None,
                    our_child: false,
                },
            );
            s.cgroups
                .get_mut(&cg("pids", &format!("vexxy/{id}")))
                .expect("cg")
                .push(4242);
        }
        let start = Instant::now();
        let report = sb.teardown().expect("clean");
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(f.host.pos("kill 4242").is_some());
        assert!(f.host.state().cgroups.is_empty());
        assert!(matches!(
            report.step("cgroup remove").map(|s| &s.outcome),
            Some(StepOutcome::Done(_))
        ));
    }

    #[test]
    fn leftover_process_in_namespace_fails_verification() {
        let f = fixture();
        let sb = f.create().expect("create");
        let ns = sb.pid_namespace_inode();
        f.host.state().procs.insert(
            4343,
            FakeProc {
                starttime: 1,
                pidns: ns,
                exit: None,
                our_child: false,
            },
        );
        let e = sb.teardown().expect_err("leftover");
        let SandboxError::TeardownIncomplete { report } = e else {
            panic!("{e}")
        };
        assert_eq!(report.leftovers, vec![Leftover::Process { pid: 4343 }]);
        assert!(e_msg(&report).contains("process 4343"));
    }

    fn e_msg(r: &crate::TeardownReport) -> String {
        SandboxError::TeardownIncomplete {
            report: Box::new(r.clone()),
        }
        .to_string()
    }

    #[test]
    fn wait_exit_collects_status() {
        let f = fixture();
        f.host.state().exit_on_start = Some(ExitStatus::Exited(3));
        let mut sb = f.create().expect("create");
        sb.start().expect("start");
        assert!(sb.start().is_err(), "second start");
        let st = sb
            .wait_exit(Instant::now() + Duration::from_secs(1))
            .expect("wait");
        assert_eq!(st, Some(ExitStatus::Exited(3)));
        assert_eq!(
            sb.wait_exit(Instant::now()).expect("again"),
            Some(ExitStatus::Exited(3))
        );
        let report = sb.teardown().expect("teardown");
        assert_eq!(report.init_exit, Some(ExitStatus::Exited(3)));
    }

    #[test]
    fn wait_exit_times_out_while_running() {
        let f = fixture();
        let mut sb = f.create().expect("create");
        sb.start().expect("start");
        assert_eq!(sb.wait_exit(Instant::now()).expect("wait"), None);
        sb.teardown().expect("teardown");
    }

    fn plant(f: &Fixture, id: &str, owner_pid: u32, owner_start: u64) -> (PathBuf, u32) {
        let dir = f.state_root.join("sandboxes").join(id);
        fs::create_dir_all(dir.join("scratch")).expect("dir");
        let rec = OwnerRecord {
            pid: owner_pid,
            starttime: owner_start,
            boot_id: "boot".into(),
            runtime: "runc".into(),
            runtime_root: f.state_root.join("runtime"),
        };
        write_record(&dir, OWNER_FILE, &rec).expect("owner");
        let pid = f.host.add_container(&f.state_root.join("runtime"), id);
        let mut s = f.host.state();
        s.mounts.push(dir.join("scratch"));
        s.mounts.push(dir.join("rootfs"));
        (dir, pid)
    }

    #[test]
    fn reaping_removes_only_dead_owners_sandboxes() {
        let f = fixture();
        f.host.add_process(500, 42);
        let (dead_dir, dead_pid) = plant(&f, "vxdead", 501, 7); // owner pid not running
        let (reused_dir, _) = plant(&f, "vxreused", 500, 41); // pid reused by another process
        let (alive_dir, _) = plant(&f, "vxalive", 500, 42); // owner alive
        let mut reaped = reap_leftovers_with_host(&f.state_root, f.host.as_ref()).expect("reap");
        reaped.sort();
        assert_eq!(reaped, vec!["vxdead".to_string(), "vxreused".to_string()]);
        assert!(!dead_dir.exists() && !reused_dir.exists());
        assert!(alive_dir.exists());
        assert!(!f.state_root.join("runtime/vxdead").exists());
        assert!(f.state_root.join("runtime/vxalive").exists());
        let s = f.host.state();
        assert!(!s.mounts.iter().any(|m| m.starts_with(&dead_dir)));
        assert!(s.mounts.iter().any(|m| m.starts_with(&alive_dir)));
        assert!(!s.cgroups.keys().any(|k| k.ends_with("vxdead")));
        assert!(s.cgroups.keys().any(|k| k.ends_with("vxalive")));
        assert!(s.procs.get(&dead_pid).is_none_or(|p| p.exit.is_some()));
    }

    #[test]
    fn reaping_respects_locks_and_young_ownerless_dirs() {
        let f = fixture();
        let (locked, _) = plant(&f, "vxlocked", 501, 7);
        f.host.state().busy_locks.insert(locked.join("lock"));
        let young = f.state_root.join("sandboxes/vxyoung");
        fs::create_dir_all(&young).expect("young");
        let old = f.state_root.join("sandboxes/vxold");
        fs::create_dir_all(&old).expect("old");
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        fs::File::open(&old)
            .and_then(|d| d.set_modified(an_hour_ago))
            .expect("age");
        fs::create_dir_all(f.state_root.join("sandboxes/.hidden")).expect("hidden");
        let reaped = reap_leftovers_with_host(&f.state_root, f.host.as_ref()).expect("reap");
        assert_eq!(reaped, vec!["vxold".to_string()]);
        assert!(locked.exists() && young.exists() && !old.exists());
    }

    #[test]
    fn orphan_runtime_state_is_reaped() {
        let f = fixture();
        fs::create_dir_all(f.state_root.join("sandboxes")).expect("dir");
        f.host
            .add_container(&f.state_root.join("runtime"), "vxorphan");
        let reaped = reap_leftovers_with_host(&f.state_root, f.host.as_ref()).expect("reap");
        assert_eq!(reaped, vec!["vxorphan".to_string()]);
        assert!(!f.state_root.join("runtime/vxorphan").exists());
        assert!(f.host.state().cgroups.is_empty());
        // idempotent
        assert!(reap_leftovers_with_host(&f.state_root, f.host.as_ref())
            .expect("again")
            .is_empty());
    }

    #[test]
    fn create_reaps_leftovers_first() {
        let f = fixture();
        let (dead_dir, _) = plant(&f, "vxcrashed", 501, 7);
        let sb = f.create().expect("create");
        assert!(!dead_dir.exists());
        assert!(
            f.host.pos("runtime delete vxcrashed").expect("reaped")
                < f.host.pos("runtime create").expect("created")
        );
        sb.teardown().expect("teardown");
    }

    #[test]
    fn bad_user_is_bad_input_and_leaves_nothing() {
        let f = fixture();
        let mut c = f.config();
        c.process.user = Some("nobody".into());
        let e = Sandbox::create_with_host(c, f.host.clone()).expect_err("user");
        assert!(e.is_bad_input(), "{e}");
        assert!(f.sandbox_dirs().is_empty());
    }
}
