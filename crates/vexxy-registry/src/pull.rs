//! The pull: resolve the manifest, fetch and verify blobs, write the layout.

use std::path::Path;

use futures_util::StreamExt as _;
use oci_client::{
    client::LayerDescriptor, errors::OciDistributionError, secrets::RegistryAuth, Client,
    RegistryOperation,
};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use vexxy_egress::EgressPolicy;
use vexxy_model::Digest;

use crate::{
    connect::Session,
    error::{describe, Ctx},
    layout::Layout,
    reference::{ImageRef, Platform},
    BlobDescriptor, PullOptions, Pulled, RegistryError,
};

/// OCI image manifest media type.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest v2 schema 2 media type.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest media type asked for.
pub(crate) const ACCEPT: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];
/// Largest manifest or index accepted (4 MiB, as common registries limit).
pub(crate) const MAX_MANIFEST_BYTES: usize = 4 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: i64,
    urls: Option<Vec<String>>,
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

enum Parsed {
    Index(Vec<RawDescriptor>),
    Image {
        media_type: String,
        config: RawDescriptor,
        layers: Vec<RawDescriptor>,
    },
}

pub(crate) async fn pull(
    reference: &str,
    opts: &PullOptions,
    layout_dir: &Path,
) -> Result<Pulled, RegistryError> {
    let image = ImageRef::parse(reference)?;
    let platform = match &opts.platform {
        Some(p) => p
            .parse::<Platform>()
            .map_err(|_| RegistryError::BadPlatform {
                platform: p.clone(),
            })?,
        None => Platform::host(),
    };
    let session = Session::open(image, opts, false).await?;
    let layout = Layout::open(layout_dir)?;
    let result = Puller {
        client: &session.client,
        image: &session.image,
        ctx: &session.ctx,
        auth: &session.auth,
        layout: &layout,
        egress: opts.egress.as_ref(),
    }
    .run(&platform)
    .await;
    layout.tidy();
    let warnings = session.warnings.clone();
    // the clients go before the proxy they talk through
    drop(session);
    let mut pulled = result?;
    pulled.warnings = warnings;
    Ok(pulled)
}

struct Puller<'a> {
    client: &'a Client,
    image: &'a ImageRef,
    ctx: &'a Ctx,
    auth: &'a RegistryAuth,
    layout: &'a Layout,
    /// The policy foreign layer URLs must pass before they are offered to
    /// the client (which tries them when the registry does not serve the
    /// blob).
    egress: Option<&'a EgressPolicy>,
}

