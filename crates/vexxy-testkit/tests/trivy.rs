//! The Trivy harness against the real tools: Debian's docker-registry
//! serves the nginx test image, a DB written by `scripts/trivy-db` holds a
//! few advisories against source packages really installed in it, and the
//! real Trivy 0.59.1 scans it offline, with and without an OpenVEX file.
//!
//! Run: `cargo test -p vexxy-testkit --test trivy -- --nocapture` (prints
//! each Trivy run's duration).
#![allow(clippy::unwrap_used)]

use std::{collections::BTreeMap, path::Path};

use serde_json::{json, Value};
use vexxy_testkit::{
    registry::{self, Auth, Registry},
    trivy::{self, DbSpec, FindingKey, Report, ScanOptions, VexSource},
};

const PLATFORM: &str = "debian 12";
const NO_FIX: &str = "CVE-2099-0001"; // zlib: affected, no fix
const FIX_AHEAD: &str = "CVE-2099-0002"; // openssl: fixed above what is installed
const FIX_BEHIND: &str = "CVE-2099-0003"; // pcre2: fixed below what is installed
const FIX_EQUAL: &str = "CVE-2099-0004"; // tiff: fixed in exactly what is installed
const NOT_INSTALLED: &str = "CVE-2099-0005"; // a source package the image lacks

/// Installed binary packages of a dpkg status file: name → (version,
/// source name, source version).
fn dpkg_status(rootfs: &Path) -> BTreeMap<String, (String, String, String)> {
    let text = std::fs::read_to_string(rootfs.join("var/lib/dpkg/status")).unwrap();
    let mut packages = BTreeMap::new();
    for para in text.split("\n\n") {
        let field = |name: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        };
        let (Some(name), Some(version)) = (field("Package"), field("Version")) else {
            continue;
        };
        if !field("Status").is_some_and(|s| s.ends_with(" installed")) {
            continue;
        }
        // `Source: name` or `Source: name (version)`; absent: the binary's.
        let (src, src_version) = match field("Source") {
            Some(s) => match s.split_once(" (") {
                Some((n, v)) => (n.to_owned(), v.trim_end_matches(')').to_owned()),
                None => (s, version.clone()),
            },
            None => (name.clone(), version.clone()),
        };
        packages.insert(name, (version, src, src_version));
    }
    packages
}

fn key(id: &str, pkg: &str, version: &str) -> FindingKey {
    (id.to_owned(), pkg.to_owned(), version.to_owned())
}

