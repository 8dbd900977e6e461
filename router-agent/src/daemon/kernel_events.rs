//! Kernel events into the FIB: links, neighbors, the host's addresses, followed and local
//! routes.

use std::net::IpAddr;

use ipnet::IpNet;

use super::Agent;
use crate::{
    bgp::speaker::LinkDown,
    fib::{Batch, LinkState},
    netlink::{AddressInfo, KernelEvent, LinkInfo},
};

impl Agent {
    /// A link going down or away, with the host's subnets on it as they were (for fast
    /// external fallover, `bgp/speaker/fallover.rs`). Taken before the event is applied.
    pub(super) fn link_down(&self, event: &KernelEvent) -> Option<LinkDown> {
        let (ifindex, name) = match event {
            KernelEvent::Link(link) if !link.up => (link.ifindex, link.name.clone()),
            KernelEvent::LinkRemoved { ifindex } => (*ifindex, format!("ifindex {ifindex}")),
            _ => return None,
        };
        let subnets = self
            .connected
            .keys()
            .filter(|(_, on)| *on == ifindex)
            .map(|(subnet, _)| *subnet)
            .collect();
        Some(LinkDown {
            ifindex,
            name,
            subnets,
        })
    }

    pub(super) fn on_kernel_event(&mut self, batch: &mut Batch, event: KernelEvent) {
        // Every route, address and link, followed or not: announced after the burst.
        self.redistributor.on_event(&event);
        match event {
            KernelEvent::Link(link) => self.on_link(batch, link),
            KernelEvent::LinkRemoved { ifindex } => self.fib.update_link(batch, ifindex, None),
            KernelEvent::Neighbor(neighbor) => {
                self.fib
                    .update_neighbor(batch, neighbor.ifindex, neighbor.addr, neighbor.mac)
            }
            KernelEvent::NeighborRemoved { ifindex, addr } => {
                self.fib.update_neighbor(batch, ifindex, addr, None)
            }
            KernelEvent::NeighborStale { ifindex, addr } => {
                if self.interfaces.contains_key(&ifindex) {
                    self.unconfirmed_neighbors.push((ifindex, addr));
                }
            }
            KernelEvent::Address(address) => self.on_address(&address, true),
            KernelEvent::AddressRemoved(address) => self.on_address(&address, false),
            KernelEvent::Route(route) => {
                self.kernel_routes
                    .on_observed_route(&mut self.fib, batch, route, &self.interfaces)
            }
            KernelEvent::RouteRemoved(key) => {
                self.kernel_routes
                    .on_route_removed(&mut self.fib, batch, key, &self.interfaces)
            }
            KernelEvent::LocalRoute(route) => {
                self.local_routes.on_route(&mut self.fib, batch, route)
            }
            KernelEvent::LocalRouteRemoved(route) => {
                self.local_routes
                    .on_route_removed(&mut self.fib, batch, route)
            }
            KernelEvent::DumpDone => {}
        }
    }

    fn on_link(&mut self, batch: &mut Batch, link: LinkInfo) {
        let state = LinkState {
            mac: link.mac.unwrap_or_default(),
            mtu: link.mtu,
            up: link.up,
        };
        if self.interfaces.contains_key(&link.ifindex) {
            tracing::info!(ifname = %link.name, up = link.up, mtu = link.mtu, "link state");
        }
        self.fib.update_link(batch, link.ifindex, Some(state));
        self.note_link_mac(&link);
    }

    /// Every link's MAC goes to the datapath; an attached interface's change rewrites its
    /// record (else the program would take its frames for another host's).
    fn note_link_mac(&mut self, link: &LinkInfo) {
        match self.datapath.update_link_mac(link.ifindex, link.mac) {
            Ok(true) => tracing::info!(ifname = %link.name, "link MAC changed; XDP updated"),
            Ok(false) => {}
            Err(err) => {
                tracing::error!(ifname = %link.name, "link MAC change not applied: {err:#}")
            }
        }
    }

    /// The host's addresses: connected subnets, link-locals and own addresses, for next hops.
    fn on_address(&mut self, address: &AddressInfo, present: bool) {
        // Link-local destinations never reach the lookup (the program passes them first).
        let link_local = match address.addr {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
        };
        if link_local {
            if let IpAddr::V6(v6) = address.addr {
                let held = self.link_locals.entry(address.ifindex).or_default();
                if present {
                    held.insert(v6);
                } else {
                    held.remove(&v6);
                    if held.is_empty() {
                        self.link_locals.remove(&address.ifindex);
                    }
                }
            }
            return;
        }
        if let Ok(subnet) = IpNet::new(address.addr, address.prefix_len) {
            let key = (subnet.trunc(), address.ifindex);
            let count = self.connected.entry(key).or_default();
            if present {
                *count += 1;
            } else {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.connected.remove(&key);
                }
            }
        }
        // The FIB's local routes come from the local table (LocalRoutes), not from here: these
        // are the host's own addresses for next-hop sanity.
        let mut hosts = vec![IpNet::from(address.addr)];
        if let Some(broadcast) = address.broadcast {
            hosts.push(IpNet::from(IpAddr::V4(broadcast)));
        }
        for host in hosts {
            let holders = self.local_addresses.entry(host).or_default();
            if present {
                holders.insert(address.ifindex);
            } else {
                holders.remove(&address.ifindex);
                if holders.is_empty() {
                    self.local_addresses.remove(&host);
                }
            }
        }
    }
}
