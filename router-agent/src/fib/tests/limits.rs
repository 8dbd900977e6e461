//! Full tables: group-id quarantine, slot exhaustion, routes that cannot be installed.

use std::time::{Duration, Instant};

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn written_groups(batch: &Batch) -> Vec<u32> {
    batch
        .ops()
        .filter_map(|op| match op {
            FibOp::WriteGroup { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn group_ids_are_not_reused_within_the_quarantine_even_across_batches() {
    let (a, b) = (nh("10.0.2.1", 2), nh("10.0.3.1", 3));
    let limits = FibLimits {
        slot_quarantine: HOUR,
        ..FibLimits::default()
    };
    let (mut fib, mut dp) = fib_resolved(limits, &[a, b]);
    let mut seen = Vec::new();
    for step in 0..20 {
        let mut batch = Batch::default();
        let keys = if step % 2 == 0 { [a] } else { [b] };
        fib.set_route(&mut batch, Source::Static, net("10.1.0.0/16"), via(&keys))
            .unwrap();
        dp.apply(&batch);
        let created = written_groups(&batch);
        assert_eq!(created.len(), 1);
        assert!(!seen.contains(&created[0]), "step {step}: id reused");
        if step > 0 {
            // The old group is written EMPTY (cleared) in the same batch.
            assert!(
                batch
                    .ops()
                    .any(|op| matches!(op, FibOp::ClearGroup { id } if *id == seen[step - 1]))
            );
        }
        seen.push(created[0]);
    }
    // Once the quarantine is over, the lowest released id comes back.
    fib.release_quarantined(Instant::now() + 2 * HOUR);
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Static, net("10.2.0.0/16"), via(&[a, b]))
        .unwrap();
    dp.apply(&batch);
    assert_eq!(written_groups(&batch), [seen[0]]);
}

#[test]
fn slot_exhaustion_never_leaves_a_bucket_on_a_stale_record() {
    let (a, b) = (nh("10.0.2.1", 2), nh("10.0.3.1", 3));
    let limits = FibLimits {
        nexthop_slots: 3,
        slot_quarantine: HOUR,
        ..FibLimits::default()
    };
    let (mut fib, mut dp) = fib_resolved(limits, &[a, b]);
    let mut batch = Batch::default();
    for i in 0..10 {
        fib.set_route(&mut batch, Source::Static, prefix_n(i), via(&[a, b]))
            .unwrap();
    }
    dp.apply(&batch);
    // a's new MAC takes the third slot; b's finds none: b leaves the buckets.
    for (key, mac) in [(a, MAC_A), (b, MAC_B)] {
        let mut batch = Batch::default();
        fib.update_neighbor(&mut batch, key.ifindex, key.via, Some(mac));
        dp.apply(&batch);
        dp.assert_current();
    }
    let layout = dp.layout(&prefix_n(3));
    assert!(
        layout.iter().all(|g| *g == Some(via_bytes(a.via))),
        "{layout:?}"
    );
    // a changes again: no slot either; no bucket may use either stale record.
    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, a.ifindex, a.via, Some(MAC_B));
    dp.apply(&batch);
    dp.assert_current();
    assert!(dp.layout(&prefix_n(3)).iter().all(Option::is_none));
    assert_eq!(fib.nexthops().filter(|(_, usable)| *usable).count(), 0);
    // Slots come back (one, then the one the retry released): the updates are retried,
    // both forward again with current records.
    for round in 1..=2 {
        fib.release_quarantined(Instant::now() + HOUR * (2 * round));
        let mut batch = Batch::default();
        fib.retry_deferred(&mut batch);
        dp.apply(&batch);
    }
    let layout = dp.layout(&prefix_n(3));
    for key in [a, b] {
        let held = layout
            .iter()
            .filter(|g| **g == Some(via_bytes(key.via)))
            .count();
        assert_eq!(held, 32);
    }
}

#[test]
fn a_route_that_does_not_fit_goes_to_the_kernel_in_full() {
    let (a, b) = (nh("10.0.2.1", 2), nh("10.0.3.1", 3));
    // One group id (2).
    let limits = FibLimits {
        groups: 3,
        slot_quarantine: Duration::ZERO,
        ..FibLimits::default()
    };
    let (mut fib, mut dp) = fib_resolved(limits, &[a, b]);
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Static, net("10.0.0.0/8"), via(&[a]))
        .unwrap();
    fib.set_route(&mut batch, Source::Static, net("10.2.0.0/16"), via(&[a]))
        .unwrap();
    dp.apply(&batch);

    // A new prefix inside the /8 with another set: no group id. Not the covering route: the
    // kernel, which gets the real route.
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Static, net("10.1.0.0/16"), via(&[b]))
        .unwrap();
    // An installed route changing set: not its old version either.
    fib.set_route(&mut batch, Source::Static, net("10.2.0.0/16"), via(&[b]))
        .unwrap();
    dp.apply(&batch);
    for prefix in ["10.1.0.0/16", "10.2.0.0/16"] {
        assert_eq!(dp.routes[&net(prefix)], GROUP_PASS, "{prefix}");
        assert!(batch.kernel.contains(&KernelChange::Replace {
            prefix: net(prefix),
            nexthops: Arc::new(BTreeSet::from([b])),
        }));
    }
    assert_eq!(fib.unplaced_count(), 2);
    assert_eq!(fib.nexthop_count(), 1, "b was not kept");

    // More nexthops than a group holds, from BGP with no mirroring: still mirrored.
    fib.set_bgp_mirror(KernelMirror::None);
    let many: Vec<NexthopKey> = (0..=NEXTHOP_BUCKETS as u32)
        .map(|i| NexthopKey::host(IpAddr::V4(Ipv4Addr::from(0x0a00_0200 + i)), 2))
        .collect();
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Bgp, net("10.3.0.0/16"), via(&many))
        .unwrap();
    dp.apply(&batch);
    assert_eq!(dp.routes[&net("10.3.0.0/16")], GROUP_PASS);
    assert!(batch.kernel.iter().any(|change| matches!(change,
        KernelChange::Replace { prefix, nexthops }
            if *prefix == net("10.3.0.0/16") && nexthops.len() == 65)));
    assert!(fib.mirrored_prefixes().any(|p| p == net("10.3.0.0/16")));
    let mut batch = Batch::default();
    fib.remove_route(&mut batch, Source::Bgp, net("10.3.0.0/16"));
    dp.apply(&batch);
    assert_eq!(
        batch.kernel,
        [KernelChange::Delete {
            prefix: net("10.3.0.0/16")
        }]
    );

    // The group id comes free: the waiting routes are installed for real.
    let mut batch = Batch::default();
    fib.remove_route(&mut batch, Source::Static, net("10.0.0.0/8"));
    dp.apply(&batch);
    fib.release_quarantined(Instant::now() + HOUR);
    let mut batch = Batch::default();
    fib.retry_deferred(&mut batch);
    dp.apply(&batch);
    assert_eq!(fib.unplaced_count(), 0);
    for prefix in ["10.1.0.0/16", "10.2.0.0/16"] {
        let group = dp.routes[&net(prefix)];
        assert!(group >= FIRST_GROUP, "{prefix} installed");
        assert_eq!(dp.layout(&net(prefix))[0], Some(via_bytes(b.via)));
    }
}

