//! What an organisation brings to its jobs: its signing keys, its logins
//! to registries and its own registry allow-list; and the last step of a
//! job that asked for it, signing the OpenVEX document as an in-toto
//! attestation and attaching it to the image.
//!
//! Private keys and passwords are sealed in the store under the server's
//! secret key ([`vexxy_store::secrets`]); they are opened here only for
//! the one pull, sign or attach that uses them and never leave this
//! process: not in an answer, a log line, an error or `Debug` output.
//! An organisation's job pulls with that organisation's login for the
//! registry, or anonymously: never with another's, never with the
//! operator's docker config.

use std::str::FromStr as _;

use vexxy_analyze::{AnalysisOutcome, AnalyzeError, ArtifactKind, Credentials, ImageRequest};
use vexxy_attest::{KeyAlgorithm, SigningKey};
use vexxy_egress::HostPattern;
use vexxy_store::{
    org_secrets::{NewSigningKey, SigningKeyRecord},
    SecretString, SecretsError, ServerKey, Store, StoreError,
};

use crate::{
    api::{Attestation, JobSpec},
    Service,
};

/// The file a signed job's attestation is stored and served as.
pub const ATTESTATION_FILE: &str = "vex.openvex.intoto.json";
/// The link the results name it under.
pub const ATTESTATION_LINK: &str = "vex_attestation";
/// Its media type (a DSSE envelope).
pub const ATTESTATION_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Largest private key PEM accepted for import.
pub const MAX_KEY_PEM_BYTES: usize = vexxy_store::org_secrets::MAX_PEM_BYTES;

/// Why an organisation's secret could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum OrgSecretsError {
    /// The service has no server secret key: secrets are not stored.
    #[error("no server secret key configured: this service does not store signing keys or registry passwords (its operator sets --secret-key-file)")]
    NoServerKey,
    /// What the caller sent is not acceptable (the text names the field).
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `p256` (`ecdsa-p256`) or `ed25519`.
pub fn parse_algorithm(text: &str) -> Result<KeyAlgorithm, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "p256" | "p-256" | "ecdsa-p256" | "ecdsa" => Ok(KeyAlgorithm::EcdsaP256),
        "ed25519" => Ok(KeyAlgorithm::Ed25519),
        other => Err(format!(
            "algorithm: {other:?} is not p256 (ecdsa-p256) or ed25519"
        )),
    }
}

fn server_key(key: Option<&ServerKey>) -> Result<&ServerKey, OrgSecretsError> {
    key.ok_or(OrgSecretsError::NoServerKey)
}

/// Generates a key pair for the organisation and makes it its active
/// signing key; the private half is sealed, never shown.
pub async fn generate_signing_key(
    store: &Store,
    secret_key: Option<&ServerKey>,
    org_id: &str,
    algorithm: KeyAlgorithm,
    audit_key_id: Option<&str>,
) -> Result<SigningKeyRecord, OrgSecretsError> {
    let secret_key = server_key(secret_key)?;
    let key = SigningKey::generate(algorithm)
        .map_err(|e| OrgSecretsError::BadInput(format!("generating a key: {e}")))?;
    add_key(
        store,
        secret_key,
        org_id,
        &key,
        audit_key_id,
        "generate_signing_key",
    )
    .await
}

/// Imports a private key (PKCS#8 PEM, or SEC1 for P-256) and makes it the
/// organisation's active signing key. Stored as PKCS#8, sealed.
pub async fn import_signing_key(
    store: &Store,
    secret_key: Option<&ServerKey>,
    org_id: &str,
    private_key_pem: &SecretString,
    audit_key_id: Option<&str>,
) -> Result<SigningKeyRecord, OrgSecretsError> {
    let secret_key = server_key(secret_key)?;
    if private_key_pem.expose().len() > MAX_KEY_PEM_BYTES {
        return Err(OrgSecretsError::BadInput(format!(
            "private_key_pem: larger than {MAX_KEY_PEM_BYTES} bytes"
        )));
    }
    // vexxy-attest's errors name the format, never key material
    let key = SigningKey::from_pem(private_key_pem.expose())
        .map_err(|e| OrgSecretsError::BadInput(format!("private_key_pem: {e}")))?;
    add_key(
        store,
        secret_key,
        org_id,
        &key,
        audit_key_id,
        "import_signing_key",
    )
    .await
}

