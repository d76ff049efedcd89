//! The human review loop: statements stored per finding (organisation ×
//! image digest × vulnerability × package), the decisions people make on
//! them, the images an organisation analysed, the versions of each
//! image's VEX, and the numbers the dashboard, the compliance view and
//! the metrics show.
//!
//! Plain rows (strings and numbers): what a status or a record means is
//! `vexxy-review`'s business, not this crate's. Every query names its
//! organisation, so another organisation's statement, image or VEX
//! version is as good as absent.
//!
//! The rules kept here:
//! - a human decision wins over automation: recording a new analysis of
//!   the same digest refreshes the automated fields and keeps the
//!   decision, its status and justification;
//! - a decision made on one image of a repository is *offered*, never
//!   applied, to a new digest whose statement rests on the same evidence
//!   (`offered_decision_id`);
//! - a statement is changed by a person only at the version that person
//!   saw: it is read locked and the `UPDATE` is conditional on it, so of
//!   two concurrent decisions one wins and the other is a
//!   [`StoreError::Conflict`] that wrote nothing;
//! - `version` moves with every change of what a reviewer decides on
//!   (automated fields, presence, decision, assignee), not with a
//!   re-analysis that changed nothing nor with a new review reason from
//!   changed settings;
//! - a decision and its audit entry, an analysis and the job's
//!   completion, are committed together.

use std::collections::{HashMap, HashSet};

use sha2::{Digest as _, Sha256};
use sqlx::{
    any::{AnyArguments, AnyRow},
    Any, AnyConnection, Row as _,
};

use crate::{
    audit::insert_audit, evidence::parse_digest, jobs::escape_like, now_ms, tenants::new_id,
    Backend, Store, StoreError,
};

/// `review_below` when an organisation has no settings of its own
/// (`vexxy_decide::Policy::DEFAULT_REVIEW_BELOW`).
pub const DEFAULT_REVIEW_BELOW: f64 = 0.6;
/// Most rows one listing returns.
pub const MAX_LIMIT: i64 = 1000;
/// Rows a statement listing returns when the filter names no limit.
pub const DEFAULT_LIMIT: i64 = 100;
/// Most decisions one [`Store::decide_many`] makes.
pub const MAX_BATCH: usize = 1000;
/// The decision actions (`review_decisions.action`).
pub const ACTIONS: [&str; 4] = ["approve", "override", "revert", "accept_offer"];
/// Why a VEX version was issued (`vex_versions.cause`).
pub const VEX_CAUSES: [&str; 3] = ["analysis", "decision", "reevaluation"];
/// Weeks of [`DashboardRow::weekly`], the current one included.
pub const WEEKS: usize = 12;
/// A week, in ms.
pub const WEEK_MS: i64 = 7 * 86_400_000;
/// 1970-01-05T00:00:00Z, the first Monday of Unix time.
const EPOCH_MONDAY_MS: i64 = 4 * 86_400_000;
/// Longest assignee name.
const MAX_ASSIGNEE_CHARS: usize = 200;

// ---------------------------------------------------------------------
// rows

/// An organisation's review settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewSettingsRow {
    /// `not_affected` below this confidence waits for a person (`0..=1`).
    pub review_below: f64,
    /// `not_affected` on high and critical findings waits for a person.
    pub four_eyes: bool,
    /// Re-run an image's analysis once its last run is older than this.
    pub rerun_after_ms: Option<i64>,
}

impl Default for ReviewSettingsRow {
    fn default() -> Self {
        Self {
            review_below: DEFAULT_REVIEW_BELOW,
            four_eyes: false,
            rerun_after_ms: None,
        }
    }
}

/// One finding's automated statement, as an analysis produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewStatement {
    pub vulnerability_id: String,
    /// The package purl without qualifiers and subpath, with its version
    /// (`<ecosystem>/<name>@<version>` without a purl).
    pub package_key: String,
    pub package_name: String,
    pub package_version: String,
    pub package_purl: Option<String>,
    pub severity: String,
    /// unknown 0 … critical 5.
    pub severity_rank: i64,
    /// `0..=1`.
    pub epss: Option<f64>,
    /// Known to be exploited.
    pub kev: bool,
    pub fix_state: String,
    pub auto_status: String,
    pub auto_justification: Option<String>,
    /// `0..=1`.
    pub auto_confidence: f64,
    /// The `StatementRecord` (JSON).
    pub record: String,
    pub evidence_fingerprint: String,
    pub review_reason: Option<String>,
}

/// Everything an analysis of one image says, to record per finding.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisRecord {
    pub org_id: String,
    pub image_digest: String,
    pub repository: String,
    pub reference: String,
    pub job_id: String,
    /// The analysis included a traced run (`images.last_run_*`).
    pub full_run: bool,
    /// One per (vulnerability, package key).
    pub statements: Vec<NewStatement>,
}

/// What recording an analysis changed, by statement id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// New findings, and findings that had disappeared and are back.
    pub added: Vec<String>,
    /// Findings the analysis no longer reports (now `present = 0`).
    pub removed: Vec<String>,
    /// Findings whose automated status or justification changed.
    pub changed: Vec<String>,
    /// Recorded findings whose human decision was kept.
    pub kept_decisions: usize,
    /// New findings offered a decision made on another image.
    pub offered: usize,
}

/// How to order a statement listing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatementSort {
    /// Known exploited first, then severity, EPSS (unknown last),
    /// confidence (lowest first), age.
    #[default]
    Risk,
    /// Oldest first.
    Age,
    /// By vulnerability id, then package.
    Vulnerability,
}

/// Which statements to list. Every field narrows; `None` does not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatementFilter {
    pub repository: Option<String>,
    pub image_digest: Option<String>,
    /// The vulnerability id, ignoring case.
    pub vulnerability: Option<String>,
    /// A substring of the package key.
    pub package: Option<String>,
    /// The effective status.
    pub status: Option<String>,
    pub severity: Option<String>,
    /// Bounds (inclusive) of the automated confidence.
    pub min_confidence: Option<f64>,
    pub max_confidence: Option<f64>,
    pub review_reason: Option<String>,
    pub assignee: Option<String>,
    /// Only what waits for a person (the queue predicate).
    pub queue_only: bool,
    /// Also findings the latest analysis of their image no longer reports.
    pub include_absent: bool,
    pub sort: StatementSort,
    /// At most [`MAX_LIMIT`]; [`DEFAULT_LIMIT`] when `None`.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A stored statement.
#[derive(Clone, Debug, PartialEq)]
pub struct StatementRow {
    pub id: String,
    pub org_id: String,
    pub image_digest: String,
    pub repository: String,
    pub vulnerability_id: String,
    pub package_key: String,
    pub package_name: String,
    pub package_version: String,
    pub package_purl: Option<String>,
    pub severity: String,
    pub severity_rank: i64,
    pub epss: Option<f64>,
    pub kev: bool,
    pub fix_state: String,
    pub auto_status: String,
    pub auto_justification: Option<String>,
    pub auto_confidence: f64,
    pub record: String,
    pub evidence_fingerprint: String,
    pub job_id: String,
    pub present: bool,
    pub review_reason: Option<String>,
    pub decision_id: Option<String>,
    /// Effective: the decision's when there is one, else the automation's.
    pub status: String,
    pub justification: Option<String>,
    pub decision_expires_at: Option<i64>,
    pub offered_decision_id: Option<String>,
    pub assignee: Option<String>,
    pub version: i64,
    pub first_seen_at: i64,
    pub updated_at: i64,
    /// Waits for a person at the time asked (the queue predicate).
    pub in_queue: bool,
}

/// A decision to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDecision {
    /// One of [`ACTIONS`].
    pub action: String,
    pub status: Option<String>,
    pub justification: Option<String>,
    pub impact_statement: Option<String>,
    pub action_statement: Option<String>,
    pub reason: String,
    /// Who decided (`Caller::who`).
    pub author: String,
    pub key_id: String,
    pub expires_at: Option<i64>,
}

/// The statement's effective state after a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    /// A decision in force (`false` for a revert: back to automation).
    pub decision: bool,
    pub status: String,
    pub justification: Option<String>,
}

/// A stored decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionRow {
    pub id: String,
    pub org_id: String,
    pub statement_id: String,
    pub action: String,
    pub status: Option<String>,
    pub justification: Option<String>,
    pub impact_statement: Option<String>,
    pub action_statement: Option<String>,
    pub reason: String,
    pub author: String,
    pub key_id: String,
    /// What the statement rested on when decided.
    pub evidence_fingerprint: String,
    pub auto_status: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub superseded_at: Option<i64>,
}

/// An image an organisation analysed, with counts over its present
/// statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRow {
    pub digest: String,
    pub repository: String,
    pub reference: String,
    pub first_seen_at: i64,
    pub last_analysed_at: i64,
    pub last_analysis_job: String,
    pub last_run_job: Option<String>,
    pub last_run_at: Option<i64>,
    /// The newest VEX version (0: none issued).
    pub vex_version: i64,
    pub findings: i64,
    /// By effective status.
    pub not_affected: i64,
    pub affected: i64,
    pub under_investigation: i64,
    /// Waiting for a person.
    pub unreviewed: i64,
}

