//! Throughput of the seed workflow: 50 000 findings across 500 images.
//!
//! Generates 500 Grype reports (100 findings each) and CycloneDX SBOMs,
//! then times, in one run:
//! - vexxy: read + parse each report and SBOM, decide every finding, write
//!   an OpenVEX document per image (in-process, the library calls the CLI makes);
//! - the peer: `bench/peer_generate_vex.py`, a straightforward Python version
//!   of the seed's generate_vex loop doing the same work with its two rules.
//!
//! Prints both times (best of three) and the ratio. Target: vexxy ≤ 1 s.
//! Run: `cargo bench -p vexxy --bench vex_throughput`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::json;
use vexxy_model::{Inventory, InventorySource, Product};

const IMAGES: usize = 500;
const FINDINGS_PER_IMAGE: usize = 100;
const RUNS: usize = 3;

/// A deterministic xorshift generator: the same data every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn generate(dir: &Path) -> std::io::Result<()> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let pool: Vec<String> = (0..200).map(|i| format!("libbench{i}")).collect();
    for img in 0..IMAGES {
        let d = dir.join(format!("img{img:03}"));
        fs::create_dir_all(&d)?;
        let digest = format!("{:064x}", (img as u128 + 1) * 0x1234_5678_9abc_def1);
        let digest = &digest[digest.len() - 64..];
        // 150 installed packages per image.
        let installed: Vec<&String> = (0..150).map(|k| &pool[(img + k) % pool.len()]).collect();
        let components: Vec<_> = installed
            .iter()
            .map(|n| json!({"type": "library", "bom-ref": format!("ref-{n}"), "name": n, "version": "1.0-1", "purl": format!("pkg:deb/debian/{n}@1.0-1?arch=amd64&distro=debian-12")}))
            .collect();
        let sbom = json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "serialNumber": format!("urn:uuid:00000000-0000-4000-8000-{img:012}"), "version": 1, "components": components});
        fs::write(d.join("sbom.cdx.json"), serde_json::to_vec(&sbom)?)?;
        let matches: Vec<_> = (0..FINDINGS_PER_IMAGE)
            .map(|_| {
                let roll = rng.below(100);
                let name = if roll < 5 {
                    "linux-libc-dev".to_owned()
                } else if roll < 12 {
                    format!("libmissing{}", rng.below(20))
                } else {
                    installed[rng.below(installed.len())].to_string()
                };
                let cve = format!("CVE-20{}-{}", 10 + rng.below(15), 1000 + rng.below(40000));
                json!({
                    "vulnerability": {
                        "id": cve, "dataSource": format!("https://security-tracker.debian.org/tracker/{cve}"),
                        "namespace": "debian:distro:debian:12", "severity": "Medium", "urls": [],
                        "description": "A synthetic vulnerability used for the throughput benchmark.",
                        "cvss": [], "fix": {"versions": ["1.0-2"], "state": "fixed"}, "advisories": []
                    },
                    "relatedVulnerabilities": [],
                    "matchDetails": [],
                    "artifact": {
                        "id": format!("{:016x}", rng.next()), "name": name, "version": "1.0-1", "type": "deb",
                        "locations": [], "language": "", "licenses": [], "cpes": [],
                        "purl": format!("pkg:deb/debian/{name}@1.0-1?arch=amd64&distro=debian-12"), "upstreams": []
                    }
                })
            })
            .collect();
        let report = json!({
            "matches": matches,
            "source": {"type": "image", "target": {"userInput": format!("registry.example/app{img}:latest"), "repoDigests": [format!("registry.example/app{img}@sha256:{digest}")]}},
            "distro": {"name": "debian", "version": "12"},
            "descriptor": {"name": "grype", "version": "0.92.2"}
        });
        fs::write(d.join("grype.json"), serde_json::to_vec(&report)?)?;
    }
    Ok(())
}

/// Time spent per phase, summed over images.
#[derive(Default, Clone, Copy)]
struct Phases {
    read: Duration,
    parse: Duration,
    decide: Duration,
    write: Duration,
}

