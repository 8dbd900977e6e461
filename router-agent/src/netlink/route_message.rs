//! The netlink messages of our routes in the kernel's main table: RTM_NEWROUTE and the
//! RTM_DELROUTE key, built from a [`KernelRoute`]. Pure: no socket here (the writers are in
//! `routes.rs` and `route_batch.rs`).

use std::net::IpAddr;

use anyhow::bail;
use rtnetlink::packet_route::{
    AddressFamily,
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol,
        RouteScope, RouteType, RouteVia,
    },
};

use super::{KernelNexthop, KernelRoute};

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
pub(super) const MAIN_TABLE: u32 = RouteHeader::RT_TABLE_MAIN as u32;

pub(super) fn family_of(addr: IpAddr) -> AddressFamily {
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

#[cfg(test)]
mod tests {
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
