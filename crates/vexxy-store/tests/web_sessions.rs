//! Web sign-in sessions, each scenario on SQLite and on the real
//! PostgreSQL (a fresh database per test): a key exchanged for a session
//! token stored only hashed, expiry, revocation, signing out, the sweep,
//! tenant isolation and the audit log. Each scenario also gets a pool of
//! its own on the same database to look at the raw rows.
#![allow(clippy::unwrap_used)]

use sha2::{Digest as _, Sha256};
use sqlx::{AnyPool, Row as _};
use vexxy_store::{
    audit::AuditEntry, now_ms, EvidenceStore, LocalStore, Store, StoreError, Tier, WebSession,
};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let store = super::Store::open_sqlite_in(dir.path()).await.unwrap();
                let url = format!("sqlite://{}", dir.path().join("vexxy.db").display());
                let raw = sqlx::AnyPool::connect(&url).await.unwrap();
                super::$name(store, raw.clone()).await;
                raw.close().await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = vexxy_testkit::require_postgres(stringify!($name)) else { return };
                let store = super::Store::open(&db.url()).await.unwrap();
                let raw = sqlx::AnyPool::connect(&db.url()).await.unwrap();
                super::$name(store.clone(), raw.clone()).await;
                raw.close().await;
                store.close().await;
            })*
        }
    };
}

both!(
    a_valid_key_gives_a_session_of_its_caller,
    a_wrong_key_gives_nothing_and_writes_nothing,
    the_token_is_stored_only_hashed,
    sessions_expire,
    revoking_the_key_ends_its_sessions,
    signing_out_ends_the_session_once,
    the_sweep_removes_only_expired_sessions,
    organisations_are_isolated,
    sign_in_and_sign_out_are_audited,
);

const HOUR: i64 = 3_600_000;
/// A fixed clock, far from the real one.
const T0: i64 = 1_800_000_000_000;

/// An organisation named `name` with a key owned by `owner`: (org id, key id, secret).
async fn org_with_key(store: &Store, name: &str, owner: &str) -> (String, String, String) {
    let org = store
        .create_org(name, Tier::Professional, None)
        .await
        .unwrap();
    let key = store
        .create_key_for(&org.id, "web", Some(owner))
        .await
        .unwrap();
    (org.id, key.id, key.secret)
}

async fn sign_in(store: &Store, secret: &str, ttl_ms: i64, now: i64) -> (String, WebSession) {
    store
        .create_web_session(secret, ttl_ms, now)
        .await
        .unwrap()
        .expect("a valid key signs in")
}

fn is_lower_hex_64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

async fn count_sessions(raw: &AnyPool) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM web_sessions")
        .fetch_one(raw)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

async fn actions(store: &Store, org_id: &str, action: &str) -> Vec<AuditEntry> {
    let (entries, _) = store.org_audit(org_id, 1000, 0).await.unwrap();
    entries.into_iter().filter(|e| e.action == action).collect()
}

async fn a_valid_key_gives_a_session_of_its_caller(store: Store, _raw: AnyPool) {
    let (org_id, key_id, secret) = org_with_key(&store, "acme", "ada@acme.example").await;
    let caller = store.authenticate(&secret).await.unwrap().unwrap();
    let (token, session) = sign_in(&store, &secret, 8 * HOUR, T0).await;
    assert!(is_lower_hex_64(&token), "{token}");
    assert!(is_lower_hex_64(&session.csrf), "{}", session.csrf);
    assert_ne!(token, session.csrf);
    assert_eq!(session.caller, caller);
    assert_eq!(session.caller.org.id, org_id);
    assert_eq!(session.caller.key_id, key_id);
    assert_eq!(session.caller.key_name, "web");
    assert_eq!(session.caller.owner.as_deref(), Some("ada@acme.example"));
    assert_eq!(session.expires_at, T0 + 8 * HOUR);
    // the token finds the same session, its CSRF token included
    assert_eq!(
        store.web_session(&token, T0 + 1).await.unwrap(),
        Some(session.clone())
    );
    // every sign-in is a session of its own
    let (token2, session2) = sign_in(&store, &secret, HOUR, T0).await;
    assert_ne!(token2, token);
    assert_ne!(session2.csrf, session.csrf);
    assert_eq!(session2.caller, caller);
    assert_eq!(
        store.web_session(&token, T0 + 1).await.unwrap(),
        Some(session)
    );
    // a lifetime must be positive
    for ttl in [0, -1] {
        assert!(matches!(
            store.create_web_session(&secret, ttl, T0).await,
            Err(StoreError::Invalid(_))
        ));
    }
}

