//! What the binary's service tests share: the `vexxy` binary, a child
//! process killed when dropped, `vexxy serve` on a free port, and `vexxy
//! admin --json`, and the API called with curl.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    io::{BufRead as _, BufReader, Write as _},
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

/// A service's home in a temporary directory: its data directory and a
/// server secret key file (mode 0600, `key_byte` repeated) beside it.
/// Returns the directory (dropped: removed) and both paths as flags take them.
pub(crate) fn service_dir(key_byte: &str) -> (tempfile::TempDir, String, String) {
    use std::os::unix::fs::PermissionsExt as _;
    let data = tempfile::tempdir().unwrap();
    let secret = data.path().join("server.key");
    std::fs::write(&secret, key_byte.repeat(32)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let data_dir = data.path().join("data").display().to_string();
    let secret_arg = secret.display().to_string();
    (data, data_dir, secret_arg)
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

/// `curl` with the key: (HTTP status, body).
pub(crate) fn call(method: &str, url: &str, key: &str, body: Option<&[u8]>) -> (u16, Vec<u8>) {
    let mut cmd = StdCommand::new("curl");
    cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}"])
        .args(["-H", &format!("authorization: Bearer {key}")]);
    if body.is_some() {
        cmd.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    cmd.arg(url).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(b) = body {
            stdin.write_all(b).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = out.stdout;
    let split = text.iter().rposition(|b| *b == b'\n').unwrap();
    let code = std::str::from_utf8(&text[split + 1..])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (code, text[..split].to_vec())
}

pub(crate) fn get(url: &str, key: &str) -> Value {
    let (code, body) = call("GET", url, key, None);
    assert_eq!(code, 200, "GET {url}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

pub(crate) fn post(url: &str, key: &str, body: &Value) -> (u16, Value) {
    let (code, out) = call("POST", url, key, Some(&serde_json::to_vec(body).unwrap()));
    (code, serde_json::from_slice(&out).unwrap_or(Value::Null))
}

pub(crate) fn wait_complete(base: &str, key: &str, id: &str, limit: Duration) -> Value {
    let began = Instant::now();
    loop {
        let st = get(&format!("{base}/api/v1/analysis/{id}/status"), key);
        if st["status"] == "complete" {
            return st;
        }
        assert!(
            !matches!(st["status"].as_str(), Some("failed" | "cancelled")),
            "job {id}: {st}"
        );
        assert!(began.elapsed() < limit, "job {id} not complete: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (up to `limit`) until the image's VEX is at `version` (issued
/// right after the job that decided it completes); the image.
pub(crate) fn wait_vex_version(
    base: &str,
    key: &str,
    digest: &str,
    version: i64,
    limit: Duration,
) -> Value {
    let began = Instant::now();
    loop {
        let image = get(&format!("{base}/api/v1/images/{digest}"), key);
        if image["vex_version"].as_i64() >= Some(version) {
            return image;
        }
        assert!(
            began.elapsed() < limit,
            "the VEX of {digest} is not at version {version}: {image}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
