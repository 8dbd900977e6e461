//! Where an originated route comes from (configuration, a health-checked service, a
//! redistributed kernel prefix) and how it is announced (MED, prepend, GRACEFUL_SHUTDOWN).
//!
//! Redistribution is where a learned route could sneak into export, so its input is a
//! [`HostPrefix`]: made only from what netlink parsed of the kernel's own state (an address,
//! a connected subnet, a route whose protocol is not our BGP mirror), never from a `Path` or
//! the RIB. Passing a learned path does not compile:
//!
//! ```compile_fail,E0308
//! use router_agent::bgp::policy::HostPrefix;
//! use router_agent::bgp::rib::Path;
//!
//! fn leak(learned: &Path) -> Option<HostPrefix> {
//!     // Expected `&FollowedRoute`, found `&Path`: a learned route is not host state.
//!     HostPrefix::from_kernel_route(learned, 201)
//! }
//! ```
//!
//! (The test `host_prefix_example_twin_compiles` keeps the same call compiling with a
//! `FollowedRoute`, so the example fails for the leak and nothing else.)

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::{Community, LargeCommunity, OriginatedRoute};
use crate::netlink::{AddressInfo, FollowedRoute};

/// Which part of the host's configuration or state a route is originated for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OriginSource {
    /// `[[bgp.originate]]`.
    Config,
    /// A `[[service]]` by name, announced while its checks pass.
    Service(Arc<str>),
    /// A `[[redistribute]]` rule by name.
    Redistributed(Arc<str>),
}

/// How a route is announced beyond the fixed template of `build_adj_rib_out`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExportModifiers {
    pub med: Option<u32>,
    /// Extra copies of our AS in AS_PATH (eBGP only), to make the path less preferred by
    /// peers that ignore GRACEFUL_SHUTDOWN.
    pub prepend: u8,
    /// Tag with GRACEFUL_SHUTDOWN (65535:0, RFC 8326): "move your traffic elsewhere".
    pub graceful_shutdown: bool,
}

impl ExportModifiers {
    /// Both sets of modifiers at once: the larger prepend, either's tag, `self`'s MED first.
    pub fn combine(self, other: ExportModifiers) -> ExportModifiers {
        ExportModifiers {
            med: self.med.or(other.med),
            prepend: self.prepend.max(other.prepend),
            graceful_shutdown: self.graceful_shutdown || other.graceful_shutdown,
        }
    }
}

/// The export settings of a service or a redistribution rule, from its configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginExport {
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub med: Option<u32>,
}

/// A prefix the host itself holds: one of its addresses, a connected subnet, or a kernel
/// route not installed by our BGP mirror. The field is private: only the constructors below
/// make one, and they take netlink's parsed kernel state only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPrefix(IpNet);

impl HostPrefix {
    /// A kernel route's destination, unless our BGP mirror installed it (`own_protocol`):
    /// those are learned routes, and redistributing them would make the host a transit.
    pub fn from_kernel_route(route: &FollowedRoute, own_protocol: u8) -> Option<Self> {
        if route.protocol == own_protocol {
            return None;
        }
        Self::usable(route.key.prefix)
    }

    /// One of the host's addresses, as a host route (/32 or /128).
    pub fn from_address(address: &AddressInfo) -> Option<Self> {
        if !announceable(address.addr) {
            return None;
        }
        Self::usable(IpNet::from(address.addr))
    }

    /// The subnet an address is configured with (its connected route).
    pub fn connected(address: &AddressInfo) -> Option<Self> {
        if !announceable(address.addr) {
            return None;
        }
        let prefix = IpNet::new(address.addr, address.prefix_len).ok()?.trunc();
        Self::usable(prefix)
    }

    fn usable(prefix: IpNet) -> Option<Self> {
        // A default route is never announced by a host (see `OriginatedRoute::new`).
        (prefix.prefix_len() != 0).then_some(Self(prefix.trunc()))
    }

    pub fn prefix(&self) -> IpNet {
        self.0
    }
}

/// Loopback, link-local, multicast and unspecified addresses mean nothing to a neighbor.
fn announceable(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_link_local() || v4.is_multicast() || v4.is_unspecified())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unicast_link_local()
                || v6.is_multicast()
                || v6.is_unspecified())
        }
    }
}

impl OriginatedRoute {
    /// A prefix of service `name`, announced while the service is up (or degraded).
    pub fn for_service(
        name: &Arc<str>,
        prefix: IpNet,
        export: &OriginExport,
    ) -> Result<Self, String> {
        let mut route = Self::new(prefix, &export.communities, &export.large_communities)?;
        route.source = OriginSource::Service(name.clone());
        route.modifiers.med = export.med;
        Ok(route)
    }

    /// A host prefix announced by redistribution rule `rule`.
    pub fn redistributed(
        rule: &Arc<str>,
        prefix: HostPrefix,
        export: &OriginExport,
    ) -> Result<Self, String> {
        let mut route = Self::new(prefix.0, &export.communities, &export.large_communities)?;
        route.source = OriginSource::Redistributed(rule.clone());
        route.modifiers.med = export.med;
        Ok(route)
    }

    /// The route with `modifiers` added to its own (a degraded service, a drain).
    pub fn with_modifiers(mut self, modifiers: ExportModifiers) -> Self {
        self.modifiers = self.modifiers.combine(modifiers);
        self
    }

    pub fn source(&self) -> &OriginSource {
        &self.source
    }

    pub fn modifiers(&self) -> ExportModifiers {
        self.modifiers
    }
}
