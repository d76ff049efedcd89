//! Small hand-written documents of every accepted and recognised format.

use std::path::{Path, PathBuf};

use vexxy_ingest::{detect, parse, read, Format, IngestError, Input, Limits, Report, Sbom};
use vexxy_model::{Ecosystem, FixState, Package, Severity};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect(name)
}

fn sbom(name: &str) -> Sbom {
    match read(&fixture(name), &Limits::default()).expect(name) {
        Input::Sbom(s) => s,
        Input::Report(_) => panic!("{name}: expected an sbom"),
    }
}

fn report(name: &str) -> Report {
    match read(&fixture(name), &Limits::default()).expect(name) {
        Input::Report(r) => r,
        Input::Sbom(_) => panic!("{name}: expected a report"),
    }
}

/// (id, package, ecosystem, aliases, fixed versions, fix state, severity, purl)
type OsvCase = (
    &'static str,
    &'static str,
    Ecosystem,
    &'static [&'static str],
    &'static [&'static str],
    FixState,
    Severity,
    Option<&'static str>,
);

/// (file, serial number, version, subject name, package names in order, bom-ref count)
type CdxCase = (
    &'static str,
    &'static str,
    u32,
    &'static str,
    &'static [&'static str],
    usize,
);

fn package<'a>(s: &'a Sbom, name: &str) -> &'a Package {
    s.packages
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn every_fixture_is_detected_by_content() {
    let cases = [
        ("osv-scanner.json", Format::OsvScanner),
        ("cyclonedx-1.4.json", Format::CycloneDx),
        ("cyclonedx-1.5.json", Format::CycloneDx),
        ("cyclonedx-1.6.json", Format::CycloneDx),
        ("syft.json", Format::Syft),
        ("cyclonedx-vex.json", Format::CycloneDxVex),
        ("openvex.json", Format::OpenVex),
        ("csaf.json", Format::Csaf),
    ];
    for (name, want) in cases {
        assert_eq!(detect(&bytes(name)).expect(name), want, "{name}");
    }
}

#[test]
fn vex_documents_are_routed_not_parsed() {
    for (name, want) in [
        ("cyclonedx-vex.json", Format::CycloneDxVex),
        ("openvex.json", Format::OpenVex),
        ("csaf.json", Format::Csaf),
    ] {
        let err = read(&fixture(name), &Limits::default()).expect_err(name);
        match &err {
            IngestError::IsVex { path, format } => {
                assert_eq!(*format, want, "{name}");
                assert_eq!(path, &fixture(name));
            }
            other => panic!("{name}: unexpected {other}"),
        }
        assert!(err.to_string().contains(name), "{err}");
        assert!(err.is_bad_input());
    }
}

