//! Table-driven tests of runtime (execution-profile) evidence in the engine.

use vexxy_decide::{decide, runtime, Inputs, Outcome, Policy};
use vexxy_model::{
    Confidence, Decider, Ecosystem, ElfReach, EvidenceSource, ExecutedBinary, ExecutionProfile,
    ExerciseStats, FileAccess, Finding, FixState, FunctionCalls, Inventory, InventorySource,
    Justification, LoadedLibrary, LoaderVerdict, Package, PackageReach, PackageRef, Product,
    ReachFacts, RuleOutcome, RunInfo, RunOutcome, ScriptOutcome, Selector, Status, Verdict,
    VexStatement, Vulnerability,
};

const LIB: &str = "/usr/lib/x86_64-linux-gnu";
const LD: &str = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
const FLASK: &str = "/usr/lib/python3/dist-packages/flask";
const YAML: &str = "/usr/lib/python3/dist-packages/yaml";

fn finding(vuln: &str, pkg: &str, eco: Ecosystem) -> Finding {
    Finding {
        vulnerability: Vulnerability {
            id: vuln.into(),
            ..Vulnerability::default()
        },
        package: PackageRef {
            name: pkg.into(),
            version: "1.0".into(),
            ecosystem: eco,
            purl: None,
            source_name: None,
        },
        fixed_versions: vec!["1.1".into()],
        fix_state: FixState::Fixed,
        reported_by: None,
    }
}

fn pkg(name: &str, eco: Ecosystem, files: &[String]) -> Package {
    let mut p = Package::new(name, "1.0", eco);
    p.files = files.iter().cloned().collect();
    p
}

fn lib(name: &str) -> String {
    format!("{LIB}/{name}")
}

fn product() -> Product {
    Product::parse(
        "example/nginx@sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0",
    )
    .expect("product")
}

fn s(v: &str) -> String {
    v.to_owned()
}

// ---------------------------------------------------------------- nginx ---

fn nginx_inventory() -> Inventory {
    use Ecosystem::Deb;
    Inventory::new(
        InventorySource::RootFs,
        vec![
            pkg(
                "nginx",
                Deb,
                &[s("/usr/sbin/nginx"), s("/usr/share/doc/nginx/copyright")],
            ),
            pkg(
                "libc6",
                Deb,
                &[
                    s("/lib/x86_64-linux-gnu/libc.so.6"),
                    lib("libc.so.6"),
                    s("/lib64/ld-linux-x86-64.so.2"),
                    s(LD),
                ],
            ),
            pkg(
                "dash",
                Deb,
                &[s("/bin/dash"), s("/usr/bin/dash"), s("/bin/sh")],
            ),
            pkg("libssl3", Deb, &[lib("libssl.so.3"), lib("libcrypto.so.3")]),
            pkg(
                "libtiff6",
                Deb,
                &[
                    lib("libtiff.so.6"),
                    lib("libtiff.so.6.0.0"),
                    s("/usr/share/doc/libtiff6/copyright"),
                ],
            ),
            pkg("libgd3", Deb, &[lib("libgd.so.3"), lib("libgd.so.3.0.11")]),
            pkg(
                "libxml2",
                Deb,
                &[lib("libxml2.so.2"), lib("libxml2.so.2.9.14")],
            ),
            pkg("curl", Deb, &[s("/usr/bin/curl")]),
            pkg("libcurl4", Deb, &[lib("libcurl.so.4")]),
            pkg(
                "libpcre2-8-0",
                Deb,
                &[lib("libpcre2-8.so.0"), lib("libpcre2-8.so.0.11.2")],
            ),
            pkg(
                "nginx-common",
                Deb,
                &[
                    s("/etc/nginx/mime.types"),
                    s("/usr/share/nginx/scripts/rotate.sh"),
                ],
            ),
            pkg("libgeoip1", Deb, &[lib("libGeoIP.so.1")]),
            pkg("tzdata", Deb, &[s("/usr/share/zoneinfo/UTC")]),
            pkg("linux-libc-dev", Deb, &[s("/usr/include/linux/if.h")]),
        ],
    )
}

fn nginx_facts() -> ReachFacts {
    let mut elf = ElfReach {
        entrypoints: vec!["/usr/sbin/nginx".into()],
        entry_dlopen_callers: vec![lib("libcrypto.so.3")],
        ..ElfReach::default()
    };
    let entry = |object: String| PackageReach::FromEntrypoint {
        chain: vec!["/usr/sbin/nginx".into(), object.clone()],
        object,
    };
    elf.packages.insert("libc6".into(), entry(lib("libc.so.6")));
    elf.packages
        .insert("libssl3".into(), entry(lib("libssl.so.3")));
    // The image_filter module is loaded, so libgd is in the closure.
    elf.packages
        .insert("libgd3".into(), entry(lib("libgd.so.3")));
    elf.packages
        .insert("libgeoip1".into(), entry(lib("libGeoIP.so.1")));
    elf.packages
        .insert("libtiff6".into(), PackageReach::Unreferenced);
    elf.packages.insert(
        "libxml2".into(),
        PackageReach::OnlyViaPlugins {
            plugins: vec![(lib("libxslt.so.1"), LoaderVerdict::Unknown)],
        },
    );
    elf.packages.insert(
        "libcurl4".into(),
        PackageReach::FromOtherExecutables {
            executables: vec!["/usr/bin/curl".into()],
            count: 1,
        },
    );
    elf.packages
        .insert("nginx-common".into(), PackageReach::NoElf);
    ReachFacts {
        functions: Vec::new(),
        links: Default::default(),
        security_data: Vec::new(),
        elf: Some(elf),
        rules: vec![RuleOutcome {
            rule_id: "client-cert".into(),
            description: "nginx verifies no client certificate".into(),
            selector: Selector {
                packages: vec!["libssl3".into()],
                vulnerabilities: vec!["CVE-CLIENT-CERT".into()],
            },
            status: Status::NotAffected,
            justification: Some(Justification::VulnerableCodeCannotBeControlledByAdversary),
            confidence: Confidence::clamped(0.7),
            observation: "no ssl_verify_client".into(),
            facts: vec![],
        }],
    }
}

