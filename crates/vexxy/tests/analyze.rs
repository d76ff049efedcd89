//! Acceptance tests of `vexxy analyze`, `reevaluate` and `diff`: the real
//! binary, the real test images (OCI layouts from
//! `scripts/build-test-images.sh`), the real Grype and Trivy reports of the
//! official nginx image in `../shared/testdata`.
//!
//! Needs root, runc, eBPF and the test images: where one is missing a test
//! prints `SKIP` outside CI and fails in CI (`vexxy_testkit_host`'s gates).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use assert_cmd::Command;
use serde_json::{json, Value};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn vexxy() -> Command {
    let mut c = Command::cargo_bin("vexxy").expect("binary built");
    c.env("SOURCE_DATE_EPOCH", "1767225600");
    c
}

fn reports() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/scanner-reports")
}
fn grype() -> PathBuf {
    reports().join("dimpact_nginx-latest_2025-06-08_grype.json")
}
fn trivy() -> PathBuf {
    reports().join("dimpact_nginx-latest_2025-06-08_trivy.json")
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (package name → set of "status/justification") from an OpenVEX document.
fn verdicts_by_package(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in doc["statements"].as_array().expect("statements") {
        let verdict = format!(
            "{}/{}",
            s["status"].as_str().unwrap_or(""),
            s["justification"].as_str().unwrap_or("")
        );
        for p in s["products"].as_array().expect("products") {
            for sc in p["subcomponents"].as_array().into_iter().flatten() {
                let id = sc["@id"].as_str().unwrap_or("");
                let name = id
                    .rsplit('/')
                    .next()
                    .unwrap_or(id)
                    .split('@')
                    .next()
                    .unwrap_or("");
                out.entry(name.to_owned())
                    .or_default()
                    .insert(verdict.clone());
            }
        }
    }
    out
}

fn assert_valid_openvex(path: &Path) {
    let bytes = std::fs::read(path).expect("openvex");
    let report = vexxy_vex::validate_openvex(&bytes, path).expect("validation runs");
    assert!(
        report.is_valid(),
        "{}: {:?}",
        path.display(),
        report.problems
    );
}

/// Every output an analysis writes.
const OUTPUTS: [&str; 8] = [
    "vex.openvex.json",
    "vex.cdx.json",
    "vex.csaf.json",
    "evidence.json",
    "profile.json",
    "sbom.runtime.cdx.json",
    "report.md",
    "report.html",
];

#[test]
fn nginx_analysis_decides_most_findings_and_never_clears_mapped_libraries() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(img) = vexxy_testkit_host::test_image_ref("nginx") else {
        return;
    };
    let _g = serial();
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("a");
    // unpack once so the timed run measures the analysis
    vexxy()
        .args(["run", &img, "-q", "--duration", "1s", "-o", "/dev/null"])
        .assert()
        .success();

    let began = Instant::now();
    let res = vexxy()
        .args([
            "analyze",
            &img,
            "--duration",
            "30s",
            "--fresh",
            "--allow-report-mismatch",
            "--scan",
        ])
        .arg(grype())
        .arg("--out")
        .arg(&dir)
        .output()
        .expect("run vexxy analyze");
    let wall = began.elapsed();
    let stdout = String::from_utf8_lossy(&res.stdout);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    println!("vexxy analyze nginx --duration 30s: {wall:?} wall\n{stdout}{stderr}");
    assert!(wall <= Duration::from_secs(45), "took {wall:?}");
    for f in OUTPUTS {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert_valid_openvex(&dir.join("vex.openvex.json"));

    let doc = read(&dir.join("vex.openvex.json"));
    let by_pkg = verdicts_by_package(&doc);
    for mapped in ["libc6", "libssl3", "zlib1g", "libpcre2-8-0", "libcrypt1"] {
        if let Some(v) = by_pkg.get(mapped) {
            assert!(
                !v.iter().any(|s| s.starts_with("not_affected")),
                "{mapped}: {v:?}"
            );
        }
    }
    assert!(
        by_pkg.get("libc6").is_some_and(|v| v.contains("affected/")),
        "{:?}",
        by_pkg.get("libc6")
    );
    for unloaded in ["libtiff6", "libheif1", "libaom3"] {
        let v = by_pkg
            .get(unloaded)
            .unwrap_or_else(|| panic!("{unloaded} has no statement"));
        assert_eq!(
            v,
            &BTreeSet::from(["not_affected/vulnerable_code_not_in_execute_path".to_owned()]),
            "{unloaded}"
        );
    }
    // ≥ 85 % of the report's findings decided automatically
    let decided = stdout
        .lines()
        .chain(stderr.lines())
        .find(|l| l.trim_start().starts_with("decided automatically"))
        .and_then(|l| l.split_whitespace().find(|w| w.ends_with('%')))
        .and_then(|p| p.trim_end_matches('%').parse::<u32>().ok())
        .expect("a decided-automatically line in the summary");
    assert!(decided >= 85, "only {decided}% decided");

    // the runtime evidence backs the statements
    let evidence = read(&dir.join("evidence.json"));
    let text = evidence.to_string();
    assert!(
        text.contains("\"runtime\""),
        "no runtime evidence in evidence.json"
    );
    // the runtime SBOM lists what ran, not what is installed
    let sbom = read(&dir.join("sbom.runtime.cdx.json"));
    let names: BTreeSet<&str> = sbom["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains("nginx") && names.contains("libssl3") && names.contains("libc6"),
        "{names:?}"
    );
    assert!(
        !names.contains("libtiff6") && !names.contains("perl-base"),
        "{names:?}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).expect("html");
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("libtiff6"),
        "{}",
        &html[..200.min(html.len())]
    );

    // a second analysis of the same digest and run configuration reuses the profile
    let again = out.path().join("b");
    let began = Instant::now();
    let res = vexxy()
        .args([
            "analyze",
            &img,
            "--duration",
            "30s",
            "--allow-report-mismatch",
            "--scan",
        ])
        .arg(grype())
        .arg("--out")
        .arg(&again)
        .output()
        .expect("run");
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stderr).contains("reusing the stored profile"));
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(
        read(&again.join("profile.json")),
        read(&dir.join("profile.json"))
    );
    let diff = vexxy()
        .args(["diff"])
        .arg(&dir)
        .arg(&again)
        .output()
        .expect("diff");
    assert!(diff.status.success());
    assert!(
        String::from_utf8_lossy(&diff.stdout).contains("no differences"),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );

    // re-evaluation of another report from the stored profile, without a run
    let re = out.path().join("re");
    let began = Instant::now();
    let res = vexxy()
        .args(["reevaluate", "--allow-report-mismatch", "--profile"])
        .arg(dir.join("profile.json"))
        .arg("--scan")
        .arg(trivy())
        .arg("--out")
        .arg(&re)
        .output()
        .expect("reevaluate");
    println!(
        "reevaluate: {:?}\n{}",
        began.elapsed(),
        String::from_utf8_lossy(&res.stdout)
    );
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_valid_openvex(&re.join("vex.openvex.json"));
    let re_pkg = verdicts_by_package(&read(&re.join("vex.openvex.json")));
    if let Some(v) = re_pkg.get("libc6") {
        assert!(!v.iter().any(|s| s.starts_with("not_affected")), "{v:?}");
    }
    // the diff of two different reports shows findings added and removed
    let diff = vexxy()
        .args(["diff", "--format", "json"])
        .arg(&dir)
        .arg(&re)
        .output()
        .expect("diff");
    assert!(diff.status.success());
    let d: Value = serde_json::from_slice(&diff.stdout).expect("diff json");
    assert!(
        d["removed"].as_array().is_some_and(|a| !a.is_empty()),
        "{d}"
    );
}

