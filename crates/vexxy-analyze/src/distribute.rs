//! VEX that travels with the image: signing an OpenVEX document as an
//! in-toto attestation about the image, attaching it in the image's
//! registry (cosign's `.att` tag, which Trivy's `--vex oci` reads, and an
//! OCI 1.1 referrer, which keeps the history), and finding attached ones
//! again, verified.
//!
//! The policy of what is used lives here, once, for the CLI and the
//! service: an attestation is used only when its signature verifies with
//! the caller's key, its statement is OpenVEX about the very digest it is
//! attached to, and its predicate reads as a VEX document; among those
//! the newest document wins. Everything else is reported, never used.

use std::collections::BTreeSet;

use vexxy_model::Digest;
use vexxy_registry::{FoundAttestation, PullOptions};

use crate::{AnalyzeError, ResultExt as _};

// what callers pass and get back, so they need no other crate
pub use vexxy_registry::PullOptions as RegistryOptions;
pub use vexxy_registry::{Attached, AttestationLocation, Credentials, ImageRef};

/// What to sign: an OpenVEX document about one image.
#[derive(Debug)]
pub struct SignRequest<'a> {
    /// The OpenVEX document's bytes (JSON).
    pub document: &'a [u8],
    /// The image's repository, the statement subject's name.
    pub subject_name: &'a str,
    /// The image's manifest digest; default: the document's single image
    /// product digest.
    pub subject_digest: Option<&'a Digest>,
    /// The signing key.
    pub key: &'a vexxy_attest::SigningKey,
}

/// A signed attestation: the DSSE envelope and the digest it is about.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The envelope, JSON.
    pub envelope: Vec<u8>,
    /// The digest the statement is about.
    pub subject: Digest,
}

/// Signs an OpenVEX document as an in-toto attestation (what `cosign
/// attest --type openvex` makes).
pub fn sign_vex(request: &SignRequest<'_>) -> Result<Signed, AnalyzeError> {
    let doc = vexxy_vex::read_vex(request.document, std::path::Path::new("the VEX document"))?;
    let predicate: serde_json::Value = serde_json::from_slice(request.document)
        .map_err(|e| AnalyzeError::bad_input(format!("the VEX document: {e}")))?;
    if !is_openvex_document(&predicate) {
        return Err(AnalyzeError::bad_input(
            "only OpenVEX documents are attested with the OpenVEX predicate type, which scanners read as such; \
             write OpenVEX (vexxy vex --format openvex)",
        ));
    }
    let subject = match request.subject_digest {
        Some(d) => d.clone(),
        None => single_product_digest(&doc)?,
    };
    let envelope = vexxy_attest::attest(
        request.subject_name,
        &subject.to_string(),
        vexxy_attest::OPENVEX_PREDICATE_TYPE,
        &predicate,
        request.key,
    )?;
    let envelope = serde_json::to_vec_pretty(&envelope)
        .map_err(|e| AnalyzeError::internal(format!("serialising the envelope: {e}")))?;
    Ok(Signed { envelope, subject })
}

/// The one image digest a document's products name.
fn single_product_digest(doc: &vexxy_model::VexDocument) -> Result<Digest, AnalyzeError> {
    let digests: BTreeSet<&Digest> = doc
        .statements
        .iter()
        .filter_map(|s| s.product.digest.as_ref())
        .collect();
    let mut it = digests.into_iter();
    match (it.next(), it.next()) {
        (Some(d), None) => Ok(d.clone()),
        (None, _) => Err(AnalyzeError::bad_input(
            "the VEX document names no image digest: give the subject (NAME@sha256:DIGEST)",
        )),
        (Some(a), Some(b)) => Err(AnalyzeError::bad_input(format!(
            "the VEX document is about more than one image ({a}, {b}, …): give the subject (NAME@sha256:DIGEST)"
        ))),
    }
}

