//! `GET /images/{digest}`: one image — its current statements with the
//! evidence behind each, what its traced run did, the packages whose code
//! ran, every artifact to download, and the history of its VEX.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::header,
    response::{Html, IntoResponse, Response},
};
use serde::Deserialize;
use vexxy_server::{api_review::StatementQuery, queries};
use vexxy_store::review::StatementRow;

use crate::view::Words as _;
use crate::{
    error::{render, WebError},
    session::Signed,
    view::{self, Flash, Layout},
    AppState,
};

/// The most statements one image page lists.
const MAX_STATEMENTS: i64 = 1000;
/// The most items a profile list shows before "and N more".
const LIST_CAP: usize = 200;

#[derive(Debug, Deserialize)]
pub(crate) struct Filters {
    status: Option<String>,
    severity: Option<String>,
    /// The statement a decision was just recorded on.
    decided: Option<String>,
    /// The VEX version that decision issued.
    vex: Option<i64>,
}

/// A statement as the image page lists it.
#[derive(Debug)]
pub(crate) struct StatementView {
    id: String,
    vulnerability: String,
    package: String,
    version: String,
    purl: String,
    status: String,
    status_words: String,
    justification: Option<String>,
    auto_status: String,
    severity: String,
    confidence: String,
    epss: Option<String>,
    kev: bool,
    in_queue: bool,
    review_reason: Option<String>,
    decided: Option<String>,
    description: Option<String>,
    notes: String,
    aliases: String,
    fixed_versions: String,
    evidence: Vec<vexxy_model::Evidence>,
}

/// A summary of the traced run's execution profile.
#[derive(Debug, Default)]
pub(crate) struct ProfileView {
    job: String,
    command: String,
    duration: String,
    outcome: String,
    executables: Vec<String>,
    libraries: Vec<String>,
    files_opened: usize,
    files: Vec<String>,
    network: Vec<String>,
    functions: Vec<(String, String, u64)>,
    ports: String,
    http_requests: u64,
    more_libraries: usize,
    more_files: usize,
}

/// A package of the runtime SBOM.
#[derive(Debug)]
pub(crate) struct Component {
    name: String,
    version: String,
    purl: String,
}

/// A file to download.
#[derive(Debug)]
pub(crate) struct Download {
    href: String,
    file: String,
    label: String,
}

/// A row of the VEX history.
#[derive(Debug)]
pub(crate) struct VersionView {
    version: i64,
    cause: String,
    author: String,
    at: String,
    document: String,
    envelope: Option<String>,
    attached: bool,
}

#[derive(Template)]
#[template(path = "image.html")]
struct Page {
    title: String,
    layout: Layout,
    digest: String,
    repository: String,
    reference: String,
    analysed: String,
    last_run: Option<String>,
    vex_version: i64,
    counts: [(&'static str, i64); 5],
    status: String,
    severity: String,
    statements: Vec<StatementView>,
    total: i64,
    profile: Option<ProfileView>,
    profile_note: Option<String>,
    components: Vec<Component>,
    downloads: Vec<Download>,
    history: Vec<VersionView>,
}

const STATUSES: [&str; 4] = ["not_affected", "affected", "fixed", "under_investigation"];
const SEVERITIES: [&str; 6] = ["critical", "high", "medium", "low", "negligible", "unknown"];

impl Page {
    fn statuses(&self) -> &'static [&'static str] {
        &STATUSES
    }
    fn severities(&self) -> &'static [&'static str] {
        &SEVERITIES
    }
}

fn statement_view(row: &StatementRow, decided: Option<String>) -> StatementView {
    let record = vexxy_review::StatementRecord::from_json(&row.record).ok();
    let (description, notes, aliases, fixed, evidence) = match record {
        Some(r) => (
            r.description,
            r.verdict.notes,
            r.aliases.join(", "),
            r.fixed_versions.join(", "),
            r.verdict.evidence,
        ),
        None => (
            None,
            String::new(),
            String::new(),
            String::new(),
            Vec::new(),
        ),
    };
    StatementView {
        id: row.id.clone(),
        vulnerability: row.vulnerability_id.clone(),
        package: row.package_name.clone(),
        version: row.package_version.clone(),
        purl: row.package_purl.clone().unwrap_or_default(),
        status_words: view::words(&row.status),
        status: row.status.clone(),
        justification: row.justification.as_deref().map(view::words),
        auto_status: view::words(&row.auto_status),
        severity: row.severity.clone(),
        confidence: view::percent(row.auto_confidence),
        epss: row.epss.map(view::percent),
        kev: row.kev,
        in_queue: row.in_queue,
        review_reason: row.review_reason.as_deref().map(view::words),
        decided,
        description,
        notes,
        aliases,
        fixed_versions: fixed,
        evidence,
    }
}

