//! `vexxy run`: the image in the sandbox, exercised and traced; its
//! execution profile out.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use vexxy_model::ExecutionProfile;
use vexxy_run::{Phase as RunPhase, RunOutput, RunPlan};

use super::{config, image};
use crate::{
    cli::{RunArgs, SandboxArgs},
    exit::{BadInput, Exit},
};

pub(crate) fn run(args: &RunArgs, quiet: bool) -> Result<Exit> {
    preflight(&args.sandbox)?;
    let resolved = image::resolve(&args.image, &args.fetch, image::Placement::Cached, quiet)?;
    let plan = plan(&args.image, &resolved, &args.sandbox)?;
    let output = execute(&plan, quiet)?;
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

/// Fails early, before any image work, when this machine cannot sandbox
/// or trace (exit code 4, saying what is missing).
pub(crate) fn preflight(args: &SandboxArgs) -> Result<()> {
    vexxy_trace::preflight().context("checking that this machine can trace")?;
    vexxy_sandbox::preflight(&args.runtime)
        .context("checking that this machine can run sandboxes")?;
    Ok(())
}

/// The run plan from the image and the flags.
pub(crate) fn plan(
    reference: &str,
    resolved: &image::Resolved,
    args: &SandboxArgs,
) -> Result<RunPlan> {
    let run_config = match &args.image_config {
        Some(path) => config::read(path)?,
        None => resolved.run.clone(),
    };
    if run_config.argv.is_empty() && args.cmd.is_empty() && args.entrypoint.is_none() {
        return Err(BadInput(format!(
            "image {reference} has no entrypoint or command; give one with --cmd{}",
            if reference.starts_with("dir:") {
                " or --image-config"
            } else {
                ""
            }
        ))
        .into());
    }
    let entrypoint = &run_config.argv[..run_config.entrypoint_len.min(run_config.argv.len())];
    let cmd = &run_config.argv[entrypoint.len()..];
    let env: Vec<String> = run_config
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut process = vexxy_sandbox::ProcessConfig::from_image_config(
        entrypoint,
        cmd,
        &env,
        run_config.working_dir.as_deref(),
        run_config.user.as_deref(),
    );
    if let Some(line) = &args.entrypoint {
        let words = shlex::split(line)
            .filter(|w| !w.is_empty())
            .ok_or_else(|| {
                BadInput(format!("--entrypoint {line:?}: empty or unbalanced quotes"))
            })?;
        process.entrypoint_len = words.len();
        process.args = words;
    }
    if !args.cmd.is_empty() {
        process.override_cmd(cmd_words(&args.cmd)?);
    }
    for kv in &args.env {
        let (k, v) = kv
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| BadInput(format!("--env {kv:?} is not KEY=VALUE")))?;
        process.set_env(k, v);
    }

    let mut plan = RunPlan::new(&resolved.rootfs, reference, process);
    plan.image_digest = resolved.product.digest.as_ref().map(ToString::to_string);
    plan.ports = if args.port.is_empty() {
        vexxy_run::exposed_tcp_ports(run_config.exposed_ports.iter().map(String::as_str))
    } else {
        let mut p = args.port.clone();
        p.sort_unstable();
        p.dedup();
        p
    };
    plan.duration = args.duration;
    plan.timeout = args.timeout;
    plan.http_probe = !args.no_http_probe;
    plan.test_script.clone_from(&args.test_script);
    plan.runtime.clone_from(&args.runtime);
    plan.limits.cpus = args.cpus;
    plan.limits.memory_bytes = parse_size(&args.memory)?;
    plan.limits.pids = args.pids;
    for spec in &args.uprobe {
        let (lib, sym) = spec
            .rsplit_once(':')
            .filter(|(l, s)| l.starts_with('/') && !s.is_empty())
            .ok_or_else(|| BadInput(format!("--uprobe {spec:?} is not /LIBRARY/PATH:SYMBOL")))?;
        plan.uprobes.push((lib.to_owned(), sym.to_owned()));
    }
    Ok(plan)
}

/// Runs the plan with a progress spinner per phase.
pub(crate) fn execute(plan: &RunPlan, quiet: bool) -> Result<RunOutput> {
    let current = std::sync::Mutex::new(None::<crate::progress::Phase>);
    let progress = |phase: RunPhase| {
        let name = phase_name(phase);
        if let Ok(mut slot) = current.lock() {
            if let Some(done) = slot.take() {
                done.finish("");
            }
            *slot = Some(crate::progress::Phase::start(name, quiet));
        }
    };
    let result = vexxy_run::run(plan, &progress);
    if let Ok(mut slot) = current.lock() {
        if let Some(done) = slot.take() {
            done.finish("");
        }
    }
    result.with_context(|| format!("running {}", plan.image))
}

/// What the progress display calls a phase of the run.
pub(crate) fn phase_name(phase: RunPhase) -> &'static str {
    match phase {
        RunPhase::Preparing => "loading the tracer, creating the sandbox",
        RunPhase::WaitingForPorts => "waiting for ports",
        RunPhase::Probing => "probing over HTTP",
        RunPhase::Script => "running the test script",
        RunPhase::Observing => "observing the workload",
        RunPhase::Collecting => "collecting the trace",
        RunPhase::TearingDown => "tearing down the sandbox",
    }
}

/// `--cmd` words: each flag is a word; a single flag is a shell-quoted line.
pub(crate) fn cmd_words(flags: &[String]) -> Result<Vec<String>> {
    if let [one] = flags {
        shlex::split(one)
            .ok_or_else(|| BadInput(format!("--cmd {one:?}: unbalanced quotes")).into())
    } else {
        Ok(flags.to_vec())
    }
}

/// `512m`, `1g`, `1048576`.
pub(crate) fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            BadInput(format!(
                "size {s:?} is not a number of bytes with an optional k/m/g suffix"
            ))
            .into()
        })
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        let cases = [
            ("1g", Some(1u64 << 30)),
            ("512m", Some(512 << 20)),
            ("64K", Some(64 << 10)),
            ("1000", Some(1000)),
            ("2gb", Some(2 << 30)),
            ("x", None),
            ("", None),
        ];
        for (given, want) in cases {
            assert_eq!(parse_size(given).ok(), want, "{given}");
        }
    }

    #[test]
    fn cmd_words_split_one_flag_shell_style() {
        assert_eq!(
            cmd_words(&["nginx -g 'daemon off;'".into()]).unwrap(),
            vec!["nginx", "-g", "daemon off;"]
        );
        assert_eq!(
            cmd_words(&["a b".into(), "c".into()]).unwrap(),
            vec!["a b", "c"]
        );
        assert!(cmd_words(&["'open".into()]).is_err());
    }
}
