//! The runtime-filtered inventory.

mod common;

use std::collections::BTreeSet;

use common::package;
use vexxy_model::{
    Ecosystem, ExecutedBinary, ExecutionProfile, FileAccess, Inventory, InventorySource,
    LoadedLibrary, Package, Purl,
};
use vexxy_report::{filter_inventory, runtime_inventory, runtime_used_packages};

fn names(inv: &Inventory, used: &BTreeSet<usize>) -> Vec<String> {
    used.iter()
        .map(|i| inv.packages()[*i].name.clone())
        .collect()
}

fn opened(paths: &[&str]) -> ExecutionProfile {
    let mut files: Vec<FileAccess> = paths
        .iter()
        .map(|p| FileAccess {
            path: (*p).to_owned(),
            opens: 1,
        })
        .collect();
    files.sort();
    ExecutionProfile {
        files,
        ..ExecutionProfile::default()
    }
}

#[test]
fn nginx_run_uses_the_expected_packages() {
    let inv = common::inventory();
    let used = runtime_used_packages(&inv, &common::profile());
    assert_eq!(
        names(&inv, &used),
        [
            "libc6",        // executed program's interpreter, mapped libc
            "libgcc-s1",    // mapped as /usr/lib/…, listed as /lib/… only
            "libgd3",       // mapped (never entered, but mapped)
            "libssl3",      // mapped
            "nginx",        // executed
            "python3-yaml", // __pycache__ bytecode of a source it owns
        ]
    );
}

#[test]
fn pyc_in_pycache_maps_back_to_the_owner_of_its_source() {
    let inv = Inventory::new(
        InventorySource::RootFs,
        vec![
            package(
                "python3-yaml",
                "6.0-3+b2",
                &["/usr/lib/python3/dist-packages/yaml/nodes.py"],
            ),
            package(
                "python3-minimal",
                "3.11.2-1+b1",
                &["/usr/lib/python3.11/os.py"],
            ),
        ],
    );
    let used = runtime_used_packages(
        &inv,
        &opened(&["/usr/lib/python3/dist-packages/yaml/__pycache__/nodes.cpython-311.opt-1.pyc"]),
    );
    assert_eq!(names(&inv, &used), ["python3-yaml"]);

    // A pip-installed package whose RECORD lists the bytecode itself.
    let mut pip = Package::new("requests", "2.31.0", Ecosystem::Python);
    pip.files.insert(
        "/usr/local/lib/python3.12/site-packages/requests/__pycache__/api.cpython-312.pyc".into(),
    );
    let inv = Inventory::new(InventorySource::RootFs, vec![pip]);
    let used = runtime_used_packages(
        &inv,
        &opened(&[
            "/usr/local/lib/python3.12/site-packages/requests/__pycache__/api.cpython-312.pyc",
        ]),
    );
    assert_eq!(names(&inv, &used), ["requests"]);
}

#[test]
fn packages_with_only_data_opened_are_excluded() {
    let inv = Inventory::new(
        InventorySource::RootFs,
        vec![
            package("tzdata", "2025b-0+deb12u1", &["/usr/share/zoneinfo/UTC"]),
            package(
                "ca-certificates",
                "20230311",
                &[
                    "/etc/ssl/certs/ca-certificates.crt",
                    "/usr/sbin/update-ca-certificates",
                ],
            ),
            package(
                "libssl3",
                "3.0.15-1~deb12u1",
                &[
                    "/usr/lib/ssl/openssl.cnf",
                    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                ],
            ),
            package(
                "node-lodash",
                "4.17.21",
                &["/usr/share/nodejs/lodash/lodash.js"],
            ),
        ],
    );
    let profile = opened(&[
        "/etc/ssl/certs/ca-certificates.crt",
        "/usr/lib/ssl/openssl.cnf",
        "/usr/share/zoneinfo/UTC",
        "/usr/share/nodejs/lodash/lodash.js",
    ]);
    let used = runtime_used_packages(&inv, &profile);
    assert_eq!(
        names(&inv, &used),
        ["node-lodash"],
        "only the js module is code"
    );

    // A shared object that is opened (dlopen reads before it maps) counts.
    let profile = opened(&["/usr/lib/x86_64-linux-gnu/libssl.so.3"]);
    assert_eq!(
        names(&inv, &runtime_used_packages(&inv, &profile)),
        ["libssl3"]
    );
    // So does a script in a program directory read by its interpreter.
    let profile = opened(&["/usr/sbin/update-ca-certificates"]);
    assert_eq!(
        names(&inv, &runtime_used_packages(&inv, &profile)),
        ["ca-certificates"]
    );
}

