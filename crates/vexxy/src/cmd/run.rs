//! `vexxy run`: the image in the sandbox, exercised and traced; its
//! execution profile out.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, Result};
use vexxy_analyze::RecordRequest;
use vexxy_model::ExecutionProfile;
use vexxy_run::RunOutput;

use super::inputs;
use crate::{cli::RunArgs, exit::Exit};

pub(crate) fn run(args: &RunArgs, quiet: bool) -> Result<Exit> {
    let request = RecordRequest {
        image: inputs::image(&args.image, &args.fetch)?,
        run: inputs::run(&args.sandbox)?,
    };
    let output = super::with_analysis(quiet, |ctx| vexxy_analyze::record(&request, ctx))?;
    let json = vexxy_profile::to_json(&output.profile);
    match &args.profile_out {
        Some(path) => vexxy_profile::write(path, &output.profile)
            .with_context(|| format!("writing the execution profile to {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&json)
                .and_then(|()| out.write_all(b"\n"))
                .context("writing the profile to stdout")?;
        }
    }
    if !quiet {
        eprint!("{}", summary(&output));
    }
    Ok(Exit::Done)
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The window in a line: "adaptive (quiet 3000 ms, minimum 5000 ms),
/// closed quiet; last new evidence at 412 ms, exercisers done at 530 ms".
fn window_text(w: &vexxy_model::ExerciseWindow) -> String {
    use vexxy_model::{WindowEnd, WindowMode};
    let mode = match w.mode {
        WindowMode::Fixed => "fixed".to_owned(),
        WindowMode::Adaptive {
            quiet_ms,
            minimum_ms,
        } => format!("adaptive (quiet {quiet_ms} ms, minimum {minimum_ms} ms)"),
    };
    let ended = match w.ended {
        WindowEnd::Quiet => "closed quiet",
        WindowEnd::Maximum => "closed at the maximum",
        WindowEnd::Exited => "the workload exited",
        WindowEnd::TimedOut => "hit the hard timeout",
    };
    let last = w.last_evidence_ms.map_or_else(
        || "no new evidence".to_owned(),
        |ms| format!("last new evidence at {ms} ms"),
    );
    format!(
        "{mode}, {ended}; {last}, exercisers done at {} ms",
        w.exercised_ms
    )
}

/// A short human summary of a run.
pub(crate) fn summary(output: &RunOutput) -> String {
    let p: &ExecutionProfile = &output.profile;
    let mut s = String::new();
    let outcome = match p.run.outcome {
        vexxy_model::RunOutcome::StoppedAtEnd => {
            "still running at the end of the window; stopped".to_owned()
        }
        vexxy_model::RunOutcome::Exited(c) => format!("exited with {c}"),
        vexxy_model::RunOutcome::Signaled(sig) => format!("killed by signal {sig}"),
        vexxy_model::RunOutcome::TimedOut => "hit the hard timeout".to_owned(),
    };
    s.push_str(&format!(
        "run: {} ({}), {} ms\n",
        p.run.image, outcome, p.run.duration_ms
    ));
    if let Some(w) = &p.run.window {
        s.push_str(&format!("window: {}\n", window_text(w)));
    }
    s.push_str(&format!(
        "observed: {} executables, {} mapped objects, {} files opened ({} failed names), {} socket uses, {} distinct syscalls, {} processes\n",
        p.executables.len(),
        p.loaded_libraries.len(),
        p.files.len(),
        p.failed_opens.len(),
        p.network.len(),
        p.syscalls.len(),
        p.processes.len()
    ));
    if !p.exercise.ports.is_empty() {
        s.push_str(&format!(
            "exercise: ports {:?}, ready {:?} after {} ms, {} HTTP requests {:?}\n",
            p.exercise.ports,
            p.exercise.ready_ports,
            p.exercise
                .ready_after_ms
                .map_or_else(|| "-".to_owned(), |m| m.to_string()),
            p.exercise.http_requests,
            p.exercise.http_status
        ));
        if p.exercise.http_fuzz_requests > 0 || p.exercise.openapi.is_some() {
            s.push_str(&format!(
                "http: {} fuzz request(s), openapi {}\n",
                p.exercise.http_fuzz_requests,
                p.exercise.openapi.as_deref().unwrap_or("none")
            ));
        }
        for probe in &p.exercise.probes {
            s.push_str(&format!(
                "probe: {} {} {:?}, {}/{} answered\n",
                probe.port, probe.protocol, probe.reach, probe.answered, probe.requests
            ));
        }
    }
    if let Some(script) = &p.exercise.script {
        s.push_str(&format!(
            "test script: {} exit {:?} in {} ms\n",
            script.path, script.exit_code, script.duration_ms
        ));
    }
    for f in &p.functions {
        s.push_str(&format!(
            "function: {}:{} called {} times\n",
            f.library, f.symbol, f.calls
        ));
    }
    for e in &p.tracer.uprobe_errors {
        s.push_str(&format!("uprobe not attached: {e}\n"));
    }
    if p.lost.is_empty() {
        s.push_str("lost events: none\n");
    } else {
        s.push_str(&format!(
            "lost events: ring buffer {}, truncated paths {}, full maps {:?}\n",
            p.lost.ring_buffer, p.lost.truncated_paths, p.lost.map_full
        ));
    }
    s.push_str(&format!(
        "tracer start-up: {} ms; teardown: {} ({} ms, leftovers: {})\n",
        p.tracer.startup_ms,
        if output.teardown.is_clean() {
            "clean"
        } else {
            "INCOMPLETE"
        },
        ms(output.teardown.elapsed),
        output.teardown.leftover_summary()
    ));
    let phases: Vec<String> = output
        .timings
        .iter()
        .map(|(ph, d)| format!("{ph:?} {} ms", ms(*d)))
        .collect();
    s.push_str(&format!("phases: {}\n", phases.join(", ")));
    s
}
