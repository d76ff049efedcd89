//! vexxy's eBPF runtime tracer: what a sandboxed workload executes, maps,
//! opens, connects to and calls.
//!
//! The BPF side (`src/bpf/trace.bpf.c`, C compiled by clang, loaded with
//! libbpf-rs) hooks `raw_syscalls` enter/exit, `sched_process_{exec,fork,exit}`
//! and, on request, uprobes. It records only tasks whose PID namespace is the
//! one the tracer is [armed](Tracer::arm) with (or one nested in it), so a
//! process that moves itself to another cgroup, or that joins with `nsenter`,
//! is still seen, and nothing outside the sandbox is.
//!
//! Invariants:
//! - Aggregation happens in the kernel: a file, an address or a symbol costs
//!   one map update after its first sighting; only first sightings and
//!   process events reach user space.
//! - Nothing is dropped silently: a full ring buffer, a full map, a path too
//!   deep to resolve are each counted and reported in [`LostEvents`].
//! - This is the only crate in the workspace with `unsafe`, and only in the
//!   generated skeleton module.
//! - The tracer knows nothing of images or policy: it reports paths as the
//!   kernel resolved them (see [`RawTrace`]) and leaves their meaning to the
//!   caller.

pub mod diagnostics;
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

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, UprobeMultiOpts, UprobeOpts};
use vexxy_model::{FailedOpen, FunctionCalls, LostEvents, NetworkUse, ProcessRecord, TracerInfo};

use skel::types::{event_kind, file_kind, stat_index};

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
}

/// How to trace.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Functions to count.
    pub uprobes: Vec<UprobeRequest>,
    /// How often the ring buffer is drained.
    pub poll_interval: Duration,
    /// For benchmarks: attach only empty programs to the two syscall
    /// tracepoints and record nothing, to measure what the kernel's
    /// tracepoint machinery costs before the tracer does any work.
    pub mechanism_only: bool,
}

impl Default for TraceOptions {
    fn default() -> Self {
        Self {
            uprobes: Vec::new(),
            poll_interval: Duration::from_millis(50),
            mechanism_only: false,
        }
    }
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

/// Shared between the tracer thread (writer) and [`Tracer::evidence`].
#[derive(Debug)]
struct EvidenceClock {
    origin: Instant,
    count: AtomicU64,
    /// Nanoseconds after `origin` of the last sighting, plus one (0: none).
    last: AtomicU64,
}

impl EvidenceClock {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            count: AtomicU64::new(0),
            last: AtomicU64::new(0),
        }
    }

    fn saw(&self) {
        let at = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        self.last.store(at, Ordering::Release);
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn mark(&self) -> EvidenceMark {
        let count = self.count.load(Ordering::Acquire);
        let last = match self.last.load(Ordering::Acquire) {
            0 => None,
            n => Some(self.origin + Duration::from_nanos(n - 1)),
        };
        EvidenceMark { count, last }
    }
}

enum Command {
    Arm(u32, mpsc::Sender<Result<(), TraceError>>),
    Stop,
}

/// A running tracer. Programs are loaded and attached by [`Tracer::start`]
/// but record nothing until [`Tracer::arm`] names the sandbox's namespace.
#[derive(Debug)]
pub struct Tracer {
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<Result<RawTrace, TraceError>>>,
    startup: Duration,
    evidence: Arc<EvidenceClock>,
}

impl Tracer {
    /// Loads and attaches every program (and the requested uprobes) on a
    /// dedicated thread, returning once they are in place.
    pub fn start(options: TraceOptions) -> Result<Self, TraceError> {
        preflight()?;
        let began = Instant::now();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (commands, command_rx) = mpsc::channel();
        let evidence = Arc::new(EvidenceClock::new());
        let clock = Arc::clone(&evidence);
        let thread = std::thread::Builder::new()
            .name("vexxy-trace".into())
            .spawn(move || run(options, began, ready_tx, command_rx, clock))
            .map_err(|e| TraceError::Thread(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                return Err(match thread.join() {
                    Ok(Err(e)) => e,
                    _ => TraceError::Thread("it exited while loading".into()),
                })
            }
        }
        Ok(Self {
            commands,
            thread: Some(thread),
            startup: began.elapsed(),
            evidence,
        })
    }

