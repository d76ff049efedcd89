//! Signs VEX documents (or any JSON predicate) as in-toto attestations in
//! DSSE envelopes, and verifies such envelopes.
//!
//! - Keys: ECDSA P-256 with SHA-256 (DER signatures, as cosign and
//!   securesystemslib expect) and Ed25519. Private keys are read from PKCS#8
//!   PEM (and SEC1 `EC PRIVATE KEY` for P-256), public keys from SPKI PEM;
//!   the algorithm is detected from the key. [`generate`] makes new pairs.
//! - [`attest`] wraps a predicate in an in-toto Statement v1 about one
//!   subject (`name` + `sha256` digest) and signs it as a DSSE envelope of
//!   type `application/vnd.in-toto+json`; with [`OPENVEX_PREDICATE_TYPE`] the
//!   result is what `cosign attest --type openvex` produces.
//! - [`verify`] checks an envelope against a public key and returns the
//!   statement.
//!
//! # Invariants
//!
//! - The signature always covers `pae(payloadType, payload)` (DSSE v1), so
//!   neither the payload nor its type can change without verification failing.
//! - [`verify`] returns a statement only after a signature verified with the
//!   given key; keyids in envelopes are hints and never decide anything.
//! - A keyid is the one securesystemslib computes for the same public key
//!   (see [`VerifyingKey::keyid`]), so Python's DSSE verifier finds our keys.
//! - [`attest`] accepts only a `sha256:<64 lowercase hex>` subject digest and a
//!   JSON-object predicate; [`verify`] accepts only in-toto statements.
//! - Secret key material never appears in `Debug` output or error messages.
//!
//! # What it never does
//!
//! No networking (no registry, no transparency log, no Fulcio or Rekor), no
//! file I/O (callers pass PEM text and envelope bytes), no key storage, no
//! `unsafe`.

mod dsse;
mod error;
mod keys;
mod statement;

pub use dsse::{pae, Envelope, EnvelopeSignature, IN_TOTO_PAYLOAD_TYPE};
pub use error::AttestError;
pub use keys::{generate, KeyAlgorithm, KeyPair, SigningKey, VerifyingKey};
pub use statement::{
    Subject, VerifiedStatement, IN_TOTO_STATEMENT_V0_1, IN_TOTO_STATEMENT_V1,
    OPENVEX_PREDICATE_TYPE,
};

/// Signs `predicate` as an in-toto Statement v1 about one subject, in a DSSE
/// envelope with one signature by `key`.
///
/// `subject_digest` must be `sha256:` followed by 64 lowercase hex digits;
/// the statement records it as `{"sha256": "<hex>"}`. `subject_name` must be
/// non-empty without control characters, `predicate_type` non-empty, and
/// `predicate` a JSON object (its key order is kept).
pub fn attest(
    subject_name: &str,
    subject_digest: &str,
    predicate_type: &str,
    predicate: &serde_json::Value,
    key: &SigningKey,
) -> Result<Envelope, AttestError> {
    let payload = statement::build(subject_name, subject_digest, predicate_type, predicate)?;
    Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, key)
}

/// Verifies a DSSE JSON envelope with `key` and returns the in-toto statement
/// it carries.
///
/// In order, it fails when: the bytes are not a DSSE JSON envelope
/// ([`AttestError::MalformedEnvelope`]), a base64 field does not decode
/// ([`AttestError::Base64`]), there is no signature
/// ([`AttestError::NoSignatures`]), no signature verifies with `key` — wrong
/// key, changed payload or changed payload type
/// ([`AttestError::SignatureMismatch`]), the payload type is not
/// [`IN_TOTO_PAYLOAD_TYPE`] ([`AttestError::UnexpectedPayloadType`]), or the
/// payload is not an in-toto Statement v1 or v0.1
/// ([`AttestError::NotAStatement`]).
///
/// It does not check what the statement says (subject, predicate type): that
/// is the caller's policy.
pub fn verify(envelope_json: &[u8], key: &VerifyingKey) -> Result<VerifiedStatement, AttestError> {
    let envelope = Envelope::from_json(envelope_json)?;
    envelope.verify_signature(key)?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(AttestError::UnexpectedPayloadType {
            found: envelope.payload_type,
            expected: IN_TOTO_PAYLOAD_TYPE,
        });
    }
    statement::parse(&envelope.payload)
}
