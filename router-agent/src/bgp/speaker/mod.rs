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
//! originated routes (see `policy/mod.rs`).
//!
//! Here: the peers and their sessions' lifecycle. Connections in: `listener.rs`; the
//! neighbors' events (sessions up and down, UPDATEs): `events.rs`; the operator's side
//! (reload, show): `../northbound/`; FIB writes: `../southbound.rs`; UPDATEs out:
//! `../updates_out.rs`.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
    time::Instant,
};

use anyhow::{Context, Result};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

use super::northbound::NegotiatedStatus;
use super::southbound::{self, Resolve};
use super::unusable_log::UnusableLog;
use super::{auth, gtsm_filter, tcp_ao, ttl_security};
use super::{
    config::{BgpSetup, Neighbor, PeerAddress},
    fsm::{Restart, SessionConfig, State},
    graceful_restart::{self, NegotiatedGracefulRestart, RestartState, helper::PeerRestart},
    packet::types::{Afi, Safi},
    peer::{self, PeerCommand, PeerEvent, PeerHandle, PeerSpec},
    policy::{AdjRibOut, ExportSession},
    rib::{PeerId, PeerInfo, Rib},
};
use crate::fib::{Batch, Fib};

mod accept;
mod bfd;
mod events;
mod fallover;
mod flush;
mod graceful;
mod listener;
mod origins;
#[cfg(test)]
mod origins_tests;
mod router_ads;
#[cfg(test)]
mod test_support;

pub use fallover::LinkDown;
pub use flush::{Flushed, PendingFlush};

/// A session kept down by the speaker (max-prefix teardown), as the operator sees it.
pub(in crate::bgp) struct HoldDown {
    pub(in crate::bgp) reason: String,
    /// When the session restarts on its own; None: only `clear neighbor` restarts it.
    pub(in crate::bgp) ends: Option<Instant>,
}

pub(in crate::bgp) struct PeerState {
    pub(in crate::bgp) neighbor: Neighbor,
    /// Index of the `dynamic_neighbor` template that created it.
    pub(in crate::bgp) dynamic: Option<usize>,
    /// The peer's address: configured, or the source of its connection (dynamic), or
    /// discovered (unnumbered).
    pub(in crate::bgp) address: Option<SocketAddr>,
    pub(in crate::bgp) handle: PeerHandle,
    pub(in crate::bgp) state: State,
    pub(in crate::bgp) established_at: Option<Instant>,
    pub(in crate::bgp) info: Option<PeerInfo>,
    pub(in crate::bgp) adj_out: AdjRibOut,
    /// What export needs of the established session (kept to re-export on a reload).
    pub(in crate::bgp) export_session: Option<ExportSession>,
    pub(in crate::bgp) families: BTreeSet<(Afi, Safi)>,
    /// Next hops (global and link-local) the neighbor's routes used this session.
    pub(in crate::bgp) next_hops: BTreeSet<IpAddr>,
    pub(in crate::bgp) last_error: Option<String>,
    pub(in crate::bgp) hold_down: Option<HoldDown>,
    /// Graceful restart as the last Established session negotiated it.
    pub(in crate::bgp) graceful_restart: Option<NegotiatedGracefulRestart>,
    /// The peer is restarting (helper side): its routes kept stale (`graceful.rs`).
    pub(in crate::bgp) restart: Option<PeerRestart>,
    /// A dynamic peer's task ended while it restarts; a connection from it respawns one.
    pub(in crate::bgp) session_ended: bool,
    /// BFD went down (why): the session is held down until BFD is up again (`bfd.rs`).
    pub(in crate::bgp) bfd_held: Option<String>,
    /// What the Established session agreed (timers, capabilities), for `show neighbors`.
    pub(in crate::bgp) negotiated: Option<NegotiatedStatus>,
}

impl PeerState {
    pub(in crate::bgp) fn new(
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
            graceful_restart: None,
            restart: None,
            session_ended: false,
            bfd_held: None,
            negotiated: None,
        }
    }
}

