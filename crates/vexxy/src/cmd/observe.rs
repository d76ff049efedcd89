//! `vexxy observe`: running containers traced where they run; their
//! execution profile out, marked observed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use vexxy_observe::{Observation, ObserveError, ObservePhase, ObserveRequest, Selector};

use crate::{cli::ObserveArgs, exit::BadInput, exit::Exit};

pub(crate) fn run(args: &ObserveArgs, quiet: bool) -> Result<Exit> {
    let request = ObserveRequest {
        selector: selector(args)?,
        duration: args.duration,
        uprobes: super::inputs::uprobes(&args.uprobe)?,
        cancel: Arc::new(AtomicBool::new(false)),
        image_digest: args.image_digest.clone(),
    };
    stop_on_signal(&request.cancel);
    let progress = |phase: ObservePhase| {
        if !quiet {
            let line = match phase {
                ObservePhase::Selecting => "observe: finding the containers".to_owned(),
                ObservePhase::Attaching => "observe: attaching the tracer".to_owned(),
                ObservePhase::Observing => format!(
                    "observe: tracing for {} (Ctrl-C stops and keeps what was seen)",
                    humantime::format_duration(args.duration)
                ),
                ObservePhase::Collecting => "observe: collecting".to_owned(),
            };
            eprintln!("{line}");
        }
    };
    let observations = vexxy_observe::observe(&request, &progress).map_err(observe_error)?;
    write(&observations, args.profile_out.as_deref())?;
    if !quiet {
        for o in &observations {
            let p = &o.profile;
            eprintln!(
                "observed {} ({}): {} container(s) for {} ms: {} executables, {} mapped objects, {} files opened, {} socket uses",
                o.image,
                o.image_digest.as_deref().unwrap_or("digest unknown"),
                o.containers.len(),
                p.run.duration_ms,
                p.executables.len(),
                p.loaded_libraries.len(),
                p.files.len(),
                p.network.len()
            );
        }
    }
    Ok(Exit::Done)
}

fn selector(args: &ObserveArgs) -> Result<Selector> {
    if let Some(pid) = args.pid {
        return Ok(Selector::Pid(pid));
    }
    if let Some(cgroup) = &args.cgroup {
        return Ok(Selector::Cgroup(cgroup.clone()));
    }
    let labels = args
        .label
        .iter()
        .map(|l| {
            l.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| BadInput(format!("--label {l}: expected KEY=VALUE")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Selector::Containerd {
        address: args.containerd_address.clone(),
        namespace: args.namespace.clone(),
        id: args.container.clone(),
        labels,
    })
}

/// One profile to `out` (or stdout); several to `out`'s stem with `-N`.
fn write(observations: &[Observation], out: Option<&Path>) -> Result<()> {
    match (observations, out) {
        ([one], Some(path)) => vexxy_profile::write(path, &one.profile)
            .with_context(|| format!("writing the execution profile to {}", path.display())),
        ([one], None) => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&vexxy_profile::to_json(&one.profile))
                .and_then(|()| stdout.write_all(b"\n"))
                .context("writing the profile to stdout")
        }
        (many, Some(path)) => {
            for (i, o) in many.iter().enumerate() {
                let file = numbered(path, i + 1);
                vexxy_profile::write(&file, &o.profile).with_context(|| {
                    format!("writing the execution profile of {} to {}", o.image, file.display())
                })?;
                eprintln!("observe: {} → {}", o.image, file.display());
            }
            Ok(())
        }
        (_, None) => Err(BadInput(format!(
            "the selected containers run {} images: give --profile-out FILE to write one profile per image",
            observations.len()
        ))
        .into()),
    }
}

/// `dir/name.json` → `dir/name-N.json`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(|| "profile".into(), |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    path.with_file_name(format!("{stem}-{n}{ext}"))
}

/// The exit code an observation failure stands for: bad input (2) or a
/// host that cannot trace or reach containerd (4).
pub(super) fn observe_error(e: ObserveError) -> anyhow::Error {
    match e.kind() {
        vexxy_observe::ErrorKind::BadInput => BadInput(e.to_string()).into(),
        vexxy_observe::ErrorKind::Environment => {
            vexxy_analyze::AnalyzeError::unsupported(e.to_string()).into()
        }
    }
}

/// Sets `stop` at SIGTERM or SIGINT: an observation in progress stops
/// and keeps what it saw.
pub(super) fn stop_on_signal(stop: &Arc<AtomicBool>) {
    let stop = Arc::clone(stop);
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(vexxy_server::shutdown_signal());
        stop.store(true, Ordering::Relaxed);
    });
}
