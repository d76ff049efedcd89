//! Signing and verifying keys: generation, PEM reading and writing, keyids.

use std::fmt;
use std::str::FromStr;

use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::der::{Decode, Document, SecretDocument};
use p256::pkcs8::{
    AssociatedOid, DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey,
    LineEnding, ObjectIdentifier, PrivateKeyInfo, SubjectPublicKeyInfoRef,
};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use crate::AttestError;

const PRIVATE: &str = "private key";
const PUBLIC: &str = "public key";

/// A signature algorithm vexxy signs and verifies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA over NIST P-256 with SHA-256; signatures are ASN.1 DER encoded
    /// (as cosign and securesystemslib's `ecdsa-sha2-nistp256` expect).
    EcdsaP256,
    /// Ed25519 (RFC 8032, pure, no pre-hash); 64-byte signatures.
    Ed25519,
}

impl KeyAlgorithm {
    /// The name used on the command line: `ecdsa-p256` or `ed25519`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = AttestError;

    /// Parses `ecdsa-p256` or `ed25519` (exactly these spellings).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ecdsa-p256" => Ok(KeyAlgorithm::EcdsaP256),
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            other => Err(AttestError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// A freshly generated key pair, both halves as PEM text.
///
/// `private_pem` is secret: write it with restrictive permissions.
#[derive(Clone)]
pub struct KeyPair {
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), unencrypted.
    pub private_pem: String,
    /// The public key, SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_pem: String,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("private_pem", &"<redacted>")
            .field("public_pem", &self.public_pem)
            .finish()
    }
}

/// Generates a new key pair of the given algorithm from the operating
/// system's random number generator.
///
/// The private key is PKCS#8 v1 PEM, the public key SPKI PEM; both load back
/// with [`SigningKey::from_pem`] and [`VerifyingKey::from_pem`], and with
/// OpenSSL, cosign and Python's `cryptography`.
pub fn generate(alg: KeyAlgorithm) -> Result<KeyPair, AttestError> {
    let key = SigningKey::generate(alg)?;
    let private_pem = key.to_pem()?.to_string();
    Ok(KeyPair {
        private_pem,
        public_pem: key.verifying_key().to_pem()?,
    })
}

#[derive(Clone)]
enum SigningInner {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A private key that signs DSSE envelopes.
///
/// Its `Debug` output shows the algorithm and keyid, never the secret.
#[derive(Clone)]
pub struct SigningKey {
    inner: SigningInner,
    public: VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("keyid", &self.keyid())
            .finish_non_exhaustive()
    }
}

fn random_seed() -> Result<Zeroizing<[u8; 32]>, AttestError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    OsRng
        .try_fill_bytes(seed.as_mut())
        .map_err(|e| AttestError::Random(e.to_string()))?;
    Ok(seed)
}

impl SigningKey {
    /// Generates a new private key from the operating system's random number generator.
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, AttestError> {
        match alg {
            KeyAlgorithm::Ed25519 => {
                let seed = random_seed()?;
                Self::from_inner(SigningInner::Ed25519(
                    ed25519_dalek::SigningKey::from_bytes(&seed),
                ))
            }
            KeyAlgorithm::EcdsaP256 => {
                // A random 32-byte string is a valid scalar unless it is zero or
                // not below the group order: a chance of about 2^-32 per try.
                for _ in 0..16 {
                    let seed = random_seed()?;
                    if let Ok(key) = p256::ecdsa::SigningKey::from_slice(seed.as_ref()) {
                        return Self::from_inner(SigningInner::P256(key));
                    }
                }
                Err(AttestError::Random(
                    "16 random draws in a row were not a valid p-256 scalar".to_owned(),
                ))
            }
        }
    }

    fn from_inner(inner: SigningInner) -> Result<Self, AttestError> {
        let public = match &inner {
            SigningInner::P256(k) => VerifyingInner::P256(*k.verifying_key()),
            SigningInner::Ed25519(k) => VerifyingInner::Ed25519(k.verifying_key()),
        };
        Ok(SigningKey {
            inner,
            public: VerifyingKey::from_inner(public)?,
        })
    }

