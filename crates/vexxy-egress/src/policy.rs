//! [`EgressPolicy`]: which destinations a tenant may make this service
//! contact, and the one way to connect to them.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    sync::Arc,
    time::Duration,
};

use crate::{
    deny::deny_reason,
    hosts::{normalize_host, valid_host},
    Cidr, EgressError, HostPattern, Resolver, SystemResolver,
};

/// Connect timeout when none is set.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The egress policy: the address deny-list ([`crate::deny_reason`]) is
/// always on; a non-empty host allow-list limits which hosts may be
/// contacted at all; the address allow-list exempts addresses or blocks
/// from the deny-list (a local registry the operator trusts).
///
/// [`EgressPolicy::connect`] is the one way to open a connection under
/// the policy: the name is resolved once, every address is checked, and
/// only a checked address is connected to, so a name that answers
/// differently the next time (DNS rebinding) cannot slip through.
#[derive(Clone)]
pub struct EgressPolicy {
    hosts: Vec<HostPattern>,
    addresses: Vec<Cidr>,
    /// `None`: the system resolver.
    resolver: Option<Arc<dyn Resolver>>,
    connect_timeout: Duration,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EgressPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
        let addresses: Vec<String> = self.addresses.iter().map(ToString::to_string).collect();
        let mut d = f.debug_struct("EgressPolicy");
        d.field("allowed_hosts", &hosts)
            .field("allowed_addresses", &addresses)
            .field("connect_timeout", &self.connect_timeout);
        match &self.resolver {
            Some(r) => d.field("resolver", r),
            None => d.field("resolver", &SystemResolver),
        };
        d.finish()
    }
}

