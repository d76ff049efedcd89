//! Exercising real servers over real sockets: a tiny HTTP server on a test
//! thread, and (as root) a server inside a fresh network namespace.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vexxy_exercise::{
    probe_http, probe_http_unless, run_script, run_script_captured, run_script_captured_unless,
    wait_for_ports, ExerciseError, ProbeBudget, Target, MAX_OUTPUT_BYTES,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn target(ports: &[u16]) -> Target {
    Target {
        netns: None,
        host: LOCALHOST,
        ports: ports.to_vec(),
    }
}

fn budget(max_requests: u32, within: Duration) -> ProbeBudget {
    ProbeBudget {
        max_requests,
        deadline: Instant::now() + within,
        per_request_timeout: Duration::from_secs(2),
    }
}

// ---------------------------------------------------------------------------
// a tiny HTTP server

/// Requests the server saw, as (method, path).
type Log = Arc<Mutex<Vec<(String, String)>>>;

struct Server {
    port: u16,
    log: Log,
}

impl Server {
    fn requests(&self) -> Vec<(String, String)> {
        self.log.lock().unwrap().clone()
    }
}

const HOME: &str = r#"<!doctype html>
<html><head><title>home</title><script src="/static/app.js"></script></head>
<body>
  <a href="/a">a</a> <a href="b">b</a> <a href="/a#top">a again</a>
  <a href="http://example.com/">external</a> <img src="//example.com/logo.png">
  <a href="/away">goes elsewhere</a> <a href="mailto:admin@example.com">mail</a>
</body></html>"#;

const PAGE_A: &str = r#"<html><body><a href="/deep/c">c</a> <a href="/">home</a> <a href="/moved">moved</a></body></html>"#;

/// Serves the test site; every response is delayed by `delay`.
fn serve(delay: Duration) -> Server {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let server_log = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let log = Arc::clone(&server_log);
            std::thread::spawn(move || handle(stream, &log, delay));
        }
    });
    Server { port, log }
}

fn handle(stream: TcpStream, log: &Log, delay: Duration) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return; // a readiness probe: connect and close
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    log.lock().unwrap().push((method.clone(), path.clone()));
    std::thread::sleep(delay);

    let html = "text/html; charset=utf-8";
    let (status, extra, content_type, body): (&str, &str, &str, &str) = if method == "OPTIONS" {
        (
            "204 No Content",
            "Allow: GET, HEAD, OPTIONS\r\n",
            "text/plain",
            "",
        )
    } else {
        match path.as_str() {
            "/" => ("200 OK", "", html, HOME),
            "/a" => ("200 OK", "", html, PAGE_A),
            "/b" => (
                "200 OK",
                "",
                "text/plain",
                "<a href=\"/not-html\">plain text is not parsed</a>",
            ),
            "/static/app.js" => (
                "200 OK",
                "",
                "application/javascript",
                "console.log('/js-path');",
            ),
            "/deep/c" | "/a2" => ("200 OK", "", html, "<html><body>leaf</body></html>"),
            "/moved" => (
                "301 Moved Permanently",
                "Location: /a2\r\n",
                "text/plain",
                "",
            ),
            "/away" => (
                "302 Found",
                "Location: http://example.com/\r\n",
                "text/plain",
                "",
            ),
            "/robots.txt" => ("200 OK", "", "text/plain", "User-agent: *\n"),
            _ => ("404 Not Found", "", "text/plain", "not found"),
        }
    };
    let mut stream = reader.into_inner();
    let head = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(body.as_bytes());
    }
}

