//! `GET /compare?a=&b=`: what changed from one image's current VEX to
//! another's.

use askama::Template;
use axum::{
    extract::{Query, State},
    response::Html,
};
use serde::Deserialize;
use vexxy_server::{api_review::ImageQuery, queries};

use crate::{
    error::{render, WebError},
    session::Signed,
    view::{self, Layout},
    AppState,
};

#[derive(Debug, Deserialize)]
pub(crate) struct Pick {
    #[serde(default)]
    a: String,
    #[serde(default)]
    b: String,
}

/// A choice in the image pickers.
#[derive(Debug)]
pub(crate) struct Choice {
    digest: String,
    label: String,
}

/// One line of the comparison.
#[derive(Debug)]
pub(crate) struct Line {
    vulnerability: String,
    package: String,
    old: String,
    new: String,
    regression: bool,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct Page {
    title: &'static str,
    layout: Layout,
    choices: Vec<Choice>,
    a: String,
    b: String,
    compared: bool,
    unchanged: usize,
    added: Vec<Line>,
    removed: Vec<Line>,
    changed: Vec<Line>,
}

fn state(s: &vexxy_report::VerdictState) -> String {
    match &s.justification {
        Some(j) => format!(
            "{} ({})",
            view::words(s.status.as_str()),
            view::words(j.as_str())
        ),
        None => view::words(s.status.as_str()),
    }
}

pub(crate) async fn page(
    State(web): State<AppState>,
    signed: Signed,
    Query(pick): Query<Pick>,
) -> Result<Html<String>, WebError> {
    let org = &signed.caller.org.id;
    let images = queries::images(
        &web.svc,
        org,
        &ImageQuery {
            limit: Some(1000),
            ..ImageQuery::default()
        },
    )
    .await?;
    let choices = images
        .images
        .iter()
        .map(|i| Choice {
            digest: i.digest.clone(),
            label: format!(
                "{} · {} · {}",
                i.repository,
                view::short_digest(&i.digest),
                view::when(&i.last_analysed_at)
            ),
        })
        .collect();
    let mut page = Page {
        title: "Compare images",
        layout: Layout::new(&signed, "compare"),
        choices,
        a: pick.a.clone(),
        b: pick.b.clone(),
        compared: false,
        unchanged: 0,
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
    };
    if !pick.a.is_empty() && !pick.b.is_empty() {
        let (diff, unchanged) = queries::compare_counting(&web.svc, org, &pick.a, &pick.b).await?;
        page.compared = true;
        page.unchanged = unchanged;
        page.added = diff
            .added
            .iter()
            .map(|e| Line {
                vulnerability: e.key.vulnerability.clone(),
                package: e.key.package.clone(),
                old: String::new(),
                new: state(&e.verdict),
                regression: false,
            })
            .collect();
        page.removed = diff
            .removed
            .iter()
            .map(|e| Line {
                vulnerability: e.key.vulnerability.clone(),
                package: e.key.package.clone(),
                old: state(&e.verdict),
                new: String::new(),
                regression: false,
            })
            .collect();
        page.changed = diff
            .changed
            .iter()
            .map(|c| Line {
                vulnerability: c.key.vulnerability.clone(),
                package: c.key.package.clone(),
                old: state(&c.old),
                new: state(&c.new),
                regression: c.regression,
            })
            .collect();
    }
    render(&page)
}
