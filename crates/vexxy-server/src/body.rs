//! Submission bodies read at a bounded cost.
//!
//! The body is streamed, never more than `max_body_bytes` of it, and every
//! chunk goes through a [`Scanner`] before it is kept: a structural pass
//! over the JSON (no tree, a few bytes of state per nesting level) that
//! measures each top-level member's value as it arrives and refuses the
//! body as soon as `scan_report` or `sbom` passes its size or value-count
//! limit. A pathological body (millions of empty objects) is refused after
//! its first few megabytes instead of becoming gigabytes of tree. Bodies
//! above the large-body threshold also need one of a few permits, so only
//! that many large submissions are read and parsed at once.

use std::sync::Arc;

use axum::body::Body;
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::{DocumentLimits, SubmitLimits};

/// Deepest nesting accepted (serde_json refuses deeper documents too).
pub const MAX_DEPTH: usize = 128;

/// Longest top-level key kept for naming a member in errors.
const MAX_KEY: usize = 64;

/// Why a submission body was refused while it was read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The whole body passed `max_body_bytes` (413).
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// A top-level field's value passed its byte limit (413).
    #[error("{field}: larger than {limit} bytes")]
    FieldTooLarge { field: String, limit: usize },
    /// A top-level field's value passed its value-count limit (413).
    #[error("{field}: more than {limit} JSON values")]
    TooManyValues { field: String, limit: u64 },
    /// Nesting deeper than [`MAX_DEPTH`] (422).
    #[error("{field}: nested deeper than {limit} levels")]
    TooDeep { field: String, limit: usize },
    /// The body is not a JSON object (400).
    #[error("request body: must be a JSON object")]
    NotAnObject,
    /// Every large-submission permit is taken (503 with `Retry-After`).
    #[error("{limit} large submissions are being read already; retry shortly")]
    Busy { limit: usize },
    /// The connection failed while the body was read (400).
    #[error("reading the request body: {0}")]
    Read(String),
}

/// The top-level member whose value is being scanned.
#[derive(Debug)]
struct Member {
    field: String,
    limits: DocumentLimits,
    bytes: usize,
    values: u64,
}

/// A streaming structural pass over a JSON object: counts the values and
/// bytes of each top-level member's value and fails at the first limit
/// passed. It validates nothing (serde_json does, afterwards); for
/// well-formed JSON its counts are exact. Members other than `scan_report`
/// and `sbom` (also keys written with escapes) get the larger of the two
/// limits, so no spelling of a key escapes them.
#[derive(Debug)]
pub struct Scanner {
    scan_report: DocumentLimits,
    sbom: DocumentLimits,
    other: DocumentLimits,
    started: bool,
    /// Open containers, innermost last: `true` for objects.
    stack: Vec<bool>,
    in_string: bool,
    escaped: bool,
    /// The next token is a value (not a key, separator or scalar's rest).
    expect_value: bool,
    /// Reading a key of the top-level object.
    reading_key: bool,
    key: Vec<u8>,
    member: Option<Member>,
}

impl Scanner {
    /// A scanner applying `limits`.
    pub fn new(limits: &SubmitLimits) -> Self {
        let (r, s) = (limits.scan_report, limits.sbom);
        Self {
            scan_report: r,
            sbom: s,
            other: DocumentLimits {
                max_bytes: r.max_bytes.max(s.max_bytes),
                max_values: r.max_values.max(s.max_values),
            },
            started: false,
            stack: Vec::new(),
            in_string: false,
            escaped: false,
            expect_value: false,
            reading_key: false,
            key: Vec::new(),
            member: None,
        }
    }

