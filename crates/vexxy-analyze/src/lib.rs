//! The analysis pipeline as a library: the API boundary the CLI and the
//! service both call, as rust-analyzer's `ide` crate is for its clients.
//!
//! ```text
//! AnalysisRequest ─▶ image (pull │ read) ─▶ rootfs (leased from the cache)
//!   ─▶ catalog ─▶ ELF graph ─▶ rules ─▶ functions to probe
//!   ─▶ stored profile │ sandboxed, exercised, traced run
//!   ─▶ decide ─▶ render ─▶ AnalysisOutcome { product, profile, decision, artifacts }
//! ```
//!
//! Entry points: [`analyze`] (the whole job), [`reevaluate`] (a new report
//! against a stored profile), [`record`] (a traced run, the profile only),
//! [`decide_static`] (a report decided from static evidence: `vexxy vex`),
//! [`catalog_image`] (an image's inventory: `vexxy sbom`).
//!
//! Invariants:
//! - Requests are plain typed data. Nothing here parses a command line or
//!   reads a file the caller names: reports, SBOMs, rules and test scripts
//!   arrive parsed or as bytes. The only files touched are the caches and
//!   scratch directories of [`Caches`], and the image itself.
//! - Every error carries its [`ErrorKind`], decided where it is made.
//! - Progress is a typed [`Phase`], reported on the calling thread.
//! - Cancellation is checked between phases and watched by the sandboxed
//!   run, which then tears down before the analysis returns.
//! - A cached rootfs is held by a lease while in use: no process evicts it.

mod cache;
mod consistency;
mod context;
pub mod distribute;
mod error;
mod evidence;
mod image;
mod outcome;
mod plan;
mod render;
mod request;
mod run_config;
mod scratch;

use std::{borrow::Cow, path::Path};

use vexxy_model::{Inventory, InventorySource, Product, ReachFacts};

pub use cache::{Caches, ProfileStore, DEFAULT_PROFILES_MAX_BYTES};
pub use consistency::{ImageIdentity, ReportMismatch, VersionChange};
pub use context::{Context, Phase, Progress, ProgressFn, Timings};
pub use error::{AnalyzeError, Classify, ErrorKind, ResultExt};
pub use evidence::StaticEvidence;
pub use image::{resolve, Placement, Resolved};
pub use outcome::{AnalysisOutcome, ArtifactKind, Artifacts, ProfileSource};
pub use render::{render_evidence, render_vex, VexFormat, VexOptions};
pub use request::{
    AnalysisRequest, DecideSettings, Findings, ImageRequest, RecordRequest, ReevaluateRequest,
    RunSettings, StaticRequest, StaticTarget, TestScript,
};
pub use run_config::RunConfig;

// the types requests are made of, so callers need no other crate
pub use vexxy_decide::Policy;
pub use vexxy_image::{ImageSource, Platform};
pub use vexxy_registry::Credentials;
pub use vexxy_run::{Phase as RunPhase, WindowPolicy, MAX_TIMEOUT as MAX_RUN_TIMEOUT};
pub use vexxy_sandbox::Limits as SandboxLimits;

