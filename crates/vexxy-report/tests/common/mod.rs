//! A synthetic but realistic analysis of an nginx image on Debian 12.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::time::Duration;

use vexxy_decide::{Band, Decision, Outcome, Summary};
use vexxy_model::{
    Confidence, Decider, Ecosystem, Evidence, EvidenceSource, ExecutedBinary, ExecutionProfile,
    ExerciseStats, ExerciseWindow, FileAccess, Finding, FixState, Inventory, InventorySource,
    Justification, LoadedLibrary, Package, PackageRef, ProcessRecord, Product, RunInfo, RunOutcome,
    ScriptOutcome, Severity, Status, TracerInfo, Verdict, Vulnerability, WindowEnd, WindowMode,
};

pub const DIGEST: &str = "sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0";

pub fn product() -> Product {
    Product::parse(&format!("docker.io/library/nginx:1.27@{DIGEST}")).expect("valid reference")
}

pub fn finding(id: &str, severity: Severity, name: &str, version: &str, fixed: &[&str]) -> Finding {
    Finding {
        vulnerability: Vulnerability {
            id: id.to_owned(),
            severity,
            ..Vulnerability::default()
        },
        package: PackageRef {
            name: name.to_owned(),
            version: version.to_owned(),
            ecosystem: Ecosystem::Deb,
            purl: None,
            source_name: None,
        },
        fixed_versions: fixed.iter().map(|v| (*v).to_owned()).collect(),
        fix_state: if fixed.is_empty() {
            FixState::NotFixed
        } else {
            FixState::Fixed
        },
        reported_by: Some("grype 0.92.2".to_owned()),
    }
}

pub fn findings() -> Vec<Finding> {
    vec![
        finding(
            "CVE-2024-13176",
            Severity::Medium,
            "libssl3",
            "3.0.15-1~deb12u1",
            &["3.0.16-1~deb12u1"],
        ),
        finding(
            "CVE-2024-5535",
            Severity::Critical,
            "libssl3",
            "3.0.15-1~deb12u1",
            &["3.0.16-1~deb12u1"],
        ),
        finding(
            "CVE-2023-52356",
            Severity::High,
            "libtiff6",
            "4.5.0-6+deb12u1",
            &[],
        ),
        finding("CVE-2021-40812", Severity::Medium, "libgd3", "2.3.3-9", &[]),
        finding(
            "CVE-2024-26581",
            Severity::High,
            "linux-libc-dev",
            "6.1.128-1",
            &[],
        ),
        finding(
            "CVE-2024-26642",
            Severity::Critical,
            "linux-libc-dev",
            "6.1.128-1",
            &[],
        ),
        finding(
            "CVE-2023-31484",
            Severity::High,
            "perl-base",
            "5.36.0-7+deb12u1",
            &[],
        ),
        finding(
            "CVE-2023-4039",
            Severity::Medium,
            "libgcc-s1",
            "12.2.0-14",
            &[],
        ),
    ]
}

fn auto(provider: &str) -> Decider {
    Decider::automated(provider)
}

fn conf(c: f64) -> Confidence {
    Confidence::new(c).expect("confidence in range")
}

