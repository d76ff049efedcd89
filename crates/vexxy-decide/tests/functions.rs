//! Table-driven tests of function-level evidence: the functions an advisory
//! names, resolved statically and probed in a run.

use vexxy_decide::{decide, functions as fx, runtime, Inputs, Policy};
use vexxy_model::{
    Ecosystem, ElfReach, ExecutedBinary, ExecutionProfile, ExerciseStats, Finding, FixState,
    FunctionCalls, FunctionResolution, FunctionSite, Inventory, InventorySource, Justification,
    LoadedLibrary, NamedFunctions, Package, PackageReach, PackageRef, Product, ReachFacts, RunInfo,
    RunOutcome, Status, SymbolOrigin, Verdict, Vulnerability,
};

const LIBZ: &str = "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13";
const MINIZIP: &str = "MiniZip in zlib through 1.3 has an integer overflow and resultant heap-based buffer overflow in zipOpenNewFileInZip4_64 via a long filename, comment, or extra field.";
const MINIZIP_NOTE: &str = "MiniZip in zlib through 1.3 has an integer overflow and resultant heap-based buffer overflow in zipOpenNewFileInZip4_64 via a long filename, comment, or extra field. NOTE: MiniZip is not a supported part of the zlib product.";
const TIFFCROP: &str = "A flaw was found in tiffcrop, a program distributed by the libtiff package. A specially crafted tiff file can lead to an out-of-bounds read in the extractImageSection function in tools/tiffcrop.c, resulting in a denial of service and limited information disclosure.";
/// A path that names a reproducer, not where the code lives.
const DEMONSTRATED: &str = "LibTIFF 4.0.9 has a heap over-read in TIFFFetchNormalTag in tif_dirread.c, as demonstrated by tools/tiffcp.c.";
const OSS_FUZZ: &str = "A heap buffer overflow in TIFFReadRawStrip in tif_read.c, found by contrib/oss-fuzz/tiff_read_rgba_fuzzer.cc.";
const GLIBC: &str = "In the GNU C Library (aka glibc or libc6) through 2.29, check_dst_limits_calc_pos_1 in posix/regexec.c has Uncontrolled Recursion.";

fn finding(description: &str) -> Finding {
    Finding {
        vulnerability: Vulnerability {
            id: "CVE-1".into(),
            description: Some(description.into()),
            ..Vulnerability::default()
        },
        package: PackageRef {
            name: "zlib1g".into(),
            version: "1.0".into(),
            ecosystem: Ecosystem::Deb,
            purl: None,
            source_name: Some("zlib".into()),
        },
        fixed_versions: vec![],
        fix_state: FixState::NotFixed,
        reported_by: None,
    }
}

fn inventory() -> Inventory {
    let mut zlib = Package::new("zlib1g", "1.0", Ecosystem::Deb);
    zlib.files = [
        "/usr/lib/x86_64-linux-gnu/libz.so.1".to_owned(),
        LIBZ.to_owned(),
        "/usr/bin/zpipe".to_owned(),
    ]
    .into();
    let mut app = Package::new("app", "1.0", Ecosystem::Deb);
    app.files = ["/usr/bin/app".to_owned()].into();
    Inventory::new(InventorySource::RootFs, vec![zlib, app])
}

fn named(origin: SymbolOrigin, names: &[&str], resolution: FunctionResolution) -> NamedFunctions {
    NamedFunctions {
        vulnerability: "CVE-1".into(),
        package: "zlib1g".into(),
        origin,
        names: names.iter().map(|s| (*s).to_owned()).collect(),
        resolution,
    }
}

fn absent(complete: bool) -> FunctionResolution {
    FunctionResolution::Absent {
        objects_searched: vec![LIBZ.into()],
        complete,
    }
}

fn present() -> FunctionResolution {
    present_with(None, &[], &[])
}