    /// New evidence seen so far (first sightings only), as of the last
    /// drain of the ring buffer (every [`TraceOptions::poll_interval`]).
    pub fn evidence(&self) -> EvidenceMark {
        self.evidence.mark()
    }

    /// Time from [`Tracer::start`] until every program was attached.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Starts recording tasks of the PID namespace with this inode (and of
    /// namespaces nested in it).
    pub fn arm(&self, pid_namespace_inode: u64) -> Result<(), TraceError> {
        let inode = u32::try_from(pid_namespace_inode).map_err(|_| {
            TraceError::Thread(format!(
                "namespace inode {pid_namespace_inode} is out of range"
            ))
        })?;
        let (ack, ack_rx) = mpsc::channel();
        self.commands
            .send(Command::Arm(inode, ack))
            .map_err(|_| TraceError::Thread("it is no longer running".into()))?;
        ack_rx
            .recv()
            .map_err(|_| TraceError::Thread("it did not acknowledge arming".into()))?
    }

    /// Stops tracing, drains what is pending and reads the aggregates.
    pub fn finish(mut self) -> Result<RawTrace, TraceError> {
        let _ = self.commands.send(Command::Stop);
        let thread = self
            .thread
            .take()
            .ok_or_else(|| TraceError::Thread("already finished".into()))?;
        thread
            .join()
            .map_err(|_| TraceError::Thread("it panicked".into()))?
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.commands.send(Command::Stop);
            let _ = thread.join();
        }
    }
}

/// Process events as they arrive, before they are turned into the tree.
struct Collector {
    evidence: Arc<EvidenceClock>,
    paths: HashMap<wire::FileKey, (String, bool)>,
    failed_names: HashMap<u64, String>,
    executed: BTreeMap<String, u64>,
    processes: BTreeMap<u32, ProcessRecord>,
    malformed: u64,
}

impl Collector {
    fn new(evidence: Arc<EvidenceClock>) -> Self {
        Self {
            evidence,
            paths: HashMap::new(),
            failed_names: HashMap::new(),
            executed: BTreeMap::new(),
            processes: BTreeMap::new(),
            malformed: 0,
        }
    }

    fn on_record(&mut self, bytes: &[u8]) {
        let Some(ev) = wire::Event::decode(bytes) else {
            self.malformed += 1;
            return;
        };
        let (ns_pid, ns_ppid) = (ev.header.ns_pid, ev.header.ns_ppid);
        match ev.kind() {
            event_kind::EV_PATH => {
                self.evidence.saw();
                self.paths
                    .insert(ev.file_key(), (ev.path(), ev.truncated()));
            }
            event_kind::EV_FAILED => {
                self.evidence.saw();
                self.failed_names.insert(ev.header.a, ev.name());
            }
            event_kind::EV_EXEC => {
                self.evidence.saw();
                let path = ev.path();
                *self.executed.entry(path.clone()).or_default() += 1;
                let proc = self.process(ns_pid, ns_ppid);
                proc.execs.push(path);
                proc.comm = ev.comm;
            }
            event_kind::EV_FORK => {
                let proc = self.process(ns_pid, ns_ppid);
                proc.comm = ev.comm;
            }
            event_kind::EV_EXIT => {
                let proc = self.process(ns_pid, ns_ppid);
                // wait(2) status: signal in the low 7 bits, code above.
                let status = ev.header.code;
                proc.exit_code = Some(if status & 0x7f != 0 {
                    128 + (status & 0x7f)
                } else {
                    (status >> 8) & 0xff
                });
            }
            _ => self.malformed += 1,
        }
    }

    fn process(&mut self, pid: u32, ppid: u32) -> &mut ProcessRecord {
        let proc = self.processes.entry(pid).or_insert_with(|| ProcessRecord {
            pid,
            ppid,
            execs: Vec::new(),
            comm: String::new(),
            exit_code: None,
        });
        if proc.ppid == 0 {
            proc.ppid = ppid;
        }
        proc
    }
}

