//! The API's wire types. Raw request bodies turn into a checked
//! [`JobSpec`] through `TryFrom`; responses are built from store records.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vexxy_store::Job;

/// Limits on what a submission may ask for.
#[derive(Clone, Debug)]
pub struct SubmitLimits {
    pub default_duration: Duration,
    pub max_duration: Duration,
    /// Allow callbacks to loopback, private and link-local addresses.
    pub allow_private_callbacks: bool,
    /// Accept test scripts (they run on the host, in the sandbox's
    /// network namespace; only for trusted tenants).
    pub allow_test_scripts: bool,
    /// Bounds on `scan_report`, checked while the body is read.
    pub scan_report: DocumentLimits,
    /// Bounds on `sbom`, checked while the body is read.
    pub sbom: DocumentLimits,
    /// Bodies larger than this (by `Content-Length`, or once this much
    /// has arrived) are large submissions.
    pub large_body_bytes: usize,
    /// Large submissions read and parsed at once; more are refused with
    /// 503 and `Retry-After`.
    pub max_large_submits: usize,
}

/// Bounds on one submitted JSON document (scanner report or SBOM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Largest document, in bytes as submitted.
    pub max_bytes: usize,
    /// Most JSON values (objects, arrays, strings, numbers, booleans,
    /// nulls; object keys not counted) in the document.
    pub max_values: u64,
}

/// A JSON document (scanner report or SBOM) exactly as it was submitted:
/// its bytes are kept, never re-serialised, and no tree of it is built.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Document(Box<serde_json::value::RawValue>);

impl Document {
    /// The document's JSON text, as submitted.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// Whether the document is a JSON object.
    pub fn is_object(&self) -> bool {
        self.json().trim_start().starts_with('{')
    }

    /// `sha256:<hex>` of the document's bytes.
    pub fn digest(&self) -> String {
        use sha2::{Digest as _, Sha256};
        format!("sha256:{}", hex::encode(Sha256::digest(self.json())))
    }
}

impl TryFrom<&serde_json::Value> for Document {
    type Error = serde_json::Error;

    fn try_from(value: &serde_json::Value) -> Result<Self, Self::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }
}

impl TryFrom<String> for Document {
    type Error = serde_json::Error;

    /// The JSON text as it is (it must be one well-formed JSON value).
    fn try_from(json: String) -> Result<Self, Self::Error> {
        serde_json::value::RawValue::from_string(json).map(Self)
    }
}

impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Eq for Document {}

impl std::fmt::Debug for Document {
    // the length and digest: a report can be megabytes
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Document({} bytes, {})",
            self.json().len(),
            self.digest()
        )
    }
}

/// `POST /api/v1/analysis/submit`.
// `vexxy submit` sends this very type: what it leaves out is not sent.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Registry reference (`registry/repo:tag`, `…@sha256:…`) or, where
    /// the server allows local images, `oci:DIR[:TAG]`,
    /// `oci-archive:FILE[:TAG]`, `docker-archive:FILE`.
    pub image_ref: String,
    /// The digest the image must have (`sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<SubmitConfig>,
    /// A Grype, Trivy or OSV-Scanner JSON report of the image (the
    /// server's size and value-count limits apply; it is parsed at
    /// submission and stored as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub scan_report: Option<Document>,
    /// An SPDX, CycloneDX or Syft JSON SBOM of the image (instead of a
    /// report; limits as for `scan_report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub sbom: Option<Document>,
    /// Gets a signed POST when the job finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// How to run and exercise the image.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitConfig {
    /// Exercise window in seconds (default: the server's): its maximum, or
    /// its length with `fixed_window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_duration: Option<u64>,
    /// Run the workload for the whole `analysis_duration` instead of
    /// closing the window once the evidence stops changing (default
    /// false: adaptive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_window: Option<bool>,
    /// Extra environment variables for the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, String>>,
    /// Command replacing the image's CMD, one word per element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Shell script exercising the workload (run with VEXXY_TARGET_URL set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_script: Option<String>,
    /// Ports to wait for and probe (default: the image's exposed ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// The repository the image is scanned from (`registry.example/team/app`):
    /// the VEX product's name. Needed for a local image without a name of
    /// its own; a registry image is named by its reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// Decide a report made for another image: statements then carry the
    /// versions installed in this one. Without it such a job fails as bad
    /// input naming both digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_report_mismatch: Option<bool>,
    /// Sign the OpenVEX document with the organisation's active signing
    /// key as an in-toto attestation (DSSE), kept beside the results as
    /// `vex.openvex.intoto.json`. Needs an active signing key (422
    /// without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<bool>,
    /// Sign as `sign` does and attach the attestation to the image in its
    /// registry (OCI referrer and cosign `.att` tag), with the
    /// organisation's credentials for that registry. Registry images only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<bool>,
}

