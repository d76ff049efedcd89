//! Evidence providers. Each looks at one kind of evidence and gives
//! opinions; [`crate::decide`] combines them.
//!
//! | provider | evidence | verdict | confidence |
//! |---|---|---|---|
//! | `component-presence` | the rootfs package DB / SBOM lacks the package | not_affected, component_not_present | 0.95 rootfs, 0.80 SBOM |
//! | `kernel-headers` | a kernel CVE reported against a package of kernel headers/docs | not_affected, vulnerable_code_not_present | 0.95 |
//! | `config-rule` | a configuration rule's conditions hold | as the rule says | as the rule says |
//! | `no-code` | the package owns files but no program, library or script (and is not security-relevant data: CA bundles, time zones, locales, crypto policies) | not_affected, vulnerable_code_not_present | 0.75 |
//! | `elf-reachability` | only plugins the configuration does not load reach its ELF objects | not_affected, vulnerable_code_not_in_execute_path | 0.90 |
//! | | only shared objects nothing links reach them, and nothing the entrypoint loads calls `dlopen` | same | 0.70 |
//! | | the same, but the entrypoint's closure calls `dlopen` | doubts not_in_execute_path (only runtime evidence may still claim it) | — |
//! | | nothing in the image links or loads them | same | 0.80 |
//! | | other executables (not the entrypoint) load them | same | 0.60 |
//! | | the entrypoint loads them | vetoes not_in_execute_path | — |
//! | `runtime` | the traced run executed, entered, mapped or loaded the package's code | affected (and vetoes not_in_execute_path) | 0.80–0.90 |
//! | | no code file of the package was executed, mapped or loaded | not_affected, vulnerable_code_not_in_execute_path | 0.90 × coverage × static |
//! | `runtime-probes` | mapped, but no probed function was ever entered | same | 0.70 × coverage |
//! | `advisory-functions` | no object of the package defines the functions the advisory names | not_affected, vulnerable_code_not_present | 0.50–0.90 by origin and symbol tables |
//! | `function-probes` | a named function was entered | affected | 0.85–0.90 |
//! | | every named function on a mapped object probed, none entered | not_affected, vulnerable_code_not_in_execute_path | (0.65 prose, 0.80 OSV) × coverage |
//!
//! The runtime classes and factors are in [`crate::runtime`]; the
//! function-level ones in [`crate::functions`].

use vexxy_model::{
    Decider, Ecosystem, Evidence, EvidenceSource, ExecutionProfile, Finding, Inventory,
    InventorySource, Justification, LoaderVerdict, Package, PackageReach, ReachFacts, Verdict,
};

use crate::conf;
use crate::runtime::{self, Coverage, Observed};

pub const COMPONENT_PRESENCE: &str = "component-presence";
pub const KERNEL_HEADERS: &str = "kernel-headers";
pub const CONFIG_RULE: &str = "config-rule";
pub const NO_CODE: &str = "no-code";
pub const ELF_REACHABILITY: &str = "elf-reachability";
pub use crate::functions::{ADVISORY_FUNCTIONS, FUNCTION_PROBES};
pub use crate::runtime::{RUNTIME, RUNTIME_PROBES};

/// What a provider sees.
#[derive(Debug)]
pub struct Context<'a> {
    pub finding: &'a Finding,
    pub inventory: Option<&'a Inventory>,
    /// The inventory's package matching the finding, if any.
    pub installed: Option<&'a Package>,
    pub facts: &'a ReachFacts,
    /// The traced run of the image, when there was one.
    pub profile: Option<&'a ExecutionProfile>,
    /// How well that run exercised the image (computed once per run).
    pub coverage: Option<&'a Coverage>,
    /// The run's paths, indexed once per run.
    pub(crate) observed: Option<&'a Observed>,
}

/// What a provider says.
#[derive(Debug)]
pub enum Opinion {
    /// A proposed verdict, with its evidence and confidence.
    Verdict(Verdict),
    /// Evidence that rules a justification out (e.g. the entrypoint loads
    /// the library, so it is not "not in the execute path").
    Veto {
        justification: Justification,
        evidence: Evidence,
    },
    /// Evidence that static analysis cannot rule a justification out (the
    /// code could be loaded at run time, e.g. with `dlopen`): removes the
    /// static candidates for it, while a traced run may still decide.
    Doubt {
        justification: Justification,
        evidence: Evidence,
    },
    /// An observation worth keeping that decides nothing.
    Note(Evidence),
}

