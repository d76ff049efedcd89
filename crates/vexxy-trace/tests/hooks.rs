//! Taking the shared syscall hook off its tracepoint and putting it back
//! (`Tracer::set_syscall_hooks`, what the overhead benchmark alternates
//! with). A binary of its own: the hook is shared by every session of the
//! process, and the other tests' sessions must not see it go.
//!
//! Needs root and a kernel with BTF (`vexxy_testkit_host::require_tracer`).

mod common;

use common::Workload;
use vexxy_testkit_host::require_tracer;
use vexxy_trace::{TraceOptions, Tracer};

const SCRIPT: &str = "cat /etc/hostname >/dev/null; true";

#[test]
fn a_session_records_no_syscall_while_the_hook_is_off_and_records_again_when_it_is_back() {
    if !require_tracer() {
        return;
    }
    let empty = Tracer::start(TraceOptions {
        mechanism_only: true,
        ..TraceOptions::default()
    })
    .expect("empty hooks start");
    empty.set_syscall_hooks(false).expect("empty hook off");
    empty
        .set_syscall_hooks(false)
        .expect("off twice is no change");

    let off = Workload::spawn(SCRIPT);
    let tracer = Tracer::start(TraceOptions::default()).expect("tracer starts");
    tracer.arm(off.namespace()).expect("arm");
    tracer.set_syscall_hooks(false).expect("tracer hook off");
    off.go_and_wait();
    let raw = tracer.finish().expect("finish");
    // only the exits, which the process-exit hook counts, not sys_exit
    assert!(
        raw.syscalls
            .keys()
            .all(|k| k == "exit_group" || k == "exit"),
        "counted while off: {:?}",
        raw.syscalls
    );
    assert!(raw.opened.is_empty(), "opened while off: {:?}", raw.opened);
    // the process hooks stay: the exec is still seen
    assert!(
        raw.executed.keys().any(|p| p.ends_with("/cat")),
        "executed: {:?}",
        raw.executed
    );

    let on = Workload::spawn(SCRIPT);
    let tracer = Tracer::start(TraceOptions::default()).expect("tracer starts");
    tracer.arm(on.namespace()).expect("arm");
    tracer.set_syscall_hooks(false).expect("off");
    tracer.set_syscall_hooks(true).expect("back on");
    tracer
        .set_syscall_hooks(true)
        .expect("on twice is no change");
    on.go_and_wait();
    let raw = tracer.finish().expect("finish");
    assert!(
        raw.syscalls.get("openat").copied().unwrap_or(0) > 0,
        "syscalls: {:?}",
        raw.syscalls
    );
    assert!(
        raw.opened.contains_key("/etc/hostname"),
        "opened: {:?}",
        raw.opened.keys().collect::<Vec<_>>()
    );
    empty.set_syscall_hooks(true).expect("empty hook back on");
    empty.finish().expect("empty hooks finish");
}
