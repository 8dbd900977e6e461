//! What the host originates, kept current: configuration, services as their checks pass and
//! fail, redistributed host state as netlink reports it, and the drain over all of them. A
//! change recomputes the effective table and re-exports it to the established peers; the
//! Adj-RIB-Out diff sends only what changed.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use super::Speaker;
use crate::bgp::drain::{DrainEffect, DrainState};
use crate::bgp::peer::PeerCommand;
use crate::bgp::policy::{
    ExportModifiers, Originated, OriginatedRoute, Origins, build_adj_rib_out,
};
use crate::bgp::rib::PeerId;
use crate::bgp::updates_out::updates_from_diff;

/// The speaker's origination: every source, the drain, and what export reads.
#[derive(Debug, Default)]
pub(in crate::bgp) struct HostOrigins {
    pub(in crate::bgp) sources: Origins,
    pub(in crate::bgp) drain: DrainState,
    /// `sources` with the drain applied: the only table export reads.
    pub(in crate::bgp) effective: Originated,
    /// When a drain's withdrawal falls due (Unix seconds).
    deadline: Option<u64>,
}

impl HostOrigins {
    pub(in crate::bgp) fn new(config: Originated, drain: DrainState) -> Self {
        let mut origins = HostOrigins {
            sources: Origins::new(config),
            drain,
            ..Default::default()
        };
        origins.recompute(now_unix());
        origins
    }

    /// Recomputes the effective table; true if it changed.
    fn recompute(&mut self, now_unix: u64) -> bool {
        let drain = &self.drain;
        let effective = self
            .sources
            .effective(|source| match drain.effect(source, now_unix) {
                DrainEffect::None => Some(ExportModifiers::default()),
                DrainEffect::Tag(modifiers) => Some(modifiers),
                DrainEffect::Withdrawn => None,
            });
        self.deadline = drain.next_deadline(now_unix);
        if effective == self.effective {
            return false;
        }
        self.effective = effective;
        true
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl Speaker {
    /// A service's configured prefixes and what it announces now (empty while it is down).
    pub fn set_service(
        &mut self,
        name: &str,
        configured: Vec<IpNet>,
        announced: Vec<OriginatedRoute>,
    ) {
        self.origins
            .sources
            .set_service(name, configured, announced);
        self.origins_changed();
    }

    /// A service removed from the configuration: its routes are withdrawn.
    pub fn remove_service(&mut self, name: &str) {
        self.origins.sources.remove_service(name);
        self.origins_changed();
    }

    /// A redistribution rule's full current set.
    pub fn set_redistributed(&mut self, rule: &str, routes: Vec<OriginatedRoute>) {
        self.origins.sources.set_redistributed(rule, routes);
        self.origins_changed();
    }

    pub fn remove_redistributed(&mut self, rule: &str) {
        self.origins.sources.remove_redistributed(rule);
        self.origins_changed();
    }

    /// Drains or undrains; the caller saves the state first.
    pub fn set_drain(&mut self, drain: DrainState) {
        self.origins.drain = drain;
        self.origins_changed();
    }

    pub fn drain_state(&self) -> &DrainState {
        &self.origins.drain
    }

    /// The routes exported now, after services, redistribution and drain.
    pub fn originated(&self) -> &Originated {
        &self.origins.effective
    }

    /// A drain's withdrawal time has come: withdraw (called on the agent's timer).
    pub(in crate::bgp) fn origins_tick(&mut self) {
        let now = now_unix();
        if self.origins.deadline.is_some_and(|at| at <= now) && self.origins.recompute(now) {
            self.re_export(self.peers.keys().copied().collect::<Vec<_>>());
        }
    }

    /// Reload: the new `[[bgp.originate]]`; true if what is exported changed.
    pub(in crate::bgp) fn set_config_origins(&mut self, config: Originated) -> bool {
        self.origins.sources.set_config(config);
        self.origins.recompute(now_unix())
    }

    fn origins_changed(&mut self) {
        if self.origins.recompute(now_unix()) {
            self.re_export(self.peers.keys().copied().collect::<Vec<_>>());
        }
    }

    /// Sends `peers` (those established) what changed in their Adj-RIB-Out; returns how many
    /// were sent something.
    pub(in crate::bgp) fn re_export(&mut self, peers: impl IntoIterator<Item = PeerId>) -> usize {
        let peers: BTreeSet<PeerId> = peers.into_iter().collect();
        let mut updated = 0;
        for peer in peers {
            let Some(state) = self.peers.get_mut(&peer) else {
                continue;
            };
            let Some(session) = &state.export_session else {
                continue; // not established: it exports when it is
            };
            let target =
                build_adj_rib_out(&self.origins.effective, session, &state.neighbor.export);
            let updates = updates_from_diff(state.adj_out.sync(target));
            if !updates.is_empty() {
                updated += 1;
                let _ = state.handle.commands.send(PeerCommand::Send(updates));
            }
        }
        updated
    }
}