/// Attaches a signed attestation to `image` (a registry reference; pass
/// `repository@digest` to attach to exactly the attested digest).
pub fn attach(
    image: &str,
    envelope: &[u8],
    opts: &PullOptions,
) -> Result<vexxy_registry::Attached, AnalyzeError> {
    vexxy_registry::attach_attestation_blocking(image, envelope, opts)
        .doing_with(|| format!("attaching the attestation to {image}"))
}

/// Why an attached attestation is not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its signature does not verify with the key (or it is no envelope).
    Signature(String),
    /// It is not an OpenVEX attestation (another predicate type); not an
    /// error, just not VEX.
    NotVex(String),
    /// Its statement is about another digest than the image it is attached to.
    OtherSubject,
    /// Its predicate is not a VEX document we can read.
    BadDocument(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Signature(why) => write!(f, "signature does not verify: {why}"),
            Self::NotVex(t) => write!(f, "not OpenVEX (predicate type {t})"),
            Self::OtherSubject => f.write_str("its statement is about another image digest"),
            Self::BadDocument(why) => write!(f, "its VEX document does not read: {why}"),
        }
    }
}

/// One attestation found attached to the image, and what became of it.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Where it was found.
    pub location: AttestationLocation,
    /// The envelope's digest.
    pub digest: Digest,
    /// The digest it is attached to.
    pub subject: Digest,
    /// The document's timestamp, when it verified.
    pub timestamp: Option<time::OffsetDateTime>,
    /// `None` when it verified and reads as VEX; else why not.
    pub refused: Option<Refusal>,
    /// The verified OpenVEX document (the statement's predicate).
    pub document: Option<serde_json::Value>,
}

/// What [`fetch_vex`] found.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    /// Every attestation found, deduplicated by envelope digest (the same
    /// envelope is usually both in the `.att` tag and a referrer).
    pub candidates: Vec<Candidate>,
    /// The index in `candidates` of the document to use: the newest that
    /// verified.
    pub chosen: Option<usize>,
}

impl Discovery {
    /// The chosen document.
    pub fn document(&self) -> Option<&serde_json::Value> {
        self.chosen
            .and_then(|i| self.candidates.get(i))
            .and_then(|c| c.document.as_ref())
    }

    /// Attestations refused for their signature, subject or document
    /// (other predicate types are not counted).
    pub fn refused(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates.iter().filter(|c| {
            c.refused
                .as_ref()
                .is_some_and(|r| !matches!(r, Refusal::NotVex(_)))
        })
    }
}

/// Lists the attestations attached to `image` and verifies each with `key`.
pub fn fetch_vex(
    image: &str,
    key: &vexxy_attest::VerifyingKey,
    opts: &PullOptions,
) -> Result<Discovery, AnalyzeError> {
    let found = vexxy_registry::list_attestations_blocking(image, opts)
        .doing_with(|| format!("listing the attestations of {image}"))?;
    Ok(judge(found, key))
}

/// The verification policy over what was found (no I/O).
pub fn judge(found: Vec<FoundAttestation>, key: &vexxy_attest::VerifyingKey) -> Discovery {
    let mut seen = BTreeSet::new();
    let mut out = Discovery::default();
    for f in found {
        if !seen.insert(f.digest.clone()) {
            continue;
        }
        let mut c = Candidate {
            location: f.location.clone(),
            digest: f.digest.clone(),
            subject: f.subject.clone(),
            timestamp: None,
            refused: None,
            document: None,
        };
        match check(&f, key) {
            Ok((timestamp, document)) => {
                c.timestamp = Some(timestamp);
                c.document = Some(document);
            }
            Err(r) => c.refused = Some(r),
        }
        out.candidates.push(c);
    }
    out.chosen = out
        .candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.refused.is_none())
        // newest document; on a tie the first listed (the `.att` order)
        .max_by(|(ia, a), (ib, b)| a.timestamp.cmp(&b.timestamp).then(ib.cmp(ia)))
        .map(|(i, _)| i);
    out
}

