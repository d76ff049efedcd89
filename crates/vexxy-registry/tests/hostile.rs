//! Pulls from a hostile registry under an egress policy.
//!
//! A tiny registry written for these tests (std `TcpListener`, just enough
//! HTTP) listens on 127.0.0.2, the one address the policy exempts
//! (`127.0.0.2/32`). "Internal" servers on 127.0.0.3 and 127.0.0.4 stand
//! for metadata endpoints and loopback services: they count every
//! connection and answer a marker string. The registry tries to make the
//! puller reach them (redirects, token realms, foreign layer URLs, a name
//! that rebinds); each attempt must be refused, the internal servers must
//! see no connection at all, and no error may carry their marker.
//!
//! No external network: every address is in 127.0.0.0/8.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::{IpAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use sha2::{Digest as _, Sha256};
use vexxy_egress::{EgressError, EgressPolicy, StaticResolver};
use vexxy_registry::{pull_blocking, PullOptions, RegistryError};

const MARKER: &str = "INTERNAL-METADATA-MARKER-9d2e";

/// A server standing for something internal: counts connections, answers
/// the marker to anything.
struct Internal {
    port: u16,
    connections: Arc<AtomicUsize>,
}

fn internal_on(listener: TcpListener) -> Internal {
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let c = connections.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{MARKER}",
                MARKER.len()
            );
        }
    });
    Internal { port, connections }
}

fn internal(ip: &str) -> Internal {
    internal_on(TcpListener::bind((ip, 0)).unwrap())
}

impl Internal {
    fn seen(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// What the tiny registry answers: (status line, extra headers, body).
type Answer = (&'static str, Vec<String>, Vec<u8>);

/// A registry that answers each request with `handler(method, path)`.
struct Tiny {
    port: u16,
    connections: Arc<AtomicUsize>,
}

fn tiny_on(
    listener: TcpListener,
    handler: impl Fn(&str, &str) -> Answer + Send + Sync + 'static,
) -> Tiny {
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let c = connections.clone();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            std::thread::spawn(move || serve(&mut conn, handler.as_ref()));
        }
    });
    Tiny { port, connections }
}

fn serve(conn: &mut TcpStream, handler: &dyn Fn(&str, &str) -> Answer) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut words = head.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let (status, headers, body) = handler(method, path);
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for h in headers {
        out.push_str(&h);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let _ = conn.write_all(out.as_bytes());
    if method != "HEAD" {
        let _ = conn.write_all(&body);
    }
}

fn tiny(handler: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) -> Tiny {
    tiny_on(TcpListener::bind("127.0.0.2:0").unwrap(), handler)
}

impl Tiny {
    fn addr(&self) -> String {
        format!("127.0.0.2:{}", self.port)
    }
    fn seen(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn json(body: &[u8], media_type: &str) -> Answer {
    (
        "200 OK",
        vec![
            format!("Content-Type: {media_type}"),
            format!("Docker-Content-Digest: {}", sha(body)),
        ],
        body.to_vec(),
    )
}

fn not_found() -> Answer {
    (
        "404 Not Found",
        vec!["Content-Type: application/json".into()],
        br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"no"}]}"#.to_vec(),
    )
}

fn v2_ok() -> Answer {
    (
        "200 OK",
        vec!["Content-Type: application/json".into()],
        b"{}".to_vec(),
    )
}

/// A one-layer image; the layer descriptor lists `urls`.
struct Image {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: Vec<u8>,
}

fn image(urls: &[String]) -> Image {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#.to_vec();
    let layer = b"not really a tar, but verified by digest".to_vec();
    let mut layer_desc = serde_json::json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": sha(&layer), "size": layer.len(),
    });
    if !urls.is_empty() {
        layer_desc["urls"] = serde_json::json!(urls);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(&config), "size": config.len()},
        "layers": [layer_desc],
    })
    .to_string()
    .into_bytes();
    Image {
        manifest,
        config,
        layer,
    }
}