/// The whole job: image → catalog → static evidence → sandboxed,
/// exercised, traced run (or a stored profile of the same run) →
/// verdicts → every artifact.
pub fn analyze(
    request: &AnalysisRequest,
    ctx: &Context<'_>,
) -> Result<AnalysisOutcome, AnalyzeError> {
    let mut timings = Timings::default();
    if !request.run.uprobes.is_empty() {
        return Err(AnalyzeError::bad_input(
            "an analysis chooses the functions to count itself; uprobes are for a recorded run (docs/analyze.md)",
        ));
    }
    ctx.check_cancelled()?;
    let resolved = resolve(&request.image, Placement::Cached, ctx, &mut timings)?;
    let product = resolved.pinned()?;
    if let Some(expected) = &request.expected_digest {
        resolved.check_digest(&request.image.reference, expected)?;
    }
    ctx.check_cancelled()?;

    // the process as it will run, so static analysis starts where the run does
    let mut planned = plan::plan(&request.image.reference, &resolved, &request.run, ctx)?;
    let mut found = evidence::gather(
        resolved.rootfs(),
        &planned.run_config,
        &request.decide.rules,
        request.decide.builtin_rules,
        ctx,
        &mut timings,
    )?;
    ctx.check_cancelled()?;

    let (findings, report_mismatch) = consistent_findings(
        &request.findings,
        &resolved,
        &found.inventory,
        request.allow_report_mismatch,
    )?;
    let findings = &*findings;
    found.facts.functions = evidence::named_functions(
        resolved.rootfs(),
        &found.inventory,
        findings,
        &osv_symbols(report_of(&request.findings), &request.decide),
    );
    let root = vexxy_rootfs::RootFs::open(resolved.rootfs())
        .doing_with(|| format!("opening the rootfs {}", resolved.rootfs().display()))?;
    planned.plan.uprobes = plan::probe_plan(findings, &found.inventory, &found.facts, &root);
    let key = plan::profile_key(
        &product,
        resolved.rootfs(),
        &planned.plan,
        planned.script.as_ref(),
    );
    let store = ctx.caches().profiles();
    let stored = if request.reuse_profile {
        store.get(&key)
    } else {
        None
    };
    let (profile, profile_source) = match stored {
        Some(mut profile) => {
            // the same digest and run, maybe under another name (another
            // tenant's): the profile speaks of this request's image
            profile.run.image.clone_from(&request.image.reference);
            tracing::info!(
                "reusing the stored profile of this image digest and run configuration ({})",
                store.dir().join(format!("{key}.json")).display()
            );
            (profile, ProfileSource::Stored)
        }
        None => {
            let output = execute(&planned, ctx, &mut timings)?;
            let stored = if plan::trustworthy(&output) {
                match store.put(&key, &output.profile) {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!("could not store the profile: {e}");
                        false
                    }
                }
            } else {
                tracing::info!("not storing this run's profile for reuse: it failed, lost events or could not probe everything");
                false
            };
            (output.profile, ProfileSource::Recorded { stored })
        }
    };
    ctx.check_cancelled()?;
    let mut outcome = finish(
        product,
        profile,
        profile_source,
        planned.command_override.as_ref(),
        &found,
        findings,
        &request.decide,
        ctx,
        timings,
    )?;
    outcome.report_mismatch = report_mismatch;
    Ok(outcome)
}

/// A (new) report decided from a stored profile, without running the
/// image: the profile must be of this image's digest.
pub fn reevaluate(
    request: &ReevaluateRequest,
    ctx: &Context<'_>,
) -> Result<AnalysisOutcome, AnalyzeError> {
    let mut timings = Timings::default();
    let resolved = resolve(&request.image, Placement::Cached, ctx, &mut timings)?;
    let product = resolved.pinned()?;
    let reference = &request.image.reference;
    let origin = &request.profile_origin;
    let digest = product.digest.as_ref().map(ToString::to_string);
    match (&request.profile.run.image_digest, &digest) {
        (Some(recorded), Some(digest)) if recorded == digest => {}
        (Some(recorded), Some(digest)) => {
            return Err(AnalyzeError::bad_input(format!(
                "the profile {origin} was recorded from {recorded}, not from {reference} ({digest}); \
                 analyze the new image"
            )));
        }
        _ => {
            return Err(AnalyzeError::bad_input(format!(
                "the profile {origin} names no image digest, so it cannot be tied to {reference}; \
                 record it by analyzing (or running) an image with a digest"
            )));
        }
    }
    // static analysis from the command the profile ran, with the image's environment
    let run_config = RunConfig {
        argv: request.profile.run.command.clone(),
        entrypoint_len: 0,
        env: resolved.run.env.clone(),
        ..RunConfig::default()
    };
    let mut found = evidence::gather(
        resolved.rootfs(),
        &run_config,
        &request.decide.rules,
        request.decide.builtin_rules,
        ctx,
        &mut timings,
    )?;
    let (findings, report_mismatch) = consistent_findings(
        &request.findings,
        &resolved,
        &found.inventory,
        request.allow_report_mismatch,
    )?;
    found.facts.functions = evidence::named_functions(
        resolved.rootfs(),
        &found.inventory,
        &findings,
        &osv_symbols(report_of(&request.findings), &request.decide),
    );
    // an image without a command of its own (a dir: rootfs) has nothing to override
    let command_override = if resolved.run.argv.is_empty() {
        None
    } else {
        vexxy_model::CommandOverride::between(&resolved.run.argv, &request.profile.run.command)
    };
    let mut outcome = finish(
        product,
        request.profile.clone(),
        ProfileSource::Given,
        command_override.as_ref(),
        &found,
        &findings,
        &request.decide,
        ctx,
        timings,
    )?;
    outcome.report_mismatch = report_mismatch;
    Ok(outcome)
}

