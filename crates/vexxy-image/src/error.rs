//! The one error type of the crate.

use std::{io, path::PathBuf};

use vexxy_model::Digest;

/// Everything that can go wrong while reading, importing or unpacking an image.
///
/// Messages are lowercase and name the file, blob digest, layer or tar entry
/// involved. [`ImageError::is_bad_input`] tells a bad image or reference
/// (exit code 2 in the CLI) from a failure of this machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The image reference could not be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    BadReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A registry reference: pull it with `vexxy-registry` into the blob
    /// cache, then open the cache as an OCI layout.
    #[error("image {reference}: needs a registry pull before it can be opened")]
    NeedsRegistryPull {
        /// The registry reference.
        reference: String,
    },
    /// A `dir:` source is a root filesystem, not an image.
    #[error("{rootfs}: a root filesystem directory is not an image; read it directly")]
    NotAnImage {
        /// The directory.
        rootfs: PathBuf,
    },
    /// The image file or directory named by the caller does not exist.
    #[error("{path}: not found")]
    SourceNotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// An I/O error on a file of this machine (cache, source, target).
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No blob cache directory could be derived from the environment.
    #[error("blob cache location unknown: set VEXXY_CACHE_DIR, XDG_CACHE_HOME or HOME")]
    NoCacheDir,
    /// A blob's content does not hash to the digest it is addressed by.
    #[error("blob {expected} ({location}): content has digest {actual}")]
    DigestMismatch {
        /// Where the blob was read from.
        location: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest of what was read.
        actual: Digest,
    },
    /// A blob's size differs from its descriptor's.
    #[error("blob {digest} ({location}): {actual} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        /// Where the blob was read from.
        location: String,
        /// The blob's digest.
        digest: Digest,
        /// Size from the descriptor.
        expected: u64,
        /// Size read.
        actual: u64,
    },
    /// The uncompressed content of a layer does not match the config's `rootfs.diff_ids`.
    #[error(
        "layer {layer}: uncompressed content has diff_id {actual}, but the config lists {expected}"
    )]
    DiffIdMismatch {
        /// The layer blob digest.
        layer: Digest,
        /// The diff_id from the config.
        expected: Digest,
        /// The diff_id of what was read.
        actual: Digest,
    },
    /// A blob referenced by a manifest or index is missing.
    #[error("blob {digest} not found in {location}")]
    BlobMissing {
        /// The missing blob.
        digest: Digest,
        /// The layout, archive or cache searched.
        location: String,
    },
    /// A JSON document (index, manifest, config, `manifest.json`) or a
    /// descriptor is malformed.
    #[error("{location}: invalid {what}: {message}")]
    Malformed {
        /// The file or blob.
        location: String,
        /// What kind of document.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No manifest carries the requested tag.
    #[error("{location}: no manifest tagged {tag:?} (tags: {available})")]
    TagNotFound {
        /// The layout or archive.
        location: String,
        /// The requested tag.
        tag: String,
        /// Comma-separated tags present.
        available: String,
    },
    /// Several manifests and nothing to choose between them.
    #[error("{location}: {count} images and no tag to choose one; name one of: {available}")]
    Ambiguous {
        /// The layout or archive.
        location: String,
        /// How many candidates.
        count: usize,
        /// What the caller could name.
        available: String,
    },
    /// No manifest for the wanted platform.
    #[error("{location}: no image for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        /// The layout, archive or index blob.
        location: String,
        /// The wanted platform.
        platform: String,
        /// Platforms present.
        available: String,
    },
    /// A media type this crate does not read.
    #[error("{location}: unsupported media type {media_type}")]
    UnsupportedMediaType {
        /// Where it was found.
        location: String,
        /// The media type.
        media_type: String,
    },
    /// A document or blob exceeds a size bound applied before reading it.
    #[error("{location}: {size} bytes is more than the limit of {limit} for {what}")]
    TooLarge {
        /// The file or blob.
        location: String,
        /// What kind of document.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A layer entry was refused because applying it could escape or corrupt the target.
    #[error("layer {layer}, entry {entry:?}: refused: {reason}")]
    HostileEntry {
        /// The layer blob digest.
        layer: Digest,
        /// The tar entry name as stored.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// A [`crate::Limits`] bound was exceeded (decompression bomb, absurd entry count, long path).
    #[error("layer {layer}, entry {entry:?}: {what} exceeds the limit of {limit}")]
    LimitExceeded {
        /// The layer blob digest.
        layer: Digest,
        /// The tar entry being read when the limit was hit (may be empty).
        entry: String,
        /// Which limit.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A layer is not a readable tar stream (bad header, truncated, bad compression).
    #[error(
        "layer {layer}: unreadable layer stream at entry {entry:?}: {}",
        without_data(cause)
    )]
    Tar {
        /// The layer blob digest.
        layer: Digest,
        /// The last entry read (may be empty).
        entry: String,
        /// The underlying error; shown only as [`without_data`] says, never
        /// as a source (decoders quote the bytes they choke on).
        cause: io::Error,
    },
    /// An archive file (`oci-archive`, `docker-archive`) is not a readable tar.
    #[error("archive {path}: {}", without_data(cause))]
    Archive {
        /// The archive file.
        path: PathBuf,
        /// The underlying error, shown as for [`ImageError::Tar`].
        cause: io::Error,
    },
    /// Writing a layer entry into the target failed for a reason other than hostility.
    #[error("layer {layer}, entry {entry:?}: {source}")]
    Apply {
        /// The layer blob digest.
        layer: Digest,
        /// The tar entry name.
        entry: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The unpack target is unusable (exists and is not an empty directory).
    #[error("target {path}: {reason}")]
    BadTarget {
        /// The target directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A rootfs cache key is not a hex digest (`[0-9a-f]`, 1 to 128 characters).
    #[error("rootfs cache {base}: invalid key {key:?}: {reason}")]
    BadCacheKey {
        /// The cache directory.
        base: PathBuf,
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl ImageError {
    /// True when the error is caused by the image or reference given (bad,
    /// tampered or hostile input), false when this machine failed.
    pub fn is_bad_input(&self) -> bool {
        match self {
            // an entry no Linux filesystem can hold (a name over 255 bytes)
            Self::Apply { source, .. } => source.kind() == io::ErrorKind::InvalidFilename,
            Self::Io { .. } | Self::NoCacheDir | Self::NeedsRegistryPull { .. } => false,
            _ => true,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(
        location: impl Into<String>,
        what: &'static str,
        message: impl ToString,
    ) -> Self {
        Self::Malformed {
            location: location.into(),
            what,
            message: message.to_string(),
        }
    }
}

/// A message of ours carried inside an `io::Error`, shown as it is.
#[derive(Debug)]
pub(crate) struct Said(pub(crate) String);

impl std::fmt::Display for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Said {}

/// An `io::Error` of ours, shown as it is by [`without_data`].
pub(crate) fn said(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Said(message.into()))
}

/// What an I/O error from reading an archive or layer says, without the
/// data: the tar and decompression crates quote the bytes they choke on
/// (header fields, magic), which for a file that is not an image may be a
/// secret's content. Operating-system errors and messages of ours are kept.
pub fn without_data(e: &io::Error) -> String {
    if e.raw_os_error().is_some() {
        return e.to_string();
    }
    if let Some(ours) = e.get_ref().and_then(|inner| inner.downcast_ref::<Said>()) {
        return ours.0.clone();
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "the stream ends early".to_owned(),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::Other => {
            "not a valid tar stream (bad header, checksum or compression)".to_owned()
        }
        kind => kind.to_string(),
    }
}