#[test]
fn nginx_with_image_filter_reports_function_level_evidence() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(img) = vexxy_testkit_host::test_image_ref("nginx-imagefilter") else {
        return;
    };
    let _g = serial();
    let out = tempfile::tempdir().expect("tempdir");
    let res = vexxy()
        .args([
            "analyze",
            &img,
            "-q",
            "--duration",
            "8s",
            "--fresh",
            "--allow-report-mismatch",
            "--scan",
        ])
        .arg(grype())
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run vexxy analyze");
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let profile = read(&out.path().join("profile.json"));
    let probed: BTreeSet<String> = profile["execution_profile"]["functions_executed"]
        .as_array()
        .expect("functions")
        .iter()
        .filter_map(|f| {
            f["library"]
                .as_str()
                .map(|l| l.rsplit('/').next().unwrap_or(l).to_owned())
        })
        .collect();
    assert!(
        probed.iter().any(|l| l.starts_with("libtiff.so")),
        "libtiff not probed: {probed:?}"
    );
    assert!(
        profile["tracer"]["uprobes_attached"].as_u64().unwrap_or(0) > 100,
        "{}",
        profile["tracer"]
    );

    let doc = read(&out.path().join("vex.openvex.json"));
    let evidence = read(&out.path().join("evidence.json")).to_string();
    let by_pkg = verdicts_by_package(&doc);
    // mapped: never not_affected on file-level evidence; a not_affected
    // must rest on "mapped, never entered"
    for lib in ["libtiff6", "libheif1", "libaom3"] {
        let v = by_pkg
            .get(lib)
            .unwrap_or_else(|| panic!("{lib} has no statement"));
        println!("{lib}: {v:?}");
        if v.iter().any(|s| s.starts_with("not_affected")) {
            assert!(
                evidence.contains("never entered"),
                "{lib} not_affected without function-level evidence"
            );
        }
    }
    let entered = profile["execution_profile"]["functions_executed"]
        .as_array()
        .expect("functions")
        .iter()
        .filter(|f| f["calls"].as_u64().unwrap_or(0) > 0)
        .count();
    println!("functions entered: {entered}");
}

