//! The errors of this crate.

use std::path::PathBuf;

use vexxy_rootfs::RootFsError;

/// Everything that can go wrong while gathering static evidence.
///
/// Malformed ELF files and unreadable directories are not errors: they are
/// recorded as warnings on the [`crate::ElfGraph`].
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    /// Reading a file of the root filesystem failed (the message names it).
    #[error(transparent)]
    RootFs(#[from] RootFsError),
    /// A rules file is not valid.
    #[error("rules file {file}, line {line}, key `{key}`: {message}")]
    Rules {
        /// The rules file (or the name given to an embedded one).
        file: PathBuf,
        /// 1-based line of the offending text (0 when unknown).
        line: usize,
        /// The key path of the offending value, e.g. `rule[0].then.status`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An nginx configuration file does not tokenize.
    #[error("nginx config {file}, line {line}: {message}")]
    NginxSyntax {
        /// The image path of the configuration file.
        file: String,
        /// 1-based line of the offending token.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl StaticError {
    /// Whether the error comes from what the user handed us (a bad rules
    /// file, a malformed configuration or rootfs) rather than I/O trouble.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::RootFs(e) => !matches!(e, RootFsError::Io { .. }),
            Self::Rules { .. } | Self::NginxSyntax { .. } => true,
        }
    }
}
