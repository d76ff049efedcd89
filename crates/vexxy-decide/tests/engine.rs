//! Table-driven tests of the decision engine.

use vexxy_decide::{decide, Inputs, Policy};
use vexxy_model::{
    Confidence, Decider, Ecosystem, ElfReach, Finding, FixState, Inventory, InventorySource,
    Justification, LoaderVerdict, Package, PackageReach, PackageRef, Product, ReachFacts,
    RuleOutcome, Selector, Status, Verdict, VexStatement, Vulnerability,
};

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

fn deb(name: &str, files: &[&str]) -> Package {
    let mut p = Package::new(name, "1.0", Ecosystem::Deb);
    p.files = files.iter().map(|s| (*s).to_owned()).collect();
    p
}

fn product() -> Product {
    Product::parse(
        "example/nginx@sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0",
    )
    .expect("product")
}

fn inventory() -> Inventory {
    Inventory::new(
        InventorySource::RootFs,
        vec![
            deb("libssl3", &["/usr/lib/x86_64-linux-gnu/libssl.so.3"]),
            deb("libtiff6", &["/usr/lib/x86_64-linux-gnu/libtiff.so.6"]),
            deb("libcurl4", &["/usr/lib/x86_64-linux-gnu/libcurl.so.4"]),
            deb("libxml2", &["/usr/lib/x86_64-linux-gnu/libxml2.so.2"]),
            deb("gcc-12-base", &["/usr/share/doc/gcc-12-base/copyright"]),
            deb(
                "libpam-runtime",
                &["/usr/sbin/pam-auth-update", "/usr/share/pam-configs/unix"],
            ),
            deb("libc6", &["/usr/lib/x86_64-linux-gnu/libc.so.6"]),
            deb("libc-bin", &["/usr/sbin/ldconfig"]),
            deb("linux-libc-dev", &["/usr/include/linux/if.h"]),
        ],
    )
}

fn facts() -> ReachFacts {
    let mut elf = ElfReach {
        entrypoints: vec!["/usr/sbin/nginx".into()],
        ..ElfReach::default()
    };
    let entry = |lib: &str| PackageReach::FromEntrypoint {
        object: format!("/usr/lib/x86_64-linux-gnu/{lib}"),
        chain: vec![
            "/usr/sbin/nginx".into(),
            format!("/usr/lib/x86_64-linux-gnu/{lib}"),
        ],
    };
    elf.packages.insert("libssl3".into(), entry("libssl.so.3"));
    elf.packages.insert("libc6".into(), entry("libc.so.6"));
    elf.packages.insert(
        "libc-bin".into(),
        PackageReach::FromOtherExecutables {
            executables: vec!["/usr/sbin/ldconfig".into()],
            count: 1,
        },
    );
    elf.packages.insert(
        "libtiff6".into(),
        PackageReach::OnlyViaPlugins {
            plugins: vec![(
                "/usr/lib/nginx/modules/ngx_http_image_filter_module.so".into(),
                LoaderVerdict::NotLoaded {
                    loader: "nginx".into(),
                    reason: "no load_module in /etc/nginx/nginx.conf".into(),
                },
            )],
        },
    );
    elf.packages.insert(
        "libcurl4".into(),
        PackageReach::FromOtherExecutables {
            executables: vec!["/usr/bin/curl".into()],
            count: 1,
        },
    );
    elf.packages.insert(
        "libxml2".into(),
        PackageReach::OnlyViaPlugins {
            plugins: vec![(
                "/usr/lib/x86_64-linux-gnu/libfoo.so".into(),
                LoaderVerdict::Unknown,
            )],
        },
    );
    elf.packages
        .insert("gcc-12-base".into(), PackageReach::NoElf);
    elf.packages
        .insert("libpam-runtime".into(), PackageReach::NoElf);
    let rule = |id: &str,
                pkgs: &[&str],
                vulns: &[&str],
                status: Status,
                j: Option<Justification>,
                c: f64| RuleOutcome {
        rule_id: id.into(),
        description: format!("rule {id}"),
        selector: Selector {
            packages: pkgs.iter().map(|s| (*s).to_owned()).collect(),
            vulnerabilities: vulns.iter().map(|s| (*s).to_owned()).collect(),
        },
        status,
        justification: j,
        confidence: Confidence::clamped(c),
        observation: format!("rule {id} held"),
        facts: vec![],
    };
    ReachFacts {
        functions: Vec::new(),
        links: Default::default(),
        security_data: Vec::new(),
        elf: Some(elf),
        rules: vec![
            // Claims libssl3 is not in the execute path: the ELF graph vetoes it.
            rule(
                "wrong-rule",
                &["libssl3"],
                &["CVE-ENTRY"],
                Status::NotAffected,
                Some(Justification::VulnerableCodeNotInExecutePath),
                0.99,
            ),
            rule(
                "client-cert",
                &["libssl3"],
                &["CVE-CLIENT-CERT"],
                Status::NotAffected,
                Some(Justification::VulnerableCodeCannotBeControlledByAdversary),
                0.7,
            ),
            rule(
                "known-bad",
                &["libc*"],
                &["CVE-KNOWN"],
                Status::Affected,
                None,
                0.9,
            ),
        ],
    }
}

