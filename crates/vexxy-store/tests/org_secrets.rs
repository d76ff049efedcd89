//! Organisations' signing keys, registry credentials and allow-lists, on
//! SQLite and on the real PostgreSQL (a fresh database per test): secrets
//! are sealed in the database, open only for their organisation, never
//! listed, and every change is audit-logged.
#![allow(clippy::unwrap_used)]

use sqlx::Row as _;
use vexxy_store::{
    org_secrets::NewSigningKey, secrets::Purpose, SecretString, SecretsError, ServerKey, Store,
    StoreError, Tier,
};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let store = super::Store::open_sqlite_in(dir.path()).await.unwrap();
                let url = format!("sqlite://{}", dir.path().join("vexxy.db").display());
                super::$name(store, url).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = vexxy_testkit::require_postgres(stringify!($name)) else { return };
                let store = super::Store::open(&db.url()).await.unwrap();
                super::$name(store.clone(), db.url()).await;
                store.close().await;
            })*
        }
    };
}

both!(
    signing_keys_are_sealed_and_one_is_active,
    registry_credentials_are_sealed_per_organisation,
    allowlists_replace_and_clear,
);

const PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIMadeUpButSecretKeyMaterial0123456789ab\n-----END PRIVATE KEY-----\n";
const PASSWORD: &str = "s3cr3t-registry-p@ss";

/// Every text column of every row of `table`, as the database has it.
async fn raw_rows(url: &str, table: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut texts = Vec::new();
    for row in &rows {
        for i in 0..row.len() {
            if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                texts.push(text);
            }
        }
    }
    pool.close().await;
    texts
}

async fn signing_keys_are_sealed_and_one_is_active(store: Store, url: String) {
    let key = ServerKey::generate().unwrap();
    let a = store.create_org("a", Tier::Enterprise, None).await.unwrap();
    let b = store.create_org("b", Tier::Enterprise, None).await.unwrap();
    assert!(store
        .active_signing_key(&key, &a.id)
        .await
        .unwrap()
        .is_none());
    let private = SecretString::new(PRIVATE_PEM);
    let first = store
        .add_signing_key(
            &key,
            &a.id,
            &NewSigningKey {
                algorithm: "ed25519",
                public_key_pem: "PUBLIC-1",
                keyid: "keyid-1",
                private_key_pem: &private,
            },
            None,
            "import_signing_key",
        )
        .await
        .unwrap();
    assert!(first.active);
    let second = store
        .add_signing_key(
            &key,
            &a.id,
            &NewSigningKey {
                algorithm: "ecdsa-p256",
                public_key_pem: "PUBLIC-2",
                keyid: "keyid-2",
                private_key_pem: &private,
            },
            None,
            "generate_signing_key",
        )
        .await
        .unwrap();
    let listed = store.signing_keys(&a.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    let active: Vec<_> = listed.iter().filter(|k| k.active).collect();
    assert_eq!(active.len(), 1, "one active key: {listed:?}");
    assert_eq!(active[0].id, second.id, "the newest");
    let (record, pem) = store
        .active_signing_key(&key, &a.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.id, second.id);
    assert_eq!(pem.expose(), PRIVATE_PEM);
    assert!(!format!("{record:?}{pem:?}").contains("MadeUpButSecret"));
    // the other organisation sees nothing and revokes nothing
    assert!(store.signing_keys(&b.id).await.unwrap().is_empty());
    assert!(store
        .active_signing_key(&key, &b.id)
        .await
        .unwrap()
        .is_none());
    let e = store
        .revoke_signing_key(&b.id, &second.id, None)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
    // the private key is not in the database in the clear
    for text in raw_rows(&url, "org_signing_keys").await {
        assert!(!text.contains("MadeUpButSecret"), "{text}");
    }
    // another server key does not open it
    let other = ServerKey::generate().unwrap();
    let e = store.active_signing_key(&other, &a.id).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Secrets(s) if matches!(**s, SecretsError::OtherKey { .. })),
        "{e}"
    );
    // revoking: no longer listed or used, its sealed key erased
    store
        .revoke_signing_key(&a.id, &second.id, None)
        .await
        .unwrap();
    assert!(store
        .active_signing_key(&key, &a.id)
        .await
        .unwrap()
        .is_none());
    let listed = store.signing_keys(&a.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].active, "no other key becomes active by itself");
    assert!(matches!(
        store.revoke_signing_key(&a.id, &second.id, None).await,
        Err(StoreError::NotFound(_))
    ));
    let actions: Vec<String> = store
        .audit_entries(Some(&a.id))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in [
        "import_signing_key",
        "generate_signing_key",
        "revoke_signing_key",
    ] {
        assert!(actions.iter().any(|a| a == action), "{actions:?}");
    }
}