/// A submission, checked and with defaults applied: what is stored and
/// what the worker runs. Identical specs are the same analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub image_ref: String,
    pub image_digest: Option<String>,
    pub duration_secs: u64,
    /// `config.fixed_window`: the whole `duration_secs`, not an adaptive
    /// window. Absent (adaptive) in jobs stored before it existed, and in
    /// adaptive jobs, so their dedupe keys are unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixed_window: bool,
    pub environment: BTreeMap<String, String>,
    pub command: Vec<String>,
    pub test_script: Option<String>,
    pub ports: Vec<u16>,
    /// The report's bytes as submitted (parsed at submission; the worker
    /// parses them again).
    pub scan_report: Option<Document>,
    /// The SBOM's bytes as submitted.
    pub sbom: Option<Document>,
    pub callback_url: Option<String>,
    /// The product's repository name (`config.image_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// `config.allow_report_mismatch`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_report_mismatch: bool,
    /// Sign the OpenVEX document with the organisation's active key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sign: bool,
    /// Also attach the attestation to the image (implies `sign`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attach: bool,
    /// A re-decision: decide from the execution profile stored by this
    /// (complete) job instead of running the image (`POST
    /// /api/v1/images/{digest}/reports`). Never set by a submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reevaluate_from: Option<String>,
    /// A scheduled re-run of an earlier analysis (when it was scheduled,
    /// Unix ms): runs the image again rather than reuse a stored profile.
    /// Never set by a submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun: Option<i64>,
    /// A re-decision with production evidence: every execution profile a
    /// node agent uploaded for the image so far, merged (`POST
    /// /api/v1/images/{digest}/profiles`), as the profile JSON. The worker
    /// merges it with the stored profile of `reevaluate_from`. Never set
    /// by a submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_profile: Option<Document>,
    /// The one profile whose upload queued this re-decision, as sent
    /// (kept as an artifact of the job). Never set by a submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_upload: Option<Document>,
    /// The content digests (`production::upload_digest`) of the newest
    /// uploads merged into `production_profile`, oldest first: an upload
    /// sent again is recognised by them. Never set by a submission.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub production_upload_digests: Vec<String>,
    /// The id of the API key that sent `production_upload`. Never set by
    /// a submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_uploaded_by: Option<String>,
}

const MAX_SCRIPT: usize = 1 << 20;

impl TryFrom<(SubmitRequest, &SubmitLimits)> for JobSpec {
    type Error = String;

