//! The job queue on the `jobs` table.
//!
//! Every state change is one conditional `UPDATE` (or one transaction), so
//! the row is the truth whatever the number of workers:
//! - a worker *claims* a queued job by bumping its `lease_token` and
//!   setting `lease_expires_at`; heartbeats extend the lease;
//! - every later write by that worker names the token it got (fencing): a
//!   worker that lost its lease (it stalled, it was killed, the job was
//!   cancelled) can no longer change the job, so a job completes once;
//! - a lease that expires puts the job back to `queued` (or `failed` when
//!   it used up its attempts): a job whose worker died is picked up again;
//! - results are stored (blobs and `artifacts` rows, and the image's
//!   statements when the job brings an analysis record) in the same
//!   transaction that marks the job complete and queues its webhook.

use sqlx::{any::AnyRow, Row as _};

use crate::{
    audit::insert_audit,
    model::{Artifact, Job, JobEvent, JobState},
    now_ms,
    review::{record_analysis_tx, AnalysisRecord, ChangeSet},
    tenants::new_id,
    Backoff, Store, StoreError,
};

/// Everything but the submitted request, which can be megabytes (the
/// scanner report): status polls and listings never load it.
const JOB_COLUMNS: &str = "id, org_id, image_ref, image_digest, callback_url, priority, \
    state, progress, phase, attempts, max_attempts, lease_owner, lease_token, timeout_ms, error, \
    summary, created_at, started_at, completed_at, updated_at, expired_at, attestation";

/// What a worker needs: the columns and the request.
const CLAIM_COLUMNS: &str =
    "id, org_id, image_ref, image_digest, request, callback_url, priority, \
    state, progress, phase, attempts, max_attempts, lease_owner, lease_token, timeout_ms, error, \
    summary, created_at, started_at, completed_at, updated_at, expired_at, attestation";

fn job_from_row(row: &AnyRow) -> Result<Job, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(Job {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        image_ref: row.try_get("image_ref")?,
        image_digest: row.try_get("image_digest")?,
        // absent where the query left it out (JOB_COLUMNS)
        request: row.try_get("request").ok(),
        callback_url: row.try_get("callback_url")?,
        priority: row.try_get("priority")?,
        state: state.parse().map_err(StoreError::Corrupt)?,
        progress: row.try_get("progress")?,
        phase: row.try_get("phase")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_token: row.try_get("lease_token")?,
        timeout_ms: row.try_get("timeout_ms")?,
        error: row.try_get("error")?,
        summary: row.try_get("summary")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
        updated_at: row.try_get("updated_at")?,
        expired_at: row.try_get("expired_at")?,
        attestation: row.try_get("attestation")?,
    })
}

/// A job to enqueue.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub org_id: String,
    /// Identical requests of one organisation share this key (a hash of
    /// image, digest, configuration and report).
    pub dedupe_key: String,
    pub image_ref: String,
    pub image_digest: Option<String>,
    pub request: String,
    pub callback_url: Option<String>,
    pub priority: i64,
    pub max_attempts: i64,
    pub timeout_ms: i64,
    /// The API key that submits it: the audit log's `submit` entry is
    /// written in the same transaction as the job (or its dedupe).
    pub key_id: Option<String>,
}

/// What a submission led to.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one per request, never stored
pub enum Submitted {
    Created(Job),
    /// An identical request exists (queued, running or complete).
    Existing(Job),
    QuotaExceeded {
        used: i64,
        limit: i64,
    },
}

/// What a cancellation led to.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one per request, never stored
pub enum Cancelled {
    Cancelled(Job),
    AlreadyFinished(JobState),
}

/// A claimed job: the worker may write to it while `token` is current.
#[derive(Clone, Debug)]
pub struct Lease {
    pub job: Job,
    pub worker: String,
    pub token: i64,
}

/// A webhook to queue with a completion.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub url: String,
    pub payload: String,
}

/// What completing a job stores ([`Store::complete_job`]).
pub struct Completion<'a> {
    /// The analysed manifest's digest (kept if the job had one).
    pub image_digest: Option<&'a str>,
    pub artifacts: &'a [Artifact],
    /// Verdict counts (JSON).
    pub summary: &'a str,
    /// What the job attached to its image (JSON).
    pub attestation: Option<&'a str>,
    /// The callback, built inside the completing transaction from what
    /// recording the analysis changed (`None` without an analysis).
    pub webhook: Option<WebhookFor<'a>>,
    /// The image's statements, per finding.
    pub analysis: Option<AnalysisRecord>,
}

