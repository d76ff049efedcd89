//! Running the user's test script against the workload.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, waitid, Pid, Signal, WaitId, WaitIdOptions};
use vexxy_model::ScriptOutcome;

use crate::{ExerciseError, Target};

/// How much of the script's combined stdout and stderr is kept: the last 64 KiB.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// How often the script is checked for having exited.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How long output readers are waited for once the script is gone.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// The shell that runs scripts.
const SHELL: &str = "/bin/sh";

/// A finished test script with the tail of its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRun {
    /// What the profile records.
    pub outcome: ScriptOutcome,
    /// The last [`MAX_OUTPUT_BYTES`] of stdout and stderr, interleaved as
    /// they arrived.
    pub output: Vec<u8>,
    /// Whether earlier output was dropped.
    pub output_truncated: bool,
}

/// Runs `script` with `/bin/sh` inside the target's network namespace (via
/// `nsenter --net=…`; directly when `target.netns` is `None`) and returns its
/// outcome. See [`run_script_captured`].
pub fn run_script(
    target: &Target,
    script: &Path,
    env: &[(String, String)],
    deadline: Instant,
) -> Result<ScriptOutcome, ExerciseError> {
    run_script_captured(target, script, env, deadline).map(|run| run.outcome)
}

/// Variables of this process a script never sees: the service's secrets
/// (its key for sealing organisations' keys and registry logins, its
/// database URL, which may carry a password, and cloud credentials).
const WITHHELD_ENV: &[&str] = &[
    "VEXXY_SECRET_KEY",
    "VEXXY_SECRET_KEY_FILE",
    "VEXXY_METRICS_TOKEN",
    "VEXXY_API_KEY",
    "VEXXY_REGISTRY_CREDS",
    "DATABASE_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// [`run_script`], also returning the tail of the script's output.
///
/// The script runs on the host (its mount namespace, its tools) in the
/// target's network namespace, with stdin closed and the environment of this
/// process (less [`WITHHELD_ENV`]) plus `VEXXY_TARGET_HOST` (the target's address),
/// `VEXXY_TARGET_PORTS` (its ports, comma-separated), `VEXXY_TARGET_URL`
/// (`http://host:first-port/`, when there is a port) and then `env`.
///
/// It runs in a process group of its own. At `deadline` the whole group is
/// killed and the exit code is `None`; when the script exits on its own,
/// whatever it left running in its group is killed too. A script killed by
/// a signal it did not get from here reports `128 + signal`, as shells do.
pub fn run_script_captured(
    target: &Target,
    script: &Path,
    env: &[(String, String)],
    deadline: Instant,
) -> Result<ScriptRun, ExerciseError> {
    run_script_captured_unless(target, script, env, deadline, &AtomicBool::new(false))
}

/// [`run_script_captured`] that also kills the script's process group as
/// soon as `stop` is set (checked as often as the script is checked for
/// having exited): the caller sets it to cancel the run. A script stopped
/// so reports no exit code, as one killed at the deadline does.
pub fn run_script_captured_unless(
    target: &Target,
    script: &Path,
    env: &[(String, String)],
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<ScriptRun, ExerciseError> {
    check_script(script)?;
    let mut command = command(target.netns.as_deref(), script);
    for name in WITHHELD_ENV {
        command.env_remove(name);
    }
    command
        .envs(target_env(target))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let program = command.get_program().to_string_lossy().into_owned();
    let started = Instant::now();
    let mut child = command.spawn().map_err(|source| ExerciseError::Spawn {
        program: program.clone(),
        script: script.to_path_buf(),
        source,
    })?;
    tracing::info!(script = %script.display(), netns = ?target.netns, pid = child.id(), "test script started");

    let tail = Arc::new(Mutex::new(Tail::default()));
    let (done_tx, done_rx) = mpsc::channel();
    let mut readers = 0;
    if let Some(out) = child.stdout.take() {
        spawn_reader(out, Arc::clone(&tail), done_tx.clone());
        readers += 1;
    }
    if let Some(err) = child.stderr.take() {
        spawn_reader(err, Arc::clone(&tail), done_tx);
        readers += 1;
    }

    let killed = supervise(&mut child, script, deadline, stop)?;
    let status = child.wait().map_err(|source| ExerciseError::Wait {
        script: script.to_path_buf(),
        source,
    })?;
    let duration = started.elapsed();

    // The pipes close when the last process holding them ends; one that left
    // the process group may hold them longer: do not wait for it.
    let drain_until = Instant::now() + DRAIN_TIMEOUT;
    for _ in 0..readers {
        let left = drain_until.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            tracing::warn!(script = %script.display(), "a process outside the script's process group keeps its output open");
            break;
        }
    }
    let (output, output_truncated) = {
        let tail = tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            tail.bytes.iter().copied().collect::<Vec<u8>>(),
            tail.truncated,
        )
    };

    let exit_code = if killed {
        None
    } else {
        status.code().or_else(|| status.signal().map(|s| 128 + s))
    };
    let outcome = ScriptOutcome {
        path: script.to_string_lossy().into_owned(),
        exit_code,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
    };
    match exit_code {
        Some(0) => tracing::info!(script = %script.display(), ?duration, "test script passed"),
        _ => tracing::warn!(
            script = %script.display(),
            exit_code = ?exit_code,
            killed_at_deadline = killed,
            output_tail = %last_lines(&output, 20),
            "test script failed"
        ),
    }
    Ok(ScriptRun {
        outcome,
        output,
        output_truncated,
    })
}

