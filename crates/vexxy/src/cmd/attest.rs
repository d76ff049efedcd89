//! `vexxy attest`, `vexxy attach`, `vexxy vex fetch`, `vexxy verify`,
//! `vexxy keygen`: flags become calls of `vexxy_analyze::distribute`.

use anyhow::Result;
use vexxy_analyze::{distribute, AnalyzeError, ResultExt as _};
use vexxy_model::Digest;

use super::inputs;
use crate::{
    cli::{AttachArgs, AttestArgs, FetchArgs, KeygenArgs, RegistryArgs, VerifyArgs},
    exit::Exit,
    output,
};

/// Largest key, document or envelope read.
const MAX_BYTES: u64 = 256 << 20;

pub(crate) fn attest(args: &AttestArgs) -> Result<Exit> {
    let pem = inputs::text("--key", &args.key)?;
    let key = vexxy_attest::SigningKey::from_pem(&pem)
        .doing_with(|| format!("key {}", args.key.display()))?;
    let document = inputs::read_file("attest", &args.vex, MAX_BYTES)?;
    // the predicate must be a VEX document we can read; refuse anything else
    let doc = vexxy_vex::read_vex(&document, &args.vex).map_err(AnalyzeError::from)?;
    let (name, digest) = match &args.subject {
        Some(subject) => {
            let (name, digest) = subject.split_once('@').ok_or_else(|| {
                AnalyzeError::bad_input(format!(
                    "--subject {subject:?}: expected NAME@sha256:DIGEST"
                ))
            })?;
            let digest: Digest = digest
                .parse()
                .map_err(|e| AnalyzeError::bad_input(format!("--subject: {e}")))?;
            (name.to_owned(), Some(digest))
        }
        None => {
            let name = match &args.push {
                Some(image) => distribute::repository_of(image)?,
                None => doc
                    .statements
                    .first()
                    .map(|s| s.product.name.clone())
                    .ok_or_else(|| AnalyzeError::bad_input("the VEX document has no statements"))?,
            };
            (name, None)
        }
    };
    let signed = distribute::sign_vex(&distribute::SignRequest {
        document: &document,
        subject_name: &name,
        subject_digest: digest.as_ref(),
        key: &key,
    })
    .doing_with(|| format!("signing {}", args.vex.display()))?;
    if args.output.is_some() || args.push.is_none() {
        output::write(args.output.as_deref(), &signed.envelope)?;
    }
    if let Some(image) = &args.push {
        let target = distribute::pinned_reference(image, &signed.subject)?;
        let attached = distribute::attach(
            &target,
            &signed.envelope,
            &registry_options(&args.registry)?,
        )?;
        print_attached(&target, &attached);
    }
    Ok(Exit::Done)
}

pub(crate) fn attach(args: &AttachArgs) -> Result<Exit> {
    let envelope = inputs::read_file("attach", &args.envelope, MAX_BYTES)?;
    if let Some(path) = &args.key {
        let pem = inputs::text("--key", path)?;
        let key = vexxy_attest::VerifyingKey::from_pem(&pem)
            .doing_with(|| format!("key {}", path.display()))?;
        vexxy_attest::verify(&envelope, &key)
            .doing_with(|| format!("verifying {}", args.envelope.display()))?;
    }
    let attached = distribute::attach(&args.image, &envelope, &registry_options(&args.registry)?)?;
    print_attached(&args.image, &attached);
    Ok(Exit::Done)
}

fn print_attached(image: &str, a: &distribute::Attached) {
    let how = if a.unchanged {
        "already attached, nothing pushed"
    } else if a.referrers_api {
        "attached (referrers API)"
    } else {
        "attached (referrers tag)"
    };
    crate::output::print(&format!(
        "{how}: {image} {subject}\n  envelope {env}\n  cosign tag {tag} → {att}\n  referrer {referrer}\n",
        subject = a.subject,
        env = a.envelope,
        tag = a.cosign_tag,
        att = a.cosign_manifest,
        referrer = a.referrer,
    ));
}

/// Pull options for attaching and fetching: the CLI user's own registry
/// logins (the docker config) unless --creds says otherwise.
fn registry_options(args: &RegistryArgs) -> Result<distribute::RegistryOptions, AnalyzeError> {
    Ok(distribute::RegistryOptions {
        insecure_registries: args.insecure_registry.clone(),
        credentials: inputs::credentials(args)?,
        ..Default::default()
    })
}

