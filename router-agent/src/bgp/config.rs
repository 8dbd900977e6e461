//! The `[bgp]` section of the configuration, and its compiled form.
//!
//! ```toml
//! [bgp]
//! asn = 65101
//! router_id = "192.0.2.10"
//! originate = [{ prefix = "192.0.2.10/32" }, { prefix = "2001:db8:10::/128" }]
//!
//! [[bgp.neighbor]]
//! address = "10.0.1.1"
//! remote_as = 65001            # or "external" / "internal"
//! import = "default-only"      # or { prefix_list = "NAME" }; absent: nothing (RFC 8212)
//! export = "all"               # originated routes only, ever; absent: nothing (RFC 8212)
//! max_prefix = { limit = 100, action = "teardown", restart_after = "60s" }
//! password_file = "/etc/hostrouter/tor1.key"  # or password = "..." (TCP MD5, RFC 2385)
//! ttl_security = true          # GTSM (RFC 5082); default: on for interface/link-local peers
//! # tcp_ao = { key_id = 1, algorithm = "hmac(sha256)", key_file = "..." }  # instead of MD5
//! bfd = true                   # or a [bfd.profile] name (see `bfd/config.rs`)
//! fast_external_fallover = true # eBGP on a connected subnet: down with its link (default)
//!
//! [[bgp.neighbor]]
//! interface = "eth1"           # instead of address: unnumbered, over IPv6 link-local
//! remote_as = "external"       # (the peer is found by its Router Advertisements)
//!
//! [[bgp.dynamic_neighbor]]     # peers without per-peer config, passive
//! range = "10.0.0.0/24"        # or interface = "veth-vms": any link-local address on it
//! remote_as = "external"
//! import = { prefix_list = "vm-hosts" }
//! export = "all"
//! limit = 100                  # at most this many sessions from the range (default 100)
//! third_party_next_hop = false # true: accept next hops other than the peer's own address
//!
//! [bgp.prefix_list.NAME]
//! ipv4 = [{ action = "permit", prefix = "10.0.0.0/8", ge = 24, le = 32 }]
//! ```

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
};

use serde::Deserialize;

mod bfd;
mod compile;
pub mod peer_checks;

use super::{
    fsm::RemoteAs,
    policy::{
        ExportConfig, ExportPolicy, ImportConfig, ImportPolicy, MaxPrefix, OriginateConfig,
        Originated, PolicyError, PrefixListConfig,
    },
    rib::DecisionConfig,
};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// TCP port to listen on and connect to (179; tests use others).
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub decision: DecisionConfig,
    #[serde(default)]
    pub originate: Vec<OriginateConfig>,
    #[serde(default, rename = "prefix_list")]
    pub prefix_lists: BTreeMap<String, PrefixListConfig>,
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<NeighborConfig>,
    #[serde(default, rename = "dynamic_neighbor")]
    pub dynamic_neighbors: Vec<DynamicNeighborConfig>,
    /// Which BGP routes also go to the kernel (for the host's own traffic):
    /// "all", "default-only" or "none".
    #[serde(default)]
    pub kernel_routes: crate::fib::KernelMirror,
    /// RFC 4724 / 8538, both roles (see `graceful_restart.rs`).
    #[serde(default)]
    pub graceful_restart: super::graceful_restart::GracefulRestartConfig,
    /// Addresses to accept BGP connections on; empty: all (dual-stack `::`).
    #[serde(default)]
    pub listen: Vec<IpAddr>,
}

