//! Format detection in one streaming pass.
//!
//! The document is scanned once with a pattern of the few fields that tell
//! the formats apart; everything else is skipped without being stored, so
//! detection costs one parse and almost no memory even on a huge report.

use std::{fmt, path::Path};

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::Value;

use crate::{Format, IngestError};

/// Which parts of the document to keep while scanning.
#[derive(Debug)]
enum Pattern {
    /// Keep the value (only for small fields).
    Keep,
    /// Note that the key exists; skip the value.
    Present,
    /// An object: these keys are probed further, others skipped.
    Map(&'static [(&'static str, Pattern)]),
    /// An array: every element is probed with the inner pattern.
    Each(&'static Pattern),
}

/// What the scan kept.
#[derive(Debug)]
enum Probed {
    /// A value that did not have the expected shape (the kind found).
    Other(&'static str),
    Value(Value),
    Present,
    Map {
        keys: Vec<String>,
        fields: Vec<(&'static str, Probed)>,
    },
    Seq(Vec<Probed>),
}

impl Probed {
    fn get(&self, key: &str) -> Option<&Probed> {
        match self {
            Self::Map { fields, .. } => fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
    fn value(&self, key: &str) -> Option<&Value> {
        match self.get(key) {
            Some(Self::Value(v)) => Some(v),
            _ => None,
        }
    }
    fn str(&self, key: &str) -> Option<&str> {
        self.value(key).and_then(Value::as_str)
    }
    fn seq(&self, key: &str) -> Option<&[Probed]> {
        match self.get(key) {
            Some(Self::Seq(items)) => Some(items),
            _ => None,
        }
    }
}

const TOP: Pattern = Pattern::Map(&[
    ("matches", Pattern::Present),
    ("descriptor", Pattern::Map(&[("name", Pattern::Keep)])),
    ("artifacts", Pattern::Present),
    ("SchemaVersion", Pattern::Keep),
    ("Results", Pattern::Present),
    ("ArtifactName", Pattern::Present),
    (
        "results",
        Pattern::Each(&Pattern::Map(&[(
            "packages",
            Pattern::Each(&Pattern::Map(&[
                ("vulnerabilities", Pattern::Present),
                ("package", Pattern::Present),
            ])),
        )])),
    ),
    ("experimental_config", Pattern::Present),
    ("spdxVersion", Pattern::Keep),
    ("bomFormat", Pattern::Keep),
    ("specVersion", Pattern::Keep),
    (
        "vulnerabilities",
        Pattern::Each(&Pattern::Map(&[("analysis", Pattern::Present)])),
    ),
    ("@context", Pattern::Keep),
    ("document", Pattern::Map(&[("csaf_version", Pattern::Keep)])),
]);

/// Most top-level keys listed in an unknown-format error.
const MAX_KEYS_SHOWN: usize = 32;

/// A recognised format and the version field to check before parsing.
#[derive(Debug)]
pub(crate) struct Detected {
    pub(crate) format: Format,
    /// The version as written and its JSON path, for formats that state one.
    version: Option<(String, &'static str)>,
}

impl Detected {
    /// Fails for a version of the format this crate does not read.
    pub(crate) fn check_version(&self, origin: &Path) -> Result<(), IngestError> {
        let Some((version, json_path)) = &self.version else {
            return Ok(());
        };
        let ok = match self.format {
            Format::Trivy => version == "2",
            Format::Spdx => matches!(version.as_str(), "SPDX-2.2" | "SPDX-2.3"),
            Format::CycloneDx => matches!(version.as_str(), "1.4" | "1.5" | "1.6"),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(IngestError::UnsupportedVersion {
                path: origin.to_path_buf(),
                format: self.format,
                json_path: (*json_path).to_owned(),
                version: version.clone(),
            })
        }
    }
}

/// Recognises the format of `bytes`; `origin` names the input in errors.
pub(crate) fn detect(bytes: &[u8], origin: &Path) -> Result<Detected, IngestError> {
    let bytes = crate::common::strip_bom(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::Empty {
            path: origin.to_path_buf(),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let top = PatternSeed(&TOP)
        .deserialize(&mut de)
        .and_then(|top| de.end().map(|()| top))
        .map_err(|e| IngestError::from_json(origin, &e, ".".to_owned()))?;
    classify(&top).ok_or_else(|| match &top {
        Probed::Map { keys, .. } => IngestError::UnknownFormat {
            path: origin.to_path_buf(),
            keys: keys.iter().take(MAX_KEYS_SHOWN).cloned().collect(),
        },
        Probed::Other(found) => IngestError::NotAnObject {
            path: origin.to_path_buf(),
            found,
        },
        Probed::Value(_) | Probed::Present | Probed::Seq(_) => IngestError::NotAnObject {
            path: origin.to_path_buf(),
            found: "not an object",
        },
    })
}

fn classify(top: &Probed) -> Option<Detected> {
    let plain = |format| {
        Some(Detected {
            format,
            version: None,
        })
    };
    if !matches!(top, Probed::Map { .. }) {
        return None;
    }
    if is_openvex_context(top.value("@context")) {
        return plain(Format::OpenVex);
    }
    if top.get("document").is_some_and(|d| d.has("csaf_version")) {
        return plain(Format::Csaf);
    }
    if top.str("bomFormat") == Some("CycloneDX") {
        let vex = top
            .seq("vulnerabilities")
            .is_some_and(|vs| vs.iter().any(|v| v.has("analysis")));
        if vex {
            return plain(Format::CycloneDxVex);
        }
        let version = top
            .value("specVersion")
            .map(scalar_text)
            .unwrap_or_default();
        return Some(Detected {
            format: Format::CycloneDx,
            version: Some((version, "specVersion")),
        });
    }
    if let Some(v) = top.value("spdxVersion") {
        return Some(Detected {
            format: Format::Spdx,
            version: Some((scalar_text(v), "spdxVersion")),
        });
    }
    let descriptor = top.get("descriptor").and_then(|d| d.str("name"));
    if top.has("matches") && descriptor == Some("grype") {
        return plain(Format::Grype);
    }
    if top.has("artifacts") && descriptor == Some("syft") {
        return plain(Format::Syft);
    }
    if let Some(v) = top.value("SchemaVersion") {
        if top.has("Results") || top.has("ArtifactName") {
            return Some(Detected {
                format: Format::Trivy,
                version: Some((scalar_text(v), "SchemaVersion")),
            });
        }
    }
    if is_osv(top) {
        return plain(Format::OsvScanner);
    }
    None
}

/// OSV-Scanner: `results` is an array of objects that each hold a
/// `packages` array whose entries hold a `package` or `vulnerabilities`
/// (or an empty `results` beside `experimental_config`, as a clean scan writes).
fn is_osv(top: &Probed) -> bool {
    let Some(results) = top.seq("results") else {
        return false;
    };
    if results.is_empty() {
        return top.has("experimental_config");
    }
    results.iter().all(|r| {
        r.seq("packages").is_some_and(|pkgs| {
            pkgs.iter()
                .all(|p| p.has("package") || p.has("vulnerabilities"))
        })
    })
}

fn is_openvex_context(ctx: Option<&Value>) -> bool {
    let starts = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.starts_with("https://openvex.dev/ns"))
    };
    match ctx {
        Some(Value::Array(items)) => items.iter().any(starts),
        Some(v) => starts(v),
        None => false,
    }
}

/// A version field as text (`2`, `"1.5"` → `1.5`).
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

struct PatternSeed(&'static Pattern);

impl<'de> DeserializeSeed<'de> for PatternSeed {
    type Value = Probed;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Probed, D::Error> {
        match self.0 {
            Pattern::Keep => Value::deserialize(d).map(Probed::Value),
            Pattern::Present => IgnoredAny::deserialize(d).map(|_| Probed::Present),
            pattern => d.deserialize_any(ShapeVisitor(pattern)),
        }
    }
}

struct ShapeVisitor(&'static Pattern);

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Probed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Probed, E> {
        Ok(Probed::Other("null"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Probed, E> {
        Ok(Probed::Other("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Probed, E> {
        Ok(Probed::Other("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Probed, E> {
        Ok(Probed::Other("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Probed, E> {
        Ok(Probed::Other("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Probed, E> {
        Ok(Probed::Other("a string"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Probed, A::Error> {
        match self.0 {
            Pattern::Each(inner) => {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element_seed(PatternSeed(inner))? {
                    items.push(item);
                }
                Ok(Probed::Seq(items))
            }
            _ => {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Probed::Other("an array"))
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probed, A::Error> {
        let Pattern::Map(wanted) = self.0 else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Probed::Other("an object"));
        };
        let mut keys = Vec::new();
        let mut fields = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match wanted.iter().find(|(k, _)| *k == key) {
                Some((k, p)) if !fields.iter().any(|(f, _)| f == k) => {
                    fields.push((*k, map.next_value_seed(PatternSeed(p))?));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            keys.push(key);
        }
        Ok(Probed::Map { keys, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_formats_from_minimal_documents() {
        let cases: &[(&str, Format)] = &[
            (
                r#"{"matches":[],"descriptor":{"name":"grype","version":"0.92.2"}}"#,
                Format::Grype,
            ),
            (
                r#"{"descriptor":{"name":"syft"},"artifacts":[]}"#,
                Format::Syft,
            ),
            (
                r#"{"SchemaVersion":2,"ArtifactName":"x","Results":[]}"#,
                Format::Trivy,
            ),
            (
                r#"{"results":[{"packages":[{"package":{},"vulnerabilities":[]}]}]}"#,
                Format::OsvScanner,
            ),
            (
                r#"{"results":[],"experimental_config":{}}"#,
                Format::OsvScanner,
            ),
            (r#"{"spdxVersion":"SPDX-2.3","packages":[]}"#, Format::Spdx),
            (
                r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}"#,
                Format::CycloneDx,
            ),
            (
                r#"{"bomFormat":"CycloneDX","specVersion":"1.5","vulnerabilities":[{"id":"x"}]}"#,
                Format::CycloneDx,
            ),
            (
                r#"{"bomFormat":"CycloneDX","specVersion":"1.5","vulnerabilities":[{"id":"x","analysis":{}}]}"#,
                Format::CycloneDxVex,
            ),
            (
                r#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}"#,
                Format::OpenVex,
            ),
            (
                r#"{"document":{"csaf_version":"2.0"},"vulnerabilities":[]}"#,
                Format::Csaf,
            ),
        ];
        for (doc, want) in cases {
            let got = detect(doc.as_bytes(), Path::new("t.json")).map(|d| d.format);
            assert_eq!(got.ok(), Some(*want), "{doc}");
        }
    }

    #[test]
    fn near_misses_are_unknown() {
        let cases = [
            r#"{"matches":[],"descriptor":{"name":"other"}}"#,
            r#"{"results":[{"path":"x"}]}"#,
            r#"{"results":5}"#,
            r#"{"descriptor":7,"matches":1}"#,
            r#"{"@context":"https://schema.org"}"#,
        ];
        for doc in cases {
            let err = detect(doc.as_bytes(), Path::new("t.json")).expect_err(doc);
            assert!(
                matches!(err, IngestError::UnknownFormat { .. }),
                "{doc}: {err}"
            );
        }
    }
}
