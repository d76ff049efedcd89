//! Acceptance tests of `vexxy vex --kubescape-profile`: the real binary,
//! the real Grype report of nginx, the nginx test image (built by
//! `scripts/build-test-images.sh --with-archives`) and the Kubescape
//! fixtures of `crates/vexxy-kubescape/tests/fixtures` (their sources are
//! named in `crates/vexxy-kubescape/tests/import.rs`).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

const TS: &str = "2026-01-01T00:00:00Z";
/// The digest the fixtures name; replaced by the test image's own, which
/// depends on when it was built.
const FIXTURE_DIGEST: &str =
    "sha256:f466f670b9d6f0b1341d62f8201a5fa1781de2c7f2e37fd3f9b9ef1a61b143d5";

fn grype() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vexxy-kubescape/tests/fixtures")
        .join(name)
}

/// The test image's manifest digest, from its OCI layout.
fn manifest_digest(image_dir: &Path) -> String {
    let index: Value = serde_json::from_slice(
        &std::fs::read(image_dir.join("oci/index.json")).expect("index.json"),
    )
    .expect("json");
    index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_owned()
}

/// `vexxy vex` of the nginx test image with the Grype report, and the
/// statements of the document it wrote.
fn vex(image_dir: &Path, tmp: &Path, extra: &[&Path]) -> Vec<Value> {
    let out = tmp.join("vex.json");
    let mut cmd = Command::cargo_bin("vexxy").expect("binary built");
    cmd.args([
        "vex",
        "--quiet",
        "--summary",
        "none",
        "--timestamp",
        TS,
        "--allow-report-mismatch",
        "--embed-evidence",
        "--name",
        "docker.io/vexxy-test/nginx",
    ])
    .arg("--scan")
    .arg(grype())
    .arg("--image")
    .arg(format!(
        "oci-archive:{}",
        image_dir.join("image.oci.tar").display()
    ))
    .arg("-o")
    .arg(&out)
    .env("VEXXY_CACHE_DIR", tmp.join("cache"));
    for p in extra {
        cmd.arg("--kubescape-profile").arg(p);
    }
    let assert = cmd.assert();
    let output = assert.get_output();
    assert!(
        output.status.success(),
        "vexxy vex: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).expect("vex")).expect("json");
    doc["statements"].as_array().expect("statements").clone()
}

/// The statements about a package (by its subcomponent purl's name).
fn about<'a>(statements: &'a [Value], package: &str) -> Vec<&'a Value> {
    statements
        .iter()
        .filter(|s| {
            s["products"][0]["subcomponents"]
                .as_array()
                .is_some_and(|subs| {
                    subs.iter().any(|c| {
                        c["@id"].as_str().is_some_and(|id| {
                            id.split('@')
                                .next()
                                .is_some_and(|n| n.ends_with(&format!("/{package}")))
                        })
                    })
                })
        })
        .collect()
}

fn image() -> Option<PathBuf> {
    let dir = vexxy_testkit::test_image("nginx")?;
    if !dir.join("image.oci.tar").is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "image archives are missing in CI"
        );
        return None;
    }
    Some(dir)
}

/// The fixture's ApplicationProfile, pinned to the test image's digest.
fn pinned_profile(dir: &Path, tmp: &Path) -> PathBuf {
    let text = std::fs::read_to_string(fixture("nginx-applicationprofile.yaml")).expect("fixture");
    assert!(text.contains(FIXTURE_DIGEST));
    let pinned = tmp.join("applicationprofile.yaml");
    std::fs::write(&pinned, text.replace(FIXTURE_DIGEST, &manifest_digest(dir))).expect("write");
    pinned
}

#[test]
fn kubescape_profile_decides_the_findings() {
    let Some(dir) = image() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let profile = pinned_profile(&dir, tmp.path());

    // static evidence alone: the image_filter module is disabled in the
    // image's own configuration, so libtiff6 is not in the execute path
    let statically = vex(&dir, tmp.path(), &[]);
    let tiff = about(&statically, "libtiff6");
    assert!(!tiff.is_empty(), "the report has libtiff6 findings");
    assert!(tiff.iter().all(|s| s["status"] == "not_affected"));

    // the cluster's nginx opened the module and libtiff: no longer provable
    let with = vex(&dir, tmp.path(), &[&profile]);
    let tiff = about(&with, "libtiff6");
    assert!(!tiff.is_empty());
    for s in &tiff {
        assert_ne!(s["status"], "not_affected", "libtiff6 was opened: {s:#}");
    }
    // libxml2 (the disabled xslt module's) was never opened: not affected,
    // and the evidence names the Kubescape profile
    let xml = about(&with, "libxml2");
    assert!(!xml.is_empty(), "the report has libxml2 findings");
    for s in &xml {
        assert_eq!(s["status"], "not_affected", "{s:#}");
        assert_eq!(s["justification"], "vulnerable_code_not_in_execute_path");
        let text = s.to_string();
        assert!(
            text.contains("Kubescape ApplicationProfile default/replicaset-nginx-7d9f8c6b5"),
            "{s:#}"
        );
    }
    // libc6 (opened, loaded by nginx) is never not_affected
    for s in about(&with, "libc6") {
        assert_ne!(s["status"], "not_affected", "{s:#}");
    }
}

#[test]
fn kubescape_profile_of_another_image_is_refused() {
    let Some(dir) = image() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let assert = Command::cargo_bin("vexxy")
        .expect("binary built")
        .args([
            "vex",
            "--quiet",
            "--summary",
            "none",
            "--allow-report-mismatch",
        ])
        .arg("--scan")
        .arg(grype())
        .arg("--image")
        .arg(format!(
            "oci-archive:{}",
            dir.join("image.oci.tar").display()
        ))
        .arg("--kubescape-profile")
        .arg(fixture("list.yaml"))
        .env("VEXXY_CACHE_DIR", tmp.path().join("cache"))
        .assert();
    let output = assert.get_output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--kubescape-profile: the profiles are of"),
        "{stderr}"
    );
}

#[test]
fn malformed_kubescape_objects_exit_2_naming_the_field() {
    for (name, field) in [
        (
            "malformed/path-not-string.yaml",
            "spec.containers[0].opens[2].path",
        ),
        ("malformed/bad-apiversion.yaml", "apiVersion"),
        ("malformed/missing-spec.yaml", "spec"),
        ("malformed/wrong-kind.yaml", "kind"),
    ] {
        let path = fixture(name);
        let assert = Command::cargo_bin("vexxy")
            .expect("binary built")
            .args(["vex", "--quiet", "--summary", "none"])
            .arg("--scan")
            .arg(grype())
            .arg("--kubescape-profile")
            .arg(&path)
            .assert();
        let output = assert.get_output();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{}: {field}: ", path.display())),
            "{name}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{name}: no partial output");
    }
}
