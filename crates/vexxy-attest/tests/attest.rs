//! Keys, DSSE round trips, PAE and the tamper table.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use vexxy_attest::{
    attest, generate, pae, verify, AttestError, Envelope, EnvelopeSignature, KeyAlgorithm,
    SigningKey, VerifyingKey, IN_TOTO_PAYLOAD_TYPE, OPENVEX_PREDICATE_TYPE,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const DIGEST: &str = "sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).expect("fixture readable")
}

fn signing(name: &str) -> SigningKey {
    SigningKey::from_pem(&fixture(name)).expect("fixture private key loads")
}

fn verifying(name: &str) -> VerifyingKey {
    VerifyingKey::from_pem(&fixture(name)).expect("fixture public key loads")
}

fn vex() -> Value {
    json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/1",
        "author": "vexxy test",
        "timestamp": "2025-01-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "CVE-2023-0001"},
            "products": [{"@id": "pkg:oci/nginx@sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0"}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path"
        }]
    })
}

fn fresh(alg: KeyAlgorithm) -> (SigningKey, VerifyingKey) {
    let pair = generate(alg).expect("key generation");
    let sk = SigningKey::from_pem(&pair.private_pem).expect("generated private key loads");
    let vk = VerifyingKey::from_pem(&pair.public_pem).expect("generated public key loads");
    (sk, vk)
}

fn signed_json(key: &SigningKey) -> Value {
    let envelope = attest(
        "registry.example/nginx",
        DIGEST,
        OPENVEX_PREDICATE_TYPE,
        &vex(),
        key,
    )
    .expect("attest");
    serde_json::to_value(&envelope).expect("envelope serializes")
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json serializes")
}

// ---------------------------------------------------------------- keys

#[test]
fn algorithm_names_parse_and_display() {
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
        assert_eq!(alg.to_string().parse::<KeyAlgorithm>().ok(), Some(alg));
    }
    assert_eq!(
        "ecdsa-p256".parse::<KeyAlgorithm>().ok(),
        Some(KeyAlgorithm::EcdsaP256)
    );
    assert_eq!(
        "ed25519".parse::<KeyAlgorithm>().ok(),
        Some(KeyAlgorithm::Ed25519)
    );
    for bad in ["", "rsa", "ECDSA-P256", "p256", "ed448"] {
        let err = bad
            .parse::<KeyAlgorithm>()
            .expect_err("unknown name refused");
        assert!(matches!(err, AttestError::UnknownAlgorithm(_)));
        assert!(err.is_bad_input());
        assert!(err.to_string().contains("unknown key algorithm"), "{err}");
    }
}

#[test]
fn generated_keys_are_pkcs8_and_spki_pem() {
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
        let pair = generate(alg).expect("key generation");
        assert!(
            pair.private_pem
                .starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{alg}"
        );
        assert!(
            pair.private_pem.ends_with("-----END PRIVATE KEY-----\n"),
            "{alg}"
        );
        assert!(
            pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{alg}"
        );
        assert!(
            pair.public_pem.ends_with("-----END PUBLIC KEY-----\n"),
            "{alg}"
        );
        assert!(
            !format!("{pair:?}").contains(pair.private_pem.as_str()),
            "debug leaks the private key"
        );
        let sk = SigningKey::from_pem(&pair.private_pem).expect("private key loads");
        let vk = VerifyingKey::from_pem(&pair.public_pem).expect("public key loads");
        assert_eq!(sk.algorithm(), alg);
        assert_eq!(vk.algorithm(), alg);
        assert_eq!(sk.verifying_key(), &vk);
        assert_eq!(sk.keyid(), vk.keyid());
        assert_eq!(vk.to_pem().expect("pem"), pair.public_pem);
        assert_eq!(sk.to_pem().expect("pem").as_str(), pair.private_pem);
        let debug = format!("{sk:?}");
        assert!(
            debug.contains(sk.keyid()) && debug.contains("SigningKey"),
            "{debug}"
        );
    }
    let a = generate(KeyAlgorithm::Ed25519).expect("key generation");
    let b = generate(KeyAlgorithm::Ed25519).expect("key generation");
    assert_ne!(a.public_pem, b.public_pem, "two generated keys are equal");
}