fn run(
    options: TraceOptions,
    began: Instant,
    ready: mpsc::Sender<Result<(), TraceError>>,
    commands: mpsc::Receiver<Command>,
    evidence: Arc<EvidenceClock>,
) -> Result<RawTrace, TraceError> {
    let mut storage = MaybeUninit::uninit();
    let loaded = load(&options, &mut storage);
    let (skel, _links, mut info, requests) = match loaded {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(TraceError::Thread(e.to_string())));
            return Err(e);
        }
    };
    info.startup_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
    info.kernel = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();

    let collector = RefCell::new(Collector::new(evidence));
    let mut builder = libbpf_rs::RingBufferBuilder::new();
    builder
        .add(&skel.maps.events, |bytes: &[u8]| {
            collector.borrow_mut().on_record(bytes);
            0
        })
        .map_err(bpf("set up the ring buffer"))?;
    let ring = builder.build().map_err(bpf("set up the ring buffer"))?;
    let _ = ready.send(Ok(()));

    loop {
        match commands.recv_timeout(options.poll_interval) {
            Ok(Command::Arm(inode, ack)) => {
                let result = skel
                    .maps
                    .target
                    .update(&0u32.to_ne_bytes(), &inode.to_ne_bytes(), MapFlags::ANY)
                    .map_err(bpf("arm the namespace filter"));
                let _ = ack.send(result);
            }
            Ok(Command::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        ring.consume().map_err(bpf("drain the ring buffer"))?;
    }
    // Disarm, then drain what is left.
    let _ = skel
        .maps
        .target
        .update(&0u32.to_ne_bytes(), &0u32.to_ne_bytes(), MapFlags::ANY);
    ring.consume().map_err(bpf("drain the ring buffer"))?;
    drop(ring);
    let collector = collector.into_inner();
    read_out(&skel, collector, info, &requests)
}

type Loaded<'obj> = (
    skel::TraceSkel<'obj>,
    Vec<Link>,
    TracerInfo,
    Vec<UprobeRequest>,
);

