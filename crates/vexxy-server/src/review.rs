//! The human loop's work in the service: an analysis's statements become
//! rows (in the transaction that completes its job), an image's current
//! VEX is issued from those rows and the human decisions about them
//! (signed with the organisation's key, re-attached where the image's
//! analyses attach), a new report for an analysed image becomes a
//! re-decision job, and images whose last run is older than the
//! organisation allows are run again.
//!
//! The rules (what needs a person, what a decision may say, how a
//! document is built) are `vexxy-review`'s; storage is `vexxy-store`'s.
//! This module only moves data between them.

use std::sync::Arc;

use tokio::sync::watch;
use vexxy_analyze::AnalysisOutcome;
use vexxy_model::{Decider, Justification, Product, Status, Verdict};
use vexxy_review::{HumanStatement, Issue, ReviewSettings, StatementRecord};
use vexxy_store::{
    jobs::{NewJob, Submitted},
    review::{
        AnalysisRecord, DecisionRow, Effect, NewDecision, NewStatement, NewVexVersion,
        ReviewSettingsRow, StatementFilter, StatementRow, VexVersionRow,
    },
    tenants::month_window,
    Job, StoreError,
};

use crate::{
    api::{Attestation, JobSpec},
    error::ApiError,
    Service,
};

/// Why an image's VEX was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// An analysis that ran the image (or reused its profile).
    Analysis,
    /// A human decision.
    Decision,
    /// A new report decided against the stored profile.
    Reevaluation,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analysis => "analysis",
            Self::Decision => "decision",
            Self::Reevaluation => "reevaluation",
        }
    }
}

/// The organisation's review rules as `vexxy-review` takes them.
pub fn settings(row: &ReviewSettingsRow) -> ReviewSettings {
    ReviewSettings {
        review_below: row.review_below,
        four_eyes: row.four_eyes,
    }
}

/// The rows an analysis adds for its image: one per finding. `None` when
/// the image has no digest to key them on.
pub(crate) fn analysis_record(
    job: &Job,
    spec: &JobSpec,
    outcome: &AnalysisOutcome,
    rules: &ReviewSettings,
) -> Option<AnalysisRecord> {
    let digest = outcome.product.digest.as_ref()?.to_string();
    let statements = StatementRecord::from_outcome(&outcome.findings, &outcome.decision.decisions)
        .iter()
        .map(|r| new_statement(r, rules))
        .collect();
    Some(AnalysisRecord {
        org_id: job.org_id.clone(),
        image_digest: digest,
        repository: outcome.product.name.clone(),
        reference: spec.image_ref.clone(),
        job_id: job.id.clone(),
        // the run whose profile a re-decision uses, and whose age a re-run
        // measures: only an analysis that really ran the image
        full_run: matches!(
            outcome.profile_source,
            vexxy_analyze::ProfileSource::Recorded { .. }
        ),
        statements,
    })
}

pub fn new_statement(r: &StatementRecord, rules: &ReviewSettings) -> NewStatement {
    NewStatement {
        vulnerability_id: r.vulnerability_id.clone(),
        package_key: r.package_key.clone(),
        package_name: r.package.name.clone(),
        package_version: r.package.version.clone(),
        package_purl: r.package.purl.as_ref().map(ToString::to_string),
        severity: r.severity.as_str().to_owned(),
        severity_rank: r.severity_rank(),
        epss: r.epss,
        kev: r.known_exploited,
        fix_state: fix_state(&r.fix_state).to_owned(),
        auto_status: r.verdict.status().as_str().to_owned(),
        auto_justification: r.verdict.justification().map(|j| j.as_str().to_owned()),
        auto_confidence: r.verdict.confidence.rounded(),
        record: r.to_json(),
        evidence_fingerprint: r.evidence_fingerprint.clone(),
        review_reason: r.review_reason(rules).map(|x| x.as_str().to_owned()),
    }
}

pub(crate) fn fix_state(f: &vexxy_model::FixState) -> &'static str {
    match f {
        vexxy_model::FixState::Fixed => "fixed",
        vexxy_model::FixState::NotFixed => "not_fixed",
        vexxy_model::FixState::WontFix => "wont_fix",
        vexxy_model::FixState::Unknown => "unknown",
    }
}

/// Every present statement of an image, all pages.
pub(crate) async fn image_statements(
    svc: &Service,
    org_id: &str,
    digest: &str,
) -> Result<Vec<StatementRow>, StoreError> {
    let now = vexxy_store::now_ms();
    let mut all = Vec::new();
    loop {
        // an order no re-analysis changes (vulnerability, package, id), so
        // pages neither skip nor repeat rows
        let filter = StatementFilter {
            image_digest: Some(digest.to_owned()),
            sort: vexxy_store::review::StatementSort::Vulnerability,
            limit: Some(1000),
            offset: Some(all.len() as i64),
            ..StatementFilter::default()
        };
        let (page, total) = svc.store.statements(org_id, &filter, now).await?;
        let done = page.is_empty();
        all.extend(page);
        if done || all.len() as i64 >= total {
            return Ok(all);
        }
    }
}

