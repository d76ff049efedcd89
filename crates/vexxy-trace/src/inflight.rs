//! The calls a session's tasks are still blocked in when it finishes.
//!
//! Syscalls are counted as they return (`sys_exit`), and a session is
//! disarmed before its workload is stopped, so a call that waits until the
//! end — nginx's master in `rt_sigsuspend`, a shell's `wait4`, a
//! `clock_nanosleep` — would never be counted. After the disarm, each task
//! whose PID namespace is the session's says which call it is in
//! (`/proc/PID/task/TID/syscall`), and that call is counted once. A call
//! that returned between the disarm and this read is not counted at all;
//! tasks of PID namespaces nested in the armed one are not read.

use std::collections::BTreeMap;

/// Adds one call to `syscalls` for every task of the PID namespace
/// `inode` that is blocked in a syscall now. Processes that vanish while
/// they are read are skipped.
pub(crate) fn count_blocked(inode: u64, syscalls: &mut BTreeMap<String, u64>) {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in proc.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let in_namespace = pid
            .parse()
            .ok()
            .and_then(|pid| crate::pid_namespace_inode(pid).ok())
            == Some(inode);
        if !in_namespace {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(task.path().join("syscall")) else {
                continue;
            };
            if let Some(nr) = blocked_in(&text) {
                *syscalls.entry(crate::wire::syscall_name(nr)).or_default() += 1;
            }
        }
    }
}

/// The syscall number a `/proc/PID/task/TID/syscall` line names: none for
/// a task running (`running`) or not in a syscall (`-1`).
fn blocked_in(line: &str) -> Option<usize> {
    line.split_whitespace().next()?.parse::<usize>().ok()
}

#[cfg(test)]
mod tests {
    use super::blocked_in;

    #[test]
    fn reads_the_call_a_task_is_blocked_in() {
        assert_eq!(
            blocked_in("130 0x7ffd 0x8 0x0 0x0 0x0 0x0 0x7ffd1 0x7f12\n"),
            Some(130)
        );
        assert_eq!(blocked_in("running\n"), None);
        assert_eq!(blocked_in("-1 0x7ffd 0x7f12\n"), None);
        assert_eq!(blocked_in(""), None);
    }
}