/// A VEX version to issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVexVersion {
    /// The OpenVEX document in the evidence store.
    pub document_digest: String,
    /// Its DSSE envelope, when signed.
    pub envelope_digest: Option<String>,
    /// One of [`VEX_CAUSES`].
    pub cause: String,
    pub job_id: Option<String>,
    pub author: String,
}

/// An issued VEX version of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VexVersionRow {
    pub org_id: String,
    pub image_digest: String,
    pub version: i64,
    pub document_digest: String,
    pub envelope_digest: Option<String>,
    pub cause: String,
    pub job_id: Option<String>,
    pub author: String,
    pub created_at: i64,
    /// What was attached to the image (JSON).
    pub attestation: Option<String>,
}

/// One week of activity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeekRow {
    /// Monday 00:00 UTC, ms.
    pub week_start: i64,
    /// Jobs completed.
    pub analyses: i64,
    /// Statements first seen.
    pub new_findings: i64,
    /// Decisions made.
    pub decisions: i64,
}

/// An organisation's numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DashboardRow {
    pub images_seen: i64,
    /// Images with present statements.
    pub images_analysed: i64,
    /// Images with an issued VEX.
    pub images_with_vex: i64,
    /// Present statements.
    pub findings: i64,
    /// Present statements by effective status, by status name.
    pub by_status: Vec<(String, i64)>,
    pub not_affected: i64,
    /// The queue's size.
    pub backlog: i64,
    /// When the oldest statement in the queue was first seen.
    pub oldest_backlog_at: Option<i64>,
    /// Decisions ever made (reverts included).
    pub decisions: i64,
    /// Mean, over decided statements, of the time from first seen to the
    /// first decision (reverts not counted).
    pub mean_time_to_decision_ms: Option<i64>,
    /// The last [`WEEKS`] weeks, oldest first, empty ones included.
    pub weekly: Vec<WeekRow>,
}

/// A repository's standing, from its most recently analysed image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComplianceRow {
    pub repository: String,
    /// The most recently analysed image of the repository.
    pub image_digest: String,
    /// Digests of the repository seen.
    pub images: i64,
    /// Counts over that image's present statements.
    pub total: i64,
    pub not_affected: i64,
    /// Effective status `affected`.
    pub needs_fix: i64,
    pub under_investigation: i64,
    /// Waiting for a person.
    pub unreviewed: i64,
}

// ---------------------------------------------------------------------
// SQL pieces

const STATEMENT_FIELDS: [&str; 31] = [
    "id",
    "org_id",
    "image_digest",
    "repository",
    "vulnerability_id",
    "package_key",
    "package_name",
    "package_version",
    "package_purl",
    "severity",
    "severity_rank",
    "epss",
    "kev",
    "fix_state",
    "auto_status",
    "auto_justification",
    "auto_confidence",
    "record",
    "evidence_fingerprint",
    "job_id",
    "present",
    "review_reason",
    "decision_id",
    "status",
    "justification",
    "decision_expires_at",
    "offered_decision_id",
    "assignee",
    "version",
    "first_seen_at",
    "updated_at",
];

const DECISION_FIELDS: [&str; 16] = [
    "id",
    "org_id",
    "statement_id",
    "action",
    "status",
    "justification",
    "impact_statement",
    "action_statement",
    "reason",
    "author",
    "key_id",
    "evidence_fingerprint",
    "auto_status",
    "created_at",
    "expires_at",
    "superseded_at",
];

const VEX_COLUMNS: &str = "org_id, image_digest, version, document_digest, envelope_digest, \
    cause, job_id, author, created_at, attestation";

