//! `vexxy images`, `vexxy compare` and `vexxy report`: what the service
//! knows about the images it analysed, their VEX documents, comparisons of
//! two images' current VEX and the organisation's reports. Thin callers of
//! the REST API (`/api/v1/images`, `/api/v1/compare`,
//! `/api/v1/compliance`, `/api/v1/dashboard`) with the service client's
//! exit codes.

use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use vexxy_report::VerdictDiff;
use vexxy_server::api_review::{
    CompareQuery, Compliance, Dashboard, FormatQuery, ImageInfo, ImageList, ImageQuery, VexHistory,
};

use super::{
    client::{api_error, path_segment, pretty, Client, MAX_JSON_BYTES, NO_BODY},
    review::{digest_of, plain, query_string, render_table, short_digest},
};
use crate::{
    cli::{
        CompareArgs, ComplianceArgs, ComplianceFormat, DashboardArgs, DiffFormat, ImageShowArgs,
        ImageVexArgs, ImagesCommand, ImagesListArgs, ReportCommand,
    },
    exit::Exit,
    output,
};

pub(crate) fn run(cmd: &ImagesCommand) -> Result<Exit> {
    match cmd {
        ImagesCommand::List(a) => list(a),
        ImagesCommand::Show(a) => show(a),
        ImagesCommand::Vex(a) => vex(a),
    }
}

pub(crate) fn report(cmd: &ReportCommand) -> Result<Exit> {
    match cmd {
        ReportCommand::Compliance(a) => compliance(a),
        ReportCommand::Dashboard(a) => dashboard(a),
    }
}

/// `GET /api/v1/compare?a=…&b=…` for two images given as digests or
/// references.
pub(crate) fn compare_path(args: &CompareArgs) -> Result<String> {
    let q = CompareQuery {
        a: digest_of(&args.image_a)?,
        b: digest_of(&args.image_b)?,
    };
    Ok(format!("/api/v1/compare{}", query_string(&q)?))
}

/// The diff as `vexxy diff` renders it.
pub(crate) fn render_diff(d: &VerdictDiff, format: DiffFormat) -> Result<String> {
    Ok(match format {
        DiffFormat::Text => d.to_text(),
        DiffFormat::Markdown => d.to_markdown(),
        DiffFormat::Json => d.to_json().context("rendering the comparison")?,
    })
}

pub(crate) fn compare(args: &CompareArgs) -> Result<Exit> {
    let path = compare_path(args)?;
    let client = Client::new(&args.server)?;
    let (_, d): (u16, VerdictDiff) = client.json(
        &format!("comparing {} with {}", args.image_a, args.image_b),
        "GET",
        &path,
        NO_BODY,
        &[200],
    )?;
    output::print(&render_diff(&d, args.format)?);
    if args.fail_on_regression && d.regressions() > 0 {
        return Ok(Exit::Undecided);
    }
    Ok(Exit::Done)
}

fn compliance(args: &ComplianceArgs) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let what = "fetching the compliance report";
    let bytes = match args.format {
        ComplianceFormat::Csv => {
            let q = FormatQuery {
                format: Some("csv".into()),
            };
            let path = format!("/api/v1/compliance{}", query_string(&q)?);
            let (code, bytes) = client.request(what, "GET", &path, None, MAX_JSON_BYTES)?;
            if code != 200 {
                return Err(api_error(what, code, &bytes).into());
            }
            bytes
        }
        ComplianceFormat::Json | ComplianceFormat::Table => {
            let (_, c): (u16, Compliance) =
                client.json(what, "GET", "/api/v1/compliance", NO_BODY, &[200])?;
            if args.format == ComplianceFormat::Json {
                format!("{}\n", pretty(&c)?).into_bytes()
            } else {
                compliance_table(&c).into_bytes()
            }
        }
    };
    output::write(args.output.as_deref(), &bytes).context("writing the compliance report")?;
    Ok(Exit::Done)
}

