use std::collections::BTreeSet;

use crate::Purl;

/// The package ecosystem, from the purl type or the cataloger.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ecosystem {
    Deb,
    Apk,
    Rpm,
    Python,
    Npm,
    Go,
    Cargo,
    Maven,
    Other(String),
}

impl Ecosystem {
    /// Maps a purl type to an ecosystem.
    pub fn from_purl_type(ty: &str) -> Self {
        match ty {
            "deb" => Self::Deb,
            "apk" => Self::Apk,
            "rpm" => Self::Rpm,
            "pypi" => Self::Python,
            "npm" => Self::Npm,
            "golang" => Self::Go,
            "cargo" => Self::Cargo,
            "maven" => Self::Maven,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Maps a scanner's package type word (`deb`, `python`, `java-archive`, …).
    pub fn from_scanner_type(word: &str) -> Self {
        match word.to_ascii_lowercase().as_str() {
            "deb" | "debian" | "ubuntu" => Self::Deb,
            "apk" | "alpine" | "wolfi" | "chainguard" => Self::Apk,
            "rpm" | "redhat" | "centos" | "rocky" | "alma" | "amazon" | "oracle" | "fedora"
            | "suse" => Self::Rpm,
            "python" | "pypi" | "pip" | "python-pkg" | "poetry" | "pipenv" => Self::Python,
            "npm" | "node-pkg" | "yarn" | "pnpm" => Self::Npm,
            "go-module" | "gobinary" | "gomod" | "golang" => Self::Go,
            "rust-crate" | "cargo" | "rustbinary" => Self::Cargo,
            "java-archive" | "jar" | "pom" | "maven" | "gradle" => Self::Maven,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Whether this ecosystem belongs to an operating system's package manager.
    pub fn is_os(&self) -> bool {
        matches!(self, Self::Deb | Self::Apk | Self::Rpm)
    }
}

/// The source package a binary package was built from (Debian `Source:`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourcePackage {
    pub name: String,
    pub version: Option<String>,
}

/// A package installed in an image, with the files it owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub ecosystem: Ecosystem,
    pub purl: Option<Purl>,
    pub source: Option<SourcePackage>,
    pub architecture: Option<String>,
    /// Absolute paths inside the image (`/usr/lib/...`), as the package
    /// manager records them. Empty when the source had no file list.
    pub files: BTreeSet<String>,
}

impl Package {
    pub fn new(name: impl Into<String>, version: impl Into<String>, ecosystem: Ecosystem) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            ecosystem,
            purl: None,
            source: None,
            architecture: None,
            files: BTreeSet::new(),
        }
    }
}
