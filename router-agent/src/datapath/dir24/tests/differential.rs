//! Random tables against the reference LPM, and the measured rates (ignored).

use super::*;

/// Prefix length weights, loosely after the public IPv4 table: mostly /24, then /22, /23,
/// /20, /16, /21, /19, and a few longer than /24 (as an enterprise or IXP table has).
const REALISTIC: &[(u8, u32)] = &[
    (8, 2),
    (9, 1),
    (10, 2),
    (11, 4),
    (12, 8),
    (13, 15),
    (14, 25),
    (15, 40),
    (16, 350),
    (17, 120),
    (18, 200),
    (19, 300),
    (20, 500),
    (21, 450),
    (22, 1000),
    (23, 900),
    (24, 5600),
    (25, 60),
    (26, 60),
    (27, 50),
    (28, 50),
    (29, 50),
    (30, 40),
    (31, 10),
    (32, 80),
];

/// Every length, the short ones rare (there are few of them to pick from anyway).
const ALL_LENGTHS: &[(u8, u32)] = &[
    (0, 1),
    (1, 1),
    (2, 1),
    (3, 1),
    (4, 1),
    (5, 1),
    (6, 1),
    (7, 2),
    (8, 5),
    (9, 3),
    (10, 4),
    (11, 8),
    (12, 15),
    (13, 25),
    (14, 40),
    (15, 60),
    (16, 350),
    (17, 120),
    (18, 200),
    (19, 300),
    (20, 500),
    (21, 450),
    (22, 1000),
    (23, 900),
    (24, 5000),
    (25, 150),
    (26, 150),
    (27, 120),
    (28, 120),
    (29, 120),
    (30, 120),
    (31, 60),
    (32, 300),
];

fn random_len(rng: &mut SmallRng, weights: &[(u8, u32)]) -> u8 {
    let total: u32 = weights.iter().map(|(_, weight)| weight).sum();
    let mut pick = rng.random_range(0..total);
    for &(len, weight) in weights {
        if pick < weight {
            return len;
        }
        pick -= weight;
    }
    unreachable!()
}

/// An address inside `prefix`.
fn random_inside(rng: &mut SmallRng, prefix: Ipv4Net) -> Ipv4Addr {
    let host = rng.random::<u32>() & !u32::from(prefix.netmask());
    Ipv4Addr::from(u32::from(prefix.network()) | host)
}

/// A prefix: 30% of the time around one of `near` (so that prefixes nest and share /24s),
/// else anywhere. Host bits are left set, `Dir24` must clear them.
fn random_prefix(rng: &mut SmallRng, weights: &[(u8, u32)], near: &[Ipv4Net]) -> Ipv4Net {
    let len = random_len(rng, weights);
    let addr = if !near.is_empty() && rng.random_bool(0.3) {
        let around = near[rng.random_range(0..near.len())];
        random_inside(rng, around)
    } else {
        Ipv4Addr::from(rng.random::<u32>())
    };
    Ipv4Net::new(addr, len).unwrap()
}

fn random_group(rng: &mut SmallRng) -> u32 {
    // Few distinct groups (as in real tables), and now and then any id.
    if rng.random_bool(0.9) {
        rng.random_range(0..32)
    } else {
        rng.random_range(0..=DIR24_ID_MASK)
    }
}

/// The depth field of the entry a lookup of `addr` ends on (TBL8 for an extended /24).
fn final_entry_depth(storage: &VecStorage, addr: u32) -> u8 {
    let entry = storage.tbl24(addr >> 8);
    if entry & DIR24_EXTENDED != 0 {
        entry_depth(storage.tbl8(entry & DIR24_ID_MASK, addr as u8))
    } else {
        entry_depth(entry)
    }
}

