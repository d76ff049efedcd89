//! Finding the attestations attached to an image: the layers of cosign's
//! `sha256-<hex>.att` tag, and the OCI 1.1 referrers (the referrers API
//! when the registry answers it, else the referrers tag).

use oci_client::RegistryOperation;
use serde_json::Value;
use vexxy_model::Digest;

use crate::{
    attach::{
        att_parts, cosign_tag, digest_and_size, json_of, referrers_index, referrers_tag,
        repository_name, resolve_subject, BUNDLE_PREDICATE_TYPE_ANNOTATION, CREATED_ANNOTATION,
        DSSE_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION,
    },
    connect::Session,
    envelope::{IN_TOTO_PAYLOAD_TYPE, MAX_ENVELOPE_BYTES},
    error::Ctx,
    pull::{ACCEPT, OCI_MANIFEST},
    reference::ImageRef,
    PullOptions, RegistryError,
};

/// Most attestations one listing returns.
const MAX_FOUND: usize = 1024;
/// Most envelope bytes one listing holds (256 MiB).
const MAX_FOUND_BYTES: usize = 256 << 20;

/// Where an attestation was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestationLocation {
    /// A layer of an OCI 1.1 referrer manifest whose `subject` is the image.
    Referrer {
        /// Digest of the referrer manifest.
        manifest: Digest,
    },
    /// A layer of the image cosign tags `sha256-<hex>.att`.
    CosignTag {
        /// The tag.
        tag: String,
        /// The layer's position in the manifest (0 is what cosign readers
        /// such as Trivy's `--vex oci` take first).
        layer: usize,
    },
}

/// An attestation attached to an image, as stored: nothing about it is
/// trusted (the caller verifies the envelope's signature).
#[derive(Clone, PartialEq, Eq)]
pub struct FoundAttestation {
    /// Digest of the manifest (or index) the reference resolves to.
    pub subject: Digest,
    /// Where it is.
    pub location: AttestationLocation,
    /// Digest of the envelope blob (verified against `envelope`).
    pub digest: Digest,
    /// The `predicateType` annotation of the layer (or, for a referrer, of
    /// the manifest), when present: unverified, the statement says for sure.
    pub predicate_type: Option<String>,
    /// The manifest's `org.opencontainers.image.created` annotation, when
    /// present.
    pub created: Option<String>,
    /// The envelope bytes (at most 16 MiB), as the registry served them
    /// and matching `digest`.
    pub envelope: Vec<u8>,
}

impl std::fmt::Debug for FoundAttestation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoundAttestation")
            .field("subject", &self.subject)
            .field("location", &self.location)
            .field("digest", &self.digest)
            .field("predicate_type", &self.predicate_type)
            .field("created", &self.created)
            .field("envelope", &format_args!("<{} bytes>", self.envelope.len()))
            .finish()
    }
}

/// A string annotation of a manifest or descriptor.
fn annotation(v: &Value, key: &str) -> Option<String> {
    v.get("annotations")?.get(key)?.as_str().map(str::to_owned)
}

/// Collects what a listing found, within its bounds.
struct Found<'a> {
    list: Vec<FoundAttestation>,
    bytes: usize,
    subject: &'a Digest,
    ctx: &'a Ctx,
}

impl Found<'_> {
    fn room_for(&self, size: u64) -> Result<(), RegistryError> {
        if self.list.len() >= MAX_FOUND || self.bytes as u64 + size > MAX_FOUND_BYTES as u64 {
            return Err(RegistryError::Unsupported {
                reference: self.ctx.reference.clone(),
                digest: self.subject.to_string(),
                reason: format!(
                    "more than {MAX_FOUND} attestations or {MAX_FOUND_BYTES} bytes of them"
                ),
            });
        }
        Ok(())
    }

    fn push(&mut self, found: FoundAttestation) {
        self.bytes += found.envelope.len();
        self.list.push(found);
    }
}

/// The DSSE layers of a manifest worth fetching: `(position, digest, size)`.
fn dsse_layers(layers: &[Value], ctx: &Ctx) -> Vec<(usize, Digest, u64)> {
    layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.get("mediaType").and_then(Value::as_str) == Some(DSSE_MEDIA_TYPE))
        .filter_map(|(i, l)| match digest_and_size(l) {
            Some((d, s)) if s <= MAX_ENVELOPE_BYTES as u64 => Some((i, d, s)),
            _ => {
                tracing::warn!(
                    reference = %ctx.reference,
                    layer = i,
                    "attestation layer skipped: malformed descriptor or larger than 16 MiB"
                );
                None
            }
        })
        .collect()
}

/// Whether a referrers index entry may hold a DSSE envelope.
fn is_attestation_entry(entry: &Value) -> bool {
    matches!(
        entry.get("artifactType").and_then(Value::as_str),
        Some(DSSE_MEDIA_TYPE | IN_TOTO_PAYLOAD_TYPE)
    )
}

