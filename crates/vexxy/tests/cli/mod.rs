//! What the acceptance tests that run the real `vexxy` binary on the test
//! images share: the binary with a fixed `SOURCE_DATE_EPOCH`, one lock
//! serialising a test binary's analyses (they share the host's sandboxes
//! and CPU), and JSON reading that names the file.

use std::{
    path::Path,
    sync::{Mutex, MutexGuard},
};

use assert_cmd::Command;
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the test binary's analysis lock (a poisoned lock is taken over).
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The real binary, with reproducible timestamps.
pub(crate) fn vexxy() -> Command {
    let mut c = Command::cargo_bin("vexxy").expect("binary built");
    c.env("SOURCE_DATE_EPOCH", "1767225600");
    c
}

/// A JSON file, panicking with its name.
pub(crate) fn read(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