impl std::fmt::Debug for Completion<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("image_digest", &self.image_digest)
            .field("artifacts", &self.artifacts)
            .field("webhook", &self.webhook.is_some())
            .field("analysis", &self.analysis)
            .finish_non_exhaustive()
    }
}

/// Builds a completed job's callback from what recording its analysis
/// changed, so the callback tells exactly what was committed.
pub type WebhookFor<'a> = Box<dyn FnOnce(Option<&ChangeSet>) -> NewDelivery + Send + 'a>;

/// What [`Store::complete_job`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Completed {
    /// The job is complete; with an analysis, what recording it changed.
    Done(Option<ChangeSet>),
    /// The lease was lost (cancelled, expired and re-claimed): nothing
    /// was written.
    LeaseLost,
}

impl Completed {
    pub fn is_done(&self) -> bool {
        matches!(self, Self::Done(_))
    }

    /// What the analysis changed (`None` without one, or when the lease
    /// was lost).
    pub fn changes(&self) -> Option<&ChangeSet> {
        match self {
            Self::Done(changes) => changes.as_ref(),
            Self::LeaseLost => None,
        }
    }
}

/// Filters for listing jobs.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    /// Substring of the image reference.
    pub image: Option<String>,
    /// 1-based.
    pub page: i64,
    pub per_page: i64,
}