pub(crate) fn fetch(args: &FetchArgs) -> Result<Exit> {
    if args.keyless_identity.is_some() {
        return Err(AnalyzeError::unsupported(
            "--keyless-identity: keyless verification needs Sigstore's Fulcio and Rekor trust roots, \
             which this build does not carry; verify with --key",
        )
        .into());
    }
    let path = args
        .key
        .as_ref()
        .ok_or_else(|| AnalyzeError::bad_input("--key: a public key is needed"))?;
    let key = verifying_key(path)?;
    let found = distribute::fetch_vex(&args.image, &key, &registry_options(&args.registry)?)?;
    report_candidates(&args.image, &found);
    if args.list {
        output::print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&listing(&found))?
        ));
    }
    let Some(document) = found.document() else {
        eprintln!(
            "{}: no OpenVEX attestation attached to it verifies with {}",
            args.image,
            path.display()
        );
        return Ok(Exit::NoAttestation);
    };
    let text = serde_json::to_string_pretty(document)?;
    if args.output.is_some() || !args.list {
        output::write(args.output.as_deref(), format!("{text}\n").as_bytes())?;
    }
    Ok(Exit::Done)
}

fn verifying_key(path: &std::path::Path) -> Result<vexxy_attest::VerifyingKey, AnalyzeError> {
    let pem = inputs::text("--key", path)?;
    vexxy_attest::VerifyingKey::from_pem(&pem).doing_with(|| format!("key {}", path.display()))
}

/// One line per attestation found, on stderr.
fn report_candidates(image: &str, found: &distribute::Discovery) {
    for (i, c) in found.candidates.iter().enumerate() {
        let place = match &c.location {
            distribute::AttestationLocation::CosignTag { tag, layer } => {
                format!("{tag} layer {layer}")
            }
            distribute::AttestationLocation::Referrer { manifest } => {
                format!("referrer {manifest}")
            }
        };
        let verdict = match (&c.refused, found.chosen == Some(i)) {
            (None, true) => "verified, used".to_owned(),
            (None, false) => "verified, superseded by a newer document".to_owned(),
            (Some(r), _) => format!("not used: {r}"),
        };
        eprintln!("{image}: {} ({place}): {verdict}", c.digest);
    }
}

fn listing(found: &distribute::Discovery) -> serde_json::Value {
    let items: Vec<serde_json::Value> = found
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (kind, at) = match &c.location {
                distribute::AttestationLocation::CosignTag { tag, layer } => {
                    ("cosign_tag", serde_json::json!({"tag": tag, "layer": layer}))
                }
                distribute::AttestationLocation::Referrer { manifest } => {
                    ("referrer", serde_json::json!({"manifest": manifest.to_string()}))
                }
            };
            serde_json::json!({
                "envelope": c.digest.to_string(),
                "subject": c.subject.to_string(),
                "location": kind,
                "at": at,
                "verified": c.refused.is_none(),
                "used": found.chosen == Some(i),
                "refused": c.refused.as_ref().map(ToString::to_string),
                "timestamp": c.timestamp.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            })
        })
        .collect();
    serde_json::json!({ "attestations": items })
}

pub(crate) fn verify(args: &VerifyArgs) -> Result<Exit> {
    let key = verifying_key(&args.key)?;
    if let Some(image) = &args.image {
        let found = distribute::fetch_vex(image, &key, &registry_options(&args.registry)?)?;
        report_candidates(image, &found);
        for c in found.candidates.iter().filter(|c| c.refused.is_none()) {
            crate::output::print(&format!("verified: {image} {} → {}\n", c.subject, c.digest));
        }
        if let Some(bad) = found.refused().next() {
            return Err(AnalyzeError::bad_input(format!(
                "{image}: the attestation {} does not verify: {}",
                bad.digest,
                bad.refused
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ))
            .into());
        }
        let Some(document) = found.document() else {
            eprintln!("{image}: no OpenVEX attestation is attached");
            return Ok(Exit::NoAttestation);
        };
        if let Some(path) = &args.predicate_out {
            output::write_atomic(
                path,
                serde_json::to_string_pretty(document)?.as_bytes(),
                None,
            )?;
        }
        return Ok(Exit::Done);
    }
    let Some(envelope) = &args.envelope else {
        return Err(AnalyzeError::bad_input("give an ENVELOPE or --image").into());
    };
    let bytes = inputs::read_file("verify", envelope, MAX_BYTES)?;
    let statement = vexxy_attest::verify(&bytes, &key)
        .doing_with(|| format!("verifying {}", envelope.display()))?;
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
