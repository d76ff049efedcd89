//! SPDX 2.3 JSON.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use vexxy_model::Inventory;

use crate::{
    common::{self, Entry},
    SbomError, SbomOptions, SbomSubject,
};

/// Domain of the hash the `documentNamespace` is derived from.
const NAMESPACE_DOMAIN: &str = "vexxy-sbom:spdx";
/// Where document namespaces live (the same base as vexxy's CSAF namespace).
const NAMESPACE_BASE: &str = "https://github.com/vexxy/spdx";
/// SPDX 2.3 requires a SHA1 for every file; vexxy lists owned paths without
/// reading contents, so it writes this placeholder (as Syft has).
const NO_SHA1: &str = "0000000000000000000000000000000000000000";
/// The SPDXID of the image package.
const IMAGE_ID: &str = "SPDXRef-Image";
/// `creationInfo.comment` when files are listed.
const FILES_COMMENT: &str =
    "file checksums were not computed: vexxy lists the paths each package manager \
records without reading file contents, so every file carries the all-zero sha1 placeholder";

#[derive(Debug, Serialize)]
struct Document<'a> {
    #[serde(rename = "spdxVersion")]
    spdx_version: &'static str,
    #[serde(rename = "dataLicense")]
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: &'a str,
    #[serde(rename = "documentNamespace")]
    document_namespace: String,
    #[serde(rename = "creationInfo")]
    creation_info: CreationInfo,
    packages: Vec<SpdxPackage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<SpdxFile<'a>>,
    relationships: Vec<Relationship<'a>>,
}

#[derive(Debug, Serialize)]
struct CreationInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'static str>,
    created: String,
    creators: Vec<String>,
}

#[derive(Debug, Serialize)]
struct SpdxPackage<'a> {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: &'a str,
    #[serde(rename = "versionInfo", skip_serializing_if = "Option::is_none")]
    version_info: Option<String>,
    #[serde(rename = "downloadLocation")]
    download_location: &'static str,
    #[serde(rename = "filesAnalyzed")]
    files_analyzed: bool,
    #[serde(rename = "sourceInfo", skip_serializing_if = "Option::is_none")]
    source_info: Option<String>,
    #[serde(
        rename = "primaryPackagePurpose",
        skip_serializing_if = "Option::is_none"
    )]
    primary_package_purpose: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(rename = "externalRefs")]
    external_refs: Vec<ExternalRef<'a>>,
}

#[derive(Debug, Serialize)]
struct ExternalRef<'a> {
    #[serde(rename = "referenceCategory")]
    reference_category: &'static str,
    #[serde(rename = "referenceType")]
    reference_type: &'static str,
    #[serde(rename = "referenceLocator")]
    reference_locator: &'a str,
}

#[derive(Debug, Serialize)]
struct SpdxFile<'a> {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    #[serde(rename = "fileName")]
    file_name: &'a str,
    checksums: [Checksum; 1],
}

#[derive(Debug, Serialize)]
struct Checksum {
    algorithm: &'static str,
    #[serde(rename = "checksumValue")]
    checksum_value: &'static str,
}

#[derive(Debug, Serialize)]
struct Relationship<'a> {
    #[serde(rename = "spdxElementId")]
    element: &'a str,
    #[serde(rename = "relationshipType")]
    kind: &'static str,
    #[serde(rename = "relatedSpdxElement")]
    related: &'a str,
}

fn purl_ref(locator: &str) -> ExternalRef<'_> {
    ExternalRef {
        reference_category: "PACKAGE-MANAGER",
        reference_type: "purl",
        reference_locator: locator,
    }
}

