//! Ownership soundness: every name of a used file makes its owners used
//! (symlinks, alternatives chains, hard links), data read is use,
//! security-relevant data is never "only data", and binary packages of one
//! source package do not outvote the one that ran.

use vexxy_decide::{decide, runtime, Inputs, Policy};
use vexxy_model::{
    Ecosystem, ExecutedBinary, ExecutionProfile, ExerciseStats, FileAccess, Finding, FixState,
    ImageLinks, Inventory, InventorySource, Justification, LoadedLibrary, Package, PackageRef,
    Product, ReachFacts, RunInfo, RunOutcome, SecurityData, SourcePackage, Status, Vulnerability,
};

fn finding(pkg: &str) -> Finding {
    Finding {
        vulnerability: Vulnerability {
            id: format!("CVE-TEST-{pkg}"),
            ..Vulnerability::default()
        },
        package: PackageRef {
            name: pkg.into(),
            version: "1.0".into(),
            ecosystem: Ecosystem::Deb,
            purl: None,
            source_name: None,
        },
        fixed_versions: vec![],
        fix_state: FixState::NotFixed,
        reported_by: None,
    }
}

fn pkg(name: &str, source: Option<&str>, files: &[&str]) -> Package {
    let mut p = Package::new(name, "1.0", Ecosystem::Deb);
    p.files = files.iter().map(|f| (*f).to_owned()).collect();
    p.source = source.map(|s| SourcePackage {
        name: s.to_owned(),
        version: None,
    });
    p
}

fn inventory() -> Inventory {
    Inventory::new(
        InventorySource::RootFs,
        vec![
            // Debian's redis: the server is a symlink into redis-tools' binary.
            pkg("redis-server", Some("redis"), &["/usr/bin/redis-server"]),
            pkg(
                "redis-tools",
                Some("redis"),
                &["/usr/bin/redis-check-rdb", "/usr/bin/redis-cli"],
            ),
            pkg("mawk", None, &["/usr/bin/mawk"]),
            pkg("perl-base", None, &["/usr/bin/perl"]),
            pkg("perl-extra", None, &["/usr/bin/perl5.36.0"]),
            pkg(
                "tzdata",
                None,
                &[
                    "/usr/share/zoneinfo/Europe/Berlin",
                    "/usr/share/zoneinfo/UTC",
                ],
            ),
            pkg(
                "ca-certificates",
                None,
                &["/usr/share/ca-certificates/mozilla/A.crt"],
            ),
            pkg("locales", None, &["/usr/share/i18n/SUPPORTED"]),
            pkg("media-types", None, &["/etc/mime.types"]),
            pkg("fonts-unread", None, &["/usr/share/fonts/a.ttf"]),
            pkg("libfoo1", Some("foo"), &["/usr/lib/libfoo.so.1"]),
            pkg("foo-utils", Some("foo"), &["/usr/bin/foo"]),
            pkg("libbar1", Some("bar"), &["/usr/lib/libbar.so.1"]),
            pkg("bar-utils", Some("bar"), &["/usr/bin/bar"]),
            pkg("dash", None, &["/usr/bin/dash"]),
        ],
    )
}

fn facts() -> ReachFacts {
    ReachFacts {
        links: ImageLinks::new(
            [
                (
                    "/usr/bin/redis-server".to_owned(),
                    "redis-check-rdb".to_owned(),
                ),
                (
                    "/usr/bin/awk".to_owned(),
                    "/etc/alternatives/awk".to_owned(),
                ),
                (
                    "/etc/alternatives/awk".to_owned(),
                    "/usr/bin/mawk".to_owned(),
                ),
                (
                    "/etc/localtime".to_owned(),
                    "/usr/share/zoneinfo/Europe/Berlin".to_owned(),
                ),
            ],
            [vec![
                "/usr/bin/perl".to_owned(),
                "/usr/bin/perl5.36.0".to_owned(),
            ]],
        ),
        security_data: vexxy_static_like_security_data(),
        ..ReachFacts::default()
    }
}