async fn registry_credentials_are_sealed_per_organisation(store: Store, url: String) {
    let key = ServerKey::generate().unwrap();
    let a = store.create_org("a", Tier::Enterprise, None).await.unwrap();
    let b = store.create_org("b", Tier::Enterprise, None).await.unwrap();
    let pass = SecretString::new(PASSWORD);
    let c = store
        .set_registry_credential(&key, &a.id, "r.example:5000", "alice", &pass, None)
        .await
        .unwrap();
    assert_eq!(
        (c.registry.as_str(), c.username.as_str()),
        ("r.example:5000", "alice")
    );
    // replaced, not added
    store
        .set_registry_credential(&key, &a.id, "r.example:5000", "alice2", &pass, None)
        .await
        .unwrap();
    let listed = store.registry_credentials(&a.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].username, "alice2");
    let login = store
        .registry_credential(&key, &a.id, "r.example:5000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (login.username.as_str(), login.password.expose()),
        ("alice2", PASSWORD)
    );
    assert!(!format!("{login:?}").contains(PASSWORD));
    assert!(store
        .has_registry_credential(&a.id, "r.example:5000")
        .await
        .unwrap());
    // organisation b has none, and cannot delete a's
    assert!(store.registry_credentials(&b.id).await.unwrap().is_empty());
    assert!(store
        .registry_credential(&key, &b.id, "r.example:5000")
        .await
        .unwrap()
        .is_none());
    assert!(!store
        .has_registry_credential(&b.id, "r.example:5000")
        .await
        .unwrap());
    assert!(matches!(
        store
            .delete_registry_credential(&b.id, "r.example:5000", None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // not in the clear, and a's sealed password does not open as b's
    let raw = raw_rows(&url, "org_registry_credentials").await;
    assert!(raw.iter().all(|t| !t.contains("s3cr3t")), "{raw:?}");
    let sealed = raw
        .iter()
        .find(|t| t.starts_with("vxs1."))
        .expect("a sealed value");
    assert!(key
        .open(&a.id, Purpose::RegistryPassword, "r.example:5000", sealed)
        .is_ok());
    let e = key
        .open(&b.id, Purpose::RegistryPassword, "r.example:5000", sealed)
        .unwrap_err();
    assert!(matches!(e, SecretsError::Tampered { .. }), "{e}");
    store
        .delete_registry_credential(&a.id, "r.example:5000", None)
        .await
        .unwrap();
    assert!(store.registry_credentials(&a.id).await.unwrap().is_empty());
    let e = store
        .set_registry_credential(&key, &a.id, "r.example", "u", &SecretString::new(""), None)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    let actions: Vec<String> = store
        .audit_entries(Some(&a.id))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.iter().any(|a| a == "set_registry_credential"),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|a| a == "delete_registry_credential"),
        "{actions:?}"
    );
    let details: Vec<String> = store
        .audit_entries(None)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.detail)
        .collect();
    assert!(details.iter().all(|d| !d.contains(PASSWORD)), "{details:?}");
}

async fn allowlists_replace_and_clear(store: Store, _url: String) {
    let a = store.create_org("a", Tier::Enterprise, None).await.unwrap();
    let b = store.create_org("b", Tier::Enterprise, None).await.unwrap();
    assert!(store.registry_allowlist(&a.id).await.unwrap().is_empty());
    let list = store
        .set_registry_allowlist(
            &a.id,
            &[
                "r.example".into(),
                "*.corp.example".into(),
                "r.example".into(),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(list, ["*.corp.example", "r.example"]);
    assert_eq!(store.registry_allowlist(&a.id).await.unwrap(), list);
    assert!(store.registry_allowlist(&b.id).await.unwrap().is_empty());
    store
        .set_registry_allowlist(&a.id, &["ghcr.io".into()], None)
        .await
        .unwrap();
    assert_eq!(store.registry_allowlist(&a.id).await.unwrap(), ["ghcr.io"]);
    store
        .set_registry_allowlist(&a.id, &[], None)
        .await
        .unwrap();
    assert!(store.registry_allowlist(&a.id).await.unwrap().is_empty());
    let too_many: Vec<String> = (0..101).map(|i| format!("r{i}.example")).collect();
    assert!(matches!(
        store.set_registry_allowlist(&a.id, &too_many, None).await,
        Err(StoreError::Invalid(_))
    ));
    let entries = store.audit_entries(Some(&a.id)).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.action == "set_registry_allowlist")
            .count(),
        3
    );
}