fn nginx_profile() -> ExecutionProfile {
    let mut p = ExecutionProfile {
        run: RunInfo {
            image: "oci-archive:/images/nginx.tar".into(),
            command: vec!["/docker-entrypoint.sh".into(), "nginx".into()],
            duration_ms: 31_250,
            requested_duration_ms: 30_000,
            outcome: RunOutcome::StoppedAtEnd,
            ..RunInfo::default()
        },
        executables: vec![
            ExecutedBinary {
                path: "/docker-entrypoint.sh".into(),
                interpreter: None,
                count: 1,
            },
            ExecutedBinary {
                path: "/usr/bin/dash".into(),
                interpreter: Some(LD.into()),
                count: 1,
            },
            ExecutedBinary {
                path: "/usr/sbin/nginx".into(),
                interpreter: Some(LD.into()),
                count: 1,
            },
        ],
        files: vec![
            FileAccess {
                path: "/etc/nginx/mime.types".into(),
                opens: 2,
            },
            FileAccess {
                path: "/etc/nginx/nginx.conf".into(),
                opens: 1,
            },
            // Read (e.g. by ldconfig), never mapped executable.
            FileAccess {
                path: lib("libpcre2-8.so.0.11.2"),
                opens: 1,
            },
        ],
        loaded_libraries: [
            LD.to_owned(),
            lib("libc.so.6"),
            lib("libcrypto.so.3"),
            lib("libgd.so.3.0.11"),
            lib("libssl.so.3"),
            "/usr/bin/dash".into(),
            "/usr/lib/nginx/modules/ngx_http_image_filter_module.so".into(),
            "/usr/sbin/nginx".into(),
        ]
        .into_iter()
        .map(|path| LoadedLibrary { path, mappings: 2 })
        .collect(),
        functions: vec![
            // Probes on the soname link; the mapped file is libgd.so.3.0.11.
            FunctionCalls {
                library: lib("libgd.so.3"),
                symbol: "gdImageCreateFromPngCtx".into(),
                calls: 0,
            },
            FunctionCalls {
                library: lib("libgd.so.3"),
                symbol: "gdImageCreateFromTiffCtx".into(),
                calls: 0,
            },
            FunctionCalls {
                library: lib("libssl.so.3"),
                symbol: "SSL_do_handshake".into(),
                calls: 0,
            },
        ],
        exercise: ExerciseStats {
            ports: vec![80],
            ready_ports: vec![80],
            ready_after_ms: Some(850),
            http_requests: 18,
            http_status: [(0, 1), (200, 9), (404, 8)].into_iter().collect(),
            http_paths: vec!["/".into(), "/a".into(), "/robots.txt".into()],
            script: None,
            ..ExerciseStats::default()
        },
        ..ExecutionProfile::default()
    };
    p.files.sort();
    p.loaded_libraries.sort();
    p.tracer.uprobes_attached = 3;
    // every exported function of these was probed (the fixture's three
    // stand for all of them)
    p.tracer.complete_libraries = vec![lib("libgd.so.3"), lib("libssl.so.3")];
    p
}

struct Case {
    name: &'static str,
    vuln: &'static str,
    pkg: &'static str,
    eco: Ecosystem,
    status: Status,
    justification: Option<Justification>,
    /// Inclusive bounds on the confidence.
    confidence: (f64, f64),
    provider: Option<&'static str>,
    /// Text one of the verdict's runtime evidence items (observation or a
    /// fact) must contain; or, for under_investigation, the notes.
    mentions: &'static str,
}

fn run(
    inventory: &Inventory,
    facts: &ReachFacts,
    profile: Option<&ExecutionProfile>,
    findings: &[Finding],
    policy: &Policy,
) -> Outcome {
    let product = product();
    let inputs = Inputs {
        product: &product,
        findings,
        inventory: Some(inventory),
        facts,
        existing: &[],
        profile,
        command_override: None,
    };
    decide(&inputs, policy)
}