/// `a.x, a.y, …` (or `x, y, …` without an alias).
fn columns(fields: &[&str], alias: &str) -> String {
    fields
        .iter()
        .map(|f| {
            if alias.is_empty() {
                (*f).to_owned()
            } else {
                format!("{alias}.{f}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a.x AS p_x, …`
fn aliased(fields: &[&str], alias: &str, prefix: &str) -> String {
    fields
        .iter()
        .map(|f| format!("{alias}.{f} AS {prefix}{f}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The review queue predicate over the statement alias `a` (`""` for
/// none) at the time bound as `now` (a placeholder such as `$2`).
fn queue_sql(a: &str, now: &str) -> String {
    let a = if a.is_empty() {
        String::new()
    } else {
        format!("{a}.")
    };
    format!(
        "({a}present = 1 AND (({a}decision_id IS NULL AND {a}review_reason IS NOT NULL) \
         OR ({a}decision_id IS NOT NULL AND {a}decision_expires_at IS NOT NULL \
         AND {a}decision_expires_at <= {now})))"
    )
}

/// The queue predicate, in Rust, for a row read.
fn in_queue(row: &StatementRow, now: i64) -> bool {
    row.present
        && match &row.decision_id {
            None => row.review_reason.is_some(),
            Some(_) => row.decision_expires_at.is_some_and(|at| at <= now),
        }
}

fn statement_from_row(row: &AnyRow, now: i64) -> Result<StatementRow, StoreError> {
    let mut s = StatementRow {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        image_digest: row.try_get("image_digest")?,
        repository: row.try_get("repository")?,
        vulnerability_id: row.try_get("vulnerability_id")?,
        package_key: row.try_get("package_key")?,
        package_name: row.try_get("package_name")?,
        package_version: row.try_get("package_version")?,
        package_purl: row.try_get("package_purl")?,
        severity: row.try_get("severity")?,
        severity_rank: row.try_get("severity_rank")?,
        epss: row.try_get("epss")?,
        kev: row.try_get::<i64, _>("kev")? != 0,
        fix_state: row.try_get("fix_state")?,
        auto_status: row.try_get("auto_status")?,
        auto_justification: row.try_get("auto_justification")?,
        auto_confidence: row.try_get("auto_confidence")?,
        record: row.try_get("record")?,
        evidence_fingerprint: row.try_get("evidence_fingerprint")?,
        job_id: row.try_get("job_id")?,
        present: row.try_get::<i64, _>("present")? != 0,
        review_reason: row.try_get("review_reason")?,
        decision_id: row.try_get("decision_id")?,
        status: row.try_get("status")?,
        justification: row.try_get("justification")?,
        decision_expires_at: row.try_get("decision_expires_at")?,
        offered_decision_id: row.try_get("offered_decision_id")?,
        assignee: row.try_get("assignee")?,
        version: row.try_get("version")?,
        first_seen_at: row.try_get("first_seen_at")?,
        updated_at: row.try_get("updated_at")?,
        in_queue: false,
    };
    s.in_queue = in_queue(&s, now);
    Ok(s)
}

/// A decision from its columns, each named `<prefix><column>`.
fn decision_from_row(row: &AnyRow, prefix: &str) -> Result<DecisionRow, StoreError> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(DecisionRow {
        id: row.try_get(col("id").as_str())?,
        org_id: row.try_get(col("org_id").as_str())?,
        statement_id: row.try_get(col("statement_id").as_str())?,
        action: row.try_get(col("action").as_str())?,
        status: row.try_get(col("status").as_str())?,
        justification: row.try_get(col("justification").as_str())?,
        impact_statement: row.try_get(col("impact_statement").as_str())?,
        action_statement: row.try_get(col("action_statement").as_str())?,
        reason: row.try_get(col("reason").as_str())?,
        author: row.try_get(col("author").as_str())?,
        key_id: row.try_get(col("key_id").as_str())?,
        evidence_fingerprint: row.try_get(col("evidence_fingerprint").as_str())?,
        auto_status: row.try_get(col("auto_status").as_str())?,
        created_at: row.try_get(col("created_at").as_str())?,
        expires_at: row.try_get(col("expires_at").as_str())?,
        superseded_at: row.try_get(col("superseded_at").as_str())?,
    })
}

fn vex_from_row(row: &AnyRow) -> Result<VexVersionRow, StoreError> {
    Ok(VexVersionRow {
        org_id: row.try_get("org_id")?,
        image_digest: row.try_get("image_digest")?,
        version: row.try_get("version")?,
        document_digest: row.try_get("document_digest")?,
        envelope_digest: row.try_get("envelope_digest")?,
        cause: row.try_get("cause")?,
        job_id: row.try_get("job_id")?,
        author: row.try_get("author")?,
        created_at: row.try_get("created_at")?,
        attestation: row.try_get("attestation")?,
    })
}

fn image_from_row(row: &AnyRow) -> Result<ImageRow, StoreError> {
    Ok(ImageRow {
        digest: row.try_get("digest")?,
        repository: row.try_get("repository")?,
        reference: row.try_get("reference")?,
        first_seen_at: row.try_get("first_seen_at")?,
        last_analysed_at: row.try_get("last_analysed_at")?,
        last_analysis_job: row.try_get("last_analysis_job")?,
        last_run_job: row.try_get("last_run_job")?,
        last_run_at: row.try_get("last_run_at")?,
        vex_version: row.try_get("vex_version")?,
        findings: row.try_get("findings")?,
        not_affected: row.try_get("not_affected")?,
        affected: row.try_get("affected")?,
        under_investigation: row.try_get("under_investigation")?,
        unreviewed: row.try_get("unreviewed")?,
    })
}

/// A value bound to a query built at run time.
#[derive(Clone, Debug)]
enum Arg {
    Text(String),
    Int(i64),
    Float(f64),
}

/// The arguments of a query built at run time, numbered as pushed.
#[derive(Debug, Default)]
struct Args(Vec<Arg>);

impl Args {
    /// Adds a value; returns its placeholder.
    fn push(&mut self, arg: Arg) -> String {
        self.0.push(arg);
        format!("${}", self.0.len())
    }

    fn bind(&self, sql: String) -> sqlx::query::Query<'static, Any, AnyArguments> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in &self.0 {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
                Arg::Float(f) => q.bind(*f),
            };
        }
        q
    }
}

/// A statement's id: derived from what makes it unique, so a preview
/// names the ids recording will create.
fn statement_id(org_id: &str, digest: &str, vulnerability: &str, package_key: &str) -> String {
    let mut h = Sha256::new();
    for part in [org_id, digest, vulnerability, package_key] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let hex = hex::encode(h.finalize());
    format!("stm_{}", &hex[..32])
}

fn invalid(what: impl Into<String>) -> StoreError {
    StoreError::Invalid(what.into())
}

fn unit_interval(v: f64) -> bool {
    v.is_finite() && (0.0..=1.0).contains(&v)
}

/// Commits `tx` and hands the connection back when `result` is `Ok`,
/// rolls back and hands it back on an expected refusal (not found,
/// conflict, invalid), and drops both (closing the connection) on any
/// other error.
macro_rules! finish {
    ($w:ident, $tx:ident, $result:expr) => {{
        let result = $result;
        let result = match result {
            Ok(v) => {
                $tx.commit().await?;
                Ok(v)
            }
            Err(
                e @ (StoreError::NotFound(_) | StoreError::Conflict(_) | StoreError::Invalid(_)),
            ) => {
                $tx.rollback().await?;
                Err(e)
            }
            Err(e) => return Err(e),
        };
        $w.done();
        result
    }};
}

// ---------------------------------------------------------------------
// recording analyses

/// What recording `rec` will do, decided from the stored rows.
#[derive(Debug, Default)]
struct Plan {
    changes: ChangeSet,
    /// (index in `rec.statements`, id, bump the version)
    updates: Vec<(usize, String, bool)>,
    /// (index in `rec.statements`, id, offered decision)
    inserts: Vec<(usize, String, Option<String>)>,
    /// ids of rows the analysis no longer reports
    absent: Vec<String>,
}

fn check_record(rec: &AnalysisRecord) -> Result<(), StoreError> {
    for (field, value) in [
        ("org_id", &rec.org_id),
        ("image_digest", &rec.image_digest),
        ("job_id", &rec.job_id),
    ] {
        if value.is_empty() {
            return Err(invalid(format!("analysis record: {field} is empty")));
        }
    }
    let mut keys = HashSet::new();
    for s in &rec.statements {
        let name = format!("{} in {}", s.vulnerability_id, s.package_key);
        if s.vulnerability_id.is_empty() || s.package_key.is_empty() {
            return Err(invalid(format!(
                "analysis record of {}: a statement without vulnerability or package key",
                rec.image_digest
            )));
        }
        if !keys.insert((s.vulnerability_id.as_str(), s.package_key.as_str())) {
            return Err(invalid(format!(
                "analysis record of {}: {name} appears twice",
                rec.image_digest
            )));
        }
        if !unit_interval(s.auto_confidence) {
            return Err(invalid(format!(
                "statement {name}: confidence {} outside 0..=1",
                s.auto_confidence
            )));
        }
        if s.epss.is_some_and(|e| !unit_interval(e)) {
            return Err(invalid(format!("statement {name}: epss outside 0..=1")));
        }
    }
    Ok(())
}

/// Whether recording `s` changes anything a reviewer sees in `row`.
fn differs(row: &StatementRow, s: &NewStatement, repository: &str) -> bool {
    !row.present
        || row.repository != repository
        || row.package_name != s.package_name
        || row.package_version != s.package_version
        || row.package_purl != s.package_purl
        || row.severity != s.severity
        || row.severity_rank != s.severity_rank
        || row.epss != s.epss
        || row.kev != s.kev
        || row.fix_state != s.fix_state
        || row.auto_status != s.auto_status
        || row.auto_justification != s.auto_justification
        || row.auto_confidence != s.auto_confidence
        || row.record != s.record
        || row.evidence_fingerprint != s.evidence_fingerprint
        || row.review_reason != s.review_reason
}

async fn check_org(conn: &mut AnyConnection, org_id: &str) -> Result<(), StoreError> {
    let found = sqlx::query("SELECT 1 AS one FROM orgs WHERE id = $1")
        .bind(org_id)
        .fetch_optional(&mut *conn)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(format!("organisation {org_id}"))),
    }
}

/// The newest decision in force on the same finding, resting on the same
/// evidence, in another image of the repository (expired ones are not
/// offered).
async fn find_offer(
    conn: &mut AnyConnection,
    rec: &AnalysisRecord,
    s: &NewStatement,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT d.id FROM review_decisions d JOIN statements s ON s.id = d.statement_id \
         WHERE s.org_id = $1 AND s.repository = $2 AND s.image_digest <> $3 \
         AND s.vulnerability_id = $4 AND s.package_key = $5 AND s.evidence_fingerprint = $6 \
         AND d.org_id = $1 AND d.evidence_fingerprint = $6 AND d.superseded_at IS NULL \
         AND d.action <> 'revert' AND (d.expires_at IS NULL OR d.expires_at > $7) \
         ORDER BY d.created_at DESC, d.id DESC LIMIT 1",
    )
    .bind(&rec.org_id)
    .bind(&rec.repository)
    .bind(&rec.image_digest)
    .bind(&s.vulnerability_id)
    .bind(&s.package_key)
    .bind(&s.evidence_fingerprint)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| r.try_get("id")).transpose()?)
}

async fn plan(
    conn: &mut AnyConnection,
    rec: &AnalysisRecord,
    now: i64,
) -> Result<Plan, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM statements WHERE org_id = $1 AND image_digest = $2 \
         ORDER BY vulnerability_id, package_key",
        columns(&STATEMENT_FIELDS, "")
    )))
    .bind(&rec.org_id)
    .bind(&rec.image_digest)
    .fetch_all(&mut *conn)
    .await?;
    let existing = rows
        .iter()
        .map(|r| statement_from_row(r, now))
        .collect::<Result<Vec<_>, _>>()?;
    let by_key: HashMap<(&str, &str), &StatementRow> = existing
        .iter()
        .map(|r| ((r.vulnerability_id.as_str(), r.package_key.as_str()), r))
        .collect();
    let mut plan = Plan::default();
    let mut seen = HashSet::new();
    for (i, s) in rec.statements.iter().enumerate() {
        match by_key.get(&(s.vulnerability_id.as_str(), s.package_key.as_str())) {
            Some(row) => {
                seen.insert(row.id.as_str());
                if !row.present {
                    plan.changes.added.push(row.id.clone());
                } else if row.auto_status != s.auto_status
                    || row.auto_justification != s.auto_justification
                {
                    plan.changes.changed.push(row.id.clone());
                }
                if row.decision_id.is_some() {
                    plan.changes.kept_decisions += 1;
                }
                plan.updates
                    .push((i, row.id.clone(), differs(row, s, &rec.repository)));
            }
            None => {
                let id = statement_id(
                    &rec.org_id,
                    &rec.image_digest,
                    &s.vulnerability_id,
                    &s.package_key,
                );
                let offer = find_offer(conn, rec, s, now).await?;
                if offer.is_some() {
                    plan.changes.offered += 1;
                }
                plan.changes.added.push(id.clone());
                plan.inserts.push((i, id, offer));
            }
        }
    }
    for row in &existing {
        if row.present && !seen.contains(row.id.as_str()) {
            plan.changes.removed.push(row.id.clone());
            plan.absent.push(row.id.clone());
        }
    }
    Ok(plan)
}

// A float is never bound as NULL: sqlx 0.9's `Any` driver sends a NULL
// `f64` as a PostgreSQL `float4` (sqlx issue 4284), and a prepared
// statement whose parameter became `float4` then refuses the next real
// `f64`. `epss` is bound as a number and a flag saying whether it is one.

