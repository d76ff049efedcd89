//! The content-addressed evidence store: every file an analysis produced
//! is kept once under its SHA-256, in a local directory by default or in
//! S3-compatible object storage. Rows in the database (`artifacts`) name
//! the digests; the retention sweeper deletes blobs no row names any more.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::StoreError;

/// Where evidence blobs live.
#[derive(Debug)]
pub enum EvidenceStore {
    Local(LocalStore),
    #[cfg(feature = "s3")]
    S3(crate::s3::S3Store),
}

impl EvidenceStore {
    /// Stores `bytes` and returns their digest (`sha256:<hex>`). Storing
    /// the same bytes twice is a no-op.
    pub async fn put(&self, bytes: Vec<u8>) -> Result<String, StoreError> {
        let hex = hex::encode(Sha256::digest(&bytes));
        match self {
            Self::Local(s) => s.put(&hex, bytes).await?,
            #[cfg(feature = "s3")]
            Self::S3(s) => s.put(&hex, bytes).await?,
        }
        Ok(format!("sha256:{hex}"))
    }

    /// The blob with this digest, checked against it; `None` when absent.
    pub async fn get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let hex = parse_digest(digest)?;
        let found = match self {
            Self::Local(s) => s.get(hex).await?,
            #[cfg(feature = "s3")]
            Self::S3(s) => s.get(hex).await?,
        };
        match found {
            Some(bytes) if hex::encode(Sha256::digest(&bytes)) != hex => {
                Err(StoreError::Corrupt(digest.to_owned()))
            }
            other => Ok(other),
        }
    }

    /// Removes the blob; removing an absent blob is not an error.
    pub async fn delete(&self, digest: &str) -> Result<(), StoreError> {
        let hex = parse_digest(digest)?;
        match self {
            Self::Local(s) => s.delete(hex).await,
            #[cfg(feature = "s3")]
            Self::S3(s) => s.delete(hex).await,
        }
    }

    /// Every stored digest (`sha256:<hex>`), for the sweeper.
    pub async fn list(&self) -> Result<Vec<String>, StoreError> {
        let hexes = match self {
            Self::Local(s) => s.list().await?,
            #[cfg(feature = "s3")]
            Self::S3(s) => s.list().await?,
        };
        Ok(hexes.into_iter().map(|h| format!("sha256:{h}")).collect())
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
/// come from URLs and rows, and become file names).
pub(crate) fn parse_digest(digest: &str) -> Result<&str, StoreError> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| StoreError::BadDigest(digest.to_owned()))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(StoreError::BadDigest(digest.to_owned()));
    }
    Ok(hex)
}

/// Blobs as files `<root>/sha256/<2 hex>/<64 hex>`, written through a
/// temporary file and renamed, so a reader never sees half a blob.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, hex: &str) -> PathBuf {
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    async fn put(&self, hex: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(hex);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let io = |e: std::io::Error, p: &Path| StoreError::Io(p.display().to_string(), e);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io(e, &dir))?;
        // unique per writer: two tasks storing the same blob must not share it
        let tmp = dir.join(format!(
            ".{hex}.{}.{}.tmp",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        tokio::fs::write(&tmp, &bytes)
            .await
            .map_err(|e| io(e, &tmp))?;
        let f = tokio::fs::File::open(&tmp).await.map_err(|e| io(e, &tmp))?;
        f.sync_all().await.map_err(|e| io(e, &tmp))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| io(e, &path))?;
        Ok(())
    }

    async fn get(&self, hex: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(hex);
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io(path.display().to_string(), e)),
        }
    }

    async fn delete(&self, hex: &str) -> Result<(), StoreError> {
        let path = self.path(hex);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io(path.display().to_string(), e)),
        }
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let base = self.root.join("sha256");
        let mut out = Vec::new();
        let mut shards = match tokio::fs::read_dir(&base).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(StoreError::Io(base.display().to_string(), e)),
        };
        let io = |e: std::io::Error, p: &Path| StoreError::Io(p.display().to_string(), e);
        while let Some(shard) = shards.next_entry().await.map_err(|e| io(e, &base))? {
            let dir = shard.path();
            if !shard.file_type().await.map_err(|e| io(e, &dir))?.is_dir() {
                continue;
            }
            let mut files = tokio::fs::read_dir(&dir).await.map_err(|e| io(e, &dir))?;
            while let Some(f) = files.next_entry().await.map_err(|e| io(e, &dir))? {
                let name = f.file_name().to_string_lossy().into_owned();
                if parse_digest(&format!("sha256:{name}")).is_ok() {
                    out.push(name);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_blobs_round_trip_and_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EvidenceStore::Local(LocalStore::new(dir.path()));
        let d = store.put(b"hello".to_vec()).await.expect("put");
        assert_eq!(
            d,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(store.put(b"hello".to_vec()).await.expect("again"), d);
        assert_eq!(
            store.get(&d).await.expect("get").as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(store.list().await.expect("list"), vec![d.clone()]);
        // a blob changed on disk is refused, not served
        let hex = d.trim_start_matches("sha256:");
        std::fs::write(
            dir.path().join("sha256").join(&hex[..2]).join(hex),
            b"tampered",
        )
        .expect("tamper");
        assert!(matches!(store.get(&d).await, Err(StoreError::Corrupt(_))));
        store.delete(&d).await.expect("delete");
        store.delete(&d).await.expect("delete twice");
        assert_eq!(store.get(&d).await.expect("get"), None);
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
        }
    }
}
