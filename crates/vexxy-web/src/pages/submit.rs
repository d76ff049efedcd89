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

/// What a multipart submission reads into, and the large-submission
/// permit it holds once it is large (as the API's submissions do).
struct Upload<'a> {
    svc: &'a vexxy_server::Service,
    limits: &'a vexxy_server::api::SubmitLimits,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    read: usize,
}

impl Upload<'_> {
    /// Counts `n` more bytes read; past the large-body size, takes a
    /// permit (none free: 503 with Retry-After).
    fn count(&mut self, n: usize) -> Result<(), ApiError> {
        self.read += n;
        if self.permit.is_none() && self.read > self.limits.large_body_bytes {
            self.permit = Some(self.svc.large_submit_permit()?);
        }
        Ok(())
    }

    /// A JSON document uploaded as `field`, bounded while it streams in
    /// by the API's limits (bytes and JSON values) and kept as its bytes.
    async fn document(
        &mut self,
        field: &mut axum::extract::multipart::Field<'_>,
        name: &'static str,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let mut scanner = Scanner::new(self.limits);
        scanner.feed(format!("{{\"{name}\":").as_bytes())?;
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(name, &e))? {
            self.count(chunk.len())?;
            scanner.feed(&chunk)?;
            bytes.extend_from_slice(&chunk);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        scanner.feed(b"}")?;
        Ok(Some(bytes))
    }

    /// A short text field, read at most [`MAX_TEXT`] bytes.
    async fn text(
        &mut self,
        field: &mut axum::extract::multipart::Field<'_>,
        name: &str,
    ) -> Result<String, ApiError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(name, &e))? {
            self.count(chunk.len())?;
            if bytes.len() + chunk.len() > MAX_TEXT {
                return Err(ApiError::unprocessable(format!(
                    "{name}: at most {MAX_TEXT} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        String::from_utf8(bytes).map_err(|_| ApiError::unprocessable(format!("{name}: not UTF-8")))
    }
}

/// The longest text field of the form.
const MAX_TEXT: usize = 4096;

/// A multipart error as the API would answer it (413 past the body limit).
fn multipart_error(name: &str, e: &axum::extract::multipart::MultipartError) -> ApiError {
    let mut err = ApiError::bad_request(format!(
        "{name}: the upload could not be read: {}",
        e.body_text()
    ));
    err.status = e.status();
    err
}

/// A document's bytes as the API keeps a submitted one.
fn as_document(name: &str, bytes: Vec<u8>) -> Result<Document, ApiError> {
    let text = String::from_utf8(bytes)
        .map_err(|_| ApiError::unprocessable(format!("{name}: not UTF-8 JSON")))?;
    Document::try_from(text).map_err(|e| ApiError::unprocessable(format!("{name}: not JSON: {e}")))
}

/// `POST /submit` (multipart): checked and queued exactly as the API's
/// submission (quota and storage before the body, the same streaming
/// bounds, a permit while large, parsing off the async threads); then on
/// to the job's page.
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
    let content_length = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let mut upload = Upload {
        svc,
        limits: &limits,
        permit: None,
        read: 0,
    };
    if content_length.is_some_and(|n| n > limits.large_body_bytes) {
        upload.count(content_length.unwrap_or(0))?;
        upload.read = 0;
    }
    // the session's token comes first (the form puts it there): nothing
    // else of a request without it is read
    let mut first = multipart
        .next_field()
        .await
        .map_err(|e| WebError::from(multipart_error("_csrf", &e)))?
        .ok_or_else(|| WebError::forbidden("the form carries no CSRF token"))?;
    if first.name() != Some("_csrf") {
        return Err(WebError::forbidden("the form carries no CSRF token"));
    }
    let csrf = upload.text(&mut first, "_csrf").await?;
    drop(first);
    signed.check(&headers, &csrf)?;
    let mut form = SubmitFields::default();
    let mut report = None;
    let mut sbom = None;
    let read: Result<(), ApiError> = async {
        while let Some(mut field) = multipart
            .next_field()
            .await
            .map_err(|e| multipart_error("the form", &e))?
        {
            let name = field.name().unwrap_or("").to_owned();
            match name.as_str() {
                "report" => report = upload.document(&mut field, "scan_report").await?,
                "sbom" => sbom = upload.document(&mut field, "sbom").await?,
                "image_ref" => {
                    form.image_ref = upload.text(&mut field, &name).await?.trim().to_owned()
                }
                "image_name" => {
                    form.image_name = upload.text(&mut field, &name).await?.trim().to_owned()
                }
                "duration_secs" => {
                    form.duration = upload
                        .text(&mut field, &name)
                        .await?
                        .trim()
                        .parse()
                        .map_err(|_| {
                            ApiError::unprocessable("duration_secs: a number of seconds")
                        })?
                }
                "sign" => {
                    upload.text(&mut field, &name).await?;
                    form.sign = true;
                }
                "attach" => {
                    upload.text(&mut field, &name).await?;
                    form.attach = true;
                }
                other => {
                    return Err(ApiError::unprocessable(format!(
                        "{}: not a field of this form",
                        other.chars().take(64).collect::<String>()
                    )))
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = read {
        return refused(&signed, form, e).await;
    }
    let large = upload.permit.is_some();
    let _permit = upload.permit;
    let fields = SubmitRequestFields {
        image_ref: form.image_ref.clone(),
        image_name: form.image_name.clone(),
        duration: form.duration,
        sign: form.sign,
        attach: form.attach,
    };
    // parsing a large report is CPU work: off the async threads
    let checked = if large {
        tokio::task::spawn_blocking(move || fields.check(report, sbom, &limits))
            .await
            .map_err(|e| ApiError::internal(format!("checking the submission: {e}")))
            .and_then(|r| r)
    } else {
        fields.check(report, sbom, &limits)
    };
    let queued = match checked {
        Ok(spec) => queries::submit(svc, &signed.caller, &spec).await,
        Err(e) => Err(e),
    };
    match queued {
        Ok((job, _)) => Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response()),
        Err(e) => refused(&signed, form, e).await,
    }
}

/// The form's fields as the API's request takes them.
struct SubmitRequestFields {
    image_ref: String,
    image_name: String,
    duration: u64,
    sign: bool,
    attach: bool,
}

impl SubmitRequestFields {
    fn check(
        self,
        report: Option<Vec<u8>>,
        sbom: Option<Vec<u8>>,
        limits: &vexxy_server::api::SubmitLimits,
    ) -> Result<vexxy_server::api::JobSpec, ApiError> {
        let raw = SubmitRequest {
            image_ref: self.image_ref,
            image_digest: None,
            config: Some(SubmitConfig {
                analysis_duration: (self.duration > 0).then_some(self.duration),
                image_name: (!self.image_name.is_empty()).then_some(self.image_name),
                sign: self.sign.then_some(true),
                attach: self.attach.then_some(true),
                ..SubmitConfig::default()
            }),
            scan_report: report.map(|b| as_document("scan_report", b)).transpose()?,
            sbom: sbom.map(|b| as_document("sbom", b)).transpose()?,
            callback_url: None,
        };
        queries::check_submission(raw, limits)
    }
}

/// A refused submission: the form again with the reason, for what the
/// submitter can fix; the error page (with its Retry-After) otherwise.
async fn refused(signed: &Signed, form: SubmitFields, e: ApiError) -> Result<Response, WebError> {
    if e.status.is_client_error() && e.status != StatusCode::TOO_MANY_REQUESTS {
        let status = e.status;
        show(signed, form, Some(e.body.message), status).await
    } else {
        Err(e.into())
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
