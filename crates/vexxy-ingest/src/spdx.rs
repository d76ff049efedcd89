//! SPDX 2.2/2.3 JSON.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use serde::Deserialize;
use vexxy_model::Package;

use crate::{
    common::{self, null_default},
    error::FieldError,
    Format, IngestError, Sbom,
};

#[derive(Debug, Deserialize)]
struct RawDoc {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    packages: Vec<RawPackage>,
    #[serde(default, deserialize_with = "null_default")]
    files: Vec<RawFile>,
    #[serde(default, deserialize_with = "null_default")]
    relationships: Vec<RawRelationship>,
}

#[derive(Debug, Deserialize)]
struct RawPackage {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    #[serde(rename = "versionInfo", default)]
    version_info: Option<String>,
    #[serde(rename = "externalRefs", default, deserialize_with = "null_default")]
    external_refs: Vec<RawExternalRef>,
    #[serde(rename = "primaryPackagePurpose", default)]
    purpose: Option<String>,
    /// SPDX 2.2 style file ownership.
    #[serde(rename = "hasFiles", default, deserialize_with = "null_default")]
    has_files: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawExternalRef {
    #[serde(rename = "referenceType")]
    reference_type: String,
    #[serde(rename = "referenceLocator")]
    reference_locator: String,
}

#[derive(Debug, Deserialize)]
struct RawFile {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    #[serde(rename = "fileName")]
    file_name: String,
}

#[derive(Debug, Deserialize)]
struct RawRelationship {
    #[serde(rename = "spdxElementId")]
    element: String,
    #[serde(rename = "relatedSpdxElement")]
    related: String,
    #[serde(rename = "relationshipType")]
    kind: String,
}

pub(crate) fn parse(bytes: &[u8], origin: &Path) -> Result<Sbom, IngestError> {
    let raw: RawDoc = common::from_slice(bytes, origin)?;
    Sbom::try_from(raw).map_err(|e| e.at(origin))
}

/// Packages that stand for the scanned thing itself, not its contents.
fn is_subject(purpose: Option<&str>, purl_type: Option<&str>) -> bool {
    matches!(purpose, Some("CONTAINER" | "OPERATING-SYSTEM"))
        || matches!(purl_type, Some("oci" | "docker"))
}

impl TryFrom<RawDoc> for Sbom {
    type Error = FieldError;

    fn try_from(raw: RawDoc) -> Result<Self, FieldError> {
        let file_names: HashMap<&str, &str> = raw
            .files
            .iter()
            .map(|f| (f.spdx_id.as_str(), f.file_name.as_str()))
            .collect();
        // Package SPDXID → file names it contains.
        let mut owned: HashMap<&str, Vec<&str>> = HashMap::new();
        for r in &raw.relationships {
            let (pkg, file) = match r.kind.as_str() {
                "CONTAINS" => (r.element.as_str(), r.related.as_str()),
                "CONTAINED_BY" => (r.related.as_str(), r.element.as_str()),
                _ => continue,
            };
            if let Some(name) = file_names.get(file) {
                owned.entry(pkg).or_default().push(name);
            }
        }
        for p in &raw.packages {
            for f in &p.has_files {
                if let Some(name) = file_names.get(f.as_str()) {
                    owned.entry(p.spdx_id.as_str()).or_default().push(name);
                }
            }
        }

        let mut packages = Vec::with_capacity(raw.packages.len());
        let mut bom_refs = BTreeMap::new();
        let mut subject = crate::Subject::default();
        for (i, p) in raw.packages.iter().enumerate() {
            let purl_ref = p
                .external_refs
                .iter()
                .enumerate()
                .find(|(_, r)| r.reference_type == "purl");
            let purl = match purl_ref {
                Some((ri, r)) => common::purl(Some(&r.reference_locator), || {
                    format!("packages[{i}].externalRefs[{ri}].referenceLocator")
                })?,
                None => None,
            };
            if is_subject(p.purpose.as_deref(), purl.as_ref().map(|p| p.ty())) {
                let locator = purl_ref.map(|(_, r)| r.reference_locator.as_str());
                if let Some(d) = common::image_digest(locator, p.version_info.as_deref()) {
                    subject.push(d);
                }
                continue;
            }
            if let (Some((_, r)), Some(_)) = (purl_ref, &purl) {
                bom_refs.insert(r.reference_locator.trim().to_owned(), p.spdx_id.clone());
            }
            let version = common::non_empty(p.version_info.clone())
                .filter(|v| v != "NOASSERTION" && v != "NONE")
                .unwrap_or_default();
            let mut pkg = Package::new(
                p.name.clone(),
                version,
                common::ecosystem(purl.as_ref(), None),
            );
            pkg.source = common::upstream_source(purl.as_ref());
            pkg.architecture = common::purl_arch(purl.as_ref());
            pkg.files = owned
                .get(p.spdx_id.as_str())
                .into_iter()
                .flatten()
                .filter_map(|f| common::abs_path(f))
                .collect();
            pkg.purl = purl;
            packages.push(pkg);
        }
        Ok(Self {
            format: Format::Spdx,
            name: common::non_empty(raw.name),
            serial_number: None,
            version: None,
            subject,
            packages,
            bom_refs,
        })
    }
}
