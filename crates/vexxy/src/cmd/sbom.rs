//! `vexxy sbom IMAGE`: catalog the image and write an SBOM with file ownership.

use anyhow::{Context, Result};

use super::image;
use crate::{
    cli::{SbomArgs, SbomFormat},
    exit::Exit,
    output,
    progress::Phase,
};

pub(crate) fn run(args: &SbomArgs, quiet: bool) -> Result<Exit> {
    let now = super::timestamp(args.timestamp.as_deref())?;
    let resolved = image::resolve(&args.image, &args.fetch, image::Placement::Scratch, quiet)?;
    let root = vexxy_rootfs::RootFs::open(&resolved.rootfs)
        .with_context(|| format!("opening rootfs {}", resolved.rootfs.display()))?;
    let phase = Phase::start("cataloging packages", quiet);
    let catalog =
        vexxy_catalog::catalog(&root).with_context(|| format!("cataloging {}", args.image))?;
    for w in &catalog.warnings {
        tracing::warn!("{w}");
    }
    phase.finish(&format!("{} packages", catalog.inventory.packages().len()));
    let subject = vexxy_sbom::SbomSubject {
        name: resolved.product.name.clone(),
        digest: resolved.product.digest.clone(),
        distro: catalog.distro.as_ref().map(|d| match &d.version_id {
            Some(v) => format!("{}-{v}", d.id),
            None => d.id.clone(),
        }),
    };
    let opts = vexxy_sbom::SbomOptions {
        timestamp: now,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        include_files: !args.no_files,
    };
    let text = match args.format {
        SbomFormat::Cyclonedx => vexxy_sbom::write_cyclonedx(&subject, &catalog.inventory, &opts)?,
        SbomFormat::Spdx => vexxy_sbom::write_spdx(&subject, &catalog.inventory, &opts)?,
        SbomFormat::Json => vexxy_sbom::write_json(&subject, &catalog.inventory, &opts)?,
    };
    output::write(args.output.as_deref(), text.as_bytes())?;
    Ok(Exit::Done)
}
