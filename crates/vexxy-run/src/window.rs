//! The exercise window: when the observing phase of a run closes.
//!
//! A fixed window closes at the requested duration. An adaptive one closes
//! once the evidence has stopped changing: every exerciser (port wait, HTTP
//! probe, test script) has finished, the tracer has seen no first sighting
//! (a program executed, a file opened or mapped, a failed open, a socket
//! address, a probed function entered) for the quiet period since then,
//! and the run is at least the minimum old. The requested duration stays
//! the maximum, the run's hard timeout the bound of everything.
//!
//! The decision ([`Window::decide`]) is a pure function of the times it is
//! given, and the observing loop ([`watch`]) reaches the clock, the tracer
//! and the workload only through [`Watch`], so both are tested with fake
//! time.

use std::time::{Duration, Instant};

use vexxy_model::{WindowEnd, WindowMode};
use vexxy_sandbox::ExitStatus;

use crate::RunError;

/// Default quiet period of an adaptive window.
///
/// Measured on the three test images, each run twice with a fixed 30 s
/// window and three times with an adaptive one (`docs/analyze.md`, "The
/// exercise window"): the last first sighting arrives while the exercisers
/// run, 0.07–0.09 s after the workload starts for nginx (with and without
/// the image filter) and 0.9–1.3 s for the Flask service (its imports, then
/// the probe's requests), within 0.1 s of the exercisers finishing.
/// The 30 s windows saw nothing after that: the same programs, mappings,
/// files, failed opens and sockets as the adaptive runs. Three seconds is
/// more than twice the longest stretch of startup evidence measured, sixty
/// drain intervals of the tracer (50 ms), and costs nothing on these images,
/// where the minimum closes the window.
pub const DEFAULT_QUIET: Duration = Duration::from_secs(3);

/// Default minimum of an adaptive window.
///
/// The floor for workloads that give the exercisers nothing to wait for (no
/// port, no script) and act late: a worker that connects after a delay, a
/// lazy import on a first timer tick. On the quiet period alone nginx's
/// window would close at about 3.1 s and the Flask service's at about 4.4 s;
/// the minimum closes all three test images' windows at 5.0 s, a cost of at
/// most 1.9 s per run, well inside the 10 s goal (nginx's whole analysis
/// takes 6.1–6.2 s against 31.4–31.5 s with a fixed 30 s window), for a
/// second chance at a slow start.
pub const DEFAULT_MINIMUM: Duration = Duration::from_secs(5);

/// The shortest quiet period accepted. The tracer reports evidence when it
/// drains its ring buffer (every 50 ms), so a shorter quiet period could
/// close the window on evidence already recorded in the kernel.
pub const MIN_QUIET: Duration = Duration::from_millis(500);

/// How a run's exercise window closes (besides the workload exiting and the
/// hard timeout). [`RunPlan::duration`](crate::RunPlan::duration) is the
/// window's length when fixed and its maximum when adaptive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowPolicy {
    /// Observe for the whole requested duration (`--fixed-window`; vexxy's
    /// only behaviour before adaptive windows).
    Fixed,
    /// Close once the evidence has stopped changing: every exerciser has
    /// finished, no new evidence arrived for `quiet` since then, and the
    /// window is at least `minimum` long (a minimum above the duration is
    /// the duration).
    Adaptive {
        /// How long the evidence must stay unchanged (`--quiet-period`).
        quiet: Duration,
        /// The shortest window (`--min-duration`).
        minimum: Duration,
    },
}

impl Default for WindowPolicy {
    /// Adaptive, with [`DEFAULT_QUIET`] and [`DEFAULT_MINIMUM`].
    fn default() -> Self {
        Self::ADAPTIVE
    }
}

impl WindowPolicy {
    /// The default adaptive policy.
    pub const ADAPTIVE: Self = Self::Adaptive {
        quiet: DEFAULT_QUIET,
        minimum: DEFAULT_MINIMUM,
    };

    /// Checks the policy on its own: a quiet period of at least
    /// [`MIN_QUIET`].
    pub fn check(&self) -> Result<(), WindowError> {
        match *self {
            Self::Adaptive { quiet, .. } if quiet < MIN_QUIET => {
                Err(WindowError::QuietTooShort { quiet })
            }
            _ => Ok(()),
        }
    }

