//! The human review loop: what an analysis decided about each finding, why
//! a person should look at it, what they decided, and the OpenVEX document
//! that carries both.
//!
//! # What it does
//! - [`StatementRecord`]: one finding's automated statement (vulnerability
//!   × package of one image) with its verdict and evidence, built from a
//!   decision engine outcome ([`StatementRecord::from_outcome`]) and stored
//!   as JSON ([`StatementRecord::to_json`] / [`StatementRecord::from_json`]).
//!   Its [`evidence_fingerprint`](StatementRecord::evidence_fingerprint)
//!   says what the verdict rests on, leaving out what differs between two
//!   digests of one repository, so a decision about one digest can be
//!   offered for the next.
//! - [`ReviewSettings`] and [`ReviewReason`]: which records need a person
//!   ([`StatementRecord::review_reason`]).
//! - [`RawDecision`] → [`DecisionInput`]: a reviewer's decision as a
//!   request carries it, checked field by field (`TryFrom`), refusing every
//!   combination OpenVEX forbids; [`effective`] and [`HumanStatement`]: the
//!   verdict a decision puts in place; [`human_notes`]: how it is explained.
//! - [`issue`]: the OpenVEX 0.2.0 document of an image from its records and
//!   human statements, aggregated per vulnerability exactly as
//!   [`vexxy_decide::statements`] does; [`compare`]: the differences between
//!   two issued documents, as `vexxy diff` reports them.
//!
//! # Invariants
//! - **No I/O**: no files, no database, no network; values in, values out.
//! - A human verdict always replaces the automated one for its
//!   vulnerability × package (and only that one); the statement it ends up
//!   in names the reviewer, the date and the reason in `status_notes`.
//! - Documents are deterministic: the same records, human statements and
//!   issue settings give the same bytes, whatever order the records and
//!   human statements come in. An issued document always passes the
//!   official OpenVEX schema.
//! - A [`DecisionInput`] can only hold what a valid VEX statement can say;
//!   every refusal names the request field at fault (`<field>: <message>`).
//! - The record's JSON form is private and versioned; a record written by
//!   this version reads back equal.

mod decision;
mod issue;
mod record;
mod settings;
mod wire;

pub use decision::{
    effective, human_notes, DecisionAction, DecisionInput, HumanStatement, RawDecision,
    MAX_TEXT_CHARS,
};
pub use issue::{compare, compare_counting, issue, Issue, TOOL};
pub use record::{package_key, StatementRecord};
pub use settings::{ReviewReason, ReviewSettings};

/// Everything that can go wrong in this crate. Messages are lowercase and
/// name the field, record path or document involved.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// A request field is missing, malformed or not allowed with the others
    /// (`<field>: <message>`).
    #[error("{field}: {message}")]
    Field {
        /// The request field, as the request spells it (`status`, `reason`, …).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A stored record does not read back.
    #[error("statement record: {path}: {message}")]
    Record {
        /// Where in the record (`verdict.evidence[0].source`), `.` for the whole.
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// An image without findings has no document: OpenVEX needs a statement.
    #[error("nothing to issue: no statement records")]
    NothingToIssue,
    /// A document could not be written or read.
    #[error("{which} document: {source}")]
    Vex {
        /// `issued`, `old` or `new`.
        which: &'static str,
        /// What the VEX crate said.
        source: vexxy_vex::VexError,
    },
    /// The issued document fails the official OpenVEX schema (a bug of ours).
    #[error("the issued document fails the openvex schema: {problems}")]
    Invalid {
        /// The problems, `; `-separated.
        problems: String,
    },
}

impl ReviewError {
    pub(crate) fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::Field {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn record(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Record {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// RFC 3339 in UTC, whole seconds (what status notes and ids show).
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
