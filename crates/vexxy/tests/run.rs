//! Acceptance tests of `vexxy run`: the real binary runs the real nginx
//! test image (OCI layout built by `scripts/build-test-images.sh`) in the
//! sandbox, traced, and writes its execution profile.
//!
//! Needs root, runc and eBPF; prints `SKIP:` and passes where one cannot
//! exist (not root). A missing test image fails in CI.

use std::{
    path::PathBuf,
    process::Command as StdCommand,
    time::{Duration, Instant},
};

use assert_cmd::Command;
use serde_json::Value;

fn vexxy() -> Command {
    Command::cargo_bin("vexxy").expect("binary built")
}

fn can_run() -> bool {
    !vexxy_testkit::cannot_trace()
}

/// The tests of this file run one at a time: they count sandboxes.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn sandboxes_left() -> Vec<PathBuf> {
    std::fs::read_dir("/run/vexxy/sandboxes")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn nginx_runs_30s_traced_and_torn_down_within_40s() {
    if !can_run() {
        return;
    }
    let _g = serial();
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let profile = work.path().join("profile.json");
    let image = format!("oci:{}:latest", dir.join("oci").display());
    // unpack once beforehand: the 40 s budget is for the run itself
    vexxy()
        .args(["run", &image, "--duration", "1s", "-q", "-o"])
        .arg(work.path().join("warm.json"))
        .assert()
        .success();

    let began = Instant::now();
    let out = vexxy()
        .args(["run", &image, "--duration", "30s", "-o"])
        .arg(&profile)
        .output()
        .expect("run vexxy");
    let wall = began.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vexxy run failed: {stderr}");
    println!("vexxy run nginx --duration 30s: {wall:?} wall\n{stderr}");
    assert!(wall <= Duration::from_secs(40), "took {wall:?}");
    assert!(
        wall >= Duration::from_secs(30),
        "the window was not observed: {wall:?}"
    );
    assert!(stderr.contains("teardown: clean"), "{stderr}");
    assert!(sandboxes_left().is_empty(), "{:?}", sandboxes_left());

    let p: Value = serde_json::from_slice(&std::fs::read(&profile).expect("profile written"))
        .expect("profile json");
    assert_eq!(p["schema"], vexxy_profile::SCHEMA);
    let libs: Vec<&str> = p["execution_profile"]["loaded_libraries"]
        .as_array()
        .expect("loaded_libraries")
        .iter()
        .filter_map(|l| l["path"].as_str())
        .collect();
    assert!(libs.iter().any(|l| l.contains("libssl.so")), "{libs:?}");
    assert!(!libs.iter().any(|l| l.contains("libtiff")), "{libs:?}");
    assert_eq!(
        p["run"]["outcome"]["kind"]
            .as_str()
            .or(p["run"]["outcome"].as_str()),
        Some("stopped_at_end"),
        "{}",
        p["run"]
    );
    assert!(
        p["exercise"]["http_requests"].as_u64().unwrap_or(0) >= 5,
        "{}",
        p["exercise"]
    );
    // the document reads back through the library, schema and all
    vexxy_profile::read(&profile).expect("profile reads back");
}

#[test]
fn a_command_override_runs_to_its_exit() {
    if !can_run() {
        return;
    }
    let _g = serial();
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let image = format!("oci:{}:latest", dir.join("oci").display());
    let out = vexxy()
        .args([
            "run",
            &image,
            "-q",
            "--duration",
            "20s",
            "--entrypoint",
            "sh -c",
            "--cmd",
            "'echo hi; ls /etc/nginx >/dev/null; exit 0'",
        ])
        .output()
        .expect("run vexxy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: Value = serde_json::from_slice(&out.stdout).expect("profile on stdout");
    let exes: Vec<&str> = p["execution_profile"]["executed_binaries"]
        .as_array()
        .expect("executed_binaries")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(exes.iter().any(|e| e.ends_with("/ls")), "{exes:?}");
    assert!(
        !exes.iter().any(|e| e.ends_with("/nginx")),
        "the entrypoint's nginx ran: {exes:?}"
    );
    // the image exposes port 80, which nothing opens: the exit ends the wait
    assert_eq!(p["run"]["outcome"]["kind"], "exited", "{}", p["run"]);
    assert!(
        p["run"]["duration_ms"].as_u64().unwrap_or(u64::MAX) < 10_000,
        "{}",
        p["run"]
    );
}

#[test]
fn bad_flags_exit_2_before_running_anything() {
    if !can_run() {
        return;
    }
    let _g = serial();
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let image = format!("oci:{}:latest", dir.join("oci").display());
    let work = tempfile::tempdir().expect("tempdir");
    let out_file = work.path().join("p.json");
    let cases: &[(&[&str], &str)] = &[
        (&["--uprobe", "libc.so.6"], "--uprobe"),
        (&["--memory", "lots"], "size \"lots\""),
        (&["--duration", "400s"], "timeout"),
        (&["--timeout", "901s"], "timeout 901 s"),
        (&["--env", "=x"], "--env"),
        (
            &["--test-script", "/no/such/script.sh"],
            "/no/such/script.sh",
        ),
    ];
    for (flags, needle) in cases {
        let out = vexxy()
            .args(["run", &image, "-q"])
            .args(*flags)
            .arg("-o")
            .arg(&out_file)
            .output()
            .expect("run vexxy");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(needle), "{flags:?}: {stderr}");
        assert!(!out_file.exists(), "{flags:?} left a profile");
    }
    assert!(sandboxes_left().is_empty(), "{:?}", sandboxes_left());
}

#[test]
fn without_root_it_exits_4_saying_so() {
    if !can_run() {
        return;
    }
    let _g = serial();
    if StdCommand::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIP: setpriv (util-linux) is not installed");
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin("vexxy");
    let out = StdCommand::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["run", "dir:/nonexistent", "-q"])
        .env("HOME", "/tmp")
        .output()
        .expect("run setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("root"), "{stderr}");
}
