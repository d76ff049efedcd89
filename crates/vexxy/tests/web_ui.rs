//! The web UI in a real browser: the real binary as `vexxy serve` on
//! SQLite, two real analyses (the nginx test image and the nginx
//! image-filter one, traced in the real sandbox, decided with the real
//! Grype report), a statement whose description carries markup, then
//! `ui-tests/ui.test.mjs` drives Debian's Chromium through every page of
//! the UI contract: sign-in, dashboard numbers against the API, images
//! and search, evidence, escaping, an override and its re-issued VEX, the
//! review queue and its keys, a submission followed live to completion, a
//! comparison, CSP and axe-core on every page, screenshots at 1280 and
//! 390 px (into `target/ui-screenshots/`), organisation isolation and
//! sign-out.
//!
//! Needs root, runc, eBPF, the three test images with their archives
//! (scripts/build-test-images.sh --with-archives), node, `/usr/bin/chromium`
//! and `ui-tests/node_modules` (scripts/ensure-deps.sh installs both):
//! where one is missing the test prints `SKIP` outside CI and fails in CI.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command as StdCommand, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use vexxy_testkit_host::{require_program, skip_or_fail, test_image, test_image_ref};

mod common;
use common::{admin, get, post, serve, service_dir, wait_complete};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The pages the script photographs, each at 1280 and 390 px.
const PAGES: [&str; 10] = [
    "login",
    "dashboard",
    "images",
    "image",
    "statement",
    "review",
    "submit",
    "job",
    "job-done",
    "compare",
];
/// The markup the XSS case puts into a stored statement's description.
const MARKUP: &str = r#"<script>window.__xss=1</script><img src=x onerror="window.__xss=2">"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn grype() -> PathBuf {
    workspace()
        .join("../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json")
}

