use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::bgp::packet::types::{AsPath, AsSegment, AsSegmentKind, Origin};
use crate::bgp::policy::{Filter, MaxPrefix, MaxPrefixAction};

mod next_hop_sanity;

const LOCAL_AS: u32 = 65000;

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn tor(id: u32, remote_as: u32) -> PeerInfo {
    PeerInfo {
        id: PeerId(id),
        address: IpAddr::V4(Ipv4Addr::new(10, 0, id as u8, 1)),
        router_id: Ipv4Addr::new(192, 0, 2, id as u8),
        remote_as,
        local_as: LOCAL_AS,
        ebgp: remote_as != LOCAL_AS,
        ifindex: Some(100 + id),
        own_next_hops_only: false,
    }
}

fn accept_all() -> ImportPolicy {
    ImportPolicy {
        filter: Filter::All,
        max_prefix: None,
    }
}

fn attrs(asns: &[u32]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath {
            segments: vec![AsSegment {
                kind: AsSegmentKind::Sequence,
                asns: asns.to_vec(),
            }],
        },
        ..Default::default()
    }
}

fn spec(peer: &PeerInfo, attrs: PathAttributes) -> PathSpec {
    PathSpec {
        attrs: Arc::new(attrs),
        next_hop: NextHop::new(peer.address),
    }
}

/// Two ToRs in different ASes, both accepting everything.
fn dual_homed() -> (Rib, PeerInfo, PeerInfo) {
    let mut rib = Rib::default();
    let (a, b) = (tor(1, 65001), tor(2, 65002));
    rib.peer_up(a.clone(), accept_all()).unwrap();
    rib.peer_up(b.clone(), accept_all()).unwrap();
    (rib, a, b)
}

fn installed_peers(change: &LocRibChange) -> Vec<PeerId> {
    change
        .best
        .as_ref()
        .map(|best| best.paths.iter().map(|path| path.peer).collect())
        .unwrap_or_default()
}

#[test]
fn first_path_installs_and_duplicate_changes_nothing() {
    let (mut rib, a, _) = dual_homed();
    let change = rib
        .update(a.id, net("0.0.0.0/0"), Some(spec(&a, attrs(&[65001]))))
        .expect("new route");
    assert_eq!(installed_peers(&change), vec![a.id]);
    assert_eq!(change.best.unwrap().best().next_hop.address, a.address);
    assert_eq!(
        rib.update(a.id, net("0.0.0.0/0"), Some(spec(&a, attrs(&[65001])))),
        None,
        "the same route again is no change"
    );
    assert_eq!(rib.peer_counts(a.id), Some((1, 1)));
}

#[test]
fn dual_homed_default_route_is_ecmp_across_neighbor_ases() {
    let (mut rib, a, b) = dual_homed();
    rib.update(a.id, net("0.0.0.0/0"), Some(spec(&a, attrs(&[65001]))));
    let change = rib
        .update(b.id, net("0.0.0.0/0"), Some(spec(&b, attrs(&[65002]))))
        .expect("second path joins the multipath set");
    assert_eq!(installed_peers(&change), vec![a.id, b.id]);
}

#[test]
fn without_multipath_relax_different_neighbor_ases_do_not_share() {
    let mut rib = Rib::new(DecisionConfig {
        multipath_relax: false,
        ..DecisionConfig::default()
    });
    let (a, b) = (tor(1, 65001), tor(2, 65002));
    rib.peer_up(a.clone(), accept_all()).unwrap();
    rib.peer_up(b.clone(), accept_all()).unwrap();
    rib.update(a.id, net("0.0.0.0/0"), Some(spec(&a, attrs(&[65001]))));
    assert_eq!(
        rib.update(b.id, net("0.0.0.0/0"), Some(spec(&b, attrs(&[65002])))),
        None,
        "b loses on router id and may not join"
    );
    assert_eq!(rib.best(&net("0.0.0.0/0")).unwrap().paths.len(), 1);
}

#[test]
fn max_paths_limits_the_installed_set() {
    let mut rib = Rib::new(DecisionConfig {
        max_paths: 2,
        ..DecisionConfig::default()
    });
    let tors: Vec<PeerInfo> = (1..=4).map(|i| tor(i, 65000 + i)).collect();
    for t in &tors {
        rib.peer_up(t.clone(), accept_all()).unwrap();
        rib.update(t.id, net("0.0.0.0/0"), Some(spec(t, attrs(&[t.remote_as]))));
    }
    let best = rib.best(&net("0.0.0.0/0")).unwrap();
    let peers: Vec<PeerId> = best.paths.iter().map(|p| p.peer).collect();
    assert_eq!(peers, vec![PeerId(1), PeerId(2)]);
}

