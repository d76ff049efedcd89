//! Bad inputs: each gives the right error, naming the file, without panicking.

use std::{io::Write, path::Path};

use vexxy_ingest::{read, IngestError, Limits};

const GRYPE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json"
);

fn grype_bytes() -> Vec<u8> {
    std::fs::read(GRYPE).expect("grype report")
}

/// A small but valid Grype document with one match whose parts can be replaced.
fn grype_doc(id: &str, purl: &str, repo_digest: &str) -> Vec<u8> {
    format!(
        r#"{{
  "matches": [
    {{"vulnerability": {{"id": "CVE-2024-0001"}}, "artifact": {{"name": "a", "version": "1", "purl": "pkg:deb/debian/a@1"}}}},
    {{"vulnerability": {{"id": {id}}}, "artifact": {{"name": "b", "version": "2", "purl": {purl}}}}}
  ],
  "source": {{"type": "image", "target": {{"userInput": "x:1", "repoDigests": [{repo_digest}]}}}},
  "descriptor": {{"name": "grype", "version": "0.92.2"}}
}}"#
    )
    .into_bytes()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Empty,
    Malformed,
    Truncated,
    NotAnObject,
    UnknownFormat,
    UnsupportedVersion,
    Schema,
    InvalidPurl,
    InvalidDigest,
    TooLarge,
    Io,
}

fn kind(e: &IngestError) -> Kind {
    match e {
        IngestError::Empty { .. } => Kind::Empty,
        IngestError::Malformed { .. } => Kind::Malformed,
        IngestError::Truncated { .. } => Kind::Truncated,
        IngestError::NotAnObject { .. } => Kind::NotAnObject,
        IngestError::UnknownFormat { .. } => Kind::UnknownFormat,
        IngestError::UnsupportedVersion { .. } => Kind::UnsupportedVersion,
        IngestError::Schema { .. } => Kind::Schema,
        IngestError::InvalidPurl { .. } => Kind::InvalidPurl,
        IngestError::InvalidDigest { .. } => Kind::InvalidDigest,
        IngestError::TooLarge { .. } => Kind::TooLarge,
        IngestError::Io { .. } => Kind::Io,
        other => panic!("unexpected variant {other:?}"),
    }
}

/// (file name, content, size limit, error kind, JSON path, text the message must contain)
type BadCase = (
    &'static str,
    Vec<u8>,
    u64,
    Kind,
    Option<&'static str>,
    &'static str,
);

const D: &str = "\"nginx@sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0\"";