/// Waits until the image's VEX is at least at `version` (it is issued
/// right after the job that analysed it completes).
fn wait_vex_version(base: &str, key: &str, digest: &str, version: i64) {
    let began = Instant::now();
    loop {
        let image = get(&format!("{base}/api/v1/images/{digest}"), key);
        if image["vex_version"].as_i64() >= Some(version) {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the VEX of {digest} is not at version {version}: {image}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Submits `image` with the nginx Grype report (made for the official
/// nginx image, so decided about this one's installed versions as the
/// other service tests do); returns the job id.
fn submit(base: &str, key: &str, image: &str, report: &Value) -> String {
    let (code, out) = post(
        &format!("{base}/api/v1/analysis/submit"),
        key,
        &json!({
            "image_ref": image,
            "config": {"analysis_duration": 10, "allow_report_mismatch": true},
            "scan_report": report,
        }),
    );
    assert_eq!(code, 202, "submit {image}: {out}");
    out["job_id"].as_str().unwrap().to_owned()
}

/// The manifest digest of a test image's OCI layout (tag `latest`).
fn layout_digest(dir: &Path) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("oci/index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

/// What the browser test needs beyond the service's own prerequisites:
/// node, Debian's Chromium and the script's packages.
fn require_browser(ui: &Path) -> Option<PathBuf> {
    let node = require_program("node", "apt-get install nodejs")?;
    if !Path::new(CHROMIUM).is_file() {
        skip_or_fail(format!(
            "{CHROMIUM} is missing (scripts/ensure-deps.sh installs Debian's chromium)"
        ));
        return None;
    }
    for package in ["playwright-core", "axe-core"] {
        if !ui
            .join("node_modules")
            .join(package)
            .join("package.json")
            .is_file()
        {
            skip_or_fail(format!(
                "{} has no {package} (scripts/ensure-deps.sh runs npm ci --prefix ui-tests)",
                ui.join("node_modules").display()
            ));
            return None;
        }
    }
    Some(node)
}

#[test]
fn the_web_ui_works_in_a_real_browser() {
    let root = workspace();
    let ui = root.join("ui-tests");
    let Some(node) = require_browser(&ui) else {
        return;
    };
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let (Some(nginx), Some(filter), Some(flask)) = (
        test_image_ref("nginx"),
        test_image_ref("nginx-imagefilter"),
        test_image("python-flask"),
    ) else {
        return;
    };

    let (data, data_dir, secret_arg) = service_dir("33");
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
    admin(&db, &["signing-key", "generate", "acme"]);
    admin(&db, &["create-org", "other", "--tier", "enterprise"]);
    let key_b = admin(&db, &["create-key", "other", "--name", "bob"])["key"]
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

    // two analysed images of organisation A
    let report: Value = serde_json::from_slice(&std::fs::read(grype()).unwrap()).unwrap();
    let job_a = submit(&base, &key, &nginx, &report);
    let job_b = submit(&base, &key, &filter, &report);
    let digest_of = |job: &str| {
        wait_complete(&base, &key, job, Duration::from_secs(300))["image_digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let image_a = digest_of(&job_a);
    let image_b = digest_of(&job_b);
    assert_ne!(image_a, image_b);
    wait_vex_version(&base, &key, &image_a, 1);
    wait_vex_version(&base, &key, &image_b, 1);

    // the XSS case: a new report for image B, re-decided without a run,
    // whose first finding's description is markup; the stored statement
    // carries it (the UI shows a statement's description with its evidence)
    let before = get(&format!("{base}/api/v1/images/{image_b}"), &key)["vex_version"]
        .as_i64()
        .unwrap();
    let mut hostile = report.clone();
    let first = &mut hostile["matches"][0];
    first["vulnerability"]["description"] = json!(MARKUP);
    let (vuln, package) = (
        first["vulnerability"]["id"].as_str().unwrap().to_owned(),
        first["artifact"]["name"].as_str().unwrap().to_owned(),
    );
    let (code, queued) = post(
        &format!("{base}/api/v1/images/{image_b}/reports"),
        &key,
        &hostile,
    );
    assert_eq!(code, 202, "{queued}");
    wait_complete(
        &base,
        &key,
        queued["job_id"].as_str().unwrap(),
        Duration::from_secs(60),
    );
    wait_vex_version(&base, &key, &image_b, before + 1);
    let listed = get(
        &format!("{base}/api/v1/statements?image={image_b}&limit=1000"),
        &key,
    );
    let carrier = listed["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["vulnerability_id"] == vuln.as_str() && s["package_name"] == package.as_str())
        .unwrap_or_else(|| panic!("no statement of {vuln} in {package} on {image_b}"))
        .clone();
    let detail = get(
        &format!(
            "{base}/api/v1/statements/{}",
            carrier["id"].as_str().unwrap()
        ),
        &key,
    );
    assert_eq!(detail["description"], MARKUP, "{detail}");

    // what the browser submits: the python-flask image with a report that
    // names it by digest (the form has no "report of another image"
    // option): the nginx report's findings retargeted, since what is
    // tested is the upload and the job page, not these verdicts
    let work = tempfile::tempdir().unwrap();
    let flask_digest = layout_digest(&flask);
    let mut retargeted = report.clone();
    retargeted["source"]["target"]["manifestDigest"] = json!(flask_digest);
    retargeted["source"]["target"]["repoDigests"] =
        json!([format!("docker.io/vexxy-test/python-flask@{flask_digest}")]);
    retargeted["source"]["target"]["userInput"] = json!("docker.io/vexxy-test/python-flask:latest");
    let submit_report = work.path().join("python-flask.grype.json");
    std::fs::write(&submit_report, serde_json::to_vec(&retargeted).unwrap()).unwrap();
    let submit_ref = format!("oci:{}:latest", flask.join("oci").display());

    let shots = root.join("target/ui-screenshots");
    if shots.exists() {
        std::fs::remove_dir_all(&shots).unwrap();
    }
    std::fs::create_dir_all(&shots).unwrap();

    // node's output, both streams in order (the shell joins them),
    // through the test's own output: live with --nocapture, kept for a
    // failure otherwise; `timeout` bounds a hung browser
    let mut child = common::Proc(
        StdCommand::new("sh")
            .args(["-c", r#"exec timeout --kill-after=10 900 "$0" "$@" 2>&1"#])
            .arg(&node)
            .arg(ui.join("ui.test.mjs"))
            .current_dir(&root)
            .env("VEXXY_URL", &base)
            .env("VEXXY_KEY", &key)
            .env("VEXXY_KEY_B", &key_b)
            .env("VEXXY_IMAGE_A", &image_a)
            .env("VEXXY_IMAGE_B", &image_b)
            .env("VEXXY_SUBMIT_REF", &submit_ref)
            .env("VEXXY_SUBMIT_REPORT", &submit_report)
            .env("VEXXY_XSS_DIGEST", &image_b)
            .env("VEXXY_SCREENSHOTS", &shots)
            .env("VEXXY_CHROMIUM", CHROMIUM)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let reader = child.0.stdout.take().unwrap();
    let mut said = Vec::new();
    for line in BufReader::new(reader).lines() {
        let line = line.unwrap();
        println!("{line}");
        said.push(line);
    }
    let status = child.0.wait().unwrap();
    // what went wrong: from the first failure on
    let failed_at = said
        .iter()
        .position(|l| l.starts_with("FAIL"))
        .unwrap_or(said.len().saturating_sub(20));
    assert!(
        status.success(),
        "ui-tests/ui.test.mjs failed ({status}):\n{}",
        said[failed_at..].join("\n")
    );

    for page in PAGES {
        for width in [1280, 390] {
            let file = shots.join(format!("{page}-{width}.png"));
            let bytes = std::fs::read(&file)
                .unwrap_or_else(|e| panic!("screenshot {}: {e}", file.display()));
            assert!(
                bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
                "{} is not a PNG image",
                file.display()
            );
        }
    }
}
