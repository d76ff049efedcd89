//! Acceptance tests of runtime evidence per package of the interpreted
//! ecosystems (issue 17 item 3): the real `vexxy analyze` on the
//! `node-service` and `java-service` test images
//! (`scripts/build-test-images.sh`), judged against a truth derived
//! without vexxy's tracer.
//!
//! The report: one synthetic finding per package of the image's own
//! catalog (`vexxy sbom`), in Grype's shape, with the catalog's purls and
//! Grype's package types. The vulnerability ids are synthetic
//! (`VEXXY-SYNTH-…`): no third-party scanner report of these test images
//! exists offline, and the question asked is about packages, not
//! advisories: which packages' code the workload used.
//!
//! The truth: the image's entrypoint run under `strace -f` outside the
//! sandbox, chrooted into an overlay of the image's root filesystem in a
//! private network namespace (`vexxy_testkit_host::strace_outside_sandbox`), exercised by
//! HTTP requests sent from a host thread that joined that namespace. A package is used when a file it owns (as `vexxy sbom` lists
//! it, symlinks resolved within the image) was opened or executed.
//!
//! Asserted: no package with a used file is `not_affected`; the npm
//! dependency the service never requires (lodash), the jar it never loads
//! (commons-io, on no class path) and a jar nested in an archive nothing
//! opens (bundled-lib) are `not_affected`; the packages the service runs
//! (express, commons-lang3) are `affected`; a jar nested in the opened
//! service jar (nested-lib) is never `not_affected`. The exercisers' reach
//! is printed.
//!
//! Needs root, runc, eBPF, strace, unshare, ip and the test images: where
//! one is missing a test prints `SKIP` outside CI and fails in CI.

mod cli;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use cli::{read, serial, vexxy};
use serde_json::{json, Value};

/// One package of the image's catalog.
#[derive(Debug, Clone)]
struct Pkg {
    name: String,
    version: String,
    ecosystem: String,
    purl: String,
    files: Vec<String>,
}

/// The image's packages as `vexxy sbom --format json` lists them.
fn catalog(image: &str) -> Vec<Pkg> {
    let out = vexxy()
        .args(["sbom", image, "-q", "--format", "json"])
        .output()
        .expect("vexxy sbom");
    assert!(
        out.status.success(),
        "vexxy sbom: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv: Value = serde_json::from_slice(&out.stdout).expect("inventory json");
    inv["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| Pkg {
            name: p["name"].as_str().unwrap_or_default().to_owned(),
            version: p["version"].as_str().unwrap_or_default().to_owned(),
            ecosystem: p["ecosystem"].as_str().unwrap_or_default().to_owned(),
            purl: p["purl"].as_str().unwrap_or_default().to_owned(),
            files: p["files"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect(),
        })
        .collect()
}

/// Grype's package type for a catalog ecosystem.
fn grype_type(ecosystem: &str) -> &'static str {
    match ecosystem {
        "npm" => "npm",
        "maven" => "java-archive",
        "deb" => "deb",
        "python" => "python",
        _ => "unknown",
    }
}

/// A Grype-shaped report with one synthetic finding per package; returns
/// the report's path and the package each synthetic id stands for.
fn synthetic_report(dir: &Path, packages: &[Pkg]) -> (PathBuf, BTreeMap<String, Pkg>) {
    let mut ids = BTreeMap::new();
    let mut matches = Vec::new();
    for (i, p) in packages.iter().enumerate() {
        if p.purl.is_empty() {
            continue;
        }
        let id = format!("VEXXY-SYNTH-{i:04}");
        matches.push(json!({
            "vulnerability": {"id": id, "namespace": "vexxy:synthetic", "severity": "Medium",
                              "description": "synthetic finding: no real scanner report of this test image exists offline",
                              "fix": {"versions": [], "state": "unknown"}},
            "artifact": {"name": p.name, "version": p.version, "type": grype_type(&p.ecosystem),
                         "purl": p.purl}
        }));
        ids.insert(id, p.clone());
    }
    let report = json!({
        "matches": matches,
        "source": {"type": "image", "target": {"userInput": "vexxy-test:ecosystems"}},
        "distro": {"name": "debian", "version": "12"},
        "descriptor": {"name": "grype", "version": "0.92.2"}
    });
    let path = dir.join("synthetic-grype.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report).expect("json")).expect("write report");
    (path, ids)
}

/// An image path resolved within `root` with chroot semantics (absolute
/// links restart at the root, `..` stops at it); `None` when a component
/// is missing or the links loop.
fn canonical(root: &Path, path: &str) -> Option<String> {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_owned)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let host = root.join(done.join("/")).join(&c);
        let meta = std::fs::symlink_metadata(&host).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = std::fs::read_link(&host).ok()?;
            let target = target.to_str()?;
            if target.starts_with('/') {
                done.clear();
            }
            todo.extend(
                target
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .rev()
                    .map(str::to_owned),
            );
        } else {
            done.push(c);
        }
    }
    Some(format!("/{}", done.join("/")))
}

