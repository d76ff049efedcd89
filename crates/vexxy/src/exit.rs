//! Exit codes and the mapping from errors to them.

use std::process::ExitCode;

/// The documented exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    Done = 0,
    Undecided = 1,
    BadInput = 2,
    Internal = 3,
    /// This machine cannot sandbox or trace (not root, no BTF, no runtime…).
    Unsupported = 4,
    /// The service reports the job failed or was cancelled.
    JobFailed = 5,
    /// The service refused the request (401, 403, 429).
    Refused = 6,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// An error caused by what the user handed us (as opposed to a failure of
/// ours). Commands wrap such errors in it when no library type says so.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadInput(pub(crate) String);

/// Bad input when any error in the chain says so; internal otherwise.
pub(crate) fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<crate::cmd::client::ApiError>() {
            return e.exit();
        }
    }
    for cause in err.chain() {
        if unsupported(cause) {
            return Exit::Unsupported;
        }
    }
    for cause in err.chain() {
        let bad = cause.is::<BadInput>()
            || cause
                .downcast_ref::<vexxy_image::ImageError>()
                .is_some_and(|e| e.is_bad_input())
            || cause
                .downcast_ref::<vexxy_registry::RegistryError>()
                .is_some_and(|e| e.is_bad_input())
            || cause
                .downcast_ref::<vexxy_sbom::SbomError>()
                .is_some_and(|e| e.is_bad_input())
            || cause
                .downcast_ref::<vexxy_ingest::IngestError>()
                .is_some_and(|e| e.is_bad_input())
            || cause
                .downcast_ref::<vexxy_vex::VexError>()
                .is_some_and(|e| e.is_bad_input())
            || cause
                .downcast_ref::<vexxy_catalog::CatalogError>()
                .is_some_and(|e| e.is_bad_input())
            || cause
                .downcast_ref::<vexxy_static::StaticError>()
                .is_some_and(|e| e.is_bad_input())
            || cause
                .downcast_ref::<vexxy_attest::AttestError>()
                .is_some_and(|e| e.is_bad_input())
            || cause
                .downcast_ref::<vexxy_run::RunError>()
                .is_some_and(|e| e.is_bad_input())
            || cause
                .downcast_ref::<vexxy_profile::ProfileError>()
                .is_some_and(|e| e.is_bad_input())
            || cause
                .downcast_ref::<vexxy_report::ReportError>()
                .is_some_and(|e| e.is_bad_input())
            || cause
                .downcast_ref::<vexxy_rootfs::RootFsError>()
                .is_some_and(|e| !matches!(e, vexxy_rootfs::RootFsError::Io { .. }))
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            || cause.is::<vexxy_model::DigestError>()
            || cause.is::<vexxy_model::PurlError>()
            || cause.is::<time::error::Parse>();
        if bad {
            return Exit::BadInput;
        }
    }
    Exit::Internal
}

/// Errors saying this machine lacks something the sandbox or tracer needs.
fn unsupported(cause: &(dyn std::error::Error + 'static)) -> bool {
    use vexxy_run::RunError as R;
    if let Some(e) = cause.downcast_ref::<vexxy_trace::TraceError>() {
        return e.is_unsupported();
    }
    if let Some(e) = cause.downcast_ref::<vexxy_sandbox::SandboxError>() {
        return e.is_unsupported();
    }
    match cause.downcast_ref::<R>() {
        Some(R::Sandbox(e)) => e.is_unsupported(),
        Some(R::Trace(e)) => e.is_unsupported(),
        _ => false,
    }
}
