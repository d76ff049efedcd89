//! The one error type of this crate.

use std::path::PathBuf;

use oci_client::errors::{OciDistributionError, OciErrorCode};

/// Everything that can go wrong while pulling an image, or attaching
/// attestations to one and listing them.
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
    #[error("request to registry {registry} for {reference} failed: {reason}")]
    Network {
        /// Registry host.
        registry: String,
        /// The image reference.
        reference: String,
        /// What failed, in this crate's words (never a response body).
        reason: String,
    },
    /// The egress policy refused a destination of the pull (the registry
    /// itself, its token service, a redirect, a foreign layer URL), or
    /// could not resolve the registry's host to check it.
    #[error("reaching registry {registry} for {reference}: {source}")]
    Egress {
        /// Registry host.
        registry: String,
        /// The image reference.
        reference: String,
        /// The policy's reason.
        #[source]
        source: Box<vexxy_egress::EgressError>,
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
    /// The async runtime for [`crate::pull_blocking`] (or another
    /// `_blocking` function) could not start.
    #[error("cannot start the async runtime for {reference}: {source}")]
    Runtime {
        /// The image reference.
        reference: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The envelope given to attach is not a DSSE JSON envelope carrying an
    /// in-toto statement (payload type `application/vnd.in-toto+json`,
    /// standard base64 payload, at least one signature entry), or is larger
    /// than 16 MiB. Nothing was sent to the registry.
    #[error("cannot attach the envelope to {reference}: {reason}")]
    BadEnvelope {
        /// The image reference.
        reference: String,
        /// What is wrong with the envelope (never its content).
        reason: String,
    },
    /// The statement in the envelope is not about the manifest the
    /// reference resolves to. Nothing was pushed.
    #[error("the attestation is about {statement}, but {reference} resolves to {subject}")]
    SubjectMismatch {
        /// The image reference.
        reference: String,
        /// The digest the reference resolves to.
        subject: String,
        /// The sha256 digests the statement's subjects name, comma-separated
        /// (`none` when it names no sha256 digest).
        statement: String,
    },
    /// An option of the attach is invalid (e.g. a `created` time that is
    /// not RFC 3339).
    #[error("invalid attach option for {reference}: {reason}")]
    BadAttachOption {
        /// The image reference.
        reference: String,
        /// What is wrong.
        reason: String,
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
            | Self::BadLayout { .. }
            | Self::BadEnvelope { .. }
            | Self::SubjectMismatch { .. }
            | Self::BadAttachOption { .. } => true,
            Self::Egress { source, .. } => source.is_bad_input(),
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
    /// What the egress proxy refused, when the pull runs under a policy.
    pub(crate) egress: Option<vexxy_egress::ProxyLog>,
}

impl Ctx {
    /// The same place under another name (a tag or digest of the same
    /// repository), for messages about it.
    pub(crate) fn about(&self, reference: String) -> Ctx {
        Ctx {
            registry: self.registry.clone(),
            reference,
            egress: self.egress.clone(),
        }
    }

    /// An HTTP status the registry answered a plain request with (the
    /// egress refusal behind it, if any: the proxy answers 403 for
    /// destinations it refuses). `url` is only used for its host.
    pub(crate) fn status(&self, code: u16, url: &str) -> RegistryError {
        if let Some(refused) = self.refused() {
            return refused;
        }
        let registry = self.registry.clone();
        let reference = self.reference.clone();
        let reason = format!("http {code} from {}", url_host(url));
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

    /// A transport failure of a plain request, in words that carry
    /// nothing a server sent.
    pub(crate) fn transport(&self, err: &reqwest::Error) -> RegistryError {
        self.network(chain(err))
    }

    /// The policy's refusal, when the proxy refused something: whatever
    /// the client then reported is a consequence of it.
    fn refused(&self) -> Option<RegistryError> {
        let source = self.egress.as_ref()?.first_refusal()?;
        Some(RegistryError::Egress {
            registry: self.registry.clone(),
            reference: self.reference.clone(),
            source: Box::new(source),
        })
    }

    /// A transport failure (the egress refusal behind it, if any).
    pub(crate) fn network(&self, reason: String) -> RegistryError {
        self.refused().unwrap_or_else(|| RegistryError::Network {
            registry: self.registry.clone(),
            reference: self.reference.clone(),
            reason,
        })
    }

    /// Maps an oci-client error onto this crate's error kinds. Nothing a
    /// server sent is carried over but status codes, OCI error codes and
    /// the host a URL names: a hostile registry (or whatever it redirects
    /// to) cannot put text into the error.
    pub(crate) fn map(&self, err: OciDistributionError) -> RegistryError {
        if let Some(refused) = self.refused() {
            return refused;
        }
        let registry = self.registry.clone();
        let reference = self.reference.clone();
        match err {
            OciDistributionError::AuthenticationFailure(_) => RegistryError::AuthRefused {
                registry,
                reference,
                reason: "the token service refused to issue a token".into(),
            },
            OciDistributionError::UnauthorizedError { url } => RegistryError::AuthRefused {
                registry,
                reference,
                reason: format!(
                    "unauthorized (http 401) from {}; check the credentials",
                    url_host(&url)
                ),
            },
            OciDistributionError::RegistryError { envelope, url } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let names: Vec<String> = codes.iter().map(|c| code_name(c)).collect();
                let reason = format!(
                    "error code {} from {}",
                    if names.is_empty() {
                        "(none)".to_owned()
                    } else {
                        names.join(", ")
                    },
                    url_host(&url)
                );
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
            OciDistributionError::ServerError { code, url, .. } => {
                let reason = format!("http {code} from {}", url_host(&url));
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
                expected: digest_or_placeholder(&expected),
                actual: digest_or_placeholder(&actual),
            },
            other => RegistryError::Network {
                registry,
                reference,
                reason: describe(&other),
            },
        }
    }
}

/// `host[:port]` of a URL, without user info, path or query.
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        "the registry".to_owned()
    } else {
        host.to_ascii_lowercase()
    }
}

/// An OCI error code as the spec spells it (`MANIFEST_UNKNOWN`).
fn code_name(code: &OciErrorCode) -> String {
    match serde_json::to_value(code) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "UNKNOWN".to_owned(),
    }
}

