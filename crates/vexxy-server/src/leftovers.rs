//! The sweep of what dead processes left behind: when a process starts
//! and then every [`ServiceConfig::sweep_every`](crate::ServiceConfig),
//! sandboxes whose owner process is gone are torn down and scratch
//! directories no live analysis holds are removed
//! ([`vexxy_analyze::reap_leftovers`]). A server or worker killed with
//! SIGKILL thus leaves nothing running once it (or any other vexxy
//! process on the host) starts again; what live processes use is never
//! touched.

use std::sync::Arc;

use tokio::sync::watch;

use crate::Service;

/// Sweeps now, then every `sweep_every`, until `stop` turns true.
pub(crate) async fn sweep_loop(svc: Arc<Service>, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        sweep(&svc).await;
        tokio::select! {
            () = tokio::time::sleep(svc.config.sweep_every) => {}
            _ = stop.changed() => {}
        }
    }
}

/// One sweep, on a blocking thread (it waits for processes and unmounts).
pub(crate) async fn sweep(svc: &Service) {
    let caches = svc.config.analysis.caches.clone();
    let swept = tokio::task::spawn_blocking(move || vexxy_analyze::reap_leftovers(&caches)).await;
    let left = match swept {
        Ok(left) => left,
        Err(e) => {
            tracing::error!(error = %e, "sweeping leftovers of dead processes failed");
            return;
        }
    };
    if !left.sandboxes.is_empty() {
        tracing::warn!(sandboxes = ?left.sandboxes, "reaped the sandboxes of dead vexxy processes");
    }
    if !left.scratch.is_empty() {
        tracing::warn!(directories = ?left.scratch, "removed the scratch directories of dead analyses");
    }
    for e in &left.errors {
        tracing::warn!(error = %e, "sweeping leftovers of dead processes");
    }
}
