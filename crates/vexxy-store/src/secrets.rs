//! Tenants' secrets at rest: organisations' private signing keys and
//! registry passwords are sealed with XChaCha20-Poly1305 under the
//! server's secret key before they reach the database.
//!
//! - The server's key is 32 random bytes given as 64 hex digits or as
//!   base64 (44 characters, padding optional) ([`ServerKey::parse`]).
//! - Every secret gets a fresh random 192-bit nonce.
//! - The associated data binds the ciphertext to its organisation, its
//!   purpose and its row (a signing key's id, a registry's host): a sealed
//!   value copied to another organisation, another purpose or another row
//!   does not open.
//! - A sealed value is text, `vxs1.<key id>.<base64(nonce ‖ ciphertext)>`;
//!   the key id (a keyed hash of the server's key, never the key) tells a
//!   value sealed under another server key apart from a tampered one.
//!
//! Neither the server's key nor a plaintext secret appears in `Debug`
//! output or in an error message.

use base64::Engine as _;
use chacha20poly1305::{
    aead::{Aead as _, Payload},
    KeyInit as _, XChaCha20Poly1305, XNonce,
};
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};
use zeroize::{Zeroize as _, Zeroizing};

/// The prefix of every sealed value (the format's version).
const VERSION: &str = "vxs1";
const NONCE_BYTES: usize = 24;

/// What a sealed secret is for: part of its associated data, so a value
/// sealed for one purpose never opens as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// An organisation's private signing key (PKCS#8 PEM).
    SigningKey,
    /// An organisation's password for one registry.
    RegistryPassword,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::SigningKey => "signing-key",
            Self::RegistryPassword => "registry-password",
        }
    }
}

/// Why a secret could not be sealed or opened, or a key not read. The
/// text never contains a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretsError {
    /// The service was started without a server secret key.
    #[error("no server secret key configured (--secret-key-file, VEXXY_SECRET_KEY_FILE or VEXXY_SECRET_KEY)")]
    NoKey,
    /// The server secret key as given is not 32 bytes in hex or base64.
    #[error("the server secret key must be 32 bytes written as 64 hex digits or as base64 (44 characters): {0}")]
    BadKey(String),
    /// The stored value is not a sealed secret of this format.
    #[error("a stored {purpose} secret of organisation {org} is malformed")]
    Malformed { org: String, purpose: &'static str },
    /// The value was sealed under another server secret key.
    #[error("a stored {purpose} secret of organisation {org} was sealed with another server secret key (key id {found}; this server's is {ours})")]
    OtherKey {
        org: String,
        purpose: &'static str,
        found: String,
        ours: String,
    },
    /// Authentication failed: the value was changed, or belongs to another
    /// organisation, purpose or row.
    #[error("a stored {purpose} secret of organisation {org} does not open: it was changed or belongs elsewhere")]
    Tampered { org: String, purpose: &'static str },
    /// Encryption failed (cannot happen with a valid key; kept typed).
    #[error("sealing a {purpose} secret failed")]
    Seal { purpose: &'static str },
    /// The operating system's random number generator failed.
    #[error("the random number generator failed: {0}")]
    Random(String),
}

/// The server's secret key: 32 bytes, wiped when dropped, never shown.
#[derive(Clone)]
pub struct ServerKey {
    key: Zeroizing<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerKey(id {})", self.id)
    }
}

impl PartialEq for ServerKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl ServerKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let key = Zeroizing::new(bytes);
        // a keyed hash of the key, so the id reveals nothing about it
        let mut h = Sha256::new();
        h.update(b"vexxy server key id\0");
        h.update(key.as_ref());
        let id = hex::encode(&h.finalize()[..8]);
        Self { key, id }
    }

    /// Reads the key as written in a file or an environment variable:
    /// 64 hex digits, or base64 (standard alphabet, padding optional) of
    /// exactly 32 bytes; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        let t = text.trim();
        let mut bytes = Zeroizing::new(Vec::new());
        if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            *bytes = hex::decode(t).map_err(|_| SecretsError::BadKey("not hex".into()))?;
        } else {
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            *bytes = engine.decode(t).map_err(|_| {
                SecretsError::BadKey(format!(
                    "{} characters that are neither 64 hex digits nor base64",
                    t.chars().count()
                ))
            })?;
        }
        let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            SecretsError::BadKey(format!("it decodes to {} bytes, not 32", bytes.len()))
        })?;
        let key = Self::from_bytes(array);
        let mut array = array;
        array.zeroize();
        Ok(key)
    }

    /// A fresh random key (tests, and `openssl rand -hex 32` in code).
    pub fn generate() -> Result<Self, SecretsError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng
            .try_fill_bytes(bytes.as_mut())
            .map_err(|e| SecretsError::Random(e.to_string()))?;
        Ok(Self::from_bytes(*bytes))
    }

    /// A short public name of this key (a keyed hash): tells which key
    /// sealed a value, reveals nothing of the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*self.key))
    }

    /// Seals `plaintext` for `org`'s `purpose`, bound to `row` (the
    /// secret's own name: a key id, a registry host).
    pub fn seal(
        &self,
        org: &str,
        purpose: Purpose,
        row: &str,
        plaintext: &[u8],
    ) -> Result<String, SecretsError> {
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| SecretsError::Random(e.to_string()))?;
        let aad = associated_data(org, purpose, row);
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SecretsError::Seal {
                purpose: purpose.as_str(),
            })?;
        let mut blob = Vec::with_capacity(NONCE_BYTES + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!(
            "{VERSION}.{}.{}",
            self.id,
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(blob)
        ))
    }

    /// Opens a value [`ServerKey::seal`] made for the same organisation,
    /// purpose and row; anything else is an error.
    pub fn open(
        &self,
        org: &str,
        purpose: Purpose,
        row: &str,
        sealed: &str,
    ) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let malformed = || SecretsError::Malformed {
            org: org.to_owned(),
            purpose: purpose.as_str(),
        };
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        if key_id != self.id {
            return Err(SecretsError::OtherKey {
                org: org.to_owned(),
                purpose: purpose.as_str(),
                found: key_id.chars().take(16).collect(),
                ours: self.id.clone(),
            });
        }
        let blob = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(body)
            .map_err(|_| malformed())?;
        if blob.len() < NONCE_BYTES + 16 {
            return Err(malformed());
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).map_err(|_| malformed())?;
        let aad = associated_data(org, purpose, row);
        self.cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SecretsError::Tampered {
                org: org.to_owned(),
                purpose: purpose.as_str(),
            })
    }
}

