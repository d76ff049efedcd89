use std::path::Path;

use vexxy_model::{Decider, VexDocument};
use vexxy_vex::{
    read_vex, write_csaf, write_cyclonedx, write_openvex, CsafOptions, CycloneDxOptions,
    OpenVexOptions,
};

use crate::support::{sample, summary};

type Writer = fn(&VexDocument) -> String;

fn writers() -> [(&'static str, Writer); 5] {
    [
        ("openvex", |d| {
            write_openvex(
                d,
                &OpenVexOptions {
                    embed_evidence: false,
                    pretty: true,
                },
            )
            .expect("openvex")
        }),
        ("openvex-embedded", |d| {
            write_openvex(
                d,
                &OpenVexOptions {
                    embed_evidence: true,
                    pretty: false,
                },
            )
            .expect("openvex")
        }),
        ("cyclonedx", |d| {
            write_cyclonedx(d, &CycloneDxOptions::default()).expect("cyclonedx")
        }),
        ("cyclonedx-embedded", |d| {
            write_cyclonedx(
                d,
                &CycloneDxOptions {
                    sbom: None,
                    embed_evidence: true,
                },
            )
            .expect("cyclonedx")
        }),
        ("csaf", |d| {
            write_csaf(d, &CsafOptions::default()).expect("csaf")
        }),
    ]
}

#[test]
fn write_then_read_keeps_statuses_justifications_and_products() {
    let doc = sample();
    let want = summary(&doc);
    for (name, write) in writers() {
        let text = write(&doc);
        let back =
            read_vex(text.as_bytes(), Path::new(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(summary(&back), want, "{name}");
        // Every writer names a tool, so the statements read back are imported.
        assert!(
            back.statements
                .iter()
                .all(|s| matches!(s.verdict.decided_by, Decider::Imported { .. })),
            "{name}"
        );
        // And reading what was written, then writing it again, is a fixed point
        // for the verdicts.
        assert_eq!(
            summary(&read_vex(write(&back).as_bytes(), Path::new(name)).expect("again")),
            want,
            "{name} twice"
        );
    }
}

#[test]
fn embedded_evidence_comes_back() {
    let doc = sample();
    for (name, write) in writers()
        .into_iter()
        .filter(|(n, _)| n.ends_with("embedded"))
    {
        let back = read_vex(write(&doc).as_bytes(), Path::new(name)).expect("read");
        let tiff = back
            .statements
            .iter()
            .find(|s| s.vulnerability_id == "CVE-2024-0003")
            .expect("CVE-2024-0003");
        assert_eq!(tiff.verdict.confidence.get(), 0.85, "{name}");
        assert_eq!(tiff.verdict.evidence.len(), 2, "{name}");
        assert_eq!(
            tiff.verdict.evidence[0].facts[0],
            ("entrypoints".to_owned(), "/usr/sbin/nginx".to_owned())
        );
        let plain = back
            .statements
            .iter()
            .find(|s| s.vulnerability_id == "CVE-2024-0009")
            .expect("CVE-2024-0009");
        assert_eq!(plain.verdict.confidence.get(), 0.5, "{name}");
    }
}

#[test]
fn openvex_round_trip_keeps_document_fields_and_ids() {
    let doc = sample();
    let text = write_openvex(&doc, &OpenVexOptions::default()).expect("openvex");
    let back = read_vex(text.as_bytes(), Path::new("x.json")).expect("read");
    assert_eq!(
        (back.author.as_str(), back.role.as_deref(), back.version),
        ("vexxy tests", Some("Document Creator"), 1)
    );
    assert_eq!(back.timestamp, doc.timestamp);
    assert!(back
        .id
        .as_deref()
        .is_some_and(|i| i.starts_with("urn:uuid:")));
    let first = back
        .statements
        .iter()
        .find(|s| s.vulnerability_id == "CVE-2024-0001")
        .expect("CVE-2024-0001");
    assert_eq!(first.aliases, vec!["DSA-5555-1".to_owned()]);
    assert_eq!(first.product.name, "nginx");
    assert_eq!(first.product.digest, sample().statements[0].product.digest);
    let impact = back
        .statements
        .iter()
        .find(|s| s.vulnerability_id == "CVE-2024-0006")
        .expect("CVE-2024-0006");
    assert_eq!(
        impact.verdict.impact_statement(),
        Some("only the decompressor is used and the flaw is in the compressor")
    );
    let affected = back
        .statements
        .iter()
        .find(|s| s.vulnerability_id == "CVE-2024-0007")
        .expect("CVE-2024-0007");
    assert_eq!(
        affected.verdict.action_statement(),
        Some("update libssl3 to 3.0.15-1~deb12u1 or later")
    );
    assert_eq!(affected.timestamp, sample().statements[0].timestamp);
}

#[test]
fn openvex_last_updated_is_written_only_when_set_and_reads_back() {
    let mut doc = sample();
    let plain = write_openvex(&doc, &OpenVexOptions::default()).expect("openvex");
    assert!(!plain.contains("last_updated"), "{plain}");
    assert_eq!(
        read_vex(plain.as_bytes(), Path::new("x.json"))
            .expect("read")
            .last_updated,
        None
    );

    doc.version = 3;
    doc.last_updated = Some(time::macros::datetime!(2026-02-03 04:05:06.5 +01:00));
    let text = write_openvex(&doc, &OpenVexOptions::default()).expect("openvex");
    // RFC 3339 in UTC, right after the first-issued timestamp.
    assert!(
        text.contains(
            r#""timestamp":"2026-01-02T03:04:05Z","last_updated":"2026-02-03T03:05:06.5Z","version":3"#
        ),
        "{text}"
    );
    let report = vexxy_vex::validate_openvex(text.as_bytes(), Path::new("x.json")).expect("json");
    assert!(report.is_valid(), "{:?}", report.problems);
    let back = read_vex(text.as_bytes(), Path::new("x.json")).expect("read");
    assert_eq!(back.last_updated, doc.last_updated);
    assert_eq!((back.timestamp, back.version), (doc.timestamp, 3));

    let bad = text.replace("2026-02-03T03:05:06.5Z", "yesterday");
    let err = read_vex(bad.as_bytes(), Path::new("x.json")).expect_err("bad time");
    assert!(err.to_string().contains("/last_updated"), "{err}");
}
