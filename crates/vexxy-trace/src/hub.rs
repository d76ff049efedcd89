//! The hub: one set of BPF programs shared by every session of the process.
//!
//! A dedicated thread owns the loaded object (libbpf's skeleton is tied to
//! the thread that opened it), the ring buffer and each session's
//! [`Collector`]. Sessions talk to it over a channel: register (get a slot
//! and the session's uprobes), arm (map a PID namespace to the slot),
//! finish (disarm, drain, read the slot's entries out of the maps and
//! delete them). The thread is started by the first session and stopped
//! when the last one finishes; [`SHARED`] holds it in between, and its
//! session count decides, under the same lock, when it goes.
//!
//! Uprobes are shared per probe site — the (device, inode, offset) of a
//! function in a library file — whoever asked for it: the site's cookie
//! names it in the kernel, the calling task's slot the session, and a link
//! is detached when no session uses any of its sites any more.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem::MaybeUninit;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, UprobeMultiOpts, UprobeOpts};
use vexxy_model::{FailedOpen, FunctionCalls, NetworkUse, TracerInfo};

use crate::collector::{Collector, EvidenceClock};
use crate::skel::{self, types::file_kind, types::stat_index};
use crate::{bpf, wire, RawTrace, SymbolTable, TraceError, TraceOptions, UprobeRequest};

/// Sandboxes one set of programs traces at once (`MAX_SLOTS` in trace.h).
pub(crate) const MAX_SLOTS: usize = 64;
/// Syscall numbers counted per slot (`MAX_SYSCALLS` in trace.h).
pub(crate) const MAX_SYSCALLS: usize = 512;
/// How often the hub drains the ring buffer.
const DRAIN_INTERVAL: Duration = Duration::from_millis(50);
/// How long a finishing session waits after its disarm before the last
/// drain, for programs that passed the filter just before it.
const SETTLE: Duration = Duration::from_millis(5);

/// The running shared hub, if any, and how many sessions hold it.
static SHARED: Mutex<Option<Running>> = Mutex::new(None);

#[derive(Debug)]
struct Running {
    commands: mpsc::Sender<Command>,
    thread: JoinHandle<()>,
    sessions: usize,
}

/// Sessions holding the shared hub right now.
pub(crate) fn active_sessions() -> usize {
    SHARED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map_or(0, |r| r.sessions)
}

type Reply<T> = mpsc::Sender<Result<T, TraceError>>;

/// The requested libraries' symbol tables and file identities, read by the
/// session's own thread before it asks the hub for anything: parsing ELF
/// files must not hold up the hub, which drains every session's records.
type Libraries = BTreeMap<PathBuf, Result<(SymbolTable, (u64, u64)), String>>;

fn read_libraries(requests: &[UprobeRequest]) -> Libraries {
    let mut out = Libraries::new();
    for r in requests {
        if out.contains_key(&r.host_path) {
            continue;
        }
        let read = SymbolTable::read(&r.host_path)
            .map_err(|e| e.to_string())
            .and_then(|table| {
                std::fs::metadata(&r.host_path)
                    .map(|m| (table, (m.dev(), m.ino())))
                    .map_err(|e| format!("{}: {e}", r.host_path.display()))
            });
        out.insert(r.host_path.clone(), read);
    }
    out
}

enum Command {
    Register {
        uprobes: Vec<UprobeRequest>,
        libraries: Libraries,
        evidence: Arc<EvidenceClock>,
        began: Instant,
        reply: Reply<u32>,
    },
    Arm {
        slot: u32,
        inode: u32,
        reply: Reply<()>,
    },
    Finish {
        slot: u32,
        reply: Reply<RawTrace>,
    },
    /// Benchmarks only: take the syscall programs off their tracepoints
    /// or put them back, keeping everything loaded.
    #[cfg(feature = "bench")]
    SyscallHooks {
        on: bool,
        reply: Reply<()>,
    },
    Stop,
}

/// What kind of programs a hub loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The tracer.
    Tracer,
    /// Empty programs on the syscall tracepoints (benchmarks' floor).
    Floor,
}

