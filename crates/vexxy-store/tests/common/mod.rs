//! What every evidence backend must do, run on each (`tests/evidence.rs`
//! on a local directory, `tests/s3.rs` on moto's S3).

use object_store::{path::Path as ObjectPath, ObjectStore, ObjectStoreExt as _, PutPayload};
use vexxy_store::{EvidenceStore, StoreError};

pub(crate) const HELLO: &str =
    "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

/// Runs the contract on an empty `store`. `raw` reaches the same objects
/// behind the store's back, its keys starting with `prefix` (`""` or
/// `"evidence/"`).
pub(crate) async fn evidence_contract(store: &EvidenceStore, raw: &dyn ObjectStore, prefix: &str) {
    let key = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        ObjectPath::from(format!("{prefix}sha256/{}/{hex}", &hex[..2]))
    };
    assert_eq!(
        store.list().await.expect("list empty"),
        Vec::<String>::new()
    );
    assert_eq!(store.get(HELLO).await.expect("get absent"), None);

    // content addressing: the digest is the name, storing twice is harmless
    let hello = store.put(b"hello".to_vec()).await.expect("put");
    assert_eq!(hello, HELLO);
    assert_eq!(
        store.put(b"hello".to_vec()).await.expect("put again"),
        hello
    );
    let world = store.put(b"world".to_vec()).await.expect("put world");
    let empty = store.put(Vec::new()).await.expect("put empty");
    assert_eq!(
        store.get(&hello).await.expect("get").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        store.get(&empty).await.expect("get empty").as_deref(),
        Some(&[][..])
    );
    let mut all = vec![hello.clone(), world.clone(), empty.clone()];
    all.sort();
    assert_eq!(store.list().await.expect("list"), all);

    // the layout is <prefix>sha256/<2 hex>/<hex>
    let stored = raw
        .get(&key(&hello))
        .await
        .expect("raw get")
        .bytes()
        .await
        .expect("raw bytes");
    assert_eq!(&stored[..], b"hello");

    // writers of the same blob at once each write their own temporary
    // object: every one succeeds and the blob is whole
    let big: Vec<u8> = (0..1_000_000u32).flat_map(u32::to_le_bytes).collect();
    let (a, b, c, d) = tokio::join!(
        store.put(big.clone()),
        store.put(big.clone()),
        store.put(big.clone()),
        store.put(big.clone()),
    );
    let big_digest = a.expect("concurrent put");
    for other in [b, c, d] {
        assert_eq!(other.expect("concurrent put"), big_digest);
    }
    assert_eq!(
        store.get(&big_digest).await.expect("get big").as_deref(),
        Some(&big[..])
    );
    all.push(big_digest.clone());
    all.sort();
    assert_eq!(store.list().await.expect("list after concurrent puts"), all);

    // objects beside the layout are not evidence: another name, a blob
    // in the wrong shard
    for stray in [
        format!("{prefix}sha256/2c/notes.txt"),
        format!("{prefix}sha256/00/{}", hello.trim_start_matches("sha256:")),
        format!("{prefix}other/{}", world.trim_start_matches("sha256:")),
    ] {
        raw.put(&ObjectPath::from(stray), PutPayload::from_static(b"x"))
            .await
            .expect("stray object");
    }
    assert_eq!(store.list().await.expect("list with strays"), all);

    // an object changed behind the store's back is refused, not served,
    // whatever its size…
    for tampered in [&b"tampered"[..], b"hellO", b"hell", b""] {
        raw.put(&key(&hello), PutPayload::from(tampered.to_vec()))
            .await
            .expect("tamper");
        assert!(
            matches!(store.get(&hello).await, Err(StoreError::Corrupt(ref d)) if *d == hello),
            "a tampered blob ({tampered:?}) must be reported corrupt"
        );
    }
    // …and putting the real bytes again repairs it
    store.put(b"hello".to_vec()).await.expect("repair");
    assert_eq!(
        store.get(&hello).await.expect("repaired").as_deref(),
        Some(&b"hello"[..])
    );

    store.delete(&hello).await.expect("delete");
    store.delete(&hello).await.expect("delete twice");
    assert_eq!(store.get(&hello).await.expect("get deleted"), None);
    all.retain(|d| *d != hello);
    assert_eq!(store.list().await.expect("list after delete"), all);

    // digests are checked before anything is asked of the backend
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
