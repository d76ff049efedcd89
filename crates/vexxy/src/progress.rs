//! Progress display for long phases: a spinner on an interactive stderr,
//! nothing otherwise (logs and CI output stay clean).

use std::{io::IsTerminal, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};

/// One phase of work with a spinner.
#[derive(Debug)]
pub(crate) struct Phase {
    bar: ProgressBar,
    started: std::time::Instant,
    name: &'static str,
}

impl Phase {
    pub(crate) fn start(name: &'static str, quiet: bool) -> Self {
        let bar = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
                b.set_style(style);
            }
            b.enable_steady_tick(Duration::from_millis(100));
            b
        };
        bar.set_message(name);
        tracing::info!(phase = name, "started");
        Self {
            bar,
            started: std::time::Instant::now(),
            name,
        }
    }

    /// Ends the phase and returns how long it took.
    pub(crate) fn finish(self, detail: &str) -> Duration {
        let took = self.started.elapsed();
        self.bar.finish_and_clear();
        tracing::info!(
            phase = self.name,
            detail,
            ms = took.as_millis() as u64,
            "finished"
        );
        took
    }
}