#[test]
fn withdrawing_the_best_promotes_the_next() {
    let (mut rib, a, b) = dual_homed();
    let prefix = net("10.0.0.0/8");
    rib.update(a.id, prefix, Some(spec(&a, attrs(&[65001]))));
    // b's path is longer: a candidate, not installed.
    assert_eq!(
        rib.update(b.id, prefix, Some(spec(&b, attrs(&[65002, 65100])))),
        None
    );
    let change = rib.update(a.id, prefix, None).expect("best withdrawn");
    assert_eq!(installed_peers(&change), vec![b.id]);
    let change = rib.update(b.id, prefix, None).expect("last path withdrawn");
    assert_eq!(change.best, None);
    assert!(rib.is_empty());
    assert_eq!(rib.update(b.id, prefix, None), None, "unknown withdrawal");
    assert_eq!(rib.peer_counts(a.id), Some((0, 0)));
}

#[test]
fn replacing_a_path_with_worse_attributes_moves_the_best() {
    let (mut rib, a, b) = dual_homed();
    let prefix = net("10.0.0.0/8");
    rib.update(a.id, prefix, Some(spec(&a, attrs(&[65001]))));
    rib.update(b.id, prefix, Some(spec(&b, attrs(&[65002, 65100]))));
    let change = rib
        .update(a.id, prefix, Some(spec(&a, attrs(&[65001, 65100, 65100]))))
        .expect("implicit withdraw of a's old path");
    assert_eq!(installed_peers(&change), vec![b.id]);
    assert_eq!(rib.peer_counts(a.id), Some((1, 1)));
}

#[test]
fn routes_view_marks_every_path() {
    let (mut rib, a, b) = dual_homed();
    let c = tor(3, 65003);
    rib.peer_up(c.clone(), ImportPolicy::default_only())
        .unwrap();
    let prefix = net("10.0.0.0/8");
    rib.update(a.id, prefix, Some(spec(&a, attrs(&[65001]))));
    rib.update(b.id, prefix, Some(spec(&b, attrs(&[65002]))));
    rib.update(c.id, prefix, Some(spec(&c, attrs(&[65003]))));
    let d = tor(4, 65004);
    rib.peer_up(d.clone(), accept_all()).unwrap();
    rib.update(d.id, prefix, Some(spec(&d, attrs(&[65004, 1]))));

    let views: Vec<RouteView> = rib.routes().collect();
    assert_eq!(views.len(), 1);
    let statuses: Vec<(PeerId, PathStatus)> = views[0]
        .paths
        .iter()
        .map(|view| (view.path.peer, view.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (a.id, PathStatus::Best),
            (b.id, PathStatus::Multipath),
            (d.id, PathStatus::Candidate),
            (c.id, PathStatus::Rejected(ImportRejection::Denied)),
        ]
    );
    let received: Vec<(IpNet, bool)> = rib.adj_rib_in(c.id).map(|(p, _, ok)| (p, ok)).collect();
    assert_eq!(received, vec![(prefix, false)]);
}

#[test]
fn as_path_loop_is_kept_in_adj_rib_in_but_not_installed() {
    let (mut rib, a, _) = dual_homed();
    let prefix = net("10.0.0.0/8");
    assert_eq!(
        rib.update(a.id, prefix, Some(spec(&a, attrs(&[65001, LOCAL_AS])))),
        None
    );
    assert_eq!(rib.best(&prefix), None);
    assert_eq!(rib.peer_counts(a.id), Some((1, 0)));
    let view = rib.routes().next().unwrap();
    assert_eq!(
        view.paths[0].status,
        PathStatus::Rejected(ImportRejection::AsPathLoop(LOCAL_AS))
    );
}

#[test]
fn rfc8212_ebgp_peer_without_import_policy_installs_nothing() {
    let mut rib = Rib::default();
    let (ebgp, ibgp) = (tor(1, 65001), tor(2, LOCAL_AS));
    rib.peer_up(ebgp.clone(), ImportPolicy::not_configured())
        .unwrap();
    rib.peer_up(ibgp.clone(), ImportPolicy::not_configured())
        .unwrap();
    assert_eq!(
        rib.update(
            ebgp.id,
            net("0.0.0.0/0"),
            Some(spec(&ebgp, attrs(&[65001])))
        ),
        None
    );
    assert!(
        rib.update(
            ibgp.id,
            net("0.0.0.0/0"),
            Some(spec(&ibgp, attrs(&[65001])))
        )
        .is_some(),
        "RFC 8212 is about eBGP only"
    );
}