/// `addresses` lookups, half inside a live prefix, half anywhere, against the reference.
fn check_lookups(
    dir: &Dir24<VecStorage>,
    reference: &ReferenceLpm<Ipv4Net>,
    live: &[Ipv4Net],
    addresses: usize,
    rng: &mut SmallRng,
    seed: u64,
) {
    for n in 0..addresses {
        let addr = if n % 2 == 0 && !live.is_empty() {
            let prefix = live[rng.random_range(0..live.len())];
            random_inside(rng, prefix)
        } else {
            Ipv4Addr::from(rng.random::<u32>())
        };
        let want = reference.lookup(addr).copied();
        let got = dir.lookup(addr);
        assert_eq!(
            got,
            want,
            "seed {seed}: lookup {addr}: reference's longest match is {:?}",
            reference.lookup_prefix(addr)
        );
        // The entry the lookup ends on records the length of the prefix it belongs to
        // (0 for none, or the default route, which is not expanded).
        let want_depth = reference
            .lookup_prefix(addr)
            .map_or(0, |(prefix, _)| prefix.prefix_len());
        assert_eq!(
            final_entry_depth(dir.storage(), u32::from(addr)),
            want_depth,
            "seed {seed}: depth of {addr}'s entry"
        );
    }
    assert_eq!(dir.len(), reference.len(), "seed {seed}");
    for &prefix in live {
        assert_eq!(
            dir.get(prefix),
            reference.get(prefix).copied(),
            "seed {seed}: {prefix}"
        );
    }
    // A group per /24 holding a prefix longer than /24, no more, no fewer.
    let long_blocks: std::collections::HashSet<u32> = reference
        .iter()
        .filter(|(prefix, _)| prefix.prefix_len() > 24)
        .map(|(prefix, _)| u32::from(prefix.network()) >> 8)
        .collect();
    assert_eq!(dir.tbl8_in_use() as usize, long_blocks.len(), "seed {seed}");
}

/// Dir24 against the reference LPM on a random table, through churn, down to empty.
#[test]
fn differential_against_reference() {
    let seed = test_seed();
    let mut rng = SmallRng::seed_from_u64(seed);
    // Full size in release (as tests are run); smaller in debug builds, which are ~30x
    // slower.
    let (prefixes, addresses, churn) = if cfg!(debug_assertions) {
        (20_000, 100_000, 10_000)
    } else {
        (100_000, 1_000_000, 50_000)
    };

    let mut dir = Dir24::new(VecStorage::new(MAX_DIR24_TBL8_GROUPS));
    let mut reference = ReferenceLpm::<Ipv4Net>::new();
    // The prefixes present (normalised), for picking deletes and addresses that hit.
    let mut live: Vec<Ipv4Net> = Vec::with_capacity(prefixes);

    let insert = |dir: &mut Dir24<VecStorage>,
                  reference: &mut ReferenceLpm<Ipv4Net>,
                  live: &mut Vec<Ipv4Net>,
                  prefix: Ipv4Net,
                  group: u32| {
        let got = dir
            .insert(prefix, group)
            .unwrap_or_else(|err| panic!("seed {seed}: {err}"));
        let want = reference.insert(prefix.trunc(), group);
        assert_eq!(got, want, "seed {seed}: insert {prefix} -> {group}");
        if want.is_none() {
            live.push(prefix.trunc());
        }
    };

    while live.len() < prefixes {
        let prefix = random_prefix(&mut rng, ALL_LENGTHS, &live);
        let group = random_group(&mut rng);
        insert(&mut dir, &mut reference, &mut live, prefix, group);
    }
    check_lookups(&dir, &reference, &live, addresses, &mut rng, seed);

    // Churn: deletes (a few of absent prefixes), inserts (a third of them replacing the
    // group of a present prefix), interleaved.
    for _ in 0..churn {
        if rng.random_bool(0.05) {
            let prefix = random_prefix(&mut rng, ALL_LENGTHS, &live);
            let want = reference.remove(prefix.trunc());
            assert_eq!(dir.remove(prefix), want, "seed {seed}: remove {prefix}");
            if want.is_some() {
                // Present after all (short prefixes are few): not live any more.
                let at = live.iter().position(|&p| p == prefix.trunc()).unwrap();
                live.swap_remove(at);
            }
        } else {
            let prefix = live.swap_remove(rng.random_range(0..live.len()));
            let want = reference.remove(prefix);
            assert!(want.is_some());
            assert_eq!(dir.remove(prefix), want, "seed {seed}: remove {prefix}");
        }
        let prefix = if rng.random_bool(0.33) {
            live[rng.random_range(0..live.len())]
        } else {
            random_prefix(&mut rng, ALL_LENGTHS, &live)
        };
        let group = random_group(&mut rng);
        insert(&mut dir, &mut reference, &mut live, prefix, group);
    }
    // Stale groups must be gone from the live ones (`lookup` would see them otherwise).
    check_lookups(&dir, &reference, &live, addresses, &mut rng, seed);

    // Down to nothing, in random order: every entry back to zero, every group free.
    while !live.is_empty() {
        let prefix = live.swap_remove(rng.random_range(0..live.len()));
        assert_eq!(
            dir.remove(prefix),
            reference.remove(prefix),
            "seed {seed}: remove {prefix}"
        );
    }
    assert!(dir.is_empty() && reference.is_empty(), "seed {seed}");
    assert_eq!(dir.tbl8_in_use(), 0, "seed {seed}");
    dir.release_quarantined(after_quarantine());
    assert_eq!(dir.tbl8_quarantined(), 0, "seed {seed}");
    assert_eq!(
        dir.free_tbl8.len() as u32,
        MAX_DIR24_TBL8_GROUPS,
        "seed {seed}"
    );
    assert!(dir.storage().is_zero(), "seed {seed}: storage not zero");
}

