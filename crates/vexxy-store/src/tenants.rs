//! Organisations, API keys and monthly usage.
//!
//! Keys are 256 random bits shown once; only their SHA-256 is stored (a
//! key has full entropy, so a slow password hash would add nothing), and a
//! key is found by that hash.

use std::collections::HashMap;

use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

use crate::{
    model::{Caller, Org, Tier},
    now_ms, Store, StoreError,
};

/// Every key starts with this, so secret scanners can recognise one.
pub const KEY_PREFIX: &str = "vxk_";

/// Longest owner of a key.
pub const MAX_OWNER_CHARS: usize = 200;

/// A key's `last_used_at` is written at most this often (ms).
const KEY_USE_EVERY_MS: i64 = 60_000;
/// How long writing key uses may take before it is given up.
const KEY_USE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The key uses of this process not yet written, and when each key's use
/// was last noted.
#[derive(Debug, Default)]
pub(crate) struct KeyUses {
    seen: HashMap<String, i64>,
    pending: Vec<(String, i64)>,
    /// A task is writing `pending`.
    writing: bool,
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

pub(crate) fn new_id(kind: &str) -> String {
    format!("{kind}_{}", uuid::Uuid::new_v4().simple())
}

pub(crate) fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A key as created: the secret is in here and nowhere else.
#[derive(Debug)]
pub struct NewKey {
    pub id: String,
    pub org_id: String,
    pub secret: String,
}

fn org_from_row(row: &sqlx::any::AnyRow) -> Result<Org, StoreError> {
    let tier: String = row.try_get("tier")?;
    Ok(Org {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        tier: tier.parse().map_err(StoreError::Corrupt)?,
        monthly_quota: row.try_get("monthly_quota")?,
        webhook_secret: row.try_get("webhook_secret")?,
        created_at: row.try_get("created_at")?,
        allow_command_override: row.try_get::<i64, _>("allow_command_override")? != 0,
    })
}

/// The columns [`caller_from_row`] reads: the key's (`k`, an `api_keys`
/// row) and its organisation's (`o`). Every way of calling in (a key, a
/// web session) selects these, joined the same way.
pub(crate) const CALLER_COLUMNS: &str = "k.id AS key_id, k.name AS key_name, k.owner AS key_owner, \
     o.id, o.name, o.tier, o.monthly_quota, o.webhook_secret, o.created_at, o.allow_command_override";

/// The caller of a row with [`CALLER_COLUMNS`].
pub(crate) fn caller_from_row(row: &sqlx::any::AnyRow) -> Result<Caller, StoreError> {
    Ok(Caller {
        org: org_from_row(row)?,
        key_id: row.try_get("key_id")?,
        key_name: row.try_get("key_name")?,
        owner: row.try_get("key_owner")?,
    })
}

impl Store {
    /// Creates an organisation with a fresh webhook signing secret.
    pub async fn create_org(
        &self,
        name: &str,
        tier: Tier,
        monthly_quota: Option<i64>,
    ) -> Result<Org, StoreError> {
        if name.trim().is_empty() || name.len() > 200 {
            return Err(StoreError::Invalid(format!(
                "organisation name {name:?} must be 1..200 characters"
            )));
        }
        if monthly_quota.is_some_and(|q| q < 0) {
            return Err(StoreError::Invalid(
                "a monthly quota cannot be negative".into(),
            ));
        }
        let org = Org {
            id: new_id("org"),
            name: name.to_owned(),
            tier,
            monthly_quota,
            webhook_secret: format!("whsec_{}", random_hex(32)),
            created_at: now_ms(),
            allow_command_override: true,
        };
        let mut w = self.writer().await?;
        let done = sqlx::query(
            "INSERT INTO orgs (id, name, tier, monthly_quota, webhook_secret, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(org.tier.as_str())
        .bind(org.monthly_quota)
        .bind(&org.webhook_secret)
        .bind(org.created_at)
        .execute(w.conn())
        .await?;
        w.done();
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "an organisation named {name:?} exists"
            )));
        }
        self.audit(Some(&org.id), None, "create_org", None, Some(name))
            .await?;
        Ok(org)
    }

    /// The organisation with this id or (unique) name.
    pub async fn org(&self, id_or_name: &str) -> Result<Org, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, tier, monthly_quota, webhook_secret, created_at, allow_command_override \
             FROM orgs WHERE id = $1 OR name = $1",
        )
        .bind(id_or_name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("organisation {id_or_name}")))?;
        org_from_row(&row)
    }

    pub async fn set_tier(&self, org_id: &str, tier: Tier) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let done = sqlx::query("UPDATE orgs SET tier = $1 WHERE id = $2")
            .bind(tier.as_str())
            .bind(org_id)
            .execute(w.conn())
            .await?;
        w.done();
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("organisation {org_id}")));
        }
        Ok(())
    }

    /// Allows or forbids the organisation's jobs to replace the image's
    /// command (audit-logged).
    pub async fn set_command_override(
        &self,
        org_id: &str,
        allowed: bool,
    ) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let done = sqlx::query("UPDATE orgs SET allow_command_override = $1 WHERE id = $2")
            .bind(i64::from(allowed))
            .bind(org_id)
            .execute(w.conn())
            .await?;
        w.done();
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("organisation {org_id}")));
        }
        self.audit(
            Some(org_id),
            None,
            "set_command_override",
            None,
            Some(if allowed { "allowed" } else { "forbidden" }),
        )
        .await
    }

    /// A new API key for the organisation; the secret is returned once.
    pub async fn create_key(&self, org_id: &str, name: &str) -> Result<NewKey, StoreError> {
        self.create_key_for(org_id, name, None).await
    }

    /// [`Store::create_key`] naming who the key belongs to (`owner`: a
    /// person's name or address, at most 200 characters), the name its
    /// decisions carry.
    pub async fn create_key_for(
        &self,
        org_id: &str,
        name: &str,
        owner: Option<&str>,
    ) -> Result<NewKey, StoreError> {
        if let Some(owner) = owner {
            if owner.trim().is_empty()
                || owner.chars().count() > MAX_OWNER_CHARS
                || owner.chars().any(char::is_control)
            {
                return Err(StoreError::Invalid(format!(
                    "key owner {owner:?} must be 1..={MAX_OWNER_CHARS} characters without control characters"
                )));
            }
        }
        let org = self.org(org_id).await?;
        let key = NewKey {
            id: new_id("key"),
            org_id: org.id.clone(),
            secret: format!("{KEY_PREFIX}{}", random_hex(32)),
        };
        let mut w = self.writer().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, name, hash, created_at, owner) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&key.org_id)
        .bind(name)
        .bind(hash_key(&key.secret))
        .bind(now_ms())
        .bind(owner)
        .execute(w.conn())
        .await?;
        w.done();
        self.audit(Some(&org.id), Some(&key.id), "create_key", None, Some(name))
            .await?;
        Ok(key)
    }

    pub async fn revoke_key(&self, key_id: &str) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(key_id)
                .execute(w.conn())
                .await?;
        w.done();
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("active key {key_id}")));
        }
        let org: Option<String> = sqlx::query("SELECT org_id FROM api_keys WHERE id = $1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("org_id"))
            .transpose()?;
        self.audit(org.as_deref(), Some(key_id), "revoke_key", None, None)
            .await
    }

    /// The caller behind a presented key; `None` for an unknown or revoked key.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Caller>, StoreError> {
        if !presented.starts_with(KEY_PREFIX) || presented.len() > 200 {
            return Ok(None);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CALLER_COLUMNS} \
             FROM api_keys k JOIN orgs o ON o.id = k.org_id \
             WHERE k.hash = $1 AND k.revoked_at IS NULL"
        )))
        .bind(hash_key(presented))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let caller = caller_from_row(&row)?;
        self.note_key_use(&caller.key_id);
        Ok(Some(caller))
    }

    /// Records that a key was used (`last_used_at`): at most once a
    /// minute per key and process, in the background and one write at a
    /// time, so that authenticating is a read and a write that fails or
    /// waits (a full disk, a lock) fails or holds up no request. A use
    /// whose write failed is recorded again at the key's next use a
    /// minute later.
    pub(crate) fn note_key_use(&self, key_id: &str) {
        let now = now_ms();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let Ok(mut uses) = self.key_uses.lock() else {
                return;
            };
            if uses
                .seen
                .get(key_id)
                .is_some_and(|&at| now - at < KEY_USE_EVERY_MS)
            {
                return;
            }
            uses.seen.insert(key_id.to_owned(), now);
            uses.pending.push((key_id.to_owned(), now));
            if uses.writing {
                return;
            }
            uses.writing = true;
        }
        let store = self.clone();
        runtime.spawn(async move { store.write_key_uses().await });
    }

    /// Writes the pending key uses until none are left.
    async fn write_key_uses(&self) {
        loop {
            let batch = match self.key_uses.lock() {
                Ok(mut uses) if uses.pending.is_empty() => {
                    uses.writing = false;
                    return;
                }
                Ok(mut uses) => std::mem::take(&mut uses.pending),
                Err(_) => return,
            };
            let write = async {
                let mut w = self.writer().await?;
                let mut tx = w.begin().await?;
                for (key_id, at) in &batch {
                    sqlx::query(
                        "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 \
                         AND (last_used_at IS NULL OR last_used_at < $1)",
                    )
                    .bind(*at)
                    .bind(key_id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                w.done();
                Ok::<_, StoreError>(())
            };
            match tokio::time::timeout(KEY_USE_WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(keys = batch.len(), error = %e, "recording the use of API keys failed");
                }
                Err(_) => tracing::warn!(
                    keys = batch.len(),
                    "recording the use of API keys timed out"
                ),
            }
        }
    }

    /// Analyses the organisation submitted in the window (deduplicated
    /// requests do not count: they run nothing).
    pub async fn usage(&self, org_id: &str, from_ms: i64, to_ms: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs WHERE org_id = $1 AND created_at >= $2 AND created_at < $3",
        )
        .bind(org_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }
}