#[test]
fn reapply_import_after_a_policy_change() {
    let mut rib = Rib::default();
    let a = tor(1, 65001);
    rib.peer_up(a.clone(), ImportPolicy::default_only())
        .unwrap();
    let specific = net("10.1.0.0/16");
    let default = net("0.0.0.0/0");
    rib.update(a.id, default, Some(spec(&a, attrs(&[65001]))));
    assert_eq!(
        rib.update(a.id, specific, Some(spec(&a, attrs(&[65001])))),
        None
    );
    assert_eq!(rib.peer_counts(a.id), Some((2, 1)));

    // Widening the policy installs the route kept pre-policy: no route refresh needed.
    let changes = rib.reapply_import(a.id, &accept_all()).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].prefix, specific);
    assert_eq!(installed_peers(&changes[0]), vec![a.id]);
    assert_eq!(rib.peer_counts(a.id), Some((2, 2)));

    // Narrowing it again removes it.
    let changes = rib
        .reapply_import(a.id, &ImportPolicy::default_only())
        .unwrap();
    assert_eq!(
        changes,
        vec![LocRibChange {
            prefix: specific,
            best: None
        }]
    );
    assert!(rib.best(&default).is_some());
    assert_eq!(rib.peer_counts(a.id), Some((2, 1)));
    assert_eq!(
        rib.reapply_import(PeerId(99), &accept_all()),
        Err(RibError::UnknownPeer(PeerId(99)))
    );
}

#[test]
fn peer_down_with_many_prefixes() {
    let (mut rib, a, b) = dual_homed();
    let only_a = 20_000u32;
    let shared_attrs_a = rib.intern(attrs(&[65001]));
    let shared_attrs_b = rib.intern(attrs(&[65002]));
    for i in 0..only_a {
        let prefix = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap());
        let from_a = PathSpec {
            attrs: shared_attrs_a.clone(),
            next_hop: NextHop::new(a.address),
        };
        rib.update(a.id, prefix, Some(from_a));
        if i % 2 == 0 {
            let from_b = PathSpec {
                attrs: shared_attrs_b.clone(),
                next_hop: NextHop::new(b.address),
            };
            rib.update(b.id, prefix, Some(from_b));
        }
    }
    // An IPv6 route from b only: a's pass must not touch the IPv6 table at all.
    rib.update(b.id, net("2001:db8::/32"), Some(spec(&b, attrs(&[65002]))));
    drop((shared_attrs_a, shared_attrs_b));
    assert_eq!(rib.len(), only_a as usize + 1);

    let started = Instant::now();
    let changes = rib.peer_down(a.id);
    let elapsed = started.elapsed();
    assert_eq!(changes.len(), only_a as usize);
    let (withdrawn, moved): (Vec<_>, Vec<_>) = changes.iter().partition(|c| c.best.is_none());
    assert_eq!(withdrawn.len(), only_a as usize / 2);
    assert!(moved.iter().all(|c| installed_peers(c) == vec![b.id]));
    assert_eq!(rib.len(), only_a as usize / 2 + 1);
    assert_eq!(rib.peer(a.id), None);
    assert!(
        rib.routes()
            .all(|r| r.paths.iter().all(|p| p.path.peer == b.id))
    );
    // a's attribute set is gone from the interner; b's (one set for IPv4 and IPv6) stays.
    assert_eq!(rib.memory_estimate().attribute_sets, 1);
    assert_eq!(rib.memory_estimate().next_hops, 1);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    // The session comes back.
    rib.peer_up(a.clone(), accept_all()).unwrap();
    assert!(
        rib.update(a.id, net("10.0.0.0/24"), Some(spec(&a, attrs(&[65001]))))
            .is_some()
    );
    assert_eq!(
        rib.peer_up(a.clone(), accept_all()),
        Err(RibError::PeerExists(a.id))
    );
}