impl Store {
    /// Enqueues a job, unless the organisation has an identical one or its
    /// monthly quota is spent. Serialised per organisation (the first
    /// statement locks its row), so concurrent submits cannot overrun the
    /// quota or duplicate a job. The job (or the dedupe) and its audit
    /// log entry are committed together.
    pub async fn submit(
        &self,
        new: NewJob,
        quota: i64,
        window: (i64, i64),
    ) -> Result<Submitted, StoreError> {
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        let locked = sqlx::query("UPDATE orgs SET submit_seq = submit_seq + 1 WHERE id = $1")
            .bind(&new.org_id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("organisation {}", new.org_id)));
        }
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE org_id = $1 AND dedupe_key = $2"
        )))
        .bind(&new.org_id)
        .bind(&new.dedupe_key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let job = job_from_row(&row)?;
            insert_audit(
                &mut tx,
                Some(&new.org_id),
                new.key_id.as_deref(),
                "submit",
                Some(&job.id),
                Some("deduplicated"),
            )
            .await?;
            tx.commit().await?;
            w.done();
            return Ok(Submitted::Existing(job));
        }
        let used: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs WHERE org_id = $1 AND created_at >= $2 AND created_at < $3",
        )
        .bind(&new.org_id)
        .bind(window.0)
        .bind(window.1)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if used >= quota {
            tx.rollback().await?;
            w.done();
            return Ok(Submitted::QuotaExceeded { used, limit: quota });
        }
        let id = new_id("job");
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO jobs (id, org_id, dedupe_key, image_ref, image_digest, request, callback_url, \
             priority, state, max_attempts, run_after, timeout_ms, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $10, $11, $10, $10) \
             RETURNING {JOB_COLUMNS}"
        )))
        .bind(&id)
        .bind(&new.org_id)
        .bind(&new.dedupe_key)
        .bind(&new.image_ref)
        .bind(&new.image_digest)
        .bind(&new.request)
        .bind(&new.callback_url)
        .bind(new.priority)
        .bind(new.max_attempts)
        .bind(now)
        .bind(new.timeout_ms)
        .fetch_one(&mut *tx)
        .await?;
        let job = job_from_row(&row)?;
        insert_event(&mut tx, &id, JobState::Queued, None, 0, Some("submitted")).await?;
        insert_audit(
            &mut tx,
            Some(&new.org_id),
            new.key_id.as_deref(),
            "submit",
            Some(&id),
            Some("queued"),
        )
        .await?;
        tx.commit().await?;
        w.done();
        Ok(Submitted::Created(job))
    }

    /// The job, if it exists and (when `org_id` is given) belongs to that
    /// organisation: another organisation's job is as good as absent.
    pub async fn job(&self, org_id: Option<&str>, id: &str) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => {
                let job = job_from_row(&row)?;
                Ok((org_id.is_none_or(|o| o == job.org_id)).then_some(job))
            }
            None => Ok(None),
        }
    }

    /// The request a job was submitted with (JSON; `{}` once retention
    /// expired the job), if the job exists and (when `org_id` is given)
    /// belongs to that organisation: to repeat or re-decide it.
    pub async fn job_request(
        &self,
        org_id: Option<&str>,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT request FROM jobs WHERE id = $1 AND ($2 IS NULL OR org_id = $2)")
                .bind(id)
                .bind(org_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get("request")).transpose()?)
    }

    /// A page of the organisation's jobs, newest first, and the total.
    pub async fn list_jobs(
        &self,
        org_id: &str,
        filter: &JobFilter,
    ) -> Result<(Vec<Job>, i64), StoreError> {
        let state = filter.state.map(JobState::as_str);
        let image = filter
            .image
            .as_ref()
            .map(|i| format!("%{}%", escape_like(i)));
        let total: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs WHERE org_id = $1 \
             AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR image_ref LIKE $3 ESCAPE '\\')",
        )
        .bind(org_id)
        .bind(state)
        .bind(&image)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        let per_page = filter.per_page.clamp(1, 500);
        let offset = (filter.page.max(1) - 1).saturating_mul(per_page);
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE org_id = $1 \
             AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR image_ref LIKE $3 ESCAPE '\\') \
             ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
        )))
        .bind(org_id)
        .bind(state)
        .bind(&image)
        .bind(per_page)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let jobs = rows.iter().map(job_from_row).collect::<Result<_, _>>()?;
        Ok((jobs, total))
    }

    /// Cancels a job that has not finished, with its audit log entry
    /// (naming `key_id`) in the same transaction. A running job's worker
    /// sees it at its next heartbeat (or at once, in process) and tears
    /// the sandbox down; its later writes are refused.
    pub async fn cancel(
        &self,
        org_id: &str,
        key_id: Option<&str>,
        id: &str,
    ) -> Result<Cancelled, StoreError> {
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'cancelled', dedupe_key = NULL, completed_at = $3, updated_at = $3, \
             lease_owner = NULL, lease_expires_at = NULL, phase = NULL \
             WHERE id = $1 AND org_id = $2 AND state IN ('queued', 'running', 'analyzing') \
             RETURNING {JOB_COLUMNS}"
        )))
        .bind(id)
        .bind(org_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            w.done();
            return match self.job(Some(org_id), id).await? {
                Some(job) => Ok(Cancelled::AlreadyFinished(job.state)),
                None => Err(StoreError::NotFound(format!("job {id}"))),
            };
        };
        let job = job_from_row(&row)?;
        insert_event(
            &mut tx,
            id,
            JobState::Cancelled,
            None,
            job.attempts,
            Some("cancelled by the organisation"),
        )
        .await?;
        insert_audit(&mut tx, Some(org_id), key_id, "cancel", Some(id), None).await?;
        tx.commit().await?;
        w.done();
        Ok(Cancelled::Cancelled(job))
    }

    /// Claims the most urgent runnable job for `worker`: highest priority,
    /// then oldest.
    pub async fn claim(&self, worker: &str, lease_ms: i64) -> Result<Option<Lease>, StoreError> {
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_token = lease_token + 1, \
             lease_expires_at = $2, attempts = attempts + 1, started_at = COALESCE(started_at, $3), \
             updated_at = $3, progress = 0, phase = 'starting', error = NULL \
             WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= $3 \
                         ORDER BY priority DESC, created_at ASC, id ASC LIMIT 1{}) \
             AND state = 'queued' \
             RETURNING {CLAIM_COLUMNS}",
            self.backend.skip_locked()
        )))
        .bind(worker)
        .bind(now + lease_ms)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            w.done();
            return Ok(None);
        };
        let job = job_from_row(&row)?;
        insert_event(
            &mut tx,
            &job.id,
            JobState::Running,
            Some(worker),
            job.attempts,
            None,
        )
        .await?;
        tx.commit().await?;
        w.done();
        Ok(Some(Lease {
            token: job.lease_token,
            worker: worker.to_owned(),
            job,
        }))
    }

    /// Extends the lease and records progress. `Ok(false)`: the lease is
    /// gone (cancelled, expired and re-claimed): stop working on the job.
    pub async fn heartbeat(
        &self,
        lease: &Lease,
        lease_ms: i64,
        phase: Option<&str>,
        progress: i64,
        analyzing: bool,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1, updated_at = $2, phase = COALESCE($3, phase), \
             progress = $4, state = CASE WHEN $5 = 1 THEN 'analyzing' ELSE state END \
             WHERE id = $6 AND lease_token = $7 AND state IN ('running', 'analyzing')",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(phase)
        .bind(progress.clamp(0, 100))
        .bind(i64::from(analyzing))
        .bind(&lease.job.id)
        .bind(lease.token)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            w.done();
            return Ok(false);
        }
        if analyzing {
            // the first heartbeat of this attempt in `analyzing` records the change
            sqlx::query(
                "INSERT INTO job_events (job_id, at, state, worker, attempt) \
                 SELECT $1, $2, 'analyzing', $3, $4 WHERE NOT EXISTS \
                 (SELECT 1 FROM job_events WHERE job_id = $1 AND state = 'analyzing' AND attempt = $4)",
            )
            .bind(&lease.job.id)
            .bind(now)
            .bind(&lease.worker)
            .bind(lease.job.attempts)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        w.done();
        Ok(true)
    }

    /// Marks the job complete with its artifacts (blobs already stored)
    /// and queues its webhook, all or nothing. `Ok(false)`: the lease was
    /// lost and nothing was written.
    pub async fn complete(
        &self,
        lease: &Lease,
        image_digest: Option<&str>,
        artifacts: &[Artifact],
        summary: &str,
        webhook: Option<NewDelivery>,
    ) -> Result<bool, StoreError> {
        self.complete_attested(lease, image_digest, artifacts, summary, None, webhook)
            .await
    }

    /// [`Store::complete`] that also records what the job attached to its
    /// image (`attestation`, JSON), in the same transaction.
    pub async fn complete_attested(
        &self,
        lease: &Lease,
        image_digest: Option<&str>,
        artifacts: &[Artifact],
        summary: &str,
        attestation: Option<&str>,
        webhook: Option<NewDelivery>,
    ) -> Result<bool, StoreError> {
        let done = self
            .complete_job(
                lease,
                Completion {
                    image_digest,
                    artifacts,
                    summary,
                    attestation,
                    webhook: webhook.map(|d| -> WebhookFor<'_> { Box::new(move |_| d) }),
                    analysis: None,
                },
            )
            .await?;
        Ok(done.is_done())
    }

    /// Completes the job under its lease: the job's state, its artifacts
    /// (blobs already stored), its webhook and, with `analysis`, the
    /// image's statements ([`crate::review`]) in one transaction. A lost
    /// lease writes nothing ([`Completed::LeaseLost`]). The analysis must
    /// be the job's own (its organisation, its id).
    pub async fn complete_job(
        &self,
        lease: &Lease,
        completion: Completion<'_>,
    ) -> Result<Completed, StoreError> {
        if let Some(rec) = &completion.analysis {
            if rec.org_id != lease.job.org_id || rec.job_id != lease.job.id {
                return Err(StoreError::Invalid(format!(
                    "job {}: the analysis record is of job {} of organisation {}",
                    lease.job.id, rec.job_id, rec.org_id
                )));
            }
            if completion
                .image_digest
                .is_some_and(|d| d != rec.image_digest)
            {
                return Err(StoreError::Invalid(format!(
                    "job {}: the analysis record is of image {}, the job of {}",
                    lease.job.id,
                    rec.image_digest,
                    completion.image_digest.unwrap_or_default()
                )));
            }
        }
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        // the first statement writes: SQLite's write lock is taken here
        let done = sqlx::query(
            "UPDATE jobs SET state = 'complete', progress = 100, phase = NULL, summary = $1, \
             image_digest = COALESCE(image_digest, $2), completed_at = $3, updated_at = $3, \
             lease_owner = NULL, lease_expires_at = NULL, error = NULL, attestation = $6 \
             WHERE id = $4 AND lease_token = $5 AND state IN ('running', 'analyzing')",
        )
        .bind(completion.summary)
        .bind(completion.image_digest)
        .bind(now)
        .bind(&lease.job.id)
        .bind(lease.token)
        .bind(completion.attestation)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            w.done();
            return Ok(Completed::LeaseLost);
        }
        for a in completion.artifacts {
            sqlx::query(
                "INSERT INTO artifacts (job_id, name, digest, size, media_type, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&lease.job.id)
            .bind(&a.name)
            .bind(&a.digest)
            .bind(a.size)
            .bind(&a.media_type)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let changes = match &completion.analysis {
            Some(rec) => Some(record_analysis_tx(&mut tx, rec, now).await?),
            None => None,
        };
        if let Some(build) = completion.webhook {
            let hook = build(changes.as_ref());
            insert_delivery(&mut tx, &lease.job.id, &lease.job.org_id, &hook, now).await?;
        }
        insert_event(
            &mut tx,
            &lease.job.id,
            JobState::Complete,
            Some(&lease.worker),
            lease.job.attempts,
            None,
        )
        .await?;
        tx.commit().await?;
        w.done();
        Ok(Completed::Done(changes))
    }

    /// Records a failed attempt: back to `queued` after `backoff_ms` when
    /// `retry` and attempts remain, `failed` otherwise (and the webhook,
    /// if any, is queued). `Ok(None)`: the lease was lost.
    pub async fn fail(
        &self,
        lease: &Lease,
        error: &str,
        retry: bool,
        backoff_ms: i64,
        webhook: Option<NewDelivery>,
    ) -> Result<Option<JobState>, StoreError> {
        let now = now_ms();
        let again = retry && lease.job.attempts < lease.job.max_attempts;
        let state = if again {
            JobState::Queued
        } else {
            JobState::Failed
        };
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, error = $2, run_after = $3, updated_at = $4, \
             completed_at = CASE WHEN $1 = 'failed' THEN $4 ELSE NULL END, \
             dedupe_key = CASE WHEN $1 = 'failed' THEN NULL ELSE dedupe_key END, \
             lease_owner = NULL, lease_expires_at = NULL, phase = NULL \
             WHERE id = $5 AND lease_token = $6 AND state IN ('running', 'analyzing')",
        )
        .bind(state.as_str())
        .bind(truncate(error, 4000))
        .bind(now + backoff_ms.max(0))
        .bind(now)
        .bind(&lease.job.id)
        .bind(lease.token)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            w.done();
            return Ok(None);
        }
        if let (JobState::Failed, Some(hook)) = (state, webhook) {
            insert_delivery(&mut tx, &lease.job.id, &lease.job.org_id, &hook, now).await?;
        }
        insert_event(
            &mut tx,
            &lease.job.id,
            state,
            Some(&lease.worker),
            lease.job.attempts,
            Some(truncate(error, 4000)),
        )
        .await?;
        tx.commit().await?;
        w.done();
        Ok(Some(state))
    }

    /// Gives a claimed job back without counting the attempt (a worker
    /// shutting down). `Ok(false)`: the lease was already gone.
    pub async fn release(&self, lease: &Lease, why: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = attempts - 1, run_after = $1, updated_at = $1, \
             lease_owner = NULL, lease_expires_at = NULL, phase = NULL, progress = 0 \
             WHERE id = $2 AND lease_token = $3 AND state IN ('running', 'analyzing')",
        )
        .bind(now)
        .bind(&lease.job.id)
        .bind(lease.token)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            w.done();
            return Ok(false);
        }
        insert_event(
            &mut tx,
            &lease.job.id,
            JobState::Queued,
            Some(&lease.worker),
            lease.job.attempts,
            Some(why),
        )
        .await?;
        tx.commit().await?;
        w.done();
        Ok(true)
    }

    /// Jobs whose worker stopped heartbeating: back to `queued`, or
    /// `failed` when out of attempts, in which case `webhook` may queue the
    /// job's callback in the same transaction. A lost worker is a failed
    /// attempt: the job waits as after any other ([`Backoff`] from
    /// `backoff_ms`, doubling per attempt, capped at
    /// [`Backoff::DEFAULT_CAP`]). Returns their ids and new states.
    pub async fn recover_expired(
        &self,
        backoff_ms: i64,
        webhook: impl Fn(&Job) -> Option<NewDelivery>,
    ) -> Result<Vec<(String, JobState)>, StoreError> {
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET \
               state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
               dedupe_key = CASE WHEN attempts >= max_attempts THEN NULL ELSE dedupe_key END, \
               completed_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END, \
               error = 'the worker ' || COALESCE(lease_owner, '?') || ' stopped heartbeating', \
               run_after = $2, updated_at = $1, lease_owner = NULL, lease_expires_at = NULL, phase = NULL \
             WHERE state IN ('running', 'analyzing') AND lease_expires_at < $1 \
             RETURNING {CLAIM_COLUMNS}"
        )))
        .bind(now)
        .bind(now + backoff_ms.max(0))
        .fetch_all(&mut *tx)
        .await?;
        let backoff = Backoff::new(
            std::time::Duration::from_millis(u64::try_from(backoff_ms).unwrap_or(0)),
            Backoff::DEFAULT_CAP,
        );
        let mut out = Vec::new();
        for row in rows {
            let job = job_from_row(&row)?;
            let wait = backoff.delay_ms(job.attempts);
            if job.state == JobState::Queued && wait != backoff_ms.max(0) {
                sqlx::query("UPDATE jobs SET run_after = $1 WHERE id = $2 AND state = 'queued'")
                    .bind(now.saturating_add(wait))
                    .bind(&job.id)
                    .execute(&mut *tx)
                    .await?;
            }
            insert_event(
                &mut tx,
                &job.id,
                job.state,
                None,
                job.attempts,
                job.error.as_deref(),
            )
            .await?;
            if job.state == JobState::Failed {
                if let Some(hook) = webhook(&job) {
                    insert_delivery(&mut tx, &job.id, &job.org_id, &hook, now).await?;
                }
            }
            out.push((job.id, job.state));
        }
        tx.commit().await?;
        w.done();
        Ok(out)
    }

    /// The job's state changes, oldest first.
    pub async fn job_events(&self, id: &str) -> Result<Vec<JobEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, state, worker, attempt, detail FROM job_events WHERE job_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                Ok(JobEvent {
                    at: row.try_get("at")?,
                    state: state.parse().map_err(StoreError::Corrupt)?,
                    worker: row.try_get("worker")?,
                    attempt: row.try_get("attempt")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }

    /// Jobs per state, over every organisation (for metrics).
    pub async fn job_counts(&self) -> Result<Vec<(JobState, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<(JobState, i64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        for row in rows {
            let state: String = row.try_get("state")?;
            let n: i64 = row.try_get("n")?;
            if let Ok(state) = state.parse::<JobState>() {
                if let Some(entry) = out.iter_mut().find(|(s, _)| *s == state) {
                    entry.1 = n;
                }
            }
        }
        Ok(out)
    }

    /// The job's artifacts, by name.
    pub async fn artifacts(&self, job_id: &str) -> Result<Vec<Artifact>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, digest, size, media_type FROM artifacts WHERE job_id = $1 ORDER BY name",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Artifact {
                    name: row.try_get("name")?,
                    digest: row.try_get("digest")?,
                    size: row.try_get("size")?,
                    media_type: row.try_get("media_type")?,
                })
            })
            .collect()
    }
}

