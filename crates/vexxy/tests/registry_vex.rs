//! VEX that travels with the image, end to end with the real tools: the
//! nginx test image in a real registry (Debian's docker-registry), a report
//! of it made by the real Trivy 0.59.1 against a vulnerability DB this test
//! writes (an advisory for every source package installed in the image),
//! `vexxy analyze` by registry reference (sandboxed, traced run), `vexxy
//! attest --push`, then `trivy image --vex oci` (the real binary) must
//! report exactly the findings vexxy did not call `not_affected`.
//! `vexxy vex fetch` round-trips the document and refuses tampered or
//! foreign-key attestations; the VEX of the local layout (the demo's way)
//! applies to the pushed image too.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use assert_cmd::Command;
use serde_json::Value;
use vexxy_testkit::{
    registry::{self, Auth, Registry},
    trivy::{self, DbSpec, ScanOptions, VexSource},
};

fn vexxy() -> Command {
    Command::cargo_bin("vexxy").expect("binary built")
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Installed source packages of the image's dpkg status.
fn source_packages(rootfs: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(rootfs.join("var/lib/dpkg/status")).unwrap();
    let mut out = BTreeSet::new();
    for para in text.split("\n\n") {
        let field = |name: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        };
        if !field("Status").is_some_and(|s| s.ends_with(" installed")) {
            continue;
        }
        let Some(name) = field("Package") else {
            continue;
        };
        let source = field("Source")
            .map(|s| s.split(' ').next().unwrap_or_default().to_owned())
            .unwrap_or(name);
        out.insert(source);
    }
    out
}

/// (vulnerability, binary package) pairs.
type Pairs = BTreeSet<(String, String)>;

/// (vulnerability, binary package) pairs of a Trivy report.
fn pairs(report: &trivy::Report) -> Pairs {
    report
        .findings()
        .into_iter()
        .map(|(id, pkg, _)| (id, pkg))
        .collect()
}

/// (vulnerability, binary package) pairs an OpenVEX document gives a
/// status other than not_affected (what a scanner must still report).
fn open_pairs(doc: &Value) -> (Pairs, Pairs) {
    let (mut open, mut closed) = (BTreeSet::new(), BTreeSet::new());
    for s in doc["statements"].as_array().unwrap() {
        let id = s["vulnerability"]["name"].as_str().unwrap().to_owned();
        for p in s["products"].as_array().unwrap() {
            for sub in p["subcomponents"].as_array().into_iter().flatten() {
                let purl = sub["@id"].as_str().unwrap();
                let name = purl
                    .strip_prefix("pkg:deb/debian/")
                    .unwrap()
                    .split(['@', '?'])
                    .next()
                    .unwrap()
                    .replace("%2B", "+");
                if s["status"] == "not_affected" {
                    closed.insert((id.clone(), name));
                } else {
                    open.insert((id.clone(), name));
                }
            }
        }
    }
    (open, closed)
}

struct Keys {
    _dir: tempfile::TempDir,
    private: PathBuf,
    public: PathBuf,
}

fn keygen() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("k");
    vexxy()
        .args(["keygen", "--out-prefix"])
        .arg(&prefix)
        .assert()
        .success();
    Keys {
        private: prefix.with_extension("key"),
        public: prefix.with_extension("pub"),
        _dir: dir,
    }
}

