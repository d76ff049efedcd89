//! Function-level evidence: the functions an advisory names
//! ([`vexxy_model::NamedFunctions`], resolved in the package's objects by
//! static analysis), and what the run's probes on them counted.
//!
//! | resolution | run | opinion | provider | confidence |
//! |---|---|---|---|---|
//! | absent, full `.symtab` (or pclntab) | — | not_affected / vulnerable_code_not_present | `advisory-functions` | OSV [`ABSENT_OSV_COMPLETE`], prose [`ABSENT_TEXT_COMPLETE`] |
//! | absent, `.dynsym` only, the advisory places the code in a part of the project the package does not ship | — | same | same | [`ABSENT_ELSEWHERE`] |
//! | absent, `.dynsym` only, OSV names | — | same | same | [`ABSENT_OSV_DYNSYM`] |
//! | absent, `.dynsym` only, prose names | — | a note only | — | — |
//! | present | a probed site was called | affected, call counts | `function-probes` | OSV [`ENTERED_OSV`], prose [`ENTERED_TEXT`] |
//! | present, every name resolved, every object read | every site on a mapped object probed, none called, none failed | not_affected / vulnerable_code_not_in_execute_path | `function-probes` | (OSV [`NEVER_ENTERED_OSV`], prose [`NEVER_ENTERED_TEXT`]) × coverage; Go at most [`NEVER_ENTERED_GO_CAP`] |
//! | present, a name unresolved or an object unreadable | none called | a note | — | — |
//! | present | no object with a site was mapped | nothing: the runtime provider decides ("not used") | — | — |
//! | present | a mapped site without a probe, or an uprobe error on it | a note | — | — |
//! | unresolved | — | a note | — | — |
//!
//! "Never entered" is a claim about the named functions in a library that
//! was mapped: [`crate::combine`] lets it stand against the runtime
//! provider's "mapped" veto, never against "executed" or "entered"
//! (`docs/functions.md`).

use vexxy_model::{
    Decider, Ecosystem, Evidence, EvidenceSource, FunctionResolution, FunctionSite, Justification,
    NamedFunctions, SymbolOrigin, Verdict,
};

use crate::conf;
use crate::providers::{Context, Opinion};

/// Provider of the static verdict (the named functions are not in the package).
pub const ADVISORY_FUNCTIONS: &str = "advisory-functions";
/// Provider of the runtime verdicts on probes of the named functions.
pub const FUNCTION_PROBES: &str = "function-probes";

/// Absent from every object's full symbol table, names from an OSV record.
pub const ABSENT_OSV_COMPLETE: f64 = 0.90;
/// Absent from every object's full symbol table, names mined from prose.
pub const ABSENT_TEXT_COMPLETE: f64 = 0.70;
/// Absent from `.dynsym`, and the advisory itself places the code in a part
/// of the project none of the package's objects is (any origin).
pub const ABSENT_ELSEWHERE: f64 = 0.60;
/// Absent from `.dynsym`, names from an OSV record.
pub const ABSENT_OSV_DYNSYM: f64 = 0.50;
/// A probed named function was called (OSV names).
pub const ENTERED_OSV: f64 = 0.90;
/// A probed named function was called (names mined from prose).
pub const ENTERED_TEXT: f64 = 0.85;
/// Base of "never entered" for OSV names, scaled by the run's coverage.
pub const NEVER_ENTERED_OSV: f64 = 0.80;
/// Base of "never entered" for names mined from prose.
pub const NEVER_ENTERED_TEXT: f64 = 0.65;
/// Ceiling of "never entered" in a Go binary (ecosystem Go, or sites the
/// pclntab located), below the review threshold: Go's inliner copies small
/// functions into their callers, where the entry probe never fires, and
/// the inline trees that would list those copies are not read yet.
pub const NEVER_ENTERED_GO_CAP: f64 = 0.50;

/// Directories of a source tree that hold programs, examples and tests
/// rather than the library.
const TOOL_DIRS: &[&str] = &[
    "tools", "tool", "contrib", "utils", "util", "programs", "examples", "example", "fuzz",
    "fuzzing", "test", "tests", "apps",
];

/// How many items an evidence fact lists.
const SAMPLE: usize = 5;

fn sample(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(SAMPLE)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SAMPLE {
        s.push_str(&format!(" (+{} more)", items.len() - SAMPLE));
    }
    s
}