fn check(cases: &[Case], inventory: &Inventory, facts: &ReachFacts, profile: &ExecutionProfile) {
    for c in cases {
        let findings = [finding(c.vuln, c.pkg, c.eco.clone())];
        let out = run(
            inventory,
            facts,
            Some(profile),
            &findings,
            &Policy::default(),
        );
        let v = &out.decisions[0].verdict;
        assert_eq!(v.status(), c.status, "{}: status ({v:#?})", c.name);
        assert_eq!(
            v.justification(),
            c.justification,
            "{}: justification",
            c.name
        );
        let conf = v.confidence.get();
        assert!(
            conf >= c.confidence.0 - 1e-9 && conf <= c.confidence.1 + 1e-9,
            "{}: confidence {conf} not in {:?}",
            c.name,
            c.confidence
        );
        if let Some(p) = c.provider {
            assert_eq!(v.decided_by, Decider::automated(p), "{}: decider", c.name);
        }
        if v.status() == Status::Affected {
            assert_eq!(
                v.action_statement(),
                Some(format!("update {} to 1.1 or later", c.pkg).as_str()),
                "{}",
                c.name
            );
        }
        if v.status() == Status::NotAffected {
            assert!(!v.evidence.is_empty(), "{}: no evidence", c.name);
        }
        assert!(!v.notes.is_empty(), "{}: notes", c.name);
        let in_evidence = v
            .evidence
            .iter()
            .filter(|e| e.source == EvidenceSource::Runtime)
            .any(|e| {
                e.observation.contains(c.mentions)
                    || e.facts.iter().any(|(_, val)| val.contains(c.mentions))
            });
        assert!(
            in_evidence || v.notes.contains(c.mentions),
            "{}: nothing mentions {:?}: {:#?}",
            c.name,
            c.mentions,
            v
        );
    }
}

#[test]
fn nginx_runtime_classes() {
    use Justification as J;
    use Status as S;
    let deb = || Ecosystem::Deb;
    let cases = [
        Case {
            name: "libssl3: mapped (libcrypto carries no probe)",
            vuln: "CVE-SSL",
            pkg: "libssl3",
            eco: deb(),
            status: S::Affected,
            justification: None,
            confidence: (runtime::MAPPED_CONFIDENCE, runtime::MAPPED_CONFIDENCE),
            provider: Some(runtime::RUNTIME),
            mentions: "libcrypto.so.3",
        },
        Case {
            name: "libssl3: a configuration rule with another justification still applies",
            vuln: "CVE-CLIENT-CERT",
            pkg: "libssl3",
            eco: deb(),
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeCannotBeControlledByAdversary),
            confidence: (0.7, 0.7),
            provider: Some("config-rule:client-cert"),
            mentions: "executable",
        },
        Case {
            name: "libtiff6: never mapped, static analysis agrees",
            vuln: "CVE-TIFF",
            pkg: "libtiff6",
            eco: deb(),
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            confidence: (0.85, runtime::NOT_USED_BASE),
            provider: Some(runtime::RUNTIME),
            mentions: "no file of libtiff6 was executed, mapped or loaded during a 31.2 s run",
        },
        Case {
            name: "libgd3: mapped, never entered (probes on the soname link)",
            vuln: "CVE-GD",
            pkg: "libgd3",
            eco: deb(),
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            confidence: (0.6, runtime::NEVER_ENTERED_BASE),
            provider: Some(runtime::RUNTIME_PROBES),
            mentions: "mapped, never entered",
        },
        Case {
            name: "libc6: the dynamic loader of every program",
            vuln: "CVE-LIBC",
            pkg: "libc6",
            eco: deb(),
            status: S::Affected,
            justification: None,
            confidence: (runtime::EXECUTED_CONFIDENCE, runtime::EXECUTED_CONFIDENCE),
            provider: Some(runtime::RUNTIME),
            mentions: "interpreter of /usr/bin/dash",
        },
        Case {
            name: "dash: executed",
            vuln: "CVE-DASH",
            pkg: "dash",
            eco: deb(),
            status: S::Affected,
            justification: None,
            confidence: (0.9, 0.9),
            provider: Some(runtime::RUNTIME),
            mentions: "/usr/bin/dash",
        },
        Case {
            name: "libxml2: the entrypoint calls dlopen; the run says it was not loaded",
            vuln: "CVE-XML",
            pkg: "libxml2",
            eco: deb(),
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            confidence: (0.6, 0.85 - 1e-6),
            provider: Some(runtime::RUNTIME),
            mentions: "dlopen",
        },
        Case {
            name: "libcurl4: other programs load it; runtime beats the graph's 0.60",
            vuln: "CVE-CURL",
            pkg: "libcurl4",
            eco: deb(),
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            confidence: (0.7, 0.9 * runtime::STATIC_OTHER_EXECUTABLES),
            provider: Some(runtime::RUNTIME),
            mentions: "other program(s) of the image load it",
        },
        Case {
            name: "curl: a program that never ran",
            vuln: "CVE-CURL-BIN",
            pkg: "curl",
            eco: deb(),
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            confidence: (0.85, 0.9),
            provider: Some(runtime::RUNTIME),
            mentions: "1 program(s)",
        },
        Case {
            name: "libpcre2: read but never mapped executable",
            vuln: "CVE-PCRE",
            pkg: "libpcre2-8-0",
            eco: deb(),
            status: S::UnderInvestigation,
            justification: None,
            confidence: (0.0, 0.0),
            provider: None,
            mentions: "never mapped executable",
        },
        Case {
            name: "nginx-common: only data files opened (reading is use)",
            vuln: "CVE-COMMON",
            pkg: "nginx-common",
            eco: deb(),
            status: S::Affected,
            justification: None,
            confidence: (0.75, 0.75),
            provider: Some(runtime::RUNTIME),
            mentions: "/etc/nginx/mime.types",
        },
        Case {
            name: "libgeoip1: static says the entrypoint loads it, the run never mapped it",
            vuln: "CVE-GEOIP",
            pkg: "libgeoip1",
            eco: deb(),
            status: S::UnderInvestigation,
            justification: None,
            confidence: (0.0, 0.0),
            provider: None,
            mentions: "contradiction",
        },
    ];
    check(&cases, &nginx_inventory(), &nginx_facts(), &nginx_profile());
}

