//! CycloneDX 1.4–1.6 JSON SBOMs (components, nested too).

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;
use vexxy_model::{Package, SourcePackage};

use crate::{
    common::{self, null_default},
    error::FieldError,
    Format, IngestError, Sbom,
};

#[derive(Debug, Deserialize)]
struct RawDoc {
    #[serde(rename = "serialNumber", default)]
    serial_number: Option<String>,
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    metadata: Option<RawMetadata>,
    #[serde(default, deserialize_with = "null_default")]
    components: Vec<RawComponent>,
}

#[derive(Debug, Deserialize)]
struct RawMetadata {
    #[serde(default)]
    component: Option<RawSubject>,
}

#[derive(Debug, Deserialize)]
struct RawSubject {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawComponent {
    #[serde(rename = "type", default)]
    ty: Option<String>,
    #[serde(rename = "bom-ref", default)]
    bom_ref: Option<String>,
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    components: Vec<RawComponent>,
    #[serde(default)]
    evidence: Option<RawEvidence>,
    #[serde(default, deserialize_with = "null_default")]
    properties: Vec<RawProperty>,
}

#[derive(Debug, Deserialize)]
struct RawEvidence {
    /// CycloneDX 1.5+.
    #[serde(default, deserialize_with = "null_default")]
    occurrences: Vec<RawOccurrence>,
}

#[derive(Debug, Deserialize)]
struct RawOccurrence {
    location: String,
}

#[derive(Debug, Deserialize)]
struct RawProperty {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

pub(crate) fn parse(bytes: &[u8], origin: &Path) -> Result<Sbom, IngestError> {
    let raw: RawDoc = common::from_slice(bytes, origin)?;
    Sbom::try_from(raw).map_err(|e| e.at(origin))
}

/// Component types that are not installed packages.
const NOT_PACKAGES: &[&str] = &[
    "container",
    "operating-system",
    "file",
    "platform",
    "device",
    "data",
    "machine-learning-model",
];

/// Property names whose value is the scanner's package type word.
const TYPE_PROPERTIES: &[&str] = &["syft:package:type", "aquasecurity:trivy:PkgType"];
/// Property names whose value is the source package name.
const SOURCE_PROPERTIES: &[&str] = &["aquasecurity:trivy:SrcName", "syft:metadata:source"];

impl TryFrom<RawDoc> for Sbom {
    type Error = FieldError;

    fn try_from(raw: RawDoc) -> Result<Self, FieldError> {
        let component = raw.metadata.and_then(|m| m.component);
        let mut subject = crate::Subject::default();
        if let Some(d) = component
            .as_ref()
            .and_then(|c| common::image_digest(c.purl.as_deref(), c.version.as_deref()))
        {
            subject.push(d);
        }
        let mut out = Self {
            format: Format::CycloneDx,
            name: component.and_then(|c| common::non_empty(c.name)),
            subject,
            serial_number: common::non_empty(raw.serial_number),
            version: raw.version,
            packages: Vec::new(),
            bom_refs: BTreeMap::new(),
        };
        walk(raw.components, "components", &mut out)?;
        Ok(out)
    }
}

fn walk(components: Vec<RawComponent>, at: &str, out: &mut Sbom) -> Result<(), FieldError> {
    for (i, c) in components.into_iter().enumerate() {
        let here = format!("{at}[{i}]");
        let RawComponent {
            ty,
            bom_ref,
            name,
            version,
            purl: raw_purl,
            components: children,
            evidence,
            properties,
        } = c;
        if !ty.as_deref().is_some_and(|t| NOT_PACKAGES.contains(&t)) {
            let purl = common::purl(raw_purl.as_deref(), || format!("{here}.purl"))?;
            if let (Some(_), Some(written), Some(r)) =
                (&purl, &raw_purl, common::non_empty(bom_ref))
            {
                out.bom_refs.insert(written.trim().to_owned(), r);
            }
            let prop = |names: &[&str]| {
                properties
                    .iter()
                    .find(|p| names.contains(&p.name.as_str()))
                    .and_then(|p| common::non_empty(p.value.clone()))
            };
            let type_word = prop(TYPE_PROPERTIES);
            let mut pkg = Package::new(
                name,
                common::non_empty(version).unwrap_or_default(),
                common::ecosystem(purl.as_ref(), type_word.as_deref()),
            );
            pkg.source = common::upstream_source(purl.as_ref()).or_else(|| {
                prop(SOURCE_PROPERTIES).map(|name| SourcePackage {
                    name,
                    version: None,
                })
            });
            pkg.architecture = common::purl_arch(purl.as_ref());
            pkg.files = evidence
                .into_iter()
                .flat_map(|e| e.occurrences)
                .filter_map(|o| common::abs_path(&o.location))
                .collect();
            pkg.purl = purl;
            out.packages.push(pkg);
        }
        walk(children, &format!("{here}.components"), out)?;
    }
    Ok(())
}
