//! Diffs of two analyses' OpenVEX documents.

use std::path::Path;

use time::macros::datetime;
use vexxy_model::{
    Decider, Justification, Product, Purl, Status, Verdict, VexDocument, VexStatement,
};
use vexxy_report::{
    diff, read_side, DiffSide, ReportError, VerdictDiff, MAX_VEX_BYTES, OPENVEX_FILE,
};
use vexxy_vex::{write_openvex, OpenVexOptions};

const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn product(digest: &str) -> Product {
    Product::parse(&format!("docker.io/library/nginx@{digest}")).expect("reference")
}

fn tool() -> Decider {
    Decider::automated("vexxy")
}

fn na(j: Justification) -> Verdict {
    Verdict::not_affected(j, tool())
}

fn affected(pkg: &str) -> Verdict {
    Verdict::affected(format!("update {pkg}"), tool())
}

fn st(digest: &str, vuln: &str, pkg: &str, version: &str, verdict: Verdict) -> VexStatement {
    VexStatement {
        vulnerability_id: vuln.to_owned(),
        aliases: Vec::new(),
        description: None,
        product: product(digest),
        subcomponents: vec![Purl::new("deb", Some("debian"), pkg, Some(version)).expect("purl")],
        verdict,
        timestamp: None,
    }
}

fn doc(id: &str, timestamp: time::OffsetDateTime, statements: Vec<VexStatement>) -> VexDocument {
    VexDocument {
        id: Some(id.to_owned()),
        author: "vexxy".to_owned(),
        role: None,
        timestamp,
        last_updated: None,
        version: 1,
        tooling: Some("vexxy 0.1.0".to_owned()),
        statements,
    }
}

fn old_doc() -> VexDocument {
    use Justification::{VulnerableCodeNotInExecutePath as NotInPath, VulnerableCodeNotPresent};
    doc(
        "https://example.com/vex/nginx-old",
        datetime!(2025-05-01 00:00:00 UTC),
        vec![
            st(
                OLD,
                "CVE-2024-5535",
                "libssl3",
                "3.0.11-1~deb12u2",
                affected("libssl3"),
            ),
            st(
                OLD,
                "CVE-2023-52356",
                "libtiff6",
                "4.5.0-6+deb12u1",
                na(NotInPath),
            ),
            st(OLD, "CVE-2021-40812", "libgd3", "2.3.3-9", na(NotInPath)),
            st(
                OLD,
                "CVE-2024-26581",
                "linux-libc-dev",
                "6.1.119-1",
                na(VulnerableCodeNotPresent),
            ),
            st(
                OLD,
                "CVE-2023-31484",
                "perl-base",
                "5.36.0-7+deb12u1",
                Verdict::under_investigation(tool()),
            ),
            st(
                OLD,
                "CVE-2023-50495",
                "libncursesw6",
                "6.4-4",
                na(VulnerableCodeNotPresent),
            ),
        ],
    )
}

fn new_doc() -> VexDocument {
    use Justification::{VulnerableCodeNotInExecutePath as NotInPath, VulnerableCodeNotPresent};
    doc(
        "https://example.com/vex/nginx-new",
        datetime!(2025-06-01 00:00:00 UTC),
        vec![
            st(
                NEW,
                "CVE-2024-5535",
                "libssl3",
                "3.0.15-1~deb12u1",
                affected("libssl3"),
            ),
            st(
                NEW,
                "CVE-2024-13176",
                "libssl3",
                "3.0.15-1~deb12u1",
                affected("libssl3"),
            ),
            st(
                NEW,
                "CVE-2023-52356",
                "libtiff6",
                "4.5.0-6+deb12u1",
                affected("libtiff6"),
            ),
            st(NEW, "CVE-2021-40812", "libgd3", "2.3.3-9", na(NotInPath)),
            st(
                NEW,
                "CVE-2024-26581",
                "linux-libc-dev",
                "6.1.128-1",
                na(VulnerableCodeNotPresent),
            ),
            st(
                NEW,
                "CVE-2023-31484",
                "perl-base",
                "5.36.0-7+deb12u1",
                na(VulnerableCodeNotPresent),
            ),
            st(
                NEW,
                "CVE-2025-0665",
                "libcurl4",
                "7.88.1-10+deb12u12",
                affected("libcurl4"),
            ),
        ],
    )
}

