//! The vexxy service: the HTTP API, workers, tenants and quotas,
//! webhooks, retention, metrics. No analysis logic lives here: a worker
//! turns each job into a typed request of the analysis library
//! ([`job::request`]), hands it to an [`Analyzer`] ([`Pipeline`] in
//! production) and stores the typed outcome.
//!
//! Everything that must survive a crash is in the database
//! ([`vexxy_store`]); this crate holds only what one process is doing.

pub mod analyzer;
pub mod api;
pub mod api_review;
pub mod body;
pub mod capacity;
pub mod config;
pub mod error;
pub mod health;
pub mod job;
mod leftovers;
pub mod metrics;
pub mod production;
pub mod queries;
pub mod review;
pub mod routes;
pub mod routes_review;
pub mod tenant;
pub mod webhook;
pub mod worker;

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use tokio::{sync::watch, task::JoinSet};
use vexxy_store::{EvidenceStore, Store};

pub use analyzer::{Analyzer, JobControl, Pipeline};
pub use config::{QueueConfig, ServiceConfig, WebhookConfig};
pub use job::AnalysisSettings;
pub use routes::{app, openapi_document, router};

/// One service process: its stores, its analyzer, what it is running.
pub struct Service {
    pub store: Store,
    pub evidence: Arc<EvidenceStore>,
    pub analyzer: Arc<dyn Analyzer>,
    pub config: ServiceConfig,
    pub metrics: metrics::Metrics,
    /// Permits of large submissions being read and parsed
    /// (`submit.max_large_submits`).
    pub(crate) large_submits: Arc<tokio::sync::Semaphore>,
    /// Wakes idle in-process workers when a job is submitted.
    wake: tokio::sync::Notify,
    /// Jobs this process is running, so a cancel through this process
    /// reaches the sandbox at once (others learn at their next heartbeat).
    local: Mutex<HashMap<(String, i64), JobControl>>,
    draining: AtomicBool,
    /// Held while an image's VEX is issued: its version number is taken
    /// before the document is written (the store refuses a duplicate).
    pub(crate) issuing: tokio::sync::Mutex<()>,
    /// Held while a re-issued VEX is attached to its image in the
    /// registry (one at a time per process, in the background).
    pub(crate) attaching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("store", &self.store.backend())
            .field("evidence", &self.evidence.describe())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Service {
    pub fn new(
        store: Store,
        evidence: EvidenceStore,
        analyzer: Arc<dyn Analyzer>,
        config: ServiceConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            evidence: Arc::new(evidence),
            analyzer,
            large_submits: Arc::new(tokio::sync::Semaphore::new(
                config
                    .submit
                    .max_large_submits
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            config,
            metrics: metrics::Metrics::new(),
            wake: tokio::sync::Notify::new(),
            local: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            issuing: tokio::sync::Mutex::new(()),
            attaching: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn wake_workers(&self) {
        self.wake.notify_waiters();
    }

    /// Keyed by job and lease token: a job this process runs again after
    /// losing its lease is another entry.
    pub(crate) fn register_local(&self, id: &str, token: i64, control: &JobControl) {
        if let Ok(mut m) = self.local.lock() {
            m.insert((id.to_owned(), token), control.clone());
        }
    }

    pub(crate) fn unregister_local(&self, id: &str, token: i64) {
        if let Ok(mut m) = self.local.lock() {
            m.remove(&(id.to_owned(), token));
        }
    }

    /// Stops the analyses of `id` this process runs, if any.
    pub(crate) fn cancel_local(&self, id: &str) {
        let controls: Vec<JobControl> = self
            .local
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((j, _), _)| j == id)
                    .map(|(_, c)| c.clone())
                    .collect()
            })
            .unwrap_or_default();
        for c in controls {
            tracing::info!(job = id, "cancelling the running analysis");
            c.cancel();
        }
    }

    /// One of the few permits a large submission holds while it is read,
    /// parsed and stored (none free: 503 with `Retry-After`).
    pub fn large_submit_permit(
        &self,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, error::ApiError> {
        body::large_permit(&self.large_submits, &self.config.submit).map_err(Into::into)
    }

    /// Large submissions being read and parsed now (each holds one of
    /// `submit.max_large_submits` permits).
    pub fn large_submits_in_flight(&self) -> usize {
        self.config
            .submit
            .max_large_submits
            .min(tokio::sync::Semaphore::MAX_PERMITS)
            .saturating_sub(self.large_submits.available_permits())
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// What a process does besides its job workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `vexxy serve`: also delivers webhooks and sweeps retention, under
    /// the server's policy (e.g. which callback addresses are allowed).
    Server,
    /// `vexxy worker`: runs jobs only.
    Worker,
}

/// The background work of a process: up to `workers` jobs at once, lease
/// recovery and the sweep of dead processes' sandboxes and scratch
/// directories (at once, then every `sweep_every`); for a server also
/// the webhook dispatcher and the retention sweeper. Stops when `stop`
/// turns true; running jobs get the configured grace period.
pub fn spawn_background(
    svc: &Arc<Service>,
    workers: usize,
    role: Role,
    stop: &watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    svc.metrics.workers_total.set(workers as i64);
    svc.metrics.worker_busy(0);
    if workers > 0 {
        set.spawn(worker::dispatch_loop(
            Arc::clone(svc),
            workers,
            stop.clone(),
        ));
    }
    set.spawn(recover_loop(Arc::clone(svc), stop.clone()));
    set.spawn(leftovers::sweep_loop(Arc::clone(svc), stop.clone()));
    if role == Role::Server {
        set.spawn(webhook::dispatch_loop(Arc::clone(svc), stop.clone()));
        set.spawn(sweep_loop(Arc::clone(svc), stop.clone()));
        set.spawn(review::rerun_loop(Arc::clone(svc), stop.clone()));
    }
    set
}

/// Puts jobs of dead workers back in the queue.
async fn recover_loop(svc: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let every = (svc.config.queue.lease / 3).max(std::time::Duration::from_millis(200));
    while !*stop.borrow() {
        let backoff = svc.config.queue.retry_backoff.as_millis() as i64;
        match svc
            .store
            .recover_expired(backoff, worker::failure_webhook)
            .await
        {
            Ok(jobs) if !jobs.is_empty() => {
                for (id, state) in &jobs {
                    tracing::warn!(job = %id, %state, "lease expired: its worker stopped heartbeating");
                }
                svc.wake_workers();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "recovering expired leases failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn sweep_loop(svc: Arc<Service>, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let retention = svc.config.retention.as_millis() as i64;
        match svc.store.sweep(&svc.evidence, retention, 3_600_000).await {
            Ok(s) if s.statistics_stale => {
                tracing::warn!("retention sweep: the database's planner statistics could not be refreshed (retried next sweep)");
            }
            Ok(s) if s.jobs_expired + s.blobs_deleted > 0 || s.sessions_expired > 0 => {
                tracing::info!(
                    jobs = s.jobs_expired,
                    blobs = s.blobs_deleted,
                    sessions = s.sessions_expired,
                    "retention sweep"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention sweep failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(svc.config.sweep_every) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Serves `app` (the API's [`router`], or [`app`] with whatever else the
/// caller serves beside it, e.g. the web UI) on `listener` with the
/// background work, until `shutdown` resolves; then stops taking requests
/// and jobs, lets running jobs finish within the grace period
/// (re-queueing the rest) and returns.
pub async fn serve(
    svc: Arc<Service>,
    app: axum::Router,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = spawn_background(&svc, svc.config.workers, Role::Server, &stop_rx);
    let draining = Arc::clone(&svc);
    let mut http_stop = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = http_stop.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { server.await });
    shutdown.await;
    tracing::info!(
        "shutting down: no new requests or jobs; running jobs get {:?}",
        svc.config.shutdown_grace
    );
    draining.draining.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    while background.join_next().await.is_some() {}
    match server.await {
        Ok(r) => r?,
        Err(e) => tracing::error!(error = %e, "the HTTP server task failed"),
    }
    svc.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Runs workers only (`vexxy worker`): no HTTP, same database and
/// evidence store as the server.
pub async fn run_workers(svc: Arc<Service>, workers: usize, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = spawn_background(&svc, workers, Role::Worker, &stop_rx);
    shutdown.await;
    tracing::info!(
        "shutting down: running jobs get {:?}",
        svc.config.shutdown_grace
    );
    svc.draining.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    while background.join_next().await.is_some() {}
    svc.store.close().await;
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}
