//! Checks that the host can run sandboxes, with errors that say what to fix.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    host::{CommandSpec, Host, RealHost},
    SandboxError,
};

/// Controllers the sandbox limits need.
const NEEDED_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// Checks that sandboxes can run here: we are root, the runtime binary
/// exists and runs, the kernel has overlayfs and tmpfs, and the memory,
/// pids and cpu cgroup controllers are mounted (v1 hierarchies or v2).
pub fn preflight(runtime: &Path) -> Result<(), SandboxError> {
    preflight_with(&RealHost::new(), runtime).map(|_| ())
}

/// [`preflight`] on a given host; returns the runtime's resolved path.
pub(crate) fn preflight_with(host: &dyn Host, runtime: &Path) -> Result<PathBuf, SandboxError> {
    let euid = host.effective_uid();
    if euid != 0 {
        return Err(SandboxError::NotRoot { euid });
    }
    let resolved = host
        .find_program(runtime)
        .ok_or_else(|| SandboxError::RuntimeMissing {
            runtime: runtime.to_owned(),
        })?;
    let mut version = CommandSpec::new(&resolved, ["--version"]);
    version.timeout = Duration::from_secs(10);
    match host.run(&version) {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            tracing::debug!(runtime = %resolved.display(), version = %text.lines().next().unwrap_or(""), "runtime");
        }
        Ok(o) => {
            return Err(SandboxError::RuntimeBroken {
                runtime: resolved,
                detail: format!(
                    "{}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            })
        }
        Err(e) => {
            return Err(SandboxError::RuntimeBroken {
                runtime: resolved,
                detail: e.to_string(),
            })
        }
    }
    let filesystems = host.filesystems().unwrap_or_default();
    for fs in ["overlay", "tmpfs"] {
        if !filesystems
            .lines()
            .any(|l| l.split_ascii_whitespace().last() == Some(fs))
        {
            return Err(SandboxError::FilesystemUnsupported { fs });
        }
    }
    let layout = host.cgroup_layout();
    let usable: &[String] = if layout.unified_only {
        &layout.v2_controllers
    } else {
        &layout.v1_controllers
    };
    let missing: Vec<&str> = NEEDED_CONTROLLERS
        .into_iter()
        .filter(|c| !usable.iter().any(|u| u == c))
        .collect();
    if !missing.is_empty() {
        let mode = if layout.unified_only {
            "cgroup v2"
        } else {
            "cgroup v1"
        };
        return Err(SandboxError::CgroupMissing {
            detail: format!(
                "{mode} controllers {} not mounted under /sys/fs/cgroup",
                missing.join(", ")
            ),
        });
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeHost;

    #[test]
    fn clear_errors() {
        let h = FakeHost::new();
        preflight_with(&h, Path::new("runc")).expect("ok");

        h.state().euid = 1000;
        let e = preflight_with(&h, Path::new("runc")).expect_err("not root");
        assert!(e.to_string().contains("root"), "{e}");
        h.state().euid = 0;

        let e = preflight_with(&h, Path::new("crun")).expect_err("missing");
        assert!(matches!(e, SandboxError::RuntimeMissing { .. }), "{e}");
        assert!(e.to_string().contains("crun"), "{e}");

        h.state().filesystems = "nodev\ttmpfs\n".into();
        let e = preflight_with(&h, Path::new("runc")).expect_err("overlay");
        assert!(e.to_string().contains("overlay"), "{e}");
        h.state().filesystems = "nodev\ttmpfs\nnodev\toverlay\n".into();

        h.state().layout.v1_controllers.retain(|c| c != "pids");
        let e = preflight_with(&h, Path::new("runc")).expect_err("cgroup");
        assert!(e.to_string().contains("pids"), "{e}");
    }
}
