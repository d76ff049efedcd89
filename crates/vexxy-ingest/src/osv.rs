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
    /// Free-form per database: read leniently, a shape other than the Go
    /// database's names no symbol.
    #[serde(default)]
    ecosystem_specific: Option<Lenient<SymEcosystemSpecific>>,
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
        let mut symbols = Vec::new();
        for (ri, result) in raw.results.into_iter().enumerate() {
            for (pi, package) in result.packages.into_iter().enumerate() {
                let RawPackage {
                    package: info,
                    vulnerabilities,
                    groups,
                } = package;
                for (vi, v) in vulnerabilities.into_iter().enumerate() {
                    named_symbols(&v.id, &v.aliases, &v.affected, &mut symbols);
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
            symbols: finish(symbols),
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

// ------------------------------------------------------------ named symbols

/// The functions one OSV record names as vulnerable in one affected package:
/// `affected[].ecosystem_specific.imports[].symbols`, each qualified by its
/// import path (`golang.org/x/net/html.Render`, methods as
/// `golang.org/x/net/http2.Server.ServeConn`). The Go vulnerability database
/// fills these; an import that names no symbol (the whole package is
/// vulnerable) contributes none.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OsvSymbols {
    /// The record's id (`GO-2023-1988`).
    pub vulnerability: String,
    /// The record's aliases (`CVE-2023-3978`, `GHSA-…`): a scanner may name
    /// the finding by any of them.
    pub aliases: Vec<String>,
    /// `affected[].package.name` (a Go module path, `golang.org/x/net`, or
    /// `stdlib`).
    pub package: String,
    /// `affected[].package.ecosystem` as written (`Go`).
    pub ecosystem: String,
    /// Qualified symbols, sorted, deduplicated.
    pub symbols: Vec<String>,
}

impl OsvSymbols {
    /// True when the record is the one a finding names, by id or alias.
    pub fn names(&self, vulnerability: &str) -> bool {
        self.vulnerability == vulnerability || self.aliases.iter().any(|a| a == vulnerability)
    }

    /// True when these are the functions of `finding`: the record is the
    /// finding's vulnerability (by id, or an alias of either side: a Grype
    /// finding named `CVE-2023-39325` is the Go database's `GO-2023-2102`)
    /// and the affected package is the finding's package.
    pub fn matches(&self, finding: &Finding) -> bool {
        self.package == finding.package.name
            && (self.names(&finding.vulnerability.id)
                || finding.vulnerability.aliases.iter().any(|a| self.names(a)))
    }
}

/// The part of an OSV record that names symbols.
#[derive(Debug, Deserialize)]
struct SymRecord {
    id: String,
    #[serde(default, deserialize_with = "null_default")]
    aliases: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    affected: Vec<RawAffected>,
}

#[derive(Debug, Deserialize)]
struct SymEcosystemSpecific {
    #[serde(default, deserialize_with = "null_default")]
    imports: Vec<SymImport>,
}

#[derive(Debug, Deserialize)]
struct SymImport {
    path: String,
    #[serde(default, deserialize_with = "null_default")]
    symbols: Vec<String>,
}

/// Adds what one OSV record (`id`, `aliases`, `affected`) names: one entry
/// per affected package whose imports list symbols.
fn named_symbols(
    id: &str,
    aliases: &[String],
    affected: &[RawAffected],
    out: &mut Vec<OsvSymbols>,
) {
    for affected in affected {
        let (Some(package), Some(Lenient::Ok(specific))) =
            (&affected.package, &affected.ecosystem_specific)
        else {
            continue;
        };
        let Some(name) = package.name.as_ref().filter(|n| !n.trim().is_empty()) else {
            continue;
        };
        // an import listed without symbols is vulnerable as a whole: any
        // of its code may be the vulnerable code, so no list of
        // functions speaks for this package (no "never entered" or
        // "absent" claim from its siblings' symbols)
        if specific
            .imports
            .iter()
            .filter(|i| !i.path.trim().is_empty())
            .any(|i| i.symbols.iter().all(|s| s.trim().is_empty()))
        {
            continue;
        }
        let mut symbols: Vec<String> = specific
            .imports
            .iter()
            .filter(|i| !i.path.trim().is_empty())
            .flat_map(|i| {
                i.symbols
                    .iter()
                    .filter(|s| !s.trim().is_empty())
                    .map(move |s| format!("{}.{}", i.path.trim(), s.trim()))
            })
            .collect();
        if symbols.is_empty() {
            continue;
        }
        symbols.sort();
        symbols.dedup();
        let mut aliases = aliases.to_vec();
        aliases.sort();
        aliases.dedup();
        out.push(OsvSymbols {
            vulnerability: id.to_owned(),
            aliases,
            package: name.clone(),
            ecosystem: package.ecosystem.clone().unwrap_or_default(),
            symbols,
        });
    }
}

fn finish(mut out: Vec<OsvSymbols>) -> Vec<OsvSymbols> {
    out.sort();
    out.dedup();
    out
}

/// The symbols the OSV records embedded in an OSV-Scanner JSON report name,
/// one entry per (record, affected package) that names any: what
/// [`crate::parse`] puts in [`Report::symbols`].
pub fn report_symbols(bytes: &[u8], origin: &Path) -> Result<Vec<OsvSymbols>, IngestError> {
    parse(bytes, origin).map(|r| r.symbols)
}

/// The symbols one OSV record (a Go vulnerability database entry, say)
/// names.
pub fn record_symbols(bytes: &[u8], origin: &Path) -> Result<Vec<OsvSymbols>, IngestError> {
    let record: SymRecord = common::from_slice(bytes, origin)?;
    let mut out = Vec::new();
    named_symbols(&record.id, &record.aliases, &record.affected, &mut out);
    Ok(finish(out))
}

/// Largest advisory file read from a directory.
const MAX_ADVISORY_BYTES: u64 = 16 << 20;

/// The symbols every OSV record in `dir` names: each `*.json` file directly
/// in it is one record (the layout of the Go vulnerability database's
/// `ID/` directory and of `osv.dev` exports). Files are read in name order;
/// one that is not an OSV record is an error naming it.
pub fn advisory_symbols(dir: &Path) -> Result<Vec<OsvSymbols>, IngestError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IngestError::Io { path, source }
    };
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    files.retain(|p| p.extension().is_some_and(|e| e == "json") && p.is_file());
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let size = std::fs::metadata(&file).map_err(io(&file))?.len();
        if size > MAX_ADVISORY_BYTES {
            return Err(IngestError::TooLarge {
                path: file,
                size,
                limit: MAX_ADVISORY_BYTES,
            });
        }
        let bytes = std::fs::read(&file).map_err(io(&file))?;
        out.extend(record_symbols(&bytes, &file)?);
    }
    Ok(finish(out))
}

