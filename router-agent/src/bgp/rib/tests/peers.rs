//! Peers going down, attribute interning, next hops going down and up.

use super::*;

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
