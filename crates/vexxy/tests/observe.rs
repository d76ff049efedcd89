//! Acceptance test of `vexxy observe`: a real containerd (with runc) on
//! this machine runs the nginx test image, imported with `ctr`; the real
//! binary observes it by label while the test drives HTTP traffic into it,
//! and its profile is compared with `vexxy analyze`'s sandboxed run of the
//! same image: the same libraries, and `vexxy reevaluate --profile` with
//! the observed profile gives the same verdicts as the analysis (the real
//! Grype report of the official nginx image in `../shared/testdata`).
//!
//! Needs root, runc, eBPF, containerd and the test images: where one is
//! missing the test prints `SKIP` outside CI and fails in CI.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use assert_cmd::Command;
use serde_json::Value;
use vexxy_testkit_host::Containerd;

mod verdicts;
use verdicts::{nginx_grype, read, statements};

fn vexxy() -> Command {
    let mut c = Command::cargo_bin("vexxy").expect("binary built");
    c.env("SOURCE_DATE_EPOCH", "1767225600");
    c
}

fn paths(profile: &Value, list: &str) -> BTreeSet<String> {
    profile["execution_profile"][list]
        .as_array()
        .unwrap_or_else(|| panic!("execution_profile.{list}"))
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_owned())
        .collect()
}