    /// Reads a private key from PEM text, detecting its algorithm.
    ///
    /// Accepts an unencrypted PKCS#8 `PRIVATE KEY` block holding an ECDSA
    /// P-256 or Ed25519 key, or a SEC1 `EC PRIVATE KEY` block on P-256 (as
    /// `openssl ecparam -genkey` writes it; a leading `EC PARAMETERS` block
    /// is skipped). Text around the PEM block is ignored.
    pub fn from_pem(text: &str) -> Result<Self, AttestError> {
        let block = key_block(text, PRIVATE)?;
        match block.label {
            "PRIVATE KEY" => Self::from_pkcs8_pem(block.text),
            "EC PRIVATE KEY" => {
                let secret = p256::SecretKey::from_sec1_pem(block.text).map_err(|e| {
                    AttestError::KeyParse {
                        what: PRIVATE,
                        reason: format!("not a valid sec1 p-256 ec private key ({e})"),
                    }
                })?;
                Self::from_inner(SigningInner::P256(p256::ecdsa::SigningKey::from(secret)))
            }
            "ENCRYPTED PRIVATE KEY" => Err(AttestError::UnsupportedKey {
                what: PRIVATE,
                reason: "encrypted pkcs#8 key; decrypt it first (openssl pkey -in KEY -out PLAIN)"
                    .to_owned(),
            }),
            "PUBLIC KEY" => Err(AttestError::KeyParse {
                what: PRIVATE,
                reason: "found a public key where a private key was expected".to_owned(),
            }),
            other if other.ends_with("PRIVATE KEY") => Err(AttestError::UnsupportedKey {
                what: PRIVATE,
                reason: format!("pem block {other:?} (convert it to pkcs#8)"),
            }),
            other => Err(AttestError::KeyParse {
                what: PRIVATE,
                reason: format!("unexpected pem block {other:?}"),
            }),
        }
    }

    fn from_pkcs8_pem(block: &str) -> Result<Self, AttestError> {
        let bad = |e: &dyn fmt::Display| AttestError::KeyParse {
            what: PRIVATE,
            reason: format!("not a valid pkcs#8 private key ({e})"),
        };
        let (_, doc) = SecretDocument::from_pem(block).map_err(|e| bad(&e))?;
        let info = PrivateKeyInfo::from_der(doc.as_bytes()).map_err(|e| bad(&e))?;
        let oid = info.algorithm.oid;
        if oid == p256::elliptic_curve::ALGORITHM_OID {
            let curve = info.algorithm.parameters_oid().ok();
            if curve != Some(p256::NistP256::OID) {
                return Err(unsupported_curve(PRIVATE, curve));
            }
            let key =
                p256::ecdsa::SigningKey::from_pkcs8_der(doc.as_bytes()).map_err(|e| bad(&e))?;
            Self::from_inner(SigningInner::P256(key))
        } else if oid == ed25519_dalek::pkcs8::ALGORITHM_OID {
            let key =
                ed25519_dalek::SigningKey::from_pkcs8_der(doc.as_bytes()).map_err(|e| bad(&e))?;
            Self::from_inner(SigningInner::Ed25519(key))
        } else {
            Err(unsupported_algorithm(PRIVATE, oid))
        }
    }

    /// Writes the key as unencrypted PKCS#8 v1 PEM (LF line endings).
    pub fn to_pem(&self) -> Result<Zeroizing<String>, AttestError> {
        let encoded = match &self.inner {
            SigningInner::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
            SigningInner::Ed25519(k) => {
                // Version 1 (no embedded public key) is what every reader accepts.
                let bytes = ed25519_dalek::pkcs8::KeypairBytes {
                    secret_key: k.to_bytes(),
                    public_key: None,
                };
                bytes.to_pkcs8_pem(LineEnding::LF)
            }
        };
        encoded.map_err(|e| AttestError::KeyEncoding {
            what: PRIVATE,
            reason: e.to_string(),
        })
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.public.algorithm()
    }

    /// The keyid of the public half (see [`VerifyingKey::keyid`]).
    pub fn keyid(&self) -> &str {
        self.public.keyid()
    }

