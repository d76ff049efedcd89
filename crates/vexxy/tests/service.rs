//! The service end to end: the real binary as `vexxy serve` / `vexxy
//! worker` / `vexxy admin` / `vexxy submit`, the real nginx test image in
//! the real sandbox with the real tracer, the real Grype report, SQLite
//! (embedded default) and the real PostgreSQL on 127.0.0.1:5432.
//!
//! Needs root, runc, eBPF, the nginx test image and (one test) PostgreSQL:
//! where one is missing a test prints `SKIP` outside CI and fails in CI
//! (`vexxy_testkit_host`'s gates). A test looks only at the sandboxes of
//! the vexxy processes it started (their owner records name their pids).
#![allow(clippy::unwrap_used)]

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command as StdCommand, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

mod common;
use common::{admin, serve, vexxy, Proc};

const TIMESTAMP: &str = "2026-01-01T00:00:00Z";

fn grype() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json")
}

/// The tests of this file run one at a time: each is a traced analysis on
/// two cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sandboxes that the vexxy processes `pids` own (nobody else's).
fn sandboxes_of(pids: &[u32]) -> Vec<String> {
    vexxy_testkit_host::sandboxes_owned_by(Path::new("/run/vexxy"), pids)
}

/// Checks the signature the way a receiver in another language would:
/// with openssl, not with vexxy's own code.
fn openssl_hmac(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut child = StdCommand::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = timestamp.as_bytes().to_vec();
    input.push(b'.');
    input.extend_from_slice(body);
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256={}", text.split_whitespace().next().unwrap())
}

