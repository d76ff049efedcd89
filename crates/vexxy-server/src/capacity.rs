//! How many analyses a process runs at once when the operator does not
//! say (`--workers`): as many as this host's CPUs and memory allow,
//! capped.
//!
//! ```text
//! workers = clamp(min(by_cpu, by_memory), 1, MAX_DEFAULT_WORKERS)
//! by_cpu    = CPUs × ANALYSES_PER_CPU
//! by_memory = ⌊memory / (sandbox memory limit + ANALYSIS_OVERHEAD_BYTES)⌋
//! ```
//!
//! - **CPUs**: those this process may run on, after its affinity mask and
//!   its cgroup's CPU quota (v1 or v2): [`std::thread::available_parallelism`].
//! - **memory**: `MemAvailable` of `/proc/meminfo`, or less when this
//!   process' memory cgroup (v1 or v2, any ancestor included) leaves less:
//!   its limit minus its working set (usage minus inactive file pages, as
//!   the kubelet counts it).
//! - **CPU per analysis**: an analysis spends most of its life waiting on
//!   its exercise window (and the workload mostly sleeps between probes),
//!   so it needs far less than a core on average: about a quarter
//!   (`ANALYSES_PER_CPU` = 4), measured with `cargo bench -p vexxy --bench
//!   analyses_per_hour`. Running more analyses than cores is the point.
//! - **memory per analysis**: a sandbox may use all of its memory limit
//!   (its overlay's tmpfs upper layer is charged to its cgroup, so it is
//!   inside that limit); the worker's own side of an analysis (unpacking,
//!   cataloguing, the ELF graph, the tracer's maps and ring buffer) is
//!   counted as `ANALYSIS_OVERHEAD_BYTES`. Budgeting limits rather than
//!   typical use means the host has room even if every sandbox fills up.
//! - **the cap** (`MAX_DEFAULT_WORKERS`) bounds what neither figure sees:
//!   the database's writers, open files, BPF programs and the tail latency
//!   of analyses sharing a disk. An operator who knows better says
//!   `--workers N`.
//!
//! The budget is the host's: it assumes this process is the only one on
//! the host running analyses. Set `--workers` on each when several `vexxy
//! serve`/`vexxy worker` processes share a host.

use std::{
    fmt,
    path::{Path, PathBuf},
};

/// Analyses per CPU: an analysis needs about a quarter of a core on
/// average over its life.
pub const ANALYSES_PER_CPU: usize = 4;
/// Memory of the worker's own side of one analysis, beyond its sandbox.
pub const ANALYSIS_OVERHEAD_BYTES: u64 = 256 << 20;
/// Most workers the default gives, however large the host.
pub const MAX_DEFAULT_WORKERS: usize = 16;

/// Cgroup limits at or above this are "no limit" (v1 writes the largest
/// page-aligned `i64` for none).
const UNLIMITED: u64 = 1 << 60;

/// What this host offers a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostResources {
    /// CPUs this process may run on, after affinity and cgroup quota.
    pub cpus: usize,
    /// Memory available for new work, in bytes; `None` when it could not
    /// be read.
    pub memory_bytes: Option<u64>,
    /// Where `memory_bytes` comes from.
    pub memory_source: MemorySource,
}

/// Which figure bounds the memory of [`HostResources`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemorySource {
    /// `MemAvailable` of `/proc/meminfo`.
    MemAvailable,
    /// The headroom of a memory cgroup (the path as `/proc/self/cgroup`
    /// names it, or an ancestor), smaller than `MemAvailable`.
    Cgroup(String),
    /// Neither could be read.
    Unknown,
}

impl HostResources {
    /// This host, as this process sees it.
    pub fn detect() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::detect_at(Path::new("/proc"), Path::new("/sys/fs/cgroup"), cpus)
    }

    /// [`detect`](Self::detect) with `/proc` and the cgroup mount point
    /// elsewhere (tests) and the CPU count given.
    pub fn detect_at(proc: &Path, cgroup_root: &Path, cpus: usize) -> Self {
        let available = std::fs::read_to_string(proc.join("meminfo"))
            .ok()
            .and_then(|text| meminfo_available(&text));
        let cgroup = std::fs::read_to_string(proc.join("self/cgroup"))
            .ok()
            .and_then(|text| cgroup_headroom(&text, cgroup_root));
        let (memory_bytes, memory_source) = match (available, cgroup) {
            (Some(a), Some((c, path))) if c < a => (Some(c), MemorySource::Cgroup(path)),
            (Some(a), _) => (Some(a), MemorySource::MemAvailable),
            (None, Some((c, path))) => (Some(c), MemorySource::Cgroup(path)),
            (None, None) => (None, MemorySource::Unknown),
        };
        Self {
            cpus: cpus.max(1),
            memory_bytes,
            memory_source,
        }
    }
}