/// A Grype-shaped report for the Flask image's Python packages. Synthetic:
/// there is no third-party report of this test image; the CVE ids are
/// real advisories of these packages, the versions are the image's own.
fn flask_report(dir: &Path, versions: &BTreeMap<String, String>) -> PathBuf {
    let matches: Vec<Value> = [
        ("python3-flask", "CVE-2023-30861", "High"),
        ("python3-requests", "CVE-2024-35195", "Medium"),
        ("python3-yaml", "CVE-2020-14343", "Critical"),
        ("python3-jinja2", "CVE-2024-56201", "Medium"),
    ]
    .iter()
    .filter_map(|(pkg, cve, sev)| {
        let version = versions.get(*pkg)?;
        Some(json!({
            "vulnerability": {"id": cve, "namespace": "debian:distro:debian:12", "severity": sev,
                               "fix": {"versions": [], "state": "not-fixed"}},
            "artifact": {"name": pkg, "version": version, "type": "deb",
                         "purl": format!("pkg:deb/debian/{pkg}@{version}?arch=all&distro=debian-12")}
        }))
    })
    .collect();
    let report = json!({
        "matches": matches,
        "source": {"type": "image", "target": {"userInput": "python-flask:test"}},
        "distro": {"name": "debian", "version": "12"},
        "descriptor": {"name": "grype", "version": "0.92.2"}
    });
    let path = dir.join("flask-grype.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report).expect("json")).expect("write report");
    path
}

#[test]
fn flask_imported_packages_are_affected_and_unimported_ones_not() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(img) = vexxy_testkit_host::test_image_ref("python-flask") else {
        return;
    };
    let _g = serial();
    let work = tempfile::tempdir().expect("tempdir");
    // the image's package versions, from vexxy's own SBOM of it
    let sbom = vexxy()
        .args(["sbom", &img, "-q", "--format", "json"])
        .output()
        .expect("sbom");
    assert!(
        sbom.status.success(),
        "{}",
        String::from_utf8_lossy(&sbom.stderr)
    );
    let inv: Value = serde_json::from_slice(&sbom.stdout).expect("inventory json");
    let versions: BTreeMap<String, String> = inv["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_owned(),
                p["version"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let report = flask_report(work.path(), &versions);
    let out = work.path().join("out");
    let res = vexxy()
        .args([
            "analyze",
            &img,
            "-q",
            "--duration",
            "8s",
            "--fresh",
            "--scan",
        ])
        .arg(&report)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run vexxy analyze");
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_valid_openvex(&out.join("vex.openvex.json"));
    let by_pkg = verdicts_by_package(&read(&out.join("vex.openvex.json")));
    assert_eq!(
        by_pkg
            .get("python3-flask")
            .map(|v| v.iter().cloned().collect::<Vec<_>>()),
        Some(vec!["affected/".to_owned()])
    );
    assert_eq!(
        by_pkg
            .get("python3-requests")
            .map(|v| v.iter().cloned().collect::<Vec<_>>()),
        Some(vec!["affected/".to_owned()])
    );
    assert_eq!(
        by_pkg
            .get("python3-yaml")
            .map(|v| v.iter().cloned().collect::<Vec<_>>()),
        Some(vec![
            "not_affected/vulnerable_code_not_in_execute_path".to_owned()
        ])
    );
    // the evidence for yaml is module-level
    let evidence = read(&out.join("evidence.json"));
    let yaml = evidence["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .find(|s| s.to_string().contains("CVE-2020-14343"))
        .expect("yaml statement")
        .to_string();
    assert!(yaml.contains("\"runtime\""), "{yaml}");
}

#[test]
fn analyze_rejects_bad_input_with_exit_2() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(img) = vexxy_testkit_host::test_image_ref("nginx") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let bad = work.path().join("bad.json");
    std::fs::write(&bad, b"{\"matches\": [").expect("write");
    let out = work.path().join("out");
    let res = vexxy()
        .args(["analyze", &img, "-q", "--scan"])
        .arg(&bad)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run");
    assert_eq!(
        res.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stderr).contains("bad.json"));
    assert!(!out.exists(), "an output directory was left behind");
    let res = vexxy()
        .args(["diff"])
        .arg(work.path().join("nope"))
        .arg(work.path())
        .output()
        .expect("run");
    assert_eq!(
        res.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
}
