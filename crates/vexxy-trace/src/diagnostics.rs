//! What BPF objects a process holds and whether a program still exists:
//! for tests and leak checks ("no BPF program left behind"), read from
//! `/proc/PID/fdinfo` and the kernel's program list, never from vexxy's
//! own bookkeeping.

use std::collections::BTreeSet;

/// Ids of the BPF programs `pid` holds open (directly or through links),
/// from `/proc/PID/fdinfo`. Empty when the process is gone.
pub fn held_program_ids(pid: u32) -> BTreeSet<u32> {
    let mut ids = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for entry in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        for line in text.lines() {
            if let Some(id) = line.strip_prefix("prog_id:") {
                if let Ok(id) = id.trim().parse() {
                    ids.insert(id);
                }
            }
        }
    }
    ids
}

/// Ids of every BPF program loaded in the kernel now.
pub fn loaded_program_ids() -> BTreeSet<u32> {
    libbpf_rs::query::ProgInfoIter::default()
        .map(|info| info.id)
        .collect()
}

/// Name, total run time (ns) and run count of each of the given programs,
/// as the kernel's `bpf_stats` keeps them (counted only while
/// `kernel.bpf_stats_enabled` is 1).
pub fn program_stats(ids: &BTreeSet<u32>) -> std::collections::BTreeMap<String, (u64, u64)> {
    libbpf_rs::query::ProgInfoIter::default()
        .filter(|info| ids.contains(&info.id))
        .map(|info| {
            (
                info.name.to_string_lossy().into_owned(),
                (info.run_time_ns, info.run_cnt),
            )
        })
        .collect()
}

/// BPF links on the raw syscall tracepoints (`sys_enter`, `sys_exit`) whose
/// program is not one of `mine`: another tool's hooks, which a benchmark
/// comparing "untraced" with "traced" would silently include in both.
/// Counts raw-tracepoint links by name and BTF-typed (`tp_btf`) links by
/// their target's name in the kernel's BTF.
pub fn foreign_syscall_hooks(mine: &BTreeSet<u32>) -> usize {
    use libbpf_rs::query::{LinkInfoIter, LinkTypeInfo};
    const NAMES: [&str; 2] = ["sys_enter", "sys_exit"];
    let vmlinux = libbpf_rs::btf::Btf::from_vmlinux().ok();
    LinkInfoIter::default()
        .filter(|link| !mine.contains(&link.prog_id))
        .filter(|link| match &link.info {
            LinkTypeInfo::RawTracepoint(rt) => NAMES.contains(&rt.name.as_str()),
            LinkTypeInfo::Tracing(t) => vmlinux
                .as_ref()
                .and_then(|btf| {
                    btf.type_by_id::<libbpf_rs::btf::BtfType<'_>>(t.target_btf_id.into())
                })
                .and_then(|ty| ty.name())
                .and_then(|n| n.to_str()?.strip_prefix("btf_trace_"))
                .is_some_and(|n| NAMES.contains(&n)),
            _ => false,
        })
        .count()
}
