//! The one error type of this crate.

use std::net::{IpAddr, SocketAddr};

/// Why a connection was not made, or a policy could not be built.
///
/// Every message is lowercase and names the host (as the caller gave it)
/// and why; none carries anything a remote server sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    /// The host is not on the policy's host allow-list.
    #[error("{host} (port {port}) is not on the list of hosts this service may contact")]
    HostNotAllowed {
        /// The host as named.
        host: String,
        /// The port asked for.
        port: u16,
    },
    /// The host is, or resolves to, an address on the deny-list that no
    /// address allow-list entry exempts.
    #[error("{host} resolves to a {range} address, which this service does not contact")]
    Denied {
        /// The host as named.
        host: String,
        /// The offending address.
        address: IpAddr,
        /// Which deny-list range it is in (`loopback`, `private`, …).
        range: &'static str,
    },
    /// Plain HTTP to a host not declared as an insecure registry (this
    /// includes an HTTPS → HTTP redirect).
    #[error(
        "plain http to {host} refused: only https, or plain http to a registry named insecure"
    )]
    PlainHttp {
        /// The host as named.
        host: String,
    },
    /// The host name is not a host name.
    #[error("{host:?} is not a valid host name")]
    BadHost {
        /// The host as named.
        host: String,
    },
    /// Name resolution failed.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host as named.
        host: String,
        /// The resolver's error.
        reason: String,
    },
    /// The name resolved to no address at all.
    #[error("{host} resolves to no address")]
    NoAddress {
        /// The host as named.
        host: String,
    },
    /// Every checked address refused or timed out.
    #[error("cannot connect to {host} ({address}): {reason}")]
    Connect {
        /// The host as named.
        host: String,
        /// The last address tried.
        address: SocketAddr,
        /// The operating system's error.
        reason: String,
    },
    /// A host allow-list entry is malformed.
    #[error("invalid host pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An address allow-list entry is malformed.
    #[error("invalid address or cidr {value:?}: {reason}")]
    BadAddress {
        /// The entry as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl EgressError {
    /// True when the policy refused the destination (as opposed to the
    /// network failing to reach an allowed one).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::HostNotAllowed { .. }
                | Self::Denied { .. }
                | Self::PlainHttp { .. }
                | Self::BadHost { .. }
        )
    }

    /// True when the fault lies with what was asked for (a refused
    /// destination, a malformed allow-list entry); false for resolution
    /// and connection trouble, which a retry might fix.
    pub fn is_bad_input(&self) -> bool {
        self.is_refusal() || matches!(self, Self::BadPattern { .. } | Self::BadAddress { .. })
    }

    /// The host the error is about, when it is about one.
    pub fn host(&self) -> Option<&str> {
        match self {
            Self::HostNotAllowed { host, .. }
            | Self::Denied { host, .. }
            | Self::PlainHttp { host }
            | Self::BadHost { host }
            | Self::Resolve { host, .. }
            | Self::NoAddress { host }
            | Self::Connect { host, .. } => Some(host),
            Self::BadPattern { .. } | Self::BadAddress { .. } => None,
        }
    }
}
