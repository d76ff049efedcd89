//! `vexxy analyze IMAGE`: the whole job. Intake → catalog → static evidence
//! → sandboxed, exercised, traced run → verdicts → every output, in one
//! directory. Also `vexxy reevaluate` (a stored profile, a new report) and
//! `vexxy diff`.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use sha2::{Digest as _, Sha256};
use vexxy_model::{
    ExecutionProfile, Finding, Inventory, PackageReach, Product, ReachFacts, Status, VexStatement,
};

use super::{config::RunConfig, evidence, image, run as run_cmd, summary};
use crate::{
    cli::{AnalyzeArgs, DecideArgs, DiffArgs, DiffFormat, ReevaluateArgs},
    exit::{BadInput, Exit},
    output,
    progress::{Observer, Phase},
};

/// Files an analysis writes into its output directory.
pub(crate) mod files {
    pub(crate) const OPENVEX: &str = vexxy_report::OPENVEX_FILE;
    pub(crate) const CYCLONEDX_VEX: &str = "vex.cdx.json";
    pub(crate) const CSAF: &str = "vex.csaf.json";
    pub(crate) const EVIDENCE: &str = "evidence.json";
    pub(crate) const PROFILE: &str = "profile.json";
    pub(crate) const RUNTIME_SBOM: &str = "sbom.runtime.cdx.json";
    pub(crate) const REPORT_MD: &str = "report.md";
    pub(crate) const REPORT_HTML: &str = "report.html";
}

/// Most functions probed in one run: each probe costs a little at attach
/// time and a trap per call.
const MAX_PROBED_FUNCTIONS: usize = 40_000;

type Timings = Vec<(&'static str, Duration)>;

/// How an analysis reports and stops: the command line's way
/// ([`Hooks::cli`]) or a caller's such as the service.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    /// No spinners and no progress lines on stderr.
    pub(crate) quiet: bool,
    /// Print the triage table (stderr) when a scanner report was given.
    pub(crate) print_summary: bool,
    /// Once set, the analysis stops: checked between phases and handed to
    /// the sandboxed run, which tears down and stops. The analysis then
    /// fails with [`Cancelled`].
    pub(crate) cancel: Option<Arc<AtomicBool>>,
    /// Told the name of each phase as it starts (on the calling thread).
    pub(crate) observer: Option<Observer>,
    /// The digest the image must resolve to; checked before the run, a
    /// mismatch is bad input.
    pub(crate) expect_digest: Option<String>,
}

impl Hooks {
    /// What `vexxy analyze` does.
    pub(crate) fn cli(quiet: bool) -> Self {
        Self {
            quiet,
            print_summary: true,
            ..Self::default()
        }
    }

