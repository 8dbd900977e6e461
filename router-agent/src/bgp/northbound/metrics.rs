//! The neighbors as the metrics see them (`metrics/bgp.rs`): `show neighbors`' view, plus
//! what only a counter shows (prefixes accepted, messages, flaps, last NOTIFICATION).

use super::NeighborStatus;
use crate::bgp::{peer::SessionCountersView, speaker::Speaker};

#[derive(Clone, Debug)]
pub struct NeighborMetrics {
    pub status: NeighborStatus,
    /// Received paths import policy accepted (the rest were rejected).
    pub prefixes_accepted: usize,
    pub counters: SessionCountersView,
}

impl Speaker {
    pub fn neighbor_metrics(&self) -> Vec<NeighborMetrics> {
        // `neighbors()` walks the same map in the same order: one entry per peer.
        self.neighbors()
            .into_iter()
            .zip(self.peers.values())
            .map(|(status, peer)| NeighborMetrics {
                prefixes_accepted: peer
                    .info
                    .as_ref()
                    .and_then(|info| self.rib.peer_counts(info.id))
                    .map_or(0, |(_received, accepted)| accepted),
                counters: peer.handle.counters.view(),
                status,
            })
            .collect()
    }
}
