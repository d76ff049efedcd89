//! Validation of OpenVEX documents against the official schema and the
//! conventions scanners need.

use std::{collections::HashMap, path::Path};

use serde_json::Value;
use vexxy_model::Purl;

use crate::{openvex::OPENVEX_CONTEXT, VexError};

/// The official OpenVEX 0.2.0 JSON Schema, unchanged (see `schemas/README.md`).
pub const OPENVEX_SCHEMA: &str = include_str!("../schemas/openvex_json_schema.json");

/// One thing that keeps a document from being valid or from being applied
/// by scanners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// JSON Pointer (RFC 6901) of the offending value; empty for the root.
    pub json_path: String,
    /// What is wrong, lowercase.
    pub message: String,
}

/// The outcome of [`validate_openvex`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationReport {
    /// Schema violations and broken scanner conventions; empty when valid.
    pub problems: Vec<Problem>,
    /// Remarks that do not make the document invalid.
    pub notes: Vec<String>,
}

impl ValidationReport {
    /// Whether no problem was found.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Validates an OpenVEX document: the official JSON Schema, then the
/// scanner conventions (the exact v0.2.0 context, one statement per
/// product × vulnerability, product `@id` purls without qualifiers,
/// parseable subcomponent purls).
///
/// `vexxy_evidence` objects are outside the official schema: they are
/// removed before schema validation and reported as a note. Only bytes that
/// are not JSON are an error; everything else is a [`Problem`].
pub fn validate_openvex(bytes: &[u8], origin: &Path) -> Result<ValidationReport, VexError> {
    let mut doc: Value = serde_json::from_slice(bytes).map_err(|source| VexError::Json {
        file: origin.to_path_buf(),
        source,
    })?;
    let mut report = ValidationReport::default();

    let stripped = strip_evidence(&mut doc);
    if stripped > 0 {
        report.notes.push(format!(
            "{stripped} statement(s) carry vexxy_evidence, which is outside the official schema; it was removed before schema validation (scanners ignore it, strict validators reject it)"
        ));
    }

    let schema: Value = serde_json::from_str(OPENVEX_SCHEMA).map_err(|e| VexError::Schema {
        which: "openvex",
        message: e.to_string(),
    })?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| VexError::Schema {
        which: "openvex",
        message: e.to_string(),
    })?;
    for e in validator.iter_errors(&doc) {
        report.problems.push(Problem {
            json_path: e.instance_path.to_string(),
            message: format!("schema: {e}"),
        });
    }

    conventions(&doc, &mut report);
    Ok(report)
}

fn strip_evidence(doc: &mut Value) -> usize {
    let mut n = 0;
    if let Some(statements) = doc.get_mut("statements").and_then(Value::as_array_mut) {
        for s in statements {
            if let Some(obj) = s.as_object_mut() {
                if obj.shift_remove("vexxy_evidence").is_some() {
                    n += 1;
                }
            }
        }
    }
    n
}

fn conventions(doc: &Value, report: &mut ValidationReport) {
    let mut problem =
        |json_path: String, message: String| report.problems.push(Problem { json_path, message });
    match doc.get("@context").and_then(Value::as_str) {
        Some(OPENVEX_CONTEXT) => {}
        Some(other) => problem(
            "/@context".into(),
            format!("context {other:?} is not exactly {OPENVEX_CONTEXT:?}; grype hands other contexts to a legacy parser"),
        ),
        None => problem("/@context".into(), "no @context string".into()),
    }
    let Some(statements) = doc.get("statements").and_then(Value::as_array) else {
        return;
    };
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    for (i, s) in statements.iter().enumerate() {
        let vuln = s
            .get("vulnerability")
            .and_then(|v| v.get("name").and_then(Value::as_str).or_else(|| v.as_str()))
            .unwrap_or_default()
            .to_owned();
        let Some(products) = s.get("products").and_then(Value::as_array) else {
            continue;
        };
        for (j, p) in products.iter().enumerate() {
            let at = format!("/statements/{i}/products/{j}");
            let id = p.get("@id").and_then(Value::as_str);
            match id.map(str::parse::<Purl>) {
                None => problem(at.clone(), "product has no @id; scanners match products by purl".into()),
                Some(Err(e)) => problem(format!("{at}/@id"), format!("product @id is not a package url: {e}")),
                Some(Ok(purl)) if !purl.qualifiers().is_empty() => problem(
                    format!("{at}/@id"),
                    format!(
                        "product @id {} has qualifiers; every qualifier must match the scanner's purl exactly, so leave them off",
                        id.unwrap_or_default()
                    ),
                ),
                Some(Ok(_)) => {}
            }
            if let Some(id) = id {
                let key = (id.to_owned(), vuln.clone());
                match seen.get(&key) {
                    Some(first) => problem(
                        at.clone(),
                        format!(
                            "second statement for product {id} and vulnerability {vuln} (first at {first}); trivy applies the newest and grype the oldest"
                        ),
                    ),
                    None => {
                        seen.insert(key, at.clone());
                    }
                }
            }
            let subs = p
                .get("subcomponents")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for (k, sub) in subs.iter().enumerate() {
                let sub_at = format!("{at}/subcomponents/{k}/@id");
                match sub
                    .get("@id")
                    .and_then(Value::as_str)
                    .map(str::parse::<Purl>)
                {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => problem(
                        sub_at,
                        format!("subcomponent @id is not a package url: {e}"),
                    ),
                    None => problem(sub_at, "subcomponent has no @id purl".into()),
                }
            }
        }
    }
}
