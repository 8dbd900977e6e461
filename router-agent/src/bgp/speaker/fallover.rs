//! Fast external fallover (FRR's default for directly connected eBGP): when the link to a
//! directly connected external neighbor goes down, its session ends at once, so that its
//! routes leave the RIB, the FIB and the kernel's table now rather than at hold expiry. (The
//! XDP groups drop the link's next hops by themselves, from the link event.)

use ipnet::IpNet;

use super::Speaker;
use crate::bgp::{fsm::State, peer::PeerCommand, rib::PeerId};

/// A link that went down, as the daemon saw it.
#[derive(Clone, Debug)]
pub struct LinkDown {
    pub ifindex: u32,
    pub name: String,
    /// The host's subnets on that link: a neighbor in one of them is directly connected.
    pub subnets: Vec<IpNet>,
}

impl Speaker {
    /// Ends the Established eBGP sessions of neighbors directly connected over `link` (those
    /// with `fast_external_fallover`, the default). Returns the peers told.
    pub fn link_down(&mut self, link: &LinkDown) -> Vec<PeerId> {
        let mut ended = Vec::new();
        for (&peer, state) in &self.peers {
            let Some(info) = &state.info else {
                continue;
            };
            let direct = info.ifindex == Some(link.ifindex)
                || link
                    .subnets
                    .iter()
                    .any(|subnet| subnet.contains(&info.address));
            if state.state != State::Established
                || !info.ebgp
                || !direct
                || !state.neighbor.fast_external_fallover
            {
                continue;
            }
            tracing::warn!(peer = %info.address, interface = %link.name,
                "the link to the neighbor went down: session ended at once (fast external \
                 fallover)");
            let _ = state
                .handle
                .commands
                .send(PeerCommand::LinkDown(link.name.clone()));
            ended.push(peer);
        }
        ended
    }
}

#[cfg(test)]
mod tests {

    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use tokio::sync::mpsc;

    use super::super::PeerState;
    use super::*;
    use crate::bgp::{config::BgpConfig, peer::PeerHandle, rib::PeerInfo};

    /// A speaker with two Established neighbors: eBGP 10.0.1.1 and iBGP 10.0.1.3 (AS 65101,
    /// ours), both on 10.0.1.0/24; `options` are TOML lines for the eBGP one.
    fn established(options: &str) -> (Speaker, Vec<mpsc::UnboundedReceiver<PeerCommand>>) {
        let config: BgpConfig = toml::from_str(&format!(
            "asn = 65101\nrouter_id = \"10.255.0.1\"\n\
             [[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\n{options}\n\
             [[neighbor]]\naddress = \"10.0.1.3\"\nremote_as = 65101\n"
        ))
        .unwrap();
        let setup = config.compile().unwrap();
        let mut speaker = Speaker::without_sockets(setup.clone());
        speaker.next_peer_id = 2;
        let mut receivers = Vec::new();
        for (i, neighbor) in setup.neighbors.iter().enumerate() {
            let (commands, receiver) = mpsc::unbounded_channel();
            receivers.push(receiver);
            let address: IpAddr = match i {
                0 => Ipv4Addr::new(10, 0, 1, 1).into(),
                _ => Ipv4Addr::new(10, 0, 1, 3).into(),
            };
            let peer = PeerId(i as u32);
            let mut state = PeerState::new(
                neighbor.clone(),
                None,
                Some(SocketAddr::new(address, 179)),
                PeerHandle {
                    commands,
                    counters: Default::default(),
                },
            );
            state.state = State::Established;
            state.info = Some(PeerInfo {
                id: peer,
                address,
                router_id: Ipv4Addr::new(10, 0, 1, 1 + i as u8),
                remote_as: if i == 0 { 65001 } else { 65101 },
                local_as: 65101,
                ebgp: i == 0,
                ifindex: Some(101),
                own_next_hops_only: false,
            });
            speaker.peers.insert(peer, state);
        }
        (speaker, receivers)
    }

    fn link(ifindex: u32, subnets: &[&str]) -> LinkDown {
        LinkDown {
            ifindex,
            name: format!("eth{ifindex}"),
            subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn the_link_of_a_directly_connected_ebgp_neighbor_ends_its_session() {
        let (mut speaker, mut commands) = established("");
        assert_eq!(speaker.link_down(&link(101, &["10.0.1.0/24"])), [PeerId(0)]);
        assert!(matches!(
            commands[0].try_recv(),
            Ok(PeerCommand::LinkDown(name)) if name == "eth101"
        ));
        // iBGP is not external: its session stays (to its hold timer or BFD).
        assert!(commands[1].try_recv().is_err());
        // By the session's interface alone (a link-local session, or subnets already gone).
        assert_eq!(speaker.link_down(&link(101, &[])), [PeerId(0)]);
    }

    #[test]
    fn other_links_and_neighbors_without_fallover_are_left_alone() {
        let (mut speaker, _commands) = established("");
        assert!(speaker.link_down(&link(102, &["10.0.2.0/24"])).is_empty());
        let (mut speaker, _commands) = established("fast_external_fallover = false");
        assert!(speaker.link_down(&link(101, &["10.0.1.0/24"])).is_empty());
        // Not Established: nothing to end.
        let (mut speaker, _commands) = established("");
        speaker.peer_mut(PeerId(0)).state = State::Active;
        assert!(speaker.link_down(&link(101, &["10.0.1.0/24"])).is_empty());
    }
}
