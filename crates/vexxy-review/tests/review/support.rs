//! Hand-made findings, a real engine outcome over them, and records.

use time::{macros::datetime, OffsetDateTime};
use vexxy_decide::{decide, Decision, Inputs, Outcome, Policy};
use vexxy_model::{
    Confidence, Decider, Ecosystem, ElfReach, Evidence, EvidenceSource, Finding, FixState,
    Inventory, InventorySource, Justification, LoaderVerdict, Package, PackageReach, PackageRef,
    Product, ReachFacts, RuleOutcome, Selector, Severity, Status, Verdict, Vulnerability,
};
use vexxy_review::{DecisionInput, HumanStatement, RawDecision, StatementRecord};

pub(crate) const DIGEST_A: &str =
    "sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0";
pub(crate) const DIGEST_B: &str =
    "sha256:88fd35a248a561e1bff5add8ff4825bec00a9af65c83aa28b9a51f9e11c9cd6f";

pub(crate) const T0: OffsetDateTime = datetime!(2026-03-01 09:00 UTC);
pub(crate) const T1: OffsetDateTime = datetime!(2026-03-02 10:30 UTC);
pub(crate) const T2: OffsetDateTime = datetime!(2026-03-03 11:45 UTC);

pub(crate) fn product(digest: &str) -> Product {
    Product::parse(&format!("docker.io/library/nginx@{digest}")).expect("product")
}

pub(crate) fn finding(vuln: &str, pkg: &str, severity: Severity, fixed: &[&str]) -> Finding {
    Finding {
        vulnerability: Vulnerability {
            id: vuln.into(),
            aliases: vec![format!("DSA-{}", &vuln[4..])],
            severity,
            description: Some(format!("{vuln} in {pkg}")),
            epss: Some(0.25),
            ..Vulnerability::default()
        },
        package: PackageRef {
            name: pkg.into(),
            version: "1.0-1".into(),
            ecosystem: Ecosystem::Deb,
            purl: Some(
                format!("pkg:deb/debian/{pkg}@1.0-1?arch=amd64&distro=debian-12")
                    .parse()
                    .expect("purl"),
            ),
            source_name: None,
        },
        fixed_versions: fixed.iter().map(|v| (*v).to_owned()).collect(),
        fix_state: if fixed.is_empty() {
            FixState::NotFixed
        } else {
            FixState::Fixed
        },
        reported_by: Some("grype 0.92.2".into()),
    }
}

/// Findings in (vulnerability, package key) order, so the engine's
/// statements and issued ones fold evidence in the same order.
pub(crate) fn findings() -> Vec<Finding> {
    vec![
        // loaded by the entrypoint: the engine cannot rule it out
        finding("CVE-2024-0001", "libssl3", Severity::Critical, &[]),
        // only in a plugin nginx does not load
        finding("CVE-2024-0002", "libtiff6", Severity::High, &["1.0-2"]),
        // a rule says affected
        finding("CVE-2024-0003", "libc-bin", Severity::Medium, &[]),
        finding("CVE-2024-0003", "libc6", Severity::Medium, &[]),
        // not installed
        finding("CVE-2024-0004", "libgnutls30", Severity::Low, &[]),
        // kernel headers
        finding("CVE-2024-0005", "linux-libc-dev", Severity::High, &[]),
    ]
}

fn deb(name: &str, files: &[&str]) -> Package {
    let mut p = Package::new(name, "1.0-1", Ecosystem::Deb);
    p.files = files.iter().map(|s| (*s).to_owned()).collect();
    p
}

pub(crate) fn inventory() -> Inventory {
    Inventory::new(
        InventorySource::RootFs,
        vec![
            deb("libssl3", &["/usr/lib/x86_64-linux-gnu/libssl.so.3"]),
            deb("libtiff6", &["/usr/lib/x86_64-linux-gnu/libtiff.so.6"]),
            deb("libc6", &["/usr/lib/x86_64-linux-gnu/libc.so.6"]),
            deb("libc-bin", &["/usr/sbin/ldconfig"]),
            deb("linux-libc-dev", &["/usr/include/linux/if.h"]),
        ],
    )
}

