//! Just enough of a DSSE envelope and its in-toto statement to attach it:
//! the shape, the predicate type, the subjects' digests. Signatures are
//! not verified here (that is the caller's job, with its keys).

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use vexxy_model::Digest;

/// The DSSE payload type of an in-toto statement.
pub(crate) const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The `_type` prefix of in-toto statements (`…/v1`, `…/v0.1`).
const IN_TOTO_STATEMENT_PREFIX: &str = "https://in-toto.io/Statement/";
/// Largest envelope attached or read back (16 MiB).
pub(crate) const MAX_ENVELOPE_BYTES: usize = 16 << 20;

/// What attaching needs to know about an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// sha256 of the envelope bytes.
    pub(crate) digest: Digest,
    /// Their length.
    pub(crate) size: u64,
    /// The statement's `predicateType`.
    pub(crate) predicate_type: String,
    /// The lowercase sha256 hex digests of the statement's subjects, in order.
    pub(crate) subjects: Vec<String>,
    /// A time the predicate says it was made (OpenVEX `last_updated`, else
    /// `timestamp`), when it is RFC 3339.
    pub(crate) created: Option<String>,
    /// The non-empty `keyid`s of its signatures (hints of who signed:
    /// unverified, used only to leave other signers' attestations alone).
    pub(crate) keyids: Vec<String>,
}

impl Envelope {
    /// Whether `other` names a signer this envelope names too.
    pub(crate) fn same_signer(&self, other: &Envelope) -> bool {
        self.keyids.iter().any(|k| other.keyids.contains(k))
    }

    /// Whether one of the statement's subjects is `digest`.
    pub(crate) fn is_about(&self, digest: &Digest) -> bool {
        self.subjects.iter().any(|s| s == digest.hex())
    }

