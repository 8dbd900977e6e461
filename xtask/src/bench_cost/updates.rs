//! Single-route update latency with the full table in: what one BGP update that changes one
//! route costs to apply. Each update is a batch of its own through the agent's path (`Fib`
//! builds the batch, `Datapath::apply` writes the maps; for the kernel engine the agent's
//! `RouteWriter` writes the kernel FIB), timed from the FIB call to the last write.
//!
//! Per family: `ops` new prefixes added (drawn like the table, not in it), `ops` prefixes of
//! the table moved to another nexthop group, the added prefixes removed again, so the table
//! ends as it began (but for the groups of the changed routes). The quarantines (released
//! nexthop slots, DIR-24-8 TBL8 groups, DXR blocks) are released every [`RELEASE_EVERY`]
//! updates outside the timed part, as the daemon's timer does.
//!
//! The anchor: a spin of [`SPIN`] reading memory at random, timed the same way as many times,
//! right after. A VM's vCPU is preempted now and then, and an update that straddles it looks
//! slow, in CPU time too (this guest's thread CPU clock is not reliable for it: some updates'
//! CPU time exceeds their wall time): the spins over 50 µs are that floor.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use ipnet::IpNet;
use rand::{SeedableRng, rngs::SmallRng};
use router_agent::fib::{Batch, RouteTarget, Source, synthetic::PrefixShape};

use super::{
    Bench,
    report::{FamilyUpdates, Latency, Updates},
    table::Table,
};

/// Updates between two releases of the quarantines.
const RELEASE_EVERY: usize = 64;

/// The anchor's work per timed operation: about a DXR update's p50.
const SPIN: Duration = Duration::from_micros(2);
/// The anchor's buffer: 64 MiB of 64-byte lines.
const SPIN_LINES: usize = 1 << 20;

/// The updates of both families (IPv6 when the table has IPv6 routes); `seed` makes every
/// engine get the same prefixes.
pub fn measure(bench: &mut Bench, table: &Table, ops: usize, seed: u64) -> Result<Updates> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let v4_existing: Vec<IpNet> = table.v4.iter().map(|&p| p.into()).collect();
    let v4_new = fresh(&v4_existing, ops, || {
        PrefixShape::INTERNET.v4(&mut rng).into()
    });
    let v4_targets = bench.v4_targets.clone();
    let v4 = family(bench, &v4_existing, &v4_new, &v4_targets, ops).context("IPv4")?;
    let v6 = if table.v6.is_empty() {
        None
    } else {
        let v6_existing: Vec<IpNet> = table.v6.iter().map(|&p| p.into()).collect();
        let v6_new = fresh(&v6_existing, ops, || {
            PrefixShape::INTERNET.v6(&mut rng).into()
        });
        let v6_targets = bench.v6_targets.clone();
        Some(family(bench, &v6_existing, &v6_new, &v6_targets, ops).context("IPv6")?)
    };
    let timed_updates = 3 * ops * if v6.is_some() { 2 } else { 1 };
    Ok(Updates {
        v4,
        v6,
        spin: spins(timed_updates),
    })
}

/// `count` spins of [`SPIN`], each timed as an update is, each reading memory at random
/// as an update does (lines of a buffer beyond the caches, each read naming the next).
fn spins(count: usize) -> Latency {
    let mut times = Vec::with_capacity(count);
    let mut cpu_times = Vec::with_capacity(count);
    let words: Vec<u64> = (0..SPIN_LINES * 8)
        .map(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let mut line = 0;
    for _ in 0..count {
        let (started, cpu_started) = (Instant::now(), thread_cpu_ns());
        while started.elapsed() < SPIN {
            for _ in 0..8 {
                line = (words[line * 8] as usize ^ line) % SPIN_LINES;
            }
        }
        times.push(started.elapsed().as_nanos() as u64);
        cpu_times.push(thread_cpu_ns() - cpu_started);
    }
    std::hint::black_box(line);
    Latency::of(times, &cpu_times)
}

/// `count` distinct prefixes from `draw` that are not in `existing`.
fn fresh(existing: &[IpNet], count: usize, mut draw: impl FnMut() -> IpNet) -> Vec<IpNet> {
    let mut taken: HashSet<IpNet> = existing.iter().copied().collect();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let prefix = draw();
        if taken.insert(prefix) {
            out.push(prefix);
        }
    }
    out
}

fn family(
    bench: &mut Bench,
    existing: &[IpNet],
    new: &[IpNet],
    targets: &[RouteTarget],
    ops: usize,
) -> Result<FamilyUpdates> {
    let add = timed(bench, new, |bench, batch, i, prefix| {
        bench
            .fib
            .set_route(
                batch,
                Source::Static,
                prefix,
                targets[i % targets.len()].clone(),
            )
            .with_context(|| format!("adding {prefix}"))
    })?;
    // Route `i` of the table went to group `i % len` at install: the next group is a change.
    let changed = &existing[..ops.min(existing.len())];
    let change = timed(bench, changed, |bench, batch, i, prefix| {
        bench
            .fib
            .set_route(
                batch,
                Source::Static,
                prefix,
                targets[(i + 1) % targets.len()].clone(),
            )
            .with_context(|| format!("changing {prefix}"))
    })?;
    let remove = timed(bench, new, |bench, batch, _, prefix| {
        bench.fib.remove_route(batch, Source::Static, prefix);
        Ok(())
    })?;
    Ok(FamilyUpdates {
        add,
        change,
        remove,
    })
}

/// Applies `change` to each prefix as a batch of its own, timing each.
fn timed(
    bench: &mut Bench,
    prefixes: &[IpNet],
    mut change: impl FnMut(&mut Bench, &mut Batch, usize, IpNet) -> Result<()>,
) -> Result<Latency> {
    let mut times = Vec::with_capacity(prefixes.len());
    let mut cpu_times = Vec::with_capacity(prefixes.len());
    let (mut failures, mut first_failure) = (0, None);
    for (i, &prefix) in prefixes.iter().enumerate() {
        if i % RELEASE_EVERY == 0 {
            let now = Instant::now();
            bench.fib.release_quarantined(now);
            bench.datapath.release_quarantined(now);
        }
        let (started, cpu_started) = (Instant::now(), thread_cpu_ns());
        let mut batch = Batch::default();
        change(bench, &mut batch, i, prefix)?;
        // A refused operation is what the daemon logs and goes on from (the prefix follows a
        // covering route): counted, and the bench goes on too.
        let applied = bench.apply(&batch);
        times.push(started.elapsed().as_nanos() as u64);
        cpu_times.push(thread_cpu_ns() - cpu_started);
        if let Err(err) = applied {
            failures += 1;
            first_failure.get_or_insert_with(|| format!("{prefix}: {err:#}"));
        }
    }
    let mut latency = Latency::of(times, &cpu_times);
    latency.failures = failures;
    latency.first_failure = first_failure;
    Ok(latency)
}

/// This thread's CPU time, ns.
fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return 0;
    }
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}