/// A named provider.
#[derive(Debug)]
pub struct Provider {
    pub id: &'static str,
    pub run: fn(&Context<'_>) -> Vec<Opinion>,
}

/// Every provider, in tie-breaking order.
pub const ALL: &[Provider] = &[
    Provider {
        id: COMPONENT_PRESENCE,
        run: component_presence,
    },
    Provider {
        id: KERNEL_HEADERS,
        run: kernel_headers,
    },
    Provider {
        id: CONFIG_RULE,
        run: config_rules,
    },
    Provider {
        id: NO_CODE,
        run: no_code,
    },
    Provider {
        id: ELF_REACHABILITY,
        run: elf_reachability,
    },
    Provider {
        id: ADVISORY_FUNCTIONS,
        run: crate::functions::functions,
    },
    Provider {
        id: RUNTIME,
        run: runtime::runtime,
    },
];

fn not_affected(
    provider: &str,
    j: Justification,
    confidence: f64,
    notes: String,
    evidence: Evidence,
) -> Opinion {
    Opinion::Verdict(
        Verdict::not_affected(j, Decider::automated(provider))
            .with_confidence(conf(confidence))
            .with_notes(notes)
            .with_evidence(evidence),
    )
}

/// A reported package that the image does not contain.
fn component_presence(cx: &Context<'_>) -> Vec<Opinion> {
    let Some(inv) = cx.inventory else {
        return Vec::new();
    };
    let f = cx.finding;
    let (source, confidence, what) = match inv.source {
        InventorySource::RootFs => (
            EvidenceSource::PackageDb,
            0.95,
            "the image's package database",
        ),
        InventorySource::Sbom => (EvidenceSource::Sbom, 0.80, "the SBOM"),
    };
    match cx.installed {
        Some(p) if p.version != f.package.version => vec![Opinion::Note(
            Evidence::new(
                COMPONENT_PRESENCE,
                source,
                format!(
                    "{what} has {} {} where the report names {}",
                    p.name, p.version, f.package.version
                ),
            )
            .about(p.name.clone()),
        )],
        Some(_) => Vec::new(),
        // Only conclude absence for an ecosystem the inventory covers: a
        // dpkg-only inventory says nothing about Python packages.
        None if inv
            .packages()
            .iter()
            .any(|p| p.ecosystem == f.package.ecosystem) =>
        {
            let obs = format!("{what} lists no package named {}", f.package.name);
            vec![not_affected(
                COMPONENT_PRESENCE,
                Justification::ComponentNotPresent,
                confidence,
                format!("{} is not installed in the image", f.package.name),
                Evidence::new(COMPONENT_PRESENCE, source, obs)
                    .about(f.package.name.clone())
                    .fact("packages_in_inventory", inv.packages().len().to_string()),
            )]
        }
        None => Vec::new(),
    }
}

/// Whether a package name is one of the kernel header / documentation /
/// source packages that ship no kernel code.
pub fn is_kernel_header_package(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "linux-libc-dev",
        "kernel-headers",
        "linux-headers",
        "linux-api-headers",
        "linux-doc",
        "linux-source",
    ];
    const PREFIX: &[&str] = &[
        "linux-headers-",
        "linux-kbuild-",
        "linux-doc-",
        "linux-source-",
        "linux-support-",
    ];
    EXACT.contains(&name) || PREFIX.iter().any(|p| name.starts_with(p))
}

/// Kernel CVEs against header packages: a container brings no kernel, and
/// these packages hold C headers, not kernel code.
fn kernel_headers(cx: &Context<'_>) -> Vec<Opinion> {
    let f = cx.finding;
    if !f.package.ecosystem.is_os() || !is_kernel_header_package(&f.package.name) {
        return Vec::new();
    }
    let source = f.package.source_name.as_deref().unwrap_or("linux");
    if !(source.starts_with("linux") || source == "kernel") {
        return Vec::new();
    }
    vec![not_affected(
        KERNEL_HEADERS,
        Justification::VulnerableCodeNotPresent,
        0.95,
        format!(
            "{} ships kernel headers, not kernel code; a container runs on the host's kernel",
            f.package.name
        ),
        Evidence::new(
            KERNEL_HEADERS,
            EvidenceSource::ScannerReport,
            format!(
                "{} is a kernel header package built from the {source} source",
                f.package.name
            ),
        )
        .about(f.package.name.clone()),
    )]
}