pub struct Speaker {
    pub(in crate::bgp) setup: BgpSetup,
    pub(in crate::bgp) rib: Rib,
    pub(in crate::bgp) peers: BTreeMap<PeerId, PeerState>,
    pub(in crate::bgp) next_peer_id: u32,
    /// For the session tasks of dynamic peers.
    pub(in crate::bgp) events: mpsc::UnboundedSender<PeerEvent>,
    /// Unusable next hops already logged, per neighbor and cause.
    pub(in crate::bgp) unusable_log: UnusableLog,
    /// This run's restart, for the Graceful Restart capability we send (R and F bits).
    pub(in crate::bgp) restart_state: RestartState,
    /// `graceful_stop` was called: the sessions' ends must not touch the FIB (the datapath
    /// outlives us with every route). Atomic: `graceful_stop` takes `&self`.
    pub(in crate::bgp) graceful_stopping: std::sync::atomic::AtomicBool,
    /// The listening sockets (duplicates of the accept tasks'), for TCP MD5 keys on reload;
    /// none in unit tests.
    pub(in crate::bgp) listening: Vec<std::os::fd::OwnedFd>,
    /// The TCP MD5 keys they carry now.
    pub(in crate::bgp) listener_keys: auth::ListenerKeys,
    /// The TCP-AO keys they carry now.
    pub(in crate::bgp) listener_ao_keys: tcp_ao::ListenerAoKeys,
    /// Connections refused from non-neighbors, for rate-limited logs.
    pub(in crate::bgp) refusals: accept::RefusalLog,
    /// Router Advertisement tasks by interface (`router_ads.rs`); None in unit tests, which
    /// open no sockets.
    pub(in crate::bgp) ra_tasks: Option<router_ads::RaTasks>,
    /// What the host originates (configuration, services, redistribution) and the drain.
    pub(in crate::bgp) origins: origins::HostOrigins,
}