#[test]
fn static_providers_without_runtime_opinions_are_untouched() {
    let inv = nginx_inventory();
    let facts = nginx_facts();
    let profile = nginx_profile();
    for (vuln, pkg, provider) in [
        ("CVE-K", "linux-libc-dev", "kernel-headers"),
        ("CVE-TZ", "tzdata", "no-code"),
        ("CVE-GONE", "libgnutls30", "component-presence"),
    ] {
        let findings = [finding(vuln, pkg, Ecosystem::Deb)];
        let with = run(&inv, &facts, Some(&profile), &findings, &Policy::default());
        let without = run(&inv, &facts, None, &findings, &Policy::default());
        let v = &with.decisions[0].verdict;
        assert_eq!(v.status(), Status::NotAffected, "{pkg}");
        assert_eq!(v.decided_by, Decider::automated(provider), "{pkg}");
        assert_eq!(
            v, &without.decisions[0].verdict,
            "{pkg}: runtime adds nothing"
        );
    }
}

#[test]
fn runtime_affected_overrides_static_not_in_execute_path() {
    let inv = nginx_inventory();
    let mut facts = nginx_facts();
    // Static analysis and a rule both say libssl3 is out of the path.
    if let Some(elf) = facts.elf.as_mut() {
        elf.packages.insert(
            "libssl3".into(),
            PackageReach::OnlyViaPlugins {
                plugins: vec![(
                    "/usr/lib/nginx/modules/ngx_stream_module.so".into(),
                    LoaderVerdict::NotLoaded {
                        loader: "nginx".into(),
                        reason: "no load_module".into(),
                    },
                )],
            },
        );
    }
    facts.rules.push(RuleOutcome {
        rule_id: "ssl-off".into(),
        description: "no ssl".into(),
        selector: Selector {
            packages: vec!["libssl3".into()],
            vulnerabilities: vec![],
        },
        status: Status::NotAffected,
        justification: Some(Justification::VulnerableCodeNotInExecutePath),
        confidence: Confidence::clamped(0.95),
        observation: "no listen ssl".into(),
        facts: vec![],
    });
    let findings = [finding("CVE-SSL", "libssl3", Ecosystem::Deb)];
    let without = run(&inv, &facts, None, &findings, &Policy::default());
    assert_eq!(without.decisions[0].verdict.status(), Status::NotAffected);
    let with = run(
        &inv,
        &facts,
        Some(&nginx_profile()),
        &findings,
        &Policy::default(),
    );
    let v = &with.decisions[0].verdict;
    assert_eq!(v.status(), Status::Affected, "{v:#?}");
    assert_eq!(v.decided_by, Decider::automated(runtime::RUNTIME));
    // The overruled static evidence stays attached for reviewers.
    assert!(v.evidence.iter().any(|e| e.provider == "elf-reachability"));
    assert!(v
        .evidence
        .iter()
        .any(|e| e.source == EvidenceSource::ConfigRule("ssl-off".into())));
    // And the statement for the vulnerability is affected.
    assert_eq!(with.statements[0].verdict.status(), Status::Affected);
}

#[test]
fn failed_probes_do_not_prove_idleness() {
    let inv = nginx_inventory();
    let facts = nginx_facts();
    let findings = [finding("CVE-GD", "libgd3", Ecosystem::Deb)];

    // A probe on libgd failed to attach (per-symbol errors name the symbol).
    let mut p = nginx_profile();
    p.tracer.uprobe_errors = vec!["gdImageCreateFromTiffCtx: operation not supported".into()];
    let v = run(&inv, &facts, Some(&p), &findings, &Policy::default()).decisions[0]
        .verdict
        .clone();
    assert_eq!(v.status(), Status::Affected, "{v:#?}");

    // The same with the library named.
    p.tracer.uprobe_errors = vec![format!(
        "cannot read symbols of /cache/rootfs/x{LIB}/libgd.so.3: no such file"
    )];
    let v = run(&inv, &facts, Some(&p), &findings, &Policy::default()).decisions[0]
        .verdict
        .clone();
    assert_eq!(v.status(), Status::Affected, "{v:#?}");

    // An error about another library lowers the confidence only.
    let good = run(
        &inv,
        &facts,
        Some(&nginx_profile()),
        &findings,
        &Policy::default(),
    )
    .decisions[0]
        .verdict
        .confidence
        .get();
    p.tracer.uprobe_errors = vec!["SSL_read: operation not supported".into()];
    let v = run(&inv, &facts, Some(&p), &findings, &Policy::default()).decisions[0]
        .verdict
        .clone();
    assert_eq!(v.status(), Status::NotAffected);
    assert!(
        (v.confidence.get() - good * runtime::UPROBE_ERRORS_FACTOR).abs() < 1e-9,
        "{} vs {good}",
        v.confidence
    );

    // Probes on only some of libgd's functions prove nothing: a call to
    // another function would not have been counted.
    let mut p = nginx_profile();
    p.tracer.complete_libraries.retain(|l| !l.contains("libgd"));
    let v = run(&inv, &facts, Some(&p), &findings, &Policy::default()).decisions[0]
        .verdict
        .clone();
    assert_eq!(v.status(), Status::Affected, "partial probes: {v:#?}");

    // A probed function that was called: entered.
    let mut p = nginx_profile();
    p.functions[0].calls = 12;
    let v = run(&inv, &facts, Some(&p), &findings, &Policy::default()).decisions[0]
        .verdict
        .clone();
    assert_eq!(v.status(), Status::Affected);
    assert!(v.evidence.iter().any(|e| {
        e.facts.iter().any(|(k, val)| {
            k == "functions_entered" && val.contains("gdImageCreateFromPngCtx (12×)")
        })
    }));
}