/// What went wrong issuing a document.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("image {0}: {1}")]
    Build(String, String),
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::Store(s) => s.into(),
            IssueError::Build(..) => ApiError::internal(e.to_string()),
        }
    }
}

/// The verdict a stored human decision stands for: the status,
/// justification and statements the reviewer decided (for an approval,
/// the automated verdict as it was when approved), never what automation
/// says now. The automated evidence goes with it only while it is the
/// evidence the reviewer saw (same fingerprint).
pub(crate) fn human_verdict(
    record: &StatementRecord,
    d: &DecisionRow,
) -> Result<Option<Verdict>, String> {
    if d.action == "revert" {
        return Ok(None);
    }
    let by = Decider::Human {
        author: d.author.clone(),
    };
    let when = crate::api::rfc3339(d.created_at);
    let notes = vexxy_review::human_notes(&d.author, &when, &d.reason);
    let status = d
        .status
        .as_deref()
        .and_then(Status::from_openvex)
        .ok_or_else(|| format!("decision {}: no status", d.id))?;
    let justification = d
        .justification
        .as_deref()
        .map(|j| {
            Justification::from_openvex(j)
                .ok_or_else(|| format!("decision {}: justification {j:?}", d.id))
        })
        .transpose()?;
    let mut verdict = Verdict::new(
        status,
        justification,
        d.impact_statement.clone(),
        d.action_statement.clone(),
        by,
    )
    .map_err(|e| format!("decision {}: {e}", d.id))?;
    if record.evidence_fingerprint == d.evidence_fingerprint {
        verdict.evidence.clone_from(&record.verdict.evidence);
    }
    Ok(Some(verdict.with_notes(notes)))
}

/// Issues the image's next VEX version from its stored statements and the
/// human decisions about them; signs it with the organisation's active key
/// when it has one; re-attaches it where the image's analyses attach.
/// `Ok(None)`: the image has no present finding, so no document applies
/// (its current version stops being served).
///
/// The document carries its version number, so it is stored as exactly
/// that version: when another issuer (another process) came first, it is
/// built again from fresh rows.
pub(crate) async fn reissue(
    svc: &Arc<Service>,
    org_id: &str,
    digest: &str,
    cause: Cause,
    job_id: Option<&str>,
    author: &str,
) -> Result<Option<VexVersionRow>, IssueError> {
    let _issuing = svc.issuing.lock().await;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match issue_once(svc, org_id, digest, cause, job_id, author).await {
            Err(IssueError::Store(StoreError::Conflict(_))) if attempt < 4 => continue,
            other => return other,
        }
    }
}

async fn issue_once(
    svc: &Arc<Service>,
    org_id: &str,
    digest: &str,
    cause: Cause,
    job_id: Option<&str>,
    author: &str,
) -> Result<Option<VexVersionRow>, IssueError> {
    let now = vexxy_store::now_ms();
    let image = svc
        .store
        .image(org_id, digest, now)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("image {digest}")))?;
    let rows = image_statements(svc, org_id, digest).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut records = Vec::with_capacity(rows.len());
    for row in &rows {
        let r = StatementRecord::from_json(&row.record).map_err(|e| {
            IssueError::Build(digest.to_owned(), format!("statement {}: {e}", row.id))
        })?;
        records.push(r);
    }
    let by_id: std::collections::HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let mut humans = Vec::new();
    for (row, decision) in svc.store.active_decisions(org_id, digest).await? {
        let Some(&i) = by_id.get(row.id.as_str()) else {
            continue;
        };
        let verdict = human_verdict(&records[i], &decision)
            .map_err(|e| IssueError::Build(digest.to_owned(), e))?;
        if let Some(verdict) = verdict {
            humans.push(HumanStatement {
                vulnerability_id: row.vulnerability_id.clone(),
                package_key: row.package_key.clone(),
                verdict,
                author: decision.author.clone(),
                reason: decision.reason.clone(),
                decided_at: at(decision.created_at),
            });
        }
    }
    let product = Product {
        name: image.repository.clone(),
        tag: None,
        digest: Some(
            digest
                .parse()
                .map_err(|e| IssueError::Build(digest.to_owned(), format!("{e}")))?,
        ),
    };
    let version = image.vex_version + 1;
    let first = match svc.store.vex_version(org_id, digest, 1).await? {
        Some(v) => v.created_at,
        None => now,
    };
    // the organisation authors its image's document (and its `@id`
    // differs from another organisation's for the same image)
    let org = svc.store.org(org_id).await?;
    let document = vexxy_review::issue(&Issue {
        product: &product,
        records: &records,
        humans: &humans,
        version: u32::try_from(version).unwrap_or(u32::MAX),
        first_issued: at(first),
        last_updated: (version > 1).then(|| at(now)),
        author: &format!("{} (vexxy)", org.name),
    })
    .map_err(|e| IssueError::Build(digest.to_owned(), e.to_string()))?;
    let document_digest = put_blob(svc, document.clone()).await?;
    let signed = sign(svc, org_id, &product, &document).await;
    let envelope_digest = match &signed {
        Some(envelope) => Some(put_blob(svc, envelope.clone()).await?),
        None => None,
    };
    let row = svc
        .store
        .add_vex_version_numbered(
            org_id,
            digest,
            &NewVexVersion {
                document_digest,
                envelope_digest,
                cause: cause.as_str().to_owned(),
                job_id: job_id.map(str::to_owned),
                author: author.to_owned(),
            },
            version,
        )
        .await?;
    // what the registry holds: a job that attaches pushes its own
    // (automated) document; the issued one replaces it there when it says
    // more — a human decision, or after a decision changed it
    let says_more = cause == Cause::Decision || !humans.is_empty();
    if let (true, Some(envelope), Some(run)) = (says_more, signed, image.last_run_job.as_deref()) {
        spawn_attach(svc, org_id, digest, row.version, run, envelope);
    }
    Ok(Some(row))
}

