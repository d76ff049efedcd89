//! An organisation's signing keys, registry credentials and registry
//! allow-list.
//!
//! Private keys and passwords go into the database sealed under the
//! server's key ([`crate::secrets`]), bound to their organisation, purpose
//! and row; only the functions that hand one to its single user
//! ([`Store::active_signing_key`], [`Store::registry_credential`]) open
//! them. Listings carry public material only. Every change is committed
//! together with its audit log entry.

use sqlx::{any::AnyRow, Row as _};

use crate::{
    audit::insert_audit,
    now_ms,
    secrets::{Purpose, SecretString, ServerKey},
    tenants::new_id,
    Store, StoreError,
};

/// Longest PEM, user name, password and allow-list entry accepted.
pub const MAX_PEM_BYTES: usize = 16 << 10;
pub const MAX_USERNAME_BYTES: usize = 256;
pub const MAX_PASSWORD_BYTES: usize = 8 << 10;
pub const MAX_REGISTRY_BYTES: usize = 255;
/// Most entries of an organisation's registry allow-list.
pub const MAX_ALLOWLIST_ENTRIES: usize = 100;

/// An organisation's signing key as listed: public material only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub id: String,
    pub org_id: String,
    /// `ecdsa-p256` or `ed25519`.
    pub algorithm: String,
    pub public_key_pem: String,
    /// The keyid vexxy-attest computes (securesystemslib's).
    pub keyid: String,
    pub created_at: i64,
    /// The key the organisation's jobs sign with (one at most).
    pub active: bool,
}

/// A key to add: its public half as computed by the caller (vexxy-attest)
/// and the private half to seal.
#[derive(Debug)]
pub struct NewSigningKey<'a> {
    pub algorithm: &'a str,
    pub public_key_pem: &'a str,
    pub keyid: &'a str,
    pub private_key_pem: &'a SecretString,
}

/// An organisation's login to one registry as listed: no password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryCredential {
    pub org_id: String,
    /// `host[:port]` as image references name it.
    pub registry: String,
    pub username: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A login with its password, opened for the one pull that uses it.
#[derive(Clone, Debug)]
pub struct RegistryLogin {
    pub username: String,
    pub password: SecretString,
}

fn key_from_row(row: &AnyRow) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        algorithm: row.try_get("algorithm")?,
        public_key_pem: row.try_get("public_key_pem")?,
        keyid: row.try_get("keyid")?,
        created_at: row.try_get("created_at")?,
        active: row.try_get::<i64, _>("active")? != 0,
    })
}

const KEY_COLUMNS: &str = "id, org_id, algorithm, public_key_pem, keyid, created_at, active";

fn invalid(what: impl Into<String>) -> StoreError {
    StoreError::Invalid(what.into())
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field}: 1..={max} bytes without control characters"
        )));
    }
    Ok(())
}

