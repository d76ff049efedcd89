//! The service under load from a real HTTP client (wrk), with 2 workers
//! on PostgreSQL, in one run: submits per second, status-poll latency
//! (p50/p99), and the same wrk on `GET /healthz` (no database, no auth)
//! as the peer the figures are set against.
//!
//! Starts, against a fresh PostgreSQL database: `vexxy serve --workers 0`
//! (the API) and two `vexxy worker --workers 1` processes sharing that
//! database and one evidence directory. Then:
//!
//! 1. submit load: wrk POSTs a different body on every request (thread id
//!    and counter in the image reference, so no submit is deduplicated);
//!    any answer but 202 fails the bench. The image references
//!    (`oci:/nonexistent/bench-…`) are local images outside every
//!    `--allow-local-images` root (the service is given none), so each
//!    job is rejected at intake, permanently: the two workers really claim
//!    and fail jobs on PostgreSQL throughout the load, but run no sandbox.
//!    The bench counts the jobs they finished during the load and how long
//!    the backlog takes to drain afterwards (`vexxy_queue_depth` on
//!    `/metrics`, at most `DRAIN_LIMIT`);
//! 2. the peer: wrk GETs `/healthz`;
//! 3. status polls: wrk GETs `/api/v1/analysis/{id}/status` of one job,
//!    with the API key;
//!
//! and prints the rates, the latencies and the ratios status/healthz.
//!
//! Run: `cargo bench -p vexxy --bench service_load` (root, runc, eBPF,
//! PostgreSQL on 127.0.0.1:5432 or `VEXXY_TEST_POSTGRES`, and `wrk`; prints
//! `SKIP` otherwise, fails in CI). `VEXXY_BENCH_LOAD_SECONDS` sets the
//! length of each wrk run (default 10).

use std::{
    fmt::Write as _,
    fs::File,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

const WRK_THREADS: u32 = 2;
const CONNECTIONS: u32 = 16;
const WORKER_PROCESSES: usize = 2;
/// How long the backlog left by the submit load may take to drain.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);

/// The processes of the run, each with its log file: SIGTERM and waited
/// for when stopped or dropped (also when the bench fails).
struct Procs {
    children: Vec<(String, Child, PathBuf)>,
}

impl Procs {
    /// SIGTERM to all, then waits for each (at most 15 s, then SIGKILL).
    fn stop(&mut self) -> Vec<(String, Option<ExitStatus>)> {
        for (_, child, _) in &self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let mut stopped = Vec::new();
        for (name, mut child, _) in self.children.drain(..) {
            let began = Instant::now();
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    Ok(None) if began.elapsed() < Duration::from_secs(15) => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break None;
                    }
                }
            };
            stopped.push((name, status));
        }
        stopped
    }

    /// The first process that has exited, if any.
    fn exited(&mut self) -> Option<(String, ExitStatus)> {
        self.children
            .iter_mut()
            .find_map(|(name, child, _)| Some((name.clone(), child.try_wait().ok()??)))
    }

    /// The last lines of every log.
    fn logs(&self) -> String {
        let mut out = String::new();
        for (name, _, log) in &self.children {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let _ = writeln!(out, "--- {name} ({}):", log.display());
            for line in &lines[lines.len().saturating_sub(20)..] {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.stop();
    }
}

/// What one wrk run printed.
#[derive(Debug)]
struct WrkRun {
    text: String,
    requests: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    socket_errors: u64,
    non_2xx_3xx: u64,
}

/// `250.00us`, `1.23ms`, `2.00s`, `1.00m` in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    })
}

