//! Wire types of the human loop: stored statements, the review queue,
//! decisions, an image's VEX and its history, the dashboard, compliance
//! and comparisons. Responses are built from store rows; decisions come
//! in as [`vexxy_review::RawDecision`] and are checked by its `TryFrom`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Filters shared by the statement listing, the queue and bulk decisions.
#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// Repository (the product name without tag or digest), exact.
    pub repository: Option<String>,
    /// Image digest (`sha256:…`), exact.
    pub image: Option<String>,
    /// Vulnerability id, exact (case-insensitive).
    pub vulnerability: Option<String>,
    /// Part of the package key (`pkg:deb/debian/libssl3@…`).
    pub package: Option<String>,
    /// Effective status: not_affected, affected, fixed, under_investigation.
    pub status: Option<String>,
    /// Severity: unknown, negligible, low, medium, high, critical.
    pub severity: Option<String>,
    /// Automated confidence at least this.
    pub min_confidence: Option<f64>,
    /// Automated confidence below or equal to this.
    pub max_confidence: Option<f64>,
    /// Why a statement needs a person: under_investigation, affected_no_fix, low_confidence, four_eyes.
    pub reason: Option<String>,
    /// Assigned reviewer.
    pub assignee: Option<String>,
    /// Also statements a later analysis of their image no longer reports.
    #[serde(default)]
    pub include_absent: bool,
    /// `risk` (known exploited, severity, EPSS, lowest confidence first), `age` or `vulnerability`.
    pub sort: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A decision as it is recorded.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DecisionInfo {
    pub id: String,
    pub statement_id: String,
    /// approve, override, revert or accept_offer.
    pub action: String,
    pub status: Option<String>,
    pub justification: Option<String>,
    pub impact_statement: Option<String>,
    pub action_statement: Option<String>,
    pub reason: String,
    /// Who decided: the API key's owner, else the key's name.
    pub author: String,
    pub key_id: String,
    /// The automated status and the evidence (fingerprint) the reviewer saw.
    pub auto_status: String,
    pub evidence_fingerprint: String,
    /// RFC 3339.
    pub created_at: String,
    pub expires_at: Option<String>,
    pub superseded_at: Option<String>,
}

/// One stored statement: image × vulnerability × package.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StatementInfo {
    pub id: String,
    pub image_digest: String,
    pub repository: String,
    pub vulnerability_id: String,
    pub package_key: String,
    pub package_name: String,
    pub package_version: String,
    pub package_purl: Option<String>,
    pub severity: String,
    pub epss: Option<f64>,
    pub known_exploited: bool,
    /// fixed, not_fixed, wont_fix or unknown.
    pub fix_state: String,
    /// The automated verdict.
    pub auto_status: String,
    pub auto_justification: Option<String>,
    pub confidence: f64,
    /// The effective verdict (a human decision wins).
    pub status: String,
    pub justification: Option<String>,
    /// The analysis (job) whose automated verdict this is.
    pub analysis_id: String,
    /// False once a later analysis of the image no longer reports it.
    pub present: bool,
    /// In the review queue now.
    pub in_queue: bool,
    pub review_reason: Option<String>,
    pub decision_id: Option<String>,
    pub decision_expires_at: Option<String>,
    /// A decision taken on another digest of the repository whose evidence
    /// for this package is unchanged: offered, not applied.
    pub offered_decision_id: Option<String>,
    pub assignee: Option<String>,
    /// Optimistic-concurrency version: send it back as `expected_version`.
    pub version: i64,
    pub first_seen_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatementList {
    pub statements: Vec<StatementInfo>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// A statement with what it rests on and every decision about it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatementDetail {
    #[serde(flatten)]
    pub statement: StatementInfo,
    pub aliases: Vec<String>,
    pub description: Option<String>,
    pub fixed_versions: Vec<String>,
    /// The automated verdict's notes (its `status_notes`).
    pub notes: String,
    /// The automated verdict's evidence, as the VEX evidence sidecar writes it.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    pub decisions: Vec<DecisionInfo>,
    pub offered_decision: Option<DecisionInfo>,
}

/// The body of a decision (`POST /api/v1/statements/{id}/decisions`).
/// Mirrors [`vexxy_review::RawDecision`]; the statement is the path's.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// approve, override, revert or accept_offer.
    pub action: String,
    /// override: the new status.
    pub status: Option<String>,
    /// override to not_affected: an OpenVEX justification (or an impact_statement).
    pub justification: Option<String>,
    pub impact_statement: Option<String>,
    /// override to affected: what to do.
    pub action_statement: Option<String>,
    /// Why (mandatory).
    pub reason: Option<String>,
    /// Re-review after this many days (1–3650).
    pub expires_in_days: Option<u32>,
    /// The statement version the reviewer saw; a newer one is 409.
    pub expected_version: Option<i64>,
}

/// What a decision changed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DecisionResponse {
    pub statement: StatementInfo,
    pub decision: DecisionInfo,
    /// The image's re-issued VEX.
    pub vex: Option<VexVersionInfo>,
}