fn origin_text(o: SymbolOrigin) -> &'static str {
    match o {
        SymbolOrigin::Osv => "the OSV record",
        SymbolOrigin::AdvisoryText => "mined from the advisory's description",
    }
}

/// The provider: see the module documentation.
pub(crate) fn functions(cx: &Context<'_>) -> Vec<Opinion> {
    let f = cx.finding;
    let Some(named) = cx
        .facts
        .functions
        .iter()
        .find(|n| n.vulnerability == f.vulnerability.id && n.package == f.package.name)
    else {
        return Vec::new();
    };
    match &named.resolution {
        FunctionResolution::Absent {
            objects_searched,
            complete,
        } => absent(cx, named, objects_searched, *complete),
        FunctionResolution::Present {
            sites,
            unresolved,
            unreadable,
        } => present(cx, named, sites, unresolved, unreadable),
        FunctionResolution::Unresolved { reason } => vec![Opinion::Note(
            evidence(
                named,
                EvidenceSource::ElfGraph,
                format!(
                    "the advisory names {}; they could not be looked up in {}: {reason}",
                    named.names.join(", "),
                    named.package
                ),
            )
            .fact("inconclusive", reason.clone()),
        )],
    }
}

/// The resolution in a word, as evidence states it: `present`, `absent
/// (full symbol tables)`, `absent (.dynsym only)`, `unresolved`.
pub fn resolution_text(r: &FunctionResolution) -> &'static str {
    match r {
        FunctionResolution::Present { .. } => "present",
        FunctionResolution::Absent { complete: true, .. } => "absent (full symbol tables)",
        FunctionResolution::Absent {
            complete: false, ..
        } => "absent (.dynsym only)",
        FunctionResolution::Unresolved { .. } => "unresolved",
    }
}

fn evidence(named: &NamedFunctions, source: EvidenceSource, observation: String) -> Evidence {
    Evidence::new(ADVISORY_FUNCTIONS, source, observation)
        .about(named.package.clone())
        .fact("functions", named.names.join(", "))
        .fact("names_from", origin_text(named.origin))
        .fact("resolution", resolution_text(&named.resolution))
}

fn absent(
    cx: &Context<'_>,
    named: &NamedFunctions,
    objects: &[String],
    complete: bool,
) -> Vec<Opinion> {
    let f = cx.finding;
    let pkg = &named.package;
    let mut projects: Vec<&str> = vec![pkg.as_str()];
    projects.extend(f.package.source_name.as_deref());
    projects.extend(cx.installed.map(|p| p.name.as_str()));
    projects.extend(
        cx.installed
            .and_then(|p| p.source.as_ref())
            .map(|s| s.name.as_str()),
    );
    let elsewhere = f
        .vulnerability
        .description
        .as_deref()
        .and_then(|d| attributed_elsewhere(d, &projects, objects, &named.names));
    let exported_looking = named.names.iter().all(|n| !n.starts_with('_'));
    let confidence = match (named.origin, complete) {
        (SymbolOrigin::Osv, true) => Some(ABSENT_OSV_COMPLETE),
        (SymbolOrigin::AdvisoryText, true) => Some(ABSENT_TEXT_COMPLETE),
        (_, false) if elsewhere.is_some() && exported_looking => Some(ABSENT_ELSEWHERE),
        (SymbolOrigin::Osv, false) => Some(ABSENT_OSV_DYNSYM),
        (SymbolOrigin::AdvisoryText, false) => None,
    };
    let tables = if complete {
        "full symbol tables (.symtab)"
    } else {
        "exported symbols only (.dynsym; the objects are stripped)"
    };
    let mut e = evidence(
        named,
        EvidenceSource::ElfGraph,
        format!(
            "the advisory names {}; no object of {pkg} defines {}: searched {}",
            named.names.join(", "),
            if named.names.len() == 1 {
                "it"
            } else {
                "any of them"
            },
            sample(objects)
        ),
    )
    .fact("objects_searched", sample(objects))
    .fact("symbol_tables", tables);
    if let Some(part) = &elsewhere {
        e = e.fact(
            "advisory_places_code_in",
            format!("{part}, which no object of {pkg} is"),
        );
    }
    let Some(confidence) = confidence else {
        return vec![Opinion::Note(e.fact(
            "not_asserted",
            "a function missing from .dynsym may be internal to the library; a name mined from prose is not enough to claim it absent",
        ))];
    };
    let stated = match &elsewhere {
        Some(part) => format!(
            "static analysis: the advisory places {} in {part}, which {pkg} does not ship; no object of {pkg} defines {}",
            named.names.join(", "),
            if named.names.len() == 1 { "it" } else { "them" }
        ),
        None => format!(
            "static analysis: the function(s) the advisory names ({}) are defined in no object of {pkg} ({} searched, {tables})",
            named.names.join(", "),
            objects.len()
        ),
    };
    vec![Opinion::Verdict(
        Verdict::not_affected(
            Justification::VulnerableCodeNotPresent,
            Decider::automated(ADVISORY_FUNCTIONS),
        )
        .with_confidence(conf(confidence))
        .with_notes(stated)
        .with_evidence(e),
    )]
}