/// A port that nothing listens on (it was free a moment ago).
fn free_port() -> u16 {
    TcpListener::bind((LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------
// the prober

#[test]
fn prober_crawls_same_origin_links_and_common_paths() {
    let server = serve(Duration::ZERO);
    let stats = probe_http(
        &target(&[server.port]),
        &[server.port],
        &budget(200, Duration::from_secs(30)),
    )
    .unwrap();
    let seen = server.requests();

    // Every request reached this server: nothing went to example.com.
    assert_eq!(stats.requests, seen.len() as u64, "{seen:?}");
    assert!(!stats.by_status.contains_key(&0), "{:?}", stats.by_status);
    for path in [
        "/",
        "/a",
        "/b",
        "/static/app.js",
        "/deep/c",
        "/moved",
        "/a2",
        "/away",
        "/robots.txt",
        "/favicon.ico",
        "/index.html",
        "/health",
        "/healthz",
        "/status",
        "/api",
        "/login",
        "/admin",
        "/static/",
        "/.well-known/security.txt",
    ] {
        assert!(
            stats.paths.contains(path),
            "{path} not requested: {:?}",
            stats.paths
        );
    }
    assert!(
        stats.paths.iter().any(|p| p.starts_with("/nonexistent-")),
        "{:?}",
        stats.paths
    );
    assert!(
        !stats.paths.contains("/not-html"),
        "a text/plain body was parsed"
    );
    assert!(!stats.paths.contains("/js-path"));
    assert!(
        stats.paths.iter().all(|p| p.starts_with('/')),
        "{:?}",
        stats.paths
    );
    assert!(seen.contains(&("HEAD".into(), "/".into())), "{seen:?}");
    assert!(seen.contains(&("OPTIONS".into(), "/".into())), "{seen:?}");
    // The crawl comes first, as it always did: 8 crawled pages + HEAD +
    // OPTIONS + 11 common paths + 1 random path, then the 9 OpenAPI
    // document paths (none served here); each GET path once.
    let crawl = &seen[..31];
    let mut gets: Vec<_> = crawl
        .iter()
        .filter(|(m, _)| m == "GET")
        .map(|(_, p)| p.clone())
        .collect();
    let total = gets.len();
    gets.sort();
    gets.dedup();
    assert_eq!(gets.len(), total, "a path was fetched twice: {seen:?}");
    assert_eq!(stats.requests - stats.fuzz_requests, 31, "{seen:?}");
    assert_eq!(stats.openapi, None);
    // Then the fuzz phase: 11 unusual-header requests to / and 5 other
    // methods on / and three crawled paths (no query or form crawled).
    let fuzz = &seen[31..];
    assert_eq!(stats.fuzz_requests, 11 + 4 * 5, "{fuzz:?}");
    assert_eq!(fuzz.len() as u64, stats.fuzz_requests);
    for method in ["PUT", "DELETE", "PATCH", "POST", "TRACE"] {
        assert_eq!(
            fuzz.iter().filter(|(m, _)| m == method).count(),
            4,
            "{method}: {fuzz:?}"
        );
    }
    assert_eq!(
        fuzz.iter().filter(|r| r.0 == "GET" && r.1 == "/").count(),
        11
    );
    // the crawl's own answers are all there
    let expected = BTreeMap::from([(200, 8), (204, 1), (301, 1), (302, 1), (404, 20)]);
    for (code, n) in expected {
        assert!(
            stats.by_status.get(&code).copied().unwrap_or(0) >= n,
            "{code}: {:?}",
            stats.by_status
        );
    }
}

#[test]
fn prober_stops_at_the_request_budget() {
    let server = serve(Duration::ZERO);
    let stats = probe_http(
        &target(&[server.port]),
        &[server.port],
        &budget(5, Duration::from_secs(30)),
    )
    .unwrap();
    assert_eq!(stats.requests, 5);
    assert_eq!(server.requests().len(), 5);
    assert_eq!(stats.by_status.values().sum::<u64>(), 5);
}

#[test]
fn prober_stops_at_the_deadline() {
    let server = serve(Duration::from_millis(150));
    let started = Instant::now();
    let stats = probe_http(
        &target(&[server.port]),
        &[server.port],
        &budget(200, Duration::from_millis(500)),
    )
    .unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!((1..=5).contains(&stats.requests), "{stats:?}");
}

#[test]
fn prober_stops_when_told() {
    // 200 ms a request, 30 s of budget: without the flag this is 18 s
    let server = serve(Duration::from_millis(200));
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let stats = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(500));
            stop.store(true, Ordering::Relaxed);
        });
        probe_http_unless(
            &target(&[server.port]),
            &[server.port],
            &budget(200, Duration::from_secs(30)),
            &stop,
        )
        .unwrap()
    });
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    assert!((1..=4).contains(&stats.requests), "{stats:?}");
}

