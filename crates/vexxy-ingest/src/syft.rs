//! Syft's own JSON (`syft -o syft-json`), which carries per-package file lists.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;
use vexxy_model::{Package, SourcePackage};

use crate::{
    common::{self, null_default, Lenient},
    error::FieldError,
    Format, IngestError, Sbom,
};

#[derive(Debug, Deserialize)]
struct RawDoc {
    #[serde(default, deserialize_with = "null_default")]
    artifacts: Vec<RawArtifact>,
    #[serde(default)]
    source: Option<RawSource>,
}

#[derive(Debug, Deserialize)]
struct RawSource {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    metadata: Option<Lenient<RawSourceMetadata>>,
}

#[derive(Debug, Deserialize)]
struct RawSourceMetadata {
    #[serde(rename = "userInput", default)]
    user_input: Option<String>,
    #[serde(rename = "manifestDigest", default)]
    manifest_digest: Option<String>,
    #[serde(rename = "imageID", default)]
    image_id: Option<String>,
    #[serde(rename = "repoDigests", default)]
    repo_digests: Option<Lenient<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
struct RawArtifact {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(rename = "type", default)]
    ty: Option<String>,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    locations: Vec<RawLocation>,
    /// Shape depends on `metadataType`; only a few common fields are read.
    #[serde(default)]
    metadata: Option<Lenient<RawMetadata>>,
}

#[derive(Debug, Deserialize)]
struct RawLocation {
    path: String,
}

#[derive(Debug, Deserialize)]
struct RawMetadata {
    #[serde(default)]
    files: Option<Lenient<Vec<RawFileEntry>>>,
    /// dpkg: source package name and version.
    #[serde(default)]
    source: Option<Lenient<String>>,
    #[serde(rename = "sourceVersion", default)]
    source_version: Option<Lenient<String>>,
    /// apk: origin (source) package.
    #[serde(rename = "originPackage", default)]
    origin_package: Option<Lenient<String>>,
    #[serde(default)]
    architecture: Option<Lenient<String>>,
    /// python: the directory RECORD paths are relative to.
    #[serde(rename = "sitePackagesRootPath", default)]
    site_packages_root: Option<Lenient<String>>,
}

/// A file entry: an object with `path` (dpkg, apk, rpm, python) or a bare path.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawFileEntry {
    Path(String),
    Entry { path: String },
}

pub(crate) fn parse(bytes: &[u8], origin: &Path) -> Result<Sbom, IngestError> {
    let raw: RawDoc = common::from_slice(bytes, origin)?;
    Sbom::try_from(raw).map_err(|e| e.at(origin))
}

fn text(field: Option<Lenient<String>>) -> Option<String> {
    common::non_empty(field.and_then(Lenient::ok))
}

impl TryFrom<RawDoc> for Sbom {
    type Error = FieldError;

    fn try_from(raw: RawDoc) -> Result<Self, FieldError> {
        let (source_name, metadata) = match raw.source {
            Some(s) => (s.name, s.metadata.and_then(Lenient::ok)),
            None => (None, None),
        };
        let mut subject = crate::Subject::default();
        let mut name = common::non_empty(source_name);
        if let Some(m) = metadata {
            // lenient: an SBOM's description of its source is informational
            let repo_digests = m.repo_digests.and_then(Lenient::ok).unwrap_or_default();
            for d in &repo_digests {
                if let Ok(d) = common::repo_digest(d, String::new) {
                    subject.push(d);
                }
            }
            if let Some(d) = m.manifest_digest.and_then(|d| d.trim().parse().ok()) {
                subject.push(d);
            }
            subject.image_id = m.image_id.and_then(|d| d.trim().parse().ok());
            name = name.or_else(|| common::non_empty(m.user_input));
        }
        let mut packages = Vec::with_capacity(raw.artifacts.len());
        for (i, a) in raw.artifacts.into_iter().enumerate() {
            let purl = common::purl(a.purl.as_deref(), || format!("artifacts[{i}].purl"))?;
            let mut pkg = Package::new(
                a.name,
                a.version,
                common::ecosystem(purl.as_ref(), a.ty.as_deref()),
            );
            let meta = a.metadata.and_then(Lenient::ok);
            let mut listed = false;
            if let Some(m) = meta {
                let root = text(m.site_packages_root);
                if let Some(files) = m.files.and_then(Lenient::ok) {
                    for f in files {
                        let (RawFileEntry::Path(p) | RawFileEntry::Entry { path: p }) = f;
                        if let Some(abs) = common::join_path(root.as_deref(), &p) {
                            pkg.files.insert(abs);
                            listed = true;
                        }
                    }
                }
                let source_name = text(m.source).or_else(|| text(m.origin_package));
                pkg.source = source_name.map(|name| SourcePackage {
                    name,
                    version: text(m.source_version),
                });
                pkg.architecture = text(m.architecture);
            }
            if !listed {
                // No file list: the files the package was found in are its own
                // (a binary, a jar, a lock file).
                pkg.files = a
                    .locations
                    .iter()
                    .filter_map(|l| common::abs_path(&l.path))
                    .collect();
            }
            pkg.source = pkg
                .source
                .take()
                .or_else(|| common::upstream_source(purl.as_ref()));
            pkg.architecture = pkg
                .architecture
                .take()
                .or_else(|| common::purl_arch(purl.as_ref()));
            pkg.purl = purl;
            packages.push(pkg);
        }
        Ok(Self {
            format: Format::Syft,
            name,
            serial_number: None,
            version: None,
            subject,
            packages,
            bom_refs: BTreeMap::new(),
        })
    }
}
