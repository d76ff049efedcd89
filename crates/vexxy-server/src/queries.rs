//! What the API's read routes and the web pages both show, as typed
//! values: one query per view, scoped to the caller's organisation
//! (another organisation's ids are "not found"). The JSON routes
//! serialise these; `vexxy-web` renders them as HTML. Nothing here knows
//! HTTP beyond [`ApiError`]'s status.

use crate::{
    api::{rfc3339, JobSpec, JobStatus, SubmitLimits, SubmitRequest},
    api_review::{
        ComplianceRow, Dashboard, ImageInfo, ImageList, ImageQuery, StatementDetail, StatementList,
        StatementQuery, VexHistory, WeekInfo,
    },
    error::ApiError,
    review, tenant, Service,
};
use vexxy_store::{
    jobs::{NewJob, Submitted},
    review::{ImageRow, StatementRow},
    tenants::month_window,
    Caller, JobState,
};

/// An image row as the API shows it.
pub fn image_info(i: &ImageRow) -> ImageInfo {
    ImageInfo {
        digest: i.digest.clone(),
        repository: i.repository.clone(),
        reference: i.reference.clone(),
        first_seen_at: rfc3339(i.first_seen_at),
        last_analysed_at: rfc3339(i.last_analysed_at),
        last_analysis_id: i.last_analysis_job.clone(),
        last_run_id: i.last_run_job.clone(),
        last_run_at: i.last_run_at.map(rfc3339),
        vex_version: i.vex_version,
        findings: i.findings,
        not_affected: i.not_affected,
        affected: i.affected,
        under_investigation: i.under_investigation,
        unreviewed: i.unreviewed,
    }
}

/// A verdict's evidence as the API shows it: provider, source, what was
/// (not) observed, about what, and the further facts.
pub fn evidence_json(evidence: &[vexxy_model::Evidence]) -> serde_json::Value {
    serde_json::Value::Array(
        evidence
            .iter()
            .map(|e| {
                serde_json::json!({
                    "provider": e.provider,
                    "source": e.source.to_string(),
                    "observation": e.observation,
                    "subject": e.subject,
                    "facts": e.facts.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// An image digest from a path: `sha256:<64 lowercase hex>`, else 404 (no
/// such image can exist).
pub fn digest_param(d: &str) -> Result<String, ApiError> {
    let hex = d.strip_prefix("sha256:").unwrap_or("");
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        Ok(d.to_owned())
    } else {
        Err(ApiError::not_found(format!("image {d}")))
    }
}

/// The statement rows a query selects (the queue when `queue`), with the
/// total and the page asked for.
pub async fn statement_rows(
    svc: &Service,
    org: &str,
    q: &StatementQuery,
    queue: bool,
) -> Result<(Vec<StatementRow>, i64, i64, i64), ApiError> {
    let filter = review::statement_filter(q, queue)?;
    let (rows, total) = svc
        .store
        .statements(org, &filter, vexxy_store::now_ms())
        .await?;
    Ok((
        rows,
        total,
        filter.limit.unwrap_or(100),
        filter.offset.unwrap_or(0),
    ))
}

/// The statements a query selects, as the API lists them.
pub async fn statements(
    svc: &Service,
    org: &str,
    q: &StatementQuery,
    queue: bool,
) -> Result<StatementList, ApiError> {
    let (rows, total, limit, offset) = statement_rows(svc, org, q, queue).await?;
    Ok(StatementList {
        statements: rows.iter().map(review::statement_info).collect(),
        total,
        limit,
        offset,
    })
}

/// One statement with what it rests on and every decision about it.
pub async fn statement_detail(
    svc: &Service,
    org: &str,
    id: &str,
) -> Result<StatementDetail, ApiError> {
    statement_with_record(svc, org, id).await.map(|(d, _)| d)
}

/// [`statement_detail`], with the stored record it was read from (for a
/// caller that shows the evidence as typed values, not as JSON).
pub async fn statement_with_record(
    svc: &Service,
    org: &str,
    id: &str,
) -> Result<(StatementDetail, vexxy_review::StatementRecord), ApiError> {
    let row = svc
        .store
        .statement(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("statement {id}")))?;
    let record = vexxy_review::StatementRecord::from_json(&row.record)
        .map_err(|e| ApiError::internal(format!("statement {id}: {e}")))?;
    let decisions = svc.store.decisions(org, id).await?;
    let offered = match &row.offered_decision_id {
        Some(d) => svc.store.decision(org, d).await?,
        None => None,
    };
    let detail = StatementDetail {
        statement: review::statement_info(&row),
        aliases: record.aliases.clone(),
        description: record.description.clone(),
        fixed_versions: record.fixed_versions.clone(),
        notes: record.verdict.notes.clone(),
        evidence: evidence_json(&record.verdict.evidence),
        decisions: decisions.iter().map(review::decision_info).collect(),
        offered_decision: offered.as_ref().map(review::decision_info),
    };
    Ok((detail, record))
}

/// The organisation's images a query selects.
pub async fn images(svc: &Service, org: &str, q: &ImageQuery) -> Result<ImageList, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::unprocessable("limit: must be within 1..=1000"));
    }
    let offset = q.offset.unwrap_or(0).max(0);
    let (rows, total) = svc
        .store
        .images(
            org,
            q.repository.as_deref(),
            q.search.as_deref(),
            limit,
            offset,
            vexxy_store::now_ms(),
        )
        .await?;
    Ok(ImageList {
        images: rows.iter().map(image_info).collect(),
        total,
        limit,
        offset,
    })
}

/// One analysed image of the organisation's.
pub async fn image(svc: &Service, org: &str, digest: &str) -> Result<ImageRow, ApiError> {
    let digest = digest_param(digest)?;
    svc.store
        .image(org, &digest, vexxy_store::now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("image {digest}")))
}

