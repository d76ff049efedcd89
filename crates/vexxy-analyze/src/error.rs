//! One error type for the whole pipeline, with its kind decided where the
//! error is made: callers (exit codes, job outcomes) match on
//! [`AnalyzeError::kind`] and never look inside.

use std::fmt;

/// What kind of failure an analysis met, which is what a caller acts on:
/// the CLI's exit code, the service's retry decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request itself is wrong (a report that does not parse, an image
    /// that does not exist, a digest that does not match, a bad option):
    /// trying again cannot help.
    BadInput,
    /// This machine cannot run the sandbox or the tracer (not root, no BTF,
    /// no OCI runtime, no overlayfs or cgroups).
    Unsupported,
    /// The caller cancelled the analysis; its sandbox is torn down.
    Cancelled,
    /// Something that may pass on another try: a registry that did not
    /// answer, a full disk, a sandbox that failed to start.
    Transient,
    /// A bug of ours.
    Internal,
}

impl ErrorKind {
    /// The kind's name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadInput => "bad_input",
            Self::Unsupported => "unsupported",
            Self::Cancelled => "cancelled",
            Self::Transient => "transient",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an analysis (or one of its steps) failed.
///
/// The message is the whole story in one line — what was being done, then
/// what went wrong, naming the file, image or id — lowercase, as every
/// error of the workspace. Errors of the library crates are folded in with
/// [`From`] (their kind is decided by [`Classify`]) or with
/// [`ResultExt::doing`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AnalyzeError {
    kind: ErrorKind,
    message: String,
}

impl AnalyzeError {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The request is wrong.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }

    /// This machine cannot sandbox or trace.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// The analysis was cancelled.
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "the analysis was cancelled")
    }

    /// May pass on another try.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    /// A bug of ours.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Internal,
            format!("internal error: {}", message.into()),
        )
    }

    /// An I/O failure of ours (cache, scratch space): transient.
    pub fn io(what: impl fmt::Display, source: &std::io::Error) -> Self {
        Self::transient(format!("{what}: {source}"))
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `what` said first (`what: message`).
    #[must_use]
    pub fn context(self, what: impl fmt::Display) -> Self {
        Self {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
        }
    }
}

/// How a library crate's error counts as an [`ErrorKind`]. Implemented
/// once per error type here, so the kind is decided where the error enters
/// the pipeline.
pub trait Classify: std::error::Error {
    /// The kind of this error.
    fn kind(&self) -> ErrorKind;
}

impl<E: Classify> From<E> for AnalyzeError {
    fn from(e: E) -> Self {
        Self::new(e.kind(), chain(&e))
    }
}

/// Saying what was being done, for results whose error becomes an
/// [`AnalyzeError`].
pub trait ResultExt<T> {
    /// On error, says what was being done first (`doing: error`).
    fn doing(self, what: impl fmt::Display) -> Result<T, AnalyzeError>;
    /// As [`ResultExt::doing`], with the text computed only on error.
    fn doing_with<D: fmt::Display>(self, f: impl FnOnce() -> D) -> Result<T, AnalyzeError>;
}

impl<T, E: Into<AnalyzeError>> ResultExt<T> for Result<T, E> {
    fn doing(self, what: impl fmt::Display) -> Result<T, AnalyzeError> {
        self.map_err(|e| e.into().context(what))
    }

    fn doing_with<D: fmt::Display>(self, f: impl FnOnce() -> D) -> Result<T, AnalyzeError> {
        self.map_err(|e| e.into().context(f()))
    }
}

/// An error and its sources in one line, each source said once (many
/// errors already print their source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn bad_or(bad: bool, otherwise: ErrorKind) -> ErrorKind {
    if bad {
        ErrorKind::BadInput
    } else {
        otherwise
    }
}

impl Classify for vexxy_image::ImageError {
    fn kind(&self) -> ErrorKind {
        use vexxy_image::ImageError as E;
        match self {
            // the path the user named is absent
            E::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::BadInput
            }
            E::NoCacheDir | E::NeedsRegistryPull { .. } => ErrorKind::Internal,
            e => bad_or(e.is_bad_input(), ErrorKind::Transient),
        }
    }
}

impl Classify for vexxy_registry::RegistryError {
    fn kind(&self) -> ErrorKind {
        // network trouble, 5xx, timeouts: another try may pass
        bad_or(self.is_bad_input(), ErrorKind::Transient)
    }
}

impl Classify for vexxy_ingest::IngestError {
    fn kind(&self) -> ErrorKind {
        bad_or(self.is_bad_input(), ErrorKind::Transient)
    }
}

impl Classify for vexxy_vex::VexError {
    fn kind(&self) -> ErrorKind {
        bad_or(self.is_bad_input(), ErrorKind::Internal)
    }
}

