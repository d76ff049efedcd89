//! Delivers completion callbacks: claims due deliveries from the outbox,
//! signs them and POSTs them, records every attempt, retries with
//! exponential backoff.
//!
//! Signature: `X-Vexxy-Signature: sha256=<hex HMAC-SHA256(secret,
//! "<X-Vexxy-Timestamp>.<body>")>`, with the organisation's webhook
//! secret; the timestamp (Unix seconds) is signed so a receiver can refuse
//! replays.
//!
//! Egress: a callback connects under [`callback_policy`] through ureq's
//! resolver seam: the host is resolved once by
//! [`vexxy_egress::EgressPolicy::resolve`], every address checked, and ureq
//! is handed only those checked addresses to connect to, so a name that
//! answers differently at connect time (DNS rebinding) cannot reach an
//! internal address. No proxy, no redirects.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use tokio::sync::watch;
use ureq::unversioned::{
    resolver::{ResolvedSocketAddrs, Resolver},
    transport::{DefaultConnector, NextTimeout},
};
use vexxy_egress::{EgressError, EgressPolicy};
use vexxy_store::webhooks::{AttemptResult, Delivery};

use crate::{metrics::OutcomeLabel, Service};

/// `sha256=<hex>` over `"{timestamp}.{body}"`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature as a receiver would (constant time).
pub fn verify(secret: &str, timestamp: i64, body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(bytes) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

/// Why a delivery was not sent or not answered.
#[derive(Debug)]
pub(crate) enum Refusal {
    Transport(String),
    /// The host resolves to a non-public address: never retried.
    Private(String),
}

/// The policy callbacks are delivered under: the address deny-list, or
/// every address when the operator allows private callbacks
/// (`--allow-private-callbacks`, which keeps its meaning: loopback and
/// private receivers are then allowed). The host is still resolved once
/// and connected to as checked.
pub(crate) fn callback_policy(allow_private: bool) -> EgressPolicy {
    let policy = EgressPolicy::new();
    if allow_private {
        policy.allow_any_address()
    } else {
        policy
    }
}

/// ureq's name resolution under an egress policy: resolves once, checks
/// every address, answers only with checked ones.
#[derive(Debug)]
struct PolicyResolver(EgressPolicy);

impl Resolver for PolicyResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let addrs = self
            .0
            .resolve(host, port)
            .map_err(|e| ureq::Error::Other(Box::new(e)))?;
        let mut out = self.empty();
        for a in addrs.into_iter().take(16) {
            out.push(a);
        }
        Ok(out)
    }
}

/// POSTs `body` to `url` under `policy`: the status code, or why not.
pub(crate) fn post(
    url: &str,
    policy: &EgressPolicy,
    timeout: Duration,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<u16, Refusal> {
    url::Url::parse(url).map_err(|e| Refusal::Private(format!("{url}: {e}")))?;
    let config = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .user_agent(concat!("vexxy-webhooks/", env!("CARGO_PKG_VERSION")))
        .timeout_global(Some(timeout))
        .build();
    let agent = ureq::Agent::with_parts(
        config,
        DefaultConnector::default(),
        PolicyResolver(policy.clone()),
    );
    let mut request = agent.post(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request
        .send(body)
        .map(|r| r.status().as_u16())
        .map_err(|e| match &e {
            ureq::Error::Other(inner) => match inner.downcast_ref::<EgressError>() {
                Some(refused) if refused.is_refusal() => {
                    Refusal::Private(format!("{refused}; not delivered"))
                }
                Some(other) => Refusal::Transport(other.to_string()),
                None => Refusal::Transport(e.to_string()),
            },
            _ => Refusal::Transport(e.to_string()),
        })
}

pub(crate) async fn dispatch_loop(svc: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let owner = format!("{}/webhooks", svc.config.instance);
    let lease_ms = (svc.config.webhooks.timeout.as_millis() as i64) * 3;
    while !*stop.borrow() {
        match svc.store.claim_delivery(&owner, lease_ms).await {
            Ok(Some(d)) => deliver(&svc, d).await,
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(svc.config.webhooks.poll) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "claiming a webhook delivery failed");
                tokio::time::sleep(svc.config.webhooks.poll * 4).await;
            }
        }
    }
}

