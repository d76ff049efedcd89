//! The human loop's HTTP surface: statements, the review queue,
//! decisions, images and their VEX history, new reports, the dashboard,
//! compliance, comparisons and the organisation's audit log. Every route
//! is scoped to the caller's organisation: another's ids are 404.

use std::sync::Arc;

use axum::{
    extract::{rejection::QueryRejection, FromRequestParts, Path, Query, Request, State},
    http::{header, request::Parts, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::de::DeserializeOwned;

use crate::{
    api::{rfc3339, Document},
    api_review::{
        AssignRequest, AuditEntryInfo, AuditList, AuditQuery, BulkDecisionRequest,
        BulkDecisionResponse, CompareQuery, Compliance, ComplianceRow, Dashboard, DecisionRequest,
        DecisionResponse, FormatQuery, ImageInfo, ImageList, ImageQuery, NodeAgentImages,
        ReevaluateResponse, ReviewSettings, StatementDetail, StatementInfo, StatementList,
        StatementQuery, VexHistory,
    },
    error::{ApiError, ErrorBody},
    review,
    routes::{ApiJson, Authed, Premium},
    Service,
};

type AppState = Arc<Service>;

/// A query string whose errors are 422 naming the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(e @ QueryRejection::FailedToDeserializeQueryString(_)) => {
                Err(ApiError::unprocessable(e.body_text()))
            }
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

use crate::queries::{self as q, digest_param};

#[utoipa::path(
    get, path = "/api/v1/statements", tag = "review",
    params(StatementQuery),
    responses(
        (status = 200, body = StatementList),
        (status = 401, body = ErrorBody),
        (status = 422, description = "A parameter is invalid (named)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn list_statements(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(query): ApiQuery<StatementQuery>,
) -> Result<Json<StatementList>, ApiError> {
    Ok(Json(
        q::statements(&svc, &caller.org.id, &query, false).await?,
    ))
}

#[utoipa::path(
    get, path = "/api/v1/review/queue", tag = "review",
    params(StatementQuery),
    responses(
        (status = 200, description = "What needs a person: under_investigation, affected without a fix, not_affected below the confidence threshold, critical/high not_affected under four eyes, expired decisions; risk order by default", body = StatementList),
        (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn review_queue(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(query): ApiQuery<StatementQuery>,
) -> Result<Json<StatementList>, ApiError> {
    Ok(Json(
        q::statements(&svc, &caller.org.id, &query, true).await?,
    ))
}

#[utoipa::path(
    get, path = "/api/v1/statements/{id}", tag = "review",
    params(("id" = String, Path, description = "Statement id")),
    responses(
        (status = 200, body = StatementDetail),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn statement_detail(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<StatementDetail>, ApiError> {
    Ok(Json(q::statement_detail(&svc, &caller.org.id, &id).await?))
}

#[utoipa::path(
    post, path = "/api/v1/statements/{id}/decisions", tag = "review",
    params(("id" = String, Path, description = "Statement id")),
    request_body = DecisionRequest,
    responses(
        (status = 200, description = "Recorded; the image's VEX is re-issued", body = DecisionResponse),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such statement in this organisation", body = ErrorBody),
        (status = 409, description = "version_conflict: the statement changed since expected_version", body = ErrorBody),
        (status = 422, description = "A field is invalid: reason missing, a status/justification combination OpenVEX forbids … (named)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn post_decision(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DecisionRequest>,
) -> Result<Json<DecisionResponse>, ApiError> {
    let raw = vexxy_review::RawDecision {
        action: Some(req.action),
        status: req.status,
        justification: req.justification,
        impact_statement: req.impact_statement,
        action_statement: req.action_statement,
        reason: req.reason,
        expires_in_days: req.expires_in_days,
        expected_version: req.expected_version,
    };
    Ok(Json(review::decide(&svc, &caller, &id, raw).await?))
}

#[utoipa::path(
    post, path = "/api/v1/review/decisions", tag = "review",
    request_body = BulkDecisionRequest,
    responses(
        (status = 200, description = "Every selected statement decided (all or nothing)", body = BulkDecisionResponse),
        (status = 401, body = ErrorBody),
        (status = 409, description = "A selected statement changed meanwhile; nothing was recorded", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn bulk_decisions(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<BulkDecisionRequest>,
) -> Result<Json<BulkDecisionResponse>, ApiError> {
    Ok(Json(review::decide_bulk(&svc, &caller, req).await?))
}

#[utoipa::path(
    put, path = "/api/v1/statements/{id}/assignee", tag = "review",
    params(("id" = String, Path, description = "Statement id")),
    request_body = AssignRequest,
    responses(
        (status = 200, body = StatementInfo),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn set_assignee(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AssignRequest>,
) -> Result<Json<StatementInfo>, ApiError> {
    if let Some(a) = &req.assignee {
        // the store's limit (200 characters, trimmed), checked here so the
        // answer names it without echoing the value
        let name = a.trim();
        if name.is_empty() || name.chars().count() > 200 || a.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(
                "assignee: 1..=200 printable characters, or null",
            ));
        }
    }
    let row = svc
        .store
        .set_assignee_as(
            &caller.org.id,
            &id,
            req.assignee.as_deref().map(str::trim),
            req.expected_version,
            Some(&caller.key_id),
        )
        .await?;
    Ok(Json(review::statement_info(&row)))
}

#[utoipa::path(
    get, path = "/api/v1/review/settings", tag = "review",
    responses((status = 200, body = ReviewSettings), (status = 401, body = ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn get_settings(
    State(svc): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<ReviewSettings>, ApiError> {
    let s = svc.store.review_settings(&caller.org.id).await?;
    Ok(Json(ReviewSettings {
        review_below: s.review_below,
        four_eyes: s.four_eyes,
        rerun_after_days: s
            .rerun_after_ms
            .map(|ms| u32::try_from(ms / 86_400_000).unwrap_or(u32::MAX)),
    }))
}

#[utoipa::path(
    put, path = "/api/v1/review/settings", tag = "review",
    request_body = ReviewSettings,
    responses(
        (status = 200, description = "Stored; every statement's need for review re-applied", body = ReviewSettings),
        (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn put_settings(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<ReviewSettings>,
) -> Result<Json<ReviewSettings>, ApiError> {
    review::set_settings(&svc, &caller, &req).await?;
    Ok(Json(req))
}

#[utoipa::path(
    get, path = "/api/v1/images", tag = "images",
    params(ImageQuery),
    responses((status = 200, body = ImageList), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_images(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(query): ApiQuery<ImageQuery>,
) -> Result<Json<ImageList>, ApiError> {
    Ok(Json(q::images(&svc, &caller.org.id, &query).await?))
}

#[utoipa::path(
    get, path = "/api/v1/images/{digest}", tag = "images",
    params(("digest" = String, Path, description = "Image manifest digest (sha256:…)")),
    responses((status = 200, body = ImageInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn image_detail(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path(digest): Path<String>,
) -> Result<Json<ImageInfo>, ApiError> {
    let row = q::image(&svc, &caller.org.id, &digest).await?;
    Ok(Json(q::image_info(&row)))
}

fn json_bytes(version: i64, media: &'static str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, media.to_owned()),
            (
                header::HeaderName::from_static("x-vex-version"),
                version.to_string(),
            ),
        ],
        bytes,
    )
        .into_response()
}

#[utoipa::path(
    get, path = "/api/v1/images/{digest}/vex", tag = "images",
    params(("digest" = String, Path, description = "Image manifest digest")),
    responses(
        (status = 200, description = "The image's current OpenVEX document (header X-Vex-Version)", content_type = "application/json"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn current_vex(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    let digest = digest_param(&digest)?;
    let (v, bytes) = q::vex_blob(&svc, &caller.org.id, &digest, None, false).await?;
    Ok(json_bytes(v, "application/json", bytes))
}

#[utoipa::path(
    get, path = "/api/v1/images/{digest}/vex/history", tag = "images",
    params(("digest" = String, Path, description = "Image manifest digest")),
    responses((status = 200, body = VexHistory), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn vex_history(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path(digest): Path<String>,
) -> Result<Json<VexHistory>, ApiError> {
    Ok(Json(q::vex_history(&svc, &caller.org.id, &digest).await?))
}

#[utoipa::path(
    get, path = "/api/v1/images/{digest}/vex/{version}", tag = "images",
    params(
        ("digest" = String, Path, description = "Image manifest digest"),
        ("version" = i64, Path, description = "Document version"),
    ),
    responses(
        (status = 200, description = "That version's OpenVEX document", content_type = "application/json"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn vex_version(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path((digest, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    numbered(&svc, &caller.org.id, &digest, &version, false).await
}

#[utoipa::path(
    get, path = "/api/v1/images/{digest}/vex/{version}/envelope", tag = "images",
    params(
        ("digest" = String, Path, description = "Image manifest digest"),
        ("version" = i64, Path, description = "Document version"),
    ),
    responses(
        (status = 200, description = "That version's DSSE envelope (in-toto attestation)", content_type = "application/vnd.dsse.envelope.v1+json"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn vex_envelope(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path((digest, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    numbered(&svc, &caller.org.id, &digest, &version, true).await
}

/// One numbered version of an image's VEX: its document, or its envelope.
async fn numbered(
    svc: &Service,
    org: &str,
    digest: &str,
    version: &str,
    envelope: bool,
) -> Result<Response, ApiError> {
    let digest = digest_param(digest)?;
    let v = version
        .parse::<i64>()
        .map_err(|_| ApiError::not_found(format!("version {version:?} of image {digest}")))?;
    let (v, bytes) = q::vex_blob(svc, org, &digest, Some(v), envelope).await?;
    let media = if envelope {
        crate::tenant::ATTESTATION_MEDIA_TYPE
    } else {
        "application/json"
    };
    Ok(json_bytes(v, media, bytes))
}

#[utoipa::path(
    post, path = "/api/v1/images/{digest}/reports", tag = "images",
    params(("digest" = String, Path, description = "An analysed image's manifest digest")),
    request_body(content = Object, description = "A scanner report (Grype, Trivy …) of the image, as the scanner wrote it", content_type = "application/json"),
    responses(
        (status = 202, description = "Queued: decided from the stored execution profile, without running the image", body = ReevaluateResponse),
        (status = 200, description = "The same report is already queued or decided; its job", body = ReevaluateResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such analysed image in this organisation", body = ErrorBody),
        (status = 409, description = "no_profile: the image was never run", body = ErrorBody),
        (status = 410, description = "The stored profile passed its retention period", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "Not a scanner report (the parser names the field)", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn post_report(
    State(svc): State<AppState>,
    Premium(caller): Premium,
    Path(digest): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let digest = digest_param(&digest)?;
    let report = report_body(&svc, req).await?;
    let (job, created) = review::queue_reevaluation(&svc, &caller, &digest, report).await?;
    let code = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        code,
        Json(ReevaluateResponse {
            job_id: job.id,
            image_digest: digest,
            status: job.state.to_string(),
        }),
    )
        .into_response())
}

/// The body of a report upload, read within the submission limits.
async fn report_body(svc: &Service, req: Request) -> Result<Document, ApiError> {
    let bytes = bounded_body(svc, req).await?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("the report is not UTF-8 JSON"))?;
    Document::try_from(text)
        .map_err(|e| ApiError::bad_request(format!("the report is not JSON: {e}")))
}

/// A document upload's bytes (a report, a profile), read within the
/// submission limits: refused with 503 while the disk is full, with 413
/// past the report limit (`--max-report-bytes`, at most
/// `--max-body-bytes`) or a member's limits, and with 503 when too many
/// large bodies are being read.
async fn bounded_body(svc: &Service, req: Request) -> Result<Vec<u8>, ApiError> {
    crate::health::admit(svc)?;
    let content_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let limit = svc
        .config
        .submit
        .scan_report
        .max_bytes
        .min(svc.config.max_body_bytes);
    let crate::body::ReadBody {
        bytes,
        permit: _permit,
    } = crate::body::read(
        req.into_body(),
        content_length,
        limit,
        &svc.config.submit,
        &svc.large_submits,
    )
    .await?;
    Ok(bytes)
}

#[utoipa::path(
    post, path = "/api/v1/images/{digest}/profiles", tag = "images",
    params(("digest" = String, Path, description = "An analysed image's manifest digest")),
    request_body(content = Object, description = "A vexxy execution profile (schema `https://vexxy.dev/schemas/execution-profile/v1`) recorded in production: `run.source` observed (a node agent, `vexxy observe`) or kubescape, `run.image_digest` this image's manifest digest", content_type = "application/json"),
    responses(
        (status = 202, description = "Queued: merged with the image's earlier production profiles and its last run's profile, the image's last report re-decided from it; its VEX is re-issued with production evidence", body = ReevaluateResponse),
        (status = 200, description = "The same profile (by the SHA-256 of its canonical JSON) is already part of the image's production evidence; the job that has it", body = ReevaluateResponse),
        (status = 400, description = "The body is not a JSON object", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such analysed image in this organisation", body = ErrorBody),
        (status = 409, description = "no_profile: the image was never run; no_report: it was analysed without a report or SBOM", body = ErrorBody),
        (status = 410, description = "The stored run passed its retention period", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "Naming the field, never repeating its value: not an execution profile, `run.image_digest` another image's, `run.source` a sandbox run, more than 256 spans, a span's `started_at` not RFC 3339 or (with its `duration_ms`) in the future, a span or `run.duration_ms` longer than 7 days, a `target` longer than 256 characters or not printable", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn post_profile(
    State(svc): State<AppState>,
    Premium(caller): Premium,
    Path(digest): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let digest = digest_param(&digest)?;
    let bytes = bounded_body(&svc, req).await?;
    let (upload, profile) = {
        let digest = digest.clone();
        tokio::task::spawn_blocking(move || {
            let profile = crate::production::check_upload(&bytes, &digest)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request("the profile is not UTF-8 JSON"))?;
            let upload = Document::try_from(text)
                .map_err(|e| ApiError::bad_request(format!("the profile is not JSON: {e}")))?;
            Ok::<_, ApiError>((upload, profile))
        })
        .await
        .map_err(|e| ApiError::internal(format!("reading the profile: {e}")))??
    };
    let (job, created) = crate::production::queue(&svc, &caller, &digest, upload, profile).await?;
    tracing::info!(image = %digest, job = %job.id, created, "production profile received");
    let code = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        code,
        Json(ReevaluateResponse {
            job_id: job.id,
            image_digest: digest,
            status: job.state.to_string(),
        }),
    )
        .into_response())
}

#[utoipa::path(
    get, path = "/api/v1/node-agent/images", tag = "images",
    responses(
        (status = 200, description = "The manifest digests (and references) of the organisation's analysed images that have a stored run: the images a node agent observes running containers of", body = NodeAgentImages),
        (status = 401, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn node_agent_images(
    State(svc): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<NodeAgentImages>, ApiError> {
    Ok(Json(
        crate::production::watched(&svc, &caller.org.id).await?,
    ))
}

#[utoipa::path(
    post, path = "/api/v1/reports", tag = "images",
    request_body(content = Object, description = "A scanner report (Grype, Trivy …) that records the image's digest, as CI produces it", content_type = "application/json"),
    responses(
        (status = 202, description = "A re-decision queued for every analysed image of this organisation whose digest the report records", body = [ReevaluateResponse]),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No analysed image of this organisation has a digest the report records", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "Not a scanner report, or it records no image digest", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn post_report_any(
    State(svc): State<AppState>,
    Premium(caller): Premium,
    req: Request,
) -> Result<Response, ApiError> {
    let report = report_body(&svc, req).await?;
    let parsed = vexxy_ingest::parse(report.json().as_bytes(), std::path::Path::new("report"))
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let vexxy_ingest::Input::Report(parsed) = parsed else {
        return Err(ApiError::unprocessable(
            "report: is an SBOM, not a scanner report",
        ));
    };
    let digests: Vec<String> = parsed
        .subject
        .manifest_digests
        .iter()
        .map(ToString::to_string)
        .collect();
    if digests.is_empty() {
        return Err(ApiError::unprocessable(
            "report: records no image digest; post it to /api/v1/images/{digest}/reports",
        ));
    }
    let now = vexxy_store::now_ms();
    // every image checked before any job is queued: all or none
    let mut planned = Vec::new();
    for digest in digests.iter().take(16) {
        if svc
            .store
            .image(&caller.org.id, digest, now)
            .await?
            .is_none()
        {
            continue;
        }
        let spec = review::reevaluation_spec(&svc, &caller, digest, report.clone()).await?;
        planned.push((digest.clone(), spec));
    }
    if planned.is_empty() {
        return Err(ApiError::not_found(format!(
            "an analysed image of this organisation with one of the {} digest(s) the report records",
            digests.len()
        )));
    }
    let mut queued = Vec::new();
    for (digest, spec) in planned {
        let (job, _) = review::submit_reevaluation(&svc, &caller, &spec).await?;
        queued.push(ReevaluateResponse {
            job_id: job.id,
            image_digest: digest,
            status: job.state.to_string(),
        });
    }
    Ok((StatusCode::ACCEPTED, Json(queued)).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/dashboard", tag = "insights",
    responses((status = 200, body = Dashboard), (status = 401, body = ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn dashboard(
    State(svc): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Dashboard>, ApiError> {
    Ok(Json(q::dashboard(&svc, &caller.org.id).await?))
}

#[utoipa::path(
    get, path = "/api/v1/compliance", tag = "insights",
    params(FormatQuery),
    responses(
        (status = 200, description = "Per repository (its most recently analysed image): total, not_affected, needs_fix, under_investigation, unreviewed; JSON, or CSV with format=csv", body = Compliance),
        (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn compliance(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(format): ApiQuery<FormatQuery>,
) -> Result<Response, ApiError> {
    let rows = q::compliance(&svc, &caller.org.id).await?;
    match format.format.as_deref() {
        None | Some("json") => Ok(Json(Compliance { repositories: rows }).into_response()),
        Some("csv") => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"compliance.csv\"",
                ),
            ],
            compliance_csv(&rows),
        )
            .into_response()),
        Some(other) => Err(ApiError::unprocessable(format!(
            "format: {other:?} is not json or csv"
        ))),
    }
}

/// The compliance rows as CSV (RFC 4180). Repository names come from
/// tenants' images: a cell a spreadsheet would read as a formula
/// (`=`, `+`, `-`, `@`, tab, CR) is prefixed with `'`.
pub fn compliance_csv(rows: &[ComplianceRow]) -> String {
    fn cell(text: &str) -> String {
        let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{text}")
        } else {
            text.to_owned()
        };
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text
        }
    }
    let mut out = String::from(
        "repository,image_digest,images,total,not_affected,needs_fix,under_investigation,unreviewed\r\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\r\n",
            cell(&r.repository),
            cell(&r.image_digest),
            r.images,
            r.total,
            r.not_affected,
            r.needs_fix,
            r.under_investigation,
            r.unreviewed
        ));
    }
    out
}

#[utoipa::path(
    get, path = "/api/v1/compare", tag = "insights",
    params(
        ("a" = String, Query, description = "The old image's digest"),
        ("b" = String, Query, description = "The new image's digest"),
    ),
    responses(
        (status = 200, description = "Findings and verdicts added, removed and changed from A's current VEX to B's (as `vexxy diff --format json`)", content_type = "application/json"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn compare(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(query): ApiQuery<CompareQuery>,
) -> Result<Response, ApiError> {
    let diff = q::compare(&svc, &caller.org.id, &query.a, &query.b).await?;
    Ok(Json(diff).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/audit", tag = "insights",
    params(
        ("limit" = Option<i64>, Query, description = "At most this many (default 100, at most 1000)"),
        ("offset" = Option<i64>, Query, description = "Skip this many, newest first"),
    ),
    responses((status = 200, body = AuditList), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn audit(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::unprocessable("limit: must be within 1..=1000"));
    }
    let (entries, total) = svc
        .store
        .org_audit(&caller.org.id, limit, q.offset.unwrap_or(0).max(0))
        .await?;
    Ok(Json(AuditList {
        total,
        entries: entries
            .into_iter()
            .map(|e| AuditEntryInfo {
                at: rfc3339(e.at),
                key_id: e.key_id,
                action: e.action,
                job_id: e.job_id,
                detail: e
                    .detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok()),
            })
            .collect(),
    }))
}
