//! `GET /review`: what waits for a person, riskiest first, with
//! filters, per-row approval and bulk decisions; keyboard-driven with
//! `/static/app.js` (j/k move, x select, a approve, o open).

use askama::Template;
use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use vexxy_server::{api_review::StatementQuery, queries};

use crate::view::Words as _;
use crate::{
    error::{render, WebError},
    session::Signed,
    view::{self, Flash, Layout},
    AppState,
};

/// Rows per page.
const PAGE: i64 = 100;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    severity: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    offset: i64,
    /// Decisions just recorded, and images whose VEX they re-issued.
    done: Option<usize>,
    images: Option<usize>,
}

impl Filters {
    fn query(&self) -> StatementQuery {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        StatementQuery {
            severity: opt(&self.severity),
            status: opt(&self.status),
            reason: opt(&self.reason),
            repository: opt(&self.repository),
            limit: Some(PAGE),
            offset: Some(self.offset.max(0)),
            ..StatementQuery::default()
        }
    }

    /// The filters as a query string (to come back to them).
    fn encode(&self, offset: i64) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("severity", &self.severity),
            ("status", &self.status),
            ("reason", &self.reason),
            ("repository", &self.repository),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        if offset > 0 {
            q.append_pair("offset", &offset.to_string());
        }
        q.finish()
    }
}

/// A row of the queue.
#[derive(Debug)]
pub(crate) struct Row {
    id: String,
    version: i64,
    vulnerability: String,
    package: String,
    repository: String,
    digest: String,
    severity: String,
    epss: String,
    kev: bool,
    status: String,
    confidence: String,
    reason: String,
    age: String,
}

#[derive(Template)]
#[template(path = "review.html")]
struct Page {
    title: &'static str,
    layout: Layout,
    f: Filters,
    back: String,
    rows: Vec<Row>,
    total: i64,
    limit: i64,
    prev: Option<String>,
    next: Option<String>,
    error: Option<String>,
    bulk: BulkFields,
}

const SEVERITIES: [&str; 6] = ["critical", "high", "medium", "low", "negligible", "unknown"];
const STATUSES: [&str; 4] = ["not_affected", "affected", "fixed", "under_investigation"];
const REASONS: [&str; 5] = [
    "under_investigation",
    "affected_no_fix",
    "low_confidence",
    "four_eyes",
    "expired",
];

impl Page {
    fn severities(&self) -> &'static [&'static str] {
        &SEVERITIES
    }
    fn statuses(&self) -> &'static [&'static str] {
        &STATUSES
    }
    fn reasons(&self) -> &'static [&'static str] {
        &REASONS
    }
    fn justifications(&self) -> Vec<&'static str> {
        vexxy_model::Justification::ALL
            .iter()
            .map(|j| j.as_str())
            .collect()
    }
}

/// The bulk form's fields as posted (kept when a decision is refused).
#[derive(Debug, Default)]
pub(crate) struct BulkFields {
    action: String,
    status: String,
    justification: String,
    reason: String,
}

async fn show(
    web: &crate::Web,
    signed: &Signed,
    f: Filters,
    error: Option<String>,
    bulk: BulkFields,
    status: StatusCode,
) -> Result<Response, WebError> {
    let now = vexxy_store::now_ms();
    let (rows, total, limit, offset) =
        queries::statement_rows(&web.svc, &signed.caller.org.id, &f.query(), true).await?;
    let rows: Vec<Row> = rows
        .iter()
        .map(|r| Row {
            id: r.id.clone(),
            version: r.version,
            vulnerability: r.vulnerability_id.clone(),
            package: format!("{} {}", r.package_name, r.package_version),
            repository: r.repository.clone(),
            digest: r.image_digest.clone(),
            severity: r.severity.clone(),
            epss: r.epss.map(view::percent).unwrap_or_default(),
            kev: r.kev,
            status: r.status.clone(),
            confidence: view::percent(r.auto_confidence),
            reason: r
                .review_reason
                .as_deref()
                .map(view::words)
                .unwrap_or_default(),
            age: view::age((now - r.first_seen_at).max(0) / 1000),
        })
        .collect();
    let mut layout = Layout::new(signed, "review");
    if let Some(n) = f.done {
        layout.flash = Some(Flash {
            text: format!(
                "{n} decision(s) recorded; the VEX of {} image(s) re-issued.",
                f.images.unwrap_or(0)
            ),
            vex_version: None,
        });
    }
    let shown_to = offset + rows.len() as i64;
    let page = Page {
        title: "Review queue",
        layout,
        back: f.encode(offset),
        prev: (offset > 0).then(|| format!("/review?{}", f.encode((offset - limit).max(0)))),
        next: (shown_to < total).then(|| format!("/review?{}", f.encode(shown_to))),
        f,
        rows,
        total,
        limit,
        error,
        bulk,
    };
    Ok((status, render(&page)?).into_response())
}

