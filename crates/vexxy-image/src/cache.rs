//! The content-addressed blob cache: an OCI image layout on disk.

use std::{
    env,
    fs::{self, File},
    io::{self, Read, Seek, Write},
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};
use vexxy_model::Digest;

use crate::ImageError;

const COPY_BUF: usize = 1 << 20;

/// A reader that hashes (sha256) and counts everything read through it.
#[derive(Debug)]
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The digest and byte count of everything read so far.
    pub(crate) fn finish(self) -> (Digest, u64) {
        (digest_of_hasher(self.hasher), self.count)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

fn digest_of_hasher(hasher: Sha256) -> Digest {
    let out: [u8; 32] = hasher.finalize().into();
    Digest::from_sha256_bytes(&out)
}

/// The sha256 digest of a byte slice.
pub(crate) fn digest_of(bytes: &[u8]) -> Digest {
    digest_of_hasher(Sha256::new_with_prefix(bytes))
}

/// Hashes a whole reader; returns digest and size.
pub(crate) fn hash_reader(reader: impl Read, location: &Path) -> Result<(Digest, u64), ImageError> {
    let mut h = HashReader::new(reader);
    io::copy(&mut h, &mut io::sink()).map_err(|e| ImageError::io(location, e))?;
    Ok(h.finish())
}

/// Whether a blob was stored by [`BlobCache::put`] or was already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The content was copied into the cache.
    Stored,
    /// A verified copy was already in the cache; nothing was read from the reader.
    AlreadyPresent,
}

/// A content-addressed blob store laid out as an OCI image layout
/// (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), so that
/// `vexxy-registry` can pull into it and [`crate::open`] can read it back as
/// `oci:<root>:<tag>`.
///
/// **Verification policy:** a blob is verified (sha256 and, when known,
/// size) when it enters the cache ([`BlobCache::put`]) and *again on every
/// [`BlobCache::get`]*: the cache lives in a user-writable directory and a
/// re-hash costs one sequential read (sha256 with SHA-NI runs at over
/// 1 GB/s), which is cheaper than trusting a marker file that a tamperer
/// could also forge. A blob found corrupt is deleted from the cache.
#[derive(Clone, Debug)]
pub struct BlobCache {
    root: PathBuf,
}

