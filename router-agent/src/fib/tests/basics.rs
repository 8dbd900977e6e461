//! The FIB's basic behaviour: resolution, sharing, failure, cleanup, sources.

use super::*;

#[test]
fn route_resolves_when_neighbor_appears() {
    let (mut fib, mut dp) = fib_with_links();
    let a = nh("10.0.2.1", 2);
    let mut batch = Batch::default();
    fib.set_route(
        &mut batch,
        Source::Static,
        net("198.51.100.0/24"),
        via(&[a]),
    )
    .unwrap();
    assert_eq!(batch.resolve, vec![a]);
    assert_eq!(
        batch.kernel,
        vec![KernelChange::Replace {
            prefix: net("198.51.100.0/24"),
            nexthops: std::sync::Arc::new(BTreeSet::from([a]))
        }]
    );
    dp.apply(&batch);
    let unresolved = dp.nexthop("198.51.100.0/24", 0).unwrap();
    assert!(!unresolved.is_resolved());

    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, 2, a.via, Some(MAC_A));
    dp.apply(&batch);
    let resolved = dp.nexthop("198.51.100.0/24", 0).unwrap();
    assert!(resolved.is_resolved());
    assert_eq!(resolved.dst_mac, MAC_A);
    assert_eq!(resolved.src_mac, [2, 0, 0, 0, 1, 2]);
    assert_eq!(resolved.mtu, 1500);
    assert_eq!(
        resolved.id, unresolved.id,
        "the stable id survives the slot change"
    );
    // Only a nexthop and a group were written; no route op.
    assert!(batch.ops().all(|op| matches!(
        op,
        FibOp::SetNeighbor { .. } | FibOp::WriteNexthop { .. } | FibOp::WriteGroup { .. }
    )));
}

#[test]
fn routes_with_the_same_nexthops_share_a_group() {
    let (mut fib, mut dp) = fib_with_links();
    let (a, b) = (nh("10.0.2.1", 2), nh("10.0.3.1", 3));
    let mut batch = Batch::default();
    for i in 0..100u8 {
        let prefix = IpNet::new(IpAddr::V4(Ipv4Addr::new(203, 0, i, 0)), 24).unwrap();
        fib.set_route(&mut batch, Source::Static, prefix, via(&[a, b]))
            .unwrap();
    }
    dp.apply(&batch);
    assert_eq!(fib.group_count(), 1);
    assert_eq!(fib.nexthop_count(), 2);

    // A neighbor change rewrites one group, whatever the number of routes.
    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, 2, a.via, Some(MAC_A));
    dp.apply(&batch);
    let group_writes = batch
        .ops()
        .filter(|op| matches!(op, FibOp::WriteGroup { .. }))
        .count();
    assert_eq!(group_writes, 1);
    assert!(!batch.ops().any(|op| matches!(op, FibOp::SetRoute { .. })));
}

#[test]
fn failed_nexthop_leaves_only_its_buckets() {
    let (mut fib, mut dp) = fib_with_links();
    let (a, b) = (nh("10.0.2.1", 2), nh("10.0.3.1", 3));
    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, 2, a.via, Some(MAC_A));
    fib.update_neighbor(&mut batch, 3, b.via, Some(MAC_B));
    fib.set_route(&mut batch, Source::Static, net("0.0.0.0/0"), via(&[a, b]))
        .unwrap();
    dp.apply(&batch);
    let before: Vec<_> = (0..NEXTHOP_BUCKETS)
        .map(|i| dp.nexthop("0.0.0.0/0", i).unwrap().dst_mac)
        .collect();
    assert_eq!(before.iter().filter(|m| **m == MAC_A).count(), 32);

    // Link of b goes down: its buckets move to a, a's buckets do not move.
    let mut batch = Batch::default();
    let down = LinkState {
        mac: [2, 0, 0, 0, 1, 3],
        mtu: 1500,
        up: false,
    };
    fib.update_link(&mut batch, 3, Some(down));
    dp.apply(&batch);
    for (i, mac) in before.iter().enumerate() {
        let now = dp.nexthop("0.0.0.0/0", i).unwrap();
        assert!(now.is_resolved());
        assert_eq!(now.dst_mac, MAC_A, "bucket {i} (was {mac:?})");
    }
    // b holds no bucket but is still a member (what `show fib` lists), unresolved.
    let group = &dp.groups[&dp.routes[&net("0.0.0.0/0")]];
    let members: Vec<Nexthop> = group
        .members
        .iter()
        .take_while(|slot| **slot != NO_NEXTHOP)
        .map(|slot| dp.slots[slot])
        .collect();
    assert_eq!(members.len(), 2);
    assert_eq!(
        members
            .iter()
            .map(|m| (m.ifindex, m.is_resolved()))
            .collect::<Vec<_>>(),
        [(2, true), (3, false)]
    );

    // Back up: b takes back 32 buckets, taken only from a's surplus.
    let mut batch = Batch::default();
    fib.update_link(&mut batch, 3, Some(LinkState { up: true, ..down }));
    dp.apply(&batch);
    let after: Vec<_> = (0..NEXTHOP_BUCKETS)
        .map(|i| dp.nexthop("0.0.0.0/0", i).unwrap().dst_mac)
        .collect();
    assert_eq!(after.iter().filter(|m| **m == MAC_B).count(), 32);
}

