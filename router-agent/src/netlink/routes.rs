//! Kernel routes (RTM_NEWROUTE / RTM_DELROUTE in the main table) and egress lookups
//! (RTM_GETROUTE, what `ip route get` does).

use std::net::IpAddr;

use anyhow::{Context as _, anyhow, bail};
use rtnetlink::{
    packet_core::{NLM_F_DUMP, NLM_F_REQUEST},
    packet_route::{
        AddressFamily, RouteNetlinkMessage,
        route::{
            RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol,
            RouteScope, RouteType, RouteVia,
        },
    },
};

use super::{
    KernelNexthop, KernelRoute, Netlink,
    kernel_routes::{route_prefix, route_table},
    route_batch::RouteWriter,
};

/// Route protocol number of the routes hostrouter installs (`ip route show proto 201`).
///
/// 201 is used by nobody we know of: the kernel names 0-18, 42 (babel), 99 (openr) and
/// 186-192; FRR uses 186-198 (196 is FRR's "zstatic", so flushing 196 at start would delete
/// FRR's static routes); BIRD uses 12. Add `201 hostrouter` to /etc/iproute2/rt_protos.d/ to
/// have `ip route` print the name.
pub const RTPROT_HOSTROUTER: u8 = 201;

/// Metric (RTA_PRIORITY) of every route we install.
///
/// Not 0, because the kernel identifies an IPv4 route by (prefix, TOS, metric) whatever its
/// protocol: at metric 0 our NLM_F_REPLACE would overwrite a connected or DHCP route with the
/// same prefix. At 20 (FRR's metric for BGP routes) connected routes of the same prefix still
/// win, and ours win over DHCP (100) or RA (1024) defaults.
pub const KERNEL_ROUTE_METRIC: u32 = 20;

/// RT_TABLE_MAIN.
const MAIN_TABLE: u32 = RouteHeader::RT_TABLE_MAIN as u32;

fn family_of(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// RTA_GATEWAY when the gateway has the prefix's family, RTA_VIA for an IPv6 gateway of an
/// IPv4 prefix (RFC 5549). The kernel has no IPv4 gateways for IPv6 routes.
fn gateway_attribute(route: &KernelRoute, nh: &KernelNexthop) -> anyhow::Result<RouteAttribute> {
    Ok(match (route.prefix.addr(), nh.gateway) {
        (IpAddr::V4(_), IpAddr::V4(gw)) => RouteAttribute::Gateway(RouteAddress::Inet(gw)),
        (IpAddr::V6(_), IpAddr::V6(gw)) => RouteAttribute::Gateway(RouteAddress::Inet6(gw)),
        (IpAddr::V4(_), IpAddr::V6(gw)) => RouteAttribute::Via(RouteVia::Inet6(gw)),
        (IpAddr::V6(_), IpAddr::V4(gw)) => {
            bail!(
                "route {}: IPv6 prefixes cannot have an IPv4 gateway ({gw})",
                route.prefix
            )
        }
    })
}

/// The header and destination attributes that identify a route of ours in the main table.
fn route_key(prefix: ipnet::IpNet, protocol: u8) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family_of(prefix.addr());
    msg.header.destination_prefix_length = prefix.prefix_len();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::from(protocol);
    if prefix.prefix_len() > 0 {
        // trunc(): the kernel rejects IPv4 prefixes with host bits set ("Invalid prefix").
        msg.attributes
            .push(RouteAttribute::Destination(prefix.trunc().addr().into()));
    }
    msg.attributes.push(RouteAttribute::Table(MAIN_TABLE));
    msg.attributes
        .push(RouteAttribute::Priority(KERNEL_ROUTE_METRIC));
    msg
}

/// The RTM_DELROUTE message for our route to `route.prefix` (its nexthops are not looked at).
pub(super) fn delete_message(route: &KernelRoute) -> RouteMessage {
    let mut msg = route_key(route.prefix, route.protocol);
    // Scope "nowhere" and type unspec are wildcards for deletion, as `ip route del` sends.
    msg.header.scope = RouteScope::NoWhere;
    msg.header.kind = RouteType::Unspec;
    msg
}