/// Outcomes of configuration rules that select this finding.
fn config_rules(cx: &Context<'_>) -> Vec<Opinion> {
    let mut out = Vec::new();
    for r in cx
        .facts
        .rules
        .iter()
        .filter(|r| r.selector.matches(cx.finding))
    {
        let mut e = Evidence::new(
            CONFIG_RULE,
            EvidenceSource::ConfigRule(r.rule_id.clone()),
            r.observation.clone(),
        )
        .about(r.rule_id.clone());
        e.facts.clone_from(&r.facts);
        // "Not in the execute path" is a claim about what runs: without the
        // ELF graph of the entrypoint there is nothing to back it.
        if r.justification == Some(Justification::VulnerableCodeNotInExecutePath)
            && cx.facts.elf.is_none()
        {
            out.push(Opinion::Note(e.fact(
                "not_asserted",
                "no entrypoint was analysed, so execute-path claims stay open",
            )));
            continue;
        }
        let decider = Decider::automated(&format!("{CONFIG_RULE}:{}", r.rule_id));
        let verdict = match (r.status, r.justification) {
            (vexxy_model::Status::NotAffected, Some(j)) => Verdict::not_affected(j, decider),
            (vexxy_model::Status::Affected, _) => {
                Verdict::affected(crate::action_statement(cx.finding), decider)
            }
            (vexxy_model::Status::Fixed, _) => Verdict::fixed(decider),
            _ => Verdict::under_investigation(decider),
        };
        out.push(Opinion::Verdict(
            verdict
                .with_confidence(r.confidence)
                .with_notes(r.description.clone())
                .with_evidence(e),
        ));
    }
    out
}

/// Directories whose files are programs.
const BIN_DIRS: &[&str] = &[
    "/bin/",
    "/sbin/",
    "/usr/bin/",
    "/usr/sbin/",
    "/usr/local/bin/",
    "/usr/local/sbin/",
    "/usr/libexec/",
    "/usr/lib/cgi-bin/",
];

/// Whether a path is in a directory of programs (`/usr/bin`, `/sbin`,
/// `/usr/libexec`, …).
pub fn is_program_path(path: &str) -> bool {
    BIN_DIRS.iter().any(|d| path.starts_with(d))
}

/// Whether a path looks like code: a program, a library, a script or a
/// language module. Decided from the path alone.
pub fn looks_like_code(path: &str) -> bool {
    const EXT: &[&str] = &[
        ".so", ".py", ".pyc", ".pl", ".pm", ".sh", ".rb", ".js", ".mjs", ".cjs", ".jar", ".class",
        ".war", ".ko", ".php", ".lua", ".tcl", ".a", ".node", ".wasm",
    ];
    let file = path.rsplit('/').next().unwrap_or(path);
    is_program_path(path)
        || EXT.iter().any(|e| file.ends_with(e))
        || file.contains(".so.")
        || path.contains("/lib/systemd/")
        || path.starts_with("/etc/init.d/")
        || path.starts_with("/etc/cron")
        || path.contains("/ld-linux")
}

/// A package that owns files but none that is code cannot hold vulnerable code.
fn no_code(cx: &Context<'_>) -> Vec<Opinion> {
    let Some(p) = cx.installed else {
        return Vec::new();
    };
    if p.files.is_empty() || !p.ecosystem.is_os() {
        return Vec::new();
    }
    if let Some(elf) = &cx.facts.elf {
        if !matches!(elf.packages.get(&p.name), None | Some(PackageReach::NoElf)) {
            return Vec::new();
        }
    }
    if p.files.iter().any(|f| looks_like_code(f)) {
        return Vec::new();
    }
    let sample: Vec<&str> = p.files.iter().take(3).map(String::as_str).collect();
    if let Some(security) = cx
        .facts
        .security_data
        .iter()
        .find(|d| d.covers_package(&p.name))
    {
        // The data is what may be vulnerable: no code proves nothing.
        return vec![Opinion::Note(
            Evidence::new(
                NO_CODE,
                EvidenceSource::PackageDb,
                format!(
                    "{} ships only data, but its data ({}) is security-relevant: whether it is read decides, not whether it is code",
                    p.name, security.kind
                ),
            )
            .about(p.name.clone())
            .fact("security_data", security.kind.clone())
            .fact("security_data_rule", security.id.clone())
            .fact("sample_files", sample.join(", ")),
        )];
    }
    vec![not_affected(
        NO_CODE,
        Justification::VulnerableCodeNotPresent,
        0.75,
        format!(
            "{} ships only data and documentation ({} files), no program, library or script",
            p.name,
            p.files.len()
        ),
        Evidence::new(
            NO_CODE,
            EvidenceSource::PackageDb,
            format!(
                "none of the {} files {} owns is a program, library or script",
                p.files.len(),
                p.name
            ),
        )
        .about(p.name.clone())
        .fact("sample_files", sample.join(", ")),
    )]
}

