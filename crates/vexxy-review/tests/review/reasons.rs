//! Which records need a person.

use vexxy_model::{Confidence, Decider, FixState, Justification, Severity, Verdict};
use vexxy_review::{ReviewReason, ReviewSettings};

use crate::support::records;

#[test]
fn review_reason_table() {
    use ReviewReason as R;
    let auto = || Decider::automated("test");
    let na = |c: f64| {
        Verdict::not_affected(Justification::VulnerableCodeNotInExecutePath, auto())
            .with_confidence(Confidence::clamped(c))
    };
    let affected =
        || Verdict::affected("update".into(), auto()).with_confidence(Confidence::CERTAIN);
    let ui = || Verdict::under_investigation(auto());
    let fixed = || Verdict::fixed(auto()).with_confidence(Confidence::CERTAIN);
    let plain = ReviewSettings::default();
    let strict = ReviewSettings {
        review_below: 0.8,
        four_eyes: true,
    };
    type Case = (
        &'static str,
        Verdict,
        FixState,
        Severity,
        ReviewSettings,
        Option<ReviewReason>,
    );
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("open question", ui(), FixState::Fixed, Severity::Low, plain, Some(R::UnderInvestigation)),
        ("open question, four eyes", ui(), FixState::Unknown, Severity::Critical, strict, Some(R::UnderInvestigation)),
        ("affected, not fixed", affected(), FixState::NotFixed, Severity::Low, plain, Some(R::AffectedWithoutFix)),
        ("affected, won't fix", affected(), FixState::WontFix, Severity::Low, plain, Some(R::AffectedWithoutFix)),
        ("affected, fix unknown", affected(), FixState::Unknown, Severity::Low, plain, Some(R::AffectedWithoutFix)),
        ("affected, fix known", affected(), FixState::Fixed, Severity::Critical, strict, None),
        ("not affected below threshold", na(0.59), FixState::NotFixed, Severity::Low, plain, Some(R::LowConfidence)),
        ("not affected at threshold", na(0.6), FixState::NotFixed, Severity::Low, plain, None),
        ("not affected, org threshold", na(0.7), FixState::NotFixed, Severity::Low, strict, Some(R::LowConfidence)),
        ("low confidence beats four eyes", na(0.5), FixState::NotFixed, Severity::Critical, strict, Some(R::LowConfidence)),
        ("four eyes, critical", na(0.95), FixState::NotFixed, Severity::Critical, strict, Some(R::FourEyes)),
        ("four eyes, high", na(0.95), FixState::NotFixed, Severity::High, strict, Some(R::FourEyes)),
        ("four eyes, medium", na(0.95), FixState::NotFixed, Severity::Medium, strict, None),
        ("four eyes off", na(0.95), FixState::NotFixed, Severity::Critical, plain, None),
        ("fixed", fixed(), FixState::Fixed, Severity::Critical, strict, None),
        ("fixed, no fix state", fixed(), FixState::Unknown, Severity::Critical, strict, None),
    ];
    let template = &records()[0];
    for (name, verdict, fix_state, severity, settings, want) in cases {
        let mut r = template.clone();
        r.verdict = verdict;
        r.fix_state = fix_state;
        r.severity = severity;
        assert_eq!(r.review_reason(&settings), want, "{name}");
    }
}

#[test]
fn records_of_a_real_outcome_get_their_reasons() {
    let records = records();
    let reasons: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.vulnerability_id.as_str(),
                r.package.name.as_str(),
                r.review_reason(&ReviewSettings {
                    review_below: 0.92,
                    four_eyes: true,
                }),
            )
        })
        .collect();
    use ReviewReason as R;
    assert_eq!(
        reasons,
        [
            ("CVE-2024-0001", "libssl3", Some(R::UnderInvestigation)),
            ("CVE-2024-0002", "libtiff6", Some(R::LowConfidence)),
            ("CVE-2024-0003", "libc-bin", Some(R::AffectedWithoutFix)),
            ("CVE-2024-0003", "libc6", Some(R::AffectedWithoutFix)),
            ("CVE-2024-0004", "libgnutls30", None),
            ("CVE-2024-0005", "linux-libc-dev", Some(R::FourEyes)),
        ]
    );
}

#[test]
fn severity_ranks() {
    let mut r = crate::support::records()[0].clone();
    let ranks: Vec<i64> = [
        Severity::Unknown,
        Severity::Negligible,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]
    .into_iter()
    .map(|s| {
        r.severity = s;
        r.severity_rank()
    })
    .collect();
    assert_eq!(ranks, [0, 1, 2, 3, 4, 5]);
}
