//! What to run and within which limits.

use std::path::PathBuf;

use crate::SandboxError;

/// `PATH` given to a process whose image config sets none (Docker's default).
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything needed to create a [`Sandbox`](crate::Sandbox).
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The unpacked image rootfs. Used as the read-only overlay `lowerdir`;
    /// never modified.
    pub rootfs: PathBuf,
    /// The container's init process.
    pub process: ProcessConfig,
    /// Resource limits.
    pub limits: Limits,
    /// The OCI runtime binary (a path, or a name looked up in `PATH`).
    /// Default `runc`; only runc is supported on hybrid cgroup hosts.
    pub runtime: PathBuf,
    /// Where sandboxes keep their state: `<state_root>/sandboxes/<id>/` and
    /// the runtime's `--root` `<state_root>/runtime`. Default `/run/vexxy`.
    pub state_root: PathBuf,
    /// The container's hostname. Default `vexxy-sandbox`.
    pub hostname: String,
}

impl SandboxConfig {
    /// A configuration with default limits, runtime, state root and hostname.
    pub fn new(rootfs: impl Into<PathBuf>, process: ProcessConfig) -> Self {
        Self {
            rootfs: rootfs.into(),
            process,
            limits: Limits::default(),
            runtime: PathBuf::from("runc"),
            state_root: PathBuf::from("/run/vexxy"),
            hostname: "vexxy-sandbox".into(),
        }
    }

    /// Checks the parts of the configuration that do not need the host.
    pub(crate) fn validate(&self) -> Result<(), SandboxError> {
        let bad = |what: String| Err(SandboxError::InvalidConfig(what));
        if !self.rootfs.is_absolute() {
            return bad(format!(
                "rootfs {} is not an absolute path",
                self.rootfs.display()
            ));
        }
        if !self.state_root.is_absolute() {
            return bad(format!(
                "state root {} is not an absolute path",
                self.state_root.display()
            ));
        }
        for (what, path) in [("rootfs", &self.rootfs), ("state root", &self.state_root)] {
            let s = path.to_string_lossy();
            if s.contains([',', ':', '\\', '\n']) {
                return bad(format!(
                    "{what} {}: overlayfs mount options cannot carry ',', ':', '\\' or newlines",
                    path.display()
                ));
            }
        }
        if self.hostname.is_empty()
            || self.hostname.len() > 64
            || !self
                .hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return bad(format!(
                "hostname {:?} is not a valid host name",
                self.hostname
            ));
        }
        self.limits.validate()?;
        self.process.validate()
    }
}

/// Resource limits of a sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// CPUs (cgroup cpu quota over a 100 ms period). Default 1.0.
    pub cpus: f64,
    /// Memory limit in bytes; swap is disabled (memory+swap = memory)
    /// where the host can account swap. Default 1 GiB.
    pub memory_bytes: u64,
    /// Maximum number of processes and threads. Default 512.
    pub pids: u64,
    /// Size of the scratch tmpfs holding the overlay upper directory and the
    /// workload's stdout/stderr. Default 512 MiB.
    pub scratch_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpus: 1.0,
            memory_bytes: 1 << 30,
            pids: 512,
            scratch_bytes: 512 << 20,
        }
    }
}

/// cgroup cpu period in microseconds.
pub(crate) const CPU_PERIOD_US: u64 = 100_000;

impl Limits {
    fn validate(&self) -> Result<(), SandboxError> {
        let bad = |what: String| Err(SandboxError::InvalidConfig(what));
        if !self.cpus.is_finite() || self.cpus < 0.01 || self.cpus > 4096.0 {
            return bad(format!("cpus {} is not between 0.01 and 4096", self.cpus));
        }
        if self.memory_bytes < (6 << 20) || self.memory_bytes > i64::MAX as u64 {
            return bad(format!(
                "memory limit {} bytes is below the minimum of 6 MiB or too large",
                self.memory_bytes
            ));
        }
        if self.pids < 2 || self.pids > i64::MAX as u64 {
            return bad(format!("pids limit {} is below 2 or too large", self.pids));
        }
        if self.scratch_bytes < (1 << 20) {
            return bad(format!(
                "scratch size {} bytes is below the minimum of 1 MiB",
                self.scratch_bytes
            ));
        }
        Ok(())
    }

    /// The cgroup cpu quota in microseconds per [`CPU_PERIOD_US`].
    pub(crate) fn cpu_quota_us(&self) -> i64 {
        // validated: 0.01 ..= 4096 CPUs → 1_000 ..= 409_600_000 µs
        (self.cpus * CPU_PERIOD_US as f64).round() as i64
    }
}

/// The container's init process, usually from the image config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessConfig {
    /// argv: the image ENTRYPOINT followed by CMD.
    pub args: Vec<String>,
    /// Environment variables, in order; later duplicates are dropped when
    /// the spec is written.
    pub env: Vec<(String, String)>,
    /// Working directory inside the container (absolute). Default `/`.
    pub cwd: String,
    /// The image config `User`: `uid`, `uid:gid`, `name`, `name:group` (or
    /// mixed); names are resolved against the rootfs `/etc/passwd` and
    /// `/etc/group`. `None` runs as root (0:0).
    pub user: Option<String>,
    /// How many leading `args` came from the image ENTRYPOINT;
    /// [`override_cmd`](Self::override_cmd) keeps them.
    pub entrypoint_len: usize,
}