/// What the ELF dependency graph says about the package's code.
fn elf_reachability(cx: &Context<'_>) -> Vec<Opinion> {
    let Some(elf) = &cx.facts.elf else {
        return Vec::new();
    };
    let name = cx
        .installed
        .map_or(cx.finding.package.name.as_str(), |p| p.name.as_str());
    if cx.installed.is_none() && cx.finding.package.ecosystem != Ecosystem::Deb {
        return Vec::new();
    }
    let Some(reach) = elf.packages.get(name) else {
        return Vec::new();
    };
    let entry = elf.entrypoints.join(", ");
    let ev = |obs: String| {
        Evidence::new(ELF_REACHABILITY, EvidenceSource::ElfGraph, obs)
            .about(name.to_owned())
            .fact("entrypoints", entry.clone())
    };
    let na = |confidence: f64, notes: String, e: Evidence| {
        vec![not_affected(
            ELF_REACHABILITY,
            Justification::VulnerableCodeNotInExecutePath,
            confidence,
            notes,
            e,
        )]
    };
    match reach {
        PackageReach::NoElf => Vec::new(),
        PackageReach::FromEntrypoint { object, chain } => vec![Opinion::Veto {
            justification: Justification::VulnerableCodeNotInExecutePath,
            evidence: ev(format!("the entrypoint loads {object}")).fact("load_chain", chain.join(" -> ")),
        }],
        PackageReach::FromOtherExecutables { executables, count } => na(
            0.6,
            format!("the entrypoint does not load {name}; {count} other executable(s) in the image do ({})", executables.join(", ")),
            ev(format!("no entrypoint dependency chain reaches {name}; {count} other executable(s) could load it"))
                .fact("other_executables", executables.join(", ")),
        ),
        PackageReach::OnlyViaPlugins { plugins } => {
            let all_unloaded = !plugins.is_empty() && plugins.iter().all(|(_, v)| matches!(v, LoaderVerdict::NotLoaded { .. }));
            let list = plugins
                .iter()
                .map(|(p, v)| match v {
                    LoaderVerdict::NotLoaded { loader, reason } => format!("{p} (not loaded by {loader}: {reason})"),
                    LoaderVerdict::Unknown => format!("{p} (no known loader)"),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let short: Vec<&str> = plugins.iter().map(|(p, _)| p.rsplit('/').next().unwrap_or(p)).collect();
            if all_unloaded {
                na(
                    0.9,
                    format!("{name} is only reachable through {} which the configuration does not load", short.join(", ")),
                    ev(format!("only plugins that the configuration does not load reach {name}")).fact("plugins", list),
                )
            } else if !elf.entry_dlopen_callers.is_empty() {
                // Something the entrypoint loads calls dlopen: an unexplained
                // plugin may well be loaded at run time (interpreter
                // extension modules, OpenSSL engines, PAM modules …).
                let callers: Vec<&str> = elf.entry_dlopen_callers.iter().take(5).map(String::as_str).collect();
                vec![Opinion::Doubt {
                    justification: Justification::VulnerableCodeNotInExecutePath,
                    evidence: ev(format!(
                        "only shared objects nothing links reach {name}, and the entrypoint's closure calls dlopen"
                    ))
                    .fact("plugins", list)
                    .fact("dlopen_callers", callers.join(", ")),
                }]
            } else {
                na(
                    0.7,
                    format!("{name} is only reachable through shared objects nothing links ({}), and nothing the entrypoint loads calls dlopen", short.join(", ")),
                    ev(format!("only unlinked shared objects reach {name}")).fact("plugins", list),
                )
            }
        }
        PackageReach::Unreferenced => na(
            0.8,
            format!("no program or library in the image links {name}"),
            ev(format!("no ELF object in the image links or loads {name}")),
        ),
    }
}