fn load<'obj>(
    options: &TraceOptions,
    storage: &'obj mut MaybeUninit<libbpf_rs::OpenObject>,
) -> Result<Loaded<'obj>, TraceError> {
    let mut open = skel::TraceSkelBuilder::default()
        .open(storage)
        .map_err(bpf("open the BPF object"))?;
    libbpf_log::install();
    if options.mechanism_only {
        let progs = &mut open.progs;
        for prog in [
            &mut progs.on_sys_enter,
            &mut progs.on_sys_exit,
            &mut progs.on_exec,
            &mut progs.on_fork,
            &mut progs.on_exit,
        ] {
            prog.set_autoload(false);
        }
        progs.on_symbol_multi.set_autoload(false);
        progs.on_symbol.set_autoload(false);
        progs.floor_sys_enter.set_autoload(true);
        progs.floor_sys_exit.set_autoload(true);
    }
    let skel = open.load().map_err(|source| TraceError::Bpf {
        what: format!(
            "load the BPF programs (is this kernel built with BTF and BPF syscall tracepoints?); libbpf said: {}",
            libbpf_log::tail(1500)
        ),
        source,
    })?;
    if options.mechanism_only {
        let links = vec![
            skel.progs
                .floor_sys_enter
                .attach()
                .map_err(bpf("attach the empty sys_enter hook"))?,
            skel.progs
                .floor_sys_exit
                .attach()
                .map_err(bpf("attach the empty sys_exit hook"))?,
        ];
        return Ok((skel, links, TracerInfo::default(), Vec::new()));
    }
    let mut links = vec![
        skel.progs
            .on_sys_enter
            .attach()
            .map_err(bpf("attach raw_syscalls/sys_enter"))?,
        skel.progs
            .on_sys_exit
            .attach()
            .map_err(bpf("attach raw_syscalls/sys_exit"))?,
        skel.progs
            .on_exec
            .attach()
            .map_err(bpf("attach sched_process_exec"))?,
        skel.progs
            .on_fork
            .attach()
            .map_err(bpf("attach sched_process_fork"))?,
        skel.progs
            .on_exit
            .attach()
            .map_err(bpf("attach sched_process_exit"))?,
    ];
    let mut info = TracerInfo::default();
    let mut requests = options.uprobes.clone();
    requests.sort();
    requests.dedup();
    // One per-CPU counter per request, indexed by the probe's cookie.
    requests.truncate(usize::try_from(skel.maps.symbol_calls.max_entries()).unwrap_or(usize::MAX));
    // One multi-uprobe link per library; cookies index the requests.
    let mut by_library: BTreeMap<&Path, Vec<(usize, &UprobeRequest)>> = BTreeMap::new();
    for (i, r) in requests.iter().enumerate() {
        by_library
            .entry(r.host_path.as_path())
            .or_default()
            .push((i, r));
    }
    for (path, wanted) in by_library {
        let table = match SymbolTable::read(path) {
            Ok(t) => t,
            Err(e) => {
                info.uprobe_errors.push(e.to_string());
                continue;
            }
        };
        let mut offsets = Vec::new();
        let mut cookies = Vec::new();
        for (i, r) in &wanted {
            match table.offset(&r.symbol) {
                Some(off) => {
                    offsets.push(usize::try_from(off).unwrap_or(usize::MAX));
                    cookies.push(*i as u64);
                }
                None => info.uprobe_errors.push(format!(
                    "{}: no function {} in {}",
                    r.library,
                    r.symbol,
                    path.display()
                )),
            }
        }
        if offsets.is_empty() {
            continue;
        }
        // Complete when every function of the table was requested (and,
        // below, attached) and none is an unprobeable IFUNC.
        let requested: std::collections::BTreeSet<&str> =
            wanted.iter().map(|(_, r)| r.symbol.as_str()).collect();
        let covers_all = !table.has_ifuncs() && table.functions().all(|f| requested.contains(f));
        let library_name = wanted.first().map(|(_, r)| r.library.clone());
        let errors_before = info.uprobe_errors.len();
        let count = offsets.len() as u64;
        let opts = UprobeMultiOpts {
            offsets: offsets.clone(),
            cookies: cookies.clone(),
            ..Default::default()
        };
        match skel
            .progs
            .on_symbol_multi
            .attach_uprobe_multi_with_opts(-1, path, "", opts)
        {
            Ok(link) => {
                links.push(link);
                info.uprobes_attached += count;
            }
            Err(multi_err) => {
                // Kernels before 6.6 have no uprobe_multi: one link per symbol.
                tracing::debug!(library = %path.display(), error = %multi_err, "uprobe_multi unavailable; attaching one by one");
                for (off, cookie) in offsets.into_iter().zip(cookies) {
                    let opts = UprobeOpts {
                        cookie,
                        ..Default::default()
                    };
                    match skel
                        .progs
                        .on_symbol
                        .attach_uprobe_with_opts(-1, path, off, opts)
                    {
                        Ok(link) => {
                            links.push(link);
                            info.uprobes_attached += 1;
                        }
                        Err(e) => info.uprobe_errors.push(format!(
                            "{}: {}",
                            requests[usize::try_from(cookie).unwrap_or(0)].symbol,
                            e
                        )),
                    }
                }
            }
        }
        if covers_all && info.uprobe_errors.len() == errors_before {
            info.complete_libraries.extend(library_name);
        }
    }
    info.complete_libraries.sort();
    info.complete_libraries.dedup();
    Ok((skel, links, info, requests))
}