#[test]
fn executables_interpreters_and_merged_usr_forms() {
    let inv = Inventory::new(
        InventorySource::Sbom,
        vec![
            // An SBOM that lists only the pre-merge spellings.
            package("libc6", "2.36-9", &["/lib64/ld-linux-x86-64.so.2"]),
            package("bash", "5.2.15-2+b7", &["/bin/bash"]),
            package("coreutils", "9.1-1", &["/bin/ls"]),
        ],
    );
    let profile = ExecutionProfile {
        executables: vec![ExecutedBinary {
            path: "/usr/bin/bash".into(),
            interpreter: Some("/lib64/ld-linux-x86-64.so.2".into()),
            count: 2,
        }],
        loaded_libraries: vec![LoadedLibrary {
            path: "/usr/lib64/ld-linux-x86-64.so.2".into(),
            mappings: 2,
        }],
        ..ExecutionProfile::default()
    };
    let used = runtime_used_packages(&inv, &profile);
    assert_eq!(names(&inv, &used), ["libc6", "bash"]);
}

#[test]
fn a_java_archive_counts_for_every_package_it_holds() {
    let jar = "/app/app.jar";
    let mk = |name: &str| {
        let mut p = Package::new(name, "1.0", Ecosystem::Maven);
        p.purl = Purl::new("maven", Some("org.example"), name, Some("1.0")).ok();
        p.files.insert(jar.to_owned());
        p
    };
    let inv = Inventory::new(
        InventorySource::RootFs,
        vec![mk("app"), mk("jackson-databind"), mk("snakeyaml")],
    );
    let used = runtime_used_packages(&inv, &opened(&[jar]));
    assert_eq!(names(&inv, &used), ["app", "jackson-databind", "snakeyaml"]);
}

#[test]
fn filtered_inventory_keeps_packages_and_files_and_writes_as_cyclonedx() {
    let inv = common::inventory();
    let runtime = runtime_inventory(&inv, &common::profile());
    assert_eq!(runtime.source, inv.source);
    let kept: Vec<&str> = runtime.packages().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        kept,
        [
            "libc6",
            "libgcc-s1",
            "libgd3",
            "libssl3",
            "nginx",
            "python3-yaml"
        ]
    );
    let ssl = runtime.by_name("libssl3").next().expect("libssl3 kept");
    assert_eq!(ssl.files.len(), 3, "every file of a kept package stays");
    assert!(runtime
        .owner_of("/usr/lib/x86_64-linux-gnu/libssl.so.3")
        .is_some());
    assert!(runtime
        .owner_of("/usr/lib/x86_64-linux-gnu/libtiff.so.6")
        .is_none());

    let subject = vexxy_sbom::SbomSubject {
        name: "docker.io/library/nginx".into(),
        digest: common::DIGEST.parse().ok(),
        distro: Some("debian 12.11".into()),
    };
    let opts = vexxy_sbom::SbomOptions {
        timestamp: time::macros::datetime!(2025-06-01 12:00:00 UTC),
        tool_version: "0.1.0".into(),
        include_files: false,
    };
    let bom = vexxy_sbom::write_cyclonedx(&subject, &runtime, &opts).expect("writes");
    let json: serde_json::Value = serde_json::from_str(&bom).expect("json");
    let names: Vec<&str> = json["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "libc6",
            "libgcc-s1",
            "libgd3",
            "libssl3",
            "nginx",
            "python3-yaml"
        ]
    );

    // Out-of-range indexes are ignored; an empty set gives an empty inventory.
    let none = filter_inventory(&inv, &BTreeSet::from([99]));
    assert!(none.packages().is_empty());
}
