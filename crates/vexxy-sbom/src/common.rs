//! What every writer shares: the sorted package entries with their purls and
//! unique references, time, content-derived ids, JSON output.

use std::collections::HashSet;

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use time::{format_description::well_known::Rfc3339, OffsetDateTime, UtcOffset};
use vexxy_model::{Ecosystem, Inventory, Package, Product, Purl};

use crate::{SbomError, SbomSubject};

/// One package of the inventory, ready to be written.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    pub(crate) package: &'a Package,
    /// The package's purl, or one built from its ecosystem, name and version.
    pub(crate) purl: String,
    /// The purl type (`deb`, `pypi`, …).
    pub(crate) purl_type: String,
    /// Unique in the document: the purl, with `|2`, `|3`… for repeats.
    pub(crate) key: String,
}

/// The inventory's packages sorted by purl, name, version and architecture,
/// each with a key unique among them and distinct from every `reserved` one.
pub(crate) fn entries<'a>(
    inventory: &'a Inventory,
    reserved: &[&str],
) -> Result<Vec<Entry<'a>>, SbomError> {
    let mut out = Vec::with_capacity(inventory.packages().len());
    for package in inventory.packages() {
        let purl = match &package.purl {
            Some(p) => p.clone(),
            None => derived_purl(package)?,
        };
        out.push(Entry {
            package,
            purl_type: purl.ty().to_owned(),
            purl: purl.to_string(),
            key: String::new(),
        });
    }
    out.sort_by(|a, b| {
        let (pa, pb) = (a.package, b.package);
        (&a.purl, &pa.name, &pa.version, &pa.architecture, &pa.files).cmp(&(
            &b.purl,
            &pb.name,
            &pb.version,
            &pb.architecture,
            &pb.files,
        ))
    });
    let mut taken: HashSet<String> = reserved.iter().map(|r| (*r).to_owned()).collect();
    for e in &mut out {
        e.key = unique(&mut taken, &e.purl, "|");
    }
    Ok(out)
}