impl Classify for vexxy_catalog::CatalogError {
    fn kind(&self) -> ErrorKind {
        bad_or(self.is_bad_input(), ErrorKind::Transient)
    }
}

impl Classify for vexxy_static::StaticError {
    fn kind(&self) -> ErrorKind {
        bad_or(self.is_bad_input(), ErrorKind::Transient)
    }
}

impl Classify for vexxy_profile::ProfileError {
    fn kind(&self) -> ErrorKind {
        bad_or(self.is_bad_input(), ErrorKind::Transient)
    }
}

impl Classify for vexxy_report::ReportError {
    fn kind(&self) -> ErrorKind {
        bad_or(self.is_bad_input(), ErrorKind::Internal)
    }
}

impl Classify for vexxy_sbom::SbomError {
    fn kind(&self) -> ErrorKind {
        bad_or(self.is_bad_input(), ErrorKind::Internal)
    }
}

impl Classify for vexxy_rootfs::RootFsError {
    fn kind(&self) -> ErrorKind {
        match self {
            vexxy_rootfs::RootFsError::Io { .. } => ErrorKind::Transient,
            _ => ErrorKind::BadInput,
        }
    }
}

impl Classify for vexxy_sandbox::SandboxError {
    fn kind(&self) -> ErrorKind {
        if self.is_unsupported() {
            ErrorKind::Unsupported
        } else {
            bad_or(self.is_bad_input(), ErrorKind::Transient)
        }
    }
}

impl Classify for vexxy_trace::TraceError {
    fn kind(&self) -> ErrorKind {
        if self.is_unsupported() {
            ErrorKind::Unsupported
        } else {
            ErrorKind::Transient
        }
    }
}

impl Classify for vexxy_run::RunError {
    fn kind(&self) -> ErrorKind {
        use vexxy_run::RunError as R;
        match self {
            R::Cancelled => ErrorKind::Cancelled,
            R::Sandbox(e) => e.kind(),
            R::Trace(e) => e.kind(),
            e => bad_or(e.is_bad_input(), ErrorKind::Transient),
        }
    }
}

impl Classify for vexxy_attest::AttestError {
    fn kind(&self) -> ErrorKind {
        bad_or(self.is_bad_input(), ErrorKind::Internal)
    }
}

impl Classify for vexxy_model::DigestError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::BadInput
    }
}

impl Classify for vexxy_model::PurlError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::BadInput
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_keep_the_kind_decided_where_they_are_made() {
        let cases: Vec<(AnalyzeError, ErrorKind)> = vec![
            (vexxy_run::RunError::Cancelled.into(), ErrorKind::Cancelled),
            (
                vexxy_run::RunError::Invalid("no command".into()).into(),
                ErrorKind::BadInput,
            ),
            (
                vexxy_run::RunError::from(vexxy_run::WindowError::QuietTooShort {
                    quiet: std::time::Duration::from_millis(1),
                })
                .into(),
                ErrorKind::BadInput,
            ),
            (
                vexxy_registry::RegistryError::Registry {
                    registry: "registry.example".into(),
                    reference: "registry.example/app:1".into(),
                    reason: "503 service unavailable".into(),
                }
                .into(),
                ErrorKind::Transient,
            ),
            (
                vexxy_image::ImageError::Io {
                    path: "/absent/layout".into(),
                    source: std::io::ErrorKind::NotFound.into(),
                }
                .into(),
                ErrorKind::BadInput,
            ),
            (
                vexxy_image::ImageError::Apply {
                    layer: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
                    entry: "x".repeat(300),
                    source: std::io::Error::from_raw_os_error(36), // ENAMETOOLONG
                }
                .into(),
                ErrorKind::BadInput,
            ),
            (
                vexxy_image::ImageError::Io {
                    path: "/cache/blobs".into(),
                    source: std::io::Error::other("no space left on device"),
                }
                .into(),
                ErrorKind::Transient,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.kind(), want, "{e}");
        }
    }

    #[test]
    fn context_goes_first_and_keeps_the_kind() {
        let r: Result<(), vexxy_run::RunError> = Err(vexxy_run::RunError::Invalid("x".into()));
        let e = r.doing("running oci:/images/nginx").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert_eq!(e.to_string(), "running oci:/images/nginx: invalid run: x");
    }

    #[test]
    fn sources_are_said_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Outer(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("quiet")]
        struct Quiet(#[source] std::io::Error);
        assert_eq!(
            chain(&Outer(std::io::Error::other("inner"))),
            "outer: inner"
        );
        assert_eq!(
            chain(&Quiet(std::io::Error::other("inner"))),
            "quiet: inner"
        );
    }
}
