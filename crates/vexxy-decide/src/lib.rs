//! The decision engine: turns findings plus evidence into verdicts.
//!
//! Invariants:
//! - **No I/O.** Everything arrives as values ([`Inputs`]); deciding again on
//!   stored facts is instant and deterministic.
//! - A `not_affected` verdict always carries at least one [`Evidence`] item
//!   naming its source and what was (or was not) observed.
//! - A statement that already exists for a finding (a human's decision or
//!   another tool's) is respected and never overwritten. A claim that is
//!   not respected as existing ([`record_claims`]: Kubescape's
//!   `not_affected`) never decides a finding; it only adds evidence to
//!   vexxy's own verdict.
//! - Evidence that the entrypoint loads a package vetoes every
//!   `vulnerable_code_not_in_execute_path` claim about it that rests on the
//!   package not being loaded, whatever its source. Only a traced run whose
//!   function probes on the loaded library saw no call ("mapped, never
//!   entered", [`runtime::RUNTIME_PROBES`]) may still make that claim, at
//!   medium confidence at most.
//! - Runtime evidence that the package's code ran (executed, entered, mapped,
//!   loaded) vetoes every `vulnerable_code_not_in_execute_path` claim; other
//!   justifications (a kernel header package, an absent component, a
//!   configuration rule) still apply. One exception: the functions an
//!   advisory names, probed and never entered in a library that was only
//!   mapped ([`functions::FUNCTION_PROBES`]), are not vetoed by "mapped";
//!   "executed", "entered" and "loaded" still veto them.
//! - Output order is deterministic: one [`Decision`] per finding in input
//!   order, statements sorted by vulnerability id.
//!
//! The providers and the confidence each yields are listed in [`providers`]
//! and documented in `docs/confidence.md`.

pub mod functions;
pub mod providers;
pub mod runtime;
mod summary;

use std::collections::BTreeMap;

use time::OffsetDateTime;
use vexxy_model::{
    CommandOverride, Confidence, Decider, Evidence, ExecutionProfile, Finding, Inventory,
    Justification, Package, Product, Purl, ReachFacts, Status, Verdict, VexDocument, VexStatement,
};

pub use runtime::{Coverage, CoverageFactors};
pub use summary::{Band, Summary};

/// Everything the engine decides from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub product: &'a Product,
    pub findings: &'a [Finding],
    /// The image's packages (from its rootfs or an SBOM), when known.
    pub inventory: Option<&'a Inventory>,
    pub facts: &'a ReachFacts,
    /// Statements that already exist (earlier VEX documents).
    pub existing: &'a [VexStatement],
    /// A traced, exercised run of the same image, when there was one. The
    /// caller makes sure it is a run of this image.
    pub profile: Option<&'a ExecutionProfile>,
    /// Set when that run started another command than the image's own:
    /// runtime verdicts then say so and their `not_affected` claims are
    /// capped at [`runtime::OVERRIDE_CAP`].
    pub command_override: Option<&'a CommandOverride>,
}

/// Tunables of the engine.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Automated verdicts below this confidence are counted as needing review.
    pub review_below: Confidence,
    /// Automated verdicts below this confidence are not asserted: they become
    /// `under_investigation`, keeping their evidence and a note saying why.
    pub min_confidence: Confidence,
}

impl Policy {
    /// The default review threshold.
    pub const DEFAULT_REVIEW_BELOW: f64 = 0.6;
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            review_below: Confidence::clamped(Self::DEFAULT_REVIEW_BELOW),
            min_confidence: Confidence::NONE,
        }
    }
}

/// The verdict for one finding (one vulnerability in one package).
#[derive(Clone, Debug)]
pub struct Decision {
    /// Index into [`Inputs::findings`].
    pub finding: usize,
    pub verdict: Verdict,
    /// True when the verdict comes from a statement that already existed.
    pub existing: bool,
}

/// The engine's result.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub decisions: Vec<Decision>,
    /// One statement per vulnerability for the product.
    pub statements: Vec<VexStatement>,
    pub summary: Summary,
}

