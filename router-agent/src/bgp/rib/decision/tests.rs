use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::bgp::packet::types::{AsPath, AsSegment, AsSegmentKind};
use crate::bgp::rib::PeerId;

const LOCAL_AS: u32 = 65000;

fn peer(id: u32, remote_as: u32) -> PeerInfo {
    PeerInfo {
        id: PeerId(id),
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8)),
        router_id: Ipv4Addr::new(192, 0, 2, id as u8),
        remote_as,
        local_as: LOCAL_AS,
        ebgp: remote_as != LOCAL_AS,
        ifindex: None,
        own_next_hops_only: false,
    }
}

fn attrs(path: &[u32]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath {
            segments: vec![AsSegment {
                kind: AsSegmentKind::Sequence,
                asns: path.to_vec(),
            }],
        },
        ..Default::default()
    }
}

fn candidate<'a>(attrs: &'a PathAttributes, peer: &'a PeerInfo) -> Candidate<'a> {
    Candidate {
        attrs,
        peer,
        reachable: true,
        igp_cost: 0,
    }
}

/// Runs the process on `[a, b]` and on `[b, a]` (the outcome must not depend on order);
/// returns which one won (0 = a) and the deciding step.
fn duel(a: Candidate, b: Candidate, config: &DecisionConfig) -> (usize, Option<Step>) {
    let forward = select(&[a, b], config);
    let backward = select(&[b, a], config);
    assert_eq!(
        forward.order[0],
        1 - backward.order[0],
        "order-dependent outcome"
    );
    assert_eq!(forward.decided_by, backward.decided_by);
    (forward.order[0], forward.decided_by)
}

fn default_config() -> DecisionConfig {
    DecisionConfig::default()
}

#[test]
fn step_0_unreachable_next_hop_loses_even_with_better_attributes() {
    let (p1, p2) = (peer(1, 65001), peer(2, 65002));
    let mut better = attrs(&[65001]);
    better.local_pref = Some(500);
    let plain = attrs(&[65002, 65003, 65004]);
    let mut a = candidate(&better, &p1);
    a.reachable = false;
    let b = candidate(&plain, &p2);
    assert_eq!(
        duel(a, b, &default_config()),
        (1, Some(Step::NextHopReachable))
    );
    // Nothing usable: nothing installed, but the candidates are still ranked.
    let mut b_unreachable = b;
    b_unreachable.reachable = false;
    let selection = select(&[a, b_unreachable], &default_config());
    assert_eq!(selection.installed, 0);
    assert_eq!(selection.order.len(), 2);
}

#[test]
fn step_a_highest_local_pref_for_ibgp_routes() {
    let (p1, p2) = (peer(1, LOCAL_AS), peer(2, LOCAL_AS));
    let mut high = attrs(&[65010, 65011, 65012]);
    high.local_pref = Some(200);
    let low = attrs(&[65010]);
    assert_eq!(
        duel(
            candidate(&high, &p1),
            candidate(&low, &p2),
            &default_config()
        ),
        (0, Some(Step::LocalPref))
    );
}

#[test]
fn step_a_ebgp_local_pref_is_ignored_and_defaults_to_100() {
    let (ebgp, ibgp) = (peer(1, 65001), peer(2, LOCAL_AS));
    // A LOCAL_PREF sent by an external peer must not win it anything.
    let mut forged = attrs(&[65001]);
    forged.local_pref = Some(1000);
    let mut internal = attrs(&[65001, 65002, 65003]);
    internal.local_pref = Some(150);
    assert_eq!(
        duel(
            candidate(&forged, &ebgp),
            candidate(&internal, &ibgp),
            &default_config()
        ),
        (1, Some(Step::LocalPref))
    );
    // iBGP without LOCAL_PREF gets the default too: tie at this step.
    let internal_default = attrs(&[65001]);
    let config = default_config();
    let a = candidate(&forged, &ebgp);
    let b = candidate(&internal_default, &ibgp);
    assert_eq!(
        prefer(Step::LocalPref, &a, &b, &config),
        Some(Ordering::Equal)
    );
}

#[test]
fn step_b_shortest_as_path() {
    let (p1, p2) = (peer(1, 65001), peer(2, 65002));
    let short = attrs(&[65002, 65100]);
    let long = attrs(&[65001, 65100, 65100]);
    // The longer path's peer has the lower router id: the earlier step must decide first.
    assert_eq!(
        duel(
            candidate(&long, &p1),
            candidate(&short, &p2),
            &default_config()
        ),
        (1, Some(Step::AsPathLength))
    );
}

