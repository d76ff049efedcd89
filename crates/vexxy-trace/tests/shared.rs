//! Several sessions on one set of programs: each sees only its own
//! sandbox, uprobes on the same function are attached once and counted per
//! session, and the last session to finish leaves no program behind.
//!
//! One test in its own binary (so its own process), because it counts the
//! BPF programs the process holds. Needs root and BTF, like `trace.rs`.

use std::time::{Duration, Instant};

mod common;

use common::Workload;
use vexxy_testkit_host::require_tracer;
use vexxy_trace::diagnostics::{held_program_ids, loaded_program_ids};
use vexxy_trace::{
    active_sessions, pid_namespace_inode, EvidenceMark, RawTrace, TraceOptions, Tracer,
    UprobeRequest,
};

const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";

fn getppid_probe() -> TraceOptions {
    TraceOptions {
        uprobes: vec![UprobeRequest {
            host_path: LIBC.into(),
            library: LIBC.into(),
            symbol: "getppid".into(),
            offset: None,
        }],
        ..TraceOptions::default()
    }
}

/// Traces `script` in its own namespace on a session of the shared
/// programs; returns the trace and the evidence marks before and after.
fn traced(script: &str, started: &std::sync::Barrier) -> (RawTrace, EvidenceMark, EvidenceMark) {
    let workload = Workload::spawn(script);
    let tracer = Tracer::start(getppid_probe()).expect("tracer starts");
    tracer
        .arm(pid_namespace_inode(workload.inner_pid).expect("namespace"))
        .expect("arm");
    // both sessions are live before either workload runs
    started.wait();
    let before = tracer.evidence();
    workload.go_and_wait();
    // the hub drains every 50 ms
    std::thread::sleep(Duration::from_millis(200));
    let after = tracer.evidence();
    started.wait();
    (tracer.finish().expect("finish"), before, after)
}

#[test]
fn concurrent_sessions_share_programs_and_see_only_their_own_sandbox() {
    if !require_tracer() {
        return;
    }
    let me = std::process::id();
    assert!(held_program_ids(me).is_empty(), "no session yet");
    let dir = tempfile::tempdir().unwrap();
    let (a_file, b_file) = (dir.path().join("a-marker"), dir.path().join("b-marker"));
    std::fs::write(&a_file, "a").unwrap();
    std::fs::write(&b_file, "b").unwrap();
    let script = |file: &std::path::Path, calls: u32| {
        format!(
            "cat {} >/dev/null; python3 -c 'import os\nfor _ in range({calls}): os.getppid()'",
            file.display()
        )
    };
    let (a_script, b_script) = (script(&a_file, 3000), script(&b_file, 7000));

    // One session alone: the programs it holds.
    let alone = Tracer::start(TraceOptions::default()).expect("tracer starts");
    let one_set = held_program_ids(me);
    assert!(!one_set.is_empty(), "a session holds the programs");
    assert_eq!(active_sessions(), 1);

    let barrier = std::sync::Barrier::new(3);
    let (a, b, during) = std::thread::scope(|s| {
        let a = s.spawn(|| traced(&a_script, &barrier));
        let b = s.spawn(|| traced(&b_script, &barrier));
        barrier.wait();
        let during = (held_program_ids(me), active_sessions());
        barrier.wait();
        (a.join().unwrap(), b.join().unwrap(), during)
    });
    assert_eq!(during.1, 3, "three sessions at once");
    assert_eq!(
        during.0, one_set,
        "three sessions hold the same programs as one (the uprobe link adds none)"
    );
    alone.finish().expect("finish the idle session");

    let (a, a_before, a_after) = a;
    let (b, b_before, b_after) = b;
    for (raw, mine, theirs, calls) in [(&a, &a_file, &b_file, 3000), (&b, &b_file, &a_file, 7000)] {
        let (mine, theirs) = (mine.display().to_string(), theirs.display().to_string());
        assert!(raw.opened.contains_key(&mine), "{:?}", raw.opened.keys());
        assert!(
            !raw.opened.contains_key(&theirs),
            "another session's file leaked in"
        );
        let getppid = raw.functions[0].calls;
        assert!(
            (calls..calls + 200).contains(&getppid),
            "getppid counted {getppid}, expected about {calls}"
        );
        assert_eq!(raw.info.uprobes_attached, 1);
        assert!(raw.lost.is_empty(), "{:?}", raw.lost);
    }
    for (before, after) in [(a_before, a_after), (b_before, b_after)] {
        assert_eq!(before.count, 0, "nothing ran before the release");
        assert!(after.count >= 4, "exec, files, maps, the probe: {after:?}");
        assert!(after.last.is_some());
    }

    // The last session took the programs with it.
    assert_eq!(active_sessions(), 0);
    assert!(held_program_ids(me).is_empty(), "programs left held");
    // the kernel frees a program after an RCU grace period: give it time
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut loaded = loaded_program_ids();
    while !one_set.is_disjoint(&loaded) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        loaded = loaded_program_ids();
    }
    assert!(
        one_set.is_disjoint(&loaded),
        "programs {:?} still loaded",
        one_set.intersection(&loaded).collect::<Vec<_>>()
    );

    // A new session after that loads them again and works.
    let workload = Workload::spawn(&script(&a_file, 10));
    let tracer = Tracer::start(TraceOptions::default()).expect("tracer restarts");
    tracer
        .arm(pid_namespace_inode(workload.inner_pid).unwrap())
        .unwrap();
    workload.go_and_wait();
    let raw = tracer.finish().unwrap();
    assert!(raw.opened.contains_key(&a_file.display().to_string()));
}
