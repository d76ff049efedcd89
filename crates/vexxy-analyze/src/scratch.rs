//! Scratch directories of one analysis (`vexxy-script-*` for a test
//! script, `vexxy-rootfs-*` for an image unpacked outside the cache):
//! removed when the analysis drops them, and locked (`flock`) while it
//! holds them, so that [`sweep`] can remove those of analyses whose
//! process died (`kill -9`, a crash) without touching a live one. The
//! kernel releases the lock with the process, whatever killed it.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use rustix::fs::{flock, FlockOperation, Mode, OFlags};

/// The names of scratch directories start with one of these.
pub(crate) const SCRIPT_PREFIX: &str = "vexxy-script-";
pub(crate) const ROOTFS_PREFIX: &str = "vexxy-rootfs-";

/// A directory is created a moment before its owner locks it: younger
/// ones are left alone.
const GRACE: Duration = Duration::from_secs(5);

/// A scratch directory in use: locked while this lives, removed on drop.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    // the lock is released after the directory is removed (fields drop
    // in order): a sweeper never finds it unlocked and half removed
    dir: tempfile::TempDir,
    _lock: std::os::fd::OwnedFd,
}

impl ScratchDir {
    /// A new directory `<base>/<prefix><random>`, locked.
    pub(crate) fn new_in(base: &Path, prefix: &str) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(base)?;
        let lock = open_dir(dir.path())?;
        flock(&lock, FlockOperation::LockShared)?;
        Ok(Self { dir, _lock: lock })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn open_dir(path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Removes the scratch directories directly in `base` that no live
/// process holds (unlocked, and older than a few seconds); returns them.
/// A directory with a mount point beneath it is left alone (and logged):
/// removal never crosses into another file system. A missing `base` is
/// nothing to sweep.
pub(crate) fn sweep(base: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(base) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(SCRIPT_PREFIX) || name.starts_with(ROOTFS_PREFIX)) {
            continue;
        }
        let path = entry.path();
        match sweep_one(&path) {
            Ok(true) => removed.push(path),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), "removing a leftover scratch directory: {e}")
            }
        }
    }
    Ok(removed)
}

/// `Ok(true)` when `path` was a leftover and is gone.
fn sweep_one(path: &Path) -> io::Result<bool> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok(false);
    }
    let age = meta
        .modified()
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or(Duration::ZERO);
    if age < GRACE {
        return Ok(false);
    }
    let lock = open_dir(path)?;
    match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        // a live analysis holds it
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    if let Some(mount) = mount_beneath(path)? {
        return Err(io::Error::other(format!(
            "{} is mounted beneath it; left alone",
            mount.display()
        )));
    }
    tracing::info!(path = %path.display(), "removing the scratch directory of an analysis that died");
    fs::remove_dir_all(path)?;
    Ok(true)
}

/// A mount point at or beneath `dir`, if any (from `/proc/self/mountinfo`).
fn mount_beneath(dir: &Path) -> io::Result<Option<PathBuf>> {
    let dir = fs::canonicalize(dir)?;
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .find(|m| m.starts_with(&dir)))
}

/// Mount points in mountinfo escape space, tab, newline and backslash
/// as octal (`\040`).
fn unescape_mountinfo(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            d.iter()
                .all(|b| (b'0'..=b'7').contains(b))
                .then(|| d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0')))
        });
        match (bytes[i], octal) {
            (b'\\', Some(n)) if n <= 0xff => {
                out.push(n as u8);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, secs: u64) {
        let t = SystemTime::now() - Duration::from_secs(secs);
        fs::File::open(path)
            .and_then(|f| f.set_modified(t))
            .expect("set mtime");
    }

    /// A held directory stays; one whose holder is gone, or that nobody
    /// ever locked, goes once it is a few seconds old; other names stay.
    #[test]
    fn only_unheld_scratch_directories_are_swept() {
        let base = tempfile::tempdir().expect("tempdir");
        let held = ScratchDir::new_in(base.path(), SCRIPT_PREFIX).expect("held");
        let dropped = ScratchDir::new_in(base.path(), ROOTFS_PREFIX).expect("dropped");
        let dropped_path = dropped.path().to_owned();
        // as if its process died: the lock goes, the directory stays
        let ScratchDir { dir, _lock } = dropped;
        drop(_lock);
        let dead = dir.keep();
        fs::create_dir_all(dead.join("rootfs/usr/bin")).expect("tree");
        fs::write(dead.join("rootfs/usr/bin/x"), b"x").expect("file");
        let unlocked = base.path().join("vexxy-script-old");
        fs::create_dir(&unlocked).expect("unlocked");
        let young = base.path().join("vexxy-script-young");
        fs::create_dir(&young).expect("young");
        let other = base.path().join("something-else");
        fs::create_dir(&other).expect("other");
        for p in [held.path(), &dead, &unlocked, &other] {
            age(p, 60);
        }

        let mut removed = sweep(base.path()).expect("sweep");
        removed.sort();
        let mut want = vec![dropped_path, unlocked];
        want.sort();
        assert_eq!(removed, want);
        assert!(held.path().is_dir() && young.is_dir() && other.is_dir());
        assert!(sweep(&base.path().join("absent"))
            .expect("absent")
            .is_empty());
        let held_path = held.path().to_owned();
        drop(held);
        assert!(!held_path.exists(), "removed on drop");
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(
            unescape_mountinfo(r"/run/a\040b\134c"),
            PathBuf::from(r"/run/a b\c")
        );
        assert_eq!(unescape_mountinfo(r"/x\9"), PathBuf::from(r"/x\9"));
    }
}