/// The keyids securesystemslib 1.6 computes for the fixtures' public keys
/// (`SSlibKey.from_crypto(load_pem_public_key(...)).keyid`).
const SSLIB_KEYIDS: [(&str, &str, &str); 3] = [
    (
        "p256-pkcs8.key",
        "p256-pkcs8.pub",
        "529f1cf82644f186fc42b3b31084a8333a752f10a20118b6018f45b4a297c598",
    ),
    (
        "p256-sec1.key",
        "p256-sec1.pub",
        "4eab68b97d6d8ca0aa586aab27a4be33e1dee6421b959625ec63d4e37d676602",
    ),
    (
        "ed25519.key",
        "ed25519.pub",
        "f7458e6ec26c1e1105ca48ecc04c9f69c67417b61fb19849d9fcb8f679fa6a87",
    ),
];

#[test]
fn keyids_match_securesystemslib() {
    for (private, public, keyid) in SSLIB_KEYIDS {
        assert_eq!(verifying(public).keyid(), keyid, "{public}");
        assert_eq!(signing(private).keyid(), keyid, "{private}");
    }
}

#[test]
fn public_pem_round_trips_byte_for_byte_with_openssl() {
    for (_, public, _) in SSLIB_KEYIDS {
        assert_eq!(
            verifying(public).to_pem().expect("pem"),
            fixture(public),
            "{public}"
        );
    }
}

#[test]
fn openssl_private_keys_load_with_detected_algorithm() {
    assert_eq!(
        signing("p256-pkcs8.key").algorithm(),
        KeyAlgorithm::EcdsaP256
    );
    // `openssl ecparam -genkey`: an EC PARAMETERS block, then SEC1 EC PRIVATE KEY.
    assert!(fixture("p256-sec1.key").starts_with("-----BEGIN EC PARAMETERS-----"));
    assert_eq!(
        signing("p256-sec1.key").algorithm(),
        KeyAlgorithm::EcdsaP256
    );
    assert_eq!(signing("ed25519.key").algorithm(), KeyAlgorithm::Ed25519);
    // Text around the block and CRLF line endings are tolerated.
    let wrapped = format!(
        "comment line\r\n{}\r\ntrailer\n",
        fixture("ed25519.key").replace('\n', "\r\n")
    );
    assert_eq!(
        SigningKey::from_pem(&wrapped)
            .expect("wrapped key loads")
            .keyid(),
        SSLIB_KEYIDS[2].2
    );
}

#[test]
fn unsupported_and_misplaced_keys_are_refused() {
    let unsupported = |r: Result<(), AttestError>, needle: &str| match r {
        Err(e @ AttestError::UnsupportedKey { .. }) => {
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
            assert!(e.is_bad_input());
        }
        other => panic!("expected UnsupportedKey for {needle}, got {other:?}"),
    };
    unsupported(
        SigningKey::from_pem(&fixture("p384.key")).map(drop),
        "p-384",
    );
    unsupported(
        VerifyingKey::from_pem(&fixture("p384.pub")).map(drop),
        "p-384",
    );
    unsupported(
        SigningKey::from_pem(&fixture("ed448.key")).map(drop),
        "ed448",
    );
    unsupported(
        VerifyingKey::from_pem(&fixture("ed448.pub")).map(drop),
        "ed448",
    );
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    unsupported(SigningKey::from_pem(encrypted).map(drop), "encrypted");

    let parse_error = |r: Result<(), AttestError>, needle: &str| match r {
        Err(e @ AttestError::KeyParse { .. }) => {
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
            assert!(e.is_bad_input());
        }
        other => panic!("expected KeyParse for {needle}, got {other:?}"),
    };
    parse_error(
        SigningKey::from_pem(&fixture("ed25519.pub")).map(drop),
        "public key where a private key",
    );
    parse_error(
        VerifyingKey::from_pem(&fixture("ed25519.key")).map(drop),
        "private key where a public key",
    );
    parse_error(SigningKey::from_pem("").map(drop), "no pem block");
    parse_error(VerifyingKey::from_pem("hello").map(drop), "no pem block");
    parse_error(
        SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n").map(drop),
        "no end line",
    );
    parse_error(
        SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .map(drop),
        "not a valid pkcs#8",
    );
    parse_error(
        VerifyingKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n")
            .map(drop),
        "not a valid subjectpublickeyinfo",
    );
    parse_error(
        VerifyingKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .map(drop),
        "CERTIFICATE",
    );
}

