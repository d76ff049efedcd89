//! Attaches signed attestations to images in a real local registry
//! (Debian's `docker-registry`, CNCF distribution 2.8, pushed to with
//! skopeo) and finds them again. Skips with a printed reason when the tools
//! are missing outside CI; fails in CI.
//!
//! distribution 2.8 has no referrers API, so these tests exercise the
//! referrers *tag* fallback; `the_referrers_api_path_through_a_stub`
//! covers the API path with a small HTTP stub in front of the same real
//! registry (see there).

mod support;

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use support::{synthetic, tools, Auth, Registry, TokenServer, PASS, USER};
use vexxy_attest::{KeyAlgorithm, SigningKey, OPENVEX_PREDICATE_TYPE};
use vexxy_registry::{
    attach_attestation, attach_attestation_blocking, attach_attestation_with, list_attestations,
    list_attestations_blocking, AttachOptions, AttestationLocation, Credentials, FoundAttestation,
    PullOptions, RegistryError,
};

const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SLSA: &str = "https://slsa.dev/provenance/v1";

fn key() -> SigningKey {
    SigningKey::generate(KeyAlgorithm::EcdsaP256).expect("key")
}

/// A signed OpenVEX attestation about `subject` (`sha256:…`).
fn vex(key: &SigningKey, name: &str, subject: &str, timestamp: &str) -> Vec<u8> {
    let predicate = json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": format!("https://vexxy.test/vex/{timestamp}"),
        "author": "vexxy tests",
        "timestamp": timestamp,
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "CVE-2024-0001"},
            "products": [{"@id": format!("pkg:oci/app@{}", subject.replace(':', "%3A"))}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_present",
        }],
    });
    attestation(key, name, subject, OPENVEX_PREDICATE_TYPE, &predicate)
}

fn attestation(
    key: &SigningKey,
    name: &str,
    subject: &str,
    predicate_type: &str,
    predicate: &Value,
) -> Vec<u8> {
    vexxy_attest::attest(name, subject, predicate_type, predicate, key)
        .expect("attest")
        .to_json()
        .expect("json")
        .into_bytes()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hex_of(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

/// A plain HTTP/1.1 exchange (one request per connection).
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// Splits a raw HTTP response (read to EOF) into its parts, undoing a
/// chunked body.
fn parse_response(raw: &[u8]) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..line_end])
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .expect("chunk size hex");
            if size == 0 {
                break;
            }
            let start = line_end + 2;
            out.extend_from_slice(&rest[start..start + size]);
            rest = &rest[start + size + 2..];
        }
        body = out;
    }
    Response {
        status,
        headers,
        body,
    }
}

