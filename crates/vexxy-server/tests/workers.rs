//! Jobs at once in one process: at most `workers` run, each in a slot of
//! its own named in its lease; a finished or cancelled job frees its slot
//! for the next; an idle process starts a submitted job at once; at
//! shutdown the running jobs are waited for and re-queued. The analyses
//! come from `Gate`, an analyzer that holds every job until the test
//! opens it (the real pipeline runs concurrently in the `vexxy` binary's
//! tests/cleanup.rs and benches/analyses_per_hour.rs).
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use vexxy_analyze::{
    AnalysisOutcome, AnalysisRequest, AnalyzeError, ArtifactKind, Artifacts, Phase, ProfileSource,
    RunPhase,
};
use vexxy_model::Product;
use vexxy_server::{Analyzer, JobControl, Service, ServiceConfig};
use vexxy_store::{EvidenceStore, JobState, LocalStore, Store, Tier};

/// Holds every analysis until `open`, counting how many run at once.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    running: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
    cancelled: AtomicUsize,
}

fn outcome(image_ref: &str) -> AnalysisOutcome {
    let mut artifacts = Artifacts::default();
    artifacts.insert(
        ArtifactKind::ReportMarkdown,
        format!("# {image_ref}\n").into_bytes(),
    );
    AnalysisOutcome {
        product: Product {
            name: image_ref.to_owned(),
            tag: None,
            digest: Some(format!("sha256:{}", "b".repeat(64)).parse().unwrap()),
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
    }
}

impl Analyzer for Gate {
    fn analyze(
        &self,
        request: &AnalysisRequest,
        control: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::SeqCst);
        control.set_phase(Phase::Run(RunPhase::Observing));
        let began = Instant::now();
        let result = loop {
            if control.is_cancelled() {
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                break Err(AnalyzeError::cancelled());
            }
            if self.open.load(Ordering::SeqCst) {
                break Ok(outcome(&request.image.reference));
            }
            // bounded, so that a test that fails cannot hold the blocking pool
            if began.elapsed() > Duration::from_secs(30) {
                break Err(AnalyzeError::internal("the gate never opened"));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

struct Harness {
    svc: Arc<Service>,
    gate: Arc<Gate>,
    app: axum::Router,
    stop: tokio::sync::watch::Sender<bool>,
    background: tokio::task::JoinHandle<()>,
    key: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new(workers: usize, tweak: impl FnOnce(&mut ServiceConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite_in(dir.path()).await.unwrap();
        let mut config = ServiceConfig {
            workers,
            ..ServiceConfig::default()
        };
        config.queue.heartbeat = Duration::from_millis(50);
        config.queue.poll = Duration::from_millis(20);
        config.shutdown_grace = Duration::from_millis(100);
        tweak(&mut config);
        let gate = Arc::new(Gate::default());
        let evidence = EvidenceStore::Local(LocalStore::new(dir.path().join("evidence")));
        let svc = Service::new(store, evidence, gate.clone(), config);
        let org = svc
            .store
            .create_org("acme", Tier::Ultimate, None)
            .await
            .unwrap();
        let key = svc.store.create_key(&org.id, "test").await.unwrap().secret;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let mut bg = vexxy_server::spawn_background(&svc, workers, vexxy_server::Role::Worker, &rx);
        let background = tokio::spawn(async move { while bg.join_next().await.is_some() {} });
        let app = vexxy_server::router(svc.clone());
        Self {
            svc,
            gate,
            app,
            stop,
            background,
            key,
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
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
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Submits `n` distinct jobs; their ids.
    async fn submit(&self, names: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut ids = Vec::new();
        for name in names {
            let (s, v) = self
                .call(
                    "POST",
                    "/api/v1/analysis/submit",
                    Some(json!({"image_ref": format!("gate/{name}")})),
                )
                .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{v}");
            ids.push(v["job_id"].as_str().unwrap().to_owned());
        }
        ids
    }

    async fn state(&self, id: &str) -> vexxy_store::Job {
        self.svc.store.job(None, id).await.unwrap().unwrap()
    }

    async fn wait(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let began = Instant::now();
        while !done() {
            assert!(began.elapsed() < limit, "{what}: not after {limit:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn wait_state(&self, id: &str, state: JobState) -> vexxy_store::Job {
        let began = Instant::now();
        loop {
            let job = self.state(id).await;
            if job.state == state {
                return job;
            }
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "job {id} never became {state}: {job:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.gate.open.store(true, Ordering::SeqCst);
        let _ = self.stop.send(true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_workers_jobs_run_at_once_each_in_a_slot_of_its_own() {
    let h = Harness::new(3, |_| {}).await;
    let ids = h.submit((0..5).map(|i| format!("job-{i}"))).await;
    let gate = &h.gate;
    h.wait("three jobs running", Duration::from_secs(10), || {
        gate.running.load(Ordering::SeqCst) == 3
    })
    .await;
    // the others stay queued while every slot is busy (many polls long)
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gate.started.load(Ordering::SeqCst), 3);
    let mut owners = BTreeSet::new();
    let mut queued = 0;
    for id in &ids {
        let job = h.state(id).await;
        match job.state {
            JobState::Queued => queued += 1,
            JobState::Running | JobState::Analyzing => {
                owners.insert(job.lease_owner.clone().unwrap());
            }
            other => panic!("job {id} is {other}"),
        }
    }
    assert_eq!(queued, 2);
    let instance = &h.svc.config.instance;
    assert_eq!(
        owners,
        (0..3)
            .map(|slot| format!("{instance}/w{slot}"))
            .collect::<BTreeSet<_>>(),
        "one slot each"
    );
    assert_eq!(h.svc.metrics.workers_busy.get(), 3);

    gate.open.store(true, Ordering::SeqCst);
    for id in &ids {
        h.wait_state(id, JobState::Complete).await;
    }
    assert_eq!(gate.peak.load(Ordering::SeqCst), 3, "never more than 3");
    assert_eq!(gate.started.load(Ordering::SeqCst), 5);
    let svc = &h.svc;
    h.wait("every slot free again", Duration::from_secs(5), || {
        svc.metrics.workers_busy.get() == 0
    })
    .await;
    assert_eq!(svc.metrics.workers_total.get(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_job_frees_its_slot_for_the_next() {
    let h = Harness::new(2, |_| {}).await;
    let ids = h.submit((0..3).map(|i| format!("job-{i}"))).await;
    let gate = &h.gate;
    h.wait("two jobs running", Duration::from_secs(10), || {
        gate.running.load(Ordering::SeqCst) == 2
    })
    .await;
    let mut running = Vec::new();
    for id in &ids {
        if h.state(id).await.state != JobState::Queued {
            running.push(id.clone());
        }
    }
    assert_eq!(running.len(), 2);
    for id in &running {
        let (s, v) = h
            .call("DELETE", &format!("/api/v1/analysis/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    h.wait("both analyses told to stop", Duration::from_secs(5), || {
        gate.cancelled.load(Ordering::SeqCst) == 2
    })
    .await;
    // the third job takes a freed slot
    h.wait("the third job running", Duration::from_secs(10), || {
        gate.started.load(Ordering::SeqCst) == 3 && gate.running.load(Ordering::SeqCst) == 1
    })
    .await;
    gate.open.store(true, Ordering::SeqCst);
    let third = ids.iter().find(|id| !running.contains(id)).unwrap();
    h.wait_state(third, JobState::Complete).await;
    for id in &running {
        assert_eq!(h.state(id).await.state, JobState::Cancelled);
    }
    assert_eq!(gate.peak.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_process_starts_a_submitted_job_at_once() {
    // polling alone would take 30 s: the submission wakes the workers
    let h = Harness::new(4, |c| c.queue.poll = Duration::from_secs(30)).await;
    // idle for a while: the workers wait for work
    tokio::time::sleep(Duration::from_millis(300)).await;
    for round in 0..3 {
        let began = Instant::now();
        h.submit([format!("wake-{round}")]).await;
        let gate = &h.gate;
        h.wait("the job started", Duration::from_secs(5), || {
            gate.started.load(Ordering::SeqCst) == round + 1
        })
        .await;
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "started after {:?}",
            began.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopping_waits_for_the_running_jobs_and_requeues_them() {
    let mut h = Harness::new(2, |_| {}).await;
    let ids = h.submit((0..2).map(|i| format!("job-{i}"))).await;
    let gate = Arc::clone(&h.gate);
    h.wait("two jobs running", Duration::from_secs(10), || {
        gate.running.load(Ordering::SeqCst) == 2
    })
    .await;
    let _ = h.stop.send(true);
    // the background work ends only once both jobs have (grace, cancel, re-queue)
    let background = std::mem::replace(&mut h.background, tokio::spawn(async {}));
    tokio::time::timeout(Duration::from_secs(20), background)
        .await
        .expect("the workers stop")
        .unwrap();
    assert_eq!(gate.running.load(Ordering::SeqCst), 0);
    assert_eq!(gate.cancelled.load(Ordering::SeqCst), 2);
    for id in &ids {
        let job = h.state(id).await;
        // back in the queue, for this or another process (a shutdown
        // does not count as an attempt)
        assert_eq!(job.state, JobState::Queued, "{job:?}");
        assert!(
            job.started_at.is_some() && job.lease_owner.is_none(),
            "{job:?}"
        );
    }
    assert_eq!(h.svc.metrics.workers_busy.get(), 0);
}