pub(crate) fn facts() -> ReachFacts {
    let mut elf = ElfReach {
        entrypoints: vec!["/usr/sbin/nginx".into()],
        ..ElfReach::default()
    };
    elf.packages.insert(
        "libssl3".into(),
        PackageReach::FromEntrypoint {
            object: "/usr/lib/x86_64-linux-gnu/libssl.so.3".into(),
            chain: vec![
                "/usr/sbin/nginx".into(),
                "/usr/lib/x86_64-linux-gnu/libssl.so.3".into(),
            ],
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
    ReachFacts {
        functions: Vec::new(),
        links: Default::default(),
        security_data: Vec::new(),
        elf: Some(elf),
        rules: vec![RuleOutcome {
            rule_id: "known-bad".into(),
            description: "libc is known bad".into(),
            selector: Selector {
                packages: vec!["libc*".into()],
                vulnerabilities: vec!["CVE-2024-0003".into()],
            },
            status: Status::Affected,
            justification: None,
            confidence: Confidence::clamped(0.9),
            observation: "the rule held".into(),
            facts: vec![],
        }],
    }
}

/// The engine's outcome over [`findings`].
pub(crate) fn outcome(findings: &[Finding], digest: &str) -> Outcome {
    let product = product(digest);
    let inventory = inventory();
    let facts = facts();
    decide(
        &Inputs {
            product: &product,
            findings,
            inventory: Some(&inventory),
            facts: &facts,
            existing: &[],
            profile: None,
            command_override: None,
        },
        &Policy::default(),
    )
}

pub(crate) fn records() -> Vec<StatementRecord> {
    let findings = findings();
    let outcome = outcome(&findings, DIGEST_A);
    StatementRecord::from_outcome(&findings, &outcome.decisions)
}

pub(crate) fn record<'a>(
    records: &'a [StatementRecord],
    vuln: &str,
    pkg: &str,
) -> &'a StatementRecord {
    records
        .iter()
        .find(|r| r.vulnerability_id == vuln && r.package.name == pkg)
        .unwrap_or_else(|| panic!("no record {vuln} {pkg}"))
}

pub(crate) fn raw(action: &str, reason: &str) -> RawDecision {
    RawDecision {
        action: Some(action.into()),
        reason: Some(reason.into()),
        ..RawDecision::default()
    }
}

pub(crate) fn input(raw: RawDecision) -> DecisionInput {
    DecisionInput::try_from(raw).expect("valid decision")
}

/// alice overrides `record` to affected.
pub(crate) fn override_affected(record: &StatementRecord, at: OffsetDateTime) -> HumanStatement {
    let decision = input(RawDecision {
        status: Some("affected".into()),
        action_statement: Some("upgrade libtiff6 to 1.0-2".into()),
        ..raw(
            "override",
            "the image filter module is loaded in production",
        )
    });
    HumanStatement::new(record, &decision, "alice@example.com", at).expect("override")
}

/// A verdict with every part a record keeps.
pub(crate) fn rich_verdict() -> Verdict {
    let mut v = Verdict::new(
        Status::NotAffected,
        Some(Justification::VulnerableCodeNotInExecutePath),
        Some("only the decompressor is used".into()),
        None,
        Decider::Imported {
            author: "upstream".into(),
        },
    )
    .expect("verdict")
    .with_confidence(Confidence::clamped(0.73))
    .with_notes("a note");
    v.evidence = vec![
        Evidence::new(
            "elf-reachability",
            EvidenceSource::ElfGraph,
            "libtiff.so.6 is reached only through a plugin",
        )
        .about("/usr/lib/x86_64-linux-gnu/libtiff.so.6")
        .fact("plugins", "ngx_http_image_filter_module.so")
        .fact("plugins", "again"),
        Evidence::new("rule", EvidenceSource::ConfigRule("nginx-x".into()), "held"),
        Evidence::new(
            "existing",
            EvidenceSource::ExistingVex("https://example.com/vex/1".into()),
            "said so",
        ),
        Evidence::new("r", EvidenceSource::Runtime, "never mapped").fact("run", "a 30 s run"),
        Evidence::new("s", EvidenceSource::Sbom, "listed"),
        Evidence::new("p", EvidenceSource::PackageDb, "installed"),
        Evidence::new("k", EvidenceSource::ScannerReport, "reported"),
    ];
    v
}

/// Decisions by hand: every finding gets `verdicts[i]`.
pub(crate) fn decisions(verdicts: Vec<Verdict>) -> Vec<Decision> {
    verdicts
        .into_iter()
        .enumerate()
        .map(|(finding, verdict)| Decision {
            finding,
            verdict,
            existing: false,
        })
        .collect()
}
