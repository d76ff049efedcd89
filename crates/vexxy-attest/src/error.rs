//! The error type of the crate.

/// Everything that can go wrong while handling keys, signing or verifying.
///
/// Every message is lowercase and names what failed. [`AttestError::is_bad_input`]
/// separates problems with what the caller handed us (a key file, an
/// envelope, a subject) from failures of our own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// A key algorithm name that is neither `ecdsa-p256` nor `ed25519`.
    #[error("unknown key algorithm {0:?} (expected ecdsa-p256 or ed25519)")]
    UnknownAlgorithm(String),

    /// The operating system's random number generator failed.
    #[error("cannot generate a key: the system random number generator failed: {0}")]
    Random(String),

    /// A freshly generated key could not be encoded as PEM.
    #[error("cannot encode the {what} as pem: {reason}")]
    KeyEncoding {
        /// Which key ("private key" or "public key").
        what: &'static str,
        /// The encoder's message.
        reason: String,
    },

    /// The text does not hold a PEM block of the expected kind.
    #[error("cannot read the {what}: {reason}")]
    KeyParse {
        /// Which key was expected ("private key" or "public key").
        what: &'static str,
        /// What was wrong with it.
        reason: String,
    },

    /// A well-formed key of an algorithm or curve we do not sign with.
    #[error("unsupported {what}: {reason} (supported: ecdsa p-256, ed25519)")]
    UnsupportedKey {
        /// Which key ("private key" or "public key").
        what: &'static str,
        /// The algorithm or curve that was found.
        reason: String,
    },

    /// The subject name is empty or holds control characters.
    #[error("invalid subject name {0:?}: it must be non-empty and free of control characters")]
    InvalidSubjectName(String),

    /// The subject digest is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid subject digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidSubjectDigest(String),

    /// The predicate type is empty.
    #[error("invalid predicate type: it must be a non-empty uri")]
    InvalidPredicateType,

    /// The predicate is not a JSON object.
    #[error("invalid predicate: an in-toto predicate must be a json object, got {0}")]
    InvalidPredicate(&'static str),

    /// The signature primitive failed (a failure of ours).
    #[error("cannot sign: {0}")]
    Signing(String),

    /// The statement could not be serialized (a failure of ours).
    #[error("cannot serialize the in-toto statement: {0}")]
    Serialize(#[source] serde_json::Error),

    /// The envelope is not a DSSE JSON envelope.
    #[error("malformed dsse envelope: {0}")]
    MalformedEnvelope(String),

    /// A base64 field of the envelope does not decode.
    #[error("malformed dsse envelope: {field} is not valid base64: {source}")]
    Base64 {
        /// The JSON path of the field (`payload`, `signatures[0].sig`).
        field: String,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },

    /// The envelope carries no signature at all.
    #[error("the dsse envelope has no signatures")]
    NoSignatures,

    /// No signature of the envelope verifies with the given public key.
    #[error(
        "signature verification failed: none of the {checked} signature(s) verifies with the given \
         public key (keyid {keyid}); wrong key, or the payload or payload type was modified"
    )]
    SignatureMismatch {
        /// The keyid of the public key that was tried.
        keyid: String,
        /// How many signatures were checked.
        checked: usize,
    },

    /// The envelope is authentic but does not carry an in-toto statement.
    #[error("unexpected dsse payload type {found:?}: expected {expected:?}")]
    UnexpectedPayloadType {
        /// The payload type of the envelope.
        found: String,
        /// The payload type of in-toto statements.
        expected: &'static str,
    },

    /// The payload is authentic but is not an in-toto statement.
    #[error("the payload is not an in-toto statement: {0}")]
    NotAStatement(String),
}

impl AttestError {
    /// True when the error comes from what the caller handed in (a key, a
    /// subject, a predicate, an envelope) rather than from a failure of ours
    /// (random number generator, encoding).
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            AttestError::Random(_)
                | AttestError::KeyEncoding { .. }
                | AttestError::Signing(_)
                | AttestError::Serialize(_)
        )
    }
}
