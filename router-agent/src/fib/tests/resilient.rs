//! Resilient ECMP for every cause of change: per bucket, which gateway a flow goes to before
//! and after; a bucket keeps its gateway unless that gateway left the route, or it now goes to
//! a gateway that joined.

use super::*;

type Layout = Vec<Option<[u8; 16]>>;

/// Asserts the resilient-ECMP rule between two layouts of one route whose usable gateways went
/// from `old` to `new`, and that joining gateways took their share. Returns the moved buckets.
fn assert_resilient(
    what: &str,
    before: &Layout,
    after: &Layout,
    old: &BTreeSet<[u8; 16]>,
    new: &BTreeSet<[u8; 16]>,
) -> usize {
    let mut moved = 0;
    for (bucket, (b, a)) in before.iter().zip(after).enumerate() {
        if b == a {
            continue;
        }
        moved += 1;
        let left = b.is_none_or(|b| !new.contains(&b));
        let joined = a.is_some_and(|a| new.contains(&a) && !old.contains(&a));
        assert!(
            left || joined,
            "{what}: bucket {bucket} moved from surviving {b:?} to {a:?}"
        );
    }
    let joiners: Vec<_> = new.difference(old).collect();
    if !old.is_empty() && !new.is_empty() {
        for joiner in joiners {
            let held = after.iter().filter(|a| **a == Some(*joiner)).count();
            let share = NEXTHOP_BUCKETS / new.len();
            assert!(
                held == share || held == share + 1,
                "{what}: joining {joiner:?} holds {held} buckets, share {share}"
            );
        }
    }
    moved
}

fn gateways(keys: &[NexthopKey]) -> BTreeSet<[u8; 16]> {
    keys.iter().map(|key| via_bytes(key.via)).collect()
}

fn set_all(fib: &mut Fib, dp: &mut ModelDatapath, prefixes: &[IpNet], keys: &[NexthopKey]) {
    let mut batch = Batch::default();
    for prefix in prefixes {
        fib.set_route(&mut batch, Source::Bgp, *prefix, via(keys))
            .unwrap();
    }
    dp.apply(&batch);
}

fn layouts(dp: &ModelDatapath, prefixes: &[IpNet]) -> Vec<Layout> {
    prefixes.iter().map(|p| dp.layout(p)).collect()
}

const A: &str = "10.0.2.1";
const B: &str = "10.0.3.1";
const C: &str = "10.0.2.3";
const D: &str = "10.0.3.4";

#[test]
fn withdrawing_one_of_three_paths_route_by_route_moves_only_its_flows() {
    let (a, b, c) = (nh(A, 2), nh(B, 3), nh(C, 2));
    let (mut fib, mut dp) = fib_resolved(FibLimits::default(), &[a, b, c]);
    let prefixes: Vec<IpNet> = (0..100).map(prefix_n).collect();
    set_all(&mut fib, &mut dp, &prefixes, &[a, b, c]);
    let before = layouts(&dp, &prefixes);
    // a's path goes: a holds the first buckets, so a fresh layout for {b, c} would move b's
    // and c's flows too.
    let (old, new) = (gateways(&[a, b, c]), gateways(&[b, c]));
    for (i, prefix) in prefixes.iter().enumerate() {
        let mut batch = Batch::default();
        fib.set_route(&mut batch, Source::Bgp, *prefix, via(&[b, c]))
            .unwrap();
        dp.apply(&batch);
        for (j, p) in prefixes.iter().enumerate() {
            let now = dp.layout(p);
            if j <= i {
                let moved = assert_resilient(&format!("{p}"), &before[j], &now, &old, &new);
                assert_eq!(moved, 22, "exactly a's buckets moved");
            } else {
                assert_eq!(now, before[j], "{p} did not change");
            }
        }
    }
    assert_eq!(fib.group_count(), 1, "the successor; the old group is gone");
}

#[test]
fn session_down_then_withdrawals_move_nothing_more() {
    // The session to a (the first buckets) goes down.
    let (b, c) = (nh(B, 3), nh(C, 2));
    let a = NexthopKey {
        owner: Owner::Bgp(7),
        ..nh(A, 2)
    };
    let (mut fib, mut dp) = fib_resolved(FibLimits::default(), &[a, b, c]);
    let prefixes: Vec<IpNet> = (0..50).map(prefix_n).collect();
    set_all(&mut fib, &mut dp, &prefixes, &[a, b, c]);
    let before = layouts(&dp, &prefixes);

    let mut batch = Batch::default();
    fib.set_gateways_failed(&mut batch, Owner::Bgp(7), &[a.via], true);
    dp.apply(&batch);
    let failed = layouts(&dp, &prefixes);
    for (j, p) in prefixes.iter().enumerate() {
        let (old, new) = (gateways(&[a, b, c]), gateways(&[b, c]));
        assert_eq!(
            assert_resilient(&format!("{p}"), &before[j], &failed[j], &old, &new),
            22
        );
    }
    // The session's routes are then withdrawn one by one: nothing moves any more.
    for prefix in &prefixes {
        let mut batch = Batch::default();
        fib.set_route(&mut batch, Source::Bgp, *prefix, via(&[b, c]))
            .unwrap();
        dp.apply(&batch);
        assert_eq!(layouts(&dp, &prefixes), failed);
    }
}

