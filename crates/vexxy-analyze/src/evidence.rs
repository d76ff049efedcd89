//! Static evidence of an unpacked image, shared by every entry point: the
//! package inventory, the ELF reachability from the entrypoint and the
//! configuration rules that hold.

use std::path::Path;

use vexxy_model::{Finding, Inventory, NamedFunctions, ReachFacts};
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
    if builtin_rules {
        facts
            .security_data
            .extend(vexxy_static::builtin_rules().security_data);
    }
    for set in rules {
        facts
            .security_data
            .extend(set.security_data.iter().cloned());
    }
    facts.links = vexxy_static::links(&root);
    timings.finish(ctx, step, format!("{} rules hold", facts.rules.len()));
    Ok(StaticEvidence {
        inventory,
        facts,
        distro,
    })
}

/// The functions the findings' advisories name, resolved in the ELF objects
/// their packages own in the rootfs at `dir` (`docs/functions.md`): the
/// symbols of OSV records (`osv`) where one covers the finding, else names
/// mined from its description. An unreadable rootfs resolves nothing (a
/// warning): function-level evidence is optional.
pub(crate) fn named_functions(
    dir: &Path,
    inventory: &Inventory,
    findings: &[Finding],
    osv: &[vexxy_ingest::OsvSymbols],
) -> Vec<NamedFunctions> {
    let mut structured: Vec<vexxy_static::functions::Candidates> = Vec::new();
    for f in findings {
        let mut names: Vec<String> = osv
            .iter()
            .filter(|s| s.matches(f))
            .flat_map(|s| s.symbols.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        let seen = structured
            .iter()
            .any(|c| c.vulnerability == f.vulnerability.id && c.package.name == f.package.name);
        if !names.is_empty() && !seen {
            structured.push(vexxy_static::functions::Candidates {
                vulnerability: f.vulnerability.id.clone(),
                package: f.package.clone(),
                origin: vexxy_model::SymbolOrigin::Osv,
                names,
            });
        }
    }
    let candidates =
        vexxy_static::functions::merge(structured, vexxy_static::functions::mined(findings));
    if candidates.is_empty() {
        return Vec::new();
    }
    let root = match vexxy_rootfs::RootFs::open(dir) {
        Ok(root) => root,
        Err(e) => {
            tracing::warn!("not resolving advisory functions: {e}");
            return Vec::new();
        }
    };
    let named = vexxy_static::functions::resolve(&root, inventory, &candidates);
    let present = named
        .iter()
        .filter(|n| {
            matches!(
                n.resolution,
                vexxy_model::FunctionResolution::Present { .. }
            )
        })
        .count();
    tracing::info!(
        findings = named.len(),
        present,
        "functions named by advisories resolved"
    );
    named
}
