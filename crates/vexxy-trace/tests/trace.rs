//! The tracer against real processes in a real PID namespace, with real
//! processes outside it doing the same things.
//!
//! Needs root and a kernel with BTF (`vexxy_testkit_host::require_tracer`):
//! `SKIP` outside CI where they are missing; CI runs as root on such a
//! kernel, so there a missing prerequisite is a failure.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use common::Workload;
use vexxy_testkit_host::{require_tracer, skip_or_fail};
use vexxy_trace::{RawTrace, TraceOptions, Tracer, UprobeRequest};

const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn trace(script: &str, options: TraceOptions, outside: impl FnOnce()) -> RawTrace {
    let workload = Workload::spawn(script);
    let tracer = Tracer::start(options).expect("tracer starts");
    tracer.arm(workload.namespace()).expect("arm");
    outside();
    workload.go_and_wait();
    tracer.finish().expect("finish")
}

#[test]
fn a_call_still_blocked_when_the_session_finishes_is_counted() {
    if !require_tracer() {
        return;
    }
    // syscalls are counted as they return: a sleep that outlasts the
    // session never does while it is armed
    let mut workload = Workload::spawn("exec sleep 30");
    let tracer = Tracer::start(TraceOptions::default()).expect("tracer starts");
    tracer.arm(workload.namespace()).expect("arm");
    workload.go();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let sleeping = loop {
        let state = std::fs::read_to_string(format!("/proc/{}/syscall", workload.inner_pid))
            .unwrap_or_default();
        if state.split_whitespace().next() == Some("230") || std::time::Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let raw = tracer.finish().expect("finish");
    workload.kill();
    assert!(
        sleeping.starts_with("230 "),
        "the workload never blocked in clock_nanosleep: {sleeping}"
    );
    assert_eq!(
        raw.syscalls.get("clock_nanosleep").copied(),
        Some(1),
        "{:?}",
        raw.syscalls
    );
}

#[test]
fn records_execs_opens_maps_failures_sockets_and_syscalls_of_the_namespace_only() {
    if !require_tracer() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let inside = dir.path().join("inside-marker");
    let outside = dir.path().join("outside-marker");
    std::fs::write(&inside, "in").unwrap();
    std::fs::write(&outside, "out").unwrap();
    let script = format!(
        "cat {inside} >/dev/null; cat /vexxy-no-such-file 2>/dev/null; \
         python3 -c 'import socket; s=socket.socket()\ntry: s.connect((\"127.0.0.1\", 9))\nexcept OSError: pass' ; true",
        inside = inside.display()
    );
    let outside_path = outside.clone();
    let raw = trace(&script, TraceOptions::default(), move || {
        // A host process touching its own marker while the tracer is armed.
        let status = Command::new("cat")
            .arg(&outside_path)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    });

    let inside = inside.display().to_string();
    let outside = outside.display().to_string();
    assert!(
        raw.opened.contains_key(&inside),
        "opened: {:#?}",
        raw.opened.keys().collect::<Vec<_>>()
    );
    assert!(
        !raw.opened.contains_key(&outside),
        "a host process leaked into the trace"
    );
    assert!(
        raw.executed.keys().any(|p| p.ends_with("/cat")),
        "executed: {:?}",
        raw.executed
    );
    assert!(raw.mapped.contains_key(LIBC), "mapped: {:?}", raw.mapped);
    assert!(
        raw.failed_opens
            .iter()
            .any(|f| f.name == "/vexxy-no-such-file"),
        "failed: {:?}",
        raw.failed_opens
    );
    let connect = raw
        .network
        .iter()
        .find(|n| {
            n.op == vexxy_model::SocketOp::Connect
                && n.address == vexxy_model::SocketAddress::Inet("127.0.0.1".parse().unwrap(), 9)
        })
        .unwrap_or_else(|| panic!("no connect to 127.0.0.1:9 in {:?}", raw.network));
    assert_eq!(connect.failed, 1, "connection refused counts as failed");
    assert!(
        raw.syscalls.get("openat").copied().unwrap_or(0) > 0,
        "{:?}",
        raw.syscalls
    );
    assert!(raw.syscalls.contains_key("execve"));
    // counted at exit: the exits that never return are counted as their
    // tasks exit, and a fork is the parent's call, not the child's too
    let count = |name: &str| raw.syscalls.get(name).copied().unwrap_or(0);
    let forks = count("clone") + count("clone3") + count("fork") + count("vfork");
    let created = raw.processes.iter().filter(|p| p.pid != 1).count() as u64;
    eprintln!("syscalls: {:?}; processes created: {created}", raw.syscalls);
    assert!(
        count("exit_group") >= created,
        "every process of the namespace left through exit_group: {:?}",
        raw.syscalls
    );
    assert_eq!(
        forks, created,
        "one clone per process created, counted once: {:?}",
        raw.syscalls
    );
    // the process tree: sh forks cat twice and python3
    let sh = raw
        .processes
        .iter()
        .find(|p| p.pid == 1)
        .expect("the namespace's init");
    assert_eq!(sh.ppid, 0);
    let children: Vec<_> = raw.processes.iter().filter(|p| p.ppid == 1).collect();
    assert!(children.len() >= 3, "{:#?}", raw.processes);
    assert!(
        children.iter().all(|c| c.exit_code.is_some()),
        "{:#?}",
        children
    );
    assert!(raw.lost.is_empty(), "{:?}", raw.lost);
}

#[test]
fn uprobes_count_calls_from_the_namespace_only() {
    if !require_tracer() {
        return;
    }
    if !Path::new(LIBC).exists() {
        skip_or_fail(format!("{LIBC} is not on this host (x86_64 Debian)"));
        return;
    }
    // A busy host process calling the same libc function the whole time.
    let mut busy = KillOnDrop(
        Command::new("python3")
            .args(["-c", "import os\nwhile True: os.getppid()"])
            .spawn()
            .expect("spawn busy python"),
    );
    std::thread::sleep(Duration::from_millis(200));
    let options = TraceOptions {
        uprobes: vec![
            UprobeRequest {
                host_path: LIBC.into(),
                library: LIBC.into(),
                symbol: "getppid".into(),
                offset: None,
            },
            UprobeRequest {
                host_path: LIBC.into(),
                library: LIBC.into(),
                symbol: "inotify_init".into(),
                offset: None,
            },
            UprobeRequest {
                host_path: LIBC.into(),
                library: LIBC.into(),
                symbol: "no_such_symbol".into(),
                offset: None,
            },
        ],
        ..TraceOptions::default()
    };
    let raw = trace(
        "python3 -c 'import os\nfor _ in range(5000): os.getppid()'",
        options,
        || std::thread::sleep(Duration::from_millis(300)),
    );
    busy.0.kill().unwrap();
    busy.0.wait().unwrap();

    let calls = |symbol: &str| {
        raw.functions
            .iter()
            .find(|f| f.symbol == symbol)
            .map(|f| f.calls)
    };
    let getppid = calls("getppid").expect("getppid requested");
    // 5000 from the loop plus the few the interpreter makes itself; the busy
    // host process makes millions in the same window.
    assert!(
        (5000..5200).contains(&getppid),
        "getppid calls from the namespace: {getppid}"
    );
    assert_eq!(calls("inotify_init"), Some(0), "probed but never called");
    assert_eq!(calls("no_such_symbol"), Some(0));
    assert_eq!(raw.info.uprobes_attached, 2);
    assert!(
        raw.info
            .uprobe_errors
            .iter()
            .any(|e| e.contains("no_such_symbol")),
        "{:?}",
        raw.info.uprobe_errors
    );
}

#[test]
fn uprobes_attach_at_an_explicit_offset() {
    // what a stripped Go binary needs: the offset comes from its pclntab,
    // the name from the advisory, and no ELF symbol table has either
    if !require_tracer() {
        return;
    }
    if !Path::new(LIBC).exists() {
        skip_or_fail(format!("{LIBC} is not on this host (x86_64 Debian)"));
        return;
    }
    let offset = vexxy_trace::SymbolTable::read(Path::new(LIBC))
        .unwrap()
        .offset("getppid")
        .expect("getppid in libc");
    let options = TraceOptions {
        uprobes: vec![UprobeRequest {
            host_path: LIBC.into(),
            library: LIBC.into(),
            symbol: "parent.pid.by.offset".into(),
            offset: Some(offset),
        }],
        ..TraceOptions::default()
    };
    let raw = trace(
        "python3 -c 'import os\nfor _ in range(3000): os.getppid()'",
        options,
        || std::thread::sleep(Duration::from_millis(300)),
    );
    let calls = raw
        .functions
        .iter()
        .find(|f| f.symbol == "parent.pid.by.offset")
        .map(|f| f.calls)
        .expect("requested");
    assert!(
        (3000..3200).contains(&calls),
        "calls at the offset: {calls}"
    );
    assert_eq!(raw.info.uprobes_attached, 1, "{:?}", raw.info.uprobe_errors);
}

#[test]
fn an_unarmed_tracer_records_nothing() {
    if !require_tracer() {
        return;
    }
    let tracer = Tracer::start(TraceOptions::default()).expect("tracer starts");
    let status = Command::new("cat")
        .arg("/etc/hostname")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let raw = tracer.finish().unwrap();
    assert!(
        raw.opened.is_empty() && raw.executed.is_empty() && raw.syscalls.is_empty(),
        "{raw:?}"
    );
    assert!(
        raw.info.startup_ms < 5_000,
        "startup {} ms",
        raw.info.startup_ms
    );
}

/// A connect or bind that succeeded is read from the socket the kernel
/// made, not from the caller's buffer (which another thread could rewrite
/// while the call runs); a unix socket's bound path too.
#[test]
fn successful_connects_and_binds_are_read_from_the_socket() {
    if !require_tracer() {
        return;
    }
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let unix = dir.path().join("s.sock");
    let script = format!(
        "python3 -c 'import socket\nl=socket.socket(); l.bind((\"127.0.0.1\", {port})); l.listen()\n\
         c=socket.socket(); c.connect((\"127.0.0.1\", {port}))\n\
         u=socket.socket(socket.AF_UNIX); u.bind(\"{unix}\")'",
        unix = unix.display()
    );
    let raw = trace(&script, TraceOptions::default(), || {});
    let find = |op: vexxy_model::SocketOp, address: vexxy_model::SocketAddress| {
        raw.network
            .iter()
            .find(|n| n.op == op && n.address == address)
            .unwrap_or_else(|| panic!("no {op:?} of {address:?} in {:#?}", raw.network))
            .clone()
    };
    let inet = vexxy_model::SocketAddress::Inet("127.0.0.1".parse().unwrap(), port);
    assert_eq!(find(vexxy_model::SocketOp::Bind, inet.clone()).ok, 1);
    assert_eq!(find(vexxy_model::SocketOp::Connect, inet).ok, 1);
    let path = vexxy_model::SocketAddress::Unix(unix.display().to_string());
    assert_eq!(find(vexxy_model::SocketOp::Bind, path).ok, 1);
    assert!(raw.lost.is_empty(), "{:?}", raw.lost);
}
