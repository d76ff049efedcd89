//! Attaching a DSSE envelope to an image: an OCI 1.1 referrer (plus the
//! referrers tag when the registry has no referrers API) and cosign's
//! `sha256-<hex>.att` tag. See `docs/registry.md` for the layouts.

use oci_client::RegistryOperation;
use serde_json::{json, Map, Value};
use vexxy_model::Digest;

use crate::{
    connect::Session,
    envelope::{self, Envelope, MAX_ENVELOPE_BYTES},
    error::Ctx,
    pull::{ACCEPT, DOCKER_LIST, DOCKER_MANIFEST, MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST},
    reference::ImageRef,
    remote::{sha256, Fetched},
    PullOptions, RegistryError,
};

/// Media type of a DSSE envelope (layers of both layouts; the referrer's
/// `artifactType`).
pub(crate) const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The OCI empty descriptor's media type (the referrer's config).
pub(crate) const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The OCI empty descriptor's content.
pub(crate) const EMPTY_JSON: &[u8] = b"{}";
/// Media type of the image config of cosign's `.att` image.
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The annotation cosign puts on every signature and attestation layer.
pub(crate) const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The annotation naming a layer's (or a referrer's) predicate type.
pub(crate) const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// The annotation cosign puts on the referrers it writes for attestations.
pub(crate) const BUNDLE_PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// When an artifact was made.
pub(crate) const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// How to attach, beyond [`PullOptions`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// The referrer's `org.opencontainers.image.created` annotation (RFC
    /// 3339). When `None`, the predicate's own time is used (OpenVEX
    /// `last_updated`, else `timestamp`), else the annotation is left out:
    /// the same envelope always gives the same referrer digest.
    pub created: Option<String>,
}

/// What [`crate::attach_attestation`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// Digest of the manifest (or index) the reference resolves to: what
    /// the attestation is attached to.
    pub subject: Digest,
    /// Digest of the OCI 1.1 referrer manifest (pushed, or found already
    /// there).
    pub referrer: Digest,
    /// True when the registry indexed the referrer itself (it answered the
    /// push with `OCI-Subject`, or, when nothing was pushed, its referrers
    /// API answers); false when the referrers tag `sha256-<hex>` holds the
    /// index instead.
    pub referrers_api: bool,
    /// cosign's attestation tag, `sha256-<hex>.att`.
    pub cosign_tag: String,
    /// Digest of the manifest now tagged [`Attached::cosign_tag`].
    pub cosign_manifest: Digest,
    /// Digest of the envelope blob.
    pub envelope: Digest,
    /// The same envelope was already attached in both places: nothing was
    /// pushed (no blob, no manifest, no tag).
    pub unchanged: bool,
}

/// The manifest a reference resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subject {
    pub(crate) digest: Digest,
    pub(crate) media_type: String,
    pub(crate) size: u64,
}

/// cosign's attestation tag for `subject`.
pub(crate) fn cosign_tag(subject: &Digest) -> String {
    format!("sha256-{}.att", subject.hex())
}

/// The referrers tag (OCI distribution spec 1.1) for `subject`.
pub(crate) fn referrers_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// `registry/repository`, to name tags and digests of the repository.
pub(crate) fn repository_name(image: &ImageRef) -> String {
    format!("{}/{}", image.registry(), image.repository())
}

/// Resolves the reference (tag, or pinned digest) to the manifest or index
/// it names.
pub(crate) async fn resolve_subject(
    session: &Session,
    ctx: &Ctx,
) -> Result<Subject, RegistryError> {
    let image = &session.image;
    let reference = image
        .digest()
        .or(image.tag())
        .unwrap_or("latest")
        .to_owned();
    let fetched = session
        .get_manifest(ctx, &reference, ACCEPT)
        .await?
        .ok_or_else(|| RegistryError::NotFound {
            registry: ctx.registry.clone(),
            reference: ctx.reference.clone(),
            reason: "manifest unknown (http 404)".into(),
        })?;
    let media_type = manifest_media_type(&fetched, ctx)?;
    Ok(Subject {
        size: fetched.bytes.len() as u64,
        digest: fetched.digest,
        media_type,
    })
}

