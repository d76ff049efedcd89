//! vexxy's eBPF runtime tracer: what a sandboxed workload executes, maps,
//! opens, connects to and calls.
//!
//! The BPF side (`src/bpf/trace.bpf.c`, C compiled by clang, loaded with
//! libbpf-rs) hooks `raw_syscalls` exit (one program per syscall: the call's
//! number, arguments and result are all there), `sched_process_{exec,fork,exit}`
//! and, on request, uprobes. It records only tasks whose PID namespace is one
//! a [`Tracer`] is [armed](Tracer::arm) with (or one nested in it), so a
//! process that moves itself to another cgroup, or that joins with `nsenter`,
//! is still seen, and nothing outside the sandbox is.
//!
//! One set of programs serves every [`Tracer`] of the process (the hub, in
//! `hub.rs`): the first `Tracer::start` loads and attaches them, the last
//! `finish` detaches them. Each `Tracer` is a session with its own slot;
//! everything the kernel records carries the slot, so concurrent sandboxes
//! pay for one set of programs and see only their own evidence. A uprobe on
//! the same function of the same file is attached once and counted per slot.
//!
//! Invariants:
//! - Aggregation happens in the kernel: a file, an address or a symbol costs
//!   one map update after its first sighting; only first sightings and
//!   process events reach user space.
//! - Nothing is dropped silently: a full ring buffer, a full map, a path too
//!   deep to resolve are each counted, per session, and reported in
//!   [`LostEvents`].
//! - A session leaves nothing behind in the kernel: at `finish` its target,
//!   entries and probe references go whatever else fails (and stale entries
//!   are purged when its slot is handed out again); the programs go with
//!   the last session, and with the process if it dies.
//! - This is the only crate in the workspace with `unsafe`, and only in the
//!   generated skeleton module.
//! - The tracer knows nothing of images or policy: it reports paths as the
//!   kernel resolved them (see [`RawTrace`]) and leaves their meaning to the
//!   caller.

mod collector;
pub mod diagnostics;
mod hub;
mod inflight;
mod libbpf_log;
mod symbols;
mod wire;

#[allow(
    unsafe_code,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all,
    clippy::unwrap_used
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/trace.skel.rs"));
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vexxy_model::{FailedOpen, FunctionCalls, LostEvents, NetworkUse, ProcessRecord, TracerInfo};

use collector::EvidenceClock;

pub use symbols::SymbolTable;

/// Why the tracer could not run.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Tracing needs root (CAP_BPF and CAP_PERFMON at least).
    #[error("the tracer needs root: running as uid {uid}")]
    NotRoot {
        /// The effective uid.
        uid: u32,
    },
    /// The kernel has no BTF, which the CO-RE programs need.
    #[error("the kernel exposes no BTF at {path} (needs CONFIG_DEBUG_INFO_BTF=y)")]
    NoBtf {
        /// Where BTF was looked for.
        path: PathBuf,
    },
    /// Loading or attaching a BPF program failed.
    #[error("cannot {what}: {source}")]
    Bpf {
        /// What was being done.
        what: String,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// A library requested for uprobes could not be read.
    #[error("cannot read symbols of {path}: {reason}")]
    Library {
        /// The library.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The shared tracer refused a session (all slots taken, a namespace
    /// armed twice).
    #[error("cannot trace: {0}")]
    Refused(String),
    /// The tracer thread went away.
    #[error("the tracer thread stopped unexpectedly: {0}")]
    Thread(String),
}

impl TraceError {
    /// Whether the error says this machine cannot trace at all (not root,
    /// no BTF), as opposed to one trace failing.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Self::NotRoot { .. } | Self::NoBtf { .. })
    }
}

fn bpf(what: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> TraceError {
    let what = what.into();
    move |source| TraceError::Bpf { what, source }
}

/// A function to count calls of.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UprobeRequest {
    /// The library file as the host sees it (where the probe attaches).
    pub host_path: PathBuf,
    /// The library as the workload sees it (reported back unchanged).
    pub library: String,
    /// The function's symbol name.
    pub symbol: String,
    /// The function's file offset, when the caller found it where the
    /// library's ELF symbol tables cannot (a stripped Go binary's pclntab);
    /// `None` looks `symbol` up in `.dynsym`/`.symtab`. The probe is an
    /// entry uprobe either way.
    pub offset: Option<u64>,
}

/// How to trace.
#[derive(Debug, Clone, Default)]
pub struct TraceOptions {
    /// Functions to count.
    pub uprobes: Vec<UprobeRequest>,
    /// For benchmarks: attach only empty programs to the two syscall
    /// tracepoints and record nothing, to measure what the kernel's
    /// tracepoint machinery costs before the tracer does any work. Such a
    /// tracer has its own programs, never the shared ones.
    pub mechanism_only: bool,
}

/// What the kernel recorded, with paths as the kernel resolved them: files
/// reached through the sandbox's root come out as the workload saw them;
/// files reached through another mount (for example the real file behind an
/// overlay, seen by `mprotect`) come out as host paths, which the caller maps
/// back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawTrace {
    /// Files opened successfully: path → opens.
    pub opened: BTreeMap<String, u64>,
    /// Files mapped executable: path → mappings.
    pub mapped: BTreeMap<String, u64>,
    /// Programs executed: path → executions.
    pub executed: BTreeMap<String, u64>,
    /// Failed opens by name.
    pub failed_opens: Vec<FailedOpen>,
    /// Socket use.
    pub network: Vec<NetworkUse>,
    /// Syscalls by name.
    pub syscalls: BTreeMap<String, u64>,
    /// The process tree, by namespace pid.
    pub processes: Vec<ProcessRecord>,
    /// Calls per requested function (every request is present).
    pub functions: Vec<FunctionCalls>,
    /// What could not be recorded.
    pub lost: LostEvents,
    /// The tracer's own facts.
    pub info: TracerInfo,
}