/// The verdicts, one per finding of [`findings`], as the engine with the
/// runtime provider would reach them.
pub fn verdicts() -> Vec<(Verdict, bool)> {
    let libssl = || {
        Verdict::affected(
            "update libssl3 to 3.0.16-1~deb12u1 or later".to_owned(),
            auto("runtime"),
        )
        .with_confidence(conf(0.8))
        .with_notes("libssl3 is used at run time: a shared object of it was mapped executable")
        .with_evidence(
            Evidence::new(
                "runtime",
                EvidenceSource::Runtime,
                "/usr/lib/x86_64-linux-gnu/libssl.so.3 was mapped executable by the workload",
            )
            .about("libssl3")
            .fact(
                "mapped",
                "/usr/lib/x86_64-linux-gnu/libssl.so.3 (3 mappings)",
            ),
        )
    };
    let kernel = || {
        Verdict::not_affected(Justification::VulnerableCodeNotPresent, auto("kernel-headers"))
            .with_confidence(conf(0.95))
            .with_notes("linux-libc-dev ships kernel headers, not kernel code; a container runs on the host's kernel")
            .with_evidence(
                Evidence::new(
                    "kernel-headers",
                    EvidenceSource::ScannerReport,
                    "linux-libc-dev is a kernel header package built from the linux source",
                )
                .about("linux-libc-dev"),
            )
    };
    vec![
        (libssl(), false),
        (libssl(), false),
        (
            Verdict::not_affected(Justification::VulnerableCodeNotInExecutePath, auto("runtime"))
                .with_confidence(conf(0.9))
                .with_notes("no code file of libtiff6 was executed, mapped or opened during a 31.2 s run")
                .with_evidence(
                    Evidence::new(
                        "runtime",
                        EvidenceSource::Runtime,
                        "none of the 1 shared object(s) of libtiff6 was executed, mapped or opened",
                    )
                    .about("libtiff6")
                    .fact("coverage", "ports 1/1 ready, 24 http requests, no events lost"),
                )
                .with_evidence(
                    Evidence::new(
                        "elf-reachability",
                        EvidenceSource::ElfGraph,
                        "only plugins that the configuration does not load reach libtiff6",
                    )
                    .about("libtiff6")
                    .fact("entrypoints", "/docker-entrypoint.sh, /usr/sbin/nginx")
                    .fact(
                        "plugins",
                        "/usr/lib/nginx/modules/ngx_http_image_filter_module.so (not loaded by nginx: no load_module line)",
                    ),
                ),
            false,
        ),
        (
            Verdict::not_affected(
                Justification::VulnerableCodeNotInExecutePath,
                auto("runtime-probes"),
            )
            .with_confidence(conf(0.56))
            .with_notes("libgd3 was mapped, but none of its 14 probed functions was ever entered")
            .with_evidence(
                Evidence::new(
                    "runtime-probes",
                    EvidenceSource::Runtime,
                    "libgd.so.3 was mapped executable but no probed function in it was called",
                )
                .about("/usr/lib/x86_64-linux-gnu/libgd.so.3.0.11")
                .fact("probes", "gdImageCreateFromGif=0, gdImageCreateFromTiff=0, gdImageCreateFromPng=0"),
            ),
            false,
        ),
        (kernel(), false),
        (kernel(), false),
        (
            Verdict::under_investigation(auto("vexxy")).with_notes(
                "no evidence rules out CVE-2023-31484 in perl-base; it needs runtime evidence or a human review",
            ),
            false,
        ),
        (
            Verdict::not_affected(
                Justification::VulnerableCodeNotPresent,
                Decider::Human {
                    author: "security@example.com".to_owned(),
                },
            )
            .with_confidence(Confidence::CERTAIN)
            .with_notes("the -fstack-protector issue concerns AArch64 code generation only")
            .with_evidence(
                Evidence::new(
                    "existing-vex",
                    EvidenceSource::ExistingVex("https://example.com/vex/2024-001".to_owned()),
                    "an existing statement covers CVE-2023-4039",
                ),
            ),
            true,
        ),
    ]
}

/// The engine's summary of these decisions (what `Summary::of` computes
/// with the default policy: review below 0.6).
pub fn summary_of(decisions: &[Decision], statements: usize) -> Summary {
    let mut s = Summary {
        findings: decisions.len(),
        statements,
        ..Summary::default()
    };
    for d in decisions {
        let v = &d.verdict;
        *s.by_status.entry(v.status()).or_insert(0) += 1;
        if d.existing {
            s.existing += 1;
            continue;
        }
        if v.status() == Status::UnderInvestigation {
            s.under_investigation += 1;
            s.needs_review += 1;
            continue;
        }
        *s.automated_by_band
            .entry(Band::of(v.confidence.get()))
            .or_insert(0) += 1;
        if let Some(j) = v.justification() {
            *s.by_justification.entry(j.as_str().to_owned()).or_insert(0) += 1;
        }
        if v.confidence.get() < 0.6 {
            s.needs_review += 1;
        }
    }
    s
}