/// Queues a webhook in the transaction that finishes the job.
async fn insert_delivery(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: &str,
    org_id: &str,
    hook: &NewDelivery,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, job_id, org_id, url, payload, state, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6)",
    )
    .bind(new_id("dlv"))
    .bind(job_id)
    .bind(org_id)
    .bind(&hook.url)
    .bind(&hook.payload)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: &str,
    state: JobState,
    worker: Option<&str>,
    attempt: i64,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO job_events (job_id, at, state, worker, attempt, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(job_id)
    .bind(now_ms())
    .bind(state.as_str())
    .bind(worker)
    .bind(attempt)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{tenants::month_window, Tier};

    async fn run_after(store: &Store, id: &str) -> i64 {
        sqlx::query("SELECT run_after FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&store.pool)
            .await
            .and_then(|row| row.try_get("run_after"))
            .expect("run_after")
    }

    /// A lost worker is a failed attempt: the job waits the backoff of
    /// that attempt, doubling like any other retry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lost_workers_back_off_per_attempt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite_in(dir.path()).await.expect("open");
        let org = store
            .create_org("o", Tier::Professional, None)
            .await
            .expect("org");
        let new = NewJob {
            org_id: org.id,
            dedupe_key: "k".into(),
            image_ref: "registry.example/x:1".into(),
            image_digest: None,
            request: "{}".into(),
            callback_url: None,
            priority: 10,
            max_attempts: 5,
            timeout_ms: 60_000,
            key_id: None,
        };
        let window = month_window(now_ms());
        let Submitted::Created(job) = store.submit(new, 10, window).await.expect("submit") else {
            panic!("not created");
        };
        let base = 60_000;
        for attempt in 1..=3 {
            if attempt > 1 {
                store.expedite_for_tests().await.expect("expedite");
            }
            let lease = store.claim("dead", 1).await.expect("claim").expect("a job");
            assert_eq!(lease.job.attempts, attempt);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let before = now_ms();
            let recovered = store
                .recover_expired(base, |_| None)
                .await
                .expect("recover");
            assert_eq!(recovered, vec![(job.id.clone(), JobState::Queued)]);
            let wait = run_after(&store, &job.id).await - before;
            let want = base << (attempt - 1);
            assert!(
                (want..want + 5_000).contains(&wait),
                "attempt {attempt}: waits {wait} ms, not {want}"
            );
            assert!(store.claim("w", 60_000).await.expect("claim").is_none());
        }
    }
}
