//! The parts of an OCI image config that static analysis needs.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::exit::BadInput;

/// Entrypoint, command and environment of an image.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunConfig {
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
struct Full {
    config: Option<Fragment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Fragment {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
}

/// Reads an OCI image config (the full document or its `config` object).
pub(crate) fn read(path: &Path) -> Result<RunConfig> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading image config {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| BadInput(format!("image config {}: {e}", path.display())))?;
    let frag: Fragment = if value.get("config").is_some() {
        let full: Full = serde_path_to_error::deserialize(&value).map_err(|e| {
            BadInput(format!(
                "image config {}: at {}: {}",
                path.display(),
                e.path(),
                e.inner()
            ))
        })?;
        full.config.unwrap_or_default()
    } else {
        serde_path_to_error::deserialize(&value).map_err(|e| {
            BadInput(format!(
                "image config {}: at {}: {}",
                path.display(),
                e.path(),
                e.inner()
            ))
        })?
    };
    let mut argv = frag.entrypoint.unwrap_or_default();
    argv.extend(frag.cmd.unwrap_or_default());
    let env = frag
        .env
        .unwrap_or_default()
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    Ok(RunConfig { argv, env })
}

/// `--entrypoint` words: each flag is a word; a single flag with spaces is split.
pub(crate) fn argv_from_flags(words: &[String]) -> Vec<String> {
    if let [one] = words {
        one.split_whitespace().map(str::to_owned).collect()
    } else {
        words.to_vec()
    }
}