/// `/usr/lib/x` and `/lib/x` are one file on a merged-/usr image.
fn merged(path: &str) -> &str {
    path.strip_prefix("/usr")
        .filter(|r| r.starts_with('/'))
        .unwrap_or(path)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn present(
    cx: &Context<'_>,
    named: &NamedFunctions,
    sites: &[FunctionSite],
    unresolved: &[String],
    unreadable: &[String],
) -> Vec<Opinion> {
    let pkg = &named.package;
    let listed: Vec<String> = sites
        .iter()
        .map(|s| format!("{}:{}", s.object, s.symbol))
        .collect();
    let note = |observation: String, why: String| {
        vec![Opinion::Note(
            evidence(named, EvidenceSource::ElfGraph, observation)
                .fact("sites", sample(&listed))
                .fact("inconclusive", why),
        )]
    };
    let (Some(profile), Some(coverage)) = (cx.profile, cx.coverage) else {
        return note(
            format!(
                "the advisory names {}; {pkg} defines it at {}",
                named.names.join(", "),
                sample(&listed)
            ),
            "the named functions are present; only a traced run can tell whether they run"
                .to_owned(),
        );
    };
    let mapped = |object: &str| {
        profile
            .loaded_libraries
            .iter()
            .any(|l| merged(&l.path) == merged(object))
    };
    let calls = |s: &FunctionSite| {
        profile
            .functions
            .iter()
            .find(|c| merged(&c.library) == merged(&s.object) && c.symbol == s.symbol)
            .map(|c| c.calls)
    };
    let failed = |s: &FunctionSite| {
        profile.tracer.uprobe_errors.iter().any(|e| {
            e.contains(s.object.as_str())
                || e.contains(file_name(&s.object))
                || e.starts_with(&format!("{}:", s.symbol))
        })
    };
    let entered: Vec<String> = sites
        .iter()
        .filter_map(|s| {
            calls(s)
                .filter(|n| *n > 0)
                .map(|n| format!("{}:{} ({n}×)", s.object, s.symbol))
        })
        .collect();
    if !entered.is_empty() {
        let e = Evidence::new(
            FUNCTION_PROBES,
            EvidenceSource::Runtime,
            format!(
                "a function the advisory names ran in the traced run: {}",
                sample(&entered)
            ),
        )
        .about(pkg.clone())
        .fact("functions", named.names.join(", "))
        .fact("names_from", origin_text(named.origin))
        .fact("resolution", resolution_text(&named.resolution))
        .fact("calls", sample(&entered))
        .fact("run", coverage.describe());
        let confidence = match named.origin {
            SymbolOrigin::Osv => ENTERED_OSV,
            SymbolOrigin::AdvisoryText => ENTERED_TEXT,
        };
        return vec![Opinion::Verdict(
            Verdict::affected(
                crate::action_statement(cx.finding),
                Decider::automated(FUNCTION_PROBES),
            )
            .with_confidence(conf(confidence))
            .with_notes(format!(
                "the function the advisory names was entered in the traced run ({})",
                sample(&entered)
            ))
            .with_evidence(e),
        )];
    }
    let on_mapped: Vec<&FunctionSite> = sites.iter().filter(|s| mapped(&s.object)).collect();
    if on_mapped.is_empty() {
        // never mapped: whether the package's code ran at all is the runtime
        // provider's question
        return Vec::new();
    }
    // "never entered" speaks for every name: each must have a site, and no
    // object may have gone unread (a name missing there may be defined there)
    if !unresolved.is_empty() || !unreadable.is_empty() {
        let mut why = Vec::new();
        if !unresolved.is_empty() {
            why.push(format!("no object of {pkg} defines {}", sample(unresolved)));
        }
        if !unreadable.is_empty() {
            why.push(format!(
                "{} object(s) could not be read: {}",
                unreadable.len(),
                sample(unreadable)
            ));
        }
        return note(
            format!(
                "the advisory names {}; {pkg} defines some of them, but {}",
                named.names.join(", "),
                why.join("; ")
            ),
            "not every named function was resolved to a probed site, so the run cannot show that none of them ran".to_owned(),
        );
    }
    let unprobed: Vec<String> = on_mapped
        .iter()
        .filter(|s| calls(s).is_none() || failed(s))
        .map(|s| format!("{}:{}", s.object, s.symbol))
        .collect();
    if !unprobed.is_empty() {
        return note(
            format!(
                "the advisory names {}; {pkg} defines it in a mapped object, but the run counted no calls there: {}",
                named.names.join(", "),
                sample(&unprobed)
            ),
            "a named function in a mapped object was not probed, or its probe failed".to_owned(),
        );
    }
    if !coverage.observed_anything {
        return note(
            "the traced run recorded no program start or executable mapping".to_owned(),
            "the traced run recorded nothing running".to_owned(),
        );
    }
    let base = match named.origin {
        SymbolOrigin::Osv => NEVER_ENTERED_OSV,
        SymbolOrigin::AdvisoryText => NEVER_ENTERED_TEXT,
    };
    let extra = if coverage.uprobe_errors > 0 {
        crate::runtime::UPROBE_ERRORS_FACTOR
    } else {
        1.0
    };
    let probed: Vec<String> = on_mapped
        .iter()
        .map(|s| format!("{}:{} (0×)", s.object, s.symbol))
        .collect();
    let go =
        cx.finding.package.ecosystem == Ecosystem::Go || sites.iter().any(|s| s.offset.is_some());
    let fs = coverage.factors;
    let mut e = Evidence::new(
        FUNCTION_PROBES,
        EvidenceSource::Runtime,
        format!(
            "the functions the advisory names were never entered: {} was mapped during {}, and none of its {} probe(s) on them counted a call",
            sample(&on_mapped.iter().map(|s| s.object.clone()).collect::<Vec<_>>()),
            coverage.describe(),
            on_mapped.len()
        ),
    )
    .about(pkg.clone())
    .fact("functions", named.names.join(", "))
    .fact("names_from", origin_text(named.origin))
    .fact("resolution", resolution_text(&named.resolution))
    .fact("calls", sample(&probed))
    .fact(
        "coverage_factors",
        format!(
            "duration {:.2}, outcome {:.2}, exercise {:.2}, programs {:.2}, paths {:.2}",
            fs.duration, fs.outcome, fs.exercise, fs.programs, fs.paths
        ),
    );
    if coverage.lost_events {
        e = e.fact(
            "lost_events",
            "the tracer dropped events; the confidence is capped",
        );
    }
    if coverage.uprobe_errors > 0 {
        e = e.fact("uprobe_errors", coverage.uprobe_errors.to_string());
    }
    let mut confidence = coverage.scale(base, extra);
    let mut notes = format!(
        "{pkg} is loaded, but {} the advisory names never ran while the image was exercised",
        named.names.join(", ")
    );
    if go {
        const INLINED: &str = "Go's inliner may copy these functions into their callers; inlined copies are not probed";
        e = e.fact("inlining", INLINED);
        if confidence.get() > NEVER_ENTERED_GO_CAP {
            confidence = conf(NEVER_ENTERED_GO_CAP);
        }
        notes.push_str(&format!(
            " (capped at {NEVER_ENTERED_GO_CAP:.2}: {INLINED})"
        ));
    }
    vec![Opinion::Verdict(
        Verdict::not_affected(
            Justification::VulnerableCodeNotInExecutePath,
            Decider::automated(FUNCTION_PROBES),
        )
        .with_confidence(confidence)
        .with_notes(notes)
        .with_evidence(e),
    )]
}

/// A part of the project the description places the vulnerable code in
/// that none of the package's objects is: "MiniZip in zlib …" (a sentence
/// opening `Part in <project>`), "xmllint (from libxml2)", or a source file
/// under a tools/contrib/examples/tests directory that directly follows a
/// name the advisory gives (`names`): "extractImageSection function in
/// tools/tiffcrop.c", "f in tools/x.c", "f (tools/x.c)". A path elsewhere
/// in the text ("as demonstrated by tools/tiffcp.c", "found by
/// contrib/oss-fuzz/…_fuzzer.cc") names a reproducer, not the code.
/// `projects` are the package's and its source package's names.
fn attributed_elsewhere(
    description: &str,
    projects: &[&str],
    objects: &[String],
    names: &[String],
) -> Option<String> {
    let clean = |w: &str| {
        w.trim_matches(|c: char| {
            !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/' || c == '.')
        })
        .trim_end_matches('.')
        .to_owned()
    };
    let norm = |w: &str| {
        let w = w.to_ascii_lowercase();
        w.strip_prefix("lib").map(str::to_owned).unwrap_or(w)
    };
    let project_names: Vec<String> = projects.iter().map(|p| norm(p)).collect();
    let is_project = |w: &str| {
        let n = norm(&clean(w));
        !n.is_empty() && project_names.contains(&n)
    };
    let raw: Vec<&str> = description.split_whitespace().collect();
    let mut parts: Vec<String> = Vec::new();
    for (i, w) in raw.iter().enumerate() {
        let starts_sentence = i == 0 || raw[i - 1].ends_with('.');
        let word = clean(w);
        // "MiniZip in zlib through 1.3"
        if starts_sentence
            && raw.get(i + 1) == Some(&"in")
            && raw.get(i + 2).is_some_and(|p| is_project(p))
            && word
                .chars()
                .any(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            parts.push(word.clone());
        }
        // "An issue was discovered in xmllint (from libxml2)"; not "as used
        // in tiff2pdf (from LibTIFF)", which names a consumer of the code
        let introduced = starts_sentence
            || (i >= 2
                && raw[i - 1] == "in"
                && matches!(raw[i - 2], "discovered" | "found" | "exists" | "exist"));
        if introduced
            && raw.get(i + 1) == Some(&"(from")
            && raw.get(i + 2).is_some_and(|p| is_project(p))
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            parts.push(word.clone());
        }
        // "extractImageSection function in tools/tiffcrop.c:7916"
        if !follows_a_name(&raw[..i], w, names, &clean) {
            continue;
        }
        let path = word.split(':').next().unwrap_or(&word);
        let path = path.trim_start_matches('/');
        if let Some((dir, rest)) = path.split_once('/') {
            if TOOL_DIRS.contains(&dir) && rest.contains('.') {
                let file = rest.rsplit('/').next().unwrap_or(rest);
                let stem = file.split('.').next().unwrap_or(file);
                if stem.len() >= 3 {
                    parts.push(stem.to_owned());
                }
            }
        }
    }
    parts.into_iter().find(|part| {
        let p = part.to_ascii_lowercase();
        !project_names.contains(&norm(&p))
            && !objects
                .iter()
                .any(|o| file_name(o).to_ascii_lowercase().contains(&p))
    })
}

