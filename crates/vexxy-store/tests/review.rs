//! The review loop's storage, each scenario on SQLite and on the real
//! PostgreSQL (a fresh database per test): statements per finding,
//! decisions that survive re-analysis and are offered to new digests,
//! the queue, optimistic concurrency, tenant isolation, VEX versions and
//! the numbers of the dashboard and the compliance view.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use vexxy_store::{
    jobs::{Completed, Completion, NewJob, Submitted},
    now_ms,
    review::{
        AnalysisRecord, ChangeSet, Effect, NewDecision, NewStatement, NewVexVersion,
        ReviewSettingsRow, StatementFilter, StatementRow, StatementSort, WEEKS, WEEK_MS,
    },
    tenants::month_window,
    EvidenceStore, LocalStore, Store, StoreError, Tier,
};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let store = super::Store::open_sqlite_in(dir.path()).await.unwrap();
                super::$name(store).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = vexxy_testkit::require_postgres(stringify!($name)) else { return };
                let store = super::Store::open(&db.url()).await.unwrap();
                super::$name(store.clone()).await;
                store.close().await;
            })*
        }
    };
}

both!(
    recording_upserts_and_reports_changes,
    decisions_survive_reanalysis_of_the_same_digest,
    offers_need_the_same_evidence_in_the_same_repository,
    the_queue_follows_reasons_decisions_and_expiry,
    filters_and_risk_order,
    concurrent_decisions_one_wins,
    stale_versions_conflict_and_write_nothing,
    decide_many_is_all_or_nothing,
    tenants_are_isolated,
    vex_versions_increment_and_retention_keeps_their_blobs,
    dashboard_and_compliance_count_a_known_set,
    completing_a_job_stores_its_statements_atomically,
    settings_reasons_assignees_and_key_owners,
    reruns_are_due_after_the_organisation_s_period,
);

const DIGEST_A: &str = "sha256:aaaa";
const DIGEST_B: &str = "sha256:bbbb";
const DIGEST_C: &str = "sha256:cccc";
const REPO: &str = "registry.example/shop/web";

/// A finding's automated statement: `status` with a justification when
/// not_affected, `fp` its evidence fingerprint.
fn stmt(vuln: &str, pkg: &str, status: &str, confidence: f64, fp: &str) -> NewStatement {
    NewStatement {
        vulnerability_id: vuln.into(),
        package_key: format!("pkg:deb/debian/{pkg}@1.0"),
        package_name: pkg.into(),
        package_version: "1.0".into(),
        package_purl: Some(format!("pkg:deb/debian/{pkg}@1.0?arch=amd64")),
        severity: "medium".into(),
        severity_rank: 3,
        epss: None,
        kev: false,
        fix_state: "not_fixed".into(),
        auto_status: status.into(),
        auto_justification: (status == "not_affected")
            .then(|| "vulnerable_code_not_in_execute_path".into()),
        auto_confidence: confidence,
        record: format!("{{\"vulnerability_id\":\"{vuln}\",\"fp\":\"{fp}\"}}"),
        evidence_fingerprint: format!("sha256:{fp}"),
        review_reason: match status {
            "under_investigation" => Some("under_investigation".into()),
            "affected" => Some("affected_no_fix".into()),
            _ if confidence < 0.6 => Some("low_confidence".into()),
            _ => None,
        },
    }
}

fn analysis(
    org: &str,
    digest: &str,
    repo: &str,
    job: &str,
    statements: Vec<NewStatement>,
) -> AnalysisRecord {
    AnalysisRecord {
        org_id: org.into(),
        image_digest: digest.into(),
        repository: repo.into(),
        reference: format!("{repo}:{}", &digest[7..]),
        job_id: job.into(),
        full_run: false,
        statements,
    }
}

fn approve(reason: &str) -> NewDecision {
    NewDecision {
        action: "approve".into(),
        status: None,
        justification: None,
        impact_statement: None,
        action_statement: None,
        reason: reason.into(),
        author: "alice@example.com".into(),
        key_id: "key_alice".into(),
        expires_at: None,
    }
}

fn approved(row: &StatementRow) -> Effect {
    Effect {
        decision: true,
        status: row.auto_status.clone(),
        justification: row.auto_justification.clone(),
    }
}

fn override_to_affected(reason: &str) -> (NewDecision, Effect) {
    (
        NewDecision {
            action: "override".into(),
            status: Some("affected".into()),
            action_statement: Some("upgrade".into()),
            ..approve(reason)
        },
        Effect {
            decision: true,
            status: "affected".into(),
            justification: None,
        },
    )
}

fn revert(row: &StatementRow) -> (NewDecision, Effect) {
    (
        NewDecision {
            action: "revert".into(),
            ..approve("back to automation")
        },
        Effect {
            decision: false,
            status: row.auto_status.clone(),
            justification: row.auto_justification.clone(),
        },
    )
}

fn all(image: &str) -> StatementFilter {
    StatementFilter {
        image_digest: Some(image.into()),
        include_absent: true,
        sort: StatementSort::Vulnerability,
        ..StatementFilter::default()
    }
}

async fn rows(store: &Store, org: &str, filter: &StatementFilter) -> Vec<StatementRow> {
    store.statements(org, filter, now_ms()).await.unwrap().0
}

