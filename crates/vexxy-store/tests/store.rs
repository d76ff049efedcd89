//! The store's behaviour, each scenario run against SQLite and against the
//! real PostgreSQL (a fresh database per test).
#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, sync::Arc};

use vexxy_store::{
    jobs::{Cancelled, JobFilter, NewDelivery, NewJob, Submitted},
    retention::Swept,
    tenants::month_window,
    webhooks::AttemptResult,
    Artifact, EvidenceStore, JobState, LocalStore, Store, Tier,
};

/// Runs a scenario on a SQLite file and on PostgreSQL (where none can be
/// reached: `SKIP` outside CI, a failure in CI).
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
    keys_authenticate_and_revoke,
    submit_dedupes_and_enforces_quota,
    claim_takes_priority_then_age,
    cancel_fences_the_worker,
    expired_lease_requeues_and_completes_once,
    failures_retry_then_fail,
    concurrent_claims_never_share_a_job,
    webhook_outbox_records_attempts,
    retention_expires_evidence,
    listing_filters_and_pages,
    writes_are_probed_for_readiness,
);

fn new_job(org: &str, key: &str) -> NewJob {
    NewJob {
        org_id: org.into(),
        dedupe_key: key.into(),
        image_ref: format!("registry.example/{key}:1"),
        image_digest: None,
        request: "{}".into(),
        callback_url: None,
        priority: 10,
        max_attempts: 3,
        timeout_ms: 60_000,
        key_id: Some("key_test".into()),
    }
}

fn window() -> (i64, i64) {
    month_window(vexxy_store::now_ms())
}

async fn submit(store: &Store, job: NewJob) -> vexxy_store::Job {
    match store.submit(job, 1000, window()).await.unwrap() {
        Submitted::Created(j) => j,
        other => panic!("not created: {other:?}"),
    }
}

async fn keys_authenticate_and_revoke(store: Store) {
    let org = store
        .create_org("acme", Tier::Enterprise, None)
        .await
        .unwrap();
    assert_eq!(org.quota(), 1000);
    assert!(
        store.create_org("acme", Tier::Free, None).await.is_err(),
        "names are unique"
    );
    let key = store.create_key(&org.id, "ci").await.unwrap();
    assert!(key.secret.starts_with("vxk_") && key.secret.len() > 60);
    let caller = store
        .authenticate(&key.secret)
        .await
        .unwrap()
        .expect("valid key");
    assert_eq!(caller.org.id, org.id);
    assert_eq!(caller.key_id, key.id);
    assert!(store.authenticate("vxk_nope").await.unwrap().is_none());
    assert!(store
        .authenticate(&key.secret[..key.secret.len() - 1])
        .await
        .unwrap()
        .is_none());
    store.revoke_key(&key.id).await.unwrap();
    assert!(
        store.authenticate(&key.secret).await.unwrap().is_none(),
        "revoked"
    );
    let audit = store.audit_entries(Some(&org.id)).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["create_org", "create_key", "revoke_key"]);
}

async fn submit_dedupes_and_enforces_quota(store: Store) {
    let org = store
        .create_org("small", Tier::Professional, Some(2))
        .await
        .unwrap();
    let other = store
        .create_org("other", Tier::Professional, Some(2))
        .await
        .unwrap();
    let a = match store
        .submit(new_job(&org.id, "a"), 2, window())
        .await
        .unwrap()
    {
        Submitted::Created(j) => j,
        o => panic!("{o:?}"),
    };
    assert_eq!(a.state, JobState::Queued);
    match store
        .submit(new_job(&org.id, "a"), 2, window())
        .await
        .unwrap()
    {
        Submitted::Existing(j) => assert_eq!(j.id, a.id),
        o => panic!("identical request must return the existing job: {o:?}"),
    }
    // the same request from another organisation is its own job
    match store
        .submit(new_job(&other.id, "a"), 2, window())
        .await
        .unwrap()
    {
        Submitted::Created(j) => assert_ne!(j.id, a.id),
        o => panic!("{o:?}"),
    }
    submit(&store, new_job(&org.id, "b")).await;
    match store
        .submit(new_job(&org.id, "c"), 2, window())
        .await
        .unwrap()
    {
        Submitted::QuotaExceeded { used, limit } => assert_eq!((used, limit), (2, 2)),
        o => panic!("{o:?}"),
    }
    assert_eq!(
        store.usage(&org.id, window().0, window().1).await.unwrap(),
        2
    );
    // another organisation cannot see the job
    assert!(store.job(Some(&other.id), &a.id).await.unwrap().is_none());
    assert!(store.job(Some(&org.id), &a.id).await.unwrap().is_some());
}