/// True when `word` (a source path) directly follows one of `names`:
/// "<name> function in <word>", "<name> in <word>", "<name> (<word>)"; and
/// the name is not introduced as a reproducer ("demonstrated by", "found
/// by", "reproducer", "fuzzer").
fn follows_a_name(
    before: &[&str],
    word: &str,
    names: &[String],
    clean: &dyn Fn(&str) -> String,
) -> bool {
    let is_name = |w: &str| {
        let w = clean(w);
        let w = w.trim_end_matches("()");
        !w.is_empty() && names.iter().any(|n| n == w)
    };
    let n = before.len();
    let at = if word.starts_with('(') && n >= 1 && is_name(before[n - 1]) {
        Some(n - 1)
    } else if n >= 2 && before[n - 1] == "in" && is_name(before[n - 2]) {
        Some(n - 2)
    } else if n >= 3
        && before[n - 1] == "in"
        && before[n - 2] == "function"
        && is_name(before[n - 3])
    {
        Some(n - 3)
    } else {
        None
    };
    let Some(at) = at else {
        return false;
    };
    // "as demonstrated by f in tools/x.c", "the fuzzer f (fuzz/x.c)"
    let lead: Vec<String> = before[at.saturating_sub(3)..at]
        .iter()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let reproducer = lead
        .iter()
        .any(|w| w.contains("reproducer") || w.contains("fuzzer") || w.starts_with("demonstrat"))
        || lead.windows(2).any(|p| p[0] == "found" && p[1] == "by");
    !reproducer
}

