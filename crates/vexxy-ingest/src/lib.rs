//! Scanner reports and SBOMs parsed into the domain model of `vexxy-model`.
//!
//! Accepted inputs (all JSON, recognised by content, never by file name):
//! Grype, Trivy (schema 2), OSV-Scanner reports become a [`Report`] of
//! [`Finding`]s; SPDX 2.2/2.3, CycloneDX 1.4–1.6 and
//! Syft JSON SBOMs become an [`Sbom`] of [`Package`]s
//! with their files when the SBOM lists them. OpenVEX, CycloneDX VEX and CSAF
//! documents are recognised ([`detect`]) but not parsed: [`parse`] and
//! [`read`] answer [`IngestError::IsVex`] so the caller can route the file to
//! the VEX reader.
//!
//! Invariants:
//! - every error names the file it concerns, and errors about content name
//!   the JSON path (`matches[3].artifact.purl`) and, for syntax errors, the
//!   line and column;
//! - [`read`] refuses a file larger than [`Limits::max_bytes`] before parsing
//!   it; detection scans the document once without building a JSON tree;
//! - purls and digests in the output are valid (an invalid one is an error,
//!   an empty string counts as absent); file paths are absolute (`/usr/…`).
//!
//! This crate never panics on input, never touches the network, never writes
//! files and never guesses at findings or packages a document does not state.

mod common;
mod cyclonedx;
mod detect;
mod error;
mod grype;
mod osv;
mod spdx;
mod syft;
mod trivy;

use std::{
    collections::BTreeMap,
    fmt,
    fs::File,
    io::Read,
    path::{Path, PathBuf},
};

pub use error::IngestError;
pub use osv::{advisory_symbols, record_symbols, report_symbols, OsvSymbols};
use vexxy_model::{Digest, Finding, Package};

/// A document format this crate recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// Grype JSON (`grype -o json`).
    Grype,
    /// Trivy JSON, schema version 2 (`trivy image -f json`).
    Trivy,
    /// OSV-Scanner JSON (`osv-scanner --format json`).
    OsvScanner,
    /// SPDX 2.2/2.3 JSON.
    Spdx,
    /// CycloneDX 1.4–1.6 JSON without VEX analysis.
    CycloneDx,
    /// Syft's own JSON (`syft -o syft-json`).
    Syft,
    /// An OpenVEX document (recognised, not parsed here).
    OpenVex,
    /// A CycloneDX document whose vulnerabilities carry `analysis` (recognised, not parsed here).
    CycloneDxVex,
    /// A CSAF document (recognised, not parsed here).
    Csaf,
}

impl Format {
    /// A short lowercase name: `grype`, `trivy`, `osv-scanner`, `spdx`,
    /// `cyclonedx`, `syft`, `openvex`, `cyclonedx-vex`, `csaf`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grype => "grype",
            Self::Trivy => "trivy",
            Self::OsvScanner => "osv-scanner",
            Self::Spdx => "spdx",
            Self::CycloneDx => "cyclonedx",
            Self::Syft => "syft",
            Self::OpenVex => "openvex",
            Self::CycloneDxVex => "cyclonedx-vex",
            Self::Csaf => "csaf",
        }
    }

    /// Whether documents of this format are VEX, which this crate does not parse.
    pub fn is_vex(self) -> bool {
        matches!(self, Self::OpenVex | Self::CycloneDxVex | Self::Csaf)
    }

    /// Whether documents of this format are scanner reports (findings).
    pub fn is_report(self) -> bool {
        matches!(self, Self::Grype | Self::Trivy | Self::OsvScanner)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bounds on what [`read`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_bytes: u64,
}

impl Limits {
    /// The default maximum size: 256 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

/// The findings of one scanner report.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The report's format (Grype, Trivy or OSV-Scanner).
    pub format: Format,
    /// The scanner and its version when the report gives one, e.g. `grype 0.92.2`.
    pub tool: Option<String>,
    /// The scanned image or path as the scanner saw it, e.g. `nginx:latest`.
    pub target: Option<String>,
    /// The image's repository digest, when the report records one.
    pub target_digest: Option<Digest>,
    /// Every digest the report ties its target to.
    pub subject: Subject,
    /// The operating system the scanner detected, e.g. `debian 12.11`.
    pub distro: Option<String>,
    /// Every finding, in document order (not deduplicated).
    pub findings: Vec<Finding>,
    /// The functions the report's own OSV records name
    /// (`ecosystem_specific.imports[].symbols`, OSV-Scanner reports); empty
    /// for other formats.
    pub symbols: Vec<OsvSymbols>,
}

/// Which image a report or SBOM says it describes: the digests it
/// records. Empty when it records none (a directory scan, an SBOM
/// without an image component).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// Manifest or index digests: repository digests, Grype's
    /// `manifestDigest`, the digest in an SBOM's image purl.
    pub manifest_digests: Vec<Digest>,
    /// The image ID (the config blob's digest), when recorded.
    pub image_id: Option<Digest>,
}