async fn claim_takes_priority_then_age(store: Store) {
    let org = store.create_org("o", Tier::Ultimate, None).await.unwrap();
    let mut low = new_job(&org.id, "low");
    low.priority = Tier::Professional.priority();
    let low = submit(&store, low).await;
    let mut mid = new_job(&org.id, "mid");
    mid.priority = Tier::Enterprise.priority();
    let mid = submit(&store, mid).await;
    let mut high = new_job(&org.id, "high");
    high.priority = Tier::Ultimate.priority();
    let high = submit(&store, high).await;
    let order: Vec<String> = [
        store.claim("w", 60_000).await.unwrap().unwrap(),
        store.claim("w", 60_000).await.unwrap().unwrap(),
        store.claim("w", 60_000).await.unwrap().unwrap(),
    ]
    .into_iter()
    .map(|l| l.job.id)
    .collect();
    assert_eq!(order, [high.id, mid.id, low.id]);
    assert!(store.claim("w", 60_000).await.unwrap().is_none());
}

async fn cancel_fences_the_worker(store: Store) {
    let org = store
        .create_org("o", Tier::Professional, None)
        .await
        .unwrap();
    let other = store
        .create_org("p", Tier::Professional, None)
        .await
        .unwrap();
    let job = submit(&store, new_job(&org.id, "x")).await;
    let lease = store.claim("w1", 60_000).await.unwrap().unwrap();
    assert_eq!(lease.job.attempts, 1);
    assert!(store
        .heartbeat(&lease, 60_000, Some("cataloging"), 20, false)
        .await
        .unwrap());
    assert!(store
        .heartbeat(&lease, 60_000, Some("observing"), 50, true)
        .await
        .unwrap());
    assert_eq!(
        store.job(None, &job.id).await.unwrap().unwrap().state,
        JobState::Analyzing
    );
    assert!(
        matches!(
            store.cancel(&other.id, None, &job.id).await,
            Err(vexxy_store::StoreError::NotFound(_))
        ),
        "another organisation cannot cancel it"
    );
    assert!(matches!(
        store
            .cancel(&org.id, Some("key_test"), &job.id)
            .await
            .unwrap(),
        Cancelled::Cancelled(_)
    ));
    assert!(
        !store
            .heartbeat(&lease, 60_000, None, 60, true)
            .await
            .unwrap(),
        "the worker learns"
    );
    assert!(
        !store.complete(&lease, None, &[], "{}", None).await.unwrap(),
        "and cannot complete"
    );
    assert!(matches!(
        store
            .cancel(&org.id, Some("key_test"), &job.id)
            .await
            .unwrap(),
        Cancelled::AlreadyFinished(JobState::Cancelled)
    ));
    let states: Vec<JobState> = store
        .job_events(&job.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(
        states,
        [
            JobState::Queued,
            JobState::Running,
            JobState::Analyzing,
            JobState::Cancelled
        ]
    );
    // the submit and the cancel are in the audit log, by key
    let audit: Vec<(String, Option<String>, Option<String>)> = store
        .audit_entries(Some(&org.id))
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.job_id.as_deref() == Some(job.id.as_str()))
        .map(|a| (a.action, a.key_id, a.detail))
        .collect();
    let key = Some("key_test".to_owned());
    assert_eq!(
        audit,
        [
            ("submit".to_owned(), key.clone(), Some("queued".to_owned())),
            ("cancel".to_owned(), key, None),
        ]
    );
    // a cancelled request can be submitted again
    submit(&store, new_job(&org.id, "x")).await;
}

