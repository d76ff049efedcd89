//! Acceptance test of the adaptive exercise window: the real binary, the
//! nginx test image from `scripts/build-test-images.sh`, the real Grype
//! report of the official nginx image in `../shared/testdata`.
//!
//! Needs root, runc, eBPF and the test images: where one is missing the
//! test prints `SKIP` outside CI and fails in CI (`vexxy_testkit_host`'s
//! gates).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use assert_cmd::Command;
use serde_json::Value;

mod verdicts;
use verdicts::{nginx_grype, read, statements};

fn vexxy() -> Command {
    let mut c = Command::cargo_bin("vexxy").expect("binary built");
    c.env("SOURCE_DATE_EPOCH", "1767225600");
    c
}

/// `vexxy analyze` of `img` with the Grype report and `flags`, into `out`:
/// the wall time of the command.
fn analyze(img: &str, out: &Path, flags: &[&str]) -> Duration {
    let began = Instant::now();
    let res = vexxy()
        .args(["analyze", img, "--fresh", "--allow-report-mismatch"])
        .args(flags)
        .arg("--scan")
        .arg(nginx_grype())
        .arg("--out")
        .arg(out)
        .output()
        .expect("run vexxy analyze");
    let wall = began.elapsed();
    assert!(
        res.status.success(),
        "vexxy analyze {flags:?}: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    wall
}

#[test]
fn the_adaptive_window_ends_nginx_early_with_the_verdicts_of_a_fixed_window() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(img) = vexxy_testkit_host::test_image_ref("nginx") else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    // unpack once, so neither analysis pays for it
    vexxy()
        .args(["run", &img, "-q", "--duration", "1s", "-o", "/dev/null"])
        .assert()
        .success();

    let fixed_dir = out.path().join("fixed");
    let fixed_wall = analyze(&img, &fixed_dir, &["--fixed-window", "--duration", "30s"]);
    let adaptive_dir = out.path().join("adaptive");
    let adaptive_wall = analyze(&img, &adaptive_dir, &["--duration", "30s"]);

    let fixed = read(&fixed_dir.join("profile.json"));
    let adaptive = read(&adaptive_dir.join("profile.json"));
    let ran = |p: &Value| p["run"]["duration_ms"].as_u64().expect("duration_ms");
    println!(
        "nginx, --duration 30s: fixed window {} ms run, {fixed_wall:?} analysis; \
         adaptive window {} ms run, {adaptive_wall:?} analysis; adaptive window: {}",
        ran(&fixed),
        ran(&adaptive),
        adaptive["run"]["window"]
    );

    // the fixed window ran its 30 s, the adaptive one closed quiet in under 10 s
    assert_eq!(fixed["run"]["window"]["mode"], "fixed");
    assert_eq!(fixed["run"]["window"]["ended"], "maximum");
    assert!(ran(&fixed) >= 30_000, "fixed run of {} ms", ran(&fixed));
    let window = &adaptive["run"]["window"];
    assert_eq!(window["mode"], "adaptive", "{window}");
    assert_eq!(window["ended"], "quiet", "{window}");
    assert!(
        ran(&adaptive) < 10_000,
        "adaptive run of {} ms",
        ran(&adaptive)
    );
    assert!(
        adaptive_wall + Duration::from_secs(20) < fixed_wall,
        "adaptive {adaptive_wall:?} vs fixed {fixed_wall:?}"
    );
    // both exercised the server the same way
    for p in [&fixed, &adaptive] {
        assert_eq!(p["exercise"]["ready_ports"], serde_json::json!([80]));
        assert_eq!(p["run"]["outcome"]["kind"], "stopped_at_end");
    }

    // the same statements
    let fixed_vex = statements(&read(&fixed_dir.join("vex.openvex.json")));
    let adaptive_vex = statements(&read(&adaptive_dir.join("vex.openvex.json")));
    assert!(fixed_vex.len() > 50, "{} statements", fixed_vex.len());
    let only_fixed: Vec<_> = fixed_vex.difference(&adaptive_vex).collect();
    let only_adaptive: Vec<_> = adaptive_vex.difference(&fixed_vex).collect();
    assert!(
        only_fixed.is_empty() && only_adaptive.is_empty(),
        "statements differ:\nonly with the fixed window: {only_fixed:#?}\nonly with the adaptive window: {only_adaptive:#?}"
    );
}