/// The complete RTM_NEWROUTE message for `route`.
pub(super) fn new_route_message(route: &KernelRoute) -> anyhow::Result<RouteMessage> {
    let mut nexthops = route.nexthops.clone();
    nexthops.sort_unstable();
    nexthops.dedup(); // the kernel refuses duplicate IPv6 siblings
    let mut msg = route_key(route.prefix, route.protocol);
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    match nexthops.as_slice() {
        [] => bail!("route {} has no nexthop", route.prefix),
        [nh] => {
            msg.attributes.push(gateway_attribute(route, nh)?);
            msg.attributes.push(RouteAttribute::Oif(nh.ifindex));
        }
        many => {
            let mut hops = Vec::with_capacity(many.len());
            for nh in many {
                let mut hop = RouteNextHop::default();
                hop.interface_index = nh.ifindex;
                hop.hops = 0; // weight 1 (the kernel adds one)
                hop.attributes.push(gateway_attribute(route, nh)?);
                hops.push(hop);
            }
            msg.attributes.push(RouteAttribute::MultiPath(hops));
        }
    }
    Ok(msg)
}

pub(super) fn describe(route: &KernelRoute) -> String {
    let hops: Vec<String> = route
        .nexthops
        .iter()
        .map(|nh| format!("{}@{}", nh.gateway, nh.ifindex))
        .collect();
    format!(
        "{} via [{}] proto {}",
        route.prefix,
        hops.join(", "),
        route.protocol
    )
}

impl Netlink {
    /// Deletes every IPv4 and IPv6 route of the main table whose protocol is `protocol`
    /// (at exit). Returns how many were deleted.
    pub async fn flush_routes(&self, protocol: u8) -> anyhow::Result<usize> {
        self.flush_routes_except(protocol, &Default::default())
            .await
    }

    /// Like [`Self::flush_routes`], but keeps the prefixes in `keep`: after a restart, removes
    /// what the previous run installed and this one no longer wants, without a gap for the
    /// rest.
    pub async fn flush_routes_except(
        &self,
        protocol: u8,
        keep: &std::collections::HashSet<ipnet::IpNet>,
    ) -> anyhow::Result<usize> {
        let doomed: Vec<_> = self
            .main_table_routes_of(protocol)
            .await?
            .iter()
            .filter(|route| !route_prefix(route).is_some_and(|prefix| keep.contains(&prefix)))
            .map(deletion_key)
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        // In bulk: a full table takes seconds this way, minutes one request at a time. An
        // absent route is fine: e.g. an IPv6 sibling already deleted with the first one.
        // Blocking, like the dump above in effect: this runs at start and at exit.
        let mut writer = RouteWriter::open()?;
        writer.delete_keys(doomed)
    }

    /// The prefixes of the main table's IPv4 and IPv6 routes of protocol `protocol`.
    pub async fn route_prefixes_of(&self, protocol: u8) -> anyhow::Result<Vec<ipnet::IpNet>> {
        Ok(self
            .main_table_routes_of(protocol)
            .await?
            .iter()
            .filter_map(route_prefix)
            .collect())
    }

    async fn main_table_routes_of(&self, protocol: u8) -> anyhow::Result<Vec<RouteMessage>> {
        let mut found = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut dump = RouteMessage::default();
            dump.header.address_family = family;
            let routes = self
                .request(
                    RouteNetlinkMessage::GetRoute(dump),
                    NLM_F_REQUEST | NLM_F_DUMP,
                )
                .await
                .with_context(|| format!("cannot dump the {family:?} routes"))?;
            found.extend(routes.into_iter().filter_map(|route| match route {
                RouteNetlinkMessage::NewRoute(route)
                    if u8::from(route.header.protocol) == protocol
                        && route_table(&route) == MAIN_TABLE =>
                {
                    Some(route)
                }
                _ => None,
            }));
        }
        Ok(found)
    }

    /// Which interface the kernel sends to `addr` through (what `ip route get ADDR` says),
    /// for a nexthop given without an interface. Fails if the kernel would send through a
    /// gateway (`addr` is not directly connected), if `addr` is local or unreachable, and for
    /// IPv6 link-local addresses (only meaningful with an interface).
    pub async fn egress_for(&self, addr: IpAddr) -> anyhow::Result<u32> {
        if let IpAddr::V6(v6) = addr
            && v6.is_unicast_link_local()
        {
            bail!("nexthop {addr} is link-local: it needs an interface");
        }
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(addr);
        msg.header.destination_prefix_length = if addr.is_ipv4() { 32 } else { 128 };
        msg.attributes
            .push(RouteAttribute::Destination(addr.into()));
        let answer = self
            .request(RouteNetlinkMessage::GetRoute(msg), NLM_F_REQUEST)
            .await
            .with_context(|| format!("no route to nexthop {addr}"))?;
        let route = answer
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .ok_or_else(|| anyhow!("the kernel gave no route for nexthop {addr}"))?;
        match route.header.kind {
            RouteType::Unicast => {}
            RouteType::Local => bail!("nexthop {addr} is an address of this host"),
            other => bail!("nexthop {addr} is not reachable (route type {other:?})"),
        }
        let mut oif = None;
        for attr in &route.attributes {
            match attr {
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Gateway(gw) => bail!(
                    "nexthop {addr} is not directly connected (the kernel routes it via {})",
                    route_address(gw)
                ),
                RouteAttribute::Via(via) => bail!(
                    "nexthop {addr} is not directly connected (the kernel routes it via {})",
                    via_address(via)
                ),
                _ => {}
            }
        }
        oif.ok_or_else(|| anyhow!("the kernel's route to nexthop {addr} has no interface"))
    }
}