#[test]
fn prober_counts_requests_without_answers_as_zero() {
    // One port that accepts but never answers, one that refuses.
    let silent = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let refused = free_port();
    let budget = ProbeBudget {
        max_requests: 4,
        deadline: Instant::now() + Duration::from_secs(30),
        per_request_timeout: Duration::from_millis(200),
    };
    let started = Instant::now();
    let stats = probe_http(
        &target(&[silent_port, refused]),
        &[silent_port, refused],
        &budget,
    )
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.by_status, BTreeMap::from([(0, 4)]));
    // Ports take turns: both got `GET /` first.
    assert!(stats.paths.contains("/"));
}

// ---------------------------------------------------------------------------
// readiness

#[test]
fn waits_for_a_listener_that_starts_late() {
    let port = free_port();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let listener = TcpListener::bind((LOCALHOST, port)).unwrap();
        // Keep it open long enough to be found.
        std::thread::sleep(Duration::from_secs(3));
        drop(listener);
    });
    let started = Instant::now();
    let ready = wait_for_ports(&target(&[port]), Instant::now() + Duration::from_secs(10)).unwrap();
    assert_eq!(ready.ready, [port]);
    let after = ready.after.unwrap();
    assert!(
        after >= Duration::from_millis(250) && after < Duration::from_secs(4),
        "{after:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    late.join().unwrap();
}

#[test]
fn a_port_that_never_opens_returns_at_the_deadline() {
    let port = free_port();
    let started = Instant::now();
    let ready = wait_for_ports(
        &target(&[port]),
        Instant::now() + Duration::from_millis(400),
    )
    .unwrap();
    let elapsed = started.elapsed();
    assert!(ready.ready.is_empty() && ready.after.is_none(), "{ready:?}");
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[test]
fn one_ready_port_gives_the_others_a_grace_period() {
    let server = serve(Duration::ZERO);
    let closed = free_port();
    let started = Instant::now();
    let ready = wait_for_ports(
        &target(&[closed, server.port]),
        Instant::now() + Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(ready.ready, [server.port]);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= vexxy_exercise::READY_GRACE && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}

#[test]
fn no_ports_is_ready_at_once() {
    let ready = wait_for_ports(&target(&[]), Instant::now() + Duration::from_secs(10)).unwrap();
    assert!(ready.ready.is_empty());
}

#[test]
fn a_missing_namespace_is_an_error_naming_it() {
    let t = Target {
        netns: Some("/proc/0/ns/net-missing".into()),
        host: LOCALHOST,
        ports: vec![80],
    };
    let err = wait_for_ports(&t, Instant::now() + Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, ExerciseError::NetNs { .. }), "{err}");
    assert!(err.to_string().contains("/proc/0/ns/net-missing"), "{err}");
    let err = probe_http(&t, &[80], &budget(1, Duration::from_secs(1))).unwrap_err();
    assert!(matches!(err, ExerciseError::NetNs { .. }), "{err}");
}

// ---------------------------------------------------------------------------
// the test script

fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("test.sh");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn script_gets_the_target_environment_and_its_exit_code_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        dir.path(),
        r#"
[ "$VEXXY_TARGET_HOST" = 127.0.0.1 ] || exit 11
[ "$VEXXY_TARGET_PORTS" = "80,443" ] || exit 12
[ "$VEXXY_TARGET_URL" = "http://127.0.0.1:80/" ] || exit 13
[ "$EXTRA" = "given value" ] || exit 14
echo to-stdout; echo to-stderr >&2
exit 3
"#,
    );
    let env = [("EXTRA".to_owned(), "given value".to_owned())];
    let run = run_script_captured(
        &target(&[80, 443]),
        &path,
        &env,
        Instant::now() + Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(
        run.outcome.exit_code,
        Some(3),
        "{}",
        String::from_utf8_lossy(&run.output)
    );
    assert_eq!(run.outcome.path, path.to_string_lossy());
    let output = String::from_utf8_lossy(&run.output);
    assert!(
        output.contains("to-stdout") && output.contains("to-stderr"),
        "{output}"
    );
    assert!(!run.output_truncated);
}

