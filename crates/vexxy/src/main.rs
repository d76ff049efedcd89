//! The `vexxy` command line.
//!
//! Exit codes (also in `vexxy --help`):
//! - 0: done;
//! - 1: done, but findings are left undecided and `--fail-on-undecided` was given;
//! - 2: bad input (a file that does not parse, an unknown format, a bad flag,
//!   a VEX document that fails validation, an envelope that fails verification);
//! - 3: internal error (I/O trouble, a bug; for the service client: the
//!   service cannot be reached or fails);
//! - 4: this machine cannot run the sandbox or the tracer;
//! - 5: (service client) the service reports the job failed or was cancelled;
//! - 6: (service client) the service refused the request (API key, tier, quota).
//!
//! Nothing here decides anything: the commands wire the library crates
//! together, report progress and choose the exit code.

mod cli;
mod cmd;
mod exit;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(&cli.global);
    match cmd::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            let code = exit::classify(&err);
            eprintln!("error: {err:#}");
            code.into()
        }
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the verbosity flags.
fn init_tracing(g: &cli::Global) {
    use tracing_subscriber::{fmt, EnvFilter};
    let level = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if g.log_json {
        builder.json().init();
    } else {
        builder.without_time().init();
    }
}
