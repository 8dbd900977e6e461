//! BFD's client side (RFC 5882): which BFD sessions the neighbours want, and what a BFD state
//! change does to a neighbour.
//!
//! - **Path failed** (Up to Down, not by the peer's AdminDown): the neighbour's next hops are
//!   marked failed in the FIB at once (one write per group that holds them, whatever the
//!   number of routes: the path a neighbour-table failure takes), then its session is torn
//!   down (Cease / BFD Down) and kept down while BFD is: a session that came back over a path
//!   BFD calls dead would bring traffic back to it. Its routes then go the usual way.
//! - **Back Up**: the marks are lifted and the session starts again at once.

use std::net::{IpAddr, SocketAddr};

use super::Speaker;
use crate::bfd::{
    packet::State,
    runtime::{PeerKey, SessionSpec, StateChange},
};
use crate::bgp::{
    config::PeerAddress,
    fsm::{self, NotificationInfo},
    peer::PeerCommand,
    rib::PeerId,
    southbound,
};
use crate::fib::{Batch, Fib};

impl Speaker {
    /// One BFD session per neighbour with `bfd` whose address is known: configured ones from
    /// the start (not waiting for Established), unnumbered ones once discovered, dynamic ones
    /// while connected.
    pub fn bfd_sessions(&self) -> Vec<SessionSpec> {
        let mut sessions: Vec<SessionSpec> = self
            .peers
            .values()
            .filter_map(|peer| {
                let config = peer.neighbor.bfd?;
                let remote = peer.address?;
                Some(SessionSpec {
                    key: bfd_key(&peer.neighbor.address, remote),
                    config,
                })
            })
            .collect();
        sessions.sort_by(|a, b| a.key.cmp(&b.key));
        sessions.dedup_by(|a, b| a.key == b.key);
        sessions
    }

    /// Acts on a BFD state change of the neighbour at `change.key`.
    pub fn on_bfd_change(&mut self, change: &StateChange, fib: &mut Fib, batch: &mut Batch) {
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, state)| {
                state.neighbor.bfd.is_some()
                    && state.address.is_some_and(|remote| {
                        bfd_key(&state.neighbor.address, remote) == change.key
                    })
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in peers {
            let state = self.peer_mut(peer);
            let gateways: Vec<IpAddr> = state.next_hops.iter().copied().collect();
            if change.path_failed {
                // Forwarding first, in this batch; the session's end follows.
                southbound::set_gateways_failed(fib, batch, peer, &gateways, true);
                let reason = format!("BFD down: {}", change.diag);
                tracing::warn!(neighbor = %state.neighbor.address, next_hops = gateways.len(),
                    "{reason}: next hops failed, session torn down until BFD is up");
                state.last_error = Some(reason.clone());
                state.bfd_held = Some(reason.clone());
                if state.hold_down.is_none() {
                    let _ = state.handle.commands.send(PeerCommand::HoldDown {
                        notification: NotificationInfo::cease(
                            fsm::CeaseSubcode::BfdDown,
                            Some(&reason),
                        ),
                        restart_after: None,
                    });
                }
            } else if change.to == State::Up && state.bfd_held.is_some() {
                state.bfd_held = None;
                southbound::set_gateways_failed(fib, batch, peer, &gateways, false);
                tracing::info!(neighbor = %state.neighbor.address, "BFD up: session restarts");
                if state.hold_down.is_none() {
                    let _ = state.handle.commands.send(PeerCommand::Clear);
                }
            }
        }
    }
}

impl Speaker {
    /// A reload's new `bfd` for a running peer (the BFD sessions follow from
    /// [`Speaker::bfd_sessions`]); without BFD now, a session BFD held down starts again.
    pub(in crate::bgp) fn reload_bfd(
        &mut self,
        peer: PeerId,
        bfd: Option<crate::bfd::session::SessionConfig>,
        fib: &mut Fib,
        batch: &mut Batch,
    ) {
        let state = self.peer_mut(peer);
        state.neighbor.bfd = bfd;
        if bfd.is_none() && state.bfd_held.is_some() {
            state.bfd_held = None;
            let gateways: Vec<IpAddr> = state.next_hops.iter().copied().collect();
            southbound::set_gateways_failed(fib, batch, peer, &gateways, false);
            if state.hold_down.is_none() {
                let _ = state.handle.commands.send(PeerCommand::Clear);
            }
        }
    }
}

impl Speaker {
    /// Why a session went down, as the operator reads it: a session BFD holds down says so
    /// (the session's own reason would be a hold-down "until cleared by the operator").
    pub(in crate::bgp) fn down_reason(&self, peer: PeerId, reason: String) -> String {
        match &self.peers[&peer].bfd_held {
            Some(why) => format!("{why} (held down until BFD is up)"),
            None => reason,
        }
    }
}

/// The BFD peer of a neighbour at `remote`: link-local peers need their interface.
fn bfd_key(address: &PeerAddress, remote: SocketAddr) -> PeerKey {
    let interface = match (address, remote) {
        (PeerAddress::Interface(name), _) => Some(name.clone()),
        (PeerAddress::Ip(_), SocketAddr::V6(v6)) if v6.scope_id() != 0 => {
            crate::netlink::ifname_by_index(v6.scope_id())
        }
        _ => None,
    };
    PeerKey {
        address: remote.ip(),
        interface,
    }
}

#[cfg(test)]
#[path = "bfd_tests.rs"]
mod tests;