struct Case {
    name: &'static str,
    vuln: &'static str,
    pkg: &'static str,
    eco: Ecosystem,
    status: Status,
    justification: Option<Justification>,
    min_confidence: f64,
    provider: Option<&'static str>,
}

#[test]
fn verdicts_per_evidence() {
    use Justification as J;
    use Status as S;
    let cases = [
        Case {
            name: "kernel header package",
            vuln: "CVE-K",
            pkg: "linux-libc-dev",
            eco: Ecosystem::Deb,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotPresent),
            min_confidence: 0.9,
            provider: Some("kernel-headers"),
        },
        Case {
            name: "package not installed",
            vuln: "CVE-A",
            pkg: "libgnutls30",
            eco: Ecosystem::Deb,
            status: S::NotAffected,
            justification: Some(J::ComponentNotPresent),
            min_confidence: 0.9,
            provider: Some("component-presence"),
        },
        Case {
            name: "python finding, deb-only inventory",
            vuln: "CVE-P",
            pkg: "flask",
            eco: Ecosystem::Python,
            status: S::UnderInvestigation,
            justification: None,
            min_confidence: 0.0,
            provider: None,
        },
        Case {
            name: "entrypoint loads it",
            vuln: "CVE-E",
            pkg: "libssl3",
            eco: Ecosystem::Deb,
            status: S::UnderInvestigation,
            justification: None,
            min_confidence: 0.0,
            provider: None,
        },
        Case {
            name: "rule vetoed by the entrypoint closure",
            vuln: "CVE-ENTRY",
            pkg: "libssl3",
            eco: Ecosystem::Deb,
            status: S::UnderInvestigation,
            justification: None,
            min_confidence: 0.0,
            provider: None,
        },
        Case {
            name: "rule not vetoed: adversary control",
            vuln: "CVE-CLIENT-CERT",
            pkg: "libssl3",
            eco: Ecosystem::Deb,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeCannotBeControlledByAdversary),
            min_confidence: 0.7,
            provider: Some("config-rule:client-cert"),
        },
        Case {
            name: "only an unloaded nginx module",
            vuln: "CVE-T",
            pkg: "libtiff6",
            eco: Ecosystem::Deb,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            min_confidence: 0.9,
            provider: Some("elf-reachability"),
        },
        Case {
            name: "unexplained plugin",
            vuln: "CVE-X",
            pkg: "libxml2",
            eco: Ecosystem::Deb,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            min_confidence: 0.7,
            provider: Some("elf-reachability"),
        },
        Case {
            name: "other executable",
            vuln: "CVE-C",
            pkg: "libcurl4",
            eco: Ecosystem::Deb,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            min_confidence: 0.6,
            provider: Some("elf-reachability"),
        },
        Case {
            name: "docs-only package",
            vuln: "CVE-G",
            pkg: "gcc-12-base",
            eco: Ecosystem::Deb,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotPresent),
            min_confidence: 0.75,
            provider: Some("no-code"),
        },
        Case {
            name: "package with a script is code",
            vuln: "CVE-PAM",
            pkg: "libpam-runtime",
            eco: Ecosystem::Deb,
            status: S::UnderInvestigation,
            justification: None,
            min_confidence: 0.0,
            provider: None,
        },
        Case {
            name: "rule says affected",
            vuln: "CVE-KNOWN",
            pkg: "libc6",
            eco: Ecosystem::Deb,
            status: S::Affected,
            justification: None,
            min_confidence: 0.9,
            provider: Some("config-rule:known-bad"),
        },
    ];
    let inv = inventory();
    let facts = facts();
    let product = product();
    for c in cases {
        let findings = [finding(c.vuln, c.pkg, c.eco.clone())];
        let inputs = Inputs {
            product: &product,
            findings: &findings,
            inventory: Some(&inv),
            facts: &facts,
            existing: &[],
            profile: None,
            command_override: None,
        };
        let out = decide(&inputs, &Policy::default());
        let v = &out.decisions[0].verdict;
        assert_eq!(v.status(), c.status, "{}: status ({v:?})", c.name);
        assert_eq!(
            v.justification(),
            c.justification,
            "{}: justification",
            c.name
        );
        assert!(
            v.confidence.get() >= c.min_confidence,
            "{}: confidence {}",
            c.name,
            v.confidence
        );
        if let Some(p) = c.provider {
            assert_eq!(v.decided_by, Decider::automated(p), "{}: decider", c.name);
        }
        if v.status() == Status::NotAffected {
            assert!(
                !v.evidence.is_empty(),
                "{}: not_affected without evidence",
                c.name
            );
        }
        if v.status() == Status::Affected {
            assert_eq!(
                v.action_statement(),
                Some("update libc6 to 1.1 or later"),
                "{}",
                c.name
            );
        }
        assert!(!v.notes.is_empty(), "{}: notes explain the verdict", c.name);
    }
}

