//! What the host originates, kept current: configuration, services as their checks pass and
//! fail, redistributed host state as netlink reports it, and the drain over all of them. A
//! change recomputes the effective table and re-exports it to the established peers; the
//! Adj-RIB-Out diff sends only what changed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use super::Speaker;
use crate::bgp::drain::{DrainEffect, DrainState};
use crate::bgp::packet::{types::Afi, update::Update};
use crate::bgp::peer::PeerCommand;
use crate::bgp::policy::{
    ExportModifiers, OriginSource, Originated, OriginatedRoute, Origins, build_adj_rib_out,
    build_adj_rib_out_for,
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
    /// After a planned restart: End-of-RIB waits for the services' first verdicts.
    pub(in crate::bgp) end_of_rib_hold: Option<EndOfRibHold>,
}

/// End-of-RIB held back: the peers (and families) owed one, and until when at most. A
/// helper keeps our routes from before the restart until our End-of-RIB (RFC 4724): sent
/// before a service has been checked, it would withdraw the service's prefixes for rise x
/// interval.
#[derive(Debug)]
pub(in crate::bgp) struct EndOfRibHold {
    until: Instant,
    pub(in crate::bgp) waiting: BTreeMap<PeerId, Vec<Afi>>,
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
            .effective(|source| drain_modifiers(drain, source, now_unix));
        self.deadline = drain.next_deadline(now_unix);
        if effective == self.effective {
            return false;
        }
        self.effective = effective;
        true
    }

    /// Recomputes `prefixes` only; returns those whose effective route changed.
    fn recompute_prefixes(&mut self, prefixes: BTreeSet<IpNet>, now_unix: u64) -> BTreeSet<IpNet> {
        let drain = &self.drain;
        let mut changed = BTreeSet::new();
        for prefix in prefixes {
            let route = self
                .sources
                .effective_of(&prefix, |source| drain_modifiers(drain, source, now_unix));
            if route.as_ref() == self.effective.get(&prefix) {
                continue;
            }
            match route {
                Some(route) => self.effective.insert(route),
                None => self.effective.remove(&prefix),
            };
            changed.insert(prefix);
        }
        changed
    }
}

/// What the drain adds to a route of `source`; None: left out (withdrawal due).
fn drain_modifiers(
    drain: &DrainState,
    source: &OriginSource,
    now_unix: u64,
) -> Option<ExportModifiers> {
    match drain.effect(source, now_unix) {
        DrainEffect::None => Some(ExportModifiers::default()),
        DrainEffect::Tag(modifiers) => Some(modifiers),
        DrainEffect::Withdrawn => None,
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

    /// A redistribution rule's full current set. Only the prefixes that changed are
    /// recomputed and re-exported: a flood of workload routes costs per route, not per
    /// route times the table.
    pub fn set_redistributed(&mut self, rule: &str, routes: Vec<OriginatedRoute>) {
        let changed = self.origins.sources.set_redistributed(rule, routes);
        self.prefixes_changed(changed);
    }

    pub fn remove_redistributed(&mut self, rule: &str) {
        let changed = self.origins.sources.remove_redistributed(rule);
        self.prefixes_changed(changed);
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

    /// Holds End-of-RIB back (planned restart with services) until
    /// [`release_end_of_rib`](Self::release_end_of_rib), or `at_most` from now.
    pub fn hold_end_of_rib(&mut self, at_most: Duration) {
        self.origins.end_of_rib_hold = Some(EndOfRibHold {
            until: Instant::now() + at_most,
            waiting: BTreeMap::new(),
        });
    }

    /// Sends the End-of-RIBs held back to the peers still established.
    pub fn release_end_of_rib(&mut self) {
        let Some(hold) = self.origins.end_of_rib_hold.take() else {
            return;
        };
        for (peer, families) in hold.waiting {
            let Some(state) = self.peers.get(&peer) else {
                continue;
            };
            if state.export_session.is_some() && !families.is_empty() {
                let updates = families.into_iter().map(Update::end_of_rib).collect();
                let _ = state.handle.commands.send(PeerCommand::Send(updates));
            }
        }
    }

    /// A drain's withdrawal time has come: withdraw; an End-of-RIB hold has run out: send
    /// them (called on the agent's timer).
    pub(in crate::bgp) fn origins_tick(&mut self, now: Instant) {
        if self
            .origins
            .end_of_rib_hold
            .as_ref()
            .is_some_and(|hold| hold.until <= now)
        {
            tracing::warn!(
                "services still unchecked after the restart: End-of-RIB sent without them"
            );
            self.release_end_of_rib();
        }
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

    fn prefixes_changed(&mut self, prefixes: BTreeSet<IpNet>) {
        let changed = self.origins.recompute_prefixes(prefixes, now_unix());
        if changed.is_empty() {
            return;
        }
        for state in self.peers.values_mut() {
            let Some(session) = &state.export_session else {
                continue;
            };
            let target = build_adj_rib_out_for(
                &self.origins.effective,
                &changed,
                session,
                &state.neighbor.export,
            );
            let updates = updates_from_diff(state.adj_out.sync_prefixes(&changed, target));
            if !updates.is_empty() {
                let _ = state.handle.commands.send(PeerCommand::Send(updates));
            }
        }
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