#[test]
fn peer_down_of_an_uninstalled_path_can_change_the_best_through_med() {
    // The MED triple: C (iBGP, AS 65001, MED 0) knocks out B (eBGP, AS 65001, MED 10); A
    // (eBGP, AS 65002) wins. Without C, B survives MED and wins on router id.
    let mut rib = Rib::new(DecisionConfig {
        max_paths: 1,
        ..DecisionConfig::default()
    });
    let b = tor(1, 65001);
    let a = tor(2, 65002);
    let c = tor(3, LOCAL_AS);
    for peer in [&a, &b, &c] {
        rib.peer_up(peer.clone(), accept_all()).unwrap();
    }
    let prefix = net("10.0.0.0/8");
    let med = |value| {
        let mut attrs = attrs(&[65001]);
        attrs.med = Some(value);
        attrs
    };
    rib.update(a.id, prefix, Some(spec(&a, attrs(&[65002]))));
    rib.update(b.id, prefix, Some(spec(&b, med(10))));
    rib.update(c.id, prefix, Some(spec(&c, med(0))));
    assert_eq!(rib.best(&prefix).unwrap().best().peer, a.id);
    let changes = rib.peer_down(c.id);
    assert_eq!(changes.len(), 1);
    assert_eq!(installed_peers(&changes[0]), vec![b.id]);
}

#[test]
fn interning_shares_attributes_between_prefixes_and_peers_down_frees_them() {
    let (mut rib, a, _) = dual_homed();
    for i in 0..10u8 {
        // Each UPDATE builds its own Arc; the RIB must still store one shared set.
        let prefix = IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, i, 0, 0), 16).unwrap());
        rib.update(a.id, prefix, Some(spec(&a, attrs(&[65001, 65100]))));
    }
    let stored: Vec<Arc<PathAttributes>> = rib.adj_rib_in(a.id).map(|(_, p, _)| p.attrs).collect();
    assert_eq!(stored.len(), 10);
    assert!(stored.iter().all(|attrs| Arc::ptr_eq(attrs, &stored[0])));
    assert_eq!(rib.memory_estimate().attribute_sets, 1);
    let weak = Arc::downgrade(&stored[0]);
    drop(stored);

    rib.peer_down(a.id);
    assert_eq!(weak.upgrade(), None, "pruned and freed");
    assert_eq!(rib.memory_estimate().attribute_sets, 0);
}

#[test]
fn replaced_attribute_sets_are_pruned() {
    let (mut rib, a, _) = dual_homed();
    let prefix = net("0.0.0.0/0");
    rib.update(a.id, prefix, Some(spec(&a, attrs(&[65001]))));
    let first = Arc::downgrade(&rib.best(&prefix).unwrap().best().attrs);
    rib.update(a.id, prefix, Some(spec(&a, attrs(&[65001, 1]))));
    assert_eq!(rib.prune_attributes(), 1);
    assert_eq!(first.upgrade(), None);
}

#[test]
fn unreachable_next_hop_moves_traffic_and_comes_back() {
    let (mut rib, a, b) = dual_homed();
    let prefix = net("0.0.0.0/0");
    rib.update(a.id, prefix, Some(spec(&a, attrs(&[65001]))));
    rib.update(b.id, prefix, Some(spec(&b, attrs(&[65002]))));

    let down = NextHopState {
        reachable: false,
        igp_cost: 0,
        ..NextHopState::default()
    };
    let changes = rib.set_next_hop_state(a.address, down);
    assert_eq!(changes.len(), 1);
    assert_eq!(installed_peers(&changes[0]), vec![b.id]);
    assert_eq!(
        rib.set_next_hop_state(a.address, down),
        Vec::new(),
        "no news"
    );
    let view = rib.routes().next().unwrap();
    assert_eq!(view.paths[1].status, PathStatus::NextHopUnreachable);

    let changes = rib.set_next_hop_state(a.address, NextHopState::default());
    assert_eq!(installed_peers(&changes[0]), vec![a.id, b.id]);

    // A higher IGP cost takes a path out of the ECMP set (step e).
    let far = NextHopState {
        reachable: true,
        igp_cost: 10,
        ..NextHopState::default()
    };
    let changes = rib.set_next_hop_state(a.address, far);
    assert_eq!(installed_peers(&changes[0]), vec![b.id]);

    // Both unreachable: the prefix leaves the Loc-RIB, still in the Adj-RIB-In.
    rib.set_next_hop_state(a.address, down);
    let changes = rib.set_next_hop_state(b.address, down);
    assert_eq!(changes[0].best, None);
    assert_eq!(rib.len(), 1);
}