/// Insert, replace and delete rates for 1M realistic prefixes (run with
/// `cargo test --release -- --ignored --nocapture dir24_rates`). Prints, asserts nothing
/// about time.
#[test]
#[ignore = "benchmark"]
fn dir24_rates() {
    const COUNT: usize = 1_000_000;
    let mut rng = SmallRng::seed_from_u64(1);
    let prefixes: Vec<Ipv4Net> = (0..COUNT)
        .map(|_| random_prefix(&mut rng, REALISTIC, &[]))
        .collect();
    let groups: Vec<u32> = (0..COUNT).map(|_| rng.random_range(1..1000)).collect();
    let mut dir = Dir24::new(VecStorage::new(MAX_DIR24_TBL8_GROUPS));
    let rate = |start: Instant| COUNT as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    for (prefix, group) in prefixes.iter().zip(&groups) {
        dir.insert(*prefix, *group).unwrap();
    }
    println!(
        "insert:  {:>10.0} prefixes/s ({} distinct, {} TBL8 groups)",
        rate(start),
        dir.len(),
        dir.tbl8_in_use()
    );
    println!(
        "memory:  {} bytes bookkeeping (+ {} MiB storage)",
        dir.memory_bytes(),
        ((dir.storage().tbl24_entries().len() + dir.storage().tbl8_entries().len()) * 4) >> 20
    );

    let start = Instant::now();
    for (prefix, group) in prefixes.iter().zip(&groups) {
        dir.insert(*prefix, group + 1).unwrap();
    }
    println!("replace: {:>10.0} prefixes/s", rate(start));

    let addresses: Vec<Ipv4Addr> = (0..COUNT)
        .map(|_| Ipv4Addr::from(rng.random::<u32>()))
        .collect();
    let start = Instant::now();
    let hits = addresses
        .iter()
        .filter(|addr| dir.lookup(**addr).is_some())
        .count();
    println!("lookup:  {:>10.0} addresses/s ({hits} hits)", rate(start));

    let start = Instant::now();
    for prefix in prefixes.iter().rev() {
        dir.remove(*prefix);
    }
    println!("remove:  {:>10.0} prefixes/s", rate(start));
    assert!(dir.is_empty());
}
