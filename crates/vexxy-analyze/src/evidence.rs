//! Static evidence of an unpacked image, shared by every entry point: the
//! package inventory, the ELF reachability from the entrypoint and the
//! configuration rules that hold.

use std::path::Path;

use vexxy_model::{Inventory, ReachFacts};
use vexxy_static::RuleSet;

use crate::{context::Timings, AnalyzeError, Context, Phase, ResultExt as _, RunConfig};

/// What static analysis of a rootfs found.
#[derive(Debug)]
pub struct StaticEvidence {
    /// The packages with the files each owns.
    pub inventory: Inventory,
    /// ELF reachability and rule outcomes.
    pub facts: ReachFacts,
    /// `id-version_id` of the image's OS, for SBOMs.
    pub distro: Option<String>,
}

/// The packages of a rootfs and its OS as `id-version_id`.
pub(crate) fn catalog(
    root: &vexxy_rootfs::RootFs,
    what: &str,
    ctx: &Context<'_>,
    timings: &mut Timings,
) -> Result<(Inventory, Option<String>), AnalyzeError> {
    let step = ctx.start(Phase::Cataloging);
    let catalog = vexxy_catalog::catalog(root).doing_with(|| format!("cataloging {what}"))?;
    for w in &catalog.warnings {
        tracing::warn!("{w}");
    }
    timings.finish(
        ctx,
        step,
        format!("{} packages", catalog.inventory.packages().len()),
    );
    let distro = catalog.distro.as_ref().map(|d| match &d.version_id {
        Some(v) => format!("{}-{v}", d.id),
        None => d.id.clone(),
    });
    Ok((catalog.inventory, distro))
}

/// Catalogs `dir`, builds the ELF graph from `run`'s entrypoint and
/// evaluates the built-in rules (when `builtin_rules`) and `rules`.
pub(crate) fn gather(
    dir: &Path,
    run: &RunConfig,
    rules: &[RuleSet],
    builtin_rules: bool,
    ctx: &Context<'_>,
    timings: &mut Timings,
) -> Result<StaticEvidence, AnalyzeError> {
    let mut facts = ReachFacts::default();
    let root = vexxy_rootfs::RootFs::open(dir)
        .doing_with(|| format!("opening the rootfs {}", dir.display()))?;
    let (inventory, distro) = catalog(&root, &dir.display().to_string(), ctx, timings)?;
    ctx.check_cancelled()?;

    let step = ctx.start(Phase::ElfAnalysis);
    let opts = vexxy_static::ScanOptions {
        env: run.env.clone(),
        ..vexxy_static::ScanOptions::default()
    };
    let graph = vexxy_static::scan(&root, &opts)
        .doing_with(|| format!("scanning ELF objects in {}", dir.display()))?;
    let mut entry: Vec<String> = Vec::new();
    if run.argv.is_empty() {
        tracing::warn!(
            "no entrypoint given (--entrypoint or --image-config): ELF reachability is skipped"
        );
    } else {
        entry = vexxy_static::entrypoints(&root, &run.argv, &run.env);
        if entry.is_empty() {
            return Err(AnalyzeError::bad_input(format!(
                "entrypoint {:?} does not resolve to a program in {}",
                run.argv.join(" "),
                dir.display()
            )));
        }
        let loaders = vexxy_static::builtin_loaders();
        facts.elf = Some(vexxy_static::reach(
            &graph, &entry, &loaders, &root, &inventory,
        ));
    }
    timings.finish(ctx, step, "");

    let step = ctx.start(Phase::Rules);
    if builtin_rules {
        facts.rules.extend(vexxy_static::evaluate(
            &vexxy_static::builtin_rules(),
            &root,
            &entry,
        )?);
    }
    for set in rules {
        facts
            .rules
            .extend(vexxy_static::evaluate(set, &root, &entry)?);
    }
    timings.finish(ctx, step, format!("{} rules hold", facts.rules.len()));
    Ok(StaticEvidence {
        inventory,
        facts,
        distro,
    })
}
