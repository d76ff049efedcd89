//! Pulls images from OCI distribution registries into a content-addressed
//! OCI image layout, verifying every digest.
//!
//! [`pull`] (or [`pull_blocking`]) resolves a reference such as
//! `registry.example:5000/team/app:1.2`, `nginx` (Docker Hub:
//! `docker.io/library/nginx:latest`) or `…@sha256:…`, picks the manifest for
//! one platform out of a multi-arch index, and writes the image as a
//! standard OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`)
//! that any OCI-layout reader can open. Authentication is anonymous, HTTP
//! basic, or the registry token flow (`WWW-Authenticate: Bearer realm=…`),
//! with credentials given explicitly or read from a docker `config.json`.
//!
//! [`attach_attestation`] (or [`attach_attestation_blocking`]) attaches a
//! signed in-toto attestation (a DSSE JSON envelope, e.g. from
//! `vexxy-attest`) to the manifest or index a reference resolves to, in its
//! own repository: as an OCI 1.1 referrer (with the `sha256-<hex>`
//! referrers tag when the registry has no referrers API) and as the first
//! layer of cosign's `sha256-<hex>.att` image, which cosign and Trivy's
//! `--vex oci` read. [`list_attestations`] finds them again. The layouts
//! are described in `docs/registry.md`.
//!
//! # Invariants
//!
//! - A blob is stored only after its sha256 and size are verified against
//!   the descriptor naming it: it is streamed to a temporary file in the
//!   layout and renamed into `blobs/sha256/<hex>` only when both match, so a
//!   failed or tampered download leaves nothing under that name.
//! - A manifest's bytes always hash to the digest it is recorded under; a
//!   pinned reference (`@sha256:…`) must match what the registry serves, and
//!   a platform manifest must match the digest and size its index lists.
//! - A blob already in the layout is reused only after re-hashing it; a
//!   corrupt one is replaced by a verified download.
//! - The `index.json` entry (annotated `org.opencontainers.image.ref.name` =
//!   the reference as given, without `docker://`) is written last, atomically,
//!   and only once every blob of the image is stored; other entries are kept.
//! - Credentials are only sent to the registry of the reference (and its
//!   token service); passwords never appear in `Debug` output or errors.
//! - With an egress policy ([`PullOptions::egress`]) every connection of
//!   the pull goes through [`vexxy_egress::EgressPolicy::connect`]: the
//!   registry's host is checked before anything is sent, and the HTTP
//!   client reaches the network only through an in-process
//!   [`vexxy_egress::EgressProxy`], so redirects, token realms and foreign
//!   layer URLs are checked too; foreign layer URLs are tried only over
//!   HTTPS and only to hosts the policy allows; plain HTTP goes only to the
//!   registries named insecure (no HTTPS → HTTP redirect).
//! - No `unsafe`, no panics on registry input: every failure is a
//!   [`RegistryError`] naming the reference, digest or registry, and none
//!   carries a response body (status codes, OCI error codes and hosts
//!   only).
//!
//! - Attaching sends nothing before the envelope parses as a DSSE envelope
//!   of an in-toto statement, and pushes nothing before the statement is
//!   found to name the resolved subject. It never verifies signatures and
//!   holds no keys. The referrer for an envelope is deterministic, so
//!   attaching the same envelope twice pushes nothing the second time.
//!   Existing tags holding something other than what they should are
//!   refused, never overwritten; layers of the `.att` image are dropped
//!   only when they are the same kind of statement about the same image.
//! - Every read of registry content is bounded (manifests 4 MiB, envelopes
//!   16 MiB) and digest-checked; listed envelopes match their digests but
//!   are otherwise untrusted.
//!
//! One layout directory should have one writer at a time: blobs are safe to
//! share, but concurrent pulls may race on `index.json`. Likewise, one
//! attach per image at a time: attaching rewrites two tags.

mod attach;
mod auth;
mod connect;
mod envelope;
mod error;
mod layout;
mod pull;
mod reference;
mod referrers;
mod remote;

use std::{future::Future, path::Path};

use vexxy_model::Digest;

pub use attach::{AttachOptions, Attached};
pub use auth::{default_docker_config_path, Credentials};
pub use error::RegistryError;
pub use layout::REF_NAME_ANNOTATION;
pub use reference::{ImageRef, Platform};
pub use referrers::{AttestationLocation, FoundAttestation};

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `os/arch[/variant]` to pick from a multi-arch index; the host platform
    /// (e.g. `linux/amd64`) when `None`.
    pub platform: Option<String>,
    /// Registries (`host:port`, as in the reference) spoken to over plain
    /// HTTP instead of HTTPS.
    pub insecure_registries: Vec<String>,
    /// How to authenticate.
    pub credentials: Credentials,
    /// How long to wait for a connection and for each read; default 30 s
    /// to connect, 120 s to read.
    pub timeout: Option<std::time::Duration>,
    /// The egress policy every connection of the pull obeys (the
    /// registry, its token service, redirects, foreign layer URLs); `None`
    /// contacts whatever the reference and the registry name.
    pub egress: Option<vexxy_egress::EgressPolicy>,
}

