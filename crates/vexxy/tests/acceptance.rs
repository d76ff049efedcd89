//! Acceptance tests: the real `vexxy` binary on the real scanner reports of
//! the official nginx image and on real Debian rootfs images built by
//! `scripts/build-test-images.sh`.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use assert_cmd::Command;
use serde_json::Value;

const PRODUCT: &str =
    "nginx@sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0";
const TS: &str = "2026-01-01T00:00:00Z";

fn reports() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/scanner-reports")
}
fn grype() -> PathBuf {
    reports().join("dimpact_nginx-latest_2025-06-08_grype.json")
}
fn trivy() -> PathBuf {
    reports().join("dimpact_nginx-latest_2025-06-08_trivy.json")
}
fn spdx() -> PathBuf {
    reports().join("dimpact_nginx-latest_2025-06-08_sbom.spdx.json")
}

fn vexxy() -> Command {
    Command::cargo_bin("vexxy").expect("binary built")
}

/// `vexxy vex` quiet, without a summary, at a fixed time, for the nginx product.
fn vex_cmd() -> Command {
    let mut c = vexxy();
    c.args([
        "vex",
        "--quiet",
        "--summary",
        "none",
        "--timestamp",
        TS,
        "--product",
        PRODUCT,
    ]);
    c
}

/// Runs `vexxy vex` on the nginx image at `dir` and returns the OpenVEX document.
fn analyse(dir: &Path, scan: &Path) -> Value {
    let out = tempfile::tempdir().expect("tempdir");
    let doc = out.path().join("vex.json");
    vex_cmd()
        .arg("--scan")
        .arg(scan)
        .arg("--rootfs")
        .arg(dir.join("rootfs"))
        .arg("--image-config")
        .arg(dir.join("config.json"))
        .arg("-o")
        .arg(&doc)
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&std::fs::read(&doc).expect("written")).expect("json");
    assert_valid_openvex(&v);
    v
}

fn assert_valid_openvex(v: &Value) {
    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../vexxy-vex/schemas/openvex_json_schema.json");
    let schema: Value =
        serde_json::from_slice(&std::fs::read(schema_path).expect("schema")).expect("schema json");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "OpenVEX schema violations: {errors:#?}");
}