/// A registry serving `image` as `app:1`; the layer blob only when
/// `serve_layer`.
fn serving(image: Image, serve_layer: bool) -> impl Fn(&str, &str) -> Answer + Send + Sync {
    move |_, path| {
        if path == "/v2/" {
            return v2_ok();
        }
        if path.starts_with("/v2/app/manifests/") {
            return json(
                &image.manifest,
                "application/vnd.oci.image.manifest.v1+json",
            );
        }
        if path == format!("/v2/app/blobs/{}", sha(&image.config)) {
            return json(&image.config, "application/octet-stream");
        }
        if serve_layer && path == format!("/v2/app/blobs/{}", sha(&image.layer)) {
            return json(&image.layer, "application/octet-stream");
        }
        not_found()
    }
}

/// Only 127.0.0.2 is exempt from the deny-list.
fn policy() -> EgressPolicy {
    EgressPolicy::new()
        .allow_addresses(["127.0.0.2/32"])
        .unwrap()
}

fn options(policy: EgressPolicy, insecure: &[String]) -> PullOptions {
    PullOptions {
        insecure_registries: insecure.to_vec(),
        egress: Some(policy),
        timeout: Some(Duration::from_secs(10)),
        ..Default::default()
    }
}

/// The error and its whole source chain, as a job's error would show it.
fn full_text(e: &RegistryError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(" | ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The pull failed because the policy refused a destination.
fn assert_refused(e: &RegistryError, internals: &[&Internal]) {
    let text = full_text(e);
    assert!(
        matches!(e, RegistryError::Egress { source, .. } if source.is_refusal()),
        "expected an egress refusal, got {e:?}"
    );
    assert!(e.is_bad_input(), "{text}");
    assert!(!text.contains(MARKER), "{text}");
    for i in internals {
        assert_eq!(
            i.seen(),
            0,
            "internal server on port {} was reached: {text}",
            i.port
        );
    }
}

#[test]
fn a_clean_pull_through_the_policy_succeeds() {
    // the proxy path works: the refusals below are refusals, not breakage
    let registry = tiny(serving(image(&[]), true));
    let dir = tempfile::tempdir().unwrap();
    let pulled = pull_blocking(
        &format!("{}/app:1", registry.addr()),
        &options(policy(), &[registry.addr()]),
        dir.path(),
    )
    .expect("pull through the proxy");
    assert_eq!(pulled.layers.len(), 1);
    assert!(registry.seen() >= 3, "manifest, config and layer fetched");
}

#[test]
fn a_cached_blob_is_reused_only_when_this_registry_serves_it() {
    // one tenant's pull caches the layer...
    let dir = tempfile::tempdir().unwrap();
    let owner = tiny(serving(image(&[]), true));
    let first = pull_blocking(
        &format!("{}/app:1", owner.addr()),
        &options(policy(), &[owner.addr()]),
        dir.path(),
    )
    .expect("the owner's pull");
    assert_eq!(first.reused_blobs, 0);
    // ...another serves a manifest naming it but not the blob itself: the
    // cached copy must not stand in for a download it could not make
    let other = tiny(serving(image(&[]), false));
    let e = pull_blocking(
        &format!("{}/app:1", other.addr()),
        &options(policy(), &[other.addr()]),
        dir.path(),
    )
    .expect_err("the layer is not this registry's to give");
    assert!(!matches!(e, RegistryError::Egress { .. }), "{e:?}");
    // and where the registry serves it, the cache is used
    let again = pull_blocking(
        &format!("{}/app:1", owner.addr()),
        &options(policy(), &[owner.addr()]),
        dir.path(),
    )
    .expect("the owner's second pull");
    assert_eq!(again.reused_blobs, 2, "config and layer reused");
    assert_eq!(again.fetched_bytes, 0);
}

#[test]
fn registry_hosts_on_internal_addresses_are_refused_before_connecting() {
    let loopback = internal("127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    for reference in [
        format!("127.0.0.1:{}/app:1", loopback.port),
        format!("localhost:{}/app:1", loopback.port),
        format!("127.1.2.3:{}/app:1", loopback.port),
        "169.254.169.254/latest:1".to_owned(),
        "10.1.2.3:5000/app:1".to_owned(),
    ] {
        let registry = reference.split('/').next().unwrap().to_owned();
        let e = pull_blocking(&reference, &options(policy(), &[registry]), dir.path())
            .expect_err(&reference);
        assert_refused(&e, &[&loopback]);
        assert!(
            matches!(
                &e,
                RegistryError::Egress { source, .. }
                    if matches!(**source, EgressError::Denied { .. })
            ),
            "{reference}: {e:?}"
        );
        // the check needs no DNS for these: admit() says the same up front
        let e = vexxy_registry::admit(&reference, &policy(), &[]).expect_err(&reference);
        assert!(matches!(e, RegistryError::Egress { .. }), "{e:?}");
    }
    assert!(!dir.path().join("index.json").exists());
    assert!(vexxy_registry::admit("docker.io/library/nginx:1", &policy(), &[]).is_ok());
}

#[test]
fn redirects_to_internal_addresses_are_refused() {
    let meta = internal("127.0.0.3");
    let tls = internal("127.0.0.4");
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // plain http to a host not named insecure (and a denied address)
        (
            format!("http://127.0.0.3:{}/latest/meta-data", meta.port),
            false,
        ),
        // plain http allowed for it: the address rule alone refuses
        (
            format!("http://127.0.0.3:{}/latest/meta-data", meta.port),
            true,
        ),
        // https: the CONNECT is refused
        (format!("https://127.0.0.4:{}/secret", tls.port), false),
        // a name the system resolves to loopback
        (format!("http://localhost:{}/", meta.port), true),
    ];
    for (location, declare_insecure) in cases {
        let target = location.clone();
        let registry = tiny(move |_, path| {
            if path == "/v2/" {
                return v2_ok();
            }
            (
                "307 Temporary Redirect",
                vec![format!("Location: {target}")],
                Vec::new(),
            )
        });
        let mut insecure = vec![registry.addr()];
        if declare_insecure {
            insecure.push(location.split('/').nth(2).unwrap().to_owned());
        }
        let e = pull_blocking(
            &format!("{}/app:1", registry.addr()),
            &options(policy(), &insecure),
            dir.path(),
        )
        .expect_err(&location);
        assert_refused(&e, &[&meta, &tls]);
        assert!(registry.seen() >= 1, "the registry was asked");
    }
}

#[test]
fn token_realms_pointing_inside_are_refused() {
    let meta = internal("127.0.0.3");
    let tls = internal("127.0.0.4");
    let dir = tempfile::tempdir().unwrap();
    for (realm, declare_insecure) in [
        (format!("http://127.0.0.3:{}/token", meta.port), true),
        (format!("http://127.0.0.3:{}/token", meta.port), false),
        (format!("https://127.0.0.4:{}/token", tls.port), false),
    ] {
        let challenge = format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"hostile\"");
        let registry = tiny(move |_, _| ("401 Unauthorized", vec![challenge.clone()], Vec::new()));
        let mut insecure = vec![registry.addr()];
        if declare_insecure {
            insecure.push(realm.split('/').nth(2).unwrap().to_owned());
        }
        let e = pull_blocking(
            &format!("{}/app:1", registry.addr()),
            &options(policy(), &insecure),
            dir.path(),
        )
        .expect_err(&realm);
        assert_refused(&e, &[&meta, &tls]);
        assert!(registry.seen() >= 1);
    }
}