// --------------------------------------------------------------- python ---

fn python_inventory() -> Inventory {
    use Ecosystem::{Deb, Maven, Npm, Python};
    let site = "/usr/local/lib/python3.11/site-packages";
    Inventory::new(
        InventorySource::RootFs,
        vec![
            pkg("python3.11-minimal", Deb, &[s("/usr/bin/python3.11")]),
            pkg(
                "python3-flask",
                Deb,
                &[
                    format!("{FLASK}/__init__.py"),
                    format!("{FLASK}/app.py"),
                    format!("{FLASK}/cli.py"),
                    s("/usr/share/doc/python3-flask/copyright"),
                ],
            ),
            pkg(
                "python3-yaml",
                Deb,
                &[
                    format!("{YAML}/__init__.py"),
                    format!("{YAML}/loader.py"),
                    s("/usr/lib/python3/dist-packages/_yaml.cpython-311-x86_64-linux-gnu.so"),
                ],
            ),
            pkg(
                "python3-jinja2",
                Deb,
                &[s("/usr/lib/python3/dist-packages/jinja2/environment.py")],
            ),
            pkg(
                "requests",
                Python,
                &[
                    format!("{site}/requests/__init__.py"),
                    format!("{site}/requests/__pycache__/__init__.cpython-311.pyc"),
                    format!("{site}/requests-2.31.0.dist-info/METADATA"),
                ],
            ),
            pkg(
                "express",
                Npm,
                &[
                    s("/app/node_modules/express/index.js"),
                    s("/app/node_modules/express/package.json"),
                ],
            ),
            pkg(
                "lodash",
                Npm,
                &[
                    s("/app/node_modules/lodash/lodash.js"),
                    s("/app/node_modules/lodash/package.json"),
                ],
            ),
            pkg("log4j-core", Maven, &[s("/app/lib/log4j-core-2.14.1.jar")]),
        ],
    )
}

fn python_profile() -> ExecutionProfile {
    let site = "/usr/local/lib/python3.11/site-packages";
    let mut files: Vec<FileAccess> = [
        format!("{FLASK}/__pycache__/__init__.cpython-311.opt-1.pyc"),
        format!("{FLASK}/__pycache__/app.cpython-311.pyc"),
        s("/usr/lib/python3/dist-packages/jinja2/environment.py"),
        format!("{site}/requests/__pycache__/__init__.cpython-311.pyc"),
        s("/app/node_modules/express/index.js"),
        s("/app/node_modules/lodash/package.json"),
        s("/app/lib/log4j-core-2.14.1.jar"),
    ]
    .into_iter()
    .map(|path| FileAccess { path, opens: 1 })
    .collect();
    files.sort();
    ExecutionProfile {
        run: RunInfo {
            duration_ms: 30_000,
            requested_duration_ms: 30_000,
            ..RunInfo::default()
        },
        executables: vec![ExecutedBinary {
            path: "/usr/bin/python3.11".into(),
            interpreter: Some(LD.into()),
            count: 1,
        }],
        files,
        loaded_libraries: vec![
            LoadedLibrary {
                path: "/usr/bin/python3.11".into(),
                mappings: 1,
            },
            LoadedLibrary {
                path: LD.into(),
                mappings: 1,
            },
        ],
        exercise: ExerciseStats {
            ports: vec![5000],
            ready_ports: vec![5000],
            http_requests: 10,
            http_status: [(200, 10)].into_iter().collect(),
            http_paths: vec!["/".into(), "/login".into(), "/api".into()],
            ..ExerciseStats::default()
        },
        ..ExecutionProfile::default()
    }
}