    /// Scans the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        let mut i = 0;
        while i < chunk.len() {
            if self.in_string {
                i = self.string(chunk, i);
                continue;
            }
            let b = chunk[i];
            i += 1;
            if let Some(m) = &mut self.member {
                m.bytes += 1;
            }
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                continue;
            }
            if !self.started {
                if b != b'{' {
                    return Err(BodyError::NotAnObject);
                }
                self.started = true;
                self.stack.push(true);
                continue;
            }
            if self.stack.is_empty() {
                // after the object: serde_json refuses trailing characters
                continue;
            }
            match b {
                b'{' | b'[' => {
                    if self.expect_value {
                        self.value_starts()?;
                    }
                    self.stack.push(b == b'{');
                    self.expect_value = b == b'[';
                    if self.stack.len() > MAX_DEPTH {
                        return Err(BodyError::TooDeep {
                            field: self.field(),
                            limit: MAX_DEPTH,
                        });
                    }
                }
                b'}' | b']' => {
                    if self.stack.len() == 1 {
                        self.end_member()?;
                    }
                    self.stack.pop();
                    self.expect_value = false;
                }
                b',' => {
                    if self.stack.len() == 1 {
                        self.end_member()?;
                    }
                    self.expect_value = self.stack.last() == Some(&false);
                }
                b':' => self.expect_value = true,
                b'"' => {
                    if self.expect_value {
                        self.value_starts()?;
                        self.expect_value = false;
                    } else if self.stack.len() == 1 {
                        self.reading_key = true;
                        self.key.clear();
                    }
                    self.in_string = true;
                }
                _ => {
                    // a number, true, false or null: counted at its first byte
                    if self.expect_value {
                        self.value_starts()?;
                        self.expect_value = false;
                    }
                }
            }
        }
        self.check_bytes()
    }

    /// Consumes string content from `i`; returns where scanning goes on.
    fn string(&mut self, chunk: &[u8], start: usize) -> usize {
        let mut i = start;
        while i < chunk.len() {
            let b = chunk[i];
            i += 1;
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                self.reading_key = false;
                break;
            }
            if self.reading_key && self.in_string && self.key.len() < MAX_KEY {
                self.key.push(b);
            }
        }
        if let Some(m) = &mut self.member {
            m.bytes += i - start;
        }
        i
    }

    /// A value starts at the current byte.
    fn value_starts(&mut self) -> Result<(), BodyError> {
        if self.stack.len() == 1 {
            let field = self.field();
            let limits = match field.as_str() {
                "scan_report" => self.scan_report,
                "sbom" => self.sbom,
                _ => self.other,
            };
            self.member = Some(Member {
                field,
                limits,
                bytes: 1,
                values: 0,
            });
        }
        if let Some(m) = &mut self.member {
            m.values += 1;
            if m.values > m.limits.max_values {
                return Err(BodyError::TooManyValues {
                    field: m.field.clone(),
                    limit: m.limits.max_values,
                });
            }
        }
        Ok(())
    }

    /// The separator after a top-level member's value: the member ends
    /// (its size is what came before the separator).
    fn end_member(&mut self) -> Result<(), BodyError> {
        if let Some(m) = &mut self.member {
            m.bytes = m.bytes.saturating_sub(1);
        }
        self.check_bytes()?;
        self.member = None;
        Ok(())
    }

    fn check_bytes(&self) -> Result<(), BodyError> {
        match &self.member {
            Some(m) if m.bytes > m.limits.max_bytes => Err(BodyError::FieldTooLarge {
                field: m.field.clone(),
                limit: m.limits.max_bytes,
            }),
            _ => Ok(()),
        }
    }

    /// The member being read, named by its key as written.
    fn field(&self) -> String {
        match &self.member {
            Some(m) => m.field.clone(),
            None => String::from_utf8_lossy(&self.key).into_owned(),
        }
    }
}

/// A submission body, read: its bytes and, for a large one, the permit
/// to hold while it is parsed and stored.
#[derive(Debug)]
pub struct ReadBody {
    /// The body as it arrived.
    pub bytes: Vec<u8>,
    /// Held by a large body until the submission is stored.
    pub permit: Option<OwnedSemaphorePermit>,
}

/// Reads a submission body of at most `max_bytes`, scanning it as it
/// arrives. A body announced (`content_length`) or found larger than
/// `limits.large_body_bytes` takes a permit of `large` first, or is
/// refused with [`BodyError::Busy`].
/// One of the few permits a large submission holds while it is read,
/// parsed and stored; none free is [`BodyError::Busy`] (503).
pub fn large_permit(
    large: &Arc<Semaphore>,
    limits: &SubmitLimits,
) -> Result<tokio::sync::OwnedSemaphorePermit, BodyError> {
    Arc::clone(large)
        .try_acquire_owned()
        .map_err(|_| BodyError::Busy {
            limit: limits.max_large_submits,
        })
}

