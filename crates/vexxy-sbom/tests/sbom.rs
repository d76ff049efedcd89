//! The writers on a small hand-built inventory: snapshots, validation against
//! the official CycloneDX 1.6 and SPDX 2.3 JSON schemas, byte stability, and
//! round trips through `vexxy_ingest::parse`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use serde_json::Value;
use vexxy_ingest::Input;
use vexxy_model::{Ecosystem, Inventory, InventorySource, Package, Purl, SourcePackage};
use vexxy_sbom::{write_cyclonedx, write_json, write_spdx, SbomError, SbomOptions, SbomSubject};

const DIGEST: &str = "sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0";

const CDX_SCHEMA: &str = include_str!("../schemas/bom-1.6.SNAPSHOT.schema.json");
const CDX_SPDX_SCHEMA: &str = include_str!("../schemas/spdx.SNAPSHOT.schema.json");
const CDX_JSF_SCHEMA: &str = include_str!("../schemas/jsf-0.82.SNAPSHOT.schema.json");
const SPDX_SCHEMA: &str = include_str!("../schemas/spdx-schema-2-3.json");

type Writer = fn(&SbomSubject, &Inventory, &SbomOptions) -> Result<String, SbomError>;

fn purl(s: &str) -> Purl {
    s.parse().expect("fixture purl parses")
}

fn deb(
    name: &str,
    version: &str,
    purl_text: &str,
    source: (&str, &str),
    files: &[&str],
) -> Package {
    let mut p = Package::new(name, version, Ecosystem::Deb);
    p.purl = Some(purl(purl_text));
    p.architecture = Some("amd64".to_owned());
    p.source = Some(SourcePackage {
        name: source.0.to_owned(),
        version: Some(source.1.to_owned()),
    });
    p.files = files.iter().map(|f| (*f).to_owned()).collect();
    p
}

/// Debian packages with files (one path owned by two packages, a version
/// with an epoch and `+`, a name with `+`), and a Python package; listed out
/// of order on purpose.
fn inventory() -> Inventory {
    let mut requests = Package::new("requests", "2.31.0", Ecosystem::Python);
    requests.purl = Some(purl("pkg:pypi/requests@2.31.0"));
    requests.files = ["/usr/lib/python3/dist-packages/requests/__init__.py".to_owned()].into();
    Inventory::new(
        InventorySource::RootFs,
        vec![
            requests,
            deb(
                "libstdc++6",
                "12.2.0-14",
                "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-12&upstream=gcc-12",
                ("gcc-12", "12.2.0-14"),
                &[
                    "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30",
                    "/etc/ld.so.conf.d/x86_64-linux-gnu.conf",
                ],
            ),
            deb(
                "libc6",
                "2.36-9+deb12u10",
                "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12&upstream=glibc",
                ("glibc", "2.36-9+deb12u10"),
                &[
                    "/lib/x86_64-linux-gnu/libc.so.6",
                    "/usr/lib/x86_64-linux-gnu/libc.so.6",
                    "/etc/ld.so.conf.d/x86_64-linux-gnu.conf",
                ],
            ),
            deb(
                "bsdutils",
                "1:2.38.1-5+deb12u3",
                "pkg:deb/debian/bsdutils@1%3A2.38.1-5%2Bdeb12u3?arch=amd64&distro=debian-12&upstream=util-linux%402.38.1-5%2Bdeb12u3",
                ("util-linux", "2.38.1-5+deb12u3"),
                &["/usr/bin/logger", "/usr/bin/script"],
            ),
        ],
    )
}

fn subject() -> SbomSubject {
    SbomSubject {
        name: "docker.io/library/debian".to_owned(),
        digest: Some(DIGEST.parse().expect("digest")),
        distro: Some("debian 12.11".to_owned()),
    }
}

fn opts(include_files: bool) -> SbomOptions {
    SbomOptions {
        timestamp: time::macros::datetime!(2025-06-01 12:00:00 UTC),
        tool_version: "0.1.0".to_owned(),
        include_files,
    }
}

