//! Unusable next hops (RFC 4271 9.1.2.1): kept in the Adj-RIB-In, never best, shown with why;
//! re-decided when the host's addresses change; dynamic neighbors' third-party next hops.

use super::*;
use crate::next_hop_check::Unusable;

fn own(address: IpAddr) -> Option<Unusable> {
    Some(Unusable::OwnAddress(address))
}

fn status_of(rib: &Rib, prefix: &str, peer: PeerId) -> PathStatus {
    let view = rib
        .routes()
        .find(|route| route.prefix == net(prefix))
        .expect("prefix held");
    view.paths
        .iter()
        .find(|path| path.path.peer == peer)
        .expect("path held")
        .status
}

#[test]
fn an_unusable_next_hop_is_never_best_and_says_why() {
    let (mut rib, a, b) = dual_homed();
    let prefix = "198.51.100.0/24";
    // `a`'s next hop is the host's own address; its path is better (shorter AS path).
    let bad: IpAddr = "10.0.1.2".parse().unwrap();
    assert!(rib.set_next_hop_unusable(bad, own(bad)).is_empty());
    let better = PathSpec {
        attrs: Arc::new(attrs(&[65001])),
        next_hop: NextHop::new(bad),
    };
    assert_eq!(
        rib.update(a.id, net(prefix), Some(better)),
        None,
        "not best"
    );
    let change = rib
        .update(b.id, net(prefix), Some(spec(&b, attrs(&[65002, 65003]))))
        .expect("b's path is the only usable one");
    assert_eq!(installed_peers(&change), vec![b.id]);
    assert_eq!(
        status_of(&rib, prefix, a.id),
        PathStatus::NextHopUnusable(Unusable::OwnAddress(bad))
    );
    assert_eq!(status_of(&rib, prefix, b.id), PathStatus::Best);
    // Kept in the Adj-RIB-In (received and accepted by import policy).
    assert_eq!(rib.peer_counts(a.id), Some((1, 1)));

    // b withdraws: the prefix leaves the Loc-RIB, a's path stays, unused.
    let change = rib.update(b.id, net(prefix), None).expect("withdrawn");
    assert_eq!(change.best, None);
    assert_eq!(rib.best(&net(prefix)), None);
    assert!(matches!(
        status_of(&rib, prefix, a.id),
        PathStatus::NextHopUnusable(_)
    ));

    // The host gives the address up: a's path is usable again, and installed.
    let changes = rib.set_next_hop_unusable(bad, None);
    assert_eq!(changes.len(), 1);
    assert_eq!(installed_peers(&changes[0]), vec![a.id]);
    assert_eq!(status_of(&rib, prefix, a.id), PathStatus::Best);

    // ... and takes it again: out of the Loc-RIB at once.
    let changes = rib.set_next_hop_unusable(bad, own(bad));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].best, None);
    assert!(
        rib.set_next_hop_unusable(bad, own(bad)).is_empty(),
        "no news"
    );
    assert!(rib.next_hop_addresses().contains(&bad));
}

#[test]
fn unusable_keeps_what_else_is_known_of_the_address() {
    let (mut rib, a, _) = dual_homed();
    let down = NextHopState {
        reachable: false,
        ..NextHopState::default()
    };
    rib.set_next_hop_state(a.address, down);
    rib.set_next_hop_unusable(a.address, own(a.address));
    rib.set_next_hop_unusable(a.address, None);
    assert!(!rib.next_hop_state(a.address).reachable);
    rib.update(a.id, net("0.0.0.0/0"), Some(spec(&a, attrs(&[65001]))));
    assert_eq!(
        status_of(&rib, "0.0.0.0/0", a.id),
        PathStatus::NextHopUnreachable
    );
}

