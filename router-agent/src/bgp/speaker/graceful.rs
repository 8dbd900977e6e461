//! Graceful restart in the speaker: carries out `graceful_restart::helper`'s verdicts on the
//! RIB (stale paths, `rib/stale.rs`) and the FIB (through `southbound.rs`), and ends the
//! sessions of a planned restart the GR way.
//!
//! A restarting peer keeps its `PeerId` (and so its FIB owner, `Owner::Bgp(id)`): a
//! configured neighbor's task reconnects under it, and a dynamic peer whose task ended is
//! kept (`session_ended`) until a connection from its address respawns a task under the same
//! id (`listener.rs`), or its timers run out and it is forgotten.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::net::TcpStream;

use super::Speaker;
use crate::bgp::{
    fsm::DownReason,
    graceful_restart::{
        NegotiatedGracefulRestart,
        helper::{Expiry, PeerRestart, Phase},
        session::retains_routes,
    },
    packet::types::Afi,
    peer::{self, PeerCommand, PeerSpec},
    rib::{LocRibChange, PeerId},
    southbound::{self, Resolve, apply_change},
};
use crate::fib::{Batch, Fib};

const FAMILIES: [Afi; 2] = [Afi::Ipv4, Afi::Ipv6];

impl Speaker {
    /// A session went down: gracefully (its routes kept, stale) when it negotiated graceful
    /// restart and ended in a way that keeps them, else as usual.
    pub(in crate::bgp) fn session_down(
        &mut self,
        peer: PeerId,
        reason: String,
        cause: DownReason,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        let stopping = self.graceful_stopping.load(Ordering::Relaxed);
        let state = self.peer_mut(peer);
        if stopping {
            // Our planned restart: what the peer sent stays in the FIB for the next run.
            state.last_error = Some(reason);
            return;
        }
        let ours = matches!(
            cause,
            DownReason::ManualStop | DownReason::AutomaticStop | DownReason::HeldDown { .. }
        );
        if !ours
            && matches!(
                state.restart,
                Some(PeerRestart {
                    phase: Phase::Restarting { .. },
                    ..
                })
            )
        {
            // A reconnection attempt that never got Established: the restart timer runs on.
            state.last_error = Some(reason);
            return;
        }
        let restart = match (&state.graceful_restart, &state.info) {
            (Some(negotiated), Some(_)) if retains_routes(&cause, negotiated) => {
                PeerRestart::begin(Instant::now(), negotiated)
            }
            _ => None,
        };
        match restart {
            Some(restart) => self.keep_stale(peer, restart, reason, fib, batch, resolve),
            None => self.down(peer, reason, fib, batch, resolve),
        }
    }

    /// The helper's side of a graceful down: the preserved families' routes stay, stale and
    /// forwarding (the peer's gateways are not failed); the others are withdrawn now.
    fn keep_stale(
        &mut self,
        peer: PeerId,
        restart: PeerRestart,
        reason: String,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        self.unusable_log.forget(peer);
        let state = self.peer_mut(peer);
        state.last_error = Some(reason);
        state.established_at = None;
        state.negotiated = None;
        state.adj_out.clear();
        state.export_session = None;
        let address = state.address;
        let mut changes = Vec::new();
        let mut stale = 0;
        for afi in FAMILIES {
            if restart.families.contains(&afi) {
                stale = self.rib.mark_stale(peer, afi);
            } else {
                changes.extend(self.rib.withdraw_family(peer, afi));
            }
        }
        tracing::info!(peer = ?address, stale, withdrawn = changes.len(),
            restart_time = restart.restart_time.as_secs(), families = ?restart.families,
            "BGP neighbor down, graceful restart: its routes kept (stale) for its restart time");
        self.apply(changes, fib, batch, resolve);
        self.peer_mut(peer).restart = Some(restart);
    }

    /// The session of a restarting peer is Established again: its stale routes of families
    /// it did not keep forwarding go now; the others wait for its End-of-RIB.
    pub(in crate::bgp) fn resume_restart(
        &mut self,
        peer: PeerId,
        negotiated: Option<&NegotiatedGracefulRestart>,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        let stale_routes_time = self.setup.graceful_restart.stale_routes_time;
        let state = self.peer_mut(peer);
        let Some(restart) = state.restart.as_mut() else {
            return;
        };
        let sweep = restart.resumed(Instant::now(), negotiated, stale_routes_time);
        let over = restart.is_over();
        if over {
            state.restart = None;
        }
        let address = state.address;
        let mut changes = Vec::new();
        for afi in sweep {
            changes.extend(self.rib.sweep_stale(peer, afi));
            tracing::info!(peer = ?address, ?afi,
                "graceful restart: the peer did not keep its forwarding state for this family \
                 (no F bit): its stale routes withdrawn");
        }
        self.apply(changes, fib, batch, resolve);
    }

