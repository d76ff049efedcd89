//! Storage that cannot take work, through the router: below its
//! free-space reserve the service is not ready and refuses submissions
//! (503 with `Retry-After`) while reads keep answering; a database that
//! is gone answers 503 at once, not 500 after a wait. (A real full disk,
//! and recovery from it, is `crates/vexxy/tests/full_disk.rs`; the
//! database's own behaviour on one is `vexxy-store`'s `tests/full_disk.rs`.)
#![allow(clippy::unwrap_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode},
    Router,
};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use vexxy_analyze::{AnalysisOutcome, AnalysisRequest, AnalyzeError};
use vexxy_server::{Analyzer, JobControl, Service, ServiceConfig};
use vexxy_store::{
    jobs::{NewJob, Submitted},
    tenants::month_window,
    EvidenceStore, LocalStore, Store, Tier,
};

/// No worker runs here: nothing is analysed.
struct Idle;

impl Analyzer for Idle {
    fn analyze(
        &self,
        _: &AnalysisRequest,
        _: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        Err(AnalyzeError::internal("no analysis in these tests"))
    }
}

struct Harness {
    svc: Arc<Service>,
    app: Router,
    key: String,
    job: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A server with no workers, one organisation with a key and one
    /// queued job (stored directly, not through the API).
    async fn new(tweak: impl FnOnce(&mut ServiceConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite_in(dir.path()).await.unwrap();
        let org = store
            .create_org("acme", Tier::Enterprise, None)
            .await
            .unwrap();
        let key = store.create_key(&org.id, "ci").await.unwrap().secret;
        let new = NewJob {
            org_id: org.id.clone(),
            dedupe_key: "k".into(),
            image_ref: "registry.example/app:1".into(),
            image_digest: None,
            request: "{}".into(),
            callback_url: None,
            priority: 10,
            max_attempts: 3,
            timeout_ms: 60_000,
            key_id: None,
        };
        let job = match store
            .submit(new, 100, month_window(vexxy_store::now_ms()))
            .await
            .unwrap()
        {
            Submitted::Created(job) => job.id,
            other => panic!("{other:?}"),
        };
        let mut config = ServiceConfig {
            workers: 0,
            ..ServiceConfig::default()
        };
        tweak(&mut config);
        let evidence = EvidenceStore::Local(LocalStore::new(dir.path().join("evidence")));
        let svc = Service::new(store, evidence, Arc::new(Idle), config);
        let app = vexxy_server::router(svc.clone());
        Self {
            svc,
            app,
            key,
            job,
            _dir: dir,
        }
    }

    /// Status, headers, JSON body (or null) and how long the answer took.
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value, Duration) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.key));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let began = Instant::now();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let took = began.elapsed();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            took,
        )
    }
}

/// A reserve no disk has: not ready, submissions refused with
/// `Retry-After`, and the stored job still readable as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_free_space_reserve_the_service_takes_no_new_work() {
    let h = Harness::new(|c| c.min_free_bytes = u64::MAX).await;
    let (s, _, body, _) = h.call("GET", "/readyz", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("reserve") && message.contains("database"),
        "{message}"
    );

    let (s, headers, body, _) = h
        .call(
            "POST",
            "/api/v1/analysis/submit",
            Some(json!({"image_ref": "registry.example/other:1"})),
        )
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "unavailable");
    assert!(body["message"].as_str().unwrap().contains("full"), "{body}");
    assert_eq!(headers["retry-after"], "30");

    let (s, _, body, _) = h
        .call("GET", &format!("/api/v1/analysis/{}/status", h.job), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "queued");
    let (s, _, body, _) = h.call("GET", "/api/v1/analysis", None).await;
    assert_eq!((s, &body["total"]), (StatusCode::OK, &json!(1)), "{body}");
}

/// The same service with the default reserve is ready and takes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_room_the_service_is_ready_and_takes_work() {
    let h = Harness::new(|_| {}).await;
    assert_eq!(h.call("GET", "/readyz", None).await.0, StatusCode::OK);
    let (s, _, body, _) = h
        .call(
            "POST",
            "/api/v1/analysis/submit",
            Some(json!({"image_ref": "registry.example/other:1"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
}

/// A database that is gone (here: its pool closed) answers 503 with
/// `Retry-After`, promptly, on reads as on writes; `/readyz` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_database_answers_503_promptly() {
    let h = Harness::new(|_| {}).await;
    h.svc.store.close().await;
    for (method, uri) in [
        ("GET", format!("/api/v1/analysis/{}/status", h.job)),
        ("GET", "/api/v1/analysis".to_owned()),
        ("DELETE", format!("/api/v1/analysis/{}", h.job)),
    ] {
        let (s, headers, body, took) = h.call(method, &uri, None).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}: {body}");
        assert!(headers.contains_key("retry-after"), "{method} {uri}");
        assert!(
            took < Duration::from_secs(6),
            "{method} {uri} took {took:?}"
        );
    }
    let (s, _, body, took) = h.call("GET", "/readyz", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(took < Duration::from_secs(6), "{took:?}");
}