fn check_script(script: &Path) -> Result<(), ExerciseError> {
    let file = std::fs::File::open(script).map_err(|source| ExerciseError::ScriptUnreadable {
        path: script.to_path_buf(),
        source,
    })?;
    let meta = file
        .metadata()
        .map_err(|source| ExerciseError::ScriptUnreadable {
            path: script.to_path_buf(),
            source,
        })?;
    if !meta.is_file() {
        return Err(ExerciseError::ScriptNotAFile {
            path: script.to_path_buf(),
        });
    }
    Ok(())
}

/// `nsenter --net=NS -- /bin/sh SCRIPT`, or `/bin/sh SCRIPT` without a namespace.
fn command(netns: Option<&Path>, script: &Path) -> Command {
    match netns {
        Some(ns) => {
            let mut net = OsString::from("--net=");
            net.push(ns);
            let mut c = Command::new("nsenter");
            c.arg(net).arg("--").arg(SHELL).arg(script);
            c
        }
        None => {
            let mut c = Command::new(SHELL);
            c.arg(script);
            c
        }
    }
}

/// The `VEXXY_TARGET_*` variables.
fn target_env(target: &Target) -> Vec<(String, String)> {
    let ports: Vec<String> = target.ports.iter().map(u16::to_string).collect();
    let mut vars = vec![
        ("VEXXY_TARGET_HOST".to_owned(), target.host.to_string()),
        ("VEXXY_TARGET_PORTS".to_owned(), ports.join(",")),
    ];
    if let Some(port) = target.ports.first() {
        let authority = std::net::SocketAddr::new(target.host, *port);
        vars.push((
            "VEXXY_TARGET_URL".to_owned(),
            format!("http://{authority}/"),
        ));
    }
    vars
}

