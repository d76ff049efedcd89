//! Server time of the web UI's dashboard and image detail pages for an
//! organisation with 500 images and 50 000 statements, against the REST
//! API's JSON for the same content, in one run (issue 16: "pages render in
//! under 200 ms server time").
//!
//! Seeds a SQLite store in a temporary directory with one organisation:
//! 500 images (different digests, 10 of each of 50 repositories), each
//! analysed by a job that is submitted, claimed and completed through the
//! store (one transaction per step, as a worker does) with 100 statements
//! (from a catalogue of vulnerabilities shared between repositories;
//! every status, severity, fix state, EPSS and KEV; records with evidence,
//! notes and a description of a few hundred bytes), its artifacts (the
//! OpenVEX document, the execution profile, the runtime SBOM, a report)
//! and VEX version 1 issued from the records. Every seventh image is then
//! reviewed: its low-confidence statements approved in one store
//! transaction, then one override through the API (two on every
//! twenty-first image), each re-issuing the image's VEX as the service
//! does, so those images have VEX versions 2 (and 3) and later digests of
//! their repository are offered their decisions.
//!
//! Then, in process (`tower::ServiceExt::oneshot` on
//! `vexxy_server::router(svc).merge(vexxy_web::router(svc))`, the whole
//! body collected so the time covers rendering and serialising), each
//! 30 times after 3 warm-up rounds, interleaved:
//!
//! - the dashboard: `GET /api/v1/dashboard` (Bearer key) against `GET /`
//!   (session cookie);
//! - the detail of an image reviewed twice through the API: the three
//!   calls the API needs for the same content, `GET /api/v1/images/{d}`,
//!   `GET /api/v1/statements?image={d}&limit=1000` and
//!   `GET /api/v1/images/{d}/vex/history` (summed per round), against
//!   `GET /images/{d}`.
//!
//! Each page must answer 200 with the numbers the API gives (checked on
//! the first answer with `scraper`: the dashboard's metrics and status
//! counts, the image's statements with their evidence, VEX version and
//! history, profile and SBOM sections; then by status and statement count
//! every round), so no error page or sign-in redirect is timed. Prints
//! p50 and p95 of each, the page/API ratios and whether both pages stay
//! under 200 ms (p95).
//!
//! Run: `cargo bench -p vexxy-web --bench render`. `VEXXY_BENCH_RUNS` sets
//! the timed rounds (default 30; fewer, but at least 10, when they take
//! more than 3 minutes).

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    Router,
};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tower::ServiceExt as _;
use vexxy_analyze::{AnalysisOutcome, AnalysisRequest, AnalyzeError};
use vexxy_model::{
    Confidence, Decider, Ecosystem, Evidence, EvidenceSource, ExecutedBinary, ExecutionProfile,
    ExerciseStats, FileAccess, Finding, FixState, Justification, LoadedLibrary, NetworkUse,
    PackageRef, Product, RunInfo, Severity, SocketAddress, SocketOp, Verdict, Vulnerability,
};
use vexxy_review::StatementRecord;
use vexxy_server::{Analyzer, JobControl, Service, ServiceConfig};
use vexxy_store::{
    jobs::{Completion, NewJob, Submitted},
    review::{AnalysisRecord, Effect, NewDecision, NewVexVersion, StatementFilter},
    tenants::month_window,
    Artifact, EvidenceStore, LocalStore, Store, Tier,
};

const REPOSITORIES: usize = 50;
const IMAGES: usize = 500;
const STATEMENTS_PER_IMAGE: usize = 100;
/// Vulnerability × package pairs the repositories draw from.
const CATALOGUE: usize = 2_000;
/// Findings a repository can have; each digest has a window of them.
const PER_REPOSITORY: usize = 150;
/// Every this many images is reviewed through the API.
const REVIEW_EVERY: usize = 7;
const WARMUP: usize = 3;
/// The timed rounds stop once they have taken this long (and there are
/// at least `MIN_RUNS`), so a slow service does not hold the test run.
const BUDGET: Duration = Duration::from_secs(180);
const MIN_RUNS: usize = 10;
const TARGET: Duration = Duration::from_millis(200);

// ------------------------------------------------------------ randomness

/// splitmix64: deterministic, so every run seeds the same data.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5eed, |h, p| mix(h ^ mix(*p)))
}

/// `0..1` from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        unit(self.next())
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ------------------------------------------------------------ the data

