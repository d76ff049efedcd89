//! Progress display for long work: a spinner per phase on an interactive
//! stderr, nothing otherwise (logs and CI output stay clean). It listens
//! to the analysis library's typed progress events.

use std::{io::IsTerminal, sync::Mutex, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};
use vexxy_analyze::{Phase, Progress};

/// Shows the phase under way.
#[derive(Debug)]
pub(crate) struct Spinners {
    enabled: bool,
    current: Mutex<Option<(Phase, ProgressBar)>>,
}

impl Spinners {
    pub(crate) fn new(quiet: bool) -> Self {
        Self {
            enabled: !quiet && std::io::stderr().is_terminal(),
            current: Mutex::new(None),
        }
    }

    /// The callback to hand to the analysis context.
    pub(crate) fn observe(&self, event: &Progress) {
        let Ok(mut current) = self.current.lock() else {
            return;
        };
        match event {
            Progress::Started(phase) => {
                if let Some((_, bar)) = current.take() {
                    bar.finish_and_clear();
                }
                if self.enabled {
                    let bar = ProgressBar::new_spinner();
                    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
                        bar.set_style(style);
                    }
                    bar.enable_steady_tick(Duration::from_millis(100));
                    bar.set_message(phase.label());
                    *current = Some((*phase, bar));
                }
            }
            Progress::Finished { phase, .. } => {
                if current.as_ref().is_some_and(|(p, _)| p == phase) {
                    if let Some((_, bar)) = current.take() {
                        bar.finish_and_clear();
                    }
                }
            }
        }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        if let Ok(mut current) = self.current.lock() {
            if let Some((_, bar)) = current.take() {
                bar.finish_and_clear();
            }
        }
    }
}