// ---------------------------------------------------------------- PAE and signatures

#[test]
fn pae_matches_hand_computed_bytes() {
    // "http://example.com/HelloWorld" is 29 bytes, "hello world" 11.
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
    assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    // Lengths count bytes, not characters: "é" is 2 bytes in UTF-8.
    assert_eq!(
        pae("tÿpe", "é".as_bytes()),
        "DSSEv1 5 tÿpe 2 é".as_bytes().to_vec()
    );
    let payload = vec![b'x'; 1234];
    let mut expected = b"DSSEv1 28 application/vnd.in-toto+json 1234 ".to_vec();
    expected.extend_from_slice(&payload);
    assert_eq!(pae(IN_TOTO_PAYLOAD_TYPE, &payload), expected);
}

/// `pae("application/vnd.in-toto+json", {"hello":"world"})` signed by
/// Python's `cryptography` with the fixture keys.
const PY_MESSAGE: &[u8] = br#"DSSEv1 28 application/vnd.in-toto+json 17 {"hello":"world"}"#;
const PY_ED25519_SIG: &str = "dbfd9b4d03f67744642cd12b6a61812e234c3e16ffb8289bf35c3d27b68b4c4afaf1cb826ebbe8c6d9793d6b160b2101af846d6f512cb5d62d3b2a9dc0685904";
const PY_P256_SIG: &str = "3045022010bf16b03bc8d9a3e3e07ec0b9179ce7e2ce197db24d6582ee0ed484180e4b630221009e0ac6bbfef99a02f3e5beede04ef9f1930a31b8300405a3a577a34082c41ebf";

#[test]
fn signatures_agree_with_python_cryptography() {
    assert_eq!(
        pae(IN_TOTO_PAYLOAD_TYPE, br#"{"hello":"world"}"#),
        PY_MESSAGE.to_vec()
    );
    // Ed25519 is deterministic: same key, same message, same signature.
    let ours = signing("ed25519.key").sign(PY_MESSAGE).expect("sign");
    assert_eq!(hex::encode(&ours), PY_ED25519_SIG);
    assert!(verifying("ed25519.pub").verify(PY_MESSAGE, &hex::decode(PY_ED25519_SIG).expect("hex")));
    // ECDSA is randomized in Python; its DER signature (high S here) verifies with ours.
    let py_p256 = hex::decode(PY_P256_SIG).expect("hex");
    let vk = verifying("p256-pkcs8.pub");
    assert!(vk.verify(PY_MESSAGE, &py_p256));
    assert!(!vk.verify(
        b"DSSEv1 28 application/vnd.in-toto+json 17 {\"hello\":\"World\"}",
        &py_p256
    ));
    assert!(!verifying("p256-sec1.pub").verify(PY_MESSAGE, &py_p256));
    // Our P-256 signatures are DER: SEQUENCE { INTEGER r, INTEGER s }.
    let sig = signing("p256-pkcs8.key").sign(PY_MESSAGE).expect("sign");
    assert_eq!(sig[0], 0x30);
    assert_eq!(usize::from(sig[1]), sig.len() - 2);
    assert!(vk.verify(PY_MESSAGE, &sig));
}

// ---------------------------------------------------------------- round trips

#[test]
fn round_trip_both_algorithms() {
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
        let (sk, vk) = fresh(alg);
        let envelope = attest(
            "registry.example/nginx",
            DIGEST,
            OPENVEX_PREDICATE_TYPE,
            &vex(),
            &sk,
        )
        .expect("attest");
        // The CLI writes the envelope pretty-printed; both forms verify.
        for text in [
            envelope.to_json().expect("json"),
            serde_json::to_string_pretty(&envelope).expect("json"),
        ] {
            let statement = verify(text.as_bytes(), &vk).expect("verifies");
            assert_eq!(statement.predicate_type, OPENVEX_PREDICATE_TYPE);
            assert_eq!(statement.predicate, vex());
            assert_eq!(statement.subject.len(), 1);
            assert_eq!(statement.subject[0].name, "registry.example/nginx");
            assert_eq!(statement.subject[0].digest.len(), 1);
            assert_eq!(
                statement.subject[0].digest["sha256"],
                DIGEST.trim_start_matches("sha256:")
            );
        }
        let parsed =
            Envelope::from_json(envelope.to_json().expect("json").as_bytes()).expect("parses");
        assert_eq!(parsed, envelope, "{alg}");
    }
}

