//! Static evidence from a container image's root filesystem.
//!
//! Three kinds of evidence, all established without running anything:
//!
//! - **ELF reachability** — [`scan`] reads every ELF object of the image and
//!   resolves its `DT_NEEDED` entries the way glibc's `ld.so` would
//!   (`DT_RPATH`, `LD_LIBRARY_PATH`, `DT_RUNPATH`, `/etc/ld.so.cache` or
//!   `/etc/ld.so.conf`, the default directories); [`entrypoints`] finds the
//!   executables an image's command runs; [`reach`] says, per package, whether
//!   its shared objects are loaded from the entrypoint, only by other
//!   executables, only by plugins, or by nothing
//!   ([`vexxy_model::ElfReach`]).
//! - **Plugin loaders** — [`PluginLoader`]s read a program's configuration to
//!   tell which `dlopen`ed plugins it loads; nginx dynamic modules are built
//!   in ([`builtin_loaders`], [`nginx`]).
//! - **Configuration rules** — a declarative TOML format ([`parse_rules`],
//!   documented in `docs/rules.md`) whose conditions inspect configuration
//!   files; [`evaluate`] returns a [`vexxy_model::RuleOutcome`] for each rule
//!   that holds. [`builtin_rules`] ships rules for nginx and OpenSSL.
//!
//! Invariants:
//! - the root filesystem is read only through [`vexxy_rootfs::RootFs`]
//!   (chroot-semantics path resolution, bounded reads); a few leading bytes
//!   of regular files are read from the host path `RootFs` resolves;
//! - nothing from the image is ever executed or loaded;
//! - malformed ELF files and odd configuration never panic: they become
//!   warnings, or conditions that do not hold.
//!
//! What this crate never does: decide a VEX status on its own (rule outcomes
//! and reachability are evidence the decision engine combines), write to the
//! root filesystem, or follow a path out of it.

pub mod advisory_text;
mod elf;
mod entry;
mod error;
pub mod functions;
mod glob;
pub mod gosym;
mod ldconfig;
mod links;
pub mod nginx;
mod plugins;
mod reach;
mod rules;

pub use elf::{interpreter_of, scan, ElfGraph, ElfKind, ElfObject, ScanOptions};
pub use entry::entrypoints;
pub use error::StaticError;
pub use links::{links, MAX_SYMLINKS};
pub use plugins::{builtin_loaders, PluginLoader, PluginState};
pub use reach::reach;
pub use rules::{
    builtin_rules, evaluate, parse_rules, Condition, DirectiveMatch, FileMatch, Rule, RuleSet,
    RULES_VERSION,
};