#[test]
fn observing_a_running_container_matches_a_sandboxed_run_of_its_image() {
    if !vexxy_testkit_host::require_trace() || !Containerd::available() {
        return;
    }
    let Some(dir) = vexxy_testkit_host::test_image("nginx") else {
        return;
    };
    let image_ref = format!("oci:{}:latest", dir.join("oci").display());
    let out = tempfile::tempdir().expect("tempdir");

    // the sandboxed analysis
    let analysed = out.path().join("analyze");
    vexxy()
        .args([
            "analyze",
            &image_ref,
            "-q",
            "--allow-report-mismatch",
            "--scan",
        ])
        .arg(nginx_grype())
        .arg("--out")
        .arg(&analysed)
        .assert()
        .success();
    let sandboxed = read(&analysed.join("profile.json"));

    // the same image in a real containerd, observed while it serves
    let me = std::process::id();
    let state = PathBuf::from(format!("/tmp/vx-ctr-{me}"));
    let namespace = format!("vexxy-observe-{me}");
    let mut containerd = Containerd::start(&state, &namespace);
    let name = "localhost/vexxy-test/nginx";
    containerd.import(&dir.join("image.oci.tar"), name);
    let label = format!("vexxy.test/run={me}");
    let pid = containerd.run(
        &format!("{name}:latest"),
        &format!("web-{me}"),
        &[("vexxy.test/run", &me.to_string())],
    );
    let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let up = vexxy_testkit_host::poll(Duration::from_secs(20), || {
        vexxy_testkit_host::in_netns(&netns, || vexxy_testkit_host::http_get(80).ok())
    });
    assert!(up.is_some(), "nginx did not answer in its container");

    let stop = AtomicBool::new(false);
    let served = AtomicU64::new(0);
    let profile_path = out.path().join("observed.json");
    std::thread::scope(|s| {
        s.spawn(|| {
            vexxy_testkit_host::in_netns(&netns, || {
                while !stop.load(Ordering::Relaxed) {
                    if vexxy_testkit_host::http_get(80).is_ok_and(|r| r.contains(" 200 ")) {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        });
        let res = vexxy()
            .args(["observe", "--label", &label, "--duration", "6s"])
            .arg("--containerd-address")
            .arg(containerd.address())
            .args(["--namespace", &namespace])
            .arg("--profile-out")
            .arg(&profile_path)
            .output()
            .expect("run vexxy observe");
        stop.store(true, Ordering::Relaxed);
        assert!(
            res.status.success(),
            "vexxy observe: {}",
            String::from_utf8_lossy(&res.stderr)
        );
    });
    let observed = read(&profile_path);
    println!(
        "observed run: {}; {} requests served during the observation",
        observed["run"],
        served.load(Ordering::Relaxed)
    );

    // marked as observed, tied to the image containerd runs
    let run = &observed["run"];
    assert_eq!(run["source"], "observed");
    assert_eq!(
        run["image_digest"].as_str(),
        Some(containerd.image_digest(&format!("{name}:latest")).as_str())
    );
    assert_eq!(run["image_digest"], sandboxed["run"]["image_digest"]);
    assert_eq!(run["spans"][0]["target"], format!("{namespace}/web-{me}"));
    assert!(run["duration_ms"].as_u64().unwrap() >= 6_000);
    // nginx's master and workers were running before the observer came:
    // their start-up is unseen, and the profile says so
    assert!(
        observed["lost_events"]["running_before_attach"]
            .as_u64()
            .is_some_and(|n| n >= 2),
        "{}",
        observed["lost_events"]
    );
    // the traffic was seen: accepted connections on port 80
    let accepted: u64 = observed["execution_profile"]["network_connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["op"] == "accept")
        .map(|n| n["ok"].as_u64().unwrap())
        .sum();
    assert!(accepted > 0, "no accepted connection was observed");

    // the libraries of the sandboxed run, though nginx loaded them long
    // before the observer attached
    let sandbox_libraries = paths(&sandboxed, "loaded_libraries");
    let observed_libraries = paths(&observed, "loaded_libraries");
    println!("libraries: {observed_libraries:?}");
    assert!(sandbox_libraries.contains("/usr/lib/x86_64-linux-gnu/libssl.so.3"));
    assert_eq!(
        observed_libraries, sandbox_libraries,
        "observed vs sandboxed libraries"
    );
    assert_eq!(
        paths(&observed, "executed_binaries"),
        paths(&sandboxed, "executed_binaries")
    );

    // the same container selected by its cgroup and by its pid
    let digest = run["image_digest"].as_str().unwrap().to_owned();
    let cgroup = container_cgroup(pid);
    for (flag, value) in [
        ("--cgroup", cgroup.display().to_string()),
        ("--pid", pid.to_string()),
    ] {
        let path = out.path().join(format!("by{flag}.json"));
        vexxy()
            .args(["observe", "-q", "--duration", "1s", flag, &value])
            .args(["--image-digest", &digest, "--profile-out"])
            .arg(&path)
            .assert()
            .success();
        let p = read(&path);
        assert_eq!(
            p["run"]["image_digest"].as_str(),
            Some(digest.as_str()),
            "{flag}"
        );
        assert_eq!(
            paths(&p, "loaded_libraries"),
            sandbox_libraries,
            "libraries observed by {flag} {value}"
        );
        let target = p["run"]["spans"][0]["target"].as_str().unwrap().to_owned();
        assert!(
            target.starts_with(&flag[2..]),
            "{flag}: span target {target}"
        );
    }

    // the same verdicts from the observed profile
    let reevaluated = out.path().join("reevaluate");
    vexxy()
        .args(["reevaluate", "-q", "--allow-report-mismatch", "--profile"])
        .arg(&profile_path)
        .args(["--image", &image_ref, "--scan"])
        .arg(nginx_grype())
        .arg("--out")
        .arg(&reevaluated)
        .assert()
        .success();
    let from_sandbox = statements(&read(&analysed.join("vex.openvex.json")));
    let from_production = statements(&read(&reevaluated.join("vex.openvex.json")));
    assert!(from_sandbox.len() > 50, "{} statements", from_sandbox.len());
    let status =
        |set: &BTreeSet<(String, String, String, String)>| -> BTreeSet<(String, String, String)> {
            set.iter()
                .map(|(v, p, s, _)| (v.clone(), p.clone(), s.clone()))
                .collect()
        };
    let (sandbox_status, production_status) = (status(&from_sandbox), status(&from_production));
    let only_sandbox: Vec<_> = sandbox_status.difference(&production_status).collect();
    let only_production: Vec<_> = production_status.difference(&sandbox_status).collect();
    assert!(
        only_sandbox.is_empty() && only_production.is_empty(),
        "verdicts differ:\nonly from the sandbox: {only_sandbox:#?}\nonly from production: {only_production:#?}"
    );
    // Seconds of production traffic weigh less than a sandbox window that
    // closed quiet (docs/confidence.md, "Production evidence"), so where
    // static and runtime evidence both say not_affected, the justification
    // of the stronger one may differ; it never changes a status.
    let changed: Vec<_> = from_sandbox.difference(&from_production).collect();
    println!(
        "{} statements, the same {} verdicts; justification chosen differently in {}: {changed:#?}",
        from_sandbox.len(),
        sandbox_status.len(),
        changed.len()
    );
    for (_, _, status, _) in &changed {
        assert_eq!(status, "not_affected", "{changed:#?}");
    }

    // several observations of one image merge: the sandbox run and the
    // production observation together, with both sources as spans
    let merged_dir = out.path().join("merged");
    vexxy()
        .args(["reevaluate", "-q", "--allow-report-mismatch", "--profile"])
        .arg(analysed.join("profile.json"))
        .arg("--profile")
        .arg(&profile_path)
        .args(["--image", &image_ref, "--scan"])
        .arg(nginx_grype())
        .arg("--out")
        .arg(&merged_dir)
        .assert()
        .success();
    let merged_profile = read(&merged_dir.join("profile.json"));
    let sources: Vec<&str> = merged_profile["run"]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        ["sandbox", "observed"],
        "{}",
        merged_profile["run"]
    );
    assert_eq!(
        status(&statements(&read(&merged_dir.join("vex.openvex.json")))),
        sandbox_status,
        "verdicts from the merged profile"
    );
    // a profile of another image does not merge: exit 2, naming the field
    let mut other = observed.clone();
    other["run"]["image_digest"] = Value::String(format!("sha256:{}", "0".repeat(64)));
    let other_path = out.path().join("other.json");
    std::fs::write(&other_path, other.to_string()).unwrap();
    let res = vexxy()
        .args(["reevaluate", "-q", "--allow-report-mismatch", "--profile"])
        .arg(&profile_path)
        .arg("--profile")
        .arg(&other_path)
        .args(["--image", &image_ref, "--scan"])
        .arg(nginx_grype())
        .arg("--out")
        .arg(out.path().join("refused"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("run.image_digest"), "{stderr}");
}

#[test]
fn observe_refuses_what_it_cannot_or_must_not_trace() {
    if !vexxy_testkit_host::require_tracer() || !Containerd::available() {
        return;
    }
    // a process of the observer's own (the host's) pid namespace
    let res = vexxy()
        .args(["observe", "-q", "--duration", "1s", "--pid"])
        .arg(std::process::id().to_string())
        .output()
        .expect("run vexxy observe");
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("own pid namespace"), "{stderr}");

    // a container containerd does not have
    let me = std::process::id();
    let state = PathBuf::from(format!("/tmp/vx-ctr-r{me}"));
    let namespace = format!("vexxy-refuse-{me}");
    let containerd = Containerd::start(&state, &namespace);
    let res = vexxy()
        .args(["observe", "-q", "--duration", "1s", "--container", "nosuch"])
        .arg("--containerd-address")
        .arg(containerd.address())
        .args(["--namespace", &namespace])
        .output()
        .expect("run vexxy observe");
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no running container nosuch"), "{stderr}");

    // containerd that is not there: the host's problem, named
    let res = vexxy()
        .args(["observe", "-q", "--duration", "1s", "--container", "x"])
        .args(["--containerd-address", "/nonexistent/containerd.sock"])
        .output()
        .expect("run vexxy observe");
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("/nonexistent/containerd.sock"), "{stderr}");
}

/// The directory of `pid`'s cgroup: the unified hierarchy's when the host
/// has one, else the v1 `pids` controller's.
fn container_cgroup(pid: u32) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    // lines are "ID:CONTROLLERS:PATH"; the unified hierarchy's has ID 0
    // and no controllers
    let path_of = |controllers: &str| {
        text.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, c, p) = (parts.next()?, parts.next()?, parts.next()?);
            (c == controllers).then(|| p.trim_start_matches('/').to_owned())
        })
    };
    let unified = Path::new("/sys/fs/cgroup/cgroup.procs").exists();
    let dir = match (unified, path_of(""), path_of("pids")) {
        (true, Some(p), _) => PathBuf::from("/sys/fs/cgroup").join(p),
        (_, _, Some(p)) => PathBuf::from("/sys/fs/cgroup/pids").join(p),
        _ => panic!("no cgroup of {pid} found in: {text}"),
    };
    assert!(dir.join("cgroup.procs").is_file(), "{}", dir.display());
    dir
}

