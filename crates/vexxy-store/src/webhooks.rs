//! The webhook outbox: deliveries are queued in the transaction that
//! finishes a job, then claimed (leased, like jobs) by a dispatcher that
//! POSTs them and records every attempt.

use sqlx::Row as _;

use crate::{now_ms, Store, StoreError};

/// A delivery claimed for sending.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: String,
    pub job_id: String,
    pub org_id: String,
    pub url: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// Who holds the lease on it.
    pub owner: String,
}

/// A delivery as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: String,
    pub url: String,
    pub state: String,
    pub attempts: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
}

/// One attempt to deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: i64,
    pub at: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// How an attempt went.
#[derive(Clone, Debug)]
pub struct AttemptResult {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub delivered: bool,
    /// When not delivered: when to try again, or `None` to give up.
    pub retry_in_ms: Option<i64>,
}

impl Store {
    /// The next due delivery, leased to `owner` for `lease_ms`.
    pub async fn claim_delivery(
        &self,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<Delivery>, StoreError> {
        let now = now_ms();
        let mut w = self.writer().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE webhook_deliveries SET lease_owner = $1, lease_expires_at = $2 \
             WHERE id = (SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= $3 \
                         AND (lease_expires_at IS NULL OR lease_expires_at < $3) \
                         ORDER BY next_attempt_at LIMIT 1{}) \
             AND state = 'pending' \
             RETURNING id, job_id, org_id, url, payload, attempts",
            self.backend.skip_locked()
        )))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .fetch_optional(w.conn())
        .await?;
        w.done();
        row.map(|r| {
            Ok(Delivery {
                id: r.try_get("id")?,
                job_id: r.try_get("job_id")?,
                org_id: r.try_get("org_id")?,
                url: r.try_get("url")?,
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
                owner: owner.to_owned(),
            })
        })
        .transpose()
    }

    /// Records an attempt and moves the delivery on (delivered, retry
    /// later, or failed for good).
    pub async fn record_attempt(
        &self,
        d: &Delivery,
        result: &AttemptResult,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let attempt = d.attempts + 1;
        let state = if result.delivered {
            "delivered"
        } else if result.retry_in_ms.is_some() {
            "pending"
        } else {
            "failed"
        };
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        // fenced by the lease: a dispatcher that stalled past it records nothing
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = $2, next_attempt_at = $3, \
             delivered_at = $4, last_error = $5, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $6 AND lease_owner = $7 AND attempts = $8",
        )
        .bind(state)
        .bind(attempt)
        .bind(now + result.retry_in_ms.unwrap_or(0))
        .bind(result.delivered.then_some(now))
        .bind(&result.error)
        .bind(&d.id)
        .bind(&d.owner)
        .bind(d.attempts)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            w.done();
            tracing::warn!(delivery = %d.id, "the delivery's lease was lost; this attempt is not recorded");
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&d.id)
        .bind(attempt)
        .bind(now)
        .bind(result.status_code.map(i64::from))
        .bind(&result.error)
        .bind(result.duration_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        w.done();
        Ok(())
    }

    pub async fn deliveries(&self, job_id: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, url, state, attempts, delivered_at, last_error FROM webhook_deliveries \
             WHERE job_id = $1 ORDER BY created_at, id",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryRecord {
                    id: r.try_get("id")?,
                    url: r.try_get("url")?,
                    state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    delivered_at: r.try_get("delivered_at")?,
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect()
    }

    pub async fn delivery_attempts(&self, delivery_id: &str) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts \
             WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Attempt {
                    attempt: r.try_get("attempt")?,
                    at: r.try_get("at")?,
                    status_code: r.try_get("status_code")?,
                    error: r.try_get("error")?,
                    duration_ms: r.try_get("duration_ms")?,
                })
            })
            .collect()
    }
}
