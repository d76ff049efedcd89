//! Runtime evidence: what one traced, exercised run of the image (an
//! [`ExecutionProfile`]) shows about the code of each finding's package.
//!
//! The package's owned files (listed and canonical forms, from the
//! [`Inventory`]) are matched against what the run executed, mapped
//! executable, opened, and what the probed functions counted. The first class
//! that applies decides:
//!
//! | class | observed | opinion | confidence |
//! |---|---|---|---|
//! | executed | a file of the package was executed, or was the ELF interpreter of an executed program | affected (and vetoes not_in_execute_path) | [`EXECUTED_CONFIDENCE`] |
//! | entered | a probed function of the package was called | affected (veto) | [`ENTERED_CONFIDENCE`] |
//! | mapped | a shared object of the package was mapped executable and no probe on it can show its code stayed idle | affected (veto) | [`MAPPED_CONFIDENCE`] |
//! | modules loaded | a language module, script or bytecode file of the package was opened (`__pycache__/*.pyc` count for their `.py`) | affected (veto) | [`MODULE_CONFIDENCE`] |
//! | mapped, never entered | every mapped object of the package carried probes, none was called and none failed to attach | not_affected / not_in_execute_path | [`NEVER_ENTERED_BASE`] × coverage |
//! | read only | a native object was opened but never mapped executable | nothing (a note) | — |
//! | data read | a data file of the package (or a file its security-relevant data is generated into) was opened | affected (vetoes not_present and not_in_execute_path) | [`DATA_READ_CONFIDENCE`] |
//! | not used | no code file of the package was executed, mapped or opened | not_affected / not_in_execute_path, unless static analysis says the entrypoint loads it | [`NOT_USED_BASE`] × coverage × static |
//! | data not read | a package of security-relevant data (CA bundle, time zones, …) none of whose files was opened | not_affected / not_in_execute_path | [`NOT_USED_BASE`] × coverage |
//!
//! Ownership is by every name of a file: a traced path is resolved through
//! the image's symlinks (each link passed on the way counts as used, and so
//! does the file it leads to and its hard links), and a package that owns a
//! symlink uses the file it leads to. So a package whose only file is the
//! symlink the entrypoint runs (`/usr/bin/redis-server` →
//! `redis-check-rdb` of another package) is executed, not unused.
//!
//! Binary packages of one source package share their advisories: when the
//! code of one of them ran, an absence claim about another is capped at
//! [`SIBLING_RAN_CAP`] (the vulnerable code may be in the one that ran).
//!
//! Other packages without code files are left to the `no-code` provider. Only the
//! absence claims depend on how well the run exercised the image
//! ([`Coverage`]): that code ran is not weakened by lost events or a short
//! run, that it did not run is. See `docs/confidence.md` for every number.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use vexxy_model::{
    Confidence, Decider, Evidence, EvidenceSource, EvidenceSpan, ExecutionProfile, FunctionCalls,
    ImageLinks, Inventory, Justification, LoaderVerdict, Package, PackageReach, ProfileSource,
    ReachFacts, RunOutcome, ScriptOutcome, SecurityData, Status, Verdict, WindowEnd,
};

use crate::conf;
use crate::providers::{is_program_path, looks_like_code, Context, Opinion};

/// Provider id of every runtime opinion but "mapped, never entered".
pub const RUNTIME: &str = "runtime";
/// Provider id of the "mapped, never entered" verdict, which rests on
/// function probes of a loaded library.
pub const RUNTIME_PROBES: &str = "runtime-probes";

/// `affected`: a program or interpreter of the package ran.
pub const EXECUTED_CONFIDENCE: f64 = 0.90;
/// `affected`: a probed function of the package was called.
pub const ENTERED_CONFIDENCE: f64 = 0.90;
/// `affected`: a module, script or bytecode file of the package was loaded.
pub const MODULE_CONFIDENCE: f64 = 0.85;
/// `affected`: a shared object of the package was mapped executable.
pub const MAPPED_CONFIDENCE: f64 = 0.80;
/// `not_affected`: no code file of the package was used; scaled by
/// [`Coverage::factor`] and the static factor.
pub const NOT_USED_BASE: f64 = 0.90;
/// `not_affected`: mapped, but no probed function was ever entered; scaled by
/// [`Coverage::factor`] and [`UPROBE_ERRORS_FACTOR`].
pub const NEVER_ENTERED_BASE: f64 = 0.70;
/// The most a runtime absence claim may have when the tracer dropped events
/// (ring buffer) or aggregation entries (full map): absence of evidence is
/// then no longer evidence of absence.
pub const LOST_EVENTS_CAP: f64 = 0.40;
/// Highest confidence of a runtime `not_affected` claim from a run whose
/// command was overridden: below the default review threshold (0.6), so a
/// person looks at it.
pub const OVERRIDE_CAP: f64 = 0.50;
/// The exercise score a protocol probe earns (`docs/confidence.md`,
/// "Protocol probes"): commands answered ≥ 3 times as a crawl of ≥ 3
/// answered paths (1.0); fewer commands or a completed handshake 0.95; a
/// server that stopped at authentication 0.90; a banner, silence or no
/// connection as a port with no answered request (0.85).
pub fn probe_score(p: &vexxy_model::ProbeRecord) -> f64 {
    use vexxy_model::ProbeReach as R;
    match p.reach {
        R::Commands if p.answered >= 3 => 1.0,
        R::Commands | R::Handshake => 0.95,
        R::AuthRequired => 0.90,
        R::Answered | R::Connected | R::Unreachable => 0.85,
    }
}

/// `affected`: a data file of the package was read at run time. Reading is
/// use: the data may be what is vulnerable (a distrusted CA), or the code
/// reading it may be the package's concern.
pub const DATA_READ_CONFIDENCE: f64 = 0.75;
/// The most a runtime absence claim about a package may have when another
/// binary package of the same source package ran: advisories are per
/// source package, and which binary package carries the vulnerable code is
/// not known. Below the default review threshold (0.6).
pub const SIBLING_RAN_CAP: f64 = 0.50;
/// The most a runtime absence claim about a package of security-relevant
/// data may have: CA bundles and time zone files are read lazily (the
/// first outbound TLS verification, the first local time), which a
/// sandboxed run without outbound traffic may never trigger.
pub const SECURITY_DATA_ABSENCE_CAP: f64 = 0.50;
/// The most a runtime absence claim may have when the image had more
/// symlinks than static analysis records ([`ImageLinks::truncated`]).
pub const LINKS_TRUNCATED_CAP: f64 = 0.40;
/// "Mapped, never entered" when other requested probes failed to attach.
pub const UPROBE_ERRORS_FACTOR: f64 = 0.90;

/// Static factor: the entrypoint does not load the package, other programs
/// of the image do (none of them ran).
pub const STATIC_OTHER_EXECUTABLES: f64 = 0.90;
/// Static factor: only a plugin no loader explains reaches the package, and
/// the entrypoint's closure calls `dlopen`.
pub const STATIC_DLOPEN_POSSIBLE: f64 = 0.80;
/// Static factor: only a plugin no loader explains reaches the package, and
/// nothing the entrypoint loads calls `dlopen`.
pub const STATIC_UNEXPLAINED_PLUGIN: f64 = 0.95;
/// Static factor: a configuration rule that selects the finding says the
/// configuration could use the package (`affected` or `under_investigation`).
pub const STATIC_RULE_COULD_ENABLE: f64 = 0.80;

/// How many example paths evidence lists.
const SAMPLE: usize = 5;

/// How thoroughly one traced run exercised the image: the numbers behind the
/// confidence of every runtime absence claim, computed once per run.
#[derive(Clone, Debug, PartialEq)]
pub struct Coverage {
    /// Wall time of the run, in milliseconds.
    pub duration_ms: u64,
    /// The exercise window asked for, in milliseconds (0 when unknown): its
    /// length when fixed, its maximum when adaptive.
    pub requested_duration_ms: u64,
    /// Why the window closed, when the profile records it.
    pub window_end: Option<WindowEnd>,
    /// How the workload ended.
    pub outcome: RunOutcome,
    /// TCP ports the image exposes.
    pub ports: usize,
    /// Ports that accepted a connection.
    pub ready_ports: usize,
    /// HTTP requests sent.
    pub http_requests: u64,
    /// HTTP requests that got a response (any status but 0).
    pub http_answered: u64,
    /// Distinct HTTP paths requested.
    pub http_paths: usize,
    /// The best exercise score a protocol probe earned on a ready port
    /// ([`probe_score`]), when any probe ran.
    pub probe_score: Option<f64>,
    /// The protocol probe behind [`Coverage::probe_score`]: "resp on 6379:
    /// commands, 6/6 answered".
    pub best_probe: Option<String>,
    /// The user's test script, when one ran.
    pub script: Option<ScriptOutcome>,
    /// Distinct programs executed.
    pub executed: usize,
    /// Programs of the inventory (files in `bin`/`sbin`/`libexec`
    /// directories), when the inventory lists files.
    pub image_programs: Option<usize>,
    /// How many of those ran.
    pub image_programs_run: usize,
    /// The tracer dropped process events or aggregation entries.
    pub lost_events: bool,
    /// Paths the tracer could not resolve completely.
    pub truncated_paths: u64,
    /// Requested uprobes that could not be attached.
    pub uprobe_errors: usize,
    /// The tracer saw at least one program start or executable mapping.
    pub observed_anything: bool,
    /// Production use the profile records (`run.source` observed: a node
    /// agent or `vexxy observe` traced running containers), when it does.
    pub production: Option<ProductionUse>,
    /// The Kubescape objects the profile was imported from, when its
    /// source is Kubescape ([`KubescapeRun`]).
    pub kubescape: Option<KubescapeRun>,
    /// The factors derived from the numbers above.
    pub factors: CoverageFactors,
}

