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
    /// No attestation attached to the image verifies with the key.
    NoAttestation = 7,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

impl From<vexxy_analyze::ErrorKind> for Exit {
    fn from(kind: vexxy_analyze::ErrorKind) -> Self {
        use vexxy_analyze::ErrorKind as K;
        match kind {
            K::BadInput => Self::BadInput,
            K::Unsupported => Self::Unsupported,
            K::Cancelled | K::Transient | K::Internal => Self::Internal,
        }
    }
}

/// Bad input found by the command line itself (a flag, a config file);
/// library errors carry their own kind.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadInput(pub(crate) String);

/// The exit code of a failed command: the service client's own verdict,
/// else the kind the analysis library gave the error where it was made,
/// else internal (an I/O failure writing outputs, a bug).
pub(crate) fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<crate::cmd::client::ApiError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<vexxy_analyze::AnalyzeError>() {
            return e.kind().into();
        }
        if cause.is::<BadInput>() {
            return Exit::BadInput;
        }
    }
    Exit::Internal
}
