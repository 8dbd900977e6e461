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
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use anyhow::{Context, Result};
use ipnet::IpNet;
use tokio::{net::TcpListener, sync::mpsc};

use super::{
    config::{BgpSetup, Neighbor},
    fsm::{self, NotificationInfo, SessionConfig, State},
    next_hop_out::{ExportNextHops, SessionEnds},
    packet::{
        Update,
        types::{Afi, MpReach, MpUnreach, PathAttributes, Safi},
    },
    peer::{self, PeerCommand, PeerEvent, PeerHandle},
    policy::{AdjRibOut, ExportDiff, ExportSession, MaxPrefixAction, build_adj_rib_out},
    rib::{LocRibChange, NextHop, PathSpec, PathStatus, PeerId, PeerInfo, Rib},
};
use crate::fib::{Batch, Fib, RouteTarget, Source};

/// What the operator sees of a neighbor.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NeighborStatus {
    pub address: IpAddr,
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
    handle: PeerHandle,
    state: State,
    established_at: Option<Instant>,
    info: Option<PeerInfo>,
    adj_out: AdjRibOut,
    families: BTreeSet<(Afi, Safi)>,
    /// Next hops (global and link-local) the neighbor's routes used this session.
    next_hops: BTreeSet<IpAddr>,
    last_error: Option<String>,
    hold_down: Option<HoldDown>,
}

pub struct Speaker {
    setup: BgpSetup,
    rib: Rib,
    peers: Vec<PeerState>,
}

impl Speaker {
    /// Starts a session per neighbor and the listener; events arrive on the receiver.
    pub async fn start(setup: BgpSetup) -> Result<(Self, mpsc::UnboundedReceiver<PeerEvent>)> {
        let (events, event_rx) = mpsc::unbounded_channel();
        let mut peers = Vec::new();
        let mut by_address = BTreeMap::new();
        for (i, neighbor) in setup.neighbors.iter().enumerate() {
            let mut session = SessionConfig::new(setup.asn, neighbor.remote_as, setup.router_id);
            session.passive = neighbor.passive;
            if let Some(hold_time) = neighbor.hold_time {
                session.hold_time = hold_time;
            }
            session.capabilities.multiprotocol =
                BTreeSet::from([(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)]);
            session.capabilities.route_refresh = true;
            session.capabilities.extended_next_hop =
                BTreeSet::from([(Afi::Ipv4, Safi::Unicast, Afi::Ipv6)]);
            let remote = SocketAddr::new(neighbor.address, setup.port);
            let handle = peer::spawn(PeerId(i as u32), remote, session, events.clone())
                .with_context(|| format!("neighbor {}", neighbor.address))?;
            by_address.insert(neighbor.address, handle.commands.clone());
            peers.push(PeerState {
                neighbor: neighbor.clone(),
                handle,
                state: State::Idle,
                established_at: None,
                info: None,
                adj_out: AdjRibOut::new(),
                families: BTreeSet::new(),
                next_hops: BTreeSet::new(),
                last_error: None,
                hold_down: None,
            });
        }
        let listener = TcpListener::bind(SocketAddr::new(
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            setup.port,
        ))
        .await
        .with_context(|| format!("listening on BGP port {}", setup.port))?;
        tokio::spawn(async move {
            loop {
                let Ok((stream, remote)) = listener.accept().await else {
                    continue;
                };
                let address = peer::canonical_ip(remote.ip());
                match by_address.get(&address) {
                    Some(commands) => {
                        let _ = commands.send(PeerCommand::Incoming(stream));
                    }
                    None => {
                        tracing::info!(%address, "refused a BGP connection from a non-neighbor")
                    }
                }
            }
        });
        let rib = Rib::new(setup.decision.clone());
        Ok((Self { setup, rib, peers }, event_rx))
    }

