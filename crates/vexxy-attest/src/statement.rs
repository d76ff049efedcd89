//! in-toto Statement v1: building and checking.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::AttestError;

/// The `_type` of an in-toto Statement v1 (what [`crate::attest`] writes).
pub const IN_TOTO_STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

/// The `_type` of the older in-toto Statement v0.1 (still written by some
/// cosign versions); same fields, accepted by [`crate::verify`].
pub const IN_TOTO_STATEMENT_V0_1: &str = "https://in-toto.io/Statement/v0.1";

/// The predicate type of an OpenVEX document, as cosign's `--type openvex` writes it.
pub const OPENVEX_PREDICATE_TYPE: &str = "https://openvex.dev/ns";

/// A software artifact a statement is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subject {
    /// The artifact's name (an image reference without the digest); empty when
    /// a verified statement left it unset.
    pub name: String,
    /// Digests by algorithm name (`sha256` → lowercase hex).
    pub digest: BTreeMap<String, String>,
}

/// A statement whose envelope signature verified.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedStatement {
    /// What the statement is about (at least one subject, each with a digest).
    pub subject: Vec<Subject>,
    /// The URI saying how to read the predicate.
    pub predicate_type: String,
    /// The predicate (a JSON object, or null when the statement has none).
    pub predicate: Value,
}

#[derive(Serialize)]
struct StatementOut<'a> {
    #[serde(rename = "_type")]
    statement_type: &'static str,
    subject: [&'a Subject; 1],
    #[serde(rename = "predicateType")]
    predicate_type: &'a str,
    predicate: &'a Value,
}

/// Checks `sha256:<64 lowercase hex>` and returns the hex part.
fn sha256_hex(digest: &str) -> Result<&str, AttestError> {
    let bad = || AttestError::InvalidSubjectDigest(digest.to_owned());
    let hex = digest.strip_prefix("sha256:").ok_or_else(bad)?;
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(hex)
    } else {
        Err(bad())
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Validates the inputs and serializes the statement as compact JSON.
pub(crate) fn build(
    subject_name: &str,
    subject_digest: &str,
    predicate_type: &str,
    predicate: &Value,
) -> Result<Vec<u8>, AttestError> {
    if subject_name.trim().is_empty() || subject_name.chars().any(char::is_control) {
        return Err(AttestError::InvalidSubjectName(subject_name.to_owned()));
    }
    let hex = sha256_hex(subject_digest)?;
    if predicate_type.trim().is_empty() {
        return Err(AttestError::InvalidPredicateType);
    }
    if !predicate.is_object() {
        return Err(AttestError::InvalidPredicate(json_kind(predicate)));
    }
    let subject = Subject {
        name: subject_name.to_owned(),
        digest: BTreeMap::from([("sha256".to_owned(), hex.to_owned())]),
    };
    let statement = StatementOut {
        statement_type: IN_TOTO_STATEMENT_V1,
        subject: [&subject],
        predicate_type,
        predicate,
    };
    serde_json::to_vec(&statement).map_err(AttestError::Serialize)
}

fn not_statement(reason: impl Into<String>) -> AttestError {
    AttestError::NotAStatement(reason.into())
}

fn parse_subject(i: usize, value: &Value) -> Result<Subject, AttestError> {
    let object = value.as_object().ok_or_else(|| {
        not_statement(format!(
            "subject[{i}] is {}, not an object",
            json_kind(value)
        ))
    })?;
    let name = match object.get("name") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(not_statement(format!(
                "subject[{i}].name is {}, not a string",
                json_kind(other)
            )))
        }
    };
    let digests = match object.get("digest") {
        Some(Value::Object(map)) if !map.is_empty() => map,
        Some(Value::Object(_)) => {
            return Err(not_statement(format!("subject[{i}].digest is empty")))
        }
        Some(other) => {
            return Err(not_statement(format!(
                "subject[{i}].digest is {}, not an object",
                json_kind(other)
            )))
        }
        None => return Err(not_statement(format!("subject[{i}] has no digest"))),
    };
    let mut digest = BTreeMap::new();
    for (alg, value) in digests {
        let hex = value.as_str().ok_or_else(|| {
            not_statement(format!(
                "subject[{i}].digest.{alg} is {}, not a string",
                json_kind(value)
            ))
        })?;
        digest.insert(alg.clone(), hex.to_owned());
    }
    Ok(Subject { name, digest })
}