/// The media type of a manifest or index: its `mediaType` field, else the
/// `Content-Type` it was served with, else what its fields say.
fn manifest_media_type(fetched: &Fetched, ctx: &Ctx) -> Result<String, RegistryError> {
    let bad = |reason: &str| RegistryError::BadManifest {
        reference: ctx.reference.clone(),
        digest: fetched.digest.to_string(),
        reason: reason.to_owned(),
    };
    let value: Value =
        serde_json::from_slice(&fetched.bytes).map_err(|_| bad("not a json manifest"))?;
    if value.get("schemaVersion").and_then(Value::as_i64) != Some(2) {
        return Err(RegistryError::Unsupported {
            reference: ctx.reference.clone(),
            digest: fetched.digest.to_string(),
            reason: "not a schema version 2 manifest or index".into(),
        });
    }
    let known = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];
    if let Some(t) = value.get("mediaType").and_then(Value::as_str) {
        return if known.contains(&t) {
            Ok(t.to_owned())
        } else {
            Err(RegistryError::Unsupported {
                reference: ctx.reference.clone(),
                digest: fetched.digest.to_string(),
                reason: "an unknown manifest media type".into(),
            })
        };
    }
    if let Some(t) = fetched
        .content_type
        .as_deref()
        .filter(|t| known.contains(t))
    {
        return Ok(t.to_owned());
    }
    Ok(if value.get("manifests").is_some() {
        OCI_INDEX
    } else {
        OCI_MANIFEST
    }
    .to_owned())
}

/// The descriptor of the envelope as a layer, in both layouts.
pub(crate) fn layer_descriptor(env: &Envelope) -> Value {
    json!({
        "mediaType": DSSE_MEDIA_TYPE,
        "size": env.size,
        "digest": env.digest.to_string(),
        "annotations": {
            COSIGN_SIGNATURE_ANNOTATION: "",
            PREDICATE_TYPE_ANNOTATION: env.predicate_type,
        },
    })
}

/// The digest of the OCI empty descriptor's content, `{}`.
pub(crate) fn empty_digest() -> Digest {
    sha256(EMPTY_JSON)
}

/// The OCI 1.1 referrer manifest for `env` about `subject`: deterministic
/// (the same inputs give the same bytes).
pub(crate) fn referrer_manifest(subject: &Subject, env: &Envelope, created: Option<&str>) -> Value {
    let mut annotations = Map::new();
    if let Some(created) = created {
        annotations.insert(CREATED_ANNOTATION.into(), created.into());
    }
    annotations.insert(
        BUNDLE_PREDICATE_TYPE_ANNOTATION.into(),
        env.predicate_type.clone().into(),
    );
    annotations.insert(
        PREDICATE_TYPE_ANNOTATION.into(),
        env.predicate_type.clone().into(),
    );
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": DSSE_MEDIA_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": empty_digest().to_string(),
            "size": EMPTY_JSON.len(),
        },
        "layers": [layer_descriptor(env)],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest.to_string(),
            "size": subject.size,
        },
        "annotations": annotations,
    })
}

/// The descriptor a referrers index lists for a referrer manifest.
pub(crate) fn index_entry(manifest: &Value, bytes: &[u8]) -> Value {
    let mut entry = json!({
        "mediaType": OCI_MANIFEST,
        "digest": sha256(bytes).to_string(),
        "size": bytes.len(),
    });
    if let Some(t) = manifest.get("artifactType").filter(|t| t.is_string()) {
        entry["artifactType"] = t.clone();
    }
    if let Some(a) = manifest.get("annotations").filter(|a| a.is_object()) {
        entry["annotations"] = a.clone();
    }
    entry
}

/// The referrers index with `entry` added at the end, or `None` when it
/// already lists `entry`'s digest (nothing to write). Other fields and
/// entries of an existing index are kept as they are.
pub(crate) fn merge_index(existing: Option<Value>, entry: Value) -> Option<Value> {
    let mut index = existing
        .unwrap_or_else(|| json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}));
    let digest = entry.get("digest").cloned();
    let manifests = index
        .as_object_mut()?
        .entry("manifests")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !manifests.is_array() {
        *manifests = Value::Array(Vec::new());
    }
    let list = manifests.as_array_mut()?;
    if list.iter().any(|m| m.get("digest") == digest.as_ref()) {
        return None;
    }
    list.push(entry);
    Some(index)
}