/// Records an analysis of one image inside the caller's transaction (the
/// job's completion, or [`Store::record_analysis`]'s own): the image row,
/// every finding upserted, the findings it no longer reports marked
/// absent. Human decisions are kept; new findings may be offered one.
pub(crate) async fn record_analysis_tx(
    conn: &mut AnyConnection,
    rec: &AnalysisRecord,
    now: i64,
) -> Result<ChangeSet, StoreError> {
    check_record(rec)?;
    check_org(conn, &rec.org_id).await?;
    // the image row first: on PostgreSQL its lock serialises two
    // recordings of the same image
    sqlx::query(
        "INSERT INTO images (org_id, digest, repository, reference, first_seen_at, \
         last_analysed_at, last_analysis_job, last_run_job, last_run_at, vex_version) \
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, 0) \
         ON CONFLICT (org_id, digest) DO UPDATE SET repository = excluded.repository, \
         reference = excluded.reference, last_analysed_at = excluded.last_analysed_at, \
         last_analysis_job = excluded.last_analysis_job, \
         last_run_job = COALESCE(excluded.last_run_job, images.last_run_job), \
         last_run_at = COALESCE(excluded.last_run_at, images.last_run_at)",
    )
    .bind(&rec.org_id)
    .bind(&rec.image_digest)
    .bind(&rec.repository)
    .bind(&rec.reference)
    .bind(now)
    .bind(&rec.job_id)
    .bind(rec.full_run.then_some(rec.job_id.as_str()))
    .bind(rec.full_run.then_some(now))
    .execute(&mut *conn)
    .await?;
    let mut plan = plan(conn, rec, now).await?;
    // rows are written in id order, the order decisions lock them in: a
    // bulk decision and a completing analysis cannot deadlock
    plan.updates.sort_by(|a, b| a.1.cmp(&b.1));
    for (i, id, bump) in &plan.updates {
        let s = &rec.statements[*i];
        // the effective status follows automation only where no person
        // decided (read in the UPDATE, so a decision committed meanwhile
        // is respected)
        sqlx::query(
            "UPDATE statements SET repository = $3, package_name = $4, package_version = $5, \
             package_purl = $6, severity = $7, severity_rank = $8, \
             epss = CASE WHEN $21 = 1 THEN $9 ELSE NULL END, kev = $10, \
             fix_state = $11, auto_status = $12, auto_justification = $13, auto_confidence = $14, \
             record = $15, evidence_fingerprint = $16, job_id = $17, present = 1, \
             review_reason = $18, \
             offered_decision_id = CASE WHEN evidence_fingerprint = $16 \
             THEN offered_decision_id ELSE NULL END, \
             status = CASE WHEN decision_id IS NULL THEN $12 ELSE status END, \
             justification = CASE WHEN decision_id IS NULL THEN $13 ELSE justification END, \
             version = version + $19, \
             updated_at = CASE WHEN $19 = 1 THEN $20 ELSE updated_at END \
             WHERE id = $1 AND org_id = $2",
        )
        .bind(id)
        .bind(&rec.org_id)
        .bind(&rec.repository)
        .bind(&s.package_name)
        .bind(&s.package_version)
        .bind(&s.package_purl)
        .bind(&s.severity)
        .bind(s.severity_rank)
        .bind(s.epss.unwrap_or_default())
        .bind(i64::from(s.kev))
        .bind(&s.fix_state)
        .bind(&s.auto_status)
        .bind(&s.auto_justification)
        .bind(s.auto_confidence)
        .bind(&s.record)
        .bind(&s.evidence_fingerprint)
        .bind(&rec.job_id)
        .bind(&s.review_reason)
        .bind(i64::from(*bump))
        .bind(now)
        .bind(i64::from(s.epss.is_some()))
        .execute(&mut *conn)
        .await?;
    }
    for (i, id, offer) in &plan.inserts {
        let s = &rec.statements[*i];
        sqlx::query(
            "INSERT INTO statements (id, org_id, image_digest, repository, vulnerability_id, \
             package_key, package_name, package_version, package_purl, severity, severity_rank, \
             epss, kev, fix_state, auto_status, auto_justification, auto_confidence, record, \
             evidence_fingerprint, job_id, present, review_reason, decision_id, status, \
             justification, decision_expires_at, offered_decision_id, assignee, version, \
             first_seen_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
             CASE WHEN $24 = 1 THEN $12 ELSE NULL END, $13, $14, $15, $16, $17, \
             $18, $19, $20, 1, $21, NULL, $15, $16, NULL, $22, NULL, 1, $23, $23)",
        )
        .bind(id)
        .bind(&rec.org_id)
        .bind(&rec.image_digest)
        .bind(&rec.repository)
        .bind(&s.vulnerability_id)
        .bind(&s.package_key)
        .bind(&s.package_name)
        .bind(&s.package_version)
        .bind(&s.package_purl)
        .bind(&s.severity)
        .bind(s.severity_rank)
        .bind(s.epss.unwrap_or_default())
        .bind(i64::from(s.kev))
        .bind(&s.fix_state)
        .bind(&s.auto_status)
        .bind(&s.auto_justification)
        .bind(s.auto_confidence)
        .bind(&s.record)
        .bind(&s.evidence_fingerprint)
        .bind(&rec.job_id)
        .bind(&s.review_reason)
        .bind(offer)
        .bind(now)
        .bind(i64::from(s.epss.is_some()))
        .execute(&mut *conn)
        .await?;
    }
    for id in &plan.absent {
        sqlx::query(
            "UPDATE statements SET present = 0, version = version + 1, updated_at = $3 \
             WHERE id = $1 AND org_id = $2 AND present = 1",
        )
        .bind(id)
        .bind(&rec.org_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(plan.changes)
}

// ---------------------------------------------------------------------
// decisions

fn check_decision(new: &NewDecision, effect: &Effect) -> Result<(), StoreError> {
    if !ACTIONS.contains(&new.action.as_str()) {
        return Err(invalid(format!(
            "decision action {:?} (approve, override, revert, accept_offer)",
            new.action
        )));
    }
    if effect.decision == (new.action == "revert") {
        return Err(invalid(format!(
            "a {} {} a decision in force",
            new.action,
            if effect.decision {
                "cannot leave"
            } else {
                "must leave"
            }
        )));
    }
    if new.reason.trim().is_empty() {
        return Err(invalid("decision reason is empty"));
    }
    if new.author.trim().is_empty() {
        return Err(invalid("decision author is empty"));
    }
    if effect.status.is_empty() {
        return Err(invalid("decision effect: status is empty"));
    }
    Ok(())
}

async fn statement_in(
    conn: &mut AnyConnection,
    org_id: &str,
    id: &str,
    now: i64,
) -> Result<Option<StatementRow>, StoreError> {
    read_statement(conn, org_id, id, now, "").await
}

/// The statement, read with `lock` (`""` or [`Backend::for_update`]).
async fn read_statement(
    conn: &mut AnyConnection,
    org_id: &str,
    id: &str,
    now: i64,
    lock: &str,
) -> Result<Option<StatementRow>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM statements WHERE id = $1 AND org_id = $2{lock}",
        columns(&STATEMENT_FIELDS, "")
    )))
    .bind(id)
    .bind(org_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| statement_from_row(&r, now)).transpose()
}

/// The statement at `expected_version` (or, without one, as it is),
/// locked for the write that follows: not found, or a conflict when it
/// moved on.
async fn statement_at(
    conn: &mut AnyConnection,
    backend: Backend,
    org_id: &str,
    id: &str,
    expected_version: Option<i64>,
    now: i64,
) -> Result<StatementRow, StoreError> {
    let row = read_statement(conn, org_id, id, now, backend.for_update())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("statement {id}")))?;
    if let Some(expected) = expected_version {
        if expected != row.version {
            return Err(StoreError::Conflict(format!(
                "statement {id} is at version {}, not {expected}",
                row.version
            )));
        }
    }
    Ok(row)
}

