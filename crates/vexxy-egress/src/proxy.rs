//! An in-process forward proxy that applies an [`EgressPolicy`] to every
//! connection an HTTP client makes, whatever the client decides to follow
//! (redirects, token realms, foreign layer URLs).
//!
//! It listens on `127.0.0.1` on a port the system picks and speaks just
//! enough HTTP/1.1: `CONNECT host:port` (HTTPS, tunnelled end to end, so
//! certificates are checked by the client against the host it named) and
//! absolute-form `GET http://host/…` (plain HTTP, only to the hosts given
//! as insecure, one request per connection). Every destination goes through
//! [`EgressPolicy::connect`]; a refusal is answered `403` and kept in the
//! [`ProxyLog`], so the caller can report the policy's reason rather than
//! the client's view of a failed tunnel. Nothing the destination sends is
//! interpreted: bytes are copied both ways.
//!
//! It asks for no password: it reaches only what the policy permits, which
//! any local process can reach directly anyway (and reqwest drops
//! `Proxy-Authorization` when it follows a cross-host redirect of a
//! plain-HTTP request, so a password would break, not guard, that path).

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::{hosts::normalize_host, EgressError, EgressPolicy};

/// Longest request head read from the client.
const MAX_HEAD: usize = 16 << 10;
/// How long the client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// What the proxy refused or could not reach, in order.
#[derive(Debug, Clone, Default)]
pub struct ProxyLog {
    errors: Arc<Mutex<Vec<EgressError>>>,
}

impl ProxyLog {
    /// Records an error (the proxy records its own; callers may add theirs).
    pub fn record(&self, e: EgressError) {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(e);
    }

    /// Every error, refusals and connection failures alike.
    pub fn errors(&self) -> Vec<EgressError> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The first destination the policy refused, if any.
    pub fn first_refusal(&self) -> Option<EgressError> {
        self.errors().into_iter().find(EgressError::is_refusal)
    }
}

