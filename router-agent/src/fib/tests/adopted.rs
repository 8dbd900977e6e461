//! Routes adopted from the previous run: layouts kept, swept per peer and family, overridden
//! by fresh BGP routes, nothing leaked.

use std::time::{Duration, Instant};

use router_common::{NexthopOwner, OWNER_BGP, OWNER_F_PEER_IPV6, OWNER_F_PEER_UNKNOWN};

use super::*;

const PEER1: &str = "10.0.2.1";
const PEER2: &str = "10.0.3.1";

fn peer(address: &str) -> IpAddr {
    address.parse().unwrap()
}

fn adopted(via: &str, ifindex: u32, peer_address: &str) -> NexthopKey {
    NexthopKey {
        owner: Owner::Adopted(peer(peer_address)),
        ..nh(via, ifindex)
    }
}

/// A balanced layout over `members` that a fresh rebalance would not make: interleaved,
/// the remainder on the last member.
fn group(members: &[NexthopKey]) -> AdoptedGroup {
    let mut buckets = [None; NEXTHOP_BUCKETS];
    let n = members.len();
    for (i, bucket) in buckets.iter_mut().enumerate() {
        *bucket = Some((n - 1 - i % n) as u8);
    }
    AdoptedGroup {
        members: members.to_vec(),
        buckets,
    }
}

/// Per bucket, the gateway the group sends to.
fn expected_layout(group: &AdoptedGroup) -> Vec<Option<[u8; 16]>> {
    group
        .buckets
        .iter()
        .map(|m| m.map(|m| via_bytes(group.members[usize::from(m)].via)))
        .collect()
}

fn two_peers() -> (Fib, ModelDatapath, NexthopKey, NexthopKey) {
    let (a, b) = (adopted(PEER1, 2, PEER1), adopted(PEER2, 3, PEER2));
    let (fib, dp) = fib_resolved(FibLimits::default(), &[a, b]);
    (fib, dp, a, b)
}

#[test]
fn adopted_routes_keep_their_bucket_layout_and_share_their_group() {
    let (mut fib, mut dp, a, b) = two_peers();
    let previous = group(&[a, b]);
    let mut batch = Batch::default();
    for prefix in ["198.18.0.0/24", "198.18.1.0/24"] {
        fib.adopt_route(&mut batch, net(prefix), &previous).unwrap();
    }
    assert!(
        batch.kernel.is_empty(),
        "the kernel still has the previous run's routes"
    );
    dp.apply(&batch);
    assert_eq!(fib.adopted_route_count(), 2);
    assert_eq!(
        fib.group_count(),
        1,
        "routes of one previous group share one group"
    );
    for prefix in ["198.18.0.0/24", "198.18.1.0/24"] {
        assert_eq!(
            dp.layout(&net(prefix)),
            expected_layout(&previous),
            "{prefix}"
        );
    }
    // The same set in another previous layout is another group.
    let mut other = previous.clone();
    other.buckets.reverse();
    let mut batch = Batch::default();
    fib.adopt_route(&mut batch, net("198.18.2.0/24"), &other)
        .unwrap();
    dp.apply(&batch);
    assert_eq!(fib.group_count(), 2);
    assert_eq!(dp.layout(&net("198.18.2.0/24")), expected_layout(&other));
}

#[test]
fn a_bucket_that_pointed_nowhere_is_filled() {
    let (mut fib, mut dp, a, b) = two_peers();
    let mut previous = group(&[a, b]);
    previous.buckets[5] = None;
    let mut batch = Batch::default();
    fib.adopt_route(&mut batch, net("198.18.0.0/24"), &previous)
        .unwrap();
    dp.apply(&batch);
    let layout = dp.layout(&net("198.18.0.0/24"));
    assert!(layout.iter().all(Option::is_some));
    let expected = expected_layout(&previous);
    let moved = (0..NEXTHOP_BUCKETS)
        .filter(|i| layout[*i] != expected[*i])
        .count();
    assert_eq!(moved, 1, "only the empty bucket changed");
}

