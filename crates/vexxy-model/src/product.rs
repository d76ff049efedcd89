use std::{fmt, str::FromStr};

/// A content digest, `sha256:<64 lowercase hex>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    hex: String,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid digest {0:?}: expected sha256: followed by 64 hex digits")]
pub struct DigestError(pub String);

impl Digest {
    /// The 64 hex digits, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.hex
    }
    pub fn from_sha256_bytes(bytes: &[u8; 32]) -> Self {
        use fmt::Write;
        let mut hex = String::with_capacity(64);
        for b in bytes {
            let _ = write!(hex, "{b:02x}");
        }
        Self { hex }
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| DigestError(s.to_owned()))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DigestError(s.to_owned()));
        }
        Ok(Self {
            hex: hex.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// The thing VEX statements are about: an image, by repository name and
/// (ideally) manifest digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Product {
    /// Repository name without tag or digest, e.g. `docker.io/library/nginx`
    /// or `nginx`.
    pub name: String,
    /// A tag when one was given (kept for reports; not part of identity in VEX).
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Product {
    /// Parses `name[:tag][@sha256:…]`.
    pub fn parse(reference: &str) -> Result<Self, DigestError> {
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>()?)),
            None => (reference, None),
        };
        // A ':' after the last '/' is a tag; before it, a registry port.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_owned())),
            None => (rest, None),
        };
        Ok(Self {
            name: name.to_owned(),
            tag,
            digest,
        })
    }

    /// The purl scanners match VEX products against:
    /// `pkg:oci/<last path segment>@sha256:…` with no qualifiers.
    pub fn oci_purl(&self) -> String {
        let short = self
            .name
            .rsplit('/')
            .next()
            .unwrap_or(&self.name)
            .to_ascii_lowercase();
        match &self.digest {
            Some(d) => format!("pkg:oci/{short}@sha256%3A{}", d.hex()),
            None => format!("pkg:oci/{short}"),
        }
    }
}

/// Why a repository name was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid repository name {name:?}: {reason}")]
pub struct RepositoryError {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks a repository name as registries accept it
/// (`[host[:port]/]path/of/components`, lowercase components of letters,
/// digits and single separators `.`, `_`, `__`, `-`…, no tag, no digest).
pub fn check_repository(name: &str) -> Result<(), RepositoryError> {
    let fail = |reason| {
        Err(RepositoryError {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 255 {
        return fail("must be 1 to 255 characters");
    }
    if name.contains('@') {
        return fail("a repository name carries no digest");
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let first = parts[0];
    if parts.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost") {
        let (host, port) = first.split_once(':').unwrap_or((first, ""));
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        let port_ok = port.is_empty() && !first.contains(':')
            || !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !host_ok || !port_ok {
            return fail("the registry host is not host[:port]");
        }
        parts.remove(0);
    }
    for part in parts {
        if part.contains(':') {
            return fail("a repository name carries no tag");
        }
        if !component_ok(part) {
            return fail("path components are lowercase letters and digits joined by '.', '_', '__' or dashes");
        }
    }
    Ok(())
}

fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // a separator: '.', '_', '__' or a run of '-'
        let start = i;
        match ch {
            b'.' => i += 1,
            b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start
            || !b
                .get(i)
                .is_some_and(|n| n.is_ascii_lowercase() || n.is_ascii_digit())
        {
            return false;
        }
    }
    true
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0";

    #[test]
    fn repository_names() {
        for ok in [
            "nginx",
            "library/nginx",
            "registry.example:5000/team/app",
            "localhost/a__b/c-d.e",
            "127.0.0.1:5000/x",
            "a--b",
        ] {
            assert!(check_repository(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Nginx",
            "nginx:latest",
            "nginx@sha256:x",
            "team//app",
            "-app",
            "app-",
            "a___b",
            "host:99999999/app",
            "a b",
        ] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_references() {
        let p = Product::parse(&format!("localhost:5000/lib/nginx:1.27@{D}")).expect("parses");
        assert_eq!(p.name, "localhost:5000/lib/nginx");
        assert_eq!(p.tag.as_deref(), Some("1.27"));
        assert_eq!(p.oci_purl(), format!("pkg:oci/nginx@sha256%3A{}", &D[7..]));
        let p = Product::parse("localhost:5000/nginx").expect("parses");
        assert_eq!((p.name.as_str(), p.tag), ("localhost:5000/nginx", None));
        assert!(Product::parse("nginx@sha256:abc").is_err());
    }
}