fn cyclonedx_validator() -> jsonschema::Validator {
    let parse = |s: &str| serde_json::from_str::<Value>(s).expect("schema is json");
    let resource =
        |s: &str| jsonschema::Resource::from_contents(parse(s)).expect("schema resource");
    jsonschema::options()
        .should_validate_formats(true)
        .with_resource(
            "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json",
            resource(CDX_SPDX_SCHEMA),
        )
        .with_resource(
            "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json",
            resource(CDX_JSF_SCHEMA),
        )
        .build(&parse(CDX_SCHEMA))
        .expect("cyclonedx schema compiles")
}

fn spdx_validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SPDX_SCHEMA).expect("schema is json");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("spdx schema compiles")
}

fn schema_errors(validator: &jsonschema::Validator, doc: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(doc).expect("output is json");
    validator
        .iter_errors(&value)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

#[test]
fn cyclonedx_snapshot() {
    let out = write_cyclonedx(&subject(), &inventory(), &opts(true)).expect("writes");
    insta::assert_snapshot!("cyclonedx_with_files", out);
}

#[test]
fn spdx_snapshot() {
    let out = write_spdx(&subject(), &inventory(), &opts(true)).expect("writes");
    insta::assert_snapshot!("spdx_with_files", out);
}

#[test]
fn json_snapshot() {
    let out = write_json(&subject(), &inventory(), &opts(true)).expect("writes");
    insta::assert_snapshot!("json_with_files", out);
}

#[test]
fn without_files_nothing_lists_files() {
    let cdx = write_cyclonedx(&subject(), &inventory(), &opts(false)).expect("writes");
    assert!(!cdx.contains("occurrences"), "{cdx}");
    let spdx = write_spdx(&subject(), &inventory(), &opts(false)).expect("writes");
    let doc: Value = serde_json::from_str(&spdx).expect("json");
    assert!(doc.get("files").is_none());
    assert!(doc["creationInfo"].get("comment").is_none());
    assert_eq!(doc["relationships"].as_array().map(Vec::len), Some(1 + 4));
    let json = write_json(&subject(), &inventory(), &opts(false)).expect("writes");
    assert!(!json.contains("\"files\""), "{json}");
}

#[test]
fn cyclonedx_is_valid_against_the_official_schema() {
    let validator = cyclonedx_validator();
    for include_files in [true, false] {
        let out = write_cyclonedx(&subject(), &inventory(), &opts(include_files)).expect("writes");
        assert_eq!(
            schema_errors(&validator, &out),
            Vec::<String>::new(),
            "include_files={include_files}"
        );
    }
    // The validator is not vacuous: an unknown component type is rejected.
    let out = write_cyclonedx(&subject(), &inventory(), &opts(true)).expect("writes");
    let broken = out.replacen("\"type\": \"library\"", "\"type\": \"librarian\"", 1);
    assert!(!schema_errors(&validator, &broken).is_empty());
}

#[test]
fn spdx_is_valid_against_the_official_schema() {
    let validator = spdx_validator();
    for include_files in [true, false] {
        let out = write_spdx(&subject(), &inventory(), &opts(include_files)).expect("writes");
        assert_eq!(
            schema_errors(&validator, &out),
            Vec::<String>::new(),
            "include_files={include_files}"
        );
    }
    // The JSON spelling is PACKAGE-MANAGER: the tag-value spelling is rejected,
    // and so is a file without the checksum SPDX 2.3 requires.
    let out = write_spdx(&subject(), &inventory(), &opts(true)).expect("writes");
    let underscored = out.replace("PACKAGE-MANAGER", "PACKAGE_MANAGER");
    assert!(!schema_errors(&validator, &underscored).is_empty());
    let mut doc: Value = serde_json::from_str(&out).expect("json");
    if let Some(file) = doc["files"].get_mut(0).and_then(Value::as_object_mut) {
        file.remove("checksums");
    }
    assert!(!validator.is_valid(&doc));
}

/// A package without a purl, one whose ecosystem has no purl type, and the
/// same package twice: ids stay unique and both documents stay valid.
#[test]
fn awkward_inventories_stay_valid_and_unique() {
    let mut tz = Package::new("tzdata", "2025b-0+deb12u1", Ecosystem::Deb);
    tz.architecture = Some("all".to_owned());
    tz.files = ["/usr/share/zoneinfo/UTC".to_owned()].into();
    let odd = Package::new("some thing", "", Ecosystem::Other("unknown".to_owned()));
    // A package whose purl is the image's own.
    let mut oci = Package::new("app", "", Ecosystem::Other("oci".to_owned()));
    oci.purl = Some(purl("pkg:oci/app"));
    let mut packages = inventory().packages().to_vec();
    packages.push(packages[1].clone());
    packages.extend([tz, odd, oci]);
    let inv = Inventory::new(InventorySource::Sbom, packages);
    let subject = SbomSubject {
        name: "Registry.Example:5000/Team/App".to_owned(),
        digest: None,
        distro: None,
    };

    let cdx = write_cyclonedx(&subject, &inv, &opts(true)).expect("writes");
    assert_eq!(
        schema_errors(&cyclonedx_validator(), &cdx),
        Vec::<String>::new()
    );
    let doc: Value = serde_json::from_str(&cdx).expect("json");
    let refs: Vec<&str> = doc["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["bom-ref"].as_str())
        .collect();
    let distinct: BTreeSet<&str> = refs.iter().copied().collect();
    assert_eq!((refs.len(), distinct.len()), (8, 8), "{refs:?}");
    assert!(refs.contains(&"pkg:oci/app|2"), "{refs:?}");
    assert!(
        refs.contains(&"pkg:deb/tzdata@2025b-0%2Bdeb12u1?arch=all"),
        "{refs:?}"
    );
    assert!(refs.contains(&"pkg:generic/some%20thing"), "{refs:?}");
    assert!(refs.iter().any(|r| r.ends_with("|2")), "{refs:?}");
    assert!(doc["metadata"]["component"].get("version").is_none());
    assert_eq!(doc["metadata"]["component"]["purl"], "pkg:oci/app");

    let spdx = write_spdx(&subject, &inv, &opts(true)).expect("writes");
    assert_eq!(
        schema_errors(&spdx_validator(), &spdx),
        Vec::<String>::new()
    );
    let doc: Value = serde_json::from_str(&spdx).expect("json");
    let ids: Vec<&str> = ["packages", "files"]
        .iter()
        .flat_map(|k| doc[*k].as_array().into_iter().flatten())
        .filter_map(|e| e["SPDXID"].as_str())
        .collect();
    let distinct: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), distinct.len(), "{ids:?}");
    for id in &ids {
        let rest = id.strip_prefix("SPDXRef-").expect("SPDXRef- prefix");
        assert!(
            rest.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
            "{id}"
        );
    }
    let namespace = doc["documentNamespace"].as_str().expect("namespace");
    assert!(
        namespace.starts_with("https://github.com/vexxy/spdx/Registry.Example-5000-Team-App-"),
        "{namespace}"
    );
}

