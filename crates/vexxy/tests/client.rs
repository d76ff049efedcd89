//! The service client (`vexxy submit`, …): the real binary against a
//! canned HTTP server.
//!
//! The server here is a test double at the network boundary: a std
//! `TcpListener` on 127.0.0.1 whose thread answers each request from the
//! test's table, speaking just enough HTTP/1.1 (one request per
//! connection, `Connection: close`). It records what it was sent, so the
//! tests check the requests too. The service itself is tested in
//! `vexxy-server`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use assert_cmd::Command;
use serde_json::{json, Value};

#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Canned {
    url: String,
    seen: Arc<Mutex<Vec<Request>>>,
}

/// Starts the canned server; `respond` gives (status, JSON body) per request.
fn serve(respond: impl Fn(&Request) -> (u16, Value) + Send + 'static) -> Canned {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Some(request) = read_request(&stream) else {
                continue;
            };
            let (status, body) = respond(&request);
            log.lock().expect("request log").push(request);
            let body = serde_json::to_vec(&body).expect("canned JSON");
            let mut stream = stream;
            let head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                reason(status),
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
        }
    });
    Canned { url, seen }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        _ => "Whatever",
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// `vexxy ARGS… --server SERVER --api-key s3cret`.
fn vexxy(server: &str, args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("vexxy").expect("binary built");
    for var in [
        "VEXXY_SERVER",
        "VEXXY_API_KEY",
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        c.env_remove(var);
    }
    c.args(args)
        .args(["--server", server, "--api-key", "s3cret"]);
    c
}

fn submit(server: &str) -> Command {
    let mut c = Command::cargo_bin("vexxy").expect("binary built");
    for var in [
        "VEXXY_SERVER",
        "VEXXY_API_KEY",
        "http_proxy",
        "HTTP_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        c.env_remove(var);
    }
    c.args(["submit", "docker.io/library/nginx:1.27", "--server", server])
        .env("VEXXY_API_KEY", "s3cret");
    c
}

fn status_body(status: &str, phase: Option<&str>, percent: u8, error: Option<&str>) -> Value {
    json!({
        "job_id": "job-1",
        "status": status,
        "progress_percent": percent,
        "current_phase": phase,
        "image_ref": "docker.io/library/nginx:1.27",
        "image_digest": null,
        "attempts": 1,
        "error": error,
        "created_at": "2026-01-01T00:00:00Z",
        "started_at": "2026-01-01T00:00:01Z",
        "completed_at": null,
        "updated_at": "2026-01-01T00:00:02Z",
    })
}

fn accepted() -> (u16, Value) {
    (
        202,
        json!({
            "job_id": "job-1",
            "status": "queued",
            "estimated_duration_minutes": 2,
            "created_at": "2026-01-01T00:00:00Z",
            "deduplicated": false,
        }),
    )
}

fn vex_document() -> Value {
    json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://openvex.dev/docs/public/vex-0123",
        "author": "vexxy",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "CVE-2024-0001"},
            "products": [{"@id": "pkg:oci/nginx@sha256%3Aabc"}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
        }],
    })
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("writing a test file");
    p.display().to_string()
}

#[test]
fn submit_wait_polls_then_writes_the_vex_document() {
    let polls = AtomicUsize::new(0);
    let server = serve(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/api/v1/analysis/submit") => accepted(),
        ("GET", "/api/v1/analysis/job-1/status") => match polls.fetch_add(1, Ordering::SeqCst) {
            0 => (200, status_body("queued", None, 0, None)),
            1 | 2 => (
                200,
                status_body("running", Some("observing the workload"), 60, None),
            ),
            _ => (
                200,
                status_body("complete", Some("writing outputs"), 100, None),
            ),
        },
        ("GET", "/api/v1/analysis/job-1/results") => (
            200,
            json!({
                "job_id": "job-1",
                "status": "complete",
                "image_ref": "docker.io/library/nginx:1.27",
                "image_digest": "sha256:abc",
                "summary": {"total": 5, "not_affected": 3, "affected": 1, "fixed": 0, "under_investigation": 1},
                "vex_document": vex_document(),
                "links": {"vex_openvex": "/api/v1/analysis/job-1/artifacts/vex.openvex.json"},
            }),
        ),
        _ => (
            404,
            json!({"code": "not_found", "message": "no such thing"}),
        ),
    });
    let dir = tempfile::tempdir().unwrap();
    let report = write(dir.path(), "grype.json", r#"{"matches": [], "source": {}}"#);
    let script = write(dir.path(), "t.sh", "curl -s \"$VEXXY_TARGET_URL\"\n");
    let out = dir.path().join("vex.json");
    let res = submit(&server.url)
        .args([
            "--wait",
            "--poll-interval",
            "10ms",
            "--duration",
            "10s",
            "-e",
            "A=1",
        ])
        .args([
            "--cmd",
            "nginx",
            "--cmd",
            "-g",
            "--cmd",
            "daemon off;",
            "--port",
            "80",
        ])
        .args(["--scan", &report, "--test-script", &script, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    let written: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(written, vex_document());
    assert!(
        res.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&res.stdout)
    );
    assert!(
        stderr.contains("job-1: running, observing the workload (60%)"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("observing the workload").count(),
        1,
        "phase changes only: {stderr}"
    );
    assert!(
        stderr.contains(
            "5 vulnerabilities: not_affected 3, affected 1, fixed 0, under_investigation 1"
        ),
        "{stderr}"
    );

    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|r| r.header("authorization") == Some("Bearer s3cret")),
        "{seen:?}"
    );
    let post = &seen[0];
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", "/api/v1/analysis/submit")
    );
    assert_eq!(post.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(
        body,
        json!({
            "image_ref": "docker.io/library/nginx:1.27",
            "config": {
                "analysis_duration": 10,
                "environment": {"A": "1"},
                "command": ["nginx", "-g", "daemon off;"],
                "test_script": "curl -s \"$VEXXY_TARGET_URL\"\n",
                "ports": [80],
            },
            "scan_report": {"matches": [], "source": {}},
        })
    );
    assert_eq!(seen.last().unwrap().path, "/api/v1/analysis/job-1/results");
}