#[test]
fn trivy_applies_the_attestation_attached_in_the_registry() {
    let Some(registry_bin) = registry::tools() else {
        return;
    };
    let Some(trivy) = trivy::trivy() else { return };
    let Some(image) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let Some(rootfs) = vexxy_testkit::image_rootfs("nginx") else {
        return;
    };
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let registry = Registry::start(&registry_bin, Auth::None);
    let digest = registry.push(&image.join("oci"), "latest", "vexxy-test/nginx", false);
    let reference = format!("{}/vexxy-test/nginx:latest", registry.addr);
    let insecure = ["--insecure-registry", registry.addr.as_str()];

    // an advisory (affected, no fix) for every installed source package
    let mut spec = DbSpec::new();
    for (i, src) in source_packages(&rootfs).iter().enumerate() {
        let id = format!("CVE-2099-{:05}", 10000 + i);
        spec = spec.affected("debian 12", src, &id).vulnerability(
            &id,
            "HIGH",
            &format!("test advisory for {src}"),
        );
    }
    let Some(db) = spec.build() else { return };
    let scan = |vex: Option<VexSource>| {
        trivy.scan_image(
            &db,
            &reference,
            &ScanOptions {
                vex,
                insecure: true,
                ..ScanOptions::default()
            },
        )
    };
    let before = scan(None);
    let all = pairs(&before);
    assert!(all.len() > 20, "the DB matches the image: {all:?}");
    assert_eq!(
        before.repo_digests().len(),
        1,
        "{:?}",
        before.repo_digests()
    );

    let work = tempfile::tempdir().unwrap();
    let report = work.path().join("trivy.json");
    std::fs::write(&report, serde_json::to_vec(&before.json).unwrap()).unwrap();
    let cache = work.path().join("cache");

    // the analysis by registry reference, with the report of that image
    let out = work.path().join("by-ref");
    vexxy()
        .args(["analyze", &reference, "-q", "--duration", "10s"])
        .args(insecure)
        .arg("--scan")
        .arg(&report)
        .arg("--out")
        .arg(&out)
        .env("VEXXY_CACHE_DIR", &cache)
        .assert()
        .success();
    let vex_path = out.join("vex.openvex.json");
    let doc = read(&vex_path);
    let product = doc["statements"][0]["products"][0]["@id"].as_str().unwrap();
    assert_eq!(
        product,
        format!(
            "pkg:oci/nginx@sha256%3A{}",
            digest.trim_start_matches("sha256:")
        )
    );
    let (expected_open, expected_closed) = open_pairs(&doc);
    assert!(
        !expected_open.is_empty() && !expected_closed.is_empty(),
        "a test worth its name decides both ways: open {expected_open:?} closed {expected_closed:?}"
    );
    assert_eq!(
        &expected_open | &expected_closed,
        all,
        "every finding of the report has exactly one statement"
    );

    // sign and attach; Trivy discovers it in the registry
    let keys = keygen();
    let attached = vexxy()
        .arg("attest")
        .arg(&vex_path)
        .arg("--key")
        .arg(&keys.private)
        .args(["--push", &reference])
        .args(insecure)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&attached.stdout);
    assert!(
        attached.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&attached.stderr)
    );
    assert!(said.contains(&digest) && said.contains(".att"), "{said}");
    let with_vex = scan(Some(VexSource::Oci));
    assert_eq!(
        pairs(&with_vex),
        expected_open,
        "trivy --vex oci reports exactly what vexxy did not close"
    );

    // the document comes back, verified
    let fetched = work.path().join("fetched.json");
    vexxy()
        .args(["vex", "fetch", &reference, "--key"])
        .arg(&keys.public)
        .args(insecure)
        .arg("-o")
        .arg(&fetched)
        .assert()
        .success();
    assert_eq!(read(&fetched), doc, "vex fetch round-trips the document");
    vexxy()
        .args(["verify", "--image", &reference, "--key"])
        .arg(&keys.public)
        .args(insecure)
        .assert()
        .success();

    // attaching the same attestation again changes nothing
    let again = vexxy()
        .arg("attest")
        .arg(&vex_path)
        .arg("--key")
        .arg(&keys.private)
        .args(["--push", &reference])
        .args(insecure)
        .output()
        .unwrap();
    assert!(again.status.success());
    let again_said = String::from_utf8_lossy(&again.stdout);
    // ECDSA signatures are randomised: a re-signed envelope is a new one,
    // but it supersedes in `.att` and the history keeps both
    assert!(again_said.contains("attached"), "{again_said}");

    // a tampered attestation (statements changed after signing) and one
    // signed by another key are listed, refused and never used
    let envelope = work.path().join("envelope.json");
    vexxy()
        .arg("attest")
        .arg(&vex_path)
        .arg("--key")
        .arg(&keys.private)
        .arg("-o")
        .arg(&envelope)
        .assert()
        .success();
    let tampered = work.path().join("tampered.json");
    let mut env = read(&envelope);
    let payload = base64_decode(env["payload"].as_str().unwrap());
    let mut statement: Value = serde_json::from_slice(&payload).unwrap();
    for s in statement["predicate"]["statements"].as_array_mut().unwrap() {
        if s["status"] != "not_affected" {
            s["status"] = "not_affected".into();
            s["justification"] = "vulnerable_code_not_present".into();
            s.as_object_mut().unwrap().remove("action_statement");
        }
    }
    env["payload"] = base64_encode(&serde_json::to_vec(&statement).unwrap()).into();
    std::fs::write(&tampered, serde_json::to_vec(&env).unwrap()).unwrap();
    vexxy()
        .args(["attach", &reference])
        .arg(&tampered)
        .args(insecure)
        .assert()
        .success();
    let listed = vexxy()
        .args(["vex", "fetch", &reference, "--key"])
        .arg(&keys.public)
        .args(insecure)
        .arg("-o")
        .arg(&fetched)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(listed.status.success(), "{stderr}");
    assert!(
        stderr.contains("not used: signature does not verify"),
        "the tampered attestation is reported: {stderr}"
    );
    assert_eq!(
        read(&fetched),
        doc,
        "and the verified document is still the one used"
    );
    let verified = vexxy()
        .args(["verify", "--image", &reference, "--key"])
        .arg(&keys.public)
        .args(insecure)
        .output()
        .unwrap();
    assert_eq!(
        verified.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(String::from_utf8_lossy(&verified.stderr).contains("does not verify"));
    let other = keygen();
    let wrong_key = vexxy()
        .args(["vex", "fetch", &reference, "--key"])
        .arg(&other.public)
        .args(insecure)
        .output()
        .unwrap();
    assert_eq!(
        wrong_key.status.code(),
        Some(7),
        "nothing verifies with another key: {}",
        String::from_utf8_lossy(&wrong_key.stderr)
    );
    // Trivy 0.59.1 checks no signature: it applies the first `.att`
    // attestation, here the tampered one, which closes everything. Verify
    // with vexxy and hand Trivy the verified file instead:
    let blind = scan(Some(VexSource::Oci));
    assert!(pairs(&blind).is_empty(), "{:?}", pairs(&blind));
    let checked = scan(Some(VexSource::File(fetched.clone())));
    assert_eq!(pairs(&checked), expected_open);

    // without VEX, every finding
    assert_eq!(pairs(&scan(None)), all);

    // the demo's way: the local layout (named by its index) gives a VEX
    // that applies to the pushed image as well
    let local = work.path().join("local");
    vexxy()
        .arg("analyze")
        .arg(format!("oci:{}:latest", image.join("oci").display()))
        .args(["-q", "--duration", "10s", "--scan"])
        .arg(&report)
        .arg("--out")
        .arg(&local)
        .env("VEXXY_CACHE_DIR", &cache)
        .assert()
        .success();
    let local_doc = read(&local.join("vex.openvex.json"));
    assert_eq!(
        local_doc["statements"][0]["products"][0]["@id"].as_str(),
        Some(product)
    );
    let applied = scan(Some(VexSource::File(local.join("vex.openvex.json"))));
    let (local_open, _) = open_pairs(&local_doc);
    assert_eq!(pairs(&applied), local_open);
    assert!(pairs(&applied).len() < all.len());
}

