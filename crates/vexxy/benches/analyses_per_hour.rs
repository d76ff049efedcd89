//! Analyses per hour on this host, in one run: a mixed batch through a
//! running `vexxy serve` (the real binary, SQLite, the local sandbox and
//! tracer), first one analysis at a time with fixed 30 s exercise windows
//! (the behaviour before concurrent workers and adaptive windows), then
//! concurrently with adaptive windows. Prints, per mode, analyses per
//! hour, p50/p95 latency from submission to completion (nearest rank,
//! from the jobs' own `created_at`/`completed_at`), wall time (first
//! submission to last completion) and the host's CPU use; the ratio of
//! the two rates (the goal is at least 5×); and every difference between
//! the verdicts of the two modes.
//!
//! The batch: 12 analyses, 4 each of the `nginx`, `nginx-imagefilter` and
//! `python-flask` test images, interleaved and submitted at once. Both
//! nginx images with the real Grype report of nginx
//! (`../shared/testdata`, with `allow_report_mismatch` as the other
//! service benches), python-flask with a Grype-shaped report of real
//! advisories of its Python packages at the versions the image has (as
//! `tests/analyze.rs` builds it: there is no third-party report of it).
//!
//! Every submission is a real analysis: each comes from an organisation
//! of its own. An organisation's identical requests are deduplicated into
//! one job, and its caches are its own, so no analysis reuses another's
//! stored profile, unpacked image or blobs: each one reads the image,
//! unpacks, catalogues, runs traced and decides from scratch. (A distinct
//! report per submission would not do: the stored profile of the same
//! image and run configuration stands in for the run.)
//!
//! - serial: `vexxy serve --workers 1`; every job `"fixed_window": true,
//!   "analysis_duration": 30`.
//! - concurrent: `vexxy serve` with its default workers (from this host's
//!   CPUs and memory; `VEXXY_BENCH_WORKERS` overrides); every job the
//!   default window: adaptive, at most the server's default duration (30 s).
//!
//! Verdicts: every job's OpenVEX statements, as (vulnerability, product
//! with its subcomponents) → (status, justification), are compared with
//! those of the first serial analysis of the same image; each difference
//! is printed, and any difference makes the bench exit 1 (the modes must
//! give identical verdicts).
//!
//! Run: `cargo bench -p vexxy --bench analyses_per_hour` (root, runc, eBPF
//! and the three test images; prints `SKIP` otherwise, fails in CI).
//! About 8 minutes on 2 cores, most of it the serial mode.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

/// Analyses of each image per mode.
const PER_IMAGE: usize = 4;
const IMAGES: [&str; 3] = ["nginx", "nginx-imagefilter", "python-flask"];
/// The exercise window of the serial mode (and the server's default
/// maximum of the adaptive one).
const WINDOW_SECS: u64 = 30;
/// Longest a mode may take before the bench gives up.
const MODE_LIMIT: Duration = Duration::from_secs(1800);

/// A `vexxy serve` stopped when dropped; its log in a file.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    /// SIGTERM, then SIGKILL after a minute.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `curl` with the key: the JSON answer; fails on any HTTP error.
fn curl(method: &str, url: &str, key: &str, body: Option<&[u8]>) -> Result<Value, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}"])
        .args(["-H", &format!("authorization: Bearer {key}")]);
    if body.is_some() {
        cmd.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    let mut child = cmd
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("curl: {e}"))?;
    {
        let mut stdin = child.stdin.take().ok_or("curl's stdin")?;
        if let Some(b) = body {
            stdin.write_all(b).map_err(|e| format!("curl: {e}"))?;
        }
    }
    let out = child.wait_with_output().map_err(|e| format!("curl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    if !out.status.success() || !code.trim().starts_with('2') {
        return Err(format!("{method} {url}: HTTP {} {body}", code.trim()));
    }
    serde_json::from_str(body).map_err(|e| format!("{method} {url}: {e}: {body}"))
}

fn admin(vexxy: &str, data: &str, args: &[&str]) -> Value {
    let out = Command::new(vexxy)
        .args(["admin", "--json", "--data-dir", data])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("vexxy admin");
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("admin's JSON")
}

