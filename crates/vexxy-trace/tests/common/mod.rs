//! Workloads in PID namespaces of their own, for the tracer's tests.
#![allow(dead_code)] // each test binary uses a part

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vexxy_trace::pid_namespace_inode;

/// A shell in a new PID namespace that waits for a line on stdin before
/// running `script`, so the tracer can be armed first.
pub(crate) struct Workload {
    child: Child,
    /// The shell's pid as the host sees it.
    pub(crate) inner_pid: u32,
}

impl Workload {
    pub(crate) fn spawn(script: &str) -> Self {
        let child = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "--", "/bin/sh", "-c"])
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn unshare");
        let deadline = Instant::now() + Duration::from_secs(5);
        let inner_pid = loop {
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
                    .unwrap_or_default();
            if let Some(pid) = children.split_whitespace().next() {
                break pid.parse().expect("pid");
            }
            assert!(Instant::now() < deadline, "unshare did not fork");
            std::thread::sleep(Duration::from_millis(5));
        };
        Self { child, inner_pid }
    }

    pub(crate) fn namespace(&self) -> u64 {
        pid_namespace_inode(self.inner_pid).expect("namespace inode")
    }

    /// Releases the script without waiting for it (its stdin closes).
    pub(crate) fn go(&mut self) {
        let mut stdin = self.child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("release workload");
    }

    /// Kills the namespace (`unshare --kill-child`) and reaps it.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn go_and_wait(mut self) {
        self.go();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "workload failed: {status}");
    }
}