impl Speaker {
    /// Starts a session per configured neighbor and the listener; events arrive on the
    /// receiver. Connections go to the speaker ([`PeerEvent::Accepted`]), which hands them to
    /// the neighbor's session or creates a dynamic peer.
    /// `restart`: whether this run adopted a previous run's datapath (the graceful restart
    /// capability's R and F bits).
    pub async fn start(
        setup: BgpSetup,
        restart: RestartState,
    ) -> Result<(Self, mpsc::UnboundedReceiver<PeerEvent>)> {
        let (events, event_rx) = mpsc::unbounded_channel();
        let listener_keys = auth::listener_keys(&setup)
            .map_err(|err| anyhow::anyhow!("{}: {}", err.key, err.reason))?;
        // A kernel without TCP-AO: refuse to start, naming the neighbor, rather than run it
        // unprotected.
        tcp_ao::check_kernel(&setup)
            .map_err(|err| anyhow::anyhow!("{}: {}", err.key, err.reason))?;
        let listener_ao_keys = tcp_ao::listener_keys(&setup)
            .map_err(|err| anyhow::anyhow!("{}: {}", err.key, err.reason))?;
        let mut listening = Vec::new();
        for address in listen_addresses(&setup) {
            let listener = listen(&setup, &listener_keys, &listener_ao_keys, address)
                .with_context(|| format!("listening on BGP port {} of {address}", setup.port))?;
            listening.push({
                use std::os::fd::AsFd;
                listener.as_fd().try_clone_to_owned()?
            });
            accept::spawn(listener, events.clone());
        }
        let mut speaker = Speaker {
            rib: Rib::new(setup.decision.clone()),
            peers: BTreeMap::new(),
            next_peer_id: 0,
            events,
            unusable_log: UnusableLog::default(),
            restart_state: restart,
            graceful_stopping: Default::default(),
            listening,
            listener_keys,
            listener_ao_keys,
            origins: origins::HostOrigins::new(setup.originated.clone(), Default::default()),
            setup,
            refusals: Default::default(),
            ra_tasks: Some(Default::default()),
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
        let setup = speaker.setup.clone();
        speaker.sync_router_advertisements(&setup);
        Ok((speaker, event_rx))
    }

    /// Brings the listening sockets' TCP MD5 and TCP-AO keys and GTSM to the new
    /// configuration's (on reload; they take effect for new connections). Failures are logged
    /// (by neighbor).
    pub(in crate::bgp) fn sync_listener(
        &mut self,
        new: &BgpSetup,
        keys: auth::ListenerKeys,
        ao_keys: tcp_ao::ListenerAoKeys,
    ) {
        for socket in &self.listening {
            use std::os::fd::AsFd;
            // The kernel refuses an MD5 and an AO key for the same peer: MD5 keys whose peer
            // no longer has one go first, then AO keys are synced, then MD5 keys are added
            // (a changed MD5 key is replaced in place, never removed in between).
            let kept: auth::ListenerKeys = (self.listener_keys.iter())
                .filter(|(scope, _)| keys.contains_key(scope))
                .map(|(scope, key)| (*scope, key.clone()))
                .collect();
            auth::sync_listener(socket.as_fd(), &self.listener_keys, &kept);
            tcp_ao::sync_listener(socket.as_fd(), &self.listener_ao_keys, &ao_keys);
            auth::sync_listener(socket.as_fd(), &kept, &keys);
            if let Err(err) = ttl_security::prepare_listener(socket.as_fd(), new.all_ttl_security())
            {
                tracing::error!("GTSM on the BGP listener not updated: {err}");
            }
            if let Err(err) = gtsm_filter::attach(socket.as_fd(), &gtsm_filter::scopes(new)) {
                tracing::error!("the GTSM socket filter on the BGP listener not updated: {err}");
            }
        }
        self.listener_keys = keys;
        self.listener_ao_keys = ao_keys;
    }

    /// Starts a session task.
    pub(in crate::bgp) fn add_peer(
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
            security: neighbor.security.clone(),
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

    pub(in crate::bgp) fn session_config(&self, neighbor: &Neighbor) -> SessionConfig {
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
        session.capabilities.graceful_restart = graceful_restart::session::local_capability(
            &self.setup.graceful_restart,
            self.restart_state,
            &session.capabilities.multiprotocol,
        );
        session
    }

    /// A planned restart: ends every session the way graceful restart expects, so that the
    /// peers keep our routes for the restart time: Cease / Administrative Reset with N, a
    /// bare TCP close with GR but no N, the usual Cease without GR.
    pub fn graceful_stop(&self) {
        self.graceful_stop_sessions("router-agent is restarting");
    }

    /// Graceful restart timers (restart time, stale routes time); the daemon calls it every
    /// 100 ms.
    pub fn on_tick(
        &mut self,
        now: std::time::Instant,
        fib: &mut Fib,
        batch: &mut Batch,
        resolve: &Resolve<'_>,
    ) {
        self.graceful_restart_tick(now, fib, batch, resolve);
        self.origins_tick(now);
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

    pub(in crate::bgp) fn peer_mut(&mut self, peer: PeerId) -> &mut PeerState {
        self.peers.get_mut(&peer).expect("caller checked")
    }

    /// Stops a peer's session for good and withdraws its routes now.
    pub(in crate::bgp) fn remove_peer(
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
    pub(in crate::bgp) fn forget_peer(
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
}

/// Where to listen: `bgp.listen`, or everywhere (dual-stack `[::]`).
fn listen_addresses(setup: &BgpSetup) -> Vec<IpAddr> {
    if setup.listen.is_empty() {
        vec![IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)]
    } else {
        setup.listen.clone()
    }
}

/// A BGP listening socket at `address`: always AF_INET6 (an IPv4 address bound v4-mapped),
/// so that TCP MD5 / TCP-AO keys and GTSM apply alike; sending with TTL 255 (GTSM, see
/// `ttl_security.rs`) and with its TCP MD5 and TCP-AO keys installed before it listens, so
/// that no connection is accepted unsigned in between.
fn listen(
    setup: &BgpSetup,
    keys: &auth::ListenerKeys,
    ao_keys: &tcp_ao::ListenerAoKeys,
    address: IpAddr,
) -> Result<TcpListener> {
    use std::os::fd::AsFd;
    let port = setup.port;
    let socket = tokio::net::TcpSocket::new_v6()?;
    socket.set_reuseaddr(true)?;
    ttl_security::prepare_listener(socket.as_fd(), setup.all_ttl_security())
        .context("TTL 255 (GTSM) on the listener")?;
    gtsm_filter::attach(socket.as_fd(), &gtsm_filter::scopes(setup))
        .context("the GTSM socket filter on the listener")?;
    let failed = auth::sync_listener(socket.as_fd(), &auth::ListenerKeys::new(), keys);
    if failed > 0 {
        anyhow::bail!("{failed} TCP MD5 key(s) could not be set (see the log)");
    }
    let failed = tcp_ao::sync_listener(socket.as_fd(), &tcp_ao::ListenerAoKeys::new(), ao_keys);
    if failed > 0 {
        anyhow::bail!("{failed} TCP-AO key(s) could not be set (see the log)");
    }
    let bound = match address {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    };
    socket.bind(SocketAddr::new(bound, port))?;
    Ok(socket.listen(1024)?)
}
