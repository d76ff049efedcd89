//! Writing an OCI image layout: `oci-layout`, `index.json`, `blobs/sha256/`.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;
use vexxy_model::Digest;

use crate::RegistryError;

/// The annotation naming an index.json entry.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Media type of an OCI image index (`index.json`).
const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Directory in the layout root holding partial downloads; removed when empty.
pub(crate) const TMP_DIR: &str = ".vexxy-tmp";
/// Largest `index.json` / `oci-layout` read back (16 MiB).
const MAX_INDEX_BYTES: u64 = 16 << 20;

/// An OCI image layout directory being written.
#[derive(Debug)]
pub(crate) struct Layout {
    root: PathBuf,
    blobs: PathBuf,
    tmp: PathBuf,
}

impl Layout {
    /// Creates the directory structure and `oci-layout` when missing;
    /// checks an existing `oci-layout`.
    pub(crate) fn open(root: &Path) -> Result<Self, RegistryError> {
        let blobs = root.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| RegistryError::io(&blobs, e))?;
        let marker = root.join("oci-layout");
        if marker.exists() {
            let v = read_json(&marker)?;
            if !v.get("imageLayoutVersion").is_some_and(Value::is_string) {
                return Err(RegistryError::BadLayout {
                    path: marker,
                    reason: "imageLayoutVersion is missing".into(),
                });
            }
        } else {
            write_atomic(root, &marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let tmp = root.join(TMP_DIR);
        std::fs::create_dir_all(&tmp).map_err(|e| RegistryError::io(&tmp, e))?;
        Ok(Self {
            root: root.to_owned(),
            blobs,
            tmp,
        })
    }

    /// Where the blob with this digest lives.
    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// True when the blob is present with the right size and content. A
    /// present blob that fails the check is reported as absent (and will be
    /// replaced by a verified download).
    pub(crate) async fn has_blob(&self, digest: &Digest, size: u64) -> Result<bool, RegistryError> {
        let path = self.blob_path(digest);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() == size => {}
            Ok(_) => {
                tracing::warn!("{} has the wrong size; fetching it again", path.display());
                return Ok(false);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(RegistryError::io(&path, e)),
        }
        let p = path.clone();
        let hex = tokio::task::spawn_blocking(move || hash_file(&p))
            .await
            .map_err(|e| RegistryError::io(&path, std::io::Error::other(e.to_string())))?
            .map_err(|e| RegistryError::io(&path, e))?;
        if hex == digest.hex() {
            Ok(true)
        } else {
            tracing::warn!(
                "{} does not match its digest; fetching it again",
                path.display()
            );
            Ok(false)
        }
    }

    /// A new temporary file on the same file system as the blobs; it is
    /// deleted when dropped unless committed.
    pub(crate) fn temp_file(&self) -> Result<NamedTempFile, RegistryError> {
        NamedTempFile::new_in(&self.tmp).map_err(|e| RegistryError::io(&self.tmp, e))
    }

    /// Renames a verified temporary file into place as the blob `digest`.
    /// Callers must have checked the content against `digest`.
    pub(crate) fn commit(&self, tmp: NamedTempFile, digest: &Digest) -> Result<(), RegistryError> {
        let dest = self.blob_path(digest);
        tmp.as_file()
            .sync_all()
            .map_err(|e| RegistryError::io(tmp.path(), e))?;
        tmp.persist(&dest)
            .map_err(|e| RegistryError::io(&dest, e.error))?;
        Ok(())
    }

    /// Stores small content (a manifest) after checking it hashes to `digest`.
    pub(crate) fn store_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<(), RegistryError> {
        let actual = hex::encode(Sha256::digest(bytes));
        if actual != digest.hex() {
            // Callers verify first; this guards the invariant regardless.
            return Err(RegistryError::BadLayout {
                path: self.blob_path(digest),
                reason: format!("refusing to store content hashing to sha256:{actual}"),
            });
        }
        let dest = self.blob_path(digest);
        if std::fs::metadata(&dest).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(());
        }
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes)
            .map_err(|e| RegistryError::io(tmp.path(), e))?;
        self.commit(tmp, digest)
    }

    /// Points the `index.json` entry named `name` at a manifest, replacing
    /// any entry of that name and keeping all others.
    pub(crate) fn set_ref(
        &self,
        name: &str,
        media_type: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        let path = self.root.join("index.json");
        let mut index = if path.exists() {
            read_json(&path)?
        } else {
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX_MEDIA_TYPE, "manifests": []})
        };
        let bad = |reason: &str| RegistryError::BadLayout {
            path: path.clone(),
            reason: reason.into(),
        };
        let obj = index
            .as_object_mut()
            .ok_or_else(|| bad("not a json object"))?;
        let manifests = obj
            .entry("manifests")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| bad("manifests is not an array"))?;
        manifests.retain(|m| {
            m.pointer(&format!(
                "/annotations/{}",
                REF_NAME_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
                != Some(name)
        });
        manifests.push(json!({
            "mediaType": media_type,
            "digest": digest.to_string(),
            "size": size,
            "annotations": { REF_NAME_ANNOTATION: name },
        }));
        let bytes = serde_json::to_vec_pretty(&index)
            .map_err(|e| RegistryError::io(&path, std::io::Error::other(e)))?;
        write_atomic(&self.root, &path, &bytes)
    }

    /// Removes the temporary directory if nothing is left in it.
    pub(crate) fn tidy(&self) {
        // Fails harmlessly when another pull still has files there.
        let _ = std::fs::remove_dir(&self.tmp);
    }
}

