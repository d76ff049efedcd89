//! A small hand-made document covering every status and justification.

use std::{collections::BTreeMap, path::Path};

use time::{macros::datetime, OffsetDateTime};
use vexxy_model::{
    Confidence, Decider, Evidence, EvidenceSource, Justification, Product, Purl, Status, Verdict,
    VexDocument, VexStatement,
};

pub(crate) const DIGEST: &str =
    "sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0";

pub(crate) fn nginx() -> Product {
    Product::parse(&format!("docker.io/library/nginx:1.27@{DIGEST}")).expect("product reference")
}

pub(crate) fn purl(s: &str) -> Purl {
    s.parse().expect(s)
}

pub(crate) fn statement(id: &str, subs: &[&str], verdict: Verdict) -> VexStatement {
    VexStatement {
        vulnerability_id: id.to_owned(),
        aliases: Vec::new(),
        description: None,
        product: nginx(),
        subcomponents: subs.iter().map(|s| purl(s)).collect(),
        verdict,
        timestamp: None,
    }
}

fn auto(provider: &str) -> Decider {
    Decider::automated(provider)
}

fn elf(subject: &str) -> Evidence {
    Evidence::new(
        "elf-reachability",
        EvidenceSource::ElfGraph,
        "no entrypoint's dependency closure loads the library",
    )
    .about(subject)
    .fact("entrypoints", "/usr/sbin/nginx")
    .fact("objects_read", "412")
}