/// A digest as given when it looks like one (`algorithm:hex`), else a
/// placeholder: the value may come from a response header.
pub(crate) fn digest_or_placeholder(d: &str) -> String {
    let ok = d.split_once(':').is_some_and(|(alg, hex)| {
        !alg.is_empty()
            && alg.len() <= 32
            && alg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+._-".contains(&b))
            && (32..=128).contains(&hex.len())
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if ok {
        d.to_owned()
    } else {
        "(not a digest)".to_owned()
    }
}

/// A transport error in words that carry nothing a server sent: the
/// error chain's own texts, with the URLs the client quotes cut out, and
/// fixed words for errors that would quote a response.
pub(crate) fn describe(err: &OciDistributionError) -> String {
    use OciDistributionError as E;
    match err {
        E::RequestError(_) | E::IoError(_) => chain(err),
        E::AuthenticationFailure(_) => "the token service refused to issue a token".into(),
        E::RegistryTokenDecodeError(_) => "the token service's answer is not a token".into(),
        E::ManifestParsingError(_)
        | E::VersionedParsingError(_)
        | E::JsonError(_)
        | E::ManifestEncodingError(_)
        | E::ConfigConversionError(_) => "a response could not be parsed".into(),
        E::DigestError(_) => "a digest in a response header is malformed".into(),
        E::HeaderValueError(_) => "a response header is not text".into(),
        E::UrlParseError(_) => "a url could not be parsed".into(),
        E::ServerError { code, url, .. } => format!("http {code} from {}", url_host(url)),
        E::UnauthorizedError { url } => format!("http 401 from {}", url_host(url)),
        E::RegistryError { url, .. } => format!("an error response from {}", url_host(url)),
        E::SpecViolationError(_) => "the registry answered outside the distribution spec".into(),
        E::RegistryNoDigestError
        | E::RegistryNoLocationError
        | E::UnsupportedSchemaVersionError(_)
        | E::ImageIndexParsingNoPlatformResolverError
        | E::PullNoLayersError
        | E::PushNoDataError
        | E::PushLayerNoDataError => err.to_string().to_lowercase(),
        _ => "an unexpected response".into(),
    }
}

/// The texts of an error and its sources, with `for url (…)` cut out
/// (reqwest quotes the URL, which a redirect chose), lowercase, capped.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        let text = text.split(" for url (").next().unwrap_or_default();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text.to_lowercase())) {
            parts.push(text.to_lowercase());
        }
        next = e.source();
    }
    let joined = parts.join(": ");
    if joined.chars().count() > 300 {
        let cut: String = joined.chars().take(300).collect();
        format!("{cut}…")
    } else if joined.is_empty() {
        "transport error".to_owned()
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
            egress: None,
        }
    }

    const BODY: &str = "SECRET-INTERNAL-BODY-4f1c";

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
            url: "http://user:pw@mirror.example:8443/v2/x?y=1".into(),
            message: "busy\n  now".into(),
        });
        assert!(matches!(e, RegistryError::Registry { .. }), "{e:?}");
        assert!(!e.is_bad_input());
        assert!(
            e.to_string().ends_with("http 503 from mirror.example:8443"),
            "{e}"
        );

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
        assert!(e.to_string().ends_with("failed: reset"), "{e}");
    }

    #[test]
    fn response_bodies_never_reach_the_message() {
        let envelope: oci_client::errors::OciEnvelope = serde_json::from_value(
            serde_json::json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": BODY, "detail": BODY}]}),
        )
        .unwrap();
        let errors = [
            OciDistributionError::AuthenticationFailure(BODY.into()),
            OciDistributionError::ServerError {
                code: 500,
                url: "http://r/v2/".into(),
                message: BODY.into(),
            },
            OciDistributionError::ServerError {
                code: 403,
                url: "http://r/v2/".into(),
                message: BODY.into(),
            },
            OciDistributionError::RegistryError {
                envelope,
                url: "http://r/v2/".into(),
            },
            OciDistributionError::RegistryTokenDecodeError(BODY.into()),
            OciDistributionError::ManifestParsingError(BODY.into()),
            OciDistributionError::GenericError(Some(BODY.into())),
            OciDistributionError::UnsupportedMediaTypeError(BODY.into()),
            OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
                expected: BODY.into(),
                actual: format!("sha256:{}", "0".repeat(64)),
            }),
        ];
        for err in errors {
            let what = format!("{err:?}");
            let e = ctx().map(err);
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&s.to_string());
                source = s.source();
            }
            assert!(!text.contains(BODY), "{what} became {text}");
        }
        let e = ctx().map(OciDistributionError::RegistryError {
            envelope: serde_json::from_value(
                serde_json::json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": BODY}]}),
            )
            .unwrap(),
            url: "https://r.example/v2/a/manifests/b".into(),
        });
        assert!(matches!(e, RegistryError::NotFound { .. }), "{e:?}");
        assert!(
            e.to_string()
                .ends_with("error code MANIFEST_UNKNOWN from r.example"),
            "{e}"
        );
    }

    #[test]
    fn an_egress_refusal_explains_what_followed() {
        let log = vexxy_egress::ProxyLog::default();
        let mut c = ctx();
        c.egress = Some(log.clone());
        let e = c.map(OciDistributionError::IoError(std::io::Error::other("x")));
        assert!(matches!(e, RegistryError::Network { .. }), "{e:?}");
        // a refusal the proxy logged becomes the error, whatever the client saw
        let policy = vexxy_egress::EgressPolicy::new();
        let refusal = policy.check_without_dns("169.254.169.254", 80).unwrap_err();
        log.record(refusal);
        let e = c.map(OciDistributionError::ServerError {
            code: 403,
            url: "http://169.254.169.254/".into(),
            message: String::new(),
        });
        assert!(
            matches!(e, RegistryError::Egress { .. }) && e.is_bad_input(),
            "{e:?}"
        );
        assert!(e.to_string().contains("169.254.169.254"), "{e}");
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
}