    fn check_cancelled(&self) -> Result<()> {
        match &self.cancel {
            Some(flag) if flag.load(Ordering::SeqCst) => Err(Cancelled.into()),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("quiet", &self.quiet)
            .field("print_summary", &self.print_summary)
            .field("cancel", &self.cancel)
            .field("observer", &self.observer.as_ref().map(|_| "Fn(&str)"))
            .field("expect_digest", &self.expect_digest)
            .finish()
    }
}

/// The analysis stopped because its [`Hooks::cancel`] flag was set.
#[derive(Debug, thiserror::Error)]
#[error("the analysis was cancelled")]
pub(crate) struct Cancelled;

pub(crate) fn analyze(args: &AnalyzeArgs, quiet: bool) -> Result<Exit> {
    analyze_with(args, &Hooks::cli(quiet))
}

/// `vexxy analyze` with the caller's [`Hooks`].
pub(crate) fn analyze_with(args: &AnalyzeArgs, hooks: &Hooks) -> Result<Exit> {
    crate::progress::observed(hooks.observer.clone(), || analyze_observed(args, hooks))
}

fn analyze_observed(args: &AnalyzeArgs, hooks: &Hooks) -> Result<Exit> {
    let quiet = hooks.quiet;
    let began = Instant::now();
    let mut timings: Timings = Vec::new();
    let now = super::timestamp(args.decide.timestamp.as_deref())?;
    check_policy(&args.decide)?;

    let phase = Phase::start("reading inputs", quiet);
    let inputs = read_inputs(&args.decide)?;
    timings.push((
        "inputs",
        phase.finish(&format!("{} findings", inputs.findings.len())),
    ));
    hooks.check_cancelled()?;

    let phase_began = Instant::now();
    let resolved = image::resolve(&args.image, &args.fetch, image::Placement::Cached, quiet)?;
    timings.push(("image", phase_began.elapsed()));
    let product = pinned(&resolved.product)?;
    if let Some(expected) = &hooks.expect_digest {
        check_digest(&args.image, &product, expected)?;
    }
    hooks.check_cancelled()?;

    if !args.sandbox.uprobe.is_empty() {
        return Err(BadInput(
            "--uprobe is for `vexxy run`; `analyze` chooses the functions to count itself (docs/analyze.md)".into(),
        )
        .into());
    }
    // The process as it will run, so static analysis starts where the run does.
    let mut plan = run_cmd::plan(&args.image, &resolved, &args.sandbox)?;
    if let Some(flag) = &hooks.cancel {
        plan.cancel = Arc::clone(flag);
    }
    let run_config = RunConfig {
        argv: plan.process.args.clone(),
        entrypoint_len: plan.process.entrypoint_len,
        env: plan.process.env.clone(),
        ..RunConfig::default()
    };
    let found = evidence::gather(
        &resolved.rootfs,
        &run_config,
        &args.decide.rules,
        !args.decide.no_builtin_rules,
        quiet,
        &mut timings,
    )?;
    hooks.check_cancelled()?;

    let root = vexxy_rootfs::RootFs::open(&resolved.rootfs)
        .with_context(|| format!("opening the rootfs {}", resolved.rootfs.display()))?;
    plan.uprobes = probe_plan(&inputs.findings, &found.inventory, &found.facts, &root);
    let key = profile_key(&product, &resolved.rootfs, &plan)?;
    let cached = profile_cache_dir().map(|d| d.join(format!("{key}.json")));
    let reused = match &cached {
        Some(path) if !args.fresh && path.is_file() => match vexxy_profile::read(path) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!("ignoring the stored profile {}: {e}", path.display());
                None
            }
        },
        _ => None,
    };
    let profile = if let Some(profile) = reused {
        if !quiet {
            eprintln!(
                "reusing the stored profile of this image digest and run configuration ({}); --fresh runs again",
                cached.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_default()
            );
        }
        timings.push(("run (stored profile)", Duration::ZERO));
        profile
    } else {
        run_cmd::preflight(&args.sandbox)?;
        let output = run_cmd::execute(&plan, quiet)?;
        if !output.teardown.is_clean() {
            tracing::error!(leftovers = %output.teardown.leftover_summary(), "the sandbox left something behind");
        }
        for (phase, took) in &output.timings {
            timings.push((run_phase_label(*phase), *took));
        }
        let failed = matches!(
            output.profile.run.outcome,
            vexxy_model::RunOutcome::Exited(c) if c != 0
        ) || matches!(
            output.profile.run.outcome,
            vexxy_model::RunOutcome::Signaled(_) | vexxy_model::RunOutcome::TimedOut
        );
        let trustworthy = output.teardown.is_clean()
            && output.profile.lost.is_empty()
            && output.profile.tracer.uprobe_errors.is_empty()
            && !failed;
        if !trustworthy {
            tracing::info!("not storing this run's profile for reuse: it failed, lost events or could not probe everything");
        } else if let Some(path) = &cached {
            if let Err(e) = store_profile(path, &output.profile) {
                tracing::warn!("could not store the profile at {}: {e:#}", path.display());
            }
        }
        output.profile
    };
    hooks.check_cancelled()?;

    let exit = decide_and_write(
        &DecideJob {
            product: &product,
            findings: &inputs.findings,
            report: inputs.report.as_ref(),
            inventory: &found.inventory,
            facts: &found.facts,
            profile: &profile,
            existing: &inputs.existing,
            distro: found.distro.clone(),
            now,
        },
        &args.decide,
        &mut timings,
        quiet,
        hooks.print_summary,
    )?;
    if !quiet {
        eprintln!("total {} ms", began.elapsed().as_millis());
    }
    Ok(exit)
}

