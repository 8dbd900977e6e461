//! Split IPv6 nodes against the reference LPM: dense regions under small split limits, so
//! that nodes split down to the last level, merge back, and take changes wider than a child.

use super::*;

/// Dense regions (one /18 chunk each, or part of one) and how long their prefixes get.
const REGIONS: [(&str, u8); 4] = [
    ("2001:db8::/32", 33),
    ("2001:db8:ab00::/40", 41),
    ("2a00:1450::/29", 30),
    ("2400:cb00::/24", 25),
];

fn dense_prefix(rng: &mut SmallRng) -> IpNet {
    let (region, min_len) = REGIONS[rng.random_range(0..REGIONS.len())];
    let region: Ipv6Net = region.parse().unwrap();
    let host_bits = 128 - u32::from(region.prefix_len());
    let offset = rng.random::<u128>() & (u128::MAX >> (128 - host_bits));
    let addr = u128::from(region.network()) | offset;
    // Mostly /34-/64 (the split levels' range), some wider than a child, some longer than
    // /64 (extensions inside split nodes).
    let len = match rng.random_range(0..10) {
        0 => rng.random_range(19..=min_len.max(26)),
        1 => rng.random_range(65..=128),
        _ => rng.random_range(min_len..=64),
    };
    IpNet::V6(Ipv6Net::new(Ipv6Addr::from(addr), len).unwrap().trunc())
}

fn probe(rng: &mut SmallRng, model: &Model, count: usize) -> Vec<IpAddr> {
    let prefixes = model.prefixes();
    (0..count)
        .map(|_| {
            if prefixes.is_empty() || rng.random_bool(0.3) {
                let IpNet::V6(p) = dense_prefix(rng) else {
                    unreachable!()
                };
                IpAddr::V6(p.network())
            } else {
                let (prefix, _) = prefixes[rng.random_range(0..prefixes.len())];
                let edges = edges(prefix, rng);
                edges[rng.random_range(0..edges.len())]
            }
        })
        .collect()
}

/// The `DXR6_SUB` descriptors of every group in quarantine.
fn quarantined_groups(dxr: &Dxr<VecStorage>) -> Vec<(u32, Vec<Option<u64>>)> {
    dxr.sub_groups
        .quarantined()
        .map(|group| (group, group_words(dxr, group)))
        .collect()
}

fn group_words(dxr: &Dxr<VecStorage>, group: u32) -> Vec<Option<u64>> {
    let fanout = router_common::DXR_SPLIT_FANOUT;
    (group * fanout..(group + 1) * fanout)
        .map(|index| dxr.storage().descriptor(Directory::Sub6, index))
        .collect()
}

#[test]
fn split_nodes_match_reference_through_churn() {
    let seed = test_seed();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut dxr = table();
    dxr.set_split_limits(SplitLimits {
        split: 8,
        unsplit: 4,
    });
    let mut model = Model::default();
    let group = |rng: &mut SmallRng| rng.random_range(FIRST_GROUP..MAX_NEXTHOP_GROUPS);
    let initial: Vec<_> = (0..scale(20_000))
        .map(|_| (dense_prefix(&mut rng), Some(group(&mut rng))))
        .collect();
    apply(&mut dxr, &mut model, &initial);
    assert!(dxr.split_groups() > 4, "{} split nodes", dxr.split_groups());
    let addrs = probe(&mut rng, &model, scale(200_000));
    check(&dxr, &model, addrs);

    // Mostly single changes (the update path a BGP UPDATE takes), some batches; quarantined
    // groups must not be written until their quarantine ends (I1).
    let mut snapshots = Vec::new();
    let mut ops = 0;
    while ops < scale(40_000) {
        let size = if rng.random_bool(0.9) {
            1
        } else {
            rng.random_range(2..=500)
        };
        let batch = random_batch(&mut rng, &model, size, 0.25, dense_prefix);
        ops += batch.len();
        apply(&mut dxr, &mut model, &batch);
        let prefixes: Vec<IpNet> = batch.iter().map(|&(p, _)| p).collect();
        check_edges(&dxr, &model, &prefixes, &mut rng);
        for (group, words) in &snapshots {
            assert_eq!(
                &group_words(&dxr, *group),
                words,
                "quarantined group {group}"
            );
        }
        if rng.random_bool(0.05) {
            dxr.release_quarantined(after_quarantine());
            snapshots.clear();
        }
        snapshots.extend(quarantined_groups(&dxr));
    }
    let addrs = probe(&mut rng, &model, scale(200_000));
    check(&dxr, &model, addrs);

    // Read back (show fib, adoption): the same forwarding.
    let (mut v4, mut v6) = (ReferenceLpm::new(), ReferenceLpm::new());
    for (prefix, group) in readback::routes(dxr.storage()) {
        match prefix {
            IpNet::V4(p) => v4.insert(p, group),
            IpNet::V6(p) => v6.insert(p, group),
        };
    }
    for addr in probe(&mut rng, &model, scale(100_000)) {
        let IpAddr::V6(a) = addr else { unreachable!() };
        assert_eq!(v6.lookup(a).copied(), dxr.lookup(addr), "read back {addr}");
    }

    // Removed down to a few prefixes per region: every node merges back, nothing leaks.
    let removals: Vec<_> = model
        .prefixes()
        .into_iter()
        .map(|(p, _)| (p, None))
        .collect();
    for chunk in removals.chunks(7) {
        apply(&mut dxr, &mut model, chunk);
    }
    assert_empty(&mut dxr);
}
