//! The cataloger on real Debian bookworm root filesystems built by
//! `scripts/build-test-images.sh`. A missing image (or dpkg-query) prints
//! `SKIP` outside CI and fails in CI (`vexxy_testkit`'s gates).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use vexxy_catalog::{catalog, Catalog};
use vexxy_model::Ecosystem;
use vexxy_rootfs::RootFs;

fn catalog_image(name: &str) -> Option<(PathBuf, Catalog)> {
    let rootfs = vexxy_testkit::image_rootfs(name)?;
    let root = RootFs::open(&rootfs).expect("open rootfs");
    let start = Instant::now();
    let cat = catalog(&root).expect("catalogs");
    println!(
        "{name}: {} packages in {:?}",
        cat.inventory.packages().len(),
        start.elapsed()
    );
    Some((rootfs, cat))
}

/// The installed (name, version, arch) set according to the host's dpkg-query.
fn dpkg_query(rootfs: &Path) -> Option<BTreeSet<(String, String, String)>> {
    let out = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            rootfs.join("var/lib/dpkg").display()
        ))
        .args([
            "-W",
            "-f",
            "${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Status}\\n",
        ])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => panic!("dpkg-query failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            vexxy_testkit::skip_or_fail(format!(
                "the dpkg-query comparison: cannot run dpkg-query: {e}"
            ));
            return None;
        }
    };
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    Some(
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() == 4 && f[3] == "installed")
                    .then(|| (f[0].to_owned(), f[1].to_owned(), f[2].to_owned()))
            })
            .collect(),
    )
}

#[test]
fn nginx_rootfs_matches_dpkg_and_owns_canonical_libraries() {
    let Some((rootfs, cat)) = catalog_image("nginx") else {
        return;
    };
    let d = cat.distro.as_ref().expect("os-release");
    assert_eq!(
        (
            d.id.as_str(),
            d.version_id.as_deref(),
            d.version_codename.as_deref()
        ),
        ("debian", Some("12"), Some("bookworm"))
    );
    assert!(cat.warnings.is_empty(), "{:?}", cat.warnings);

    // (package, a canonical path it must own, the path as a merged-usr list names it)
    for (name, canonical, listed) in [
        ("nginx", "/usr/sbin/nginx", None),
        (
            "libc6",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            Some("/lib/x86_64-linux-gnu/libc.so.6"),
        ),
        (
            "zlib1g",
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
            Some("/lib/x86_64-linux-gnu/libz.so.1"),
        ),
        ("libssl3", "/usr/lib/x86_64-linux-gnu/libssl.so.3", None),
        ("libtiff6", "/usr/lib/x86_64-linux-gnu/libtiff.so.6", None),
        ("libgd3", "/usr/lib/x86_64-linux-gnu/libgd.so.3", None),
    ] {
        let pkg = cat
            .inventory
            .by_name(name)
            .next()
            .unwrap_or_else(|| panic!("{name} not cataloged"));
        assert!(
            pkg.files.contains(canonical),
            "{name} does not own {canonical}"
        );
        assert_eq!(
            cat.inventory.owner_of(canonical).map(|p| p.name.as_str()),
            Some(name),
            "{canonical}"
        );
        if let Some(listed) = listed {
            assert!(
                pkg.files.contains(listed),
                "{name} lost its listed path {listed}"
            );
        }
        if name != "nginx" {
            let so: Vec<&String> = pkg
                .files
                .iter()
                .filter(|f| f.starts_with("/usr/lib/x86_64-linux-gnu/") && f.contains(".so"))
                .collect();
            assert!(!so.is_empty(), "{name} owns no canonical shared object");
        }
        assert!(
            !pkg.files.contains("/usr/lib/x86_64-linux-gnu"),
            "{name}: a directory counted as a file"
        );
        let purl = pkg.purl.as_ref().expect("purl").to_string();
        assert!(
            purl.starts_with(&format!("pkg:deb/debian/{name}@"))
                && purl.contains("arch=amd64")
                && purl.contains("distro=debian-12"),
            "{purl}"
        );
    }
    let libc = cat.inventory.by_name("libc6").next().expect("libc6");
    assert_eq!(libc.source.as_ref().map(|s| s.name.as_str()), Some("glibc"));
    assert!(libc
        .purl
        .as_ref()
        .is_some_and(|p| p.qualifier("upstream") == Some("glibc")));

    let debs: Vec<&vexxy_model::Package> = cat
        .inventory
        .packages()
        .iter()
        .filter(|p| p.ecosystem == Ecosystem::Deb)
        .collect();
    let ours: BTreeSet<(String, String, String)> = debs
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.version.clone(),
                p.architecture.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(ours.len(), debs.len(), "duplicate packages");
    if let Some(theirs) = dpkg_query(&rootfs) {
        assert_eq!(ours, theirs, "package set differs from dpkg-query");
    }
}

#[test]
fn python_flask_rootfs_owns_python_modules() {
    let Some((rootfs, cat)) = catalog_image("python-flask") else {
        return;
    };
    for (name, path) in [
        (
            "python3-flask",
            "/usr/lib/python3/dist-packages/flask/__init__.py",
        ),
        (
            "python3-requests",
            "/usr/lib/python3/dist-packages/requests/__init__.py",
        ),
        (
            "python3-yaml",
            "/usr/lib/python3/dist-packages/yaml/__init__.py",
        ),
    ] {
        assert_eq!(
            cat.inventory.owner_of(path).map(|p| p.name.as_str()),
            Some(name),
            "{path}"
        );
    }
    assert_eq!(
        cat.inventory
            .owner_of("/app/app.py")
            .map(|p| p.name.as_str()),
        None,
        "the app belongs to no package"
    );
    if let Some(theirs) = dpkg_query(&rootfs) {
        let debs = cat
            .inventory
            .packages()
            .iter()
            .filter(|p| p.ecosystem == Ecosystem::Deb)
            .count();
        assert_eq!(debs, theirs.len());
    }
    // The Debian-packaged distributions are cataloged as Python packages
    // too, listing their metadata files; dpkg, cataloged first, stays the
    // owner of every file it lists.
    for (name, version, metadata) in [
        (
            "flask",
            "2.2.2",
            "/usr/lib/python3/dist-packages/Flask-2.2.2.egg-info/PKG-INFO",
        ),
        (
            "pyyaml",
            "6.0",
            "/usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA",
        ),
    ] {
        let p = cat
            .inventory
            .by_name(name)
            .find(|p| p.ecosystem == Ecosystem::Python)
            .unwrap_or_else(|| panic!("python package {name} not cataloged"));
        assert_eq!(p.version, version);
        assert_eq!(
            p.purl.as_ref().map(ToString::to_string),
            Some(format!("pkg:pypi/{name}@{version}"))
        );
        assert!(
            p.files.contains(metadata),
            "{name} does not list {metadata}"
        );
        assert_eq!(
            cat.inventory
                .owner_of(metadata)
                .map(|p| p.ecosystem.clone()),
            Some(Ecosystem::Deb),
            "{metadata}"
        );
    }
}
