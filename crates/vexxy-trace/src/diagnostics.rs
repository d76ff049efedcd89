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