/// `inflateGetHeader` found in libz (at `offset`: located by a Go
/// pclntab), `unresolved` names found nowhere, `unreadable` objects.
fn present_with(
    offset: Option<u64>,
    unresolved: &[&str],
    unreadable: &[&str],
) -> FunctionResolution {
    FunctionResolution::Present {
        sites: vec![FunctionSite {
            object: LIBZ.into(),
            symbol: "inflateGetHeader".into(),
            offset,
        }],
        unresolved: unresolved.iter().map(|s| (*s).to_owned()).collect(),
        unreadable: unreadable.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// The entrypoint loads libz (a static veto of "not in the execute path").
fn facts(functions: NamedFunctions) -> ReachFacts {
    ReachFacts {
        elf: Some(ElfReach {
            entrypoints: vec!["/usr/bin/app".into()],
            packages: [(
                "zlib1g".to_owned(),
                PackageReach::FromEntrypoint {
                    object: LIBZ.into(),
                    chain: vec!["/usr/bin/app".into(), LIBZ.into()],
                },
            )]
            .into(),
            ..ElfReach::default()
        }),
        functions: vec![functions],
        ..ReachFacts::default()
    }
}

/// A fully exercised run of /usr/bin/app; libz mapped or not, its named
/// function probed with `calls` (None: not probed), `zpipe` executed or not.
fn profile(mapped: bool, calls: Option<u64>, zpipe: bool, error: bool) -> ExecutionProfile {
    let mut p = ExecutionProfile {
        run: RunInfo {
            duration_ms: 30_400,
            requested_duration_ms: 30_000,
            outcome: RunOutcome::StoppedAtEnd,
            ..RunInfo::default()
        },
        executables: vec![ExecutedBinary {
            path: "/usr/bin/app".into(),
            interpreter: None,
            count: 1,
        }],
        loaded_libraries: vec![LoadedLibrary {
            path: "/usr/bin/app".into(),
            mappings: 1,
        }],
        exercise: ExerciseStats {
            ports: vec![8080],
            ready_ports: vec![8080],
            http_requests: 40,
            http_status: [(200, 40)].into_iter().collect(),
            http_paths: vec!["/".into(), "/a".into(), "/b".into()],
            ..ExerciseStats::default()
        },
        ..ExecutionProfile::default()
    };
    if mapped {
        p.loaded_libraries.push(LoadedLibrary {
            path: LIBZ.into(),
            mappings: 2,
        });
    }
    if zpipe {
        p.executables.push(ExecutedBinary {
            path: "/usr/bin/zpipe".into(),
            interpreter: None,
            count: 1,
        });
        p.loaded_libraries.push(LoadedLibrary {
            path: "/usr/bin/zpipe".into(),
            mappings: 1,
        });
    }
    p.loaded_libraries.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(calls) = calls {
        p.functions.push(FunctionCalls {
            library: LIBZ.into(),
            symbol: "inflateGetHeader".into(),
            calls,
        });
    }
    if error {
        p.tracer.uprobe_errors.push(format!(
            "{LIBZ}: no function inflateGetHeader in /rootfs{LIBZ}"
        ));
    }
    p
}

fn verdict(description: &str, facts: &ReachFacts, profile: Option<&ExecutionProfile>) -> Verdict {
    verdict_with(description, facts, profile, None)
}

fn verdict_with(
    description: &str,
    facts: &ReachFacts,
    profile: Option<&ExecutionProfile>,
    command_override: Option<&vexxy_model::CommandOverride>,
) -> Verdict {
    let product = Product::parse(
        "example/app@sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0",
    )
    .expect("product");
    let inv = inventory();
    let findings = [finding(description)];
    let out = decide(
        &Inputs {
            product: &product,
            findings: &findings,
            inventory: Some(&inv),
            facts,
            existing: &[],
            profile,
            command_override,
        },
        &Policy::default(),
    );
    out.decisions[0].verdict.clone()
}

struct Case {
    name: &'static str,
    description: &'static str,
    functions: NamedFunctions,
    profile: Option<ExecutionProfile>,
    status: Status,
    justification: Option<Justification>,
    provider: &'static str,
    /// Inclusive confidence range.
    confidence: (f64, f64),
    /// Text the verdict's evidence must contain.
    mentions: &'static str,
}

#[test]
fn every_resolution_decides_as_documented() {
    use FunctionResolution as R;
    use Justification as J;
    use Status as S;
    use SymbolOrigin::{AdvisoryText as Text, Osv};
    let zip = &["zipOpenNewFileInZip4_64"][..];
    let hdr = &["inflateGetHeader"][..];
    // coverage of the good run: 1.0 × programs (1 of 2 programs ran: 0.97 + 0.03)
    let cases = [
        Case {
            name: "absent from a full symtab, prose names",
            description: GLIBC,
            functions: named(Text, zip, absent(true)),
            profile: None,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotPresent),
            provider: fx::ADVISORY_FUNCTIONS,
            confidence: (fx::ABSENT_TEXT_COMPLETE, fx::ABSENT_TEXT_COMPLETE),
            mentions: "full symbol tables",
        },
        Case {
            name: "absent from a full symtab, OSV names",
            description: GLIBC,
            functions: named(Osv, zip, absent(true)),
            profile: None,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotPresent),
            provider: fx::ADVISORY_FUNCTIONS,
            confidence: (fx::ABSENT_OSV_COMPLETE, fx::ABSENT_OSV_COMPLETE),
            mentions: LIBZ,
        },
        Case {
            name: "absent from .dynsym, the advisory places it in MiniZip",
            description: MINIZIP,
            functions: named(Text, zip, absent(false)),
            profile: None,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotPresent),
            provider: fx::ADVISORY_FUNCTIONS,
            confidence: (fx::ABSENT_ELSEWHERE, fx::ABSENT_ELSEWHERE),
            mentions: "MiniZip",
        },
        Case {
            name: "absent from .dynsym, prose names, nothing places it elsewhere: a note only",
            description: GLIBC,
            functions: named(Text, &["check_dst_limits_calc_pos_1"], absent(false)),
            profile: None,
            status: S::UnderInvestigation,
            justification: None,
            provider: "vexxy",
            confidence: (0.0, 0.0),
            mentions: "not_asserted",
        },
        Case {
            name: "absent from .dynsym, OSV names",
            description: GLIBC,
            functions: named(Osv, zip, absent(false)),
            profile: None,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotPresent),
            provider: fx::ADVISORY_FUNCTIONS,
            confidence: (fx::ABSENT_OSV_DYNSYM, fx::ABSENT_OSV_DYNSYM),
            mentions: "exported symbols only",
        },
        Case {
            name: "absent beats a program of the package having run",
            description: MINIZIP,
            functions: named(Text, zip, absent(false)),
            profile: Some(profile(true, None, true, false)),
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotPresent),
            provider: fx::ADVISORY_FUNCTIONS,
            confidence: (fx::ABSENT_ELSEWHERE, fx::ABSENT_ELSEWHERE),
            mentions: "executed",
        },
        Case {
            name: "absent from .dynsym, MiniZip with the NVD note",
            description: MINIZIP_NOTE,
            functions: named(Text, zip, absent(false)),
            profile: None,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotPresent),
            provider: fx::ADVISORY_FUNCTIONS,
            confidence: (fx::ABSENT_ELSEWHERE, fx::ABSENT_ELSEWHERE),
            mentions: "MiniZip",
        },
        Case {
            name: "absent from .dynsym, the function is in tools/tiffcrop.c (CVE-2023-1916)",
            description: TIFFCROP,
            functions: named(Text, &["extractImageSection"], absent(false)),
            profile: None,
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotPresent),
            provider: fx::ADVISORY_FUNCTIONS,
            confidence: (fx::ABSENT_ELSEWHERE, fx::ABSENT_ELSEWHERE),
            mentions: "tiffcrop",
        },
        Case {
            name: "absent from .dynsym, a tools/ path only as the reproducer: a note",
            description: DEMONSTRATED,
            functions: named(Text, &["TIFFFetchNormalTag"], absent(false)),
            profile: None,
            status: S::UnderInvestigation,
            justification: None,
            provider: "vexxy",
            confidence: (0.0, 0.0),
            mentions: "not_asserted",
        },
        Case {
            name: "absent from .dynsym, found by an OSS-Fuzz fuzzer in contrib/: a note",
            description: OSS_FUZZ,
            functions: named(Text, &["TIFFReadRawStrip"], absent(false)),
            profile: None,
            status: S::UnderInvestigation,
            justification: None,
            provider: "vexxy",
            confidence: (0.0, 0.0),
            mentions: "not_asserted",
        },
        Case {
            name: "present, no run: nothing function-level",
            description: GLIBC,
            functions: named(Text, hdr, present()),
            profile: None,
            status: S::UnderInvestigation,
            justification: None,
            provider: "vexxy",
            confidence: (0.0, 0.0),
            mentions: "only a traced run",
        },
        Case {
            name: "present and entered",
            description: GLIBC,
            functions: named(Text, hdr, present()),
            profile: Some(profile(true, Some(7), false, false)),
            status: S::Affected,
            justification: None,
            provider: runtime::RUNTIME,
            confidence: (0.85, 0.90),
            mentions: "inflateGetHeader (7×)",
        },
        Case {
            name: "present, mapped, probed, never entered: wins over mapped and the static veto",
            description: GLIBC,
            functions: named(Text, hdr, present()),
            profile: Some(profile(true, Some(0), false, false)),
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            provider: fx::FUNCTION_PROBES,
            confidence: (
                fx::NEVER_ENTERED_TEXT * 0.999,
                fx::NEVER_ENTERED_TEXT,
            ),
            mentions: "inflateGetHeader (0×)",
        },
        Case {
            name: "present, never entered, OSV names",
            description: GLIBC,
            functions: named(Osv, hdr, present()),
            profile: Some(profile(true, Some(0), false, false)),
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            provider: fx::FUNCTION_PROBES,
            confidence: (fx::NEVER_ENTERED_OSV * 0.999, fx::NEVER_ENTERED_OSV),
            mentions: "never entered",
        },
        Case {
            name: "present, never entered, but a program of the package executed",
            description: GLIBC,
            functions: named(Osv, hdr, present()),
            profile: Some(profile(true, Some(0), true, false)),
            status: S::Affected,
            justification: None,
            provider: runtime::RUNTIME,
            confidence: (runtime::EXECUTED_CONFIDENCE, runtime::EXECUTED_CONFIDENCE),
            mentions: "zpipe",
        },
        Case {
            name: "present, mapped, the probe failed",
            description: GLIBC,
            functions: named(Osv, hdr, present()),
            profile: Some(profile(true, Some(0), false, true)),
            status: S::Affected,
            justification: None,
            provider: runtime::RUNTIME,
            confidence: (runtime::MAPPED_CONFIDENCE, runtime::MAPPED_CONFIDENCE),
            mentions: "probe failed",
        },
        Case {
            name: "present, mapped, not probed",
            description: GLIBC,
            functions: named(Osv, hdr, present()),
            profile: Some(profile(true, None, false, false)),
            status: S::Affected,
            justification: None,
            provider: runtime::RUNTIME,
            confidence: (runtime::MAPPED_CONFIDENCE, runtime::MAPPED_CONFIDENCE),
            mentions: "not probed",
        },
        Case {
            name: "present, one name of two unresolved, never entered: a note, the mapped veto stands",
            description: GLIBC,
            functions: named(
                Osv,
                &["inflateGetHeader", "zipOpenNewFileInZip4_64"],
                present_with(None, &["zipOpenNewFileInZip4_64"], &[]),
            ),
            profile: Some(profile(true, Some(0), false, false)),
            status: S::Affected,
            justification: None,
            provider: runtime::RUNTIME,
            confidence: (runtime::MAPPED_CONFIDENCE, runtime::MAPPED_CONFIDENCE),
            mentions: "no object of zlib1g defines zipOpenNewFileInZip4_64",
        },
        Case {
            name: "present, an object unreadable, never entered: a note",
            description: GLIBC,
            functions: named(
                Osv,
                hdr,
                present_with(None, &[], &["/usr/bin/zpipe: not a readable ELF object"]),
            ),
            profile: Some(profile(true, Some(0), false, false)),
            status: S::Affected,
            justification: None,
            provider: runtime::RUNTIME,
            confidence: (runtime::MAPPED_CONFIDENCE, runtime::MAPPED_CONFIDENCE),
            mentions: "could not be read",
        },
        Case {
            name: "present, one name of two unresolved, entered: affected all the same",
            description: GLIBC,
            functions: named(
                Osv,
                &["inflateGetHeader", "zipOpenNewFileInZip4_64"],
                present_with(None, &["zipOpenNewFileInZip4_64"], &[]),
            ),
            profile: Some(profile(true, Some(3), false, false)),
            status: S::Affected,
            justification: None,
            provider: fx::FUNCTION_PROBES,
            confidence: (fx::ENTERED_OSV, fx::ENTERED_OSV),
            mentions: "inflateGetHeader (3×)",
        },
        Case {
            name: "present in a Go binary (pclntab offset), never entered: capped below review",
            description: GLIBC,
            functions: named(Osv, hdr, present_with(Some(0x4_1000), &[], &[])),
            profile: Some(profile(true, Some(0), false, false)),
            status: S::NotAffected,
            justification: Some(J::VulnerableCodeNotInExecutePath),
            provider: fx::FUNCTION_PROBES,
            confidence: (fx::NEVER_ENTERED_GO_CAP, fx::NEVER_ENTERED_GO_CAP),
            mentions: "inlined copies are not probed",
        },
        Case {
            name: "present, never mapped: the runtime provider decides (the static veto keeps it open)",
            description: GLIBC,
            functions: named(Osv, hdr, present()),
            profile: Some(profile(false, Some(0), false, false)),
            status: S::UnderInvestigation,
            justification: None,
            provider: "vexxy",
            confidence: (0.0, 0.0),
            mentions: "never mapped",
        },
        Case {
            name: "unresolved: a note",
            description: GLIBC,
            functions: named(
                Text,
                hdr,
                R::Unresolved {
                    reason: "zlib1g owns no ELF object".into(),
                },
            ),
            profile: None,
            status: S::UnderInvestigation,
            justification: None,
            provider: "vexxy",
            confidence: (0.0, 0.0),
            mentions: "owns no ELF object",
        },
    ];
    for c in cases {
        let facts = facts(c.functions.clone());
        let v = verdict(c.description, &facts, c.profile.as_ref());
        assert_eq!(v.status(), c.status, "{}: {v:#?}", c.name);
        assert_eq!(v.justification(), c.justification, "{}: {v:#?}", c.name);
        assert_eq!(
            v.decided_by,
            vexxy_model::Decider::automated(c.provider),
            "{}: {v:#?}",
            c.name
        );
        let conf = v.confidence.get();
        assert!(
            conf >= c.confidence.0 - 1e-9 && conf <= c.confidence.1 + 1e-9,
            "{}: confidence {conf} not in {:?}",
            c.name,
            c.confidence
        );
        let text = format!("{} {:?}", v.notes, v.evidence);
        assert!(
            text.contains(c.mentions),
            "{}: no {:?} in {text}",
            c.name,
            c.mentions
        );
    }
}

