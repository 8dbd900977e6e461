//! The kernel's local table (255): RTM_NEWROUTE / RTM_DELROUTE there -> [`LocalRoute`].
//!
//! The kernel looks it up before any other table: a destination it holds is the host's own
//! (`local`: every address), a broadcast (`broadcast`: subnet broadcasts, also for addresses
//! without an explicit `brd`, and the network address on some kernels) or an anycast address
//! of the host (`anycast`: the IPv6 subnet-router anycast `prefix::` of every prefix while
//! forwarding is on). Its packets go to the host, whichever other route matches. The local
//! table is followed whatever `[datapath.follow_kernel_routes]` says: it is what makes a packet
//! the host's.

use ipnet::IpNet;
use rtnetlink::packet_route::{
    AddressFamily,
    route::{RouteAttribute, RouteFlags, RouteMessage, RouteType},
};

use super::kernel_routes::{TABLE_LOCAL, is_link_local_or_multicast, route_prefix, route_table};

/// The types of local-table route that deliver to the host. Multicast and the others are not
/// followed (multicast never reaches the lookup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LocalKind {
    Local,
    Broadcast,
    Anycast,
}

/// One route of the local table. Keyed with its interface and type: the same prefix may be
/// held several times (the same address on two interfaces, an address that is also a
/// broadcast), and the prefix stays the host's until the last one goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalRoute {
    pub prefix: IpNet,
    pub kind: LocalKind,
    /// The route's output interface (0 when it names none).
    pub ifindex: u32,
    pub metric: u32,
}

/// Whether a route message belongs to the local table (then only [`parse_local_route`] reads
/// it).
pub(super) fn is_local_table(msg: &RouteMessage) -> bool {
    route_table(msg) == TABLE_LOCAL
}

/// A local-table route message -> [`LocalRoute`]; `None` for other families, types, cached
/// clones and link-local or multicast prefixes (the program passes those before the lookup).
pub(super) fn parse_local_route(msg: &RouteMessage) -> Option<LocalRoute> {
    let header = &msg.header;
    if !matches!(
        header.address_family,
        AddressFamily::Inet | AddressFamily::Inet6
    ) || header.flags.contains(RouteFlags::Cloned)
        || !is_local_table(msg)
    {
        return None;
    }
    let kind = match header.kind {
        RouteType::Local => LocalKind::Local,
        RouteType::Broadcast => LocalKind::Broadcast,
        RouteType::Anycast => LocalKind::Anycast,
        _ => return None,
    };
    let prefix = route_prefix(msg)?;
    if is_link_local_or_multicast(&prefix) {
        return None;
    }
    let mut ifindex = 0;
    let mut metric = 0;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Oif(i) => ifindex = *i,
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    Some(LocalRoute {
        prefix,
        kind,
        ifindex,
        metric,
    })
}
