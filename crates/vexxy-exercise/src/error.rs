//! Errors exercising a workload.

use std::path::PathBuf;

/// Why the workload could not be exercised.
///
/// Failures of the workload itself (a refused connection, a 500, a script
/// exiting non-zero) are not errors: they are counted in the results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExerciseError {
    /// The network namespace file could not be opened or joined.
    #[error("cannot enter network namespace {}: {source}", path.display())]
    NetNs {
        /// The namespace file, e.g. `/proc/1234/ns/net`.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The thread that joins the namespace could not be started.
    #[error("cannot start the exercise thread: {source}")]
    Thread {
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The thread that joins the namespace panicked (a bug).
    #[error("the exercise thread panicked")]
    ThreadPanicked,
    /// The test script is missing or unreadable.
    #[error("cannot read test script {}: {source}", path.display())]
    ScriptUnreadable {
        /// The script as given.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The test script is not a regular file.
    #[error("test script {} is not a regular file", path.display())]
    ScriptNotAFile {
        /// The script as given.
        path: PathBuf,
    },
    /// The script's runner (`nsenter` or `/bin/sh`) could not be started.
    #[error("cannot start {program} for test script {}: {source}", script.display())]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The script.
        script: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the script failed.
    #[error("cannot wait for test script {}: {source}", script.display())]
    Wait {
        /// The script.
        script: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}
