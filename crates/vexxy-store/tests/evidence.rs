//! The local evidence backend (object_store's local filesystem) against
//! the contract every backend meets; `tests/s3.rs` runs it on S3.

mod common;

use object_store::local::LocalFileSystem;
use vexxy_store::{EvidenceStore, LocalStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_round_trips_through_a_local_directory_and_tampering_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    // the directory is created on first use
    let root = dir.path().join("data").join("evidence");
    let store = EvidenceStore::Local(LocalStore::new(&root));
    assert_eq!(
        store.describe(),
        format!("local directory {}", root.display())
    );
    assert_eq!(
        store.list().await.expect("list before any put"),
        Vec::<String>::new()
    );
    let raw = LocalFileSystem::new_with_prefix(&root).expect("raw view");
    common::evidence_contract(&store, &raw, "").await;

    // nothing is left behind by the writes: only blobs in their shards
    let mut files = Vec::new();
    for shard in std::fs::read_dir(root.join("sha256")).expect("shards") {
        for f in std::fs::read_dir(shard.expect("shard").path()).expect("shard dir") {
            files.push(f.expect("entry").file_name().to_string_lossy().into_owned());
        }
    }
    assert!(
        files.iter().all(|f| f.len() == 64 || f == "notes.txt"),
        "{files:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_directory_works_too() {
    let dir = tempfile::tempdir_in(".").expect("tempdir here");
    let name = dir
        .path()
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let store = EvidenceStore::Local(LocalStore::new(&name));
    let d = store.put(b"hello".to_vec()).await.expect("put");
    assert_eq!(d, common::HELLO);
    assert_eq!(store.list().await.expect("list"), vec![d.clone()]);
    assert_eq!(
        store.get(&d).await.expect("get").as_deref(),
        Some(&b"hello"[..])
    );
}
