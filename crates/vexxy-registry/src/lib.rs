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
//! One layout directory should have one writer at a time: blobs are safe to
//! share, but concurrent pulls may race on `index.json`.

mod auth;
mod error;
mod layout;
mod pull;
mod reference;

use std::path::Path;

use vexxy_model::Digest;

pub use auth::{default_docker_config_path, Credentials};
pub use error::RegistryError;
pub use layout::REF_NAME_ANNOTATION;
pub use reference::{ImageRef, Platform};

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
    let (host, port) = pull::endpoint(&image, insecure_registries);
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
    let run = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| RegistryError::Runtime {
                reference: reference.to_owned(),
                source,
            })?;
        rt.block_on(pull(reference, opts, layout_dir))
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(run).join().unwrap_or_else(|_| {
                Err(RegistryError::Runtime {
                    reference: reference.to_owned(),
                    source: std::io::Error::other("the pulling thread panicked"),
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
