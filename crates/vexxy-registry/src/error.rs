//! The one error type of this crate.

use std::path::PathBuf;

use oci_client::errors::{OciDistributionError, OciErrorCode};

/// Everything that can go wrong while pulling an image.
///
/// Every message is lowercase and names the reference, digest, registry or
/// path involved. [`RegistryError::is_bad_input`] separates problems with
/// what the user asked for or what the registry served (a bad reference,
/// refused credentials, a tampered blob) from trouble on the way (network,
/// local disk).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The image reference could not be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    BadReference {
        /// The reference as given.
        reference: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The requested platform is not `os/arch[/variant]`.
    #[error("invalid platform {platform:?}: expected os/arch or os/arch/variant")]
    BadPlatform {
        /// The platform as given.
        platform: String,
    },
    /// A docker `config.json` could not be read or parsed.
    #[error("cannot use docker config {path}: {reason}")]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The registry (or its token service) refused the credentials, or
    /// demanded credentials when none were given.
    #[error("registry {registry} refused access to {reference}: {reason}")]
    AuthRefused {
        /// Registry host.
        registry: String,
        /// The image reference.
        reference: String,
        /// What the registry or token service said.
        reason: String,
    },
    /// The repository, tag, manifest or blob does not exist.
    #[error("{reference} not found on registry {registry}: {reason}")]
    NotFound {
        /// Registry host.
        registry: String,
        /// The image reference (or the blob digest within it).
        reference: String,
        /// What the registry said.
        reason: String,
    },
    /// A manifest's bytes do not hash to the digest that names them.
    #[error(
        "manifest of {reference} from registry {registry} hashes to {actual}, expected {expected}"
    )]
    ManifestDigestMismatch {
        /// Registry host.
        registry: String,
        /// The image reference.
        reference: String,
        /// The digest the manifest should have.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A blob's content does not match its descriptor (digest or size);
    /// nothing was stored for it.
    #[error("blob {digest} of {reference} from registry {registry} rejected: {reason}")]
    BlobMismatch {
        /// Registry host.
        registry: String,
        /// The image reference.
        reference: String,
        /// The descriptor's digest.
        digest: String,
        /// What did not match.
        reason: String,
    },
    /// An image index has no manifest for the wanted platform.
    #[error("image index of {reference} has no manifest for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        /// The image reference.
        reference: String,
        /// The wanted platform.
        platform: String,
        /// The platforms the index lists, comma-separated.
        available: String,
    },
    /// The manifest is well-formed but of a kind this crate does not pull
    /// (schema 1, non-sha256 digests, unknown media type).
    #[error("unsupported manifest {digest} of {reference}: {reason}")]
    Unsupported {
        /// The image reference.
        reference: String,
        /// The manifest digest.
        digest: String,
        /// What is unsupported.
        reason: String,
    },
    /// The manifest cannot be parsed or violates the image spec.
    #[error("malformed manifest {digest} of {reference}: {reason}")]
    BadManifest {
        /// The image reference.
        reference: String,
        /// The manifest digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// Transport trouble talking to the registry (connection, TLS, timeout,
    /// an unreadable response).
    #[error("request to registry {registry} for {reference} failed: {source}")]
    Network {
        /// Registry host.
        registry: String,
        /// The image reference.
        reference: String,
        /// The client's error.
        #[source]
        source: OciDistributionError,
    },
    /// The registry answered with a server-side error.
    #[error("registry {registry} failed serving {reference}: {reason}")]
    Registry {
        /// Registry host.
        registry: String,
        /// The image reference.
        reference: String,
        /// What the registry said.
        reason: String,
    },
    /// An existing file in the layout directory is not valid OCI layout
    /// content (a malformed `oci-layout` or `index.json`).
    #[error("{path} is not a usable oci image layout: {reason}")]
    BadLayout {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing the layout failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime for [`crate::pull_blocking`] could not start.
    #[error("cannot start the async runtime for pulling {reference}: {source}")]
    Runtime {
        /// The image reference.
        reference: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// True when the fault lies with the input (the reference, the
    /// credentials, the platform, a config file, or content the registry
    /// served that fails verification); false for network, registry-side and
    /// local I/O trouble, which a retry might fix.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::BadReference { .. }
            | Self::BadPlatform { .. }
            | Self::DockerConfig { .. }
            | Self::AuthRefused { .. }
            | Self::NotFound { .. }
            | Self::ManifestDigestMismatch { .. }
            | Self::BlobMismatch { .. }
            | Self::NoMatchingPlatform { .. }
            | Self::Unsupported { .. }
            | Self::BadManifest { .. }
            | Self::BadLayout { .. } => true,
            Self::Network { .. }
            | Self::Registry { .. }
            | Self::Io { .. }
            | Self::Runtime { .. } => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Where a client error happened, to name it in the message.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) registry: String,
    pub(crate) reference: String,
}

impl Ctx {
    /// Maps an oci-client error onto this crate's error kinds.
    pub(crate) fn map(&self, err: OciDistributionError) -> RegistryError {
        let registry = self.registry.clone();
        let reference = self.reference.clone();
        match err {
            OciDistributionError::AuthenticationFailure(body) => RegistryError::AuthRefused {
                registry,
                reference,
                reason: format!(
                    "the token service refused to issue a token: {}",
                    one_line(&body)
                ),
            },
            OciDistributionError::UnauthorizedError { url } => RegistryError::AuthRefused {
                registry,
                reference,
                reason: format!("unauthorized (http 401) for {url}; check the credentials"),
            },
            OciDistributionError::RegistryError { envelope, url } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let reason = format!("{} ({url})", one_line(&envelope.to_string()));
                if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    RegistryError::AuthRefused {
                        registry,
                        reference,
                        reason,
                    }
                } else if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    RegistryError::NotFound {
                        registry,
                        reference,
                        reason,
                    }
                } else {
                    RegistryError::Registry {
                        registry,
                        reference,
                        reason,
                    }
                }
            }
            OciDistributionError::ServerError { code, url, message } => {
                let reason = format!("http {code} for {url}: {}", one_line(&message));
                match code {
                    401 | 403 => RegistryError::AuthRefused {
                        registry,
                        reference,
                        reason,
                    },
                    404 => RegistryError::NotFound {
                        registry,
                        reference,
                        reason,
                    },
                    _ => RegistryError::Registry {
                        registry,
                        reference,
                        reason,
                    },
                }
            }
            OciDistributionError::DigestError(
                oci_client::errors::DigestError::VerificationError { expected, actual },
            ) => RegistryError::ManifestDigestMismatch {
                registry,
                reference,
                expected,
                actual,
            },
            other => RegistryError::Network {
                registry,
                reference,
                source: other,
            },
        }
    }
}

