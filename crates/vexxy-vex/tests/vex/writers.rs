use std::collections::BTreeMap;

use vexxy_model::{Decider, Justification, Verdict};
use vexxy_vex::{
    write_csaf, write_cyclonedx, write_evidence, write_openvex, BomLink, CsafOptions,
    CycloneDxOptions, OpenVexOptions, VexError, EVIDENCE_SCHEMA, OPENVEX_SCHEMA,
};

use crate::support::{sample, schema_errors, statement};

const PRETTY: OpenVexOptions = OpenVexOptions {
    embed_evidence: false,
    pretty: true,
};
const EMBED: OpenVexOptions = OpenVexOptions {
    embed_evidence: true,
    pretty: true,
};

fn sbom_link() -> BomLink {
    let mut refs = BTreeMap::new();
    // Full SBOM purls (qualifiers, epochs) map onto the VEX-form packages.
    refs.insert(
        "pkg:deb/debian/libtiff6@4.5.0-6%2Bdeb12u1?arch=amd64&distro=debian-12.7".into(),
        "5c7b1d0a-libtiff6".into(),
    );
    refs.insert(
        "pkg:deb/debian/bsdutils@1%3A2.38.1-5%2Bdeb12u3?arch=amd64".into(),
        "0e4f9c11-bsdutils".into(),
    );
    refs.insert(
        "pkg:oci/nginx@sha256%3Afb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0"
            .into(),
        "image-root".into(),
    );
    BomLink {
        serial_number: "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79".into(),
        version: 2,
        refs,
    }
}

#[test]
fn snapshots_of_every_writer() {
    let doc = sample();
    let cases: Vec<(&str, String)> = vec![
        (
            "openvex_plain",
            write_openvex(&doc, &PRETTY).expect("openvex"),
        ),
        (
            "openvex_embedded_evidence",
            write_openvex(&doc, &EMBED).expect("openvex"),
        ),
        (
            "cyclonedx_plain",
            write_cyclonedx(&doc, &CycloneDxOptions::default()).expect("cyclonedx"),
        ),
        (
            "cyclonedx_bom_link",
            write_cyclonedx(
                &doc,
                &CycloneDxOptions {
                    sbom: Some(sbom_link()),
                    embed_evidence: true,
                },
            )
            .expect("cyclonedx"),
        ),
        (
            "csaf",
            write_csaf(&doc, &CsafOptions::default()).expect("csaf"),
        ),
        ("evidence", write_evidence(&doc).expect("evidence")),
    ];
    for (name, out) in cases {
        insta::assert_snapshot!(name, out);
    }
}

#[test]
fn openvex_outputs_validate_against_the_official_schema() {
    let doc = sample();
    for opts in [
        PRETTY,
        OpenVexOptions {
            embed_evidence: false,
            pretty: false,
        },
    ] {
        let out = write_openvex(&doc, &opts).expect("openvex");
        assert_eq!(
            schema_errors(OPENVEX_SCHEMA, &out),
            Vec::<String>::new(),
            "{opts:?}"
        );
    }
    // The embedded evidence is outside the official schema, and the schema says so.
    let embedded = write_openvex(&doc, &EMBED).expect("openvex");
    let errors = schema_errors(OPENVEX_SCHEMA, &embedded);
    assert!(
        !errors.is_empty() && errors.iter().all(|e| e.contains("vexxy_evidence")),
        "{errors:?}"
    );
}

#[test]
fn evidence_json_validates_against_its_schema() {
    let out = write_evidence(&sample()).expect("evidence");
    assert_eq!(schema_errors(EVIDENCE_SCHEMA, &out), Vec::<String>::new());
    // The schema is not a rubber stamp: a broken document fails it.
    let mut broken: serde_json::Value = serde_json::from_str(&out).expect("json");
    broken["statements"][0]["status"] = "maybe".into();
    broken["statements"][1]["confidence"] = 1.5.into();
    let errors = schema_errors(EVIDENCE_SCHEMA, &broken.to_string());
    assert!(
        errors.iter().any(|e| e.starts_with("/statements/0/status")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/statements/1/confidence")),
        "{errors:?}"
    );
}

#[test]
fn openvex_shape_follows_the_scanner_conventions() {
    let out = write_openvex(&sample(), &PRETTY).expect("openvex");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["@context"], "https://openvex.dev/ns/v0.2.0");
    assert!(v["@id"]
        .as_str()
        .is_some_and(|id| id.starts_with("urn:uuid:")));
    assert_eq!(v["timestamp"], "2026-01-02T03:04:05Z");
    let statements = v["statements"].as_array().expect("statements");
    // 11 statements in, CVE-2024-0003's two parts folded into one.
    assert_eq!(statements.len(), 10);
    let names: Vec<&str> = statements
        .iter()
        .filter_map(|s| s["vulnerability"]["name"].as_str())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    let folded = &statements[2];
    assert_eq!(folded["vulnerability"]["name"], "CVE-2024-0003");
    assert_eq!(
        folded["products"][0]["subcomponents"],
        serde_json::json!([{"@id": "pkg:deb/debian/libtiff6@4.5.0-6%2Bdeb12u1"}, {"@id": "pkg:deb/debian/libwebp7@1.2.4-0.2%2Bdeb12u1"}])
    );
    // The lower confidence of the two parts is the one stated.
    assert!(
        folded["status_notes"]
            .as_str()
            .is_some_and(|n| n.contains("confidence 0.85")),
        "{folded}"
    );
    for s in statements {
        let p = &s["products"][0];
        assert_eq!(p["@id"], "pkg:oci/nginx@sha256%3Afb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0");
        assert_eq!(
            p["hashes"]["sha-256"],
            "fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0"
        );
        assert!(
            !(s.get("justification").is_some() && s.get("impact_statement").is_some()),
            "{s}"
        );
    }
}