    /// The policy as the profile records it.
    pub fn mode(&self) -> WindowMode {
        match *self {
            Self::Fixed => WindowMode::Fixed,
            Self::Adaptive { quiet, minimum } => WindowMode::Adaptive {
                quiet_ms: crate::millis(quiet),
                minimum_ms: crate::millis(minimum),
            },
        }
    }
}

/// Why a window policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The quiet period is below [`MIN_QUIET`].
    #[error(
        "window quiet period {} ms is below the {} ms floor (the tracer reports new evidence up to a drain interval late)",
        quiet.as_millis(),
        MIN_QUIET.as_millis()
    )]
    QuietTooShort {
        /// The quiet period asked for.
        quiet: Duration,
    },
}

/// One run's window: its policy and the times it is bounded by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    policy: WindowPolicy,
    /// When the workload started.
    opened: Instant,
    /// `opened` + the requested duration.
    maximum: Instant,
    /// The run's hard deadline.
    hard: Instant,
}

/// What the window says at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Keep observing. Unless new evidence arrives or the workload exits,
    /// the window closes at `until`.
    Open {
        /// The earliest the window can close on what is known now.
        until: Instant,
    },
    /// The window is closed.
    Closed(WindowEnd),
}

impl Window {
    pub(crate) fn new(
        policy: WindowPolicy,
        opened: Instant,
        duration: Duration,
        hard: Instant,
    ) -> Self {
        Self {
            policy,
            opened,
            maximum: opened + duration,
            hard,
        }
    }

    /// Until when the exercisers may run: the maximum, or the hard deadline
    /// when that comes first. (A test script alone may run to the hard
    /// deadline; the window then closes when it finishes.)
    pub(crate) fn exercise_deadline(&self) -> Instant {
        self.maximum.min(self.hard)
    }

    /// Whether the window is closed at `now`, given when every exerciser had
    /// finished (`exercised`) and when the last new evidence arrived.
    ///
    /// A window never closes before the exercisers finished (callers ask
    /// only after), closes at the maximum or when the exercisers finished,
    /// whichever is later, and at the hard deadline at the latest. An
    /// adaptive one closes earlier, `quiet` after the later of `exercised`
    /// and the last evidence, but not before `minimum`.
    pub(crate) fn decide(
        &self,
        now: Instant,
        exercised: Instant,
        last_evidence: Option<Instant>,
    ) -> Decision {
        let at_maximum = self.maximum.max(exercised).min(self.hard);
        let (close_at, reason) = match self.policy {
            WindowPolicy::Fixed => (at_maximum, WindowEnd::Maximum),
            WindowPolicy::Adaptive { quiet, minimum } => {
                let quiet_since = last_evidence.map_or(exercised, |last| last.max(exercised));
                let quiet_end = (quiet_since + quiet).max(self.opened + minimum);
                if quiet_end <= at_maximum {
                    (quiet_end, WindowEnd::Quiet)
                } else {
                    (at_maximum, WindowEnd::Maximum)
                }
            }
        };
        if now >= self.hard {
            Decision::Closed(WindowEnd::TimedOut)
        } else if now >= close_at {
            Decision::Closed(reason)
        } else {
            Decision::Open { until: close_at }
        }
    }
}

/// What the observing loop needs from the world.
pub(crate) trait Watch {
    /// The time now.
    fn now(&self) -> Instant;
    /// When the tracer last saw new evidence.
    fn last_evidence(&self) -> Option<Instant>;
    /// Whether the run was cancelled.
    fn cancelled(&self) -> bool;
    /// Waits until the workload exits or `until` passes.
    fn wait_exit(&mut self, until: Instant) -> Result<Option<ExitStatus>, RunError>;
}

/// How often the loop looks at the evidence and the cancel flag.
pub(crate) const WATCH_STEP: Duration = Duration::from_millis(200);

/// How the observing phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watched {
    /// Why the window closed.
    pub(crate) ended: WindowEnd,
    /// The workload's exit, when it exited.
    pub(crate) exit: Option<ExitStatus>,
    /// When the last new evidence arrived, as of the close.
    pub(crate) last_evidence: Option<Instant>,
}

