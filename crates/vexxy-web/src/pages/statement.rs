//! `GET /statements/{id}`: one statement, everything it rests on, every
//! decision about it, and the form that records a new one.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use serde::Deserialize;
use vexxy_server::{
    api_review::{DecisionInfo, StatementDetail},
    queries,
};

use crate::view::Words as _;
use crate::{
    error::{render, WebError},
    session::Signed,
    view::{self, Layout},
    AppState,
};

/// The form as posted; empty fields are absent.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DecisionForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    justification: String,
    #[serde(default)]
    impact_statement: String,
    #[serde(default)]
    action_statement: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    expires_in_days: String,
    #[serde(default)]
    expected_version: String,
}

fn given(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl DecisionForm {
    /// The decision as the service checks it; a number that is not one is
    /// named like the API names a bad field.
    fn raw(&self) -> Result<vexxy_review::RawDecision, String> {
        let expires_in_days = match given(&self.expires_in_days) {
            Some(d) => Some(
                d.parse::<u32>()
                    .map_err(|_| "expires_in_days: a whole number of days, 1..=3650".to_owned())?,
            ),
            None => None,
        };
        let expected_version = match given(&self.expected_version) {
            Some(v) => Some(
                v.parse::<i64>()
                    .map_err(|_| "expected_version: not a version number".to_owned())?,
            ),
            None => None,
        };
        Ok(vexxy_review::RawDecision {
            action: given(&self.action),
            status: given(&self.status),
            justification: given(&self.justification),
            impact_statement: given(&self.impact_statement),
            action_statement: given(&self.action_statement),
            reason: given(&self.reason),
            expires_in_days,
            expected_version,
        })
    }
}

/// A decision as the page lists it.
#[derive(Debug)]
pub(crate) struct DecisionView {
    action: String,
    status: Option<String>,
    justification: Option<String>,
    reason: String,
    author: String,
    at: String,
    expires: Option<String>,
    superseded: bool,
}

fn decision_view(d: &DecisionInfo) -> DecisionView {
    DecisionView {
        action: view::words(&d.action),
        status: d.status.as_deref().map(view::words),
        justification: d.justification.as_deref().map(view::words),
        reason: d.reason.clone(),
        author: d.author.clone(),
        at: view::when(&d.created_at),
        expires: d.expires_at.as_deref().map(view::when),
        superseded: d.superseded_at.is_some(),
    }
}

#[derive(Template)]
#[template(path = "statement.html")]
struct Page {
    title: String,
    layout: Layout,
    s: StatementDetail,
    confidence: String,
    evidence: Vec<vexxy_model::Evidence>,
    decisions: Vec<DecisionView>,
    offered: Option<DecisionView>,
    form: DecisionForm,
    error: Option<String>,
}

const STATUSES: [&str; 4] = ["not_affected", "affected", "fixed", "under_investigation"];

impl Page {
    fn statuses(&self) -> &'static [&'static str] {
        &STATUSES
    }
    fn justifications(&self) -> Vec<&'static str> {
        vexxy_model::Justification::ALL
            .iter()
            .map(|j| j.as_str())
            .collect()
    }
}

async fn show(
    web: &crate::Web,
    signed: &Signed,
    id: &str,
    form: DecisionForm,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let (s, record) = queries::statement_with_record(&web.svc, &signed.caller.org.id, id).await?;
    let evidence = record.verdict.evidence;
    let page = Page {
        title: format!(
            "{} in {}",
            s.statement.vulnerability_id, s.statement.package_name
        ),
        layout: Layout::new(signed, "review"),
        confidence: view::percent(s.statement.confidence),
        evidence,
        decisions: s.decisions.iter().map(decision_view).collect(),
        offered: s.offered_decision.as_ref().map(decision_view),
        // the version the reviewer saw stays what the form sends: a
        // decision refused for another reason must not quietly move on to
        // a version someone else's decision made
        form: if form.expected_version.trim().is_empty() {
            DecisionForm {
                expected_version: s.statement.version.to_string(),
                ..form
            }
        } else {
            form
        },
        error,
        s,
    };
    Ok((status, render(&page)?).into_response())
}

pub(crate) async fn page(
    State(web): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    show(
        &web,
        &signed,
        &id,
        DecisionForm {
            action: "approve".to_owned(),
            ..DecisionForm::default()
        },
        None,
        StatusCode::OK,
    )
    .await
}

/// `POST /statements/{id}/decide`: recorded through the service (the
/// VEX re-issued), then back to the image; refused with the page again
/// and the field named.
pub(crate) async fn decide(
    State(web): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, WebError> {
    signed.check(&headers, &form.csrf)?;
    let raw = match form.raw() {
        Ok(r) => r,
        Err(message) => {
            return show(
                &web,
                &signed,
                &id,
                form,
                Some(message),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    match vexxy_server::review::decide(&web.svc, &signed.caller, &id, raw).await {
        Ok(done) => {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("decided", &done.statement.id);
            if let Some(v) = &done.vex {
                q.append_pair("vex", &v.version.to_string());
            }
            Ok(Redirect::to(&format!(
                "/images/{}?{}#st-{}",
                done.statement.image_digest,
                q.finish(),
                done.statement.id
            ))
            .into_response())
        }
        Err(e)
            if e.status == StatusCode::UNPROCESSABLE_ENTITY || e.status == StatusCode::CONFLICT =>
        {
            let status = e.status;
            show(&web, &signed, &id, form, Some(e.body.message), status).await
        }
        Err(e) => Err(e.into()),
    }
}
