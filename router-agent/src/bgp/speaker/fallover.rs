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
