//! Connections in: to a configured neighbor's session, to a dynamic peer (new, up to its
//! range's limit), or refused; unnumbered neighbors found by their Router Advertisements.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use tokio::net::TcpStream;

use super::Speaker;
use crate::bgp::{
    config::{DynamicSource, Neighbor, PeerAddress},
    discovery,
    peer::{self, PeerCommand},
    session_socket,
};

impl Speaker {
    /// A connection to our BGP port: to its configured neighbor (by address, or by interface
    /// for a link-local source), to the dynamic peer at that address, or to a new dynamic peer
    /// if a `dynamic_neighbor` range takes it; otherwise refused (closed).
    pub(in crate::bgp) fn accept(&mut self, stream: TcpStream, remote: SocketAddr) {
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
        if let Some((&peer, state)) = existing {
            if !protect(&stream, &state.neighbor) {
                return;
            }
            if self.peers[&peer].session_ended {
                // A dynamic peer back from its graceful restart.
                self.respawn_dynamic(peer, stream);
                return;
            }
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
            if let Some(unlogged) = self.refusals.refused(address, std::time::Instant::now()) {
                tracing::info!(%address, refused_since_last_logged = unlogged,
                    "refused a BGP connection from a non-neighbor (logged once a minute per source)");
            }
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
        if !protect(&stream, &neighbor) {
            return;
        }
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
}

/// The neighbor's GTSM on its accepted connection; false (connection dropped, logged by
/// neighbor): it could not be set.
fn protect(stream: &TcpStream, neighbor: &Neighbor) -> bool {
    match session_socket::accepted(stream, &neighbor.security) {
        Ok(()) => true,
        Err(err) => {
            tracing::error!(neighbor = %neighbor.address, "BGP connection dropped: {err}");
            false
        }
    }
}

fn is_link_local(address: IpAddr) -> bool {
    matches!(address, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// The interface's index now (None: no such interface).
pub(super) fn interface_index(name: &str) -> Option<u32> {
    discovery::interface_index(name).ok()
}

/// Where to reach a peer that connected from `remote`: its address, our BGP port.
pub(super) fn remote_for_connect(remote: SocketAddr, port: u16) -> SocketAddr {
    let mut remote = remote;
    remote.set_port(port);
    remote
}
