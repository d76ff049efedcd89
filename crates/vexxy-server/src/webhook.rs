//! Delivers completion callbacks: claims due deliveries from the outbox,
//! signs them and POSTs them, records every attempt, retries with
//! exponential backoff.
//!
//! Signature: `X-Vexxy-Signature: sha256=<hex HMAC-SHA256(secret,
//! "<X-Vexxy-Timestamp>.<body>")>`, with the organisation's webhook
//! secret; the timestamp (Unix seconds) is signed so a receiver can refuse
//! replays.

use std::{sync::Arc, time::Instant};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use tokio::sync::watch;
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
enum Refusal {
    Transport(String),
    /// The host resolves to a non-public address: never retried.
    Private(String),
}

fn resolves_publicly(raw: &str) -> Result<(), Refusal> {
    use std::net::ToSocketAddrs as _;
    let url = url::Url::parse(raw).map_err(|e| Refusal::Private(format!("{raw}: {e}")))?;
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| Refusal::Transport(format!("resolving {host}: {e}")))?;
    for a in addrs {
        if !crate::api::is_public(a.ip()) {
            return Err(Refusal::Private(format!(
                "{host} resolves to the non-public address {}; not delivered",
                a.ip()
            )));
        }
    }
    Ok(())
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
    let allow_private = svc.config.submit.allow_private_callbacks;
    let sent = tokio::task::spawn_blocking(move || {
        if !allow_private {
            // the name may resolve to an internal address even though the
            // URL passed the check at submit time
            resolves_publicly(&url)?;
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            .user_agent(concat!("vexxy-webhooks/", env!("CARGO_PKG_VERSION")))
            .timeout_global(Some(timeout))
            .build()
            .into();
        agent
            .post(&url)
            .header("content-type", "application/json")
            .header("x-vexxy-event", "analysis")
            .header("x-vexxy-delivery", &id)
            .header("x-vexxy-timestamp", &timestamp.to_string())
            .header("x-vexxy-signature", &signature)
            .send(body.as_bytes())
            .map(|r| r.status().as_u16())
            .map_err(|e| Refusal::Transport(e.to_string()))
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
    use super::*;

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
