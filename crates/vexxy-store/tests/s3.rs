//! The S3 evidence backend against a real S3-compatible server, held to
//! the contract every backend meets (`tests/common`): moto's standalone
//! server (`pip install 'moto[server]'`, see
//! scripts/ensure-deps.sh), started on a free port for this test.
//! Without moto it prints `SKIP` outside CI and fails in CI.
#![cfg(feature = "s3")]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use object_store::aws::AmazonS3Builder;
use vexxy_store::s3::{S3Config, S3Store};
use vexxy_store::EvidenceStore;

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
    let Some(moto) = vexxy_testkit::require(start_moto()) else {
        return;
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
    // the same objects, reached behind the store's back
    let raw = AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(&endpoint)
        .with_region("us-east-1")
        .with_allow_http(true)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .expect("raw client");
    common::evidence_contract(&store, &raw, "evidence/").await;

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
