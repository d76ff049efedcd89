//! Helpers shared by the format readers.

use std::path::Path;

use serde::{Deserialize, Deserializer};
use vexxy_model::{Digest, Ecosystem, Purl, Severity, SourcePackage};

use crate::error::{FieldError, IngestError};

/// Drops a UTF-8 byte-order mark, which some editors put in JSON files.
pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Deserializes a whole document into `T`, tracking the JSON path for errors.
pub(crate) fn from_slice<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    origin: &Path,
) -> Result<T, IngestError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let json_path = e.path().to_string();
        IngestError::from_json(origin, e.inner(), json_path)
    })?;
    de.end()
        .map_err(|e| IngestError::from_json(origin, &e, ".".to_owned()))?;
    Ok(value)
}

/// `null` or absent → `T::default()`; use with `#[serde(default, deserialize_with = "null_default")]`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A value that is `T` when it has `T`'s shape and is ignored otherwise
/// (for free-form fields whose shape differs between tool versions).
#[derive(Debug)]
pub(crate) enum Lenient<T> {
    Ok(T),
    Other,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(T::deserialize(value).map_or(Self::Other, Self::Ok))
    }
}

impl<T> Lenient<T> {
    pub(crate) fn ok(self) -> Option<T> {
        match self {
            Self::Ok(t) => Some(t),
            Self::Other => None,
        }
    }
}

/// A non-empty string, or `None`.
pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Parses an optional purl; empty counts as absent. `json_path` is built only on error.
pub(crate) fn purl(
    raw: Option<&str>,
    json_path: impl FnOnce() -> String,
) -> Result<Option<Purl>, FieldError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<Purl>()
            .map(Some)
            .map_err(|source| FieldError::Purl {
                json_path: json_path(),
                source,
            }),
    }
}

/// The digest of a repository digest `name@sha256:…` (or a bare `sha256:…`).
/// The image digest an SBOM's image component carries: the version of a
/// `pkg:oci`/`pkg:docker` purl, else a version that is a digest. Lenient:
/// anything else is no digest (SBOM producers differ here).
pub(crate) fn image_digest(purl: Option<&str>, version: Option<&str>) -> Option<Digest> {
    let from_purl = purl.and_then(|p| {
        let p = p.trim();
        if !(p.starts_with("pkg:oci/") || p.starts_with("pkg:docker/")) {
            return None;
        }
        let (_, v) = p.split_once('@')?;
        let v = v.split(['?', '#']).next()?;
        v.replacen("%3A", ":", 1)
            .replacen("%3a", ":", 1)
            .parse()
            .ok()
    });
    from_purl.or_else(|| version.and_then(|v| v.trim().parse().ok()))
}

pub(crate) fn repo_digest(
    raw: &str,
    json_path: impl FnOnce() -> String,
) -> Result<Digest, FieldError> {
    let digest = raw.rsplit_once('@').map_or(raw, |(_, d)| d);
    digest
        .parse::<Digest>()
        .map_err(|source| FieldError::Digest {
            json_path: json_path(),
            source,
        })
}

/// The ecosystem from the purl type when there is a purl, else from the
/// scanner's type word, else `Other("unknown")`.
pub(crate) fn ecosystem(purl: Option<&Purl>, word: Option<&str>) -> Ecosystem {
    match (purl, word.map(str::trim).filter(|w| !w.is_empty())) {
        (Some(p), _) => Ecosystem::from_purl_type(p.ty()),
        (None, Some(w)) => Ecosystem::from_scanner_type(w),
        (None, None) => Ecosystem::Other("unknown".to_owned()),
    }
}

/// The source package named by a purl's `upstream` qualifier
/// (`glibc` or `perl@5.36.0-7`).
pub(crate) fn upstream_source(purl: Option<&Purl>) -> Option<SourcePackage> {
    let raw = purl?.qualifier("upstream")?.trim();
    if raw.is_empty() {
        return None;
    }
    Some(match raw.split_once('@') {
        Some((name, version)) => SourcePackage {
            name: name.to_owned(),
            version: Some(version.to_owned()).filter(|v| !v.is_empty()),
        },
        None => SourcePackage {
            name: raw.to_owned(),
            version: None,
        },
    })
}