#[test]
fn existing_statements_are_respected() {
    let inv = inventory();
    let facts = facts();
    let product = product();
    let human = Verdict::affected(
        "patched in our fork".into(),
        Decider::Human {
            author: "alice@example.com".into(),
        },
    )
    .with_confidence(Confidence::CERTAIN);
    let existing = [VexStatement {
        vulnerability_id: "CVE-T".into(),
        aliases: vec![],
        description: None,
        product: Product::parse("nginx").expect("product"),
        subcomponents: vec![],
        verdict: human.clone(),
        timestamp: None,
    }];
    let findings = [
        finding("CVE-T", "libtiff6", Ecosystem::Deb),
        finding("CVE-C", "libcurl4", Ecosystem::Deb),
    ];
    let inputs = Inputs {
        product: &product,
        findings: &findings,
        inventory: Some(&inv),
        facts: &facts,
        existing: &existing,
        profile: None,
        command_override: None,
    };
    let out = decide(&inputs, &Policy::default());
    assert_eq!(out.decisions[0].verdict, human);
    assert!(out.decisions[0].existing);
    assert!(!out.decisions[1].existing);
    assert_eq!(out.summary.existing, 1);
}

#[test]
fn one_statement_per_vulnerability_joined_conservatively() {
    let inv = inventory();
    let facts = facts();
    let product = product();
    // The same CVE in a reachable and an unreachable package.
    let findings = [
        finding("CVE-1", "libtiff6", Ecosystem::Deb),
        finding("CVE-1", "libc6", Ecosystem::Deb),
        finding("CVE-2", "libtiff6", Ecosystem::Deb),
    ];
    let inputs = Inputs {
        product: &product,
        findings: &findings,
        inventory: Some(&inv),
        facts: &facts,
        existing: &[],
        profile: None,
        command_override: None,
    };
    let out = decide(&inputs, &Policy::default());
    assert_eq!(out.statements.len(), 2);
    let s1 = &out.statements[0];
    assert_eq!(s1.vulnerability_id, "CVE-1");
    assert_eq!(s1.verdict.status(), Status::UnderInvestigation);
    let subs: Vec<String> = s1.subcomponents.iter().map(ToString::to_string).collect();
    assert_eq!(subs, ["pkg:deb/libc6@1.0", "pkg:deb/libtiff6@1.0"]);
    assert_eq!(out.statements[1].verdict.status(), Status::NotAffected);
    assert_eq!(out.summary.findings, 3);
    assert_eq!(out.summary.under_investigation, 1);
    assert_eq!(out.summary.automated(), 2);
}