/// The layers of an existing `.att` manifest that may be an older copy of
/// what `env` replaces: DSSE layers other than `env` itself whose
/// `predicateType` annotation is `env`'s or absent. Their statements decide.
pub(crate) fn replace_candidates(layers: &[Value], env: &Envelope) -> Vec<usize> {
    let ours = env.digest.to_string();
    layers
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.get("mediaType").and_then(Value::as_str) == Some(DSSE_MEDIA_TYPE)
                && l.get("digest").and_then(Value::as_str) != Some(ours.as_str())
                && match l
                    .get("annotations")
                    .and_then(|a| a.get(PREDICATE_TYPE_ANNOTATION))
                {
                    None => true,
                    Some(t) => t.as_str() == Some(env.predicate_type.as_str()),
                }
        })
        .map(|(i, _)| i)
        .collect()
}

/// The layers of the new `.att` manifest: `new` first (cosign readers take
/// the first matching attestation), then every existing layer in order
/// except the ones `dropped` names and any other copy of `new`.
pub(crate) fn merge_att_layers(existing: &[Value], new: Value, dropped: &[usize]) -> Vec<Value> {
    let digest = new.get("digest").cloned();
    let mut layers = vec![new];
    layers.extend(
        existing
            .iter()
            .enumerate()
            .filter(|(i, l)| !dropped.contains(i) && l.get("digest") != digest.as_ref())
            .map(|(_, l)| l.clone()),
    );
    layers
}

/// The image config of the `.att` image, shaped like the one cosign
/// writes (through go-containerregistry): `rootfs.diff_ids` are the layer
/// digests (the envelopes are not compressed), one history entry each.
pub(crate) fn att_config(layers: &[Value]) -> Vec<u8> {
    let diff_ids: Vec<Value> = layers
        .iter()
        .map(|l| l.get("digest").cloned().unwrap_or(Value::Null))
        .collect();
    let history: Vec<Value> = layers
        .iter()
        .map(|_| json!({"created": "0001-01-01T00:00:00Z"}))
        .collect();
    json!({
        "architecture": "",
        "history": history,
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    })
    .to_string()
    .into_bytes()
}

/// The `.att` image manifest.
pub(crate) fn att_manifest(config: &[u8], layers: Vec<Value>, annotations: Option<Value>) -> Value {
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "size": config.len(),
            "digest": sha256(config).to_string(),
        },
        "layers": layers,
    });
    if let Some(a) = annotations.filter(Value::is_object) {
        manifest["annotations"] = a;
    }
    manifest
}

/// Serializes a manifest or index we push, within the 4 MiB registries take.
fn to_bytes(value: &Value, ctx: &Ctx, what: &str) -> Result<Vec<u8>, RegistryError> {
    let bytes = value.to_string().into_bytes();
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(RegistryError::Unsupported {
            reference: ctx.reference.clone(),
            digest: sha256(&bytes).to_string(),
            reason: format!("the new {what} would be larger than 4 MiB"),
        });
    }
    Ok(bytes)
}

/// Parses a manifest read back as JSON, or says what it is not.
pub(crate) fn json_of(fetched: &Fetched, ctx: &Ctx) -> Result<Value, RegistryError> {
    serde_json::from_slice(&fetched.bytes).map_err(|_| RegistryError::BadManifest {
        reference: ctx.reference.clone(),
        digest: fetched.digest.to_string(),
        reason: "not json".into(),
    })
}

/// The index an existing referrers tag holds.
pub(crate) fn referrers_index(fetched: &Fetched, ctx: &Ctx) -> Result<Value, RegistryError> {
    let value = json_of(fetched, ctx)?;
    let is_index = value.is_object()
        && value.get("config").is_none()
        && match value.get("mediaType").and_then(Value::as_str) {
            Some(t) => t == OCI_INDEX,
            None => true,
        };
    if is_index {
        Ok(value)
    } else {
        Err(RegistryError::Unsupported {
            reference: ctx.reference.clone(),
            digest: fetched.digest.to_string(),
            reason: "the referrers tag holds something other than an image index".into(),
        })
    }
}

/// The layers and annotations of an existing `.att` image manifest.
pub(crate) fn att_parts(
    fetched: &Fetched,
    ctx: &Ctx,
) -> Result<(Vec<Value>, Option<Value>), RegistryError> {
    let value = json_of(fetched, ctx)?;
    let is_manifest = matches!(
        value.get("mediaType").and_then(Value::as_str),
        None | Some(OCI_MANIFEST | DOCKER_MANIFEST)
    ) && value.get("config").is_some();
    let layers = value.get("layers").and_then(Value::as_array);
    match layers {
        Some(layers) if is_manifest => Ok((layers.clone(), value.get("annotations").cloned())),
        _ => Err(RegistryError::Unsupported {
            reference: ctx.reference.clone(),
            digest: fetched.digest.to_string(),
            reason: "the attestation tag holds something other than an image manifest".into(),
        }),
    }
}

