//! Random operations against a from-scratch model of the RIB.

use super::*;

/// Random operations against a from-scratch model: after each one, the Loc-RIB (as `best`
/// reports it and as the stream of changes builds it) must equal running the decision process
/// over the model's accepted paths; at the end every next hop and attribute set is released.
#[test]
fn random_operations_match_a_from_scratch_model() {
    use std::collections::HashMap as Map;

    let mut rng = SmallRng::seed_from_u64(42);
    let config = DecisionConfig {
        max_paths: 2,
        ..DecisionConfig::default()
    };
    let mut rib = Rib::new(config.clone());
    let peers: Vec<PeerInfo> = vec![
        tor(1, 65001),
        tor(2, 65002),
        tor(3, 65001),
        tor(4, LOCAL_AS),
        tor(5, LOCAL_AS),
    ];
    let policies = [
        accept_all(),
        ImportPolicy::default_only(),
        ImportPolicy::not_configured(),
    ];
    let prefixes: Vec<IpNet> = [
        "0.0.0.0/0",
        "10.0.0.0/8",
        "10.1.0.0/16",
        "::/0",
        "2001:db8::/32",
    ]
    .iter()
    .map(|p| net(p))
    .collect();
    let next_hops: Vec<IpAddr> = (1..=6)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 9, 0, i)))
        .collect();
    let random_attrs = |rng: &mut SmallRng, peer: &PeerInfo| {
        let first = if peer.ebgp {
            peer.remote_as
        } else {
            65001 + rng.random_range(0..2)
        };
        let mut path = vec![first];
        path.extend((0..rng.random_range(0..3)).map(|_| 64600 + rng.random_range(0..3)));
        if rng.random_ratio(1, 10) {
            path.push(LOCAL_AS);
        }
        let mut set = attrs(&path);
        set.med = rng.random_ratio(1, 2).then(|| rng.random_range(0..3));
        set.local_pref = rng
            .random_ratio(1, 2)
            .then(|| 100 + rng.random_range(0..2) * 50);
        set.origin = Some([Origin::Igp, Origin::Egp][rng.random_range(0..2)]);
        set
    };

    // The model.
    let mut up: Map<PeerId, ImportPolicy> = Map::new();
    let mut paths: Map<(PeerId, IpNet), (PathAttributes, IpAddr)> = Map::new();
    let mut states: Map<IpAddr, NextHopState> = Map::new();
    let mut fib: Map<IpNet, BestRoute> = Map::new();
    let apply = |fib: &mut Map<IpNet, BestRoute>, changes: Vec<LocRibChange>| {
        for change in changes {
            match change.best {
                Some(best) => fib.insert(change.prefix, best),
                None => fib.remove(&change.prefix),
            };
        }
    };

    // How often the interesting cases came up: the test is only as good as its coverage.
    let mut multipath_seen = 0;
    let mut decided_by: Map<Step, usize> = Map::new();
    for round in 0..20_000 {
        let peer = &peers[rng.random_range(0..peers.len())];
        match rng.random_range(0..100) {
            0..=59 if up.contains_key(&peer.id) => {
                let prefix = prefixes[rng.random_range(0..prefixes.len())];
                let path = rng.random_ratio(3, 4).then(|| {
                    (
                        random_attrs(&mut rng, peer),
                        next_hops[rng.random_range(0..next_hops.len())],
                    )
                });
                let spec = path.clone().map(|(attrs, hop)| PathSpec {
                    attrs: Arc::new(attrs),
                    next_hop: NextHop::new(hop),
                });
                let change = rib.update(peer.id, prefix, spec);
                apply(&mut fib, change.into_iter().collect());
                match path {
                    Some(path) => paths.insert((peer.id, prefix), path),
                    None => paths.remove(&(peer.id, prefix)),
                };
            }
            60..=69 if up.contains_key(&peer.id) => {
                let policy = policies[rng.random_range(0..policies.len())].clone();
                apply(&mut fib, rib.reapply_import(peer.id, &policy).unwrap());
                up.insert(peer.id, policy);
            }
            70..=79 => {
                let hop = next_hops[rng.random_range(0..next_hops.len())];
                let state = NextHopState {
                    reachable: rng.random_ratio(2, 3),
                    igp_cost: rng.random_range(0..2),
                    ..NextHopState::default()
                };
                apply(&mut fib, rib.set_next_hop_state(hop, state));
                states.insert(hop, state);
            }
            80..=89 if up.contains_key(&peer.id) => {
                apply(&mut fib, rib.peer_down(peer.id));
                up.remove(&peer.id);
                paths.retain(|(id, _), _| *id != peer.id);
            }
            _ if !up.contains_key(&peer.id) => {
                let policy = policies[rng.random_range(0..policies.len())].clone();
                rib.peer_up(peer.clone(), policy.clone()).unwrap();
                up.insert(peer.id, policy);
            }
            _ => {}
        }

        for prefix in &prefixes {
            let candidate_paths: Vec<(&PeerInfo, &PathAttributes, IpAddr)> = peers
                .iter()
                .filter_map(|peer| {
                    let (attrs, hop) = paths.get(&(peer.id, *prefix))?;
                    let accepted = up[&peer.id].evaluate(prefix, attrs, peer).is_ok();
                    accepted.then_some((peer, attrs, *hop))
                })
                .collect();
            let candidates: Vec<decision::Candidate> = candidate_paths
                .iter()
                .map(|(peer, attrs, hop)| {
                    let state = states.get(hop).copied().unwrap_or_default();
                    decision::Candidate {
                        attrs,
                        peer,
                        reachable: state.reachable,
                        igp_cost: state.igp_cost,
                    }
                })
                .collect();
            let selection = decision::select(&candidates, &config);
            multipath_seen += usize::from(selection.installed >= 2);
            if let Some(step) = selection.decided_by {
                *decided_by.entry(step).or_default() += 1;
            }
            let expected: Vec<(PeerId, &PathAttributes, IpAddr)> = selection.order
                [..selection.installed]
                .iter()
                .map(|&i| {
                    (
                        candidate_paths[i].0.id,
                        candidate_paths[i].1,
                        candidate_paths[i].2,
                    )
                })
                .collect();
            let actual = rib.best(prefix);
            let actual: Vec<(PeerId, &PathAttributes, IpAddr)> = actual
                .as_ref()
                .map(|best| {
                    best.paths
                        .iter()
                        .map(|p| (p.peer, &*p.attrs, p.next_hop.address))
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(actual, expected, "round {round}, {prefix}");
            assert_eq!(
                fib.get(prefix),
                rib.best(prefix).as_ref(),
                "round {round}, {prefix}"
            );
        }
        for peer in &peers {
            let received = paths.keys().filter(|(id, _)| *id == peer.id).count();
            assert_eq!(
                rib.peer_counts(peer.id).map(|(received, _)| received),
                up.contains_key(&peer.id).then_some(received)
            );
        }
    }

    assert!(multipath_seen > 100, "{multipath_seen}");
    for step in [
        Step::NextHopReachable,
        Step::LocalPref,
        Step::AsPathLength,
        Step::Origin,
        Step::Med,
        Step::ExternalOverInternal,
        Step::IgpCost,
        Step::RouterId,
    ] {
        assert!(
            decided_by.get(&step).copied().unwrap_or(0) > 100,
            "{decided_by:?}"
        );
    }

    for peer in &peers {
        apply(&mut fib, rib.peer_down(peer.id));
    }
    assert!(rib.is_empty());
    assert!(fib.is_empty());
    // The attribute sets the last changes held are unused now.
    rib.prune_attributes();
    let estimate = rib.memory_estimate();
    assert_eq!((estimate.next_hops, estimate.attribute_sets), (0, 0));
}