fn at(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

async fn put_blob(svc: &Service, bytes: Vec<u8>) -> Result<String, StoreError> {
    use sha2::{Digest as _, Sha256};
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    svc.store.touch_blob(&digest, bytes.len() as i64).await?;
    svc.evidence.put(bytes).await
}

/// The DSSE envelope of `document`, when the organisation has an active
/// signing key and the server a secret key to open it; else `None` (the
/// version is issued unsigned and says so).
async fn sign(svc: &Service, org_id: &str, product: &Product, document: &[u8]) -> Option<Vec<u8>> {
    let secret_key = svc.config.secret_key.as_ref()?;
    let (_, pem) = match svc.store.active_signing_key(secret_key, org_id).await {
        Ok(Some(found)) => found,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(org = org_id, error = %e, "the organisation's signing key could not be opened; the VEX is issued unsigned");
            return None;
        }
    };
    let key = vexxy_attest::SigningKey::from_pem(pem.expose()).ok()?;
    drop(pem);
    match vexxy_analyze::distribute::sign_vex(&vexxy_analyze::distribute::SignRequest {
        document,
        subject_name: &product.name,
        subject_digest: product.digest.as_ref(),
        key: &key,
    }) {
        Ok(signed) => Some(signed.envelope),
        Err(e) => {
            tracing::warn!(org = org_id, error = %e, "signing the re-issued VEX failed; issued unsigned");
            None
        }
    }
}

/// Re-attaches a re-issued version where the image's last run attached,
/// in the background and bounded; records the outcome on the version.
fn spawn_attach(
    svc: &Arc<Service>,
    org_id: &str,
    digest: &str,
    version: i64,
    run_job: &str,
    envelope: Vec<u8>,
) {
    let svc = Arc::clone(svc);
    let (org_id, digest, run_job) = (org_id.to_owned(), digest.to_owned(), run_job.to_owned());
    tokio::spawn(async move {
        // one re-attachment at a time in this process; a version that is
        // no longer current by then is not pushed (the newer one is)
        let _one = svc.attaching.lock().await;
        match svc
            .store
            .image(&org_id, &digest, vexxy_store::now_ms())
            .await
        {
            Ok(Some(image)) if image.vex_version == version => {}
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(image = %digest, error = %e, "reading the image failed; not re-attaching");
                return;
            }
        }
        let spec = match job_spec(&svc, &org_id, &run_job).await {
            Ok(Some(spec)) if spec.attach => spec,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(job = %run_job, error = %e, "reading the image's last run failed; not re-attaching");
                return;
            }
        };
        let Ok(subject) = digest.parse::<vexxy_model::Digest>() else {
            return;
        };
        let attached = tokio::time::timeout(
            std::time::Duration::from_secs(600),
            crate::tenant::attach_envelope(&svc, &org_id, &spec, &subject, &envelope),
        )
        .await;
        let attestation = match attached {
            Ok(Ok(a)) => Attestation {
                status: "attached".into(),
                referrer_digest: Some(a.referrer.to_string()),
                referrers_api: Some(a.referrers_api),
                cosign_tag: Some(a.cosign_tag),
                cosign_manifest_digest: Some(a.cosign_manifest.to_string()),
                unchanged: Some(a.unchanged),
                ..Attestation::default()
            },
            Ok(Err(e)) => Attestation {
                status: "attach_failed".into(),
                reason: Some(e.to_string()),
                ..Attestation::default()
            },
            Err(_) => Attestation {
                status: "attach_failed".into(),
                reason: Some("attaching took longer than 600 s".into()),
                ..Attestation::default()
            },
        };
        let json = serde_json::to_string(&attestation).unwrap_or_default();
        if let Err(e) = svc
            .store
            .set_vex_attestation(&org_id, &digest, version, &json)
            .await
        {
            tracing::warn!(error = %e, "recording the re-attachment failed");
        }
    });
}