#[test]
fn a_container_that_exits_while_observed_records_its_exit() {
    if !vexxy_testkit_host::require_trace() || !Containerd::available() {
        return;
    }
    let Some(dir) = vexxy_testkit_host::test_image("nginx") else {
        return;
    };
    let me = std::process::id();
    let namespace = format!("vexxy-exit-{me}");
    let mut containerd =
        Containerd::start(&PathBuf::from(format!("/tmp/vx-ctr-e{me}")), &namespace);
    let name = "localhost/vexxy-test/nginx";
    containerd.import(&dir.join("image.oci.tar"), name);
    let id = format!("brief-{me}");
    containerd.run_command(
        &format!("{name}:latest"),
        &id,
        &[],
        &[
            "/bin/sh",
            "-c",
            "sleep 2; cat /etc/os-release > /dev/null; exit 7",
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("brief.json");
    vexxy()
        .args(["observe", "-q", "--duration", "5s", "--container", &id])
        .arg("--containerd-address")
        .arg(containerd.address())
        .args(["--namespace", &namespace, "--profile-out"])
        .arg(&path)
        .assert()
        .success();
    let p = read(&path);
    assert_eq!(
        p["run"]["outcome"],
        serde_json::json!({"kind": "exited", "code": 7}),
        "{}",
        p["run"]
    );
    // what it did while watched is there: the program it ran and the file
    let executed = paths(&p, "executed_binaries");
    assert!(executed.iter().any(|e| e.ends_with("/cat")), "{executed:?}");
    assert!(
        paths(&p, "files_accessed").contains("/etc/os-release")
            || paths(&p, "files_accessed")
                .iter()
                .any(|f| f.ends_with("os-release")),
        "{:?}",
        paths(&p, "files_accessed")
    );
}
