//! Records of an engine outcome: keys, merging, JSON, fingerprints.

use vexxy_model::{
    Confidence, Decider, Ecosystem, Evidence, EvidenceSource, FixState, Justification, Severity,
    Status, Verdict,
};
use vexxy_review::{package_key, ReviewError, StatementRecord};

use crate::support::{
    decisions, finding, findings, outcome, record, records, rich_verdict, DIGEST_A, DIGEST_B,
};

#[test]
fn one_record_per_finding_sorted_by_key() {
    let records = records();
    let keys: Vec<_> = records
        .iter()
        .map(|r| (r.vulnerability_id.as_str(), r.package_key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("CVE-2024-0001", "pkg:deb/debian/libssl3@1.0-1"),
            ("CVE-2024-0002", "pkg:deb/debian/libtiff6@1.0-1"),
            ("CVE-2024-0003", "pkg:deb/debian/libc-bin@1.0-1"),
            ("CVE-2024-0003", "pkg:deb/debian/libc6@1.0-1"),
            ("CVE-2024-0004", "pkg:deb/debian/libgnutls30@1.0-1"),
            ("CVE-2024-0005", "pkg:deb/debian/linux-libc-dev@1.0-1"),
        ]
    );
    let tiff = record(&records, "CVE-2024-0002", "libtiff6");
    assert_eq!(tiff.aliases, ["DSA-2024-0002"]);
    assert_eq!(tiff.severity, Severity::High);
    assert_eq!((tiff.epss, tiff.known_exploited), (Some(0.25), false));
    assert_eq!(
        (&tiff.fix_state, tiff.fixed_versions.as_slice()),
        (&FixState::Fixed, ["1.0-2".to_owned()].as_slice())
    );
    assert_eq!(
        tiff.verdict.justification(),
        Some(Justification::VulnerableCodeNotInExecutePath)
    );
    assert!(!tiff.verdict.evidence.is_empty());
    assert_eq!(tiff.evidence_fingerprint, tiff.fingerprint());
    // the input order does not matter
    let mut reversed = findings();
    reversed.reverse();
    let outcome = outcome(&reversed, DIGEST_A);
    assert_eq!(
        StatementRecord::from_outcome(&reversed, &outcome.decisions),
        records
    );
}

#[test]
fn duplicate_findings_merge_worst_status_first() {
    let mut a = finding("CVE-2024-0009", "libxml2", Severity::Medium, &["1.0-3"]);
    a.vulnerability.epss = Some(0.1);
    let mut b = a.clone();
    b.vulnerability.aliases = vec!["GHSA-xxxx".into()];
    b.vulnerability.severity = Severity::High;
    b.vulnerability.epss = Some(0.4);
    b.vulnerability.known_exploited = true;
    b.fixed_versions = vec!["1.0-4".into()];
    b.package.purl = Some("pkg:deb/debian/libxml2@1.0-1?arch=arm64".parse().unwrap());
    let c = a.clone();
    let na = |c: f64, note: &str, ev: &str| {
        Verdict::not_affected(
            Justification::VulnerableCodeNotPresent,
            Decider::automated("p"),
        )
        .with_confidence(Confidence::clamped(c))
        .with_notes(note)
        .with_evidence(Evidence::new("p", EvidenceSource::PackageDb, ev))
    };
    let affected = Verdict::affected("update".into(), Decider::automated("q"))
        .with_confidence(Confidence::clamped(0.8))
        .with_notes("b")
        .with_evidence(Evidence::new("q", EvidenceSource::ElfGraph, "loaded"));
    let findings = [a, b, c];
    let ds = decisions(vec![na(0.9, "a", "absent"), affected, na(0.5, "c", "gone")]);
    let merged = StatementRecord::from_outcome(&findings, &ds);
    assert_eq!(merged.len(), 1, "{merged:?}");
    let r = &merged[0];
    assert_eq!(r.package_key, "pkg:deb/debian/libxml2@1.0-1");
    assert_eq!(r.verdict.status(), Status::Affected);
    assert_eq!(r.verdict.action_statement(), Some("update"));
    assert_eq!(r.verdict.notes, "a; b; c");
    let observed: Vec<_> = r
        .verdict
        .evidence
        .iter()
        .map(|e| e.observation.as_str())
        .collect();
    assert_eq!(observed, ["absent", "loaded", "gone"]);
    assert_eq!(r.aliases, ["DSA-2024-0009", "GHSA-xxxx"]);
    assert_eq!(r.fixed_versions, ["1.0-3", "1.0-4"]);
    assert_eq!(r.severity, Severity::High);
    assert_eq!((r.epss, r.known_exploited), (Some(0.4), true));
    assert_eq!(r.evidence_fingerprint, r.fingerprint());

    // among equal statuses, the least confident leads
    let ds = decisions(vec![
        na(0.9, "a", "x"),
        na(0.95, "b", "y"),
        na(0.5, "c", "z"),
    ]);
    let r = &StatementRecord::from_outcome(&findings, &ds)[0];
    assert_eq!(r.verdict.confidence.get(), 0.5);
    // decisions naming no finding are skipped
    let mut ds = decisions(vec![na(0.9, "a", "x")]);
    ds[0].finding = 7;
    assert!(StatementRecord::from_outcome(&findings, &ds).is_empty());
}