async fn expired_lease_requeues_and_completes_once(store: Store) {
    let org = store
        .create_org("o", Tier::Professional, None)
        .await
        .unwrap();
    let mut spec = new_job(&org.id, "x");
    spec.callback_url = Some("http://127.0.0.1:9/hook".into());
    let job = submit(&store, spec).await;
    let dead = store.claim("dead-worker", 1).await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let recovered = store.recover_expired(0, |_| None).await.unwrap();
    assert_eq!(recovered, vec![(job.id.clone(), JobState::Queued)]);
    let alive = store.claim("alive-worker", 60_000).await.unwrap().unwrap();
    assert_eq!(alive.job.id, job.id);
    assert_eq!(alive.job.attempts, 2);
    assert!(alive.token > dead.token);
    // the dead worker wakes up: nothing it writes counts
    assert!(!store
        .heartbeat(&dead, 60_000, None, 10, false)
        .await
        .unwrap());
    assert!(!store.complete(&dead, None, &[], "{}", None).await.unwrap());
    assert!(store
        .fail(&dead, "late", true, 0, None)
        .await
        .unwrap()
        .is_none());
    let hook = || {
        Some(NewDelivery {
            url: "http://127.0.0.1:9/hook".into(),
            payload: "{}".into(),
        })
    };
    assert!(store
        .complete(&alive, Some("sha256:ab"), &[], "{\"total\":0}", hook())
        .await
        .unwrap());
    assert!(
        !store
            .complete(&alive, None, &[], "{}", hook())
            .await
            .unwrap(),
        "completes once"
    );
    let events = store.job_events(&job.id).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.state == JobState::Complete)
            .count(),
        1
    );
    assert_eq!(
        store.deliveries(&job.id).await.unwrap().len(),
        1,
        "one webhook"
    );
    let stored = store.job(None, &job.id).await.unwrap().unwrap();
    assert_eq!(stored.state, JobState::Complete);
    assert_eq!(stored.image_digest.as_deref(), Some("sha256:ab"));
}

async fn failures_retry_then_fail(store: Store) {
    let org = store
        .create_org("o", Tier::Professional, None)
        .await
        .unwrap();
    let mut spec = new_job(&org.id, "x");
    spec.max_attempts = 2;
    let job = submit(&store, spec).await;
    let l1 = store.claim("w", 60_000).await.unwrap().unwrap();
    assert_eq!(
        store
            .fail(&l1, "registry unreachable", true, 60_000, None)
            .await
            .unwrap(),
        Some(JobState::Queued)
    );
    assert!(
        store.claim("w", 60_000).await.unwrap().is_none(),
        "backoff holds it"
    );
    let l1b = vexxy_store::jobs::Lease {
        token: l1.token,
        ..l1.clone()
    };
    assert!(store
        .fail(&l1b, "again", true, 0, None)
        .await
        .unwrap()
        .is_none());
    // fast-forward the backoff
    let l2 = loop {
        store.recover_expired(0, |_| None).await.unwrap();
        if let Some(l) = claim_ignoring_backoff(&store, &job.id).await {
            break l;
        }
    };
    assert_eq!(l2.job.attempts, 2);
    assert_eq!(
        store
            .fail(&l2, "still unreachable", true, 0, None)
            .await
            .unwrap(),
        Some(JobState::Failed)
    );
    let failed = store.job(None, &job.id).await.unwrap().unwrap();
    assert_eq!(failed.error.as_deref(), Some("still unreachable"));
    // a failed request may be submitted again
    submit(&store, new_job(&org.id, "x")).await;
}

/// Makes the job runnable now and claims it.
async fn claim_ignoring_backoff(store: &Store, _id: &str) -> Option<vexxy_store::jobs::Lease> {
    store.expedite_for_tests().await.unwrap();
    store.claim("w", 60_000).await.unwrap()
}

async fn concurrent_claims_never_share_a_job(store: Store) {
    let org = store
        .create_org("o", Tier::Professional, None)
        .await
        .unwrap();
    for i in 0..24 {
        submit(&store, new_job(&org.id, &format!("j{i}"))).await;
    }
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(l) = store.claim(&format!("w{w}"), 60_000).await.unwrap() {
                got.push(l.job.id.clone());
                assert!(store.complete(&l, None, &[], "{}", None).await.unwrap());
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 24);
    assert_eq!(unique.len(), 24);
}