/// The multipliers (each in `0..=1`) a [`Coverage`] applies to the base
/// confidence of a runtime absence claim. `docs/confidence.md` explains each.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoverageFactors {
    /// Run time against the requested window.
    pub duration: f64,
    /// How the workload ended.
    pub outcome: f64,
    /// Ports, HTTP requests and paths, the test script.
    pub exercise: f64,
    /// Share of the image's programs that ran.
    pub programs: f64,
    /// Paths the tracer could not resolve.
    pub paths: f64,
}

impl CoverageFactors {
    /// The product of all factors.
    pub fn product(&self) -> f64 {
        self.duration * self.outcome * self.exercise * self.programs * self.paths
    }
}

impl Coverage {
    /// Measures a run. `inventory` supplies the image's programs for the
    /// share that ran; without one (or without file lists) that factor
    /// assumes little of the image ran.
    pub fn of(profile: &ExecutionProfile, inventory: Option<&Inventory>) -> Self {
        let run = &profile.run;
        let ex = &profile.exercise;
        let executed: BTreeSet<Cow<'_, str>> = profile
            .executables
            .iter()
            .map(|e| merged(&e.path))
            .collect();
        let image_programs: Option<BTreeSet<Cow<'_, str>>> = inventory.map(|inv| {
            inv.packages()
                .iter()
                .flat_map(|p| p.files.iter())
                .filter(|f| is_program_path(f))
                .map(|f| merged(f))
                .collect()
        });
        let image_programs = image_programs.filter(|s| !s.is_empty());
        let image_programs_run = image_programs.as_ref().map_or(0, |all| {
            executed.iter().filter(|e| all.contains(*e)).count()
        });
        let http_answered = ex
            .http_status
            .iter()
            .filter(|(code, _)| **code != 0)
            .map(|(_, n)| *n)
            .sum();
        let best = ex
            .probes
            .iter()
            .filter(|p| ex.ready_ports.contains(&p.port))
            .map(|p| (probe_score(p), p))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let mut c = Self {
            probe_score: best.map(|(score, _)| score),
            best_probe: best.map(|(_, p)| {
                format!(
                    "{} on {}: {:?}, {}/{} answered",
                    p.protocol, p.port, p.reach, p.answered, p.requests
                )
                .to_lowercase()
            }),
            duration_ms: run.duration_ms,
            requested_duration_ms: run.requested_duration_ms,
            window_end: run.window.map(|w| w.ended),
            outcome: run.outcome,
            ports: ex.ports.len(),
            ready_ports: ex.ready_ports.len(),
            http_requests: ex.http_requests,
            http_answered,
            http_paths: ex.http_paths.len(),
            script: ex.script.clone(),
            executed: executed.len(),
            image_programs: image_programs.as_ref().map(BTreeSet::len),
            image_programs_run,
            lost_events: profile.lost.ring_buffer > 0
                || profile.lost.map_full.values().any(|n| *n > 0),
            truncated_paths: profile.lost.truncated_paths,
            uprobe_errors: profile.tracer.uprobe_errors.len(),
            observed_anything: !profile.executables.is_empty()
                || !profile.loaded_libraries.is_empty(),
            production: ProductionUse::of(profile),
            kubescape: KubescapeRun::of(profile),
            factors: CoverageFactors {
                duration: 1.0,
                outcome: 1.0,
                exercise: 1.0,
                programs: 1.0,
                paths: 1.0,
            },
        };
        c.factors = c.compute_factors();
        if let Some(p) = &c.production {
            c.factors = p.factors(c.factors);
        }
        c
    }

    fn compute_factors(&self) -> CoverageFactors {
        // Duration: full marks from 90 % of the window (10 s when no window
        // was recorded), falling linearly to 0.5 for a run of no length. An
        // adaptive window that closed quiet ran as long as its evidence kept
        // changing, and then for the quiet period after every exerciser had
        // finished: by the window's own criterion a longer run would have
        // seen nothing more, so it has full marks too.
        let ran = if self.window_end == Some(WindowEnd::Quiet) {
            1.0
        } else if self.requested_duration_ms > 0 {
            ratio(self.duration_ms, self.requested_duration_ms)
        } else {
            ratio(self.duration_ms, 10_000)
        };
        let duration = 0.5 + 0.5 * (ran / 0.9).min(1.0);
        let outcome = match self.outcome {
            RunOutcome::StoppedAtEnd => 1.0,
            RunOutcome::Exited(0) | RunOutcome::TimedOut => 0.9,
            RunOutcome::Exited(_) | RunOutcome::Signaled(_) => 0.6,
        };
        let mut exercise = if self.ready_ports > 0 {
            let http: f64 = if self.http_answered == 0 {
                0.85
            } else if self.http_paths >= 3 {
                1.0
            } else {
                0.95
            };
            // a protocol probe's commands exercise a non-HTTP server as a
            // crawl exercises an HTTP one, never more
            self.probe_score.map_or(http, |p| http.max(p))
        } else if self.ports > 0 {
            0.6
        } else {
            0.85
        };
        match &self.script {
            Some(s) if s.exit_code == Some(0) => exercise = 1.0,
            Some(_) => exercise = f64::min(exercise, 0.7),
            None => {}
        }
        let programs = match self.image_programs {
            Some(all) => {
                let share = ratio(
                    u64::try_from(self.image_programs_run).unwrap_or(u64::MAX),
                    u64::try_from(all).unwrap_or(u64::MAX),
                );
                0.97 + 0.03 * (share / 0.05).min(1.0)
            }
            None => 0.97,
        };
        let paths = if self.truncated_paths > 0 { 0.9 } else { 1.0 };
        CoverageFactors {
            duration,
            outcome,
            exercise,
            programs,
            paths,
        }
    }

    /// The product of the coverage factors.
    pub fn factor(&self) -> f64 {
        self.factors.product() * self.kubescape.as_ref().map_or(1.0, |_| KUBESCAPE_FACTOR)
    }

    /// The most any runtime absence claim may have: [`LOST_EVENTS_CAP`]
    /// when events were lost, else 1.
    pub fn ceiling(&self) -> f64 {
        let started_unseen = self
            .production
            .as_ref()
            .is_some_and(|p| p.started_unseen > 0);
        if self.lost_events || started_unseen {
            LOST_EVENTS_CAP
        } else {
            1.0
        }
    }

    /// `base` scaled by the coverage factors and `extra`, capped by
    /// [`Coverage::ceiling`].
    pub fn scale(&self, base: f64, extra: f64) -> Confidence {
        conf((base * self.factor() * extra).min(self.ceiling()))
    }

    /// The run in a few words: "a 31.2 s run (30 s requested), still up at the
    /// end, 18 http requests (17 answered) to 3 paths".
    pub fn describe(&self) -> String {
        if let Some(k) = &self.kubescape {
            return k.describe(self);
        }
        if let Some(p) = self.production.as_ref().filter(|p| !p.with_sandbox) {
            return p.describe();
        }
        let mut s = format!("a {} run", secs(self.duration_ms));
        if self.window_end == Some(WindowEnd::Quiet) {
            let _ = write!(
                s,
                " (ended once the evidence stopped changing; up to {} allowed)",
                secs(self.requested_duration_ms)
            );
        } else if self.requested_duration_ms > 0 {
            let _ = write!(s, " ({} requested)", secs(self.requested_duration_ms));
        }
        let _ = match self.outcome {
            RunOutcome::StoppedAtEnd => write!(s, ", still up at the end"),
            RunOutcome::Exited(code) => write!(s, ", exited with code {code}"),
            RunOutcome::Signaled(sig) => write!(s, ", killed by signal {sig}"),
            RunOutcome::TimedOut => write!(s, ", stopped at the hard timeout"),
        };
        if self.ports > 0 {
            let _ = write!(s, ", {} of {} port(s) ready", self.ready_ports, self.ports);
        }
        if self.http_requests > 0 {
            let _ = write!(
                s,
                ", {} http request(s) ({} answered) to {} path(s)",
                self.http_requests, self.http_answered, self.http_paths
            );
        }
        if let Some(p) = &self.best_probe {
            let _ = write!(s, ", protocol probe {p}");
        }
        let _ = match &self.script {
            Some(ScriptOutcome {
                exit_code: Some(code),
                ..
            }) => write!(s, ", test script exited {code}"),
            Some(_) => write!(s, ", test script killed at the deadline"),
            None => Ok(()),
        };
        let _ = match self.image_programs {
            Some(all) => write!(
                s,
                ", {} of the image's {all} programs run",
                self.image_programs_run
            ),
            None => write!(s, ", {} program(s) run", self.executed),
        };
        if let Some(p) = &self.production {
            let _ = write!(s, ", and {}", p.describe());
        }
        s
    }

    /// The factors as one line for evidence.
    fn factors_fact(&self) -> String {
        let f = &self.factors;
        let mut s = format!(
            "duration {:.2}, outcome {:.2}, exercise {:.2}, programs {:.2}, paths {:.2}",
            f.duration, f.outcome, f.exercise, f.programs, f.paths
        );
        if self.kubescape.is_some() {
            let _ = write!(s, ", kubescape {KUBESCAPE_FACTOR:.2}");
        }
        s
    }
}

