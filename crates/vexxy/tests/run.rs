//! Acceptance tests of `vexxy run`: the real binary runs the real nginx
//! test image (OCI layout built by `scripts/build-test-images.sh`) in the
//! sandbox, traced, and writes its execution profile.
//!
//! Needs root, runc, eBPF and the test images: where one is missing a test
//! prints `SKIP` outside CI and fails in CI (`vexxy_testkit_host`'s gates).

use std::{
    collections::BTreeSet,
    io::Read as _,
    path::Path,
    process::{Command as StdCommand, Output, Stdio},
    time::{Duration, Instant},
};

use assert_cmd::{cargo::CommandCargoExt as _, Command};
use serde_json::Value;

fn vexxy() -> Command {
    Command::cargo_bin("vexxy").expect("binary built")
}

/// The tests of this file run one at a time: traced runs on two cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one `vexxy` process did: its output, the sandboxes it owned while
/// it ran (as far as polling saw) and those it left behind. Only its own
/// sandboxes are looked at (their owner records name its pid), so other
/// vexxy processes on the host do not matter.
struct Watched {
    out: Output,
    seen: BTreeSet<String>,
    left: Vec<String>,
}

/// Runs `vexxy args…` to its end, watching its sandboxes.
fn run_watched(args: &[&std::ffi::OsStr]) -> Watched {
    let state_root = Path::new("/run/vexxy");
    let mut child = StdCommand::cargo_bin("vexxy")
        .expect("binary built")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vexxy");
    let pid = child.id();
    let (mut stdout, mut stderr) = (
        child.stdout.take().expect("piped stdout"),
        child.stderr.take().expect("piped stderr"),
    );
    let (seen, status, out, err) = std::thread::scope(|s| {
        let out = s.spawn(move || {
            let mut b = Vec::new();
            stdout.read_to_end(&mut b).expect("stdout");
            b
        });
        let err = s.spawn(move || {
            let mut b = Vec::new();
            stderr.read_to_end(&mut b).expect("stderr");
            b
        });
        let mut seen = BTreeSet::new();
        let status = loop {
            seen.extend(vexxy_testkit_host::sandboxes_owned_by(state_root, &[pid]));
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        (
            seen,
            status,
            out.join().expect("stdout reader"),
            err.join().expect("stderr reader"),
        )
    });
    Watched {
        out: Output {
            status,
            stdout: out,
            stderr: err,
        },
        seen,
        left: vexxy_testkit_host::sandboxes_owned_by(state_root, &[pid]),
    }
}

#[test]
fn nginx_runs_a_fixed_30s_window_traced_and_torn_down_within_40s() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let _g = serial();
    let Some(dir) = vexxy_testkit_host::test_image("nginx") else {
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
    let run = run_watched(&[
        "run".as_ref(),
        image.as_ref(),
        "--fixed-window".as_ref(),
        "--duration".as_ref(),
        "30s".as_ref(),
        "-o".as_ref(),
        profile.as_os_str(),
    ]);
    let out = &run.out;
    let wall = began.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vexxy run failed: {stderr}");
    println!("vexxy run nginx --fixed-window --duration 30s: {wall:?} wall\n{stderr}");
    assert!(wall <= Duration::from_secs(40), "took {wall:?}");
    assert!(
        wall >= Duration::from_secs(30),
        "the window was not observed: {wall:?}"
    );
    assert!(stderr.contains("teardown: clean"), "{stderr}");
    assert!(
        stderr.contains("window: fixed, closed at the maximum"),
        "{stderr}"
    );
    assert_eq!(run.seen.len(), 1, "its sandboxes: {:?}", run.seen);
    assert!(run.left.is_empty(), "sandboxes left: {:?}", run.left);

    let p: Value = serde_json::from_slice(&std::fs::read(&profile).expect("profile written"))
        .expect("profile json");
    assert_eq!(p["schema"], vexxy_profile::SCHEMA);
    assert_eq!(p["run"]["window"]["mode"], "fixed", "{}", p["run"]);
    assert_eq!(p["run"]["window"]["ended"], "maximum", "{}", p["run"]);
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
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let _g = serial();
    let Some(dir) = vexxy_testkit_host::test_image("nginx") else {
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
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let _g = serial();
    let Some(dir) = vexxy_testkit_host::test_image("nginx") else {
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
            &["--quiet-period", "100ms"],
            "--quiet-period 100ms: window quiet period 100 ms is below the 500 ms floor",
        ),
        (
            &["--min-duration", "1m", "--duration", "30s"],
            "--min-duration 1m is longer than --duration 30s",
        ),
        (
            &["--fixed-window", "--quiet-period", "5s"],
            "cannot be used with",
        ),
        (
            &["--test-script", "/no/such/script.sh"],
            "/no/such/script.sh",
        ),
    ];
    for (flags, needle) in cases {
        let args: Vec<&std::ffi::OsStr> = ["run", image.as_str(), "-q"]
            .iter()
            .chain(flags.iter())
            .map(|a| std::ffi::OsStr::new(*a))
            .chain(["-o".as_ref(), out_file.as_os_str()])
            .collect();
        let run = run_watched(&args);
        let stderr = String::from_utf8_lossy(&run.out.stderr);
        assert_eq!(run.out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(needle), "{flags:?}: {stderr}");
        assert!(!out_file.exists(), "{flags:?} left a profile");
        assert!(
            run.seen.is_empty() && run.left.is_empty(),
            "{flags:?} created a sandbox: {:?}",
            run.seen
        );
    }
}

#[test]
fn without_root_it_exits_4_saying_so() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let _g = serial();
    if vexxy_testkit_host::require_program("setpriv", "util-linux").is_none() {
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