/// Decides every finding.
pub fn decide(inputs: &Inputs<'_>, policy: &Policy) -> Outcome {
    // Per-run work, once: how well the run covered the image, and its paths.
    let coverage = inputs.profile.map(|p| Coverage::of(p, inputs.inventory));
    let observed = inputs.profile.map(|p| {
        runtime::Observed::of(p, &inputs.facts.links).with_packages(inputs.inventory, inputs.facts)
    });
    let run = Run {
        coverage: coverage.as_ref(),
        observed: observed.as_ref(),
    };
    let decisions: Vec<Decision> = inputs
        .findings
        .iter()
        .enumerate()
        .map(|(i, f)| match existing_verdict(inputs, f) {
            Some(verdict) => Decision {
                finding: i,
                verdict,
                existing: true,
            },
            None => Decision {
                finding: i,
                verdict: gate(
                    overridden(decide_one(inputs, &run, f), inputs.command_override),
                    policy,
                ),
                existing: false,
            },
        })
        .collect();
    let statements = statements(inputs.product, inputs.findings, &decisions);
    let summary = Summary::of(&decisions, statements.len(), policy);
    Outcome {
        decisions,
        statements,
        summary,
    }
}

/// A runtime verdict from a run of another command than the image's own:
/// it says so (notes and evidence), and a `not_affected` claim is capped,
/// since code the image's own command would run may never have run.
fn overridden(mut verdict: Verdict, over: Option<&CommandOverride>) -> Verdict {
    let Some(over) = over else {
        return verdict;
    };
    if !is_runtime(&verdict) {
        return verdict;
    }
    let run = over.run.join(" ");
    let image = over.image.join(" ");
    let note = format!(
        "the traced run started `{run}`, not the image's own `{image}`: this runtime evidence is about that command"
    );
    verdict.notes = if verdict.notes.is_empty() {
        note
    } else {
        format!("{} ({note})", verdict.notes)
    };
    verdict.evidence.push(
        Evidence::new(
            runtime::RUNTIME,
            vexxy_model::EvidenceSource::Runtime,
            "the run's command was overridden",
        )
        .fact("run_command", run)
        .fact("image_command", image),
    );
    if verdict.status() == Status::NotAffected && verdict.confidence.get() > runtime::OVERRIDE_CAP {
        verdict.confidence = Confidence::clamped(runtime::OVERRIDE_CAP);
    }
    verdict
}

/// Demotes an automated verdict whose confidence is below the policy's floor.
fn gate(verdict: Verdict, policy: &Policy) -> Verdict {
    if verdict.status() == Status::UnderInvestigation
        || verdict.confidence.get() >= policy.min_confidence.get()
    {
        return verdict;
    }
    let notes = format!(
        "{} (proposed {} at confidence {}, below the minimum of {:.2})",
        verdict.notes,
        verdict.justification().map_or_else(
            || verdict.status().to_string(),
            |j| format!("{} / {j}", verdict.status())
        ),
        verdict.confidence,
        policy.min_confidence.get()
    );
    let mut demoted = Verdict::under_investigation(verdict.decided_by.clone()).with_notes(notes);
    demoted.evidence = verdict.evidence;
    demoted
}

/// Wraps statements into a document.
pub fn document(
    statements: Vec<VexStatement>,
    author: &str,
    tooling: &str,
    timestamp: OffsetDateTime,
) -> VexDocument {
    VexDocument {
        id: None,
        author: author.to_owned(),
        role: None,
        timestamp,
        last_updated: None,
        version: 1,
        tooling: Some(tooling.to_owned()),
        statements,
    }
}

/// A statement that already exists for this finding, if any. Among several,
/// a human's wins; then the newest.
fn existing_verdict(inputs: &Inputs<'_>, f: &Finding) -> Option<Verdict> {
    inputs
        .existing
        .iter()
        .filter(|s| applies(s, inputs.product, f))
        .max_by_key(|s| (s.verdict.decided_by.is_human(), s.timestamp))
        .map(|s| s.verdict.clone())
}

