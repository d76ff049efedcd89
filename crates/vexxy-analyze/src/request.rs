//! What callers ask for: plain typed data, no command lines, no file
//! paths for content (reports, SBOMs and test scripts arrive parsed or as
//! bytes).

use std::{path::PathBuf, time::Duration};

use time::OffsetDateTime;
use vexxy_image::{ImageSource, Platform};
use vexxy_model::{Digest, ExecutionProfile, Product, VexStatement};
use vexxy_static::RuleSet;

use crate::{run_config::RunConfig, AnalyzeError};

/// An image and how to fetch it.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRequest {
    /// The reference as the caller wrote it (for messages and the profile).
    pub reference: String,
    /// Where the image is.
    pub source: ImageSource,
    /// The repository the image is known by where it is scanned
    /// (`registry.example/team/app`): the VEX product's name. Needed for a
    /// local image that carries no name of its own; a registry image is
    /// named by its reference.
    pub name: Option<String>,
    /// The platform to pick from a multi-platform image (default: this host's).
    pub platform: Option<Platform>,
    /// Registries (`host:port`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// How to authenticate to the registry.
    pub credentials: vexxy_registry::Credentials,
    /// Registry connect and read timeout (default 30 s / 120 s).
    pub registry_timeout: Option<Duration>,
    /// The egress policy every connection of a registry pull obeys
    /// (registry, token service, redirects, foreign layer URLs); `None`
    /// contacts whatever the reference and the registry name.
    pub egress: Option<vexxy_egress::EgressPolicy>,
}

impl ImageRequest {
    /// The image a reference names (`oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
    /// `docker-archive:FILE`, `dir:ROOTFS` or a registry reference),
    /// fetched anonymously or with the docker config's credentials.
    pub fn parse(reference: &str) -> Result<Self, AnalyzeError> {
        let source: ImageSource = reference
            .parse()
            .map_err(|e| AnalyzeError::bad_input(format!("image reference {reference:?}: {e}")))?;
        Ok(Self {
            reference: reference.to_owned(),
            source,
            name: None,
            platform: None,
            insecure_registries: Vec::new(),
            credentials: vexxy_registry::Credentials::FromDockerConfig,
            registry_timeout: None,
            egress: None,
        })
    }
}

/// A shell script run against the workload, by content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestScript {
    /// What the profile calls it (the file name the user gave).
    pub name: String,
    /// The script itself (run with `/bin/sh`).
    pub content: Vec<u8>,
}

/// How the image is run, exercised and traced.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSettings {
    /// Exercise window: its length when fixed, its maximum when adaptive.
    pub duration: Duration,
    /// When the window closes: adaptive (the default: once the evidence
    /// stops changing) or fixed at `duration`.
    pub window: vexxy_run::WindowPolicy,
    /// Hard limit on the whole run (at most [`vexxy_run::MAX_TIMEOUT`]).
    pub timeout: Duration,
    /// Replaces the image's ENTRYPOINT and drops its CMD (as
    /// `docker run --entrypoint`).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD (the ENTRYPOINT stays).
    pub cmd: Option<Vec<String>>,
    /// Extra environment for the workload, set over the image's.
    pub env: Vec<(String, String)>,
    /// TCP ports to wait for and probe; empty: the image's exposed ports.
    pub ports: Vec<u16>,
    /// Probe open ports over HTTP.
    pub http_probe: bool,
    /// Run against the workload inside the sandbox's network namespace.
    pub test_script: Option<TestScript>,
    /// Sandbox limits.
    pub limits: vexxy_sandbox::Limits,
    /// The OCI runtime binary.
    pub runtime: PathBuf,
    /// The run config to use instead of the image's (needed for `dir:`
    /// root filesystems, which have none).
    pub image_config: Option<RunConfig>,
    /// Functions to count, `(library path in the image, symbol)`. Only
    /// [`crate::record`] takes them: an analysis chooses its own.
    pub uprobes: Vec<(String, String)>,
}

impl Default for RunSettings {
    /// `vexxy run`'s defaults: an adaptive window of at most 30 s, 300 s
    /// limit, HTTP probing, runc, 1 CPU, 1 GiB, 512 processes.
    fn default() -> Self {
        Self {
            duration: vexxy_run::DEFAULT_DURATION,
            window: vexxy_run::WindowPolicy::default(),
            timeout: vexxy_run::DEFAULT_TIMEOUT,
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
            ports: Vec::new(),
            http_probe: true,
            test_script: None,
            limits: vexxy_sandbox::Limits::default(),
            runtime: PathBuf::from("runc"),
            image_config: None,
            uprobes: Vec::new(),
        }
    }
}

