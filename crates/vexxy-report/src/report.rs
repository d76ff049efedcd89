//! What the human report shows, computed once and rendered twice (Markdown
//! in `markdown.rs`, HTML in `html.rs`).
//!
//! Everything here is plain data: strings from the input are kept raw and
//! escaped by the renderers, never here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use vexxy_decide::Outcome;
use vexxy_model::{
    Decider, Ecosystem, Evidence, EvidenceSource, ExecutionProfile, ExerciseWindow, Finding,
    Inventory, Justification, Product, RunOutcome, Severity, Status, WindowEnd, WindowMode,
};

use crate::sbom;

/// Everything a human report is made from. All of it is borrowed; building
/// a report does no I/O.
#[derive(Clone, Copy, Debug)]
pub struct ReportInput<'a> {
    /// The image the report is about (name, tag, digest).
    pub product: &'a Product,
    /// The findings the decisions refer to (`Decision::finding` indexes
    /// this slice; a decision whose index is out of range is skipped).
    pub findings: &'a [Finding],
    /// The decision engine's result: per-finding decisions and the summary.
    pub outcome: &'a Outcome,
    /// The image's packages; with a profile it adds which packages' code
    /// ran.
    pub inventory: Option<&'a Inventory>,
    /// The traced run, when there was one; adds the run section.
    pub profile: Option<&'a ExecutionProfile>,
    /// Wall time of each phase of the analysis, in order; adds the timing
    /// table when not empty.
    pub timings: &'a [(String, Duration)],
}

impl<'a> ReportInput<'a> {
    /// An input without inventory, profile or timings.
    pub fn new(product: &'a Product, findings: &'a [Finding], outcome: &'a Outcome) -> Self {
        Self {
            product,
            findings,
            outcome,
            inventory: None,
            profile: None,
            timings: &[],
        }
    }
}

/// The order statuses are listed in: what needs action first.
pub(crate) const STATUS_ORDER: [Status; 4] = [
    Status::Affected,
    Status::UnderInvestigation,
    Status::NotAffected,
    Status::Fixed,
];

fn status_rank(s: Status) -> usize {
    match s {
        Status::Affected => 0,
        Status::UnderInvestigation => 1,
        Status::NotAffected => 2,
        Status::Fixed => 3,
    }
}

/// A value of a key/value list: prose, or an identifier shown verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    Code(String),
}

/// The triage counts.
#[derive(Debug)]
pub(crate) struct Counts {
    pub(crate) findings: usize,
    pub(crate) statements: usize,
    /// In [`STATUS_ORDER`].
    pub(crate) by_status: Vec<(Status, usize)>,
    pub(crate) automated: usize,
    pub(crate) existing: usize,
    pub(crate) needs_review: usize,
    /// Severity × status (in [`STATUS_ORDER`]), most severe first,
    /// severities without findings left out.
    pub(crate) by_severity: Vec<(Severity, [usize; 4])>,
    /// Automated decisions per justification.
    pub(crate) by_justification: Vec<(String, usize)>,
}

/// What the inventory adds to the summary.
#[derive(Debug)]
pub(crate) struct InventoryInfo {
    pub(crate) packages: usize,
    pub(crate) by_ecosystem: BTreeMap<String, usize>,
    /// Packages whose code the traced run used, when a profile is given.
    pub(crate) runtime_used: Option<usize>,
}

/// One evidence item, flattened for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EvidenceLine {
    pub(crate) provider: String,
    /// The source as written in VEX (`elf-graph`, `config-rule:…`).
    pub(crate) source: String,
    /// A short class for styling (`runtime`, `elf`, …).
    pub(crate) kind: &'static str,
    pub(crate) observation: String,
    /// Facts with long values shortened.
    pub(crate) facts: Vec<(String, String)>,
}

