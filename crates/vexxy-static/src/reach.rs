//! Reachability of packages' ELF objects from the entrypoint.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use vexxy_model::{ElfReach, Inventory, LoaderVerdict, PackageReach};
use vexxy_rootfs::RootFs;

use crate::{ElfGraph, PluginLoader, PluginState};

/// How many executables [`PackageReach::FromOtherExecutables`] names.
const MAX_LISTED_EXECUTABLES: usize = 5;

/// Breadth-first closure of `roots`; the value is the parent (`None` for a root).
fn closure(graph: &ElfGraph, roots: &[usize]) -> HashMap<usize, Option<usize>> {
    let mut parent = HashMap::new();
    let mut queue = VecDeque::new();
    for &r in roots {
        if parent.insert(r, None).is_none() {
            queue.push_back(r);
        }
    }
    while let Some(i) = queue.pop_front() {
        for &d in graph.deps_of(i) {
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(d) {
                e.insert(Some(i));
                queue.push_back(d);
            }
        }
    }
    parent
}

fn chain(graph: &ElfGraph, parents: &HashMap<usize, Option<usize>>, mut i: usize) -> Vec<String> {
    let mut out = vec![graph.objects()[i].path.clone()];
    while let Some(&Some(p)) = parents.get(&i) {
        out.push(graph.objects()[p].path.clone());
        i = p;
        if out.len() > graph.len() {
            break;
        }
    }
    out.reverse();
    out
}

