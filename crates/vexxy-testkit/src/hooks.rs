//! A webhook receiver for tests: a real HTTP/1.1 listener on 127.0.0.1
//! that keeps every request's headers and body and answers with a status
//! chosen per request.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    sync::{Arc, Mutex},
    time::Duration,
};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// The receiver; it runs until the test process ends.
#[derive(Clone, Debug)]
pub struct HookReceiver {
    pub port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl HookReceiver {
    /// Answers the `n`th request (0-based) with `status(n)`.
    pub fn start(status: impl Fn(usize) -> u16 + Send + 'static) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = Arc::clone(&got);
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut conn) = conn else { continue };
                let received = read_request(&mut conn);
                sink.lock().unwrap().push(received);
                let code = status(n);
                let _ = conn.write_all(
                    format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                );
            }
        });
        Self { port, got }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

fn read_request(conn: &mut std::net::TcpStream) -> Received {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = conn.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return Received {
                headers: BTreeMap::new(),
                body: buf,
            };
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let headers: BTreeMap<String, String> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + len {
            let n = conn.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[end + 4..(end + 4 + len).min(buf.len())].to_vec();
        return Received { headers, body };
    }
}
