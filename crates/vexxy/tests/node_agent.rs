//! The node agent end to end: a real `vexxy serve` (SQLite) analyses the
//! nginx test image with the real Grype report (sandbox, tracer); a
//! private containerd runs the same image (imported from its OCI archive
//! with `ctr`) while HTTP requests reach it inside its network namespace;
//! `vexxy worker --node-agent --once` asks the service which images to
//! watch, observes the container and uploads its profile; the service
//! re-decides the image with production evidence and re-issues its VEX
//! (version 2): every statement as decided as before or more, the runtime
//! statements saying their evidence came from production, the container's
//! span kept with the job.
//!
//! Needs root, runc, eBPF, containerd and the nginx test image built with
//! its archives (`scripts/build-test-images.sh --with-archives`): where
//! one is missing the test prints `SKIP` outside CI and fails in CI.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::Value;

mod common;
use common::{admin, call, get, serve, service_dir, vexxy, wait_complete, wait_vex_version};

fn grype() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json")
}

/// A document's statements by vulnerability: (status, status_notes).
fn statements(doc: &Value) -> BTreeMap<String, (String, String)> {
    doc["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["vulnerability"]["name"].as_str().unwrap().to_owned(),
                (
                    s["status"].as_str().unwrap().to_owned(),
                    s["status_notes"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

fn decided(status: &str) -> bool {
    status != "under_investigation"
}

#[test]
fn the_node_agent_reissues_the_vex_with_production_evidence() {
    if !vexxy_testkit_host::require_trace() || !vexxy_testkit_host::Containerd::available() {
        return;
    }
    let Some(images) = vexxy_testkit_host::test_image("nginx") else {
        return;
    };
    let image_ref = format!("oci:{}:latest", images.join("oci").display());
    let archive = images.join("image.oci.tar");

    // 1. the service analyses the image (the sandbox run it merges with)
    let (data, data_dir, secret_arg) = service_dir("19");
    let db = ["--data-dir", data_dir.as_str()];
    admin(&db, &["create-org", "acme", "--tier", "enterprise"]);
    let key = admin(&db, &["create-key", "acme", "--name", "agent"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let roots = vexxy_testkit_host::test_images_dir().display().to_string();
    let cache = data.path().join("cache").display().to_string();
    let (_server, base) = serve(
        &[
            "--data-dir",
            &data_dir,
            "--secret-key-file",
            &secret_arg,
            "--allow-local-images",
            &roots,
        ],
        &[("VEXXY_CACHE_DIR", cache.as_str())],
    );
    let out = vexxy()
        .args([
            "submit",
            &image_ref,
            "--duration",
            "10s",
            "--allow-report-mismatch",
        ])
        .arg("--scan")
        .arg(grype())
        .args(["--server", &base])
        .env("VEXXY_API_KEY", &key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "submit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    wait_complete(&base, &key, &job, Duration::from_secs(300));
    let listed = get(&format!("{base}/api/v1/images"), &key);
    let digest = listed["images"][0]["digest"].as_str().unwrap().to_owned();
    wait_vex_version(&base, &key, &digest, 1, Duration::from_secs(120));
    let before = get(&format!("{base}/api/v1/images/{digest}/vex/1"), &key);
    let watched = get(&format!("{base}/api/v1/node-agent/images"), &key);
    assert_eq!(watched["images"][0]["digest"], digest.as_str(), "{watched}");

    // 2. the same image runs in containerd, serving requests
    let dir = tempfile::Builder::new()
        .prefix("vxna")
        .tempdir_in("/tmp")
        .unwrap();
    let mut containerd = vexxy_testkit_host::Containerd::start(&dir.path().join("c"), "vexxy-test");
    containerd.import(&archive, "docker.io/vexxy-test/nginx");
    let name = "docker.io/vexxy-test/nginx:latest";
    assert_eq!(
        containerd.image_digest(name),
        digest,
        "containerd and the service know the image by the same manifest digest"
    );
    let pid = containerd.run(name, "web-1", &[]);
    let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let up = vexxy_testkit_host::poll(Duration::from_secs(20), || {
        vexxy_testkit_host::in_netns(&netns, || vexxy_testkit_host::http_get(80))
            .ok()
            .filter(|r| r.starts_with("HTTP/1.1 200"))
    });
    assert!(up.is_some(), "nginx in containerd never answered");

    // 3. one round of the node agent, with traffic while it observes
    let mut agent = vexxy()
        .args(["worker", "--node-agent", "--once", "--observe-for", "5s"])
        .args(["--server", &base, "--api-key", &key])
        .arg("--containerd-address")
        .arg(containerd.address())
        .args(["--namespace", containerd.namespace()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let began = Instant::now();
    let mut requests = 0;
    while agent.try_wait().unwrap().is_none() {
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "the node agent did not finish its round"
        );
        if vexxy_testkit_host::in_netns(&netns, || vexxy_testkit_host::http_get(80)).is_ok() {
            requests += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = agent.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node agent: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(requests > 0);
    let uploaded: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("uploaded "))
        .collect();
    assert_eq!(uploaded.len(), 1, "one upload per image: {stdout}");
    assert!(uploaded[0].contains(&digest), "{stdout}");

    // 4. the VEX is re-issued from production evidence
    let image = wait_vex_version(&base, &key, &digest, 2, Duration::from_secs(120));
    let history = get(&format!("{base}/api/v1/images/{digest}/vex/history"), &key);
    let v2 = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == 2)
        .unwrap()
        .clone();
    assert_eq!(v2["cause"], "reevaluation", "{history}");
    let redecision = v2["job_id"].as_str().unwrap().to_owned();
    assert_eq!(image["last_analysis_id"], redecision.as_str());
    assert_eq!(image["last_run_id"], job.as_str(), "no new sandbox run");
    let after = get(&format!("{base}/api/v1/images/{digest}/vex"), &key);
    assert_eq!(after["version"], 2);
    let (old, new) = (statements(&before), statements(&after));
    assert_eq!(
        old.keys().collect::<Vec<_>>(),
        new.keys().collect::<Vec<_>>(),
        "the same findings"
    );
    for (vulnerability, (status, _)) in &old {
        let (now, notes) = &new[vulnerability];
        assert!(
            !decided(status) || decided(now),
            "{vulnerability}: {status} before, {now} with production evidence ({notes})"
        );
    }
    let count = |m: &BTreeMap<String, (String, String)>, status: &str| {
        m.values().filter(|(s, _)| s == status).count()
    };
    eprintln!(
        "{} statements; not_affected {} -> {}, affected {} -> {}, under_investigation {} -> {}; {requests} requests",
        old.len(),
        count(&old, "not_affected"),
        count(&new, "not_affected"),
        count(&old, "affected"),
        count(&new, "affected"),
        count(&old, "under_investigation"),
        count(&new, "under_investigation"),
    );
    let production: Vec<&String> = new
        .iter()
        .filter(|(_, (_, notes))| notes.contains("runtime evidence from production"))
        .map(|(v, _)| v)
        .collect();
    assert!(
        !production.is_empty(),
        "no statement says its runtime evidence came from production: {after}"
    );
    assert!(
        new.values()
            .any(|(s, notes)| s == "not_affected" && notes.contains("observed in 1 container(s)")),
        "a not_affected from production evidence names the observation: {after}"
    );

    // the container's span is kept with the re-decision
    let (code, body) = call(
        "GET",
        &format!("{base}/api/v1/analysis/{redecision}/artifacts/production.profile.json"),
        &key,
        None,
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let kept: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(kept["run"]["source"], "observed", "{kept}");
    let spans = kept["run"]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1, "{kept}");
    assert!(
        spans[0]["target"].as_str().unwrap().ends_with("web-1"),
        "{kept}"
    );
    assert!(spans[0]["duration_ms"].as_u64().unwrap() >= 4_000, "{kept}");
    drop(containerd);
}
