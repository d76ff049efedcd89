//! DSSE (Dead Simple Signing Envelope) v1: pre-authentication encoding and
//! the JSON envelope.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};

use crate::{AttestError, SigningKey, VerifyingKey};

/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Decodes standard base64, padded or not.
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes URL-safe base64, padded or not.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The DSSE v1 pre-authentication encoding of a payload: the bytes that are
/// actually signed.
///
/// `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`, where the
/// lengths are the byte lengths (of the UTF-8 type and of the payload)
/// written as ASCII decimal without leading zeros.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let payload_len = payload.len().to_string();
    let mut out = Vec::with_capacity(
        10 + type_len.len() + payload_type.len() + payload_len.len() + payload.len(),
    );
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(type_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// One signature of an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// The signer's keyid: an unauthenticated hint, never trusted (empty when absent).
    pub keyid: String,
    /// The raw signature bytes (DER for ECDSA, 64 bytes for Ed25519).
    pub sig: Vec<u8>,
}

/// A DSSE envelope with its payload and signatures decoded.
///
/// It serializes (with serde) to the DSSE JSON envelope
/// `{"payloadType":…,"payload":<base64>,"signatures":[{"keyid":…,"sig":<base64>}]}`,
/// with standard padded base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// How to interpret the payload (a media type).
    pub payload_type: String,
    /// The signed payload bytes.
    pub payload: Vec<u8>,
    /// The signatures over `pae(payload_type, payload)`.
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct WireEnvelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    #[serde(default)]
    signatures: Option<Vec<WireSignature>>,
}

#[derive(Deserialize)]
struct WireSignature {
    #[serde(default)]
    keyid: Option<String>,
    sig: String,
}

fn decode_base64(field: String, text: &str) -> Result<Vec<u8>, AttestError> {
    match STANDARD_LENIENT.decode(text) {
        Ok(bytes) => Ok(bytes),
        Err(source) => URL_SAFE_LENIENT
            .decode(text)
            .map_err(|_| AttestError::Base64 { field, source }),
    }
}

impl Envelope {
    /// Signs `payload` as `payload_type` with `key`, giving an envelope with
    /// one signature carrying the key's keyid.
    pub fn sign(
        payload_type: &str,
        payload: Vec<u8>,
        key: &SigningKey,
    ) -> Result<Self, AttestError> {
        let sig = key.sign(&pae(payload_type, &payload))?;
        Ok(Envelope {
            payload_type: payload_type.to_owned(),
            payload,
            signatures: vec![EnvelopeSignature {
                keyid: key.keyid().to_owned(),
                sig,
            }],
        })
    }

    /// Parses a DSSE JSON envelope and decodes its base64 fields (standard or
    /// URL-safe alphabet, padding optional, as DSSE allows).
    ///
    /// Checks the shape only; see [`Envelope::verify_signature`]. A missing
    /// or empty `signatures` array is [`AttestError::NoSignatures`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, AttestError> {
        let wire: WireEnvelope = serde_json::from_slice(bytes)
            .map_err(|e| AttestError::MalformedEnvelope(e.to_string()))?;
        let payload = decode_base64("payload".to_owned(), &wire.payload)?;
        let wire_signatures = wire.signatures.unwrap_or_default();
        if wire_signatures.is_empty() {
            return Err(AttestError::NoSignatures);
        }
        let signatures = wire_signatures
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(EnvelopeSignature {
                    keyid: s.keyid.unwrap_or_default(),
                    sig: decode_base64(format!("signatures[{i}].sig"), &s.sig)?,
                })
            })
            .collect::<Result<Vec<_>, AttestError>>()?;
        Ok(Envelope {
            payload_type: wire.payload_type,
            payload,
            signatures,
        })
    }

    /// The envelope as compact DSSE JSON.
    pub fn to_json(&self) -> Result<String, AttestError> {
        serde_json::to_string(self).map_err(AttestError::Serialize)
    }

    /// Finds a signature that verifies over `pae(payload_type, payload)` with
    /// `key`, and returns it.
    ///
    /// Every signature is tried whatever its keyid says (DSSE keyids are
    /// unauthenticated hints; cosign leaves them empty).
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<&EnvelopeSignature, AttestError> {
        if self.signatures.is_empty() {
            return Err(AttestError::NoSignatures);
        }
        let message = pae(&self.payload_type, &self.payload);
        self.signatures
            .iter()
            .find(|s| key.verify(&message, &s.sig))
            .ok_or_else(|| AttestError::SignatureMismatch {
                keyid: key.keyid().to_owned(),
                checked: self.signatures.len(),
            })
    }
}

struct WireSignatures<'a>(&'a [EnvelopeSignature]);

impl Serialize for WireSignatures<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for s in self.0 {
            seq.serialize_element(&WireSignatureOut {
                keyid: &s.keyid,
                sig: STANDARD.encode(&s.sig),
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct WireSignatureOut<'a> {
    keyid: &'a str,
    sig: String,
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("payloadType", &self.payload_type)?;
        map.serialize_entry("payload", &STANDARD.encode(&self.payload))?;
        map.serialize_entry("signatures", &WireSignatures(&self.signatures))?;
        map.end()
    }
}
