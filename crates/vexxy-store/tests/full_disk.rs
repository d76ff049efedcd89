//! The database on a full disk: SQLite on a small tmpfs (root only:
//! `SKIP` outside CI, a failure in CI) filled to the last byte while
//! workers and submitters keep writing. Every write fails quickly and
//! cleanly, no caller is told of a state that was not stored, reads and
//! authentication keep working, and once space is freed the same store
//! writes again, without being reopened.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use vexxy_store::{
    jobs::{NewJob, Submitted},
    tenants::month_window,
    JobState, Store, StoreError, Tier,
};

fn new_job(org: &str, key: &str, request_bytes: usize) -> NewJob {
    NewJob {
        org_id: org.into(),
        dedupe_key: key.into(),
        image_ref: format!("registry.example/{key}:1"),
        image_digest: None,
        request: format!("{{\"pad\":\"{}\"}}", "x".repeat(request_bytes)),
        callback_url: None,
        priority: 10,
        max_attempts: 3,
        timeout_ms: 60_000,
        key_id: None,
    }
}

/// Longest a write may take on a full disk: it fails, it does not wait.
const QUICK: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_fails_writes_cleanly_and_they_work_again_once_freed() {
    if !vexxy_testkit::require_root("mounting a small tmpfs to fill") {
        return;
    }
    let fs = vexxy_testkit::Tmpfs::mount("16m");
    let store = Store::open_sqlite_in(fs.path()).await.unwrap();
    let org = store
        .create_org("acme", Tier::Ultimate, None)
        .await
        .unwrap();
    let key = store.create_key(&org.id, "ci").await.unwrap();
    let window = month_window(vexxy_store::now_ms());
    let mut queued = Vec::new();
    for i in 0..12 {
        match store
            .submit(new_job(&org.id, &format!("j{i}"), 50_000), 1000, window)
            .await
            .unwrap()
        {
            Submitted::Created(job) => queued.push(job.id),
            other => panic!("{other:?}"),
        }
    }
    let mut leases = Vec::new();
    for _ in 0..6 {
        leases.push(store.claim("w", 600_000).await.unwrap().unwrap());
    }
    store.check_writable(0, QUICK).await.unwrap();

    let filler = fs.fill();
    assert_eq!(vexxy_store::free_space(fs.path()).unwrap(), 0);
    let err = store
        .check_writable(1 << 20, QUICK)
        .await
        .expect_err("below the reserve");
    assert!(
        matches!(err, StoreError::Full { .. }) && err.is_unavailable(),
        "{err}"
    );

    // workers and submitters keep writing, all at once
    let mut tasks = tokio::task::JoinSet::new();
    for (i, lease) in leases.iter().cloned().enumerate() {
        let store = store.clone();
        tasks.spawn(async move {
            let t = Instant::now();
            let beat = store
                .heartbeat(&lease, 600_000, Some("observing"), 50, true)
                .await;
            let beat_took = t.elapsed();
            let t = Instant::now();
            let failed = store.fail(&lease, &"e".repeat(3000), true, 0, None).await;
            let fail_took = t.elapsed();
            let t = Instant::now();
            let again = store.heartbeat(&lease, 600_000, None, 60, true).await;
            let again_took = t.elapsed();
            for (what, took) in [
                ("heartbeat", beat_took),
                ("fail", fail_took),
                ("heartbeat", again_took),
            ] {
                assert!(
                    took < QUICK,
                    "lease {i}: {what} took {took:?} on a full disk"
                );
            }
            Outcome::Lease(i, beat, failed, again)
        });
    }
    for n in 0..3 {
        let store = store.clone();
        let org = org.id.clone();
        tasks.spawn(async move {
            let mut out = Vec::new();
            for i in 0..4 {
                let t = Instant::now();
                let r = store
                    .submit(new_job(&org, &format!("new{n}-{i}"), 200_000), 1000, window)
                    .await;
                assert!(
                    t.elapsed() < QUICK,
                    "a submit took {:?} on a full disk",
                    t.elapsed()
                );
                out.push(r);
            }
            Outcome::Submits(out)
        });
    }
    let mut reported = Vec::new();
    let mut created = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Outcome::Lease(i, beat, failed, again) => reported.push((i, beat, failed, again)),
            Outcome::Submits(list) => {
                for r in list {
                    match r {
                        Ok(Submitted::Created(job)) => created.push(job.id),
                        Ok(other) => panic!("{other:?}"),
                        Err(e) => assert!(e.is_unavailable(), "a submit failed with {e}"),
                    }
                }
            }
        }
    }
    let err = store
        .check_writable(0, QUICK)
        .await
        .expect_err("the write probe fails on a full disk");
    assert!(err.is_unavailable(), "{err}");

    // reads and authentication work on a full disk
    let t = Instant::now();
    let caller = store.authenticate(&key.secret).await.unwrap();
    assert_eq!(caller.map(|c| c.org.id), Some(org.id.clone()));
    assert!(t.elapsed() < QUICK);

    // what callers were told is what is stored: on every connection of
    // the pool (a reused connection could show its own unstored writes)
    // and on a connection of another pool
    let other = Store::open_sqlite_in(fs.path()).await.unwrap();
    for (i, beat, failed, again) in &reported {
        let lease = &leases[*i];
        let want = match failed {
            Ok(Some(state)) => *state,
            Ok(None) => panic!("lease {i}: fail() says the lease was lost"),
            Err(e) => {
                assert!(e.is_unavailable(), "lease {i}: fail() failed with {e}");
                if matches!(again, Ok(true)) || matches!(beat, Ok(true)) {
                    JobState::Analyzing
                } else {
                    JobState::Running
                }
            }
        };
        for reader in [&store, &store, &store, &store, &store, &other] {
            let job = reader.job(None, &lease.job.id).await.unwrap().unwrap();
            assert_eq!(
                (job.state, job.attempts),
                (want, 1),
                "lease {i}: heartbeat {beat:?}, fail {failed:?}, heartbeat {again:?}"
            );
        }
    }
    let (_, total) = other
        .list_jobs(
            &org.id,
            &vexxy_store::jobs::JobFilter {
                page: 1,
                per_page: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        total as usize,
        queued.len() + created.len(),
        "only reported submits are stored"
    );

    // space again: the same store writes, promptly
    std::fs::remove_file(filler).unwrap();
    store.check_writable(1 << 20, QUICK).await.unwrap();
    for (i, _, failed, _) in &reported {
        if failed.is_err() {
            let t = Instant::now();
            let state = store
                .fail(&leases[*i], "again", true, 0, None)
                .await
                .unwrap();
            assert_eq!(state, Some(JobState::Queued));
            assert!(t.elapsed() < QUICK);
        }
    }
    store.expedite_for_tests().await.unwrap();
    let mut claimed = 0;
    loop {
        let t = Instant::now();
        let lease = store.claim("w2", 600_000).await.unwrap();
        assert!(t.elapsed() < QUICK, "a claim took {:?}", t.elapsed());
        let Some(lease) = lease else { break };
        store.complete(&lease, None, &[], "{}", None).await.unwrap();
        claimed += 1;
    }
    assert_eq!(claimed, queued.len() + created.len());
    other.close().await;
    store.close().await;
}

enum Outcome {
    Lease(
        usize,
        Result<bool, StoreError>,
        Result<Option<JobState>, StoreError>,
        Result<bool, StoreError>,
    ),
    Submits(Vec<Result<Submitted, StoreError>>),
}