/// One line per repository.
pub(crate) fn compliance_table(c: &Compliance) -> String {
    let mut rows = vec![[
        "REPOSITORY",
        "IMAGE",
        "IMAGES",
        "FINDINGS",
        "NOT_AFFECTED",
        "NEEDS_FIX",
        "UNDER_INVESTIGATION",
        "UNREVIEWED",
    ]
    .map(str::to_owned)
    .to_vec()];
    for r in &c.repositories {
        rows.push(vec![
            r.repository.clone(),
            short_digest(&r.image_digest),
            r.images.to_string(),
            r.total.to_string(),
            r.not_affected.to_string(),
            r.needs_fix.to_string(),
            r.under_investigation.to_string(),
            r.unreviewed.to_string(),
        ]);
    }
    if c.repositories.is_empty() {
        return "no analysed images\n".to_owned();
    }
    render_table(&rows)
}

fn dashboard(args: &DashboardArgs) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let (_, d): (u16, Dashboard) = client.json(
        "fetching the dashboard",
        "GET",
        "/api/v1/dashboard",
        NO_BODY,
        &[200],
    )?;
    if args.json {
        output::print(&format!("{}\n", pretty(&d)?));
    } else {
        output::print(&dashboard_text(&d));
    }
    Ok(Exit::Done)
}

fn percent(ratio: f64) -> String {
    format!("{:.0}%", ratio * 100.0)
}

/// `3 d 4 h`, `5 h 2 min`, `40 s`.
fn age(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

pub(crate) fn dashboard_text(d: &Dashboard) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "images     {} seen, {} analysed, {} with VEX ({} coverage)",
        d.images_seen,
        d.images_analysed,
        d.images_with_vex,
        percent(d.vex_coverage)
    );
    let by_status: Vec<String> = d
        .by_status
        .iter()
        .map(|(k, v)| format!("{} {v}", plain(k)))
        .collect();
    let _ = writeln!(
        out,
        "findings   {}{} ({} settled not_affected)",
        d.findings,
        if by_status.is_empty() {
            String::new()
        } else {
            format!(": {}", by_status.join(", "))
        },
        percent(d.noise_reduction)
    );
    let _ = writeln!(
        out,
        "backlog    {} to review{}",
        d.backlog,
        d.backlog_oldest_age_secs
            .map(|s| format!(", oldest {}", age(s as f64)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "decisions  {}{}",
        d.decisions,
        d.mean_time_to_decision_secs
            .map(|s| format!(", {} on average after the finding", age(s)))
            .unwrap_or_default()
    );
    if !d.weekly.is_empty() {
        out.push('\n');
        let mut rows = vec![["WEEK", "ANALYSES", "NEW_FINDINGS", "DECISIONS"]
            .map(str::to_owned)
            .to_vec()];
        for w in &d.weekly {
            rows.push(vec![
                w.week_start.get(..10).unwrap_or(&w.week_start).to_owned(),
                w.analyses.to_string(),
                w.new_findings.to_string(),
                w.decisions.to_string(),
            ]);
        }
        out.push_str(&render_table(&rows));
    }
    out
}

fn list(args: &ImagesListArgs) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let q = ImageQuery {
        repository: args.repository.clone(),
        search: args.search.clone(),
        limit: args.limit,
        offset: args.offset,
    };
    let (_, answer): (u16, ImageList) = client.json(
        "listing images",
        "GET",
        &format!("/api/v1/images{}", query_string(&q)?),
        NO_BODY,
        &[200],
    )?;
    if args.json {
        output::print(&format!("{}\n", pretty(&answer)?));
        return Ok(Exit::Done);
    }
    if answer.images.is_empty() {
        eprintln!("no images match (of {})", answer.total);
        return Ok(Exit::Done);
    }
    let mut rows = vec![[
        "IMAGE",
        "REPOSITORY",
        "VEX",
        "FINDINGS",
        "NOT_AFFECTED",
        "AFFECTED",
        "UNDER_INVESTIGATION",
        "UNREVIEWED",
        "ANALYSED",
    ]
    .map(str::to_owned)
    .to_vec()];
    for i in &answer.images {
        rows.push(vec![
            short_digest(&i.digest),
            i.repository.clone(),
            if i.vex_version > 0 {
                format!("v{}", i.vex_version)
            } else {
                "-".to_owned()
            },
            i.findings.to_string(),
            i.not_affected.to_string(),
            i.affected.to_string(),
            i.under_investigation.to_string(),
            i.unreviewed.to_string(),
            i.last_analysed_at.clone(),
        ]);
    }
    output::print(&render_table(&rows));
    let last = answer.offset + answer.images.len() as i64;
    eprintln!(
        "{}–{last} of {}{}",
        answer.offset + 1,
        answer.total,
        if last < answer.total {
            format!(" (--offset {last} for more)")
        } else {
            String::new()
        }
    );
    Ok(Exit::Done)
}