/// Collapses whitespace and caps length so server text fits in one line.
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() > 300 {
        let cut: String = joined.chars().take(300).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx {
            registry: "127.0.0.1:5000".into(),
            reference: "127.0.0.1:5000/nginx:latest".into(),
        }
    }

    #[test]
    fn maps_client_errors_to_kinds() {
        let e = ctx().map(OciDistributionError::UnauthorizedError {
            url: "http://x/v2/".into(),
        });
        assert!(matches!(e, RegistryError::AuthRefused { .. }), "{e:?}");
        assert!(e.is_bad_input());
        assert!(e.to_string().contains("127.0.0.1:5000/nginx:latest"), "{e}");

        let e = ctx().map(OciDistributionError::ServerError {
            code: 503,
            url: "http://x/v2/".into(),
            message: "busy\n  now".into(),
        });
        assert!(matches!(e, RegistryError::Registry { .. }), "{e:?}");
        assert!(!e.is_bad_input());
        assert!(e.to_string().contains("busy now"), "{e}");

        let e = ctx().map(OciDistributionError::ServerError {
            code: 404,
            url: "u".into(),
            message: String::new(),
        });
        assert!(
            matches!(e, RegistryError::NotFound { .. }) && e.is_bad_input(),
            "{e:?}"
        );

        let e = ctx().map(OciDistributionError::IoError(std::io::Error::other(
            "reset",
        )));
        assert!(
            matches!(e, RegistryError::Network { .. }) && !e.is_bad_input(),
            "{e:?}"
        );
    }

    #[test]
    fn messages_start_lowercase() {
        let errs = [
            RegistryError::BadPlatform {
                platform: "x".into(),
            },
            RegistryError::BlobMismatch {
                registry: "r".into(),
                reference: "r/n:t".into(),
                digest: "sha256:00".into(),
                reason: "size".into(),
            },
            RegistryError::io("/tmp/x", std::io::Error::other("boom")),
        ];
        for e in errs {
            let s = e.to_string();
            assert!(s.chars().next().is_some_and(|c| !c.is_uppercase()), "{s}");
        }
    }

    #[test]
    fn long_server_text_is_capped() {
        let s = one_line(&"word ".repeat(200));
        assert!(s.chars().count() <= 301 && s.ends_with('…'), "{s}");
    }
}
