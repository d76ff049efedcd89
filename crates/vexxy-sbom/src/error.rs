//! The one error type of the crate.

use time::OffsetDateTime;

/// Everything that can go wrong writing an SBOM.
///
/// Messages are lowercase and name the package or value concerned.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// The timestamp cannot be written as RFC 3339 in UTC (its year falls
    /// outside 0000–9999 once converted to UTC).
    #[error("timestamp {value} cannot be written as rfc 3339 in utc")]
    Timestamp {
        /// The timestamp as given.
        value: OffsetDateTime,
    },
    /// A package without a purl from which none can be built (empty name).
    #[error("package {name:?} version {version:?} has no purl and none can be built: {source}")]
    Purl {
        /// The package name.
        name: String,
        /// The package version.
        version: String,
        /// Why the purl could not be built.
        source: vexxy_model::PurlError,
    },
    /// The document could not be serialised (not expected to happen).
    #[error("cannot serialise the {format} document: {source}")]
    Json {
        /// `cyclonedx`, `spdx` or `vexxy-inventory`.
        format: &'static str,
        /// The serialiser's complaint.
        source: serde_json::Error,
    },
}

impl SbomError {
    /// Whether the error comes from the input (a bad inventory or
    /// timestamp) rather than from vexxy itself; the CLI maps it to exit 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Timestamp { .. } | Self::Purl { .. })
    }
}
