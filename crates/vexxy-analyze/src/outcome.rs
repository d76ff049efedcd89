//! What an analysis produces: typed values and the rendered artifacts,
//! each under its [`ArtifactKind`] — the one owner of artifact file names,
//! media types and link names.

use std::{collections::BTreeMap, fmt};

use vexxy_model::{ExecutionProfile, Product, Status};

use crate::Timings;

/// One rendered output of an analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArtifactKind {
    /// OpenVEX 0.2.0 (what Trivy and Grype apply).
    OpenVex,
    /// CycloneDX 1.6 VEX.
    CycloneDxVex,
    /// CSAF 2.0 VEX.
    Csaf,
    /// The evidence behind every verdict (docs/evidence-schema.md).
    Evidence,
    /// The execution profile of the traced run.
    Profile,
    /// CycloneDX SBOM of the packages whose code ran.
    RuntimeSbom,
    /// The report for people, Markdown.
    ReportMarkdown,
    /// The report for people, self-contained HTML.
    ReportHtml,
}

impl ArtifactKind {
    /// Every kind, in the order outputs are listed.
    pub const ALL: [Self; 8] = [
        Self::OpenVex,
        Self::CycloneDxVex,
        Self::Csaf,
        Self::Evidence,
        Self::Profile,
        Self::RuntimeSbom,
        Self::ReportMarkdown,
        Self::ReportHtml,
    ];

    /// The file name in an output directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::OpenVex => vexxy_report::OPENVEX_FILE,
            Self::CycloneDxVex => "vex.cdx.json",
            Self::Csaf => "vex.csaf.json",
            Self::Evidence => "evidence.json",
            Self::Profile => "profile.json",
            Self::RuntimeSbom => "sbom.runtime.cdx.json",
            Self::ReportMarkdown => "report.md",
            Self::ReportHtml => "report.html",
        }
    }

    /// The name an API links it under.
    pub fn link_name(self) -> &'static str {
        match self {
            Self::OpenVex => "vex_openvex",
            Self::CycloneDxVex => "vex_cyclonedx",
            Self::Csaf => "vex_csaf",
            Self::Evidence => "evidence",
            Self::Profile => "profile",
            Self::RuntimeSbom => "sbom",
            Self::ReportMarkdown => "report_markdown",
            Self::ReportHtml => "report_html",
        }
    }

    /// The media type it is served with.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::ReportMarkdown => "text/markdown; charset=utf-8",
            Self::ReportHtml => "text/html; charset=utf-8",
            _ => "application/json",
        }
    }

    /// The kind a file name or link name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.file_name() == name || k.link_name() == name)
    }

    /// Whether it is a VEX document (written only when there are findings).
    pub fn is_vex(self) -> bool {
        matches!(
            self,
            Self::OpenVex | Self::CycloneDxVex | Self::Csaf | Self::Evidence
        )
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// Rendered artifacts by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Artifacts(BTreeMap<ArtifactKind, Vec<u8>>);

impl Artifacts {
    /// The bytes of one artifact, when it was produced.
    pub fn get(&self, kind: ArtifactKind) -> Option<&[u8]> {
        self.0.get(&kind).map(Vec::as_slice)
    }

    /// Every artifact produced, in [`ArtifactKind`] order.
    pub fn iter(&self) -> impl Iterator<Item = (ArtifactKind, &[u8])> {
        self.0.iter().map(|(k, v)| (*k, v.as_slice()))
    }

    /// How many were produced.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds (or replaces) one.
    pub fn insert(&mut self, kind: ArtifactKind, bytes: Vec<u8>) {
        self.0.insert(kind, bytes);
    }
}

impl IntoIterator for Artifacts {
    type Item = (ArtifactKind, Vec<u8>);
    type IntoIter = std::collections::btree_map::IntoIter<ArtifactKind, Vec<u8>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// How the profile an analysis decided from was obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProfileSource {
    /// This analysis ran the image.
    Recorded {
        /// Whether it was stored for reuse (a clean, complete run).
        stored: bool,
    },
    /// A stored profile of the same digest and run configuration.
    Stored,
    /// Given by the caller (re-evaluation).
    Given,
}

/// The result of [`crate::analyze`] and [`crate::reevaluate`].
#[derive(Clone, Debug)]
pub struct AnalysisOutcome {
    /// The image, pinned by digest.
    pub product: Product,
    /// The execution profile decided from.
    pub profile: ExecutionProfile,
    /// Where it came from.
    pub profile_source: ProfileSource,
    /// The findings decided (after any version rewrite the report check
    /// allowed), in the order of [`vexxy_decide::Outcome::decisions`]
    /// (each decision's `finding` indexes this list).
    pub findings: Vec<vexxy_model::Finding>,
    /// Every decision, the statements and the triage summary.
    pub decision: vexxy_decide::Outcome,
    /// The rendered outputs.
    pub artifacts: Artifacts,
    /// Packages in the image.
    pub packages: usize,
    /// Packages whose code the run used.
    pub used_packages: usize,
    /// How the report differed from the image, when it was made for
    /// another one and that was allowed.
    pub report_mismatch: Option<crate::ReportMismatch>,
    /// How long each phase took.
    pub timings: Timings,
}

impl AnalysisOutcome {
    /// Statements with this status.
    pub fn count(&self, status: Status) -> usize {
        self.decision
            .statements
            .iter()
            .filter(|s| s.verdict.status() == status)
            .count()
    }

    /// Findings left under investigation.
    pub fn undecided(&self) -> usize {
        self.decision
            .summary
            .by_status
            .get(&Status::UnderInvestigation)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in ArtifactKind::ALL {
            assert!(seen.insert(kind.file_name()), "{kind:?}");
            assert!(seen.insert(kind.link_name()), "{kind:?}");
            assert_eq!(ArtifactKind::from_name(kind.file_name()), Some(kind));
            assert_eq!(ArtifactKind::from_name(kind.link_name()), Some(kind));
        }
        assert_eq!(ArtifactKind::from_name("../etc/passwd"), None);
    }
}
