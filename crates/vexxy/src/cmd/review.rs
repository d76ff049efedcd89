//! `vexxy review`: the human loop of the service from the command line.
//! Thin callers of the REST API (`/api/v1/statements`, `/api/v1/review`):
//! flags become the server's own wire types ([`vexxy_server::api_review`]),
//! answers are printed as tables and lines for people or as the service's
//! JSON (`--json`). Nothing is decided here: the service checks every
//! decision (OpenVEX rules, the statement's version) and answers with the
//! exit codes of the service client (`client.rs`).

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;
use vexxy_server::api_review::{
    AssignRequest, BulkDecisionRequest, BulkDecisionResponse, DecisionInfo, DecisionRequest,
    DecisionResponse, ReviewSettings, StatementDetail, StatementInfo, StatementList,
    StatementQuery,
};

use super::client::{path_segment, pretty, Client, NO_BODY};
use crate::{
    cli::{
        AssignArgs, BulkAction, BulkArgs, BulkCommonArgs, DecisionArgs, ReviewCommand,
        ReviewListArgs, ReviewShowArgs, SettingsArgs, StatementFilterArgs,
    },
    exit::{BadInput, Exit},
    output,
};

pub(crate) fn run(cmd: &ReviewCommand) -> Result<Exit> {
    match cmd {
        ReviewCommand::List(a) => list(a),
        ReviewCommand::Show(a) => show(a),
        ReviewCommand::Approve(_)
        | ReviewCommand::Override(_)
        | ReviewCommand::Revert(_)
        | ReviewCommand::AcceptOffer(_) => {
            let (args, body) =
                decision_request(cmd).ok_or_else(|| anyhow::anyhow!("not a decision command"))?;
            decide(args, &body)
        }
        ReviewCommand::Assign(a) => assign(a),
        ReviewCommand::Bulk(a) => bulk(a),
        ReviewCommand::Settings(a) => settings(a),
    }
}

// ---------------------------------------------------------------------------
// flags → requests (pure; tested below)

/// An image named by its digest: `sha256:<64 hex>` or
/// `REPOSITORY@sha256:<64 hex>`; the digest, lowercase.
pub(crate) fn digest_of(image: &str) -> Result<String, BadInput> {
    let trimmed = image.trim();
    let digest = trimmed.rsplit_once('@').map_or(trimmed, |(_, d)| d);
    let hex = digest
        .strip_prefix("sha256:")
        .or_else(|| digest.strip_prefix("SHA256:"))
        .unwrap_or_default();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
    } else {
        Err(BadInput(format!(
            "{image:?} names no image digest: give sha256:<64 hex digits> or REPOSITORY@sha256:…"
        )))
    }
}

/// The service's statement filter from the filter flags.
pub(crate) fn statement_query(f: &StatementFilterArgs) -> Result<StatementQuery, BadInput> {
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    if let (Some(min), Some(max)) = (f.min_confidence, f.max_confidence) {
        if min > max {
            return Err(BadInput(format!(
                "--min-confidence {min} is above --max-confidence {max}"
            )));
        }
    }
    Ok(StatementQuery {
        repository: text(&f.repository),
        image: text(&f.image).map(|i| digest_of(&i)).transpose()?,
        vulnerability: text(&f.vulnerability),
        package: text(&f.package),
        status: text(&f.status),
        severity: text(&f.severity),
        min_confidence: f.min_confidence,
        max_confidence: f.max_confidence,
        reason: text(&f.review_reason),
        assignee: text(&f.assignee),
        include_absent: f.include_absent,
        sort: None,
        limit: None,
        offset: None,
    })
}

/// `GET` path of a listing: the statements or the queue, with the query.
pub(crate) fn list_path(args: &ReviewListArgs) -> Result<String> {
    let mut q = statement_query(&args.filter)?;
    q.sort = args.sort.map(|s| s.as_str().to_owned());
    q.limit = args.limit;
    q.offset = args.offset;
    let base = if args.queue {
        "/api/v1/review/queue"
    } else {
        "/api/v1/statements"
    };
    Ok(format!("{base}{}", query_string(&q)?))
}

