//! Merging profiles of the same image: the union of their evidence.
//!
//! Several observations of one image (a sandbox run, production containers
//! observed on several nodes, an imported Kubescape profile) say together
//! what the image was seen to use. Merging keeps every piece of evidence
//! (counts add up), records each source as a span, and never mixes images.

use std::collections::{BTreeMap, BTreeSet};

use vexxy_model::{
    EvidenceSpan, ExecutedBinary, ExecutionProfile, FailedOpen, FileAccess, FunctionCalls,
    LoadedLibrary, NetworkUse, ProcessRecord, ProfileSource, RunInfo,
};

/// Why two profiles cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MergeError {
    /// The profiles were recorded from different images.
    #[error("run.image_digest: cannot merge a profile of {first} with one of {second}")]
    DifferentImages {
        /// The first profile's image digest.
        first: String,
        /// The second's.
        second: String,
    },
}

/// The union of two profiles of the same image.
///
/// - `run.image_digest` must agree where both have one; the merged profile
///   has whichever is known.
/// - `run.source` is the stronger of the two ([`ProfileSource::combine`]);
///   `run.spans` lists every source of both, a profile without spans
///   counting as one span made from its `run`.
/// - `run`'s own fields (start, length, outcome, window, command) are the
///   sandbox run's when one is merged, else the first profile's: they
///   describe one run, which the coverage model scores; the time observed
///   in production is measured from the spans.
/// - Executables, files, mappings, failed opens, sockets, syscalls,
///   function calls and losses are unions with their counts added.
/// - Processes of the second profile are renumbered above the first's
///   (pids of different sources share no namespace), keeping their tree.
pub fn merge(a: ExecutionProfile, b: ExecutionProfile) -> Result<ExecutionProfile, MergeError> {
    let image_digest = match (a.run.image_digest.clone(), b.run.image_digest.clone()) {
        (Some(x), Some(y)) if x != y => {
            return Err(MergeError::DifferentImages {
                first: x,
                second: y,
            })
        }
        (x, y) => x.or(y),
    };
    let mut spans: BTreeSet<EvidenceSpan> = spans_of(&a.run).into_iter().collect();
    spans.extend(spans_of(&b.run));
    // The run's own fields describe one run: the sandbox run when there is
    // one (its window, outcome and length are what the coverage model
    // scores), else the first part. Every other source is in `spans`,
    // from which observed time is measured; adding lengths or mixing
    // outcomes would describe a run that never happened.
    let base = if is_sandbox(&b.run) && !is_sandbox(&a.run) {
        &b.run
    } else {
        &a.run
    };
    let other = if std::ptr::eq(base, &a.run) {
        &b.run
    } else {
        &a.run
    };
    let run = RunInfo {
        image: if base.image.is_empty() {
            other.image.clone()
        } else {
            base.image.clone()
        },
        image_digest,
        command: if base.command.is_empty() {
            other.command.clone()
        } else {
            base.command.clone()
        },
        started_at: base.started_at.clone(),
        duration_ms: base.duration_ms,
        requested_duration_ms: base.requested_duration_ms,
        outcome: base.outcome,
        window: base.window,
        source: a.run.source.combine(b.run.source),
        spans: spans.into_iter().collect(),
    };

    let executables = union_by(
        a.executables,
        b.executables,
        |e| e.path.clone(),
        |x: &mut ExecutedBinary, y| {
            x.count = x.count.saturating_add(y.count);
            if x.interpreter.is_none() {
                x.interpreter = y.interpreter;
            }
        },
    );
    let files = union_by(
        a.files,
        b.files,
        |f| f.path.clone(),
        |x: &mut FileAccess, y| x.opens = x.opens.saturating_add(y.opens),
    );
    let failed_opens = union_by(
        a.failed_opens,
        b.failed_opens,
        |f| f.name.clone(),
        |x: &mut FailedOpen, y| x.count = x.count.saturating_add(y.count),
    );
    let loaded_libraries = union_by(
        a.loaded_libraries,
        b.loaded_libraries,
        |l| l.path.clone(),
        |x: &mut LoadedLibrary, y| x.mappings = x.mappings.saturating_add(y.mappings),
    );
    let network = union_by(
        a.network,
        b.network,
        |n| (n.op, n.address.clone()),
        |x: &mut NetworkUse, y| {
            x.ok = x.ok.saturating_add(y.ok);
            x.failed = x.failed.saturating_add(y.failed);
        },
    );
    let functions = union_by(
        a.functions,
        b.functions,
        |f| (f.library.clone(), f.symbol.clone()),
        |x: &mut FunctionCalls, y| x.calls = x.calls.saturating_add(y.calls),
    );
    let mut syscalls = a.syscalls;
    add_counts(&mut syscalls, b.syscalls);

    let offset = a.processes.iter().map(|p| p.pid).max().unwrap_or(0);
    let renumbered: BTreeSet<u32> = b.processes.iter().map(|p| p.pid).collect();
    let mut processes = a.processes;
    processes.extend(b.processes.into_iter().map(|mut p| {
        p.pid = p.pid.saturating_add(offset);
        if renumbered.contains(&p.ppid) {
            p.ppid = p.ppid.saturating_add(offset);
        }
        p
    }));
    processes.sort_by_key(|p: &ProcessRecord| p.pid);
    processes.dedup_by_key(|p| p.pid);

    let mut exercise = a.exercise;
    let other = b.exercise;
    exercise.ports = sorted_union(exercise.ports, other.ports);
    exercise.ready_ports = sorted_union(exercise.ready_ports, other.ready_ports);
    exercise.ready_after_ms = match (exercise.ready_after_ms, other.ready_after_ms) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    exercise.http_requests = exercise.http_requests.saturating_add(other.http_requests);
    add_counts(&mut exercise.http_status, other.http_status);
    exercise.http_paths = sorted_union(exercise.http_paths, other.http_paths);
    exercise.http_fuzz_requests = exercise
        .http_fuzz_requests
        .saturating_add(other.http_fuzz_requests);
    if exercise.openapi.is_none() {
        exercise.openapi = other.openapi;
    }
    // each source's probes, in the order the sources are merged
    exercise.probes.extend(other.probes);
    if exercise.script.is_none() {
        exercise.script = other.script;
    }

    let mut lost = a.lost;
    lost.ring_buffer = lost.ring_buffer.saturating_add(b.lost.ring_buffer);
    add_counts(&mut lost.map_full, b.lost.map_full);
    lost.truncated_paths = lost.truncated_paths.saturating_add(b.lost.truncated_paths);
    lost.running_before_attach = lost
        .running_before_attach
        .saturating_add(b.lost.running_before_attach);

    let mut tracer = a.tracer;
    if tracer.kernel.is_empty() {
        tracer.kernel = b.tracer.kernel;
    }
    tracer.startup_ms = tracer.startup_ms.max(b.tracer.startup_ms);
    tracer.uprobes_attached = tracer.uprobes_attached.max(b.tracer.uprobes_attached);
    tracer.uprobe_errors = sorted_union(tracer.uprobe_errors, b.tracer.uprobe_errors);
    // "no call counted means never entered" holds for the union only where
    // every source probed the whole library: a source that did not (an
    // imported profile has no probes at all) may have entered it unseen
    let theirs: BTreeSet<String> = b.tracer.complete_libraries.into_iter().collect();
    tracer.complete_libraries.retain(|l| theirs.contains(l));

    Ok(ExecutionProfile {
        run,
        executables,
        files,
        failed_opens,
        loaded_libraries,
        network,
        syscalls,
        processes,
        functions,
        exercise,
        lost,
        tracer,
    })
}

