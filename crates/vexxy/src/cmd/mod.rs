//! One module per command. Each returns the exit code on success.

pub(crate) mod admin;
mod analyze;
mod attest;
pub(crate) mod client;
mod generate;
mod images;
mod inputs;
mod node_agent;
mod observe;
mod review;
mod run;
mod sbom;
mod serve;
mod summary;
mod vexdocs;

use anyhow::Result;

use crate::{
    cli::{Cli, Command, VexAction},
    exit::Exit,
};

pub(crate) fn run(cli: Cli) -> Result<Exit> {
    let quiet = cli.global.quiet;
    match cli.command {
        Command::Vex(v) => match &v.action {
            Some(VexAction::Merge(a)) => vexdocs::merge(a),
            Some(VexAction::Validate(a)) => vexdocs::validate(a),
            Some(VexAction::Fetch(a)) => attest::fetch(a),
            None => generate::run(&v.generate, quiet),
        },
        Command::Attest(a) => attest::attest(&a),
        Command::Verify(a) => attest::verify(&a),
        Command::Attach(a) => attest::attach(&a),
        Command::Keygen(a) => attest::keygen(&a),
        Command::Sbom(a) => sbom::run(&a, quiet),
        Command::Run(a) => run::run(&a, quiet),
        Command::Observe(a) => observe::run(&a, quiet),
        Command::Analyze(a) => analyze::analyze(&a, quiet),
        Command::Reevaluate(a) => analyze::reevaluate(&a, quiet),
        Command::Diff(a) => analyze::diff(&a),
        Command::Submit(a) => client::submit(&a, quiet),
        Command::Status(a) => client::status(&a),
        Command::Results(a) => client::results(&a, quiet),
        Command::Cancel(a) => client::cancel(&a),
        Command::Serve(a) => serve::serve(&a),
        Command::Worker(a) if a.node_agent.node_agent => node_agent::run(&a.node_agent, quiet),
        Command::Worker(a) => serve::worker(&a),
        Command::Admin(a) => serve::admin(&a),
        Command::Review(a) => review::run(&a.command),
        Command::Report(a) => images::report(&a.command),
        Command::Compare(a) => images::compare(&a),
        Command::Images(a) => images::run(&a.command),
    }
}

/// Runs one call of the analysis library with the CLI's caches, its
/// progress shown as spinners (cleared before anything is printed).
pub(crate) fn with_analysis<T>(
    quiet: bool,
    call: impl FnOnce(&vexxy_analyze::Context<'_>) -> Result<T, vexxy_analyze::AnalyzeError>,
) -> Result<T> {
    let spinners = crate::progress::Spinners::new(quiet);
    let progress = |p: &vexxy_analyze::Progress| spinners.observe(p);
    let ctx = vexxy_analyze::Context::new(inputs::caches()?).with_progress(&progress);
    let result = call(&ctx);
    drop(ctx);
    drop(spinners);
    Ok(result?)
}