/// A query string (`?a=1&b=x`, or empty) of a wire type's fields, in
/// their order, leaving out what is not given (null, false).
pub(crate) fn query_string(q: &impl Serialize) -> Result<String> {
    let Value::Object(map) = serde_json::to_value(q)? else {
        anyhow::bail!("a query is not an object");
    };
    let mut parts = Vec::new();
    for (k, v) in map {
        let text = match v {
            Value::Null | Value::Bool(false) => continue,
            Value::Bool(true) => "true".to_owned(),
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => anyhow::bail!("query parameter {k}: {other} is not a scalar"),
        };
        parts.push(format!(
            "{}={}",
            query_component(&k),
            query_component(&text)
        ));
    }
    Ok(if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    })
}

/// Percent-encodes all but the unreserved characters.
fn query_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The statement and the body of a decision command (approve, override,
/// revert, accept-offer); `None` for the other commands.
pub(crate) fn decision_request(cmd: &ReviewCommand) -> Option<(&DecisionArgs, DecisionRequest)> {
    let base = |action: &str, d: &DecisionArgs, expires: Option<u32>| DecisionRequest {
        action: action.to_owned(),
        reason: Some(d.reason.clone()),
        expires_in_days: expires,
        expected_version: d.expected_version,
        ..DecisionRequest::default()
    };
    Some(match cmd {
        ReviewCommand::Approve(a) => (
            &a.decision,
            base("approve", &a.decision, a.expiry.expires_in_days),
        ),
        ReviewCommand::Override(a) => {
            let v = &a.verdict;
            let mut body = base("override", &a.decision, a.expiry.expires_in_days);
            body.status = Some(v.status.clone());
            body.justification.clone_from(&v.justification);
            body.impact_statement.clone_from(&v.impact_statement);
            body.action_statement.clone_from(&v.action_statement);
            (&a.decision, body)
        }
        ReviewCommand::Revert(a) => (&a.decision, base("revert", &a.decision, None)),
        ReviewCommand::AcceptOffer(a) => (
            &a.decision,
            base("accept_offer", &a.decision, a.expiry.expires_in_days),
        ),
        _ => return None,
    })
}

/// The body of a bulk decision, and the flags all bulk actions share.
pub(crate) fn bulk_request(args: &BulkArgs) -> Result<(&BulkCommonArgs, BulkDecisionRequest)> {
    let (common, action, expires) = match &args.action {
        BulkAction::Approve(a) => (&a.common, "approve", a.expiry.expires_in_days),
        BulkAction::Override(a) => (&a.common, "override", a.expiry.expires_in_days),
        BulkAction::Revert(a) => (&a.common, "revert", None),
    };
    let mut body = BulkDecisionRequest {
        filter: statement_query(&common.filter)?,
        action: action.to_owned(),
        status: None,
        justification: None,
        impact_statement: None,
        action_statement: None,
        reason: Some(common.reason.clone()),
        expires_in_days: expires,
    };
    if let BulkAction::Override(a) = &args.action {
        let v = &a.verdict;
        body.status = Some(v.new_status.clone());
        body.justification.clone_from(&v.justification);
        body.impact_statement.clone_from(&v.impact_statement);
        body.action_statement.clone_from(&v.action_statement);
    }
    Ok((common, body))
}

/// The body of an assignment.
pub(crate) fn assign_request(args: &AssignArgs) -> AssignRequest {
    AssignRequest {
        assignee: if args.clear { None } else { args.to.clone() },
        expected_version: args.expected_version,
    }
}

/// The settings to store (`None`: no flag given, only show them).
pub(crate) fn settings_update(
    current: &ReviewSettings,
    args: &SettingsArgs,
) -> Option<ReviewSettings> {
    if args.review_below.is_none()
        && args.four_eyes.is_none()
        && args.rerun_after_days.is_none()
        && !args.no_rerun
    {
        return None;
    }
    let mut new = current.clone();
    if let Some(v) = args.review_below {
        new.review_below = v;
    }
    if let Some(v) = args.four_eyes {
        new.four_eyes = v;
    }
    if args.no_rerun {
        new.rerun_after_days = None;
    } else if let Some(d) = args.rerun_after_days {
        new.rerun_after_days = Some(d);
    }
    Some(new)
}

// ---------------------------------------------------------------------------
// the commands

fn list(args: &ReviewListArgs) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let what = if args.queue {
        "listing the review queue"
    } else {
        "listing statements"
    };
    let (_, answer): (u16, StatementList) =
        client.json(what, "GET", &list_path(args)?, NO_BODY, &[200])?;
    if args.json {
        output::print(&format!("{}\n", pretty(&answer)?));
        return Ok(Exit::Done);
    }
    if answer.statements.is_empty() {
        eprintln!(
            "{} (of {})",
            if args.queue {
                "nothing needs review"
            } else {
                "no statements match"
            },
            answer.total
        );
        return Ok(Exit::Done);
    }
    output::print(&statement_table(&answer.statements));
    let shown = answer.statements.len() as i64;
    let first = answer.offset + 1;
    let last = answer.offset + shown;
    if last < answer.total {
        eprintln!(
            "{first}–{last} of {} (--offset {last} for more)",
            answer.total
        );
    } else {
        eprintln!("{first}–{last} of {}", answer.total);
    }
    Ok(Exit::Done)
}

