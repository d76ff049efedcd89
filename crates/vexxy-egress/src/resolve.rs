//! Name resolution behind a trait, so that tests can answer with the
//! addresses they choose (DNS rebinding among them).

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, SocketAddr, ToSocketAddrs as _},
    sync::{Mutex, PoisonError},
};

/// Turns a host name into addresses. [`crate::EgressPolicy`] calls it once
/// per connection and checks every address it returns; IP literals and
/// `localhost` names never reach it.
pub trait Resolver: fmt::Debug + Send + Sync {
    /// Every address of `host` on `port`.
    ///
    /// # Errors
    ///
    /// The resolver's own error (no such host, a failing name server).
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The operating system's resolver (`getaddrinfo` through std's
/// `ToSocketAddrs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// A resolver with fixed answers, for tests and for pinning names: each
/// host has a sequence of answers, the first call gets the first one, the
/// second call the second, and the last answer repeats. Unknown hosts do
/// not resolve. Counts the calls per host, so a test can see that a name
/// was resolved once.
#[derive(Debug, Default)]
pub struct StaticResolver {
    hosts: Mutex<BTreeMap<String, Answers>>,
}

#[derive(Debug, Default)]
struct Answers {
    answers: Vec<Vec<IpAddr>>,
    calls: usize,
}

impl StaticResolver {
    /// A resolver that knows no host yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next answer for `host` (lowercase name, no trailing dot).
    pub fn answer(&self, host: &str, addresses: &[IpAddr]) -> &Self {
        self.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(host.to_owned())
            .or_default()
            .answers
            .push(addresses.to_vec());
        self
    }

    /// How often `host` was resolved.
    pub fn calls(&self, host: &str) -> usize {
        self.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host)
            .map_or(0, |a| a.calls)
    }
}

impl Resolver for StaticResolver {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let not_found = || std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host");
        let entry = hosts.get_mut(host).ok_or_else(not_found)?;
        let answer = entry
            .answers
            .get(entry.calls)
            .or(entry.answers.last())
            .cloned()
            .ok_or_else(not_found)?;
        entry.calls += 1;
        Ok(answer
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }
}
