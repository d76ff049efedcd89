//! The review commands (`vexxy review`, `report`, `compare`, `images`)
//! end to end: the real binary against a real `vexxy serve` (API only, no
//! workers, SQLite). The database is seeded the way a finished analysis
//! leaves it, through the libraries the service itself uses: statement
//! records of `vexxy-review` from model findings and verdicts, recorded
//! with `Store::record_analysis`, and each image's first VEX issued with
//! `vexxy_review::issue` into the evidence store. No sandbox is needed.
//!
//! What the service decides (the queue, the rules of a decision, the
//! re-issued documents) is tested in `vexxy-server` and `vexxy-review`;
//! these tests check that the commands send the right requests, print
//! what came back, and exit with the documented codes.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command as StdCommand, Output, Stdio},
};

use assert_cmd::cargo::CommandCargoExt as _;
use serde_json::Value;
use vexxy_model::{
    Confidence, Decider, Ecosystem, Evidence, EvidenceSource, Finding, FixState, Justification,
    PackageRef, Product, Purl, Severity, Verdict, Vulnerability,
};
use vexxy_review::{Issue, ReviewSettings, StatementRecord};
use vexxy_store::{
    review::{AnalysisRecord, NewVexVersion},
    EvidenceStore, LocalStore, Store,
};

