//! The deny-list of addresses a tenant may not make this service contact,
//! and CIDR blocks for the address allow-list.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use crate::EgressError;

/// Why `ip` is on the deny-list (a short lowercase range name such as
/// `loopback` or `private`), or `None` for a public address.
///
/// Denied: IPv4 loopback 127/8, private 10/8 172.16/12 192.168/16,
/// link-local 169.254/16 (cloud metadata at 169.254.169.254), shared
/// (CGNAT) 100.64/10, this-network 0/8, broadcast, documentation,
/// benchmarking 198.18/15, IETF assignments 192.0.0/24, the 6to4 relay
/// 192.88.99/24, multicast 224/4 and reserved 240/4; IPv6 unspecified,
/// loopback, unique local fc00::/7, link-local fe80::/10, site-local
/// fec0::/10, multicast, documentation 2001:db8::/32 and 3fff::/20,
/// discard 100::/64, IETF assignments 2001::/23 (Teredo among them),
/// local-use NAT64 64:ff9b:1::/48 and the rest of ::/8. IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
/// (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`) addresses are judged
/// by the IPv4 address they embed.
pub fn deny_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

/// True when `ip` is on the deny-list ([`deny_reason`]).
pub fn is_denied(ip: IpAddr) -> bool {
    deny_reason(ip).is_some()
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let table: [([u8; 4], u32, &'static str); 16] = [
        ([0, 0, 0, 0], 8, "this-network (0.0.0.0/8)"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "shared (cgnat)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "ietf protocol assignment"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "6to4 relay"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([255, 255, 255, 255], 32, "broadcast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    table
        .iter()
        .find(|(net, bits, _)| in_v4(ip, *net, *bits))
        .map(|(_, _, why)| *why)
}

fn embedded_v4(ip: Ipv6Addr, at: usize) -> Ipv4Addr {
    let o = ip.octets();
    Ipv4Addr::new(o[at], o[at + 1], o[at + 2], o[at + 3])
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible)
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return v4_reason(embedded_v4(ip, 12));
    }
    // 64:ff9b::/96, the well-known NAT64 prefix
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_reason(embedded_v4(ip, 12));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("local-use nat64");
    }
    // 2002::/16, 6to4: the IPv4 address is bits 16..48
    if s[0] == 0x2002 {
        return v4_reason(embedded_v4(ip, 2));
    }
    let table: [(u16, u16, Option<u16>, &'static str); 6] = [
        (0xfe00, 0xfc00, None, "unique local"),
        (0xffc0, 0xfe80, None, "link-local"),
        (0xffc0, 0xfec0, None, "site-local"),
        (0xff00, 0xff00, None, "multicast"),
        (0xffff, 0x2001, Some(0x0db8), "documentation"),
        (0xff00, 0x0000, None, "reserved (::/8)"),
    ];
    for (mask, value, second, why) in table {
        if s[0] & mask == value && second.is_none_or(|v| s[1] == v) {
            return Some(why);
        }
    }
    if s[0] == 0x3fff && s[1] & 0xf000 == 0 {
        return Some("documentation");
    }
    if s[..4] == [0x100, 0, 0, 0] {
        return Some("discard-only");
    }
    if s[0] == 0x2001 && s[1] < 0x200 {
        return Some("ietf protocol assignment");
    }
    None
}

/// An address block of the address allow-list: `a.b.c.d/n`, `x:y::/n`,
/// or one address (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Every IPv4 address (`0.0.0.0/0`).
    pub const ALL_V4: Cidr = Cidr {
        network: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        prefix: 0,
    };
    /// Every IPv6 address (`::/0`).
    pub const ALL_V6: Cidr = Cidr {
        network: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        prefix: 0,
    };

    /// The block of `prefix` leading bits of `addr` (other bits cleared).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let network = match addr {
            IpAddr::V4(v4) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
            _ => return None,
        };
        Some(Cidr { network, prefix })
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                Cidr::new(ip.to_canonical(), self.prefix).is_some_and(|c| c.network == self.network)
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = EgressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| EgressError::BadAddress {
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let t = s.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| bad("expected an ip address, optionally /prefix-length"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad(&format!("the prefix length must be 0..={max}")))?,
            None => max,
        };
        Cidr::new(addr, prefix).ok_or_else(|| bad("invalid prefix length"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn deny_list_table() {
        // (address, Some(range) when denied, None when public)
        let cases: &[(&str, Option<&str>)] = &[
            // IPv4
            ("127.0.0.1", Some("loopback")),
            ("127.255.255.254", Some("loopback")),
            ("10.0.0.1", Some("private")),
            ("10.255.255.255", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("172.15.255.255", None),
            ("172.32.0.0", None),
            ("192.168.1.1", Some("private")),
            ("169.254.169.254", Some("link-local")),
            ("169.254.0.1", Some("link-local")),
            ("100.64.0.1", Some("shared (cgnat)")),
            ("100.127.255.255", Some("shared (cgnat)")),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("0.0.0.0", Some("this-network (0.0.0.0/8)")),
            ("0.1.2.3", Some("this-network (0.0.0.0/8)")),
            ("255.255.255.255", Some("broadcast")),
            ("224.0.0.1", Some("multicast")),
            ("239.255.255.250", Some("multicast")),
            ("240.0.0.1", Some("reserved")),
            ("192.0.2.10", Some("documentation")),
            ("198.51.100.7", Some("documentation")),
            ("203.0.113.9", Some("documentation")),
            ("198.18.0.1", Some("benchmarking")),
            ("198.19.255.255", Some("benchmarking")),
            ("192.0.0.8", Some("ietf protocol assignment")),
            ("192.88.99.1", Some("6to4 relay")),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("93.184.215.14", None),
            ("11.0.0.1", None),
            ("192.169.0.1", None),
            // IPv6
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("fc00::1", Some("unique local")),
            ("fd12:3456:789a::1", Some("unique local")),
            ("fe80::1", Some("link-local")),
            ("febf::1", Some("link-local")),
            ("fec0::1", Some("site-local")),
            ("ff02::1", Some("multicast")),
            ("2001:db8::1", Some("documentation")),
            ("3fff::1", Some("documentation")),
            ("100::1", Some("discard-only")),
            ("2001::1", Some("ietf protocol assignment")),
            ("64:ff9b:1::1", Some("local-use nat64")),
            ("2606:4700:4700::1111", None),
            ("2001:4860:4860::8888", None),
            // mapped and compatible: the embedded IPv4 decides
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("link-local")),
            ("::ffff:10.1.2.3", Some("private")),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some("loopback")),
            ("::10.0.0.1", Some("private")),
            ("::8.8.8.8", None),
            ("::ffff:0:127.0.0.1", Some("reserved (::/8)")),
            // NAT64
            ("64:ff9b::7f00:1", Some("loopback")),
            ("64:ff9b::a9fe:a9fe", Some("link-local")),
            ("64:ff9b::c0a8:101", Some("private")),
            ("64:ff9b::808:808", None),
            // 6to4
            ("2002:7f00:1::", Some("loopback")),
            ("2002:a9fe:a9fe::1", Some("link-local")),
            ("2002:ac10:1::", Some("private")),
            ("2002:808:808::1", None),
        ];
        let mut wrong = Vec::new();
        for (addr, want) in cases {
            let got = deny_reason(ip(addr));
            if got != *want {
                wrong.push(format!("{addr}: got {got:?}, want {want:?}"));
            }
            assert_eq!(is_denied(ip(addr)), want.is_some(), "{addr}");
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c: Cidr = "127.0.0.2/32".parse().unwrap();
        assert!(c.contains(ip("127.0.0.2")));
        assert!(c.contains(ip("::ffff:127.0.0.2")), "mapped counts as v4");
        assert!(!c.contains(ip("127.0.0.3")));
        assert!(!c.contains(ip("::1")));
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8", "host bits cleared");
        assert!(c.contains(ip("10.200.0.1")));
        let c: Cidr = "fd00::/8".parse().unwrap();
        assert!(c.contains(ip("fd12::1")) && !c.contains(ip("fe80::1")));
        let c: Cidr = "::1".parse().unwrap();
        assert_eq!(c.to_string(), "::1/128");
        assert!(Cidr::ALL_V4.contains(ip("169.254.169.254")));
        assert!(Cidr::ALL_V6.contains(ip("fe80::1")));
        assert!(!Cidr::ALL_V6.contains(ip("10.0.0.1")));
        for bad in ["", "10.0.0.0/33", "::/129", "host", "10.0.0.0/x", "1.2.3/8"] {
            let e = bad.parse::<Cidr>().unwrap_err();
            assert!(
                e.is_bad_input() && e.to_string().contains("invalid address"),
                "{e}"
            );
        }
    }
}