fn get(url: &str, key: &str) -> Value {
    let out = StdCommand::new("curl")
        .args(["-sS", "-H", &format!("authorization: Bearer {key}"), url])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{url}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn wait_status(base: &str, key: &str, id: &str, want: &[&str], limit: Duration) -> Value {
    let began = Instant::now();
    loop {
        let st = get(&format!("{base}/api/v1/analysis/{id}/status"), key);
        if want.iter().any(|w| st["status"] == *w) {
            return st;
        }
        assert!(
            began.elapsed() < limit,
            "job {id} not {want:?} after {limit:?}: {st}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Submit the nginx image through the API on embedded defaults; the VEX
/// that comes back is byte for byte the one `vexxy analyze` writes for
/// the same image, report and settings, from an independent run; the
/// callback arrives signed.
#[test]
fn service_vex_equals_analyze_and_the_callback_is_signed() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(image) = vexxy_testkit_host::test_image_ref("nginx") else {
        return;
    };
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let caches = tempfile::tempdir().unwrap();
    let roots = vexxy_testkit_host::test_images_dir().display().to_string();
    let data_dir = data.path().display().to_string();
    let db = ["--data-dir", data_dir.as_str()];
    let org = admin(&db, &["create-org", "acme", "--tier", "enterprise"]);
    let key = admin(&db, &["create-key", "acme"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let hooks = vexxy_testkit_host::hooks::HookReceiver::start(|_| 200);
    let service_cache = caches.path().join("service").display().to_string();
    let (mut server, base) = serve(
        &[
            "--data-dir",
            &data_dir,
            "--allow-local-images",
            &roots,
            "--allow-private-callbacks",
            "--timestamp",
            TIMESTAMP,
        ],
        &[("VEXXY_CACHE_DIR", &service_cache)],
    );
    let out = tempfile::tempdir().unwrap();
    let vex = out.path().join("service.openvex.json");
    let submitted = vexxy()
        .args([
            "submit",
            &image,
            "--duration",
            "10s",
            "--wait",
            "--allow-report-mismatch",
            "--callback-url",
        ])
        .arg(hooks.url())
        .arg("--scan")
        .arg(grype())
        .arg("-o")
        .arg(&vex)
        .args(["--server", &base])
        .env("VEXXY_API_KEY", &key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&submitted.stderr);
    assert!(submitted.status.success(), "submit: {stderr}");
    assert!(
        stderr.contains("not_affected"),
        "the summary is printed: {stderr}"
    );

    let direct = out.path().join("direct");
    let analyzed = vexxy()
        .args([
            "analyze",
            &image,
            "--duration",
            "10s",
            "--timestamp",
            TIMESTAMP,
            "--fresh",
            "-q",
            "--allow-report-mismatch",
        ])
        .arg("--scan")
        .arg(grype())
        .arg("--out")
        .arg(&direct)
        .env("VEXXY_CACHE_DIR", caches.path().join("cli"))
        .output()
        .unwrap();
    assert!(
        analyzed.status.success(),
        "analyze: {}",
        String::from_utf8_lossy(&analyzed.stderr)
    );
    let from_service = std::fs::read(&vex).unwrap();
    let from_cli = std::fs::read(direct.join("vex.openvex.json")).unwrap();
    assert!(
        from_service == from_cli,
        "the service's VEX differs from vexxy analyze's:\n{}\n---\n{}",
        String::from_utf8_lossy(&from_service),
        String::from_utf8_lossy(&from_cli)
    );
    let doc: Value = serde_json::from_slice(&from_service).unwrap();
    assert!(doc["statements"].as_array().unwrap().len() > 50);

    // the results list every artifact, and the webhook came, signed
    let list = get(&format!("{base}/api/v1/analysis?status=complete"), &key);
    let id = list["items"][0]["job_id"].as_str().unwrap().to_owned();
    let results = get(&format!("{base}/api/v1/analysis/{id}/results"), &key);
    for link in [
        "vex_openvex",
        "vex_cyclonedx",
        "vex_csaf",
        "evidence",
        "profile",
        "sbom",
        "report_markdown",
        "report_html",
    ] {
        assert!(results["links"][link].is_string(), "{link}: {results}");
    }
    let began = Instant::now();
    while hooks.received().is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "no webhook arrived"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let vexxy_testkit_host::hooks::Received { headers, body } = hooks.received()[0].clone();
    let secret = org["webhook_secret"].as_str().unwrap();
    assert_eq!(
        headers["x-vexxy-signature"],
        openssl_hmac(secret, &headers["x-vexxy-timestamp"], &body)
    );
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["event"], "analysis.completed");
    assert_eq!(payload["job_id"], id.as_str());
    assert_eq!(payload["summary"], results["summary"]);
    server.terminate();
    assert!(
        server.0.wait().unwrap().success(),
        "serve exits 0 on SIGTERM"
    );
}

fn psql(url: &str, sql: &str) -> String {
    let out = StdCommand::new("psql")
        .args([url, "-qtAc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A worker killed with SIGKILL in the middle of a job: its lease runs
/// out, another worker picks the job up, and the job completes exactly
/// once, with one webhook, its evidence stored, and no sandbox left.
#[test]
fn a_killed_worker_s_job_completes_exactly_once_elsewhere() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(image) = vexxy_testkit_host::test_image_ref("nginx") else {
        return;
    };
    let Some(pg) = vexxy_testkit_host::require_postgres("crash") else {
        return;
    };
    let _serial = serial();
    let url = pg.url();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let roots = vexxy_testkit_host::test_images_dir().display().to_string();
    let common = [
        "--database-url",
        url.as_str(),
        "--data-dir",
        data_dir.as_str(),
    ];
    admin(&common, &["create-org", "acme", "--tier", "ultimate"]);
    let key = admin(&common, &["create-key", "acme"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let hooks = vexxy_testkit_host::hooks::HookReceiver::start(|_| 200);
    let (mut server, base) = serve(
        &[
            &common[..],
            &["--workers", "0", "--allow-private-callbacks"],
        ]
        .concat(),
        &[],
    );
    let cache = data.path().join("cache");
    let worker = || {
        Proc(
            vexxy()
                .arg("worker")
                .args(common)
                .args([
                    "--allow-local-images",
                    &roots,
                    "--lease",
                    "6s",
                    "--heartbeat",
                    "1s",
                ])
                // a cache of their own: no stored profile lets a worker skip the run
                .env("VEXXY_CACHE_DIR", &cache)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut first = worker();
    let first_pid = first.0.id();
    let body = serde_json::json!({
        "image_ref": image,
        // a fixed window: the run lasts while the worker is killed
        "config": {"analysis_duration": 20, "fixed_window": true, "allow_report_mismatch": true},
        "scan_report": serde_json::from_slice::<Value>(&std::fs::read(grype()).unwrap()).unwrap(),
        "callback_url": hooks.url(),
    });
    let out = StdCommand::new("curl")
        .args([
            "-sS",
            "-X",
            "POST",
            "-H",
            &format!("authorization: Bearer {key}"),
            "-H",
            "content-type: application/json",
            "--data-binary",
            "@-",
        ])
        .arg(format!("{base}/api/v1/analysis/submit"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(body.to_string().as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let submitted: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = submitted["job_id"].as_str().unwrap().to_owned();
    // in the middle of the traced run: its sandbox exists
    wait_status(&base, &key, &id, &["analyzing"], Duration::from_secs(120));
    let began = Instant::now();
    while sandboxes_of(&[first_pid]).is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "the first worker's sandbox never appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();
    let mut second = worker();
    let second_pid = second.0.id();
    let st = wait_status(
        &base,
        &key,
        &id,
        &["complete", "failed"],
        Duration::from_secs(180),
    );
    assert_eq!(st["status"], "complete", "{st}");
    assert_eq!(st["attempts"], 2, "{st}");
    let events = psql(&url, &format!("SELECT state || ' ' || COALESCE(worker, '-') FROM job_events WHERE job_id = '{id}' ORDER BY id"));
    let completes: Vec<&str> = events
        .lines()
        .filter(|l| l.starts_with("complete"))
        .collect();
    assert_eq!(completes.len(), 1, "exactly one completion:\n{events}");
    assert!(
        completes[0].contains(&format!(":{second_pid}/")),
        "completed by the second worker:\n{events}"
    );
    assert!(
        events
            .lines()
            .any(|l| l.starts_with("running") && l.contains(&format!(":{first_pid}/"))),
        "{events}"
    );
    let results = get(&format!("{base}/api/v1/analysis/{id}/results"), &key);
    assert!(
        results["summary"]["total"].as_u64().unwrap() > 50,
        "{results}"
    );
    assert!(results["vex_document"]["statements"].is_array());
    assert_eq!(
        psql(
            &url,
            &format!("SELECT COUNT(*) FROM artifacts WHERE job_id = '{id}'")
        ),
        "8"
    );
    // one webhook, however long we wait
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hooks.received().len(), 1, "one callback");
    assert_eq!(
        psql(&url, "SELECT state FROM webhook_deliveries"),
        "delivered"
    );
    // the killed worker's sandbox was reaped by the second worker's run
    second.terminate();
    let left = sandboxes_of(&[first_pid, second_pid]);
    assert!(left.is_empty(), "the workers' sandboxes left: {left:?}");
    server.terminate();
}

/// `DELETE` of a job in the middle of its traced run: the job is
/// cancelled at once and the worker tears the sandbox down.
#[test]
fn cancelling_through_the_api_tears_the_sandbox_down() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(image) = vexxy_testkit_host::test_image_ref("nginx") else {
        return;
    };
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let roots = vexxy_testkit_host::test_images_dir().display().to_string();
    let db = ["--data-dir", data_dir.as_str()];
    admin(&db, &["create-org", "acme", "--tier", "professional"]);
    let key = admin(&db, &["create-key", "acme"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // a cache of its own: no stored profile lets the job skip the run
    let cache = data.path().join("cache").display().to_string();
    let (mut server, base) = serve(
        &["--data-dir", &data_dir, "--allow-local-images", &roots],
        &[("VEXXY_CACHE_DIR", &cache)],
    );
    // the server runs the workers: its sandboxes are this test's
    let server_pid = server.0.id();
    let out = StdCommand::new("curl")
        .args([
            "-sS",
            "-X",
            "POST",
            "-H",
            &format!("authorization: Bearer {key}"),
            "-H",
            "content-type: application/json",
            "--data",
        ])
        .arg(
            serde_json::json!({"image_ref": image,
                "config": {"analysis_duration": 120, "fixed_window": true}})
            .to_string(),
        )
        .arg(format!("{base}/api/v1/analysis/submit"))
        .output()
        .unwrap();
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_status(&base, &key, &id, &["analyzing"], Duration::from_secs(120));
    let began = Instant::now();
    while sandboxes_of(&[server_pid]).is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "no sandbox appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let out = StdCommand::new("curl")
        .args([
            "-sS",
            "-X",
            "DELETE",
            "-H",
            &format!("authorization: Bearer {key}"),
        ])
        .arg(format!("{base}/api/v1/analysis/{id}"))
        .output()
        .unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "cancelled", "{answer}");
    let cancelled_at = Instant::now();
    while !sandboxes_of(&[server_pid]).is_empty() {
        assert!(
            cancelled_at.elapsed() < Duration::from_secs(20),
            "the sandbox is still there 20 s after the cancel"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "sandbox gone {} ms after the cancel",
        cancelled_at.elapsed().as_millis()
    );
    let st = wait_status(&base, &key, &id, &["cancelled"], Duration::from_secs(5));
    assert!(st["completed_at"].is_string());
    // the cancelled job stays cancelled: the worker's late result is refused
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        get(&format!("{base}/api/v1/analysis/{id}/status"), &key)["status"],
        "cancelled"
    );
    server.terminate();
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

/// The scratch directories of test scripts in `work`.
fn script_dirs(work: &Path) -> Vec<PathBuf> {
    vexxy_testkit_host::dir_entries(work)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vexxy-script-"))
        })
        .collect()
}

/// `vexxy serve` killed with SIGKILL in the middle of a job (a test
/// script and a traced run): its sandbox keeps running and the job's
/// scratch directory stays. Started again on the same data directory,
/// the server sweeps at once: within one sweep interval, and before the
/// job runs again, the dead server's sandbox is gone (its processes,
/// directories, mounts and cgroups) and so is the scratch directory.
/// The job then completes exactly once, on its second attempt.
#[test]
fn a_killed_server_s_sandbox_and_scratch_are_swept_when_it_starts_again() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(image) = vexxy_testkit_host::test_image_ref("nginx") else {
        return;
    };
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let roots = vexxy_testkit_host::test_images_dir().display().to_string();
    let db = ["--data-dir", data_dir.as_str()];
    admin(&db, &["create-org", "acme", "--tier", "ultimate"]);
    let key = admin(&db, &["create-key", "acme"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // a cache of its own: no stored profile lets the job skip the run
    let cache = data.path().join("cache").display().to_string();
    let work = data.path().join("work");
    let sweep_every = Duration::from_secs(5);
    let args = [
        "--data-dir",
        &data_dir,
        "--allow-local-images",
        &roots,
        "--allow-test-scripts",
        "--lease",
        "6s",
        "--heartbeat",
        "1s",
        // the job waits this long after its lease ran out: the sweep is
        // checked before it runs again
        "--retry-backoff",
        "30s",
        "--sweep-every",
        "5s",
    ];
    let env = [("VEXXY_CACHE_DIR", cache.as_str())];
    let (mut first, base) = serve(&args, &env);
    let first_pid = first.0.id();
    let body = serde_json::json!({
        "image_ref": image,
        "config": {
            "analysis_duration": 30,
            // the run lasts while the server is killed
            "fixed_window": true,
            "test_script": "#!/bin/sh\ncurl -s -o /dev/null \"$VEXXY_TARGET_URL\" || true\n",
        },
    });
    let out = StdCommand::new("curl")
        .args([
            "-sS",
            "-X",
            "POST",
            "-H",
            &format!("authorization: Bearer {key}"),
            "-H",
            "content-type: application/json",
            "--data",
        ])
        .arg(body.to_string())
        .arg(format!("{base}/api/v1/analysis/submit"))
        .output()
        .unwrap();
    let submitted: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = submitted["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{submitted}"))
        .to_owned();
    wait_status(&base, &key, &id, &["analyzing"], Duration::from_secs(120));
    let began = Instant::now();
    let sandboxes = loop {
        let ids = sandboxes_of(&[first_pid]);
        let inits: Vec<Value> = ids
            .iter()
            .filter_map(|s| {
                std::fs::read(Path::new("/run/vexxy/sandboxes").join(s).join("init.json")).ok()
            })
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        if !ids.is_empty() && inits.len() == ids.len() {
            break ids.into_iter().zip(inits).collect::<Vec<_>>();
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the server's sandbox never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(2));
    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();

    // what the dead server left: its sandbox, running, and the scratch
    let init_of = |init: &Value| {
        (
            u32::try_from(init["pid"].as_u64().unwrap()).unwrap(),
            init["starttime"].as_u64().unwrap(),
        )
    };
    for (sandbox, init) in &sandboxes {
        let (pid, start) = init_of(init);
        assert!(
            process_runs(pid, start),
            "sandbox {sandbox}: its init {pid} should outlive the killed server"
        );
        assert!(
            !vexxy_testkit_host::sandbox_leftovers(Path::new("/run/vexxy"), sandbox).is_empty()
        );
    }
    let scratch = script_dirs(&work);
    assert_eq!(
        scratch.len(),
        1,
        "the job's test script directory: {scratch:?}"
    );

    let (mut second, base) = serve(&args, &env);
    let second_pid = second.0.id();
    let restarted = Instant::now();
    loop {
        let mut left: Vec<String> = sandboxes_of(&[first_pid]);
        for (sandbox, init) in &sandboxes {
            left.extend(vexxy_testkit_host::sandbox_leftovers(
                Path::new("/run/vexxy"),
                sandbox,
            ));
            let (pid, start) = init_of(init);
            if process_runs(pid, start) {
                left.push(format!("process {pid} of sandbox {sandbox}"));
            }
        }
        left.extend(
            scratch
                .iter()
                .filter(|d| d.exists())
                .map(|d| d.display().to_string()),
        );
        if left.is_empty() {
            break;
        }
        assert!(
            restarted.elapsed() < sweep_every + Duration::from_secs(5),
            "{:?} after the restart, the killed server left: {left:?}",
            restarted.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "leftovers of the killed server gone {} ms after the restart",
        restarted.elapsed().as_millis()
    );
    // swept by the new server's start, not by the job's next attempt
    let st = get(&format!("{base}/api/v1/analysis/{id}/status"), &key);
    assert_eq!(st["attempts"], 1, "the job already ran again: {st}");
    assert!(sandboxes_of(&[second_pid]).is_empty());

    let st = wait_status(
        &base,
        &key,
        &id,
        &["complete", "failed"],
        Duration::from_secs(240),
    );
    assert_eq!(st["status"], "complete", "{st}");
    assert_eq!(st["attempts"], 2, "{st}");
    let events = StdCommand::new("sqlite3")
        .arg(data.path().join("vexxy.db"))
        .arg(format!(
            "SELECT state || ' ' || COALESCE(worker, '-') FROM job_events WHERE job_id = '{id}' ORDER BY id"
        ))
        .output()
        .unwrap();
    let events = String::from_utf8(events.stdout).unwrap();
    let completes: Vec<&str> = events
        .lines()
        .filter(|l| l.starts_with("complete"))
        .collect();
    assert_eq!(completes.len(), 1, "exactly one completion:\n{events}");
    assert!(
        completes[0].contains(&format!(":{second_pid}/")),
        "completed by the restarted server:\n{events}"
    );
    second.terminate();
    let left = sandboxes_of(&[first_pid, second_pid]);
    assert!(left.is_empty(), "sandboxes left: {left:?}");
    let scratch = script_dirs(&work);
    assert!(scratch.is_empty(), "scratch left: {scratch:?}");
}

/// A tenant's job on a registry image that needs a login: the worker pulls
/// with the organisation's stored credentials (the registry refuses
/// anonymous pulls), signs the VEX with the organisation's key and attaches
/// it in that registry, where `vexxy vex fetch` finds and verifies it with
/// the public key the service lists.
#[test]
fn a_job_signs_and_attaches_its_vex_with_the_tenant_s_key_and_login() {
    use vexxy_testkit::registry::{self, Auth, Registry, PASS, USER};
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(registry_bin) = registry::tools_and_htpasswd() else {
        return;
    };
    let Some(image) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let _serial = serial();
    let registry = Registry::start(&registry_bin, Auth::Htpasswd);
    let digest = registry.push(&image.join("oci"), "latest", "team/nginx", false);
    let reference = format!("{}/team/nginx:latest", registry.addr);

    let data = tempfile::tempdir().unwrap();
    let secret = data.path().join("server.key");
    std::fs::write(&secret, "11".repeat(32)).unwrap();
    let data_dir = data.path().join("data").display().to_string();
    let secret_arg = secret.display().to_string();
    let db = [
        "--data-dir",
        data_dir.as_str(),
        "--secret-key-file",
        secret_arg.as_str(),
    ];
    admin(&db, &["create-org", "acme", "--tier", "enterprise"]);
    let key = admin(&db, &["create-key", "acme"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let public = admin(&db, &["signing-key", "generate", "acme"])["public_key_pem"]
        .as_str()
        .unwrap()
        .to_owned();
    let public_pem = data.path().join("acme.pub");
    std::fs::write(&public_pem, &public).unwrap();
    let mut set = vexxy()
        .arg("admin")
        .args(db)
        .args(["registry-credential", "set", "acme", &registry.addr])
        .args(["--username", USER, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    set.stdin
        .take()
        .unwrap()
        .write_all(PASS.as_bytes())
        .unwrap();
    assert!(set.wait().unwrap().success());

    let cache = data.path().join("cache").display().to_string();
    let (mut server, base) = serve(
        &[
            "--data-dir",
            &data_dir,
            "--secret-key-file",
            &secret_arg,
            "--insecure-registry",
            &registry.addr,
            "--egress-allow-address",
            "127.0.0.1/32",
        ],
        &[("VEXXY_CACHE_DIR", cache.as_str())],
    );
    let out = tempfile::tempdir().unwrap();
    let vex = out.path().join("job.openvex.json");
    let submitted = vexxy()
        .args([
            "submit",
            &reference,
            "--duration",
            "10s",
            "--wait",
            "--attach",
        ])
        .arg("--allow-report-mismatch")
        .arg("--scan")
        .arg(grype())
        .arg("-o")
        .arg(&vex)
        .args(["--server", &base])
        .env("VEXXY_API_KEY", &key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&submitted.stderr);
    assert!(submitted.status.success(), "submit: {stderr}");
    let jobs = get(&format!("{base}/api/v1/analysis"), &key);
    let id = jobs["items"][0]["job_id"].as_str().unwrap().to_owned();
    let status = get(&format!("{base}/api/v1/analysis/{id}/status"), &key);
    let att = &status["attestation"];
    assert_eq!(att["status"], "attached", "{status}");
    assert_eq!(
        att["cosign_tag"],
        format!("sha256-{}.att", digest.trim_start_matches("sha256:")),
        "{status}"
    );

    // what the registry holds verifies with the key the service lists
    let fetched = out.path().join("fetched.json");
    let f = vexxy()
        .args(["vex", "fetch", &reference, "--key"])
        .arg(&public_pem)
        .args(["--insecure-registry", &registry.addr])
        .args(["--creds", &format!("{USER}:{PASS}")])
        .arg("-o")
        .arg(&fetched)
        .output()
        .unwrap();
    assert!(f.status.success(), "{}", String::from_utf8_lossy(&f.stderr));
    let a: Value = serde_json::from_slice(&std::fs::read(&vex).unwrap()).unwrap();
    let b: Value = serde_json::from_slice(&std::fs::read(&fetched).unwrap()).unwrap();
    assert_eq!(a, b, "the attached document is the job's");

    // a reviewer's decision re-issues the image's VEX, and the registry
    // gets it (in the background): `vex fetch` finds the decision
    let list = get(&format!("{base}/api/v1/statements?limit=1"), &key);
    let statement = list["statements"][0]["id"].as_str().unwrap().to_owned();
    let vulnerability = list["statements"][0]["vulnerability_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let decided = StdCommand::new("curl")
        .args(["-sS", "-f", "-X", "POST"])
        .args(["-H", &format!("authorization: Bearer {key}")])
        .args(["-H", "content-type: application/json"])
        .args([
            "--data",
            r#"{"action":"override","status":"affected","action_statement":"upgrade","reason":"the registry must carry this"}"#,
        ])
        .arg(format!("{base}/api/v1/statements/{statement}/decisions"))
        .output()
        .unwrap();
    assert!(
        decided.status.success(),
        "{}",
        String::from_utf8_lossy(&decided.stderr)
    );
    let began = Instant::now();
    loop {
        let f = vexxy()
            .args(["vex", "fetch", &reference, "--key"])
            .arg(&public_pem)
            .args(["--insecure-registry", &registry.addr])
            .args(["--creds", &format!("{USER}:{PASS}")])
            .arg("-o")
            .arg(&fetched)
            .output()
            .unwrap();
        assert!(f.status.success(), "{}", String::from_utf8_lossy(&f.stderr));
        let doc: Value = serde_json::from_slice(&std::fs::read(&fetched).unwrap()).unwrap();
        let carries = doc["statements"].as_array().unwrap().iter().any(|st| {
            st["vulnerability"]["name"] == vulnerability.as_str()
                && st["status"] == "affected"
                && st["status_notes"]
                    .as_str()
                    .is_some_and(|n| n.contains("the registry must carry this"))
        });
        if carries {
            assert_eq!(doc["version"], 2, "{doc}");
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the re-issued VEX never reached the registry: {doc}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    server.terminate();
}