    fn try_from((raw, limits): (SubmitRequest, &SubmitLimits)) -> Result<Self, String> {
        let image_ref = raw.image_ref.trim().to_owned();
        if image_ref.is_empty() || image_ref.len() > 1024 || image_ref.chars().any(char::is_control)
        {
            return Err("image_ref: must be 1..1024 printable characters".into());
        }
        if let Some(d) = &raw.image_digest {
            let hex = d.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(format!(
                    "image_digest: {d:?} is not sha256:<64 lowercase hex>"
                ));
            }
        }
        let config = raw.config.unwrap_or_default();
        let duration_secs = config
            .analysis_duration
            .unwrap_or(limits.default_duration.as_secs());
        if duration_secs == 0 || duration_secs > limits.max_duration.as_secs() {
            return Err(format!(
                "config.analysis_duration: {duration_secs} is outside 1..={} seconds",
                limits.max_duration.as_secs()
            ));
        }
        let environment = config.environment.unwrap_or_default();
        if environment.len() > 256 {
            return Err("config.environment: at most 256 variables".into());
        }
        for (k, v) in &environment {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(format!("config.environment: {k:?} is not a valid variable"));
            }
        }
        let command = config.command.unwrap_or_default();
        if command.len() > 256 || command.iter().any(|w| w.contains('\0') || w.len() > 4096) {
            return Err("config.command: at most 256 words without NUL, 4096 bytes each".into());
        }
        if config.test_script.is_some() && !limits.allow_test_scripts {
            return Err("config.test_script: this server does not run test scripts (its operator can allow them with --allow-test-scripts)".into());
        }
        if config
            .test_script
            .as_ref()
            .is_some_and(|s| s.len() > MAX_SCRIPT)
        {
            return Err(format!(
                "config.test_script: larger than {MAX_SCRIPT} bytes"
            ));
        }
        let mut ports = config.ports.unwrap_or_default();
        if ports.contains(&0) || ports.len() > 32 {
            return Err("config.ports: 1..=32 ports in 1..=65535".into());
        }
        ports.sort_unstable();
        ports.dedup();
        if raw.scan_report.is_some() && raw.sbom.is_some() {
            return Err("scan_report and sbom: give one or the other".into());
        }
        for (field, doc) in [("scan_report", &raw.scan_report), ("sbom", &raw.sbom)] {
            if doc.as_ref().is_some_and(|d| !d.is_object()) {
                return Err(format!("{field}: must be a JSON object"));
            }
        }
        let callback_url = raw
            .callback_url
            .map(|u| check_callback(&u, limits.allow_private_callbacks))
            .transpose()?;
        let image_name = config.image_name.map(|n| n.trim().to_owned());
        if let Some(n) = &image_name {
            vexxy_model::check_repository(n).map_err(|e| format!("config.image_name: {e}"))?;
        }
        Ok(Self {
            image_ref,
            image_digest: raw.image_digest,
            duration_secs,
            fixed_window: config.fixed_window.unwrap_or(false),
            environment,
            command,
            test_script: config.test_script,
            ports,
            scan_report: raw.scan_report,
            sbom: raw.sbom,
            callback_url,
            image_name,
            allow_report_mismatch: config.allow_report_mismatch.unwrap_or(false),
            sign: config.sign.unwrap_or(false) || config.attach.unwrap_or(false),
            attach: config.attach.unwrap_or(false),
            reevaluate_from: None,
            rerun: None,
            production_profile: None,
            production_upload: None,
            production_upload_digests: Vec::new(),
            production_uploaded_by: None,
        })
    }
}

/// A callback URL, checked and normalised (what is stored is what the
/// `url` crate parsed, so the sender cannot read it differently).
fn check_callback(raw: &str, allow_private: bool) -> Result<String, String> {
    if raw.chars().any(char::is_control) || raw.len() > 2048 {
        return Err("callback_url: at most 2048 characters, no control characters".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("callback_url: {raw:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("callback_url: {raw:?} is not http(s)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("callback_url: {raw:?} carries credentials"));
    }
    let private = match url.host() {
        None => return Err(format!("callback_url: {raw:?} has no host")),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => !is_public(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_public(std::net::IpAddr::V6(ip)),
    };
    if private && !allow_private {
        return Err(format!(
            "callback_url: {raw:?} points at a loopback or private address, which this server does not call"
        ));
    }
    Ok(url.to_string())
}

/// Whether an address is on the public internet, by the one deny-list
/// every egress of this service uses ([`vexxy_egress::deny_reason`]:
/// loopback, private, link-local, shared, unspecified, broadcast,
/// documentation, multicast, reserved, also when embedded in an
/// IPv4-mapped, IPv4-compatible, NAT64 or 6to4 IPv6 address). Webhooks go
/// to public addresses only, unless the operator allows private ones.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    !vexxy_egress::is_denied(ip)
}

impl JobSpec {
    /// What makes two requests the same analysis: everything but the
    /// callback, with object keys sorted, and the report or SBOM by the
    /// SHA-256 of its bytes (hashed, never parsed into a tree here).
    pub fn dedupe_key(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let same = Self {
            image_ref: self.image_ref.clone(),
            image_digest: self.image_digest.clone(),
            duration_secs: self.duration_secs,
            fixed_window: self.fixed_window,
            environment: self.environment.clone(),
            command: self.command.clone(),
            test_script: self.test_script.clone(),
            ports: self.ports.clone(),
            scan_report: None,
            sbom: None,
            callback_url: None,
            image_name: self.image_name.clone(),
            allow_report_mismatch: self.allow_report_mismatch,
            sign: self.sign,
            attach: self.attach,
            reevaluate_from: self.reevaluate_from.clone(),
            rerun: self.rerun,
            production_profile: None,
            production_upload: None,
            production_upload_digests: self.production_upload_digests.clone(),
            production_uploaded_by: self.production_uploaded_by.clone(),
        };
        let mut value = serde_json::to_value(&same).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            for (field, doc) in [
                ("scan_report", &self.scan_report),
                ("sbom", &self.sbom),
                ("production_profile", &self.production_profile),
                ("production_upload", &self.production_upload),
            ] {
                if let Some(doc) = doc {
                    map.insert(field.to_owned(), serde_json::Value::String(doc.digest()));
                }
            }
        }
        let bytes = serde_json::to_vec(&canonical(value)).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }
}