pub(crate) async fn page(
    State(web): State<AppState>,
    signed: Signed,
    Query(f): Query<Filters>,
) -> Result<Response, WebError> {
    show(
        &web,
        &signed,
        f,
        None,
        BulkFields::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /review/bulk`: one decision on the rows selected (or the one
/// row whose approve button was pressed), all or nothing.
pub(crate) async fn bulk(
    State(web): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let mut csrf = String::new();
    let mut selected = Vec::new();
    let mut one = None;
    let mut fields = BulkFields::default();
    let mut back = String::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "_csrf" => csrf = v.into_owned(),
            "ids" => selected.push(v.into_owned()),
            "approve_one" => one = Some(v.into_owned()),
            "action" => fields.action = v.into_owned(),
            "status" => fields.status = v.into_owned(),
            "justification" => fields.justification = v.into_owned(),
            "reason" => fields.reason = v.into_owned(),
            "back" => back = v.into_owned(),
            _ => {}
        }
    }
    signed.check(&headers, &csrf)?;
    let filters: Filters = serde_urlencoded_filters(&back);
    // `id@version`: the version the reviewer saw
    let parse = |s: &str| -> Result<(String, Option<i64>), String> {
        match s.rsplit_once('@') {
            Some((id, v)) => v
                .parse::<i64>()
                .map(|v| (id.to_owned(), Some(v)))
                .map_err(|_| format!("ids: {id}: the version shown is not a number")),
            None => Ok((s.to_owned(), None)),
        }
    };
    let (action, targets) = match &one {
        Some(row) => ("approve".to_owned(), parse(row).map(|t| vec![t])),
        None => (
            fields.action.clone(),
            selected.iter().map(|s| parse(s)).collect(),
        ),
    };
    let targets = match targets {
        Ok(t) => t,
        Err(message) => {
            return show(
                &web,
                &signed,
                filters,
                Some(message),
                fields,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    let opt = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    };
    let raw = vexxy_review::RawDecision {
        action: opt(&action),
        status: if one.is_some() {
            None
        } else {
            opt(&fields.status)
        },
        justification: if one.is_some() {
            None
        } else {
            opt(&fields.justification)
        },
        impact_statement: None,
        action_statement: None,
        reason: opt(&fields.reason),
        expires_in_days: None,
        expected_version: None,
    };
    match vexxy_server::review::decide_selected(&web.svc, &signed.caller, &targets, raw).await {
        Ok(done) => {
            // back to the filters as parsed, never the posted text
            let back = filters.encode(filters.offset);
            let sep = if back.is_empty() { "" } else { "&" };
            Ok(Redirect::to(&format!(
                "/review?{back}{sep}done={}&images={}",
                done.decided,
                done.vex.len()
            ))
            .into_response())
        }
        Err(e)
            if e.status == StatusCode::UNPROCESSABLE_ENTITY
                || e.status == StatusCode::CONFLICT
                || e.status == StatusCode::NOT_FOUND =>
        {
            let status = e.status;
            show(&web, &signed, filters, Some(e.body.message), fields, status).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The filters carried back in the bulk form (unknown or bad values fall
/// back to none: they only choose which rows are shown again).
fn serde_urlencoded_filters(query: &str) -> Filters {
    let mut f = Filters::default();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "severity" => f.severity = v.into_owned(),
            "status" => f.status = v.into_owned(),
            "reason" => f.reason = v.into_owned(),
            "repository" => f.repository = v.into_owned(),
            "offset" => f.offset = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    f
}