/// Observes until the window closes, the workload exits (`exit` is its
/// exit during the exercisers, if any) or the run is cancelled (checked at
/// least every [`WATCH_STEP`]).
pub(crate) fn watch(
    window: &Window,
    exercised: Instant,
    exit: Option<ExitStatus>,
    world: &mut impl Watch,
) -> Result<Watched, RunError> {
    let mut exit = exit;
    let mut seen = 0_u64;
    let ended = loop {
        if exit.is_some() {
            break WindowEnd::Exited;
        }
        if world.cancelled() {
            return Err(RunError::Cancelled);
        }
        let now = world.now();
        let last = world.last_evidence();
        if let Some(at) = last {
            let at_ms = crate::millis(at.saturating_duration_since(window.opened));
            if at_ms != seen {
                seen = at_ms;
                tracing::debug!(last_evidence_ms = at_ms, "new evidence");
            }
        }
        match window.decide(now, exercised, last) {
            Decision::Closed(reason) => break reason,
            Decision::Open { until } => {
                exit = world.wait_exit(until.min(now + WATCH_STEP))?;
            }
        }
    };
    // one that exited as the window closed ended on its own
    let (ended, exit) = match exit {
        Some(status) => (WindowEnd::Exited, Some(status)),
        None => match world.wait_exit(world.now())? {
            Some(status) => (WindowEnd::Exited, Some(status)),
            None => (ended, None),
        },
    };
    Ok(Watched {
        ended,
        exit,
        last_evidence: world.last_evidence(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn adaptive(quiet: Duration, minimum: Duration) -> WindowPolicy {
        WindowPolicy::Adaptive { quiet, minimum }
    }

    /// A window opened at `t0` with a 30 s maximum and a 60 s hard deadline.
    fn window(policy: WindowPolicy, t0: Instant) -> Window {
        Window::new(policy, t0, 30 * S, t0 + 60 * S)
    }

    #[test]
    fn an_adaptive_window_closes_quiet_after_the_exercisers_and_the_evidence() {
        let t0 = Instant::now();
        let w = window(adaptive(3 * S, 5 * S), t0);
        // exercisers done at 2 s, last evidence at 1 s: the quiet period
        // runs from 2 s, and the minimum (5 s) is later still
        assert_eq!(
            w.decide(t0 + 4 * S, t0 + 2 * S, Some(t0 + S)),
            Decision::Open { until: t0 + 5 * S }
        );
        assert_eq!(
            w.decide(t0 + 5 * S, t0 + 2 * S, Some(t0 + S)),
            Decision::Closed(WindowEnd::Quiet)
        );
        // evidence after the exercisers moves the close
        assert_eq!(
            w.decide(t0 + 5 * S, t0 + 2 * S, Some(t0 + ms(4500))),
            Decision::Open {
                until: t0 + ms(7500)
            }
        );
        assert_eq!(
            w.decide(t0 + ms(7500), t0 + 2 * S, Some(t0 + ms(4500))),
            Decision::Closed(WindowEnd::Quiet)
        );
        // no evidence at all: quiet from the exercisers' end
        assert_eq!(
            w.decide(t0 + 6 * S, t0 + 4 * S, None),
            Decision::Open { until: t0 + 7 * S }
        );
    }

    #[test]
    fn the_quiet_period_starts_when_the_exercisers_finish() {
        let t0 = Instant::now();
        let w = window(adaptive(3 * S, S), t0);
        // a long test script: evidence stopped at 1 s, but the script ran
        // until 10 s; the quiet period counts from then
        assert_eq!(
            w.decide(t0 + 10 * S, t0 + 10 * S, Some(t0 + S)),
            Decision::Open { until: t0 + 13 * S }
        );
        assert_eq!(
            w.decide(t0 + 13 * S, t0 + 10 * S, Some(t0 + S)),
            Decision::Closed(WindowEnd::Quiet)
        );
    }

    #[test]
    fn evidence_that_keeps_coming_closes_at_the_maximum() {
        let t0 = Instant::now();
        let w = window(adaptive(3 * S, 5 * S), t0);
        assert_eq!(
            w.decide(t0 + 29 * S, t0 + S, Some(t0 + 28 * S)),
            Decision::Open { until: t0 + 30 * S }
        );
        assert_eq!(
            w.decide(t0 + 30 * S, t0 + S, Some(t0 + 29 * S)),
            Decision::Closed(WindowEnd::Maximum)
        );
    }

    #[test]
    fn a_minimum_above_the_maximum_is_the_maximum() {
        let t0 = Instant::now();
        let w = Window::new(adaptive(3 * S, 5 * S), t0, 4 * S, t0 + 60 * S);
        assert_eq!(
            w.decide(t0 + 3 * S, t0, None),
            Decision::Open { until: t0 + 4 * S }
        );
        assert_eq!(
            w.decide(t0 + 4 * S, t0, None),
            Decision::Closed(WindowEnd::Maximum)
        );
    }

    #[test]
    fn a_fixed_window_ignores_the_evidence() {
        let t0 = Instant::now();
        let w = window(WindowPolicy::Fixed, t0);
        assert_eq!(
            w.decide(t0 + 20 * S, t0 + S, Some(t0 + S)),
            Decision::Open { until: t0 + 30 * S }
        );
        assert_eq!(
            w.decide(t0 + 30 * S, t0 + S, None),
            Decision::Closed(WindowEnd::Maximum)
        );
        // a script that ran past the maximum: the window closes with it
        assert_eq!(
            w.decide(t0 + 40 * S, t0 + 40 * S, None),
            Decision::Closed(WindowEnd::Maximum)
        );
    }

    #[test]
    fn the_hard_deadline_bounds_every_window() {
        let t0 = Instant::now();
        for policy in [WindowPolicy::Fixed, adaptive(3 * S, 5 * S)] {
            let w = window(policy, t0);
            // the script ran to the hard deadline (and was killed there)
            assert_eq!(
                w.decide(t0 + 60 * S, t0 + 60 * S, Some(t0 + 59 * S)),
                Decision::Closed(WindowEnd::TimedOut),
                "{policy:?}"
            );
            // a window as long as the timeout, evidence until the end
            let w = Window::new(policy, t0, 60 * S, t0 + 60 * S);
            assert_eq!(
                w.decide(t0 + 59 * S, t0 + S, Some(t0 + 59 * S)),
                Decision::Open { until: t0 + 60 * S },
                "{policy:?}"
            );
            assert_eq!(
                w.decide(t0 + 60 * S, t0 + S, Some(t0 + 59 * S)),
                Decision::Closed(WindowEnd::TimedOut),
                "{policy:?}"
            );
            assert_eq!(w.exercise_deadline(), t0 + 60 * S);
        }
        let w = Window::new(WindowPolicy::Fixed, t0, 90 * S, t0 + 60 * S);
        assert_eq!(w.exercise_deadline(), t0 + 60 * S);
    }

    #[test]
    fn policies_are_checked_and_recorded() {
        assert_eq!(WindowPolicy::default(), WindowPolicy::ADAPTIVE);
        assert!(WindowPolicy::ADAPTIVE.check().is_ok());
        assert!(WindowPolicy::Fixed.check().is_ok());
        let err = adaptive(ms(100), 5 * S).check().unwrap_err();
        assert_eq!(err, WindowError::QuietTooShort { quiet: ms(100) });
        assert!(
            err.to_string().starts_with("window quiet period 100 ms"),
            "{err}"
        );
        assert!(adaptive(MIN_QUIET, Duration::ZERO).check().is_ok());
        assert_eq!(WindowPolicy::Fixed.mode(), WindowMode::Fixed);
        assert_eq!(
            WindowPolicy::ADAPTIVE.mode(),
            WindowMode::Adaptive {
                quiet_ms: 3_000,
                minimum_ms: 5_000
            }
        );
    }

    /// A world on fake time: evidence arrives at given times (seen one
    /// drain interval late), the workload may exit, the run may be
    /// cancelled; waiting moves the clock.
    struct Fake {
        now: Instant,
        evidence: Vec<Instant>,
        exit_at: Option<(Instant, ExitStatus)>,
        cancel_at: Option<Instant>,
        waits: usize,
    }

    const DRAIN: Duration = Duration::from_millis(50);

    impl Fake {
        fn at(now: Instant) -> Self {
            Self {
                now,
                evidence: Vec::new(),
                exit_at: None,
                cancel_at: None,
                waits: 0,
            }
        }
    }

    impl Watch for Fake {
        fn now(&self) -> Instant {
            self.now
        }

        fn last_evidence(&self) -> Option<Instant> {
            self.evidence
                .iter()
                .copied()
                .filter(|t| *t + DRAIN <= self.now)
                .max()
        }

        fn cancelled(&self) -> bool {
            self.cancel_at.is_some_and(|t| t <= self.now)
        }

        fn wait_exit(&mut self, until: Instant) -> Result<Option<ExitStatus>, RunError> {
            self.waits += 1;
            assert!(until <= self.now + WATCH_STEP, "waited past a watch step");
            match self.exit_at {
                Some((at, status)) if at <= until => {
                    self.now = self.now.max(at);
                    Ok(Some(status))
                }
                _ => {
                    self.now = self.now.max(until);
                    Ok(None)
                }
            }
        }
    }

    #[test]
    fn the_loop_closes_later_for_a_workload_that_keeps_producing_evidence() {
        let t0 = Instant::now();
        let w = window(adaptive(3 * S, 5 * S), t0);
        // quiet after startup
        let mut quiet = Fake::at(t0 + ms(600));
        quiet.evidence = vec![t0 + ms(10), t0 + ms(300)];
        let got = watch(&w, t0 + ms(600), None, &mut quiet).unwrap();
        assert_eq!(got.ended, WindowEnd::Quiet);
        assert_eq!(got.last_evidence, Some(t0 + ms(300)));
        assert_eq!(quiet.now, t0 + 5 * S);
        // a new file every second for 8 s
        let mut busy = Fake::at(t0 + ms(600));
        busy.evidence = (0..=8).map(|i| t0 + i * S).collect();
        let got = watch(&w, t0 + ms(600), None, &mut busy).unwrap();
        assert_eq!(got.ended, WindowEnd::Quiet);
        assert_eq!(got.last_evidence, Some(t0 + 8 * S));
        assert!(
            busy.now >= t0 + 11 * S && busy.now <= t0 + 11 * S + WATCH_STEP,
            "closed at {:?}",
            busy.now - t0
        );
        // forever: the maximum
        let mut endless = Fake::at(t0);
        endless.evidence = (0..600).map(|i| t0 + i * ms(100)).collect();
        let got = watch(&w, t0, None, &mut endless).unwrap();
        assert_eq!(got.ended, WindowEnd::Maximum);
        assert_eq!(endless.now, t0 + 30 * S);
    }

    #[test]
    fn the_loop_ends_at_an_exit_and_at_a_cancel() {
        let t0 = Instant::now();
        let w = window(adaptive(3 * S, 5 * S), t0);
        let mut exits = Fake::at(t0);
        exits.exit_at = Some((t0 + 2 * S, ExitStatus::Exited(3)));
        let got = watch(&w, t0, None, &mut exits).unwrap();
        assert_eq!(got.ended, WindowEnd::Exited);
        assert_eq!(got.exit, Some(ExitStatus::Exited(3)));
        assert_eq!(exits.now, t0 + 2 * S);
        // exited while being exercised: no waiting at all
        let mut exited = Fake::at(t0 + S);
        let got = watch(&w, t0 + S, Some(ExitStatus::Signaled(9)), &mut exited).unwrap();
        assert_eq!(got.ended, WindowEnd::Exited);
        assert_eq!(exited.waits, 0);
        // cancelled: within one watch step
        let mut cancelled = Fake::at(t0);
        cancelled.cancel_at = Some(t0 + ms(1234));
        let err = watch(&w, t0, None, &mut cancelled).unwrap_err();
        assert!(matches!(err, RunError::Cancelled), "{err}");
        assert!(cancelled.now - (t0 + ms(1234)) <= WATCH_STEP);
        // a fixed window waits out its duration in steps
        let mut fixed = Fake::at(t0);
        let got = watch(&window(WindowPolicy::Fixed, t0), t0, None, &mut fixed).unwrap();
        assert_eq!(got.ended, WindowEnd::Maximum);
        assert_eq!(fixed.now, t0 + 30 * S);
    }
}