/// `sha256:0123456789ab`: enough of a digest to tell images apart.
pub(crate) fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let short: String = hex.chars().take(12).collect();
    if digest.starts_with("sha256:") {
        format!("sha256:{short}")
    } else {
        short
    }
}

/// One line per statement; the effective status carries `*` when a person
/// decided it, `!` when the statement is in the review queue.
pub(crate) fn statement_table(rows: &[StatementInfo]) -> String {
    let mut table = vec![[
        "ID",
        "IMAGE",
        "VULNERABILITY",
        "PACKAGE",
        "SEVERITY",
        "STATUS",
        "CONFIDENCE",
        "REASON",
    ]
    .map(str::to_owned)
    .to_vec()];
    for s in rows {
        let mut status = s.status.clone();
        if s.decision_id.is_some() {
            status.push('*');
        }
        if s.in_queue {
            status.push('!');
        }
        let mut package = format!("{} {}", s.package_name, s.package_version);
        if !s.present {
            package.push_str(" (gone)");
        }
        table.push(vec![
            s.id.clone(),
            short_digest(&s.image_digest),
            s.vulnerability_id.clone(),
            package,
            s.severity.clone(),
            status,
            format!("{:.2}", s.confidence),
            s.review_reason.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    render_table(&table)
}

/// Aligned columns, two spaces apart; control characters replaced.
pub(crate) fn render_table(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| plain(c)).collect())
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Text from the service as it may go to a terminal: control characters
/// (escape sequences, line breaks in a cell) replaced.
pub(crate) fn plain(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Like [`plain`], keeping line breaks (descriptions, notes).
fn plain_lines(s: &str) -> String {
    s.lines().map(plain).collect::<Vec<_>>().join("\n  ")
}

fn show(args: &ReviewShowArgs) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let (_, d): (u16, StatementDetail) = client.json(
        &format!("fetching statement {}", args.id),
        "GET",
        &format!("/api/v1/statements/{}", path_segment(&args.id)),
        NO_BODY,
        &[200],
    )?;
    if args.json {
        output::print(&format!("{}\n", pretty(&d)?));
    } else {
        output::print(&detail_text(&d));
    }
    Ok(Exit::Done)
}

fn verdict_words(status: &str, justification: Option<&str>) -> String {
    match justification {
        Some(j) => format!("{status} ({j})"),
        None => status.to_owned(),
    }
}

/// `review show` for people.
pub(crate) fn detail_text(d: &StatementDetail) -> String {
    let s = &d.statement;
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<15} {}", plain(&v));
    };
    line("statement", format!("{} (version {})", s.id, s.version));
    line("image", format!("{}@{}", s.repository, s.image_digest));
    let mut vuln = s.vulnerability_id.clone();
    if !d.aliases.is_empty() {
        let _ = write!(vuln, " (also {})", d.aliases.join(", "));
    }
    line("vulnerability", vuln);
    line(
        "package",
        format!(
            "{} {}{}",
            s.package_name,
            s.package_version,
            s.package_purl
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        ),
    );
    let mut severity = s.severity.clone();
    if let Some(e) = s.epss {
        let _ = write!(severity, ", EPSS {e:.3}");
    }
    if s.known_exploited {
        severity.push_str(", known exploited");
    }
    line("severity", severity);
    let mut fix = s.fix_state.clone();
    if !d.fixed_versions.is_empty() {
        let _ = write!(fix, " (fixed in {})", d.fixed_versions.join(", "));
    }
    line("fix", fix);
    line(
        "automated",
        format!(
            "{}, confidence {:.2}, analysis {}",
            verdict_words(&s.auto_status, s.auto_justification.as_deref()),
            s.confidence,
            s.analysis_id
        ),
    );
    line(
        "effective",
        format!(
            "{}{}",
            verdict_words(&s.status, s.justification.as_deref()),
            match (&s.decision_id, &s.decision_expires_at) {
                (Some(id), Some(at)) => format!(", decision {id} (expires {at})"),
                (Some(id), None) => format!(", decision {id}"),
                (None, _) => ", automated".to_owned(),
            }
        ),
    );
    line(
        "review",
        match (s.in_queue, &s.review_reason) {
            (true, Some(r)) => format!("in the queue: {r}"),
            (true, None) => "in the queue: the decision expired".to_owned(),
            (false, _) => "not in the queue".to_owned(),
        },
    );
    if let Some(a) = &s.assignee {
        line("assignee", a.clone());
    }
    if !s.present {
        line(
            "present",
            "no: a later analysis no longer reports it".into(),
        );
    }
    line("first seen", s.first_seen_at.clone());
    line("updated", s.updated_at.clone());
    if let Some(desc) = d.description.as_deref().filter(|t| !t.trim().is_empty()) {
        let _ = writeln!(out, "\ndescription:\n  {}", plain_lines(desc.trim()));
    }
    if !d.notes.trim().is_empty() {
        let _ = writeln!(out, "\nnotes:\n  {}", plain_lines(d.notes.trim()));
    }
    out.push_str(&evidence_text(&d.evidence));
    if !d.decisions.is_empty() {
        out.push_str("\ndecisions:\n");
        for dec in &d.decisions {
            out.push_str(&decision_line(dec));
        }
    }
    if let Some(offer) = &d.offered_decision {
        out.push_str("\noffered (from another digest of the repository, same evidence):\n");
        out.push_str(&decision_line(offer));
        let _ = writeln!(
            out,
            "  take it: vexxy review accept-offer {} --reason TEXT",
            plain(&s.id)
        );
    }
    out
}

