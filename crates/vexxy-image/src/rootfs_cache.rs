//! The unpacked-rootfs cache: `<base>/<key>/` directories shared by every
//! process of the host, coordinated with advisory file locks and bounded in
//! size by least-recently-used eviction.
//!
//! Layout of `<base>`:
//!
//! - `<key>/`: a complete rootfs; complete means its `.vexxy-complete`
//!   marker holds the entry's recorded size in bytes (written before the
//!   directory is renamed into place, so a half-written tree never has one);
//! - `<key>.lock`: the *use* lock. Leases hold it shared for as long as they
//!   live (unpacking included); eviction takes it exclusively, without
//!   blocking, so it never touches an entry somebody uses. Its mtime is the
//!   entry's last-used time;
//! - `<key>.unpack`: the *unpack* lock, held exclusively (under a shared use
//!   lock) by the one process unpacking the key; the others wait on it;
//! - `.tmp-<key>-<pid>-<random>/`: an unpack in progress, existing only while
//!   its unpacker holds the unpack lock;
//! - `.trash-<key>-<pid>-<random>/`: an evicted entry being deleted.
//!
//! Lock files are unlinked only under the exclusive use lock, and every lock
//! taken is checked to be on the file the path names now (else it is taken
//! again), so nobody ever holds a lock on a file that has been unlinked.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::{self, Read, Write},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    time::SystemTime,
};

use rustix::{fs::FlockOperation, io::Errno};

use crate::{BlobCache, ImageError, UnpackReport};

/// The completion marker inside an entry; its content is the entry's size.
const MARKER: &str = ".vexxy-complete";
/// Bytes counted per file, directory, symlink and hard link on top of the
/// content written: an inode and the block rounding of small files.
const PER_ENTRY_OVERHEAD: u64 = 4096;
const TMP_PREFIX: &str = ".tmp-";
const TRASH_PREFIX: &str = ".trash-";

/// A directory of unpacked root filesystems keyed by config digest (hex),
/// safe to share between processes and bounded to `max_bytes` of recorded
/// size by evicting the least recently used entries nobody is using.
#[derive(Clone, Debug)]
pub struct RootfsCache {
    base: PathBuf,
    max_bytes: u64,
}

/// A complete rootfs in the cache, kept from eviction while this value lives
/// (it holds the entry's lock shared; dropping it releases the lock).
#[derive(Debug)]
pub struct RootfsLease {
    path: PathBuf,
    lock: File,
}

/// What [`RootfsCache::evict`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvictReport {
    /// Keys of the complete entries removed to meet the limit, least recently used first.
    pub evicted: Vec<String>,
    /// Recorded bytes of the evicted entries.
    pub freed_bytes: u64,
    /// Keys that would have been evicted but are in use (their lock is held).
    pub skipped_in_use: Vec<String>,
    /// Leftovers removed: stale temporary directories, trash, incomplete entries.
    pub cleaned: usize,
    /// Recorded bytes of the complete entries left.
    pub total_bytes: u64,
}

impl RootfsLease {
    /// The root filesystem directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RootfsLease {
    fn drop(&mut self) {
        // closing the file releases the lock too; this also covers copies of
        // the descriptor
        let _ = rustix::fs::flock(&self.lock, FlockOperation::Unlock);
    }
}

impl RootfsCache {
    /// The default size limit: 20 GiB.
    pub const DEFAULT_MAX_BYTES: u64 = 20 << 30;

    /// Opens (creating when missing) the cache directory `base`, keeping the
    /// recorded size of its entries at or below `max_bytes` where it can.
    pub fn open(base: impl Into<PathBuf>, max_bytes: u64) -> Result<Self, ImageError> {
        let base = base.into();
        fs::create_dir_all(&base).map_err(|e| ImageError::io(&base, e))?;
        Ok(Self { base, max_bytes })
    }

    /// The default cache directory: `rootfs/` beside
    /// [`BlobCache::default_root`] (`$VEXXY_CACHE_DIR/rootfs`, else
    /// `$XDG_CACHE_HOME/vexxy/rootfs`, else `$HOME/.cache/vexxy/rootfs`).
    pub fn default_base() -> Result<PathBuf, ImageError> {
        let blobs = BlobCache::default_root()?;
        Ok(blobs.parent().unwrap_or(&blobs).join("rootfs"))
    }

