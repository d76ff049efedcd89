//! Observing containers that are already running, without restarting or
//! entering them: vexxy's evidence from production.
//!
//! [`observe`] finds the targets ([`Selector`]: containerd containers by
//! id or labels, a cgroup, a process), arms one session of the shared
//! tracer on each one's PID namespace, takes what the container had already
//! loaded and opened from `/proc` (a server started long ago mapped its
//! libraries before anyone watched), waits for the duration (or a cancel),
//! and turns each container's trace into the same execution profile a
//! sandboxed run writes, with `run.source = observed`, the container and
//! the time span in `run.spans`, and the image's manifest digest from
//! containerd. Containers of the same image merge into one profile
//! ([`vexxy_profile::merge`]).
//!
//! Invariants:
//! - nothing is written into a container, signalled or restarted; the
//!   only effects are the tracer's programs (shared, detached with the last
//!   session) and reads of `/proc` and of containerd's API;
//! - a process in the observer's own PID namespace (the host's, for a
//!   node agent) is never a target: arming it would trace the whole host;
//! - every path in a profile is as the container saw it (the overlay's
//!   host layers are stripped);
//! - `/proc` is read through [`procfs::Proc`], so the snapshot logic is
//!   tested without a container.

pub mod containerd;
pub mod procfs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vexxy_model::{
    EvidenceSpan, ExecutionProfile, ExerciseStats, ProfileSource, RunInfo, RunOutcome,
};
use vexxy_rootfs::RootFs;
use vexxy_run::PathMap;
use vexxy_trace::{TraceOptions, Tracer};

use crate::procfs::{HostProc, Proc};

/// Which running containers to observe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// containerd containers of `namespace` with a running task: the one
    /// named `id`, or every one carrying all of `labels`.
    Containerd {
        /// containerd's socket.
        address: PathBuf,
        /// The containerd namespace (`k8s.io` under Kubernetes).
        namespace: String,
        /// One container by id.
        id: Option<String>,
        /// Labels every selected container carries.
        labels: Vec<(String, String)>,
    },
    /// The processes of a cgroup (a directory under `/sys/fs/cgroup`).
    Cgroup(PathBuf),
    /// One process and its PID namespace.
    Pid(u32),
}

/// What to observe, for how long.
#[derive(Debug, Clone)]
pub struct ObserveRequest {
    /// The targets.
    pub selector: Selector,
    /// How long to trace.
    pub duration: Duration,
    /// Functions to count: `(library as the image names it, symbol)`.
    pub uprobes: Vec<(String, String)>,
    /// Set to stop early; the evidence so far is kept.
    pub cancel: Arc<AtomicBool>,
    /// The image's manifest digest when the selector cannot tell it
    /// (a cgroup or a pid); containerd's answer wins otherwise.
    pub image_digest: Option<String>,
}

/// The steps of an observation, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservePhase {
    /// Finding the containers.
    Selecting,
    /// Loading the tracer and arming it on each container.
    Attaching,
    /// Tracing.
    Observing,
    /// Reading what was recorded.
    Collecting,
}

/// One image's observation: every selected container of it, merged.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The image name (containerd's) or what the selector named.
    pub image: String,
    /// The image's manifest digest, when known.
    pub image_digest: Option<String>,
    /// The containers observed (`namespace/id`, `cgroup:…` or `pid:N`).
    pub containers: Vec<String>,
    /// The evidence.
    pub profile: ExecutionProfile,
}

/// Why an observation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    /// The request is unusable (no target matched, a host process named).
    #[error("{0}")]
    Invalid(String),
    /// containerd could not be asked.
    #[error("containerd at {}: {what}: {message}", address.display())]
    Containerd {
        /// Its socket.
        address: PathBuf,
        /// What was being asked.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// `/proc` could not be read.
    #[error("{what}: {source}")]
    Proc {
        /// What was being read.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The tracer failed.
    #[error(transparent)]
    Trace(#[from] vexxy_trace::TraceError),
    /// Two observations of one image could not be merged.
    #[error(transparent)]
    Merge(#[from] vexxy_profile::MergeError),
}

/// The broad kind of an [`ObserveError`], for exit codes and statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's request is wrong.
    BadInput,
    /// The host cannot do it (containerd down, not root, no BTF).
    Environment,
}

impl ObserveError {
    /// Its broad kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) | Self::Merge(_) => ErrorKind::BadInput,
            Self::Trace(e) if e.is_unsupported() => ErrorKind::Environment,
            Self::Containerd { .. } | Self::Proc { .. } | Self::Trace(_) => ErrorKind::Environment,
        }
    }
}

/// One container to observe.
#[derive(Debug, Clone)]
struct Target {
    /// `namespace/id`, `cgroup:…` or `pid:N`.
    name: String,
    image: String,
    image_digest: Option<String>,
    /// A host pid inside it (its init when known).
    pid: u32,
    /// The command it was started with, when its runtime says so.
    args: Vec<String>,
}

