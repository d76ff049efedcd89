//! Production profiles through `tower::ServiceExt::oneshot`, with
//! in-process workers on SQLite: `GET /api/v1/node-agent/images` lists
//! what a node agent watches; `POST /api/v1/images/{digest}/profiles`
//! refuses what is not a production profile of that image (422 naming the
//! field), a body past the limit (413), an unknown image (404), a tier
//! that may not analyse (403) and an image analysed without a report
//! (409); it queues a re-decision (202) that the worker decides from the
//! image's run profile merged with every production profile uploaded so
//! far, keeps the upload and the accumulated evidence as artifacts and
//! re-issues the image's VEX; the same upload again is its job (200), an
//! updated one (same spans, new evidence) is merged (202); a new report
//! afterwards keeps the production evidence. What an upload may claim is
//! bounded (spans, their times, lengths and targets: 422 naming the field
//! without repeating its value).
//!
//! The analyses come from `Scripted`, which records the profile every
//! re-decision was given. What the decision makes of production evidence
//! is `vexxy-decide`'s (its unit tests) and the binary's end-to-end test
//! (`crates/vexxy/tests/node_agent.rs`).
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
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
    AnalysisOutcome, AnalysisRequest, AnalyzeError, ArtifactKind, Artifacts, Findings,
    ProfileSource as Source, ReevaluateRequest,
};
use vexxy_decide::Decision;
use vexxy_model::{
    Confidence, Decider, Ecosystem, EvidenceSpan, ExecutionProfile, FileAccess, Finding, FixState,
    Justification, PackageRef, Product, ProfileSource, RunInfo, Severity, Verdict, Vulnerability,
};
use vexxy_server::{Analyzer, JobControl, Service, ServiceConfig};
use vexxy_store::{EvidenceStore, LocalStore, Store, Tier};

const REPO: &str = "registry.example.com/team/web";

fn reference(tag: &str) -> String {
    format!("{REPO}:{tag}")
}

/// The digest the scripted analyzer gives an image reference.
fn digest_of(reference: &str) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(reference.as_bytes()))
    )
}

/// The profile the scripted run of `reference` records (a sandbox run).
fn run_profile(reference: &str) -> ExecutionProfile {
    ExecutionProfile {
        run: RunInfo {
            image: reference.to_owned(),
            image_digest: Some(digest_of(reference)),
            command: vec!["nginx".into()],
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 31_000,
            requested_duration_ms: 30_000,
            ..RunInfo::default()
        },
        ..ExecutionProfile::default()
    }
}

/// A production profile of `digest`, observed in `container` for
/// `duration_ms` from `started_at`.
fn observed(digest: &str, container: &str, started_at: &str, duration_ms: u64) -> ExecutionProfile {
    ExecutionProfile {
        run: RunInfo {
            image: format!("{REPO}:1"),
            image_digest: Some(digest.to_owned()),
            started_at: started_at.to_owned(),
            duration_ms,
            source: ProfileSource::Observed,
            spans: vec![EvidenceSpan {
                source: ProfileSource::Observed,
                target: container.to_owned(),
                started_at: started_at.to_owned(),
                duration_ms,
            }],
            ..RunInfo::default()
        },
        ..ExecutionProfile::default()
    }
}

fn finding(id: &str, name: &str) -> Finding {
    Finding {
        vulnerability: Vulnerability {
            id: id.to_owned(),
            severity: Severity::High,
            ..Vulnerability::default()
        },
        package: PackageRef {
            name: name.to_owned(),
            version: "1.0".to_owned(),
            ecosystem: Ecosystem::Deb,
            purl: Some(
                format!("pkg:deb/debian/{name}@1.0?arch=amd64")
                    .parse()
                    .unwrap(),
            ),
            source_name: None,
        },
        fixed_versions: Vec::new(),
        fix_state: FixState::NotFixed,
        reported_by: Some("grype".to_owned()),
    }
}