/// name, version, ecosystem word, the file its code is in.
const PACKAGES: [(&str, &str, &str, &str); 48] = [
    (
        "openssl",
        "3.0.15-1~deb12u1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    ),
    (
        "libssl3",
        "3.0.15-1~deb12u1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
    ),
    (
        "zlib1g",
        "1:1.2.13.dfsg-1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
    ),
    (
        "libxml2",
        "2.9.14+dfsg-1.3~deb12u1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libxml2.so.2",
    ),
    ("curl", "7.88.1-10+deb12u8", "deb", "/usr/bin/curl"),
    (
        "libcurl4",
        "7.88.1-10+deb12u8",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libcurl.so.4",
    ),
    ("bash", "5.2.15-2+b7", "deb", "/usr/bin/bash"),
    ("tar", "1.34+dfsg-1.2+deb12u1", "deb", "/usr/bin/tar"),
    (
        "libpng16-16",
        "1.6.39-2",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libpng16.so.16",
    ),
    (
        "libtiff6",
        "4.5.0-6+deb12u1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libtiff.so.6",
    ),
    (
        "libjpeg62-turbo",
        "1:2.1.5-2",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libjpeg.so.62",
    ),
    (
        "libexpat1",
        "2.5.0-1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libexpat.so.1",
    ),
    (
        "libsqlite3-0",
        "3.40.1-2+deb12u1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0",
    ),
    (
        "libc6",
        "2.36-9+deb12u9",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
    ),
    (
        "libgnutls30",
        "3.7.9-2+deb12u3",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libgnutls.so.30",
    ),
    (
        "libkrb5-3",
        "1.20.1-2+deb12u2",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libkrb5.so.3",
    ),
    (
        "libldap-2.5-0",
        "2.5.13+dfsg-5",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libldap-2.5.so.0",
    ),
    (
        "libssh2-1",
        "1.10.0-3+b1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libssh2.so.1",
    ),
    (
        "libnghttp2-14",
        "1.52.0-1+deb12u2",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libnghttp2.so.14",
    ),
    (
        "libpcre2-8-0",
        "10.42-1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0",
    ),
    (
        "libgcrypt20",
        "1.10.1-3",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libgcrypt.so.20",
    ),
    (
        "libsystemd0",
        "252.33-1~deb12u1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libsystemd.so.0",
    ),
    ("perl-base", "5.36.0-7+deb12u1", "deb", "/usr/bin/perl"),
    ("coreutils", "9.1-1", "deb", "/usr/bin/ls"),
    ("util-linux", "2.38.1-5+deb12u2", "deb", "/usr/bin/mount"),
    ("login", "1:4.13+dfsg1-1+b1", "deb", "/usr/bin/login"),
    (
        "libgssapi-krb5-2",
        "1.20.1-2+deb12u2",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libgssapi_krb5.so.2",
    ),
    (
        "libfreetype6",
        "2.12.1+dfsg-5+deb12u3",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libfreetype.so.6",
    ),
    (
        "libwebp7",
        "1.2.4-0.2+deb12u1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libwebp.so.7",
    ),
    ("nginx", "1.25.5-1~bookworm", "deb", "/usr/sbin/nginx"),
    (
        "libaom3",
        "3.6.0-1+deb12u1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libaom.so.3",
    ),
    (
        "libde265-0",
        "1.0.11-1+deb12u2",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libde265.so.0",
    ),
    (
        "python3.11",
        "3.11.2-6+deb12u5",
        "deb",
        "/usr/bin/python3.11",
    ),
    (
        "libpq5",
        "15.10-0+deb12u1",
        "deb",
        "/usr/lib/x86_64-linux-gnu/libpq.so.5",
    ),
    (
        "requests",
        "2.31.0",
        "pypi",
        "/usr/lib/python3/dist-packages/requests/__init__.py",
    ),
    (
        "urllib3",
        "1.26.18",
        "pypi",
        "/usr/lib/python3/dist-packages/urllib3/__init__.py",
    ),
    (
        "jinja2",
        "3.1.2",
        "pypi",
        "/usr/lib/python3/dist-packages/jinja2/__init__.py",
    ),
    (
        "cryptography",
        "41.0.7",
        "pypi",
        "/usr/lib/python3/dist-packages/cryptography/__init__.py",
    ),
    (
        "pillow",
        "10.0.1",
        "pypi",
        "/usr/lib/python3/dist-packages/PIL/__init__.py",
    ),
    (
        "setuptools",
        "65.5.1",
        "pypi",
        "/usr/lib/python3/dist-packages/setuptools/__init__.py",
    ),
    (
        "express",
        "4.18.2",
        "npm",
        "/app/node_modules/express/index.js",
    ),
    (
        "lodash",
        "4.17.20",
        "npm",
        "/app/node_modules/lodash/lodash.js",
    ),
    (
        "semver",
        "7.5.1",
        "npm",
        "/app/node_modules/semver/index.js",
    ),
    ("axios", "1.6.0", "npm", "/app/node_modules/axios/index.js"),
    ("ws", "8.13.0", "npm", "/app/node_modules/ws/index.js"),
    (
        "tough-cookie",
        "4.1.2",
        "npm",
        "/app/node_modules/tough-cookie/lib/cookie.js",
    ),
    (
        "path-to-regexp",
        "0.1.7",
        "npm",
        "/app/node_modules/path-to-regexp/index.js",
    ),
    (
        "body-parser",
        "1.20.1",
        "npm",
        "/app/node_modules/body-parser/index.js",
    ),
];

const TEAMS: [&str; 5] = ["payments", "shop", "platform", "data", "identity"];
const SERVICES: [&str; 10] = [
    "api", "web", "worker", "gateway", "auth", "search", "billing", "reports", "notify", "ingest",
];

const FLAWS: [&str; 10] = [
    "A heap-based buffer overflow",
    "An out-of-bounds read",
    "A use-after-free",
    "An integer overflow",
    "A NULL pointer dereference",
    "An uncontrolled recursion",
    "An improper certificate validation",
    "A request smuggling flaw",
    "A prototype pollution",
    "A regular expression denial of service",
];
const PLACES: [&str; 8] = [
    "in the parser of <version> attributes",
    "when decoding crafted chunked input",
    "in the handling of \"Content-Length\" & \"Transfer-Encoding\" headers",
    "when a path contains '..' segments",
    "in the compression context reset",
    "while processing nested entities",
    "in the session resumption code",
    "when resolving relative URLs",
];
const IMPACTS: [&str; 6] = [
    "A remote attacker could use this to cause a denial of service (crash) or possibly execute arbitrary code.",
    "This allows a remote, unauthenticated attacker to read memory beyond the buffer, disclosing sensitive information.",
    "Successful exploitation requires the application to process untrusted input with the affected API.",
    "An attacker able to supply a crafted file can make the process consume excessive CPU time.",
    "Applications that do not use the affected option are not vulnerable, according to the maintainers.",
    "The issue was reported by an external researcher and fixed upstream; distributions backported the patch.",
];

/// One vulnerability in one package: what a scanner reports about it.
struct Entry {
    finding: Finding,
    /// Where the package's code is.
    file: &'static str,
}

fn catalogue() -> Vec<Entry> {
    (0..CATALOGUE)
        .map(|i| {
            let mut r = Rng(hash(&[1, i as u64]));
            let (name, version, eco, file) = PACKAGES[i % PACKAGES.len()];
            let (ecosystem, purl) = match eco {
                "deb" => (
                    Ecosystem::Deb,
                    format!("pkg:deb/debian/{name}@{version}?arch=amd64&distro=debian-12"),
                ),
                "pypi" => (Ecosystem::Python, format!("pkg:pypi/{name}@{version}")),
                _ => (Ecosystem::Npm, format!("pkg:npm/{name}@{version}")),
            };
            let year = 2018 + r.below(8);
            let cve = format!("CVE-{year}-{:05}", 10_000 + i * 7 + r.below(7));
            let ghsa = {
                let h = format!("{:012x}", r.next());
                format!("GHSA-{}-{}-{}", &h[0..4], &h[4..8], &h[8..12])
            };
            let (id, aliases) = if eco == "deb" {
                (cve, Vec::new())
            } else if r.below(3) == 0 {
                (ghsa, vec![cve])
            } else {
                (cve, vec![ghsa])
            };
            let severity = match r.below(100) {
                0..=7 => Severity::Critical,
                8..=32 => Severity::High,
                33..=72 => Severity::Medium,
                73..=92 => Severity::Low,
                93..=96 => Severity::Negligible,
                _ => Severity::Unknown,
            };
            let epss = (r.below(4) != 0).then(|| {
                let u = r.unit();
                (u * u * u * 10_000.0).round() / 10_000.0
            });
            let kev = severity >= Severity::High && r.below(12) == 0;
            let fix_state = match r.below(100) {
                0..=44 => FixState::Fixed,
                45..=79 => FixState::NotFixed,
                80..=84 => FixState::WontFix,
                _ => FixState::Unknown,
            };
            let fixed_versions = if fix_state == FixState::Fixed {
                vec![format!("{version}+deb12u{}", 1 + r.below(4))]
            } else {
                Vec::new()
            };
            let description = format!(
                "{} was found {} of {name} before {}. {} {} (Tracked as {id}; see the vendor advisory for the affected ranges.)",
                r.pick(&FLAWS),
                r.pick(&PLACES),
                fixed_versions.first().map_or("the next release", String::as_str),
                r.pick(&IMPACTS),
                r.pick(&IMPACTS),
            );
            Entry {
                finding: Finding {
                    vulnerability: Vulnerability {
                        id,
                        aliases,
                        severity,
                        description: Some(description),
                        epss,
                        known_exploited: kev,
                        ..Vulnerability::default()
                    },
                    package: PackageRef {
                        name: name.to_owned(),
                        version: version.to_owned(),
                        ecosystem,
                        purl: Some(purl.parse().expect("purl")),
                        source_name: None,
                    },
                    fixed_versions,
                    fix_state,
                    reported_by: Some("grype 0.92.2".to_owned()),
                },
                file,
            }
        })
        .collect()
}

fn repository(r: usize) -> String {
    format!(
        "registry.example.com/{}/{}",
        TEAMS[r % TEAMS.len()],
        SERVICES[r / TEAMS.len()]
    )
}

/// The catalogue entries a repository's images can have (distinct).
fn repository_findings(r: usize) -> Vec<usize> {
    let mut rng = Rng(hash(&[2, r as u64]));
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(PER_REPOSITORY);
    while out.len() < PER_REPOSITORY {
        let e = rng.below(CATALOGUE);
        if seen.insert(e) {
            out.push(e);
        }
    }
    out
}

fn conf(c: f64) -> Confidence {
    Confidence::new((c * 100.0).round() / 100.0).expect("confidence")
}

/// The automated verdict about entry `e` in repository `r`'s image number
/// `k`: the same for every digest of the repository, but for a few that a
/// new digest changed.
fn verdict(e: &Entry, r: usize, entry: usize, k: usize) -> Verdict {
    let by = || Decider::automated("vexxy");
    let base = hash(&[3, r as u64, entry as u64]);
    let changed = hash(&[4, r as u64, entry as u64, k as u64]) % 100 < 4;
    let h = if changed { mix(base ^ k as u64) } else { base };
    let mut rng = Rng(h);
    let name = &e.finding.package.name;
    let lib = e.file.rsplit('/').next().unwrap_or(e.file);
    let scanner = Evidence::new(
        "scanner-report",
        EvidenceSource::ScannerReport,
        format!(
            "grype 0.92.2 reports {} {} ({} match on the package name and version)",
            name,
            e.finding.package.version,
            if rng.below(2) == 0 { "exact" } else { "CPE" }
        ),
    )
    .fact("packages_in_inventory", (120 + r * 3).to_string());
    match rng.below(100) {
        0..=54 => {
            let justification = *rng.pick(&[
                Justification::VulnerableCodeNotInExecutePath,
                Justification::VulnerableCodeNotInExecutePath,
                Justification::ComponentNotPresent,
                Justification::VulnerableCodeNotPresent,
                Justification::VulnerableCodeCannotBeControlledByAdversary,
            ]);
            Verdict::not_affected(justification, by())
                .with_confidence(conf(0.35 + 0.64 * rng.unit()))
                .with_evidence(
                    Evidence::new(
                        "elf-reachability",
                        EvidenceSource::ElfGraph,
                        format!("no executable of the image loads {lib}"),
                    )
                    .about(e.file)
                    .fact("executables", (3 + rng.below(20)).to_string())
                    .fact("loaders", "ld-linux-x86-64.so.2"),
                )
                .with_evidence(
                    Evidence::new(
                        "runtime",
                        EvidenceSource::Runtime,
                        format!(
                            "during a 31.2 s run (30 s requested), {} http request(s): {lib} was never mapped",
                            40 + rng.below(400)
                        ),
                    )
                    .about(e.file)
                    .fact("run", "31.2 s"),
                )
                .with_evidence(scanner)
                .with_notes(format!(
                    "{name}'s code is present in the image, but nothing it runs reaches {lib}; \
                     the traced run confirms it was never mapped"
                ))
        }
        55..=74 => Verdict::affected(format!("upgrade {name}"), by())
            .with_confidence(conf(0.7 + 0.25 * rng.unit()))
            .with_evidence(
                Evidence::new(
                    "runtime",
                    EvidenceSource::Runtime,
                    format!("{lib} was loaded by /usr/sbin/nginx and its functions were called"),
                )
                .about(e.file)
                .fact("mappings", (1 + rng.below(9)).to_string()),
            )
            .with_evidence(scanner)
            .with_notes(format!("{lib} is loaded by the image's entrypoint")),
        75..=89 => Verdict::under_investigation(by())
            .with_evidence(scanner)
            .with_notes(format!(
                "no reachability facts for {} packages",
                match e.finding.package.ecosystem {
                    Ecosystem::Deb => "deb",
                    Ecosystem::Python => "pypi",
                    _ => "npm",
                }
            )),
        _ => Verdict::fixed(by())
            .with_confidence(conf(0.9))
            .with_evidence(
                Evidence::new(
                    "package-db",
                    EvidenceSource::PackageDb,
                    format!(
                        "the installed {name} {} carries the distribution's fix",
                        e.finding.package.version
                    ),
                )
                .about("/var/lib/dpkg/status"),
            )
            .with_evidence(scanner),
    }
}

fn digest_of(reference: &str) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(reference.as_bytes()))
    )
}

