//! Go function-level evidence (issue 17 item 5) on the `go-vulnerable` test
//! image: a Go HTTP service built with Debian's golang against Debian's
//! golang.org/x/net 0.7.0. Every request goes through `html.Render`
//! (GO-2023-1988); `http2.(*Server).ServeConn` (GO-2023-2102) is linked
//! but no plain-HTTP connection reaches it.
//!
//! The advisories are the Go vulnerability database's facts, written as OSV
//! records in `tests/fixtures/go/advisories`. The OSV-Scanner-shaped report
//! is generated here from them and from the image's own inventory
//! (synthetic: there is no third-party report of this test image).
//!
//! Needs root, runc, eBPF and the test image for the runs: where one is
//! missing a test prints `SKIP` outside CI and fails in CI. govulncheck
//! (Debian's) is compared where installed, and required in CI.

mod cli;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command as StdCommand,
};

use cli::{read, serial, vexxy};
use serde_json::{json, Value};
use vexxy_model::FunctionResolution;

fn advisories() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/go/advisories")
}

const RENDER: &str = "golang.org/x/net/html.Render";
const SERVE_CONN: &str = "golang.org/x/net/http2.(*Server).ServeConn";

/// The OSV-qualified names the two advisories give for golang.org/x/net.
fn advisory_names() -> BTreeMap<String, Vec<String>> {
    vexxy_ingest::advisory_symbols(&advisories())
        .expect("fixture advisories")
        .into_iter()
        .filter(|s| s.package == "golang.org/x/net")
        .map(|s| (s.vulnerability, s.symbols))
        .collect()
}

#[test]
fn advisory_functions_resolve_in_the_go_binary_stripped_or_not() {
    let Some(rootfs) = vexxy_testkit_host::image_rootfs("go-vulnerable") else {
        return;
    };
    let Some(strip) = vexxy_testkit_host::require_program("strip", "apt-get install binutils")
    else {
        return;
    };
    let binary = rootfs.join("app/server");
    let work = tempfile::tempdir().expect("tempdir");
    let stripped = work.path().join("server");
    let status = StdCommand::new(strip)
        .arg("-o")
        .arg(&stripped)
        .arg(&binary)
        .status()
        .expect("strip");
    assert!(status.success());
    let names = advisory_names();
    assert_eq!(
        names.keys().collect::<Vec<_>>(),
        ["GO-2023-1988", "GO-2023-2102"]
    );
    let mut sites_of = BTreeMap::new();
    for (label, path) in [("symbols", &binary), ("stripped", &stripped)] {
        let elf_syms = symtab_entries(path);
        println!("{label}: {} .symtab entries", elf_syms);
        for (id, wanted) in &names {
            let FunctionResolution::Present { sites, .. } =
                vexxy_static::gosym::resolve(path, "/app/server", wanted)
            else {
                panic!("{id} not present in the {label} binary")
            };
            let found: Vec<(String, Option<u64>)> =
                sites.iter().map(|s| (s.symbol.clone(), s.offset)).collect();
            println!("{label} {id}: {found:?}");
            assert!(sites.iter().all(|s| s.offset.is_some()));
            sites_of
                .entry(id.clone())
                .or_insert_with(Vec::new)
                .push(found);
        }
        // a function the binary does not link is absent; not "completely":
        // an inlined-everywhere function has no pclntab entry of its own
        assert!(matches!(
            vexxy_static::gosym::resolve(
                path,
                "/app/server",
                &["golang.org/x/net/html.ParseFragmentWithOptions".to_owned()]
            ),
            FunctionResolution::Absent {
                complete: false,
                ..
            }
        ));
    }
    // stripped or not: the same functions at the same offsets
    for (id, both) in &sites_of {
        assert_eq!(both[0], both[1], "{id}");
    }
    let symbols =
        |id: &str| -> Vec<String> { sites_of[id][0].iter().map(|(s, _)| s.clone()).collect() };
    assert!(symbols("GO-2023-1988").contains(&RENDER.to_owned()));
    assert!(symbols("GO-2023-2102").contains(&SERVE_CONN.to_owned()));
    assert!(
        symbols("GO-2023-2102").len() >= 5,
        "{:?}",
        symbols("GO-2023-2102")
    );
    assert_eq!(symtab_entries(&stripped), 0);
    assert!(symtab_entries(&binary) > 1000);
    // govulncheck's static answer on the same two binaries
    for (label, path) in [("symbols", &binary), ("stripped", &stripped)] {
        match govulncheck(path, work.path()) {
            None => {}
            Some(Ok(found)) => {
                println!("govulncheck {label}: {found:?}");
                if label == "symbols" {
                    assert!(
                        found.contains_key("GO-2023-1988") && found.contains_key("GO-2023-2102")
                    );
                }
            }
            Some(Err(e)) => {
                println!("govulncheck {label}: no answer: {e}");
                assert_ne!(
                    label, "symbols",
                    "govulncheck failed on the unstripped binary: {e}"
                );
            }
        }
    }
}

