//! Protocol probes: speaking each ready port's own protocol far enough to
//! run the server's request paths (handshakes, authentication, a few
//! harmless commands), bounded in time and messages.
//!
//! Which probes a port gets is decided by [`plan_port`] from the port
//! number, the workload's command names ([`ProtocolHints`]) and what the
//! server says first (a banner names SSH, SMTP, FTP, MySQL, NATS, …); a
//! silent port nothing names gets the client-speaks-first probes in turn
//! until one is answered.
//!
//! Every probe runs on the namespace thread (see the crate's invariants),
//! makes its own connection to `Target::host`, bounds every read by
//! [`ProtocolBudget::read_timeout`] and the deadline, every frame by
//! [`MAX_FRAME_BYTES`] and its messages by
//! [`ProtocolBudget::max_requests_per_probe`]. A server that refuses,
//! stalls or answers garbage ends the probe with what it reached so far.

mod amqp;
mod banner;
mod grpc;
mod mqtt;
mod mysql;
mod nats;
mod pg;
mod resp;
mod tls;
mod wire;

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vexxy_model::{ExerciseStats, ProbeReach, ProbeRecord};

use crate::netns::in_netns;
use crate::{ExerciseError, Target};

pub(crate) use wire::{Fail, Session};

/// The largest frame, packet, line or message a probe reads: 1 MiB. A
/// server announcing more ends the probe (`frame too large`).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// How long a port is watched for a banner before the client speaks.
pub const BANNER_WAIT: Duration = Duration::from_millis(600);

/// How much the protocol probes may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolBudget {
    /// No probe starts after this and none runs past it.
    pub deadline: Instant,
    /// The longest a TCP connect may take.
    pub connect_timeout: Duration,
    /// The longest one read (or write) may wait.
    pub read_timeout: Duration,
    /// The longest one probe (one connection) may take.
    pub per_probe: Duration,
    /// Protocol messages one probe may send.
    pub max_requests_per_probe: u32,
    /// Probes over all ports.
    pub max_probes: u32,
}

impl ProtocolBudget {
    /// The default budget ending at `deadline`: 1 s connects, 2 s reads,
    /// 8 s and 32 messages per probe, 32 probes.
    pub fn until(deadline: Instant) -> Self {
        Self {
            deadline,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(2),
            per_probe: Duration::from_secs(8),
            max_requests_per_probe: 32,
            max_probes: 32,
        }
    }
}

/// Words from the image's configuration that name its protocol: the
/// basenames of the entrypoint and command (`redis-server`, `postgres`,
/// `mysqld`, `nats-server`, …).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProtocolHints {
    names: Vec<String>,
}

impl ProtocolHints {
    /// Hints from an argv: the lowercase basename of every argument that is
    /// not an option.
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Self {
        let names = args
            .iter()
            .map(AsRef::as_ref)
            .filter(|a| !a.starts_with('-'))
            .filter_map(|a| a.rsplit('/').next())
            .filter(|a| !a.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        Self { names }
    }

    fn protocols(&self) -> BTreeSet<Protocol> {
        let mut found = BTreeSet::new();
        for name in &self.names {
            for (needle, protocol) in NAME_HINTS {
                if name.contains(needle) {
                    found.insert(*protocol);
                }
            }
        }
        found
    }
}

/// A protocol a probe speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// A TLS handshake (and HTTP/1.1 over it when the server speaks it).
    Tls,
    /// Redis serialization protocol.
    Resp,
    /// PostgreSQL's `SSLRequest`, then a TLS handshake when accepted.
    PostgresTls,
    /// PostgreSQL's frontend/backend protocol v3.
    Postgres,
    /// MySQL/MariaDB client/server protocol.
    Mysql,
    /// AMQP 0-9-1.
    Amqp,
    /// MQTT 3.1.1.
    Mqtt,
    /// NATS client protocol.
    Nats,
    /// gRPC health checking over HTTP/2 with prior knowledge.
    GrpcHealth,
    /// Reading (and answering) a banner: SSH, SMTP, FTP, POP3, IMAP, other.
    Banner,
}

