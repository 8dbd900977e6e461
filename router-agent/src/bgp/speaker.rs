//! The speaker: neighbors' sessions in, Loc-RIB changes out to the FIB, originated routes out
//! to the neighbors. It runs inside the agent's event loop, which owns the FIB; sessions run
//! as tasks (`peer.rs`) and talk to it over channels.
//!
//! ```text
//!   peer tasks ──PeerEvent──> Speaker ──> import policy ─> Rib ──LocRibChange──> Fib
//!   Originated ──> build_adj_rib_out (export policy) ──> AdjRibOut ──Update──> peer tasks
//! ```
//!
//! Nothing learned from a neighbor reaches the export side: `build_adj_rib_out` only reads
//! originated routes (see `policy.rs`).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6},
    sync::Arc,
    time::Instant,
};

use anyhow::{Context, Result};
use ipnet::IpNet;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

use super::southbound::{self, Resolve, apply_change, unusable};
use super::unusable_log::UnusableLog;
use super::{
    config::{BgpSetup, DynamicSource, Neighbor, PeerAddress},
    discovery,
    fsm::{self, NotificationInfo, Restart, SessionConfig, State},
    next_hop_out::{ExportNextHops, SessionEnds},
    packet::{
        Update,
        types::{Afi, MpReach, MpUnreach, PathAttributes, Safi},
    },
    peer::{self, PeerCommand, PeerEvent, PeerHandle, PeerSpec, SessionEvent},
    policy::{AdjRibOut, ExportDiff, ExportSession, MaxPrefixAction, build_adj_rib_out},
    rib::{NextHop, PathSpec, PathStatus, PeerId, PeerInfo, Rib},
};
use crate::fib::{Batch, Fib};
use crate::next_hop_check::Unusable;

/// What the operator sees of a neighbor.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NeighborStatus {
    /// The peer's address; for an unnumbered neighbor, its link-local address once known.
    pub address: Option<IpAddr>,
    /// An unnumbered neighbor's interface.
    pub interface: Option<String>,
    /// Created by a connection from a `dynamic_neighbor` range; gone when its session ends.
    pub dynamic: bool,
    pub state: String,
    pub remote_as: Option<u32>,
    pub uptime_seconds: Option<u64>,
    pub prefixes_received: usize,
    pub prefixes_advertised: usize,
    pub last_error: Option<String>,
    /// Kept down after a max-prefix teardown; None when not held.
    pub hold_down: Option<HoldDownStatus>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct HoldDownStatus {
    pub reason: String,
    /// Seconds until the session starts again; None: until `router-agent clear neighbor`.
    pub restarts_in_seconds: Option<u64>,
}

/// A session kept down by the speaker (max-prefix teardown), as the operator sees it.
struct HoldDown {
    reason: String,
    /// When the session restarts on its own; None: only `clear neighbor` restarts it.
    ends: Option<Instant>,
}

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

/// A prefix and its paths, for `show routes`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RouteStatus {
    pub prefix: IpNet,
    pub paths: Vec<PathStatusView>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PathStatusView {
    pub peer: Option<IpAddr>,
    pub next_hop: IpAddr,
    /// best, multipath, candidate, next-hop-unreachable, rejected: <why>
    pub status: String,
    pub as_path: Vec<u32>,
    pub origin: Option<String>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
}

struct PeerState {
    neighbor: Neighbor,
    /// Index of the `dynamic_neighbor` template that created it.
    dynamic: Option<usize>,
    /// The peer's address: configured, or the source of its connection (dynamic), or
    /// discovered (unnumbered).
    address: Option<SocketAddr>,
    handle: PeerHandle,
    state: State,
    established_at: Option<Instant>,
    info: Option<PeerInfo>,
    adj_out: AdjRibOut,
    /// What export needs of the established session (kept to re-export on a reload).
    export_session: Option<ExportSession>,
    families: BTreeSet<(Afi, Safi)>,
    /// Next hops (global and link-local) the neighbor's routes used this session.
    next_hops: BTreeSet<IpAddr>,
    last_error: Option<String>,
    hold_down: Option<HoldDown>,
}

impl PeerState {
    fn new(
        neighbor: Neighbor,
        dynamic: Option<usize>,
        address: Option<SocketAddr>,
        handle: PeerHandle,
    ) -> Self {
        PeerState {
            neighbor,
            dynamic,
            address,
            handle,
            state: State::Idle,
            established_at: None,
            info: None,
            adj_out: AdjRibOut::new(),
            export_session: None,
            families: BTreeSet::new(),
            next_hops: BTreeSet::new(),
            last_error: None,
            hold_down: None,
        }
    }
}

