//! A reviewer's decision: the request form, its checks, and the verdict it
//! puts in place of the automated one.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use vexxy_model::{Confidence, Decider, Justification, Status, Verdict};

use crate::{ReviewError, StatementRecord};

/// The longest reason, impact statement or action statement accepted, in
/// characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Longest expiry of a decision, in days (ten years).
const MAX_EXPIRY_DAYS: u32 = 3650;

/// What a reviewer does with a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DecisionAction {
    /// The automated verdict is right; it becomes the reviewer's.
    Approve,
    /// The automated verdict is wrong; the reviewer's replaces it.
    Override,
    /// Withdraw the statement's human decision; the automated verdict stands.
    Revert,
    /// Take the decision offered from another digest of the repository
    /// (same package, same evidence).
    AcceptOffer,
}

impl DecisionAction {
    pub const ALL: [DecisionAction; 4] = [
        Self::Approve,
        Self::Override,
        Self::Revert,
        Self::AcceptOffer,
    ];

    /// The request and stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Override => "override",
            Self::Revert => "revert",
            Self::AcceptOffer => "accept_offer",
        }
    }
}

impl fmt::Display for DecisionAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DecisionAction {
    type Err = ReviewError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                ReviewError::field(
                    "action",
                    format!(
                        "unknown action {s:?}; expected one of {}",
                        Self::ALL.map(Self::as_str).join(", ")
                    ),
                )
            })
    }
}

/// A decision as a request carries it; check it with
/// `DecisionInput::try_from`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecision {
    /// `approve`, `override`, `revert` or `accept_offer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The new status (override only): `not_affected`, `affected`, `fixed`,
    /// `under_investigation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why not affected (override to `not_affected` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// How it is not affected, in words (override to `not_affected` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact_statement: Option<String>,
    /// What to do about it (override to `affected` only, where it is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_statement: Option<String>,
    /// Why the reviewer decided so (required, at most [`MAX_TEXT_CHARS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The decision lapses (back to the review queue) after this many days,
    /// `1..=3650`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
    /// Refuse the decision unless the statement is at this version
    /// (optimistic concurrency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

/// A checked decision.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionInput {
    pub action: DecisionAction,
    /// The reviewer's verdict, for [`DecisionAction::Override`] only (always
    /// `Some` then): decided by [`Decider::Human`] with an empty author,
    /// confidence 1, no notes; [`effective`] signs it.
    pub verdict: Option<Verdict>,
    /// Why, trimmed, never empty.
    pub reason: String,
    pub expires_in_days: Option<u32>,
    pub expected_version: Option<i64>,
}

/// A text field: trimmed, blank counts as absent, bounded.
fn text(field: &'static str, value: Option<String>) -> Result<Option<String>, ReviewError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(ReviewError::field(
            field,
            format!("is longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(Some(value.to_owned()))
}

fn only_with(field: &'static str, status: Status) -> ReviewError {
    let allowed = match field {
        "justification" | "impact_statement" => "a not_affected",
        _ => "an affected",
    };
    ReviewError::field(
        field,
        format!("only for {allowed} statement; this one is {status}"),
    )
}

impl TryFrom<RawDecision> for DecisionInput {
    type Error = ReviewError;

    fn try_from(raw: RawDecision) -> Result<Self, Self::Error> {
        let action = match text("action", raw.action)? {
            Some(a) => a.parse::<DecisionAction>()?,
            None => return Err(ReviewError::field("action", "is required")),
        };
        let reason = text("reason", raw.reason)?
            .ok_or_else(|| ReviewError::field("reason", "is required: say why you decided so"))?;
        let status = text("status", raw.status)?;
        let justification = text("justification", raw.justification)?;
        let impact = text("impact_statement", raw.impact_statement)?;
        let act = text("action_statement", raw.action_statement)?;

        let verdict = if action == DecisionAction::Override {
            let Some(status) = status else {
                return Err(ReviewError::field("status", "is required to override"));
            };
            let status = Status::from_openvex(&status).ok_or_else(|| {
                ReviewError::field(
                    "status",
                    format!(
                        "unknown status {status:?}; expected one of {}",
                        Status::ALL.map(Status::as_str).join(", ")
                    ),
                )
            })?;
            let justification = justification
                .map(|j| {
                    Justification::from_openvex(&j).ok_or_else(|| {
                        ReviewError::field(
                            "justification",
                            format!(
                                "unknown justification {j:?}; expected one of {}",
                                Justification::ALL.map(Justification::as_str).join(", ")
                            ),
                        )
                    })
                })
                .transpose()?;
            match status {
                Status::NotAffected => {
                    if justification.is_none() && impact.is_none() {
                        return Err(ReviewError::field(
                            "justification",
                            "a not_affected statement needs a justification or an impact_statement",
                        ));
                    }
                    if act.is_some() {
                        return Err(only_with("action_statement", status));
                    }
                }
                Status::Affected => {
                    if justification.is_some() {
                        return Err(only_with("justification", status));
                    }
                    if impact.is_some() {
                        return Err(only_with("impact_statement", status));
                    }
                    if act.is_none() {
                        return Err(ReviewError::field(
                            "action_statement",
                            "an affected statement needs an action_statement: what should users do",
                        ));
                    }
                }
                Status::Fixed | Status::UnderInvestigation => {
                    if justification.is_some() {
                        return Err(only_with("justification", status));
                    }
                    if impact.is_some() {
                        return Err(only_with("impact_statement", status));
                    }
                    if act.is_some() {
                        return Err(only_with("action_statement", status));
                    }
                }
            }
            let verdict = Verdict::new(
                status,
                justification,
                impact,
                act,
                Decider::Human {
                    author: String::new(),
                },
            )
            .map_err(|e| ReviewError::field("status", e.to_string()))?
            .with_confidence(Confidence::CERTAIN);
            Some(verdict)
        } else {
            let given = [
                ("status", status.is_some()),
                ("justification", justification.is_some()),
                ("impact_statement", impact.is_some()),
                ("action_statement", act.is_some()),
            ];
            if let Some((name, _)) = given.into_iter().find(|(_, set)| *set) {
                return Err(ReviewError::field(
                    name,
                    format!("only an override sets {name}; {action} does not"),
                ));
            }
            None
        };

        if let Some(days) = raw.expires_in_days {
            if action == DecisionAction::Revert {
                return Err(ReviewError::field(
                    "expires_in_days",
                    "a revert does not expire",
                ));
            }
            if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
                return Err(ReviewError::field(
                    "expires_in_days",
                    format!("{days} is outside 1..={MAX_EXPIRY_DAYS}"),
                ));
            }
        }
        if let Some(v) = raw.expected_version {
            if v < 1 {
                return Err(ReviewError::field(
                    "expected_version",
                    format!("{v} is not a statement version (they start at 1)"),
                ));
            }
        }
        Ok(Self {
            action,
            verdict,
            reason,
            expires_in_days: raw.expires_in_days,
            expected_version: raw.expected_version,
        })
    }
}

