//! Storage for the vexxy service: the database (SQLite by default,
//! PostgreSQL to scale out) with its migrations, the job queue with
//! leases and fencing, tenants and keys, the audit log, the webhook
//! outbox, retention, the content-addressed evidence store, the
//! organisations' signing keys, registry credentials and allow-lists
//! (secrets sealed under the server's key, [`secrets`]), the human review
//! loop (statements per finding, decisions, images and their VEX
//! versions, [`review`]), the web UI's sign-in sessions ([`sessions`]),
//! and the exponential backoff of every retry.
//!
//! No HTTP here, and no analysis: the server and the workers call in.

pub mod audit;
mod backoff;
mod db;
pub mod evidence;
pub mod jobs;
pub mod model;
pub mod org_secrets;
pub mod retention;
pub mod review;
#[cfg(feature = "s3")]
pub mod s3;
pub mod secrets;
pub mod sessions;
pub mod tenants;
pub mod webhooks;

pub use backoff::Backoff;
pub use db::{free_space, redact, Backend, Store};
pub use evidence::{EvidenceStore, LocalStore};
pub use model::{Artifact, Caller, Job, JobEvent, JobState, Org, Tier};
pub use secrets::{SecretString, SecretsError, ServerKey};
pub use sessions::WebSession;

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
    /// Less free space than the service keeps in reserve.
    #[error("{path}: {free} bytes free, below the {min} bytes kept in reserve")]
    Full { path: String, free: u64, min: u64 },
    /// The storage did not answer in time or cannot take writes now.
    #[error("{0}")]
    Unavailable(String),
    /// A tenant's secret could not be sealed or opened (no server key,
    /// another server key, a changed value). Never carries the secret.
    /// (Boxed: it names the organisation and keys, and every storage
    /// result carries this type.)
    #[error(transparent)]
    Secrets(Box<SecretsError>),
}

impl From<SecretsError> for StoreError {
    fn from(e: SecretsError) -> Self {
        Self::Secrets(Box::new(e))
    }
}

impl StoreError {
    /// The storage cannot serve now but may later (a full disk, a locked
    /// or unreachable database, a timeout): the request is worth
    /// retrying, and the service answers 503 rather than 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Full { .. } | Self::Unavailable(_) | Self::Connect(..) => true,
            Self::Io(_, e) => io_unavailable(e),
            Self::Db(e) => db_unavailable(e),
            _ => false,
        }
    }

    /// The storage is out of space (the database's disk, or the reserve).
    pub fn is_full(&self) -> bool {
        match self {
            Self::Full { .. } => true,
            Self::Io(_, e) => e.raw_os_error() == Some(28), // ENOSPC
            Self::Db(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("13" | "53100"))
            }
            _ => false,
        }
    }
}

fn io_unavailable(e: &std::io::Error) -> bool {
    // ENOSPC, EDQUOT, EIO, EROFS
    matches!(e.raw_os_error(), Some(28 | 122 | 5 | 30))
        || matches!(
            e.kind(),
            std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
        )
}

/// Errors of a database that is full, locked, gone or overloaded, as
/// opposed to a query that is wrong.
fn db_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(e) => {
            let code = e.code().unwrap_or_default();
            // a PostgreSQL SQLSTATE has five characters (many all digits:
            // 57014, 53100, 08006); SQLite's result codes are plain numbers
            let sqlite = if code.len() == 5 {
                Err(())
            } else {
                code.parse::<i64>().map_err(|_| ())
            };
            match sqlite {
                // SQLite (extended) result codes: BUSY, LOCKED, NOMEM,
                // READONLY, IOERR, FULL, CANTOPEN, PROTOCOL
                Ok(n) => matches!(n & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14 | 15),
                // PostgreSQL SQLSTATEs: connection exceptions, insufficient
                // resources (disk full, out of memory, too many
                // connections), operator intervention (shutdown, statement
                // or lock timeout), serialization failures
                Err(_) => {
                    code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57")
                        || matches!(code.as_ref(), "55P03" | "40001" | "40P01")
                }
            }
        }
        _ => false,
    }
}

/// Now, in Unix milliseconds (the unit of every time column).
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