/// Entries of the binary's `.symtab` (0 when stripped), counted with
/// `nm` so the test does not depend on vexxy's own ELF reading.
fn symtab_entries(path: &Path) -> usize {
    let out = StdCommand::new("nm").arg(path).output().expect("nm");
    if !out.status.success() {
        return 0;
    }
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Counts of the probed functions in a profile (`vexxy run -o`, or an
/// analysis's profile.json).
fn calls(profile: &Value) -> BTreeMap<String, u64> {
    profile["execution_profile"]["functions_executed"]
        .as_array()
        .expect("functions_executed")
        .iter()
        .filter_map(|f| Some((f["symbol"].as_str()?.to_owned(), f["calls"].as_u64()?)))
        .collect()
}

#[test]
fn go_functions_are_counted_at_entry_stripped_or_not() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(rootfs) = vexxy_testkit_host::image_rootfs("go-vulnerable") else {
        return;
    };
    let Some(img) = vexxy_testkit_host::test_image_ref("go-vulnerable") else {
        return;
    };
    let _g = serial();
    let work = tempfile::tempdir().expect("tempdir");
    // the same image with its binary stripped (`strip` drops .symtab):
    // the probes then attach at the pclntab's offsets
    let stripped_root = work.path().join("rootfs");
    let status = StdCommand::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(&rootfs)
        .arg(&stripped_root)
        .status()
        .expect("cp");
    assert!(status.success());
    let status = StdCommand::new("strip")
        .arg(stripped_root.join("app/server"))
        .status()
        .expect("strip");
    assert!(status.success());
    assert_eq!(symtab_entries(&stripped_root.join("app/server")), 0);
    let config = rootfs.parent().expect("image dir").join("config.json");
    let runs = [
        ("symbols", img, None),
        (
            "stripped",
            format!("dir:{}", stripped_root.display()),
            Some(config),
        ),
    ];
    for (label, image, image_config) in runs {
        let out = work.path().join(format!("{label}.json"));
        let mut cmd = vexxy();
        cmd.args(["run", &image, "-q", "--duration", "6s"]);
        if let Some(c) = &image_config {
            cmd.arg("--image-config").arg(c);
        }
        let res = cmd
            .arg("--uprobe")
            .arg(format!("/app/server:{RENDER}"))
            .arg("--uprobe")
            .arg(format!("/app/server:{SERVE_CONN}"))
            .arg("-o")
            .arg(&out)
            .output()
            .expect("run vexxy run");
        assert!(
            res.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        let profile = read(&out);
        let counted = calls(&profile);
        let tracer = &profile["tracer"];
        println!("{label}: calls {counted:?}; tracer {tracer}");
        assert_eq!(
            tracer["uprobes_attached"].as_u64(),
            Some(2),
            "{label}: {tracer}"
        );
        assert!(
            counted.get(RENDER).copied().unwrap_or(0) > 0,
            "{label}: html.Render never counted: {counted:?}"
        );
        assert_eq!(counted.get(SERVE_CONN).copied(), Some(0), "{label}");
    }
}

/// An OSV-Scanner JSON report of the image's golang.org/x/net, carrying
/// the two advisories' records as OSV-Scanner embeds them.
fn osv_scanner_report(dir: &Path, version: &str) -> PathBuf {
    let records: Vec<Value> = ["GO-2023-1988", "GO-2023-2102"]
        .iter()
        .map(|id| read(&advisories().join(format!("{id}.json"))))
        .collect();
    let groups: Vec<Value> = records
        .iter()
        .map(|r| json!({"ids": [r["id"]], "aliases": r["aliases"], "max_severity": ""}))
        .collect();
    let report = json!({
        "results": [{
            "source": {"path": "/app/server", "type": "binary"},
            "packages": [{
                "package": {"name": "golang.org/x/net", "version": version, "ecosystem": "Go"},
                "vulnerabilities": records,
                "groups": groups
            }]
        }]
    });
    let path = dir.join("osv-scanner.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report).expect("json")).expect("write");
    path
}

/// Debian's govulncheck on the binary, against a vulnerability database
/// written from the fixture records in the layout that version reads
/// (`index.json`, `<module>.json`, `ID/<id>.json`). Returns, per
/// advisory, the symbols it reports. `None` where govulncheck is missing
/// outside CI.
/// `Err` carries govulncheck's own message when it gives no answer (the
/// Debian version cannot read a stripped binary).
fn govulncheck(binary: &Path, dir: &Path) -> Option<Result<BTreeMap<String, Vec<String>>, String>> {
    let tool = vexxy_testkit_host::require_program("govulncheck", "apt-get install govulncheck")?;
    let db = dir.join("vulndb");
    let _ = std::fs::remove_dir_all(&db);
    std::fs::create_dir_all(db.join("ID")).expect("test file io");
    let mut by_module: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for entry in std::fs::read_dir(advisories()).expect("test file io") {
        let path = entry.expect("test file io").path();
        let record = read(&path);
        std::fs::copy(
            &path,
            db.join("ID").join(path.file_name().expect("file name")),
        )
        .expect("test file io");
        for a in record["affected"].as_array().expect("json array") {
            let module = a["package"]["name"]
                .as_str()
                .expect("json string")
                .to_owned();
            by_module.entry(module).or_default().push(record.clone());
        }
    }
    let mut index = serde_json::Map::new();
    for (module, records) in &by_module {
        let file = db.join(format!("{module}.json"));
        std::fs::create_dir_all(file.parent().expect("parent dir")).expect("test file io");
        std::fs::write(&file, serde_json::to_vec(records).expect("test file io"))
            .expect("test file io");
        index.insert(module.clone(), json!("2023-10-11T00:00:00Z"));
    }
    std::fs::write(db.join("index.json"), Value::Object(index).to_string()).expect("test file io");
    let out = StdCommand::new(tool)
        .arg("-json")
        .arg(binary)
        .env("GOVULNDB", format!("file://{}", db.display()))
        .env("GOFLAGS", "-mod=vendor")
        .env("GOPROXY", "off")
        .output()
        .expect("run govulncheck");
    let Ok(doc) = serde_json::from_slice::<Value>(&out.stdout) else {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        return Some(Err(text.trim().to_owned()));
    };
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in doc["Vulns"].as_array().into_iter().flatten() {
        let id = v["OSV"]["id"].as_str().unwrap_or("").to_owned();
        let mut symbols: Vec<String> = v["Modules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["Packages"].as_array().into_iter().flatten())
            .flat_map(|p| {
                let path = p["Path"].as_str().unwrap_or("").to_owned();
                p["CallStacks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(move |c| Some(format!("{path}.{}", c["Symbol"].as_str()?)))
            })
            .collect();
        symbols.sort();
        symbols.dedup();
        found.entry(id).or_default().extend(symbols);
    }
    Some(Ok(found))
}

#[test]
fn go_vulnerable_functions_are_decided_by_what_ran() {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    let Some(img) = vexxy_testkit_host::test_image_ref("go-vulnerable") else {
        return;
    };
    let Some(rootfs) = vexxy_testkit_host::image_rootfs("go-vulnerable") else {
        return;
    };
    let _g = serial();
    let work = tempfile::tempdir().expect("tempdir");
    // the module's version as the image's build info records it
    let sbom = vexxy()
        .args(["sbom", &img, "-q", "--format", "json"])
        .output()
        .expect("sbom");
    assert!(
        sbom.status.success(),
        "{}",
        String::from_utf8_lossy(&sbom.stderr)
    );
    let inv: Value = serde_json::from_slice(&sbom.stdout).expect("inventory json");
    let version = inv["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "golang.org/x/net")
        .and_then(|p| p["version"].as_str())
        .expect("golang.org/x/net in the image's inventory")
        .to_owned();
    assert_eq!(version.trim_start_matches('v'), "0.7.0");
    let report = osv_scanner_report(work.path(), &version);
    let out = work.path().join("out");
    let res = vexxy()
        .args([
            "analyze",
            &img,
            "-q",
            "--duration",
            "8s",
            "--fresh",
            "--scan",
        ])
        .arg(&report)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run vexxy analyze");
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let profile = read(&out.join("profile.json"));
    let counted = calls(&profile);
    let doc = read(&out.join("vex.openvex.json"));
    let evidence = read(&out.join("evidence.json"));
    let statement = |id: &str| -> (String, String) {
        let s = doc["statements"]
            .as_array()
            .expect("statements")
            .iter()
            .find(|s| s["vulnerability"]["name"] == id || s.to_string().contains(id))
            .unwrap_or_else(|| panic!("no statement for {id}"));
        let verdict = format!(
            "{}/{}",
            s["status"].as_str().unwrap_or(""),
            s["justification"].as_str().unwrap_or("")
        );
        let ev = evidence["statements"]
            .as_array()
            .expect("evidence statements")
            .iter()
            .find(|e| e.to_string().contains(id))
            .map(Value::to_string)
            .unwrap_or_default();
        (verdict, ev)
    };
    let (render_verdict, render_evidence) = statement("GO-2023-1988");
    let (h2_verdict, h2_evidence) = statement("GO-2023-2102");

    let govuln = govulncheck(&rootfs.join("app/server"), work.path());
    println!(
        "== golang.org/x/net v0.7.0 in go-vulnerable: govulncheck (static) vs vexxy (runtime)"
    );
    for id in ["GO-2023-1988", "GO-2023-2102"] {
        let g = match &govuln {
            None => "not run".to_owned(),
            Some(Err(e)) => format!("no answer: {e}"),
            Some(Ok(g)) => match g.get(id) {
                Some(symbols) => format!("affected, symbols in binary: {symbols:?}"),
                None => "not reported".to_owned(),
            },
        };
        let v = if id == "GO-2023-1988" {
            &render_verdict
        } else {
            &h2_verdict
        };
        println!("{id}: govulncheck: {g}\n{id}: vexxy:       {v}");
    }
    println!(
        "vexxy counts: {RENDER} {:?}, {SERVE_CONN} {:?}",
        counted.get(RENDER),
        counted.get(SERVE_CONN)
    );
    println!("evidence GO-2023-1988: {render_evidence}\nevidence GO-2023-2102: {h2_evidence}");

    // runtime: html.Render ran, http2's server never did
    assert!(counted.get(RENDER).copied().unwrap_or(0) > 0, "{counted:?}");
    assert_eq!(counted.get(SERVE_CONN).copied(), Some(0), "{counted:?}");
    assert_eq!(render_verdict, "affected/");
    assert_eq!(
        h2_verdict,
        "not_affected/vulnerable_code_not_in_execute_path"
    );
    // the evidence names the functions
    assert!(render_evidence.contains("html.Render"), "{render_evidence}");
    assert!(h2_evidence.contains("ServeConn"), "{h2_evidence}");
    // govulncheck's static answer: both advisories' symbols are in the
    // binary
    if let Some(g) = govuln {
        let g = g.expect("govulncheck reads the binary with its symbol table");
        assert!(g.contains_key("GO-2023-1988"), "{g:?}");
        assert!(g.contains_key("GO-2023-2102"), "{g:?}");
    }
}

#[test]
fn advisories_flag_gives_the_symbols_of_a_report_without_them() {
    let Some(rootfs) = vexxy_testkit_host::image_rootfs("go-vulnerable") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    // a report whose records carry no ecosystem_specific (Grype/Trivy-like
    // knowledge): the symbols come from --advisories
    let report_path = osv_scanner_report(work.path(), "v0.7.0");
    let mut report = read(&report_path);
    for v in report["results"][0]["packages"][0]["vulnerabilities"]
        .as_array_mut()
        .expect("test file io")
    {
        for a in v["affected"].as_array_mut().expect("json array") {
            a.as_object_mut()
                .expect("json object")
                .remove("ecosystem_specific");
        }
    }
    std::fs::write(&report_path, report.to_string()).expect("test file io");
    let bad = vexxy()
        .args(["vex", "-q", "--scan"])
        .arg(&report_path)
        .arg("--rootfs")
        .arg(&rootfs)
        .arg("--advisories")
        .arg(work.path().join("missing"))
        .output()
        .expect("run vexxy vex");
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--advisories"));
    let Some(img) = vexxy_testkit_host::test_image_ref("go-vulnerable") else {
        return;
    };
    let out = work.path().join("vex.json");
    let res = vexxy()
        .args(["vex", "-q", "--scan"])
        .arg(&report_path)
        .args(["--image", &img])
        .arg("--advisories")
        .arg(advisories())
        .arg("--output")
        .arg(&out)
        .output()
        .expect("run vexxy vex");
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let doc = read(&out);
    let ids: Vec<&str> = doc["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .filter_map(|s| s["vulnerability"]["name"].as_str())
        .collect();
    println!("vexxy vex --advisories: {}", doc["statements"]);
    assert!(
        ids.contains(&"GO-2023-1988") && ids.contains(&"GO-2023-2102"),
        "{ids:?}"
    );
}