async fn webhook_outbox_records_attempts(store: Store) {
    let org = store
        .create_org("o", Tier::Professional, None)
        .await
        .unwrap();
    let job = submit(&store, new_job(&org.id, "x")).await;
    let lease = store.claim("w", 60_000).await.unwrap().unwrap();
    let hook = NewDelivery {
        url: "http://127.0.0.1:9/hook".into(),
        payload: "{\"a\":1}".into(),
    };
    assert!(store
        .complete(&lease, None, &[], "{}", Some(hook))
        .await
        .unwrap());
    let d = store
        .claim_delivery("disp", 60_000)
        .await
        .unwrap()
        .expect("due");
    assert!(
        store
            .claim_delivery("disp2", 60_000)
            .await
            .unwrap()
            .is_none(),
        "leased"
    );
    assert_eq!(d.payload, "{\"a\":1}");
    store
        .record_attempt(
            &d,
            &AttemptResult {
                status_code: Some(500),
                error: Some("http 500".into()),
                duration_ms: 3,
                delivered: false,
                retry_in_ms: Some(0),
            },
        )
        .await
        .unwrap();
    let d = store
        .claim_delivery("disp", 60_000)
        .await
        .unwrap()
        .expect("retry due");
    assert_eq!(d.attempts, 1);
    store
        .record_attempt(
            &d,
            &AttemptResult {
                status_code: Some(204),
                error: None,
                duration_ms: 2,
                delivered: true,
                retry_in_ms: None,
            },
        )
        .await
        .unwrap();
    assert!(store
        .claim_delivery("disp", 60_000)
        .await
        .unwrap()
        .is_none());
    let recs = store.deliveries(&job.id).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].state, "delivered");
    assert_eq!(recs[0].attempts, 2);
    let attempts = store.delivery_attempts(&recs[0].id).await.unwrap();
    let codes: Vec<Option<i64>> = attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(204)]);
}

async fn retention_expires_evidence(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let evidence = EvidenceStore::Local(LocalStore::new(dir.path()));
    let org = store
        .create_org("o", Tier::Professional, None)
        .await
        .unwrap();
    let job = submit(&store, new_job(&org.id, "old")).await;
    let lease = store.claim("w", 60_000).await.unwrap().unwrap();
    let bytes = b"{\"statements\":[]}".to_vec();
    let digest = {
        let d = format!("sha256:{}", hex_sha256(&bytes));
        store.touch_blob(&d, bytes.len() as i64).await.unwrap();
        assert_eq!(evidence.put(bytes.clone()).await.unwrap(), d);
        d
    };
    let art = Artifact {
        name: "vex.openvex.json".into(),
        digest: digest.clone(),
        size: 17,
        media_type: "application/json".into(),
    };
    assert!(store
        .complete(&lease, None, &[art], "{}", None)
        .await
        .unwrap());
    // nothing is old enough yet
    assert_eq!(
        store
            .sweep(&evidence, 90 * 86_400_000, 3_600_000)
            .await
            .unwrap(),
        Swept::default()
    );
    store
        .backdate_for_tests(&job.id, 91 * 86_400_000)
        .await
        .unwrap();
    let swept = store
        .sweep(&evidence, 90 * 86_400_000, 3_600_000)
        .await
        .unwrap();
    assert_eq!(
        swept,
        Swept {
            jobs_expired: 1,
            blobs_deleted: 1,
            sessions_expired: 0,
            statistics_stale: false,
        }
    );
    assert!(evidence.get(&digest).await.unwrap().is_none());
    assert!(store.artifacts(&job.id).await.unwrap().is_empty());
    assert!(store
        .job(None, &job.id)
        .await
        .unwrap()
        .unwrap()
        .expired_at
        .is_some());
    // the request may run again
    submit(&store, new_job(&org.id, "old")).await;
}

