//! ELF reachability and built-in rules on the real Debian nginx root
//! filesystems built by `scripts/build-test-images.sh` (when absent: `SKIP`
//! outside CI, a failure in CI).

use std::time::Instant;

use vexxy_model::{Ecosystem, Inventory, InventorySource, LoaderVerdict, Package, PackageReach};
use vexxy_rootfs::RootFs;
use vexxy_static::{
    builtin_loaders, builtin_rules, entrypoints, evaluate, reach, scan, ScanOptions,
};

/// An inventory from dpkg's file lists, paths made canonical (canonical
/// parent directory + file name).
fn dpkg_inventory(root: &RootFs) -> Inventory {
    let mut packages = Vec::new();
    for entry in root.read_dir("/var/lib/dpkg/info").expect("dpkg info") {
        let Some(stem) = entry.path.strip_suffix(".list") else {
            continue;
        };
        let name = stem
            .rsplit('/')
            .next()
            .expect("name")
            .split(':')
            .next()
            .expect("name");
        let mut p = Package::new(name, "0", Ecosystem::Deb);
        for line in root
            .read_to_string(&entry.path, 1 << 24)
            .expect("list")
            .lines()
        {
            let Some((dir, file)) = line.rsplit_once('/') else {
                continue;
            };
            let Ok(cdir) = root.canonical(if dir.is_empty() { "/" } else { dir }) else {
                continue;
            };
            p.files.insert(if cdir == "/" {
                format!("/{file}")
            } else {
                format!("{cdir}/{file}")
            });
        }
        packages.push(p);
    }
    Inventory::new(InventorySource::RootFs, packages)
}

fn analyse(name: &str) -> Option<vexxy_model::ElfReach> {
    let dir = vexxy_testkit::image_rootfs(name)?;
    let root = RootFs::open(&dir).expect("open rootfs");
    let t = Instant::now();
    let graph = scan(&root, &ScanOptions::default()).expect("scan");
    println!(
        "{name}: scanned {} ELF objects in {:?}",
        graph.len(),
        t.elapsed()
    );
    let argv: Vec<String> = ["nginx", "-g", "daemon off;"].map(String::from).to_vec();
    let eps = entrypoints(&root, &argv, &[]);
    assert_eq!(eps, ["/usr/sbin/nginx"]);
    let inv = dpkg_inventory(&root);
    let t = Instant::now();
    let r = reach(&graph, &eps, &builtin_loaders(), &root, &inv);
    println!("{name}: reach in {:?}", t.elapsed());
    if std::env::var_os("VEXXY_STATIC_DUMP").is_some() {
        for (p, v) in &r.packages {
            println!("{p}: {v:?}");
        }
        println!("unresolved: {:?}", r.unresolved);
    }
    // Only optional plugins of other programs may lack libraries (iproute2's
    // tc ATM plugin needs the uninstalled libatm1).
    assert!(
        r.unresolved.iter().all(|(_, by)| by.contains("/tc/")),
        "{:?}",
        r.unresolved
    );
    Some(r)
}

fn in_entry_closure(r: &vexxy_model::ElfReach, pkg: &str) -> bool {
    matches!(
        r.packages.get(pkg),
        Some(PackageReach::FromEntrypoint { .. })
    )
}

#[test]
fn nginx_without_image_filter() {
    let Some(r) = analyse("nginx") else { return };
    assert!(r.objects > 100, "{}", r.objects);
    for pkg in [
        "nginx",
        "libssl3",
        "libc6",
        "zlib1g",
        "libpcre2-8-0",
        "libcrypt1",
    ] {
        assert!(
            in_entry_closure(&r, pkg),
            "{pkg}: {:?}",
            r.packages.get(pkg)
        );
    }
    match r.packages.get("libssl3") {
        Some(PackageReach::FromEntrypoint { chain, .. }) => assert_eq!(chain[0], "/usr/sbin/nginx"),
        other => panic!("libssl3: {other:?}"),
    }
    for pkg in [
        "libtiff6",
        "libgd3",
        "libheif1",
        "libaom3",
        "libxslt1.1",
        "libgeoip1",
    ] {
        match r.packages.get(pkg) {
            Some(PackageReach::OnlyViaPlugins { plugins }) => {
                assert!(!plugins.is_empty());
                for (plugin, verdict) in plugins {
                    assert!(plugin.starts_with("/usr/lib/nginx/modules/"), "{plugin}");
                    assert!(
                        matches!(verdict, LoaderVerdict::NotLoaded { loader, .. } if loader == "nginx"),
                        "{verdict:?}"
                    );
                }
            }
            other => panic!("{pkg}: {other:?}"),
        }
    }
    assert!(r.loaded_plugins.is_empty(), "{:?}", r.loaded_plugins);
    // Packages other programs use are told apart from unused ones.
    assert!(matches!(
        r.packages.get("coreutils"),
        Some(PackageReach::FromOtherExecutables { .. })
    ));
    assert!(matches!(
        r.packages.get("debianutils"),
        Some(PackageReach::FromOtherExecutables { .. } | PackageReach::NoElf)
    ));

    let root = RootFs::open(vexxy_testkit::image_rootfs("nginx").expect("present")).expect("open");
    let outcomes =
        evaluate(&builtin_rules(), &root, &["/usr/sbin/nginx".to_owned()]).expect("evaluate");
    let ids: Vec<&str> = outcomes.iter().map(|o| o.rule_id.as_str()).collect();
    for id in [
        "nginx-image-filter-not-loaded",
        "nginx-xslt-not-loaded",
        "nginx-geoip-not-loaded",
        "nginx-no-peer-certificate-verification",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
}

#[test]
fn nginx_with_image_filter() {
    let Some(r) = analyse("nginx-imagefilter") else {
        return;
    };
    assert_eq!(
        r.loaded_plugins,
        ["/usr/lib/nginx/modules/ngx_http_image_filter_module.so"]
    );
    for pkg in ["libgd3", "libtiff6", "libheif1", "libpng16-16", "libssl3"] {
        assert!(
            in_entry_closure(&r, pkg),
            "{pkg}: {:?}",
            r.packages.get(pkg)
        );
    }
    match r.packages.get("libtiff6") {
        Some(PackageReach::FromEntrypoint { chain, .. }) => {
            assert_eq!(
                chain[0], "/usr/lib/nginx/modules/ngx_http_image_filter_module.so",
                "{chain:?}"
            )
        }
        other => panic!("libtiff6: {other:?}"),
    }
    let root = RootFs::open(vexxy_testkit::image_rootfs("nginx-imagefilter").expect("present"))
        .expect("open");
    let outcomes =
        evaluate(&builtin_rules(), &root, &["/usr/sbin/nginx".to_owned()]).expect("evaluate");
    assert!(!outcomes
        .iter()
        .any(|o| o.rule_id == "nginx-image-filter-not-loaded"));
}