/// Every numbered VEX version of an image, newest first as stored.
pub async fn vex_history(svc: &Service, org: &str, digest: &str) -> Result<VexHistory, ApiError> {
    let row = image(svc, org, digest).await?;
    let versions = svc.store.vex_versions(org, &row.digest).await?;
    Ok(VexHistory {
        image_digest: row.digest,
        versions: versions.iter().map(review::vex_version_info).collect(),
    })
}

/// An image's VEX document (or its DSSE envelope): the numbered
/// `version`, else the current one while the image's latest analysis has
/// findings it applies to. Returns the version and the bytes.
pub async fn vex_blob(
    svc: &Service,
    org: &str,
    digest: &str,
    version: Option<i64>,
    envelope: bool,
) -> Result<(i64, Vec<u8>), ApiError> {
    let digest = digest_param(digest)?;
    let row = match version {
        Some(v) => svc.store.vex_version(org, &digest, v).await?,
        None => {
            let image = image(svc, org, &digest).await?;
            if image.findings == 0 {
                return Err(ApiError::not_found(format!(
                    "a current VEX of image {digest} (its latest analysis has no findings)"
                )));
            }
            svc.store
                .vex_version(org, &digest, image.vex_version)
                .await?
        }
    };
    let row = row.ok_or_else(|| match version {
        Some(v) => ApiError::not_found(format!("version {v} of the VEX of image {digest}")),
        None => ApiError::not_found(format!("a VEX of image {digest}")),
    })?;
    let blob = if envelope {
        row.envelope_digest.clone().ok_or_else(|| {
            ApiError::not_found(format!(
                "a signed envelope of version {} of the VEX of image {digest} (the organisation had no signing key)",
                row.version
            ))
        })?
    } else {
        row.document_digest.clone()
    };
    let bytes = svc.evidence.get(&blob).await?.ok_or_else(|| {
        ApiError::internal(format!("evidence blob {blob} of image {digest} is missing"))
    })?;
    Ok((row.version, bytes))
}