#[test]
fn all_nexthops_down_points_buckets_at_unresolved_nexthops() {
    let (mut fib, mut dp) = fib_with_links();
    let a = nh("10.0.2.1", 2);
    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, 2, a.via, Some(MAC_A));
    fib.set_route(&mut batch, Source::Static, net("10.9.0.0/16"), via(&[a]))
        .unwrap();
    dp.apply(&batch);
    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, 2, a.via, None);
    assert_eq!(batch.resolve, vec![a]);
    dp.apply(&batch);
    // The kernel gets these packets (PassedUnresolved) and resolves the neighbor.
    assert!(!dp.nexthop("10.9.0.0/16", 0).unwrap().is_resolved());
}

#[test]
fn changing_and_removing_routes_cleans_up() {
    let (mut fib, mut dp) = fib_with_links();
    let (a, b) = (nh("10.0.2.1", 2), nh("10.0.3.1", 3));
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Static, net("10.1.0.0/16"), via(&[a]))
        .unwrap();
    fib.set_route(&mut batch, Source::Static, net("10.2.0.0/16"), via(&[a, b]))
        .unwrap();
    dp.apply(&batch);
    assert_eq!(fib.group_count(), 2);

    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Static, net("10.1.0.0/16"), via(&[a, b]))
        .unwrap();
    dp.apply(&batch);
    // The route moved to its {a} group's successor for {a, b} (resilient ECMP), not to the
    // other route's group.
    assert_eq!(fib.group_count(), 2, "the {{a}} group is gone");
    assert!(batch.ops().any(|op| matches!(op, FibOp::ClearGroup { .. })));

    let mut batch = Batch::default();
    fib.remove_route(&mut batch, Source::Static, net("10.1.0.0/16"));
    fib.remove_route(&mut batch, Source::Static, net("10.2.0.0/16"));
    dp.apply(&batch);
    assert_eq!(fib.route_count(), 0);
    assert_eq!(fib.group_count(), 0);
    assert_eq!(fib.nexthop_count(), 0);
    assert!(dp.routes.is_empty() && dp.groups.is_empty());
    assert_eq!(
        batch.kernel,
        vec![
            KernelChange::Delete {
                prefix: net("10.1.0.0/16")
            },
            KernelChange::Delete {
                prefix: net("10.2.0.0/16")
            }
        ]
    );
}

#[test]
fn local_source_wins_and_is_not_mirrored() {
    let (mut fib, mut dp) = fib_with_links();
    let a = nh("10.0.2.1", 2);
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Static, net("192.0.2.7/32"), via(&[a]))
        .unwrap();
    fib.set_route(
        &mut batch,
        Source::Local,
        net("192.0.2.7/32"),
        RouteTarget::Local,
    )
    .unwrap();
    dp.apply(&batch);
    assert_eq!(dp.routes[&net("192.0.2.7/32")], GROUP_LOCAL);
    assert_eq!(
        batch.kernel.last(),
        Some(&KernelChange::Delete {
            prefix: net("192.0.2.7/32")
        })
    );
    // The address goes away: the static route comes back.
    let mut batch = Batch::default();
    fib.remove_route(&mut batch, Source::Local, net("192.0.2.7/32"));
    dp.apply(&batch);
    assert_ne!(dp.routes[&net("192.0.2.7/32")], GROUP_LOCAL);
}

#[test]
fn empty_nexthop_set_is_rejected() {
    let mut fib = Fib::new(FibLimits::default());
    let mut batch = Batch::default();
    let err = fib
        .set_route(
            &mut batch,
            Source::Static,
            net("10.0.0.0/8"),
            RouteTarget::Via(BTreeSet::new()),
        )
        .unwrap_err();
    assert_eq!(
        err,
        FibError::NoNexthops {
            prefix: net("10.0.0.0/8")
        }
    );
    assert!(batch.is_empty());
}