impl Protocol {
    /// The name recorded in the profile.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::Resp => "resp",
            Self::PostgresTls => "postgresql-ssl",
            Self::Postgres => "postgresql",
            Self::Mysql => "mysql",
            Self::Amqp => "amqp",
            Self::Mqtt => "mqtt",
            Self::Nats => "nats",
            Self::GrpcHealth => "grpc-health",
            Self::Banner => "banner",
        }
    }
}

/// Well-known ports.
const PORT_HINTS: &[(u16, &[Protocol])] = &[
    (443, &[Protocol::Tls]),
    (465, &[Protocol::Tls]),
    (636, &[Protocol::Tls]),
    (993, &[Protocol::Tls]),
    (995, &[Protocol::Tls]),
    (2376, &[Protocol::Tls]),
    (4443, &[Protocol::Tls]),
    (5671, &[Protocol::Tls]),
    (6443, &[Protocol::Tls]),
    (6697, &[Protocol::Tls]),
    (8443, &[Protocol::Tls]),
    (8883, &[Protocol::Tls]),
    (9443, &[Protocol::Tls]),
    (6379, &[Protocol::Resp]),
    (5432, &[Protocol::PostgresTls, Protocol::Postgres]),
    (3306, &[Protocol::Mysql]),
    (5672, &[Protocol::Amqp]),
    (1883, &[Protocol::Mqtt]),
    (4222, &[Protocol::Nats]),
    (50051, &[Protocol::GrpcHealth]),
];

/// Substrings of command names.
const NAME_HINTS: &[(&str, Protocol)] = &[
    ("redis", Protocol::Resp),
    ("valkey", Protocol::Resp),
    ("keydb", Protocol::Resp),
    ("postgres", Protocol::Postgres),
    ("mysql", Protocol::Mysql),
    ("mariadb", Protocol::Mysql),
    ("rabbitmq", Protocol::Amqp),
    ("mosquitto", Protocol::Mqtt),
    ("mqtt", Protocol::Mqtt),
    ("nats", Protocol::Nats),
    ("grpc", Protocol::GrpcHealth),
];

/// Client-speaks-first probes tried in turn on a silent port nothing names.
const FALLBACK: &[Protocol] = &[
    Protocol::Tls,
    Protocol::Resp,
    Protocol::Postgres,
    Protocol::GrpcHealth,
    Protocol::Amqp,
    Protocol::Mqtt,
];

/// What a banner identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Greeting {
    Mysql,
    Nats,
    /// SSH, SMTP, FTP, POP3, IMAP or an unknown banner: the banner probe.
    Other,
}

/// The probes for one port, in order, given its number, the hints and
/// what it said first (`None`: silent, or not watched).
pub(crate) fn plan_port(
    port: u16,
    hinted: &BTreeSet<Protocol>,
    greeting: Option<Greeting>,
) -> Vec<Protocol> {
    match greeting {
        Some(Greeting::Mysql) => return vec![Protocol::Mysql],
        Some(Greeting::Nats) => return vec![Protocol::Nats],
        Some(Greeting::Other) => return vec![Protocol::Banner],
        None => {}
    }
    if let Some((_, known)) = PORT_HINTS.iter().find(|(p, _)| *p == port) {
        // a server-first protocol that stayed silent is not that protocol
        let known: Vec<Protocol> = known
            .iter()
            .copied()
            .filter(|p| !matches!(p, Protocol::Mysql | Protocol::Nats))
            .collect();
        if !known.is_empty() {
            return known;
        }
    }
    let client_first: Vec<Protocol> = hinted
        .iter()
        .copied()
        .filter(|p| !matches!(p, Protocol::Mysql | Protocol::Nats))
        .flat_map(|p| {
            if p == Protocol::Postgres {
                vec![Protocol::PostgresTls, Protocol::Postgres]
            } else {
                vec![p]
            }
        })
        .collect();
    if !client_first.is_empty() {
        return client_first;
    }
    FALLBACK.to_vec()
}

