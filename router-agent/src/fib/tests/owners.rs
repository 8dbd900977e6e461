//! Owner-scoped gateway failure, and routes from the kernel's table.

use super::*;

const G: &str = "10.0.2.1";

fn owned(owner: Owner) -> NexthopKey {
    NexthopKey { owner, ..nh(G, 2) }
}

fn resolved(dp: &ModelDatapath, prefix: &str) -> bool {
    dp.nexthop(prefix, 0).unwrap().is_resolved()
}

#[test]
fn a_bgp_session_failing_a_gateway_leaves_other_owners_on_it() {
    let (host, bgp1, bgp2) = (
        owned(Owner::Host),
        owned(Owner::Bgp(1)),
        owned(Owner::Bgp(2)),
    );
    let (mut fib, mut dp) = fib_resolved(FibLimits::default(), &[host]);
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Static, net("10.1.0.0/16"), via(&[host]))
        .unwrap();
    fib.set_route(&mut batch, Source::Bgp, net("10.2.0.0/16"), via(&[bgp1]))
        .unwrap();
    fib.set_route(&mut batch, Source::Bgp, net("10.3.0.0/16"), via(&[bgp2]))
        .unwrap();
    dp.apply(&batch);
    assert_eq!(fib.nexthop_count(), 3, "one nexthop per owner");
    assert!(
        ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"]
            .iter()
            .all(|p| resolved(&dp, p))
    );

    let mut batch = Batch::default();
    fib.set_gateways_failed(&mut batch, Owner::Bgp(1), &[host.via], true);
    dp.apply(&batch);
    assert!(resolved(&dp, "10.1.0.0/16"), "the static route keeps G");
    assert!(!resolved(&dp, "10.2.0.0/16"), "session 1's route leaves G");
    assert!(resolved(&dp, "10.3.0.0/16"), "session 2's route keeps G");

    // A neighbor update reaches every owner's nexthop (the failed one stays failed).
    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, 2, host.via, Some(MAC_B));
    dp.apply(&batch);
    for prefix in ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"] {
        assert_eq!(dp.nexthop(prefix, 0).unwrap().dst_mac, MAC_B, "{prefix}");
    }
    assert!(!resolved(&dp, "10.2.0.0/16"));
    let mut batch = Batch::default();
    fib.set_gateways_failed(&mut batch, Owner::Bgp(1), &[host.via], false);
    dp.apply(&batch);
    assert!(resolved(&dp, "10.2.0.0/16"));
    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, 2, host.via, None);
    dp.apply(&batch);
    assert_eq!(
        batch.resolve.len(),
        3,
        "every owner's nexthop asks for resolution"
    );
    assert!(
        ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"]
            .iter()
            .all(|p| !resolved(&dp, p))
    );
}

#[test]
fn a_bgp_route_over_a_kernel_fallback_route_and_back() {
    let (mut fib, mut dp) = fib_resolved(FibLimits::default(), &[nh(G, 2), nh("10.0.3.1", 3)]);
    let kernel = nh("10.0.3.1", 3);
    let prefix = net("10.5.0.0/16");
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::KernelFallback, prefix, via(&[kernel]))
        .unwrap();
    dp.apply(&batch);
    assert!(batch.kernel.is_empty(), "never mirrored");
    assert_eq!(dp.layout(&prefix)[0], Some(via_bytes(kernel.via)));

    let mut batch = Batch::default();
    fib.set_route(
        &mut batch,
        Source::Bgp,
        prefix,
        via(&[owned(Owner::Bgp(1))]),
    )
    .unwrap();
    dp.apply(&batch);
    assert_eq!(dp.layout(&prefix)[0], Some(via_bytes(nh(G, 2).via)));
    assert!(matches!(batch.kernel[..], [KernelChange::Replace { .. }]));

    let mut batch = Batch::default();
    fib.remove_route(&mut batch, Source::Bgp, prefix);
    dp.apply(&batch);
    assert_eq!(dp.layout(&prefix)[0], Some(via_bytes(kernel.via)));
    assert_eq!(batch.kernel, [KernelChange::Delete { prefix }]);
    assert_eq!(fib.mirrored_prefixes().count(), 0);
}

#[test]
fn a_kernel_preferred_route_over_a_bgp_one() {
    let (mut fib, mut dp) = fib_resolved(FibLimits::default(), &[nh(G, 2)]);
    let prefix = net("10.0.2.0/24");
    let mut batch = Batch::default();
    fib.set_route(
        &mut batch,
        Source::Bgp,
        prefix,
        via(&[owned(Owner::Bgp(1))]),
    )
    .unwrap();
    dp.apply(&batch);
    // The kernel's connected route (metric 0) wins over ours.
    let mut batch = Batch::default();
    fib.set_route(
        &mut batch,
        Source::KernelPreferred,
        prefix,
        via(&[NexthopKey::on_link(2, false)]),
    )
    .unwrap();
    dp.apply(&batch);
    let record = dp.nexthop("10.0.2.0/24", 0).unwrap();
    assert_ne!(record.flags & NEXTHOP_F_CONNECTED, 0);
    assert_eq!(batch.kernel, [KernelChange::Delete { prefix }]);
    // A BGP update while the kernel's route is installed changes nothing in the datapath.
    let mut batch = Batch::default();
    fib.set_route(
        &mut batch,
        Source::Bgp,
        prefix,
        via(&[owned(Owner::Bgp(2))]),
    )
    .unwrap();
    assert!(batch.is_empty());
    // The kernel's route goes: the latest BGP route is back, mirrored.
    let mut batch = Batch::default();
    fib.remove_route(&mut batch, Source::KernelPreferred, prefix);
    dp.apply(&batch);
    assert_eq!(
        dp.nexthop("10.0.2.0/24", 0).unwrap().flags & NEXTHOP_F_CONNECTED,
        0
    );
    assert!(
        matches!(&batch.kernel[..], [KernelChange::Replace { nexthops, .. }]
        if nexthops.first().unwrap().owner == Owner::Bgp(2))
    );
}