/// Whether a statement is about this finding of this product: its
/// vulnerability (or an alias), the product, and the package when it names
/// subcomponents.
fn applies(s: &VexStatement, product: &Product, f: &Finding) -> bool {
    f.ids().any(|id| {
        id.eq_ignore_ascii_case(&s.vulnerability_id)
            || s.aliases.iter().any(|a| a.eq_ignore_ascii_case(id))
    }) && same_product(&s.product, product)
        && (s.subcomponents.is_empty() || s.subcomponents.iter().any(|p| covers(p, f)))
}

/// The provider of the evidence [`record_claims`] adds.
pub const CLAIM: &str = "third-party-claim";

/// Records another tool's statements that are *not* respected as existing
/// ones (Kubescape's `not_affected`, which rests on file-level, unsigned
/// evidence): vexxy decided those findings from its own evidence, and each
/// of its verdicts about a finding such a claim covers gets one
/// [`Evidence`] item ([`CLAIM`], source [`EvidenceSource::ExistingVex`])
/// saying what the other tool stated. Verdicts, confidences and the summary
/// do not change; verdicts that come from existing statements are left as
/// they are. [`Outcome::statements`] are folded again when evidence was
/// added.
///
/// [`EvidenceSource::ExistingVex`]: vexxy_model::EvidenceSource::ExistingVex
pub fn record_claims(inputs: &Inputs<'_>, claims: &[VexStatement], outcome: &mut Outcome) {
    let mut added = false;
    for d in outcome.decisions.iter_mut().filter(|d| !d.existing) {
        let Some(f) = inputs.findings.get(d.finding) else {
            continue;
        };
        for claim in claims.iter().filter(|s| applies(s, inputs.product, f)) {
            let e = claim_evidence(claim);
            if !d.verdict.evidence.contains(&e) {
                d.verdict.evidence.push(e);
                added = true;
            }
        }
    }
    if added {
        outcome.statements = statements(inputs.product, inputs.findings, &outcome.decisions);
    }
}

