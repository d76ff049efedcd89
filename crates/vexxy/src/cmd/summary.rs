//! The triage summary: a table for people, JSON for machines.

use std::{fmt::Write as _, time::Duration};

use anyhow::Result;
use serde_json::json;
use vexxy_analyze::{ReportMismatch, Timings};
use vexxy_decide::{Band, Summary};
use vexxy_model::{Product, Status};

fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        "0%".into()
    } else {
        format!("{:.0}%", 100.0 * n as f64 / of as f64)
    }
}

pub(crate) fn print_text(
    product: &Product,
    report: &vexxy_ingest::Report,
    s: &Summary,
    timings: &Timings,
    mismatch: Option<&ReportMismatch>,
    to_stdout: bool,
) {
    let band = |b: Band| s.automated_by_band.get(&b).copied().unwrap_or(0);
    let status = |st: Status| s.by_status.get(&st).copied().unwrap_or(0);
    let mut t = String::new();
    let _ = writeln!(t, "vexxy triage for {product}");
    let _ = writeln!(
        t,
        "  report: {} ({} findings, {} vulnerabilities)",
        report.tool.as_deref().unwrap_or(&report.format.to_string()),
        s.findings,
        s.statements
    );
    let _ = writeln!(
        t,
        "  decided automatically    {:>5}  {}",
        s.automated(),
        pct(s.automated(), s.findings)
    );
    let _ = writeln!(t, "    high confidence ≥0.85  {:>5}", band(Band::High));
    let _ = writeln!(t, "    medium 0.60–0.85       {:>5}", band(Band::Medium));
    let _ = writeln!(t, "    low <0.60              {:>5}", band(Band::Low));
    let _ = writeln!(t, "  existing statements kept {:>5}", s.existing);
    let _ = writeln!(
        t,
        "  under investigation      {:>5}  {}",
        s.under_investigation,
        pct(s.under_investigation, s.findings)
    );
    let _ = writeln!(t, "  left for human review    {:>5}", s.needs_review);
    let _ = writeln!(
        t,
        "  status: not_affected {}, affected {}, fixed {}, under_investigation {}",
        status(Status::NotAffected),
        status(Status::Affected),
        status(Status::Fixed),
        status(Status::UnderInvestigation)
    );
    for (j, n) in &s.by_justification {
        let _ = writeln!(t, "    {j}: {n}");
    }
    if let Some(m) = mismatch {
        let theirs = m
            .report_digests
            .first()
            .or(m.report_image_id.as_ref())
            .map_or_else(|| "no digest".to_owned(), ToString::to_string);
        let _ = writeln!(
            t,
            "  report made for another image ({theirs}): statements carry this image's versions"
        );
        for c in &m.changed_versions {
            let _ = writeln!(
                t,
                "    {} {} → installed {}",
                c.package, c.reported, c.installed
            );
        }
        if !m.not_installed.is_empty() {
            let names: Vec<&str> = m.not_installed.iter().map(String::as_str).collect();
            let _ = writeln!(t, "    not installed here: {}", names.join(", "));
        }
    }
    let total: Duration = timings.total();
    let parts: Vec<String> = timings
        .phases()
        .iter()
        .map(|(p, d)| format!("{} {}ms", p.short(), d.as_millis()))
        .collect();
    let _ = writeln!(t, "  time: {}ms ({})", total.as_millis(), parts.join(", "));
    if to_stdout {
        crate::output::print(&t);
    } else {
        eprint!("{t}");
    }
}

pub(crate) fn print_json(
    product: &Product,
    report: &vexxy_ingest::Report,
    s: &Summary,
    timings: &Timings,
    mismatch: Option<&ReportMismatch>,
    to_stdout: bool,
) -> Result<()> {
    let v = json!({
        "product": product.to_string(),
        "report": { "format": report.format.to_string(), "tool": report.tool },
        "findings": s.findings,
        "vulnerabilities": s.statements,
        "decided_automatically": s.automated(),
        "by_confidence": {
            "high": s.automated_by_band.get(&Band::High).copied().unwrap_or(0),
            "medium": s.automated_by_band.get(&Band::Medium).copied().unwrap_or(0),
            "low": s.automated_by_band.get(&Band::Low).copied().unwrap_or(0),
        },
        "existing_statements": s.existing,
        "under_investigation": s.under_investigation,
        "needs_review": s.needs_review,
        "by_status": s.by_status.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "by_justification": s.by_justification,
        "report_mismatch": mismatch.map(|m| json!({
            "report_digests": m.report_digests.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "report_image_id": m.report_image_id.as_ref().map(ToString::to_string),
            "image_digest": m.image_digest.as_ref().map(ToString::to_string),
            "changed_versions": m.changed_versions.iter().map(|c| json!({
                "package": c.package, "reported": c.reported, "installed": c.installed,
            })).collect::<Vec<_>>(),
            "not_installed": m.not_installed,
        })),
        "timings_ms": timings.phases().iter().map(|(p, d)| (p.short().to_owned(), json!(d.as_millis() as u64))).collect::<serde_json::Map<_, _>>(),
    });
    let text = serde_json::to_string_pretty(&v)?;
    if to_stdout {
        crate::output::print(&format!("{text}\n"));
    } else {
        eprintln!("{text}");
    }
    Ok(())
}
