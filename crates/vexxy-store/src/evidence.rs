//! The content-addressed evidence store: every file an analysis produced
//! is kept once under its SHA-256, in a local directory by default or in
//! S3-compatible object storage. Rows in the database (`artifacts`) name
//! the digests; the retention sweeper deletes blobs no row names any more.
//!
//! Both backends are `object_store` stores under one content-addressing
//! layer ([`Blobs`]): keys `<prefix>sha256/<2 hex>/<64 hex>`, the digest
//! and the size checked on every read, the same put/get/list/delete
//! semantics. A write is never seen half done: S3 PUTs are atomic, and
//! the local backend writes a file of its own (created exclusively, so
//! two writers never share it), syncs it and renames it into place.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use futures_util::StreamExt as _;
use object_store::{
    local::LocalFileSystem, path::Path as ObjectPath, ObjectStore, ObjectStoreExt as _, PutPayload,
};
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;

use crate::StoreError;

/// Where evidence blobs live.
#[derive(Debug)]
pub enum EvidenceStore {
    Local(LocalStore),
    #[cfg(feature = "s3")]
    S3(crate::s3::S3Store),
}

impl EvidenceStore {
    async fn blobs(&self) -> Result<&Blobs, StoreError> {
        match self {
            Self::Local(s) => s.blobs().await,
            #[cfg(feature = "s3")]
            Self::S3(s) => Ok(s.blobs()),
        }
    }

    /// Stores `bytes` and returns their digest (`sha256:<hex>`). Storing
    /// the same bytes again writes them again, which repairs a damaged copy.
    pub async fn put(&self, bytes: Vec<u8>) -> Result<String, StoreError> {
        self.blobs().await?.put(bytes).await
    }

    /// The blob with this digest, checked against it; `None` when absent.
    pub async fn get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let hex = parse_digest(digest)?;
        self.blobs().await?.get(digest, hex).await
    }

    /// Removes the blob; removing an absent blob is not an error.
    pub async fn delete(&self, digest: &str) -> Result<(), StoreError> {
        let hex = parse_digest(digest)?;
        self.blobs().await?.delete(hex).await
    }

    /// Every stored digest (`sha256:<hex>`), sorted, for the sweeper.
    pub async fn list(&self) -> Result<Vec<String>, StoreError> {
        self.blobs().await?.list().await
    }

    /// Whether a blob can be stored now (for `/readyz`): a local
    /// directory's disk has at least `min_free` bytes free, and a small
    /// probe object (`<prefix>health/probe`, beside the blobs, never
    /// listed as one) is written.
    pub async fn check_writable(&self, min_free: u64) -> Result<(), StoreError> {
        self.check_space(min_free)?;
        self.blobs().await?.probe().await
    }

    /// `Err(Full)` when a local directory's disk has less than
    /// `min_free` bytes free (a statvfs, no I/O); object storage has no
    /// free space to look at.
    pub fn check_space(&self, min_free: u64) -> Result<(), StoreError> {
        match self {
            Self::Local(s) => s.check_space(min_free),
            #[cfg(feature = "s3")]
            Self::S3(_) => Ok(()),
        }
    }

    /// A short description for logs and `/readyz`.
    pub fn describe(&self) -> String {
        match self {
            Self::Local(s) => format!("local directory {}", s.root.display()),
            #[cfg(feature = "s3")]
            Self::S3(s) => s.describe(),
        }
    }
}

/// `sha256:<64 hex>` → the hex part; anything else is refused (digests
/// come from URLs and rows, and become keys).
pub(crate) fn parse_digest(digest: &str) -> Result<&str, StoreError> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| StoreError::BadDigest(digest.to_owned()))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(StoreError::BadDigest(digest.to_owned()));
    }
    Ok(hex)
}

/// Content addressing over any object store: what both backends share.
#[derive(Clone)]
pub(crate) struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Prepended to every key; empty for none.
    prefix: ObjectPath,
    /// What a key is appended to in messages: `s3://BUCKET` or the directory.
    base: String,
}

impl fmt::Debug for Blobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blobs")
            .field("base", &self.base)
            .field("prefix", &self.prefix.as_ref())
            .finish_non_exhaustive()
    }
}