#[test]
fn envelope_json_has_the_dsse_shape() {
    let sk = signing("p256-pkcs8.key");
    let v = signed_json(&sk);
    let object = v.as_object().expect("object");
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys, ["payloadType", "payload", "signatures"]);
    assert_eq!(v["payloadType"], IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(v["signatures"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["signatures"][0]["keyid"], SSLIB_KEYIDS[0].2);
    let sig = STANDARD
        .decode(v["signatures"][0]["sig"].as_str().expect("sig"))
        .expect("standard base64");
    assert_eq!(sig[0], 0x30, "ecdsa signature is der");
    let payload = STANDARD
        .decode(v["payload"].as_str().expect("payload"))
        .expect("standard base64");
    let statement: Value = serde_json::from_slice(&payload).expect("payload json");
    let keys: Vec<&str> = statement
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["_type", "subject", "predicateType", "predicate"]);
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        statement["subject"],
        json!([{"name": "registry.example/nginx", "digest": {"sha256": DIGEST.trim_start_matches("sha256:")}}])
    );
    assert_eq!(statement["predicateType"], "https://openvex.dev/ns");
    assert_eq!(statement["predicate"], vex());
}

#[test]
fn lenient_base64_empty_keyid_and_extra_signatures_verify() {
    let sk = signing("ed25519.key");
    let vk = verifying("ed25519.pub");
    let mut v = signed_json(&sk);
    let payload = STANDARD
        .decode(v["payload"].as_str().expect("payload"))
        .expect("base64");
    let sig = STANDARD
        .decode(v["signatures"][0]["sig"].as_str().expect("sig"))
        .expect("base64");
    // URL-safe, unpadded base64 (DSSE allows either alphabet).
    v["payload"] = json!(URL_SAFE_NO_PAD.encode(&payload));
    v["signatures"][0]["sig"] = json!(URL_SAFE_NO_PAD.encode(&sig));
    // cosign writes an empty keyid: keyids are hints only.
    v["signatures"][0]["keyid"] = json!("");
    // A foreign signature before ours does not hide ours.
    let other = signing("p256-sec1.key")
        .sign(b"something else")
        .expect("sign");
    let ours = v["signatures"][0].clone();
    v["signatures"] = json!([{"keyid": "other", "sig": STANDARD.encode(other)}, ours]);
    let statement = verify(&bytes(&v), &vk).expect("verifies");
    assert_eq!(statement.subject[0].name, "registry.example/nginx");
}

// ---------------------------------------------------------------- tamper table