#[test]
fn step_b_as_set_counts_as_one() {
    let (p1, p2) = (peer(1, 65001), peer(2, 65002));
    let mut with_set = attrs(&[65001]);
    with_set.as_path.segments.push(AsSegment {
        kind: AsSegmentKind::Set,
        asns: vec![1, 2, 3, 4],
    });
    let two = attrs(&[65002, 65003]);
    let config = default_config();
    let (a, b) = (candidate(&with_set, &p1), candidate(&two, &p2));
    assert_eq!(
        prefer(Step::AsPathLength, &a, &b, &config),
        Some(Ordering::Equal)
    );
}

#[test]
fn step_c_lowest_origin() {
    let (p1, p2) = (peer(1, 65001), peer(2, 65002));
    let mut incomplete = attrs(&[65001]);
    incomplete.origin = Some(Origin::Incomplete);
    let mut egp = attrs(&[65002]);
    egp.origin = Some(Origin::Egp);
    assert_eq!(
        duel(
            candidate(&incomplete, &p1),
            candidate(&egp, &p2),
            &default_config()
        ),
        (1, Some(Step::Origin))
    );
}

#[test]
fn step_d_lowest_med_from_the_same_neighbor_as() {
    let (p1, p2) = (peer(1, 65001), peer(2, 65001));
    let mut high = attrs(&[65001]);
    high.med = Some(20);
    let mut low = attrs(&[65001]);
    low.med = Some(10);
    assert_eq!(
        duel(
            candidate(&high, &p1),
            candidate(&low, &p2),
            &default_config()
        ),
        (1, Some(Step::Med))
    );
    // A missing MED is the lowest possible value.
    let missing = attrs(&[65001]);
    assert_eq!(
        duel(
            candidate(&low, &p1),
            candidate(&missing, &p2),
            &default_config()
        ),
        (1, Some(Step::Med))
    );
}

#[test]
fn step_d_med_is_not_compared_across_neighbor_ases_unless_asked() {
    let (p1, p2) = (peer(1, 65001), peer(2, 65002));
    let mut low = attrs(&[65001]);
    low.med = Some(0);
    let mut high = attrs(&[65002]);
    high.med = Some(50);
    // Different neighbor ASes: MED does not apply; the router id (peer 1) decides.
    assert_eq!(
        duel(
            candidate(&high, &p2),
            candidate(&low, &p1),
            &default_config()
        ),
        (1, Some(Step::RouterId))
    );
    let config = DecisionConfig {
        always_compare_med: true,
        ..default_config()
    };
    let mut low_on_p2 = attrs(&[65002]);
    low_on_p2.med = Some(0);
    let mut high_on_p1 = attrs(&[65001]);
    high_on_p1.med = Some(50);
    assert_eq!(
        duel(
            candidate(&high_on_p1, &p1),
            candidate(&low_on_p2, &p2),
            &config
        ),
        (1, Some(Step::Med))
    );
}

#[test]
fn step_d_med_elimination_is_independent_of_arrival_order() {
    // The classic MED non-transitivity triple: pairwise comparison would make the winner
    // depend on the order routes are compared in. A (AS1, MED 10, iBGP), B (AS1, MED 20,
    // eBGP), C (AS2, eBGP). A eliminates B by MED; then C beats A by eBGP over iBGP.
    let pa = peer(1, LOCAL_AS);
    let pb = peer(2, 65001);
    let pc = peer(3, 65002);
    let mut a = attrs(&[65001]);
    a.med = Some(10);
    let mut b = attrs(&[65001]);
    b.med = Some(20);
    let c = attrs(&[65002]);
    let candidates = [candidate(&a, &pa), candidate(&b, &pb), candidate(&c, &pc)];
    let config = DecisionConfig {
        max_paths: 1,
        ..default_config()
    };
    let permutations = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for permutation in permutations {
        let shuffled: Vec<Candidate> = permutation.iter().map(|&i| candidates[i]).collect();
        let selection = select(&shuffled, &config);
        assert_eq!(permutation[selection.order[0]], 2, "{permutation:?}");
    }
}

#[test]
fn step_e_ebgp_over_ibgp() {
    let (internal, external) = (peer(1, LOCAL_AS), peer(2, 65002));
    let from_ibgp = attrs(&[65002]);
    let from_ebgp = attrs(&[65002]);
    assert_eq!(
        duel(
            candidate(&from_ibgp, &internal),
            candidate(&from_ebgp, &external),
            &default_config()
        ),
        (1, Some(Step::ExternalOverInternal))
    );
}

#[test]
fn step_f_lowest_igp_cost() {
    let (p1, p2) = (peer(1, 65001), peer(2, 65002));
    let (x, y) = (attrs(&[65001]), attrs(&[65002]));
    let mut near = candidate(&y, &p2);
    near.igp_cost = 5;
    let mut far = candidate(&x, &p1);
    far.igp_cost = 10;
    assert_eq!(duel(far, near, &default_config()), (1, Some(Step::IgpCost)));
}

