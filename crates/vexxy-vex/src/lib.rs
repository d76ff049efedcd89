//! VEX documents in and out: OpenVEX, CycloneDX VEX and CSAF VEX read into
//! and written from the domain model of `vexxy-model`, plus merging,
//! validation and vexxy's own evidence JSON.
//!
//! # What it does
//! - [`write_openvex`], [`write_cyclonedx`], [`write_csaf`] turn a
//!   [`VexDocument`](vexxy_model::VexDocument) into documents Trivy and
//!   Grype apply; [`write_evidence`] writes the `urn:vexxy:evidence:v1`
//!   JSON that explains every verdict.
//! - [`read_vex`] reads OpenVEX (any 0.x), CycloneDX VEX (1.4–1.6) and CSAF
//!   2.0 VEX, detecting the format.
//! - [`merge`] folds documents to one statement per product × vulnerability.
//! - [`validate_openvex`] checks a document against the official OpenVEX
//!   schema and the scanner conventions.
//!
//! # Invariants
//! - Every writer emits exactly one statement per (product purl,
//!   vulnerability id): same-verdict statements are merged, conflicting ones
//!   are refused with [`VexError::ConflictingVerdicts`].
//! - Writers are deterministic: the same input gives the same bytes; ids not
//!   given by the caller are derived from a SHA-256 of the content.
//! - Timestamps are written as RFC 3339 in UTC with a `Z` suffix.
//! - Product purls carry no qualifiers; package purls are written in VEX
//!   form (no qualifiers, no epoch versions).
//! - A not_affected OpenVEX statement carries a justification or an impact
//!   statement, never both.
//!
//! # What it never does
//! No I/O (callers read and write files), no network, no panics on bad
//! input: every problem is a typed [`VexError`] naming the file and the
//! JSON Pointer involved. Wire types are private; only the domain model and
//! the option/report types below are public.

mod common;
mod csaf;
mod cyclonedx;
mod error;
mod evidence;
mod merge;
mod openvex;
mod read;
mod validate;

pub use csaf::{write_csaf, CsafOptions};
pub use cyclonedx::{write_cyclonedx, BomLink, CycloneDxOptions};
pub use error::VexError;
pub use evidence::{write_evidence, EVIDENCE_SCHEMA, EVIDENCE_SCHEMA_ID};
pub use merge::merge;
pub use openvex::{write_openvex, OpenVexOptions, OPENVEX_CONTEXT};
pub use read::{detect_format, read_vex, VexFormat};
pub use validate::{validate_openvex, Problem, ValidationReport, OPENVEX_SCHEMA};