/// Two findings: one affected, one not_affected.
fn outcome_for(reference: &str, source: Source) -> AnalysisOutcome {
    let product = Product {
        name: REPO.to_owned(),
        tag: Some("1".to_owned()),
        digest: Some(digest_of(reference).parse().unwrap()),
    };
    let by = || Decider::automated("scripted");
    let findings = vec![
        finding("CVE-2024-2001", "openssl"),
        finding("CVE-2024-2002", "libxml2"),
    ];
    let verdicts = [
        Verdict::affected("upgrade openssl".into(), by())
            .with_confidence(Confidence::new(0.9).unwrap()),
        Verdict::not_affected(Justification::VulnerableCodeNotInExecutePath, by())
            .with_confidence(Confidence::new(0.8).unwrap()),
    ];
    let decisions: Vec<Decision> = verdicts
        .into_iter()
        .enumerate()
        .map(|(finding, verdict)| Decision {
            finding,
            verdict,
            existing: false,
        })
        .collect();
    let statements = vexxy_decide::statements(&product, &findings, &decisions);
    let mut artifacts = Artifacts::default();
    artifacts.insert(
        ArtifactKind::Profile,
        vexxy_profile::to_json(&run_profile(reference)),
    );
    AnalysisOutcome {
        product,
        profile: run_profile(reference),
        profile_source: source,
        findings,
        decision: vexxy_decide::Outcome {
            decisions,
            statements,
            summary: Default::default(),
        },
        artifacts,
        packages: 2,
        used_packages: 1,
        report_mismatch: None,
        timings: Default::default(),
    }
}

/// Answers [`outcome_for`]; keeps the profiles re-decisions were given.
#[derive(Default)]
struct Scripted {
    analyzed: AtomicUsize,
    profiles: Mutex<Vec<ExecutionProfile>>,
}

impl Analyzer for Scripted {
    fn analyze(
        &self,
        request: &AnalysisRequest,
        _control: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        self.analyzed.fetch_add(1, Ordering::SeqCst);
        Ok(outcome_for(
            &request.image.reference,
            Source::Recorded { stored: true },
        ))
    }

    fn reevaluate(
        &self,
        request: &ReevaluateRequest,
        _control: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        self.profiles.lock().unwrap().push(request.profile.clone());
        if matches!(request.findings, Findings::None) {
            return Err(AnalyzeError::bad_input("a re-decision needs a report"));
        }
        Ok(outcome_for(&request.image.reference, Source::Given))
    }
}

fn grype() -> Value {
    json!({
        "matches": [
            {"vulnerability": {"id": "CVE-2024-2001", "severity": "High", "fix": {"versions": [], "state": "not-fixed"}},
             "artifact": {"name": "openssl", "version": "1.0", "type": "deb", "purl": "pkg:deb/debian/openssl@1.0?arch=amd64"}},
            {"vulnerability": {"id": "CVE-2024-2002", "severity": "High", "fix": {"versions": [], "state": "not-fixed"}},
             "artifact": {"name": "libxml2", "version": "1.0", "type": "deb", "purl": "pkg:deb/debian/libxml2@1.0?arch=amd64"}},
        ],
        "descriptor": {"name": "grype", "version": "0.92.2"},
    })
}

#[derive(Debug)]
struct Resp {
    status: StatusCode,
    json: Value,
    bytes: Vec<u8>,
}