    pub fn neighbors(&self) -> Vec<NeighborStatus> {
        self.peers
            .iter()
            .map(|peer| NeighborStatus {
                address: peer.neighbor.address,
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
        let peer = self
            .peers
            .iter_mut()
            .find(|peer| peer.neighbor.address == address)
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
                                .get(view.path.peer.0 as usize)
                                .map(|p| p.neighbor.address),
                            next_hop: view.path.next_hop.address,
                            status: match &view.status {
                                PathStatus::Best => "best".to_owned(),
                                PathStatus::Multipath => "multipath".to_owned(),
                                PathStatus::Candidate => "candidate".to_owned(),
                                PathStatus::NextHopUnreachable => "next-hop-unreachable".to_owned(),
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

    /// Ends every session with a Cease (administrative shutdown).
    pub fn stop(&self, message: &str) {
        for peer in &self.peers {
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
        resolve: &dyn Fn(IpAddr) -> Option<u32>,
        link_local: &dyn Fn(u32) -> Option<Ipv6Addr>,
    ) {
        match event {
            PeerEvent::State { peer, state } => {
                let peer = &mut self.peers[peer.0 as usize];
                peer.state = state;
                if state != State::Idle {
                    // Restarted: the hold-down is over.
                    peer.hold_down = None;
                }
            }
            PeerEvent::Established {
                peer,
                negotiated,
                local,
                remote,
            } => self.established(peer, negotiated, local, remote, resolve, link_local),
            PeerEvent::Update {
                peer,
                update,
                error,
            } => self.update(peer, *update, error, fib, batch, resolve),
            PeerEvent::RouteRefresh { peer, afi } => {
                // RFC 2918: re-send the Adj-RIB-Out of the family asked for.
                let state = &self.peers[peer.0 as usize];
                let mut diff = state.adj_out.refresh();
                diff.announce.retain(|(prefix, _)| match afi {
                    Afi::Ipv4 => prefix.addr().is_ipv4(),
                    Afi::Ipv6 => prefix.addr().is_ipv6(),
                });
                diff.withdraw.clear();
                let updates = updates_from_diff(diff);
                let _ = state.handle.commands.send(PeerCommand::Send(updates));
            }
            PeerEvent::Down { peer, reason } => {
                let state = &mut self.peers[peer.0 as usize];
                // Fast failover: the neighbor's next hops leave every ECMP group now (one
                // write per group); the per-prefix withdrawals below follow.
                let failed: Vec<IpAddr> =
                    std::mem::take(&mut state.next_hops).into_iter().collect();
                fib.set_gateways_failed(batch, &failed, true);
                state.last_error = Some(reason);
                state.established_at = None;
                state.adj_out.clear();
                if state.info.take().is_some() {
                    let mut changes = Vec::new();
                    self.rib.peer_down_each(peer, |change| changes.push(change));
                    for change in changes {
                        apply_change(change, fib, batch, resolve);
                    }
                }
            }
        }
    }

    fn established(
        &mut self,
        peer: PeerId,
        negotiated: fsm::Negotiated,
        local: SocketAddr,
        remote: SocketAddr,
        resolve: &dyn Fn(IpAddr) -> Option<u32>,
        link_local: &dyn Fn(u32) -> Option<Ipv6Addr>,
    ) {
        let state = &mut self.peers[peer.0 as usize];
        let info = PeerInfo {
            id: peer,
            address: remote.ip(),
            router_id: negotiated.peer_router_id,
            remote_as: negotiated.peer_as,
            local_as: self.setup.asn,
            ebgp: negotiated.peer_as != self.setup.asn,
            // The session's interface: where the neighbor's link-local next hops (RFC 2545)
            // are.
            ifindex: session_interface(remote, resolve),
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
        resolve: &dyn Fn(IpAddr) -> Option<u32>,
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
        self.peers[peer.0 as usize]
            .next_hops
            .extend(seen.iter().copied());
        fib.set_gateways_failed(batch, &seen, false);
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
        if let Some(exceeded) = self.rib.take_max_prefix_exceeded(peer) {
            let state = &mut self.peers[peer.0 as usize];
            tracing::warn!(peer = %state.neighbor.address, limit = exceeded.limit,
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

/// The interface a neighbor is directly connected on: the scope of a link-local session, else
/// the configured interface whose subnet holds its address. None: not on a shared link.
fn session_interface(remote: SocketAddr, resolve: &dyn Fn(IpAddr) -> Option<u32>) -> Option<u32> {
    match remote {
        SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() && v6.scope_id() != 0 => {
            Some(v6.scope_id())
        }
        _ => resolve(remote.ip()),
    }
}

/// Installs or removes the FIB route of a Loc-RIB change.
fn apply_change(
    change: LocRibChange,
    fib: &mut Fib,
    batch: &mut Batch,
    resolve: &dyn Fn(IpAddr) -> Option<u32>,
) {
    let target: Option<RouteTarget> = change
        .best
        .as_ref()
        .and_then(|best| best.fib_target(&|ip: IpAddr| resolve(ip)));
    match target {
        Some(target) => {
            if let Err(err) = fib.set_route(batch, Source::Bgp, change.prefix, target) {
                tracing::error!(prefix = %change.prefix, "BGP route not installed: {err}");
            }
        }
        None => {
            if change.best.is_some() {
                tracing::warn!(prefix = %change.prefix,
                    "no next hop of the best paths is directly connected on a configured \
                     interface; not installed");
            }
            fib.remove_route(batch, Source::Bgp, change.prefix);
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
