//! `vexxy vex --scan …`: a report (+ SBOM, rootfs or image, rules,
//! existing VEX) decided from static evidence, written as one document.

use std::path::Path;

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

    let Some(doc) = &outcome.document else {
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
            &outcome.product,
            &request.report,
            s,
            &outcome.timings,
            outcome.report_mismatch.as_ref(),
            to_stdout,
        ),
        SummaryFormat::Json => summary::print_json(
            &outcome.product,
            &request.report,
            s,
            &outcome.timings,
            outcome.report_mismatch.as_ref(),
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