/// One row of the package table: one verdict (status, justification) for
/// one package, with every vulnerability it covers.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) package: String,
    pub(crate) version: String,
    pub(crate) status: Status,
    pub(crate) justification: Option<Justification>,
    pub(crate) impact: Option<String>,
    /// The highest severity among the row's vulnerabilities.
    pub(crate) severity: Severity,
    /// Lowest and highest confidence; `None` for under_investigation (an
    /// open question has no confidence to speak of).
    pub(crate) confidence: Option<(f64, f64)>,
    /// Ids, most severe first, then by id.
    pub(crate) vulnerabilities: Vec<(String, Severity)>,
    /// Verdict notes, action statements and non-automated deciders, in
    /// first-seen order without repeats.
    pub(crate) notes: Vec<String>,
    pub(crate) evidence: Vec<EvidenceLine>,
    /// Whether the traced run used the package's code (needs inventory and
    /// profile; `None` when unknown or the package is not in the inventory).
    pub(crate) runtime_used: Option<bool>,
}

/// The whole report.
#[derive(Debug)]
pub(crate) struct View {
    pub(crate) image: String,
    pub(crate) digest: Option<String>,
    pub(crate) counts: Counts,
    pub(crate) inventory: Option<InventoryInfo>,
    pub(crate) run: Option<Vec<(&'static str, Value)>>,
    pub(crate) rows: Vec<Row>,
    /// Whether rows carry `runtime_used` (inventory and profile given).
    pub(crate) runtime_column: bool,
    pub(crate) timings: Vec<(String, String)>,
}

/// Longest fact value shown; longer ones are cut at a character boundary.
const MAX_FACT_CHARS: usize = 200;

pub(crate) fn build(input: &ReportInput<'_>) -> View {
    let p = input.product;
    let image = match &p.tag {
        Some(t) => format!("{}:{t}", p.name),
        None => p.name.clone(),
    };
    let used = match (input.inventory, input.profile) {
        (Some(inv), Some(profile)) => Some(sbom::runtime_used_packages(inv, profile)),
        _ => None,
    };
    let inventory = input.inventory.map(|inv| InventoryInfo {
        packages: inv.packages().len(),
        by_ecosystem: inv.counts(),
        runtime_used: used.as_ref().map(BTreeSet::len),
    });
    View {
        image,
        digest: p.digest.as_ref().map(ToString::to_string),
        counts: counts(input),
        inventory,
        run: input.profile.map(run_facts),
        rows: rows(input, used.as_ref()),
        runtime_column: used.is_some(),
        timings: input
            .timings
            .iter()
            .map(|(phase, d)| (phase.clone(), duration(*d)))
            .collect(),
    }
}

fn counts(input: &ReportInput<'_>) -> Counts {
    let s = &input.outcome.summary;
    let by_status = STATUS_ORDER
        .iter()
        .map(|st| (*st, s.by_status.get(st).copied().unwrap_or(0)))
        .collect();
    let mut matrix: BTreeMap<Severity, [usize; 4]> = BTreeMap::new();
    for d in &input.outcome.decisions {
        let Some(f) = input.findings.get(d.finding) else {
            continue;
        };
        let col = status_rank(d.verdict.status());
        matrix.entry(f.vulnerability.severity).or_insert([0; 4])[col] += 1;
    }
    // `Severity` orders from unknown to critical.
    let by_severity = matrix.into_iter().rev().collect();
    Counts {
        findings: s.findings,
        statements: s.statements,
        by_status,
        automated: s.automated(),
        existing: s.existing,
        needs_review: s.needs_review,
        by_severity,
        by_justification: s
            .by_justification
            .iter()
            .map(|(j, n)| (j.clone(), *n))
            .collect(),
    }
}

/// `n` as a percentage of `total`, one decimal (`0.0%` of nothing).
pub(crate) fn percent(n: usize, total: usize) -> String {
    if total == 0 {
        return "0.0%".to_owned();
    }
    // Integer arithmetic, rounded half up: exact and platform-independent.
    let tenths = (n as u128 * 1000 + total as u128 / 2) / total as u128;
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// Milliseconds for people: `850 ms`, `31.2 s`.
pub(crate) fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
    }
}

