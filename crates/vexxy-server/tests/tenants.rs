//! Organisations' signing keys, registry credentials and registry
//! allow-lists through the HTTP API (`tower::ServiceExt::oneshot`), on
//! SQLite and on the real PostgreSQL; and jobs that pull with their
//! organisation's login and sign and attach their VEX to a real registry
//! (Debian's docker-registry with htpasswd auth).
//!
//! The analyses come from `Pulling`, an analyzer written for these tests:
//! it really pulls the image with the request's credentials (what the
//! worker put there is what is under test), then answers a fixed VEX
//! document about the pulled manifest. The real pipeline behind the same
//! trait is exercised end to end by the `vexxy` binary's tests.
#![allow(clippy::unwrap_used)]

use std::{
    io::ErrorKind,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tower::ServiceExt as _;
use vexxy_analyze::{
    AnalysisOutcome, AnalysisRequest, AnalyzeError, ArtifactKind, Artifacts, ImageSource,
    ProfileSource,
};
use vexxy_model::Product;
use vexxy_server::{Analyzer, JobControl, Service, ServiceConfig};
use vexxy_store::{EvidenceStore, LocalStore, ServerKey, Store, Tier};

const VEX: &str = r#"{"@context":"https://openvex.dev/ns/v0.2.0","@id":"https://vexxy.dev/test","author":"t","timestamp":"2026-01-01T00:00:00Z","version":1,"statements":[{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"p"}],"status":"not_affected","justification":"vulnerable_code_not_in_execute_path"}]}"#;

/// Pulls the image with the request's credentials, insecure registries
/// and egress policy (a job with `image_digest` is taken at its word and
/// not pulled), then answers [`VEX`] about the manifest.
#[derive(Default)]
struct Pulling {
    calls: AtomicUsize,
}

impl Analyzer for Pulling {
    fn analyze(
        &self,
        request: &AnalysisRequest,
        _control: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let ImageSource::Registry { reference } = &request.image.source else {
            return Err(AnalyzeError::bad_input("registry images only"));
        };
        let image = vexxy_registry::ImageRef::parse(reference)?;
        let digest = match &request.expected_digest {
            Some(d) => d.clone(),
            None => {
                let layout = tempfile::tempdir().unwrap();
                let opts = vexxy_registry::PullOptions {
                    platform: None,
                    insecure_registries: request.image.insecure_registries.clone(),
                    credentials: request.image.credentials.clone(),
                    timeout: request.image.registry_timeout,
                    egress: request.image.egress.clone(),
                };
                vexxy_registry::pull_blocking(reference, &opts, layout.path())?.manifest_digest
            }
        };
        let mut artifacts = Artifacts::default();
        artifacts.insert(ArtifactKind::OpenVex, VEX.as_bytes().to_vec());
        Ok(AnalysisOutcome {
            product: Product {
                name: format!("{}/{}", image.registry(), image.repository()),
                tag: image.tag().map(str::to_owned),
                digest: Some(digest),
            },
            profile: Default::default(),
            profile_source: ProfileSource::Given,
            findings: Vec::new(),
            decision: vexxy_decide::Outcome {
                decisions: Vec::new(),
                statements: Vec::new(),
                summary: Default::default(),
            },
            artifacts,
            packages: 0,
            used_packages: 0,
            report_mismatch: None,
            timings: Default::default(),
        })
    }
}

struct Harness {
    svc: Arc<Service>,
    analyzer: Arc<Pulling>,
    app: Router,
    stop: tokio::sync::watch::Sender<bool>,
    db_url: String,
    _dir: tempfile::TempDir,
    _db: Option<vexxy_testkit::pg::TestDatabase>,
}

impl Harness {
    async fn new(
        db: Option<vexxy_testkit::pg::TestDatabase>,
        tweak: impl FnOnce(&mut ServiceConfig),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (store, db_url) = match &db {
            Some(db) => (Store::open(&db.url()).await.unwrap(), db.url()),
            None => (
                Store::open_sqlite_in(dir.path()).await.unwrap(),
                format!("sqlite://{}", dir.path().join("vexxy.db").display()),
            ),
        };
        let mut config = ServiceConfig::default();
        config.queue.heartbeat = Duration::from_millis(50);
        config.queue.poll = Duration::from_millis(20);
        config.queue.retry_backoff = Duration::from_millis(10);
        config.max_body_bytes = 1 << 20;
        config.shutdown_grace = Duration::from_millis(100);
        config.secret_key = Some(ServerKey::generate().unwrap());
        config.analysis.registry_timeout = Some(Duration::from_secs(10));
        tweak(&mut config);
        let analyzer = Arc::new(Pulling::default());
        let evidence = EvidenceStore::Local(LocalStore::new(dir.path().join("evidence")));
        let svc = Service::new(store, evidence, analyzer.clone(), config);
        let (stop, rx) = tokio::sync::watch::channel(false);
        let workers = svc.config.workers;
        let mut bg = vexxy_server::spawn_background(&svc, workers, vexxy_server::Role::Server, &rx);
        tokio::spawn(async move { while bg.join_next().await.is_some() {} });
        let app = vexxy_server::router(svc.clone());
        Self {
            svc,
            analyzer,
            app,
            stop,
            db_url,
            _dir: dir,
            _db: db,
        }
    }

    async fn key(&self, org: &str) -> String {
        let org = self
            .svc
            .store
            .create_org(org, Tier::Enterprise, None)
            .await
            .unwrap();
        self.svc
            .store
            .create_key(&org.id, "test")
            .await
            .unwrap()
            .secret
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, Vec<u8>) {
        self.call_raw(method, uri, key, body.map(|b| b.to_string().into_bytes()))
            .await
    }

    async fn call_raw(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Value, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json, bytes)
    }

    async fn submit(&self, key: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = self
            .call("POST", "/api/v1/analysis/submit", Some(key), Some(body))
            .await;
        (s, v)
    }

    async fn wait_finished(&self, key: &str, id: &str) -> Value {
        let began = Instant::now();
        loop {
            let (s, v, _) = self
                .call(
                    "GET",
                    &format!("/api/v1/analysis/{id}/status"),
                    Some(key),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if ["complete", "failed", "cancelled"].contains(&v["status"].as_str().unwrap_or("")) {
                return v;
            }
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "job {id} never finished: {v}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Every text column of every row of `table`, as stored.
    async fn raw_rows(&self, table: &str) -> Vec<String> {
        use sqlx::Row as _;
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.db_url).await.unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
            .fetch_all(&pool)
            .await
            .unwrap();
        let mut texts = Vec::new();
        for row in &rows {
            for i in 0..row.len() {
                if let Ok(Some(t)) = row.try_get::<Option<String>, _>(i) {
                    texts.push(t);
                }
            }
        }
        pool.close().await;
        texts
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(None).await; })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(db) = vexxy_testkit::require_postgres(stringify!($name)) else { return };
                super::$name(Some(db)).await;
            })*
        }
    };
}

