//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong reading, writing or validating VEX.
///
/// Messages are lowercase and name the file and JSON Pointer (RFC 6901) of
/// the offending value, or the product and vulnerability involved.
#[derive(Debug, thiserror::Error)]
pub enum VexError {
    /// The bytes are not JSON at all.
    #[error("{}: not valid json: {source}", file.display())]
    Json {
        /// The file the bytes came from.
        file: PathBuf,
        /// The parser's complaint (it names line and column).
        source: serde_json::Error,
    },
    /// The JSON does not look like any VEX format this crate reads.
    #[error(
        "{}: not an openvex, cyclonedx or csaf document (found no openvex @context, cyclonedx bomFormat or csaf document.csaf_version)",
        file.display()
    )]
    UnknownFormat {
        /// The file the bytes came from.
        file: PathBuf,
    },
    /// A value has the wrong JSON type or an unknown enumeration value.
    #[error("{}: {}: {message}", file.display(), display_pointer(path))]
    Shape {
        /// The file the bytes came from.
        file: PathBuf,
        /// JSON Pointer of the value.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A value is well-formed but means something the domain model forbids
    /// (a `not_affected` statement without a reason, an unparseable time …).
    #[error("{}: {}: {message}", file.display(), display_pointer(path))]
    Invalid {
        /// The file the bytes came from.
        file: PathBuf,
        /// JSON Pointer of the value.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// Two statements about one product and vulnerability disagree, so no
    /// single scanner-safe statement can be written.
    #[error("conflicting verdicts for product {product} and vulnerability {vulnerability}: {first} vs {second}")]
    ConflictingVerdicts {
        /// The product purl.
        product: String,
        /// The vulnerability id.
        vulnerability: String,
        /// One verdict (`status` or `status/justification`).
        first: String,
        /// The other verdict.
        second: String,
    },
    /// The document cannot be written in the requested format.
    #[error("cannot write {format}: {reason}")]
    Unwritable {
        /// `openvex`, `cyclonedx`, `csaf` or `evidence`.
        format: &'static str,
        /// Why not.
        reason: String,
    },
    /// A timestamp is outside what RFC 3339 can express.
    #[error("cannot format timestamp {value} as rfc 3339: {source}")]
    Timestamp {
        /// The timestamp, as `time` prints it.
        value: String,
        /// The formatter's complaint.
        source: time::error::Format,
    },
    /// Serialising our own output failed (a bug, not bad input).
    #[error("cannot encode {format} json: {source}")]
    Encode {
        /// The format being written.
        format: &'static str,
        /// The serialiser's complaint.
        source: serde_json::Error,
    },
    /// An embedded JSON Schema could not be compiled (a bug, not bad input).
    #[error("embedded {which} json schema is unusable: {message}")]
    Schema {
        /// Which schema.
        which: &'static str,
        /// The compiler's complaint.
        message: String,
    },
}

impl VexError {
    /// Whether the error is caused by the input (a file or a document handed
    /// in) rather than by a defect of this crate; callers map it to a usage
    /// error rather than an internal one.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Json { .. }
            | Self::UnknownFormat { .. }
            | Self::Shape { .. }
            | Self::Invalid { .. }
            | Self::ConflictingVerdicts { .. }
            | Self::Unwritable { .. }
            | Self::Timestamp { .. } => true,
            Self::Encode { .. } | Self::Schema { .. } => false,
        }
    }
}

/// The root pointer is the empty string; print it readably.
pub(crate) fn display_pointer(path: &str) -> &str {
    if path.is_empty() {
        "(document root)"
    } else {
        path
    }
}

/// A problem found while converting a raw document into the domain model,
/// before the file name is known.
#[derive(Debug)]
pub(crate) struct ConvertError {
    pub(crate) path: String,
    pub(crate) message: String,
}

impl ConvertError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn in_file(self, file: &std::path::Path) -> VexError {
        VexError::Invalid {
            file: file.to_path_buf(),
            path: self.path,
            message: self.message,
        }
    }
}
