//! The one error type of the crate.

use std::path::PathBuf;

/// What can go wrong reading an analysis directory for a diff, or encoding
/// a diff.
///
/// Messages are lowercase and name the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's complaint.
        source: std::io::Error,
    },
    /// The file is larger than a VEX document can reasonably be.
    #[error("{} is larger than the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The file is not a VEX document vexxy reads (the message names the
    /// file and the JSON Pointer of the problem).
    #[error("invalid vex document: {source}")]
    Vex {
        /// The file.
        path: PathBuf,
        /// The reader's complaint.
        source: vexxy_vex::VexError,
    },
    /// The diff could not be encoded as JSON (not expected to happen).
    #[error("cannot encode the diff as json: {source}")]
    Encode {
        /// The serialiser's complaint.
        source: serde_json::Error,
    },
}

impl ReportError {
    /// Whether the input (a missing, oversized or malformed file) is at
    /// fault rather than vexxy; the CLI maps it to exit code 2.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Read { .. } | Self::TooLarge { .. } => true,
            Self::Vex { source, .. } => source.is_bad_input(),
            Self::Encode { .. } => false,
        }
    }
}