fn write_dir(dir: &Path, d: &VexDocument) {
    let text = write_openvex(
        d,
        &OpenVexOptions {
            embed_evidence: false,
            pretty: true,
        },
    )
    .expect("writes openvex");
    std::fs::write(dir.join(OPENVEX_FILE), text).expect("writes file");
}

fn nginx_diff() -> VerdictDiff {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("old"), tmp.path().join("new"));
    for (dir, d) in [(&a, old_doc()), (&b, new_doc())] {
        std::fs::create_dir(dir).expect("mkdir");
        write_dir(dir, &d);
    }
    let old = read_side(&a).expect("old side");
    let new = read_side(&b).expect("new side");
    assert_eq!(
        old.info.origin.as_deref(),
        Some(a.join(OPENVEX_FILE).display().to_string().as_str())
    );
    let mut d = diff(&old, &new);
    // The temporary paths change every run; the snapshots leave them out.
    d.old.origin = None;
    d.new.origin = None;
    d
}

#[test]
fn added_removed_and_changed() {
    let d = nginx_diff();
    assert!(!d.is_empty());
    let keys = |v: Vec<(&str, &str)>| -> Vec<(String, String)> {
        v.into_iter()
            .map(|(a, b)| (a.to_owned(), format!("pkg:deb/debian/{b}")))
            .collect()
    };
    let added: Vec<(String, String)> = d
        .added
        .iter()
        .map(|e| (e.key.vulnerability.clone(), e.key.package.clone()))
        .collect();
    assert_eq!(
        added,
        keys(vec![
            ("CVE-2024-13176", "libssl3"),
            ("CVE-2025-0665", "libcurl4")
        ])
    );
    let removed: Vec<(String, String)> = d
        .removed
        .iter()
        .map(|e| (e.key.vulnerability.clone(), e.key.package.clone()))
        .collect();
    assert_eq!(removed, keys(vec![("CVE-2023-50495", "libncursesw6")]));

    let changed: Vec<(&str, bool, bool, bool, bool)> = d
        .changed
        .iter()
        .map(|c| {
            (
                c.key.vulnerability.as_str(),
                c.status_changed,
                c.justification_changed,
                c.versions_changed,
                c.regression,
            )
        })
        .collect();
    assert_eq!(
        changed,
        [
            ("CVE-2023-31484", true, true, false, false),
            ("CVE-2023-52356", true, true, false, true),
            ("CVE-2024-26581", false, false, true, false),
            ("CVE-2024-5535", false, false, true, false),
        ]
    );
    assert_eq!(d.regressions(), 1);
    let ssl = &d.changed[3];
    assert_eq!(ssl.old.versions, ["3.0.11-1~deb12u2"]);
    assert_eq!(ssl.new.versions, ["3.0.15-1~deb12u1"]);
    assert_eq!(ssl.new.status, Status::Affected);
}

#[test]
fn diff_text_snapshot() {
    let d = nginx_diff();
    insta::assert_snapshot!("nginx_diff_text", d.to_text());
}

#[test]
fn diff_markdown_snapshot() {
    let d = nginx_diff();
    insta::assert_snapshot!("nginx_diff_markdown", d.to_markdown());
}

#[test]
fn diff_json_snapshot() {
    let d = nginx_diff();
    let json = d.to_json().expect("encodes");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid json");
    assert_eq!(value["changed"][1]["old"]["status"], "not_affected");
    assert_eq!(
        value["changed"][1]["old"]["justification"],
        "vulnerable_code_not_in_execute_path"
    );
    assert!(value["changed"][1]["new"].get("justification").is_none());
    insta::assert_snapshot!("nginx_diff_json", json);
}

