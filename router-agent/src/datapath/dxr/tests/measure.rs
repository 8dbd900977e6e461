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
            "published={published}: single update p50 {:?} p99 {:?} max {:?}",
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            times[times.len() - 1]
        );
    }
}