/// How many workers this host gets by default, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerBudget {
    /// The number: `clamp(min(by_cpu, by_memory), 1, MAX_DEFAULT_WORKERS)`.
    pub workers: usize,
    /// What the CPUs allow.
    pub by_cpu: usize,
    /// What the memory allows (`None`: memory unknown, not a bound).
    pub by_memory: Option<usize>,
    /// Memory budgeted per analysis: sandbox limit + overhead.
    pub per_analysis_bytes: u64,
    /// What was measured.
    pub host: HostResources,
}

impl WorkerBudget {
    /// The budget of `host` for sandboxes limited to `sandbox_memory_bytes`.
    pub fn for_host(host: HostResources, sandbox_memory_bytes: u64) -> Self {
        let per_analysis_bytes = sandbox_memory_bytes.saturating_add(ANALYSIS_OVERHEAD_BYTES);
        let by_cpu = host.cpus.saturating_mul(ANALYSES_PER_CPU);
        let by_memory = host
            .memory_bytes
            .map(|m| usize::try_from(m / per_analysis_bytes.max(1)).unwrap_or(usize::MAX));
        let workers = by_memory
            .map_or(by_cpu, |m| m.min(by_cpu))
            .clamp(1, MAX_DEFAULT_WORKERS);
        Self {
            workers,
            by_cpu,
            by_memory,
            per_analysis_bytes,
            host,
        }
    }

    /// True when the host cannot hold even one analysis at its limits:
    /// the one worker it still gets may run out of memory.
    pub fn memory_short(&self) -> bool {
        self.by_memory == Some(0)
    }
}

impl fmt::Display for WorkerBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpus = self.host.cpus;
        write!(
            f,
            "{} = min({} by {cpus} CPU{} × {ANALYSES_PER_CPU}, ",
            self.workers,
            self.by_cpu,
            if cpus == 1 { "" } else { "s" }
        )?;
        match (self.by_memory, self.host.memory_bytes) {
            (Some(n), Some(m)) => write!(
                f,
                "{n} by {} available{} / {} per analysis",
                gib(m),
                match &self.host.memory_source {
                    MemorySource::Cgroup(path) => format!(" in cgroup {path}"),
                    _ => String::new(),
                },
                gib(self.per_analysis_bytes)
            )?,
            _ => write!(f, "memory unknown")?,
        }
        write!(f, ") within 1..={MAX_DEFAULT_WORKERS}")
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// `MemAvailable` in bytes.
fn meminfo_available(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemAvailable:")?;
        let mut words = rest.split_whitespace();
        let n: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") => n.checked_mul(1024),
            None => Some(n),
            Some(_) => None,
        }
    })
}

/// The smallest headroom (limit minus working set) of this process'
/// memory cgroup and its ancestors, with the path of the cgroup it comes
/// from; `None` when no limit is set (or none can be read). Reads the
/// unified hierarchy (v2) when `cgroup_root` is one, else the v1 memory
/// controller under `cgroup_root/memory`.
fn cgroup_headroom(proc_cgroup: &str, cgroup_root: &Path) -> Option<(u64, String)> {
    let mut v2_path = None;
    let mut v1_path = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2_path = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "memory") {
            v1_path = Some(path.to_owned());
        }
    }
    if cgroup_root.join("cgroup.controllers").is_file() {
        return v2_headroom(cgroup_root, v2_path.as_deref()?);
    }
    v1_headroom(&cgroup_root.join("memory"), v1_path.as_deref()?)
}

/// The directory of `path` under `mount`, or the mount itself when the
/// path is not visible there (a container that sees its own cgroup as
/// the root, without a cgroup namespace).
fn cgroup_dir(mount: &Path, path: &str) -> PathBuf {
    let dir = mount.join(path.trim_start_matches('/'));
    if dir.is_dir() {
        dir
    } else {
        mount.to_owned()
    }
}

