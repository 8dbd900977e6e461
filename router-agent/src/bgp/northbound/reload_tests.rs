//! A reload that cannot apply a neighbor is refused as a whole (no sockets: the peer's task
//! is replaced by a channel the test reads).

use std::net::SocketAddr;

use tokio::sync::mpsc;

use crate::bgp::{
    config::BgpConfig, fsm::RemoteAs, peer::PeerCommand, rib::PeerId, speaker::Speaker,
};
use crate::fib::{Batch, Fib, FibLimits};

const PEER: PeerId = PeerId(0);

fn setup(neighbors: &str) -> crate::bgp::config::BgpSetup {
    let config: BgpConfig = toml::from_str(&format!(
        "asn = 65101\nrouter_id = \"10.255.0.1\"\n{neighbors}"
    ))
    .unwrap();
    config.compile().unwrap()
}

/// A speaker running neighbor 10.0.1.1 (AS 65001) as `PEER`.
fn speaker() -> (Speaker, mpsc::UnboundedReceiver<PeerCommand>) {
    let setup = setup("[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\n");
    let address = SocketAddr::new("10.0.1.1".parse().unwrap(), 179);
    let (speaker, commands) = Speaker::with_one_peer(setup, PEER, None, address);
    (speaker, commands)
}

#[tokio::test]
async fn a_neighbor_that_cannot_start_refuses_the_whole_reload() {
    let (mut speaker, mut commands) = speaker();
    // The running neighbor's session parameters change (a reset), and one is added whose
    // session cannot start: what `compile` refuses, as if it had let it through.
    let mut new = setup(
        "[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65002\n\
         [[neighbor]]\naddress = \"10.0.1.9\"\nremote_as = 65003\n",
    );
    new.neighbors[1].remote_as = RemoteAs::Exact(0);
    let mut fib = Fib::new(FibLimits::default());
    let mut batch = Batch::default();
    let err = speaker
        .reload(new, &mut fib, &mut batch, &|_| {
            Err(crate::next_hop_check::Unresolved::NotConnected)
        })
        .unwrap_err();
    assert!(
        err.contains("neighbor 10.0.1.9") && err.contains("nothing applied"),
        "{err}"
    );
    assert_eq!(speaker.peers.len(), 1, "no neighbor added");
    assert_eq!(
        speaker.peers[&PEER].neighbor.remote_as,
        RemoteAs::Exact(65001),
        "the running neighbor untouched"
    );
    assert!(commands.try_recv().is_err(), "its session was not reset");
    assert_eq!(speaker.setup.neighbors.len(), 1);

    // A dynamic range whose sessions could not start: refused the same way, naming it.
    let mut new = setup(
        "[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\n\
         [[dynamic_neighbor]]\nrange = \"10.0.2.0/24\"\nremote_as = 65001\n",
    );
    new.dynamic_neighbors[0].template.remote_as = RemoteAs::Exact(0);
    let err = speaker
        .reload(new, &mut fib, &mut batch, &|_| {
            Err(crate::next_hop_check::Unresolved::NotConnected)
        })
        .unwrap_err();
    assert!(err.contains("range 10.0.2.0/24"), "{err}");
    assert!(speaker.setup.dynamic_neighbors.is_empty());
}