/// One decision inside the caller's transaction.
#[allow(clippy::too_many_arguments)] // one decision's parts, as decide takes them
async fn decide_tx(
    conn: &mut AnyConnection,
    backend: Backend,
    org_id: &str,
    statement_id: &str,
    expected_version: Option<i64>,
    new: &NewDecision,
    effect: &Effect,
    now: i64,
) -> Result<(StatementRow, DecisionRow), StoreError> {
    let before = statement_at(conn, backend, org_id, statement_id, expected_version, now).await?;
    let decision = DecisionRow {
        id: new_id("dec"),
        org_id: org_id.to_owned(),
        statement_id: statement_id.to_owned(),
        action: new.action.clone(),
        status: new.status.clone(),
        justification: new.justification.clone(),
        impact_statement: new.impact_statement.clone(),
        action_statement: new.action_statement.clone(),
        reason: new.reason.clone(),
        author: new.author.clone(),
        key_id: new.key_id.clone(),
        evidence_fingerprint: before.evidence_fingerprint.clone(),
        auto_status: before.auto_status.clone(),
        created_at: now,
        expires_at: new.expires_at,
        superseded_at: None,
    };
    // conditional on the version read: of two concurrent decisions, the
    // second finds the version moved on and writes nothing
    let updated = sqlx::query(
        "UPDATE statements SET decision_id = $1, status = $2, justification = $3, \
         decision_expires_at = $4, offered_decision_id = NULL, version = version + 1, \
         updated_at = $5 WHERE id = $6 AND org_id = $7 AND version = $8",
    )
    .bind(effect.decision.then_some(decision.id.as_str()))
    .bind(&effect.status)
    .bind(&effect.justification)
    .bind(if effect.decision {
        new.expires_at
    } else {
        None
    })
    .bind(now)
    .bind(statement_id)
    .bind(org_id)
    .bind(before.version)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "statement {statement_id} changed while deciding (version {} is gone)",
            before.version
        )));
    }
    sqlx::query(
        "UPDATE review_decisions SET superseded_at = $1 \
         WHERE statement_id = $2 AND org_id = $3 AND superseded_at IS NULL",
    )
    .bind(now)
    .bind(statement_id)
    .bind(org_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO review_decisions ({}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL)",
        columns(&DECISION_FIELDS, "")
    )))
    .bind(&decision.id)
    .bind(&decision.org_id)
    .bind(&decision.statement_id)
    .bind(&decision.action)
    .bind(&decision.status)
    .bind(&decision.justification)
    .bind(&decision.impact_statement)
    .bind(&decision.action_statement)
    .bind(&decision.reason)
    .bind(&decision.author)
    .bind(&decision.key_id)
    .bind(&decision.evidence_fingerprint)
    .bind(&decision.auto_status)
    .bind(decision.created_at)
    .bind(decision.expires_at)
    .execute(&mut *conn)
    .await?;
    let detail = serde_json::json!({
        "statement": statement_id,
        "decision": decision.id,
        "image": before.image_digest,
        "vulnerability": before.vulnerability_id,
        "package": before.package_key,
        "old_status": before.status,
        "new_status": effect.status,
        "author": decision.author,
        "reason": decision.reason,
    })
    .to_string();
    insert_audit(
        conn,
        Some(org_id),
        Some(&new.key_id),
        &format!("review.{}", new.action),
        None,
        Some(&detail),
    )
    .await?;
    let after = statement_in(conn, org_id, statement_id, now)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("statement {statement_id}")))?;
    Ok((after, decision))
}