struct Harness {
    analyzer: Arc<Scripted>,
    app: Router,
    svc: Arc<Service>,
    stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite_in(dir.path()).await.unwrap();
        let mut config = ServiceConfig::default();
        config.queue.heartbeat = Duration::from_millis(50);
        config.queue.poll = Duration::from_millis(20);
        config.queue.retry_backoff = Duration::from_millis(10);
        config.max_body_bytes = 1 << 20;
        config.shutdown_grace = Duration::from_millis(100);
        let analyzer = Arc::new(Scripted::default());
        let evidence = EvidenceStore::Local(LocalStore::new(dir.path().join("evidence")));
        let svc = Service::new(store, evidence, analyzer.clone(), config);
        let (stop, rx) = tokio::sync::watch::channel(false);
        let workers = svc.config.workers;
        let mut bg = vexxy_server::spawn_background(&svc, workers, vexxy_server::Role::Server, &rx);
        tokio::spawn(async move { while bg.join_next().await.is_some() {} });
        Self {
            analyzer,
            app: vexxy_server::router(svc.clone()),
            svc,
            stop,
            _dir: dir,
        }
    }

    async fn key(&self, org: &str, tier: Tier) -> String {
        let org = self.svc.store.create_org(org, tier, None).await.unwrap();
        self.svc
            .store
            .create_key_for(&org.id, "test", Some("agent"))
            .await
            .unwrap()
            .secret
    }

    async fn send(&self, method: &str, uri: &str, key: &str, body: Option<Vec<u8>>) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {key}"));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        Resp {
            status,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            bytes,
        }
    }

    async fn upload(&self, key: &str, digest: &str, profile: &ExecutionProfile) -> Resp {
        self.send(
            "POST",
            &format!("/api/v1/images/{digest}/profiles"),
            key,
            Some(vexxy_profile::to_json(profile)),
        )
        .await
    }

    async fn wait_job(&self, key: &str, id: &str) {
        let began = Instant::now();
        loop {
            let r = self
                .send("GET", &format!("/api/v1/analysis/{id}/status"), key, None)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
            match r.json["status"].as_str() {
                Some("complete") => return,
                Some("failed" | "cancelled") => panic!("job {id}: {}", r.json),
                _ => {}
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "job {id}: {}",
                r.json
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Analyses `reference` (with a report unless `report` is false).
    async fn analyse(&self, key: &str, reference: &str, report: bool) -> String {
        let mut body = json!({"image_ref": reference});
        if report {
            body["scan_report"] = grype();
        }
        let r = self
            .send(
                "POST",
                "/api/v1/analysis/submit",
                key,
                Some(body.to_string().into_bytes()),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        let id = r.json["job_id"].as_str().unwrap().to_owned();
        self.wait_job(key, &id).await;
        id
    }

    /// Waits until the image's VEX is at `version`; the history entry.
    async fn wait_vex(&self, key: &str, digest: &str, version: i64) -> Value {
        let began = Instant::now();
        loop {
            let r = self
                .send(
                    "GET",
                    &format!("/api/v1/images/{digest}/vex/history"),
                    key,
                    None,
                )
                .await;
            if let Some(v) = r.json["versions"]
                .as_array()
                .and_then(|a| a.iter().find(|v| v["version"] == version))
            {
                return v.clone();
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "no VEX version {version}: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The content digest the service gives `profile` when it is uploaded.
fn as_uploaded(profile: &ExecutionProfile) -> String {
    let parsed = vexxy_profile::parse(&vexxy_profile::to_json(profile), "upload").unwrap();
    vexxy_server::production::upload_digest(&parsed)
}

async fn key_id(h: &Harness, key: &str) -> String {
    h.svc.store.authenticate(key).await.unwrap().unwrap().key_id
}

/// The answer does not repeat `value` (what the upload had in the field).
#[track_caller]
fn assert_not_echoed(r: &Resp, value: &str) {
    let body = String::from_utf8_lossy(&r.bytes);
    assert!(!body.contains(value), "{value:?} echoed: {body}");
}

#[track_caller]
fn assert_names(r: &Resp, status: StatusCode, field: &str) {
    assert_eq!(r.status, status, "{field}: {r:?}");
    let message = r.json["message"].as_str().unwrap_or_default();
    assert!(message.contains(field), "{field} not named: {r:?}");
}

fn spans(p: &ExecutionProfile, source: ProfileSource) -> Vec<String> {
    p.run
        .spans
        .iter()
        .filter(|s| s.source == source)
        .map(|s| s.target.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn production_profiles_are_checked_merged_and_redecided() {
    let h = Harness::new().await;
    let key = h.key("acme", Tier::Enterprise).await;
    let other = h.key("other", Tier::Enterprise).await;
    let run = h.analyse(&key, &reference("1"), true).await;
    let d = digest_of(&reference("1"));
    h.wait_vex(&key, &d, 1).await;

    // what the node agent watches: the organisation's images with a run
    let r = h.send("GET", "/api/v1/node-agent/images", &key, None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.json,
        json!({"images": [{"digest": d, "repository": REPO, "reference": reference("1")}]})
    );
    let r = h
        .send("GET", "/api/v1/node-agent/images", &other, None)
        .await;
    assert_eq!(r.json, json!({"images": []}), "{r:?}");
    let r = h
        .send("GET", "/api/v1/node-agent/images", "vx_nokey", None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");

    // refusals, each before anything is queued
    let good = observed(&d, "k8s.io/c1", "2026-02-01T10:00:00Z", 5_000);
    let elsewhere = observed(
        &digest_of("x:1"),
        "k8s.io/c1",
        "2026-02-01T10:00:00Z",
        5_000,
    );
    let r = h.upload(&key, &d, &elsewhere).await;
    assert_names(&r, StatusCode::UNPROCESSABLE_ENTITY, "run.image_digest");
    assert_not_echoed(&r, &digest_of("x:1"));
    let mut nameless = good.clone();
    nameless.run.image_digest = None;
    assert_names(
        &h.upload(&key, &d, &nameless).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "run.image_digest",
    );
    let mut sandbox = good.clone();
    sandbox.run.source = ProfileSource::Sandbox;
    sandbox.run.spans.clear();
    assert_names(
        &h.upload(&key, &d, &sandbox).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "run.source",
    );
    let mut sandbox_span = good.clone();
    sandbox_span.run.spans[0].source = ProfileSource::Sandbox;
    let r = h.upload(&key, &d, &sandbox_span).await;
    assert_names(&r, StatusCode::UNPROCESSABLE_ENTITY, "run.spans[0].source");
    assert_not_echoed(&r, "k8s.io/c1");
    let r = h
        .send(
            "POST",
            &format!("/api/v1/images/{d}/profiles"),
            &key,
            Some(br#"{"not": "a profile"}"#.to_vec()),
        )
        .await;
    assert_names(&r, StatusCode::UNPROCESSABLE_ENTITY, "schema");
    let r = h
        .send(
            "POST",
            &format!("/api/v1/images/{d}/profiles"),
            &key,
            Some(b"[1, 2".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    // past the body limit (1 MiB here): 413 before it is parsed
    let mut huge = vexxy_profile::to_json(&good);
    huge.pop();
    huge.extend_from_slice(br#","padding":""#);
    huge.extend(std::iter::repeat_n(b'x', 2 << 20));
    huge.extend_from_slice(b"\"}");
    let r = h
        .send(
            "POST",
            &format!("/api/v1/images/{d}/profiles"),
            &key,
            Some(huge),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{r:?}");
    // an image the organisation never analysed, another organisation's
    let nowhere = digest_of("nowhere:1");
    let r = h
        .upload(
            &key,
            &nowhere,
            &observed(&nowhere, "c", "2026-02-01T10:00:00Z", 1_000),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert_eq!(
        h.upload(&other, &d, &good).await.status,
        StatusCode::NOT_FOUND
    );
    let r = h
        .send(
            "POST",
            "/api/v1/images/sha256:abc/profiles",
            &key,
            Some(vexxy_profile::to_json(&good)),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    // a tier that may not analyse
    let free = h.key("free", Tier::Free).await;
    assert_eq!(
        h.upload(&free, &d, &good).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(h.analyzer.profiles.lock().unwrap().is_empty());

    // accepted: re-decided from the run's profile and the upload
    let r = h.upload(&key, &d, &good).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.json["image_digest"], d.as_str());
    let job = r.json["job_id"].as_str().unwrap().to_owned();
    h.wait_job(&key, &job).await;
    let v2 = h.wait_vex(&key, &d, 2).await;
    assert_eq!(v2["cause"], "reevaluation");
    assert_eq!(v2["job_id"], job.as_str());
    let given = h.analyzer.profiles.lock().unwrap().last().cloned().unwrap();
    assert_eq!(given.run.source, ProfileSource::Observed);
    assert_eq!(spans(&given, ProfileSource::Observed), ["k8s.io/c1"]);
    assert_eq!(
        spans(&given, ProfileSource::Sandbox),
        [format!("sandbox:{}", reference("1"))],
        "the run is one span of the merged evidence"
    );
    assert_eq!(given.run.image_digest.as_deref(), Some(d.as_str()));
    assert_eq!(h.analyzer.analyzed.load(Ordering::SeqCst), 1, "no new run");
    // the upload and the evidence so far are kept with the job
    let results = h
        .send(
            "GET",
            &format!("/api/v1/analysis/{job}/results"),
            &key,
            None,
        )
        .await;
    assert_eq!(results.status, StatusCode::OK, "{results:?}");
    let upload = h
        .send(
            "GET",
            &format!("/api/v1/analysis/{job}/artifacts/observed.profile.json"),
            &key,
            None,
        )
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{upload:?}");
    // as sent (but for the trailing newline: the JSON value is kept)
    assert_eq!(
        upload.bytes.as_slice(),
        vexxy_profile::to_json(&good).trim_ascii_end()
    );
    let production = h
        .send(
            "GET",
            &format!("/api/v1/analysis/{job}/artifacts/production.profile.json"),
            &key,
            None,
        )
        .await;
    assert_eq!(production.status, StatusCode::OK, "{production:?}");
    let production = vexxy_profile::parse(&production.bytes, "production").unwrap();
    assert_eq!(spans(&production, ProfileSource::Observed), ["k8s.io/c1"]);
    assert!(spans(&production, ProfileSource::Sandbox).is_empty());
    let image = h
        .send("GET", &format!("/api/v1/images/{d}"), &key, None)
        .await;
    assert_eq!(image.json["last_run_id"], run.as_str(), "{image:?}");
    assert_eq!(image.json["last_analysis_id"], job.as_str());

    // the same upload again: its job, nothing queued
    let r = h.upload(&key, &d, &good).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["job_id"], job.as_str());

    // a second container's upload accumulates with the first
    let second = observed(&d, "k8s.io/c2", "2026-02-01T11:00:00Z", 3_600_000);
    let r = h.upload(&key, &d, &second).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let job2 = r.json["job_id"].as_str().unwrap().to_owned();
    h.wait_job(&key, &job2).await;
    h.wait_vex(&key, &d, 3).await;
    let given = h.analyzer.profiles.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        spans(&given, ProfileSource::Observed),
        ["k8s.io/c1", "k8s.io/c2"]
    );

    // a new report afterwards keeps the production evidence
    let r = h
        .send(
            "POST",
            &format!("/api/v1/images/{d}/reports"),
            &key,
            Some(grype().to_string().into_bytes()),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let job3 = r.json["job_id"].as_str().unwrap().to_owned();
    h.wait_job(&key, &job3).await;
    let given = h.analyzer.profiles.lock().unwrap().last().cloned().unwrap();
    assert_eq!(given.run.source, ProfileSource::Observed);
    assert_eq!(
        spans(&given, ProfileSource::Observed),
        ["k8s.io/c1", "k8s.io/c2"]
    );
    assert_eq!(h.analyzer.profiles.lock().unwrap().len(), 3);

    // two processes took uploads at the same instant: the newest job
    // (queued here as the other process would) started from the evidence
    // of the first upload only, and lacks the second's; the next upload
    // brings it back from the second job's own upload
    let stored = h.svc.store.job_request(None, &job2).await.unwrap().unwrap();
    let mut raced: vexxy_server::api::JobSpec = serde_json::from_str(&stored).unwrap();
    let third = observed(&d, "k8s.io/c3", "2026-02-01T12:00:00Z", 60_000);
    let first_and_third = vexxy_profile::merge(good.clone(), third.clone()).unwrap();
    let doc = |p: &ExecutionProfile| {
        vexxy_server::api::Document::try_from(String::from_utf8(vexxy_profile::to_json(p)).unwrap())
            .unwrap()
    };
    raced.production_profile = Some(doc(&first_and_third));
    raced.production_upload = Some(doc(&third));
    raced.production_upload_digests = vec![as_uploaded(&good), as_uploaded(&third)];
    assert_eq!(
        raced.production_uploaded_by.as_deref(),
        Some(key_id(&h, &key).await.as_str()),
        "the job records the key that uploaded"
    );
    let org = h
        .svc
        .store
        .authenticate(&key)
        .await
        .unwrap()
        .unwrap()
        .org
        .id;
    let submitted = h
        .svc
        .store
        .submit(
            vexxy_store::jobs::NewJob {
                org_id: org,
                dedupe_key: raced.dedupe_key(),
                image_ref: raced.image_ref.clone(),
                image_digest: Some(d.clone()),
                request: serde_json::to_string(&raced).unwrap(),
                callback_url: None,
                priority: 1,
                max_attempts: 1,
                timeout_ms: 60_000,
                key_id: None,
            },
            1000,
            vexxy_store::tenants::month_window(vexxy_store::now_ms()),
        )
        .await
        .unwrap();
    let vexxy_store::jobs::Submitted::Created(raced_job) = submitted else {
        panic!("not queued: {submitted:?}");
    };
    h.wait_job(&key, &raced_job.id).await;
    let fourth = observed(&d, "k8s.io/c4", "2026-02-01T13:00:00Z", 60_000);
    let r = h.upload(&key, &d, &fourth).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    h.wait_job(&key, r.json["job_id"].as_str().unwrap()).await;
    let given = h.analyzer.profiles.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        spans(&given, ProfileSource::Observed),
        ["k8s.io/c1", "k8s.io/c2", "k8s.io/c3", "k8s.io/c4"]
    );
}

/// An image analysed without a report has no findings to re-decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_analysed_without_a_report_is_a_conflict() {
    let h = Harness::new().await;
    let key = h.key("acme", Tier::Enterprise).await;
    h.analyse(&key, &reference("bare"), false).await;
    let d = digest_of(&reference("bare"));
    let r = h
        .upload(&key, &d, &observed(&d, "c", "2026-02-01T10:00:00Z", 1_000))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert_eq!(r.json["code"], "no_report");
    assert!(h.analyzer.profiles.lock().unwrap().is_empty());
}

/// An RFC 3339 time `secs` seconds from now (before now when negative).
fn from_now(secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A production profile of `digest` with one observed span per
/// `(target, started_at, duration_ms)`.
fn with_spans(digest: &str, spans: &[(&str, &str, u64)]) -> ExecutionProfile {
    let mut p = observed(digest, spans[0].0, spans[0].1, spans[0].2);
    p.run.spans = spans
        .iter()
        .map(|(target, started_at, duration_ms)| EvidenceSpan {
            source: ProfileSource::Observed,
            target: (*target).to_owned(),
            started_at: (*started_at).to_owned(),
            duration_ms: *duration_ms,
        })
        .collect();
    p
}

/// What one upload may claim is bounded: spans in the future, longer than
/// 7 days, more than 256 of them, targets that are not short printable
/// text are 422 naming the field, without the value; nothing is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_claim_only_what_is_plausible() {
    let h = Harness::new().await;
    let key = h.key("acme", Tier::Enterprise).await;
    h.analyse(&key, &reference("1"), true).await;
    let d = digest_of(&reference("1"));
    let day = 86_400_000;
    let ok = from_now(-10 * 86_400);

    // a span that starts in the future
    let future = "2999-01-01T00:00:00Z";
    let p = with_spans(
        &d,
        &[
            ("k8s.io/c0", &ok, 1_000),
            ("k8s.io/c1", &ok, 1_000),
            ("k8s.io/c2", &ok, 1_000),
            ("k8s.io/c3", future, 1_000),
        ],
    );
    let r = h.upload(&key, &d, &p).await;
    assert_names(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "run.spans[3].started_at",
    );
    assert_not_echoed(&r, "2999");
    // ten minutes ahead: past the allowed skew
    let ahead = from_now(600);
    let r = h
        .upload(&key, &d, &with_spans(&d, &[("c", &ahead, 0)]))
        .await;
    assert_names(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "run.spans[0].started_at",
    );
    assert_not_echoed(&r, &ahead);
    // not a time at all
    let r = h
        .upload(
            &key,
            &d,
            &with_spans(&d, &[("c", &ok, 1), ("c2", "yesterday-ish", 1)]),
        )
        .await;
    assert_names(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "run.spans[1].started_at",
    );
    assert_not_echoed(&r, "yesterday-ish");
    // started a minute ago, claims an hour: ends in the future
    let r = h
        .upload(
            &key,
            &d,
            &with_spans(&d, &[("c", &from_now(-60), 3_600_000)]),
        )
        .await;
    assert_names(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "run.spans[0].duration_ms",
    );
    // eight days in one span, even one that ended long ago
    let long = 8 * day;
    let r = h
        .upload(
            &key,
            &d,
            &with_spans(
                &d,
                &[
                    ("c0", &from_now(-30 * 86_400), 1_000),
                    ("c1", &from_now(-20 * 86_400), 1_000),
                    ("c2", &from_now(-30 * 86_400), long),
                ],
            ),
        )
        .await;
    assert_names(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "run.spans[2].duration_ms",
    );
    assert_not_echoed(&r, &long.to_string());
    // the same claimed by the run (a profile without spans)
    let mut spanless = observed(&d, "c", &from_now(-30 * 86_400), long);
    spanless.run.spans.clear();
    let r = h.upload(&key, &d, &spanless).await;
    assert_names(&r, StatusCode::UNPROCESSABLE_ENTITY, "run.duration_ms");
    assert_not_echoed(&r, &long.to_string());
    // the single upload of 1e8 ms the review found: starting now, refused
    let r = h
        .upload(
            &key,
            &d,
            &with_spans(&d, &[("c", &from_now(0), 100_000_000)]),
        )
        .await;
    assert_names(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "run.spans[0].duration_ms",
    );
    // more than 256 spans
    let targets: Vec<String> = (0..257).map(|i| format!("k8s.io/many-{i}")).collect();
    let many: Vec<(&str, &str, u64)> = targets
        .iter()
        .map(|t| (t.as_str(), ok.as_str(), 1))
        .collect();
    let r = h.upload(&key, &d, &with_spans(&d, &many)).await;
    assert_names(&r, StatusCode::UNPROCESSABLE_ENTITY, "run.spans");
    assert_not_echoed(&r, "many-");
    // 256 are taken (checked here without queuing: a bad digest after)
    let mut most = with_spans(&d, &many[..256]);
    most.run.image_digest = Some(digest_of("y:1"));
    let r = h.upload(&key, &d, &most).await;
    assert_names(&r, StatusCode::UNPROCESSABLE_ENTITY, "run.image_digest");
    // targets: control characters, invisible reordering, too long
    for bad in [
        "k8s.io/\u{1b}[31mevil-escape".to_owned(),
        "k8s.io/evil\nnewline".to_owned(),
        "k8s.io/evil\u{202E}txt.exe".to_owned(),
        format!("k8s.io/evil{}", "x".repeat(250)),
    ] {
        let p = with_spans(&d, &[("k8s.io/fine", &ok, 1), (&bad, &ok, 1)]);
        let r = h.upload(&key, &d, &p).await;
        assert_names(&r, StatusCode::UNPROCESSABLE_ENTITY, "run.spans[1].target");
        assert_not_echoed(&r, "evil");
    }
    // a value the parser refuses is named, not repeated
    let mut bad =
        serde_json::from_slice::<Value>(&vexxy_profile::to_json(&observed(&d, "c", &ok, 1)))
            .unwrap();
    bad["run"]["spans"][0]["source"] = json!("<script>evil</script>");
    let r = h
        .send(
            "POST",
            &format!("/api/v1/images/{d}/profiles"),
            &key,
            Some(bad.to_string().into_bytes()),
        )
        .await;
    assert_names(&r, StatusCode::UNPROCESSABLE_ENTITY, "run.spans[0].source");
    assert_not_echoed(&r, "evil");
    assert!(
        h.analyzer.profiles.lock().unwrap().is_empty(),
        "nothing queued"
    );

    // what is plausible is taken: a week that ended a day ago
    let week = with_spans(&d, &[("k8s.io/c1", &from_now(-8 * 86_400), 7 * day)]);
    let r = h.upload(&key, &d, &week).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    h.wait_job(&key, r.json["job_id"].as_str().unwrap()).await;
}

/// Uploads are the same by content, not by spans: a profile re-exported
/// with the same spans but new evidence is merged; the same content again
/// (even written differently) is the job that has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_updated_upload_with_the_same_spans_is_merged() {
    let h = Harness::new().await;
    let key = h.key("acme", Tier::Enterprise).await;
    h.analyse(&key, &reference("1"), true).await;
    let d = digest_of(&reference("1"));
    let mut first = observed(&d, "default/nginx", "2026-02-01T10:00:00Z", 60_000);
    first.run.source = ProfileSource::Kubescape;
    first.run.spans[0].source = ProfileSource::Kubescape;
    let r = h.upload(&key, &d, &first).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let job = r.json["job_id"].as_str().unwrap().to_owned();
    h.wait_job(&key, &job).await;

    // re-exported: same object, same creation time, a file more
    let mut updated = first.clone();
    updated.files.push(FileAccess {
        path: "/etc/nginx/conf.d/new.conf".into(),
        opens: 1,
    });
    let r = h.upload(&key, &d, &updated).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let job2 = r.json["job_id"].as_str().unwrap().to_owned();
    assert_ne!(job2, job);
    h.wait_job(&key, &job2).await;
    let given = h.analyzer.profiles.lock().unwrap().last().cloned().unwrap();
    assert!(
        given
            .files
            .iter()
            .any(|f| f.path == "/etc/nginx/conf.d/new.conf"),
        "the new file is in the merged profile: {:?}",
        given.files
    );
    assert_eq!(spans(&given, ProfileSource::Kubescape), ["default/nginx"]);

    // the same content again, pretty-printed: the job that has it
    let pretty: Value = serde_json::from_slice(&vexxy_profile::to_json(&updated)).unwrap();
    let r = h
        .send(
            "POST",
            &format!("/api/v1/images/{d}/profiles"),
            &key,
            Some(serde_json::to_vec_pretty(&pretty).unwrap()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["job_id"], job2.as_str());
    // and the first one, which the evidence has too
    let r = h.upload(&key, &d, &first).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["job_id"], job2.as_str());
    assert_eq!(h.analyzer.profiles.lock().unwrap().len(), 2);

    // the job's request names the key that uploaded it
    let stored = h.svc.store.job_request(None, &job2).await.unwrap().unwrap();
    let spec: vexxy_server::api::JobSpec = serde_json::from_str(&stored).unwrap();
    assert_eq!(
        spec.production_uploaded_by.as_deref(),
        Some(key_id(&h, &key).await.as_str())
    );
    assert_eq!(
        spec.production_upload_digests,
        [as_uploaded(&first), as_uploaded(&updated)]
    );
}
