//! Differences between the verdicts of two analyses (`vexxy diff`).
//!
//! Each side is the OpenVEX document an analysis wrote, reduced to one
//! verdict per key: (vulnerability id, package purl without version or
//! qualifiers). A statement about the image as a whole (no subcomponents)
//! is keyed by the image purl without digest (`pkg:oci/nginx`). Versions
//! and image digests are left out of the key on purpose: comparing an old
//! image with its rebuild is the point, so an upgraded package is the same
//! key with a changed version.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{format_description::well_known::Rfc3339, UtcOffset};
use vexxy_model::{Justification, Product, Purl, Status, VexDocument};

use crate::escape;
use crate::ReportError;

/// The file [`read_side`] reads in an analysis output directory.
pub const OPENVEX_FILE: &str = "vex.openvex.json";

/// Largest VEX document [`read_side`] reads (64 MiB).
pub const MAX_VEX_BYTES: u64 = 64 * 1024 * 1024;

/// What identifies a verdict across two analyses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DiffKey {
    /// The vulnerability id as the statement names it.
    pub vulnerability: String,
    /// The package purl without version, qualifiers or subpath
    /// (`pkg:deb/debian/libssl3`), or the image purl without digest for a
    /// statement about the whole image.
    pub package: String,
}

/// One side's verdict for a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictState {
    /// `not_affected`, `affected`, `fixed` or `under_investigation`.
    #[serde(serialize_with = "status_str", deserialize_with = "status_from_str")]
    pub status: Status,
    /// The justification of a `not_affected` verdict.
    #[serde(
        serialize_with = "justification_str",
        deserialize_with = "justification_from_str",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub justification: Option<Justification>,
    /// Package versions the statements name, sorted; empty when none does
    /// (VEX purls drop versions with a Debian epoch).
    pub versions: Vec<String>,
}

fn status_str<S: Serializer>(s: &Status, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

fn justification_str<S: Serializer>(j: &Option<Justification>, ser: S) -> Result<S::Ok, S::Error> {
    match j {
        Some(j) => ser.serialize_str(j.as_str()),
        None => ser.serialize_none(),
    }
}

/// The inverse of [`status_str`]: a diff read back (from the service's
/// `/api/v1/compare`) renders exactly as the one written.
fn status_from_str<'de, D: Deserializer<'de>>(de: D) -> Result<Status, D::Error> {
    let s = String::deserialize(de)?;
    Status::from_openvex(&s)
        .ok_or_else(|| serde::de::Error::custom(format!("status: {s:?} is not an OpenVEX status")))
}

/// The inverse of [`justification_str`].
fn justification_from_str<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<Justification>, D::Error> {
    Option::<String>::deserialize(de)?
        .map(|s| {
            Justification::from_openvex(&s).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "justification: {s:?} is not an OpenVEX justification"
                ))
            })
        })
        .transpose()
}

/// Where one side came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideInfo {
    /// The file read, when read from disk.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub origin: Option<String>,
    /// The document's `@id`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub document_id: Option<String>,
    /// The document's author.
    pub author: String,
    /// The document's timestamp, RFC 3339 in UTC.
    pub timestamp: String,
    /// The products its statements are about (`name[@sha256:…]`), sorted.
    pub products: Vec<String>,
}

/// One analysis, reduced to a verdict per [`DiffKey`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffSide {
    /// Where it came from.
    pub info: SideInfo,
    /// The verdicts. When several statements give one key different
    /// verdicts (several images in one document, or two packages with the
    /// same name) the most severe status wins, as in the decision engine:
    /// affected > under_investigation > fixed > not_affected.
    pub verdicts: BTreeMap<DiffKey, VerdictState>,
}

fn severity_rank(s: Status) -> u8 {
    match s {
        Status::Affected => 3,
        Status::UnderInvestigation => 2,
        Status::Fixed => 1,
        Status::NotAffected => 0,
    }
}

/// Whether moving from `old` to `new` makes things worse: `affected` is
/// worse than `under_investigation`, which is worse than `not_affected` and
/// `fixed`.
fn worse(old: Status, new: Status) -> bool {
    let rank = |s: Status| match s {
        Status::Affected => 2,
        Status::UnderInvestigation => 1,
        Status::Fixed | Status::NotAffected => 0,
    };
    rank(new) > rank(old)
}

