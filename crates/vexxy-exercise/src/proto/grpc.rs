//! gRPC health checking: HTTP/2 with prior knowledge (the `h2` crate on a
//! single-threaded runtime owned by the namespace thread), one
//! `POST /grpc.health.v1.Health/Check` for the server as a whole.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use vexxy_model::{ProbeReach, ProbeRecord};

use super::{ProtocolBudget, MAX_FRAME_BYTES};

/// How often the stop flag is checked while the check runs.
const STOP_POLL: Duration = Duration::from_millis(100);

/// An empty `HealthCheckRequest` (service `""`) in a gRPC message frame.
const EMPTY_REQUEST: [u8; 5] = [0, 0, 0, 0, 0];

/// Runs the probe; writes what it reached into `record`. The runtime and
/// its socket live on the calling (namespace) thread only.
pub(crate) fn probe(
    addr: SocketAddr,
    budget: &ProtocolBudget,
    deadline: Instant,
    stop: &AtomicBool,
    record: &mut ProbeRecord,
) {
    if stop.load(Ordering::Relaxed) {
        record.outcome = "stopped".to_owned();
        return;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            record.outcome = format!("cannot start the http/2 runtime: {}", e.kind());
            return;
        }
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    let connect_timeout = budget.connect_timeout;
    let read_timeout = budget.read_timeout;
    let ended = runtime.block_on(async {
        let run = std::pin::pin!(tokio::time::timeout(
            remaining,
            check(addr, connect_timeout, read_timeout, record)
        ));
        // the stop flag, polled while the check runs
        let watch = std::pin::pin!(async {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(STOP_POLL).await;
            }
        });
        match futures_util::future::select(run, watch).await {
            futures_util::future::Either::Left((Ok(()), _)) => None,
            futures_util::future::Either::Left((Err(_), _)) => Some("timed out"),
            futures_util::future::Either::Right(((), _)) => Some("stopped"),
        }
    });
    if let Some(why) = ended {
        record.outcome = format!("{}; then {why}", record.outcome);
    }
}

async fn check(
    addr: SocketAddr,
    connect_timeout: Duration,
    read_timeout: Duration,
    record: &mut ProbeRecord,
) {
    let tcp =
        match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                record.outcome = format!("connect failed: {}", e.kind());
                return;
            }
            Err(_) => {
                record.outcome = "connect failed: timed out".to_owned();
                return;
            }
        };
    record.reach = ProbeReach::Connected;
    record.outcome = "connected, no answer".to_owned();
    let mut builder = h2::client::Builder::new();
    builder
        .max_frame_size(16 * 1024)
        .max_header_list_size(64 * 1024)
        .initial_window_size(256 * 1024)
        .max_concurrent_reset_streams(8);
    let (mut client, connection) =
        match tokio::time::timeout(read_timeout, builder.handshake::<_, Bytes>(tcp)).await {
            Ok(Ok(pair)) => pair,
            _ => {
                record.outcome = "connected; no http/2 handshake".to_owned();
                return;
            }
        };
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    record.requests += 1;
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "vexxy-exercise")
        .body(());
    let outcome = match request {
        Ok(request) => exchange(&mut client, request, read_timeout, record).await,
        Err(_) => "cannot build the request".to_owned(),
    };
    record.outcome = outcome;
    drop(client);
    driver.abort();
}

/// Sends the check and reads the answer; returns the outcome.
async fn exchange(
    client: &mut h2::client::SendRequest<Bytes>,
    request: http::Request<()>,
    read_timeout: Duration,
    record: &mut ProbeRecord,
) -> String {
    let ready = match tokio::time::timeout(read_timeout, client.clone().ready()).await {
        Ok(Ok(ready)) => ready,
        _ => return "connected; http/2 connection not ready".to_owned(),
    };
    *client = ready;
    let (response, mut body) = match client.send_request(request, false) {
        Ok(pair) => pair,
        Err(_) => return "connected; http/2 request refused".to_owned(),
    };
    if body
        .send_data(Bytes::from_static(&EMPTY_REQUEST), true)
        .is_err()
    {
        return "connected; http/2 request refused".to_owned();
    }
    let response = match tokio::time::timeout(read_timeout, response).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.is_remote() => {
            record.reach = ProbeReach::Answered;
            return "http/2 answered; request reset".to_owned();
        }
        Ok(Err(_)) => return "connected; not http/2".to_owned(),
        Err(_) => return "connected; no http/2 answer".to_owned(),
    };
    record.answered += 1;
    record.reach = ProbeReach::Handshake;
    let status = response.status().as_u16();
    let mut headers_status = grpc_status(response.headers());
    let mut body = response.into_body();
    let mut message = Vec::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(read_timeout, body.data()).await {
        match chunk {
            Ok(data) => {
                let _ = body.flow_control().release_capacity(data.len());
                if message.len() + data.len() > MAX_FRAME_BYTES {
                    return format!("http/2 {status}; response too large");
                }
                message.extend_from_slice(&data);
            }
            Err(_) => break,
        }
    }
    if let Ok(Ok(Some(trailers))) = tokio::time::timeout(read_timeout, body.trailers()).await {
        headers_status = headers_status.or(grpc_status(&trailers));
    }
    match headers_status {
        Some(0) => {
            record.reach = ProbeReach::Commands;
            let serving = match serving_status(&message) {
                Some(1) => "serving",
                Some(2) => "not serving",
                Some(3) => "service unknown",
                _ => "status unknown",
            };
            format!("health check answered: {serving}")
        }
        Some(code) => {
            record.reach = ProbeReach::Commands;
            format!("health check answered with grpc-status {code}")
        }
        None => format!("http/2 answered {status} without grpc-status"),
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The `status` field (1, varint) of a framed `HealthCheckResponse`.
fn serving_status(framed: &[u8]) -> Option<u64> {
    let len = usize::try_from(u32::from_be_bytes(framed.get(1..5)?.try_into().ok()?)).ok()?;
    let message = framed.get(5..5 + len)?;
    let mut at = 0;
    while at < message.len() {
        let key = message[at];
        at += 1;
        let mut value: u64 = 0;
        for shift in 0..10 {
            let byte = *message.get(at)?;
            at += 1;
            value |= u64::from(byte & 0x7f) << (7 * shift);
            if byte & 0x80 == 0 {
                break;
            }
        }
        if key == 0x08 {
            return Some(value);
        }
        if key & 0x07 != 0 {
            return None; // only varint fields are expected
        }
    }
    Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_status_is_read() {
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 0x01]), Some(1));
        assert_eq!(serving_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(serving_status(&[0, 0, 0, 0, 9]), None);
        assert_eq!(serving_status(&[]), None);
    }
}