/// Whether a port is watched for a banner: unless its number or the hints
/// name a client-speaks-first protocol for it.
fn watch_banner(port: u16, hinted: &BTreeSet<Protocol>) -> bool {
    match PORT_HINTS.iter().find(|(p, _)| *p == port) {
        Some((_, known)) => known
            .iter()
            .any(|p| matches!(p, Protocol::Mysql | Protocol::Nats)),
        None => {
            hinted.is_empty()
                || hinted
                    .iter()
                    .any(|p| matches!(p, Protocol::Mysql | Protocol::Nats))
        }
    }
}

/// What the protocol probes did, one record per probe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProtocolStats {
    /// Each probe that ran, in the order it ran.
    pub probes: Vec<ProbeRecord>,
}

impl ProtocolStats {
    /// Adds these records to a profile's exercise statistics.
    pub fn record_into(&self, stats: &mut ExerciseStats) {
        stats.probes.extend(self.probes.iter().cloned());
    }

    /// The furthest any probe got on `port`.
    pub fn reach(&self, port: u16) -> Option<ProbeReach> {
        self.probes
            .iter()
            .filter(|p| p.port == port)
            .map(|p| p.reach)
            .max()
    }
}

/// Probes every port in `ports` in its own protocol from inside the
/// target's network namespace (see the module docs for how probes are
/// chosen); stops at the budget's deadline or probe count.
pub fn probe_protocols(
    target: &Target,
    ports: &[u16],
    hints: &ProtocolHints,
    budget: &ProtocolBudget,
) -> Result<ProtocolStats, ExerciseError> {
    probe_protocols_unless(target, ports, hints, budget, &AtomicBool::new(false))
}

/// [`probe_protocols`] that also stops as soon as `stop` is set (checked
/// before every message and between probes, so within one read timeout).
pub fn probe_protocols_unless(
    target: &Target,
    ports: &[u16],
    hints: &ProtocolHints,
    budget: &ProtocolBudget,
    stop: &AtomicBool,
) -> Result<ProtocolStats, ExerciseError> {
    let host = target.host;
    let ports: Vec<u16> = ports
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let hinted = hints.protocols();
    let budget = budget.clone();
    let started = Instant::now();
    let stats = in_netns(target.netns.as_deref(), "vexxy-proto", move || {
        let mut stats = ProtocolStats::default();
        let mut ran: u32 = 0;
        for port in ports {
            if stopped(&budget, stop) {
                break;
            }
            let addr = SocketAddr::new(host, port);
            let greeting = if watch_banner(port, &hinted) {
                banner::identify(addr, &budget, stop)
            } else {
                None
            };
            let plan = plan_port(port, &hinted, greeting);
            let fallback = greeting.is_none() && plan == FALLBACK;
            for protocol in plan {
                if ran >= budget.max_probes || stopped(&budget, stop) {
                    break;
                }
                ran += 1;
                let record = run_one(protocol, addr, &budget, stop);
                tracing::debug!(
                    port,
                    protocol = record.protocol,
                    reach = ?record.reach,
                    outcome = record.outcome,
                    "protocol probe"
                );
                let answered = record.reach >= ProbeReach::Answered;
                stats.probes.push(record);
                if fallback && answered {
                    break;
                }
            }
        }
        stats
    })?;
    tracing::info!(
        probes = stats.probes.len(),
        elapsed = ?started.elapsed(),
        "protocol probes done"
    );
    Ok(stats)
}

/// The ready ports that get protocol probes after the HTTP prober ran:
/// those that never answered in HTTP, and well-known TLS ports (a plain
/// request to a TLS port is often answered with an HTTP error).
pub fn protocol_ports(ready: &[u16], http: &crate::HttpStats) -> Vec<u16> {
    let tls = |port: u16| {
        PORT_HINTS
            .iter()
            .any(|(p, known)| *p == port && known.contains(&Protocol::Tls))
    };
    ready
        .iter()
        .copied()
        .filter(|&p| !http.answered_ports.contains(&p) || tls(p))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn stopped(budget: &ProtocolBudget, stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed) || Instant::now() >= budget.deadline
}