/// A traced run's output: the profile, the sandbox's teardown report and
/// the run's own phases.
pub type RecordOutcome = vexxy_run::RunOutput;

/// One sandboxed, exercised, traced run of the image; its profile.
pub fn record(request: &RecordRequest, ctx: &Context<'_>) -> Result<RecordOutcome, AnalyzeError> {
    preflight(&request.run.runtime)?;
    let mut timings = Timings::default();
    let resolved = resolve(&request.image, Placement::Cached, ctx, &mut timings)?;
    let planned = plan::plan(&request.image.reference, &resolved, &request.run, ctx)?;
    execute(&planned, ctx, &mut timings)
}

/// Fails early, before any image work, when this machine cannot sandbox
/// or trace ([`ErrorKind::Unsupported`], saying what is missing).
pub fn preflight(runtime: &Path) -> Result<(), AnalyzeError> {
    vexxy_trace::preflight().doing("checking that this machine can trace")?;
    vexxy_sandbox::preflight(runtime).doing("checking that this machine can run sandboxes")?;
    Ok(())
}

/// What [`reap_leftovers`] cleaned up, and what it could not.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// Sandboxes torn down (their owner process was gone).
    pub sandboxes: Vec<String>,
    /// Scratch directories removed (no live analysis held them).
    pub scratch: Vec<std::path::PathBuf>,
    /// What failed; the rest was still done.
    pub errors: Vec<AnalyzeError>,
}

/// Cleans up after analyses whose process died (`kill -9`, a crash, a
/// lost machine's restart): tears down the sandboxes under the run state
/// root (`/run/vexxy`) whose owner process is gone (processes, mounts,
/// cgroups, runtime state: `vexxy_sandbox::reap_leftovers`), then removes
/// the scratch directories of [`Caches::scratch`] (test scripts,
/// unpacked images) that no live analysis holds. What a live process
/// uses is never touched: a sandbox's owner record names its process, a
/// scratch directory is locked by the analysis holding it. Without a
/// configured scratch directory only sandboxes are reaped (the default,
/// the system's temporary directory, is not ours alone).
pub fn reap_leftovers(caches: &Caches) -> Leftovers {
    let mut out = Leftovers::default();
    match vexxy_sandbox::reap_leftovers(vexxy_run::default_state_root()) {
        Ok(ids) => out.sandboxes = ids,
        Err(e) => out
            .errors
            .push(AnalyzeError::from(e).context("reaping leftover sandboxes")),
    }
    if let Some(dir) = &caches.scratch {
        match scratch::sweep(dir) {
            Ok(paths) => out.scratch = paths,
            Err(e) => out.errors.push(AnalyzeError::io(
                format!("sweeping the scratch directory {}", dir.display()),
                &e,
            )),
        }
    }
    out
}

/// The result of [`decide_static`].
#[derive(Clone, Debug)]
pub struct StaticOutcome {
    /// The product the statements are about.
    pub product: Product,
    /// Every decision, the statements and the summary.
    pub decision: vexxy_decide::Outcome,
    /// The document, when there is anything to state.
    pub document: Option<vexxy_model::VexDocument>,
    /// How the report differed from the image, when that was allowed.
    pub report_mismatch: Option<ReportMismatch>,
    /// How long each phase took.
    pub timings: Timings,
}

