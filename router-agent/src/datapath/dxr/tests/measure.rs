//! Figures, not checks: full-table install time, memory and single-update latency.

use super::*;
use crate::fib::synthetic::Table;

/// Install time and memory for a full table (1M IPv4 + 200k IPv6, the bench's shape), in
/// batches as BGP delivers them. `cargo test --release -p router-agent --lib dxr_full_table
/// -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check: run it by hand"]
fn dxr_full_table_install() {
    let mut rng = SmallRng::seed_from_u64(12);
    let table = Table::generate(&mut rng, 1_000_000, 200_000);
    let mut v4: Vec<_> = table
        .v4
        .iter()
        .map(|&p| {
            (
                IpNet::V4(p),
                Some(rng.random_range(FIRST_GROUP..MAX_NEXTHOP_GROUPS)),
            )
        })
        .collect();
    let mut v6: Vec<_> = table
        .v6
        .iter()
        .map(|&p| {
            (
                IpNet::V6(p),
                Some(rng.random_range(FIRST_GROUP..MAX_NEXTHOP_GROUPS)),
            )
        })
        .collect();
    for published in [false, true] {
        // Arenas of twice the design's estimate (quarantine slack).
        let mut dxr = Dxr::new(VecStorage::new(240_000, 110_000, 32_768, 32_767));
        dxr.set_published(published);
        for (name, routes) in [("v4", &mut v4), ("v6", &mut v6)] {
            let start = Instant::now();
            for batch in routes.chunks_mut(32_768) {
                assert_eq!(dxr.apply(batch), vec![]);
            }
            let took = start.elapsed();
            eprintln!(
                "published={published} {name}: {} routes in {:.3} s = {:.0} routes/s",
                routes.len(),
                took.as_secs_f64(),
                routes.len() as f64 / took.as_secs_f64()
            );
        }
        dxr.release_quarantined(after_quarantine());
        eprintln!(
            "published={published}: blocks {:.2} MiB (v4 {:.2}, v6 {:.2}, ext {:.2}), fixed {:.2} MiB, bookkeeping {:.2} MiB, quarantine waits {}",
            dxr.memory_bytes() as f64 / 1048576.0,
            dxr.ranges4.used_lines() as f64 * 64.0 / 1048576.0,
            dxr.ranges6.used_lines() as f64 * 64.0 / 1048576.0,
            dxr.xranges.used_lines() as f64 * 64.0 / 1048576.0,
            dxr.fixed_bytes() as f64 / 1048576.0,
            dxr.bookkeeping_bytes() as f64 / 1048576.0,
            dxr.quarantine_waits()
        );
        let mib = |bytes: usize| bytes as f64 / 1048576.0;
        eprintln!(
            "published={published}: bookkeeping v4 rules {:.2} MiB, v6 rules {:.2}, allocators: ranges4 {:.2} ranges6 {:.2} xranges {:.2} ext ids {:.2} split groups {:.2}",
            mib(dxr.v4.bookkeeping_bytes()),
            mib(dxr.v6.bookkeeping_bytes()),
            mib(dxr.ranges4.bookkeeping_bytes()),
            mib(dxr.ranges6.bookkeeping_bytes()),
            mib(dxr.xranges.bookkeeping_bytes()),
            mib(dxr.ext_ids.bookkeeping_bytes()),
            mib(dxr.sub_groups.bookkeeping_bytes()),
        );
        eprintln!(
            "published={published}: free spans ranges4 {} ranges6 {} xranges {}; lines used {} {} {}",
            dxr.ranges4.free_spans(),
            dxr.ranges6.free_spans(),
            dxr.xranges.free_spans(),
            dxr.ranges4.used_lines(),
            dxr.ranges6.used_lines(),
            dxr.xranges.used_lines(),
        );
        // Single-route updates at the full table.
        let mut times: Vec<Duration> = (0..10_000)
            .map(|i| {
                let (prefix, _) = if i % 2 == 0 { v4[i] } else { v6[i] };
                let start = Instant::now();
                let errors = dxr.apply(&mut [(prefix, Some(FIRST_GROUP + (i % 100) as u32))]);
                let took = start.elapsed();
                assert_eq!(errors, vec![]);
                dxr.release_quarantined(Instant::now());
                took
            })
            .collect();
        times.sort();
        eprintln!(
            "published={published}: single update p50 {:?} p99 {:?} max {:?}, quarantine waits {} (install + updates)",
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            times[times.len() - 1],
            dxr.quarantine_waits()
        );
    }
}

/// Single-route updates inside a dense IPv6 region (12,000 prefixes of 2001:db8::/32 in one
/// /18 chunk, as real tables have under the RIRs' busiest /12s) on top of the full table, with
/// dense nodes split (the default) and not (split limits out of reach): µs per update, blocks
/// quarantined per update, and waits for a quarantine to end. `cargo test --release -p
/// router-agent --lib dxr_dense_region -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check: run it by hand"]
fn dxr_dense_region_updates() {
    let mut rng = SmallRng::seed_from_u64(13);
    let table = Table::generate(&mut rng, 1_000_000, 200_000);
    let region: Ipv6Net = "2001:db8::/32".parse().unwrap();
    let mut dense: Vec<IpNet> = (0..12_000)
        .map(|_| {
            let len = rng.random_range(33..=64);
            let host = rng.random::<u128>() & !u128::from(region.netmask());
            let addr = Ipv6Addr::from(u128::from(region.network()) | host);
            IpNet::V6(Ipv6Net::new(addr, len).unwrap().trunc())
        })
        .collect();
    dense.sort();
    dense.dedup();
    for split in [true, false] {
        let mut dxr = Dxr::new(VecStorage::new(240_000, 110_000, 32_768, 32_767));
        if !split {
            dxr.set_split_limits(SplitLimits {
                split: usize::MAX,
                unsplit: usize::MAX - 1,
            });
        }
        let all = table.v4.iter().map(|&p| IpNet::V4(p));
        let all = all.chain(table.v6.iter().map(|&p| IpNet::V6(p)));
        let mut changes: Vec<_> = all
            .chain(dense.iter().copied())
            .map(|p| (p, Some(2)))
            .collect();
        for batch in changes.chunks_mut(32_768) {
            assert_eq!(dxr.apply(batch), vec![]);
        }
        dxr.release_quarantined(after_quarantine());
        let waits = dxr.quarantine_waits();
        let lines = dxr.ranges6.allocated;
        // Changes to the region's prefixes, one per batch, as BGP updates arrive. A change
        // that finds no room is refused (its chunk goes to the kernel until there is).
        let mut refused = 0;
        let mut times: Vec<Duration> = (0..5_000)
            .map(|i| {
                let prefix = dense[(i * 7919) % dense.len()];
                let start = Instant::now();
                let errors = dxr.apply(&mut [(prefix, Some(3 + (i % 100) as u32))]);
                let took = start.elapsed();
                refused += errors.len();
                took
            })
            .collect();
        let written = dxr.ranges6.allocated - lines;
        times.sort();
        eprintln!(
            "split={split}: {} split groups; 5,000 updates in the region: p50 {:?} p99 {:?} max {:?}, {:.1} IPv6 block lines written (and as many quarantined) per update, {} waits for a quarantine, {refused} refused (no room)",
            dxr.split_groups(),
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            times[times.len() - 1],
            written as f64 / 5_000.0,
            dxr.quarantine_waits() - waits,
        );
    }
}
