//! The real scanner reports of the official nginx image.

use std::{collections::BTreeSet, fmt::Write, path::PathBuf};

use vexxy_ingest::{read, Format, Input, Limits, Report, Sbom};
use vexxy_model::{Ecosystem, FixState, Severity};

fn report_path(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/scanner-reports/"
    ))
    .join(name)
}

fn report(name: &str) -> Report {
    match read(&report_path(name), &Limits::default()).expect(name) {
        Input::Report(r) => r,
        Input::Sbom(_) => panic!("{name}: expected a report"),
    }
}

fn sbom(name: &str) -> Sbom {
    match read(&report_path(name), &Limits::default()).expect(name) {
        Input::Sbom(s) => s,
        Input::Report(_) => panic!("{name}: expected an sbom"),
    }
}

const NGINX_DIGEST: &str =
    "sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0";

#[test]
fn real_reports_have_the_documented_counts() {
    // (file, format, findings, distinct ids, distinct packages, tool, distro)
    let cases = [
        (
            "dimpact_nginx-latest_2025-06-08_grype.json",
            Format::Grype,
            135,
            88,
            52,
            "grype 0.92.2",
            "debian 12",
        ),
        (
            "dimpact_nginx-latest_2025-06-08_trivy.json",
            Format::Trivy,
            45,
            32,
            26,
            "trivy",
            "debian 12.11",
        ),
    ];
    for (file, format, findings, ids, pkgs, tool, distro) in cases {
        let r = report(file);
        assert_eq!(r.format, format, "{file}");
        assert_eq!(r.findings.len(), findings, "{file}");
        let distinct_ids: BTreeSet<_> = r
            .findings
            .iter()
            .map(|f| f.vulnerability.id.as_str())
            .collect();
        assert_eq!(distinct_ids.len(), ids, "{file}");
        let distinct_pkgs: BTreeSet<_> =
            r.findings.iter().map(|f| f.package.name.as_str()).collect();
        assert_eq!(distinct_pkgs.len(), pkgs, "{file}");
        assert_eq!(r.tool.as_deref(), Some(tool), "{file}");
        assert_eq!(r.distro.as_deref(), Some(distro), "{file}");
        assert_eq!(r.target.as_deref(), Some("nginx:latest"), "{file}");
        assert_eq!(
            r.target_digest.as_ref().map(ToString::to_string).as_deref(),
            Some(NGINX_DIGEST),
            "{file}"
        );
        // Every finding is a Debian package, as the dpkg cataloger would name it.
        assert!(
            r.findings
                .iter()
                .all(|f| f.package.ecosystem == Ecosystem::Deb),
            "{file}"
        );
        assert!(
            r.findings
                .iter()
                .all(|f| f.package.purl.as_ref().is_some_and(|p| p.ty() == "deb")),
            "{file}"
        );
        assert!(
            r.findings
                .iter()
                .all(|f| f.reported_by.as_deref() == Some(tool)),
            "{file}"
        );
    }
}

#[test]
fn reports_and_sboms_name_the_image_they_describe() {
    const PLATFORM: &str =
        "sha256:88fd35a248a561e1bff5add8ff4825bec00a9af65c83aa28b9a51f9e11c9cd6f";
    const IMAGE_ID: &str =
        "sha256:be69f2940aaf64fdf50c9c99420cbd57e10ee655ec7204df1c407e9af63d0cc1";
    let digests = |s: &vexxy_ingest::Subject| -> Vec<String> {
        s.manifest_digests.iter().map(ToString::to_string).collect()
    };
    let grype = report("dimpact_nginx-latest_2025-06-08_grype.json");
    assert_eq!(digests(&grype.subject), [NGINX_DIGEST, PLATFORM]);
    assert_eq!(
        grype.subject.image_id.map(|d| d.to_string()).as_deref(),
        Some(IMAGE_ID)
    );
    let trivy = report("dimpact_nginx-latest_2025-06-08_trivy.json");
    assert_eq!(digests(&trivy.subject), [NGINX_DIGEST]);
    assert_eq!(
        trivy.subject.image_id.map(|d| d.to_string()).as_deref(),
        Some(IMAGE_ID)
    );
    let spdx = sbom("dimpact_nginx-latest_2025-06-08_sbom.spdx.json");
    assert_eq!(digests(&spdx.subject), [PLATFORM]);
    assert!(spdx.subject.image_id.is_none());
}

