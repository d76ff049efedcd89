//! `GET /submit`: a new analysis — image, optional report or SBOM,
//! window, signing — and `GET /jobs/{id}`: its progress, live.

use askama::Template;
use axum::{
    extract::{Multipart, Path, State},
    http::StatusCode,
    response::{IntoResponse, Json, Redirect, Response},
};
use vexxy_server::{
    api::{Document, JobStatus, SubmitConfig, SubmitRequest},
    body::Scanner,
    error::ApiError,
    queries,
};

use crate::{
    error::{render, WebError},
    session::Signed,
    view::{self, Layout},
    AppState,
};

/// The exercise windows offered, in seconds.
const DURATIONS: [u64; 5] = [10, 30, 60, 120, 300];

#[derive(Debug, Default)]
pub(crate) struct SubmitFields {
    image_ref: String,
    image_name: String,
    duration: u64,
    sign: bool,
    attach: bool,
}

#[derive(Template)]
#[template(path = "submit.html")]
struct Page {
    title: &'static str,
    layout: Layout,
    form: SubmitFields,
    durations: [u64; 5],
    error: Option<String>,
    premium: bool,
}

async fn show(
    signed: &Signed,
    form: SubmitFields,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let page = Page {
        title: "Submit an analysis",
        layout: Layout::new(signed, "submit"),
        form,
        durations: DURATIONS,
        error,
        premium: signed.caller.org.tier.can_analyze(),
    };
    Ok((status, render(&page)?).into_response())
}

pub(crate) async fn page(signed: Signed) -> Result<Response, WebError> {
    show(
        &signed,
        SubmitFields {
            duration: 30,
            ..SubmitFields::default()
        },
        None,
        StatusCode::OK,
    )
    .await
}

/// A JSON document uploaded as `field`, bounded while it streams in by
/// the same limits as the API's (bytes and JSON values).
async fn document(
    field: &mut axum::extract::multipart::Field<'_>,
    name: &'static str,
    limits: &vexxy_server::api::SubmitLimits,
) -> Result<Option<Document>, ApiError> {
    let mut scanner = Scanner::new(limits);
    scanner.feed(format!("{{\"{name}\":").as_bytes())?;
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::bad_request(format!("{name}: the upload was cut short: {e}")))?
    {
        scanner.feed(&chunk)?;
        bytes.extend_from_slice(&chunk);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    scanner.feed(b"}")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ApiError::unprocessable(format!("{name}: not UTF-8 JSON")))?;
    Document::try_from(text)
        .map(Some)
        .map_err(|e| ApiError::unprocessable(format!("{name}: not JSON: {e}")))
}

/// `POST /submit` (multipart): checked and queued exactly as the API's
/// submission; then on to the job's page.
pub(crate) async fn submit(
    State(web): State<AppState>,
    signed: Signed,
    headers: axum::http::HeaderMap,
    mut multipart: Multipart,
) -> Result<Response, WebError> {
    let svc = &web.svc;
    if !signed.caller.org.tier.can_analyze() {
        return Err(ApiError::premium_required().into());
    }
    // the quota and the storage reserve before a byte of the body is read
    queries::admit_submission(svc, &signed.caller).await?;
    let limits = svc.config.submit.clone();
    let mut csrf = String::new();
    let mut form = SubmitFields::default();
    let mut report = None;
    let mut sbom = None;
    let result: Result<(), ApiError> = async {
        while let Some(mut field) = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(format!("the form could not be read: {e}")))?
        {
            let name = field.name().unwrap_or("").to_owned();
            match name.as_str() {
                "report" => report = document(&mut field, "scan_report", &limits).await?,
                "sbom" => sbom = document(&mut field, "sbom", &limits).await?,
                "_csrf" | "image_ref" | "image_name" | "duration_secs" | "sign" | "attach" => {
                    let text = field.text().await.map_err(|e| {
                        ApiError::bad_request(format!("{name}: could not be read: {e}"))
                    })?;
                    if text.len() > 4096 {
                        return Err(ApiError::unprocessable(format!(
                            "{name}: at most 4096 bytes"
                        )));
                    }
                    match name.as_str() {
                        "_csrf" => csrf = text,
                        "image_ref" => form.image_ref = text.trim().to_owned(),
                        "image_name" => form.image_name = text.trim().to_owned(),
                        "duration_secs" => {
                            form.duration = text.trim().parse().map_err(|_| {
                                ApiError::unprocessable("duration_secs: a number of seconds")
                            })?
                        }
                        "sign" => form.sign = true,
                        _ => form.attach = true,
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
    .await;
    // no CSRF token read yet means the form never got that far: refuse
    // before saying anything about the rest
    signed.check(&headers, &csrf)?;
    if let Err(e) = result {
        let status = e.status;
        return show(&signed, form, Some(e.body.message), status).await;
    }
    let raw = SubmitRequest {
        image_ref: form.image_ref.clone(),
        image_digest: None,
        config: Some(SubmitConfig {
            analysis_duration: (form.duration > 0).then_some(form.duration),
            image_name: (!form.image_name.is_empty()).then(|| form.image_name.clone()),
            sign: form.sign.then_some(true),
            attach: form.attach.then_some(true),
            ..SubmitConfig::default()
        }),
        scan_report: report,
        sbom,
        callback_url: None,
    };
    let queued = match queries::check_submission(raw, &limits) {
        Ok(spec) => queries::submit(svc, &signed.caller, &spec).await,
        Err(e) => Err(e),
    };
    match queued {
        Ok((job, _)) => Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response()),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::TOO_MANY_REQUESTS => {
            let status = e.status;
            show(&signed, form, Some(e.body.message), status).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    title: String,
    layout: Layout,
    job: JobStatus,
    created: String,
    finished: bool,
}

/// `GET /jobs/{id}`: where the analysis is; `/static/app.js` keeps it
/// current, and without script the page refreshes itself while running.
pub(crate) async fn job_page(
    State(web): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let job = queries::job_status(&web.svc, &signed.caller, &id).await?;
    let finished = matches!(job.status.as_str(), "complete" | "failed" | "cancelled");
    let page = JobPage {
        title: format!("Analysis {}", job.job_id),
        layout: Layout::new(&signed, "submit"),
        created: view::when(&job.created_at),
        finished,
        job,
    };
    Ok(render(&page)?.into_response())
}

/// `GET /jobs/{id}/status.json`: the API's status of the job, for the
/// page's script.
pub(crate) async fn job_status(
    State(web): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>, WebError> {
    Ok(Json(
        queries::job_status(&web.svc, &signed.caller, &id).await?,
    ))
}