fn check(
    f: &FoundAttestation,
    key: &vexxy_attest::VerifyingKey,
) -> Result<(time::OffsetDateTime, serde_json::Value), Refusal> {
    // other attestations (provenance, SBOMs) by other signers are not ours
    // to judge: sorted out by their claimed type before any signature
    if let Some(claimed) = claimed_predicate_type(&f.envelope) {
        if !is_openvex(&claimed) {
            return Err(Refusal::NotVex(claimed));
        }
    }
    let statement =
        vexxy_attest::verify(&f.envelope, key).map_err(|e| Refusal::Signature(e.to_string()))?;
    if !is_openvex(&statement.predicate_type) {
        return Err(Refusal::NotVex(statement.predicate_type.clone()));
    }
    let about_subject = statement.subject.iter().any(|s| {
        s.digest
            .get("sha256")
            .is_some_and(|hex| hex.eq_ignore_ascii_case(f.subject.hex()))
    });
    if !about_subject {
        return Err(Refusal::OtherSubject);
    }
    if !is_openvex_document(&statement.predicate) {
        return Err(Refusal::BadDocument(
            "the predicate is not an OpenVEX document".to_owned(),
        ));
    }
    let bytes = serde_json::to_vec(&statement.predicate)
        .map_err(|e| Refusal::BadDocument(e.to_string()))?;
    let doc = vexxy_vex::read_vex(&bytes, std::path::Path::new("the attested document"))
        .map_err(|e| Refusal::BadDocument(e.to_string()))?;
    Ok((doc.timestamp, statement.predicate))
}

/// The predicate type an envelope's payload claims, read without
/// verifying anything (for sorting only, never for trust).
fn claimed_predicate_type(envelope: &[u8]) -> Option<String> {
    let envelope = vexxy_attest::Envelope::from_json(envelope).ok()?;
    let statement: serde_json::Value = serde_json::from_slice(&envelope.payload).ok()?;
    statement
        .get("predicateType")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

/// Whether a JSON document is OpenVEX (its `@context`), not CycloneDX or
/// CSAF, which the VEX reader also accepts.
fn is_openvex_document(doc: &serde_json::Value) -> bool {
    doc.get("@context")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|c| c.starts_with("https://openvex.dev/ns"))
}

/// The predicate types OpenVEX attestations carry: cosign's `openvex`
/// type, and the versioned context some tools write.
fn is_openvex(predicate_type: &str) -> bool {
    predicate_type == vexxy_attest::OPENVEX_PREDICATE_TYPE
        || predicate_type.starts_with("https://openvex.dev/ns/")
}

/// The repository an image reference names (`registry/path`), the name
/// an attestation's statement gives its subject.
pub fn repository_of(image: &str) -> Result<String, AnalyzeError> {
    let parsed =
        vexxy_registry::ImageRef::parse(image).doing_with(|| format!("reading {image}"))?;
    Ok(format!("{}/{}", parsed.registry(), parsed.repository()))
}

/// The image's manifest digest as a `repository@digest` reference, so an
/// attestation is attached to exactly the attested digest even when the
/// tag has moved on.
pub fn pinned_reference(image: &str, digest: &Digest) -> Result<String, AnalyzeError> {
    Ok(format!("{}@{digest}", repository_of(image)?))
}

#[cfg(test)]
mod tests {
    use vexxy_attest::{KeyAlgorithm, SigningKey};

    use super::*;

    const HEX_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const HEX_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn digest(hex: &str) -> Digest {
        format!("sha256:{hex}").parse().unwrap()
    }