/// The shape of the built-in `[[security_data]]` entries (the engine reads
/// them as values; their TOML is tested in vexxy-static).
fn vexxy_static_like_security_data() -> Vec<SecurityData> {
    vec![
        SecurityData {
            id: "ca-certificates".into(),
            kind: "CA certificates".into(),
            packages: vec!["ca-certificates".into()],
            paths: vec![
                "/etc/ssl/certs/*".into(),
                "/usr/share/ca-certificates/*".into(),
            ],
        },
        SecurityData {
            id: "time-zones".into(),
            kind: "time zone rules".into(),
            packages: vec!["tzdata".into()],
            paths: vec!["/usr/share/zoneinfo/*".into(), "/etc/localtime".into()],
        },
        SecurityData {
            id: "locales".into(),
            kind: "locale data".into(),
            packages: vec!["locales".into()],
            paths: vec!["/usr/lib/locale/*".into()],
        },
    ]
}

fn profile() -> ExecutionProfile {
    let exe = |path: &str| ExecutedBinary {
        path: path.into(),
        interpreter: None,
        count: 1,
    };
    let open = |path: &str| FileAccess {
        path: path.into(),
        opens: 1,
    };
    ExecutionProfile {
        run: RunInfo {
            duration_ms: 30_000,
            requested_duration_ms: 30_000,
            outcome: RunOutcome::StoppedAtEnd,
            ..RunInfo::default()
        },
        executables: vec![
            // the tracer records the file the kernel ran: the link's target
            exe("/usr/bin/redis-check-rdb"),
            // a program started by its alternatives name
            exe("/usr/bin/awk"),
            exe("/usr/bin/perl"),
            exe("/usr/bin/foo"),
            exe("/usr/bin/dash"),
        ],
        files: vec![
            open("/etc/localtime"),
            // generated by update-ca-certificates: no package lists it
            open("/etc/ssl/certs/ca-certificates.crt"),
            open("/etc/mime.types"),
        ],
        loaded_libraries: vec![LoadedLibrary {
            path: "/usr/lib/libc.so.6".into(),
            mappings: 1,
        }],
        exercise: ExerciseStats {
            ports: vec![6379],
            ready_ports: vec![6379],
            ready_after_ms: Some(100),
            ..ExerciseStats::default()
        },
        ..ExecutionProfile::default()
    }
}

struct Case {
    pkg: &'static str,
    status: Status,
    justification: Option<Justification>,
    /// Inclusive bounds on the confidence.
    confidence: (f64, f64),
    /// Text the verdict's notes or evidence must contain.
    mentions: &'static str,
}

#[test]
fn every_name_of_a_used_file_and_every_read_counts() {
    use Justification as J;
    use Status as S;
    let cases = [
        Case {
            pkg: "redis-server",
            status: S::Affected,
            justification: None,
            confidence: (0.9, 0.9),
            mentions: "/usr/bin/redis-server",
        },
        Case {
            pkg: "redis-tools",
            status: S::Affected,
            justification: None,
            confidence: (0.9, 0.9),
            mentions: "/usr/bin/redis-check-rdb",
        },
        Case {
            pkg: "mawk",
            status: S::Affected,
            justification: None,
            confidence: (0.9, 0.9),
            mentions: "/usr/bin/awk",
        },
        Case {
            pkg: "perl-extra",
            status: S::Affected,
            justification: None,
            confidence: (0.9, 0.9),
            mentions: "/usr/bin/perl",
        },
        Case {
            pkg: "tzdata",
            status: S::Affected,
            justification: None,
            confidence: (0.75, 0.75),
            mentions: "time zone rules",
        },
        Case {
            pkg: "ca-certificates",
            status: S::Affected,
            justification: None,
            confidence: (0.75, 0.75),
            mentions: "/etc/ssl/certs/ca-certificates.crt",
        },
        Case {
            pkg: "media-types",
            status: S::Affected,
            justification: None,
            confidence: (0.75, 0.75),
            mentions: "/etc/mime.types",
        },
        // security-relevant data never read: an absence claim, not "only data"
        Case {
            pkg: "locales",
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            confidence: (0.3, 0.9),
            mentions: "locale data",
        },
        // plain data never read: the static "only data" claim stands
        Case {
            pkg: "fonts-unread",
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotPresent),
            confidence: (0.75, 0.75),
            mentions: "only data",
        },
        // its sibling foo-utils ran: the absence claim is capped for review
        Case {
            pkg: "libfoo1",
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            confidence: (0.0, runtime::SIBLING_RAN_CAP),
            mentions: "foo-utils (executed /usr/bin/foo",
        },
        // no sibling of bar ran: the absence claim is not capped
        Case {
            pkg: "libbar1",
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            confidence: (runtime::SIBLING_RAN_CAP + 0.01, 0.9),
            mentions: "no file of libbar1",
        },
    ];
    let product = Product::parse(
        "example/redis@sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0",
    )
    .expect("product");
    let inventory = inventory();
    let facts = facts();
    let profile = profile();
    let findings: Vec<Finding> = cases.iter().map(|c| finding(c.pkg)).collect();
    let out = decide(
        &Inputs {
            product: &product,
            findings: &findings,
            inventory: Some(&inventory),
            facts: &facts,
            existing: &[],
            profile: Some(&profile),
            command_override: None,
        },
        &Policy::default(),
    );
    for (c, d) in cases.iter().zip(&out.decisions) {
        let v = &d.verdict;
        assert_eq!(v.status(), c.status, "{}: status ({v:#?})", c.pkg);
        assert_eq!(
            v.justification(),
            c.justification,
            "{}: justification",
            c.pkg
        );
        let conf = v.confidence.get();
        assert!(
            (c.confidence.0..=c.confidence.1).contains(&conf),
            "{}: confidence {conf} not in {:?}",
            c.pkg,
            c.confidence
        );
        let text = format!("{} {:?}", v.notes, v.evidence);
        assert!(
            text.contains(c.mentions),
            "{}: {:?} not mentioned in {text}",
            c.pkg,
            c.mentions
        );
    }
}

