//! The service's settings (the binary fills them from flags, a config
//! file and the environment).

use std::time::Duration;

use vexxy_store::Backoff;

use crate::api::{DocumentLimits, SubmitLimits};

/// A secret setting (such as the metrics token): compared in constant
/// time, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Whether `presented` is the secret, in time independent of where
    /// they differ (both are hashed, the digests compared in constant time).
    pub fn matches(&self, presented: &str) -> bool {
        use hmac::{Hmac, Mac as _};
        let mac = |text: &str| {
            Hmac::<sha2::Sha256>::new_from_slice(b"vexxy secret comparison").map(|mut m| {
                m.update(text.as_bytes());
                m
            })
        };
        match (mac(&self.0), mac(presented)) {
            (Ok(expected), Ok(given)) => given
                .verify_slice(&expected.finalize().into_bytes())
                .is_ok(),
            _ => false,
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// How the service behaves. `Default` is the embedded single-machine setup.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// This process' name in leases and logs (host:pid by default).
    pub instance: String,
    /// Jobs this process runs at once (0: API only, `vexxy worker`
    /// processes do the work). The binary's default is
    /// [`WorkerBudget`](crate::capacity::WorkerBudget)'s, from the host's
    /// CPUs and memory; `Default` says 1.
    pub workers: usize,
    pub queue: QueueConfig,
    pub webhooks: WebhookConfig,
    pub submit: SubmitLimits,
    /// Evidence of jobs finished longer ago than this is deleted.
    pub retention: Duration,
    /// How often the retention sweeper runs, and how often leftovers of
    /// dead processes (sandboxes, scratch directories) are swept.
    pub sweep_every: Duration,
    /// Free bytes kept in reserve on the disks of a SQLite database and
    /// a local evidence directory: below it the service is not ready
    /// (`/readyz` 503) and refuses submissions, so that running jobs can
    /// still store their results.
    pub min_free_bytes: u64,
    /// Running jobs get this long to finish at shutdown; then they are
    /// cancelled and put back in the queue.
    pub shutdown_grace: Duration,
    /// Largest request body (scanner reports can be large); a submission
    /// is refused as soon as more arrives.
    pub max_body_bytes: usize,
    /// `/metrics` answers only requests with `Authorization: Bearer
    /// <token>`; without a token it is not served at all (404).
    pub metrics_token: Option<Secret>,
    /// Seals organisations' private signing keys and registry passwords
    /// at rest; without it those features are refused (503), never
    /// stored in the clear. `Debug` shows its id only.
    pub secret_key: Option<vexxy_store::ServerKey>,
    /// How analyses run: caches, local-image roots, sandbox limits.
    pub analysis: crate::job::AnalysisSettings,
}

/// Leasing, retries and timeouts of jobs.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// A claimed job is the worker's for this long without a heartbeat.
    pub lease: Duration,
    pub heartbeat: Duration,
    /// How often an idle worker looks for work.
    pub poll: Duration,
    /// Attempts before a job fails for good (transient failures, lost workers).
    pub max_attempts: i64,
    /// First retry delay (failed attempts, lost workers); doubles per
    /// attempt, capped at an hour ([`QueueConfig::retries`]).
    pub retry_backoff: Duration,
    /// Wall-clock limit of one attempt.
    pub job_timeout: Duration,
}

/// Delivery of completion callbacks.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub max_attempts: i64,
    /// First retry delay; doubles per attempt, capped at an hour
    /// ([`WebhookConfig::retries`]).
    pub backoff: Duration,
    pub timeout: Duration,
    pub poll: Duration,
}

impl QueueConfig {
    /// How long a job waits before its next attempt.
    pub fn retries(&self) -> Backoff {
        Backoff::new(self.retry_backoff, Backoff::DEFAULT_CAP)
    }
}

impl WebhookConfig {
    /// How long a delivery waits before its next attempt.
    pub fn retries(&self) -> Backoff {
        Backoff::new(self.backoff, Backoff::DEFAULT_CAP)
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            instance: default_instance(),
            workers: 1,
            queue: QueueConfig {
                lease: Duration::from_secs(30),
                heartbeat: Duration::from_secs(2),
                poll: Duration::from_millis(500),
                max_attempts: 3,
                retry_backoff: Duration::from_secs(10),
                job_timeout: Duration::from_secs(900),
            },
            webhooks: WebhookConfig {
                max_attempts: 8,
                backoff: Duration::from_secs(2),
                timeout: Duration::from_secs(10),
                poll: Duration::from_millis(500),
            },
            submit: SubmitLimits {
                default_duration: Duration::from_secs(30),
                max_duration: Duration::from_secs(600),
                allow_private_callbacks: false,
                allow_test_scripts: false,
                scan_report: DocumentLimits {
                    max_bytes: 48 << 20,
                    max_values: 2_000_000,
                },
                sbom: DocumentLimits {
                    max_bytes: 64 << 20,
                    max_values: 4_000_000,
                },
                large_body_bytes: 1 << 20,
                max_large_submits: 2,
            },
            retention: Duration::from_secs(90 * 86_400),
            sweep_every: Duration::from_secs(3600),
            min_free_bytes: 64 << 20,
            shutdown_grace: Duration::from_secs(60),
            max_body_bytes: 64 << 20,
            metrics_token: None,
            secret_key: None,
            analysis: crate::job::AnalysisSettings::default(),
        }
    }
}

fn default_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_the_configured_base() {
        let c = ServiceConfig::default();
        let s = Duration::from_secs;
        assert_eq!(c.queue.retries().delay(1), s(10), "first retry");
        assert_eq!(c.queue.retries().delay(3), s(40));
        assert_eq!(c.webhooks.retries().delay(4), s(16));
        assert_eq!(c.webhooks.retries().delay(20), s(3600), "capped");
    }

    #[test]
    fn secrets_match_exactly_and_do_not_show() {
        let token = Secret::new("s3cret-token");
        assert!(token.matches("s3cret-token"));
        for wrong in ["", "s3cret-toke", "s3cret-token ", "S3CRET-TOKEN", "x"] {
            assert!(!token.matches(wrong), "{wrong:?}");
        }
        let config = ServiceConfig {
            metrics_token: Some(token),
            ..ServiceConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