/// Checks, without DNS, that `reference` names a registry the policy lets
/// this process contact: the host allow-list, and the deny-list for IP
/// addresses and `localhost` names. Cheap enough for a request handler; a
/// registry that passes is checked again, resolved, when it is pulled.
/// Local image names are not registry references: they fail to parse.
///
/// # Errors
///
/// [`RegistryError::BadReference`] or [`RegistryError::Egress`].
pub fn admit(
    reference: &str,
    policy: &vexxy_egress::EgressPolicy,
    insecure_registries: &[String],
) -> Result<(), RegistryError> {
    let image = ImageRef::parse(reference)?;
    let (host, port) = connect::endpoint(&image, insecure_registries);
    policy
        .check_without_dns(&host, port)
        .map_err(|source| RegistryError::Egress {
            registry: image.registry().to_owned(),
            reference: image.given.clone(),
            source: Box::new(source),
        })
}

/// A content descriptor of a config or layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobDescriptor {
    /// Media type, e.g. `application/vnd.oci.image.layer.v1.tar+gzip`.
    pub media_type: String,
    /// Content digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

/// What a pull wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The `org.opencontainers.image.ref.name` written to `index.json`: the
    /// reference as given, without a `docker://` prefix.
    pub reference: String,
    /// Digest of the (platform) image manifest the `index.json` entry names.
    pub manifest_digest: Digest,
    /// Media type of that manifest (OCI or Docker schema 2).
    pub manifest_media_type: String,
    /// Digest of the multi-arch index the manifest was chosen from, if any
    /// (the index itself is not stored).
    pub index_digest: Option<Digest>,
    /// Digest of the image config blob.
    pub config_digest: Digest,
    /// The layers, base first.
    pub layers: Vec<BlobDescriptor>,
    /// Config and layer blobs found already stored (and re-verified) in the
    /// layout, so not fetched.
    pub reused_blobs: usize,
    /// Bytes of config and layer blobs downloaded (manifests not counted).
    pub fetched_bytes: u64,
    /// Non-fatal problems, e.g. credential helpers in a docker config that
    /// were not run.
    pub warnings: Vec<String>,
}

/// Pulls `reference` into the OCI image layout at `layout_dir` (created when
/// missing), skipping blobs already there.
///
/// # Errors
///
/// A [`RegistryError`]; see [`RegistryError::is_bad_input`].
pub async fn pull(
    reference: &str,
    opts: &PullOptions,
    layout_dir: &Path,
) -> Result<Pulled, RegistryError> {
    pull::pull(reference, opts, layout_dir).await
}

/// [`pull`] on a current-thread tokio runtime built for the call. Safe to
/// call from inside another runtime (it then runs on a scoped thread).
///
/// # Errors
///
/// As [`pull`], plus [`RegistryError::Runtime`] when no runtime can start.
pub fn pull_blocking(
    reference: &str,
    opts: &PullOptions,
    layout_dir: &Path,
) -> Result<Pulled, RegistryError> {
    blocking(reference, || pull(reference, opts, layout_dir))
}

/// Attaches a signed attestation to the image `image` names, in its own
/// repository, in the two places readers look:
///
/// - an OCI 1.1 referrer manifest (`artifactType`
///   `application/vnd.dsse.envelope.v1+json`, the envelope as its one
///   layer, `subject` = the image), pushed by digest; when the registry
///   does not answer the push with `OCI-Subject` (no referrers API), the
///   referrers tag `sha256-<hex>` is updated to list it. Every envelope
///   attached stays there: the history.
/// - cosign's `sha256-<hex>.att` image (what `cosign download
///   attestation`, `cosign verify-attestation` and Trivy's `--vex oci`
///   read), with the envelope as its first layer. Older layers of the same
///   predicate type about the same image are dropped; every other layer
///   (other predicate types, other tools' attestations) is kept.
///
/// `envelope` is a DSSE JSON envelope whose payload (type
/// `application/vnd.in-toto+json`) is an in-toto statement with this image
/// among its subjects: the manifest, or for a tag naming a multi-arch
/// index, the index (`opts.platform` is not used). Its signatures are not
/// verified here. Attaching the same envelope again pushes nothing
/// ([`Attached::unchanged`]). The referrer's
/// `org.opencontainers.image.created` comes from the predicate (OpenVEX
/// `last_updated`, else `timestamp`); see [`attach_attestation_with`].
///
/// Pushing needs `push` access: credentials as for [`pull`], and the token
/// flow asks for `pull,push`. Every connection obeys `opts.egress`.
/// Concurrent attaches to the same image may race on the tags they
/// rewrite: one writer per image at a time.
///
/// # Errors
///
/// [`RegistryError::BadEnvelope`] (before anything is sent),
/// [`RegistryError::SubjectMismatch`] (before anything is pushed),
/// [`RegistryError::AuthRefused`] when the registry refuses the push, and
/// the errors of [`pull`].
pub async fn attach_attestation(
    image: &str,
    envelope: &[u8],
    opts: &PullOptions,
) -> Result<Attached, RegistryError> {
    attach::attach(image, envelope, opts, &AttachOptions::default()).await
}

