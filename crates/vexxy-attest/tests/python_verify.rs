//! Cross-check with an independent implementation: envelopes signed here
//! must verify with `scripts/verify-envelope.py` (Python securesystemslib),
//! and tampered ones must not.
//!
//! When python3 or securesystemslib is missing the test fails if `CI` is set
//! in the environment, and skips with a printed reason otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use vexxy_attest::{attest, generate, KeyAlgorithm, SigningKey, OPENVEX_PREDICATE_TYPE};

const DIGEST_HEX: &str = "fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/verify-envelope.py")
}

/// `None` when python3 with securesystemslib and cryptography can run the
/// script; otherwise the reason it cannot.
fn python_unavailable() -> Option<String> {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import cryptography, securesystemslib.dsse, securesystemslib.signer",
        ])
        .output();
    match probe {
        Err(e) => Some(format!("python3 cannot be run: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "securesystemslib[crypto] is not importable by python3 ({}); \
             install it with: python3 -m pip install 'securesystemslib[crypto]'",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

fn run(envelope: &Path, public_key: &Path) -> Output {
    Command::new("python3")
        .arg(script())
        .arg(envelope)
        .arg(public_key)
        .output()
        .expect("python3 runs")
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn predicate() -> Value {
    json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/python",
        "author": "vexxy test",
        "timestamp": "2025-01-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "CVE-2023-0002"},
            "products": [{"@id": format!("pkg:oci/nginx@sha256:{DIGEST_HEX}")}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_present"
        }]
    })
}

#[test]
fn securesystemslib_verifies_our_envelopes_and_rejects_tampered_ones() {
    assert!(script().is_file(), "{} is missing", script().display());
    if let Some(reason) = python_unavailable() {
        vexxy_testkit::skip_or_fail(format!("the securesystemslib cross-check: {reason}"));
        return;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let fixture_sec1 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/p256-sec1.key"
    ))
    .expect("fixture");
    let mut keys: Vec<(String, SigningKey)> = Vec::new();
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
        let pair = generate(alg).expect("key generation");
        keys.push((
            alg.to_string(),
            SigningKey::from_pem(&pair.private_pem).expect("key loads"),
        ));
    }
    keys.push((
        "p256-sec1-fixture".to_owned(),
        SigningKey::from_pem(&fixture_sec1).expect("key loads"),
    ));

    let subject = "registry.example/team/nginx";
    let digest = format!("sha256:{DIGEST_HEX}");
    for (label, key) in &keys {
        let public = dir.path().join(format!("{label}.pub"));
        std::fs::write(&public, key.verifying_key().to_pem().expect("pem")).expect("write key");
        let envelope =
            attest(subject, &digest, OPENVEX_PREDICATE_TYPE, &predicate(), key).expect("attest");
        let good: Value = serde_json::to_value(&envelope).expect("json");

        let write = |name: &str, v: &Value| {
            let path = dir.path().join(format!("{label}-{name}.json"));
            std::fs::write(&path, serde_json::to_vec_pretty(v).expect("json"))
                .expect("write envelope");
            path
        };

        // Genuine envelope: exit 0, subject printed, found by our keyid.
        let out = run(&write("good", &good), &public);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{label}: genuine envelope\n{}",
            describe(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("subject: {subject} sha256:{DIGEST_HEX}")),
            "{label}: {stdout}"
        );
        assert!(
            stdout.contains(key.keyid()),
            "{label}: keyid not reported: {stdout}"
        );
        assert!(stdout.contains(OPENVEX_PREDICATE_TYPE), "{label}: {stdout}");

        // Tampered envelopes: exit 1.
        let payload = STANDARD
            .decode(good["payload"].as_str().expect("payload"))
            .expect("base64");
        let text = String::from_utf8(payload).expect("utf-8");
        let forged = text.replace("not_affected", "affected");
        assert_ne!(forged, text);
        let mut tampered_payload = good.clone();
        tampered_payload["payload"] = json!(STANDARD.encode(forged));
        let mut tampered_type = good.clone();
        tampered_type["payloadType"] = json!("application/vnd.in-toto+jsonx");
        let mut no_signatures = good.clone();
        no_signatures["signatures"] = json!([]);
        let mut bad_base64 = good.clone();
        bad_base64["payload"] = json!("not*base64");
        for (name, v) in [
            ("tampered-payload", &tampered_payload),
            ("tampered-type", &tampered_type),
            ("no-signatures", &no_signatures),
            ("bad-base64", &bad_base64),
        ] {
            let out = run(&write(name, v), &public);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{label}: {name} must fail verification\n{}",
                describe(&out)
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("verification failed"),
                "{label}: {name}\n{}",
                describe(&out)
            );
        }
    }

    // A genuine envelope checked with another key: exit 1.
    let (_, signer) = &keys[0];
    let (other_label, _) = &keys[2];
    let envelope = attest(
        subject,
        &digest,
        OPENVEX_PREDICATE_TYPE,
        &predicate(),
        signer,
    )
    .expect("attest");
    let path = dir.path().join("wrong-key.json");
    std::fs::write(&path, serde_json::to_vec(&envelope).expect("json")).expect("write envelope");
    let out = run(&path, &dir.path().join(format!("{other_label}.pub")));
    assert_eq!(out.status.code(), Some(1), "wrong key\n{}", describe(&out));

    // Usage errors: exit 2.
    let out = Command::new("python3")
        .arg(script())
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing argument\n{}",
        describe(&out)
    );
    let out = run(&path, &dir.path().join("absent.pub"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "unreadable key\n{}",
        describe(&out)
    );
    let out = run(&path, &path);
    assert_eq!(out.status.code(), Some(2), "not a key\n{}", describe(&out));
}
