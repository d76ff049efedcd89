//! Runs an image in vexxy's sandbox, exercises it and traces it; returns
//! the [`ExecutionProfile`].
//!
//! The order is what makes the evidence complete: the tracer is loaded (on
//! its own thread) while the sandbox is created; the container's init then
//! waits inside its new namespaces until the tracer is armed on its PID
//! namespace, and only then is it started. Nothing the workload does
//! escapes the trace, and nothing outside it enters.
//!
//! Invariants:
//! - the sandbox is torn down on every path out of [`run`], error or not;
//!   a run never outlives its hard timeout by more than the teardown;
//! - the tracer is finished before teardown, so the kill of the workload is
//!   not mistaken for its behaviour;
//! - paths in the profile are the workload's own (host prefixes of the
//!   overlay stripped).

mod assemble;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vexxy_exercise::{ProbeBudget, Target};
use vexxy_model::{ExecutionProfile, ExerciseStats, RunInfo, RunOutcome};
use vexxy_rootfs::RootFs;
use vexxy_sandbox::{ExitStatus, Limits, ProcessConfig, Sandbox, SandboxConfig, TeardownReport};
use vexxy_trace::{TraceOptions, Tracer, UprobeRequest};

pub use assemble::{assemble, PathMap};

/// Default exercise window.
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
            Self::Invalid(_) => true,
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
    /// The exercise window.
    pub duration: Duration,
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
    /// A plan with the defaults: 30 s window, 300 s timeout, HTTP probing on.
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
    /// Watching the workload until the window closes or it exits.
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
    let (exercise, outcome, script_output, ran) = observed?;
    let raw = raw?;

    let mut command = plan.process.args.clone();
    command.truncate(64);
    let run = RunInfo {
        image: plan.image.clone(),
        image_digest: plan.image_digest.clone(),
        command,
        started_at,
        duration_ms: millis(ran),
        requested_duration_ms: millis(plan.duration),
        outcome,
    };
    let mut profile = assemble(raw, &map, Some(&root), run, exercise);
    profile.tracer.uprobe_errors.extend(unresolved_uprobes);
    Ok(RunOutput {
        profile,
        teardown,
        stdout_tail,
        stderr_tail,
        script_output,
        timings: clock.timings,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Resolves each requested library inside the image (symlinks followed
/// beneath the root) to the host file the probe attaches to. The profile
/// names the library by its canonical image path, as `loaded_libraries`
/// does, so the two can be joined. A library the image does not have is
/// reported as a uprobe error, never dropped.
fn uprobe_requests(
    root: &RootFs,
    wanted: &[(String, String)],
) -> (Vec<UprobeRequest>, Vec<String>) {
    let mut requests = Vec::new();
    let mut errors = Vec::new();
    for (library, symbol) in wanted {
        let resolved = root
            .canonical(library)
            .and_then(|canonical| root.host_path(&canonical).map(|host| (canonical, host)));
        match resolved {
            Ok((canonical, host_path)) => {
                requests.push(UprobeRequest {
                    host_path,
                    library: canonical,
                    symbol: symbol.clone(),
                });
            }
            Err(e) => errors.push(format!("{library}:{symbol}: {e}")),
        }
    }
    (requests, errors)
}

/// Exercise statistics, how the workload ended, the script's output, and
/// how long the workload ran (from `start` to its exit or the window's end).
type Observed = (ExerciseStats, RunOutcome, Vec<u8>, Duration);

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
    tracer.arm(sandbox.pid_namespace_inode())?;
    sandbox.start()?;
    let started = Instant::now();
    let window_end = (started + plan.duration).min(hard_deadline);
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
        // workload here: one that exits before listening ends the wait.
        let exited = AtomicBool::new(false);
        let (ready, status) = std::thread::scope(|s| {
            let waiter =
                s.spawn(|| vexxy_exercise::wait_for_ports_unless(&target, window_end, &exited));
            let mut status = Ok(None);
            while !waiter.is_finished() {
                status =
                    sandbox.wait_exit((Instant::now() + Duration::from_millis(50)).min(window_end));
                if !matches!(status, Ok(None)) {
                    exited.store(true, Ordering::Relaxed);
                    break;
                }
            }
            (waiter.join(), status)
        });
        exit = status?;
        let ready = ready.map_err(|_| RunError::Invalid("the port waiter panicked".into()))??;
        stats.ready_after_ms = ready.after.map(|a| millis(offset + a));
        stats.ready_ports = ready.ready.clone();
        if plan.http_probe && !ready.ready.is_empty() {
            clock.enter(Phase::Probing, progress);
            let http =
                vexxy_exercise::probe_http(&target, &ready.ready, &ProbeBudget::until(window_end))?;
            http.record_into(&mut stats);
        }
    }
    if let Some(script) = &plan.test_script {
        clock.enter(Phase::Script, progress);
        let ran =
            vexxy_exercise::run_script_captured(&target, script, &plan.script_env, hard_deadline)?;
        stats.script = Some(ran.outcome);
        script_output = ran.output;
    }

    clock.enter(Phase::Observing, progress);
    // A script may run past the window: the window then ends with it.
    let until = window_end.max(Instant::now()).min(hard_deadline);
    while exit.is_none() && Instant::now() < until {
        if plan.cancel.load(Ordering::Relaxed) {
            return Err(RunError::Cancelled);
        }
        let step = (Instant::now() + Duration::from_millis(200)).min(until);
        if let Some(status) = sandbox.wait_exit(step)? {
            exit = Some(status);
            break;
        }
    }
    if exit.is_none() {
        exit = sandbox.wait_exit(Instant::now())?;
    }
    let outcome = match exit {
        Some(ExitStatus::Exited(code)) => RunOutcome::Exited(code),
        Some(ExitStatus::Signaled(sig)) => RunOutcome::Signaled(sig),
        Some(ExitStatus::Unknown) => RunOutcome::Exited(-1),
        None if Instant::now() >= hard_deadline => RunOutcome::TimedOut,
        None => RunOutcome::StoppedAtEnd,
    };
    Ok((stats, outcome, script_output, started.elapsed()))
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
    }
}