/// Decides, per package of `inventory`, how its ELF objects can be reached.
///
/// The entry closure is the dependency closure (resolved `DT_NEEDED` and
/// `PT_INTERP`) of `entrypoints` (canonical paths or aliases) plus every
/// plugin a loader reports as loaded. A package's files are matched to
/// objects by canonical path (directory symlinks in the inventory's paths
/// are resolved).
pub fn reach(
    graph: &ElfGraph,
    entrypoints: &[String],
    loaders: &[Box<dyn PluginLoader>],
    root: &RootFs,
    inventory: &Inventory,
) -> ElfReach {
    let objects = graph.objects();
    let entry_idx: Vec<usize> = {
        let mut v: Vec<usize> = entrypoints
            .iter()
            .filter_map(|p| graph.index_of(p))
            .collect();
        v.dedup();
        v
    };

    // What each loader says about each plugin.
    let mut loaded: Vec<usize> = Vec::new();
    let mut not_loaded: HashMap<usize, Vec<(String, String)>> = HashMap::new();
    for loader in loaders {
        for (path, state) in loader.plugins(root, graph) {
            let Some(i) = graph.index_of(&path) else {
                continue;
            };
            match state {
                PluginState::Loaded { .. } => loaded.push(i),
                PluginState::NotLoaded { reason } => {
                    not_loaded
                        .entry(i)
                        .or_default()
                        .push((loader.name().to_owned(), reason));
                }
            }
        }
    }
    loaded.sort_unstable();
    loaded.dedup();

    let mut roots = entry_idx.clone();
    roots.extend(loaded.iter().copied().filter(|i| !entry_idx.contains(i)));
    let entry_closure = closure(graph, &roots);

    // Other executables and the objects their closures hold.
    let mut by_executable: HashMap<usize, Vec<usize>> = HashMap::new();
    for (e, o) in objects.iter().enumerate() {
        if o.is_executable() && !entry_idx.contains(&e) {
            for &member in closure(graph, &[e]).keys() {
                by_executable.entry(member).or_default().push(e);
            }
        }
    }

    // Orphans: shared libraries nothing references, and their closures.
    let mut referenced = vec![false; objects.len()];
    for i in 0..objects.len() {
        for &d in graph.deps_of(i) {
            if d != i {
                referenced[d] = true;
            }
        }
    }
    let mut by_orphan: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, o) in objects.iter().enumerate() {
        if o.is_shared_library() && !referenced[i] && !roots.contains(&i) {
            for &member in closure(graph, &[i]).keys() {
                by_orphan.entry(member).or_default().push(i);
            }
        }
    }

    let mut canonical_dirs: HashMap<String, Option<String>> = HashMap::new();
    let mut packages = BTreeMap::new();
    for pkg in inventory.packages() {
        let mut owned: BTreeSet<usize> = BTreeSet::new();
        for f in &pkg.files {
            let Some((dir, name)) = f.rsplit_once('/') else {
                continue;
            };
            if let Some(i) = graph.index_of(f).filter(|&i| objects[i].path == *f) {
                owned.insert(i);
                continue;
            }
            let dir = if dir.is_empty() { "/" } else { dir };
            let canonical_dir = canonical_dirs
                .entry(dir.to_owned())
                .or_insert_with(|| root.canonical(dir).ok())
                .clone();
            let Some(cd) = canonical_dir else { continue };
            let p = if cd == "/" {
                format!("/{name}")
            } else {
                format!("{cd}/{name}")
            };
            // Only the object itself, not a symlink to it, counts as owned.
            if let Some(i) = graph.index_of(&p).filter(|&i| objects[i].path == p) {
                owned.insert(i);
            }
        }
        let verdict = if owned.is_empty() {
            PackageReach::NoElf
        } else if let Some((object, chain)) = owned
            .iter()
            .filter(|i| entry_closure.contains_key(i))
            .map(|&i| (objects[i].path.clone(), chain(graph, &entry_closure, i)))
            .min_by(|a, b| a.1.len().cmp(&b.1.len()).then_with(|| a.0.cmp(&b.0)))
        {
            PackageReach::FromEntrypoint { object, chain }
        } else {
            let execs: BTreeSet<&str> = owned
                .iter()
                .filter_map(|i| by_executable.get(i))
                .flatten()
                .map(|&e| objects[e].path.as_str())
                .collect();
            if !execs.is_empty() {
                PackageReach::FromOtherExecutables {
                    executables: execs
                        .iter()
                        .take(MAX_LISTED_EXECUTABLES)
                        .map(|s| (*s).to_owned())
                        .collect(),
                    count: execs.len(),
                }
            } else {
                let orphans: BTreeSet<usize> = owned
                    .iter()
                    .filter_map(|i| by_orphan.get(i))
                    .flatten()
                    .copied()
                    .collect();
                if orphans.is_empty() {
                    PackageReach::Unreferenced
                } else {
                    let plugins = orphans
                        .iter()
                        .map(|o| {
                            let verdict = match not_loaded.get(o).and_then(|v| v.first()) {
                                Some((loader, reason)) => LoaderVerdict::NotLoaded {
                                    loader: loader.clone(),
                                    reason: reason.clone(),
                                },
                                None => LoaderVerdict::Unknown,
                            };
                            (objects[*o].path.clone(), verdict)
                        })
                        .collect();
                    PackageReach::OnlyViaPlugins { plugins }
                }
            }
        };
        // Several packages can share a name (one per architecture): the
        // most reachable one speaks for the name.
        match packages.get(&pkg.name) {
            Some(existing) if rank(existing) >= rank(&verdict) => {}
            _ => {
                packages.insert(pkg.name.clone(), verdict);
            }
        }
    }

    let mut dlopen_callers: Vec<String> = entry_closure
        .keys()
        .filter(|&&i| objects[i].imports_dlopen)
        .map(|&i| objects[i].path.clone())
        .collect();
    dlopen_callers.sort();
    ElfReach {
        entrypoints: entry_idx.iter().map(|&i| objects[i].path.clone()).collect(),
        entry_dlopen_callers: dlopen_callers,
        loaded_plugins: loaded.iter().map(|&i| objects[i].path.clone()).collect(),
        packages,
        unresolved: graph.unresolved().to_vec(),
        objects: graph.len(),
    }
}

fn rank(r: &PackageReach) -> u8 {
    match r {
        PackageReach::NoElf => 0,
        PackageReach::Unreferenced => 1,
        PackageReach::OnlyViaPlugins { .. } => 2,
        PackageReach::FromOtherExecutables { .. } => 3,
        PackageReach::FromEntrypoint { .. } => 4,
    }
}
