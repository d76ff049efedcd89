//! Prometheus metrics. Job counts by state and the queue depth are read
//! from the database at scrape time (they span every worker process);
//! durations, utilisation and deliveries are this process' own.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use vexxy_store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabel {
    pub method: String,
    pub status: u16,
}

/// Every metric this process exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub jobs: Family<StateLabel, Gauge>,
    pub queue_depth: Gauge,
    pub job_duration: Family<OutcomeLabel, Histogram>,
    pub workers_total: Gauge,
    pub workers_busy: Gauge,
    pub worker_utilisation: Gauge<f64, AtomicU64>,
    pub webhook_deliveries: Family<OutcomeLabel, Counter>,
    pub http_requests: Family<HttpLabel, Counter>,
    /// Statements waiting for a person (every organisation; no label
    /// names a tenant: each organisation's own is its dashboard's).
    pub review_backlog: Gauge,
    /// Images with a current VEX / images seen (every organisation).
    pub vex_coverage: Gauge<f64, AtomicU64>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vexxy");
        let jobs = Family::<StateLabel, Gauge>::default();
        registry.register("jobs", "Jobs by state (all workers)", jobs.clone());
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Queued jobs (all workers)",
            queue_depth.clone(),
        );
        let job_duration = Family::<OutcomeLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                5.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0, 600.0, 900.0,
            ])
        });
        registry.register(
            "job_duration_seconds",
            "Wall time of job attempts run by this process, by outcome",
            job_duration.clone(),
        );
        let workers_total = Gauge::default();
        registry.register("workers", "Workers in this process", workers_total.clone());
        let workers_busy = Gauge::default();
        registry.register(
            "workers_busy",
            "Workers of this process running a job",
            workers_busy.clone(),
        );
        let worker_utilisation = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "worker_utilisation_ratio",
            "Busy workers / workers in this process",
            worker_utilisation.clone(),
        );
        let webhook_deliveries = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by outcome",
            webhook_deliveries.clone(),
        );
        let http_requests = Family::<HttpLabel, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served",
            http_requests.clone(),
        );
        let review_backlog = Gauge::default();
        registry.register(
            "review_backlog",
            "Statements in the review queue (every organisation)",
            review_backlog.clone(),
        );
        let vex_coverage = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "vex_coverage_ratio",
            "Images with a current VEX / images seen (every organisation)",
            vex_coverage.clone(),
        );
        Self {
            registry,
            review_backlog,
            vex_coverage,
            jobs,
            queue_depth,
            job_duration,
            workers_total,
            workers_busy,
            worker_utilisation,
            webhook_deliveries,
            http_requests,
        }
    }

    pub fn worker_busy(&self, delta: i64) {
        self.workers_busy.inc_by(delta);
        let total = self.workers_total.get();
        let busy = self.workers_busy.get();
        self.worker_utilisation.set(if total > 0 {
            busy as f64 / total as f64
        } else {
            0.0
        });
    }

    /// The exposition text, after refreshing the database-wide gauges.
    pub async fn render(&self, store: &Store) -> Result<String, vexxy_store::StoreError> {
        for (state, n) in store.job_counts().await? {
            self.jobs
                .get_or_create(&StateLabel {
                    state: state.to_string(),
                })
                .set(n);
            if state == vexxy_store::JobState::Queued {
                self.queue_depth.set(n);
            }
        }
        let (mut backlog, mut seen, mut with_vex) = (0, 0, 0);
        for (_, b, s, v) in store.review_gauges(vexxy_store::now_ms()).await? {
            backlog += b;
            seen += s;
            with_vex += v;
        }
        self.review_backlog.set(backlog);
        self.vex_coverage.set(if seen > 0 {
            with_vex as f64 / seen as f64
        } else {
            0.0
        });
        let mut out = String::new();
        encode(&mut out, &self.registry)
            .map_err(|e| vexxy_store::StoreError::Invalid(e.to_string()))?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
