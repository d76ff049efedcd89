//! Storage for the vexxy service: the database (SQLite by default,
//! PostgreSQL to scale out) with its migrations, the job queue with
//! leases and fencing, tenants and keys, the audit log, the webhook
//! outbox, retention, the content-addressed evidence store, and the
//! exponential backoff of every retry.
//!
//! No HTTP here, and no analysis: the server and the workers call in.

pub mod audit;
mod backoff;
mod db;
pub mod evidence;
pub mod jobs;
pub mod model;
pub mod retention;
#[cfg(feature = "s3")]
pub mod s3;
pub mod tenants;
pub mod webhooks;

pub use backoff::Backoff;
pub use db::{redact, Backend, Store};
pub use evidence::{EvidenceStore, LocalStore};
pub use model::{Artifact, Caller, Job, JobEvent, JobState, Org, Tier};

/// What can go wrong in storage. The text names the path, id or digest.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("not a sha256 digest: {0:?}")]
    BadDigest(String),
    #[error("evidence blob {0} does not match its digest")]
    Corrupt(String),
    #[error("object storage: {0}")]
    Object(String),
    #[error("unsupported database url {0} (sqlite://FILE or postgres://…)")]
    BadUrl(String),
    #[error("connecting to {0}: {1}")]
    Connect(String, String),
    #[error("migrating {0}: {1}")]
    Migrate(String, String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

/// Now, in Unix milliseconds (the unit of every time column).
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