/// A report decided from static evidence alone: the image's (or a
/// rootfs's) packages, ELF graph and rules, or just an SBOM.
pub fn decide_static(
    request: &StaticRequest,
    ctx: &Context<'_>,
) -> Result<StaticOutcome, AnalyzeError> {
    let mut timings = Timings::default();
    let resolved = match &request.target {
        StaticTarget::Image(image) => Some(resolve(image, Placement::Cached, ctx, &mut timings)?),
        _ => None,
    };
    let rootfs = match &request.target {
        StaticTarget::Rootfs(dir) => Some(dir.as_path()),
        _ => resolved.as_ref().map(Resolved::rootfs),
    };
    let product = match (&request.product, &resolved) {
        (Some(p), _) => p.clone(),
        (None, Some(r)) => r.named_product()?,
        (None, None) => product_of_report(&request.report)?,
    };
    if product.digest.is_none() && !request.allow_unpinned_product {
        return Err(AnalyzeError::bad_input(format!(
            "no image digest known for {}: a VEX product without a digest applies to every image of that name; \
             name the product with its digest (NAME@sha256:DIGEST) or allow an unpinned product",
            product.name
        )));
    }
    let mut facts = ReachFacts::default();
    let mut inventory: Option<Inventory> = request
        .sbom
        .as_ref()
        .map(|s| Inventory::new(InventorySource::Sbom, s.packages.clone()));
    if let Some(dir) = rootfs {
        let run = request
            .run_config
            .clone()
            .or_else(|| resolved.as_ref().map(|r| r.run.clone()))
            .unwrap_or_default();
        let found = evidence::gather(
            dir,
            &run,
            &request.decide.rules,
            request.decide.builtin_rules,
            ctx,
            &mut timings,
        )?;
        facts = found.facts;
        inventory = Some(found.inventory);
    } else if !request.decide.rules.is_empty() || request.run_config.is_some() {
        return Err(AnalyzeError::bad_input(
            "configuration rules and an entrypoint need a root filesystem or an image",
        ));
    }
    let (findings, report_mismatch) = match (&resolved, &inventory) {
        (Some(r), Some(inv)) => {
            consistent_report(&request.report, r, inv, request.allow_report_mismatch)?
        }
        _ => (Cow::Borrowed(request.report.findings.as_slice()), None),
    };
    if let (Some(dir), Some(inv)) = (rootfs, &inventory) {
        if inv.source == InventorySource::RootFs {
            facts.functions = evidence::named_functions(
                dir,
                inv,
                &findings,
                &osv_symbols(Some(&request.report), &request.decide),
            );
        }
    }
    let evidence = render::Evidence {
        product: &product,
        findings: &findings,
        inventory: inventory.as_ref(),
        facts: &facts,
        profile: None,
        command_override: None,
    };
    let (decision, document) = render::decide(&evidence, &request.decide, ctx, &mut timings);
    Ok(StaticOutcome {
        product,
        decision,
        document,
        report_mismatch,
        timings,
    })
}

/// An image's packages with the files each owns (unpacked into scratch
/// space, removed afterwards).
#[derive(Debug)]
pub struct CatalogOutcome {
    /// The image.
    pub product: Product,
    /// Its packages.
    pub inventory: Inventory,
    /// `id-version_id` of its OS.
    pub distro: Option<String>,
}

/// Catalogs an image (`vexxy sbom`).
pub fn catalog_image(
    request: &ImageRequest,
    ctx: &Context<'_>,
) -> Result<CatalogOutcome, AnalyzeError> {
    let mut timings = Timings::default();
    let resolved = resolve(request, Placement::Scratch, ctx, &mut timings)?;
    let root = vexxy_rootfs::RootFs::open(resolved.rootfs())
        .doing_with(|| format!("opening rootfs {}", resolved.rootfs().display()))?;
    let (inventory, distro) = evidence::catalog(&root, &request.reference, ctx, &mut timings)?;
    Ok(CatalogOutcome {
        product: resolved.product.clone(),
        inventory,
        distro,
    })
}

/// The findings to decide, after checking that the report (or SBOM)
/// describes this image: [`consistency::check`]. Borrowed unless the
/// versions were rewritten.
fn consistent_findings<'f>(
    findings: &'f Findings,
    resolved: &Resolved,
    inventory: &Inventory,
    allow: bool,
) -> Result<(Cow<'f, [vexxy_model::Finding]>, Option<ReportMismatch>), AnalyzeError> {
    match findings {
        Findings::None => Ok((Cow::Borrowed(&[]), None)),
        Findings::Report(r) => consistent_report(r, resolved, inventory, allow),
        Findings::Sbom(s) => {
            let origin = s.name.as_ref().map_or_else(
                || format!("the {} SBOM", s.format),
                |n| format!("the {} SBOM of {n}", s.format),
            );
            // an SBOM's packages are not findings (the image's own catalog
            // is the inventory): it is only checked to be of this image
            let listed: Vec<consistency::Listed<'_>> = s
                .packages
                .iter()
                .map(|p| (p.name.as_str(), p.version.as_str(), &p.ecosystem))
                .collect();
            let identity = resolved.identity();
            let mismatch =
                consistency::check_sbom(&origin, &s.subject, &identity, &listed, inventory, allow)?;
            Ok((Cow::Borrowed(&[]), mismatch))
        }
    }
}

