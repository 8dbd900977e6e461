//! What the operator sees: `show neighbors`, `show routes`, and `clear neighbor`.

use std::{net::IpAddr, time::Instant};

use ipnet::IpNet;

use super::NegotiatedStatus;
use crate::bgp::{
    config::PeerAddress,
    graceful_restart::helper::Phase,
    packet::types::Afi,
    peer::PeerCommand,
    rib::PathStatus,
    speaker::{PeerState, Speaker},
};

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
    /// Graceful restart as the last session negotiated it; None: not negotiated.
    pub graceful_restart: Option<GracefulRestartStatus>,
    /// The Established session's timers and agreed capabilities; None when not Established.
    pub negotiated: Option<NegotiatedStatus>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct GracefulRestartStatus {
    /// The peer's Restart Time.
    pub peer_restart_time_seconds: u16,
    /// Both sent N (RFC 8538): only a Hard Reset ends graceful restart.
    pub notification: bool,
    /// The families the peer preserves across a restart ("ipv4", "ipv6").
    pub peer_families: Vec<&'static str>,
    /// Those it said it kept forwarding for (F bit) in its last OPEN.
    pub peer_forwarding: Vec<&'static str>,
    /// The peer is restarting and we keep its routes; None otherwise.
    pub restarting: Option<RestartingStatus>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RestartingStatus {
    /// "restarting" (session down, restart timer) or "awaiting-end-of-rib" (session back,
    /// stale routes timer).
    pub phase: &'static str,
    pub stale_routes: usize,
    pub seconds_left: u64,
    /// The families whose stale routes are still kept.
    pub families: Vec<&'static str>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct HoldDownStatus {
    pub reason: String,
    /// Seconds until the session starts again; None: until `router-agent clear neighbor`.
    pub restarts_in_seconds: Option<u64>,
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
    /// Kept over the peer's graceful restart, not announced again yet.
    pub stale: bool,
    pub as_path: Vec<u32>,
    pub origin: Option<String>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
}

impl Speaker {
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
                graceful_restart: self.graceful_restart_status(peer),
                negotiated: peer.negotiated.clone(),
            })
            .collect()
    }

    fn graceful_restart_status(&self, peer: &PeerState) -> Option<GracefulRestartStatus> {
        let negotiated = peer.graceful_restart.as_ref()?;
        let families = |afis: &mut dyn Iterator<Item = Afi>| -> Vec<&'static str> {
            afis.map(|afi| match afi {
                Afi::Ipv4 => "ipv4",
                Afi::Ipv6 => "ipv6",
            })
            .collect()
        };
        let restarting = peer.restart.as_ref().map(|restart| RestartingStatus {
            phase: match restart.phase {
                Phase::Restarting { .. } => "restarting",
                Phase::AwaitingEndOfRib { .. } => "awaiting-end-of-rib",
            },
            stale_routes: peer
                .info
                .as_ref()
                .map_or(0, |info| self.rib.stale_count(info.id)),
            seconds_left: restart.time_left(Instant::now()).as_secs_f64().ceil() as u64,
            families: families(&mut restart.families.iter().copied()),
        });
        Some(GracefulRestartStatus {
            peer_restart_time_seconds: negotiated.peer.restart_time,
            notification: negotiated.notification,
            peer_families: families(&mut negotiated.families.iter().map(|(afi, _)| *afi)),
            peer_forwarding: families(
                &mut negotiated
                    .peer
                    .families
                    .iter()
                    .filter(|family| family.forwarding)
                    .map(|family| family.afi),
            ),
            restarting,
        })
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
        if peer.session_ended
            && let Some(restart) = peer.restart.as_mut()
        {
            // A restarting dynamic peer with no session: its stale routes go at the next tick.
            tracing::info!(peer = %address, "clear neighbor: stale routes of a restarting peer withdrawn");
            restart.expire_now(Instant::now());
            return Ok(());
        }
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
                            stale: self.rib.is_stale(view.path.peer, &route.prefix),
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
                                .map(|&c| crate::bgp::policy::Community(c).to_string())
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
}
