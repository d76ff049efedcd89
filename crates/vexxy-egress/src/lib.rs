//! One egress policy for every connection made on a tenant's behalf.
//!
//! vexxy pulls images from registries tenants name and posts callbacks to
//! URLs tenants give. Without a policy, a tenant could make the service
//! contact its own loopback services, the cloud metadata endpoint or the
//! private network, directly or through what a hostile server answers (an
//! HTTP redirect, a bearer-token `realm`, a manifest's foreign-layer
//! `urls`), or through a name that resolves to a public address when it is
//! checked and to `127.0.0.1` when it is connected to (DNS rebinding).
//!
//! [`EgressPolicy`] decides: an address deny-list ([`deny_reason`]) that is
//! always on, an optional host allow-list ([`HostPattern`]) and an address
//! allow-list ([`Cidr`]) of exemptions for local services the operator
//! trusts. [`EgressPolicy::connect`] is the one way to open a connection
//! under it: the name is resolved once (through a [`Resolver`]), every
//! address is checked, and only a checked address is connected to.
//! [`EgressProxy`] puts an HTTP client that cannot take a connector
//! (reqwest inside oci-client) under the same policy: every connection the
//! client makes, whatever it follows, goes through the proxy and so through
//! [`EgressPolicy::connect`].
//!
//! # Invariants
//!
//! - Every outbound connection made on a tenant's behalf goes through
//!   [`EgressPolicy::connect`] (directly, through [`EgressProxy`], or as
//!   the checked addresses of [`EgressPolicy::resolve`] handed to a client
//!   that connects to exactly those): resolved once, every address
//!   checked, connected to a checked address.
//! - A host is refused when any of its addresses is denied.
//! - Errors name the host and the reason; they never carry anything a
//!   remote server sent.
//! - No `unsafe`, no panics on input.

mod deny;
mod error;
mod hosts;
mod policy;
mod proxy;
mod resolve;

pub use deny::{deny_reason, is_denied, Cidr};
pub use error::EgressError;
pub use hosts::HostPattern;
pub use policy::EgressPolicy;
pub use proxy::{split_authority, EgressProxy, ProxyLog};
pub use resolve::{Resolver, StaticResolver, SystemResolver};