impl BlobCache {
    /// Opens (creating when missing) a cache rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ImageError> {
        let root = root.into();
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|e| ImageError::io(&blobs, e))?;
        let layout = root.join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = root.join("index.json");
        if !index.exists() {
            write_atomic(&index, br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#)?;
        }
        Ok(Self { root })
    }

    /// The default cache directory: `$VEXXY_CACHE_DIR/blobs`, else
    /// `$XDG_CACHE_HOME/vexxy/blobs`, else `$HOME/.cache/vexxy/blobs`
    /// (empty variables are ignored).
    pub fn default_root() -> Result<PathBuf, ImageError> {
        let var = |name: &str| {
            env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(dir) = var("VEXXY_CACHE_DIR") {
            return Ok(dir.join("blobs"));
        }
        if let Some(dir) = var("XDG_CACHE_HOME") {
            return Ok(dir.join("vexxy").join("blobs"));
        }
        var("HOME")
            .map(|home| home.join(".cache").join("vexxy").join("blobs"))
            .ok_or(ImageError::NoCacheDir)
    }

    /// Opens the cache at [`BlobCache::default_root`].
    pub fn open_default() -> Result<Self, ImageError> {
        Self::open(Self::default_root()?)
    }

    /// The layout directory (usable as `oci:<root>`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob is (or would be) stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// Whether a file for the blob exists (not verified; [`BlobCache::get`] verifies).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// A temporary file inside the cache (removed when dropped).
    pub(crate) fn temp_file(&self) -> Result<tempfile::NamedTempFile, ImageError> {
        let dir = self.tmp_dir();
        tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(|e| ImageError::io(&dir, e))
    }

    /// Whether the cache holds an intact copy of the blob (hashes it; a
    /// corrupt copy is deleted).
    pub fn has_verified(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
    ) -> Result<bool, ImageError> {
        match self.get_checked(digest, expected_size) {
            Ok(_) => Ok(true),
            Err(
                ImageError::BlobMissing { .. }
                | ImageError::DigestMismatch { .. }
                | ImageError::SizeMismatch { .. },
            ) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Streams `reader` into the cache under `expected`: the content goes to a
    /// temporary file, its sha256 (and size, when given) are checked, and only
    /// then is it renamed into place. On a mismatch the temporary file is
    /// deleted and the error names both digests. When an intact copy is
    /// already cached, nothing is read.
    pub fn put(
        &self,
        reader: impl Read,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> Result<PutOutcome, ImageError> {
        self.put_from(reader, expected, expected_size, "stream")
    }

    pub(crate) fn put_from(
        &self,
        reader: impl Read,
        expected: &Digest,
        expected_size: Option<u64>,
        location: &str,
    ) -> Result<PutOutcome, ImageError> {
        if self.has_verified(expected, expected_size)? {
            return Ok(PutOutcome::AlreadyPresent);
        }
        let tmp = self.temp_file()?;
        let tmp_path = tmp.path().to_owned();
        // Read at most one byte past the expected size, so a huge stream is cut short.
        let limit = expected_size.map_or(u64::MAX, |s| s.saturating_add(1));
        let mut hashed = HashReader::new(reader.take(limit));
        copy_large(&mut hashed, tmp.as_file()).map_err(|e| ImageError::io(&tmp_path, e))?;
        let (actual, size) = hashed.finish();
        if let Some(expected_size) = expected_size {
            if size != expected_size {
                return Err(ImageError::SizeMismatch {
                    location: location.to_owned(),
                    digest: expected.clone(),
                    expected: expected_size,
                    actual: size,
                });
            }
        }
        if &actual != expected {
            return Err(ImageError::DigestMismatch {
                location: location.to_owned(),
                expected: expected.clone(),
                actual,
            });
        }
        let dest = self.blob_path(expected);
        tmp.persist(&dest)
            .map_err(|e| ImageError::io(&dest, e.error))?;
        Ok(PutOutcome::Stored)
    }

    /// Opens a cached blob after verifying its whole content against its
    /// digest (and size, when given); the returned file is positioned at 0.
    pub fn get(&self, digest: &Digest) -> Result<File, ImageError> {
        self.get_checked(digest, None)
    }

    pub(crate) fn get_checked(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
    ) -> Result<File, ImageError> {
        let path = self.blob_path(digest);
        let (file, _) = open_verified(&path, digest, expected_size).inspect_err(|e| {
            if matches!(
                e,
                ImageError::DigestMismatch { .. } | ImageError::SizeMismatch { .. }
            ) {
                // A corrupt cache entry is useless: drop it so the next import replaces it.
                let _ = fs::remove_file(&path);
            }
        })?;
        Ok(file)
    }

    /// Reads a whole small blob (at most `limit` bytes), verified.
    pub fn read_small(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest);
        let meta = fs::metadata(&path).map_err(|e| missing_or_io(&path, digest, &self.root, e))?;
        if meta.len() > limit {
            return Err(ImageError::TooLarge {
                location: path.display().to_string(),
                what: "a json blob",
                size: meta.len(),
                limit,
            });
        }
        let mut buf = Vec::new();
        self.get(digest)?
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(|e| ImageError::io(&path, e))?;
        Ok(buf)
    }
}

fn missing_or_io(path: &Path, digest: &Digest, root: &Path, e: io::Error) -> ImageError {
    if e.kind() == io::ErrorKind::NotFound {
        ImageError::BlobMissing {
            digest: digest.clone(),
            location: root.display().to_string(),
        }
    } else {
        ImageError::io(path, e)
    }
}

/// Opens a regular file (never blocking on a fifo), hashes it whole and
/// checks digest and size; returns it rewound, with its size.
pub(crate) fn open_verified(
    path: &Path,
    digest: &Digest,
    expected_size: Option<u64>,
) -> Result<(File, u64), ImageError> {
    let root = path.parent().unwrap_or(path);
    let mut file = open_regular(path).map_err(|e| missing_or_io(path, digest, root, e))?;
    let (actual, size) = hash_reader(&mut file, path)?;
    let location = path.display().to_string();
    if let Some(expected) = expected_size {
        if expected != size {
            return Err(ImageError::SizeMismatch {
                location,
                digest: digest.clone(),
                expected,
                actual: size,
            });
        }
    }
    if &actual != digest {
        return Err(ImageError::DigestMismatch {
            location,
            expected: digest.clone(),
            actual,
        });
    }
    file.rewind().map_err(|e| ImageError::io(path, e))?;
    Ok((file, size))
}

/// Opens a file for reading, refusing anything but a regular file.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let nonblock = i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0);
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nonblock)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// `io::copy` with a large buffer.
pub(crate) fn copy_large(reader: &mut impl Read, mut writer: impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_BUF];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| ImageError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| ImageError::io(path, e))?;
    // Another process may have created it meanwhile: keep theirs.
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(ImageError::io(path, e.error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_verifies_and_get_reverifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = BlobCache::open(dir.path().join("c")).expect("opens");
        assert!(dir.path().join("c/oci-layout").is_file());
        assert!(dir.path().join("c/index.json").is_file());
        let good = digest_of(b"hello");
        assert_eq!(
            cache.put(&b"hello"[..], &good, Some(5)).expect("stored"),
            PutOutcome::Stored
        );
        assert_eq!(
            cache.put(&b"hello"[..], &good, Some(5)).expect("present"),
            PutOutcome::AlreadyPresent
        );
        let mut s = String::new();
        cache
            .get(&good)
            .expect("gets")
            .read_to_string(&mut s)
            .expect("reads");
        assert_eq!(s, "hello");

        // A mismatch names both digests and leaves no temporary file behind.
        let err = cache
            .put(&b"hellO"[..], &digest_of(b"other"), None)
            .expect_err("mismatch");
        let msg = err.to_string();
        assert!(
            msg.contains(&digest_of(b"other").to_string())
                && msg.contains(&digest_of(b"hellO").to_string()),
            "{msg}"
        );
        let err = cache
            .put(&b"hello!"[..], &digest_of(b"hello!"), Some(5))
            .expect_err("size");
        assert!(matches!(err, ImageError::SizeMismatch { .. }), "{err}");
        let names: Vec<_> = fs::read_dir(cache.tmp_dir())
            .expect("lists")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(good.hex())]);

        // Tampering inside the cache is caught on get, and the blob is dropped.
        fs::write(cache.blob_path(&good), b"jello").expect("tamper");
        let err = cache.get(&good).expect_err("tampered");
        assert!(
            matches!(err, ImageError::DigestMismatch { .. }) && err.is_bad_input(),
            "{err}"
        );
        assert!(!cache.contains(&good));
        assert!(matches!(
            cache.get(&good),
            Err(ImageError::BlobMissing { .. })
        ));
    }
}
