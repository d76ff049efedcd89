//! Grype JSON (`grype -o json`).

use std::path::Path;

use serde::Deserialize;
use vexxy_model::{Cvss, Finding, FixState, PackageRef, Severity, Vulnerability};

use crate::{
    common::{self, null_default, Lenient},
    error::FieldError,
    Format, IngestError, Report,
};

#[derive(Debug, Deserialize)]
struct RawDoc {
    #[serde(default, deserialize_with = "null_default")]
    matches: Vec<RawMatch>,
    #[serde(default)]
    source: Option<RawSource>,
    #[serde(default)]
    distro: Option<RawDistro>,
    #[serde(default)]
    descriptor: Option<RawDescriptor>,
}

#[derive(Debug, Deserialize)]
struct RawMatch {
    vulnerability: RawVulnerability,
    #[serde(
        rename = "relatedVulnerabilities",
        default,
        deserialize_with = "null_default"
    )]
    related: Vec<RawRelated>,
    artifact: RawArtifact,
}

#[derive(Debug, Deserialize)]
struct RawVulnerability {
    id: String,
    #[serde(rename = "dataSource", default)]
    data_source: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    urls: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    cvss: Vec<RawCvss>,
    #[serde(default)]
    fix: Option<RawFix>,
    /// EPSS scores (grype 0.87+), one per CVE the record names. Lenient: an
    /// enrichment whose shape is not worth refusing a report over.
    #[serde(default)]
    epss: Option<Lenient<Vec<RawEpss>>>,
    /// CISA KEV entries (grype 0.87+); any entry means known exploited.
    #[serde(rename = "knownExploited", default)]
    known_exploited: Option<Lenient<Vec<serde::de::IgnoredAny>>>,
}

#[derive(Debug, Deserialize)]
struct RawEpss {
    #[serde(default)]
    cve: Option<String>,
    epss: f64,
}