/// Hex sha256 of a file's content.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn read_json(path: &Path) -> Result<Value, RegistryError> {
    let meta = std::fs::metadata(path).map_err(|e| RegistryError::io(path, e))?;
    if meta.len() > MAX_INDEX_BYTES {
        return Err(RegistryError::BadLayout {
            path: path.to_owned(),
            reason: format!("larger than {MAX_INDEX_BYTES} bytes"),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| RegistryError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| RegistryError::BadLayout {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Writes through a temporary file in `dir` and renames over `dest`.
fn write_atomic(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let mut tmp = NamedTempFile::new_in(dir).map_err(|e| RegistryError::io(dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| RegistryError::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| RegistryError::io(tmp.path(), e))?;
    tmp.persist(dest)
        .map_err(|e| RegistryError::io(dest, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(bytes: &[u8]) -> Digest {
        Digest::from_sha256_bytes(&Sha256::digest(bytes).into())
    }

    #[test]
    fn index_entries_are_replaced_by_name_and_others_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::open(dir.path()).expect("opens");
        let (a, b) = (digest_of(b"a"), digest_of(b"b"));
        layout
            .set_ref("r/x:1", "application/vnd.oci.image.manifest.v1+json", &a, 1)
            .expect("set");
        layout
            .set_ref("r/y:1", "application/vnd.oci.image.manifest.v1+json", &a, 1)
            .expect("set");
        layout
            .set_ref("r/x:1", "application/vnd.oci.image.manifest.v1+json", &b, 1)
            .expect("set");
        let index: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).expect("read"))
                .expect("json");
        assert_eq!(index["schemaVersion"], 2);
        let m = index["manifests"].as_array().expect("array");
        assert_eq!(m.len(), 2, "{index}");
        assert_eq!(m[0]["annotations"][REF_NAME_ANNOTATION], "r/y:1");
        assert_eq!(m[1]["digest"], b.to_string());
        let marker = std::fs::read_to_string(dir.path().join("oci-layout")).expect("marker");
        assert!(
            marker.contains("\"imageLayoutVersion\":\"1.0.0\""),
            "{marker}"
        );
    }

    #[test]
    fn store_bytes_refuses_content_that_does_not_match() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::open(dir.path()).expect("opens");
        let d = digest_of(b"right");
        assert!(layout.store_bytes(&d, b"wrong").is_err());
        assert!(!layout.blob_path(&d).exists());
        layout.store_bytes(&d, b"right").expect("stores");
        assert_eq!(std::fs::read(layout.blob_path(&d)).expect("read"), b"right");
        layout.tidy();
        assert!(!dir.path().join(TMP_DIR).exists());
    }

    #[test]
    fn existing_blobs_are_verified_before_reuse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::open(dir.path()).expect("opens");
        let d = digest_of(b"content");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert!(!rt.block_on(layout.has_blob(&d, 7)).expect("checks"));
        std::fs::write(layout.blob_path(&d), b"CONTENT").expect("write");
        assert!(
            !rt.block_on(layout.has_blob(&d, 7)).expect("checks"),
            "same size, wrong hash"
        );
        std::fs::write(layout.blob_path(&d), b"content").expect("write");
        assert!(rt.block_on(layout.has_blob(&d, 7)).expect("checks"));
        assert!(
            !rt.block_on(layout.has_blob(&d, 8)).expect("checks"),
            "wrong size"
        );
    }

    #[test]
    fn malformed_existing_files_are_bad_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("oci-layout"), "{}").expect("write");
        let e = Layout::open(dir.path()).expect_err("bad marker");
        assert!(
            e.is_bad_input() && e.to_string().contains("oci-layout"),
            "{e}"
        );
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("write");
        std::fs::write(dir.path().join("index.json"), "[1]").expect("write");
        let layout = Layout::open(dir.path()).expect("opens");
        let e = layout
            .set_ref("n", "m", &digest_of(b""), 0)
            .expect_err("bad index");
        assert!(e.to_string().contains("index.json"), "{e}");
    }
}
