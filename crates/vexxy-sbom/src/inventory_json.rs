//! vexxy's own inventory JSON (`docs/sbom.md`).

use serde::Serialize;
use vexxy_model::{Inventory, InventorySource};

use crate::{
    common::{self, Entry},
    SbomError, SbomOptions, SbomSubject,
};

/// The format identifier written as `schema`.
const SCHEMA: &str = "urn:vexxy:inventory:v1";

#[derive(Debug, Serialize)]
struct Doc<'a> {
    schema: &'static str,
    tool: String,
    timestamp: String,
    subject: Subject<'a>,
    inventory_source: &'static str,
    packages: Vec<Pkg<'a>>,
}

#[derive(Debug, Serialize)]
struct Subject<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    distro: Option<&'a str>,
    purl: String,
}

#[derive(Debug, Serialize)]
struct Pkg<'a> {
    name: &'a str,
    version: &'a str,
    ecosystem: String,
    purl: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    architecture: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Source<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<&'a str>>,
}

#[derive(Debug, Serialize)]
struct Source<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
}

/// Writes vexxy's own inventory JSON (`urn:vexxy:inventory:v1`, described
/// in `docs/sbom.md`): the subject, where the package list came from, and
/// each package with its purl, source package and, with
/// [`SbomOptions::include_files`], its files (`files` is absent otherwise,
/// and `[]` for a package that owns none).
///
/// Packages are sorted like the other writers sort them (by purl), so the
/// same input always gives the same bytes. Fails only for a timestamp that
/// cannot be written in UTC or a package without a purl from which none can
/// be built.
pub fn write_json(
    subject: &SbomSubject,
    inventory: &Inventory,
    opts: &SbomOptions,
) -> Result<String, SbomError> {
    let entries = common::entries(inventory, &[])?;
    let doc = Doc {
        schema: SCHEMA,
        tool: format!("vexxy {}", opts.tool_version),
        timestamp: common::rfc3339(opts.timestamp)?,
        subject: Subject {
            name: &subject.name,
            digest: subject.digest.as_ref().map(ToString::to_string),
            distro: subject.distro.as_deref().filter(|d| !d.is_empty()),
            purl: common::image_purl(subject),
        },
        inventory_source: match inventory.source {
            InventorySource::Sbom => "sbom",
            InventorySource::RootFs => "rootfs",
        },
        packages: entries.iter().map(|e| pkg(e, opts.include_files)).collect(),
    };
    common::to_json("vexxy-inventory", &doc)
}

fn pkg<'a>(e: &'a Entry<'a>, include_files: bool) -> Pkg<'a> {
    let p = e.package;
    Pkg {
        name: &p.name,
        version: &p.version,
        ecosystem: common::ecosystem_word(&p.ecosystem),
        purl: &e.purl,
        architecture: p.architecture.as_deref().filter(|a| !a.is_empty()),
        source: p.source.as_ref().map(|s| Source {
            name: &s.name,
            version: s.version.as_deref().filter(|v| !v.is_empty()),
        }),
        files: include_files.then(|| p.files.iter().map(String::as_str).collect()),
    }
}