/// (package name from the subcomponent purl, status, justification) per statement.
fn statements(v: &Value) -> Vec<(String, BTreeSet<String>, String, Option<String>)> {
    v["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .map(|s| {
            let pkgs = s["products"][0]["subcomponents"]
                .as_array()
                .map(|subs| {
                    subs.iter()
                        .filter_map(|c| c["@id"].as_str())
                        .map(|p| {
                            p.split('@')
                                .next()
                                .unwrap_or(p)
                                .rsplit('/')
                                .next()
                                .unwrap_or(p)
                                .to_owned()
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                s["vulnerability"]["name"]
                    .as_str()
                    .expect("name")
                    .to_owned(),
                pkgs,
                s["status"].as_str().expect("status").to_owned(),
                s["justification"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

const IMAGE_FILTER_CHAIN: &[&str] = &[
    "libtiff6",
    "libheif1",
    "libaom3",
    "libavif15",
    "libde265-0",
    "libjpeg62-turbo",
    "libpng16-16",
    "libwebp7",
];
const LOADED_BY_NGINX: &[&str] = &["libssl3", "libc6", "zlib1g", "libpcre2-8-0", "libcrypt1"];

#[test]
fn nginx_with_modules_disabled_proves_the_image_filter_chain_unreachable() {
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    for scan in [grype(), trivy()] {
        let v = analyse(&dir, &scan);
        let stmts = statements(&v);
        let mut chain_seen = 0;
        for (vuln, pkgs, status, justification) in &stmts {
            if pkgs
                .iter()
                .any(|p| IMAGE_FILTER_CHAIN.contains(&p.as_str()))
            {
                chain_seen += 1;
                assert_eq!(
                    status,
                    "not_affected",
                    "{vuln} in {pkgs:?} ({})",
                    scan.display()
                );
                assert_eq!(
                    justification.as_deref(),
                    Some("vulnerable_code_not_in_execute_path"),
                    "{vuln} in {pkgs:?}"
                );
            }
            // Loaded code is never "not in the execute path"; only the
            // advisory's function being absent from the package's objects
            // (`vulnerable_code_not_present`, e.g. zlib's MiniZip) may
            // clear a loaded library.
            if pkgs.iter().any(|p| LOADED_BY_NGINX.contains(&p.as_str())) {
                assert!(
                    status != "not_affected"
                        || justification.as_deref() == Some("vulnerable_code_not_present"),
                    "{vuln} in {pkgs:?} is loaded by nginx ({}): {status} {justification:?}",
                    scan.display()
                );
            }
        }
        assert!(
            chain_seen >= 5,
            "expected image_filter chain findings in {}, saw {chain_seen}",
            scan.display()
        );
    }
}

#[test]
fn nginx_with_image_filter_enabled_keeps_the_chain_open() {
    let Some(dir) = vexxy_testkit::test_image("nginx-imagefilter") else {
        return;
    };
    let v = analyse(&dir, &grype());
    for (vuln, pkgs, status, justification) in statements(&v) {
        if pkgs
            .iter()
            .any(|p| IMAGE_FILTER_CHAIN.contains(&p.as_str()) || p == "libgd3")
        {
            // as above: only an advisory function absent from the package
            // (libtiff's tiffcrop tool is in libtiff-tools) may clear it
            assert!(
                status != "not_affected"
                    || justification.as_deref() == Some("vulnerable_code_not_present"),
                "{vuln} in {pkgs:?} is loaded through the enabled module: {status} {justification:?}"
            );
        }
    }
}

#[test]
fn every_output_format_and_the_evidence_file() {
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    for fmt in ["openvex", "cyclonedx", "csaf"] {
        let path = out.path().join(format!("vex.{fmt}.json"));
        let evidence = out.path().join(format!("evidence.{fmt}.json"));
        vexxy()
            .args([
                "vex",
                "--quiet",
                "--summary",
                "json",
                "--timestamp",
                TS,
                "--product",
                PRODUCT,
                "--format",
                fmt,
            ])
            .arg("--scan")
            .arg(grype())
            .arg("--sbom")
            .arg(spdx())
            .arg("--rootfs")
            .arg(dir.join("rootfs"))
            .arg("--entrypoint")
            .arg("nginx -g daemon-off")
            .arg("--evidence-out")
            .arg(&evidence)
            .arg("-o")
            .arg(&path)
            .assert()
            .success();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).expect("doc")).expect("json");
        match fmt {
            "openvex" => assert_valid_openvex(&doc),
            "cyclonedx" => assert_eq!(doc["specVersion"], "1.6"),
            _ => assert_eq!(doc["document"]["category"], "csaf_vex"),
        }
        let ev: Value =
            serde_json::from_slice(&std::fs::read(&evidence).expect("evidence")).expect("json");
        let stmts = ev["statements"].as_array().expect("statements");
        assert!(!stmts.is_empty());
        for s in stmts {
            if s["status"] == "not_affected" {
                assert!(
                    !s["evidence"].as_array().expect("evidence").is_empty(),
                    "not_affected without evidence: {s}"
                );
            }
        }
    }
}

#[test]
fn summary_json_reports_triage_counts() {
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let assert = vexxy()
        .args([
            "vex",
            "--quiet",
            "--summary",
            "json",
            "--timestamp",
            TS,
            "--product",
            PRODUCT,
            "-o",
            "/dev/null",
        ])
        .arg("--scan")
        .arg(grype())
        .arg("--rootfs")
        .arg(dir.join("rootfs"))
        .arg("--image-config")
        .arg(dir.join("config.json"))
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&assert.get_output().stdout).expect("summary json");
    assert_eq!(v["findings"], 135);
    assert_eq!(v["vulnerabilities"], 88);
    let automated = v["decided_automatically"].as_u64().expect("count");
    let under = v["under_investigation"].as_u64().expect("count");
    assert_eq!(
        automated + under + v["existing_statements"].as_u64().expect("count"),
        135
    );
    eprintln!("nginx grype triage: {v:#}");
}

#[test]
fn fail_on_undecided_exits_1() {
    vexxy()
        .args([
            "vex",
            "--quiet",
            "--summary",
            "none",
            "--fail-on-undecided",
            "--product",
            PRODUCT,
            "-o",
            "/dev/null",
        ])
        .arg("--scan")
        .arg(trivy())
        .assert()
        .code(1);
}

#[test]
fn report_only_openvex_is_stable() {
    let out = vex_cmd()
        .arg("--scan")
        .arg(trivy())
        .arg("--sbom")
        .arg(spdx())
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).expect("utf8");
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_valid_openvex(&v);
    insta::assert_snapshot!("trivy_with_sbom_openvex", text);
}

/// Bad inputs: exit 2, an error naming the file, and no output file.
#[test]
fn bad_inputs_exit_2_without_partial_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, body: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).expect("write");
        p
    };
    let truncated = {
        let full = std::fs::read(grype()).expect("grype");
        write("truncated.json", &full[..full.len() / 2])
    };
    let cases: Vec<(&str, PathBuf)> = vec![
        ("malformed", write("malformed.json", b"{\"matches\": [")),
        ("truncated", truncated),
        ("unknown format", write("unknown.json", b"{\"hello\": 1}")),
        ("binary", write("binary.json", &[0u8, 159, 146, 150, 255])),
        ("sbom as scan", spdx()),
        ("missing file", dir.path().join("does-not-exist.json")),
        ("a directory", {
            let d = dir.path().join("a-directory.json");
            std::fs::create_dir(&d).expect("mkdir");
            d
        }),
        ("a fifo", {
            let f = dir.path().join("a-fifo.json");
            let made = std::process::Command::new("mkfifo").arg(&f).status();
            assert!(made.is_ok_and(|s| s.success()), "mkfifo");
            f
        }),
        (
            "a name too long",
            dir.path().join(format!("{}.json", "n".repeat(300))),
        ),
    ];
    for (name, path) in cases {
        let out = dir
            .path()
            .join(format!("{}.out.json", name.replace(' ', "-")));
        let began = std::time::Instant::now();
        let assert = vexxy()
            .args(["vex", "--quiet", "--product", PRODUCT])
            .arg("--scan")
            .arg(&path)
            .arg("-o")
            .arg(&out)
            .timeout(std::time::Duration::from_secs(20))
            .assert();
        let output = assert.get_output();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            began.elapsed() < std::time::Duration::from_secs(10),
            "{name}: took {:?} (a FIFO must not block)",
            began.elapsed()
        );
        let file_name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            stderr.contains(&file_name),
            "{name}: error must name the file: {stderr}"
        );
        assert!(!out.exists(), "{name}: no output may be written");
    }
}