/// The stored request of one of the organisation's jobs.
pub(crate) async fn job_spec(
    svc: &Service,
    org_id: &str,
    job_id: &str,
) -> Result<Option<JobSpec>, StoreError> {
    let Some(request) = svc.store.job_request(Some(org_id), job_id).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_str(&request).ok())
}

/// Queues a re-decision of an analysed image with a new report: decided
/// from the execution profile its last run stored, without running it.
pub(crate) async fn queue_reevaluation(
    svc: &Arc<Service>,
    caller: &vexxy_store::Caller,
    digest: &str,
    report: crate::api::Document,
) -> Result<(Job, bool), ApiError> {
    let spec = reevaluation_spec(svc, caller, digest, report).await?;
    submit_reevaluation(svc, caller, &spec).await
}

/// Queues a checked re-decision ([`reevaluation_spec`]).
pub(crate) async fn submit_reevaluation(
    svc: &Arc<Service>,
    caller: &vexxy_store::Caller,
    spec: &JobSpec,
) -> Result<(Job, bool), ApiError> {
    submit_internal(
        svc,
        caller.org.id.clone(),
        Some(caller.key_id.clone()),
        caller.org.tier.priority(),
        caller.org.quota(),
        spec,
    )
    .await
}

/// The job of a re-decision of an analysed image with a new report,
/// checked: the image, its last run, its stored profile and the report.
/// The production evidence node agents uploaded for the image so far
/// goes with it (a new report does not make it less true).
pub(crate) async fn reevaluation_spec(
    svc: &Arc<Service>,
    caller: &vexxy_store::Caller,
    digest: &str,
    report: crate::api::Document,
) -> Result<JobSpec, ApiError> {
    let StoredRun {
        image,
        run,
        spec: last,
    } = stored_run(svc, caller, digest).await?;
    let production = crate::production::evidence_so_far(svc, &caller.org.id, &image).await?;
    let (production, uploads) = match production {
        Some(e) => (Some(e.profile), e.uploads),
        None => (None, Vec::new()),
    };
    let spec = JobSpec {
        image_digest: Some(digest.to_owned()),
        scan_report: Some(report),
        sbom: None,
        reevaluate_from: Some(run),
        rerun: None,
        production_profile: production,
        production_upload: None,
        production_upload_digests: uploads,
        production_uploaded_by: None,
        ..last
    };
    crate::job::findings(&spec).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(spec)
}

/// An analysed image's last run, whose stored execution profile a
/// re-decision decides from.
pub(crate) struct StoredRun {
    pub(crate) image: vexxy_store::review::ImageRow,
    /// The run's job id.
    pub(crate) run: String,
    /// The run's request.
    pub(crate) spec: JobSpec,
}

/// The image's last run, checked: the image is the organisation's (404),
/// it was run (409 `no_profile`), and the run's request and execution
/// profile are still stored (410).
pub(crate) async fn stored_run(
    svc: &Arc<Service>,
    caller: &vexxy_store::Caller,
    digest: &str,
) -> Result<StoredRun, ApiError> {
    let now = vexxy_store::now_ms();
    let org = &caller.org.id;
    let image = svc
        .store
        .image(org, digest, now)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("image {digest}")))?;
    let run = image.last_run_job.clone().ok_or_else(|| {
        ApiError::conflict(
            "no_profile",
            format!("image {digest} has no stored run to decide from; submit an analysis"),
        )
    })?;
    let last = job_spec(svc, org, &run).await?.ok_or_else(|| {
        ApiError::gone(format!(
            "the run of image {digest} (job {run}) is no longer stored"
        ))
    })?;
    let has_profile = svc
        .store
        .artifacts(&run)
        .await?
        .iter()
        .any(|a| a.name == vexxy_analyze::ArtifactKind::Profile.file_name());
    if !has_profile {
        return Err(ApiError::gone(format!(
            "the execution profile of image {digest} (job {run}) passed its retention period; submit an analysis"
        )));
    }
    Ok(StoredRun {
        image,
        run,
        spec: last,
    })
}