#[test]
fn osv_scanner_gives_one_finding_per_package_and_vulnerability() {
    let r = report("osv-scanner.json");
    assert_eq!(r.format, Format::OsvScanner);
    assert_eq!(r.tool.as_deref(), Some("osv-scanner"));
    // (id, package, ecosystem, aliases, fixed versions, fix state, severity, purl)
    let want: &[OsvCase] = &[
        (
            "GHSA-9wx4-h78v-vm56",
            "requests",
            Ecosystem::Python,
            &["CVE-2024-35195", "PYSEC-2024-60"],
            &["2.32.0"],
            FixState::Fixed,
            Severity::Medium,
            Some("pkg:pypi/requests@2.31.0"),
        ),
        (
            "GHSA-34jh-p97f-mpxf",
            "urllib3",
            Ecosystem::Python,
            &["CVE-2024-37891"],
            &["1.26.19", "2.2.2"],
            FixState::Fixed,
            Severity::Medium,
            Some("pkg:pypi/urllib3@2.2.1"),
        ),
        (
            "DSA-5779-1",
            "tiff",
            Ecosystem::Deb,
            &[],
            &["4.5.0-6+deb12u2"],
            FixState::Fixed,
            Severity::Unknown,
            Some("pkg:deb/debian/tiff@4.5.0-6%2Bdeb12u1?arch=source"),
        ),
        (
            "CVE-2023-6277",
            "tiff",
            Ecosystem::Deb,
            &[],
            &[],
            FixState::NotFixed,
            Severity::Medium,
            None,
        ),
    ];
    assert_eq!(r.findings.len(), want.len());
    for (f, (id, pkg, eco, aliases, fixed, state, severity, purl)) in r.findings.iter().zip(want) {
        assert_eq!(f.vulnerability.id, *id);
        assert_eq!(f.package.name, *pkg, "{id}");
        assert_eq!(f.package.ecosystem, *eco, "{id}");
        assert_eq!(f.vulnerability.aliases, *aliases, "{id}");
        assert_eq!(f.fixed_versions, *fixed, "{id}");
        assert_eq!(f.fix_state, *state, "{id}");
        assert_eq!(f.vulnerability.severity, *severity, "{id}");
        assert_eq!(
            f.package.purl.as_ref().map(ToString::to_string).as_deref(),
            *purl,
            "{id}"
        );
    }
    let requests = &r.findings[0];
    assert_eq!(requests.vulnerability.cvss.len(), 1);
    assert_eq!(
        requests.vulnerability.cvss[0].version.as_deref(),
        Some("3.1")
    );
    assert_eq!(requests.vulnerability.urls.len(), 2);
    assert!(requests
        .vulnerability
        .description
        .as_deref()
        .is_some_and(|d| d.contains("verify=False")));
}

#[test]
fn cyclonedx_versions_give_packages_with_and_without_files() {
    // (file, serial, version, subject name, packages in order, bom-ref count)
    let cases: &[CdxCase] = &[
        (
            "cyclonedx-1.4.json",
            "urn:uuid:1b8f8e8a-6f0c-4c4e-9f0a-2c3e5d0b7a11",
            1,
            "nginx:latest",
            &["libc6", "libtiff6", "webapp", "core", "zlib"],
            3,
        ),
        (
            "cyclonedx-1.5.json",
            "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
            3,
            "nginx:latest",
            &["libtiff6", "Jinja2"],
            2,
        ),
        (
            "cyclonedx-1.6.json",
            "urn:uuid:0c6a0e63-2a10-4b53-a8b6-7d6f5f5f9b3e",
            1,
            "payments-service",
            &[
                "payments",
                "golang.org/x/net",
                "google.golang.org/grpc",
                "musl",
            ],
            4,
        ),
    ];
    for (file, serial, version, subject, names, refs) in cases {
        let s = sbom(file);
        assert_eq!(s.format, Format::CycloneDx, "{file}");
        assert_eq!(s.serial_number.as_deref(), Some(*serial), "{file}");
        assert_eq!(s.version, Some(*version), "{file}");
        assert_eq!(s.name.as_deref(), Some(*subject), "{file}");
        let got: Vec<_> = s.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(got, *names, "{file}");
        assert_eq!(s.bom_refs.len(), *refs, "{file}");
    }

    let v14 = sbom("cyclonedx-1.4.json");
    let libc = package(&v14, "libc6");
    assert!(libc.files.is_empty(), "1.4 has no occurrences");
    assert_eq!(
        (
            libc.ecosystem.clone(),
            libc.source.as_ref().map(|s| s.name.as_str())
        ),
        (Ecosystem::Deb, Some("glibc"))
    );
    assert_eq!(package(&v14, "core").ecosystem, Ecosystem::Npm);
    assert_eq!(
        package(&v14, "zlib").ecosystem,
        Ecosystem::Other("binary".into())
    );
    assert_eq!(
        v14.bom_refs
            .get("pkg:npm/%40babel/core@7.23.2")
            .map(String::as_str),
        Some("pkg:npm/%40babel/core@7.23.2")
    );

    let v15 = sbom("cyclonedx-1.5.json");
    let tiff = package(&v15, "libtiff6");
    let files: Vec<_> = tiff.files.iter().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "/usr/lib/x86_64-linux-gnu/libtiff.so.6",
            "/usr/lib/x86_64-linux-gnu/libtiff.so.6.0.1",
            "/usr/share/doc/libtiff6/copyright"
        ]
    );
    assert_eq!(tiff.source.as_ref().map(|s| s.name.as_str()), Some("tiff"));
    assert_eq!(package(&v15, "Jinja2").ecosystem, Ecosystem::Python);

    let v16 = sbom("cyclonedx-1.6.json");
    let net = package(&v16, "golang.org/x/net");
    assert_eq!(net.ecosystem, Ecosystem::Go);
    assert!(net.files.contains("/usr/local/bin/payments"));
    assert!(package(&v16, "google.golang.org/grpc").files.is_empty());
    let musl = package(&v16, "musl");
    assert_eq!(
        (
            musl.ecosystem.clone(),
            musl.files.len(),
            musl.architecture.as_deref()
        ),
        (Ecosystem::Apk, 2, Some("x86_64"))
    );
}

