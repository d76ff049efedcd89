//! The Markdown rendering of a [`View`]: GitHub-flavoured tables, every
//! input string escaped (`escape::md_text` for prose, `escape::md_code`
//! for identifiers).

use std::fmt::Write as _;

use crate::escape::{md_code, md_text};
use crate::report::{self, percent, Row, Value, View, STATUS_ORDER};

pub(crate) fn render(v: &View) -> String {
    let mut out = String::with_capacity(4096 + v.rows.len() * 512);
    out.push_str("# vexxy report\n\n");
    let _ = writeln!(out, "- **Image:** {}", md_code(&v.image));
    let _ = writeln!(
        out,
        "- **Digest:** {}",
        v.digest
            .as_deref()
            .map_or_else(|| "unknown".to_owned(), md_code)
    );
    summary(&mut out, v);
    if let Some(run) = &v.run {
        out.push_str("\n## Run\n\n");
        for (label, value) in run {
            let _ = writeln!(out, "- **{label}:** {}", value_md(value));
        }
    }
    packages(&mut out, v);
    if !v.timings.is_empty() {
        out.push_str("\n## Phase timings\n\n| Phase | Duration |\n|---|---:|\n");
        for (phase, d) in &v.timings {
            let _ = writeln!(out, "| {} | {d} |", md_text(phase));
        }
    }
    out
}

fn value_md(v: &Value) -> String {
    match v {
        Value::Text(t) => md_text(t),
        Value::Code(c) => md_code(c),
    }
}

fn summary(out: &mut String, v: &View) {
    let c = &v.counts;
    out.push_str("\n## Summary\n\n| Status | Findings | Share |\n|---|---:|---:|\n");
    for (status, n) in &c.by_status {
        let _ = writeln!(out, "| `{status}` | {n} | {} |", percent(*n, c.findings));
    }
    let _ = writeln!(
        out,
        "| **total** | {} | {} |",
        c.findings,
        percent(c.findings, c.findings)
    );
    out.push('\n');
    let _ = writeln!(out, "- **Distinct vulnerabilities:** {}", c.statements);
    let _ = writeln!(
        out,
        "- **Decided automatically:** {} of {} findings ({})",
        c.automated,
        c.findings,
        percent(c.automated, c.findings)
    );
    let _ = writeln!(out, "- **Decided by existing statements:** {}", c.existing);
    let _ = writeln!(out, "- **Needing review:** {}", c.needs_review);
    if let Some(inv) = &v.inventory {
        let eco: Vec<String> = inv
            .by_ecosystem
            .iter()
            .map(|(e, n)| format!("{} {n}", md_text(e)))
            .collect();
        let _ = writeln!(
            out,
            "- **Packages in the image:** {}{}",
            inv.packages,
            if eco.is_empty() {
                String::new()
            } else {
                format!(" ({})", eco.join(", "))
            }
        );
        if let Some(used) = inv.runtime_used {
            let _ = writeln!(
                out,
                "- **Packages with code used at runtime:** {used} of {}",
                inv.packages
            );
        }
    }
    if !c.by_severity.is_empty() {
        out.push_str("\n### By severity\n\n| Severity |");
        for s in STATUS_ORDER {
            let _ = write!(out, " `{s}` |");
        }
        out.push_str("\n|---|---:|---:|---:|---:|\n");
        for (sev, counts) in &c.by_severity {
            let _ = write!(out, "| {} |", sev.as_str());
            for n in counts {
                let _ = write!(out, " {n} |");
            }
            out.push('\n');
        }
    }
    if !c.by_justification.is_empty() {
        out.push_str(
            "\n### Automated decisions by justification\n\n| Justification | Findings |\n|---|---:|\n",
        );
        for (j, n) in &c.by_justification {
            let _ = writeln!(out, "| {} | {n} |", md_code(j));
        }
    }
}

fn packages(out: &mut String, v: &View) {
    out.push_str("\n## Packages\n\n");
    if v.rows.is_empty() {
        out.push_str("No findings.\n");
        return;
    }
    out.push_str("| Package | Version | Status | Severity | Confidence | Justification |");
    if v.runtime_column {
        out.push_str(" Code used at runtime |");
    }
    out.push_str(" Vulnerabilities | Evidence |\n|---|---|---|---|---:|---|");
    if v.runtime_column {
        out.push_str("---|");
    }
    out.push_str("---|---|\n");
    for r in &v.rows {
        row(out, r, v.runtime_column);
    }
}

fn row(out: &mut String, r: &Row, runtime_column: bool) {
    let justification = match (r.justification, &r.impact) {
        (Some(j), _) => format!("`{j}`"),
        (None, Some(i)) => format!("impact: {}", md_text(i)),
        (None, None) => "—".to_owned(),
    };
    let _ = write!(
        out,
        "| {} | {} | `{}` | {} | {} | {justification} |",
        md_code(&r.package),
        md_code(&r.version),
        r.status,
        r.severity.as_str(),
        report::confidence_text(r.confidence),
    );
    if runtime_column {
        let used = match r.runtime_used {
            Some(true) => "used",
            Some(false) => "not used",
            None => "—",
        };
        let _ = write!(out, " {used} |");
    }
    let ids: Vec<String> = r
        .vulnerabilities
        .iter()
        .map(|(id, _)| md_text(id))
        .collect();
    let mut lines: Vec<String> = r.notes.iter().map(|n| md_text(n)).collect();
    for e in &r.evidence {
        let mut line = format!(
            "**{}** ({}): {}",
            md_text(&e.provider),
            md_text(&e.source),
            md_text(&e.observation)
        );
        if !e.facts.is_empty() {
            let facts: Vec<String> = e
                .facts
                .iter()
                .map(|(k, val)| format!("{}: {}", md_text(k), md_text(val)))
                .collect();
            let _ = write!(line, " — {}", facts.join("; "));
        }
        lines.push(line);
    }
    let evidence = if lines.is_empty() {
        "—".to_owned()
    } else {
        lines.join("<br>")
    };
    let _ = writeln!(out, " {} | {evidence} |", ids.join(", "));
}