#[test]
fn sweeping_a_peer_moves_only_its_buckets_in_that_family() {
    let (mut fib, mut dp, a, b) = two_peers();
    let a6 = adopted("2001:db8::1", 2, PEER1);
    let previous = group(&[a, b]);
    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, 2, a6.via, Some(MAC_A));
    fib.adopt_route(&mut batch, net("198.18.0.0/24"), &previous)
        .unwrap();
    fib.adopt_route(&mut batch, net("2001:db8:1::/48"), &group(&[a6]))
        .unwrap();
    dp.apply(&batch);
    let before = dp.layout(&net("198.18.0.0/24"));

    let mut batch = Batch::default();
    assert_eq!(
        fib.sweep_adopted(&mut batch, Some(peer(PEER1)), Some(Family::Ipv4)),
        1
    );
    assert!(batch.kernel.is_empty());
    dp.apply(&batch);
    let after = dp.layout(&net("198.18.0.0/24"));
    let b_via = Some(via_bytes(b.via));
    assert!(after.iter().all(|new| *new == b_via), "only peer 2 is left");
    assert!(before.contains(&Some(via_bytes(a.via))));
    assert_eq!(fib.adopted_route_count(), 2, "the IPv6 route is untouched");
    assert!(dp.routes.contains_key(&net("2001:db8:1::/48")));

    // Sweeping again changes nothing; the other peer's sweep empties the IPv4 route.
    let mut batch = Batch::default();
    assert_eq!(
        fib.sweep_adopted(&mut batch, Some(peer(PEER1)), Some(Family::Ipv4)),
        0
    );
    assert_eq!(
        fib.sweep_adopted(&mut batch, Some(peer(PEER2)), Some(Family::Ipv4)),
        1
    );
    dp.apply(&batch);
    assert!(!dp.routes.contains_key(&net("198.18.0.0/24")));
    assert_eq!(fib.adopted_route_count(), 1);

    // The selection deferral sweeps what is left.
    let mut batch = Batch::default();
    assert_eq!(fib.sweep_adopted(&mut batch, None, None), 1);
    dp.apply(&batch);
    assert_eq!(fib.adopted_route_count(), 0);
    assert_eq!((fib.route_count(), fib.group_count()), (0, 0));
    assert_eq!(fib.nexthop_count(), 0, "no nexthop leaked");
    assert!(dp.routes.is_empty() && dp.groups.is_empty());

    // Every slot and group id comes back after the quarantine.
    fib.release_quarantined(Instant::now() + Duration::from_secs(60));
    let (mut fresh, _) = fib_resolved(FibLimits::default(), &[]);
    let mut batch = Batch::default();
    let mut fresh_batch = Batch::default();
    let key = nh(PEER1, 2);
    fib.set_route(&mut batch, Source::Static, net("10.9.0.0/16"), via(&[key]))
        .unwrap();
    fresh
        .set_route(
            &mut fresh_batch,
            Source::Static,
            net("10.9.0.0/16"),
            via(&[key]),
        )
        .unwrap();
    let written = |batch: &Batch| -> Vec<(u32, u32)> {
        batch
            .ops()
            .filter_map(|op| match op {
                FibOp::WriteNexthop { slot, .. } => Some((0, *slot)),
                FibOp::WriteGroup { id, .. } => Some((1, *id)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        written(&batch),
        written(&fresh_batch),
        "lowest ids free again"
    );
}

#[test]
fn a_fresh_bgp_route_overrides_the_adopted_one_until_it_is_withdrawn() {
    let (mut fib, mut dp, a, _) = two_peers();
    let mut batch = Batch::default();
    fib.adopt_route(&mut batch, net("198.18.0.0/24"), &group(&[a]))
        .unwrap();
    dp.apply(&batch);

    let fresh = NexthopKey {
        owner: Owner::Bgp(1),
        ..a
    };
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Bgp, net("198.18.0.0/24"), via(&[fresh]))
        .unwrap();
    assert_eq!(batch.kernel.len(), 1, "the fresh route is mirrored");
    dp.apply(&batch);
    assert_eq!(
        fib.adopted_route_count(),
        1,
        "waiting behind the fresh route"
    );
    assert_eq!(fib.group_count(), 1, "the adopted group is gone");

    // Withdrawn before the peer's End-of-RIB: the adopted route forwards again.
    let mut batch = Batch::default();
    fib.remove_route(&mut batch, Source::Bgp, net("198.18.0.0/24"));
    dp.apply(&batch);
    assert!(dp.routes.contains_key(&net("198.18.0.0/24")));

    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Bgp, net("198.18.0.0/24"), via(&[fresh]))
        .unwrap();
    assert_eq!(
        fib.sweep_adopted(&mut batch, Some(peer(PEER1)), None),
        1,
        "the waiting route is swept"
    );
    dp.apply(&batch);
    assert_eq!(fib.adopted_route_count(), 0);
    assert_eq!(fib.group_count(), 1);
    assert_eq!(fib.nexthop_count(), 1, "only the fresh route's nexthop");
    assert!(dp.routes.contains_key(&net("198.18.0.0/24")));
}

