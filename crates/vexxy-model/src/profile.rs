//! What a sandboxed, traced run of an image observed: the execution profile.
//!
//! Paths are absolute paths as the workload saw them (inside the container's
//! root). Every collection is kept sorted and free of duplicates by its
//! producer, so two profiles of the same run compare equal and serialise the
//! same way.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// One traced, exercised run of an image in the sandbox.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecutionProfile {
    /// What ran and for how long.
    pub run: RunInfo,
    /// Programs started with `execve` (the ELF interpreter resolved from the file).
    pub executables: Vec<ExecutedBinary>,
    /// Files opened successfully, with counts.
    pub files: Vec<FileAccess>,
    /// Opens that failed, by the name the program passed (possibly relative).
    pub failed_opens: Vec<FailedOpen>,
    /// Files mapped executable (`mmap`/`mprotect` with `PROT_EXEC`, plus the
    /// programs and interpreters the kernel mapped at `execve`).
    pub loaded_libraries: Vec<LoadedLibrary>,
    /// Sockets connected, bound or accepted.
    pub network: Vec<NetworkUse>,
    /// System calls by name, with counts.
    pub syscalls: BTreeMap<String, u64>,
    /// Every process the workload started, as a tree by parent pid.
    pub processes: Vec<ProcessRecord>,
    /// Calls counted by uprobes on requested `(library, symbol)` pairs. A pair
    /// that was requested but never called is present with `calls == 0`.
    pub functions: Vec<FunctionCalls>,
    /// How the workload was exercised.
    pub exercise: ExerciseStats,
    /// Events or aggregation entries the tracer could not record.
    pub lost: LostEvents,
    /// Facts about the tracer itself.
    pub tracer: TracerInfo,
}

/// The run: image, command, timing, outcome.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunInfo {
    /// Image reference as given (`oci-archive:…`, `dir:…`, registry reference).
    pub image: String,
    /// The image's config digest (`sha256:…`), when the image had one.
    pub image_digest: Option<String>,
    /// The argv the sandbox ran.
    pub command: Vec<String>,
    /// RFC 3339 start time.
    pub started_at: String,
    /// How long the workload ran, in milliseconds: from its start until
    /// it exited or the exercise window closed.
    pub duration_ms: u64,
    /// The requested exercise window, in milliseconds: its length when
    /// fixed, its maximum when adaptive.
    pub requested_duration_ms: u64,
    /// How the workload ended.
    pub outcome: RunOutcome,
    /// How the exercise window was to end and why it did; `None` in
    /// profiles written before windows were recorded (all of them fixed).
    pub window: Option<ExerciseWindow>,
    /// Where the evidence came from: vexxy's sandbox (the default), a
    /// running container vexxy observed, or an imported Kubescape profile.
    /// A merged profile is `Observed` when any part was, else `Kubescape`
    /// when any part was.
    pub source: ProfileSource,
    /// Each source merged into this profile, with the time it covers; a
    /// sandbox run that was never merged has none (`run` itself says it).
    pub spans: Vec<EvidenceSpan>,
}

/// Where a profile's evidence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ProfileSource {
    /// vexxy ran the image in its sandbox and exercised it.
    #[default]
    Sandbox,
    /// vexxy's tracer attached to containers that were already running
    /// (`vexxy observe`, the node agent): what the image did under the
    /// traffic it really gets.
    Observed,
    /// Imported from a Kubescape `ApplicationProfile` or
    /// `ContainerProfile`: programs executed and files opened only (no
    /// mappings, no function calls), recorded by a third party.
    Kubescape,
}