impl Puller<'_> {
    async fn run(&self, platform: &Platform) -> Result<Pulled, RegistryError> {
        // Authenticate up front: the client otherwise swallows a token
        // service's refusal and retries anonymously, hiding the reason.
        self.client
            .auth(self.image.oci(), self.auth, RegistryOperation::Pull)
            .await
            .map_err(|e| self.ctx.map(e))?;

        let top_ref = self.image.oci().clone();
        let (bytes, digest) = self
            .fetch_manifest(&top_ref, self.image.digest(), None)
            .await?;
        let (index_digest, manifest_bytes, manifest_digest, parsed) =
            match self.parse(&bytes, &digest)? {
                Parsed::Index(entries) => {
                    let chosen = self.choose(&entries, platform)?;
                    if chosen.digest.parse::<Digest>().is_err() {
                        return Err(RegistryError::Unsupported {
                            reference: self.ctx.reference.clone(),
                            digest: digest.to_string(),
                            reason: format!("manifest digest {:?} is not sha256", chosen.digest),
                        });
                    }
                    let child_ref = top_ref.clone_with_digest(chosen.digest.clone());
                    let size = descriptor_size(chosen, &self.ctx.reference)?;
                    let (child, child_digest) = self
                        .fetch_manifest(&child_ref, Some(&chosen.digest), Some(size))
                        .await?;
                    let parsed = self.parse(&child, &child_digest)?;
                    if matches!(parsed, Parsed::Index(_)) {
                        return Err(RegistryError::Unsupported {
                            reference: self.ctx.reference.clone(),
                            digest: child_digest.to_string(),
                            reason: "an image index nested in an image index".into(),
                        });
                    }
                    (Some(digest), child, child_digest, parsed)
                }
                image @ Parsed::Image { .. } => (None, bytes, digest, image),
            };
        let Parsed::Image {
            media_type,
            config,
            layers,
        } = parsed
        else {
            return Err(self.malformed(&manifest_digest, "expected an image manifest"));
        };

        let config = self.descriptor(&config, &manifest_digest)?;
        let layers = layers
            .iter()
            .map(|l| self.descriptor(l, &manifest_digest))
            .collect::<Result<Vec<_>, _>>()?;

        let mut reused_blobs = 0;
        let mut fetched_bytes = 0;
        for (desc, urls) in std::iter::once(&config).chain(layers.iter()) {
            // A cached blob stands in for a download only when this
            // registry, under these credentials, says it serves it too: a
            // manifest naming a digest is no proof of access to it.
            if self.layout.has_blob(&desc.digest, desc.size).await?
                && self.registry_serves(&desc.digest).await?
            {
                reused_blobs += 1;
            } else {
                fetched_bytes += self.fetch_blob(desc, urls).await?;
            }
        }

        self.layout.store_bytes(&manifest_digest, &manifest_bytes)?;
        self.layout.set_ref(
            &self.image.given,
            &media_type,
            &manifest_digest,
            manifest_bytes.len() as u64,
        )?;
        Ok(Pulled {
            reference: self.image.given.clone(),
            manifest_digest,
            manifest_media_type: media_type,
            index_digest,
            config_digest: config.0.digest,
            layers: layers.into_iter().map(|(d, _)| d).collect(),
            reused_blobs,
            fetched_bytes,
            warnings: Vec::new(),
        })
    }

    /// Whether the registry says it serves the blob to this caller (HEAD).
    /// Any answer but yes (a refusal, a redirect HEAD cannot follow, an
    /// error) means: download it. A registry can say yes falsely; the
    /// service therefore keeps each tenant's blobs apart
    /// (`vexxy_analyze::Caches::for_tenant`), and this check keeps an
    /// honest registry's access rules for a shared cache.
    async fn registry_serves(&self, digest: &Digest) -> Result<bool, RegistryError> {
        Ok(self
            .client
            .blob_exists(self.image.oci(), &digest.to_string())
            .await
            .unwrap_or(false))
    }

    /// Fetches a manifest and checks its bytes against the expected digest
    /// (the pinned one, or the one the registry announced) and size.
    async fn fetch_manifest(
        &self,
        r: &oci_client::Reference,
        expected: Option<&str>,
        expected_size: Option<u64>,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let (bytes, announced) = self
            .client
            .pull_manifest_raw(r, self.auth, ACCEPT)
            .await
            .map_err(|e| self.ctx.map(e))?;
        let actual = Digest::from_sha256_bytes(&Sha256::digest(&bytes).into());
        let expected = expected.unwrap_or(&announced);
        if !expected.eq_ignore_ascii_case(&actual.to_string()) {
            return Err(RegistryError::ManifestDigestMismatch {
                registry: self.ctx.registry.clone(),
                reference: self.ctx.reference.clone(),
                expected: expected.to_owned(),
                actual: actual.to_string(),
            });
        }
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(self.malformed(&actual, "larger than 4 MiB"));
        }
        if let Some(size) = expected_size.filter(|s| *s != bytes.len() as u64) {
            return Err(self.malformed(
                &actual,
                &format!("{} bytes where the index says {size}", bytes.len()),
            ));
        }
        Ok((bytes.to_vec(), actual))
    }

    fn parse(&self, bytes: &[u8], digest: &Digest) -> Result<Parsed, RegistryError> {
        let raw: RawManifest =
            serde_json::from_slice(bytes).map_err(|e| self.malformed(digest, &e.to_string()))?;
        let unsupported = |reason: String| RegistryError::Unsupported {
            reference: self.ctx.reference.clone(),
            digest: digest.to_string(),
            reason,
        };
        if raw.schema_version != Some(2) {
            return Err(unsupported(format!(
                "schema version {} (only 2 is pulled)",
                raw.schema_version
                    .map_or_else(|| "missing".to_owned(), |v| v.to_string())
            )));
        }
        let media_type = raw.media_type.clone();
        match media_type.as_deref() {
            Some(OCI_INDEX | DOCKER_LIST) => {}
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => {}
            None if raw.manifests.is_some() || raw.config.is_some() => {}
            None => return Err(self.malformed(digest, "neither an image index nor a manifest")),
            Some(other) => return Err(unsupported(format!("media type {other}"))),
        }
        let is_index = matches!(media_type.as_deref(), Some(OCI_INDEX | DOCKER_LIST))
            || (media_type.is_none() && raw.manifests.is_some());
        if is_index {
            let entries = raw.manifests.unwrap_or_default();
            return Ok(Parsed::Index(entries));
        }
        let config = raw
            .config
            .ok_or_else(|| self.malformed(digest, "no config descriptor"))?;
        Ok(Parsed::Image {
            media_type: media_type.unwrap_or_else(|| OCI_MANIFEST.to_owned()),
            config,
            layers: raw.layers.unwrap_or_default(),
        })
    }

    fn choose<'e>(
        &self,
        entries: &'e [RawDescriptor],
        platform: &Platform,
    ) -> Result<&'e RawDescriptor, RegistryError> {
        let matching = |want_no_variant: bool| {
            entries.iter().find(|e| {
                e.platform.as_ref().is_some_and(|p| {
                    platform.matches(&p.os, &p.architecture, p.variant.as_deref())
                        && (!want_no_variant || p.variant.is_none())
                })
            })
        };
        // Without a requested variant, an entry without one is the plain match.
        let found = if platform.variant.is_none() {
            matching(true)
        } else {
            None
        };
        if let Some(found) = found.or_else(|| matching(false)) {
            return Ok(found);
        }
        let mut available: Vec<String> = entries
            .iter()
            .filter_map(|e| e.platform.as_ref())
            .map(|p| match &p.variant {
                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            })
            .collect();
        available.dedup();
        Err(RegistryError::NoMatchingPlatform {
            reference: self.ctx.reference.clone(),
            platform: platform.to_string(),
            available: if available.is_empty() {
                "none".into()
            } else {
                available.join(", ")
            },
        })
    }

    /// Checks a config or layer descriptor and converts it.
    fn descriptor(
        &self,
        raw: &RawDescriptor,
        manifest: &Digest,
    ) -> Result<(BlobDescriptor, Option<Vec<String>>), RegistryError> {
        let digest: Digest = raw.digest.parse().map_err(|_| RegistryError::Unsupported {
            reference: self.ctx.reference.clone(),
            digest: manifest.to_string(),
            reason: format!("blob digest {:?} is not sha256", raw.digest),
        })?;
        let size = u64::try_from(raw.size)
            .map_err(|_| self.malformed(manifest, &format!("negative size for {digest}")))?;
        let media_type = raw
            .media_type
            .clone()
            .ok_or_else(|| self.malformed(manifest, &format!("no media type for {digest}")))?;
        let urls = self.foreign_urls(raw.urls.as_deref(), &digest);
        Ok((
            BlobDescriptor {
                media_type,
                digest,
                size,
            },
            urls,
        ))
    }

    /// The foreign layer URLs the client may try: all of them without a
    /// policy; under one, HTTPS URLs whose host the policy allows (the
    /// connection itself is checked again by the proxy).
    fn foreign_urls(&self, urls: Option<&[String]>, digest: &Digest) -> Option<Vec<String>> {
        let urls = urls?;
        let Some(policy) = self.egress else {
            return Some(urls.to_vec());
        };
        let kept: Vec<String> = urls
            .iter()
            .filter(|u| {
                let allowed = foreign_url_allowed(policy, u);
                if !allowed {
                    tracing::warn!(
                        blob = %digest,
                        "foreign layer url not tried: not https, or its host is not allowed"
                    );
                }
                allowed
            })
            .cloned()
            .collect();
        (!kept.is_empty()).then_some(kept)
    }

    /// Streams one blob to a temporary file, verifying size and digest,
    /// and renames it into place. Returns the bytes fetched.
    async fn fetch_blob(
        &self,
        desc: &BlobDescriptor,
        urls: &Option<Vec<String>>,
    ) -> Result<u64, RegistryError> {
        let digest = desc.digest.to_string();
        let mismatch = |reason: String| RegistryError::BlobMismatch {
            registry: self.ctx.registry.clone(),
            reference: self.ctx.reference.clone(),
            digest: digest.clone(),
            reason,
        };
        let layer = LayerDescriptor {
            digest: &digest,
            urls,
        };
        let mut stream = self
            .client
            .pull_blob_stream(self.image.oci(), &layer)
            .await
            .map_err(|e| self.ctx.map(e))?;
        if let Some(len) = stream.content_length.filter(|l| *l != desc.size) {
            return Err(mismatch(format!(
                "registry announces {len} bytes, the descriptor says {}",
                desc.size
            )));
        }

        let tmp = self.layout.temp_file()?;
        let file = tmp
            .as_file()
            .try_clone()
            .map_err(|e| RegistryError::io(tmp.path(), e))?;
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file));
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    // The client's own check fails the stream after the last
                    // chunk; report that as the mismatch it is.
                    let so_far = hex::encode(hasher.clone().finalize());
                    if received == desc.size && so_far != desc.digest.hex() {
                        return Err(mismatch(format!("content hashes to sha256:{so_far}")));
                    }
                    return Err(self.ctx.network(format!(
                        "reading blob {digest}: {}",
                        describe(&OciDistributionError::IoError(e))
                    )));
                }
            };
            received += chunk.len() as u64;
            if received > desc.size {
                return Err(mismatch(format!(
                    "more than the {} bytes the descriptor says",
                    desc.size
                )));
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| RegistryError::io(tmp.path(), e))?;
        }
        out.flush()
            .await
            .map_err(|e| RegistryError::io(tmp.path(), e))?;
        drop(out);
        if received != desc.size {
            return Err(mismatch(format!(
                "received {received} bytes, the descriptor says {}",
                desc.size
            )));
        }
        let actual = hex::encode(hasher.finalize());
        if actual != desc.digest.hex() {
            return Err(mismatch(format!("content hashes to sha256:{actual}")));
        }
        self.layout.commit(tmp, &desc.digest)?;
        Ok(received)
    }

    fn malformed(&self, digest: &Digest, reason: &str) -> RegistryError {
        RegistryError::BadManifest {
            reference: self.ctx.reference.clone(),
            digest: digest.to_string(),
            reason: reason.to_lowercase(),
        }
    }
}

/// Whether a foreign layer URL may be offered to the client under
/// `policy`: HTTPS, no user info, a host the policy allows without DNS.
fn foreign_url_allowed(policy: &EgressPolicy, url: &str) -> bool {
    let Some(rest) = url
        .get(..8)
        .filter(|s| s.eq_ignore_ascii_case("https://"))
        .and_then(|_| url.get(8..))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    vexxy_egress::split_authority(authority, Some(443))
        .is_some_and(|(host, port)| policy.check_without_dns(&host, port).is_ok())
}

fn descriptor_size(d: &RawDescriptor, reference: &str) -> Result<u64, RegistryError> {
    u64::try_from(d.size).map_err(|_| RegistryError::BadManifest {
        reference: reference.to_owned(),
        digest: d.digest.clone(),
        reason: "negative size in the image index".into(),
    })
}
