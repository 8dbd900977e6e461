//! `router-agent reload` for BGP: the difference between the running and the new
//! configuration, applied without resetting sessions that need not be.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
};

use super::reload_dynamic::{self, DynamicAction, DynamicPeer, EndCause};
use crate::bgp::{
    config::{BgpSetup, Neighbor, PeerAddress},
    peer::PeerCommand,
    policy::ImportPolicy,
    rib::PeerId,
    southbound::{Resolve, apply_change},
    speaker::Speaker,
};
use crate::fib::{Batch, Fib};

/// What a configuration reload changed (neighbors by address or interface).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReloadSummary {
    pub neighbors_added: Vec<String>,
    pub neighbors_removed: Vec<String>,
    /// Session parameters changed: the session was reset.
    pub neighbors_reset: Vec<String>,
    /// Import policy changed: re-run over the routes the neighbor sent, no reset.
    pub import_reapplied: Vec<String>,
    /// Dynamic peers ended because their range's `limit` was lowered below its sessions
    /// (the newest go).
    pub dynamic_over_limit: Vec<String>,
    /// Established sessions that were sent UPDATEs for export changes.
    pub exports_updated: usize,
}

impl Speaker {
    /// Applies a new configuration without resetting sessions whose session parameters did
    /// not change: import policy is re-run over the routes each neighbor sent (kept before
    /// policy: no route refresh needed), export changes (originated routes, export policy) are
    /// sent as UPDATEs, neighbors added and removed start and stop. A neighbor whose session
    /// parameters changed (remote AS, passive, hold time) is reset; dynamic peers follow their
    /// range the same way (`reload_dynamic.rs`), and end only when they must (they may
    /// connect again under the new range). Changes that need a restart
    /// (AS, router id, port, decision process, unnumbered interfaces) are refused, and then
    /// nothing is applied.
    pub fn reload(
        &mut self,
        new: BgpSetup,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) -> Result<ReloadSummary, String> {
        let mut needs_restart = Vec::new();
        if new.asn != self.setup.asn {
            needs_restart.push("bgp.asn");
        }
        if new.router_id != self.setup.router_id {
            needs_restart.push("bgp.router_id");
        }
        if new.port != self.setup.port {
            needs_restart.push("bgp.port");
        }
        if new.listen != self.setup.listen {
            needs_restart.push("bgp.listen");
        }
        if new.decision != self.setup.decision {
            needs_restart.push("bgp.decision");
        }
        if new.unnumbered_interfaces() != self.setup.unnumbered_interfaces() {
            needs_restart.push("the interfaces of unnumbered neighbors");
        }
        if !needs_restart.is_empty() {
            return Err(format!(
                "changes to {} need a restart; nothing applied",
                needs_restart.join(", ")
            ));
        }

        // Every session the new configuration would start must be startable, checked before
        // anything changes: a neighbor that cannot be applied refuses the whole reload,
        // rather than being dropped while the rest applies.
        for neighbor in new
            .neighbors
            .iter()
            .chain(new.dynamic_neighbors.iter().map(|range| &range.template))
        {
            if let Err(err) = self.session_config(neighbor).validate() {
                return Err(format!(
                    "neighbor {}: {err}; nothing applied",
                    neighbor_label(&new, neighbor)
                ));
            }
        }

        // TCP MD5 and TCP-AO keys and GTSM: on the listener before any session restarts.
        let listener_keys = crate::bgp::auth::listener_keys(&new)
            .map_err(|err| format!("{}: {}", err.key, err.reason))?;
        crate::bgp::tcp_ao::check_kernel(&new)
            .map_err(|err| format!("{}: {}", err.key, err.reason))?;
        let listener_ao_keys = crate::bgp::tcp_ao::listener_keys(&new)
            .map_err(|err| format!("{}: {}", err.key, err.reason))?;
        self.sync_listener(&new, listener_keys, listener_ao_keys);

        let mut summary = ReloadSummary::default();
        let mut re_export = BTreeSet::new();
        // Configured neighbors, matched by address (or interface).
        let configured: Vec<(PeerId, Neighbor)> = self
            .peers
            .iter()
            .filter(|(_, state)| state.dynamic.is_none())
            .map(|(peer, state)| (*peer, state.neighbor.clone()))
            .collect();
        for (peer, old) in &configured {
            let label = old.address.to_string();
            let Some(new_neighbor) = new.neighbors.iter().find(|n| n.address == old.address) else {
                self.remove_peer(
                    *peer,
                    "neighbor removed from the configuration",
                    fib,
                    batch,
                    resolve,
                );
                summary.neighbors_removed.push(label);
                continue;
            };
            if (
                new_neighbor.remote_as,
                new_neighbor.passive,
                new_neighbor.hold_time,
                &new_neighbor.security,
            ) != (old.remote_as, old.passive, old.hold_time, &old.security)
            {
                let address = self.peers[peer].address;
                self.remove_peer(*peer, "session parameters changed", fib, batch, resolve);
                if let Err(err) = self.add_peer(new_neighbor.clone(), None, address, None) {
                    tracing::error!(neighbor = %label, "not restarted: {err:#}");
                }
                summary.neighbors_reset.push(label);
                continue;
            }
            if new_neighbor.bfd != old.bfd {
                self.reload_bfd(*peer, new_neighbor.bfd, fib, batch);
            }
            if new_neighbor.import != old.import {
                self.reapply_import(*peer, &new_neighbor.import, fib, batch, resolve);
                summary.import_reapplied.push(label.clone());
            }
            if new_neighbor.export != old.export {
                self.peer_mut(*peer).neighbor.export = new_neighbor.export.clone();
                re_export.insert(*peer);
            }
        }
        for neighbor in &new.neighbors {
            if configured
                .iter()
                .any(|(_, old)| old.address == neighbor.address)
            {
                continue;
            }
            let address = match neighbor.address {
                PeerAddress::Ip(ip) => Some(SocketAddr::new(ip, self.setup.port)),
                PeerAddress::Interface(_) => None,
            };
            match self.add_peer(neighbor.clone(), None, address, None) {
                Ok(_) => summary.neighbors_added.push(neighbor.address.to_string()),
                Err(err) => tracing::error!(neighbor = %neighbor.address, "not started: {err:#}"),
            }
        }
        // Dynamic peers follow the range that takes their address now.
        self.reload_dynamic(&new, &mut summary, &mut re_export, fib, batch, resolve);
        if self.set_config_origins(new.originated.clone()) {
            re_export.extend(self.peers.keys().copied());
        }
        self.setup = new;
        summary.exports_updated += self.re_export(re_export);
        Ok(summary)
    }

