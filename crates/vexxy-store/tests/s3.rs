//! The S3 evidence backend against a real S3-compatible server: moto's
//! standalone server (`pip install 'moto[server]'`, see
//! scripts/ensure-deps.sh), started on a free port for this test.
#![cfg(feature = "s3")]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt as _, PutPayload};
use vexxy_store::s3::{S3Config, S3Store};
use vexxy_store::{EvidenceStore, StoreError};

const BUCKET: &str = "vexxy-evidence";

/// A moto server; killed and reaped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto on a free port, or says why it cannot.
fn start_moto() -> Result<Moto, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let args = ["-H", "127.0.0.1", "-p", &port.to_string()];
    let spawn = |program: &str, pre: &[&str]| {
        Command::new(program)
            .args(pre)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    let child = spawn("moto_server", &[])
        .or_else(|_| spawn("python3", &["-m", "moto.server"]))
        .map_err(|e| format!("cannot run moto_server or python3 -m moto.server: {e}"))?;
    let mut moto = Moto { child, port };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(moto);
        }
        if let Ok(Some(status)) = moto.child.try_wait() {
            return Err(format!(
                "moto exited with {status} (is moto[server] installed? run scripts/ensure-deps.sh)"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("moto did not listen on {addr} within 15 s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn config(port: u16) -> S3Config {
    S3Config {
        bucket: BUCKET.to_owned(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: "us-east-1".to_owned(),
        prefix: "evidence/".to_owned(),
        access_key_id: Some("testing".to_owned()),
        secret_access_key: Some("testing".to_owned()),
        allow_http: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_round_trips_through_s3_and_tampering_is_detected() {
    let moto = match start_moto() {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipping the s3 test: {why}");
            return;
        }
    };
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    // object_store cannot create buckets; moto takes an unsigned PUT.
    ureq::put(&format!("{endpoint}/{BUCKET}"))
        .send_empty()
        .expect("create bucket");

    let config = config(moto.port);
    let store = EvidenceStore::S3(S3Store::new(&config).expect("s3 store"));
    assert_eq!(
        store.describe(),
        format!("s3 bucket {BUCKET} at {endpoint} prefix evidence/")
    );
    assert_eq!(
        store.list().await.expect("list empty"),
        Vec::<String>::new()
    );

    let hello = store.put(b"hello".to_vec()).await.expect("put");
    assert_eq!(
        hello,
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
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

    // The layout is <prefix>sha256/<2 hex>/<hex>; a stray object beside it
    // is not listed as evidence.
    let raw = AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(&endpoint)
        .with_region("us-east-1")
        .with_allow_http(true)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .expect("raw client");
    let hex = hello.trim_start_matches("sha256:");
    let key = ObjectPath::from(format!("evidence/sha256/{}/{hex}", &hex[..2]));
    let stored = raw
        .get(&key)
        .await
        .expect("raw get")
        .bytes()
        .await
        .expect("raw bytes");
    assert_eq!(&stored[..], b"hello");
    raw.put(
        &ObjectPath::from("evidence/sha256/2c/notes.txt"),
        PutPayload::from_static(b"x"),
    )
    .await
    .expect("stray object");
    assert_eq!(store.list().await.expect("list with stray"), all);

    // An object changed behind the store's back is refused, not served…
    raw.put(&key, PutPayload::from_static(b"tampered"))
        .await
        .expect("tamper");
    assert!(
        matches!(store.get(&hello).await, Err(StoreError::Corrupt(d)) if d == hello),
        "a tampered blob must be reported corrupt"
    );
    // …and putting the real bytes again repairs it.
    store.put(b"hello".to_vec()).await.expect("repair");
    assert_eq!(
        store.get(&hello).await.expect("repaired").as_deref(),
        Some(&b"hello"[..])
    );

    store.delete(&hello).await.expect("delete");
    store.delete(&hello).await.expect("delete twice");
    assert_eq!(store.get(&hello).await.expect("get deleted"), None);
    let mut rest = vec![world, empty];
    rest.sort();
    assert_eq!(store.list().await.expect("list after delete"), rest);

    // A missing bucket is an error naming the bucket and key, not "absent".
    let elsewhere = S3Config {
        bucket: "no-such-bucket".to_owned(),
        ..config
    };
    let missing = EvidenceStore::S3(S3Store::new(&elsewhere).expect("store"));
    let err = missing
        .put(b"hello".to_vec())
        .await
        .expect_err("no bucket")
        .to_string();
    assert!(
        err.contains("s3://no-such-bucket/evidence/sha256/2c/"),
        "{err}"
    );
}
