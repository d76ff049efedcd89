//! The traced run an analysis asks for: the process from the image config
//! and the request, the functions to count, and the key under which its
//! profile is stored.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write as _,
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};
use vexxy_model::{Finding, FunctionResolution, Inventory, PackageReach, Product, ReachFacts};
use vexxy_run::RunPlan;

use crate::{image::Resolved, AnalyzeError, RunConfig, RunSettings, TestScript};

/// Most functions probed in one run: each probe costs a little at attach
/// time and a trap per call.
const MAX_PROBED_FUNCTIONS: usize = 40_000;

/// A run plan, with the test script's file kept alive beside it.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) plan: RunPlan,
    /// The run config static analysis starts from (the process as it runs).
    pub(crate) run_config: RunConfig,
    /// The script's content for the profile key and its name for the profile.
    pub(crate) script: Option<TestScript>,
    /// Set when the process is not the image's own command.
    pub(crate) command_override: Option<vexxy_model::CommandOverride>,
    _script_dir: Option<crate::scratch::ScratchDir>,
}

/// The process as it will run, with the request's overrides applied.
pub(crate) fn plan(
    reference: &str,
    resolved: &Resolved,
    settings: &RunSettings,
    ctx: &crate::Context<'_>,
) -> Result<Planned, AnalyzeError> {
    let scratch = &scratch_dir(ctx.caches().scratch.as_deref());
    let base = settings.image_config.as_ref().unwrap_or(&resolved.run);
    if base.argv.is_empty() && settings.cmd.is_none() && settings.entrypoint.is_none() {
        return Err(AnalyzeError::bad_input(format!(
            "image {reference} has no entrypoint or command; give one{}",
            if reference.starts_with("dir:") {
                " (and an image config for a dir: rootfs)"
            } else {
                ""
            }
        )));
    }
    let env: Vec<String> = base.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut process = vexxy_sandbox::ProcessConfig::from_image_config(
        base.entrypoint(),
        base.cmd(),
        &env,
        base.working_dir.as_deref(),
        base.user.as_deref(),
    );
    if let Some(words) = &settings.entrypoint {
        if words.is_empty() || words[0].is_empty() {
            return Err(AnalyzeError::bad_input("the entrypoint override is empty"));
        }
        process.entrypoint_len = words.len();
        process.args.clone_from(words);
    }
    if let Some(words) = &settings.cmd {
        process.override_cmd(words.clone());
    }
    for (k, v) in &settings.env {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(AnalyzeError::bad_input(format!(
                "environment variable {k:?}: a name must be non-empty without '=' or NUL, a value without NUL"
            )));
        }
        process.set_env(k, v);
    }
    if process.args.iter().any(|w| w.contains('\0')) {
        return Err(AnalyzeError::bad_input("a command word contains NUL"));
    }

    let mut plan = RunPlan::new(resolved.rootfs(), reference, process);
    plan.image_digest = resolved.product.digest.as_ref().map(ToString::to_string);
    plan.ports = if settings.ports.is_empty() {
        vexxy_run::exposed_tcp_ports(base.exposed_ports.iter().map(String::as_str))
    } else {
        let mut p = settings.ports.clone();
        p.sort_unstable();
        p.dedup();
        p
    };
    plan.duration = settings.duration;
    plan.window = settings.window;
    plan.timeout = settings.timeout;
    plan.http_probe = settings.http_probe;
    plan.runtime.clone_from(&settings.runtime);
    plan.limits = settings.limits.clone();
    plan.uprobes.clone_from(&settings.uprobes);
    plan.cancel = ctx.cancel_flag();
    let script_dir = match &settings.test_script {
        Some(script) => {
            let dir = crate::scratch::ScratchDir::new_in(scratch, crate::scratch::SCRIPT_PREFIX)
                .map_err(|e| {
                    AnalyzeError::io(
                        format!(
                            "creating a directory for the test script in {}",
                            scratch.display()
                        ),
                        &e,
                    )
                })?;
            let path = dir.path().join("test-script.sh");
            let mut f = std::fs::File::create(&path)
                .map_err(|e| AnalyzeError::io(format!("writing {}", path.display()), &e))?;
            f.write_all(&script.content)
                .map_err(|e| AnalyzeError::io(format!("writing {}", path.display()), &e))?;
            plan.test_script = Some(path);
            Some(dir)
        }
        None => None,
    };
    let run_config = RunConfig {
        argv: plan.process.args.clone(),
        entrypoint_len: plan.process.entrypoint_len,
        env: plan.process.env.clone(),
        ..RunConfig::default()
    };
    let command_override = vexxy_model::CommandOverride::between(&base.argv, &plan.process.args);
    Ok(Planned {
        plan,
        run_config,
        script: settings.test_script.clone(),
        command_override,
        _script_dir: script_dir,
    })
}

