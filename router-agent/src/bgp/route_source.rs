//! Who sent a route and where it points: the facts the RIB and policy both read, in a module
//! that depends on neither (the RIB calls import policy; policy never reaches into the RIB).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A BGP session, as the RIB names it. Assigned by the speaker; stable for the session's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

/// What the RIB needs to know of an established session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub id: PeerId,
    /// The peer's address on the session (decision process tie-break (g)).
    pub address: IpAddr,
    /// The peer's BGP Identifier from its OPEN.
    pub router_id: Ipv4Addr,
    pub remote_as: u32,
    pub local_as: u32,
    pub ebgp: bool,
    /// The interface the session runs over, for link-local next hops (unnumbered peering).
    pub ifindex: Option<u32>,
    /// Only next hops that are the peer's own session address count (a dynamic neighbor
    /// whose range does not allow third-party next hops).
    pub own_next_hops_only: bool,
}

impl PeerInfo {
    /// Whether `hop` is the peer itself: its session address as the global next hop, or as
    /// the link-local one (link-local sessions). A link-local next hop sent beside the
    /// session's global address is the peer's own on the session's link (RFC 2545).
    pub fn is_own_next_hop(&self, hop: &NextHop) -> bool {
        let session = self.address.to_canonical();
        hop.address.to_canonical() == session || hop.link_local.map(IpAddr::V6) == Some(session)
    }
}

/// A route's next hop as the peer sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    /// NEXT_HOP, or the global next hop of MP_REACH_NLRI (may be IPv6 for IPv4 routes,
    /// RFC 8950).
    pub address: IpAddr,
    /// The IPv6 link-local next hop, when the peer sent one (RFC 2545): preferred for
    /// forwarding because it is on the session's link by construction.
    pub link_local: Option<Ipv6Addr>,
}

impl NextHop {
    pub fn new(address: IpAddr) -> Self {
        Self {
            address,
            link_local: None,
        }
    }
}
