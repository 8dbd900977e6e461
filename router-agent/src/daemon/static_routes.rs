//! Configured static routes, and which next hops are usable (shared with BGP).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
};

use ipnet::IpNet;

use super::Agent;
use crate::{
    config::RouteConfig,
    fib::{Batch, NexthopKey, RouteTarget, Source},
    next_hop_check::{self, Unresolved},
};

impl Agent {
    /// Sets the configured static routes; returns the prefixes that could not be installed
    /// (each logged with why).
    pub(super) async fn install_static_routes(
        &mut self,
        batch: &mut Batch,
        routes: &[RouteConfig],
    ) -> Vec<IpNet> {
        let mut failed = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let mut keys = BTreeSet::new();
            for (j, nexthop) in route.nexthops.iter().enumerate() {
                // Own addresses and subnet broadcasts: the kernel would refuse the route or
                // route to itself. Said once per (re)load.
                if let Err(Unresolved::Unusable(why)) = resolve_next_hop(
                    &self.local_addresses,
                    &self.connected,
                    &self.interfaces,
                    nexthop.via,
                ) {
                    tracing::error!(prefix = %route.prefix,
                        "route[{i}].nexthops[{j}].via: {why}; nexthop skipped");
                    continue;
                }
                let ifindex = match &nexthop.interface {
                    Some(name) => self
                        .interfaces
                        .iter()
                        .find(|(_, n)| *n == name)
                        .map(|(i, _)| *i),
                    None => match self.netlink.egress_for(nexthop.via).await {
                        Ok(ifindex) => Some(ifindex),
                        Err(err) => {
                            tracing::error!(prefix = %route.prefix, via = %nexthop.via, "nexthop skipped: {err:#}");
                            None
                        }
                    },
                };
                let Some(ifindex) = ifindex else { continue };
                if !self.interfaces.contains_key(&ifindex) {
                    tracing::error!(
                        prefix = %route.prefix, via = %nexthop.via,
                        "nexthop skipped: it is reached through {}, which is not a configured interface",
                        crate::show::interface_name(ifindex)
                    );
                    continue;
                }
                keys.insert(NexthopKey::host(nexthop.via, ifindex));
            }
            if keys.is_empty() {
                tracing::error!(prefix = %route.prefix, "route not installed: no usable nexthop");
                failed.push(route.prefix);
                continue;
            }
            if let Err(err) =
                self.fib
                    .set_route(batch, Source::Static, route.prefix, RouteTarget::Via(keys))
            {
                tracing::error!(prefix = %route.prefix, "route not installed: {err}");
                failed.push(route.prefix);
            }
        }
        failed
    }
}

/// The egress interface of a directly connected next hop, if it is a configured interface
/// (only those are in the XDP program's egress map); or why it cannot be used at all (the
/// host's own address, a connected subnet's network or broadcast address, a martian).
pub(super) fn resolve_next_hop(
    local_addresses: &HashMap<IpNet, BTreeSet<u32>>,
    connected: &BTreeMap<(IpNet, u32), usize>,
    interfaces: &BTreeMap<u32, String>,
    via: IpAddr,
) -> Result<u32, Unresolved> {
    let is_own = |ip: IpAddr| local_addresses.contains_key(&IpNet::from(ip));
    let subnets = connected.keys().map(|(subnet, _)| *subnet);
    if let Some(why) = next_hop_check::classify(via, is_own, subnets) {
        return Err(Unresolved::Unusable(why));
    }
    connected
        .keys()
        .filter(|(subnet, ifindex)| subnet.contains(&via) && interfaces.contains_key(ifindex))
        .max_by_key(|(subnet, _)| subnet.prefix_len())
        .map(|(_, ifindex)| *ifindex)
        .ok_or(Unresolved::NotConnected)
}
