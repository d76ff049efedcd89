//! `vexxy sbom IMAGE`: catalog the image and write an SBOM with file ownership.

use anyhow::Result;

use super::inputs;
use crate::{
    cli::{SbomArgs, SbomFormat},
    exit::Exit,
    output,
};

pub(crate) fn run(args: &SbomArgs, quiet: bool) -> Result<Exit> {
    let now = inputs::timestamp(args.timestamp.as_deref())?;
    let request = inputs::image(&args.image, &args.fetch)?;
    let catalog = super::with_analysis(quiet, |ctx| vexxy_analyze::catalog_image(&request, ctx))?;
    let subject = vexxy_sbom::SbomSubject {
        name: catalog.product.name.clone(),
        digest: catalog.product.digest.clone(),
        distro: catalog.distro.clone(),
    };
    let opts = vexxy_sbom::SbomOptions {
        timestamp: now,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        include_files: !args.no_files,
    };
    let text = match args.format {
        SbomFormat::Cyclonedx => vexxy_sbom::write_cyclonedx(&subject, &catalog.inventory, &opts),
        SbomFormat::Spdx => vexxy_sbom::write_spdx(&subject, &catalog.inventory, &opts),
        SbomFormat::Json => vexxy_sbom::write_json(&subject, &catalog.inventory, &opts),
    }
    .map_err(vexxy_analyze::AnalyzeError::from)?;
    output::write(args.output.as_deref(), text.as_bytes())?;
    Ok(Exit::Done)
}