async fn add_key(
    store: &Store,
    secret_key: &ServerKey,
    org_id: &str,
    key: &SigningKey,
    audit_key_id: Option<&str>,
    action: &str,
) -> Result<SigningKeyRecord, OrgSecretsError> {
    let internal =
        |e: vexxy_attest::AttestError| OrgSecretsError::BadInput(format!("encoding the key: {e}"));
    let private = key.to_pem().map_err(internal)?;
    let private = SecretString::new(private.as_str());
    let public = key.verifying_key().to_pem().map_err(internal)?;
    Ok(store
        .add_signing_key(
            secret_key,
            org_id,
            &NewSigningKey {
                algorithm: key.algorithm().as_str(),
                public_key_pem: &public,
                keyid: key.keyid(),
                private_key_pem: &private,
            },
            audit_key_id,
            action,
        )
        .await?)
}

/// Docker Hub's other names, all kept as `docker.io` (as references name it).
const DOCKER_HUB: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// A registry as credentials are kept under it: `host[:port]`, lowercase,
/// Docker Hub as `docker.io`. Not a URL, no path, no wildcard.
pub fn registry_name(text: &str) -> Result<String, String> {
    let t = text.trim();
    let bad = || format!("registry: {t:?} is not a registry host or host:port");
    if t.is_empty() || t.len() > vexxy_store::org_secrets::MAX_REGISTRY_BYTES || t.starts_with("*.")
    {
        return Err(bad());
    }
    let pattern = HostPattern::from_str(t).map_err(|_| bad())?;
    let name = pattern.to_string();
    if DOCKER_HUB.contains(&name.as_str()) {
        return Ok("docker.io".to_owned());
    }
    Ok(name)
}

/// The registry a registry reference names (as [`registry_name`] keeps
/// it); `None` for local images.
pub fn registry_of_reference(reference: &str) -> Option<String> {
    let name = registry_reference(reference)?;
    let image = vexxy_registry::ImageRef::parse(&name).ok()?;
    registry_name(image.registry()).ok()
}

/// The registry reference (without `docker://`) when `reference` names an
/// image in a registry.
fn registry_reference(reference: &str) -> Option<String> {
    match ImageRequest::parse(reference).ok()?.source {
        vexxy_analyze::ImageSource::Registry { reference } => Some(reference),
        _ => None,
    }
}

/// An organisation's registry allow-list as given, checked and written
/// canonically (`host`, `host:port`, `*.suffix`).
pub fn allowlist_entries(entries: &[String]) -> Result<Vec<String>, String> {
    if entries.len() > vexxy_store::org_secrets::MAX_ALLOWLIST_ENTRIES {
        return Err(format!(
            "hosts: at most {} entries",
            vexxy_store::org_secrets::MAX_ALLOWLIST_ENTRIES
        ));
    }
    entries
        .iter()
        .map(|e| {
            HostPattern::from_str(e)
                .map(|p| p.to_string())
                .map_err(|err| format!("hosts: {err}"))
        })
        .collect()
}

/// Whether the organisation's allow-list lets its jobs name the registry
/// of `reference` (an empty list: every registry). The registry matches
/// as written (`docker.io`) or as contacted (`index.docker.io`). Local
/// images are not registry references and pass.
pub fn check_org_allowlist(
    reference: &str,
    patterns: &[String],
    insecure_registries: &[String],
) -> Result<(), String> {
    if patterns.is_empty() {
        return Ok(());
    }
    let Some(name) = registry_reference(reference) else {
        return Ok(());
    };
    let Ok(image) = vexxy_registry::ImageRef::parse(&name) else {
        return Ok(()); // refused as a bad reference elsewhere
    };
    let patterns: Vec<HostPattern> = patterns.iter().filter_map(|p| p.parse().ok()).collect();
    let matches = |registry: &str| {
        let plain = insecure_registries
            .iter()
            .any(|r| r.eq_ignore_ascii_case(registry));
        let default = if plain { 80 } else { 443 };
        vexxy_egress::split_authority(registry, Some(default))
            .is_some_and(|(host, port)| patterns.iter().any(|p| p.matches(&host, port)))
    };
    if matches(image.registry()) || matches(image.resolved_registry()) {
        Ok(())
    } else {
        Err(format!(
            "registry {} is not on this organisation's registry allow-list",
            image.registry()
        ))
    }
}