/// A mined name never claims more than its resolution supports: the same
/// absence (and the same idle probe) is worth less from prose than from
/// OSV, and less from `.dynsym` than from a full symbol table.
#[test]
fn confidence_never_exceeds_what_the_resolution_supports() {
    use SymbolOrigin::{AdvisoryText as Text, Osv};
    let zip = &["zipOpenNewFileInZip4_64"][..];
    let conf = |origin, resolution, profile: Option<&ExecutionProfile>| {
        let v = verdict(GLIBC, &facts(named(origin, zip, resolution)), profile);
        if v.status() == Status::NotAffected {
            v.confidence.get()
        } else {
            0.0
        }
    };
    let absence = [
        conf(Osv, absent(true), None),
        conf(Text, absent(true), None),
        conf(Osv, absent(false), None),
        conf(Text, absent(false), None),
    ];
    assert!(absence.windows(2).all(|w| w[0] > w[1]), "{absence:?}");
    assert_eq!(
        absence[3], 0.0,
        "prose names absent from .dynsym claim nothing"
    );
    let idle = profile(true, Some(0), false, false);
    let named_present = |origin| {
        let mut n = named(origin, &["inflateGetHeader"], present());
        n.names = vec!["inflateGetHeader".into()];
        verdict(GLIBC, &facts(n), Some(&idle)).confidence.get()
    };
    let (osv, text) = (named_present(Osv), named_present(Text));
    assert!(text < osv, "prose {text} vs OSV {osv}");
    assert!(osv < runtime::NOT_USED_BASE, "{osv}");
}