/// The value with every object's keys sorted.
fn canonical(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// `202`/`200` answer to a submission.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    pub job_id: String,
    #[schema(example = "queued")]
    pub status: String,
    pub estimated_duration_minutes: u64,
    /// RFC 3339.
    pub created_at: String,
    /// `true` when an identical earlier request was returned instead.
    pub deduplicated: bool,
}

/// `GET /api/v1/analysis/{id}/status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobStatus {
    pub job_id: String,
    /// queued, running, analyzing, complete, failed or cancelled.
    pub status: String,
    pub progress_percent: i64,
    pub current_phase: Option<String>,
    pub image_ref: String,
    pub image_digest: Option<String>,
    pub attempts: i64,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub updated_at: String,
    /// What the job signed and attached (jobs with `sign` or `attach`,
    /// once complete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Attestation>,
}

/// The attestation a job made of its OpenVEX document: an in-toto
/// Statement (predicate type OpenVEX) about the image's manifest, in a
/// DSSE envelope signed with the organisation's key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attestation {
    /// signed (stored as an artifact), attached (also in the registry) or
    /// skipped (the analysis had no VEX document to sign).
    pub status: String,
    /// Why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The organisation's signing key that signed (its id in
    /// `/api/v1/signing-keys`) and that key's keyid (securesystemslib's,
    /// as in the envelope's signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// The statement's subject: repository name and manifest digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// sha256 of the envelope (the `vex.openvex.intoto.json` artifact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_digest: Option<String>,
    /// Attached: the digest of the referrer manifest carrying the envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_digest: Option<String>,
    /// Attached: whether the registry serves the OCI referrers API (else
    /// the referrers tag schema stands in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrers_api: Option<bool>,
    /// Attached: cosign's `sha256-<hex>.att` tag and the digest of the
    /// manifest it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosign_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosign_manifest_digest: Option<String>,
    /// Attached: the registry already had this very attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged: Option<bool>,
}

impl From<&Job> for JobStatus {
    fn from(j: &Job) -> Self {
        Self {
            job_id: j.id.clone(),
            status: j.state.to_string(),
            progress_percent: j.progress,
            current_phase: j.phase.clone(),
            image_ref: j.image_ref.clone(),
            image_digest: j.image_digest.clone(),
            attempts: j.attempts,
            error: j.error.clone(),
            created_at: rfc3339(j.created_at),
            started_at: j.started_at.map(rfc3339),
            completed_at: j.completed_at.map(rfc3339),
            updated_at: rfc3339(j.updated_at),
            attestation: j
                .attestation
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok()),
        }
    }
}

/// Verdict counts of a complete analysis.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    pub total: u64,
    pub not_affected: u64,
    pub affected: u64,
    pub fixed: u64,
    pub under_investigation: u64,
}