#[test]
fn identical_sides_have_no_differences() {
    let side = DiffSide::from_document(&old_doc());
    let d = diff(&side, &side);
    assert!(d.is_empty());
    assert_eq!(d.regressions(), 0);
    assert!(
        d.to_text().starts_with("vex diff: no differences\n"),
        "{}",
        d.to_text()
    );
    // A rebuild with a new digest but the same verdicts is no difference either.
    let mut rebuilt = old_doc();
    for s in &mut rebuilt.statements {
        s.product = product(NEW);
    }
    assert!(diff(&side, &DiffSide::from_document(&rebuilt)).is_empty());
}

#[test]
fn image_level_statements_and_conflicting_keys() {
    let mut image_level = st(
        OLD,
        "CVE-2024-0001",
        "x",
        "1",
        na(Justification::ComponentNotPresent),
    );
    image_level.subcomponents.clear();
    let d = doc(
        "urn:x",
        datetime!(2025-05-01 00:00:00 UTC),
        vec![
            image_level,
            // Two packages with the same name (multi-arch): the most severe
            // status wins and both versions are kept.
            st(
                OLD,
                "CVE-2024-0002",
                "libc6",
                "2.36-9",
                na(Justification::VulnerableCodeNotPresent),
            ),
            st(OLD, "CVE-2024-0002", "libc6", "2.36-8", affected("libc6")),
        ],
    );
    let side = DiffSide::from_document(&d);
    let keys: Vec<(&str, &str)> = side
        .verdicts
        .keys()
        .map(|k| (k.vulnerability.as_str(), k.package.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("CVE-2024-0001", "pkg:oci/nginx"),
            ("CVE-2024-0002", "pkg:deb/debian/libc6")
        ]
    );
    let libc = side.verdicts.values().nth(1).expect("libc6");
    assert_eq!(libc.status, Status::Affected);
    assert_eq!(libc.versions, ["2.36-8", "2.36-9"]);
}

#[test]
fn hostile_text_is_neutralised() {
    let mut new = new_doc();
    new.statements[0].vulnerability_id = "CVE-1\u{1b}[2J<script>|x".to_owned();
    let d = diff(
        &DiffSide::from_document(&old_doc()),
        &DiffSide::from_document(&new),
    );
    let text = d.to_text();
    assert!(!text.contains('\u{1b}'), "{text}");
    let md = d.to_markdown();
    assert!(!md.contains('\u{1b}'));
    assert!(md.contains("`CVE-1 [2J<script>\\|x`"), "{md}");
}

#[test]
fn read_side_errors_name_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = read_side(&tmp.path().join("missing")).expect_err("no such directory");
    let msg = err.to_string();
    assert!(matches!(err, ReportError::Read { .. }), "{err:?}");
    assert!(err.is_bad_input());
    assert!(
        msg.starts_with("cannot read ") && msg.contains(OPENVEX_FILE),
        "{msg}"
    );

    let file = tmp.path().join(OPENVEX_FILE);
    std::fs::write(&file, b"{\"not\": \"vex\"}").expect("write");
    let err = read_side(tmp.path()).expect_err("not vex");
    assert!(matches!(err, ReportError::Vex { .. }), "{err:?}");
    assert!(err.is_bad_input());
    let msg = err.to_string();
    assert!(
        msg.starts_with("invalid vex document: ") && msg.contains(&file.display().to_string()),
        "{msg}"
    );

    // Oversized files are refused before they are read (a sparse file).
    let f = std::fs::File::create(&file).expect("create");
    f.set_len(MAX_VEX_BYTES + 1).expect("set_len");
    let err = read_side(tmp.path()).expect_err("too large");
    assert!(matches!(err, ReportError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} is larger than the limit of 67108864 bytes",
            file.display()
        )
    );
}

#[test]
fn read_side_accepts_the_file_itself() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_dir(tmp.path(), &old_doc());
    let side = read_side(&tmp.path().join(OPENVEX_FILE)).expect("reads the file");
    assert_eq!(side.verdicts.len(), 6);
    assert_eq!(
        side.info.document_id.as_deref(),
        Some("https://example.com/vex/nginx-old")
    );
    assert_eq!(side.info.timestamp, "2025-05-01T00:00:00Z");
    assert_eq!(side.info.products, [format!("nginx@{OLD}")]);
}
