//! Whole runs (sandbox + exercise + eBPF tracer) of the real Debian test
//! images built by `scripts/build-test-images.sh`: what each image maps,
//! opens and calls, and what a hostile workload cannot do.
//!
//! Needs root, runc, eBPF and the test images: where one is missing a test
//! prints `SKIP` outside CI and fails in CI (`vexxy_testkit_host`'s gates).
//! The runs are serialised: two cores, and the uprobe test loads one of
//! them on purpose. What a test checks on the host is its own sandbox's.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use vexxy_model::{ExecutionProfile, RunOutcome, SocketAddress, SocketOp, WindowEnd, WindowMode};
use vexxy_run::{run, Phase, RunError, RunOutput, RunPlan, WindowPolicy};
use vexxy_sandbox::ProcessConfig;
use vexxy_testkit_host::{
    dir_entries, image_rootfs, mount_points, mounts_lost_since, require_trace, sandbox_leftovers,
    sandboxes_owned_by, tree_digest,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The image's own process, as `docker run IMAGE` starts it; `None` when
/// the gates say the test cannot run here (no trace, or no image `name`).
fn image_plan(name: &str) -> Option<RunPlan> {
    if !require_trace() {
        return None;
    }
    let dir = image_rootfs(name)?;
    let config_path = dir.parent().expect("image dir").join("config.json");
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(&config_path).expect("config.json")).expect("config json");
    let strings = |key: &str| -> Vec<String> {
        config[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let process = ProcessConfig::from_image_config(
        &strings("Entrypoint"),
        &strings("Cmd"),
        &strings("Env"),
        None,
        None,
    );
    let mut plan = RunPlan::new(&dir, name, process);
    plan.ports = config["ExposedPorts"]
        .as_object()
        .map(|o| vexxy_run::exposed_tcp_ports(o.keys().map(String::as_str)))
        .unwrap_or_default();
    plan.duration = Duration::from_secs(4);
    plan.timeout = Duration::from_secs(60);
    plan.state_root = PathBuf::from("/run/vexxy");
    Some(plan)
}

fn go(plan: &RunPlan) -> RunOutput {
    let out = run(plan, &|_| {}).unwrap_or_else(|e| panic!("run of {} failed: {e}", plan.image));
    assert!(
        out.teardown.is_clean(),
        "teardown left {}",
        out.teardown.leftover_summary()
    );
    assert!(
        out.profile.lost.is_empty(),
        "events lost: {:?}",
        out.profile.lost
    );
    out
}

fn mapped(p: &ExecutionProfile) -> Vec<&str> {
    p.loaded_libraries.iter().map(|l| l.path.as_str()).collect()
}

fn any_mapped(p: &ExecutionProfile, needle: &str) -> bool {
    mapped(p).iter().any(|l| file_name(l).starts_with(needle))
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

const IMAGE_FILTER_LIBS: [&str; 4] = ["libtiff.so", "libgd.so", "libheif.so", "libaom.so"];
const NGINX_CORE_LIBS: [&str; 4] = ["libssl.so", "libcrypto.so", "libz.so", "libpcre2-8.so"];

#[test]
fn nginx_without_image_filter_maps_its_core_libraries_only() {
    let Some(plan) = image_plan("nginx") else {
        return;
    };
    let _g = serial();
    let out = go(&plan);
    let p = &out.profile;
    for lib in NGINX_CORE_LIBS {
        assert!(any_mapped(p, lib), "{lib} not mapped: {:?}", mapped(p));
    }
    for lib in IMAGE_FILTER_LIBS {
        assert!(
            !any_mapped(p, lib),
            "{lib} mapped with image_filter disabled: {:?}",
            mapped(p)
        );
    }
    assert!(
        !mapped(p).iter().any(|l| l.contains("/nginx/modules/")),
        "{:?}",
        mapped(p)
    );
    // the server was exercised, and its own binary ran
    assert_eq!(p.exercise.ready_ports, vec![80]);
    assert!(p.exercise.http_requests >= 5, "{:?}", p.exercise);
    assert!(
        p.exercise.http_status.get(&200).copied().unwrap_or(0) >= 1,
        "{:?}",
        p.exercise
    );
    assert!(
        p.executables.iter().any(|e| e.path == "/usr/sbin/nginx"),
        "{:?}",
        p.executables
    );
    assert!(p.touched("/etc/nginx/nginx.conf"), "nginx.conf not opened");
    assert!(
        p.network
            .iter()
            .any(|n| n.op == SocketOp::Accept && n.ok > 0),
        "no accepted connection: {:?}",
        p.network
    );
    assert_eq!(p.run.outcome, RunOutcome::StoppedAtEnd);
}

#[test]
fn nginx_with_image_filter_maps_the_module_and_its_libraries() {
    let Some(plan) = image_plan("nginx-imagefilter") else {
        return;
    };
    let _g = serial();
    let out = go(&plan);
    let p = &out.profile;
    assert!(
        p.was_mapped("/usr/lib/nginx/modules/ngx_http_image_filter_module.so"),
        "module not mapped: {:?}",
        mapped(p)
    );
    for lib in IMAGE_FILTER_LIBS.iter().chain(&NGINX_CORE_LIBS) {
        assert!(any_mapped(p, lib), "{lib} not mapped: {:?}", mapped(p));
    }
}

#[test]
fn flask_app_opens_flask_and_requests_but_not_yaml() {
    let Some(mut plan) = image_plan("python-flask") else {
        return;
    };
    let _g = serial();
    plan.duration = Duration::from_secs(6);
    let out = go(&plan);
    let p = &out.profile;
    let opened = |pkg: &str| {
        let prefix = format!("/usr/lib/python3/dist-packages/{pkg}/");
        p.files
            .iter()
            .filter(|f| f.path.starts_with(&prefix))
            .count()
    };
    assert!(
        opened("flask") >= 3,
        "flask modules: {}; stderr: {}",
        opened("flask"),
        out.stderr_tail
    );
    assert!(
        opened("requests") >= 3,
        "requests modules: {}",
        opened("requests")
    );
    assert_eq!(opened("yaml"), 0, "yaml is never imported");
    assert!(
        p.executables
            .iter()
            .any(|e| e.path.starts_with("/usr/bin/python3")),
        "{:?}",
        p.executables
    );
    assert_eq!(
        p.exercise.ready_ports,
        vec![8080],
        "stderr: {}",
        out.stderr_tail
    );
    assert!(
        p.exercise.http_status.get(&200).copied().unwrap_or(0) >= 1,
        "{:?}",
        p.exercise
    );
}

/// A process outside the sandbox calling the same libc function of the
/// same file (the image's own libc, via chroot) as fast as it can.
struct BusyOutside(Child);

impl BusyOutside {
    fn start(rootfs: &Path) -> Self {
        let child = Command::new("chroot")
            .arg(rootfs)
            .args(["python3", "-c", "import os\nwhile True: os.getppid()"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the busy chroot process");
        Self(child)
    }
}

impl Drop for BusyOutside {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn uprobe_counts_calls_from_the_sandbox_only() {
    let Some(mut plan) = image_plan("python-flask") else {
        return;
    };
    let _g = serial();
    let calls = 2500;
    plan.process.override_cmd(vec![]);
    plan.process.args = vec![
        "python3".into(),
        "-c".into(),
        format!("import os\nfor _ in range({calls}): os.getppid()\n"),
    ];
    plan.process.entrypoint_len = 0;
    plan.ports.clear();
    plan.duration = Duration::from_secs(20);
    plan.uprobes = vec![
        // as the image's symlinks name it; the profile uses the canonical path
        ("/lib/x86_64-linux-gnu/libc.so.6".into(), "getppid".into()),
        ("/usr/lib/no-such-library.so.1".into(), "nothing".into()),
    ];
    let busy = BusyOutside::start(&plan.rootfs);
    std::thread::sleep(Duration::from_millis(300));
    let out = go(&plan);
    drop(busy);
    let p = &out.profile;
    assert_eq!(
        p.run.outcome,
        RunOutcome::Exited(0),
        "stderr: {}",
        out.stderr_tail
    );
    assert!(
        matches!(&p.tracer.uprobe_errors[..], [e] if e.contains("no-such-library.so.1:nothing")),
        "{:?}",
        p.tracer.uprobe_errors
    );
    assert_eq!(p.tracer.uprobes_attached, 1);
    let counted = p
        .calls("/usr/lib/x86_64-linux-gnu/libc.so.6", "getppid")
        .unwrap_or(0);
    // the interpreter itself may ask once or twice; the busy process
    // outside makes millions of calls in the same time
    assert!(
        (calls..calls + 50).contains(&counted),
        "getppid calls counted: {counted} (functions: {:?})",
        p.functions
    );
}

/// Moves `pid` into the root cgroup of every hierarchy (v1 controllers and
/// the unified one): what a workload that escaped its cgroups looks like.
/// Returns how many hierarchies accepted it.
fn move_to_root_cgroups(pid: u32) -> usize {
    let mut roots = dir_entries(Path::new("/sys/fs/cgroup"));
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    roots
        .iter()
        .map(|root| root.join("cgroup.procs"))
        .filter(|procs| procs.is_file() && fs::write(procs, pid.to_string()).is_ok())
        .count()
}

/// The host pid of a process whose command line contains `token`.
fn find_process(token: &str) -> Option<u32> {
    dir_entries(Path::new("/proc")).into_iter().find_map(|d| {
        let pid: u32 = d.file_name()?.to_str()?.parse().ok()?;
        let cmdline = fs::read(d.join("cmdline")).ok()?;
        (pid != std::process::id() && String::from_utf8_lossy(&cmdline).contains(token))
            .then_some(pid)
    })
}

#[test]
fn hostile_workload_is_traced_contained_and_torn_down() {
    let Some(mut plan) = image_plan("python-flask") else {
        return;
    };
    let _g = serial();
    let token = format!("vexxy-escape-{}", std::process::id());
    let (tree_before, entries) = tree_digest(&plan.rootfs);
    let mounts_before = mount_points();
    let outside = PathBuf::from("/").join(&token);
    let script = format!(
        r#"
import os, socket, sys, time
log = open("/tmp/{token}.log", "w")
def attempt(name, fn):
    try:
        fn(); log.write(name + " ok\n")
    except Exception as e:
        log.write(name + " failed " + repr(e) + "\n")
attempt("cgroup-self-move", lambda: open("/sys/fs/cgroup/pids/cgroup.procs", "w").write(str(os.getpid())))
attempt("write-outside", lambda: open("/{token}", "w").write("x"))
attempt("sysrq", lambda: open("/proc/sysrq-trigger", "w").write("h"))
attempt("kernel-param", lambda: open("/proc/sys/kernel/hostname", "w").write("pwned"))
for addr in [("10.255.255.1", 80), ("192.0.2.1", 443), ("1.1.1.1", 53)]:
    s = socket.socket(); s.settimeout(1)
    attempt("connect %s" % addr[0], lambda: s.connect(addr))
children = 0
for i in range(200):
    try:
        if os.fork() == 0:
            time.sleep(30); os._exit(0)
        children += 1
    except OSError:
        break
log.write("forked %d\n" % children); log.flush()
# wait for the test to move this process to another cgroup, then act again
time.sleep(3)
open("/etc/{token}-after-move", "w").write("still here")
try: open("/{token}-after-move-2")
except OSError: pass
time.sleep(60)
"#
    );
    plan.process.args = vec!["python3".into(), "-c".into(), script];
    plan.process.entrypoint_len = 0;
    plan.ports.clear();
    plan.limits.pids = 32;
    plan.duration = Duration::from_secs(8);

    // move the workload out of its cgroups while it runs
    let stop = Arc::new(AtomicBool::new(false));
    let mover = {
        let stop = Arc::clone(&stop);
        let token = token.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                if let Some(pid) = find_process(&format!("/tmp/{token}.log")) {
                    std::thread::sleep(Duration::from_millis(500));
                    return Some((pid, move_to_root_cgroups(pid)));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        })
    };
    let began = Instant::now();
    let out = go(&plan);
    stop.store(true, Ordering::Relaxed);
    let (pid, moved) = mover
        .join()
        .expect("mover thread")
        .expect("the workload was never seen on the host");
    assert!(moved >= 1, "could not move pid {pid} to another cgroup");
    let p = &out.profile;

    // traced before and after the move
    assert!(
        p.touched(&format!("/tmp/{token}.log")),
        "log open not traced"
    );
    assert!(
        p.touched(&format!("/etc/{token}-after-move")),
        "open after the cgroup move not traced"
    );
    assert!(
        p.failed_opens
            .iter()
            .any(|f| f.name.contains(&format!("{token}-after-move-2"))),
        "failed open after the move not traced: {:?}",
        p.failed_opens
    );
    // non-loopback connects were attempted, traced, and failed
    let connects: BTreeSet<String> = p
        .network
        .iter()
        .filter(|n| n.op == SocketOp::Connect && n.ok == 0 && n.failed > 0)
        .filter_map(|n| match &n.address {
            SocketAddress::Inet(ip, _) => Some(ip.to_string()),
            _ => None,
        })
        .collect();
    for ip in ["10.255.255.1", "192.0.2.1", "1.1.1.1"] {
        assert!(
            connects.contains(ip),
            "connect to {ip} not traced as failed: {:?}",
            p.network
        );
    }
    assert!(
        !p.network
            .iter()
            .any(|n| n.op == SocketOp::Connect && n.ok > 0),
        "a connect succeeded: {:?}",
        p.network
    );
    // the pids limit held: the whole process tree stayed under it
    let forks = p.processes.len();
    assert!(
        (10..=40).contains(&forks),
        "{forks} processes traced with a pids limit of 32"
    );
    // contained and torn down within the window, not the hard timeout
    assert_eq!(p.run.outcome, RunOutcome::StoppedAtEnd);
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "run took {:?}",
        began.elapsed()
    );
    assert!(
        find_process(&format!("/tmp/{token}.log")).is_none(),
        "the workload outlived teardown"
    );

    // the host is unchanged
    assert!(
        !outside.exists(),
        "{} written on the host",
        outside.display()
    );
    assert!(!Path::new(&format!("/etc/{token}-after-move")).exists());
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_ne!(hostname.trim(), "pwned");
    let (tree_after, _) = tree_digest(&plan.rootfs);
    assert_eq!(
        tree_before, tree_after,
        "the image rootfs ({entries} entries) changed"
    );
    // nothing of this run's sandbox is left, nothing else was unmounted
    let left = sandbox_leftovers(&plan.state_root, &out.teardown.id);
    assert!(left.is_empty(), "sandbox {} left {left:?}", out.teardown.id);
    let lost = mounts_lost_since(&mounts_before);
    assert!(lost.is_empty(), "mount points gone: {lost:?}");
}

#[test]
fn a_command_that_exits_ends_the_run_early() {
    let Some(mut plan) = image_plan("nginx") else {
        return;
    };
    let _g = serial();
    plan.process.args = vec![
        "sh".into(),
        "-c".into(),
        "cat /etc/os-release >/dev/null; exit 3".into(),
    ];
    plan.process.entrypoint_len = 0;
    plan.ports.clear();
    plan.duration = Duration::from_secs(30);
    let began = Instant::now();
    let out = go(&plan);
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    let p = &out.profile;
    assert_eq!(p.run.outcome, RunOutcome::Exited(3));
    let shells: Vec<&str> = p.executables.iter().map(|e| e.path.as_str()).collect();
    assert!(
        shells
            .iter()
            .any(|s| s.ends_with("/dash") || s.ends_with("/sh")),
        "{shells:?}"
    );
    assert!(shells.iter().any(|s| s.ends_with("/cat")), "{shells:?}");
    assert!(
        p.touched("/usr/lib/os-release"),
        "os-release (symlink target) not opened"
    );
}

/// The workload `sh -c SCRIPT` in the nginx image (dash and coreutils), no
/// ports: only the window decides when the run ends.
fn shell_plan(script: &str) -> Option<RunPlan> {
    let mut plan = image_plan("nginx")?;
    plan.process.args = vec!["sh".into(), "-c".into(), script.into()];
    plan.process.entrypoint_len = 0;
    plan.ports.clear();
    plan.duration = Duration::from_secs(30);
    plan.window = WindowPolicy::ADAPTIVE;
    Some(plan)
}

#[test]
fn a_workload_that_keeps_producing_evidence_keeps_the_window_open() {
    // a new file every second for 8 s, then nothing new (the loop's own
    // sleep was seen on its first round)
    let Some(busy) = shell_plan(
        "i=0; while [ $i -lt 8 ]; do : > /tmp/evidence-$i; sleep 1; i=$((i+1)); done; \
         : > /tmp/evidence-last; exec sleep 1000",
    ) else {
        return;
    };
    let Some(quiet) = shell_plan(": > /tmp/evidence-0; exec sleep 1000") else {
        return;
    };
    let _g = serial();
    let (quiet_period, minimum) = (vexxy_run::DEFAULT_QUIET, vexxy_run::DEFAULT_MINIMUM);
    let ms = |d: Duration| u64::try_from(d.as_millis()).expect("ms");

    let began = Instant::now();
    let q = go(&quiet).profile;
    let quiet_wall = began.elapsed();
    let began = Instant::now();
    let b = go(&busy).profile;
    let busy_wall = began.elapsed();
    println!(
        "quiet workload: {quiet_wall:?} wall, {:?}; busy workload: {busy_wall:?} wall, {:?}",
        q.run.window, b.run.window
    );

    let qw = q.run.window.expect("the window is recorded");
    let bw = b.run.window.expect("the window is recorded");
    for (name, p, w) in [("quiet", &q, &qw), ("busy", &b, &bw)] {
        assert_eq!(
            w.mode,
            WindowMode::Adaptive {
                quiet_ms: ms(quiet_period),
                minimum_ms: ms(minimum)
            },
            "{name}"
        );
        assert_eq!(w.ended, WindowEnd::Quiet, "{name}: {w:?}");
        assert_eq!(p.run.outcome, RunOutcome::StoppedAtEnd, "{name}");
        assert!(w.exercised_ms < 500, "{name}: nothing to exercise: {w:?}");
    }
    // the quiet one: everything new in its first moments, closed at the minimum
    let q_last = qw
        .last_evidence_ms
        .expect("the shell and its file were seen");
    assert!(q_last < 2_000, "{qw:?}");
    assert!(q.touched("/tmp/evidence-0"));
    assert!(
        q.run.duration_ms >= ms(minimum) && q.run.duration_ms < ms(minimum) + 1_500,
        "quiet run of {} ms: {qw:?}",
        q.run.duration_ms
    );
    // the busy one: the last new file after about 8 s, closed a quiet
    // period later
    let b_last = bw.last_evidence_ms.expect("evidence seen");
    assert!((7_500..10_000).contains(&b_last), "{bw:?}");
    for i in 0..8 {
        assert!(b.touched(&format!("/tmp/evidence-{i}")), "evidence-{i}");
    }
    assert!(b.touched("/tmp/evidence-last"));
    assert!(
        b.run.duration_ms >= b_last + ms(quiet_period)
            && b.run.duration_ms < b_last + ms(quiet_period) + 1_500,
        "busy run of {} ms: {bw:?}",
        b.run.duration_ms
    );
    assert!(
        b.run.duration_ms >= q.run.duration_ms + 4_000,
        "busy {} ms vs quiet {} ms",
        b.run.duration_ms,
        q.run.duration_ms
    );
    assert!(busy_wall > quiet_wall + Duration::from_secs(4));
}

#[test]
fn a_fixed_window_runs_its_whole_duration() {
    let Some(mut plan) = shell_plan(": > /tmp/evidence-0; exec sleep 1000") else {
        return;
    };
    let _g = serial();
    plan.window = WindowPolicy::Fixed;
    plan.duration = Duration::from_secs(8);
    let p = go(&plan).profile;
    let w = p.run.window.expect("the window is recorded");
    assert_eq!(w.mode, WindowMode::Fixed);
    assert_eq!(w.ended, WindowEnd::Maximum);
    assert!(
        (8_000..9_500).contains(&p.run.duration_ms),
        "{} ms",
        p.run.duration_ms
    );
    assert!(w.last_evidence_ms.is_some_and(|ms| ms < 2_000), "{w:?}");
    assert_eq!(p.run.outcome, RunOutcome::StoppedAtEnd);
}

/// Runs `plan`, cancels it `after` the run enters `phase`, and checks that
/// the run returns `Cancelled` promptly with its sandbox gone. Returns how
/// long the run took to return after the cancel.
fn cancel_in(mut plan: RunPlan, phase: Phase, after: Duration) -> Duration {
    plan.cancel = Arc::new(AtomicBool::new(false));
    let plan = &plan;
    let me = std::process::id();
    let (phases, entered) = std::sync::mpsc::channel();
    let (result, cancelled_at, sandbox) = std::thread::scope(|s| {
        let running = s.spawn(move || {
            let result = run(plan, &|p| {
                let _ = phases.send(p);
            });
            (result, Instant::now())
        });
        loop {
            match entered.recv_timeout(Duration::from_secs(60)) {
                Ok(p) if p == phase => break,
                Ok(_) => {}
                Err(e) => panic!("{phase:?} never began: {e}"),
            }
        }
        std::thread::sleep(after);
        let sandbox = sandboxes_owned_by(&plan.state_root, &[me]);
        assert_eq!(
            sandbox.len(),
            1,
            "one sandbox of this test runs: {sandbox:?}"
        );
        let cancelled_at = Instant::now();
        plan.cancel.store(true, Ordering::Relaxed);
        let (result, returned_at) = running.join().expect("run thread");
        (result, returned_at - cancelled_at, sandbox[0].clone())
    });
    assert!(
        matches!(result, Err(RunError::Cancelled)),
        "cancelled in {phase:?}: {:?}",
        result.map(|o| o.profile.run)
    );
    let left = sandbox_leftovers(&plan.state_root, &sandbox);
    assert!(
        left.is_empty(),
        "{phase:?}: sandbox {sandbox} left {left:?}"
    );
    assert!(
        sandboxes_owned_by(&plan.state_root, &[me]).is_empty(),
        "{phase:?}: a sandbox of this test is still there"
    );
    cancelled_at
}

#[test]
fn a_cancel_is_honoured_promptly_in_every_phase() {
    let Some(nginx) = image_plan("nginx") else {
        return;
    };
    let Some(flask) = image_plan("python-flask") else {
        return;
    };
    let _g = serial();
    let mut took = Vec::new();
    let sleeper = |mut plan: RunPlan| {
        plan.process.args = vec!["sleep".into(), "1000".into()];
        plan.process.entrypoint_len = 0;
        plan.ports.clear();
        plan.duration = Duration::from_secs(30);
        plan
    };

    // a port nothing listens on: the wait would last the whole window
    let mut plan = sleeper(nginx.clone());
    plan.ports = vec![8080];
    took.push((
        Phase::WaitingForPorts,
        cancel_in(plan, Phase::WaitingForPorts, Duration::from_millis(500)),
    ));

    // a server that takes 400 ms an answer: the probe would last the window
    let mut plan = flask.clone();
    plan.process.args = vec![
        "python3".into(),
        "-c".into(),
        r#"
import http.server, time
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.4)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"slow")
    do_HEAD = do_GET
    do_OPTIONS = do_GET
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Slow).serve_forever()
"#
        .into(),
    ];
    plan.process.entrypoint_len = 0;
    plan.ports = vec![8080];
    plan.duration = Duration::from_secs(30);
    took.push((
        Phase::Probing,
        cancel_in(plan, Phase::Probing, Duration::from_millis(700)),
    ));

    // a test script that would run for a minute
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("slow.sh");
    fs::write(&script, "sleep 60\n").expect("script");
    let mut plan = sleeper(nginx.clone());
    plan.test_script = Some(script);
    took.push((
        Phase::Script,
        cancel_in(plan, Phase::Script, Duration::from_millis(500)),
    ));

    // observing a fixed 30 s window
    let mut plan = sleeper(nginx);
    plan.window = WindowPolicy::Fixed;
    took.push((
        Phase::Observing,
        cancel_in(plan, Phase::Observing, Duration::from_millis(500)),
    ));

    println!("from cancel to return (teardown included): {took:?}");
    for (phase, d) in took {
        assert!(
            d < Duration::from_millis(1_500),
            "{phase:?}: returned {d:?} after the cancel"
        );
    }
}
