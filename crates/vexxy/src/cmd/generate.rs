//! `vexxy vex --scan …`: a report (+ SBOM, rootfs or image, rules,
//! existing VEX) decided from static evidence, written as one document.
//! With Kubescape profiles (`--kubescape-profile`) of the image, the
//! report is decided as `vexxy reevaluate` decides it from a stored
//! profile: the imported one.

use std::path::{Path, PathBuf};

use anyhow::Result;
use vexxy_analyze::{
    AnalyzeError, DecideSettings, StaticRequest, StaticTarget, VexFormat as Format, VexOptions,
};
use vexxy_model::Product;

use super::{inputs, summary};
use crate::{
    cli::{GenerateArgs, SummaryFormat, VexFormat},
    exit::Exit,
    output,
};

pub(crate) fn run(args: &GenerateArgs, quiet: bool) -> Result<Exit> {
    let scan_path = args
        .scan
        .as_deref()
        .ok_or_else(|| AnalyzeError::bad_input("--scan FILE is required"))?;
    let mut decide = DecideSettings::at(inputs::timestamp(args.timestamp.as_deref())?);
    decide.policy = vexxy_analyze::Policy {
        review_below: inputs::confidence("--review-below", args.review_below)?,
        min_confidence: inputs::confidence("--min-confidence", args.min_confidence)?,
    };
    decide.author.clone_from(&args.author);
    decide.rules = inputs::rules(&args.rules)?;
    decide.builtin_rules = !args.no_builtin_rules;
    decide.existing = inputs::existing(&args.existing)?;
    decide.advisory_symbols = inputs::advisory_symbols(args.advisories.as_deref())?;
    let kubescape = kubescape_objects(&args.kubescape_profile)?;
    // Kubescape's affected/under_investigation/fixed statements are
    // respected; its not_affected ones are claims vexxy decides itself.
    decide.existing.extend(kubescape.statements.iter().cloned());
    decide.claims.extend(kubescape.claims.iter().cloned());
    let report = inputs::report(scan_path)?;
    let sbom = args.sbom.as_deref().map(inputs::sbom).transpose()?;
    let target = match (&args.rootfs, &args.image) {
        (Some(dir), _) => StaticTarget::Rootfs(dir.clone()),
        (None, Some(reference)) => {
            StaticTarget::Image(Box::new(inputs::image(reference, &args.fetch)?))
        }
        (None, None) => StaticTarget::None,
    };
    if target == StaticTarget::None
        && (!args.rules.is_empty() || !args.entrypoint.is_empty() || args.image_config.is_some())
    {
        return Err(AnalyzeError::bad_input(
            "--rules, --entrypoint and --image-config need --rootfs DIR or --image IMAGE",
        )
        .into());
    }
    let mut run_config = args
        .image_config
        .as_deref()
        .map(inputs::image_config)
        .transpose()?;
    if !args.entrypoint.is_empty() {
        let mut config = run_config.unwrap_or_default();
        config.argv = entrypoint_words(&args.entrypoint);
        config.entrypoint_len = config.argv.len();
        run_config = Some(config);
    }
    let product = args
        .product
        .as_deref()
        .map(|p| {
            Product::parse(p).map_err(|e| AnalyzeError::bad_input(format!("--product {p:?}: {e}")))
        })
        .transpose()?;
    let bom_link = sbom.as_ref().and_then(bom_link);
    if !kubescape.profiles.is_empty() {
        let Some(reference) = args.image.as_deref() else {
            return Err(AnalyzeError::bad_input(
                "--kubescape-profile: an ApplicationProfile or ContainerProfile needs --image IMAGE, the image it was recorded from (its paths are matched against that image's files)",
            )
            .into());
        };
        if args.rootfs.is_some() || args.product.is_some() || run_config.is_some() {
            return Err(AnalyzeError::bad_input(
                "--kubescape-profile with an ApplicationProfile or ContainerProfile decides about --image: --rootfs, --product, --entrypoint and --image-config do not apply (name the product with --name)",
            )
            .into());
        }
        let image = inputs::image(reference, &args.fetch)?;
        let stamp = decide.timestamp;
        let outcome = super::with_analysis(quiet, |ctx| {
            reevaluate_kubescape(kubescape.profiles, image, report.clone(), decide, args, ctx)
        })?;
        let document = (!outcome.decision.statements.is_empty()).then(|| {
            vexxy_decide::document(
                outcome.decision.statements.clone(),
                &args.author,
                concat!("vexxy/", env!("CARGO_PKG_VERSION")),
                stamp,
            )
        });
        return finish(
            args,
            scan_path,
            &report,
            Decided {
                product: &outcome.product,
                decision: &outcome.decision,
                document: document.as_ref(),
                report_mismatch: outcome.report_mismatch.as_ref(),
                timings: &outcome.timings,
            },
            bom_link,
        );
    }
    let request = StaticRequest {
        report,
        sbom,
        target,
        run_config,
        product,
        allow_unpinned_product: args.allow_unpinned_product,
        allow_report_mismatch: args.allow_report_mismatch,
        decide,
    };
    let outcome = super::with_analysis(quiet, |ctx| vexxy_analyze::decide_static(&request, ctx))?;
    finish(
        args,
        scan_path,
        &request.report,
        Decided {
            product: &outcome.product,
            decision: &outcome.decision,
            document: outcome.document.as_ref(),
            report_mismatch: outcome.report_mismatch.as_ref(),
            timings: &outcome.timings,
        },
        bom_link,
    )
}

/// What either way of deciding gives back.
struct Decided<'a> {
    product: &'a Product,
    decision: &'a vexxy_decide::Outcome,
    document: Option<&'a vexxy_model::VexDocument>,
    report_mismatch: Option<&'a vexxy_analyze::ReportMismatch>,
    timings: &'a vexxy_analyze::Timings,
}