impl ProfileSource {
    /// The name used in documents (`sandbox`, `observed`, `kubescape`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Observed => "observed",
            Self::Kubescape => "kubescape",
        }
    }

    /// The stronger claim to real use of two sources: observed production
    /// traffic over an imported profile over a synthetic sandbox run.
    pub fn combine(self, other: Self) -> Self {
        let rank = |s: Self| match s {
            Self::Observed => 2,
            Self::Kubescape => 1,
            Self::Sandbox => 0,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl std::fmt::Display for ProfileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One source of evidence merged into a profile, and the time it covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EvidenceSpan {
    /// What recorded it.
    pub source: ProfileSource,
    /// What was traced: a containerd container id (`namespace/id`), a
    /// cgroup path, `pid:N`, a Kubescape object's name, or the sandbox
    /// run's image reference.
    pub target: String,
    /// RFC 3339 start of the span.
    pub started_at: String,
    /// Its length in milliseconds.
    pub duration_ms: u64,
}

/// The exercise window of a run: the policy it followed, why it closed,
/// and the two times the policy looks at. Times are milliseconds after the
/// workload started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExerciseWindow {
    /// How the window was to end.
    pub mode: WindowMode,
    /// Why it ended.
    pub ended: WindowEnd,
    /// When the tracer last saw new evidence (a program executed, a file
    /// opened or mapped, a failed open, a socket address, a probed function
    /// entered, each for the first time) before the window closed; `None`
    /// when it saw none.
    pub last_evidence_ms: Option<u64>,
    /// When every exerciser (port wait, HTTP probe, test script) had
    /// finished.
    pub exercised_ms: u64,
}

/// How an exercise window ends (besides the workload exiting, or the hard
/// timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowMode {
    /// At the requested duration.
    Fixed,
    /// Once no new evidence arrived for `quiet_ms` after every exerciser
    /// finished, and not before `minimum_ms`; at the requested duration at
    /// the latest.
    Adaptive {
        /// The quiet period, in milliseconds.
        quiet_ms: u64,
        /// The shortest window, in milliseconds.
        minimum_ms: u64,
    },
}

/// Why an exercise window closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowEnd {
    /// Adaptive windows only: the evidence stopped changing for the quiet
    /// period after every exerciser had finished.
    Quiet,
    /// The requested duration (the maximum) was reached; a test script
    /// that ran past it ends the window when it finishes.
    Maximum,
    /// The workload exited on its own (or was killed by a signal it did
    /// not get from vexxy).
    Exited,
    /// The run's hard timeout passed.
    TimedOut,
}

/// The traced run started another command than the image's own (an
/// entrypoint or command override): its runtime evidence is about that
/// command, not necessarily about what the image runs when deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOverride {
    /// The image's own argv (entrypoint + command).
    pub image: Vec<String>,
    /// The argv the run started.
    pub run: Vec<String>,
}

impl CommandOverride {
    /// An override when `run` differs from `image`.
    pub fn between(image: &[String], run: &[String]) -> Option<Self> {
        (image != run).then(|| Self {
            image: image.to_vec(),
            run: run.to_vec(),
        })
    }
}

/// How the workload's init process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunOutcome {
    /// Still running when the exercise window closed (normal for servers); it was then stopped.
    #[default]
    StoppedAtEnd,
    /// Exited on its own with this code.
    Exited(i32),
    /// Killed by this signal (not by vexxy's teardown).
    Signaled(i32),
    /// Hit the hard timeout.
    TimedOut,
}

/// One program started by `execve`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExecutedBinary {
    /// Absolute path of the executed file.
    pub path: String,
    /// `PT_INTERP` of the file, when it is a dynamically linked ELF.
    pub interpreter: Option<String>,
    /// How many times it was executed.
    pub count: u64,
}

/// One file opened successfully.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileAccess {
    /// Absolute path.
    pub path: String,
    /// Successful opens.
    pub opens: u64,
}

/// One name whose opens failed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FailedOpen {
    /// The name as passed to `open`/`openat` (may be relative).
    pub name: String,
    /// Failed attempts.
    pub count: u64,
}

/// One file mapped executable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LoadedLibrary {
    /// Absolute path.
    pub path: String,
    /// Executable mappings observed.
    pub mappings: u64,
}

