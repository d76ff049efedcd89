//! Helpers every format shares: time, stable ids, the one-statement-per-key
//! grouping, status notes, and the JSON form of evidence.

use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::{format_description::well_known::Rfc3339, OffsetDateTime, UtcOffset};
use vexxy_model::{
    Confidence, Decider, Digest, Evidence, EvidenceSource, Justification, Product, Purl, Status,
    VexDocument, VexStatement,
};

use crate::{error::ConvertError, VexError};

/// The version vexxy writes into `tooling` / tools / generator entries.
pub(crate) const VEXXY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// RFC 3339 in UTC with a `Z` suffix.
pub(crate) fn rfc3339(ts: OffsetDateTime) -> Result<String, VexError> {
    ts.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|source| VexError::Timestamp {
            value: ts.to_string(),
            source,
        })
}

/// Parses an RFC 3339 timestamp found at `path`.
pub(crate) fn parse_time(value: &str, path: &str) -> Result<OffsetDateTime, ConvertError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|e| ConvertError::new(path, format!("timestamp {value:?} is not rfc 3339: {e}")))
}

/// Parses an optional timestamp.
pub(crate) fn parse_opt_time(
    value: Option<&str>,
    path: &str,
) -> Result<Option<OffsetDateTime>, ConvertError> {
    value.map(|v| parse_time(v, path)).transpose()
}

/// `urn:uuid:` + a version-8 UUID made from the SHA-256 of `domain` and
/// `content`, so the same content always gets the same id.
pub(crate) fn content_urn(domain: &str, content: &[u8]) -> String {
    let hash = content_hash(domain, content);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    format!(
        "urn:uuid:{}",
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    )
}

/// SHA-256 of `domain`, a zero byte, and `content`.
pub(crate) fn content_hash(domain: &str, content: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update([0u8]);
    h.update(content);
    h.finalize().into()
}

/// Deserialises a value, reporting the JSON Pointer of the first mismatch.
pub(crate) fn from_value<T: DeserializeOwned>(
    value: serde_json::Value,
    file: &Path,
) -> Result<T, VexError> {
    serde_path_to_error::deserialize(value).map_err(|e| VexError::Shape {
        file: file.to_path_buf(),
        path: pointer_of(e.path()),
        message: lowercase_first(&e.inner().to_string()),
    })
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Converts a serde path into an RFC 6901 JSON Pointer.
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => out.push_str("/?"),
        }
    }
    out
}

/// A product from a VEX product id: `pkg:oci/<name>@sha256:…` becomes
/// `Product { name, digest }` (the name from `repository_url` when present),
/// anything else becomes the product name. `sha256` (a hex digest from a
/// `hashes` map) fills in a missing OCI digest.
pub(crate) fn product_from_id(id: &str, sha256: Option<&str>) -> Product {
    if id.starts_with("pkg:oci/") {
        if let Ok(p) = id.parse::<Purl>() {
            let name = p
                .qualifier("repository_url")
                .unwrap_or(p.name())
                .trim_end_matches('/')
                .to_owned();
            let digest = p
                .version()
                .and_then(|v| v.parse::<Digest>().ok())
                .or_else(|| sha256.and_then(|h| format!("sha256:{h}").parse::<Digest>().ok()));
            return Product {
                name,
                tag: None,
                digest,
            };
        }
    }
    Product {
        name: id.to_owned(),
        tag: None,
        digest: None,
    }
}

/// The statements of a document folded to one per (product, vulnerability),
/// sorted by vulnerability id then product purl.
#[derive(Debug)]
pub(crate) struct Group<'a> {
    pub(crate) product: &'a Product,
    pub(crate) product_purl: String,
    pub(crate) vulnerability_id: &'a str,
    pub(crate) aliases: Vec<String>,
    pub(crate) description: Option<&'a str>,
    /// VEX-form purls, sorted, without duplicates.
    pub(crate) subcomponents: Vec<Purl>,
    pub(crate) status: Status,
    pub(crate) justification: Option<Justification>,
    pub(crate) impact_statement: Option<String>,
    pub(crate) action_statement: Option<String>,
    pub(crate) notes: Vec<&'a str>,
    /// The lowest confidence of the merged statements.
    pub(crate) confidence: Confidence,
    pub(crate) decided_by: &'a Decider,
    pub(crate) evidence: Vec<&'a Evidence>,
    /// The newest statement timestamp.
    pub(crate) timestamp: Option<OffsetDateTime>,
}

fn verdict_label(status: Status, justification: Option<Justification>) -> String {
    match justification {
        Some(j) => format!("{status}/{j}"),
        None => status.to_string(),
    }
}

fn push_unique(into: &mut Option<String>, text: Option<&str>) {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return;
    };
    match into {
        None => *into = Some(text.to_owned()),
        Some(existing) if existing.split("; ").any(|part| part == text) => {}
        Some(existing) => {
            existing.push_str("; ");
            existing.push_str(text);
        }
    }
}