/// Route programming rate of the FIB alone (no datapath): `cargo test --release -p
/// router-agent --lib fib::tests::fib_rate -- --ignored --nocapture`.
#[test]
#[ignore]
fn fib_rate() {
    let (mut fib, _) = fib_with_links();
    let keys = [nh("10.0.2.1", 2), nh("10.0.3.1", 3)];
    let n = 1_000_000u32;
    let start = std::time::Instant::now();
    let mut batch = Batch::default();
    for i in 0..n {
        let prefix = IpNet::new(IpAddr::V4(Ipv4Addr::from(i << 8)), 24).unwrap();
        fib.set_route(&mut batch, Source::Static, prefix, via(&keys))
            .unwrap();
        if batch.routes.len() >= 10_000 {
            batch = Batch::default();
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "{n} routes in {elapsed:?}: {:.0} routes/s",
        f64::from(n) / elapsed.as_secs_f64()
    );
}

#[test]
fn bgp_routes_are_mirrored_per_policy() {
    let (mut fib, mut dp) = fib_with_links();
    fib.set_bgp_mirror(KernelMirror::DefaultOnly);
    let a = nh("10.0.2.1", 2);
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Bgp, net("0.0.0.0/0"), via(&[a]))
        .unwrap();
    fib.set_route(&mut batch, Source::Bgp, net("10.7.0.0/16"), via(&[a]))
        .unwrap();
    fib.set_route(&mut batch, Source::Static, net("10.8.0.0/16"), via(&[a]))
        .unwrap();
    dp.apply(&batch);
    let mirrored: Vec<IpNet> = batch
        .kernel
        .iter()
        .map(|change| match change {
            KernelChange::Replace { prefix, .. } | KernelChange::Delete { prefix } => *prefix,
        })
        .collect();
    assert_eq!(mirrored, [net("0.0.0.0/0"), net("10.8.0.0/16")]);
    assert_eq!(dp.routes.len(), 3, "the datapath has them all");
    // A static route for the BGP-only prefix takes over: now mirrored; then it goes away
    // and the BGP route returns, unmirrored: the kernel route is deleted.
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Static, net("10.7.0.0/16"), via(&[a]))
        .unwrap();
    assert!(matches!(batch.kernel[..], [KernelChange::Replace { .. }]));
    let mut batch = Batch::default();
    fib.remove_route(&mut batch, Source::Static, net("10.7.0.0/16"));
    assert_eq!(
        batch.kernel,
        vec![KernelChange::Delete {
            prefix: net("10.7.0.0/16")
        }]
    );
}

#[test]
fn failed_gateway_leaves_every_group_in_one_write_per_group() {
    let (mut fib, mut dp) = fib_with_links();
    let (a, b) = (nh("10.0.2.1", 2), nh("10.0.3.1", 3));
    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, 2, a.via, Some(MAC_A));
    fib.update_neighbor(&mut batch, 3, b.via, Some(MAC_B));
    for i in 0..1000u32 {
        let prefix = IpNet::new(IpAddr::V4(Ipv4Addr::from((10 << 24) | (i << 8))), 24).unwrap();
        fib.set_route(&mut batch, Source::Bgp, prefix, via(&[a, b]))
            .unwrap();
    }
    dp.apply(&batch);

    // The BGP session to a goes down: one group rewrite moves all 1000 routes off it.
    let mut batch = Batch::default();
    fib.set_gateways_failed(&mut batch, Owner::Host, &[a.via], true);
    dp.apply(&batch);
    let writes: Vec<_> = batch.ops().collect();
    assert_eq!(
        writes.len(),
        2,
        "a fresh nexthop slot and one group write: {writes:?}"
    );
    for bucket in 0..NEXTHOP_BUCKETS {
        assert_eq!(dp.nexthop("10.0.5.0/24", bucket).unwrap().dst_mac, MAC_B);
    }
    // Back: the group is split again.
    let mut batch = Batch::default();
    fib.set_gateways_failed(&mut batch, Owner::Host, &[a.via], false);
    dp.apply(&batch);
    let to_a = (0..NEXTHOP_BUCKETS)
        .filter(|i| dp.nexthop("10.0.5.0/24", *i).unwrap().dst_mac == MAC_A)
        .count();
    assert_eq!(to_a, 32);
}