impl PartialEq for EgressPolicy {
    /// Same lists, same timeout, and the same resolver (both the system's,
    /// or the very same instance).
    fn eq(&self, other: &Self) -> bool {
        self.hosts == other.hosts
            && self.addresses == other.addresses
            && self.connect_timeout == other.connect_timeout
            && match (&self.resolver, &other.resolver) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl EgressPolicy {
    /// The default policy: deny-list on, no host allow-list (every host
    /// whose addresses are public), no exemptions, the system resolver.
    pub fn new() -> Self {
        Self {
            hosts: Vec::new(),
            addresses: Vec::new(),
            resolver: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Adds a host to the allow-list; once it has an entry, only listed
    /// hosts are contacted.
    pub fn allow_host(mut self, pattern: HostPattern) -> Self {
        self.hosts.push(pattern);
        self
    }

    /// [`EgressPolicy::allow_host`] for patterns as text
    /// (`host`, `host:port`, `*.suffix`).
    ///
    /// # Errors
    ///
    /// [`EgressError::BadPattern`] naming the first malformed entry.
    pub fn allow_hosts<S: AsRef<str>>(
        mut self,
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<Self, EgressError> {
        for p in patterns {
            self.hosts.push(p.as_ref().parse()?);
        }
        Ok(self)
    }

    /// Exempts an address block from the deny-list.
    pub fn allow_address(mut self, block: Cidr) -> Self {
        self.addresses.push(block);
        self
    }

    /// [`EgressPolicy::allow_address`] for blocks as text (`10.0.0.5`,
    /// `10.0.0.0/8`, `fd00::/8`).
    ///
    /// # Errors
    ///
    /// [`EgressError::BadAddress`] naming the first malformed entry.
    pub fn allow_addresses<S: AsRef<str>>(
        mut self,
        blocks: impl IntoIterator<Item = S>,
    ) -> Result<Self, EgressError> {
        for b in blocks {
            self.addresses.push(b.as_ref().parse()?);
        }
        Ok(self)
    }

    /// Exempts every address from the deny-list (`0.0.0.0/0`, `::/0`):
    /// resolution still happens once and the host allow-list still applies.
    pub fn allow_any_address(self) -> Self {
        self.allow_address(Cidr::ALL_V4).allow_address(Cidr::ALL_V6)
    }

    /// Resolves names with `resolver` instead of the system's.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// How long [`EgressPolicy::connect`] waits for each address (30 s by
    /// default).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The host allow-list (empty: every host).
    pub fn allowed_hosts(&self) -> &[HostPattern] {
        &self.hosts
    }

    /// The address blocks exempt from the deny-list.
    pub fn allowed_addresses(&self) -> &[Cidr] {
        &self.addresses
    }

    /// Whether the policy lets a connection go to `ip`: public, or exempt.
    pub fn permits_address(&self, ip: IpAddr) -> bool {
        deny_reason(ip).is_none() || self.addresses.iter().any(|c| c.contains(ip))
    }

    /// Checks one address of `host`.
    ///
    /// # Errors
    ///
    /// [`EgressError::Denied`] naming the host, the address and its range.
    pub fn check_address(&self, host: &str, ip: IpAddr) -> Result<(), EgressError> {
        match deny_reason(ip) {
            Some(range) if !self.addresses.iter().any(|c| c.contains(ip)) => {
                Err(EgressError::Denied {
                    host: host.to_owned(),
                    address: ip,
                    range,
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks the host allow-list only (no resolution).
    ///
    /// # Errors
    ///
    /// [`EgressError::BadHost`] or [`EgressError::HostNotAllowed`].
    pub fn check_host(&self, host: &str, port: u16) -> Result<(), EgressError> {
        let name = normalize_host(host);
        if !valid_host(&name) {
            return Err(EgressError::BadHost {
                host: host.to_owned(),
            });
        }
        if self.hosts.is_empty() || self.hosts.iter().any(|p| p.matches(&name, port)) {
            Ok(())
        } else {
            Err(EgressError::HostNotAllowed {
                host: host.to_owned(),
                port,
            })
        }
    }

    /// Everything that can be decided without asking DNS: the host
    /// allow-list, and the address check for IP literals and `localhost`
    /// names (always loopback). Cheap enough for a request handler; a
    /// name that passes is still checked at [`EgressPolicy::connect`].
    ///
    /// # Errors
    ///
    /// As [`EgressPolicy::check_host`] and [`EgressPolicy::check_address`].
    pub fn check_without_dns(&self, host: &str, port: u16) -> Result<(), EgressError> {
        self.check_host(host, port)?;
        for ip in fixed_addresses(&normalize_host(host)) {
            self.check_address(host, ip)?;
        }
        Ok(())
    }

    /// Resolves `host` once and checks every address it has: all of them
    /// must pass, else the host is refused.
    ///
    /// # Errors
    ///
    /// A refusal ([`EgressError::is_refusal`]), or the resolver's failure.
    pub fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        self.check_host(host, port)?;
        let name = normalize_host(host);
        let fixed = fixed_addresses(&name);
        let addrs: Vec<SocketAddr> = if fixed.is_empty() {
            let resolver: &dyn Resolver = match &self.resolver {
                Some(r) => r.as_ref(),
                None => &SystemResolver,
            };
            resolver
                .resolve(&name, port)
                .map_err(|e| EgressError::Resolve {
                    host: host.to_owned(),
                    reason: e.to_string().to_lowercase(),
                })?
                .into_iter()
                .map(|a| SocketAddr::new(a.ip(), port))
                .collect()
        } else {
            fixed
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect()
        };
        if addrs.is_empty() {
            return Err(EgressError::NoAddress {
                host: host.to_owned(),
            });
        }
        for a in &addrs {
            self.check_address(host, a.ip())?;
        }
        Ok(addrs)
    }

    /// Opens a TCP connection to `host:port` under the policy: resolves
    /// once ([`EgressPolicy::resolve`]), and connects to the checked
    /// addresses in order until one answers.
    ///
    /// # Errors
    ///
    /// A refusal before any connection is attempted, or
    /// [`EgressError::Connect`] when no checked address answered.
    pub fn connect(&self, host: &str, port: u16) -> Result<TcpStream, EgressError> {
        let addrs = self.resolve(host, port)?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some((addr, e)),
            }
        }
        Err(match last {
            Some((address, e)) => EgressError::Connect {
                host: host.to_owned(),
                address,
                reason: e.to_string().to_lowercase(),
            },
            None => EgressError::NoAddress {
                host: host.to_owned(),
            },
        })
    }
}

/// The addresses a host stands for without DNS: itself for an IP literal,
/// loopback for `localhost` and `*.localhost` (RFC 6761); empty otherwise.
fn fixed_addresses(name: &str) -> Vec<IpAddr> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return vec![ip];
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;
    use crate::StaticResolver;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn exemptions_and_host_allow_list() {
        let p = EgressPolicy::new();
        assert!(!p.permits_address(ip("127.0.0.2")));
        assert!(p.permits_address(ip("8.8.8.8")));
        let p = p.allow_addresses(["127.0.0.2/32"]).unwrap();
        assert!(p.permits_address(ip("127.0.0.2")));
        assert!(p.permits_address(ip("::ffff:127.0.0.2")));
        assert!(!p.permits_address(ip("127.0.0.3")));
        assert!(
            p.check_host("anything.example", 443).is_ok(),
            "no host list"
        );

        let p = EgressPolicy::new().allow_hosts(["*.docker.io"]).unwrap();
        assert!(p.check_host("registry-1.docker.io", 443).is_ok());
        let e = p.check_host("ghcr.io", 443).unwrap_err();
        assert!(matches!(e, EgressError::HostNotAllowed { .. }) && e.is_refusal());
        assert!(e.to_string().contains("ghcr.io"), "{e}");

        let e = EgressPolicy::new().check_host("a/b", 80).unwrap_err();
        assert!(matches!(e, EgressError::BadHost { .. }), "{e:?}");
    }

    #[test]
    fn literals_and_localhost_are_decided_without_dns() {
        let resolver = Arc::new(StaticResolver::new());
        let p = EgressPolicy::new().with_resolver(resolver.clone());
        for host in [
            "127.0.0.1",
            "[::1]",
            "169.254.169.254",
            "localhost",
            "a.localhost",
            "10.0.0.1",
        ] {
            let e = p.check_without_dns(host, 80).unwrap_err();
            assert!(matches!(e, EgressError::Denied { .. }), "{host}: {e:?}");
            assert!(e.to_string().contains(host), "{e}");
            let e = p.resolve(host, 80).unwrap_err();
            assert!(matches!(e, EgressError::Denied { .. }), "{host}: {e:?}");
        }
        assert!(p.check_without_dns("registry.example", 443).is_ok());
        assert_eq!(resolver.calls("localhost"), 0);
        assert!(p.check_without_dns("8.8.8.8", 443).is_ok());
    }

    #[test]
    fn every_address_is_checked() {
        let resolver = Arc::new(StaticResolver::new());
        resolver.answer("mixed.test", &[ip("127.0.0.2"), ip("127.0.0.1")]);
        let p = EgressPolicy::new()
            .allow_addresses(["127.0.0.2"])
            .unwrap()
            .with_resolver(resolver.clone());
        let e = p.resolve("mixed.test", 80).unwrap_err();
        assert_eq!(
            e,
            EgressError::Denied {
                host: "mixed.test".into(),
                address: ip("127.0.0.1"),
                range: "loopback"
            }
        );
        assert_eq!(
            e.to_string(),
            "mixed.test resolves to a loopback address, which this service does not contact"
        );
        let e = p.resolve("unknown.test", 80).unwrap_err();
        assert!(
            matches!(e, EgressError::Resolve { .. }) && !e.is_bad_input(),
            "{e:?}"
        );
    }

    /// DNS rebinding: the first answer is an allowed address, every later
    /// one loopback. `connect` resolves once and connects to what it
    /// checked; a second `connect` resolves again and is refused.
    #[test]
    fn rebinding_connects_only_to_the_checked_first_answer() {
        let allowed = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let port = allowed.local_addr().unwrap().port();
        let Ok(internal) = TcpListener::bind(("127.0.0.1", port)) else {
            // the port is taken on 127.0.0.1: the test would prove nothing
            eprintln!("SKIP rebinding test: port {port} busy on 127.0.0.1");
            return;
        };
        allowed.set_nonblocking(true).unwrap();
        internal.set_nonblocking(true).unwrap();
        let resolver = Arc::new(StaticResolver::new());
        resolver
            .answer("rebind.test", &[ip("127.0.0.2")])
            .answer("rebind.test", &[ip("127.0.0.1")]);
        let p = EgressPolicy::new()
            .allow_addresses(["127.0.0.2/32"])
            .unwrap()
            .with_resolver(resolver.clone());

        let stream = p
            .connect("rebind.test", port)
            .expect("first answer allowed");
        assert_eq!(resolver.calls("rebind.test"), 1, "resolved once");
        assert_eq!(stream.peer_addr().unwrap().ip(), ip("127.0.0.2"));
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            allowed.accept().is_ok(),
            "the checked address got the connection"
        );

        let e = p.connect("rebind.test", port).unwrap_err();
        assert!(matches!(e, EgressError::Denied { .. }), "{e:?}");
        assert_eq!(resolver.calls("rebind.test"), 2);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            internal.accept().is_err(),
            "loopback never saw a connection"
        );
    }

    #[test]
    fn connect_failures_name_host_and_address() {
        let l = TcpListener::bind("127.0.0.2:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let p = EgressPolicy::new().allow_address("127.0.0.2/32".parse().unwrap());
        let e = p.connect("127.0.0.2", port).unwrap_err();
        assert!(
            matches!(e, EgressError::Connect { .. }) && !e.is_bad_input(),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("cannot connect to 127.0.0.2 (127.0.0.2:"),
            "{e}"
        );
    }

    #[test]
    fn policies_compare_by_rules_and_resolver() {
        assert_eq!(EgressPolicy::new(), EgressPolicy::default());
        let r: Arc<dyn Resolver> = Arc::new(StaticResolver::new());
        let a = EgressPolicy::new().with_resolver(r.clone());
        assert_eq!(a, a.clone());
        assert_ne!(a, EgressPolicy::new());
        assert_ne!(EgressPolicy::new().allow_any_address(), EgressPolicy::new());
        let dbg = format!(
            "{:?}",
            EgressPolicy::new().allow_hosts(["*.docker.io"]).unwrap()
        );
        assert!(dbg.contains("*.docker.io"), "{dbg}");
    }
}
