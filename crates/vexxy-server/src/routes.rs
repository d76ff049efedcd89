//! The HTTP surface: routes, authentication, the OpenAPI document.

use std::sync::Arc;

use axum::{
    extract::{
        rejection::JsonRejection, FromRequest, FromRequestParts, Path, Query, Request, State,
    },
    http::{header, request::Parts, HeaderMap, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
    Json, Router,
};
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use vexxy_store::{
    jobs::{Cancelled, JobFilter},
    tenants::month_window,
    Caller, JobState,
};

use vexxy_analyze::ArtifactKind;

use crate::{
    api::{
        rfc3339, CancelResponse, JobList, JobSpec, JobStatus, ListQuery, Quota, Results,
        SubmitRequest, SubmitResponse, Summary,
    },
    api::{
        Attestation, GenerateSigningKey, ImportSigningKey, RegistryAllowlist,
        RegistryCredentialInfo, RegistryCredentialList, RegistryCredentialRequest, SigningKeyInfo,
        SigningKeyList,
    },
    body,
    error::{ApiError, ErrorBody},
    metrics::HttpLabel,
    routes_review as rr, tenant, Service,
};

type AppState = Arc<Service>;

/// Every route of the service.
pub fn router(service: Arc<Service>) -> Router {
    app(service, Router::new())
}

/// The service's routes with `extra` beside them (the web UI), under the
/// layers every answer passes: request counting and tracing. Unknown
/// paths are the API's 404.
pub fn app(service: Arc<Service>, extra: Router) -> Router {
    let limit = service.config.max_body_bytes;
    Router::new()
        .route("/api/v1/analysis/submit", post(submit))
        .route("/api/v1/analysis", get(list))
        .route("/api/v1/analysis/{id}/status", get(status))
        .route("/api/v1/analysis/{id}/results", get(results))
        .route("/api/v1/analysis/{id}/artifacts/{name}", get(artifact))
        .route("/api/v1/analysis/{id}", delete(cancel))
        .route("/api/v1/quota", get(quota))
        .route(
            "/api/v1/signing-keys",
            post(generate_signing_key).get(list_signing_keys),
        )
        .route("/api/v1/signing-keys/import", post(import_signing_key))
        .route("/api/v1/signing-keys/{id}", delete(revoke_signing_key))
        .route(
            "/api/v1/registry-credentials",
            get(list_registry_credentials),
        )
        .route(
            "/api/v1/registry-credentials/{registry}",
            put(set_registry_credential).delete(delete_registry_credential),
        )
        .route(
            "/api/v1/registry-allowlist",
            get(get_registry_allowlist).put(set_registry_allowlist),
        )
        .route("/api/v1/statements", get(rr::list_statements))
        .route("/api/v1/statements/{id}", get(rr::statement_detail))
        .route("/api/v1/statements/{id}/decisions", post(rr::post_decision))
        .route("/api/v1/statements/{id}/assignee", put(rr::set_assignee))
        .route("/api/v1/review/queue", get(rr::review_queue))
        .route("/api/v1/review/decisions", post(rr::bulk_decisions))
        .route(
            "/api/v1/review/settings",
            get(rr::get_settings).put(rr::put_settings),
        )
        .route("/api/v1/images", get(rr::list_images))
        .route("/api/v1/images/{digest}", get(rr::image_detail))
        .route("/api/v1/images/{digest}/vex", get(rr::current_vex))
        .route("/api/v1/images/{digest}/vex/history", get(rr::vex_history))
        .route(
            "/api/v1/images/{digest}/vex/{version}",
            get(rr::vex_version),
        )
        .route(
            "/api/v1/images/{digest}/vex/{version}/envelope",
            get(rr::vex_envelope),
        )
        .route("/api/v1/images/{digest}/reports", post(rr::post_report))
        .route("/api/v1/images/{digest}/profiles", post(rr::post_profile))
        .route("/api/v1/node-agent/images", get(rr::node_agent_images))
        .route("/api/v1/reports", post(rr::post_report_any))
        .route("/api/v1/dashboard", get(rr::dashboard))
        .route("/api/v1/compliance", get(rr::compliance))
        .route("/api/v1/compare", get(rr::compare))
        .route("/api/v1/audit", get(rr::audit))
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(Arc::clone(&service))
        .merge(extra)
        .fallback(|| async { ApiError::not_found("route") })
        .layer(middleware::from_fn_with_state(service, count_requests))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

async fn count_requests(State(svc): State<AppState>, req: Request, next: Next) -> Response {
    // known methods only: a label per made-up method would grow the series without bound
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "DELETE" | "PUT" | "PATCH" | "HEAD" | "OPTIONS") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let res = next.run(req).await;
    svc.metrics
        .http_requests
        .get_or_create(&HttpLabel {
            method,
            status: res.status().as_u16(),
        })
        .inc();
    res
}

/// The calling organisation, from `Authorization: Bearer <key>` (or `X-API-Key`).
#[derive(Debug)]
pub struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, svc: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("an API key is required (Authorization: Bearer <key>)")
            })?;
        match svc.store.authenticate(presented).await? {
            Some(caller) => Ok(Self(caller)),
            None => Err(ApiError::unauthorized("the API key is not valid")),
        }
    }
}

