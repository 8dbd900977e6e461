//! What the operator sees: `show neighbors`, `show routes`, and `clear neighbor`.

use std::{net::IpAddr, time::Instant};

use ipnet::IpNet;

use crate::bgp::{config::PeerAddress, peer::PeerCommand, rib::PathStatus, speaker::Speaker};

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
}