#[test]
fn without_any_evidence_everything_is_under_investigation() {
    let product = product();
    let facts = ReachFacts::default();
    let findings = [
        finding("CVE-1", "libtiff6", Ecosystem::Deb),
        finding("CVE-2", "openssl", Ecosystem::Deb),
    ];
    let inputs = Inputs {
        product: &product,
        findings: &findings,
        inventory: None,
        facts: &facts,
        existing: &[],
        profile: None,
        command_override: None,
    };
    let out = decide(&inputs, &Policy::default());
    assert!(out
        .decisions
        .iter()
        .all(|d| d.verdict.status() == Status::UnderInvestigation));
    assert_eq!(out.summary.needs_review, 2);
}

#[test]
fn verdicts_below_the_minimum_confidence_stay_open() {
    let inv = inventory();
    let facts = facts();
    let product = product();
    // libcurl4: 0.60 (other executables); libtiff6: 0.90 (unloaded plugin only).
    let findings = [
        finding("CVE-C", "libcurl4", Ecosystem::Deb),
        finding("CVE-T", "libtiff6", Ecosystem::Deb),
    ];
    let inputs = Inputs {
        product: &product,
        findings: &findings,
        inventory: Some(&inv),
        facts: &facts,
        existing: &[],
        profile: None,
        command_override: None,
    };
    let out = decide(
        &inputs,
        &Policy {
            min_confidence: vexxy_model::Confidence::clamped(0.7),
            ..Policy::default()
        },
    );
    let curl = &out.decisions[0].verdict;
    assert_eq!(curl.status(), Status::UnderInvestigation);
    assert!(
        curl.notes.contains("below the minimum of 0.70"),
        "{}",
        curl.notes
    );
    assert!(!curl.evidence.is_empty(), "the evidence stays attached");
    assert_eq!(out.decisions[1].verdict.status(), Status::NotAffected);
}

