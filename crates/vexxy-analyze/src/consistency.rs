//! Does a scanner report (or SBOM) describe the analysed image? A report
//! of another image yields statements about package versions this image
//! does not hold, which scanners then silently do not apply.
//!
//! The report's digests decide when it records any (a repository or
//! manifest digest equal to the image's manifest or index digest, or an
//! image ID equal to its config digest); a report that records none is
//! compared by package versions. Pure: no I/O.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
};

use vexxy_ingest::Subject;
use vexxy_model::{Digest, Ecosystem, Finding, Inventory};

use crate::AnalyzeError;

/// The analysed image's identity, as [`check`] compares it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageIdentity {
    /// Its manifest digest.
    pub manifest: Option<Digest>,
    /// The digest of the index it was picked from, if any.
    pub index: Option<Digest>,
    /// Its config digest (image ID).
    pub config: Option<Digest>,
}

/// What differed between a report and the image it was decided about
/// (with [`crate::AnalysisRequest::allow_report_mismatch`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportMismatch {
    /// The manifest or repository digests the report names.
    pub report_digests: Vec<Digest>,
    /// The image ID the report names.
    pub report_image_id: Option<Digest>,
    /// The analysed image's manifest digest.
    pub image_digest: Option<Digest>,
    /// Packages the report lists at other versions than installed: the
    /// statements carry the installed versions.
    pub changed_versions: Vec<VersionChange>,
    /// Packages the report lists that this image does not hold (of an
    /// ecosystem the catalog covers).
    pub not_installed: BTreeSet<String>,
}

/// One package version a report had wrong for this image.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionChange {
    /// The package name.
    pub package: String,
    /// The version the report lists.
    pub reported: String,
    /// The version installed in the image.
    pub installed: String,
}

/// How many differing packages an error message names.
const NAMED_IN_ERRORS: usize = 5;

/// What a document lists to compare: (name, version, ecosystem).
pub(crate) type Listed<'a> = (&'a str, &'a str, &'a Ecosystem);

/// Compares the report with the image. Without `allow`, a report of
/// another image is bad input naming both sides; with it, the findings
/// come back with this image's installed versions and the mismatch is
/// described. A matching report returns its findings unchanged.
///
/// The digests decide when both sides have some; otherwise (a report
/// naming none, a `dir:` rootfs without any) the versions of the OS
/// packages (deb, rpm, apk) both list do: scanners print those exactly
/// as the package database has them, while language ecosystems differ in
/// spelling (`go1.22.1`, `v1.22.1`, `1.22.1`).
pub(crate) fn check<'f>(
    origin: &str,
    subject: &Subject,
    image: &ImageIdentity,
    findings: &'f [Finding],
    inventory: &Inventory,
    allow: bool,
) -> Result<(Cow<'f, [Finding]>, Option<ReportMismatch>), AnalyzeError> {
    let listed: Vec<Listed<'_>> = findings
        .iter()
        .map(|f| {
            (
                f.package.name.as_str(),
                f.package.version.as_str(),
                &f.package.ecosystem,
            )
        })
        .collect();
    let (changed, not_installed) = differences(&listed, inventory);
    let same_image = match digests_match(subject, image) {
        Some(same) => same,
        None => changed.is_empty(),
    };
    if same_image {
        return Ok((Cow::Borrowed(findings), None));
    }
    let mismatch = ReportMismatch {
        report_digests: subject.manifest_digests.clone(),
        report_image_id: subject.image_id.clone(),
        image_digest: image.manifest.clone(),
        changed_versions: changed.values().cloned().collect(),
        not_installed,
    };
    if !allow {
        return Err(AnalyzeError::bad_input(refusal(origin, &mismatch, image)));
    }
    let adjusted = findings
        .iter()
        .map(|f| {
            let key = (
                ecosystem_key(&f.package.ecosystem),
                f.package.name.clone(),
                f.package.version.clone(),
            );
            match changed.get(&key) {
                Some(change) => with_version(f, &change.installed),
                None => f.clone(),
            }
        })
        .collect();
    Ok((Cow::Owned(adjusted), Some(mismatch)))
}

