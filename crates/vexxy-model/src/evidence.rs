use std::fmt;

/// Where a piece of evidence comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EvidenceSource {
    /// The scanner report itself (package names, upstream, fix data).
    ScannerReport,
    /// An SBOM's package list.
    Sbom,
    /// The package database of a root filesystem (dpkg status, …).
    PackageDb,
    /// The ELF dependency graph of a root filesystem.
    ElfGraph,
    /// A configuration rule, by id.
    ConfigRule(String),
    /// A VEX statement that already existed, by document id.
    ExistingVex(String),
    /// A runtime trace of the image.
    Runtime,
}

impl fmt::Display for EvidenceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ScannerReport => f.write_str("scanner-report"),
            Self::Sbom => f.write_str("sbom"),
            Self::PackageDb => f.write_str("package-db"),
            Self::ElfGraph => f.write_str("elf-graph"),
            Self::ConfigRule(id) => write!(f, "config-rule:{id}"),
            Self::ExistingVex(id) => write!(f, "existing-vex:{id}"),
            Self::Runtime => f.write_str("runtime"),
        }
    }
}

/// One observation behind a verdict: what a provider looked at and what it
/// saw (or did not see).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// The provider that produced it (`elf-reachability`, `kernel-headers`, …).
    pub provider: String,
    pub source: EvidenceSource,
    /// What was (not) observed, one sentence, lowercase start.
    pub observation: String,
    /// The file, package or rule the observation is about, when there is one.
    pub subject: Option<String>,
    /// Further facts as key/value pairs (a load chain, the executables that
    /// could load a library, the matched config line …).
    pub facts: Vec<(String, String)>,
}

impl Evidence {
    pub fn new(provider: &str, source: EvidenceSource, observation: impl Into<String>) -> Self {
        Self {
            provider: provider.to_owned(),
            source,
            observation: observation.into(),
            subject: None,
            facts: Vec::new(),
        }
    }
    #[must_use]
    pub fn about(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
    #[must_use]
    pub fn fact(mut self, key: &str, value: impl Into<String>) -> Self {
        self.facts.push((key.to_owned(), value.into()));
        self
    }
}