    /// An End-of-RIB from `peer` for `afi`: the routes adopted from the previous run through
    /// that peer go, and so do the peer's own stale routes it did not announce again.
    pub(in crate::bgp) fn end_of_rib(
        &mut self,
        peer: PeerId,
        afi: Afi,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        let state = self.peer_mut(peer);
        let address = state.info.as_ref().map(|info| info.address);
        if let Some(address) = address {
            let swept = southbound::end_of_rib(fib, batch, address, afi);
            if swept > 0 {
                tracing::info!(peer = %address, ?afi, swept,
                    "End-of-RIB: routes adopted from the previous run swept");
            }
        }
        let state = self.peer_mut(peer);
        let Some(restart) = state.restart.as_mut() else {
            return;
        };
        if !restart.end_of_rib(afi) {
            return;
        }
        if restart.is_over() {
            state.restart = None;
        }
        let changes = self.rib.sweep_stale(peer, afi);
        tracing::info!(peer = ?address, ?afi, withdrawn = changes.len(),
            "graceful restart: End-of-RIB, stale routes not announced again swept");
        self.apply(changes, fib, batch, resolve);
    }

    /// The helper's timers (restart time, stale routes time).
    pub(in crate::bgp) fn graceful_restart_tick(
        &mut self,
        now: Instant,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        let expired: Vec<(PeerId, Expiry)> = self
            .peers
            .iter()
            .filter_map(|(id, state)| Some((*id, state.restart.as_ref()?.expired(now)?)))
            .collect();
        for (peer, expiry) in expired {
            let state = self.peer_mut(peer);
            let address = state.address;
            match expiry {
                Expiry::RestartTime => {
                    let restart_time = state.restart.take().map(|r| r.restart_time.as_secs());
                    tracing::warn!(peer = ?address, ?restart_time,
                        "graceful restart: the session did not come back within the peer's \
                         restart time: its routes withdrawn");
                    let why = "graceful restart: restart time expired";
                    if state.session_ended {
                        self.forget_peer(peer, why, fib, batch, resolve);
                    } else {
                        self.down(peer, why.to_owned(), fib, batch, resolve);
                    }
                }
                Expiry::StaleRoutesTime(families) => {
                    state.restart = None;
                    let mut changes = Vec::new();
                    for afi in &families {
                        changes.extend(self.rib.sweep_stale(peer, *afi));
                    }
                    tracing::warn!(peer = ?address, ?families, withdrawn = changes.len(),
                        "graceful restart: no End-of-RIB within stale_routes_time: stale \
                         routes swept");
                    self.apply(changes, fib, batch, resolve);
                }
            }
        }
    }

    /// A dynamic peer's session task ended. Kept (its routes stale) while it restarts;
    /// forgotten otherwise.
    pub(in crate::bgp) fn dynamic_session_closed(
        &mut self,
        peer: PeerId,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        let stopping = self.graceful_stopping.load(Ordering::Relaxed);
        let state = self.peer_mut(peer);
        if state.restart.is_some() || stopping {
            state.session_ended = true;
            return;
        }
        let address = state.address;
        self.forget_peer(peer, "session ended", fib, batch, resolve);
        tracing::info!(?address, "dynamic BGP peer removed");
    }

    /// A connection from a restarting dynamic peer whose task ended: a new task under the
    /// same id, so that its stale routes are refreshed and swept as a configured neighbor's.
    pub(in crate::bgp) fn respawn_dynamic(&mut self, peer: PeerId, stream: TcpStream) {
        let state = &self.peers[&peer];
        let spec = PeerSpec {
            peer,
            remote: state.address,
            config: self.session_config(&state.neighbor),
            security: state.neighbor.security.clone(),
            restart: crate::bgp::fsm::Restart::Never,
            incoming: Some(stream),
        };
        match peer::spawn(spec, self.events.clone()) {
            Ok(handle) => {
                let state = self.peer_mut(peer);
                state.handle = handle;
                state.session_ended = false;
                tracing::info!(address = ?state.address, ?peer, "restarting dynamic BGP peer is back");
            }
            Err(err) => tracing::error!(?peer, "dynamic BGP peer not restarted: {err:#}"),
        }
    }

    /// A planned restart of ours: every session ends the way graceful restart expects.
    pub(in crate::bgp) fn graceful_stop_sessions(&self, message: &str) {
        self.graceful_stopping.store(true, Ordering::Relaxed);
        for state in self.peers.values() {
            let _ = state
                .handle
                .commands
                .send(PeerCommand::GracefulStop(message.to_owned()));
        }
    }

    fn apply(
        &mut self,
        changes: Vec<LocRibChange>,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        for change in changes {
            apply_change(change, fib, batch, resolve);
        }
    }
}

#[cfg(test)]
mod tests;