pub struct Speaker {
    setup: BgpSetup,
    rib: Rib,
    peers: BTreeMap<PeerId, PeerState>,
    next_peer_id: u32,
    /// For the session tasks of dynamic peers.
    events: mpsc::UnboundedSender<PeerEvent>,
    /// Unusable next hops already logged, per neighbor and cause.
    unusable_log: UnusableLog,
}

impl Speaker {
    /// Starts a session per configured neighbor and the listener; events arrive on the
    /// receiver. Connections go to the speaker ([`PeerEvent::Accepted`]), which hands them to
    /// the neighbor's session or creates a dynamic peer.
    pub async fn start(setup: BgpSetup) -> Result<(Self, mpsc::UnboundedReceiver<PeerEvent>)> {
        let (events, event_rx) = mpsc::unbounded_channel();
        let listener = TcpListener::bind(SocketAddr::new(
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            setup.port,
        ))
        .await
        .with_context(|| format!("listening on BGP port {}", setup.port))?;
        let accepted = events.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, remote)) => {
                        if accepted
                            .send(PeerEvent::Accepted { stream, remote })
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(err) => tracing::debug!("BGP accept: {err}"),
                }
            }
        });
        let mut speaker = Speaker {
            rib: Rib::new(setup.decision.clone()),
            peers: BTreeMap::new(),
            next_peer_id: 0,
            events,
            unusable_log: UnusableLog::default(),
            setup,
        };
        for neighbor in speaker.setup.neighbors.clone() {
            let address = match neighbor.address {
                PeerAddress::Ip(ip) => Some(SocketAddr::new(ip, speaker.setup.port)),
                PeerAddress::Interface(_) => None,
            };
            speaker
                .add_peer(neighbor.clone(), None, address, None)
                .with_context(|| format!("neighbor {}", neighbor.address))?;
        }
        for interface in speaker.unnumbered_interfaces() {
            let events = speaker.events.clone();
            let name = interface.clone();
            discovery::spawn(interface, move |address| {
                let _ = events.send(PeerEvent::Discovered {
                    interface: name.clone(),
                    address,
                });
            });
        }
        Ok((speaker, event_rx))
    }

    /// Starts a session task.
    fn add_peer(
        &mut self,
        neighbor: Neighbor,
        dynamic: Option<usize>,
        remote: Option<SocketAddr>,
        incoming: Option<TcpStream>,
    ) -> Result<PeerId> {
        let peer = PeerId(self.next_peer_id);
        self.next_peer_id += 1;
        let spec = PeerSpec {
            peer,
            remote,
            config: self.session_config(&neighbor),
            restart: if dynamic.is_some() {
                Restart::Never
            } else {
                Restart::Always
            },
            incoming,
        };
        let handle = peer::spawn(spec, self.events.clone())?;
        self.peers
            .insert(peer, PeerState::new(neighbor, dynamic, remote, handle));
        Ok(peer)
    }

    fn session_config(&self, neighbor: &Neighbor) -> SessionConfig {
        let mut session =
            SessionConfig::new(self.setup.asn, neighbor.remote_as, self.setup.router_id);
        session.passive = neighbor.passive;
        if let Some(hold_time) = neighbor.hold_time {
            session.hold_time = hold_time;
        }
        session.capabilities.multiprotocol =
            BTreeSet::from([(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)]);
        session.capabilities.route_refresh = true;
        session.capabilities.extended_next_hop =
            BTreeSet::from([(Afi::Ipv4, Safi::Unicast, Afi::Ipv6)]);
        session
    }

    /// A connection to our BGP port: to its configured neighbor (by address, or by interface
    /// for a link-local source), to the dynamic peer at that address, or to a new dynamic peer
    /// if a `dynamic_neighbor` range takes it; otherwise refused (closed).
    fn accept(&mut self, stream: TcpStream, remote: SocketAddr) {
        let remote = peer::canonical(remote);
        let address = remote.ip();
        let scope = match remote {
            SocketAddr::V6(v6) if is_link_local(address) => Some(v6.scope_id()),
            _ => None,
        };
        let on_interface = |name: &str| scope.is_some() && scope == interface_index(name);
        let existing = self
            .peers
            .iter()
            .find(|(_, state)| match &state.neighbor.address {
                PeerAddress::Ip(ip) if state.dynamic.is_none() => *ip == address,
                PeerAddress::Ip(_) => state.address.map(|a| a.ip()) == Some(address),
                PeerAddress::Interface(name) => on_interface(name),
            });
        if let Some((&peer, _)) = existing {
            let state = self.peers.get_mut(&peer).expect("found");
            if matches!(state.neighbor.address, PeerAddress::Interface(_)) {
                // Unnumbered: its connection tells us where it is, if RAs have not yet.
                state.address = Some(SocketAddr::new(address, self.setup.port));
                let _ = state
                    .handle
                    .commands
                    .send(PeerCommand::Remote(remote_for_connect(
                        remote,
                        self.setup.port,
                    )));
            }
            let _ = state.handle.commands.send(PeerCommand::Incoming(stream));
            return;
        }
        let Some(index) = self
            .setup
            .dynamic_neighbors
            .iter()
            .position(|d| match &d.source {
                DynamicSource::Range(range) => range.contains(&address),
                DynamicSource::Interface(name) => on_interface(name),
            })
        else {
            tracing::info!(%address, "refused a BGP connection from a non-neighbor");
            return;
        };
        let template = &self.setup.dynamic_neighbors[index];
        let sessions = self
            .peers
            .values()
            .filter(|state| state.dynamic == Some(index))
            .count();
        if sessions >= template.limit {
            tracing::warn!(%address, range = %template.source, limit = template.limit,
                "refused a dynamic BGP peer: the range's session limit is reached");
            return;
        }
        let neighbor = template.neighbor(address);
        let remote = remote_for_connect(remote, self.setup.port);
        match self.add_peer(neighbor, Some(index), Some(remote), Some(stream)) {
            Ok(peer) => {
                tracing::info!(%address, range = %self.setup.dynamic_neighbors[index].source,
                    ?peer, "dynamic BGP peer")
            }
            Err(err) => tracing::error!(%address, "dynamic BGP peer not created: {err:#}"),
        }
    }

    /// A neighbor's unnumbered peer was found (Router Advertisement) at this link-local
    /// address on its interface.
    pub fn discovered(&mut self, interface: &str, address: std::net::Ipv6Addr) {
        let Some(ifindex) = interface_index(interface) else {
            return;
        };
        let port = self.setup.port;
        for state in self.peers.values_mut() {
            if state.neighbor.address != PeerAddress::Interface(interface.to_owned()) {
                continue;
            }
            let remote = SocketAddr::V6(SocketAddrV6::new(address, port, 0, ifindex));
            if state.address.map(|a| a.ip()) != Some(IpAddr::V6(address)) {
                tracing::info!(interface, %address, "unnumbered BGP neighbor found");
                state.address = Some(remote);
                let _ = state.handle.commands.send(PeerCommand::Remote(remote));
            }
        }
    }

    /// The interfaces of unnumbered neighbors (where to send and hear Router Advertisements).
    pub fn unnumbered_interfaces(&self) -> Vec<String> {
        self.setup.unnumbered_interfaces().into_iter().collect()
    }

    pub fn neighbors(&self) -> Vec<NeighborStatus> {
        self.peers
            .values()
            .map(|peer| NeighborStatus {
                address: peer.address.map(|a| a.ip()),
                interface: match &peer.neighbor.address {
                    PeerAddress::Interface(name) => Some(name.clone()),
                    PeerAddress::Ip(_) => None,
                },
                dynamic: peer.dynamic.is_some(),
                state: format!("{:?}", peer.state),
                remote_as: peer.info.as_ref().map(|info| info.remote_as),
                uptime_seconds: peer.established_at.map(|t| t.elapsed().as_secs()),
                // The RIB counts the Adj-RIB-In; a set of prefixes here would be a second
                // copy of a full table.
                prefixes_received: peer
                    .info
                    .as_ref()
                    .and_then(|info| self.rib.peer_counts(info.id))
                    .map_or(0, |(received, _accepted)| received),
                prefixes_advertised: peer.adj_out.len(),
                last_error: peer.last_error.clone(),
                hold_down: peer.hold_down.as_ref().map(|hold_down| HoldDownStatus {
                    reason: hold_down.reason.clone(),
                    restarts_in_seconds: hold_down.ends.map(|ends| {
                        ends.saturating_duration_since(Instant::now())
                            .as_secs_f64()
                            .ceil() as u64
                    }),
                }),
            })
            .collect()
    }

    /// `clear neighbor`: a hard reset of the session (Cease / Administrative Reset if it is
    /// up) and an immediate restart, ending a hold-down.
    pub fn clear(&mut self, address: IpAddr) -> Result<(), String> {
        // Configured, dynamic and discovered (unnumbered) neighbors alike, by where they are.
        let peer = self
            .peers
            .values_mut()
            .find(|peer| peer.address.map(|a| a.ip()) == Some(address))
            .ok_or_else(|| format!("{address} is not a configured neighbor"))?;
        peer.hold_down = None;
        tracing::info!(peer = %address, "clear neighbor: resetting the session");
        peer.handle
            .commands
            .send(PeerCommand::Clear)
            .map_err(|_| format!("the session task of {address} has ended"))
    }

    /// Every prefix in the RIB with all its paths, for `show routes`.
    pub fn routes(&self) -> Vec<RouteStatus> {
        self.rib
            .routes()
            .map(|route| RouteStatus {
                prefix: route.prefix,
                paths: route
                    .paths
                    .iter()
                    .map(|view| {
                        let attrs = &view.path.attrs;
                        PathStatusView {
                            peer: self
                                .peers
                                .get(&view.path.peer)
                                .and_then(|p| p.address.map(|a| a.ip())),
                            next_hop: view.path.next_hop.address,
                            status: match &view.status {
                                PathStatus::Best => "best".to_owned(),
                                PathStatus::Multipath => "multipath".to_owned(),
                                PathStatus::Candidate => "candidate".to_owned(),
                                PathStatus::NextHopUnreachable => "next-hop-unreachable".to_owned(),
                                PathStatus::NextHopUnusable(why) => why.to_string(),
                                PathStatus::Rejected(why) => format!("rejected: {why:?}"),
                            },
                            as_path: attrs
                                .as_path
                                .segments
                                .iter()
                                .flat_map(|segment| segment.asns.iter().copied())
                                .collect(),
                            origin: attrs.origin.map(|o| format!("{o:?}").to_lowercase()),
                            med: attrs.med,
                            local_pref: attrs.local_pref,
                            communities: attrs
                                .communities
                                .iter()
                                .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                                .collect(),
                            large_communities: attrs
                                .large_communities
                                .iter()
                                .map(|c| format!("{}:{}:{}", c[0], c[1], c[2]))
                                .collect(),
                        }
                    })
                    .collect(),
            })
            .collect()
    }

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

    /// Stops a peer's session for good and withdraws its routes now.
    fn remove_peer(
        &mut self,
        peer: PeerId,
        why: &str,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        let state = &self.peers[&peer];
        tracing::info!(neighbor = %state.neighbor.address, address = ?state.address, "BGP neighbor removed: {why}");
        let _ = state
            .handle
            .commands
            .send(PeerCommand::Stop(Some(why.to_owned())));
        self.forget_peer(peer, why, fib, batch, resolve);
        // Its task's last events (Down, Closed) find no peer and are ignored.
    }

    /// Takes a peer down for good: its routes withdrawn, and nothing of it left in the FIB's
    /// failure marks (they are scoped to the peer, whose id is never used again).
    fn forget_peer(
        &mut self,
        peer: PeerId,
        why: &str,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        let gateways: Vec<IpAddr> = self.peers[&peer].next_hops.iter().copied().collect();
        self.down(peer, why.to_owned(), fib, batch, resolve);
        // down() marks the peer's gateways failed until they show up again in an UPDATE,
        // which a removed peer never sends.
        southbound::set_gateways_failed(fib, batch, peer, &gateways, false);
        self.peers.remove(&peer);
    }

    /// Ends every session with a Cease (administrative shutdown).
    pub fn stop(&self, message: &str) {
        for peer in self.peers.values() {
            let _ = peer
                .handle
                .commands
                .send(PeerCommand::Stop(Some(message.to_owned())));
        }
    }

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
            } => self.established(peer, negotiated, local, remote, resolve, link_local),
            SessionEvent::Update { update, error } => {
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
            SessionEvent::Down { reason } => self.down(peer, reason, fib, batch, resolve),
            SessionEvent::Closed => {
                // A dynamic peer's session ended (its Down came first); a configured one's
                // task ends only when the speaker stops.
                if self.peers[&peer].dynamic.is_some() {
                    let address = self.peers[&peer].address;
                    self.forget_peer(peer, "session ended", fib, batch, resolve);
                    tracing::info!(?address, "dynamic BGP peer removed");
                }
            }
        }
    }

    fn peer_mut(&mut self, peer: PeerId) -> &mut PeerState {
        self.peers.get_mut(&peer).expect("caller checked")
    }

    /// The session is down: its routes leave the RIB and the FIB.
    fn down(
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

    fn established(
        &mut self,
        peer: PeerId,
        negotiated: fsm::Negotiated,
        local: SocketAddr,
        remote: SocketAddr,
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
        if let Err(err) = self
            .rib
            .peer_up(info.clone(), state.neighbor.import.clone())
        {
            tracing::error!(peer = %remote, "RIB: {err}");
            return;
        }
        state.info = Some(info.clone());
        state.established_at = Some(Instant::now());
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
                .setup
                .originated
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
        let target = build_adj_rib_out(&self.setup.originated, &session, &state.neighbor.export);
        state.export_session = Some(session);
        let mut updates = updates_from_diff(state.adj_out.sync(target));
        for (afi, safi) in &negotiated.families {
            if *safi == Safi::Unicast {
                updates.push(Update::end_of_rib(*afi));
            }
        }
        let _ = state.handle.commands.send(PeerCommand::Send(updates));
    }

    fn update(
        &mut self,
        peer: PeerId,
        update: Update,
        error: Option<super::packet::UpdateError>,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        if update.end_of_rib_family().is_some() {
            return;
        }
        let treat_as_withdraw = matches!(
            error,
            Some(super::packet::UpdateError::TreatAsWithdraw { .. })
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
    fn log_if_unusable(&mut self, peer: PeerId, next_hop: NextHop) {
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
    fn enforce_max_prefix(&mut self, peer: PeerId) {
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

/// UPDATEs for an Adj-RIB-Out diff: one per attribute set and next hop (the codec splits
/// them to fit 4096 bytes), IPv4 with NEXT_HOP in the body, the rest in MP_REACH_NLRI.
fn updates_from_diff(diff: ExportDiff) -> Vec<Update> {
    let mut groups: Vec<(Arc<PathAttributes>, NextHop, Vec<IpNet>)> = Vec::new();
    for (prefix, advertisement) in diff.announce {
        match groups.iter_mut().find(|(attrs, next_hop, _)| {
            Arc::ptr_eq(attrs, &advertisement.attrs) && *next_hop == advertisement.next_hop
        }) {
            Some(group) => group.2.push(prefix),
            None => groups.push((advertisement.attrs, advertisement.next_hop, vec![prefix])),
        }
    }
    let mut updates = Vec::new();
    for (attrs, next_hop, prefixes) in groups {
        let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes
            .into_iter()
            .partition(|p| matches!(p, IpNet::V4(_)));
        let in_body = attrs.next_hop.is_some();
        if !v4.is_empty() && in_body {
            updates.push(Update {
                attributes: (*attrs).clone(),
                nlri: v4
                    .iter()
                    .filter_map(|p| match p {
                        IpNet::V4(p) => Some(*p),
                        IpNet::V6(_) => None,
                    })
                    .collect(),
                ..Update::default()
            });
        }
        for (afi, nlri) in [
            (Afi::Ipv4, if in_body { Vec::new() } else { v4 }),
            (Afi::Ipv6, v6),
        ] {
            if nlri.is_empty() {
                continue;
            }
            let mut attributes = (*attrs).clone();
            attributes.next_hop = None;
            updates.push(Update {
                attributes,
                mp_reach: Some(MpReach {
                    afi,
                    safi: Safi::Unicast,
                    next_hop: next_hop.address,
                    link_local_next_hop: next_hop.link_local,
                    nlri,
                }),
                ..Update::default()
            });
        }
    }
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = diff
        .withdraw
        .into_iter()
        .partition(|p| matches!(p, IpNet::V4(_)));
    if !v4.is_empty() {
        updates.push(Update {
            withdrawn: v4
                .iter()
                .filter_map(|p| match p {
                    IpNet::V4(p) => Some(*p),
                    IpNet::V6(_) => None,
                })
                .collect(),
            ..Update::default()
        });
    }
    if !v6.is_empty() {
        updates.push(Update {
            mp_unreach: Some(MpUnreach {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
                withdrawn: v6,
            }),
            ..Update::default()
        });
    }
    updates
}

fn is_link_local(address: IpAddr) -> bool {
    matches!(address, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// The interface's index now (None: no such interface).
fn interface_index(name: &str) -> Option<u32> {
    discovery::interface_index(name).ok()
}

/// Where to reach a peer that connected from `remote`: its address, our BGP port.
fn remote_for_connect(remote: SocketAddr, port: u16) -> SocketAddr {
    let mut remote = remote;
    remote.set_port(port);
    remote
}
