//! Turning what the tracer recorded into the execution profile: paths back
//! into the image's terms, the kernel's own mappings added, counts merged.
//! No I/O but bounded reads of the image's files through [`RootFs`].

use std::collections::BTreeMap;

use vexxy_model::{
    ExecutedBinary, ExecutionProfile, ExerciseStats, FileAccess, LoadedLibrary, ProcessRecord,
    RunInfo,
};
use vexxy_rootfs::RootFs;
use vexxy_trace::RawTrace;

/// Largest executable read to find its interpreter.
const MAX_EXECUTABLE_BYTES: u64 = 256 << 20;

/// Host directories whose contents the workload saw at its root (the
/// overlay's lower and upper directories). A file reached through one of
/// them, rather than through the sandbox's root, is reported by the kernel
/// with the host prefix; this strips it.
#[derive(Debug, Clone, Default)]
pub struct PathMap {
    prefixes: Vec<String>,
}

impl PathMap {
    /// A map stripping these host directories.
    pub fn new<I, S>(dirs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut prefixes: Vec<String> = dirs
            .into_iter()
            .map(|d| d.as_ref().trim_end_matches('/').to_owned())
            .filter(|d| !d.is_empty())
            .collect();
        // Longest first, so a nested directory wins over its parent.
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
        Self { prefixes }
    }

    /// `path` as the workload saw it.
    pub fn to_container(&self, path: &str) -> String {
        for prefix in &self.prefixes {
            if let Some(rest) = path.strip_prefix(prefix.as_str()) {
                if rest.is_empty() {
                    return "/".to_owned();
                }
                if rest.starts_with('/') {
                    return rest.to_owned();
                }
            }
        }
        path.to_owned()
    }
}

fn merge(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>, map: &PathMap) {
    for (path, n) in from {
        *into.entry(map.to_container(path)).or_default() += n;
    }
}

/// Builds the profile. `root` (the image's rootfs) supplies each executed
/// program's interpreter, which the kernel maps without a syscall.
pub fn assemble(
    raw: RawTrace,
    map: &PathMap,
    root: Option<&RootFs>,
    run: RunInfo,
    exercise: ExerciseStats,
) -> ExecutionProfile {
    let mut opened = BTreeMap::new();
    merge(&mut opened, &raw.opened, map);
    let mut mapped = BTreeMap::new();
    merge(&mut mapped, &raw.mapped, map);
    let mut executed = BTreeMap::new();
    merge(&mut executed, &raw.executed, map);

    let mut executables = Vec::with_capacity(executed.len());
    for (path, count) in &executed {
        let interpreter = root.and_then(|r| {
            let interp = vexxy_static::interpreter_of(r, path, MAX_EXECUTABLE_BYTES)?;
            Some(r.canonical(&interp).unwrap_or(interp))
        });
        // The kernel maps the program and its interpreter itself.
        *mapped.entry(path.clone()).or_default() += count;
        if let Some(interp) = &interpreter {
            *mapped.entry(interp.clone()).or_default() += count;
        }
        executables.push(ExecutedBinary {
            path: path.clone(),
            interpreter,
            count: *count,
        });
    }

    let processes = raw
        .processes
        .into_iter()
        .map(|p| ProcessRecord {
            execs: p.execs.iter().map(|e| map.to_container(e)).collect(),
            ..p
        })
        .collect();

    ExecutionProfile {
        run,
        executables,
        files: opened
            .into_iter()
            .map(|(path, opens)| FileAccess { path, opens })
            .collect(),
        failed_opens: raw.failed_opens,
        loaded_libraries: mapped
            .into_iter()
            .map(|(path, mappings)| LoadedLibrary { path, mappings })
            .collect(),
        network: raw.network,
        syscalls: raw.syscalls,
        processes,
        functions: raw.functions,
        exercise,
        lost: raw.lost,
        tracer: raw.info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_prefixes_are_stripped_longest_first() {
        let map = PathMap::new([
            "/cache/rootfs/abc",
            "/run/vexxy/sandboxes/x/scratch/upper",
            "/cache/rootfs/abc/nested/",
        ]);
        let cases = [
            ("/cache/rootfs/abc/usr/lib/libc.so.6", "/usr/lib/libc.so.6"),
            ("/cache/rootfs/abc", "/"),
            ("/cache/rootfs/abcdef/x", "/cache/rootfs/abcdef/x"),
            (
                "/run/vexxy/sandboxes/x/scratch/upper/var/log/nginx/error.log",
                "/var/log/nginx/error.log",
            ),
            ("/cache/rootfs/abc/nested/lib.so", "/lib.so"),
            ("/etc/nginx/nginx.conf", "/etc/nginx/nginx.conf"),
        ];
        for (given, want) in cases {
            assert_eq!(map.to_container(given), want, "{given}");
        }
    }

    #[test]
    fn executions_add_the_program_and_merge_translated_paths() {
        let mut raw = RawTrace::default();
        raw.executed.insert("/usr/sbin/nginx".into(), 1);
        raw.mapped.insert("/usr/lib/libc.so.6".into(), 2);
        raw.mapped.insert("/cache/r/usr/lib/libc.so.6".into(), 1);
        raw.opened.insert("/etc/passwd".into(), 3);
        let profile = assemble(
            raw,
            &PathMap::new(["/cache/r"]),
            None,
            RunInfo::default(),
            ExerciseStats::default(),
        );
        assert!(profile.was_mapped("/usr/sbin/nginx"));
        let libc = profile
            .loaded_libraries
            .iter()
            .find(|l| l.path == "/usr/lib/libc.so.6")
            .unwrap();
        assert_eq!(libc.mappings, 3);
        assert_eq!(
            profile.files,
            vec![FileAccess {
                path: "/etc/passwd".into(),
                opens: 3
            }]
        );
        assert_eq!(profile.executables[0].interpreter, None);
    }
}
