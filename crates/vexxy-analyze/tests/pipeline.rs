//! The analysis library on the real test images (built by
//! scripts/build-test-images.sh): cancellation with real runc and eBPF,
//! digest pinning, and the rootfs cache shared by processes and bounded
//! in size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{atomic::Ordering, Mutex},
    time::{Duration, Instant},
};

use vexxy_analyze::{
    AnalysisRequest, Caches, Context, DecideSettings, ErrorKind, Findings, ImageRequest, Phase,
    Placement, Progress, RunSettings, StaticRequest, StaticTarget, Timings,
};

/// One analysis at a time in this process: the sandbox tests look at the
/// sandboxes this process owns.
static SERIAL: Mutex<()> = Mutex::new(());

fn grype() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json")
}

fn report() -> vexxy_ingest::Report {
    let bytes = std::fs::read(grype()).unwrap();
    match vexxy_ingest::parse(&bytes, &grype()).unwrap() {
        vexxy_ingest::Input::Report(r) => r,
        vexxy_ingest::Input::Sbom(_) => panic!("a report"),
    }
}

fn image(name: &str) -> Option<ImageRequest> {
    let reference = vexxy_testkit::test_image_ref(name)?;
    Some(ImageRequest::parse(&reference).unwrap())
}

fn timestamp() -> time::OffsetDateTime {
    time::macros::datetime!(2026-01-01 0:00 UTC)
}

#[test]
fn a_cancelled_analysis_tears_its_sandbox_down() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(image) = image("nginx") else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let caches = tempfile::tempdir().unwrap();
    let request = AnalysisRequest {
        image,
        expected_digest: None,
        run: RunSettings {
            duration: Duration::from_secs(60),
            // the run must still be going when it is cancelled
            window: vexxy_analyze::WindowPolicy::Fixed,
            ..RunSettings::default()
        },
        findings: Findings::Report(report()),
        decide: DecideSettings::at(timestamp()),
        reuse_profile: false,
        // the real report is of the official nginx image, not the test image
        allow_report_mismatch: true,
    };
    let phases = Mutex::new(Vec::new());
    let progress = |p: &Progress| {
        if let Progress::Started(phase) = p {
            phases.lock().unwrap().push(*phase);
        }
    };
    let ctx = Context::new(Caches::at(caches.path())).with_progress(&progress);
    let cancel = ctx.cancel_flag();
    let state_root = Path::new("/run/vexxy");
    let me = [std::process::id()];
    let (result, took, seen) = std::thread::scope(|s| {
        let worker = s.spawn(|| vexxy_analyze::analyze(&request, &ctx));
        let observing = vexxy_testkit::poll(Duration::from_secs(180), || {
            phases
                .lock()
                .unwrap()
                .contains(&Phase::Run(vexxy_analyze::RunPhase::Observing))
                .then_some(())
        });
        assert!(
            observing.is_some(),
            "the run never started: {:?}",
            phases.lock().unwrap()
        );
        let seen = vexxy_testkit_host::sandboxes_owned_by(state_root, &me);
        std::thread::sleep(Duration::from_secs(2));
        let cancelled_at = Instant::now();
        cancel.store(true, Ordering::SeqCst);
        let result = worker.join().unwrap();
        (result, cancelled_at.elapsed(), seen)
    });
    println!("cancelled in {took:?}; sandboxes while running: {seen:?}");
    assert_eq!(seen.len(), 1, "exactly one sandbox of ours ran: {seen:?}");
    let err = result.expect_err("cancelled");
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert!(took < Duration::from_secs(20), "took {took:?} to stop");
    assert_eq!(
        vexxy_testkit_host::sandbox_leftovers(state_root, &seen[0]),
        Vec::<String>::new(),
        "the sandbox was left behind"
    );
    assert!(!phases.lock().unwrap().contains(&Phase::Deciding));
}

#[test]
fn a_digest_mismatch_is_refused_before_anything_runs() {
    let Some(image) = image("nginx") else { return };
    let caches = tempfile::tempdir().unwrap();
    let request = AnalysisRequest {
        image,
        expected_digest: Some(format!("sha256:{}", "0".repeat(64)).parse().unwrap()),
        run: RunSettings::default(),
        findings: Findings::Report(report()),
        decide: DecideSettings::at(timestamp()),
        reuse_profile: false,
        // the real report is of the official nginx image, not the test image
        allow_report_mismatch: true,
    };
    let phases = Mutex::new(Vec::new());
    let progress = |p: &Progress| {
        if let Progress::Started(phase) = p {
            phases.lock().unwrap().push(*phase);
        }
    };
    let ctx = Context::new(Caches::at(caches.path())).with_progress(&progress);
    let err = vexxy_analyze::analyze(&request, &ctx).expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::BadInput, "{err}");
    let phases = phases.lock().unwrap();
    assert!(
        phases
            .iter()
            .all(|p| !p.is_run_or_later() && *p != Phase::Cataloging),
        "{phases:?}"
    );
}