/// [`consistent_findings`] of a scanner report.
fn consistent_report<'f>(
    r: &'f vexxy_ingest::Report,
    resolved: &Resolved,
    inventory: &Inventory,
    allow: bool,
) -> Result<(Cow<'f, [vexxy_model::Finding]>, Option<ReportMismatch>), AnalyzeError> {
    let origin = r.target.as_ref().map_or_else(
        || format!("the {} report", r.format),
        |t| format!("the {} report of {t}", r.format),
    );
    consistency::check(
        &origin,
        &r.subject,
        &resolved.identity(),
        &r.findings,
        inventory,
        allow,
    )
}

/// The report's image name and digest as the product.
fn product_of_report(report: &vexxy_ingest::Report) -> Result<Product, AnalyzeError> {
    let name = report.target.clone().ok_or_else(|| {
        AnalyzeError::bad_input("the report names no image: name the product (NAME@sha256:DIGEST)")
    })?;
    Ok(image::product_named(name, report.target_digest.as_ref()))
}

/// Runs the plan, reporting its phases.
fn execute(
    planned: &plan::Planned,
    ctx: &Context<'_>,
    timings: &mut Timings,
) -> Result<vexxy_run::RunOutput, AnalyzeError> {
    preflight(&planned.plan.runtime)?;
    let progress = |phase: vexxy_run::Phase| ctx.tell(&Progress::Started(Phase::Run(phase)));
    let mut output = vexxy_run::run(&planned.plan, &progress)
        .doing_with(|| format!("running {}", planned.plan.image))?;
    if !output.teardown.is_clean() {
        tracing::error!(leftovers = %output.teardown.leftover_summary(), "the sandbox left something behind");
    }
    for (phase, took) in &output.timings {
        timings.push(Phase::Run(*phase), *took);
    }
    if let (Some(script), Some(ran)) = (&planned.script, &mut output.profile.exercise.script) {
        ran.path.clone_from(&script.name);
    }
    Ok(output)
}

/// Decides and renders, the half every analysis shares.
#[allow(clippy::too_many_arguments)]
fn finish(
    product: Product,
    profile: vexxy_model::ExecutionProfile,
    profile_source: ProfileSource,
    command_override: Option<&vexxy_model::CommandOverride>,
    found: &StaticEvidence,
    findings: &[vexxy_model::Finding],
    decide: &DecideSettings,
    ctx: &Context<'_>,
    mut timings: Timings,
) -> Result<AnalysisOutcome, AnalyzeError> {
    let evidence = render::Evidence {
        product: &product,
        findings,
        inventory: Some(&found.inventory),
        facts: &found.facts,
        profile: Some(&profile),
        command_override,
    };
    let (decision, document) = render::decide(&evidence, decide, ctx, &mut timings);
    let (artifacts, used_packages) = render::render_all(
        &render::Rendering {
            evidence,
            inventory: &found.inventory,
            profile: &profile,
            distro: found.distro.clone(),
            outcome: &decision,
            document: document.as_ref(),
            timestamp: decide.timestamp,
        },
        ctx,
        &mut timings,
    )?;
    Ok(AnalysisOutcome {
        packages: found.inventory.packages().len(),
        findings: findings.to_vec(),
        product,
        profile,
        profile_source,
        decision,
        artifacts,
        used_packages,
        report_mismatch: None,
        timings,
    })
}

/// The functions OSV records name for this request: those of
/// `--advisories` (the caller's settings) and those the scanner report's own
/// records carry.
fn osv_symbols(
    report: Option<&vexxy_ingest::Report>,
    decide: &DecideSettings,
) -> Vec<vexxy_ingest::OsvSymbols> {
    let mut all = decide.advisory_symbols.clone();
    all.extend(report.into_iter().flat_map(|r| r.symbols.iter().cloned()));
    all
}

fn report_of(findings: &Findings) -> Option<&vexxy_ingest::Report> {
    match findings {
        Findings::Report(r) => Some(r),
        Findings::None | Findings::Sbom(_) => None,
    }
}