fn http(addr: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    conn.write_all(request.as_bytes()).expect("send head");
    conn.write_all(body).expect("send body");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, \
                          application/vnd.oci.image.index.v1+json";

/// A manifest of `repo` by tag or digest, straight from the registry.
fn manifest(registry: &Registry, repo: &str, reference: &str) -> Option<(Value, String)> {
    let r = http(
        &registry.addr,
        "GET",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Accept", ACCEPT_ALL)],
        b"",
    );
    match r.status {
        200 => Some((r.json(), sha256(&r.body))),
        404 => None,
        s => panic!("GET manifest {reference}: http {s}"),
    }
}

fn blob(registry: &Registry, repo: &str, digest: &str) -> Vec<u8> {
    let r = http(
        &registry.addr,
        "GET",
        &format!("/v2/{repo}/blobs/{digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "GET blob {digest}");
    r.body
}

/// Pushes a blob and then a manifest with plain requests, as another tool
/// would (anonymous registry).
fn push_raw(registry: &Registry, repo: &str, blobs: &[&[u8]], tag: &str, manifest: &Value) {
    for b in blobs {
        let start = http(
            &registry.addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            b"",
        );
        assert_eq!(start.status, 202, "start upload");
        let location = start.header("location").expect("location").to_owned();
        let path = location
            .split_once("://")
            .map_or(location.as_str(), |(_, rest)| {
                rest.find('/').map_or("/", |i| &rest[i..])
            })
            .to_owned();
        let sep = if path.contains('?') { '&' } else { '?' };
        let done = http(
            &registry.addr,
            "PUT",
            &format!("{path}{sep}digest={}", sha256(b)),
            &[("Content-Type", "application/octet-stream")],
            b,
        );
        assert_eq!(done.status, 201, "finish upload");
    }
    let body = manifest.to_string();
    let media_type = manifest["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
    let r = http(
        &registry.addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", media_type)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "put manifest");
}

fn cosign_layers(registry: &Registry, repo: &str, subject: &str) -> Vec<Value> {
    let (m, _) = manifest(registry, repo, &format!("sha256-{}.att", hex_of(subject)))
        .expect("the .att tag exists");
    m["layers"].as_array().expect("layers").clone()
}

fn referrers_index(registry: &Registry, repo: &str, subject: &str) -> Option<Vec<Value>> {
    manifest(registry, repo, &format!("sha256-{}", hex_of(subject)))
        .map(|(m, _)| m["manifests"].as_array().expect("manifests").clone())
}

fn at_cosign_tag(found: &[FoundAttestation]) -> Vec<&FoundAttestation> {
    found
        .iter()
        .filter(|f| matches!(f.location, AttestationLocation::CosignTag { .. }))
        .collect()
}

fn at_referrers(found: &[FoundAttestation]) -> Vec<&FoundAttestation> {
    found
        .iter()
        .filter(|f| matches!(f.location, AttestationLocation::Referrer { .. }))
        .collect()
}

#[test]
fn attaches_in_both_places_lists_them_and_keeps_history() {
    let Some(bin) = tools() else { return };
    let image = synthetic(&["linux/amd64"]);
    let registry = Registry::start(&bin, Auth::None);
    let subject = registry.push(image.dir.path(), "latest", "app", false);
    let reference = format!("{}/app:latest", registry.addr);
    let opts = support::options(&registry);
    let key = key();

    let none = list_attestations_blocking(&reference, &opts).expect("list, nothing attached");
    assert!(none.is_empty(), "{none:?}");

    let first = vex(&key, "app", &subject, "2024-06-01T10:00:00Z");
    let a = attach_attestation_blocking(&reference, &first, &opts).expect("attach");
    assert_eq!(a.subject.to_string(), subject);
    assert!(!a.unchanged);
    // distribution 2.8 has no referrers API: the fallback tag is kept
    assert!(!a.referrers_api);
    assert_eq!(a.cosign_tag, format!("sha256-{}.att", hex_of(&subject)));
    assert_eq!(a.envelope.to_string(), sha256(&first));
    let api = http(
        &registry.addr,
        "GET",
        &format!("/v2/app/referrers/{subject}"),
        &[],
        b"",
    );
    assert_eq!(api.status, 404, "this registry has no referrers api");

    // cosign's .att image, as cosign and trivy read it
    let (att, att_digest) = manifest(&registry, "app", &a.cosign_tag).expect(".att tag");
    assert_eq!(att_digest, a.cosign_manifest.to_string());
    assert_eq!(att["mediaType"], OCI_MANIFEST);
    assert_eq!(
        att["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let config: Value = serde_json::from_slice(&blob(
        &registry,
        "app",
        att["config"]["digest"].as_str().expect("config digest"),
    ))
    .expect("config json");
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"], json!([sha256(&first)]));
    let layers = att["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], DSSE);
    assert_eq!(layers[0]["digest"], sha256(&first));
    assert_eq!(layers[0]["size"], first.len());
    assert_eq!(
        layers[0]["annotations"]["dev.cosignproject.cosign/signature"],
        ""
    );
    assert_eq!(
        layers[0]["annotations"]["predicateType"],
        OPENVEX_PREDICATE_TYPE
    );
    assert_eq!(blob(&registry, "app", &sha256(&first)), first);

    // the OCI 1.1 referrer, listed by the referrers tag
    let index = referrers_index(&registry, "app", &subject).expect("referrers tag");
    assert_eq!(index.len(), 1);
    assert_eq!(index[0]["digest"], a.referrer.to_string());
    assert_eq!(index[0]["mediaType"], OCI_MANIFEST);
    assert_eq!(index[0]["artifactType"], DSSE);
    assert_eq!(
        index[0]["annotations"]["org.opencontainers.image.created"],
        "2024-06-01T10:00:00Z"
    );
    let (referrer, _) =
        manifest(&registry, "app", &a.referrer.to_string()).expect("referrer manifest");
    assert_eq!(referrer["artifactType"], DSSE);
    assert_eq!(referrer["subject"]["digest"], subject);
    assert_eq!(referrer["subject"]["mediaType"], OCI_MANIFEST);
    assert_eq!(
        referrer["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(referrer["config"]["size"], 2);
    assert_eq!(
        blob(
            &registry,
            "app",
            referrer["config"]["digest"].as_str().expect("d")
        ),
        b"{}"
    );
    assert_eq!(referrer["layers"][0]["digest"], sha256(&first));
    assert_eq!(
        referrer["annotations"]["dev.sigstore.bundle.predicateType"],
        OPENVEX_PREDICATE_TYPE
    );
    assert_eq!(
        index[0]["size"],
        http(
            &registry.addr,
            "GET",
            &format!("/v2/app/manifests/{}", a.referrer),
            &[("Accept", OCI_MANIFEST)],
            b""
        )
        .body
        .len()
    );

    // found in both places, byte for byte, and the signature verifies
    let found = list_attestations_blocking(&reference, &opts).expect("list");
    assert_eq!(found.len(), 2, "{found:?}");
    let (att_found, ref_found) = (at_cosign_tag(&found), at_referrers(&found));
    assert_eq!(
        att_found[0].location,
        AttestationLocation::CosignTag {
            tag: a.cosign_tag.clone(),
            layer: 0
        }
    );
    assert_eq!(
        ref_found[0].location,
        AttestationLocation::Referrer {
            manifest: a.referrer.clone()
        }
    );
    for f in &found {
        assert_eq!(f.envelope, first);
        assert_eq!(f.digest, a.envelope);
        assert_eq!(f.subject, a.subject);
        assert_eq!(f.predicate_type.as_deref(), Some(OPENVEX_PREDICATE_TYPE));
        let statement = vexxy_attest::verify(&f.envelope, key.verifying_key()).expect("verifies");
        assert_eq!(statement.predicate_type, OPENVEX_PREDICATE_TYPE);
    }
    assert_eq!(
        ref_found[0].created.as_deref(),
        Some("2024-06-01T10:00:00Z")
    );

    // the same envelope again, by tag or by digest: nothing pushed
    for r in [
        reference.clone(),
        format!("{}/app@{subject}", registry.addr),
    ] {
        let again = attach_attestation_blocking(&r, &first, &opts).expect("again");
        assert!(again.unchanged, "{r}: {again:?}");
        assert_eq!(again.referrer, a.referrer);
        assert_eq!(again.cosign_manifest, a.cosign_manifest);
        assert!(!again.referrers_api);
    }
    assert_eq!(cosign_layers(&registry, "app", &subject).len(), 1);
    assert_eq!(
        referrers_index(&registry, "app", &subject).map(|i| i.len()),
        Some(1)
    );

    // a newer statement replaces the current one; the referrers keep both
    let second = vex(&key, "app", &subject, "2024-07-01T10:00:00Z");
    let b = attach_attestation_blocking(&reference, &second, &opts).expect("newer");
    assert!(!b.unchanged);
    assert_ne!(b.referrer, a.referrer);
    assert_ne!(b.cosign_manifest, a.cosign_manifest);
    let layers = cosign_layers(&registry, "app", &subject);
    let digests: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
    assert_eq!(
        digests,
        vec![&json!(sha256(&second))],
        "old one gone from .att"
    );
    let index = referrers_index(&registry, "app", &subject).expect("index");
    let listed: Vec<&Value> = index.iter().map(|e| &e["digest"]).collect();
    assert_eq!(
        listed,
        vec![
            &json!(a.referrer.to_string()),
            &json!(b.referrer.to_string())
        ]
    );
    let found = list_attestations_blocking(&reference, &opts).expect("list");
    let att_found = at_cosign_tag(&found);
    assert_eq!(att_found.len(), 1);
    assert_eq!(att_found[0].envelope, second);
    let history: Vec<&Vec<u8>> = at_referrers(&found).iter().map(|f| &f.envelope).collect();
    assert_eq!(history, vec![&first, &second]);

    // an explicit created time makes another referrer for the same envelope
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let c = rt
        .block_on(attach_attestation_with(
            &reference,
            &second,
            &opts,
            &AttachOptions {
                created: Some("2024-07-02T00:00:00Z".into()),
            },
        ))
        .expect("with created");
    assert!(!c.unchanged, "a new referrer");
    assert_ne!(c.referrer, b.referrer);
    assert_eq!(c.cosign_manifest, b.cosign_manifest, ".att unchanged");
    let e = rt
        .block_on(attach_attestation_with(
            &reference,
            &second,
            &opts,
            &AttachOptions {
                created: Some("last tuesday".into()),
            },
        ))
        .expect_err("bad created");
    assert!(
        matches!(e, RegistryError::BadAttachOption { .. }) && e.is_bad_input(),
        "{e:?}"
    );
    // the async list from inside a runtime, and the blocking one too
    let in_rt = rt
        .block_on(async { list_attestations_blocking(&reference, &opts) })
        .expect("blocking inside a runtime");
    let async_list = rt
        .block_on(list_attestations(&reference, &opts))
        .expect("async list");
    assert_eq!(in_rt, async_list);
    assert_eq!(at_referrers(&async_list).len(), 3);
}

#[test]
fn other_attestations_in_the_att_tag_survive() {
    let Some(bin) = tools() else { return };
    let image = synthetic(&["linux/amd64"]);
    let registry = Registry::start(&bin, Auth::None);
    let subject = registry.push(image.dir.path(), "latest", "app", false);
    let reference = format!("{}/app:latest", registry.addr);
    let opts = support::options(&registry);
    let key = key();

    // Another tool's .att image: a provenance attestation, an older OpenVEX
    // one about this image, and an OpenVEX one about some other digest.
    let other_digest = format!("sha256:{}", "ab".repeat(32));
    let slsa = attestation(
        &key,
        "app",
        &subject,
        SLSA,
        &json!({"buildDefinition": {"buildType": "https://vexxy.test/build"}}),
    );
    let older = vex(&key, "app", &subject, "2023-01-01T00:00:00Z");
    let elsewhere = vex(&key, "app", &other_digest, "2023-01-01T00:00:00Z");
    let layer = |b: &[u8], t: &str| {
        json!({"mediaType": DSSE, "size": b.len(), "digest": sha256(b),
               "annotations": {"dev.cosignproject.cosign/signature": "", "predicateType": t}})
    };
    let config = json!({"architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&slsa), sha256(&older), sha256(&elsewhere)]}})
    .to_string();
    let att = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "size": config.len(), "digest": sha256(config.as_bytes())},
        "layers": [layer(&slsa, SLSA), layer(&older, OPENVEX_PREDICATE_TYPE),
                   layer(&elsewhere, OPENVEX_PREDICATE_TYPE)],
    });
    let tag = format!("sha256-{}.att", hex_of(&subject));
    push_raw(
        &registry,
        "app",
        &[config.as_bytes(), &slsa, &older, &elsewhere],
        &tag,
        &att,
    );

    let current = vex(&key, "app", &subject, "2024-06-01T10:00:00Z");
    let a = attach_attestation_blocking(&reference, &current, &opts).expect("attach");
    assert!(!a.unchanged);
    let digests: Vec<Value> = cosign_layers(&registry, "app", &subject)
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    assert_eq!(
        digests,
        vec![
            json!(sha256(&current)),
            json!(sha256(&slsa)),
            json!(sha256(&elsewhere)),
        ],
        "ours first, the older one about this image gone, the rest kept"
    );
    let found = list_attestations_blocking(&reference, &opts).expect("list");
    let att_found = at_cosign_tag(&found);
    let envelopes: Vec<&Vec<u8>> = att_found.iter().map(|f| &f.envelope).collect();
    assert_eq!(envelopes, vec![&current, &slsa, &elsewhere]);
    assert_eq!(att_found[1].predicate_type.as_deref(), Some(SLSA));
    // the config follows the layers
    let (m, _) = manifest(&registry, "app", &tag).expect(".att");
    let config: Value = serde_json::from_slice(&blob(
        &registry,
        "app",
        m["config"]["digest"].as_str().expect("digest"),
    ))
    .expect("config");
    assert_eq!(config["rootfs"]["diff_ids"], Value::Array(digests));

    // and again: nothing to do
    let again = attach_attestation_blocking(&reference, &current, &opts).expect("again");
    assert!(again.unchanged);
    assert_eq!(cosign_layers(&registry, "app", &subject).len(), 3);
}

#[test]
fn envelopes_about_another_image_or_malformed_are_refused_before_pushing() {
    let Some(bin) = tools() else { return };
    let image = synthetic(&["linux/amd64"]);
    let registry = Registry::start(&bin, Auth::None);
    let subject = registry.push(image.dir.path(), "latest", "app", false);
    let reference = format!("{}/app:latest", registry.addr);
    let opts = support::options(&registry);
    let key = key();

    let other = format!("sha256:{}", "cd".repeat(32));
    let wrong = vex(&key, "app", &other, "2024-06-01T10:00:00Z");
    let e = attach_attestation_blocking(&reference, &wrong, &opts).expect_err("wrong subject");
    assert!(
        matches!(e, RegistryError::SubjectMismatch { .. }) && e.is_bad_input(),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(&subject) && msg.contains(&other) && msg.contains(&reference),
        "{msg}"
    );
    assert!(manifest(
        &registry,
        "app",
        &format!("sha256-{}.att", hex_of(&subject))
    )
    .is_none());
    assert!(referrers_index(&registry, "app", &subject).is_none());
    assert!(
        !registry.blob_data(&sha256(&wrong)).exists(),
        "the envelope was uploaded"
    );

    // not an envelope at all: refused before any connection (nothing listens on port 1)
    let unreachable = PullOptions {
        insecure_registries: vec!["127.0.0.1:1".into()],
        ..Default::default()
    };
    for bad in [
        &b"not json"[..],
        br#"{"payloadType":"text/plain","payload":"aGk=","signatures":[{"sig":"x"}]}"#,
        br#"{"payloadType":"application/vnd.in-toto+json","payload":"aGk=","signatures":[]}"#,
    ] {
        let e = attach_attestation_blocking("127.0.0.1:1/app:latest", bad, &unreachable)
            .expect_err("bad envelope");
        assert!(
            matches!(e, RegistryError::BadEnvelope { .. }) && e.is_bad_input(),
            "{e:?}"
        );
    }
    // a missing image is not found, and nothing is created for it
    let good = vex(&key, "app", &subject, "2024-06-01T10:00:00Z");
    let e = attach_attestation_blocking(&format!("{}/app:nope", registry.addr), &good, &opts)
        .expect_err("missing tag");
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e:?}");
    assert!(!registry.blob_data(&sha256(&good)).exists());
}

#[test]
fn foreign_content_under_the_tags_is_refused_not_overwritten() {
    let Some(bin) = tools() else { return };
    let image = synthetic(&["linux/amd64"]);
    let registry = Registry::start(&bin, Auth::None);
    let subject = registry.push(image.dir.path(), "latest", "app", false);
    let reference = format!("{}/app:latest", registry.addr);
    let opts = support::options(&registry);
    let envelope = vex(&key(), "app", &subject, "2024-06-01T10:00:00Z");

    // the referrers tag holds an image manifest (here: the image itself)
    let (image_manifest, _) = manifest(&registry, "app", "latest").expect("image");
    let referrers = format!("sha256-{}", hex_of(&subject));
    push_raw(&registry, "app", &[], &referrers, &image_manifest);
    let e = attach_attestation_blocking(&reference, &envelope, &opts).expect_err("not an index");
    assert!(matches!(e, RegistryError::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains(&referrers), "{e}");
    assert_eq!(
        manifest(&registry, "app", &referrers).map(|(m, _)| m),
        Some(image_manifest.clone())
    );

    // the .att tag holds an image index
    let other = synthetic(&["linux/amd64"]);
    let subject2 = registry.push(other.dir.path(), "latest", "app2", false);
    let size = http(
        &registry.addr,
        "GET",
        &format!("/v2/app2/manifests/{subject2}"),
        &[("Accept", ACCEPT_ALL)],
        b"",
    )
    .body
    .len();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": subject2, "size": size}]});
    let att = format!("sha256-{}.att", hex_of(&subject2));
    push_raw(&registry, "app2", &[], &att, &index);
    let e = attach_attestation_blocking(
        &format!("{}/app2:latest", registry.addr),
        &vex(&key(), "app2", &subject2, "2024-06-01T10:00:00Z"),
        &opts,
    )
    .expect_err("not an image");
    assert!(matches!(e, RegistryError::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains(&att), "{e}");
    assert_eq!(
        manifest(&registry, "app2", &att).map(|(m, _)| m),
        Some(index)
    );
}

#[test]
fn pushing_needs_credentials_with_basic_auth() {
    let Some(bin) = support::tools_and_htpasswd() else {
        return;
    };
    let image = synthetic(&["linux/amd64"]);
    let registry = Registry::start(&bin, Auth::Htpasswd);
    let subject = registry.push(image.dir.path(), "latest", "private/app", false);
    let reference = format!("{}/private/app:latest", registry.addr);
    let key = key();
    let envelope = vex(&key, "private/app", &subject, "2024-06-01T10:00:00Z");

    let e = attach_attestation_blocking(&reference, &envelope, &support::options(&registry))
        .expect_err("anonymous");
    assert!(
        matches!(e, RegistryError::AuthRefused { .. }) && e.is_bad_input(),
        "{e:?}"
    );
    assert!(e.to_string().contains(&registry.addr), "{e}");
    let wrong = PullOptions {
        credentials: Credentials::Basic {
            user: USER.into(),
            pass: "wrong".into(),
        },
        ..support::options(&registry)
    };
    let e = attach_attestation_blocking(&reference, &envelope, &wrong).expect_err("wrong");
    assert!(matches!(e, RegistryError::AuthRefused { .. }), "{e:?}");
    assert!(!e.to_string().contains("wrong"), "{e}");

    let right = PullOptions {
        credentials: Credentials::Basic {
            user: USER.into(),
            pass: PASS.into(),
        },
        ..support::options(&registry)
    };
    let a = attach_attestation_blocking(&reference, &envelope, &right).expect("with credentials");
    assert_eq!(a.subject.to_string(), subject);
    assert!(!a.unchanged);
    let found = list_attestations_blocking(&reference, &right).expect("list");
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|f| f.envelope == envelope));
    let e = list_attestations_blocking(&reference, &support::options(&registry))
        .expect_err("anonymous list");
    assert!(matches!(e, RegistryError::AuthRefused { .. }), "{e:?}");
}

#[test]
fn pushing_through_a_token_service_asks_for_push() {
    let Some(bin) = tools() else { return };
    let tokens = TokenServer::start();
    let registry = Registry::start(&bin, tokens.auth());
    let image = synthetic(&["linux/amd64"]);
    let subject = registry.push(image.dir.path(), "latest", "team/app", false);
    let reference = format!("{}/team/app:latest", registry.addr);
    let envelope = vex(&key(), "team/app", &subject, "2024-06-01T10:00:00Z");

    let e = attach_attestation_blocking(&reference, &envelope, &support::options(&registry))
        .expect_err("anonymous");
    assert!(matches!(e, RegistryError::AuthRefused { .. }), "{e:?}");
    assert!(e.to_string().contains("token service"), "{e}");

    let right = PullOptions {
        credentials: Credentials::Basic {
            user: USER.into(),
            pass: PASS.into(),
        },
        ..support::options(&registry)
    };
    let a = attach_attestation_blocking(&reference, &envelope, &right).expect("token push");
    assert!(!a.unchanged && !a.referrers_api);
    let found = list_attestations_blocking(&reference, &right).expect("list");
    assert_eq!(found.len(), 2);
    let again = attach_attestation_blocking(&reference, &envelope, &right).expect("again");
    assert!(again.unchanged);
}

#[test]
fn a_multi_arch_tag_gets_the_attestation_on_its_index() {
    let Some(bin) = tools() else { return };
    let image = synthetic(&["linux/amd64", "linux/arm64"]);
    let registry = Registry::start(&bin, Auth::None);
    let index = registry.push(image.dir.path(), "latest", "multi", true);
    assert_eq!(Some(&index), image.index.as_ref());
    let reference = format!("{}/multi:latest", registry.addr);
    let opts = support::options(&registry);
    let key = key();

    // about a platform manifest: not what the tag names
    let platform = &image.manifests[0];
    let e = attach_attestation_blocking(
        &reference,
        &vex(&key, "multi", platform, "2024-06-01T10:00:00Z"),
        &opts,
    )
    .expect_err("platform manifest");
    assert!(matches!(e, RegistryError::SubjectMismatch { .. }), "{e:?}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let envelope = vex(&key, "multi", &index, "2024-06-01T10:00:00Z");
    let a = rt
        .block_on(attach_attestation(&reference, &envelope, &opts))
        .expect("attach to the index");
    assert_eq!(a.subject.to_string(), index);
    assert_eq!(a.cosign_tag, format!("sha256-{}.att", hex_of(&index)));
    let (referrer, _) = manifest(&registry, "multi", &a.referrer.to_string()).expect("referrer");
    assert_eq!(referrer["subject"]["mediaType"], OCI_INDEX);
    assert_eq!(referrer["subject"]["digest"], index);
    let found = rt
        .block_on(list_attestations(&reference, &opts))
        .expect("list");
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|f| f.subject.to_string() == index));

    // a platform manifest by digest is a subject of its own
    let by_digest = format!("{}/multi@{platform}", registry.addr);
    let p = attach_attestation_blocking(
        &by_digest,
        &vex(&key, "multi", platform, "2024-06-01T10:00:00Z"),
        &opts,
    )
    .expect("attach to a platform manifest");
    assert_eq!(&p.subject.to_string(), platform);
    assert_ne!(p.cosign_tag, a.cosign_tag);
    assert_eq!(
        list_attestations_blocking(&by_digest, &opts)
            .expect("list")
            .len(),
        2
    );
    assert_eq!(
        list_attestations_blocking(&reference, &opts)
            .expect("list")
            .len(),
        2
    );
}

#[test]
fn pushes_obey_the_egress_policy() {
    let Some(bin) = tools() else { return };
    let image = synthetic(&["linux/amd64"]);
    let registry = Registry::start(&bin, Auth::None);
    let subject = registry.push(image.dir.path(), "latest", "app", false);
    let envelope = vex(&key(), "app", &subject, "2024-06-01T10:00:00Z");
    let port = registry.addr.rsplit(':').next().expect("port");

    // a name only the policy's resolver knows: every request must go
    // through the egress proxy (the system resolver cannot find it)
    let name = format!("registry.vexxy.test:{port}");
    let resolver = vexxy_egress::StaticResolver::new();
    resolver.answer("registry.vexxy.test", &["127.0.0.1".parse().expect("ip")]);
    let policy = vexxy_egress::EgressPolicy::new()
        .allow_addresses(["127.0.0.1/32"])
        .expect("cidr")
        .with_resolver(Arc::new(resolver));
    let through = PullOptions {
        insecure_registries: vec![name.clone()],
        egress: Some(policy),
        ..Default::default()
    };
    let reference = format!("{name}/app:latest");
    let a =
        attach_attestation_blocking(&reference, &envelope, &through).expect("through the proxy");
    assert!(!a.unchanged);
    assert_eq!(
        list_attestations_blocking(&reference, &through)
            .expect("list through the proxy")
            .len(),
        2
    );

    // the default policy refuses loopback before sending anything
    let refused = PullOptions {
        egress: Some(vexxy_egress::EgressPolicy::new()),
        ..support::options(&registry)
    };
    let other = vex(&key(), "app", &subject, "2024-08-01T00:00:00Z");
    let e = attach_attestation_blocking(&format!("{}/app:latest", registry.addr), &other, &refused)
        .expect_err("refused");
    assert!(
        matches!(e, RegistryError::Egress { .. }) && e.is_bad_input(),
        "{e:?}"
    );
    assert!(!registry.blob_data(&sha256(&other)).exists());
}

/// A small HTTP stub in front of the real registry, standing for a registry
/// with the OCI 1.1 referrers API (distribution 2.8 has none). It forwards
/// every request to the registry unchanged, except that:
/// - it answers `GET /v2/<name>/referrers/<digest>` itself, with an index
///   of the manifests with a `subject` pushed through it;
/// - it adds `OCI-Subject: <subject digest>` to the answer to such a
///   manifest push, which is how a registry tells a client it indexed the
///   referrer (so the client keeps no referrers tag).
///
/// Everything else (blobs, manifests, tags) is the real registry's.
struct ReferrersStub {
    addr: String,
    referrer_requests: Arc<AtomicUsize>,
}

type Referrers = Arc<Mutex<HashMap<(String, String), Vec<Value>>>>;

fn referrers_stub(upstream: &str) -> ReferrersStub {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind stub");
    let addr = listener.local_addr().expect("addr").to_string();
    let referrer_requests = Arc::new(AtomicUsize::new(0));
    let known: Referrers = Arc::default();
    let (upstream, count) = (upstream.to_owned(), referrer_requests.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (upstream, count, known) = (upstream.clone(), count.clone(), known.clone());
            std::thread::spawn(move || serve_stub(conn, &upstream, &count, &known));
        }
    });
    ReferrersStub {
        addr,
        referrer_requests,
    }
}

fn serve_stub(mut conn: TcpStream, upstream: &str, count: &AtomicUsize, known: &Referrers) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = request_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let path = target.split('?').next().unwrap_or_default().to_owned();

    if method == "GET" {
        if let Some((name, digest)) = path
            .strip_prefix("/v2/")
            .and_then(|p| p.rsplit_once("/referrers/"))
        {
            count.fetch_add(1, Ordering::SeqCst);
            let manifests = known
                .lock()
                .expect("lock")
                .get(&(name.to_owned(), digest.to_owned()))
                .cloned()
                .unwrap_or_default();
            let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
                .to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: {OCI_INDEX}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{index}",
                index.len()
            );
            return;
        }
    }

    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    let mut request = format!("{request_line}\r\n");
    for (k, v) in &headers {
        if !k.eq_ignore_ascii_case("connection") {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    request.push_str("Connection: close\r\n\r\n");
    if up.write_all(request.as_bytes()).is_err() || up.write_all(&body).is_err() {
        return;
    }
    let mut response = Vec::new();
    let _ = up.read_to_end(&mut response);

    let referrer = (method == "PUT")
        .then(|| path.strip_prefix("/v2/").and_then(|p| p.rsplit_once("/manifests/")))
        .flatten()
        .filter(|_| response.starts_with(b"HTTP/1.1 201"))
        .and_then(|(name, _)| {
            let m: Value = serde_json::from_slice(&body).ok()?;
            let subject = m["subject"]["digest"].as_str()?.to_owned();
            let mut entry = json!({
                "mediaType": m["mediaType"], "digest": sha256(&body), "size": body.len(),
                "artifactType": m.get("artifactType").cloned().unwrap_or_else(|| m["config"]["mediaType"].clone()),
            });
            if let Some(a) = m.get("annotations") {
                entry["annotations"] = a.clone();
            }
            Some((name.to_owned(), subject, entry))
        });
    if let Some((name, subject, entry)) = referrer {
        known
            .lock()
            .expect("lock")
            .entry((name, subject.clone()))
            .or_default()
            .push(entry);
        let line_end = response.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
        let header = format!("\r\nOCI-Subject: {subject}");
        response.splice(line_end..line_end, header.into_bytes());
    }
    let _ = conn.write_all(&response);
}

#[test]
fn the_referrers_api_path_through_a_stub() {
    let Some(bin) = tools() else { return };
    let image = synthetic(&["linux/amd64"]);
    let registry = Registry::start(&bin, Auth::None);
    let subject = registry.push(image.dir.path(), "latest", "app", false);
    let stub = referrers_stub(&registry.addr);
    let reference = format!("{}/app:latest", stub.addr);
    let opts = PullOptions {
        insecure_registries: vec![stub.addr.clone()],
        ..Default::default()
    };
    let key = key();

    let first = vex(&key, "app", &subject, "2024-06-01T10:00:00Z");
    let a = attach_attestation_blocking(&reference, &first, &opts).expect("attach");
    assert!(a.referrers_api, "the registry answered OCI-Subject");
    assert!(
        referrers_index(&registry, "app", &subject).is_none(),
        "no referrers tag with a referrers api"
    );
    assert_eq!(cosign_layers(&registry, "app", &subject).len(), 1);

    let found = list_attestations_blocking(&reference, &opts).expect("list");
    assert!(stub.referrer_requests.load(Ordering::SeqCst) >= 1);
    let refs = at_referrers(&found);
    assert_eq!(refs.len(), 1, "{found:?}");
    assert_eq!(
        refs[0].location,
        AttestationLocation::Referrer {
            manifest: a.referrer.clone()
        }
    );
    assert_eq!(refs[0].envelope, first);
    assert_eq!(at_cosign_tag(&found)[0].envelope, first);

    // again: nothing pushed, and the api still answers for it
    let again = attach_attestation_blocking(&reference, &first, &opts).expect("again");
    assert!(again.unchanged && again.referrers_api, "{again:?}");

    // a newer one: both in the api's answer, only the newer in .att
    let second = vex(&key, "app", &subject, "2024-07-01T10:00:00Z");
    let b = attach_attestation_blocking(&reference, &second, &opts).expect("newer");
    assert!(b.referrers_api && !b.unchanged);
    let found = list_attestations_blocking(&reference, &opts).expect("list");
    let history: Vec<&Vec<u8>> = at_referrers(&found).iter().map(|f| &f.envelope).collect();
    assert_eq!(history, vec![&first, &second]);
    let current: Vec<&Vec<u8>> = at_cosign_tag(&found).iter().map(|f| &f.envelope).collect();
    assert_eq!(current, vec![&second]);
    assert!(referrers_index(&registry, "app", &subject).is_none());
}
