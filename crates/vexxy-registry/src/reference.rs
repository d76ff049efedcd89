//! Image references and platforms.

use std::fmt;
pub use vexxy_model::Platform;

use oci_client::Reference;

use crate::RegistryError;

/// A parsed image reference: `[docker://][registry/]name[:tag][@sha256:…]`.
///
/// Docker Hub rules apply when the first path component is not a host
/// (no `.` or `:` and not `localhost`): `nginx` means
/// `docker.io/library/nginx:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The reference as given, without a `docker://` prefix; recorded as the
    /// `org.opencontainers.image.ref.name` annotation of the layout entry.
    pub given: String,
    inner: Reference,
}

impl ImageRef {
    /// Parses a reference; a `docker://` prefix is accepted and dropped.
    pub fn parse(reference: &str) -> Result<Self, RegistryError> {
        let given = reference.trim();
        let given = given.strip_prefix("docker://").unwrap_or(given);
        let bad = |reason: &str| RegistryError::BadReference {
            reference: reference.to_owned(),
            reason: reason.to_owned(),
        };
        if given.is_empty() {
            return Err(bad("empty reference"));
        }
        if given.contains("://") {
            return Err(bad("only the docker:// transport is accepted"));
        }
        let inner: Reference = given
            .parse()
            .map_err(|e| bad(&format!("{e}").to_lowercase()))?;
        if inner.repository().bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("repository names must be lowercase"));
        }
        if let Some(d) = inner.digest() {
            d.parse::<vexxy_model::Digest>()
                .map_err(|_| bad("the digest must be sha256: followed by 64 hex digits"))?;
        }
        Ok(Self {
            given: given.to_owned(),
            inner,
        })
    }

    /// Registry as written (`docker.io` for Docker Hub), for credentials
    /// lookup and messages.
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The host actually contacted (`index.docker.io` for Docker Hub).
    pub fn resolved_registry(&self) -> &str {
        self.inner.resolve_registry()
    }

    /// Repository path, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// Tag, if any (`latest` is implied when neither tag nor digest is given).
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// Digest, if the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// The fully qualified form, e.g. `docker.io/library/nginx:latest`.
    pub fn whole(&self) -> String {
        self.inner.whole()
    }

    pub(crate) fn oci(&self) -> &Reference {
        &self.inner
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "8f280ba277bd8e8e96b3c107ab197d1be3c26af169b22e3d462bdab1d73d9600";

    #[test]
    fn docker_hub_defaults() {
        let r = ImageRef::parse("nginx").expect("parses");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.resolved_registry(), "index.docker.io");
        assert_eq!(r.repository(), "library/nginx");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.whole(), "docker.io/library/nginx:latest");
        assert_eq!(r.given, "nginx");
    }

    #[test]
    fn registry_with_port_tag_and_digest() {
        let r = ImageRef::parse("docker://127.0.0.1:5000/team/app:1.2").expect("parses");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("1.2"));
        assert_eq!(r.given, "127.0.0.1:5000/team/app:1.2");

        let r = ImageRef::parse(&format!("localhost:5000/nginx@sha256:{HEX}")).expect("parses");
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.digest(), Some(format!("sha256:{HEX}").as_str()));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "docker://",
            "oci:/tmp/x",
            "UPPER/case:tag",
            "nginx@sha512:abcd",
            "a b",
        ] {
            let e = ImageRef::parse(bad).expect_err(bad);
            assert!(e.is_bad_input());
            assert!(e.to_string().starts_with("invalid image reference"), "{e}");
        }
        let e = ImageRef::parse(&format!("nginx@sha256:{}", &HEX[..40])).expect_err("short");
        assert!(e.to_string().contains("nginx@sha256:"), "{e}");
    }
}