    /// The subjects' digests for a message, comma-separated.
    pub(crate) fn subjects_text(&self) -> String {
        if self.subjects.is_empty() {
            "none".to_owned()
        } else {
            self.subjects
                .iter()
                .map(|h| format!("sha256:{h}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// The kind of a JSON value, for messages that must not quote it.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether `s` is an RFC 3339 date-time.
pub(crate) fn is_rfc3339(s: &str) -> bool {
    s.len() <= 64
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

/// Checks `bytes` is a DSSE JSON envelope (payload type
/// `application/vnd.in-toto+json`, standard base64 payload as cosign
/// decodes it, at least one signature entry) carrying an in-toto statement
/// with a predicate type and subjects. The error is a reason for a message:
/// it never quotes the envelope.
pub(crate) fn parse(bytes: &[u8]) -> Result<Envelope, String> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(format!(
            "the envelope is {} bytes, more than the {MAX_ENVELOPE_BYTES} accepted",
            bytes.len()
        ));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "the envelope is not json (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let Value::Object(envelope) = value else {
        return Err(format!(
            "the envelope is {}, not a dsse envelope object",
            kind(&value)
        ));
    };
    match envelope.get("payloadType") {
        Some(Value::String(t)) if t == IN_TOTO_PAYLOAD_TYPE => {}
        Some(Value::String(_)) => {
            return Err(format!(
                "the envelope's payloadType is not {IN_TOTO_PAYLOAD_TYPE}"
            ))
        }
        Some(other) => {
            return Err(format!(
                "the envelope's payloadType is {}, not a string",
                kind(other)
            ))
        }
        None => return Err("the envelope has no payloadType: not a dsse envelope".into()),
    }
    let payload = match envelope.get("payload") {
        Some(Value::String(p)) => p,
        Some(other) => {
            return Err(format!(
                "the envelope's payload is {}, not a string",
                kind(other)
            ))
        }
        None => return Err("the envelope has no payload".into()),
    };
    let keyids: Vec<String> = match envelope.get("signatures") {
        Some(Value::Array(sigs)) => sigs
            .iter()
            .filter_map(|s| s.get("keyid").and_then(Value::as_str))
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    match envelope.get("signatures") {
        Some(Value::Array(sigs))
            if !sigs.is_empty()
                && sigs
                    .iter()
                    .all(|s| s.get("sig").is_some_and(Value::is_string)) => {}
        Some(Value::Array(sigs)) if sigs.is_empty() => {
            return Err("the envelope has no signatures".into())
        }
        Some(Value::Array(_)) => {
            return Err("an entry of the envelope's signatures has no sig string".into())
        }
        Some(other) => {
            return Err(format!(
                "the envelope's signatures are {}, not an array",
                kind(other)
            ))
        }
        None => return Err("the envelope has no signatures".into()),
    }
    // cosign (and so trivy) decodes the payload as padded standard base64
    // and gives up on every attestation of the image when one fails
    let statement = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|_| "the envelope's payload is not padded standard base64".to_owned())?;
    let statement: Value = serde_json::from_slice(&statement).map_err(|e| {
        format!(
            "the payload is not json (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let Value::Object(statement) = statement else {
        return Err(format!(
            "the payload is {}, not an in-toto statement",
            kind(&statement)
        ));
    };
    match statement.get("_type") {
        Some(Value::String(t)) if t.starts_with(IN_TOTO_STATEMENT_PREFIX) => {}
        _ => {
            return Err(format!(
                "the payload's _type is not an in-toto statement ({IN_TOTO_STATEMENT_PREFIX}…)"
            ))
        }
    }
    let predicate_type = match statement.get("predicateType") {
        Some(Value::String(t)) if !t.trim().is_empty() && !t.chars().any(char::is_control) => {
            t.clone()
        }
        Some(Value::String(_)) => return Err("the statement's predicateType is empty".into()),
        Some(other) => {
            return Err(format!(
                "the statement's predicateType is {}, not a string",
                kind(other)
            ))
        }
        None => return Err("the statement has no predicateType".into()),
    };
    let subjects = match statement.get("subject") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => return Err("the statement's subject list is empty".into()),
        _ => return Err("the statement has no subject list".into()),
    };
    let mut hexes = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        let digest = s
            .get("digest")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("subject[{i}] of the statement has no digest object"))?;
        if let Some(hex) = digest.get("sha256").and_then(Value::as_str) {
            hexes.push(hex.to_ascii_lowercase());
        }
    }
    let created = statement.get("predicate").and_then(|p| {
        ["last_updated", "timestamp"]
            .iter()
            .filter_map(|k| p.get(k).and_then(Value::as_str))
            .find(|t| is_rfc3339(t))
            .map(str::to_owned)
    });
    Ok(Envelope {
        digest: Digest::from_sha256_bytes(&Sha256::digest(bytes).into()),
        size: bytes.len() as u64,
        predicate_type,
        subjects: hexes,
        created,
        keyids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "8f280ba277bd8e8e96b3c107ab197d1be3c26af169b22e3d462bdab1d73d9600";

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn envelope(statement: &Value) -> Vec<u8> {
        serde_json::json!({
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "payload": b64(&statement.to_string()),
            "signatures": [{"keyid": "", "sig": "MEUCIQ=="}],
        })
        .to_string()
        .into_bytes()
    }

    fn statement(predicate: Value) -> Value {
        serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [
                {"name": "r/a", "digest": {"sha512": "ab"}},
                {"name": "r/a", "digest": {"sha256": HEX.to_uppercase()}},
            ],
            "predicateType": "https://openvex.dev/ns",
            "predicate": predicate,
        })
    }

    #[test]
    fn reads_predicate_type_subjects_and_created() {
        let bytes = envelope(&statement(serde_json::json!({
            "timestamp": "2024-05-01T10:00:00Z", "last_updated": "2024-06-01T10:00:00+02:00"
        })));
        let e = parse(&bytes).expect("parses");
        assert_eq!(e.predicate_type, "https://openvex.dev/ns");
        assert_eq!(e.subjects, vec![HEX.to_owned()]);
        assert!(e.is_about(&format!("sha256:{HEX}").parse().expect("digest")));
        assert_eq!(e.created.as_deref(), Some("2024-06-01T10:00:00+02:00"));
        assert_eq!(e.size, bytes.len() as u64);
        assert_eq!(e.digest.hex(), hex::encode(Sha256::digest(&bytes)));

        // only timestamp; a non-RFC 3339 last_updated is skipped
        let e = parse(&envelope(&statement(serde_json::json!({
            "timestamp": "2024-05-01T10:00:00Z", "last_updated": "yesterday"
        }))))
        .expect("parses");
        assert_eq!(e.created.as_deref(), Some("2024-05-01T10:00:00Z"));
        let e = parse(&envelope(&statement(serde_json::json!({})))).expect("parses");
        assert_eq!(e.created, None);
    }

    #[test]
    fn refuses_what_is_not_an_in_toto_envelope_without_quoting_it() {
        const SECRET: &str = "SECRET-CONTENT-77";
        let good = statement(serde_json::json!({}));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (format!("{{\"x\": \"{SECRET}").into_bytes(), "not json"),
            (format!("[\"{SECRET}\"]").into_bytes(), "an array"),
            (
                serde_json::json!({"payloadType": SECRET, "payload": "", "signatures": []})
                    .to_string()
                    .into_bytes(),
                "payloadType is not",
            ),
            (
                serde_json::json!({"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": b64(&good.to_string()), "signatures": []})
                    .to_string()
                    .into_bytes(),
                "no signatures",
            ),
            (
                serde_json::json!({"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": "a-b_", "signatures": [{"sig": "x"}]})
                    .to_string()
                    .into_bytes(),
                "standard base64",
            ),
            (
                envelope(&serde_json::json!({"_type": SECRET, "subject": [], "predicateType": "p"})),
                "_type",
            ),
            (
                envelope(&serde_json::json!({"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {"sha256": HEX}}]})),
                "no predicateType",
            ),
            (
                envelope(&serde_json::json!({"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicateType": "p"})),
                "subject list is empty",
            ),
            (
                envelope(&serde_json::json!({"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": SECRET}], "predicateType": "p"})),
                "subject[0]",
            ),
        ];
        for (bytes, needle) in cases {
            let reason = parse(&bytes).expect_err(needle);
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
            assert!(!reason.contains(SECRET), "{reason}");
        }
        let big = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert!(parse(&big).expect_err("big").contains("more than"));
    }
}