#[test]
fn bad_inputs_give_typed_errors_that_name_the_file() {
    let real = grype_bytes();
    let mut garbage = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    garbage.extend((0u8..=255).rev());
    // (name, content, limit, kind, json path, text the message must contain)
    let cases: Vec<BadCase> = vec![
        (
            "empty.json",
            Vec::new(),
            1024,
            Kind::Empty,
            None,
            "is empty",
        ),
        (
            "blank.json",
            b" \n\t ".to_vec(),
            1024,
            Kind::Empty,
            None,
            "is empty",
        ),
        (
            "brace.json",
            b"{".to_vec(),
            1024,
            Kind::Truncated,
            None,
            "line 1",
        ),
        (
            "cut.json",
            real[..real.len() / 2].to_vec(),
            u64::MAX,
            Kind::Truncated,
            None,
            "truncated",
        ),
        (
            "array.json",
            b"[]".to_vec(),
            1024,
            Kind::NotAnObject,
            None,
            "an array",
        ),
        (
            "string.json",
            b"\"grype\"".to_vec(),
            1024,
            Kind::NotAnObject,
            None,
            "a string",
        ),
        (
            "trailing.json",
            b"{} {}".to_vec(),
            1024,
            Kind::Malformed,
            None,
            "trailing characters",
        ),
        (
            "comma.json",
            b"{\"a\": 1,}".to_vec(),
            1024,
            Kind::Malformed,
            None,
            "line 1 column",
        ),
        (
            "garbage.bin",
            garbage,
            1024,
            Kind::Malformed,
            None,
            "malformed json",
        ),
        (
            "unknown.json",
            br#"{"runs": [], "version": "2.1.0", "$schema": "sarif"}"#.to_vec(),
            1024,
            Kind::UnknownFormat,
            None,
            "[runs, version, $schema]",
        ),
        (
            "wrong-type.json",
            grype_doc("42", "\"pkg:deb/debian/b@2\"", D),
            4096,
            Kind::Schema,
            Some("matches[1].vulnerability.id"),
            "invalid type: integer `42`, expected a string",
        ),
        (
            "missing.json",
            br#"{"matches": [{"artifact": {"name": "a"}}], "descriptor": {"name": "grype"}}"#
                .to_vec(),
            4096,
            Kind::Schema,
            Some("matches[0]"),
            "missing field `vulnerability`",
        ),
        (
            "bad-purl.json",
            grype_doc("\"CVE-2024-0002\"", "\"debian/b@2\"", D),
            4096,
            Kind::InvalidPurl,
            Some("matches[1].artifact.purl"),
            "invalid package url",
        ),
        (
            "bad-digest.json",
            grype_doc("\"CVE-2024-0002\"", "\"\"", "\"nginx@sha256:abc\""),
            4096,
            Kind::InvalidDigest,
            Some("source.target.repoDigests[0]"),
            "invalid digest",
        ),
        (
            "old-trivy.json",
            br#"{"SchemaVersion": 1, "ArtifactName": "x", "Results": []}"#.to_vec(),
            4096,
            Kind::UnsupportedVersion,
            Some("SchemaVersion"),
            "unsupported trivy version",
        ),
        (
            "old-cdx.json",
            br#"{"bomFormat": "CycloneDX", "specVersion": "1.2", "components": []}"#.to_vec(),
            4096,
            Kind::UnsupportedVersion,
            Some("specVersion"),
            "unsupported cyclonedx version \"1.2\"",
        ),
        (
            "too-large.json",
            real.clone(),
            1000,
            Kind::TooLarge,
            None,
            "more than the limit of 1000 bytes",
        ),
    ];

    let dir = tempfile::tempdir().expect("tempdir");
    for (name, content, limit, want, json_path, text) in cases {
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&content))
            .expect("write");
        let err = read(&path, &Limits { max_bytes: limit }).expect_err(name);
        let msg = err.to_string();
        assert_eq!(kind(&err), want, "{name}: {msg}");
        assert!(
            msg.contains(&path.display().to_string()),
            "{name}: message does not name the file: {msg}"
        );
        assert!(msg.contains(text), "{name}: {msg:?} lacks {text:?}");
        assert_eq!(err.json_path(), json_path, "{name}: {msg}");
        assert_eq!(err.path(), path, "{name}");
        assert!(err.is_bad_input(), "{name}");
        let rest = msg.replace(&path.display().to_string(), "");
        let first = rest.chars().find(|c| c.is_alphabetic());
        assert!(
            first.is_some_and(char::is_lowercase),
            "{name}: message must be lowercase: {msg}"
        );
    }
}

#[test]
fn unreadable_files_are_io_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    for path in [dir.path().join("missing.json"), dir.path().to_path_buf()] {
        let err = read(&path, &Limits::default()).expect_err("unreadable");
        assert_eq!(kind(&err), Kind::Io, "{err}");
        assert!(!err.is_bad_input());
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn syntax_errors_report_line_and_column() {
    let doc = b"{\n  \"matches\": [\n    {\"vulnerability\": }\n  ]\n}";
    match read_bytes(doc) {
        IngestError::Malformed { line, column, .. } => assert_eq!((line, column), (3, 23)),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn every_prefix_of_a_small_report_fails_cleanly() {
    let doc = grype_doc("\"CVE-2024-0002\"", "\"pkg:deb/debian/b@2\"", D);
    vexxy_ingest::parse(&doc, Path::new("whole.json")).expect("the whole document parses");
    for cut in 0..doc.len() - 1 {
        let err =
            vexxy_ingest::parse(&doc[..cut], Path::new("prefix.json")).expect_err("a prefix fails");
        assert!(err.is_bad_input(), "cut {cut}: {err}");
        assert!(
            err.to_string().starts_with("prefix.json"),
            "cut {cut}: {err}"
        );
    }
}

fn read_bytes(doc: &[u8]) -> IngestError {
    vexxy_ingest::parse(doc, Path::new("doc.json")).expect_err("fails")
}

#[test]
fn corrupted_fixtures_never_panic_and_errors_name_the_origin() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut checked = 0;
    for name in ["syft.json", "osv-scanner.json", "cyclonedx-1.6.json"] {
        let doc = std::fs::read(dir.join(name)).expect(name);
        for (i, replacement) in (0..doc.len()).step_by(5).zip(
            [b'"', b'}', b'1', b'[', b'x', b':', b',', b'{']
                .iter()
                .cycle(),
        ) {
            let mut bad = doc.clone();
            bad[i] = *replacement;
            if let Err(err) = vexxy_ingest::parse(&bad, Path::new("mutant.json")) {
                assert!(
                    err.to_string().starts_with("mutant.json"),
                    "{name} @{i}: {err}"
                );
                assert!(err.is_bad_input(), "{name} @{i}: {err}");
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "only {checked} mutants failed");
}
