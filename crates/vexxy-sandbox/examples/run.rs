//! Runs a command in a sandbox and prints its output and teardown report:
//! `cargo run -p vexxy-sandbox --example run -- ROOTFS [--timeout SECS] CMD [ARGS...]`.

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use vexxy_sandbox::{ProcessConfig, Sandbox, SandboxConfig};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: run ROOTFS [--timeout SECS] CMD [ARGS...]");
        return ExitCode::from(2);
    }
    let rootfs = PathBuf::from(args.remove(0));
    let mut timeout = Duration::from_secs(30);
    if args.first().map(String::as_str) == Some("--timeout") && args.len() > 2 {
        timeout = Duration::from_secs(args[1].parse().unwrap_or(30));
        args.drain(..2);
    }
    let process = ProcessConfig::from_image_config(&[], &args, &[], None, None);
    let mut sb = match Sandbox::create(SandboxConfig::new(rootfs, process)) {
        Ok(sb) => sb,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = sb.start() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let status = sb.wait_exit(Instant::now() + timeout);
    print!("{}", sb.stdout_tail(1 << 20));
    eprint!("{}", sb.stderr_tail(1 << 20));
    eprintln!("--- status: {status:?}");
    match sb.teardown() {
        Ok(r) => {
            for s in &r.steps {
                eprintln!("--- {:<60} {:?} ({:?})", s.name, s.outcome, s.elapsed);
            }
            eprintln!("--- teardown clean in {:?}", r.elapsed);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