/// The calendar month (UTC) around `now_ms`: `[start, end)` in ms.
pub fn month_window(now_ms: i64) -> (i64, i64) {
    let now = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let start = time::Date::from_calendar_date(now.year(), now.month(), 1)
        .unwrap_or(now.date())
        .midnight()
        .assume_utc();
    let (y, m) = if now.month() == time::Month::December {
        (now.year() + 1, time::Month::January)
    } else {
        (now.year(), now.month().next())
    };
    let end = time::Date::from_calendar_date(y, m, 1)
        .unwrap_or(now.date())
        .midnight()
        .assume_utc();
    let ms = |t: time::OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    (ms(start), ms(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn last_used(store: &Store, key_id: &str) -> Option<i64> {
        sqlx::query("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(key_id)
            .fetch_one(&store.pool)
            .await
            .and_then(|row| row.try_get("last_used_at"))
            .expect("last_used_at")
    }

    /// Authenticating reads; the key's use is written in the background,
    /// once a minute at most.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn key_uses_are_written_in_the_background_once_a_minute() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite_in(dir.path()).await.expect("open");
        let org = store
            .create_org("o", Tier::Professional, None)
            .await
            .expect("org");
        let key = store.create_key(&org.id, "k").await.expect("key");
        assert_eq!(last_used(&store, &key.id).await, None);
        for _ in 0..3 {
            assert!(store
                .authenticate(&key.secret)
                .await
                .expect("auth")
                .is_some());
        }
        let began = std::time::Instant::now();
        let first = loop {
            if let Some(at) = last_used(&store, &key.id).await {
                break at;
            }
            assert!(
                began.elapsed() < std::time::Duration::from_secs(10),
                "last_used_at never written"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        store.authenticate(&key.secret).await.expect("auth");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(last_used(&store, &key.id).await, Some(first), "throttled");
        let uses = store.key_uses.lock().expect("lock");
        assert!(uses.pending.is_empty() && !uses.writing && uses.seen.len() == 1);
    }

    #[test]
    fn month_windows() {
        // 2026-11-23T10:00:00Z
        let t = 1_795_428_000_000;
        let (s, e) = month_window(t);
        assert_eq!(s, 1_793_491_200_000); // 2026-11-01
        assert_eq!(e, 1_796_083_200_000); // 2026-12-01
        let (s, e) = month_window(1_796_083_200_000 + 31 * 86_400_000 - 1); // 2026-12-31T23:59:59.999
        assert_eq!(s, 1_796_083_200_000);
        assert_eq!(e, 1_798_761_600_000); // 2027-01-01
    }
}
