//! One finding's automated statement, as the review loop stores it.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};
use vexxy_decide::Decision;
use vexxy_model::{
    Ecosystem, Evidence, EvidenceSource, Finding, FixState, PackageRef, Severity, Status, Verdict,
    Vulnerability,
};

use crate::{ReviewError, ReviewReason, ReviewSettings};

/// One finding's automated statement: a vulnerability in one package of one
/// image, with the verdict the engine reached and the evidence behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct StatementRecord {
    /// The finding's primary id (`CVE-…`, `GHSA-…`).
    pub vulnerability_id: String,
    /// Other ids of the vulnerability, without `vulnerability_id`.
    pub aliases: Vec<String>,
    pub description: Option<String>,
    /// The package as the report names it.
    pub package: vexxy_model::PackageRef,
    /// [`package_key`] of `package`.
    pub package_key: String,
    pub severity: Severity,
    /// EPSS probability (`0..=1`) when the report gives one.
    pub epss: Option<f64>,
    /// On a known-exploited list (CISA KEV).
    pub known_exploited: bool,
    pub fix_state: FixState,
    pub fixed_versions: Vec<String>,
    /// The automated verdict, with its evidence.
    pub verdict: Verdict,
    /// `sha256:<hex>` of what the verdict rests on (see
    /// [`StatementRecord::fingerprint`]).
    pub evidence_fingerprint: String,
}

/// What identifies a package across the statements of one image: the purl
/// without qualifiers or subpath but with its version
/// (`pkg:deb/debian/libssl3@3.0.11-1~deb12u2`); without a purl
/// `<ecosystem>/<name>@<version>` (`pypi/requests@2.31.0`).
pub fn package_key(p: &PackageRef) -> String {
    match &p.purl {
        Some(purl) => purl.without_qualifiers().to_string(),
        None => format!("{}/{}@{}", ecosystem_word(&p.ecosystem), p.name, p.version),
    }
}

/// The purl type of an ecosystem, or the word an unknown one carries.
pub(crate) fn ecosystem_word(e: &Ecosystem) -> &str {
    match e {
        Ecosystem::Deb => "deb",
        Ecosystem::Apk => "apk",
        Ecosystem::Rpm => "rpm",
        Ecosystem::Python => "pypi",
        Ecosystem::Npm => "npm",
        Ecosystem::Go => "golang",
        Ecosystem::Cargo => "cargo",
        Ecosystem::Maven => "maven",
        Ecosystem::Other(word) => word,
    }
}

/// The engine's order of statuses, worst first when sorted descending
/// (affected > under_investigation > fixed > not_affected).
pub(crate) fn status_rank(s: Status) -> u8 {
    match s {
        Status::Affected => 3,
        Status::UnderInvestigation => 2,
        Status::Fixed => 1,
        Status::NotAffected => 0,
    }
}

/// How much a fix state says: a known fix beats "won't fix" beats "not
/// fixed" beats nothing.
fn fix_rank(f: &FixState) -> u8 {
    match f {
        FixState::Fixed => 3,
        FixState::WontFix => 2,
        FixState::NotFixed => 1,
        FixState::Unknown => 0,
    }
}

/// Evidence facts about the image or the traced run as a whole (how many
/// packages the image has, how long the run was, its coverage factors),
/// not about the package: they differ between two digests of a repository
/// whose evidence about the package is the same, so they stay out of the
/// fingerprint.
const IMAGE_WIDE_FACTS: [&str; 3] = ["packages_in_inventory", "run", "coverage_factors"];

