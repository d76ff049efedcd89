//! `--egress-policy strict` on the CLI: the service's policy for a pull
//! from one's own machine; without it, today's behaviour (no policy).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::TcpListener,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use assert_cmd::Command;

/// A listener on 127.0.0.1 that counts connections (and closes them).
fn counting() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if conn.is_ok() {
                s.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (port, seen)
}

fn sbom(reference: &str, registry: &str, extra: &[&str]) -> std::process::Output {
    let cache = tempfile::tempdir().unwrap();
    let mut c = Command::cargo_bin("vexxy").expect("binary built");
    c.env("VEXXY_CACHE_DIR", cache.path())
        .env("DOCKER_CONFIG", cache.path())
        .args(["sbom", reference, "--insecure-registry", registry])
        .args(extra)
        .timeout(std::time::Duration::from_secs(60));
    c.output().unwrap()
}

#[test]
fn strict_refuses_a_loopback_registry_before_connecting() {
    let (port, seen) = counting();
    let registry = format!("127.0.0.1:{port}");
    let out = sbom(
        &format!("{registry}/app:1"),
        &registry,
        &["--egress-policy", "strict"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "bad input: {stderr}");
    assert!(stderr.contains("does not contact"), "{stderr}");
    assert_eq!(seen.load(Ordering::SeqCst), 0, "no connection: {stderr}");

    // the operator's exemption lets the same pull try
    let out = sbom(
        &format!("{registry}/app:1"),
        &registry,
        &[
            "--egress-policy",
            "strict",
            "--egress-allow-address",
            "127.0.0.1/32",
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        seen.load(Ordering::SeqCst) >= 1,
        "exempt: the registry was asked"
    );
}

#[test]
fn without_a_policy_the_cli_contacts_what_it_is_told() {
    let (port, seen) = counting();
    let registry = format!("127.0.0.1:{port}");
    let out = sbom(&format!("{registry}/app:1"), &registry, &[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        seen.load(Ordering::SeqCst) >= 1,
        "no policy: today's behaviour"
    );

    let out = sbom(
        &format!("{registry}/app:1"),
        &registry,
        &["--registry-allow", "example.com"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--egress-policy strict"), "{stderr}");
}