/// [`attach_attestation`] with [`AttachOptions`] (e.g. the referrer's
/// `created` time).
///
/// # Errors
///
/// As [`attach_attestation`], plus [`RegistryError::BadAttachOption`].
pub async fn attach_attestation_with(
    image: &str,
    envelope: &[u8],
    opts: &PullOptions,
    attach: &AttachOptions,
) -> Result<Attached, RegistryError> {
    attach::attach(image, envelope, opts, attach).await
}

/// [`attach_attestation`] on a runtime built for the call, like
/// [`pull_blocking`].
///
/// # Errors
///
/// As [`attach_attestation`], plus [`RegistryError::Runtime`].
pub fn attach_attestation_blocking(
    image: &str,
    envelope: &[u8],
    opts: &PullOptions,
) -> Result<Attached, RegistryError> {
    blocking(image, || attach_attestation(image, envelope, opts))
}

/// Lists the attestations attached to the image `image` names (the
/// manifest, or the index a multi-arch tag names): first the layers of
/// cosign's `sha256-<hex>.att` image that are DSSE envelopes, in order
/// (the first is what cosign readers take), then those of the OCI 1.1
/// referrers with a DSSE or in-toto `artifactType`, in the order the
/// referrers API (when the registry answers it) or the referrers tag lists
/// them. An envelope attached with [`attach_attestation`] appears in both.
///
/// Every envelope is read whole (at most 16 MiB, at most 1024 of them),
/// and matches its digest; nothing else about it is checked: verify the
/// signature before trusting what it says.
///
/// # Errors
///
/// As [`pull`]; [`RegistryError::Unsupported`] when an attestation tag
/// holds something else than an image manifest (or a referrers tag
/// something else than an index), or when there are too many.
pub async fn list_attestations(
    image: &str,
    opts: &PullOptions,
) -> Result<Vec<FoundAttestation>, RegistryError> {
    referrers::list(image, opts).await
}

/// [`list_attestations`] on a runtime built for the call, like
/// [`pull_blocking`].
///
/// # Errors
///
/// As [`list_attestations`], plus [`RegistryError::Runtime`].
pub fn list_attestations_blocking(
    image: &str,
    opts: &PullOptions,
) -> Result<Vec<FoundAttestation>, RegistryError> {
    blocking(image, || list_attestations(image, opts))
}

/// Runs the future `make` returns on a current-thread runtime built for the
/// call; from inside another runtime, on a scoped thread.
fn blocking<T, F, Fut>(reference: &str, make: F) -> Result<T, RegistryError>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    let run = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| RegistryError::Runtime {
                reference: reference.to_owned(),
                source,
            })?;
        rt.block_on(make())
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(run).join().unwrap_or_else(|_| {
                Err(RegistryError::Runtime {
                    reference: reference.to_owned(),
                    source: std::io::Error::other("the registry thread panicked"),
                })
            })
        })
    } else {
        run()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_blocking_works_inside_a_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        // Reaches the pull (and fails on the reference) instead of panicking
        // about nested runtimes.
        let e =
            rt.block_on(async { pull_blocking("Bad Ref", &PullOptions::default(), dir.path()) });
        assert!(
            matches!(e, Err(RegistryError::BadReference { .. })),
            "{e:?}"
        );
        assert!(
            !dir.path().join("oci-layout").exists(),
            "nothing written for a bad reference"
        );
    }

    #[test]
    fn unreachable_registry_is_a_network_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = PullOptions {
            insecure_registries: vec![addr.to_string()],
            ..Default::default()
        };
        let e = pull_blocking(&format!("{addr}/x:1"), &opts, dir.path()).expect_err("refused");
        assert!(
            matches!(e, RegistryError::Network { .. }) && !e.is_bad_input(),
            "{e:?}"
        );
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
        assert!(!dir.path().join("index.json").exists());
    }
}