impl<'a> Group<'a> {
    fn new(s: &'a VexStatement) -> Self {
        let v = &s.verdict;
        let mut g = Self {
            product: &s.product,
            product_purl: s.product.oci_purl(),
            vulnerability_id: &s.vulnerability_id,
            aliases: Vec::new(),
            description: s.description.as_deref(),
            subcomponents: Vec::new(),
            status: v.status(),
            justification: v.justification(),
            impact_statement: v.impact_statement().map(str::to_owned),
            action_statement: v.action_statement().map(str::to_owned),
            notes: Vec::new(),
            confidence: v.confidence,
            decided_by: &v.decided_by,
            evidence: Vec::new(),
            timestamp: s.timestamp,
        };
        g.absorb_parts(s);
        g
    }

    fn absorb_parts(&mut self, s: &'a VexStatement) {
        self.aliases.extend(
            s.aliases
                .iter()
                .filter(|a| **a != s.vulnerability_id)
                .cloned(),
        );
        self.subcomponents
            .extend(s.subcomponents.iter().map(Purl::vex_form));
        let notes = s.verdict.notes.trim();
        if !notes.is_empty() && !self.notes.contains(&notes) {
            self.notes.push(notes);
        }
        for e in &s.verdict.evidence {
            if !self.evidence.contains(&e) {
                self.evidence.push(e);
            }
        }
    }

    fn absorb(&mut self, s: &'a VexStatement) -> Result<(), VexError> {
        let v = &s.verdict;
        if v.status() != self.status || v.justification() != self.justification {
            return Err(VexError::ConflictingVerdicts {
                product: self.product_purl.clone(),
                vulnerability: self.vulnerability_id.to_owned(),
                first: verdict_label(self.status, self.justification),
                second: verdict_label(v.status(), v.justification()),
            });
        }
        push_unique(&mut self.impact_statement, v.impact_statement());
        push_unique(&mut self.action_statement, v.action_statement());
        if self.description.is_none() {
            self.description = s.description.as_deref();
        }
        if v.confidence.get() < self.confidence.get() {
            self.confidence = v.confidence;
        }
        self.timestamp = match (self.timestamp, s.timestamp) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.absorb_parts(s);
        Ok(())
    }

    /// `status_notes`: the verdict's notes, the impact statement when a
    /// justification already fills the reason, the confidence and a short
    /// evidence summary.
    pub(crate) fn status_notes(&self) -> String {
        let mut parts: Vec<String> = self.notes.iter().map(|n| (*n).to_owned()).collect();
        if self.justification.is_some() {
            if let Some(i) = &self.impact_statement {
                parts.push(format!("impact: {i}"));
            }
        }
        // An open question has no confidence to speak of.
        if self.status != Status::UnderInvestigation {
            parts.push(format!("confidence {:.2}", self.confidence.rounded()));
        }
        if !self.evidence.is_empty() {
            let mut seen: Vec<String> = Vec::new();
            for e in &self.evidence {
                let item = format!("{} ({})", e.provider, e.source);
                if !seen.contains(&item) {
                    seen.push(item);
                }
            }
            parts.push(format!("evidence: {}", seen.join(", ")));
        }
        parts.join("; ")
    }

    /// The embedded-evidence object of this group.
    pub(crate) fn evidence_json(&self) -> EmbeddedEvidence {
        EmbeddedEvidence {
            confidence: self.confidence.rounded(),
            decided_by: DeciderJson::from(self.decided_by),
            evidence: self
                .evidence
                .iter()
                .map(|e| EvidenceJson::from(*e))
                .collect(),
        }
    }
}

/// Folds a document's statements to one per (product, vulnerability):
/// subcomponents, aliases, notes and evidence of statements with the same
/// key and the same status and justification are merged; a key with two
/// different verdicts is refused.
pub(crate) fn group_statements(doc: &VexDocument) -> Result<Vec<Group<'_>>, VexError> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut index: std::collections::HashMap<(String, &str), usize> =
        std::collections::HashMap::new();
    // Fold in a canonical order so the result does not depend on the order
    // statements were handed in.
    let mut ordered: Vec<(String, Vec<String>, &VexStatement)> = doc
        .statements
        .iter()
        .map(|s| {
            (
                s.product.oci_purl(),
                s.subcomponents
                    .iter()
                    .map(|p| p.vex_form().to_string())
                    .collect(),
                s,
            )
        })
        .collect();
    ordered.sort_by(|a, b| {
        (
            a.2.vulnerability_id.as_str(),
            &a.0,
            &a.1,
            a.2.verdict.status(),
            a.2.verdict.justification(),
        )
            .cmp(&(
                b.2.vulnerability_id.as_str(),
                &b.0,
                &b.1,
                b.2.verdict.status(),
                b.2.verdict.justification(),
            ))
    });
    for (purl, _, s) in ordered {
        let key = (purl, s.vulnerability_id.as_str());
        match index.get(&key) {
            Some(&i) => groups[i].absorb(s)?,
            None => {
                index.insert(key, groups.len());
                groups.push(Group::new(s));
            }
        }
    }
    for g in &mut groups {
        g.aliases.sort();
        g.aliases.dedup();
        g.subcomponents.sort_by_key(ToString::to_string);
        g.subcomponents.dedup();
    }
    groups.sort_by(|a, b| {
        a.vulnerability_id
            .cmp(b.vulnerability_id)
            .then_with(|| a.product_purl.cmp(&b.product_purl))
    });
    Ok(groups)
}

