//! A real local registry (Debian's `docker-registry`, i.e. CNCF distribution)
//! for the integration tests, plus a token service for bearer auth.
//!
//! Everything listens on 127.0.0.1 only and is stopped on drop.

#![allow(dead_code, unreachable_pub)]

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use p256::{ecdsa::signature::Signer as _, pkcs8::DecodePrivateKey as _, pkcs8::EncodePublicKey};
use sha2::{Digest as _, Sha256};

pub use vexxy_testkit::registry::{tools, tools_and_htpasswd, Auth, Registry, PASS, USER};

/// Pull options for a test registry (plain HTTP).
pub fn options(registry: &Registry) -> vexxy_registry::PullOptions {
    vexxy_registry::PullOptions {
        insecure_registries: vec![registry.addr.clone()],
        ..Default::default()
    }
}

impl TokenServer {
    /// What a registry trusting this token service is configured with.
    pub fn auth(&self) -> Auth {
        Auth::Token(vexxy_testkit::registry::TokenAuth {
            realm: self.realm(),
            service: Self::SERVICE.to_owned(),
            issuer: Self::ISSUER.to_owned(),
            cert_pem: self.cert_pem.clone(),
        })
    }
}

/// The registry binary and the nginx test image's OCI layout, or `None`
/// after a gate said why.
pub fn prerequisites() -> Option<(PathBuf, PathBuf)> {
    let registry = tools()?;
    let image = vexxy_testkit::test_image("nginx")?.join("oci");
    Some((registry, image))
}

/// A small image written by hand as an OCI layout (tag `latest`): one config
/// and two layers shared by one manifest per platform, under an image index
/// when there is more than one platform.
pub struct Synthetic {
    pub dir: tempfile::TempDir,
    /// Digest of the index, when there is one.
    pub index: Option<String>,
    /// Manifest digest per platform, in the order given.
    pub manifests: Vec<String>,
    pub config: String,
    pub layers: Vec<String>,
}

fn put_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    std::fs::write(blob(layout, &digest), bytes).expect("write blob");
    (digest, bytes.len())
}

pub fn synthetic(platforms: &[&str]) -> Synthetic {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("blobs/sha256")).expect("blobs");
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("marker");
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []}, "config": {}
    });
    let (config_digest, config_size) = put_blob(root, config.to_string().as_bytes());
    let mut layers = Vec::new();
    for i in 0..2u8 {
        // Distinct, incompressible-looking content of a few hundred KiB.
        let bytes: Vec<u8> = (0..300_000u32)
            .map(|n| (n.wrapping_mul(2_654_435_761).rotate_left(u32::from(i) + 7) >> 13) as u8)
            .collect();
        layers.push(put_blob(root, &bytes));
    }
    let mut manifests = Vec::new();
    let mut entries = Vec::new();
    for platform in platforms {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": layers.iter().map(|(d, s)| serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": d, "size": s})).collect::<Vec<_>>(),
            "annotations": {"vexxy.test.platform": platform},
        });
        let (digest, size) = put_blob(root, manifest.to_string().as_bytes());
        let mut parts = platform.split('/');
        let mut p = serde_json::json!({
            "os": parts.next().expect("os"), "architecture": parts.next().expect("arch")
        });
        if let Some(v) = parts.next() {
            p["variant"] = v.into();
        }
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size, "platform": p,
        }));
        manifests.push(digest);
    }
    let (top, index) = if entries.len() == 1 {
        let mut e = entries.remove(0);
        e.as_object_mut().expect("object").remove("platform");
        (e, None)
    } else {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        });
        let (digest, size) = put_blob(root, index.to_string().as_bytes());
        let top = serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest, "size": size,
        });
        (top, Some(digest))
    };
    let mut top = top;
    top["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
    let index_json = serde_json::json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::write(root.join("index.json"), index_json.to_string()).expect("index.json");
    Synthetic {
        dir,
        index,
        manifests,
        config: config_digest,
        layers: layers.into_iter().map(|(d, _)| d).collect(),
    }
}

/// Manifest digest, config digest and layer digests of the `latest` image
/// of an OCI layout (read directly, independent of the crate under test).
pub struct Expected {
    pub manifest: String,
    pub config: String,
    pub layers: Vec<String>,
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("parse json")
}

pub fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs")
        .join("sha256")
        .join(digest.trim_start_matches("sha256:"))
}