/// Compares an SBOM with the image: its digests when they match, else its
/// OS packages' versions (an SBOM's image digest may be one its tool made
/// up for a local image, so a differing digest alone proves nothing).
pub(crate) fn check_sbom(
    origin: &str,
    subject: &Subject,
    image: &ImageIdentity,
    packages: &[Listed<'_>],
    inventory: &Inventory,
    allow: bool,
) -> Result<Option<ReportMismatch>, AnalyzeError> {
    if digests_match(subject, image) == Some(true) {
        return Ok(None);
    }
    let (changed, not_installed) = differences(packages, inventory);
    if changed.is_empty() {
        return Ok(None);
    }
    let mismatch = ReportMismatch {
        report_digests: subject.manifest_digests.clone(),
        report_image_id: subject.image_id.clone(),
        image_digest: image.manifest.clone(),
        changed_versions: changed.values().cloned().collect(),
        not_installed,
    };
    if allow {
        Ok(Some(mismatch))
    } else {
        Err(AnalyzeError::bad_input(refusal(origin, &mismatch, image)))
    }
}

/// Whether the document's digests name this image; `None` when either
/// side has none to compare.
fn digests_match(subject: &Subject, image: &ImageIdentity) -> Option<bool> {
    let ours = [&image.manifest, &image.index, &image.config];
    if subject.is_empty() || ours.iter().all(|d| d.is_none()) {
        return None;
    }
    Some(
        subject
            .manifest_digests
            .iter()
            .any(|d| image.manifest.as_ref() == Some(d) || image.index.as_ref() == Some(d))
            || subject
                .image_id
                .as_ref()
                .is_some_and(|id| image.config.as_ref() == Some(id)),
    )
}

fn refusal(origin: &str, m: &ReportMismatch, image: &ImageIdentity) -> String {
    let ours = image.manifest.as_ref().map_or_else(
        || "an image without a digest".to_owned(),
        ToString::to_string,
    );
    let hint = "pass --allow-report-mismatch to decide it about this image's installed versions, \
                or scan this image";
    if m.report_digests.is_empty() && m.report_image_id.is_none() {
        let named: Vec<String> = m
            .changed_versions
            .iter()
            .take(NAMED_IN_ERRORS)
            .map(|c| format!("{} {} (installed {})", c.package, c.reported, c.installed))
            .collect();
        let more = m.changed_versions.len().saturating_sub(NAMED_IN_ERRORS);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return format!(
            "{origin} was made for another image than {ours}: it lists {}{more}; {hint}",
            named.join(", ")
        );
    }
    let theirs = m
        .report_digests
        .first()
        .map(ToString::to_string)
        .or_else(|| m.report_image_id.as_ref().map(|d| format!("image ID {d}")))
        .unwrap_or_default();
    format!("{origin} describes image {theirs}, not the analysed image {ours}; {hint}")
}

type Key = (String, String, String);

/// Listed OS packages at versions the image does not hold, keyed by
/// (ecosystem, name, listed version); and names not installed at all.
fn differences(
    listed: &[Listed<'_>],
    inventory: &Inventory,
) -> (BTreeMap<Key, VersionChange>, BTreeSet<String>) {
    let covered: BTreeSet<String> = inventory
        .packages()
        .iter()
        .map(|p| ecosystem_key(&p.ecosystem))
        .collect();
    let mut changed = BTreeMap::new();
    let mut missing = BTreeSet::new();
    for &(name, version, ecosystem) in listed {
        let eco = ecosystem_key(ecosystem);
        if !is_os(ecosystem) || !covered.contains(&eco) {
            continue;
        }
        let installed: Vec<&str> = inventory
            .by_name(name)
            .filter(|p| &p.ecosystem == ecosystem)
            .map(|p| p.version.as_str())
            .collect();
        if installed.is_empty() {
            missing.insert(name.to_owned());
            continue;
        }
        if installed.iter().any(|v| same_version(v, version)) {
            continue;
        }
        changed
            .entry((eco, name.to_owned(), version.to_owned()))
            .or_insert_with(|| VersionChange {
                package: name.to_owned(),
                reported: version.to_owned(),
                installed: installed[0].to_owned(),
            });
    }
    (changed, missing)
}

/// OS package managers' ecosystems, whose versions scanners print verbatim.
fn is_os(e: &Ecosystem) -> bool {
    matches!(e, Ecosystem::Deb | Ecosystem::Rpm | Ecosystem::Apk)
}

fn ecosystem_key(e: &Ecosystem) -> String {
    format!("{e:?}")
}

/// Equal, or equal once an epoch only one side writes is left off
/// (scanners differ in whether they print `1:`).
fn same_version(installed: &str, reported: &str) -> bool {
    fn without_epoch(v: &str) -> &str {
        match v.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => rest,
            _ => v,
        }
    }
    installed == reported || without_epoch(installed) == without_epoch(reported)
}

fn with_version(f: &Finding, installed: &str) -> Finding {
    let mut f = f.clone();
    f.package.version = installed.to_owned();
    if let Some(p) = f.package.purl.take() {
        let version = p.version().map(|_| installed.to_owned());
        f.package.purl = Some(p.with_version(version.as_deref()));
    }
    f
}

#[cfg(test)]
mod tests {
    use vexxy_model::{Package, PackageRef, Purl, Vulnerability};

    use super::*;

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .expect("digest")
    }

    fn finding(name: &str, version: &str) -> Finding {
        let purl: Purl = format!("pkg:deb/debian/{name}@{version}?distro=debian-12")
            .parse()
            .expect("purl");
        Finding {
            vulnerability: Vulnerability {
                id: "CVE-2024-0001".into(),
                ..Vulnerability::default()
            },
            package: PackageRef {
                name: name.into(),
                version: version.into(),
                ecosystem: Ecosystem::Deb,
                purl: Some(purl),
                source_name: None,
            },
            fixed_versions: Vec::new(),
            fix_state: vexxy_model::FixState::Unknown,
            reported_by: None,
        }
    }

    fn inventory(pkgs: &[(&str, &str)]) -> Inventory {
        Inventory::new(
            vexxy_model::InventorySource::RootFs,
            pkgs.iter()
                .map(|(n, v)| Package::new(*n, *v, Ecosystem::Deb))
                .collect(),
        )
    }

    fn image() -> ImageIdentity {
        ImageIdentity {
            manifest: Some(digest('a')),
            index: Some(digest('b')),
            config: Some(digest('c')),
        }
    }

    #[test]
    fn a_report_of_this_image_by_any_of_its_digests_passes_unchanged() {
        let findings = [finding("zlib1g", "1:1.2.13")];
        let inv = inventory(&[("zlib1g", "1:1.2.13.dfsg-1")]);
        for subject in [
            Subject {
                manifest_digests: vec![digest('a')],
                image_id: None,
            },
            Subject {
                manifest_digests: vec![digest('f'), digest('b')],
                image_id: None,
            },
            Subject {
                manifest_digests: vec![digest('f')],
                image_id: Some(digest('c')),
            },
        ] {
            let (out, mismatch) =
                check("r.json", &subject, &image(), &findings, &inv, false).expect("same image");
            assert_eq!(&*out, &findings[..]);
            assert!(mismatch.is_none());
        }
    }

    #[test]
    fn a_report_of_another_image_is_refused_naming_both_digests() {
        let subject = Subject {
            manifest_digests: vec![digest('f')],
            image_id: Some(digest('e')),
        };
        let e = check("r.json", &subject, &image(), &[], &inventory(&[]), false)
            .expect_err("another image");
        let msg = e.to_string();
        assert!(
            msg.contains(&digest('f').to_string()) && msg.contains(&digest('a').to_string()),
            "{msg}"
        );
        assert!(
            msg.contains("--allow-report-mismatch") && msg.contains("r.json"),
            "{msg}"
        );
        assert_eq!(e.kind(), crate::ErrorKind::BadInput);
    }

    #[test]
    fn allowed_mismatches_carry_the_installed_versions() {
        let subject = Subject {
            manifest_digests: vec![digest('f')],
            image_id: None,
        };
        let findings = [
            finding("libtiff6", "4.5.0-6+deb12u2"),
            finding("openssl", "3.0.16-1~deb12u1"),
            finding("gone", "1.0"),
        ];
        let inv = inventory(&[
            ("libtiff6", "4.5.0-6+deb12u1"),
            ("openssl", "3.0.16-1~deb12u1"),
        ]);
        let (out, mismatch) =
            check("r.json", &subject, &image(), &findings, &inv, true).expect("allowed");
        let m = mismatch.expect("described");
        assert_eq!(out[0].package.version, "4.5.0-6+deb12u1");
        assert_eq!(
            out[0].package.purl.as_ref().and_then(|p| p.version()),
            Some("4.5.0-6+deb12u1")
        );
        assert_eq!(out[1], findings[1]);
        assert_eq!(out[2], findings[2]);
        assert_eq!(
            m.changed_versions,
            [VersionChange {
                package: "libtiff6".into(),
                reported: "4.5.0-6+deb12u2".into(),
                installed: "4.5.0-6+deb12u1".into()
            }]
        );
        assert_eq!(m.not_installed.into_iter().collect::<Vec<_>>(), ["gone"]);
    }

    #[test]
    fn without_digests_versions_decide() {
        let none = Subject::default();
        let inv = inventory(&[("libc6", "2.36-9+deb12u10")]);
        let same = [finding("libc6", "2.36-9+deb12u10")];
        assert!(check("r.json", &none, &image(), &same, &inv, false).is_ok());
        let other = [finding("libc6", "2.36-9+deb12u4")];
        let msg = check("r.json", &none, &image(), &other, &inv, false)
            .expect_err("other versions")
            .to_string();
        assert!(
            msg.contains("libc6 2.36-9+deb12u4 (installed 2.36-9+deb12u10)"),
            "{msg}"
        );
    }

    #[test]
    fn language_versions_and_digestless_images_do_not_refuse_by_themselves() {
        let mut go = finding("stdlib", "1.22.1");
        go.package.ecosystem = Ecosystem::Go;
        let mut inv_pkgs = vec![Package::new("stdlib", "go1.22.1", Ecosystem::Go)];
        inv_pkgs.push(Package::new("libc6", "2.36-9+deb12u10", Ecosystem::Deb));
        let inv = Inventory::new(vexxy_model::InventorySource::RootFs, inv_pkgs);
        let none = Subject::default();
        assert!(check("r.json", &none, &image(), &[go], &inv, false).is_ok());
        // a rootfs has no digests: the versions decide, not the report's digest
        let rootfs = ImageIdentity::default();
        let subject = Subject {
            manifest_digests: vec![digest('f')],
            image_id: None,
        };
        let same = [finding("libc6", "2.36-9+deb12u10")];
        assert!(check("r.json", &subject, &rootfs, &same, &inv, false).is_ok());
        let other = [finding("libc6", "2.36-9+deb12u4")];
        assert!(check("r.json", &subject, &rootfs, &other, &inv, false).is_err());
    }

    #[test]
    fn an_sbom_with_another_digest_but_these_versions_passes() {
        let inv = inventory(&[("libc6", "2.36-9+deb12u10")]);
        let subject = Subject {
            manifest_digests: vec![digest('f')],
            image_id: None,
        };
        let deb = Ecosystem::Deb;
        let same: [Listed<'_>; 1] = [("libc6", "2.36-9+deb12u10", &deb)];
        assert!(check_sbom("s.json", &subject, &image(), &same, &inv, false)
            .unwrap()
            .is_none());
        let other: [Listed<'_>; 1] = [("libc6", "2.36-9+deb12u4", &deb)];
        let msg = check_sbom("s.json", &subject, &image(), &other, &inv, false)
            .expect_err("other versions")
            .to_string();
        assert!(msg.contains(&digest('f').to_string()), "{msg}");
        let allowed = check_sbom("s.json", &subject, &image(), &other, &inv, true).unwrap();
        assert_eq!(allowed.map(|m| m.changed_versions.len()), Some(1));
    }

    #[test]
    fn epochs_only_one_side_writes_are_the_same_version() {
        assert!(same_version("1:1.2.13.dfsg-1", "1.2.13.dfsg-1"));
        assert!(!same_version("1:1.2.13", "1.2.14"));
    }
}