both!(
    secrets_need_the_server_key,
    signing_keys_belong_to_their_organisation,
    registry_credentials_belong_to_their_organisation,
    allowlists_refuse_before_any_connection,
    jobs_pull_with_their_organisation_s_login,
    jobs_sign_and_attach_to_the_registry,
);

const PASSWORD: &str = vexxy_testkit::registry::PASS;

/// Without a server secret key nothing secret is stored: 503, never plain text.
async fn secrets_need_the_server_key(db: Option<vexxy_testkit::pg::TestDatabase>) {
    let h = Harness::new(db, |c| {
        c.workers = 0;
        c.secret_key = None;
    })
    .await;
    let key = h.key("a").await;
    let pair = vexxy_attest::generate(vexxy_attest::KeyAlgorithm::Ed25519).unwrap();
    for (method, uri, body) in [
        ("POST", "/api/v1/signing-keys", json!({})),
        (
            "POST",
            "/api/v1/signing-keys/import",
            json!({"private_key_pem": pair.private_pem}),
        ),
        (
            "PUT",
            "/api/v1/registry-credentials/ghcr.io",
            json!({"username": "u", "password": PASSWORD}),
        ),
    ] {
        let (s, v, _) = h.call(method, uri, Some(&key), Some(body)).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}: {v}");
        assert_eq!(v["code"], "no_secret_key", "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("no server secret key configured"),
            "{v}"
        );
    }
    // what needs no secret still works
    let (s, v, _) = h
        .call("GET", "/api/v1/signing-keys", Some(&key), None)
        .await;
    assert_eq!(
        (s, v["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    let (s, _, _) = h
        .call(
            "PUT",
            "/api/v1/registry-allowlist",
            Some(&key),
            Some(json!({"hosts": ["ghcr.io"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // a job that signs is refused too
    let (s, v) = h
        .submit(
            &key,
            json!({"image_ref": "ghcr.io/a/b:1", "config": {"sign": true}}),
        )
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    for table in ["org_signing_keys", "org_registry_credentials"] {
        assert!(h.raw_rows(table).await.is_empty(), "{table}");
    }
}

async fn signing_keys_belong_to_their_organisation(db: Option<vexxy_testkit::pg::TestDatabase>) {
    let h = Harness::new(db, |c| c.workers = 0).await;
    let a = h.key("a").await;
    let b = h.key("b").await;
    let (s, generated, body) = h
        .call("POST", "/api/v1/signing-keys", Some(&a), Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{generated}");
    assert_eq!(generated["algorithm"], "ecdsa-p256", "p256 by default");
    assert_eq!(generated["active"], true);
    assert!(!String::from_utf8_lossy(&body).contains("PRIVATE"));
    let public =
        vexxy_attest::VerifyingKey::from_pem(generated["public_key_pem"].as_str().unwrap())
            .unwrap();
    assert_eq!(
        public.keyid(),
        generated["keyid"],
        "keyid as vexxy-attest computes it"
    );
    // an imported ed25519 key becomes the active one
    let pair = vexxy_attest::generate(vexxy_attest::KeyAlgorithm::Ed25519).unwrap();
    let secret_line = pair.private_pem.lines().nth(1).unwrap().to_owned();
    let (s, imported, body) = h
        .call(
            "POST",
            "/api/v1/signing-keys/import",
            Some(&a),
            Some(json!({"private_key_pem": pair.private_pem})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{imported}");
    assert_eq!(imported["algorithm"], "ed25519");
    assert_eq!(imported["public_key_pem"], pair.public_pem);
    assert!(!String::from_utf8_lossy(&body).contains(&secret_line));
    let (s, list, body) = h.call("GET", "/api/v1/signing-keys", Some(&a), None).await;
    assert_eq!(s, StatusCode::OK);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert_eq!(items[0]["id"], imported["id"], "newest first");
    assert_eq!(
        (items[0]["active"].clone(), items[1]["active"].clone()),
        (json!(true), json!(false))
    );
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains("PRIVATE") && !text.contains(&secret_line),
        "{text}"
    );
    // nor in the database
    for t in h.raw_rows("org_signing_keys").await {
        assert!(!t.contains(&secret_line) && !t.contains("PRIVATE"), "{t}");
    }
    // organisation b sees none, and can delete none
    let (_, list_b, _) = h.call("GET", "/api/v1/signing-keys", Some(&b), None).await;
    assert_eq!(list_b["items"], json!([]));
    let id = imported["id"].as_str().unwrap();
    let (s, _, _) = h
        .call(
            "DELETE",
            &format!("/api/v1/signing-keys/{id}"),
            Some(&b),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // b cannot sign with a's key either
    let (s, v) = h
        .submit(
            &b,
            json!({"image_ref": "ghcr.io/a/b:1", "config": {"attach": true}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"].as_str().unwrap().starts_with("config.attach"),
        "{v}"
    );
    // bad keys: 422 without echoing them; big bodies: 413
    let garbage = "-----BEGIN PRIVATE KEY-----\nTm90QUtleUF0QWxsU2VjcmV0U2VjcmV0\n-----END PRIVATE KEY-----\n";
    let (s, v, body) = h
        .call(
            "POST",
            "/api/v1/signing-keys/import",
            Some(&a),
            Some(json!({"private_key_pem": garbage})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(!String::from_utf8_lossy(&body).contains("Tm90QUtle"), "{v}");
    let (s, v, _) = h
        .call(
            "POST",
            "/api/v1/signing-keys/import",
            Some(&a),
            Some(json!({"private_key_pem": "x".repeat(70_000)})),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let (s, v, _) = h
        .call(
            "POST",
            "/api/v1/signing-keys",
            Some(&a),
            Some(json!({"algorithm": "rsa"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // revoking: gone from the list, no longer active
    let (s, _, _) = h
        .call(
            "DELETE",
            &format!("/api/v1/signing-keys/{id}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list, _) = h.call("GET", "/api/v1/signing-keys", Some(&a), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["active"], false);
    let (s, v) = h
        .submit(
            &a,
            json!({"image_ref": "ghcr.io/a/b:1", "config": {"sign": true}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "no active key: {v}");
    // unauthenticated: 401 everywhere
    for (method, uri) in [
        ("GET", "/api/v1/signing-keys"),
        ("POST", "/api/v1/signing-keys"),
        ("POST", "/api/v1/signing-keys/import"),
        ("DELETE", "/api/v1/signing-keys/sk_x"),
        ("GET", "/api/v1/registry-credentials"),
        ("PUT", "/api/v1/registry-credentials/ghcr.io"),
        ("DELETE", "/api/v1/registry-credentials/ghcr.io"),
        ("GET", "/api/v1/registry-allowlist"),
        ("PUT", "/api/v1/registry-allowlist"),
    ] {
        let (s, _, _) = h.call(method, uri, None, Some(json!({}))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    let org = h.svc.store.org("a").await.unwrap();
    let actions: Vec<String> = h
        .svc
        .store
        .audit_entries(Some(&org.id))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in [
        "generate_signing_key",
        "import_signing_key",
        "list_signing_keys",
        "revoke_signing_key",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

async fn registry_credentials_belong_to_their_organisation(
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(db, |c| c.workers = 0).await;
    let a = h.key("a").await;
    let b = h.key("b").await;
    let (s, v, body) = h
        .call(
            "PUT",
            "/api/v1/registry-credentials/Registry.Example:5000",
            Some(&a),
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["registry"], "registry.example:5000");
    assert!(!String::from_utf8_lossy(&body).contains(PASSWORD));
    let (s, v, body) = h
        .call("GET", "/api/v1/registry-credentials", Some(&a), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["username"], "alice");
    assert!(!String::from_utf8_lossy(&body).contains(PASSWORD), "{v}");
    let (_, v, _) = h
        .call("GET", "/api/v1/registry-credentials", Some(&b), None)
        .await;
    assert_eq!(v["items"], json!([]), "b sees none of a's");
    let (s, _, _) = h
        .call(
            "DELETE",
            "/api/v1/registry-credentials/registry.example:5000",
            Some(&b),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for t in h.raw_rows("org_registry_credentials").await {
        assert!(!t.contains(PASSWORD) && !t.contains("battery"), "{t}");
    }
    // the sealed password does not open as another organisation's
    let sealed = h
        .raw_rows("org_registry_credentials")
        .await
        .into_iter()
        .find(|t| t.starts_with("vxs1."))
        .unwrap();
    let key = h.svc.config.secret_key.as_ref().unwrap();
    let org_a = h.svc.store.org("a").await.unwrap();
    let org_b = h.svc.store.org("b").await.unwrap();
    let purpose = vexxy_store::secrets::Purpose::RegistryPassword;
    assert!(key
        .open(&org_a.id, purpose, "registry.example:5000", &sealed)
        .is_ok());
    assert!(key
        .open(&org_b.id, purpose, "registry.example:5000", &sealed)
        .is_err());
    // bad names and bodies
    for (uri, body, want) in [
        (
            "/api/v1/registry-credentials/a%20b",
            json!({"username": "u", "password": "p"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/registry-credentials/ghcr.io",
            json!({"username": "u", "password": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/registry-credentials/ghcr.io",
            json!({"username": "u"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/registry-credentials/ghcr.io",
            json!({"username": "u", "password": "p".repeat(70_000)}),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let (s, v, _) = h.call("PUT", uri, Some(&a), Some(body)).await;
        assert_eq!(s, want, "{uri}: {v}");
    }
    let (s, _, _) = h
        .call(
            "DELETE",
            "/api/v1/registry-credentials/registry.example:5000",
            Some(&a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(h.raw_rows("org_registry_credentials").await.is_empty());
    let entries = h.svc.store.audit_entries(None).await.unwrap();
    assert!(entries
        .iter()
        .any(|e| e.action == "set_registry_credential"));
    assert!(entries
        .iter()
        .any(|e| e.action == "delete_registry_credential"));
    assert!(entries
        .iter()
        .all(|e| !e.detail.as_deref().unwrap_or("").contains(PASSWORD)));
}

/// A listener that must never see a connection.
struct Untouched(std::net::TcpListener);

impl Untouched {
    fn new() -> Self {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Self(l)
    }

    fn addr(&self) -> String {
        self.0.local_addr().unwrap().to_string()
    }

    fn assert_untouched(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("the listener saw a connection: {other:?}"),
        }
    }
}

/// The operator's list and the organisation's both apply, before any
/// connection: a refused reference is a 422 and the registry it names is
/// never contacted; a job queued before the organisation's list changed
/// fails when it starts, before its pull.
async fn allowlists_refuse_before_any_connection(db: Option<vexxy_testkit::pg::TestDatabase>) {
    let registry = Untouched::new();
    let addr = registry.addr();
    let a = addr.clone();
    let h = Harness::new(db, |c| {
        c.workers = 0;
        c.analysis.insecure_registries = vec![a.clone()];
        // the operator exempts loopback (a local registry it trusts)
        c.analysis.egress = Some(
            vexxy_egress::EgressPolicy::new()
                .allow_addresses(["127.0.0.1/32"])
                .unwrap(),
        );
    })
    .await;
    let key = h.key("a").await;
    let (s, v, _) = h
        .call(
            "PUT",
            "/api/v1/registry-allowlist",
            Some(&key),
            Some(json!({"hosts": ["ghcr.io", "*.corp.example"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["hosts"], json!(["*.corp.example", "ghcr.io"]));
    let (s, v) = h
        .submit(&key, json!({"image_ref": format!("{addr}/app:1")}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.starts_with("image_ref:") && msg.contains("allow-list"),
        "{v}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    registry.assert_untouched();
    let (_, v, _) = h.call("GET", "/api/v1/analysis", Some(&key), None).await;
    assert_eq!(v["total"], 0, "nothing stored: {v}");
    // a bad entry is refused naming it
    let (s, v, _) = h
        .call(
            "PUT",
            "/api/v1/registry-allowlist",
            Some(&key),
            Some(json!({"hosts": ["https://ghcr.io/x"]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // the organisation lists the registry: accepted
    let (s, _, _) = h
        .call(
            "PUT",
            "/api/v1/registry-allowlist",
            Some(&key),
            Some(json!({"hosts": [addr]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = h
        .submit(&key, json!({"image_ref": format!("{addr}/app:1")}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let queued = v["job_id"].as_str().unwrap().to_owned();
    // the list changes before the queued job starts: it fails at start
    let (s, _, _) = h
        .call(
            "PUT",
            "/api/v1/registry-allowlist",
            Some(&key),
            Some(json!({"hosts": ["ghcr.io"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut bg = vexxy_server::spawn_background(&h.svc, 1, vexxy_server::Role::Worker, &rx);
    let v = h.wait_finished(&key, &queued).await;
    let _ = stop.send(true);
    while bg.join_next().await.is_some() {}
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["attempts"], 1, "not retried: {v}");
    assert!(v["error"].as_str().unwrap().contains("allow-list"), "{v}");
    assert_eq!(h.analyzer.calls.load(Ordering::SeqCst), 0, "never pulled");
    registry.assert_untouched();
}

/// The operator's host list refuses what the organisation's list allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_lists_apply() {
    let registry = Untouched::new();
    let addr = registry.addr();
    let h = Harness::new(None, |c| {
        c.workers = 0;
        c.analysis.egress = Some(
            vexxy_egress::EgressPolicy::new()
                .allow_hosts(["ghcr.io"])
                .unwrap()
                .allow_addresses(["127.0.0.1/32"])
                .unwrap(),
        );
    })
    .await;
    let key = h.key("a").await;
    let (s, _, _) = h
        .call(
            "PUT",
            "/api/v1/registry-allowlist",
            Some(&key),
            Some(json!({"hosts": [addr.clone(), "quay.io"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for image in [
        format!("{addr}/app:1"),
        "quay.io/a/b:1".to_owned(),
        "ghcr.io/a/b:1".to_owned(),
    ] {
        let (s, v) = h.submit(&key, json!({"image_ref": image})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{image}: {v}");
    }
    // no organisation list: the operator's alone
    let (s, _, _) = h
        .call(
            "PUT",
            "/api/v1/registry-allowlist",
            Some(&key),
            Some(json!({"hosts": []})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = h.submit(&key, json!({"image_ref": "ghcr.io/a/b:1"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    // loopback without the operator's exemption: refused even when listed
    let h2 = Harness::new(None, |c| c.workers = 0).await;
    let key2 = h2.key("b").await;
    h2.call(
        "PUT",
        "/api/v1/registry-allowlist",
        Some(&key2),
        Some(json!({"hosts": [addr.clone()]})),
    )
    .await;
    let (s, v) = h2
        .submit(&key2, json!({"image_ref": format!("{addr}/app:1")}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    registry.assert_untouched();
}

/// A tiny one-layer OCI image in a layout (tag `1`).
fn tiny_image(marker: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |bytes: &[u8]| {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(root.join("blobs/sha256").join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut layer = tar::Builder::new(Vec::new());
    let data = marker.as_bytes();
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    layer.append_data(&mut header, "marker.txt", data).unwrap();
    let layer = layer.into_inner().unwrap();
    let (layer_digest, layer_size) = put(&layer);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}, "config": {}
    });
    let (config_digest, config_size) = put(config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}],
    });
    let (digest, size) = put(manifest.to_string().as_bytes());
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": "1"}}]});
    std::fs::write(root.join("index.json"), index.to_string()).unwrap();
    dir
}

/// A registry that wants a login, with an image pushed to `app:1`; its
/// address and the image's manifest digest.
fn registry_with_image() -> Option<(vexxy_testkit::registry::Registry, String)> {
    let binary = vexxy_testkit::registry::tools_and_htpasswd()?;
    let registry =
        vexxy_testkit::registry::Registry::start(&binary, vexxy_testkit::registry::Auth::Htpasswd);
    let layout = tiny_image("vexxy tenants test");
    let digest = registry.push(layout.path(), "1", "app", false);
    Some((registry, digest))
}

fn local_registry(c: &mut ServiceConfig, addr: &str) {
    c.analysis.insecure_registries = vec![addr.to_owned()];
    c.analysis.egress = Some(
        vexxy_egress::EgressPolicy::new()
            .allow_addresses(["127.0.0.1/32"])
            .unwrap(),
    );
}

/// Organisation a's login is used for a's pulls only: a gets past the
/// pull, b (no login) is refused by the registry, for good.
async fn jobs_pull_with_their_organisation_s_login(db: Option<vexxy_testkit::pg::TestDatabase>) {
    let Some((registry, digest)) = registry_with_image() else {
        return;
    };
    let addr = registry.addr.clone();
    let h = Harness::new(db, |c| local_registry(c, &addr)).await;
    let a = h.key("a").await;
    let b = h.key("b").await;
    let (s, v, _) = h
        .call(
            "PUT",
            &format!("/api/v1/registry-credentials/{addr}"),
            Some(&a),
            Some(json!({"username": vexxy_testkit::registry::USER, "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let image = format!("{addr}/app:1");
    let (s, v) = h.submit(&a, json!({"image_ref": image})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let job_a = v["job_id"].as_str().unwrap().to_owned();
    let (s, v) = h.submit(&b, json!({"image_ref": image})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let job_b = v["job_id"].as_str().unwrap().to_owned();
    let v = h.wait_finished(&a, &job_a).await;
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["image_digest"], digest, "{v}");
    let v = h.wait_finished(&b, &job_b).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["attempts"], 1, "an auth refusal is not retried: {v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("refused access"), "{error}");
    assert!(!error.contains(PASSWORD));
}

/// A job with `attach` signs its VEX with the organisation's key and
/// pushes the attestation to the registry, where it is found again; the
/// envelope is kept as an artifact and verifies with the listed public
/// key. Without a login the push is refused and the job fails for good.
async fn jobs_sign_and_attach_to_the_registry(db: Option<vexxy_testkit::pg::TestDatabase>) {
    let Some((registry, digest)) = registry_with_image() else {
        return;
    };
    let addr = registry.addr.clone();
    let h = Harness::new(db, |c| local_registry(c, &addr)).await;
    let a = h.key("a").await;
    let c = h.key("c").await;
    for key in [&a, &c] {
        let (s, v, _) = h
            .call(
                "POST",
                "/api/v1/signing-keys",
                Some(key),
                Some(json!({"algorithm": "ed25519"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    h.call(
        "PUT",
        &format!("/api/v1/registry-credentials/{addr}"),
        Some(&a),
        Some(json!({"username": vexxy_testkit::registry::USER, "password": PASSWORD})),
    )
    .await;
    // attach needs a registry image
    let (s, v) = h
        .submit(
            &a,
            json!({"image_ref": "oci:/tmp/x:1", "config": {"attach": true}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let image = format!("{addr}/app:1");
    let (s, v) = h
        .submit(&a, json!({"image_ref": image, "config": {"attach": true}}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["job_id"].as_str().unwrap().to_owned();
    let st = h.wait_finished(&a, &id).await;
    assert_eq!(st["status"], "complete", "{st}");
    let att = &st["attestation"];
    assert_eq!(att["status"], "attached", "{st}");
    assert_eq!(att["subject"], format!("{addr}/app@{digest}"));
    assert_eq!(
        att["cosign_tag"],
        format!("sha256-{}.att", digest.trim_start_matches("sha256:"))
    );
    assert!(att["referrer_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let (s, r, _) = h
        .call(
            "GET",
            &format!("/api/v1/analysis/{id}/results"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["attestation"], *att);
    let link = r["links"]["vex_attestation"].as_str().unwrap().to_owned();
    assert!(link.ends_with("/vex.openvex.intoto.json"), "{link}");
    let (s, _, envelope) = h.call("GET", &link, Some(&a), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        att["envelope_digest"],
        format!("sha256:{}", hex::encode(Sha256::digest(&envelope)))
    );
    // it verifies with the organisation's listed public key
    let (_, keys, _) = h.call("GET", "/api/v1/signing-keys", Some(&a), None).await;
    let public =
        vexxy_attest::VerifyingKey::from_pem(keys["items"][0]["public_key_pem"].as_str().unwrap())
            .unwrap();
    assert_eq!(att["keyid"], public.keyid());
    let statement = vexxy_attest::verify(&envelope, &public).unwrap();
    assert_eq!(
        statement.predicate_type,
        vexxy_attest::OPENVEX_PREDICATE_TYPE
    );
    assert_eq!(statement.subject[0].name, format!("{addr}/app"));
    // and it is in the registry
    let login = vexxy_registry::Credentials::Basic {
        user: vexxy_testkit::registry::USER.into(),
        pass: PASSWORD.into(),
    };
    let pinned = format!("{addr}/app@{digest}");
    let opts = vexxy_registry::PullOptions {
        insecure_registries: vec![addr.clone()],
        credentials: login,
        ..Default::default()
    };
    let found = tokio::task::spawn_blocking(move || {
        vexxy_registry::list_attestations_blocking(&pinned, &opts)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!found.is_empty(), "nothing attached");
    for f in &found {
        assert_eq!(f.envelope, envelope, "{f:?}");
        assert_eq!(f.subject.to_string(), digest);
    }
    // organisation c has a key but no login: the push is refused, for good
    let (s, v) = h
        .submit(
            &c,
            json!({"image_ref": image, "image_digest": digest, "config": {"attach": true}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["job_id"].as_str().unwrap().to_owned();
    let st = h.wait_finished(&c, &id).await;
    assert_eq!(st["status"], "failed", "{st}");
    assert_eq!(st["attempts"], 1, "not retried: {st}");
    let error = st["error"].as_str().unwrap();
    assert!(error.starts_with("attaching the attestation"), "{error}");
    assert!(error.contains("refused access"), "{error}");
    // a job with sign alone keeps the envelope and attaches nothing
    let (s, v) = h
        .submit(
            &a,
            json!({"image_ref": image, "config": {"sign": true, "analysis_duration": 31}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["job_id"].as_str().unwrap().to_owned();
    let st = h.wait_finished(&a, &id).await;
    assert_eq!(st["status"], "complete", "{st}");
    assert_eq!(st["attestation"]["status"], "signed", "{st}");
    assert!(st["attestation"]["cosign_tag"].is_null(), "{st}");
}