/// One session's handle on its hub.
#[derive(Debug)]
pub(crate) struct Session {
    slot: u32,
    commands: mpsc::Sender<Command>,
    /// A floor session owns its hub outright; a tracer session shares
    /// [`SHARED`].
    private: Option<JoinHandle<()>>,
}

impl Session {
    pub(crate) fn open(
        options: TraceOptions,
        evidence: Arc<EvidenceClock>,
        began: Instant,
    ) -> Result<Self, TraceError> {
        if options.mechanism_only {
            let (commands, thread) = spawn(Kind::Floor)?;
            return Ok(Self {
                slot: 0,
                commands,
                private: Some(thread),
            });
        }
        let libraries = read_libraries(&options.uprobes);
        let commands = {
            let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
            // a hub whose thread died (it would answer nobody) is replaced;
            // the sessions that held it get errors from their channels
            if shared.as_ref().is_some_and(|r| r.thread.is_finished()) {
                tracing::error!("the shared tracer's thread had stopped; starting a new one");
                *shared = None;
            }
            if shared.is_none() {
                let (commands, thread) = spawn(Kind::Tracer)?;
                *shared = Some(Running {
                    commands,
                    thread,
                    sessions: 0,
                });
            }
            let running = shared.as_mut().ok_or_else(|| {
                TraceError::Thread("the shared tracer vanished while starting".into())
            })?;
            running.sessions += 1;
            running.commands.clone()
        };
        let registered = request(&commands, |reply| Command::Register {
            uprobes: options.uprobes,
            libraries,
            evidence,
            began,
            reply,
        });
        match registered {
            Ok(slot) => Ok(Self {
                slot,
                commands,
                private: None,
            }),
            Err(e) => {
                release();
                Err(e)
            }
        }
    }

    pub(crate) fn arm(&self, inode: u32) -> Result<(), TraceError> {
        if self.private.is_some() {
            return Ok(()); // empty programs record nothing to arm
        }
        request(&self.commands, |reply| Command::Arm {
            slot: self.slot,
            inode,
            reply,
        })
    }

    #[cfg(feature = "bench")]
    pub(crate) fn set_syscall_hooks(&self, on: bool) -> Result<(), TraceError> {
        request(&self.commands, |reply| Command::SyscallHooks { on, reply })
    }

    pub(crate) fn finish(self) -> Result<RawTrace, TraceError> {
        if let Some(thread) = self.private {
            let _ = self.commands.send(Command::Stop);
            thread
                .join()
                .map_err(|_| TraceError::Thread("it panicked".into()))?;
            return Ok(RawTrace::default());
        }
        let result = request(&self.commands, |reply| Command::Finish {
            slot: self.slot,
            reply,
        });
        release();
        result
    }
}

/// Sends a command and waits for its answer.
fn request<T>(
    commands: &mpsc::Sender<Command>,
    make: impl FnOnce(Reply<T>) -> Command,
) -> Result<T, TraceError> {
    let (reply, answer) = mpsc::channel();
    commands
        .send(make(reply))
        .map_err(|_| TraceError::Thread("it is no longer running".into()))?;
    answer
        .recv()
        .map_err(|_| TraceError::Thread("it did not answer".into()))?
}

/// One session fewer on the shared hub; the last one stops it (under the
/// lock, so a session starting meanwhile waits and then starts a new hub).
fn release() {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    let last = match shared.as_mut() {
        Some(running) => {
            running.sessions = running.sessions.saturating_sub(1);
            running.sessions == 0
        }
        None => false,
    };
    if last {
        if let Some(running) = shared.take() {
            let _ = running.commands.send(Command::Stop);
            if running.thread.join().is_err() {
                tracing::error!("the tracer thread panicked while stopping");
            }
        }
    }
}

/// Starts a hub thread and waits until its programs are attached.
fn spawn(kind: Kind) -> Result<(mpsc::Sender<Command>, JoinHandle<()>), TraceError> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (commands, command_rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("vexxy-trace".into())
        .spawn(move || hub_main(kind, &ready_tx, &command_rx))
        .map_err(|e| TraceError::Thread(e.to_string()))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((commands, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(TraceError::Thread("it exited while loading".into()))
        }
    }
}

