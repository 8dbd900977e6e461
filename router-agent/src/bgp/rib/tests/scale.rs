//! A million prefixes from two peers (ignored: a measurement).

use super::*;

/// Resident set size from /proc, in bytes (Linux).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// 1M prefixes from each of two ToRs sharing ~100 attribute sets, arriving in UPDATE-sized
/// batches (one attribute set per batch, as a real UPDATE packs them).
/// `cargo test --release -- --ignored --nocapture million`
#[test]
#[ignore = "memory/speed check; run with --release --ignored --nocapture"]
fn million_prefixes_from_two_peers() {
    const PREFIXES: u32 = 1_000_000;
    const ATTRIBUTE_SETS: u32 = 100;
    const BATCH: usize = 200;
    let rss_before = rss_bytes();
    let (mut rib, a, b) = dual_homed();
    let mut rng = SmallRng::seed_from_u64(7);
    let mut prefixes: Vec<IpNet> = (0..PREFIXES)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0100_0000 + (i << 8)), 24).unwrap()))
        .collect();
    // Tables do not arrive sorted.
    for i in (1..prefixes.len()).rev() {
        prefixes.swap(i, rng.random_range(0..=i));
    }
    let attribute_sets = |peer: &PeerInfo| -> Vec<PathAttributes> {
        (0..ATTRIBUTE_SETS)
            .map(|i| {
                let mut set = attrs(&[peer.remote_as, 64600 + i, 64700 + i % 7]);
                set.communities = vec![(65000 << 16) | i];
                set
            })
            .collect()
    };

    let started = Instant::now();
    let mut changes = 0usize;
    for peer in [&a, &b] {
        let sets = attribute_sets(peer);
        for (batch, chunk) in prefixes.chunks(BATCH).enumerate() {
            let shared = Arc::new(sets[batch % sets.len()].clone());
            for prefix in chunk {
                let spec = PathSpec {
                    attrs: shared.clone(),
                    next_hop: NextHop::new(peer.address),
                };
                changes += usize::from(rib.update(peer.id, *prefix, Some(spec)).is_some());
            }
        }
    }
    let load = started.elapsed();
    let updates = 2 * PREFIXES as usize;
    let estimate = rib.memory_estimate();
    let rss = rss_bytes().saturating_sub(rss_before);

    let started = Instant::now();
    let mut down_changes = 0usize;
    rib.peer_down_each(a.id, |_| down_changes += 1);
    let down = started.elapsed();

    // The prefix list itself (1M IpNet) is part of the RSS growth; subtract it.
    let own = prefixes.capacity() * size_of::<IpNet>();
    println!(
        "load: {updates} updates in {load:?} = {:.0} updates/s, {changes} Loc-RIB changes",
        updates as f64 / load.as_secs_f64()
    );
    println!(
        "estimate: {} prefixes, {} paths, {} attribute sets: {} bytes = {:.1} bytes/prefix, \
         {:.1} bytes/path (table {}, paths {}, shared {})",
        estimate.prefixes,
        estimate.paths,
        estimate.attribute_sets,
        estimate.total_bytes(),
        estimate.total_bytes() as f64 / estimate.prefixes as f64,
        estimate.total_bytes() as f64 / estimate.paths as f64,
        estimate.table_bytes,
        estimate.path_bytes,
        estimate.shared_bytes
    );
    println!(
        "RSS growth (minus the test's prefix list): {} bytes = {:.1} bytes/prefix, {:.1} bytes/path",
        rss - own,
        (rss - own) as f64 / PREFIXES as f64,
        (rss - own) as f64 / updates as f64
    );
    println!(
        "peer_down of 1M prefixes: {down:?}, {down_changes} changes ({:.0} prefixes/s)",
        PREFIXES as f64 / down.as_secs_f64()
    );

    // The session comes back and sends its table in prefix order, as speakers walking their
    // own table do: the B-tree search then stays in cache.
    prefixes.sort_unstable();
    rib.peer_up(a.clone(), accept_all()).unwrap();
    let sets = attribute_sets(&a);
    let started = Instant::now();
    for (batch, chunk) in prefixes.chunks(BATCH).enumerate() {
        let shared = Arc::new(sets[batch % sets.len()].clone());
        for prefix in chunk {
            let spec = PathSpec {
                attrs: shared.clone(),
                next_hop: NextHop::new(a.address),
            };
            rib.update(a.id, *prefix, Some(spec));
        }
    }
    let reload = started.elapsed();
    println!(
        "re-sent in prefix order: {PREFIXES} updates in {reload:?} = {:.0} updates/s",
        PREFIXES as f64 / reload.as_secs_f64()
    );
    assert_eq!(estimate.prefixes, PREFIXES as usize);
    assert_eq!(down_changes, PREFIXES as usize);
}