/// A caller whose tier may run analyses. Checked before the body is read,
/// so a tier without analysis never gets a large body parsed.
#[derive(Debug)]
pub struct Premium(pub Caller);

impl FromRequestParts<AppState> for Premium {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, svc: &AppState) -> Result<Self, ApiError> {
        let Authed(caller) = Authed::from_request_parts(parts, svc).await?;
        if !caller.org.tier.can_analyze() {
            return Err(ApiError::premium_required());
        }
        Ok(Self(caller))
    }
}

/// JSON bodies whose errors come out in the API's error format, naming
/// the field that failed.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::unprocessable(e.body_text())),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                let mut err = ApiError::bad_request(format!(
                    "request body larger than {} bytes",
                    state.config.max_body_bytes
                ));
                err.status = StatusCode::PAYLOAD_TOO_LARGE;
                err.body.code = "payload_too_large";
                Err(err)
            }
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

#[utoipa::path(
    post, path = "/api/v1/analysis/submit", tag = "analysis",
    request_body = SubmitRequest,
    responses(
        (status = 202, description = "Queued", body = SubmitResponse),
        (status = 200, description = "An identical request exists; its job is returned", body = SubmitResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Premium tier required, or the organisation may not replace the image's command", body = ErrorBody),
        (status = 413, description = "Body, scan_report or sbom too large (bytes or JSON values); the message names the field", body = ErrorBody),
        (status = 422, description = "A field is invalid (also a scan_report or sbom that does not parse)", body = ErrorBody),
        (status = 429, description = "Monthly quota spent (used, limit); checked before the body is read", body = ErrorBody),
        (status = 503, description = "Too many large submissions being read, or the service's storage full or unavailable; retry after Retry-After seconds", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn submit(
    State(svc): State<AppState>,
    Premium(caller): Premium,
    req: Request,
) -> Result<Response, ApiError> {
    // the quota before a byte of the body is read; storage below its
    // reserve takes no new work
    crate::queries::admit_submission(&svc, &caller).await?;
    if !is_json(req.headers()) {
        return Err(ApiError::bad_request(
            "expected a request with `Content-Type: application/json`",
        ));
    }
    let content_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let body::ReadBody {
        bytes,
        permit: _permit,
    } = body::read(
        req.into_body(),
        content_length,
        svc.config.max_body_bytes,
        &svc.config.submit,
        &svc.large_submits,
    )
    .await?;
    let spec = if bytes.len() > svc.config.submit.large_body_bytes {
        let limits = svc.config.submit.clone();
        tokio::task::spawn_blocking(move || decode(&bytes, &limits))
            .await
            .map_err(|e| ApiError::internal(format!("decoding the submission: {e}")))??
    } else {
        decode(&bytes, &svc.config.submit)?
    };
    let estimate = spec.duration_secs.div_ceil(60) + 1;
    let (job, created) = crate::queries::submit(&svc, &caller, &spec).await?;
    let code = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let body = SubmitResponse {
        job_id: job.id.clone(),
        status: job.state.to_string(),
        estimated_duration_minutes: estimate,
        created_at: rfc3339(job.created_at),
        deduplicated: !created,
    };
    Ok((code, Json(body)).into_response())
}

/// `Content-Type: application/json` (or `application/…+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(mime) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
    else {
        return false;
    };
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// A submission body, read within the limits: the checked spec, its
/// report or SBOM parsed once (a bad one is 422 naming the field, not a
/// failed job) and kept as the bytes that were sent.
fn decode(bytes: &[u8], limits: &crate::api::SubmitLimits) -> Result<JobSpec, ApiError> {
    let raw = match Json::<SubmitRequest>::from_bytes(bytes) {
        Ok(Json(raw)) => raw,
        Err(JsonRejection::JsonDataError(e)) => return Err(ApiError::unprocessable(e.body_text())),
        Err(e) => return Err(ApiError::bad_request(e.body_text())),
    };
    crate::queries::check_submission(raw, limits)
}

use crate::queries::{artifact_bytes as blob, completed};

#[utoipa::path(
    get, path = "/api/v1/analysis/{id}/status", tag = "analysis",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, body = JobStatus),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such job in this organisation", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn status(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>, ApiError> {
    Ok(Json(crate::queries::job_status(&svc, &caller, &id).await?))
}

#[utoipa::path(
    get, path = "/api/v1/analysis/{id}/results", tag = "analysis",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, body = Results),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The job is not complete (status says where it is)", body = ErrorBody),
        (status = 410, description = "The evidence passed its retention period", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn results(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Results>, ApiError> {
    let (job, artifacts) = completed(&svc, &caller, &id).await?;
    let mut vex_document = None;
    if let Some(a) = artifacts
        .iter()
        .find(|a| a.name == ArtifactKind::OpenVex.file_name())
    {
        let bytes = blob(&svc, &id, a).await?;
        vex_document = Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::internal(format!("stored VEX of job {id}: {e}")))?,
        );
    }
    let summary: Summary = job
        .summary
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let mut links: std::collections::BTreeMap<String, String> = ArtifactKind::ALL
        .iter()
        .filter(|kind| artifacts.iter().any(|a| a.name == kind.file_name()))
        .map(|kind| {
            (
                kind.link_name().to_owned(),
                format!("/api/v1/analysis/{id}/artifacts/{}", kind.file_name()),
            )
        })
        .collect();
    if artifacts.iter().any(|a| a.name == tenant::ATTESTATION_FILE) {
        links.insert(
            tenant::ATTESTATION_LINK.to_owned(),
            format!(
                "/api/v1/analysis/{id}/artifacts/{}",
                tenant::ATTESTATION_FILE
            ),
        );
    }
    let attestation: Option<Attestation> = job
        .attestation
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok());
    svc.store
        .audit(
            Some(&caller.org.id),
            Some(&caller.key_id),
            "fetch_results",
            Some(&id),
            None,
        )
        .await?;
    Ok(Json(Results {
        job_id: job.id,
        status: job.state.to_string(),
        image_ref: job.image_ref,
        image_digest: job.image_digest,
        summary,
        vex_document,
        links,
        attestation,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/analysis/{id}/artifacts/{name}", tag = "analysis",
    params(("id" = String, Path, description = "Job id"), ("name" = String, Path, description = "File name, e.g. evidence.json")),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 410, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn artifact(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (a, bytes) = crate::queries::artifact(&svc, &caller, &id, &name).await?;
    Ok((
        [
            (header::CONTENT_TYPE, a.media_type.clone()),
            (header::ETAG, format!("\"{}\"", a.digest)),
        ],
        bytes,
    )
        .into_response())
}

#[utoipa::path(
    delete, path = "/api/v1/analysis/{id}", tag = "analysis",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Cancelled; a running sandbox is torn down", body = CancelResponse),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already finished", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn cancel(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<CancelResponse>, ApiError> {
    // the audit log entry is committed with the cancellation
    match svc
        .store
        .cancel(&caller.org.id, Some(&caller.key_id), &id)
        .await?
    {
        Cancelled::Cancelled(job) => {
            svc.cancel_local(&job.id);
            Ok(Json(CancelResponse {
                job_id: job.id,
                status: JobState::Cancelled.to_string(),
            }))
        }
        Cancelled::AlreadyFinished(state) => Err(ApiError::already_finished(&id, state.as_str())),
    }
}

#[utoipa::path(
    get, path = "/api/v1/analysis", tag = "analysis",
    params(ListQuery),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = []))
)]
async fn list(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let state = q
        .status
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("status: {e}")))?;
    let per_page = q.per_page.unwrap_or(50);
    if !(1..=500).contains(&per_page) {
        return Err(ApiError::bad_request("per_page: 1..=500"));
    }
    if q.image
        .as_deref()
        .is_some_and(|i| i.chars().any(char::is_control) || i.len() > 1024)
    {
        return Err(ApiError::bad_request(
            "image: at most 1024 characters, no control characters",
        ));
    }
    let page = q.page.unwrap_or(1);
    if page < 1 {
        return Err(ApiError::bad_request("page: from 1"));
    }
    let (jobs, total) = svc
        .store
        .list_jobs(
            &caller.org.id,
            &JobFilter {
                state,
                image: q.image,
                page,
                per_page,
            },
        )
        .await?;
    Ok(Json(JobList {
        items: jobs.iter().map(JobStatus::from).collect(),
        page,
        per_page,
        total,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/quota", tag = "organization",
    responses((status = 200, body = Quota), (status = 401, body = ErrorBody)),
    security(("api_key" = []))
)]
async fn quota(
    State(svc): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Quota>, ApiError> {
    let (from, to) = month_window(vexxy_store::now_ms());
    let used = svc.store.usage(&caller.org.id, from, to).await?;
    let limit = caller.org.quota();
    Ok(Json(Quota {
        organization: caller.org.name.clone(),
        tier: caller.org.tier.to_string(),
        period_start: rfc3339(from),
        period_end: rfc3339(to),
        used,
        limit,
        remaining: (limit - used).max(0),
    }))
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is up")))]
async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The database and the evidence store take writes and keep their free-space reserve; not shutting down"),
        (status = 503, description = "Shutting down, or storage full or unavailable (the message says which)", body = ErrorBody),
    )
)]
async fn readyz(State(svc): State<AppState>) -> Result<&'static str, ApiError> {
    if svc.is_draining() {
        return Err(ApiError::unavailable("shutting down"));
    }
    crate::health::readiness(&svc).await?;
    Ok("ready\n")
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format (no label names a tenant)"),
        (status = 401, description = "No or the wrong metrics token", body = ErrorBody),
        (status = 404, description = "The server has no metrics token configured: metrics are not served", body = ErrorBody),
    ),
    security(("metrics_token" = []))
)]
async fn metrics(State(svc): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(token) = &svc.config.metrics_token else {
        return Err(ApiError::not_found(
            "/metrics (this server serves metrics only with --metrics-token)",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    if !presented.is_some_and(|p| token.matches(p)) {
        return Err(ApiError::unauthorized(
            "the metrics token is required (Authorization: Bearer <token>)",
        ));
    }
    let text = svc.metrics.render(&svc.store).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// A job that signs needs the server's key and an active signing key of
/// its organisation; one that attaches, an image in a registry.
pub(crate) async fn check_can_sign(
    svc: &Service,
    caller: &Caller,
    spec: &JobSpec,
) -> Result<(), ApiError> {
    if spec.attach && tenant::registry_of_reference(&spec.image_ref).is_none() {
        return Err(ApiError::unprocessable(format!(
            "config.attach: {:?} is not an image in a registry; an attestation can only be attached to one (sign keeps it with the results)",
            spec.image_ref
        )));
    }
    if svc.config.secret_key.is_none() {
        return Err(ApiError::no_secret_key());
    }
    if svc
        .store
        .active_signing_key_record(&caller.org.id)
        .await?
        .is_none()
    {
        let field = if spec.attach {
            "config.attach"
        } else {
            "config.sign"
        };
        return Err(ApiError::unprocessable(format!(
            "{field}: organisation {} has no active signing key (POST /api/v1/signing-keys)",
            caller.org.name
        )));
    }
    Ok(())
}

/// Largest body of the signing-key, credential and allow-list endpoints.
const SMALL_BODY_BYTES: usize = 64 << 10;

/// A small JSON body (at most [`SMALL_BODY_BYTES`]): 413 past it, 422
/// naming the field when it does not fit the type.
#[derive(Debug)]
pub struct SmallJson<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for SmallJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::bad_request(
                "expected a request with `Content-Type: application/json`",
            ));
        }
        let too_large = || {
            ApiError::payload_too_large(format!(
                "request body larger than {SMALL_BODY_BYTES} bytes"
            ))
        };
        if req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > SMALL_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(req.into_body(), SMALL_BODY_BYTES)
            .await
            .map_err(|_| too_large())?;
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(v)) => Ok(Self(v)),
            // serde's messages name the field and position, never the value
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::unprocessable(e.body_text())),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

