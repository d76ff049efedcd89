//! Web sign-in sessions: a person signs in to the web UI with an API key
//! and gets a session token for a cookie instead of sending the key with
//! every request.
//!
//! A token is 256 random bits (64 lowercase hex characters) returned once;
//! only its SHA-256 is stored, as for keys. A session carries its own
//! anti-CSRF token, lives until it expires or is ended, and only as long as
//! its key: a revoked key's sessions stop working at once, a deleted key's
//! rows go with it.

use sqlx::Row as _;

use crate::{
    audit::insert_audit,
    model::Caller,
    tenants::{caller_from_row, hash_key, random_hex, CALLER_COLUMNS},
    Store, StoreError,
};

/// Random bytes in a session token and in its anti-CSRF token.
const TOKEN_BYTES: usize = 32;

/// A live web session: who is signed in, the token its forms must echo,
/// and when it ends (Unix ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSession {
    /// The organisation and the key that signed in, as
    /// [`Store::authenticate`] gives them.
    pub caller: Caller,
    /// The session's anti-CSRF token (64 lowercase hex characters).
    pub csrf: String,
    pub expires_at: i64,
}

/// Whether `token` can be a session token at all (64 lowercase hex
/// characters): anything else is refused without a query.
fn is_token(token: &str) -> bool {
    token.len() == TOKEN_BYTES * 2
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Store {
    /// Exchanges a presented API key for a new session (token returned
    /// once, stored hashed). The key is checked as [`Store::authenticate`]
    /// checks it; `None` when the key is not valid (unknown, revoked,
    /// malformed), and nothing is written then. The session ends at
    /// `now + ttl_ms`. Audit action "sign_in".
    pub async fn create_web_session(
        &self,
        presented_key: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<Option<(String, WebSession)>, StoreError> {
        if ttl_ms <= 0 {
            return Err(StoreError::Invalid(format!(
                "a session lifetime must be positive, not {ttl_ms} ms"
            )));
        }
        let Some(caller) = self.authenticate(presented_key).await? else {
            return Ok(None);
        };
        let token = random_hex(TOKEN_BYTES);
        let session = WebSession {
            caller,
            csrf: random_hex(TOKEN_BYTES),
            expires_at: now.saturating_add(ttl_ms),
        };
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, key_id, org_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hash_key(&token))
        .bind(&session.caller.key_id)
        .bind(&session.caller.org.id)
        .bind(&session.csrf)
        .bind(now)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await?;
        insert_audit(
            &mut tx,
            Some(&session.caller.org.id),
            Some(&session.caller.key_id),
            "sign_in",
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        w.done();
        Ok(Some((token, session)))
    }

    /// A live session (`expires_at > now`) whose key is still valid (not
    /// revoked), with the full caller; `None` otherwise (expired, unknown,
    /// ended, revoked key). A token that is not 64 lowercase hex
    /// characters is `None` without a query. Counts as a use of the key.
    pub async fn web_session(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<WebSession>, StoreError> {
        if !is_token(token) {
            return Ok(None);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT s.csrf, s.expires_at, {CALLER_COLUMNS} \
             FROM web_sessions s \
             JOIN api_keys k ON k.id = s.key_id \
             JOIN orgs o ON o.id = k.org_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND k.revoked_at IS NULL"
        )))
        .bind(hash_key(token))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let session = WebSession {
            caller: caller_from_row(&row)?,
            csrf: row.try_get("csrf")?,
            expires_at: row.try_get("expires_at")?,
        };
        self.note_key_use(&session.caller.key_id);
        Ok(Some(session))
    }

    /// Ends a session (signing out), expired or not: the token no longer
    /// works. Audit action "sign_out" when there was one; `false` when
    /// there was none (unknown, already ended, swept, malformed).
    pub async fn end_web_session(&self, token: &str) -> Result<bool, StoreError> {
        if !is_token(token) {
            return Ok(false);
        }
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        let row =
            sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1 RETURNING org_id, key_id")
                .bind(hash_key(token))
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            w.done();
            return Ok(false);
        };
        let org_id: String = row.try_get("org_id")?;
        let key_id: String = row.try_get("key_id")?;
        insert_audit(
            &mut tx,
            Some(&org_id),
            Some(&key_id),
            "sign_out",
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        w.done();
        Ok(true)
    }

    /// Deletes the sessions expired at `now` (`expires_at <= now`); returns
    /// how many. [`Store::sweep`] (the periodic retention sweep) calls it.
    pub async fn sweep_web_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let mut w = self.writer().await?;
        let done = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(w.conn())
            .await?;
        w.done();
        Ok(done.rows_affected())
    }
}