/// What a socket was used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SocketOp {
    /// `connect`.
    Connect,
    /// `bind`.
    Bind,
    /// `accept`/`accept4` (the address is the peer's).
    Accept,
}

/// A socket address the workload used.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SocketAddress {
    /// IPv4 or IPv6 address and port.
    Inet(IpAddr, u16),
    /// A Unix socket path (`@name` for the abstract namespace).
    Unix(String),
    /// Another address family, by number.
    Other(u16),
}

/// One (operation, address) pair with counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NetworkUse {
    /// Operation.
    pub op: SocketOp,
    /// Address.
    pub address: SocketAddress,
    /// Calls that succeeded.
    pub ok: u64,
    /// Calls that failed (`EINPROGRESS` on a non-blocking connect counts as ok).
    pub failed: u64,
}

/// One process of the workload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProcessRecord {
    /// Pid inside the sandbox's pid namespace.
    pub pid: u32,
    /// Parent pid inside the namespace (0 for the init).
    pub ppid: u32,
    /// Programs this process executed, in order.
    pub execs: Vec<String>,
    /// Last command name (`comm`).
    pub comm: String,
    /// Exit code, when it exited while traced.
    pub exit_code: Option<i32>,
}

/// Calls of one symbol in one library.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FunctionCalls {
    /// Absolute path of the library inside the image.
    pub library: String,
    /// Symbol name.
    pub symbol: String,
    /// Calls from the sandbox.
    pub calls: u64,
}

/// How the run was exercised.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExerciseStats {
    /// TCP ports the image exposes (from its config or the caller).
    pub ports: Vec<u16>,
    /// Ports that accepted connections, and how long it took for the first to do so.
    pub ready_ports: Vec<u16>,
    /// Milliseconds from start until the first port accepted a connection.
    pub ready_after_ms: Option<u64>,
    /// HTTP requests the prober sent.
    pub http_requests: u64,
    /// Responses by status code (0 = no response: connection error or timeout).
    pub http_status: BTreeMap<u16, u64>,
    /// Distinct paths requested.
    pub http_paths: Vec<String>,
    /// Of `http_requests`, those the fuzz phase sent (mutated parameters,
    /// headers and methods).
    pub http_fuzz_requests: u64,
    /// The OpenAPI/Swagger document the HTTP prober built requests from
    /// (`port` and path, e.g. `8080 /openapi.json`), when one was served.
    pub openapi: Option<String>,
    /// Protocol probes of the ready ports, in the order they ran.
    pub probes: Vec<ProbeRecord>,
    /// The user's test script, when one ran.
    pub script: Option<ScriptOutcome>,
}

/// How far one protocol probe got with the server, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeReach {
    /// No TCP connection could be made.
    Unreachable,
    /// Connected, but the server never answered in the probe's protocol
    /// (silence, garbage, a reset).
    Connected,
    /// The server answered in the protocol (a greeting, a banner, a first
    /// reply), but its handshake did not complete.
    Answered,
    /// The protocol's handshake completed (TLS finished, startup accepted,
    /// CONNACK, `Connection.Tune`, …); no command ran after it.
    Handshake,
    /// The server asked for credentials the probe does not have; the
    /// probe stopped there.
    AuthRequired,
    /// Commands past the handshake were answered (queries, `PING`/`INFO`,
    /// subscribe/publish, a health check).
    Commands,
}

/// One protocol probe of one port: what was spoken and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProbeRecord {
    /// The TCP port probed.
    pub port: u16,
    /// The protocol spoken: `tls`, `resp`, `postgresql`, `mysql`, `amqp`,
    /// `mqtt`, `nats`, `grpc-health`, `banner`, …
    pub protocol: String,
    /// How far the probe got.
    pub reach: ProbeReach,
    /// What happened, in words (`handshake completed`, `refused: password
    /// required`, …); never remote content.
    pub outcome: String,
    /// Protocol messages the probe sent (requests, commands, packets).
    pub requests: u64,
    /// Of those, how many the server answered.
    pub answered: u64,
    /// Wall time in milliseconds, connect to close.
    pub duration_ms: u64,
}