#[utoipa::path(
    post, path = "/api/v1/signing-keys", tag = "organization",
    request_body = GenerateSigningKey,
    responses(
        (status = 201, description = "Generated; it is now the organisation's active signing key (the private key never leaves the server)", body = SigningKeyInfo),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Unknown algorithm", body = ErrorBody),
        (status = 503, description = "No server secret key configured (no_secret_key), or storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn generate_signing_key(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    SmallJson(body): SmallJson<GenerateSigningKey>,
) -> Result<Response, ApiError> {
    let algorithm = tenant::parse_algorithm(body.algorithm.as_deref().unwrap_or("p256"))
        .map_err(ApiError::unprocessable)?;
    let record = tenant::generate_signing_key(
        &svc.store,
        svc.config.secret_key.as_ref(),
        &caller.org.id,
        algorithm,
        Some(&caller.key_id),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(SigningKeyInfo::from(&record))).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/signing-keys/import", tag = "organization",
    request_body = ImportSigningKey,
    responses(
        (status = 201, description = "Imported; it is now the organisation's active signing key", body = SigningKeyInfo),
        (status = 401, body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Not an unencrypted PKCS#8 (or SEC1 P-256) ECDSA P-256 or Ed25519 private key, or over 16 KiB", body = ErrorBody),
        (status = 503, description = "No server secret key configured (no_secret_key), or storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn import_signing_key(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    SmallJson(body): SmallJson<ImportSigningKey>,
) -> Result<Response, ApiError> {
    let pem = vexxy_store::SecretString::new(body.private_key_pem);
    let record = tenant::import_signing_key(
        &svc.store,
        svc.config.secret_key.as_ref(),
        &caller.org.id,
        &pem,
        Some(&caller.key_id),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(SigningKeyInfo::from(&record))).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/signing-keys", tag = "organization",
    responses(
        (status = 200, description = "The organisation's keys, newest first: public keys and keyids, never a private key", body = SigningKeyList),
        (status = 401, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn list_signing_keys(
    State(svc): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<SigningKeyList>, ApiError> {
    let keys = svc.store.signing_keys(&caller.org.id).await?;
    svc.store
        .audit(
            Some(&caller.org.id),
            Some(&caller.key_id),
            "list_signing_keys",
            None,
            None,
        )
        .await?;
    Ok(Json(SigningKeyList {
        items: keys.iter().map(SigningKeyInfo::from).collect(),
    }))
}

#[utoipa::path(
    delete, path = "/api/v1/signing-keys/{id}", tag = "organization",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked: no longer listed or used, its private key erased; jobs that sign need another active key"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such key in this organisation", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn revoke_signing_key(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc.store
        .revoke_signing_key(&caller.org.id, &id, Some(&caller.key_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put, path = "/api/v1/registry-credentials/{registry}", tag = "organization",
    params(("registry" = String, Path, description = "host[:port] as image references name the registry (docker.io for Docker Hub)")),
    request_body = RegistryCredentialRequest,
    responses(
        (status = 200, description = "Stored (replacing an earlier login for the registry); the password is sealed and never returned", body = RegistryCredentialInfo),
        (status = 401, body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Not a registry host[:port], or an empty or oversized user name or password", body = ErrorBody),
        (status = 503, description = "No server secret key configured (no_secret_key), or storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn set_registry_credential(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path(registry): Path<String>,
    SmallJson(body): SmallJson<RegistryCredentialRequest>,
) -> Result<Json<RegistryCredentialInfo>, ApiError> {
    let registry = tenant::registry_name(&registry).map_err(ApiError::unprocessable)?;
    let Some(key) = &svc.config.secret_key else {
        return Err(ApiError::no_secret_key());
    };
    let password = vexxy_store::SecretString::new(body.password);
    let stored = svc
        .store
        .set_registry_credential(
            key,
            &caller.org.id,
            &registry,
            body.username.trim(),
            &password,
            Some(&caller.key_id),
        )
        .await?;
    Ok(Json(RegistryCredentialInfo::from(&stored)))
}

#[utoipa::path(
    get, path = "/api/v1/registry-credentials", tag = "organization",
    responses(
        (status = 200, description = "The organisation's registry logins: registries and user names only", body = RegistryCredentialList),
        (status = 401, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn list_registry_credentials(
    State(svc): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<RegistryCredentialList>, ApiError> {
    let list = svc.store.registry_credentials(&caller.org.id).await?;
    svc.store
        .audit(
            Some(&caller.org.id),
            Some(&caller.key_id),
            "list_registry_credentials",
            None,
            None,
        )
        .await?;
    Ok(Json(RegistryCredentialList {
        items: list.iter().map(RegistryCredentialInfo::from).collect(),
    }))
}

#[utoipa::path(
    delete, path = "/api/v1/registry-credentials/{registry}", tag = "organization",
    params(("registry" = String, Path, description = "host[:port]")),
    responses(
        (status = 204, description = "Deleted: the organisation's pulls from this registry are anonymous"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "The organisation has no login for this registry", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn delete_registry_credential(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    Path(registry): Path<String>,
) -> Result<StatusCode, ApiError> {
    let registry = tenant::registry_name(&registry)
        .map_err(|_| ApiError::not_found(format!("registry credential for {registry:?}")))?;
    svc.store
        .delete_registry_credential(&caller.org.id, &registry, Some(&caller.key_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get, path = "/api/v1/registry-allowlist", tag = "organization",
    responses(
        (status = 200, description = "The registries the organisation's jobs may name (empty: any the operator allows)", body = RegistryAllowlist),
        (status = 401, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn get_registry_allowlist(
    State(svc): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<RegistryAllowlist>, ApiError> {
    let hosts = svc.store.registry_allowlist(&caller.org.id).await?;
    svc.store
        .audit(
            Some(&caller.org.id),
            Some(&caller.key_id),
            "get_registry_allowlist",
            None,
            None,
        )
        .await?;
    Ok(Json(RegistryAllowlist { hosts }))
}

#[utoipa::path(
    put, path = "/api/v1/registry-allowlist", tag = "organization",
    request_body = RegistryAllowlist,
    responses(
        (status = 200, description = "Replaced (an empty list clears it); submissions naming another registry are refused with 422, and so are queued jobs when they start", body = RegistryAllowlist),
        (status = 401, body = ErrorBody),
        (status = 422, description = "An entry is not host, host:port or *.suffix, or more than 100 entries", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn set_registry_allowlist(
    State(svc): State<AppState>,
    Authed(caller): Authed,
    SmallJson(body): SmallJson<RegistryAllowlist>,
) -> Result<Json<RegistryAllowlist>, ApiError> {
    let entries = tenant::allowlist_entries(&body.hosts).map_err(ApiError::unprocessable)?;
    let hosts = svc
        .store
        .set_registry_allowlist(&caller.org.id, &entries, Some(&caller.key_id))
        .await?;
    Ok(Json(RegistryAllowlist { hosts }))
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi_document(),
    )
        .into_response()
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An organisation's API key (vexxy admin create-key)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The operator's metrics token (--metrics-token)"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "vexxy", description = "Evidence-backed VEX for container images, as a service."),
    paths(
        submit, status, results, artifact, cancel, list, quota, generate_signing_key,
        import_signing_key, list_signing_keys, revoke_signing_key, set_registry_credential,
        list_registry_credentials, delete_registry_credential, get_registry_allowlist,
        set_registry_allowlist, healthz, readyz, metrics,
        rr::list_statements, rr::review_queue, rr::statement_detail, rr::post_decision,
        rr::bulk_decisions, rr::set_assignee, rr::get_settings, rr::put_settings,
        rr::list_images, rr::image_detail, rr::current_vex, rr::vex_history, rr::vex_version,
        rr::vex_envelope, rr::post_report, rr::post_report_any, rr::post_profile,
        rr::node_agent_images, rr::dashboard, rr::compliance, rr::compare, rr::audit
    ),
    components(schemas(
        SubmitRequest, crate::api::SubmitConfig, SubmitResponse, JobStatus, Results, Summary,
        CancelResponse, JobList, Quota, ErrorBody, crate::api::WebhookPayload, Attestation,
        GenerateSigningKey, ImportSigningKey, SigningKeyInfo, SigningKeyList,
        RegistryCredentialRequest, RegistryCredentialInfo, RegistryCredentialList,
        RegistryAllowlist, crate::api_review::StatementQuery, crate::api_review::DecisionInfo,
        crate::api_review::StatementInfo, crate::api_review::StatementList,
        crate::api_review::StatementDetail, crate::api_review::DecisionRequest,
        crate::api_review::DecisionResponse, crate::api_review::BulkDecisionRequest,
        crate::api_review::BulkDecisionResponse, crate::api_review::AssignRequest,
        crate::api_review::VexVersionInfo, crate::api_review::VexHistory,
        crate::api_review::ImageInfo, crate::api_review::ImageList, crate::api_review::WeekInfo,
        crate::api_review::Dashboard, crate::api_review::ComplianceRow,
        crate::api_review::Compliance, crate::api_review::ReviewSettings,
        crate::api_review::ReevaluateResponse, crate::api_review::Changes,
        crate::api_review::AuditEntryInfo, crate::api_review::AuditList,
        crate::api_review::NodeAgentImages, crate::api_review::WatchedImage
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "analysis", description = "Submit images, follow jobs, fetch VEX and evidence"),
        (name = "organization", description = "The calling organisation: quota, signing keys, registry credentials, registry allow-list"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "review", description = "Stored statements, the review queue, decisions with who, when and why"),
        (name = "images", description = "Analysed images, their current VEX and its history, new reports re-decided without a run"),
        (name = "insights", description = "Dashboard, per-repository compliance, image comparison, audit log"),
    )
)]
struct ApiDoc;

/// The OpenAPI document, pretty-printed (committed as `docs/openapi.json`).
pub fn openapi_document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut text = doc.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
