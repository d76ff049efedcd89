//! Functions the advisory names (`docs/functions.md`): the real `vexxy vex`
//! on the nginx test image with each real scanner report of nginx. Prints,
//! per report, the findings whose advisory names a function, how each
//! resolved in the image and the verdict each produced; asserts what holds
//! whatever the report's details: a named function present in the image
//! never yields a function-level `not_affected`, and zlib's CVE-2023-45853
//! (MiniZip's `zipOpenNewFileInZip4_64`, not in `libz.so.1`) is
//! `not_affected` / `vulnerable_code_not_present` when the report has it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use assert_cmd::Command;
use serde_json::Value;

fn reports() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/scanner-reports")
}

/// One (vulnerability, package) whose advisory names functions.
#[derive(Debug)]
struct Named {
    functions: String,
    resolution: String,
    /// What the function-level evidence itself proposed.
    proposed: String,
    /// The statement's status / justification (decided by …).
    verdict: String,
    /// The statement was decided by the function-level evidence.
    by_functions: bool,
    status: String,
    justification: Option<String>,
}

/// `vexxy vex --scan REPORT --image oci-archive:…` and its evidence file.
fn evidence(image_dir: &Path, report: &Path) -> Value {
    let out = tempfile::tempdir().expect("tempdir");
    let ev = out.path().join("evidence.json");
    Command::cargo_bin("vexxy")
        .expect("binary built")
        .args([
            "vex",
            "--quiet",
            "--summary",
            "none",
            "--allow-report-mismatch",
            "--name",
            "nginx",
        ])
        .arg("--scan")
        .arg(report)
        .arg("--image")
        .arg(format!(
            "oci-archive:{}",
            image_dir.join("image.oci.tar").display()
        ))
        .arg("-o")
        .arg(out.path().join("vex.json"))
        .arg("--evidence-out")
        .arg(&ev)
        .env("VEXXY_CACHE_DIR", out.path().join("cache"))
        .assert()
        .success();
    serde_json::from_slice(&std::fs::read(&ev).expect("evidence written")).expect("json")
}

fn named(doc: &Value) -> BTreeMap<(String, String), Named> {
    let mut out = BTreeMap::new();
    for s in doc["statements"].as_array().expect("statements") {
        let vuln = s["vulnerability"].as_str().expect("vulnerability");
        let status = s["status"].as_str().expect("status").to_owned();
        let justification = s["justification"].as_str().map(str::to_owned);
        let provider = s["decided_by"]["provider"].as_str().unwrap_or("-");
        for e in s["evidence"].as_array().into_iter().flatten() {
            let p = e["provider"].as_str().unwrap_or("");
            if p != "advisory-functions" && p != "function-probes" {
                continue;
            }
            let (Some(pkg), Some(resolution)) =
                (e["subject"].as_str(), e["facts"]["resolution"].as_str())
            else {
                continue;
            };
            out.entry((vuln.to_owned(), pkg.to_owned()))
                .or_insert_with(|| Named {
                    functions: e["facts"]["functions"].as_str().unwrap_or("").to_owned(),
                    resolution: resolution.to_owned(),
                    proposed: if e["facts"]["not_asserted"].is_string() {
                        "note: not asserted".to_owned()
                    } else if e["facts"]["inconclusive"].is_string() {
                        "note".to_owned()
                    } else if resolution.starts_with("absent") {
                        "not_affected / vulnerable_code_not_present".to_owned()
                    } else {
                        "-".to_owned()
                    },
                    verdict: format!(
                        "{status}{} ({provider})",
                        justification
                            .as_deref()
                            .map(|j| format!(" / {j}"))
                            .unwrap_or_default()
                    ),
                    by_functions: provider == "advisory-functions" || provider == "function-probes",
                    status: status.clone(),
                    justification: justification.clone(),
                });
        }
    }
    out
}

#[test]
fn functions_the_advisories_name_on_the_nginx_reports() {
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let mut zlib_seen = false;
    for file in [
        "dimpact_nginx-latest_2025-06-08_grype.json",
        "dimpact_nginx-latest_2025-06-08_trivy.json",
    ] {
        let report = reports().join(file);
        let doc = evidence(&dir, &report);
        let named = named(&doc);
        println!(
            "\n## {file}: {} finding(s) whose advisory names a function\n",
            named.len()
        );
        println!(
            "| vulnerability | package | functions | resolution | function-level opinion | verdict |"
        );
        println!("|---|---|---|---|---|---|");
        for ((vuln, pkg), n) in &named {
            println!(
                "| {vuln} | {pkg} | {} | {} | {} | {} |",
                n.functions, n.resolution, n.proposed, n.verdict
            );
        }
        let mut by_kind: BTreeMap<(&str, &str, String), usize> = BTreeMap::new();
        for n in named.values() {
            let decided = if n.by_functions {
                n.verdict.clone()
            } else {
                format!("decided by other evidence: {}", n.status)
            };
            *by_kind
                .entry((n.resolution.as_str(), n.proposed.as_str(), decided))
                .or_default() += 1;
        }
        println!(
            "\n| resolution | function-level opinion | verdict | findings |\n|---|---|---|---|"
        );
        for ((kind, proposed, verdict), count) in &by_kind {
            println!("| {kind} | {proposed} | {verdict} | {count} |");
        }
        assert!(
            !named.is_empty(),
            "{file}: no advisory named a function; the descriptions name many"
        );
        for ((vuln, pkg), n) in &named {
            // a function that is there is never "not present", and without a
            // run nothing function-level says "not in the execute path"
            if n.resolution == "present" {
                assert!(
                    !(n.by_functions && n.status == "not_affected"),
                    "{file}: {vuln} in {pkg}: {} present, yet {}",
                    n.functions,
                    n.verdict
                );
            }
            if n.by_functions && n.status == "not_affected" {
                assert_eq!(
                    n.justification.as_deref(),
                    Some("vulnerable_code_not_present"),
                    "{file}: {vuln} in {pkg}: a static run claims only absence"
                );
                assert!(n.resolution.starts_with("absent"), "{vuln}: {n:?}");
            }
        }
        if let Some(z) = named.get(&("CVE-2023-45853".to_owned(), "zlib1g".to_owned())) {
            zlib_seen = true;
            assert_eq!(z.functions, "zipOpenNewFileInZip4_64", "{z:?}");
            assert_eq!(z.status, "not_affected", "{z:?}");
            assert_eq!(
                z.justification.as_deref(),
                Some("vulnerable_code_not_present"),
                "{z:?}"
            );
            assert!(z.by_functions, "{z:?}");
        }
    }
    assert!(
        zlib_seen,
        "the Trivy report of nginx has CVE-2023-45853 in zlib1g"
    );
}
