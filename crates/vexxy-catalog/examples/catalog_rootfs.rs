//! Catalogs a root filesystem and prints a summary with timings:
//! `cargo run --release -p vexxy-catalog --example catalog_rootfs -- <rootfs> [runs]`;
//! set `PRINT_PURLS=1` to also print every package's purl.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: catalog_rootfs <rootfs> [runs]")?;
    let runs: u32 = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let root = vexxy_rootfs::RootFs::open(&path)?;
    let mut best = None;
    let mut last = None;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let cat = vexxy_catalog::catalog(&root)?;
        let took = start.elapsed();
        best = Some(best.map_or(took, |b: std::time::Duration| b.min(took)));
        last = Some(cat);
    }
    let cat = last.ok_or("no run")?;
    let files: usize = cat.inventory.packages().iter().map(|p| p.files.len()).sum();
    println!(
        "{path}: {} packages, {files} file entries, distro {:?}, best of {runs}: {:?}",
        cat.inventory.packages().len(),
        cat.distro.as_ref().map(|d| (&d.id, &d.version_id)),
        best.unwrap_or_default()
    );
    if std::env::var_os("PRINT_PURLS").is_some() {
        for p in cat.inventory.packages() {
            println!(
                "{}",
                p.purl.as_ref().map(ToString::to_string).unwrap_or_default()
            );
        }
    }
    for w in &cat.warnings {
        println!("warning: {w}");
    }
    Ok(())
}
