//! The raw serde types of the v1 wire format and their conversions from and
//! into the domain model.
//!
//! Writing sorts every set-like collection; reading sorts too (so a reader
//! never relies on the producer) and rejects duplicate keys, naming the JSON
//! path of the second occurrence.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use vexxy_model::{
    Digest, EvidenceSpan, ExecutedBinary, ExecutionProfile, ExerciseStats, ExerciseWindow,
    FailedOpen, FileAccess, FunctionCalls, LoadedLibrary, LostEvents, NetworkUse, ProbeReach,
    ProbeRecord, ProcessRecord, ProfileSource, RunInfo, RunOutcome, ScriptOutcome, SocketAddress,
    SocketOp, TracerInfo, WindowEnd, WindowMode,
};

use crate::error::FieldError;
use crate::SCHEMA;

/// Just the `schema` field, read first so a document of another version is
/// reported as such rather than by its first unfamiliar field.
#[derive(Deserialize)]
pub(crate) struct Head {
    #[serde(default)]
    pub(crate) schema: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Document {
    pub(crate) schema: String,
    pub(crate) run: Run,
    pub(crate) execution_profile: Observed,
    pub(crate) exercise: Exercise,
    pub(crate) lost_events: Lost,
    pub(crate) tracer: Tracer,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Run {
    image: String,
    #[serde(default)]
    image_digest: Option<String>,
    command: Vec<String>,
    started_at: String,
    duration_ms: u64,
    requested_duration_ms: u64,
    outcome: Outcome,
    /// Absent in profiles written before windows were recorded.
    #[serde(default)]
    window: Option<Window>,
    /// Absent in profiles written before sources were recorded (all of
    /// them sandbox runs).
    #[serde(default)]
    source: Source,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    spans: Vec<Span>,
}

/// `run.source`.
#[derive(Serialize, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Source {
    #[default]
    Sandbox,
    Observed,
    Kubescape,
}

impl From<Source> for ProfileSource {
    fn from(s: Source) -> Self {
        match s {
            Source::Sandbox => Self::Sandbox,
            Source::Observed => Self::Observed,
            Source::Kubescape => Self::Kubescape,
        }
    }
}

impl From<ProfileSource> for Source {
    fn from(s: ProfileSource) -> Self {
        match s {
            ProfileSource::Sandbox => Self::Sandbox,
            ProfileSource::Observed => Self::Observed,
            ProfileSource::Kubescape => Self::Kubescape,
        }
    }
}

/// `run.spans[]`.
#[derive(Serialize, Deserialize)]
struct Span {
    source: Source,
    target: String,
    started_at: String,
    duration_ms: u64,
}

/// `run.window`: flat, so `quiet_ms` and `minimum_ms` are `null` for a
/// fixed window; the conversion checks they agree with `mode`.
#[derive(Serialize, Deserialize)]
struct Window {
    mode: Mode,
    #[serde(default)]
    quiet_ms: Option<u64>,
    #[serde(default)]
    minimum_ms: Option<u64>,
    ended: Ended,
    #[serde(default)]
    last_evidence_ms: Option<u64>,
    exercised_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Fixed,
    Adaptive,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Ended {
    Quiet,
    Maximum,
    Exited,
    TimedOut,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Outcome {
    StoppedAtEnd,
    Exited { code: i32 },
    Signaled { signal: i32 },
    TimedOut,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Observed {
    syscalls: BTreeMap<String, u64>,
    files_accessed: Vec<File>,
    failed_opens: Vec<Failed>,
    network_connections: Vec<Network>,
    loaded_libraries: Vec<Library>,
    executed_binaries: Vec<Binary>,
    processes: Vec<Process>,
    functions_executed: Vec<Function>,
}

#[derive(Serialize, Deserialize)]
struct File {
    path: String,
    opens: u64,
}

#[derive(Serialize, Deserialize)]
struct Failed {
    name: String,
    count: u64,
}

#[derive(Serialize, Deserialize)]
struct Network {
    op: Op,
    address: Address,
    ok: u64,
    failed: u64,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Op {
    Connect,
    Bind,
    Accept,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
enum Address {
    /// The IP stays a string here and is parsed in the conversion, so the
    /// error names its JSON path.
    Inet {
        ip: String,
        port: u16,
    },
    Unix {
        path: String,
    },
    Other {
        number: u16,
    },
}

#[derive(Serialize, Deserialize)]
struct Library {
    path: String,
    mappings: u64,
}

#[derive(Serialize, Deserialize)]
struct Binary {
    path: String,
    #[serde(default)]
    interpreter: Option<String>,
    count: u64,
}

#[derive(Serialize, Deserialize)]
struct Process {
    pid: u32,
    ppid: u32,
    comm: String,
    execs: Vec<String>,
    #[serde(default)]
    exit_code: Option<i32>,
}

#[derive(Serialize, Deserialize)]
struct Function {
    library: String,
    symbol: String,
    calls: u64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Exercise {
    ports: Vec<u16>,
    ready_ports: Vec<u16>,
    #[serde(default)]
    ready_after_ms: Option<u64>,
    http_requests: u64,
    /// Keys are status codes; kept as strings here and parsed in the
    /// conversion, so an error names the key's JSON path.
    http_status: BTreeMap<String, u64>,
    http_paths: Vec<String>,
    /// Absent in profiles written before the fuzz phase (and when it sent
    /// nothing).
    #[serde(default, skip_serializing_if = "is_zero")]
    http_fuzz_requests: u64,
    /// Absent when no OpenAPI document was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    openapi: Option<String>,
    /// Absent in profiles written before protocol probes (and when none
    /// ran); in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    probes: Vec<Probe>,
    #[serde(default)]
    script: Option<Script>,
}

#[derive(Serialize, Deserialize)]
struct Probe {
    port: u16,
    protocol: String,
    reach: Reach,
    outcome: String,
    requests: u64,
    answered: u64,
    duration_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Reach {
    Unreachable,
    Connected,
    Answered,
    Handshake,
    AuthRequired,
    Commands,
}

impl From<ProbeReach> for Reach {
    fn from(r: ProbeReach) -> Self {
        match r {
            ProbeReach::Unreachable => Self::Unreachable,
            ProbeReach::Connected => Self::Connected,
            ProbeReach::Answered => Self::Answered,
            ProbeReach::Handshake => Self::Handshake,
            ProbeReach::AuthRequired => Self::AuthRequired,
            ProbeReach::Commands => Self::Commands,
        }
    }
}

impl From<Reach> for ProbeReach {
    fn from(r: Reach) -> Self {
        match r {
            Reach::Unreachable => Self::Unreachable,
            Reach::Connected => Self::Connected,
            Reach::Answered => Self::Answered,
            Reach::Handshake => Self::Handshake,
            Reach::AuthRequired => Self::AuthRequired,
            Reach::Commands => Self::Commands,
        }
    }
}

impl From<&ProbeRecord> for Probe {
    fn from(p: &ProbeRecord) -> Self {
        Self {
            port: p.port,
            protocol: p.protocol.clone(),
            reach: p.reach.into(),
            outcome: p.outcome.clone(),
            requests: p.requests,
            answered: p.answered,
            duration_ms: p.duration_ms,
        }
    }
}

impl From<Probe> for ProbeRecord {
    fn from(p: Probe) -> Self {
        Self {
            port: p.port,
            protocol: p.protocol,
            reach: p.reach.into(),
            outcome: p.outcome,
            requests: p.requests,
            answered: p.answered,
            duration_ms: p.duration_ms,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Script {
    path: String,
    #[serde(default)]
    exit_code: Option<i32>,
    duration_ms: u64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Lost {
    ring_buffer: u64,
    map_full: BTreeMap<String, u64>,
    truncated_paths: u64,
    /// Absent in profiles written before observation (and in sandbox
    /// runs, where it is 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    running_before_attach: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Tracer {
    kernel: String,
    startup_ms: u64,
    uprobes_attached: u64,
    uprobe_errors: Vec<String>,
    /// Absent in profiles written before it existed: nothing complete.
    #[serde(default)]
    complete_libraries: Vec<String>,
}

// ---------------------------------------------------------------------------
// domain → wire

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

fn set<T: Ord>(items: Vec<T>) -> Vec<T> {
    let mut items = sorted(items);
    items.dedup();
    items
}

impl From<&ExecutionProfile> for Document {
    fn from(p: &ExecutionProfile) -> Self {
        Self {
            schema: SCHEMA.to_owned(),
            run: Run::from(&p.run),
            execution_profile: Observed {
                syscalls: p.syscalls.clone(),
                files_accessed: sorted(p.files.clone())
                    .into_iter()
                    .map(|f| File {
                        path: f.path,
                        opens: f.opens,
                    })
                    .collect(),
                failed_opens: sorted(p.failed_opens.clone())
                    .into_iter()
                    .map(|f| Failed {
                        name: f.name,
                        count: f.count,
                    })
                    .collect(),
                network_connections: sorted(p.network.clone())
                    .into_iter()
                    .map(Network::from)
                    .collect(),
                loaded_libraries: sorted(p.loaded_libraries.clone())
                    .into_iter()
                    .map(|l| Library {
                        path: l.path,
                        mappings: l.mappings,
                    })
                    .collect(),
                executed_binaries: sorted(p.executables.clone())
                    .into_iter()
                    .map(|b| Binary {
                        path: b.path,
                        interpreter: b.interpreter,
                        count: b.count,
                    })
                    .collect(),
                processes: sorted(p.processes.clone())
                    .into_iter()
                    .map(|r| Process {
                        pid: r.pid,
                        ppid: r.ppid,
                        comm: r.comm,
                        execs: r.execs,
                        exit_code: r.exit_code,
                    })
                    .collect(),
                functions_executed: sorted(p.functions.clone())
                    .into_iter()
                    .map(|f| Function {
                        library: f.library,
                        symbol: f.symbol,
                        calls: f.calls,
                    })
                    .collect(),
            },
            exercise: Exercise::from(&p.exercise),
            lost_events: Lost {
                ring_buffer: p.lost.ring_buffer,
                map_full: p.lost.map_full.clone(),
                truncated_paths: p.lost.truncated_paths,
                running_before_attach: p.lost.running_before_attach,
            },
            tracer: Tracer {
                kernel: p.tracer.kernel.clone(),
                startup_ms: p.tracer.startup_ms,
                uprobes_attached: p.tracer.uprobes_attached,
                uprobe_errors: sorted(p.tracer.uprobe_errors.clone()),
                complete_libraries: sorted(p.tracer.complete_libraries.clone()),
            },
        }
    }
}

impl From<&RunInfo> for Run {
    fn from(r: &RunInfo) -> Self {
        Self {
            image: r.image.clone(),
            image_digest: r.image_digest.clone(),
            command: r.command.clone(),
            started_at: r.started_at.clone(),
            duration_ms: r.duration_ms,
            requested_duration_ms: r.requested_duration_ms,
            outcome: match r.outcome {
                RunOutcome::StoppedAtEnd => Outcome::StoppedAtEnd,
                RunOutcome::Exited(code) => Outcome::Exited { code },
                RunOutcome::Signaled(signal) => Outcome::Signaled { signal },
                RunOutcome::TimedOut => Outcome::TimedOut,
            },
            window: r.window.as_ref().map(Window::from),
            source: r.source.into(),
            spans: r
                .spans
                .iter()
                .map(|s| Span {
                    source: s.source.into(),
                    target: s.target.clone(),
                    started_at: s.started_at.clone(),
                    duration_ms: s.duration_ms,
                })
                .collect(),
        }
    }
}

impl From<&ExerciseWindow> for Window {
    fn from(w: &ExerciseWindow) -> Self {
        let (mode, quiet_ms, minimum_ms) = match w.mode {
            WindowMode::Fixed => (Mode::Fixed, None, None),
            WindowMode::Adaptive {
                quiet_ms,
                minimum_ms,
            } => (Mode::Adaptive, Some(quiet_ms), Some(minimum_ms)),
        };
        Self {
            mode,
            quiet_ms,
            minimum_ms,
            ended: match w.ended {
                WindowEnd::Quiet => Ended::Quiet,
                WindowEnd::Maximum => Ended::Maximum,
                WindowEnd::Exited => Ended::Exited,
                WindowEnd::TimedOut => Ended::TimedOut,
            },
            last_evidence_ms: w.last_evidence_ms,
            exercised_ms: w.exercised_ms,
        }
    }
}

impl From<NetworkUse> for Network {
    fn from(n: NetworkUse) -> Self {
        Self {
            op: match n.op {
                SocketOp::Connect => Op::Connect,
                SocketOp::Bind => Op::Bind,
                SocketOp::Accept => Op::Accept,
            },
            address: match n.address {
                SocketAddress::Inet(ip, port) => Address::Inet {
                    ip: ip.to_string(),
                    port,
                },
                SocketAddress::Unix(path) => Address::Unix { path },
                SocketAddress::Other(number) => Address::Other { number },
            },
            ok: n.ok,
            failed: n.failed,
        }
    }
}

impl From<&ExerciseStats> for Exercise {
    fn from(e: &ExerciseStats) -> Self {
        Self {
            ports: set(e.ports.clone()),
            ready_ports: set(e.ready_ports.clone()),
            ready_after_ms: e.ready_after_ms,
            http_requests: e.http_requests,
            http_status: e
                .http_status
                .iter()
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
            http_paths: set(e.http_paths.clone()),
            http_fuzz_requests: e.http_fuzz_requests,
            openapi: e.openapi.clone(),
            probes: e.probes.iter().map(Probe::from).collect(),
            script: e.script.as_ref().map(|s| Script {
                path: s.path.clone(),
                exit_code: s.exit_code,
                duration_ms: s.duration_ms,
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// wire → domain

fn invalid(json_path: String, message: impl Into<String>) -> FieldError {
    FieldError {
        json_path,
        message: message.into(),
    }
}

/// Sorts `items` after checking that no two share a key (the key as it
/// appears in the message, strings quoted); the error names the JSON path
/// `{section}[i]{field}` of the later duplicate.
fn unique_sorted<T: Ord, K: Ord + Display>(
    items: Vec<T>,
    section: &str,
    field: &str,
    what: &str,
    key: impl Fn(&T) -> K,
) -> Result<Vec<T>, FieldError> {
    let mut seen = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(first) = seen.insert(key(item), i) {
            return Err(invalid(
                format!("{section}[{i}]{field}"),
                format!("duplicate {what} {} (first at index {first})", key(item)),
            ));
        }
    }
    Ok(sorted(items))
}

impl TryFrom<Document> for ExecutionProfile {
    type Error = FieldError;

    fn try_from(doc: Document) -> Result<Self, FieldError> {
        // `parse` checks the schema before converting; checked again so the
        // conversion is total on its own.
        if doc.schema != SCHEMA {
            return Err(invalid(
                "schema".into(),
                format!("unsupported execution profile schema {:?}", doc.schema),
            ));
        }
        let o = doc.execution_profile;
        const S: &str = "execution_profile";

        let files = o
            .files_accessed
            .into_iter()
            .map(|f| FileAccess {
                path: f.path,
                opens: f.opens,
            })
            .collect();
        let files = unique_sorted(
            files,
            &format!("{S}.files_accessed"),
            ".path",
            "path",
            |f: &FileAccess| format!("{:?}", f.path),
        )?;

        let failed_opens = o
            .failed_opens
            .into_iter()
            .map(|f| FailedOpen {
                name: f.name,
                count: f.count,
            })
            .collect();
        let failed_opens = unique_sorted(
            failed_opens,
            &format!("{S}.failed_opens"),
            ".name",
            "name",
            |f: &FailedOpen| format!("{:?}", f.name),
        )?;

        let mut network = Vec::with_capacity(o.network_connections.len());
        for (i, n) in o.network_connections.into_iter().enumerate() {
            let address = match n.address {
                Address::Inet { ip, port } => {
                    let parsed: IpAddr = ip.parse().map_err(|_| {
                        invalid(
                            format!("{S}.network_connections[{i}].address.ip"),
                            format!("invalid ip address {ip:?}"),
                        )
                    })?;
                    SocketAddress::Inet(parsed, port)
                }
                Address::Unix { path } => SocketAddress::Unix(path),
                Address::Other { number } => SocketAddress::Other(number),
            };
            let op = match n.op {
                Op::Connect => SocketOp::Connect,
                Op::Bind => SocketOp::Bind,
                Op::Accept => SocketOp::Accept,
            };
            network.push(NetworkUse {
                op,
                address,
                ok: n.ok,
                failed: n.failed,
            });
        }
        let network = unique_sorted(
            network,
            &format!("{S}.network_connections"),
            "",
            "operation and address",
            |n: &NetworkUse| format!("{:?} {}", n.op, address_text(&n.address)).to_lowercase(),
        )?;

        let loaded_libraries = o
            .loaded_libraries
            .into_iter()
            .map(|l| LoadedLibrary {
                path: l.path,
                mappings: l.mappings,
            })
            .collect();
        let loaded_libraries = unique_sorted(
            loaded_libraries,
            &format!("{S}.loaded_libraries"),
            ".path",
            "path",
            |l: &LoadedLibrary| format!("{:?}", l.path),
        )?;

        let executables = o
            .executed_binaries
            .into_iter()
            .map(|b| ExecutedBinary {
                path: b.path,
                interpreter: b.interpreter,
                count: b.count,
            })
            .collect();
        let executables = unique_sorted(
            executables,
            &format!("{S}.executed_binaries"),
            ".path",
            "path",
            |b: &ExecutedBinary| format!("{:?}", b.path),
        )?;

        let processes = o
            .processes
            .into_iter()
            .map(|p| ProcessRecord {
                pid: p.pid,
                ppid: p.ppid,
                execs: p.execs,
                comm: p.comm,
                exit_code: p.exit_code,
            })
            .collect();
        let processes = unique_sorted(
            processes,
            &format!("{S}.processes"),
            ".pid",
            "pid",
            |p: &ProcessRecord| p.pid,
        )?;

        let functions = o
            .functions_executed
            .into_iter()
            .map(|f| FunctionCalls {
                library: f.library,
                symbol: f.symbol,
                calls: f.calls,
            })
            .collect();
        let functions = unique_sorted(
            functions,
            &format!("{S}.functions_executed"),
            "",
            "library and symbol",
            |f: &FunctionCalls| format!("{:?} {:?}", f.library, f.symbol),
        )?;

        Ok(Self {
            run: RunInfo::try_from(doc.run)?,
            executables,
            files,
            failed_opens,
            loaded_libraries,
            network,
            syscalls: o.syscalls,
            processes,
            functions,
            exercise: ExerciseStats::try_from(doc.exercise)?,
            lost: LostEvents {
                ring_buffer: doc.lost_events.ring_buffer,
                map_full: doc.lost_events.map_full,
                truncated_paths: doc.lost_events.truncated_paths,
                running_before_attach: doc.lost_events.running_before_attach,
            },
            tracer: TracerInfo {
                kernel: doc.tracer.kernel,
                startup_ms: doc.tracer.startup_ms,
                uprobes_attached: doc.tracer.uprobes_attached,
                uprobe_errors: sorted(doc.tracer.uprobe_errors),
                complete_libraries: sorted(doc.tracer.complete_libraries),
            },
        })
    }
}

fn address_text(a: &SocketAddress) -> String {
    match a {
        SocketAddress::Inet(ip, port) => std::net::SocketAddr::new(*ip, *port).to_string(),
        SocketAddress::Unix(path) => format!("unix:{path}"),
        SocketAddress::Other(n) => format!("family {n}"),
    }
}

impl TryFrom<Run> for RunInfo {
    type Error = FieldError;

    fn try_from(r: Run) -> Result<Self, FieldError> {
        let image_digest = match r.image_digest {
            None => None,
            Some(text) => Some(
                text.parse::<Digest>()
                    .map_err(|e| invalid("run.image_digest".into(), e.to_string()))?
                    .to_string(),
            ),
        };
        Ok(Self {
            image: r.image,
            image_digest,
            command: r.command,
            started_at: r.started_at,
            duration_ms: r.duration_ms,
            requested_duration_ms: r.requested_duration_ms,
            outcome: match r.outcome {
                Outcome::StoppedAtEnd => RunOutcome::StoppedAtEnd,
                Outcome::Exited { code } => RunOutcome::Exited(code),
                Outcome::Signaled { signal } => RunOutcome::Signaled(signal),
                Outcome::TimedOut => RunOutcome::TimedOut,
            },
            window: r.window.map(ExerciseWindow::try_from).transpose()?,
            source: r.source.into(),
            spans: r
                .spans
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    if s.target.is_empty() {
                        return Err(invalid(
                            format!("run.spans[{i}].target"),
                            "must name what was traced",
                        ));
                    }
                    Ok(EvidenceSpan {
                        source: s.source.into(),
                        target: s.target,
                        started_at: s.started_at,
                        duration_ms: s.duration_ms,
                    })
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

impl TryFrom<Window> for ExerciseWindow {
    type Error = FieldError;

    fn try_from(w: Window) -> Result<Self, FieldError> {
        const W: &str = "run.window";
        let mode = match (w.mode, w.quiet_ms, w.minimum_ms) {
            (Mode::Fixed, None, None) => WindowMode::Fixed,
            (Mode::Fixed, Some(_), _) => {
                return Err(invalid(
                    format!("{W}.quiet_ms"),
                    "a fixed window has no quiet period: expected null",
                ));
            }
            (Mode::Fixed, None, Some(_)) => {
                return Err(invalid(
                    format!("{W}.minimum_ms"),
                    "a fixed window has no minimum: expected null",
                ));
            }
            (Mode::Adaptive, Some(quiet_ms), Some(minimum_ms)) => WindowMode::Adaptive {
                quiet_ms,
                minimum_ms,
            },
            (Mode::Adaptive, None, _) => {
                return Err(invalid(
                    format!("{W}.quiet_ms"),
                    "an adaptive window needs its quiet period",
                ));
            }
            (Mode::Adaptive, Some(_), None) => {
                return Err(invalid(
                    format!("{W}.minimum_ms"),
                    "an adaptive window needs its minimum",
                ));
            }
        };
        let ended = match w.ended {
            Ended::Quiet if mode == WindowMode::Fixed => {
                return Err(invalid(
                    format!("{W}.ended"),
                    "a fixed window does not end quiet",
                ));
            }
            Ended::Quiet => WindowEnd::Quiet,
            Ended::Maximum => WindowEnd::Maximum,
            Ended::Exited => WindowEnd::Exited,
            Ended::TimedOut => WindowEnd::TimedOut,
        };
        Ok(Self {
            mode,
            ended,
            last_evidence_ms: w.last_evidence_ms,
            exercised_ms: w.exercised_ms,
        })
    }
}

impl TryFrom<Exercise> for ExerciseStats {
    type Error = FieldError;

    fn try_from(e: Exercise) -> Result<Self, FieldError> {
        let mut http_status = BTreeMap::new();
        for (code, n) in e.http_status {
            let parsed = code
                .parse::<u16>()
                .ok()
                .filter(|c| c.to_string() == code)
                .ok_or_else(|| {
                    invalid(
                        format!("exercise.http_status.{code}"),
                        format!("invalid status code {code:?}: expected a number from 0 to 65535"),
                    )
                })?;
            http_status.insert(parsed, n);
        }
        let paths: BTreeSet<String> = e.http_paths.into_iter().collect();
        Ok(Self {
            ports: set(e.ports),
            ready_ports: set(e.ready_ports),
            ready_after_ms: e.ready_after_ms,
            http_requests: e.http_requests,
            http_status,
            http_paths: paths.into_iter().collect(),
            http_fuzz_requests: e.http_fuzz_requests,
            openapi: e.openapi,
            probes: e.probes.into_iter().map(ProbeRecord::from).collect(),
            script: e.script.map(|s| ScriptOutcome {
                path: s.path,
                exit_code: s.exit_code,
                duration_ms: s.duration_ms,
            }),
        })
    }
}