/// The outcome of the user's test script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOutcome {
    /// Script path as given.
    pub path: String,
    /// Exit code (`None` when killed at the deadline).
    pub exit_code: Option<i32>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// Events or entries the tracer could not record. Non-zero values lower the
/// confidence of any claim that something did *not* happen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LostEvents {
    /// Process events dropped because the ring buffer was full.
    pub ring_buffer: u64,
    /// Aggregation entries not recorded because a map was full, by map.
    pub map_full: BTreeMap<String, u64>,
    /// Paths that could not be resolved completely (too deep or too long).
    pub truncated_paths: u64,
    /// Processes that were already running when the tracer attached (an
    /// observed container): what they did before, at start-up above all,
    /// was not seen. A sandbox run merged into the profile saw a start-up.
    pub running_before_attach: u64,
}

impl LostEvents {
    /// True when nothing was lost.
    pub fn is_empty(&self) -> bool {
        self.ring_buffer == 0
            && self.truncated_paths == 0
            && self.map_full.values().all(|n| *n == 0)
    }
}

/// Facts about the tracer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TracerInfo {
    /// Kernel release it ran on.
    pub kernel: String,
    /// Milliseconds from load start until all programs were attached.
    pub startup_ms: u64,
    /// Uprobes attached.
    pub uprobes_attached: u64,
    /// Requested uprobes that could not be attached, with the reason.
    pub uprobe_errors: Vec<String>,
    /// Libraries (named as in `functions`) every function of which was
    /// probed and attached, none of them an unprobeable indirect function:
    /// only for these does "no call counted" mean "never entered".
    pub complete_libraries: Vec<String>,
}

impl ExecutionProfile {
    /// True when `path` was opened, mapped executable or executed.
    pub fn touched(&self, path: &str) -> bool {
        self.was_mapped(path)
            || self
                .files
                .binary_search_by(|f| f.path.as_str().cmp(path))
                .is_ok()
            || self.executables.iter().any(|e| e.path == path)
    }

    /// True when `path` was mapped executable (or executed, or was the interpreter of an executed program).
    pub fn was_mapped(&self, path: &str) -> bool {
        self.loaded_libraries
            .binary_search_by(|l| l.path.as_str().cmp(path))
            .is_ok()
    }

    /// Calls recorded for `(library, symbol)`, or `None` when it was not probed.
    pub fn calls(&self, library: &str, symbol: &str) -> Option<u64> {
        self.functions
            .iter()
            .find(|f| f.library == library && f.symbol == symbol)
            .map(|f| f.calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_use_sorted_vectors() {
        let profile = ExecutionProfile {
            files: vec![
                FileAccess {
                    path: "/a".into(),
                    opens: 1,
                },
                FileAccess {
                    path: "/etc/nginx/nginx.conf".into(),
                    opens: 2,
                },
            ],
            loaded_libraries: vec![LoadedLibrary {
                path: "/usr/lib/libc.so.6".into(),
                mappings: 3,
            }],
            functions: vec![FunctionCalls {
                library: "/usr/lib/libc.so.6".into(),
                symbol: "getpid".into(),
                calls: 0,
            }],
            ..ExecutionProfile::default()
        };
        assert!(profile.touched("/etc/nginx/nginx.conf"));
        assert!(profile.was_mapped("/usr/lib/libc.so.6"));
        assert!(!profile.was_mapped("/etc/nginx/nginx.conf"));
        assert!(!profile.touched("/usr/lib/libtiff.so.6"));
        assert_eq!(profile.calls("/usr/lib/libc.so.6", "getpid"), Some(0));
        assert_eq!(profile.calls("/usr/lib/libc.so.6", "open"), None);
        assert!(profile.lost.is_empty());
    }
}