/// The credentials an organisation's pull of `reference` uses: its own
/// login for that registry, else anonymous.
///
/// # Errors
///
/// Transient when this process cannot open a login it has (no server
/// key here, the database unavailable); bad input when the stored login
/// does not open (sealed under another server key, or changed).
pub(crate) async fn pull_credentials(
    svc: &Service,
    org_id: &str,
    reference: &str,
) -> Result<Credentials, AnalyzeError> {
    let Some(registry) = registry_of_reference(reference) else {
        return Ok(Credentials::Anonymous);
    };
    let store_error = |e: StoreError| {
        if e.is_unavailable() {
            AnalyzeError::transient(format!("reading the registry credentials: {e}"))
        } else {
            AnalyzeError::internal(format!("reading the registry credentials: {e}"))
        }
    };
    if !svc
        .store
        .has_registry_credential(org_id, &registry)
        .await
        .map_err(store_error)?
    {
        return Ok(Credentials::Anonymous);
    }
    let Some(key) = &svc.config.secret_key else {
        return Err(AnalyzeError::transient(format!(
            "the organisation's credentials for {registry} cannot be opened: this process has no server secret key configured"
        )));
    };
    match svc.store.registry_credential(key, org_id, &registry).await {
        Ok(Some(login)) => Ok(Credentials::Basic {
            user: login.username,
            pass: login.password.expose().to_owned(),
        }),
        Ok(None) => Ok(Credentials::Anonymous),
        Err(StoreError::Secrets(e)) => Err(AnalyzeError::bad_input(format!(
            "the organisation's credentials for {registry}: {e}"
        ))),
        Err(e) => Err(store_error(e)),
    }
}

/// Checks, when a job starts, what the organisation's settings decide:
/// its allow-list (again: it may have changed since the submission), and
/// for a job that signs, that it has an active key this process can open.
pub(crate) async fn admit_job(
    svc: &Service,
    org_id: &str,
    spec: &JobSpec,
) -> Result<(), AnalyzeError> {
    let unavailable = |e: StoreError| {
        if e.is_unavailable() {
            AnalyzeError::transient(e.to_string())
        } else {
            AnalyzeError::internal(e.to_string())
        }
    };
    let allow = svc
        .store
        .registry_allowlist(org_id)
        .await
        .map_err(unavailable)?;
    check_org_allowlist(
        &spec.image_ref,
        &allow,
        &svc.config.analysis.insecure_registries,
    )
    .map_err(|e| AnalyzeError::bad_input(format!("image reference {:?}: {e}", spec.image_ref)))?;
    if spec.sign {
        if svc.config.secret_key.is_none() {
            return Err(AnalyzeError::transient(
                "the job signs its VEX, and this process has no server secret key configured",
            ));
        }
        if svc
            .store
            .active_signing_key_record(org_id)
            .await
            .map_err(unavailable)?
            .is_none()
        {
            return Err(AnalyzeError::bad_input(
                "the job signs its VEX, and the organisation has no active signing key",
            ));
        }
    }
    Ok(())
}

/// What signing (and attaching) a job's VEX made.
#[derive(Debug)]
pub(crate) struct Published {
    /// The DSSE envelope (absent when there was nothing to sign).
    pub(crate) envelope: Option<Vec<u8>>,
    pub(crate) attestation: Attestation,
}

/// Why a job's VEX could not be signed or attached. Never names a secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
    #[error("signing the VEX: this process has no server secret key configured")]
    NoServerKey,
    #[error("signing the VEX: the organisation has no active signing key")]
    NoSigningKey,
    #[error("signing the VEX: the organisation's signing key: {0}")]
    Sealed(SecretsError),
    #[error("signing the VEX: {0}")]
    Store(#[source] StoreError),
    /// Signing failed (the library's error, with its kind).
    #[error("signing the VEX: {0}")]
    Sign(AnalyzeError),
    /// Attaching failed (the library's error, with its kind; its text
    /// says `attaching the attestation …`).
    #[error("{0}")]
    Attach(AnalyzeError),
}