#[test]
fn a_next_hop_marked_down_before_its_routes_arrive_starts_down() {
    let (mut rib, a, _) = dual_homed();
    let down = NextHopState {
        reachable: false,
        igp_cost: 0,
        ..NextHopState::default()
    };
    assert!(rib.set_next_hop_state(a.address, down).is_empty());
    assert_eq!(
        rib.update(a.id, net("0.0.0.0/0"), Some(spec(&a, attrs(&[65001])))),
        None
    );
}

#[test]
fn max_prefix_warn_and_teardown_signals() {
    let mut rib = Rib::default();
    let (a, b) = (tor(1, 65001), tor(2, 65002));
    let limited = |action| ImportPolicy {
        filter: Filter::All,
        max_prefix: Some(MaxPrefix { limit: 3, action }),
    };
    rib.peer_up(a.clone(), limited(MaxPrefixAction::Warn))
        .unwrap();
    let teardown = MaxPrefixAction::Teardown {
        restart_after: Some(Duration::from_secs(60)),
    };
    rib.peer_up(b.clone(), limited(teardown)).unwrap();
    let prefix = |i: u8| IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, i, 0, 0), 16).unwrap());

    for i in 0..3 {
        rib.update(a.id, prefix(i), Some(spec(&a, attrs(&[65001]))));
    }
    assert_eq!(
        rib.take_max_prefix_exceeded(a.id),
        None,
        "at the limit is fine"
    );
    rib.update(a.id, prefix(3), Some(spec(&a, attrs(&[65001]))));
    let event = rib.take_max_prefix_exceeded(a.id).expect("crossed");
    assert_eq!(
        (event.limit, event.received, event.action),
        (3, 4, MaxPrefixAction::Warn)
    );
    rib.update(a.id, prefix(4), Some(spec(&a, attrs(&[65001]))));
    assert_eq!(
        rib.take_max_prefix_exceeded(a.id),
        None,
        "reported once per crossing"
    );
    // Rejected routes count too: they are stored all the same.
    let looped = attrs(&[65001, LOCAL_AS]);
    rib.update(a.id, prefix(5), Some(spec(&a, looped)));
    assert_eq!(rib.peer_counts(a.id), Some((6, 5)));
    // Falling back under the limit re-arms it.
    for i in 0..4 {
        rib.update(a.id, prefix(i), None);
    }
    rib.update(a.id, prefix(0), Some(spec(&a, attrs(&[65001]))));
    rib.update(a.id, prefix(1), Some(spec(&a, attrs(&[65001]))));
    assert!(rib.take_max_prefix_exceeded(a.id).is_some());

    for i in 0..4 {
        rib.update(b.id, prefix(i), Some(spec(&b, attrs(&[65002]))));
    }
    let event = rib.take_max_prefix_exceeded(b.id).expect("crossed");
    assert_eq!(event.action, teardown);
    // The speaker tears the session down.
    rib.peer_down(b.id);
    assert_eq!(rib.take_max_prefix_exceeded(b.id), None);
}

#[test]
fn memory_estimate_counts_what_is_stored() {
    let (mut rib, a, b) = dual_homed();
    rib.update(a.id, net("0.0.0.0/0"), Some(spec(&a, attrs(&[65001]))));
    rib.update(b.id, net("0.0.0.0/0"), Some(spec(&b, attrs(&[65002]))));
    rib.update(b.id, net("::/0"), Some(spec(&b, attrs(&[65002]))));
    let estimate = rib.memory_estimate();
    assert_eq!(
        (
            estimate.prefixes,
            estimate.paths,
            estimate.attribute_sets,
            estimate.next_hops
        ),
        (2, 3, 2, 2)
    );
    assert!(estimate.total_bytes() > 0);
    // ::/0's one path is inline; 0.0.0.0/0's two take a 32-byte block (48 with the header).
    assert_eq!(estimate.path_bytes, 48);
    assert_eq!(size_of::<StoredPath>(), 16);
    assert_eq!(size_of::<PrefixEntry>(), 24);
}

#[test]
fn apply_order_permutes() {
    let mut items = ['a', 'b', 'c', 'd'];
    apply_order(&mut items, &[2, 0, 3, 1]);
    assert_eq!(items, ['c', 'a', 'd', 'b']);
    let mut items = ['a', 'b', 'c'];
    apply_order(&mut items, &[0, 1, 2]);
    assert_eq!(items, ['a', 'b', 'c']);
}

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