/// The `status_notes` of a human statement: who decided, when and why
/// (`reviewed by alice on 2026-03-01T10:00:00Z: the module is not loaded`).
/// Line breaks in the reason become spaces.
pub fn human_notes(author: &str, date: &str, reason: &str) -> String {
    let reason: String = reason
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("reviewed by {author} on {date}: {reason}")
}

/// `verdict` as `author`'s: decided by them, confidence 1 (a person asserts
/// it), notes naming them, the date and the reason, then `keep` (the notes
/// it had, when they still apply).
pub(crate) fn signed(
    mut verdict: Verdict,
    author: &str,
    decided_at: OffsetDateTime,
    reason: &str,
    keep: &str,
) -> Verdict {
    let mut notes = human_notes(author, &crate::rfc3339(decided_at), reason);
    if !keep.trim().is_empty() {
        notes.push_str("; ");
        notes.push_str(keep.trim());
    }
    verdict.decided_by = Decider::Human {
        author: author.to_owned(),
    };
    verdict.confidence = Confidence::CERTAIN;
    verdict.notes = notes;
    verdict
}

/// The verdict a decision puts in place of `record`'s automated one, signed
/// by `author` at `decided_at`:
/// - approve: the automated verdict with its evidence, now the reviewer's
///   (its notes kept after the reviewer's);
/// - override: the reviewer's verdict;
/// - revert: `None`, the automated verdict stands again;
/// - accept_offer: `None` here: the verdict is the offered decision's, see
///   [`HumanStatement::accepting`].
pub fn effective(
    record: &StatementRecord,
    decision: &DecisionInput,
    author: &str,
    decided_at: OffsetDateTime,
) -> Option<Verdict> {
    match decision.action {
        DecisionAction::Approve => Some(signed(
            record.verdict.clone(),
            author,
            decided_at,
            &decision.reason,
            &record.verdict.notes,
        )),
        DecisionAction::Override => decision
            .verdict
            .clone()
            .map(|v| signed(v, author, decided_at, &decision.reason, "")),
        DecisionAction::Revert | DecisionAction::AcceptOffer => None,
    }
}

/// A person's verdict about one finding (vulnerability × package) of an
/// image; it replaces the automated verdict of that finding when a document
/// is issued.
#[derive(Clone, Debug, PartialEq)]
pub struct HumanStatement {
    pub vulnerability_id: String,
    /// [`crate::package_key`] of the finding's package.
    pub package_key: String,
    /// Decided by [`Decider::Human`] `{ author }`.
    pub verdict: Verdict,
    pub author: String,
    pub reason: String,
    pub decided_at: OffsetDateTime,
}

impl HumanStatement {
    /// The statement a decision about `record` makes ([`effective`]); `None`
    /// for revert and accept_offer.
    pub fn new(
        record: &StatementRecord,
        decision: &DecisionInput,
        author: &str,
        decided_at: OffsetDateTime,
    ) -> Option<Self> {
        effective(record, decision, author, decided_at).map(|verdict| Self {
            vulnerability_id: record.vulnerability_id.clone(),
            package_key: record.package_key.clone(),
            verdict,
            author: author.to_owned(),
            reason: decision.reason.clone(),
            decided_at,
        })
    }

    /// `offered` (a decision about the same package in another digest)
    /// taken for `record` by `author`: the offered verdict with its
    /// evidence, now theirs, with their reason.
    pub fn accepting(
        offered: &HumanStatement,
        record: &StatementRecord,
        author: &str,
        reason: &str,
        decided_at: OffsetDateTime,
    ) -> Self {
        Self {
            vulnerability_id: record.vulnerability_id.clone(),
            package_key: record.package_key.clone(),
            verdict: signed(offered.verdict.clone(), author, decided_at, reason, ""),
            author: author.to_owned(),
            reason: reason.trim().to_owned(),
            decided_at,
        }
    }
}