struct Shared {
    policy: EgressPolicy,
    /// `(host, port)` reachable over plain HTTP.
    plain_http: Vec<(String, u16)>,
    log: ProxyLog,
    /// Every live socket, closed when the proxy stops.
    sockets: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

/// A running proxy; stops (and closes every connection it carries) on drop.
pub struct EgressProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressProxy")
            .field("addr", &self.addr)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

/// Splits a URL authority `host:port`, `[v6]:port`, or a bare host (then
/// `default`; `None` when there is no default). The host comes back
/// without brackets; `None` for a malformed authority or port 0.
pub fn split_authority(authority: &str, default: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return None,
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
        None => default?,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

impl EgressProxy {
    /// Starts a proxy applying `policy`; `plain_http` lists the registries
    /// (`host` or `host:port`, as in image references; port 80 when none)
    /// that may be reached over plain HTTP: no other host is, which also
    /// refuses an HTTPS → HTTP redirect.
    ///
    /// # Errors
    ///
    /// When no port can be bound on 127.0.0.1 or the thread cannot start.
    pub fn start(policy: EgressPolicy, plain_http: &[String]) -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let plain_http = plain_http
            .iter()
            .filter_map(|r| {
                let r = r.trim();
                let r = r.strip_prefix("http://").unwrap_or(r).trim_end_matches('/');
                split_authority(r, Some(80)).map(|(h, p)| (normalize_host(&h), p))
            })
            .collect();
        let shared = Arc::new(Shared {
            policy,
            plain_http,
            log: ProxyLog::default(),
            sockets: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("vexxy-egress-proxy".into())
            .spawn(move || accept_loop(&listener, &s))?;
        Ok(Self {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The proxy URL, for an HTTP client's proxy setting (both for
    /// `http://` and `https://` URLs).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it refused or could not reach so far.
    pub fn log(&self) -> ProxyLog {
        self.shared.log.clone()
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // wake the accept loop
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for s in self
            .shared
            .sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let s = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("vexxy-egress-conn".into())
            .spawn(move || {
                // the socket is also held for `Drop`: end it explicitly
                let end = conn.try_clone();
                serve(conn, &s);
                if let Ok(c) = end {
                    let _ = c.shutdown(Shutdown::Both);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "egress proxy: cannot start a connection thread");
        }
    }
}

fn remember(shared: &Shared, s: &TcpStream) {
    if let Ok(c) = s.try_clone() {
        shared
            .sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(c);
    }
}

/// Reads the request head; returns it and whatever followed it.
fn read_head(conn: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            buf.truncate(end);
            return String::from_utf8(buf).ok().map(|h| (h, rest));
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

fn answer(conn: &mut TcpStream, status: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = conn.flush();
}

fn refuse(conn: &mut TcpStream, shared: &Shared, e: EgressError) {
    let status = if e.is_refusal() {
        tracing::warn!(error = %e, "egress refused");
        "403 Forbidden"
    } else {
        "502 Bad Gateway"
    };
    shared.log.record(e);
    answer(conn, status);
}

fn serve(mut conn: TcpStream, shared: &Shared) {
    remember(shared, &conn);
    let _ = conn.set_read_timeout(Some(HEAD_TIMEOUT));
    let Some((head, rest)) = read_head(&mut conn) else {
        return;
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return answer(&mut conn, "400 Bad Request");
    };
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    if method.eq_ignore_ascii_case("CONNECT") {
        let Some((host, port)) = split_authority(target, None) else {
            return answer(&mut conn, "400 Bad Request");
        };
        let upstream = match shared.policy.connect(&host, port) {
            Ok(u) => u,
            Err(e) => return refuse(&mut conn, shared, e),
        };
        remember(shared, &upstream);
        if write!(conn, "HTTP/1.1 200 Connection Established\r\n\r\n").is_err() {
            return;
        }
        return pipe(conn, upstream, &rest);
    }

    // absolute-form: METHOD http://authority/path HTTP/1.1
    let Some(after) = target
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("http://"))
        .map(|_| &target[7..])
    else {
        return answer(&mut conn, "400 Bad Request");
    };
    let split = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, path) = after.split_at(split);
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    };
    let Some((host, port)) =
        split_authority(authority, Some(80)).filter(|_| !authority.contains('@'))
    else {
        return answer(&mut conn, "400 Bad Request");
    };
    let name = normalize_host(&host);
    if !shared
        .plain_http
        .iter()
        .any(|(h, p)| *h == name && *p == port)
    {
        return refuse(&mut conn, shared, EgressError::PlainHttp { host });
    }
    let upstream = match shared.policy.connect(&host, port) {
        Ok(u) => u,
        Err(e) => return refuse(&mut conn, shared, e),
    };
    remember(shared, &upstream);
    let mut request = format!("{method} {path} {version}\r\n");
    for (k, v) in &headers {
        let hop = [
            "proxy-authorization",
            "proxy-connection",
            "connection",
            "keep-alive",
        ]
        .iter()
        .any(|h| k.eq_ignore_ascii_case(h));
        if !hop {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    request.push_str("Connection: close\r\n\r\n");
    let mut up = &upstream;
    if up.write_all(request.as_bytes()).is_err() {
        return;
    }
    pipe(conn, upstream, &rest)
}

/// Copies bytes both ways until either side closes, then closes both.
fn pipe(client: TcpStream, upstream: TcpStream, pending: &[u8]) {
    let _ = client.set_read_timeout(None);
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let close = |a: &TcpStream, b: &TcpStream| {
        let _ = a.shutdown(Shutdown::Both);
        let _ = b.shutdown(Shutdown::Both);
    };
    let down = std::thread::Builder::new()
        .name("vexxy-egress-down".into())
        .spawn(move || {
            let _ = std::io::copy(&mut &upstream2, &mut &client2);
            close(&upstream2, &client2);
        });
    if !pending.is_empty() && (&upstream).write_all(pending).is_err() {
        close(&client, &upstream);
    } else {
        let _ = std::io::copy(&mut &client, &mut &upstream);
        close(&client, &upstream);
    }
    if let Ok(t) = down {
        let _ = t.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        let s = |a: &str, d| split_authority(a, d);
        assert_eq!(s("h:5000", None), Some(("h".into(), 5000)));
        assert_eq!(s("h", Some(80)), Some(("h".into(), 80)));
        assert_eq!(s("h", None), None);
        assert_eq!(s("[::1]:443", None), Some(("::1".into(), 443)));
        assert_eq!(s("[::1]", Some(80)), Some(("::1".into(), 80)));
        assert_eq!(s("::1:443", None), None);
        assert_eq!(s("h:0", None), None);
        assert_eq!(s(":80", None), None);
    }
}