fn image_path(image: &str) -> Result<String> {
    Ok(format!(
        "/api/v1/images/{}",
        path_segment(&digest_of(image)?)
    ))
}

fn show(args: &ImageShowArgs) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let (_, i): (u16, ImageInfo) = client.json(
        &format!("fetching image {}", args.image),
        "GET",
        &image_path(&args.image)?,
        NO_BODY,
        &[200],
    )?;
    if args.json {
        output::print(&format!("{}\n", pretty(&i)?));
        return Ok(Exit::Done);
    }
    let mut out = String::new();
    for (k, v) in [
        ("image", Some(format!("{}@{}", i.repository, i.digest))),
        ("reference", Some(i.reference.clone())),
        ("first seen", Some(i.first_seen_at.clone())),
        (
            "analysed",
            Some(format!(
                "{} (job {})",
                i.last_analysed_at, i.last_analysis_id
            )),
        ),
        (
            "last run",
            i.last_run_at.as_ref().map(|at| {
                format!(
                    "{at}{}",
                    i.last_run_id
                        .as_deref()
                        .map(|j| format!(" (job {j})"))
                        .unwrap_or_default()
                )
            }),
        ),
        (
            "vex",
            Some(if i.vex_version > 0 {
                format!("version {}", i.vex_version)
            } else {
                "none issued".to_owned()
            }),
        ),
        (
            "findings",
            Some(format!(
                "{}: not_affected {}, affected {}, under_investigation {}; {} unreviewed",
                i.findings, i.not_affected, i.affected, i.under_investigation, i.unreviewed
            )),
        ),
    ] {
        if let Some(v) = v {
            let _ = writeln!(out, "{k:<11} {}", plain(&v));
        }
    }
    output::print(&out);
    Ok(Exit::Done)
}

