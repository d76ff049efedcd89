//! Light test support for vexxy's tests: the gates of tests that need
//! something this machine may lack (root, a program, a built test image,
//! PostgreSQL), the cached test images, polling, a throw-away PostgreSQL
//! database per test (`pg`), a webhook receiver (`hooks`) and a real local
//! OCI registry (`registry`).
//!
//! Nothing here builds the sandbox or the tracer: tests that run them use
//! `vexxy-testkit-host`, which adds those gates and helpers and re-exports
//! this crate. A dev-dependency only; it panics freely because a failed
//! helper is a failed test.
//!
//! **The one rule of every gate:** outside CI a missing prerequisite
//! prints `SKIP <test>: <reason>` and the gate says "skip" (`false` or
//! `None`, the test returns); in CI (`CI` set) it fails the test with the
//! reason, so CI never passes a test that did not run.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod hooks;
pub mod pg;
pub mod registry;
mod tmpfs;
pub mod trivy;

pub use pg::{require_postgres, TestDatabase};
pub use tmpfs::Tmpfs;

use std::{
    fmt::Display,
    path::PathBuf,
    time::{Duration, Instant},
};

/// `true` when `CI` is set (to anything but empty, `0` or `false`): a
/// missing prerequisite is then a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The name of the running test: libtest names each test's thread after
/// it; a benchmark without the harness runs on `main` and is named after
/// its executable.
pub fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => std::env::current_exe()
            .ok()
            .and_then(|exe| {
                let stem = exe.file_stem()?.to_str()?.to_owned();
                // cargo's `<name>-<16 hex digits>`
                Some(match stem.rsplit_once('-') {
                    Some((name, hash))
                        if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
                    {
                        name.to_owned()
                    }
                    _ => stem,
                })
            })
            .unwrap_or_else(|| "main".to_owned()),
    }
}

/// The gate every other gate goes through: outside CI prints
/// `SKIP <test>: <reason>` (the caller then skips the test by returning);
/// in CI panics with the reason.
pub fn skip_or_fail(reason: impl Display) {
    let test = test_name();
    assert!(
        !in_ci(),
        "{test}: CI is set, so this prerequisite must be met: {reason}"
    );
    println!("SKIP {test}: {reason}");
}

/// `Some(value)` when the prerequisite is there; else [`skip_or_fail`]
/// with the error as the reason, and `None`.
pub fn require<T, E: Display>(prerequisite: Result<T, E>) -> Option<T> {
    match prerequisite {
        Ok(value) => Some(value),
        Err(reason) => {
            skip_or_fail(reason);
            None
        }
    }
}

/// `true` when running as root; else [`skip_or_fail`] saying why the test
/// needs it, and `false`.
pub fn require_root(why: &str) -> bool {
    let euid = rustix::process::geteuid();
    if euid.is_root() {
        return true;
    }
    skip_or_fail(format!(
        "not root (euid {}): {why} needs root",
        euid.as_raw()
    ));
    false
}

/// The path of `program` on `PATH`; else [`skip_or_fail`] (`hint` says
/// how to install it) and `None`.
pub fn require_program(program: &str, hint: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    });
    require(found.ok_or_else(|| format!("{program} is not installed ({hint})")))
}

/// `${VEXXY_TEST_IMAGES:-${VEXXY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vexxy}/test-images}`,
/// as `scripts/build-test-images.sh` computes it (an empty variable counts
/// as unset). The one place tests find the test images.
pub fn test_images_dir() -> PathBuf {
    match std::env::var_os("VEXXY_TEST_IMAGES").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => cache_dir().join("test-images"),
    }
}

/// `${VEXXY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vexxy}` (an empty
/// variable counts as unset): where the scripts keep test images and tools.
pub fn cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var("VEXXY_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|c| c.join("vexxy"))
        })
        .expect("HOME or XDG_CACHE_HOME must be set")
}

/// The directory of a test image built with its archives (`rootfs/`,
/// `config.json`, `oci/` with tag `latest`, `image.oci.tar`,
/// `image.docker.tar`): a gate, see [`skip_or_fail`].
pub fn test_image(name: &str) -> Option<PathBuf> {
    let dir = test_images_dir().join(name);
    if dir.join("archives.stamp").is_file() && dir.join("oci/index.json").is_file() {
        return Some(dir);
    }
    skip_or_fail(format!(
        "test image {name} with its archives is missing at {} (run scripts/build-test-images.sh --with-archives)",
        dir.display()
    ));
    None
}

/// `oci:<the test image's layout>:latest`, see [`test_image`].
pub fn test_image_ref(name: &str) -> Option<String> {
    test_image(name).map(|d| format!("oci:{}:latest", d.join("oci").display()))
}

/// The root filesystem of a built test image (its `config.json` is beside
/// it): a gate, see [`skip_or_fail`]. Archives are not needed.
pub fn image_rootfs(name: &str) -> Option<PathBuf> {
    let dir = test_images_dir().join(name);
    if dir.join("stamp").is_file() && dir.join("rootfs").is_dir() {
        return Some(dir.join("rootfs"));
    }
    skip_or_fail(format!(
        "test image {name} is missing at {} (run scripts/build-test-images.sh as root)",
        dir.display()
    ));
    None
}

/// Waits until `f` returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
