//! Nothing left behind by concurrent analyses that are stopped: the real
//! binary (`vexxy serve`, `vexxy worker`) on SQLite, the real test images
//! in the real sandbox with the real tracer.
//!
//! - Three analyses run at once in one `vexxy serve`, each held in another
//!   phase of its traced run (observing, waiting for a port, running a
//!   test script), are cancelled through the API one after another: each
//!   sandbox goes soon after its cancel (the time is printed per phase),
//!   and at the end nothing they made is left: no sandbox directory under
//!   the state root, no mount beneath it, no runc container in its
//!   runtime root, no cgroup, no process of the workloads or of the test
//!   script, and no BPF program held by the server or still loaded in the
//!   kernel.
//! - A `vexxy worker` running two analyses is killed with SIGKILL: the
//!   BPF programs it held vanish from the kernel with it, its sandboxes
//!   outlive it, and the next worker started on the same state root
//!   reclaims them: afterwards the state root, runc's root and the
//!   cgroups hold nothing of them.
//!
//! Needs root, runc, eBPF and the nginx, nginx-imagefilter and
//! python-flask test images: where one is missing a test prints `SKIP`
//! outside CI and fails in CI. A test looks only at what it created: the
//! sandboxes whose owner record names a process it started, and the BPF
//! programs those processes held (other analyses may run on the host).
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    path::Path,
    process::{Command as StdCommand, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

mod common;
use common::{admin, call, get, post, serve, vexxy, Proc};

/// Where the service's sandboxes keep their state (`vexxy_run::default_state_root`).
const STATE_ROOT: &str = "/run/vexxy";

/// The tests of this file run one at a time: each runs several traced
/// analyses on two cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Declared before a test's processes, so dropped after them: when the
/// test fails (its processes killed), the sandboxes they left are torn
/// down as the next vexxy process would, so that a failure leaves no
/// workload running on the host.
struct ReapOnFailure;

impl Drop for ReapOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let left =
                vexxy_analyze::reap_leftovers(&vexxy_analyze::Caches::at(std::env::temp_dir()));
            eprintln!(
                "after the failure: reaped {:?}, errors {:?}",
                left.sandboxes, left.errors
            );
        }
    }
}

/// A sandbox a test saw: its id and its container init (pid, start time).
#[derive(Clone, Debug)]
struct Seen {
    id: String,
    init: (u32, u64),
}

/// The sandboxes of the vexxy processes `pids` whose workload has started
/// (an `init.json` beside the owner record).
fn started_sandboxes(pids: &[u32]) -> Vec<Seen> {
    vexxy_testkit_host::sandboxes_owned_by(Path::new(STATE_ROOT), pids)
        .into_iter()
        .filter_map(|id| {
            let bytes = std::fs::read(
                Path::new(STATE_ROOT)
                    .join("sandboxes")
                    .join(&id)
                    .join("init.json"),
            )
            .ok()?;
            let init: Value = serde_json::from_slice(&bytes).ok()?;
            let pid = u32::try_from(init["pid"].as_u64()?).ok()?;
            Some(Seen {
                id,
                init: (pid, init["starttime"].as_u64()?),
            })
        })
        .collect()
}

/// Whether the process `pid` with this start time (field 22 of
/// `/proc/<pid>/stat`) still runs (a zombie does not).
fn process_runs(pid: u32, starttime: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields.first() != Some(&"Z") && fields.get(19).and_then(|s| s.parse().ok()) == Some(starttime)
}