/// Parses and checks an in-toto statement (v1 or v0.1).
pub(crate) fn parse(payload: &[u8]) -> Result<VerifiedStatement, AttestError> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| not_statement(format!("the payload is not json ({e})")))?;
    let mut object = match value {
        Value::Object(map) => map,
        other => {
            return Err(not_statement(format!(
                "the payload is {}, not an object",
                json_kind(&other)
            )))
        }
    };
    match object.get("_type") {
        Some(Value::String(t)) if t == IN_TOTO_STATEMENT_V1 || t == IN_TOTO_STATEMENT_V0_1 => {}
        Some(Value::String(t)) => {
            return Err(not_statement(format!(
                "_type is {t:?}, expected {IN_TOTO_STATEMENT_V1:?}"
            )))
        }
        Some(other) => {
            return Err(not_statement(format!(
                "_type is {}, not a string",
                json_kind(other)
            )))
        }
        None => return Err(not_statement("it has no _type")),
    }
    let subject = match object.get("subject") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_subject(i, v))
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::Array(_)) => return Err(not_statement("subject is empty")),
        Some(other) => {
            return Err(not_statement(format!(
                "subject is {}, not an array",
                json_kind(other)
            )))
        }
        None => return Err(not_statement("it has no subject")),
    };
    let predicate_type = match object.get("predicateType") {
        Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
        Some(Value::String(_)) => return Err(not_statement("predicateType is empty")),
        Some(other) => {
            return Err(not_statement(format!(
                "predicateType is {}, not a string",
                json_kind(other)
            )))
        }
        None => return Err(not_statement("it has no predicateType")),
    };
    let predicate = match object.remove("predicate") {
        None => Value::Null,
        Some(p @ (Value::Object(_) | Value::Null)) => p,
        Some(other) => {
            return Err(not_statement(format!(
                "predicate is {}, not an object",
                json_kind(&other)
            )))
        }
    };
    Ok(VerifiedStatement {
        subject,
        predicate_type,
        predicate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_validation() {
        let good = format!("sha256:{}", "a1".repeat(32));
        assert_eq!(sha256_hex(&good).ok(), Some("a1".repeat(32).as_str()));
        for bad in [
            String::new(),
            "a1".repeat(32),
            format!("sha512:{}", "a1".repeat(32)),
            format!("sha256:{}", "A1".repeat(32)),
            format!("sha256:{}", "a1".repeat(31)),
            format!("sha256:{}0", "a1".repeat(32)),
            format!("sha256:{}g", "a1".repeat(31) + "a"),
            format!("SHA256:{}", "a1".repeat(32)),
        ] {
            assert!(
                matches!(sha256_hex(&bad), Err(AttestError::InvalidSubjectDigest(_))),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn build_writes_statement_v1_in_field_order() {
        let digest = format!("sha256:{}", "0f".repeat(32));
        let predicate = serde_json::json!({"b": 1, "a": 2});
        let bytes = build(
            "registry.example/app",
            &digest,
            OPENVEX_PREDICATE_TYPE,
            &predicate,
        );
        let text = String::from_utf8(bytes.unwrap_or_default()).unwrap_or_default();
        let expected = format!(
            "{{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{{\"name\":\"registry.example/app\",\
             \"digest\":{{\"sha256\":\"{}\"}}}}],\"predicateType\":\"https://openvex.dev/ns\",\
             \"predicate\":{{\"b\":1,\"a\":2}}}}",
            "0f".repeat(32)
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn build_rejects_bad_inputs() {
        let digest = format!("sha256:{}", "0f".repeat(32));
        let obj = serde_json::json!({});
        assert!(matches!(
            build("", &digest, "t", &obj),
            Err(AttestError::InvalidSubjectName(_))
        ));
        assert!(matches!(
            build("a\nb", &digest, "t", &obj),
            Err(AttestError::InvalidSubjectName(_))
        ));
        assert!(matches!(
            build("a", &digest, " ", &obj),
            Err(AttestError::InvalidPredicateType)
        ));
        assert!(matches!(
            build("a", &digest, "t", &serde_json::json!([1])),
            Err(AttestError::InvalidPredicate("an array"))
        ));
    }

    #[test]
    fn parse_accepts_v01_and_missing_name() {
        let payload = br#"{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"digest":{"sha256":"ab"}}],"predicateType":"x"}"#;
        let parsed = parse(payload);
        assert!(parsed.is_ok(), "{parsed:?}");
        if let Ok(s) = parsed {
            assert_eq!(s.subject[0].name, "");
            assert_eq!(
                s.subject[0].digest.get("sha256").map(String::as_str),
                Some("ab")
            );
            assert_eq!(s.predicate, Value::Null);
        }
    }

    #[test]
    fn parse_names_what_is_wrong() {
        let cases: [(&[u8], &str); 9] = [
            (b"not json", "not json"),
            (b"[1]", "an array, not an object"),
            (br#"{"subject":[]}"#, "no _type"),
            (br#"{"_type":"https://example.com/x"}"#, "_type is"),
            (br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#, "subject is empty"),
            (
                br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a"}]}"#,
                "subject[0] has no digest",
            ),
            (
                br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":1}}]}"#,
                "subject[0].digest.sha256 is a number",
            ),
            (
                br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"a"}}]}"#,
                "no predicateType",
            ),
            (
                br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"a"}}],"predicateType":"p","predicate":"s"}"#,
                "predicate is a string",
            ),
        ];
        for (payload, needle) in cases {
            match parse(payload) {
                Err(AttestError::NotAStatement(reason)) => {
                    assert!(reason.contains(needle), "{reason:?} lacks {needle:?}")
                }
                other => panic!(
                    "{:?}: expected NotAStatement, got {other:?}",
                    String::from_utf8_lossy(payload)
                ),
            }
        }
    }
}
