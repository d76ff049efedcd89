use std::path::Path;

use time::macros::datetime;
use vexxy_model::{Decider, Justification, Status, VexDocument};
use vexxy_vex::{read_vex, VexError};

use crate::support::fixture;

type Row = (
    &'static str,
    &'static str,
    &'static [&'static str],
    Status,
    Option<Justification>,
);

type OwnedRow = (String, String, Vec<String>, Status, Option<Justification>);

fn rows(doc: &VexDocument) -> Vec<OwnedRow> {
    doc.statements
        .iter()
        .map(|s| {
            (
                s.vulnerability_id.clone(),
                s.product.to_string(),
                s.subcomponents.iter().map(ToString::to_string).collect(),
                s.verdict.status(),
                s.verdict.justification(),
            )
        })
        .collect()
}

const BUSYBOX: &str =
    "busybox@sha256:0f3a94ae28fb0db0bd4ab6e2a3ad02ac4a3e52e5ea5d8e0aab0e5ea1ad7e6f2f";
const API: &str =
    "registry.example.org/team/api-server@sha256:9d5c4b3a2f1e0d9c8b7a69584736251403f2e1d0c9b8a79685746352413f2e1d";
const WEB1: &str = "web@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const WEB3: &str = "web@sha256:3333333333333333333333333333333333333333333333333333333333333333";

