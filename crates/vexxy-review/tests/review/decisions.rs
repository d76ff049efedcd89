//! Checking a reviewer's decision, and the verdict it puts in place.

use vexxy_model::{Confidence, Decider, Justification, Status};
use vexxy_review::{
    effective, human_notes, DecisionAction, DecisionInput, HumanStatement, RawDecision,
    ReviewError, MAX_TEXT_CHARS,
};

use crate::support::{raw, record, records, T0, T1};

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn with(
    action: &str,
    status: Option<&str>,
    justification: Option<&str>,
    impact: Option<&str>,
    act: Option<&str>,
) -> RawDecision {
    RawDecision {
        status: status.map(str::to_owned),
        justification: justification.map(str::to_owned),
        impact_statement: impact.map(str::to_owned),
        action_statement: act.map(str::to_owned),
        ..raw(action, "checked by hand")
    }
}

#[test]
fn forbidden_decisions_name_the_field() {
    let long = "x".repeat(MAX_TEXT_CHARS + 1);
    let nip = Some("vulnerable_code_not_in_execute_path");
    #[rustfmt::skip]
    let cases: Vec<(&str, RawDecision, &str)> = vec![
        ("no action", RawDecision { reason: s("r"), ..RawDecision::default() }, "action"),
        ("blank action", RawDecision { action: s("  "), reason: s("r"), ..RawDecision::default() }, "action"),
        ("unknown action", raw("approve_all", "r"), "action"),
        ("no reason", RawDecision { action: s("approve"), ..RawDecision::default() }, "reason"),
        ("blank reason", raw("approve", " \n\t "), "reason"),
        ("long reason", raw("approve", &long), "reason"),
        ("override without status", with("override", None, nip, None, None), "status"),
        ("unknown status", with("override", Some("not_affected_really"), nip, None, None), "status"),
        ("unknown justification", with("override", Some("not_affected"), Some("because"), None, None), "justification"),
        // not_affected
        ("not_affected without reason", with("override", Some("not_affected"), None, None, None), "justification"),
        ("not_affected with action", with("override", Some("not_affected"), nip, None, Some("update")), "action_statement"),
        ("long impact", with("override", Some("not_affected"), None, Some(&long), None), "impact_statement"),
        // affected
        ("affected without action", with("override", Some("affected"), None, None, None), "action_statement"),
        ("affected with justification", with("override", Some("affected"), nip, None, Some("update")), "justification"),
        ("affected with impact", with("override", Some("affected"), None, Some("i"), Some("update")), "impact_statement"),
        ("long action", with("override", Some("affected"), None, None, Some(&long)), "action_statement"),
        // fixed, under_investigation
        ("fixed with justification", with("override", Some("fixed"), nip, None, None), "justification"),
        ("fixed with impact", with("override", Some("fixed"), None, Some("i"), None), "impact_statement"),
        ("fixed with action", with("override", Some("fixed"), None, None, Some("a")), "action_statement"),
        ("open with justification", with("override", Some("under_investigation"), nip, None, None), "justification"),
        ("open with impact", with("override", Some("under_investigation"), None, Some("i"), None), "impact_statement"),
        ("open with action", with("override", Some("under_investigation"), None, None, Some("a")), "action_statement"),
        // status fields on the other actions
        ("approve with status", with("approve", Some("affected"), None, None, None), "status"),
        ("approve with justification", with("approve", None, nip, None, None), "justification"),
        ("revert with impact", with("revert", None, None, Some("i"), None), "impact_statement"),
        ("accept_offer with action", with("accept_offer", None, None, None, Some("a")), "action_statement"),
        // expiry and version
        ("expires in 0 days", RawDecision { expires_in_days: Some(0), ..raw("approve", "r") }, "expires_in_days"),
        ("expires in 3651 days", RawDecision { expires_in_days: Some(3651), ..raw("approve", "r") }, "expires_in_days"),
        ("revert that expires", RawDecision { expires_in_days: Some(30), ..raw("revert", "r") }, "expires_in_days"),
        ("version 0", RawDecision { expected_version: Some(0), ..raw("approve", "r") }, "expected_version"),
    ];
    for (name, raw, field) in cases {
        match DecisionInput::try_from(raw) {
            Err(ReviewError::Field {
                field: f,
                ref message,
            }) => {
                assert_eq!(f, field, "{name}: {message}");
            }
            other => panic!("{name}: expected a {field} error, got {other:?}"),
        }
    }
}

#[test]
fn errors_display_as_field_and_message() {
    let e = DecisionInput::try_from(RawDecision::default()).unwrap_err();
    assert_eq!(e.to_string(), "action: is required");
    let e =
        DecisionInput::try_from(with("override", Some("affected"), None, None, None)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "action_statement: an affected statement needs an action_statement: what should users do"
    );
    let e = DecisionInput::try_from(raw("approve_all", "r")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "action: unknown action \"approve_all\"; expected one of approve, override, revert, accept_offer"
    );
}

