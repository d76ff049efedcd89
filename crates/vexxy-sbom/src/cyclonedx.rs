//! CycloneDX 1.6 JSON.

use serde::Serialize;
use vexxy_model::Inventory;

use crate::{
    common::{self, Entry},
    SbomError, SbomOptions, SbomSubject,
};

/// Domain of the hash the `serialNumber` is derived from.
const SERIAL_DOMAIN: &str = "vexxy-sbom:cyclonedx";

#[derive(Debug, Serialize)]
struct Bom<'a> {
    #[serde(rename = "bomFormat")]
    bom_format: &'static str,
    #[serde(rename = "specVersion")]
    spec_version: &'static str,
    #[serde(rename = "serialNumber", skip_serializing_if = "Option::is_none")]
    serial_number: Option<String>,
    version: u32,
    metadata: Metadata<'a>,
    components: Vec<Component<'a>>,
    dependencies: Vec<Dependency<'a>>,
}

#[derive(Debug, Serialize)]
struct Metadata<'a> {
    timestamp: String,
    tools: Tools<'a>,
    component: Component<'a>,
}

#[derive(Debug, Serialize)]
struct Tools<'a> {
    components: Vec<Tool<'a>>,
}

#[derive(Debug, Serialize)]
struct Tool<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    name: &'static str,
    version: &'a str,
}

#[derive(Debug, Serialize)]
struct Component<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    purl: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<Evidence<'a>>,
}

#[derive(Debug, Serialize)]
struct Property {
    name: &'static str,
    value: String,
}

#[derive(Debug, Serialize)]
struct Evidence<'a> {
    occurrences: Vec<Occurrence<'a>>,
}

#[derive(Debug, Serialize)]
struct Occurrence<'a> {
    location: &'a str,
}

#[derive(Debug, Serialize)]
struct Dependency<'a> {
    #[serde(rename = "ref")]
    reference: &'a str,
    #[serde(rename = "dependsOn")]
    depends_on: Vec<&'a str>,
}

/// Writes a CycloneDX 1.6 JSON SBOM of the image's packages.
///
/// The image is `metadata.component` (type `container`, version its digest,
/// `bom-ref` and purl its `pkg:oci` purl, the distro as the `vexxy:distro`
/// property); each package a `library` component whose `bom-ref` is its purl
/// (`|2`, `|3`… added to repeats), with `vexxy:package:*` properties for
/// ecosystem, architecture and source package, and, with
/// [`SbomOptions::include_files`], its files as `evidence.occurrences`.
/// `dependencies` holds one entry: the image depends on every package.
/// `serialNumber` is a `urn:uuid:` derived from the SHA-256 of the rest of
/// the document, so the same input always gives the same bytes.
///
/// Fails only for a timestamp that cannot be written in UTC or a package
/// without a purl from which none can be built.
pub fn write_cyclonedx(
    subject: &SbomSubject,
    inventory: &Inventory,
    opts: &SbomOptions,
) -> Result<String, SbomError> {
    let image_ref = common::image_purl(subject);
    let entries = common::entries(inventory, &[&image_ref])?;
    let mut image_properties = Vec::new();
    if let Some(distro) = subject.distro.as_deref().filter(|d| !d.is_empty()) {
        image_properties.push(Property {
            name: "vexxy:distro",
            value: distro.to_owned(),
        });
    }
    let mut bom = Bom {
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: None,
        version: 1,
        metadata: Metadata {
            timestamp: common::rfc3339(opts.timestamp)?,
            tools: Tools {
                components: vec![Tool {
                    ty: "application",
                    name: "vexxy",
                    version: &opts.tool_version,
                }],
            },
            component: Component {
                ty: "container",
                bom_ref: &image_ref,
                name: &subject.name,
                version: subject.digest.as_ref().map(ToString::to_string),
                purl: &image_ref,
                properties: image_properties,
                evidence: None,
            },
        },
        components: entries
            .iter()
            .map(|e| component(e, opts.include_files))
            .collect(),
        dependencies: vec![Dependency {
            reference: &image_ref,
            depends_on: entries.iter().map(|e| e.key.as_str()).collect(),
        }],
    };
    let unnumbered = common::to_json("cyclonedx", &bom)?;
    bom.serial_number = Some(format!(
        "urn:uuid:{}",
        common::content_uuid(SERIAL_DOMAIN, unnumbered.as_bytes())
    ));
    common::to_json("cyclonedx", &bom)
}

fn component<'a>(e: &'a Entry<'a>, include_files: bool) -> Component<'a> {
    let p = e.package;
    let mut properties = Vec::new();
    if let Some(arch) = p.architecture.as_deref().filter(|a| !a.is_empty()) {
        properties.push(Property {
            name: "vexxy:package:architecture",
            value: arch.to_owned(),
        });
    }
    properties.push(Property {
        name: "vexxy:package:ecosystem",
        value: common::ecosystem_word(&p.ecosystem),
    });
    if let Some(source) = &p.source {
        properties.push(Property {
            name: "vexxy:package:source",
            value: source.name.clone(),
        });
        if let Some(v) = source.version.as_deref().filter(|v| !v.is_empty()) {
            properties.push(Property {
                name: "vexxy:package:source-version",
                value: v.to_owned(),
            });
        }
    }
    let evidence = (include_files && !p.files.is_empty()).then(|| Evidence {
        occurrences: p.files.iter().map(|f| Occurrence { location: f }).collect(),
    });
    Component {
        ty: "library",
        bom_ref: &e.key,
        name: &p.name,
        version: Some(p.version.clone()).filter(|v| !v.is_empty()),
        purl: &e.purl,
        properties,
        evidence,
    }
}