/// `s` with every `sha256:<64 hex>` digest (also `%3A`-escaped, as in OCI
/// purls) replaced by `sha256:*`, so evidence that names the image it came
/// from fingerprints the same for every digest.
fn without_digests(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("sha256") {
        let (head, tail) = rest.split_at(at);
        out.push_str(head);
        let after = &tail["sha256".len()..];
        let sep = [":", "%3A", "%3a"]
            .into_iter()
            .find(|sep| after.starts_with(sep));
        match sep {
            Some(sep)
                if after.len() >= sep.len() + 64
                    && after.as_bytes()[sep.len()..sep.len() + 64]
                        .iter()
                        .all(u8::is_ascii_hexdigit) =>
            {
                out.push_str("sha256:*");
                rest = &after[sep.len() + 64..];
            }
            _ => {
                out.push_str("sha256");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl StatementRecord {
    /// One record per (vulnerability id, [`package_key`]) of an engine
    /// outcome, sorted by vulnerability id then package key. `decisions`
    /// name their finding by index into `findings` (out-of-range ones are
    /// skipped).
    ///
    /// Findings reported twice for one key are merged worst status first,
    /// as `vexxy_decide::statements` folds packages: the most severe status
    /// leads (affected > under_investigation > fixed > not_affected; among
    /// equals the least confident), the others lend their evidence and
    /// notes; aliases and fixed versions are joined, the highest severity
    /// and EPSS and the most informative fix state kept.
    pub fn from_outcome(findings: &[Finding], decisions: &[Decision]) -> Vec<StatementRecord> {
        let mut by_key: BTreeMap<(String, String), StatementRecord> = BTreeMap::new();
        for d in decisions {
            let Some(f) = findings.get(d.finding) else {
                continue;
            };
            let record = Self::of(f, d.verdict.clone());
            match by_key.entry((record.vulnerability_id.clone(), record.package_key.clone())) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(record);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().absorb(record),
            }
        }
        by_key
            .into_values()
            .map(|mut r| {
                r.evidence_fingerprint = r.fingerprint();
                r
            })
            .collect()
    }

    /// The record of one finding and its verdict.
    pub fn of(f: &Finding, verdict: Verdict) -> StatementRecord {
        let mut r = StatementRecord {
            vulnerability_id: f.vulnerability.id.clone(),
            aliases: f
                .vulnerability
                .aliases
                .iter()
                .filter(|a| **a != f.vulnerability.id)
                .cloned()
                .collect(),
            description: f.vulnerability.description.clone(),
            package: f.package.clone(),
            package_key: package_key(&f.package),
            severity: f.vulnerability.severity,
            epss: f.vulnerability.epss,
            known_exploited: f.vulnerability.known_exploited,
            fix_state: f.fix_state.clone(),
            fixed_versions: f.fixed_versions.clone(),
            verdict,
            evidence_fingerprint: String::new(),
        };
        r.evidence_fingerprint = r.fingerprint();
        r
    }

    /// Folds a second finding of the same key into this one.
    fn absorb(&mut self, other: StatementRecord) {
        for a in other.aliases {
            if !self.aliases.contains(&a) {
                self.aliases.push(a);
            }
        }
        for v in other.fixed_versions {
            if !self.fixed_versions.contains(&v) {
                self.fixed_versions.push(v);
            }
        }
        if self.description.is_none() {
            self.description = other.description;
        }
        self.severity = self.severity.max(other.severity);
        self.epss = match (self.epss, other.epss) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.known_exploited |= other.known_exploited;
        if fix_rank(&other.fix_state) > fix_rank(&self.fix_state) {
            self.fix_state = other.fix_state;
        }
        // Evidence and notes in input order, as the engine joins them.
        let mut evidence = std::mem::take(&mut self.verdict.evidence);
        for e in &other.verdict.evidence {
            if !evidence.contains(e) {
                evidence.push(e.clone());
            }
        }
        let mut notes: Vec<String> = Vec::new();
        for n in [&self.verdict.notes, &other.verdict.notes] {
            if !n.is_empty() && !notes.contains(n) {
                notes.push(n.clone());
            }
        }
        let worse = |a: &Verdict, b: &Verdict| {
            status_rank(b.status())
                .cmp(&status_rank(a.status()))
                .then(a.confidence.get().total_cmp(&b.confidence.get()))
                .is_ge()
        };
        // Ties go to the later finding, as `max_by` does in the engine.
        if worse(&self.verdict, &other.verdict) {
            self.verdict = other.verdict;
        }
        self.verdict.evidence = evidence;
        self.verdict.notes = notes.join("; ");
    }

    /// Why this statement needs a person, if it does:
    /// `under_investigation` → [`ReviewReason::UnderInvestigation`];
    /// `affected` without a known fix → [`ReviewReason::AffectedWithoutFix`];
    /// `not_affected` below `review_below` → [`ReviewReason::LowConfidence`];
    /// `not_affected` about a high or critical vulnerability with
    /// `four_eyes` → [`ReviewReason::FourEyes`]; otherwise none.
    pub fn review_reason(&self, s: &ReviewSettings) -> Option<ReviewReason> {
        match self.verdict.status() {
            Status::UnderInvestigation => Some(ReviewReason::UnderInvestigation),
            Status::Affected if self.fix_state != FixState::Fixed => {
                Some(ReviewReason::AffectedWithoutFix)
            }
            // the confidence as documents and the store carry it (two decimals)
            Status::NotAffected if self.verdict.confidence.rounded() < s.review_below => {
                Some(ReviewReason::LowConfidence)
            }
            Status::NotAffected if s.four_eyes && self.severity >= Severity::High => {
                Some(ReviewReason::FourEyes)
            }
            _ => None,
        }
    }

    /// The severity as a number for sorting: unknown 0, negligible 1, low 2,
    /// medium 3, high 4, critical 5.
    pub fn severity_rank(&self) -> i64 {
        match self.severity {
            Severity::Unknown => 0,
            Severity::Negligible => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Critical => 5,
        }
    }

    /// The record's stored JSON form (one line).
    pub fn to_json(&self) -> String {
        crate::wire::to_json(self)
    }

    /// Reads a record written by [`StatementRecord::to_json`].
    pub fn from_json(s: &str) -> Result<Self, ReviewError> {
        crate::wire::from_json(s)
    }

    /// The finding this record was made from, as the engine saw it
    /// (without CVSS ratings, URLs and the reporting scanner, which
    /// records do not keep).
    pub fn finding(&self) -> Finding {
        Finding {
            vulnerability: Vulnerability {
                id: self.vulnerability_id.clone(),
                aliases: self.aliases.clone(),
                severity: self.severity,
                description: self.description.clone(),
                epss: self.epss,
                known_exploited: self.known_exploited,
                ..Vulnerability::default()
            },
            package: self.package.clone(),
            fixed_versions: self.fixed_versions.clone(),
            fix_state: self.fix_state.clone(),
            reported_by: None,
        }
    }

    /// `sha256:<hex>` of what the verdict rests on: its status and
    /// justification, the package name and version, and each evidence
    /// item's provider, source, observation, subject and facts (sorted,
    /// duplicates removed). Image digests inside evidence are masked and
    /// facts about the image or run as a whole (`packages_in_inventory`,
    /// `run`, `coverage_factors`) left out; confidence, notes, severity,
    /// EPSS and the order of evidence do not count. Two digests of a
    /// repository get the same fingerprint when the evidence about the
    /// package did not change. Runtime observations describe the run they
    /// come from ("during a 31.2 s run (30 s requested), 18 http
    /// request(s) …"): their numbers are masked, so two runs that saw the
    /// same thing about the package (not loaded; mapped, never entered)
    /// agree, while a change of kind (now executed) does not.
    pub fn fingerprint(&self) -> String {
        evidence_fingerprint(&self.verdict, &self.package)
    }
}

fn evidence_json(e: &Evidence) -> serde_json::Value {
    let mut facts: Vec<(String, String)> = e
        .facts
        .iter()
        .filter(|(k, _)| !IMAGE_WIDE_FACTS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), without_digests(v)))
        .collect();
    facts.sort();
    facts.dedup();
    // a runtime observation describes the run it comes from ("during a
    // 31.2 s run (30 s requested), … 18 http request(s) …"): its numbers
    // differ from run to run while what it says about the package does not
    let observation = if e.source == EvidenceSource::Runtime {
        without_numbers(&without_digests(&e.observation))
    } else {
        without_digests(&e.observation)
    };
    serde_json::json!([
        e.provider,
        without_digests(&e.source.to_string()),
        observation,
        e.subject.as_deref().map(without_digests),
        facts,
    ])
}

/// `s` with every run of ASCII digits (and a decimal part) replaced by `#`.
fn without_numbers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars
                .peek()
                .is_some_and(|n| n.is_ascii_digit() || *n == '.')
            {
                chars.next();
            }
            out.push('#');
        } else {
            out.push(c);
        }
    }
    out
}

