//! Exercising a sandboxed workload from inside its network namespace.
//!
//! The sandbox gives the workload a network namespace with nothing but
//! loopback, so every connection to it must be made from inside that
//! namespace:
//!
//! - [`wait_for_ports`] polls TCP connects until the workload's ports accept;
//! - [`probe_http`] sends a bounded, same-origin crawl of plain HTTP requests
//!   to the ready ports, then the operations of an OpenAPI/Swagger document
//!   a port serves and a bounded fuzz phase, and counts the answers;
//! - [`probe_protocols`] speaks each remaining port's own protocol (TLS,
//!   RESP, PostgreSQL, MySQL, AMQP, MQTT, NATS, gRPC health, banners) far
//!   enough to run its handshake and a few harmless commands, and records
//!   how far each probe got ([`ProtocolStats`]);
//! - [`run_script`] runs the user's test script (`/bin/sh`) in the namespace
//!   with `nsenter`, bounded by a deadline.
//!
//! Invariants:
//! - sockets are only ever created on a dedicated thread that has joined the
//!   target's network namespace (`setns` on that thread alone); the calling
//!   thread and the rest of the process never change namespace;
//! - the probers contact only `Target::host` on the ports they are given:
//!   they never follow a redirect, a link or an OpenAPI `servers`/`host`
//!   entry to another scheme, host or port, and ignore proxy settings from
//!   the environment;
//! - work is bounded: requests by [`ProbeBudget::max_requests`], time by the
//!   deadlines (no request outlives [`ProbeBudget::deadline`]), bodies read
//!   to [`MAX_BODY_BYTES`], script output kept to the last
//!   [`MAX_OUTPUT_BYTES`]; protocol probes by [`ProtocolBudget`] (connect,
//!   per-read and per-probe timeouts, messages per probe, probes in all) and
//!   every frame, packet or line they read by [`MAX_FRAME_BYTES`];
//! - a test script runs in its own process group, and the whole group is
//!   killed at the deadline (and when the script exits) — nothing it starts
//!   in its group outlives [`run_script`];
//! - the `_unless` variants ([`wait_for_ports_unless`], [`probe_http_unless`],
//!   [`probe_protocols_unless`], [`run_script_captured_unless`]) also return
//!   as soon as the caller's stop flag is set: between polls, before the
//!   next request, within 100 ms of a protocol read, or by killing the
//!   script's group (a cancelled run does not wait for its exercisers);
//! - the workload misbehaving (refusing, resetting, timing out, answering
//!   garbage, a script failing) is a result, never an error or a panic.

mod api;
mod error;
mod http;
mod netns;
mod ports;
mod proto;
mod script;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

pub use error::ExerciseError;
pub use http::{probe_http, probe_http_unless, HttpStats, ProbeBudget, MAX_BODY_BYTES};
pub use ports::{wait_for_ports, wait_for_ports_unless, PortsReady, READY_GRACE};
pub use proto::{
    probe_protocols, probe_protocols_unless, protocol_ports, Protocol, ProtocolBudget,
    ProtocolHints, ProtocolStats, BANNER_WAIT, MAX_FRAME_BYTES,
};
pub use script::{
    run_script, run_script_captured, run_script_captured_unless, ScriptRun, MAX_OUTPUT_BYTES,
};

/// The workload to exercise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The workload's network namespace, e.g. `/proc/1234/ns/net`; `None`
    /// for the caller's own (tests).
    pub netns: Option<PathBuf>,
    /// The workload's address inside that namespace, normally `127.0.0.1`.
    pub host: IpAddr,
    /// The TCP ports the workload is expected to listen on.
    pub ports: Vec<u16>,
}

impl Target {
    /// A workload at `127.0.0.1` in the namespace `netns`, listening on `ports`.
    pub fn loopback(netns: Option<PathBuf>, ports: Vec<u16>) -> Self {
        Self {
            netns,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports,
        }
    }
}
