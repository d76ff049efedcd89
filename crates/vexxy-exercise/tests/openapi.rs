//! The HTTP prober's OpenAPI and fuzz phases against a small in-process
//! server: requests built from the document it serves (its host ignored),
//! mutated query parameters and form fields, unusual headers and methods,
//! all to the one origin and within the budget.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vexxy_exercise::{probe_http, ProbeBudget, Target};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// One request the server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

const HOME: &str = r#"<!doctype html><html><body>
<a href="/search?q=shoes&page=2">search</a>
<form action="/login" method="post">
  <input name="username"><input type="password" name="password">
  <input type="number" name="age"><input type="submit" value="go">
</form>
</body></html>"#;

fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "items", "version": "1"},
        "servers": [{"url": "http://elsewhere.invalid:9999/v1"}],
        "paths": {
            "/items/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true,
                                "schema": {"type": "integer"}}],
                "get": {"parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                    {"name": "X-Trace", "in": "header", "schema": {"type": "string", "format": "uuid"}}
                ]},
                "delete": {}
            },
            "/items": {
                "post": {"requestBody": {"content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Item"}}}}}
            },
            "//elsewhere.invalid/steal": {"get": {}}
        },
        "components": {"schemas": {"Item": {"type": "object", "properties": {
            "name": {"type": "string"},
            "count": {"type": "integer", "minimum": 3},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["red", "blue"]}}
        }}}}
    })
}

fn serve() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let path = parts.next().unwrap_or("").to_owned();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        headers.push((k.trim().to_owned(), v.trim().to_owned()));
                    }
                }
                let len = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let (status, ctype, content): (&str, &str, Vec<u8>) = match path.as_str() {
                    "/" if method == "GET" => ("200 OK", "text/html", HOME.into()),
                    "/openapi.json" => (
                        "200 OK",
                        "application/json",
                        serde_json::to_vec(&document()).unwrap(),
                    ),
                    _ if path.starts_with("/v1/") => ("200 OK", "application/json", b"{}".to_vec()),
                    _ if path.starts_with("/search") || path == "/login" => {
                        ("200 OK", "text/plain", b"ok".to_vec())
                    }
                    _ => ("404 Not Found", "text/plain", b"no".to_vec()),
                };
                seen.lock().unwrap().push(Seen {
                    method,
                    path,
                    headers,
                    body,
                });
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    content.len()
                );
                let _ = stream.write_all(&content);
            });
        }
    });
    (port, log)
}

#[test]
fn openapi_operations_and_a_bounded_fuzz_phase_reach_the_server() {
    let (port, log) = serve();
    let started = Instant::now();
    let stats = probe_http(
        &Target::loopback(None, vec![port]),
        &[port],
        &ProbeBudget {
            max_requests: 400,
            deadline: Instant::now() + Duration::from_secs(60),
            per_request_timeout: Duration::from_secs(2),
        },
    )
    .unwrap();
    let seen = log.lock().unwrap().clone();
    println!(
        "{} requests ({} fuzz) in {:?}; openapi: {:?}; statuses {:?}",
        stats.requests,
        stats.fuzz_requests,
        started.elapsed(),
        stats.openapi,
        stats.by_status
    );
    // every request reached this server, none went elsewhere
    assert_eq!(stats.requests, seen.len() as u64);
    assert!(!stats.by_status.contains_key(&0), "{:?}", stats.by_status);
    assert_eq!(stats.openapi, Some(format!("{port} /openapi.json")));

    // the document's operations, under its server's path, on our origin
    let get = seen
        .iter()
        .find(|s| s.method == "GET" && s.path == "/v1/items/1?q=vexxy")
        .unwrap_or_else(|| panic!("{seen:#?}"));
    assert_eq!(
        get.header("x-trace"),
        Some("00000000-0000-4000-8000-000000000000")
    );
    assert!(seen
        .iter()
        .any(|s| s.method == "DELETE" && s.path == "/v1/items/1"));
    let post = seen
        .iter()
        .find(|s| s.method == "POST" && s.path == "/v1/items")
        .unwrap_or_else(|| panic!("{seen:#?}"));
    assert_eq!(post.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(body, json!({"name": "vexxy", "count": 3, "tags": ["red"]}));
    assert!(!seen.iter().any(|s| s.path.contains("steal")), "{seen:#?}");

    // the fuzz phase: mutated query parameters of the crawled search…
    let searches: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.starts_with("/search?"))
        .collect();
    assert!(searches.len() >= 10, "{searches:#?}");
    assert!(searches.iter().any(|s| s.path == "/search?q=&page=2"));
    assert!(searches.iter().any(|s| s.path == "/search?q=shoes&page=-1"));
    assert!(searches
        .iter()
        .any(|s| s.path.starts_with("/search?q=%27%22%3C%3E")));
    // …the form, submitted as is and with mutated fields…
    let logins: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == "POST" && s.path == "/login")
        .collect();
    assert!(logins.len() >= 5, "{logins:#?}");
    assert!(logins
        .iter()
        .any(|s| s.body == b"username=vexxy&password=vexxy&age=1"));
    assert!(logins.iter().any(|s| s.body.starts_with(b"username=&")));
    // …unusual headers and other methods
    assert!(seen
        .iter()
        .any(|s| s.header("range") == Some("bytes=0-0,1-1,2-2,-1")));
    for method in ["PUT", "PATCH", "TRACE"] {
        assert!(seen.iter().any(|s| s.method == method), "{method}");
    }
    assert!(stats.fuzz_requests > 0 && stats.fuzz_requests <= 64);
}

#[test]
fn the_fuzz_phase_stays_within_the_request_budget() {
    let (port, log) = serve();
    let stats = probe_http(
        &Target::loopback(None, vec![port]),
        &[port],
        &ProbeBudget {
            max_requests: 40,
            deadline: Instant::now() + Duration::from_secs(30),
            per_request_timeout: Duration::from_secs(2),
        },
    )
    .unwrap();
    assert_eq!(stats.requests, 40);
    assert_eq!(log.lock().unwrap().len(), 40);
}

#[test]
fn a_port_that_never_answers_in_http_gets_no_fuzz_phase() {
    // a server that closes every connection unanswered (as Redis does)
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            drop(stream);
        }
    });
    let stats = probe_http(
        &Target::loopback(None, vec![port]),
        &[port],
        &ProbeBudget {
            max_requests: 400,
            deadline: Instant::now() + Duration::from_secs(30),
            per_request_timeout: Duration::from_secs(2),
        },
    )
    .unwrap();
    // GET / + HEAD + OPTIONS + 11 common paths + 1 random + 9 document paths
    assert_eq!(stats.requests, 24, "{stats:?}");
    assert_eq!(stats.fuzz_requests, 0);
    assert_eq!(stats.by_status.get(&0), Some(&24));
    assert!(stats.answered_ports.is_empty());
}
