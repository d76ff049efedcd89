//! Tracer overhead: nginx from the test image in vexxy's sandbox, driven by
//! wrk from inside the sandbox's network namespace, in three configurations
//! per round, in one run: untraced; only empty programs on the same two
//! syscall tracepoints (the cost of the kernel's machinery, which no tracer
//! on this kernel can avoid: fentry and kprobes are refused); the tracer.
//! The order rotates every round.
//!
//! Two measures per configuration: requests per second, and CPU time per
//! request — the CPU the sandbox's cgroup was charged (`cpu.stat`
//! `usage_usec`, which includes the BPF programs: they run in the syscalling
//! task) divided by the requests wrk completed. On a 2-core machine shared
//! with other work, throughput swings by more than the few percent being
//! measured; CPU per request does not depend on what else runs, so the
//! target (the tracer at most 2 % above the empty hooks) is judged on it,
//! and throughput is printed beside it.
//!
//! Then: each program's own cost per run (kernel `bpf_stats`, one round
//! each, enabled only for that round), and the same three configurations
//! with 4 nginx sandboxes driven at once, the tracer being one set of
//! programs serving 4 sessions.
//!
//! `cargo bench -p vexxy-run --bench tracer_overhead`; needs root, runc,
//! eBPF, wrk and the nginx test image (`scripts/build-test-images.sh`);
//! prints `SKIP` without them, or fails in CI (`vexxy_testkit_host`'s gates).
//! `VEXXY_BENCH_ROUNDS` (default 7) and `VEXXY_BENCH_SECONDS` (default 4)
//! set the number and length of the rounds.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use vexxy_sandbox::{Limits, Sandbox};
use vexxy_testkit_host::{
    cgroup_file, config_in, http_get, image_rootfs, in_netns, poll, require_program, require_trace,
};
use vexxy_trace::{TraceOptions, Tracer};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One wrk run inside a network namespace: (requests/s, requests).
fn wrk(netns: &Path, seconds: u64, connections: u32) -> (f64, u64) {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args([
            "wrk",
            "-t1",
            &format!("-c{connections}"),
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
    let requests = text
        .lines()
        .find_map(|l| {
            let (n, rest) = l.trim().split_once(' ')?;
            rest.starts_with("requests in")
                .then(|| n.parse::<u64>().ok())?
        })
        .unwrap_or_else(|| panic!("no request count in wrk output: {text}"));
    let errors = text
        .lines()
        .any(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    assert!(!errors, "wrk saw errors: {text}");
    (rps, requests)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU microseconds the cgroup has been charged so far.
fn cpu_usec(cgroup: &str) -> u64 {
    // v1: cpuacct.usage (ns); v2: usage_usec in cpu.stat (v1's cpu.stat
    // has only throttling counters)
    let stat = cgroup_file("cpuacct", cgroup, "cpuacct.usage")
        .or_else(|| cgroup_file("cpu", cgroup, "cpu.stat"))
        .expect("the sandbox's cpu accounting file");
    let text = std::fs::read_to_string(&stat).expect("read cpu accounting");
    if stat.ends_with("cpuacct.usage") {
        return text.trim().parse::<u64>().expect("cpuacct.usage") / 1000;
    }
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
        .expect("usage_usec in cpu.stat")
}

/// A configuration of the kernel side during a measurement.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Config {
    Untraced,
    EmptyHooks,
    Tracer,
}

const CONFIGS: [Config; 3] = [Config::Untraced, Config::EmptyHooks, Config::Tracer];

/// What one configuration measured: throughput summed over the sandboxes,
/// and CPU per request over all of them.
#[derive(Clone, Copy, Debug)]
struct Measure {
    rps: f64,
    cpu_us_per_request: f64,
}

struct Nginx {
    sandbox: Sandbox,
    netns: PathBuf,
    cgroup: String,
}

fn start_nginx(rootfs: &Path, cpus: f64) -> Nginx {
    let mut config = config_in(rootfs, &["nginx", "-g", "daemon off;"]);
    config.limits = Limits {
        cpus,
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
    let cgroup = sandbox.cgroup_path();
    let nginx = Nginx {
        sandbox,
        netns,
        cgroup,
    };
    wrk(&nginx.netns, 1, 8); // warm-up
    nginx
}

/// Drives every sandbox at once under `config`; the tracer, when asked
/// for, is one session per sandbox on the shared programs.
fn measure(
    sandboxes: &[Nginx],
    config: Config,
    seconds: u64,
    connections: u32,
    trace_stats: &mut TraceStats,
) -> Measure {
    let began = Instant::now();
    let tracers: Vec<Tracer> = match config {
        Config::Untraced => Vec::new(),
        Config::EmptyHooks => vec![Tracer::start(TraceOptions {
            mechanism_only: true,
            ..TraceOptions::default()
        })
        .expect("start the empty hooks")],
        Config::Tracer => sandboxes
            .iter()
            .map(|n| {
                let t = Tracer::start(TraceOptions::default()).expect("start the tracer");
                t.arm(n.sandbox.pid_namespace_inode())
                    .expect("arm the tracer");
                t
            })
            .collect(),
    };
    if config == Config::Tracer {
        trace_stats
            .startups
            .push(began.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu_before: u64 = sandboxes.iter().map(|n| cpu_usec(&n.cgroup)).sum();
    let results: Vec<(f64, u64)> = std::thread::scope(|s| {
        let runs: Vec<_> = sandboxes
            .iter()
            .map(|n| s.spawn(|| wrk(&n.netns, seconds, connections)))
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("wrk thread"))
            .collect()
    });
    let cpu_after: u64 = sandboxes.iter().map(|n| cpu_usec(&n.cgroup)).sum();
    let mut syscalls = 0;
    for t in tracers {
        let raw = t.finish().expect("finish the tracer");
        if config == Config::Tracer {
            syscalls += raw.syscalls.values().sum::<u64>();
            assert!(
                raw.lost.is_empty(),
                "the tracer lost events under load: {:?}",
                raw.lost
            );
        }
    }
    if config == Config::Tracer {
        trace_stats.syscalls = syscalls;
    }
    let requests: u64 = results.iter().map(|r| r.1).sum();
    Measure {
        rps: results.iter().map(|r| r.0).sum(),
        cpu_us_per_request: (cpu_after - cpu_before) as f64 / requests.max(1) as f64,
    }
}

#[derive(Default)]
struct TraceStats {
    startups: Vec<f64>,
    syscalls: u64,
}

/// Ratios of one round: (empty/untraced, tracer/untraced, tracer/empty),
/// for throughput and for CPU per request (inverted, so that 1.0 is "as
/// cheap" and less is "costlier" in both).
struct Ratios {
    rps: [f64; 3],
    cpu: [f64; 3],
}

fn round_ratios(m: &[Measure; 3]) -> Ratios {
    let [u, e, t] = m;
    Ratios {
        rps: [e.rps / u.rps, t.rps / u.rps, t.rps / e.rps],
        cpu: [
            u.cpu_us_per_request / e.cpu_us_per_request,
            u.cpu_us_per_request / t.cpu_us_per_request,
            e.cpu_us_per_request / t.cpu_us_per_request,
        ],
    }
}

/// Runs `rounds` rounds of the three configurations in rotating order and
/// prints each round; returns the per-round ratios.
fn rounds_of(
    label: &str,
    sandboxes: &[Nginx],
    rounds: u64,
    seconds: u64,
    connections: u32,
    stats: &mut TraceStats,
) -> Vec<Ratios> {
    let mut all = Vec::new();
    for round in 0..rounds {
        let mut m = [Measure {
            rps: 0.0,
            cpu_us_per_request: 0.0,
        }; 3];
        for k in 0..3 {
            let i = (k + round as usize) % 3;
            m[i] = measure(sandboxes, CONFIGS[i], seconds, connections, stats);
        }
        let r = round_ratios(&m);
        println!(
            "{label} round {}: untraced {:.0} req/s {:.1} us/req; empty hooks {:.0} req/s {:.1} us/req; tracer {:.0} req/s {:.1} us/req (tracer/empty: throughput {:.3}, cpu {:.3})",
            round + 1,
            m[0].rps,
            m[0].cpu_us_per_request,
            m[1].rps,
            m[1].cpu_us_per_request,
            m[2].rps,
            m[2].cpu_us_per_request,
            r.rps[2],
            r.cpu[2],
        );
        all.push(r);
    }
    all
}

fn summarise(label: &str, ratios: &[Ratios]) -> f64 {
    let med = |f: &dyn Fn(&Ratios) -> f64| median(ratios.iter().map(f).collect());
    let cpu_floor = med(&|r| r.cpu[0]);
    let cpu_tracer = med(&|r| r.cpu[1]);
    let cpu_over_floor = med(&|r| r.cpu[2]);
    println!("{label} (medians of the per-round ratios; 1.000 = as cheap as untraced):");
    println!(
        "  empty syscall hooks / untraced: cpu per request {cpu_floor:.3}, throughput {:.3}  (the kernel's tracepoint machinery alone)",
        med(&|r| r.rps[0])
    );
    println!(
        "  tracer / untraced:              cpu per request {cpu_tracer:.3}, throughput {:.3}",
        med(&|r| r.rps[1])
    );
    println!(
        "  tracer / empty hooks:           cpu per request {cpu_over_floor:.3}, throughput {:.3}  (what the tracer's own work adds)",
        med(&|r| r.rps[2])
    );
    cpu_over_floor
}

/// Each loaded program's own run time per invocation, from the kernel's
/// `bpf_stats` (enabled for this measurement only: it costs two clock
/// reads per run).
fn program_costs(nginx: &Nginx, seconds: u64) -> Vec<(String, f64, u64)> {
    const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";
    let before = std::fs::read_to_string(SYSCTL).unwrap_or_else(|_| "0".into());
    let mut costs = Vec::new();
    for options in [
        TraceOptions {
            mechanism_only: true,
            ..TraceOptions::default()
        },
        TraceOptions::default(),
    ] {
        let tracer = Tracer::start(options).expect("start");
        tracer
            .arm(nginx.sandbox.pid_namespace_inode())
            .expect("arm");
        let mine = vexxy_trace::diagnostics::held_program_ids(std::process::id());
        std::fs::write(SYSCTL, "1").expect("enable bpf_stats");
        let start = vexxy_trace::diagnostics::program_stats(&mine);
        wrk(&nginx.netns, seconds, 32);
        let end = vexxy_trace::diagnostics::program_stats(&mine);
        std::fs::write(SYSCTL, before.trim()).expect("restore bpf_stats_enabled");
        tracer.finish().expect("finish");
        for (name, (ns, cnt)) in &end {
            let (ns0, cnt0) = start.get(name).copied().unwrap_or((0, 0));
            let runs = cnt - cnt0;
            if runs > 0 {
                costs.push((name.clone(), (ns - ns0) as f64 / runs as f64, runs));
            }
        }
    }
    costs
}

fn main() {
    if !require_trace() || require_program("wrk", "scripts/ensure-deps.sh installs it").is_none() {
        return;
    }
    let Some(rootfs) = image_rootfs("nginx") else {
        return;
    };
    let rounds = env_u64("VEXXY_BENCH_ROUNDS", 7);
    let seconds = env_u64("VEXXY_BENCH_SECONDS", 4);
    let mut stats = TraceStats::default();

    let one = [start_nginx(&rootfs, 1.0)];
    let ratios = rounds_of("1 sandbox", &one, rounds, seconds, 32, &mut stats);
    let costs = program_costs(&one[0], seconds);
    let [one] = one;
    let report = one.sandbox.teardown().expect("teardown");
    assert!(
        report.is_clean(),
        "teardown left {}",
        report.leftover_summary()
    );

    let four: Vec<Nginx> = (0..4).map(|_| start_nginx(&rootfs, 0.5)).collect();
    let four_rounds = (rounds / 2).max(3);
    let ratios4 = rounds_of("4 sandboxes", &four, four_rounds, seconds, 8, &mut stats);
    for n in four {
        let report = n.sandbox.teardown().expect("teardown");
        assert!(
            report.is_clean(),
            "teardown left {}",
            report.leftover_summary()
        );
    }

    println!();
    println!("tracer overhead: nginx under wrk, {rounds} rounds of {seconds} s with 1 sandbox, {four_rounds} with 4");
    let over_floor = summarise("1 sandbox", &ratios);
    println!(
        "  target: tracer / empty hooks >= 0.98 in cpu per request: {over_floor:.3} -> {}",
        if over_floor >= 0.98 { "met" } else { "NOT met" }
    );
    let over_floor4 = summarise(
        "4 sandboxes traced at once (one set of programs, 4 sessions)",
        &ratios4,
    );
    println!("  tracer / empty hooks with 4 sandboxes: {over_floor4:.3}");
    println!("per-program cost (kernel bpf_stats, 1 sandbox, one round each):");
    for (name, ns, runs) in &costs {
        println!("  {name:<18} {ns:>7.1} ns/run over {runs} runs");
    }
    println!(
        "syscalls counted in the kernel in the last traced round (all its sessions): {}",
        stats.syscalls
    );
    println!(
        "tracer start-up (load + attach + arm, all sessions of a round): median {:.0} ms",
        median(stats.startups)
    );
}