#[test]
fn submit_without_wait_prints_the_job_id() {
    let server = serve(|_| accepted());
    let res = submit(&server.url).output().unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&res.stdout), "job-1\n");
    let res = submit(&server.url).arg("--json").output().unwrap();
    let answer: Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(answer["job_id"], "job-1");
}

#[test]
fn a_refused_key_exits_6_with_the_services_message() {
    let server = serve(|_| {
        (
            401,
            json!({"code": "unauthorized", "message": "invalid API key"}),
        )
    });
    let res = submit(&server.url).output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("invalid API key"), "{stderr}");
    assert!(res.stdout.is_empty());
}

#[test]
fn an_exhausted_quota_exits_6_with_used_and_limit() {
    let server = serve(|_| {
        (
            429,
            json!({"code": "quota_exceeded", "message": "monthly analysis quota reached", "used": 10, "limit": 10}),
        )
    });
    let res = submit(&server.url).arg("--wait").output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("monthly analysis quota reached"),
        "{stderr}"
    );
    assert!(stderr.contains("used 10, limit 10"), "{stderr}");
}

#[test]
fn a_failed_job_exits_5_with_its_error() {
    let server = serve(|r| match r.method.as_str() {
        "POST" => accepted(),
        _ => (
            200,
            status_body(
                "failed",
                None,
                40,
                Some("pulling nginx:1.27: manifest unknown"),
            ),
        ),
    });
    let res = submit(&server.url)
        .args(["--wait", "--poll-interval", "10ms"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("job-1 failed: pulling nginx:1.27: manifest unknown"),
        "{stderr}"
    );

    // `status` of that job says so too, with the same exit code
    let res = vexxy(&server.url, &["status", "job-1"]).output().unwrap();
    assert_eq!(res.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&res.stdout).contains("job-1: failed"));
}

#[test]
fn an_unreachable_service_exits_3() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let res = submit(&format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn a_report_that_is_not_json_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let report = write(dir.path(), "report.txt", "Name Installed Fixed-In\n");
    // nothing listens: the file is checked before anything is sent
    let res = submit("http://127.0.0.1:9")
        .args(["--scan", &report])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("report.txt"), "{stderr}");
}

#[test]
fn results_and_artifacts_and_cancel() {
    let server = serve(|r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/api/v1/analysis/job-1/results") => (
            200,
            json!({
                "job_id": "job-1", "status": "complete", "image_ref": "nginx", "image_digest": "sha256:abc",
                "summary": {"total": 1, "not_affected": 1, "affected": 0, "fixed": 0, "under_investigation": 0},
                "vex_document": vex_document(),
                "links": {"evidence": "/api/v1/analysis/job-1/artifacts/evidence.json"},
            }),
        ),
        ("GET", "/api/v1/analysis/job-1/artifacts/evidence.json") => {
            (200, json!({"evidence": true}))
        }
        ("GET", "/api/v1/analysis/job-2/results") => (
            409,
            json!({"code": "not_complete", "message": "job job-2 is running", "status": "running"}),
        ),
        ("DELETE", "/api/v1/analysis/job-1") => {
            (200, json!({"job_id": "job-1", "status": "cancelled"}))
        }
        ("DELETE", "/api/v1/analysis/job-2") => (
            409,
            json!({"code": "already_finished", "message": "job job-2 already finished"}),
        ),
        _ => (404, json!({"code": "not_found", "message": "no such job"})),
    });
    let res = vexxy(&server.url, &["results", "job-1"]).output().unwrap();
    assert!(res.status.success());
    assert_eq!(
        serde_json::from_slice::<Value>(&res.stdout).unwrap(),
        vex_document()
    );

    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("ev.json");
    let ev_arg = ev.display().to_string();
    let res = vexxy(
        &server.url,
        &[
            "results",
            "job-1",
            "--artifact",
            "evidence.json",
            "-o",
            &ev_arg,
        ],
    )
    .output()
    .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&std::fs::read(&ev).unwrap()).unwrap(),
        json!({"evidence": true})
    );

    let res = vexxy(
        &server.url,
        &["results", "job-1", "--artifact", "report_html"],
    )
    .output()
    .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("evidence"));

    let res = vexxy(&server.url, &["results", "job-2"]).output().unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("job job-2 is running"));

    let res = vexxy(&server.url, &["results", "nope"]).output().unwrap();
    assert_eq!(res.status.code(), Some(2));

    let res = vexxy(&server.url, &["cancel", "job-1"]).output().unwrap();
    assert!(res.status.success());
    assert_eq!(String::from_utf8_lossy(&res.stdout), "job-1: cancelled\n");
    let res = vexxy(&server.url, &["cancel", "job-2"]).output().unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("already finished"));
}