fn timed(what: &str, report: Report) -> Report {
    println!("trivy {what}: {:.2} s", report.elapsed.as_secs_f64());
    report
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

#[test]
fn trivy_scans_a_registry_image_offline_and_applies_openvex() {
    let Some(registry_bin) = registry::tools() else {
        return;
    };
    let Some(trivy) = trivy::trivy() else {
        return;
    };
    let Some(image) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    assert_eq!(
        trivy.version(),
        trivy::TRIVY_VERSION,
        "{:?}",
        trivy.binary()
    );

    let installed = dpkg_status(&image.join("rootfs"));
    let pkg = |name: &str| {
        installed
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not installed in the nginx image"))
    };
    let (zlib_version, zlib_src, _) = pkg("zlib1g");
    let (ssl_version, ssl_src, ssl_src_version) = pkg("libssl3");
    let (openssl_version, openssl_src, _) = pkg("openssl");
    let (_, pcre_src, pcre_src_version) = pkg("libpcre2-8-0");
    let (_, tiff_src, tiff_src_version) = pkg("libtiff6");
    assert_eq!(
        (zlib_src.as_str(), ssl_src.as_str(), openssl_src.as_str()),
        ("zlib", "openssl", "openssl")
    );
    assert_eq!((pcre_src.as_str(), tiff_src.as_str()), ("pcre2", "tiff"));
    assert!(!installed.values().any(|(_, src, _)| src == "apache2"));

    // Debian version order: a suffix sorts after the version, `~` before it.
    let spec = DbSpec::new()
        .affected(PLATFORM, "zlib", NO_FIX)
        .fixed(
            PLATFORM,
            "openssl",
            FIX_AHEAD,
            &format!("{ssl_src_version}+vexxy1"),
        )
        .fixed(
            PLATFORM,
            "pcre2",
            FIX_BEHIND,
            &format!("{pcre_src_version}~"),
        )
        .fixed(PLATFORM, "tiff", FIX_EQUAL, tiff_src_version)
        .affected(PLATFORM, "apache2", NOT_INSTALLED)
        .vulnerability(NO_FIX, "HIGH", "zlib: no fix yet")
        .vulnerability(FIX_AHEAD, "CRITICAL", "openssl: fixed upstream")
        .vulnerability(FIX_BEHIND, "LOW", "pcre2: already fixed")
        .vulnerability(FIX_EQUAL, "MEDIUM", "tiff: fixed in this version");
    let Some(db) = spec.build() else {
        return;
    };

    let registry = Registry::start(&registry_bin, Auth::None);
    let digest = registry.push(&image.join("oci"), "latest", "vexxy-test/nginx", false);
    let reference = format!("{}/vexxy-test/nginx:latest", registry.addr);
    let insecure = ScanOptions {
        insecure: true,
        ..ScanOptions::default()
    };

    // No VEX: exactly the advisories whose installed source version is below the fix.
    let plain = timed(
        "image (registry, no VEX)",
        trivy.scan_image(&db, &reference, &insecure),
    );
    let expected_all = vec![
        key(NO_FIX, "zlib1g", zlib_version),
        key(FIX_AHEAD, "libssl3", ssl_version),
        key(FIX_AHEAD, "openssl", openssl_version),
    ];
    assert_eq!(plain.findings(), expected_all, "{}", plain.stderr);
    assert!(plain.suppressed().is_empty());
    assert_eq!(
        plain.repo_digests(),
        [format!("{}/vexxy-test/nginx@{digest}", registry.addr)]
    );
    let zlib = plain
        .vulnerability(&key(NO_FIX, "zlib1g", zlib_version))
        .unwrap();
    assert_eq!(
        (&zlib["Status"], &zlib["Severity"], &zlib["Title"]),
        (
            &json!("affected"),
            &json!("HIGH"),
            &json!("zlib: no fix yet")
        )
    );
    let ssl = plain
        .vulnerability(&key(FIX_AHEAD, "libssl3", ssl_version))
        .unwrap();
    assert_eq!(
        (&ssl["Status"], &ssl["Severity"], &ssl["FixedVersion"]),
        (
            &json!("fixed"),
            &json!("CRITICAL"),
            &json!(format!("{ssl_src_version}+vexxy1"))
        )
    );

    // One OpenVEX statement: the image product, libssl3 not affected.
    let work = tempfile::tempdir().unwrap();
    let vex_file = work.path().join("nginx.openvex.json");
    write_json(
        &vex_file,
        &json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://vexxy.test/vex/trivy-harness",
            "author": "vexxy-testkit",
            "timestamp": "2025-01-01T00:00:00Z",
            "version": 1,
            "statements": [{
                "vulnerability": {"name": FIX_AHEAD},
                "products": [{
                    "@id": format!("pkg:oci/nginx@{digest}"),
                    "subcomponents": [{"@id": "pkg:deb/debian/libssl3"}],
                }],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
            }],
        }),
    );
    let with_vex = ScanOptions {
        vex: Some(VexSource::File(vex_file.clone())),
        ..insecure.clone()
    };
    let expected_left = vec![
        key(NO_FIX, "zlib1g", zlib_version),
        key(FIX_AHEAD, "openssl", openssl_version),
    ];
    let vexed = timed(
        "image (registry, --vex FILE)",
        trivy.scan_image(&db, &reference, &with_vex),
    );
    assert_eq!(vexed.findings(), expected_left, "{}", vexed.stderr);
    assert!(vexed.modified_findings().is_empty());

    let shown = timed(
        "image (registry, --vex FILE --show-suppressed)",
        trivy.scan_image(
            &db,
            &reference,
            &ScanOptions {
                show_suppressed: true,
                ..with_vex.clone()
            },
        ),
    );
    assert_eq!(shown.findings(), expected_left);
    let suppressed = shown.modified_findings();
    assert_eq!(suppressed.len(), 1, "{suppressed:?}");
    assert_eq!(suppressed[0].key, key(FIX_AHEAD, "libssl3", ssl_version));
    assert_eq!(suppressed[0].status, "not_affected");
    assert_eq!(
        suppressed[0].statement,
        "vulnerable_code_not_in_execute_path"
    );
    // The OpenVEX file's path is the source Trivy names.
    assert_eq!(suppressed[0].source, vex_file.to_str().unwrap());
    assert_eq!(shown.suppressed(), [key(FIX_AHEAD, "libssl3", ssl_version)]);

    // The same image from its OCI layout has no repo digest, so no image
    // purl: the image-product statement silently matches nothing.
    let layout = timed(
        "image (--input OCI layout, --vex FILE)",
        trivy.scan_input(&db, &image.join("oci"), &with_vex),
    );
    assert_eq!(layout.findings(), expected_all, "{}", layout.stderr);
    assert!(layout.repo_digests().is_empty());

    // Trivy's own CycloneDX of the registry image carries the image purl:
    // `trivy sbom` on it applies the statement too.
    let bom = timed(
        "image (registry, --format cyclonedx)",
        trivy.cyclonedx_of_image(&db, &reference, &insecure),
    );
    let bom_file = work.path().join("nginx.cdx.json");
    write_json(&bom_file, &bom.json);
    let from_bom = timed(
        "sbom (CycloneDX, --vex FILE)",
        trivy.scan_sbom(&db, &bom_file, &with_vex),
    );
    assert_eq!(from_bom.findings(), expected_left, "{}", from_bom.stderr);
}