fn package_key(p: &Purl) -> String {
    p.without_qualifiers().with_version(None).to_string()
}

fn rfc3339_utc(ts: time::OffsetDateTime) -> String {
    ts.checked_to_offset(UtcOffset::UTC)
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ts.to_string())
}

impl DiffSide {
    /// Reduces a VEX document (as `vexxy_vex::read_vex` returns it) to one
    /// verdict per key.
    pub fn from_document(doc: &VexDocument) -> Self {
        let mut verdicts: BTreeMap<DiffKey, VerdictState> = BTreeMap::new();
        let mut products = BTreeSet::new();
        for s in &doc.statements {
            products.insert(s.product.to_string());
            let keys: Vec<(String, Option<String>)> = if s.subcomponents.is_empty() {
                let image = Product {
                    name: s.product.name.clone(),
                    tag: None,
                    digest: None,
                };
                vec![(image.oci_purl(), None)]
            } else {
                s.subcomponents
                    .iter()
                    .map(|p| (package_key(p), p.version().map(str::to_owned)))
                    .collect()
            };
            let (status, justification) = (s.verdict.status(), s.verdict.justification());
            for (package, version) in keys {
                let key = DiffKey {
                    vulnerability: s.vulnerability_id.clone(),
                    package,
                };
                let state = verdicts.entry(key).or_insert_with(|| VerdictState {
                    status,
                    justification,
                    versions: Vec::new(),
                });
                let (old, new) = (severity_rank(state.status), severity_rank(status));
                if new > old || (new == old && justification < state.justification) {
                    state.status = status;
                    state.justification = justification;
                }
                if let Some(v) = version {
                    if let Err(at) = state.versions.binary_search(&v) {
                        state.versions.insert(at, v);
                    }
                }
            }
        }
        Self {
            info: SideInfo {
                origin: None,
                document_id: doc.id.clone(),
                author: doc.author.clone(),
                timestamp: rfc3339_utc(doc.timestamp),
                products: products.into_iter().collect(),
            },
            verdicts,
        }
    }

    /// The same side, recording where it was read from.
    #[must_use]
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.info.origin = Some(origin.into());
        self
    }
}

/// Reads one side of a diff: `<dir>/vex.openvex.json` ([`OPENVEX_FILE`]),
/// or `dir` itself when it is a file. Reads at most [`MAX_VEX_BYTES`];
/// the document may be in any format `vexxy_vex::read_vex` reads.
pub fn read_side(dir: &Path) -> Result<DiffSide, ReportError> {
    let path = if dir.is_file() {
        dir.to_path_buf()
    } else {
        dir.join(OPENVEX_FILE)
    };
    let read_err = |source| ReportError::Read {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::open(&path).map_err(read_err)?;
    let too_large = || ReportError::TooLarge {
        path: path.clone(),
        limit: MAX_VEX_BYTES,
    };
    if file.metadata().map_err(read_err)?.len() > MAX_VEX_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(MAX_VEX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_VEX_BYTES {
        return Err(too_large());
    }
    let doc = vexxy_vex::read_vex(&bytes, &path).map_err(|source| ReportError::Vex {
        path: path.clone(),
        source,
    })?;
    Ok(DiffSide::from_document(&doc).with_origin(path.display().to_string()))
}

/// A key present on one side only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffEntry {
    #[serde(flatten)]
    pub key: DiffKey,
    #[serde(flatten)]
    pub verdict: VerdictState,
}

/// A key whose verdict or versions differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictChange {
    #[serde(flatten)]
    pub key: DiffKey,
    pub old: VerdictState,
    pub new: VerdictState,
    pub status_changed: bool,
    pub justification_changed: bool,
    pub versions_changed: bool,
    /// The new status is worse (affected > under_investigation >
    /// not_affected, fixed).
    pub regression: bool,
}