#[test]
fn a_report_of_another_image_is_refused_unless_allowed() {
    let Some(image) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let grype = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../../../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json",
    );
    let work = tempfile::tempdir().unwrap();
    let reference = format!("oci:{}:latest", image.join("oci").display());
    let ours = read(&image.join("oci/index.json"))["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = |extra: &[&str]| {
        vexxy()
            .args(["vex", "--quiet", "--summary", "json", "--image", &reference])
            .args(extra)
            .arg("--scan")
            .arg(&grype)
            .arg("-o")
            .arg(work.path().join("vex.json"))
            .env("VEXXY_CACHE_DIR", work.path().join("cache"))
            .output()
            .unwrap()
    };
    let refused = run(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0")
            && stderr.contains(&ours)
            && stderr.contains("--allow-report-mismatch"),
        "both digests are named: {stderr}"
    );
    assert!(!work.path().join("vex.json").exists(), "nothing written");

    let allowed = run(&["--allow-report-mismatch"]);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    let summary: Value = serde_json::from_slice(&allowed.stdout).unwrap();
    let changed = summary["report_mismatch"]["changed_versions"]
        .as_array()
        .unwrap();
    assert!(!changed.is_empty(), "{summary}");
    // statements name the versions installed in the image, not the report's
    let rootfs = vexxy_testkit::image_rootfs("nginx").unwrap();
    let status = std::fs::read_to_string(rootfs.join("var/lib/dpkg/status")).unwrap();
    let doc = read(&work.path().join("vex.json"));
    let mut checked = 0;
    for c in changed {
        let (pkg, installed, reported) = (
            c["package"].as_str().unwrap(),
            c["installed"].as_str().unwrap(),
            c["reported"].as_str().unwrap(),
        );
        assert!(
            status.contains(&format!("Package: {pkg}\n"))
                && status.contains(&format!("Version: {installed}\n")),
            "{pkg} {installed} is installed"
        );
        let text = doc.to_string();
        if !installed.contains(':') {
            assert!(
                text.contains(&format!(
                    "\"pkg:deb/debian/{pkg}@{}\"",
                    installed.replace('+', "%2B")
                )),
                "{pkg}@{installed} named"
            );
            checked += 1;
        }
        assert!(
            !text.contains(&format!(
                "\"pkg:deb/debian/{pkg}@{}\"",
                reported.replace('+', "%2B")
            )),
            "{pkg}@{reported} not named"
        );
    }
    assert!(checked > 0);
}