fn wrk(seconds: u64, extra: &[&str], url: &str) -> WrkRun {
    let out = Command::new("wrk")
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .args(extra)
        .arg(url)
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk {extra:?} {url} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let distribution = text
        .split_once("Latency Distribution")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let percentile = |p: &str| {
        distribution
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p))
            .and_then(|v| millis(v.trim()))
            .unwrap_or_else(|| panic!("no {p} latency in wrk's output:\n{text}"))
    };
    let socket_errors = after("Socket errors:").map_or(0, |v| {
        v.split(',')
            .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    });
    WrkRun {
        requests: text
            .lines()
            .find(|l| l.contains(" requests in "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}")),
        per_second: after("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}")),
        p50_ms: percentile("50%"),
        p99_ms: percentile("99%"),
        socket_errors,
        non_2xx_3xx: after("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        text,
    }
}

/// The wrk script of the submit load: a body of its own per request, the
/// answers counted by status (202 or not) and summed in `done`.
fn submit_script(key: &str) -> String {
    r#"
local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local counter = 0
accepted = 0
other = 0
first_other = ""

local headers = {
  ["Authorization"] = "Bearer @KEY@",
  ["Content-Type"] = "application/json",
}

function request()
  counter = counter + 1
  local body = string.format(
    '{"image_ref":"oci:/nonexistent/bench-%d-%d:latest","config":{"analysis_duration":5}}',
    id, counter)
  return wrk.format("POST", "/api/v1/analysis/submit", headers, body)
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
  else
    other = other + 1
    if first_other == "" then
      first_other = status .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local a, o, first = 0, 0, ""
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    o = o + t:get("other")
    if first == "" then first = t:get("first_other") end
  end
  io.write(string.format("vexxy-submits: accepted %d other %d\n", a, o))
  if first ~= "" then io.write("vexxy-first-other: " .. first .. "\n") end
end
"#
    .replace("@KEY@", key)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// GET `url` (with the API key if given): status and body.
fn get(agent: &ureq::Agent, url: &str, key: Option<&str>) -> (u16, String) {
    let mut req = agent.get(url);
    if let Some(key) = key {
        req = req.header("Authorization", &format!("Bearer {key}"));
    }
    let mut resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("GET {url}: reading the body: {e}"));
    (status, body)
}