#[test]
fn script_output_keeps_the_last_64_kib() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(dir.path(), "i=0; while [ $i -lt 3000 ]; do echo \"line $i padding padding padding\"; i=$((i+1)); done; echo last-line\n");
    let run = run_script_captured(
        &target(&[]),
        &path,
        &[],
        Instant::now() + Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(run.outcome.exit_code, Some(0));
    assert!(run.output_truncated);
    assert_eq!(run.output.len(), MAX_OUTPUT_BYTES);
    assert!(run.output.ends_with(b"last-line\n"));
}

#[test]
fn script_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("bg.pid");
    let path = script(
        dir.path(),
        &format!("sleep 30 &\necho $! > {}\nsleep 30\n", pidfile.display()),
    );
    let started = Instant::now();
    let outcome = run_script(
        &target(&[80]),
        &path,
        &[],
        Instant::now() + Duration::from_millis(500),
    )
    .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(outcome.exit_code, None);
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(outcome.duration_ms >= 500, "{outcome:?}");

    // The background sleep was killed with the group.
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
    assert!(
        gone_within(&pid, Duration::from_secs(3)),
        "background process {pid} survived"
    );
}

#[test]
fn a_stopped_script_is_killed_with_its_process_group_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("bg.pid");
    let path = script(
        dir.path(),
        &format!("sleep 30 &\necho $! > {}\nsleep 30\n", pidfile.display()),
    );
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let run = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
        });
        run_script_captured_unless(
            &target(&[]),
            &path,
            &[],
            Instant::now() + Duration::from_secs(30),
            &stop,
        )
        .unwrap()
    });
    let elapsed = started.elapsed();
    assert_eq!(run.outcome.exit_code, None);
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
    assert!(
        gone_within(&pid, Duration::from_secs(3)),
        "background process {pid} survived"
    );
}

