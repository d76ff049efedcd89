//! The evidence JSON (`urn:vexxy:evidence:v1`): every verdict with its
//! confidence, decider and the observations behind it.

use serde::Serialize;
use vexxy_model::{Justification, VexDocument};

use crate::{
    common::{group_statements, rfc3339, to_pretty, DeciderJson, EvidenceJson},
    VexError,
};

/// The schema id every evidence document carries.
pub const EVIDENCE_SCHEMA_ID: &str = "urn:vexxy:evidence:v1";

/// The JSON Schema of the evidence document (`schemas/evidence-v1.schema.json`).
pub const EVIDENCE_SCHEMA: &str = include_str!("../schemas/evidence-v1.schema.json");

#[derive(Serialize)]
struct OutEvidence<'a> {
    schema: &'static str,
    product: Option<String>,
    generated: String,
    author: &'a str,
    statements: Vec<OutStatement<'a>>,
}

#[derive(Serialize)]
struct OutStatement<'a> {
    vulnerability: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    aliases: &'a [String],
    product: String,
    packages: Vec<String>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    justification: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    impact_statement: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action_statement: Option<&'a str>,
    confidence: f64,
    decided_by: DeciderJson,
    notes: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    evidence: Vec<EvidenceJson>,
}

/// Writes the evidence JSON of a document: one entry per (product,
/// vulnerability), folded and sorted exactly like the OpenVEX statements,
/// with every evidence item in full. `product` is the image reference when
/// the document is about one image, `null` otherwise.
pub fn write_evidence(doc: &VexDocument) -> Result<String, VexError> {
    let groups = group_statements(doc)?;
    let mut products: Vec<String> = groups.iter().map(|g| g.product.to_string()).collect();
    products.sort();
    products.dedup();
    let statements = groups
        .iter()
        .map(|g| {
            Ok(OutStatement {
                vulnerability: g.vulnerability_id,
                aliases: &g.aliases,
                product: g.product_purl.clone(),
                packages: g.subcomponents.iter().map(ToString::to_string).collect(),
                status: g.status.as_str(),
                justification: g.justification.map(Justification::as_str),
                impact_statement: g.impact_statement.as_deref(),
                action_statement: g.action_statement.as_deref(),
                confidence: g.confidence.rounded(),
                decided_by: DeciderJson::from(g.decided_by),
                notes: g.notes.join("; "),
                timestamp: g.timestamp.map(rfc3339).transpose()?,
                evidence: g.evidence.iter().map(|e| EvidenceJson::from(*e)).collect(),
            })
        })
        .collect::<Result<Vec<_>, VexError>>()?;
    let out = OutEvidence {
        schema: EVIDENCE_SCHEMA_ID,
        product: match products.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        },
        generated: rfc3339(doc.timestamp)?,
        author: &doc.author,
        statements,
    };
    to_pretty(&out, "evidence")
}