#[test]
fn a_jar_nested_in_an_opened_fat_jar_is_neither_used_nor_unused() {
    let product = Product::parse(
        "example/app@sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0",
    )
    .expect("product");
    let mut nested = Package::new("x", "1", Ecosystem::Maven);
    nested.files = ["/app/app.jar", "/app/app.jar!/BOOT-INF/lib/x-1.jar"]
        .iter()
        .map(|f| (*f).to_owned())
        .collect();
    let inventory = Inventory::new(
        InventorySource::RootFs,
        vec![nested, pkg("dash", None, &["/usr/bin/dash"])],
    );
    let mut f = finding("x");
    f.package.ecosystem = Ecosystem::Maven;
    f.package.version = "1".into();
    let facts = ReachFacts::default();
    for (opened, want) in [
        (true, Status::UnderInvestigation),
        (false, Status::NotAffected),
    ] {
        let mut profile = profile();
        profile.files = if opened {
            vec![FileAccess {
                path: "/app/app.jar".into(),
                opens: 1,
            }]
        } else {
            Vec::new()
        };
        let out = decide(
            &Inputs {
                product: &product,
                findings: std::slice::from_ref(&f),
                inventory: Some(&inventory),
                facts: &facts,
                existing: &[],
                profile: Some(&profile),
                command_override: None,
            },
            &Policy::default(),
        );
        let v = &out.decisions[0].verdict;
        assert_eq!(v.status(), want, "outer jar opened: {opened}: {v:#?}");
    }
}

#[test]
fn protocol_probes_count_as_exercise_on_a_non_http_port() {
    use vexxy_model::{ProbeReach, ProbeRecord};
    let base = profile();
    let plain = runtime::Coverage::of(&base, None);
    assert!(
        (plain.factors.exercise - 0.85).abs() < 1e-9,
        "a ready port nothing answered: {}",
        plain.factors.exercise
    );
    for (reach, answered, want) in [
        (ProbeReach::Commands, 6, 1.0),
        (ProbeReach::Commands, 1, 0.95),
        (ProbeReach::Handshake, 1, 0.95),
        (ProbeReach::AuthRequired, 1, 0.90),
        (ProbeReach::Answered, 1, 0.85),
    ] {
        let mut p = base.clone();
        p.exercise.probes = vec![ProbeRecord {
            port: 6379,
            protocol: "resp".into(),
            reach,
            outcome: "test".into(),
            requests: 6,
            answered,
            duration_ms: 10,
        }];
        let c = runtime::Coverage::of(&p, None);
        assert!(
            (c.factors.exercise - want).abs() < 1e-9,
            "{reach:?}/{answered}: {}",
            c.factors.exercise
        );
        assert!(c.describe().contains("protocol probe resp on 6379"));
    }
}
