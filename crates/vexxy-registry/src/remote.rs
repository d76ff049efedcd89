//! The registry requests attaching and listing make, on a [`Session`]:
//! manifests (bounded reads, digest-checked) and manifest pushes (whose
//! `OCI-Subject` answer oci-client does not expose), the referrers API,
//! blob checks, and blob pushes and fetches through oci-client.
//!
//! Nothing a registry sends reaches an error message except status codes
//! and hosts; every read is bounded.

use futures_util::StreamExt as _;
use oci_client::client::LayerDescriptor;
use reqwest::{header, Method, StatusCode};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use vexxy_model::Digest;

use crate::{
    connect::{RawAuth, Session},
    error::{describe, digest_or_placeholder, Ctx},
    pull::{MAX_MANIFEST_BYTES, OCI_INDEX},
    RegistryError,
};

/// Most pages of a referrers API answer followed.
const MAX_REFERRER_PAGES: usize = 16;

/// A manifest read from the registry: its bytes hash to `digest`.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub(crate) bytes: Vec<u8>,
    pub(crate) digest: Digest,
    /// The `Content-Type` the registry answered with.
    pub(crate) content_type: Option<String>,
}

/// sha256 of `bytes` as a digest.
pub(crate) fn sha256(bytes: &[u8]) -> Digest {
    Digest::from_sha256_bytes(&Sha256::digest(bytes).into())
}

impl Session {
    fn http(&self) -> Result<&reqwest::Client, RegistryError> {
        self.http
            .as_ref()
            .ok_or_else(|| self.ctx.network("no http client for this request".into()))
    }

    /// `scheme://registry/v2/repository`.
    fn repo_url(&self) -> String {
        format!(
            "{}://{}/v2/{}",
            self.scheme(),
            self.image.resolved_registry(),
            self.image.repository()
        )
    }

    /// `scheme://registry/`, what every URL sent credentials must start with.
    fn registry_prefix(&self) -> String {
        format!("{}://{}/", self.scheme(), self.image.resolved_registry())
    }

    /// A request to the registry carrying the credentials.
    fn request(&self, method: Method, url: &str) -> Result<reqwest::RequestBuilder, RegistryError> {
        let builder = self.http()?.request(method, url);
        Ok(match &self.raw_auth {
            RawAuth::None => builder,
            RawAuth::Bearer(token) => builder.bearer_auth(token),
            RawAuth::Basic(user, pass) => builder.basic_auth(user, Some(pass)),
        })
    }