/// A Grype-shaped report of real advisories of the Flask image's Python
/// packages, at the versions `vexxy sbom` finds in the image.
fn flask_report(vexxy: &str, image: &str) -> Value {
    let out = Command::new(vexxy)
        .args(["sbom", image, "-q", "--format", "json"])
        .output()
        .expect("vexxy sbom");
    assert!(
        out.status.success(),
        "vexxy sbom {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inventory: Value = serde_json::from_slice(&out.stdout).expect("inventory JSON");
    let versions: BTreeMap<&str, &str> = inventory["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| Some((p["name"].as_str()?, p["version"].as_str()?)))
        .collect();
    let matches: Vec<Value> = [
        ("python3-flask", "CVE-2023-30861", "High"),
        ("python3-requests", "CVE-2024-35195", "Medium"),
        ("python3-yaml", "CVE-2020-14343", "Critical"),
        ("python3-jinja2", "CVE-2024-56201", "Medium"),
    ]
    .iter()
    .filter_map(|(pkg, cve, severity)| {
        let version = versions.get(pkg)?;
        Some(json!({
            "vulnerability": {"id": cve, "namespace": "debian:distro:debian:12", "severity": severity,
                              "fix": {"versions": [], "state": "not-fixed"}},
            "artifact": {"name": pkg, "version": version, "type": "deb",
                         "purl": format!("pkg:deb/debian/{pkg}@{version}?arch=all&distro=debian-12")}
        }))
    })
    .collect();
    assert!(
        matches.len() >= 3,
        "the Flask image lacks its Python packages: {versions:?}"
    );
    json!({
        "matches": matches,
        "source": {"type": "image", "target": {"userInput": "python-flask:test"}},
        "distro": {"name": "debian", "version": "12"},
        "descriptor": {"name": "grype", "version": "0.92.2"}
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Serial,
    Concurrent,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Serial => "serial",
            Self::Concurrent => "concurrent",
        }
    }
}

/// One submission of the batch.
struct Submission {
    image: &'static str,
    /// Its number among the submissions of its image in its mode (1-based).
    nth: usize,
    key: String,
    body: Vec<u8>,
}

/// (vulnerability, product and subcomponents) → (status, justification).
type Verdicts = BTreeMap<(String, String), (String, String)>;

/// What one job gave.
struct Done {
    image: &'static str,
    nth: usize,
    latency: Duration,
    created_ms: i128,
    completed_ms: i128,
    verdicts: Verdicts,
    /// How long the traced run ran, and why its window ended
    /// (`run.window.ended` of the profile).
    ran_ms: Option<u64>,
    window_end: Option<String>,
}

/// What one mode measured.
struct Measured {
    mode: Mode,
    workers: String,
    jobs: Vec<Done>,
    wall: Duration,
    /// The most jobs seen running at once.
    most_at_once: usize,
    /// The share of all CPUs' time that was busy while the mode ran.
    cpu_share: f64,
    /// Busy CPU-seconds of the whole host while the mode ran.
    cpu_secs: f64,
    cpus: usize,
}

impl Measured {
    fn per_hour(&self) -> f64 {
        self.jobs.len() as f64 * 3600.0 / self.wall.as_secs_f64()
    }

    /// Latency at percentile `p` (nearest rank).
    fn latency(&self, p: f64) -> Duration {
        let mut all: Vec<Duration> = self.jobs.iter().map(|j| j.latency).collect();
        all.sort();
        let rank = ((p / 100.0) * all.len() as f64).ceil().max(1.0) as usize;
        all[rank.min(all.len()) - 1]
    }
}

/// Busy and total jiffies of all CPUs (`/proc/stat`).
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let line = stat.lines().next().expect("cpu line");
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    // idle and iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn millis(rfc3339: &Value) -> Option<i128> {
    let t = time::OffsetDateTime::parse(
        rfc3339.as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    Some(t.unix_timestamp_nanos() / 1_000_000)
}

fn verdicts(vex: &Value) -> Verdicts {
    let mut out = Verdicts::new();
    for st in vex["statements"].as_array().into_iter().flatten() {
        let vuln = st["vulnerability"]["name"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let value = (
            st["status"].as_str().unwrap_or("?").to_owned(),
            st["justification"].as_str().unwrap_or("").to_owned(),
        );
        for product in st["products"].as_array().into_iter().flatten() {
            let subs: BTreeSet<&str> = product["subcomponents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["@id"].as_str())
                .collect();
            let mut name = product["@id"].as_str().unwrap_or("?").to_owned();
            if !subs.is_empty() {
                let _ = write!(
                    name,
                    " [{}]",
                    subs.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
            out.insert((vuln.clone(), name), value.clone());
        }
    }
    out
}

/// The run's duration and why its window ended, from the job's profile.
fn window(base: &str, key: &str, results: &Value) -> (Option<u64>, Option<String>) {
    let Some(link) = results["links"]["profile"].as_str() else {
        return (None, None);
    };
    let url = if link.starts_with("http") {
        link.to_owned()
    } else {
        format!("{base}{link}")
    };
    let Ok(profile) = curl("GET", &url, key, None) else {
        return (None, None);
    };
    let run = &profile["run"];
    (
        run["duration_ms"].as_u64(),
        run["window"]["ended"].as_str().map(str::to_owned),
    )
}

fn run_mode(
    mode: Mode,
    vexxy: &str,
    images: &BTreeMap<&'static str, String>,
    reports: &BTreeMap<&'static str, Value>,
) -> Result<Measured, String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = work.path().join("data").display().to_string();
    let roots = vexxy_testkit_host::test_images_dir().display().to_string();

    // the batch, interleaved: nginx, nginx-imagefilter, python-flask, nginx, …
    let mut batch = Vec::new();
    for nth in 1..=PER_IMAGE {
        for image in IMAGES {
            let org = format!("{}-{image}-{nth}", mode.name());
            admin(vexxy, &data, &["create-org", &org, "--tier", "enterprise"]);
            let key = admin(vexxy, &data, &["create-key", &org])["key"]
                .as_str()
                .expect("key")
                .to_owned();
            let mut config = json!({"allow_report_mismatch": true});
            if mode == Mode::Serial {
                config["fixed_window"] = json!(true);
                config["analysis_duration"] = json!(WINDOW_SECS);
            }
            let body = serde_json::to_vec(&json!({
                "image_ref": images[image],
                "config": config,
                "scan_report": reports[image],
            }))
            .map_err(|e| e.to_string())?;
            batch.push(Submission {
                image,
                nth,
                key,
                body,
            });
        }
    }

    let log = work.path().join("serve.log");
    let mut cmd = Command::new(vexxy);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &data])
        .args(["--allow-local-images", &roots])
        .args([
            "--default-duration",
            &format!("{WINDOW_SECS}s"),
            "--max-duration",
            "10m",
        ]);
    match (mode, std::env::var("VEXXY_BENCH_WORKERS")) {
        (Mode::Serial, _) => {
            cmd.args(["--workers", "1"]);
        }
        (Mode::Concurrent, Ok(n)) if !n.is_empty() => {
            cmd.args(["--workers", &n]);
        }
        // the host's default
        (Mode::Concurrent, _) => {
            cmd.env_remove("VEXXY_WORKERS");
        }
    }
    let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut child = cmd
        .env("VEXXY_CACHE_DIR", work.path().join("cache"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("starting vexxy serve: {e}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("serve's stdout")?)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("vexxy serve said {line:?}"))?
        .to_owned();
    let mut server = Server { child, base, log };
    let workers = workers_line(&std::fs::read_to_string(&server.log).unwrap_or_default());

    let cpu_before = cpu_jiffies();
    let began = Instant::now();
    let mut pending = Vec::new();
    for s in &batch {
        let answer = curl(
            "POST",
            &format!("{}/api/v1/analysis/submit", server.base),
            &s.key,
            Some(&s.body),
        )?;
        if answer["deduplicated"] != json!(false) {
            return Err(format!("a submission was deduplicated: {answer}"));
        }
        let id = answer["job_id"].as_str().ok_or("no job id")?.to_owned();
        pending.push((id, s));
    }
    let mut jobs = Vec::new();
    let mut most_at_once = 0;
    while !pending.is_empty() {
        if began.elapsed() > MODE_LIMIT {
            return Err(format!(
                "{} jobs not complete after {MODE_LIMIT:?}\n{}",
                pending.len(),
                server.log_tail(30)
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
        let mut still = Vec::new();
        let mut at_once = 0;
        for (id, s) in pending {
            let st = curl(
                "GET",
                &format!("{}/api/v1/analysis/{id}/status", server.base),
                &s.key,
                None,
            )?;
            match st["status"].as_str() {
                Some("complete") => {
                    let results = curl(
                        "GET",
                        &format!("{}/api/v1/analysis/{id}/results", server.base),
                        &s.key,
                        None,
                    )?;
                    let created = millis(&st["created_at"]).ok_or("no created_at")?;
                    let completed = millis(&st["completed_at"]).ok_or("no completed_at")?;
                    let (ran_ms, window_end) = window(&server.base, &s.key, &results);
                    jobs.push(Done {
                        image: s.image,
                        nth: s.nth,
                        latency: Duration::from_millis(
                            u64::try_from(completed - created).unwrap_or(0),
                        ),
                        created_ms: created,
                        completed_ms: completed,
                        verdicts: verdicts(&results["vex_document"]),
                        ran_ms,
                        window_end,
                    });
                }
                Some("failed" | "cancelled") => {
                    return Err(format!(
                        "{} job {id} ({} #{}): {st}\n{}",
                        mode.name(),
                        s.image,
                        s.nth,
                        server.log_tail(30)
                    ));
                }
                Some("running" | "analyzing") => {
                    at_once += 1;
                    still.push((id, s));
                }
                _ => still.push((id, s)),
            }
        }
        most_at_once = most_at_once.max(at_once);
        pending = still;
    }
    let cpu_after = cpu_jiffies();
    let cpu_window = began.elapsed();
    server.stop();
    let first = jobs.iter().map(|j| j.created_ms).min().unwrap_or(0);
    let last = jobs.iter().map(|j| j.completed_ms).max().unwrap_or(0);
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let busy = cpu_after.0.saturating_sub(cpu_before.0) as f64;
    let total = cpu_after.1.saturating_sub(cpu_before.1).max(1) as f64;
    let cpu_share = busy / total;
    Ok(Measured {
        mode,
        workers,
        wall: Duration::from_millis(u64::try_from(last - first).unwrap_or(0)),
        most_at_once,
        cpu_share,
        cpu_secs: cpu_share * cpus as f64 * cpu_window.as_secs_f64(),
        cpus,
        jobs,
    })
}

/// What `vexxy serve` said about its workers: the budget from the host
/// (the last field of its line), or the configured number.
fn workers_line(log: &str) -> String {
    let Some(line) = log.lines().find(|l| l.contains("jobs at once")) else {
        return "?".into();
    };
    if let Some((_, budget)) = line.split_once("budget=") {
        return budget.trim().to_owned();
    }
    line.split_once("workers=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("?")
        .to_owned()
}

fn print_mode(m: &Measured) {
    let ran: Vec<u64> = m.jobs.iter().filter_map(|j| j.ran_ms).collect();
    let mean_run = if ran.is_empty() {
        "?".to_owned()
    } else {
        format!(
            "{:.1} s",
            ran.iter().sum::<u64>() as f64 / ran.len() as f64 / 1000.0
        )
    };
    let mut ends: BTreeMap<&str, usize> = BTreeMap::new();
    for j in &m.jobs {
        *ends
            .entry(j.window_end.as_deref().unwrap_or("not recorded"))
            .or_default() += 1;
    }
    println!(
        "  {:<10} workers: {} (at most {} jobs seen running at once)\n             {:>7.1} analyses/hour   p50 {:>6.1} s   p95 {:>6.1} s   wall {:>6.1} s\n             traced run {mean_run} on average; window ended: {ends:?}\n             host CPU (every process) {:.0} % of {} cores busy: {:.1} CPU-s per analysis",
        m.mode.name(),
        m.workers,
        m.most_at_once,
        m.per_hour(),
        m.latency(50.0).as_secs_f64(),
        m.latency(95.0).as_secs_f64(),
        m.wall.as_secs_f64(),
        100.0 * m.cpu_share,
        m.cpus,
        m.cpu_secs / m.jobs.len() as f64,
    );
}

/// Every difference between the verdicts of each job and the first
/// serial job of the same image, one line each.
fn differences(serial: &Measured, concurrent: &Measured) -> Vec<String> {
    let mut out = Vec::new();
    for image in IMAGES {
        let Some(reference) = serial
            .jobs
            .iter()
            .filter(|j| j.image == image)
            .min_by_key(|j| j.nth)
        else {
            continue;
        };
        let others = serial
            .jobs
            .iter()
            .map(|j| (Mode::Serial, j))
            .chain(concurrent.jobs.iter().map(|j| (Mode::Concurrent, j)))
            .filter(|(mode, j)| {
                j.image == image && !(*mode == Mode::Serial && j.nth == reference.nth)
            });
        for (mode, job) in others {
            let keys: BTreeSet<&(String, String)> = reference
                .verdicts
                .keys()
                .chain(job.verdicts.keys())
                .collect();
            for key in keys {
                let (a, b) = (reference.verdicts.get(key), job.verdicts.get(key));
                if a == b {
                    continue;
                }
                let show = |v: Option<&(String, String)>| match v {
                    None => "no statement".to_owned(),
                    Some((status, j)) if j.is_empty() => status.clone(),
                    Some((status, j)) => format!("{status}/{j}"),
                };
                out.push(format!(
                    "{image}: {} in {}: serial #{} {} | {} #{} {}",
                    key.0,
                    key.1,
                    reference.nth,
                    show(a),
                    mode.name(),
                    job.nth,
                    show(b)
                ));
            }
        }
    }
    out
}

fn main() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let mut images = BTreeMap::new();
    for name in IMAGES {
        let Some(reference) = vexxy_testkit_host::test_image_ref(name) else {
            return;
        };
        images.insert(name, reference);
    }
    let vexxy = env!("CARGO_BIN_EXE_vexxy");
    let grype: Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json",
        ))
        .expect("the nginx Grype report"),
    )
    .expect("JSON");
    let mut reports = BTreeMap::new();
    reports.insert("nginx", grype.clone());
    reports.insert("nginx-imagefilter", grype);
    reports.insert("python-flask", flask_report(vexxy, &images["python-flask"]));

    let total = PER_IMAGE * IMAGES.len();
    println!(
        "analyses_per_hour: {total} analyses per mode ({PER_IMAGE} each of {}), each from an organisation of its own (no cache shared), SQLite, this host",
        IMAGES.join(", ")
    );
    let mut measured = Vec::new();
    for mode in [Mode::Serial, Mode::Concurrent] {
        match run_mode(mode, vexxy, &images, &reports) {
            Ok(m) => {
                print_mode(&m);
                measured.push(m);
            }
            Err(e) => {
                eprintln!("analyses_per_hour: the {} mode failed: {e}", mode.name());
                std::process::exit(1);
            }
        }
    }
    let (serial, concurrent) = (&measured[0], &measured[1]);
    let ratio = concurrent.per_hour() / serial.per_hour();
    println!(
        "  concurrent / serial: {ratio:.1}x analyses per hour (goal 5x: {}); p50 latency {:.1} s -> {:.1} s",
        if ratio >= 5.0 { "met" } else { "NOT met" },
        serial.latency(50.0).as_secs_f64(),
        concurrent.latency(50.0).as_secs_f64()
    );
    let diffs = differences(serial, concurrent);
    if diffs.is_empty() {
        let counts: Vec<String> = IMAGES
            .iter()
            .filter_map(|image| {
                let j = serial.jobs.iter().find(|j| j.image == *image)?;
                Some(format!("{image} {}", j.verdicts.len()))
            })
            .collect();
        println!(
            "  verdicts: identical in all {} analyses (statements per image: {})",
            2 * total,
            counts.join(", ")
        );
    } else {
        println!(
            "  verdicts: {} difference(s) from the first serial analysis of each image:",
            diffs.len()
        );
        for d in &diffs {
            println!("    {d}");
        }
        std::process::exit(1);
    }
}
