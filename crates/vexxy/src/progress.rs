//! Progress display for long phases: a spinner on an interactive stderr,
//! nothing otherwise (logs and CI output stay clean). A caller that wants
//! to hear of phase starts itself (the service reporting a job's progress)
//! installs an observer for the current thread with [`observed`].

use std::{cell::RefCell, io::IsTerminal, sync::Arc, time::Duration};

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
        notify(name);
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

/// Told the name of every phase that starts on its thread.
pub(crate) type Observer = Arc<dyn Fn(&str) + Send + Sync>;

thread_local! {
    static OBSERVER: RefCell<Option<Observer>> = const { RefCell::new(None) };
}

/// Runs `f` with `observer` told of every [`Phase::start`] on this thread
/// (the pipeline starts its phases on the calling thread, the traced run's
/// included); the previous observer is back afterwards, also on panic.
pub(crate) fn observed<R>(observer: Option<Observer>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Observer>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            OBSERVER.with(|o| *o.borrow_mut() = previous);
        }
    }
    let previous = OBSERVER.with(|o| std::mem::replace(&mut *o.borrow_mut(), observer));
    let _restore = Restore(previous);
    f()
}

fn notify(name: &str) {
    // cloned out first: an observer that starts a phase itself must not
    // find the slot borrowed
    let observer = OBSERVER.with(|o| o.borrow().clone());
    if let Some(observer) = observer {
        observer(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn observers_hear_phase_starts_on_their_thread_only_while_installed() {
        let heard = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = Arc::clone(&heard);
        let observer: Observer = Arc::new(move |name: &str| {
            sink.lock().unwrap().push(name.to_owned());
        });
        Phase::start("before", true).finish("");
        observed(Some(observer), || {
            Phase::start("one", true).finish("");
            std::thread::spawn(|| Phase::start("elsewhere", true).finish(""))
                .join()
                .unwrap();
            observed(None, || Phase::start("muted", true).finish(""));
            Phase::start("two", true).finish("");
        });
        Phase::start("after", true).finish("");
        assert_eq!(*heard.lock().unwrap(), vec!["one", "two"]);
    }
}
