//! Issuing an image's document.

use std::path::Path;

use vexxy_model::{Confidence, Decider, Status, VexDocument};
use vexxy_review::{issue, HumanStatement, Issue, ReviewError, StatementRecord, TOOL};
use vexxy_vex::{read_vex, validate_openvex};

use crate::support::{
    findings, input, outcome, override_affected, product, raw, record, records, DIGEST_A, DIGEST_B,
    T0, T1, T2,
};

fn issue_of<'a>(
    product: &'a vexxy_model::Product,
    records: &'a [StatementRecord],
    humans: &'a [HumanStatement],
    version: u32,
) -> Issue<'a> {
    Issue {
        product,
        records,
        humans,
        version,
        first_issued: T0,
        last_updated: (version > 1).then_some(T2),
        author: "Example Org",
    }
}

fn valid(bytes: &[u8]) -> VexDocument {
    let report = validate_openvex(bytes, Path::new("issued.json")).unwrap();
    assert!(report.is_valid(), "{:?}", report.problems);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    read_vex(bytes, Path::new("issued.json")).unwrap()
}

#[test]
fn without_humans_the_statements_are_the_engines() {
    let findings = findings();
    let engine = outcome(&findings, DIGEST_A);
    let product = product(DIGEST_A);
    let records = StatementRecord::from_outcome(&findings, &engine.decisions);
    let doc = issue_of(&product, &records, &[], 1).document().unwrap();
    assert_eq!(doc.statements, engine.statements);
    assert_eq!(doc.statements.len(), 5);
    assert_eq!(
        (doc.version, doc.timestamp, doc.last_updated),
        (1, T0, None)
    );
    assert_eq!(doc.tooling.as_deref(), Some(TOOL));
    assert_eq!(doc.author, "Example Org");
    // the bytes are what the engine's own document would be, but for the id
    let bytes = issue(&issue_of(&product, &records, &[], 1)).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(!text.contains("last_updated"), "{text}");
    let mut engine_doc = vexxy_decide::document(engine.statements.clone(), "Example Org", TOOL, T0);
    engine_doc.id = doc.id.clone();
    let engine_text = vexxy_vex::write_openvex(
        &engine_doc,
        &vexxy_vex::OpenVexOptions {
            embed_evidence: false,
            pretty: true,
        },
    )
    .unwrap();
    assert_eq!(text, engine_text);
    valid(&bytes);
}

#[test]
fn a_human_override_replaces_the_automated_verdict() {
    let product = product(DIGEST_A);
    let records = records();
    let tiff = record(&records, "CVE-2024-0002", "libtiff6");
    let humans = [override_affected(tiff, T1)];
    let bytes = issue(&issue_of(&product, &records, &humans, 2)).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains(
            r#""timestamp": "2026-03-01T09:00:00Z",
  "last_updated": "2026-03-03T11:45:00Z",
  "version": 2,"#
        ),
        "{text}"
    );
    let doc = valid(&bytes);
    assert_eq!((doc.version, doc.last_updated), (2, Some(T2)));
    let s = doc
        .statements
        .iter()
        .find(|s| s.vulnerability_id == "CVE-2024-0002")
        .unwrap();
    assert_eq!(s.verdict.status(), Status::Affected);
    assert_eq!(
        s.verdict.action_statement(),
        Some("upgrade libtiff6 to 1.0-2")
    );
    assert_eq!(s.timestamp, Some(T1));
    assert!(
        s.verdict.notes.starts_with(
            "reviewed by alice@example.com on 2026-03-02T10:30:00Z: the image filter module is loaded in production; confidence 1.00"
        ),
        "{}",
        s.verdict.notes
    );
    // in the abstract document, the verdict is alice's
    let abstract_doc = issue_of(&product, &records, &humans, 2).document().unwrap();
    let s = abstract_doc
        .statements
        .iter()
        .find(|s| s.vulnerability_id == "CVE-2024-0002")
        .unwrap();
    assert_eq!(
        s.verdict.decided_by,
        Decider::Human {
            author: "alice@example.com".into()
        }
    );
    assert_eq!(s.verdict.confidence, Confidence::CERTAIN);
    // every other statement is the engine's
    let engine = issue_of(&product, &records, &[], 1).document().unwrap();
    for (a, b) in abstract_doc.statements.iter().zip(&engine.statements) {
        if a.vulnerability_id != "CVE-2024-0002" {
            assert_eq!(a, b);
        }
    }
    // the tool's version changes with every release
    insta::assert_snapshot!(
        "issued_with_override",
        text.replace(TOOL, "vexxy/[version]")
    );
}

