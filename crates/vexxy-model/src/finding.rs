use crate::{Ecosystem, Purl};

/// Severity as scanners report it, normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Severity {
    #[default]
    Unknown,
    Negligible,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Case-insensitive parse of the words scanners use; anything else is `Unknown`.
    pub fn from_word(word: &str) -> Self {
        match word.to_ascii_lowercase().as_str() {
            "negligible" | "none" | "info" | "informational" => Self::Negligible,
            "low" => Self::Low,
            "medium" | "moderate" => Self::Medium,
            "high" | "important" => Self::High,
            "critical" => Self::Critical,
            _ => Self::Unknown,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Negligible => "negligible",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// One CVSS rating.
#[derive(Clone, Debug, PartialEq)]
pub struct Cvss {
    pub source: Option<String>,
    pub version: Option<String>,
    pub vector: Option<String>,
    pub base_score: Option<f64>,
}

/// A vulnerability as a report describes it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Vulnerability {
    /// The primary id (`CVE-2023-44487`, `GHSA-…`, `DSA-…`).
    pub id: String,
    /// Other ids of the same vulnerability, without `id` itself.
    pub aliases: Vec<String>,
    pub severity: Severity,
    pub cvss: Vec<Cvss>,
    pub description: Option<String>,
    /// Where the scanner's record came from (a URL or database name).
    pub data_source: Option<String>,
    pub urls: Vec<String>,
    /// The EPSS probability of exploitation in the next 30 days
    /// (`0.0..=1.0`), when the report gives one.
    pub epss: Option<f64>,
    /// Whether the vulnerability is on a known-exploited list (CISA KEV).
    pub known_exploited: bool,
}

/// Whether the scanner knows of a fix.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum FixState {
    Fixed,
    NotFixed,
    WontFix,
    #[default]
    Unknown,
}

/// The package a finding is reported against, as the report names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageRef {
    pub name: String,
    pub version: String,
    pub ecosystem: Ecosystem,
    pub purl: Option<Purl>,
    /// Source (upstream) package name when the report gives one.
    pub source_name: Option<String>,
}

/// One scanner finding: a vulnerability matched to a package.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub vulnerability: Vulnerability,
    pub package: PackageRef,
    pub fixed_versions: Vec<String>,
    pub fix_state: FixState,
    /// The scanner that reported it, e.g. `grype 0.92.2`.
    pub reported_by: Option<String>,
}

impl Finding {
    /// Every id this finding is known by, primary first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.vulnerability.id.as_str())
            .chain(self.vulnerability.aliases.iter().map(String::as_str))
    }
}