fn default_port() -> u16 {
    179
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborConfig {
    /// The neighbor's address; or `interface`.
    pub address: Option<IpAddr>,
    /// Unnumbered: the neighbor is on this interface, at an IPv6 link-local address learned
    /// from its Router Advertisements or its connection.
    pub interface: Option<String>,
    pub remote_as: RemoteAsConfig,
    pub import: Option<ImportConfig>,
    pub export: Option<ExportConfig>,
    pub max_prefix: Option<MaxPrefix>,
    /// Wait for the neighbor to connect.
    #[serde(default)]
    pub passive: bool,
    /// Proposed hold time, seconds (0, or at least 3).
    pub hold_time: Option<u16>,
    /// TCP MD5 key (RFC 2385); or `password_file`.
    pub password: Option<String>,
    /// A file holding the TCP MD5 key (mode 0600 or stricter, owned by root or us).
    pub password_file: Option<std::path::PathBuf>,
    /// GTSM (RFC 5082): TTL 255 out, 255 required in. Default: on for unnumbered and
    /// link-local peers (always one hop away), off otherwise.
    pub ttl_security: Option<bool>,
    /// TCP-AO (RFC 5925) instead of TCP MD5; see `tcp_ao.rs`.
    pub tcp_ao: Option<super::tcp_ao::key::TcpAoConfig>,
    /// BFD (RFC 5880): `true` (the `[bfd]` values), a `[bfd.profile]` name, or `false`.
    pub bfd: Option<crate::bfd::config::NeighborBfd>,
    /// Fast external fallover: an eBGP session to a directly connected neighbor ends as soon
    /// as the link goes down, not at hold expiry. Default: on.
    pub fast_external_fallover: Option<bool>,
}

/// A template for passive peers connecting from a range of addresses (or any link-local
/// address on an interface) with no configuration of their own.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicNeighborConfig {
    #[serde(
        default,
        deserialize_with = "crate::config::prefix::deserialize_option"
    )]
    pub range: Option<ipnet::IpNet>,
    pub interface: Option<String>,
    pub remote_as: RemoteAsConfig,
    pub import: Option<ImportConfig>,
    pub export: Option<ExportConfig>,
    pub max_prefix: Option<MaxPrefix>,
    pub hold_time: Option<u16>,
    /// Sessions from this range at most; further connections are refused.
    #[serde(default = "default_dynamic_limit")]
    pub limit: usize,
    /// Accept next hops other than the peer's own session address (off: such routes are
    /// kept but never used, "next hop unusable: not the neighbor's own address").
    #[serde(default)]
    pub third_party_next_hop: bool,
    /// TCP MD5 key (RFC 2385); or `password_file`.
    pub password: Option<String>,
    /// A file holding the TCP MD5 key (mode 0600 or stricter, owned by root or us).
    pub password_file: Option<std::path::PathBuf>,
    /// GTSM (RFC 5082): TTL 255 out, 255 required in. Default: on for unnumbered and
    /// link-local peers (always one hop away), off otherwise.
    pub ttl_security: Option<bool>,
    /// TCP-AO (RFC 5925) instead of TCP MD5; see `tcp_ao.rs`.
    pub tcp_ao: Option<super::tcp_ao::key::TcpAoConfig>,
    /// BFD (RFC 5880): `true` (the `[bfd]` values), a `[bfd.profile]` name, or `false`.
    pub bfd: Option<crate::bfd::config::NeighborBfd>,
    /// Fast external fallover: an eBGP session to a directly connected neighbor ends as soon
    /// as the link goes down, not at hold expiry. Default: on.
    pub fast_external_fallover: Option<bool>,
}

fn default_dynamic_limit() -> usize {
    100
}

#[derive(Clone, Copy, Debug)]
pub struct RemoteAsConfig(pub RemoteAs);

impl<'de> Deserialize<'de> for RemoteAsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Word(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(asn) => Ok(Self(RemoteAs::Exact(asn))),
            Raw::Word(word) if word == "external" => Ok(Self(RemoteAs::External)),
            Raw::Word(word) if word == "internal" => Ok(Self(RemoteAs::Internal)),
            Raw::Word(word) => Err(serde::de::Error::custom(format!(
                "remote_as must be an AS number, \"external\" or \"internal\", not {word:?}"
            ))),
        }
    }
}

/// Where a neighbor is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerAddress {
    Ip(IpAddr),
    /// Unnumbered: an IPv6 link-local address on this interface, discovered.
    Interface(String),
}

impl std::fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddress::Ip(ip) => ip.fmt(f),
            PeerAddress::Interface(name) => write!(f, "interface {name}"),
        }
    }
}

/// A neighbor, ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub address: PeerAddress,
    pub remote_as: RemoteAs,
    pub import: ImportPolicy,
    pub export: ExportPolicy,
    pub passive: bool,
    pub hold_time: Option<u16>,
    /// TCP MD5 and GTSM.
    pub security: SessionSecurity,
    /// BFD's parameters; None: no BFD. Filled from `[bfd]` by `BgpConfig::compile_with_bfd`.
    pub bfd: Option<crate::bfd::session::SessionConfig>,
    /// End the session when the link to it goes down (directly connected eBGP only).
    pub fast_external_fallover: bool,
}