/// A decision on every statement a filter selects.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDecisionRequest {
    pub filter: StatementQuery,
    /// approve, override or revert.
    pub action: String,
    pub status: Option<String>,
    pub justification: Option<String>,
    pub impact_statement: Option<String>,
    pub action_statement: Option<String>,
    pub reason: Option<String>,
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkDecisionResponse {
    pub decided: usize,
    pub statement_ids: Vec<String>,
    /// The re-issued VEX of every image touched.
    pub vex: Vec<VexVersionInfo>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// The reviewer, or null to unassign.
    pub assignee: Option<String>,
    pub expected_version: Option<i64>,
}

/// One issued version of an image's VEX.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VexVersionInfo {
    pub image_digest: String,
    pub version: i64,
    /// analysis, decision or reevaluation.
    pub cause: String,
    pub job_id: Option<String>,
    pub author: String,
    pub created_at: String,
    pub document_digest: String,
    /// The DSSE envelope, when the organisation has a signing key.
    pub envelope_digest: Option<String>,
    /// Where it was attached in the registry, when it was.
    pub attestation: Option<super::api::Attestation>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VexHistory {
    pub image_digest: String,
    /// Newest first.
    pub versions: Vec<VexVersionInfo>,
}

/// An analysed image.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ImageInfo {
    pub digest: String,
    pub repository: String,
    pub reference: String,
    pub first_seen_at: String,
    pub last_analysed_at: String,
    pub last_analysis_id: String,
    /// The last analysis that ran the image (not a re-decision).
    pub last_run_id: Option<String>,
    pub last_run_at: Option<String>,
    /// The current VEX version (0: none issued).
    pub vex_version: i64,
    pub findings: i64,
    pub not_affected: i64,
    pub affected: i64,
    pub under_investigation: i64,
    pub unreviewed: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImageList {
    pub images: Vec<ImageInfo>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImageQuery {
    pub repository: Option<String>,
    /// Part of the repository or reference.
    pub search: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A week of activity (weeks start on Monday, UTC).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WeekInfo {
    pub week_start: String,
    pub analyses: i64,
    pub new_findings: i64,
    pub decisions: i64,
}

/// The organisation at a glance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Dashboard {
    pub images_seen: i64,
    pub images_analysed: i64,
    pub images_with_vex: i64,
    /// images_with_vex / images_seen (0 when none).
    pub vex_coverage: f64,
    pub findings: i64,
    /// Findings by effective status.
    pub by_status: std::collections::BTreeMap<String, i64>,
    /// Share of findings settled not_affected (0 when none).
    pub noise_reduction: f64,
    pub backlog: i64,
    /// Age of the oldest statement in the queue, in seconds.
    pub backlog_oldest_age_secs: Option<i64>,
    pub decisions: i64,
    pub mean_time_to_decision_secs: Option<f64>,
    /// The last 12 weeks, oldest first.
    pub weekly: Vec<WeekInfo>,
}

/// One repository's standing (its most recently analysed image).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ComplianceRow {
    pub repository: String,
    pub image_digest: String,
    pub images: i64,
    pub total: i64,
    pub not_affected: i64,
    pub needs_fix: i64,
    pub under_investigation: i64,
    pub unreviewed: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Compliance {
    pub repositories: Vec<ComplianceRow>,
}

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FormatQuery {
    /// json (default) or csv.
    pub format: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CompareQuery {
    /// The old image's digest.
    pub a: String,
    /// The new image's digest.
    pub b: String,
}

/// The organisation's review rules.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewSettings {
    /// Automated not_affected verdicts below this confidence need a person (0–1, default 0.6).
    pub review_below: f64,
    /// Critical and high not_affected claims need a person.
    #[serde(default)]
    pub four_eyes: bool,
    /// Re-run the sandbox for images whose last run is older than this many days.
    pub rerun_after_days: Option<u32>,
}

/// A new scanner report for an analysed image: re-decided from the stored
/// execution profile, without running the image.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReevaluateResponse {
    pub job_id: String,
    pub image_digest: String,
    pub status: String,
}

/// The images a node agent watches for (`GET /api/v1/node-agent/images`):
/// the organisation's analysed images that have a stored run, whose
/// findings production evidence can re-decide.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeAgentImages {
    pub images: Vec<WatchedImage>,
}

/// One image a node agent watches for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WatchedImage {
    /// The image's manifest digest (`sha256:…`), as containerd records it
    /// for a container started from the image.
    pub digest: String,
    pub repository: String,
    /// The reference it was analysed as.
    pub reference: String,
}

/// What a re-decision changed (in the `analysis.completed` webhook and the status).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Changes {
    /// Statement ids new to the image (they enter the queue when the rules say so).
    pub added: Vec<String>,
    /// Statements the new report no longer has.
    pub removed: Vec<String>,
    /// Statements whose automated verdict changed.
    pub changed: Vec<String>,
    /// Human decisions kept.
    pub kept_decisions: usize,
    /// Decisions of another digest offered to new statements.
    pub offered: usize,
}

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryInfo {
    pub at: String,
    pub key_id: Option<String>,
    pub action: String,
    pub job_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub entries: Vec<AuditEntryInfo>,
    pub total: i64,
}