    fn openvex(timestamp: &str) -> serde_json::Value {
        serde_json::json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": format!("https://example.test/vex/{timestamp}"),
            "author": "test",
            "timestamp": timestamp,
            "version": 1,
            "statements": [{
                "vulnerability": {"name": "CVE-2024-0001"},
                "products": [{"@id": format!("pkg:oci/app@sha256:{HEX_A}")}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_present"
            }]
        })
    }

    fn found(envelope: Vec<u8>, n: u8) -> FoundAttestation {
        FoundAttestation {
            subject: digest(HEX_A),
            location: AttestationLocation::CosignTag {
                tag: format!("sha256-{HEX_A}.att"),
                layer: usize::from(n),
            },
            digest: Digest::from_sha256_bytes(&[n; 32]),
            predicate_type: None,
            created: None,
            envelope,
        }
    }

    fn sign(
        key: &SigningKey,
        subject: &str,
        predicate_type: &str,
        doc: &serde_json::Value,
    ) -> Vec<u8> {
        let env = vexxy_attest::attest(
            "app",
            &format!("sha256:{subject}"),
            predicate_type,
            doc,
            key,
        )
        .unwrap();
        serde_json::to_vec(&env).unwrap()
    }

    #[test]
    fn only_verified_openvex_about_the_image_is_used_and_the_newest_wins() {
        #![allow(clippy::unwrap_used)]
        let ours = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let theirs = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let t = vexxy_attest::OPENVEX_PREDICATE_TYPE;
        let older = sign(&ours, HEX_A, t, &openvex("2026-01-01T00:00:00Z"));
        let newer = sign(&ours, HEX_A, t, &openvex("2026-02-01T00:00:00Z"));
        let forged = sign(&theirs, HEX_A, t, &openvex("2026-03-01T00:00:00Z"));
        let elsewhere = sign(&ours, HEX_B, t, &openvex("2026-04-01T00:00:00Z"));
        let provenance = sign(
            &theirs,
            HEX_A,
            "https://slsa.dev/provenance/v1",
            &serde_json::json!({"buildType": "x"}),
        );
        let cyclonedx = sign(
            &ours,
            HEX_A,
            t,
            &serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "vulnerabilities": []}),
        );
        let d = judge(
            vec![
                found(provenance, 0),
                found(forged, 1),
                found(older, 2),
                found(newer.clone(), 3),
                found(elsewhere, 4),
                found(cyclonedx, 5),
                found(newer, 3), // the same envelope again (also a referrer)
            ],
            ours.verifying_key(),
        );
        assert_eq!(d.candidates.len(), 6, "deduplicated by envelope digest");
        assert!(matches!(d.candidates[0].refused, Some(Refusal::NotVex(_))));
        assert!(matches!(
            d.candidates[1].refused,
            Some(Refusal::Signature(_))
        ));
        assert!(d.candidates[2].refused.is_none());
        assert!(matches!(
            d.candidates[4].refused,
            Some(Refusal::OtherSubject)
        ));
        assert!(matches!(
            d.candidates[5].refused,
            Some(Refusal::BadDocument(_))
        ));
        assert_eq!(d.chosen, Some(3), "the newest verified document");
        assert_eq!(
            d.refused().count(),
            3,
            "another signer's provenance is no refusal; the forged, misplaced and non-OpenVEX ones are"
        );
    }

    #[test]
    fn only_openvex_is_signed_as_openvex() {
        #![allow(clippy::unwrap_used)]
        let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let doc = serde_json::to_vec(&openvex("2026-01-01T00:00:00Z")).unwrap();
        let signed = sign_vex(&SignRequest {
            document: &doc,
            subject_name: "registry.example/app",
            subject_digest: None,
            key: &key,
        })
        .unwrap();
        assert_eq!(
            signed.subject,
            digest(HEX_A),
            "the document's product digest"
        );
        let csaf = br#"{"document": {"category": "csaf_vex"}}"#;
        assert!(sign_vex(&SignRequest {
            document: csaf,
            subject_name: "app",
            subject_digest: Some(&digest(HEX_A)),
            key: &key,
        })
        .is_err());
    }
}
