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
        // only the advisory's function being absent from libtiff6 (a
        // tiffcrop bug: libtiff-tools' program) may still clear it
        assert!(
            s["status"] != "not_affected" || s["justification"] == "vulnerable_code_not_present",
            "libtiff6 was opened: {s:#}"
        );
    }
    assert!(
        tiff.iter().any(|s| s["status"] != "not_affected"),
        "libtiff6 was opened, yet every statement clears it"
    );
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

/// Kubescape's OpenVEX for the test image: `not_affected` for a libtiff6
/// vulnerability (its "not loaded into memory"), `affected` for another.
fn pinned_vex(dir: &Path, tmp: &Path) -> PathBuf {
    let digest = manifest_digest(dir);
    let product = format!("docker.io/vexxy-test/nginx@{digest}");
    // the image's libtiff6 is newer than the report's: no version, so the
    // statements cover it whatever the image's build
    let purl = "pkg:deb/debian/libtiff6?arch=amd64&distro=debian-12";
    let text = format!(
        r#"apiVersion: spdx.softwarecomposition.kubescape.io/v1beta1
kind: OpenVulnerabilityExchangeContainer
metadata:
  name: replicaset-nginx-7d9f8c6b5-nginx-c4f1
  namespace: default
spec:
  "@context": https://openvex.dev/ns/v0.2.0
  "@id": https://openvex.dev/docs/public/vex-0d5c8f2a
  author: Kubescape vulnerability scanner
  timestamp: "2026-01-01T00:20:00Z"
  version: 1
  statements:
  - vulnerability: {{name: CVE-2023-6277}}
    products:
    - "@id": {product}
      identifiers: {{purl: "{purl}"}}
    status: not_affected
    justification: vulnerable_code_not_present
    impact_statement: Vulnerable component is not loaded into the memory
  - vulnerability: {{name: CVE-2023-52355}}
    products:
    - "@id": {product}
      identifiers: {{purl: "{purl}"}}
    status: affected
    impact_statement: Vulnerable component is loaded into the memory
"#
    );
    let path = tmp.join("vex.yaml");
    std::fs::write(&path, text).expect("write");
    path
}

/// Kubescape's `not_affected` never decides a finding: the profile of the
/// same import shows libtiff opened, so vexxy's own evidence vetoes it and
/// the claim is only recorded. Its `affected` is respected.
#[test]
fn kubescape_not_affected_never_overrides_the_profile() {
    let Some(dir) = image() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let profile = pinned_profile(&dir, tmp.path());
    let vex_file = pinned_vex(&dir, tmp.path());
    let with = vex(&dir, tmp.path(), &[&profile, &vex_file]);
    let by_id = |id: &str| {
        about(&with, "libtiff6")
            .into_iter()
            .find(|s| s["vulnerability"]["name"] == id)
            .unwrap_or_else(|| panic!("a statement about {id}"))
    };
    let claimed = by_id("CVE-2023-6277");
    assert_ne!(
        claimed["status"], "not_affected",
        "libtiff6 was opened: Kubescape's not_affected must not decide it: {claimed:#}"
    );
    let text = claimed.to_string();
    assert!(text.contains("third-party-claim"), "{claimed:#}");
    assert!(
        text.contains("Kubescape vulnerability scanner stated not_affected"),
        "{claimed:#}"
    );
    assert!(
        text.contains("existing-vex:https://openvex.dev/docs/public/vex-0d5c8f2a"),
        "{claimed:#}"
    );
    // Kubescape's affected only adds caution: respected as it is
    let affected = by_id("CVE-2023-52355");
    assert_eq!(affected["status"], "affected", "{affected:#}");

    // without the profile, vexxy's static evidence decides (the
    // image_filter module is disabled: not in the execute path) and the
    // claim is still only evidence, at vexxy's own confidence
    let statically = vex(&dir, tmp.path(), &[&vex_file]);
    let claimed = about(&statically, "libtiff6")
        .into_iter()
        .find(|s| s["vulnerability"]["name"] == "CVE-2023-6277")
        .expect("CVE-2023-6277");
    assert_eq!(
        claimed["justification"], "vulnerable_code_not_in_execute_path",
        "vexxy's justification, not Kubescape's: {claimed:#}"
    );
    assert!(
        claimed.to_string().contains("third-party-claim"),
        "{claimed:#}"
    );
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
        stderr.contains("records another image (or no digest)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&fixture("list.yaml").display().to_string()),
        "names the file: {stderr}"
    );
    // the file's image ids are not echoed
    assert!(
        !stderr.contains("0000000000000000000000000000000000000000000000000000000000000001"),
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
        (
            "malformed/opens-not-sequence.yaml",
            "spec.containers[0].opens",
        ),
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
        // errors name the field, never the file's values
        for value in [
            "VEXXY-DISTINCTIVE-VALUE-7f3a9c1e",
            "NetworkNeighborhood",
            "softwarecomposition.kubescape.io/v1\"",
        ] {
            assert!(!stderr.contains(value), "{name}: echoes {value}: {stderr}");
        }
    }
}