    /// Sends a request; a transport failure becomes an error of `ctx`.
    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
        ctx: &Ctx,
    ) -> Result<reqwest::Response, RegistryError> {
        builder.send().await.map_err(|e| ctx.transport(&e))
    }

    /// Reads a response body of at most `max` bytes.
    async fn read_bounded(
        mut response: reqwest::Response,
        max: usize,
        ctx: &Ctx,
        too_large: impl Fn() -> RegistryError,
    ) -> Result<Vec<u8>, RegistryError> {
        if response.content_length().is_some_and(|l| l > max as u64) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| ctx.transport(&e))? {
            if out.len() + chunk.len() > max {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// GETs the manifest `reference` (a tag or a digest) of the repository,
    /// accepting `accept`; `None` when the registry answers 404. The bytes
    /// must hash to the digest asked for, else to the digest the registry
    /// announces (`Docker-Content-Digest`), and be at most 4 MiB.
    pub(crate) async fn get_manifest(
        &self,
        ctx: &Ctx,
        reference: &str,
        accept: &[&str],
    ) -> Result<Option<Fetched>, RegistryError> {
        let url = format!("{}/manifests/{reference}", self.repo_url());
        let response = self
            .send(
                self.request(Method::GET, &url)?
                    .header(header::ACCEPT, accept.join(", ")),
                ctx,
            )
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(ctx.status(status.as_u16(), response.url().as_str()));
        }
        let announced = header_text(&response, "docker-content-digest");
        let content_type = header_text(&response, "content-type")
            .map(|t| t.split(';').next().unwrap_or_default().trim().to_owned());
        let bytes = Self::read_bounded(response, MAX_MANIFEST_BYTES, ctx, || {
            RegistryError::BadManifest {
                reference: ctx.reference.clone(),
                digest: reference.to_owned(),
                reason: "larger than 4 MiB".into(),
            }
        })
        .await?;
        let digest = sha256(&bytes);
        let expected = if reference.starts_with("sha256:") {
            Some(reference.to_owned())
        } else {
            // only a sha256 announcement can be compared
            announced.filter(|a| a.starts_with("sha256:"))
        };
        if let Some(expected) = expected {
            if !expected.eq_ignore_ascii_case(&digest.to_string()) {
                return Err(RegistryError::ManifestDigestMismatch {
                    registry: ctx.registry.clone(),
                    reference: ctx.reference.clone(),
                    expected: digest_or_placeholder(&expected),
                    actual: digest.to_string(),
                });
            }
        }
        Ok(Some(Fetched {
            bytes,
            digest,
            content_type,
        }))
    }

    /// Whether the manifest `digest` exists in the repository (HEAD).
    pub(crate) async fn manifest_exists(
        &self,
        ctx: &Ctx,
        digest: &Digest,
        accept: &[&str],
    ) -> Result<bool, RegistryError> {
        let url = format!("{}/manifests/{digest}", self.repo_url());
        let response = self
            .send(
                self.request(Method::HEAD, &url)?
                    .header(header::ACCEPT, accept.join(", ")),
                ctx,
            )
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(ctx.status(s.as_u16(), response.url().as_str())),
        }
    }

    /// PUTs a manifest under `reference` (a tag, or its digest). Returns the
    /// `OCI-Subject` header the registry answered with, if any (a registry
    /// with the referrers API names the subject it indexed the manifest
    /// under).
    pub(crate) async fn put_manifest(
        &self,
        ctx: &Ctx,
        reference: &str,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<Option<String>, RegistryError> {
        let digest = sha256(&bytes);
        let url = format!("{}/manifests/{reference}", self.repo_url());
        let response = self
            .send(
                self.request(Method::PUT, &url)?
                    .header(header::CONTENT_TYPE, media_type)
                    .body(bytes),
                ctx,
            )
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(ctx.status(status.as_u16(), response.url().as_str()));
        }
        if let Some(stored) = header_text(&response, "docker-content-digest")
            .filter(|d| d.starts_with("sha256:"))
            .filter(|d| !d.eq_ignore_ascii_case(&digest.to_string()))
        {
            return Err(RegistryError::ManifestDigestMismatch {
                registry: ctx.registry.clone(),
                reference: ctx.reference.clone(),
                expected: digest.to_string(),
                actual: digest_or_placeholder(&stored),
            });
        }
        Ok(header_text(&response, "oci-subject"))
    }

    /// Asks the referrers API for the manifests referring to `subject`:
    /// `None` when the registry does not offer it (404, or 400/405/501 from
    /// registries that do not know the endpoint), else the descriptors of
    /// every page (`Link: <…>; rel="next"` on the registry's own host).
    pub(crate) async fn referrers_api(
        &self,
        ctx: &Ctx,
        subject: &Digest,
    ) -> Result<Option<Vec<Value>>, RegistryError> {
        let mut url = format!("{}/referrers/{subject}", self.repo_url());
        let mut descriptors = Vec::new();
        for page in 0..MAX_REFERRER_PAGES {
            let response = self
                .send(
                    self.request(Method::GET, &url)?
                        .header(header::ACCEPT, OCI_INDEX),
                    ctx,
                )
                .await?;
            let status = response.status();
            if page == 0
                && matches!(
                    status,
                    StatusCode::NOT_FOUND
                        | StatusCode::BAD_REQUEST
                        | StatusCode::METHOD_NOT_ALLOWED
                        | StatusCode::NOT_IMPLEMENTED
                )
            {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(ctx.status(status.as_u16(), response.url().as_str()));
            }
            let next = header_text(&response, "link").and_then(|l| self.next_page(&l));
            let bad = |reason: &str| RegistryError::BadManifest {
                reference: ctx.reference.clone(),
                digest: format!("referrers of {subject}"),
                reason: reason.to_owned(),
            };
            let bytes = Self::read_bounded(response, MAX_MANIFEST_BYTES, ctx, || {
                bad("larger than 4 MiB")
            })
            .await?;
            let index: Value = serde_json::from_slice(&bytes)
                .map_err(|_| bad("the referrers api answered something other than json"))?;
            match index.get("manifests") {
                Some(Value::Array(items)) => descriptors.extend(items.iter().cloned()),
                None | Some(Value::Null) => {}
                Some(_) => return Err(bad("the referrers api answered no image index")),
            }
            match next {
                Some(n) => url = n,
                None => return Ok(Some(descriptors)),
            }
        }
        tracing::warn!(
            subject = %subject,
            "referrers api: more than {MAX_REFERRER_PAGES} pages; reading no further"
        );
        Ok(Some(descriptors))
    }

    /// The `rel="next"` target of a `Link` header, as an absolute URL on
    /// the registry's own scheme and host (credentials go nowhere else).
    fn next_page(&self, link: &str) -> Option<String> {
        let part = link
            .split(',')
            .find(|p| p.contains("rel=\"next\"") || p.contains("rel=next"))?;
        let target = part.split_once('<')?.1.split_once('>')?.0.trim();
        let absolute = if target.starts_with('/') {
            format!("{}{}", self.registry_prefix().trim_end_matches('/'), target)
        } else {
            target.to_owned()
        };
        absolute
            .starts_with(&self.registry_prefix())
            .then_some(absolute)
    }

    /// Whether the repository holds the blob `digest` (HEAD).
    pub(crate) async fn blob_exists(
        &self,
        ctx: &Ctx,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.repo_url());
        let response = self.send(self.request(Method::HEAD, &url)?, ctx).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(ctx.status(s.as_u16(), response.url().as_str())),
        }
    }

    /// Uploads `bytes` as the blob `digest` unless the repository has it.
    pub(crate) async fn ensure_blob(
        &self,
        ctx: &Ctx,
        bytes: &[u8],
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        if self.blob_exists(ctx, digest).await? {
            return Ok(());
        }
        self.client
            .push_blob(self.image.oci(), bytes.to_vec(), &digest.to_string())
            .await
            .map_err(|e| ctx.map(e))?;
        Ok(())
    }

    /// Fetches the blob `digest` of `size` bytes (at most `max`), verifying
    /// size and digest.
    pub(crate) async fn fetch_blob(
        &self,
        ctx: &Ctx,
        digest: &Digest,
        size: u64,
        max: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let name = digest.to_string();
        let mismatch = |reason: String| RegistryError::BlobMismatch {
            registry: ctx.registry.clone(),
            reference: ctx.reference.clone(),
            digest: name.clone(),
            reason,
        };
        if size > max as u64 {
            return Err(mismatch(format!(
                "the descriptor says {size} bytes, more than the {max} accepted"
            )));
        }
        let layer = LayerDescriptor {
            digest: &name,
            urls: &None,
        };
        let mut stream = self
            .client
            .pull_blob_stream(self.image.oci(), &layer)
            .await
            .map_err(|e| ctx.map(e))?;
        if let Some(len) = stream.content_length.filter(|l| *l != size) {
            return Err(mismatch(format!(
                "registry announces {len} bytes, the descriptor says {size}"
            )));
        }
        let mut out: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    // the client's own check fails the stream after the
                    // last chunk: report that as the mismatch it is
                    let so_far = sha256(&out);
                    if out.len() as u64 == size && so_far != *digest {
                        return Err(mismatch(format!("content hashes to {so_far}")));
                    }
                    return Err(ctx.network(format!(
                        "reading blob {name}: {}",
                        describe(&oci_client::errors::OciDistributionError::IoError(e))
                    )));
                }
            };
            if out.len() as u64 + chunk.len() as u64 > size {
                return Err(mismatch(format!(
                    "more than the {size} bytes the descriptor says"
                )));
            }
            out.extend_from_slice(&chunk);
        }
        if out.len() as u64 != size {
            return Err(mismatch(format!(
                "received {} bytes, the descriptor says {size}",
                out.len()
            )));
        }
        let actual = sha256(&out);
        if actual != *digest {
            return Err(mismatch(format!("content hashes to {actual}")));
        }
        Ok(out)
    }
}

/// A response header as text (`None` when absent or not visible ASCII),
/// capped at 1 KiB.
fn header_text(response: &reqwest::Response, name: &str) -> Option<String> {
    let v = response.headers().get(name)?.to_str().ok()?.trim();
    (v.len() <= 1024).then(|| v.to_owned())
}