/// The traced run's profile: the entrypoint and nginx, the package files
/// the image's findings name, a few hundred configuration and content
/// files, the listening socket and the requests of the exercise.
fn profile_of(reference: &str, digest: &str, package_files: &BTreeSet<&str>) -> ExecutionProfile {
    let mut files: Vec<String> = package_files.iter().map(|f| (*f).to_owned()).collect();
    files.extend((0..60).map(|n| format!("/etc/nginx/conf.d/site-{n:02}.conf")));
    files.extend((0..180).map(|n| format!("/usr/share/nginx/html/assets/chunk-{n:03}.js")));
    files.extend(
        [
            "/etc/passwd",
            "/etc/group",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/nsswitch.conf",
        ]
        .map(String::from),
    );
    let mut libraries: Vec<&str> = package_files
        .iter()
        .filter(|f| f.contains(".so"))
        .copied()
        .collect();
    libraries.extend([
        "/lib64/ld-linux-x86-64.so.2",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libcrypt.so.1",
    ]);
    ExecutionProfile {
        run: RunInfo {
            image: reference.to_owned(),
            image_digest: Some(digest.to_owned()),
            command: vec![
                "/docker-entrypoint.sh".into(),
                "nginx".into(),
                "-g".into(),
                "daemon off;".into(),
            ],
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 31_200,
            requested_duration_ms: 30_000,
            ..RunInfo::default()
        },
        executables: [
            "/docker-entrypoint.sh",
            "/usr/bin/sh",
            "/usr/bin/find",
            "/usr/bin/envsubst",
            "/usr/sbin/nginx",
        ]
        .iter()
        .map(|p| ExecutedBinary {
            path: (*p).to_owned(),
            interpreter: Some("/lib64/ld-linux-x86-64.so.2".into()),
            count: 1,
        })
        .collect(),
        files: files
            .into_iter()
            .map(|path| FileAccess { path, opens: 2 })
            .collect(),
        loaded_libraries: libraries
            .into_iter()
            .map(|p| LoadedLibrary {
                path: p.to_owned(),
                mappings: 4,
            })
            .collect(),
        network: vec![
            NetworkUse {
                op: SocketOp::Bind,
                address: SocketAddress::Inet([0, 0, 0, 0].into(), 80),
                ok: 1,
                failed: 0,
            },
            NetworkUse {
                op: SocketOp::Accept,
                address: SocketAddress::Inet([10, 0, 0, 2].into(), 41_000),
                ok: 250,
                failed: 0,
            },
        ],
        syscalls: [
            "read",
            "write",
            "openat",
            "close",
            "mmap",
            "mprotect",
            "epoll_wait",
            "accept4",
            "sendfile",
            "fstat",
        ]
        .iter()
        .enumerate()
        .map(|(i, s)| ((*s).to_owned(), 100 * (i as u64 + 1)))
        .collect(),
        exercise: ExerciseStats {
            ports: vec![80],
            ready_ports: vec![80],
            ready_after_ms: Some(420),
            http_requests: 250,
            http_status: [(200, 231), (404, 19)].into_iter().collect(),
            http_paths: (0..20)
                .map(|n| format!("/assets/chunk-{n:03}.js"))
                .collect(),
            ..ExerciseStats::default()
        },
        ..ExecutionProfile::default()
    }
}