#[test]
fn no_slot_or_nexthop_id_goes_to_the_kernel_and_keeps_nothing() {
    let (a, b) = (nh("10.0.2.1", 2), nh("10.0.3.1", 3));
    for limits in [
        FibLimits {
            nexthop_slots: 1,
            ..FibLimits::default()
        },
        FibLimits {
            nexthop_ids: 1,
            ..FibLimits::default()
        },
    ] {
        let (mut fib, mut dp) = fib_resolved(limits, &[a, b]);
        let mut batch = Batch::default();
        fib.set_route(&mut batch, Source::Static, net("0.0.0.0/0"), via(&[a]))
            .unwrap();
        fib.set_route(&mut batch, Source::Static, net("10.1.0.0/16"), via(&[a, b]))
            .unwrap();
        dp.apply(&batch);
        assert_eq!(dp.routes[&net("10.1.0.0/16")], GROUP_PASS);
        assert_eq!(fib.nexthop_count(), 1);
        assert!(batch.kernel.contains(&KernelChange::Replace {
            prefix: net("10.1.0.0/16"),
            nexthops: Arc::new(BTreeSet::from([a, b])),
        }));
    }
}

#[test]
fn an_unfit_route_keeps_its_nexthops_while_another_source_wins() {
    let (a, b) = (nh("10.0.2.1", 2), nh("10.0.3.1", 3));
    let limits = FibLimits {
        groups: 3,
        slot_quarantine: Duration::ZERO,
        ..FibLimits::default()
    };
    let (mut fib, mut dp) = fib_resolved(limits, &[a, b]);
    let prefix = net("10.1.0.0/16");
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Static, net("10.0.0.0/8"), via(&[a]))
        .unwrap();
    fib.set_route(&mut batch, Source::Static, prefix, via(&[b]))
        .unwrap();
    dp.apply(&batch);
    assert_eq!(dp.routes[&prefix], GROUP_PASS);

    // A local address takes the prefix: the kernel route we added goes.
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Local, prefix, RouteTarget::Local)
        .unwrap();
    dp.apply(&batch);
    assert_eq!(dp.routes[&prefix], GROUP_LOCAL);
    assert_eq!(batch.kernel, [KernelChange::Delete { prefix }]);

    // It goes away: the static route is back with its own nexthops, still unfit: passed and
    // mirrored, never the covering /8.
    let mut batch = Batch::default();
    fib.remove_route(&mut batch, Source::Local, prefix);
    dp.apply(&batch);
    assert_eq!(dp.routes[&prefix], GROUP_PASS);
    assert_eq!(
        batch.kernel,
        [KernelChange::Replace {
            prefix,
            nexthops: Arc::new(BTreeSet::from([b])),
        }]
    );
    // Room again: installed for real at the next operation.
    let mut batch = Batch::default();
    fib.remove_route(&mut batch, Source::Static, net("10.0.0.0/8"));
    dp.apply(&batch);
    fib.release_quarantined(Instant::now() + HOUR);
    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, a.ifindex, a.via, Some(MAC_A));
    dp.apply(&batch);
    assert_eq!(dp.layout(&prefix)[0], Some(via_bytes(b.via)));
    assert_eq!(fib.unplaced_count(), 0);
}
