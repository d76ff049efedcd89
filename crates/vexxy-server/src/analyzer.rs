//! The seam between the service and the analysis pipeline.
//!
//! The service never analyses anything itself: a worker hands a job to an
//! [`Analyzer`] (the `vexxy` binary implements it with the very code
//! `vexxy analyze` runs) and stores what comes back. Tests of the HTTP
//! surface plug in an analyzer of their own; the end-to-end tests use the
//! real one.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

/// What to analyse, as the worker hands it over.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisJob {
    /// The job's id (for logs and scratch directory names).
    pub id: String,
    /// The image reference as submitted (registry reference or, when the
    /// server allows it, `oci:`/`oci-archive:`/`docker-archive:` beneath an
    /// allowed directory).
    pub image_ref: String,
    /// The digest the submitter expects; the analysis fails when the image
    /// resolves to another one.
    pub image_digest: Option<String>,
    pub config: AnalysisConfig,
    /// A scanner report (Grype, Trivy, OSV JSON), as submitted.
    pub scan_report: Option<Vec<u8>>,
    /// An SBOM (SPDX, CycloneDX, Syft JSON), as submitted.
    pub sbom: Option<Vec<u8>>,
}

/// How the image is run and exercised.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisConfig {
    /// Exercise window.
    pub duration: Duration,
    /// Extra environment for the workload.
    pub environment: BTreeMap<String, String>,
    /// Command replacing the image's CMD (one word per element); empty keeps the image's.
    pub command: Vec<String>,
    /// Shell script run against the workload (its text).
    pub test_script: Option<String>,
    /// Ports to wait for and probe; empty means the image's exposed ports.
    pub ports: Vec<u16>,
}

/// The files an analysis produced, by their names in `vexxy analyze`'s
/// output directory (`vex.openvex.json`, `evidence.json`, `profile.json`,
/// `sbom.runtime.cdx.json`, `report.md`, …).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnalysisOutput {
    /// The image digest the analysis pinned.
    pub image_digest: Option<String>,
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Why an analysis did not produce output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    /// The request itself is wrong (unknown image, bad report, digest
    /// mismatch…): retrying cannot help.
    #[error("{0}")]
    Rejected(String),
    /// Something that may pass on another try (registry unreachable,
    /// sandbox trouble, a crash).
    #[error("{0}")]
    Transient(String),
    /// The job was cancelled (or ran out of time) and its sandbox torn down.
    #[error("cancelled")]
    Cancelled,
}

/// What a running analysis reports back and how it is told to stop.
/// Cheap to clone; every clone sees the same state.
#[derive(Clone, Debug, Default)]
pub struct JobControl {
    cancel: Arc<AtomicBool>,
    progress: Arc<Mutex<Option<(String, u8)>>>,
}

impl JobControl {
    pub fn new() -> Self {
        Self::default()
    }

    /// The flag the sandbox watches: once set, the run stops and tears down.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Called by the analyzer whenever a phase starts: its name (free
    /// text, e.g. "cataloging packages", "observing the workload") and how
    /// far the whole analysis is, 0..=100.
    pub fn set_progress(&self, phase: &str, percent: u8) {
        if let Ok(mut slot) = self.progress.lock() {
            *slot = Some((phase.to_owned(), percent.min(100)));
        }
    }

    /// The phase and percentage last reported.
    pub fn progress(&self) -> Option<(String, u8)> {
        self.progress.lock().ok().and_then(|p| p.clone())
    }
}

/// Runs one analysis, blocking the calling thread (workers call it on a
/// blocking thread). It must return [`AnalysisError::Cancelled`] soon
/// after [`JobControl::cancel`] and leave no sandbox behind.
pub trait Analyzer: Send + Sync + 'static {
    fn analyze(
        &self,
        job: &AnalysisJob,
        control: &JobControl,
    ) -> Result<AnalysisOutput, AnalysisError>;
}
