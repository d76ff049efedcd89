//! OSV-Scanner JSON (`osv-scanner --format json`): every package ×
//! vulnerability pair becomes a finding.

use std::path::Path;

use serde::Deserialize;
use vexxy_model::{Cvss, Ecosystem, Finding, FixState, PackageRef, Purl, Severity, Vulnerability};

use crate::{
    common::{self, null_default, Lenient},
    error::FieldError,
    Format, IngestError, Report,
};

#[derive(Debug, Deserialize)]
struct RawDoc {
    #[serde(default, deserialize_with = "null_default")]
    results: Vec<RawResult>,
}

#[derive(Debug, Deserialize)]
struct RawResult {
    #[serde(default, deserialize_with = "null_default")]
    packages: Vec<RawPackage>,
}

#[derive(Debug, Deserialize)]
struct RawPackage {
    package: RawPackageInfo,
    #[serde(default, deserialize_with = "null_default")]
    vulnerabilities: Vec<RawVulnerability>,
    #[serde(default, deserialize_with = "null_default")]
    groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
struct RawPackageInfo {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    ecosystem: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawGroup {
    #[serde(default, deserialize_with = "null_default")]
    ids: Vec<String>,
    #[serde(default)]
    max_severity: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawVulnerability {
    id: String,
    #[serde(default, deserialize_with = "null_default")]
    aliases: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    affected: Vec<RawAffected>,
    #[serde(default, deserialize_with = "null_default")]
    severity: Vec<RawSeverity>,
    #[serde(default, deserialize_with = "null_default")]
    references: Vec<RawReference>,
    /// Free-form per database; GitHub advisories put a severity word here.
    #[serde(default)]
    database_specific: Option<Lenient<RawDatabaseSpecific>>,
}

#[derive(Debug, Deserialize)]
struct RawDatabaseSpecific {
    #[serde(default)]
    severity: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawAffected {
    #[serde(default)]
    package: Option<RawAffectedPackage>,
    #[serde(default, deserialize_with = "null_default")]
    ranges: Vec<RawRange>,
}

#[derive(Debug, Deserialize)]
struct RawAffectedPackage {
    #[serde(default)]
    ecosystem: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawRange {
    #[serde(default, deserialize_with = "null_default")]
    events: Vec<RawEvent>,
}

#[derive(Debug, Deserialize)]
struct RawEvent {
    #[serde(default)]
    fixed: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawSeverity {
    #[serde(rename = "type", default)]
    ty: Option<String>,
    #[serde(default)]
    score: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawReference {
    #[serde(default)]
    url: Option<String>,
}

pub(crate) fn parse(bytes: &[u8], origin: &Path) -> Result<Report, IngestError> {
    let raw: RawDoc = common::from_slice(bytes, origin)?;
    Report::try_from(raw).map_err(|e| e.at(origin))
}

const TOOL: &str = "osv-scanner";

impl TryFrom<RawDoc> for Report {
    type Error = FieldError;

    fn try_from(raw: RawDoc) -> Result<Self, FieldError> {
        let mut findings = Vec::new();
        for (ri, result) in raw.results.into_iter().enumerate() {
            for (pi, package) in result.packages.into_iter().enumerate() {
                let RawPackage {
                    package: info,
                    vulnerabilities,
                    groups,
                } = package;
                for (vi, v) in vulnerabilities.into_iter().enumerate() {
                    let at = || format!("results[{ri}].packages[{pi}].vulnerabilities[{vi}]");
                    findings.push(finding(&info, v, &groups, &at)?);
                }
            }
        }
        Ok(Self {
            format: Format::OsvScanner,
            tool: Some(TOOL.to_owned()),
            target: None,
            target_digest: None,
            subject: crate::Subject::default(),
            distro: None,
            findings,
        })
    }
}

fn finding(
    info: &RawPackageInfo,
    v: RawVulnerability,
    groups: &[RawGroup],
    at: &dyn Fn() -> String,
) -> Result<Finding, FieldError> {
    let id = v.id.trim().to_owned();
    let mut aliases = Vec::new();
    for a in &v.aliases {
        common::push_unique(&mut aliases, a, &id);
    }
    let version = info.version.clone().unwrap_or_default();

    // Fixed versions and the purl come from the `affected` entries for this package.
    let mut fixed_versions = Vec::new();
    let mut matched = false;
    let mut purl: Option<Purl> = None;
    for (ai, a) in v.affected.iter().enumerate() {
        if !affects(a.package.as_ref(), info) {
            continue;
        }
        matched = true;
        for e in a.ranges.iter().flat_map(|r| &r.events) {
            if let Some(f) = &e.fixed {
                common::push_unique(&mut fixed_versions, f, "");
            }
        }
        if purl.is_none() {
            let raw = a.package.as_ref().and_then(|p| p.purl.as_deref());
            purl = common::purl(raw, || format!("{}.affected[{ai}].package.purl", at()))?
                .map(|p| p.with_version(Some(&version)));
        }
    }
    let fix_state = match (fixed_versions.is_empty(), matched) {
        (false, _) => FixState::Fixed,
        (true, true) => FixState::NotFixed,
        (true, false) => FixState::Unknown,
    };

    let cvss: Vec<Cvss> = v
        .severity
        .iter()
        .filter_map(|s| {
            let vector = common::non_empty(s.score.clone())?;
            let version = common::cvss_version_of(&vector).or_else(|| {
                s.ty.as_deref()
                    .and_then(|t| t.strip_prefix("CVSS_V"))
                    .map(str::to_owned)
            });
            Some(Cvss {
                source: None,
                version,
                vector: Some(vector),
                base_score: None,
            })
        })
        .collect();
    let severity = group_severity(groups, &id)
        .or_else(|| {
            v.database_specific
                .and_then(Lenient::ok)
                .and_then(|d| d.severity)
                .map(|w| Severity::from_word(&w))
                .filter(|s| *s != Severity::Unknown)
        })
        .unwrap_or_default();

    let mut urls = Vec::new();
    for r in &v.references {
        if let Some(u) = &r.url {
            common::push_unique(&mut urls, u, "");
        }
    }
    let description = match (common::non_empty(v.summary), common::non_empty(v.details)) {
        (Some(s), Some(d)) => Some(format!("{s}\n\n{d}")),
        (s, d) => s.or(d),
    };

    Ok(Finding {
        vulnerability: Vulnerability {
            data_source: Some(format!("https://osv.dev/vulnerability/{id}")),
            id,
            aliases,
            severity,
            cvss,
            description,
            urls,
            epss: None,
            known_exploited: false,
        },
        package: PackageRef {
            name: info.name.clone(),
            version,
            ecosystem: purl.as_ref().map_or_else(
                || osv_ecosystem(info.ecosystem.as_deref()),
                |p| Ecosystem::from_purl_type(p.ty()),
            ),
            purl,
            source_name: None,
        },
        fixed_versions,
        fix_state,
        reported_by: Some(TOOL.to_owned()),
    })
}

/// Whether an `affected` entry is about this package: same name and same
/// ecosystem; a release suffix (`Debian:12`) must match when both sides
/// state one.
fn affects(affected: Option<&RawAffectedPackage>, info: &RawPackageInfo) -> bool {
    let Some(a) = affected else {
        return false;
    };
    if a.name.as_deref() != Some(info.name.as_str()) {
        return false;
    }
    let (Some(theirs), Some(ours)) = (a.ecosystem.as_deref(), info.ecosystem.as_deref()) else {
        return true;
    };
    let split = |e: &str| {
        let e = e.trim().to_ascii_lowercase();
        match e.split_once(':') {
            Some((base, release)) => (base.to_owned(), Some(release.to_owned())),
            None => (e, None),
        }
    };
    match (split(theirs), split(ours)) {
        ((b1, Some(r1)), (b2, Some(r2))) => b1 == b2 && r1 == r2,
        ((b1, _), (b2, _)) => b1 == b2,
    }
}

/// The highest CVSS score OSV-Scanner computed for the group holding `id`.
fn group_severity(groups: &[RawGroup], id: &str) -> Option<Severity> {
    let group = groups.iter().find(|g| g.ids.iter().any(|g| g == id))?;
    let score: f64 = group.max_severity.as_deref()?.trim().parse().ok()?;
    Some(common::severity_of_score(score))
}

/// OSV ecosystem names (`PyPI`, `crates.io`, `Debian:12`, …) to ecosystems.
fn osv_ecosystem(word: Option<&str>) -> Ecosystem {
    let Some(word) = word.map(str::trim).filter(|w| !w.is_empty()) else {
        return Ecosystem::Other("unknown".to_owned());
    };
    let base = word.split(':').next().unwrap_or(word).to_ascii_lowercase();
    match base.as_str() {
        "crates.io" => Ecosystem::Cargo,
        "go" => Ecosystem::Go,
        "pypi" => Ecosystem::Python,
        "rocky linux" | "almalinux" | "red hat" | "opensuse" | "suse" | "mageia" => Ecosystem::Rpm,
        other => Ecosystem::from_scanner_type(other),
    }
}