#[test]
fn records_read_back_equal() {
    let mut all = records();
    let mut rich = all[1].clone();
    rich.verdict = rich_verdict();
    rich.description = None;
    rich.epss = None;
    rich.known_exploited = true;
    rich.fix_state = FixState::WontFix;
    rich.package.purl = None;
    rich.package.ecosystem = Ecosystem::Other("conda".into());
    rich.package.source_name = Some("tiff".into());
    rich.package_key = package_key(&rich.package);
    rich.evidence_fingerprint = rich.fingerprint();
    all.push(rich);
    let mut human = all[0].clone();
    human.verdict = Verdict::affected(
        "upgrade".into(),
        Decider::Human {
            author: "alice".into(),
        },
    )
    .with_confidence(Confidence::CERTAIN);
    all.push(human);
    let mut fixed = all[0].clone();
    fixed.verdict = Verdict::fixed(Decider::automated("vexxy"));
    fixed.severity = Severity::Unknown;
    fixed.fix_state = FixState::Unknown;
    all.push(fixed);
    for r in &all {
        let json = r.to_json();
        let back = StatementRecord::from_json(&json).unwrap();
        assert_eq!(&back, r, "{json}");
        assert_eq!(back.to_json(), json);
    }
    assert_eq!(
        all.last().unwrap().package_key,
        "pkg:deb/debian/libssl3@1.0-1"
    );
    assert_eq!(all[all.len() - 3].package_key, "conda/libtiff6@1.0-1");
}

#[test]
fn bad_records_name_where() {
    let good: serde_json::Value = serde_json::from_str(&records()[1].to_json()).unwrap();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("format", serde_json::json!(2), "format"),
        ("severity", serde_json::json!("severe"), "severity"),
        ("fix_state", serde_json::json!("soon"), "fix_state"),
        ("epss", serde_json::json!(1.5), "epss"),
        (
            "evidence_fingerprint",
            serde_json::json!("sha256:nope"),
            "evidence_fingerprint",
        ),
        ("package_key", serde_json::json!(" "), "package_key"),
        ("surprise", serde_json::json!(1), "surprise"),
        (
            "/verdict/status",
            serde_json::json!("fine"),
            "verdict.status",
        ),
        (
            "/verdict/justification",
            serde_json::json!("because"),
            "verdict.justification",
        ),
        (
            "/verdict/confidence",
            serde_json::json!(3.0),
            "verdict.confidence",
        ),
        (
            "/verdict/decided_by",
            serde_json::json!({"kind": "oracle"}),
            "verdict.decided_by.kind",
        ),
        (
            "/verdict/evidence/0/source",
            serde_json::json!({"kind": "dream"}),
            "verdict.evidence[0].source.kind",
        ),
        (
            "/package/purl",
            serde_json::json!("not a purl"),
            "package.purl",
        ),
        (
            "/package/ecosystem",
            serde_json::json!("cobol"),
            "package.ecosystem",
        ),
    ];
    for (at, value, path) in cases {
        let mut doc = good.clone();
        match at.strip_prefix('/') {
            Some(pointer) => {
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                doc.pointer_mut(&format!("/{parent}")).unwrap()[key] = value;
            }
            None => doc[at] = value,
        }
        match StatementRecord::from_json(&doc.to_string()) {
            Err(ReviewError::Record { path: p, message }) => {
                assert_eq!(p, path, "{at}: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("{at}: expected a record error at {path}, got {other:?}"),
        }
    }
    // a not_affected verdict without a reason does not read back
    let mut doc = good.clone();
    doc["verdict"]
        .as_object_mut()
        .unwrap()
        .shift_remove("justification");
    let e = StatementRecord::from_json(&doc.to_string()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "statement record: verdict: a not_affected verdict needs a justification or an impact statement"
    );
    assert!(StatementRecord::from_json("{} trailing").is_err());
    assert!(StatementRecord::from_json("").is_err());
}

/// The same finding's record as another digest's analysis would make it:
/// image-wide facts, digests, confidence, notes and evidence order differ.
fn other_digest(r: &StatementRecord) -> StatementRecord {
    let mut o = r.clone();
    o.verdict.confidence = Confidence::clamped(0.42);
    o.verdict.notes = "said differently".into();
    o.severity = Severity::Critical;
    o.epss = Some(0.99);
    o.verdict.evidence.reverse();
    for e in &mut o.verdict.evidence {
        e.observation = e.observation.replace(DIGEST_A, DIGEST_B);
        e.subject = e.subject.as_ref().map(|s| s.replace(DIGEST_A, DIGEST_B));
        for (k, v) in &mut e.facts {
            *v = v.replace(DIGEST_A, DIGEST_B);
            if k == "run" || k == "coverage_factors" || k == "packages_in_inventory" {
                *v = format!("{v} (another run)");
            }
        }
        e.source = match &e.source {
            EvidenceSource::ExistingVex(id) => {
                EvidenceSource::ExistingVex(id.replace(DIGEST_A, DIGEST_B))
            }
            s => s.clone(),
        };
    }
    o.evidence_fingerprint = o.fingerprint();
    o
}

#[test]
fn fingerprints_ignore_what_differs_between_digests() {
    let hex_a = DIGEST_A.trim_start_matches("sha256:");
    let mut r = record(&records(), "CVE-2024-0002", "libtiff6").clone();
    r.verdict.evidence.push(
        Evidence::new(
            "existing",
            EvidenceSource::ExistingVex(format!("https://vex.example/nginx@{DIGEST_A}")),
            format!("pkg:oci/nginx@sha256%3A{hex_a} says so"),
        )
        .about(format!("/var/lib/images/{DIGEST_A}/usr/lib/libtiff.so.6"))
        .fact("image", DIGEST_A)
        .fact("run", "a 30.0 s run")
        .fact("coverage_factors", "duration 1.00")
        .fact("packages_in_inventory", "143"),
    );
    r.evidence_fingerprint = r.fingerprint();
    let o = other_digest(&r);
    assert_ne!(o, r);
    assert_eq!(o.evidence_fingerprint, r.evidence_fingerprint);
    assert!(r.evidence_fingerprint.starts_with("sha256:"));
    assert_eq!(r.evidence_fingerprint.len(), "sha256:".len() + 64);
    // the real outcome of the same findings for another digest, too
    let findings = findings();
    let b = StatementRecord::from_outcome(&findings, &outcome(&findings, DIGEST_B).decisions);
    let a = records();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.evidence_fingerprint, y.evidence_fingerprint,
            "{}",
            x.package_key
        );
    }
    // every record's fingerprint is its own
    let mut all: Vec<_> = a.iter().map(|r| &r.evidence_fingerprint).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), a.len());
}

