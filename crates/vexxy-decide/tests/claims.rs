//! Another tool's claims that are not respected as existing statements
//! (Kubescape's `not_affected`): vexxy decides, the claim is evidence.

use vexxy_decide::{decide, record_claims, Inputs, Policy, CLAIM};
use vexxy_model::{
    Confidence, Decider, Ecosystem, EvidenceSource, Finding, FixState, Justification, PackageRef,
    Product, Purl, ReachFacts, Status, Verdict, VexStatement, Vulnerability,
};

fn finding(vuln: &str, pkg: &str) -> Finding {
    Finding {
        vulnerability: Vulnerability {
            id: vuln.into(),
            ..Vulnerability::default()
        },
        package: PackageRef {
            name: pkg.into(),
            version: "1.0".into(),
            ecosystem: Ecosystem::Deb,
            purl: None,
            source_name: None,
        },
        fixed_versions: vec![],
        fix_state: FixState::NotFixed,
        reported_by: None,
    }
}

fn product() -> Product {
    Product::parse(
        "example/nginx@sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0",
    )
    .expect("product")
}

/// Kubescape's statement: `not_affected`, file-level, 0.50.
fn kubescape_not_affected(vuln: &str, pkg: &str) -> VexStatement {
    VexStatement {
        vulnerability_id: vuln.into(),
        aliases: vec![],
        description: None,
        product: product(),
        subcomponents: vec![format!("pkg:deb/debian/{pkg}")
            .parse::<Purl>()
            .expect("purl")],
        verdict: Verdict::not_affected(
            Justification::VulnerableCodeNotPresent,
            Decider::Imported {
                author: "Kubescape vulnerability scanner".into(),
            },
        )
        .with_confidence(Confidence::clamped(0.5)),
        timestamp: None,
    }
}

#[test]
fn a_claim_never_decides_and_is_recorded_as_evidence() {
    let product = product();
    let facts = ReachFacts::default();
    let findings = [finding("CVE-T", "libtiff6"), finding("CVE-C", "libcurl4")];
    let claims = [
        kubescape_not_affected("CVE-T", "libtiff6"),
        kubescape_not_affected("CVE-C", "libcurl4"),
    ];
    // a person's statement about CVE-C stays as it is
    let human = Verdict::affected(
        "upgrade".into(),
        Decider::Human {
            author: "ops".into(),
        },
    );
    let existing = [VexStatement {
        vulnerability_id: "CVE-C".into(),
        aliases: vec![],
        description: None,
        product: product.clone(),
        subcomponents: vec![],
        verdict: human.clone(),
        timestamp: None,
    }];
    let inputs = Inputs {
        product: &product,
        findings: &findings,
        inventory: None,
        facts: &facts,
        existing: &existing,
        profile: None,
        command_override: None,
    };
    let mut out = decide(&inputs, &Policy::default());
    record_claims(&inputs, &claims, &mut out);

    // vexxy has no evidence that rules CVE-T out: the claim does not
    // decide it, it only says what Kubescape stated
    let t = &out.decisions[0];
    assert!(!t.existing);
    assert_ne!(t.verdict.status(), Status::NotAffected);
    let e = t
        .verdict
        .evidence
        .iter()
        .find(|e| e.provider == CLAIM)
        .expect("the claim is evidence");
    assert_eq!(
        e.source,
        EvidenceSource::ExistingVex("Kubescape vulnerability scanner".into())
    );
    assert!(e
        .facts
        .contains(&("claimed_status".into(), "not_affected".into())));
    assert!(e.facts.contains(&(
        "claimed_justification".into(),
        "vulnerable_code_not_present".into()
    )));
    // folded into the statement too
    let st = out
        .statements
        .iter()
        .find(|s| s.vulnerability_id == "CVE-T")
        .expect("statement");
    assert_ne!(st.verdict.status(), Status::NotAffected);
    assert!(st.verdict.evidence.iter().any(|e| e.provider == CLAIM));

    // an existing statement is left as it is
    assert!(out.decisions[1].existing);
    assert_eq!(out.decisions[1].verdict, human);

    // the same claim as an existing statement would have decided CVE-T
    let as_existing = Inputs {
        existing: &claims,
        ..inputs
    };
    let bypass = decide(&as_existing, &Policy::default());
    assert_eq!(bypass.decisions[0].verdict.status(), Status::NotAffected);
}
