//! SBOM writers: CycloneDX 1.6 and SPDX 2.3 JSON with the files each package
//! owns, and vexxy's own inventory JSON.
//!
//! Each writer is a pure function of a [`SbomSubject`] (the image), an
//! [`Inventory`] (its packages) and [`SbomOptions`] (time, tool version,
//! whether to list files):
//!
//! - [`write_cyclonedx`]: CycloneDX 1.6 JSON, valid against the official
//!   schema; the image is `metadata.component` (type `container`), every
//!   package a `library` component whose `bom-ref` is its purl, owned files
//!   are `evidence.occurrences`, and `dependencies` make the image depend on
//!   every package;
//! - [`write_spdx`]: SPDX 2.3 JSON, valid against the official schema; the
//!   document `DESCRIBES` an image package that `CONTAINS` every package,
//!   which `CONTAINS` its files;
//! - [`write_json`]: vexxy's compact inventory (`docs/sbom.md`).
//!
//! Invariants:
//! - output is byte-stable for the same input: packages are sorted by purl
//!   (then name, version, architecture), files by path, properties by name,
//!   and the document ids (`serialNumber`, `documentNamespace`) are derived
//!   from a SHA-256 of the rest of the document, never from a clock or a
//!   random source; the only time written is [`SbomOptions::timestamp`];
//! - every package gets a purl: its own, or one built from its ecosystem,
//!   name, version and architecture;
//! - identifiers (`bom-ref`, `SPDXID`) are unique within a document;
//! - a written document read back with `vexxy_ingest::parse` yields the same
//!   packages (name, version, purl) and, with [`SbomOptions::include_files`],
//!   the same files per package;
//! - nothing here does I/O or panics on any inventory.

mod common;
mod cyclonedx;
mod error;
mod inventory_json;
mod spdx;

use time::OffsetDateTime;
use vexxy_model::Digest;

pub use cyclonedx::write_cyclonedx;
pub use error::SbomError;
pub use inventory_json::write_json;
pub use spdx::write_spdx;

/// What an SBOM describes: one container image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbomSubject {
    /// The image's repository name, e.g. `docker.io/library/nginx`.
    pub name: String,
    /// The image's manifest digest, when known; it becomes the version of
    /// the image component and part of its `pkg:oci` purl.
    pub digest: Option<Digest>,
    /// The operating system the image says it is, e.g. `debian 12.11`.
    pub distro: Option<String>,
}

/// How an SBOM is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbomOptions {
    /// The creation time written into the document (converted to UTC).
    pub timestamp: OffsetDateTime,
    /// The version of vexxy named as the generating tool.
    pub tool_version: String,
    /// Whether to list the files each package owns.
    pub include_files: bool,
}
