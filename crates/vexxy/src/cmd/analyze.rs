//! `vexxy analyze IMAGE` (the whole job), `vexxy reevaluate` (a stored
//! profile, a new report) and `vexxy diff`: flags become a request, the
//! analysis library does the work, the artifacts land in one directory.

use std::{path::Path, time::Instant};

use anyhow::Result;
use vexxy_analyze::{
    AnalysisOutcome, AnalysisRequest, ArtifactKind, Findings, ProfileSource, ReevaluateRequest,
    ResultExt as _,
};

use super::{inputs, summary};
use crate::{
    cli::{AnalyzeArgs, DiffArgs, DiffFormat, ReevaluateArgs},
    exit::Exit,
    output,
};

pub(crate) fn analyze(args: &AnalyzeArgs, quiet: bool) -> Result<Exit> {
    let began = Instant::now();
    let request = AnalysisRequest {
        image: inputs::image(&args.image, &args.fetch)?,
        expected_digest: None,
        run: inputs::run(&args.sandbox)?,
        findings: inputs::findings(args.decide.scan.as_deref(), args.decide.sbom.as_deref())?,
        decide: inputs::decide(&args.decide)?,
        reuse_profile: !args.fresh,
        allow_report_mismatch: args.decide.allow_report_mismatch,
    };
    if !request.run.uprobes.is_empty() {
        return Err(vexxy_analyze::AnalyzeError::bad_input(
            "--uprobe is for `vexxy run`; `analyze` chooses the functions to count itself (docs/analyze.md)",
        )
        .into());
    }
    let outcome = super::with_analysis(quiet, |ctx| vexxy_analyze::analyze(&request, ctx))?;
    if !quiet && outcome.profile_source == ProfileSource::Stored {
        eprintln!(
            "reusing the stored profile of this image digest and run configuration; --fresh runs again"
        );
    }
    let exit = write_outputs(
        &outcome,
        &request.findings,
        &args.decide.out,
        args.decide.fail_on_undecided,
        quiet,
    )?;
    if !quiet {
        eprintln!("total {} ms", began.elapsed().as_millis());
    }
    Ok(exit)
}

pub(crate) fn reevaluate(args: &ReevaluateArgs, quiet: bool) -> Result<Exit> {
    let mut profile: Option<vexxy_model::ExecutionProfile> = None;
    for path in &args.profile {
        let bytes = inputs::read_file("--profile", path, 256 << 20)?;
        let next = vexxy_profile::parse(&bytes, &path.display().to_string())
            .doing_with(|| format!("reading the profile {}", path.display()))?;
        profile = Some(match profile {
            None => next,
            Some(so_far) => vexxy_profile::merge(so_far, next)
                .map_err(|e| crate::exit::BadInput(format!("--profile {}: {e}", path.display())))?,
        });
    }
    let profile = profile.ok_or_else(|| crate::exit::BadInput("--profile is required".into()))?;
    let origin = args
        .profile
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    let reference = args
        .image
        .clone()
        .unwrap_or_else(|| profile.run.image.clone());
    let request = ReevaluateRequest {
        profile,
        profile_origin: origin,
        image: inputs::image(&reference, &args.fetch)?,
        findings: inputs::findings(args.decide.scan.as_deref(), args.decide.sbom.as_deref())?,
        decide: inputs::decide(&args.decide)?,
        allow_report_mismatch: args.decide.allow_report_mismatch,
    };
    let outcome = super::with_analysis(quiet, |ctx| vexxy_analyze::reevaluate(&request, ctx))?;
    write_outputs(
        &outcome,
        &request.findings,
        &args.decide.out,
        args.decide.fail_on_undecided,
        quiet,
    )
}

pub(crate) fn diff(args: &DiffArgs) -> Result<Exit> {
    let side = |path: &Path| {
        vexxy_report::read_side(path)
            .map(|s| s.with_origin(path.display().to_string()))
            .map_err(vexxy_analyze::AnalyzeError::from)
    };
    let old = side(&args.old)?;
    let new = side(&args.new)?;
    let d = vexxy_report::diff(&old, &new);
    let text = match args.format {
        DiffFormat::Text => d.to_text(),
        DiffFormat::Markdown => d.to_markdown(),
        DiffFormat::Json => d.to_json().doing("rendering the diff")?,
    };
    output::print(&text);
    if args.fail_on_regression && d.regressions() > 0 {
        return Ok(Exit::Undecided);
    }
    Ok(Exit::Done)
}

/// Writes every artifact into `out` as one step: into a sibling temporary
/// directory first, which then takes the place of `out` (an atomic
/// exchange when `out` exists). A failure on the way (a full disk) leaves
/// `out` exactly as it was. Files in `out` that are not artifacts of an
/// analysis are kept; artifacts of an earlier analysis that this one did
/// not produce (its VEX when there are no findings now) are not, so they
/// cannot pass for this one's.
fn write_outputs(
    outcome: &AnalysisOutcome,
    findings: &Findings,
    out: &Path,
    fail_on_undecided: bool,
    quiet: bool,
) -> Result<Exit> {
    output::replace_dir(
        out,
        |dir| {
            for (kind, bytes) in outcome.artifacts.iter() {
                output::write_new(&dir.join(kind.file_name()), bytes)?;
            }
            Ok(())
        },
        |name| ArtifactKind::from_name(name).is_none(),
    )?;
    match findings.report() {
        Some(report) => summary::print_text(
            &outcome.product,
            report,
            &outcome.decision.summary,
            &outcome.timings,
            outcome.report_mismatch.as_ref(),
            false,
        ),
        None if !quiet => {
            let phases: Vec<String> = outcome
                .timings
                .phases()
                .iter()
                .map(|(p, d)| format!("{} {} ms", p.short(), d.as_millis()))
                .collect();
            eprintln!(
                "no scanner report: wrote the profile, runtime SBOM and report; phases: {}",
                phases.join(", ")
            );
        }
        None => {}
    }
    if !quiet {
        eprintln!(
            "runtime: {} of {} packages had code used; outputs in {}",
            outcome.used_packages,
            outcome.packages,
            out.display()
        );
    }
    Ok(if fail_on_undecided && outcome.undecided() > 0 {
        Exit::Undecided
    } else {
        Exit::Done
    })
}