#[cfg(test)]
mod tests {
    use super::attributed_elsewhere;

    #[test]
    fn the_advisory_places_the_code_elsewhere() {
        let libz = ["/usr/lib/x86_64-linux-gnu/libz.so.1.2.13".to_owned()];
        let libxml = ["/usr/lib/x86_64-linux-gnu/libxml2.so.2.9.14".to_owned()];
        let libtiff = ["/usr/lib/x86_64-linux-gnu/libtiff.so.6.0.0".to_owned()];
        let libc = ["/usr/lib/x86_64-linux-gnu/libc.so.6".to_owned()];
        let tiff = &["libtiff6", "tiff"][..];
        for (text, names, projects, objects, want) in [
            ("MiniZip in zlib through 1.3 has an integer overflow in zipOpenNewFileInZip4_64 via a long filename.", &["zipOpenNewFileInZip4_64"][..], &["zlib1g", "zlib"][..], &libz[..], Some("MiniZip")),
            ("MiniZip in zlib through 1.3 has an integer overflow and resultant heap-based buffer overflow in zipOpenNewFileInZip4_64 via a long filename, comment, or extra field. NOTE: MiniZip is not a supported part of the zlib product.", &["zipOpenNewFileInZip4_64"][..], &["zlib1g", "zlib"][..], &libz[..], Some("MiniZip")),
            ("MiniZip in zlib through 1.3 has an overflow.", &[][..], &["zlib1g"][..], &libz[..], None),
            ("An issue was discovered in xmllint (from libxml2) before 2.11.8. Formatting error messages with xmllint --htmlout can result in a buffer over-read in xmlHTMLPrintFileContext in xmllint.c.", &["xmlHTMLPrintFileContext"][..], &["libxml2"][..], &libxml[..], Some("xmllint")),
            ("A flaw was found in tiffcrop, a program distributed by the libtiff package. A specially crafted tiff file can lead to an out-of-bounds read in the extractImageSection function in tools/tiffcrop.c, resulting in a denial of service and limited information disclosure.", &["extractImageSection"][..], tiff, &libtiff[..], Some("tiffcrop")),
            ("An out-of-bounds read in extractImageSection in tools/tiffcrop.c:7916", &["extractImageSection"][..], tiff, &libtiff[..], Some("tiffcrop")),
            ("An out-of-bounds read in extractImageSection() (tools/tiffcrop.c)", &["extractImageSection"][..], tiff, &libtiff[..], Some("tiffcrop")),
            // a path that names a reproducer, not where the code is
            ("LibTIFF 4.0.9 has a heap over-read in TIFFFetchNormalTag in tif_dirread.c, as demonstrated by tools/tiffcp.c.", &["TIFFFetchNormalTag"][..], tiff, &libtiff[..], None),
            ("A heap buffer overflow in TIFFReadRawStrip in tif_read.c, found by contrib/oss-fuzz/tiff_read_rgba_fuzzer.cc.", &["TIFFReadRawStrip"][..], tiff, &libtiff[..], None),
            ("as demonstrated by TIFFReadRawStrip in tools/tiffcp.c", &["TIFFReadRawStrip"][..], tiff, &libtiff[..], None),
            ("found by the fuzzer fuzz_main (fuzz/fuzz_main.c)", &["fuzz_main"][..], tiff, &libtiff[..], None),
            ("In the GNU C Library (aka glibc or libc6) through 2.29, check_dst_limits_calc_pos_1 in posix/regexec.c has Uncontrolled Recursion", &["check_dst_limits_calc_pos_1"][..], &["libc6", "glibc"][..], &libc[..], None),
            ("xmlXIncludeAddNode in xinclude.c in libxml2 before 2.11.0 has a use-after-free.", &["xmlXIncludeAddNode"][..], &["libxml2"][..], &libxml[..], None),
            ("A vulnerability in libtiff: Buffer overflow in tools/tiff.c", &[][..], tiff, &libtiff[..], None),
            ("ijg-libjpeg before 9d, as used in tiff2pdf (from LibTIFF) and other products, does not check for a NULL pointer at a certain place in jpeg_fdct_16x16 in jfdctint.c.", &["jpeg_fdct_16x16"][..], tiff, &libtiff[..], None),
        ] {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            assert_eq!(attributed_elsewhere(text, projects, objects, &names).as_deref(), want, "{text}");
        }
    }
}