/// `vexxy-secret-v1 \0 purpose \0 org \0 row`, each part length-prefixed
/// so no two different triples give the same bytes.
fn associated_data(org: &str, purpose: Purpose, row: &str) -> Vec<u8> {
    let mut aad = b"vexxy-secret-v1".to_vec();
    for part in [purpose.as_str(), org, row] {
        aad.push(0);
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// A secret in memory (a password, a private key's PEM): wiped when
/// dropped, shown by `Debug` as its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretString({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_as_hex_or_base64_and_nothing_else() {
        let hex_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let a = ServerKey::parse(hex_key).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(hex_key).unwrap());
        assert_eq!(b64.len(), 44);
        let b = ServerKey::parse(&format!("  {b64}\n")).unwrap();
        assert_eq!(a, b, "the same 32 bytes");
        let c = ServerKey::parse(b64.trim_end_matches('=')).unwrap();
        assert_eq!(a, c, "padding optional");
        for bad in ["", "short", &hex_key[..62], &"Zm9v".repeat(20), "!!!!"] {
            let e = ServerKey::parse(bad).unwrap_err();
            assert!(matches!(e, SecretsError::BadKey(_)), "{bad:?}: {e}");
        }
        assert!(!format!("{a:?}").contains("0011"), "{a:?}");
    }

    #[test]
    fn sealed_values_open_only_for_their_org_purpose_row_and_key() {
        let key = ServerKey::generate().unwrap();
        let secret = b"hunter2-correct-horse";
        let sealed = key
            .seal("org_a", Purpose::RegistryPassword, "r.example", secret)
            .unwrap();
        assert!(
            sealed.starts_with(&format!("vxs1.{}.", key.id())),
            "{sealed}"
        );
        assert!(!sealed.contains("hunter2"));
        let again = key
            .seal("org_a", Purpose::RegistryPassword, "r.example", secret)
            .unwrap();
        assert_ne!(sealed, again, "a fresh nonce per secret");
        let opened = key
            .open("org_a", Purpose::RegistryPassword, "r.example", &sealed)
            .unwrap();
        assert_eq!(opened.as_slice(), secret);
        for (org, purpose, row) in [
            ("org_b", Purpose::RegistryPassword, "r.example"),
            ("org_a", Purpose::SigningKey, "r.example"),
            ("org_a", Purpose::RegistryPassword, "other.example"),
        ] {
            let e = key.open(org, purpose, row, &sealed).unwrap_err();
            assert!(matches!(e, SecretsError::Tampered { .. }), "{e}");
        }
        let other = ServerKey::generate().unwrap();
        let e = other
            .open("org_a", Purpose::RegistryPassword, "r.example", &sealed)
            .unwrap_err();
        assert!(matches!(e, SecretsError::OtherKey { .. }), "{e}");
        // a flipped byte of the ciphertext
        let (head, body) = sealed.rsplit_once('.').unwrap();
        let mut raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(body)
            .unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let flipped = format!(
            "{head}.{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw)
        );
        let e = key
            .open("org_a", Purpose::RegistryPassword, "r.example", &flipped)
            .unwrap_err();
        assert!(matches!(e, SecretsError::Tampered { .. }), "{e}");
        for junk in ["", "vxs1", "vxs2.x.y", &format!("vxs1.{}.%%%", key.id())] {
            let e = key
                .open("org_a", Purpose::RegistryPassword, "r.example", junk)
                .unwrap_err();
            assert!(
                matches!(
                    e,
                    SecretsError::Malformed { .. } | SecretsError::OtherKey { .. }
                ),
                "{junk:?}: {e}"
            );
        }
    }

    #[test]
    fn secrets_do_not_show() {
        let s = SecretString::new("p@ssw0rd");
        assert_eq!(format!("{s:?}"), "SecretString(8 bytes)");
        assert_eq!(s.expose(), "p@ssw0rd");
    }
}