#[test]
fn reads_hand_written_documents_of_every_format() {
    use Justification::*;
    use Status::*;
    let cases: Vec<(&str, &str, bool, Vec<Row>)> = vec![
        (
            "openvex-v0.0.1.json",
            "Bob Example <bob@example.org>",
            true,
            vec![
                (
                    "CVE-2022-48303",
                    BUSYBOX,
                    &["pkg:apk/alpine/tar@1.34-r1?arch=x86_64"],
                    NotAffected,
                    Some(VulnerableCodeNotInExecutePath),
                ),
                (
                    "CVE-2023-0464",
                    "pkg:apk/alpine/libcrypto3@3.0.8-r0",
                    &[],
                    Fixed,
                    None,
                ),
                (
                    "CVE-2023-0464",
                    "pkg:apk/alpine/libssl3@3.0.8-r0",
                    &[],
                    Fixed,
                    None,
                ),
                ("CVE-2023-0286", BUSYBOX, &[], Affected, None),
            ],
        ),
        (
            "openvex-v0.2.0-tooling.json",
            "Example Scanner Team",
            false,
            vec![
                (
                    "CVE-2024-2511",
                    API,
                    &["pkg:deb/debian/libssl3@3.0.11-1~deb12u2"],
                    UnderInvestigation,
                    None,
                ),
                (
                    "CVE-2023-4911",
                    "api-server-2024.05",
                    &[],
                    NotAffected,
                    None,
                ),
            ],
        ),
        (
            "cyclonedx-vex-1.4.json",
            "Example Corp",
            false,
            vec![
                (
                    "CVE-2023-5678",
                    WEB1,
                    &["pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64"],
                    NotAffected,
                    Some(VulnerableCodeNotInExecutePath),
                ),
                (
                    "CVE-2023-45853",
                    WEB1,
                    &["pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64"],
                    Affected,
                    None,
                ),
                ("CVE-2024-0727", WEB1, &[], UnderInvestigation, None),
                (
                    "CVE-2023-6129",
                    WEB1,
                    &["pkg:deb/debian/libssl3@3.0.11-1~deb12u2"],
                    Fixed,
                    None,
                ),
            ],
        ),
        (
            "cyclonedx-vex-1.6-human.json",
            "Carol Reviewer",
            true,
            vec![
                (
                    "CVE-2024-6119",
                    "pkg:deb/debian/openssl-doc@3.0.13-1~deb12u1",
                    &[],
                    NotAffected,
                    None,
                ),
                (
                    "CVE-2024-6119",
                    "batch@sha256:2222222222222222222222222222222222222222222222222222222222222222",
                    &[],
                    NotAffected,
                    None,
                ),
                (
                    "CVE-2024-5535",
                    "pkg:deb/debian/libssl3@3.0.13-1~deb12u1",
                    &[],
                    NotAffected,
                    Some(InlineMitigationsAlreadyExist),
                ),
            ],
        ),
        (
            "csaf-vex.json",
            "Example PSIRT",
            false,
            vec![
                (
                    "CVE-2024-25062",
                    WEB3,
                    &["pkg:deb/debian/libxml2@2.9.14%2Bdfsg-1.3~deb12u1?arch=amd64"],
                    NotAffected,
                    Some(VulnerableCodeNotInExecutePath),
                ),
                ("CVE-2024-25062", "internal tool", &[], Fixed, None),
                (
                    "GHSA-aaaa-bbbb-cccc",
                    WEB3,
                    &["pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5"],
                    Affected,
                    None,
                ),
                (
                    "GHSA-aaaa-bbbb-cccc",
                    "internal tool",
                    &[],
                    UnderInvestigation,
                    None,
                ),
                (
                    "CVE-2024-2398",
                    WEB3,
                    &["pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5"],
                    NotAffected,
                    None,
                ),
            ],
        ),
    ];
    for (file, author, human, want) in cases {
        let (bytes, path) = fixture(file);
        let doc = read_vex(&bytes, &path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let want: Vec<_> = want
            .into_iter()
            .map(|(v, p, subs, st, j)| {
                (
                    v.to_owned(),
                    p.to_owned(),
                    subs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                    st,
                    j,
                )
            })
            .collect();
        assert_eq!(rows(&doc), want, "{file}");
        assert_eq!(doc.author, author, "{file}");
        for s in &doc.statements {
            let ok = match &s.verdict.decided_by {
                Decider::Human { author: a } => human && a == author,
                Decider::Imported { author: a } => !human && a == author,
                Decider::Automated { .. } => false,
            };
            assert!(ok, "{file}: {:?}", s.verdict.decided_by);
            assert_eq!(s.verdict.confidence.get(), 1.0, "{file}");
        }
    }
}

#[test]
fn reader_details() {
    let read = |f: &str| {
        let (bytes, path) = fixture(f);
        read_vex(&bytes, &path).expect(f)
    };
    let old = read("openvex-v0.0.1.json");
    assert_eq!(
        (old.version, old.id.as_deref()),
        (2, Some("https://vex.example.org/docs/legacy-0001"))
    );
    assert_eq!(old.timestamp, datetime!(2023-02-14 14:10:11.123456789 UTC));
    assert_eq!(
        old.statements[0].verdict.notes,
        "tar is never executed by the service"
    );
    assert_eq!(
        old.statements[3].verdict.action_statement(),
        Some("rebuild on alpine 3.17.2")
    );
    assert_eq!(
        old.statements[3].timestamp,
        Some(datetime!(2023-02-15 00:00 UTC))
    );

    let tool = read("openvex-v0.2.0-tooling.json");
    assert_eq!(tool.tooling.as_deref(), Some("example-vex-generator 2.1"));
    assert_eq!(tool.statements[0].aliases, ["GHSA-9p6m-rr3g-9xq5"]);
    assert_eq!(
        tool.statements[0].timestamp,
        Some(datetime!(2024-05-01 11:00 UTC))
    );
    assert_eq!(
        tool.statements[1].verdict.impact_statement(),
        Some("the image has no setuid binaries")
    );

    let cdx = read("cyclonedx-vex-1.4.json");
    assert_eq!(cdx.timestamp, datetime!(2024-03-03 07:00 UTC));
    assert_eq!(cdx.tooling.as_deref(), Some("vex-maker 0.9"));
    assert_eq!(cdx.statements[0].aliases, ["DSA-5585-1"]);
    assert_eq!(
        cdx.statements[1].verdict.action_statement(),
        Some("upgrade zlib1g to 1:1.3")
    );

    let human = read("cyclonedx-vex-1.6-human.json");
    assert_eq!(
        human.statements[0].verdict.impact_statement(),
        Some("the matched package is a documentation-only package")
    );

    let csaf = read("csaf-vex.json");
    assert_eq!(
        (csaf.version, csaf.id.as_deref()),
        (2, Some("EXAMPLE-VEX-2024-0007"))
    );
    assert_eq!(csaf.timestamp, datetime!(2024-06-03 10:30 UTC));
    assert_eq!(csaf.tooling.as_deref(), Some("psirt-tool 5.1"));
    let xml = &csaf.statements[0];
    assert_eq!(
        xml.description.as_deref(),
        Some("use-after-free in the xmlreader")
    );
    assert_eq!(xml.verdict.notes, "the web service never parses xml");
    assert_eq!(xml.timestamp, Some(datetime!(2024-06-02 00:00 UTC)));
    assert_eq!(
        csaf.statements[2].verdict.action_statement(),
        Some("update curl to 7.88.1-10+deb12u6")
    );
    assert_eq!(
        csaf.statements[4].verdict.impact_statement(),
        Some("http/2 push is disabled at build time")
    );
}

const GOOD_OPENVEX: &str = r#"{"@context":"https://openvex.dev/ns/v0.2.0","@id":"urn:x","author":"a","timestamp":"2024-01-01T00:00:00Z","version":1,
 "statements":[{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:oci/x"}],"status":"fixed"}]}"#;

#[test]
fn bad_input_names_file_and_json_path() {
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("malformed json", "{\"@context\": ".into(), "not valid json", "line 1 column 13"),
        ("not vex at all", r#"{"hello": "world"}"#.into(), "not an openvex, cyclonedx or csaf document", ""),
        ("wrong type", GOOD_OPENVEX.replace(r#""author":"a""#, r#""author":5"#), "/author", "invalid type: integer `5`"),
        (
            "unknown status",
            GOOD_OPENVEX.replace(r#""status":"fixed""#, r#""status":"maybe""#),
            "/statements/0/status",
            "unknown variant `maybe`",
        ),
        (
            "unknown justification",
            GOOD_OPENVEX.replace(r#""status":"fixed""#, r#""status":"not_affected","justification":"trust_me""#),
            "/statements/0/justification",
            "unknown variant `trust_me`",
        ),
        (
            "not_affected without a reason",
            GOOD_OPENVEX.replace(r#""status":"fixed""#, r#""status":"not_affected""#),
            "/statements/0",
            "needs a justification or an impact statement",
        ),
        (
            "bad timestamp",
            GOOD_OPENVEX.replace("2024-01-01T00:00:00Z", "yesterday"),
            "/timestamp",
            "not rfc 3339",
        ),
        (
            "bad subcomponent purl",
            GOOD_OPENVEX.replace(r#"{"@id":"pkg:oci/x"}"#, r#"{"@id":"pkg:oci/x","subcomponents":[{"@id":"libfoo"}]}"#),
            "/statements/0/products/0/subcomponents/0",
            "invalid package url",
        ),
        (
            "unknown cyclonedx state",
            r#"{"bomFormat":"CycloneDX","specVersion":"1.5","vulnerabilities":[{"id":"CVE-1","analysis":{"state":"fine"},"affects":[{"ref":"pkg:deb/debian/x"}]}]}"#.into(),
            "/vulnerabilities/0/analysis/state",
            "unknown variant `fine`",
        ),
        (
            "cyclonedx affects of the wrong type",
            r#"{"bomFormat":"CycloneDX","specVersion":"1.5","vulnerabilities":[{"id":"CVE-1","affects":"everything"}]}"#.into(),
            "/vulnerabilities/0/affects",
            "invalid type",
        ),
        (
            "unknown csaf flag label",
            r#"{"document":{"csaf_version":"2.0","publisher":{"name":"p"},"tracking":{"id":"t","current_release_date":"2024-01-01T00:00:00Z","version":"1"}},
               "vulnerabilities":[{"cve":"CVE-1","product_status":{"known_not_affected":["A"]},"flags":[{"label":"looks_fine","product_ids":["A"]}]}]}"#.into(),
            "/vulnerabilities/0/flags/0/label",
            "unknown variant `looks_fine`",
        ),
        (
            "csaf not affected without flag or threat",
            r#"{"document":{"csaf_version":"2.0","publisher":{"name":"p"},"tracking":{"id":"t","current_release_date":"2024-01-01T00:00:00Z","version":"1"}},
               "vulnerabilities":[{"cve":"CVE-1","product_status":{"known_not_affected":["A"]}}]}"#.into(),
            "/vulnerabilities/0/product_status/known_not_affected/0",
            "product A",
        ),
    ];
    for (name, text, path_part, detail) in cases {
        let origin = Path::new("input/bad.vex.json");
        let err: VexError = read_vex(text.as_bytes(), origin).expect_err(name);
        let msg = err.to_string();
        assert!(msg.starts_with("input/bad.vex.json: "), "{name}: {msg}");
        assert!(
            msg.contains(path_part) && msg.contains(detail),
            "{name}: {msg}"
        );
        assert!(err.is_bad_input(), "{name}");
    }
    // Arbitrary bytes never panic.
    for bytes in [
        &b""[..],
        b"\xff\xfe",
        b"[]",
        b"null",
        b"{\"@context\": 5}",
        b"{\"document\": {\"csaf_version\": 2}}",
    ] {
        assert!(read_vex(bytes, Path::new("x")).is_err());
    }
}
