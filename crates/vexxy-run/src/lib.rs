//! Runs an image in vexxy's sandbox, exercises it and traces it; returns
//! the [`ExecutionProfile`].
//!
//! The order is what makes the evidence complete: the tracer is loaded (on
//! its own thread) while the sandbox is created; the container's init then
//! waits inside its new namespaces until the tracer is armed on its PID
//! namespace, and only then is it started. Nothing the workload does
//! escapes the trace, and nothing outside it enters.
//!
//! The exercise window ([`WindowPolicy`], `window.rs`) decides when the
//! observing ends: adaptive by default (once every exerciser has finished
//! and the tracer's evidence has stopped changing for a quiet period, no
//! earlier than a minimum, no later than [`RunPlan::duration`]), or fixed
//! at the duration. The profile records which, and why it closed.
//!
//! Invariants:
//! - the sandbox is torn down on every path out of [`run`], error or not;
//!   a run never outlives its hard timeout by more than the teardown;
//! - a cancelled run returns [`RunError::Cancelled`] within about a
//!   second in every phase after the sandbox is created (port wait, HTTP
//!   probe, test script, observing), its sandbox torn down; only an HTTP
//!   request already sent to a workload that does not answer may hold it
//!   up to its timeout (2 s);
//! - an adaptive window never closes before every exerciser has finished,
//!   nor while the tracer has reported new evidence within the quiet
//!   period, nor before its minimum (capped at the duration);
//! - the tracer is finished before teardown, so the kill of the workload is
//!   not mistaken for its behaviour;
//! - paths in the profile are the workload's own (host prefixes of the
//!   overlay stripped).

mod assemble;
mod window;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vexxy_exercise::{ProbeBudget, Target};
use vexxy_model::{
    ExecutionProfile, ExerciseStats, ExerciseWindow, RunInfo, RunOutcome, WindowEnd,
};
use vexxy_rootfs::RootFs;
use vexxy_sandbox::{ExitStatus, Limits, ProcessConfig, Sandbox, SandboxConfig, TeardownReport};
use vexxy_trace::{TraceOptions, Tracer, UprobeRequest};

pub use assemble::{assemble, PathMap};
pub use window::{WindowError, WindowPolicy, DEFAULT_MINIMUM, DEFAULT_QUIET, MIN_QUIET};