#[test]
fn runtime_observations_of_another_run_keep_the_fingerprint() {
    let mut r = record(&records(), "CVE-2024-0002", "libtiff6").clone();
    let runtime =
        |text: &str| Evidence::new("runtime", EvidenceSource::Runtime, text).about("libtiff6");
    r.verdict.evidence.push(runtime(
        "no file of libtiff6 was executed, mapped or loaded during a 31.2 s run (30 s requested), 18 http request(s)",
    ));
    let fp = r.fingerprint();
    let mut other = r.clone();
    *other.verdict.evidence.last_mut().unwrap() = runtime(
        "no file of libtiff6 was executed, mapped or loaded during a 10 s run (10 s requested), 7 http request(s)",
    );
    assert_eq!(other.fingerprint(), fp, "only the run's numbers differ");
    *other.verdict.evidence.last_mut().unwrap() = runtime(
        "mapped, never entered: libtiff6 was mapped during a 31.2 s run (30 s requested), 18 http request(s)",
    );
    assert_ne!(other.fingerprint(), fp, "what was seen differs");
}

#[test]
fn fingerprints_change_with_the_evidence() {
    let r = record(&records(), "CVE-2024-0002", "libtiff6").clone();
    let fp = r.fingerprint();
    type Change = fn(&mut StatementRecord);
    let changes: [(&str, Change); 9] = [
        ("observation", |r| {
            r.verdict.evidence[0].observation.push_str(" (now loaded)")
        }),
        ("provider", |r| {
            r.verdict.evidence[0].provider = "other".into()
        }),
        ("source", |r| {
            r.verdict.evidence[0].source = EvidenceSource::Runtime
        }),
        ("subject", |r| r.verdict.evidence[0].subject = None),
        ("a fact", |r| r.verdict.evidence[0].facts[0].1.push('!')),
        ("more evidence", |r| {
            r.verdict
                .evidence
                .push(Evidence::new("x", EvidenceSource::Sbom, "listed"));
        }),
        ("version", |r| r.package.version = "1.0-2".into()),
        ("justification", |r| {
            r.verdict = Verdict::not_affected(
                Justification::VulnerableCodeNotPresent,
                r.verdict.decided_by.clone(),
            )
            .with_confidence(r.verdict.confidence);
            r.verdict.evidence = record(&records(), "CVE-2024-0002", "libtiff6")
                .verdict
                .evidence
                .clone();
        }),
        ("status", |r| {
            let evidence = r.verdict.evidence.clone();
            r.verdict = Verdict::under_investigation(r.verdict.decided_by.clone());
            r.verdict.evidence = evidence;
        }),
    ];
    for (what, change) in changes {
        let mut c = r.clone();
        change(&mut c);
        assert_ne!(c.fingerprint(), fp, "{what}");
    }
}