/// What changed between two analyses, sorted by vulnerability id then
/// package. It reads back from its JSON ([`VerdictDiff::to_json`]) as it
/// was, so a client renders a diff the service computed exactly as
/// `vexxy diff` renders its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictDiff {
    pub old: SideInfo,
    pub new: SideInfo,
    /// Keys only the new side has (new findings).
    pub added: Vec<DiffEntry>,
    /// Keys only the old side has (findings gone).
    pub removed: Vec<DiffEntry>,
    /// Keys on both sides with a different status, justification or
    /// package versions.
    pub changed: Vec<VerdictChange>,
}

/// Compares two sides.
pub fn diff(old: &DiffSide, new: &DiffSide) -> VerdictDiff {
    let mut out = VerdictDiff {
        old: old.info.clone(),
        new: new.info.clone(),
        ..VerdictDiff::default()
    };
    for (key, o) in &old.verdicts {
        match new.verdicts.get(key) {
            None => out.removed.push(DiffEntry {
                key: key.clone(),
                verdict: o.clone(),
            }),
            Some(n) if n != o => out.changed.push(VerdictChange {
                key: key.clone(),
                old: o.clone(),
                new: n.clone(),
                status_changed: o.status != n.status,
                justification_changed: o.justification != n.justification,
                versions_changed: o.versions != n.versions,
                regression: worse(o.status, n.status),
            }),
            Some(_) => {}
        }
    }
    for (key, n) in &new.verdicts {
        if !old.verdicts.contains_key(key) {
            out.added.push(DiffEntry {
                key: key.clone(),
                verdict: n.clone(),
            });
        }
    }
    out
}

fn verdict_words(v: &VerdictState) -> String {
    match v.justification {
        Some(j) => format!("{} ({j})", v.status),
        None => v.status.to_string(),
    }
}

fn versions_words(v: &VerdictState) -> String {
    if v.versions.is_empty() {
        "no version".to_owned()
    } else {
        v.versions.join(", ")
    }
}

/// What changed, in words (`status not_affected -> affected; …`).
fn change_words(c: &VerdictChange) -> String {
    let mut parts = Vec::new();
    if c.status_changed {
        parts.push(format!("status {} -> {}", c.old.status, c.new.status));
    }
    if c.justification_changed {
        let j = |j: Option<Justification>| j.map_or("none", Justification::as_str);
        parts.push(format!(
            "justification {} -> {}",
            j(c.old.justification),
            j(c.new.justification)
        ));
    }
    if c.versions_changed {
        parts.push(format!(
            "version {} -> {}",
            versions_words(&c.old),
            versions_words(&c.new)
        ));
    }
    parts.join("; ")
}

/// [`change_words`] for Markdown: statuses, justifications and versions as
/// code spans, arrows as `→`.
fn change_markdown(c: &VerdictChange) -> String {
    use escape::md_code;
    let j = |j: Option<Justification>| j.map_or_else(|| "none".to_owned(), |j| format!("`{j}`"));
    let v = |v: &VerdictState| {
        if v.versions.is_empty() {
            "no version".to_owned()
        } else {
            md_code(&v.versions.join(", "))
        }
    };
    let mut parts = Vec::new();
    if c.status_changed {
        parts.push(format!("status `{}` → `{}`", c.old.status, c.new.status));
    }
    if c.justification_changed {
        parts.push(format!(
            "justification {} → {}",
            j(c.old.justification),
            j(c.new.justification)
        ));
    }
    if c.versions_changed {
        parts.push(format!("version {} → {}", v(&c.old), v(&c.new)));
    }
    parts.join("; ")
}

impl VerdictDiff {
    /// True when nothing was added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Changes to a worse status.
    pub fn regressions(&self) -> usize {
        self.changed.iter().filter(|c| c.regression).count()
    }

    fn headline(&self) -> String {
        if self.is_empty() {
            return "no differences".to_owned();
        }
        let mut s = format!(
            "{} added, {} removed, {} changed",
            self.added.len(),
            self.removed.len(),
            self.changed.len()
        );
        match self.regressions() {
            0 => {}
            1 => s.push_str(" (1 regression)"),
            n => {
                let _ = write!(s, " ({n} regressions)");
            }
        }
        s
    }

