//! `vexxy attest`, `vexxy verify`, `vexxy keygen`.

use anyhow::Result;
use vexxy_analyze::{AnalyzeError, ResultExt as _};

use super::inputs;
use crate::{
    cli::{AttestArgs, KeygenArgs, VerifyArgs},
    exit::Exit,
    output,
};

/// Largest key, document or envelope read.
const MAX_BYTES: u64 = 256 << 20;

pub(crate) fn attest(args: &AttestArgs) -> Result<Exit> {
    let pem = inputs::text("--key", &args.key)?;
    let key = vexxy_attest::SigningKey::from_pem(&pem)
        .doing_with(|| format!("key {}", args.key.display()))?;
    let (name, digest) = args.subject.split_once('@').ok_or_else(|| {
        AnalyzeError::bad_input(format!(
            "--subject {:?}: expected NAME@sha256:DIGEST",
            args.subject
        ))
    })?;
    let bytes = inputs::read_file("attest", &args.vex, MAX_BYTES)?;
    // the predicate must be a VEX document we can read; refuse anything else
    vexxy_vex::read_vex(&bytes, &args.vex).map_err(AnalyzeError::from)?;
    let predicate: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| AnalyzeError::bad_input(format!("{}: {e}", args.vex.display())))?;
    let envelope = vexxy_attest::attest(
        name,
        digest,
        vexxy_attest::OPENVEX_PREDICATE_TYPE,
        &predicate,
        &key,
    )
    .map_err(AnalyzeError::from)?;
    let text = serde_json::to_string_pretty(&envelope)?;
    output::write(args.output.as_deref(), text.as_bytes())?;
    Ok(Exit::Done)
}

pub(crate) fn verify(args: &VerifyArgs) -> Result<Exit> {
    let pem = inputs::text("--key", &args.key)?;
    let key = vexxy_attest::VerifyingKey::from_pem(&pem)
        .doing_with(|| format!("key {}", args.key.display()))?;
    let bytes = inputs::read_file("verify", &args.envelope, MAX_BYTES)?;
    let statement = vexxy_attest::verify(&bytes, &key)
        .doing_with(|| format!("verifying {}", args.envelope.display()))?;
    for s in &statement.subject {
        for (alg, hex) in &s.digest {
            crate::output::print(&format!(
                "verified: {}@{alg}:{hex} ({})\n",
                s.name, statement.predicate_type
            ));
        }
    }
    if let Some(path) = &args.predicate_out {
        output::write_atomic(
            path,
            serde_json::to_string_pretty(&statement.predicate)?.as_bytes(),
            None,
        )?;
    }
    Ok(Exit::Done)
}

pub(crate) fn keygen(args: &KeygenArgs) -> Result<Exit> {
    let alg: vexxy_attest::KeyAlgorithm = args
        .algorithm
        .parse()
        .map_err(|_| AnalyzeError::bad_input(format!("unknown algorithm {}", args.algorithm)))?;
    let pair = vexxy_attest::generate(alg).map_err(AnalyzeError::from)?;
    let prefix = args.out_prefix.display().to_string();
    let private = std::path::PathBuf::from(format!("{prefix}.key"));
    let public = std::path::PathBuf::from(format!("{prefix}.pub"));
    if private.exists() {
        return Err(AnalyzeError::bad_input(format!(
            "{} exists; refusing to overwrite a key",
            private.display()
        ))
        .into());
    }
    output::write_atomic(&private, pair.private_pem.as_bytes(), Some(0o600))?;
    output::write_atomic(&public, pair.public_pem.as_bytes(), None)?;
    crate::output::print(&format!(
        "wrote {} and {}\n",
        private.display(),
        public.display()
    ));
    Ok(Exit::Done)
}
