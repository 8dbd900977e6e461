//! The neighbors' events: sessions established and down, UPDATEs into the RIB (next hops
//! judged first), max-prefix enforcement; and the host's addresses changing under the
//! next hops.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    time::Instant,
};

use ipnet::IpNet;

use super::{HoldDown, Speaker};
use crate::bgp::northbound::NegotiatedStatus;
use crate::bgp::{
    config::PeerAddress,
    fsm::{self, NotificationInfo, State},
    next_hop_out::{ExportNextHops, SessionEnds},
    packet::{
        Update,
        types::{Afi, Safi},
    },
    peer::{PeerCommand, PeerEvent, SessionEvent},
    policy::{ExportSession, MaxPrefixAction, build_adj_rib_out},
    rib::{NextHop, PathSpec, PeerId, PeerInfo, Rib},
    southbound::{self, Resolve, apply_change, unusable},
    updates_out::updates_from_diff,
};
use crate::fib::{Batch, Fib};
use crate::next_hop_check::Unusable;

impl Speaker {
    /// Handles one session event; FIB changes go into `batch`. `resolve` gives the egress
    /// interface of a directly connected next hop (None: not usable for forwarding);
    /// `link_local` our link-local address on an interface (the next hop we send on it).
    pub fn on_event(
        &mut self,
        event: PeerEvent,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
        link_local: &dyn Fn(u32) -> Option<Ipv6Addr>,
    ) {
        let (peer, event) = match event {
            PeerEvent::Discovered { interface, address } => {
                self.discovered(&interface, address);
                return;
            }
            PeerEvent::Accepted { stream, remote } => {
                self.accept(stream, remote);
                return;
            }
            PeerEvent::Session { peer, event } => (peer, event),
        };
        if !self.peers.contains_key(&peer) {
            tracing::debug!(?peer, "event of a removed peer ignored");
            return;
        }
        match event {
            SessionEvent::State { state } => {
                let peer = self.peer_mut(peer);
                peer.state = state;
                if state != State::Idle {
                    // Restarted: the hold-down is over.
                    peer.hold_down = None;
                }
            }
            SessionEvent::Established {
                negotiated,
                local,
                remote,
            } => self.established(
                peer, negotiated, local, remote, fib, batch, resolve, link_local,
            ),
            // The credit goes back once the UPDATE is applied (end of this arm).
            SessionEvent::Update { update, error, .. } => {
                self.update(peer, *update, error, fib, batch, resolve)
            }
            SessionEvent::RouteRefresh { afi } => {
                // RFC 2918: re-send the Adj-RIB-Out of the family asked for.
                let state = self.peer_mut(peer);
                let mut diff = state.adj_out.refresh();
                diff.announce.retain(|(prefix, _)| match afi {
                    Afi::Ipv4 => prefix.addr().is_ipv4(),
                    Afi::Ipv6 => prefix.addr().is_ipv6(),
                });
                diff.withdraw.clear();
                let updates = updates_from_diff(diff);
                let _ = state.handle.commands.send(PeerCommand::Send(updates));
            }
            SessionEvent::Down { reason, cause } => {
                let reason = self.down_reason(peer, reason);
                self.session_down(peer, reason, cause, fib, batch, resolve)
            }
            SessionEvent::Closed => {
                // A dynamic peer's session ended (its Down came first); a configured one's
                // task ends only when the speaker stops.
                if self.peers[&peer].dynamic.is_some() {
                    self.dynamic_session_closed(peer, fib, batch, resolve);
                }
            }
        }
    }