#[test]
fn group_released_and_created_in_one_batch_gets_another_id() {
    let (mut fib, mut dp) = fib_with_links();
    let (a, b) = (nh("10.0.2.1", 2), nh("10.0.3.1", 3));
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Static, net("10.1.0.0/16"), via(&[a, b]))
        .unwrap();
    dp.apply(&batch);
    // One batch: the /16's group goes (its ClearGroup runs at the end of the batch) and a
    // new group is made for another set. Reusing the id would clear the new route's group.
    let mut batch = Batch::default();
    fib.remove_route(&mut batch, Source::Static, net("10.1.0.0/16"));
    fib.set_route(&mut batch, Source::Static, net("10.2.0.0/16"), via(&[a]))
        .unwrap();
    dp.apply(&batch);
    assert!(
        dp.nexthop("10.2.0.0/16", 0).is_some(),
        "the new route's group is intact"
    );
    // The next batch may reuse the id.
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Static, net("10.3.0.0/16"), via(&[b]))
        .unwrap();
    dp.apply(&batch);
    assert!(dp.nexthop("10.3.0.0/16", 0).is_some());
    assert!(dp.nexthop("10.2.0.0/16", 0).is_some());
}

/// Random route changes from three sources over a few prefixes and nexthop sets: after every
/// batch the datapath forwards each prefix as its most preferred source asked (the host for a
/// local route, exactly that source's nexthops otherwise), and nothing else.
#[test]
fn the_most_preferred_source_is_installed_whatever_the_order() {
    use rand::{Rng, SeedableRng, rngs::SmallRng};

    let (mut fib, mut dp) = fib_with_links();
    let mut rng = SmallRng::seed_from_u64(11);
    let prefixes = [
        net("192.0.2.0/24"),
        net("192.0.2.7/32"),
        net("0.0.0.0/0"),
        net("2001:db8::/32"),
    ];
    let gateways = [
        nh("10.0.2.1", 2),
        nh("10.0.3.1", 3),
        nh("fe80::1", 2),
        nh("10.0.2.9", 2),
    ];
    let sources = [Source::Local, Source::Static, Source::Bgp];
    // The model: per prefix, each source's target.
    let mut model: HashMap<IpNet, BTreeMap<Source, RouteTarget>> = HashMap::new();
    for step in 0..3000 {
        let mut batch = Batch::default();
        for _ in 0..rng.random_range(1..4) {
            let prefix = prefixes[rng.random_range(0..prefixes.len())];
            let source = sources[rng.random_range(0..sources.len())];
            if rng.random_bool(0.55) {
                let target = if source == Source::Local {
                    RouteTarget::Local
                } else {
                    let count = rng.random_range(1..=3);
                    let start = rng.random_range(0..gateways.len());
                    via(&(0..count)
                        .map(|i| gateways[(start + i) % gateways.len()])
                        .collect::<Vec<_>>())
                };
                fib.set_route(&mut batch, source, prefix, target.clone())
                    .unwrap();
                model.entry(prefix).or_default().insert(source, target);
            } else {
                fib.remove_route(&mut batch, source, prefix);
                if let Some(targets) = model.get_mut(&prefix) {
                    targets.remove(&source);
                    if targets.is_empty() {
                        model.remove(&prefix);
                    }
                }
            }
        }
        dp.apply(&batch);
        for prefix in prefixes {
            let expected = model.get(&prefix).and_then(|t| t.values().next());
            let installed = dp.routes.get(&prefix);
            match (expected, installed) {
                (None, None) => {}
                (Some(RouteTarget::Local), Some(&group)) => {
                    assert_eq!(group, GROUP_LOCAL, "step {step}: {prefix} not local");
                }
                (Some(RouteTarget::Via(keys)), Some(group)) => {
                    let members: BTreeSet<(u32, [u8; 16])> = dp.groups[group]
                        .members
                        .iter()
                        .filter(|slot| **slot != NO_NEXTHOP)
                        .map(|slot| (dp.slots[slot].ifindex, dp.slots[slot].via))
                        .collect();
                    let wanted: BTreeSet<(u32, [u8; 16])> = keys
                        .iter()
                        .map(|key| {
                            let mut via = [0; 16];
                            match key.via {
                                IpAddr::V4(addr) => via[..4].copy_from_slice(&addr.octets()),
                                IpAddr::V6(addr) => via = addr.octets(),
                            }
                            (key.ifindex, via)
                        })
                        .collect();
                    assert_eq!(members, wanted, "step {step}: {prefix} nexthops");
                }
                (expected, installed) => {
                    panic!("step {step}: {prefix} wants {expected:?}, installed {installed:?}")
                }
            }
        }
        assert_eq!(fib.route_count(), model.len(), "step {step}");
    }
    // Everything withdrawn: no group, no nexthop left behind.
    let mut batch = Batch::default();
    for prefix in prefixes {
        for source in sources {
            fib.remove_route(&mut batch, source, prefix);
        }
    }
    dp.apply(&batch);
    assert!(dp.routes.is_empty() && dp.groups.is_empty());
    assert_eq!((fib.group_count(), fib.nexthop_count()), (0, 0));
}