#[test]
fn a_human_verdict_replaces_only_its_package() {
    let product = product(DIGEST_A);
    let records = records();
    // bob says libc6 is not affected; libc-bin stays affected, and the
    // statement with it, as the engine folds packages
    let libc6 = record(&records, "CVE-2024-0003", "libc6");
    let decision = input(vexxy_review::RawDecision {
        status: Some("not_affected".into()),
        justification: Some("vulnerable_code_not_in_execute_path".into()),
        ..raw("override", "nginx never calls the vulnerable resolver")
    });
    let humans = [HumanStatement::new(libc6, &decision, "bob", T1).unwrap()];
    let doc = issue_of(&product, &records, &humans, 2).document().unwrap();
    let s = doc
        .statements
        .iter()
        .find(|s| s.vulnerability_id == "CVE-2024-0003")
        .unwrap();
    assert_eq!(s.verdict.status(), Status::Affected);
    assert_eq!(s.subcomponents.len(), 2);
    assert!(
        s.verdict.notes.contains(
            "reviewed by bob on 2026-03-02T10:30:00Z: nginx never calls the vulnerable resolver"
        ),
        "{}",
        s.verdict.notes
    );
    // once libc-bin is approved as affected too, both are human
    let bin = record(&records, "CVE-2024-0003", "libc-bin");
    let approve = input(raw("approve", "ldconfig runs at build time only"));
    let humans = [
        humans[0].clone(),
        HumanStatement::new(bin, &approve, "carol", T2).unwrap(),
    ];
    let doc = issue_of(&product, &records, &humans, 3).document().unwrap();
    let s = doc
        .statements
        .iter()
        .find(|s| s.vulnerability_id == "CVE-2024-0003")
        .unwrap();
    assert_eq!(s.verdict.status(), Status::Affected);
    assert_eq!(s.timestamp, Some(T2));
    assert!(s.verdict.notes.contains("reviewed by carol"));
    assert!(s.verdict.notes.contains("reviewed by bob"));
    valid(&issue(&issue_of(&product, &records, &humans, 3)).unwrap());
}

#[test]
fn human_statements_without_notes_are_signed_when_issued() {
    let product = product(DIGEST_A);
    let records = records();
    let tiff = record(&records, "CVE-2024-0002", "libtiff6");
    // as a caller might build it from stored fields: no notes, no author
    let mut bare = override_affected(tiff, T1);
    bare.verdict.notes.clear();
    bare.verdict.decided_by = Decider::Human {
        author: String::new(),
    };
    bare.verdict.confidence = Confidence::NONE;
    let doc = issue_of(&product, &records, &[bare], 2).document().unwrap();
    let s = doc
        .statements
        .iter()
        .find(|s| s.vulnerability_id == "CVE-2024-0002")
        .unwrap();
    assert_eq!(
        s.verdict.notes,
        "reviewed by alice@example.com on 2026-03-02T10:30:00Z: the image filter module is loaded in production"
    );
    assert_eq!(
        s.verdict.decided_by,
        Decider::Human {
            author: "alice@example.com".into()
        }
    );
    assert_eq!(s.verdict.confidence, Confidence::CERTAIN);
}

#[test]
fn documents_are_deterministic() {
    let product = product(DIGEST_A);
    let records = records();
    let tiff = record(&records, "CVE-2024-0002", "libtiff6");
    let older = override_affected(tiff, T0);
    let newer = {
        let approve = input(raw("approve", "checked again"));
        HumanStatement::new(tiff, &approve, "dave", T1).unwrap()
    };
    let mut gone = newer.clone();
    gone.package_key = "pkg:deb/debian/libtiff6@0.9-1".into();
    let humans = [older.clone(), newer.clone(), gone];
    let bytes = issue(&issue_of(&product, &records, &humans, 2)).unwrap();
    // any order of records and human statements
    let mut shuffled_records = records.clone();
    shuffled_records.reverse();
    shuffled_records.rotate_left(2);
    let shuffled_humans = [humans[2].clone(), newer.clone(), older];
    assert_eq!(
        issue(&issue_of(&product, &shuffled_records, &shuffled_humans, 2)).unwrap(),
        bytes
    );
    // the newest decision wins; one about a finding gone from the image is left out
    assert_eq!(
        issue(&issue_of(&product, &records, &[newer], 2)).unwrap(),
        bytes
    );
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("reviewed by dave"), "{text}");
    assert!(!text.contains("alice"), "{text}");
}

#[test]
fn the_document_id_names_the_image_not_the_version() {
    let a = product(DIGEST_A);
    let b = product(DIGEST_B);
    let records = records();
    let tiff = record(&records, "CVE-2024-0002", "libtiff6");
    let humans = [override_affected(tiff, T1)];
    let v1 = issue_of(&a, &records, &[], 1).document().unwrap();
    let v2 = issue_of(&a, &records, &humans, 2).document().unwrap();
    let other = issue_of(&b, &records, &[], 1).document().unwrap();
    let id = v1.id.clone().unwrap();
    assert!(id.starts_with("urn:uuid:"), "{id}");
    assert_eq!(id.len(), "urn:uuid:".len() + 36);
    assert_eq!(&id[23..24], "8", "version 8 uuid: {id}");
    assert_eq!(v2.id, v1.id);
    assert_ne!(other.id, v1.id);
    let mut by_other = issue_of(&a, &records, &[], 1);
    by_other.author = "Another Org";
    assert_ne!(by_other.document().unwrap().id, v1.id);
}

#[test]
fn nothing_to_issue() {
    let product = product(DIGEST_A);
    assert!(matches!(
        issue(&issue_of(&product, &[], &[], 1)),
        Err(ReviewError::NothingToIssue)
    ));
    let records = records();
    let e = issue(&issue_of(&product, &records, &[], 0)).unwrap_err();
    assert!(e.to_string().starts_with("issued document: "), "{e}");
}
