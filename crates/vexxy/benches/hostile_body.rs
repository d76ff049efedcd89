//! What one hostile submission costs the server: a 60 MB body whose
//! `scan_report` is 20 million empty objects
//! (`{"image_ref":"x","scan_report":{"matches":[{},{},…]}}`), sent to the
//! real `vexxy serve --workers 0` (SQLite, loopback) three ways:
//!
//! 1. from an organisation whose monthly quota is spent (429 expected:
//!    the quota is checked before the body is read);
//! 2. from an organisation that may submit (413 expected: the scan is
//!    refused once it passes its value-count limit, long before 60 MB);
//! 3. without an API key (401 expected).
//!
//! Each case gets a fresh server. After it is ready and idle, its resident
//! set (VmRSS) is read and its high-water mark reset (`5` to
//! `/proc/<pid>/clear_refs`); after the answer, the high-water mark
//! (VmHWM) is the case's peak. The body is generated while it is sent
//! (64 KiB at a time), never held in memory. Prints, per case,
//! `hostile body: <case> → <status>, peak RSS +<N> MB above idle`, and a
//! final line against the 100 MB target; fails when a status is not the
//! expected one or a peak passes the target. Every wait is bounded (30 s
//! to start, 60 s per request).
//!
//! Run: `cargo bench -p vexxy --bench hostile_body` (Linux; no root).