#[test]
fn grype_fields_map_to_the_model() {
    let r = report("dimpact_nginx-latest_2025-06-08_grype.json");
    let states = |s: FixState| r.findings.iter().filter(|f| f.fix_state == s).count();
    assert_eq!(
        (
            states(FixState::NotFixed),
            states(FixState::WontFix),
            states(FixState::Fixed)
        ),
        (91, 40, 4)
    );
    let with_source = r
        .findings
        .iter()
        .filter(|f| f.package.source_name.is_some())
        .count();
    assert_eq!(with_source, 112);
    let fixed = r
        .findings
        .iter()
        .find(|f| f.fix_state == FixState::Fixed)
        .expect("a fixed finding");
    assert!(!fixed.fixed_versions.is_empty());
    let rapid_reset = r
        .findings
        .iter()
        .find(|f| f.vulnerability.id == "CVE-2023-44487" && f.package.name == "nginx")
        .expect("CVE-2023-44487 on nginx");
    assert_eq!(rapid_reset.vulnerability.severity, Severity::High);
    assert_eq!(rapid_reset.package.version, "1.27.5-1~bookworm");
    assert_eq!(
        rapid_reset.vulnerability.data_source.as_deref(),
        Some("https://security-tracker.debian.org/tracker/CVE-2023-44487")
    );
    let nvd = rapid_reset.vulnerability.cvss.first().expect("cvss");
    assert_eq!(
        (
            nvd.source.as_deref(),
            nvd.version.as_deref(),
            nvd.base_score
        ),
        (Some("nvd@nist.gov"), Some("3.1"), Some(7.5))
    );
    assert!(rapid_reset
        .vulnerability
        .description
        .as_deref()
        .is_some_and(|d| d.contains("HTTP/2")));
}

#[test]
fn grype_epss_and_known_exploited_map_to_the_model() {
    let r = report("dimpact_nginx-latest_2025-06-08_grype.json");
    let rapid_reset = r
        .findings
        .iter()
        .find(|f| f.vulnerability.id == "CVE-2023-44487" && f.package.name == "nginx")
        .expect("CVE-2023-44487 on nginx");
    assert_eq!(rapid_reset.vulnerability.epss, Some(0.9443));
    assert!(rapid_reset.vulnerability.known_exploited);
    // Every match of this report carries an EPSS score; only one is in KEV.
    assert!(r.findings.iter().all(|f| f
        .vulnerability
        .epss
        .is_some_and(|e| (0.0..=1.0).contains(&e))));
    let kev: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.vulnerability.known_exploited)
        .map(|f| f.vulnerability.id.as_str())
        .collect();
    assert_eq!(kev, ["CVE-2023-44487"]);
    // Trivy's report has neither.
    let trivy = report("dimpact_nginx-latest_2025-06-08_trivy.json");
    assert!(trivy
        .findings
        .iter()
        .all(|f| f.vulnerability.epss.is_none() && !f.vulnerability.known_exploited));
}

#[test]
fn trivy_fields_map_to_the_model() {
    let r = report("dimpact_nginx-latest_2025-06-08_trivy.json");
    let states = |s: FixState| r.findings.iter().filter(|f| f.fix_state == s).count();
    // affected 34 + fix_deferred 2 = not fixed; will_not_fix 6; fixed 3.
    assert_eq!(
        (
            states(FixState::NotFixed),
            states(FixState::WontFix),
            states(FixState::Fixed)
        ),
        (36, 6, 3)
    );
    let aom = r
        .findings
        .iter()
        .find(|f| f.vulnerability.id == "CVE-2023-6879" && f.package.name == "libaom3")
        .expect("CVE-2023-6879 on libaom3");
    assert_eq!(aom.vulnerability.severity, Severity::Critical);
    assert_eq!(aom.package.version, "3.6.0-1+deb12u1");
    assert_eq!(
        aom.package
            .purl
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("pkg:deb/debian/libaom3@3.6.0-1%2Bdeb12u1?arch=amd64&distro=debian-12.11")
    );
    let sources: BTreeSet<_> = aom
        .vulnerability
        .cvss
        .iter()
        .filter_map(|c| c.source.as_deref())
        .collect();
    assert_eq!(sources, BTreeSet::from(["nvd", "redhat"]));
    assert!(aom
        .vulnerability
        .cvss
        .iter()
        .all(|c| c.version.as_deref() == Some("3.1") && c.base_score == Some(9.8)));
    assert_eq!(
        aom.vulnerability.urls.first().map(String::as_str),
        Some("https://avd.aquasec.com/nvd/cve-2023-6879")
    );
    let fixed = r
        .findings
        .iter()
        .find(|f| f.fix_state == FixState::Fixed)
        .expect("a fixed finding");
    assert_eq!(fixed.fixed_versions.len(), 1);
}