fn check_name(field: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control)
    {
        // the value is not repeated: it is the caller's input
        return Err(invalid(format!(
            "{field}: 1..={max} characters without control characters"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------
// the store

impl Store {
    /// The organisation's review settings (the defaults when it has none).
    pub async fn review_settings(&self, org_id: &str) -> Result<ReviewSettingsRow, StoreError> {
        let row = sqlx::query(
            "SELECT review_below, four_eyes, rerun_after_ms FROM org_review_settings \
             WHERE org_id = $1",
        )
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(ReviewSettingsRow::default());
        };
        Ok(ReviewSettingsRow {
            review_below: row.try_get("review_below")?,
            four_eyes: row.try_get::<i64, _>("four_eyes")? != 0,
            rerun_after_ms: row.try_get("rerun_after_ms")?,
        })
    }

    /// Replaces the organisation's review settings, with its audit entry.
    pub async fn set_review_settings(
        &self,
        org_id: &str,
        settings: &ReviewSettingsRow,
    ) -> Result<(), StoreError> {
        self.set_review_settings_as(org_id, settings, None).await
    }

    /// [`Store::set_review_settings`] naming the key that changed them in
    /// the audit entry.
    pub async fn set_review_settings_as(
        &self,
        org_id: &str,
        settings: &ReviewSettingsRow,
        key_id: Option<&str>,
    ) -> Result<(), StoreError> {
        if !unit_interval(settings.review_below) {
            return Err(invalid(format!(
                "review_below {} outside 0..=1",
                settings.review_below
            )));
        }
        if settings.rerun_after_ms.is_some_and(|ms| ms <= 0) {
            return Err(invalid("rerun_after_ms must be positive"));
        }
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin_write(self.backend).await?;
        let result = async {
            check_org(&mut tx, org_id).await?;
            sqlx::query(
                "INSERT INTO org_review_settings (org_id, review_below, four_eyes, rerun_after_ms, \
                 updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (org_id) DO UPDATE SET review_below = excluded.review_below, \
                 four_eyes = excluded.four_eyes, rerun_after_ms = excluded.rerun_after_ms, \
                 updated_at = excluded.updated_at",
            )
            .bind(org_id)
            .bind(settings.review_below)
            .bind(i64::from(settings.four_eyes))
            .bind(settings.rerun_after_ms)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // the rules re-applied to every statement of the organisation
            // in the same transaction: `vexxy_review::StatementRecord::
            // review_reason` over the stored columns (the server's tests
            // check that the two agree case by case)
            sqlx::query(
                "UPDATE statements SET review_reason = CASE \
                 WHEN auto_status = 'under_investigation' THEN 'under_investigation' \
                 WHEN auto_status = 'affected' AND fix_state <> 'fixed' THEN 'affected_no_fix' \
                 WHEN auto_status = 'not_affected' AND auto_confidence < $2 THEN 'low_confidence' \
                 WHEN $3 = 1 AND auto_status = 'not_affected' AND severity_rank >= 4 \
                 THEN 'four_eyes' ELSE NULL END WHERE org_id = $1",
            )
            .bind(org_id)
            .bind(settings.review_below)
            .bind(i64::from(settings.four_eyes))
            .execute(&mut *tx)
            .await?;
            let detail = serde_json::json!({
                "review_below": settings.review_below,
                "four_eyes": settings.four_eyes,
                "rerun_after_ms": settings.rerun_after_ms,
            })
            .to_string();
            insert_audit(
                &mut tx,
                Some(org_id),
                key_id,
                "review.settings",
                None,
                Some(&detail),
            )
            .await
        }
        .await;
        finish!(w, tx, result)
    }

    /// Records an analysis of one image in its own transaction (see
    /// [`Store::complete_job`] for the one committed with a job).
    pub async fn record_analysis(&self, rec: &AnalysisRecord) -> Result<ChangeSet, StoreError> {
        check_record(rec)?;
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin_write(self.backend).await?;
        let result = record_analysis_tx(&mut tx, rec, now).await;
        finish!(w, tx, result)
    }

    /// What [`Store::record_analysis`] of `rec` would report now, writing
    /// nothing.
    pub async fn preview_changes(&self, rec: &AnalysisRecord) -> Result<ChangeSet, StoreError> {
        check_record(rec)?;
        let mut conn = self.pool.acquire().await?;
        check_org(&mut conn, &rec.org_id).await?;
        Ok(plan(&mut conn, rec, now_ms()).await?.changes)
    }

    /// A page of the organisation's statements and how many match.
    pub async fn statements(
        &self,
        org_id: &str,
        filter: &StatementFilter,
        now: i64,
    ) -> Result<(Vec<StatementRow>, i64), StoreError> {
        let mut args = Args::default();
        let mut clauses = vec![format!("org_id = {}", args.push(Arg::Text(org_id.into())))];
        if !filter.include_absent {
            clauses.push("present = 1".into());
        }
        let exact = [
            ("repository", &filter.repository),
            ("image_digest", &filter.image_digest),
            ("status", &filter.status),
            ("severity", &filter.severity),
            ("review_reason", &filter.review_reason),
            ("assignee", &filter.assignee),
        ];
        for (column, value) in exact {
            if let Some(v) = value {
                clauses.push(format!("{column} = {}", args.push(Arg::Text(v.clone()))));
            }
        }
        if let Some(v) = &filter.vulnerability {
            // ids are compared as the API documents them: ignoring case
            let v = args.push(Arg::Text(v.clone()));
            clauses.push(format!("UPPER(vulnerability_id) = UPPER({v})"));
        }
        if let Some(p) = &filter.package {
            let p = args.push(Arg::Text(format!("%{}%", escape_like(p))));
            clauses.push(format!("LOWER(package_key) LIKE LOWER({p}) ESCAPE '\\'"));
        }
        if let Some(min) = filter.min_confidence {
            clauses.push(format!("auto_confidence >= {}", args.push(Arg::Float(min))));
        }
        if let Some(max) = filter.max_confidence {
            clauses.push(format!("auto_confidence <= {}", args.push(Arg::Float(max))));
        }
        if filter.queue_only {
            let n = args.push(Arg::Int(now));
            clauses.push(queue_sql("", &n));
        }
        let conditions = clauses.join(" AND ");
        let total: i64 = args
            .bind(format!(
                "SELECT COUNT(*) AS n FROM statements WHERE {conditions}"
            ))
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let order = match filter.sort {
            StatementSort::Risk => {
                "kev DESC, severity_rank DESC, (epss IS NULL), epss DESC, auto_confidence ASC, \
                 first_seen_at, id"
            }
            StatementSort::Age => "first_seen_at, id",
            StatementSort::Vulnerability => "vulnerability_id, package_key, image_digest, id",
        };
        let limit = args.push(Arg::Int(
            filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
        ));
        let offset = args.push(Arg::Int(filter.offset.unwrap_or(0).max(0)));
        let rows = args
            .bind(format!(
                "SELECT {} FROM statements WHERE {conditions} ORDER BY {order} \
                 LIMIT {limit} OFFSET {offset}",
                columns(&STATEMENT_FIELDS, "")
            ))
            .fetch_all(&self.pool)
            .await?;
        let rows = rows
            .iter()
            .map(|r| statement_from_row(r, now))
            .collect::<Result<_, _>>()?;
        Ok((rows, total))
    }

    /// One of the organisation's statements.
    pub async fn statement(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<StatementRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        statement_in(&mut conn, org_id, id, now_ms()).await
    }

    /// Records a decision on a statement and gives the statement its
    /// effect, with the audit entry, in one transaction: the previous
    /// decision in force is superseded, the decision keeps the evidence
    /// fingerprint and automated status it was made on, an offer is
    /// cleared. `NotFound` for a statement not of the organisation;
    /// `Conflict` (nothing written) when the statement is not at
    /// `expected_version`. The statement is read locked (SQLite's write
    /// lock, PostgreSQL's `FOR UPDATE`) and the `UPDATE` is conditional
    /// on the version read, so of two decisions made at the same version
    /// one wins; without `expected_version`, concurrent decisions apply
    /// one after the other, the last in force.
    pub async fn decide(
        &self,
        org_id: &str,
        statement_id: &str,
        expected_version: Option<i64>,
        new: &NewDecision,
        effect: &Effect,
        now: i64,
    ) -> Result<(StatementRow, DecisionRow), StoreError> {
        check_decision(new, effect)?;
        let mut w = self.writer().await?;
        let mut tx = w.begin_write(self.backend).await?;
        let result = decide_tx(
            &mut tx,
            self.backend,
            org_id,
            statement_id,
            expected_version,
            new,
            effect,
            now,
        )
        .await;
        finish!(w, tx, result)
    }

    /// Several decisions, all or none: the first refusal (not found,
    /// conflict) rolls every one back. Results in the order given.
    pub async fn decide_many(
        &self,
        org_id: &str,
        items: &[(String, Option<i64>, NewDecision, Effect)],
        now: i64,
    ) -> Result<Vec<(StatementRow, DecisionRow)>, StoreError> {
        if items.len() > MAX_BATCH {
            return Err(invalid(format!(
                "{} decisions at once (at most {MAX_BATCH})",
                items.len()
            )));
        }
        let mut ids = HashSet::new();
        for (id, _, new, effect) in items {
            check_decision(new, effect)?;
            if !ids.insert(id.as_str()) {
                return Err(invalid(format!("statement {id} is decided twice")));
            }
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        // one order of row locks for every batch: two batches cannot
        // deadlock on PostgreSQL
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| items[a].0.cmp(&items[b].0));
        let mut w = self.writer().await?;
        let mut tx = w.begin_write(self.backend).await?;
        let result = async {
            let mut out: Vec<Option<(StatementRow, DecisionRow)>> = vec![None; items.len()];
            for i in order {
                let (id, expected, new, effect) = &items[i];
                out[i] = Some(
                    decide_tx(
                        &mut tx,
                        self.backend,
                        org_id,
                        id,
                        *expected,
                        new,
                        effect,
                        now,
                    )
                    .await?,
                );
            }
            Ok(out.into_iter().flatten().collect::<Vec<_>>())
        }
        .await;
        finish!(w, tx, result)
    }

    /// The decisions on a statement, oldest first.
    pub async fn decisions(
        &self,
        org_id: &str,
        statement_id: &str,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM review_decisions WHERE org_id = $1 AND statement_id = $2 \
             ORDER BY created_at, id",
            columns(&DECISION_FIELDS, "")
        )))
        .bind(org_id)
        .bind(statement_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| decision_from_row(r, "")).collect()
    }

    /// One of the organisation's decisions.
    pub async fn decision(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<DecisionRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM review_decisions WHERE org_id = $1 AND id = $2",
            columns(&DECISION_FIELDS, "")
        )))
        .bind(org_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| decision_from_row(&r, "")).transpose()
    }

    /// The human decisions in force on an image's present statements
    /// (expired ones included: they still say what the VEX says), by
    /// vulnerability and package: what re-issuing its VEX needs.
    pub async fn active_decisions(
        &self,
        org_id: &str,
        image_digest: &str,
    ) -> Result<Vec<(StatementRow, DecisionRow)>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {}, {} FROM statements s JOIN review_decisions d \
             ON d.id = s.decision_id AND d.org_id = s.org_id \
             WHERE s.org_id = $1 AND s.image_digest = $2 AND s.present = 1 \
             ORDER BY s.vulnerability_id, s.package_key",
            columns(&STATEMENT_FIELDS, "s"),
            aliased(&DECISION_FIELDS, "d", "d_"),
        )))
        .bind(org_id)
        .bind(image_digest)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((statement_from_row(r, now)?, decision_from_row(r, "d_")?)))
            .collect()
    }

    /// Assigns a statement to someone (`None`: to nobody), at
    /// `expected_version` as [`Store::decide`], with its audit entry.
    pub async fn set_assignee(
        &self,
        org_id: &str,
        id: &str,
        assignee: Option<&str>,
        expected_version: Option<i64>,
    ) -> Result<StatementRow, StoreError> {
        self.set_assignee_as(org_id, id, assignee, expected_version, None)
            .await
    }

    /// [`Store::set_assignee`] naming the key that assigned in the audit
    /// entry.
    pub async fn set_assignee_as(
        &self,
        org_id: &str,
        id: &str,
        assignee: Option<&str>,
        expected_version: Option<i64>,
        key_id: Option<&str>,
    ) -> Result<StatementRow, StoreError> {
        if let Some(a) = assignee {
            check_name("assignee", a, MAX_ASSIGNEE_CHARS)?;
        }
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin_write(self.backend).await?;
        let result = async {
            let before =
                statement_at(&mut tx, self.backend, org_id, id, expected_version, now).await?;
            let updated = sqlx::query(
                "UPDATE statements SET assignee = $1, version = version + 1, updated_at = $2 \
                 WHERE id = $3 AND org_id = $4 AND version = $5",
            )
            .bind(assignee)
            .bind(now)
            .bind(id)
            .bind(org_id)
            .bind(before.version)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::Conflict(format!(
                    "statement {id} changed while assigning (version {} is gone)",
                    before.version
                )));
            }
            let detail = serde_json::json!({
                "statement": id,
                "assignee": assignee,
                "previous": before.assignee,
            })
            .to_string();
            insert_audit(
                &mut tx,
                Some(org_id),
                key_id,
                "review.assign",
                None,
                Some(&detail),
            )
            .await?;
            statement_in(&mut tx, org_id, id, now)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("statement {id}")))
        }
        .await;
        finish!(w, tx, result)
    }

    /// Sets the review reasons of statements (after the settings changed),
    /// all in one transaction; a statement not of the organisation fails
    /// the batch. Not a change of the statement: its version stays.
    pub async fn set_review_reasons(
        &self,
        org_id: &str,
        reasons: &[(String, Option<String>)],
    ) -> Result<(), StoreError> {
        if reasons.is_empty() {
            return Ok(());
        }
        let mut w = self.writer().await?;
        let mut tx = w.begin_write(self.backend).await?;
        let result = async {
            for (id, reason) in reasons {
                let done = sqlx::query(
                    "UPDATE statements SET review_reason = $1 WHERE id = $2 AND org_id = $3",
                )
                .bind(reason)
                .bind(id)
                .bind(org_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("statement {id}")));
                }
            }
            Ok(())
        }
        .await;
        finish!(w, tx, result)
    }

    /// A page of the organisation's images (most recently analysed first)
    /// with counts over their present statements, and how many match.
    /// `search` is a substring of the repository, reference or digest.
    pub async fn images(
        &self,
        org_id: &str,
        repository: Option<&str>,
        search: Option<&str>,
        limit: i64,
        offset: i64,
        now: i64,
    ) -> Result<(Vec<ImageRow>, i64), StoreError> {
        let mut args = Args::default();
        let mut clauses = vec![format!("org_id = {}", args.push(Arg::Text(org_id.into())))];
        if let Some(r) = repository {
            clauses.push(format!("repository = {}", args.push(Arg::Text(r.into()))));
        }
        if let Some(s) = search {
            let p = args.push(Arg::Text(format!("%{}%", escape_like(s))));
            clauses.push(format!(
                "(LOWER(repository) LIKE LOWER({p}) ESCAPE '\\' \
                 OR LOWER(reference) LIKE LOWER({p}) ESCAPE '\\' \
                 OR LOWER(digest) LIKE LOWER({p}) ESCAPE '\\')"
            ));
        }
        let conditions = clauses.join(" AND ");
        let total: i64 = args
            .bind(format!(
                "SELECT COUNT(*) AS n FROM images WHERE {conditions}"
            ))
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let limit = args.push(Arg::Int(limit.clamp(1, MAX_LIMIT)));
        let offset = args.push(Arg::Int(offset.max(0)));
        let now = args.push(Arg::Int(now));
        let rows = args
            .bind(image_query(
                &format!(
                    "SELECT * FROM images WHERE {conditions} \
                     ORDER BY last_analysed_at DESC, digest LIMIT {limit} OFFSET {offset}"
                ),
                &now,
            ))
            .fetch_all(&self.pool)
            .await?;
        let images = rows.iter().map(image_from_row).collect::<Result<_, _>>()?;
        Ok((images, total))
    }

    /// One of the organisation's images.
    pub async fn image(
        &self,
        org_id: &str,
        digest: &str,
        now: i64,
    ) -> Result<Option<ImageRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(image_query(
            "SELECT * FROM images WHERE org_id = $1 AND digest = $2",
            "$3",
        )))
        .bind(org_id)
        .bind(digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(image_from_row).transpose()
    }

    /// Issues the image's next VEX version (`images.vex_version + 1`,
    /// bumped in the same transaction).
    pub async fn add_vex_version(
        &self,
        org_id: &str,
        image_digest: &str,
        new: &NewVexVersion,
    ) -> Result<VexVersionRow, StoreError> {
        if !VEX_CAUSES.contains(&new.cause.as_str()) {
            return Err(invalid(format!(
                "vex version cause {:?} (analysis, decision, reevaluation)",
                new.cause
            )));
        }
        parse_digest(&new.document_digest)?;
        if let Some(envelope) = &new.envelope_digest {
            parse_digest(envelope)?;
        }
        if new.author.trim().is_empty() {
            return Err(invalid("vex version author is empty"));
        }
        // the image row's lock orders issuers; should two still pick the
        // same number, the primary key refuses the second: it tries again
        match self
            .try_add_vex_version(org_id, image_digest, new, None)
            .await
        {
            Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                self.try_add_vex_version(org_id, image_digest, new, None)
                    .await
            }
            other => other,
        }
    }

    /// [`Store::add_vex_version`] as exactly `version`, the number the
    /// document itself carries: `Conflict` (nothing written) when the
    /// image's current version is no longer `version - 1` (another issuer
    /// came first; build again from fresh rows).
    pub async fn add_vex_version_numbered(
        &self,
        org_id: &str,
        image_digest: &str,
        new: &NewVexVersion,
        version: i64,
    ) -> Result<VexVersionRow, StoreError> {
        if !VEX_CAUSES.contains(&new.cause.as_str()) {
            return Err(invalid(format!(
                "vex version cause {:?} (analysis, decision, reevaluation)",
                new.cause
            )));
        }
        parse_digest(&new.document_digest)?;
        if let Some(envelope) = &new.envelope_digest {
            parse_digest(envelope)?;
        }
        if new.author.trim().is_empty() {
            return Err(invalid("vex version author is empty"));
        }
        match self
            .try_add_vex_version(org_id, image_digest, new, Some(version))
            .await
        {
            Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!(
                    "version {version} of the VEX of image {image_digest} exists"
                )))
            }
            other => other,
        }
    }

    async fn try_add_vex_version(
        &self,
        org_id: &str,
        image_digest: &str,
        new: &NewVexVersion,
        expected: Option<i64>,
    ) -> Result<VexVersionRow, StoreError> {
        let now = now_ms();
        let mut w = self.writer().await?;
        let mut tx = w.begin_write(self.backend).await?;
        let result = async {
            let bumped = match expected {
                None => {
                    sqlx::query(
                        "UPDATE images SET vex_version = vex_version + 1 \
                     WHERE org_id = $1 AND digest = $2 RETURNING vex_version",
                    )
                    .bind(org_id)
                    .bind(image_digest)
                    .fetch_optional(&mut *tx)
                    .await?
                }
                Some(v) => {
                    sqlx::query(
                        "UPDATE images SET vex_version = $3 \
                     WHERE org_id = $1 AND digest = $2 AND vex_version = $4 RETURNING vex_version",
                    )
                    .bind(org_id)
                    .bind(image_digest)
                    .bind(v)
                    .bind(v - 1)
                    .fetch_optional(&mut *tx)
                    .await?
                }
            };
            let version: i64 = match bumped {
                Some(row) => row.try_get("vex_version")?,
                None => {
                    let exists = sqlx::query(
                        "SELECT 1 AS one FROM images WHERE org_id = $1 AND digest = $2",
                    )
                    .bind(org_id)
                    .bind(image_digest)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                    return Err(if exists {
                        StoreError::Conflict(format!(
                            "the VEX of image {image_digest} moved past version {}",
                            expected.unwrap_or(0) - 1
                        ))
                    } else {
                        StoreError::NotFound(format!("image {image_digest}"))
                    });
                }
            };
            let row = VexVersionRow {
                org_id: org_id.to_owned(),
                image_digest: image_digest.to_owned(),
                version,
                document_digest: new.document_digest.clone(),
                envelope_digest: new.envelope_digest.clone(),
                cause: new.cause.clone(),
                job_id: new.job_id.clone(),
                author: new.author.clone(),
                created_at: now,
                attestation: None,
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO vex_versions ({VEX_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)"
            )))
            .bind(&row.org_id)
            .bind(&row.image_digest)
            .bind(row.version)
            .bind(&row.document_digest)
            .bind(&row.envelope_digest)
            .bind(&row.cause)
            .bind(&row.job_id)
            .bind(&row.author)
            .bind(row.created_at)
            .execute(&mut *tx)
            .await?;
            Ok(row)
        }
        .await;
        finish!(w, tx, result)
    }

    /// The image's VEX versions, newest first.
    pub async fn vex_versions(
        &self,
        org_id: &str,
        image_digest: &str,
    ) -> Result<Vec<VexVersionRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VEX_COLUMNS} FROM vex_versions WHERE org_id = $1 AND image_digest = $2 \
             ORDER BY version DESC"
        )))
        .bind(org_id)
        .bind(image_digest)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(vex_from_row).collect()
    }

    /// One VEX version of the image.
    pub async fn vex_version(
        &self,
        org_id: &str,
        image_digest: &str,
        version: i64,
    ) -> Result<Option<VexVersionRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VEX_COLUMNS} FROM vex_versions \
             WHERE org_id = $1 AND image_digest = $2 AND version = $3"
        )))
        .bind(org_id)
        .bind(image_digest)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(vex_from_row).transpose()
    }

    /// Records what was attached to the image for a VEX version (JSON).
    pub async fn set_vex_attestation(
        &self,
        org_id: &str,
        image_digest: &str,
        version: i64,
        attestation: &str,
    ) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let done = sqlx::query(
            "UPDATE vex_versions SET attestation = $1 \
             WHERE org_id = $2 AND image_digest = $3 AND version = $4",
        )
        .bind(attestation)
        .bind(org_id)
        .bind(image_digest)
        .bind(version)
        .execute(w.conn())
        .await?;
        w.done();
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "vex version {version} of {image_digest}"
            )));
        }
        Ok(())
    }

    /// The organisation's numbers at `now`.
    pub async fn dashboard(&self, org_id: &str, now: i64) -> Result<DashboardRow, StoreError> {
        let images = sqlx::query(
            "SELECT COUNT(*) AS seen, COUNT(CASE WHEN vex_version > 0 THEN 1 END) AS with_vex, \
             COUNT(CASE WHEN EXISTS (SELECT 1 FROM statements s WHERE s.org_id = i.org_id \
               AND s.image_digest = i.digest AND s.present = 1) THEN 1 END) AS analysed \
             FROM images i WHERE i.org_id = $1",
        )
        .bind(org_id)
        .fetch_one(&self.pool)
        .await?;
        let by_status_rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM statements WHERE org_id = $1 AND present = 1 \
             GROUP BY status ORDER BY status",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        let by_status = by_status_rows
            .iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect::<Result<Vec<(String, i64)>, StoreError>>()?;
        let backlog = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n, MIN(first_seen_at) AS oldest FROM statements \
             WHERE org_id = $1 AND {}",
            queue_sql("", "$2")
        )))
        .bind(org_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let decisions: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM review_decisions WHERE org_id = $1")
                .bind(org_id)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
        let ttd = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(SUM(first_decision - first_seen_at) AS BIGINT) AS total \
             FROM (SELECT s.first_seen_at AS first_seen_at, MIN(d.created_at) AS first_decision \
                   FROM statements s JOIN review_decisions d ON d.statement_id = s.id \
                   WHERE s.org_id = $1 AND d.org_id = $1 AND d.action <> 'revert' \
                   GROUP BY s.id, s.first_seen_at) t",
        )
        .bind(org_id)
        .fetch_one(&self.pool)
        .await?;
        let decided: i64 = ttd.try_get("n")?;
        let total_ttd: Option<i64> = ttd.try_get("total")?;
        let findings = by_status.iter().map(|(_, n)| n).sum();
        let not_affected = by_status
            .iter()
            .find(|(s, _)| s == "not_affected")
            .map_or(0, |(_, n)| *n);
        Ok(DashboardRow {
            images_seen: images.try_get("seen")?,
            images_analysed: images.try_get("analysed")?,
            images_with_vex: images.try_get("with_vex")?,
            findings,
            by_status,
            not_affected,
            backlog: backlog.try_get("n")?,
            oldest_backlog_at: backlog.try_get("oldest")?,
            decisions,
            mean_time_to_decision_ms: total_ttd.filter(|_| decided > 0).map(|t| t / decided),
            weekly: self.weekly(org_id, now).await?,
        })
    }

    /// The last [`WEEKS`] weeks (Monday 00:00 UTC), oldest first.
    async fn weekly(&self, org_id: &str, now: i64) -> Result<Vec<WeekRow>, StoreError> {
        let this_week = EPOCH_MONDAY_MS + (now - EPOCH_MONDAY_MS).div_euclid(WEEK_MS) * WEEK_MS;
        let start = this_week - (WEEKS as i64 - 1) * WEEK_MS;
        let mut weeks: Vec<WeekRow> = (0..WEEKS as i64)
            .map(|i| WeekRow {
                week_start: start + i * WEEK_MS,
                analyses: 0,
                new_findings: 0,
                decisions: 0,
            })
            .collect();
        // times at or after `start`: the integer division floors on both
        // databases
        let sources = [
            "SELECT completed_at AS t FROM jobs WHERE org_id = $1 AND state = 'complete' \
             AND completed_at >= $2",
            "SELECT first_seen_at AS t FROM statements WHERE org_id = $1 AND first_seen_at >= $2",
            "SELECT created_at AS t FROM review_decisions WHERE org_id = $1 AND created_at >= $2",
        ];
        for (which, source) in sources.iter().enumerate() {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT w, COUNT(*) AS n FROM (SELECT (t - $2) / {WEEK_MS} AS w FROM ({source}) x) y \
                 GROUP BY w"
            )))
            .bind(org_id)
            .bind(start)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let w: i64 = row.try_get("w")?;
                let n: i64 = row.try_get("n")?;
                let Some(week) = usize::try_from(w).ok().and_then(|w| weeks.get_mut(w)) else {
                    continue; // in the future
                };
                match which {
                    0 => week.analyses = n,
                    1 => week.new_findings = n,
                    _ => week.decisions = n,
                }
            }
        }
        Ok(weeks)
    }

    /// Each repository's standing from its most recently analysed image,
    /// by repository.
    pub async fn compliance(
        &self,
        org_id: &str,
        now: i64,
    ) -> Result<Vec<ComplianceRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH latest AS ( \
               SELECT i.repository AS repository, i.digest AS digest, \
                 (SELECT COUNT(*) FROM images j WHERE j.org_id = i.org_id \
                  AND j.repository = i.repository) AS images \
               FROM images i WHERE i.org_id = $1 AND NOT EXISTS ( \
                 SELECT 1 FROM images k WHERE k.org_id = i.org_id AND k.repository = i.repository \
                 AND (k.last_analysed_at > i.last_analysed_at \
                      OR (k.last_analysed_at = i.last_analysed_at AND k.digest > i.digest)))) \
             SELECT l.repository, l.digest, l.images, COUNT(s.id) AS total, \
               COUNT(CASE WHEN s.status = 'not_affected' THEN 1 END) AS not_affected, \
               COUNT(CASE WHEN s.status = 'affected' THEN 1 END) AS needs_fix, \
               COUNT(CASE WHEN s.status = 'under_investigation' THEN 1 END) AS under_investigation, \
               COUNT(CASE WHEN {} THEN 1 END) AS unreviewed \
             FROM latest l LEFT JOIN statements s \
               ON s.org_id = $1 AND s.image_digest = l.digest AND s.present = 1 \
             GROUP BY l.repository, l.digest, l.images ORDER BY l.repository",
            queue_sql("s", "$2")
        )))
        .bind(org_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ComplianceRow {
                    repository: r.try_get("repository")?,
                    image_digest: r.try_get("digest")?,
                    images: r.try_get("images")?,
                    total: r.try_get("total")?,
                    not_affected: r.try_get("not_affected")?,
                    needs_fix: r.try_get("needs_fix")?,
                    under_investigation: r.try_get("under_investigation")?,
                    unreviewed: r.try_get("unreviewed")?,
                })
            })
            .collect()
    }

    /// Per organisation (every one, by id): the review backlog, images
    /// seen and images with an issued VEX (for metrics).
    pub async fn review_gauges(
        &self,
        now: i64,
    ) -> Result<Vec<(String, i64, i64, i64)>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT o.id AS org_id, \
               (SELECT COUNT(*) FROM statements s WHERE s.org_id = o.id AND {}) AS backlog, \
               (SELECT COUNT(*) FROM images i WHERE i.org_id = o.id) AS images_seen, \
               (SELECT COUNT(*) FROM images i WHERE i.org_id = o.id AND i.vex_version > 0) \
                 AS images_with_vex \
             FROM orgs o ORDER BY o.id",
            queue_sql("s", "$1")
        )))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("org_id")?,
                    r.try_get("backlog")?,
                    r.try_get("images_seen")?,
                    r.try_get("images_with_vex")?,
                ))
            })
            .collect()
    }

    /// Images whose organisation re-runs analyses (`rerun_after_ms`) and
    /// whose last run (or, without one, last analysis) is older than
    /// that, with no job of the organisation queued or running for the
    /// digest or the reference: (organisation, digest, the job to repeat
    /// — the last run's, else the last analysis'), stalest first.
    /// (A job for the image created within the period, whatever came of
    /// it, counts as its re-run: a failing re-run is tried once a period,
    /// not at every sweep.)
    pub async fn images_due_for_rerun(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT i.org_id, i.digest, COALESCE(i.last_run_job, i.last_analysis_job) AS job \
             FROM images i JOIN org_review_settings r ON r.org_id = i.org_id \
             WHERE r.rerun_after_ms IS NOT NULL \
             AND COALESCE(i.last_run_at, i.last_analysed_at) < $1 - r.rerun_after_ms \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.org_id = i.org_id \
               AND (j.image_digest = i.digest OR j.image_ref = i.reference) \
               AND (j.state IN ('queued', 'running', 'analyzing') \
                    OR j.created_at > $1 - r.rerun_after_ms)) \
             ORDER BY COALESCE(i.last_run_at, i.last_analysed_at), i.org_id, i.digest \
             LIMIT $2",
        )
        .bind(now)
        .bind(limit.clamp(1, MAX_LIMIT))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("org_id")?,
                    r.try_get("digest")?,
                    r.try_get("job")?,
                ))
            })
            .collect()
    }
}

