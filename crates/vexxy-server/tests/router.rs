//! Every endpoint and error code through `tower::ServiceExt::oneshot`,
//! with in-process workers, against SQLite and against the real
//! PostgreSQL. The analyses themselves come from `Scripted`, an analyzer
//! written for these tests: the HTTP surface, queue, quotas and webhooks
//! are what is under test here; the real pipeline behind the same trait
//! is exercised end to end by the `vexxy` binary's service tests.
#![allow(clippy::unwrap_used)]

use std::{
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
use tower::ServiceExt as _;
use vexxy_analyze::{
    AnalysisOutcome, AnalysisRequest, AnalyzeError, ArtifactKind, Artifacts, Phase, ProfileSource,
    RunPhase,
};
use vexxy_model::{Decider, Justification, Product, Verdict, VexStatement};
use vexxy_server::{Analyzer, JobControl, Service, ServiceConfig};
use vexxy_store::{EvidenceStore, LocalStore, Store, Tier};

/// Behaviour by image reference prefix: `ok/` succeeds at once, `slow/`
/// runs until cancelled, `reject/` is a bad request, `flaky/` fails
/// transiently once, then succeeds.
#[derive(Default)]
struct Scripted {
    calls: AtomicUsize,
    cancelled: AtomicUsize,
}

const VEX: &str = r#"{"@context":"https://openvex.dev/ns/v0.2.0","@id":"x","author":"t","timestamp":"2026-01-01T00:00:00Z","version":1,"statements":[{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"p"}],"status":"not_affected","justification":"vulnerable_code_not_in_execute_path"},{"vulnerability":{"name":"CVE-2"},"products":[{"@id":"p"}],"status":"affected","action_statement":"x"}]}"#;

/// A complete analysis of `image_ref`: two statements (one not_affected,
/// one affected), the OpenVEX document and a report.
fn outcome(image_ref: &str) -> AnalysisOutcome {
    let product = Product {
        name: image_ref.to_owned(),
        tag: None,
        digest: Some(format!("sha256:{}", "a".repeat(64)).parse().unwrap()),
    };
    let statement = |id: &str, verdict: Verdict| VexStatement {
        vulnerability_id: id.to_owned(),
        aliases: Vec::new(),
        description: None,
        product: product.clone(),
        subcomponents: Vec::new(),
        verdict,
        timestamp: None,
    };
    let by = Decider::automated("scripted");
    let mut artifacts = Artifacts::default();
    artifacts.insert(ArtifactKind::OpenVex, VEX.as_bytes().to_vec());
    artifacts.insert(
        ArtifactKind::ReportMarkdown,
        format!("# {image_ref}\n").into_bytes(),
    );
    AnalysisOutcome {
        product: product.clone(),
        profile: Default::default(),
        profile_source: ProfileSource::Given,
        findings: Vec::new(),
        decision: vexxy_decide::Outcome {
            decisions: Vec::new(),
            statements: vec![
                statement(
                    "CVE-1",
                    Verdict::not_affected(
                        Justification::VulnerableCodeNotInExecutePath,
                        by.clone(),
                    ),
                ),
                statement("CVE-2", Verdict::affected("x".into(), by)),
            ],
            summary: Default::default(),
        },
        artifacts,
        packages: 0,
        used_packages: 0,
        report_mismatch: None,
        timings: Default::default(),
    }
}

impl Analyzer for Scripted {
    fn analyze(
        &self,
        request: &AnalysisRequest,
        control: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        control.set_phase(Phase::Cataloging);
        let image_ref = request.image.reference.as_str();
        match image_ref.split('/').next().unwrap_or("") {
            "ok" => Ok(outcome(image_ref)),
            "reject" => Err(AnalyzeError::bad_input(format!(
                "image {image_ref} not found"
            ))),
            "flaky" if n == 0 => Err(AnalyzeError::transient("registry unreachable")),
            "flaky" => Ok(outcome(image_ref)),
            _ => {
                control.set_phase(Phase::Run(RunPhase::Observing));
                // until cancelled; bounded, so that a job a test leaves
                // running (its cancel raced its start) cannot hold the
                // runtime's blocking pool, and the test, for ever
                let began = std::time::Instant::now();
                while !control.is_cancelled() && began.elapsed() < Duration::from_secs(30) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                Err(AnalyzeError::cancelled())
            }
        }
    }
}

struct Harness {
    svc: Arc<Service>,
    analyzer: Arc<Scripted>,
    app: Router,
    stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
    _db: Option<vexxy_testkit::pg::TestDatabase>,
}

impl Harness {
    async fn new(
        db_url: Option<String>,
        db: Option<vexxy_testkit::pg::TestDatabase>,
        tweak: impl FnOnce(&mut ServiceConfig),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = match db_url {
            Some(u) => Store::open(&u).await.unwrap(),
            None => Store::open_sqlite_in(dir.path()).await.unwrap(),
        };
        let mut config = ServiceConfig::default();
        config.queue.heartbeat = Duration::from_millis(50);
        config.queue.poll = Duration::from_millis(20);
        config.queue.retry_backoff = Duration::from_millis(10);
        config.webhooks.poll = Duration::from_millis(20);
        config.webhooks.backoff = Duration::from_millis(10);
        config.submit.allow_private_callbacks = true;
        config.max_body_bytes = 1 << 20;
        config.shutdown_grace = Duration::from_millis(100);
        tweak(&mut config);
        let analyzer = Arc::new(Scripted::default());
        let evidence = EvidenceStore::Local(LocalStore::new(dir.path().join("evidence")));
        let real = config.analysis.caches.root() != ServiceConfig::default().analysis.caches.root();
        let svc = if real {
            // the real analysis library: what fails before any sandbox runs
            let pipeline = vexxy_server::Pipeline::new(config.analysis.caches.clone());
            Service::new(store, evidence, Arc::new(pipeline), config)
        } else {
            Service::new(store, evidence, analyzer.clone(), config)
        };
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
            _dir: dir,
            _db: db,
        }
    }

    async fn key(&self, org: &str, tier: Tier, quota: Option<i64>) -> String {
        let org = self.svc.store.create_org(org, tier, quota).await.unwrap();
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
            .call(
                "POST",
                "/api/v1/analysis/submit",
                Some(key),
                Some(body.to_string().into_bytes()),
            )
            .await;
        (s, v)
    }

    async fn wait_for(&self, key: &str, id: &str, state: &str) -> Value {
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
            if v["status"] == state {
                return v;
            }
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "job {id} never became {state}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
            async fn $name() { super::$name(None, None).await; })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(db) = vexxy_testkit::require_postgres(stringify!($name)) else { return };
                super::$name(Some(db.url()), Some(db)).await;
            })*
        }
    };
}