#[test]
fn a_link_local_next_hop_beside_an_unspecified_global_one_is_usable() {
    // BIRD over a link-local session: global `::`, then its link-local address.
    let mut rib = Rib::default();
    let mut a = tor(1, 65001);
    a.address = "fe80::1".parse().unwrap();
    rib.peer_up(a.clone(), accept_all()).unwrap();
    let unspecified: IpAddr = "::".parse().unwrap();
    rib.set_next_hop_unusable(unspecified, Some(Unusable::Unspecified(unspecified)));
    let spec = PathSpec {
        attrs: Arc::new(attrs(&[65001])),
        next_hop: NextHop {
            address: unspecified,
            link_local: Some("fe80::1".parse().unwrap()),
        },
    };
    let change = rib.update(a.id, net("2001:db8:1::/48"), Some(spec.clone()));
    assert_eq!(installed_peers(&change.expect("installed")), vec![a.id]);
    // The same global next hop alone is unusable.
    let alone = PathSpec {
        next_hop: NextHop::new(unspecified),
        ..spec
    };
    let change = rib.update(a.id, net("2001:db8:1::/48"), Some(alone));
    assert_eq!(change.expect("replaced").best, None);
    assert_eq!(
        status_of(&rib, "2001:db8:1::/48", a.id),
        PathStatus::NextHopUnusable(Unusable::Unspecified(unspecified))
    );
}

#[test]
fn a_dynamic_neighbor_may_only_name_itself_unless_allowed() {
    let mut rib = Rib::default();
    let mut vm = tor(1, 65001);
    vm.own_next_hops_only = true;
    let mut unnumbered = tor(2, 65002);
    unnumbered.address = "fe80::2".parse().unwrap();
    unnumbered.own_next_hops_only = true;
    rib.peer_up(vm.clone(), accept_all()).unwrap();
    rib.peer_up(unnumbered.clone(), accept_all()).unwrap();
    let path = |next_hop: NextHop| PathSpec {
        attrs: Arc::new(attrs(&[65001])),
        next_hop,
    };

    // Its own address: used.
    let change = rib.update(
        vm.id,
        net("198.51.100.1/32"),
        Some(spec(&vm, attrs(&[65001]))),
    );
    assert_eq!(installed_peers(&change.unwrap()), vec![vm.id]);
    // Another host's: kept, never used, with why.
    let third_party = NextHop::new("10.0.1.77".parse().unwrap());
    assert_eq!(
        rib.update(vm.id, net("198.51.100.2/32"), Some(path(third_party))),
        None
    );
    assert_eq!(
        status_of(&rib, "198.51.100.2/32", vm.id),
        PathStatus::NextHopUnusable(Unusable::NotNeighborAddress)
    );
    // Over a link-local session: its link-local address, alone or beside a global one.
    let own_link_local = NextHop {
        address: "2001:db8::2".parse().unwrap(),
        link_local: Some("fe80::2".parse().unwrap()),
    };
    assert!(
        rib.update(
            unnumbered.id,
            net("2001:db8:2::/48"),
            Some(path(own_link_local))
        )
        .is_some()
    );
    let other_link_local = NextHop {
        address: "2001:db8::2".parse().unwrap(),
        link_local: Some("fe80::99".parse().unwrap()),
    };
    assert_eq!(
        rib.update(
            unnumbered.id,
            net("2001:db8:3::/48"),
            Some(path(other_link_local))
        ),
        None
    );
    assert_eq!(
        status_of(&rib, "2001:db8:3::/48", unnumbered.id),
        PathStatus::NextHopUnusable(Unusable::NotNeighborAddress)
    );

    // A configured neighbor (or a range allowing it) may name any next hop.
    let mut configured = tor(3, 65003);
    configured.own_next_hops_only = false;
    rib.peer_up(configured.clone(), accept_all()).unwrap();
    let change = rib.update(
        configured.id,
        net("198.51.100.3/32"),
        Some(path(third_party)),
    );
    assert_eq!(installed_peers(&change.unwrap()), vec![configured.id]);
}
