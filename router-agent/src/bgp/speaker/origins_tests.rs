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

/// Redistribution changes are applied per prefix; whatever the sequence, the result must be
/// what a full recomputation gives, in the effective table and in what the peer was sent.
#[test]
fn incremental_redistribution_matches_a_full_recomputation() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use std::collections::BTreeMap;

    use crate::bgp::policy::{ExportModifiers, HostPrefix, build_adj_rib_out};
    use crate::netlink::{FollowedRoute, FollowedRouteKey, RouteKind};

    let (mut speaker, mut commands) = established();
    let mut rng = StdRng::seed_from_u64(11);
    let prefix = |i: u8| -> ipnet::IpNet { format!("10.200.0.{i}/32").parse().unwrap() };
    let host = |i: u8| {
        let route = FollowedRoute {
            key: FollowedRouteKey {
                table: 254,
                prefix: prefix(i),
                selector: 0,
                metric: 0,
            },
            protocol: 3,
            kind: RouteKind::Blackhole,
            followed: false,
        };
        HostPrefix::from_kernel_route(&route, 201).unwrap()
    };
    let export = OriginExport::default();
    // The peer's view, from the UPDATEs it was sent.
    let mut peer_view: BTreeMap<ipnet::IpNet, Vec<u32>> = BTreeMap::new();
    for round in 0..400 {
        let rule = ["a", "b"][rng.random_range(0..2)];
        let rule_name: Arc<str> = Arc::from(rule);
        match rng.random_range(0..10) {
            0 => {
                // A service claiming (and maybe announcing) one of the prefixes.
                let i = rng.random_range(0..16);
                let announced = if rng.random_bool(0.5) {
                    vec![
                        OriginatedRoute::for_service(&Arc::from("svc"), prefix(i), &export)
                            .unwrap(),
                    ]
                } else {
                    vec![]
                };
                speaker.set_service("svc", vec![prefix(i)], announced);
            }
            1 => speaker.remove_redistributed(rule),
            _ => {
                let mut chosen: Vec<(u8, bool)> = Vec::new();
                for i in 0..16u8 {
                    if rng.random_bool(0.5) {
                        chosen.push((i, rng.random_bool(0.2)));
                    }
                }
                let routes = chosen
                    .into_iter()
                    .map(|(i, with_med)| {
                        let route =
                            OriginatedRoute::redistributed(&rule_name, host(i), &export).unwrap();
                        if with_med {
                            route.with_modifiers(ExportModifiers {
                                med: Some(5),
                                ..Default::default()
                            })
                        } else {
                            route
                        }
                    })
                    .collect();
                speaker.set_redistributed(rule, routes);
            }
        }
        let full = speaker
            .origins
            .sources
            .effective(|_| Some(ExportModifiers::default()));
        assert_eq!(speaker.origins.effective, full, "round {round}");
        for update in sent(&mut commands) {
            for withdrawn in &update.withdrawn {
                peer_view.remove(&ipnet::IpNet::V4(*withdrawn));
            }
            for nlri in &update.nlri {
                peer_view.insert(
                    ipnet::IpNet::V4(*nlri),
                    update.attributes.communities.clone(),
                );
            }
        }
        let state = &speaker.peers[&PEER];
        let target = build_adj_rib_out(
            &full,
            state.export_session.as_ref().unwrap(),
            &state.neighbor.export,
        );
        let expected: Vec<ipnet::IpNet> = target.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            peer_view.keys().copied().collect::<Vec<_>>(),
            expected,
            "round {round}"
        );
    }
}