/// `vexxy_evidence`: why vexxy reached a verdict. Outside every official
/// schema; see `docs/vex-outputs.md`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmbeddedEvidence {
    pub(crate) confidence: f64,
    pub(crate) decided_by: DeciderJson,
    pub(crate) evidence: Vec<EvidenceJson>,
}

impl EmbeddedEvidence {
    /// The confidence, refusing values outside `0..=1`.
    pub(crate) fn confidence(&self, path: &str) -> Result<Confidence, ConvertError> {
        Confidence::new(self.confidence)
            .map_err(|e| ConvertError::new(format!("{path}/confidence"), e.to_string()))
    }

    /// The evidence in domain form.
    pub(crate) fn evidence(&self) -> Vec<Evidence> {
        self.evidence.iter().map(Evidence::from).collect()
    }
}

/// Who decided, tagged by kind.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum DeciderJson {
    Automated { provider: String },
    Human { author: String },
    Imported { author: String },
}

impl From<&Decider> for DeciderJson {
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

/// One evidence item in JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvidenceJson {
    pub(crate) provider: String,
    pub(crate) source: String,
    pub(crate) observation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<String>,
    #[serde(default)]
    pub(crate) facts: serde_json::Map<String, serde_json::Value>,
}

impl From<&Evidence> for EvidenceJson {
    fn from(e: &Evidence) -> Self {
        Self {
            provider: e.provider.clone(),
            source: e.source.to_string(),
            observation: e.observation.clone(),
            subject: e.subject.clone(),
            facts: e
                .facts
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        }
    }
}

impl From<&EvidenceJson> for Evidence {
    fn from(e: &EvidenceJson) -> Self {
        Self {
            provider: e.provider.clone(),
            source: parse_source(&e.source),
            observation: e.observation.clone(),
            subject: e.subject.clone(),
            facts: e
                .facts
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        }
    }
}

/// The inverse of `EvidenceSource`'s `Display`; an unknown word is kept as
/// a configuration rule id so nothing is lost.
pub(crate) fn parse_source(s: &str) -> EvidenceSource {
    match s {
        "scanner-report" => EvidenceSource::ScannerReport,
        "sbom" => EvidenceSource::Sbom,
        "package-db" => EvidenceSource::PackageDb,
        "elf-graph" => EvidenceSource::ElfGraph,
        "runtime" => EvidenceSource::Runtime,
        other => match (
            other.strip_prefix("config-rule:"),
            other.strip_prefix("existing-vex:"),
        ) {
            (Some(id), _) => EvidenceSource::ConfigRule(id.to_owned()),
            (_, Some(id)) => EvidenceSource::ExistingVex(id.to_owned()),
            _ => EvidenceSource::ConfigRule(other.to_owned()),
        },
    }
}

/// The decider of statements read from a document: `Human` when the
/// document names no generating tool, `Imported` otherwise.
pub(crate) fn reader_decider(author: &str, has_tooling: bool) -> Decider {
    if has_tooling {
        Decider::Imported {
            author: author.to_owned(),
        }
    } else {
        Decider::Human {
            author: author.to_owned(),
        }
    }
}

/// Serialises our own output, pretty-printed with a final newline.
pub(crate) fn to_pretty<T: Serialize>(value: &T, format: &'static str) -> Result<String, VexError> {
    let mut s = serde_json::to_string_pretty(value)
        .map_err(|source| VexError::Encode { format, source })?;
    s.push('\n');
    Ok(s)
}

/// Serialises compactly (for hashing and one-line output).
pub(crate) fn to_compact<T: Serialize>(
    value: &T,
    format: &'static str,
) -> Result<String, VexError> {
    serde_json::to_string(value).map_err(|source| VexError::Encode { format, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_sources_read_back_as_written() {
        for source in [
            EvidenceSource::ScannerReport,
            EvidenceSource::Sbom,
            EvidenceSource::PackageDb,
            EvidenceSource::ElfGraph,
            EvidenceSource::Runtime,
            EvidenceSource::ConfigRule("nginx-geoip-not-loaded".into()),
            EvidenceSource::ExistingVex("https://example.com/vex/1".into()),
        ] {
            assert_eq!(parse_source(&source.to_string()), source);
        }
        assert_eq!(EvidenceSource::Runtime.to_string(), "runtime");
    }
}