async fn listing_filters_and_pages(store: Store) {
    let org = store
        .create_org("o", Tier::Professional, None)
        .await
        .unwrap();
    for i in 0..5 {
        submit(&store, new_job(&org.id, &format!("nginx{i}"))).await;
    }
    submit(&store, new_job(&org.id, "redis")).await;
    let l = store.claim("w", 60_000).await.unwrap().unwrap();
    assert!(store.complete(&l, None, &[], "{}", None).await.unwrap());
    let all = store
        .list_jobs(
            &org.id,
            &JobFilter {
                page: 1,
                per_page: 4,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((all.0.len(), all.1), (4, 6));
    let page2 = store
        .list_jobs(
            &org.id,
            &JobFilter {
                page: 2,
                per_page: 4,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page2.0.len(), 2);
    let nginx = store
        .list_jobs(
            &org.id,
            &JobFilter {
                image: Some("nginx".into()),
                page: 1,
                per_page: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(nginx.1, 5);
    let done = store
        .list_jobs(
            &org.id,
            &JobFilter {
                state: Some(JobState::Complete),
                page: 1,
                per_page: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(done.1, 1);
    // a LIKE wildcard is matched literally
    let wild = store
        .list_jobs(
            &org.id,
            &JobFilter {
                image: Some("%".into()),
                page: 1,
                per_page: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(wild.1, 0);
}

fn hex_sha256(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// A job whose worker died on its last attempt fails, and its callback is
/// queued with the failure, in one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_lost_on_its_last_attempt_fails_with_its_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite_in(dir.path()).await.unwrap();
    let org = store
        .create_org("o", Tier::Professional, None)
        .await
        .unwrap();
    let mut spec = new_job(&org.id, "x");
    spec.max_attempts = 1;
    spec.request = "{\"callback_url\": \"http://127.0.0.1:9/hook\"}".into();
    let job = submit(&store, spec).await;
    let lease = store.claim("dead", 1).await.unwrap().unwrap();
    assert_eq!(
        lease.job.request.as_deref(),
        Some("{\"callback_url\": \"http://127.0.0.1:9/hook\"}"),
        "claims load the request"
    );
    assert!(
        store
            .job(None, &job.id)
            .await
            .unwrap()
            .unwrap()
            .request
            .is_none(),
        "status reads do not"
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let recovered = store
        .recover_expired(0, |j| {
            assert!(j.request.is_some());
            Some(NewDelivery {
                url: "http://127.0.0.1:9/hook".into(),
                payload: format!("{{\"job\":\"{}\"}}", j.id),
            })
        })
        .await
        .unwrap();
    assert_eq!(recovered, vec![(job.id.clone(), JobState::Failed)]);
    let d = store.deliveries(&job.id).await.unwrap();
    assert_eq!(d.len(), 1);
    assert!(store
        .job(None, &job.id)
        .await
        .unwrap()
        .unwrap()
        .error
        .unwrap()
        .contains("stopped heartbeating"));
}

/// The readiness probes: a write that commits, and for local disks the
/// free space kept in reserve. The evidence probe is not a blob.
async fn writes_are_probed_for_readiness(store: Store) {
    let quick = std::time::Duration::from_secs(2);
    store.check_writable(0, quick).await.unwrap();
    store.check_writable(0, quick).await.unwrap();
    let reserve = store.check_writable(u64::MAX, quick).await;
    match store.backend() {
        vexxy_store::Backend::Sqlite => {
            let err = reserve.expect_err("no disk has that much free");
            assert!(
                matches!(err, vexxy_store::StoreError::Full { .. })
                    && err.is_unavailable()
                    && err.is_full(),
                "{err}"
            );
        }
        // no local disk to look at
        vexxy_store::Backend::Postgres => reserve.unwrap(),
    }
    let dir = tempfile::tempdir().unwrap();
    let evidence = EvidenceStore::Local(LocalStore::new(dir.path().join("evidence")));
    evidence.check_writable(0).await.unwrap();
    assert_eq!(evidence.list().await.unwrap(), Vec::<String>::new());
    let err = evidence.check_writable(u64::MAX).await.unwrap_err();
    assert!(
        err.is_unavailable() && err.to_string().contains("evidence"),
        "{err}"
    );
}