#[derive(Debug, Deserialize)]
struct RawRelated {
    id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    cvss: Vec<RawCvss>,
    #[serde(default, deserialize_with = "null_default")]
    urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawCvss {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    vector: Option<String>,
    #[serde(default)]
    metrics: Option<RawMetrics>,
}

#[derive(Debug, Deserialize)]
struct RawMetrics {
    #[serde(rename = "baseScore", default)]
    base_score: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct RawFix {
    #[serde(default, deserialize_with = "null_default")]
    versions: Vec<String>,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawArtifact {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(rename = "type", default)]
    ty: Option<String>,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    upstreams: Vec<RawUpstream>,
}

#[derive(Debug, Deserialize)]
struct RawUpstream {
    name: String,
}

#[derive(Debug, Deserialize)]
struct RawSource {
    #[serde(default)]
    target: Option<RawTarget>,
}

/// `source.target` is an object for images and a plain path for directories and files.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTarget {
    Path(String),
    Image(RawImageTarget),
}

#[derive(Debug, Deserialize)]
struct RawImageTarget {
    #[serde(rename = "userInput", default)]
    user_input: Option<String>,
    #[serde(rename = "repoDigests", default, deserialize_with = "null_default")]
    repo_digests: Vec<String>,
    #[serde(rename = "manifestDigest", default)]
    manifest_digest: Option<String>,
    #[serde(rename = "imageID", default)]
    image_id: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawDistro {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawDescriptor {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

pub(crate) fn parse(bytes: &[u8], origin: &Path) -> Result<Report, IngestError> {
    let raw: RawDoc = common::from_slice(bytes, origin)?;
    Report::try_from(raw).map_err(|e| e.at(origin))
}

impl TryFrom<RawDoc> for Report {
    type Error = FieldError;

    fn try_from(raw: RawDoc) -> Result<Self, FieldError> {
        let tool = raw.descriptor.and_then(|d| {
            let name = common::non_empty(d.name)?;
            Some(match common::non_empty(d.version) {
                Some(v) => format!("{name} {v}"),
                None => name,
            })
        });
        let mut subject = crate::Subject::default();
        let (target, target_digest) = match raw.source.and_then(|s| s.target) {
            Some(RawTarget::Path(p)) => (common::non_empty(Some(p)), None),
            Some(RawTarget::Image(t)) => {
                // the first repository digest is the target's (strict, as
                // before); the rest only help recognise the image
                let digest = t
                    .repo_digests
                    .first()
                    .map(|d| common::repo_digest(d, || "source.target.repoDigests[0]".to_owned()))
                    .transpose()?;
                if let Some(d) = &digest {
                    subject.push(d.clone());
                }
                for d in t.repo_digests.iter().skip(1) {
                    if let Ok(d) = common::repo_digest(d, String::new) {
                        subject.push(d);
                    }
                }
                if let Some(d) = common::non_empty(t.manifest_digest).and_then(|d| d.parse().ok()) {
                    subject.push(d);
                }
                subject.image_id = common::non_empty(t.image_id).and_then(|d| d.parse().ok());
                (
                    common::non_empty(t.user_input).or_else(|| common::non_empty(t.path)),
                    digest,
                )
            }
            None => (None, None),
        };
        let distro = raw.distro.and_then(|d| {
            let name = common::non_empty(d.name)?;
            Some(match common::non_empty(d.version) {
                Some(v) => format!("{name} {v}"),
                None => name,
            })
        });
        let findings = raw
            .matches
            .into_iter()
            .enumerate()
            .map(|(i, m)| finding(m, i, tool.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            format: Format::Grype,
            tool,
            target,
            target_digest,
            subject,
            distro,
            findings,
            symbols: Vec::new(),
        })
    }
}

fn finding(m: RawMatch, index: usize, tool: Option<&str>) -> Result<Finding, FieldError> {
    let RawMatch {
        vulnerability: v,
        related,
        artifact: a,
    } = m;
    let purl = common::purl(a.purl.as_deref(), || {
        format!("matches[{index}].artifact.purl")
    })?;
    let ecosystem = common::ecosystem(purl.as_ref(), a.ty.as_deref());
    let id = v.id.trim().to_owned();

    let mut aliases = Vec::new();
    let mut cvss: Vec<Cvss> = v.cvss.into_iter().map(cvss_of).collect();
    let mut urls = Vec::new();
    for u in &v.urls {
        common::push_unique(&mut urls, u, "");
    }
    let mut description = common::non_empty(v.description);
    for r in related {
        common::push_unique(&mut aliases, &r.id, &id);
        for c in r.cvss.into_iter().map(cvss_of) {
            if !cvss.contains(&c) {
                cvss.push(c);
            }
        }
        for u in &r.urls {
            common::push_unique(&mut urls, u, "");
        }
        if description.is_none() {
            description = common::non_empty(r.description);
        }
    }

    let epss = epss_of(v.epss.and_then(Lenient::ok).unwrap_or_default(), &id);
    let known_exploited = v
        .known_exploited
        .and_then(Lenient::ok)
        .is_some_and(|k| !k.is_empty());

    let (fixed_versions, fix_state) = match v.fix {
        Some(f) => {
            let mut versions = Vec::new();
            for ver in &f.versions {
                common::push_unique(&mut versions, ver, "");
            }
            (versions, fix_state(f.state.as_deref()))
        }
        None => (Vec::new(), FixState::Unknown),
    };

    Ok(Finding {
        vulnerability: Vulnerability {
            id,
            aliases,
            severity: v
                .severity
                .as_deref()
                .map_or(Severity::Unknown, Severity::from_word),
            cvss,
            description,
            data_source: common::non_empty(v.data_source),
            urls,
            epss,
            known_exploited,
        },
        package: PackageRef {
            name: a.name,
            version: a.version,
            ecosystem,
            purl,
            source_name: a
                .upstreams
                .into_iter()
                .next()
                .and_then(|u| common::non_empty(Some(u.name))),
        },
        fixed_versions,
        fix_state,
        reported_by: tool.map(str::to_owned),
    })
}

/// The EPSS score of the finding's id, else the first one given; scores
/// outside `0..=1` are dropped.
fn epss_of(scores: Vec<RawEpss>, id: &str) -> Option<f64> {
    let valid = |e: &RawEpss| e.epss.is_finite() && (0.0..=1.0).contains(&e.epss);
    let pick = scores
        .iter()
        .filter(|e| valid(e))
        .find(|e| {
            e.cve
                .as_deref()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case(id))
        })
        .or_else(|| scores.iter().find(|e| valid(e)));
    pick.map(|e| e.epss)
}

fn cvss_of(c: RawCvss) -> Cvss {
    let vector = common::non_empty(c.vector);
    let version = common::non_empty(c.version)
        .or_else(|| vector.as_deref().and_then(common::cvss_version_of));
    Cvss {
        source: common::non_empty(c.source),
        version,
        vector,
        base_score: c.metrics.and_then(|m| m.base_score),
    }
}

fn fix_state(state: Option<&str>) -> FixState {
    match state.map(str::to_ascii_lowercase).as_deref() {
        Some("fixed") => FixState::Fixed,
        Some("not-fixed") => FixState::NotFixed,
        Some("wont-fix") => FixState::WontFix,
        _ => FixState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn one(vulnerability: &str) -> Finding {
        let doc = format!(
            r#"{{"matches":[{{"vulnerability":{vulnerability},"artifact":{{"name":"zlib1g","version":"1"}}}}]}}"#
        );
        let mut r = parse(doc.as_bytes(), Path::new("grype.json")).unwrap();
        r.findings.remove(0)
    }

    #[test]
    fn epss_is_the_findings_own_else_the_first() {
        let cases = [
            // (vulnerability object, epss, known exploited)
            (r#"{"id":"CVE-1"}"#, None, false),
            (
                r#"{"id":"CVE-1","epss":null,"knownExploited":null}"#,
                None,
                false,
            ),
            (
                r#"{"id":"CVE-1","epss":[],"knownExploited":[]}"#,
                None,
                false,
            ),
            (
                r#"{"id":"DSA-1","epss":[{"cve":"CVE-2","epss":0.2},{"cve":"CVE-3","epss":0.3}]}"#,
                Some(0.2),
                false,
            ),
            (
                r#"{"id":"CVE-3","epss":[{"cve":"CVE-2","epss":0.2},{"cve":"cve-3","epss":0.3,"percentile":0.9,"date":"2025-06-07"}]}"#,
                Some(0.3),
                false,
            ),
            // out of range scores are dropped, a malformed array ignored
            (
                r#"{"id":"CVE-1","epss":[{"cve":"CVE-1","epss":7.0},{"cve":"CVE-9","epss":0.5}]}"#,
                Some(0.5),
                false,
            ),
            (
                r#"{"id":"CVE-1","epss":"high","knownExploited":{"x":1}}"#,
                None,
                false,
            ),
            (
                r#"{"id":"CVE-1","knownExploited":[{"cve":"CVE-1"}]}"#,
                None,
                true,
            ),
        ];
        for (v, epss, kev) in cases {
            let f = one(v);
            assert_eq!(f.vulnerability.epss, epss, "{v}");
            assert_eq!(f.vulnerability.known_exploited, kev, "{v}");
        }
    }
}