impl Summary {
    /// The statements of an analysis, by status.
    pub fn of(outcome: &vexxy_analyze::AnalysisOutcome) -> Self {
        use vexxy_model::Status;
        let count = |status| outcome.count(status) as u64;
        Self {
            total: outcome.decision.statements.len() as u64,
            not_affected: count(Status::NotAffected),
            affected: count(Status::Affected),
            fixed: count(Status::Fixed),
            under_investigation: count(Status::UnderInvestigation),
        }
    }
}

/// `GET /api/v1/analysis/{id}/results`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Results {
    pub job_id: String,
    pub status: String,
    pub image_ref: String,
    pub image_digest: Option<String>,
    pub summary: Summary,
    /// The OpenVEX document; null when the image had no findings to decide.
    #[schema(value_type = Option<Object>)]
    pub vex_document: Option<serde_json::Value>,
    /// Artifact URLs by kind: vex_openvex, vex_cyclonedx, vex_csaf,
    /// evidence, profile, sbom, report_markdown, report_html, and
    /// vex_attestation for a signed job.
    pub links: BTreeMap<String, String>,
    /// What the job signed and attached, if it was asked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Attestation>,
}

/// `DELETE /api/v1/analysis/{id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelResponse {
    pub job_id: String,
    pub status: String,
}

/// `GET /api/v1/analysis`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub items: Vec<JobStatus>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

/// Query of `GET /api/v1/analysis`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only jobs in this state.
    pub status: Option<String>,
    /// Only jobs whose image reference contains this.
    pub image: Option<String>,
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Jobs per page, 1..=500 (default 50).
    pub per_page: Option<i64>,
}

/// `GET /api/v1/quota`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    pub organization: String,
    pub tier: String,
    pub period_start: String,
    pub period_end: String,
    pub used: i64,
    pub limit: i64,
    pub remaining: i64,
}

/// The body POSTed to a job's `callback_url`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookPayload {
    /// analysis.completed or analysis.failed.
    pub event: String,
    pub job_id: String,
    pub status: String,
    pub image_ref: String,
    pub image_digest: Option<String>,
    pub summary: Option<Summary>,
    pub error: Option<String>,
    /// Path of the results on this server.
    pub results_url: String,
    pub finished_at: String,
    /// What the analysis changed in the image's stored statements (new,
    /// gone and re-decided findings), when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<crate::api_review::Changes>,
}

/// `POST /api/v1/signing-keys`: a new key pair for the organisation.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateSigningKey {
    /// `p256` (ECDSA P-256 with SHA-256, cosign's default; the default)
    /// or `ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
}

/// `POST /api/v1/signing-keys/import`: the organisation's own private key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportSigningKey {
    /// An unencrypted PKCS#8 PEM private key (`BEGIN PRIVATE KEY`; SEC1
    /// `BEGIN EC PRIVATE KEY` for P-256), ECDSA P-256 or Ed25519, at most
    /// 16 KiB. Stored sealed; never returned.
    pub private_key_pem: String,
}

impl std::fmt::Debug for ImportSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImportSigningKey { private_key_pem: <redacted> }")
    }
}

/// An organisation's signing key: public material only.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SigningKeyInfo {
    /// The key's id here (`DELETE /api/v1/signing-keys/{id}`).
    pub id: String,
    /// ecdsa-p256 or ed25519.
    pub algorithm: String,
    /// The keyid in signatures (securesystemslib's: sha256 of the
    /// canonical key JSON).
    pub keyid: String,
    /// SubjectPublicKeyInfo PEM: verifies the organisation's attestations
    /// (`cosign verify-attestation --key`, `vexxy verify --key`).
    pub public_key_pem: String,
    pub created_at: String,
    /// The key jobs sign with now (one at most).
    pub active: bool,
}

impl From<&vexxy_store::org_secrets::SigningKeyRecord> for SigningKeyInfo {
    fn from(k: &vexxy_store::org_secrets::SigningKeyRecord) -> Self {
        Self {
            id: k.id.clone(),
            algorithm: k.algorithm.clone(),
            keyid: k.keyid.clone(),
            public_key_pem: k.public_key_pem.clone(),
            created_at: rfc3339(k.created_at),
            active: k.active,
        }
    }
}

/// `GET /api/v1/signing-keys`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SigningKeyList {
    /// Newest first; revoked keys are not listed.
    pub items: Vec<SigningKeyInfo>,
}

