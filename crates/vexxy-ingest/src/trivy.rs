//! Trivy JSON, schema version 2 (`trivy image -f json`).

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;
use vexxy_model::{Cvss, Finding, FixState, PackageRef, Severity, Vulnerability};

use crate::{
    common::{self, null_default},
    error::FieldError,
    Format, IngestError, Report,
};

#[derive(Debug, Deserialize)]
struct RawDoc {
    #[serde(rename = "ArtifactName", default)]
    artifact_name: Option<String>,
    #[serde(rename = "Metadata", default)]
    metadata: Option<RawMetadata>,
    #[serde(rename = "Results", default, deserialize_with = "null_default")]
    results: Vec<RawResult>,
    /// Newer Trivy releases record their version here.
    #[serde(rename = "Trivy", default)]
    trivy: Option<RawTool>,
}

#[derive(Debug, Deserialize)]
struct RawTool {
    #[serde(rename = "Version", default)]
    version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawMetadata {
    #[serde(rename = "OS", default)]
    os: Option<RawOs>,
    #[serde(rename = "RepoDigests", default, deserialize_with = "null_default")]
    repo_digests: Vec<String>,
    #[serde(rename = "ImageID", default)]
    image_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawOs {
    #[serde(rename = "Family", default)]
    family: Option<String>,
    #[serde(rename = "Name", default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawResult {
    #[serde(rename = "Type", default)]
    ty: Option<String>,
    #[serde(rename = "Vulnerabilities", default, deserialize_with = "null_default")]
    vulnerabilities: Vec<RawVulnerability>,
}

#[derive(Debug, Deserialize)]
struct RawVulnerability {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    #[serde(rename = "PkgName")]
    pkg_name: String,
    #[serde(rename = "InstalledVersion", default)]
    installed_version: String,
    #[serde(rename = "PkgIdentifier", default)]
    pkg_identifier: Option<RawPkgIdentifier>,
    #[serde(rename = "SrcName", default)]
    src_name: Option<String>,
    #[serde(rename = "FixedVersion", default)]
    fixed_version: Option<String>,
    #[serde(rename = "Status", default)]
    status: Option<String>,
    #[serde(rename = "Severity", default)]
    severity: Option<String>,
    #[serde(rename = "CVSS", default, deserialize_with = "null_default")]
    cvss: BTreeMap<String, RawCvss>,
    #[serde(rename = "Title", default)]
    title: Option<String>,
    #[serde(rename = "Description", default)]
    description: Option<String>,
    #[serde(rename = "DataSource", default)]
    data_source: Option<RawDataSource>,
    #[serde(rename = "PrimaryURL", default)]
    primary_url: Option<String>,
    #[serde(rename = "References", default, deserialize_with = "null_default")]
    references: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawPkgIdentifier {
    #[serde(rename = "PURL", default)]
    purl: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawCvss {
    #[serde(rename = "V2Vector", default)]
    v2_vector: Option<String>,
    #[serde(rename = "V2Score", default)]
    v2_score: Option<f64>,
    #[serde(rename = "V3Vector", default)]
    v3_vector: Option<String>,
    #[serde(rename = "V3Score", default)]
    v3_score: Option<f64>,
    #[serde(rename = "V40Vector", default)]
    v40_vector: Option<String>,
    #[serde(rename = "V40Score", default)]
    v40_score: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct RawDataSource {
    #[serde(rename = "ID", default)]
    id: Option<String>,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "URL", default)]
    url: Option<String>,
}

pub(crate) fn parse(bytes: &[u8], origin: &Path) -> Result<Report, IngestError> {
    let raw: RawDoc = common::from_slice(bytes, origin)?;
    Report::try_from(raw).map_err(|e| e.at(origin))
}

impl TryFrom<RawDoc> for Report {
    type Error = FieldError;

    fn try_from(raw: RawDoc) -> Result<Self, FieldError> {
        let tool = Some(match raw.trivy.and_then(|t| common::non_empty(t.version)) {
            Some(v) => format!("trivy {v}"),
            None => "trivy".to_owned(),
        });
        let mut subject = crate::Subject::default();
        let (distro, target_digest) = match raw.metadata {
            Some(m) => {
                // beyond the first (the target's, strict as before), digests
                // only help recognise the image: a malformed one is left out
                for d in m.repo_digests.iter().skip(1) {
                    if let Ok(d) = common::repo_digest(d, String::new) {
                        subject.push(d);
                    }
                }
                subject.image_id =
                    common::non_empty(m.image_id.clone()).and_then(|d| d.parse().ok());
                let distro = m.os.and_then(|os| {
                    let family = common::non_empty(os.family)?;
                    Some(match common::non_empty(os.name) {
                        Some(n) => format!("{family} {n}"),
                        None => family,
                    })
                });
                let digest = m
                    .repo_digests
                    .first()
                    .map(|d| common::repo_digest(d, || "Metadata.RepoDigests[0]".to_owned()))
                    .transpose()?;
                if let Some(d) = digest
                    .as_ref()
                    .filter(|d| !subject.manifest_digests.contains(d))
                {
                    subject.manifest_digests.insert(0, d.clone());
                }
                (distro, digest)
            }
            None => (None, None),
        };
        let mut findings = Vec::new();
        for (ri, result) in raw.results.into_iter().enumerate() {
            for (vi, v) in result.vulnerabilities.into_iter().enumerate() {
                findings.push(finding(v, result.ty.as_deref(), tool.as_deref(), ri, vi)?);
            }
        }
        Ok(Self {
            format: Format::Trivy,
            tool,
            target: common::non_empty(raw.artifact_name),
            target_digest,
            subject,
            distro,
            findings,
            symbols: Vec::new(),
        })
    }
}

fn finding(
    v: RawVulnerability,
    result_type: Option<&str>,
    tool: Option<&str>,
    ri: usize,
    vi: usize,
) -> Result<Finding, FieldError> {
    let purl = common::purl(
        v.pkg_identifier.as_ref().and_then(|p| p.purl.as_deref()),
        || format!("Results[{ri}].Vulnerabilities[{vi}].PkgIdentifier.PURL"),
    )?;
    let ecosystem = common::ecosystem(purl.as_ref(), result_type);
    let mut fixed_versions = Vec::new();
    for ver in v.fixed_version.as_deref().unwrap_or_default().split(',') {
        common::push_unique(&mut fixed_versions, ver, "");
    }
    let fix_state = fix_state(v.status.as_deref(), !fixed_versions.is_empty());
    let mut urls = Vec::new();
    for u in v.primary_url.iter().chain(&v.references) {
        common::push_unique(&mut urls, u, "");
    }
    let cvss = v
        .cvss
        .into_iter()
        .flat_map(|(source, c)| cvss_of(&source, c))
        .collect();
    let data_source = v.data_source.and_then(|d| {
        common::non_empty(d.url)
            .or_else(|| common::non_empty(d.name))
            .or_else(|| common::non_empty(d.id))
    });
    Ok(Finding {
        vulnerability: Vulnerability {
            id: v.id.trim().to_owned(),
            aliases: Vec::new(),
            severity: v
                .severity
                .as_deref()
                .map_or(Severity::Unknown, Severity::from_word),
            cvss,
            description: common::non_empty(v.description).or_else(|| common::non_empty(v.title)),
            data_source,
            urls,
            epss: None,
            known_exploited: false,
        },
        package: PackageRef {
            name: v.pkg_name,
            version: v.installed_version,
            ecosystem,
            purl,
            source_name: common::non_empty(v.src_name),
        },
        fixed_versions,
        fix_state,
        reported_by: tool.map(str::to_owned),
    })
}

/// One rating per CVSS version present in a source's entry.
fn cvss_of(source: &str, c: RawCvss) -> Vec<Cvss> {
    let entries = [
        ("2.0", c.v2_vector, c.v2_score),
        ("3", c.v3_vector, c.v3_score),
        ("4.0", c.v40_vector, c.v40_score),
    ];
    entries
        .into_iter()
        .filter(|(_, vector, score)| {
            vector.as_deref().is_some_and(|v| !v.is_empty()) || score.is_some()
        })
        .map(|(fallback, vector, score)| {
            let vector = common::non_empty(vector);
            let version = vector
                .as_deref()
                .and_then(common::cvss_version_of)
                .unwrap_or_else(|| fallback.to_owned());
            Cvss {
                source: Some(source.to_owned()),
                version: Some(version),
                vector,
                base_score: score,
            }
        })
        .collect()
}

/// Trivy's `Status` words; without one, a fixed version means fixed.
fn fix_state(status: Option<&str>, has_fix: bool) -> FixState {
    match status.map(str::to_ascii_lowercase).as_deref() {
        Some("fixed") => FixState::Fixed,
        Some("affected" | "fix_deferred" | "under_investigation") => FixState::NotFixed,
        Some("will_not_fix" | "end_of_life") => FixState::WontFix,
        Some(_) => FixState::Unknown,
        None if has_fix => FixState::Fixed,
        None => FixState::Unknown,
    }
}