#[test]
fn language_modules() {
    use Justification as J;
    use Status as S;
    let cases = [
        Case {
            name: "python3-flask: bytecode in __pycache__ counts for its .py",
            vuln: "CVE-FLASK",
            pkg: "python3-flask",
            eco: Ecosystem::Deb,
            status: S::Affected,
            justification: None,
            confidence: (runtime::MODULE_CONFIDENCE, runtime::MODULE_CONFIDENCE),
            provider: Some(runtime::RUNTIME),
            mentions: "flask/app.py (as /usr/lib/python3/dist-packages/flask/__pycache__/app.cpython-311.pyc)",
        },
        Case {
            name: "python3-yaml: never imported",
            vuln: "CVE-YAML",
            pkg: "python3-yaml",
            eco: Ecosystem::Deb,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            confidence: (0.85, 0.9),
            provider: Some(runtime::RUNTIME),
            mentions: "1 shared object(s), 2 module(s) or script(s)",
        },
        Case {
            name: "python3-jinja2: source opened directly",
            vuln: "CVE-JINJA",
            pkg: "python3-jinja2",
            eco: Ecosystem::Deb,
            status: S::Affected,
            justification: None,
            confidence: (0.85, 0.85),
            provider: Some(runtime::RUNTIME),
            mentions: "jinja2/environment.py",
        },
        Case {
            name: "requests (pip): owned bytecode opened",
            vuln: "CVE-REQ",
            pkg: "requests",
            eco: Ecosystem::Python,
            status: S::Affected,
            justification: None,
            confidence: (0.85, 0.85),
            provider: Some(runtime::RUNTIME),
            mentions: "__init__.cpython-311.pyc",
        },
        Case {
            name: "python3.11-minimal: the interpreter ran",
            vuln: "CVE-PY",
            pkg: "python3.11-minimal",
            eco: Ecosystem::Deb,
            status: S::Affected,
            justification: None,
            confidence: (0.9, 0.9),
            provider: Some(runtime::RUNTIME),
            mentions: "/usr/bin/python3.11",
        },
        Case {
            name: "express: a .js module was required",
            vuln: "CVE-EXPRESS",
            pkg: "express",
            eco: Ecosystem::Npm,
            status: S::Affected,
            justification: None,
            confidence: (0.85, 0.85),
            provider: Some(runtime::RUNTIME),
            mentions: "/app/node_modules/express/index.js",
        },
        Case {
            name: "lodash: only its package.json was read (metadata is not use)",
            vuln: "CVE-LODASH",
            pkg: "lodash",
            eco: Ecosystem::Npm,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            confidence: (0.85, 0.9),
            provider: Some(runtime::RUNTIME),
            mentions: "package.json",
        },
        Case {
            name: "log4j-core: the jar was opened",
            vuln: "CVE-2021-44228",
            pkg: "log4j-core",
            eco: Ecosystem::Maven,
            status: S::Affected,
            justification: None,
            confidence: (0.85, 0.85),
            provider: Some(runtime::RUNTIME),
            mentions: "log4j-core-2.14.1.jar",
        },
    ];
    check(
        &cases,
        &python_inventory(),
        &ReachFacts::default(),
        &python_profile(),
    );
}

// ------------------------------------------------------------- coverage ---

/// One unused library with no static facts: its confidence is the runtime
/// base scaled by the run's coverage alone.
fn unused_confidence(profile: &ExecutionProfile, policy: &Policy) -> Verdict {
    let inv = Inventory::new(
        InventorySource::RootFs,
        vec![
            pkg("app", Ecosystem::Deb, &[s("/usr/bin/app")]),
            pkg("libunused1", Ecosystem::Deb, &[lib("libunused.so.1")]),
        ],
    );
    let findings = [finding("CVE-U", "libunused1", Ecosystem::Deb)];
    run(
        &inv,
        &ReachFacts::default(),
        Some(profile),
        &findings,
        policy,
    )
    .decisions[0]
        .verdict
        .clone()
}

fn good_run() -> ExecutionProfile {
    ExecutionProfile {
        run: RunInfo {
            duration_ms: 30_400,
            requested_duration_ms: 30_000,
            outcome: RunOutcome::StoppedAtEnd,
            ..RunInfo::default()
        },
        executables: vec![ExecutedBinary {
            path: "/usr/bin/app".into(),
            interpreter: None,
            count: 1,
        }],
        loaded_libraries: vec![LoadedLibrary {
            path: "/usr/bin/app".into(),
            mappings: 1,
        }],
        exercise: ExerciseStats {
            ports: vec![8080],
            ready_ports: vec![8080],
            http_requests: 40,
            http_status: [(200, 40)].into_iter().collect(),
            http_paths: vec!["/".into(), "/a".into(), "/b".into()],
            ..ExerciseStats::default()
        },
        ..ExecutionProfile::default()
    }
}

#[test]
fn coverage_scales_absence_claims() {
    let good = unused_confidence(&good_run(), &Policy::default());
    assert_eq!(good.status(), Status::NotAffected);
    assert!(
        (good.confidence.get() - runtime::NOT_USED_BASE).abs() < 1e-9,
        "a full run of the only program: {}",
        good.confidence
    );
    type Mutate = fn(&mut ExecutionProfile);
    let cases: [(&str, Mutate, f64, f64); 11] = [
        (
            "ring buffer lost events",
            |p| p.lost.ring_buffer = 3,
            0.0,
            runtime::LOST_EVENTS_CAP,
        ),
        (
            "a full map",
            |p| {
                p.lost.map_full.insert("opened".into(), 10);
            },
            0.0,
            runtime::LOST_EVENTS_CAP,
        ),
        ("truncated paths", |p| p.lost.truncated_paths = 2, 0.8, 0.82),
        ("a short run", |p| p.run.duration_ms = 3_000, 0.4, 0.6),
        (
            "an early non-zero exit",
            |p| {
                p.run.duration_ms = 2_000;
                p.run.outcome = RunOutcome::Exited(1);
            },
            0.2,
            0.4,
        ),
        (
            "killed by a signal",
            |p| p.run.outcome = RunOutcome::Signaled(11),
            0.5,
            0.55,
        ),
        (
            "hard timeout",
            |p| p.run.outcome = RunOutcome::TimedOut,
            0.8,
            0.82,
        ),
        (
            "port never ready",
            |p| p.exercise.ready_ports.clear(),
            0.5,
            0.55,
        ),
        (
            "no http answer",
            |p| {
                p.exercise.http_status = [(0, 40)].into_iter().collect();
            },
            0.75,
            0.77,
        ),
        (
            "test script failed",
            |p| {
                p.exercise.script = Some(ScriptOutcome {
                    path: "smoke.sh".into(),
                    exit_code: Some(1),
                    duration_ms: 100,
                });
            },
            0.6,
            0.64,
        ),
        (
            "test script passed, no port",
            |p| {
                p.exercise.ports.clear();
                p.exercise.ready_ports.clear();
                p.exercise.script = Some(ScriptOutcome {
                    path: "smoke.sh".into(),
                    exit_code: Some(0),
                    duration_ms: 100,
                });
            },
            0.9,
            0.9,
        ),
    ];
    for (name, mutate, lo, hi) in cases {
        let mut p = good_run();
        mutate(&mut p);
        let v = unused_confidence(&p, &Policy::default());
        assert_eq!(v.status(), Status::NotAffected, "{name}");
        let c = v.confidence.get();
        assert!(
            c >= lo - 1e-9 && c <= hi + 1e-9,
            "{name}: {c} not in {lo}..={hi}"
        );
        assert!(
            c <= good.confidence.get() + 1e-9,
            "{name}: never above a good run"
        );
    }
}