/// Waits until the child exits, `deadline` passes or `stop` is set, then
/// kills its process group (the child is still unreaped, so its pid names
/// the group). Returns whether it was killed before it exited.
fn supervise(
    child: &mut Child,
    script: &Path,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<bool, ExerciseError> {
    let raw = i32::try_from(child.id()).ok();
    let pid = raw.and_then(Pid::from_raw);
    let mut killed = false;
    loop {
        let exited = match pid {
            Some(pid) => match waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
            ) {
                Ok(status) => status.is_some(),
                Err(e) => {
                    return Err(ExerciseError::Wait {
                        script: script.to_path_buf(),
                        source: e.into(),
                    });
                }
            },
            // No usable pid: fall back to reaping (std handles it).
            None => child
                .try_wait()
                .map_err(|source| ExerciseError::Wait {
                    script: script.to_path_buf(),
                    source,
                })?
                .is_some(),
        };
        if exited {
            break;
        }
        let stopped = stop.load(Ordering::Relaxed);
        if stopped || Instant::now() >= deadline {
            if stopped {
                tracing::info!(script = %script.display(), "test script stopped: killing it");
            } else {
                tracing::warn!(script = %script.display(), "test script still running at the deadline: killing it");
            }
            killed = true;
            if pid.is_none() {
                let _ = child.kill();
            }
            break;
        }
        std::thread::sleep(
            POLL_INTERVAL
                .min(deadline.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(1)),
        );
    }
    if let Some(pid) = pid {
        match kill_process_group(pid, Signal::KILL) {
            Ok(()) => {}
            // Nobody left in the group.
            Err(rustix::io::Errno::SRCH) => {}
            Err(e) => {
                tracing::warn!(script = %script.display(), error = %e, "cannot kill the script's process group")
            }
        }
    }
    Ok(killed)
}

/// The last [`MAX_OUTPUT_BYTES`] of output.
#[derive(Debug, Default)]
struct Tail {
    bytes: VecDeque<u8>,
    truncated: bool,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(MAX_OUTPUT_BYTES);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.truncated = true;
        }
    }
}

fn spawn_reader(
    mut pipe: impl Read + Send + 'static,
    tail: Arc<Mutex<Tail>>,
    done: mpsc::Sender<()>,
) {
    let spawned = std::thread::Builder::new()
        .name("vexxy-script-output".into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => tail
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        // The pipe is dropped with the closure: the script gets EPIPE on
        // write, which is better than blocking forever.
        tracing::warn!(error = %e, "cannot start a thread to read the script's output");
    }
}

/// The last `n` lines of `output`, lossily decoded, for logs.
fn last_lines(output: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut tail = Tail::default();
        tail.push(&[b'a'; 10]);
        assert!(!tail.truncated);
        tail.push(&vec![b'b'; MAX_OUTPUT_BYTES]);
        tail.push(b"end");
        assert!(tail.truncated);
        assert_eq!(tail.bytes.len(), MAX_OUTPUT_BYTES);
        let bytes: Vec<u8> = tail.bytes.iter().copied().collect();
        assert!(bytes.ends_with(b"bend"));
        assert!(!bytes.contains(&b'a'));
    }

    #[test]
    fn target_environment() {
        let target = Target {
            netns: None,
            host: [127, 0, 0, 1].into(),
            ports: vec![80, 443],
        };
        assert_eq!(
            target_env(&target),
            [
                ("VEXXY_TARGET_HOST".to_owned(), "127.0.0.1".to_owned()),
                ("VEXXY_TARGET_PORTS".to_owned(), "80,443".to_owned()),
                (
                    "VEXXY_TARGET_URL".to_owned(),
                    "http://127.0.0.1:80/".to_owned()
                ),
            ]
        );
        let v6 = Target {
            netns: None,
            host: std::net::Ipv6Addr::LOCALHOST.into(),
            ports: vec![8080],
        };
        assert_eq!(target_env(&v6)[2].1, "http://[::1]:8080/");
        let none = Target {
            netns: None,
            host: [127, 0, 0, 1].into(),
            ports: vec![],
        };
        assert_eq!(target_env(&none).len(), 2);
    }

    #[test]
    fn nsenter_command_line() {
        let c = command(Some(Path::new("/proc/42/ns/net")), Path::new("t.sh"));
        assert_eq!(c.get_program(), "nsenter");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(args, ["--net=/proc/42/ns/net", "--", "/bin/sh", "t.sh"]);
        let c = command(None, Path::new("t.sh"));
        assert_eq!(c.get_program(), "/bin/sh");
    }
}