fn decision_line(d: &DecisionInfo) -> String {
    let verdict = match &d.status {
        Some(st) => format!(
            " -> {}",
            verdict_words(
                st,
                d.justification.as_deref().or(d.impact_statement.as_deref())
            )
        ),
        None => String::new(),
    };
    let mut text = format!(
        "  {} {}{verdict} by {} ({}): {}",
        d.created_at, d.action, d.author, d.id, d.reason
    );
    if let Some(a) = &d.action_statement {
        let _ = write!(text, "; action: {a}");
    }
    if let Some(at) = &d.expires_at {
        let _ = write!(text, "; expires {at}");
    }
    if let Some(at) = &d.superseded_at {
        let _ = write!(text, "; superseded {at}");
    }
    format!("{}\n", plain(&text))
}

/// The evidence list as the service gives it (provider, source,
/// observation, subject, facts), else its JSON.
fn evidence_text(evidence: &Value) -> String {
    let mut out = String::from("\nevidence:\n");
    match evidence.as_array() {
        Some(items) if items.is_empty() => out.push_str("  none\n"),
        Some(items) => {
            for e in items {
                let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
                let mut text = format!("{}/{}: {}", field("provider"), field("source"), {
                    let o = field("observation");
                    if o.is_empty() {
                        e.get("observation")
                            .map(Value::to_string)
                            .unwrap_or_default()
                    } else {
                        o.to_owned()
                    }
                });
                let subject = field("subject");
                if !subject.is_empty() {
                    let _ = write!(text, " ({subject})");
                }
                let _ = writeln!(out, "  - {}", plain(&text));
                for f in e
                    .get("facts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let k = f.get("key").and_then(Value::as_str).unwrap_or_default();
                    let v = match f.get("value") {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    };
                    let _ = writeln!(out, "      {}: {}", plain(k), plain(&v));
                }
            }
        }
        None => {
            let _ = writeln!(
                out,
                "  {}",
                serde_json::to_string_pretty(evidence)
                    .unwrap_or_default()
                    .replace('\n', "\n  ")
            );
        }
    }
    out
}

fn decide(args: &DecisionArgs, body: &DecisionRequest) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let (_, answer): (u16, DecisionResponse) = client.json(
        &format!("recording the {} of statement {}", body.action, args.id),
        "POST",
        &format!("/api/v1/statements/{}/decisions", path_segment(&args.id)),
        Some(body),
        &[200, 201],
    )?;
    if args.json {
        output::print(&format!("{}\n", pretty(&answer)?));
    } else {
        output::print(&decision_text(&answer));
    }
    Ok(Exit::Done)
}