/// What a claim stated, as evidence: its author and document (the first
/// `existing-vex` source among its own evidence, else its author), status,
/// justification and confidence.
fn claim_evidence(claim: &VexStatement) -> Evidence {
    let v = &claim.verdict;
    let author = match &v.decided_by {
        Decider::Automated { provider } => provider.as_str(),
        Decider::Human { author } | Decider::Imported { author } => author.as_str(),
    };
    let document = v
        .evidence
        .iter()
        .find_map(|e| match &e.source {
            vexxy_model::EvidenceSource::ExistingVex(id) => Some(id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| author.to_owned());
    let stated = v.justification().map_or_else(
        || v.status().to_string(),
        |j| format!("{} / {j}", v.status()),
    );
    let mut e = Evidence::new(
        CLAIM,
        vexxy_model::EvidenceSource::ExistingVex(document),
        format!(
            "{author} stated {stated}; not taken as decided: this verdict comes from vexxy's own evidence"
        ),
    )
    .fact("claimed_status", v.status().to_string())
    .fact("claimed_confidence", v.confidence.to_string());
    if let Some(j) = v.justification() {
        e = e.fact("claimed_justification", j.to_string());
    }
    if let Some(impact) = v.impact_statement() {
        e = e.fact("claimed_impact", impact);
    }
    if let Some(p) = claim.subcomponents.first() {
        e = e.about(p.to_string());
    }
    e
}

fn same_product(a: &Product, b: &Product) -> bool {
    match (&a.digest, &b.digest) {
        (Some(x), Some(y)) => x == y,
        // A statement about a name only (no digest) covers every image of
        // that name; one pinned to a digest covers only that image.
        (None, _) => last_segment(&a.name).eq_ignore_ascii_case(last_segment(&b.name)),
        (Some(_), None) => false,
    }
}

fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Whether a statement's subcomponent purl names the finding's package.
fn covers(p: &Purl, f: &Finding) -> bool {
    let name_ok = p.name().eq_ignore_ascii_case(&f.package.name);
    let version_ok = p.version().is_none_or(|v| v == f.package.version);
    match &f.package.purl {
        Some(fp) => fp.same_package(p) && version_ok,
        None => name_ok && version_ok,
    }
}

/// What [`decide`] computes once per run for the runtime provider.
#[derive(Clone, Copy, Debug)]
struct Run<'a> {
    coverage: Option<&'a Coverage>,
    observed: Option<&'a runtime::Observed>,
}

/// Runs every provider on one finding and combines their opinions.
fn decide_one(inputs: &Inputs<'_>, run: &Run<'_>, f: &Finding) -> Verdict {
    let installed = inputs.inventory.and_then(|inv| inv.find(&f.package));
    let ctx = providers::Context {
        finding: f,
        inventory: inputs.inventory,
        installed,
        facts: inputs.facts,
        profile: inputs.profile,
        coverage: run.coverage,
        observed: run.observed,
    };
    let mut opinions = Vec::new();
    for provider in providers::ALL {
        opinions.extend((provider.run)(&ctx));
    }
    combine(f, installed, opinions)
}

/// Whether a verdict comes from a runtime provider.
fn is_runtime(v: &Verdict) -> bool {
    matches!(&v.decided_by, Decider::Automated { provider }
        if provider == runtime::RUNTIME
            || provider == runtime::RUNTIME_PROBES
            || provider == functions::FUNCTION_PROBES)
}

/// Whether a runtime veto rests on the package's code having run (a program
/// executed, a probed function entered, a module loaded) rather than only on
/// a shared object being mapped.
fn code_ran(evidence: &Evidence) -> bool {
    evidence.facts.iter().any(|(k, _)| {
        matches!(
            k.as_str(),
            "executed" | "functions_entered" | "modules_loaded"
        )
    })
}

fn combine(f: &Finding, installed: Option<&Package>, opinions: Vec<providers::Opinion>) -> Verdict {
    use providers::Opinion;
    let mut candidates = Vec::new();
    // (justification, vetoed by a runtime observation, that observation
    // saw the package's code run rather than only mapped)
    let mut vetoes: Vec<(Justification, bool, bool)> = Vec::new();
    let mut doubts = Vec::new();
    let mut notes = Vec::new();
    for o in opinions {
        match o {
            Opinion::Verdict(v) => candidates.push(v),
            Opinion::Veto {
                justification,
                evidence,
            } => {
                let from_runtime = evidence.provider == runtime::RUNTIME;
                vetoes.push((
                    justification,
                    from_runtime,
                    from_runtime && code_ran(&evidence),
                ));
                notes.push(evidence);
            }
            Opinion::Doubt {
                justification,
                evidence,
            } => {
                doubts.push(justification);
                notes.push(evidence);
            }
            Opinion::Note(e) => notes.push(e),
        }
    }
    candidates.retain(|v| {
        let Some(j) = v.justification() else {
            return true;
        };
        let named = v.decided_by == Decider::automated(functions::FUNCTION_PROBES);
        let probes = named || v.decided_by == Decider::automated(runtime::RUNTIME_PROBES);
        // A static veto says the package is loaded; "mapped, never entered"
        // already knows that and shows its code did not run. A runtime veto
        // that only saw the library mapped says no more than that either,
        // so the named functions never being entered stands against it;
        // code that was executed or entered still vetoes.
        let vetoed = vetoes.iter().any(|(vj, from_runtime, ran)| {
            *vj == j
                && if named {
                    // In a Go binary every module shares the one executed
                    // file, and functions entered elsewhere in it belong to
                    // other advisories: only this advisory's own probes
                    // speak for it.
                    *ran && f.package.ecosystem != vexxy_model::Ecosystem::Go
                } else {
                    *from_runtime || !probes
                }
        });
        // A doubt says static analysis cannot tell; a traced run can.
        let doubted = doubts.contains(&j) && !is_runtime(v);
        // What the run overruled stays visible to reviewers.
        if vetoed
            && vetoes
                .iter()
                .any(|(vj, from_runtime, _)| *vj == j && *from_runtime)
        {
            notes.extend(v.evidence.iter().cloned());
        }
        !vetoed && !doubted
    });
    // The ELF graph knows best whether code is in the execute path: no other
    // static provider may claim it with more confidence than the graph's own
    // verdict. Runtime observations are independent of it (their own
    // confidence already weighs what static analysis says).
    let elf_ceiling = candidates
        .iter()
        .filter(|v| v.justification() == Some(Justification::VulnerableCodeNotInExecutePath))
        .filter(|v| v.decided_by == Decider::automated(providers::ELF_REACHABILITY))
        .map(|v| v.confidence.get())
        .reduce(f64::min);
    if let Some(ceiling) = elf_ceiling {
        for v in &mut candidates {
            if v.justification() == Some(Justification::VulnerableCodeNotInExecutePath)
                && !is_runtime(v)
                && v.confidence.get() > ceiling
            {
                v.confidence = conf(ceiling);
            }
        }
    }
    // component_not_present settles it; otherwise the most confident wins
    // (stable: earlier providers win ties). Runtime "affected" only says the
    // package's code ran: it decides when no other verdict (another
    // justification, a configuration rule's view) survives.
    let runtime_affected = |v: &Verdict| is_runtime(v) && v.status() == Status::Affected;
    let most_confident = |keep: &dyn Fn(&Verdict) -> bool| {
        candidates
            .iter()
            .enumerate()
            .filter(|(_, v)| keep(v))
            .max_by(|(ia, a), (ib, b)| {
                a.confidence
                    .get()
                    .total_cmp(&b.confidence.get())
                    .then(ib.cmp(ia))
            })
            .map(|(i, _)| i)
    };
    let chosen = candidates
        .iter()
        .position(|v| v.justification() == Some(Justification::ComponentNotPresent))
        .or_else(|| {
            if candidates.iter().any(runtime_affected) {
                most_confident(&|v| {
                    !runtime_affected(v) && v.status() != Status::UnderInvestigation
                })
                .or_else(|| most_confident(&runtime_affected))
            } else {
                most_confident(&|_| true)
            }
        });
    let mut verdict = match chosen {
        Some(i) => candidates.swap_remove(i),
        None => undecided(f, installed, &notes),
    };
    // Keep every other observation behind the verdict: reviewers see the
    // whole picture, not only the winning argument.
    for e in candidates.into_iter().flat_map(|v| v.evidence).chain(notes) {
        if !verdict.evidence.contains(&e) {
            verdict.evidence.push(e);
        }
    }
    if verdict.status() == Status::Affected && verdict.action_statement().is_none() {
        verdict = Verdict::affected(action_statement(f), verdict.decided_by.clone())
            .with_confidence(verdict.confidence)
            .with_notes(verdict.notes.clone());
    }
    verdict
}

fn undecided(f: &Finding, installed: Option<&Package>, notes: &[Evidence]) -> Verdict {
    let name = installed.map_or(f.package.name.as_str(), |p| p.name.as_str());
    // A runtime observation that explains why it could not decide says most.
    let runtime_reason = notes
        .iter()
        .filter(|e| e.provider == runtime::RUNTIME)
        .find_map(|e| e.facts.iter().find(|(k, _)| k == "inconclusive"))
        .map(|(_, v)| v.clone());
    let why = if let Some(reason) = runtime_reason {
        reason
    } else if notes
        .iter()
        .any(|e| e.provider == providers::ELF_REACHABILITY)
    {
        format!("{name} is loaded by the entrypoint; runtime evidence is needed to decide whether the vulnerable code runs")
    } else {
        format!(
            "no evidence rules out {} in {name}; it needs runtime evidence or a human review",
            f.vulnerability.id
        )
    };
    Verdict::under_investigation(Decider::automated("vexxy")).with_notes(why)
}

/// The remediation text of an `affected` verdict: names the fixed version
/// when the report knows one.
pub fn action_statement(f: &Finding) -> String {
    let pkg = &f.package.name;
    if f.fixed_versions.is_empty() {
        format!("no fixed version of {pkg} is known yet; limit exposure of the affected functionality and watch for an update")
    } else {
        format!("update {pkg} to {} or later", f.fixed_versions.join(" or "))
    }
}

/// Folds per-finding decisions into one statement per vulnerability.
///
/// Several packages can carry the same vulnerability (`libc6` and
/// `libc-bin`). Scanners apply one statement per product × vulnerability,
/// so their verdicts are joined conservatively: the most severe status wins
/// (affected > under_investigation > fixed > not_affected), and among
/// not_affected verdicts the least confident one speaks for all.
///
/// [`decide`] builds [`Outcome::statements`] with it; callers that change
/// some decisions afterwards (a human review) fold them the same way. Each
/// decision names its finding by index into `findings`; a decision whose
/// index is out of range is skipped. Statements come sorted by
/// vulnerability id, each about `product`, without a timestamp.
pub fn statements(
    product: &Product,
    findings: &[Finding],
    decisions: &[Decision],
) -> Vec<VexStatement> {
    let mut by_vuln: BTreeMap<String, Vec<(&Finding, &Decision)>> = BTreeMap::new();
    for d in decisions {
        let Some(f) = findings.get(d.finding) else {
            continue;
        };
        by_vuln
            .entry(f.vulnerability.id.clone())
            .or_default()
            .push((f, d));
    }
    by_vuln
        .into_iter()
        .map(|(id, ds)| {
            let rank = |s: Status| match s {
                Status::Affected => 3,
                Status::UnderInvestigation => 2,
                Status::Fixed => 1,
                Status::NotAffected => 0,
            };
            let lead = ds.iter().map(|(_, d)| *d).max_by(|a, b| {
                rank(a.verdict.status())
                    .cmp(&rank(b.verdict.status()))
                    .then(
                        b.verdict
                            .confidence
                            .get()
                            .total_cmp(&a.verdict.confidence.get()),
                    )
            });
            let lead = lead.map_or_else(
                || Verdict::under_investigation(Decider::automated("vexxy")),
                |d| d.verdict.clone(),
            );
            let mut verdict = lead;
            let mut subcomponents: Vec<Purl> = Vec::new();
            let mut aliases: Vec<String> = Vec::new();
            let mut description = None;
            let mut notes: Vec<String> = Vec::new();
            let mut evidence: Vec<Evidence> = Vec::new();
            for (f, d) in &ds {
                if let Some(p) = subcomponent(f) {
                    if !subcomponents.contains(&p) {
                        subcomponents.push(p);
                    }
                }
                for a in &f.vulnerability.aliases {
                    if a != &id && !aliases.contains(a) {
                        aliases.push(a.clone());
                    }
                }
                description = description.or_else(|| f.vulnerability.description.clone());
                if !d.verdict.notes.is_empty() && !notes.contains(&d.verdict.notes) {
                    notes.push(d.verdict.notes.clone());
                }
                for e in &d.verdict.evidence {
                    if !evidence.contains(e) {
                        evidence.push(e.clone());
                    }
                }
            }
            subcomponents.sort();
            aliases.sort();
            verdict.notes = notes.join("; ");
            verdict.evidence = evidence;
            VexStatement {
                vulnerability_id: id,
                aliases,
                description,
                product: product.clone(),
                subcomponents,
                verdict,
                timestamp: None,
            }
        })
        .collect()
}

/// The package purl a VEX statement names: the report's purl in VEX form,
/// or one built from the name for OS packages.
fn subcomponent(f: &Finding) -> Option<Purl> {
    if let Some(p) = &f.package.purl {
        return Some(p.vex_form());
    }
    let ty = match f.package.ecosystem {
        vexxy_model::Ecosystem::Deb => "deb",
        vexxy_model::Ecosystem::Apk => "apk",
        vexxy_model::Ecosystem::Rpm => "rpm",
        vexxy_model::Ecosystem::Python => "pypi",
        vexxy_model::Ecosystem::Npm => "npm",
        vexxy_model::Ecosystem::Go => "golang",
        vexxy_model::Ecosystem::Cargo => "cargo",
        vexxy_model::Ecosystem::Maven => "maven",
        vexxy_model::Ecosystem::Other(_) => return None,
    };
    Purl::new(ty, None, &f.package.name, Some(&f.package.version))
        .ok()
        .map(|p| p.vex_form())
}

/// Clamps a provider's raw confidence.
pub(crate) fn conf(v: f64) -> Confidence {
    Confidence::clamped(v)
}
