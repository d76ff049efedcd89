//! The rootfs cache across threads and processes: one unpack per key,
//! leases protect entries from eviction (also held by another process),
//! LRU eviction under a size limit, no leftovers from failures.

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Barrier,
    },
    thread,
    time::Duration,
};

use vexxy_image::{EvictReport, ImageError, RootfsCache, RootfsLease, UnpackReport};

/// Content bytes each fake unpack reports.
const CONTENT: u64 = 10_000;
/// What the cache records for one fake entry: the content plus one entry's
/// overhead (the root directory).
const ENTRY: u64 = CONTENT + 4096;

const KEY_A: &str = "aaaa";
const KEY_B: &str = "bbbb";
const KEY_C: &str = "cccc";
const KEY_D: &str = "dddd";

/// Writes one file and reports [`CONTENT`] bytes.
fn fake_unpack(dir: &Path) -> Result<UnpackReport, ImageError> {
    fs::create_dir(dir.join("etc")).expect("mkdir etc");
    fs::write(dir.join("etc/os-release"), "ID=test\n").expect("write os-release");
    Ok(UnpackReport {
        bytes_written: CONTENT,
        ..UnpackReport::default()
    })
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read cache dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn complete(base: &Path, key: &str) -> bool {
    base.join(key).join(".vexxy-complete").is_file()
}

#[test]
fn concurrent_acquires_of_one_key_unpack_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = RootfsCache::open(tmp.path().join("rootfs"), u64::MAX).expect("open");
    let calls = AtomicUsize::new(0);
    let start = Barrier::new(8);
    // the leases come back to this thread and live until the end: the
    // first holder's shared lock must not block the others' acquire
    let results: Vec<(RootfsLease, bool)> = thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let (lease, report) = cache
                        .acquire(KEY_A, |dir| {
                            calls.fetch_add(1, Ordering::SeqCst);
                            thread::sleep(Duration::from_millis(300));
                            fake_unpack(dir)
                        })
                        .expect("acquire");
                    (lease, report.is_some())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1, "unpack must run once");
    assert_eq!(results.iter().filter(|(_, unpacked)| *unpacked).count(), 1);
    let expected = cache.base().join(KEY_A);
    for (lease, _) in &results {
        assert_eq!(lease.path(), expected);
        assert_eq!(
            fs::read_to_string(lease.path().join("etc/os-release")).expect("read"),
            "ID=test\n"
        );
        assert!(lease.path().join(".vexxy-complete").is_file());
    }
    assert_eq!(
        names(cache.base()),
        vec!["aaaa", "aaaa.lock", "aaaa.unpack"]
    );
}

const HOLD_BASE: &str = "VEXXY_TEST_ROOTFS_HOLD_BASE";
const HOLD_KEY: &str = "VEXXY_TEST_ROOTFS_HOLD_KEY";
/// What the child prints once it holds its lease.
const HELD: &str = "VEXXY-LEASE-HELD";

/// Run by [`a_lease_held_by_another_process_blocks_eviction`] in a child
/// process: holds a lease until its stdin closes.
#[test]
#[ignore = "helper: run in a child process by another test"]
fn child_holds_a_lease() {
    let (Some(base), Some(key)) = (std::env::var_os(HOLD_BASE), std::env::var(HOLD_KEY).ok())
    else {
        return;
    };
    let cache = RootfsCache::open(PathBuf::from(base), u64::MAX).expect("open");
    let (lease, report) = cache
        .acquire(&key, |_| panic!("the parent unpacked it"))
        .expect("acquire");
    assert!(report.is_none());
    let mut out = std::io::stdout();
    writeln!(out, "{HELD} {}", lease.path().display()).expect("stdout");
    out.flush().expect("flush");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(lease);
}

#[test]
fn a_lease_held_by_another_process_blocks_eviction() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("rootfs");
    let cache = RootfsCache::open(&base, 0).expect("open");
    let (lease, _) = cache.acquire(KEY_A, fake_unpack).expect("acquire");
    drop(lease);
    // over the limit and unused: acquire's own eviction spared it only
    // because it had just been acquired
    assert!(complete(&base, KEY_A));

    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "--exact",
            "child_holds_a_lease",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLD_BASE, &base)
        .env(HOLD_KEY, KEY_A)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the test binary");
    // libtest prints `test child_holds_a_lease ... ` before the test's own
    // output, on the same line; read on a thread so a silent child cannot
    // hang this test
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(HELD) {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child process did not take its lease");
    }

    let report = cache.evict().expect("evict");
    assert!(
        complete(&base, KEY_A),
        "evicted an entry another process uses"
    );
    assert_eq!(report.skipped_in_use, vec![KEY_A.to_owned()]);
    assert!(report.evicted.is_empty());
    assert_eq!(report.total_bytes, ENTRY);

    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());
    let report = cache.evict().expect("evict");
    assert_eq!(report.evicted, vec![KEY_A.to_owned()]);
    assert_eq!(report.freed_bytes, ENTRY);
    assert_eq!(report.total_bytes, 0);
    assert!(names(&base).is_empty(), "{:?}", names(&base));
}