#[test]
fn foreign_layer_urls_are_not_fetched_from_inside() {
    let meta = internal("127.0.0.3");
    let tls = internal("127.0.0.4");
    let dir = tempfile::tempdir().unwrap();

    // literal internal addresses and plain http: never offered to the client
    let urls = vec![
        format!("http://127.0.0.3:{}/layer", meta.port),
        format!("https://127.0.0.4:{}/layer", tls.port),
        format!("https://[::ffff:127.0.0.4]:{}/layer", tls.port),
        format!("http://{}/v2/app/blobs/x", "127.0.0.2"),
    ];
    let registry = tiny(serving(image(&urls), false));
    let e = pull_blocking(
        &format!("{}/app:1", registry.addr()),
        &options(policy(), &[registry.addr()]),
        dir.path(),
    )
    .expect_err("the registry does not serve the layer");
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e:?}");
    assert!(!full_text(&e).contains(MARKER));
    assert_eq!((meta.seen(), tls.seen()), (0, 0));

    // a name that passes the cheap check but resolves inside: the proxy refuses
    let resolver = Arc::new(StaticResolver::new());
    resolver.answer("layers.test", &["127.0.0.4".parse::<IpAddr>().unwrap()]);
    let urls = vec![format!("https://layers.test:{}/layer", tls.port)];
    let registry = tiny(serving(image(&urls), false));
    let e = pull_blocking(
        &format!("{}/app:1", registry.addr()),
        &options(policy().with_resolver(resolver.clone()), &[registry.addr()]),
        dir.path(),
    )
    .expect_err("refused");
    assert_refused(&e, &[&meta, &tls]);
    assert_eq!(resolver.calls("layers.test"), 1);
}