/// Submits a job the service makes itself (a re-decision, a re-run).
pub(crate) async fn submit_internal(
    svc: &Arc<Service>,
    org_id: String,
    key_id: Option<String>,
    priority: i64,
    quota: i64,
    spec: &JobSpec,
) -> Result<(Job, bool), ApiError> {
    let new = NewJob {
        org_id,
        dedupe_key: spec.dedupe_key(),
        image_ref: spec.image_ref.clone(),
        image_digest: spec.image_digest.clone(),
        request: serde_json::to_string(spec).map_err(|e| ApiError::internal(e.to_string()))?,
        callback_url: spec.callback_url.clone(),
        priority,
        max_attempts: svc.config.queue.max_attempts,
        timeout_ms: svc.config.queue.job_timeout.as_millis() as i64,
        key_id,
    };
    let window = month_window(vexxy_store::now_ms());
    match svc.store.submit(new, quota, window).await? {
        Submitted::Created(job) => {
            svc.wake_workers();
            Ok((job, true))
        }
        Submitted::Existing(job) => Ok((job, false)),
        Submitted::QuotaExceeded { used, limit } => Err(ApiError::quota_exceeded(used, limit)),
    }
}

/// Runs images again whose last run is older than their organisation's
/// `rerun_after_days`, a few at a time, every sweep period.
pub(crate) async fn rerun_loop(svc: Arc<Service>, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if let Err(e) = rerun_due(&svc).await {
            tracing::error!(error = %e.body.message, "scheduling re-runs failed");
        }
        tokio::select! {
            () = tokio::time::sleep(svc.config.sweep_every) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Queues the re-runs that are due now; returns how many.
pub async fn rerun_due(svc: &Arc<Service>) -> Result<usize, ApiError> {
    let now = vexxy_store::now_ms();
    let mut queued = 0;
    // images whose stored request passed retention cannot be repeated:
    // look past them, queue at most 16 per round
    for (org_id, digest, run) in svc.store.images_due_for_rerun(now, 256).await? {
        if queued >= 16 {
            break;
        }
        let Some(last) = job_spec(svc, &org_id, &run).await? else {
            continue;
        };
        let org = svc.store.org(&org_id).await?;
        let spec = JobSpec {
            image_digest: Some(digest.clone()),
            reevaluate_from: None,
            rerun: Some(now),
            callback_url: last.callback_url.clone(),
            // a re-run runs the image: no stored evidence goes with it
            production_profile: None,
            production_upload: None,
            production_upload_digests: Vec::new(),
            production_uploaded_by: None,
            ..last
        };
        match submit_internal(
            svc,
            org_id.clone(),
            None,
            org.tier.priority(),
            org.quota(),
            &spec,
        )
        .await
        {
            Ok((job, true)) => {
                tracing::info!(org = %org_id, image = %digest, job = %job.id, "re-running an image whose last run is too old");
                queued += 1;
            }
            Ok((_, false)) => {}
            Err(e) => {
                tracing::warn!(org = %org_id, image = %digest, error = %e.body.message, "re-run not queued")
            }
        }
    }
    Ok(queued)
}

// ------------------------------------------------------------ decisions

/// A statement row as the API shows it.
pub fn statement_info(row: &StatementRow) -> crate::api_review::StatementInfo {
    use crate::api::rfc3339;
    crate::api_review::StatementInfo {
        id: row.id.clone(),
        image_digest: row.image_digest.clone(),
        repository: row.repository.clone(),
        vulnerability_id: row.vulnerability_id.clone(),
        package_key: row.package_key.clone(),
        package_name: row.package_name.clone(),
        package_version: row.package_version.clone(),
        package_purl: row.package_purl.clone(),
        severity: row.severity.clone(),
        epss: row.epss,
        known_exploited: row.kev,
        fix_state: row.fix_state.clone(),
        auto_status: row.auto_status.clone(),
        auto_justification: row.auto_justification.clone(),
        confidence: row.auto_confidence,
        status: row.status.clone(),
        justification: row.justification.clone(),
        analysis_id: row.job_id.clone(),
        present: row.present,
        in_queue: row.in_queue,
        review_reason: row.review_reason.clone(),
        decision_id: row.decision_id.clone(),
        decision_expires_at: row.decision_expires_at.map(rfc3339),
        offered_decision_id: row.offered_decision_id.clone(),
        assignee: row.assignee.clone(),
        version: row.version,
        first_seen_at: rfc3339(row.first_seen_at),
        updated_at: rfc3339(row.updated_at),
    }
}

pub fn decision_info(d: &DecisionRow) -> crate::api_review::DecisionInfo {
    use crate::api::rfc3339;
    crate::api_review::DecisionInfo {
        id: d.id.clone(),
        statement_id: d.statement_id.clone(),
        action: d.action.clone(),
        status: d.status.clone(),
        justification: d.justification.clone(),
        impact_statement: d.impact_statement.clone(),
        action_statement: d.action_statement.clone(),
        reason: d.reason.clone(),
        author: d.author.clone(),
        key_id: d.key_id.clone(),
        auto_status: d.auto_status.clone(),
        evidence_fingerprint: d.evidence_fingerprint.clone(),
        created_at: rfc3339(d.created_at),
        expires_at: d.expires_at.map(rfc3339),
        superseded_at: d.superseded_at.map(rfc3339),
    }
}

pub(crate) fn vex_version_info(v: &VexVersionRow) -> crate::api_review::VexVersionInfo {
    crate::api_review::VexVersionInfo {
        image_digest: v.image_digest.clone(),
        version: v.version,
        cause: v.cause.clone(),
        job_id: v.job_id.clone(),
        author: v.author.clone(),
        created_at: crate::api::rfc3339(v.created_at),
        document_digest: v.document_digest.clone(),
        envelope_digest: v.envelope_digest.clone(),
        attestation: v
            .attestation
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok()),
    }
}

/// What a checked decision records about `row`, and the statement's
/// effective verdict after it. Needs the offered decision for
/// `accept_offer`.
async fn plan_decision(
    svc: &Service,
    caller: &vexxy_store::Caller,
    row: &StatementRow,
    input: &vexxy_review::DecisionInput,
    now: i64,
) -> Result<(NewDecision, Effect), ApiError> {
    use vexxy_review::DecisionAction as A;
    let record = StatementRecord::from_json(&row.record)
        .map_err(|e| ApiError::internal(format!("statement {}: {e}", row.id)))?;
    let auto = &record.verdict;
    let expires_at = input
        .expires_in_days
        .map(|d| now + i64::from(d) * 86_400_000);
    let decision = |action: &str,
                    status: Status,
                    justification: Option<Justification>,
                    impact: Option<&str>,
                    act: Option<&str>| NewDecision {
        action: action.to_owned(),
        status: Some(status.as_str().to_owned()),
        justification: justification.map(|j| j.as_str().to_owned()),
        impact_statement: impact.map(str::to_owned),
        action_statement: act.map(str::to_owned),
        reason: input.reason.clone(),
        author: caller.who().to_owned(),
        key_id: caller.key_id.clone(),
        expires_at,
    };
    let effect = |decided: bool, status: Status, justification: Option<Justification>| Effect {
        decision: decided,
        status: status.as_str().to_owned(),
        justification: justification.map(|j| j.as_str().to_owned()),
    };
    Ok(match input.action {
        A::Approve => (
            decision(
                "approve",
                auto.status(),
                auto.justification(),
                auto.impact_statement(),
                auto.action_statement(),
            ),
            effect(true, auto.status(), auto.justification()),
        ),
        A::Override => {
            let v = input.verdict.as_ref().ok_or_else(|| {
                ApiError::unprocessable("status: an override needs the new status")
            })?;
            (
                decision(
                    "override",
                    v.status(),
                    v.justification(),
                    v.impact_statement(),
                    v.action_statement(),
                ),
                effect(true, v.status(), v.justification()),
            )
        }
        A::Revert => {
            if row.decision_id.is_none() {
                return Err(ApiError::unprocessable(format!(
                    "action: statement {} has no decision to revert",
                    row.id
                )));
            }
            (
                NewDecision {
                    action: "revert".to_owned(),
                    status: None,
                    justification: None,
                    impact_statement: None,
                    action_statement: None,
                    reason: input.reason.clone(),
                    author: caller.who().to_owned(),
                    key_id: caller.key_id.clone(),
                    expires_at: None,
                },
                effect(false, auto.status(), auto.justification()),
            )
        }
        A::AcceptOffer => {
            let offered = match &row.offered_decision_id {
                Some(id) => svc.store.decision(&caller.org.id, id).await?,
                None => None,
            };
            // an offer stands only while its decision is in force and the
            // evidence here is still the evidence it was made on
            let offered = offered.filter(|d| {
                d.superseded_at.is_none()
                    && d.action != "revert"
                    && d.expires_at.is_none_or(|t| t > now)
                    && d.evidence_fingerprint == row.evidence_fingerprint
            });
            let Some(offered) = offered else {
                return Err(ApiError::unprocessable(format!(
                    "action: statement {} has no offered decision in force",
                    row.id
                )));
            };
            let verdict = human_verdict(&record, &offered)
                .map_err(ApiError::internal)?
                .ok_or_else(|| {
                    ApiError::unprocessable("action: the offered decision is a revert")
                })?;
            (
                decision(
                    "accept_offer",
                    verdict.status(),
                    verdict.justification(),
                    verdict.impact_statement(),
                    verdict.action_statement(),
                ),
                effect(true, verdict.status(), verdict.justification()),
            )
        }
    })
}

/// Records a decision about one statement and re-issues its image's VEX.
pub async fn decide(
    svc: &Arc<Service>,
    caller: &vexxy_store::Caller,
    statement_id: &str,
    raw: vexxy_review::RawDecision,
) -> Result<crate::api_review::DecisionResponse, ApiError> {
    let input = vexxy_review::DecisionInput::try_from(raw)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let now = vexxy_store::now_ms();
    let org = &caller.org.id;
    let row = svc
        .store
        .statement(org, statement_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("statement {statement_id}")))?;
    let (new, effect) = plan_decision(svc, caller, &row, &input, now).await?;
    // the decision was planned on the row as read: it is recorded only if
    // the row is still that version (the caller's, else the one read)
    let expected = input.expected_version.or(Some(row.version));
    let (row, decision) = svc
        .store
        .decide(org, statement_id, expected, &new, &effect, now)
        .await?;
    Ok(crate::api_review::DecisionResponse {
        statement: statement_info(&row),
        decision: decision_info(&decision),
        vex: reissue_after_decision(svc, org, &row.image_digest, caller.who()).await,
    })
}