#[test]
fn a_joining_nexthop_takes_buckets_only_from_the_others() {
    let (a, b, d) = (nh(A, 2), nh(B, 3), nh(D, 3));
    let (mut fib, mut dp) = fib_resolved(FibLimits::default(), &[a, b, d]);
    let prefixes: Vec<IpNet> = (0..20).map(prefix_n).collect();
    set_all(&mut fib, &mut dp, &prefixes, &[a, b]);
    let before = layouts(&dp, &prefixes);
    let (old, new) = (gateways(&[a, b]), gateways(&[a, b, d]));
    for (i, prefix) in prefixes.iter().enumerate() {
        let mut batch = Batch::default();
        fib.set_route(&mut batch, Source::Bgp, *prefix, via(&[a, b, d]))
            .unwrap();
        dp.apply(&batch);
        let now = dp.layout(prefix);
        let moved = assert_resilient(&format!("{prefix}"), &before[i], &now, &old, &new);
        let to_d = now.iter().filter(|g| **g == Some(via_bytes(d.via))).count();
        assert_eq!(moved, to_d, "every moved bucket went to d");
        assert!((21..=22).contains(&to_d));
    }
    // All routes moved: they share one group, the same layout.
    assert_eq!(fib.group_count(), 1);
}

#[test]
fn one_route_changing_its_set_among_many_moves_only_its_own_left_flows() {
    let (a, b, c, d) = (nh(A, 2), nh(B, 3), nh(C, 2), nh(D, 3));
    let (mut fib, mut dp) = fib_resolved(FibLimits::default(), &[a, b, c, d]);
    let prefixes: Vec<IpNet> = (0..50).map(prefix_n).collect();
    set_all(&mut fib, &mut dp, &prefixes, &[a, b, c]);
    let before = layouts(&dp, &prefixes);
    // a (the first buckets) leaves and d joins, for one route.
    let mut batch = Batch::default();
    fib.set_route(&mut batch, Source::Bgp, prefixes[7], via(&[b, c, d]))
        .unwrap();
    dp.apply(&batch);
    let after = layouts(&dp, &prefixes);
    for (j, p) in prefixes.iter().enumerate() {
        if j == 7 {
            let (old, new) = (gateways(&[a, b, c]), gateways(&[b, c, d]));
            assert!(assert_resilient(&format!("{p}"), &before[j], &after[j], &old, &new) > 0);
        } else {
            assert_eq!(after[j], before[j], "{p} is untouched");
        }
    }
    assert_eq!(fib.group_count(), 2);
}

/// Random set changes, failures and recoveries over shared groups: after every single change
/// every route obeys the resilient-ECMP rule relative to its usable gateways.
#[test]
fn random_changes_move_only_flows_of_nexthops_that_left() {
    use rand::{Rng, SeedableRng, rngs::SmallRng};

    let pool: Vec<NexthopKey> = (1..=6)
        .map(|i| nh(&format!("10.0.{}.{i}", 2 + i % 2), 2 + i % 2))
        .collect();
    let (mut fib, mut dp) = fib_resolved(FibLimits::default(), &pool);
    let prefixes: Vec<IpNet> = (0..24).map(prefix_n).collect();
    let mut rng = SmallRng::seed_from_u64(8);
    let mut sets: HashMap<IpNet, Vec<NexthopKey>> = HashMap::new();
    let mut dead: BTreeSet<IpAddr> = BTreeSet::new();
    // A few common sets, so routes share groups and successors.
    let choices: Vec<Vec<NexthopKey>> = (0..6)
        .map(|_| {
            let mut keys: Vec<NexthopKey> = pool
                .iter()
                .copied()
                .filter(|_| rng.random_bool(0.5))
                .collect();
            if keys.is_empty() {
                keys.push(pool[0]);
            }
            keys
        })
        .collect();
    let usable = |keys: &[NexthopKey], dead: &BTreeSet<IpAddr>| -> BTreeSet<[u8; 16]> {
        let alive: BTreeSet<[u8; 16]> = keys
            .iter()
            .filter(|k| !dead.contains(&k.via))
            .map(|k| via_bytes(k.via))
            .collect();
        if alive.is_empty() {
            gateways(keys)
        } else {
            alive
        }
    };
    for step in 0..4000 {
        let before: HashMap<IpNet, Layout> = sets.keys().map(|p| (*p, dp.layout(p))).collect();
        let old_sets = sets.clone();
        let old_dead = dead.clone();
        let mut batch = Batch::default();
        match rng.random_range(0..10) {
            0..=6 => {
                let prefix = prefixes[rng.random_range(0..prefixes.len())];
                let keys = choices[rng.random_range(0..choices.len())].clone();
                fib.set_route(&mut batch, Source::Bgp, prefix, via(&keys))
                    .unwrap();
                sets.insert(prefix, keys);
            }
            7 => {
                let prefix = prefixes[rng.random_range(0..prefixes.len())];
                fib.remove_route(&mut batch, Source::Bgp, prefix);
                sets.remove(&prefix);
            }
            _ => {
                let gateway = pool[rng.random_range(0..pool.len())].via;
                let failed = !dead.contains(&gateway);
                fib.set_gateways_failed(&mut batch, Owner::Host, &[gateway], failed);
                if failed {
                    dead.insert(gateway);
                } else {
                    dead.remove(&gateway);
                }
            }
        }
        dp.apply(&batch);
        for (prefix, keys) in &sets {
            let Some(before) = before.get(prefix) else {
                continue;
            };
            let old = usable(&old_sets[prefix], &old_dead);
            let new = usable(keys, &dead);
            assert_resilient(
                &format!("step {step}: {prefix}"),
                before,
                &dp.layout(prefix),
                &old,
                &new,
            );
        }
    }
    let mut batch = Batch::default();
    for prefix in &prefixes {
        fib.remove_route(&mut batch, Source::Bgp, *prefix);
    }
    dp.apply(&batch);
    assert_eq!((fib.group_count(), fib.nexthop_count()), (0, 0));
    assert!(fib.successors.is_empty() && fib.groups_by_set.is_empty());
}