#[test]
fn a_local_image_without_a_name_needs_one() {
    let Some(image) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    // the same blobs under an index that names nothing
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("unnamed");
    std::fs::create_dir(&layout).unwrap();
    std::os::unix::fs::symlink(image.join("oci/blobs"), layout.join("blobs")).unwrap();
    std::fs::copy(image.join("oci/oci-layout"), layout.join("oci-layout")).unwrap();
    let mut index = read(&image.join("oci/index.json"));
    index["manifests"][0]["annotations"] =
        serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    let report = work.path().join("report.json");
    // a report naming no image: nothing to compare digests with
    std::fs::write(&report, br#"{"matches": [], "descriptor": {"name": "grype", "version": "0.92.2"}, "source": {"type": "directory", "target": "/"}}"#).unwrap();
    let run = |extra: &[&str]| {
        vexxy()
            .args(["vex", "--quiet", "--summary", "none", "--image"])
            .arg(format!("oci:{}:latest", layout.display()))
            .args(extra)
            .arg("--scan")
            .arg(&report)
            .env("VEXXY_CACHE_DIR", work.path().join("cache"))
            .output()
            .unwrap()
    };
    let refused = run(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--name"), "{stderr}");
    let bad = run(&["--name", "Not A Name"]);
    assert_eq!(bad.status.code(), Some(2));
    let named = run(&["--name", "registry.example/team/nginx"]);
    assert!(
        named.status.success(),
        "{}",
        String::from_utf8_lossy(&named.stderr)
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    let out = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    out.stdout
}

fn base64_encode(bytes: &[u8]) -> String {
    let out = std::process::Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}