/// A phase duration: `412 µs`, `850 ms`, `1.23 s`.
pub(crate) fn duration(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{} ms", us / 1000)
    } else {
        let ms = us / 1000;
        format!("{}.{:02} s", ms / 1000, (ms % 1000) / 10)
    }
}

/// "adaptive (quiet 3.0 s, at least 5.0 s): closed once the evidence
/// stopped changing; last new evidence at 412 ms, exercisers done at 530 ms".
fn window_text(w: &ExerciseWindow) -> String {
    let mode = match w.mode {
        WindowMode::Fixed => "fixed".to_owned(),
        WindowMode::Adaptive {
            quiet_ms,
            minimum_ms,
        } => format!(
            "adaptive (quiet {}, at least {})",
            millis(quiet_ms),
            millis(minimum_ms)
        ),
    };
    let ended = match w.ended {
        WindowEnd::Quiet => "closed once the evidence stopped changing",
        WindowEnd::Maximum => "closed at its full length",
        WindowEnd::Exited => "closed when the workload exited",
        WindowEnd::TimedOut => "closed at the hard timeout",
    };
    let last = w.last_evidence_ms.map_or_else(
        || "no new evidence seen".to_owned(),
        |ms| format!("last new evidence at {}", millis(ms)),
    );
    format!(
        "{mode}: {ended}; {last}, exercisers done at {}",
        millis(w.exercised_ms)
    )
}

fn outcome_text(o: RunOutcome) -> String {
    match o {
        RunOutcome::StoppedAtEnd => {
            "still running when the exercise window closed (normal for a server); stopped".into()
        }
        RunOutcome::Exited(code) => format!("exited on its own with code {code}"),
        RunOutcome::Signaled(sig) => format!("killed by signal {sig}"),
        RunOutcome::TimedOut => "hit the hard timeout".into(),
    }
}

fn run_facts(p: &ExecutionProfile) -> Vec<(&'static str, Value)> {
    use Value::{Code, Text};
    let run = &p.run;
    let ex = &p.exercise;
    let mut out = vec![("Image", Code(run.image.clone()))];
    if let Some(d) = &run.image_digest {
        out.push(("Image config", Code(d.clone())));
    }
    if !run.command.is_empty() {
        let argv: Vec<String> = run.command.iter().map(|a| shell_word(a)).collect();
        out.push(("Command", Code(argv.join(" "))));
    }
    if !run.started_at.is_empty() {
        out.push(("Started", Text(run.started_at.clone())));
    }
    out.push((
        "Duration",
        Text(format!(
            "{} (exercise window {})",
            millis(run.duration_ms),
            millis(run.requested_duration_ms)
        )),
    ));
    if let Some(w) = &run.window {
        out.push(("Window", Text(window_text(w))));
    }
    out.push(("Outcome", Text(outcome_text(run.outcome))));
    out.push(("Processes", Text(p.processes.len().to_string())));
    out.push(("Executables run", Text(p.executables.len().to_string())));
    out.push((
        "Libraries mapped",
        Text(p.loaded_libraries.len().to_string()),
    ));
    out.push(("Files opened", Text(p.files.len().to_string())));
    out.push(("Socket uses", Text(p.network.len().to_string())));
    let ports = if ex.ports.is_empty() {
        "no ports exposed".to_owned()
    } else if ex.ready_ports.is_empty() {
        format!("none of {} accepted a connection", join_num(&ex.ports))
    } else {
        let after = ex
            .ready_after_ms
            .map(|ms| format!(", first after {}", millis(ms)))
            .unwrap_or_default();
        format!(
            "{} of {} accepted connections{after}",
            join_num(&ex.ready_ports),
            join_num(&ex.ports)
        )
    };
    out.push(("Ports", Text(ports)));
    let http = if ex.http_requests == 0 {
        "none sent".to_owned()
    } else {
        // Status codes in order, then the requests that got no response.
        let mut codes: Vec<String> = ex
            .http_status
            .iter()
            .filter(|(code, _)| **code != 0)
            .map(|(code, n)| format!("{code} × {n}"))
            .collect();
        if let Some(n) = ex.http_status.get(&0) {
            codes.push(format!("no response × {n}"));
        }
        if codes.is_empty() {
            ex.http_requests.to_string()
        } else {
            format!("{} ({})", ex.http_requests, codes.join(", "))
        }
    };
    out.push(("HTTP requests", Text(http)));
    if !ex.http_paths.is_empty() {
        out.push(("HTTP paths", Text(ex.http_paths.len().to_string())));
    }
    let script = match &ex.script {
        None => "none".to_owned(),
        Some(s) => match s.exit_code {
            Some(0) => format!("{} passed (exit 0) in {}", s.path, millis(s.duration_ms)),
            Some(c) => format!(
                "{} failed with exit code {c} in {}",
                s.path,
                millis(s.duration_ms)
            ),
            None => format!(
                "{} was killed at the deadline after {}",
                s.path,
                millis(s.duration_ms)
            ),
        },
    };
    out.push(("Test script", Text(script)));
    out.push(("Lost events", Text(lost(p))));
    if !p.tracer.kernel.is_empty() {
        out.push(("Kernel", Text(p.tracer.kernel.clone())));
    }
    if p.tracer.uprobes_attached > 0 || !p.tracer.uprobe_errors.is_empty() {
        out.push((
            "Uprobes",
            Text(format!(
                "{} attached, {} failed",
                p.tracer.uprobes_attached,
                p.tracer.uprobe_errors.len()
            )),
        ));
    }
    out
}