async fn a_wrong_key_gives_nothing_and_writes_nothing(store: Store, raw: AnyPool) {
    let (org_id, key_id, secret) = org_with_key(&store, "acme", "ada").await;
    let wrong = format!("vxk_{}", "0".repeat(64));
    let mut tampered = secret.clone();
    tampered.pop();
    tampered.push(if secret.ends_with('0') { '1' } else { '0' });
    for key in [
        wrong.as_str(),
        tampered.as_str(),
        "",
        "vxk_",
        &secret[4..],
        &secret.to_uppercase(),
    ] {
        assert_eq!(
            store.create_web_session(key, HOUR, T0).await.unwrap(),
            None,
            "{key:?}"
        );
    }
    store.revoke_key(&key_id).await.unwrap();
    assert_eq!(
        store.create_web_session(&secret, HOUR, T0).await.unwrap(),
        None,
        "a revoked key"
    );
    assert_eq!(count_sessions(&raw).await, 0);
    assert!(actions(&store, &org_id, "sign_in").await.is_empty());
}

async fn the_token_is_stored_only_hashed(store: Store, raw: AnyPool) {
    let (org_id, key_id, secret) = org_with_key(&store, "acme", "ada").await;
    let (token, session) = sign_in(&store, &secret, HOUR, T0).await;
    let rows = sqlx::query(
        "SELECT token_hash, key_id, org_id, csrf, created_at, expires_at FROM web_sessions",
    )
    .fetch_all(&raw)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let hash: String = row.try_get("token_hash").unwrap();
    assert_eq!(hash, hex::encode(Sha256::digest(token.as_bytes())));
    assert_ne!(hash, token);
    assert_eq!(row.try_get::<String, _>("key_id").unwrap(), key_id);
    assert_eq!(row.try_get::<String, _>("org_id").unwrap(), org_id);
    assert_eq!(row.try_get::<String, _>("csrf").unwrap(), session.csrf);
    assert_eq!(row.try_get::<i64, _>("created_at").unwrap(), T0);
    assert_eq!(row.try_get::<i64, _>("expires_at").unwrap(), T0 + HOUR);
    // the token is in no column, and nowhere in the audit log
    for column in ["token_hash", "key_id", "org_id", "csrf"] {
        let value: String = row.try_get(column).unwrap();
        assert!(!value.contains(&token), "{column} holds the token");
    }
    for entry in store.audit_entries(None).await.unwrap() {
        assert!(
            !format!("{entry:?}").contains(&token),
            "the audit log holds the token: {entry:?}"
        );
    }
    // what the database holds does not sign in
    assert_eq!(store.web_session(&hash, T0).await.unwrap(), None);
    assert!(store.web_session(&token, T0).await.unwrap().is_some());
}

async fn sessions_expire(store: Store, _raw: AnyPool) {
    let (_, _, secret) = org_with_key(&store, "acme", "ada").await;
    let (token, session) = sign_in(&store, &secret, HOUR, T0).await;
    assert_eq!(
        store.web_session(&token, T0 + HOUR - 1).await.unwrap(),
        Some(session)
    );
    assert_eq!(store.web_session(&token, T0 + HOUR).await.unwrap(), None);
    assert_eq!(
        store.web_session(&token, T0 + 2 * HOUR).await.unwrap(),
        None
    );
    // unknown and malformed tokens are not sessions
    let unknown = "ab".repeat(32);
    let too_long = format!("{token}0");
    for bad in [
        unknown.as_str(),
        &token.to_uppercase(),
        &token[1..],
        too_long.as_str(),
        "",
        "' OR 1=1 --",
    ] {
        assert_eq!(store.web_session(bad, T0).await.unwrap(), None, "{bad:?}");
    }
}