#[test]
fn lost_events_leave_the_claim_for_review() {
    let mut p = good_run();
    p.lost.ring_buffer = 1;
    let v = unused_confidence(&p, &Policy::default());
    assert_eq!(v.status(), Status::NotAffected);
    assert!(v
        .evidence
        .iter()
        .any(|e| e.facts.iter().any(|(k, _)| k == "lost_events")));
    // With a floor the engine turns it into under_investigation, keeping the evidence.
    let floor = Policy {
        min_confidence: vexxy_model::Confidence::clamped(0.6),
        ..Policy::default()
    };
    let v = unused_confidence(&p, &floor);
    assert_eq!(v.status(), Status::UnderInvestigation);
    assert!(v.notes.contains("below the minimum"), "{}", v.notes);
    assert!(v
        .evidence
        .iter()
        .any(|e| e.source == EvidenceSource::Runtime));

    // Lost events do not weaken evidence that code ran.
    let inv = nginx_inventory();
    let mut p = nginx_profile();
    p.lost.ring_buffer = 100;
    let findings = [finding("CVE-LIBC", "libc6", Ecosystem::Deb)];
    let v = &run(
        &inv,
        &nginx_facts(),
        Some(&p),
        &findings,
        &Policy::default(),
    )
    .decisions[0]
        .verdict;
    assert_eq!(v.status(), Status::Affected);
    assert!((v.confidence.get() - runtime::EXECUTED_CONFIDENCE).abs() < 1e-9);

    // A static verdict survives a lossy run's weaker runtime claim.
    let findings = [finding("CVE-TIFF", "libtiff6", Ecosystem::Deb)];
    let v = &run(
        &inv,
        &nginx_facts(),
        Some(&p),
        &findings,
        &Policy::default(),
    )
    .decisions[0]
        .verdict;
    assert_eq!(v.status(), Status::NotAffected);
    assert_eq!(v.decided_by, Decider::automated("elf-reachability"));
    assert!(v
        .evidence
        .iter()
        .any(|e| e.source == EvidenceSource::Runtime));
}

#[test]
fn a_run_that_observed_nothing_decides_nothing() {
    let mut p = good_run();
    p.executables.clear();
    p.loaded_libraries.clear();
    let v = unused_confidence(&p, &Policy::default());
    assert_eq!(v.status(), Status::UnderInvestigation);
    assert!(v.notes.contains("recorded nothing running"), "{}", v.notes);
}

#[test]
fn configuration_that_could_enable_it_lowers_the_confidence() {
    let inv = nginx_inventory();
    let profile = nginx_profile();
    let findings = [finding("CVE-TIFF", "libtiff6", Ecosystem::Deb)];
    // Without static facts about libtiff6, the runtime claim speaks alone.
    let mut facts = nginx_facts();
    if let Some(elf) = facts.elf.as_mut() {
        elf.packages.remove("libtiff6");
    }
    let base = run(&inv, &facts, Some(&profile), &findings, &Policy::default());
    let base = base.decisions[0].verdict.confidence.get();
    facts.rules.push(RuleOutcome {
        rule_id: "image-filter-could-load".into(),
        description: "an include directory could enable image_filter".into(),
        selector: Selector {
            packages: vec!["libtiff6".into()],
            vulnerabilities: vec![],
        },
        status: Status::UnderInvestigation,
        justification: None,
        confidence: Confidence::clamped(0.5),
        observation: "modules-enabled is writable".into(),
        facts: vec![],
    });
    let out = run(&inv, &facts, Some(&profile), &findings, &Policy::default());
    let v = &out.decisions[0].verdict;
    assert_eq!(v.status(), Status::NotAffected);
    assert_eq!(v.decided_by, Decider::automated(runtime::RUNTIME));
    assert!(
        (v.confidence.get() - base * runtime::STATIC_RULE_COULD_ENABLE).abs() < 1e-9,
        "{} vs {base}",
        v.confidence
    );
}

// ---------------------------------------------------------- invariants ---

#[test]
fn existing_statements_win_over_runtime_evidence() {
    let inv = nginx_inventory();
    let facts = nginx_facts();
    let profile = nginx_profile();
    let product = product();
    let human = Verdict::not_affected(
        Justification::InlineMitigationsAlreadyExist,
        Decider::Human {
            author: "alice@example.com".into(),
        },
    )
    .with_confidence(Confidence::CERTAIN);
    let existing = [VexStatement {
        vulnerability_id: "CVE-LIBC".into(),
        aliases: vec![],
        description: None,
        product: product.clone(),
        subcomponents: vec![],
        verdict: human.clone(),
        timestamp: None,
    }];
    let findings = [finding("CVE-LIBC", "libc6", Ecosystem::Deb)];
    let inputs = Inputs {
        product: &product,
        findings: &findings,
        inventory: Some(&inv),
        facts: &facts,
        existing: &existing,
        profile: Some(&profile),
        command_override: None,
    };
    let out = decide(&inputs, &Policy::default());
    assert!(out.decisions[0].existing);
    assert_eq!(out.decisions[0].verdict, human);
}