/// A profile's sources: its spans, or one span made from its run.
fn spans_of(run: &RunInfo) -> Vec<EvidenceSpan> {
    if !run.spans.is_empty() {
        return run.spans.clone();
    }
    let target = match run.source {
        ProfileSource::Sandbox => format!("sandbox:{}", run.image),
        _ => run.image.clone(),
    };
    vec![EvidenceSpan {
        source: run.source,
        target,
        started_at: run.started_at.clone(),
        duration_ms: run.duration_ms,
    }]
}

/// A profile whose `run` fields are a sandbox run's: a sandbox run, or a
/// merge that includes one.
fn is_sandbox(run: &RunInfo) -> bool {
    run.source == ProfileSource::Sandbox
        || run.spans.iter().any(|s| s.source == ProfileSource::Sandbox)
}

fn union_by<T, K: Ord>(
    a: Vec<T>,
    b: Vec<T>,
    key: impl Fn(&T) -> K,
    mut add: impl FnMut(&mut T, T),
) -> Vec<T> {
    let mut by_key: BTreeMap<K, T> = BTreeMap::new();
    for item in a.into_iter().chain(b) {
        match by_key.entry(key(&item)) {
            std::collections::btree_map::Entry::Occupied(mut e) => add(e.get_mut(), item),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(item);
            }
        }
    }
    by_key.into_values().collect()
}

fn add_counts<K: Ord>(into: &mut BTreeMap<K, u64>, from: BTreeMap<K, u64>) {
    for (k, n) in from {
        let slot = into.entry(k).or_default();
        *slot = slot.saturating_add(n);
    }
}

fn sorted_union<T: Ord>(a: Vec<T>, b: Vec<T>) -> Vec<T> {
    let set: BTreeSet<T> = a.into_iter().chain(b).collect();
    set.into_iter().collect()
}
