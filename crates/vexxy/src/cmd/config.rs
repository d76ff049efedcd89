//! The parts of an OCI image config that static analysis needs.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::exit::BadInput;

/// Entrypoint, command, environment and the rest of an image's run config.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunConfig {
    /// Entrypoint followed by command.
    pub(crate) argv: Vec<String>,
    /// How many leading `argv` words are the entrypoint.
    pub(crate) entrypoint_len: usize,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) working_dir: Option<String>,
    pub(crate) user: Option<String>,
    /// `ExposedPorts` keys (`80/tcp`).
    pub(crate) exposed_ports: Vec<String>,
}

impl RunConfig {
    /// The config of an image, as the image crate read it.
    pub(crate) fn from_image(config: &vexxy_image::ImageConfig) -> Self {
        let entrypoint = config.entrypoint.clone().unwrap_or_default();
        let entrypoint_len = entrypoint.len();
        let mut argv = entrypoint;
        argv.extend(config.cmd.clone().unwrap_or_default());
        Self {
            argv,
            entrypoint_len,
            env: split_env(&config.env),
            working_dir: config.working_dir.clone(),
            user: config.user.clone(),
            exposed_ports: config.exposed_ports.clone(),
        }
    }
}

fn split_env(env: &[String]) -> Vec<(String, String)> {
    env.iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
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
    working_dir: Option<String>,
    user: Option<String>,
    exposed_ports: Option<std::collections::BTreeMap<String, serde_json::Value>>,
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
    let entrypoint_len = argv.len();
    argv.extend(frag.cmd.unwrap_or_default());
    Ok(RunConfig {
        argv,
        entrypoint_len,
        env: split_env(&frag.env.unwrap_or_default()),
        working_dir: frag.working_dir,
        user: frag.user,
        exposed_ports: frag.exposed_ports.unwrap_or_default().into_keys().collect(),
    })
}

/// `--entrypoint` words: each flag is a word; a single flag with spaces is split.
pub(crate) fn argv_from_flags(words: &[String]) -> Vec<String> {
    if let [one] = words {
        one.split_whitespace().map(str::to_owned).collect()
    } else {
        words.to_vec()
    }
}
