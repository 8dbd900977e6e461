//! What the caller knows of next hop addresses (a link down, a neighbor failed, an address
//! that can never be used), and the prefixes re-decided when that changes.

use std::net::IpAddr;

use ipnet::IpNet;

use super::entry::{PrefixEntry, StoredPath, snapshot};
use super::{Context, LocRibChange, NextHopState, Rib};
use crate::next_hop_check::Unusable;

impl Rib {
    /// The hook for next hop tracking (decision step 0 and (e)): the caller tells what it
    /// knows of an address (a link went down, a neighbor failed); every prefix with a path
    /// through it is re-decided. A default state (reachable, cost 0) clears the mark.
    pub fn set_next_hop_state(
        &mut self,
        address: IpAddr,
        state: NextHopState,
    ) -> Vec<LocRibChange> {
        if !self.next_hops.set_state(address, state) {
            return Vec::new();
        }
        let context = Context {
            peers: &self.peers,
            next_hops: &self.next_hops,
            config: &self.config,
        };
        let uses_address = |path: &StoredPath| {
            let hop = context.next_hops.get(path.next_hop);
            hop.address == address || hop.link_local.map(IpAddr::V6) == Some(address)
        };
        let mut changes = Vec::new();
        let mut redecide = |prefix: IpNet, entry: &mut PrefixEntry| {
            let accepted = &entry.paths()[..entry.accepted()];
            if !accepted.iter().any(uses_address) {
                return;
            }
            let before = snapshot(entry);
            context.rank(entry);
            if snapshot(entry) != before {
                changes.push(LocRibChange {
                    prefix,
                    best: context.best_route(entry),
                });
            }
        };
        for (net, entry) in self.v4.iter_mut() {
            redecide(IpNet::V4(*net), entry);
        }
        for (net, entry) in self.v6.iter_mut() {
            redecide(IpNet::V6(*net), entry);
        }
        changes
    }

    /// Marks `address` unusable (`Some(why)`) or usable again, keeping what else is known of
    /// it; every prefix with a path through it is re-decided if that changes anything. Set it
    /// before the routes arrive and they are ranked right away.
    pub fn set_next_hop_unusable(
        &mut self,
        address: IpAddr,
        unusable: Option<Unusable>,
    ) -> Vec<LocRibChange> {
        let state = self.next_hops.address_state(address);
        if state.unusable == unusable {
            return Vec::new();
        }
        self.set_next_hop_state(address, NextHopState { unusable, ..state })
    }

    /// What is recorded of `address` (default: reachable, usable).
    pub fn next_hop_state(&self, address: IpAddr) -> NextHopState {
        self.next_hops.address_state(address)
    }

    /// Every next hop address routes use or a state was recorded for: what to re-check when
    /// the host's addresses change.
    pub fn next_hop_addresses(&self) -> std::collections::BTreeSet<IpAddr> {
        self.next_hops.addresses()
    }
}
