//! `pass_to_kernel` prefixes, group egress lists, on-link nexthops.

use super::*;

fn route_ops(batch: &Batch) -> Vec<FibOp> {
    batch
        .ops()
        .filter(|op| matches!(op, FibOp::SetRoute { .. } | FibOp::DeleteRoute { .. }))
        .cloned()
        .collect()
}

#[test]
fn pass_to_kernel_covers_equal_and_inner_routes_only() {
    let a = nh("10.0.2.1", 2);
    let (mut fib, mut dp) = fib_resolved(FibLimits::default(), &[a]);
    let mut batch = Batch::default();
    for prefix in ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24"] {
        fib.set_route(&mut batch, Source::Static, net(prefix), via(&[a]))
            .unwrap();
    }
    dp.apply(&batch);
    let group = dp.routes[&net("0.0.0.0/0")];

    let mut batch = Batch::default();
    fib.set_pass_to_kernel(&mut batch, &[net("10.0.0.0/8"), net("198.51.100.0/24")]);
    dp.apply(&batch);
    // Only the affected prefixes: the equal one, the inner one, the new prefix.
    let mut ops = route_ops(&batch);
    ops.sort_by_key(|op| format!("{op:?}"));
    assert_eq!(ops.len(), 3, "{ops:?}");
    for prefix in ["10.0.0.0/8", "10.1.0.0/16", "198.51.100.0/24"] {
        assert_eq!(dp.routes[&net(prefix)], GROUP_PASS, "{prefix}");
    }
    for prefix in ["0.0.0.0/0", "192.0.2.0/24"] {
        assert_eq!(dp.routes[&net(prefix)], group, "{prefix} is outside");
    }
    // The FIB keeps the real group, and the kernel its real routes.
    assert_eq!(fib.installed_group(&net("10.1.0.0/16")), Some(group));
    assert!(batch.kernel.is_empty());

    // New routes inside (the fast path and the slow one) go to the kernel too, and still to
    // its mirror.
    let mut batch = Batch::default();
    let b = nh("10.0.3.1", 3);
    fib.set_route(&mut batch, Source::Static, net("10.2.0.0/16"), via(&[a]))
        .unwrap();
    fib.set_route(&mut batch, Source::Static, net("10.3.0.0/16"), via(&[b]))
        .unwrap();
    dp.apply(&batch);
    assert_eq!(dp.routes[&net("10.2.0.0/16")], GROUP_PASS);
    assert_eq!(dp.routes[&net("10.3.0.0/16")], GROUP_PASS);
    assert_eq!(batch.kernel.len(), 2);

    // The route equal to a pass prefix goes: the prefix stays, passed.
    let mut batch = Batch::default();
    fib.remove_route(&mut batch, Source::Static, net("10.0.0.0/8"));
    dp.apply(&batch);
    assert_eq!(dp.routes[&net("10.0.0.0/8")], GROUP_PASS);

    // The list changes: 10/8 is no longer passed, 10.1/16 is.
    let mut batch = Batch::default();
    fib.set_pass_to_kernel(&mut batch, &[net("10.1.0.0/16"), net("198.51.100.0/24")]);
    dp.apply(&batch);
    assert!(
        !dp.routes.contains_key(&net("10.0.0.0/8")),
        "no route holds it"
    );
    assert_eq!(dp.routes[&net("10.1.0.0/16")], GROUP_PASS);
    assert_eq!(dp.routes[&net("10.2.0.0/16")], group);
    assert_ne!(dp.routes[&net("10.3.0.0/16")], GROUP_PASS);
    assert_eq!(route_ops(&batch).len(), 3, "10/8, 10.2/16, 10.3/16");

    // Emptied: everything is back on its real group, the datapath-only prefix gone.
    let mut batch = Batch::default();
    fib.set_pass_to_kernel(&mut batch, &[]);
    dp.apply(&batch);
    assert_eq!(dp.routes[&net("10.1.0.0/16")], group);
    assert!(!dp.routes.contains_key(&net("198.51.100.0/24")));
    assert!(dp.routes.values().all(|g| *g != GROUP_PASS));
    // Unchanged list: nothing to do.
    let mut batch = Batch::default();
    fib.set_pass_to_kernel(&mut batch, &[]);
    assert!(batch.is_empty());
}

#[test]
fn group_records_list_every_members_egress_interface() {
    let keys: Vec<NexthopKey> = (0..10u32)
        .map(|i| NexthopKey::host(IpAddr::V4(Ipv4Addr::new(10, 9, i as u8, 1)), 10 + i))
        .collect();
    let (mut fib, mut dp) = fib_resolved(FibLimits::default(), &[]);
    let mut batch = Batch::default();
    // Two members on ifindex 10, one on 11: unresolved ones count too.
    fib.set_route(
        &mut batch,
        Source::Static,
        net("10.1.0.0/16"),
        via(&[
            keys[0],
            keys[1],
            NexthopKey::host("10.9.0.2".parse().unwrap(), 10),
        ]),
    )
    .unwrap();
    fib.set_route(&mut batch, Source::Static, net("10.2.0.0/16"), via(&keys))
        .unwrap();
    dp.apply(&batch);
    let small = &dp.groups[&dp.routes[&net("10.1.0.0/16")]];
    assert_eq!(small.egress, [10, 11, 0, 0, 0, 0, 0, 0]);
    assert_eq!(small.flags & router_common::GROUP_F_EGRESS_OVERFLOW, 0);
    let large = &dp.groups[&dp.routes[&net("10.2.0.0/16")]];
    assert_eq!(large.egress, [10, 11, 12, 13, 14, 15, 16, 17]);
    assert_ne!(large.flags & router_common::GROUP_F_EGRESS_OVERFLOW, 0);
}

#[test]
fn on_link_nexthops_follow_their_link_not_neighbors() {
    let (mut fib, mut dp) = fib_with_links();
    let on_link = NexthopKey::on_link(2, false);
    let mut batch = Batch::default();
    fib.set_route(
        &mut batch,
        Source::KernelFallback,
        net("10.0.2.0/24"),
        via(&[on_link]),
    )
    .unwrap();
    dp.apply(&batch);
    assert!(batch.resolve.is_empty(), "nothing to resolve");
    assert!(batch.kernel.is_empty(), "kernel routes are not mirrored");
    let record = dp.nexthop("10.0.2.0/24", 0).unwrap();
    assert_eq!(
        record.flags & (NEXTHOP_F_CONNECTED | router_common::NEXTHOP_F_RESOLVED),
        NEXTHOP_F_CONNECTED | router_common::NEXTHOP_F_RESOLVED
    );
    assert_eq!(record.dst_mac, [0; 6]);
    // A neighbor on the subnet comes and goes: the nexthop does not change.
    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, 2, "10.0.2.7".parse().unwrap(), Some(MAC_A));
    fib.update_neighbor(&mut batch, 2, "10.0.2.7".parse().unwrap(), None);
    dp.apply(&batch);
    assert!(batch.resolve.is_empty());
    assert!(
        !batch
            .ops()
            .any(|op| matches!(op, FibOp::WriteNexthop { .. }))
    );
    // The link goes down: unresolved (the kernel gets the packets).
    let mut batch = Batch::default();
    let down = LinkState {
        mac: [2, 0, 0, 0, 1, 2],
        mtu: 1500,
        up: false,
    };
    fib.update_link(&mut batch, 2, Some(down));
    dp.apply(&batch);
    let record = dp.nexthop("10.0.2.0/24", 0).unwrap();
    assert!(!record.is_resolved());
    assert!(batch.resolve.is_empty());
}