impl PublishError {
    /// Whether another attempt may succeed: a registry or database that
    /// was unreachable or failing, a worker without the key. A refused
    /// push, a missing key, a value that does not open are not retried.
    pub(crate) fn is_retriable(&self) -> bool {
        match self {
            Self::NoServerKey => true,
            Self::NoSigningKey | Self::Sealed(_) => false,
            Self::Store(e) => e.is_unavailable(),
            Self::Sign(e) | Self::Attach(e) => e.kind() != vexxy_analyze::ErrorKind::BadInput,
        }
    }
}

/// Signs the job's OpenVEX document with the organisation's active key as
/// an in-toto attestation about the image's manifest and, for `attach`,
/// attaches it to the image in its registry (pinned by that manifest's
/// digest, with the organisation's credentials, under the same egress
/// policy as the pull), both through the library's
/// [`vexxy_analyze::distribute`], as `vexxy attest`/`vexxy attach` do.
/// `Ok(None)`: the job asked for neither.
pub(crate) async fn publish(
    svc: &Service,
    org_id: &str,
    spec: &JobSpec,
    outcome: &AnalysisOutcome,
) -> Result<Option<Published>, PublishError> {
    if !spec.sign && !spec.attach {
        return Ok(None);
    }
    let Some(vex) = outcome.artifacts.get(ArtifactKind::OpenVex) else {
        return Ok(Some(Published {
            envelope: None,
            attestation: Attestation {
                status: "skipped".into(),
                reason: Some("the analysis made no VEX document (no findings to decide)".into()),
                ..Attestation::default()
            },
        }));
    };
    let secret_key = svc
        .config
        .secret_key
        .as_ref()
        .ok_or(PublishError::NoServerKey)?;
    let (record, pem) = match svc.store.active_signing_key(secret_key, org_id).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(PublishError::NoSigningKey),
        Err(StoreError::Secrets(e)) => return Err(PublishError::Sealed(*e)),
        Err(e) => return Err(PublishError::Store(e)),
    };
    let key = SigningKey::from_pem(pem.expose())
        .map_err(|e| PublishError::Sign(AnalyzeError::bad_input(e.to_string())))?;
    drop(pem);
    let digest = outcome.product.digest.as_ref().ok_or_else(|| {
        PublishError::Sign(AnalyzeError::bad_input(
            "the image has no manifest digest to name as the subject",
        ))
    })?;
    let signed = vexxy_analyze::distribute::sign_vex(&vexxy_analyze::distribute::SignRequest {
        document: vex,
        subject_name: &outcome.product.name,
        subject_digest: Some(digest),
        key: &key,
    })
    .map_err(PublishError::Sign)?;
    let mut attestation = Attestation {
        status: "signed".into(),
        signing_key: Some(record.id.clone()),
        keyid: Some(record.keyid.clone()),
        subject: Some(format!("{}@{}", outcome.product.name, signed.subject)),
        envelope_digest: Some(sha256(&signed.envelope)),
        ..Attestation::default()
    };
    if spec.attach {
        let attached = attach_envelope(svc, org_id, spec, &signed.subject, &signed.envelope)
            .await
            .map_err(PublishError::Attach)?;
        attestation.status = "attached".into();
        attestation.referrer_digest = Some(attached.referrer.to_string());
        attestation.referrers_api = Some(attached.referrers_api);
        attestation.cosign_tag = Some(attached.cosign_tag);
        attestation.cosign_manifest_digest = Some(attached.cosign_manifest.to_string());
        attestation.unchanged = Some(attached.unchanged);
    }
    Ok(Some(Published {
        envelope: Some(signed.envelope),
        attestation,
    }))
}