use std::{
    fs::File,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

/// Empty objects in the report.
const ELEMENTS: usize = 20_000_000;
/// The most a hostile body may add to the server's resident set.
const TARGET_MB: f64 = 100.0;
const START_LIMIT: Duration = Duration::from_secs(30);
const REQUEST_LIMIT: Duration = Duration::from_secs(60);

/// A running `vexxy serve`: SIGTERM and waited for when dropped.
struct Server {
    child: Child,
    addr: String,
    log: std::path::PathBuf,
}

impl Server {
    fn start(vexxy: &str, data: &Path, log: std::path::PathBuf) -> Self {
        let mut child = Command::new(vexxy)
            .args(["serve", "--workers", "0", "--listen", "127.0.0.1:0", "-q"])
            .arg("--data-dir")
            .arg(data)
            .env_remove("VEXXY_METRICS_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("start vexxy serve");
        let stdout = child.stdout.take().expect("serve's stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut server = Self {
            child,
            addr: String::new(),
            log,
        };
        let line = rx.recv_timeout(START_LIMIT).unwrap_or_else(|_| {
            panic!(
                "serve did not print `listening on …` within {START_LIMIT:?}:\n{}",
                server.log_tail()
            )
        });
        server.addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("serve said {line:?}"))
            .to_owned();
        // ready: the database answers
        let began = Instant::now();
        while request(&server.addr, "GET", "/readyz", None, None).0 != 200 {
            assert!(began.elapsed() < START_LIMIT, "never ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `VmRSS` and `VmHWM` in bytes.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
                .unwrap_or_else(|| panic!("no {name} in /proc/<pid>/status"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Resets the high-water mark to the current resident set; false
    /// where the kernel does not allow it.
    fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let began = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if began.elapsed() < Duration::from_secs(15) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

/// One request over a fresh connection: status and body.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(REQUEST_LIMIT)).expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    if let Some(key) = key {
        head.push_str(&format!("authorization: Bearer {key}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).expect("send");
    if let Some(body) = body {
        conn.write_all(body).expect("send body");
    }
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    parse_answer(&answer)
}

fn parse_answer(answer: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The hostile body's parts: the head, one element (`{},`) repeated, the
/// last element and the tail.
const HEAD: &[u8] = br#"{"image_ref":"x","scan_report":{"matches":["#;
const TAIL: &[u8] = b"{}]}}";

fn hostile_len() -> usize {
    HEAD.len() + 3 * (ELEMENTS - 1) + TAIL.len()
}

/// Sends the hostile body, generated 64 KiB at a time, while another
/// thread reads the answer; stops sending once the answer is in (or the
/// server closed). Returns the status, the answer's body, how long the
/// answer took and how much of the body was sent.
fn send_hostile(addr: &str, key: Option<&str>) -> (u16, String, Duration, usize) {
    let conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(REQUEST_LIMIT)).expect("timeout");
    conn.set_write_timeout(Some(REQUEST_LIMIT))
        .expect("timeout");
    let mut reader = conn.try_clone().expect("clone");
    let answered = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let done = Arc::clone(&answered);
    let read = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
        }
        done.store(true, Ordering::SeqCst);
        (answer, began.elapsed())
    });
    let mut writer = conn;
    let mut head = format!(
        "POST /api/v1/analysis/submit HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n",
        hostile_len()
    );
    if let Some(key) = key {
        head.push_str(&format!("authorization: Bearer {key}\r\n"));
    }
    head.push_str("\r\n");
    let chunk = b"{},".repeat((64 << 10) / 3);
    let per_chunk = chunk.len() / 3;
    // body bytes sent
    let mut sent = 0;
    let mut send = |bytes: &[u8], sent: &mut usize| -> bool {
        if answered.load(Ordering::SeqCst) {
            return false;
        }
        match writer.write_all(bytes) {
            Ok(()) => {
                *sent += bytes.len();
                true
            }
            Err(_) => false, // the server answered and closed
        }
    };
    let mut head_sent = 0;
    if send(head.as_bytes(), &mut head_sent) && send(HEAD, &mut sent) {
        let mut left = ELEMENTS - 1;
        while left > 0 {
            let n = left.min(per_chunk);
            if !send(&chunk[..3 * n], &mut sent) {
                break;
            }
            left -= n;
        }
        if left == 0 {
            send(TAIL, &mut sent);
        }
    }
    let (answer, took) = read.join().expect("reader");
    let _ = writer.shutdown(std::net::Shutdown::Both);
    let (status, body) = parse_answer(&answer);
    (status, body, took, sent)
}

fn admin(vexxy: &str, data: &Path, args: &[&str]) -> Value {
    let out = Command::new(vexxy)
        .args(["admin", "-q", "--json", "--data-dir"])
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

fn key_of(vexxy: &str, data: &Path, org: &str, quota: &str) -> String {
    let created = admin(
        vexxy,
        data,
        &[
            "create-org",
            org,
            "--tier",
            "ultimate",
            "--monthly-quota",
            quota,
        ],
    );
    assert!(created["id"].is_string(), "create-org said {created}");
    admin(vexxy, data, &["create-key", org])["key"]
        .as_str()
        .expect("create-key prints the key")
        .to_owned()
}

struct Case {
    name: &'static str,
    key: Option<String>,
    want: u16,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

fn main() {
    if !Path::new("/proc/self/status").exists() {
        println!("SKIP hostile_body: needs Linux /proc");
        return;
    }
    let vexxy = env!("CARGO_BIN_EXE_vexxy");
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    let spent = key_of(vexxy, &data, "spent", "1");
    let valid = key_of(vexxy, &data, "valid", "1000000");

    // spend the quota of `spent` with one real submission
    {
        let server = Server::start(vexxy, &data, work.path().join("serve-0.log"));
        let (status, body) = request(
            &server.addr,
            "POST",
            "/api/v1/analysis/submit",
            Some(&spent),
            Some(br#"{"image_ref":"registry.example/app:1"}"#),
        );
        assert_eq!(status, 202, "spending the quota: {body}");
    }

    let cases = [
        Case {
            name: "spent quota",
            key: Some(spent),
            want: 429,
        },
        Case {
            name: "valid org",
            key: Some(valid),
            want: 413,
        },
        Case {
            name: "no key",
            key: None,
            want: 401,
        },
    ];
    println!(
        "hostile body: {:.1} MB, scan_report of {ELEMENTS} empty objects, to vexxy serve --workers 0 (SQLite, loopback), a fresh server per case",
        hostile_len() as f64 / 1e6
    );
    let mut worst = 0.0f64;
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let server = Server::start(
            vexxy,
            &data,
            work.path().join(format!("serve-{}.log", i + 1)),
        );
        // settle, then note the idle resident set and reset the peak
        let _ = request(&server.addr, "GET", "/healthz", None, None);
        std::thread::sleep(Duration::from_millis(300));
        let (idle, idle_peak) = server.memory();
        let reset = server.reset_peak();
        let (status, body, took, sent) = send_hostile(&server.addr, case.key.as_deref());
        let (_, peak) = server.memory();
        let base = if reset { idle } else { idle.min(idle_peak) };
        let above = mb(peak.saturating_sub(base));
        worst = worst.max(above);
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| body.chars().take(120).collect());
        println!(
            "hostile body: {} → {status}, peak RSS +{above:.1} MB above idle ({:.1} MB idle; answered in {:.2} s after {:.1} MB sent: {message})",
            case.name,
            mb(idle),
            took.as_secs_f64(),
            sent as f64 / 1e6,
        );
        if !reset {
            println!(
                "  (the kernel refused to reset the high-water mark; the peak includes start-up)"
            );
        }
        if status != case.want {
            failures.push(format!(
                "{}: answered {status}, expected {}:\n{}",
                case.name,
                case.want,
                server.log_tail()
            ));
        }
    }
    let verdict = if worst <= TARGET_MB { "within" } else { "OVER" };
    println!(
        "hostile body: worst peak +{worst:.1} MB above idle; target +{TARGET_MB:.0} MB: {verdict} target (before this change: 4.7 GB for 9–13 s)"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        worst <= TARGET_MB,
        "a hostile body cost +{worst:.1} MB, over the {TARGET_MB} MB target"
    );
}