/// What a decision changed, in two lines.
pub(crate) fn decision_text(r: &DecisionResponse) -> String {
    let s = &r.statement;
    let done = match r.decision.action.as_str() {
        "approve" => "approved",
        "override" => "overridden",
        "revert" => "reverted",
        "accept_offer" => "offered decision accepted",
        other => other,
    };
    let mut out = format!(
        "{}: {done} (decision {}); now {}, version {}\n",
        s.id,
        r.decision.id,
        verdict_words(&s.status, s.justification.as_deref()),
        s.version
    );
    if let Some(v) = &r.vex {
        let _ = writeln!(
            out,
            "VEX of {} issued as version {}",
            v.image_digest, v.version
        );
    }
    out.lines().map(|l| plain(l) + "\n").collect()
}

fn assign(args: &AssignArgs) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let (_, s): (u16, StatementInfo) = client.json(
        &format!("assigning statement {}", args.id),
        "PUT",
        &format!("/api/v1/statements/{}/assignee", path_segment(&args.id)),
        Some(&assign_request(args)),
        &[200],
    )?;
    if args.json {
        output::print(&format!("{}\n", pretty(&s)?));
    } else {
        output::print(&format!(
            "{}: {}\n",
            plain(&s.id),
            s.assignee.as_deref().map_or_else(
                || "unassigned".to_owned(),
                |a| format!("assigned to {}", plain(a))
            )
        ));
    }
    Ok(Exit::Done)
}

fn bulk(args: &BulkArgs) -> Result<Exit> {
    let (common, body) = bulk_request(args)?;
    let client = Client::new(&common.server)?;
    if !common.yes {
        let mut q = body.filter.clone();
        q.limit = Some(1);
        let (_, found): (u16, StatementList) = client.json(
            "counting the statements the filter selects",
            "GET",
            &format!("/api/v1/statements{}", query_string(&q)?),
            NO_BODY,
            &[200],
        )?;
        output::print(&format!(
            "{} statement{} match{}\n",
            found.total,
            if found.total == 1 { "" } else { "s" },
            if found.total == 1 { "es" } else { "" }
        ));
        return Err(BadInput(format!(
            "bulk {}: nothing decided; run again with --yes to {} the {} statement{} the filter selects",
            body.action,
            body.action,
            found.total,
            if found.total == 1 { "" } else { "s" }
        ))
        .into());
    }
    let (_, answer): (u16, BulkDecisionResponse) = client.json(
        &format!("recording a bulk {}", body.action),
        "POST",
        "/api/v1/review/decisions",
        Some(&body),
        &[200, 201],
    )?;
    if common.json {
        output::print(&format!("{}\n", pretty(&answer)?));
        return Ok(Exit::Done);
    }
    let mut text = String::new();
    for id in &answer.statement_ids {
        let _ = writeln!(text, "{}", plain(id));
    }
    output::print(&text);
    eprintln!(
        "decided {} statement{}; VEX issued for {} image{}",
        answer.decided,
        if answer.decided == 1 { "" } else { "s" },
        answer.vex.len(),
        if answer.vex.len() == 1 { "" } else { "s" }
    );
    Ok(Exit::Done)
}

