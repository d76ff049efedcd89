//! The human loop's REST API (issue 15) through `tower::ServiceExt::oneshot`,
//! with in-process workers, on SQLite and on the real PostgreSQL: stored
//! statements, the review queue and its settings, decisions and the VEX
//! they re-issue (signed when the organisation has a key), bulk decisions,
//! assignment, images, the dashboard, compliance, comparisons, the audit
//! log, new reports re-decided from the stored profile, offers to new
//! digests, tenant isolation and the review metrics.
//!
//! The analyses come from `Scripted`, an analyzer written for these tests
//! whose outcomes carry real findings and decisions (so a completed job
//! stores statements and issues the image's VEX), an execution profile
//! artifact (so a new report can be re-decided from it) and an OpenVEX
//! artifact. The real pipeline behind the same trait is exercised by the
//! `vexxy` binary's service tests.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode},
    Router,
};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tower::ServiceExt as _;
use vexxy_analyze::{
    AnalysisOutcome, AnalysisRequest, AnalyzeError, ArtifactKind, Artifacts, Findings,
    ProfileSource, ReevaluateRequest,
};
use vexxy_decide::Decision;
use vexxy_model::{
    Confidence, Decider, Ecosystem, Evidence, EvidenceSource, ExecutionProfile, Finding, FixState,
    Justification, PackageRef, Product, RunInfo, Severity, Verdict, Vulnerability,
};
use vexxy_review::{ReviewSettings, StatementRecord};
use vexxy_server::{Analyzer, JobControl, Service, ServiceConfig};
use vexxy_store::{
    review::{AnalysisRecord, Effect, NewDecision},
    EvidenceStore, LocalStore, ServerKey, Store, Tier,
};

// ---------------------------------------------------------------- the data

/// The repository every `app:<tag>` image belongs to.
const APP: &str = "registry.example.com/team/app";
/// Another repository.
const WEB: &str = "registry.example.com/other/web";
/// A product name a spreadsheet would read as a formula, with a comma and
/// quotes (the scripted analyzer names `formula/…` images so).
const FORMULA_REPO: &str = "=HYPERLINK(\"http://evil.example\"),\"x\"";
const METRICS_TOKEN: &str = "metrics-token-for-review-tests-0123";

const VEX: &str = r#"{"@context":"https://openvex.dev/ns/v0.2.0","@id":"x","author":"t","timestamp":"2026-01-01T00:00:00Z","version":1,"statements":[{"vulnerability":{"name":"CVE-2024-1002"},"products":[{"@id":"p"}],"status":"not_affected","justification":"vulnerable_code_not_in_execute_path"}]}"#;

fn app(tag: &str) -> String {
    format!("{APP}:{tag}")
}

/// The digest the scripted analyzer gives an image reference.
fn digest_of(reference: &str) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(reference.as_bytes()))
    )
}

/// The product name of a reference: without its tag.
fn repository_of(reference: &str) -> String {
    if reference.starts_with("formula/") {
        return FORMULA_REPO.to_owned();
    }
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_owned(),
        _ => reference.to_owned(),
    }
}

fn tag_of(reference: &str) -> &str {
    match reference.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag,
        _ => "",
    }
}

fn finding(
    id: &str,
    name: &str,
    version: &str,
    severity: Severity,
    kev: bool,
    epss: Option<f64>,
    fix: FixState,
) -> Finding {
    Finding {
        vulnerability: Vulnerability {
            id: id.to_owned(),
            aliases: vec![format!("GHSA-{}", &id[4..])],
            severity,
            description: Some(format!("{id} in {name}")),
            epss,
            known_exploited: kev,
            ..Vulnerability::default()
        },
        package: PackageRef {
            name: name.to_owned(),
            version: version.to_owned(),
            ecosystem: Ecosystem::Deb,
            purl: Some(
                format!("pkg:deb/debian/{name}@{version}?arch=amd64")
                    .parse()
                    .unwrap(),
            ),
            source_name: None,
        },
        fixed_versions: if fix == FixState::Fixed {
            vec![format!("{version}+fix1")]
        } else {
            Vec::new()
        },
        fix_state: fix,
        reported_by: Some("grype 0.92.2".to_owned()),
    }
}

fn conf(c: f64) -> Confidence {
    Confidence::new(c).unwrap()
}

fn elf(library: &str) -> Evidence {
    Evidence::new(
        "elf-reachability",
        EvidenceSource::ElfGraph,
        format!("no executable of the image loads {library}"),
    )
    .about(format!("/usr/lib/x86_64-linux-gnu/{library}"))
    .fact("executables", "3")
}

/// The findings and automated verdicts of an image:
///
/// | id | package | severity | kev | epss | fix | verdict | confidence | queue (defaults) |
/// |---|---|---|---|---|---|---|---|---|
/// | CVE-2024-1001 | openssl | high | yes | 0.30 | not fixed | affected | 0.90 | affected_no_fix |
/// | CVE-2024-1002 | libxml2 | critical | | 0.10 | fixed | not_affected | 0.95 | (four_eyes) |
/// | CVE-2024-1003 | zlib | critical | | 0.90 | unknown | not_affected | 0.45 | low_confidence |
/// | CVE-2024-1004 | curl | critical | | – | unknown | under_investigation | 0 | under_investigation |
/// | CVE-2024-1005 | bash | medium | | 0.05 | fixed | affected | 0.80 | |
/// | CVE-2024-1006 | tar | low | | – | unknown | not_affected | 0.70 | (review_below > 0.7) |
///
/// Tag `2` (a new digest of the repository): CVE-2024-1005 is not_affected
/// (its evidence changed), CVE-2024-1006 is gone, CVE-2024-1008 (libpng,
/// high, fixed, affected) is new; the others rest on the same evidence.
/// `many` images have 1001 findings under investigation.
fn scripted_findings(reference: &str) -> (Vec<Finding>, Vec<Verdict>) {
    let by = || Decider::automated("scripted");
    if reference.contains("many") {
        return (0..1001)
            .map(|i| {
                (
                    finding(
                        &format!("CVE-2025-{i:05}"),
                        "libbig",
                        "1.0",
                        Severity::Low,
                        false,
                        None,
                        FixState::Unknown,
                    ),
                    Verdict::under_investigation(by()),
                )
            })
            .unzip();
    }
    let second = tag_of(reference) == "2";
    let mut out = vec![
        (
            finding(
                "CVE-2024-1001",
                "openssl",
                "3.0.11",
                Severity::High,
                true,
                Some(0.30),
                FixState::NotFixed,
            ),
            Verdict::affected("upgrade openssl".into(), by())
                .with_confidence(conf(0.9))
                .with_evidence(Evidence::new(
                    "runtime",
                    EvidenceSource::Runtime,
                    "libssl.so.3 was loaded by nginx",
                ))
                .with_notes("libssl is loaded"),
        ),
        (
            finding(
                "CVE-2024-1002",
                "libxml2",
                "2.9.14",
                Severity::Critical,
                false,
                Some(0.10),
                FixState::Fixed,
            ),
            Verdict::not_affected(Justification::VulnerableCodeNotInExecutePath, by())
                .with_confidence(conf(0.95))
                .with_evidence(elf("libxml2.so.2"))
                .with_notes("libxml2 is never loaded"),
        ),
        (
            finding(
                "CVE-2024-1003",
                "zlib",
                "1.2.13",
                Severity::Critical,
                false,
                Some(0.90),
                FixState::Unknown,
            ),
            Verdict::not_affected(Justification::VulnerableCodeNotPresent, by())
                .with_confidence(conf(0.45))
                .with_evidence(elf("libz.so.1"))
                .with_notes("the vulnerable function is not compiled in"),
        ),
        (
            finding(
                "CVE-2024-1004",
                "curl",
                "7.88.1",
                Severity::Critical,
                false,
                None,
                FixState::Unknown,
            ),
            Verdict::under_investigation(by()),
        ),
    ];
    if second {
        out.push((
            finding(
                "CVE-2024-1005",
                "bash",
                "5.2.15",
                Severity::Medium,
                false,
                Some(0.05),
                FixState::Fixed,
            ),
            Verdict::not_affected(Justification::VulnerableCodeNotInExecutePath, by())
                .with_confidence(conf(0.9))
                .with_evidence(elf("bash")),
        ));
        out.push((
            finding(
                "CVE-2024-1008",
                "libpng16",
                "1.6.39",
                Severity::High,
                false,
                Some(0.20),
                FixState::Fixed,
            ),
            Verdict::affected("upgrade libpng".into(), by()).with_confidence(conf(0.85)),
        ));
    } else {
        out.push((
            finding(
                "CVE-2024-1005",
                "bash",
                "5.2.15",
                Severity::Medium,
                false,
                Some(0.05),
                FixState::Fixed,
            ),
            Verdict::affected("upgrade bash".into(), by()).with_confidence(conf(0.8)),
        ));
        out.push((
            finding(
                "CVE-2024-1006",
                "tar",
                "1.34",
                Severity::Low,
                false,
                None,
                FixState::Unknown,
            ),
            Verdict::not_affected(Justification::ComponentNotPresent, by())
                .with_confidence(conf(0.7))
                .with_evidence(elf("libtar.so")),
        ));
    }
    out.into_iter().unzip()
}

/// The profile the scripted run of `reference` records.
fn profile_of(reference: &str) -> ExecutionProfile {
    ExecutionProfile {
        run: RunInfo {
            image: reference.to_owned(),
            image_digest: Some(digest_of(reference)),
            command: vec!["/docker-entrypoint.sh".into(), "nginx".into()],
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 31_000,
            requested_duration_ms: 30_000,
            ..RunInfo::default()
        },
        ..ExecutionProfile::default()
    }
}

/// The outcome of `reference`'s findings, plus `extra` findings a new
/// report brings (decided under investigation; one of the image's own
/// findings named again is re-decided so). An analysis runs the image
/// (`Recorded`), a re-decision is given the stored profile (`Given`).
fn outcome_for(
    reference: &str,
    extra: &[Finding],
    profile_source: ProfileSource,
) -> AnalysisOutcome {
    let product = Product {
        name: repository_of(reference),
        tag: Some(tag_of(reference).to_owned()).filter(|t| !t.is_empty()),
        digest: Some(digest_of(reference).parse().unwrap()),
    };
    let (mut findings, mut verdicts) = scripted_findings(reference);
    for f in extra {
        let verdict = Verdict::under_investigation(Decider::automated("scripted-report"))
            .with_notes("new in the report");
        match findings
            .iter()
            .position(|g| g.vulnerability.id == f.vulnerability.id && g.package == f.package)
        {
            Some(i) => verdicts[i] = verdict,
            None => {
                findings.push(f.clone());
                verdicts.push(verdict);
            }
        }
    }
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
    artifacts.insert(ArtifactKind::OpenVex, VEX.as_bytes().to_vec());
    if !reference.contains("noprofile") {
        artifacts.insert(
            ArtifactKind::Profile,
            vexxy_profile::to_json(&profile_of(reference)),
        );
    }
    AnalysisOutcome {
        product,
        profile: profile_of(reference),
        profile_source,
        findings,
        decision: vexxy_decide::Outcome {
            decisions,
            statements,
            summary: Default::default(),
        },
        artifacts,
        packages: 6,
        used_packages: 2,
        report_mismatch: None,
        timings: Default::default(),
    }
}

/// Answers [`outcome_for`] the job's reference; a re-decision adds the
/// report's findings. Counts both and keeps the profiles re-decisions got.
#[derive(Default)]
struct Scripted {
    analyzed: AtomicUsize,
    reevaluated: AtomicUsize,
    profiles: Mutex<Vec<ExecutionProfile>>,
}

impl Analyzer for Scripted {
    fn analyze(
        &self,
        request: &AnalysisRequest,
        _control: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        self.analyzed.fetch_add(1, Ordering::SeqCst);
        let stored = !request.image.reference.contains("noprofile");
        Ok(outcome_for(
            &request.image.reference,
            &[],
            ProfileSource::Recorded { stored },
        ))
    }

    fn reevaluate(
        &self,
        request: &ReevaluateRequest,
        _control: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        self.reevaluated.fetch_add(1, Ordering::SeqCst);
        self.profiles.lock().unwrap().push(request.profile.clone());
        let Findings::Report(report) = &request.findings else {
            return Err(AnalyzeError::bad_input("a re-decision needs a report"));
        };
        Ok(outcome_for(
            &request.image.reference,
            &report.findings,
            ProfileSource::Given,
        ))
    }
}

/// A Grype report with one match per `(id, package, version, severity)`.
fn grype(matches: &[(&str, &str, &str, &str)]) -> Value {
    json!({
        "matches": matches.iter().map(|(id, name, version, severity)| json!({
            "vulnerability": {
                "id": id,
                "severity": severity,
                "description": format!("{id} in {name}"),
                "fix": {"versions": [], "state": "not-fixed"},
            },
            "artifact": {
                "name": name,
                "version": version,
                "type": "deb",
                "purl": format!("pkg:deb/debian/{name}@{version}?arch=amd64"),
            },
        })).collect::<Vec<_>>(),
        "descriptor": {"name": "grype", "version": "0.92.2"},
    })
}

/// [`grype`] of an image the scanner names by these repository digests
/// (`repo@sha256:…`), as CI writes it.
fn grype_of(matches: &[(&str, &str, &str, &str)], repo_digests: &[String]) -> Value {
    let mut report = grype(matches);
    report["source"] = json!({
        "type": "image",
        "target": {"userInput": format!("{APP}:1"), "repoDigests": repo_digests},
    });
    report
}

// ---------------------------------------------------------------- harness

struct Resp {
    status: StatusCode,
    json: Value,
    bytes: Vec<u8>,
    headers: HeaderMap,
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.status,
            String::from_utf8_lossy(&self.bytes)
        )
    }
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn send(
    app: Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<Vec<u8>>,
) -> Resp {
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
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        json,
        bytes,
        headers,
    }
}

/// [`send`] on a task of its own (for requests racing each other).
fn spawn_send(
    app: &Router,
    method: &'static str,
    uri: String,
    key: &Key,
    body: Value,
) -> tokio::task::JoinHandle<Resp> {
    let (app, key) = (app.clone(), key.secret.clone());
    tokio::spawn(async move {
        send(
            app,
            method,
            &uri,
            Some(&key),
            Some(body.to_string().into_bytes()),
        )
        .await
    })
}

/// An API key of an organisation, with the key's id and its author name.
#[derive(Clone, Debug)]
struct Key {
    secret: String,
    id: String,
    org: String,
}

struct Harness {
    svc: Arc<Service>,
    analyzer: Arc<Scripted>,
    app: Router,
    stop: tokio::sync::watch::Sender<bool>,
    db_url: String,
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
        let (store, db_url) = match db_url {
            Some(u) => (Store::open(&u).await.unwrap(), u),
            None => (
                Store::open_sqlite_in(dir.path()).await.unwrap(),
                format!("sqlite://{}", dir.path().join("vexxy.db").display()),
            ),
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

    /// Runs `sql` on the database directly (to move stored times into
    /// the past); how many rows it changed.
    async fn raw(&self, sql: &str) -> u64 {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.db_url).await.unwrap();
        let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        done.rows_affected()
    }