/// Resident set size from /proc, in bytes (Linux).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// 1M prefixes from each of two ToRs sharing ~100 attribute sets, arriving in UPDATE-sized
/// batches (one attribute set per batch, as a real UPDATE packs them).
/// `cargo test --release -- --ignored --nocapture million`
#[test]
#[ignore = "memory/speed check; run with --release --ignored --nocapture"]
fn million_prefixes_from_two_peers() {
    const PREFIXES: u32 = 1_000_000;
    const ATTRIBUTE_SETS: u32 = 100;
    const BATCH: usize = 200;
    let rss_before = rss_bytes();
    let (mut rib, a, b) = dual_homed();
    let mut rng = SmallRng::seed_from_u64(7);
    let mut prefixes: Vec<IpNet> = (0..PREFIXES)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0100_0000 + (i << 8)), 24).unwrap()))
        .collect();
    // Tables do not arrive sorted.
    for i in (1..prefixes.len()).rev() {
        prefixes.swap(i, rng.random_range(0..=i));
    }
    let attribute_sets = |peer: &PeerInfo| -> Vec<PathAttributes> {
        (0..ATTRIBUTE_SETS)
            .map(|i| {
                let mut set = attrs(&[peer.remote_as, 64600 + i, 64700 + i % 7]);
                set.communities = vec![(65000 << 16) | i];
                set
            })
            .collect()
    };

    let started = Instant::now();
    let mut changes = 0usize;
    for peer in [&a, &b] {
        let sets = attribute_sets(peer);
        for (batch, chunk) in prefixes.chunks(BATCH).enumerate() {
            let shared = Arc::new(sets[batch % sets.len()].clone());
            for prefix in chunk {
                let spec = PathSpec {
                    attrs: shared.clone(),
                    next_hop: NextHop::new(peer.address),
                };
                changes += usize::from(rib.update(peer.id, *prefix, Some(spec)).is_some());
            }
        }
    }
    let load = started.elapsed();
    let updates = 2 * PREFIXES as usize;
    let estimate = rib.memory_estimate();
    let rss = rss_bytes().saturating_sub(rss_before);

    let started = Instant::now();
    let mut down_changes = 0usize;
    rib.peer_down_each(a.id, |_| down_changes += 1);
    let down = started.elapsed();

    // The prefix list itself (1M IpNet) is part of the RSS growth; subtract it.
    let own = prefixes.capacity() * size_of::<IpNet>();
    println!(
        "load: {updates} updates in {load:?} = {:.0} updates/s, {changes} Loc-RIB changes",
        updates as f64 / load.as_secs_f64()
    );
    println!(
        "estimate: {} prefixes, {} paths, {} attribute sets: {} bytes = {:.1} bytes/prefix, \
         {:.1} bytes/path (table {}, paths {}, shared {})",
        estimate.prefixes,
        estimate.paths,
        estimate.attribute_sets,
        estimate.total_bytes(),
        estimate.total_bytes() as f64 / estimate.prefixes as f64,
        estimate.total_bytes() as f64 / estimate.paths as f64,
        estimate.table_bytes,
        estimate.path_bytes,
        estimate.shared_bytes
    );
    println!(
        "RSS growth (minus the test's prefix list): {} bytes = {:.1} bytes/prefix, {:.1} bytes/path",
        rss - own,
        (rss - own) as f64 / PREFIXES as f64,
        (rss - own) as f64 / updates as f64
    );
    println!(
        "peer_down of 1M prefixes: {down:?}, {down_changes} changes ({:.0} prefixes/s)",
        PREFIXES as f64 / down.as_secs_f64()
    );

    // The session comes back and sends its table in prefix order, as speakers walking their
    // own table do: the B-tree search then stays in cache.
    prefixes.sort_unstable();
    rib.peer_up(a.clone(), accept_all()).unwrap();
    let sets = attribute_sets(&a);
    let started = Instant::now();
    for (batch, chunk) in prefixes.chunks(BATCH).enumerate() {
        let shared = Arc::new(sets[batch % sets.len()].clone());
        for prefix in chunk {
            let spec = PathSpec {
                attrs: shared.clone(),
                next_hop: NextHop::new(a.address),
            };
            rib.update(a.id, *prefix, Some(spec));
        }
    }
    let reload = started.elapsed();
    println!(
        "re-sent in prefix order: {PREFIXES} updates in {reload:?} = {:.0} updates/s",
        PREFIXES as f64 / reload.as_secs_f64()
    );
    assert_eq!(estimate.prefixes, PREFIXES as usize);
    assert_eq!(down_changes, PREFIXES as usize);
}