fn vexxy_once(data: &Path, out: &Path, phases: &mut Phases) -> (Duration, usize, usize) {
    let started = Instant::now();
    let (mut findings, mut statements) = (0, 0);
    let mut images: Vec<PathBuf> = fs::read_dir(data)
        .expect("data dir")
        .map(|e| e.expect("entry").path())
        .collect();
    images.sort();
    let ts = time::OffsetDateTime::UNIX_EPOCH;
    for d in images {
        let report_path = d.join("grype.json");
        let sbom_path = d.join("sbom.cdx.json");
        let t = Instant::now();
        let (report_bytes, sbom_bytes) = (
            fs::read(&report_path).expect("report"),
            fs::read(&sbom_path).expect("sbom"),
        );
        phases.read += t.elapsed();
        let t = Instant::now();
        let report = match vexxy_ingest::parse(&report_bytes, &report_path).expect("parses") {
            vexxy_ingest::Input::Report(r) => r,
            vexxy_ingest::Input::Sbom(_) => panic!("report expected"),
        };
        let sbom = match vexxy_ingest::parse(&sbom_bytes, &sbom_path).expect("parses") {
            vexxy_ingest::Input::Sbom(s) => s,
            vexxy_ingest::Input::Report(_) => panic!("sbom expected"),
        };
        let inventory = Inventory::new(InventorySource::Sbom, sbom.packages);
        phases.parse += t.elapsed();
        let t = Instant::now();
        let mut product =
            Product::parse(report.target.as_deref().expect("target")).expect("product");
        product.digest.clone_from(&report.target_digest);
        let facts = vexxy_model::ReachFacts::default();
        let inputs = vexxy_decide::Inputs {
            product: &product,
            findings: &report.findings,
            inventory: Some(&inventory),
            facts: &facts,
            existing: &[],
            profile: None,
            command_override: None,
        };
        let outcome = vexxy_decide::decide(&inputs, &vexxy_decide::Policy::default());
        findings += report.findings.len();
        statements += outcome.statements.len();
        phases.decide += t.elapsed();
        let t = Instant::now();
        let doc = vexxy_decide::document(outcome.statements, "vexxy", "vexxy-bench", ts);
        let text = vexxy_vex::write_openvex(
            &doc,
            &vexxy_vex::OpenVexOptions {
                embed_evidence: false,
                pretty: true,
            },
        )
        .expect("writes");
        let name = d.file_name().expect("name").to_string_lossy().into_owned();
        fs::write(out.join(format!("{name}.openvex.json")), text).expect("write");
        phases.write += t.elapsed();
    }
    (started.elapsed(), findings, statements)
}

fn peer_once(data: &Path, out: &Path) -> Option<(Duration, usize, usize)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/peer_generate_vex.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(data)
        .arg(out)
        .output()
        .ok()?;
    if !output.status.success() {
        eprintln!("peer failed: {}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    Some((
        Duration::from_secs_f64(v["seconds"].as_f64()?),
        v["findings"].as_u64()? as usize,
        v["statements"].as_u64()? as usize,
    ))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // else we need. Either way the whole benchmark runs once.
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let (out_v, out_p) = (tmp.path().join("vexxy"), tmp.path().join("peer"));
    for d in [&data, &out_v, &out_p] {
        fs::create_dir_all(d).expect("mkdir");
    }
    let t = Instant::now();
    generate(&data).expect("generate data");
    println!(
        "vex_throughput: generated {IMAGES} images x {FINDINGS_PER_IMAGE} findings in {:.2}s",
        t.elapsed().as_secs_f64()
    );

    let mut best_v = None::<(Duration, usize, usize)>;
    let mut best_phases = Phases::default();
    let mut best_p = None::<(Duration, usize, usize)>;
    for _ in 0..RUNS {
        let mut phases = Phases::default();
        let v = vexxy_once(&data, &out_v, &mut phases);
        if best_v.is_none_or(|b| v.0 < b.0) {
            best_v = Some(v);
            best_phases = phases;
        }
        if let Some(p) = peer_once(&data, &out_p) {
            if best_p.is_none_or(|b| p.0 < b.0) {
                best_p = Some(p);
            }
        }
    }
    let (tv, fv, sv) = best_v.expect("ran");
    println!(
        "  vexxy  parse + decide + write OpenVEX: {:.3}s  ({fv} findings, {sv} statements)",
        tv.as_secs_f64()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "         read {:.0}ms, parse {:.0}ms, decide {:.0}ms, write {:.0}ms",
        ms(best_phases.read),
        ms(best_phases.parse),
        ms(best_phases.decide),
        ms(best_phases.write)
    );
    match best_p {
        Some((tp, fp, sp)) => {
            println!(
                "  peer   python generate_vex loop:       {:.3}s  ({fp} findings, {sp} statements)",
                tp.as_secs_f64()
            );
            println!(
                "  ratio  peer / vexxy = {:.1}x",
                tp.as_secs_f64() / tv.as_secs_f64()
            );
            assert_eq!(fp, fv, "both sides must see the same findings");
        }
        None => println!("  peer   not run: python3 is missing"),
    }
    println!(
        "  target vexxy <= 1.0s for {} findings: {}",
        IMAGES * FINDINGS_PER_IMAGE,
        if tv.as_secs_f64() <= 1.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}