impl Blobs {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath, base: String) -> Self {
        Self {
            store,
            prefix,
            base,
        }
    }

    /// `<prefix>sha256/<2 hex>/<64 hex>`; `hex` is already validated.
    pub(crate) fn key(&self, hex: &str) -> ObjectPath {
        self.prefix.clone().join("sha256").join(&hex[..2]).join(hex)
    }

    fn error(&self, op: &str, key: &ObjectPath, e: object_store::Error) -> StoreError {
        StoreError::Object(format!("{op} {}/{key}: {e}", self.base))
    }

    /// A plain PUT of the same bytes under the same key is idempotent,
    /// costs one write, and repairs a damaged copy.
    async fn put(&self, bytes: Vec<u8>) -> Result<String, StoreError> {
        let hex = hex::encode(Sha256::digest(&bytes));
        let key = self.key(&hex);
        self.store
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(|e| self.error("put", &key, e))?;
        Ok(format!("sha256:{hex}"))
    }

    /// The blob, refused as corrupt unless it has the size the store
    /// reports for it and hashes to its name.
    async fn get(&self, digest: &str, hex: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(hex);
        let found = match self.store.get(&key).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error("get", &key, e)),
        };
        let size = found.meta.size;
        let bytes = found
            .bytes()
            .await
            .map_err(|e| self.error("read", &key, e))?;
        if bytes.len() as u64 != size || hex::encode(Sha256::digest(&bytes)) != hex {
            return Err(StoreError::Corrupt(digest.to_owned()));
        }
        Ok(Some(bytes.into()))
    }

    /// Writes the probe object `<prefix>health/probe`.
    async fn probe(&self) -> Result<(), StoreError> {
        let key = self.prefix.clone().join("health").join("probe");
        self.store
            .put(&key, PutPayload::from_static(b"ok\n"))
            .await
            .map_err(|e| self.error("put", &key, e))?;
        Ok(())
    }

    async fn delete(&self, hex: &str) -> Result<(), StoreError> {
        let key = self.key(hex);
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", &key, e)),
        }
    }

    /// Every digest stored under `<prefix>sha256/`, sorted; objects that
    /// do not follow the layout (other names, a blob in the wrong shard,
    /// unfinished writes) are not evidence.
    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let base = self.prefix.clone().join("sha256");
        let mut objects = self.store.list(Some(&base));
        let mut out = Vec::new();
        while let Some(object) = objects.next().await {
            let object = object.map_err(|e| self.error("list", &base, e))?;
            let Some(name) = object.location.filename() else {
                continue;
            };
            let digest = format!("sha256:{name}");
            if parse_digest(&digest).is_ok() && object.location == self.key(name) {
                out.push(digest);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Blobs as files `<root>/sha256/<2 hex>/<64 hex>` (object_store's local
/// filesystem, syncing every write). The directory is created on first use.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    blobs: OnceCell<Blobs>,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            blobs: OnceCell::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `Err(Full)` when the directory's disk has less than `min_free`
    /// bytes free.
    pub fn check_space(&self, min_free: u64) -> Result<(), StoreError> {
        // the directory itself may not exist before the first blob
        let mut dir = self.root.as_path();
        while !dir.exists() {
            match dir.parent() {
                Some(parent) => dir = parent,
                None => break,
            }
        }
        let free = crate::free_space(dir)?;
        if free < min_free {
            return Err(StoreError::Full {
                path: self.root.display().to_string(),
                free,
                min: min_free,
            });
        }
        Ok(())
    }

    async fn blobs(&self) -> Result<&Blobs, StoreError> {
        self.blobs
            .get_or_try_init(|| async {
                let shown = self.root.display().to_string();
                tokio::fs::create_dir_all(&self.root)
                    .await
                    .map_err(|e| StoreError::Io(shown.clone(), e))?;
                let fs = LocalFileSystem::new_with_prefix(&self.root)
                    .map_err(|e| StoreError::Object(format!("local directory {shown}: {e}")))?
                    .with_fsync(true);
                Ok(Blobs::new(Arc::new(fs), ObjectPath::default(), shown))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    /// Directories written by the hand-made backend this one replaced
    /// stay readable: same paths, leftovers of its writes ignored.
    #[tokio::test]
    async fn the_local_layout_is_plain_files_by_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("evidence");
        let store = EvidenceStore::Local(LocalStore::new(&root));
        assert_eq!(
            store.describe(),
            format!("local directory {}", root.display())
        );
        assert_eq!(
            store.list().await.expect("list empty"),
            Vec::<String>::new()
        );

        let shard = root.join("sha256").join(&HELLO[..2]);
        std::fs::create_dir_all(&shard).expect("shard");
        std::fs::write(shard.join(HELLO), b"hello").expect("blob");
        std::fs::write(shard.join(format!(".{HELLO}.1.abc.tmp")), b"he").expect("old temp");
        std::fs::write(shard.join(format!("{HELLO}#1")), b"hel").expect("unfinished put");
        let digest = format!("sha256:{HELLO}");
        assert_eq!(store.list().await.expect("list"), vec![digest.clone()]);
        assert_eq!(
            store.get(&digest).await.expect("get").as_deref(),
            Some(&b"hello"[..])
        );

        // what put writes is that same file
        std::fs::remove_file(shard.join(HELLO)).expect("remove");
        assert_eq!(store.put(b"hello".to_vec()).await.expect("put"), digest);
        assert_eq!(std::fs::read(shard.join(HELLO)).expect("read"), b"hello");

        // a blob changed on disk is refused, not served
        std::fs::write(shard.join(HELLO), b"tampered").expect("tamper");
        assert!(matches!(store.get(&digest).await, Err(StoreError::Corrupt(d)) if d == digest));
    }

    #[tokio::test]
    async fn digests_that_could_escape_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EvidenceStore::Local(LocalStore::new(dir.path()));
        for bad in ["sha256:../../etc/passwd", "md5:abc", "sha256:ABCD", ""] {
            assert!(
                matches!(store.get(bad).await, Err(StoreError::BadDigest(_))),
                "{bad}"
            );
            assert!(
                matches!(store.delete(bad).await, Err(StoreError::BadDigest(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn an_unusable_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("not-a-directory");
        std::fs::write(&file, b"x").expect("file");
        let store = EvidenceStore::Local(LocalStore::new(&file));
        let err = store.put(b"hello".to_vec()).await.expect_err("refused");
        assert!(err.to_string().contains("not-a-directory"), "{err}");
    }
}