const REPO: &str = "registry.example/team/app";
const OWNER: &str = "alice@example.com";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn vexxy() -> StdCommand {
    let mut c = StdCommand::cargo_bin("vexxy").unwrap();
    for var in [
        "VEXXY_SERVER",
        "VEXXY_API_KEY",
        "VEXXY_CONFIG",
        "DATABASE_URL",
        "VEXXY_DATA_DIR",
        "VEXXY_EVIDENCE",
        "http_proxy",
        "HTTP_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        c.env_remove(var);
    }
    c
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One finding of the seeded analyses and the automated verdict on it.
struct Seed {
    vulnerability: &'static str,
    package: &'static str,
    version: &'static str,
    severity: Severity,
    fix: FixState,
    verdict: fn() -> Verdict,
    confidence: f64,
}

fn not_affected_runtime() -> Verdict {
    Verdict::not_affected(
        Justification::VulnerableCodeNotInExecutePath,
        Decider::automated("runtime"),
    )
    .with_evidence(
        Evidence::new(
            "runtime",
            EvidenceSource::Runtime,
            "no file of the package was opened or mapped",
        )
        .about("libssl3")
        .fact("window", "30s"),
    )
    .with_notes("the traced run never loaded the package")
}

fn not_affected_guess() -> Verdict {
    Verdict::not_affected(
        Justification::VulnerableCodeNotPresent,
        Decider::automated("elf"),
    )
    .with_evidence(Evidence::new(
        "elf",
        EvidenceSource::ElfGraph,
        "no binary links the library",
    ))
}

fn affected() -> Verdict {
    Verdict::affected(
        "upgrade when a fix is released".to_owned(),
        Decider::automated("runtime"),
    )
    .with_evidence(Evidence::new(
        "runtime",
        EvidenceSource::Runtime,
        "the vulnerable function was called",
    ))
}

fn under_investigation() -> Verdict {
    Verdict::under_investigation(Decider::automated("static"))
}

/// Image A: one settled verdict and three that need a person.
const IMAGE_A: [Seed; 4] = [
    Seed {
        vulnerability: "CVE-2024-0001",
        package: "libssl3",
        version: "3.0.11-1~deb12u2",
        severity: Severity::High,
        fix: FixState::Fixed,
        verdict: not_affected_runtime,
        confidence: 0.9,
    },
    Seed {
        vulnerability: "CVE-2024-0002",
        package: "zlib1g",
        version: "1:1.2.13.dfsg-1",
        severity: Severity::Medium,
        fix: FixState::NotFixed,
        verdict: not_affected_guess,
        confidence: 0.4,
    },
    Seed {
        vulnerability: "CVE-2024-0003",
        package: "curl",
        version: "7.88.1-10+deb12u5",
        severity: Severity::Critical,
        fix: FixState::Unknown,
        verdict: under_investigation,
        confidence: 0.0,
    },
    Seed {
        vulnerability: "CVE-2024-0004",
        package: "bash",
        version: "5.2.15-2+b2",
        severity: Severity::Low,
        fix: FixState::NotFixed,
        verdict: affected,
        confidence: 0.8,
    },
];

/// Image B, the rebuild: CVE-2024-0001 got worse, CVE-2024-0003 and
/// CVE-2024-0004 are gone, CVE-2024-0005 is new.
const IMAGE_B: [Seed; 3] = [
    Seed {
        vulnerability: "CVE-2024-0001",
        package: "libssl3",
        version: "3.0.11-1~deb12u2",
        severity: Severity::High,
        fix: FixState::Fixed,
        verdict: affected,
        confidence: 0.8,
    },
    Seed {
        vulnerability: "CVE-2024-0002",
        package: "zlib1g",
        version: "1:1.2.13.dfsg-1",
        severity: Severity::Medium,
        fix: FixState::NotFixed,
        verdict: not_affected_guess,
        confidence: 0.4,
    },
    Seed {
        vulnerability: "CVE-2024-0005",
        package: "libc6",
        version: "2.36-9+deb12u7",
        severity: Severity::Medium,
        fix: FixState::Unknown,
        verdict: under_investigation,
        confidence: 0.0,
    },
];

fn record(s: &Seed) -> StatementRecord {
    let purl: Purl = format!(
        "pkg:deb/debian/{}@{}?arch=amd64&distro=debian-12",
        s.package, s.version
    )
    .parse()
    .unwrap();
    let finding = Finding {
        vulnerability: Vulnerability {
            id: s.vulnerability.to_owned(),
            aliases: vec![format!("DSA-{}", &s.vulnerability[9..])],
            severity: s.severity,
            description: Some(format!("a flaw in {}", s.package)),
            ..Vulnerability::default()
        },
        package: PackageRef {
            name: s.package.to_owned(),
            version: s.version.to_owned(),
            ecosystem: Ecosystem::Deb,
            purl: Some(purl),
            source_name: None,
        },
        fixed_versions: if s.fix == FixState::Fixed {
            vec!["3.0.13-1~deb12u1".to_owned()]
        } else {
            Vec::new()
        },
        fix_state: s.fix.clone(),
        reported_by: Some("grype 0.92.2".to_owned()),
    };
    let verdict = (s.verdict)().with_confidence(Confidence::new(s.confidence).unwrap());
    StatementRecord::of(&finding, verdict)
}

use vexxy_server::review::new_statement;

/// Records an analysis of `image` and issues its first VEX, as a worker
/// completing the job would.
async fn seed_image(
    store: &Store,
    evidence: &EvidenceStore,
    org: &str,
    image: &str,
    job: &str,
    seeds: &[Seed],
) {
    let rules = ReviewSettings::default();
    let records: Vec<StatementRecord> = seeds.iter().map(record).collect();
    store
        .record_analysis(&AnalysisRecord {
            org_id: org.to_owned(),
            image_digest: image.to_owned(),
            repository: REPO.to_owned(),
            reference: format!("{REPO}@{image}"),
            job_id: job.to_owned(),
            full_run: true,
            statements: records.iter().map(|r| new_statement(r, &rules)).collect(),
        })
        .await
        .unwrap();
    let product = Product {
        name: REPO.to_owned(),
        tag: None,
        digest: Some(image.parse().unwrap()),
    };
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let document = vexxy_review::issue(&Issue {
        product: &product,
        records: &records,
        humans: &[],
        version: 1,
        first_issued: now,
        last_updated: None,
        author: "vexxy",
    })
    .unwrap();
    let len = document.len() as i64;
    let document_digest = evidence.put(document).await.unwrap();
    store.touch_blob(&document_digest, len).await.unwrap();
    store
        .add_vex_version(
            org,
            image,
            &NewVexVersion {
                document_digest,
                envelope_digest: None,
                cause: "analysis".to_owned(),
                job_id: Some(job.to_owned()),
                author: "vexxy".to_owned(),
            },
        )
        .await
        .unwrap();
}

/// A service with the two analyses of [`IMAGE_A`] and [`IMAGE_B`]; its
/// URL and an API key of the organisation (owned by [`OWNER`]).
struct Service {
    _data: tempfile::TempDir,
    _proc: Proc,
    url: String,
    key: String,
}

fn admin(data: &Path, args: &[&str]) -> Value {
    let out = vexxy()
        .args(["admin", "--json", "--data-dir"])
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn service() -> Service {
    let data = tempfile::tempdir().unwrap();
    let org = admin(data.path(), &["create-org", "acme", "--tier", "enterprise"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = admin(data.path(), &["create-key", "acme", "--owner", OWNER]);
    assert_eq!(created["owner"], OWNER);
    let key = created["key"].as_str().unwrap().to_owned();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open_sqlite_in(data.path()).await.unwrap();
        let evidence = EvidenceStore::Local(LocalStore::new(data.path().join("evidence")));
        seed_image(&store, &evidence, &org, &digest('a'), "job-a", &IMAGE_A).await;
        seed_image(&store, &evidence, &org, &digest('b'), "job-b", &IMAGE_B).await;
    });
    let mut child = vexxy()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "0",
            "--data-dir",
        ])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("serve said {line:?}"))
        .to_owned();
    Service {
        _data: data,
        _proc: proc,
        url,
        key,
    }
}