pub(crate) async fn page(
    State(web): State<AppState>,
    signed: Signed,
    Path(digest): Path<String>,
    Query(f): Query<Filters>,
) -> Result<Html<String>, WebError> {
    let svc = &web.svc;
    let org = &signed.caller.org.id;
    let image = queries::image(svc, org, &digest).await?;
    let status = f
        .status
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_default();
    let severity = f
        .severity
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_default();
    let (rows, total, ..) = queries::statement_rows(
        svc,
        org,
        &StatementQuery {
            image: Some(image.digest.clone()),
            status: (!status.is_empty()).then(|| status.clone()),
            severity: (!severity.is_empty()).then(|| severity.clone()),
            sort: Some("risk".to_owned()),
            limit: Some(MAX_STATEMENTS),
            ..StatementQuery::default()
        },
        false,
    )
    .await?;
    let mut statements = Vec::with_capacity(rows.len());
    for row in &rows {
        let decided = match &row.decision_id {
            Some(id) => svc.store.decision(org, id).await?.map(|d| {
                format!(
                    "{} by {} on {}: {}",
                    view::words(&d.action),
                    d.author,
                    view::when(&vexxy_server::api::rfc3339(d.created_at)),
                    d.reason
                )
            }),
            None => None,
        };
        statements.push(statement_view(row, decided));
    }
    let history: Vec<VersionView> = queries::vex_history(svc, org, &image.digest)
        .await?
        .versions
        .into_iter()
        .map(|v| VersionView {
            document: format!("/images/{}/vex/{}.json", image.digest, v.version),
            envelope: v
                .envelope_digest
                .as_ref()
                .map(|_| format!("/images/{}/vex/{}.intoto.json", image.digest, v.version)),
            attached: v
                .attestation
                .as_ref()
                .is_some_and(|a| a.status == "attached"),
            version: v.version,
            cause: v.cause,
            author: v.author,
            at: view::when(&v.created_at),
        })
        .collect();
    let mut downloads = Vec::new();
    if image.findings > 0 && image.vex_version > 0 {
        downloads.push(Download {
            href: format!("/images/{}/vex/{}.json", image.digest, image.vex_version),
            file: format!("vex-v{}.openvex.json", image.vex_version),
            label: format!("Current OpenVEX (version {})", image.vex_version),
        });
    }
    // the latest analysis's own artifacts
    if let Ok((_, artifacts)) =
        queries::completed(svc, &signed.caller, &image.last_analysis_job).await
    {
        for a in &artifacts {
            downloads.push(Download {
                href: format!("/jobs/{}/artifacts/{}", image.last_analysis_job, a.name),
                file: a.name.clone(),
                label: format!("{} ({})", a.name, human_bytes(a.size)),
            });
        }
    }
    let (profile, profile_note, components) = match &image.last_run_job {
        Some(job) => run_evidence(&web, &signed, job).await,
        None => (
            None,
            Some(
                "This image has no traced run yet (its verdicts come from a report alone)."
                    .to_owned(),
            ),
            Vec::new(),
        ),
    };
    let mut layout = Layout::new(&signed, "images");
    if let Some(id) = &f.decided {
        if let Some(s) = statements.iter().find(|s| &s.id == id) {
            layout.flash = Some(Flash {
                text: match f.vex {
                    Some(v) => format!(
                        "Decision recorded on {} in {}; VEX version {v} issued.",
                        s.vulnerability, s.package
                    ),
                    None => format!(
                        "Decision recorded on {} in {}; the VEX was not re-issued (see the service log).",
                        s.vulnerability, s.package
                    ),
                },
                vex_version: f.vex,
            });
        }
    }
    render(&Page {
        title: format!(
            "{} · {}",
            image.repository,
            view::short_digest(&image.digest)
        ),
        layout,
        digest: image.digest.clone(),
        repository: image.repository.clone(),
        reference: image.reference.clone(),
        analysed: view::when(&vexxy_server::api::rfc3339(image.last_analysed_at)),
        last_run: image
            .last_run_at
            .map(|t| view::when(&vexxy_server::api::rfc3339(t))),
        vex_version: image.vex_version,
        counts: [
            ("findings", image.findings),
            ("not_affected", image.not_affected),
            ("affected", image.affected),
            ("under_investigation", image.under_investigation),
            ("unreviewed", image.unreviewed),
        ],
        status,
        severity,
        statements,
        total,
        profile,
        profile_note,
        components,
        downloads,
        history,
    })
}

fn human_bytes(n: i64) -> String {
    match n {
        n if n < 10 * 1024 => format!("{n} B"),
        n if n < 10 * 1024 * 1024 => format!("{} KiB", n / 1024),
        n => format!("{} MiB", n / (1024 * 1024)),
    }
}