/// `GET path` over HTTP/1.1 with `Connection: close` from
/// 127.0.0.1:`port`: the status code, or the error. Reads the status line
/// only (a server may keep the connection open regardless).
fn http_status(port: u16, path: &str) -> Result<String, String> {
    use std::io::{Read as _, Write as _};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .unwrap_or("no status")
        .to_owned())
}

/// The truth: the entrypoint under strace outside the sandbox
/// (`vexxy_testkit_host::strace_outside_sandbox`), exercised from the host side of its
/// network namespace: wait for `port`, then GET each of `paths`. Returns
/// the truth and each request's status.
fn strace_truth(
    rootfs: &Path,
    argv: &[String],
    port: u16,
    paths: &[&str],
) -> (vexxy_testkit_host::Truth, Vec<(String, String)>) {
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut responses = Vec::new();
    let truth = vexxy_testkit_host::strace_outside_sandbox(
        rootfs,
        &argv,
        &[
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
        ],
        |ns| {
            responses = vexxy_testkit_host::in_netns(ns, || {
                let up =
                    vexxy_testkit::poll(Duration::from_secs(60), || http_status(port, "/").ok());
                let mut out = vec![("/ (first answer)".to_owned(), up.unwrap_or_default())];
                for p in paths {
                    out.push((
                        (*p).to_owned(),
                        http_status(port, p).unwrap_or_else(|e| format!("error: {e}")),
                    ));
                }
                // let lazily loaded code finish loading
                std::thread::sleep(Duration::from_secs(1));
                out
            });
            stop_workload(ns);
        },
    );
    (truth, responses)
}

/// Ends the traced workload: SIGKILL to every process of the network
/// namespace at `ns` but strace and unshare, so strace sees its tracees
/// exit and writes out its log. (`unshare --fork` ignores SIGTERM while
/// it waits for its child, so a TERM to it alone ends nothing.) Only
/// processes of the private namespace this test created are touched.
fn stop_workload(ns: &Path) {
    let Ok(target) = std::fs::read_link(ns) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let mine = std::process::id().to_string();
    let mut victims = Vec::new();
    for e in entries.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if pid == mine || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if std::fs::read_link(e.path().join("ns/net")).ok().as_ref() != Some(&target) {
            continue;
        }
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if !matches!(comm.trim(), "strace" | "unshare") {
            victims.push(pid);
        }
    }
    if !victims.is_empty() {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .args(&victims)
            .status();
    }
}

/// The programs the truth harness itself executes on the host side of the
/// chroot (`env -i … chroot <root> <argv>`): strace sees them before the
/// workload starts, under host paths that are not the image's.
const HARNESS_PROGRAMS: [&str; 2] = ["/usr/bin/env", "/usr/sbin/chroot"];

/// The npm package a path belongs to by npm's layout alone: the name after
/// the last `node_modules/` (`@scope/name` for scoped packages); `None`
/// outside `node_modules` and for `node_modules/.bin` and the like.
fn npm_package_of(path: &str) -> Option<String> {
    let (_, rest) = path.rsplit_once("/node_modules/")?;
    let mut parts = rest.split('/');
    let first = parts.next()?;
    if first.is_empty() || first.starts_with('.') {
        return None;
    }
    let name = if first.starts_with('@') {
        format!("{first}/{}", parts.next()?)
    } else {
        first.to_owned()
    };
    // the package directory itself is not a file of it
    parts.next()?;
    Some(name)
}

