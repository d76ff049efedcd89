//! Issuing an image's OpenVEX document from its records and human
//! statements, and comparing two issued documents.

use std::{collections::BTreeMap, path::Path};

use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use vexxy_decide::Decision;
use vexxy_model::{Confidence, Decider, Product, Verdict, VexDocument};
use vexxy_vex::{read_vex, validate_openvex, write_openvex, OpenVexOptions};

use crate::{human_notes, HumanStatement, ReviewError, StatementRecord};

/// The tool named in issued documents, as the analysis pipeline names it.
pub const TOOL: &str = concat!("vexxy/", env!("CARGO_PKG_VERSION"));

/// One version of an image's document.
#[derive(Clone, Copy, Debug)]
pub struct Issue<'a> {
    /// The image the statements are about.
    pub product: &'a Product,
    /// Every finding's automated statement (any order).
    pub records: &'a [StatementRecord],
    /// The human statements in force (any order). Each replaces the
    /// automated verdict of its vulnerability × package key; of several for
    /// one key the newest wins; one whose finding is not among `records` is
    /// left out (the finding is gone from the image).
    pub humans: &'a [HumanStatement],
    /// The document version (`1` for the first).
    pub version: u32,
    /// When version 1 was issued: the document's `timestamp`.
    pub first_issued: OffsetDateTime,
    /// When this version was issued: the document's `last_updated`.
    pub last_updated: Option<OffsetDateTime>,
    /// The document's author (the organisation).
    pub author: &'a str,
}

/// The image's OpenVEX 0.2.0 document, pretty-printed (see
/// [`Issue::document`]); checked against the official schema.
pub fn issue(i: &Issue<'_>) -> Result<Vec<u8>, ReviewError> {
    let doc = i.document()?;
    let text = write_openvex(
        &doc,
        &OpenVexOptions {
            embed_evidence: false,
            pretty: true,
        },
    )
    .map_err(|source| ReviewError::Vex {
        which: "issued",
        source,
    })?;
    let report =
        validate_openvex(text.as_bytes(), Path::new("issued.openvex.json")).map_err(|source| {
            ReviewError::Vex {
                which: "issued",
                source,
            }
        })?;
    if !report.is_valid() {
        return Err(ReviewError::Invalid {
            problems: report
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.json_path, p.message))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok(text.into_bytes())
}

impl Issue<'_> {
    /// The document in the abstract (other writers, such as CycloneDX, take
    /// it too).
    ///
    /// Statements are aggregated per vulnerability by
    /// [`vexxy_decide::statements`] over the records sorted by
    /// vulnerability id and package key, each finding with its human
    /// verdict when it has one, else its automated verdict; with no human
    /// statements they are what the engine wrote for the same findings
    /// (given in that order). A human verdict is signed for its author
    /// (decided by them, confidence 1, `status_notes` naming them, the date
    /// and the reason), and a statement that carries one is timestamped
    /// with its newest human decision. The document `@id` is derived from
    /// the author and the product, so every version of one image's
    /// document has the same id.
    pub fn document(&self) -> Result<VexDocument, ReviewError> {
        if self.records.is_empty() {
            return Err(ReviewError::NothingToIssue);
        }
        let mut records: Vec<&StatementRecord> = self.records.iter().collect();
        records.sort_by(|a, b| {
            (&a.vulnerability_id, &a.package_key).cmp(&(&b.vulnerability_id, &b.package_key))
        });
        let humans = newest_humans(self.humans);
        let findings: Vec<_> = records.iter().map(|r| r.finding()).collect();
        let mut reviewed: BTreeMap<&str, OffsetDateTime> = BTreeMap::new();
        let decisions: Vec<Decision> = records
            .iter()
            .enumerate()
            .map(|(k, r)| {
                let human = humans.get(&(r.vulnerability_id.as_str(), r.package_key.as_str()));
                let verdict = match human {
                    Some(h) => {
                        reviewed
                            .entry(r.vulnerability_id.as_str())
                            .and_modify(|t| *t = (*t).max(h.decided_at))
                            .or_insert(h.decided_at);
                        human_verdict(h)
                    }
                    None => r.verdict.clone(),
                };
                Decision {
                    finding: k,
                    verdict,
                    existing: human.is_some(),
                }
            })
            .collect();
        let mut statements = vexxy_decide::statements(self.product, &findings, &decisions);
        for s in &mut statements {
            if let Some(at) = reviewed.get(s.vulnerability_id.as_str()) {
                s.timestamp = Some(*at);
            }
        }
        Ok(VexDocument {
            id: Some(document_id(self.author, self.product)),
            author: self.author.to_owned(),
            role: None,
            timestamp: self.first_issued,
            last_updated: self.last_updated,
            version: self.version,
            tooling: Some(TOOL.to_owned()),
            statements,
        })
    }
}