#[test]
fn over_the_limit_evicts_least_recently_used_unlocked_entries() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("rootfs");
    let cache = RootfsCache::open(&base, 3 * ENTRY).expect("open");
    let step = || thread::sleep(Duration::from_millis(20));

    let (a, _) = cache.acquire(KEY_A, fake_unpack).expect("a"); // oldest, kept in use
    step();
    drop(cache.acquire(KEY_B, fake_unpack).expect("b"));
    step();
    drop(cache.acquire(KEY_C, fake_unpack).expect("c"));
    step();
    let (lease, report) = cache.acquire(KEY_B, fake_unpack).expect("b again");
    assert!(report.is_none(), "b is cached");
    drop(lease); // b is now more recently used than c
    step();
    let (d, report) = cache.acquire(KEY_D, fake_unpack).expect("d");
    assert!(report.is_some());

    // 4 entries over a limit of 3: c, the least recently used unlocked one, goes
    assert!(complete(&base, KEY_A), "in use");
    assert!(complete(&base, KEY_B));
    assert!(!base.join(KEY_C).exists(), "least recently used");
    assert!(complete(&base, KEY_D), "just acquired");
    let nothing_to_do = EvictReport {
        total_bytes: 3 * ENTRY,
        ..EvictReport::default()
    };
    assert_eq!(cache.evict().expect("evict"), nothing_to_do);

    // a tighter limit: b goes, a and d are in use
    let tight = RootfsCache::open(&base, ENTRY).expect("open");
    let report = tight.evict().expect("evict");
    assert_eq!(report.evicted, vec![KEY_B.to_owned()]);
    assert_eq!(
        report.skipped_in_use,
        vec![KEY_A.to_owned(), KEY_D.to_owned()]
    );
    assert_eq!(report.total_bytes, 2 * ENTRY);
    assert!(complete(&base, KEY_A) && complete(&base, KEY_D));
    assert!(!base.join(KEY_B).exists());
    drop((a, d));
    assert_eq!(
        names(&base),
        vec![
            "aaaa",
            "aaaa.lock",
            "aaaa.unpack",
            "dddd",
            "dddd.lock",
            "dddd.unpack"
        ]
    );
}

#[test]
fn a_failed_unpack_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("rootfs");
    let cache = RootfsCache::open(&base, u64::MAX).expect("open");
    let err = cache
        .acquire(KEY_A, |dir| {
            fs::write(dir.join("half"), "written").expect("write");
            Err(ImageError::BadTarget {
                path: dir.to_path_buf(),
                reason: "simulated failure".into(),
            })
        })
        .expect_err("the unpack failed");
    assert!(matches!(err, ImageError::BadTarget { .. }), "{err}");
    assert!(names(&base).is_empty(), "{:?}", names(&base));

    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.acquire(KEY_A, |dir| {
            fs::write(dir.join("half"), "written").expect("write");
            panic!("simulated crash in unpack")
        })
    }));
    assert!(panicked.is_err());
    assert!(
        !names(&base)
            .iter()
            .any(|n| n == KEY_A || n.starts_with(".tmp-")),
        "{:?}",
        names(&base)
    );

    let (lease, report) = cache.acquire(KEY_A, fake_unpack).expect("retry");
    assert!(report.is_some());
    assert!(lease.path().join("etc/os-release").is_file());
}

#[test]
fn stale_leftovers_are_cleaned_but_not_those_in_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("rootfs");
    let cache = RootfsCache::open(&base, u64::MAX).expect("open");
    let (lease, _) = cache.acquire(KEY_A, fake_unpack).expect("a");
    let mkdir = |name: &str| {
        fs::create_dir_all(base.join(name).join("usr")).expect("mkdir");
        fs::write(base.join(name).join("usr/file"), "x").expect("write");
    };
    mkdir(".tmp-bbbb-999999-dead"); // unpacker gone
    mkdir(".trash-cccc-999999-dead"); // deleter gone
    mkdir("dddd"); // incomplete entry (no marker)
    mkdir("eeee"); // an older vexxy's marker without a size
    fs::write(base.join("eeee/.vexxy-complete"), "").expect("marker");
    mkdir(".tmp-aaaa-999999-busy"); // its key is in use: looks like an unpack in progress

    let report = cache.evict().expect("evict");
    assert_eq!(report.cleaned, 4, "{report:?}");
    assert_eq!(report.total_bytes, ENTRY);
    assert_eq!(
        names(&base),
        vec![".tmp-aaaa-999999-busy", "aaaa", "aaaa.lock", "aaaa.unpack"]
    );
    drop(lease);
    let report = cache.evict().expect("evict");
    assert_eq!(report.cleaned, 1);
    assert_eq!(names(&base), vec!["aaaa", "aaaa.lock", "aaaa.unpack"]);
}

#[test]
fn bad_keys_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("rootfs");
    let cache = RootfsCache::open(&base, u64::MAX).expect("open");
    let long = "a".repeat(129);
    for key in [
        "",
        "ABCD",
        "sha256:abcd",
        "../abcd",
        "ab/cd",
        ".tmp-ab",
        "ab.lock",
        long.as_str(),
    ] {
        let err = cache
            .acquire(key, |_| panic!("unpack called for a bad key {key:?}"))
            .expect_err(key);
        assert!(
            matches!(err, ImageError::BadCacheKey { .. }),
            "{key:?}: {err}"
        );
        assert!(err.is_bad_input());
        assert!(
            err.to_string().contains(&base.display().to_string()),
            "{err}"
        );
    }
    assert!(names(&base).is_empty());
    let ok = "a".repeat(128);
    cache.acquire(&ok, fake_unpack).expect("128 hex characters");
}

#[test]
fn default_base_is_beside_the_blob_cache() {
    let blobs = vexxy_image::BlobCache::default_root();
    let rootfs = RootfsCache::default_base();
    if let (Ok(blobs), Ok(rootfs)) = (blobs, rootfs) {
        assert_eq!(rootfs, blobs.parent().expect("parent").join("rootfs"));
    }
    assert_eq!(RootfsCache::DEFAULT_MAX_BYTES, 20 << 30);
}