/// A layer descriptor's digest and size, when well-formed.
pub(crate) fn digest_and_size(layer: &Value) -> Option<(Digest, u64)> {
    let digest = layer.get("digest")?.as_str()?.parse().ok()?;
    let size = layer.get("size")?.as_u64()?;
    Some((digest, size))
}

pub(crate) async fn attach(
    reference: &str,
    envelope_bytes: &[u8],
    opts: &PullOptions,
    attach: &AttachOptions,
) -> Result<Attached, RegistryError> {
    let image = ImageRef::parse(reference)?;
    let env = envelope::parse(envelope_bytes).map_err(|reason| RegistryError::BadEnvelope {
        reference: image.given.clone(),
        reason,
    })?;
    let created = match &attach.created {
        Some(c) if envelope::is_rfc3339(c) => Some(c.clone()),
        Some(_) => {
            return Err(RegistryError::BadAttachOption {
                reference: image.given.clone(),
                reason: "created is not an rfc 3339 date-time".into(),
            })
        }
        None => env.created.clone(),
    };
    let repo = repository_name(&image);
    let mut session = Session::open(image, opts, true).await?;
    session.authenticate(RegistryOperation::Push).await?;
    let ctx = session.ctx.clone();
    let subject = resolve_subject(&session, &ctx).await?;
    if !env.is_about(&subject.digest) {
        return Err(RegistryError::SubjectMismatch {
            reference: ctx.reference.clone(),
            subject: subject.digest.to_string(),
            statement: env.subjects_text(),
        });
    }
    let mut pushed = false;

    // 1. the referrer, and the referrers tag unless the registry indexes it
    let referrer = referrer_manifest(&subject, &env, created.as_deref());
    let referrer_bytes = to_bytes(&referrer, &ctx, "referrer manifest")?;
    let referrer_digest = sha256(&referrer_bytes);
    let rctx = ctx.about(format!("{repo}@{referrer_digest}"));
    let referrers_api = if session
        .manifest_exists(&rctx, &referrer_digest, &[OCI_MANIFEST])
        .await?
    {
        session
            .referrers_api(&ctx, &subject.digest)
            .await?
            .is_some()
    } else {
        session
            .ensure_blob(&rctx, EMPTY_JSON, &empty_digest())
            .await?;
        session
            .ensure_blob(&rctx, envelope_bytes, &env.digest)
            .await?;
        let answered = session
            .put_manifest(
                &rctx,
                &referrer_digest.to_string(),
                referrer_bytes.clone(),
                OCI_MANIFEST,
            )
            .await?;
        pushed = true;
        answered.is_some_and(|s| s.eq_ignore_ascii_case(&subject.digest.to_string()))
    };
    if !referrers_api {
        let tag = referrers_tag(&subject.digest);
        let tctx = ctx.about(format!("{repo}:{tag}"));
        let existing = match session.get_manifest(&tctx, &tag, ACCEPT).await? {
            Some(f) => Some(referrers_index(&f, &tctx)?),
            None => None,
        };
        if let Some(index) = merge_index(existing, index_entry(&referrer, &referrer_bytes)) {
            let bytes = to_bytes(&index, &tctx, "referrers index")?;
            session.put_manifest(&tctx, &tag, bytes, OCI_INDEX).await?;
            pushed = true;
        }
    }

    // 2. cosign's .att tag: the new envelope first, older ones it replaces gone
    let tag = cosign_tag(&subject.digest);
    let actx = ctx.about(format!("{repo}:{tag}"));
    let (old_layers, annotations, old_digest) =
        match session.get_manifest(&actx, &tag, ACCEPT).await? {
            Some(f) => {
                let (layers, annotations) = att_parts(&f, &actx)?;
                (layers, annotations, Some(f.digest))
            }
            None => (Vec::new(), None, None),
        };
    let mut dropped = Vec::new();
    for i in replace_candidates(&old_layers, &env) {
        let Some((digest, size)) = digest_and_size(&old_layers[i]) else {
            continue;
        };
        if size > MAX_ENVELOPE_BYTES as u64 {
            continue;
        }
        // a layer that cannot be read is kept, never a reason to fail
        let Ok(blob) = session
            .fetch_blob(&actx, &digest, size, MAX_ENVELOPE_BYTES)
            .await
        else {
            continue;
        };
        // not ours to replace unless it is the same kind of statement about
        // the same image by the same signer (another party's OpenVEX stays)
        if envelope::parse(&blob).is_ok_and(|other| {
            other.predicate_type == env.predicate_type
                && other.is_about(&subject.digest)
                && other.same_signer(&env)
        }) {
            dropped.push(i);
        }
    }
    let layers = merge_att_layers(&old_layers, layer_descriptor(&env), &dropped);
    let cosign_manifest = match old_digest {
        Some(d) if layers == old_layers => d,
        _ => {
            session
                .ensure_blob(&actx, envelope_bytes, &env.digest)
                .await?;
            let config = att_config(&layers);
            session
                .ensure_blob(&actx, &config, &sha256(&config))
                .await?;
            let manifest = to_bytes(
                &att_manifest(&config, layers, annotations),
                &actx,
                "attestation manifest",
            )?;
            let digest = sha256(&manifest);
            session
                .put_manifest(&actx, &tag, manifest, OCI_MANIFEST)
                .await?;
            pushed = true;
            digest
        }
    };
    Ok(Attached {
        subject: subject.digest,
        referrer: referrer_digest,
        referrers_api,
        cosign_tag: tag,
        cosign_manifest,
        envelope: env.digest,
        unchanged: !pushed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::from_sha256_bytes(&[n; 32])
    }

    fn env(n: u8, predicate_type: &str) -> Envelope {
        Envelope {
            keyids: vec!["k".into()],
            digest: digest(n),
            size: 100 + u64::from(n),
            predicate_type: predicate_type.into(),
            subjects: vec![digest(0).hex().to_owned()],
            created: None,
        }
    }

    fn subject() -> Subject {
        Subject {
            digest: digest(0),
            media_type: OCI_INDEX.into(),
            size: 321,
        }
    }

    const VEX: &str = "https://openvex.dev/ns";
    const SLSA: &str = "https://slsa.dev/provenance/v1";

    #[test]
    fn referrer_manifest_is_deterministic_and_spec_shaped() {
        let e = env(1, VEX);
        let a = referrer_manifest(&subject(), &e, Some("2024-06-01T10:00:00Z"));
        let b = referrer_manifest(&subject(), &e, Some("2024-06-01T10:00:00Z"));
        assert_eq!(a.to_string(), b.to_string());
        assert_eq!(a["artifactType"], DSSE_MEDIA_TYPE);
        assert_eq!(a["config"]["mediaType"], EMPTY_MEDIA_TYPE);
        assert_eq!(
            a["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(a["config"]["size"], 2);
        assert_eq!(a["subject"]["mediaType"], OCI_INDEX);
        assert_eq!(a["subject"]["digest"], digest(0).to_string());
        assert_eq!(a["subject"]["size"], 321);
        assert_eq!(a["layers"][0]["digest"], e.digest.to_string());
        assert_eq!(
            a["layers"][0]["annotations"][PREDICATE_TYPE_ANNOTATION],
            VEX
        );
        assert_eq!(a["annotations"][CREATED_ANNOTATION], "2024-06-01T10:00:00Z");
        assert_eq!(a["annotations"][BUNDLE_PREDICATE_TYPE_ANNOTATION], VEX);
        let c = referrer_manifest(&subject(), &e, None);
        assert!(c["annotations"].get(CREATED_ANNOTATION).is_none());
        assert_ne!(a.to_string(), c.to_string());
    }

    #[test]
    fn index_merge_appends_once_and_keeps_the_rest() {
        let m1 = referrer_manifest(&subject(), &env(1, VEX), None);
        let b1 = m1.to_string().into_bytes();
        let e1 = index_entry(&m1, &b1);
        assert_eq!(e1["artifactType"], DSSE_MEDIA_TYPE);
        assert_eq!(e1["size"], b1.len());
        assert_eq!(e1["annotations"][PREDICATE_TYPE_ANNOTATION], VEX);

        let first = merge_index(None, e1.clone()).expect("new index");
        assert_eq!(first["mediaType"], OCI_INDEX);
        assert_eq!(first["schemaVersion"], 2);
        assert_eq!(first["manifests"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            merge_index(Some(first.clone()), e1.clone()),
            None,
            "no duplicate"
        );

        // someone else's entry and the index's own fields survive
        let mut theirs = first.clone();
        theirs["annotations"] = json!({"x": "y"});
        theirs["manifests"]
            .as_array_mut()
            .expect("array")
            .insert(0, json!({"mediaType": OCI_MANIFEST, "digest": digest(9).to_string(), "size": 5, "artifactType": "application/spdx+json"}));
        let m2 = referrer_manifest(&subject(), &env(2, VEX), None);
        let b2 = m2.to_string().into_bytes();
        let merged = merge_index(Some(theirs), index_entry(&m2, &b2)).expect("added");
        let digests: Vec<&str> = merged["manifests"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|m| m["digest"].as_str())
            .collect();
        let d2 = sha256(&b2).to_string();
        let d1 = sha256(&b1).to_string();
        assert_eq!(digests, vec![digest(9).to_string().as_str(), &d1, &d2]);
        assert_eq!(merged["annotations"]["x"], "y");
        // a malformed manifests field is replaced, not fatal
        let odd = json!({"schemaVersion": 2, "manifests": "?"});
        assert!(merge_index(Some(odd), e1).is_some());
    }

    #[test]
    fn att_merge_puts_the_new_envelope_first_and_keeps_foreign_layers() {
        let new = env(3, VEX);
        let old_same = layer_descriptor(&env(1, VEX));
        let foreign = layer_descriptor(&env(2, SLSA));
        let mut unannotated = layer_descriptor(&env(4, VEX));
        unannotated
            .as_object_mut()
            .expect("object")
            .remove("annotations");
        let not_dsse = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(5).to_string(), "size": 1});
        let existing = vec![
            foreign.clone(),
            old_same.clone(),
            unannotated.clone(),
            not_dsse.clone(),
            layer_descriptor(&new),
        ];
        // only same-type (or unannotated) dsse layers other than ours are inspected
        assert_eq!(replace_candidates(&existing, &new), vec![1, 2]);

        // the older one turned out to be about this image; the unannotated one not
        let merged = merge_att_layers(&existing, layer_descriptor(&new), &[1]);
        let digests: Vec<&Value> = merged.iter().map(|l| &l["digest"]).collect();
        assert_eq!(
            digests,
            vec![
                &json!(new.digest.to_string()),
                &foreign["digest"],
                &unannotated["digest"],
                &not_dsse["digest"],
            ]
        );
        // the same envelope again on top of itself: nothing changes
        let once = merge_att_layers(&[], layer_descriptor(&new), &[]);
        assert_eq!(merge_att_layers(&once, layer_descriptor(&new), &[]), once);
        assert!(replace_candidates(&once, &new).is_empty());
    }

    #[test]
    fn att_config_and_manifest_look_like_cosigns() {
        let layers = vec![
            layer_descriptor(&env(1, VEX)),
            layer_descriptor(&env(2, SLSA)),
        ];
        let config = att_config(&layers);
        let c: Value = serde_json::from_slice(&config).expect("json");
        assert_eq!(c["rootfs"]["type"], "layers");
        assert_eq!(
            c["rootfs"]["diff_ids"],
            json!([digest(1).to_string(), digest(2).to_string()])
        );
        assert_eq!(c["history"].as_array().map(Vec::len), Some(2));
        let m = att_manifest(&config, layers.clone(), Some(json!({"a": "b"})));
        assert_eq!(m["mediaType"], OCI_MANIFEST);
        assert_eq!(m["config"]["mediaType"], OCI_CONFIG);
        assert_eq!(m["config"]["digest"], sha256(&config).to_string());
        assert_eq!(m["config"]["size"], config.len());
        assert_eq!(m["layers"], Value::Array(layers));
        assert_eq!(m["annotations"]["a"], "b");
        assert_eq!(
            m["layers"][0]["annotations"][COSIGN_SIGNATURE_ANNOTATION],
            ""
        );
    }

    #[test]
    fn tags_follow_cosign_and_the_referrers_tag_schema() {
        let d = digest(0xab);
        assert_eq!(cosign_tag(&d), format!("sha256-{}.att", "ab".repeat(32)));
        assert_eq!(referrers_tag(&d), format!("sha256-{}", "ab".repeat(32)));
    }
}