/// A field of a `memory.stat` file.
fn stat_field(stat: &str, name: &str) -> Option<u64> {
    stat.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn v2_headroom(mount: &Path, path: &str) -> Option<(u64, String)> {
    let mut dir = cgroup_dir(mount, path);
    let mut best: Option<(u64, String)> = None;
    loop {
        let limit = std::fs::read_to_string(dir.join("memory.max"))
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .filter(|&l| l < UNLIMITED);
        if let Some(limit) = limit {
            let usage = read_u64(&dir.join("memory.current")).unwrap_or(0);
            let inactive = std::fs::read_to_string(dir.join("memory.stat"))
                .ok()
                .and_then(|s| stat_field(&s, "inactive_file"))
                .unwrap_or(0);
            let headroom = limit.saturating_sub(usage.saturating_sub(inactive));
            if best.as_ref().is_none_or(|(b, _)| headroom < *b) {
                let name = dir
                    .strip_prefix(mount)
                    .map_or_else(|_| "/".to_owned(), |rel| format!("/{}", rel.display()));
                best = Some((headroom, name));
            }
        }
        if dir == mount {
            return best;
        }
        match dir.parent() {
            Some(parent) if parent.starts_with(mount) => dir = parent.to_owned(),
            _ => return best,
        }
    }
}

fn v1_headroom(mount: &Path, path: &str) -> Option<(u64, String)> {
    let dir = cgroup_dir(mount, path);
    let stat = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
    // the smallest limit of this cgroup and its ancestors
    let limit = stat_field(&stat, "hierarchical_memory_limit")
        .or_else(|| read_u64(&dir.join("memory.limit_in_bytes")))
        .filter(|&l| l < UNLIMITED)?;
    let usage = read_u64(&dir.join("memory.usage_in_bytes")).unwrap_or(0);
    let inactive = stat_field(&stat, "total_inactive_file").unwrap_or(0);
    let name = dir
        .strip_prefix(mount)
        .map_or_else(|_| "/".to_owned(), |rel| format!("/{}", rel.display()));
    Some((limit.saturating_sub(usage.saturating_sub(inactive)), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn host(cpus: usize, memory_gib: Option<u64>) -> HostResources {
        HostResources {
            cpus,
            memory_bytes: memory_gib.map(|g| g * GIB),
            memory_source: MemorySource::MemAvailable,
        }
    }

    #[test]
    fn the_smaller_of_cpu_and_memory_wins_within_the_cap() {
        // 2 CPUs, plenty of memory: CPU-bound
        let b = WorkerBudget::for_host(host(2, Some(22)), GIB);
        assert_eq!((b.workers, b.by_cpu, b.by_memory), (8, 8, Some(17)));
        // 8 CPUs, 6 GiB: memory-bound at 1.25 GiB an analysis
        let b = WorkerBudget::for_host(host(8, Some(6)), GIB);
        assert_eq!((b.workers, b.by_memory), (4, Some(4)));
        // smaller sandboxes: more fit
        let b = WorkerBudget::for_host(host(8, Some(6)), 256 << 20);
        assert_eq!(b.workers, 12);
        // a large host: capped
        let b = WorkerBudget::for_host(host(64, Some(512)), GIB);
        assert_eq!(b.workers, MAX_DEFAULT_WORKERS);
        // memory unknown: the CPUs decide
        let b = WorkerBudget::for_host(host(1, None), GIB);
        assert_eq!((b.workers, b.by_memory), (4, None));
    }

    #[test]
    fn a_host_too_small_for_one_sandbox_still_gets_one_worker_and_says_so() {
        let b = WorkerBudget::for_host(host(1, Some(1)), 2 * GIB);
        assert_eq!(b.workers, 1);
        assert!(b.memory_short());
        assert!(!WorkerBudget::for_host(host(1, Some(4)), GIB).memory_short());
    }

    #[test]
    fn the_reason_shows_every_figure() {
        let b = WorkerBudget::for_host(host(2, Some(22)), GIB);
        assert_eq!(
            b.to_string(),
            "8 = min(8 by 2 CPUs × 4, 17 by 22.00 GiB available / 1.25 GiB per analysis) within 1..=16"
        );
        let mut h = host(1, Some(3));
        h.memory_source = MemorySource::Cgroup("/pod".into());
        let b = WorkerBudget::for_host(h, GIB);
        assert_eq!(
            b.to_string(),
            "2 = min(4 by 1 CPU × 4, 2 by 3.00 GiB available in cgroup /pod / 1.25 GiB per analysis) within 1..=16"
        );
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    const MEMINFO: &str =
        "MemTotal:       24683772 kB\nMemFree:        20773380 kB\nMemAvailable:   23778720 kB\n";

    #[test]
    fn meminfo_without_a_cgroup_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (proc, cg) = (dir.path().join("proc"), dir.path().join("cgroup"));
        write(&proc.join("meminfo"), MEMINFO);
        // v1 as on the development machine: a memory cgroup without a limit
        write(
            &proc.join("self/cgroup"),
            "4:memory:/process_api/x\n1:cpu:/\n0::/\n",
        );
        write(
            &cg.join("memory/process_api/x/memory.stat"),
            "total_inactive_file 344064\nhierarchical_memory_limit 9223372036854771712\n",
        );
        write(
            &cg.join("memory/process_api/x/memory.usage_in_bytes"),
            "4153344\n",
        );
        let h = HostResources::detect_at(&proc, &cg, 2);
        assert_eq!(h.memory_bytes, Some(23_778_720 * 1024));
        assert_eq!(h.memory_source, MemorySource::MemAvailable);
        assert_eq!(h.cpus, 2);
    }

    #[test]
    fn a_v1_memory_limit_leaves_its_headroom() {
        let dir = tempfile::tempdir().unwrap();
        let (proc, cg) = (dir.path().join("proc"), dir.path().join("cgroup"));
        write(&proc.join("meminfo"), MEMINFO);
        write(&proc.join("self/cgroup"), "4:memory:/svc\n");
        // 4 GiB limit (of an ancestor), 1.5 GiB used of which 0.5 GiB inactive cache
        write(
            &cg.join("memory/svc/memory.stat"),
            &format!(
                "cache 1\ntotal_inactive_file {}\nhierarchical_memory_limit {}\n",
                GIB / 2,
                4 * GIB
            ),
        );
        write(
            &cg.join("memory/svc/memory.usage_in_bytes"),
            &format!("{}\n", 3 * GIB / 2),
        );
        let h = HostResources::detect_at(&proc, &cg, 2);
        assert_eq!(h.memory_bytes, Some(3 * GIB));
        assert_eq!(h.memory_source, MemorySource::Cgroup("/svc".into()));
    }

    #[test]
    fn a_v2_limit_of_an_ancestor_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (proc, cg) = (dir.path().join("proc"), dir.path().join("cgroup"));
        write(&proc.join("meminfo"), MEMINFO);
        write(&proc.join("self/cgroup"), "0::/pod/svc\n");
        write(&cg.join("cgroup.controllers"), "cpu memory\n");
        // the service's own cgroup: no limit; the pod's: 2 GiB, 1 GiB in use
        write(&cg.join("pod/svc/memory.max"), "max\n");
        write(&cg.join("pod/svc/memory.current"), "1000\n");
        write(&cg.join("pod/memory.max"), &format!("{}\n", 2 * GIB));
        write(&cg.join("pod/memory.current"), &format!("{}\n", GIB));
        write(&cg.join("pod/memory.stat"), "anon 5\ninactive_file 0\n");
        let h = HostResources::detect_at(&proc, &cg, 4);
        assert_eq!(h.memory_bytes, Some(GIB));
        assert_eq!(h.memory_source, MemorySource::Cgroup("/pod".into()));
        assert_eq!(WorkerBudget::for_host(h, GIB).workers, 1);
    }

    #[test]
    fn a_namespaced_v2_cgroup_is_the_mount_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (proc, cg) = (dir.path().join("proc"), dir.path().join("cgroup"));
        write(&proc.join("meminfo"), MEMINFO);
        // a container with a cgroup namespace sees "/" and its own limits at the mount
        write(&proc.join("self/cgroup"), "0::/\n");
        write(&cg.join("cgroup.controllers"), "memory\n");
        write(&cg.join("memory.max"), &format!("{}\n", 8 * GIB));
        write(&cg.join("memory.current"), &format!("{}\n", 3 * GIB));
        write(&cg.join("memory.stat"), &format!("inactive_file {}\n", GIB));
        let h = HostResources::detect_at(&proc, &cg, 2);
        assert_eq!(h.memory_bytes, Some(6 * GIB));
        assert_eq!(h.memory_source, MemorySource::Cgroup("/".into()));
    }

    #[test]
    fn nothing_readable_is_unknown_memory() {
        let dir = tempfile::tempdir().unwrap();
        let h = HostResources::detect_at(dir.path(), dir.path(), 0);
        assert_eq!(h.memory_bytes, None);
        assert_eq!(h.memory_source, MemorySource::Unknown);
        assert_eq!(h.cpus, 1);
        assert_eq!(meminfo_available("MemAvailable: 12 MB\n"), None);
        assert_eq!(meminfo_available("MemAvailable: 12 kB\n"), Some(12 * 1024));
    }

    #[test]
    fn this_host_is_read() {
        let h = HostResources::detect();
        assert!(h.cpus >= 1);
        assert!(
            h.memory_bytes.is_some(),
            "a Linux host has /proc/meminfo: {h:?}"
        );
    }
}