/// Production evidence in a profile (`run.source` observed): spans of
/// running containers vexxy's tracer attached to, under the traffic they
/// really get. It changes how a run counts (see "Production evidence" in
/// `docs/confidence.md`): real use needs no exerciser, so the exercise and
/// outcome factors are full, and the duration factor comes from the
/// observed time ([`ProductionUse::duration_factor`]) instead of the
/// requested window. Merged with a sandbox run, each factor is the better
/// of the two parts'.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductionUse {
    /// The observed spans (container, start, length), in profile order.
    pub spans: Vec<EvidenceSpan>,
    /// The wall-clock time they cover in milliseconds: the union of their
    /// intervals, so two replicas observed for the same hour count one
    /// hour (more containers are not more time of the day's traffic).
    pub observed_ms: u64,
    /// A sandbox run is part of the profile too.
    pub with_sandbox: bool,
    /// Processes that were already running when the tracer attached, with
    /// no sandbox run in the profile to have seen a start-up: what they did
    /// at start-up (programs run once, modules imported, libraries opened
    /// and closed) is missing, so absence claims are capped.
    pub started_unseen: u64,
}

/// Observed seconds at which the production duration factor is full:
/// 10^5 s, about 28 hours — a whole daily cycle of traffic (nightly jobs,
/// backups, the peak hours) and then some.
pub const PRODUCTION_FULL_SECS: f64 = 100_000.0;

impl ProductionUse {
    /// The production use `profile` records; `None` unless its source is
    /// observed. A profile without observed spans counts its run as one.
    pub fn of(profile: &ExecutionProfile) -> Option<Self> {
        let run = &profile.run;
        if run.source != ProfileSource::Observed {
            return None;
        }
        let mut spans: Vec<EvidenceSpan> = run
            .spans
            .iter()
            .filter(|s| s.source == ProfileSource::Observed)
            .cloned()
            .collect();
        if spans.is_empty() {
            spans.push(EvidenceSpan {
                source: ProfileSource::Observed,
                target: run.image.clone(),
                started_at: run.started_at.clone(),
                duration_ms: run.duration_ms,
            });
        }
        let observed_ms = wall_clock_ms(&spans);
        let with_sandbox = run.spans.iter().any(|s| s.source == ProfileSource::Sandbox);
        Some(Self {
            spans,
            observed_ms,
            with_sandbox,
            started_unseen: if with_sandbox {
                0
            } else {
                profile.lost.running_before_attach
            },
        })
    }

    /// The duration factor of `observed_ms` of production: `0.5 + 0.1 ×
    /// log10(seconds)` within `0.5..=1`. Each tenfold longer observation
    /// adds the same 0.1: new code paths show up quickly at first and
    /// ever more rarely (a rare request, a daily job), so an hour is worth
    /// much more than seconds and a week little more than a day. 1 s →
    /// 0.5, 10 s → 0.6, 100 s → 0.7, ~17 min → 0.8, ~2.8 h → 0.9, ~28 h
    /// ([`PRODUCTION_FULL_SECS`]) → 1.
    #[allow(clippy::cast_precision_loss)]
    pub fn duration_factor(observed_ms: u64) -> f64 {
        let secs = observed_ms as f64 / 1000.0;
        if secs <= 1.0 {
            return 0.5;
        }
        (0.5 + 0.5 * secs.log10() / PRODUCTION_FULL_SECS.log10()).clamp(0.5, 1.0)
    }

    /// The factors of a profile with production use, from those its run
    /// fields give (`run`): exercise and outcome full, duration from the
    /// observed time, or the sandbox run's when that is better.
    fn factors(&self, run: CoverageFactors) -> CoverageFactors {
        let observed = Self::duration_factor(self.observed_ms);
        CoverageFactors {
            duration: if self.with_sandbox {
                observed.max(run.duration)
            } else {
                observed
            },
            outcome: 1.0,
            exercise: 1.0,
            programs: run.programs,
            paths: run.paths,
        }
    }

    /// "2 min 5 s of production traffic observed in 2 container(s)".
    pub fn describe(&self) -> String {
        let targets: BTreeSet<&str> = self.spans.iter().map(|s| s.target.as_str()).collect();
        format!(
            "{} of production traffic observed in {} container(s)",
            span_length(self.observed_ms),
            targets.len()
        )
    }

    /// The spans for evidence: "ns/abc from 2026-01-01T00:00:00Z for 5 s;
    /// …" (at most [`SAMPLE`], then how many more).
    fn spans_fact(&self) -> String {
        let all: Vec<String> = self
            .spans
            .iter()
            .map(|s| {
                format!(
                    "{} from {} for {}",
                    s.target,
                    s.started_at,
                    span_length(s.duration_ms)
                )
            })
            .collect();
        let mut out = all
            .iter()
            .take(SAMPLE)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("; ");
        if all.len() > SAMPLE {
            let _ = write!(out, " (+{} more)", all.len() - SAMPLE);
        }
        out
    }
}

/// The wall-clock time spans cover: the length of the union of their
/// intervals. A span whose start does not parse as RFC 3339 counts on its
/// own (never overlapping another).
fn wall_clock_ms(spans: &[EvidenceSpan]) -> u64 {
    let mut intervals: Vec<(i128, i128)> = Vec::with_capacity(spans.len());
    let mut unplaced = 0u64;
    for s in spans {
        match time::OffsetDateTime::parse(
            &s.started_at,
            &time::format_description::well_known::Rfc3339,
        ) {
            Ok(start) => {
                let from = start.unix_timestamp_nanos() / 1_000_000;
                intervals.push((from, from + i128::from(s.duration_ms)));
            }
            Err(_) => unplaced = unplaced.saturating_add(s.duration_ms),
        }
    }
    intervals.sort_unstable();
    let mut total: i128 = 0;
    let mut current: Option<(i128, i128)> = None;
    for (from, to) in intervals {
        current = match current {
            Some((f, t)) if from <= t => Some((f, t.max(to))),
            Some((f, t)) => {
                total += t - f;
                Some((from, to))
            }
            None => Some((from, to)),
        };
    }
    if let Some((f, t)) = current {
        total += t - f;
    }
    u64::try_from(total)
        .unwrap_or(u64::MAX)
        .saturating_add(unplaced)
}

/// A span's length: "5 s", "2 min 5 s", "3 h 20 min", "2 d 4 h".
fn span_length(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {sec} s")
    } else {
        secs(ms)
    }
}

/// Production evidence on an opinion's evidence: where the runtime
/// evidence came from and the observed spans.
fn with_production(e: Evidence, coverage: &Coverage) -> Evidence {
    match &coverage.production {
        None => e,
        Some(p) => {
            let e = if p.started_unseen > 0 {
                e.fact(
                    "started_before_observation",
                    format!(
                        "{} process(es) were already running when the tracer attached and no sandbox run covers a start-up: what they did at start-up was not seen; the confidence of absence is capped",
                        p.started_unseen
                    ),
                )
            } else {
                e
            };
            e.fact(
                "runtime_source",
                if p.with_sandbox {
                    "observed in production, merged with a sandbox run"
                } else {
                    "observed in production"
                },
            )
            .fact("production_observed", p.describe())
            .fact("production_spans", p.spans_fact())
        }
    }
}

/// What a runtime verdict's notes add for production evidence.
fn production_note(coverage: &Coverage) -> String {
    coverage
        .production
        .as_ref()
        .map(|p| format!("; runtime evidence from production: {}", p.describe()))
        .unwrap_or_default()
}

#[allow(clippy::cast_precision_loss)]
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 1.0;
    }
    part as f64 / whole as f64
}

/// Milliseconds as seconds with at most one (truncated) decimal.
fn secs(ms: u64) -> String {
    let (whole, tenths) = (ms / 1000, (ms % 1000) / 100);
    if tenths == 0 {
        format!("{whole} s")
    } else {
        format!("{whole}.{tenths} s")
    }
}

/// The merged-/usr form of a path (`/lib/x` → `/usr/lib/x`), the key under
/// which listed, canonical and traced paths meet. Merging only ever adds
/// matches, so on an image without merged /usr it can only make a package
/// look used, never unused.
fn merged(path: &str) -> Cow<'_, str> {
    const TOP: &[&str] = &["/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/"];
    if TOP.iter().any(|d| path.starts_with(d)) {
        Cow::Owned(format!("/usr{path}"))
    } else {
        Cow::Borrowed(path)
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn dir_name(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// The source file a Python bytecode file was compiled from:
/// `d/__pycache__/m.cpython-311.pyc` and `….opt-1.pyc` → `d/m.py`, and the
/// legacy `d/m.pyc` → `d/m.py`.
fn python_source_of(pyc: &str) -> Option<String> {
    let stem = pyc.strip_suffix(".pyc")?;
    let (dir, name) = stem.rsplit_once('/')?;
    match dir.strip_suffix("/__pycache__") {
        Some(parent) => {
            let name = match name.rsplit_once(".opt-") {
                Some((n, level))
                    if !level.is_empty() && level.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    n
                }
                _ => name,
            };
            let (module, _tag) = name.rsplit_once('.')?;
            (!module.is_empty()).then(|| format!("{parent}/{module}.py"))
        }
        None => (!name.is_empty()).then(|| format!("{stem}.py")),
    }
}

/// What kind of code a file is, from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CodeKind {
    /// A file in a `bin`, `sbin`, `libexec` or `cgi-bin` directory.
    Program,
    /// A shared object (ELF library, Python or Node extension, the dynamic loader).
    Native,
    /// Interpreted code: scripts, modules, bytecode, archives of classes.
    Module,
    /// Other code that does not run in a container by being opened (static
    /// archives, kernel modules, init scripts, systemd units).
    Other,
}