fn hub_main(
    kind: Kind,
    ready: &mpsc::Sender<Result<(), TraceError>>,
    commands: &mpsc::Receiver<Command>,
) {
    let mut storage = MaybeUninit::uninit();
    #[cfg_attr(not(feature = "bench"), allow(unused_mut))]
    let (skel, mut links) = match load(kind, &mut storage) {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if kind == Kind::Floor {
        let _ = ready.send(Ok(()));
        loop {
            match commands.recv() {
                #[cfg(feature = "bench")]
                Ok(Command::SyscallHooks { on, reply }) => {
                    let _ = reply.send(links.set(&skel, kind, on));
                }
                Ok(Command::Stop) | Err(_) => break,
                Ok(_) => {}
            }
        }
        drop(links);
        return;
    }
    let collectors: Rc<RefCell<HashMap<u32, Collector>>> = Rc::default();
    let malformed = Rc::new(RefCell::new(0u64));
    let ring = {
        let collectors = Rc::clone(&collectors);
        let malformed = Rc::clone(&malformed);
        let mut builder = libbpf_rs::RingBufferBuilder::new();
        let added = builder
            .add(&skel.maps.events, move |bytes: &[u8]| {
                match wire::Event::decode(bytes) {
                    Some(ev) => {
                        if let Some(c) = collectors.borrow_mut().get_mut(&ev.header.slot) {
                            c.on_event(&ev);
                        }
                    }
                    None => *malformed.borrow_mut() += 1,
                }
                0
            })
            .map(|_| ());
        match added
            .and_then(|()| builder.build())
            .map_err(bpf("set up the ring buffer"))
        {
            Ok(ring) => ring,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
    };
    let mut hub = Hub {
        skel: &skel,
        kernel: rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned(),
        sessions: BTreeMap::new(),
        armed: BTreeMap::new(),
        generation: 0,
        next_slot: 0,
        probes: Probes::default(),
    };
    let _ = ready.send(Ok(()));

    loop {
        match commands.recv_timeout(DRAIN_INTERVAL) {
            Ok(Command::Register {
                uprobes,
                libraries,
                evidence,
                began,
                reply,
            }) => {
                let result = hub.register(uprobes, &libraries, began).inspect(|slot| {
                    collectors
                        .borrow_mut()
                        .insert(*slot, Collector::new(evidence));
                });
                let _ = reply.send(result);
            }
            Ok(Command::Arm { slot, inode, reply }) => {
                let _ = reply.send(hub.arm(slot, inode));
            }
            Ok(Command::Finish { slot, reply }) => {
                let disarmed = hub.disarm(slot);
                // Programs that passed the filter just before the disarm
                // finish within microseconds; give them a moment, then
                // take what the slot sent.
                std::thread::sleep(SETTLE);
                let drained = ring.consume().map_err(bpf("drain the ring buffer"));
                let collector = collectors.borrow_mut().remove(&slot);
                // the slot's state goes whatever failed above
                let result = hub.finish(slot, collector);
                let _ = reply.send(disarmed.and(drained.map(|_| ())).and(result));
            }
            #[cfg(feature = "bench")]
            Ok(Command::SyscallHooks { on, reply }) => {
                let _ = reply.send(links.set(&skel, kind, on));
            }
            Ok(Command::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Err(e) = ring.consume() {
            tracing::error!(error = %e, "draining the tracer's ring buffer failed");
        }
        let dropped = std::mem::take(&mut *malformed.borrow_mut());
        if dropped > 0 {
            // a record that does not decode belongs to no session: every
            // session running counts it, so none claims completeness
            for c in collectors.borrow_mut().values_mut() {
                c.malformed += dropped;
            }
        }
    }
    // Sessions still registered here lost their hub (a panic elsewhere):
    // their evidence is gone with it; the programs detach as `links` and
    // `skel` drop.
    drop(ring);
    drop(hub);
    drop(links);
}

/// The hub thread's state.
struct Hub<'a, 'obj> {
    skel: &'a skel::TraceSkel<'obj>,
    kernel: String,
    sessions: BTreeMap<u32, SessionState>,
    /// Armed namespaces: inode -> slot.
    armed: BTreeMap<u32, u32>,
    generation: u32,
    next_slot: u32,
    probes: Probes,
}

struct SessionState {
    requests: Vec<UprobeRequest>,
    /// The probe cookie of each request, when attached.
    cookies: Vec<Option<u32>>,
    links: BTreeSet<u64>,
    info: TracerInfo,
    inode: Option<u32>,
}

impl Hub<'_, '_> {
    fn register(
        &mut self,
        uprobes: Vec<UprobeRequest>,
        libraries: &Libraries,
        began: Instant,
    ) -> Result<u32, TraceError> {
        let slot = (0..MAX_SLOTS as u32)
            .map(|i| (self.next_slot + i) % MAX_SLOTS as u32)
            .find(|s| !self.sessions.contains_key(s))
            .ok_or_else(|| {
                TraceError::Refused(format!(
                    "{MAX_SLOTS} sandboxes are traced already, the most one tracer serves"
                ))
            })?;
        self.next_slot = (slot + 1) % MAX_SLOTS as u32;
        // A program that passed the filter just before an earlier session
        // of this slot was disarmed may have left an entry behind.
        purge_slot(self.skel, slot)?;
        let mut info = TracerInfo {
            kernel: self.kernel.clone(),
            ..TracerInfo::default()
        };
        let mut requests = uprobes;
        requests.sort();
        requests.dedup();
        let mut session = SessionState {
            cookies: vec![None; requests.len()],
            requests,
            links: BTreeSet::new(),
            info: TracerInfo::default(),
            inode: None,
        };
        self.probes
            .attach(self.skel, slot, libraries, &mut session, &mut info);
        info.startup_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        session.info = info;
        self.sessions.insert(slot, session);
        Ok(slot)
    }

    fn arm(&mut self, slot: u32, inode: u32) -> Result<(), TraceError> {
        let session = self
            .sessions
            .get_mut(&slot)
            .ok_or_else(|| TraceError::Thread(format!("no session in slot {slot}")))?;
        if let Some(other) = self.armed.get(&inode) {
            if *other != slot {
                return Err(TraceError::Refused(format!(
                    "pid namespace {inode} is traced by another session already"
                )));
            }
        }
        if let Some(old) = session.inode {
            if old != inode {
                delete_target(self.skel, old)?;
                self.armed.remove(&old);
                session.inode = None;
            }
        }
        self.skel
            .maps
            .targets
            .update(&inode.to_ne_bytes(), &slot.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf("arm the namespace filter"))?;
        session.inode = Some(inode);
        self.armed.insert(inode, slot);
        self.publish()
    }

    fn disarm(&mut self, slot: u32) -> Result<(), TraceError> {
        let Some(inode) = self.sessions.get(&slot).and_then(|s| s.inode) else {
            return Ok(());
        };
        delete_target(self.skel, inode)?;
        self.armed.remove(&inode);
        if let Some(session) = self.sessions.get_mut(&slot) {
            session.inode = None;
        }
        self.publish()
    }

    /// Tells the programs the target set changed: every task recomputes
    /// its cached answer once.
    fn publish(&mut self) -> Result<(), TraceError> {
        // 0 is what a task's fresh storage holds: never a live generation
        self.generation = self.generation.wrapping_add(1).max(1);
        let armed = u32::try_from(self.armed.len()).unwrap_or(u32::MAX);
        self.skel
            .maps
            .control
            .update(
                &0u32.to_ne_bytes(),
                &wire::encode_control(self.generation, armed),
                MapFlags::ANY,
            )
            .map_err(bpf("publish the namespace filter"))
    }

    fn finish(&mut self, slot: u32, collector: Option<Collector>) -> Result<RawTrace, TraceError> {
        let session = self
            .sessions
            .remove(&slot)
            .ok_or_else(|| TraceError::Thread(format!("no session in slot {slot}")))?;
        let collector =
            collector.ok_or_else(|| TraceError::Thread(format!("no collector for slot {slot}")))?;
        let trace = read_out(self.skel, slot, collector, &session);
        // whatever happened reading, the slot's entries and probes go
        let purged = purge_slot(self.skel, slot);
        self.probes.release(&session.links);
        let trace = trace?;
        purged?;
        Ok(trace)
    }
}

/// Removes a namespace from the filter; one already gone is fine.
fn delete_target(skel: &skel::TraceSkel<'_>, inode: u32) -> Result<(), TraceError> {
    match skel.maps.targets.delete(&inode.to_ne_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(bpf("disarm the namespace filter")(e)),
    }
}

/// Identity of a probe site: the library file's device and inode, and the
/// function's file offset.
type Site = (u64, u64, u64);

#[derive(Default)]
struct Probes {
    /// Site -> (cookie, link id).
    sites: HashMap<Site, (u32, u64)>,
    /// Link id -> (link, sessions using it, its sites).
    links: HashMap<u64, (Vec<Link>, usize, Vec<Site>)>,
    next_cookie: u32,
    next_link: u64,
}

impl Probes {
    fn attach(
        &mut self,
        skel: &skel::TraceSkel<'_>,
        slot: u32,
        libraries: &Libraries,
        session: &mut SessionState,
        info: &mut TracerInfo,
    ) {
        let mut by_library: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
        for (i, r) in session.requests.iter().enumerate() {
            by_library.entry(r.host_path.clone()).or_default().push(i);
        }
        for (path, wanted) in by_library {
            let (table, file) = match libraries.get(&path) {
                Some(Ok((table, file))) => (table, *file),
                Some(Err(e)) => {
                    info.uprobe_errors.push(e.clone());
                    continue;
                }
                None => {
                    info.uprobe_errors
                        .push(format!("{}: not read", path.display()));
                    continue;
                }
            };
            let errors_before = info.uprobe_errors.len();
            // sites of this library no session has attached yet
            let mut fresh: Vec<(usize, u64)> = Vec::new();
            for &i in &wanted {
                let r = &session.requests[i];
                let Some(offset) = r.offset.or_else(|| table.offset(&r.symbol)) else {
                    info.uprobe_errors.push(format!(
                        "{}: no function {} in {}",
                        r.library,
                        r.symbol,
                        path.display()
                    ));
                    continue;
                };
                match self.sites.get(&(file.0, file.1, offset)) {
                    Some(&(cookie, link)) => {
                        session.cookies[i] = Some(cookie);
                        if session.links.insert(link) {
                            if let Some(entry) = self.links.get_mut(&link) {
                                entry.1 += 1;
                            }
                        }
                        info.uprobes_attached += 1;
                    }
                    None => fresh.push((i, offset)),
                }
            }
            if !fresh.is_empty() {
                self.attach_fresh(skel, &path, file, &fresh, session, info);
            }
            let requested: BTreeSet<&str> = wanted
                .iter()
                .map(|i| session.requests[*i].symbol.as_str())
                .collect();
            // an empty table (a stripped binary probed by offset) proves
            // nothing about the functions not asked for
            let covers_all = !table.is_empty()
                && !table.has_ifuncs()
                && table.functions().all(|f| requested.contains(f));
            if covers_all && info.uprobe_errors.len() == errors_before {
                if let Some(first) = wanted.first() {
                    info.complete_libraries
                        .push(session.requests[*first].library.clone());
                }
            }
        }
        info.complete_libraries.sort();
        info.complete_libraries.dedup();
        // a shared probe counts only for the sessions that asked for it
        let mut unwanted = 0usize;
        for cookie in session.cookies.iter().flatten() {
            let key = wire::SymbolKey {
                slot,
                cookie: *cookie,
            }
            .encode();
            if skel
                .maps
                .symbol_wanted
                .update(&key, &[1u8], MapFlags::ANY)
                .is_err()
            {
                unwanted += 1;
            }
        }
        if unwanted > 0 {
            info.uprobe_errors.push(format!(
                "{unwanted} probes could not be registered for this session (the probe table is full)"
            ));
        }
    }

    /// Attaches new sites of one library: one multi-uprobe link, or one
    /// link per site on kernels without uprobe_multi (before 6.6).
    fn attach_fresh(
        &mut self,
        skel: &skel::TraceSkel<'_>,
        path: &Path,
        file: (u64, u64),
        fresh: &[(usize, u64)],
        session: &mut SessionState,
        info: &mut TracerInfo,
    ) {
        let cookies: Vec<u32> = fresh
            .iter()
            .map(|_| {
                let c = self.next_cookie;
                self.next_cookie = self.next_cookie.wrapping_add(1);
                c
            })
            .collect();
        let opts = UprobeMultiOpts {
            offsets: fresh
                .iter()
                .map(|(_, off)| usize::try_from(*off).unwrap_or(usize::MAX))
                .collect(),
            cookies: cookies.iter().map(|c| u64::from(*c)).collect(),
            ..Default::default()
        };
        let mut attached: Vec<(Link, Vec<usize>)> = Vec::new();
        match skel
            .progs
            .on_symbol_multi
            .attach_uprobe_multi_with_opts(-1, path, "", opts)
        {
            Ok(link) => attached.push((link, (0..fresh.len()).collect())),
            Err(multi_err) => {
                tracing::debug!(library = %path.display(), error = %multi_err, "uprobe_multi unavailable; attaching one by one");
                for (k, (i, off)) in fresh.iter().enumerate() {
                    let opts = UprobeOpts {
                        cookie: u64::from(cookies[k]),
                        ..Default::default()
                    };
                    match skel.progs.on_symbol.attach_uprobe_with_opts(
                        -1,
                        path,
                        usize::try_from(*off).unwrap_or(usize::MAX),
                        opts,
                    ) {
                        Ok(link) => attached.push((link, vec![k])),
                        Err(e) => info
                            .uprobe_errors
                            .push(format!("{}: {e}", session.requests[*i].symbol)),
                    }
                }
            }
        }
        // one link id for everything attached here: the sites live and go
        // together
        if attached.is_empty() {
            return;
        }
        let id = self.next_link;
        self.next_link += 1;
        let mut links = Vec::new();
        let mut sites = Vec::new();
        for (link, ks) in attached {
            links.push(link);
            for k in ks {
                let (i, off) = fresh[k];
                let site = (file.0, file.1, off);
                self.sites.insert(site, (cookies[k], id));
                sites.push(site);
                session.cookies[i] = Some(cookies[k]);
                info.uprobes_attached += 1;
            }
        }
        self.links.insert(id, (links, 1, sites));
        session.links.insert(id);
    }

    /// A session is done with these links: detach those nobody else uses.
    fn release(&mut self, links: &BTreeSet<u64>) {
        for id in links {
            let unused = match self.links.get_mut(id) {
                Some(entry) => {
                    entry.1 = entry.1.saturating_sub(1);
                    entry.1 == 0
                }
                None => false,
            };
            if unused {
                if let Some((links, _, sites)) = self.links.remove(id) {
                    for site in sites {
                        self.sites.remove(&site);
                    }
                    drop(links);
                }
            }
        }
    }
}

type Loaded<'obj> = (skel::TraceSkel<'obj>, Links);

/// A hub's attachments: the syscall hook (which a benchmark may take off
/// and put back, `Command::SyscallHooks`, with the `bench` feature) and
/// the rest; each is detached when it is dropped.
struct Links {
    #[cfg_attr(not(feature = "bench"), allow(dead_code))]
    syscalls: Option<Link>,
    _others: Vec<Link>,
}

impl Links {
    /// Attaches the syscall hook of `kind`'s programs: `sys_exit` only.
    fn syscall_hooks(skel: &skel::TraceSkel<'_>, kind: Kind) -> Result<Link, TraceError> {
        match kind {
            Kind::Floor => skel
                .progs
                .floor_sys_exit
                .attach()
                .map_err(bpf("attach the empty sys_exit hook")),
            Kind::Tracer => skel
                .progs
                .on_sys_exit
                .attach()
                .map_err(bpf("attach raw_syscalls/sys_exit")),
        }
    }

    #[cfg(feature = "bench")]
    fn set(&mut self, skel: &skel::TraceSkel<'_>, kind: Kind, on: bool) -> Result<(), TraceError> {
        match (on, self.syscalls.is_some()) {
            (true, false) => self.syscalls = Some(Self::syscall_hooks(skel, kind)?),
            (false, true) => self.syscalls = None,
            _ => {}
        }
        Ok(())
    }
}

fn load(
    kind: Kind,
    storage: &mut MaybeUninit<libbpf_rs::OpenObject>,
) -> Result<Loaded<'_>, TraceError> {
    let mut open = skel::TraceSkelBuilder::default()
        .open(storage)
        .map_err(bpf("open the BPF object"))?;
    crate::libbpf_log::install();
    if kind == Kind::Floor {
        let progs = &mut open.progs;
        for prog in [
            &mut progs.on_sys_exit,
            &mut progs.on_exec,
            &mut progs.on_fork,
            &mut progs.on_exit,
        ] {
            prog.set_autoload(false);
        }
        progs.on_symbol_multi.set_autoload(false);
        progs.on_symbol.set_autoload(false);
        progs.floor_sys_exit.set_autoload(true);
    }
    let skel = open.load().map_err(|source| TraceError::Bpf {
        what: format!(
            "load the BPF programs (is this kernel built with BTF and BPF syscall tracepoints?); libbpf said: {}",
            crate::libbpf_log::tail(1500)
        ),
        source,
    })?;
    let syscalls = Some(Links::syscall_hooks(&skel, kind)?);
    let others = match kind {
        Kind::Floor => Vec::new(),
        Kind::Tracer => vec![
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
        ],
    };
    Ok((
        skel,
        Links {
            syscalls,
            _others: others,
        },
    ))
}

/// Keys of `map` for which `belongs` holds.
fn keys_where(map: &libbpf_rs::Map<'_>, belongs: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
    map.keys().filter(|k| belongs(k)).collect()
}

fn read_count(map: &libbpf_rs::Map<'_>, key: &[u8], what: &str) -> Result<u64, TraceError> {
    Ok(map
        .lookup(key, MapFlags::ANY)
        .map_err(bpf(format!("read the {what} map")))?
        .and_then(|v| wire::read_u64(&v))
        .unwrap_or(0))
}

/// Deletes every entry of `slot` from the aggregation maps and zeroes its
/// counters.
fn purge_slot(skel: &skel::TraceSkel<'_>, slot: u32) -> Result<(), TraceError> {
    let maps = &skel.maps;
    let doomed = [
        (
            &maps.files,
            keys_where(&maps.files, |k| {
                wire::FileKey::decode(k).is_some_and(|f| f.slot == slot)
            }),
        ),
        (
            &maps.failed,
            keys_where(&maps.failed, |k| {
                wire::FailedKey::decode(k).is_some_and(|f| f.slot == slot)
            }),
        ),
        (
            &maps.net,
            keys_where(&maps.net, |k| {
                wire::NetKey::decode(k).is_some_and(|n| n.slot == slot)
            }),
        ),
        (
            &maps.symbol_calls,
            keys_where(&maps.symbol_calls, |k| {
                wire::SymbolKey::decode(k).is_some_and(|s| s.slot == slot)
            }),
        ),
        (
            &maps.symbol_wanted,
            keys_where(&maps.symbol_wanted, |k| {
                wire::SymbolKey::decode(k).is_some_and(|s| s.slot == slot)
            }),
        ),
    ];
    for (map, keys) in doomed {
        for key in keys {
            // gone already is fine: deleting is all this wants
            let _ = map.delete(&key);
        }
    }
    let zero = 0u64.to_ne_bytes();
    let cpus = libbpf_rs::num_possible_cpus().map_err(|e| TraceError::Thread(e.to_string()))?;
    let zeros: Vec<Vec<u8>> = vec![zero.to_vec(); cpus];
    let base = slot as usize * MAX_SYSCALLS;
    for nr in base..base + MAX_SYSCALLS {
        let idx = u32::try_from(nr).unwrap_or(u32::MAX);
        maps.syscalls
            .update_percpu(&idx.to_ne_bytes(), &zeros, MapFlags::ANY)
            .map_err(bpf("reset the syscall counts"))?;
    }
    let st_count = stat_index::ST_COUNT.0;
    for i in 0..st_count {
        let idx = slot * st_count + i;
        maps.stats
            .update(&idx.to_ne_bytes(), &zero, MapFlags::ANY)
            .map_err(bpf("reset the loss counters"))?;
    }
    Ok(())
}

fn read_out(
    skel: &skel::TraceSkel<'_>,
    slot: u32,
    collector: Collector,
    session: &SessionState,
) -> Result<RawTrace, TraceError> {
    let maps = &skel.maps;
    let mut trace = RawTrace {
        info: session.info.clone(),
        ..RawTrace::default()
    };

    // Files: every key in the map was announced by an EV_PATH record first;
    // one whose announcement never arrived is counted as lost.
    let mut unannounced = 0u64;
    for key in keys_where(&maps.files, |_| true) {
        let Some(fk) = wire::FileKey::decode(&key).filter(|f| f.slot == slot) else {
            continue;
        };
        let count = read_count(&maps.files, &key, "files")?;
        let Some((path, _truncated)) = collector.paths.get(&fk) else {
            unannounced += 1;
            continue;
        };
        let into = if fk.kind == file_kind::KIND_EXEC_MAP.0 {
            &mut trace.mapped
        } else {
            &mut trace.opened
        };
        *into.entry(path.clone()).or_default() += count;
    }

    for key in keys_where(&maps.failed, |_| true) {
        let Some(fk) = wire::FailedKey::decode(&key).filter(|f| f.slot == slot) else {
            continue;
        };
        let count = read_count(&maps.failed, &key, "failed-open")?;
        match collector.failed_names.get(&fk.hash) {
            Some(name) => trace.failed_opens.push(FailedOpen {
                name: name.clone(),
                count,
            }),
            None => unannounced += 1,
        }
    }
    trace.failed_opens.sort();

    let mut network: BTreeMap<(vexxy_model::SocketOp, vexxy_model::SocketAddress), (u64, u64)> =
        BTreeMap::new();
    for key in keys_where(&maps.net, |_| true) {
        let Some(nk) = wire::NetKey::decode(&key).filter(|n| n.slot == slot) else {
            continue;
        };
        let count = read_count(&maps.net, &key, "network")?;
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

    let base = slot as usize * MAX_SYSCALLS;
    for nr in 0..MAX_SYSCALLS {
        let idx = u32::try_from(base + nr).unwrap_or(u32::MAX);
        let values = maps
            .syscalls
            .lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf("read the syscall counts"))?
            .unwrap_or_default();
        let count = wire::sum_per_cpu(&values);
        if count == 0 {
            continue;
        }
        trace.syscalls.insert(wire::syscall_name(nr), count);
    }

    for (r, cookie) in session.requests.iter().zip(&session.cookies) {
        let calls = match cookie {
            Some(cookie) => {
                let key = wire::SymbolKey {
                    slot,
                    cookie: *cookie,
                }
                .encode();
                let values = maps
                    .symbol_calls
                    .lookup_percpu(&key, MapFlags::ANY)
                    .map_err(bpf("read the symbol counts"))?
                    .unwrap_or_default();
                wire::sum_per_cpu(&values)
            }
            None => 0,
        };
        trace.functions.push(FunctionCalls {
            library: r.library.clone(),
            symbol: r.symbol.clone(),
            calls,
        });
    }
    trace.functions.sort();

    let stat = |i: stat_index| -> Result<u64, TraceError> {
        let idx = slot * stat_index::ST_COUNT.0 + i.0;
        read_count(&maps.stats, &idx.to_ne_bytes(), "loss counter")
    };
    trace.lost.ring_buffer = stat(stat_index::ST_RINGBUF_LOST)? + collector.malformed + unannounced;
    trace.lost.truncated_paths = stat(stat_index::ST_TRUNCATED)?;
    for (name, idx) in [
        ("files", stat_index::ST_FILES_FULL),
        ("failed_opens", stat_index::ST_FAILED_FULL),
        ("network", stat_index::ST_NET_FULL),
        ("symbol_calls", stat_index::ST_SYMBOLS_FULL),
        ("unresolved_fds", stat_index::ST_UNRESOLVED_FD),
    ] {
        let n = stat(idx)?;
        if n > 0 {
            trace.lost.map_full.insert(name.to_owned(), n);
        }
    }

    trace.executed = collector.executed;
    trace.processes = collector.processes.into_values().collect();
    Ok(trace)
}