/// vulnerability id → "status/justification" from an OpenVEX document.
fn verdicts(doc: &Value) -> BTreeMap<String, String> {
    doc["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .map(|s| {
            (
                s["vulnerability"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                format!(
                    "{}/{}",
                    s["status"].as_str().unwrap_or(""),
                    s["justification"].as_str().unwrap_or("")
                ),
            )
        })
        .collect()
}

/// The image's entrypoint from the config fragment beside its rootfs.
fn entrypoint(rootfs: &Path) -> Vec<String> {
    let config = read(&rootfs.with_file_name("config.json"));
    config["Entrypoint"]
        .as_array()
        .expect("Entrypoint")
        .iter()
        .map(|a| a.as_str().expect("string").to_owned())
        .collect()
}

/// What a test expects of named packages of its focus ecosystem.
struct Expect<'a> {
    /// Used in the strace run and `affected`.
    used: &'a [&'a str],
    /// Never used in the strace run and `not_affected`.
    unused: &'a [&'a str],
    /// Nested in an archive the strace run opened: `under_investigation`
    /// (file events cannot show which nested archives were read).
    nested_in_opened: &'a [&'a str],
}

/// Analyses `image` with the synthetic report and checks every verdict
/// against the strace truth, and the named packages of the `focus`
/// ecosystem against `expect`.
fn check(image: &str, focus: &str, paths: &[&str], expect: &Expect<'_>) {
    if !vexxy_testkit_host::require_trace() {
        return;
    }
    for (program, hint) in [
        ("strace", "apt-get install strace"),
        ("unshare", "util-linux"),
        ("ip", "iproute2"),
    ] {
        if vexxy_testkit::require_program(program, hint).is_none() {
            return;
        }
    }
    let (Some(img), Some(rootfs)) = (
        vexxy_testkit_host::test_image_ref(image),
        vexxy_testkit::image_rootfs(image),
    ) else {
        return;
    };
    let _g = serial();
    let work = tempfile::tempdir().expect("tempdir");
    let packages = catalog(&img);
    let (report, ids) = synthetic_report(work.path(), &packages);
    let out = work.path().join("out");
    let res = vexxy()
        .args([
            "analyze",
            &img,
            "-q",
            "--duration",
            "15s",
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
        "vexxy analyze: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let verdict = verdicts(&read(&out.join("vex.openvex.json")));
    let profile = read(&out.join("profile.json"));
    println!(
        "{image}: exercisers' reach: {}",
        serde_json::to_string(&profile["exercise"]).unwrap_or_default()
    );

    let (truth, responses) = strace_truth(&rootfs, &entrypoint(&rootfs), 8080, paths);
    println!(
        "{image}: strace truth: {} file(s) opened, {} mapped executable, {} program(s) executed; host-side client: {responses:?}",
        truth.opened.len(),
        truth.mapped.len(),
        truth.executed.len(),
    );
    assert!(
        responses.iter().any(|(_, s)| s == "200"),
        "the service answered the host-side client: {responses:?}"
    );
    let argv = entrypoint(&rootfs);
    let harness: Vec<&str> = HARNESS_PROGRAMS
        .into_iter()
        .filter(|h| {
            truth.executed.contains(*h)
                && !argv
                    .iter()
                    .any(|a| a.ends_with(&h[h.rfind('/').unwrap_or(0)..]))
        })
        .collect();
    println!("{image}: executions of the truth harness itself left out: {harness:?}");
    let used_paths: BTreeSet<String> = truth
        .used()
        .into_iter()
        .filter(|p| !harness.contains(p))
        .flat_map(|p| [Some(p.to_owned()), canonical(&rootfs, p)])
        .flatten()
        .collect();
    let uses = |p: &Pkg| -> Vec<String> {
        p.files
            .iter()
            .filter(|f| {
                used_paths.contains(*f)
                    || canonical(&rootfs, f).is_some_and(|c| used_paths.contains(&c))
            })
            .cloned()
            .collect()
    };

    // Ownership checked independently of the catalog: every used file
    // under a `node_modules` package directory belongs to the npm package
    // that directory names, and every used archive to some Maven package.
    let mut unowned = Vec::new();
    for path in &used_paths {
        if rootfs.join(path.trim_start_matches('/')).is_dir() {
            continue;
        }
        if let Some(name) = npm_package_of(path) {
            let owned = packages
                .iter()
                .any(|p| p.ecosystem == "npm" && p.name == name && p.files.contains(path));
            if !owned {
                unowned.push(format!("{path}: no npm package {name} owns it"));
            }
        }
        if path.ends_with(".jar") && !path.contains("/lib/jvm/") {
            let owned = packages
                .iter()
                .any(|p| p.ecosystem == "maven" && p.files.contains(path));
            if !owned {
                unowned.push(format!("{path}: no maven package owns it"));
            }
        }
    }
    assert!(
        unowned.is_empty(),
        "{image}: used files the catalog does not attribute:\n{}",
        unowned.join("\n")
    );

    let mut tally: BTreeMap<(String, bool, String), usize> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut by_name: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for (id, p) in &ids {
        let v = verdict
            .get(id)
            .unwrap_or_else(|| panic!("{image}: no statement for {id} ({})", p.purl));
        let files_used = uses(p);
        let is_used = !files_used.is_empty();
        *tally
            .entry((p.ecosystem.clone(), is_used, v.clone()))
            .or_insert(0) += 1;
        if is_used && v.starts_with("not_affected") {
            violations.push(format!(
                "{} {} ({}): {v}, but the strace run used {:?}",
                p.ecosystem,
                p.name,
                p.purl,
                files_used.iter().take(3).collect::<Vec<_>>()
            ));
        }
        if p.ecosystem == focus {
            by_name.insert(p.name.clone(), (v.clone(), is_used));
        }
    }
    println!("{image}: (ecosystem, used in the strace run, verdict) → findings");
    for ((eco, is_used, v), n) in &tally {
        println!("  {eco:6} used={is_used:5} {v:55} {n}");
    }
    for (name, (v, is_used)) in &by_name {
        println!("  {focus} {name}: used={is_used} {v}");
    }
    assert!(
        violations.is_empty(),
        "{image}: not_affected for packages the workload used:\n{}",
        violations.join("\n")
    );
    for name in expect.nested_in_opened {
        let (v, is_used) = by_name
            .get(*name)
            .unwrap_or_else(|| panic!("{image}: no {focus} package {name} in the catalog"));
        assert!(
            *is_used,
            "{image}: the strace run opened the archive {name} is nested in"
        );
        assert!(
            v.starts_with("under_investigation"),
            "{image}: {name} is {v}"
        );
    }
    for name in expect.used {
        let (v, is_used) = by_name
            .get(*name)
            .unwrap_or_else(|| panic!("{image}: no {focus} package {name} in the catalog"));
        assert!(*is_used, "{image}: the strace run used {name}");
        assert!(v.starts_with("affected"), "{image}: {name} is {v}");
    }
    for name in expect.unused {
        let (v, is_used) = by_name
            .get(*name)
            .unwrap_or_else(|| panic!("{image}: no {focus} package {name} in the catalog"));
        assert!(!*is_used, "{image}: the strace run never used {name}");
        assert_eq!(
            v, "not_affected/vulnerable_code_not_in_execute_path",
            "{image}: {name}"
        );
    }
}

#[test]
fn node_service_npm_packages_follow_what_node_loaded() {
    check(
        "node-service",
        "npm",
        &["/", "/hello/vexxy", "/missing", "/hello/%2e%2e"],
        &Expect {
            used: &["express", "body-parser", "send"],
            unused: &["lodash"],
            nested_in_opened: &[],
        },
    );
}

#[test]
fn java_service_jars_follow_what_the_jvm_opened() {
    check(
        "java-service",
        "maven",
        &["/", "/abc", "/deeper/path?x=1"],
        &Expect {
            used: &["commons-lang3"],
            unused: &["commons-io", "bundled-lib"],
            nested_in_opened: &["nested-lib"],
        },
    );
}