impl Store {
    /// Adds a signing key to the organisation and makes it the active one
    /// (the previous active key stays listed, inactive). The private key
    /// is sealed under `server_key`; `action` names the audit entry
    /// (`generate_signing_key`, `import_signing_key`).
    pub async fn add_signing_key(
        &self,
        server_key: &ServerKey,
        org_id: &str,
        new: &NewSigningKey<'_>,
        audit_key_id: Option<&str>,
        action: &str,
    ) -> Result<SigningKeyRecord, StoreError> {
        check_text("algorithm", new.algorithm, 32)?;
        check_text("keyid", new.keyid, 128)?;
        if new.public_key_pem.is_empty() || new.public_key_pem.len() > MAX_PEM_BYTES {
            return Err(invalid("public key: 1..=16 KiB of PEM"));
        }
        if new.private_key_pem.expose().len() > MAX_PEM_BYTES {
            return Err(invalid("private key: at most 16 KiB of PEM"));
        }
        let record = SigningKeyRecord {
            id: new_id("sk"),
            org_id: org_id.to_owned(),
            algorithm: new.algorithm.to_owned(),
            public_key_pem: new.public_key_pem.to_owned(),
            keyid: new.keyid.to_owned(),
            created_at: now_ms(),
            active: true,
        };
        let sealed = server_key.seal(
            org_id,
            Purpose::SigningKey,
            &record.id,
            new.private_key_pem.expose().as_bytes(),
        )?;
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        sqlx::query("UPDATE org_signing_keys SET active = 0 WHERE org_id = $1 AND active = 1")
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO org_signing_keys (id, org_id, algorithm, public_key_pem, keyid, \
             private_key_sealed, created_at, active) VALUES ($1, $2, $3, $4, $5, $6, $7, 1)",
        )
        .bind(&record.id)
        .bind(org_id)
        .bind(&record.algorithm)
        .bind(&record.public_key_pem)
        .bind(&record.keyid)
        .bind(&sealed)
        .bind(record.created_at)
        .execute(&mut *tx)
        .await?;
        insert_audit(
            &mut tx,
            Some(org_id),
            audit_key_id,
            action,
            None,
            Some(&format!(
                "{} {} {}",
                record.id, record.algorithm, record.keyid
            )),
        )
        .await?;
        tx.commit().await?;
        w.done();
        Ok(record)
    }

    /// The organisation's signing keys not revoked, newest first.
    pub async fn signing_keys(&self, org_id: &str) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM org_signing_keys \
             WHERE org_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id"
        )))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// The organisation's active signing key, without opening it.
    pub async fn active_signing_key_record(
        &self,
        org_id: &str,
    ) -> Result<Option<SigningKeyRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM org_signing_keys \
             WHERE org_id = $1 AND active = 1 AND revoked_at IS NULL"
        )))
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// The organisation's active signing key with its private key (PKCS#8
    /// PEM), opened with `server_key`.
    pub async fn active_signing_key(
        &self,
        server_key: &ServerKey,
        org_id: &str,
    ) -> Result<Option<(SigningKeyRecord, SecretString)>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS}, private_key_sealed FROM org_signing_keys \
             WHERE org_id = $1 AND active = 1 AND revoked_at IS NULL"
        )))
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let record = key_from_row(&row)?;
        let sealed: String = row.try_get("private_key_sealed")?;
        let opened = server_key.open(org_id, Purpose::SigningKey, &record.id, &sealed)?;
        let pem = String::from_utf8(opened.to_vec()).map_err(|_| {
            StoreError::Corrupt(format!("signing key {} is not PEM text", record.id))
        })?;
        Ok(Some((record, SecretString::new(pem))))
    }

    /// Revokes one of the organisation's keys: it is no longer listed or
    /// used, and its sealed private key is erased (the row stays, for the
    /// audit trail). Another organisation's key is not found.
    pub async fn revoke_signing_key(
        &self,
        org_id: &str,
        id: &str,
        audit_key_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        let done = sqlx::query(
            "UPDATE org_signing_keys SET active = 0, revoked_at = $1, private_key_sealed = '' \
             WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            w.done();
            return Err(StoreError::NotFound(format!("signing key {id}")));
        }
        insert_audit(
            &mut tx,
            Some(org_id),
            audit_key_id,
            "revoke_signing_key",
            None,
            Some(id),
        )
        .await?;
        tx.commit().await?;
        w.done();
        Ok(())
    }

    /// Stores (or replaces) the organisation's login to `registry`, the
    /// password sealed under `server_key`.
    pub async fn set_registry_credential(
        &self,
        server_key: &ServerKey,
        org_id: &str,
        registry: &str,
        username: &str,
        password: &SecretString,
        audit_key_id: Option<&str>,
    ) -> Result<RegistryCredential, StoreError> {
        check_text("registry", registry, MAX_REGISTRY_BYTES)?;
        check_text("username", username, MAX_USERNAME_BYTES)?;
        let pass = password.expose();
        if pass.is_empty() || pass.len() > MAX_PASSWORD_BYTES {
            return Err(invalid(format!("password: 1..={MAX_PASSWORD_BYTES} bytes")));
        }
        let sealed =
            server_key.seal(org_id, Purpose::RegistryPassword, registry, pass.as_bytes())?;
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        sqlx::query(
            "INSERT INTO org_registry_credentials \
             (org_id, registry, username, password_sealed, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (org_id, registry) DO UPDATE SET username = excluded.username, \
             password_sealed = excluded.password_sealed, updated_at = excluded.updated_at",
        )
        .bind(org_id)
        .bind(registry)
        .bind(username)
        .bind(&sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_audit(
            &mut tx,
            Some(org_id),
            audit_key_id,
            "set_registry_credential",
            None,
            Some(registry),
        )
        .await?;
        let row = sqlx::query(
            "SELECT org_id, registry, username, created_at, updated_at \
             FROM org_registry_credentials WHERE org_id = $1 AND registry = $2",
        )
        .bind(org_id)
        .bind(registry)
        .fetch_one(&mut *tx)
        .await?;
        let credential = credential_from_row(&row)?;
        tx.commit().await?;
        w.done();
        Ok(credential)
    }

    /// The organisation's registry logins (no passwords), by registry.
    pub async fn registry_credentials(
        &self,
        org_id: &str,
    ) -> Result<Vec<RegistryCredential>, StoreError> {
        let rows = sqlx::query(
            "SELECT org_id, registry, username, created_at, updated_at \
             FROM org_registry_credentials WHERE org_id = $1 ORDER BY registry",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential_from_row).collect()
    }

    /// Whether the organisation has a login for `registry` (nothing opened).
    pub async fn has_registry_credential(
        &self,
        org_id: &str,
        registry: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM org_registry_credentials WHERE org_id = $1 AND registry = $2",
        )
        .bind(org_id)
        .bind(registry)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The organisation's login for `registry`, its password opened with
    /// `server_key`; `None` without one.
    pub async fn registry_credential(
        &self,
        server_key: &ServerKey,
        org_id: &str,
        registry: &str,
    ) -> Result<Option<RegistryLogin>, StoreError> {
        let row = sqlx::query(
            "SELECT username, password_sealed FROM org_registry_credentials \
             WHERE org_id = $1 AND registry = $2",
        )
        .bind(org_id)
        .bind(registry)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let sealed: String = row.try_get("password_sealed")?;
        let opened = server_key.open(org_id, Purpose::RegistryPassword, registry, &sealed)?;
        let password = String::from_utf8(opened.to_vec())
            .map_err(|_| StoreError::Corrupt(format!("the password for {registry} is not text")))?;
        Ok(Some(RegistryLogin {
            username: row.try_get("username")?,
            password: SecretString::new(password),
        }))
    }

    /// Deletes the organisation's login for `registry`.
    pub async fn delete_registry_credential(
        &self,
        org_id: &str,
        registry: &str,
        audit_key_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        let done =
            sqlx::query("DELETE FROM org_registry_credentials WHERE org_id = $1 AND registry = $2")
                .bind(org_id)
                .bind(registry)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            w.done();
            return Err(StoreError::NotFound(format!(
                "registry credential for {registry}"
            )));
        }
        insert_audit(
            &mut tx,
            Some(org_id),
            audit_key_id,
            "delete_registry_credential",
            None,
            Some(registry),
        )
        .await?;
        tx.commit().await?;
        w.done();
        Ok(())
    }

    /// Replaces the organisation's registry allow-list (empty: no list of
    /// its own). Entries are checked by the caller (host patterns); here
    /// only their number and length.
    pub async fn set_registry_allowlist(
        &self,
        org_id: &str,
        patterns: &[String],
        audit_key_id: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        if patterns.len() > MAX_ALLOWLIST_ENTRIES {
            return Err(invalid(format!(
                "hosts: at most {MAX_ALLOWLIST_ENTRIES} entries"
            )));
        }
        let mut list: Vec<String> = patterns.to_vec();
        list.sort();
        list.dedup();
        for p in &list {
            check_text("hosts", p, MAX_REGISTRY_BYTES)?;
        }
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin().await?;
        sqlx::query("DELETE FROM org_registry_allow WHERE org_id = $1")
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        for p in &list {
            sqlx::query(
                "INSERT INTO org_registry_allow (org_id, pattern, created_at) VALUES ($1, $2, $3)",
            )
            .bind(org_id)
            .bind(p)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        insert_audit(
            &mut tx,
            Some(org_id),
            audit_key_id,
            "set_registry_allowlist",
            None,
            Some(&if list.is_empty() {
                "(cleared)".to_owned()
            } else {
                list.join(" ")
            }),
        )
        .await?;
        tx.commit().await?;
        w.done();
        Ok(list)
    }

    /// The organisation's registry allow-list, sorted (empty: none).
    pub async fn registry_allowlist(&self, org_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT pattern FROM org_registry_allow WHERE org_id = $1 ORDER BY pattern",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("pattern")?)).collect()
    }
}

fn credential_from_row(row: &AnyRow) -> Result<RegistryCredential, StoreError> {
    Ok(RegistryCredential {
        org_id: row.try_get("org_id")?,
        registry: row.try_get("registry")?,
        username: row.try_get("username")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