/// Observes the selected containers for the requested time and returns
/// one observation per image.
pub fn observe(
    request: &ObserveRequest,
    progress: &dyn Fn(ObservePhase),
) -> Result<Vec<Observation>, ObserveError> {
    vexxy_trace::preflight()?;
    progress(ObservePhase::Selecting);
    let proc = HostProc;
    let targets = select(&request.selector, request.image_digest.as_deref(), &proc)?;
    progress(ObservePhase::Attaching);
    let own_ns = proc
        .pid_namespace(std::process::id())
        .map_err(|source| ObserveError::Proc {
            what: "reading the observer's own pid namespace".into(),
            source,
        })?;
    let mut sessions: Vec<Session> = Vec::with_capacity(targets.len());
    for target in targets {
        let ns = proc
            .pid_namespace(target.pid)
            .map_err(|source| ObserveError::Proc {
                what: format!(
                    "reading the pid namespace of {} (pid {})",
                    target.name, target.pid
                ),
                source,
            })?;
        if ns == own_ns {
            return Err(ObserveError::Invalid(format!(
                "{} (pid {}) runs in vexxy's own pid namespace (the host's): vexxy observes \
                 containers, and tracing it would trace every process of the host",
                target.name, target.pid
            )));
        }
        let root = RootFs::of_process(target.pid).map_err(|e| {
            ObserveError::Invalid(format!(
                "the root of {} (pid {}): {e}",
                target.name, target.pid
            ))
        })?;
        let (uprobes, unresolved) = vexxy_run::uprobe_requests(&root, &request.uprobes);
        let tracer = Tracer::start(TraceOptions {
            uprobes,
            ..TraceOptions::default()
        })?;
        if let Some(other) = sessions.iter().find(|s| s.namespace == ns) {
            // one tracer session per namespace: the processes of two
            // containers sharing one could not be told apart
            return Err(ObserveError::Invalid(format!(
                "{} and {} share a pid namespace, so their evidence cannot be told apart; \
                 select one of them",
                other.target.name, target.name
            )));
        }
        // held for the whole session: while it is open the namespace (and
        // its inode number, which the tracer filters on) cannot be freed
        // and handed to another container
        let namespace_handle = std::fs::File::open(format!("/proc/{}/ns/pid", target.pid))
            .map_err(|source| ObserveError::Proc {
                what: format!(
                    "holding the pid namespace of {} (pid {})",
                    target.name, target.pid
                ),
                source,
            })?;
        tracer.arm(ns)?;
        let started = Instant::now();
        let started_at = now_rfc3339();
        // armed first, then read: what happens in between is seen twice,
        // never missed (the profile is a union)
        let pids = procfs::pids_in_namespace(&proc, ns).map_err(|source| ObserveError::Proc {
            what: "listing /proc".into(),
            source,
        })?;
        let snapshot = procfs::snapshot(&proc, &pids);
        let layers = proc
            .mountinfo(target.pid)
            .map(|m| procfs::overlay_dirs(&m))
            .unwrap_or_default();
        let command = if target.args.is_empty() {
            command_of(&proc, target.pid)
        } else {
            target.args.clone()
        };
        tracing::info!(
            target = %target.name,
            pid = target.pid,
            processes = pids.len(),
            mapped = snapshot.mapped.len(),
            "observing"
        );
        sessions.push(Session {
            namespace: ns,
            _namespace_handle: namespace_handle,
            target,
            tracer,
            root,
            started,
            started_at,
            snapshot,
            layers,
            command,
            unresolved,
        });
    }
    progress(ObservePhase::Observing);
    let until = Instant::now() + request.duration;
    while Instant::now() < until && !request.cancel.load(Ordering::Relaxed) {
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(100)));
    }
    progress(ObservePhase::Collecting);
    let mut by_image: BTreeMap<(String, Option<String>), Observation> = BTreeMap::new();
    for session in sessions {
        let name = session.target.name.clone();
        let image = session.target.image.clone();
        let digest = session.target.image_digest.clone();
        let profile = session.finish()?;
        match by_image.entry((image.clone(), digest.clone())) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(Observation {
                    image,
                    image_digest: digest,
                    containers: vec![name],
                    profile,
                });
            }
            std::collections::btree_map::Entry::Occupied(mut e) => {
                let seen = e.get_mut();
                seen.containers.push(name);
                seen.profile = vexxy_profile::merge(std::mem::take(&mut seen.profile), profile)?;
            }
        }
    }
    Ok(by_image.into_values().collect())
}

/// One armed container.
struct Session {
    namespace: u64,
    _namespace_handle: std::fs::File,
    target: Target,
    tracer: Tracer,
    root: RootFs,
    started: Instant,
    started_at: String,
    snapshot: procfs::Snapshot,
    layers: Vec<String>,
    command: Vec<String>,
    unresolved: Vec<String>,
}