/// The image's VEX re-issued after a committed decision. The decision
/// stands whatever happens here: a failure is logged (the next decision
/// or analysis issues again) and the answer says no version was issued.
async fn reissue_after_decision(
    svc: &Arc<Service>,
    org_id: &str,
    digest: &str,
    who: &str,
) -> Option<crate::api_review::VexVersionInfo> {
    match reissue(svc, org_id, digest, Cause::Decision, None, who).await {
        Ok(v) => v.as_ref().map(vex_version_info),
        Err(e) => {
            tracing::error!(image = digest, error = %e, "re-issuing the image's VEX after a decision failed");
            None
        }
    }
}

/// Most statements one bulk decision may touch.
pub const MAX_BULK: i64 = 1000;

/// One decision on every statement a filter selects, all or nothing.
pub async fn decide_bulk(
    svc: &Arc<Service>,
    caller: &vexxy_store::Caller,
    req: crate::api_review::BulkDecisionRequest,
) -> Result<crate::api_review::BulkDecisionResponse, ApiError> {
    let raw = vexxy_review::RawDecision {
        action: Some(req.action),
        status: req.status,
        justification: req.justification,
        impact_statement: req.impact_statement,
        action_statement: req.action_statement,
        reason: req.reason,
        expires_in_days: req.expires_in_days,
        expected_version: None,
    };
    let input = bulk_input(raw)?;
    let now = vexxy_store::now_ms();
    let org = &caller.org.id;
    let mut filter = statement_filter(&req.filter, false)?;
    filter.limit = Some(MAX_BULK);
    filter.offset = Some(0);
    let (rows, total) = svc.store.statements(org, &filter, now).await?;
    if total > MAX_BULK {
        return Err(ApiError::unprocessable(format!(
            "filter: selects {total} statements; a bulk decision takes at most {MAX_BULK}"
        )));
    }
    decide_rows(svc, caller, &rows, &input, now).await
}