#[test]
fn tie_break_lowest_router_id() {
    let (p1, p2) = (peer(1, 65001), peer(2, 65002));
    let (x, y) = (attrs(&[65001]), attrs(&[65002]));
    assert_eq!(
        duel(candidate(&y, &p2), candidate(&x, &p1), &default_config()),
        (1, Some(Step::RouterId))
    );
}

#[test]
fn tie_break_originator_id_replaces_router_id() {
    let (p1, p2) = (peer(1, LOCAL_AS), peer(2, LOCAL_AS));
    let mut reflected = attrs(&[65001]);
    // Peer 1 has the lower router id, but reflects a route from a higher originator.
    reflected.originator_id = Some(Ipv4Addr::new(192, 0, 2, 200));
    let direct = attrs(&[65001]);
    assert_eq!(
        duel(
            candidate(&reflected, &p1),
            candidate(&direct, &p2),
            &default_config()
        ),
        (1, Some(Step::RouterId))
    );
}

#[test]
fn tie_break_shortest_cluster_list() {
    let (p1, p2) = (peer(1, LOCAL_AS), peer(2, LOCAL_AS));
    let originator = Some(Ipv4Addr::new(192, 0, 2, 100));
    let mut one_hop = attrs(&[65001]);
    one_hop.originator_id = originator;
    one_hop.cluster_list = vec![Ipv4Addr::new(1, 1, 1, 1)];
    let mut two_hops = one_hop.clone();
    two_hops.cluster_list.push(Ipv4Addr::new(2, 2, 2, 2));
    assert_eq!(
        duel(
            candidate(&two_hops, &p1),
            candidate(&one_hop, &p2),
            &default_config()
        ),
        (1, Some(Step::ClusterListLength))
    );
}

#[test]
fn tie_break_lowest_peer_address_then_session_id() {
    let mut p1 = peer(1, 65001);
    let mut p2 = peer(2, 65001);
    // Same router id (one ToR, two sessions): the peer address decides.
    p2.router_id = p1.router_id;
    p1.address = "fe80::2".parse().unwrap();
    p2.address = "fe80::1".parse().unwrap();
    let x = attrs(&[65001]);
    assert_eq!(
        duel(candidate(&x, &p1), candidate(&x, &p2), &default_config()),
        (1, Some(Step::PeerAddress))
    );
    // Same link-local address on two interfaces: the session id keeps it deterministic.
    p1.address = p2.address;
    assert_eq!(
        duel(candidate(&x, &p2), candidate(&x, &p1), &default_config()),
        (1, Some(Step::PeerId))
    );
}

#[test]
fn multipath_across_neighbor_ases_with_relax() {
    let (tor_a, tor_b) = (peer(1, 65001), peer(2, 65002));
    let (via_a, via_b) = (attrs(&[65001]), attrs(&[65002]));
    let candidates = [candidate(&via_a, &tor_a), candidate(&via_b, &tor_b)];
    let selection = select(&candidates, &default_config());
    assert_eq!(selection.installed, 2);
    assert_eq!(selection.order, vec![0, 1]);
    // Different MEDs from different ASes do not break the ECMP set either.
    let mut via_b_med = via_b.clone();
    via_b_med.med = Some(100);
    let candidates = [candidate(&via_a, &tor_a), candidate(&via_b_med, &tor_b)];
    assert_eq!(select(&candidates, &default_config()).installed, 2);
}

#[test]
fn multipath_without_relax_needs_the_same_neighbor_as() {
    let config = DecisionConfig {
        multipath_relax: false,
        ..default_config()
    };
    let (tor_a, tor_b, tor_c) = (peer(1, 65001), peer(2, 65002), peer(3, 65001));
    let (via_a, via_b, via_c) = (attrs(&[65001]), attrs(&[65002]), attrs(&[65001]));
    let candidates = [
        candidate(&via_b, &tor_b),
        candidate(&via_a, &tor_a),
        candidate(&via_c, &tor_c),
    ];
    let selection = select(&candidates, &config);
    // Best is tor_a (lowest router id); tor_c shares its neighbor AS, tor_b does not.
    assert_eq!(selection.installed, 2);
    assert_eq!(selection.order, vec![1, 2, 0]);
}