/// Writes an SPDX 2.3 JSON SBOM of the image's packages.
///
/// The document `DESCRIBES` a package for the image (`SPDXRef-Image`,
/// purpose `CONTAINER`, version its digest, its `pkg:oci` purl), which
/// `CONTAINS` one package per inventory package: SPDXID
/// `SPDXRef-Package-<purl type>-<sanitised name>-<16 hex of the purl's
/// sha256>`, `downloadLocation` `NOASSERTION`, `filesAnalyzed` false, the
/// purl as a `PACKAGE-MANAGER` external reference, the source package as
/// `sourceInfo`. With [`SbomOptions::include_files`] every owned path is a
/// file (`SPDXRef-File-<16 hex of the path's sha256>`, `fileName` the
/// absolute path, the all-zero SHA1 placeholder the schema requires) that
/// its package `CONTAINS`. `documentNamespace` ends in a UUID derived from
/// the SHA-256 of the rest of the document, so the same input always gives
/// the same bytes.
///
/// Fails only for a timestamp that cannot be written in UTC or a package
/// without a purl from which none can be built.
pub fn write_spdx(
    subject: &SbomSubject,
    inventory: &Inventory,
    opts: &SbomOptions,
) -> Result<String, SbomError> {
    let entries = common::entries(inventory, &[])?;
    let image_purl = common::image_purl(subject);

    let mut taken: HashSet<String> = [IMAGE_ID.to_owned()].into_iter().collect();
    let package_ids: Vec<String> = entries
        .iter()
        .map(|e| {
            let base = format!(
                "SPDXRef-Package-{}-{}-{}",
                common::sanitise(&e.purl_type),
                common::sanitise(&e.package.name),
                common::short_hash(&e.key)
            );
            common::unique(&mut taken, &base, "-")
        })
        .collect();

    // One file element per distinct path, however many packages own it.
    let mut file_ids: BTreeMap<&str, String> = BTreeMap::new();
    if opts.include_files {
        for path in entries.iter().flat_map(|e| &e.package.files) {
            if !file_ids.contains_key(path.as_str()) {
                let base = format!("SPDXRef-File-{}", common::short_hash(path));
                file_ids.insert(path, common::unique(&mut taken, &base, "-"));
            }
        }
    }

    let mut packages = Vec::with_capacity(entries.len() + 1);
    packages.push(SpdxPackage {
        spdx_id: IMAGE_ID.to_owned(),
        name: &subject.name,
        version_info: subject.digest.as_ref().map(ToString::to_string),
        download_location: "NOASSERTION",
        files_analyzed: false,
        source_info: None,
        primary_package_purpose: Some("CONTAINER"),
        comment: subject
            .distro
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| format!("distro: {d}")),
        external_refs: vec![purl_ref(&image_purl)],
    });
    packages.extend(
        entries
            .iter()
            .zip(&package_ids)
            .map(|(e, id)| package(e, id.clone())),
    );

    let mut relationships = vec![Relationship {
        element: "SPDXRef-DOCUMENT",
        kind: "DESCRIBES",
        related: IMAGE_ID,
    }];
    relationships.extend(package_ids.iter().map(|id| Relationship {
        element: IMAGE_ID,
        kind: "CONTAINS",
        related: id,
    }));
    if opts.include_files {
        for (e, id) in entries.iter().zip(&package_ids) {
            for path in &e.package.files {
                if let Some(file_id) = file_ids.get(path.as_str()) {
                    relationships.push(Relationship {
                        element: id,
                        kind: "CONTAINS",
                        related: file_id,
                    });
                }
            }
        }
    }

    let files = file_ids
        .iter()
        .map(|(path, id)| SpdxFile {
            spdx_id: id.clone(),
            file_name: path,
            checksums: [Checksum {
                algorithm: "SHA1",
                checksum_value: NO_SHA1,
            }],
        })
        .collect();

    let mut doc = Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: &subject.name,
        document_namespace: String::new(),
        creation_info: CreationInfo {
            comment: (opts.include_files && !file_ids.is_empty()).then_some(FILES_COMMENT),
            created: common::rfc3339(opts.timestamp)?,
            creators: vec![format!("Tool: vexxy-{}", opts.tool_version)],
        },
        packages,
        files,
        relationships,
    };
    let unnamed = common::to_json("spdx", &doc)?;
    doc.document_namespace = format!(
        "{NAMESPACE_BASE}/{}-{}",
        common::sanitise(&subject.name),
        common::content_uuid(NAMESPACE_DOMAIN, unnamed.as_bytes())
    );
    common::to_json("spdx", &doc)
}

fn package<'a>(e: &'a Entry<'a>, spdx_id: String) -> SpdxPackage<'a> {
    let p = e.package;
    let source_info =
        p.source
            .as_ref()
            .map(|s| match s.version.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => format!("built from source package {} {v}", s.name),
                None => format!("built from source package {}", s.name),
            });
    SpdxPackage {
        spdx_id,
        name: &p.name,
        version_info: Some(p.version.clone()).filter(|v| !v.is_empty()),
        download_location: "NOASSERTION",
        files_analyzed: false,
        source_info,
        primary_package_purpose: None,
        comment: None,
        external_refs: vec![purl_ref(&e.purl)],
    }
}