#[test]
fn merge_validate_attest_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.json");
    vex_cmd()
        .arg("--scan")
        .arg(trivy())
        .arg("-o")
        .arg(&a)
        .assert()
        .success();
    vexxy().args(["vex", "validate"]).arg(&a).assert().success();

    // A human's statement that overrides the automated one.
    let human = dir.path().join("human.json");
    std::fs::write(
        &human,
        format!(
            r#"{{"@context":"https://openvex.dev/ns/v0.2.0","@id":"urn:example:human","author":"alice@example.com",
            "timestamp":"2025-01-01T00:00:00Z","version":1,"statements":[{{"vulnerability":{{"name":"CVE-2023-6879"}},
            "products":[{{"@id":"pkg:oci/nginx@sha256%3A{}"}}],"status":"affected","action_statement":"rebuild without libaom"}}]}}"#,
            &PRODUCT[13..]
        ),
    )
    .expect("write");
    let merged = dir.path().join("merged.json");
    vexxy()
        .args(["vex", "merge"])
        .arg(&a)
        .arg(&human)
        .arg("-o")
        .arg(&merged)
        .assert()
        .success();
    let m: Value = serde_json::from_slice(&std::fs::read(&merged).expect("merged")).expect("json");
    let s = m["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .find(|s| s["vulnerability"]["name"] == "CVE-2023-6879")
        .expect("statement");
    assert_eq!(s["status"], "affected");
    assert_valid_openvex(&m);

    // The human statement is respected when generating too.
    let b = dir.path().join("b.json");
    vex_cmd()
        .arg("--scan")
        .arg(trivy())
        .arg("--vex")
        .arg(&human)
        .arg("-o")
        .arg(&b)
        .assert()
        .success();
    let bv: Value = serde_json::from_slice(&std::fs::read(&b).expect("b")).expect("json");
    let s = bv["statements"]
        .as_array()
        .expect("s")
        .iter()
        .find(|s| s["vulnerability"]["name"] == "CVE-2023-6879")
        .expect("stmt");
    assert_eq!(s["status"], "affected");

    // Sign and verify with both key types; a tampered envelope fails with 2.
    for alg in ["ecdsa-p256", "ed25519"] {
        let prefix = dir.path().join(alg);
        vexxy()
            .args(["keygen", "--algorithm", alg, "--out-prefix"])
            .arg(&prefix)
            .assert()
            .success();
        let key = PathBuf::from(format!("{}.key", prefix.display()));
        let public = PathBuf::from(format!("{}.pub", prefix.display()));
        let env = dir.path().join(format!("{alg}.dsse.json"));
        vexxy()
            .arg("attest")
            .arg("--key")
            .arg(&key)
            .args(["--subject", PRODUCT])
            .arg(&a)
            .arg("-o")
            .arg(&env)
            .assert()
            .success();
        vexxy()
            .arg("verify")
            .arg("--key")
            .arg(&public)
            .arg(&env)
            .assert()
            .success()
            .stdout(predicates::str::contains("verified: nginx@sha256:fb39280b"));
        let mut e: Value =
            serde_json::from_slice(&std::fs::read(&env).expect("env")).expect("json");
        e["payloadType"] = Value::from("application/vnd.other+json");
        let tampered = dir.path().join(format!("{alg}.tampered.json"));
        std::fs::write(&tampered, serde_json::to_vec(&e).expect("json")).expect("write");
        vexxy()
            .arg("verify")
            .arg("--key")
            .arg(&public)
            .arg(&tampered)
            .assert()
            .code(2);
    }
}