async fn revoking_the_key_ends_its_sessions(store: Store, _raw: AnyPool) {
    let (org_id, key_id, secret) = org_with_key(&store, "acme", "ada").await;
    let other = store
        .create_key_for(&org_id, "other", Some("bob"))
        .await
        .unwrap();
    let (token, _) = sign_in(&store, &secret, HOUR, T0).await;
    let (token2, _) = sign_in(&store, &secret, HOUR, T0).await;
    let (other_token, other_session) = sign_in(&store, &other.secret, HOUR, T0).await;
    store.revoke_key(&key_id).await.unwrap();
    assert_eq!(store.web_session(&token, T0 + 1).await.unwrap(), None);
    assert_eq!(store.web_session(&token2, T0 + 1).await.unwrap(), None);
    // the organisation's other key is untouched
    assert_eq!(
        store.web_session(&other_token, T0 + 1).await.unwrap(),
        Some(other_session)
    );
    assert_eq!(
        store.create_web_session(&secret, HOUR, T0).await.unwrap(),
        None
    );
}

async fn signing_out_ends_the_session_once(store: Store, raw: AnyPool) {
    let (_, _, secret) = org_with_key(&store, "acme", "ada").await;
    let (token, _) = sign_in(&store, &secret, HOUR, T0).await;
    let (kept, kept_session) = sign_in(&store, &secret, HOUR, T0).await;
    assert!(store.end_web_session(&token).await.unwrap());
    assert_eq!(store.web_session(&token, T0 + 1).await.unwrap(), None);
    assert!(!store.end_web_session(&token).await.unwrap());
    assert_eq!(count_sessions(&raw).await, 1);
    // the key's other session goes on
    assert_eq!(
        store.web_session(&kept, T0 + 1).await.unwrap(),
        Some(kept_session)
    );
    // unknown and malformed tokens end nothing
    assert!(!store.end_web_session(&"cd".repeat(32)).await.unwrap());
    assert!(!store.end_web_session("").await.unwrap());
    assert!(!store.end_web_session(&kept.to_uppercase()).await.unwrap());
    assert_eq!(count_sessions(&raw).await, 1);
}

async fn the_sweep_removes_only_expired_sessions(store: Store, raw: AnyPool) {
    let (_, _, secret) = org_with_key(&store, "acme", "ada").await;
    let (first, _) = sign_in(&store, &secret, HOUR, T0).await; // until T0 + 1h
    let (second, second_session) = sign_in(&store, &secret, 2 * HOUR, T0).await; // T0 + 2h
    let (third, third_session) = sign_in(&store, &secret, 3 * HOUR, T0).await; // T0 + 3h
    assert_eq!(store.sweep_web_sessions(T0).await.unwrap(), 0);
    assert_eq!(store.sweep_web_sessions(T0 + HOUR).await.unwrap(), 1);
    assert_eq!(store.sweep_web_sessions(T0 + HOUR).await.unwrap(), 0);
    assert_eq!(count_sessions(&raw).await, 2);
    assert!(!store.end_web_session(&first).await.unwrap(), "swept");
    assert_eq!(
        store.web_session(&second, T0 + HOUR).await.unwrap(),
        Some(second_session)
    );
    assert_eq!(store.sweep_web_sessions(T0 + 2 * HOUR).await.unwrap(), 1);
    assert_eq!(
        store.web_session(&third, T0 + 2 * HOUR).await.unwrap(),
        Some(third_session)
    );
    assert_eq!(count_sessions(&raw).await, 1);

    assert!(store.end_web_session(&third).await.unwrap());

    // the periodic retention sweep takes expired sessions too (on the
    // real clock)
    let now = now_ms();
    let (stale, _) = sign_in(&store, &secret, 1, now - HOUR).await;
    let (fresh, _) = sign_in(&store, &secret, 24 * HOUR, now).await;
    let dir = tempfile::tempdir().unwrap();
    let evidence = EvidenceStore::Local(LocalStore::new(dir.path()));
    let swept = store
        .sweep(&evidence, 90 * 86_400_000, 3_600_000)
        .await
        .unwrap();
    assert_eq!(swept.sessions_expired, 1);
    assert!(!store.end_web_session(&stale).await.unwrap());
    assert!(store.web_session(&fresh, now).await.unwrap().is_some());
    assert_eq!(count_sessions(&raw).await, 1);
}

