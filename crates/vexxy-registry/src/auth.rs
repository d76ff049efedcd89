//! Credentials: explicit, or from a docker `config.json`.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::RegistryError;

/// The largest docker config file read (1 MiB).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// How to authenticate to the registry. Whatever is chosen is offered both
/// as HTTP basic auth (registries answering `WWW-Authenticate: Basic`) and
/// to the token service of registries answering `WWW-Authenticate: Bearer`.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials (anonymous tokens where the registry hands them out).
    #[default]
    Anonymous,
    /// A user name and password (or access token used as a password).
    Basic {
        /// User name.
        user: String,
        /// Password or token.
        pass: String,
    },
    /// Look the registry up in `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`; anonymous when absent there.
    FromDockerConfig,
    /// Look the registry up in this docker `config.json` file.
    DockerConfigFile(PathBuf),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("pass", &"<redacted>")
                .finish(),
            Self::FromDockerConfig => f.write_str("FromDockerConfig"),
            Self::DockerConfigFile(p) => f.debug_tuple("DockerConfigFile").field(p).finish(),
        }
    }
}

/// The docker config file [`Credentials::FromDockerConfig`] reads:
/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// Resolves credentials for `registry` into what the client sends, plus any
/// warnings (credential helpers that were not run).
pub(crate) fn resolve(
    creds: &Credentials,
    registry: &str,
) -> Result<(RegistryAuth, Vec<String>), RegistryError> {
    match creds {
        Credentials::Anonymous => Ok((RegistryAuth::Anonymous, Vec::new())),
        Credentials::Basic { user, pass } => {
            Ok((RegistryAuth::Basic(user.clone(), pass.clone()), Vec::new()))
        }
        Credentials::FromDockerConfig => match default_docker_config_path() {
            Some(path) if path.exists() => from_file(&path, registry),
            _ => Ok((RegistryAuth::Anonymous, Vec::new())),
        },
        Credentials::DockerConfigFile(path) => from_file(path, registry),
    }
}

fn from_file(path: &Path, registry: &str) -> Result<(RegistryAuth, Vec<String>), RegistryError> {
    let bad = |reason: String| RegistryError::DockerConfig {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string().to_lowercase()))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(bad(format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    let text = std::fs::read(path).map_err(|e| bad(e.to_string().to_lowercase()))?;
    let found = lookup(&text, registry).map_err(bad)?;
    let auth = match found.creds {
        Some((user, pass)) => RegistryAuth::Basic(user, pass),
        None => RegistryAuth::Anonymous,
    };
    let warnings = found
        .warnings
        .into_iter()
        .map(|w| format!("docker config {}: {w}", path.display()))
        .collect::<Vec<_>>();
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok((auth, warnings))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DockerConfig {
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(rename = "credHelpers")]
    cred_helpers: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// What a docker config says about one registry.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) creds: Option<(String, String)>,
    pub(crate) warnings: Vec<String>,
}

/// Finds the credentials for `registry` in the text of a docker config.
pub(crate) fn lookup(text: &[u8], registry: &str) -> Result<Found, String> {
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("invalid json: {e}"))?;
    if !value.is_object() {
        return Err("not a json object".to_owned());
    }
    let config: DockerConfig =
        serde_json::from_value(value).map_err(|e| format!("unexpected content: {e}"))?;
    let want = normalize_host(registry);
    let mut found = Found::default();

    if let Some(helper) = config
        .cred_helpers
        .iter()
        .find(|(k, _)| normalize_host(k) == want)
        .map(|(_, v)| v)
    {
        found.warnings.push(format!(
            "credential helper docker-credential-{helper} is configured for {registry} but \
             credential helpers are not run; using credentials stored in the file, if any"
        ));
    }

    let entry = config
        .auths
        .iter()
        .find(|(k, _)| normalize_host(k) == want)
        .map(|(_, v)| v);
    if let Some(entry) = entry {
        if let Some(encoded) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| format!("auths.{registry}.auth is not base64"))?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| format!("auths.{registry}.auth is not utf-8"))?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| format!("auths.{registry}.auth is not user:password"))?;
            found.creds = Some((user.to_owned(), pass.to_owned()));
        } else if let (Some(user), Some(pass)) = (&entry.username, &entry.password) {
            found.creds = Some((user.clone(), pass.clone()));
        } else if entry.identitytoken.is_some() {
            found.warnings.push(format!(
                "auths.{registry} holds only an identity token, which is not supported; \
                 pulling anonymously"
            ));
        }
    }
    if found.creds.is_none() {
        if let Some(store) = &config.creds_store {
            found.warnings.push(format!(
                "credsStore docker-credential-{store} is configured but credential helpers \
                 are not run; pulling from {registry} anonymously"
            ));
        }
    }
    Ok(found)
}