pub(crate) fn reevaluate(args: &ReevaluateArgs, quiet: bool) -> Result<Exit> {
    let mut timings: Timings = Vec::new();
    let now = super::timestamp(args.decide.timestamp.as_deref())?;
    check_policy(&args.decide)?;
    let phase = Phase::start("reading inputs", quiet);
    let profile = vexxy_profile::read(&args.profile)
        .with_context(|| format!("reading the profile {}", args.profile.display()))?;
    let inputs = read_inputs(&args.decide)?;
    timings.push((
        "inputs",
        phase.finish(&format!("{} findings", inputs.findings.len())),
    ));

    let reference = args
        .image
        .clone()
        .unwrap_or_else(|| profile.run.image.clone());
    let phase_began = Instant::now();
    let resolved = image::resolve(&reference, &args.fetch, image::Placement::Cached, quiet)?;
    timings.push(("image", phase_began.elapsed()));
    let product = pinned(&resolved.product)?;
    let digest = product.digest.as_ref().map(ToString::to_string);
    match (&profile.run.image_digest, &digest) {
        (Some(recorded), Some(digest)) if recorded == digest => {}
        (Some(recorded), Some(digest)) => {
            return Err(BadInput(format!(
                "the profile {} was recorded from {recorded}, not from {reference} ({digest}); \
                 run `vexxy analyze` on the new image",
                args.profile.display()
            ))
            .into());
        }
        _ => {
            return Err(BadInput(format!(
                "the profile {} names no image digest, so it cannot be tied to {reference}; \
                 record it with `vexxy analyze` (or `vexxy run`) of an image with a digest",
                args.profile.display()
            ))
            .into());
        }
    }
    // Static analysis from the command the profile ran, with the image's environment.
    let run_config = RunConfig {
        argv: profile.run.command.clone(),
        entrypoint_len: 0,
        env: resolved.run.env.clone(),
        ..RunConfig::default()
    };
    let found = evidence::gather(
        &resolved.rootfs,
        &run_config,
        &args.decide.rules,
        !args.decide.no_builtin_rules,
        quiet,
        &mut timings,
    )?;
    decide_and_write(
        &DecideJob {
            product: &product,
            findings: &inputs.findings,
            report: inputs.report.as_ref(),
            inventory: &found.inventory,
            facts: &found.facts,
            profile: &profile,
            existing: &inputs.existing,
            distro: found.distro.clone(),
            now,
        },
        &args.decide,
        &mut timings,
        quiet,
        true,
    )
}

pub(crate) fn diff(args: &DiffArgs) -> Result<Exit> {
    let old = vexxy_report::read_side(&args.old)?.with_origin(args.old.display().to_string());
    let new = vexxy_report::read_side(&args.new)?.with_origin(args.new.display().to_string());
    let d = vexxy_report::diff(&old, &new);
    let text = match args.format {
        DiffFormat::Text => d.to_text(),
        DiffFormat::Markdown => d.to_markdown(),
        DiffFormat::Json => d.to_json()?,
    };
    output::print(&text);
    if args.fail_on_regression && d.regressions() > 0 {
        return Ok(Exit::Undecided);
    }
    Ok(Exit::Done)
}

fn check_policy(args: &DecideArgs) -> Result<()> {
    for (flag, v) in [
        ("--review-below", args.review_below),
        ("--min-confidence", args.min_confidence),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(BadInput(format!("{flag} {v} is outside 0..1")).into());
        }
    }
    Ok(())
}

/// The image must be the one the caller expects.
fn check_digest(reference: &str, product: &Product, expected: &str) -> Result<()> {
    let want: vexxy_model::Digest = expected
        .trim()
        .parse()
        .map_err(|e| BadInput(format!("expected image digest: {e}")))?;
    match &product.digest {
        Some(got) if *got == want => Ok(()),
        got => Err(BadInput(format!(
            "image {reference} resolved to {}, not the expected {want}",
            got.as_ref()
                .map_or_else(|| "no digest".to_owned(), ToString::to_string)
        ))
        .into()),
    }
}

fn pinned(product: &Product) -> Result<Product> {
    if product.digest.is_none() {
        return Err(BadInput(format!(
            "no digest known for {}: VEX about an image needs its digest; analyze an OCI layout, archive or registry image",
            product.name
        ))
        .into());
    }
    Ok(product.clone())
}