/// The runtime SBOM: the packages whose code the run loaded (CycloneDX).
fn runtime_sbom(packages: &BTreeSet<(&str, &str, String)>) -> Vec<u8> {
    let components: Vec<Value> = packages
        .iter()
        .map(|(name, version, purl)| {
            json!({"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl})
        })
        .collect();
    serde_json::to_vec_pretty(&json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {"tools": {"components": [{"type": "application", "name": "vexxy"}]}},
        "components": components,
    }))
    .expect("sbom")
}

// ------------------------------------------------------------ the service

/// No worker runs here: the analyses are stored directly.
struct Idle;

impl Analyzer for Idle {
    fn analyze(
        &self,
        _: &AnalysisRequest,
        _: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        Err(AnalyzeError::internal("no analysis in this benchmark"))
    }
}

struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    took: Duration,
}

impl Answer {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("<not UTF-8>")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// How a request is signed in.
#[derive(Clone, Copy)]
enum Auth<'a> {
    Key(&'a str),
    Session(&'a str),
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    req = match auth {
        Auth::Key(k) => req.header(header::AUTHORIZATION, format!("Bearer {k}")),
        Auth::Session(s) => req.header(header::COOKIE, format!("vexxy_session={s}")),
    };
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .expect("request");
    let began = Instant::now();
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        body,
        took: began.elapsed(),
    }
}

async fn get_ok(app: &Router, uri: &str, auth: Auth<'_>) -> Answer {
    let a = call(app, "GET", uri, auth, None).await;
    assert_eq!(a.status, StatusCode::OK, "GET {uri}: {}", a.text());
    a
}

// ------------------------------------------------------------ seeding

struct Seeded {
    key: String,
    /// The image whose page is measured: reviewed, two decisions through
    /// the API.
    image: String,
    statements: usize,
    decisions: usize,
    /// Decisions made through the API (each re-issues the image's VEX).
    api_decisions: usize,
    vex_versions: usize,
    /// Time spent on the reviews.
    reviewing: Duration,
}

async fn seed(svc: &Arc<Service>, app: &Router) -> Seeded {
    let store = &svc.store;
    let org = store
        .create_org("bench", Tier::Enterprise, Some(1_000_000))
        .await
        .expect("org");
    let key = store
        .create_key_for(&org.id, "review", Some("alice@example.com"))
        .await
        .expect("key");
    let rules =
        vexxy_server::review::settings(&store.review_settings(&org.id).await.expect("settings"));
    let entries = catalogue();
    let findings: Vec<Vec<usize>> = (0..REPOSITORIES).map(repository_findings).collect();
    let window = month_window(vexxy_store::now_ms());
    let mut statements = 0;
    let mut decisions = 0;
    let mut vex_versions = 0;
    let mut measured = None;
    let mut reviewing = Duration::ZERO;
    let mut api_decisions = 0;
    for i in 0..IMAGES {
        // round-robin over the repositories: digest k of each in turn
        let (r, k) = (i % REPOSITORIES, i / REPOSITORIES);
        let repo = repository(r);
        let reference = format!("{repo}:1.{k}.0");
        let digest = digest_of(&reference);
        let window_start = k * (PER_REPOSITORY - STATEMENTS_PER_IMAGE) / 10;
        let mine = &findings[r][window_start..window_start + STATEMENTS_PER_IMAGE];
        let records: Vec<StatementRecord> = mine
            .iter()
            .map(|&e| StatementRecord::of(&entries[e].finding, verdict(&entries[e], r, e, k)))
            .collect();
        statements += records.len();

        let spec = json!({
            "image_ref": reference,
            "image_digest": null,
            "duration_secs": 30,
            "environment": {},
            "command": [],
            "test_script": null,
            "ports": [80],
            "scan_report": null,
            "sbom": null,
            "callback_url": null,
        });
        let job = match store
            .submit(
                NewJob {
                    org_id: org.id.clone(),
                    dedupe_key: format!("bench-{i}"),
                    image_ref: reference.clone(),
                    image_digest: None,
                    request: spec.to_string(),
                    callback_url: None,
                    priority: org.tier.priority(),
                    max_attempts: 3,
                    timeout_ms: 3_600_000,
                    key_id: Some(key.id.clone()),
                },
                org.quota(),
                window,
            )
            .await
            .expect("submit")
        {
            Submitted::Created(job) => job,
            other => panic!("submit {reference}: {other:?}"),
        };
        let lease = store
            .claim("bench-seeder", 3_600_000)
            .await
            .expect("claim")
            .expect("a queued job");
        assert_eq!(lease.job.id, job.id, "the seeder claims its own job");

        // VEX version 1, as the worker issues it after the analysis
        let product = Product {
            name: repo.clone(),
            tag: None,
            digest: Some(digest.parse().expect("digest")),
        };
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("time");
        let document = vexxy_review::issue(&vexxy_review::Issue {
            product: &product,
            records: &records,
            humans: &[],
            version: 1,
            first_issued: now,
            last_updated: None,
            author: "bench (vexxy)",
        })
        .expect("issue the VEX");
        let files: BTreeSet<&str> = mine.iter().map(|&e| entries[e].file).collect();
        let profile = vexxy_profile::to_json(&profile_of(&reference, &digest, &files));
        let ran: BTreeSet<(&str, &str, String)> = mine
            .iter()
            .zip(&records)
            .filter(|(_, r)| r.verdict.status().as_str() == "affected")
            .map(|(&e, _)| {
                let p = &entries[e].finding.package;
                let purl = p.purl.as_ref().map(ToString::to_string).unwrap_or_default();
                (p.name.as_str(), p.version.as_str(), purl)
            })
            .collect();
        let report = format!(
            "# {reference}\n\n{} findings; see the OpenVEX document for the statements.\n",
            records.len()
        );
        let mut artifacts = Vec::new();
        for (name, bytes, media_type) in [
            ("vex.openvex.json", document.clone(), "application/json"),
            ("profile.json", profile, "application/json"),
            (
                "sbom.runtime.cdx.json",
                runtime_sbom(&ran),
                "application/json",
            ),
            (
                "report.md",
                report.into_bytes(),
                "text/markdown; charset=utf-8",
            ),
        ] {
            let size = bytes.len() as i64;
            let stored = svc.evidence.put(bytes).await.expect("put blob");
            store.touch_blob(&stored, size).await.expect("touch blob");
            artifacts.push(Artifact {
                name: name.to_owned(),
                digest: stored,
                size,
                media_type: media_type.to_owned(),
            });
        }
        let count = |s: &str| {
            records
                .iter()
                .filter(|r| r.verdict.status().as_str() == s)
                .count()
        };
        let summary = json!({
            "total": records.len(),
            "not_affected": count("not_affected"),
            "affected": count("affected"),
            "fixed": count("fixed"),
            "under_investigation": count("under_investigation"),
        })
        .to_string();
        let done = store
            .complete_job(
                &lease,
                Completion {
                    image_digest: Some(&digest),
                    artifacts: &artifacts,
                    summary: &summary,
                    attestation: None,
                    webhook: None,
                    analysis: Some(AnalysisRecord {
                        org_id: org.id.clone(),
                        image_digest: digest.clone(),
                        repository: repo.clone(),
                        reference: reference.clone(),
                        job_id: job.id.clone(),
                        full_run: true,
                        statements: records
                            .iter()
                            .map(|r| vexxy_server::review::new_statement(r, &rules))
                            .collect(),
                    }),
                },
            )
            .await
            .expect("complete");
        assert!(done.is_done(), "job {} lost its lease", job.id);
        store
            .add_vex_version_numbered(
                &org.id,
                &digest,
                &NewVexVersion {
                    document_digest: artifacts[0].digest.clone(),
                    envelope_digest: None,
                    cause: "analysis".into(),
                    job_id: Some(job.id.clone()),
                    author: "vexxy".into(),
                },
                1,
            )
            .await
            .expect("VEX version 1");
        vex_versions += 1;

        if i % REVIEW_EVERY == 0 {
            let began = Instant::now();
            // reviewed: the low-confidence statements approved at once,
            // straight into the store (a bulk decision through the API
            // would re-issue the VEX too: the decisions below do)
            let now = vexxy_store::now_ms();
            let (rows, _) = store
                .statements(
                    &org.id,
                    &StatementFilter {
                        image_digest: Some(digest.clone()),
                        limit: Some(1000),
                        ..StatementFilter::default()
                    },
                    now,
                )
                .await
                .expect("the image's statements");
            let items: Vec<_> = rows
                .iter()
                .filter(|row| row.review_reason.as_deref() == Some("low_confidence"))
                .map(|row| {
                    (
                        row.id.clone(),
                        Some(row.version),
                        NewDecision {
                            action: "approve".into(),
                            status: Some(row.auto_status.clone()),
                            justification: row.auto_justification.clone(),
                            impact_statement: None,
                            action_statement: None,
                            reason:
                                "checked the reachability evidence: the library is never loaded"
                                    .into(),
                            author: "alice@example.com".into(),
                            key_id: key.id.clone(),
                            // some approvals are to be looked at again
                            expires_at: (i % (3 * REVIEW_EVERY) == 0)
                                .then_some(now + 90 * 86_400_000),
                        },
                        Effect {
                            decision: true,
                            status: row.auto_status.clone(),
                            justification: row.auto_justification.clone(),
                        },
                    )
                })
                .collect();
            store
                .decide_many(&org.id, &items, now)
                .await
                .expect("approvals");
            decisions += items.len();
            // then decisions through the API, each re-issuing the VEX
            // (with the approvals above)
            let mut issued = Vec::new();
            let with = |status: &str| rows.iter().find(|row| row.auto_status == status);
            let mut bodies = vec![(
                with("affected"),
                json!({
                    "action": "override",
                    "status": "not_affected",
                    "justification": "inline_mitigations_already_exist",
                    "reason": "the WAF rule <ws-1207> blocks the vulnerable endpoint & its aliases",
                }),
            )];
            if i % (3 * REVIEW_EVERY) == 0 {
                bodies.push((
                    with("under_investigation"),
                    json!({
                        "action": "override",
                        "status": "affected",
                        "action_statement": "upgrade to the distribution's next point release",
                        "reason": "the vulnerable parser is reachable from the upload endpoint",
                        "expires_in_days": 30,
                    }),
                ));
            }
            for (row, mut body) in bodies {
                let Some(row) = row else { continue };
                body["expected_version"] = json!(row.version);
                let done = call(
                    app,
                    "POST",
                    &format!("/api/v1/statements/{}/decisions", row.id),
                    Auth::Key(&key.secret),
                    Some(body),
                )
                .await;
                assert_eq!(done.status, StatusCode::OK, "decision: {}", done.text());
                issued.push(done.json()["vex"].is_object());
            }
            decisions += issued.len();
            api_decisions += issued.len();
            vex_versions += issued.iter().filter(|v| **v).count();
            if issued.len() == 2 {
                measured = Some(digest.clone());
            }
            reviewing += began.elapsed();
        }
    }
    Seeded {
        key: key.secret,
        image: measured.expect("a reviewed image with two decisions through the API"),
        statements,
        decisions,
        api_decisions,
        vex_versions,
        reviewing,
    }
}

// ------------------------------------------------------------ figures

struct Times(Vec<Duration>);

impl Times {
    fn ms(&self, q: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort();
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64() * 1000.0
    }

