//! What an analysis keeps between runs, all under one directory: the blob
//! cache (an OCI layout), unpacked root filesystems and execution
//! profiles. Both of the latter are shared by every process on the host
//! (file locks) and bounded in size (least recently used first out).

use std::{
    fs,
    path::{Path, PathBuf},
    time::SystemTime,
};

use rustix::fs::{flock, FlockOperation};
use vexxy_image::{BlobCache, RootfsCache};
use vexxy_model::ExecutionProfile;

use crate::AnalyzeError;

/// Where an analysis caches, and how much it may keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caches {
    root: PathBuf,
    /// Most bytes of unpacked root filesystems kept.
    pub rootfs_max_bytes: u64,
    /// Most bytes of stored execution profiles kept.
    pub profiles_max_bytes: u64,
    /// Where one-shot commands unpack (`None`: `/dev/shm` when it has room,
    /// else beside the cache).
    pub scratch: Option<PathBuf>,
}

/// Default bound of the profile store.
pub const DEFAULT_PROFILES_MAX_BYTES: u64 = 1 << 30;

impl Caches {
    /// Caches under `root` with the default bounds.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            rootfs_max_bytes: RootfsCache::DEFAULT_MAX_BYTES,
            profiles_max_bytes: DEFAULT_PROFILES_MAX_BYTES,
            scratch: None,
        }
    }

    /// The caches of one tenant, under `tenants/<tenant>` with the same
    /// bounds (each tenant's caches are bounded on their own): a tenant
    /// reuses only blobs, unpacked images and profiles its own pulls and
    /// runs made, so knowing another tenant's digests gains nothing.
    /// Characters other than ASCII letters, digits, `-` and `_` in the id
    /// become `_`.
    #[must_use]
    pub fn for_tenant(&self, tenant: &str) -> Self {
        let safe: String = tenant
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            root: self.root.join("tenants").join(safe),
            ..self.clone()
        }
    }

    /// The default location: `$VEXXY_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/vexxy`, else `~/.cache/vexxy`.
    pub fn default_location() -> Result<Self, AnalyzeError> {
        let blobs = BlobCache::default_root()?;
        Ok(Self::at(blobs.parent().unwrap_or(&blobs)))
    }

    /// The directory holding every cache.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob cache (`blobs/`).
    pub fn blobs(&self) -> Result<BlobCache, AnalyzeError> {
        Ok(BlobCache::open(self.root.join("blobs"))?)
    }

    /// Unpacked root filesystems (`rootfs/`), keyed by config digest.
    pub fn rootfs(&self) -> Result<RootfsCache, AnalyzeError> {
        Ok(RootfsCache::open(
            self.root.join("rootfs"),
            self.rootfs_max_bytes,
        )?)
    }

    /// Stored execution profiles (`profiles/`).
    pub fn profiles(&self) -> ProfileStore {
        ProfileStore {
            dir: self.root.join("profiles"),
            max_bytes: self.profiles_max_bytes,
        }
    }
}

/// Execution profiles by run key: `<dir>/<key>.json`.
///
/// Writes are atomic renames, so a reader sees a whole profile or none; a
/// read refreshes the file's modification time, which orders eviction.
/// Eviction runs under an exclusive lock on `<dir>/.lock`, so two
/// processes never evict at once; a profile removed while another process
/// reads it stays readable through its open descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileStore {
    dir: PathBuf,
    max_bytes: u64,
}

impl ProfileStore {
    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The profile stored under `key`; a missing or unreadable one is none
    /// (an unreadable one is logged and the run happens again).
    pub fn get(&self, key: &str) -> Option<ExecutionProfile> {
        let path = self.path(key);
        if !path.is_file() {
            return None;
        }
        match vexxy_profile::read(&path) {
            Ok(p) => {
                if let Ok(f) = fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                Some(p)
            }
            Err(e) => {
                tracing::warn!("ignoring the stored profile {}: {e}", path.display());
                None
            }
        }
    }

