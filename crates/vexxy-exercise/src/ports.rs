//! Waiting for the workload's ports to accept connections.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::netns::in_netns;
use crate::{ExerciseError, Target};

/// How often a port that refused is tried again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The longest a single connection attempt may take (loopback answers at
/// once; this bounds a listener whose backlog is full).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

/// Once one port is ready, how much longer the others are given before
/// [`wait_for_ports`] returns without them (an image may expose ports its
/// configuration never opens).
pub const READY_GRACE: Duration = Duration::from_secs(2);

/// Which ports accepted a connection, and when the first did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortsReady {
    /// Ports that accepted a TCP connection, ascending.
    pub ready: Vec<u16>,
    /// Time from the call until the first port accepted, when one did.
    pub after: Option<Duration>,
}

/// Polls TCP connects to every port of `target` (about every 20 ms) from
/// inside its network namespace until all accept, until [`READY_GRACE`]
/// after the first one did, or until `deadline`.
///
/// Each successful probe connection is closed at once.
pub fn wait_for_ports(target: &Target, deadline: Instant) -> Result<PortsReady, ExerciseError> {
    wait_for_ports_unless(target, deadline, &AtomicBool::new(false))
}

/// [`wait_for_ports`] that also gives up as soon as `stop` is set (checked
/// between polls): the caller sets it when the workload exits, so a
/// process that dies before listening does not hold the run until the
/// deadline.
pub fn wait_for_ports_unless(
    target: &Target,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<PortsReady, ExerciseError> {
    let start = Instant::now();
    let wanted: BTreeSet<u16> = target.ports.iter().copied().collect();
    if wanted.is_empty() {
        return Ok(PortsReady::default());
    }
    let host = target.host;
    let result = in_netns(target.netns.as_deref(), "vexxy-ports", move || {
        let mut ready = BTreeSet::new();
        let mut first: Option<Instant> = None;
        loop {
            let pending: Vec<u16> = wanted.difference(&ready).copied().collect();
            for port in pending {
                let now = Instant::now();
                let remaining = deadline.saturating_duration_since(now);
                if remaining.is_zero() {
                    break;
                }
                let addr = SocketAddr::new(host, port);
                match TcpStream::connect_timeout(&addr, remaining.min(CONNECT_TIMEOUT)) {
                    Ok(_stream) => {
                        tracing::debug!(port, "port accepts connections");
                        ready.insert(port);
                        first.get_or_insert_with(Instant::now);
                    }
                    Err(e) => tracing::trace!(port, error = %e, "port not ready"),
                }
            }
            let now = Instant::now();
            if ready.len() == wanted.len()
                || now >= deadline
                || stop.load(Ordering::Relaxed)
                || first.is_some_and(|t| now >= t + READY_GRACE)
            {
                break;
            }
            std::thread::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(now)));
        }
        PortsReady {
            ready: ready.into_iter().collect(),
            after: first.map(|t| t.saturating_duration_since(start)),
        }
    })?;
    if result.ready.is_empty() {
        tracing::info!(ports = ?target.ports, "no port accepted a connection before the deadline");
    } else {
        tracing::info!(ready = ?result.ready, after = ?result.after, "ports ready");
    }
    Ok(result)
}
