//! Host allow-list entries: `host`, `host:port`, `*.suffix`, `*.suffix:port`.

use std::{fmt, net::IpAddr, str::FromStr};

use crate::EgressError;

/// One entry of the host allow-list.
///
/// `registry.example` allows that host on any port, `registry.example:5000`
/// on that port only; `*.example.com` allows every name below
/// `example.com` (not `example.com` itself). IP addresses are written as
/// themselves (`10.0.0.5:5000`, `[fd00::5]:5000`, `fd00::5`). Matching is
/// case-insensitive and ignores a trailing dot. A host on the allow-list is
/// still subject to the address deny-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

/// Lowercases a host name, drops a trailing dot and IPv6 brackets, and
/// writes IP addresses canonically.
pub(crate) fn normalize_host(host: &str) -> String {
    let h = host.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    let h = h.strip_suffix('.').unwrap_or(h);
    match h.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => h.to_ascii_lowercase(),
    }
}

/// Whether `host` (normalised) is a syntactically plausible host name or
/// IP address: letters, digits, `-`, `_`, `.`, and `:` only in addresses.
pub(crate) fn valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('.')
        && !host.contains("..")
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl HostPattern {
    /// Whether the pattern allows `host` (any spelling [`normalize_host`]
    /// accepts) on `port`.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = normalize_host(host);
        if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }
}

impl FromStr for HostPattern {
    type Err = EgressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| EgressError::BadPattern {
            pattern: s.to_owned(),
            reason: reason.to_owned(),
        };
        let t = s.trim();
        if t.contains("://") || t.contains('/') || t.contains('@') {
            return Err(bad("expected host, host:port or *.suffix, not a url"));
        }
        let (wildcard, rest) = match t.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("expected :port after ']'"))?,
                ),
            };
            (addr, port)
        } else if rest.matches(':').count() > 1 {
            (rest, None) // a bare IPv6 address
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = port
            .map(|p| p.parse::<u16>().ok().filter(|p| *p != 0))
            .map(|p| p.ok_or_else(|| bad("the port must be 1..=65535")))
            .transpose()?;
        let host = normalize_host(host);
        if !valid_host(&host) {
            return Err(bad("not a host name or ip address"));
        }
        if wildcard && host.parse::<IpAddr>().is_ok() {
            return Err(bad("a wildcard needs a domain suffix"));
        }
        Ok(HostPattern {
            host,
            wildcard,
            port,
        })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        let v6 = self.host.contains(':');
        match (self.port, v6) {
            (Some(p), true) => write!(f, "[{}]:{p}", self.host),
            (Some(p), false) => write!(f, "{}:{p}", self.host),
            (None, _) => f.write_str(&self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn host_allow_list_matching() {
        // (pattern, host, port, allowed)
        let cases: &[(&str, &str, u16, bool)] = &[
            ("registry.example", "registry.example", 443, true),
            ("registry.example", "REGISTRY.example.", 5000, true),
            ("registry.example", "evil-registry.example", 443, false),
            ("registry.example", "registry.example.evil", 443, false),
            ("registry.example", "sub.registry.example", 443, false),
            ("registry.example:5000", "registry.example", 5000, true),
            ("registry.example:5000", "registry.example", 443, false),
            ("*.docker.io", "registry-1.docker.io", 443, true),
            ("*.docker.io", "a.b.docker.io", 443, true),
            ("*.docker.io", "docker.io", 443, false),
            ("*.docker.io", "evildocker.io", 443, false),
            ("*.docker.io", "docker.io.evil", 443, false),
            ("*.example.com:8443", "x.example.com", 8443, true),
            ("*.example.com:8443", "x.example.com", 443, false),
            ("10.0.0.5:5000", "10.0.0.5", 5000, true),
            ("10.0.0.5:5000", "10.0.0.6", 5000, false),
            ("[fd00::5]:5000", "[fd00:0::5]", 5000, true),
            ("fd00::5", "fd00::5", 1, true),
            ("fd00::5", "fd00::6", 1, false),
        ];
        for (pattern, host, port, allowed) in cases {
            assert_eq!(
                p(pattern).matches(host, *port),
                *allowed,
                "{pattern} vs {host}:{port}"
            );
        }
    }

    #[test]
    fn patterns_round_trip_and_reject_junk() {
        for s in [
            "a.example",
            "a.example:5000",
            "*.example",
            "[fd00::5]:5000",
            "fd00::5",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
        for bad in [
            "",
            "https://registry.example",
            "registry.example/path",
            "user@host",
            "host:0",
            "host:99999",
            "*.10.0.0.1",
            "a b",
            "[::1",
            "*.",
            "..",
        ] {
            let e = bad.parse::<HostPattern>().unwrap_err();
            assert!(e.to_string().starts_with("invalid host pattern"), "{e}");
        }
    }
}
