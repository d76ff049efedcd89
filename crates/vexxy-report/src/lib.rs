//! What `vexxy analyze` and `vexxy diff` show people, and the runtime SBOM.
//!
//! - [`markdown`] and [`html`]: the human report of one analysis: image and
//!   digest, triage counts, the traced run, one table row per package and
//!   verdict (affected first, then under_investigation, not_affected,
//!   fixed; most severe first), and phase timings. The HTML document is
//!   self-contained: inline CSS, no scripts, no external resources, and a
//!   Content Security Policy that forbids fetching any.
//! - [`runtime_used_packages`], [`filter_inventory`] and
//!   [`runtime_inventory`]: the packages whose code a traced run used, as
//!   an [`Inventory`](vexxy_model::Inventory) the SBOM writers of
//!   `vexxy-sbom` write unchanged.
//! - [`read_side`], [`DiffSide`], [`diff`] and [`VerdictDiff`]: the
//!   differences between the OpenVEX documents of two analyses, as text,
//!   Markdown or JSON.
//!
//! # Invariants
//! - Every function is pure and deterministic (same input, same bytes)
//!   except [`read_side`], the one that reads a file (bounded to
//!   [`MAX_VEX_BYTES`]).
//! - Every string from the input (image and package names, versions,
//!   vulnerability ids, evidence, paths) is escaped for the output it goes
//!   into, in one place (`escape.rs`); control characters never reach the
//!   output.
//! - Nothing panics on any input; out-of-range indexes are skipped.
//!
//! # Why no template engine
//! The reports are written with `std::fmt::Write` and one escaping function
//! per output language. Both renderers walk the same precomputed view
//! (`report.rs`), so the templates are short and a template engine would
//! add a dependency (and, for `askama`, a build-time macro crate) without
//! removing any logic; escaping stays auditable because every untrusted
//! string passes through `escape::html` or `escape::md_text`/`md_code`,
//! and tests render a package named `<script>`.

mod diff;
mod error;
mod escape;
mod html;
mod markdown;
mod report;
mod sbom;

pub use diff::{
    diff, read_side, DiffEntry, DiffKey, DiffSide, SideInfo, VerdictChange, VerdictDiff,
    VerdictState, MAX_VEX_BYTES, OPENVEX_FILE,
};
pub use error::ReportError;
pub use report::ReportInput;
pub use sbom::{filter_inventory, runtime_inventory, runtime_used_packages, MODULE_EXTENSIONS};

/// The human report as GitHub-flavoured Markdown.
pub fn markdown(input: &ReportInput<'_>) -> String {
    markdown::render(&report::build(input))
}

/// The human report as one self-contained HTML5 document.
pub fn html(input: &ReportInput<'_>) -> String {
    html::render(&report::build(input))
}