/// See [`StatementRecord::fingerprint`].
pub(crate) fn evidence_fingerprint(v: &Verdict, package: &PackageRef) -> String {
    let mut evidence: Vec<String> = v
        .evidence
        .iter()
        .map(|e| evidence_json(e).to_string())
        .collect();
    evidence.sort();
    evidence.dedup();
    let canonical = serde_json::json!([
        "vexxy-review/evidence-fingerprint/v1",
        v.status().as_str(),
        v.justification().map(|j| j.as_str()),
        package.name,
        package.version,
        evidence,
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_masked_wherever_they_appear() {
        let hex = "a".repeat(64);
        let cases = [
            (format!("sha256:{hex}"), "sha256:*".to_owned()),
            (
                format!("pkg:oci/nginx@sha256%3A{hex}?x=1"),
                "pkg:oci/nginx@sha256:*?x=1".to_owned(),
            ),
            (
                format!("in /run/sha256:{hex}/lib and sha256:{hex}"),
                "in /run/sha256:*/lib and sha256:*".to_owned(),
            ),
            // not a digest: too short, not hex, no separator
            ("sha256:abc".to_owned(), "sha256:abc".to_owned()),
            (
                format!("sha256:{}", "g".repeat(64)),
                format!("sha256:{}", "g".repeat(64)),
            ),
            ("sha256sum".to_owned(), "sha256sum".to_owned()),
            ("ends with sha256".to_owned(), "ends with sha256".to_owned()),
            ("ünïcode sha256:é".to_owned(), "ünïcode sha256:é".to_owned()),
        ];
        for (input, want) in cases {
            assert_eq!(without_digests(&input), want, "{input}");
        }
    }

    #[test]
    fn package_keys() {
        let mut p = PackageRef {
            name: "requests".into(),
            version: "2.31.0".into(),
            ecosystem: Ecosystem::Python,
            purl: None,
            source_name: None,
        };
        assert_eq!(package_key(&p), "pypi/requests@2.31.0");
        p.ecosystem = Ecosystem::Other("conda".into());
        assert_eq!(package_key(&p), "conda/requests@2.31.0");
        p.purl = "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12#sub"
            .parse()
            .ok();
        assert_eq!(package_key(&p), "pkg:deb/debian/libssl3@3.0.11-1~deb12u2");
    }
}