    /// The cache directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The size limit in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// A lease on the complete rootfs `<base>/<key>/`, unpacking it first
    /// when needed: `unpack` is called with an empty directory and runs at
    /// most once per key across all processes sharing the cache (the others
    /// wait for it). Returns its report when it ran. A failed unpack leaves
    /// nothing behind. Afterwards the cache is brought under its limit (see
    /// [`RootfsCache::evict`]; errors of that step are not reported here,
    /// call `evict` to see them); the entry just acquired is never evicted.
    ///
    /// `key` is a lowercase hex digest (1 to 128 characters).
    pub fn acquire(
        &self,
        key: &str,
        unpack: impl FnOnce(&Path) -> Result<UnpackReport, ImageError>,
    ) -> Result<(RootfsLease, Option<UnpackReport>), ImageError> {
        self.check_key(key)?;
        let path = self.base.join(key);
        let lock = lock(&self.lock_path(key), FlockOperation::LockShared)?
            .ok_or_else(|| would_block(&self.lock_path(key)))?;
        let report = if entry_size(&path).is_some() {
            None
        } else {
            match self.unpack_locked(key, unpack) {
                Ok(report) => report,
                Err(e) => {
                    drop(lock);
                    // its temporary directory is gone; drop the lock files
                    let _ = self.sweep_key(key, &[]);
                    return Err(e);
                }
            }
        };
        touch(&lock, &self.lock_path(key))?;
        let lease = RootfsLease { path, lock };
        let _ = self.evict_except(Some(key));
        Ok((lease, report))
    }

    /// Removes leftovers (temporary directories of unpacks whose unpacker is
    /// gone, trash, incomplete entries), then, while the recorded size of
    /// the complete entries exceeds the limit, removes the least recently
    /// used ones, skipping every entry whose lock cannot be taken
    /// exclusively without waiting (somebody uses it).
    pub fn evict(&self) -> Result<EvictReport, ImageError> {
        self.evict_except(None)
    }

    /// Unpacks `key` under its unpack lock (the caller holds the use lock
    /// shared); `None` when another process completed it meanwhile.
    fn unpack_locked(
        &self,
        key: &str,
        unpack: impl FnOnce(&Path) -> Result<UnpackReport, ImageError>,
    ) -> Result<Option<UnpackReport>, ImageError> {
        let unpack_lock = self.base.join(format!("{key}.unpack"));
        let _unpacking = lock(&unpack_lock, FlockOperation::LockExclusive)?
            .ok_or_else(|| would_block(&unpack_lock))?;
        let path = self.base.join(key);
        if entry_size(&path).is_some() {
            return Ok(None);
        }
        if fs::symlink_metadata(&path).is_ok() {
            // an incomplete entry (left by an older vexxy): nobody can rely on it
            self.trash(key, &path)?;
        }
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{TMP_PREFIX}{key}-{}-", std::process::id()))
            .permissions(fs::Permissions::from_mode(0o755))
            .tempdir_in(&self.base)
            .map_err(|e| ImageError::io(&self.base, e))?;
        let report = unpack(tmp.path())?;
        let size = recorded_size(&report);
        write_marker(tmp.path(), size)?;
        fs::rename(tmp.path(), &path).map_err(|e| ImageError::io(&path, e))?;
        let _ = tmp.keep();
        Ok(Some(report))
    }

    fn evict_except(&self, keep: Option<&str>) -> Result<EvictReport, ImageError> {
        let mut report = EvictReport::default();
        let keys = self.scan()?;
        for trash in &keys.trash {
            if fs::remove_dir_all(trash).is_ok() {
                report.cleaned += 1;
            }
        }
        let mut complete = Vec::new();
        for (key, state) in &keys.keys {
            if let Some(size) = state.size {
                complete.push((state.used, key, size));
            }
            if state.size.is_none() || !state.tmps.is_empty() {
                report.cleaned += self.sweep_key(key, &state.tmps)?;
            }
        }
        complete.sort();
        report.total_bytes = complete.iter().map(|(_, _, size)| size).sum();
        for (_, key, size) in complete {
            if report.total_bytes <= self.max_bytes {
                break;
            }
            if Some(key.as_str()) == keep {
                continue;
            }
            let lock_path = self.lock_path(key);
            let Some(held) = lock(&lock_path, FlockOperation::NonBlockingLockExclusive)? else {
                report.skipped_in_use.push(key.clone());
                continue;
            };
            let path = self.base.join(key);
            // re-read under the lock: another process may have evicted it
            if entry_size(&path).is_none() {
                report.total_bytes = report.total_bytes.saturating_sub(size);
                continue;
            }
            let trash = self.trash_name(key)?;
            fs::rename(&path, &trash).map_err(|e| ImageError::io(&path, e))?;
            self.unlink_locks(key)?;
            drop(held);
            let _ = fs::remove_dir_all(&trash);
            report.total_bytes = report.total_bytes.saturating_sub(size);
            report.freed_bytes += size;
            report.evicted.push(key.clone());
        }
        Ok(report)
    }

