//! The parts of an OCI image config that running and static analysis need.

use serde::Deserialize;

use crate::AnalyzeError;

/// Entrypoint, command, environment and the rest of an image's run config.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// Entrypoint followed by command.
    pub argv: Vec<String>,
    /// How many leading `argv` words are the entrypoint.
    pub entrypoint_len: usize,
    /// `Env`, split at the first `=`.
    pub env: Vec<(String, String)>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `User`.
    pub user: Option<String>,
    /// `ExposedPorts` keys (`80/tcp`).
    pub exposed_ports: Vec<String>,
}

impl RunConfig {
    /// The config of an image, as the image crate read it.
    pub fn from_image(config: &vexxy_image::ImageConfig) -> Self {
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

    /// Parses an OCI image config (the full document or its `config`
    /// object); `origin` names it in errors.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self, AnalyzeError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| AnalyzeError::bad_input(format!("image config {origin}: {e}")))?;
        let at = |e: serde_path_to_error::Error<serde_json::Error>| {
            AnalyzeError::bad_input(format!(
                "image config {origin}: at {}: {}",
                e.path(),
                e.inner()
            ))
        };
        let frag: Fragment = if value.get("config").is_some() {
            let full: Full = serde_path_to_error::deserialize(&value).map_err(at)?;
            full.config.unwrap_or_default()
        } else {
            serde_path_to_error::deserialize(&value).map_err(at)?
        };
        let mut argv = frag.entrypoint.unwrap_or_default();
        let entrypoint_len = argv.len();
        argv.extend(frag.cmd.unwrap_or_default());
        Ok(Self {
            argv,
            entrypoint_len,
            env: split_env(&frag.env.unwrap_or_default()),
            working_dir: frag.working_dir,
            user: frag.user,
            exposed_ports: frag.exposed_ports.unwrap_or_default().into_keys().collect(),
        })
    }

    /// The entrypoint words.
    pub fn entrypoint(&self) -> &[String] {
        &self.argv[..self.entrypoint_len.min(self.argv.len())]
    }

    /// The command words after the entrypoint.
    pub fn cmd(&self) -> &[String] {
        &self.argv[self.entrypoint().len()..]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_configs_and_fragments_parse_alike() {
        let fragment = br#"{"Entrypoint":["/docker-entrypoint.sh"],"Cmd":["nginx","-g","daemon off;"],"Env":["PATH=/usr/bin","X=a=b"],"ExposedPorts":{"80/tcp":{}}}"#;
        let full = format!(
            r#"{{"architecture":"amd64","config":{}}}"#,
            String::from_utf8_lossy(fragment)
        );
        for bytes in [fragment.to_vec(), full.into_bytes()] {
            let c = RunConfig::parse(&bytes, "config.json").unwrap();
            assert_eq!(c.entrypoint(), ["/docker-entrypoint.sh"]);
            assert_eq!(c.cmd(), ["nginx", "-g", "daemon off;"]);
            assert_eq!(c.env[1], ("X".to_owned(), "a=b".to_owned()));
            assert_eq!(c.exposed_ports, ["80/tcp"]);
        }
    }

    #[test]
    fn bad_configs_name_the_origin_and_path() {
        let e = RunConfig::parse(br#"{"Cmd":"nginx"}"#, "c.json").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::BadInput);
        assert!(e.to_string().contains("c.json: at Cmd"), "{e}");
        let e = RunConfig::parse(b"{", "c.json").unwrap_err();
        assert!(e.to_string().starts_with("image config c.json"), "{e}");
    }
}
