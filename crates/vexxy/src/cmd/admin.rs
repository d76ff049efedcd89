//! `vexxy admin signing-key`, `registry-credential` and `registry-allow`:
//! an organisation's signing keys, registry logins and registry
//! allow-list, as the API manages them, for the operator. Secrets are
//! sealed under the server secret key the service's settings name
//! (`--secret-key-file`, `VEXXY_SECRET_KEY_FILE`, `VEXXY_SECRET_KEY`);
//! passwords are read from standard input, never from the command line.

use std::{io::Read as _, path::PathBuf};

use anyhow::Result;
use clap::Subcommand;
use vexxy_server::tenant::{self, OrgSecretsError};
use vexxy_store::{SecretString, ServerKey, Store, StoreError};

use crate::exit::BadInput;

/// Largest password read from standard input.
const MAX_PASSWORD_BYTES: u64 = 8 << 10;

#[derive(Debug, Subcommand)]
pub(crate) enum SigningKeyCommand {
    /// Generate a key pair; it becomes the organisation's active signing
    /// key. Prints the public key and keyid (the private key never leaves
    /// the database, sealed).
    Generate {
        org: String,
        /// p256 (ECDSA P-256, cosign's default) or ed25519.
        #[arg(long, default_value = "p256")]
        algorithm: String,
    },
    /// Import a private key (unencrypted PKCS#8 PEM, or SEC1 for P-256);
    /// it becomes the organisation's active signing key.
    Import {
        org: String,
        /// The PEM file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// List the organisation's keys (public keys and keyids).
    List { org: String },
    /// Revoke a key: no longer used or listed, its private key erased.
    Revoke { org: String, id: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RegistryCredentialCommand {
    /// Store (or replace) the organisation's login to REGISTRY (host[:port]
    /// as image references name it; docker.io for Docker Hub).
    Set {
        org: String,
        registry: String,
        #[arg(long)]
        username: String,
        /// Read the password (or token) from standard input; the only way
        /// to give it.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List the organisation's logins (registries and user names).
    List { org: String },
    /// Delete the organisation's login to REGISTRY.
    Delete { org: String, registry: String },
}

fn bad(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(_) | StoreError::Conflict(_) | StoreError::Invalid(_) => {
            BadInput(e.to_string()).into()
        }
        StoreError::Secrets(ref s) if **s == vexxy_store::SecretsError::NoKey => {
            BadInput(e.to_string()).into()
        }
        other => anyhow::Error::new(other),
    }
}

fn org_error(e: OrgSecretsError) -> anyhow::Error {
    match e {
        OrgSecretsError::NoServerKey | OrgSecretsError::BadInput(_) => {
            BadInput(e.to_string()).into()
        }
        OrgSecretsError::Store(e) => bad(e),
    }
}

fn need_key(key: Option<&ServerKey>) -> Result<&ServerKey> {
    key.ok_or_else(|| BadInput(OrgSecretsError::NoServerKey.to_string()).into())
}

fn print_key(k: &vexxy_store::org_secrets::SigningKeyRecord, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({"id": k.id, "algorithm": k.algorithm, "keyid": k.keyid,
                "public_key_pem": k.public_key_pem, "active": k.active,
                "created_at": vexxy_server::api::rfc3339(k.created_at)})
        );
    } else {
        println!(
            "{} {} keyid {}{}",
            k.id,
            k.algorithm,
            k.keyid,
            if k.active { " (active)" } else { "" }
        );
        print!("{}", k.public_key_pem);
    }
}

pub(crate) async fn signing_key(
    store: &Store,
    key: Option<&ServerKey>,
    cmd: &SigningKeyCommand,
    json: bool,
) -> Result<()> {
    match cmd {
        SigningKeyCommand::Generate { org, algorithm } => {
            let org = store.org(org).await.map_err(bad)?;
            let algorithm = tenant::parse_algorithm(algorithm).map_err(BadInput)?;
            let record = tenant::generate_signing_key(store, key, &org.id, algorithm, None)
                .await
                .map_err(org_error)?;
            eprintln!("{} now signs with {}", org.name, record.id);
            print_key(&record, json);
        }
        SigningKeyCommand::Import { org, key: file } => {
            let org = store.org(org).await.map_err(bad)?;
            let pem = super::inputs::read_file("--key", file, tenant::MAX_KEY_PEM_BYTES as u64)?;
            let pem = String::from_utf8(pem)
                .map_err(|_| BadInput(format!("--key {}: is not PEM text", file.display())))?;
            let pem = SecretString::new(pem);
            let record = tenant::import_signing_key(store, key, &org.id, &pem, None)
                .await
                .map_err(org_error)?;
            eprintln!("{} now signs with {}", org.name, record.id);
            print_key(&record, json);
        }
        SigningKeyCommand::List { org } => {
            let org = store.org(org).await.map_err(bad)?;
            for k in store.signing_keys(&org.id).await.map_err(bad)? {
                print_key(&k, json);
            }
        }
        SigningKeyCommand::Revoke { org, id } => {
            let org = store.org(org).await.map_err(bad)?;
            store
                .revoke_signing_key(&org.id, id, None)
                .await
                .map_err(bad)?;
            eprintln!("revoked {id} of {}", org.name);
        }
    }
    Ok(())
}

pub(crate) async fn registry_credential(
    store: &Store,
    key: Option<&ServerKey>,
    cmd: &RegistryCredentialCommand,
    json: bool,
) -> Result<()> {
    match cmd {
        RegistryCredentialCommand::Set {
            org,
            registry,
            username,
            password_stdin: _,
        } => {
            let org = store.org(org).await.map_err(bad)?;
            let registry = tenant::registry_name(registry).map_err(BadInput)?;
            let key = need_key(key)?;
            let password = read_password()?;
            let c = store
                .set_registry_credential(key, &org.id, &registry, username.trim(), &password, None)
                .await
                .map_err(bad)?;
            eprintln!("{} pulls from {} as {}", org.name, c.registry, c.username);
        }
        RegistryCredentialCommand::List { org } => {
            let org = store.org(org).await.map_err(bad)?;
            for c in store.registry_credentials(&org.id).await.map_err(bad)? {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"registry": c.registry, "username": c.username,
                            "updated_at": vexxy_server::api::rfc3339(c.updated_at)})
                    );
                } else {
                    println!("{} {}", c.registry, c.username);
                }
            }
        }
        RegistryCredentialCommand::Delete { org, registry } => {
            let org = store.org(org).await.map_err(bad)?;
            let registry = tenant::registry_name(registry).map_err(BadInput)?;
            store
                .delete_registry_credential(&org.id, &registry, None)
                .await
                .map_err(bad)?;
            eprintln!("{} pulls from {registry} anonymously", org.name);
        }
    }
    Ok(())
}