/// Statements deliberately out of order; CVE-2024-0003 comes in two parts
/// that the writers must fold into one statement.
pub(crate) fn sample() -> VexDocument {
    let c = |v: f64| Confidence::new(v).expect("confidence");
    let mut s = Vec::new();

    let mut st = statement(
        "CVE-2024-0007",
        &["pkg:deb/debian/libssl3@3.0.14-1~deb12u1?arch=amd64&distro=debian-12.7"],
        Verdict::affected(
            "update libssl3 to 3.0.15-1~deb12u1 or later".into(),
            auto("reachable-default"),
        )
        .with_confidence(c(0.6))
        .with_notes("libssl3 is loaded by /usr/sbin/nginx")
        .with_evidence(
            Evidence::new(
                "elf-reachability",
                EvidenceSource::ElfGraph,
                "the entrypoint links libssl.so.3",
            )
            .about("/usr/lib/x86_64-linux-gnu/libssl.so.3")
            .fact("chain", "/usr/sbin/nginx -> libssl.so.3"),
        ),
    );
    st.timestamp = Some(datetime!(2026-01-02 10:00:00 UTC));
    s.push(st);

    let mut st = statement(
        "CVE-2024-0001",
        &["pkg:deb/debian/libfoo1@1.2-3?arch=amd64"],
        Verdict::not_affected(Justification::ComponentNotPresent, auto("package-db"))
            .with_confidence(c(0.99))
            .with_notes("libfoo1 is not installed in the image")
            .with_evidence(
                Evidence::new(
                    "package-db",
                    EvidenceSource::PackageDb,
                    "dpkg lists no libfoo1",
                )
                .about("libfoo1"),
            ),
    );
    st.aliases = vec!["DSA-5555-1".into()];
    st.description = Some("heap overflow in libfoo".into());
    s.push(st);

    s.push(statement(
        "CVE-2024-0003",
        &["pkg:deb/debian/libtiff6@4.5.0-6%2Bdeb12u1?arch=amd64"],
        Verdict::not_affected(
            Justification::VulnerableCodeNotInExecutePath,
            auto("elf-reachability"),
        )
        .with_confidence(c(0.9))
        .with_notes("the image_filter module is not loaded")
        .with_evidence(elf("/usr/lib/x86_64-linux-gnu/libtiff.so.6")),
    ));

    s.push(statement(
        "CVE-2024-0002",
        &["pkg:deb/debian/bsdutils@1%3A2.38.1-5%2Bdeb12u3?arch=amd64"],
        Verdict::not_affected(
            Justification::VulnerableCodeNotPresent,
            auto("elf-reachability"),
        )
        .with_confidence(c(0.8))
        .with_notes("the vulnerable function is not in the shipped build"),
    ));

    s.push(statement(
        "CVE-2024-0003",
        &["pkg:deb/debian/libwebp7@1.2.4-0.2%2Bdeb12u1?arch=amd64"],
        Verdict::not_affected(
            Justification::VulnerableCodeNotInExecutePath,
            auto("elf-reachability"),
        )
        .with_confidence(c(0.85))
        .with_notes("the image_filter module is not loaded")
        .with_evidence(elf("/usr/lib/x86_64-linux-gnu/libwebp.so.7")),
    ));

    s.push(statement(
        "CVE-2024-0004",
        &["pkg:deb/debian/nginx@1.22.1-9"],
        Verdict::not_affected(
            Justification::VulnerableCodeCannotBeControlledByAdversary,
            auto("nginx-config"),
        )
        .with_confidence(c(0.75))
        .with_notes("no server block sets ssl_verify_client")
        .with_evidence(
            Evidence::new(
                "nginx-config",
                EvidenceSource::ConfigRule("nginx-ssl-verify-client".into()),
                "no server block sets ssl_verify_client",
            )
            .about("/etc/nginx/nginx.conf"),
        ),
    ));

    let mut st = statement(
        "CVE-2024-0005",
        &["pkg:deb/debian/libxml2@2.9.14%2Bdfsg-1.3~deb12u1"],
        Verdict::not_affected(
            Justification::InlineMitigationsAlreadyExist,
            Decider::Human {
                author: "alice@example.com".into(),
            },
        )
        .with_confidence(Confidence::CERTAIN)
        .with_notes("entity expansion is disabled by the build flags"),
    );
    st.timestamp = Some(datetime!(2026-01-01 09:30:00 UTC));
    s.push(st);

    s.push(statement(
        "CVE-2024-0006",
        &["pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1"],
        Verdict::new(
            Status::NotAffected,
            None,
            Some("only the decompressor is used and the flaw is in the compressor".into()),
            None,
            auto("symbols"),
        )
        .expect("impact-only verdict")
        .with_confidence(c(0.7)),
    ));

    s.push(statement(
        "CVE-2024-0008",
        &["pkg:deb/debian/curl@7.88.1-10%2Bdeb12u8"],
        Verdict::fixed(auto("scanner-report"))
            .with_confidence(c(0.95))
            .with_notes("fixed in the installed version"),
    ));

    s.push(statement(
        "CVE-2024-0009",
        &[],
        Verdict::under_investigation(auto("fallback"))
            .with_confidence(c(0.5))
            .with_notes("no evidence either way"),
    ));

    let mut st = statement(
        "GHSA-abcd-1234-wxyz",
        &["pkg:golang/github.com/example/mod@v1.2.3"],
        Verdict::under_investigation(auto("fallback")).with_confidence(c(0.4)),
    );
    st.aliases = vec!["GO-2024-0042".into()];
    s.push(st);

    VexDocument {
        id: None,
        author: "vexxy tests".into(),
        role: Some("Document Creator".into()),
        timestamp: datetime!(2026-01-02 03:04:05 UTC),
        last_updated: None,
        version: 1,
        tooling: Some("vexxy 0.1.0".into()),
        statements: s,
    }
}

/// What a document says, in the form every format can carry:
/// (vulnerability, product purl) → (status, justification, package purls).
pub(crate) type Summary = BTreeMap<(String, String), (Status, Option<Justification>, Vec<String>)>;

pub(crate) fn summary(doc: &VexDocument) -> Summary {
    let mut out: Summary = BTreeMap::new();
    for s in &doc.statements {
        let entry = out
            .entry((s.vulnerability_id.clone(), s.product.oci_purl()))
            .or_insert_with(|| (s.verdict.status(), s.verdict.justification(), Vec::new()));
        assert_eq!(
            (entry.0, entry.1),
            (s.verdict.status(), s.verdict.justification()),
            "one verdict per key"
        );
        entry
            .2
            .extend(s.subcomponents.iter().map(|p| p.vex_form().to_string()));
        entry.2.sort();
        entry.2.dedup();
    }
    out
}

pub(crate) fn schema_errors(schema: &str, instance: &str) -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(schema).expect("schema json");
    let instance: serde_json::Value = serde_json::from_str(instance).expect("instance json");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    validator
        .iter_errors(&instance)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

pub(crate) fn fixture(name: &str) -> (Vec<u8>, std::path::PathBuf) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    (std::fs::read(&path).expect("fixture"), path)
}

pub(crate) fn at(ts: OffsetDateTime) -> Option<OffsetDateTime> {
    Some(ts)
}