/// The architecture from a purl's `arch` qualifier.
pub(crate) fn purl_arch(purl: Option<&Purl>) -> Option<String> {
    purl?
        .qualifier("arch")
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
}

/// An absolute, normalised path inside the image: `usr/lib/x` and
/// `./usr/lib/x` become `/usr/lib/x`; `.` and `..` segments are resolved
/// without climbing above `/`. `None` for an empty path.
pub(crate) fn abs_path(raw: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

/// Joins a possibly relative path onto a base directory, then normalises.
pub(crate) fn join_path(base: Option<&str>, raw: &str) -> Option<String> {
    match base {
        Some(b) if !raw.starts_with('/') => abs_path(&format!("{b}/{raw}")),
        _ => abs_path(raw),
    }
}

/// The NVD qualitative rating of a CVSS base score.
pub(crate) fn severity_of_score(score: f64) -> Severity {
    if !score.is_finite() || score < 0.0 {
        Severity::Unknown
    } else if score >= 9.0 {
        Severity::Critical
    } else if score >= 7.0 {
        Severity::High
    } else if score >= 4.0 {
        Severity::Medium
    } else if score > 0.0 {
        Severity::Low
    } else {
        Severity::Negligible
    }
}

/// The CVSS version a vector states (`CVSS:3.1/…` → `3.1`); a vector
/// without the prefix is CVSS 2.
pub(crate) fn cvss_version_of(vector: &str) -> Option<String> {
    match vector.strip_prefix("CVSS:") {
        Some(rest) => rest
            .split('/')
            .next()
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        None if vector.contains("Au:") => Some("2.0".to_owned()),
        None => None,
    }
}

/// Pushes `s` unless it is empty, equal to `except`, or already present.
pub(crate) fn push_unique(list: &mut Vec<String>, s: &str, except: &str) {
    let s = s.trim();
    if !s.is_empty() && s != except && !list.iter().any(|x| x == s) {
        list.push(s.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_absolute_and_normal() {
        let cases = [
            ("usr/lib/libc.so.6", Some("/usr/lib/libc.so.6")),
            ("./usr/bin/x", Some("/usr/bin/x")),
            ("/usr//lib/./a/../b", Some("/usr/lib/b")),
            ("../../etc/passwd", Some("/etc/passwd")),
            ("", None),
            ("/", None),
        ];
        for (raw, want) in cases {
            assert_eq!(abs_path(raw).as_deref(), want, "{raw}");
        }
        assert_eq!(
            join_path(Some("/usr/lib/python3/dist-packages"), "../../../bin/pip").as_deref(),
            Some("/usr/bin/pip")
        );
        assert_eq!(join_path(Some("/x"), "/abs").as_deref(), Some("/abs"));
    }

    #[test]
    fn scores_and_vectors() {
        let cases = [
            (9.8, Severity::Critical),
            (7.0, Severity::High),
            (5.3, Severity::Medium),
            (0.1, Severity::Low),
        ];
        for (score, want) in cases {
            assert_eq!(severity_of_score(score), want, "{score}");
        }
        assert_eq!(severity_of_score(f64::NAN), Severity::Unknown);
        assert_eq!(cvss_version_of("CVSS:3.1/AV:N").as_deref(), Some("3.1"));
        assert_eq!(
            cvss_version_of("AV:N/AC:L/Au:N/C:P/I:P/A:P").as_deref(),
            Some("2.0")
        );
        assert_eq!(cvss_version_of("garbage"), None);
    }

    #[test]
    fn upstream_qualifier_names_the_source() {
        let p: Purl = "pkg:deb/debian/libperl5.36@5.36.0-7?upstream=perl%405.36.0-7"
            .parse()
            .expect("purl");
        let s = upstream_source(Some(&p)).expect("source");
        assert_eq!(
            (s.name.as_str(), s.version.as_deref()),
            ("perl", Some("5.36.0-7"))
        );
        let p: Purl = "pkg:deb/debian/libc6@2.36?upstream=glibc"
            .parse()
            .expect("purl");
        assert_eq!(
            upstream_source(Some(&p)).map(|s| s.name),
            Some("glibc".to_owned())
        );
    }
}
