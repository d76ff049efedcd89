//! The plain domain model of vexxy.
//!
//! Everything else in the workspace speaks these types. They know nothing of
//! wire formats (no serde here: every format lives in `vexxy-ingest` or
//! `vexxy-vex` and converts with `TryFrom`) and do no I/O.
//!
//! Invariants the types enforce by construction:
//! - a [`Confidence`] is a finite number in `0.0..=1.0`;
//! - a [`Digest`] is `sha256:` followed by 64 lowercase hex digits;
//! - a [`Verdict`] with status `not_affected` carries a justification or an
//!   impact statement, and one with status `affected` carries an action
//!   statement (see [`Verdict::new`]).

mod evidence;
mod facts;
mod finding;
mod functions;
mod inventory;
mod package;
mod platform;
mod product;
mod profile;
mod purl;
mod verdict;
mod vex;

pub use evidence::{Evidence, EvidenceSource};
pub use facts::{
    ElfReach, ImageLinks, LoaderVerdict, PackageReach, ReachFacts, Resolved, RuleOutcome,
    SecurityData, Selector,
};
pub use finding::{Cvss, Finding, FixState, PackageRef, Severity, Vulnerability};
pub use functions::{FunctionResolution, FunctionSite, NamedFunctions, SymbolOrigin};
pub use inventory::{Inventory, InventorySource};
pub use package::{Ecosystem, Package, SourcePackage};
pub use platform::{Platform, PlatformError};
pub use product::{check_repository, Digest, DigestError, Product, RepositoryError};
pub use profile::{
    CommandOverride, EvidenceSpan, ExecutedBinary, ExecutionProfile, ExerciseStats, ExerciseWindow,
    FailedOpen, FileAccess, FunctionCalls, LoadedLibrary, LostEvents, NetworkUse, ProbeReach,
    ProbeRecord, ProcessRecord, ProfileSource, RunInfo, RunOutcome, ScriptOutcome, SocketAddress,
    SocketOp, TracerInfo, WindowEnd, WindowMode,
};
pub use purl::{Purl, PurlError};
pub use verdict::{
    Confidence, ConfidenceError, Decider, Justification, Status, Verdict, VerdictError,
};
pub use vex::{VexDocument, VexStatement};
