//! Container images from OCI layouts, oci-archives and docker-archives:
//! a content-addressed blob cache, digest verification, safe layer
//! application into a root filesystem, and the image config.
//!
//! The flow is [`ImageSource`] (parsed from `oci:DIR[:TAG]`,
//! `oci-archive:FILE[:TAG]`, `docker-archive:FILE`, `dir:ROOTFS` or a
//! registry reference) → [`open`] (imports the image's blobs into the
//! [`BlobCache`] and reads manifest and config) → [`unpack`] (applies the
//! layers into an empty directory). Registry pulls belong to
//! `vexxy-registry`, which writes into the same cache. The [`RootfsCache`]
//! keeps unpacked trees by config digest, shared by the processes of a host
//! through file locks and kept under a size limit by LRU eviction.
//!
//! Invariants:
//! - **every blob's digest is verified before use**: index, manifest, config
//!   and layer blobs are hashed and compared with their digest (and size)
//!   before they are parsed, cached or unpacked, on import and again on every
//!   read from the cache; a layer's uncompressed stream is checked against
//!   the config's `diff_id` while it is applied, and a mismatch removes the
//!   partial tree;
//! - **nothing is written outside the target directory** (nor outside the
//!   cache when importing): layer paths are normalised beneath the root,
//!   every parent directory is resolved with
//!   `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` and every final
//!   component is created without following symlinks; symlinks are stored
//!   as data, hard links may only point at files already in the tree;
//! - nothing is chowned, no device node or fifo is created, setuid/setgid
//!   bits are dropped unless asked for, and [`Limits`] bound total size, file
//!   size, entry count and path length;
//! - no `unsafe` (the workspace forbids it; `rustix` wraps the syscalls).

mod archive;
mod cache;
mod error;
mod image;
mod rootfs_cache;
mod source;
mod unpack;

pub use cache::{BlobCache, PutOutcome};
pub use error::{without_data, ImageError};
pub use image::{
    open, Image, ImageConfig, Layer, OpenOptions, DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR,
};
pub use rootfs_cache::{EvictReport, RootfsCache, RootfsLease};
pub use source::{ImageSource, Platform};
pub use unpack::{unpack, EntryKind, FileMeta, Limits, UnpackReport};
pub use vexxy_model::Digest;