pub fn expected(layout: &Path) -> Expected {
    let index = read_json(&layout.join("index.json"));
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let m = read_json(&blob(layout, &manifest));
    Expected {
        manifest,
        config: m["config"]["digest"].as_str().expect("config").to_owned(),
        layers: m["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["digest"].as_str().expect("layer").to_owned())
            .collect(),
    }
}

/// Checks that a pulled layout is self-consistent: the entry for `name`
/// exists, and the manifest, config and all layers are present and hash to
/// their names. Returns the manifest digest of the entry.
pub fn check_layout(layout: &Path, name: &str) -> String {
    let marker = read_json(&layout.join("oci-layout"));
    assert_eq!(marker["imageLayoutVersion"], "1.0.0");
    let index = read_json(&layout.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("no entry named {name} in {index}"));
    let digest = entry["digest"].as_str().expect("digest").to_owned();
    let manifest_path = blob(layout, &digest);
    assert_eq!(
        entry["size"].as_u64(),
        Some(std::fs::metadata(&manifest_path).expect("manifest").len())
    );
    let manifest = read_json(&manifest_path);
    let mut all = vec![
        digest.clone(),
        manifest["config"]["digest"].as_str().expect("c").into(),
    ];
    for l in manifest["layers"].as_array().expect("layers") {
        all.push(l["digest"].as_str().expect("layer").to_owned());
    }
    for d in all {
        let bytes = std::fs::read(blob(layout, &d)).unwrap_or_else(|e| panic!("{d}: {e}"));
        assert_eq!(format!("sha256:{}", hex::encode(Sha256::digest(&bytes))), d);
    }
    assert!(
        !layout.join(".vexxy-tmp").exists(),
        "temporary directory left behind"
    );
    digest
}

/// A minimal registry token service: answers `GET /token?scope=…&service=…`
/// for requests carrying the test user's basic credentials with an ES256
/// JWT the registry trusts (its key's self-signed certificate is the
/// registry's `rootcertbundle`); refuses everyone else with 401.
pub struct TokenServer {
    pub port: u16,
    pub cert_pem: String,
    pub issued: Arc<AtomicUsize>,
    pub refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    pub const SERVICE: &'static str = "vexxy-test-registry";
    pub const ISSUER: &'static str = "vexxy-test-issuer";

    pub fn start() -> TokenServer {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let params = rcgen::CertificateParams::new(vec!["vexxy-token".to_owned()]).expect("p");
        let cert_pem = params.self_signed(&key).expect("self-signed").pem();
        let signing = p256::ecdsa::SigningKey::from_pkcs8_der(&key.serialize_der()).expect("key");
        let kid = libtrust_key_id(&signing);

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (s, i, r) = (stop.clone(), issued.clone(), refused.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => serve_token(stream, &signing, &kid, &i, &r),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TokenServer {
            port,
            cert_pem,
            issued,
            refused,
            stop,
            thread: Some(thread),
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The key id distribution's token verifier (libtrust) computes for a
/// public key: base32 of the first 240 bits of sha256(SPKI DER), in
/// colon-separated groups of four.
fn libtrust_key_id(key: &p256::ecdsa::SigningKey) -> String {
    let spki = key.verifying_key().to_public_key_der().expect("spki");
    let hash = Sha256::digest(spki.as_bytes());
    let b32 = base32(&hash[..30]);
    let groups: Vec<&str> = (0..b32.len()).step_by(4).map(|i| &b32[i..i + 4]).collect();
    groups.join(":")
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("3f");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve_token(
    stream: TcpStream,
    key: &p256::ecdsa::SigningKey,
    kid: &str,
    issued: &AtomicUsize,
    refused: &AtomicUsize,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_owned());
            }
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let mut scopes = Vec::new();
    let mut service = String::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "scope" => scopes.push(percent_decode(v)),
            "service" => service = percent_decode(v),
            _ => {}
        }
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    );
    let mut stream = reader.into_inner();
    if authorization.as_deref() != Some(expected.as_str()) || service != TokenServer::SERVICE {
        refused.fetch_add(1, Ordering::Relaxed);
        let body = r#"{"details":"invalid credentials"}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({
                "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()
            }))
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "kid": kid});
    let claims = serde_json::json!({
        "iss": TokenServer::ISSUER, "sub": USER, "aud": TokenServer::SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("vexxy-{now}-{}", issued.load(Ordering::Relaxed)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
    let token = format!("{signing_input}.{}", b64url(&signature.to_bytes()));
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
    issued.fetch_add(1, Ordering::Relaxed);
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}