/// Default exercise window: its length when fixed, its maximum when
/// adaptive.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);
/// Default hard timeout of a run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest hard timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(900);

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plan cannot be run as given.
    #[error("invalid run: {0}")]
    Invalid(String),
    /// The window policy cannot be used.
    #[error("invalid run: {0}")]
    Window(#[from] WindowError),
    /// The sandbox failed.
    #[error(transparent)]
    Sandbox(#[from] vexxy_sandbox::SandboxError),
    /// The tracer failed.
    #[error(transparent)]
    Trace(#[from] vexxy_trace::TraceError),
    /// Exercising the workload failed.
    #[error(transparent)]
    Exercise(#[from] vexxy_exercise::ExerciseError),
    /// The run was cancelled.
    #[error("the run was cancelled")]
    Cancelled,
}

impl RunError {
    /// True when the caller's input (not the machine) is at fault.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Invalid(_) | Self::Window(_) => true,
            Self::Sandbox(e) => e.is_bad_input(),
            _ => false,
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The unpacked image (read-only lower layer of the sandbox).
    pub rootfs: PathBuf,
    /// The image reference, for the profile.
    pub image: String,
    /// The image's digest, for the profile.
    pub image_digest: Option<String>,
    /// What to start.
    pub process: ProcessConfig,
    /// TCP ports to wait for and probe.
    pub ports: Vec<u16>,
    /// The exercise window: its length when fixed, its maximum when
    /// adaptive.
    pub duration: Duration,
    /// When the window closes (default: adaptive).
    pub window: WindowPolicy,
    /// Hard limit on the whole run.
    pub timeout: Duration,
    /// Probe open ports over HTTP.
    pub http_probe: bool,
    /// The user's test script, run in the sandbox's network namespace.
    pub test_script: Option<PathBuf>,
    /// Extra environment for the test script.
    pub script_env: Vec<(String, String)>,
    /// `(library as the image has it, symbol)` pairs to count calls of.
    pub uprobes: Vec<(String, String)>,
    /// Resource limits.
    pub limits: Limits,
    /// The OCI runtime binary.
    pub runtime: PathBuf,
    /// Where sandboxes keep their state.
    pub state_root: PathBuf,
    /// Set to stop the run early (the sandbox is torn down; [`run`] returns
    /// [`RunError::Cancelled`]).
    pub cancel: Arc<AtomicBool>,
}

impl RunPlan {
    /// A plan with the defaults: an adaptive window of at most 30 s, 300 s
    /// timeout, HTTP probing on.
    pub fn new(
        rootfs: impl Into<PathBuf>,
        image: impl Into<String>,
        process: ProcessConfig,
    ) -> Self {
        Self {
            rootfs: rootfs.into(),
            image: image.into(),
            image_digest: None,
            process,
            ports: Vec::new(),
            duration: DEFAULT_DURATION,
            window: WindowPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            http_probe: true,
            test_script: None,
            script_env: Vec::new(),
            uprobes: Vec::new(),
            limits: Limits::default(),
            runtime: PathBuf::from("runc"),
            state_root: PathBuf::from("/run/vexxy"),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    fn validate(&self) -> Result<(), RunError> {
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(RunError::Invalid(format!(
                "timeout {} s is not between 1 and {} s",
                self.timeout.as_secs(),
                MAX_TIMEOUT.as_secs()
            )));
        }
        if self.duration > self.timeout {
            return Err(RunError::Invalid(format!(
                "duration {} s is longer than the timeout {} s",
                self.duration.as_secs(),
                self.timeout.as_secs()
            )));
        }
        self.window.check()?;
        if self.runtime.file_name().is_some_and(|n| n == "runsc") {
            // measured (docs/kubernetes.md, "gVisor"): the host's tracepoints
            // see the Sentry's system calls, never the application's, and
            // the sandbox's pid namespace is not the Sentry's
            return Err(RunError::Invalid(format!(
                "runtime {}: the eBPF tracer cannot see inside gVisor (it sees the Sentry, not the \
                 application), so a traced run under runsc would record nothing of the image; \
                 use runc or crun",
                self.runtime.display()
            )));
        }
        if let Some(script) = &self.test_script {
            if !script.is_file() {
                return Err(RunError::Invalid(format!(
                    "test script {} is not a readable file",
                    script.display()
                )));
            }
        }
        Ok(())
    }
}

/// The phases of a run, reported as they begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Loading the tracer and creating the sandbox.
    Preparing,
    /// The workload is running; waiting for its ports.
    WaitingForPorts,
    /// Probing over HTTP.
    Probing,
    /// Running the user's test script.
    Script,
    /// Watching the workload until the window closes (see
    /// [`WindowPolicy`]) or it exits.
    Observing,
    /// Reading the tracer's aggregates.
    Collecting,
    /// Tearing the sandbox down.
    TearingDown,
}

/// What a run produced besides the profile.
#[derive(Debug)]
pub struct RunOutput {
    /// The profile.
    pub profile: ExecutionProfile,
    /// What teardown did and verified.
    pub teardown: TeardownReport,
    /// The last bytes of the workload's stdout and stderr.
    pub stdout_tail: String,
    /// See `stdout_tail`.
    pub stderr_tail: String,
    /// Output of the test script (last 64 KiB).
    pub script_output: Vec<u8>,
    /// Wall time per phase.
    pub timings: Vec<(Phase, Duration)>,
}

struct Clock {
    timings: Vec<(Phase, Duration)>,
    current: Option<(Phase, Instant)>,
}

impl Clock {
    fn enter(&mut self, phase: Phase, progress: &dyn Fn(Phase)) {
        self.close();
        self.current = Some((phase, Instant::now()));
        progress(phase);
    }

    fn close(&mut self) {
        if let Some((phase, began)) = self.current.take() {
            self.timings.push((phase, began.elapsed()));
        }
    }
}

/// Runs the plan: see the crate documentation for the order of events.
pub fn run(plan: &RunPlan, progress: &dyn Fn(Phase)) -> Result<RunOutput, RunError> {
    plan.validate()?;
    vexxy_trace::preflight()?;
    vexxy_sandbox::preflight(&plan.runtime)?;
    let began = Instant::now();
    let hard_deadline = began + plan.timeout;
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut clock = Clock {
        timings: Vec::new(),
        current: None,
    };
    clock.enter(Phase::Preparing, progress);

    let root = RootFs::open(&plan.rootfs)
        .map_err(|e| RunError::Invalid(format!("rootfs {}: {e}", plan.rootfs.display())))?;
    let (uprobes, unresolved_uprobes) = uprobe_requests(&root, &plan.uprobes);
    let options = TraceOptions {
        uprobes,
        ..TraceOptions::default()
    };
    // Load the tracer while the sandbox is being created.
    let tracer = std::thread::scope(|s| {
        let loading = s.spawn(|| Tracer::start(options));
        let mut config = SandboxConfig::new(&plan.rootfs, plan.process.clone());
        config.limits = plan.limits.clone();
        config.runtime = plan.runtime.clone();
        config.state_root = plan.state_root.clone();
        let sandbox = Sandbox::create(config);
        let tracer = loading
            .join()
            .map_err(|_| RunError::Invalid("the tracer loader panicked".into()));
        (sandbox, tracer)
    });
    let mut sandbox = tracer.0?;
    let tracer = match tracer.1.and_then(|t| t.map_err(RunError::from)) {
        Ok(t) => t,
        Err(e) => {
            let _ = sandbox.teardown();
            return Err(e);
        }
    };

    let observed = observe(
        plan,
        &mut sandbox,
        &tracer,
        hard_deadline,
        &mut clock,
        progress,
    );
    clock.enter(Phase::Collecting, progress);
    let raw = tracer.finish();
    let stdout_tail = sandbox.stdout_tail(16 << 10);
    let stderr_tail = sandbox.stderr_tail(16 << 10);
    let map = PathMap::new(
        [sandbox.lower_dir(), sandbox.upper_dir()]
            .iter()
            .flat_map(|d| {
                [
                    d.to_path_buf(),
                    std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf()),
                ]
            })
            .map(|d| d.to_string_lossy().into_owned()),
    );
    clock.enter(Phase::TearingDown, progress);
    let teardown = sandbox.teardown()?;
    clock.close();
    if !teardown.is_clean() {
        tracing::error!(leftovers = %teardown.leftover_summary(), "the sandbox left something behind");
    }
    let observed = observed?;
    let raw = raw?;

    let mut command = plan.process.args.clone();
    command.truncate(64);
    let run = RunInfo {
        image: plan.image.clone(),
        image_digest: plan.image_digest.clone(),
        command,
        started_at,
        duration_ms: millis(observed.ran),
        requested_duration_ms: millis(plan.duration),
        outcome: observed.outcome,
        window: Some(observed.window),
        source: vexxy_model::ProfileSource::Sandbox,
        spans: Vec::new(),
    };
    let mut profile = assemble(raw, &map, Some(&root), run, observed.stats);
    profile.tracer.uprobe_errors.extend(unresolved_uprobes);
    Ok(RunOutput {
        profile,
        teardown,
        stdout_tail,
        stderr_tail,
        script_output: observed.script_output,
        timings: clock.timings,
    })
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Resolves each requested library inside the image (symlinks followed
/// beneath the root) to the host file the probe attaches to. The profile
/// names the library by its canonical image path, as `loaded_libraries`
/// does, so the two can be joined. A library the image does not have is
/// reported as a uprobe error, never dropped.
///
/// A Go binary's functions are located through its pclntab
/// ([`vexxy_static::gosym`]), which stripped binaries keep: the request then
/// carries the entry's file offset, and the symbol is the pclntab's
/// spelling (`golang.org/x/net/html.Render`,
/// `golang.org/x/net/http2.(*Server).ServeConn`).
pub fn uprobe_requests(
    root: &RootFs,
    wanted: &[(String, String)],
) -> (Vec<UprobeRequest>, Vec<String>) {
    let mut requests = Vec::new();
    let mut errors = Vec::new();
    // host path -> the binary's Go functions by name (None: not Go)
    let mut go: std::collections::BTreeMap<
        PathBuf,
        Option<std::collections::BTreeMap<String, u64>>,
    > = std::collections::BTreeMap::new();
    for (library, symbol) in wanted {
        let resolved = root
            .canonical(library)
            .and_then(|canonical| root.host_path(&canonical).map(|host| (canonical, host)));
        match resolved {
            Ok((canonical, host_path)) => {
                let functions = go.entry(host_path.clone()).or_insert_with(|| {
                    vexxy_static::gosym::GoFunctions::read(&host_path)
                        .ok()
                        .map(|table| {
                            table
                                .functions()
                                .map(|f| (f.name.clone(), f.offset))
                                .collect()
                        })
                });
                let offset = functions.as_ref().and_then(|f| f.get(symbol).copied());
                requests.push(UprobeRequest {
                    host_path,
                    library: canonical,
                    symbol: symbol.clone(),
                    offset,
                });
            }
            Err(e) => errors.push(format!("{library}:{symbol}: {e}")),
        }
    }
    (requests, errors)
}

/// What the observing part of a run found.
struct Observed {
    stats: ExerciseStats,
    outcome: RunOutcome,
    script_output: Vec<u8>,
    /// How long the workload ran: from its start to its exit or the
    /// window's close.
    ran: Duration,
    window: ExerciseWindow,
}

/// The live world of [`window::watch`]: the wall clock, the tracer and the
/// sandbox.
struct Live<'a> {
    sandbox: &'a mut Sandbox,
    tracer: &'a Tracer,
    cancel: &'a AtomicBool,
}

impl window::Watch for Live<'_> {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn last_evidence(&self) -> Option<Instant> {
        self.tracer.evidence().last
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn wait_exit(&mut self, until: Instant) -> Result<Option<ExitStatus>, RunError> {
        Ok(self.sandbox.wait_exit(until)?)
    }
}

/// Arms the tracer, starts the workload and exercises it until the window
/// closes, it exits, the run is cancelled or the hard deadline passes.
fn observe(
    plan: &RunPlan,
    sandbox: &mut Sandbox,
    tracer: &Tracer,
    hard_deadline: Instant,
    clock: &mut Clock,
    progress: &dyn Fn(Phase),
) -> Result<Observed, RunError> {
    let cancel = &*plan.cancel;
    let cancelled = || -> Result<(), RunError> {
        if cancel.load(Ordering::Relaxed) {
            Err(RunError::Cancelled)
        } else {
            Ok(())
        }
    };
    // preparing cannot be interrupted; a cancel during it is seen here
    cancelled()?;
    tracer.arm(sandbox.pid_namespace_inode())?;
    sandbox.start()?;
    let started = Instant::now();
    let window = window::Window::new(plan.window, started, plan.duration, hard_deadline);
    let exercise_end = window.exercise_deadline();
    let target = Target::loopback(Some(sandbox.net_namespace_path()), plan.ports.clone());
    let mut stats = ExerciseStats {
        ports: plan.ports.clone(),
        ..ExerciseStats::default()
    };
    let mut script_output = Vec::new();

    let mut exit = None;
    if !plan.ports.is_empty() {
        clock.enter(Phase::WaitingForPorts, progress);
        let offset = started.elapsed();
        // Wait for the ports on a helper thread while watching the
        // workload and the cancel flag here: a workload that exits before
        // listening, or a cancel, ends the wait.
        let stop = AtomicBool::new(false);
        let (ready, status) = std::thread::scope(|s| {
            let waiter =
                s.spawn(|| vexxy_exercise::wait_for_ports_unless(&target, exercise_end, &stop));
            let mut status = Ok(None);
            while !waiter.is_finished() {
                if cancel.load(Ordering::Relaxed) {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                status = sandbox
                    .wait_exit((Instant::now() + Duration::from_millis(50)).min(exercise_end));
                if !matches!(status, Ok(None)) {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
            (waiter.join(), status)
        });
        cancelled()?;
        exit = status?;
        let ready = ready.map_err(|_| RunError::Invalid("the port waiter panicked".into()))??;
        stats.ready_after_ms = ready.after.map(|a| millis(offset + a));
        stats.ready_ports = ready.ready.clone();
        if plan.http_probe && !ready.ready.is_empty() {
            clock.enter(Phase::Probing, progress);
            let http = vexxy_exercise::probe_http_unless(
                &target,
                &ready.ready,
                &ProbeBudget::until(exercise_end),
                cancel,
            )?;
            cancelled()?;
            http.record_into(&mut stats);
            // the ports HTTP left unanswered (and TLS ports), in their own
            // protocol, picked from the port, the command and the banner
            let others = vexxy_exercise::protocol_ports(&ready.ready, &http);
            if !others.is_empty() {
                let probes = vexxy_exercise::probe_protocols_unless(
                    &target,
                    &others,
                    &vexxy_exercise::ProtocolHints::from_args(&plan.process.args),
                    &vexxy_exercise::ProtocolBudget::until(exercise_end),
                    cancel,
                )?;
                cancelled()?;
                probes.record_into(&mut stats);
            }
        }
    }
    if let Some(script) = &plan.test_script {
        clock.enter(Phase::Script, progress);
        let ran = vexxy_exercise::run_script_captured_unless(
            &target,
            script,
            &plan.script_env,
            hard_deadline,
            cancel,
        )?;
        cancelled()?;
        stats.script = Some(ran.outcome);
        script_output = ran.output;
    }

    clock.enter(Phase::Observing, progress);
    let exercised = Instant::now();
    let watched = window::watch(
        &window,
        exercised,
        exit,
        &mut Live {
            sandbox,
            tracer,
            cancel,
        },
    )?;
    let ran = started.elapsed();
    let outcome = match watched.exit {
        Some(ExitStatus::Exited(code)) => RunOutcome::Exited(code),
        Some(ExitStatus::Signaled(sig)) => RunOutcome::Signaled(sig),
        Some(ExitStatus::Unknown) => RunOutcome::Exited(-1),
        None if watched.ended == WindowEnd::TimedOut => RunOutcome::TimedOut,
        None => RunOutcome::StoppedAtEnd,
    };
    let window = ExerciseWindow {
        mode: plan.window.mode(),
        ended: watched.ended,
        last_evidence_ms: watched
            .last_evidence
            .map(|at| millis(at.saturating_duration_since(started))),
        exercised_ms: millis(exercised.saturating_duration_since(started)),
    };
    tracing::info!(
        ended = ?window.ended,
        ran_ms = millis(ran),
        last_evidence_ms = ?window.last_evidence_ms,
        exercised_ms = window.exercised_ms,
        "exercise window closed"
    );
    Ok(Observed {
        stats,
        outcome,
        script_output,
        ran,
        window,
    })
}

/// The exposed TCP ports of an image config (`"80/tcp"` keys).
pub fn exposed_tcp_ports<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<u16> {
    let mut ports: Vec<u16> = keys
        .into_iter()
        .filter_map(|k| {
            let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            (proto.eq_ignore_ascii_case("tcp"))
                .then(|| port.parse().ok())
                .flatten()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Where [`RunPlan::state_root`] defaults to.
pub fn default_state_root() -> &'static Path {
    Path::new("/run/vexxy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_ports_keep_tcp_only() {
        assert_eq!(
            exposed_tcp_ports(["80/tcp", "53/udp", "443", "8080/TCP", "x/tcp", "80/tcp"]),
            vec![80, 443, 8080]
        );
    }

    #[test]
    fn plans_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = RunPlan::new(dir.path(), "x", ProcessConfig::default());
        plan.timeout = Duration::from_secs(901);
        assert!(plan
            .validate()
            .unwrap_err()
            .to_string()
            .contains("timeout 901 s"));
        plan.timeout = Duration::from_secs(10);
        plan.duration = Duration::from_secs(11);
        assert!(plan.validate().unwrap_err().is_bad_input());
        plan.duration = Duration::from_secs(5);
        plan.test_script = Some(dir.path().join("missing.sh"));
        assert!(plan
            .validate()
            .unwrap_err()
            .to_string()
            .contains("missing.sh"));
        plan.test_script = None;
        assert!(plan.validate().is_ok());
        plan.window = WindowPolicy::Adaptive {
            quiet: Duration::from_millis(10),
            minimum: Duration::from_secs(5),
        };
        let err = plan.validate().unwrap_err();
        assert!(err.is_bad_input());
        assert!(
            err.to_string()
                .contains("window quiet period 10 ms is below the 500 ms floor"),
            "{err}"
        );
        // a minimum above the duration is the duration, not an error
        plan.window = WindowPolicy::Adaptive {
            quiet: Duration::from_secs(1),
            minimum: Duration::from_secs(60),
        };
        assert!(plan.validate().is_ok());
        plan.window = WindowPolicy::Fixed;
        assert!(plan.validate().is_ok());
        // gVisor hides the application from the tracer
        plan.runtime = PathBuf::from("/usr/bin/runsc");
        let err = plan.validate().unwrap_err();
        assert!(err.is_bad_input());
        assert!(
            err.to_string().contains("cannot see inside gVisor"),
            "{err}"
        );
    }
}
