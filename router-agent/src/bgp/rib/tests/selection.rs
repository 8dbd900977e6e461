//! Best path and ECMP selection, import policy and its reapplication.

use super::*;

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