/// An argument as a POSIX shell would need it: bare when it holds only
/// safe characters, otherwise single-quoted.
fn shell_word(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if safe {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn join_num(ports: &[u16]) -> String {
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn lost(p: &ExecutionProfile) -> String {
    let l = &p.lost;
    let before = (l.running_before_attach > 0).then(|| {
        format!(
            "{} process(es) were already running when the tracer attached, so their start-up was not seen",
            l.running_before_attach
        )
    });
    if l.is_empty() {
        return before.unwrap_or_else(|| "no events lost".to_owned());
    }
    let mut parts: Vec<String> = before.into_iter().collect();
    if l.ring_buffer > 0 {
        parts.push(format!(
            "{} process events (ring buffer full)",
            l.ring_buffer
        ));
    }
    for (map, n) in l.map_full.iter().filter(|(_, n)| **n > 0) {
        parts.push(format!("{n} entries of map {map} (map full)"));
    }
    if l.truncated_paths > 0 {
        parts.push(format!("{} truncated paths", l.truncated_paths));
    }
    format!(
        "{}; claims that something did not happen are weaker",
        parts.join(", ")
    )
}

/// A short class for the evidence source, for styling. Every variant is
/// named, so a new source is a compile error here rather than a silent
/// default.
pub(crate) fn source_kind(s: &EvidenceSource) -> &'static str {
    match s {
        EvidenceSource::ScannerReport => "scanner",
        EvidenceSource::Sbom => "sbom",
        EvidenceSource::PackageDb => "package-db",
        EvidenceSource::ElfGraph => "elf",
        EvidenceSource::ConfigRule(_) => "rule",
        EvidenceSource::ExistingVex(_) => "existing",
        EvidenceSource::Runtime => "runtime",
    }
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_FACT_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn evidence_line(e: &Evidence) -> EvidenceLine {
    EvidenceLine {
        provider: e.provider.clone(),
        source: e.source.to_string(),
        kind: source_kind(&e.source),
        observation: e.observation.clone(),
        facts: e
            .facts
            .iter()
            .map(|(k, v)| (k.clone(), shorten(v)))
            .collect(),
    }
}

fn decider_note(d: &Decider) -> Option<String> {
    match d {
        Decider::Automated { .. } => None,
        Decider::Human { author } => Some(format!("existing statement by {author}")),
        Decider::Imported { author } => Some(format!("imported from {author}")),
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
    }
}

type GroupKey = (
    String,
    String,
    Ecosystem,
    usize,
    Option<Justification>,
    Option<String>,
);

fn rows(input: &ReportInput<'_>, used: Option<&BTreeSet<usize>>) -> Vec<Row> {
    let index = input.inventory.map(sbom::PackageIndex::new);
    let mut groups: BTreeMap<GroupKey, Row> = BTreeMap::new();
    for d in &input.outcome.decisions {
        let Some(f) = input.findings.get(d.finding) else {
            continue;
        };
        let v = &d.verdict;
        let key = (
            f.package.name.clone(),
            f.package.version.clone(),
            f.package.ecosystem.clone(),
            status_rank(v.status()),
            v.justification(),
            v.impact_statement().map(str::to_owned),
        );
        let runtime_used = match (&index, used) {
            (Some(ix), Some(used)) => input
                .inventory
                .and_then(|inv| inv.find(&f.package))
                .and_then(|p| ix.index_of(p))
                .map(|i| used.contains(&i)),
            _ => None,
        };
        let row = groups.entry(key).or_insert_with(|| Row {
            package: f.package.name.clone(),
            version: f.package.version.clone(),
            status: v.status(),
            justification: v.justification(),
            impact: v.impact_statement().map(str::to_owned),
            severity: Severity::Unknown,
            confidence: None,
            vulnerabilities: Vec::new(),
            notes: Vec::new(),
            evidence: Vec::new(),
            runtime_used,
        });
        row.severity = row.severity.max(f.vulnerability.severity);
        if v.status() != Status::UnderInvestigation {
            let c = v.confidence.get();
            row.confidence = Some(match row.confidence {
                None => (c, c),
                Some((lo, hi)) => (lo.min(c), hi.max(c)),
            });
        }
        push_unique(
            &mut row.vulnerabilities,
            (f.vulnerability.id.clone(), f.vulnerability.severity),
        );
        if !v.notes.trim().is_empty() {
            push_unique(&mut row.notes, v.notes.trim().to_owned());
        }
        if let Some(a) = v.action_statement() {
            push_unique(&mut row.notes, format!("action: {a}"));
        }
        if let Some(n) = decider_note(&v.decided_by) {
            push_unique(&mut row.notes, n);
        }
        for e in &v.evidence {
            push_unique(&mut row.evidence, evidence_line(e));
        }
    }
    let mut rows: Vec<Row> = groups.into_values().collect();
    for r in &mut rows {
        r.vulnerabilities
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }
    rows.sort_by(|a, b| {
        status_rank(a.status)
            .cmp(&status_rank(b.status))
            .then_with(|| b.severity.cmp(&a.severity))
            .then_with(|| a.package.cmp(&b.package))
            .then_with(|| a.version.cmp(&b.version))
            .then_with(|| a.justification.cmp(&b.justification))
            .then_with(|| a.impact.cmp(&b.impact))
    });
    rows
}

/// The confidence cell: `0.90`, `0.70–0.90`, or `—`.
pub(crate) fn confidence_text(c: Option<(f64, f64)>) -> String {
    match c {
        None => "—".to_owned(),
        Some((lo, hi)) if (hi - lo).abs() < 0.005 => format!("{lo:.2}"),
        Some((lo, hi)) => format!("{lo:.2}–{hi:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(2, 3), "66.7%");
        assert_eq!(percent(0, 0), "0.0%");
        assert_eq!(percent(7, 7), "100.0%");
        assert_eq!(millis(850), "850 ms");
        assert_eq!(millis(31_249), "31.2 s");
        assert_eq!(duration(Duration::from_micros(412)), "412 µs");
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration(Duration::from_millis(1234)), "1.23 s");
        assert_eq!(confidence_text(Some((0.7, 0.9))), "0.70–0.90");
        assert_eq!(confidence_text(Some((0.9, 0.9))), "0.90");
        assert_eq!(confidence_text(None), "—");
        assert_eq!(shell_word("daemon off;"), "'daemon off;'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("/usr/sbin/nginx"), "/usr/sbin/nginx");
        assert_eq!(shell_word(""), "''");
        assert_eq!(
            shorten(&"x".repeat(300)).chars().count(),
            MAX_FACT_CHARS + 1
        );
    }
}
