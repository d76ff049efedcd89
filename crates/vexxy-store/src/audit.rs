//! The audit log: who submitted, cancelled and fetched what, and when.

use sqlx::Row as _;

use crate::{now_ms, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: i64,
    pub org_id: Option<String>,
    pub key_id: Option<String>,
    pub action: String,
    pub job_id: Option<String>,
    pub detail: Option<String>,
}

/// Writes an audit log entry inside the transaction of the action it records.
pub(crate) async fn insert_audit(
    conn: &mut sqlx::AnyConnection,
    org_id: Option<&str>,
    key_id: Option<&str>,
    action: &str,
    job_id: Option<&str>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, org_id, key_id, action, job_id, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now_ms())
    .bind(org_id)
    .bind(key_id)
    .bind(action)
    .bind(job_id)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Records an action that is not itself a write of the store's
    /// (fetching results, creating a key); actions that change a job
    /// record theirs in their own transaction.
    pub async fn audit(
        &self,
        org_id: Option<&str>,
        key_id: Option<&str>,
        action: &str,
        job_id: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        insert_audit(w.conn(), org_id, key_id, action, job_id, detail).await?;
        w.done();
        Ok(())
    }

    /// A page of the organisation's entries, newest first, and their
    /// total (`limit` is capped at 1000).
    pub async fn org_audit(
        &self,
        org_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AuditEntry>, i64), StoreError> {
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE org_id = $1")
            .bind(org_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let rows = sqlx::query(
            "SELECT at, org_id, key_id, action, job_id, detail FROM audit_log \
             WHERE org_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(org_id)
        .bind(limit.clamp(1, 1000))
        .bind(offset.max(0))
        .fetch_all(&self.pool)
        .await?;
        let entries = rows.iter().map(entry_from_row).collect::<Result<_, _>>()?;
        Ok((entries, total))
    }

    /// The organisation's entries, oldest first (all when `org_id` is None).
    pub async fn audit_entries(&self, org_id: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, org_id, key_id, action, job_id, detail FROM audit_log \
             WHERE $1 IS NULL OR org_id = $1 ORDER BY id",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }
}

fn entry_from_row(r: &sqlx::any::AnyRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        at: r.try_get("at")?,
        org_id: r.try_get("org_id")?,
        key_id: r.try_get("key_id")?,
        action: r.try_get("action")?,
        job_id: r.try_get("job_id")?,
        detail: r.try_get("detail")?,
    })
}