impl ProcessConfig {
    /// The process an image config describes, as `docker run IMAGE` would
    /// start it: argv = entrypoint + cmd, env from `K=V` strings (a `PATH`
    /// is added when missing), cwd from the working dir (default `/`).
    pub fn from_image_config(
        entrypoint: &[String],
        cmd: &[String],
        env: &[String],
        working_dir: Option<&str>,
        user: Option<&str>,
    ) -> Self {
        let mut args = entrypoint.to_vec();
        args.extend_from_slice(cmd);
        let mut p = Self {
            args,
            env: Vec::new(),
            cwd: working_dir
                .filter(|d| !d.is_empty())
                .unwrap_or("/")
                .to_owned(),
            user: user.filter(|u| !u.is_empty()).map(str::to_owned),
            entrypoint_len: entrypoint.len(),
        };
        for kv in env {
            match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() => p.set_env(k, v),
                _ => tracing::warn!(entry = %kv, "ignoring image environment entry without KEY="),
            }
        }
        if !p.env.iter().any(|(k, _)| k == "PATH") {
            p.env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
        }
        p
    }

    /// Replaces the CMD part of argv and keeps the ENTRYPOINT, like
    /// `docker run IMAGE ARGV...`. To replace argv entirely, set
    /// [`args`](Self::args) (and `entrypoint_len = 0`).
    pub fn override_cmd(&mut self, argv: Vec<String>) {
        let keep = self.entrypoint_len.min(self.args.len());
        self.args.truncate(keep);
        self.entrypoint_len = keep;
        self.args.extend(argv);
    }

    /// Sets an environment variable, replacing an existing value in place.
    pub fn set_env(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key, value)),
        }
    }

    fn validate(&self) -> Result<(), SandboxError> {
        let bad = |what: String| Err(SandboxError::InvalidConfig(what));
        if self.args.is_empty() || self.args[0].is_empty() {
            return bad("process has no command (empty argv)".into());
        }
        if self.args.iter().any(|a| a.contains('\0')) {
            return bad("process argv contains a NUL byte".into());
        }
        if !self.cwd.starts_with('/') || self.cwd.contains('\0') {
            return bad(format!(
                "process working directory {:?} is not absolute",
                self.cwd
            ));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return bad(format!("environment variable {k:?} is not valid"));
            }
        }
        if let Some(u) = &self.user {
            if u.contains('\0') {
                return bad(format!("user {u:?} contains a NUL byte"));
            }
        }
        Ok(())
    }

    /// `K=V` strings, last value of a key wins at the key's first position.
    pub(crate) fn env_strings(&self) -> Vec<String> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.env {
            match out.iter_mut().find(|(ok, _)| ok == k) {
                Some(slot) => slot.1 = v.clone(),
                None => out.push((k.clone(), v.clone())),
            }
        }
        out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn image_config_becomes_process() {
        let p = ProcessConfig::from_image_config(
            &s(&["/docker-entrypoint.sh"]),
            &s(&["nginx", "-g", "daemon off;"]),
            &s(&["A=1", "B=x=y", "novalue", "A=2"]),
            Some(""),
            Some("www-data"),
        );
        assert_eq!(
            p.args,
            s(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"])
        );
        assert_eq!(p.entrypoint_len, 1);
        assert_eq!(p.cwd, "/");
        assert_eq!(p.user.as_deref(), Some("www-data"));
        assert_eq!(
            p.env,
            vec![
                ("PATH".into(), DEFAULT_PATH.into()),
                ("A".into(), "2".into()),
                ("B".into(), "x=y".into())
            ]
        );
    }

    #[test]
    fn override_cmd_keeps_entrypoint() {
        let mut p = ProcessConfig::from_image_config(
            &s(&["/entry"]),
            &s(&["a", "b"]),
            &s(&["PATH=/bin"]),
            Some("/srv"),
            None,
        );
        p.override_cmd(s(&["c"]));
        assert_eq!(p.args, s(&["/entry", "c"]));
        assert_eq!(p.cwd, "/srv");
        assert_eq!(p.env, vec![("PATH".into(), "/bin".into())]);
        p.set_env("PATH", "/usr/bin");
        p.set_env("X", "1");
        assert_eq!(p.env_strings(), s(&["PATH=/usr/bin", "X=1"]));
    }

    #[test]
    fn validation_rejects_bad_input() {
        let mut c = SandboxConfig::new("/r", ProcessConfig::default());
        assert!(c.validate().is_err(), "empty argv");
        c.process = ProcessConfig::from_image_config(&[], &s(&["sh"]), &[], None, None);
        c.validate().expect("valid");
        c.limits.cpus = f64::NAN;
        assert!(c.validate().is_err());
        c.limits = Limits::default();
        c.rootfs = "/a,b".into();
        assert!(c.validate().is_err());
        c.rootfs = "relative".into();
        assert!(c.validate().is_err());
        c.rootfs = "/r".into();
        c.hostname = "bad host".into();
        assert!(c.validate().is_err());
        c.hostname = "ok".into();
        c.process.cwd = "rel".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn cpu_quota() {
        let l = Limits {
            cpus: 1.5,
            ..Limits::default()
        };
        assert_eq!(l.cpu_quota_us(), 150_000);
    }
}