/// One decision on the statements named (each at the version the caller
/// saw, when given), all or nothing: the web UI's selection.
pub async fn decide_selected(
    svc: &Arc<Service>,
    caller: &vexxy_store::Caller,
    selected: &[(String, Option<i64>)],
    raw: vexxy_review::RawDecision,
) -> Result<crate::api_review::BulkDecisionResponse, ApiError> {
    let input = bulk_input(raw)?;
    if selected.is_empty() {
        return Err(ApiError::unprocessable(
            "ids: select at least one statement",
        ));
    }
    if selected.len() > MAX_BULK as usize {
        return Err(ApiError::unprocessable(format!(
            "ids: {} statements selected; a bulk decision takes at most {MAX_BULK}",
            selected.len()
        )));
    }
    let now = vexxy_store::now_ms();
    let org = &caller.org.id;
    let mut rows: Vec<StatementRow> = Vec::with_capacity(selected.len());
    for (id, seen) in selected {
        if rows.iter().any(|r| &r.id == id) {
            continue; // selected twice: decided once
        }
        let row = svc
            .store
            .statement(org, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("statement {id}")))?;
        if seen.is_some_and(|v| v != row.version) {
            return Err(ApiError::conflict(
                "version_conflict",
                format!("statement {id} changed since it was shown; nothing was recorded"),
            ));
        }
        rows.push(row);
    }
    decide_rows(svc, caller, &rows, &input, now).await
}

fn bulk_input(raw: vexxy_review::RawDecision) -> Result<vexxy_review::DecisionInput, ApiError> {
    let input = vexxy_review::DecisionInput::try_from(raw)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if input.action == vexxy_review::DecisionAction::AcceptOffer {
        return Err(ApiError::unprocessable(
            "action: accept_offer is decided one statement at a time",
        ));
    }
    Ok(input)
}