/// Whether /proc/PID disappears (or is a zombie) within `limit`.
fn gone_within(pid: &str, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) => {
                let state = stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .next();
                if state == Some("Z") {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_missing_script_is_an_error_naming_it() {
    let err = run_script(
        &target(&[80]),
        Path::new("/nonexistent/dir/test.sh"),
        &[],
        Instant::now(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ExerciseError::ScriptUnreadable { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("/nonexistent/dir/test.sh"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = run_script(&target(&[80]), dir.path(), &[], Instant::now()).unwrap_err();
    assert!(matches!(err, ExerciseError::ScriptNotAFile { .. }), "{err}");
}

// ---------------------------------------------------------------------------
// a real network namespace (needs root)

/// A network namespace held open by `unshare --net sleep 60`, with
/// loopback up; processes started in it are killed on drop.
struct NetNs {
    holder: Child,
    others: Vec<Child>,
}

impl NetNs {
    /// `None` when not root: a gate (`SKIP` outside CI, a failure in CI).
    fn new() -> Option<Self> {
        if !vexxy_testkit::require_root("creating a network namespace") {
            return None;
        }
        let holder = Command::new("unshare")
            .args(["--net", "sleep", "60"])
            .spawn()
            .unwrap();
        let ns = Self {
            holder,
            others: Vec::new(),
        };
        // Wait until unshare has moved into the new namespace.
        let mine = std::fs::read_link("/proc/self/ns/net").unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while std::fs::read_link(ns.path())
            .ok()
            .is_none_or(|link| link == mine)
        {
            assert!(
                Instant::now() < until,
                "unshare did not create a network namespace"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let up = Command::new("nsenter")
            .arg(ns.net_arg())
            .args(["ip", "link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(up.success(), "ip link set lo up failed");
        Some(ns)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.holder.id()))
    }

    fn net_arg(&self) -> String {
        format!("--net={}", self.path().display())
    }

    /// Starts `python3 -m http.server PORT` inside the namespace, serving `dir`.
    fn http_server(&mut self, port: u16, dir: &Path) {
        let child = Command::new("nsenter")
            .arg(self.net_arg())
            .args([
                "python3",
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.others.push(child);
    }

    fn target(&self, port: u16) -> Target {
        Target {
            netns: Some(self.path()),
            host: LOCALHOST,
            ports: vec![port],
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for child in self
            .others
            .iter_mut()
            .chain(std::iter::once(&mut self.holder))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const NS_PORT: u16 = 18080;

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        r#"<html><body><a href="page.html">page</a> <a href="http://example.com/">out</a></body></html>"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("page.html"),
        "<html><body>page</body></html>",
    )
    .unwrap();
    dir
}

#[test]
fn prober_reaches_a_server_only_through_its_network_namespace() {
    let Some(mut ns) = NetNs::new() else { return };
    let site = site();
    ns.http_server(NS_PORT, site.path());
    let target = ns.target(NS_PORT);

    let ready = wait_for_ports(&target, Instant::now() + Duration::from_secs(20)).unwrap();
    assert_eq!(
        ready.ready,
        [NS_PORT],
        "python http.server did not come up in the namespace"
    );

    // From the host's namespace the port is not there.
    let host_addr = SocketAddr::new(LOCALHOST, NS_PORT);
    assert!(
        TcpStream::connect_timeout(&host_addr, Duration::from_millis(500)).is_err(),
        "127.0.0.1:{NS_PORT} is reachable from the host namespace"
    );

    let stats = probe_http(&target, &ready.ready, &budget(50, Duration::from_secs(30))).unwrap();
    assert!(
        stats.paths.contains("/") && stats.paths.contains("/page.html"),
        "{:?}",
        stats.paths
    );
    assert!(
        stats.by_status.get(&200).copied().unwrap_or(0) >= 2,
        "{:?}",
        stats.by_status
    );
    assert!(
        stats.by_status.get(&404).copied().unwrap_or(0) >= 1,
        "{:?}",
        stats.by_status
    );
    assert!(!stats.by_status.contains_key(&0), "{:?}", stats.by_status);
}

#[test]
fn script_runs_inside_the_network_namespace() {
    let Some(mut ns) = NetNs::new() else { return };
    let site = site();
    ns.http_server(NS_PORT, site.path());
    let target = ns.target(NS_PORT);
    let ready = wait_for_ports(&target, Instant::now() + Duration::from_secs(20)).unwrap();
    assert_eq!(ready.ready, [NS_PORT]);

    let dir = tempfile::tempdir().unwrap();
    let path = script(
        dir.path(),
        r#"
exec python3 -c '
import os, sys, urllib.request
body = urllib.request.urlopen(os.environ["VEXXY_TARGET_URL"] + "page.html", timeout=5).read()
sys.exit(0 if b"page" in body else 1)
'
"#,
    );
    let run = run_script_captured(
        &target,
        &path,
        &[],
        Instant::now() + Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(
        run.outcome.exit_code,
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.output)
    );

    // The same script run in the host namespace cannot reach the server.
    let host = Target {
        netns: None,
        ..target
    };
    let outcome = run_script(&host, &path, &[], Instant::now() + Duration::from_secs(30)).unwrap();
    assert_ne!(outcome.exit_code, Some(0));
}