/// The organisation's dashboard.
pub async fn dashboard(svc: &Service, org: &str) -> Result<Dashboard, ApiError> {
    let now = vexxy_store::now_ms();
    let d = svc.store.dashboard(org, now).await?;
    let ratio = |a: i64, b: i64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    Ok(Dashboard {
        images_seen: d.images_seen,
        images_analysed: d.images_analysed,
        images_with_vex: d.images_with_vex,
        vex_coverage: ratio(d.images_with_vex, d.images_seen),
        findings: d.findings,
        by_status: d.by_status.into_iter().collect(),
        noise_reduction: ratio(d.not_affected, d.findings),
        backlog: d.backlog,
        backlog_oldest_age_secs: d.oldest_backlog_at.map(|t| (now - t).max(0) / 1000),
        decisions: d.decisions,
        mean_time_to_decision_secs: d.mean_time_to_decision_ms.map(|ms| ms as f64 / 1000.0),
        weekly: d
            .weekly
            .iter()
            .map(|w| WeekInfo {
                week_start: rfc3339(w.week_start),
                analyses: w.analyses,
                new_findings: w.new_findings,
                decisions: w.decisions,
            })
            .collect(),
    })
}

/// Per repository (its most recently analysed image): the counts an
/// auditor asks for.
pub async fn compliance(svc: &Service, org: &str) -> Result<Vec<ComplianceRow>, ApiError> {
    Ok(svc
        .store
        .compliance(org, vexxy_store::now_ms())
        .await?
        .into_iter()
        .map(|r| ComplianceRow {
            repository: r.repository,
            image_digest: r.image_digest,
            images: r.images,
            total: r.total,
            not_affected: r.not_affected,
            needs_fix: r.needs_fix,
            under_investigation: r.under_investigation,
            unreviewed: r.unreviewed,
        })
        .collect())
}

/// What changed from image `a`'s current VEX to image `b`'s.
pub async fn compare(
    svc: &Service,
    org: &str,
    a: &str,
    b: &str,
) -> Result<vexxy_report::VerdictDiff, ApiError> {
    compare_counting(svc, org, a, b).await.map(|(diff, _)| diff)
}

/// [`compare`], with how many findings keep their verdict.
pub async fn compare_counting(
    svc: &Service,
    org: &str,
    a: &str,
    b: &str,
) -> Result<(vexxy_report::VerdictDiff, usize), ApiError> {
    let (_, old) = vex_blob(svc, org, a, None, false).await?;
    let (_, new) = vex_blob(svc, org, b, None, false).await?;
    vexxy_review::compare_counting(&old, &new)
        .map_err(|e| ApiError::internal(format!("comparing {a} with {b}: {e}")))
}

/// A job of the caller's organisation.
pub async fn job(svc: &Service, caller: &Caller, id: &str) -> Result<vexxy_store::Job, ApiError> {
    svc.store
        .job(Some(&caller.org.id), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))
}

/// A job's status as the API shows it.
pub async fn job_status(svc: &Service, caller: &Caller, id: &str) -> Result<JobStatus, ApiError> {
    Ok(JobStatus::from(&job(svc, caller, id).await?))
}

/// A complete job of the caller's with its artifacts (409 while not
/// complete, 410 once retention removed its evidence).
pub async fn completed(
    svc: &Service,
    caller: &Caller,
    id: &str,
) -> Result<(vexxy_store::Job, Vec<vexxy_store::Artifact>), ApiError> {
    let job = job(svc, caller, id).await?;
    if job.state != JobState::Complete {
        return Err(ApiError::not_complete(id, job.state.as_str()));
    }
    if job.expired_at.is_some() {
        return Err(ApiError::gone(format!(
            "the evidence of job {id} passed its retention period"
        )));
    }
    let artifacts = svc.store.artifacts(id).await?;
    Ok((job, artifacts))
}

/// An artifact's bytes from the evidence store (checked against its digest).
pub async fn artifact_bytes(
    svc: &Service,
    id: &str,
    a: &vexxy_store::Artifact,
) -> Result<Vec<u8>, ApiError> {
    svc.evidence.get(&a.digest).await?.ok_or_else(|| {
        ApiError::internal(format!("evidence blob {} of job {id} is missing", a.digest))
    })
}

