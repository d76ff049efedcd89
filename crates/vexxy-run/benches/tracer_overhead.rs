//! Tracer overhead: nginx from the test image in vexxy's sandbox, driven by
//! wrk from inside the sandbox's network namespace, alternately without and
//! with the eBPF tracer armed on the sandbox, in one run, plus a third
//! configuration with only empty programs on the same syscall tracepoints
//! (the cost of the kernel's machinery, which no tracer on this kernel can
//! avoid: fentry and kprobes are refused). The order rotates every round.
//! Prints each round, the medians of the per-round ratios (target: the
//! tracer at most 3 % slower than untraced) and the tracer's start-up time.
//!
//! `cargo bench -p vexxy-run --bench tracer_overhead`; needs root, runc,
//! eBPF, wrk and the nginx test image (`scripts/build-test-images.sh`);
//! prints `SKIP` without them, or fails in CI (`vexxy_testkit_host`'s gates).
//! `VEXXY_BENCH_ROUNDS` (default 5) and `VEXXY_BENCH_SECONDS` (default 5)
//! set the number and length of the rounds.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use vexxy_sandbox::{Limits, Sandbox};
use vexxy_testkit_host::{
    config_in, http_get, image_rootfs, in_netns, poll, require_program, require_trace,
};
use vexxy_trace::{TraceOptions, Tracer};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One wrk round inside the network namespace; requests per second.
fn wrk(netns: &std::path::Path, seconds: u64) -> f64 {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args([
            "wrk",
            "-t1",
            "-c32",
            &format!("-d{seconds}s"),
            "http://127.0.0.1:80/",
        ])
        .output()
        .expect("run wrk under nsenter");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output: {text}"));
    let errors = text
        .lines()
        .any(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    assert!(!errors, "wrk saw errors: {text}");
    rps
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !require_trace() || require_program("wrk", "scripts/ensure-deps.sh installs it").is_none() {
        return;
    }
    let Some(rootfs) = image_rootfs("nginx") else {
        return;
    };
    let rounds = env_u64("VEXXY_BENCH_ROUNDS", 5);
    let seconds = env_u64("VEXXY_BENCH_SECONDS", 5);
    let mut config = config_in(&rootfs, &["nginx", "-g", "daemon off;"]);
    config.limits = Limits {
        cpus: 1.0,
        memory_bytes: 512 << 20,
        pids: 256,
        scratch_bytes: 64 << 20,
    };
    let mut sandbox = Sandbox::create(config).expect("create the nginx sandbox");
    sandbox.start().expect("start nginx");
    let netns = sandbox.net_namespace_path();
    poll(Duration::from_secs(10), || {
        in_netns(&netns, || http_get(80).ok())
    })
    .expect("nginx did not answer");
    // warm-up
    wrk(&netns, 1);

    // Three configurations per round, in a rotating order so drift
    // cancels: no tracer; only empty programs on the two syscall
    // tracepoints (what the kernel's machinery costs by itself); the tracer.
    let mut plain = Vec::new();
    let mut mechanism = Vec::new();
    let mut traced = Vec::new();
    let mut startups = Vec::new();
    let mut events = 0u64;
    for round in 0..rounds {
        let mut rps = [0.0f64; 3];
        for k in 0..3 {
            let config = (k + round as usize) % 3;
            rps[config] = match config {
                0 => wrk(&netns, seconds),
                1 => {
                    let options = TraceOptions {
                        mechanism_only: true,
                        ..TraceOptions::default()
                    };
                    let tracer = Tracer::start(options).expect("start the empty hooks");
                    let r = wrk(&netns, seconds);
                    tracer.finish().expect("finish the empty hooks");
                    r
                }
                _ => {
                    let began = Instant::now();
                    let tracer = Tracer::start(TraceOptions::default()).expect("start the tracer");
                    tracer
                        .arm(sandbox.pid_namespace_inode())
                        .expect("arm the tracer");
                    startups.push(began.elapsed().as_secs_f64() * 1000.0);
                    let r = wrk(&netns, seconds);
                    let raw = tracer.finish().expect("finish the tracer");
                    events = raw.syscalls.values().sum();
                    assert!(
                        raw.lost.is_empty(),
                        "the tracer lost events under load: {:?}",
                        raw.lost
                    );
                    r
                }
            };
        }
        let [a, m, t] = rps;
        println!(
            "round {}: untraced {a:.0} req/s, empty hooks {m:.0} ({:+.1} %), tracer {t:.0} ({:+.1} %)",
            round + 1,
            (m / a - 1.0) * 100.0,
            (t / a - 1.0) * 100.0
        );
        plain.push(a);
        mechanism.push(m / a);
        traced.push(t / a);
    }
    let report = sandbox.teardown().expect("teardown");
    assert!(
        report.is_clean(),
        "teardown left {}",
        report.leftover_summary()
    );

    let untraced = median(plain);
    let floor = median(mechanism);
    let ratio = median(traced);
    println!("tracer overhead (nginx under wrk, {rounds} rounds of {seconds} s; medians of the per-round ratios):");
    println!("  untraced: {untraced:.0} req/s");
    println!(
        "  empty syscall hooks / untraced = {floor:.3} ({:.1} % slower): the kernel's tracepoint machinery alone",
        (1.0 - floor) * 100.0
    );
    println!(
        "  tracer / untraced = {ratio:.3} ({:.1} % slower; target <= 3 %): {}",
        (1.0 - ratio) * 100.0,
        if ratio >= 0.97 { "met" } else { "NOT met" }
    );
    println!(
        "  tracer / empty hooks = {:.3}: what the tracer's own programs add",
        ratio / floor
    );
    println!("  syscalls counted in the kernel in the last traced round: {events}");
    println!(
        "  tracer start-up (load + attach + arm): median {:.0} ms",
        median(startups)
    );
}