/// Records one decision on each of `rows` (at the version read), all or
/// nothing, then re-issues the VEX of every image touched.
async fn decide_rows(
    svc: &Arc<Service>,
    caller: &vexxy_store::Caller,
    rows: &[StatementRow],
    input: &vexxy_review::DecisionInput,
    now: i64,
) -> Result<crate::api_review::BulkDecisionResponse, ApiError> {
    let org = &caller.org.id;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        if input.action == vexxy_review::DecisionAction::Revert && row.decision_id.is_none() {
            continue;
        }
        let (new, effect) = plan_decision(svc, caller, row, input, now).await?;
        items.push((row.id.clone(), Some(row.version), new, effect));
    }
    svc.store.decide_many(org, &items, now).await?;
    // the images of the statements decided (a revert skips undecided ones)
    let decided: std::collections::HashSet<&str> =
        items.iter().map(|(id, ..)| id.as_str()).collect();
    let mut images: Vec<&str> = rows
        .iter()
        .filter(|r| decided.contains(r.id.as_str()))
        .map(|r| r.image_digest.as_str())
        .collect();
    images.sort_unstable();
    images.dedup();
    let mut vex = Vec::new();
    for image in images {
        vex.extend(reissue_after_decision(svc, org, image, caller.who()).await);
    }
    Ok(crate::api_review::BulkDecisionResponse {
        decided: items.len(),
        statement_ids: items.into_iter().map(|(id, ..)| id).collect(),
        vex,
    })
}

/// A query's filter as the store takes it; `queue` selects the review queue.
pub fn statement_filter(
    q: &crate::api_review::StatementQuery,
    queue: bool,
) -> Result<StatementFilter, ApiError> {
    use vexxy_store::review::StatementSort;
    let sort = match q.sort.as_deref() {
        None if queue => StatementSort::Risk,
        None | Some("age") => StatementSort::Age,
        Some("risk") => StatementSort::Risk,
        Some("vulnerability") => StatementSort::Vulnerability,
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "sort: {other:?} is not risk, age or vulnerability"
            )))
        }
    };
    if let Some(s) = &q.status {
        Status::from_openvex(s).ok_or_else(|| {
            ApiError::unprocessable(format!("status: {s:?} is not an OpenVEX status"))
        })?;
    }
    if let Some(s) = &q.severity {
        if vexxy_model::Severity::from_word(s) == vexxy_model::Severity::Unknown && s != "unknown" {
            return Err(ApiError::unprocessable(format!(
                "severity: {s:?} is not a severity"
            )));
        }
    }
    if let Some(r) = &q.reason {
        r.parse::<vexxy_review::ReviewReason>().map_err(|_| {
            ApiError::unprocessable(format!("reason: {r:?} is not a review reason"))
        })?;
    }
    for (field, v) in [
        ("min_confidence", q.min_confidence),
        ("max_confidence", q.max_confidence),
    ] {
        if v.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
            return Err(ApiError::unprocessable(format!(
                "{field}: must be within 0..=1"
            )));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::unprocessable("limit: must be within 1..=1000"));
    }
    if q.offset.is_some_and(|o| o < 0) {
        return Err(ApiError::unprocessable("offset: must not be negative"));
    }
    Ok(StatementFilter {
        repository: q.repository.clone(),
        image_digest: q.image.clone(),
        vulnerability: q.vulnerability.clone(),
        package: q.package.clone(),
        status: q.status.clone(),
        // as accepted above: `moderate` is stored as `medium`, `important` as `high`
        severity: q
            .severity
            .as_deref()
            .map(|s| vexxy_model::Severity::from_word(s).as_str().to_owned()),
        min_confidence: q.min_confidence,
        max_confidence: q.max_confidence,
        review_reason: q.reason.clone(),
        assignee: q.assignee.clone(),
        queue_only: queue,
        include_absent: q.include_absent,
        sort,
        limit: Some(limit),
        offset: q.offset,
    })
}

/// Replaces the organisation's review rules and re-applies them to every
/// stored statement (what needs a person may change).
pub(crate) async fn set_settings(
    svc: &Service,
    caller: &vexxy_store::Caller,
    s: &crate::api_review::ReviewSettings,
) -> Result<(), ApiError> {
    if !(0.0..=1.0).contains(&s.review_below) || !s.review_below.is_finite() {
        return Err(ApiError::unprocessable(
            "review_below: must be within 0..=1",
        ));
    }
    if s.rerun_after_days.is_some_and(|d| d == 0 || d > 3650) {
        return Err(ApiError::unprocessable(
            "rerun_after_days: must be within 1..=3650",
        ));
    }
    let row = ReviewSettingsRow {
        review_below: s.review_below,
        four_eyes: s.four_eyes,
        rerun_after_ms: s.rerun_after_days.map(|d| i64::from(d) * 86_400_000),
    };
    // stored and re-applied to every statement in one transaction
    svc.store
        .set_review_settings_as(&caller.org.id, &row, Some(&caller.key_id))
        .await?;
    Ok(())
}