    /// The public half of this key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// Signs `message`: ECDSA P-256 with SHA-256 (DER signature, deterministic
    /// nonce per RFC 6979) or Ed25519 (64 bytes).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, AttestError> {
        use p256::ecdsa::signature::Signer;
        let failed = |e: p256::ecdsa::Error| AttestError::Signing(e.to_string());
        match &self.inner {
            SigningInner::P256(k) => {
                let sig: p256::ecdsa::Signature = k.try_sign(message).map_err(failed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            SigningInner::Ed25519(k) => {
                let sig: ed25519_dalek::Signature = k.try_sign(message).map_err(failed)?;
                Ok(sig.to_bytes().to_vec())
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum VerifyingInner {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A public key that verifies DSSE envelopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKey {
    inner: VerifyingInner,
    keyid: String,
}

impl VerifyingKey {
    fn from_inner(inner: VerifyingInner) -> Result<Self, AttestError> {
        let keyid = compute_keyid(&inner)?;
        Ok(VerifyingKey { inner, keyid })
    }

    /// Reads a public key from SubjectPublicKeyInfo PEM text
    /// (`-----BEGIN PUBLIC KEY-----`), detecting its algorithm (ECDSA P-256
    /// or Ed25519). Text around the PEM block is ignored. Private keys are
    /// refused: a verifier only ever needs the public half.
    pub fn from_pem(text: &str) -> Result<Self, AttestError> {
        let block = key_block(text, PUBLIC)?;
        if block.label != "PUBLIC KEY" {
            let reason = if block.label.ends_with("PRIVATE KEY") {
                "found a private key where a public key was expected; pass the public key"
                    .to_owned()
            } else {
                format!(
                    "unexpected pem block {:?} (expected PUBLIC KEY)",
                    block.label
                )
            };
            return Err(AttestError::KeyParse {
                what: PUBLIC,
                reason,
            });
        }
        let bad = |e: &dyn fmt::Display| AttestError::KeyParse {
            what: PUBLIC,
            reason: format!("not a valid subjectpublickeyinfo ({e})"),
        };
        let (_, doc) = Document::from_pem(block.text).map_err(|e| bad(&e))?;
        let info = SubjectPublicKeyInfoRef::from_der(doc.as_bytes()).map_err(|e| bad(&e))?;
        let oid = info.algorithm.oid;
        let inner = if oid == p256::elliptic_curve::ALGORITHM_OID {
            let curve = info.algorithm.parameters_oid().ok();
            if curve != Some(p256::NistP256::OID) {
                return Err(unsupported_curve(PUBLIC, curve));
            }
            VerifyingInner::P256(
                p256::ecdsa::VerifyingKey::from_public_key_der(doc.as_bytes())
                    .map_err(|e| bad(&e))?,
            )
        } else if oid == ed25519_dalek::pkcs8::ALGORITHM_OID {
            VerifyingInner::Ed25519(
                ed25519_dalek::VerifyingKey::from_public_key_der(doc.as_bytes())
                    .map_err(|e| bad(&e))?,
            )
        } else {
            return Err(unsupported_algorithm(PUBLIC, oid));
        };
        Self::from_inner(inner)
    }

    /// Writes the key as SubjectPublicKeyInfo PEM with LF line endings and
    /// 64-character lines, ending in a newline (the same bytes OpenSSL and
    /// Python's `cryptography` write).
    pub fn to_pem(&self) -> Result<String, AttestError> {
        let encoded = match &self.inner {
            VerifyingInner::P256(k) => k.to_public_key_pem(LineEnding::LF),
            VerifyingInner::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
        };
        encoded.map_err(|e| AttestError::KeyEncoding {
            what: PUBLIC,
            reason: e.to_string(),
        })
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.inner {
            VerifyingInner::P256(_) => KeyAlgorithm::EcdsaP256,
            VerifyingInner::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    /// The keyid: the one securesystemslib computes by default for this key,
    /// so that its DSSE verifier finds the key.
    ///
    /// It is the lowercase hex SHA-256 of the canonical JSON (sorted keys, no
    /// whitespace, only `"` and `\` escaped) of
    /// `{"keytype":T,"keyval":{"public":V},"scheme":S}` where, for P-256,
    /// T = `ecdsa`, S = `ecdsa-sha2-nistp256` and V = the SPKI PEM of
    /// [`VerifyingKey::to_pem`] (trailing newline included); for Ed25519,
    /// T = S = `ed25519` and V = the 32 raw public key bytes in lowercase hex.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// True when `signature` is a valid signature of `message` under this key.
    ///
    /// P-256 signatures must be ASN.1 DER; Ed25519 is verified strictly
    /// (canonical encodings, no small-order keys).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        match &self.inner {
            VerifyingInner::P256(k) => match p256::ecdsa::Signature::from_der(signature) {
                Ok(sig) => k.verify(message, &sig).is_ok(),
                Err(_) => false,
            },
            VerifyingInner::Ed25519(k) => match ed25519_dalek::Signature::from_slice(signature) {
                Ok(sig) => k.verify_strict(message, &sig).is_ok(),
                Err(_) => false,
            },
        }
    }
}

fn compute_keyid(inner: &VerifyingInner) -> Result<String, AttestError> {
    let (keytype, scheme, public) = match inner {
        VerifyingInner::P256(k) => {
            let pem =
                k.to_public_key_pem(LineEnding::LF)
                    .map_err(|e| AttestError::KeyEncoding {
                        what: PUBLIC,
                        reason: e.to_string(),
                    })?;
            ("ecdsa", "ecdsa-sha2-nistp256", pem)
        }
        VerifyingInner::Ed25519(k) => ("ed25519", "ed25519", hex::encode(k.as_bytes())),
    };
    let canonical = format!(
        "{{\"keytype\":{},\"keyval\":{{\"public\":{}}},\"scheme\":{}}}",
        canonical_string(keytype),
        canonical_string(&public),
        canonical_string(scheme)
    );
    Ok(hex::encode(Sha256::digest(canonical.as_bytes())))
}

/// A string in canonical JSON (OLPC dialect): quoted, with only `"` and `\` escaped.
fn canonical_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn oid_name(oid: ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "rsa",
        "1.2.840.10040.4.1" => "dsa",
        "1.3.101.113" => "ed448",
        "1.3.101.110" => "x25519",
        "1.3.101.111" => "x448",
        "1.3.132.0.34" => "p-384",
        "1.3.132.0.35" => "p-521",
        "1.3.132.0.10" => "secp256k1",
        _ => return format!("oid {oid}"),
    };
    format!("{name} ({oid})")
}

fn unsupported_algorithm(what: &'static str, oid: ObjectIdentifier) -> AttestError {
    AttestError::UnsupportedKey {
        what,
        reason: format!("key algorithm {}", oid_name(oid)),
    }
}

fn unsupported_curve(what: &'static str, curve: Option<ObjectIdentifier>) -> AttestError {
    let reason = match curve {
        Some(oid) => format!("ec key on curve {}", oid_name(oid)),
        None => "ec key without a named curve".to_owned(),
    };
    AttestError::UnsupportedKey { what, reason }
}

/// One PEM block inside a larger text.
struct PemBlock<'a> {
    label: &'a str,
    text: &'a str,
}

/// The first PEM block of `text` that is not `EC PARAMETERS`.
fn key_block<'a>(text: &'a str, what: &'static str) -> Result<PemBlock<'a>, AttestError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let mut rest = 0;
    while let Some(found) = text[rest..].find(BEGIN) {
        let start = rest + found;
        let label_start = start + BEGIN.len();
        let label_len = text[label_start..]
            .find(DASHES)
            .ok_or_else(|| AttestError::KeyParse {
                what,
                reason: "malformed pem begin line".to_owned(),
            })?;
        let label = &text[label_start..label_start + label_len];
        let end_line = format!("-----END {label}-----");
        let end = text[label_start..]
            .find(&end_line)
            .map(|i| label_start + i + end_line.len())
            .ok_or_else(|| AttestError::KeyParse {
                what,
                reason: format!("pem block {label:?} has no end line"),
            })?;
        if label != "EC PARAMETERS" {
            return Ok(PemBlock {
                label,
                text: &text[start..end],
            });
        }
        rest = end;
    }
    Err(AttestError::KeyParse {
        what,
        reason: "no pem block found".to_owned(),
    })
}
