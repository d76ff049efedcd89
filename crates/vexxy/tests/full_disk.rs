//! `vexxy serve` on a full disk: its data directory (SQLite database,
//! evidence directory) is a small tmpfs that the test fills to the last
//! block and empties again, while the same server process keeps running.
//!
//! Needs root (to mount the tmpfs): outside CI the test prints `SKIP`,
//! in CI it fails without it. It looks only at the server it started.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vexxy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vexxy"))
}

fn admin(data: &Path, args: &[&str]) -> Value {
    let out = vexxy()
        .args(["admin", "--json", "--data-dir"])
        .arg(data)
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

/// An answer of the server, and how long it took to come.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Header lines, lower-cased.
    headers: String,
    body: Value,
    took: Duration,
}

/// One request with curl (a client that is not vexxy's own).
fn call(method: &str, url: &str, key: &str, body: Option<&Value>) -> Answer {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "60", "-X", method])
        .args(["-H", &format!("authorization: Bearer {key}")]);
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary"])
            .arg(b.to_string());
    }
    let began = Instant::now();
    let out = cmd.arg(url).output().unwrap();
    let took = began.elapsed();
    assert!(
        out.status.success(),
        "curl {method} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {url}: no status in {head:?}"));
    Answer {
        status,
        headers: head.to_ascii_lowercase(),
        body: serde_json::from_str(rest).unwrap_or(Value::Null),
        took,
    }
}

/// Longest an answer may take while the disk is full: storage that
/// cannot write says so, it does not make clients wait.
const PROMPT: Duration = Duration::from_secs(5);

/// Fill the data directory's disk: `/readyz` answers 503 and
/// submissions 503 with `Retry-After`, promptly; stored jobs still read
/// back as they are, and a write that did not happen is not reported.
/// Free the space: the same process is ready again and takes work.
#[test]
fn a_full_data_directory_makes_serve_unready_and_it_recovers_without_a_restart() {
    if !vexxy_testkit::require_root("mounting a small tmpfs as the data directory") {
        return;
    }
    let fs = vexxy_testkit::Tmpfs::mount("48m");
    let data = fs.path().join("data");
    admin(&data, &["create-org", "acme", "--tier", "enterprise"]);
    let key = admin(&data, &["create-key", "acme"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut child = vexxy()
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--workers", "0"])
        .arg("--data-dir")
        .arg(&data)
        .args(["--min-free-space", "4m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Proc(child);
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("serve said {line:?}"))
        .to_owned();
    let submit = |image: &str| {
        call(
            "POST",
            &format!("{base}/api/v1/analysis/submit"),
            &key,
            Some(&json!({"image_ref": image})),
        )
    };
    let status = |id: &str| {
        call(
            "GET",
            &format!("{base}/api/v1/analysis/{id}/status"),
            &key,
            None,
        )
    };

    assert_eq!(
        call("GET", &format!("{base}/readyz"), &key, None).status,
        200
    );
    let queued = submit("registry.example/queued:1");
    assert_eq!(queued.status, 202, "{queued:?}");
    let queued = queued.body["job_id"].as_str().unwrap().to_owned();
    let cancelled = submit("registry.example/cancelled:1");
    assert_eq!(cancelled.status, 202, "{cancelled:?}");
    let cancelled = cancelled.body["job_id"].as_str().unwrap().to_owned();
    let answer = call(
        "DELETE",
        &format!("{base}/api/v1/analysis/{cancelled}"),
        &key,
        None,
    );
    assert_eq!(answer.status, 200, "{answer:?}");

    let filler = fs.fill();

    let ready = call("GET", &format!("{base}/readyz"), &key, None);
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.took < PROMPT, "{ready:?}");
    for _ in 0..3 {
        let refused = submit("registry.example/new:1");
        assert_eq!(refused.status, 503, "{refused:?}");
        assert!(refused.took < PROMPT, "{refused:?}");
        assert!(refused.headers.contains("retry-after:"), "{refused:?}");
    }
    // reads answer, promptly, with what is stored
    for _ in 0..3 {
        let st = status(&queued);
        assert_eq!(
            (st.status, &st.body["status"]),
            (200, &json!("queued")),
            "{st:?}"
        );
        assert!(st.took < PROMPT, "{st:?}");
        let st = status(&cancelled);
        assert_eq!(
            (st.status, &st.body["status"]),
            (200, &json!("cancelled")),
            "{st:?}"
        );
        let list = call("GET", &format!("{base}/api/v1/analysis"), &key, None);
        assert_eq!(
            (list.status, &list.body["total"]),
            (200, &json!(2)),
            "{list:?}"
        );
    }
    // a write on the full disk: whatever the answer, it is the truth
    let cancel = call(
        "DELETE",
        &format!("{base}/api/v1/analysis/{queued}"),
        &key,
        None,
    );
    assert!(cancel.took < PROMPT, "{cancel:?}");
    let want = match cancel.status {
        200 => "cancelled",
        503 => "queued",
        _ => panic!("cancel on a full disk: {cancel:?}"),
    };
    for _ in 0..3 {
        let st = status(&queued);
        assert_eq!(st.body["status"], want, "after {cancel:?}: {st:?}");
    }

    // space again: ready within seconds, the same process takes work
    std::fs::remove_file(filler).unwrap();
    let began = Instant::now();
    loop {
        let ready = call("GET", &format!("{base}/readyz"), &key, None);
        if ready.status == 200 {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "not ready 10 s after space returned: {ready:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let again = submit("registry.example/new:1");
    assert_eq!(again.status, 202, "{again:?}");
    let id = again.body["job_id"].as_str().unwrap();
    assert_eq!(status(id).body["status"], "queued");
    assert_eq!(status(&queued).body["status"], want);
    let mut server = server;
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "the server kept running throughout"
    );
}
