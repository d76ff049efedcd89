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