/// `sha256:<hex>` of `bytes`.
fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Attaches `envelope` to the image `spec` names, pinned by `digest`, with
/// the organisation's login (else anonymously) on a blocking thread.
pub(crate) async fn attach_envelope(
    svc: &Service,
    org_id: &str,
    spec: &JobSpec,
    digest: &vexxy_model::Digest,
    envelope: &[u8],
) -> Result<vexxy_registry::Attached, AnalyzeError> {
    use vexxy_analyze::ResultExt as _;
    let name = registry_reference(&spec.image_ref).ok_or_else(|| {
        AnalyzeError::bad_input(format!(
            "attaching the attestation: {:?} is not an image in a registry",
            spec.image_ref
        ))
    })?;
    let pinned = vexxy_analyze::distribute::pinned_reference(&name, digest)?;
    let credentials = pull_credentials(svc, org_id, &spec.image_ref)
        .await
        .doing("attaching the attestation")?;
    let settings = &svc.config.analysis;
    let opts = vexxy_registry::PullOptions {
        platform: None,
        insecure_registries: settings.insecure_registries.clone(),
        credentials,
        timeout: settings.registry_timeout,
        egress: settings.egress.clone(),
    };
    let envelope = envelope.to_vec();
    tokio::task::spawn_blocking(move || {
        vexxy_analyze::distribute::attach(&pinned, &envelope, &opts)
    })
    .await
    .map_err(|e| AnalyzeError::transient(format!("attaching the attestation: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_named_one_way() {
        for (given, want) in [
            ("ghcr.io", "ghcr.io"),
            ("GHCR.io", "ghcr.io"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("r.example:443", "r.example:443"),
        ] {
            assert_eq!(registry_name(given).unwrap(), want, "{given}");
        }
        for bad in [
            "",
            "https://ghcr.io",
            "ghcr.io/x",
            "*.example.com",
            "a b",
            "user@host",
        ] {
            assert!(registry_name(bad).is_err(), "{bad}");
        }
        assert_eq!(registry_of_reference("nginx").as_deref(), Some("docker.io"));
        assert_eq!(
            registry_of_reference("docker://127.0.0.1:5000/app:1").as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(registry_of_reference("oci:/tmp/x:latest"), None);
    }

    #[test]
    fn the_organisation_s_allowlist_names_registries() {
        let list = allowlist_entries(&["ghcr.io".into(), "*.corp.example".into()]).unwrap();
        assert!(check_org_allowlist("ghcr.io/a/b:1", &list, &[]).is_ok());
        assert!(check_org_allowlist("r.corp.example:5000/a", &list, &[]).is_ok());
        let e = check_org_allowlist("quay.io/a/b", &list, &[]).unwrap_err();
        assert!(e.contains("quay.io") && e.contains("allow-list"), "{e}");
        assert!(
            check_org_allowlist("quay.io/a/b", &[], &[]).is_ok(),
            "no list"
        );
        assert!(
            check_org_allowlist("oci:/tmp/x", &list, &[]).is_ok(),
            "local"
        );
        let hub = allowlist_entries(&["docker.io".into()]).unwrap();
        assert!(check_org_allowlist("nginx:1", &hub, &[]).is_ok());
        let port = allowlist_entries(&["127.0.0.1:5000".into()]).unwrap();
        assert!(check_org_allowlist("127.0.0.1:5000/a", &port, &[]).is_ok());
        assert!(check_org_allowlist("127.0.0.1:5001/a", &port, &[]).is_err());
        assert!(allowlist_entries(&["https://x".into()]).is_err());
    }

    #[test]
    fn failed_attestations_are_retried_only_when_another_try_may_pass() {
        let refused = vexxy_registry::RegistryError::AuthRefused {
            registry: "r.example".into(),
            reference: "r.example/a@sha256:x".into(),
            reason: "unauthorized (http 401)".into(),
        };
        let unreachable = vexxy_registry::RegistryError::Network {
            registry: "r.example".into(),
            reference: "r.example/a@sha256:x".into(),
            reason: "connection refused".into(),
        };
        let cases = [
            (PublishError::Attach(AnalyzeError::from(refused)), false),
            (PublishError::Attach(AnalyzeError::from(unreachable)), true),
            (PublishError::NoSigningKey, false),
            (PublishError::NoServerKey, true),
            (
                PublishError::Sealed(SecretsError::Tampered {
                    org: "o".into(),
                    purpose: "signing-key",
                }),
                false,
            ),
            (
                PublishError::Store(StoreError::Unavailable("locked".into())),
                true,
            ),
            (
                PublishError::Sign(AnalyzeError::bad_input("not a VEX document")),
                false,
            ),
        ];
        for (e, retriable) in cases {
            assert_eq!(e.is_retriable(), retriable, "{e}");
        }
    }

    #[test]
    fn algorithms_by_name() {
        assert_eq!(parse_algorithm("p256").unwrap(), KeyAlgorithm::EcdsaP256);
        assert_eq!(
            parse_algorithm("ecdsa-p256").unwrap(),
            KeyAlgorithm::EcdsaP256
        );
        assert_eq!(parse_algorithm("Ed25519").unwrap(), KeyAlgorithm::Ed25519);
        assert!(parse_algorithm("rsa").is_err());
    }
}