struct Inputs {
    report: Option<vexxy_ingest::Report>,
    findings: Vec<Finding>,
    existing: Vec<VexStatement>,
}

fn read_inputs(args: &DecideArgs) -> Result<Inputs> {
    let report = args
        .scan
        .as_deref()
        .map(super::generate::read_report)
        .transpose()?;
    if let Some(path) = &args.sbom {
        // Read for validation; the image's own catalog is the inventory.
        super::generate::read_sbom(path)?;
    }
    let mut existing = Vec::new();
    for path in &args.existing {
        existing.extend(super::vexdocs::read(path)?.statements);
    }
    let findings = report
        .as_ref()
        .map(|r| r.findings.clone())
        .unwrap_or_default();
    Ok(Inputs {
        report,
        findings,
        existing,
    })
}

struct DecideJob<'a> {
    product: &'a Product,
    findings: &'a [Finding],
    report: Option<&'a vexxy_ingest::Report>,
    inventory: &'a Inventory,
    facts: &'a ReachFacts,
    profile: &'a ExecutionProfile,
    existing: &'a [VexStatement],
    distro: Option<String>,
    now: time::OffsetDateTime,
}

/// Decides and writes every output into `args.out`.
fn decide_and_write(
    job: &DecideJob<'_>,
    args: &DecideArgs,
    timings: &mut Timings,
    quiet: bool,
    print_summary: bool,
) -> Result<Exit> {
    let phase = Phase::start("deciding", quiet);
    let inputs = vexxy_decide::Inputs {
        product: job.product,
        findings: job.findings,
        inventory: Some(job.inventory),
        facts: job.facts,
        existing: job.existing,
        profile: Some(job.profile),
    };
    let policy = vexxy_decide::Policy {
        review_below: args.review_below,
        min_confidence: args.min_confidence,
    };
    let outcome = vexxy_decide::decide(&inputs, &policy);
    timings.push(("decide", phase.finish("")));

    let phase = Phase::start("writing outputs", quiet);
    let out = &args.out;
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating the output directory {}", out.display()))?;
    let write = |name: &str, bytes: &[u8]| output::write_atomic(&out.join(name), bytes, None);

    if outcome.statements.is_empty() {
        tracing::info!("no findings: no VEX documents to write");
        // an earlier analysis's documents must not pass for this one's
        for stale in [
            files::OPENVEX,
            files::CYCLONEDX_VEX,
            files::CSAF,
            files::EVIDENCE,
        ] {
            match std::fs::remove_file(out.join(stale)) {
                Ok(()) => tracing::info!("removed the earlier {stale}"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("removing the stale {}", out.join(stale).display())
                    })
                }
            }
        }
    } else {
        let doc = vexxy_decide::document(
            outcome.statements.clone(),
            &args.author,
            concat!("vexxy/", env!("CARGO_PKG_VERSION")),
            job.now,
        );
        let openvex = vexxy_vex::write_openvex(
            &doc,
            &vexxy_vex::OpenVexOptions {
                embed_evidence: false,
                pretty: true,
            },
        )?;
        let checked = vexxy_vex::validate_openvex(openvex.as_bytes(), &out.join(files::OPENVEX))?;
        if !checked.is_valid() {
            anyhow::bail!(
                "internal error: the OpenVEX document fails the official schema: {:?}",
                checked.problems
            );
        }
        write(files::OPENVEX, openvex.as_bytes())?;
        let cdx = vexxy_vex::write_cyclonedx(
            &doc,
            &vexxy_vex::CycloneDxOptions {
                sbom: None,
                embed_evidence: true,
            },
        )?;
        write(files::CYCLONEDX_VEX, cdx.as_bytes())?;
        let csaf = vexxy_vex::write_csaf(&doc, &vexxy_vex::CsafOptions::default())?;
        write(files::CSAF, csaf.as_bytes())?;
        write(files::EVIDENCE, vexxy_vex::write_evidence(&doc)?.as_bytes())?;
    }
    let mut profile_json = vexxy_profile::to_json(job.profile);
    profile_json.push(b'\n');
    write(files::PROFILE, &profile_json)?;

    let used = vexxy_report::runtime_inventory(job.inventory, job.profile);
    let subject = vexxy_sbom::SbomSubject {
        name: job.product.name.clone(),
        digest: job.product.digest.clone(),
        distro: job.distro.clone(),
    };
    let sbom_opts = vexxy_sbom::SbomOptions {
        timestamp: job.now,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        include_files: true,
    };
    let runtime_sbom = vexxy_sbom::write_cyclonedx(&subject, &used, &sbom_opts)?;
    write(files::RUNTIME_SBOM, runtime_sbom.as_bytes())?;
    timings.push(("write", phase.finish("")));

    let named: Vec<(String, Duration)> =
        timings.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect();
    let mut report_input = vexxy_report::ReportInput::new(job.product, job.findings, &outcome);
    report_input.inventory = Some(job.inventory);
    report_input.profile = Some(job.profile);
    report_input.timings = &named;
    write(
        files::REPORT_MD,
        vexxy_report::markdown(&report_input).as_bytes(),
    )?;
    write(
        files::REPORT_HTML,
        vexxy_report::html(&report_input).as_bytes(),
    )?;

    if let Some(report) = job.report {
        if print_summary {
            summary::print_text(job.product, report, &outcome.summary, timings, false);
        }
    } else if !quiet {
        let phases: Vec<String> = timings
            .iter()
            .map(|(n, d)| format!("{n} {} ms", d.as_millis()))
            .collect();
        eprintln!(
            "no scanner report: wrote the profile, runtime SBOM and report; phases: {}",
            phases.join(", ")
        );
    }
    if !quiet {
        eprintln!(
            "runtime: {} of {} packages had code used; outputs in {}",
            used.packages().len(),
            job.inventory.packages().len(),
            out.display()
        );
    }
    let open = outcome
        .summary
        .by_status
        .get(&Status::UnderInvestigation)
        .copied()
        .unwrap_or(0);
    Ok(if args.fail_on_undecided && open > 0 {
        Exit::Undecided
    } else {
        Exit::Done
    })
}

