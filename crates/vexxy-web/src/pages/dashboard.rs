//! `GET /`: how the organisation stands.

use askama::Template;
use axum::{extract::State, response::Html};
use vexxy_server::{api_review::Dashboard, queries};

use crate::{
    error::{render, WebError},
    session::Signed,
    view::{self, Layout, WeeklyChart},
    AppState,
};

/// A segment of the verdict bar.
#[derive(Debug)]
pub(crate) struct Segment {
    x: f64,
    width: f64,
    status: String,
    label: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Page {
    title: &'static str,
    layout: Layout,
    d: Dashboard,
    coverage: String,
    noise: String,
    oldest: Option<String>,
    mttd: Option<String>,
    /// (status, words, count)
    statuses: Vec<(String, String, i64)>,
    segments: Vec<Segment>,
    chart: WeeklyChart,
}

/// The verdicts in the order the bar shows them.
const STATUS_ORDER: [&str; 4] = ["not_affected", "fixed", "under_investigation", "affected"];

pub(crate) async fn page(
    State(web): State<AppState>,
    signed: Signed,
) -> Result<Html<String>, WebError> {
    let d = queries::dashboard(&web.svc, &signed.caller.org.id).await?;
    let count = |s: &str| d.by_status.get(s).copied().unwrap_or(0);
    let mut statuses: Vec<(String, String, i64)> = STATUS_ORDER
        .iter()
        .map(|s| ((*s).to_owned(), view::words(s), count(s)))
        .collect();
    // any other key the API reports is shown too, never dropped
    for (k, v) in &d.by_status {
        if !STATUS_ORDER.contains(&k.as_str()) {
            statuses.push((k.clone(), view::words(k), *v));
        }
    }
    let total: i64 = statuses.iter().map(|s| s.2).sum();
    let mut segments = Vec::new();
    let mut x = 0.0;
    for (status, words, n) in &statuses {
        if *n == 0 || total == 0 {
            continue;
        }
        let width = *n as f64 / total as f64 * 1000.0;
        segments.push(Segment {
            x,
            width,
            status: status.clone(),
            label: format!("{words}: {n}"),
        });
        x += width;
    }
    let weeks: Vec<(String, [i64; 3])> = d
        .weekly
        .iter()
        .map(|w| {
            (
                w.week_start.get(5..10).unwrap_or(&w.week_start).to_owned(),
                [w.analyses, w.new_findings, w.decisions],
            )
        })
        .collect();
    let chart = view::weekly_chart(&weeks, ["analyses", "new_findings", "decisions"]);
    render(&Page {
        title: "Dashboard",
        layout: Layout::new(&signed, "dashboard"),
        coverage: view::percent(d.vex_coverage),
        noise: view::percent(d.noise_reduction),
        oldest: d.backlog_oldest_age_secs.map(view::age),
        mttd: d
            .mean_time_to_decision_secs
            .map(|s| view::age(s.round() as i64)),
        statuses,
        segments,
        chart,
        d,
    })
}