#[test]
fn preferred_sources_keep_their_prefix_and_kernel_fallbacks_wait() {
    let (mut fib, mut dp, a, b) = two_peers();
    let host = nh("10.0.2.9", 2);
    let mut batch = Batch::default();
    fib.set_route(
        &mut batch,
        Source::Static,
        net("198.18.0.0/24"),
        via(&[host]),
    )
    .unwrap();
    fib.set_route(
        &mut batch,
        Source::KernelFallback,
        net("198.18.1.0/24"),
        via(&[host]),
    )
    .unwrap();
    fib.adopt_route(&mut batch, net("198.18.0.0/24"), &group(&[a]))
        .unwrap();
    fib.adopt_route(&mut batch, net("198.18.1.0/24"), &group(&[b]))
        .unwrap();
    dp.apply(&batch);
    assert_eq!(fib.adopted_route_count(), 2);
    assert_eq!(
        dp.layout(&net("198.18.0.0/24"))[0],
        Some(via_bytes(host.via))
    );
    assert_eq!(dp.layout(&net("198.18.1.0/24"))[0], Some(via_bytes(b.via)));

    let mut batch = Batch::default();
    assert_eq!(fib.sweep_adopted(&mut batch, None, None), 2);
    dp.apply(&batch);
    assert_eq!(fib.adopted_route_count(), 0);
    assert_eq!(
        dp.layout(&net("198.18.1.0/24"))[0],
        Some(via_bytes(host.via)),
        "the kernel's route is back"
    );
    assert_eq!(fib.route_count(), 2);
}

fn owners_written(batch: &Batch) -> Vec<NexthopOwner> {
    batch
        .ops()
        .filter_map(|op| match op {
            FibOp::WriteNexthop { owner, .. } => Some(*owner),
            _ => None,
        })
        .collect()
}

#[test]
fn nexthop_records_carry_their_owner() {
    let (mut fib, _) = fib_resolved(FibLimits::default(), &[]);
    fib.name_owner(Owner::Bgp(1), "2001:db8::7".parse().unwrap());
    let mut batch = Batch::default();
    let named = NexthopKey {
        owner: Owner::Bgp(1),
        ..nh(PEER1, 2)
    };
    let unnamed = NexthopKey {
        owner: Owner::Bgp(2),
        ..nh(PEER2, 3)
    };
    fib.set_route(&mut batch, Source::Bgp, net("198.18.0.0/24"), via(&[named]))
        .unwrap();
    fib.set_route(
        &mut batch,
        Source::Bgp,
        net("198.18.1.0/24"),
        via(&[unnamed]),
    )
    .unwrap();
    fib.set_route(
        &mut batch,
        Source::Static,
        net("198.18.2.0/24"),
        via(&[nh(PEER1, 2)]),
    )
    .unwrap();
    fib.adopt_route(
        &mut batch,
        net("198.18.3.0/24"),
        &group(&[adopted(PEER2, 3, "192.0.2.1")]),
    )
    .unwrap();
    let owners = owners_written(&batch);
    assert_eq!(owners.len(), 4);
    assert_eq!(
        (owners[0].kind, owners[0].flags, owners[0].peer),
        (
            OWNER_BGP,
            OWNER_F_PEER_IPV6,
            via_bytes("2001:db8::7".parse().unwrap())
        )
    );
    assert_eq!(
        (owners[1].kind, owners[1].flags),
        (OWNER_BGP, OWNER_F_PEER_UNKNOWN)
    );
    assert_eq!(owners[2], NexthopOwner::default(), "the host's");
    assert_eq!(
        (owners[3].kind, owners[3].flags, owners[3].peer),
        (OWNER_BGP, 0, via_bytes(peer("192.0.2.1")))
    );

    // A changed record goes to a fresh slot with its owner.
    let mut batch = Batch::default();
    fib.update_neighbor(&mut batch, 2, peer(PEER1), Some(MAC_B));
    let owners = owners_written(&batch);
    assert!(owners.iter().any(|o| o.flags == OWNER_F_PEER_IPV6));
    assert!(owners.contains(&NexthopOwner::default()));
}

#[test]
fn a_table_of_one_group_is_adopted_with_one_group_write() {
    let (mut fib, mut dp, a, b) = two_peers();
    let prefixes: Vec<IpNet> = (0..20_000).map(prefix_n).collect();
    let mut batch = Batch::default();
    let started = Instant::now();
    fib.adopt_routes(&mut batch, &group(&[a, b]), &prefixes)
        .unwrap();
    eprintln!("20000 routes adopted in {:?}", started.elapsed());
    let group_writes = batch
        .ops()
        .filter(|op| matches!(op, FibOp::WriteGroup { .. }))
        .count();
    assert_eq!(group_writes, 1);
    dp.apply(&batch);
    assert_eq!(fib.adopted_route_count(), 20_000);
    assert_eq!(dp.routes.len(), 20_000);

    let mut batch = Batch::default();
    assert_eq!(
        fib.sweep_adopted(&mut batch, None, Some(Family::Ipv4)),
        20_000
    );
    dp.apply(&batch);
    assert_eq!(
        (fib.route_count(), fib.group_count(), fib.nexthop_count()),
        (0, 0, 0)
    );
}
