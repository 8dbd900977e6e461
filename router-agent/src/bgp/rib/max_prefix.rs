//! Max-prefix (RFC 4486): each peer's count of received paths against its import policy's
//! limit, reported once per crossing and re-armed when the count falls back under it.

use super::{PeerId, PeerState, Rib};
use crate::bgp::policy::MaxPrefixExceeded;

impl Rib {
    /// The max-prefix limit of `peer`'s import policy was crossed since the last call: the
    /// speaker warns or tears the session down (Cease, "Maximum Number of Prefixes Reached",
    /// RFC 4486) as the event says. Reported once per crossing; call after each UPDATE.
    pub fn take_max_prefix_exceeded(&mut self, peer: PeerId) -> Option<MaxPrefixExceeded> {
        self.peers.get_mut(&peer)?.max_prefix_event.take()
    }
}

pub(super) fn check_max_prefix(state: &mut PeerState) {
    let Some(max_prefix) = &state.import.max_prefix else {
        return;
    };
    let received = state.received();
    if state.max_prefix_tripped || received <= max_prefix.limit as usize {
        return;
    }
    state.max_prefix_tripped = true;
    let event = MaxPrefixExceeded {
        limit: max_prefix.limit,
        received,
        action: max_prefix.action,
    };
    tracing::warn!(
        peer = %state.info.address,
        remote_as = state.info.remote_as,
        received,
        limit = max_prefix.limit,
        action = ?max_prefix.action,
        "BGP neighbor exceeded its maximum prefix count"
    );
    state.max_prefix_event = Some(event);
}

pub(super) fn rearm_max_prefix(state: &mut PeerState) {
    if let Some(max_prefix) = &state.import.max_prefix
        && state.received() <= max_prefix.limit as usize
    {
        state.max_prefix_tripped = false;
    }
}