fn vex(args: &ImageVexArgs) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let base = image_path(&args.image)?;
    let history = || -> Result<VexHistory> {
        Ok(client
            .json(
                &format!("fetching the VEX history of {}", args.image),
                "GET",
                &format!("{base}/vex/history"),
                NO_BODY,
                &[200],
            )?
            .1)
    };
    if args.history {
        let h = history()?;
        if args.json {
            output::print(&format!("{}\n", pretty(&h)?));
            return Ok(Exit::Done);
        }
        let mut rows = vec![[
            "VERSION", "CAUSE", "AUTHOR", "CREATED", "SIGNED", "DOCUMENT",
        ]
        .map(str::to_owned)
        .to_vec()];
        for v in &h.versions {
            rows.push(vec![
                v.version.to_string(),
                v.cause.clone(),
                v.author.clone(),
                v.created_at.clone(),
                if v.envelope_digest.is_some() {
                    "yes".into()
                } else {
                    "no".into()
                },
                v.document_digest.clone(),
            ]);
        }
        output::print(&render_table(&rows));
        return Ok(Exit::Done);
    }
    let version = match (args.version, args.envelope) {
        (Some(v), _) => Some(v),
        // the envelope is served per version: the current one's
        (None, true) => Some(
            history()?
                .versions
                .iter()
                .map(|v| v.version)
                .max()
                .with_context(|| format!("image {}: no VEX issued", args.image))
                .map_err(|e| crate::exit::BadInput(format!("{e:#}")))?,
        ),
        (None, false) => None,
    };
    let path = match (version, args.envelope) {
        (Some(v), true) => format!("{base}/vex/{v}/envelope"),
        (Some(v), false) => format!("{base}/vex/{v}"),
        (None, _) => format!("{base}/vex"),
    };
    let what = format!(
        "fetching the {} of {}",
        if args.envelope { "envelope" } else { "VEX" },
        args.image
    );
    let (code, bytes) = client.request(&what, "GET", &path, None, MAX_JSON_BYTES)?;
    if code != 200 {
        return Err(api_error(&what, code, &bytes).into());
    }
    output::write(args.output.as_deref(), &bytes).with_context(|| format!("writing {what}"))?;
    Ok(Exit::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use std::collections::BTreeMap;
    use vexxy_model::{Justification, Status};
    use vexxy_report::{DiffKey, DiffSide, SideInfo, VerdictState};

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn compare_args(argv: &[&str]) -> CompareArgs {
        let mut full = vec!["vexxy", "compare", "--api-key", "k"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Compare(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn compare_names_two_digests() {
        let enc = |d: &str| d.replace(':', "%3A");
        for (argv, want) in [
            (
                vec![A, B],
                Some(format!("/api/v1/compare?a={}&b={}", enc(A), enc(B))),
            ),
            (
                vec![&format!("registry.example/app@{A}") as &str, B],
                Some(format!("/api/v1/compare?a={}&b={}", enc(A), enc(B))),
            ),
            (vec!["registry.example/app:1.0", B], None),
            (vec![A, "sha256:bb"], None),
        ] {
            let got = compare_path(&compare_args(&argv));
            match want {
                Some(w) => assert_eq!(got.unwrap(), w, "{argv:?}"),
                None => {
                    let err = got.unwrap_err();
                    assert_eq!(crate::exit::classify(&err), Exit::BadInput, "{argv:?}");
                }
            }
        }
    }

    fn side(
        product: &str,
        verdicts: &[(&str, &str, Status, Option<Justification>, &str)],
    ) -> DiffSide {
        DiffSide {
            info: SideInfo {
                origin: None,
                document_id: Some(format!("urn:doc:{product}")),
                author: "vexxy".into(),
                timestamp: "2026-01-01T00:00:00Z".into(),
                products: vec![product.into()],
            },
            verdicts: verdicts
                .iter()
                .map(|(v, p, status, j, version)| {
                    (
                        DiffKey {
                            vulnerability: (*v).into(),
                            package: (*p).into(),
                        },
                        VerdictState {
                            status: *status,
                            justification: *j,
                            versions: vec![(*version).into()],
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    /// What the service sends (its `VerdictDiff` as JSON) renders here
    /// exactly as `vexxy diff` renders the diff itself.
    #[test]
    fn a_diff_read_back_renders_as_vexxy_diff() {
        let old = side(
            "app@sha256:aa",
            &[
                (
                    "CVE-1",
                    "pkg:deb/debian/a",
                    Status::NotAffected,
                    Some(Justification::VulnerableCodeNotInExecutePath),
                    "1",
                ),
                ("CVE-2", "pkg:deb/debian/b", Status::Affected, None, "1"),
                (
                    "CVE-3",
                    "pkg:deb/debian/c",
                    Status::UnderInvestigation,
                    None,
                    "1",
                ),
            ],
        );
        let new = side(
            "app@sha256:bb",
            &[
                ("CVE-1", "pkg:deb/debian/a", Status::Affected, None, "2"),
                (
                    "CVE-3",
                    "pkg:deb/debian/c",
                    Status::NotAffected,
                    Some(Justification::ComponentNotPresent),
                    "1",
                ),
                ("CVE-4", "pkg:deb/debian/d", Status::Fixed, None, "1"),
            ],
        );
        let d = vexxy_report::diff(&old, &new);
        assert_eq!(d.regressions(), 1);
        let wire = d.to_json().unwrap();
        let back: VerdictDiff = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, d);
        for format in [DiffFormat::Text, DiffFormat::Markdown, DiffFormat::Json] {
            assert_eq!(
                render_diff(&back, format).unwrap(),
                render_diff(&d, format).unwrap()
            );
        }
        let bad = wire.replace("\"affected\"", "\"sort_of\"");
        assert!(serde_json::from_str::<VerdictDiff>(&bad).is_err());
    }

    #[test]
    fn ages_read_well() {
        for (secs, want) in [
            (40.0, "40 s"),
            (120.0, "2 min"),
            (3_700.0, "1 h 1 min"),
            (90_000.0, "1 d 1 h"),
        ] {
            assert_eq!(age(secs), want);
        }
    }
}