fn run_phase_label(phase: vexxy_run::Phase) -> &'static str {
    use vexxy_run::Phase as P;
    match phase {
        P::Preparing => "sandbox + tracer",
        P::WaitingForPorts => "wait for ports",
        P::Probing => "http probe",
        P::Script => "test script",
        P::Observing => "observe",
        P::Collecting => "collect trace",
        P::TearingDown => "teardown",
    }
}

/// Which functions to count: every exported function of the shared
/// objects of vulnerable packages that the entrypoint reaches only through
/// a plugin its configuration loads. Those are the libraries a run maps
/// without necessarily entering (an enabled module whose directive no
/// location uses). Libraries the main program links directly are not
/// probed: the program's own code calls them, so "never entered" during
/// one run is no proof, and probing libc-like libraries would slow the
/// workload for nothing.
fn probe_plan(
    findings: &[Finding],
    inventory: &Inventory,
    facts: &ReachFacts,
    root: &vexxy_rootfs::RootFs,
) -> Vec<(String, String)> {
    let Some(elf) = &facts.elf else {
        return Vec::new();
    };
    if elf.loaded_plugins.is_empty() {
        return Vec::new();
    }
    let plugins: BTreeSet<&str> = elf.loaded_plugins.iter().map(String::as_str).collect();
    let names: BTreeSet<&str> = findings.iter().map(|f| f.package.name.as_str()).collect();
    // per library, all of its functions: a library is probed whole or not
    // at all, since a partial set would miss calls
    let mut by_library: Vec<(String, Vec<String>)> = Vec::new();
    for name in names {
        let Some(PackageReach::FromEntrypoint { chain, .. }) = elf.packages.get(name) else {
            continue;
        };
        if !chain.iter().any(|c| plugins.contains(c.as_str())) {
            continue;
        }
        for pkg in inventory.by_name(name) {
            for file in pkg.files.iter().filter(|f| is_shared_object(f)) {
                let Ok(canonical) = root.canonical(file) else {
                    continue;
                };
                if canonical != *file || plugins.contains(canonical.as_str()) {
                    // a symlink to a file listed on its own; or the plugin
                    // itself, whose code runs through handlers it registers
                    // rather than through exported functions
                    continue;
                }
                let Ok(host) = root.host_path(&canonical) else {
                    continue;
                };
                match vexxy_trace::SymbolTable::read(&host) {
                    Ok(table) if !table.has_ifuncs() && !table.is_empty() => {
                        by_library.push((
                            canonical.clone(),
                            table.functions().map(str::to_owned).collect(),
                        ));
                    }
                    Ok(_) => tracing::debug!(
                        "{canonical}: indirect functions cannot be probed; not probing it"
                    ),
                    Err(e) => tracing::debug!("no symbols from {canonical}: {e}"),
                }
            }
        }
    }
    by_library.sort();
    by_library.dedup_by(|a, b| a.0 == b.0);
    let mut wanted = Vec::new();
    for (library, functions) in by_library {
        if wanted.len() + functions.len() > MAX_PROBED_FUNCTIONS {
            tracing::warn!(
                "not probing {library} ({} functions): over the {MAX_PROBED_FUNCTIONS}-function budget",
                functions.len()
            );
            continue;
        }
        wanted.extend(functions.into_iter().map(|f| (library.clone(), f)));
    }
    tracing::info!(functions = wanted.len(), "functions to count");
    wanted
}