/// The child half of the two-process test: a static decision of the nginx
/// image against the shared cache named by the parent; prints whether it
/// unpacked and the statements.
#[test]
#[ignore = "run by two_processes_share_one_unpacked_rootfs"]
fn child_decides_from_the_shared_cache() {
    let Some(dir) = std::env::var_os("VEXXY_TEST_SHARED_CACHE") else {
        return;
    };
    let request = StaticRequest {
        report: report(),
        sbom: None,
        target: StaticTarget::Image(Box::new(image("nginx").expect("the nginx test image"))),
        run_config: None,
        product: None,
        allow_unpinned_product: false,
        allow_report_mismatch: true,
        decide: DecideSettings::at(timestamp()),
    };
    let unpacked = Mutex::new(false);
    let progress = |p: &Progress| {
        if *p == Progress::Started(Phase::UnpackingLayers) {
            *unpacked.lock().unwrap() = true;
        }
    };
    let ctx = Context::new(Caches::at(PathBuf::from(dir))).with_progress(&progress);
    let outcome = vexxy_analyze::decide_static(&request, &ctx).unwrap();
    let doc = outcome.document.expect("statements");
    let text = vexxy_analyze::render_vex(
        &doc,
        vexxy_analyze::VexFormat::OpenVex,
        &vexxy_analyze::VexOptions::default(),
    )
    .unwrap();
    println!(
        "CHILD unpacked={} statements={}",
        unpacked.lock().unwrap(),
        sha256_hex(&text)
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}

#[test]
fn two_processes_share_one_unpacked_rootfs() {
    if image("nginx").is_none() {
        return;
    }
    let caches = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_decides_from_the_shared_cache",
                    "--ignored",
                    "--nocapture",
                ])
                .env("VEXXY_TEST_SHARED_CACHE", caches.path())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let lines: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "a child failed");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find(|l| l.starts_with("CHILD "))
                .expect("the child's line")
                .to_owned()
        })
        .collect();
    println!("{lines:#?}");
    let unpacked = lines.iter().filter(|l| l.contains("unpacked=true")).count();
    assert_eq!(unpacked, 1, "exactly one process unpacks: {lines:?}");
    let statements: Vec<&str> = lines
        .iter()
        .map(|l| l.split("statements=").nth(1).unwrap())
        .collect();
    assert_eq!(statements[0], statements[1], "both decided the same");
    let entries: Vec<_> = std::fs::read_dir(caches.path().join("rootfs"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name())
        .collect();
    assert_eq!(entries.len(), 1, "one unpacked rootfs: {entries:?}");
}

#[test]
fn a_rootfs_cache_over_its_limit_evicts_the_least_recently_used() {
    let (Some(nginx), Some(flask)) = (image("nginx"), image("python-flask")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut caches = Caches::at(dir.path());
    // room for one image only
    caches.rootfs_max_bytes = 1;
    let ctx = Context::new(caches);
    let mut timings = Timings::default();
    let first = vexxy_analyze::resolve(&nginx, Placement::Cached, &ctx, &mut timings).unwrap();
    let first_dir = first.rootfs().to_path_buf();
    // in use: acquiring another image must not evict it
    let second = vexxy_analyze::resolve(&flask, Placement::Cached, &ctx, &mut timings).unwrap();
    assert!(first_dir.join("etc/nginx").is_dir(), "evicted while in use");
    assert!(second.rootfs().join("usr/bin").is_dir());
    let second_dir = second.rootfs().to_path_buf();
    drop(first);
    drop(second);
    // the next acquisition brings the cache under its limit: nginx (least
    // recently used, unused) goes, the one just acquired stays
    let again = vexxy_analyze::resolve(&flask, Placement::Cached, &ctx, &mut timings).unwrap();
    assert_eq!(again.rootfs(), second_dir);
    assert!(!first_dir.exists(), "the least recently used entry stayed");
    assert!(again.rootfs().join("usr/bin").is_dir());
}