fn read_out(
    skel: &skel::TraceSkel<'_>,
    collector: Collector,
    info: TracerInfo,
    requests: &[UprobeRequest],
) -> Result<RawTrace, TraceError> {
    let mut trace = RawTrace {
        info,
        executed: collector.executed,
        ..RawTrace::default()
    };

    // Files: every key in the map was announced by an EV_PATH record first.
    for key in skel.maps.files.keys() {
        let Some(fk) = wire::FileKey::decode(&key) else {
            continue;
        };
        let count = skel
            .maps
            .files
            .lookup(&key, MapFlags::ANY)
            .map_err(bpf("read the files map"))?
            .and_then(|v| wire::read_u64(&v))
            .unwrap_or(0);
        let Some((path, _truncated)) = collector.paths.get(&fk) else {
            continue; // its announcement was lost; counted as ring-buffer loss
        };
        let into = if fk.kind == file_kind::KIND_EXEC_MAP.0 {
            &mut trace.mapped
        } else {
            &mut trace.opened
        };
        *into.entry(path.clone()).or_default() += count;
    }

    for key in skel.maps.failed.keys() {
        let Some(hash) = wire::read_u64(&key) else {
            continue;
        };
        let count = skel
            .maps
            .failed
            .lookup(&key, MapFlags::ANY)
            .map_err(bpf("read the failed-open map"))?
            .and_then(|v| wire::read_u64(&v))
            .unwrap_or(0);
        if let Some(name) = collector.failed_names.get(&hash) {
            trace.failed_opens.push(FailedOpen {
                name: name.clone(),
                count,
            });
        }
    }
    trace.failed_opens.sort();

    let mut network: BTreeMap<(vexxy_model::SocketOp, vexxy_model::SocketAddress), (u64, u64)> =
        BTreeMap::new();
    for key in skel.maps.net.keys() {
        let Some(nk) = wire::NetKey::decode(&key) else {
            continue;
        };
        let count = skel
            .maps
            .net
            .lookup(&key, MapFlags::ANY)
            .map_err(bpf("read the network map"))?
            .and_then(|v| wire::read_u64(&v))
            .unwrap_or(0);
        let entry = network.entry((nk.op, nk.address)).or_default();
        if nk.ok {
            entry.0 += count;
        } else {
            entry.1 += count;
        }
    }
    trace.network = network
        .into_iter()
        .map(|((op, address), (ok, failed))| NetworkUse {
            op,
            address,
            ok,
            failed,
        })
        .collect();

    for nr in 0..skel.maps.syscalls.max_entries() {
        let values = skel
            .maps
            .syscalls
            .lookup_percpu(&nr.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf("read the syscall counts"))?
            .unwrap_or_default();
        let count = wire::sum_per_cpu(&values);
        if count == 0 {
            continue;
        }
        let name = syscalls::Sysno::new(nr as usize)
            .map_or_else(|| format!("syscall_{nr}"), |s| s.name().to_owned());
        trace.syscalls.insert(name, count);
    }

    for (i, r) in requests.iter().enumerate() {
        let idx = u32::try_from(i).unwrap_or(u32::MAX);
        let values = skel
            .maps
            .symbol_calls
            .lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf("read the symbol counts"))?
            .unwrap_or_default();
        trace.functions.push(FunctionCalls {
            library: r.library.clone(),
            symbol: r.symbol.clone(),
            calls: wire::sum_per_cpu(&values),
        });
    }
    trace.functions.sort();

    let stat = |i: stat_index| -> Result<u64, TraceError> {
        Ok(skel
            .maps
            .stats
            .lookup(&i.0.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf("read the loss counters"))?
            .and_then(|v| wire::read_u64(&v))
            .unwrap_or(0))
    };
    const _: () = assert!(stat_index::ST_NO_TASK_STATE.0 < stat_index::ST_COUNT.0);
    trace.lost.ring_buffer = stat(stat_index::ST_RINGBUF_LOST)? + collector.malformed;
    trace.lost.truncated_paths = stat(stat_index::ST_TRUNCATED)?;
    for (name, idx) in [
        ("files", stat_index::ST_FILES_FULL),
        ("failed_opens", stat_index::ST_FAILED_FULL),
        ("network", stat_index::ST_NET_FULL),
        ("inflight_syscalls", stat_index::ST_PENDING_FULL),
        ("unresolved_fds", stat_index::ST_UNRESOLVED_FD),
        ("task_states", stat_index::ST_NO_TASK_STATE),
    ] {
        let n = stat(idx)?;
        if n > 0 {
            trace.lost.map_full.insert(name.to_owned(), n);
        }
    }

    trace.processes = collector.processes.into_values().collect();
    Ok(trace)
}