/// Reduces a config key or registry name to a comparable host: drops the
/// scheme and any path, lowercases, and folds Docker Hub's aliases.
fn normalize_host(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn reads_auth_field_and_username_password() {
        let text = format!(
            r#"{{"auths": {{
                "127.0.0.1:5000": {{"auth": "{}"}},
                "https://index.docker.io/v1/": {{"username": "hub", "password": "p:w"}}
            }}}}"#,
            b64("alice:s3cr:et")
        );
        let f = lookup(text.as_bytes(), "127.0.0.1:5000").expect("parses");
        assert_eq!(f.creds, Some(("alice".into(), "s3cr:et".into())));
        assert!(f.warnings.is_empty());
        let f = lookup(text.as_bytes(), "docker.io").expect("parses");
        assert_eq!(f.creds, Some(("hub".into(), "p:w".into())));
        let f = lookup(text.as_bytes(), "ghcr.io").expect("parses");
        assert_eq!(f, Found::default());
    }

    #[test]
    fn warns_about_credential_helpers() {
        let text = br#"{"credsStore": "desktop", "credHelpers": {"gcr.io": "gcloud"}}"#;
        let f = lookup(text, "gcr.io").expect("parses");
        assert_eq!(f.creds, None);
        assert_eq!(f.warnings.len(), 2, "{:?}", f.warnings);
        assert!(
            f.warnings[0].contains("docker-credential-gcloud"),
            "{:?}",
            f.warnings
        );
        assert!(
            f.warnings[1].contains("docker-credential-desktop"),
            "{:?}",
            f.warnings
        );
        assert!(f.warnings.iter().all(|w| w.contains("not run")));
    }

    #[test]
    fn rejects_malformed_entries() {
        assert!(lookup(b"{not json", "r")
            .expect_err("bad")
            .contains("invalid json"));
        let text = br#"{"auths": {"r:1": {"auth": "%%%"}}}"#;
        assert!(lookup(text, "r:1")
            .expect_err("bad")
            .contains("auths.r:1.auth"));
        let text = format!(
            r#"{{"auths": {{"r:1": {{"auth": "{}"}}}}}}"#,
            b64("nocolon")
        );
        assert!(lookup(text.as_bytes(), "r:1")
            .expect_err("bad")
            .contains("user:password"));
    }

    #[test]
    fn file_errors_name_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, "[]").expect("write");
        let e = resolve(&Credentials::DockerConfigFile(path.clone()), "r").expect_err("bad");
        assert!(e.is_bad_input());
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        let missing = dir.path().join("nope.json");
        let e = resolve(&Credentials::DockerConfigFile(missing.clone()), "r").expect_err("bad");
        assert!(e.to_string().contains("nope.json"), "{e}");
    }

    #[test]
    fn debug_redacts_password() {
        let c = Credentials::Basic {
            user: "u".into(),
            pass: "hunter2".into(),
        };
        let s = format!("{c:?}");
        assert!(s.contains("redacted") && !s.contains("hunter2"), "{s}");
    }
}