impl Session {
    fn finish(self) -> Result<ExecutionProfile, ObserveError> {
        let mut raw = self.tracer.finish()?;
        let ran = self.started.elapsed();
        let snap = self.snapshot;
        for (into, from) in [
            (&mut raw.executed, &snap.executed),
            (&mut raw.mapped, &snap.mapped),
            (&mut raw.opened, &snap.opened),
        ] {
            for (path, n) in from {
                *into.entry(path.clone()).or_default() += n;
            }
        }
        let mut processes: BTreeMap<u32, vexxy_model::ProcessRecord> =
            snap.processes.into_iter().map(|p| (p.pid, p)).collect();
        for p in std::mem::take(&mut raw.processes) {
            // the tracer saw it fork or exec after the snapshot: its record
            // is the fuller one
            processes.insert(p.pid, p);
        }
        raw.processes = processes.into_values().collect();
        for listening in snap.listening {
            if !raw
                .network
                .iter()
                .any(|n| n.op == listening.op && n.address == listening.address)
            {
                raw.network.push(listening);
            }
        }
        // every process of the snapshot was running when the tracer was
        // armed (or started in the moment between): its start-up is unseen
        raw.lost.running_before_attach = u64::try_from(snap.host_pids.len()).unwrap_or(u64::MAX);
        let duration_ms = u64::try_from(ran.as_millis()).unwrap_or(u64::MAX);
        // the container's init (pid 1 of its namespace) exiting ends the
        // container: its exit code is the outcome; else it was still
        // serving when the observation ended
        let outcome = raw
            .processes
            .iter()
            .find(|p| p.pid == 1)
            .and_then(|p| p.exit_code)
            .map_or(RunOutcome::StoppedAtEnd, RunOutcome::Exited);
        let run = RunInfo {
            image: self.target.image.clone(),
            image_digest: self.target.image_digest.clone(),
            command: self.command.into_iter().take(64).collect(),
            started_at: self.started_at.clone(),
            duration_ms,
            requested_duration_ms: duration_ms,
            outcome,
            window: None,
            source: ProfileSource::Observed,
            spans: vec![EvidenceSpan {
                source: ProfileSource::Observed,
                target: self.target.name.clone(),
                started_at: self.started_at,
                duration_ms,
            }],
        };
        let map = PathMap::new(&self.layers);
        let mut profile =
            vexxy_run::assemble(raw, &map, Some(&self.root), run, ExerciseStats::default());
        profile.tracer.uprobe_errors.extend(self.unresolved);
        profile.tracer.uprobe_errors.sort();
        Ok(profile)
    }
}

/// The containers a selector names, each with one host pid inside it.
fn select(
    selector: &Selector,
    digest_hint: Option<&str>,
    proc: &dyn Proc,
) -> Result<Vec<Target>, ObserveError> {
    match selector {
        Selector::Containerd {
            address,
            namespace,
            id,
            labels,
        } => {
            let all = containerd::list(address, namespace)?;
            let picked: Vec<Target> = all
                .into_iter()
                .filter(|c| id.as_ref().is_none_or(|id| &c.id == id))
                .filter(|c| labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
                .filter_map(|c| {
                    Some(Target {
                        name: format!("{}/{}", c.namespace, c.id),
                        pid: c.pid?,
                        args: c.args,
                        image: c.image,
                        image_digest: c.image_digest.or_else(|| digest_hint.map(str::to_owned)),
                    })
                })
                .collect();
            if picked.is_empty() {
                return Err(ObserveError::Invalid(match id {
                    Some(id) => {
                        format!("containerd namespace {namespace} has no running container {id}")
                    }
                    None => format!(
                        "containerd namespace {namespace} has no running container with labels {}",
                        labels
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                }));
            }
            Ok(picked)
        }
        Selector::Cgroup(path) => {
            let pids = proc
                .cgroup_pids(path)
                .map_err(|source| ObserveError::Proc {
                    what: format!("reading the processes of cgroup {}", path.display()),
                    source,
                })?;
            let pid = pids.into_iter().min().ok_or_else(|| {
                ObserveError::Invalid(format!("cgroup {} has no process", path.display()))
            })?;
            Ok(vec![Target {
                name: format!("cgroup:{}", path.display()),
                image: format!("cgroup:{}", path.display()),
                image_digest: digest_hint.map(str::to_owned),
                pid,
                args: Vec::new(),
            }])
        }
        Selector::Pid(pid) => {
            if proc.status(*pid).is_err() {
                return Err(ObserveError::Invalid(format!("no process {pid}")));
            }
            Ok(vec![Target {
                name: format!("pid:{pid}"),
                image: format!("pid:{pid}"),
                image_digest: digest_hint.map(str::to_owned),
                pid: *pid,
                args: Vec::new(),
            }])
        }
    }
}

/// The command a process runs, from `/proc`: its argv, unless the
/// process rewrote it into a title (nginx's "nginx: master process …",
/// one word with spaces), in which case its executable alone.
fn command_of(proc: &dyn Proc, pid: u32) -> Vec<String> {
    let argv = proc.cmdline(pid).unwrap_or_default();
    let retitled = argv.len() == 1 && argv[0].contains(' ');
    if argv.is_empty() || retitled {
        if let Ok(exe) = proc.exe(pid) {
            return vec![exe];
        }
    }
    argv
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
