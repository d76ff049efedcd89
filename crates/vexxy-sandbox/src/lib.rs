//! A locked-down sandbox that runs an unpacked container root filesystem
//! with an OCI runtime (runc).
//!
//! [`Sandbox::create`] mounts a size-limited scratch tmpfs and an overlay
//! whose only lower layer is the image rootfs, writes an OCI runtime spec
//! (generated with `oci-spec`) and runs `runc create`; the container init is
//! then waiting inside its new namespaces, so a tracer can be armed on its
//! PID namespace before [`Sandbox::start`]. [`Sandbox::teardown`] (also run
//! on drop) removes every trace, and [`reap_leftovers`] cleans up after a
//! vexxy process that died without tearing down.
//!
//! # Invariants
//!
//! - **The image rootfs is never modified.** It is only ever used as the
//!   read-only `lowerdir` of an overlay; every write of the workload lands in
//!   the upper directory inside the sandbox's scratch tmpfs.
//! - **Isolation is fixed, not configurable:** new pid, mount, network
//!   (loopback only), uts, ipc and cgroup namespaces; Docker's default
//!   capability set; `noNewPrivileges`; masked and read-only `/proc` paths;
//!   read-only `/sys` and cgroup mounts; the default seccomp allowlist of
//!   `seccomp/default.json`; cgroup limits on cpu, memory (+swap) and pids.
//!   Only the limits, the process, the hostname and the runtime are chosen by
//!   the caller.
//! - **Everything a sandbox creates on the host lives under
//!   `<state_root>/sandboxes/<id>/`, `<state_root>/runtime/<id>/` and the
//!   cgroups `/vexxy/<id>`,** and the sandbox directory records its owner
//!   (pid, start time, boot id) before anything else is created, so a later
//!   [`reap_leftovers`] can find and remove all of it after a crash.
//! - **Teardown is idempotent and verified:** it kills, deletes, drains the
//!   cgroups, unmounts (lazily only as a last resort), removes the
//!   directories, and then checks that no process of the sandbox's PID
//!   namespace, no mount under its directory, no cgroup and no directory
//!   remain. It never deletes across a mount point.
//! - **Kernel and process calls go through the [`Host`] trait;** the
//!   orchestration is unit-tested against a recording fake.
//! - No `unsafe`, no panics on bad input; errors name the sandbox id or path.

mod config;
mod error;
pub mod host;
mod owner;
mod preflight;
mod sandbox;
mod seccomp;
mod spec;
mod teardown;
mod user;

#[cfg(test)]
mod fake;

pub use config::{Limits, ProcessConfig, SandboxConfig};
pub use error::SandboxError;
pub use host::{CommandSpec, Host, RealHost};
pub use preflight::preflight;
pub use sandbox::{ExitStatus, Sandbox};
pub use seccomp::default_seccomp_profile;
pub use teardown::{
    reap_leftovers, reap_leftovers_with_host, Leftover, StepOutcome, TeardownReport, TeardownStep,
};
