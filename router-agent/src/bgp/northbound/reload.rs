//! `router-agent reload` for BGP: the difference between the running and the new
//! configuration, applied without resetting sessions that need not be.

use std::{collections::BTreeSet, net::SocketAddr};

use crate::bgp::{
    config::{BgpSetup, Neighbor, PeerAddress},
    peer::PeerCommand,
    policy::build_adj_rib_out,
    rib::PeerId,
    southbound::{Resolve, apply_change},
    speaker::Speaker,
    updates_out::updates_from_diff,
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
    /// Established sessions that were sent UPDATEs for export changes.
    pub exports_updated: usize,
}

impl Speaker {
    /// Applies a new configuration without resetting sessions whose session parameters did
    /// not change: import policy is re-run over the routes each neighbor sent (kept before
    /// policy: no route refresh needed), export changes (originated routes, export policy) are
    /// sent as UPDATEs, neighbors added and removed start and stop. A neighbor whose session
    /// parameters changed (remote AS, passive, hold time) is reset; dynamic peers of a changed
    /// template are stopped (they come back under the new one). Changes that need a restart
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

        let mut summary = ReloadSummary::default();
        let originated_changed = new.originated != self.setup.originated;
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
            ) != (old.remote_as, old.passive, old.hold_time)
            {
                let address = self.peers[peer].address;
                self.remove_peer(*peer, "session parameters changed", fib, batch, resolve);
                if let Err(err) = self.add_peer(new_neighbor.clone(), None, address, None) {
                    tracing::error!(neighbor = %label, "not restarted: {err:#}");
                }
                summary.neighbors_reset.push(label);
                continue;
            }
            if new_neighbor.import != old.import {
                self.peer_mut(*peer).neighbor.import = new_neighbor.import.clone();
                if self.peers[peer].info.is_some() {
                    match self.rib.reapply_import(*peer, &new_neighbor.import) {
                        Ok(changes) => {
                            for change in changes {
                                apply_change(change, fib, batch, resolve);
                            }
                        }
                        Err(err) => {
                            tracing::error!(neighbor = %label, "import not re-applied: {err}")
                        }
                    }
                    // A lowered limit acts now, not at the peer's next UPDATE.
                    self.enforce_max_prefix(*peer);
                }
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
        // Dynamic peers follow their template: if it changed, they go and come back.
        let dynamic: Vec<(PeerId, usize)> = self
            .peers
            .iter()
            .filter_map(|(peer, state)| Some((*peer, state.dynamic?)))
            .collect();
        for (peer, index) in dynamic {
            if new.dynamic_neighbors.get(index) != self.setup.dynamic_neighbors.get(index) {
                let label = self.peers[&peer]
                    .address
                    .map_or_else(|| format!("{peer:?}"), |a| a.ip().to_string());
                self.remove_peer(
                    peer,
                    "its dynamic_neighbor template changed",
                    fib,
                    batch,
                    resolve,
                );
                summary.neighbors_removed.push(label);
            }
        }
        self.setup = new;

        if originated_changed {
            re_export.extend(self.peers.keys().copied());
        }
        for peer in re_export {
            let state = self.peers.get_mut(&peer).expect("listed above");
            let Some(session) = &state.export_session else {
                continue; // not established: it exports when it is
            };
            let target = build_adj_rib_out(&self.setup.originated, session, &state.neighbor.export);
            let updates = updates_from_diff(state.adj_out.sync(target));
            if !updates.is_empty() {
                summary.exports_updated += 1;
                let _ = state.handle.commands.send(PeerCommand::Send(updates));
            }
        }
        Ok(summary)
    }
}