/// Most probes on functions advisories name (`docs/functions.md`), over
/// all findings: a partial probe set per library, so it never makes a
/// library "completely probed".
const MAX_NAMED_PROBES: usize = 2_000;

/// Which functions to count: the functions the findings' advisories name,
/// wherever static analysis found them ([`named_probes`]), and
/// [`plugin_probes`].
pub(crate) fn probe_plan(
    findings: &[Finding],
    inventory: &Inventory,
    facts: &ReachFacts,
    root: &vexxy_rootfs::RootFs,
) -> Vec<(String, String)> {
    let mut wanted = plugin_probes(findings, inventory, facts, root);
    let named = named_probes(facts, root);
    if !named.is_empty() {
        tracing::info!(
            functions = named.len(),
            "functions advisories name to count"
        );
    }
    wanted.extend(named);
    wanted.sort();
    wanted.dedup();
    wanted
}

/// Every site of a function an advisory names that static analysis found
/// ([`FunctionResolution::Present`]), when a uprobe can attach to it: a
/// defined function of the ELF symbol tables that is not an indirect one,
/// or a Go function the pclntab located (its site carries the offset, which
/// the run looks up again); at most [`MAX_NAMED_PROBES`].
fn named_probes(facts: &ReachFacts, root: &vexxy_rootfs::RootFs) -> Vec<(String, String)> {
    // (object, symbol, located by the Go pclntab: the run resolves its offset)
    let mut sites: BTreeSet<(&str, &str, bool)> = BTreeSet::new();
    for n in &facts.functions {
        if let FunctionResolution::Present { sites: found, .. } = &n.resolution {
            sites.extend(
                found
                    .iter()
                    .map(|s| (s.object.as_str(), s.symbol.as_str(), s.offset.is_some())),
            );
        }
    }
    let mut tables: BTreeMap<&str, Option<vexxy_trace::SymbolTable>> = BTreeMap::new();
    let mut out = Vec::new();
    for (object, symbol, pclntab) in sites {
        if pclntab {
            if out.len() < MAX_NAMED_PROBES {
                out.push((object.to_owned(), symbol.to_owned()));
            }
            continue;
        }
        let table = tables.entry(object).or_insert_with(|| {
            let host = root.host_path(object).ok()?;
            vexxy_trace::SymbolTable::read(&host)
                .map_err(|e| tracing::debug!("no symbols from {object}: {e}"))
                .ok()
        });
        if table.as_ref().and_then(|t| t.offset(symbol)).is_none() {
            tracing::debug!(
                "{object}:{symbol} cannot be probed (an indirect or undefined function)"
            );
            continue;
        }
        if out.len() >= MAX_NAMED_PROBES {
            tracing::warn!(
                "not probing more functions advisories name: over the {MAX_NAMED_PROBES}-probe budget"
            );
            break;
        }
        out.push((object.to_owned(), symbol.to_owned()));
    }
    out
}