/// `PUT /api/v1/registry-credentials/{registry}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryCredentialRequest {
    pub username: String,
    /// The password or access token; stored sealed, never returned.
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentialRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentialRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// An organisation's login to a registry: no password.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegistryCredentialInfo {
    /// `host[:port]` as image references name it (`docker.io` for Docker Hub).
    pub registry: String,
    pub username: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&vexxy_store::org_secrets::RegistryCredential> for RegistryCredentialInfo {
    fn from(c: &vexxy_store::org_secrets::RegistryCredential) -> Self {
        Self {
            registry: c.registry.clone(),
            username: c.username.clone(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// `GET /api/v1/registry-credentials`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegistryCredentialList {
    pub items: Vec<RegistryCredentialInfo>,
}

/// `GET`/`PUT /api/v1/registry-allowlist`: the registries the
/// organisation's jobs may name. Empty: no list of its own (the
/// operator's, if any, still applies).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryAllowlist {
    /// `host`, `host:port` or `*.suffix`; at most 100.
    pub hosts: Vec<String>,
}

/// Unix milliseconds → RFC 3339 (UTC).
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SubmitLimits {
        SubmitLimits {
            default_duration: Duration::from_secs(30),
            max_duration: Duration::from_secs(600),
            allow_private_callbacks: false,
            allow_test_scripts: false,
            ..crate::ServiceConfig::default().submit
        }
    }

    fn parse(json: serde_json::Value) -> Result<JobSpec, String> {
        let raw: SubmitRequest = serde_json::from_value(json).map_err(|e| e.to_string())?;
        JobSpec::try_from((raw, &limits()))
    }

    #[test]
    fn submissions_are_checked_field_by_field() {
        use serde_json::json;
        for (body, field) in [
            (json!({"image_ref": ""}), "image_ref"),
            (
                json!({"image_ref": "a", "image_digest": "sha256:abc"}),
                "image_digest",
            ),
            (
                json!({"image_ref": "a", "config": {"analysis_duration": 0}}),
                "config.analysis_duration",
            ),
            (
                json!({"image_ref": "a", "config": {"analysis_duration": 601}}),
                "config.analysis_duration",
            ),
            (
                json!({"image_ref": "a", "config": {"environment": {"A=B": "c"}}}),
                "config.environment",
            ),
            (
                json!({"image_ref": "a", "config": {"ports": [0]}}),
                "config.ports",
            ),
            (
                json!({"image_ref": "a", "scan_report": {}, "sbom": {}}),
                "scan_report and sbom",
            ),
            (json!({"image_ref": "a", "scan_report": [1]}), "scan_report"),
            (
                json!({"image_ref": "a", "config": {"test_script": "curl $VEXXY_TARGET_URL"}}),
                "config.test_script",
            ),
            (
                json!({"image_ref": "a", "callback_url": "ftp://x/y"}),
                "callback_url",
            ),
            (
                json!({"image_ref": "a", "callback_url": "http://127.0.0.1:9/x"}),
                "callback_url",
            ),
            (
                json!({"image_ref": "a", "callback_url": "http://10.1.2.3/x"}),
                "callback_url",
            ),
            (
                json!({"image_ref": "a", "callback_url": "http://localhost/x"}),
                "callback_url",
            ),
        ] {
            let err = parse(body.clone()).expect_err(&body.to_string());
            assert!(err.starts_with(field), "{body}: {err}");
        }
        let err =
            parse(json!({"image_ref": "a", "config": {"duration": 5}})).expect_err("unknown field");
        assert!(err.contains("duration"), "{err}");
    }

    #[test]
    fn defaults_apply_and_identical_requests_share_a_key() {
        use serde_json::json;
        let a = parse(json!({"image_ref": "nginx:1", "config": {"ports": [80, 80]}})).expect("ok");
        assert_eq!(a.duration_secs, 30);
        assert_eq!(a.ports, vec![80]);
        let b = parse(
            json!({"image_ref": " nginx:1 ", "config": {"analysis_duration": 30, "ports": [80]},
            "callback_url": "https://hooks.example.com/x"}),
        )
        .expect("ok");
        assert_eq!(
            a.dedupe_key(),
            b.dedupe_key(),
            "defaults and the callback do not make it different"
        );
        let c = parse(json!({"image_ref": "nginx:1", "config": {"analysis_duration": 31}}))
            .expect("ok");
        assert_ne!(a.dedupe_key(), c.dedupe_key());
    }

    #[test]
    fn a_fixed_window_job_is_another_job() {
        use serde_json::json;
        let adaptive = parse(json!({"image_ref": "nginx:1"})).expect("ok");
        assert!(!adaptive.fixed_window);
        let said_adaptive =
            parse(json!({"image_ref": "nginx:1", "config": {"fixed_window": false}})).expect("ok");
        assert_eq!(adaptive.dedupe_key(), said_adaptive.dedupe_key());
        let fixed =
            parse(json!({"image_ref": "nginx:1", "config": {"fixed_window": true}})).expect("ok");
        assert!(fixed.fixed_window);
        assert_ne!(adaptive.dedupe_key(), fixed.dedupe_key());
        // stored and read back; an adaptive job stores no field, so jobs
        // stored before windows existed read as adaptive and keep their keys
        let stored = serde_json::to_value(&fixed).expect("encode");
        assert_eq!(stored["fixed_window"], json!(true));
        assert_eq!(
            serde_json::from_value::<JobSpec>(stored).expect("decode"),
            fixed
        );
        let stored = serde_json::to_value(&adaptive).expect("encode");
        assert!(stored.get("fixed_window").is_none(), "{stored}");
        let err = parse(json!({"image_ref": "nginx:1", "config": {"fixed_window": "yes"}}))
            .expect_err("not a boolean");
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn reports_are_kept_as_sent_and_keyed_by_their_bytes() {
        let body = r#"{"image_ref": "nginx:1", "scan_report": { "matches" : [ ], "descriptor": {"name": "grype"} }}"#;
        let raw: SubmitRequest = serde_json::from_str(body).expect("parses");
        let spec = JobSpec::try_from((raw, &limits())).expect("ok");
        let report = spec.scan_report.as_ref().expect("report");
        assert_eq!(
            report.json(),
            r#"{ "matches" : [ ], "descriptor": {"name": "grype"} }"#,
            "the bytes as sent"
        );
        let stored = serde_json::to_string(&spec).expect("encode");
        assert!(stored.contains(report.json()), "{stored}");
        let back: JobSpec = serde_json::from_str(&stored).expect("decode");
        assert_eq!(back, spec);
        assert_eq!(back.dedupe_key(), spec.dedupe_key());
        let other = r#"{"image_ref": "nginx:1", "scan_report": {"matches": [], "descriptor": {"name": "grype"}}}"#;
        let other = JobSpec::try_from((serde_json::from_str(other).expect("parses"), &limits()))
            .expect("ok");
        assert_ne!(
            other.dedupe_key(),
            spec.dedupe_key(),
            "other bytes are another report"
        );
        // a spec without documents keeps the key it had before documents were kept as bytes
        let plain = parse(serde_json::json!({"image_ref": "nginx:1"})).expect("ok");
        let mut old = serde_json::to_value(&plain).expect("value");
        old["callback_url"] = serde_json::Value::Null;
        let bytes = serde_json::to_vec(&canonical(old)).expect("bytes");
        use sha2::{Digest as _, Sha256};
        assert_eq!(plain.dedupe_key(), hex::encode(Sha256::digest(bytes)));
    }

    #[test]
    fn requests_as_the_client_sends_them_parse_back() {
        let sent = SubmitRequest {
            image_ref: "nginx:1".into(),
            config: Some(SubmitConfig {
                ports: Some(vec![80]),
                ..SubmitConfig::default()
            }),
            ..SubmitRequest::default()
        };
        let wire = serde_json::to_value(&sent).expect("encode");
        assert_eq!(
            wire,
            serde_json::json!({"image_ref": "nginx:1", "config": {"ports": [80]}}),
            "what was not given is not sent"
        );
        let spec = parse(wire).expect("the server reads what the client sends");
        assert_eq!((spec.image_ref.as_str(), spec.ports), ("nginx:1", vec![80]));
    }
}