/// `vexxy sbom` from every image form gives the same packages; SPDX and
/// CycloneDX carry file ownership.
#[test]
fn sbom_from_every_image_form() {
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    if !dir.join("image.oci.tar").is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "image archives are missing in CI"
        );
        eprintln!("skipping: archives absent (scripts/build-test-images.sh --with-archives)");
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let cache = out.path().join("cache");
    let mut sets = Vec::new();
    for form in [
        format!("dir:{}", dir.join("rootfs").display()),
        format!("oci:{}:latest", dir.join("oci").display()),
        format!("oci-archive:{}", dir.join("image.oci.tar").display()),
        format!("docker-archive:{}", dir.join("image.docker.tar").display()),
    ] {
        let path = out.path().join("sbom.json");
        vexxy()
            .args(["sbom", "--quiet", "--timestamp", TS, &form, "-o"])
            .arg(&path)
            .env("VEXXY_CACHE_DIR", &cache)
            .assert()
            .success();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).expect("sbom")).expect("json");
        assert_eq!(v["specVersion"], "1.6", "{form}");
        let comps = v["components"].as_array().expect("components");
        let names: BTreeSet<String> = comps
            .iter()
            .map(|c| {
                format!(
                    "{}@{}",
                    c["name"].as_str().unwrap_or(""),
                    c["version"].as_str().unwrap_or("")
                )
            })
            .collect();
        let libc = comps.iter().find(|c| c["name"] == "libc6").expect("libc6");
        let locations: Vec<&str> = libc["evidence"]["occurrences"]
            .as_array()
            .expect("occurrences")
            .iter()
            .filter_map(|o| o["location"].as_str())
            .collect();
        assert!(
            locations.contains(&"/usr/lib/x86_64-linux-gnu/libc.so.6"),
            "{form}: libc6 owns libc.so.6"
        );
        sets.push((form, names));
    }
    for (form, names) in &sets[1..] {
        assert_eq!(names, &sets[0].1, "{form} differs from the rootfs");
    }
    let spdx = out.path().join("sbom.spdx.json");
    vexxy()
        .args(["sbom", "--quiet", "--format", "spdx"])
        .arg(format!(
            "oci-archive:{}",
            dir.join("image.oci.tar").display()
        ))
        .arg("-o")
        .arg(&spdx)
        .env("VEXXY_CACHE_DIR", &cache)
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&std::fs::read(&spdx).expect("spdx")).expect("json");
    assert_eq!(v["spdxVersion"], "SPDX-2.3");
    assert!(v["relationships"]
        .as_array()
        .expect("rels")
        .iter()
        .any(|r| r["relationshipType"] == "CONTAINS"));
}

/// `vexxy vex --image` unpacks the image itself and decides like `--rootfs`.
#[test]
fn vex_from_an_image_archive_matches_the_rootfs() {
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    if !dir.join("image.oci.tar").is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "image archives are missing in CI"
        );
        return;
    }
    let from_rootfs = analyse(&dir, &grype());
    let out = tempfile::tempdir().expect("tempdir");
    let path = out.path().join("vex.json");
    vex_cmd()
        .arg("--allow-report-mismatch")
        .arg("--scan")
        .arg(grype())
        .arg("--image")
        .arg(format!(
            "oci-archive:{}",
            dir.join("image.oci.tar").display()
        ))
        .arg("-o")
        .arg(&path)
        .env("VEXXY_CACHE_DIR", out.path().join("cache"))
        .assert()
        .success();
    let from_image: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("vex")).expect("json");
    assert_eq!(statements(&from_image), statements(&from_rootfs));
}

#[test]
fn bad_image_references_exit_2() {
    for reference in [
        "oci-archive:/does/not/exist.tar",
        "docker-archive:/etc/hostname",
        "UPPER/Case:tag",
    ] {
        let assert = vexxy()
            .args(["sbom", "--quiet", reference])
            .env(
                "VEXXY_CACHE_DIR",
                std::env::temp_dir().join("vexxy-bad-refs"),
            )
            .assert();
        let output = assert.get_output();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{reference}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
