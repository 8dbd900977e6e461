//! The one place where BGP talks to the FIB: Loc-RIB changes become routes to nexthop groups
//! (BGP paths -> `NexthopKey` / `RouteTarget`, owned by the path's session), and a session's
//! gateways fail and recover, scoped to that session (`Owner::Bgp`): never a static route's
//! or another session's nexthops through the same address.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use super::packet::types::Afi;
use super::rib::{BestRoute, LocRibChange, PeerId};
use crate::fib::{Batch, Family, Fib, NexthopKey, Owner, RouteTarget, Source};
use crate::next_hop_check::{Unresolved, Unusable};

/// The egress interface of a next hop, or why it has none (the daemon's view of the host's
/// addresses and connected subnets).
pub type Resolve<'a> = dyn Fn(IpAddr) -> Result<u32, Unresolved> + 'a;

/// The FIB's owner of a session's nexthops.
fn owner(peer: PeerId) -> Owner {
    Owner::Bgp(peer.0)
}

/// Marks `peer`'s gateways failed (its session went down) or alive again (they showed up in
/// an UPDATE, or the peer is gone for good).
pub fn set_gateways_failed(
    fib: &mut Fib,
    batch: &mut Batch,
    peer: PeerId,
    gateways: &[IpAddr],
    failed: bool,
) {
    fib.set_gateways_failed(batch, owner(peer), gateways, failed);
}

/// Names the peer address behind a session's owner id in the FIB (the datapath records it,
/// so that a later run sweeps what it adopted per peer). Called when the session is
/// Established, before its routes.
pub fn name_owner(fib: &mut Fib, peer: PeerId, address: IpAddr) {
    fib.name_owner(owner(peer), address);
}

/// The peer at `peer_address` sent its End-of-RIB for `afi`: the routes adopted from the
/// previous run through that peer, in that family, are swept. Returns how many changed.
pub fn end_of_rib(fib: &mut Fib, batch: &mut Batch, peer_address: IpAddr, afi: Afi) -> usize {
    let family = match afi {
        Afi::Ipv4 => Family::Ipv4,
        Afi::Ipv6 => Family::Ipv6,
    };
    fib.sweep_adopted(batch, Some(peer_address), Some(family))
}

/// Why `address` can never be a next hop (None: it may be, reachable or not).
pub fn unusable(resolve: &Resolve<'_>, address: IpAddr) -> Option<Unusable> {
    match resolve(address) {
        Err(Unresolved::Unusable(why)) => Some(why),
        Ok(_) | Err(Unresolved::NotConnected) => None,
    }
}

/// Installs or removes the FIB route of a Loc-RIB change.
pub fn apply_change(change: LocRibChange, fib: &mut Fib, batch: &mut Batch, resolve: &Resolve<'_>) {
    let target = change
        .best
        .as_ref()
        .and_then(|best| fib_target(best, resolve));
    match target {
        Some(target) => {
            if let Err(err) = fib.set_route(batch, Source::Bgp, change.prefix, target) {
                tracing::error!(prefix = %change.prefix, "BGP route not installed: {err}");
            }
        }
        None => {
            if change.best.is_some() {
                tracing::warn!(prefix = %change.prefix,
                    "no next hop of the best paths is directly connected on a configured \
                     interface; not installed");
            }
            fib.remove_route(batch, Source::Bgp, change.prefix);
        }
    }
}

fn is_ipv6_link_local(address: &Ipv6Addr) -> bool {
    address.segments()[0] & 0xffc0 == 0xfe80
}

/// The FIB nexthops of the installed paths. A link-local next hop (sent alongside the global
/// one, or as the only one) is used with the session's interface; a global one is resolved by
/// `resolve`. Paths whose interface cannot be found are left out (logged).
pub fn fib_nexthops(best: &BestRoute, resolve: &Resolve<'_>) -> BTreeSet<NexthopKey> {
    let mut keys = BTreeSet::new();
    for path in &best.paths {
        let link_local = path.next_hop.link_local.or(match path.next_hop.address {
            IpAddr::V6(address) if is_ipv6_link_local(&address) => Some(address),
            _ => None,
        });
        let key = match (link_local, path.ifindex) {
            (Some(address), Some(ifindex)) => Some(NexthopKey {
                via: IpAddr::V6(address),
                ifindex,
                owner: owner(path.peer),
            }),
            // No session interface known: the global next hop, if it is one.
            (Some(_), None) if path.next_hop.link_local.is_none() => None,
            _ => resolve(path.next_hop.address)
                .ok()
                .map(|ifindex| NexthopKey {
                    via: path.next_hop.address,
                    ifindex,
                    owner: owner(path.peer),
                }),
        };
        match key {
            Some(key) => {
                keys.insert(key);
            }
            None => tracing::debug!(
                peer = path.peer.0,
                next_hop = ?path.next_hop,
                "no interface for BGP next hop; path left out of the FIB"
            ),
        }
    }
    keys
}

/// What to give [`Fib::set_route`]; None when no next hop could be placed on an interface
/// (the caller then removes the route).
pub fn fib_target(best: &BestRoute, resolve: &Resolve<'_>) -> Option<RouteTarget> {
    let keys = fib_nexthops(best, resolve);
    (!keys.is_empty()).then_some(RouteTarget::Via(keys))
}

#[cfg(test)]
mod tests;