fn get_json(agent: &ureq::Agent, url: &str, key: &str) -> Value {
    let (status, body) = get(agent, url, Some(key));
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

/// Jobs of the organisation in `state` (all with `None`); failed jobs are
/// the workers' output here.
fn jobs(agent: &ureq::Agent, base: &str, key: &str, state: Option<&str>) -> u64 {
    let filter = state.map(|s| format!("status={s}&")).unwrap_or_default();
    let list = get_json(
        agent,
        &format!("{base}/api/v1/analysis?{filter}per_page=1"),
        key,
    );
    list["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("no total in {list}"))
}

/// The operator token `/metrics` is served with (`--metrics-token`).
const METRICS_TOKEN: &str = "service-load-bench-metrics";

/// `vexxy_queue_depth` from `/metrics`.
fn queue_depth(agent: &ureq::Agent, base: &str) -> u64 {
    let (status, text) = get(agent, &format!("{base}/metrics"), Some(METRICS_TOKEN));
    assert_eq!(status, 200, "GET /metrics: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix("vexxy_queue_depth "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("/metrics shows no vexxy_queue_depth:\n{text}"))
}

fn admin(vexxy: &str, db: &str, data: &Path, args: &[&str]) -> Value {
    let out = Command::new(vexxy)
        .args(["admin", "-q", "--json", "--database-url", db, "--data-dir"])
        .arg(data)
        .args(args)
        .output()
        .expect("run vexxy admin");
    assert!(
        out.status.success(),
        "vexxy admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "vexxy admin {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn main() {
    if vexxy_testkit_host::require_program("wrk", "scripts/ensure-deps.sh installs it").is_none()
        || !vexxy_testkit_host::require_trace()
    {
        return;
    }
    let Some(database) = vexxy_testkit_host::require_postgres("bench") else {
        return;
    };
    let seconds = std::env::var("VEXXY_BENCH_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(10);
    let db = database.url();
    let vexxy = env!("CARGO_BIN_EXE_vexxy");
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    std::fs::create_dir(&data).expect("data dir");

    let org = admin(
        vexxy,
        &db,
        &data,
        &[
            "create-org",
            "bench",
            "--tier",
            "ultimate",
            "--monthly-quota",
            "100000000",
        ],
    );
    assert!(org["id"].is_string(), "create-org said {org}");
    let key = admin(vexxy, &db, &data, &["create-key", "bench"])["key"]
        .as_str()
        .expect("create-key prints the key")
        .to_owned();

    let mut procs = Procs {
        children: Vec::new(),
    };
    let spawn = |procs: &mut Procs, name: &str, args: &[&str], stdout: Stdio| {
        let log = work.path().join(format!("{name}.log"));
        let child = Command::new(vexxy)
            .args(args)
            .args(["-q", "--database-url", &db, "--data-dir"])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start vexxy {name}: {e}"));
        procs.children.push((name.to_owned(), child, log));
    };
    spawn(
        &mut procs,
        "serve",
        &[
            "serve",
            "--workers",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--metrics-token",
            METRICS_TOKEN,
        ],
        Stdio::piped(),
    );
    let stdout = procs.children[0].1.stdout.take().expect("serve's stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve prints `listening on …` within 30 s");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("serve said {line:?}"))
        .to_owned();
    for i in 1..=WORKER_PROCESSES {
        spawn(
            &mut procs,
            &format!("worker{i}"),
            &["worker", "--workers", "1"],
            Stdio::null(),
        );
    }

    let agent = agent();
    let (status, body) = get(&agent, &format!("{base}/healthz"), None);
    assert_eq!(status, 200, "GET /healthz: {body}");

    // One job through the whole path first: the workers are up and claim
    // and fail jobs; its status is what the status load polls.
    let mut resp = agent
        .post(format!("{base}/api/v1/analysis/submit"))
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(r#"{"image_ref":"oci:/nonexistent/bench-probe:latest","config":{"analysis_duration":5}}"#)
        .expect("submit the probe job");
    let body = resp.body_mut().read_to_string().expect("submit's answer");
    assert_eq!(resp.status().as_u16(), 202, "submit: {body}");
    let probe: Value = serde_json::from_str(&body).expect("submit answers JSON");
    let job = probe["job_id"].as_str().expect("job_id").to_owned();
    let status_url = format!("{base}/api/v1/analysis/{job}/status");
    let began = Instant::now();
    loop {
        let st = get_json(&agent, &status_url, &key);
        if st["status"] == "failed" {
            break;
        }
        if let Some((name, status)) = procs.exited() {
            panic!("vexxy {name} exited ({status}) before the load");
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the probe job did not fail within 30 s: {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let failed_before = jobs(&agent, &base, &key, Some("failed"));

    // 1. submits, the workers failing jobs meanwhile
    let script = work.path().join("submit.lua");
    std::fs::write(&script, submit_script(&key)).expect("write submit.lua");
    let script = script.display().to_string();
    let submits = wrk(
        seconds,
        &["-s", &script],
        &format!("{base}/api/v1/analysis/submit"),
    );
    let processed_during = jobs(&agent, &base, &key, Some("failed")) - failed_before;
    let depth_after = queue_depth(&agent, &base);
    let counts = submits
        .text
        .lines()
        .find_map(|l| l.strip_prefix("vexxy-submits: "))
        .unwrap_or_else(|| panic!("the submit script printed no counts:\n{}", submits.text));
    let numbers: Vec<u64> = counts
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [accepted, other] = numbers[..] else {
        panic!("cannot read the submit counts {counts:?}")
    };
    assert!(
        other == 0 && submits.non_2xx_3xx == 0 && submits.socket_errors == 0,
        "submits not answered 202: {other} (and {} socket errors):\n{}",
        submits.socket_errors,
        submits.text
    );
    assert_eq!(accepted, submits.requests, "wrk:\n{}", submits.text);

    // the backlog the workers have left
    let began = Instant::now();
    let mut depth = depth_after;
    while depth > 0 && began.elapsed() < DRAIN_LIMIT {
        std::thread::sleep(Duration::from_millis(200));
        depth = queue_depth(&agent, &base);
    }
    let drained = began.elapsed();
    let processed_total = jobs(&agent, &base, &key, Some("failed")) - failed_before;
    // wrk stops with requests in flight: the service may have taken a few
    // more submits than wrk saw answered
    let created = jobs(&agent, &base, &key, None) - 1;
    if let Some((name, status)) = procs.exited() {
        panic!("vexxy {name} exited ({status}) during the load");
    }

    // 2. the peer, 3. status polls
    let healthz = wrk(seconds, &[], &format!("{base}/healthz"));
    assert!(
        healthz.non_2xx_3xx == 0 && healthz.socket_errors == 0,
        "/healthz failed under load:\n{}",
        healthz.text
    );
    let auth = format!("Authorization: Bearer {key}");
    let status = wrk(seconds, &["-H", &auth], &status_url);
    assert!(
        status.non_2xx_3xx == 0 && status.socket_errors == 0,
        "status polls failed under load:\n{}",
        status.text
    );
    let depth_end = queue_depth(&agent, &base);

    let stopped = procs.stop();
    for (name, status) in &stopped {
        assert!(
            status.is_some_and(|s| s.success()),
            "vexxy {name} did not exit cleanly on SIGTERM: {status:?}"
        );
    }

    println!(
        "service_load: 2 worker processes (1 worker each) on PostgreSQL, wrk {WRK_THREADS} threads \
         {CONNECTIONS} connections, {seconds} s per run; the submitted images are refused at intake, \
         so the workers claim and fail every job without running a sandbox"
    );
    println!(
        "  submits: {:.1}/s ({accepted} accepted, all 202), latency p50 {:.2} ms p99 {:.2} ms",
        submits.per_second, submits.p50_ms, submits.p99_ms
    );
    println!(
        "  jobs processed (failed) by the workers meanwhile: {processed_during} of {accepted} \
         ({:.1}/s, {:.0}%); queue depth at the end {depth_after}",
        processed_during as f64 / seconds as f64,
        100.0 * processed_during as f64 / accepted.max(1) as f64
    );
    if depth == 0 {
        println!(
            "  backlog drained {:.1} s after the load: {processed_total} of {created} jobs processed \
             ({} of them from submits in flight when wrk stopped, unanswered to wrk)",
            drained.as_secs_f64(),
            created.saturating_sub(accepted)
        );
    } else {
        println!(
            "  backlog NOT drained {:.0} s after the load: {depth} jobs still queued \
             ({processed_total} of {created} processed)",
            drained.as_secs_f64()
        );
    }
    println!(
        "  status poll: {:.1}/s, p50 {:.2} ms p99 {:.2} ms (queue depth {depth_end} at the end)",
        status.per_second, status.p50_ms, status.p99_ms
    );
    println!(
        "  healthz (peer): {:.1}/s, p50 {:.2} ms p99 {:.2} ms",
        healthz.per_second, healthz.p50_ms, healthz.p99_ms
    );
    println!(
        "  ratios: status/healthz p50 {:.1}x p99 {:.1}x; healthz/submit rate {:.1}x, healthz/status rate {:.1}x",
        status.p50_ms / healthz.p50_ms,
        status.p99_ms / healthz.p99_ms,
        healthz.per_second / submits.per_second,
        healthz.per_second / status.per_second
    );
    println!(
        "service_load: submits {:.1}/s (2 workers on PostgreSQL, {CONNECTIONS} connections, {seconds} s); \
         status poll p50 {:.2} ms p99 {:.2} ms; healthz p50 {:.2} ms p99 {:.2} ms; \
         status/healthz p50 {:.1}x p99 {:.1}x; jobs processed by workers meanwhile: {processed_during}",
        submits.per_second,
        status.p50_ms,
        status.p99_ms,
        healthz.p50_ms,
        healthz.p99_ms,
        status.p50_ms / healthz.p50_ms,
        status.p99_ms / healthz.p99_ms,
    );
}
