//! Typed errors.

use std::{io, path::PathBuf};

use crate::TeardownReport;

/// Why a sandbox operation failed. Messages are lowercase and name the
/// sandbox id or the path involved.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The sandbox needs root (mounts, cgroups, namespaces).
    #[error("sandbox needs root: running with effective uid {euid}")]
    NotRoot {
        /// Our effective uid.
        euid: u32,
    },
    /// The runtime binary is not there or not executable.
    #[error("container runtime {runtime}: not found or not executable (install it, e.g. `apt-get install runc`)")]
    RuntimeMissing {
        /// The configured runtime.
        runtime: PathBuf,
    },
    /// The runtime binary does not run.
    #[error("container runtime {runtime}: `--version` failed: {detail}")]
    RuntimeBroken {
        /// The configured runtime.
        runtime: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The kernel has no overlayfs (or tmpfs).
    #[error("filesystem {fs} is not supported by this kernel (not in /proc/filesystems; try `modprobe {fs}`)")]
    FilesystemUnsupported {
        /// `overlay` or `tmpfs`.
        fs: &'static str,
    },
    /// A needed cgroup hierarchy or controller is missing.
    #[error("cgroup hierarchy missing: {detail}")]
    CgroupMissing {
        /// What is missing.
        detail: String,
    },
    /// The configuration is not usable.
    #[error("invalid sandbox config: {0}")]
    InvalidConfig(String),
    /// The image user could not be resolved in the rootfs.
    #[error("rootfs {rootfs}: user {user:?}: {reason}")]
    User {
        /// The rootfs searched.
        rootfs: PathBuf,
        /// The image config `User`.
        user: String,
        /// Why it did not resolve.
        reason: String,
    },
    /// A host operation failed.
    #[error("sandbox {id}: {action} {path}: {source}")]
    Io {
        /// The sandbox id.
        id: String,
        /// What we were doing (`mount overlay on`, `write`...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A runtime command failed.
    #[error("sandbox {id}: `{command}` failed: {detail}")]
    Runtime {
        /// The sandbox id.
        id: String,
        /// The runtime subcommand (`runc create`...).
        command: String,
        /// Its error output.
        detail: String,
    },
    /// The operation does not fit the sandbox's state.
    #[error("sandbox {id}: {detail}")]
    State {
        /// The sandbox id.
        id: String,
        /// What is wrong.
        detail: String,
    },
    /// Teardown finished but found leftovers it could not remove.
    #[error("sandbox {id}: teardown incomplete, leftovers: {summary}", id = report.id, summary = report.leftover_summary())]
    TeardownIncomplete {
        /// The full report.
        report: Box<TeardownReport>,
    },
    /// The state root could not be read or created.
    #[error("sandbox state root {path}: {source}")]
    StateRoot {
        /// The state root (or a directory in it).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl SandboxError {
    /// Whether the error is the caller's input (configuration, image user)
    /// rather than the host or the runtime.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::InvalidConfig(_) | Self::User { .. })
    }

    /// Whether the error says this machine cannot run sandboxes at all
    /// (not root, no runtime, no overlayfs or cgroups), as opposed to one
    /// sandbox failing.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            Self::NotRoot { .. }
                | Self::RuntimeMissing { .. }
                | Self::RuntimeBroken { .. }
                | Self::FilesystemUnsupported { .. }
                | Self::CgroupMissing { .. }
        )
    }
}