    /// A neighbor's new import policy, run over the routes it sent (no reset).
    fn reapply_import(
        &mut self,
        peer: PeerId,
        import: &ImportPolicy,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        self.peer_mut(peer).neighbor.import = import.clone();
        if self.peers[&peer].info.is_none() {
            return; // not established: the RIB takes the policy when it is
        }
        match self.rib.reapply_import(peer, import) {
            Ok(changes) => {
                for change in changes {
                    apply_change(change, fib, batch, resolve);
                }
            }
            Err(err) => {
                tracing::error!(neighbor = %self.peers[&peer].neighbor.address, "import not re-applied: {err}")
            }
        }
        // A lowered limit acts now, not at the peer's next UPDATE.
        self.enforce_max_prefix(peer);
    }

    /// The dynamic peers under the new ranges: kept (policies re-applied), or ended only when
    /// their session must be negotiated again, no range takes them, or a lowered limit.
    fn reload_dynamic(
        &mut self,
        new: &BgpSetup,
        summary: &mut ReloadSummary,
        re_export: &mut BTreeSet<PeerId>,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        let running: Vec<DynamicPeer> = self
            .peers
            .iter()
            .filter_map(|(peer, state)| {
                let PeerAddress::Ip(address) = state.neighbor.address else {
                    return None;
                };
                Some(DynamicPeer {
                    peer: *peer,
                    index: state.dynamic?,
                    address,
                })
            })
            .collect();
        let addresses: BTreeMap<PeerId, IpAddr> =
            running.iter().map(|p| (p.peer, p.address)).collect();
        let mut over_limit: BTreeMap<usize, Vec<IpAddr>> = BTreeMap::new();
        let plan = reload_dynamic::plan(
            &self.setup.dynamic_neighbors,
            &new.dynamic_neighbors,
            &running,
        );
        for (peer, action) in plan {
            let address = addresses[&peer];
            match action {
                DynamicAction::Keep {
                    index,
                    import_changed,
                    export_changed,
                } => {
                    let range = &new.dynamic_neighbors[index];
                    self.peer_mut(peer).dynamic = Some(index);
                    self.reload_bfd(peer, range.template.bfd, fib, batch);
                    if import_changed {
                        self.reapply_import(peer, &range.template.import, fib, batch, resolve);
                        summary.import_reapplied.push(address.to_string());
                    }
                    if export_changed {
                        self.peer_mut(peer).neighbor.export = range.template.export.clone();
                        re_export.insert(peer);
                    }
                }
                DynamicAction::End(cause @ EndCause::OverLimit { index }) => {
                    // Logged once per range below, not once per peer.
                    let why = cause.reason();
                    let _ = self.peers[&peer]
                        .handle
                        .commands
                        .send(PeerCommand::Stop(Some(why.to_owned())));
                    self.forget_peer(peer, why, fib, batch, resolve);
                    over_limit.entry(index).or_default().push(address);
                    summary.dynamic_over_limit.push(address.to_string());
                }
                DynamicAction::End(cause) => {
                    self.remove_peer(peer, cause.reason(), fib, batch, resolve);
                    summary.neighbors_removed.push(address.to_string());
                }
            }
        }
        for (index, ended) in over_limit {
            let range = &new.dynamic_neighbors[index];
            let ended: Vec<String> = ended.iter().map(IpAddr::to_string).collect();
            tracing::warn!(range = %range.source, limit = range.limit,
                "dynamic_neighbor limit lowered: ended the newest sessions over it: {}",
                ended.join(", "));
        }
    }
}

/// A neighbor as the operator wrote it: its address or interface, or its dynamic range.
fn neighbor_label(setup: &BgpSetup, neighbor: &Neighbor) -> String {
    setup
        .dynamic_neighbors
        .iter()
        .find(|range| std::ptr::eq(&range.template, neighbor))
        .map_or_else(
            || neighbor.address.to_string(),
            |range| format!("range {}", range.source),
        )
}

#[cfg(test)]
#[path = "reload_tests.rs"]
mod tests;