fn is_shared_object(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".so") || name.contains(".so.")
}

/// The identity of a run: image digest and everything that changes what
/// the workload does or what is recorded.
fn profile_key(product: &Product, rootfs: &Path, plan: &vexxy_run::RunPlan) -> Result<String> {
    let mut h = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        h.update(name.as_bytes());
        h.update((value.len() as u64).to_le_bytes());
        h.update(value);
    };
    field("schema", vexxy_profile::SCHEMA.as_bytes());
    // a tracer fix changes what a run records
    field("tool", env!("CARGO_PKG_VERSION").as_bytes());
    // the unpacked rootfs is keyed by the config digest: one per platform
    field("rootfs", rootfs.as_os_str().as_encoded_bytes());
    field("timeout", &plan.timeout.as_millis().to_le_bytes());
    field(
        "digest",
        product
            .digest
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
            .as_bytes(),
    );
    field("args", plan.process.args.join("\0").as_bytes());
    let env: Vec<String> = plan
        .process
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    field("env", env.join("\0").as_bytes());
    field("cwd", plan.process.cwd.as_bytes());
    field(
        "user",
        plan.process.user.as_deref().unwrap_or("").as_bytes(),
    );
    let ports: Vec<String> = plan.ports.iter().map(ToString::to_string).collect();
    field("ports", ports.join(",").as_bytes());
    field("duration", &plan.duration.as_millis().to_le_bytes());
    field("http", &[u8::from(plan.http_probe)]);
    if let Some(script) = &plan.test_script {
        let bytes = std::fs::read(script)
            .map_err(|e| BadInput(format!("reading --test-script {}: {e}", script.display())))?;
        field("script", &bytes);
    }
    let probes: Vec<String> = plan
        .uprobes
        .iter()
        .map(|(l, s)| format!("{l}:{s}"))
        .collect();
    field("uprobes", probes.join("\n").as_bytes());
    field("limits", format!("{:?}", plan.limits).as_bytes());
    field("runtime", plan.runtime.as_os_str().as_encoded_bytes());
    Ok(format!("{:x}", h.finalize()))
}

/// `profiles/` beside the blob cache (and the unpacked `rootfs/`), so one
/// `VEXXY_CACHE_DIR` holds everything vexxy caches.
fn profile_cache_dir() -> Option<PathBuf> {
    let blobs = vexxy_image::BlobCache::default_root().ok()?;
    Some(blobs.parent().unwrap_or(&blobs).join("profiles"))
}

fn store_profile(path: &Path, profile: &ExecutionProfile) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    vexxy_profile::write(path, profile)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_objects_are_recognised() {
        for (path, want) in [
            ("/usr/lib/x86_64-linux-gnu/libgd.so.3.0.11", true),
            (
                "/usr/lib/nginx/modules/ngx_http_image_filter_module.so",
                true,
            ),
            ("/usr/share/doc/libgd3/changelog.Debian.gz", false),
            ("/usr/lib/x86_64-linux-gnu/libsomething.sonic", false),
        ] {
            assert_eq!(is_shared_object(path), want, "{path}");
        }
    }
}