pub(crate) async fn list(
    reference: &str,
    opts: &PullOptions,
) -> Result<Vec<FoundAttestation>, RegistryError> {
    let image = ImageRef::parse(reference)?;
    let repo = repository_name(&image);
    let mut session = Session::open(image, opts, true).await?;
    session.authenticate(RegistryOperation::Pull).await?;
    let ctx = session.ctx.clone();
    let subject = resolve_subject(&session, &ctx).await?.digest;
    let mut found = Found {
        list: Vec::new(),
        bytes: 0,
        subject: &subject,
        ctx: &ctx,
    };

    // cosign's .att tag: current attestations, in the order readers see them
    let tag = cosign_tag(&subject);
    let actx = ctx.about(format!("{repo}:{tag}"));
    if let Some(fetched) = session.get_manifest(&actx, &tag, ACCEPT).await? {
        let (layers, _) = att_parts(&fetched, &actx)?;
        let manifest = json_of(&fetched, &actx)?;
        let created = annotation(&manifest, CREATED_ANNOTATION);
        for (i, digest, size) in dsse_layers(&layers, &actx) {
            found.room_for(size)?;
            let envelope = session
                .fetch_blob(&actx, &digest, size, MAX_ENVELOPE_BYTES)
                .await?;
            found.push(FoundAttestation {
                subject: subject.clone(),
                location: AttestationLocation::CosignTag {
                    tag: tag.clone(),
                    layer: i,
                },
                digest,
                predicate_type: annotation(&layers[i], PREDICATE_TYPE_ANNOTATION),
                created: created.clone(),
                envelope,
            });
        }
    }

    // OCI 1.1 referrers: every attestation attached, in index order
    let entries = match session.referrers_api(&ctx, &subject).await? {
        Some(entries) => entries,
        None => {
            let rtag = referrers_tag(&subject);
            let tctx = ctx.about(format!("{repo}:{rtag}"));
            match session.get_manifest(&tctx, &rtag, ACCEPT).await? {
                Some(f) => referrers_index(&f, &tctx)?
                    .get("manifests")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                None => Vec::new(),
            }
        }
    };
    let mut seen: Vec<Digest> = Vec::new();
    for entry in entries.iter().filter(|e| is_attestation_entry(e)) {
        let Some(manifest_digest) = entry
            .get("digest")
            .and_then(Value::as_str)
            .and_then(|d| d.parse::<Digest>().ok())
        else {
            continue;
        };
        if seen.contains(&manifest_digest) {
            continue;
        }
        seen.push(manifest_digest.clone());
        let mctx = ctx.about(format!("{repo}@{manifest_digest}"));
        let Some(fetched) = session
            .get_manifest(&mctx, &manifest_digest.to_string(), &[OCI_MANIFEST])
            .await?
        else {
            tracing::warn!(
                referrer = %manifest_digest,
                "a referrer the index lists is gone from the registry; skipped"
            );
            continue;
        };
        let manifest = json_of(&fetched, &mctx)?;
        let about = manifest
            .get("subject")
            .and_then(|s| s.get("digest"))
            .and_then(Value::as_str);
        if about != Some(subject.to_string().as_str()) {
            tracing::warn!(
                referrer = %manifest_digest,
                "a referrer whose subject is not the image; skipped"
            );
            continue;
        }
        let layers = manifest
            .get("layers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let created = annotation(&manifest, CREATED_ANNOTATION);
        let manifest_type = annotation(&manifest, BUNDLE_PREDICATE_TYPE_ANNOTATION)
            .or_else(|| annotation(&manifest, PREDICATE_TYPE_ANNOTATION));
        for (i, digest, size) in dsse_layers(&layers, &mctx) {
            found.room_for(size)?;
            let envelope = session
                .fetch_blob(&mctx, &digest, size, MAX_ENVELOPE_BYTES)
                .await?;
            found.push(FoundAttestation {
                subject: subject.clone(),
                location: AttestationLocation::Referrer {
                    manifest: manifest_digest.clone(),
                },
                digest,
                predicate_type: annotation(&layers[i], PREDICATE_TYPE_ANNOTATION)
                    .or_else(|| manifest_type.clone()),
                created: created.clone(),
                envelope,
            });
        }
    }
    Ok(found.list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_dsse_layers_and_attestation_referrers() {
        let ctx = Ctx {
            registry: "r".into(),
            reference: "r/a:1".into(),
            egress: None,
        };
        let d = |n: u8| Digest::from_sha256_bytes(&[n; 32]).to_string();
        let layers = vec![
            json!({"mediaType": DSSE_MEDIA_TYPE, "digest": d(1), "size": 10}),
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d(2), "size": 10}),
            json!({"mediaType": DSSE_MEDIA_TYPE, "digest": "md5:00", "size": 10}),
            json!({"mediaType": DSSE_MEDIA_TYPE, "digest": d(3), "size": (MAX_ENVELOPE_BYTES as u64) + 1}),
            json!({"mediaType": DSSE_MEDIA_TYPE, "digest": d(4), "size": 7}),
        ];
        let picked: Vec<(usize, String, u64)> = dsse_layers(&layers, &ctx)
            .into_iter()
            .map(|(i, d, s)| (i, d.to_string(), s))
            .collect();
        assert_eq!(picked, vec![(0, d(1), 10), (4, d(4), 7)]);

        assert!(is_attestation_entry(
            &json!({"artifactType": DSSE_MEDIA_TYPE})
        ));
        assert!(is_attestation_entry(
            &json!({"artifactType": IN_TOTO_PAYLOAD_TYPE})
        ));
        assert!(!is_attestation_entry(
            &json!({"artifactType": "application/spdx+json"})
        ));
        assert!(!is_attestation_entry(&json!({"mediaType": OCI_MANIFEST})));
    }

    #[test]
    fn debug_does_not_dump_the_envelope() {
        let f = FoundAttestation {
            subject: Digest::from_sha256_bytes(&[0; 32]),
            location: AttestationLocation::CosignTag {
                tag: "t".into(),
                layer: 0,
            },
            digest: Digest::from_sha256_bytes(&[1; 32]),
            predicate_type: None,
            created: None,
            envelope: b"SECRETPAYLOAD".to_vec(),
        };
        let s = format!("{f:?}");
        assert!(
            s.contains("<13 bytes>") && !s.contains("SECRETPAYLOAD"),
            "{s}"
        );
    }
}
