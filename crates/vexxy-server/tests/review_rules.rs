//! The review queue's rule exists twice: in Rust
//! (`vexxy_review::StatementRecord::review_reason`, applied when an
//! analysis is stored) and in SQL (re-applied to every stored statement
//! when an organisation changes its settings, in the same transaction).
//! Case by case, on SQLite and on the real PostgreSQL, the two agree.
#![allow(clippy::unwrap_used)]

use vexxy_model::{
    Decider, Ecosystem, Finding, FixState, Justification, PackageRef, Severity, Verdict,
    Vulnerability,
};
use vexxy_review::{ReviewSettings, StatementRecord};
use vexxy_store::{
    review::{AnalysisRecord, ReviewSettingsRow, StatementFilter},
    Store, Tier,
};

/// Every automated status × fix state × confidence × severity.
fn records() -> Vec<StatementRecord> {
    let by = || Decider::automated("test");
    let verdicts: Vec<(&str, Verdict)> = vec![
        ("ui", Verdict::under_investigation(by())),
        (
            "na",
            Verdict::not_affected(Justification::VulnerableCodeNotInExecutePath, by()),
        ),
        (
            "af",
            Verdict::new(
                vexxy_model::Status::Affected,
                None,
                None,
                Some("upgrade".into()),
                by(),
            )
            .unwrap(),
        ),
        (
            "fx",
            Verdict::new(vexxy_model::Status::Fixed, None, None, None, by()).unwrap(),
        ),
    ];
    let mut out = Vec::new();
    let mut n = 0;
    for (tag, verdict) in &verdicts {
        for fix in [
            FixState::Fixed,
            FixState::NotFixed,
            FixState::WontFix,
            FixState::Unknown,
        ] {
            for confidence in [0.0, 0.3, 0.594, 0.595, 0.6, 0.61, 0.75, 0.9, 1.0] {
                for severity in [
                    Severity::Unknown,
                    Severity::Low,
                    Severity::Medium,
                    Severity::High,
                    Severity::Critical,
                ] {
                    n += 1;
                    let finding = Finding {
                        vulnerability: Vulnerability {
                            id: format!("CVE-2000-{n:05}"),
                            severity,
                            ..Vulnerability::default()
                        },
                        package: PackageRef {
                            name: format!("pkg-{tag}"),
                            version: "1.0".into(),
                            ecosystem: Ecosystem::Deb,
                            purl: None,
                            source_name: None,
                        },
                        fixed_versions: Vec::new(),
                        fix_state: fix.clone(),
                        reported_by: None,
                    };
                    let v = verdict
                        .clone()
                        .with_confidence(vexxy_model::Confidence::clamped(confidence));
                    out.push(StatementRecord::of(&finding, v));
                }
            }
        }
    }
    out
}

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

both!(the_settings_sql_and_the_rust_rule_agree);

async fn the_settings_sql_and_the_rust_rule_agree(store: Store) {
    let org = store
        .create_org("rules", Tier::Enterprise, None)
        .await
        .unwrap();
    let records = records();
    let initial = ReviewSettings::default();
    let digest = format!("sha256:{}", "c".repeat(64));
    store
        .record_analysis(&AnalysisRecord {
            org_id: org.id.clone(),
            image_digest: digest.clone(),
            repository: "registry.example/rules".into(),
            reference: "registry.example/rules:1".into(),
            job_id: "job-1".into(),
            full_run: true,
            statements: records
                .iter()
                .map(|r| vexxy_server::review::new_statement(r, &initial))
                .collect(),
        })
        .await
        .unwrap();
    for (review_below, four_eyes) in [
        (0.6, false),
        (0.6, true),
        (0.8, false),
        (0.0, true),
        (1.0, true),
    ] {
        let row = ReviewSettingsRow {
            review_below,
            four_eyes,
            rerun_after_ms: None,
        };
        store.set_review_settings(&org.id, &row).await.unwrap();
        let rules = vexxy_server::review::settings(&row);
        let (rows, total) = store
            .statements(
                &org.id,
                &StatementFilter {
                    limit: Some(1000),
                    ..StatementFilter::default()
                },
                vexxy_store::now_ms(),
            )
            .await
            .unwrap();
        assert_eq!(total as usize, records.len());
        let mut page = rows;
        let mut offset = page.len() as i64;
        while (offset as usize) < records.len() {
            let (more, _) = store
                .statements(
                    &org.id,
                    &StatementFilter {
                        limit: Some(1000),
                        offset: Some(offset),
                        ..StatementFilter::default()
                    },
                    vexxy_store::now_ms(),
                )
                .await
                .unwrap();
            offset += more.len() as i64;
            page.extend(more);
        }
        for row in &page {
            let record = StatementRecord::from_json(&row.record).unwrap();
            assert_eq!(
                row.review_reason.as_deref(),
                record.review_reason(&rules).map(|r| r.as_str()),
                "{} ({} {:?} {} {:?}) at {review_below} four_eyes={four_eyes}",
                row.id,
                record.verdict.status(),
                record.fix_state,
                record.verdict.confidence,
                record.severity
            );
        }
    }
}