#[test]
fn syft_spdx_sbom_lists_packages_and_their_files() {
    let s = sbom("dimpact_nginx-latest_2025-06-08_sbom.spdx.json");
    assert_eq!(s.format, Format::Spdx);
    assert_eq!(s.name.as_deref(), Some("nginx"));
    // 151 SPDX packages, minus the image itself.
    assert_eq!(s.packages.len(), 150);
    assert_eq!(
        s.packages
            .iter()
            .filter(|p| p.ecosystem == Ecosystem::Deb)
            .count(),
        149
    );
    assert_eq!(
        s.packages
            .iter()
            .filter(|p| p.ecosystem == Ecosystem::Maven)
            .count(),
        1
    );
    assert_eq!(s.bom_refs.len(), 150);
    let libc = s
        .packages
        .iter()
        .find(|p| p.name == "libc6")
        .expect("libc6");
    assert_eq!(libc.version, "2.36-9+deb12u10");
    assert_eq!(libc.source.as_ref().map(|s| s.name.as_str()), Some("glibc"));
    assert_eq!(libc.architecture.as_deref(), Some("amd64"));
    for so in [
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libnss_files.so.2",
    ] {
        assert!(libc.files.contains(so), "libc6 should own {so}");
    }
    assert!(libc.files.iter().all(|f| f.starts_with('/')));
    let purl = libc.purl.as_ref().expect("purl").to_string();
    let written =
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12&upstream=glibc";
    assert_eq!(purl, written);
    assert_eq!(
        s.bom_refs.get(written).map(String::as_str),
        Some("SPDXRef-Package-deb-libc6-81caa9f53a8afb75")
    );
    let owned: usize = s.packages.iter().map(|p| p.files.len()).sum();
    assert!(owned > 3000, "{owned} files owned");
}

#[test]
fn grype_summary_snapshot() {
    let r = report("dimpact_nginx-latest_2025-06-08_grype.json");
    let mut out = String::new();
    let _ = writeln!(out, "format: {}", r.format);
    let _ = writeln!(out, "tool: {:?}", r.tool);
    let _ = writeln!(
        out,
        "target: {:?} {:?}",
        r.target,
        r.target_digest.as_ref().map(ToString::to_string)
    );
    let _ = writeln!(out, "distro: {:?}", r.distro);
    let mut by_severity = std::collections::BTreeMap::new();
    for f in &r.findings {
        *by_severity
            .entry(f.vulnerability.severity.as_str())
            .or_insert(0) += 1;
    }
    let _ = writeln!(out, "severities: {by_severity:?}");
    let _ = writeln!(out, "first findings:");
    for f in r.findings.iter().take(8) {
        let _ = writeln!(
            out,
            "  {} {} {} src={:?} aliases={:?} fix={:?} {:?} cvss={}",
            f.vulnerability.id,
            f.package.name,
            f.package.version,
            f.package.source_name,
            f.vulnerability.aliases,
            f.fix_state,
            f.fixed_versions,
            f.vulnerability.cvss.len()
        );
    }
    let _ = writeln!(out, "fixed:");
    for f in r.findings.iter().filter(|f| f.fix_state == FixState::Fixed) {
        let _ = writeln!(
            out,
            "  {} {} {} -> {:?}",
            f.vulnerability.id, f.package.name, f.package.version, f.fixed_versions
        );
    }
    insta::assert_snapshot!(out);
}
