//! Image references in skopeo's transport syntax, and platforms.

use std::{fmt, path::PathBuf, str::FromStr};

use vexxy_model::Digest;
pub use vexxy_model::Platform;

use crate::ImageError;

/// Where an image comes from, parsed from a skopeo-style name.
///
/// | text | variant |
/// |---|---|
/// | `oci:DIR[:TAG]` | [`ImageSource::OciLayout`] |
/// | `oci-archive:FILE[:TAG]` | [`ImageSource::OciArchive`] |
/// | `docker-archive:FILE` | [`ImageSource::DockerArchive`] |
/// | `dir:ROOTFS` | [`ImageSource::Dir`] |
/// | `[docker://]registry/name:tag`, `name@sha256:…` | [`ImageSource::Registry`] |
///
/// As in skopeo, the path ends at the first `:` after the transport, so a
/// `DIR` or `FILE` containing `:` cannot carry a tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ImageSource {
    /// A directory holding an OCI image layout.
    OciLayout {
        /// The layout directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` to pick; `None` picks the only image.
        tag: Option<String>,
    },
    /// A tar of an OCI image layout (optionally gzip-compressed).
    OciArchive {
        /// The archive file.
        file: PathBuf,
        /// As for [`ImageSource::OciLayout`].
        tag: Option<String>,
    },
    /// A `docker save` archive (`manifest.json`, config, layer tars).
    DockerArchive {
        /// The archive file.
        file: PathBuf,
    },
    /// An already unpacked root filesystem (not an image: [`crate::open`] refuses it).
    Dir {
        /// The root filesystem directory.
        rootfs: PathBuf,
    },
    /// An image in a registry; pulled by `vexxy-registry`, never opened here.
    Registry {
        /// The reference without a `docker://` prefix, e.g. `docker.io/library/nginx:1.27`.
        reference: String,
    },
}

fn split_tag(rest: &str) -> (PathBuf, Option<String>) {
    match rest.split_once(':') {
        Some((path, tag)) if !tag.is_empty() => (PathBuf::from(path), Some(tag.to_owned())),
        Some((path, _)) => (PathBuf::from(path), None),
        None => (PathBuf::from(rest), None),
    }
}

fn bad(reference: &str, reason: &str) -> ImageError {
    ImageError::BadReference {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    }
}