impl CodeKind {
    fn of(path: &str) -> Option<Self> {
        const MODULE: &[&str] = &[
            ".py", ".pyc", ".pl", ".pm", ".sh", ".rb", ".js", ".mjs", ".cjs", ".jar", ".class",
            ".war", ".php", ".lua", ".tcl", ".wasm",
        ];
        if !looks_like_code(path) {
            return None;
        }
        let file = file_name(path);
        Some(if is_program_path(path) {
            Self::Program
        } else if file.ends_with(".so")
            || file.contains(".so.")
            || file.ends_with(".node")
            || path.contains("/ld-linux")
        {
            Self::Native
        } else if MODULE.iter().any(|e| file.ends_with(e)) {
            Self::Module
        } else {
            Self::Other
        })
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Program => "program(s)",
            Self::Native => "shared object(s)",
            Self::Module => "module(s) or script(s)",
            Self::Other => "other code file(s)",
        }
    }
}

/// How the run used one path.
#[derive(Clone, Debug, Default)]
struct Use {
    /// The path as the profile names it.
    seen_as: String,
    executed: u64,
    /// An executed program whose ELF interpreter this is.
    interpreter_of: Option<String>,
    mapped: u64,
    opened: u64,
    /// Bytecode opened in place of this source file.
    bytecode: Option<String>,
}

/// The run's paths indexed by their merged-/usr form: built once per run.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    uses: HashMap<String, Use>,
    /// Packages built from a source package whose code ran, with how
    /// ("executed /usr/bin/x (1×)"): what the sibling rule asks of every
    /// finding, computed once per run.
    ran: HashMap<String, String>,
}

impl Observed {
    /// Indexes the run's paths. Each traced path also counts for every
    /// other name of the same file: the symlinks it went through, the file
    /// they lead to, and that file's hard links.
    pub(crate) fn of(profile: &ExecutionProfile, links: &ImageLinks) -> Self {
        let mut o = Self::default();
        for e in &profile.executables {
            let n = e.count.max(1);
            o.each_name(links, &e.path, |u| u.executed += n);
            if let Some(interp) = &e.interpreter {
                o.each_name(links, interp, |u| {
                    u.interpreter_of.get_or_insert_with(|| e.path.clone());
                });
            }
        }
        for l in &profile.loaded_libraries {
            let n = l.mappings.max(1);
            o.each_name(links, &l.path, |u| u.mapped += n);
        }
        for f in &profile.files {
            let n = f.opens.max(1);
            o.each_name(links, &f.path, |u| u.opened += n);
            if let Some(source) = python_source_of(&f.path) {
                o.each_name(links, &source, |u| {
                    u.bytecode.get_or_insert_with(|| f.path.clone());
                });
            }
        }
        o
    }

    /// Records, once per run, which packages with a source package ran
    /// (for [`sibling_that_ran`]).
    pub(crate) fn with_packages(
        mut self,
        inventory: Option<&Inventory>,
        facts: &ReachFacts,
    ) -> Self {
        let Some(inventory) = inventory else {
            return self;
        };
        let ran: HashMap<String, String> = inventory
            .packages()
            .iter()
            .filter(|p| p.source.is_some())
            .filter_map(|p| {
                let u = Usage::of(p, &self, facts);
                let how = if let Some(e) = u.executed.first() {
                    format!("executed {e}")
                } else if let Some((m, _, _)) = u.mapped.first() {
                    format!("mapped {m}")
                } else if let Some(m) = u.modules.first() {
                    format!("loaded {m}")
                } else {
                    return None;
                };
                Some((p.name.clone(), how))
            })
            .collect();
        self.ran = ran;
        self
    }

    /// Applies `update` to the use of `path` and of every other name of the
    /// file it leads to.
    fn each_name(&mut self, links: &ImageLinks, path: &str, mut update: impl FnMut(&mut Use)) {
        let resolved = links.resolve(path);
        let mut names: Vec<&str> = vec![path];
        names.extend(resolved.via.iter().map(String::as_str));
        if resolved.path != path {
            names.push(&resolved.path);
        }
        names.extend(
            links
                .hardlinks_of(&resolved.path)
                .iter()
                .map(String::as_str),
        );
        let mut done: BTreeSet<Cow<'_, str>> = BTreeSet::new();
        for name in names {
            if done.insert(merged(name)) {
                update(self.slot_as(name, path));
            }
        }
    }

    /// The opened paths, as traced (a path only named through a link
    /// appears once, under its traced name).
    fn opened(&self) -> impl Iterator<Item = (&str, &Use)> {
        self.uses
            .iter()
            .filter(|(_, u)| u.opened > 0)
            .map(|(k, u)| (k.as_str(), u))
    }

    /// The use of `path`, shown as `traced` (the name the run recorded).
    fn slot_as(&mut self, path: &str, traced: &str) -> &mut Use {
        self.uses
            .entry(merged(path).into_owned())
            .or_insert_with(|| Use {
                seen_as: traced.to_owned(),
                ..Use::default()
            })
    }

    fn get(&self, path: &str) -> Option<&Use> {
        self.uses.get(merged(path).as_ref())
    }
}

/// What the run did with one package's files.
#[derive(Debug, Default)]
struct Usage<'p> {
    /// The package's name.
    name: &'p str,
    /// Distinct files (by merged-/usr form) the package owns.
    keys: BTreeSet<Cow<'p, str>>,
    /// Code files by kind.
    kinds: BTreeMap<CodeKind, usize>,
    executed: Vec<String>,
    /// Mapped executable (not executed): (path as traced, owned path, mappings).
    mapped: Vec<(String, &'p str, u64)>,
    modules: Vec<String>,
    read_only: Vec<String>,
    data: Vec<String>,
    /// Package metadata files opened (`METADATA`, `package.json`, a
    /// `.gemspec`): package managers and module loaders read these for
    /// every installed package, so reading them is not use.
    metadata: Vec<String>,
    /// The security-relevant data the package holds ("CA certificates"),
    /// when a `[[security_data]]` entry names it.
    security: Option<&'p SecurityData>,
    /// Outer archives of the package's nested archives (`outer!/entry`
    /// markers) that the run opened or mapped: the class loader reads
    /// nested archives through the outer one, so which of them it read is
    /// not visible in file events.
    in_opened_archive: Vec<String>,
}

/// Whether a path is a package's metadata, which package managers and
/// module loaders read for every installed package (Python's
/// `importlib.metadata`, RubyGems' stub scan, Node's resolution of
/// `package.json`).
fn is_package_metadata(path: &str) -> bool {
    let file = file_name(path);
    path.contains(".dist-info/")
        || path.contains(".egg-info/")
        || file.ends_with(".egg-info")
        || file.ends_with(".gemspec")
        || (file.ends_with(".gem") && path.contains("/cache/"))
        || ((file == "package.json" || file == "composer.json") && path.contains("/node_modules/"))
        || (file == "composer.json" && path.contains("/vendor/"))
}

/// The separator of a nested archive's virtual path (`app.jar!/BOOT-INF/lib/x.jar`),
/// as vexxy-catalog writes it.
const NESTED_ARCHIVE: &str = "!/";

impl<'p> Usage<'p> {
    fn of(p: &'p Package, observed: &Observed, facts: &'p ReachFacts) -> Self {
        let mut u = Self {
            name: &p.name,
            security: facts
                .security_data
                .iter()
                .find(|d| d.covers_package(&p.name)),
            ..Self::default()
        };
        // Outer archives this package is nested in: their use is not this
        // package's use (see `in_opened_archive`).
        let outers: BTreeSet<&str> = p
            .files
            .iter()
            .filter_map(|f| f.split_once(NESTED_ARCHIVE).map(|(outer, _)| outer))
            .collect();
        for file in &p.files {
            if let Some((outer, _)) = file.split_once(NESTED_ARCHIVE) {
                if u.keys.insert(Cow::Borrowed(file.as_str())) {
                    *u.kinds.entry(CodeKind::Module).or_insert(0) += 1;
                }
                if let Some(x) = observed
                    .get(outer)
                    .filter(|x| x.opened > 0 || x.mapped > 0 || x.executed > 0)
                {
                    u.in_opened_archive.push(x.seen_as.clone());
                }
                continue;
            }
            if outers.contains(file.as_str()) {
                u.keys.insert(merged(file));
                continue;
            }
            if !u.keys.insert(merged(file)) {
                continue;
            }
            let kind = CodeKind::of(file);
            // A symlink the package owns is used when the file it leads to
            // is (an owned name of that file); so is a hard link.
            let resolved = facts.links.resolve(file);
            let used = observed
                .get(file)
                .or_else(|| observed.get(&resolved.path))
                .or_else(|| {
                    facts
                        .links
                        .hardlinks_of(&resolved.path)
                        .iter()
                        .find_map(|h| observed.get(h))
                });
            let ran =
                used.is_some_and(|x| x.executed > 0 || x.interpreter_of.is_some() || x.mapped > 0);
            if let Some(k) = kind.or(ran.then_some(CodeKind::Program)) {
                *u.kinds.entry(k).or_insert(0) += 1;
            }
            let Some(x) = used else { continue };
            // The owned name, and the traced one when the run named the
            // file otherwise (a symlink, a hard link).
            let seen = if merged(file) == merged(&x.seen_as) {
                x.seen_as.clone()
            } else {
                format!("{file} (as {})", x.seen_as)
            };
            if x.executed > 0 {
                u.executed.push(format!("{seen} ({}×)", x.executed));
            } else if let Some(program) = &x.interpreter_of {
                u.executed
                    .push(format!("{seen} (interpreter of {program})"));
            } else if x.mapped > 0 {
                u.mapped.push((x.seen_as.clone(), file.as_str(), x.mapped));
            } else if x.opened > 0 || x.bytecode.is_some() {
                let shown = match &x.bytecode {
                    Some(pyc) if x.opened == 0 => format!("{seen} (as {pyc})"),
                    _ => seen,
                };
                match kind {
                    Some(CodeKind::Program | CodeKind::Module) => u.modules.push(shown),
                    Some(CodeKind::Native | CodeKind::Other) => u.read_only.push(shown),
                    None if is_package_metadata(file) => u.metadata.push(shown),
                    None => u.data.push(shown),
                }
            }
        }
        // Security-relevant data also lives in files generated from the
        // package after installation (a CA bundle), which it does not list.
        if let Some(security) = u.security {
            let mut generated: Vec<String> = observed
                .opened()
                .filter(|(key, _)| security.covers_path(key) && !u.keys.contains(*key))
                .map(|(_, x)| x.seen_as.clone())
                .collect();
            generated.sort();
            generated.dedup();
            u.data.extend(generated);
        }
        u
    }