#[test]
fn without_a_profile_no_runtime_evidence_appears() {
    let inv = nginx_inventory();
    let facts = nginx_facts();
    let findings: Vec<Finding> = inv
        .packages()
        .iter()
        .map(|p| finding(&format!("CVE-{}", p.name), &p.name, Ecosystem::Deb))
        .collect();
    let out = run(&inv, &facts, None, &findings, &Policy::default());
    for d in &out.decisions {
        let v = &d.verdict;
        assert!(
            v.evidence
                .iter()
                .all(|e| e.source != EvidenceSource::Runtime),
            "{v:#?}"
        );
        assert!(
            !matches!(&v.decided_by, Decider::Automated { provider } if provider.starts_with("runtime"))
        );
    }
    // libgd3 is loaded by the entrypoint: static analysis alone cannot decide.
    let gd = inv
        .packages()
        .iter()
        .position(|p| p.name == "libgd3")
        .expect("libgd3");
    assert_eq!(
        out.decisions[gd].verdict.status(),
        Status::UnderInvestigation
    );
    // Deterministic: the same inputs give the same outcome.
    let again = run(&inv, &facts, None, &findings, &Policy::default());
    let with = run(
        &inv,
        &facts,
        Some(&nginx_profile()),
        &findings,
        &Policy::default(),
    );
    let with_again = run(
        &inv,
        &facts,
        Some(&nginx_profile()),
        &findings,
        &Policy::default(),
    );
    for (a, b) in out.decisions.iter().zip(&again.decisions) {
        assert_eq!(a.verdict, b.verdict);
    }
    for (a, b) in with.decisions.iter().zip(&with_again.decisions) {
        assert_eq!(a.verdict, b.verdict);
    }
    assert_eq!(with.statements, with_again.statements);
}

#[test]
fn one_statement_joins_runtime_verdicts_conservatively() {
    let inv = nginx_inventory();
    let facts = nginx_facts();
    let findings = [
        finding("CVE-1", "libtiff6", Ecosystem::Deb),
        finding("CVE-1", "libssl3", Ecosystem::Deb),
        finding("CVE-2", "libtiff6", Ecosystem::Deb),
    ];
    let out = run(
        &inv,
        &facts,
        Some(&nginx_profile()),
        &findings,
        &Policy::default(),
    );
    assert_eq!(out.statements.len(), 2);
    assert_eq!(out.statements[0].verdict.status(), Status::Affected);
    assert_eq!(out.statements[1].verdict.status(), Status::NotAffected);
    assert_eq!(out.summary.by_status.get(&Status::Affected), Some(&1));
}

/// A run of another command than the image's own: the runtime claim says
/// so in its notes and evidence, and is capped below the review threshold.
#[test]
fn an_overridden_command_caps_runtime_claims_and_says_so() {
    let inv = Inventory::new(
        InventorySource::RootFs,
        vec![
            pkg("app", Ecosystem::Deb, &[s("/usr/bin/app")]),
            pkg("libunused1", Ecosystem::Deb, &[lib("libunused.so.1")]),
        ],
    );
    let findings = [finding("CVE-U", "libunused1", Ecosystem::Deb)];
    let profile = good_run();
    let product = product();
    let facts = ReachFacts::default();
    let over = vexxy_model::CommandOverride::between(
        &[s("/usr/bin/app"), s("--serve")],
        &[s("/usr/bin/app"), s("--version")],
    )
    .expect("the commands differ");
    let decide_with = |over: Option<&vexxy_model::CommandOverride>| {
        let inputs = Inputs {
            product: &product,
            findings: &findings,
            inventory: Some(&inv),
            facts: &facts,
            existing: &[],
            profile: Some(&profile),
            command_override: over,
        };
        decide(&inputs, &Policy::default()).decisions[0]
            .verdict
            .clone()
    };
    let plain = decide_with(None);
    assert_eq!(plain.status(), Status::NotAffected, "{}", plain.notes);
    assert!(plain.confidence.get() > vexxy_decide::runtime::OVERRIDE_CAP);
    let v = decide_with(Some(&over));
    assert_eq!(v.status(), Status::NotAffected);
    assert!(
        v.confidence.get() <= vexxy_decide::runtime::OVERRIDE_CAP,
        "{}",
        v.confidence
    );
    assert!(
        v.notes.contains("/usr/bin/app --version") && v.notes.contains("/usr/bin/app --serve"),
        "{}",
        v.notes
    );
    assert!(v.evidence.iter().any(|e| e
        .facts
        .iter()
        .any(|(k, val)| k == "run_command" && val == "/usr/bin/app --version")));
    // below the default review threshold: a person looks at it
    let out = {
        let inputs = Inputs {
            product: &product,
            findings: &findings,
            inventory: Some(&inv),
            facts: &facts,
            existing: &[],
            profile: Some(&profile),
            command_override: Some(&over),
        };
        decide(&inputs, &Policy::default())
    };
    assert_eq!(out.summary.needs_review, 1);
    assert!(vexxy_model::CommandOverride::between(&[s("a")], &[s("a")]).is_none());
}
