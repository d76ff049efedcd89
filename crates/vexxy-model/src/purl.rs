use std::{collections::BTreeMap, fmt, str::FromStr};

/// A parsed package URL (<https://github.com/package-url/purl-spec>).
///
/// Qualifiers are kept sorted so that [`fmt::Display`] is canonical.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Purl {
    ty: String,
    namespace: Option<String>,
    name: String,
    version: Option<String>,
    qualifiers: BTreeMap<String, String>,
    subpath: Option<String>,
}

/// A package URL that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid package url {input:?}: {reason}")]
pub struct PurlError {
    input: String,
    reason: String,
}

impl Purl {
    /// Builds a purl from parts; `name` and `ty` must be non-empty.
    pub fn new(
        ty: &str,
        namespace: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<Self, PurlError> {
        let err = |reason: &str| PurlError {
            input: format!(
                "{ty}/{}{name}",
                namespace.map(|n| format!("{n}/")).unwrap_or_default()
            ),
            reason: reason.to_owned(),
        };
        if ty.is_empty() {
            return Err(err("empty type"));
        }
        if name.is_empty() {
            return Err(err("empty name"));
        }
        Ok(Self {
            ty: ty.to_ascii_lowercase(),
            namespace: namespace.filter(|n| !n.is_empty()).map(str::to_owned),
            name: name.to_owned(),
            version: version.filter(|v| !v.is_empty()).map(str::to_owned),
            qualifiers: BTreeMap::new(),
            subpath: None,
        })
    }

    /// The purl type (`deb`, `pypi`, `oci`, …), lowercase.
    pub fn ty(&self) -> &str {
        &self.ty
    }
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
    pub fn qualifiers(&self) -> &BTreeMap<String, String> {
        &self.qualifiers
    }
    pub fn qualifier(&self, key: &str) -> Option<&str> {
        self.qualifiers.get(key).map(String::as_str)
    }
    pub fn subpath(&self) -> Option<&str> {
        self.subpath.as_deref()
    }

    #[must_use]
    pub fn with_qualifier(mut self, key: &str, value: &str) -> Self {
        self.qualifiers
            .insert(key.to_ascii_lowercase(), value.to_owned());
        self
    }

    #[must_use]
    pub fn with_version(mut self, version: Option<&str>) -> Self {
        self.version = version.filter(|v| !v.is_empty()).map(str::to_owned);
        self
    }

    /// The same purl without qualifiers or subpath.
    #[must_use]
    pub fn without_qualifiers(&self) -> Self {
        Self {
            qualifiers: BTreeMap::new(),
            subpath: None,
            ..self.clone()
        }
    }

    /// The form scanners match VEX subcomponents against: no qualifiers
    /// (Trivy and Grype write different ones and every VEX qualifier must
    /// match), and no version when the version has a Debian-style epoch
    /// (`1:2.3`), which the scanners spell differently.
    #[must_use]
    pub fn vex_form(&self) -> Self {
        let mut p = self.without_qualifiers();
        if p.version.as_deref().is_some_and(has_epoch) {
            p.version = None;
        }
        p
    }

    /// Same package identity: type, namespace and name (names compared
    /// case-insensitively for ecosystems that normalise case).
    pub fn same_package(&self, other: &Purl) -> bool {
        self.ty == other.ty
            && self.namespace.as_deref().map(str::to_ascii_lowercase)
                == other.namespace.as_deref().map(str::to_ascii_lowercase)
            && self.name.eq_ignore_ascii_case(&other.name)
    }
}

fn has_epoch(version: &str) -> bool {
    version
        .split_once(':')
        .is_some_and(|(e, _)| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
}

impl FromStr for Purl {
    type Err = PurlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let p = packageurl::PackageUrl::from_str(s).map_err(|e| PurlError {
            input: s.to_owned(),
            reason: e.to_string().to_lowercase(),
        })?;
        Ok(Self {
            ty: p.ty().to_ascii_lowercase(),
            namespace: p.namespace().map(str::to_owned),
            name: p.name().to_owned(),
            version: p.version().map(str::to_owned),
            qualifiers: p
                .qualifiers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            subpath: p.subpath().map(str::to_owned),
        })
    }
}

/// Characters left unescaped in purl segments (RFC 3986 unreserved, plus
/// `:` which the spec allows in versions).
fn encode(out: &mut String, s: &str, keep: &[u8]) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

impl fmt::Display for Purl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(64);
        out.push_str("pkg:");
        out.push_str(&self.ty);
        out.push('/');
        if let Some(ns) = &self.namespace {
            for (i, seg) in ns.split('/').enumerate() {
                if i > 0 {
                    out.push('/');
                }
                encode(&mut out, seg, b"");
            }
            out.push('/');
        }
        encode(&mut out, &self.name, b"");
        if let Some(v) = &self.version {
            out.push('@');
            encode(&mut out, v, b":");
        }
        for (i, (k, v)) in self.qualifiers.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(k);
            out.push('=');
            encode(&mut out, v, b":/");
        }
        if let Some(sp) = &self.subpath {
            out.push('#');
            encode(&mut out, sp, b"/");
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_round_trip_and_vex_form() {
        let cases = [
            (
                "pkg:deb/debian/libaom3@3.6.0-1%2Bdeb12u1?distro=debian-12.11&arch=amd64",
                "pkg:deb/debian/libaom3@3.6.0-1%2Bdeb12u1?arch=amd64&distro=debian-12.11",
                "pkg:deb/debian/libaom3@3.6.0-1%2Bdeb12u1",
            ),
            (
                "pkg:deb/debian/bsdutils@1%3A2.38.1-5%2Bdeb12u3?arch=amd64",
                "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u3?arch=amd64",
                "pkg:deb/debian/bsdutils",
            ),
            (
                "pkg:npm/%40angular/core@1.0",
                "pkg:npm/%40angular/core@1.0",
                "pkg:npm/%40angular/core@1.0",
            ),
        ];
        for (input, canonical, vex) in cases {
            let p: Purl = input.parse().expect(input);
            assert_eq!(p.to_string(), canonical, "{input}");
            assert_eq!(p.vex_form().to_string(), vex, "{input}");
            let again: Purl = canonical.parse().expect(canonical);
            assert_eq!(again, p);
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "pkg:", "deb/debian/x", "pkg:deb"] {
            assert!(bad.parse::<Purl>().is_err(), "{bad}");
        }
    }
}
