//! How a caller follows and stops an analysis, and where it caches: the
//! [`Context`] handed to every entry point, and the typed [`Phase`]s it
//! reports.

use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::{cache::Caches, AnalyzeError};

/// One step of the pipeline, in the order an analysis meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Pulling the image from its registry into the blob cache.
    PullingImage,
    /// Reading (and importing) a local image.
    ReadingImage,
    /// Unpacking the layers into a root filesystem.
    UnpackingLayers,
    /// Cataloging packages and the files each owns.
    Cataloging,
    /// The ELF dependency graph from the entrypoint.
    ElfAnalysis,
    /// Evaluating configuration rules.
    Rules,
    /// A step of the sandboxed, traced run.
    Run(vexxy_run::Phase),
    /// Deciding every finding.
    Deciding,
    /// Rendering the documents and reports.
    Rendering,
}

impl Phase {
    /// What a person reads while the phase runs.
    pub fn label(self) -> &'static str {
        use vexxy_run::Phase as R;
        match self {
            Self::PullingImage => "pulling image",
            Self::ReadingImage => "reading image",
            Self::UnpackingLayers => "unpacking layers",
            Self::Cataloging => "cataloging packages",
            Self::ElfAnalysis => "analysing ELF dependencies",
            Self::Rules => "evaluating configuration rules",
            Self::Run(R::Preparing) => "loading the tracer, creating the sandbox",
            Self::Run(R::WaitingForPorts) => "waiting for ports",
            Self::Run(R::Probing) => "probing over HTTP",
            Self::Run(R::Script) => "running the test script",
            Self::Run(R::Observing) => "observing the workload",
            Self::Run(R::Collecting) => "collecting the trace",
            Self::Run(R::TearingDown) => "tearing down the sandbox",
            Self::Deciding => "deciding",
            Self::Rendering => "rendering outputs",
        }
    }

    /// A short name for timing tables.
    pub fn short(self) -> &'static str {
        use vexxy_run::Phase as R;
        match self {
            Self::PullingImage => "pull",
            Self::ReadingImage => "image",
            Self::UnpackingLayers => "unpack",
            Self::Cataloging => "catalog",
            Self::ElfAnalysis => "elf",
            Self::Rules => "rules",
            Self::Run(R::Preparing) => "sandbox + tracer",
            Self::Run(R::WaitingForPorts) => "wait for ports",
            Self::Run(R::Probing) => "http probe",
            Self::Run(R::Script) => "test script",
            Self::Run(R::Observing) => "observe",
            Self::Run(R::Collecting) => "collect trace",
            Self::Run(R::TearingDown) => "teardown",
            Self::Deciding => "decide",
            Self::Rendering => "render",
        }
    }

    /// How far a whole analysis is when this phase starts, 0..100: the
    /// share of a typical analysis' wall time spent before it.
    pub fn percent(self) -> u8 {
        use vexxy_run::Phase as R;
        match self {
            Self::PullingImage | Self::ReadingImage => 5,
            Self::UnpackingLayers => 15,
            Self::Cataloging => 25,
            Self::ElfAnalysis => 32,
            Self::Rules => 38,
            Self::Run(R::Preparing) => 42,
            Self::Run(R::WaitingForPorts) => 48,
            Self::Run(R::Probing) => 52,
            Self::Run(R::Script) => 56,
            Self::Run(R::Observing) => 60,
            Self::Run(R::Collecting) => 85,
            Self::Run(R::TearingDown) => 88,
            Self::Deciding => 92,
            Self::Rendering => 96,
        }
    }

    /// Whether the sandboxed run has begun by this phase (the service then
    /// reports the job as `analyzing` rather than `running`).
    pub fn is_run_or_later(self) -> bool {
        matches!(self, Self::Run(_) | Self::Deciding | Self::Rendering)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What the progress callback hears.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// A phase started.
    Started(Phase),
    /// A phase ended after `took`; `detail` says what it did
    /// ("138 packages"), possibly empty.
    Finished {
        phase: Phase,
        took: Duration,
        detail: String,
    },
}

/// The progress callback: called on the analysing thread, in order.
pub type ProgressFn<'a> = dyn Fn(&Progress) + Send + Sync + 'a;

