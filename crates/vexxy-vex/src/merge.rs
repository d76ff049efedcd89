//! Merging VEX documents into one statement per (product, vulnerability).

use std::collections::BTreeMap;

use time::OffsetDateTime;
use vexxy_model::{VexDocument, VexStatement};

use crate::common::VEXXY_VERSION;

/// Merges documents into one with a single statement per (product,
/// vulnerability).
///
/// For each key the winner is chosen by, in order: a human-authored
/// statement (`Decider::Human`) beats any other; then the newest statement
/// timestamp (a statement without one takes its document's timestamp);
/// then the later document (and, within one document, the later
/// statement). The winner keeps its verdict and gets its effective
/// timestamp; statements of the winner's own document with the same key,
/// status and justification lend it their subcomponents. The result is
/// authored by `author` at `now`, version 1, without an id.
pub fn merge(docs: Vec<VexDocument>, author: &str, now: OffsetDateTime) -> VexDocument {
    struct Candidate {
        human: bool,
        at: OffsetDateTime,
        doc: usize,
        pos: usize,
        statement: VexStatement,
    }
    let mut by_key: BTreeMap<(String, String), Vec<Candidate>> = BTreeMap::new();
    for (doc, d) in docs.into_iter().enumerate() {
        for (pos, statement) in d.statements.into_iter().enumerate() {
            let at = statement.timestamp.unwrap_or(d.timestamp);
            let human = statement.verdict.decided_by.is_human();
            by_key.entry(statement.key()).or_default().push(Candidate {
                human,
                at,
                doc,
                pos,
                statement,
            });
        }
    }
    let mut statements = Vec::with_capacity(by_key.len());
    for (_, mut candidates) in by_key {
        candidates.sort_by_key(|a| (a.human, a.at, a.doc, a.pos));
        let Some(winner) = candidates.pop() else {
            continue;
        };
        let mut chosen = winner.statement;
        chosen.timestamp = Some(winner.at);
        for c in candidates {
            let v = &c.statement.verdict;
            if c.doc == winner.doc
                && v.status() == chosen.verdict.status()
                && v.justification() == chosen.verdict.justification()
            {
                chosen.subcomponents.extend(c.statement.subcomponents);
            }
        }
        chosen.subcomponents.sort_by_key(ToString::to_string);
        chosen.subcomponents.dedup();
        statements.push(chosen);
    }
    statements.sort_by(|a, b| {
        a.vulnerability_id
            .cmp(&b.vulnerability_id)
            .then_with(|| a.product.oci_purl().cmp(&b.product.oci_purl()))
    });
    VexDocument {
        id: None,
        author: author.to_owned(),
        role: None,
        timestamp: now,
        last_updated: None,
        version: 1,
        tooling: Some(format!("vexxy {VEXXY_VERSION}")),
        statements,
    }
}