    /// Under the exclusive use lock of `key`, if nobody holds it: removes
    /// its temporary directories `tmps` (stale: an unpacker holds the use
    /// lock shared for as long as its directory exists), an incomplete
    /// entry, and the lock files when no complete entry is left. Returns
    /// how many directories were removed.
    fn sweep_key(&self, key: &str, tmps: &[PathBuf]) -> Result<usize, ImageError> {
        let lock_path = self.lock_path(key);
        let Some(held) = lock(&lock_path, FlockOperation::NonBlockingLockExclusive)? else {
            return Ok(0);
        };
        let mut removed = 0;
        for tmp in tmps {
            match fs::remove_dir_all(tmp) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io(tmp, e)),
            }
        }
        let path = self.base.join(key);
        if entry_size(&path).is_none() {
            if fs::symlink_metadata(&path).is_ok() {
                self.trash(key, &path)?;
                removed += 1;
            }
            self.unlink_locks(key)?;
        }
        drop(held);
        Ok(removed)
    }

    /// Removes a junk `<key>` (an incomplete entry): a directory is renamed
    /// to a trash name first, then deleted (what cannot be deleted now is
    /// trash for the next [`RootfsCache::evict`]).
    fn trash(&self, key: &str, path: &Path) -> Result<(), ImageError> {
        let is_dir = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        if !is_dir {
            return fs::remove_file(path).map_err(|e| ImageError::io(path, e));
        }
        let trash = self.trash_name(key)?;
        fs::rename(path, &trash).map_err(|e| ImageError::io(path, e))?;
        let _ = fs::remove_dir_all(&trash);
        Ok(())
    }

    /// A fresh, unused `.trash-<key>-<pid>-<random>` path.
    fn trash_name(&self, key: &str) -> Result<PathBuf, ImageError> {
        // an empty directory reserves the name; renaming a directory onto
        // an empty one replaces it
        let dir = tempfile::Builder::new()
            .prefix(&format!("{TRASH_PREFIX}{key}-{}-", std::process::id()))
            .tempdir_in(&self.base)
            .map_err(|e| ImageError::io(&self.base, e))?;
        Ok(dir.keep())
    }

    /// Unlinks the lock files of `key`; the caller holds its use lock exclusively.
    fn unlink_locks(&self, key: &str) -> Result<(), ImageError> {
        for path in [self.base.join(format!("{key}.unpack")), self.lock_path(key)] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(ImageError::io(&path, e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn lock_path(&self, key: &str) -> PathBuf {
        self.base.join(format!("{key}.lock"))
    }

    fn check_key(&self, key: &str) -> Result<(), ImageError> {
        if is_key(key) {
            return Ok(());
        }
        Err(ImageError::BadCacheKey {
            base: self.base.clone(),
            key: key.to_owned(),
            reason: if (1..=128).contains(&key.len()) {
                "not lowercase hex"
            } else {
                "length not between 1 and 128"
            },
        })
    }

    /// Everything in the cache directory, by key.
    fn scan(&self) -> Result<Scan, ImageError> {
        let mut scan = Scan::default();
        let dir = fs::read_dir(&self.base).map_err(|e| ImageError::io(&self.base, e))?;
        for item in dir {
            let item = item.map_err(|e| ImageError::io(&self.base, e))?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TRASH_PREFIX) {
                scan.trash.push(item.path());
            } else if let Some(rest) = name.strip_prefix(TMP_PREFIX) {
                let key = rest.split('-').next().unwrap_or_default();
                if is_key(key) {
                    scan.keys
                        .entry(key.to_owned())
                        .or_default()
                        .tmps
                        .push(item.path());
                }
            } else if let Some(key) = name
                .strip_suffix(".lock")
                .or_else(|| name.strip_suffix(".unpack"))
            {
                if is_key(key) {
                    scan.keys.entry(key.to_owned()).or_default();
                }
            } else if is_key(name) {
                let state = scan.keys.entry(name.to_owned()).or_default();
                state.size = entry_size(&item.path());
                state.used = fs::metadata(self.lock_path(name))
                    .or_else(|_| item.metadata())
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
            }
        }
        Ok(scan)
    }
}

/// The cache directory's content.
#[derive(Debug, Default)]
struct Scan {
    keys: BTreeMap<String, KeyState>,
    trash: Vec<PathBuf>,
}

/// One key's files.
#[derive(Debug)]
struct KeyState {
    /// Recorded size of the complete entry, if there is one.
    size: Option<u64>,
    /// Last used (the lock file's mtime).
    used: SystemTime,
    /// Its temporary directories.
    tmps: Vec<PathBuf>,
}

impl Default for KeyState {
    fn default() -> Self {
        Self {
            size: None,
            used: SystemTime::UNIX_EPOCH,
            tmps: Vec::new(),
        }
    }
}

fn is_key(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The bytes an entry is accounted for.
fn recorded_size(report: &UnpackReport) -> u64 {
    let entries = report.files + report.dirs + report.symlinks + report.hardlinks + 1;
    report
        .bytes_written
        .saturating_add(entries.saturating_mul(PER_ENTRY_OVERHEAD))
}

/// The recorded size of a complete entry; `None` when `dir` is missing or
/// incomplete (no marker, or one without a size).
fn entry_size(dir: &Path) -> Option<u64> {
    if !fs::symlink_metadata(dir).ok()?.is_dir() {
        return None;
    }
    let mut text = String::new();
    File::open(dir.join(MARKER))
        .ok()?
        .take(32)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}

/// Writes the completion marker into an unpacked tree, replacing whatever
/// the image put there without following it.
fn write_marker(dir: &Path, size: u64) -> Result<(), ImageError> {
    let marker = dir.join(MARKER);
    let removed = match fs::symlink_metadata(&marker) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&marker),
        Ok(_) => fs::remove_file(&marker),
        Err(_) => Ok(()),
    };
    removed.map_err(|e| ImageError::io(&marker, e))?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .and_then(|mut f| writeln!(f, "{size}"))
        .map_err(|e| ImageError::io(&marker, e))
}