/// Soundness guards: what keeps weaker evidence from claiming too much.
#[test]
fn execute_path_claims_need_the_elf_graph_and_respect_it() {
    let inv = inventory();
    let product = product();
    let rule = RuleOutcome {
        rule_id: "module-off".into(),
        description: "a module is off".into(),
        selector: Selector {
            packages: vec!["libcurl4".into(), "libxml2".into()],
            vulnerabilities: vec![],
        },
        status: Status::NotAffected,
        justification: Some(Justification::VulnerableCodeNotInExecutePath),
        confidence: Confidence::clamped(0.85),
        observation: "the module is not loaded".into(),
        facts: vec![],
    };
    let findings = [
        finding("CVE-C", "libcurl4", Ecosystem::Deb),
        finding("CVE-X", "libxml2", Ecosystem::Deb),
    ];

    // No ELF facts: the rule's execute-path claim is not asserted.
    let no_elf = ReachFacts {
        functions: Vec::new(),
        links: Default::default(),
        security_data: Vec::new(),
        elf: None,
        rules: vec![rule.clone()],
    };
    let inputs = Inputs {
        product: &product,
        findings: &findings,
        inventory: Some(&inv),
        facts: &no_elf,
        existing: &[],
        profile: None,
        command_override: None,
    };
    let out = decide(&inputs, &Policy::default());
    assert!(out
        .decisions
        .iter()
        .all(|d| d.verdict.status() == Status::UnderInvestigation));

    // ELF says other executables load libcurl4 (0.60): the rule cannot claim more.
    let mut with_elf = facts();
    with_elf.rules = vec![rule];
    let inputs = Inputs {
        product: &product,
        findings: &findings,
        inventory: Some(&inv),
        facts: &with_elf,
        existing: &[],
        profile: None,
        command_override: None,
    };
    let out = decide(&inputs, &Policy::default());
    let curl = &out.decisions[0].verdict;
    assert_eq!(curl.status(), Status::NotAffected);
    assert!(
        curl.confidence.get() <= 0.6 + f64::EPSILON,
        "capped at the graph's 0.60, got {}",
        curl.confidence
    );

    // The entrypoint calls dlopen: an unexplained plugin may be loaded, so
    // neither the graph nor the rule may claim libxml2 is out of the path.
    if let Some(elf) = with_elf.elf.as_mut() {
        elf.entry_dlopen_callers = vec!["/usr/sbin/nginx".into()];
    }
    let inputs = Inputs {
        product: &product,
        findings: &findings,
        inventory: Some(&inv),
        facts: &with_elf,
        existing: &[],
        profile: None,
        command_override: None,
    };
    let out = decide(&inputs, &Policy::default());
    let xml = &out.decisions[1].verdict;
    assert_eq!(xml.status(), Status::UnderInvestigation, "{xml:?}");
    assert!(xml
        .evidence
        .iter()
        .any(|e| e.facts.iter().any(|(k, _)| k == "dlopen_callers")));
}

#[test]
fn statements_pinned_to_another_digest_do_not_apply() {
    let inv = inventory();
    let facts = facts();
    let unpinned = Product::parse("example/nginx").expect("product");
    let pinned = product();
    let existing = [VexStatement {
        vulnerability_id: "CVE-T".into(),
        aliases: vec![],
        description: None,
        product: pinned,
        subcomponents: vec![],
        verdict: Verdict::affected("x".into(), Decider::Human { author: "a".into() }),
        timestamp: None,
    }];
    let findings = [finding("CVE-T", "libtiff6", Ecosystem::Deb)];
    let inputs = Inputs {
        product: &unpinned,
        findings: &findings,
        inventory: Some(&inv),
        facts: &facts,
        existing: &existing,
        profile: None,
        command_override: None,
    };
    let out = decide(&inputs, &Policy::default());
    assert!(
        !out.decisions[0].existing,
        "a statement about one digest says nothing about an unpinned run"
    );
}

#[test]
fn statements_fold_decisions_as_decide_does() {
    let findings = vec![
        finding("CVE-K", "linux-libc-dev", Ecosystem::Deb),
        finding("CVE-KNOWN", "libc6", Ecosystem::Deb),
        finding("CVE-KNOWN", "libc-bin", Ecosystem::Deb),
        finding("CVE-A", "libgnutls30", Ecosystem::Deb),
    ];
    let inv = inventory();
    let facts = facts();
    let product = product();
    let inputs = Inputs {
        product: &product,
        findings: &findings,
        inventory: Some(&inv),
        facts: &facts,
        existing: &[],
        profile: None,
        command_override: None,
    };
    let outcome = decide(&inputs, &Policy::default());
    assert_eq!(
        vexxy_decide::statements(&product, &findings, &outcome.decisions),
        outcome.statements
    );
    // a decision naming no finding is skipped, not a panic
    let mut stray = outcome.decisions.clone();
    stray[0].finding = 99;
    let folded = vexxy_decide::statements(&product, &findings, &stray);
    assert!(folded.iter().all(|s| s.vulnerability_id != "CVE-K"));
    assert_eq!(folded.len(), outcome.statements.len() - 1);
}