    fn code_files(&self) -> usize {
        self.kinds.values().sum()
    }

    fn kinds_text(&self) -> String {
        self.kinds
            .iter()
            .map(|(k, n)| format!("{n} {}", k.noun()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn owns(&self, path: &str) -> bool {
        self.keys.contains(merged(path).as_ref())
    }
}

/// Whether a probe on `probed` is a probe on the mapped object `mapped`:
/// the same file, or a soname link beside it (`libgd.so.3` for
/// `libgd.so.3.0.11`).
fn same_object(probed: &str, mapped: &str) -> bool {
    let (p, m) = (merged(probed), merged(mapped));
    if p == m {
        return true;
    }
    if dir_name(&p) != dir_name(&m) {
        return false;
    }
    let (pf, mf) = (file_name(&p), file_name(&m));
    mf.strip_prefix(pf).is_some_and(|r| r.starts_with('.'))
        || pf.strip_prefix(mf).is_some_and(|r| r.starts_with('.'))
}

/// Whether an uprobe error concerns this library or one of its probes.
fn error_concerns(err: &str, library: &str, probes: &[&FunctionCalls]) -> bool {
    let name = file_name(library);
    err.contains(library)
        || (!name.is_empty() && err.contains(name))
        || probes.iter().any(|f| {
            err.contains(f.library.as_str())
                || err.contains(file_name(&f.library))
                || err.starts_with(&format!("{}:", f.symbol))
        })
}

/// "a, b, c (+4 more)".
fn sample(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(SAMPLE)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SAMPLE {
        let _ = write!(s, " (+{} more)", items.len() - SAMPLE);
    }
    s
}

/// What static analysis adds to a "not used" claim.
enum Outlook {
    /// Static analysis says the entrypoint loads it: the run contradicts it.
    Contradiction(String),
    /// A multiplier with the reasons behind it.
    Factor(f64, Vec<String>),
}

fn static_outlook(cx: &Context<'_>, name: &str) -> Outlook {
    let mut factor = 1.0;
    let mut why = Vec::new();
    if let Some(elf) = &cx.facts.elf {
        match elf.packages.get(name) {
            Some(PackageReach::FromEntrypoint { object, chain }) => {
                return Outlook::Contradiction(format!(
                    "static analysis finds {object} of {name} in the entrypoint's dependency closure ({}), but the traced run never mapped it; the run may not have started the analysed entrypoint, so the contradiction needs a review",
                    chain.join(" -> ")
                ));
            }
            Some(PackageReach::FromOtherExecutables { count, .. }) => {
                factor *= STATIC_OTHER_EXECUTABLES;
                why.push(format!(
                    "{count} other program(s) of the image load it; none of them ran"
                ));
            }
            Some(PackageReach::OnlyViaPlugins { plugins }) => {
                if plugins.iter().any(|(_, v)| *v == LoaderVerdict::Unknown) {
                    if elf.entry_dlopen_callers.is_empty() {
                        factor *= STATIC_UNEXPLAINED_PLUGIN;
                        why.push("only a plugin no loader explains reaches it".to_owned());
                    } else {
                        factor *= STATIC_DLOPEN_POSSIBLE;
                        why.push("a plugin that needs it could be loaded with dlopen by the entrypoint under other input or configuration".to_owned());
                    }
                } else {
                    why.push("static analysis agrees: only plugins the configuration does not load reach it".to_owned());
                }
            }
            Some(PackageReach::Unreferenced) => {
                why.push(
                    "static analysis agrees: nothing in the image links or loads it".to_owned(),
                );
            }
            Some(PackageReach::NoElf) | None => {}
        }
    }
    for r in cx
        .facts
        .rules
        .iter()
        .filter(|r| r.selector.matches(cx.finding))
    {
        if matches!(r.status, Status::Affected | Status::UnderInvestigation) {
            factor *= STATIC_RULE_COULD_ENABLE;
            why.push(format!(
                "configuration rule {} says the configuration could use it",
                r.rule_id
            ));
        }
    }
    Outlook::Factor(factor, why)
}

fn inconclusive(name: &str, observation: String, reason: String) -> Opinion {
    Opinion::Note(
        Evidence::new(RUNTIME, EvidenceSource::Runtime, observation)
            .about(name.to_owned())
            .fact("inconclusive", reason),
    )
}

/// What the function probes say about a package's mapped objects.
#[derive(Debug, Default)]
struct Probes<'f> {
    /// Probed functions of the package that were called: "lib:symbol (n×)".
    entered: Vec<String>,
    /// Mapped objects whose probes all attached, with those probes.
    idle: Vec<(String, Vec<&'f FunctionCalls>)>,
    /// Mapped objects without a usable probe: "path (n mapping(s))".
    unprobed: Vec<String>,
}

impl<'f> Probes<'f> {
    fn of(profile: &'f ExecutionProfile, usage: &Usage<'_>) -> Self {
        let on_package: Vec<&FunctionCalls> = profile
            .functions
            .iter()
            .filter(|f| {
                usage.owns(&f.library)
                    || usage
                        .mapped
                        .iter()
                        .any(|(m, _, _)| same_object(&f.library, m))
            })
            .collect();
        let mut out = Self {
            entered: on_package
                .iter()
                .filter(|f| f.calls > 0)
                .map(|f| format!("{}:{} ({}×)", f.library, f.symbol, f.calls))
                .collect(),
            ..Self::default()
        };
        for (traced, owned, mappings) in &usage.mapped {
            let on_it: Vec<&FunctionCalls> = on_package
                .iter()
                .copied()
                .filter(|f| same_object(&f.library, traced) || same_object(&f.library, owned))
                .collect();
            let failed = profile
                .tracer
                .uprobe_errors
                .iter()
                .any(|e| error_concerns(e, traced, &on_it) || error_concerns(e, owned, &on_it));
            // Only a library probed completely can be "never entered": a
            // partial probe set misses calls to the functions left out.
            let complete = profile
                .tracer
                .complete_libraries
                .iter()
                .any(|c| same_object(c, traced) || same_object(c, owned));
            if on_it.is_empty() || failed || !complete {
                out.unprobed
                    .push(format!("{traced} ({mappings} mapping(s))"));
            } else {
                out.idle.push((traced.clone(), on_it));
            }
        }
        out
    }
}

/// The runtime provider: see the module documentation.
pub(crate) fn runtime(cx: &Context<'_>) -> Vec<Opinion> {
    let (Some(profile), Some(coverage), Some(observed), Some(p)) =
        (cx.profile, cx.coverage, cx.observed, cx.installed)
    else {
        return Vec::new();
    };
    let usage = Usage::of(p, observed, cx.facts);
    let name = p.name.as_str();
    if usage.code_files() == 0 {
        if !usage.data.is_empty() {
            return data_read(cx, &usage, coverage);
        }
        if usage.security.is_some() && !p.files.is_empty() {
            return data_not_read(cx, &usage, coverage);
        }
        return Vec::new();
    }
    let probes = Probes::of(profile, &usage);
    let code_ran = |confidence: f64, observation: String, how: &str| {
        code_ran(cx, &usage, &probes, coverage, confidence, observation, how)
    };
    if !usage.executed.is_empty() {
        return code_ran(
            EXECUTED_CONFIDENCE,
            format!(
                "the traced run executed {} file(s) of {name}: {}",
                usage.executed.len(),
                sample(&usage.executed)
            ),
            "executed",
        );
    }
    if !probes.entered.is_empty() {
        return code_ran(
            ENTERED_CONFIDENCE,
            format!(
                "probed functions of {name} were called in the traced run: {}",
                sample(&probes.entered)
            ),
            "probed functions were called",
        );
    }
    if !probes.unprobed.is_empty() {
        return code_ran(
            MAPPED_CONFIDENCE,
            format!(
                "the traced run mapped {} of {name} executable: {}; no function probe shows its code stayed idle",
                if probes.unprobed.len() == 1 { "a shared object" } else { "shared objects" },
                sample(&probes.unprobed)
            ),
            "mapped into the workload",
        );
    }
    if !usage.modules.is_empty() {
        return code_ran(
            MODULE_CONFIDENCE,
            format!(
                "the traced run loaded {} module or script file(s) of {name}, e.g. {}",
                usage.modules.len(),
                sample(&usage.modules)
            ),
            "modules loaded",
        );
    }
    if !usage.in_opened_archive.is_empty() {
        return vec![inconclusive(
            name,
            format!(
                "{name} is an archive nested in {}, which the traced run opened",
                sample(&usage.in_opened_archive)
            ),
            format!("{name} is loaded, if at all, through the archive it is nested in; file events show that archive opened but not which nested archives the class loader read, so the run shows {name} neither used nor unused"),
        )];
    }
    if !usage.data.is_empty() {
        return data_read(cx, &usage, coverage);
    }
    if !probes.idle.is_empty() {
        return absence_caps(cx, p, &usage, never_entered(name, &probes.idle, coverage));
    }
    if !usage.read_only.is_empty() && coverage.kubescape.is_some() {
        return kubescape_opened_native(name, &usage.read_only, coverage);
    }
    if !usage.read_only.is_empty() {
        return vec![inconclusive(
            name,
            format!(
                "the traced run opened {} of {name} but never mapped it executable",
                sample(&usage.read_only)
            ),
            format!("{name}'s shared objects were read but never mapped executable in the traced run; whether its code runs needs a review"),
        )];
    }
    absence_caps(cx, p, &usage, not_used(cx, name, &usage, coverage))
}

/// A sibling binary package (same source package, another name) whose
/// code ran in the traced run: "name (how)".
fn sibling_that_ran(cx: &Context<'_>, p: &Package) -> Option<String> {
    let (Some(inventory), Some(observed), Some(source)) =
        (cx.inventory, cx.observed, p.source.as_ref())
    else {
        return None;
    };
    inventory
        .packages()
        .iter()
        .filter(|q| q.name != p.name && q.source.as_ref().is_some_and(|s| s.name == source.name))
        .find_map(|q| {
            let how = observed.ran.get(&q.name)?;
            Some(format!("{} ({how})", q.name))
        })
}

/// Caps a runtime absence claim about `p` below the review threshold when
/// the run cannot stand behind it alone, saying why in its notes and
/// evidence: a sibling binary package ran ([`SIBLING_RAN_CAP`]), the
/// package holds security-relevant data, which programs read lazily
/// ([`SECURITY_DATA_ABSENCE_CAP`]), or the image had more symlinks than
/// were recorded ([`LINKS_TRUNCATED_CAP`]).
fn absence_caps(
    cx: &Context<'_>,
    p: &Package,
    usage: &Usage<'_>,
    mut opinions: Vec<Opinion>,
) -> Vec<Opinion> {
    if let Some(sibling) = sibling_that_ran(cx, p) {
        let source = p.source.as_ref().map_or("", |s| s.name.as_str());
        opinions = cap(
            opinions,
            SIBLING_RAN_CAP,
            &format!("but {sibling}, built from the same source package {source}, ran: the advisory is about {source}, and the vulnerable code may be in the package that ran"),
            Evidence::new(
                RUNTIME,
                EvidenceSource::Runtime,
                format!("another binary package of source {source} ran: {sibling}"),
            )
            .about(p.name.clone())
            .fact("sibling_ran", sibling.clone())
            .fact("source_package", source.to_owned()),
        );
    }
    if let Some(security) = usage.security {
        opinions = cap(
            opinions,
            SECURITY_DATA_ABSENCE_CAP,
            &format!("but {} is read lazily (the first outbound TLS connection, the first local time), which a run may never trigger", security.kind),
            Evidence::new(
                RUNTIME,
                EvidenceSource::Runtime,
                format!("{} holds security-relevant data ({})", p.name, security.kind),
            )
            .about(p.name.clone())
            .fact("security_data", security.kind.clone()),
        );
    }
    if cx.facts.links.truncated() {
        opinions = cap(
            opinions,
            LINKS_TRUNCATED_CAP,
            "but the image has more symlinks than were recorded, so a use through an unrecorded link would not be seen",
            Evidence::new(
                RUNTIME,
                EvidenceSource::Runtime,
                "the image's symlinks were recorded only in part",
            )
            .about(p.name.clone())
            .fact("links_truncated", "true"),
        );
    }
    opinions
}

/// Caps every `not_affected` verdict among `opinions` at `ceiling`, adding
/// `why` to its notes and `evidence` to its evidence.
fn cap(opinions: Vec<Opinion>, ceiling: f64, why: &str, evidence: Evidence) -> Vec<Opinion> {
    opinions
        .into_iter()
        .map(|o| match o {
            Opinion::Verdict(mut v) if v.status() == Status::NotAffected => {
                if v.confidence.get() > ceiling {
                    v.confidence = conf(ceiling);
                }
                v.notes = format!("{}; {why}", v.notes);
                v.evidence.push(evidence.clone());
                Opinion::Verdict(v)
            }
            other => other,
        })
        .collect()
}

/// `affected`: a data file of the package was read in the run. Vetoes the
/// static "ships only data" claim and every "not in the execute path" one.
fn data_read(cx: &Context<'_>, usage: &Usage<'_>, coverage: &Coverage) -> Vec<Opinion> {
    let name = usage.name;
    let what = usage
        .security
        .map_or_else(|| "data".to_owned(), |s| s.kind.clone());
    let mut e = Evidence::new(
        RUNTIME,
        EvidenceSource::Runtime,
        format!(
            "the traced run read {} file(s) of {name}'s {what}: {}",
            usage.data.len(),
            sample(&usage.data)
        ),
    )
    .about(name.to_owned())
    .fact("data_files_opened", sample(&usage.data))
    .fact("data_files_opened_count", usage.data.len().to_string());
    if let Some(s) = usage.security {
        e = e
            .fact("security_data", s.kind.clone())
            .fact("security_data_rule", s.id.clone());
    }
    e = e.fact("run", coverage.describe());
    e = with_production(e, coverage);
    used(
        cx,
        e,
        DATA_READ_CONFIDENCE,
        format!(
            "the run read {name}'s {what}, and reading data is use{}",
            production_note(coverage)
        ),
        &[
            Justification::VulnerableCodeNotPresent,
            Justification::VulnerableCodeNotInExecutePath,
        ],
    )
}

/// `not_affected`: a package of security-relevant data none of whose files
/// (nor the files generated from it) was read during the run.
fn data_not_read(cx: &Context<'_>, usage: &Usage<'_>, coverage: &Coverage) -> Vec<Opinion> {
    let name = usage.name;
    let Some(security) = usage.security else {
        return Vec::new();
    };
    let run = coverage.describe();
    if !coverage.observed_anything {
        return vec![inconclusive(
            name,
            format!("the traced run ({run}) recorded no program start or executable mapping"),
            format!("the traced run recorded nothing running, so it says nothing about {name}"),
        )];
    }
    let mut e = Evidence::new(
        RUNTIME,
        EvidenceSource::Runtime,
        format!(
            "no file of {name} ({}) was read during {run}",
            security.kind
        ),
    )
    .about(name.to_owned())
    .fact("security_data", security.kind.clone())
    .fact("security_data_rule", security.id.clone())
    .fact("data_paths", security.paths.join(", "))
    .fact("coverage_factors", coverage.factors_fact());
    if coverage.lost_events {
        e = e.fact(
            "lost_events",
            "the tracer dropped events, so absence is weak evidence; the confidence is capped",
        );
    }
    e = with_production(e, coverage);
    let opinions = vec![Opinion::Verdict(
        Verdict::not_affected(
            Justification::VulnerableCodeNotInExecutePath,
            Decider::automated(RUNTIME),
        )
        .with_confidence(coverage.scale(NOT_USED_BASE, 1.0))
        .with_notes(format!(
            "{name}'s {} was never read while the image was exercised{}",
            security.kind,
            production_note(coverage)
        ))
        .with_evidence(e),
    )];
    match cx.installed {
        Some(p) => absence_caps(cx, p, usage, opinions),
        None => opinions,
    }
}

/// `affected`, and a veto of every "not in the execute path" claim.
fn code_ran(
    cx: &Context<'_>,
    usage: &Usage<'_>,
    probes: &Probes<'_>,
    coverage: &Coverage,
    confidence: f64,
    observation: String,
    how: &str,
) -> Vec<Opinion> {
    let name = usage.name;
    let mut e = Evidence::new(RUNTIME, EvidenceSource::Runtime, observation).about(name.to_owned());
    for (key, list) in [
        ("executed", &usage.executed),
        ("functions_entered", &probes.entered),
        ("mapped_without_probes", &probes.unprobed),
        ("modules_loaded", &usage.modules),
        ("data_files_opened", &usage.data),
    ] {
        if !list.is_empty() {
            e = e.fact(key, sample(list));
        }
    }
    if !usage.modules.is_empty() {
        e = e.fact("modules_loaded_count", usage.modules.len().to_string());
    }
    e = e.fact("run", coverage.describe());
    e = with_production(e, coverage);
    used(
        cx,
        e,
        confidence,
        format!(
            "{name}'s code ran in the traced run ({how}){}",
            production_note(coverage)
        ),
        &[Justification::VulnerableCodeNotInExecutePath],
    )
}

/// `affected` on `evidence` that the package was used, vetoing the
/// justifications that use contradicts.
fn used(
    cx: &Context<'_>,
    evidence: Evidence,
    confidence: f64,
    notes: String,
    vetoes: &[Justification],
) -> Vec<Opinion> {
    let mut out: Vec<Opinion> = vetoes
        .iter()
        .map(|j| Opinion::Veto {
            justification: *j,
            evidence: evidence.clone(),
        })
        .collect();
    out.push(Opinion::Verdict(
        Verdict::affected(
            crate::action_statement(cx.finding),
            Decider::automated(RUNTIME),
        )
        .with_confidence(conf(confidence))
        .with_notes(notes)
        .with_evidence(evidence),
    ));
    out
}

/// "Mapped, never entered": every mapped object carried probes, none was called.
fn never_entered(
    name: &str,
    idle: &[(String, Vec<&FunctionCalls>)],
    coverage: &Coverage,
) -> Vec<Opinion> {
    let functions: usize = idle.iter().map(|(_, on)| on.len()).sum();
    let libs: Vec<String> = idle.iter().map(|(l, _)| l.clone()).collect();
    let symbols: Vec<String> = idle
        .iter()
        .flat_map(|(_, on)| on.iter().map(|f| f.symbol.clone()))
        .collect();
    let extra = if coverage.uprobe_errors > 0 {
        UPROBE_ERRORS_FACTOR
    } else {
        1.0
    };
    let mut e = Evidence::new(
        RUNTIME_PROBES,
        EvidenceSource::Runtime,
        format!(
            "mapped, never entered: {} was mapped during {}, but none of the {functions} probed function(s) was called",
            sample(&libs),
            coverage.describe()
        ),
    )
    .about(name.to_owned())
    .fact("functions_probed", functions.to_string())
    .fact("symbols", sample(&symbols))
    .fact("coverage_factors", coverage.factors_fact());
    if coverage.lost_events {
        e = e.fact(
            "lost_events",
            "the tracer dropped events; the confidence is capped",
        );
    }
    if coverage.uprobe_errors > 0 {
        e = e.fact("uprobe_errors", coverage.uprobe_errors.to_string());
    }
    e = with_production(e, coverage);
    vec![Opinion::Verdict(
        Verdict::not_affected(
            Justification::VulnerableCodeNotInExecutePath,
            Decider::automated(RUNTIME_PROBES),
        )
        .with_confidence(coverage.scale(NEVER_ENTERED_BASE, extra))
        .with_notes(format!(
            "{name} is loaded, but none of its {functions} probed function(s) ran while the image was exercised{}",
            production_note(coverage)
        ))
        .with_evidence(e),
    )]
}

/// No code file of the package was used: `not_affected`, weighed by the
/// run's coverage and what static analysis says.
fn not_used(cx: &Context<'_>, name: &str, usage: &Usage<'_>, coverage: &Coverage) -> Vec<Opinion> {
    let run = coverage.describe();
    let observation = format!("no file of {name} was executed, mapped or loaded during {run}");
    if !coverage.observed_anything {
        return vec![inconclusive(
            name,
            format!("the traced run ({run}) recorded no program start or executable mapping"),
            format!("the traced run recorded nothing running, so it says nothing about {name}"),
        )];
    }
    let (factor, why) = match static_outlook(cx, name) {
        Outlook::Contradiction(reason) => return vec![inconclusive(name, observation, reason)],
        Outlook::Factor(f, why) => (f, why),
    };
    let mut e = Evidence::new(RUNTIME, EvidenceSource::Runtime, observation)
        .about(name.to_owned())
        .fact("code_files", usage.kinds_text())
        .fact("coverage_factors", coverage.factors_fact());
    if !usage.metadata.is_empty() {
        e = e.fact("metadata_files_opened", sample(&usage.metadata));
    }
    if !why.is_empty() {
        e = e.fact("static", why.join("; "));
    }
    if coverage.lost_events {
        e = e.fact(
            "lost_events",
            "the tracer dropped events, so absence is weak evidence; the confidence is capped",
        );
    }
    e = with_production(e, coverage);
    let data = if usage.data.is_empty() {
        ""
    } else {
        " (only data files were read)"
    };
    vec![Opinion::Verdict(
        Verdict::not_affected(
            Justification::VulnerableCodeNotInExecutePath,
            Decider::automated(RUNTIME),
        )
        .with_confidence(coverage.scale(NOT_USED_BASE, factor))
        .with_notes(format!(
            "{name}'s code never ran: none of its {} code file(s) was executed, mapped or loaded while the image was exercised{data}{}",
            usage.code_files(),
            production_note(coverage)
        ))
        .with_evidence(e),
    )]
}

// ---------------------------------------------------------------------
// Kubescape profiles: imported ApplicationProfile / ContainerProfile
// evidence (exec and open events only). See "Kubescape profiles" in
// docs/confidence.md.
// ---------------------------------------------------------------------

/// Multiplies every runtime absence claim of a profile imported from
/// Kubescape: its recorder sees exec and open events only (no mappings, no
/// function calls), is a third party whose profile vexxy cannot check, and
/// stops at the end of a learning window. With the exercise factor an
/// unexercised run gets (0.85: Kubescape records no traffic), the most
/// such a claim can have is 0.90 × 0.85 × 0.80 ≈ 0.61: below what a
/// sandbox run with the same numbers gives, never above.
pub const KUBESCAPE_FACTOR: f64 = 0.80;

/// A profile imported from Kubescape: the objects it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct KubescapeRun {
    /// The objects (and containers), as the profile's spans name them:
    /// "ApplicationProfile default/replicaset-nginx-7d9f (container nginx)".
    pub objects: Vec<String>,
    /// The longest learning period among them, in milliseconds (0 when
    /// none was recorded).
    pub learning_ms: u64,
}

impl KubescapeRun {
    /// The Kubescape objects `profile` was imported from; `None` unless its
    /// source is Kubescape.
    pub fn of(profile: &ExecutionProfile) -> Option<Self> {
        if profile.run.source != ProfileSource::Kubescape {
            return None;
        }
        let objects: BTreeSet<String> = profile
            .run
            .spans
            .iter()
            .filter(|s| s.source == ProfileSource::Kubescape)
            .map(|s| s.target.clone())
            .collect();
        let learning_ms = profile
            .run
            .spans
            .iter()
            .filter(|s| s.source == ProfileSource::Kubescape)
            .map(|s| s.duration_ms)
            .max()
            .unwrap_or(profile.run.duration_ms);
        Some(Self {
            objects: objects.into_iter().collect(),
            learning_ms,
        })
    }

    /// "Kubescape ApplicationProfile default/nginx (container nginx)
    /// (a 10 min learning period, 2 program(s) run; exec and open events
    /// only)".
    fn describe(&self, c: &Coverage) -> String {
        let objects = if self.objects.is_empty() {
            "a Kubescape profile".to_owned()
        } else {
            format!("Kubescape {}", sample(&self.objects))
        };
        let period = if self.learning_ms == 0 {
            "no learning period recorded".to_owned()
        } else {
            format!("a {} learning period", span_length(self.learning_ms))
        };
        let programs = match c.image_programs {
            Some(all) => format!("{} of the image's {all} programs run", c.image_programs_run),
            None => format!("{} program(s) run", c.executed),
        };
        format!("{objects} ({period}, {programs}; exec and open events only)")
    }
}

/// A Kubescape profile opened a shared object of the package. Kubescape
/// records no mappings, and the dynamic loader opens a library to map it:
/// the open is no proof the code ran, but it rules out "not in the execute
/// path" (a veto), and leaves the finding to a review.
fn kubescape_opened_native(name: &str, opened: &[String], coverage: &Coverage) -> Vec<Opinion> {
    let observation = format!(
        "{} opened {} of {name}; Kubescape records no mappings, so whether it was loaded is unknown",
        coverage.describe(),
        sample(opened)
    );
    let e = Evidence::new(RUNTIME, EvidenceSource::Runtime, observation)
        .about(name.to_owned())
        .fact("opened", sample(opened));
    vec![
        Opinion::Veto {
            justification: Justification::VulnerableCodeNotInExecutePath,
            evidence: e.clone(),
        },
        Opinion::Note(e.fact(
            "inconclusive",
            format!("a Kubescape profile shows {name}'s shared objects opened, as the loader does to load them; whether its code runs needs a review"),
        )),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytecode_maps_back_to_its_source() {
        for (pyc, want) in [
            (
                "/usr/lib/python3/dist-packages/flask/__pycache__/app.cpython-311.pyc",
                Some("/usr/lib/python3/dist-packages/flask/app.py"),
            ),
            (
                "/usr/lib/python3/dist-packages/flask/__pycache__/app.cpython-311.opt-1.pyc",
                Some("/usr/lib/python3/dist-packages/flask/app.py"),
            ),
            (
                "/usr/lib/python3/dist-packages/flask/__pycache__/__init__.cpython-311.opt-2.pyc",
                Some("/usr/lib/python3/dist-packages/flask/__init__.py"),
            ),
            (
                "/usr/lib/python2.7/os.pyc",
                Some("/usr/lib/python2.7/os.py"),
            ),
            ("/usr/lib/python3/x/__pycache__/noversion.pyc", None),
            ("/usr/lib/python3/x/app.py", None),
        ] {
            assert_eq!(python_source_of(pyc).as_deref(), want, "{pyc}");
        }
    }

    #[test]
    fn probes_on_soname_links_cover_the_real_file() {
        let d = "/usr/lib/x86_64-linux-gnu";
        assert!(same_object(
            &format!("{d}/libgd.so.3"),
            &format!("{d}/libgd.so.3.0.11")
        ));
        assert!(same_object(
            "/lib/x86_64-linux-gnu/libgd.so.3.0.11",
            &format!("{d}/libgd.so.3.0.11")
        ));
        assert!(!same_object(
            &format!("{d}/libssl.so.3"),
            &format!("{d}/libcrypto.so.3")
        ));
        assert!(!same_object(
            &format!("{d}/libgd.so.3"),
            &format!("{d}/libgdk.so.3")
        ));
    }

    #[test]
    fn code_kinds() {
        for (path, want) in [
            ("/usr/sbin/nginx", Some(CodeKind::Program)),
            (
                "/usr/lib/x86_64-linux-gnu/libtiff.so.6.0.1",
                Some(CodeKind::Native),
            ),
            (
                "/usr/lib/python3/dist-packages/_yaml.cpython-311-x86_64-linux-gnu.so",
                Some(CodeKind::Native),
            ),
            (
                "/usr/lib/python3/dist-packages/yaml/__init__.py",
                Some(CodeKind::Module),
            ),
            ("/usr/lib/x86_64-linux-gnu/libfoo.a", Some(CodeKind::Other)),
            ("/usr/share/doc/libtiff6/copyright", None),
            ("/etc/nginx/mime.types", None),
        ] {
            assert_eq!(CodeKind::of(path), want, "{path}");
        }
    }

    #[test]
    fn a_window_that_closed_quiet_has_full_duration_marks() {
        use vexxy_model::{ExerciseWindow, WindowMode};
        let mut p = ExecutionProfile::default();
        p.run.duration_ms = 5_000;
        p.run.requested_duration_ms = 30_000;
        let short = Coverage::of(&p, None);
        assert!(short.factors.duration < 0.7, "{:?}", short.factors);
        let window = |ended| ExerciseWindow {
            mode: WindowMode::Adaptive {
                quiet_ms: 3_000,
                minimum_ms: 5_000,
            },
            ended,
            last_evidence_ms: Some(400),
            exercised_ms: 600,
        };
        p.run.window = Some(window(WindowEnd::Quiet));
        let quiet = Coverage::of(&p, None);
        assert!((quiet.factors.duration - 1.0).abs() < f64::EPSILON);
        assert!(
            quiet.describe().starts_with(
                "a 5 s run (ended once the evidence stopped changing; up to 30 s allowed)"
            ),
            "{}",
            quiet.describe()
        );
        // a window that closed for another reason is measured as before
        for ended in [WindowEnd::Exited, WindowEnd::Maximum, WindowEnd::TimedOut] {
            p.run.window = Some(window(ended));
            assert_eq!(
                Coverage::of(&p, None).factors.duration,
                short.factors.duration,
                "{ended:?}"
            );
        }
    }

    #[test]
    fn coverage_factors_stay_in_range() {
        let mut p = ExecutionProfile::default();
        for outcome in [
            RunOutcome::StoppedAtEnd,
            RunOutcome::Exited(0),
            RunOutcome::Exited(1),
            RunOutcome::Signaled(9),
            RunOutcome::TimedOut,
        ] {
            for (d, r) in [(0, 0), (0, 30_000), (31_000, 30_000), (u64::MAX, 1), (5, 0)] {
                p.run.outcome = outcome;
                p.run.duration_ms = d;
                p.run.requested_duration_ms = r;
                let c = Coverage::of(&p, None);
                let f = c.factor();
                assert!(f > 0.0 && f <= 1.0, "{outcome:?} {d}/{r}: {f}");
                let s = c.scale(NOT_USED_BASE, 1.0).get();
                assert!((0.0..=1.0).contains(&s));
            }
        }
    }

    #[test]
    fn an_observation_that_missed_the_start_up_caps_absence_unless_a_sandbox_run_saw_one() {
        let observed = |spans: Vec<ProfileSource>| {
            let mut p = ExecutionProfile::default();
            p.run.source = ProfileSource::Observed;
            p.run.spans = spans
                .into_iter()
                .map(|source| EvidenceSpan {
                    source,
                    target: "k8s.io/a".into(),
                    started_at: "2026-01-01T00:00:00Z".into(),
                    duration_ms: 100_000_000,
                })
                .collect();
            p.lost.running_before_attach = 3;
            Coverage::of(&p, None)
        };
        let bare = observed(vec![ProfileSource::Observed]);
        assert_eq!(bare.production.as_ref().unwrap().started_unseen, 3);
        assert!((bare.ceiling() - LOST_EVENTS_CAP).abs() < 1e-9);
        assert!(bare.scale(1.0, 1.0).get() <= LOST_EVENTS_CAP);
        let merged = observed(vec![ProfileSource::Sandbox, ProfileSource::Observed]);
        assert_eq!(merged.production.as_ref().unwrap().started_unseen, 0);
        assert!((merged.ceiling() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn production_evidence_counts_observed_time_and_real_use() {
        // the curve: a tenth per tenfold, full from about a day
        for (ms, want) in [
            (0, 0.5),
            (1_000, 0.5),
            (10_000, 0.6),
            (100_000, 0.7),
            (3_600_000, 0.856),
            (100_000_000, 1.0),
            (u64::MAX, 1.0),
        ] {
            let f = ProductionUse::duration_factor(ms);
            assert!((f - want).abs() < 0.001, "{ms} ms: {f}");
        }
        let span_at = |source, target: &str, start: &str, ms| EvidenceSpan {
            source,
            target: target.into(),
            started_at: start.into(),
            duration_ms: ms,
        };
        let span = |source, target: &str, ms| span_at(source, target, "2026-01-01T00:00:00Z", ms);
        // a sandbox run: unchanged, no production
        let mut p = ExecutionProfile::default();
        p.run.duration_ms = 5_000;
        p.run.requested_duration_ms = 30_000;
        p.exercise.ports = vec![80];
        let sandbox = Coverage::of(&p, None);
        assert_eq!(sandbox.production, None);
        assert!(sandbox.factors.exercise < 1.0 && sandbox.factors.duration < 0.7);
        // observed alone: exercise and outcome full, duration from the spans
        p.run.source = ProfileSource::Observed;
        p.run.outcome = RunOutcome::Exited(1);
        // two replicas during the same hour are one hour of traffic; the
        // next hour adds one
        p.run.spans = vec![
            span(ProfileSource::Observed, "k8s.io/a", 3_600_000),
            span(ProfileSource::Observed, "k8s.io/b", 3_600_000),
        ];
        assert_eq!(
            Coverage::of(&p, None).production.unwrap().observed_ms,
            3_600_000
        );
        p.run.spans.push(span_at(
            ProfileSource::Observed,
            "k8s.io/a",
            "2026-01-01T01:00:00Z",
            3_600_000,
        ));
        let observed = Coverage::of(&p, None);
        let prod = observed.production.clone().unwrap();
        assert_eq!(prod.observed_ms, 7_200_000);
        assert!(!prod.with_sandbox);
        assert_eq!(observed.factors.exercise, 1.0);
        assert_eq!(observed.factors.outcome, 1.0);
        assert!(
            (observed.factors.duration - ProductionUse::duration_factor(7_200_000)).abs() < 1e-9
        );
        assert_eq!(
            observed.describe(),
            "2 h 0 min of production traffic observed in 2 container(s)"
        );
        // seconds of production are worth less than hours
        p.run.spans = vec![span(ProfileSource::Observed, "k8s.io/a", 5_000)];
        let brief = Coverage::of(&p, None);
        assert!(brief.factor() < observed.factor());
        // merged with a sandbox run: never worse than the run alone
        p.run.outcome = RunOutcome::StoppedAtEnd;
        p.run.window = Some(vexxy_model::ExerciseWindow {
            mode: vexxy_model::WindowMode::Adaptive {
                quiet_ms: 3_000,
                minimum_ms: 5_000,
            },
            ended: WindowEnd::Quiet,
            last_evidence_ms: Some(400),
            exercised_ms: 600,
        });
        p.run
            .spans
            .push(span(ProfileSource::Sandbox, "nginx:1", 5_000));
        let merged = Coverage::of(&p, None);
        assert!(merged.production.as_ref().unwrap().with_sandbox);
        assert_eq!(merged.factors.duration, 1.0);
        let mut alone = p.clone();
        alone.run.source = ProfileSource::Sandbox;
        alone.run.spans.clear();
        assert!(merged.factor() >= Coverage::of(&alone, None).factor());
        assert!(
            merged
                .describe()
                .ends_with(", and 5 s of production traffic observed in 1 container(s)"),
            "{}",
            merged.describe()
        );
        // the evidence names the source and the spans
        let e = with_production(
            Evidence::new(RUNTIME, EvidenceSource::Runtime, "x"),
            &merged,
        );
        let fact = |k: &str| {
            e.facts
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            fact("runtime_source"),
            Some("observed in production, merged with a sandbox run")
        );
        assert_eq!(
            fact("production_spans"),
            Some("k8s.io/a from 2026-01-01T00:00:00Z for 5 s")
        );
    }

    #[test]
    fn kubescape_profiles_never_outrank_a_sandbox_run() {
        let mut p = ExecutionProfile::default();
        p.executables.push(vexxy_model::ExecutedBinary {
            path: "/usr/sbin/nginx".into(),
            interpreter: None,
            count: 1,
        });
        p.run.duration_ms = 600_000;
        let sandbox = Coverage::of(&p, None);
        assert_eq!(sandbox.kubescape, None);
        p.run.source = ProfileSource::Kubescape;
        p.run.spans.push(EvidenceSpan {
            source: ProfileSource::Kubescape,
            target: "ApplicationProfile default/nginx (container nginx)".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 600_000,
        });
        let kubescape = Coverage::of(&p, None);
        assert!((kubescape.factor() - sandbox.factor() * KUBESCAPE_FACTOR).abs() < 1e-9);
        assert!(
            kubescape.scale(NOT_USED_BASE, 1.0).get() < sandbox.scale(NOT_USED_BASE, 1.0).get()
        );
        assert!(kubescape.scale(NOT_USED_BASE, 1.0).get() <= 0.62);
        assert_eq!(
            kubescape.describe(),
            "Kubescape ApplicationProfile default/nginx (container nginx) (a 10 min 0 s learning period, 1 program(s) run; exec and open events only)"
        );
        assert!(kubescape.factors_fact().ends_with(", kubescape 0.80"));
    }
}
