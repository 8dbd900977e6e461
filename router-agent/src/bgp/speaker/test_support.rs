//! A speaker without sockets or tasks, for the unit tests of what it does with events.

use std::{collections::BTreeMap, net::SocketAddr};

use tokio::sync::mpsc;

use super::{PeerState, Speaker};
use crate::bgp::{
    config::BgpSetup,
    peer::{PeerCommand, PeerHandle},
    rib::{PeerId, Rib},
    unusable_log::UnusableLog,
};

impl Speaker {
    /// A speaker of `setup` with no peers, sockets or tasks.
    pub(in crate::bgp) fn without_sockets(setup: BgpSetup) -> Speaker {
        let (events, _) = mpsc::unbounded_channel();
        Speaker {
            rib: Rib::new(setup.decision.clone()),
            peers: BTreeMap::new(),
            next_peer_id: 1,
            events,
            unusable_log: UnusableLog::default(),
            restart_state: Default::default(),
            graceful_stopping: Default::default(),
            listening: Vec::new(),
            listener_keys: Default::default(),
            listener_ao_keys: Default::default(),
            refusals: Default::default(),
            ra_tasks: None,
            origins: super::origins::HostOrigins::new(setup.originated.clone(), Default::default()),
            setup,
        }
    }

    /// A speaker of `setup` whose first neighbor runs as `peer`, connected from `address`
    /// (created by dynamic range `range` if given); the receiver gets what is sent to it.
    pub(in crate::bgp) fn with_one_peer(
        setup: BgpSetup,
        peer: PeerId,
        range: Option<usize>,
        address: SocketAddr,
    ) -> (Speaker, mpsc::UnboundedReceiver<PeerCommand>) {
        let (sender, commands) = mpsc::unbounded_channel();
        let neighbor = setup.neighbors[0].clone();
        let mut speaker = Speaker::without_sockets(setup);
        let handle = PeerHandle {
            commands: sender,
            counters: Default::default(),
        };
        let state = PeerState::new(neighbor, range, Some(address), handle);
        speaker.peers.insert(peer, state);
        (speaker, commands)
    }
}
