use std::{fmt, str::FromStr};

/// An OS/architecture pair as OCI image indexes name them (Go's GOOS/GOARCH
/// words), with an optional variant: `linux/amd64`, `linux/arm/v7`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`, …
    pub architecture: String,
    /// `v7`, `v8`, … when it matters.
    pub variant: Option<String>,
}

/// A platform string that is not `os/arch[/variant]`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid platform {0:?}: expected os/arch[/variant]")]
pub struct PlatformError(pub String);

impl Platform {
    /// The platform this program runs on, in OCI naming.
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "loongarch64" => "loong64",
            other => other,
        };
        Self {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }

    /// Whether an image of the given platform satisfies this wanted one: the
    /// same OS and architecture, and the same variant when this one names a
    /// variant (`arm64` without a variant counts as `v8`).
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != architecture {
            return false;
        }
        let norm = |v: Option<&str>| match (architecture, v) {
            ("arm64", None) => Some("v8".to_owned()),
            (_, v) => v.map(str::to_owned),
        };
        match &self.variant {
            None => true,
            Some(want) => norm(Some(want)) == norm(variant),
        }
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    /// Parses `os/arch[/variant]` (lowercased; letters, digits, `_`, `-`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let word = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| word(p)) {
            return Err(PlatformError(s.to_owned()));
        }
        Ok(Self {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        self.variant.as_ref().map_or(Ok(()), |v| write!(f, "/{v}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_matches_and_displays() {
        let p: Platform = "linux/arm/v7".parse().expect("parses");
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert!(p.matches("linux", "arm", Some("v7")) && !p.matches("linux", "arm", Some("v6")));
        let p: Platform = "linux/amd64".parse().expect("parses");
        assert!(p.matches("linux", "amd64", None) && p.matches("linux", "amd64", Some("v3")));
        assert!(!p.matches("windows", "amd64", None));
        let p: Platform = "linux/arm64/v8".parse().expect("parses");
        assert!(
            p.matches("linux", "arm64", None),
            "arm64 without a variant is v8"
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/amd 64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(Platform::host().to_string(), "linux/amd64");
        }
    }
}