#[test]
fn multipath_only_among_paths_equal_through_igp_cost() {
    let (tor_a, tor_b, internal) = (peer(1, 65001), peer(2, 65002), peer(3, LOCAL_AS));
    let via_a = attrs(&[65001]);
    let longer = attrs(&[65002, 65003]);
    let via_internal = attrs(&[65001]);
    let candidates = [
        candidate(&via_a, &tor_a),
        candidate(&longer, &tor_b),
        candidate(&via_internal, &internal),
    ];
    let selection = select(&candidates, &default_config());
    assert_eq!(selection.installed, 1);
    assert_eq!(selection.order[0], 0);
    // An unreachable equal path is not installed either.
    let mut unreachable = candidate(&via_a, &tor_b);
    unreachable.reachable = false;
    let selection = select(&[candidate(&via_a, &tor_a), unreachable], &default_config());
    assert_eq!(selection.installed, 1);
}

#[test]
fn multipath_is_capped_at_max_paths_keeping_the_best() {
    let peers: Vec<PeerInfo> = (1..=5).map(|i| peer(i, 65000 + i)).collect();
    let paths: Vec<PathAttributes> = (1..=5).map(|i| attrs(&[65000 + i])).collect();
    let candidates: Vec<Candidate> = paths
        .iter()
        .zip(&peers)
        .rev()
        .map(|(attrs, peer)| candidate(attrs, peer))
        .collect();
    let config = DecisionConfig {
        max_paths: 3,
        ..default_config()
    };
    let selection = select(&candidates, &config);
    assert_eq!(selection.installed, 3);
    // Reversed input: index 4 is peer 1 (the best), then peers 2 and 3.
    assert_eq!(&selection.order[..3], &[4, 3, 2]);
    assert_eq!(selection.order.len(), 5);
}

#[test]
fn config_validation() {
    assert!(default_config().validate().is_ok());
    let zero = DecisionConfig {
        max_paths: 0,
        ..default_config()
    };
    assert!(zero.validate().is_err());
    let config: DecisionConfig = toml::from_str("max_paths = 2\nmultipath_relax = false").unwrap();
    assert_eq!(config.max_paths, 2);
    assert!(!config.multipath_relax);
    assert_eq!(config.default_local_pref, 100);
    assert!(toml::from_str::<DecisionConfig>("max_path = 2").is_err());
}

/// RFC 8326: a path tagged GRACEFUL_SHUTDOWN ranks with LOCAL_PREF 0, so it loses to
/// an untagged path and leaves the multipath set, for eBGP and iBGP alike.
#[test]
fn graceful_shutdown_path_loses_and_leaves_multipath() {
    for remote_as in [65001, LOCAL_AS] {
        let (p1, p2) = (peer(1, remote_as), peer(2, remote_as));
        let mut draining = attrs(&[65001]);
        draining.communities = vec![0xFFFF_0000];
        draining.local_pref = Some(100);
        let mut plain = attrs(&[65001]);
        plain.local_pref = Some(100);
        let config = default_config();
        assert_eq!(
            duel(candidate(&draining, &p1), candidate(&plain, &p2), &config),
            (1, Some(Step::LocalPref)),
            "remote AS {remote_as}"
        );
        let selection = select(
            &[candidate(&draining, &p1), candidate(&plain, &p2)],
            &config,
        );
        assert_eq!(selection.installed, 1, "remote AS {remote_as}");
        // Alone, it is still used: draining steers traffic, it does not blackhole.
        let alone = select(&[candidate(&draining, &p1)], &config);
        assert_eq!(alone.installed, 1);
    }
}

#[test]
fn graceful_shutdown_local_pref_off_keeps_ecmp() {
    let (p1, p2) = (peer(1, 65001), peer(2, 65002));
    let mut draining = attrs(&[65001]);
    draining.communities = vec![0xFFFF_0000];
    let plain = attrs(&[65002]);
    let config = DecisionConfig {
        graceful_shutdown_local_pref: None,
        ..default_config()
    };
    let selection = select(
        &[candidate(&draining, &p1), candidate(&plain, &p2)],
        &config,
    );
    assert_eq!(selection.installed, 2);
}

#[test]
fn graceful_shutdown_local_pref_reads_a_value_or_off() {
    let parse = |text: &str| toml::from_str::<DecisionConfig>(text);
    assert_eq!(
        parse("graceful_shutdown_local_pref = 5")
            .unwrap()
            .graceful_shutdown_local_pref,
        Some(5)
    );
    assert_eq!(
        parse("graceful_shutdown_local_pref = \"off\"")
            .unwrap()
            .graceful_shutdown_local_pref,
        None
    );
    assert_eq!(parse("").unwrap().graceful_shutdown_local_pref, Some(0));
    let err = parse("graceful_shutdown_local_pref = \"no\"").unwrap_err();
    assert!(err.to_string().contains("\"off\""), "{err}");
}
