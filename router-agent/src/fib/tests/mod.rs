//! FIB tests against a model datapath that checks make-before-break after every single op.

mod adopted;
mod basics;
mod limits;
mod owners;
mod pass;
mod resilient;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use router_common::{
    FIRST_GROUP, GROUP_LOCAL, GROUP_PASS, NEXTHOP_BUCKETS, NEXTHOP_F_CONNECTED, NO_NEXTHOP,
};

use super::*;

/// Applies ops like the real datapath and asserts that a packet arriving between any two ops
/// finds only written state.
#[derive(Default)]
struct ModelDatapath {
    routes: HashMap<IpNet, u32>,
    groups: HashMap<u32, NexthopGroup>,
    slots: HashMap<u32, Nexthop>,
    neighbors: HashMap<(u32, IpAddr), [u8; 6]>,
}

impl ModelDatapath {
    fn apply(&mut self, batch: &Batch) {
        for op in batch.ops() {
            match op {
                FibOp::WriteNexthop { slot, nexthop, .. } => {
                    assert!(
                        !self.referenced_slots().contains(slot),
                        "slot {slot} rewritten while a bucket points at it"
                    );
                    self.slots.insert(*slot, *nexthop);
                }
                FibOp::WriteGroup { id, group } => {
                    for slot in group.buckets.iter().filter(|s| **s != NO_NEXTHOP) {
                        assert!(self.slots.contains_key(slot), "bucket -> unwritten slot");
                    }
                    for slot in group.members.iter().filter(|s| **s != NO_NEXTHOP) {
                        assert!(self.slots.contains_key(slot), "member -> unwritten slot");
                    }
                    self.groups.insert(*id, **group);
                }
                FibOp::SetRoute { prefix, group } => {
                    assert!(
                        *group < FIRST_GROUP || self.groups.contains_key(group),
                        "route {prefix} -> unwritten group {group}"
                    );
                    self.routes.insert(*prefix, *group);
                }
                FibOp::DeleteRoute { prefix } => {
                    assert!(
                        self.routes.remove(prefix).is_some(),
                        "delete of absent route"
                    );
                }
                FibOp::ClearGroup { id } => {
                    assert!(
                        !self.routes.values().any(|g| g == id),
                        "group {id} cleared while a route uses it"
                    );
                    self.groups.remove(id);
                }
                FibOp::SetNeighbor { ifindex, addr, mac } => {
                    self.neighbors.insert((*ifindex, *addr), *mac);
                }
                FibOp::DeleteNeighbor { ifindex, addr } => {
                    self.neighbors.remove(&(*ifindex, *addr));
                }
                FibOp::ResetNexthopStats { .. } => {}
            }
        }
        self.assert_current();
    }

    /// Asserts that every bucket of a routed group forwards with its neighbor's current MAC:
    /// no bucket is left on a stale record.
    fn assert_current(&self) {
        for group in self.routes.values().filter_map(|g| self.groups.get(g)) {
            for slot in group.buckets.iter().filter(|s| **s != NO_NEXTHOP) {
                let record = self.slots[slot];
                if !record.is_resolved() || record.flags & NEXTHOP_F_CONNECTED != 0 {
                    continue;
                }
                let via = if record.flags & router_common::NEXTHOP_F_VIA_IPV6 != 0 {
                    IpAddr::from(record.via)
                } else {
                    IpAddr::from([record.via[0], record.via[1], record.via[2], record.via[3]])
                };
                assert_eq!(
                    self.neighbors.get(&(record.ifindex, via)),
                    Some(&record.dst_mac),
                    "a bucket forwards to {via} with a stale MAC"
                );
            }
        }
    }

    fn referenced_slots(&self) -> HashSet<u32> {
        // Members too: `show` reads them, so their slots must hold their nexthops.
        self.groups
            .values()
            .flat_map(|group| group.buckets.iter().chain(&group.members))
            .copied()
            .filter(|slot| *slot != NO_NEXTHOP)
            .collect()
    }

    /// Per bucket of `prefix`'s group, the gateway its flows go to (`None`: to the kernel).
    fn layout(&self, prefix: &IpNet) -> Vec<Option<[u8; 16]>> {
        let group = &self.groups[&self.routes[prefix]];
        group
            .buckets
            .iter()
            .map(|slot| (*slot != NO_NEXTHOP).then(|| self.slots[slot].via))
            .collect()
    }

    /// The nexthop a flow hashing to `bucket` takes for `prefix` (exact prefix here).
    fn nexthop(&self, prefix: &str, bucket: usize) -> Option<Nexthop> {
        let group = self.routes.get(&net(prefix))?;
        let slot = self.groups.get(group)?.buckets[bucket];
        self.slots.get(&slot).copied()
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn nh(via: &str, ifindex: u32) -> NexthopKey {
    NexthopKey::host(via.parse().unwrap(), ifindex)
}

fn via(keys: &[NexthopKey]) -> RouteTarget {
    RouteTarget::Via(keys.iter().copied().collect::<BTreeSet<_>>())
}

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

fn fib_with_links() -> (Fib, ModelDatapath) {
    let mut fib = Fib::new(FibLimits::default());
    let mut dp = ModelDatapath::default();
    let mut batch = Batch::default();
    for ifindex in [2, 3] {
        let link = LinkState {
            mac: [0x02, 0, 0, 0, 1, ifindex as u8],
            mtu: 1500,
            up: true,
        };
        fib.update_link(&mut batch, ifindex, Some(link));
    }
    dp.apply(&batch);
    (fib, dp)
}

/// A `Nexthop.via` as the datapath holds it.
fn via_bytes(addr: IpAddr) -> [u8; 16] {
    let mut via = [0; 16];
    match addr {
        IpAddr::V4(addr) => via[..4].copy_from_slice(&addr.octets()),
        IpAddr::V6(addr) => via = addr.octets(),
    }
    via
}

/// The `i`th of many /24s: 10.i.i.0/24 spread over 10.0.0.0/8.
fn prefix_n(i: u32) -> IpNet {
    IpNet::new(IpAddr::V4(Ipv4Addr::from((10 << 24) | (i << 8))), 24).unwrap()
}

/// A FIB with links 2 and 3 up and the neighbors of `gateways` resolved.
fn fib_resolved(limits: FibLimits, gateways: &[NexthopKey]) -> (Fib, ModelDatapath) {
    let mut fib = Fib::new(limits);
    let mut dp = ModelDatapath::default();
    let mut batch = Batch::default();
    for ifindex in [2, 3] {
        let link = LinkState {
            mac: [0x02, 0, 0, 0, 1, ifindex as u8],
            mtu: 1500,
            up: true,
        };
        fib.update_link(&mut batch, ifindex, Some(link));
    }
    for (i, key) in gateways.iter().enumerate() {
        fib.update_neighbor(
            &mut batch,
            key.ifindex,
            key.via,
            Some([2, 0, 0, 0, 9, i as u8]),
        );
    }
    dp.apply(&batch);
    (fib, dp)
}