#[test]
fn output_is_byte_stable_and_order_independent() {
    let mut reversed = inventory().packages().to_vec();
    reversed.reverse();
    let reversed = Inventory::new(InventorySource::RootFs, reversed);
    let writers: [(&str, Writer); 3] = [
        ("cyclonedx", write_cyclonedx),
        ("spdx", write_spdx),
        ("json", write_json),
    ];
    for (name, write) in writers {
        let a = write(&subject(), &inventory(), &opts(true)).expect("writes");
        let b = write(&subject(), &inventory(), &opts(true)).expect("writes");
        let c = write(&subject(), &reversed, &opts(true)).expect("writes");
        assert_eq!(a, b, "{name}");
        assert_eq!(a, c, "{name}");
    }
}

#[test]
fn document_ids_follow_the_content() {
    let serial = |inv: &Inventory| -> (String, String) {
        let cdx: Value =
            serde_json::from_str(&write_cyclonedx(&subject(), inv, &opts(true)).expect("writes"))
                .expect("json");
        let spdx: Value =
            serde_json::from_str(&write_spdx(&subject(), inv, &opts(true)).expect("writes"))
                .expect("json");
        (
            cdx["serialNumber"].as_str().expect("serial").to_owned(),
            spdx["documentNamespace"]
                .as_str()
                .expect("namespace")
                .to_owned(),
        )
    };
    let full = serial(&inventory());
    let fewer = serial(&Inventory::new(
        InventorySource::RootFs,
        inventory().packages()[1..].to_vec(),
    ));
    assert_eq!(full, serial(&inventory()));
    assert_ne!(full.0, fewer.0);
    assert_ne!(full.1, fewer.1);
}