/// Every exported function of the shared
/// objects of vulnerable packages that the entrypoint reaches only through
/// a plugin its configuration loads. Those are the libraries a run maps
/// without necessarily entering (an enabled module whose directive no
/// location uses). Libraries the main program links directly are not
/// probed: the program's own code calls them, so "never entered" during
/// one run is no proof, and probing libc-like libraries would slow the
/// workload for nothing.
fn plugin_probes(
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
/// the workload does or what is recorded. Two processes asking for the
/// same run get the same key, so they share one stored profile.
pub(crate) fn profile_key(
    product: &Product,
    config_key: &Path,
    plan: &RunPlan,
    script: Option<&TestScript>,
) -> String {
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
    field("rootfs", config_key.as_os_str().as_encoded_bytes());
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
    // a fixed window is what every run was before windows were recorded:
    // its key stays as it was, so stored profiles of fixed runs still serve
    match plan.window {
        vexxy_run::WindowPolicy::Fixed => {}
        vexxy_run::WindowPolicy::Adaptive { quiet, minimum } => {
            field("window.quiet", &quiet.as_millis().to_le_bytes());
            field("window.minimum", &minimum.as_millis().to_le_bytes());
        }
    }
    field("http", &[u8::from(plan.http_probe)]);
    if let Some(script) = script {
        field("script", &script.content);
    }
    let probes: Vec<String> = plan
        .uprobes
        .iter()
        .map(|(l, s)| format!("{l}:{s}"))
        .collect();
    field("uprobes", probes.join("\n").as_bytes());
    field("limits", format!("{:?}", plan.limits).as_bytes());
    field("runtime", plan.runtime.as_os_str().as_encoded_bytes());
    format!("{:x}", h.finalize())
}

/// Whether a run's profile may stand in for a later run: a clean teardown,
/// no lost events, every probe attached, a workload that did not fail,
/// every port it was to serve ready and a test script that passed.
pub(crate) fn trustworthy(output: &vexxy_run::RunOutput) -> bool {
    use vexxy_model::RunOutcome;
    let failed = matches!(output.profile.run.outcome, RunOutcome::Exited(c) if c != 0)
        || matches!(
            output.profile.run.outcome,
            RunOutcome::Signaled(_) | RunOutcome::TimedOut
        );
    let exercise = &output.profile.exercise;
    // every port it was to serve answered, and the test script passed
    let exercised = exercise.ready_ports.len() >= exercise.ports.len()
        && exercise
            .script
            .as_ref()
            .is_none_or(|s| s.exit_code == Some(0));
    output.teardown.is_clean()
        && output.profile.lost.is_empty()
        && output.profile.tracer.uprobe_errors.is_empty()
        && !failed
        && exercised
}

/// Where a request's scratch files go.
fn scratch_dir(configured: Option<&Path>) -> PathBuf {
    configured.map_or_else(std::env::temp_dir, Path::to_path_buf)
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

    #[test]
    fn named_functions_are_probed_where_a_uprobe_can_attach() {
        use vexxy_model::{FunctionSite, NamedFunctions, SymbolOrigin};
        let Some(libz) = [
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
            "/lib/x86_64-linux-gnu/libz.so.1",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists()) else {
            vexxy_testkit::skip_or_fail("no libz.so.1 on this host");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
        std::fs::copy(libz, dir.path().join("usr/lib/libz.so.1")).unwrap();
        let root = vexxy_rootfs::RootFs::open(dir.path()).unwrap();
        let site = |object: &str, symbol: &str, offset: Option<u64>| FunctionSite {
            object: object.into(),
            symbol: symbol.into(),
            offset,
        };
        let named = |sites: Vec<FunctionSite>| NamedFunctions {
            vulnerability: "CVE-1".into(),
            package: "p".into(),
            origin: SymbolOrigin::AdvisoryText,
            names: vec!["x".into()],
            resolution: FunctionResolution::Present {
                sites,
                unresolved: vec![],
                unreadable: vec![],
            },
        };
        let facts = ReachFacts {
            functions: vec![
                named(vec![
                    site("/usr/lib/libz.so.1", "inflateGetHeader", None),
                    // not a function of the file: no probe that would fail
                    site("/usr/lib/libz.so.1", "not_in_libz", None),
                ]),
                named(vec![site("/usr/bin/gosvc", "main.(*T).Handle", Some(4096))]),
                named(vec![site("/usr/lib/libz.so.1", "inflateGetHeader", None)]),
            ],
            ..ReachFacts::default()
        };
        assert_eq!(
            named_probes(&facts, &root),
            [
                ("/usr/bin/gosvc".to_owned(), "main.(*T).Handle".to_owned()),
                (
                    "/usr/lib/libz.so.1".to_owned(),
                    "inflateGetHeader".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn the_window_is_part_of_a_runs_identity() {
        use std::time::Duration;
        use vexxy_run::WindowPolicy;
        let product = Product::parse(&format!("nginx@sha256:{}", "ab".repeat(32))).unwrap();
        let key = |window| {
            let mut plan =
                RunPlan::new("/rootfs", "nginx", vexxy_sandbox::ProcessConfig::default());
            plan.window = window;
            profile_key(&product, Path::new("/cache/x"), &plan, None)
        };
        let fixed = key(WindowPolicy::Fixed);
        let adaptive = key(WindowPolicy::ADAPTIVE);
        let quieter = key(WindowPolicy::Adaptive {
            quiet: Duration::from_secs(10),
            minimum: vexxy_run::DEFAULT_MINIMUM,
        });
        let longer = key(WindowPolicy::Adaptive {
            quiet: vexxy_run::DEFAULT_QUIET,
            minimum: Duration::from_secs(20),
        });
        let keys = std::collections::BTreeSet::from([&fixed, &adaptive, &quieter, &longer]);
        assert_eq!(keys.len(), 4, "{keys:?}");
        assert_eq!(key(WindowPolicy::ADAPTIVE), adaptive);
    }
}