/// Runs one probe and records it; never panics on what the server sends.
pub(crate) fn run_one(
    protocol: Protocol,
    addr: SocketAddr,
    budget: &ProtocolBudget,
    stop: &AtomicBool,
) -> ProbeRecord {
    let started = Instant::now();
    let deadline = budget.deadline.min(started + budget.per_probe);
    let mut record = ProbeRecord {
        port: addr.port(),
        protocol: protocol.name().to_owned(),
        reach: ProbeReach::Unreachable,
        outcome: "connection refused".to_owned(),
        requests: 0,
        answered: 0,
        duration_ms: 0,
    };
    if protocol == Protocol::GrpcHealth {
        grpc::probe(addr, budget, deadline, stop, &mut record);
    } else {
        match Session::connect(addr, budget, deadline, stop) {
            Ok(mut session) => {
                let result = match protocol {
                    Protocol::Tls => tls::probe(&mut session),
                    Protocol::Resp => resp::probe(&mut session),
                    Protocol::PostgresTls => pg::probe_ssl(&mut session),
                    Protocol::Postgres => pg::probe(&mut session),
                    Protocol::Mysql => mysql::probe(&mut session),
                    Protocol::Amqp => amqp::probe(&mut session),
                    Protocol::Mqtt => mqtt::probe(&mut session),
                    Protocol::Nats => nats::probe(&mut session),
                    Protocol::Banner => banner::probe(&mut session),
                    Protocol::GrpcHealth => Ok(()),
                };
                session.finish(result, &mut record);
            }
            Err(fail) => record.outcome = fail.to_string(),
        }
    }
    record.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    record
}

/// A short random token for keys, topics and client ids.
pub(crate) fn token() -> String {
    let n = RandomState::new().hash_one(Instant::now());
    format!("{n:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_hints_and_greetings_choose_probes() {
        let none = BTreeSet::new();
        assert_eq!(plan_port(6379, &none, None), [Protocol::Resp]);
        assert_eq!(
            plan_port(5432, &none, None),
            [Protocol::PostgresTls, Protocol::Postgres]
        );
        assert_eq!(plan_port(443, &none, None), [Protocol::Tls]);
        // a greeting beats the port number
        assert_eq!(
            plan_port(6379, &none, Some(Greeting::Mysql)),
            [Protocol::Mysql]
        );
        assert_eq!(
            plan_port(2222, &none, Some(Greeting::Other)),
            [Protocol::Banner]
        );
        let redis = ProtocolHints::from_args(&["/usr/bin/redis-server", "--port", "7000"]);
        assert_eq!(plan_port(7000, &redis.protocols(), None), [Protocol::Resp]);
        let pg = ProtocolHints::from_args(&["docker-entrypoint.sh", "postgres"]);
        assert_eq!(
            plan_port(6000, &pg.protocols(), None),
            [Protocol::PostgresTls, Protocol::Postgres]
        );
        // nothing names it: the client-first probes in turn
        assert_eq!(plan_port(7777, &none, None), FALLBACK);
        // a silent MySQL port is not MySQL
        assert_eq!(plan_port(3306, &none, None), FALLBACK);
        assert!(watch_banner(3306, &none));
        assert!(watch_banner(7777, &none));
        assert!(!watch_banner(6379, &none));
        assert!(!watch_banner(7000, &redis.protocols()));
    }

    #[test]
    fn ports_http_answered_are_left_alone_but_tls_ports() {
        let http = crate::HttpStats {
            answered_ports: BTreeSet::from([80, 443, 5000]),
            ..crate::HttpStats::default()
        };
        assert_eq!(
            protocol_ports(&[6379, 80, 443, 5000, 6379], &http),
            [443, 6379]
        );
    }
}
