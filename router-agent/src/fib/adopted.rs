//! Routes adopted from the previous run's datapath (a restart or an upgrade), kept
//! forwarding until the peers they were learned from have sent their End-of-RIB.
//!
//! CONTRACT STUB (session 5): signatures only; the implementation lands with the adoption.

use std::net::IpAddr;

use super::{Batch, Fib, Owner};

/// An address family, for what is swept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Fib {
    /// Names the peer address behind a BGP session's owner id, so that its nexthops are
    /// recorded with it in the datapath (what the next run adopts is swept per peer address).
    pub fn name_owner(&mut self, owner: Owner, address: IpAddr) {
        let _ = (owner, address);
    }

    /// Sweeps the adopted routes learned from `peer` (None: from every peer) in `family`
    /// (None: both): their nexthops through that peer leave, and a route left with none
    /// leaves. Returns how many adopted routes changed or left.
    pub fn sweep_adopted(
        &mut self,
        batch: &mut Batch,
        peer: Option<IpAddr>,
        family: Option<Family>,
    ) -> usize {
        let _ = (batch, peer, family);
        0
    }

    /// Adopted routes still in the FIB.
    pub fn adopted_route_count(&self) -> usize {
        0
    }
}