/// Of several human statements for one key, the newest (then, for equal
/// times, the greatest by author and reason, so the order given does not
/// matter).
fn newest_humans(humans: &[HumanStatement]) -> BTreeMap<(&str, &str), &HumanStatement> {
    let mut out: BTreeMap<(&str, &str), &HumanStatement> = BTreeMap::new();
    for h in humans {
        let key = (h.vulnerability_id.as_str(), h.package_key.as_str());
        let rank = |h: &HumanStatement| (h.decided_at, h.author.clone(), h.reason.clone());
        match out.get(&key) {
            Some(old) if rank(old) >= rank(h) => {}
            _ => {
                out.insert(key, h);
            }
        }
    }
    out
}

/// A human statement's verdict as documents carry it: decided by its
/// author, confidence 1, notes naming the author, date and reason (kept
/// when they already do).
fn human_verdict(h: &HumanStatement) -> Verdict {
    let mut v = h.verdict.clone();
    v.decided_by = Decider::Human {
        author: h.author.clone(),
    };
    v.confidence = Confidence::CERTAIN;
    let reason = h.reason.trim();
    if !(v.notes.contains(h.author.as_str()) && v.notes.contains(reason)) {
        let named = human_notes(&h.author, &crate::rfc3339(h.decided_at), reason);
        v.notes = if v.notes.trim().is_empty() {
            named
        } else {
            format!("{named}; {}", v.notes.trim())
        };
    }
    v
}

/// `urn:uuid:` and a version-8 UUID from the SHA-256 of the author and
/// the product (name and digest).
fn document_id(author: &str, product: &Product) -> String {
    let mut h = Sha256::new();
    h.update(b"vexxy-review/document\0");
    h.update(author.as_bytes());
    h.update([0u8]);
    h.update(product.name.as_bytes());
    h.update([0u8]);
    if let Some(d) = &product.digest {
        h.update(d.to_string().as_bytes());
    }
    let hash = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&hash[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// What changed from document `old` to document `new` (both OpenVEX, or
/// any format `vexxy_vex::read_vex` reads), keyed as `vexxy diff` keys
/// them: vulnerability × package without version.
pub fn compare(old: &[u8], new: &[u8]) -> Result<vexxy_report::VerdictDiff, ReviewError> {
    compare_counting(old, new).map(|(diff, _)| diff)
}

/// [`compare`], with how many keys both documents give the same verdict.
pub fn compare_counting(
    old: &[u8],
    new: &[u8],
) -> Result<(vexxy_report::VerdictDiff, usize), ReviewError> {
    let side = |bytes: &[u8], which: &'static str| {
        read_vex(bytes, Path::new(which))
            .map(|doc| vexxy_report::DiffSide::from_document(&doc))
            .map_err(|source| ReviewError::Vex { which, source })
    };
    let (old, new) = (side(old, "old")?, side(new, "new")?);
    let diff = vexxy_report::diff(&old, &new);
    let unchanged = new
        .verdicts
        .len()
        .saturating_sub(diff.added.len() + diff.changed.len());
    Ok((diff, unchanged))
}