/// What identifies a dumped route for RTM_DELROUTE: prefix (and source prefix), TOS, table,
/// protocol and metric; no nexthops, so that an ECMP route goes away whole.
fn deletion_key(route: &RouteMessage) -> RouteMessage {
    let mut key = RouteMessage::default();
    key.header.address_family = route.header.address_family;
    key.header.destination_prefix_length = route.header.destination_prefix_length;
    key.header.source_prefix_length = route.header.source_prefix_length;
    key.header.tos = route.header.tos;
    key.header.table = route.header.table;
    key.header.protocol = route.header.protocol;
    key.header.scope = RouteScope::NoWhere;
    key.header.kind = RouteType::Unspec;
    key.attributes = route
        .attributes
        .iter()
        .filter(|attr| {
            matches!(
                attr,
                RouteAttribute::Destination(_)
                    | RouteAttribute::Source(_)
                    | RouteAttribute::Table(_)
                    | RouteAttribute::Priority(_)
            )
        })
        .cloned()
        .collect();
    key
}

fn route_address(addr: &RouteAddress) -> String {
    match addr {
        RouteAddress::Inet(a) => a.to_string(),
        RouteAddress::Inet6(a) => a.to_string(),
        other => format!("{other:?}"),
    }
}

fn via_address(via: &RouteVia) -> String {
    match via {
        RouteVia::Inet(a) => a.to_string(),
        RouteVia::Inet6(a) => a.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
pub(super) mod unit_tests {
    use super::*;

    fn nh(gw: &str, ifindex: u32) -> KernelNexthop {
        KernelNexthop {
            gateway: gw.parse().unwrap(),
            ifindex,
        }
    }

    #[test]
    fn single_nexthop_uses_gateway_and_oif() {
        let route = KernelRoute {
            prefix: "10.1.2.3/24".parse().unwrap(),
            nexthops: vec![nh("10.0.0.1", 7)],
            protocol: RTPROT_HOSTROUTER,
        };
        let msg = new_route_message(&route).unwrap();
        assert_eq!(msg.header.address_family, AddressFamily::Inet);
        assert_eq!(msg.header.destination_prefix_length, 24);
        assert_eq!(u8::from(msg.header.protocol), RTPROT_HOSTROUTER);
        assert!(
            msg.attributes
                .contains(&RouteAttribute::Destination(RouteAddress::Inet(
                    "10.1.2.0".parse().unwrap()
                )))
        );
        assert!(
            msg.attributes
                .contains(&RouteAttribute::Gateway(RouteAddress::Inet(
                    "10.0.0.1".parse().unwrap()
                )))
        );
        assert!(msg.attributes.contains(&RouteAttribute::Oif(7)));
        assert!(
            msg.attributes
                .contains(&RouteAttribute::Priority(KERNEL_ROUTE_METRIC))
        );
    }

    #[test]
    fn ipv4_prefix_with_ipv6_gateway_uses_via_and_multipath_dedups() {
        let route = KernelRoute {
            prefix: "0.0.0.0/0".parse().unwrap(),
            nexthops: vec![nh("fe80::1", 3), nh("10.0.0.1", 2), nh("fe80::1", 3)],
            protocol: 201,
        };
        let msg = new_route_message(&route).unwrap();
        // default route: no RTA_DST
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)))
        );
        let hops = msg
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::MultiPath(h) => Some(h.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(hops.len(), 2);
        assert_eq!(hops[1].interface_index, 3);
        assert_eq!(
            hops[1].attributes,
            vec![RouteAttribute::Via(RouteVia::Inet6(
                "fe80::1".parse().unwrap()
            ))]
        );
    }

    #[test]
    fn ipv6_prefix_rejects_ipv4_gateway_and_empty_nexthops() {
        let mut route = KernelRoute {
            prefix: "2001:db8::/32".parse().unwrap(),
            nexthops: vec![nh("10.0.0.1", 2)],
            protocol: 201,
        };
        assert!(new_route_message(&route).is_err());
        route.nexthops.clear();
        assert!(
            new_route_message(&route)
                .unwrap_err()
                .to_string()
                .contains("no nexthop")
        );
    }
}
