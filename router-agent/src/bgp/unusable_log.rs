//! Unusable next hops are said once per neighbor and cause, not once per prefix: a peer
//! announcing a full table through its own broadcast address must not write a million lines.

use std::collections::HashSet;

use super::rib::PeerId;
use crate::next_hop_check::Unusable;

/// The (neighbor, cause) pairs already logged this session.
#[derive(Debug, Default)]
pub struct UnusableLog {
    said: HashSet<(PeerId, Unusable)>,
}

impl UnusableLog {
    /// Whether this is the first time `peer` sent a next hop unusable for `why` (then log it).
    pub fn first(&mut self, peer: PeerId, why: Unusable) -> bool {
        self.said.insert((peer, why))
    }

    /// The session ended: a new one says its causes again.
    pub fn forget(&mut self, peer: PeerId) {
        self.said.retain(|(said_by, _)| *said_by != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_peer_and_cause() {
        let own = Unusable::OwnAddress("10.99.2.2".parse().unwrap());
        let other_own = Unusable::OwnAddress("10.99.3.2".parse().unwrap());
        let mut log = UnusableLog::default();
        let (a, b) = (PeerId(1), PeerId(2));
        assert!(log.first(a, own));
        // Every further prefix through the same next hop: silent.
        for _ in 0..1000 {
            assert!(!log.first(a, own));
        }
        // Another cause, another peer: said once each.
        assert!(log.first(a, other_own));
        assert!(log.first(a, Unusable::NotNeighborAddress));
        assert!(log.first(b, own));
        assert!(!log.first(b, own));
        // A new session of `a` says it again; `b`'s stays said.
        log.forget(a);
        assert!(log.first(a, own));
        assert!(!log.first(b, own));
    }
}
