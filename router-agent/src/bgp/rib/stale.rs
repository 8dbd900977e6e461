//! Graceful restart's stale paths (RFC 4724 4.2): the paths of a restarting peer, kept and
//! still used while its session is away and until its End-of-RIB. A path stops being stale
//! when the peer announces or withdraws its prefix again; what is still stale when the
//! speaker sweeps a family is withdrawn.
//!
//! Kept beside the table (a set of prefixes per peer and family) rather than as a flag per
//! path: paths stay 16 bytes, and the sets exist only during a restart. `peer_down` drops
//! a peer's set with its paths, so nothing outlives the peer.

use std::collections::{BTreeSet, HashMap};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{LocRibChange, PeerId, PeerInfo, Rib, RibError};
use crate::bgp::packet::types::Afi;
use crate::bgp::policy::ImportPolicy;

#[derive(Debug, Default)]
pub(super) struct StalePaths {
    peers: HashMap<PeerId, PeerStale>,
}

#[derive(Debug, Default)]
struct PeerStale {
    v4: BTreeSet<Ipv4Net>,
    v6: BTreeSet<Ipv6Net>,
}

impl PeerStale {
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

impl StalePaths {
    /// The peer announced or withdrew `prefix` (truncated): that path is fresh, or gone.
    pub(super) fn refreshed(&mut self, peer: PeerId, prefix: &IpNet) {
        if self.peers.is_empty() {
            return;
        }
        if let Some(stale) = self.peers.get_mut(&peer) {
            match prefix {
                IpNet::V4(net) => stale.v4.remove(net),
                IpNet::V6(net) => stale.v6.remove(net),
            };
        }
    }

    pub(super) fn forget(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }
}

impl Rib {
    /// Marks every path of `peer` in `afi` stale; returns how many there are now.
    pub fn mark_stale(&mut self, peer: PeerId, afi: Afi) -> usize {
        let stale = self.stale.peers.entry(peer).or_default();
        let from_peer = |entry: &super::PrefixEntry| entry.paths().iter().any(|p| p.peer == peer);
        match afi {
            Afi::Ipv4 => stale.v4.extend(
                self.v4
                    .iter()
                    .filter(|(_, entry)| from_peer(entry))
                    .map(|(net, _)| *net),
            ),
            Afi::Ipv6 => stale.v6.extend(
                self.v6
                    .iter()
                    .filter(|(_, entry)| from_peer(entry))
                    .map(|(net, _)| *net),
            ),
        }
        stale.len()
    }

    /// Whether `peer`'s path to `prefix` is stale.
    pub fn is_stale(&self, peer: PeerId, prefix: &IpNet) -> bool {
        self.stale
            .peers
            .get(&peer)
            .is_some_and(|stale| match prefix {
                IpNet::V4(net) => stale.v4.contains(net),
                IpNet::V6(net) => stale.v6.contains(net),
            })
    }

    /// How many of `peer`'s paths are stale.
    pub fn stale_count(&self, peer: PeerId) -> usize {
        self.stale.peers.get(&peer).map_or(0, PeerStale::len)
    }

    /// Withdraws `peer`'s paths in `afi` that are still stale; returns the Loc-RIB changes.
    pub fn sweep_stale(&mut self, peer: PeerId, afi: Afi) -> Vec<LocRibChange> {
        let Some(stale) = self.stale.peers.get_mut(&peer) else {
            return Vec::new();
        };
        let prefixes: Vec<IpNet> = match afi {
            Afi::Ipv4 => std::mem::take(&mut stale.v4)
                .into_iter()
                .map(IpNet::V4)
                .collect(),
            Afi::Ipv6 => std::mem::take(&mut stale.v6)
                .into_iter()
                .map(IpNet::V6)
                .collect(),
        };
        if stale.len() == 0 {
            self.stale.peers.remove(&peer);
        }
        prefixes
            .into_iter()
            .filter_map(|prefix| self.update(peer, prefix, None))
            .collect()
    }

    /// Withdraws every path of `peer` in `afi` (a family it does not preserve).
    pub fn withdraw_family(&mut self, peer: PeerId, afi: Afi) -> Vec<LocRibChange> {
        self.mark_stale(peer, afi);
        self.sweep_stale(peer, afi)
    }

    /// A peer whose paths were kept across its restart is Established again: its session's
    /// facts and import policy are replaced, its paths kept. Returns the changes of a
    /// changed import policy.
    pub fn peer_resume(
        &mut self,
        info: PeerInfo,
        import: ImportPolicy,
    ) -> Result<Vec<LocRibChange>, RibError> {
        let peer = info.id;
        let state = self
            .peers
            .get_mut(&peer)
            .ok_or(RibError::UnknownPeer(peer))?;
        state.info = info;
        if state.import == import {
            return Ok(Vec::new());
        }
        self.reapply_import(peer, &import)
    }
}