/// Checks that this process can trace: root and kernel BTF.
pub fn preflight() -> Result<(), TraceError> {
    let uid = rustix::process::geteuid().as_raw();
    if uid != 0 {
        return Err(TraceError::NotRoot { uid });
    }
    let btf = Path::new("/sys/kernel/btf/vmlinux");
    if !btf.exists() {
        return Err(TraceError::NoBtf {
            path: btf.to_owned(),
        });
    }
    Ok(())
}

/// The inode of `pid`'s PID namespace: what [`Tracer::arm`] takes.
pub fn pid_namespace_inode(pid: u32) -> std::io::Result<u64> {
    Ok(rustix::fs::stat(format!("/proc/{pid}/ns/pid").as_str())?.st_ino)
}

/// How much new evidence the tracer has seen so far: a count of first
/// sightings (a program executed, a file opened or mapped, a failed open, a
/// socket address, a probed function entered) and when the last one
/// arrived. Forks and exits are not evidence: they add nothing a verdict
/// reads. An adaptive exercise window ends once this stops changing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidenceMark {
    /// First sightings so far.
    pub count: u64,
    /// When the last of them reached user space (`None`: none yet).
    pub last: Option<Instant>,
}

impl EvidenceMark {
    /// Nothing seen yet.
    pub const NONE: Self = Self {
        count: 0,
        last: None,
    };
}

/// A tracing session: one sandbox's view of the shared programs. Loaded
/// and attached by [`Tracer::start`] (the first session of the process
/// loads the programs; later ones reuse them), recording nothing until
/// [`Tracer::arm`] names the sandbox's namespace.
#[derive(Debug)]
pub struct Tracer {
    session: Option<hub::Session>,
    startup: Duration,
    evidence: Arc<EvidenceClock>,
    /// The PID namespace armed last (0: none), whose blocked calls
    /// [`Tracer::finish`] counts.
    armed: AtomicU64,
}

impl Tracer {
    /// Starts a session: loads and attaches the programs if no other
    /// session of this process has, and the requested uprobes that no
    /// other session holds; returns once they are in place.
    pub fn start(options: TraceOptions) -> Result<Self, TraceError> {
        preflight()?;
        let began = Instant::now();
        let evidence = Arc::new(EvidenceClock::new());
        let session = hub::Session::open(options, Arc::clone(&evidence), began)?;
        Ok(Self {
            session: Some(session),
            startup: began.elapsed(),
            evidence,
            armed: AtomicU64::new(0),
        })
    }

    /// Time from [`Tracer::start`] until every program was attached.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Starts recording tasks of the PID namespace with this inode (and of
    /// namespaces nested in it). A namespace is armed in one session at a
    /// time.
    pub fn arm(&self, pid_namespace_inode: u64) -> Result<(), TraceError> {
        let inode = u32::try_from(pid_namespace_inode).map_err(|_| {
            TraceError::Thread(format!(
                "namespace inode {pid_namespace_inode} is out of range"
            ))
        })?;
        self.session
            .as_ref()
            .ok_or_else(|| TraceError::Thread("the session already finished".into()))?
            .arm(inode)?;
        self.armed.store(pid_namespace_inode, Ordering::Relaxed);
        Ok(())
    }

    /// New evidence seen so far (first sightings only), as of the last
    /// drain of the ring buffer (every 50 ms).
    pub fn evidence(&self) -> EvidenceMark {
        self.evidence.mark()
    }

    /// For benchmarks (the `bench` feature): takes the syscall program
    /// this session runs on (shared with every session of the process, or
    /// a mechanism-only session's own empty one) off its tracepoint, or
    /// puts it back, keeping everything loaded and armed. Switching takes
    /// at most a few milliseconds where a start takes a tenth of a second,
    /// so a benchmark can alternate configurations faster than a shared
    /// machine's speed drifts. While it is off, no session of the process
    /// records a syscall, an open, a mapping or a socket, and nothing
    /// counts that as lost: no product binary is built with the feature.
    #[cfg(feature = "bench")]
    pub fn set_syscall_hooks(&self, on: bool) -> Result<(), TraceError> {
        self.session
            .as_ref()
            .ok_or_else(|| TraceError::Thread("the session already finished".into()))?
            .set_syscall_hooks(on)
    }

    /// Stops tracing this session, drains what is pending and reads (and
    /// removes from the kernel) its aggregates. The calls its namespace's
    /// tasks are blocked in now, which would never reach the exit hook
    /// while armed, are counted too.
    pub fn finish(mut self) -> Result<RawTrace, TraceError> {
        let session = self
            .session
            .take()
            .ok_or_else(|| TraceError::Thread("already finished".into()))?;
        let mut raw = session.finish()?;
        let armed = self.armed.load(Ordering::Relaxed);
        if armed != 0 {
            inflight::count_blocked(armed, &mut raw.syscalls);
        }
        Ok(raw)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.finish();
        }
    }
}

/// Sessions of this process sharing the programs right now (for tests and
/// leak checks).
pub fn active_sessions() -> usize {
    hub::active_sessions()
}