#[test]
fn writers_are_byte_stable_and_order_independent() {
    let doc = sample();
    let mut reversed = sample();
    reversed.statements.reverse();
    type Writer = fn(&vexxy_model::VexDocument) -> Result<String, VexError>;
    let writers: [(&str, Writer); 5] = [
        ("openvex", |d| write_openvex(d, &PRETTY)),
        ("openvex-compact", |d| {
            write_openvex(d, &OpenVexOptions::default())
        }),
        ("cyclonedx", |d| {
            write_cyclonedx(d, &CycloneDxOptions::default())
        }),
        ("csaf", |d| write_csaf(d, &CsafOptions::default())),
        ("evidence", write_evidence),
    ];
    for (name, w) in writers {
        let a = w(&doc).expect(name);
        assert_eq!(a, w(&doc).expect(name), "{name} repeats");
        assert_eq!(a, w(&reversed).expect(name), "{name} ignores input order");
    }
    // A different content gives a different derived id.
    let mut other = sample();
    other.statements.pop();
    let id = |d| {
        let v: serde_json::Value =
            serde_json::from_str(&write_openvex(d, &PRETTY).expect("openvex")).expect("json");
        v["@id"].as_str().map(str::to_owned)
    };
    assert_ne!(id(&doc), id(&other));
    let mut given = sample();
    given.id = Some("https://example.com/vex/1".into());
    assert_eq!(id(&given).as_deref(), Some("https://example.com/vex/1"));
}

#[test]
fn conflicting_verdicts_for_one_key_are_refused() {
    let mut doc = sample();
    doc.statements.push(statement(
        "CVE-2024-0003",
        &["pkg:deb/debian/libtiff6@4.5.0-6%2Bdeb12u1"],
        Verdict::affected(
            "update libtiff6".into(),
            Decider::automated("reachable-default"),
        ),
    ));
    type Writer = fn(&vexxy_model::VexDocument) -> Result<String, VexError>;
    let writers: [Writer; 4] = [
        |d| write_openvex(d, &PRETTY),
        |d| write_cyclonedx(d, &CycloneDxOptions::default()),
        |d| write_csaf(d, &CsafOptions::default()),
        write_evidence,
    ];
    for w in writers {
        let err = w(&doc).expect_err("conflict");
        let msg = err.to_string();
        assert!(
            matches!(err, VexError::ConflictingVerdicts { .. }) && err.is_bad_input(),
            "{msg}"
        );
        assert!(
            msg.contains("CVE-2024-0003") && msg.contains("pkg:oci/nginx@sha256"),
            "{msg}"
        );
    }
    // Same status, different justification is a conflict too.
    let mut doc = sample();
    doc.statements.push(statement(
        "CVE-2024-0001",
        &[],
        Verdict::not_affected(
            Justification::VulnerableCodeNotPresent,
            Decider::automated("x"),
        ),
    ));
    let msg = write_openvex(&doc, &PRETTY)
        .expect_err("conflict")
        .to_string();
    assert!(
        msg.contains("not_affected/component_not_present")
            && msg.contains("not_affected/vulnerable_code_not_present"),
        "{msg}"
    );
}

#[test]
fn documents_scanners_cannot_use_are_refused() {
    let mut empty = sample();
    empty.statements.clear();
    assert!(write_openvex(&empty, &PRETTY)
        .is_err_and(|e| e.to_string().contains("at least one statement")));
    assert!(write_csaf(&empty, &CsafOptions::default()).is_err());
    let mut zero = sample();
    zero.version = 0;
    assert!(write_openvex(&zero, &PRETTY)
        .is_err_and(|e| e.is_bad_input() && e.to_string().contains("version")));
}

#[test]
fn cyclonedx_links_packages_only_when_the_sbom_has_them() {
    let out = write_cyclonedx(
        &sample(),
        &CycloneDxOptions {
            sbom: Some(sbom_link()),
            embed_evidence: false,
        },
    )
    .expect("cyclonedx");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let affects = |id: &str| -> Vec<String> {
        v["vulnerabilities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["id"] == id)
            .flat_map(|x| x["affects"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["ref"].as_str().map(str::to_owned))
            .collect()
    };
    let link = "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/2#";
    let cases = [
        ("CVE-2024-0002", vec![format!("{link}0e4f9c11-bsdutils")]),
        (
            "CVE-2024-0003",
            vec![
                format!("{link}5c7b1d0a-libtiff6"),
                "pkg:deb/debian/libwebp7@1.2.4-0.2%2Bdeb12u1".into(),
            ],
        ),
        ("CVE-2024-0009", vec![format!("{link}image-root")]),
        ("CVE-2024-0006", vec!["pkg:deb/debian/zlib1g".into()]),
    ];
    for (id, want) in cases {
        assert_eq!(affects(id), want, "{id}");
    }
}