pub async fn read(
    body: Body,
    content_length: Option<u64>,
    max_bytes: usize,
    limits: &SubmitLimits,
    large: &Arc<Semaphore>,
) -> Result<ReadBody, BodyError> {
    let too_large = BodyError::TooLarge { limit: max_bytes };
    if content_length.is_some_and(|n| n > max_bytes as u64) {
        return Err(too_large);
    }
    let take = || large_permit(large, limits);
    let mut permit = None;
    if content_length.is_some_and(|n| n > limits.large_body_bytes as u64) {
        permit = Some(take()?);
    }
    // at most the announced length up front: pages not yet written cost nothing
    let announced = content_length.map_or(0, |n| n as usize);
    let mut bytes = Vec::with_capacity(announced.min(max_bytes));
    let mut scanner = Scanner::new(limits);
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        if bytes.len() + chunk.len() > max_bytes {
            return Err(too_large);
        }
        scanner.feed(&chunk)?;
        bytes.extend_from_slice(&chunk);
        if permit.is_none() && bytes.len() > limits.large_body_bytes {
            permit = Some(take()?);
        }
    }
    Ok(ReadBody { bytes, permit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: usize, max_values: u64) -> SubmitLimits {
        let doc = DocumentLimits {
            max_bytes,
            max_values,
        };
        SubmitLimits {
            scan_report: doc,
            sbom: DocumentLimits {
                max_bytes: max_bytes / 2,
                max_values: max_values / 2,
            },
            ..crate::ServiceConfig::default().submit
        }
    }

    /// The scanner's verdict on `text` fed in chunks of every size.
    fn scan(text: &str, limits: &SubmitLimits) -> Result<(), BodyError> {
        let mut first = None;
        for size in 1..=text.len().clamp(1, 17) {
            let mut s = Scanner::new(limits);
            let r = text.as_bytes().chunks(size).try_for_each(|c| s.feed(c));
            match &first {
                None => first = Some(r),
                Some(f) => assert_eq!(f, &r, "chunks of {size}"),
            }
        }
        first.unwrap_or(Ok(()))
    }

    #[test]
    fn values_are_counted_per_member_exactly() {
        let report = r#"{"matches": [1, "x,]}", {"k": null, "e": [], "o": {}}, -2.5e3, true], "d": "\"q\\"}"#;
        // values: object, array, 1, "x,]}", object, null, [], {}, -2.5e3, true, "\"q\\" = 11
        let body =
            format!(r#"{{"image_ref": "a\"b", "scan_report": {report}, "callback_url": null}}"#);
        assert_eq!(scan(&body, &limits(1 << 20, 11)), Ok(()));
        assert_eq!(
            scan(&body, &limits(1 << 20, 10)),
            Err(BodyError::TooManyValues {
                field: "scan_report".into(),
                limit: 10
            })
        );
        assert_eq!(scan(&body, &limits(report.len(), 100)), Ok(()));
        assert_eq!(
            scan(&body, &limits(report.len() - 1, 100)),
            Err(BodyError::FieldTooLarge {
                field: "scan_report".into(),
                limit: report.len() - 1
            })
        );
        // the sbom has its own (here: half) limits
        let body = format!(r#"{{"image_ref": "a", "sbom": {report}}}"#);
        assert_eq!(
            scan(&body, &limits(1 << 20, 12)),
            Err(BodyError::TooManyValues {
                field: "sbom".into(),
                limit: 6
            })
        );
    }

    #[test]
    fn other_members_and_escaped_keys_are_bounded_too() {
        let body = r#"{"scan\u005freport": [[], [], [], []]}"#;
        assert_eq!(
            scan(body, &limits(1 << 20, 4)),
            Err(BodyError::TooManyValues {
                field: r"scan\u005freport".into(),
                limit: 4
            })
        );
        assert_eq!(scan(body, &limits(1 << 20, 5)), Ok(()));
        assert_eq!(
            scan(r#"[{"scan_report": {}}]"#, &limits(10, 10)),
            Err(BodyError::NotAnObject)
        );
        let deep = format!(r#"{{"sbom": {}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert_eq!(
            scan(&deep, &limits(1 << 20, 1 << 20)),
            Err(BodyError::TooDeep {
                field: "sbom".into(),
                limit: MAX_DEPTH
            })
        );
    }

    #[test]
    fn pathological_bodies_stop_early() {
        let limits = limits(48 << 20, 1000);
        let mut s = Scanner::new(&limits);
        s.feed(br#"{"image_ref":"x","scan_report":{"matches":["#)
            .expect("head");
        let mut fed = 0;
        let err = loop {
            match s.feed(&b"{},".repeat(100)) {
                Ok(()) => fed += 300,
                Err(e) => break e,
            }
            assert!(fed < 10_000, "never refused");
        };
        assert!(matches!(err, BodyError::TooManyValues { .. }), "{err}");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_or_the_permits_are_refused() {
        let limits = SubmitLimits {
            large_body_bytes: 10,
            max_large_submits: 1,
            ..limits(1 << 20, 1 << 20)
        };
        let large = Arc::new(Semaphore::new(1));
        let body = br#"{"image_ref": "nginx:1"}"#.to_vec();
        let n = body.len();
        let read_with = |len: Option<u64>, max: usize| {
            read(Body::from(body.clone()), len, max, &limits, &large)
        };
        assert_eq!(
            read_with(Some(n as u64), n - 1).await.unwrap_err(),
            BodyError::TooLarge { limit: n - 1 }
        );
        assert_eq!(
            read_with(None, n - 1).await.unwrap_err(),
            BodyError::TooLarge { limit: n - 1 },
            "also without Content-Length"
        );
        let held = read_with(None, n).await.expect("read");
        assert_eq!(held.bytes, body);
        assert!(held.permit.is_some(), "a large body holds a permit");
        for len in [Some(n as u64), None] {
            assert_eq!(
                read_with(len, n).await.unwrap_err(),
                BodyError::Busy { limit: 1 }
            );
        }
        drop(held);
        assert!(read_with(Some(n as u64), n).await.is_ok());
    }
}
