use std::path::Path;

use vexxy_vex::{validate_openvex, write_openvex, OpenVexOptions};

use crate::support::{fixture, sample};

fn doc_with(statements: &str, context: &str) -> String {
    format!(
        r#"{{"@context":"{context}","@id":"urn:x","author":"a","timestamp":"2024-01-01T00:00:00Z","version":1,"statements":[{statements}]}}"#
    )
}

const V2: &str = "https://openvex.dev/ns/v0.2.0";
const FIXED: &str =
    r#"{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:oci/x"}],"status":"fixed"}"#;

#[test]
fn our_output_is_valid_and_embedded_evidence_is_a_note() {
    for embed in [false, true] {
        let out = write_openvex(
            &sample(),
            &OpenVexOptions {
                embed_evidence: embed,
                pretty: true,
            },
        )
        .expect("openvex");
        let report = validate_openvex(out.as_bytes(), Path::new("out.json")).expect("json");
        assert!(report.is_valid(), "{:?}", report.problems);
        assert_eq!(report.notes.len(), usize::from(embed), "{:?}", report.notes);
        if embed {
            assert!(
                report.notes[0].contains("outside the official schema")
                    && report.notes[0].contains("removed")
            );
        }
    }
}

#[test]
fn problems_name_their_json_path() {
    /// Name, document, expected (json path, message part) problems.
    type Case = (
        &'static str,
        String,
        &'static [(&'static str, &'static str)],
    );
    let cases: Vec<Case> = vec![
        ("valid", doc_with(FIXED, V2), &[]),
        ("bare context", doc_with(FIXED, "https://openvex.dev/ns"), &[("/@context", "legacy parser")]),
        (
            "two statements for one key",
            doc_with(&format!("{FIXED},{}", FIXED.replace("fixed", "under_investigation")), V2),
            &[("/statements/1/products/0", "first at /statements/0/products/0")],
        ),
        (
            "product qualifiers",
            doc_with(&FIXED.replace("pkg:oci/x", "pkg:oci/x?arch=amd64"), V2),
            &[("/statements/0/products/0/@id", "has qualifiers")],
        ),
        (
            "product is not a purl",
            doc_with(&FIXED.replace("pkg:oci/x", "my-image"), V2),
            &[("/statements/0/products/0/@id", "not a package url")],
        ),
        (
            "unparseable subcomponent",
            doc_with(&FIXED.replace(r#""pkg:oci/x"}"#, r#""pkg:oci/x","subcomponents":[{"@id":"libfoo"}]}"#), V2),
            &[("/statements/0/products/0/subcomponents/0/@id", "not a package url")],
        ),
        (
            "justification and impact statement together",
            doc_with(
                &FIXED.replace(
                    r#""status":"fixed""#,
                    r#""status":"not_affected","justification":"component_not_present","impact_statement":"x""#,
                ),
                V2,
            ),
            &[("/statements/0", "schema:")],
        ),
        (
            "affected without an action statement",
            doc_with(&FIXED.replace("fixed", "affected"), V2),
            &[("/statements/0", "action_statement")],
        ),
        (
            "unknown field",
            doc_with(FIXED, V2).replace(r#""version":1"#, r#""version":1,"colour":"red""#),
            &[("", "colour")],
        ),
        ("no statements", doc_with("", V2), &[("/statements", "schema:")]),
    ];
    for (name, text, want) in cases {
        let report = validate_openvex(text.as_bytes(), Path::new("v.json")).expect(name);
        assert_eq!(
            report.problems.len(),
            want.len(),
            "{name}: {:?}",
            report.problems
        );
        for (p, (path, part)) in report.problems.iter().zip(want.iter()) {
            assert_eq!(p.json_path, *path, "{name}: {p:?}");
            assert!(p.message.contains(part), "{name}: {p:?}");
        }
    }
}

#[test]
fn legacy_documents_are_readable_but_not_valid_for_scanners() {
    let (bytes, path) = fixture("openvex-v0.0.1.json");
    let report = validate_openvex(&bytes, &path).expect("json");
    assert!(
        report.problems.iter().any(|p| p.json_path == "/@context"),
        "{:?}",
        report.problems
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.json_path == "/statements/0/vulnerability"),
        "{:?}",
        report.problems
    );
    let err = validate_openvex(b"{oops", Path::new("broken.json")).expect_err("not json");
    assert!(
        err.to_string().starts_with("broken.json: not valid json"),
        "{err}"
    );
}
