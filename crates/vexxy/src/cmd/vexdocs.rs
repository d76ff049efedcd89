//! `vexxy vex merge` and `vexxy vex validate`, and reading VEX files.

use std::path::Path;

use anyhow::{Context, Result};
use vexxy_model::VexDocument;

use crate::{
    cli::{MergeArgs, ValidateArgs},
    exit::{BadInput, Exit},
    output,
};

/// Largest VEX document we read.
const MAX_VEX_BYTES: u64 = 256 << 20;

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > MAX_VEX_BYTES {
        return Err(BadInput(format!(
            "{}: {} bytes is more than the limit of {MAX_VEX_BYTES}",
            path.display(),
            meta.len()
        ))
        .into());
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Reads any VEX document (OpenVEX, CycloneDX VEX, CSAF).
pub(crate) fn read(path: &Path) -> Result<VexDocument> {
    let bytes = read_bytes(path)?;
    Ok(vexxy_vex::read_vex(&bytes, path)?)
}

pub(crate) fn merge(args: &MergeArgs) -> Result<Exit> {
    let now = super::timestamp(args.timestamp.as_deref())?;
    let docs = args
        .files
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>>>()?;
    let merged = vexxy_vex::merge(docs, &args.author, now);
    let text = vexxy_vex::write_openvex(
        &merged,
        &vexxy_vex::OpenVexOptions {
            embed_evidence: false,
            pretty: true,
        },
    )?;
    output::write(args.output.as_deref(), text.as_bytes())?;
    eprintln!(
        "merged {} file(s) into {} statement(s)",
        args.files.len(),
        merged.statements.len()
    );
    Ok(Exit::Done)
}

pub(crate) fn validate(args: &ValidateArgs) -> Result<Exit> {
    let bytes = read_bytes(&args.file)?;
    let report = vexxy_vex::validate_openvex(&bytes, &args.file)?;
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
    Err(BadInput(format!(
        "{}: {} problem(s)",
        args.file.display(),
        report.problems.len()
    ))
    .into())
}