    /// Stores `profile` under `key`, then evicts beyond the size bound.
    pub fn put(&self, key: &str, profile: &ExecutionProfile) -> Result<PathBuf, AnalyzeError> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| AnalyzeError::io(format!("creating {}", self.dir.display()), &e))?;
        let path = self.path(key);
        vexxy_profile::write(&path, profile)?;
        if let Err(e) = self.evict() {
            tracing::warn!("evicting stored profiles: {e}");
        }
        Ok(path)
    }

    /// Removes the least recently used profiles until the rest fit the
    /// bound; returns how many were removed.
    pub fn evict(&self) -> Result<usize, AnalyzeError> {
        let lock_path = self.dir.join(".lock");
        let lock = fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| AnalyzeError::io(format!("opening {}", lock_path.display()), &e))?;
        flock(&lock, FlockOperation::LockExclusive)
            .map_err(|e| AnalyzeError::io(format!("locking {}", lock_path.display()), &e.into()))?;
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        let listing = fs::read_dir(&self.dir)
            .map_err(|e| AnalyzeError::io(format!("listing {}", self.dir.display()), &e))?;
        for entry in listing.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            if let Ok(meta) = entry.metadata() {
                if meta.is_file() {
                    let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    entries.push((used, meta.len(), path));
                }
            }
        }
        let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
        entries.sort();
        let mut removed = 0;
        for (_, size, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            match fs::remove_file(&path) {
                Ok(()) => {
                    total = total.saturating_sub(size);
                    removed += 1;
                    tracing::info!("evicted the stored profile {}", path.display());
                }
                Err(e) => tracing::warn!("removing {}: {e}", path.display()),
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(image: &str) -> ExecutionProfile {
        let mut p = ExecutionProfile::default();
        p.run.image = image.to_owned();
        p
    }

    #[test]
    fn tenants_have_caches_of_their_own() {
        let all = Caches::at("/var/cache/vexxy");
        let a = all.for_tenant("org-a");
        let b = all.for_tenant("org-b");
        assert_ne!(a.root(), b.root());
        assert_eq!(a.root(), Path::new("/var/cache/vexxy/tenants/org-a"));
        assert_eq!(
            all.for_tenant("../../etc").root(),
            Path::new("/var/cache/vexxy/tenants/______etc"),
            "an id never leaves the tenants directory"
        );
        assert_eq!(a.rootfs_max_bytes, all.rootfs_max_bytes);
    }

    #[test]
    fn profiles_round_trip_and_the_least_recently_used_go_first() {
        let t = tempfile::tempdir().unwrap();
        let mut caches = Caches::at(t.path());
        caches.profiles_max_bytes = u64::MAX;
        let store = caches.profiles();
        assert!(store.get("a").is_none());
        for key in ["a", "b", "c"] {
            store.put(key, &profile(key)).unwrap();
        }
        assert_eq!(store.get("b").unwrap().run.image, "b");
        let one = fs::metadata(store.path("a")).unwrap().len();
        // age them: a oldest, then c, and b just read
        let age = |key: &str, secs: u64| {
            let f = fs::File::options()
                .append(true)
                .open(store.path(key))
                .unwrap();
            f.set_modified(SystemTime::now() - std::time::Duration::from_secs(secs))
                .unwrap();
        };
        age("a", 300);
        age("c", 200);
        let store = ProfileStore {
            max_bytes: one * 2,
            ..store
        };
        assert_eq!(store.evict().unwrap(), 1);
        assert!(store.get("a").is_none(), "the oldest goes first");
        assert!(store.get("b").is_some() && store.get("c").is_some());
    }

    #[test]
    fn an_unreadable_profile_is_none() {
        let t = tempfile::tempdir().unwrap();
        let store = Caches::at(t.path()).profiles();
        fs::create_dir_all(store.dir()).unwrap();
        fs::write(store.path("bad"), b"{not json").unwrap();
        assert!(store.get("bad").is_none());
    }
}
