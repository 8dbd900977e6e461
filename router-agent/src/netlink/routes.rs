//! Kernel routes (RTM_NEWROUTE / RTM_DELROUTE in the main table) and egress lookups
//! (RTM_GETROUTE, what `ip route get` does).

use std::net::IpAddr;

use anyhow::{Context as _, anyhow, bail};
use rtnetlink::{
    packet_core::{NLM_F_DUMP, NLM_F_REQUEST},
    packet_route::{
        AddressFamily, RouteNetlinkMessage,
        route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope, RouteType, RouteVia},
    },
};

use super::{
    Netlink,
    kernel_routes::{route_prefix, route_table},
    route_batch::RouteWriter,
    route_message::{MAIN_TABLE, family_of},
};

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