fn settings(args: &SettingsArgs) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let (_, current): (u16, ReviewSettings) = client.json(
        "fetching the review settings",
        "GET",
        "/api/v1/review/settings",
        NO_BODY,
        &[200],
    )?;
    let shown = match settings_update(&current, args) {
        None => current,
        Some(new) => {
            client
                .json(
                    "storing the review settings",
                    "PUT",
                    "/api/v1/review/settings",
                    Some(&new),
                    &[200],
                )?
                .1
        }
    };
    if args.json {
        output::print(&format!("{}\n", pretty(&shown)?));
    } else {
        output::print(&format!(
            "review_below      {}\nfour_eyes         {}\nrerun_after_days  {}\n",
            shown.review_below,
            shown.four_eyes,
            shown
                .rerun_after_days
                .map_or_else(|| "never".to_owned(), |d| d.to_string())
        ));
    }
    Ok(Exit::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    fn review(argv: &[&str]) -> ReviewCommand {
        let mut full = vec!["vexxy", "review"];
        full.extend_from_slice(argv);
        full.extend_from_slice(&["--api-key", "k"]);
        match Cli::try_parse_from(full)
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .command
        {
            Command::Review(r) => r.command,
            other => panic!("{other:?}"),
        }
    }

    fn refused(argv: &[&str]) -> clap::error::ErrorKind {
        let mut full = vec!["vexxy", "review"];
        full.extend_from_slice(argv);
        full.extend_from_slice(&["--api-key", "k"]);
        Cli::try_parse_from(full).unwrap_err().kind()
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn list_flags_become_the_query() {
        let cases: &[(&[&str], &str)] = &[
            (&["list"], "/api/v1/statements"),
            (&["list", "--queue"], "/api/v1/review/queue"),
            (
                &[
                    "list", "--queue", "--sort", "age", "--limit", "5", "--offset", "10",
                ],
                "/api/v1/review/queue?sort=age&limit=5&offset=10",
            ),
            (
                &[
                    "list",
                    "--repository",
                    "registry.example/team/app",
                    "--vulnerability",
                    "CVE-2024-0001",
                    "--package",
                    "pkg:deb/debian/libssl3@3.0.11-1~deb12u2",
                    "--status",
                    "not_affected",
                    "--severity",
                    "high",
                    "--min-confidence",
                    "0.2",
                    "--max-confidence",
                    "0.75",
                    "--review-reason",
                    "low_confidence",
                    "--assignee",
                    "alice@example.com",
                    "--include-absent",
                ],
                "/api/v1/statements?repository=registry.example%2Fteam%2Fapp\
                 &vulnerability=CVE-2024-0001\
                 &package=pkg%3Adeb%2Fdebian%2Flibssl3%403.0.11-1~deb12u2\
                 &status=not_affected&severity=high&min_confidence=0.2&max_confidence=0.75\
                 &reason=low_confidence&assignee=alice%40example.com&include_absent=true",
            ),
            (
                &["list", "--image", &format!("registry.example/app@{D}")],
                &format!("/api/v1/statements?image=sha256%3A{}", &D[7..]),
            ),
            (
                &[
                    "list",
                    "--image",
                    &D.to_ascii_uppercase().replace("SHA256", "sha256"),
                ],
                &format!("/api/v1/statements?image=sha256%3A{}", &D[7..]),
            ),
        ];
        for (argv, want) in cases {
            let ReviewCommand::List(args) = review(argv) else {
                panic!("{argv:?}")
            };
            assert_eq!(list_path(&args).unwrap(), *want, "{argv:?}");
        }
    }

    #[test]
    fn bad_filters_exit_2() {
        for argv in [
            &["list", "--image", "sha256:abc"][..],
            &["list", "--image", "nginx:latest"],
            &["list", "--min-confidence", "0.9", "--max-confidence", "0.1"],
        ] {
            let ReviewCommand::List(args) = review(argv) else {
                panic!("{argv:?}")
            };
            let err = list_path(&args).unwrap_err();
            assert_eq!(crate::exit::classify(&err), Exit::BadInput, "{argv:?}");
        }
        use clap::error::ErrorKind as K;
        for (argv, kind) in [
            (&["list", "--status", "maybe"][..], K::InvalidValue),
            (&["list", "--severity", "huge"], K::InvalidValue),
            (&["list", "--min-confidence", "1.5"], K::ValueValidation),
            (&["list", "--limit", "0"], K::ValueValidation),
            (&["list", "--review-reason", "boredom"], K::InvalidValue),
            (&["approve", "s1"], K::MissingRequiredArgument),
            (
                &["approve", "s1", "--reason", "r", "--expires-in-days", "0"],
                K::ValueValidation,
            ),
            (
                &["override", "s1", "--reason", "r"],
                K::MissingRequiredArgument,
            ),
            (
                &[
                    "override",
                    "s1",
                    "--reason",
                    "r",
                    "--status",
                    "not_affected",
                    "--justification",
                    "component_not_present",
                    "--impact-statement",
                    "x",
                ],
                K::ArgumentConflict,
            ),
            (
                &[
                    "override",
                    "s1",
                    "--reason",
                    "r",
                    "--status",
                    "not_affected",
                    "--justification",
                    "because",
                ],
                K::InvalidValue,
            ),
            (&["assign", "s1"], K::MissingRequiredArgument),
            (
                &["assign", "s1", "--to", "a", "--clear"],
                K::ArgumentConflict,
            ),
            (&["bulk", "approve"], K::MissingRequiredArgument),
            (
                &["bulk", "override", "--reason", "r"],
                K::MissingRequiredArgument,
            ),
            (&["settings", "--four-eyes", "maybe"], K::InvalidValue),
            (
                &["settings", "--no-rerun", "--rerun-after-days", "3"],
                K::ArgumentConflict,
            ),
        ] {
            assert_eq!(refused(argv), kind, "{argv:?}");
        }
    }

    #[test]
    fn decision_flags_become_the_body() {
        let cases: &[(&[&str], &str, Value)] = &[
            (
                &["approve", "stmt-1", "--reason", "checked the config"],
                "stmt-1",
                json!({"action": "approve", "status": null, "justification": null,
                       "impact_statement": null, "action_statement": null,
                       "reason": "checked the config", "expires_in_days": null,
                       "expected_version": null}),
            ),
            (
                &[
                    "approve",
                    "stmt-1",
                    "--reason",
                    "r",
                    "--expires-in-days",
                    "90",
                    "--expected-version",
                    "3",
                ],
                "stmt-1",
                json!({"action": "approve", "status": null, "justification": null,
                       "impact_statement": null, "action_statement": null,
                       "reason": "r", "expires_in_days": 90, "expected_version": 3}),
            ),
            (
                &[
                    "override",
                    "stmt-2",
                    "--status",
                    "not_affected",
                    "--justification",
                    "vulnerable_code_not_in_execute_path",
                    "--reason",
                    "feature disabled",
                    "--expected-version",
                    "7",
                ],
                "stmt-2",
                json!({"action": "override", "status": "not_affected",
                       "justification": "vulnerable_code_not_in_execute_path",
                       "impact_statement": null, "action_statement": null,
                       "reason": "feature disabled", "expires_in_days": null,
                       "expected_version": 7}),
            ),
            (
                &[
                    "override",
                    "stmt-2",
                    "--new-status",
                    "affected",
                    "--action-statement",
                    "upgrade to 3.0.12",
                    "--reason",
                    "reachable",
                    "--expires-in-days",
                    "30",
                ],
                "stmt-2",
                json!({"action": "override", "status": "affected", "justification": null,
                       "impact_statement": null, "action_statement": "upgrade to 3.0.12",
                       "reason": "reachable", "expires_in_days": 30, "expected_version": null}),
            ),
            (
                &[
                    "override",
                    "stmt-2",
                    "--status",
                    "not_affected",
                    "--impact-statement",
                    "only the CLI uses it",
                    "--reason",
                    "r",
                ],
                "stmt-2",
                json!({"action": "override", "status": "not_affected", "justification": null,
                       "impact_statement": "only the CLI uses it", "action_statement": null,
                       "reason": "r", "expires_in_days": null, "expected_version": null}),
            ),
            (
                &["revert", "stmt-3", "--reason", "wrong call"],
                "stmt-3",
                json!({"action": "revert", "status": null, "justification": null,
                       "impact_statement": null, "action_statement": null,
                       "reason": "wrong call", "expires_in_days": null,
                       "expected_version": null}),
            ),
            (
                &[
                    "accept-offer",
                    "stmt-4",
                    "--reason",
                    "same evidence",
                    "--expected-version",
                    "1",
                ],
                "stmt-4",
                json!({"action": "accept_offer", "status": null, "justification": null,
                       "impact_statement": null, "action_statement": null,
                       "reason": "same evidence", "expires_in_days": null,
                       "expected_version": 1}),
            ),
        ];
        for (argv, id, want) in cases {
            let cmd = review(argv);
            let (args, body) = decision_request(&cmd).unwrap();
            assert_eq!(args.id, *id, "{argv:?}");
            assert_eq!(serde_json::to_value(&body).unwrap(), *want, "{argv:?}");
        }
        assert!(decision_request(&review(&["list"])).is_none());
    }

    #[test]
    fn bulk_flags_become_the_body() {
        let cases: &[(&[&str], bool, Value)] = &[
            (
                &[
                    "bulk",
                    "approve",
                    "--repository",
                    "app",
                    "--max-confidence",
                    "0.5",
                    "--reason",
                    "r",
                ],
                false,
                json!({"filter": {"repository": "app", "max_confidence": 0.5},
                       "action": "approve", "reason": "r"}),
            ),
            (
                &[
                    "bulk",
                    "override",
                    "--vulnerability",
                    "CVE-2024-1",
                    "--status",
                    "affected",
                    "--new-status",
                    "not_affected",
                    "--justification",
                    "component_not_present",
                    "--reason",
                    "r",
                    "--yes",
                    "--expires-in-days",
                    "10",
                ],
                true,
                json!({"filter": {"vulnerability": "CVE-2024-1", "status": "affected"},
                       "action": "override", "status": "not_affected",
                       "justification": "component_not_present", "reason": "r",
                       "expires_in_days": 10}),
            ),
            (
                &["bulk", "revert", "--image", D, "--yes", "--reason", "r"],
                true,
                json!({"filter": {"image": D}, "action": "revert", "reason": "r"}),
            ),
        ];
        for (argv, yes, want) in cases {
            let ReviewCommand::Bulk(args) = review(argv) else {
                panic!("{argv:?}")
            };
            let (common, body) = bulk_request(&args).unwrap();
            assert_eq!(common.yes, *yes, "{argv:?}");
            assert_eq!(
                without_nulls(serde_json::to_value(&body).unwrap()),
                *want,
                "{argv:?}"
            );
        }
    }

    /// The JSON without null and false members (what was not given).
    fn without_nulls(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(_, v)| !v.is_null() && *v != Value::Bool(false))
                    .map(|(k, v)| (k, without_nulls(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    #[test]
    fn assign_and_settings_flags() {
        for (argv, want) in [
            (
                &["assign", "s1", "--to", "bob"][..],
                json!({"assignee": "bob", "expected_version": null}),
            ),
            (
                &["assign", "s1", "--clear", "--expected-version", "2"],
                json!({"assignee": null, "expected_version": 2}),
            ),
        ] {
            let ReviewCommand::Assign(a) = review(argv) else {
                panic!("{argv:?}")
            };
            assert_eq!(
                serde_json::to_value(assign_request(&a)).unwrap(),
                want,
                "{argv:?}"
            );
        }
        let current = ReviewSettings {
            review_below: 0.6,
            four_eyes: false,
            rerun_after_days: Some(30),
        };
        for (argv, want) in [
            (&["settings"][..], None),
            (
                &["settings", "--review-below", "0.8"],
                Some(json!({"review_below": 0.8, "four_eyes": false, "rerun_after_days": 30})),
            ),
            (
                &["settings", "--four-eyes", "true", "--rerun-after-days", "7"],
                Some(json!({"review_below": 0.6, "four_eyes": true, "rerun_after_days": 7})),
            ),
            (
                &["settings", "--no-rerun"],
                Some(json!({"review_below": 0.6, "four_eyes": false, "rerun_after_days": null})),
            ),
        ] {
            let ReviewCommand::Settings(a) = review(argv) else {
                panic!("{argv:?}")
            };
            let got = settings_update(&current, &a).map(|s| serde_json::to_value(s).unwrap());
            assert_eq!(got, want, "{argv:?}");
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn digests_are_found_in_references() {
        let hex = &D[7..];
        for (input, want) in [
            (D.to_owned(), Some(D.to_owned())),
            (
                format!("registry.example:5000/team/app@{D}"),
                Some(D.to_owned()),
            ),
            (
                format!(
                    " {} ",
                    D.to_ascii_uppercase().replacen("SHA256", "sha256", 1)
                ),
                Some(D.to_owned()),
            ),
            (format!("SHA256:{hex}"), Some(D.to_owned())),
            ("nginx:1.27".to_owned(), None),
            (format!("sha256:{}", &hex[1..]), None),
            (format!("sha512:{hex}"), None),
            (format!("sha256:{}g", &hex[1..]), None),
        ] {
            assert_eq!(digest_of(&input).ok(), want, "{input}");
        }
    }

    #[test]
    fn tables_are_aligned_and_free_of_control_characters() {
        let t = render_table(&[
            vec!["ID".into(), "NAME".into(), "X".into()],
            vec!["a-long-id".into(), "evil\u{1b}[31m".into(), "1".into()],
        ]);
        assert_eq!(
            t,
            "ID         NAME       X\na-long-id  evil\u{fffd}[31m  1\n"
        );
        assert!(!t.contains('\u{1b}'));
        assert_eq!(short_digest(D), "sha256:0123456789ab");
    }

    #[test]
    fn query_components_are_encoded() {
        assert_eq!(query_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(query_component("CVE-2024_1.0~x"), "CVE-2024_1.0~x");
    }
}
