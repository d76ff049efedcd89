//! What the binary's service tests share: the `vexxy` binary, a child
//! process killed when dropped, `vexxy serve` on a free port, and `vexxy
//! admin --json`.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command as StdCommand, Stdio},
    time::{Duration, Instant},
};

use assert_cmd::cargo::CommandCargoExt as _;
use serde_json::Value;

pub(crate) fn vexxy() -> StdCommand {
    StdCommand::cargo_bin("vexxy").unwrap()
}

/// A child process killed when dropped.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub(crate) fn terminate(&mut self) {
        let _ = StdCommand::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "process {} did not stop within 30 s of SIGTERM",
            self.0.id()
        );
    }
}

/// `vexxy serve` with `args`; returns it and its base URL.
pub(crate) fn serve(args: &[&str], env: &[(&str, &str)]) -> (Proc, String) {
    let mut cmd = vexxy();
    cmd.arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("serve said {line:?}"))
        .to_owned();
    (Proc(child), url)
}

pub(crate) fn admin(db: &[&str], args: &[&str]) -> Value {
    let out = vexxy()
        .arg("admin")
        .arg("--json")
        .args(db)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
