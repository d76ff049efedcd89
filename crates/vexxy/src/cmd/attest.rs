//! `vexxy attest`, `vexxy verify`, `vexxy keygen`.

use anyhow::{Context, Result};

use crate::{
    cli::{AttestArgs, KeygenArgs, VerifyArgs},
    exit::{BadInput, Exit},
    output,
};

pub(crate) fn attest(args: &AttestArgs) -> Result<Exit> {
    let pem = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading key {}", args.key.display()))?;
    let key = vexxy_attest::SigningKey::from_pem(&pem)
        .with_context(|| format!("key {}", args.key.display()))?;
    let (name, digest) = args.subject.split_once('@').ok_or_else(|| {
        BadInput(format!(
            "--subject {:?}: expected NAME@sha256:DIGEST",
            args.subject
        ))
    })?;
    let bytes =
        std::fs::read(&args.vex).with_context(|| format!("reading {}", args.vex.display()))?;
    // The predicate must be a VEX document we can read; refuse anything else.
    vexxy_vex::read_vex(&bytes, &args.vex)?;
    let predicate: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| BadInput(format!("{}: {e}", args.vex.display())))?;
    let envelope = vexxy_attest::attest(
        name,
        digest,
        vexxy_attest::OPENVEX_PREDICATE_TYPE,
        &predicate,
        &key,
    )?;
    let text = serde_json::to_string_pretty(&envelope)?;
    output::write(args.output.as_deref(), text.as_bytes())?;
    Ok(Exit::Done)
}

pub(crate) fn verify(args: &VerifyArgs) -> Result<Exit> {
    let pem = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading key {}", args.key.display()))?;
    let key = vexxy_attest::VerifyingKey::from_pem(&pem)
        .with_context(|| format!("key {}", args.key.display()))?;
    let bytes = std::fs::read(&args.envelope)
        .with_context(|| format!("reading {}", args.envelope.display()))?;
    let statement = vexxy_attest::verify(&bytes, &key)
        .with_context(|| format!("verifying {}", args.envelope.display()))?;
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
        .map_err(|_| BadInput(format!("unknown algorithm {}", args.algorithm)))?;
    let pair = vexxy_attest::generate(alg)?;
    let prefix = args.out_prefix.display().to_string();
    let private = std::path::PathBuf::from(format!("{prefix}.key"));
    let public = std::path::PathBuf::from(format!("{prefix}.pub"));
    if private.exists() {
        return Err(BadInput(format!(
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
