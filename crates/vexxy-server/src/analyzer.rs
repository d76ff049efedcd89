//! The seam between the service and the analysis library.
//!
//! A worker turns a stored job into an [`AnalysisRequest`] (`job.rs`) and
//! hands it to an [`Analyzer`]: in production the library itself
//! ([`Pipeline`]), in the router tests an analyzer written for them. What
//! comes back is the library's typed [`AnalysisOutcome`]; failures carry
//! their [`vexxy_analyze::ErrorKind`], which decides retry or not.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use vexxy_analyze::{
    AnalysisOutcome, AnalysisRequest, AnalyzeError, Caches, Context, Phase, Progress,
    ReevaluateRequest,
};

/// What a running analysis reports back and how it is told to stop.
/// Cheap to clone; every clone sees the same state.
#[derive(Clone, Debug, Default)]
pub struct JobControl {
    cancel: Arc<AtomicBool>,
    phase: Arc<Mutex<Option<Phase>>>,
    tenant: Option<Arc<str>>,
}

impl JobControl {
    pub fn new() -> Self {
        Self::default()
    }

    /// The control of a job of this tenant (organisation): its analysis
    /// uses that tenant's caches only.
    pub fn for_tenant(tenant: &str) -> Self {
        Self {
            tenant: Some(Arc::from(tenant)),
            ..Self::default()
        }
    }

    /// The tenant whose job this is, when known.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The flag the analysis watches: once set, the run stops and tears down.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Called whenever a phase starts. Progress never goes back: a phase
    /// that starts after a later one (a stored profile skips the run) does
    /// not lower the percentage.
    pub fn set_phase(&self, phase: Phase) {
        if let Ok(mut slot) = self.phase.lock() {
            if slot.is_none_or(|p| phase.percent() >= p.percent()) {
                *slot = Some(phase);
            }
        }
    }

    /// The furthest phase reached.
    pub fn phase(&self) -> Option<Phase> {
        self.phase.lock().ok().and_then(|p| *p)
    }

    /// The analysis context of a job: the caches, this control's cancel
    /// flag, and phases reported to it.
    pub fn context<'a>(
        &self,
        caches: Caches,
        progress: &'a vexxy_analyze::ProgressFn<'a>,
    ) -> Context<'a> {
        Context::new(caches)
            .with_cancel(self.cancel_flag())
            .with_progress(progress)
    }
}

/// Runs one analysis, blocking the calling thread (workers call it on a
/// blocking thread). It must fail with [`vexxy_analyze::ErrorKind::Cancelled`]
/// soon after [`JobControl::cancel`] and leave no sandbox behind.
pub trait Analyzer: Send + Sync + 'static {
    fn analyze(
        &self,
        request: &AnalysisRequest,
        control: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError>;

    /// Decides a new report against a stored execution profile, without
    /// running the image (a re-decision job). Analyzers that cannot
    /// refuse it as an internal error.
    fn reevaluate(
        &self,
        request: &ReevaluateRequest,
        control: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        let _ = (request, control);
        Err(AnalyzeError::internal(
            "this analyzer does not decide from stored profiles",
        ))
    }
}

/// The real pipeline: [`vexxy_analyze::analyze`] with these caches.
#[derive(Clone, Debug)]
pub struct Pipeline {
    caches: Caches,
}

impl Pipeline {
    pub fn new(caches: Caches) -> Self {
        Self { caches }
    }
}

impl Analyzer for Pipeline {
    fn analyze(
        &self,
        request: &AnalysisRequest,
        control: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        self.guarded(&request.image.reference, control, |ctx| {
            vexxy_analyze::analyze(request, ctx)
        })
    }

    fn reevaluate(
        &self,
        request: &ReevaluateRequest,
        control: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        self.guarded(&request.image.reference, control, |ctx| {
            vexxy_analyze::reevaluate(request, ctx)
        })
    }
}

impl Pipeline {
    /// Runs `work` with the job's context (its tenant's caches, its cancel
    /// flag, phases reported to `control`), a panic turned into an
    /// internal error, and a cancellation winning over any result.
    fn guarded(
        &self,
        reference: &str,
        control: &JobControl,
        work: impl FnOnce(&Context<'_>) -> Result<AnalysisOutcome, AnalyzeError>,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        let progress = |p: &Progress| {
            if let Progress::Started(phase) = p {
                control.set_phase(*phase);
            }
        };
        // one tenant's cached blobs, rootfs and profiles never serve another
        let caches = match control.tenant() {
            Some(t) => self.caches.for_tenant(t),
            None => self.caches.clone(),
        };
        let ctx = control.context(caches, &progress);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(&ctx)));
        let result = outcome.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            tracing::error!("the analysis panicked: {what}");
            Err(AnalyzeError::internal(format!(
                "the analysis of {reference} panicked: {what}"
            )))
        });
        // a job cancelled meanwhile is cancelled, whatever came of it
        if control.is_cancelled() {
            return Err(AnalyzeError::cancelled());
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_never_goes_back() {
        let c = JobControl::new();
        assert_eq!(c.phase(), None);
        c.set_phase(Phase::Cataloging);
        c.set_phase(Phase::Run(vexxy_analyze::RunPhase::Observing));
        c.set_phase(Phase::Rules);
        assert_eq!(
            c.phase(),
            Some(Phase::Run(vexxy_analyze::RunPhase::Observing))
        );
    }
}