#[test]
fn syft_json_gives_file_lists() {
    let s = sbom("syft.json");
    assert_eq!(s.format, Format::Syft);
    assert_eq!(s.name.as_deref(), Some("nginx"));
    assert!(s.bom_refs.is_empty());
    // (package, ecosystem, source, files)
    let cases: &[(&str, Ecosystem, Option<&str>, &[&str])] = &[
        (
            "libc6",
            Ecosystem::Deb,
            Some("glibc"),
            &[
                "/etc/ld.so.conf.d/x86_64-linux-gnu.conf",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/usr/lib/x86_64-linux-gnu/libm.so.6",
                "/usr/lib64/ld-linux-x86-64.so.2",
            ],
        ),
        (
            "libperl5.36",
            Ecosystem::Deb,
            Some("perl"),
            &["/usr/lib/x86_64-linux-gnu/libperl.so.5.36.0"],
        ),
        (
            "requests",
            Ecosystem::Python,
            None,
            &[
                "/usr/bin/requests-cli",
                "/usr/lib/python3/dist-packages/requests/__init__.py",
                "/usr/lib/python3/dist-packages/requests/sessions.py",
            ],
        ),
        (
            "golang.org/x/net",
            Ecosystem::Go,
            None,
            &["/usr/local/bin/payments"],
        ),
        (
            "busybox",
            Ecosystem::Other("binary".into()),
            None,
            &["/bin/busybox"],
        ),
    ];
    assert_eq!(s.packages.len(), cases.len());
    for (name, eco, source, files) in cases {
        let p = package(&s, name);
        assert_eq!(p.ecosystem, *eco, "{name}");
        assert_eq!(
            p.source.as_ref().map(|s| s.name.as_str()),
            *source,
            "{name}"
        );
        let got: Vec<_> = p.files.iter().map(String::as_str).collect();
        assert_eq!(got, *files, "{name}");
    }
    let libc = package(&s, "libc6");
    assert_eq!(libc.architecture.as_deref(), Some("amd64"));
    assert_eq!(
        libc.source.as_ref().and_then(|s| s.version.as_deref()),
        None,
        "empty sourceVersion is absent"
    );
    assert!(
        package(&s, "busybox").purl.is_none(),
        "an empty purl is absent"
    );
}

#[test]
fn parse_in_memory_names_the_origin() {
    let bytes = bytes("syft.json");
    let input = parse(&bytes, Path::new("memory.json")).expect("parses");
    assert!(matches!(
        input,
        Input::Sbom(Sbom {
            format: Format::Syft,
            ..
        })
    ));
    let err = parse(b"[1]", Path::new("memory.json")).expect_err("not an object");
    assert!(err.to_string().starts_with("memory.json"), "{err}");
}