both!(
    authentication_is_required,
    tiers_and_quotas,
    bad_bodies_name_the_field,
    jobs_run_to_results_and_artifacts,
    identical_requests_are_deduplicated,
    organisations_never_see_each_other,
    cancel_tears_down_and_fences,
    listing_filters_and_pages,
    transient_failures_retry_and_rejections_do_not,
    jobs_time_out,
    webhooks_are_signed_retried_and_recorded,
    operations_endpoints,
    priority_follows_the_tier,
    spent_quotas_refuse_before_the_body_is_read,
    documents_over_their_limits_are_refused_naming_the_field,
    bad_documents_are_refused_at_submit,
    stored_requests_keep_the_submitted_bytes,
    large_submissions_are_capped,
    metrics_need_the_operator_token,
    organisations_may_be_held_to_the_image_s_command,
);

/// An organisation whose jobs may not replace the image's command: such a
/// submission is refused (403, nothing stored), one without is accepted;
/// the setting is the organisation's alone and audit-logged.
async fn organisations_may_be_held_to_the_image_s_command(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |c| c.workers = 0).await;
    let strict = h.key("strict", Tier::Enterprise, None).await;
    let open = h.key("open", Tier::Enterprise, None).await;
    let org = h.svc.store.org("strict").await.unwrap();
    assert!(org.allow_command_override, "allowed by default");
    h.svc
        .store
        .set_command_override(&org.id, false)
        .await
        .unwrap();
    let with_command = json!({"image_ref": "ok/a", "config": {"command": ["sh", "-c", "true"]}});
    let (s, v) = h.submit(&strict, with_command.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "command_override_forbidden", "{v}");
    let (s, v, _) = h.call("GET", "/api/v1/analysis", Some(&strict), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["items"].as_array().map(Vec::len),
        Some(0),
        "nothing stored: {v}"
    );
    let (s, v) = h.submit(&strict, json!({"image_ref": "ok/a"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (s, v) = h.submit(&open, with_command).await;
    assert_eq!(
        s,
        StatusCode::ACCEPTED,
        "another organisation is not held: {v}"
    );
    let audit = h.svc.store.audit_entries(Some(&org.id)).await.unwrap();
    assert!(
        audit.iter().any(|e| e.action == "set_command_override"),
        "{audit:?}"
    );
}

async fn authentication_is_required(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let key = h.key("acme", Tier::Professional, None).await;
    for (method, uri) in [
        ("POST", "/api/v1/analysis/submit"),
        ("GET", "/api/v1/analysis"),
        ("GET", "/api/v1/analysis/job_x/status"),
        ("GET", "/api/v1/analysis/job_x/results"),
        ("GET", "/api/v1/analysis/job_x/artifacts/report.md"),
        ("DELETE", "/api/v1/analysis/job_x"),
        ("GET", "/api/v1/quota"),
    ] {
        for presented in [
            None,
            Some("vxk_0000"),
            Some("garbage"),
            Some(&key[..key.len() - 2]),
        ] {
            let (s, v, _) = h.call(method, uri, presented, Some(b"{}".to_vec())).await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} {presented:?}: {v}"
            );
            assert_eq!(v["code"], "unauthorized");
        }
    }
    // X-API-Key works too
    let req = Request::builder()
        .uri("/api/v1/quota")
        .header("x-api-key", &key)
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        h.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    // a revoked key is refused
    let caller = h.svc.store.authenticate(&key).await.unwrap().unwrap();
    h.svc.store.revoke_key(&caller.key_id).await.unwrap();
    assert_eq!(
        h.call("GET", "/api/v1/quota", Some(&key), None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn tiers_and_quotas(url: Option<String>, db: Option<vexxy_testkit::pg::TestDatabase>) {
    let h = Harness::new(url, db, |c| c.workers = 0).await;
    let free = h.key("free", Tier::Free, None).await;
    let (s, v) = h.submit(&free, json!({"image_ref": "ok/a"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // the tier is checked before the body is read
    let (s, _, _) = h
        .call(
            "POST",
            "/api/v1/analysis/submit",
            Some(&free),
            Some(b"{not json".to_vec()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["message"], "Premium tier required");
    assert_eq!(v["code"], "premium_required");
    let pro = h.key("pro", Tier::Professional, Some(2)).await;
    assert_eq!(
        h.submit(&pro, json!({"image_ref": "ok/a"})).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        h.submit(&pro, json!({"image_ref": "ok/b"})).await.0,
        StatusCode::ACCEPTED
    );
    // the quota is checked before the body is read: with it spent, even
    // an identical request is 429 (its job is still listed)
    let (s, v) = h.submit(&pro, json!({"image_ref": "ok/b"})).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    let (s, v) = h.submit(&pro, json!({"image_ref": "ok/c"})).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(
        (v["used"].as_i64(), v["limit"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(v["code"], "quota_exceeded");
    let (s, q, _) = h.call("GET", "/api/v1/quota", Some(&pro), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(q["organization"], "pro");
    assert_eq!(q["tier"], "professional");
    assert_eq!(
        (
            q["used"].as_i64(),
            q["limit"].as_i64(),
            q["remaining"].as_i64()
        ),
        (Some(2), Some(2), Some(0))
    );
    assert!(
        q["period_start"]
            .as_str()
            .unwrap()
            .ends_with("-01T00:00:00Z"),
        "{q}"
    );
    let (_, q, _) = h.call("GET", "/api/v1/quota", Some(&free), None).await;
    assert_eq!(
        (q["limit"].as_i64(), q["tier"].as_str()),
        (Some(0), Some("free"))
    );
}

async fn bad_bodies_name_the_field(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |c| c.workers = 0).await;
    let key = h.key("acme", Tier::Enterprise, None).await;
    let post = |body: Vec<u8>| h.call("POST", "/api/v1/analysis/submit", Some(&key), Some(body));
    let (s, v, _) = post(b"{\"image_ref\": ".to_vec()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "bad_request");
    for (body, field) in [
        (
            json!({"image_ref": "ok/a", "config": {"analysis_duration": "long"}}),
            "config.analysis_duration",
        ),
        (
            json!({"image_ref": "ok/a", "config": {"ports": [70000]}}),
            "config.ports",
        ),
        (json!({"image_ref": "ok/a", "confg": {}}), "confg"),
        (
            json!({"image_ref": "ok/a", "image_digest": "sha256:zz"}),
            "image_digest",
        ),
        (
            json!({"image_ref": "ok/a", "scan_report": "not an object"}),
            "scan_report",
        ),
        (json!({"config": {}}), "image_ref"),
        // registries the egress policy refuses by name: no job, no DNS
        (json!({"image_ref": "127.0.0.1:5000/app:1"}), "image_ref"),
        (
            json!({"image_ref": "169.254.169.254/latest:1"}),
            "image_ref",
        ),
        (json!({"image_ref": "localhost:5000/app:1"}), "image_ref"),
    ] {
        let (s, v, _) = post(body.to_string().into_bytes()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
    let huge = format!(
        "{{\"image_ref\": \"ok/a\", \"scan_report\": {{\"x\": \"{}\"}}}}",
        "a".repeat(2 << 20)
    );
    let (s, v, _) = post(huge.into_bytes()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // nothing was queued by any of it
    let (_, list, _) = h.call("GET", "/api/v1/analysis", Some(&key), None).await;
    assert_eq!(list["total"], 0);
    let (s, v, _) = h.call("GET", "/api/v1/nope", Some(&key), None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

async fn jobs_run_to_results_and_artifacts(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let key = h.key("acme", Tier::Professional, None).await;
    let (s, v) = h
        .submit(
            &key,
            json!({"image_ref": "ok/nginx:1", "config": {"analysis_duration": 90}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "queued");
    assert_eq!(v["deduplicated"], false);
    assert_eq!(v["estimated_duration_minutes"], 3);
    let id = v["job_id"].as_str().unwrap().to_owned();
    let st = h.wait_for(&key, &id, "complete").await;
    assert_eq!(st["progress_percent"], 100);
    assert_eq!(st["attempts"], 1);
    assert!(st["started_at"].is_string() && st["completed_at"].is_string());
    assert_eq!(st["image_digest"], format!("sha256:{}", "a".repeat(64)));
    let (s, r, _) = h
        .call(
            "GET",
            &format!("/api/v1/analysis/{id}/results"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        r["summary"],
        json!({"total": 2, "not_affected": 1, "affected": 1, "fixed": 0, "under_investigation": 0})
    );
    assert_eq!(
        r["vex_document"],
        serde_json::from_str::<Value>(VEX).unwrap()
    );
    assert_eq!(
        r["links"]["vex_openvex"],
        format!("/api/v1/analysis/{id}/artifacts/vex.openvex.json")
    );
    assert_eq!(
        r["links"]["report_markdown"],
        format!("/api/v1/analysis/{id}/artifacts/report.md")
    );
    assert!(
        r["links"].get("profile").is_none(),
        "only files that exist are linked"
    );
    let (s, _, bytes) = h
        .call(
            "GET",
            r["links"]["report_markdown"].as_str().unwrap(),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(bytes, b"# ok/nginx:1\n");
    let (s, v, _) = h
        .call(
            "GET",
            &format!("/api/v1/analysis/{id}/artifacts/profile.json"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v, _) = h
        .call(
            "DELETE",
            &format!("/api/v1/analysis/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_finished"))
    );
    // the audit log has who did what
    let actions: Vec<String> = h
        .svc
        .store
        .audit_entries(None)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    for want in ["submit", "fetch_results", "fetch_artifact"] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
    let events: Vec<String> = h
        .svc
        .store
        .job_events(&id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.state.to_string())
        .collect();
    assert_eq!(events, ["queued", "running", "complete"]);
}

async fn identical_requests_are_deduplicated(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let key = h.key("acme", Tier::Professional, None).await;
    let body = json!({"image_ref": "ok/a", "config": {"environment": {"A": "1"}}, "scan_report": {"matches": [], "descriptor": {"name": "grype", "version": "0.92.2"}}});
    let (s1, v1) = h.submit(&key, body.clone()).await;
    assert_eq!(s1, StatusCode::ACCEPTED);
    let id = v1["job_id"].as_str().unwrap().to_owned();
    h.wait_for(&key, &id, "complete").await;
    let (s2, v2) = h.submit(&key, body).await;
    assert_eq!(s2, StatusCode::OK, "{v2}");
    assert_eq!(v2["job_id"], id.as_str());
    assert_eq!(v2["status"], "complete");
    assert_eq!(v2["deduplicated"], true);
    assert_eq!(h.analyzer.calls.load(Ordering::SeqCst), 1, "ran once");
    let (s3, _) = h.submit(&key, json!({"image_ref": "ok/a", "config": {"environment": {"A": "2"}}, "scan_report": {"matches": [], "descriptor": {"name": "grype", "version": "0.92.2"}}})).await;
    assert_eq!(
        s3,
        StatusCode::ACCEPTED,
        "another configuration is another analysis"
    );
}

async fn organisations_never_see_each_other(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.key("a", Tier::Professional, None).await;
    let b = h.key("b", Tier::Ultimate, None).await;
    let (_, v) = h.submit(&a, json!({"image_ref": "ok/secret-image"})).await;
    let id = v["job_id"].as_str().unwrap().to_owned();
    h.wait_for(&a, &id, "complete").await;
    for (method, uri) in [
        ("GET", format!("/api/v1/analysis/{id}/status")),
        ("GET", format!("/api/v1/analysis/{id}/results")),
        ("GET", format!("/api/v1/analysis/{id}/artifacts/report.md")),
        ("DELETE", format!("/api/v1/analysis/{id}")),
    ] {
        let (s, v, _) = h.call(method, &uri, Some(&b), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {uri}: {v}");
        assert!(!v.to_string().contains("secret-image"));
    }
    let (_, list, _) = h.call("GET", "/api/v1/analysis", Some(&b), None).await;
    assert_eq!(list["total"], 0);
    // the same request from b is b's own job, not a's result
    let (s, v) = h.submit(&b, json!({"image_ref": "ok/secret-image"})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_ne!(v["job_id"], id.as_str());
}

async fn cancel_tears_down_and_fences(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let key = h.key("acme", Tier::Professional, None).await;
    let (_, v) = h.submit(&key, json!({"image_ref": "slow/nginx"})).await;
    let id = v["job_id"].as_str().unwrap().to_owned();
    let st = h.wait_for(&key, &id, "analyzing").await;
    assert_eq!(st["current_phase"], "observing the workload");
    assert_eq!(st["progress_percent"], 60);
    let (s, r, _) = h
        .call(
            "GET",
            &format!("/api/v1/analysis/{id}/results"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (s, r["code"].as_str(), r["status"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("not_complete"),
            Some("analyzing")
        )
    );
    let (s, v, _) = h
        .call(
            "DELETE",
            &format!("/api/v1/analysis/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"job_id": id, "status": "cancelled"}));
    let began = Instant::now();
    while h.analyzer.cancelled.load(Ordering::SeqCst) == 0 {
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "the analysis was never told to stop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let st = h.wait_for(&key, &id, "cancelled").await;
    assert!(st["completed_at"].is_string());
    let (s, v, _) = h
        .call(
            "DELETE",
            &format!("/api/v1/analysis/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_finished"))
    );
    let (s, _, _) = h
        .call(
            "DELETE",
            "/api/v1/analysis/job_nonexistent",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(h
        .svc
        .store
        .audit_entries(None)
        .await
        .unwrap()
        .iter()
        .any(|a| a.action == "cancel"));
    // a queued job is cancelled before it starts
    let h0 = h.submit(&key, json!({"image_ref": "slow/two"})).await.1;
    let id0 = h0["job_id"].as_str().unwrap().to_owned();
    let (s, _, _) = h
        .call(
            "DELETE",
            &format!("/api/v1/analysis/{id0}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

async fn listing_filters_and_pages(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |c| c.workers = 0).await;
    let key = h.key("acme", Tier::Professional, None).await;
    for i in 0..3 {
        h.submit(&key, json!({"image_ref": format!("ok/nginx:{i}")}))
            .await;
    }
    h.submit(&key, json!({"image_ref": "ok/redis:7"})).await;
    let (s, v, _) = h
        .call(
            "GET",
            "/api/v1/analysis?image=nginx&per_page=2&page=1",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["total"].as_i64(), v["items"].as_array().unwrap().len()),
        (Some(3), 2)
    );
    let (_, v, _) = h
        .call(
            "GET",
            "/api/v1/analysis?image=nginx&per_page=2&page=2",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (_, v, _) = h
        .call("GET", "/api/v1/analysis?status=queued", Some(&key), None)
        .await;
    assert_eq!(v["total"], 4);
    let (_, v, _) = h
        .call("GET", "/api/v1/analysis?status=complete", Some(&key), None)
        .await;
    assert_eq!(v["total"], 0);
    for bad in [
        "status=done",
        "per_page=0",
        "per_page=501",
        "page=0",
        "page=x",
        "colour=red",
        "image=%00",
    ] {
        let (s, v, _) = h
            .call("GET", &format!("/api/v1/analysis?{bad}"), Some(&key), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
}

async fn transient_failures_retry_and_rejections_do_not(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let key = h.key("acme", Tier::Professional, None).await;
    let (_, v) = h.submit(&key, json!({"image_ref": "flaky/x"})).await;
    let id = v["job_id"].as_str().unwrap().to_owned();
    let st = h.wait_for(&key, &id, "complete").await;
    assert_eq!(st["attempts"], 2, "{st}");
    let (_, v) = h.submit(&key, json!({"image_ref": "reject/x"})).await;
    let id = v["job_id"].as_str().unwrap().to_owned();
    let st = h.wait_for(&key, &id, "failed").await;
    assert_eq!(st["attempts"], 1, "a rejected request is not retried: {st}");
    assert_eq!(st["error"], "image reject/x not found");
    let (s, v, _) = h
        .call(
            "GET",
            &format!("/api/v1/analysis/{id}/results"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::CONFLICT, Some("failed"))
    );
    // a failed request may be submitted again
    assert_eq!(
        h.submit(&key, json!({"image_ref": "reject/x"})).await.0,
        StatusCode::ACCEPTED
    );
}

async fn jobs_time_out(url: Option<String>, db: Option<vexxy_testkit::pg::TestDatabase>) {
    let h = Harness::new(url, db, |c| {
        c.queue.job_timeout = Duration::from_millis(300)
    })
    .await;
    let key = h.key("acme", Tier::Professional, None).await;
    let (_, v) = h.submit(&key, json!({"image_ref": "slow/forever"})).await;
    let id = v["job_id"].as_str().unwrap().to_owned();
    let st = h.wait_for(&key, &id, "failed").await;
    assert!(
        st["error"].as_str().unwrap().starts_with("timed out"),
        "{st}"
    );
    assert_eq!(h.analyzer.cancelled.load(Ordering::SeqCst), 1);
}

async fn webhooks_are_signed_retried_and_recorded(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    // a receiver that answers 500 first, then 204
    let hooks = vexxy_testkit::hooks::HookReceiver::start(|n| if n == 0 { 500 } else { 204 });
    let h = Harness::new(url, db, |_| {}).await;
    let key = h.key("acme", Tier::Professional, None).await;
    let org = h.svc.store.org("acme").await.unwrap();
    let (_, v) = h
        .submit(
            &key,
            json!({"image_ref": "ok/hooked", "callback_url": hooks.url()}),
        )
        .await;
    let id = v["job_id"].as_str().unwrap().to_owned();
    h.wait_for(&key, &id, "complete").await;
    let began = Instant::now();
    loop {
        let d = h.svc.store.deliveries(&id).await.unwrap();
        if d.first().is_some_and(|d| d.state == "delivered") {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "not delivered: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = &h.svc.store.deliveries(&id).await.unwrap()[0];
    let attempts = h.svc.store.delivery_attempts(&d.id).await.unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(),
        [Some(500), Some(204)]
    );
    let got = hooks.received();
    assert_eq!(got.len(), 2);
    let (headers, body) = (&got[1].headers, &got[1].body);
    let ts: i64 = headers["x-vexxy-timestamp"].parse().unwrap();
    assert!(vexxy_server::webhook::verify(
        &org.webhook_secret,
        ts,
        body,
        &headers["x-vexxy-signature"]
    ));
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["event"], "analysis.completed");
    assert_eq!(payload["job_id"], id.as_str());
    assert_eq!(payload["summary"]["total"], 2);
}

const METRICS_TOKEN: &str = "metrics-token-for-tests-0123";

async fn operations_endpoints(url: Option<String>, db: Option<vexxy_testkit::pg::TestDatabase>) {
    let h = Harness::new(url, db, |c| {
        c.metrics_token = Some(vexxy_server::config::Secret::new(METRICS_TOKEN));
    })
    .await;
    let key = h.key("acme", Tier::Professional, None).await;
    let (_, v) = h.submit(&key, json!({"image_ref": "ok/m"})).await;
    h.wait_for(&key, v["job_id"].as_str().unwrap(), "complete")
        .await;
    let (s, _, body) = h.call("GET", "/healthz", None, None).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, &b"ok\n"[..]));
    assert_eq!(h.call("GET", "/readyz", None, None).await.0, StatusCode::OK);
    let (s, _, body) = h.call("GET", "/metrics", Some(METRICS_TOKEN), None).await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    for want in [
        "vexxy_jobs{state=\"complete\"} 1",
        "vexxy_queue_depth",
        "vexxy_workers 1",
        "vexxy_worker_utilisation_ratio",
        "vexxy_job_duration_seconds_count{outcome=\"complete\"} 1",
        "vexxy_http_requests_total",
    ] {
        assert!(text.contains(want), "{want} missing from\n{text}");
    }
    let (s, doc, _) = h.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/analysis/submit"]["post"].is_object());
}

async fn priority_follows_the_tier(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |c| c.workers = 0).await;
    let pro = h.key("pro", Tier::Professional, None).await;
    let ent = h.key("ent", Tier::Enterprise, None).await;
    let ult = h.key("ult", Tier::Ultimate, None).await;
    let mut ids = Vec::new();
    for (key, image) in [(&pro, "ok/p"), (&ent, "ok/e"), (&ult, "ok/u")] {
        ids.push(
            h.submit(key, json!({"image_ref": image})).await.1["job_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut order = Vec::new();
    while let Some(lease) = h.svc.store.claim("test", 60_000).await.unwrap() {
        order.push(lease.job.id);
    }
    assert_eq!(order, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
}

/// A spent quota is answered from the key and a count: the body is never
/// read. A body that would be 400, 422 or 413 is 429, and so is a
/// pathological one.
async fn spent_quotas_refuse_before_the_body_is_read(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |c| {
        c.workers = 0;
        c.submit.scan_report.max_values = 100_000;
    })
    .await;
    let key = h.key("spent", Tier::Professional, Some(1)).await;
    assert_eq!(
        h.submit(&key, json!({"image_ref": "ok/a"})).await.0,
        StatusCode::ACCEPTED
    );
    let mut pathological = br#"{"image_ref":"x","scan_report":{"matches":["#.to_vec();
    pathological.extend(b"{},".repeat(1 << 20));
    pathological.extend(b"{}]}}");
    let began = Instant::now();
    for body in [
        b"{not json".to_vec(),
        json!({"image_ref": ""}).to_string().into_bytes(),
        json!({"image_ref": "ok/b", "scan_report": {"not": "a report"}})
            .to_string()
            .into_bytes(),
        pathological,
    ] {
        let (s, v, _) = h
            .call("POST", "/api/v1/analysis/submit", Some(&key), Some(body))
            .await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
        assert_eq!(
            (v["used"].as_i64(), v["limit"].as_i64()),
            (Some(1), Some(1))
        );
    }
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "refused without parsing: {:?}",
        began.elapsed()
    );
    // a valid org's pathological body is refused by its limits, not parsed
    let ok = h.key("valid", Tier::Professional, None).await;
    let mut body = br#"{"image_ref":"x","scan_report":{"matches":["#.to_vec();
    body.extend(b"{},".repeat(300_000));
    body.extend(b"{}]}}");
    let (s, v, _) = h
        .call("POST", "/api/v1/analysis/submit", Some(&ok), Some(body))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(
        v["message"], "scan_report: more than 100000 JSON values",
        "{v}"
    );
}

async fn documents_over_their_limits_are_refused_naming_the_field(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    use vexxy_server::api::DocumentLimits;
    let h = Harness::new(url, db, |c| {
        c.workers = 0;
        c.submit.scan_report = DocumentLimits {
            max_bytes: 64 << 10,
            max_values: 1000,
        };
        c.submit.sbom = DocumentLimits {
            max_bytes: 32 << 10,
            max_values: 500,
        };
    })
    .await;
    let key = h.key("acme", Tier::Enterprise, None).await;
    let empties = |n: usize| vec![json!({}); n];
    for (body, status, want) in [
        (
            json!({"image_ref": "ok/a", "scan_report": {"matches": empties(1000)}}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "scan_report: more than 1000 JSON values",
        ),
        (
            json!({"image_ref": "ok/a", "sbom": {"packages": empties(500)}}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "sbom: more than 500 JSON values",
        ),
        (
            json!({"image_ref": "ok/a", "scan_report": {"x": "a".repeat(70 << 10)}}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "scan_report: larger than 65536 bytes",
        ),
        (
            json!({"image_ref": "ok/a", "sbom": {"x": "a".repeat(40 << 10)}}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "sbom: larger than 32768 bytes",
        ),
    ] {
        let (s, v) = h.submit(&key, body).await;
        assert_eq!(s, status, "{want}: {v}");
        assert_eq!(v["code"], "payload_too_large", "{v}");
        assert!(v["message"].as_str().unwrap().contains(want), "{v}");
    }
    let deep = format!(
        r#"{{"image_ref": "ok/a", "scan_report": {}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let (s, v, _) = h
        .call(
            "POST",
            "/api/v1/analysis/submit",
            Some(&key),
            Some(deep.into_bytes()),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("scan_report: nested"),
        "{v}"
    );
    // just under the limits: accepted (and parsed: an empty Grype report)
    let (s, v) = h
        .submit(
            &key,
            json!({"image_ref": "ok/a", "scan_report": {"matches": [], "descriptor": {"name": "grype", "version": "0.92.2"}, "pad": empties(990)}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (_, list, _) = h.call("GET", "/api/v1/analysis", Some(&key), None).await;
    assert_eq!(list["total"], 1);
}

async fn bad_documents_are_refused_at_submit(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |c| c.workers = 0).await;
    let key = h.key("acme", Tier::Enterprise, None).await;
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vexxy-ingest/tests/fixtures");
    let osv = std::fs::read_to_string(fixtures.join("osv-scanner.json")).unwrap();
    let cyclonedx = std::fs::read_to_string(fixtures.join("cyclonedx-1.6.json")).unwrap();
    let openvex = std::fs::read_to_string(fixtures.join("openvex.json")).unwrap();
    for (field, doc, want) in [
        ("scan_report", r#"{"not": "a report"}"#, "scan_report"),
        ("scan_report", cyclonedx.as_str(), "scan_report: is an SBOM"),
        ("sbom", osv.as_str(), "sbom: is a scanner report"),
        ("scan_report", openvex.as_str(), "scan_report"),
        (
            "scan_report",
            r#"{"matches": [{"vulnerability": {}}]}"#,
            "scan_report",
        ),
    ] {
        let body = format!(r#"{{"image_ref": "ok/a", "{field}": {doc}}}"#);
        let (s, v, _) = h
            .call(
                "POST",
                "/api/v1/analysis/submit",
                Some(&key),
                Some(body.into_bytes()),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field} {doc:.60}: {v}"
        );
        assert!(v["message"].as_str().unwrap().contains(want), "{want}: {v}");
    }
    let (_, list, _) = h.call("GET", "/api/v1/analysis", Some(&key), None).await;
    assert_eq!(list["total"], 0, "no job for any of them");
}

/// The report is stored as the bytes that were sent (whitespace and key
/// order included), and the worker's request parses those bytes.
async fn stored_requests_keep_the_submitted_bytes(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |c| c.workers = 0).await;
    let key = h.key("acme", Tier::Enterprise, None).await;
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vexxy-ingest/tests/fixtures");
    let osv = std::fs::read_to_string(fixtures.join("osv-scanner.json")).unwrap();
    let report = osv.trim();
    assert!(report.contains("\n  "), "the fixture is indented");
    let body = format!("{{\"image_ref\": \"ok/osv\",\n \"scan_report\":   {report}\n}}");
    let (s, v, _) = h
        .call(
            "POST",
            "/api/v1/analysis/submit",
            Some(&key),
            Some(body.clone().into_bytes()),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let lease = h.svc.store.claim("test", 60_000).await.unwrap().unwrap();
    assert_eq!(lease.job.id, v["job_id"].as_str().unwrap());
    let spec: vexxy_server::api::JobSpec =
        serde_json::from_str(lease.job.request.as_deref().unwrap()).unwrap();
    assert_eq!(
        spec.scan_report.as_ref().unwrap().json(),
        report,
        "the stored report is the submitted bytes"
    );
    let request =
        vexxy_server::job::request(&spec, &vexxy_server::AnalysisSettings::default()).unwrap();
    let vexxy_analyze::Findings::Report(parsed) = &request.findings else {
        panic!("not a report: {:?}", request.findings);
    };
    assert_eq!(parsed.format, vexxy_ingest::Format::OsvScanner);
    assert!(!parsed.findings.is_empty());
    // the same bytes again are the same analysis; other bytes of the same
    // report (reindented) are another
    let (s, v, _) = h
        .call(
            "POST",
            "/api/v1/analysis/submit",
            Some(&key),
            Some(body.into_bytes()),
        )
        .await;
    assert_eq!(
        (s, v["deduplicated"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let compact: Value = serde_json::from_str(report).unwrap();
    let (s, _) = h
        .submit(&key, json!({"image_ref": "ok/osv", "scan_report": compact}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

/// Large bodies need one of `max_large_submits` permits while they are
/// read and parsed: one more at the same time is 503 with Retry-After;
/// small bodies are not held up.
async fn large_submissions_are_capped(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let h = Harness::new(url, db, |c| {
        c.workers = 0;
        c.submit.large_body_bytes = 1024;
        c.submit.max_large_submits = 1;
    })
    .await;
    let key = h.key("acme", Tier::Enterprise, None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let large =
        json!({"image_ref": "ok/large", "config": {"environment": {"PAD": "x".repeat(4096)}}})
            .to_string();
    // the first large body arrives slowly: half now, the rest later
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/analysis/submit HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        large.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = large.as_bytes().split_at(large.len() / 2);
    slow.write_all(first).await.unwrap();
    // the server holds its permit while it waits for the rest
    let began = Instant::now();
    while h.svc.large_submits_in_flight() == 0 {
        if began.elapsed() > Duration::from_secs(5) {
            let mut buf = [0u8; 2048];
            let n = tokio::time::timeout(Duration::from_secs(1), slow.read(&mut buf))
                .await
                .map_or(0, |r| r.unwrap_or(0));
            panic!(
                "the slow body never took a permit; it got {:?}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let other =
        json!({"image_ref": "ok/large2", "config": {"environment": {"PAD": "y".repeat(4096)}}});
    let req = Request::post("/api/v1/analysis/submit")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(other.to_string()))
        .unwrap();
    let res = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let v: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["code"], "unavailable");
    assert!(
        v["message"].as_str().unwrap().contains("large submissions"),
        "{v}"
    );
    // a small body is not held up
    assert_eq!(
        h.submit(&key, json!({"image_ref": "ok/small"})).await.0,
        StatusCode::ACCEPTED
    );
    // the slow one completes, and its permit is free again
    slow.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let n = slow.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert_eq!(h.svc.large_submits_in_flight(), 0);
    let (s, v) = h.submit(&key, other).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
}

/// `/metrics` is the operator's: 404 without a configured token, 401
/// without or with the wrong one; and no label names a tenant.
async fn metrics_need_the_operator_token(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let off = Harness::new(url.clone(), None, |c| c.workers = 0).await;
    let (s, v, _) = off.call("GET", "/metrics", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let key = off.key("someone", Tier::Professional, None).await;
    assert_eq!(
        off.call("GET", "/metrics", Some(&key), None).await.0,
        StatusCode::NOT_FOUND,
        "an API key is not a metrics token"
    );
    drop(off);
    let h = Harness::new(url, db, |c| {
        c.metrics_token = Some(vexxy_server::config::Secret::new(METRICS_TOKEN));
    })
    .await;
    let mut orgs = Vec::new();
    for name in ["tenant-alpha", "tenant-beta"] {
        let key = h.key(name, Tier::Professional, None).await;
        let (_, v) = h
            .submit(&key, json!({"image_ref": format!("ok/{name}-image")}))
            .await;
        h.wait_for(&key, v["job_id"].as_str().unwrap(), "complete")
            .await;
        orgs.push((name, h.svc.store.org(name).await.unwrap().id, key));
    }
    let wrong = format!("{METRICS_TOKEN}x");
    for presented in [
        None,
        Some("wrong"),
        Some(wrong.as_str()),
        Some(orgs[0].2.as_str()),
    ] {
        let (s, v, _) = h.call("GET", "/metrics", presented, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{presented:?}: {v}");
        assert_eq!(v["code"], "unauthorized");
    }
    let (s, _, body) = h.call("GET", "/metrics", Some(METRICS_TOKEN), None).await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("vexxy_jobs{state=\"complete\"} 2"), "{text}");
    for (name, id, _) in &orgs {
        assert!(
            !text.contains(name) && !text.contains(id.as_str()),
            "{text}"
        );
    }
    assert!(!text.contains("-image"), "no image references: {text}");
}

/// SIGTERM-like shutdown: the server stops, and a job still running when
/// the grace period ends goes back to the queue for another worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_requeues_running_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite_in(dir.path()).await.unwrap();
    let mut config = ServiceConfig::default();
    config.queue.heartbeat = Duration::from_millis(50);
    config.queue.poll = Duration::from_millis(20);
    config.shutdown_grace = Duration::from_millis(300);
    let analyzer = Arc::new(Scripted::default());
    let evidence = EvidenceStore::Local(LocalStore::new(dir.path().join("evidence")));
    let svc = Service::new(store, evidence, analyzer.clone(), config);
    let org = svc
        .store
        .create_org("acme", Tier::Professional, None)
        .await
        .unwrap();
    let key = svc.store.create_key(&org.id, "k").await.unwrap().secret;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = vexxy_server::router(svc.clone());
    let server = tokio::spawn(vexxy_server::serve(
        svc.clone(),
        app,
        listener,
        async move {
            let _ = rx.await;
        },
    ));
    let app = vexxy_server::router(svc.clone());
    let req = Request::post("/api/v1/analysis/submit")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({"image_ref": "slow/x"}).to_string()))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let id = body["job_id"].as_str().unwrap().to_owned();
    let began = Instant::now();
    while svc.store.job(None, &id).await.unwrap().unwrap().state != vexxy_store::JobState::Analyzing
    {
        assert!(began.elapsed() < Duration::from_secs(10), "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer listening"
    );
    // serve closed its pool; look with a fresh one
    let store = Store::open_sqlite_in(dir.path()).await.unwrap();
    let job = store.job(None, &id).await.unwrap().unwrap();
    assert_eq!(
        job.state,
        vexxy_store::JobState::Queued,
        "re-queued: {job:?}"
    );
    assert_eq!(job.attempts, 0, "the interrupted attempt does not count");
    assert_eq!(
        analyzer.cancelled.load(Ordering::SeqCst),
        1,
        "the analysis was stopped"
    );
}

/// The real analysis library behind the worker: each kind of failure
/// becomes the job outcome it stands for, judged by state and attempts
/// alone. A bad report and an unknown local image are rejected at once; an
/// unreachable registry and one that never answers are retried; a job
/// cancelled during a pull stays cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_pipeline_failures_map_to_job_outcomes() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // accepts connections and never answers
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().flatten() {
            held.push(c);
        }
    });
    let caches = tempfile::tempdir().unwrap();
    let roots = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(roots.path()).unwrap();
    let h = Harness::new(None, None, |c| {
        c.queue.max_attempts = 2;
        c.analysis.caches = vexxy_analyze::Caches::at(caches.path());
        c.analysis.registry_timeout = Some(Duration::from_secs(1));
        c.analysis.insecure_registries = vec![closed.to_string(), silent_addr.to_string()];
        // the test's registries are on loopback: exempt, as an operator would
        c.analysis.egress = Some(
            vexxy_egress::EgressPolicy::new()
                .allow_addresses(["127.0.0.1/32"])
                .unwrap(),
        );
        c.analysis.allowed_local_roots = vec![root.clone()];
    })
    .await;
    let key = h.key("acme", Tier::Enterprise, None).await;
    let submit = |body: Value| {
        let h = &h;
        let key = key.clone();
        async move {
            let (s, v) = h.submit(&key, body).await;
            assert_eq!(s, StatusCode::ACCEPTED, "{v}");
            v["job_id"].as_str().unwrap().to_owned()
        }
    };
    // a bad report never becomes a job
    let (s, v) = h
        .submit(
            &key,
            json!({"image_ref": "nginx:1", "scan_report": {"not": "a report"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let cases = [
        (
            json!({"image_ref": format!("oci:{}/absent:latest", root.display())}),
            1,
        ),
        (json!({"image_ref": format!("{closed}/app:1")}), 2),
        (json!({"image_ref": format!("{silent_addr}/app:1")}), 2),
    ];
    for (body, attempts) in cases {
        let id = submit(body.clone()).await;
        let v = h.wait_for(&key, &id, "failed").await;
        assert_eq!(v["attempts"], attempts, "{body}: {v}");
    }
    assert_eq!(
        h.analyzer.calls.load(Ordering::SeqCst),
        0,
        "the scripted analyzer is not in use"
    );

    let id = submit(json!({"image_ref": format!("{silent_addr}/slow:1")})).await;
    h.wait_for(&key, &id, "running").await;
    let (s, _, _) = h
        .call(
            "DELETE",
            &format!("/api/v1/analysis/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // the pull gives up after its timeout; the job stays cancelled
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = h.wait_for(&key, &id, "cancelled").await;
    assert_eq!(v["attempts"], 1, "{v}");
}

/// The committed OpenAPI document is the one the server serves.
#[test]
fn openapi_document_is_committed() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let served = vexxy_server::openapi_document();
    if std::env::var_os("VEXXY_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == served,
        "docs/openapi.json is stale: run `VEXXY_UPDATE_OPENAPI=1 cargo test -p vexxy-server --test router openapi` and commit it"
    );
}