/// The password on standard input: one line (its line ending dropped),
/// bounded.
fn read_password() -> Result<SecretString> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_PASSWORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| BadInput(format!("reading the password from standard input: {e}")))?;
    let text = SecretString::new(
        String::from_utf8(bytes)
            .map_err(|_| BadInput("the password on standard input is not UTF-8".into()))?,
    );
    if text.expose().len() as u64 > MAX_PASSWORD_BYTES {
        return Err(BadInput(format!(
            "the password on standard input is longer than {MAX_PASSWORD_BYTES} bytes"
        ))
        .into());
    }
    let trimmed = text.expose().trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(BadInput("no password on standard input".into()).into());
    }
    Ok(SecretString::new(trimmed))
}

pub(crate) async fn registry_allow(
    store: &Store,
    org: &str,
    hosts: &[String],
    clear: bool,
    json: bool,
) -> Result<()> {
    let org = store.org(org).await.map_err(bad)?;
    let list = if clear || !hosts.is_empty() {
        let entries = tenant::allowlist_entries(hosts).map_err(BadInput)?;
        let list = store
            .set_registry_allowlist(&org.id, &entries, None)
            .await
            .map_err(bad)?;
        eprintln!(
            "{} may name {}",
            org.name,
            if list.is_empty() {
                "any registry the service allows".to_owned()
            } else {
                list.join(", ")
            }
        );
        list
    } else {
        store.registry_allowlist(&org.id).await.map_err(bad)?
    };
    if json {
        println!("{}", serde_json::json!({ "hosts": list }));
    } else {
        for h in &list {
            println!("{h}");
        }
    }
    Ok(())
}