/// The run's profile summary and runtime SBOM, from the run job's
/// artifacts; a note instead when they cannot be read (expired, missing).
async fn run_evidence(
    web: &crate::Web,
    signed: &Signed,
    job: &str,
) -> (Option<ProfileView>, Option<String>, Vec<Component>) {
    let svc = &web.svc;
    let artifacts = match queries::completed(svc, &signed.caller, job).await {
        Ok((_, a)) => a,
        Err(e) => {
            return (
                None,
                Some(format!(
                    "The run's evidence cannot be shown: {}",
                    e.body.message
                )),
                Vec::new(),
            )
        }
    };
    let read = |name: &'static str| {
        let found = artifacts.iter().find(|a| a.name == name).cloned();
        async move {
            match found {
                Some(a) => queries::artifact_bytes(svc, job, &a).await.ok(),
                None => None,
            }
        }
    };
    let profile = match read("profile.json").await {
        Some(bytes) => vexxy_profile::parse(&bytes, "profile.json")
            .ok()
            .map(|p| profile_view(job, &p)),
        None => None,
    };
    let components = read("sbom.runtime.cdx.json")
        .await
        .map(|b| runtime_components(&b))
        .unwrap_or_default();
    let note = profile
        .is_none()
        .then(|| "The run's execution profile is not stored.".to_owned());
    (profile, note, components)
}

fn profile_view(job: &str, p: &vexxy_model::ExecutionProfile) -> ProfileView {
    let libraries: Vec<String> = p.loaded_libraries.iter().map(|l| l.path.clone()).collect();
    let files: Vec<String> = p.files.iter().map(|f| f.path.clone()).collect();
    ProfileView {
        job: job.to_owned(),
        command: p.run.command.join(" "),
        duration: format!("{:.1} s", p.run.duration_ms as f64 / 1000.0),
        outcome: format!("{:?}", p.run.outcome),
        executables: p.executables.iter().map(|e| e.path.clone()).collect(),
        more_libraries: libraries.len().saturating_sub(LIST_CAP),
        libraries: libraries.into_iter().take(LIST_CAP).collect(),
        files_opened: files.len(),
        more_files: files.len().saturating_sub(LIST_CAP),
        files: files.into_iter().take(LIST_CAP).collect(),
        network: p
            .network
            .iter()
            .map(|n| {
                format!(
                    "{:?} {:?} ({} ok, {} failed)",
                    n.op, n.address, n.ok, n.failed
                )
            })
            .collect(),
        functions: p
            .functions
            .iter()
            .map(|f| (f.library.clone(), f.symbol.clone(), f.calls))
            .collect(),
        ports: p
            .exercise
            .ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        http_requests: p.exercise.http_requests,
    }
}

/// The components of a CycloneDX SBOM (name, version, purl).
fn runtime_components(bytes: &[u8]) -> Vec<Component> {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Vec::new();
    };
    let text =
        |c: &serde_json::Value, k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    doc.get("components")
        .and_then(|c| c.as_array())
        .map(|list| {
            list.iter()
                .map(|c| Component {
                    name: text(c, "name"),
                    version: text(c, "version"),
                    purl: text(c, "purl"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn attachment(media: &str, file: &str, bytes: Vec<u8>) -> Response {
    // a download, never a page of this origin: attacker-shaped content
    // (reports, SBOMs) cannot run here; only inert types keep their name
    let lower = media.to_ascii_lowercase();
    let essence = lower.split(';').next().unwrap_or("").trim();
    let media = if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
        || essence == "text/csv"
        || essence == "text/markdown"
        || essence == "text/plain"
    {
        media
    } else {
        "application/octet-stream"
    };
    let safe: String = file
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, media.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe}\""),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_owned(),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// `GET /images/{digest}/vex/{N}.json` (the document) or
/// `{N}.intoto.json` (its signed envelope).
pub(crate) async fn vex_download(
    State(web): State<AppState>,
    signed: Signed,
    Path((digest, file)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (number, envelope) = if let Some(n) = file.strip_suffix(".intoto.json") {
        (n, true)
    } else if let Some(n) = file.strip_suffix(".json") {
        (n, false)
    } else {
        return Err(
            vexxy_server::error::ApiError::not_found(format!("{file} of image {digest}")).into(),
        );
    };
    let version = number.parse::<i64>().map_err(|_| {
        WebError::from(vexxy_server::error::ApiError::not_found(format!(
            "version {number:?} of image {digest}"
        )))
    })?;
    let (v, bytes) = queries::vex_blob(
        &web.svc,
        &signed.caller.org.id,
        &digest,
        Some(version),
        envelope,
    )
    .await?;
    let (media, name) = if envelope {
        (
            vexxy_server::tenant::ATTESTATION_MEDIA_TYPE,
            format!("vex-v{v}.openvex.intoto.json"),
        )
    } else {
        ("application/json", format!("vex-v{v}.openvex.json"))
    };
    Ok(attachment(media, &name, bytes))
}

/// `GET /jobs/{id}/artifacts/{name}`: one artifact of a complete job.
pub(crate) async fn artifact_download(
    State(web): State<AppState>,
    signed: Signed,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (a, bytes) = queries::artifact(&web.svc, &signed.caller, &id, &name).await?;
    Ok(attachment(&a.media_type, &a.name, bytes))
}