    fn side_words(info: &SideInfo) -> String {
        let products = if info.products.is_empty() {
            "no statements".to_owned()
        } else {
            info.products.join(", ")
        };
        format!("{products} ({})", info.timestamp)
    }

    /// Plain text for a terminal: one line per difference. Control
    /// characters from the documents are replaced, so a document cannot
    /// send escape sequences to the terminal.
    pub fn to_text(&self) -> String {
        let p = escape::plain;
        let mut out = String::new();
        let _ = writeln!(out, "vex diff: {}", self.headline());
        let _ = writeln!(out, "old: {}", p(&Self::side_words(&self.old)));
        let _ = writeln!(out, "new: {}", p(&Self::side_words(&self.new)));
        let entries = |out: &mut String, title: &str, mark: char, list: &[DiffEntry]| {
            if list.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n{title}:");
            for e in list {
                let _ = writeln!(
                    out,
                    "  {mark} {} {} {}: {}",
                    p(&e.key.vulnerability),
                    p(&e.key.package),
                    p(&versions_words(&e.verdict)),
                    verdict_words(&e.verdict)
                );
            }
        };
        entries(&mut out, "added", '+', &self.added);
        entries(&mut out, "removed", '-', &self.removed);
        if !self.changed.is_empty() {
            let _ = writeln!(out, "\nchanged:");
            for c in &self.changed {
                let _ = writeln!(
                    out,
                    "  ~ {} {}: {}{}",
                    p(&c.key.vulnerability),
                    p(&c.key.package),
                    p(&change_words(c)),
                    if c.regression { " [regression]" } else { "" }
                );
            }
        }
        out
    }

    /// A Markdown report: a headline, then tables of added, removed and
    /// changed verdicts.
    pub fn to_markdown(&self) -> String {
        use escape::{md_code, md_text};
        let mut out = String::from("# VEX diff\n\n");
        for (label, info) in [("Old", &self.old), ("New", &self.new)] {
            let products = if info.products.is_empty() {
                "no statements".to_owned()
            } else {
                info.products
                    .iter()
                    .map(|p| md_code(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "- **{label}:** {products}, {}{}",
                md_text(&info.timestamp),
                info.document_id
                    .as_deref()
                    .map(|id| format!(", document {}", md_code(id)))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(out, "\n**{}**", self.headline());
        let entries = |out: &mut String, title: &str, list: &[DiffEntry]| {
            if list.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n## {title} ({})\n", list.len());
            out.push_str("| Vulnerability | Package | Version | Status | Justification |\n");
            out.push_str("|---|---|---|---|---|\n");
            for e in list {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | `{}` | {} |",
                    md_code(&e.key.vulnerability),
                    md_code(&e.key.package),
                    md_code(&e.verdict.versions.join(", ")),
                    e.verdict.status,
                    e.verdict
                        .justification
                        .map_or_else(|| "—".to_owned(), |j| format!("`{j}`"))
                );
            }
        };
        entries(&mut out, "Added", &self.added);
        entries(&mut out, "Removed", &self.removed);
        if !self.changed.is_empty() {
            let _ = writeln!(out, "\n## Changed ({})\n", self.changed.len());
            out.push_str("| Vulnerability | Package | Old | New | Change |\n");
            out.push_str("|---|---|---|---|---|\n");
            for c in &self.changed {
                let side = |v: &VerdictState| {
                    let mut s = format!("`{}`", v.status);
                    if let Some(j) = v.justification {
                        let _ = write!(s, " (`{j}`)");
                    }
                    if !v.versions.is_empty() {
                        let _ = write!(s, " {}", md_code(&v.versions.join(", ")));
                    }
                    s
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {}{} |",
                    md_code(&c.key.vulnerability),
                    md_code(&c.key.package),
                    side(&c.old),
                    side(&c.new),
                    change_markdown(c),
                    if c.regression {
                        " **(regression)**"
                    } else {
                        ""
                    }
                );
            }
        }
        out
    }

    /// The diff as pretty JSON (two-space indent, final newline).
    pub fn to_json(&self) -> Result<String, ReportError> {
        let mut s =
            serde_json::to_string_pretty(self).map_err(|source| ReportError::Encode { source })?;
        s.push('\n');
        Ok(s)
    }
}