pub fn outcome_for(verdicts: Vec<(Verdict, bool)>, statements: usize) -> Outcome {
    let decisions: Vec<Decision> = verdicts
        .into_iter()
        .enumerate()
        .map(|(finding, (verdict, existing))| Decision {
            finding,
            verdict,
            existing,
        })
        .collect();
    let summary = summary_of(&decisions, statements);
    Outcome {
        decisions,
        statements: Vec::new(),
        summary,
    }
}

pub fn outcome() -> Outcome {
    outcome_for(verdicts(), 8)
}

pub fn package(name: &str, version: &str, files: &[&str]) -> Package {
    let mut p = Package::new(name, version, Ecosystem::Deb);
    p.architecture = Some("amd64".to_owned());
    p.files = files.iter().map(|f| (*f).to_owned()).collect();
    p
}

pub fn inventory() -> Inventory {
    let lib = "/usr/lib/x86_64-linux-gnu";
    Inventory::new(
        InventorySource::RootFs,
        vec![
            package(
                "libc6",
                "2.36-9+deb12u10",
                &[
                    "/lib64/ld-linux-x86-64.so.2",
                    "/lib/x86_64-linux-gnu/libc.so.6",
                    "/usr/lib/x86_64-linux-gnu/libc.so.6",
                ],
            ),
            package(
                "libgcc-s1",
                "12.2.0-14",
                &["/lib/x86_64-linux-gnu/libgcc_s.so.1"],
            ),
            package(
                "libgd3",
                "2.3.3-9",
                &[
                    &format!("{lib}/libgd.so.3"),
                    &format!("{lib}/libgd.so.3.0.11"),
                ],
            ),
            package(
                "libssl3",
                "3.0.15-1~deb12u1",
                &[
                    &format!("{lib}/engines-3/afalg.so"),
                    &format!("{lib}/libssl.so.3"),
                    "/usr/share/doc/libssl3/copyright",
                ],
            ),
            package(
                "libtiff6",
                "4.5.0-6+deb12u1",
                &[
                    &format!("{lib}/libtiff.so.6"),
                    &format!("{lib}/libtiff.so.6.0.1"),
                ],
            ),
            package(
                "linux-libc-dev",
                "6.1.128-1",
                &["/usr/include/linux/bpf.h", "/usr/include/linux/netfilter.h"],
            ),
            package(
                "nginx",
                "1.27.5-1~bookworm",
                &["/etc/nginx/nginx.conf", "/usr/sbin/nginx"],
            ),
            package(
                "perl-base",
                "5.36.0-7+deb12u1",
                &[
                    "/usr/bin/perl",
                    "/usr/lib/x86_64-linux-gnu/perl-base/strict.pm",
                ],
            ),
            package(
                "python3-yaml",
                "6.0-3+b2",
                &[
                    "/usr/lib/python3/dist-packages/yaml/__init__.py",
                    "/usr/lib/python3/dist-packages/yaml/nodes.py",
                ],
            ),
            package(
                "tzdata",
                "2025b-0+deb12u1",
                &["/usr/share/zoneinfo/Etc/UTC", "/usr/share/zoneinfo/UTC"],
            ),
        ],
    )
}

fn file(path: &str, opens: u64) -> FileAccess {
    FileAccess {
        path: path.to_owned(),
        opens,
    }
}

fn mapped(path: &str, mappings: u64) -> LoadedLibrary {
    LoadedLibrary {
        path: path.to_owned(),
        mappings,
    }
}