/// One artifact of a complete job, its fetch audited: the stored row and
/// its bytes.
pub async fn artifact(
    svc: &Service,
    caller: &Caller,
    id: &str,
    name: &str,
) -> Result<(vexxy_store::Artifact, Vec<u8>), ApiError> {
    let (_, artifacts) = completed(svc, caller, id).await?;
    let a = artifacts
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found(format!("artifact {name} of job {id}")))?;
    let bytes = artifact_bytes(svc, id, &a).await?;
    svc.store
        .audit(
            Some(&caller.org.id),
            Some(&caller.key_id),
            "fetch_artifact",
            Some(id),
            Some(name),
        )
        .await?;
    Ok((a, bytes))
}

/// The caller's quota, checked before a submission's body is read: a
/// spent quota costs a count, not a parse (the row-locked check at insert
/// stays the rule). Also refuses work while storage is below its reserve.
pub async fn admit_submission(svc: &Service, caller: &Caller) -> Result<(), ApiError> {
    let window = month_window(vexxy_store::now_ms());
    let quota = caller.org.quota();
    let used = svc.store.usage(&caller.org.id, window.0, window.1).await?;
    if used >= quota {
        return Err(ApiError::quota_exceeded(used, quota));
    }
    crate::health::admit(svc)
}

/// A submission checked: the spec, its report or SBOM parsed once (a bad
/// one is 422 naming the field, not a failed job).
pub fn check_submission(raw: SubmitRequest, limits: &SubmitLimits) -> Result<JobSpec, ApiError> {
    let spec = JobSpec::try_from((raw, limits)).map_err(ApiError::unprocessable)?;
    crate::job::findings(&spec).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(spec)
}

/// A checked submission queued as a job of the caller's organisation:
/// registry policies, signing and command rules applied; an identical
/// earlier request returns its job (`true` when it was created now).
pub async fn submit(
    svc: &Service,
    caller: &Caller,
    spec: &JobSpec,
) -> Result<(vexxy_store::Job, bool), ApiError> {
    // a registry the egress policy refuses by name alone (no DNS here) is
    // a 422, not a job; names are checked, resolved, when the pull starts
    crate::job::check_registry(&spec.image_ref, &svc.config.analysis)
        .map_err(|e| ApiError::unprocessable(format!("image_ref: {e}")))?;
    // and the organisation's own list: a reference passes both
    let allow = svc.store.registry_allowlist(&caller.org.id).await?;
    tenant::check_org_allowlist(
        &spec.image_ref,
        &allow,
        &svc.config.analysis.insecure_registries,
    )
    .map_err(|e| ApiError::unprocessable(format!("image_ref: {e}")))?;
    if spec.sign {
        crate::routes::check_can_sign(svc, caller, spec).await?;
    }
    // a run of another command is evidence about that command only
    // (docs/confidence.md); an organisation may be held to the image's own
    if !spec.command.is_empty() && !caller.org.allow_command_override {
        return Err(ApiError::forbidden(
            "command_override_forbidden",
            format!(
                "config.command: organisation {} may not replace the image's command",
                caller.org.name
            ),
        ));
    }
    let window = month_window(vexxy_store::now_ms());
    let quota = caller.org.quota();
    let new = NewJob {
        org_id: caller.org.id.clone(),
        dedupe_key: spec.dedupe_key(),
        image_ref: spec.image_ref.clone(),
        image_digest: spec.image_digest.clone(),
        request: serde_json::to_string(spec).map_err(|e| ApiError::internal(e.to_string()))?,
        callback_url: spec.callback_url.clone(),
        priority: caller.org.tier.priority(),
        max_attempts: svc.config.queue.max_attempts,
        timeout_ms: svc.config.queue.job_timeout.as_millis() as i64,
        key_id: Some(caller.key_id.clone()),
    };
    // the audit log entry is committed with the job
    match svc.store.submit(new, quota, window).await? {
        Submitted::Created(job) => {
            svc.wake_workers();
            Ok((job, true))
        }
        Submitted::Existing(job) => Ok((job, false)),
        Submitted::QuotaExceeded { used, limit } => Err(ApiError::quota_exceeded(used, limit)),
    }
}