/// "Never entered" is runtime evidence: a run of another command than the
/// image's own caps it like every runtime claim; a static absence is not
/// about the run and keeps its confidence.
#[test]
fn an_overridden_command_caps_never_entered_but_not_absence() {
    let over = vexxy_model::CommandOverride {
        image: vec!["/usr/bin/app".into()],
        run: vec!["/bin/sh".into()],
    };
    let idle = profile(true, Some(0), false, false);
    let v = verdict_with(
        GLIBC,
        &facts(named(SymbolOrigin::Osv, &["inflateGetHeader"], present())),
        Some(&idle),
        Some(&over),
    );
    assert_eq!(v.status(), Status::NotAffected, "{v:#?}");
    assert!(v.confidence.get() <= runtime::OVERRIDE_CAP + 1e-9, "{v:#?}");
    assert!(v.notes.contains("/bin/sh"), "{}", v.notes);
    let v = verdict_with(
        MINIZIP,
        &facts(named(
            SymbolOrigin::AdvisoryText,
            &["zipOpenNewFileInZip4_64"],
            absent(false),
        )),
        Some(&idle),
        Some(&over),
    );
    assert_eq!(
        v.decided_by,
        vexxy_model::Decider::automated(fx::ADVISORY_FUNCTIONS)
    );
    assert!(
        (v.confidence.get() - fx::ABSENT_ELSEWHERE).abs() < 1e-9,
        "{v:#?}"
    );
}