/// How findings are decided and documents written.
#[derive(Clone, Debug)]
pub struct DecideSettings {
    /// Confidence thresholds.
    pub policy: vexxy_decide::Policy,
    /// Author written into the documents.
    pub author: String,
    /// Document timestamp.
    pub timestamp: OffsetDateTime,
    /// Configuration rules besides the built-in ones.
    pub rules: Vec<RuleSet>,
    /// Apply the built-in rules.
    pub builtin_rules: bool,
    /// Statements that already exist; they are respected.
    pub existing: Vec<VexStatement>,
    /// Functions OSV records name as vulnerable
    /// (`ecosystem_specific.imports[].symbols`), per record and affected
    /// package: from an OSV-Scanner report's embedded records and from
    /// `--advisories DIR`. Matched to findings by id or alias and package.
    pub advisory_symbols: Vec<vexxy_ingest::OsvSymbols>,
    /// Other tools' statements that are *not* respected (Kubescape's
    /// `not_affected`): vexxy decides those findings from its own evidence
    /// and records each claim as evidence ([`vexxy_decide::record_claims`]).
    pub claims: Vec<VexStatement>,
}

impl DecideSettings {
    /// Default policy and rules, author `vexxy`, at `timestamp`.
    pub fn at(timestamp: OffsetDateTime) -> Self {
        Self {
            policy: vexxy_decide::Policy::default(),
            author: "vexxy".to_owned(),
            timestamp,
            rules: Vec::new(),
            builtin_rules: true,
            existing: Vec::new(),
            advisory_symbols: Vec::new(),
            claims: Vec::new(),
        }
    }
}

/// What the findings come from.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Findings {
    /// None: the analysis records the profile, runtime SBOM and report only.
    #[default]
    None,
    /// A scanner report.
    Report(vexxy_ingest::Report),
    /// An SBOM (read for validation; the image's own catalog is the
    /// inventory).
    Sbom(vexxy_ingest::Sbom),
}

impl Findings {
    /// The report, when there is one.
    pub fn report(&self) -> Option<&vexxy_ingest::Report> {
        match self {
            Self::Report(r) => Some(r),
            _ => None,
        }
    }
}

/// The whole job: image → catalog → static evidence → traced run →
/// verdicts → artifacts.
#[derive(Clone, Debug)]
pub struct AnalysisRequest {
    /// The image.
    pub image: ImageRequest,
    /// The digest the image must resolve to; a mismatch is bad input,
    /// found before anything runs.
    pub expected_digest: Option<Digest>,
    /// How to run it.
    pub run: RunSettings,
    /// What to decide.
    pub findings: Findings,
    /// How to decide.
    pub decide: DecideSettings,
    /// Reuse a stored profile of the same image digest and run
    /// configuration instead of running again.
    pub reuse_profile: bool,
    /// Decide a report made for another image (another digest, other
    /// package versions) about this one: statements then carry the
    /// versions installed here and the outcome lists what differed.
    /// Without it such a report is bad input.
    pub allow_report_mismatch: bool,
}

/// A new report decided from a stored profile, without a run.
#[derive(Clone, Debug)]
pub struct ReevaluateRequest {
    /// The stored profile.
    pub profile: ExecutionProfile,
    /// Where the profile came from (for messages).
    pub profile_origin: String,
    /// The image the profile was recorded from.
    pub image: ImageRequest,
    /// What to decide.
    pub findings: Findings,
    /// How to decide.
    pub decide: DecideSettings,
    /// As [`AnalysisRequest::allow_report_mismatch`].
    pub allow_report_mismatch: bool,
}

/// One sandboxed, exercised, traced run: the profile only.
#[derive(Clone, Debug)]
pub struct RecordRequest {
    /// The image.
    pub image: ImageRequest,
    /// How to run it.
    pub run: RunSettings,
}

/// Where static evidence comes from, when there is any.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum StaticTarget {
    /// None: only the report (and SBOM) are decided from.
    #[default]
    None,
    /// An unpacked root filesystem.
    Rootfs(PathBuf),
    /// An image, fetched and unpacked.
    Image(Box<ImageRequest>),
}

/// A report decided from static evidence alone (`vexxy vex`).
#[derive(Clone, Debug)]
pub struct StaticRequest {
    /// The findings.
    pub report: vexxy_ingest::Report,
    /// The image's packages, when the caller has an SBOM.
    pub sbom: Option<vexxy_ingest::Sbom>,
    /// The rootfs or image to gather static evidence from.
    pub target: StaticTarget,
    /// The run config to start the ELF graph from, instead of the image's.
    pub run_config: Option<RunConfig>,
    /// The product the statements are about; default the image's, else the
    /// report's.
    pub product: Option<Product>,
    /// Accept a product without a digest.
    pub allow_unpinned_product: bool,
    /// As [`AnalysisRequest::allow_report_mismatch`] (checked when the
    /// target is an image).
    pub allow_report_mismatch: bool,
    /// How to decide.
    pub decide: DecideSettings,
}