    /// The session is down: its routes leave the RIB and the FIB.
    pub(in crate::bgp) fn down(
        &mut self,
        peer: PeerId,
        reason: String,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        let state = self.peer_mut(peer);
        // Fast failover: the neighbor's next hops leave every ECMP group now (one write per
        // group); the per-prefix withdrawals below follow.
        let failed: Vec<IpAddr> = std::mem::take(&mut state.next_hops).into_iter().collect();
        southbound::set_gateways_failed(fib, batch, peer, &failed, true);
        state.last_error = Some(reason);
        state.established_at = None;
        state.negotiated = None;
        // Hard: nothing is kept (the RIB drops the stale marks with the paths).
        state.restart = None;
        state.graceful_restart = None;
        self.unusable_log.forget(peer);
        let state = self.peer_mut(peer);
        state.adj_out.clear();
        state.export_session = None;
        if state.info.take().is_some() {
            let address = state.address;
            let mut changes = Vec::new();
            self.rib.peer_down_each(peer, |change| changes.push(change));
            tracing::info!(
                peer = ?address,
                prefixes = changes.len(),
                "BGP neighbor down: its routes withdrawn"
            );
            for change in changes {
                apply_change(change, fib, batch, resolve);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(in crate::bgp) fn established(
        &mut self,
        peer: PeerId,
        negotiated: fsm::Negotiated,
        local: SocketAddr,
        remote: SocketAddr,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
        link_local: &dyn Fn(u32) -> Option<Ipv6Addr>,
    ) {
        let port = self.setup.port;
        let state = self.peers.get_mut(&peer).expect("caller checked");
        if state.dynamic.is_none() && matches!(state.neighbor.address, PeerAddress::Interface(_)) {
            state.address = Some(SocketAddr::new(remote.ip(), port));
        }
        let ifindex = match remote {
            // A link-local session knows its interface (unnumbered, or fe80:: neighbors).
            SocketAddr::V6(v6) if v6.scope_id() != 0 => Some(v6.scope_id()),
            _ => resolve(remote.ip()).ok(),
        };
        let own_next_hops_only = state
            .dynamic
            .is_some_and(|index| !self.setup.dynamic_neighbors[index].third_party_next_hop);
        let info = PeerInfo {
            id: peer,
            address: remote.ip(),
            router_id: negotiated.peer_router_id,
            remote_as: negotiated.peer_as,
            local_as: self.setup.asn,
            ebgp: negotiated.peer_as != self.setup.asn,
            // The session's interface: where the neighbor's link-local next hops (RFC 2545)
            // are.
            ifindex,
            own_next_hops_only,
        };
        // Before any of its routes: the FIB records the peer address behind the owner id.
        southbound::name_owner(fib, peer, remote.ip());
        let restarting = state.restart.is_some();
        let import = state.neighbor.import.clone();
        let registered = if restarting {
            // Graceful restart: its paths were kept; the session's facts are new.
            self.rib.peer_resume(info.clone(), import)
        } else {
            self.rib.peer_up(info.clone(), import).map(|()| Vec::new())
        };
        match registered {
            Ok(changes) => {
                for change in changes {
                    apply_change(change, fib, batch, resolve);
                }
            }
            Err(err) => {
                tracing::error!(peer = %remote, "RIB: {err}");
                return;
            }
        }
        if restarting {
            self.resume_restart(
                peer,
                negotiated.graceful_restart.as_ref(),
                fib,
                batch,
                resolve,
            );
        }
        let state = self.peers.get_mut(&peer).expect("caller checked");
        state.graceful_restart = negotiated.graceful_restart.clone();
        state.info = Some(info.clone());
        state.established_at = Some(Instant::now());
        state.negotiated = Some(NegotiatedStatus::from(&negotiated));
        state.families = negotiated.families.clone();
        let next_hops = ExportNextHops::choose(&SessionEnds {
            local: local.ip(),
            shared_link_local: info.ifindex.and_then(link_local),
            ipv4_over_ipv6: negotiated.extended_next_hop.contains(&(
                Afi::Ipv4,
                Safi::Unicast,
                Afi::Ipv6,
            )),
        });
        // Said only when it leaves out a route we originate.
        if let Some(unsent) = next_hops.unsent()
            && self
                .origins
                .effective
                .iter()
                .any(|route| unsent.covers(&route.prefix()))
        {
            tracing::info!(peer = %remote.ip(), "{unsent}");
        }
        let session = ExportSession {
            local_as: self.setup.asn,
            ebgp: info.ebgp,
            ipv4_next_hop: next_hops.ipv4,
            ipv6_next_hop: next_hops.ipv6,
            peer_address: remote.ip(),
        };
        let target = build_adj_rib_out(&self.origins.effective, &session, &state.neighbor.export);
        state.export_session = Some(session);
        let mut updates = updates_from_diff(state.adj_out.sync(target));
        let families: Vec<Afi> = negotiated
            .families
            .iter()
            .filter(|(_, safi)| *safi == Safi::Unicast)
            .map(|(afi, _)| *afi)
            .collect();
        // Held after a planned restart until the services have a verdict (`origins.rs`).
        match self.origins.end_of_rib_hold.as_mut() {
            Some(hold) => {
                hold.waiting.insert(peer, families);
            }
            None => updates.extend(families.into_iter().map(Update::end_of_rib)),
        }
        let _ = state.handle.commands.send(PeerCommand::Send(updates));
    }

    pub(in crate::bgp) fn update(
        &mut self,
        peer: PeerId,
        update: Update,
        error: Option<crate::bgp::packet::UpdateError>,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        if let Some((afi, _unicast)) = update.end_of_rib_family() {
            self.end_of_rib(peer, afi, fib, batch, resolve);
            return;
        }
        let treat_as_withdraw = matches!(
            error,
            Some(crate::bgp::packet::UpdateError::TreatAsWithdraw { .. })
        );
        let mut changes = Vec::new();
        for prefix in update.withdrawals() {
            changes.extend(self.rib.update(peer, prefix, None));
        }
        let attrs = self.rib.intern(update.attributes.clone());
        let v4_next_hop = update.attributes.next_hop.map(|nh| NextHop {
            address: IpAddr::V4(nh),
            link_local: None,
        });
        // Next hops this session uses: failed together if it goes down, usable again now.
        let mut seen: Vec<IpAddr> = v4_next_hop.iter().map(|nh| nh.address).collect();
        if let Some(reach) = &update.mp_reach {
            seen.push(reach.next_hop);
            seen.extend(reach.link_local_next_hop.map(IpAddr::V6));
        }
        self.peer_mut(peer).next_hops.extend(seen.iter().copied());
        southbound::set_gateways_failed(fib, batch, peer, &seen, false);
        // Judged before the routes go in, so they are ranked right away.
        for address in &seen {
            changes.extend(
                self.rib
                    .set_next_hop_unusable(*address, unusable(resolve, *address)),
            );
        }
        let announced = [
            v4_next_hop.filter(|_| !update.nlri.is_empty()),
            update
                .mp_reach
                .as_ref()
                .filter(|reach| !reach.nlri.is_empty())
                .map(|reach| NextHop {
                    address: reach.next_hop,
                    link_local: reach.link_local_next_hop,
                }),
        ];
        for next_hop in announced.into_iter().flatten() {
            self.log_if_unusable(peer, next_hop);
        }
        let mut announce = |prefix: IpNet, next_hop: Option<NextHop>, rib: &mut Rib| {
            let path = match next_hop {
                Some(next_hop) if !treat_as_withdraw => Some(PathSpec {
                    attrs: attrs.clone(),
                    next_hop,
                }),
                _ => None,
            };
            changes.extend(rib.update(peer, prefix, path));
        };
        for prefix in &update.nlri {
            announce(IpNet::V4(*prefix), v4_next_hop, &mut self.rib);
        }
        if let Some(reach) = &update.mp_reach {
            let next_hop = NextHop {
                address: reach.next_hop,
                link_local: reach.link_local_next_hop,
            };
            for prefix in &reach.nlri {
                announce(*prefix, Some(next_hop), &mut self.rib);
            }
        }
        for change in changes {
            apply_change(change, fib, batch, resolve);
        }
        self.enforce_max_prefix(peer);
    }

    /// Says once per neighbor and cause that its routes through `next_hop` are not used.
    pub(in crate::bgp) fn log_if_unusable(&mut self, peer: PeerId, next_hop: NextHop) {
        let Some(info) = self.rib.peer(peer) else {
            return;
        };
        // What the RIB bars them for (see NextHopTable::state_of): the address forwarded to.
        let forwarded_to = next_hop.link_local.map_or(next_hop.address, IpAddr::V6);
        let why = self.rib.next_hop_state(forwarded_to).unusable.or_else(|| {
            (info.own_next_hops_only && !info.is_own_next_hop(&next_hop))
                .then_some(Unusable::NotNeighborAddress)
        });
        if let Some(why) = why
            && self.unusable_log.first(peer, why)
        {
            let state = &self.peers[&peer];
            tracing::warn!(
                peer = %info.address, neighbor = %state.neighbor.address, next_hop = %forwarded_to,
                "{why}: routes through it are kept but never used (said once per neighbor and \
                 cause; `show routes` lists them)"
            );
        }
    }

    /// The host's addresses changed: a next hop may have become (or stopped being) one of
    /// its own addresses or a subnet's broadcast address. Every next hop in use is judged
    /// again and the prefixes through those that changed are re-decided.
    pub fn host_addresses_changed(
        &mut self,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        for address in self.rib.next_hop_addresses() {
            let now = unusable(resolve, address);
            if self.rib.next_hop_state(address).unusable == now {
                continue;
            }
            let changes = self.rib.set_next_hop_unusable(address, now);
            match now {
                Some(why) => tracing::warn!(next_hop = %address, prefixes = changes.len(),
                    "{why}: BGP routes through it are no longer used"),
                None => tracing::info!(next_hop = %address, prefixes = changes.len(),
                    "BGP next hop usable again"),
            }
            for change in changes {
                apply_change(change, fib, batch, resolve);
            }
        }
    }

    /// Acts on a crossed max-prefix limit the RIB reported (after an UPDATE, or a reload
    /// that lowered the limit): warn, or tear down and hold the session down.
    pub(in crate::bgp) fn enforce_max_prefix(&mut self, peer: PeerId) {
        if let Some(exceeded) = self.rib.take_max_prefix_exceeded(peer) {
            let state = self.peers.get_mut(&peer).expect("caller checked");
            tracing::warn!(peer = %state.neighbor.address, address = ?state.address, limit = exceeded.limit,
                received = exceeded.received, "maximum prefixes exceeded");
            if let MaxPrefixAction::Teardown { restart_after } = exceeded.action {
                let cease =
                    NotificationInfo::cease(fsm::CeaseSubcode::MaximumPrefixesReached, None);
                state.hold_down = Some(HoldDown {
                    reason: format!(
                        "maximum prefixes: {} received, limit {}",
                        exceeded.received, exceeded.limit
                    ),
                    ends: restart_after.map(|after| Instant::now() + after),
                });
                let _ = state.handle.commands.send(PeerCommand::HoldDown {
                    notification: cease,
                    restart_after,
                });
            }
        }
    }
}
