use time::{macros::datetime, OffsetDateTime};
use vexxy_model::{Decider, Justification, Status, Verdict, VexDocument};
use vexxy_vex::merge;

use crate::support::{at, statement};

/// A statement in a merge case: vulnerability, decider kind, statement
/// timestamp, status. Its notes name where it came from (`d<doc>s<index>`).
type S = (&'static str, &'static str, Option<OffsetDateTime>, Status);

fn doc(i: usize, ts: OffsetDateTime, items: &[S]) -> VexDocument {
    let statements = items
        .iter()
        .enumerate()
        .map(|(j, (vuln, who, stamp, status))| {
            let decider = match *who {
                "human" => Decider::Human {
                    author: "alice".into(),
                },
                "imported" => Decider::Imported {
                    author: "other tool".into(),
                },
                _ => Decider::automated("elf-reachability"),
            };
            let verdict = match status {
                Status::NotAffected => {
                    Verdict::not_affected(Justification::VulnerableCodeNotInExecutePath, decider)
                }
                Status::Affected => Verdict::affected("update".into(), decider),
                Status::Fixed => Verdict::fixed(decider),
                Status::UnderInvestigation => Verdict::under_investigation(decider),
            };
            let mut s = statement(
                vuln,
                &["pkg:deb/debian/libtiff6"],
                verdict.with_notes(format!("d{i}s{j}")),
            );
            s.timestamp = *stamp;
            s
        })
        .collect();
    VexDocument {
        id: None,
        author: format!("doc {i}"),
        role: None,
        timestamp: ts,
        last_updated: None,
        version: 1,
        tooling: None,
        statements,
    }
}

const T1: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
const T2: OffsetDateTime = datetime!(2026-02-01 00:00 UTC);
const T3: OffsetDateTime = datetime!(2026-03-01 00:00 UTC);

#[test]
fn merge_rules() {
    use Status::*;
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Vec<(OffsetDateTime, Vec<S>)>, Vec<(&str, &str)>)> = vec![
        (
            "human beats a newer automated statement",
            vec![
                (T1, vec![("CVE-1", "human", at(T1), NotAffected)]),
                (T3, vec![("CVE-1", "auto", at(T3), Affected)]),
            ],
            vec![("CVE-1", "d0s0")],
        ),
        (
            "human beats a newer imported statement, whatever the order",
            vec![
                (T3, vec![("CVE-1", "imported", at(T3), Affected)]),
                (T1, vec![("CVE-1", "human", None, Fixed)]),
            ],
            vec![("CVE-1", "d1s0")],
        ),
        (
            "the newest statement wins among automated ones",
            vec![
                (T1, vec![("CVE-1", "auto", at(T3), Fixed)]),
                (T1, vec![("CVE-1", "auto", at(T2), Affected)]),
            ],
            vec![("CVE-1", "d0s0")],
        ),
        (
            "the newest human statement wins among human ones",
            vec![
                (T1, vec![("CVE-1", "human", at(T2), Fixed)]),
                (T1, vec![("CVE-1", "human", at(T1), Affected)]),
            ],
            vec![("CVE-1", "d0s0")],
        ),
        (
            "a statement without a timestamp takes its document's",
            vec![
                (T3, vec![("CVE-1", "auto", None, Fixed)]),
                (T1, vec![("CVE-1", "auto", at(T2), Affected)]),
            ],
            vec![("CVE-1", "d0s0")],
        ),
        (
            "a tie keeps the later document",
            vec![
                (T2, vec![("CVE-1", "auto", None, Fixed)]),
                (T2, vec![("CVE-1", "imported", None, Affected)]),
            ],
            vec![("CVE-1", "d1s0")],
        ),
        (
            "one statement per key, sorted",
            vec![
                (
                    T2,
                    vec![
                        ("CVE-2", "auto", None, Fixed),
                        ("CVE-1", "auto", None, UnderInvestigation),
                    ],
                ),
                (T2, vec![("CVE-1", "auto", None, NotAffected)]),
                (
                    T3,
                    vec![
                        ("CVE-3", "imported", None, Affected),
                        ("CVE-2", "auto", at(T1), Affected),
                    ],
                ),
            ],
            vec![("CVE-1", "d1s0"), ("CVE-2", "d0s0"), ("CVE-3", "d2s0")],
        ),
    ];
    for (name, docs, want) in cases {
        let docs: Vec<VexDocument> = docs
            .into_iter()
            .enumerate()
            .map(|(i, (ts, items))| doc(i, ts, &items))
            .collect();
        let merged = merge(docs, "merger", T3);
        let got: Vec<(&str, &str)> = merged
            .statements
            .iter()
            .map(|s| (s.vulnerability_id.as_str(), s.verdict.notes.as_str()))
            .collect();
        assert_eq!(got, want, "{name}");
        assert!(
            merged.statements.iter().all(|s| s.timestamp.is_some()),
            "{name}: effective timestamps kept"
        );
        assert_eq!(
            (merged.author.as_str(), merged.timestamp, merged.version),
            ("merger", T3, 1),
            "{name}"
        );
    }
}

#[test]
fn same_verdict_parts_of_the_winning_document_keep_their_packages() {
    let mut d = doc(
        0,
        T1,
        &[
            ("CVE-1", "auto", None, Status::NotAffected),
            ("CVE-1", "auto", None, Status::NotAffected),
        ],
    );
    d.statements[1].subcomponents = vec!["pkg:deb/debian/libwebp7".parse().expect("purl")];
    let merged = merge(vec![d], "m", T2);
    assert_eq!(merged.statements.len(), 1);
    let subs: Vec<String> = merged.statements[0]
        .subcomponents
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(subs, ["pkg:deb/debian/libtiff6", "pkg:deb/debian/libwebp7"]);
}