async fn organisations_are_isolated(store: Store, raw: AnyPool) {
    let (a_org, a_key, a_secret) = org_with_key(&store, "acme", "ada").await;
    let (b_org, b_key, b_secret) = org_with_key(&store, "globex", "bob").await;
    let (a_token, a_session) = sign_in(&store, &a_secret, HOUR, T0).await;
    let (b_token, b_session) = sign_in(&store, &b_secret, HOUR, T0).await;
    assert_eq!(a_session.caller.org.id, a_org);
    assert_eq!(a_session.caller.key_id, a_key);
    assert_eq!(b_session.caller.org.id, b_org);
    assert_eq!(b_session.caller.key_id, b_key);
    assert_ne!(a_session.csrf, b_session.csrf);
    // each token is its own organisation's session
    let a = store.web_session(&a_token, T0).await.unwrap().unwrap();
    let b = store.web_session(&b_token, T0).await.unwrap().unwrap();
    assert_eq!(
        (a.caller.org.id, b.caller.org.id),
        (a_org.clone(), b_org.clone())
    );
    for (org, key) in [(&a_org, &a_key), (&b_org, &b_key)] {
        let n: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM web_sessions WHERE org_id = $1 AND key_id = $2")
                .bind(org)
                .bind(key)
                .fetch_one(&raw)
                .await
                .unwrap()
                .try_get("n")
                .unwrap();
        assert_eq!(n, 1, "{org}");
    }
    // signing out of one and revoking the other's key touch nothing else
    assert!(store.end_web_session(&a_token).await.unwrap());
    assert_eq!(
        store.web_session(&b_token, T0).await.unwrap(),
        Some(b_session)
    );
    let (a_token, a_session) = sign_in(&store, &a_secret, HOUR, T0).await;
    store.revoke_key(&b_key).await.unwrap();
    assert_eq!(store.web_session(&b_token, T0).await.unwrap(), None);
    assert_eq!(
        store.web_session(&a_token, T0).await.unwrap(),
        Some(a_session)
    );
    // each organisation's audit log has its own sign-ins only
    for (org, key, n) in [(&a_org, &a_key, 2), (&b_org, &b_key, 1)] {
        let entries = actions(&store, org, "sign_in").await;
        assert_eq!(entries.len(), n, "{org}");
        assert!(entries.iter().all(|e| e.key_id.as_ref() == Some(key)));
    }
    assert!(actions(&store, &b_org, "sign_out").await.is_empty());
}

async fn sign_in_and_sign_out_are_audited(store: Store, _raw: AnyPool) {
    let (org_id, key_id, secret) = org_with_key(&store, "acme", "ada").await;
    let (token, _) = sign_in(&store, &secret, HOUR, T0).await;
    let signed_in = actions(&store, &org_id, "sign_in").await;
    assert_eq!(signed_in.len(), 1);
    assert_eq!(signed_in[0].org_id.as_deref(), Some(org_id.as_str()));
    assert_eq!(signed_in[0].key_id.as_deref(), Some(key_id.as_str()));
    assert!(actions(&store, &org_id, "sign_out").await.is_empty());

    assert!(store.end_web_session(&token).await.unwrap());
    let signed_out = actions(&store, &org_id, "sign_out").await;
    assert_eq!(signed_out.len(), 1);
    assert_eq!(signed_out[0].org_id.as_deref(), Some(org_id.as_str()));
    assert_eq!(signed_out[0].key_id.as_deref(), Some(key_id.as_str()));
    // ending it again, or an unknown session, records nothing
    assert!(!store.end_web_session(&token).await.unwrap());
    assert!(!store.end_web_session(&"ef".repeat(32)).await.unwrap());
    assert_eq!(actions(&store, &org_id, "sign_out").await.len(), 1);
    // newest first: the sign-out follows the sign-in
    let (entries, _) = store.org_audit(&org_id, 2, 0).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        ["sign_out", "sign_in"]
    );
}
