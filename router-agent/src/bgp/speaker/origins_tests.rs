//! Run-time origination changes reach established peers, and only as differences.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::bgp::{
    config::BgpConfig,
    drain::{DrainEntry, DrainState},
    packet::{types::GRACEFUL_SHUTDOWN, update::Update},
    peer::PeerCommand,
    policy::{ExportSession, OriginExport, OriginatedRoute},
    rib::{NextHop, PeerId},
    speaker::Speaker,
};

const PEER: PeerId = PeerId(0);

/// A speaker with neighbor 10.0.1.1 established (export "all").
fn established() -> (Speaker, mpsc::UnboundedReceiver<PeerCommand>) {
    let config: BgpConfig = toml::from_str(
        "asn = 65101\nrouter_id = \"10.255.0.1\"\n\
         [[originate]]\nprefix = \"192.0.2.1/32\"\n\
         [[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\nexport = \"all\"\n",
    )
    .unwrap();
    let setup = config.compile().unwrap();
    let address = SocketAddr::new("10.0.1.1".parse().unwrap(), 179);
    let (mut speaker, commands) = Speaker::with_one_peer(setup, PEER, None, address);
    speaker.peers.get_mut(&PEER).unwrap().export_session = Some(ExportSession {
        local_as: 65101,
        ebgp: true,
        ipv4_next_hop: Some(NextHop::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 2)))),
        ipv6_next_hop: None,
        peer_address: address.ip(),
    });
    // What the session-up export sends: the configured route.
    assert_eq!(speaker.re_export([PEER]), 1);
    (speaker, commands)
}

fn sent(commands: &mut mpsc::UnboundedReceiver<PeerCommand>) -> Vec<Update> {
    let mut updates = Vec::new();
    while let Ok(command) = commands.try_recv() {
        if let PeerCommand::Send(batch) = command {
            updates.extend(batch);
        }
    }
    updates
}

#[test]
fn a_service_coming_up_and_down_is_announced_and_withdrawn() {
    let (mut speaker, mut commands) = established();
    sent(&mut commands);
    let dns: Arc<str> = Arc::from("dns");
    let vip = "198.51.100.53/32".parse().unwrap();
    let route = OriginatedRoute::for_service(&dns, vip, &OriginExport::default()).unwrap();
    speaker.set_service("dns", vec![vip], vec![route.clone()]);
    let updates = sent(&mut commands);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].nlri, vec!["198.51.100.53/32".parse().unwrap()]);
    // The same again: nothing sent.
    speaker.set_service("dns", vec![vip], vec![route]);
    assert!(sent(&mut commands).is_empty());
    speaker.set_service("dns", vec![vip], vec![]);
    let updates = sent(&mut commands);
    assert_eq!(
        updates[0].withdrawn,
        vec!["198.51.100.53/32".parse().unwrap()]
    );
}

#[test]
fn drain_tags_then_withdraws_when_due_and_undrain_restores() {
    let (mut speaker, mut commands) = established();
    sent(&mut commands);
    let mut drain = DrainState {
        all: Some(DrainEntry {
            since_unix: 1,
            prepend: 1,
            withdraw_at_unix: None,
        }),
        ..Default::default()
    };
    speaker.set_drain(drain.clone());
    let updates = sent(&mut commands);
    assert_eq!(updates.len(), 1);
    assert!(
        updates[0]
            .attributes
            .communities
            .contains(&GRACEFUL_SHUTDOWN)
    );
    assert_eq!(updates[0].attributes.as_path.length(), 2);
    // Withdrawal due already (a time in the past): the tick withdraws.
    drain.all.as_mut().unwrap().withdraw_at_unix = Some(2);
    speaker.set_drain(drain);
    let updates = sent(&mut commands);
    assert_eq!(updates[0].withdrawn, vec!["192.0.2.1/32".parse().unwrap()]);
    speaker.set_drain(DrainState::default());
    let updates = sent(&mut commands);
    assert_eq!(updates[0].nlri, vec!["192.0.2.1/32".parse().unwrap()]);
    assert!(
        !updates[0]
            .attributes
            .communities
            .contains(&GRACEFUL_SHUTDOWN)
    );
}