/// How a neighbor's TCP connection is protected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionSecurity {
    /// TCP MD5 signatures (RFC 2385).
    pub md5: Option<super::auth::key::Md5Key>,
    /// TCP-AO (RFC 5925); never together with `md5`.
    pub ao: Option<super::tcp_ao::key::AoKey>,
    /// GTSM (RFC 5082).
    pub ttl_security: bool,
}

impl SessionSecurity {
    fn from_config(
        key: &str,
        password: Option<&str>,
        password_file: Option<&std::path::Path>,
        ttl_security: Option<bool>,
        one_hop: bool,
        tcp_ao: Option<&super::tcp_ao::key::TcpAoConfig>,
    ) -> Result<Self, PolicyError> {
        let md5 = super::auth::key::Md5Key::from_config(password, password_file, key)
            .map_err(|(key, reason)| PolicyError { key, reason })?;
        if tcp_ao.is_some() && md5.is_some() {
            return Err(PolicyError {
                key: format!("{key}.tcp_ao"),
                reason: "TCP-AO and TCP MD5 (password) are exclusive on a neighbor (RFC 5925)"
                    .into(),
            });
        }
        let ao = tcp_ao
            .map(|config| super::tcp_ao::key::AoKey::from_config(config, key))
            .transpose()?;
        Ok(SessionSecurity {
            md5,
            ao,
            ttl_security: ttl_security.unwrap_or(one_hop),
        })
    }
}

/// Which connections a dynamic neighbor template accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DynamicSource {
    Range(ipnet::IpNet),
    /// Any IPv6 link-local address on this interface.
    Interface(String),
}

impl std::fmt::Display for DynamicSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DynamicSource::Range(range) => range.fmt(f),
            DynamicSource::Interface(name) => write!(f, "link-local on {name}"),
        }
    }
}

/// A compiled `[[bgp.dynamic_neighbor]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicNeighbors {
    pub source: DynamicSource,
    /// The policy of every peer it creates (address unused; passive).
    pub template: Neighbor,
    pub limit: usize,
    /// Next hops other than the peer itself are accepted.
    pub third_party_next_hop: bool,
}

impl DynamicNeighbors {
    /// The neighbor for a peer connecting from `address`.
    pub fn neighbor(&self, address: IpAddr) -> Neighbor {
        Neighbor {
            address: PeerAddress::Ip(address),
            passive: true,
            ..self.template.clone()
        }
    }
}

/// The compiled `[bgp]` section.
#[derive(Clone, Debug)]
pub struct BgpSetup {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub port: u16,
    pub decision: DecisionConfig,
    pub originated: Originated,
    pub neighbors: Vec<Neighbor>,
    pub dynamic_neighbors: Vec<DynamicNeighbors>,
    pub graceful_restart: super::graceful_restart::GracefulRestartConfig,
    /// Where to listen (`bgp.listen`); empty: everywhere.
    pub listen: Vec<IpAddr>,
}

impl BgpSetup {
    /// Every neighbor and dynamic range uses GTSM (and there is one): the listening socket
    /// can require TTL 255 of all (see `ttl_security.rs`).
    pub fn all_ttl_security(&self) -> bool {
        let mut all = self
            .neighbors
            .iter()
            .chain(self.dynamic_neighbors.iter().map(|d| &d.template))
            .map(|n| n.security.ttl_security)
            .peekable();
        all.peek().is_some() && all.all(|gtsm| gtsm)
    }

    /// The interfaces of unnumbered neighbors.
    pub fn unnumbered_interfaces(&self) -> std::collections::BTreeSet<String> {
        self.neighbors
            .iter()
            .filter_map(|n| match &n.address {
                PeerAddress::Interface(name) => Some(name.clone()),
                PeerAddress::Ip(_) => None,
            })
            .collect()
    }

    /// Whether some neighbor or dynamic range would be sent `prefix` by its export policy:
    /// a service prefix no one is sent is a configuration mistake `check` names.
    pub fn exported_anywhere(&self, prefix: &ipnet::IpNet) -> bool {
        let asn = self.asn;
        self.neighbors
            .iter()
            .chain(self.dynamic_neighbors.iter().map(|d| &d.template))
            .any(|neighbor| {
                let ebgp = match neighbor.remote_as {
                    RemoteAs::Exact(remote) => remote != asn,
                    RemoteAs::External => true,
                    RemoteAs::Internal => false,
                };
                neighbor.export.permits(prefix, ebgp)
            })
    }
}

#[cfg(test)]
mod hardening_tests;