#[cfg(test)]
mod symbol_tests {
    use super::*;

    const RECORD: &str = r#"{
      "id": "GO-2023-2102",
      "aliases": ["CVE-2023-44487", "CVE-2023-39325"],
      "affected": [
        {"package": {"name": "stdlib", "ecosystem": "Go"},
         "ecosystem_specific": {"imports": [{"path": "net/http", "symbols": ["Server.Serve", "http2serverConn.serve"]}]}},
        {"package": {"name": "golang.org/x/net", "ecosystem": "Go"},
         "ecosystem_specific": {"imports": [
            {"path": "golang.org/x/net/http2", "symbols": ["serverConn.serve", "Server.ServeConn", "Server.ServeConn"]}
         ]}},
        {"package": {"name": "something", "ecosystem": "PyPI"},
         "ecosystem_specific": {"affected_functions": ["a.b"]}},
        {"package": {"name": "odd", "ecosystem": "Go"}, "ecosystem_specific": "not an object"}
      ]
    }"#;

    #[test]
    fn record_symbols_are_qualified_per_affected_package() {
        let got = record_symbols(RECORD.as_bytes(), Path::new("r.json")).unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        let net = got
            .iter()
            .find(|s| s.package == "golang.org/x/net")
            .unwrap();
        assert_eq!(
            net.symbols,
            [
                "golang.org/x/net/http2.Server.ServeConn",
                "golang.org/x/net/http2.serverConn.serve"
            ]
        );
        assert!(net.names("GO-2023-2102"));
        assert!(net.names("CVE-2023-39325"));
        assert!(!net.names("CVE-2023-3978"));
        let report = r#"{"results": [{"packages": [{"package": {"name": "golang.org/x/net", "version": "0.7.0", "ecosystem": "Go"},
                "vulnerabilities": [{"id": "CVE-2023-39325", "aliases": ["GO-2023-2102"]}, {"id": "GO-2023-1988"}]}]}]}"#;
        let Ok(crate::Input::Report(r)) = crate::parse(report.as_bytes(), Path::new("osv.json"))
        else {
            panic!("not a report")
        };
        // by alias on the finding's side, never another record's finding
        assert!(net.matches(&r.findings[0]));
        assert!(!net.matches(&r.findings[1]));
        let std = got.iter().find(|s| s.package == "stdlib").unwrap();
        assert!(!std.matches(&r.findings[0]), "another package");
        assert_eq!(std.symbols[0], "net/http.Server.Serve");
        assert_eq!(std.ecosystem, "Go");
    }

    /// An import without `symbols` is vulnerable as a whole: its sibling
    /// imports' symbols are not the package's vulnerable functions, so the
    /// (record, package) names none (no "never entered" claim from them).
    #[test]
    fn an_import_without_symbols_names_no_function_of_its_package() {
        let record = r#"{
          "id": "GO-2099-0001",
          "affected": [
            {"package": {"name": "golang.org/x/net", "ecosystem": "Go"},
             "ecosystem_specific": {"imports": [
                {"path": "golang.org/x/net/http2", "symbols": ["Server.ServeConn"]},
                {"path": "golang.org/x/net/http2/h2c"}
             ]}},
            {"package": {"name": "golang.org/x/text", "ecosystem": "Go"},
             "ecosystem_specific": {"imports": [
                {"path": "golang.org/x/text/language", "symbols": ["Parse"]},
                {"path": "golang.org/x/text/unicode", "symbols": [" "]}
             ]}},
            {"package": {"name": "stdlib", "ecosystem": "Go"},
             "ecosystem_specific": {"imports": [
                {"path": "net/http", "symbols": ["Server.Serve"]},
                {"path": "net/url", "symbols": null}
             ]}},
            {"package": {"name": "golang.org/x/crypto", "ecosystem": "Go"},
             "ecosystem_specific": {"imports": [
                {"path": "golang.org/x/crypto/ssh", "symbols": ["NewServerConn"]}
             ]}}
          ]
        }"#;
        let got = record_symbols(record.as_bytes(), Path::new("r.json")).unwrap();
        let packages: Vec<&str> = got.iter().map(|s| s.package.as_str()).collect();
        assert_eq!(packages, ["golang.org/x/crypto"], "{got:?}");
        assert_eq!(got[0].symbols, ["golang.org/x/crypto/ssh.NewServerConn"]);
    }

    #[test]
    fn report_symbols_read_the_embedded_records() {
        let report = format!(
            r#"{{"results": [{{"source": {{"path": "/app/server", "type": "binary"}},
                "packages": [{{"package": {{"name": "golang.org/x/net", "version": "0.7.0", "ecosystem": "Go"}},
                               "vulnerabilities": [{RECORD}, {RECORD}], "groups": []}}]}}]}}"#
        );
        let got = report_symbols(report.as_bytes(), Path::new("osv.json")).unwrap();
        // the same record twice yields its entries once
        assert_eq!(got.len(), 2);
        // the findings parse from the same bytes
        let Ok(crate::Input::Report(r)) = crate::parse(report.as_bytes(), Path::new("osv.json"))
        else {
            panic!("not a report")
        };
        assert_eq!(r.findings.len(), 2);
    }

    #[test]
    fn advisory_directories_read_every_record_and_name_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("GO-2023-2102.json"), RECORD).unwrap();
        std::fs::write(dir.path().join("README.md"), "not json").unwrap();
        let got = advisory_symbols(dir.path()).unwrap();
        assert_eq!(got.len(), 2);
        std::fs::write(dir.path().join("broken.json"), "{\"id\": 3}").unwrap();
        let err = advisory_symbols(dir.path()).unwrap_err().to_string();
        assert!(err.contains("broken.json"), "{err}");
        let missing = advisory_symbols(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope"), "{missing}");
    }
}