#[test]
fn trivy_pulls_with_registry_credentials() {
    let Some(registry_bin) = registry::tools_and_htpasswd() else {
        return;
    };
    let Some(trivy) = trivy::trivy() else {
        return;
    };
    let Some(image) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let (zlib_version, zlib_src, _) = dpkg_status(&image.join("rootfs"))
        .remove("zlib1g")
        .expect("zlib1g is installed in the nginx image");
    let Some(db) = DbSpec::new()
        .affected(PLATFORM, &zlib_src, NO_FIX)
        .vulnerability(NO_FIX, "HIGH", "zlib: no fix yet")
        .build()
    else {
        return;
    };
    let registry = Registry::start(&registry_bin, Auth::Htpasswd);
    registry.push(&image.join("oci"), "latest", "private/nginx", false);
    let report = timed(
        "image (registry with basic auth)",
        trivy.scan_image(
            &db,
            &format!("{}/private/nginx:latest", registry.addr),
            &ScanOptions {
                insecure: true,
                creds: Some((registry::USER.to_owned(), registry::PASS.to_owned())),
                ..ScanOptions::default()
            },
        ),
    );
    assert_eq!(
        report.findings(),
        [key(NO_FIX, "zlib1g", &zlib_version)],
        "{}",
        report.stderr
    );
}

#[test]
fn trivy_db_writer_refuses_a_bad_spec() {
    // A status and a fix at once is ambiguous; the writer must say so
    // rather than write something Trivy reads differently.
    let Some(writer) = trivy::db_writer() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(writer)
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        json!({"advisories": {PLATFORM: {"zlib": {NO_FIX: {"status": "affected", "fixed_version": "1"}}}}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exactly one of status or fixed_version"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