    fn p50(&self) -> f64 {
        self.ms(0.5)
    }

    fn p95(&self) -> f64 {
        self.ms(0.95)
    }
}

fn main() {
    let runs = std::env::var("VEXXY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(runs));
}

async fn run(runs: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_sqlite_in(dir.path()).await.expect("store");
    let evidence = EvidenceStore::Local(LocalStore::new(dir.path().join("evidence")));
    let svc = Service::new(store, evidence, Arc::new(Idle), ServiceConfig::default());
    let app = vexxy_server::app(svc.clone(), vexxy_web::router(svc.clone()));

    let began = Instant::now();
    let seeded = seed(&svc, &app).await;
    // the service's periodic sweep refreshes the planner's statistics; a
    // store grown to this size has had one (Store::refresh_statistics)
    svc.store
        .refresh_statistics()
        .await
        .expect("refresh the planner's statistics");
    let seeding = began.elapsed();
    let key = Auth::Key(&seeded.key);
    let digest = &seeded.image;
    let (token, _) = svc
        .store
        .create_web_session(&seeded.key, 3_600_000, vexxy_store::now_ms())
        .await
        .expect("session")
        .expect("the key signs in");
    let session = Auth::Session(&token);

    // the API's view of the data, and the pages checked against it
    let dashboard = get_ok(&app, "/api/v1/dashboard", key).await.json();
    assert_eq!(dashboard["images_seen"], IMAGES as u64, "{dashboard}");
    assert_eq!(
        dashboard["findings"], seeded.statements as u64,
        "{dashboard}"
    );
    let image = get_ok(&app, &format!("/api/v1/images/{digest}"), key)
        .await
        .json();
    let listed = get_ok(
        &app,
        &format!("/api/v1/statements?image={digest}&limit=1000"),
        key,
    )
    .await
    .json();
    let statements = listed["statements"].as_array().map_or(0, Vec::len);
    assert_eq!(statements, STATEMENTS_PER_IMAGE, "statements of {digest}");
    let history = get_ok(&app, &format!("/api/v1/images/{digest}/vex/history"), key)
        .await
        .json();
    let versions = history["versions"].as_array().map_or(0, Vec::len);
    check_dashboard_page(&get_ok(&app, "/", session).await, &dashboard);
    let page_uri = format!("/images/{digest}");
    check_image_page(
        &get_ok(&app, &page_uri, session).await,
        &image,
        statements,
        versions,
    );
    println!(
        "render: seeded {IMAGES} images of {REPOSITORIES} repositories, {} statements, {} decisions \
         ({} through the API), {} VEX versions (SQLite) in {:.1} s ({:.1} s of it the reviews); \
         measured image {digest}: {statements} statements, VEX version {}, {versions} in its history",
        seeded.statements,
        seeded.decisions,
        seeded.api_decisions,
        seeded.vex_versions,
        seeding.as_secs_f64(),
        seeded.reviewing.as_secs_f64(),
        image["vex_version"],
    );

    let image_api = [
        format!("/api/v1/images/{digest}"),
        format!("/api/v1/statements?image={digest}&limit=1000"),
        format!("/api/v1/images/{digest}/vex/history"),
    ];
    let mut times: [Vec<Duration>; 4] = Default::default();
    let mut timing = Instant::now();
    for round in 0..WARMUP + runs {
        if round == WARMUP {
            timing = Instant::now();
        } else if round >= WARMUP + MIN_RUNS && timing.elapsed() > BUDGET {
            break;
        }
        // interleaved, so the page and its peer share the machine's load
        let api_dashboard = get_ok(&app, "/api/v1/dashboard", key).await.took;
        let page = get_ok(&app, "/", session).await;
        assert!(
            page.text().contains("data-metric=\"findings\""),
            "/: {}",
            page.text()
        );
        let page_dashboard = page.took;
        let mut api_image = Duration::ZERO;
        for uri in &image_api {
            api_image += get_ok(&app, uri, key).await.took;
        }
        let page = get_ok(&app, &page_uri, session).await;
        assert_eq!(
            page.text().matches("<article class=\"statement\"").count(),
            statements,
            "{page_uri}"
        );
        if round >= WARMUP {
            for (t, took) in
                times
                    .iter_mut()
                    .zip([api_dashboard, page_dashboard, api_image, page.took])
            {
                t.push(took);
            }
        }
    }
    let timed = times[0].len();
    let [api_dashboard, page_dashboard, api_image, page_image] = times.map(Times);
    println!(
        "render: {timed} runs{} after {WARMUP} warm-ups, in process (oneshot, whole body), \
         API with the key, pages with a session cookie",
        if timed < runs {
            format!(" (of {runs}: stopped after {} s)", BUDGET.as_secs())
        } else {
            String::new()
        }
    );
    println!(
        "render: dashboard page p50 {:.1} ms p95 {:.1} ms; API JSON (/api/v1/dashboard) p50 {:.1} ms p95 {:.1} ms; \
         page/API {:.1}x",
        page_dashboard.p50(),
        page_dashboard.p95(),
        api_dashboard.p50(),
        api_dashboard.p95(),
        page_dashboard.p50() / api_dashboard.p50(),
    );
    println!(
        "render: image detail page p50 {:.1} ms p95 {:.1} ms ({statements} statements); API JSON \
         (image + statements + VEX history, summed) p50 {:.1} ms p95 {:.1} ms; page/API {:.1}x",
        page_image.p50(),
        page_image.p95(),
        api_image.p50(),
        api_image.p95(),
        page_image.p50() / api_image.p50(),
    );
    let met = page_dashboard.p95() < TARGET.as_secs_f64() * 1000.0
        && page_image.p95() < TARGET.as_secs_f64() * 1000.0;
    println!(
        "render: target < {} ms server time (p95 of both pages): {}",
        TARGET.as_millis(),
        if met { "met" } else { "NOT met" }
    );
}

/// The dashboard page shows the API's numbers.
fn check_dashboard_page(page: &Answer, api: &Value) {
    let html = scraper::Html::parse_document(page.text());
    let value = |selector: &str| {
        let sel = scraper::Selector::parse(selector).expect("selector");
        html.select(&sel)
            .next()
            .and_then(|e| e.value().attr("data-value"))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("the dashboard page has no {selector} with a number"))
    };
    for metric in [
        "images_seen",
        "images_analysed",
        "images_with_vex",
        "vex_coverage",
        "findings",
        "noise_reduction",
        "backlog",
        "decisions",
    ] {
        let want = api[metric]
            .as_f64()
            .unwrap_or_else(|| panic!("no {metric} in {api}"));
        assert_eq!(
            value(&format!("[data-metric=\"{metric}\"]")),
            want,
            "{metric}"
        );
    }
    for (status, n) in api["by_status"].as_object().expect("by_status") {
        assert_eq!(
            Some(value(&format!("[data-status-count=\"{status}\"]"))),
            n.as_f64(),
            "{status}"
        );
    }
}

/// The image page shows the image's statements, VEX version and history.
fn check_image_page(page: &Answer, api: &Value, statements: usize, versions: usize) {
    let html = scraper::Html::parse_document(page.text());
    let count = |selector: &str| {
        html.select(&scraper::Selector::parse(selector).expect("selector"))
            .count()
    };
    assert_eq!(count("article.statement"), statements, "statements");
    assert_eq!(
        count("article.statement details.evidence"),
        statements,
        "evidence"
    );
    assert_eq!(
        count("table#history tr[data-version]"),
        versions,
        "VEX history"
    );
    assert_eq!(count("section#profile"), 1, "profile");
    assert_eq!(count("section#sbom"), 1, "runtime SBOM");
    let sel = scraper::Selector::parse("[data-metric=\"vex_version\"]").expect("selector");
    let shown = html
        .select(&sel)
        .next()
        .and_then(|e| e.value().attr("data-value"))
        .and_then(|v| v.parse::<i64>().ok());
    assert_eq!(shown, api["vex_version"].as_i64(), "VEX version");
}
