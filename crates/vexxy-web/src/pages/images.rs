//! `GET /images`: the organisation's images, searchable, with the
//! per-repository compliance view.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::header,
    response::{Html, IntoResponse, Response},
};
use serde::Deserialize;
use vexxy_server::{
    api_review::{ComplianceRow, ImageQuery},
    queries,
};

use crate::{
    error::{render, WebError},
    session::Signed,
    view::{self, Layout},
    AppState,
};

/// Images per page.
const PAGE: i64 = 50;

#[derive(Debug, Deserialize)]
pub(crate) struct Filters {
    search: Option<String>,
    repository: Option<String>,
    offset: Option<i64>,
}

/// One row of the images table.
#[derive(Debug)]
pub(crate) struct Row {
    digest: String,
    short: String,
    repository: String,
    reference: String,
    analysed: String,
    findings: i64,
    not_affected: i64,
    affected: i64,
    under_investigation: i64,
    unreviewed: i64,
    vex_version: i64,
}

#[derive(Template)]
#[template(path = "images.html")]
struct Page {
    title: &'static str,
    layout: Layout,
    search: String,
    repository: String,
    repositories: Vec<String>,
    rows: Vec<Row>,
    total: i64,
    shown_from: i64,
    shown_to: i64,
    prev: Option<String>,
    next: Option<String>,
    compliance: Vec<ComplianceRow>,
}

fn link(search: &str, repository: &str, offset: i64) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if !search.is_empty() {
        q.append_pair("search", search);
    }
    if !repository.is_empty() {
        q.append_pair("repository", repository);
    }
    q.append_pair("offset", &offset.to_string());
    format!("/images?{}", q.finish())
}

pub(crate) async fn page(
    State(web): State<AppState>,
    signed: Signed,
    Query(f): Query<Filters>,
) -> Result<Html<String>, WebError> {
    let org = &signed.caller.org.id;
    let search = f.search.unwrap_or_default().trim().to_owned();
    let repository = f.repository.unwrap_or_default();
    let offset = f.offset.unwrap_or(0).max(0);
    let list = queries::images(
        &web.svc,
        org,
        &ImageQuery {
            repository: (!repository.is_empty()).then(|| repository.clone()),
            search: (!search.is_empty()).then(|| search.clone()),
            limit: Some(PAGE),
            offset: Some(offset),
        },
    )
    .await?;
    let compliance = queries::compliance(&web.svc, org).await?;
    let rows: Vec<Row> = list
        .images
        .iter()
        .map(|i| Row {
            digest: i.digest.clone(),
            short: view::short_digest(&i.digest),
            repository: i.repository.clone(),
            reference: i.reference.clone(),
            analysed: view::when(&i.last_analysed_at),
            findings: i.findings,
            not_affected: i.not_affected,
            affected: i.affected,
            under_investigation: i.under_investigation,
            unreviewed: i.unreviewed,
            vex_version: i.vex_version,
        })
        .collect();
    let shown_to = offset + rows.len() as i64;
    render(&Page {
        title: "Images",
        layout: Layout::new(&signed, "images"),
        repositories: compliance.iter().map(|c| c.repository.clone()).collect(),
        prev: (offset > 0).then(|| link(&search, &repository, (offset - PAGE).max(0))),
        next: (shown_to < list.total).then(|| link(&search, &repository, shown_to)),
        shown_from: if rows.is_empty() { 0 } else { offset + 1 },
        shown_to,
        total: list.total,
        search,
        repository,
        rows,
        compliance,
    })
}

/// `GET /images/compliance.csv`: the compliance view as the API's CSV.
pub(crate) async fn compliance_csv(
    State(web): State<AppState>,
    signed: Signed,
) -> Result<Response, WebError> {
    let rows = queries::compliance(&web.svc, &signed.caller.org.id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"compliance.csv\"",
            ),
        ],
        vexxy_server::routes_review::compliance_csv(&rows),
    )
        .into_response())
}
