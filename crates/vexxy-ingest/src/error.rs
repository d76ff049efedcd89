use std::path::PathBuf;

use vexxy_model::{DigestError, PurlError};

use crate::Format;

/// Why a report or SBOM could not be read.
///
/// Every variant names the file; content errors name the JSON path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`Limits::max_bytes`](crate::Limits).
    #[error("{} is {size} bytes, more than the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least this many bytes).
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The file holds nothing but whitespace.
    #[error("{} is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is not well-formed JSON.
    #[error("{}: malformed json at line {line} column {column}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// The JSON ends before the document is complete (a cut-off file).
    #[error("{}: json ends early at line {line} column {column} (truncated file?)", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// 1-based line where the input ended.
        line: usize,
        /// Column where the input ended.
        column: usize,
    },
    /// The top-level JSON value is not an object.
    #[error("{}: the top-level json value is {found}, expected an object", path.display())]
    NotAnObject {
        /// The file.
        path: PathBuf,
        /// What was found instead (`an array`, `a string`, …).
        found: &'static str,
    },
    /// The document is JSON but of no format this crate knows.
    #[error(
        "{}: unknown format (not grype, trivy, osv-scanner, spdx, cyclonedx, syft or vex); top-level keys seen: [{}]",
        path.display(),
        keys.join(", ")
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The top-level keys, in document order (at most 32).
        keys: Vec<String>,
    },
    /// A known format in a version this crate does not read.
    #[error("{}: unsupported {format} version {version:?} (at {json_path})", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The format recognised.
        format: Format,
        /// The version field's JSON path.
        json_path: String,
        /// The version found.
        version: String,
    },
    /// A field has the wrong type or a required field is missing.
    #[error("{}: at {json_path} (line {line} column {column}): {message}", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// The JSON path of the offending value, e.g. `matches[3].vulnerability.id`.
        json_path: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// A package URL does not parse.
    #[error("{}: at {json_path}: {source}", path.display())]
    InvalidPurl {
        /// The file.
        path: PathBuf,
        /// The JSON path of the purl.
        json_path: String,
        /// The parse error.
        #[source]
        source: PurlError,
    },
    /// A digest is not `sha256:` followed by 64 hex digits.
    #[error("{}: at {json_path}: {source}", path.display())]
    InvalidDigest {
        /// The file.
        path: PathBuf,
        /// The JSON path of the digest.
        json_path: String,
        /// The parse error.
        #[source]
        source: DigestError,
    },
    /// The file is a VEX document; hand it to the VEX reader instead.
    #[error("{} is a {format} document, not a scanner report or sbom", path.display())]
    IsVex {
        /// The file.
        path: PathBuf,
        /// The VEX format recognised.
        format: Format,
    },
}

impl IngestError {
    /// True when the input's content is at fault (wrong, unknown, too large
    /// or a VEX document), false for I/O trouble reading it.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }

    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::Io { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Empty { path }
            | Self::Malformed { path, .. }
            | Self::Truncated { path, .. }
            | Self::NotAnObject { path, .. }
            | Self::UnknownFormat { path, .. }
            | Self::UnsupportedVersion { path, .. }
            | Self::Schema { path, .. }
            | Self::InvalidPurl { path, .. }
            | Self::InvalidDigest { path, .. }
            | Self::IsVex { path, .. } => path,
        }
    }

    /// The JSON path the error is about, for content errors that have one.
    pub fn json_path(&self) -> Option<&str> {
        match self {
            Self::UnsupportedVersion { json_path, .. }
            | Self::Schema { json_path, .. }
            | Self::InvalidPurl { json_path, .. }
            | Self::InvalidDigest { json_path, .. } => Some(json_path),
            _ => None,
        }
    }

    /// Maps a serde_json error from reading `path` (no JSON path known).
    pub(crate) fn from_json(
        path: &std::path::Path,
        err: &serde_json::Error,
        json_path: String,
    ) -> Self {
        use serde_json::error::Category;
        let path = path.to_path_buf();
        let (line, column) = (err.line(), err.column());
        match err.classify() {
            Category::Eof => Self::Truncated { path, line, column },
            Category::Syntax => Self::Malformed {
                path,
                line,
                column,
                message: message_of(err),
            },
            Category::Data | Category::Io => Self::Schema {
                path,
                json_path,
                line,
                column,
                message: message_of(err),
            },
        }
    }
}

/// serde_json's message without its trailing ` at line L column C`.
fn message_of(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// A conversion error inside a document, before the file is known.
#[derive(Debug)]
pub(crate) enum FieldError {
    Purl {
        json_path: String,
        source: PurlError,
    },
    Digest {
        json_path: String,
        source: DigestError,
    },
}

impl FieldError {
    pub(crate) fn at(self, path: &std::path::Path) -> IngestError {
        let path = path.to_path_buf();
        match self {
            Self::Purl { json_path, source } => IngestError::InvalidPurl {
                path,
                json_path,
                source,
            },
            Self::Digest { json_path, source } => IngestError::InvalidDigest {
                path,
                json_path,
                source,
            },
        }
    }
}