impl Service {
    /// `vexxy ARGS… --server URL` with the key in VEXXY_API_KEY.
    fn run(&self, args: &[&str]) -> Output {
        vexxy()
            .args(args)
            .args(["--server", &self.url])
            .env("VEXXY_API_KEY", &self.key)
            .output()
            .unwrap()
    }

    /// The same, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    /// The id of the statement about `vulnerability` in `image`.
    fn statement(&self, image: char, vulnerability: &str) -> String {
        let list = self.json(&[
            "review",
            "list",
            "--json",
            "--image",
            &digest(image),
            "--vulnerability",
            vulnerability,
        ]);
        assert_eq!(list["total"], 1, "{list}");
        list["statements"][0]["id"].as_str().unwrap().to_owned()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn review_list_show_and_the_queue() {
    let svc = service();
    let a = digest('a');

    let all = svc.json(&["review", "list", "--json", "--image", &a]);
    assert_eq!(all["total"], 4, "{all}");

    // the table: one line per statement under a header
    let table = svc.ok(&["review", "list", "--image", &a, "--sort", "vulnerability"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    for column in [
        "ID",
        "IMAGE",
        "VULNERABILITY",
        "PACKAGE",
        "SEVERITY",
        "STATUS",
        "CONFIDENCE",
        "REASON",
    ] {
        assert!(lines[0].contains(column), "{table}");
    }
    assert!(lines[1].contains("CVE-2024-0001"), "{table}");
    assert!(lines[1].contains("libssl3 3.0.11-1~deb12u2"), "{table}");
    assert!(lines[1].contains("sha256:aaaaaaaaaaaa "), "{table}");
    assert!(lines[1].contains("not_affected"), "{table}");
    assert!(lines[1].contains("0.90"), "{table}");
    assert!(lines[2].contains("low_confidence"), "{table}");

    // the queue: what needs a person, riskiest (critical) first
    let queue = svc.json(&["review", "list", "--queue", "--json", "--image", &a]);
    let ids: Vec<&str> = queue["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["vulnerability_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{queue}");
    assert_eq!(ids[0], "CVE-2024-0003", "{queue}");
    assert!(!ids.contains(&"CVE-2024-0001"), "{queue}");

    // filters reach the service
    let few = svc.json(&[
        "review",
        "list",
        "--json",
        "--status",
        "not_affected",
        "--max-confidence",
        "0.5",
    ]);
    assert_eq!(few["total"], 2, "{few}"); // zlib1g in both images
    let paged = svc.json(&["review", "list", "--json", "--limit", "2", "--offset", "1"]);
    assert_eq!(paged["statements"].as_array().unwrap().len(), 2);
    assert_eq!(paged["total"], 7);

    // one statement with its evidence
    let id = svc.statement('a', "CVE-2024-0001");
    let text = svc.ok(&["review", "show", &id]);
    for part in [
        id.as_str(),
        "CVE-2024-0001 (also DSA-0001)",
        "libssl3 3.0.11-1~deb12u2",
        "not_affected (vulnerable_code_not_in_execute_path), confidence 0.90",
        "runtime/runtime: no file of the package was opened or mapped (libssl3)",
        "window: 30s",
        "fixed in 3.0.13-1~deb12u1",
        "not in the queue",
    ] {
        assert!(text.contains(part), "{part:?} in:\n{text}");
    }
    let detail = svc.json(&["review", "show", &id, "--json"]);
    assert_eq!(detail["id"], id.as_str());
    assert_eq!(detail["version"], 1);

    // an unknown statement is a bad request
    let out = svc.run(&["review", "show", "stmt-nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // a bad key is refused
    let out = vexxy()
        .args([
            "review",
            "list",
            "--server",
            &svc.url,
            "--api-key",
            "vx_wrong",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
}

#[test]
fn override_approve_revert_and_their_refusals() {
    let svc = service();
    let curl = svc.statement('a', "CVE-2024-0003");

    // OpenVEX forbids not_affected without a reason: the service names it
    let out = svc.run(&[
        "review",
        "override",
        &curl,
        "--status",
        "not_affected",
        "--reason",
        "curl is never run",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("422"), "{}", stderr(&out));

    let said = svc.ok(&[
        "review",
        "override",
        &curl,
        "--status",
        "not_affected",
        "--justification",
        "vulnerable_code_not_present",
        "--reason",
        "curl is never run",
        "--expected-version",
        "1",
    ]);
    assert!(said.contains(&format!("{curl}: overridden")), "{said}");
    assert!(
        said.contains("now not_affected (vulnerable_code_not_present)"),
        "{said}"
    );
    assert!(
        said.contains(&format!("VEX of {} issued as version 2", digest('a'))),
        "{said}"
    );

    let d = svc.json(&["review", "show", &curl, "--json"]);
    assert_eq!(d["status"], "not_affected", "{d}");
    assert_eq!(d["in_queue"], false, "{d}");
    assert_eq!(d["decisions"][0]["author"], OWNER, "{d}");
    assert_eq!(d["decisions"][0]["reason"], "curl is never run", "{d}");
    let version = d["version"].as_i64().unwrap();
    let text = svc.ok(&["review", "show", &curl]);
    assert!(text.contains("decisions:"), "{text}");
    assert!(
        text.contains(&format!(
            "override -> not_affected (vulnerable_code_not_present) by {OWNER}"
        )),
        "{text}"
    );

    // the image's current VEX says so
    let vex = svc.json(&["images", "vex", &format!("{REPO}@{}", digest('a'))]);
    assert_eq!(vex["version"], 2, "{vex}");
    let st = vex["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["vulnerability"]["name"] == "CVE-2024-0003")
        .unwrap();
    assert_eq!(st["status"], "not_affected", "{st}");

    // a stale version is a conflict: exit 2, nothing recorded
    let zlib = svc.statement('a', "CVE-2024-0002");
    let out = svc.run(&[
        "review",
        "approve",
        &zlib,
        "--reason",
        "checked",
        "--expected-version",
        "7",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("409"), "{}", stderr(&out));
    let approved = svc.json(&[
        "review",
        "approve",
        &zlib,
        "--reason",
        "checked the linker map",
        "--expires-in-days",
        "90",
        "--json",
    ]);
    assert_eq!(approved["decision"]["action"], "approve", "{approved}");
    assert!(approved["decision"]["expires_at"].is_string(), "{approved}");
    assert_eq!(approved["statement"]["status"], "not_affected");

    // revert: back to the automated verdict
    let said = svc.ok(&["review", "revert", &curl, "--reason", "wrong call"]);
    assert!(said.contains("reverted"), "{said}");
    let d = svc.json(&["review", "show", &curl, "--json"]);
    assert_eq!(d["status"], "under_investigation", "{d}");
    assert!(d["version"].as_i64().unwrap() > version);

    // assignment
    let said = svc.ok(&["review", "assign", &curl, "--to", "bob"]);
    assert!(said.contains("assigned to bob"), "{said}");
    let mine = svc.json(&["review", "list", "--json", "--assignee", "bob"]);
    assert_eq!(mine["total"], 1, "{mine}");
    let said = svc.ok(&["review", "assign", &curl, "--clear"]);
    assert!(said.contains("unassigned"), "{said}");

    // bulk without --yes only counts
    let out = svc.run(&[
        "review",
        "bulk",
        "approve",
        "--image",
        &digest('b'),
        "--reason",
        "all fine",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3 statements match\n");
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    let bulk = svc.json(&[
        "review",
        "bulk",
        "approve",
        "--image",
        &digest('b'),
        "--review-reason",
        "low_confidence",
        "--reason",
        "same linker map as before",
        "--yes",
        "--json",
    ]);
    assert_eq!(bulk["decided"], 1, "{bulk}");

    // settings
    let s = svc.json(&["review", "settings", "--json"]);
    assert_eq!(s["four_eyes"], false, "{s}");
    let s = svc.json(&[
        "review",
        "settings",
        "--four-eyes",
        "true",
        "--review-below",
        "0.7",
        "--json",
    ]);
    assert_eq!(s["four_eyes"], true, "{s}");
    assert_eq!(s["review_below"], 0.7, "{s}");
}

#[test]
fn compliance_csv_and_the_dashboard() {
    let svc = service();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("compliance.csv");
    svc.ok(&[
        "report",
        "compliance",
        "--format",
        "csv",
        "-o",
        csv.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("repository,image_digest,images,total,not_affected,needs_fix,under_investigation,unreviewed")
    );
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(row[0], REPO, "{text}");
    assert_eq!(row[2], "2", "{text}"); // two digests of the repository
    assert_eq!(lines.next(), None, "{text}");

    let table = svc.ok(&["report", "compliance"]);
    assert!(table.starts_with("REPOSITORY"), "{table}");
    assert!(table.contains(REPO), "{table}");
    let json = svc.json(&["report", "compliance", "--format", "json"]);
    assert_eq!(json["repositories"][0]["repository"], REPO);

    let dash = svc.json(&["report", "dashboard", "--json"]);
    assert_eq!(dash["findings"], 7, "{dash}");
    assert_eq!(dash["images_with_vex"], 2, "{dash}");
    let text = svc.ok(&["report", "dashboard"]);
    assert!(text.contains("2 with VEX"), "{text}");

    let images = svc.ok(&["images", "list"]);
    assert!(images.contains("sha256:aaaaaaaaaaaa"), "{images}");
    assert!(images.contains("sha256:bbbbbbbbbbbb"), "{images}");
    let shown = svc.json(&["images", "show", &digest('a'), "--json"]);
    assert_eq!(shown["findings"], 4, "{shown}");
    let history = svc.json(&["images", "vex", &digest('a'), "--history", "--json"]);
    assert_eq!(history["versions"][0]["cause"], "analysis", "{history}");
}

#[test]
fn compare_renders_like_vexxy_diff() {
    let svc = service();
    let (a, b) = (digest('a'), digest('b'));
    let b_ref = format!("{REPO}@{b}");

    let text = svc.ok(&["compare", &a, &b_ref]);
    assert!(
        text.starts_with("vex diff: 1 added, 2 removed, 1 changed (1 regression)"),
        "{text}"
    );
    assert!(
        text.contains("+ CVE-2024-0005 pkg:deb/debian/libc6"),
        "{text}"
    );
    assert!(
        text.contains("- CVE-2024-0004 pkg:deb/debian/bash"),
        "{text}"
    );
    assert!(
        text.contains("~ CVE-2024-0001 pkg:deb/debian/libssl3: status not_affected -> affected"),
        "{text}"
    );
    assert!(text.contains("[regression]"), "{text}");

    let md = svc.ok(&["compare", &a, &b, "--format", "markdown"]);
    assert!(md.starts_with("# VEX diff\n"), "{md}");
    assert!(md.contains("**(regression)**"), "{md}");

    // the JSON is `vexxy diff --format json` of the two current documents
    let json = svc.json(&["compare", &a, &b, "--format", "json"]);
    assert_eq!(json["changed"][0]["regression"], true, "{json}");
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("a.json"), dir.path().join("b.json"));
    svc.ok(&["images", "vex", &a, "-o", old.to_str().unwrap()]);
    svc.ok(&["images", "vex", &b, "-o", new.to_str().unwrap()]);
    let diff = vexxy()
        .args(["diff", "--format", "text"])
        .args([&old, &new])
        .output()
        .unwrap();
    let local = String::from_utf8(diff.stdout).unwrap();
    assert_eq!(local, text);

    let out = svc.run(&["compare", &a, &b, "--fail-on-regression"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = svc.run(&["compare", &b, &a, "--fail-on-regression"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // not a digest: refused before anything is sent
    let out = svc.run(&["compare", &a, "registry.example/team/app:latest"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // an image the service does not know
    let out = svc.run(&["compare", &a, &digest('c')]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