async fn by_vuln(store: &Store, org: &str, image: &str, vuln: &str) -> StatementRow {
    rows(store, org, &all(image))
        .await
        .into_iter()
        .find(|r| r.vulnerability_id == vuln)
        .unwrap_or_else(|| panic!("no {vuln} in {image}"))
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

async fn org(store: &Store, name: &str) -> String {
    store
        .create_org(name, Tier::Enterprise, None)
        .await
        .unwrap()
        .id
}

async fn recording_upserts_and_reports_changes(store: Store) {
    let org = org(&store, "acme").await;
    let first = analysis(
        &org,
        DIGEST_A,
        REPO,
        "job_1",
        vec![
            stmt("CVE-1", "openssl", "not_affected", 0.9, "a"),
            stmt("CVE-2", "zlib", "affected", 0.8, "b"),
            stmt("CVE-3", "curl", "under_investigation", 0.5, "c"),
        ],
    );
    // a preview names exactly what recording reports, and writes nothing
    let preview = store.preview_changes(&first).await.unwrap();
    assert_eq!(preview.added.len(), 3);
    assert!(rows(&store, &org, &all(DIGEST_A)).await.is_empty());
    assert!(store
        .image(&org, DIGEST_A, now_ms())
        .await
        .unwrap()
        .is_none());
    let changes = store.record_analysis(&first).await.unwrap();
    assert_eq!(changes, preview);
    let stored = rows(&store, &org, &all(DIGEST_A)).await;
    assert_eq!(
        sorted(stored.iter().map(|r| r.id.clone()).collect()),
        sorted(changes.added.clone())
    );
    let cve1 = &stored[0];
    assert_eq!(cve1.vulnerability_id, "CVE-1");
    assert_eq!(
        (cve1.status.as_str(), cve1.justification.as_deref()),
        ("not_affected", Some("vulnerable_code_not_in_execute_path"))
    );
    assert_eq!(cve1.version, 1);
    assert!(cve1.present && !cve1.kev && cve1.decision_id.is_none());
    assert_eq!(cve1.auto_confidence, 0.9);
    assert_eq!(cve1.job_id, "job_1");
    let image = store
        .image(&org, DIGEST_A, now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(image.findings, 3);
    assert_eq!(image.last_analysis_job, "job_1");
    assert_eq!((image.last_run_job, image.last_run_at), (None, None));
    assert_eq!(image.vex_version, 0);

    // the same analysis again: nothing changed, no version moved
    let mut again = first.clone();
    again.job_id = "job_2".into();
    assert_eq!(
        store.record_analysis(&again).await.unwrap(),
        ChangeSet::default()
    );
    let same = rows(&store, &org, &all(DIGEST_A)).await;
    assert!(same.iter().all(|r| r.version == 1 && r.job_id == "job_2"));

    // one status changes, one finding goes, one arrives
    let mut third = analysis(
        &org,
        DIGEST_A,
        REPO,
        "job_3",
        vec![
            stmt("CVE-1", "openssl", "affected", 0.8, "a2"),
            stmt("CVE-2", "zlib", "affected", 0.8, "b"),
            stmt("CVE-4", "bash", "not_affected", 0.95, "d"),
        ],
    );
    third.full_run = true;
    let preview = store.preview_changes(&third).await.unwrap();
    let changes = store.record_analysis(&third).await.unwrap();
    assert_eq!(changes, preview);
    let now = rows(&store, &org, &all(DIGEST_A)).await;
    let id = |v: &str| {
        now.iter()
            .find(|r| r.vulnerability_id == v)
            .unwrap()
            .id
            .clone()
    };
    assert_eq!(changes.changed, [id("CVE-1")]);
    assert_eq!(changes.removed, [id("CVE-3")]);
    assert_eq!(changes.added, [id("CVE-4")]);
    assert_eq!((changes.kept_decisions, changes.offered), (0, 0));
    let cve1 = now.iter().find(|r| r.vulnerability_id == "CVE-1").unwrap();
    assert_eq!(
        (
            cve1.status.as_str(),
            cve1.justification.as_deref(),
            cve1.version
        ),
        ("affected", None, 2)
    );
    let cve3 = now.iter().find(|r| r.vulnerability_id == "CVE-3").unwrap();
    assert!(!cve3.present, "kept, absent");
    assert_eq!(cve3.version, 2);
    assert_eq!(
        now.iter()
            .find(|r| r.vulnerability_id == "CVE-2")
            .unwrap()
            .version,
        1
    );
    // absent findings are listed only when asked for
    let present = rows(
        &store,
        &org,
        &StatementFilter {
            include_absent: false,
            ..all(DIGEST_A)
        },
    )
    .await;
    assert_eq!(present.len(), 3);
    let image = store
        .image(&org, DIGEST_A, now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(image.findings, 3);
    assert_eq!(image.last_run_job.as_deref(), Some("job_3"));
    assert!(image.last_run_at.is_some());
    assert!(image.first_seen_at <= image.last_analysed_at);

    // a static analysis later keeps the last run; the finding that left
    // is back
    let fourth = analysis(
        &org,
        DIGEST_A,
        REPO,
        "job_4",
        vec![
            stmt("CVE-1", "openssl", "affected", 0.8, "a2"),
            stmt("CVE-2", "zlib", "affected", 0.8, "b"),
            stmt("CVE-3", "curl", "under_investigation", 0.5, "c"),
            stmt("CVE-4", "bash", "not_affected", 0.95, "d"),
        ],
    );
    let changes = store.record_analysis(&fourth).await.unwrap();
    assert_eq!(changes.added, [id("CVE-3")]);
    assert!(changes.removed.is_empty() && changes.changed.is_empty());
    let image2 = store
        .image(&org, DIGEST_A, now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(image2.last_run_job.as_deref(), Some("job_3"));
    assert_eq!(image2.last_analysis_job, "job_4");
    assert_eq!(image2.first_seen_at, image.first_seen_at);
    assert!(by_vuln(&store, &org, DIGEST_A, "CVE-3").await.present);

    // a score comes and goes
    let mut scored = fourth.clone();
    scored.job_id = "job_5".into();
    scored.statements[1].epss = Some(0.25);
    scored.statements[1].kev = true;
    store.record_analysis(&scored).await.unwrap();
    let cve2 = by_vuln(&store, &org, DIGEST_A, "CVE-2").await;
    assert_eq!((cve2.epss, cve2.kev, cve2.version), (Some(0.25), true, 2));
    store.record_analysis(&fourth).await.unwrap();
    let cve2 = by_vuln(&store, &org, DIGEST_A, "CVE-2").await;
    assert_eq!((cve2.epss, cve2.kev, cve2.version), (None, false, 3));

    // a record naming a finding twice, or an unknown organisation, is refused
    let mut twice = fourth.clone();
    twice
        .statements
        .push(stmt("CVE-1", "openssl", "affected", 0.8, "a2"));
    assert!(matches!(
        store.record_analysis(&twice).await,
        Err(StoreError::Invalid(_))
    ));
    let mut nobody = fourth.clone();
    nobody.org_id = "org_nobody".into();
    assert!(matches!(
        store.record_analysis(&nobody).await,
        Err(StoreError::NotFound(_))
    ));
    let mut bad = fourth.clone();
    bad.statements[0].auto_confidence = 1.5;
    assert!(matches!(
        store.record_analysis(&bad).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn decisions_survive_reanalysis_of_the_same_digest(store: Store) {
    let org = org(&store, "acme").await;
    let rec = analysis(
        &org,
        DIGEST_A,
        REPO,
        "job_1",
        vec![
            stmt("CVE-1", "openssl", "not_affected", 0.5, "a"),
            stmt("CVE-2", "zlib", "not_affected", 0.9, "b"),
        ],
    );
    store.record_analysis(&rec).await.unwrap();
    let row = by_vuln(&store, &org, DIGEST_A, "CVE-1").await;
    let (decision, effect) = override_to_affected("reachable from the login handler");
    let (after, dec) = store
        .decide(
            &org,
            &row.id,
            Some(row.version),
            &decision,
            &effect,
            now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(after.decision_id.as_deref(), Some(dec.id.as_str()));
    assert_eq!((after.status.as_str(), after.version), ("affected", 2));
    assert_eq!(dec.evidence_fingerprint, "sha256:a");
    assert_eq!(dec.auto_status, "not_affected");

    // the automation changes its mind about the same digest: the person wins
    let rec2 = analysis(
        &org,
        DIGEST_A,
        REPO,
        "job_2",
        vec![
            stmt("CVE-1", "openssl", "under_investigation", 0.4, "a-new"),
            stmt("CVE-2", "zlib", "not_affected", 0.9, "b"),
        ],
    );
    let changes = store.record_analysis(&rec2).await.unwrap();
    assert_eq!(changes.kept_decisions, 1);
    assert_eq!(changes.changed, std::slice::from_ref(&row.id));
    let kept = by_vuln(&store, &org, DIGEST_A, "CVE-1").await;
    assert_eq!(kept.decision_id.as_deref(), Some(dec.id.as_str()));
    assert_eq!(
        (kept.status.as_str(), kept.justification.as_deref()),
        ("affected", None)
    );
    assert_eq!(kept.auto_status, "under_investigation");
    assert_eq!(kept.evidence_fingerprint, "sha256:a-new");
    assert_eq!(kept.version, 3);
    assert!(!kept.in_queue, "decided, no expiry");
    assert_eq!(
        store.decisions(&org, &row.id).await.unwrap(),
        std::slice::from_ref(&dec)
    );
    let active = store.active_decisions(&org, DIGEST_A).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(
        (active[0].0.id.as_str(), &active[0].1),
        (row.id.as_str(), &dec)
    );

    // a revert hands the statement back to the (new) automation
    let (decision, effect) = revert(&kept);
    let (reverted, rev) = store
        .decide(
            &org,
            &row.id,
            Some(kept.version),
            &decision,
            &effect,
            now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(reverted.decision_id, None);
    assert_eq!(reverted.status, "under_investigation");
    assert!(reverted.in_queue);
    let history = store.decisions(&org, &row.id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].id, dec.id);
    assert!(history[0].superseded_at.is_some());
    assert_eq!(history[1], rev);
    assert!(store
        .active_decisions(&org, DIGEST_A)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.decision(&org, &dec.id).await.unwrap().unwrap().id,
        dec.id
    );
    // every decision is in the audit log with what it changed
    let audit = store.audit_entries(Some(&org)).await.unwrap();
    let review: Vec<_> = audit
        .iter()
        .filter(|a| a.action.starts_with("review."))
        .collect();
    assert_eq!(review.len(), 2);
    assert_eq!(review[0].action, "review.override");
    assert_eq!(review[0].key_id.as_deref(), Some("key_alice"));
    let detail: serde_json::Value =
        serde_json::from_str(review[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["statement"], row.id.as_str());
    assert_eq!(detail["vulnerability"], "CVE-1");
    assert_eq!(detail["old_status"], "not_affected");
    assert_eq!(detail["new_status"], "affected");
    assert_eq!(detail["reason"], "reachable from the login handler");
    assert_eq!(review[1].action, "review.revert");
}

async fn offers_need_the_same_evidence_in_the_same_repository(store: Store) {
    let org = org(&store, "acme").await;
    store
        .record_analysis(&analysis(
            &org,
            DIGEST_A,
            REPO,
            "job_1",
            vec![
                stmt("CVE-1", "openssl", "not_affected", 0.5, "x"),
                stmt("CVE-2", "zlib", "not_affected", 0.5, "y"),
                stmt("CVE-3", "curl", "not_affected", 0.5, "z"),
            ],
        ))
        .await
        .unwrap();
    let mut decided = Vec::new();
    for vuln in ["CVE-1", "CVE-2", "CVE-3"] {
        let row = by_vuln(&store, &org, DIGEST_A, vuln).await;
        let (_, dec) = store
            .decide(
                &org,
                &row.id,
                None,
                &approve("checked"),
                &approved(&row),
                now_ms(),
            )
            .await
            .unwrap();
        decided.push(dec);
    }
    // CVE-3's decision is reverted: nothing to offer any more
    let cve3 = by_vuln(&store, &org, DIGEST_A, "CVE-3").await;
    let (d, e) = revert(&cve3);
    store
        .decide(&org, &cve3.id, None, &d, &e, now_ms())
        .await
        .unwrap();

    // a new digest: CVE-1 rests on the same evidence, CVE-2 on other
    let rec = analysis(
        &org,
        DIGEST_B,
        REPO,
        "job_2",
        vec![
            stmt("CVE-1", "openssl", "not_affected", 0.5, "x"),
            stmt("CVE-2", "zlib", "not_affected", 0.5, "y-changed"),
            stmt("CVE-3", "curl", "not_affected", 0.5, "z"),
        ],
    );
    let preview = store.preview_changes(&rec).await.unwrap();
    let changes = store.record_analysis(&rec).await.unwrap();
    assert_eq!(changes, preview);
    assert_eq!(changes.offered, 1);
    let b1 = by_vuln(&store, &org, DIGEST_B, "CVE-1").await;
    assert_eq!(
        b1.offered_decision_id.as_deref(),
        Some(decided[0].id.as_str())
    );
    assert_eq!(b1.decision_id, None, "offered, not applied");
    assert!(b1.in_queue, "still waits for a person");
    assert_eq!(
        by_vuln(&store, &org, DIGEST_B, "CVE-2")
            .await
            .offered_decision_id,
        None
    );
    assert_eq!(
        by_vuln(&store, &org, DIGEST_B, "CVE-3")
            .await
            .offered_decision_id,
        None
    );

    // the same evidence in another repository is offered nothing
    let other = analysis(
        &org,
        DIGEST_C,
        "registry.example/other",
        "job_3",
        vec![stmt("CVE-1", "openssl", "not_affected", 0.5, "x")],
    );
    assert_eq!(store.record_analysis(&other).await.unwrap().offered, 0);
    assert_eq!(
        by_vuln(&store, &org, DIGEST_C, "CVE-1")
            .await
            .offered_decision_id,
        None
    );

    // accepting the offer clears it and decides
    let accept = NewDecision {
        action: "accept_offer".into(),
        ..approve("same evidence as in the previous image")
    };
    let (after, _) = store
        .decide(
            &org,
            &b1.id,
            Some(b1.version),
            &accept,
            &approved(&b1),
            now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(after.offered_decision_id, None);
    assert!(after.decision_id.is_some() && !after.in_queue);
}

async fn the_queue_follows_reasons_decisions_and_expiry(store: Store) {
    let org = org(&store, "acme").await;
    store
        .record_analysis(&analysis(
            &org,
            DIGEST_A,
            REPO,
            "job_1",
            vec![
                stmt("CVE-1", "openssl", "not_affected", 0.4, "a"), // low confidence
                stmt("CVE-2", "zlib", "not_affected", 0.9, "b"),    // no reason
                stmt("CVE-3", "curl", "affected", 0.9, "c"),        // affected, no fix
                stmt("CVE-4", "bash", "under_investigation", 0.2, "d"),
            ],
        ))
        .await
        .unwrap();
    let queue = |now: i64| {
        let store = store.clone();
        let org = org.clone();
        async move {
            let filter = StatementFilter {
                queue_only: true,
                sort: StatementSort::Vulnerability,
                ..StatementFilter::default()
            };
            let (rows, total) = store.statements(&org, &filter, now).await.unwrap();
            assert_eq!(total, rows.len() as i64);
            assert!(rows.iter().all(|r| r.in_queue));
            rows.into_iter()
                .map(|r| r.vulnerability_id)
                .collect::<Vec<_>>()
        }
    };
    let t = now_ms();
    assert_eq!(queue(t).await, ["CVE-1", "CVE-3", "CVE-4"]);
    // decided: out of the queue; decided until t + 1000: back in then
    let cve1 = by_vuln(&store, &org, DIGEST_A, "CVE-1").await;
    store
        .decide(
            &org,
            &cve1.id,
            None,
            &approve("read the code"),
            &approved(&cve1),
            t,
        )
        .await
        .unwrap();
    let cve3 = by_vuln(&store, &org, DIGEST_A, "CVE-3").await;
    let expiring = NewDecision {
        expires_at: Some(t + 1000),
        ..approve("accepted for a while")
    };
    store
        .decide(&org, &cve3.id, None, &expiring, &approved(&cve3), t)
        .await
        .unwrap();
    assert_eq!(queue(t).await, ["CVE-4"]);
    assert_eq!(queue(t + 999).await, ["CVE-4"]);
    assert_eq!(queue(t + 1000).await, ["CVE-3", "CVE-4"]);
    let expired = store
        .statements(&org, &all(DIGEST_A), t + 1000)
        .await
        .unwrap()
        .0;
    assert!(expired
        .iter()
        .any(|r| r.vulnerability_id == "CVE-3" && r.in_queue));
    // a finding that left is out of the queue
    store
        .record_analysis(&analysis(
            &org,
            DIGEST_A,
            REPO,
            "job_2",
            vec![
                stmt("CVE-1", "openssl", "not_affected", 0.4, "a"),
                stmt("CVE-2", "zlib", "not_affected", 0.9, "b"),
                stmt("CVE-3", "curl", "affected", 0.9, "c"),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(queue(t + 1000).await, ["CVE-3"]);
    // a reason set later puts a statement in the queue, and leaves its version
    let cve2 = by_vuln(&store, &org, DIGEST_A, "CVE-2").await;
    store
        .set_review_reasons(&org, &[(cve2.id.clone(), Some("four_eyes".into()))])
        .await
        .unwrap();
    assert_eq!(queue(t).await, ["CVE-2"]);
    let after = by_vuln(&store, &org, DIGEST_A, "CVE-2").await;
    assert_eq!(after.review_reason.as_deref(), Some("four_eyes"));
    assert_eq!(after.version, cve2.version);
}

async fn filters_and_risk_order(store: Store) {
    let org = org(&store, "acme").await;
    let mut s = vec![
        stmt("CVE-LOW", "low", "affected", 0.9, "1"),
        stmt("CVE-KEV", "kev", "affected", 0.9, "2"),
        stmt("CVE-CRIT-EPSS", "crit_epss", "not_affected", 0.9, "3"),
        stmt("CVE-CRIT-NOEPSS", "crit_noepss", "not_affected", 0.3, "4"),
        stmt(
            "CVE-CRIT-EPSS-LOWCONF",
            "crit_lowconf",
            "not_affected",
            0.7,
            "5",
        ),
        stmt(
            "CVE-CRIT-HIGHEPSS",
            "crit_highepss",
            "under_investigation",
            0.1,
            "6",
        ),
    ];
    s[0].severity = "low".into();
    s[0].severity_rank = 2;
    s[1].kev = true;
    s[1].severity_rank = 1;
    for (i, epss) in [(2, Some(0.3)), (3, None), (4, Some(0.3)), (5, Some(0.9))] {
        s[i].severity = "critical".into();
        s[i].severity_rank = 5;
        s[i].epss = epss;
    }
    store
        .record_analysis(&analysis(&org, DIGEST_A, REPO, "job_1", s))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .record_analysis(&analysis(
            &org,
            DIGEST_B,
            "registry.example/other",
            "job_2",
            vec![stmt("CVE-OTHER", "odd%_name", "affected", 0.9, "7")],
        ))
        .await
        .unwrap();
    let list = |filter: StatementFilter| {
        let store = store.clone();
        let org = org.clone();
        async move {
            let (rows, total) = store.statements(&org, &filter, now_ms()).await.unwrap();
            (
                rows.into_iter()
                    .map(|r| r.vulnerability_id)
                    .collect::<Vec<_>>(),
                total,
            )
        }
    };
    let risk = StatementFilter {
        repository: Some(REPO.into()),
        ..StatementFilter::default()
    };
    assert_eq!(
        list(risk.clone()).await.0,
        [
            "CVE-KEV",
            "CVE-CRIT-HIGHEPSS",
            "CVE-CRIT-EPSS-LOWCONF",
            "CVE-CRIT-EPSS",
            "CVE-CRIT-NOEPSS",
            "CVE-LOW",
        ]
    );
    // pages, with the total of every page
    let page = list(StatementFilter {
        limit: Some(2),
        offset: Some(1),
        ..risk.clone()
    })
    .await;
    assert_eq!(
        page,
        (
            vec!["CVE-CRIT-HIGHEPSS".into(), "CVE-CRIT-EPSS-LOWCONF".into()],
            6
        )
    );
    assert_eq!(
        list(StatementFilter {
            limit: Some(1_000_000),
            ..StatementFilter::default()
        })
        .await
        .1,
        7
    );
    // age: oldest first (then by id)
    let (by_age, _) = list(StatementFilter {
        sort: StatementSort::Age,
        ..StatementFilter::default()
    })
    .await;
    assert_eq!(by_age.len(), 7);
    assert_eq!(by_age.last().unwrap(), "CVE-OTHER", "recorded last");
    let one = |f: StatementFilter| async move {
        let (mut ids, total) = list(f).await;
        assert_eq!(total, ids.len() as i64);
        ids.sort();
        ids
    };
    let f = StatementFilter::default;
    assert_eq!(
        one(StatementFilter {
            package: Some("crit_".into()),
            ..f()
        })
        .await,
        [
            "CVE-CRIT-EPSS",
            "CVE-CRIT-EPSS-LOWCONF",
            "CVE-CRIT-HIGHEPSS",
            "CVE-CRIT-NOEPSS"
        ]
    );
    // LIKE's wildcards are plain characters
    assert_eq!(
        one(StatementFilter {
            package: Some("%_".into()),
            ..f()
        })
        .await,
        ["CVE-OTHER"]
    );
    assert_eq!(
        one(StatementFilter {
            severity: Some("critical".into()),
            status: Some("not_affected".into()),
            ..f()
        })
        .await,
        ["CVE-CRIT-EPSS", "CVE-CRIT-EPSS-LOWCONF", "CVE-CRIT-NOEPSS"]
    );
    assert_eq!(
        one(StatementFilter {
            min_confidence: Some(0.3),
            max_confidence: Some(0.7),
            ..f()
        })
        .await,
        ["CVE-CRIT-EPSS-LOWCONF", "CVE-CRIT-NOEPSS"]
    );
    assert_eq!(
        one(StatementFilter {
            vulnerability: Some("CVE-LOW".into()),
            ..f()
        })
        .await,
        ["CVE-LOW"]
    );
    assert_eq!(
        one(StatementFilter {
            image_digest: Some(DIGEST_B.into()),
            ..f()
        })
        .await,
        ["CVE-OTHER"]
    );
    assert_eq!(
        one(StatementFilter {
            review_reason: Some("low_confidence".into()),
            ..f()
        })
        .await,
        ["CVE-CRIT-NOEPSS"]
    );
    let low = by_vuln(&store, &org, DIGEST_A, "CVE-LOW").await;
    store
        .set_assignee(&org, &low.id, Some("bob"), Some(low.version))
        .await
        .unwrap();
    assert_eq!(
        one(StatementFilter {
            assignee: Some("bob".into()),
            ..f()
        })
        .await,
        ["CVE-LOW"]
    );
}

async fn concurrent_decisions_one_wins(store: Store) {
    let org = org(&store, "acme").await;
    let statements = (0..5)
        .map(|i| stmt(&format!("CVE-{i}"), "openssl", "not_affected", 0.5, "a"))
        .collect();
    store
        .record_analysis(&analysis(&org, DIGEST_A, REPO, "job_1", statements))
        .await
        .unwrap();
    for i in 0..4 {
        let row = by_vuln(&store, &org, DIGEST_A, &format!("CVE-{i}")).await;
        // with the version both saw: the second finds it moved on
        let expected = Some(row.version);
        let (d1, e1) = override_to_affected("alice says affected");
        let d2 = NewDecision {
            author: "bob@example.com".into(),
            ..approve("bob says fine")
        };
        let e2 = approved(&row);
        let (a, b) = tokio::join!(
            store.decide(&org, &row.id, expected, &d1, &e1, now_ms()),
            store.decide(&org, &row.id, expected, &d2, &e2, now_ms()),
        );
        let (won, lost) = match (a, b) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            (a, b) => panic!("round {i}: exactly one must win: {a:?} / {b:?}"),
        };
        assert!(
            matches!(lost, StoreError::Conflict(_)),
            "round {i}: the loser conflicts: {lost:?}"
        );
        let history = store.decisions(&org, &row.id).await.unwrap();
        assert_eq!(
            history,
            std::slice::from_ref(&won.1),
            "round {i}: one decision stored"
        );
        let now = store.statement(&org, &row.id).await.unwrap().unwrap();
        assert_eq!(now.version, row.version + 1);
        assert_eq!(now.decision_id.as_deref(), Some(won.1.id.as_str()));
    }
    let audited = store
        .audit_entries(Some(&org))
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action.starts_with("review."))
        .count();
    assert_eq!(audited, 4, "one audit entry per winner");
    // without a version, decisions wait for each other and both apply,
    // the later superseding the earlier
    let row = by_vuln(&store, &org, DIGEST_A, "CVE-4").await;
    let (d1, e1) = override_to_affected("alice");
    let d2 = approve("bob");
    let e2 = approved(&row);
    let (a, b) = tokio::join!(
        store.decide(&org, &row.id, None, &d1, &e1, now_ms()),
        store.decide(&org, &row.id, None, &d2, &e2, now_ms()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        BTreeSet::from([a.0.version, b.0.version]),
        BTreeSet::from([row.version + 1, row.version + 2])
    );
    let last = if a.0.version > b.0.version { &a } else { &b };
    let history = store.decisions(&org, &row.id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history.iter().filter(|d| d.superseded_at.is_none()).count(),
        1
    );
    let now = store.statement(&org, &row.id).await.unwrap().unwrap();
    assert_eq!(now.decision_id.as_deref(), Some(last.1.id.as_str()));
    assert_eq!(now.status, last.0.status);
}

async fn stale_versions_conflict_and_write_nothing(store: Store) {
    let org = org(&store, "acme").await;
    store
        .record_analysis(&analysis(
            &org,
            DIGEST_A,
            REPO,
            "job_1",
            vec![stmt("CVE-1", "openssl", "not_affected", 0.5, "a")],
        ))
        .await
        .unwrap();
    let row = by_vuln(&store, &org, DIGEST_A, "CVE-1").await;
    store
        .set_assignee(&org, &row.id, Some("carol"), Some(row.version))
        .await
        .unwrap();
    let audit_before = store.audit_entries(Some(&org)).await.unwrap().len();
    // what the reviewer saw is gone
    let (d, e) = override_to_affected("stale");
    let err = store
        .decide(&org, &row.id, Some(row.version), &d, &e, now_ms())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains(&row.id)),
        "{err:?}"
    );
    assert!(matches!(
        store
            .set_assignee(&org, &row.id, None, Some(row.version))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let now = store.statement(&org, &row.id).await.unwrap().unwrap();
    assert_eq!(now.version, row.version + 1);
    assert_eq!(now.decision_id, None);
    assert_eq!(now.status, "not_affected");
    assert_eq!(now.assignee.as_deref(), Some("carol"));
    assert!(store.decisions(&org, &row.id).await.unwrap().is_empty());
    assert_eq!(
        store.audit_entries(Some(&org)).await.unwrap().len(),
        audit_before
    );
    // at the current version it goes through; an unknown statement is not found
    store
        .decide(&org, &row.id, Some(now.version), &d, &e, now_ms())
        .await
        .unwrap();
    assert!(matches!(
        store.decide(&org, "stm_nope", None, &d, &e, now_ms()).await,
        Err(StoreError::NotFound(_))
    ));
    // an effect that contradicts its action is refused before anything
    let wrong = Effect {
        decision: false,
        ..e.clone()
    };
    assert!(matches!(
        store
            .decide(&org, &row.id, None, &d, &wrong, now_ms())
            .await,
        Err(StoreError::Invalid(_))
    ));
    // the store is still usable after refusals (connections handed back)
    for _ in 0..10 {
        assert!(matches!(
            store.decide(&org, &row.id, Some(1), &d, &e, now_ms()).await,
            Err(StoreError::Conflict(_))
        ));
    }
    store.ping().await.unwrap();
}

async fn decide_many_is_all_or_nothing(store: Store) {
    let org = org(&store, "acme").await;
    let statements = (0..3)
        .map(|i| stmt(&format!("CVE-{i}"), "openssl", "not_affected", 0.5, "a"))
        .collect();
    store
        .record_analysis(&analysis(&org, DIGEST_A, REPO, "job_1", statements))
        .await
        .unwrap();
    let rows = rows(&store, &org, &all(DIGEST_A)).await;
    let item = |r: &StatementRow, version: Option<i64>| {
        (r.id.clone(), version, approve("batch"), approved(r))
    };
    // one stale version: nothing at all is written
    let batch = vec![
        item(&rows[0], Some(rows[0].version)),
        item(&rows[1], Some(rows[1].version + 7)),
        item(&rows[2], None),
    ];
    assert!(matches!(
        store.decide_many(&org, &batch, now_ms()).await,
        Err(StoreError::Conflict(_))
    ));
    // one unknown statement: nothing either
    let mut unknown = vec![item(&rows[0], None)];
    unknown.push(("stm_unknown".into(), None, approve("x"), approved(&rows[0])));
    assert!(matches!(
        store.decide_many(&org, &unknown, now_ms()).await,
        Err(StoreError::NotFound(_))
    ));
    // the same statement twice is refused
    let twice = vec![item(&rows[0], None), item(&rows[0], None)];
    assert!(matches!(
        store.decide_many(&org, &twice, now_ms()).await,
        Err(StoreError::Invalid(_))
    ));
    for r in &rows {
        let now = store.statement(&org, &r.id).await.unwrap().unwrap();
        assert_eq!((now.version, now.decision_id), (1, None));
        assert!(store.decisions(&org, &r.id).await.unwrap().is_empty());
    }
    // a good batch: every one, in the order given
    let good: Vec<_> = rows
        .iter()
        .rev()
        .map(|r| item(r, Some(r.version)))
        .collect();
    let done = store.decide_many(&org, &good, now_ms()).await.unwrap();
    assert_eq!(
        done.iter().map(|(s, _)| s.id.clone()).collect::<Vec<_>>(),
        rows.iter().rev().map(|r| r.id.clone()).collect::<Vec<_>>()
    );
    assert!(done
        .iter()
        .all(|(s, d)| s.decision_id.as_deref() == Some(d.id.as_str()) && s.version == 2));
    assert!(store
        .decide_many(&org, &[], now_ms())
        .await
        .unwrap()
        .is_empty());
}

async fn tenants_are_isolated(store: Store) {
    let a = org(&store, "a").await;
    let b = org(&store, "b").await;
    store
        .record_analysis(&analysis(
            &a,
            DIGEST_A,
            REPO,
            "job_1",
            vec![stmt("CVE-1", "openssl", "not_affected", 0.5, "a")],
        ))
        .await
        .unwrap();
    let row = by_vuln(&store, &a, DIGEST_A, "CVE-1").await;
    let (_, dec) = store
        .decide(
            &a,
            &row.id,
            None,
            &approve("mine"),
            &approved(&row),
            now_ms(),
        )
        .await
        .unwrap();
    let vex = store
        .add_vex_version(
            &a,
            DIGEST_A,
            &NewVexVersion {
                document_digest: digest_of(b"doc"),
                envelope_digest: None,
                cause: "analysis".into(),
                job_id: Some("job_1".into()),
                author: "vexxy".into(),
            },
        )
        .await
        .unwrap();
    let now = now_ms();
    // B sees none of it…
    assert!(store.statement(&b, &row.id).await.unwrap().is_none());
    let (listed, total) = store
        .statements(&b, &StatementFilter::default(), now)
        .await
        .unwrap();
    assert!(listed.is_empty() && total == 0);
    assert!(store.decisions(&b, &row.id).await.unwrap().is_empty());
    assert!(store.decision(&b, &dec.id).await.unwrap().is_none());
    assert!(store
        .active_decisions(&b, DIGEST_A)
        .await
        .unwrap()
        .is_empty());
    assert!(store.image(&b, DIGEST_A, now).await.unwrap().is_none());
    assert_eq!(
        store.images(&b, None, None, 100, 0, now).await.unwrap(),
        (vec![], 0)
    );
    assert!(store.vex_versions(&b, DIGEST_A).await.unwrap().is_empty());
    assert!(store
        .vex_version(&b, DIGEST_A, vex.version)
        .await
        .unwrap()
        .is_none());
    assert!(store.compliance(&b, now).await.unwrap().is_empty());
    let dash = store.dashboard(&b, now).await.unwrap();
    assert_eq!(
        (
            dash.images_seen,
            dash.images_analysed,
            dash.images_with_vex,
            dash.findings,
            dash.backlog,
            dash.decisions,
            dash.not_affected
        ),
        (0, 0, 0, 0, 0, 0, 0)
    );
    assert!(dash.by_status.is_empty());
    assert_eq!(
        (dash.oldest_backlog_at, dash.mean_time_to_decision_ms),
        (None, None)
    );
    assert_eq!(dash.weekly.len(), WEEKS);
    assert!(dash
        .weekly
        .iter()
        .all(|w| w.analyses == 0 && w.new_findings == 0 && w.decisions == 0));
    // …and changes none of it
    assert!(matches!(
        store
            .decide(&b, &row.id, None, &approve("theirs"), &approved(&row), now)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .decide_many(
                &b,
                &[(row.id.clone(), None, approve("x"), approved(&row))],
                now
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.set_assignee(&b, &row.id, Some("mallory"), None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .set_review_reasons(&b, &[(row.id.clone(), None)])
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .add_vex_version(
                &b,
                DIGEST_A,
                &NewVexVersion {
                    document_digest: digest_of(b"evil"),
                    envelope_digest: None,
                    cause: "decision".into(),
                    job_id: None,
                    author: "mallory".into(),
                }
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .set_vex_attestation(&b, DIGEST_A, vex.version, "{}")
            .await,
        Err(StoreError::NotFound(_))
    ));
    // B's own analysis of the same digest is its own, and offers nothing of A's
    let changes = store
        .record_analysis(&analysis(
            &b,
            DIGEST_B,
            REPO,
            "job_b",
            vec![stmt("CVE-1", "openssl", "not_affected", 0.5, "a")],
        ))
        .await
        .unwrap();
    assert_eq!(changes.offered, 0);
    let theirs = by_vuln(&store, &b, DIGEST_B, "CVE-1").await;
    assert_ne!(theirs.id, row.id);
    let unchanged = store.statement(&a, &row.id).await.unwrap().unwrap();
    assert_eq!(unchanged.assignee, None);
    assert_eq!(unchanged.decision_id.as_deref(), Some(dec.id.as_str()));
    assert_eq!(store.vex_versions(&a, DIGEST_A).await.unwrap(), [vex]);
}

fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

async fn vex_versions_increment_and_retention_keeps_their_blobs(store: Store) {
    let org = org(&store, "acme").await;
    store
        .record_analysis(&analysis(&org, DIGEST_A, REPO, "job_1", vec![]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let evidence = EvidenceStore::Local(LocalStore::new(dir.path()));
    let mut docs = Vec::new();
    for content in [&b"doc 1"[..], b"envelope 1", b"doc 2", b"doc 3", b"orphan"] {
        let digest = digest_of(content);
        store
            .touch_blob(&digest, content.len() as i64)
            .await
            .unwrap();
        assert_eq!(evidence.put(content.to_vec()).await.unwrap(), digest);
        docs.push(digest);
    }
    let new = |doc: &str, envelope: Option<&str>, cause: &str| NewVexVersion {
        document_digest: doc.into(),
        envelope_digest: envelope.map(Into::into),
        cause: cause.into(),
        job_id: None,
        author: "alice@example.com".into(),
    };
    let v1 = store
        .add_vex_version(&org, DIGEST_A, &new(&docs[0], Some(&docs[1]), "analysis"))
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    // two issuers at once: each gets its own number
    let n2 = new(&docs[2], None, "decision");
    let n3 = new(&docs[3], None, "reevaluation");
    let (x, y) = tokio::join!(
        store.add_vex_version(&org, DIGEST_A, &n2),
        store.add_vex_version(&org, DIGEST_A, &n3),
    );
    let got: BTreeSet<i64> = [x.unwrap().version, y.unwrap().version].into();
    assert_eq!(got, BTreeSet::from([2, 3]));
    let versions = store.vex_versions(&org, DIGEST_A).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    assert_eq!(
        store
            .image(&org, DIGEST_A, now_ms())
            .await
            .unwrap()
            .unwrap()
            .vex_version,
        3
    );
    store
        .set_vex_attestation(&org, DIGEST_A, 1, "{\"tag\":\"sha256-aaaa.att\"}")
        .await
        .unwrap();
    let one = store.vex_version(&org, DIGEST_A, 1).await.unwrap().unwrap();
    assert_eq!(
        one.attestation.as_deref(),
        Some("{\"tag\":\"sha256-aaaa.att\"}")
    );
    assert_eq!(one.envelope_digest.as_deref(), Some(docs[1].as_str()));
    assert!(store
        .vex_version(&org, DIGEST_A, 4)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.set_vex_attestation(&org, DIGEST_A, 4, "{}").await,
        Err(StoreError::NotFound(_))
    ));
    // refused: an unknown image, a cause, a digest
    assert!(matches!(
        store
            .add_vex_version(&org, DIGEST_B, &new(&docs[0], None, "analysis"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .add_vex_version(&org, DIGEST_A, &new(&docs[0], None, "whim"))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .add_vex_version(&org, DIGEST_A, &new("sha256:../x", None, "analysis"))
            .await,
        Err(StoreError::BadDigest(_))
    ));
    // retention: every blob is old, no artifact names any; those of VEX
    // versions stay, the orphan goes
    store
        .backdate_for_tests("job_none", 30 * 86_400_000)
        .await
        .unwrap();
    let swept = store
        .sweep(&evidence, 90 * 86_400_000, 3_600_000)
        .await
        .unwrap();
    assert_eq!(swept.blobs_deleted, 1);
    for kept in &docs[..4] {
        assert!(evidence.get(kept).await.unwrap().is_some(), "{kept} kept");
    }
    assert!(evidence.get(&docs[4]).await.unwrap().is_none());
}

async fn submit_and_claim(
    store: &Store,
    org: &str,
    key: &str,
    digest: Option<&str>,
) -> vexxy_store::jobs::Lease {
    let job = NewJob {
        org_id: org.into(),
        dedupe_key: key.into(),
        image_ref: format!("{REPO}:{key}"),
        image_digest: digest.map(Into::into),
        request: "{}".into(),
        callback_url: None,
        priority: 10,
        max_attempts: 3,
        timeout_ms: 60_000,
        key_id: None,
    };
    let Submitted::Created(job) = store
        .submit(job, 1000, month_window(now_ms()))
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    let lease = store.claim("w", 60_000).await.unwrap().unwrap();
    assert_eq!(lease.job.id, job.id);
    lease
}

async fn dashboard_and_compliance_count_a_known_set(store: Store) {
    let org = org(&store, "acme").await;
    // repository web: an older image, then a newer one; repository db: one
    let lease = submit_and_claim(&store, &org, "old", Some(DIGEST_A)).await;
    let old = analysis(
        &org,
        DIGEST_A,
        REPO,
        &lease.job.id,
        vec![
            stmt("CVE-1", "openssl", "not_affected", 0.9, "a"),
            stmt("CVE-2", "zlib", "affected", 0.9, "b"),
        ],
    );
    let done = store
        .complete_job(
            &lease,
            Completion {
                image_digest: Some(DIGEST_A),
                artifacts: &[],
                summary: "{}",
                attestation: None,
                webhook: None,
                analysis: Some(old),
            },
        )
        .await
        .unwrap();
    assert!(done.is_done());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .record_analysis(&analysis(
            &org,
            DIGEST_B,
            REPO,
            "job_new",
            vec![
                stmt("CVE-1", "openssl", "not_affected", 0.9, "a"),
                stmt("CVE-2", "zlib", "affected", 0.9, "b"),
                stmt("CVE-3", "curl", "under_investigation", 0.2, "c"),
                stmt("CVE-4", "bash", "not_affected", 0.4, "d"),
            ],
        ))
        .await
        .unwrap();
    store
        .record_analysis(&analysis(
            &org,
            DIGEST_C,
            "registry.example/shop/db",
            "job_db",
            vec![stmt("CVE-9", "postgres", "not_affected", 0.95, "e")],
        ))
        .await
        .unwrap();
    // an image analysed without findings
    store
        .record_analysis(&analysis(
            &org,
            "sha256:dddd",
            "registry.example/shop/empty",
            "job_empty",
            vec![],
        ))
        .await
        .unwrap();
    // decisions: CVE-4 of the new image approved a second after it was
    // seen, CVE-2 overridden to not_affected three seconds after
    let cve4 = by_vuln(&store, &org, DIGEST_B, "CVE-4").await;
    store
        .decide(
            &org,
            &cve4.id,
            None,
            &approve("fine"),
            &approved(&cve4),
            cve4.first_seen_at + 1000,
        )
        .await
        .unwrap();
    let cve2 = by_vuln(&store, &org, DIGEST_B, "CVE-2").await;
    let not_affected = (
        NewDecision {
            action: "override".into(),
            status: Some("not_affected".into()),
            justification: Some("inline_mitigations_already_exist".into()),
            ..approve("mitigated")
        },
        Effect {
            decision: true,
            status: "not_affected".into(),
            justification: Some("inline_mitigations_already_exist".into()),
        },
    );
    store
        .decide(
            &org,
            &cve2.id,
            None,
            &not_affected.0,
            &not_affected.1,
            cve2.first_seen_at + 3000,
        )
        .await
        .unwrap();
    store
        .add_vex_version(
            &org,
            DIGEST_B,
            &NewVexVersion {
                document_digest: digest_of(b"vex"),
                envelope_digest: None,
                cause: "decision".into(),
                job_id: None,
                author: "alice@example.com".into(),
            },
        )
        .await
        .unwrap();

    // (a little later, so the decisions are not in the future)
    let now = now_ms() + 10_000;
    let dash = store.dashboard(&org, now).await.unwrap();
    assert_eq!(dash.images_seen, 4);
    assert_eq!(dash.images_analysed, 3, "the empty image has no statements");
    assert_eq!(dash.images_with_vex, 1);
    assert_eq!(dash.findings, 2 + 4 + 1);
    // A: not_affected, affected; B: not_affected ×3 (CVE-1, CVE-2 overridden,
    // CVE-4), under_investigation; C: not_affected
    assert_eq!(
        dash.by_status,
        [
            ("affected".to_owned(), 1),
            ("not_affected".to_owned(), 5),
            ("under_investigation".to_owned(), 1),
        ]
    );
    assert_eq!(dash.not_affected, 5);
    // the queue: A's CVE-2 (affected) and B's CVE-3 (under investigation)
    assert_eq!(dash.backlog, 2);
    let a_cve2 = by_vuln(&store, &org, DIGEST_A, "CVE-2").await;
    let b_cve3 = by_vuln(&store, &org, DIGEST_B, "CVE-3").await;
    assert_eq!(
        dash.oldest_backlog_at,
        Some(a_cve2.first_seen_at.min(b_cve3.first_seen_at))
    );
    assert_eq!(dash.decisions, 2);
    assert_eq!(dash.mean_time_to_decision_ms, Some(2000));
    assert_eq!(dash.weekly.len(), WEEKS);
    let this_week = dash.weekly.last().unwrap();
    assert!(this_week.week_start <= now && now < this_week.week_start + WEEK_MS);
    // a Monday, 00:00 UTC
    let day = time::OffsetDateTime::from_unix_timestamp(this_week.week_start / 1000).unwrap();
    assert_eq!(day.weekday(), time::Weekday::Monday);
    assert_eq!((day.hour(), day.minute(), day.second()), (0, 0, 0));
    for pair in dash.weekly.windows(2) {
        assert_eq!(pair[1].week_start - pair[0].week_start, WEEK_MS);
    }
    // (summed over the weeks: the test may run across Monday 00:00)
    let total =
        |f: fn(&vexxy_store::review::WeekRow) -> i64| dash.weekly.iter().map(f).sum::<i64>();
    assert_eq!(total(|w| w.analyses), 1, "one completed job");
    assert_eq!(total(|w| w.new_findings), 7);
    assert_eq!(total(|w| w.decisions), 2);

    let compliance = store.compliance(&org, now).await.unwrap();
    let summary: Vec<_> = compliance
        .iter()
        .map(|c| {
            (
                c.repository.as_str(),
                c.image_digest.as_str(),
                c.images,
                c.total,
                c.not_affected,
                c.needs_fix,
                c.under_investigation,
                c.unreviewed,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("registry.example/shop/db", DIGEST_C, 1, 1, 1, 0, 0, 0),
            (
                "registry.example/shop/empty",
                "sha256:dddd",
                1,
                0,
                0,
                0,
                0,
                0
            ),
            (REPO, DIGEST_B, 2, 4, 3, 0, 1, 1),
        ]
    );

    // the image listing counts the same way
    let (images, total) = store
        .images(&org, Some(REPO), None, 10, 0, now)
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(images[0].digest, DIGEST_B, "most recently analysed first");
    let counts = |i: &vexxy_store::review::ImageRow| {
        (
            i.findings,
            i.not_affected,
            i.affected,
            i.under_investigation,
            i.unreviewed,
        )
    };
    assert_eq!(counts(&images[0]), (4, 3, 0, 1, 1));
    assert_eq!(counts(&images[1]), (2, 1, 1, 0, 1));
    assert_eq!(images[1].last_analysis_job, lease.job.id);
    let (found, total) = store
        .images(&org, None, Some("shop/d"), 10, 0, now)
        .await
        .unwrap();
    assert_eq!((found.len(), total), (1, 1));
    assert_eq!(found[0].digest, DIGEST_C);
    let (page, total) = store.images(&org, None, None, 2, 2, now).await.unwrap();
    assert_eq!((page.len(), total), (2, 4));

    // the gauges: every organisation, this one's numbers
    store.create_org("quiet", Tier::Free, None).await.unwrap();
    let gauges = store.review_gauges(now).await.unwrap();
    assert_eq!(gauges.len(), 2);
    let ours = gauges.iter().find(|g| g.0 == org).unwrap();
    assert_eq!((ours.1, ours.2, ours.3), (2, 4, 1));
    assert!(gauges
        .iter()
        .any(|g| g.0 != org && (g.1, g.2, g.3) == (0, 0, 0)));
}

async fn completing_a_job_stores_its_statements_atomically(store: Store) {
    let org = org(&store, "acme").await;
    let other = org_named(&store, "other").await;
    let lease = submit_and_claim(&store, &org, "one", None).await;
    let rec = analysis(
        &org,
        DIGEST_A,
        REPO,
        &lease.job.id,
        vec![
            stmt("CVE-1", "openssl", "not_affected", 0.9, "a"),
            stmt("CVE-2", "zlib", "affected", 0.9, "b"),
        ],
    );
    // a record of another organisation or job is refused, nothing written
    let mut foreign = rec.clone();
    foreign.org_id = other.clone();
    let completion = |analysis: AnalysisRecord| Completion {
        image_digest: Some(DIGEST_A),
        artifacts: &[],
        summary: "{\"total\":2}",
        attestation: None,
        webhook: None,
        analysis: Some(analysis),
    };
    assert!(matches!(
        store.complete_job(&lease, completion(foreign)).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(!store
        .job(None, &lease.job.id)
        .await
        .unwrap()
        .unwrap()
        .state
        .is_finished());
    let done = store
        .complete_job(&lease, completion(rec.clone()))
        .await
        .unwrap();
    let Completed::Done(Some(changes)) = done else {
        panic!("not done: {done:?}")
    };
    assert_eq!(changes.added.len(), 2);
    let job = store.job(None, &lease.job.id).await.unwrap().unwrap();
    assert_eq!(job.state, vexxy_store::JobState::Complete);
    assert_eq!(job.image_digest.as_deref(), Some(DIGEST_A));
    assert_eq!(rows(&store, &org, &all(DIGEST_A)).await.len(), 2);
    let image = store
        .image(&org, DIGEST_A, now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(image.last_analysis_job, lease.job.id);
    // completing twice: the lease is gone, nothing written
    let again = store.complete_job(&lease, completion(rec)).await.unwrap();
    assert_eq!(again, Completed::LeaseLost);
    assert!(again.changes().is_none());

    // a job cancelled under its worker: its statements are never stored
    let lost = submit_and_claim(&store, &org, "two", Some(DIGEST_B)).await;
    store.cancel(&org, None, &lost.job.id).await.unwrap();
    let rec = analysis(
        &org,
        DIGEST_B,
        REPO,
        &lost.job.id,
        vec![stmt("CVE-1", "openssl", "not_affected", 0.9, "a")],
    );
    let out = store
        .complete_job(
            &lost,
            Completion {
                image_digest: Some(DIGEST_B),
                artifacts: &[],
                summary: "{}",
                attestation: None,
                webhook: None,
                analysis: Some(rec),
            },
        )
        .await
        .unwrap();
    assert_eq!(out, Completed::LeaseLost);
    assert!(rows(&store, &org, &all(DIGEST_B)).await.is_empty());
    assert!(store
        .image(&org, DIGEST_B, now_ms())
        .await
        .unwrap()
        .is_none());
    // the request of a job, for its organisation only
    assert_eq!(
        store
            .job_request(Some(&org), &lost.job.id)
            .await
            .unwrap()
            .as_deref(),
        Some("{}")
    );
    assert_eq!(
        store
            .job_request(None, &lost.job.id)
            .await
            .unwrap()
            .as_deref(),
        Some("{}")
    );
    assert_eq!(
        store.job_request(Some(&other), &lost.job.id).await.unwrap(),
        None
    );
    assert_eq!(
        store.job_request(Some(&org), "job_nope").await.unwrap(),
        None
    );
    // the old entry points still complete, without statements
    let plain = submit_and_claim(&store, &org, "three", None).await;
    assert!(store.complete(&plain, None, &[], "{}", None).await.unwrap());
}

async fn org_named(store: &Store, name: &str) -> String {
    org(store, name).await
}

async fn settings_reasons_assignees_and_key_owners(store: Store) {
    let org = org(&store, "acme").await;
    assert_eq!(
        store.review_settings(&org).await.unwrap(),
        ReviewSettingsRow {
            review_below: 0.6,
            four_eyes: false,
            rerun_after_ms: None
        }
    );
    let settings = ReviewSettingsRow {
        review_below: 0.75,
        four_eyes: true,
        rerun_after_ms: Some(7 * 86_400_000),
    };
    store.set_review_settings(&org, &settings).await.unwrap();
    assert_eq!(store.review_settings(&org).await.unwrap(), settings);
    let changed = ReviewSettingsRow {
        review_below: 0.5,
        ..settings.clone()
    };
    store
        .set_review_settings_as(&org, &changed, Some("key_admin"))
        .await
        .unwrap();
    assert_eq!(store.review_settings(&org).await.unwrap(), changed);
    for bad in [-0.1, 1.1, f64::NAN] {
        assert!(matches!(
            store
                .set_review_settings(
                    &org,
                    &ReviewSettingsRow {
                        review_below: bad,
                        ..changed.clone()
                    }
                )
                .await,
            Err(StoreError::Invalid(_))
        ));
    }
    assert!(matches!(
        store.set_review_settings("org_nobody", &changed).await,
        Err(StoreError::NotFound(_))
    ));
    let audit = store.audit_entries(Some(&org)).await.unwrap();
    let settings_entries: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "review.settings")
        .collect();
    assert_eq!(settings_entries.len(), 2);
    assert_eq!(settings_entries[1].key_id.as_deref(), Some("key_admin"));
    assert!(settings_entries[1]
        .detail
        .as_deref()
        .unwrap()
        .contains("0.5"));

    // assignees, audited, versioned
    store
        .record_analysis(&analysis(
            &org,
            DIGEST_A,
            REPO,
            "job_1",
            vec![stmt("CVE-1", "openssl", "not_affected", 0.9, "a")],
        ))
        .await
        .unwrap();
    let row = by_vuln(&store, &org, DIGEST_A, "CVE-1").await;
    let assigned = store
        .set_assignee_as(&org, &row.id, Some("dave"), None, Some("key_lead"))
        .await
        .unwrap();
    assert_eq!(
        (assigned.assignee.as_deref(), assigned.version),
        (Some("dave"), 2)
    );
    let cleared = store
        .set_assignee(&org, &row.id, None, Some(2))
        .await
        .unwrap();
    assert_eq!((cleared.assignee, cleared.version), (None, 3));
    assert!(matches!(
        store
            .set_assignee(&org, &row.id, Some("bad\nname"), None)
            .await,
        Err(StoreError::Invalid(_))
    ));
    let (page, total) = store.org_audit(&org, 2, 0).await.unwrap();
    assert_eq!(
        total,
        store.audit_entries(Some(&org)).await.unwrap().len() as i64
    );
    assert_eq!(
        page.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
        ["review.assign", "review.assign"],
        "newest first"
    );
    let (rest, _) = store.org_audit(&org, 1000, 2).await.unwrap();
    assert_eq!(rest.last().unwrap().action, "create_org");

    // key owners
    let owned = store
        .create_key_for(&org, "laptop", Some("erin@example.com"))
        .await
        .unwrap();
    let plain = store.create_key(&org, "ci").await.unwrap();
    let caller = store.authenticate(&owned.secret).await.unwrap().unwrap();
    assert_eq!(caller.key_name, "laptop");
    assert_eq!(caller.owner.as_deref(), Some("erin@example.com"));
    assert_eq!(caller.who(), "erin@example.com");
    let caller = store.authenticate(&plain.secret).await.unwrap().unwrap();
    assert_eq!(
        (caller.key_name.as_str(), caller.owner.as_deref()),
        ("ci", None)
    );
    assert_eq!(caller.who(), "ci");
    assert!(matches!(
        store.create_key_for(&org, "x", Some(" ")).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn reruns_are_due_after_the_organisation_s_period(store: Store) {
    let org = org(&store, "acme").await;
    let lazy = org_named(&store, "lazy").await;
    let day = 86_400_000;
    store
        .set_review_settings(
            &org,
            &ReviewSettingsRow {
                rerun_after_ms: Some(day),
                ..ReviewSettingsRow::default()
            },
        )
        .await
        .unwrap();
    let mut run = analysis(&org, DIGEST_A, REPO, "job_run", vec![]);
    run.full_run = true;
    store.record_analysis(&run).await.unwrap();
    store
        .record_analysis(&analysis(
            &org,
            DIGEST_B,
            "registry.example/b",
            "job_static",
            vec![],
        ))
        .await
        .unwrap();
    // the other organisation never re-runs
    store
        .record_analysis(&analysis(&lazy, DIGEST_C, REPO, "job_lazy", vec![]))
        .await
        .unwrap();
    let now = now_ms();
    assert!(store
        .images_due_for_rerun(now, 10)
        .await
        .unwrap()
        .is_empty());
    let due = store
        .images_due_for_rerun(now + day + 1000, 10)
        .await
        .unwrap();
    let due: BTreeSet<_> = due.into_iter().collect();
    assert_eq!(
        due,
        BTreeSet::from([
            (org.clone(), DIGEST_A.to_owned(), "job_run".to_owned()),
            (org.clone(), DIGEST_B.to_owned(), "job_static".to_owned()),
        ])
    );
    // a job queued for the digest: not due again
    let job = NewJob {
        org_id: org.clone(),
        dedupe_key: "rerun".into(),
        image_ref: "elsewhere:1".into(),
        image_digest: Some(DIGEST_A.into()),
        request: "{}".into(),
        callback_url: None,
        priority: 10,
        max_attempts: 3,
        timeout_ms: 60_000,
        key_id: None,
    };
    store
        .submit(job, 1000, month_window(now_ms()))
        .await
        .unwrap();
    let due = store
        .images_due_for_rerun(now + day + 1000, 10)
        .await
        .unwrap();
    assert_eq!(
        due,
        [(org.clone(), DIGEST_B.to_owned(), "job_static".to_owned())]
    );
}