pub fn profile() -> ExecutionProfile {
    let lib = "/usr/lib/x86_64-linux-gnu";
    let mut p = ExecutionProfile {
        run: RunInfo {
            image: "docker.io/library/nginx:1.27".to_owned(),
            image_digest: Some(
                "sha256:9d6b58feebd2dbd3c56ab5853333d627cc6e281011cfd6050fa4bcf2072c9496"
                    .to_owned(),
            ),
            command: vec![
                "/docker-entrypoint.sh".to_owned(),
                "nginx".to_owned(),
                "-g".to_owned(),
                "daemon off;".to_owned(),
            ],
            started_at: "2025-06-01T12:00:00Z".to_owned(),
            duration_ms: 31_250,
            requested_duration_ms: 30_000,
            outcome: RunOutcome::StoppedAtEnd,
            window: Some(ExerciseWindow {
                mode: WindowMode::Fixed,
                ended: WindowEnd::Maximum,
                last_evidence_ms: Some(412),
                exercised_ms: 1_530,
            }),
            source: Default::default(),
            spans: Vec::new(),
        },
        executables: vec![
            ExecutedBinary {
                path: "/docker-entrypoint.sh".to_owned(),
                interpreter: None,
                count: 1,
            },
            ExecutedBinary {
                path: "/usr/sbin/nginx".to_owned(),
                interpreter: Some("/lib64/ld-linux-x86-64.so.2".to_owned()),
                count: 1,
            },
        ],
        files: vec![
            file("/etc/nginx/nginx.conf", 2),
            file(
                "/usr/lib/python3/dist-packages/yaml/__pycache__/nodes.cpython-311.pyc",
                1,
            ),
            file("/usr/share/zoneinfo/UTC", 3),
        ],
        loaded_libraries: vec![
            mapped(&format!("{lib}/libc.so.6"), 4),
            mapped(&format!("{lib}/libgcc_s.so.1"), 1),
            mapped(&format!("{lib}/libgd.so.3.0.11"), 1),
            mapped(&format!("{lib}/libssl.so.3"), 3),
            mapped("/usr/lib64/ld-linux-x86-64.so.2", 2),
            mapped("/usr/sbin/nginx", 2),
        ],
        processes: vec![
            ProcessRecord {
                pid: 1,
                ppid: 0,
                execs: vec![
                    "/docker-entrypoint.sh".to_owned(),
                    "/usr/sbin/nginx".to_owned(),
                ],
                comm: "nginx".to_owned(),
                exit_code: None,
            },
            ProcessRecord {
                pid: 29,
                ppid: 1,
                execs: Vec::new(),
                comm: "nginx".to_owned(),
                exit_code: None,
            },
        ],
        exercise: ExerciseStats {
            ports: vec![80],
            ready_ports: vec![80],
            ready_after_ms: Some(180),
            http_requests: 24,
            http_status: BTreeMap::from([(0, 1), (200, 20), (404, 3)]),
            http_paths: vec!["/".to_owned(), "/index.html".to_owned()],
            script: Some(ScriptOutcome {
                path: "tests/smoke.sh".to_owned(),
                exit_code: Some(0),
                duration_ms: 1_400,
            }),
            ..ExerciseStats::default()
        },
        tracer: TracerInfo {
            kernel: "6.8.0-60-generic".to_owned(),
            startup_ms: 95,
            uprobes_attached: 14,
            uprobe_errors: Vec::new(),
            complete_libraries: Vec::new(),
        },
        ..ExecutionProfile::default()
    };
    p.syscalls.insert("openat".to_owned(), 412);
    p
}

pub fn timings() -> Vec<(String, Duration)> {
    vec![
        ("pull".to_owned(), Duration::from_millis(1_204)),
        ("unpack".to_owned(), Duration::from_millis(850)),
        ("catalog".to_owned(), Duration::from_micros(412)),
        ("run".to_owned(), Duration::from_millis(31_250)),
        ("decide".to_owned(), Duration::from_millis(3)),
    ]
}
