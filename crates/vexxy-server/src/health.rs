//! Whether this process can take work: the readiness probe (`/readyz`)
//! and the admission of new submissions. Both look at the storage a job
//! needs — the database (free space on a SQLite file's disk, and a write
//! that commits) and the evidence store (free space on a local
//! directory's disk, and a probe write) — afresh every time: once space
//! returns, the service is ready again without a restart.

use std::time::Duration;

use vexxy_store::StoreError;

use crate::{error::ApiError, Service};

/// How long a probe write may take before the storage counts as unavailable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a 503 for full or unavailable storage asks clients to wait.
pub const STORAGE_RETRY_AFTER_SECS: u64 = 30;

/// `Ok` when the database and the evidence store take writes now and
/// both keep [`ServiceConfig::min_free_bytes`](crate::ServiceConfig)
/// free; else a 503 saying which and why (for operators: `/readyz`).
pub async fn readiness(svc: &Service) -> Result<(), ApiError> {
    let min = svc.config.min_free_bytes;
    svc.store
        .check_writable(min, PROBE_TIMEOUT)
        .await
        .map_err(|e| not_ready("database", &e))?;
    match tokio::time::timeout(PROBE_TIMEOUT, svc.evidence.check_writable(min)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(not_ready(&svc.evidence.describe(), &e)),
        Err(_) => Err(ApiError::unavailable(format!(
            "not ready: evidence store {}: a probe write took longer than {} ms",
            svc.evidence.describe(),
            PROBE_TIMEOUT.as_millis()
        ))),
    }
}

fn not_ready(what: &str, e: &StoreError) -> ApiError {
    tracing::warn!(error = %e, "not ready: {what}");
    ApiError::unavailable(format!("not ready: {what}: {e}"))
}

/// Refuses new work (503 with `Retry-After`) while the database's or the
/// evidence store's disk has less free space than the reserve: what is
/// left is for the jobs already running to store their results. Only
/// looks (statvfs), writes nothing.
pub fn admit(svc: &Service) -> Result<(), ApiError> {
    let min = svc.config.min_free_bytes;
    let full = svc
        .store
        .check_space(min)
        .err()
        .or_else(|| svc.evidence.check_space(min).err());
    match full {
        None => Ok(()),
        Some(e) => {
            tracing::warn!(error = %e, "refusing a submission: storage below its reserve");
            Err(storage_unavailable(&e))
        }
    }
}

/// The 503 a tenant sees when storage is full or unavailable: what
/// happened in general terms (details are in the server log), and when
/// to try again.
pub(crate) fn storage_unavailable(e: &StoreError) -> ApiError {
    let mut err = ApiError::unavailable(if e.is_full() {
        "the service's storage is full; nothing was changed, try again later"
    } else {
        "the service's storage is unavailable; try again later"
    });
    err.retry_after = Some(STORAGE_RETRY_AFTER_SECS);
    err
}