/// Records now as the entry's last use.
fn touch(lock: &File, path: &Path) -> Result<(), ImageError> {
    lock.set_modified(SystemTime::now())
        .map_err(|e| ImageError::io(path, e))
}

fn would_block(path: &Path) -> ImageError {
    ImageError::io(path, io::Error::from(Errno::WOULDBLOCK))
}

/// Opens (creating) the lock file `path` and locks it; `None` when a
/// non-blocking lock is held by someone else. Loops until the locked file
/// is the one `path` names (an evictor may have unlinked it meanwhile).
fn lock(path: &Path, op: FlockOperation) -> Result<Option<File>, ImageError> {
    let err = |e: io::Error| ImageError::io(path, e);
    loop {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(err)?;
        match rustix::fs::flock(&file, op) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(err(e.into())),
        }
        let held = file.metadata().map_err(err)?;
        match fs::metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => return Ok(Some(file)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lowercase_hex_of_bounded_length() {
        assert!(is_key("0"));
        assert!(is_key(&"a".repeat(128)));
        for bad in ["", "A", "g", "../a", "a/b", "sha256:ab", ".tmp", "ab.lock"] {
            assert!(!is_key(bad), "{bad:?}");
        }
        assert!(!is_key(&"a".repeat(129)));
    }

    #[test]
    fn recorded_size_counts_content_and_entries() {
        let report = UnpackReport {
            files: 2,
            dirs: 1,
            bytes_written: 10,
            ..UnpackReport::default()
        };
        assert_eq!(recorded_size(&report), 10 + 4 * PER_ENTRY_OVERHEAD);
    }
}