/// The images `page` selects (a query of `images` rows) with counts over
/// their present statements at the time bound as `now`.
fn image_query(page: &str, now: &str) -> String {
    format!(
        "WITH page AS ({page}) \
         SELECT p.digest, p.repository, p.reference, p.first_seen_at, p.last_analysed_at, \
           p.last_analysis_job, p.last_run_job, p.last_run_at, p.vex_version, \
           COUNT(s.id) AS findings, \
           COUNT(CASE WHEN s.status = 'not_affected' THEN 1 END) AS not_affected, \
           COUNT(CASE WHEN s.status = 'affected' THEN 1 END) AS affected, \
           COUNT(CASE WHEN s.status = 'under_investigation' THEN 1 END) AS under_investigation, \
           COUNT(CASE WHEN {} THEN 1 END) AS unreviewed \
         FROM page p LEFT JOIN statements s \
           ON s.org_id = p.org_id AND s.image_digest = p.digest AND s.present = 1 \
         GROUP BY p.org_id, p.digest, p.repository, p.reference, p.first_seen_at, \
           p.last_analysed_at, p.last_analysis_job, p.last_run_job, p.last_run_at, p.vex_version \
         ORDER BY p.last_analysed_at DESC, p.digest",
        queue_sql("s", now)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_ids_are_stable_and_distinct() {
        let a = statement_id("org_1", "sha256:aa", "CVE-1", "pkg:deb/debian/a@1");
        assert_eq!(
            a,
            statement_id("org_1", "sha256:aa", "CVE-1", "pkg:deb/debian/a@1")
        );
        assert_eq!(a.len(), 4 + 32);
        // the separator keeps the parts apart
        assert_ne!(
            a,
            statement_id("org_1", "sha256:aaC", "VE-1", "pkg:deb/debian/a@1")
        );
        assert_ne!(
            a,
            statement_id("org_2", "sha256:aa", "CVE-1", "pkg:deb/debian/a@1")
        );
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-23 is a Monday
        let monday = 1_795_392_000_000;
        for t in [monday, monday + 1, monday + WEEK_MS - 1] {
            let start = EPOCH_MONDAY_MS + (t - EPOCH_MONDAY_MS).div_euclid(WEEK_MS) * WEEK_MS;
            assert_eq!(start, monday, "{t}");
        }
    }
}