#[test]
fn bad_timestamp_is_an_input_error() {
    let mut o = opts(true);
    o.timestamp = time::macros::datetime!(9999-12-31 23:30:00 -01:00);
    let writers: [Writer; 3] = [write_cyclonedx, write_spdx, write_json];
    for write in writers {
        let err = write(&subject(), &inventory(), &o).expect_err("year 10000 in utc");
        assert!(err.is_bad_input(), "{err}");
        assert!(matches!(err, SbomError::Timestamp { .. }), "{err}");
    }
}

/// name, version, purl → files, from a model inventory.
type PackageSet = BTreeMap<(String, String, String), BTreeSet<String>>;

fn package_set<'a>(
    packages: impl IntoIterator<Item = &'a Package>,
    with_files: bool,
) -> PackageSet {
    packages
        .into_iter()
        .map(|p| {
            let key = (
                p.name.clone(),
                p.version.clone(),
                p.purl.as_ref().map(ToString::to_string).unwrap_or_default(),
            );
            let files = if with_files {
                p.files.clone()
            } else {
                BTreeSet::new()
            };
            (key, files)
        })
        .collect()
}

fn round_trip(write: Writer, format: vexxy_ingest::Format) {
    let want_inventory = inventory();
    for include_files in [true, false] {
        let out = write(&subject(), &want_inventory, &opts(include_files)).expect("writes");
        let parsed = match vexxy_ingest::parse(out.as_bytes(), Path::new("written.json")) {
            Ok(Input::Sbom(sbom)) => sbom,
            other => panic!("{format}: not read back as an sbom: {other:?}"),
        };
        assert_eq!(parsed.format, format);
        assert_eq!(parsed.name.as_deref(), Some("docker.io/library/debian"));
        assert_eq!(parsed.packages.len(), want_inventory.packages().len());
        assert_eq!(
            package_set(&parsed.packages, true),
            package_set(want_inventory.packages(), include_files),
            "{format}, include_files={include_files}"
        );
        for p in &parsed.packages {
            let want = want_inventory
                .by_name(&p.name)
                .next()
                .expect("same package");
            assert_eq!(
                (&p.ecosystem, &p.architecture),
                (&want.ecosystem, &want.architecture)
            );
        }
    }
}

#[test]
fn cyclonedx_round_trips_through_ingest() {
    round_trip(write_cyclonedx, vexxy_ingest::Format::CycloneDx);
}

#[test]
fn spdx_round_trips_through_ingest() {
    round_trip(write_spdx, vexxy_ingest::Format::Spdx);
}

#[test]
fn json_lists_what_the_inventory_holds() {
    let out = write_json(&subject(), &inventory(), &opts(true)).expect("writes");
    let doc: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["schema"], "urn:vexxy:inventory:v1");
    let got: PackageSet = doc["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
            let files = p["files"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            ((s("name"), s("version"), s("purl")), files)
        })
        .collect();
    assert_eq!(got, package_set(inventory().packages(), true));
}