async fn deliver(svc: &Service, d: Delivery) {
    let secret = match svc.store.org(&d.org_id).await {
        Ok(org) => org.webhook_secret,
        Err(e) => {
            tracing::error!(delivery = %d.id, error = %e, "no signing secret; delivery held");
            return;
        }
    };
    let timestamp = vexxy_store::now_ms() / 1000;
    let signature = sign(&secret, timestamp, d.payload.as_bytes());
    let url = d.url.clone();
    let body = d.payload.clone();
    let id = d.id.clone();
    let timeout = svc.config.webhooks.timeout;
    let began = Instant::now();
    // the name may resolve to an internal address even though the URL
    // passed the check at submit time: resolved and checked again here,
    // once, and connected to as checked
    let policy = callback_policy(svc.config.submit.allow_private_callbacks);
    let sent = tokio::task::spawn_blocking(move || {
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("x-vexxy-event", "analysis".to_owned()),
            ("x-vexxy-delivery", id),
            ("x-vexxy-timestamp", timestamp.to_string()),
            ("x-vexxy-signature", signature),
        ];
        post(&url, &policy, timeout, &headers, body.as_bytes())
    })
    .await;
    let duration_ms = began.elapsed().as_millis() as i64;
    let refused = matches!(sent, Ok(Err(Refusal::Private(_))));
    let (status_code, error) = match sent {
        Ok(Ok(code)) if (200..300).contains(&code) => (Some(code), None),
        Ok(Ok(code)) => (Some(code), Some(format!("http status {code}"))),
        Ok(Err(Refusal::Transport(e) | Refusal::Private(e))) => (None, Some(e)),
        Err(e) => (None, Some(format!("delivery task failed: {e}"))),
    };
    let delivered = error.is_none();
    let attempt = d.attempts + 1;
    let retry_in_ms = (!delivered && !refused && attempt < svc.config.webhooks.max_attempts)
        .then(|| svc.config.webhooks.retries().delay_ms(attempt));
    let outcome = if delivered {
        "delivered"
    } else if retry_in_ms.is_some() {
        "retry"
    } else {
        "failed"
    };
    svc.metrics
        .webhook_deliveries
        .get_or_create(&OutcomeLabel {
            outcome: outcome.into(),
        })
        .inc();
    tracing::info!(delivery = %d.id, job = %d.job_id, attempt, status = ?status_code, error = ?error, outcome, "webhook attempt");
    let result = AttemptResult {
        status_code,
        error,
        duration_ms,
        delivered,
        retry_in_ms,
    };
    if let Err(e) = svc.store.record_attempt(&d, &result).await {
        tracing::error!(delivery = %d.id, error = %e, "recording the attempt failed; the lease will expire and it is retried");
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read as _, Write as _},
        net::{IpAddr, TcpListener},
        sync::atomic::{AtomicUsize, Ordering},
    };

    use vexxy_egress::StaticResolver;

    use super::*;

    /// Counts connections and answers `status` to each.
    fn receiver(listener: TcpListener, status: &'static str) -> Arc<AtomicUsize> {
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                s.fetch_add(1, Ordering::SeqCst);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 8192];
                let _ = conn.read(&mut buf);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Length: 15\r\nConnection: close\r\n\r\nINTERNAL-MARKER"
                );
            }
        });
        seen
    }

    /// A callback host that rebinds: the first answer is the receiver
    /// (127.0.0.2, exempt), the next one an internal service on the same
    /// port (127.0.0.3). Each delivery resolves once and connects to what
    /// it checked.
    #[test]
    fn webhooks_to_a_rebinding_host_reach_only_checked_addresses() {
        let (hook, inside) = (0..20)
            .find_map(|_| {
                let h = TcpListener::bind("127.0.0.2:0").ok()?;
                let port = h.local_addr().ok()?.port();
                Some((h, TcpListener::bind(("127.0.0.3", port)).ok()?))
            })
            .expect("a port free on both addresses");
        let port = hook.local_addr().unwrap().port();
        let delivered = receiver(hook, "204 No Content");
        let reached_inside = receiver(inside, "200 OK");
        let resolver = Arc::new(StaticResolver::new());
        resolver
            .answer("hook.test", &["127.0.0.2".parse::<IpAddr>().unwrap()])
            .answer("hook.test", &["127.0.0.3".parse::<IpAddr>().unwrap()]);
        let policy = callback_policy(false)
            .allow_address("127.0.0.2/32".parse().unwrap())
            .with_resolver(resolver.clone());
        let url = format!("http://hook.test:{port}/callback");
        let headers = [("content-type", "application/json".to_owned())];

        let first = post(&url, &policy, Duration::from_secs(5), &headers, b"{}");
        assert!(matches!(first, Ok(204)), "{first:?}");
        assert_eq!(resolver.calls("hook.test"), 1, "resolved once");
        assert_eq!(delivered.load(Ordering::SeqCst), 1);

        let second = post(&url, &policy, Duration::from_secs(5), &headers, b"{}");
        let Err(Refusal::Private(why)) = second else {
            panic!("expected a refusal, got {second:?}");
        };
        // the host and why, not what it resolves to (no DNS oracle for tenants)
        assert!(
            why.contains("hook.test") && why.contains("loopback") && !why.contains("127.0.0.3"),
            "{why}"
        );
        assert!(!why.contains("INTERNAL-MARKER"), "{why}");
        assert_eq!(resolver.calls("hook.test"), 2);
        assert_eq!(
            reached_inside.load(Ordering::SeqCst),
            0,
            "never connected inside"
        );

        // literal internal addresses are refused without a connection
        let e = post(
            &format!("http://127.0.0.3:{port}/"),
            &callback_policy(false),
            Duration::from_secs(5),
            &headers,
            b"{}",
        );
        assert!(matches!(e, Err(Refusal::Private(_))), "{e:?}");
        assert_eq!(reached_inside.load(Ordering::SeqCst), 0);

        // --allow-private-callbacks keeps its meaning
        let allowed = post(
            &format!("http://127.0.0.3:{port}/"),
            &callback_policy(true),
            Duration::from_secs(5),
            &headers,
            b"{}",
        );
        assert!(matches!(allowed, Ok(200)), "{allowed:?}");
        assert_eq!(reached_inside.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn signatures_verify_and_bind_the_timestamp() {
        let s = sign("whsec_x", 1_700_000_000, b"{\"a\":1}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64);
        assert!(verify("whsec_x", 1_700_000_000, b"{\"a\":1}", &s));
        assert!(
            !verify("whsec_x", 1_700_000_001, b"{\"a\":1}", &s),
            "another timestamp"
        );
        assert!(
            !verify("whsec_y", 1_700_000_000, b"{\"a\":1}", &s),
            "another secret"
        );
        assert!(
            !verify("whsec_x", 1_700_000_000, b"{\"a\":2}", &s),
            "another body"
        );
        assert!(!verify("whsec_x", 1_700_000_000, b"{\"a\":1}", "sha256=zz"));
    }
}
