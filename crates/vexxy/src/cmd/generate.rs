//! `vexxy vex --scan …`: report (+ SBOM, rootfs, rules, existing VEX) → VEX.

use std::{path::Path, time::Duration};

use anyhow::{Context, Result};
use vexxy_model::{Inventory, InventorySource, Product, ReachFacts, VexStatement};

use super::{config, summary};
use crate::{
    cli::{GenerateArgs, SummaryFormat, VexFormat},
    exit::{BadInput, Exit},
    output,
    progress::Phase,
};

pub(crate) fn run(args: &GenerateArgs, quiet: bool) -> Result<Exit> {
    let mut timings: Vec<(&'static str, Duration)> = Vec::new();
    let now = super::timestamp(args.timestamp.as_deref())?;
    if !(0.0..=1.0).contains(&args.review_below) {
        return Err(BadInput(format!(
            "--review-below {} is outside 0..1",
            args.review_below
        ))
        .into());
    }

    // Inputs.
    let phase = Phase::start("reading inputs", quiet);
    let scan_path = args
        .scan
        .as_deref()
        .ok_or_else(|| BadInput("--scan FILE is required".into()))?;
    let report = read_report(scan_path)?;
    let sbom = args.sbom.as_deref().map(read_sbom).transpose()?;
    let mut existing: Vec<VexStatement> = Vec::new();
    for path in &args.existing {
        existing.extend(super::vexdocs::read(path)?.statements);
    }
    timings.push((
        "inputs",
        phase.finish(&format!("{} findings", report.findings.len())),
    ));

    // The image itself, when given: its rootfs, config and identity.
    let resolved = args
        .image
        .as_deref()
        .map(|r| super::image::resolve(r, &args.fetch, super::image::Placement::Cached, quiet))
        .transpose()?;
    let rootfs_dir = args
        .rootfs
        .clone()
        .or_else(|| resolved.as_ref().map(|r| r.rootfs.clone()));
    let product = match (&args.product, &resolved) {
        (None, Some(r)) => r.product.clone(),
        _ => product(args, &report)?,
    };
    if product.digest.is_none() && !args.allow_unpinned_product {
        return Err(BadInput(format!(
            "no image digest known for {}: a VEX product without a digest applies to every image of that name; \
             pass --product NAME@sha256:DIGEST (or --allow-unpinned-product)",
            product.name
        ))
        .into());
    }

    // Inventory and static facts from the rootfs.
    let mut facts = ReachFacts::default();
    let mut inventory: Option<Inventory> = sbom
        .as_ref()
        .map(|s| Inventory::new(InventorySource::Sbom, s.packages.clone()));
    if let Some(dir) = &rootfs_dir {
        let run = run_config(args, resolved.as_ref().map(|r| &r.run))?;
        let found = super::evidence::gather(
            dir,
            &run,
            &args.rules,
            !args.no_builtin_rules,
            quiet,
            &mut timings,
        )?;
        facts = found.facts;
        let inv = found.inventory;
        inventory = Some(inv);
    } else if !args.rules.is_empty() || !args.entrypoint.is_empty() || args.image_config.is_some() {
        return Err(
            BadInput("--rules, --entrypoint and --image-config need --rootfs DIR".into()).into(),
        );
    }

    // Decide.
    let phase = Phase::start("deciding", quiet);
    let inputs = vexxy_decide::Inputs {
        product: &product,
        findings: &report.findings,
        inventory: inventory.as_ref(),
        facts: &facts,
        existing: &existing,
        profile: None,
    };
    let policy = vexxy_decide::Policy {
        review_below: args.review_below,
        min_confidence: args.min_confidence,
    };
    let outcome = vexxy_decide::decide(&inputs, &policy);
    timings.push(("decide", phase.finish("")));

    // Write.
    if outcome.statements.is_empty() {
        // VEX documents need at least one statement; a clean report is not an error.
        eprintln!(
            "{}: no findings, so there is no VEX to write",
            scan_path.display()
        );
        return Ok(Exit::Done);
    }
    let phase = Phase::start("writing", quiet);
    let doc = vexxy_decide::document(
        outcome.statements,
        &args.author,
        concat!("vexxy/", env!("CARGO_PKG_VERSION")),
        now,
    );
    let text = match args.format {
        VexFormat::Openvex => vexxy_vex::write_openvex(
            &doc,
            &vexxy_vex::OpenVexOptions {
                embed_evidence: args.embed_evidence,
                pretty: true,
            },
        )?,
        VexFormat::Cyclonedx => vexxy_vex::write_cyclonedx(
            &doc,
            &vexxy_vex::CycloneDxOptions {
                sbom: sbom.as_ref().and_then(bom_link),
                embed_evidence: args.embed_evidence,
            },
        )?,
        VexFormat::Csaf => vexxy_vex::write_csaf(&doc, &vexxy_vex::CsafOptions::default())?,
    };
    let evidence = args
        .evidence_out
        .as_ref()
        .map(|_| vexxy_vex::write_evidence(&doc))
        .transpose()?;
    output::write(args.output.as_deref(), text.as_bytes())?;
    if let (Some(path), Some(evidence)) = (&args.evidence_out, evidence) {
        output::write_atomic(path, evidence.as_bytes(), None)?;
    }
    timings.push(("write", phase.finish("")));

    // The summary goes to stdout only when the document does not.
    let to_stdout = args.output.as_deref().is_some_and(|p| p != Path::new("-"));
    match args.summary {
        SummaryFormat::None => {}
        SummaryFormat::Text => {
            summary::print_text(&product, &report, &outcome.summary, &timings, to_stdout)
        }
        SummaryFormat::Json => {
            summary::print_json(&product, &report, &outcome.summary, &timings, to_stdout)?
        }
    }
    let open = outcome
        .summary
        .by_status
        .get(&vexxy_model::Status::UnderInvestigation)
        .copied()
        .unwrap_or(0);
    if args.fail_on_undecided && open > 0 {
        return Ok(Exit::Undecided);
    }
    Ok(Exit::Done)
}

pub(crate) fn read_report(path: &Path) -> Result<vexxy_ingest::Report> {
    match vexxy_ingest::read(path, &vexxy_ingest::Limits::default())? {
        vexxy_ingest::Input::Report(r) => Ok(r),
        vexxy_ingest::Input::Sbom(s) => Err(BadInput(format!(
            "--scan {}: is an SBOM ({}), not a scanner report; pass it with --sbom",
            path.display(),
            s.format
        ))
        .into()),
    }
}

pub(crate) fn read_sbom(path: &Path) -> Result<vexxy_ingest::Sbom> {
    match vexxy_ingest::read(path, &vexxy_ingest::Limits::default())? {
        vexxy_ingest::Input::Sbom(s) => Ok(s),
        vexxy_ingest::Input::Report(r) => Err(BadInput(format!(
            "--sbom {}: is a scanner report ({}), not an SBOM; pass it with --scan",
            path.display(),
            r.format
        ))
        .into()),
    }
}

/// `--product`, else the report's image name and digest.
fn product(args: &GenerateArgs, report: &vexxy_ingest::Report) -> Result<Product> {
    if let Some(p) = &args.product {
        return Product::parse(p).with_context(|| format!("--product {p:?}"));
    }
    let name = report.target.clone().ok_or_else(|| {
        BadInput("the report names no image: pass --product NAME@sha256:DIGEST".into())
    })?;
    let mut product = Product::parse(&name).unwrap_or(Product {
        name,
        tag: None,
        digest: None,
    });
    if product.digest.is_none() {
        product.digest.clone_from(&report.target_digest);
    }
    Ok(product)
}

/// `--image-config`, else the image's own config; `--entrypoint` overrides the command.
fn run_config(
    args: &GenerateArgs,
    from_image: Option<&config::RunConfig>,
) -> Result<config::RunConfig> {
    let mut run = match (&args.image_config, from_image) {
        (Some(p), _) => config::read(p)?,
        (None, Some(r)) => r.clone(),
        (None, None) => config::RunConfig::default(),
    };
    if !args.entrypoint.is_empty() {
        run.argv = config::argv_from_flags(&args.entrypoint);
    }
    Ok(run)
}

fn bom_link(sbom: &vexxy_ingest::Sbom) -> Option<vexxy_vex::BomLink> {
    Some(vexxy_vex::BomLink {
        serial_number: sbom.serial_number.clone()?,
        version: sbom.version.unwrap_or(1),
        refs: sbom.bom_refs.clone(),
    })
}
