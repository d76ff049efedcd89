//! Acceptance test of protocol-aware exercise: the real `vexxy` binary runs
//! the `redis` test image (Debian's redis-server, which speaks RESP, not
//! HTTP) in the sandbox twice — with the exercisers off (the port-open
//! check only) and on — and the second profile records a RESP probe that
//! reached the server's commands, and more evidence than the first.
//!
//! Needs root, runc, eBPF and the test images: where one is missing the test
//! prints `SKIP` outside CI and fails in CI (`vexxy_testkit_host`'s gates).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn vexxy() -> Command {
    Command::cargo_bin("vexxy").expect("binary built")
}

/// Runs `vexxy run image …extra -o out`; returns the profile.
fn run(image: &str, out: &Path, extra: &[&str]) -> Value {
    let assert = vexxy()
        .args(["run", image, "--duration", "10s", "-o"])
        .arg(out)
        .args(extra)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    println!("vexxy run {image} {extra:?}:\n{stderr}");
    serde_json::from_slice(&std::fs::read(out).expect("profile written")).expect("profile json")
}

fn syscalls(p: &Value) -> BTreeMap<String, u64> {
    p["execution_profile"]["syscalls"]
        .as_object()
        .expect("syscalls")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect()
}

fn files(p: &Value) -> BTreeSet<String> {
    p["execution_profile"]["files_accessed"]
        .as_array()
        .expect("files_accessed")
        .iter()
        .filter_map(|f| f["path"].as_str().map(str::to_owned))
        .collect()
}

/// Successful `accept`s the workload made.
fn accepts(p: &Value) -> u64 {
    p["execution_profile"]["network_connections"]
        .as_array()
        .expect("network_connections")
        .iter()
        .filter(|n| n["op"] == "accept")
        .map(|n| n["ok"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn redis_gets_a_resp_probe_that_reaches_its_commands() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(dir) = vexxy_testkit_host::test_image("redis") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let image = format!("oci:{}:latest", dir.join("oci").display());

    let plain = run(
        &image,
        &work.path().join("plain.json"),
        &["--no-http-probe"],
    );
    let probed = run(&image, &work.path().join("probed.json"), &[]);
    vexxy_profile::read(&work.path().join("probed.json")).expect("profile reads back");

    assert!(
        plain["exercise"].get("probes").is_none(),
        "{}",
        plain["exercise"]
    );
    let probes = probed["exercise"]["probes"].as_array().expect("probes");
    println!(
        "probes: {}",
        serde_json::to_string_pretty(probes).unwrap_or_default()
    );
    let resp: Vec<&Value> = probes.iter().filter(|p| p["protocol"] == "resp").collect();
    assert_eq!(resp.len(), 1, "{probes:?}");
    assert_eq!(resp[0]["port"], 6379);
    assert_eq!(resp[0]["reach"], "commands", "{:?}", resp[0]);
    assert_eq!(resp[0]["requests"], 6);
    assert_eq!(resp[0]["answered"], 6);
    assert_eq!(
        resp[0]["outcome"],
        "PING answered; commands answered: INFO, SET, GET, DEL, COMMAND COUNT"
    );

    // the reach: what the probed run shows beyond the port-open check
    let (before, after) = (syscalls(&plain), syscalls(&probed));
    let more: BTreeMap<&String, (u64, u64)> = after
        .iter()
        .filter(|(name, n)| before.get(*name).copied().unwrap_or(0) < **n)
        .map(|(name, n)| (name, (before.get(name).copied().unwrap_or(0), *n)))
        .collect();
    let new_syscalls: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let new_files: Vec<String> = files(&probed).difference(&files(&plain)).cloned().collect();
    println!(
        "accepts: {} → {}\nsyscall kinds: {} → {} (new: {new_syscalls:?})\nsyscalls counted more often: {more:?}\nfiles only the probed run opened: {new_files:?}\nsyscall total: {} → {}",
        accepts(&plain),
        accepts(&probed),
        before.len(),
        after.len(),
        before.values().sum::<u64>(),
        after.values().sum::<u64>(),
    );
    assert!(
        accepts(&probed) > accepts(&plain),
        "accepts {} vs {}",
        accepts(&probed),
        accepts(&plain)
    );
    // INFO made the server call what only a command runs (`getrusage`,
    // `uname` for its CPU and OS sections): new syscall kinds
    assert!(!new_syscalls.is_empty(), "no new syscall kinds");
    assert!(
        after.contains_key("getrusage") && !before.contains_key("getrusage"),
        "{new_syscalls:?}"
    );
    // the server read and wrote on its connections: a port-open check
    // makes it read nothing
    let io = |m: &BTreeMap<String, u64>| {
        ["read", "write", "recvfrom", "sendto", "writev"]
            .iter()
            .map(|k| m.get(*k).copied().unwrap_or(0))
            .sum::<u64>()
    };
    assert!(
        io(&after) > io(&before),
        "socket io {} vs {}",
        io(&after),
        io(&before)
    );
}