impl FromStr for ImageSource {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let nonempty = |rest: &str, what: &str| {
            if rest.is_empty() || rest.starts_with(':') {
                Err(bad(s, &format!("missing {what}")))
            } else {
                Ok(())
            }
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            nonempty(rest, "layout directory")?;
            let (dir, tag) = split_tag(rest);
            return Ok(Self::OciLayout { dir, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            nonempty(rest, "archive file")?;
            let (file, tag) = split_tag(rest);
            return Ok(Self::OciArchive { file, tag });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            nonempty(rest, "archive file")?;
            return Ok(Self::DockerArchive {
                file: PathBuf::from(rest),
            });
        }
        if let Some(rest) = s.strip_prefix("dir:") {
            nonempty(rest, "root filesystem directory")?;
            return Ok(Self::Dir {
                rootfs: PathBuf::from(rest),
            });
        }
        let reference = s.strip_prefix("docker://").unwrap_or(s);
        validate_registry_reference(s, reference)?;
        Ok(Self::Registry {
            reference: reference.to_owned(),
        })
    }
}

fn validate_registry_reference(original: &str, reference: &str) -> Result<(), ImageError> {
    if reference.is_empty() {
        return Err(bad(original, "empty reference"));
    }
    if reference.starts_with(['/', '.', '-', ':', '@']) || reference.ends_with(['/', ':', '@']) {
        return Err(bad(original, "not a registry reference (use oci:, oci-archive:, docker-archive: or dir: for local images)"));
    }
    if let Some(bad_char) = reference
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-/:@".contains(*c)))
    {
        return Err(bad(
            original,
            &format!("character {bad_char:?} is not allowed in a registry reference"),
        ));
    }
    if reference.contains("//") {
        return Err(bad(original, "empty path component"));
    }
    let name = match reference.split_once('@') {
        Some((name, digest)) => {
            digest
                .parse::<Digest>()
                .map_err(|e| bad(original, &e.to_string()))?;
            name
        }
        None => reference,
    };
    if name.is_empty() || name.contains('@') {
        return Err(bad(original, "expected name[:tag][@sha256:…]"));
    }
    // After the last '/', at most one ':' (the tag); before it, a ':' is a registry port.
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.matches(':').count() > 1 {
        return Err(bad(original, "more than one tag"));
    }
    Ok(())
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OciLayout { dir, tag } => {
                write!(f, "oci:{}", dir.display())?;
                tag.as_ref().map_or(Ok(()), |t| write!(f, ":{t}"))
            }
            Self::OciArchive { file, tag } => {
                write!(f, "oci-archive:{}", file.display())?;
                tag.as_ref().map_or(Ok(()), |t| write!(f, ":{t}"))
            }
            Self::DockerArchive { file } => write!(f, "docker-archive:{}", file.display()),
            Self::Dir { rootfs } => write!(f, "dir:{}", rootfs.display()),
            Self::Registry { reference } => write!(f, "docker://{reference}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0";

    fn parse(s: &str) -> ImageSource {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_transports() {
        assert_eq!(
            parse("oci:/x/layout"),
            ImageSource::OciLayout {
                dir: "/x/layout".into(),
                tag: None
            }
        );
        assert_eq!(
            parse("oci:/x/layout:latest"),
            ImageSource::OciLayout {
                dir: "/x/layout".into(),
                tag: Some("latest".into())
            }
        );
        assert_eq!(
            parse("oci-archive:a.tar:v1"),
            ImageSource::OciArchive {
                file: "a.tar".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            parse("oci-archive:a.tar"),
            ImageSource::OciArchive {
                file: "a.tar".into(),
                tag: None
            }
        );
        assert_eq!(
            parse("docker-archive:/t/i.tar"),
            ImageSource::DockerArchive {
                file: "/t/i.tar".into()
            }
        );
        assert_eq!(
            parse("dir:/rootfs"),
            ImageSource::Dir {
                rootfs: "/rootfs".into()
            }
        );
        for (input, want) in [
            (
                "docker://docker.io/library/nginx:1.27",
                "docker.io/library/nginx:1.27",
            ),
            ("localhost:5000/lib/nginx:1", "localhost:5000/lib/nginx:1"),
            ("nginx", "nginx"),
            (&format!("nginx@{D}"), &format!("nginx@{D}")),
            (&format!("r.io/a/b:t@{D}"), &format!("r.io/a/b:t@{D}")),
        ] {
            assert_eq!(
                parse(input),
                ImageSource::Registry {
                    reference: want.to_owned()
                },
                "{input}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "oci:/x:latest",
            "oci-archive:/a.tar",
            "docker-archive:/b.tar",
            "dir:/r",
            "docker://nginx:1",
        ] {
            assert_eq!(parse(s).to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_references() {
        for s in [
            "",
            "oci:",
            "oci::tag",
            "docker-archive:",
            "dir:",
            "nginx@sha256:abc",
            "/abs/path",
            "./rel",
            "a b",
            "a//b",
            "n:t:u",
            "docker://",
        ] {
            let err = s.parse::<ImageSource>().expect_err(s);
            assert!(matches!(err, ImageError::BadReference { .. }), "{s}: {err}");
            assert!(err.is_bad_input());
        }
    }

    #[test]
    fn platforms() {
        let p: Platform = "linux/arm64/v8".parse().expect("parses");
        assert!(p.matches("linux", "arm64", None));
        assert!(!p.matches("linux", "amd64", None));
        let p: Platform = "linux/arm/v7".parse().expect("parses");
        assert!(!p.matches("linux", "arm", Some("v6")));
        assert!(p.matches("linux", "arm", Some("v7")));
        assert!("linux".parse::<Platform>().is_err());
        assert_eq!(Platform::host().os, "linux");
    }
}