/// The containers runc knows in the sandboxes' runtime root.
fn runc_containers() -> BTreeSet<String> {
    let out = StdCommand::new("runc")
        .args(["--root", &format!("{STATE_ROOT}/runtime"), "list", "-q"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "runc list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What is left of `sandboxes`: directories (sandbox and runtime state),
/// mounts beneath them, cgroups, runc containers, running inits.
fn left_of(sandboxes: &[Seen]) -> Vec<String> {
    let containers = runc_containers();
    let mut left = Vec::new();
    for s in sandboxes {
        left.extend(vexxy_testkit_host::sandbox_leftovers(
            Path::new(STATE_ROOT),
            &s.id,
        ));
        if containers.contains(&s.id) {
            left.push(format!("runc container {}", s.id));
        }
        if process_runs(s.init.0, s.init.1) {
            left.push(format!("process {} (init of {})", s.init.0, s.id));
        }
    }
    left
}

/// The processes whose command line mentions `marker` (a test's own
/// directory): what a test script it started left running.
fn processes_mentioning(marker: &str) -> Vec<String> {
    vexxy_testkit_host::dir_entries(Path::new("/proc"))
        .into_iter()
        .filter_map(|dir| {
            let pid: u32 = dir.file_name()?.to_str()?.parse().ok()?;
            let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(marker)
                .then(|| format!("process {pid}: {}", cmdline.trim()))
        })
        .collect()
}

/// Of `programs`, those the kernel still has loaded.
fn still_loaded(programs: &BTreeSet<u32>) -> BTreeSet<u32> {
    vexxy_trace::diagnostics::loaded_program_ids()
        .intersection(programs)
        .copied()
        .collect()
}

fn submit(base: &str, key: &str, body: &Value) -> String {
    let (code, answer) = post(&format!("{base}/api/v1/analysis/submit"), key, body);
    assert_eq!(code, 202, "submit {body}: {answer}");
    answer["job_id"].as_str().unwrap().to_owned()
}

fn status(base: &str, key: &str, id: &str) -> Value {
    get(&format!("{base}/api/v1/analysis/{id}/status"), key)
}

/// Waits until every job in `want` is in its phase (`current_phase`).
fn wait_phases(base: &str, key: &str, want: &[(&str, &str)], limit: Duration) {
    let began = Instant::now();
    loop {
        let now: Vec<Value> = want.iter().map(|(id, _)| status(base, key, id)).collect();
        if want
            .iter()
            .zip(&now)
            .all(|((_, phase), st)| st["current_phase"] == *phase)
        {
            return;
        }
        for st in &now {
            assert!(
                !matches!(
                    st["status"].as_str(),
                    Some("failed" | "cancelled" | "complete")
                ),
                "a job ended before it was stopped: {st}"
            );
        }
        assert!(
            began.elapsed() < limit,
            "the jobs never reached their phases {want:?}: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn poll_until(what: &str, limit: Duration, mut left: impl FnMut() -> Vec<String>) -> Duration {
    let began = Instant::now();
    loop {
        let now = left();
        if now.is_empty() {
            return began.elapsed();
        }
        assert!(
            began.elapsed() < limit,
            "{what}: still there after {limit:?}: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn images() -> Option<(String, String, String)> {
    Some((
        vexxy_testkit_host::test_image_ref("nginx")?,
        vexxy_testkit_host::test_image_ref("nginx-imagefilter")?,
        vexxy_testkit_host::test_image_ref("python-flask")?,
    ))
}

/// A data directory with one organisation ("acme") and its key, and the
/// test images' root for `--allow-local-images`.
struct Setup {
    data: tempfile::TempDir,
    data_dir: String,
    roots: String,
    key: String,
}

impl Setup {
    fn new() -> Self {
        let data = tempfile::tempdir().unwrap();
        let data_dir = data.path().join("data").display().to_string();
        let roots = vexxy_testkit_host::test_images_dir().display().to_string();
        let db = ["--data-dir", data_dir.as_str()];
        admin(&db, &["create-org", "acme", "--tier", "ultimate"]);
        let key = admin(&db, &["create-key", "acme"])["key"]
            .as_str()
            .unwrap()
            .to_owned();
        Self {
            data,
            data_dir,
            roots,
            key,
        }
    }
}

/// Three analyses at once in one server, each in another phase of its
/// run, cancelled through the API: each sandbox is gone soon after its
/// cancel, and in the end nothing of them is left, BPF programs included.
#[test]
fn concurrent_analyses_cancelled_through_the_api_leave_nothing_behind() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some((nginx, filter, flask)) = images() else {
        return;
    };
    let _serial = serial();
    let _reap = ReapOnFailure;
    let Setup {
        data,
        data_dir,
        roots,
        key,
    } = Setup::new();
    // a cache of its own: no stored profile lets a job skip its run
    let cache = data.path().join("cache").display().to_string();
    let (mut server, base) = serve(
        &[
            "--data-dir",
            &data_dir,
            "--allow-local-images",
            &roots,
            "--allow-test-scripts",
            "--workers",
            "3",
        ],
        &[("VEXXY_CACHE_DIR", cache.as_str())],
    );
    let server_pid = server.0.id();
    assert!(
        vexxy_trace::diagnostics::held_program_ids(server_pid).is_empty(),
        "an idle server holds no BPF program"
    );

    // fixed windows far longer than the test: only the cancel ends a run
    let window = |extra: Value| {
        let mut config = json!({"analysis_duration": 300, "fixed_window": true});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        config
    };
    let jobs = [
        (
            "observing the workload",
            submit(
                &base,
                &key,
                &json!({"image_ref": nginx, "config": window(json!({}))}),
            ),
        ),
        (
            "waiting for ports",
            // nothing listens on port 9: the wait lasts the whole window
            submit(
                &base,
                &key,
                &json!({"image_ref": filter, "config": window(json!({"ports": [9]}))}),
            ),
        ),
        (
            "running the test script",
            submit(
                &base,
                &key,
                // the script's command line names its scratch directory,
                // under the test's data directory
                &json!({"image_ref": flask, "config": window(json!({
                    "test_script": "#!/bin/sh\nwhile :; do sleep 1; done\n",
                }))}),
            ),
        ),
    ];
    let want: Vec<(&str, &str)> = jobs.iter().map(|(p, id)| (id.as_str(), *p)).collect();
    wait_phases(&base, &key, &want, Duration::from_secs(240));
    let began = Instant::now();
    let sandboxes = loop {
        let seen = started_sandboxes(&[server_pid]);
        if seen.len() == jobs.len() {
            break seen;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "three sandboxes should run: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let containers = runc_containers();
    for s in &sandboxes {
        assert!(containers.contains(&s.id), "runc knows {}", s.id);
        assert!(process_runs(s.init.0, s.init.1), "{} runs", s.id);
    }
    let held = vexxy_trace::diagnostics::held_program_ids(server_pid);
    assert!(
        !held.is_empty(),
        "three traced runs: the server holds BPF programs"
    );
    eprintln!(
        "3 analyses running in {server_pid}: sandboxes {:?}, {} BPF programs held",
        sandboxes.iter().map(|s| &s.id).collect::<Vec<_>>(),
        held.len()
    );

    // one cancel at a time: the sandbox of the cancelled job goes, the
    // others keep running
    let mut timings = Vec::new();
    for (n, (phase, id)) in jobs.iter().enumerate() {
        let (code, body) = call(
            "DELETE",
            &format!("{base}/api/v1/analysis/{id}"),
            &key,
            None,
        );
        assert_eq!(code, 200, "cancel: {}", String::from_utf8_lossy(&body));
        let running = jobs.len() - n - 1;
        let took = poll_until(
            &format!("the sandbox of the job cancelled while {phase}"),
            Duration::from_secs(20),
            || {
                let now =
                    vexxy_testkit_host::sandboxes_owned_by(Path::new(STATE_ROOT), &[server_pid]);
                if now.len() > running {
                    now
                } else {
                    Vec::new()
                }
            },
        );
        eprintln!(
            "cancelled while {phase}: sandbox gone after {} ms",
            took.as_millis()
        );
        timings.push((phase, took));
        assert_eq!(status(&base, &key, id)["status"], "cancelled");
    }

    // nothing of the three is left
    poll_until(
        "what the cancelled sandboxes made",
        Duration::from_secs(10),
        || left_of(&sandboxes),
    );
    poll_until(
        "BPF programs held by the server",
        Duration::from_secs(10),
        || {
            vexxy_trace::diagnostics::held_program_ids(server_pid)
                .into_iter()
                .map(|p| format!("program {p} held by {server_pid}"))
                .collect()
        },
    );
    poll_until("the runs' BPF programs", Duration::from_secs(10), || {
        still_loaded(&held)
            .into_iter()
            .map(|p| format!("program {p} still loaded"))
            .collect()
    });
    // the scratch directories of the test scripts, under the data directory
    let scripts = Path::new(&data_dir)
        .join("work")
        .join("vexxy-script-")
        .display()
        .to_string();
    poll_until(
        "the test script's processes",
        Duration::from_secs(10),
        || processes_mentioning(&scripts),
    );
    for (_, id) in &jobs {
        assert_eq!(status(&base, &key, id)["status"], "cancelled");
    }
    eprintln!("cancel to sandbox gone, per phase: {timings:?}");
    server.terminate();
    assert!(server.0.wait().unwrap().success(), "serve exits 0");
    assert!(
        vexxy_testkit_host::sandboxes_owned_by(Path::new(STATE_ROOT), &[server_pid]).is_empty()
    );
}

/// `vexxy worker` killed with SIGKILL while it runs two analyses: the BPF
/// programs it held are gone from the kernel with it, its sandboxes
/// outlive it, and the next worker on the same state root reclaims them
/// when it starts: nothing of them is left in the state root, runc's root
/// or the cgroups.
#[test]
fn a_killed_worker_s_programs_vanish_and_the_next_worker_reclaims_its_sandboxes() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some((nginx, _, flask)) = images() else {
        return;
    };
    let _serial = serial();
    let _reap = ReapOnFailure;
    let Setup {
        data,
        data_dir,
        roots,
        key,
    } = Setup::new();
    let db = ["--data-dir", data_dir.as_str()];
    // the API alone; the workers are processes of their own on the same database
    let (mut server, base) = serve(&["--data-dir", &data_dir, "--workers", "0"], &[]);
    let cache = data.path().join("cache");
    let worker = || {
        Proc(
            vexxy()
                .arg("worker")
                .args(db)
                .args(["--allow-local-images", &roots, "--workers", "2"])
                // a killed worker's jobs wait a minute before they run
                // again: the reclaiming is checked before that
                .args([
                    "--lease",
                    "6s",
                    "--heartbeat",
                    "1s",
                    "--retry-backoff",
                    "60s",
                ])
                .env("VEXXY_CACHE_DIR", &cache)
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut first = worker();
    let first_pid = first.0.id();
    let config = json!({"analysis_duration": 300, "fixed_window": true});
    let jobs = [
        submit(&base, &key, &json!({"image_ref": nginx, "config": config})),
        submit(&base, &key, &json!({"image_ref": flask, "config": config})),
    ];
    let want: Vec<(&str, &str)> = jobs
        .iter()
        .map(|id| (id.as_str(), "observing the workload"))
        .collect();
    wait_phases(&base, &key, &want, Duration::from_secs(240));
    let began = Instant::now();
    let sandboxes = loop {
        let seen = started_sandboxes(&[first_pid]);
        if seen.len() == jobs.len() {
            break seen;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "two sandboxes should run: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let held = vexxy_trace::diagnostics::held_program_ids(first_pid);
    assert!(
        !held.is_empty(),
        "two traced runs: the worker holds BPF programs"
    );

    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();
    let killed = Instant::now();
    // its sandboxes outlive it: running, with their state
    for s in &sandboxes {
        assert!(
            process_runs(s.init.0, s.init.1),
            "sandbox {}: its workload should outlive the killed worker",
            s.id
        );
    }
    assert!(!left_of(&sandboxes).is_empty());
    // its programs do not
    poll_until(
        "the killed worker's BPF programs",
        Duration::from_secs(10),
        || {
            still_loaded(&held)
                .into_iter()
                .map(|p| format!("program {p} still loaded"))
                .collect()
        },
    );
    eprintln!(
        "{} BPF programs of the killed worker gone from the kernel {} ms after it died",
        held.len(),
        killed.elapsed().as_millis()
    );

    let mut second = worker();
    let second_pid = second.0.id();
    let restarted = Instant::now();
    poll_until(
        "the killed worker's sandboxes after the next worker started",
        Duration::from_secs(30),
        || left_of(&sandboxes),
    );
    eprintln!(
        "the killed worker's sandboxes reclaimed {} ms after the next worker started",
        restarted.elapsed().as_millis()
    );
    assert!(vexxy_testkit_host::sandboxes_owned_by(Path::new(STATE_ROOT), &[first_pid]).is_empty());
    // the jobs wait for their next attempt (lease recovered, backoff):
    // cancel them, then stop everything
    for id in &jobs {
        let (code, body) = call(
            "DELETE",
            &format!("{base}/api/v1/analysis/{id}"),
            &key,
            None,
        );
        assert_eq!(code, 200, "cancel: {}", String::from_utf8_lossy(&body));
    }
    second.terminate();
    server.terminate();
    assert!(vexxy_testkit_host::sandboxes_owned_by(
        Path::new(STATE_ROOT),
        &[first_pid, second_pid]
    )
    .is_empty());
    assert!(vexxy_trace::diagnostics::held_program_ids(second_pid).is_empty());
}