/// Writes the document, the evidence and the summary.
fn finish(
    args: &GenerateArgs,
    scan_path: &Path,
    report: &vexxy_ingest::Report,
    outcome: Decided<'_>,
    bom_link: Option<vexxy_vex::BomLink>,
) -> Result<Exit> {
    let Some(doc) = outcome.document else {
        // VEX documents need at least one statement; a clean report is not an error.
        eprintln!(
            "{}: no findings, so there is no VEX to write",
            scan_path.display()
        );
        return Ok(Exit::Done);
    };
    let format = match args.format {
        VexFormat::Openvex => Format::OpenVex,
        VexFormat::Cyclonedx => Format::CycloneDx,
        VexFormat::Csaf => Format::Csaf,
    };
    let text = vexxy_analyze::render_vex(
        doc,
        format,
        &VexOptions {
            embed_evidence: args.embed_evidence,
            bom_link,
        },
    )?;
    let evidence = args
        .evidence_out
        .as_ref()
        .map(|_| vexxy_analyze::render_evidence(doc))
        .transpose()?;
    output::write(args.output.as_deref(), &text)?;
    if let (Some(path), Some(evidence)) = (&args.evidence_out, evidence) {
        output::write_atomic(path, &evidence, None)?;
    }

    // the summary goes to stdout only when the document does not
    let to_stdout = args.output.as_deref().is_some_and(|p| p != Path::new("-"));
    let s = &outcome.decision.summary;
    match args.summary {
        SummaryFormat::None => {}
        SummaryFormat::Text => summary::print_text(
            outcome.product,
            report,
            s,
            outcome.timings,
            outcome.report_mismatch,
            to_stdout,
        ),
        SummaryFormat::Json => summary::print_json(
            outcome.product,
            report,
            s,
            outcome.timings,
            outcome.report_mismatch,
            to_stdout,
        )?,
    }
    let open = s
        .by_status
        .get(&vexxy_model::Status::UnderInvestigation)
        .copied()
        .unwrap_or(0);
    if args.fail_on_undecided && open > 0 {
        return Ok(Exit::Undecided);
    }
    Ok(Exit::Done)
}

/// Every `--kubescape-profile` file, read (bounded) and combined.
fn kubescape_objects(paths: &[PathBuf]) -> Result<vexxy_kubescape::Import, AnalyzeError> {
    let mut objects = Vec::new();
    for path in paths {
        let bytes = inputs::read_file("--kubescape-profile", path, vexxy_kubescape::MAX_BYTES)?;
        objects.extend(
            vexxy_kubescape::parse(&bytes, path)
                .map_err(|e| AnalyzeError::bad_input(format!("--kubescape-profile {e}")))?,
        );
    }
    vexxy_kubescape::import(&objects)
        .map_err(|e| AnalyzeError::bad_input(format!("--kubescape-profile {e}")))
}

/// The report decided from the Kubescape profile of `image`: the profile
/// whose image digest is the image's (its manifest, or the index it was
/// picked from, which is what Kubernetes records for a multi-platform
/// image), taken to have run the image's own command, then reevaluated.
fn reevaluate_kubescape(
    profiles: Vec<vexxy_model::ExecutionProfile>,
    image: vexxy_analyze::ImageRequest,
    report: vexxy_ingest::Report,
    decide: DecideSettings,
    args: &GenerateArgs,
    ctx: &vexxy_analyze::Context<'_>,
) -> Result<vexxy_analyze::AnalysisOutcome, AnalyzeError> {
    let mut timings = vexxy_analyze::Timings::default();
    let resolved =
        vexxy_analyze::resolve(&image, vexxy_analyze::Placement::Cached, ctx, &mut timings)?;
    let identity = resolved.identity();
    let argv = resolved.run.argv.clone();
    drop(resolved);
    let manifest = identity.manifest.as_ref().map(ToString::to_string);
    let index = identity.index.as_ref().map(ToString::to_string);
    let Some(mut profile) = profiles.into_iter().find(|p| {
        p.run.image_digest.is_some()
            && (p.run.image_digest == manifest || p.run.image_digest == index)
    }) else {
        // The files' own values (their image ids) are not echoed.
        let files = args
            .kubescape_profile
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(AnalyzeError::bad_input(format!(
            "--kubescape-profile {files}: no ApplicationProfile or ContainerProfile is of {} ({}): their containers' imageID records another image (or no digest); give the profile of this image",
            image.reference,
            manifest.as_deref().unwrap_or("no digest")
        )));
    };
    profile.run.image_digest = manifest;
    // Kubescape does not record the container's command: take the image's
    profile.run.command = argv;
    let origin = profile
        .run
        .spans
        .iter()
        .map(|s| s.target.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    vexxy_analyze::reevaluate(
        &vexxy_analyze::ReevaluateRequest {
            profile,
            profile_origin: format!("Kubescape {origin}"),
            image,
            findings: vexxy_analyze::Findings::Report(report),
            decide,
            allow_report_mismatch: args.allow_report_mismatch,
        },
        ctx,
    )
}

/// `--entrypoint` words: each flag is a word; a single flag with spaces is split.
fn entrypoint_words(words: &[String]) -> Vec<String> {
    if let [one] = words {
        one.split_whitespace().map(str::to_owned).collect()
    } else {
        words.to_vec()
    }
}

fn bom_link(sbom: &vexxy_ingest::Sbom) -> Option<vexxy_vex::BomLink> {
    Some(vexxy_vex::BomLink {
        serial_number: sbom.serial_number.clone()?,
        version: sbom.version.unwrap_or(1),
        refs: sbom.bom_refs.clone(),
    })
}
