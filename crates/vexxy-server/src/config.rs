//! The service's settings (the binary fills them from flags, a config
//! file and the environment).

use std::time::Duration;

use vexxy_store::Backoff;

use crate::api::SubmitLimits;

/// How the service behaves. `Default` is the embedded single-machine setup.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// This process' name in leases and logs (host:pid by default).
    pub instance: String,
    /// In-process workers (0: API only, `vexxy worker` processes do the work).
    pub workers: usize,
    pub queue: QueueConfig,
    pub webhooks: WebhookConfig,
    pub submit: SubmitLimits,
    /// Evidence of jobs finished longer ago than this is deleted.
    pub retention: Duration,
    pub sweep_every: Duration,
    /// Running jobs get this long to finish at shutdown; then they are
    /// cancelled and put back in the queue.
    pub shutdown_grace: Duration,
    /// Largest request body (scanner reports can be large).
    pub max_body_bytes: usize,
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
            },
            retention: Duration::from_secs(90 * 86_400),
            sweep_every: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(60),
            max_body_bytes: 64 << 20,
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
}
