//! The forward proxy, spoken to byte by byte: CONNECT and absolute-form
//! requests, refusals that never reach the destination.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use vexxy_egress::{EgressError, EgressPolicy, EgressProxy};

/// A server that counts connections, records the first request head and
/// answers a fixed body.
struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<String>>,
}

fn server(ip: &str, body: &'static str) -> Server {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(String::new()));
    let (c, s) = (connections.clone(), seen.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            *s.lock().unwrap() = String::from_utf8_lossy(&buf[..n]).into_owned();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Server {
        port,
        connections,
        seen,
    }
}

fn send(proxy: &EgressProxy, head: &str) -> String {
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn policy() -> EgressPolicy {
    EgressPolicy::new()
        .allow_addresses(["127.0.0.2/32"])
        .unwrap()
}

#[test]
fn connect_tunnels_to_allowed_addresses_only() {
    let allowed = server("127.0.0.2", "allowed-body");
    let internal = server("127.0.0.3", "INTERNAL-MARKER-7f3a");
    let proxy = EgressProxy::start(policy(), &[]).unwrap();

    let out = send(
        &proxy,
        &format!("CONNECT 127.0.0.3:{} HTTP/1.1\r\n\r\n", internal.port),
    );
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert!(!out.contains("INTERNAL-MARKER"), "{out}");
    assert_eq!(internal.connections.load(Ordering::SeqCst), 0);
    assert!(matches!(
        proxy.log().first_refusal(),
        Some(EgressError::Denied { .. })
    ));

    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "CONNECT 127.0.0.2:{} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        allowed.port
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.starts_with("HTTP/1.1 200 Connection Established\r\n\r\n"),
        "{out}"
    );
    assert!(out.ends_with("allowed-body"), "{out}");
    assert_eq!(allowed.connections.load(Ordering::SeqCst), 1);
    assert_eq!(*allowed.seen.lock().unwrap(), "GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn plain_http_only_to_hosts_named_insecure() {
    let insecure = server("127.0.0.2", "plain-body");
    let other = server("127.0.0.2", "other-body");
    let proxy = EgressProxy::start(policy(), &[format!("127.0.0.2:{}", insecure.port)]).unwrap();

    let out = send(
        &proxy,
        &format!(
            "GET http://127.0.0.2:{}/v2/?x=1 HTTP/1.1\r\nHost: 127.0.0.2\r\nConnection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\n\r\n",
            insecure.port
        ),
    );
    assert!(
        out.starts_with("HTTP/1.1 200 OK") && out.ends_with("plain-body"),
        "{out}"
    );
    let seen = insecure.seen.lock().unwrap().clone();
    assert!(seen.starts_with("GET /v2/?x=1 HTTP/1.1\r\n"), "{seen}");
    assert!(seen.contains("Connection: close\r\n"), "{seen}");
    assert!(
        !seen.to_ascii_lowercase().contains("proxy-authorization"),
        "{seen}"
    );
    assert!(!seen.contains("keep-alive"), "{seen}");

    let out = send(
        &proxy,
        &format!("GET http://127.0.0.2:{}/ HTTP/1.1\r\n\r\n", other.port),
    );
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert_eq!(other.connections.load(Ordering::SeqCst), 0);
    assert!(matches!(
        proxy.log().first_refusal(),
        Some(EgressError::PlainHttp { .. })
    ));
}
