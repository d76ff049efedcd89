//! One module per command. Each returns the exit code on success.

mod analyze;
mod attest;
pub(crate) mod client;
mod config;
mod evidence;
mod generate;
mod image;
mod run;
mod sbom;
mod serve;
pub(crate) mod service_analyzer;
mod summary;
mod vexdocs;

use anyhow::Result;
use time::OffsetDateTime;

use crate::{
    cli::{Cli, Command, VexAction},
    exit::{BadInput, Exit},
};

pub(crate) fn run(cli: Cli) -> Result<Exit> {
    let quiet = cli.global.quiet;
    match cli.command {
        Command::Vex(v) => match &v.action {
            Some(VexAction::Merge(a)) => vexdocs::merge(a),
            Some(VexAction::Validate(a)) => vexdocs::validate(a),
            None => generate::run(&v.generate, quiet),
        },
        Command::Attest(a) => attest::attest(&a),
        Command::Verify(a) => attest::verify(&a),
        Command::Keygen(a) => attest::keygen(&a),
        Command::Sbom(a) => sbom::run(&a, quiet),
        Command::Run(a) => run::run(&a, quiet),
        Command::Analyze(a) => analyze::analyze(&a, quiet),
        Command::Reevaluate(a) => analyze::reevaluate(&a, quiet),
        Command::Diff(a) => analyze::diff(&a),
        Command::Submit(a) => client::submit(&a, quiet),
        Command::Status(a) => client::status(&a),
        Command::Results(a) => client::results(&a, quiet),
        Command::Cancel(a) => client::cancel(&a),
        Command::Serve(a) => serve::serve(&a),
        Command::Worker(a) => serve::worker(&a),
        Command::Admin(a) => serve::admin(&a),
    }
}

/// The document timestamp: the flag, else `SOURCE_DATE_EPOCH`, else now.
pub(crate) fn timestamp(flag: Option<&str>) -> Result<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Some(s) = flag {
        return OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
            BadInput(format!(
                "--timestamp {s:?} is not an RFC 3339 date-time: {e}"
            ))
            .into()
        });
    }
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        let secs: i64 = epoch.trim().parse().map_err(|_| {
            BadInput(format!(
                "SOURCE_DATE_EPOCH {epoch:?} is not a number of seconds"
            ))
        })?;
        return OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|e| BadInput(format!("SOURCE_DATE_EPOCH {epoch:?}: {e}")).into());
    }
    // Whole seconds keep documents tidy and stable within a second.
    let now = OffsetDateTime::now_utc();
    Ok(now.replace_nanosecond(0).unwrap_or(now))
}