#[test]
fn a_registry_name_that_rebinds_is_refused_at_connect() {
    // the registry on 127.0.0.2:P, something internal on 127.0.0.3:P
    let (registry, inside) = (0..20)
        .find_map(|_| {
            let r = TcpListener::bind("127.0.0.2:0").ok()?;
            let port = r.local_addr().ok()?.port();
            let i = TcpListener::bind(("127.0.0.3", port)).ok()?;
            Some((r, i))
        })
        .expect("a port free on both addresses");
    let port = registry.local_addr().unwrap().port();
    let registry = tiny_on(registry, serving(image(&[]), true));
    let inside = internal_on(inside);

    let resolver = Arc::new(StaticResolver::new());
    resolver
        .answer("registry.test", &["127.0.0.2".parse::<IpAddr>().unwrap()])
        .answer("registry.test", &["127.0.0.3".parse::<IpAddr>().unwrap()]);
    let name = format!("registry.test:{port}");
    let dir = tempfile::tempdir().unwrap();
    let e = pull_blocking(
        &format!("{name}/app:1"),
        &options(
            policy().with_resolver(resolver.clone()),
            std::slice::from_ref(&name),
        ),
        dir.path(),
    )
    .expect_err("the second answer is internal");
    assert_refused(&e, &[&inside]);
    assert!(
        matches!(&e, RegistryError::Egress { source, .. }
            if matches!(**source, EgressError::Denied { address, .. } if address.to_string() == "127.0.0.3")),
        "{e:?}"
    );
    // checked before the pull, then once per connection the client opened
    assert!(resolver.calls("registry.test") >= 2);
    assert_eq!(registry.seen(), 0, "no connection went anywhere");

    // a name that stays on the allowed address pulls fine through the same path
    let steady = Arc::new(StaticResolver::new());
    steady.answer("registry.test", &["127.0.0.2".parse::<IpAddr>().unwrap()]);
    pull_blocking(
        &format!("{name}/app:1"),
        &options(policy().with_resolver(steady), std::slice::from_ref(&name)),
        dir.path(),
    )
    .expect("steady name pulls");
    assert!(registry.seen() >= 3);
    assert_eq!(inside.seen(), 0);
}

#[test]
fn a_host_allow_list_limits_which_registries_are_contacted() {
    let registry = tiny(serving(image(&[]), true));
    let dir = tempfile::tempdir().unwrap();
    let only_elsewhere = policy().allow_hosts(["*.example.com"]).unwrap();
    let e = pull_blocking(
        &format!("{}/app:1", registry.addr()),
        &options(only_elsewhere, &[registry.addr()]),
        dir.path(),
    )
    .expect_err("not on the host list");
    assert!(
        matches!(
            &e,
            RegistryError::Egress { source, .. }
                if matches!(**source, EgressError::HostNotAllowed { .. })
        ),
        "{e:?}"
    );
    assert_eq!(registry.seen(), 0);
    let listed = policy().allow_hosts([registry.addr()]).unwrap();
    pull_blocking(
        &format!("{}/app:1", registry.addr()),
        &options(listed, &[registry.addr()]),
        dir.path(),
    )
    .expect("listed host pulls");
}