#[test]
fn valid_decisions_are_checked_into_verdicts() {
    let nip = Some("vulnerable_code_not_in_execute_path");
    type Case = (
        RawDecision,
        DecisionAction,
        Option<(Status, Option<Justification>)>,
    );
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        (raw("approve", "r"), DecisionAction::Approve, None),
        (raw("revert", "r"), DecisionAction::Revert, None),
        (raw("accept_offer", "r"), DecisionAction::AcceptOffer, None),
        // blank status fields count as absent
        (with("approve", Some(""), Some(" "), None, None), DecisionAction::Approve, None),
        (with("override", Some("not_affected"), nip, None, None), DecisionAction::Override,
            Some((Status::NotAffected, Some(Justification::VulnerableCodeNotInExecutePath)))),
        (with("override", Some("not_affected"), None, Some("only the decoder runs"), None), DecisionAction::Override,
            Some((Status::NotAffected, None))),
        (with("override", Some("not_affected"), nip, Some("both are fine"), None), DecisionAction::Override,
            Some((Status::NotAffected, Some(Justification::VulnerableCodeNotInExecutePath)))),
        (with("override", Some("affected"), None, None, Some("update")), DecisionAction::Override,
            Some((Status::Affected, None))),
        (with("override", Some("fixed"), None, None, None), DecisionAction::Override, Some((Status::Fixed, None))),
        (with("override", Some("under_investigation"), None, None, None), DecisionAction::Override,
            Some((Status::UnderInvestigation, None))),
    ];
    for (raw, action, verdict) in cases {
        let input = DecisionInput::try_from(raw.clone()).unwrap();
        assert_eq!(input.action, action, "{raw:?}");
        assert_eq!(
            input
                .verdict
                .as_ref()
                .map(|v| (v.status(), v.justification())),
            verdict,
            "{raw:?}"
        );
        if let Some(v) = &input.verdict {
            assert!(v.decided_by.is_human());
            assert_eq!(v.confidence, Confidence::CERTAIN);
        }
        assert_eq!(
            Some(input.reason.as_str()),
            raw.reason.as_deref(),
            "{raw:?}"
        );
    }
    let full = DecisionInput::try_from(RawDecision {
        expires_in_days: Some(3650),
        expected_version: Some(7),
        ..raw("approve", "  fine as it is \n")
    })
    .unwrap();
    assert_eq!(
        (
            full.reason.as_str(),
            full.expires_in_days,
            full.expected_version
        ),
        ("fine as it is", Some(3650), Some(7))
    );
}

#[test]
fn raw_decisions_refuse_unknown_fields() {
    let ok: RawDecision =
        serde_json::from_str(r#"{"action":"approve","reason":"r","expires_in_days":30}"#).unwrap();
    assert_eq!(ok.expires_in_days, Some(30));
    let e =
        serde_json::from_str::<RawDecision>(r#"{"action":"approve","reason":"r","author":"me"}"#)
            .unwrap_err();
    assert!(e.to_string().contains("unknown field `author`"), "{e}");
    // what a client sends reads back the same
    let back: RawDecision = serde_json::from_str(&serde_json::to_string(&ok).unwrap()).unwrap();
    assert_eq!(back, ok);
}

#[test]
fn actions_spell_as_stored() {
    for a in DecisionAction::ALL {
        assert_eq!(a.as_str().parse::<DecisionAction>().unwrap(), a);
    }
    assert_eq!(DecisionAction::AcceptOffer.to_string(), "accept_offer");
}

#[test]
fn human_notes_name_the_reviewer_date_and_reason() {
    assert_eq!(
        human_notes(
            "alice@example.com",
            "2026-03-01T09:00:00Z",
            " not loaded\nin production "
        ),
        "reviewed by alice@example.com on 2026-03-01T09:00:00Z: not loaded in production"
    );
}

#[test]
fn effective_verdicts() {
    let records = records();
    let tiff = record(&records, "CVE-2024-0002", "libtiff6");

    // approve: the automated verdict with its evidence, now alice's
    let approve = DecisionInput::try_from(raw("approve", "the plugin is not shipped")).unwrap();
    let v = effective(tiff, &approve, "alice", T0).unwrap();
    assert_eq!(
        (v.status(), v.justification()),
        (tiff.verdict.status(), tiff.verdict.justification())
    );
    assert_eq!(v.evidence, tiff.verdict.evidence);
    assert_eq!(
        v.decided_by,
        Decider::Human {
            author: "alice".into()
        }
    );
    assert_eq!(v.confidence, Confidence::CERTAIN);
    assert!(
        v.notes
            .starts_with("reviewed by alice on 2026-03-01T09:00:00Z: the plugin is not shipped; "),
        "{}",
        v.notes
    );
    assert!(v.notes.ends_with(&tiff.verdict.notes));

    // override: the reviewer's verdict
    let over = DecisionInput::try_from(with(
        "override",
        Some("affected"),
        None,
        None,
        Some("update"),
    ))
    .unwrap();
    let v = effective(tiff, &over, "bob", T1).unwrap();
    assert_eq!(
        (v.status(), v.action_statement()),
        (Status::Affected, Some("update"))
    );
    assert!(v.evidence.is_empty());
    assert_eq!(
        v.notes,
        "reviewed by bob on 2026-03-02T10:30:00Z: checked by hand"
    );

    // revert and accept_offer put nothing in place here
    for a in ["revert", "accept_offer"] {
        let d = DecisionInput::try_from(raw(a, "r")).unwrap();
        assert_eq!(effective(tiff, &d, "carol", T1), None, "{a}");
        assert_eq!(HumanStatement::new(tiff, &d, "carol", T1), None, "{a}");
    }

    // the offered decision, taken for another digest's record by carol
    let offered = HumanStatement::new(tiff, &over, "bob", T0).unwrap();
    let taken = HumanStatement::accepting(&offered, tiff, "carol", " same package ", T1);
    assert_eq!(
        (taken.vulnerability_id.as_str(), taken.package_key.as_str()),
        ("CVE-2024-0002", "pkg:deb/debian/libtiff6@1.0-1")
    );
    assert_eq!(taken.verdict.status(), Status::Affected);
    assert_eq!(taken.author, "carol");
    assert_eq!(taken.reason, "same package");
    assert_eq!(
        taken.verdict.notes,
        "reviewed by carol on 2026-03-02T10:30:00Z: same package"
    );
}