/// How a caller follows, stops and supplies an analysis.
pub struct Context<'a> {
    cancel: Arc<AtomicBool>,
    progress: Option<&'a ProgressFn<'a>>,
    caches: Caches,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.map(|_| "Fn(&Progress)"))
            .field("caches", &self.caches)
            .finish()
    }
}

impl<'a> Context<'a> {
    /// A context with the given caches, no progress and a fresh cancel flag.
    pub fn new(caches: Caches) -> Self {
        Self {
            cancel: Arc::new(AtomicBool::new(false)),
            progress: None,
            caches,
        }
    }

    /// Tells `progress` of every phase.
    #[must_use]
    pub fn with_progress(mut self, progress: &'a ProgressFn<'a>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Stops when `flag` turns true: checked between phases and watched by
    /// the sandboxed run, which then tears down. The analysis fails with
    /// [`crate::ErrorKind::Cancelled`].
    #[must_use]
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = flag;
        self
    }

    /// The caches.
    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// The cancel flag (shared with the sandboxed run).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// An error when the caller asked to stop.
    pub fn check_cancelled(&self) -> Result<(), AnalyzeError> {
        if self.cancel.load(Ordering::SeqCst) {
            Err(AnalyzeError::cancelled())
        } else {
            Ok(())
        }
    }

    pub(crate) fn tell(&self, event: &Progress) {
        match event {
            Progress::Started(phase) => tracing::info!(phase = phase.label(), "started"),
            Progress::Finished {
                phase,
                took,
                detail,
            } => tracing::info!(
                phase = phase.label(),
                detail = detail.as_str(),
                ms = took.as_millis() as u64,
                "finished"
            ),
        }
        if let Some(progress) = self.progress {
            progress(event);
        }
    }

    /// Starts `phase`: tells the caller and starts its clock.
    pub(crate) fn start(&self, phase: Phase) -> Step {
        self.tell(&Progress::Started(phase));
        Step {
            phase,
            began: Instant::now(),
        }
    }
}

/// A phase under way; [`Timings::finish`] ends it.
#[derive(Debug)]
#[must_use]
pub(crate) struct Step {
    phase: Phase,
    began: Instant,
}

/// How long each phase took, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timings(Vec<(Phase, Duration)>);

impl Timings {
    /// Every phase with its duration.
    pub fn phases(&self) -> &[(Phase, Duration)] {
        &self.0
    }

    /// The sum of all phases.
    pub fn total(&self) -> Duration {
        self.0.iter().map(|(_, d)| *d).sum()
    }

    /// `(short name, duration)` pairs, for reports.
    pub fn named(&self) -> Vec<(String, Duration)> {
        self.0
            .iter()
            .map(|(p, d)| (p.short().to_owned(), *d))
            .collect()
    }

    pub(crate) fn push(&mut self, phase: Phase, took: Duration) {
        self.0.push((phase, took));
    }

    /// Ends `step`, telling the caller with `detail`.
    pub(crate) fn finish(&mut self, ctx: &Context<'_>, step: Step, detail: impl Into<String>) {
        let took = step.began.elapsed();
        ctx.tell(&Progress::Finished {
            phase: step.phase,
            took,
            detail: detail.into(),
        });
        self.push(step.phase, took);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_only_moves_forward_through_a_run() {
        use vexxy_run::Phase as R;
        let order = [
            Phase::PullingImage,
            Phase::UnpackingLayers,
            Phase::Cataloging,
            Phase::ElfAnalysis,
            Phase::Rules,
            Phase::Run(R::Preparing),
            Phase::Run(R::WaitingForPorts),
            Phase::Run(R::Probing),
            Phase::Run(R::Script),
            Phase::Run(R::Observing),
            Phase::Run(R::Collecting),
            Phase::Run(R::TearingDown),
            Phase::Deciding,
            Phase::Rendering,
        ];
        for pair in order.windows(2) {
            assert!(pair[0].percent() < pair[1].percent(), "{pair:?}");
        }
        assert!(Phase::Rendering.percent() < 100);
        assert!(!Phase::Rules.is_run_or_later());
        assert!(Phase::Run(R::Preparing).is_run_or_later());
    }
}