impl Subject {
    /// Whether the document records any digest.
    pub fn is_empty(&self) -> bool {
        self.manifest_digests.is_empty() && self.image_id.is_none()
    }

    /// Adds a manifest digest once.
    pub(crate) fn push(&mut self, digest: Digest) {
        if !self.manifest_digests.contains(&digest) {
            self.manifest_digests.push(digest);
        }
    }
}

/// The packages of one SBOM.
#[derive(Clone, Debug, PartialEq)]
pub struct Sbom {
    /// The SBOM's format (SPDX, CycloneDX or Syft).
    pub format: Format,
    /// What the SBOM describes: SPDX document name, CycloneDX
    /// `metadata.component.name`, Syft `source.name`.
    pub name: Option<String>,
    /// CycloneDX `serialNumber` (`urn:uuid:…`); `None` for other formats.
    pub serial_number: Option<String>,
    /// CycloneDX `version`; `None` for other formats.
    pub version: Option<u32>,
    /// The image the SBOM describes, by digest.
    pub subject: Subject,
    /// The packages, in document order; the described image itself (an SPDX
    /// `CONTAINER` package, a CycloneDX `container` component) is left out.
    pub packages: Vec<Package>,
    /// Package purl exactly as written in the document → CycloneDX `bom-ref`
    /// or SPDX `SPDXID` (empty for Syft JSON).
    pub bom_refs: BTreeMap<String, String>,
}

/// A parsed input document.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A scanner report.
    Report(Report),
    /// An SBOM.
    Sbom(Sbom),
}

/// Recognises the format of a JSON document from its content.
///
/// Scans the whole document once (it must be well-formed JSON) without
/// building a tree. Only recognises: version checks (Trivy schema 2,
/// CycloneDX 1.4–1.6, SPDX 2.2/2.3) happen in [`parse`]. Fails with the same errors as [`parse`], naming the file
/// as `-`; use [`parse`] or [`read`] for errors that name a real file.
pub fn detect(bytes: &[u8]) -> Result<Format, IngestError> {
    detect::detect(bytes, Path::new("-")).map(|d| d.format)
}

/// Parses a report or SBOM from memory; `origin` names it in errors.
///
/// VEX documents fail with [`IngestError::IsVex`].
pub fn parse(bytes: &[u8], origin: &Path) -> Result<Input, IngestError> {
    let bytes = common::strip_bom(bytes);
    let detected = detect::detect(bytes, origin)?;
    let format = detected.format;
    if format.is_vex() {
        return Err(IngestError::IsVex {
            path: origin.to_path_buf(),
            format,
        });
    }
    detected.check_version(origin)?;
    match format {
        Format::Grype => grype::parse(bytes, origin).map(Input::Report),
        Format::Trivy => trivy::parse(bytes, origin).map(Input::Report),
        Format::OsvScanner => osv::parse(bytes, origin).map(Input::Report),
        Format::Spdx => spdx::parse(bytes, origin).map(Input::Sbom),
        Format::CycloneDx => cyclonedx::parse(bytes, origin).map(Input::Sbom),
        Format::Syft => syft::parse(bytes, origin).map(Input::Sbom),
        Format::OpenVex | Format::CycloneDxVex | Format::Csaf => Err(IngestError::IsVex {
            path: origin.to_path_buf(),
            format,
        }),
    }
}

/// Reads and parses a file, refusing one larger than `limits.max_bytes`
/// before parsing it.
pub fn read(path: &Path, limits: &Limits) -> Result<Input, IngestError> {
    let io_err = |source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let declared = file.metadata().map_err(io_err)?.len();
    if declared > limits.max_bytes {
        return Err(too_large(path, declared, limits));
    }
    // The declared size may be wrong (pipes, files still growing): bound the
    // read itself too.
    let capacity = usize::try_from(declared).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    file.take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    let got = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if got > limits.max_bytes {
        return Err(too_large(path, got, limits));
    }
    parse(&bytes, path)
}

fn too_large(path: &Path, size: u64, limits: &Limits) -> IngestError {
    IngestError::TooLarge {
        path: PathBuf::from(path),
        size,
        limit: limits.max_bytes,
    }
}