#[derive(Debug)]
enum Want {
    Mismatch,
    Base64(&'static str),
    NoSignatures,
    Malformed,
    PayloadType,
    NotStatement(&'static str),
}

fn check(case: &str, result: Result<vexxy_attest::VerifiedStatement, AttestError>, want: &Want) {
    let err = match result {
        Ok(s) => panic!("{case}: verified but should not: {s:?}"),
        Err(e) => e,
    };
    assert!(err.is_bad_input(), "{case}: {err} is not bad input");
    let message = err.to_string();
    // Our part of the message is lowercase (causes quoted from other crates may not be).
    assert!(
        message.starts_with(|c: char| c.is_ascii_lowercase()),
        "{case}: {message}"
    );
    let ok = match (want, &err) {
        (Want::Mismatch, AttestError::SignatureMismatch { .. }) => {
            message.contains("signature verification failed")
        }
        (Want::Base64(field), AttestError::Base64 { field: f, .. }) => {
            f == field && message.contains(field)
        }
        (Want::NoSignatures, AttestError::NoSignatures) => message.contains("no signatures"),
        (Want::Malformed, AttestError::MalformedEnvelope(_)) => {
            message.contains("malformed dsse envelope")
        }
        (Want::PayloadType, AttestError::UnexpectedPayloadType { .. }) => {
            message.contains("payload type")
        }
        (Want::NotStatement(needle), AttestError::NotAStatement(reason)) => reason.contains(needle),
        _ => false,
    };
    assert!(ok, "{case}: expected {want:?}, got {err:?} ({message})");
}

/// Re-signs an arbitrary payload with a valid signature (to get past the
/// signature check and reach the payload checks).
fn resigned(payload_type: &str, payload: &[u8], key: &SigningKey) -> Vec<u8> {
    let envelope = Envelope::sign(payload_type, payload.to_vec(), key).expect("sign");
    envelope.to_json().expect("json").into_bytes()
}

#[test]
fn tamper_table() {
    for (private, public) in [
        ("p256-pkcs8.key", "p256-pkcs8.pub"),
        ("ed25519.key", "ed25519.pub"),
    ] {
        let sk = signing(private);
        let vk = verifying(public);
        let good = signed_json(&sk);
        verify(&bytes(&good), &vk).expect("untampered envelope verifies");
        let payload = STANDARD
            .decode(good["payload"].as_str().expect("payload"))
            .expect("base64");

        let edit = |f: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            f(&mut v);
            bytes(&v)
        };
        let modified_payload = {
            let text = String::from_utf8(payload.clone()).expect("utf-8");
            let changed = text.replace("not_affected", "fixed\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}");
            assert_ne!(text, changed);
            STANDARD.encode(changed)
        };
        let mut flipped = payload.clone();
        flipped[payload.len() / 2] ^= 1;
        let flipped = STANDARD.encode(flipped);
        let sig = STANDARD
            .decode(good["signatures"][0]["sig"].as_str().expect("sig"))
            .expect("base64");
        let mut bad_sig = sig.clone();
        let last = bad_sig.len() - 1;
        bad_sig[last] ^= 0x80;

        let cases: Vec<(&str, Vec<u8>, VerifyingKey, Want)> = vec![
            (
                "wrong key (same algorithm)",
                bytes(&good),
                fresh(vk.algorithm()).1,
                Want::Mismatch,
            ),
            (
                "wrong key (other algorithm)",
                bytes(&good),
                fresh(match vk.algorithm() {
                    KeyAlgorithm::EcdsaP256 => KeyAlgorithm::Ed25519,
                    KeyAlgorithm::Ed25519 => KeyAlgorithm::EcdsaP256,
                })
                .1,
                Want::Mismatch,
            ),
            (
                "modified payload (status)",
                edit(&|v| v["payload"] = json!(modified_payload)),
                vk.clone(),
                Want::Mismatch,
            ),
            (
                "modified payload (one bit)",
                edit(&|v| v["payload"] = json!(flipped)),
                vk.clone(),
                Want::Mismatch,
            ),
            (
                "modified payloadType",
                edit(&|v| v["payloadType"] = json!("application/vnd.in-toto+JSON")),
                vk.clone(),
                Want::Mismatch,
            ),
            (
                "modified signature",
                edit(&|v| v["signatures"][0]["sig"] = json!(STANDARD.encode(&bad_sig))),
                vk.clone(),
                Want::Mismatch,
            ),
            (
                "truncated signature",
                edit(&|v| v["signatures"][0]["sig"] = json!(STANDARD.encode(&sig[..8]))),
                vk.clone(),
                Want::Mismatch,
            ),
            (
                "empty signature",
                edit(&|v| v["signatures"][0]["sig"] = json!("")),
                vk.clone(),
                Want::Mismatch,
            ),
            (
                "bad base64 payload",
                edit(&|v| v["payload"] = json!("eyJf!!!")),
                vk.clone(),
                Want::Base64("payload"),
            ),
            (
                "bad base64 payload (mixed)",
                edit(&|v| v["payload"] = json!("ab+_")),
                vk.clone(),
                Want::Base64("payload"),
            ),
            (
                "bad base64 sig",
                edit(&|v| v["signatures"][0]["sig"] = json!("%%%")),
                vk.clone(),
                Want::Base64("signatures[0].sig"),
            ),
            (
                "empty signatures",
                edit(&|v| v["signatures"] = json!([])),
                vk.clone(),
                Want::NoSignatures,
            ),
            (
                "no signatures field",
                edit(&|v| {
                    v.as_object_mut().map(|o| o.remove("signatures"));
                }),
                vk.clone(),
                Want::NoSignatures,
            ),
            (
                "null signatures",
                edit(&|v| v["signatures"] = Value::Null),
                vk.clone(),
                Want::NoSignatures,
            ),
            (
                "signature without sig",
                edit(&|v| v["signatures"] = json!([{"keyid": "x"}])),
                vk.clone(),
                Want::Malformed,
            ),
            (
                "no payload",
                edit(&|v| {
                    v.as_object_mut().map(|o| o.remove("payload"));
                }),
                vk.clone(),
                Want::Malformed,
            ),
            (
                "no payloadType",
                edit(&|v| {
                    v.as_object_mut().map(|o| o.remove("payloadType"));
                }),
                vk.clone(),
                Want::Malformed,
            ),
            (
                "not json",
                b"{\"payload\":".to_vec(),
                vk.clone(),
                Want::Malformed,
            ),
            ("json array", b"[]".to_vec(), vk.clone(), Want::Malformed),
            (
                "signed, other payload type",
                resigned("application/vnd.dsse.test", &payload, &sk),
                vk.clone(),
                Want::PayloadType,
            ),
            (
                "signed, payload not json",
                resigned(IN_TOTO_PAYLOAD_TYPE, b"hello", &sk),
                vk.clone(),
                Want::NotStatement("not json"),
            ),
            (
                "signed, bare openvex document",
                resigned(IN_TOTO_PAYLOAD_TYPE, &bytes(&vex()), &sk),
                vk.clone(),
                Want::NotStatement("no _type"),
            ),
            (
                "signed, statement without subject",
                resigned(
                    IN_TOTO_PAYLOAD_TYPE,
                    &bytes(
                        &json!({"_type": "https://in-toto.io/Statement/v1", "predicateType": "x", "predicate": {}}),
                    ),
                    &sk,
                ),
                vk.clone(),
                Want::NotStatement("no subject"),
            ),
            (
                "signed, unknown statement type",
                resigned(
                    IN_TOTO_PAYLOAD_TYPE,
                    &bytes(
                        &json!({"_type": "https://in-toto.io/Statement/v9", "subject": [], "predicateType": "x"}),
                    ),
                    &sk,
                ),
                vk.clone(),
                Want::NotStatement("_type is"),
            ),
        ];
        for (case, envelope, key, want) in cases {
            check(
                &format!("{private}: {case}"),
                verify(&envelope, &key),
                &want,
            );
        }
    }
}

#[test]
fn bad_subject_digest_and_other_inputs_are_refused_at_signing() {
    let sk = signing("ed25519.key");
    let hex = DIGEST.trim_start_matches("sha256:");
    for digest in [
        String::new(),
        hex.to_owned(),
        format!("sha256:{}", &hex[1..]),
        format!("sha256:{hex}0"),
        format!("sha256:{}", hex.to_uppercase()),
        format!("sha512:{hex}"),
        format!("sha256:{}z", &hex[1..]),
        format!(" sha256:{hex}"),
    ] {
        match attest("nginx", &digest, OPENVEX_PREDICATE_TYPE, &vex(), &sk) {
            Err(e @ AttestError::InvalidSubjectDigest(_)) => {
                assert!(e.is_bad_input());
                assert!(e.to_string().contains("invalid subject digest"), "{e}");
            }
            other => panic!("{digest:?}: expected InvalidSubjectDigest, got {other:?}"),
        }
    }
    assert!(matches!(
        attest("", DIGEST, OPENVEX_PREDICATE_TYPE, &vex(), &sk),
        Err(AttestError::InvalidSubjectName(_))
    ));
    assert!(matches!(
        attest("nginx", DIGEST, "", &vex(), &sk),
        Err(AttestError::InvalidPredicateType)
    ));
    assert!(matches!(
        attest("nginx", DIGEST, OPENVEX_PREDICATE_TYPE, &json!("text"), &sk),
        Err(AttestError::InvalidPredicate(_))
    ));
}

#[test]
fn envelope_signature_is_exposed_for_callers() {
    let sk = signing("p256-sec1.key");
    let envelope = attest("nginx", DIGEST, OPENVEX_PREDICATE_TYPE, &vex(), &sk).expect("attest");
    let found: &EnvelopeSignature = envelope
        .verify_signature(sk.verifying_key())
        .expect("verifies");
    assert_eq!(found.keyid, SSLIB_KEYIDS[1].2);
}