/// `base`, or `base<sep>2`, `base<sep>3`… whichever is not yet taken; the
/// result is recorded as taken.
pub(crate) fn unique(taken: &mut HashSet<String>, base: &str, sep: &str) -> String {
    let mut candidate = base.to_owned();
    let mut n = 2u64;
    while taken.contains(&candidate) {
        candidate = format!("{base}{sep}{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// A purl for a package that has none: `pkg:<type>/<name>@<version>`, with
/// the `arch` qualifier when the architecture is known.
fn derived_purl(package: &Package) -> Result<Purl, SbomError> {
    let version = Some(package.version.as_str()).filter(|v| !v.is_empty());
    let purl = Purl::new(purl_type(&package.ecosystem), None, &package.name, version).map_err(
        |source| SbomError::Purl {
            name: package.name.clone(),
            version: package.version.clone(),
            source,
        },
    )?;
    Ok(
        match package.architecture.as_deref().filter(|a| !a.is_empty()) {
            Some(arch) => purl.with_qualifier("arch", arch),
            None => purl,
        },
    )
}

/// The purl type of an ecosystem; `generic` for one without a usable type.
fn purl_type(ecosystem: &Ecosystem) -> &str {
    match ecosystem {
        Ecosystem::Deb => "deb",
        Ecosystem::Apk => "apk",
        Ecosystem::Rpm => "rpm",
        Ecosystem::Python => "pypi",
        Ecosystem::Npm => "npm",
        Ecosystem::Go => "golang",
        Ecosystem::Cargo => "cargo",
        Ecosystem::Maven => "maven",
        Ecosystem::Other(word) => {
            let usable = word.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && word != "unknown";
            if usable {
                word
            } else {
                "generic"
            }
        }
    }
}

/// A short lowercase word for an ecosystem (`deb`, `python`, `go` …).
pub(crate) fn ecosystem_word(ecosystem: &Ecosystem) -> String {
    match ecosystem {
        Ecosystem::Deb => "deb".to_owned(),
        Ecosystem::Apk => "apk".to_owned(),
        Ecosystem::Rpm => "rpm".to_owned(),
        Ecosystem::Python => "python".to_owned(),
        Ecosystem::Npm => "npm".to_owned(),
        Ecosystem::Go => "go".to_owned(),
        Ecosystem::Cargo => "cargo".to_owned(),
        Ecosystem::Maven => "maven".to_owned(),
        Ecosystem::Other(word) => word.to_ascii_lowercase(),
    }
}

/// The `pkg:oci` purl of the image, as scanners match VEX products.
pub(crate) fn image_purl(subject: &SbomSubject) -> String {
    Product {
        name: subject.name.clone(),
        tag: None,
        digest: subject.digest.clone(),
    }
    .oci_purl()
}

/// RFC 3339 in UTC with a `Z` suffix.
pub(crate) fn rfc3339(ts: OffsetDateTime) -> Result<String, SbomError> {
    let err = || SbomError::Timestamp { value: ts };
    ts.checked_to_offset(UtcOffset::UTC)
        .ok_or_else(err)?
        .format(&Rfc3339)
        .map_err(|_| err())
}

/// SHA-256 of `domain`, a zero byte, and `content`.
pub(crate) fn content_hash(domain: &str, content: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update([0u8]);
    h.update(content);
    h.finalize().into()
}

/// A version-8 UUID (lowercase, hyphenated) made from the SHA-256 of
/// `domain` and `content`.
pub(crate) fn content_uuid(domain: &str, content: &[u8]) -> String {
    let hash = content_hash(domain, content);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The first 16 hex digits of the SHA-256 of `text`.
pub(crate) fn short_hash(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hex::encode(&hash[..8])
}

/// `text` with every character outside `[A-Za-z0-9.-]` replaced by `-`
/// (the characters an SPDX id may hold).
pub(crate) fn sanitise(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Pretty JSON (two-space indent) with a final newline.
pub(crate) fn to_json<T: Serialize>(format: &'static str, value: &T) -> Result<String, SbomError> {
    let mut s =
        serde_json::to_string_pretty(value).map_err(|source| SbomError::Json { format, source })?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vexxy_model::InventorySource;

    #[test]
    fn derived_purls_and_unique_keys() {
        let mut a = Package::new("libfoo", "1:2.0+dfsg-1", Ecosystem::Deb);
        a.architecture = Some("amd64".into());
        let b = Package::new("requests", "2.31.0", Ecosystem::Python);
        let c = Package::new("thing", "", Ecosystem::Other("unknown".into()));
        let d = Package::new("gem", "1.0", Ecosystem::Other("gem".into()));
        let inv = Inventory::new(InventorySource::Sbom, vec![b.clone(), a, c, d, b]);
        let got: Vec<(String, String)> = entries(&inv, &[])
            .expect("entries")
            .into_iter()
            .map(|e| (e.purl, e.key))
            .collect();
        let want = [
            (
                "pkg:deb/libfoo@1:2.0%2Bdfsg-1?arch=amd64",
                "pkg:deb/libfoo@1:2.0%2Bdfsg-1?arch=amd64",
            ),
            ("pkg:gem/gem@1.0", "pkg:gem/gem@1.0"),
            ("pkg:generic/thing", "pkg:generic/thing"),
            ("pkg:pypi/requests@2.31.0", "pkg:pypi/requests@2.31.0"),
            ("pkg:pypi/requests@2.31.0", "pkg:pypi/requests@2.31.0|2"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(p, k)| ((*p).to_owned(), (*k).to_owned()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn empty_name_without_purl_is_an_error() {
        let inv = Inventory::new(
            InventorySource::Sbom,
            vec![Package::new("", "1", Ecosystem::Npm)],
        );
        let err = entries(&inv, &[]).expect_err("empty name");
        assert!(err.is_bad_input());
        assert!(
            err.to_string()
                .starts_with("package \"\" version \"1\" has no purl"),
            "{err}"
        );
    }

    #[test]
    fn timestamps_are_utc_and_bounded() {
        let ts = time::macros::datetime!(2025-03-04 05:06:07 +02:00);
        assert_eq!(rfc3339(ts).expect("formats"), "2025-03-04T03:06:07Z");
        let late = time::macros::datetime!(9999-12-31 23:00:00 -05:00);
        let err = rfc3339(late).expect_err("year 10000");
        assert!(
            err.is_bad_input() && err.to_string().contains("cannot be written"),
            "{err}"
        );
    }

    #[test]
    fn ids_are_sanitised_and_content_derived() {
        assert_eq!(sanitise("libstdc++6:amd64/x_y"), "libstdc--6-amd64-x-y");
        assert_eq!(content_uuid("d", b"x"), content_uuid("d", b"x"));
        assert_ne!(content_uuid("d", b"x"), content_uuid("e", b"x"));
        assert_eq!(content_uuid("d", b"x").len(), 36);
        assert_eq!(short_hash("x").len(), 16);
    }
}
