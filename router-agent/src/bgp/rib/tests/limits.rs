//! Max-prefix signals, the memory estimate, the order of applied changes.

use super::*;

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
