//! A new scanner report for an analysed image, re-decided by the service
//! from the stored execution profile, against the full analysis through
//! the same service, in one run: `vexxy serve` on embedded defaults
//! (SQLite, local evidence), the nginx test image analysed with the real
//! Grype report (the peer: pull, catalog, sandboxed traced run,
//! decisions, storing), then `POST /api/v1/images/{digest}/reports` with
//! new reports (each adds one finding), timed from the POST until the job
//! is complete and the image's VEX re-issued. Prints both, the ratio and
//! whether the re-decision stays under one second.
//!
//! Run: `cargo bench -p vexxy --bench service_redecide` (root, runc, eBPF
//! and the nginx test image; prints `SKIP` otherwise, fails in CI).
//! `VEXXY_BENCH_SECONDS` sets the exercise window (default 5).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

const RUNS: usize = 5;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(method: &str, url: &str, key: &str, body: Option<&[u8]>) -> Value {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-f", "-X", method])
        .args(["-H", &format!("authorization: Bearer {key}")]);
    if body.is_some() {
        cmd.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    let mut child = cmd
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    if let Some(b) = body {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b)
            .expect("write");
    }
    let out = child.wait_with_output().expect("curl");
    assert!(out.status.success(), "{method} {url} failed");
    serde_json::from_slice(&out.stdout).expect("json")
}

fn wait_complete(base: &str, key: &str, id: &str) {
    let began = Instant::now();
    loop {
        let st = curl(
            "GET",
            &format!("{base}/api/v1/analysis/{id}/status"),
            key,
            None,
        );
        match st["status"].as_str() {
            Some("complete") => return,
            Some("failed" | "cancelled") => panic!("job {id}: {st}"),
            _ => {}
        }
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "job {id} stuck: {st}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(image) = vexxy_testkit_host::test_image_ref("nginx") else {
        return;
    };
    let seconds = std::env::var("VEXXY_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(5);
    let grype = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../../../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json",
    );
    let vexxy = env!("CARGO_BIN_EXE_vexxy");
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data").display().to_string();
    let admin = |args: &[&str]| -> Value {
        let out = Command::new(vexxy)
            .args(["admin", "--json", "--data-dir", &data])
            .args(args)
            .output()
            .expect("admin");
        assert!(out.status.success(), "admin {args:?}");
        serde_json::from_slice(&out.stdout).expect("json")
    };
    admin(&["create-org", "bench", "--tier", "enterprise"]);
    let key = admin(&["create-key", "bench"])["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let roots = vexxy_testkit_host::test_images_dir().display().to_string();
    let mut child = Command::new(vexxy)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &data])
        .args(["--allow-local-images", &roots])
        .env("VEXXY_CACHE_DIR", work.path().join("cache"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let _server = Proc(child);
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening on")
        .to_owned();

    let report = std::fs::read(&grype).expect("grype report");
    let began = Instant::now();
    let submitted = curl(
        "POST",
        &format!("{base}/api/v1/analysis/submit"),
        &key,
        Some(
            &serde_json::to_vec(&json!({
                "image_ref": image,
                "config": {"analysis_duration": seconds, "allow_report_mismatch": true},
                "scan_report": serde_json::from_slice::<Value>(&report).expect("report"),
            }))
            .expect("body"),
        ),
    );
    wait_complete(&base, &key, submitted["job_id"].as_str().expect("job"));
    let full = began.elapsed();
    let images = curl("GET", &format!("{base}/api/v1/images"), &key, None);
    let digest = images["images"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();

    let mut times = Vec::new();
    for run in 0..RUNS {
        let mut r: Value = serde_json::from_slice(&report).expect("report");
        let matches = r["matches"].as_array_mut().expect("matches");
        let mut extra = matches[0].clone();
        extra["vulnerability"]["id"] = json!(format!("CVE-2099-{:04}", run + 1));
        extra["relatedVulnerabilities"] = json!([]);
        matches.push(extra);
        let body = serde_json::to_vec(&r).expect("body");
        let began = Instant::now();
        let queued = curl(
            "POST",
            &format!("{base}/api/v1/images/{digest}/reports"),
            &key,
            Some(&body),
        );
        wait_complete(&base, &key, queued["job_id"].as_str().expect("job"));
        // and the image's VEX re-issued with it
        loop {
            let image = curl("GET", &format!("{base}/api/v1/images/{digest}"), &key, None);
            if image["vex_version"].as_i64() >= Some(run as i64 + 2) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        times.push(began.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    let last_run = curl("GET", &format!("{base}/api/v1/images/{digest}"), &key, None);
    println!("service_redecide: nginx test image, real Grype report, {seconds} s exercise window, SQLite");
    println!(
        "  full analysis through the service (peer): {:.2} s",
        full.as_secs_f64()
    );
    println!(
        "  re-decision of a new report (median of {RUNS}, POST to complete): {:.3} s  [min {:.3} s, max {:.3} s]",
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64()
    );
    println!(
        "  full / re-decision: {:.1}x; under one second: {}; image VEX version now {}; last run still the first analysis: {}",
        full.as_secs_f64() / median.as_secs_f64(),
        if median < Duration::from_secs(1) { "yes" } else { "NO" },
        last_run["vex_version"],
        last_run["last_run_id"] == submitted["job_id"]
    );
}
