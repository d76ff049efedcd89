//! The human loop end to end: the real binary as `vexxy serve` and
//! `vexxy admin`, the real nginx test image traced in the real sandbox,
//! the real Grype report, SQLite (the embedded default). An analysis
//! stores its statements; the queue holds what the rules say; a reviewer
//! overrides one verdict and approves another; the image's VEX is
//! re-issued (schema-valid, signed, new version) with both; a second
//! analysis of the same digest keeps them; the compliance CSV counts the
//! repository right; a new report is re-decided without a run and only
//! its new finding enters the queue.
//!
//! Needs root, runc, eBPF and the nginx test image: where one is missing
//! the test prints `SKIP` outside CI and fails in CI.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

mod common;
use common::{admin, call, get, post, serve, service_dir, vexxy, wait_complete, wait_vex_version};

fn grype() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json")
}

fn submit(base: &str, key: &str, image: &str, duration: &str) -> String {
    let out = vexxy()
        .args([
            "submit",
            image,
            "--duration",
            duration,
            "--allow-report-mismatch",
        ])
        .arg("--scan")
        .arg(grype())
        .args(["--server", base])
        .env("VEXXY_API_KEY", key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "submit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // without --wait, `vexxy submit` prints the job id
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn statements(base: &str, key: &str, digest: &str) -> Vec<Value> {
    let list = get(
        &format!("{base}/api/v1/statements?image={digest}&limit=1000"),
        key,
    );
    list["statements"].as_array().unwrap().clone()
}

fn queue_ids(base: &str, key: &str, digest: &str) -> BTreeSet<String> {
    let q = get(
        &format!("{base}/api/v1/review/queue?image={digest}&limit=1000"),
        key,
    );
    q["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// What the documented rules (docs/review.md) put in the queue, at the
/// default threshold and without four eyes.
fn by_the_rules(s: &Value) -> bool {
    if s["decision_id"].is_string() {
        return false;
    }
    match s["auto_status"].as_str().unwrap() {
        "under_investigation" => true,
        "affected" => s["fix_state"] != "fixed",
        "not_affected" => s["confidence"].as_f64().unwrap() < 0.6,
        _ => false,
    }
}

#[test]
fn reviewers_decide_and_the_reissued_vex_carries_their_decisions() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(image) = vexxy_testkit_host::test_image_ref("nginx") else {
        return;
    };
    let (data, data_dir, secret_arg) = service_dir("22");
    let db = [
        "--data-dir",
        data_dir.as_str(),
        "--secret-key-file",
        secret_arg.as_str(),
    ];
    admin(&db, &["create-org", "acme", "--tier", "enterprise"]);
    let key = admin(&db, &["create-key", "acme", "--name", "alice"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(&db, &["create-org", "other", "--tier", "enterprise"]);
    let other = admin(&db, &["create-key", "other"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let public = admin(&db, &["signing-key", "generate", "acme"])["public_key_pem"]
        .as_str()
        .unwrap()
        .to_owned();
    let public_pem = data.path().join("acme.pub");
    std::fs::write(&public_pem, &public).unwrap();
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

    // 1. an analysis through the service stores its statements
    let first = submit(&base, &key, &image, "10s");
    wait_complete(&base, &key, &first, Duration::from_secs(300));
    let images = get(&format!("{base}/api/v1/images"), &key);
    assert_eq!(images["total"], 1, "{images}");
    let digest = images["images"][0]["digest"].as_str().unwrap().to_owned();
    let repository = images["images"][0]["repository"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        wait_vex_version(&base, &key, &digest, 1, Duration::from_secs(30))["vex_version"],
        1
    );
    let rows = statements(&base, &key, &digest);
    assert!(rows.len() > 50, "{} statements", rows.len());

    // 2. the queue holds exactly what the rules say
    let want: BTreeSet<String> = rows
        .iter()
        .filter(|s| by_the_rules(s))
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    let queue = queue_ids(&base, &key, &digest);
    assert!(!want.is_empty());
    assert_eq!(queue, want, "the queue is what the rules select");

    // another organisation sees none of it
    let theirs = get(&format!("{base}/api/v1/statements?limit=1000"), &other);
    assert_eq!(theirs["total"], 0);
    let (code, _) = call(
        "GET",
        &format!(
            "{base}/api/v1/statements/{}",
            rows[0]["id"].as_str().unwrap()
        ),
        &other,
        None,
    );
    assert_eq!(code, 404);
    let (code, _) = call(
        "GET",
        &format!("{base}/api/v1/images/{digest}/vex"),
        &other,
        None,
    );
    assert_eq!(code, 404);

    // 3. decisions: statements whose vulnerability has one package, so
    // the per-vulnerability statement of the document is theirs alone
    let single = |s: &&Value| {
        rows.iter()
            .filter(|o| o["vulnerability_id"] == s["vulnerability_id"])
            .count()
            == 1
    };
    let to_override = rows
        .iter()
        .filter(single)
        .find(|s| queue.contains(s["id"].as_str().unwrap()) && s["auto_status"] != "not_affected")
        .expect("a queued statement that is not not_affected")
        .clone();
    let to_approve = rows
        .iter()
        .filter(single)
        .find(|s| s["auto_status"] == "not_affected" && s["id"] != to_override["id"])
        .expect("a not_affected statement")
        .clone();
    let url = |s: &Value| {
        format!(
            "{base}/api/v1/statements/{}/decisions",
            s["id"].as_str().unwrap()
        )
    };
    // bad input: 422 naming the field, nothing written
    for (body, field) in [
        (
            json!({"action": "override", "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"}),
            "reason",
        ),
        (
            json!({"action": "override", "status": "not_affected", "reason": "r"}),
            "justification",
        ),
        (
            json!({"action": "override", "status": "affected", "justification": "component_not_present", "action_statement": "x", "reason": "r"}),
            "justification",
        ),
        (
            json!({"action": "override", "status": "maybe", "reason": "r"}),
            "status",
        ),
    ] {
        let (code, err) = post(&url(&to_override), &key, &body);
        assert_eq!(code, 422, "{body}: {err}");
        assert!(
            err["message"].as_str().unwrap().starts_with(field),
            "{body}: {err}"
        );
    }
    let (code, _) = post(
        &format!("{base}/api/v1/statements/nope/decisions"),
        &key,
        &json!({"action": "approve", "reason": "r"}),
    );
    assert_eq!(code, 404);
    assert_eq!(
        get(&format!("{base}/api/v1/images/{digest}"), &key)["vex_version"],
        1,
        "refused decisions issue nothing"
    );

    let (code, overridden) = post(
        &url(&to_override),
        &key,
        &json!({
            "action": "override",
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
            "reason": "the affected code path needs a module this image does not load",
            "expected_version": to_override["version"],
        }),
    );
    assert_eq!(code, 200, "{overridden}");
    assert_eq!(overridden["statement"]["status"], "not_affected");
    assert_eq!(overridden["decision"]["author"], "alice");
    assert_eq!(overridden["vex"]["version"], 2);
    // a stale version is a conflict
    let (code, err) = post(
        &url(&to_override),
        &key,
        &json!({"action": "approve", "reason": "again", "expected_version": to_override["version"]}),
    );
    assert_eq!(code, 409, "{err}");
    let (code, approved) = post(
        &url(&to_approve),
        &key,
        &json!({"action": "approve", "reason": "checked the evidence", "expires_in_days": 90}),
    );
    assert_eq!(code, 200, "{approved}");
    assert_eq!(approved["vex"]["version"], 3);
    assert!(!queue_ids(&base, &key, &digest).contains(to_override["id"].as_str().unwrap()));

    // 4. the re-issued VEX: version 3, both decisions, schema-valid, signed
    let (code, doc) = call(
        "GET",
        &format!("{base}/api/v1/images/{digest}/vex"),
        &key,
        None,
    );
    assert_eq!(code, 200);
    let vex: Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(vex["version"], 3);
    assert!(vex["last_updated"].is_string(), "{}", vex["last_updated"]);
    let statement_of = |s: &Value| {
        vex["statements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["vulnerability"]["name"] == s["vulnerability_id"])
            .unwrap_or_else(|| panic!("no statement for {}", s["vulnerability_id"]))
            .clone()
    };
    let o = statement_of(&to_override);
    assert_eq!(o["status"], "not_affected");
    assert_eq!(o["justification"], "vulnerable_code_not_in_execute_path");
    let notes = o["status_notes"].as_str().unwrap();
    assert!(
        notes.contains("alice") && notes.contains("module this image does not load"),
        "{notes}"
    );
    let a = statement_of(&to_approve);
    assert_eq!(a["status"], "not_affected");
    assert!(a["status_notes"].as_str().unwrap().contains("alice"));
    let work = tempfile::tempdir().unwrap();
    let vex_file = work.path().join("vex.json");
    std::fs::write(&vex_file, &doc).unwrap();
    let valid = vexxy()
        .args(["vex", "validate"])
        .arg(&vex_file)
        .output()
        .unwrap();
    assert!(
        valid.status.success(),
        "validate: {}{}",
        String::from_utf8_lossy(&valid.stdout),
        String::from_utf8_lossy(&valid.stderr)
    );
    let (code, envelope) = call(
        "GET",
        &format!("{base}/api/v1/images/{digest}/vex/3/envelope"),
        &key,
        None,
    );
    assert_eq!(code, 200);
    let env_file = work.path().join("vex.intoto.json");
    std::fs::write(&env_file, &envelope).unwrap();
    let predicate = work.path().join("predicate.json");
    let verified = vexxy()
        .arg("verify")
        .arg(&env_file)
        .arg("--key")
        .arg(&public_pem)
        .arg("--predicate-out")
        .arg(&predicate)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&std::fs::read(&predicate).unwrap()).unwrap(),
        vex,
        "the envelope carries the current document"
    );
    let history = get(&format!("{base}/api/v1/images/{digest}/vex/history"), &key);
    let causes: Vec<&str> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["cause"].as_str().unwrap())
        .collect();
    assert_eq!(causes, ["decision", "decision", "analysis"]);

    // 5. a second analysis of the same digest keeps both decisions
    let second = submit(&base, &key, &image, "11s");
    assert_ne!(second, first);
    wait_complete(&base, &key, &second, Duration::from_secs(300));
    wait_vex_version(&base, &key, &digest, 4, Duration::from_secs(30));
    let again = statements(&base, &key, &digest);
    let find = |id: &Value| again.iter().find(|s| s["id"] == *id).unwrap().clone();
    let o = find(&to_override["id"]);
    assert_eq!(o["status"], "not_affected");
    assert_eq!(o["decision_id"], overridden["decision"]["id"]);
    assert_eq!(o["analysis_id"], second.as_str());
    assert_eq!(
        find(&to_approve["id"])["decision_id"],
        approved["decision"]["id"]
    );
    let (_, doc) = call(
        "GET",
        &format!("{base}/api/v1/images/{digest}/vex"),
        &key,
        None,
    );
    let vex: Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(vex["version"], 4);
    assert_eq!(statement_of(&to_override)["status"], "not_affected");

    // 6. compliance: the repository's counts match its statements
    let (code, csv) = call(
        "GET",
        &format!("{base}/api/v1/compliance?format=csv"),
        &key,
        None,
    );
    assert_eq!(code, 200);
    let csv = String::from_utf8(csv).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "repository,image_digest,images,total,not_affected,needs_fix,under_investigation,unreviewed"
    );
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let count = |f: &dyn Fn(&Value) -> bool| again.iter().filter(|s| f(s)).count().to_string();
    let unreviewed = queue_ids(&base, &key, &digest).len().to_string();
    assert_eq!(
        row,
        [
            repository.as_str(),
            digest.as_str(),
            "1",
            &again.len().to_string(),
            &count(&|s| s["status"] == "not_affected"),
            &count(&|s| s["status"] == "affected"),
            &count(&|s| s["status"] == "under_investigation"),
            &unreviewed,
        ]
    );
    let dashboard = get(&format!("{base}/api/v1/dashboard"), &key);
    assert_eq!(dashboard["images_seen"], 1);
    assert_eq!(dashboard["vex_coverage"], 1.0);
    assert_eq!(dashboard["decisions"], 2);
    assert_eq!(dashboard["backlog"].to_string(), unreviewed);

    // 7. a new report: re-decided from the stored profile, no run; only
    // the new finding enters the queue
    let queue_before = queue_ids(&base, &key, &digest);
    let mut report: Value = serde_json::from_slice(&std::fs::read(grype()).unwrap()).unwrap();
    let matches = report["matches"].as_array_mut().unwrap();
    let mut extra = matches
        .iter()
        .find(|m| m["vulnerability"]["fix"]["state"] != "fixed")
        .unwrap()
        .clone();
    extra["vulnerability"]["id"] = json!("CVE-2099-0001");
    extra["vulnerability"]["severity"] = json!("Critical");
    extra["relatedVulnerabilities"] = json!([]);
    matches.push(extra);
    // (the report is the official nginx image's, decided for the test image
    // with --allow-report-mismatch at the first analysis: the re-decision
    // inherits that, so versions are the installed ones)
    let began = Instant::now();
    let (code, queued) = post(
        &format!("{base}/api/v1/images/{digest}/reports"),
        &key,
        &report,
    );
    assert_eq!(code, 202, "{queued}");
    let job = queued["job_id"].as_str().unwrap().to_owned();
    // a report naming the image by its digest, from another organisation,
    // finds no image
    let mut named = report.clone();
    named["source"]["target"]["manifestDigest"] = json!(digest);
    let (code, _) = post(&format!("{base}/api/v1/reports"), &other, &named);
    assert_eq!(code, 404);
    wait_complete(&base, &key, &job, Duration::from_secs(60));
    wait_vex_version(&base, &key, &digest, 5, Duration::from_secs(30));
    let took = began.elapsed();
    eprintln!("re-decided a new report in {took:?} (no sandbox run)");
    let queue_after = queue_ids(&base, &key, &digest);
    let entered: Vec<String> = queue_after.difference(&queue_before).cloned().collect();
    let after = statements(&base, &key, &digest);
    let new_ones: Vec<&Value> = after
        .iter()
        .filter(|s| s["vulnerability_id"] == "CVE-2099-0001")
        .collect();
    assert!(!new_ones.is_empty());
    assert_eq!(
        entered,
        new_ones
            .iter()
            .filter(|s| s["in_queue"] == true)
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        "only the new finding entered the queue"
    );
    assert!(!entered.is_empty(), "a new critical finding needs a person");
    let image_now = get(&format!("{base}/api/v1/images/{digest}"), &key);
    assert_eq!(image_now["vex_version"], 5);
    assert_eq!(
        image_now["last_run_id"],
        second.as_str(),
        "the re-decision did not run the image"
    );
}
