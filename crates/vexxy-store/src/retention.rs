//! Evidence retention. Jobs finished longer ago than the retention period
//! lose their artifacts (the job row, its events and the audit log stay);
//! blobs that no artifact and no VEX version (`vex_versions`: an image's
//! issued documents and envelopes, kept as long as their rows) names any
//! more, and that nobody referenced within a grace period, are deleted
//! from the evidence store. Expired web sign-in sessions go too.

use sqlx::Row as _;

use crate::{evidence::EvidenceStore, now_ms, Store, StoreError};

/// What one sweep removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub jobs_expired: usize,
    pub blobs_deleted: usize,
    /// Expired web sign-in sessions deleted ([`Store::sweep_web_sessions`]).
    pub sessions_expired: u64,
    /// Refreshing the planner's statistics failed (retried next sweep).
    pub statistics_stale: bool,
}

impl Store {
    /// Notes that a blob is (about to be) referenced. Called before the
    /// blob is written, so the sweeper leaves it alone for `grace`.
    pub async fn touch_blob(&self, digest: &str, size: i64) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        sqlx::query(
            "INSERT INTO blobs (digest, size, last_referenced_at) VALUES ($1, $2, $3) \
             ON CONFLICT (digest) DO UPDATE SET last_referenced_at = excluded.last_referenced_at",
        )
        .bind(digest)
        .bind(size)
        .bind(now_ms())
        .execute(w.conn())
        .await?;
        w.done();
        Ok(())
    }

    /// Expires jobs finished before `now - retention_ms`, deletes blobs
    /// unreferenced for longer than `grace_ms` and deletes expired web
    /// sign-in sessions.
    pub async fn sweep(
        &self,
        evidence: &EvidenceStore,
        retention_ms: i64,
        grace_ms: i64,
    ) -> Result<Swept, StoreError> {
        let now = now_ms();
        let cutoff = now - retention_ms;
        let mut swept = Swept::default();
        let ids: Vec<String> = sqlx::query(
            "SELECT id FROM jobs WHERE completed_at < $1 AND expired_at IS NULL \
             AND state IN ('complete', 'failed', 'cancelled') ORDER BY completed_at LIMIT 1000",
        )
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
        for id in ids {
            let mut w = self.writer().await?;
            let mut tx = w.begin().await?;
            // the submitted report goes too: tenant data is not kept past retention
            let expired = sqlx::query(
                "UPDATE jobs SET expired_at = $1, dedupe_key = NULL, request = '{}' \
                 WHERE id = $2 AND expired_at IS NULL",
            )
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            if expired.rows_affected() == 0 {
                // another process' sweeper got there first
                tx.rollback().await?;
                w.done();
                continue;
            }
            sqlx::query("DELETE FROM artifacts WHERE job_id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO audit_log (at, action, job_id, detail) VALUES ($1, 'expire_evidence', $2, 'retention')",
            )
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            w.done();
            swept.jobs_expired += 1;
        }
        swept.sessions_expired = self.sweep_web_sessions(now).await?;
        let orphans: Vec<String> = sqlx::query(
            "SELECT digest FROM blobs b WHERE last_referenced_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.digest = b.digest) \
             AND NOT EXISTS (SELECT 1 FROM vex_versions v WHERE v.document_digest = b.digest) \
             AND NOT EXISTS (SELECT 1 FROM vex_versions v WHERE v.envelope_digest = b.digest) \
             LIMIT 10000",
        )
        .bind(now - grace_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("digest"))
        .collect::<Result<_, _>>()?;
        for digest in orphans {
            // the row goes first, and only if still unreferenced and not
            // touched since; the blob is deleted before the transaction
            // commits, so a writer touching the row meanwhile waits and
            // then writes the blob again
            let mut w = self.writer().await?;
            let mut tx = w.begin().await?;
            let gone = sqlx::query(
                "DELETE FROM blobs WHERE digest = $1 AND last_referenced_at < $2 \
                 AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.digest = $1) \
                 AND NOT EXISTS (SELECT 1 FROM vex_versions v WHERE v.document_digest = $1) \
                 AND NOT EXISTS (SELECT 1 FROM vex_versions v WHERE v.envelope_digest = $1)",
            )
            .bind(&digest)
            .bind(now - grace_ms)
            .execute(&mut *tx)
            .await?;
            if gone.rows_affected() == 1 {
                evidence.delete(&digest).await?;
                swept.blobs_deleted += 1;
            }
            tx.commit().await?;
            w.done();
        }
        // the planner's statistics follow the data's growth; last, and
        // never in the way of freeing space (ANALYZE writes: on a full
        // disk it fails, and the next sweep tries again)
        if self.refresh_statistics().await.is_err() {
            swept.statistics_stale = true;
        }
        Ok(swept)
    }

    /// Makes every finished job look finished `age_ms` earlier (tests of
    /// retention only; the clock cannot be moved in a real database).
    #[doc(hidden)]
    pub async fn backdate_for_tests(&self, job_id: &str, age_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET completed_at = completed_at - $1, created_at = created_at - $1 WHERE id = $2",
        )
        .bind(age_ms)
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        sqlx::query("UPDATE blobs SET last_referenced_at = last_referenced_at - $1")
            .bind(age_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Makes every queued job runnable now (tests of backoff only).
    #[doc(hidden)]
    pub async fn expedite_for_tests(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET run_after = 0 WHERE state = 'queued'")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
