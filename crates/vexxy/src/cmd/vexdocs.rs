//! `vexxy vex merge` and `vexxy vex validate`, and reading VEX files.

use anyhow::Result;
use vexxy_analyze::AnalyzeError;

use super::inputs;
use crate::{
    cli::{MergeArgs, ValidateArgs},
    exit::Exit,
    output,
};

/// Largest VEX document we read.
const MAX_VEX_BYTES: u64 = 256 << 20;

pub(crate) fn merge(args: &MergeArgs) -> Result<Exit> {
    let now = inputs::timestamp(args.timestamp.as_deref())?;
    let docs = args
        .files
        .iter()
        .map(|p| inputs::vex("merge", p))
        .collect::<Result<Vec<_>, _>>()?;
    let merged = vexxy_vex::merge(docs, &args.author, now);
    let text = vexxy_vex::write_openvex(
        &merged,
        &vexxy_vex::OpenVexOptions {
            embed_evidence: false,
            pretty: true,
        },
    )
    .map_err(AnalyzeError::from)?;
    output::write(args.output.as_deref(), text.as_bytes())?;
    eprintln!(
        "merged {} file(s) into {} statement(s)",
        args.files.len(),
        merged.statements.len()
    );
    Ok(Exit::Done)
}

pub(crate) fn validate(args: &ValidateArgs) -> Result<Exit> {
    let bytes = inputs::read_file("validate", &args.file, MAX_VEX_BYTES)?;
    let report = vexxy_vex::validate_openvex(&bytes, &args.file).map_err(AnalyzeError::from)?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    if report.problems.is_empty() {
        crate::output::print(&format!("{}: valid OpenVEX 0.2.0\n", args.file.display()));
        return Ok(Exit::Done);
    }
    for p in &report.problems {
        crate::output::print(&format!(
            "{}: {}: {}\n",
            args.file.display(),
            p.json_path,
            p.message
        ));
    }
    Err(AnalyzeError::bad_input(format!(
        "{}: {} problem(s)",
        args.file.display(),
        report.problems.len()
    ))
    .into())
}
