//! Static evidence of an unpacked image, shared by `vex`, `analyze` and
//! `reevaluate`: the package inventory, the ELF reachability from the
//! entrypoint and the configuration rules that hold.

use std::{path::Path, path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use vexxy_model::{Inventory, ReachFacts};

use super::config::RunConfig;
use crate::{exit::BadInput, progress::Phase};

/// What static analysis of a rootfs found.
#[derive(Debug)]
pub(crate) struct StaticEvidence {
    pub(crate) inventory: Inventory,
    pub(crate) facts: ReachFacts,
    /// `id-version_id` of the image's OS, for SBOMs.
    pub(crate) distro: Option<String>,
}

/// Catalogs `dir`, builds the ELF graph from `run`'s entrypoint and
/// evaluates the built-in rules (when `builtin_rules`) and `rules` files.
pub(crate) fn gather(
    dir: &Path,
    run: &RunConfig,
    rules: &[PathBuf],
    builtin_rules: bool,
    quiet: bool,
    timings: &mut Vec<(&'static str, Duration)>,
) -> Result<StaticEvidence> {
    let mut facts = ReachFacts::default();
    let root = vexxy_rootfs::RootFs::open(dir)
        .with_context(|| format!("opening the rootfs {}", dir.display()))?;
    let phase = Phase::start("cataloging packages", quiet);
    let catalog =
        vexxy_catalog::catalog(&root).with_context(|| format!("cataloging {}", dir.display()))?;
    for w in &catalog.warnings {
        tracing::warn!("{w}");
    }
    timings.push((
        "catalog",
        phase.finish(&format!("{} packages", catalog.inventory.packages().len())),
    ));
    let inventory = catalog.inventory;
    let distro = catalog.distro.as_ref().map(|d| match &d.version_id {
        Some(v) => format!("{}-{v}", d.id),
        None => d.id.clone(),
    });

    let phase = Phase::start("analysing ELF dependencies", quiet);
    let opts = vexxy_static::ScanOptions {
        env: run.env.clone(),
        ..vexxy_static::ScanOptions::default()
    };
    let graph = vexxy_static::scan(&root, &opts)
        .with_context(|| format!("scanning ELF objects in {}", dir.display()))?;
    let mut entry: Vec<String> = Vec::new();
    if run.argv.is_empty() {
        tracing::warn!(
            "no entrypoint given (--entrypoint or --image-config): ELF reachability is skipped"
        );
    } else {
        entry = vexxy_static::entrypoints(&root, &run.argv, &run.env);
        if entry.is_empty() {
            return Err(BadInput(format!(
                "entrypoint {:?} does not resolve to a program in {}",
                run.argv.join(" "),
                dir.display()
            ))
            .into());
        }
        let loaders = vexxy_static::builtin_loaders();
        facts.elf = Some(vexxy_static::reach(
            &graph, &entry, &loaders, &root, &inventory,
        ));
    }
    timings.push(("elf", phase.finish("")));

    let phase = Phase::start("evaluating configuration rules", quiet);
    if builtin_rules {
        facts.rules.extend(vexxy_static::evaluate(
            &vexxy_static::builtin_rules(),
            &root,
            &entry,
        )?);
    }
    for path in rules {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BadInput(format!("reading rules {}: {e}", path.display())))?;
        let parsed = vexxy_static::parse_rules(&text, path)?;
        facts
            .rules
            .extend(vexxy_static::evaluate(&parsed, &root, &entry)?);
    }
    timings.push((
        "rules",
        phase.finish(&format!("{} rules hold", facts.rules.len())),
    ));
    Ok(StaticEvidence {
        inventory,
        facts,
        distro,
    })
}
