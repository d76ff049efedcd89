//! Re-evaluation from a stored profile against the full analysis it
//! replaces, in one run: `vexxy analyze --fresh` of the nginx test image
//! (the peer: intake, static evidence, a sandboxed traced run, decisions)
//! and `vexxy reevaluate --profile` of its profile with another report
//! (static evidence and decisions only). Prints both times, the ratio and
//! whether re-evaluation stays under one second.
//!
//! Run: `cargo bench -p vexxy --bench reevaluate` (root, runc, eBPF and the
//! nginx test image; prints `SKIP` otherwise, fails in CI).
//! `VEXXY_BENCH_SECONDS` sets the exercise window of the analysis (default 5).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

const RUNS: usize = 5;

fn timed(cmd: &mut Command) -> Duration {
    let began = Instant::now();
    let out = cmd.output().expect("run vexxy");
    let took = began.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn main() {
    let reports =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/scanner-reports");
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(image) = vexxy_testkit_host::test_image_ref("nginx") else {
        return;
    };
    let seconds = std::env::var("VEXXY_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(5);
    let vexxy = env!("CARGO_BIN_EXE_vexxy");
    let work = tempfile::tempdir().expect("tempdir");
    let analysis = work.path().join("analysis");
    let analyze = timed(
        Command::new(vexxy)
            .args([
                "analyze",
                &image,
                "-q",
                "--fresh",
                "--duration",
                &format!("{seconds}s"),
                // the real report is of the official nginx image, not the test image
                "--allow-report-mismatch",
                "--scan",
            ])
            .arg(reports.join("dimpact_nginx-latest_2025-06-08_grype.json"))
            .arg("--out")
            .arg(&analysis),
    );
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|i| {
            timed(
                Command::new(vexxy)
                    .args(["reevaluate", "-q", "--allow-report-mismatch", "--profile"])
                    .arg(analysis.join("profile.json"))
                    .arg("--scan")
                    .arg(reports.join("dimpact_nginx-latest_2025-06-08_trivy.json"))
                    .arg("--out")
                    .arg(work.path().join(format!("re{i}")))
                    .stdout(std::process::Stdio::null()),
            )
        })
        .collect();
    times.sort();
    let median = times[RUNS / 2];
    println!("reevaluate vs analyze (nginx test image, Grype then Trivy report of the official nginx image):");
    println!(
        "  analyze --fresh --duration {seconds}s: {:.2} s",
        analyze.as_secs_f64()
    );
    println!(
        "  reevaluate --profile (median of {RUNS}): {:.3} s (best {:.3} s)",
        median.as_secs_f64(),
        times[0].as_secs_f64()
    );
    println!(
        "  ratio analyze / reevaluate = {:.1}x",
        analyze.as_secs_f64() / median.as_secs_f64()
    );
    println!(
        "  target reevaluate < 1 s: {}",
        if median < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    );
}
