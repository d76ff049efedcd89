//! The stored JSON form of a [`StatementRecord`]: private serde types that
//! convert with `TryFrom`, so the model never sees serde.

use serde::{Deserialize, Serialize};
use vexxy_model::{
    Confidence, Decider, Ecosystem, Evidence, EvidenceSource, FixState, Justification, PackageRef,
    Purl, Severity, Status, Verdict,
};

use crate::{record::ecosystem_word, ReviewError, StatementRecord};

/// The version of this form; bumped when a field changes meaning.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    format: u32,
    vulnerability_id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    package: RawPackage,
    package_key: String,
    severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    epss: Option<f64>,
    #[serde(default)]
    known_exploited: bool,
    fix_state: String,
    #[serde(default)]
    fixed_versions: Vec<String>,
    verdict: RawVerdict,
    evidence_fingerprint: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackage {
    name: String,
    version: String,
    /// The purl type of a known ecosystem, `other:<word>` for the rest.
    ecosystem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_name: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerdict {
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    impact_statement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action_statement: Option<String>,
    confidence: f64,
    #[serde(default)]
    notes: String,
    decided_by: RawDecider,
    #[serde(default)]
    evidence: Vec<RawEvidence>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RawDecider {
    Automated { provider: String },
    Human { author: String },
    Imported { author: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvidence {
    provider: String,
    source: RawSource,
    observation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    /// `[key, value]` pairs in order (keys may repeat).
    #[serde(default)]
    facts: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RawSource {
    ScannerReport,
    Sbom,
    PackageDb,
    ElfGraph,
    ConfigRule { id: String },
    ExistingVex { id: String },
    Runtime,
}

fn severity_word(s: Severity) -> &'static str {
    s.as_str()
}

fn severity_of(word: &str) -> Option<Severity> {
    [
        Severity::Unknown,
        Severity::Negligible,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]
    .into_iter()
    .find(|s| s.as_str() == word)
}

fn fix_state_word(f: &FixState) -> &'static str {
    match f {
        FixState::Fixed => "fixed",
        FixState::NotFixed => "not_fixed",
        FixState::WontFix => "wont_fix",
        FixState::Unknown => "unknown",
    }
}

fn fix_state_of(word: &str) -> Option<FixState> {
    Some(match word {
        "fixed" => FixState::Fixed,
        "not_fixed" => FixState::NotFixed,
        "wont_fix" => FixState::WontFix,
        "unknown" => FixState::Unknown,
        _ => return None,
    })
}

fn ecosystem_out(e: &Ecosystem) -> String {
    match e {
        Ecosystem::Other(word) => format!("other:{word}"),
        known => ecosystem_word(known).to_owned(),
    }
}

fn ecosystem_in(word: &str) -> Option<Ecosystem> {
    if let Some(other) = word.strip_prefix("other:") {
        return Some(Ecosystem::Other(other.to_owned()));
    }
    match Ecosystem::from_purl_type(word) {
        Ecosystem::Other(_) => None,
        known => Some(known),
    }
}

impl From<&Decider> for RawDecider {
    fn from(d: &Decider) -> Self {
        match d {
            Decider::Automated { provider } => Self::Automated {
                provider: provider.clone(),
            },
            Decider::Human { author } => Self::Human {
                author: author.clone(),
            },
            Decider::Imported { author } => Self::Imported {
                author: author.clone(),
            },
        }
    }
}

impl From<RawDecider> for Decider {
    fn from(d: RawDecider) -> Self {
        match d {
            RawDecider::Automated { provider } => Self::Automated { provider },
            RawDecider::Human { author } => Self::Human { author },
            RawDecider::Imported { author } => Self::Imported { author },
        }
    }
}

impl From<&EvidenceSource> for RawSource {
    fn from(s: &EvidenceSource) -> Self {
        match s {
            EvidenceSource::ScannerReport => Self::ScannerReport,
            EvidenceSource::Sbom => Self::Sbom,
            EvidenceSource::PackageDb => Self::PackageDb,
            EvidenceSource::ElfGraph => Self::ElfGraph,
            EvidenceSource::ConfigRule(id) => Self::ConfigRule { id: id.clone() },
            EvidenceSource::ExistingVex(id) => Self::ExistingVex { id: id.clone() },
            EvidenceSource::Runtime => Self::Runtime,
        }
    }
}

impl From<RawSource> for EvidenceSource {
    fn from(s: RawSource) -> Self {
        match s {
            RawSource::ScannerReport => Self::ScannerReport,
            RawSource::Sbom => Self::Sbom,
            RawSource::PackageDb => Self::PackageDb,
            RawSource::ElfGraph => Self::ElfGraph,
            RawSource::ConfigRule { id } => Self::ConfigRule(id),
            RawSource::ExistingVex { id } => Self::ExistingVex(id),
            RawSource::Runtime => Self::Runtime,
        }
    }
}

impl From<&Evidence> for RawEvidence {
    fn from(e: &Evidence) -> Self {
        Self {
            provider: e.provider.clone(),
            source: RawSource::from(&e.source),
            observation: e.observation.clone(),
            subject: e.subject.clone(),
            facts: e.facts.clone(),
        }
    }
}

impl From<RawEvidence> for Evidence {
    fn from(e: RawEvidence) -> Self {
        Self {
            provider: e.provider,
            source: e.source.into(),
            observation: e.observation,
            subject: e.subject,
            facts: e.facts,
        }
    }
}

impl From<&StatementRecord> for RawRecord {
    fn from(r: &StatementRecord) -> Self {
        let v = &r.verdict;
        Self {
            format: FORMAT,
            vulnerability_id: r.vulnerability_id.clone(),
            aliases: r.aliases.clone(),
            description: r.description.clone(),
            package: RawPackage {
                name: r.package.name.clone(),
                version: r.package.version.clone(),
                ecosystem: ecosystem_out(&r.package.ecosystem),
                purl: r.package.purl.as_ref().map(ToString::to_string),
                source_name: r.package.source_name.clone(),
            },
            package_key: r.package_key.clone(),
            severity: severity_word(r.severity).to_owned(),
            epss: r.epss,
            known_exploited: r.known_exploited,
            fix_state: fix_state_word(&r.fix_state).to_owned(),
            fixed_versions: r.fixed_versions.clone(),
            verdict: RawVerdict {
                status: v.status().as_str().to_owned(),
                justification: v.justification().map(|j| j.as_str().to_owned()),
                impact_statement: v.impact_statement().map(str::to_owned),
                action_statement: v.action_statement().map(str::to_owned),
                confidence: v.confidence.get(),
                notes: v.notes.clone(),
                decided_by: RawDecider::from(&v.decided_by),
                evidence: v.evidence.iter().map(RawEvidence::from).collect(),
            },
            evidence_fingerprint: r.evidence_fingerprint.clone(),
        }
    }
}

impl TryFrom<RawRecord> for StatementRecord {
    type Error = ReviewError;

    fn try_from(raw: RawRecord) -> Result<Self, Self::Error> {
        if raw.format != FORMAT {
            return Err(ReviewError::record(
                "format",
                format!("format {} is not {FORMAT}", raw.format),
            ));
        }
        if raw.vulnerability_id.trim().is_empty() {
            return Err(ReviewError::record("vulnerability_id", "is empty"));
        }
        if raw.package_key.trim().is_empty() {
            return Err(ReviewError::record("package_key", "is empty"));
        }
        let purl = raw
            .package
            .purl
            .as_deref()
            .map(str::parse::<Purl>)
            .transpose()
            .map_err(|e| ReviewError::record("package.purl", e.to_string()))?;
        let ecosystem = ecosystem_in(&raw.package.ecosystem).ok_or_else(|| {
            ReviewError::record(
                "package.ecosystem",
                format!("unknown ecosystem {:?}", raw.package.ecosystem),
            )
        })?;
        let severity = severity_of(&raw.severity).ok_or_else(|| {
            ReviewError::record("severity", format!("unknown severity {:?}", raw.severity))
        })?;
        if let Some(e) = raw.epss {
            if !(e.is_finite() && (0.0..=1.0).contains(&e)) {
                return Err(ReviewError::record("epss", format!("{e} is outside 0..=1")));
            }
        }
        let fix_state = fix_state_of(&raw.fix_state).ok_or_else(|| {
            ReviewError::record(
                "fix_state",
                format!("unknown fix state {:?}", raw.fix_state),
            )
        })?;
        let fp = &raw.evidence_fingerprint;
        let fp_ok = fp.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if !fp_ok {
            return Err(ReviewError::record(
                "evidence_fingerprint",
                format!("{fp:?} is not sha256: and 64 lowercase hex digits"),
            ));
        }
        let v = raw.verdict;
        let status = Status::from_openvex(&v.status).ok_or_else(|| {
            ReviewError::record("verdict.status", format!("unknown status {:?}", v.status))
        })?;
        let justification = v
            .justification
            .as_deref()
            .map(|j| {
                Justification::from_openvex(j).ok_or_else(|| {
                    ReviewError::record(
                        "verdict.justification",
                        format!("unknown justification {j:?}"),
                    )
                })
            })
            .transpose()?;
        let confidence = Confidence::new(v.confidence)
            .map_err(|e| ReviewError::record("verdict.confidence", e.to_string()))?;
        let mut verdict = Verdict::new(
            status,
            justification,
            v.impact_statement,
            v.action_statement,
            v.decided_by.into(),
        )
        .map_err(|e| ReviewError::record("verdict", e.to_string()))?
        .with_confidence(confidence)
        .with_notes(v.notes);
        verdict.evidence = v.evidence.into_iter().map(Evidence::from).collect();
        Ok(StatementRecord {
            vulnerability_id: raw.vulnerability_id,
            aliases: raw.aliases,
            description: raw.description,
            package: PackageRef {
                name: raw.package.name,
                version: raw.package.version,
                ecosystem,
                purl,
                source_name: raw.package.source_name,
            },
            package_key: raw.package_key,
            severity,
            epss: raw.epss,
            known_exploited: raw.known_exploited,
            fix_state,
            fixed_versions: raw.fixed_versions,
            verdict,
            evidence_fingerprint: raw.evidence_fingerprint,
        })
    }
}

pub(crate) fn to_json(r: &StatementRecord) -> String {
    // Cannot fail: every key is a string and every number finite (the
    // confidence by construction; a non-finite EPSS becomes null).
    serde_json::to_string(&RawRecord::from(r)).unwrap_or_default()
}

pub(crate) fn from_json(s: &str) -> Result<StatementRecord, ReviewError> {
    let mut de = serde_json::Deserializer::from_str(s);
    let raw: RawRecord = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ReviewError::record(path, e.into_inner().to_string())
    })?;
    de.end()
        .map_err(|e| ReviewError::record(".", e.to_string()))?;
    StatementRecord::try_from(raw)
}