    /// A new organisation and a key owned by `owner`.
    async fn org(&self, name: &str, tier: Tier, owner: &str) -> Key {
        let org = self.svc.store.create_org(name, tier, None).await.unwrap();
        self.key(&org.id, owner).await
    }

    /// Another key of the organisation, owned by `owner`.
    async fn key(&self, org_id: &str, owner: &str) -> Key {
        let secret = self
            .svc
            .store
            .create_key_for(org_id, "review", Some(owner))
            .await
            .unwrap()
            .secret;
        let caller = self.svc.store.authenticate(&secret).await.unwrap().unwrap();
        Key {
            secret,
            id: caller.key_id.clone(),
            org: org_id.to_owned(),
        }
    }

    async fn call(&self, method: &str, uri: &str, key: &Key, body: Option<Value>) -> Resp {
        send(
            self.app.clone(),
            method,
            uri,
            Some(&key.secret),
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    async fn get(&self, key: &Key, uri: &str) -> Resp {
        self.call("GET", uri, key, None).await
    }

    async fn post(&self, key: &Key, uri: &str, body: Value) -> Resp {
        self.call("POST", uri, key, Some(body)).await
    }

    async fn put(&self, key: &Key, uri: &str, body: Value) -> Resp {
        self.call("PUT", uri, key, Some(body)).await
    }

    /// Submits `reference`; waits for the job to complete.
    async fn run_job(&self, key: &Key, body: Value) -> String {
        let r = self.post(key, "/api/v1/analysis/submit", body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        let id = r.json["job_id"].as_str().unwrap().to_owned();
        self.wait_job(key, &id).await;
        id
    }

    async fn wait_job(&self, key: &Key, id: &str) {
        let began = Instant::now();
        loop {
            let r = self
                .get(key, &format!("/api/v1/analysis/{id}/status"))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
            match r.json["status"].as_str() {
                Some("complete") => return,
                Some("failed" | "cancelled") => panic!("job {id}: {r:?}"),
                _ => {}
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "job {id} never completed: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the image's VEX history has a version of job `job`.
    async fn wait_vex(&self, key: &Key, digest: &str, job: &str) -> Value {
        let began = Instant::now();
        loop {
            let r = self
                .get(key, &format!("/api/v1/images/{digest}/vex/history"))
                .await;
            if r.status == StatusCode::OK {
                if let Some(v) = r.json["versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["job_id"] == job)
                {
                    return v.clone();
                }
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "no VEX of job {job} for {digest}: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Analyses `reference` and waits for its VEX; the job id.
    async fn analyse(&self, key: &Key, reference: &str) -> String {
        let job = self.run_job(key, json!({"image_ref": reference})).await;
        self.wait_vex(key, &digest_of(reference), &job).await;
        job
    }

    /// A statement listing (`/api/v1/statements?…` or the queue), 200.
    async fn list(&self, key: &Key, path: &str, query: &str) -> Value {
        let r = self.get(key, &format!("{path}?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{path}?{query}: {r:?}");
        r.json
    }

    async fn statements(&self, key: &Key, query: &str) -> Vec<Value> {
        self.list(key, "/api/v1/statements", query).await["statements"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn queue(&self, key: &Key, query: &str) -> Vec<Value> {
        self.list(key, "/api/v1/review/queue", query).await["statements"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The statement of `vulnerability` in the image `reference`.
    async fn statement(&self, key: &Key, reference: &str, vulnerability: &str) -> Value {
        let found = self
            .statements(
                key,
                &format!(
                    "image={}&vulnerability={vulnerability}",
                    digest_of(reference)
                ),
            )
            .await;
        assert_eq!(found.len(), 1, "{vulnerability} of {reference}: {found:?}");
        found[0].clone()
    }

    async fn image(&self, key: &Key, reference: &str) -> Value {
        let r = self
            .get(key, &format!("/api/v1/images/{}", digest_of(reference)))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.json
    }

    async fn decide(&self, key: &Key, statement: &str, body: Value) -> Resp {
        self.post(
            key,
            &format!("/api/v1/statements/{statement}/decisions"),
            body,
        )
        .await
    }

    async fn decide_ok(&self, key: &Key, statement: &str, body: Value) -> Value {
        let r = self.decide(key, statement, body).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.json
    }

    /// The image's current OpenVEX document, its version header checked.
    async fn vex(&self, key: &Key, reference: &str) -> Value {
        let r = self
            .get(key, &format!("/api/v1/images/{}/vex", digest_of(reference)))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(
            r.header("x-vex-version"),
            r.json["version"].to_string(),
            "{r:?}"
        );
        r.json
    }

    /// Waits until a webhook of job `job` was delivered; its payload.
    async fn delivered(&self, hooks: &vexxy_testkit::hooks::HookReceiver, job: &str) -> Value {
        let began = Instant::now();
        loop {
            for got in hooks.received() {
                let payload: Value = serde_json::from_slice(&got.body).unwrap_or(Value::Null);
                if payload["job_id"] == job {
                    return payload;
                }
            }
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "no webhook of job {job}"
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

fn ids(statements: &[Value]) -> Vec<&str> {
    statements
        .iter()
        .map(|s| s["vulnerability_id"].as_str().unwrap())
        .collect()
}

/// 422 whose message names `field`.
#[track_caller]
fn assert_names(r: &Resp, field: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {r:?}");
    let message = r.json["message"].as_str().unwrap_or_default();
    assert!(message.contains(field), "{field} not named: {r:?}");
}

/// The statement of `vulnerability` in an issued document.
fn vex_statement<'a>(doc: &'a Value, vulnerability: &str) -> &'a Value {
    doc["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["vulnerability"]["name"] == vulnerability)
        .unwrap_or_else(|| panic!("{vulnerability} not in {doc}"))
}

use vexxy_server::review::new_statement;

/// The records the scripted analysis of `reference` stores.
fn records_of(reference: &str) -> Vec<StatementRecord> {
    let o = outcome_for(reference, &[], ProfileSource::Given);
    StatementRecord::from_outcome(&o.findings, &o.decision.decisions)
}

/// Records an analysis of `reference` straight into the store (a
/// re-decision: no run), as a job `job_id` of the organisation.
async fn record_directly(h: &Harness, org: &str, reference: &str, job_id: &str, keep: usize) {
    let rules = ReviewSettings::default();
    h.svc
        .store
        .record_analysis(&AnalysisRecord {
            org_id: org.to_owned(),
            image_digest: digest_of(reference),
            repository: repository_of(reference),
            reference: reference.to_owned(),
            job_id: job_id.to_owned(),
            full_run: false,
            statements: records_of(reference)
                .iter()
                .take(keep)
                .map(|r| new_statement(r, &rules))
                .collect(),
        })
        .await
        .unwrap();
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
    statements_filter_sort_and_page,
    the_queue_follows_the_organisation_s_settings,
    decisions_reissue_the_image_s_vex,
    bad_decisions_name_the_field_and_write_nothing,
    concurrent_decisions_lose_no_update,
    bulk_decisions_are_all_or_nothing,
    statements_are_assigned,
    images_are_listed_searched_and_shown,
    dashboard_and_compliance_count_a_known_data_set,
    two_images_of_a_repository_are_compared,
    the_audit_log_lists_decisions,
    new_reports_are_redecided_from_the_stored_profile,
    reports_find_their_images_by_the_digests_they_record,
    a_new_report_keeps_an_approved_verdict,
    organisations_never_see_each_other_s_review,
    decisions_are_offered_to_new_digests,
    versions_are_signed_with_the_organisation_s_key,
    metrics_show_the_backlog_and_coverage,
    images_whose_last_run_is_too_old_are_run_again,
);

// ---------------------------------------------------------------- scenarios

/// Every filter of the statement listing, the three sorts, paging, and a
/// 422 naming each bad parameter (on the queue too).
async fn statements_filter_sort_and_page(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    let job = h.analyse(&a, &app("1")).await;
    let d1 = digest_of(&app("1"));

    let all = h.list(&a, "/api/v1/statements", "").await;
    assert_eq!(all["total"], 6, "{all}");
    assert_eq!(all["limit"], 100);
    assert_eq!(all["offset"], 0);
    let s = &all["statements"].as_array().unwrap();
    let one = s
        .iter()
        .find(|s| s["vulnerability_id"] == "CVE-2024-1001")
        .unwrap();
    assert_eq!(one["image_digest"], d1.as_str());
    assert_eq!(one["repository"], APP);
    assert_eq!(one["package_key"], "pkg:deb/debian/openssl@3.0.11");
    assert_eq!(
        one["package_purl"],
        "pkg:deb/debian/openssl@3.0.11?arch=amd64"
    );
    assert_eq!(one["package_name"], "openssl");
    assert_eq!(one["package_version"], "3.0.11");
    assert_eq!(one["severity"], "high");
    assert_eq!(one["epss"], 0.3);
    assert_eq!(one["known_exploited"], true);
    assert_eq!(one["fix_state"], "not_fixed");
    assert_eq!(one["auto_status"], "affected");
    assert_eq!(one["status"], "affected");
    assert_eq!(one["confidence"], 0.9);
    assert_eq!(one["analysis_id"], job.as_str());
    assert_eq!(one["present"], true);
    assert_eq!(one["in_queue"], true);
    assert_eq!(one["review_reason"], "affected_no_fix");
    assert_eq!(one["version"], 1);
    assert!(one["decision_id"].is_null() && one["assignee"].is_null());

    // sorts: risk (kev, severity, epss with unknown last, …), vulnerability
    let risk = h.statements(&a, "sort=risk").await;
    assert_eq!(
        ids(&risk),
        [
            "CVE-2024-1001",
            "CVE-2024-1003",
            "CVE-2024-1002",
            "CVE-2024-1004",
            "CVE-2024-1005",
            "CVE-2024-1006"
        ]
    );
    let by_id = h.statements(&a, "sort=vulnerability").await;
    assert_eq!(
        ids(&by_id),
        [
            "CVE-2024-1001",
            "CVE-2024-1002",
            "CVE-2024-1003",
            "CVE-2024-1004",
            "CVE-2024-1005",
            "CVE-2024-1006"
        ]
    );
    // paging
    let page = h
        .list(
            &a,
            "/api/v1/statements",
            "sort=vulnerability&limit=2&offset=2",
        )
        .await;
    assert_eq!(page["total"], 6);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 2);
    assert_eq!(
        ids(page["statements"].as_array().unwrap()),
        ["CVE-2024-1003", "CVE-2024-1004"]
    );
    let past = h.list(&a, "/api/v1/statements", "limit=5&offset=10").await;
    assert_eq!(past["total"], 6);
    assert!(past["statements"].as_array().unwrap().is_empty());

    // a second image later: age puts the first one's statements first
    h.analyse(&a, &app("2")).await;
    let d2 = digest_of(&app("2"));
    let aged = h.statements(&a, "sort=age&limit=1000").await;
    assert_eq!(aged.len(), 12);
    let first_of_2 = aged.iter().position(|s| s["image_digest"] == d2.as_str());
    assert_eq!(first_of_2, Some(6), "{aged:?}");

    // each filter
    let sorted = |q: &'static str| {
        let h = &h;
        let a = &a;
        async move {
            let mut v: Vec<String> = h
                .statements(a, &format!("{q}&sort=vulnerability"))
                .await
                .iter()
                .map(|s| {
                    format!(
                        "{}@{}",
                        s["vulnerability_id"].as_str().unwrap(),
                        if s["image_digest"] == digest_of(&app("1")) {
                            "1"
                        } else {
                            "2"
                        }
                    )
                })
                .collect();
            // sort=vulnerability orders images by digest: by tag here
            v.sort();
            v
        }
    };
    assert_eq!(
        h.statements(&a, &format!("image={}", digest_of("nowhere:1")))
            .await
            .len(),
        0,
        "an unknown digest selects nothing"
    );
    let in_1 = h.statements(&a, &format!("image={d1}")).await;
    assert_eq!(in_1.len(), 6);
    assert!(in_1.iter().all(|s| s["image_digest"] == d1.as_str()));
    assert_eq!(
        h.statements(&a, &format!("repository={APP}")).await.len(),
        12
    );
    assert_eq!(
        h.statements(&a, "repository=registry.example.com/team")
            .await
            .len(),
        0,
        "the repository is matched exactly"
    );
    assert_eq!(
        sorted("vulnerability=CVE-2024-1002").await,
        ["CVE-2024-1002@1", "CVE-2024-1002@2"]
    );
    assert_eq!(
        sorted("vulnerability=cve-2024-1002").await,
        ["CVE-2024-1002@1", "CVE-2024-1002@2"],
        "the vulnerability is matched case-insensitively"
    );
    assert_eq!(
        sorted("package=zlib").await,
        ["CVE-2024-1003@1", "CVE-2024-1003@2"]
    );
    assert_eq!(
        sorted("package=pkg:deb/debian/open").await,
        ["CVE-2024-1001@1", "CVE-2024-1001@2"]
    );
    assert_eq!(sorted("package=%25").await.len(), 0, "LIKE is escaped");
    assert_eq!(
        sorted("status=affected").await,
        [
            "CVE-2024-1001@1",
            "CVE-2024-1001@2",
            "CVE-2024-1005@1",
            "CVE-2024-1008@2"
        ]
    );
    assert_eq!(
        sorted("severity=critical&image=x").await.len(),
        0,
        "filters combine"
    );
    let critical_1 = h
        .statements(
            &a,
            &format!("severity=CRITICAL&image={d1}&sort=vulnerability"),
        )
        .await;
    assert_eq!(
        ids(&critical_1),
        ["CVE-2024-1002", "CVE-2024-1003", "CVE-2024-1004"]
    );
    let medium_1 = h
        .statements(&a, &format!("severity=moderate&image={d1}"))
        .await;
    assert_eq!(
        ids(&medium_1),
        ["CVE-2024-1005"],
        "a severity the API accepts selects its normal form"
    );
    let confident = h
        .statements(
            &a,
            &format!("min_confidence=0.8&image={d1}&sort=vulnerability"),
        )
        .await;
    assert_eq!(
        ids(&confident),
        ["CVE-2024-1001", "CVE-2024-1002", "CVE-2024-1005"]
    );
    let unsure = h
        .statements(
            &a,
            &format!("max_confidence=0.5&image={d1}&sort=vulnerability"),
        )
        .await;
    assert_eq!(ids(&unsure), ["CVE-2024-1003", "CVE-2024-1004"]);
    let band = h
        .statements(
            &a,
            &format!("min_confidence=0.5&max_confidence=0.8&image={d1}&sort=vulnerability"),
        )
        .await;
    assert_eq!(ids(&band), ["CVE-2024-1005", "CVE-2024-1006"]);
    assert_eq!(
        sorted("reason=low_confidence").await,
        ["CVE-2024-1003@1", "CVE-2024-1003@2"]
    );
    // assignee
    let s1 = h.statement(&a, &app("1"), "CVE-2024-1006").await;
    let r = h
        .put(
            &a,
            &format!("/api/v1/statements/{}/assignee", s1["id"].as_str().unwrap()),
            json!({"assignee": "carol"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(sorted("assignee=carol").await, ["CVE-2024-1006@1"]);
    assert_eq!(sorted("assignee=dave").await.len(), 0);

    // include_absent: a later analysis of the digest without CVE-2024-1006
    record_directly(&h, &a.org, &app("1"), &job, 5).await;
    let now = h.statements(&a, &format!("image={d1}")).await;
    assert_eq!(now.len(), 5, "{now:?}");
    let with_absent = h
        .statements(&a, &format!("image={d1}&include_absent=true"))
        .await;
    assert_eq!(with_absent.len(), 6);
    let gone = with_absent
        .iter()
        .find(|s| s["vulnerability_id"] == "CVE-2024-1006")
        .unwrap();
    assert_eq!(gone["present"], false);
    assert_eq!(gone["in_queue"], false);

    // bad parameters are 422 naming the parameter, on both listings
    for path in ["/api/v1/statements", "/api/v1/review/queue"] {
        for (query, field) in [
            ("sort=newest", "sort"),
            ("status=broken", "status"),
            ("severity=apocalyptic", "severity"),
            ("reason=boredom", "reason"),
            ("min_confidence=2", "min_confidence"),
            ("max_confidence=-0.5", "max_confidence"),
            ("min_confidence=high", "min_confidence"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=many", "limit"),
            ("offset=-1", "offset"),
            ("include_absent=perhaps", "include_absent"),
            ("colour=blue", "colour"),
        ] {
            let r = h.get(&a, &format!("{path}?{query}")).await;
            assert_names(&r, field);
        }
    }
    let r = send(h.app.clone(), "GET", "/api/v1/statements", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// The queue holds exactly what `StatementRecord::review_reason` says at
/// the organisation's settings, in risk order; changing the settings
/// re-applies them (statements keep their versions); bad settings are 422
/// naming the field; the statement detail shows what a verdict rests on.
async fn the_queue_follows_the_organisation_s_settings(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    h.analyse(&a, &app("1")).await;
    let records = records_of(&app("1"));

    // what the rules say, for every statement, at these settings
    let check = |settings: ReviewSettings| {
        let h = &h;
        let a = &a;
        let records = &records;
        async move {
            let listed = h.statements(a, "sort=vulnerability").await;
            let mut expected = Vec::new();
            for r in records {
                let reason = r.review_reason(&settings).map(|x| x.as_str());
                let s = listed
                    .iter()
                    .find(|s| s["vulnerability_id"] == r.vulnerability_id.as_str())
                    .unwrap();
                assert_eq!(s["review_reason"].as_str(), reason, "{s}");
                assert_eq!(s["in_queue"], reason.is_some(), "{s}");
                if reason.is_some() {
                    expected.push(r.vulnerability_id.clone());
                }
            }
            let queue = h.queue(a, "").await;
            let mut got: Vec<String> = ids(&queue).iter().map(|s| (*s).to_owned()).collect();
            got.sort();
            assert_eq!(got, expected, "{settings:?}");
            ids(&queue)
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>()
        }
    };

    let r = h.get(&a, "/api/v1/review/settings").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json,
        json!({"review_below": 0.6, "four_eyes": false, "rerun_after_days": null})
    );
    let queue = check(ReviewSettings::default()).await;
    assert_eq!(
        queue,
        ["CVE-2024-1001", "CVE-2024-1003", "CVE-2024-1004"],
        "risk order"
    );
    let versions: BTreeMap<String, Value> = h
        .statements(&a, "")
        .await
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s["version"].clone()))
        .collect();

    // stricter: a higher threshold and four eyes
    let strict = json!({"review_below": 0.8, "four_eyes": true, "rerun_after_days": 30});
    let r = h.put(&a, "/api/v1/review/settings", strict.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json, strict);
    assert_eq!(h.get(&a, "/api/v1/review/settings").await.json, strict);
    let queue = check(ReviewSettings::new(0.8, true).unwrap()).await;
    assert_eq!(
        queue,
        [
            "CVE-2024-1001",
            "CVE-2024-1003",
            "CVE-2024-1002",
            "CVE-2024-1004",
            "CVE-2024-1006"
        ]
    );
    let four = h.queue(&a, "reason=four_eyes").await;
    assert_eq!(ids(&four), ["CVE-2024-1002"]);
    assert_eq!(four[0]["review_reason"], "four_eyes");
    let by_id = h.queue(&a, "sort=vulnerability&limit=2&offset=1").await;
    assert_eq!(ids(&by_id), ["CVE-2024-1002", "CVE-2024-1003"]);
    // settings are not a change of a statement
    for s in h.statements(&a, "").await {
        assert_eq!(versions[s["id"].as_str().unwrap()], s["version"], "{s}");
    }
    // a new analysis is held to them too
    h.analyse(&a, &app("2")).await;
    let s = h.statement(&a, &app("2"), "CVE-2024-1002").await;
    assert_eq!(s["review_reason"], "four_eyes");
    assert_eq!(s["in_queue"], true);

    // laxer than the default: only what automation left open or affected
    let lax = json!({"review_below": 0.0, "four_eyes": false});
    let r = h.put(&a, "/api/v1/review/settings", lax).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["rerun_after_days"], Value::Null);
    let queue = h
        .queue(&a, &format!("image={}", digest_of(&app("1"))))
        .await;
    assert_eq!(ids(&queue), ["CVE-2024-1001", "CVE-2024-1004"]);

    // out of range: 422 naming the field, nothing changed
    for (body, field) in [
        (json!({"review_below": 1.5}), "review_below"),
        (json!({"review_below": -0.1}), "review_below"),
        (
            json!({"review_below": 0.5, "rerun_after_days": 0}),
            "rerun_after_days",
        ),
        (
            json!({"review_below": 0.5, "rerun_after_days": 3651}),
            "rerun_after_days",
        ),
        (
            json!({"review_below": 0.5, "rerun_after_days": -1}),
            "rerun_after_days",
        ),
        (json!({"four_eyes": true}), "review_below"),
        (json!({"review_below": "high"}), "review_below"),
        (json!({"review_below": 0.5, "strict": true}), "strict"),
    ] {
        let r = h.put(&a, "/api/v1/review/settings", body).await;
        assert_names(&r, field);
    }
    assert_eq!(
        h.get(&a, "/api/v1/review/settings").await.json,
        json!({"review_below": 0.0, "four_eyes": false, "rerun_after_days": null})
    );

    // an expired decision: back in the queue, still standing
    let s6 = h.statement(&a, &app("1"), "CVE-2024-1001").await;
    let id6 = s6["id"].as_str().unwrap().to_owned();
    let r = h
        .decide_ok(
            &a,
            &id6,
            json!({"action": "approve", "reason": "upgrade planned", "expires_in_days": 1}),
        )
        .await;
    let decision = r["decision"]["id"].as_str().unwrap().to_owned();
    let queue = h
        .queue(&a, &format!("image={}", digest_of(&app("1"))))
        .await;
    assert_eq!(ids(&queue), ["CVE-2024-1004"]);
    let backlog = h.get(&a, "/api/v1/dashboard").await.json["backlog"].clone();
    assert_eq!(
        h.raw(&format!(
            "UPDATE statements SET decision_expires_at = 1000 WHERE id = '{id6}'"
        ))
        .await,
        1
    );
    h.raw(&format!(
        "UPDATE review_decisions SET expires_at = 1000 WHERE id = '{decision}'"
    ))
    .await;
    let queue = h
        .queue(&a, &format!("image={}", digest_of(&app("1"))))
        .await;
    assert_eq!(ids(&queue), ["CVE-2024-1001", "CVE-2024-1004"]);
    assert_eq!(queue[0]["decision_id"], decision.as_str(), "still standing");
    assert_eq!(queue[0]["in_queue"], true);
    assert!(
        queue[0]["decision_expires_at"]
            .as_str()
            .unwrap()
            .starts_with("1970-01-01T00:00:01"),
        "{}",
        queue[0]
    );
    assert_eq!(
        h.get(&a, "/api/v1/dashboard").await.json["backlog"],
        backlog.as_i64().unwrap() + 1
    );
    assert_eq!(h.image(&a, &app("1")).await["unreviewed"], 2);
    // re-decided: out of the queue again
    h.decide_ok(
        &a,
        &id6,
        json!({"action": "approve", "reason": "still planned", "expires_in_days": 30}),
    )
    .await;
    let queue = h
        .queue(&a, &format!("image={}", digest_of(&app("1"))))
        .await;
    assert_eq!(ids(&queue), ["CVE-2024-1004"]);

    // the detail: evidence, notes, aliases, fix, no decision, no offer
    let s = h.statement(&a, &app("1"), "CVE-2024-1002").await;
    let id = s["id"].as_str().unwrap();
    let r = h.get(&a, &format!("/api/v1/statements/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let d = &r.json;
    assert_eq!(d["id"], id);
    assert_eq!(d["vulnerability_id"], "CVE-2024-1002");
    assert_eq!(d["aliases"], json!(["GHSA-2024-1002"]));
    assert_eq!(d["description"], "CVE-2024-1002 in libxml2");
    assert_eq!(d["fixed_versions"], json!(["2.9.14+fix1"]));
    assert_eq!(d["notes"], "libxml2 is never loaded");
    assert_eq!(
        d["evidence"],
        json!([{
            "provider": "elf-reachability",
            "source": "elf-graph",
            "observation": "no executable of the image loads libxml2.so.2",
            "subject": "/usr/lib/x86_64-linux-gnu/libxml2.so.2",
            "facts": [{"key": "executables", "value": "3"}],
        }])
    );
    assert_eq!(d["decisions"], json!([]));
    assert!(d["offered_decision"].is_null());
    let r = h.get(&a, "/api/v1/statements/stm_unknown").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert_eq!(r.json["code"], "not_found");
}

/// approve, override and revert: the response names the re-issued VEX
/// version; the document carries `version`, `last_updated` and the
/// reviewer in `status_notes`; the history lists every cause; old
/// versions stay; without a signing key there is no envelope (404).
async fn decisions_reissue_the_image_s_vex(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let alice = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    let bob = h.key(&alice.org, "bob@example.com").await;
    let job = h.analyse(&alice, &app("1")).await;
    let d = digest_of(&app("1"));
    let v1 = h.vex(&alice, &app("1")).await;
    assert_eq!(v1["version"], 1);
    assert!(v1["last_updated"].is_null(), "{v1}");
    assert_eq!(
        vex_statement(&v1, "CVE-2024-1003")["status"],
        "not_affected"
    );
    assert_eq!(h.image(&alice, &app("1")).await["vex_version"], 1);

    // approve (with an expiry) the low-confidence claim
    let s3 = h.statement(&alice, &app("1"), "CVE-2024-1003").await;
    let id3 = s3["id"].as_str().unwrap().to_owned();
    let before = Instant::now();
    let r = h
        .decide_ok(
            &alice,
            &id3,
            json!({"action": "approve", "reason": "zlib's inflate is not built", "expires_in_days": 90, "expected_version": 1}),
        )
        .await;
    let st = &r["statement"];
    assert_eq!(st["version"], 2);
    assert_eq!(st["status"], "not_affected");
    assert_eq!(st["in_queue"], false);
    assert_eq!(st["decision_id"], r["decision"]["id"]);
    assert!(st["decision_expires_at"].is_string(), "{r}");
    let dec = &r["decision"];
    assert_eq!(dec["action"], "approve");
    assert_eq!(dec["statement_id"], id3.as_str());
    assert_eq!(dec["status"], "not_affected");
    assert_eq!(dec["justification"], "vulnerable_code_not_present");
    assert_eq!(dec["author"], "alice@example.com");
    assert_eq!(dec["key_id"], alice.id.as_str());
    assert_eq!(dec["auto_status"], "not_affected");
    assert!(dec["evidence_fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(dec["superseded_at"].is_null());
    let expires = time::OffsetDateTime::parse(
        dec["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_days = (expires - time::OffsetDateTime::now_utc()).whole_days();
    assert!((89..=90).contains(&in_days), "{in_days}");
    assert_eq!(r["vex"]["version"], 2);
    assert_eq!(r["vex"]["cause"], "decision");
    assert_eq!(r["vex"]["author"], "alice@example.com");
    assert!(r["vex"]["job_id"].is_null());
    assert!(r["vex"]["envelope_digest"].is_null());

    let v2 = h.vex(&alice, &app("1")).await;
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["@id"], v1["@id"], "one document, versioned");
    assert_eq!(v2["timestamp"], v1["timestamp"], "the first issue");
    let updated = v2["last_updated"].as_str().unwrap();
    let updated =
        time::OffsetDateTime::parse(updated, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert!(
        (time::OffsetDateTime::now_utc() - updated).whole_seconds()
            < 60 + before.elapsed().as_secs() as i64,
        "{v2}"
    );
    let s = vex_statement(&v2, "CVE-2024-1003");
    assert_eq!(s["status"], "not_affected");
    assert_eq!(s["justification"], "vulnerable_code_not_present");
    let notes = s["status_notes"].as_str().unwrap();
    assert!(
        notes.contains("alice@example.com") && notes.contains("zlib's inflate is not built"),
        "{notes}"
    );
    assert!(
        vex_statement(&v2, "CVE-2024-1001")["status_notes"]
            .as_str()
            .is_none_or(|n| !n.contains("alice")),
        "{v2}"
    );

    // override: affected → not_affected with a justification
    let s1 = h.statement(&alice, &app("1"), "CVE-2024-1001").await;
    let id1 = s1["id"].as_str().unwrap().to_owned();
    let r = h
        .decide_ok(
            &bob,
            &id1,
            json!({"action": "override", "status": "not_affected", "justification": "vulnerable_code_cannot_be_controlled_by_adversary", "reason": "only trusted peers reach the TLS endpoint"}),
        )
        .await;
    assert_eq!(r["statement"]["status"], "not_affected");
    assert_eq!(
        r["statement"]["justification"],
        "vulnerable_code_cannot_be_controlled_by_adversary"
    );
    assert_eq!(r["statement"]["auto_status"], "affected");
    assert_eq!(r["statement"]["in_queue"], false);
    assert_eq!(r["decision"]["author"], "bob@example.com");
    assert_eq!(r["decision"]["auto_status"], "affected");
    assert_eq!(r["vex"]["version"], 3);
    let v3 = h.vex(&alice, &app("1")).await;
    assert_eq!(v3["version"], 3);
    let s = vex_statement(&v3, "CVE-2024-1001");
    assert_eq!(s["status"], "not_affected");
    assert_eq!(
        s["justification"],
        "vulnerable_code_cannot_be_controlled_by_adversary"
    );
    assert!(s["status_notes"]
        .as_str()
        .unwrap()
        .contains("bob@example.com"));
    assert!(s["action_statement"].is_null());

    // override: under_investigation → affected with an action statement
    let s4 = h.statement(&alice, &app("1"), "CVE-2024-1004").await;
    let id4 = s4["id"].as_str().unwrap().to_owned();
    let r = h
        .decide_ok(
            &bob,
            &id4,
            json!({"action": "override", "status": "affected", "action_statement": "upgrade curl to 8.5", "reason": "libcurl is called"}),
        )
        .await;
    assert_eq!(r["vex"]["version"], 4);
    let v4 = h.vex(&alice, &app("1")).await;
    assert_eq!(vex_statement(&v4, "CVE-2024-1004")["status"], "affected");
    assert_eq!(
        vex_statement(&v4, "CVE-2024-1004")["action_statement"],
        "upgrade curl to 8.5"
    );

    // revert: automation speaks again
    let r = h
        .decide_ok(
            &alice,
            &id1,
            json!({"action": "revert", "reason": "the endpoint is public after all", "expected_version": 2}),
        )
        .await;
    assert_eq!(r["statement"]["status"], "affected");
    assert!(r["statement"]["decision_id"].is_null(), "{r}");
    assert_eq!(r["statement"]["in_queue"], true, "back in the queue");
    assert_eq!(r["statement"]["version"], 3);
    assert_eq!(r["decision"]["action"], "revert");
    assert!(r["decision"]["status"].is_null());
    assert_eq!(r["vex"]["version"], 5);
    let v5 = h.vex(&alice, &app("1")).await;
    let s = vex_statement(&v5, "CVE-2024-1001");
    assert_eq!(s["status"], "affected");
    assert_eq!(s["action_statement"], "upgrade openssl");
    assert!(
        s["status_notes"]
            .as_str()
            .is_none_or(|n| !n.contains("bob")),
        "{s}"
    );
    // the statement's history: the override superseded, the revert in force
    let r = h.get(&alice, &format!("/api/v1/statements/{id1}")).await;
    let decisions = r.json["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 2, "{r:?}");
    assert_eq!(decisions[0]["action"], "override");
    assert!(decisions[0]["superseded_at"].is_string());
    assert_eq!(decisions[1]["action"], "revert");
    assert!(decisions[1]["superseded_at"].is_null());

    let queue = h.queue(&alice, "").await;
    assert_eq!(ids(&queue), ["CVE-2024-1001"]);
    let img = h.image(&alice, &app("1")).await;
    assert_eq!(img["vex_version"], 5);
    assert_eq!(img["unreviewed"], 1);
    assert_eq!(img["not_affected"], 3);
    assert_eq!(img["affected"], 3);
    assert_eq!(img["under_investigation"], 0);

    // the history, newest first, with every cause
    let r = h
        .get(&alice, &format!("/api/v1/images/{d}/vex/history"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["image_digest"], d.as_str());
    let versions = r.json["versions"].as_array().unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [5, 4, 3, 2, 1]
    );
    assert_eq!(
        versions
            .iter()
            .map(|v| v["cause"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["decision", "decision", "decision", "decision", "analysis"]
    );
    assert_eq!(versions[4]["job_id"], job.as_str());
    assert_eq!(versions[4]["author"], "vexxy");
    assert_eq!(versions[0]["author"], "alice@example.com");
    assert_eq!(versions[1]["author"], "bob@example.com");
    assert!(versions.iter().all(|v| v["envelope_digest"].is_null()));

    // every version stays, as issued
    for (v, want) in [(1, &v1), (2, &v2), (3, &v3), (5, &v5)] {
        let r = h.get(&alice, &format!("/api/v1/images/{d}/vex/{v}")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.header("x-vex-version"), v.to_string());
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(&r.json, want);
        assert_eq!(
            versions[5 - v]["document_digest"],
            format!("sha256:{}", hex::encode(Sha256::digest(&r.bytes)))
        );
    }
    for uri in [
        format!("/api/v1/images/{d}/vex/6"),
        format!("/api/v1/images/{d}/vex/0"),
        format!("/api/v1/images/{d}/vex/latest"),
        format!("/api/v1/images/{}/vex", digest_of("nowhere:1")),
        format!("/api/v1/images/{}/vex/history", digest_of("nowhere:1")),
        format!("/api/v1/images/{}/vex/1", digest_of("nowhere:1")),
        "/api/v1/images/sha256:abc/vex".to_owned(),
    ] {
        let r = h.get(&alice, &uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}: {r:?}");
    }
    // no signing key: no envelope
    let r = h
        .get(&alice, &format!("/api/v1/images/{d}/vex/2/envelope"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert!(
        r.json["message"].as_str().unwrap().contains("signing key"),
        "{r:?}"
    );
}

/// What OpenVEX or the API forbids is 422 naming the field, and nothing is
/// written: the statement's version, its decisions, the image's VEX
/// version and the audit log stay as they were. An unknown statement is
/// 404.
async fn bad_decisions_name_the_field_and_write_nothing(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    h.analyse(&a, &app("1")).await;
    let s = h.statement(&a, &app("1"), "CVE-2024-1002").await;
    let id = s["id"].as_str().unwrap().to_owned();
    let long = "x".repeat(4097);
    let cases = [
        (json!({"action": "approve"}), "reason"),
        (json!({"action": "approve", "reason": "   "}), "reason"),
        (json!({"action": "approve", "reason": long}), "reason"),
        (
            json!({"action": "override", "status": "not_affected", "reason": "r"}),
            "justification",
        ),
        (
            json!({"action": "override", "status": "not_affected", "justification": "because", "reason": "r"}),
            "justification",
        ),
        (
            json!({"action": "override", "status": "not_affected", "justification": "component_not_present", "action_statement": "x", "reason": "r"}),
            "action_statement",
        ),
        (
            json!({"action": "override", "status": "affected", "justification": "component_not_present", "action_statement": "upgrade", "reason": "r"}),
            "justification",
        ),
        (
            json!({"action": "override", "status": "affected", "impact_statement": "none", "action_statement": "upgrade", "reason": "r"}),
            "impact_statement",
        ),
        (
            json!({"action": "override", "status": "affected", "reason": "r"}),
            "action_statement",
        ),
        (
            json!({"action": "override", "status": "fixed", "justification": "component_not_present", "reason": "r"}),
            "justification",
        ),
        (
            json!({"action": "override", "status": "wontfix", "reason": "r"}),
            "status",
        ),
        (json!({"action": "override", "reason": "r"}), "status"),
        (
            json!({"action": "approve", "status": "affected", "reason": "r"}),
            "status",
        ),
        (
            json!({"action": "revert", "justification": "component_not_present", "reason": "r"}),
            "justification",
        ),
        (
            json!({"action": "accept_offer", "action_statement": "x", "reason": "r"}),
            "action_statement",
        ),
        (json!({"action": "revert", "reason": "r"}), "action"),
        (json!({"action": "accept_offer", "reason": "r"}), "action"),
        (json!({"action": "veto", "reason": "r"}), "action"),
        (json!({"reason": "r"}), "action"),
        (
            json!({"action": "approve", "reason": "r", "expires_in_days": 0}),
            "expires_in_days",
        ),
        (
            json!({"action": "approve", "reason": "r", "expires_in_days": 3651}),
            "expires_in_days",
        ),
        (
            json!({"action": "revert", "reason": "r", "expires_in_days": 5}),
            "expires_in_days",
        ),
        (
            json!({"action": "approve", "reason": "r", "expected_version": 0}),
            "expected_version",
        ),
        (
            json!({"action": "approve", "reason": "r", "expected_version": "one"}),
            "expected_version",
        ),
        (
            json!({"action": "approve", "reason": "r", "reviewer": "mallory"}),
            "reviewer",
        ),
    ];
    for (body, field) in cases {
        let r = h.decide(&a, &id, body.clone()).await;
        assert_names(&r, field);
    }
    let r = send(
        h.app.clone(),
        "POST",
        &format!("/api/v1/statements/{id}/decisions"),
        Some(&a.secret),
        Some(b"{not json".to_vec()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    // nothing written
    let after = h.statement(&a, &app("1"), "CVE-2024-1002").await;
    assert_eq!(after, s, "the statement is as it was");
    let r = h.get(&a, &format!("/api/v1/statements/{id}")).await;
    assert_eq!(r.json["decisions"], json!([]));
    assert_eq!(h.image(&a, &app("1")).await["vex_version"], 1);
    let r = h
        .get(
            &a,
            &format!("/api/v1/images/{}/vex/history", digest_of(&app("1"))),
        )
        .await;
    assert_eq!(r.json["versions"].as_array().unwrap().len(), 1);
    let audit = h.get(&a, "/api/v1/audit").await;
    assert!(
        audit.json["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| !e["action"].as_str().unwrap().starts_with("review.")),
        "{audit:?}"
    );
    // an unknown statement
    let r = h
        .decide(
            &a,
            "stm_00000000000000000000000000000000",
            json!({"action": "approve", "reason": "r"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert_eq!(r.json["code"], "not_found");
    let r = send(
        h.app.clone(),
        "POST",
        &format!("/api/v1/statements/{id}/decisions"),
        None,
        Some(
            json!({"action": "approve", "reason": "r"})
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// Two reviewers deciding the same statement at the same version, at the
/// same time: exactly one wins (200), the other is 409 version_conflict,
/// the history gains exactly one entry and the image one version. A stale
/// version is 409 with nothing written; so is a stale assignment.
async fn concurrent_decisions_lose_no_update(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let alice = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    let bob = h.key(&alice.org, "bob@example.com").await;
    h.analyse(&alice, &app("1")).await;
    let s = h.statement(&alice, &app("1"), "CVE-2024-1002").await;
    let id = s["id"].as_str().unwrap().to_owned();
    let uri = format!("/api/v1/statements/{id}/decisions");
    for round in 0..6_i64 {
        let version = h.statement(&alice, &app("1"), "CVE-2024-1002").await["version"]
            .as_i64()
            .unwrap();
        let vex_before = h.image(&alice, &app("1")).await["vex_version"]
            .as_i64()
            .unwrap();
        let one = json!({"action": "approve", "reason": format!("alice, round {round}"), "expected_version": version});
        let two = json!({"action": "override", "status": "affected", "action_statement": "upgrade libxml2", "reason": format!("bob, round {round}"), "expected_version": version});
        let (r1, r2) = tokio::join!(
            spawn_send(&h.app, "POST", uri.clone(), &alice, one),
            spawn_send(&h.app, "POST", uri.clone(), &bob, two),
        );
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        let mut codes = [r1.status, r2.status];
        codes.sort();
        assert_eq!(
            codes,
            [StatusCode::OK, StatusCode::CONFLICT],
            "round {round}: {r1:?} / {r2:?}"
        );
        let (won, lost) = if r1.status == StatusCode::OK {
            (&r1, &r2)
        } else {
            (&r2, &r1)
        };
        assert_eq!(lost.json["code"], "version_conflict", "{lost:?}");
        assert_eq!(won.json["statement"]["version"], version + 1);
        let r = h.get(&alice, &format!("/api/v1/statements/{id}")).await;
        let decisions = r.json["decisions"].as_array().unwrap();
        assert_eq!(decisions.len(), round as usize + 1, "round {round}: {r:?}");
        let last = decisions.last().unwrap();
        assert_eq!(last["id"], won.json["decision"]["id"]);
        assert!(last["superseded_at"].is_null());
        assert_eq!(
            decisions
                .iter()
                .filter(|d| d["superseded_at"].is_null())
                .count(),
            1
        );
        let now = h.statement(&alice, &app("1"), "CVE-2024-1002").await;
        assert_eq!(now["version"], version + 1);
        assert_eq!(now["decision_id"], won.json["decision"]["id"]);
        assert_eq!(
            now["status"],
            if won.json["decision"]["action"] == "approve" {
                "not_affected"
            } else {
                "affected"
            }
        );
        assert_eq!(
            h.image(&alice, &app("1")).await["vex_version"],
            vex_before + 1
        );
    }
    // a stale version: 409, nothing written
    let before = h.statement(&alice, &app("1"), "CVE-2024-1002").await;
    let version = before["version"].as_i64().unwrap();
    let r = h
        .decide(
            &alice,
            &id,
            json!({"action": "revert", "reason": "stale", "expected_version": version - 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert_eq!(r.json["code"], "version_conflict");
    assert_eq!(
        h.statement(&alice, &app("1"), "CVE-2024-1002").await,
        before
    );
    let r = h.get(&alice, &format!("/api/v1/statements/{id}")).await;
    assert_eq!(r.json["decisions"].as_array().unwrap().len(), 6);
    let r = h
        .put(
            &alice,
            &format!("/api/v1/statements/{id}/assignee"),
            json!({"assignee": "carol", "expected_version": version + 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert_eq!(r.json["code"], "version_conflict");
    // two assignments at the same version: one wins
    let assign = |who: &str, key: &Key| {
        spawn_send(
            &h.app,
            "PUT",
            format!("/api/v1/statements/{id}/assignee"),
            key,
            json!({"assignee": who, "expected_version": version}),
        )
    };
    let (r1, r2) = tokio::join!(assign("carol", &alice), assign("dave", &bob));
    let mut codes = [r1.unwrap().status, r2.unwrap().status];
    codes.sort();
    assert_eq!(codes, [StatusCode::OK, StatusCode::CONFLICT]);
    assert_eq!(
        h.statement(&alice, &app("1"), "CVE-2024-1002").await["version"],
        version + 1
    );
}

/// One decision on every statement a filter selects: the VEX re-issued
/// once per image; all or nothing; at most 1000 statements; a revert of
/// nothing issues nothing.
async fn bulk_decisions_are_all_or_nothing(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    h.analyse(&a, &app("1")).await;
    h.analyse(&a, &app("2")).await;
    let d1 = digest_of(&app("1"));

    let r = h
        .post(
            &a,
            "/api/v1/review/decisions",
            json!({"filter": {"status": "affected", "image": d1}, "action": "approve", "reason": "known, scheduled", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["decided"], 2);
    let mut decided: Vec<String> = r.json["statement_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    decided.sort();
    let mut want: Vec<String> = Vec::new();
    for v in ["CVE-2024-1001", "CVE-2024-1005"] {
        want.push(
            h.statement(&a, &app("1"), v).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    want.sort();
    assert_eq!(decided, want);
    let vex = r.json["vex"].as_array().unwrap();
    assert_eq!(vex.len(), 1, "once per image: {r:?}");
    assert_eq!(vex[0]["image_digest"], d1.as_str());
    assert_eq!(vex[0]["version"], 2);
    assert_eq!(h.image(&a, &app("2")).await["vex_version"], 1, "untouched");
    for v in ["CVE-2024-1001", "CVE-2024-1005"] {
        let s = h.statement(&a, &app("1"), v).await;
        assert!(s["decision_id"].is_string(), "{s}");
        assert!(s["decision_expires_at"].is_string(), "{s}");
        assert_eq!(s["status"], "affected");
        assert_eq!(s["in_queue"], false);
    }
    let doc = h.vex(&a, &app("1")).await;
    assert!(vex_statement(&doc, "CVE-2024-1001")["status_notes"]
        .as_str()
        .unwrap()
        .contains("known, scheduled"));

    // across images: one version each
    let r = h
        .post(
            &a,
            "/api/v1/review/decisions",
            json!({"filter": {"vulnerability": "CVE-2024-1004"}, "action": "override", "status": "affected", "action_statement": "upgrade curl", "reason": "curl is used"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["decided"], 2);
    let mut versions: Vec<(String, i64)> = r.json["vex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["image_digest"].as_str().unwrap().to_owned(),
                v["version"].as_i64().unwrap(),
            )
        })
        .collect();
    versions.sort();
    let mut want = vec![(d1.clone(), 3), (digest_of(&app("2")), 2)];
    want.sort();
    assert_eq!(versions, want);

    // bad input: 422 naming the field, nothing written
    let before = h.statements(&a, "sort=vulnerability").await;
    for (body, field) in [
        (
            json!({"filter": {}, "action": "override", "status": "not_affected", "reason": "r"}),
            "justification",
        ),
        (json!({"filter": {}, "action": "approve"}), "reason"),
        (
            json!({"filter": {}, "action": "accept_offer", "reason": "r"}),
            "action",
        ),
        (
            json!({"filter": {"sort": "newest"}, "action": "approve", "reason": "r"}),
            "sort",
        ),
        (
            json!({"filter": {"colour": "blue"}, "action": "approve", "reason": "r"}),
            "colour",
        ),
        (json!({"action": "approve", "reason": "r"}), "filter"),
        (
            json!({"filter": {}, "action": "approve", "reason": "r", "expected_version": 1}),
            "expected_version",
        ),
    ] {
        let r = h.post(&a, "/api/v1/review/decisions", body).await;
        assert_names(&r, field);
    }
    assert_eq!(h.statements(&a, "sort=vulnerability").await, before);

    // a revert of nothing decides and issues nothing
    let r = h
        .post(
            &a,
            "/api/v1/review/decisions",
            json!({"filter": {"vulnerability": "CVE-2024-1006"}, "action": "revert", "reason": "nothing to revert"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["decided"], 0);
    assert_eq!(r.json["vex"], json!([]), "{r:?}");
    assert_eq!(h.image(&a, &app("1")).await["vex_version"], 3);
    // reverts of the two approvals, one filter each (the overrides stay);
    // the review reason of a decided statement is still its own
    let r = h
        .post(
            &a,
            "/api/v1/review/decisions",
            json!({"filter": {"image": d1, "reason": "affected_no_fix"}, "action": "revert", "reason": "re-review"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["decided"], 1, "{r:?}");
    assert_eq!(r.json["vex"][0]["version"], 4);
    let s1 = h.statement(&a, &app("1"), "CVE-2024-1001").await;
    assert!(s1["decision_id"].is_null(), "{s1}");
    assert_eq!(s1["in_queue"], true);
    let r = h
        .post(
            &a,
            "/api/v1/review/decisions",
            json!({"filter": {"image": d1, "status": "affected", "severity": "medium"}, "action": "revert", "reason": "re-review"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["decided"], 1);
    assert_eq!(r.json["vex"][0]["version"], 5);
    assert!(h.statement(&a, &app("1"), "CVE-2024-1005").await["decision_id"].is_null());
    assert!(h.statement(&a, &app("1"), "CVE-2024-1004").await["decision_id"].is_string());

    // all or nothing: one stale statement refuses the whole batch
    let s2 = h.statement(&a, &app("2"), "CVE-2024-1002").await;
    let s3 = h.statement(&a, &app("2"), "CVE-2024-1003").await;
    let new = NewDecision {
        action: "approve".into(),
        status: Some("not_affected".into()),
        justification: Some("vulnerable_code_not_present".into()),
        impact_statement: None,
        action_statement: None,
        reason: "batch".into(),
        author: "alice@example.com".into(),
        key_id: a.id.clone(),
        expires_at: None,
    };
    let effect = Effect {
        decision: true,
        status: "not_affected".into(),
        justification: Some("vulnerable_code_not_present".into()),
    };
    let items = vec![
        (
            s2["id"].as_str().unwrap().to_owned(),
            s2["version"].as_i64(),
            new.clone(),
            effect.clone(),
        ),
        (
            s3["id"].as_str().unwrap().to_owned(),
            Some(s3["version"].as_i64().unwrap() + 1),
            new,
            effect,
        ),
    ];
    let e = h
        .svc
        .store
        .decide_many(&a.org, &items, vexxy_store::now_ms())
        .await
        .unwrap_err();
    assert!(matches!(e, vexxy_store::StoreError::Conflict(_)), "{e}");
    assert_eq!(h.statement(&a, &app("2"), "CVE-2024-1002").await, s2);
    assert_eq!(h.statement(&a, &app("2"), "CVE-2024-1003").await, s3);

    // the cap: a filter selecting more than 1000 statements is refused
    let many = format!("{APP}-many:1");
    h.analyse(&a, &many).await;
    let dm = digest_of(&many);
    let page = h
        .list(&a, "/api/v1/statements", &format!("image={dm}&limit=1"))
        .await;
    assert_eq!(page["total"], 1001);
    let r = h
        .post(
            &a,
            "/api/v1/review/decisions",
            json!({"filter": {"image": dm}, "action": "approve", "reason": "all of them"}),
        )
        .await;
    assert_names(&r, "filter");
    assert!(
        r.json["message"].as_str().unwrap().contains("1000"),
        "{r:?}"
    );
    let decided = h
        .list(&a, "/api/v1/review/queue", &format!("image={dm}&limit=1"))
        .await;
    assert_eq!(decided["total"], 1001, "nothing decided");
    assert_eq!(h.image(&a, &many).await["vex_version"], 1);
    // 1000 of them are fine
    let r = h
        .post(
            &a,
            "/api/v1/review/decisions",
            json!({"filter": {"image": dm, "vulnerability": "CVE-2025-00007"}, "action": "approve", "reason": "one of them"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["decided"], 1);
}

/// PUT assignee assigns (and unassigns) at a version, the listings filter
/// by it, bad names are 422, unknown statements 404; each assignment is in
/// the audit log under the key that made it.
async fn statements_are_assigned(url: Option<String>, db: Option<vexxy_testkit::pg::TestDatabase>) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    h.analyse(&a, &app("1")).await;
    let s = h.statement(&a, &app("1"), "CVE-2024-1003").await;
    let id = s["id"].as_str().unwrap().to_owned();
    let uri = format!("/api/v1/statements/{id}/assignee");
    let r = h
        .put(
            &a,
            &uri,
            json!({"assignee": " carol ", "expected_version": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["assignee"], "carol");
    assert_eq!(r.json["version"], 2);
    assert_eq!(r.json["id"], id.as_str());
    assert_eq!(
        ids(&h.statements(&a, "assignee=carol").await),
        ["CVE-2024-1003"]
    );
    assert_eq!(ids(&h.queue(&a, "assignee=carol").await), ["CVE-2024-1003"]);
    assert!(h.statements(&a, "assignee=Carol").await.is_empty());
    // stale
    let r = h
        .put(&a, &uri, json!({"assignee": "dave", "expected_version": 1}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert_eq!(r.json["code"], "version_conflict");
    // bad names
    for body in [
        json!({"assignee": ""}),
        json!({"assignee": "   "}),
        json!({"assignee": "car\u{7}ol"}),
        json!({"assignee": "c".repeat(257)}),
        json!({"assignee": "c".repeat(230)}),
        json!({"assignee": 7}),
        json!({"assignee": "carol", "priority": 1}),
    ] {
        let r = h.put(&a, &uri, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {r:?}");
        let m = r.json["message"].as_str().unwrap();
        assert!(m.contains("assignee") || m.contains("priority"), "{r:?}");
        assert!(!m.contains("cccccccccc"), "the value is not echoed: {m}");
    }
    let r = h.put(&a, &uri, json!({"assignee": "c".repeat(230)})).await;
    assert!(
        r.json["message"].as_str().unwrap().contains("200"),
        "the limit is named: {r:?}"
    );
    let r = h
        .put(
            &a,
            &uri,
            json!({"assignee": format!(" {} ", "d".repeat(200))}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "200 characters are fine: {r:?}");
    // unassign
    let r = h.put(&a, &uri, json!({"assignee": null})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(r.json["assignee"].is_null());
    assert_eq!(r.json["version"], 4);
    assert!(h.statements(&a, "assignee=carol").await.is_empty());
    // unknown
    let r = h
        .put(
            &a,
            "/api/v1/statements/stm_unknown/assignee",
            json!({"assignee": "carol"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    // the audit log names the key
    let audit = h.get(&a, "/api/v1/audit").await;
    let assigns: Vec<&Value> = audit.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "review.assign")
        .collect();
    assert_eq!(assigns.len(), 3, "{audit:?}");
    assert_eq!(assigns[2]["detail"]["assignee"], "carol");
    assert_eq!(assigns[0]["detail"]["assignee"], Value::Null);
    assert_eq!(assigns[0]["detail"]["statement"], id.as_str());
    for e in assigns {
        assert_eq!(e["key_id"], a.id.as_str(), "{e}");
    }
}

/// The image listing (newest first, by repository, searched, paged), an
/// image's detail with its counts, and 404 for unknown or malformed
/// digests.
async fn images_are_listed_searched_and_shown(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    let job1 = h.analyse(&a, &app("1")).await;
    h.analyse(&a, &app("2")).await;
    let web = format!("{WEB}:1");
    h.analyse(&a, &web).await;
    let all = h.get(&a, "/api/v1/images").await;
    assert_eq!(all.status, StatusCode::OK, "{all:?}");
    assert_eq!(all.json["total"], 3);
    assert_eq!(all.json["limit"], 100);
    let digests: Vec<&str> = all.json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        digests,
        [digest_of(&web), digest_of(&app("2")), digest_of(&app("1"))],
        "most recently analysed first"
    );
    let r = h.get(&a, &format!("/api/v1/images?repository={APP}")).await;
    assert_eq!(r.json["total"], 2);
    let r = h.get(&a, "/api/v1/images?search=other/we").await;
    assert_eq!(r.json["total"], 1);
    assert_eq!(r.json["images"][0]["repository"], WEB);
    let r = h.get(&a, "/api/v1/images?search=app:2").await;
    assert_eq!(r.json["total"], 1, "the reference is searched: {r:?}");
    let hex = &digest_of(&app("1"))[7..19];
    let r = h.get(&a, &format!("/api/v1/images?search={hex}")).await;
    assert_eq!(r.json["total"], 1, "the digest is searched: {r:?}");
    let r = h.get(&a, "/api/v1/images?search=%25").await;
    assert_eq!(r.json["total"], 0, "LIKE is escaped: {r:?}");
    let r = h.get(&a, "/api/v1/images?limit=1&offset=1").await;
    assert_eq!(r.json["total"], 3);
    assert_eq!(r.json["offset"], 1);
    assert_eq!(r.json["images"].as_array().unwrap().len(), 1);
    assert_eq!(r.json["images"][0]["digest"], digest_of(&app("2")));
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("tag=1", "tag"),
    ] {
        let r = h.get(&a, &format!("/api/v1/images?{query}")).await;
        assert_names(&r, field);
    }

    let i = h.image(&a, &app("1")).await;
    assert_eq!(i["digest"], digest_of(&app("1")));
    assert_eq!(i["repository"], APP);
    assert_eq!(i["reference"], app("1"));
    assert_eq!(i["last_analysis_id"], job1.as_str());
    assert_eq!(i["last_run_id"], job1.as_str());
    assert!(i["last_run_at"].is_string());
    assert_eq!(i["first_seen_at"], i["last_analysed_at"]);
    assert_eq!(i["vex_version"], 1);
    assert_eq!(i["findings"], 6);
    assert_eq!(i["not_affected"], 3);
    assert_eq!(i["affected"], 2);
    assert_eq!(i["under_investigation"], 1);
    assert_eq!(i["unreviewed"], 3);
    let listed = all.json["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["digest"] == i["digest"])
        .unwrap()
        .clone();
    assert_eq!(listed, i);
    for d in [
        digest_of("nowhere:1"),
        digest_of(&app("1"))
            .to_uppercase()
            .replace("SHA256", "sha256"),
        "sha256:abc".to_owned(),
        "latest".to_owned(),
    ] {
        let r = h.get(&a, &format!("/api/v1/images/{d}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{d}: {r:?}");
    }
}

/// The dashboard's numbers and the compliance view (JSON and CSV) on a
/// known data set.
async fn dashboard_and_compliance_count_a_known_data_set(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    let r = h.get(&a, "/api/v1/dashboard").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["images_seen"], 0);
    assert_eq!(r.json["vex_coverage"], 0.0);
    assert_eq!(r.json["noise_reduction"], 0.0);
    assert!(r.json["backlog_oldest_age_secs"].is_null());
    assert!(r.json["mean_time_to_decision_secs"].is_null());

    h.analyse(&a, &app("1")).await;
    let r = h.get(&a, "/api/v1/dashboard").await;
    let d = &r.json;
    assert_eq!(d["images_seen"], 1);
    assert_eq!(d["images_analysed"], 1);
    assert_eq!(d["images_with_vex"], 1);
    assert_eq!(d["vex_coverage"], 1.0);
    assert_eq!(d["findings"], 6);
    assert_eq!(
        d["by_status"],
        json!({"affected": 2, "not_affected": 3, "under_investigation": 1})
    );
    assert_eq!(d["noise_reduction"], 0.5);
    assert_eq!(d["backlog"], 3);
    assert!(d["backlog_oldest_age_secs"].as_i64().unwrap() < 60);
    assert_eq!(d["decisions"], 0);
    assert!(d["mean_time_to_decision_secs"].is_null());
    let weekly = d["weekly"].as_array().unwrap();
    assert_eq!(weekly.len(), 12);
    assert_eq!(
        weekly[11],
        json!({"week_start": weekly[11]["week_start"], "analyses": 1, "new_findings": 6, "decisions": 0})
    );
    let monday = time::OffsetDateTime::parse(
        weekly[11]["week_start"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(monday.weekday(), time::Weekday::Monday);
    assert_eq!((monday.hour(), monday.minute()), (0, 0));
    assert!(weekly[..11]
        .iter()
        .all(|w| w["analyses"] == 0 && w["new_findings"] == 0));

    // two decisions: one approval, one override to not_affected
    let s3 = h.statement(&a, &app("1"), "CVE-2024-1003").await;
    h.decide_ok(
        &a,
        s3["id"].as_str().unwrap(),
        json!({"action": "approve", "reason": "checked"}),
    )
    .await;
    let s4 = h.statement(&a, &app("1"), "CVE-2024-1004").await;
    h.decide_ok(
        &a,
        s4["id"].as_str().unwrap(),
        json!({"action": "override", "status": "not_affected", "impact_statement": "curl is only used at build time", "reason": "checked"}),
    )
    .await;
    let d = h.get(&a, "/api/v1/dashboard").await.json;
    assert_eq!(d["by_status"], json!({"affected": 2, "not_affected": 4}));
    assert_eq!(d["noise_reduction"], 4.0 / 6.0);
    assert_eq!(d["backlog"], 1);
    assert_eq!(d["decisions"], 2);
    let mttd = d["mean_time_to_decision_secs"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&mttd), "{d}");
    assert_eq!(d["weekly"][11]["decisions"], 2);
    assert_eq!(d["images_with_vex"], 1);

    // a second digest of the repository, and another repository
    h.analyse(&a, &app("2")).await;
    let web = format!("{WEB}:1");
    h.analyse(&a, &web).await;
    let d = h.get(&a, "/api/v1/dashboard").await.json;
    assert_eq!(d["images_seen"], 3);
    assert_eq!(d["images_with_vex"], 3);
    assert_eq!(d["findings"], 18);
    assert_eq!(d["weekly"][11]["analyses"], 3);
    assert_eq!(d["weekly"][11]["new_findings"], 18);
    // app:2 has 1001, 1003, 1004 in the queue; web:1 as app:1 had
    assert_eq!(d["backlog"], 1 + 3 + 3);

    let r = h.get(&a, "/api/v1/compliance").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let rows = r.json["repositories"].as_array().unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r["repository"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [WEB, APP],
        "by repository"
    );
    assert_eq!(
        rows[1],
        json!({
            "repository": APP,
            "image_digest": digest_of(&app("2")),
            "images": 2,
            "total": 6,
            "not_affected": 3,
            "needs_fix": 2,
            "under_investigation": 1,
            "unreviewed": 3,
        }),
        "the repository's most recently analysed image"
    );
    assert_eq!(rows[0]["images"], 1);
    assert_eq!(rows[0]["total"], 6);
    // CSV
    let r = h.get(&a, "/api/v1/compliance?format=csv").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.header("content-type"), "text/csv; charset=utf-8");
    assert!(r.header("content-disposition").contains("compliance.csv"));
    let text = String::from_utf8(r.bytes.clone()).unwrap();
    assert_eq!(
        text,
        format!(
            "repository,image_digest,images,total,not_affected,needs_fix,under_investigation,unreviewed\r\n\
             {WEB},{},1,6,3,2,1,3\r\n\
             {APP},{},2,6,3,2,1,3\r\n",
            digest_of(&web),
            digest_of(&app("2"))
        )
    );
    let json = h.get(&a, "/api/v1/compliance?format=json").await;
    assert_eq!(json.json["repositories"].as_array().unwrap().len(), 2);
    for (query, field) in [("format=xlsx", "format"), ("fmt=csv", "fmt")] {
        let r = h.get(&a, &format!("/api/v1/compliance?{query}")).await;
        assert_names(&r, field);
    }

    // a product name a spreadsheet would run, with a comma and quotes
    h.run_job(&a, json!({"image_ref": "formula/x:1"})).await;
    let r = h.get(&a, "/api/v1/compliance?format=csv").await;
    let text = String::from_utf8(r.bytes.clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("HYPERLINK"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        line,
        format!(
            "\"'=HYPERLINK(\"\"http://evil.example\"\"),\"\"x\"\"\",{},1,6,3,2,1,3",
            digest_of("formula/x:1")
        )
    );
    assert_eq!(text.lines().count(), 4, "{text}");
}

/// The CSV writer on its own: every formula lead-in is defused and every
/// cell RFC 4180-quoted where needed.
#[test]
fn compliance_csv_defuses_formulas_and_quotes() {
    use vexxy_server::api_review::ComplianceRow;
    let row = |repository: &str| ComplianceRow {
        repository: repository.to_owned(),
        image_digest: "sha256:00".to_owned(),
        images: 1,
        total: 2,
        not_affected: 1,
        needs_fix: 1,
        under_investigation: 0,
        unreviewed: 1,
    };
    let cases = [
        ("registry.example/app", "registry.example/app"),
        ("=1+2", "'=1+2"),
        ("+cmd", "'+cmd"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "\"'\rx\""),
        ("a,b", "\"a,b\""),
        ("say \"hi\"", "\"say \"\"hi\"\"\""),
        ("two\nlines", "\"two\nlines\""),
        ("=a,\"b\"", "\"'=a,\"\"b\"\"\""),
        ("a=b", "a=b"),
    ];
    let rows: Vec<ComplianceRow> = cases.iter().map(|(r, _)| row(r)).collect();
    let csv = vexxy_server::routes_review::compliance_csv(&rows);
    let mut expected = String::from(
        "repository,image_digest,images,total,not_affected,needs_fix,under_investigation,unreviewed\r\n",
    );
    for (_, cell) in cases {
        expected.push_str(&format!("{cell},sha256:00,1,2,1,1,0,1\r\n"));
    }
    assert_eq!(csv, expected);
}

/// Two digests of one repository compared through their current VEX:
/// added, removed, changed (and a decision shows up as a change).
async fn two_images_of_a_repository_are_compared(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    h.analyse(&a, &app("1")).await;
    h.analyse(&a, &app("2")).await;
    let (d1, d2) = (digest_of(&app("1")), digest_of(&app("2")));
    let r = h.get(&a, &format!("/api/v1/compare?a={d1}&b={d2}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let vulns = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|e| e["vulnerability"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(vulns(&r.json["added"]), ["CVE-2024-1008"], "{r:?}");
    assert_eq!(r.json["added"][0]["status"], "affected");
    assert_eq!(
        r.json["added"][0]["package"], "pkg:deb/debian/libpng16",
        "{r:?}"
    );
    assert_eq!(vulns(&r.json["removed"]), ["CVE-2024-1006"]);
    assert_eq!(vulns(&r.json["changed"]), ["CVE-2024-1005"]);
    let c = &r.json["changed"][0];
    assert_eq!(c["old"]["status"], "affected");
    assert_eq!(c["new"]["status"], "not_affected");
    assert_eq!(c["status_changed"], true);
    assert_eq!(c["regression"], false);
    assert!(
        r.json["old"]["products"].to_string().contains(&d1[7..]),
        "{r:?}"
    );
    assert!(
        r.json["new"]["products"].to_string().contains(&d2[7..]),
        "{r:?}"
    );
    // the other way round
    let r = h.get(&a, &format!("/api/v1/compare?a={d2}&b={d1}")).await;
    assert_eq!(vulns(&r.json["added"]), ["CVE-2024-1006"]);
    assert_eq!(vulns(&r.json["removed"]), ["CVE-2024-1008"]);
    assert_eq!(r.json["changed"][0]["regression"], true);
    // the same image: nothing
    let r = h.get(&a, &format!("/api/v1/compare?a={d1}&b={d1}")).await;
    assert_eq!(r.json["added"], json!([]));
    assert_eq!(r.json["removed"], json!([]));
    assert_eq!(r.json["changed"], json!([]));
    // a decision on the new image changes its current VEX
    let s = h.statement(&a, &app("2"), "CVE-2024-1001").await;
    h.decide_ok(
        &a,
        s["id"].as_str().unwrap(),
        json!({"action": "override", "status": "not_affected", "justification": "inline_mitigations_already_exist", "reason": "FIPS provider only"}),
    )
    .await;
    let r = h.get(&a, &format!("/api/v1/compare?a={d1}&b={d2}")).await;
    assert_eq!(
        vulns(&r.json["changed"]),
        ["CVE-2024-1001", "CVE-2024-1005"]
    );
    assert_eq!(
        r.json["changed"][0]["new"]["justification"],
        "inline_mitigations_already_exist"
    );
    // unknown, malformed, missing
    let unknown = digest_of("nowhere:1");
    for query in [
        format!("a={d1}&b={unknown}"),
        format!("a={unknown}&b={d2}"),
        format!("a={d1}&b=sha256:abc"),
    ] {
        let r = h.get(&a, &format!("/api/v1/compare?{query}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{query}: {r:?}");
    }
    for (query, field) in [(format!("a={d1}"), "b"), (format!("b={d1}"), "a")] {
        let r = h.get(&a, &format!("/api/v1/compare?{query}")).await;
        assert_names(&r, field);
    }
}

/// Every decision, assignment and settings change is in the
/// organisation's audit log, newest first, with who, what and why.
async fn the_audit_log_lists_decisions(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    h.analyse(&a, &app("1")).await;
    let s1 = h.statement(&a, &app("1"), "CVE-2024-1001").await;
    let id1 = s1["id"].as_str().unwrap().to_owned();
    h.decide_ok(
        &a,
        &id1,
        json!({"action": "override", "status": "not_affected", "justification": "component_not_present", "reason": "removed in the build"}),
    )
    .await;
    h.decide_ok(
        &a,
        &id1,
        json!({"action": "revert", "reason": "it is there"}),
    )
    .await;
    h.decide_ok(
        &a,
        &id1,
        json!({"action": "approve", "reason": "affected indeed"}),
    )
    .await;
    let r = h
        .put(
            &a,
            &format!("/api/v1/statements/{id1}/assignee"),
            json!({"assignee": "carol"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h
        .put(
            &a,
            "/api/v1/review/settings",
            json!({"review_below": 0.7, "four_eyes": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = h.get(&a, "/api/v1/audit").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let entries = r.json["entries"].as_array().unwrap();
    let total = r.json["total"].as_i64().unwrap();
    assert_eq!(total as usize, entries.len());
    let review: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("review."))
        .collect();
    assert_eq!(
        review
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "review.settings",
            "review.assign",
            "review.approve",
            "review.revert",
            "review.override"
        ],
        "newest first"
    );
    for e in &review {
        assert_eq!(e["key_id"], a.id.as_str(), "{e}");
        assert!(e["at"].is_string());
    }
    let over = &review[4]["detail"];
    assert_eq!(over["statement"], id1.as_str());
    assert_eq!(over["image"], digest_of(&app("1")));
    assert_eq!(over["vulnerability"], "CVE-2024-1001");
    assert_eq!(over["package"], "pkg:deb/debian/openssl@3.0.11");
    assert_eq!(over["old_status"], "affected");
    assert_eq!(over["new_status"], "not_affected");
    assert_eq!(over["author"], "alice@example.com");
    assert_eq!(over["reason"], "removed in the build");
    assert!(over["decision"].as_str().unwrap().starts_with("dec"));
    assert_eq!(review[3]["detail"]["old_status"], "not_affected");
    assert_eq!(review[3]["detail"]["new_status"], "affected");
    assert_eq!(review[0]["detail"]["review_below"], 0.7);
    assert_eq!(review[0]["detail"]["four_eyes"], true);
    // paging
    let r = h.get(&a, "/api/v1/audit?limit=2&offset=1").await;
    assert_eq!(r.json["total"], total);
    let page = r.json["entries"].as_array().unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["action"], "review.assign");
    assert_eq!(page[1]["action"], "review.approve");
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("since=1", "since"),
    ] {
        let r = h.get(&a, &format!("/api/v1/audit?{query}")).await;
        assert_names(&r, field);
    }
}

/// A new report for an analysed image: 202, a re-decision job decided by
/// `Analyzer::reevaluate` from the profile the image's run stored (no new
/// run); the new finding's statement enters the queue, the old queue and
/// the decisions stay; the webhook carries the changes. 404 for an unknown
/// image, 409 no_profile for one never run, 410 when the profile is gone,
/// 422 for a body that is not a scanner report.
async fn new_reports_are_redecided_from_the_stored_profile(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let hooks = vexxy_testkit::hooks::HookReceiver::start(|_| 204);
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    let run = h
        .run_job(
            &a,
            json!({"image_ref": app("1"), "callback_url": hooks.url()}),
        )
        .await;
    let d = digest_of(&app("1"));
    h.wait_vex(&a, &d, &run).await;
    let first = h.delivered(&hooks, &run).await;
    assert_eq!(
        first["changes"]["added"].as_array().unwrap().len(),
        6,
        "{first}"
    );
    // a decision to keep
    let s5 = h.statement(&a, &app("1"), "CVE-2024-1005").await;
    let kept = h
        .decide_ok(
            &a,
            s5["id"].as_str().unwrap(),
            json!({"action": "approve", "reason": "bash is upgraded next sprint"}),
        )
        .await;
    let queue_before = h.queue(&a, "").await;
    assert_eq!(
        ids(&queue_before),
        ["CVE-2024-1001", "CVE-2024-1003", "CVE-2024-1004"]
    );
    let all_before = h.statements(&a, "sort=vulnerability").await;
    assert_eq!(h.analyzer.analyzed.load(Ordering::SeqCst), 1);

    let report = grype(&[("CVE-2024-1007", "openssl", "3.0.11", "High")]);
    let uri = format!("/api/v1/images/{d}/reports");
    let r = h.post(&a, &uri, report.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.json["image_digest"], d.as_str());
    assert_eq!(r.json["status"], "queued");
    let job = r.json["job_id"].as_str().unwrap().to_owned();
    h.wait_job(&a, &job).await;
    let version = h.wait_vex(&a, &d, &job).await;
    assert_eq!(version["cause"], "reevaluation");
    assert_eq!(version["version"], 3);
    assert_eq!(version["author"], "vexxy");

    assert_eq!(h.analyzer.analyzed.load(Ordering::SeqCst), 1, "no new run");
    assert_eq!(h.analyzer.reevaluated.load(Ordering::SeqCst), 1);
    assert_eq!(
        *h.analyzer.profiles.lock().unwrap(),
        [profile_of(&app("1"))],
        "decided from the stored profile of the run"
    );
    // the new finding's statement is in the queue; the rest as it was
    let new = h.statement(&a, &app("1"), "CVE-2024-1007").await;
    assert_eq!(new["analysis_id"], job.as_str());
    assert_eq!(new["auto_status"], "under_investigation");
    assert_eq!(new["review_reason"], "under_investigation");
    assert_eq!(new["in_queue"], true);
    assert_eq!(new["severity"], "high");
    assert_eq!(new["fix_state"], "not_fixed");
    let queue_after = h.queue(&a, "").await;
    assert_eq!(
        ids(&queue_after),
        [
            "CVE-2024-1001",
            "CVE-2024-1003",
            "CVE-2024-1004",
            "CVE-2024-1007"
        ]
    );
    for (before, after) in queue_before.iter().zip(&queue_after) {
        assert_eq!(before["id"], after["id"]);
        assert_eq!(before["version"], after["version"], "{after}");
        assert_eq!(before["review_reason"], after["review_reason"]);
    }
    let all_after = h.statements(&a, "sort=vulnerability").await;
    assert_eq!(all_after.len(), 7);
    for before in &all_before {
        let after = all_after.iter().find(|s| s["id"] == before["id"]).unwrap();
        assert_eq!(before["version"], after["version"], "{after}");
        assert_eq!(before["status"], after["status"], "{after}");
        assert_eq!(before["decision_id"], after["decision_id"], "{after}");
    }
    let s5 = h.statement(&a, &app("1"), "CVE-2024-1005").await;
    assert_eq!(
        s5["decision_id"], kept["decision"]["id"],
        "the decision is kept"
    );
    let img = h.image(&a, &app("1")).await;
    assert_eq!(img["last_analysis_id"], job.as_str());
    assert_eq!(img["last_run_id"], run.as_str(), "no run");
    assert_eq!(img["findings"], 7);
    assert_eq!(img["unreviewed"], 4);
    let doc = h.vex(&a, &app("1")).await;
    assert_eq!(doc["version"], 3);
    assert_eq!(
        vex_statement(&doc, "CVE-2024-1007")["status"],
        "under_investigation"
    );
    assert!(vex_statement(&doc, "CVE-2024-1005")["status_notes"]
        .as_str()
        .unwrap()
        .contains("bash is upgraded next sprint"));
    // the job's webhook tells what changed
    let payload = h.delivered(&hooks, &job).await;
    assert_eq!(payload["event"], "analysis.completed");
    assert_eq!(payload["image_digest"], d.as_str());
    assert_eq!(payload["changes"]["added"], json!([new["id"]]), "{payload}");
    assert_eq!(payload["changes"]["removed"], json!([]));
    assert_eq!(payload["changes"]["changed"], json!([]));
    assert_eq!(payload["changes"]["kept_decisions"], 1);
    assert_eq!(payload["changes"]["offered"], 0);

    // the same report again: its job
    let r = h.post(&a, &uri, report.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["job_id"], job.as_str());

    // refusals
    let r = h
        .post(
            &a,
            &format!("/api/v1/images/{}/reports", digest_of("nowhere:1")),
            report.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let r = h
        .post(&a, "/api/v1/images/sha256:abc/reports", report.clone())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    for body in [
        json!({"not": "a report"}),
        json!({"matches": [{"vulnerability": {}}]}),
        json!({"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "x", "packages": []}),
    ] {
        let r = h.post(&a, &uri, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {r:?}");
        assert!(
            r.json["message"].as_str().unwrap().contains("scan_report"),
            "{r:?}"
        );
    }
    let r = send(
        h.app.clone(),
        "POST",
        &uri,
        Some(&a.secret),
        Some(b"[1, 2".to_vec()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    // an image whose only analysis was a re-decision: no run to decide from
    let never = format!("{APP}:never-run");
    record_directly(&h, &a.org, &never, &run, 3).await;
    let r = h
        .post(
            &a,
            &format!("/api/v1/images/{}/reports", digest_of(&never)),
            report.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert_eq!(r.json["code"], "no_profile");
    // a run that stored no profile
    let bare = format!("{APP}-noprofile:1");
    h.analyse(&a, &bare).await;
    let r = h
        .post(
            &a,
            &format!("/api/v1/images/{}/reports", digest_of(&bare)),
            report.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::GONE, "{r:?}");
    // a tier that may not analyse
    let free = h.org("free", Tier::Free, "frank@example.com").await;
    let r = h.post(&free, &uri, report).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert_eq!(h.analyzer.reevaluated.load(Ordering::SeqCst), 1);
}

/// `POST /api/v1/reports`: a report that records its image's digests (as
/// CI produces it) re-decides every analysed image of the organisation it
/// names, all or none; 404 when it names none of them (or only another
/// organisation's), 422 when it names no digest or is no report.
async fn reports_find_their_images_by_the_digests_they_record(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    let b = h
        .org("rival", Tier::Enterprise, "mallory@example.com")
        .await;
    h.analyse(&a, &app("1")).await;
    h.analyse(&a, &app("2")).await;
    let (d1, d2) = (digest_of(&app("1")), digest_of(&app("2")));
    let jobs = |key: &Key| {
        let h = &h;
        let key = key.clone();
        async move {
            let r = h.get(&key, "/api/v1/analysis").await;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
            r.json["items"].as_array().unwrap().len()
        }
    };
    let matches = [("CVE-2024-1007", "openssl", "3.0.11", "High")];
    let names = |digests: &[&str]| -> Vec<String> {
        digests.iter().map(|d| format!("{APP}@{d}")).collect()
    };

    // one image of the organisation named, one unknown digest
    let unknown = digest_of("nowhere:1");
    let r = h
        .post(
            &a,
            "/api/v1/reports",
            grype_of(&matches, &names(&[&d1, &unknown])),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let queued = r.json.as_array().unwrap();
    assert_eq!(queued.len(), 1, "{r:?}");
    assert_eq!(queued[0]["image_digest"], d1.as_str());
    let job = queued[0]["job_id"].as_str().unwrap().to_owned();
    h.wait_job(&a, &job).await;
    h.wait_vex(&a, &d1, &job).await;
    assert_eq!(
        h.statement(&a, &app("1"), "CVE-2024-1007").await["analysis_id"],
        job.as_str()
    );
    assert!(h
        .statements(&a, &format!("image={d2}&vulnerability=CVE-2024-1007"))
        .await
        .is_empty());
    // both images named: one re-decision each
    let both = grype_of(
        &[("CVE-2024-1009", "zlib", "1.2.13", "Low")],
        &names(&[&d1, &d2]),
    );
    let r = h.post(&a, "/api/v1/reports", both.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let mut by_image: Vec<(String, String)> = r
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["image_digest"].as_str().unwrap().to_owned(),
                q["job_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    by_image.sort();
    let mut want = vec![d1.clone(), d2.clone()];
    want.sort();
    assert_eq!(
        by_image.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(),
        want
    );
    for (digest, job) in &by_image {
        h.wait_job(&a, job).await;
        h.wait_vex(&a, digest, job).await;
    }
    for reference in [app("1"), app("2")] {
        let s = h.statement(&a, &reference, "CVE-2024-1009").await;
        assert_eq!(s["in_queue"], true, "{s}");
    }
    assert_eq!(h.analyzer.analyzed.load(Ordering::SeqCst), 2, "no new run");
    assert_eq!(h.analyzer.reevaluated.load(Ordering::SeqCst), 3);
    assert_eq!(h.get(&a, "/api/v1/dashboard").await.json["images_seen"], 2);

    // refusals, nothing queued
    let before = jobs(&a).await;
    let r = h
        .post(
            &a,
            "/api/v1/reports",
            grype_of(&matches, &names(&[&unknown])),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let r = h.post(&a, "/api/v1/reports", grype(&matches)).await;
    assert_names(&r, "digest");
    for body in [
        json!({"not": "a report"}),
        json!({"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "x", "packages": []}),
    ] {
        let r = h.post(&a, "/api/v1/reports", body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {r:?}");
    }
    let r = send(
        h.app.clone(),
        "POST",
        "/api/v1/reports",
        Some(&a.secret),
        Some(b"{\"matches\": [".to_vec()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    // one named image was never run: all or none
    let never = format!("{APP}:never-run");
    record_directly(&h, &a.org, &never, &job, 2).await;
    let r = h
        .post(
            &a,
            "/api/v1/reports",
            grype_of(
                &[("CVE-2024-1010", "curl", "7.88.1", "Low")],
                &names(&[&d1, &digest_of(&never)]),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert_eq!(r.json["code"], "no_profile");
    assert_eq!(jobs(&a).await, before, "nothing queued");
    // another organisation's images are not found
    let r = h.post(&b, "/api/v1/reports", both).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert_eq!(jobs(&b).await, 0);
    let free = h.org("free", Tier::Free, "frank@example.com").await;
    let r = h
        .post(&free, "/api/v1/reports", grype_of(&matches, &names(&[&d1])))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert_eq!(h.analyzer.reevaluated.load(Ordering::SeqCst), 3);
}

/// A report that makes automation change its mind about a statement a
/// person approved: the decision stands, in the row and in the re-issued
/// document alike.
async fn a_new_report_keeps_an_approved_verdict(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    h.analyse(&a, &app("1")).await;
    let d = digest_of(&app("1"));
    let s2 = h.statement(&a, &app("1"), "CVE-2024-1002").await;
    let approved = h
        .decide_ok(
            &a,
            s2["id"].as_str().unwrap(),
            json!({"action": "approve", "reason": "libxml2 is never loaded, checked by hand"}),
        )
        .await;
    assert_eq!(approved["decision"]["status"], "not_affected");
    // the report names CVE-2024-1002 again: the re-decision says
    // under_investigation for it
    let r = h
        .post(
            &a,
            &format!("/api/v1/images/{d}/reports"),
            grype(&[("CVE-2024-1002", "libxml2", "2.9.14", "Critical")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let job = r.json["job_id"].as_str().unwrap().to_owned();
    h.wait_job(&a, &job).await;
    h.wait_vex(&a, &d, &job).await;
    let s = h.statement(&a, &app("1"), "CVE-2024-1002").await;
    assert_eq!(s["auto_status"], "under_investigation", "{s}");
    assert_eq!(s["decision_id"], approved["decision"]["id"]);
    assert_eq!(s["status"], "not_affected", "the decision stands: {s}");
    assert_eq!(s["justification"], "vulnerable_code_not_in_execute_path");
    let doc = h.vex(&a, &app("1")).await;
    let st = vex_statement(&doc, "CVE-2024-1002");
    assert_eq!(st["status"], "not_affected", "{doc}");
    assert_eq!(st["justification"], "vulnerable_code_not_in_execute_path");
    assert!(st["status_notes"]
        .as_str()
        .unwrap()
        .contains("checked by hand"));
    let dash = h.get(&a, "/api/v1/dashboard").await.json;
    assert_eq!(dash["by_status"]["not_affected"], 3, "{dash}");
}

/// Organisation B sees nothing of A's: A's statement, decisions,
/// assignment, images, VEX, history, envelope, reports and comparisons
/// are 404 for B; B's own listings are empty and its dashboard zero; B's
/// bulk decisions and settings never touch A's statements; the same image
/// analysed by both is two sets of statements, and A's decisions are
/// never offered to B.
async fn organisations_never_see_each_other_s_review(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |c| {
        c.secret_key = Some(ServerKey::generate().unwrap());
    })
    .await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    let b = h
        .org("rival", Tier::Enterprise, "mallory@example.com")
        .await;
    let r = h
        .post(&a, "/api/v1/signing-keys", json!({"algorithm": "ed25519"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    h.analyse(&a, &app("1")).await;
    h.analyse(&a, &app("2")).await;
    let (d1, d2) = (digest_of(&app("1")), digest_of(&app("2")));
    let s = h.statement(&a, &app("1"), "CVE-2024-1003").await;
    let id = s["id"].as_str().unwrap().to_owned();
    let decided = h
        .decide_ok(&a, &id, json!({"action": "approve", "reason": "fine"}))
        .await;
    assert!(decided["vex"]["envelope_digest"].is_string(), "{decided}");
    let a_statements = h.statements(&a, "sort=vulnerability&limit=1000").await;

    // A's ids are as good as absent for B
    let report = grype(&[("CVE-2024-1007", "openssl", "3.0.11", "High")]);
    let not_found = [
        ("GET", format!("/api/v1/statements/{id}"), None),
        (
            "POST",
            format!("/api/v1/statements/{id}/decisions"),
            Some(json!({"action": "revert", "reason": "mine now"})),
        ),
        (
            "POST",
            format!("/api/v1/statements/{id}/decisions"),
            Some(json!({"action": "approve", "reason": "mine now", "expected_version": 2})),
        ),
        (
            "PUT",
            format!("/api/v1/statements/{id}/assignee"),
            Some(json!({"assignee": "mallory"})),
        ),
        ("GET", format!("/api/v1/images/{d1}"), None),
        ("GET", format!("/api/v1/images/{d1}/vex"), None),
        ("GET", format!("/api/v1/images/{d1}/vex/history"), None),
        ("GET", format!("/api/v1/images/{d1}/vex/1"), None),
        ("GET", format!("/api/v1/images/{d1}/vex/2/envelope"), None),
        (
            "POST",
            format!("/api/v1/images/{d1}/reports"),
            Some(report.clone()),
        ),
        ("GET", format!("/api/v1/compare?a={d1}&b={d2}"), None),
    ];
    for (method, uri, body) in &not_found {
        let r = h.call(method, uri, &b, body.clone()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {uri}: {r:?}");
        assert_eq!(r.json["code"], "not_found");
        // and A still has it
        let r = h.call(method, uri, &a, None).await;
        assert_ne!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {uri} for A: {r:?}"
        );
    }
    // B's own views are empty
    let r = h.list(&b, "/api/v1/statements", "").await;
    assert_eq!(r["total"], 0);
    let r = h.list(&b, "/api/v1/review/queue", "").await;
    assert_eq!(r["total"], 0);
    assert_eq!(
        h.list(&b, "/api/v1/statements", &format!("image={d1}"))
            .await["total"],
        0
    );
    let r = h.get(&b, "/api/v1/images").await;
    assert_eq!(
        (r.json["total"].clone(), r.json["images"].clone()),
        (json!(0), json!([]))
    );
    let r = h.get(&b, "/api/v1/dashboard").await.json;
    for field in [
        "images_seen",
        "images_analysed",
        "images_with_vex",
        "findings",
        "backlog",
        "decisions",
    ] {
        assert_eq!(r[field], 0, "{field}: {r}");
    }
    assert_eq!(r["by_status"], json!({}));
    assert!(r["weekly"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["analyses"] == 0 && w["new_findings"] == 0 && w["decisions"] == 0));
    let r = h.get(&b, "/api/v1/compliance").await;
    assert_eq!(r.json, json!({"repositories": []}));
    let r = h.get(&b, "/api/v1/compliance?format=csv").await;
    assert_eq!(r.bytes.iter().filter(|c| **c == b'\n').count(), 1, "{r:?}");
    let r = h.get(&b, "/api/v1/audit").await;
    assert!(
        r.json["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| !e.to_string().contains(&id)),
        "{r:?}"
    );
    // B's writes never reach A's statements
    let r = h
        .post(
            &b,
            "/api/v1/review/decisions",
            json!({"filter": {"image": d1}, "action": "approve", "reason": "all of it"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["decided"], 0);
    let r = h
        .put(
            &b,
            "/api/v1/review/settings",
            json!({"review_below": 1.0, "four_eyes": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        h.statements(&a, "sort=vulnerability&limit=1000").await,
        a_statements
    );
    assert_eq!(h.image(&a, &app("1")).await["vex_version"], 2);
    // the same image analysed by B: its own statements, no offers of A's
    h.analyse(&b, &app("1")).await;
    let mine = h.statements(&b, "sort=vulnerability").await;
    assert_eq!(mine.len(), 6);
    let theirs: BTreeSet<&str> = a_statements
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    for s in &mine {
        assert!(!theirs.contains(s["id"].as_str().unwrap()), "{s}");
        assert!(s["offered_decision_id"].is_null(), "{s}");
        assert!(s["decision_id"].is_null(), "{s}");
    }
    let b3 = h.statement(&b, &app("1"), "CVE-2024-1003").await;
    assert_eq!(b3["review_reason"], "low_confidence", "B's own settings");
    assert_eq!(h.image(&b, &app("1")).await["vex_version"], 1);
    // B has no signing key: its version is unsigned
    let r = h
        .get(&b, &format!("/api/v1/images/{d1}/vex/1/envelope"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert_eq!(h.image(&a, &app("1")).await["vex_version"], 2);
    assert_eq!(h.get(&a, "/api/v1/dashboard").await.json["images_seen"], 2);
}

/// A decision made on one digest is offered (not applied) to a new digest
/// of the repository whose statement rests on the same evidence, and
/// `accept_offer` applies it; changed evidence gets no offer.
async fn decisions_are_offered_to_new_digests(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let hooks = vexxy_testkit::hooks::HookReceiver::start(|_| 204);
    let h = Harness::new(url, db, |_| {}).await;
    let alice = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    let bob = h.key(&alice.org, "bob@example.com").await;
    h.analyse(&alice, &app("1")).await;
    let decide = |v: &'static str, body: Value| {
        let h = &h;
        let alice = &alice;
        async move {
            let s = h.statement(alice, &app("1"), v).await;
            h.decide_ok(alice, s["id"].as_str().unwrap(), body).await
        }
    };
    let over = decide(
        "CVE-2024-1002",
        json!({"action": "override", "status": "affected", "action_statement": "upgrade libxml2", "reason": "the XSLT path loads it"}),
    )
    .await;
    let approve = decide(
        "CVE-2024-1003",
        json!({"action": "approve", "reason": "zlib checked"}),
    )
    .await;
    decide(
        "CVE-2024-1005",
        json!({"action": "approve", "reason": "bash upgrade planned"}),
    )
    .await;
    decide(
        "CVE-2024-1001",
        json!({"action": "approve", "reason": "expired soon", "expires_in_days": 1}),
    )
    .await;
    let s4 = h.statement(&alice, &app("1"), "CVE-2024-1004").await;
    h.decide_ok(
        &alice,
        s4["id"].as_str().unwrap(),
        json!({"action": "override", "status": "fixed", "reason": "patched"}),
    )
    .await;
    h.decide_ok(
        &alice,
        s4["id"].as_str().unwrap(),
        json!({"action": "revert", "reason": "not patched"}),
    )
    .await;

    let job = h
        .run_job(
            &alice,
            json!({"image_ref": app("2"), "callback_url": hooks.url()}),
        )
        .await;
    h.wait_vex(&alice, &digest_of(&app("2")), &job).await;
    // the same evidence: offered, not applied
    let n2 = h.statement(&alice, &app("2"), "CVE-2024-1002").await;
    assert_eq!(n2["offered_decision_id"], over["decision"]["id"], "{n2}");
    assert!(n2["decision_id"].is_null());
    assert_eq!(n2["status"], "not_affected", "not applied: {n2}");
    let n3 = h.statement(&alice, &app("2"), "CVE-2024-1003").await;
    assert_eq!(n3["offered_decision_id"], approve["decision"]["id"]);
    assert_eq!(n3["in_queue"], true, "still waits for a person");
    let n1 = h.statement(&alice, &app("2"), "CVE-2024-1001").await;
    assert!(n1["offered_decision_id"].is_string(), "{n1}");
    // changed evidence, a revert: nothing offered
    for v in ["CVE-2024-1005", "CVE-2024-1004", "CVE-2024-1008"] {
        let s = h.statement(&alice, &app("2"), v).await;
        assert!(s["offered_decision_id"].is_null(), "{v}: {s}");
    }
    let payload = h.delivered(&hooks, &job).await;
    assert_eq!(payload["changes"]["offered"], 3, "{payload}");
    assert_eq!(payload["changes"]["added"].as_array().unwrap().len(), 6);
    let doc = h.vex(&alice, &app("2")).await;
    assert_eq!(doc["version"], 1);
    assert_eq!(
        vex_statement(&doc, "CVE-2024-1002")["status"],
        "not_affected"
    );
    // the detail shows the offer
    let n2_id = n2["id"].as_str().unwrap().to_owned();
    let r = h.get(&alice, &format!("/api/v1/statements/{n2_id}")).await;
    let offered = &r.json["offered_decision"];
    assert_eq!(offered["id"], over["decision"]["id"]);
    assert_eq!(offered["action"], "override");
    assert_eq!(offered["status"], "affected");
    assert_eq!(offered["statement_id"], over["statement"]["id"]);
    assert_eq!(r.json["decisions"], json!([]));

    // accept it
    let r = h
        .decide_ok(
            &bob,
            &n2_id,
            json!({"action": "accept_offer", "reason": "same libxml2, same finding", "expected_version": 1}),
        )
        .await;
    assert_eq!(r["statement"]["status"], "affected");
    assert_eq!(r["statement"]["version"], 2);
    assert!(r["statement"]["offered_decision_id"].is_null());
    assert_eq!(r["statement"]["decision_id"], r["decision"]["id"]);
    assert_eq!(r["decision"]["action"], "accept_offer");
    assert_eq!(r["decision"]["status"], "affected");
    assert_eq!(r["decision"]["action_statement"], "upgrade libxml2");
    assert_eq!(r["decision"]["author"], "bob@example.com");
    assert_eq!(r["vex"]["version"], 2);
    let doc = h.vex(&alice, &app("2")).await;
    let st = vex_statement(&doc, "CVE-2024-1002");
    assert_eq!(st["status"], "affected");
    assert_eq!(st["action_statement"], "upgrade libxml2");
    assert!(st["status_notes"]
        .as_str()
        .unwrap()
        .contains("bob@example.com"));
    // the approval offered from the other digest
    let r = h
        .decide_ok(
            &alice,
            n3["id"].as_str().unwrap(),
            json!({"action": "accept_offer", "reason": "same zlib"}),
        )
        .await;
    assert_eq!(r["statement"]["status"], "not_affected");
    assert_eq!(r["statement"]["in_queue"], false);
    assert_eq!(
        r["decision"]["justification"],
        "vulnerable_code_not_present"
    );
    // nothing (left) to accept
    for (v, id) in [
        ("CVE-2024-1004", None),
        ("CVE-2024-1002", Some(n2_id.clone())),
    ] {
        let id = match id {
            Some(id) => id,
            None => h.statement(&alice, &app("2"), v).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        };
        let r = h
            .decide(
                &alice,
                &id,
                json!({"action": "accept_offer", "reason": "r"}),
            )
            .await;
        assert_names(&r, "action");
    }
    // the first digest's statements are untouched by all this
    let o2 = h.statement(&alice, &app("1"), "CVE-2024-1002").await;
    assert_eq!(o2["decision_id"], over["decision"]["id"]);
}

/// With the organisation's signing key, each re-issued version has a DSSE
/// envelope that verifies with its public key and carries that version's
/// document; versions issued before the key have none (404).
async fn versions_are_signed_with_the_organisation_s_key(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |c| {
        c.secret_key = Some(ServerKey::generate().unwrap());
    })
    .await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    h.analyse(&a, &app("1")).await;
    let d = digest_of(&app("1"));
    let r = h
        .get(&a, &format!("/api/v1/images/{d}/vex/1/envelope"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert!(r.json["message"].as_str().unwrap().contains("signing key"));
    let r = h
        .post(&a, "/api/v1/signing-keys", json!({"algorithm": "ed25519"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let public =
        vexxy_attest::VerifyingKey::from_pem(r.json["public_key_pem"].as_str().unwrap()).unwrap();

    let s = h.statement(&a, &app("1"), "CVE-2024-1003").await;
    let r = h
        .decide_ok(
            &a,
            s["id"].as_str().unwrap(),
            json!({"action": "approve", "reason": "signed off"}),
        )
        .await;
    assert_eq!(r["vex"]["version"], 2);
    let envelope_digest = r["vex"]["envelope_digest"].as_str().unwrap().to_owned();
    let r = h
        .get(&a, &format!("/api/v1/images/{d}/vex/2/envelope"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        "application/vnd.dsse.envelope.v1+json"
    );
    assert_eq!(r.header("x-vex-version"), "2");
    assert_eq!(
        envelope_digest,
        format!("sha256:{}", hex::encode(Sha256::digest(&r.bytes)))
    );
    let statement = vexxy_attest::verify(&r.bytes, &public).unwrap();
    assert_eq!(
        statement.predicate_type,
        vexxy_attest::OPENVEX_PREDICATE_TYPE
    );
    assert_eq!(statement.subject.len(), 1);
    assert_eq!(statement.subject[0].name, APP);
    assert_eq!(statement.subject[0].digest["sha256"], d[7..]);
    let doc = h.vex(&a, &app("1")).await;
    assert_eq!(statement.predicate, doc, "the envelope carries version 2");
    // another key does not verify it
    let other = vexxy_attest::generate(vexxy_attest::KeyAlgorithm::Ed25519).unwrap();
    let other = vexxy_attest::VerifyingKey::from_pem(&other.public_pem).unwrap();
    assert!(vexxy_attest::verify(&r.bytes, &other).is_err());
    // the history says which versions are signed
    let r = h.get(&a, &format!("/api/v1/images/{d}/vex/history")).await;
    let versions = r.json["versions"].as_array().unwrap();
    assert_eq!(versions[0]["envelope_digest"], envelope_digest.as_str());
    assert!(versions[1]["envelope_digest"].is_null());
    let r = h
        .get(&a, &format!("/api/v1/images/{d}/vex/1/envelope"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let r = h
        .get(&a, &format!("/api/v1/images/{d}/vex/3/envelope"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    // a later analysis is signed too
    let job = h.analyse(&a, &app("2")).await;
    let v = h.wait_vex(&a, &digest_of(&app("2")), &job).await;
    assert!(v["envelope_digest"].is_string(), "{v}");
}

/// `/metrics` (the operator's token) shows the review backlog and the VEX
/// coverage over every organisation.
async fn metrics_show_the_backlog_and_coverage(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |c| {
        c.metrics_token = Some(vexxy_server::config::Secret::new(METRICS_TOKEN));
    })
    .await;
    let metric = |name: &'static str| {
        let h = &h;
        async move {
            let r = send(h.app.clone(), "GET", "/metrics", Some(METRICS_TOKEN), None).await;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
            let text = String::from_utf8(r.bytes).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
                .parse::<f64>()
                .unwrap()
        }
    };
    assert_eq!(metric("vexxy_review_backlog").await, 0.0);
    assert_eq!(metric("vexxy_vex_coverage_ratio").await, 0.0);
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    let job = h.analyse(&a, &app("1")).await;
    assert_eq!(metric("vexxy_review_backlog").await, 3.0);
    assert_eq!(metric("vexxy_vex_coverage_ratio").await, 1.0);
    // another organisation's image without a VEX: half the images covered
    let b = h
        .org("rival", Tier::Enterprise, "mallory@example.com")
        .await;
    record_directly(&h, &b.org, &format!("{WEB}:1"), &job, 6).await;
    assert_eq!(metric("vexxy_review_backlog").await, 6.0);
    assert_eq!(metric("vexxy_vex_coverage_ratio").await, 0.5);
    // a decision takes one out of the backlog
    let s = h.statement(&a, &app("1"), "CVE-2024-1004").await;
    h.decide_ok(
        &a,
        s["id"].as_str().unwrap(),
        json!({"action": "override", "status": "affected", "action_statement": "upgrade curl", "reason": "used"}),
    )
    .await;
    assert_eq!(metric("vexxy_review_backlog").await, 5.0);
    let r = send(h.app.clone(), "GET", "/metrics", Some(&a.secret), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// With `rerun_after_days`, an image whose last run is older is run again
/// (a fresh run, not a stored profile, with the last run's settings), once
/// per period; an organisation without it is left alone.
async fn images_whose_last_run_is_too_old_are_run_again(
    url: Option<String>,
    db: Option<vexxy_testkit::pg::TestDatabase>,
) {
    let h = Harness::new(url, db, |_| {}).await;
    let a = h.org("acme", Tier::Enterprise, "alice@example.com").await;
    let b = h.org("other", Tier::Enterprise, "bob@example.com").await;
    let first = h.analyse(&a, &app("1")).await;
    h.analyse(&b, &app("1")).await;
    assert_eq!(
        vexxy_server::review::rerun_due(&h.svc).await.unwrap(),
        0,
        "no organisation asked for re-runs"
    );
    let r = h
        .put(
            &a,
            "/api/v1/review/settings",
            json!({"review_below": 0.6, "rerun_after_days": 7}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        vexxy_server::review::rerun_due(&h.svc).await.unwrap(),
        0,
        "the last run is recent"
    );
    // eight days pass (for both organisations' images and jobs)
    let eight_days = 8 * 86_400_000_i64;
    h.raw(&format!(
        "UPDATE images SET last_run_at = last_run_at - {eight_days}, \
         last_analysed_at = last_analysed_at - {eight_days}"
    ))
    .await;
    h.raw(&format!(
        "UPDATE jobs SET created_at = created_at - {eight_days}"
    ))
    .await;
    let before = h.analyzer.analyzed.load(Ordering::SeqCst);
    assert_eq!(vexxy_server::review::rerun_due(&h.svc).await.unwrap(), 1);
    assert_eq!(
        vexxy_server::review::rerun_due(&h.svc).await.unwrap(),
        0,
        "one re-run per period"
    );
    let d = digest_of(&app("1"));
    let began = Instant::now();
    let rerun = loop {
        let image = h.get(&a, &format!("/api/v1/images/{d}")).await.json;
        if image["last_run_id"] != first.as_str() && image["last_run_id"].is_string() {
            break image["last_run_id"].as_str().unwrap().to_owned();
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "no re-run: {image}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    h.wait_job(&a, &rerun).await;
    assert_eq!(
        h.analyzer.analyzed.load(Ordering::SeqCst),
        before + 1,
        "the image was run (analyze), not re-decided"
    );
    let request: Value = serde_json::from_str(
        &h.svc
            .store
            .job_request(Some(&a.org), &rerun)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert!(request["rerun"].is_i64(), "{request}");
    assert_eq!(request["image_ref"], app("1").as_str());
    assert_eq!(request["image_digest"], d.as_str());
    // the other organisation's image was left alone
    let theirs = h.get(&b, &format!("/api/v1/images/{d}")).await.json;
    assert_ne!(theirs["last_run_id"], rerun.as_str());
}
