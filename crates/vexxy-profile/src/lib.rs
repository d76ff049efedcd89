//! The versioned JSON form of vexxy's execution profile
//! ([`vexxy_model::ExecutionProfile`]): what a sandboxed, traced run of an
//! image observed.
//!
//! - [`to_json`] turns a profile into the v1 document (`docs/execution-profile.md`);
//! - [`write()`] writes it to a file atomically;
//! - [`parse`] and [`read`] turn a document back into a profile;
//! - [`SCHEMA_JSON`] is the JSON Schema (draft 2020-12) of the format;
//! - [`merge`] unites profiles of the same image (observations from several
//!   sources) without losing evidence.
//!
//! Invariants:
//! - output is byte-stable for the same profile: every set-like collection
//!   is sorted (and the sets of ports and paths deduplicated), maps are
//!   ordered by key, optional values are written as `null`, never omitted;
//! - what [`to_json`] writes is valid against [`SCHEMA_JSON`], and reading it
//!   back yields the same profile (for a profile whose collections are
//!   already sorted, as the model asks of its producers);
//! - fields added to v1 after its first release (`run.window`) are optional
//!   on read: a profile written before them reads, without them;
//! - a profile read by [`parse`] is sorted and free of duplicate keys (file
//!   paths, pids, (operation, address) pairs, …), whatever order the
//!   document had, so the model's binary searches are sound;
//! - [`write()`] never leaves a half-written file: it writes a temporary file
//!   beside the target, syncs it and renames it into place;
//! - every error names the file, and content errors name the JSON path;
//!   [`read`] refuses files above [`MAX_BYTES`] before parsing; no input
//!   panics.

mod error;
mod merge;
mod wire;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use vexxy_model::ExecutionProfile;

pub use error::ProfileError;
pub use merge::{merge, MergeError};

/// The value of the `schema` field of a version 1 document.
pub const SCHEMA: &str = "https://vexxy.dev/schemas/execution-profile/v1";

/// The JSON Schema (draft 2020-12) of a version 1 document.
pub const SCHEMA_JSON: &str = include_str!("../schema/execution-profile-v1.json");

/// The largest file [`read`] accepts: 256 MiB.
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// The v1 JSON document of `profile`: pretty-printed, newline-terminated and
/// byte-stable.
pub fn to_json(profile: &ExecutionProfile) -> Vec<u8> {
    let doc = wire::Document::from(profile);
    let mut out = match serde_json::to_vec_pretty(&doc) {
        Ok(bytes) => bytes,
        // Serialising plain structs, string-keyed maps and integer-keyed
        // maps into memory cannot fail; keep a document rather than panic.
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise execution profile");
            format!("{{\"schema\": {SCHEMA:?}}}").into_bytes()
        }
    };
    out.push(b'\n');
    out
}

/// Writes `profile` to `path` atomically: a temporary file in the same
/// directory is written, synced and renamed over `path`. An existing
/// target that is not a regular file (`/dev/null`, a FIFO) is written
/// through instead.
pub fn write(path: &Path, profile: &ExecutionProfile) -> Result<(), ProfileError> {
    let write_err = |source| ProfileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let bytes = to_json(profile);
    // `-o /dev/null`, a FIFO, a terminal: write through it; renaming over
    // it would replace the node itself.
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() && !meta.is_dir() {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(write_err)?;
            return f.write_all(&bytes).map_err(write_err);
        }
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".vexxy-profile-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(write_err)?;
    tmp.write_all(&bytes).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    // Make the rename durable too; a failure here does not undo the write.
    if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "cannot sync directory");
    }
    tracing::debug!(path = %path.display(), bytes = bytes.len(), "wrote execution profile");
    Ok(())
}

/// Parses a v1 document; `origin` names it in errors (a file name, `-`).
pub fn parse(bytes: &[u8], origin: &str) -> Result<ExecutionProfile, ProfileError> {
    let path = Path::new(origin);
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ProfileError::Empty {
                path: path.to_path_buf(),
            })
        }
        Some(b'{') => {}
        // Well-formed JSON that is not an object (serde would even read a
        // struct from an array by position) is reported as such; anything
        // else falls through to the parser's own error.
        Some(_) => {
            if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
                return Err(ProfileError::NotAnObject {
                    path: path.to_path_buf(),
                });
            }
        }
    }

    // The version first: a document of another version is reported as such,
    // not by the first field this reader does not know.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let head: wire::Head = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ProfileError::from_json(path, e.inner(), json_path(e.path())))?;
    de.end()
        .map_err(|e| ProfileError::from_json(path, &e, ".".into()))?;
    match head.schema {
        Some(serde_json::Value::String(s)) if s == SCHEMA => {}
        Some(serde_json::Value::String(found)) => {
            return Err(ProfileError::UnsupportedSchema {
                path: path.to_path_buf(),
                found,
                expected: SCHEMA,
            })
        }
        Some(other) => {
            return Err(ProfileError::UnsupportedSchema {
                path: path.to_path_buf(),
                found: other.to_string(),
                expected: SCHEMA,
            })
        }
        None => {
            return Err(ProfileError::Invalid {
                path: path.to_path_buf(),
                json_path: "schema".into(),
                message: format!("missing field `schema` (expected {SCHEMA:?})"),
            })
        }
    }

    let mut de = serde_json::Deserializer::from_slice(bytes);
    let doc: wire::Document = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ProfileError::from_json(path, e.inner(), json_path(e.path())))?;
    let profile = ExecutionProfile::try_from(doc).map_err(|e| e.at(path))?;
    tracing::debug!(
        origin,
        files = profile.files.len(),
        processes = profile.processes.len(),
        "parsed execution profile"
    );
    Ok(profile)
}

/// Reads and parses the v1 document at `path`, refusing a file larger than
/// [`MAX_BYTES`] before parsing it.
pub fn read(path: &Path) -> Result<ExecutionProfile, ProfileError> {
    read_limited(path, MAX_BYTES)
}

/// [`read`] with another size limit.
pub fn read_limited(path: &Path, max_bytes: u64) -> Result<ExecutionProfile, ProfileError> {
    let read_err = |source| ProfileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let too_large = |size| ProfileError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit: max_bytes,
    };
    let file = File::open(path).map_err(read_err)?;
    let declared = file.metadata().map_err(read_err)?.len();
    if declared > max_bytes {
        return Err(too_large(declared));
    }
    // The declared size may be wrong (pipes, files still growing): bound the
    // read itself too.
    let mut bytes = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let got = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if got > max_bytes {
        return Err(too_large(got));
    }
    parse(&bytes, &path.to_string_lossy())
}

/// A serde_path_to_error path as this crate prints it: `.` for the root.
fn json_path(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text.is_empty() {
        ".".into()
    } else {
        text
    }
}
