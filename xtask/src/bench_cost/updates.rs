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
//! Two anchors, for the updates over 50 µs:
//! - which updates took one of the guest's timer interrupts ([`TimerTicks`]): on this VM a
//!   tick costs 20-60 µs, and the update runs on the caches it left cold;
//! - a spin of [`SPIN`] reading memory at random, timed the same way as many times, right
//!   after: the stalls of the machine itself (a spin does not pay for cold caches: it reads
//!   memory beyond them anyway, and stops at its time).
//!
//! Each update over [`SLOW`] is also listed, in the JSON output (`--json`), with its start on
//! `CLOCK_MONOTONIC`: to be matched with a `perf record -k mono` trace of the same run.

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
    report::{FamilyUpdates, Latency, SlowUpdate, Updates},
    table::Table,
    ticks::TimerTicks,
};

/// Updates between two releases of the quarantines.
const RELEASE_EVERY: usize = 64;

/// The anchor's work per timed operation: about a DXR update's p50.
const SPIN: Duration = Duration::from_micros(2);
/// The anchor's buffer: 64 MiB of 64-byte lines.
const SPIN_LINES: usize = 1 << 20;
/// Updates (and spins) slower than this are listed one by one.
const SLOW: Duration = Duration::from_micros(30);

/// The updates of both families (IPv6 when the table has IPv6 routes); `seed` makes every
/// engine get the same prefixes.
pub fn measure(bench: &mut Bench, table: &Table, ops: usize, seed: u64) -> Result<Updates> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut timer = Timer {
        ticks: TimerTicks::open(),
        slow: Vec::new(),
    };
    let v4_existing: Vec<IpNet> = table.v4.iter().map(|&p| p.into()).collect();
    let v4_new = fresh(&v4_existing, ops, || {
        PrefixShape::INTERNET.v4(&mut rng).into()
    });
    let v4_targets = bench.v4_targets.clone();
    let v4 = family(
        bench,
        &mut timer,
        "v4",
        &v4_existing,
        &v4_new,
        &v4_targets,
        ops,
    )
    .context("IPv4")?;
    let v6 = if table.v6.is_empty() {
        None
    } else {
        let v6_existing: Vec<IpNet> = table.v6.iter().map(|&p| p.into()).collect();
        let v6_new = fresh(&v6_existing, ops, || {
            PrefixShape::INTERNET.v6(&mut rng).into()
        });
        let v6_targets = bench.v6_targets.clone();
        Some(
            family(
                bench,
                &mut timer,
                "v6",
                &v6_existing,
                &v6_new,
                &v6_targets,
                ops,
            )
            .context("IPv6")?,
        )
    };
    let timed_updates = 3 * ops * if v6.is_some() { 2 } else { 1 };
    let spin = spins(&mut timer, timed_updates);
    Ok(Updates {
        v4,
        v6,
        spin,
        slow: timer.slow,
    })
}

/// Times operations: their wall time, whether the thread took a timer tick meanwhile, and the
/// slow ones one by one.
struct Timer {
    ticks: Option<TimerTicks>,
    slow: Vec<SlowUpdate>,
}

/// One timed operation under way.
struct Timing {
    started: Instant,
    monotonic_ns: u64,
    ticks: Option<u64>,
}

impl Timer {
    fn start(&mut self) -> Timing {
        let ticks = self.ticks.as_mut().and_then(TimerTicks::read);
        Timing {
            monotonic_ns: monotonic_ns(),
            started: Instant::now(),
            ticks,
        }
    }

    /// The operation's time and whether it took a tick (`None`: not known here); a slow one
    /// is listed as `what`.
    fn stop(&mut self, timing: Timing, what: impl FnOnce() -> String) -> (u64, Option<bool>) {
        let ns = timing.started.elapsed().as_nanos() as u64;
        let after = self.ticks.as_mut().and_then(TimerTicks::read);
        let ticked = timing
            .ticks
            .zip(after)
            .map(|(before, after)| after > before);
        if ns > SLOW.as_nanos() as u64 {
            self.slow.push(SlowUpdate {
                what: what(),
                monotonic_ns: timing.monotonic_ns,
                ns,
                ticked,
            });
        }
        (ns, ticked)
    }
}

/// Now on `CLOCK_MONOTONIC`, the clock of `perf record -k mono`.
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// `count` spins of [`SPIN`], each timed as an update is, each reading memory at random
/// as an update does (lines of a buffer beyond the caches, each read naming the next).
fn spins(timer: &mut Timer, count: usize) -> Latency {
    let mut times = Vec::with_capacity(count);
    let mut ticked = Vec::with_capacity(count);
    let words: Vec<u64> = (0..SPIN_LINES * 8)
        .map(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let mut line = 0;
    for _ in 0..count {
        let timing = timer.start();
        while timing.started.elapsed() < SPIN {
            for _ in 0..8 {
                line = (words[line * 8] as usize ^ line) % SPIN_LINES;
            }
        }
        let (ns, tick) = timer.stop(timing, || "spin".into());
        times.push(ns);
        ticked.push(tick);
    }
    std::hint::black_box(line);
    Latency::of(times, &ticked)
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
    timer: &mut Timer,
    family: &str,
    existing: &[IpNet],
    new: &[IpNet],
    targets: &[RouteTarget],
    ops: usize,
) -> Result<FamilyUpdates> {
    // Route `i` goes to group `(i + shift) % len`. Route `i` of the table went to group
    // `i % len` at install: shift 1 is a change.
    let set_to = |shift: usize| {
        move |bench: &mut Bench, batch: &mut Batch, i: usize, prefix: IpNet| {
            let target = targets[(i + shift) % targets.len()].clone();
            bench
                .fib
                .set_route(batch, Source::Static, prefix, target)
                .with_context(|| format!("setting {prefix}"))
        }
    };
    let add = timed(bench, timer, (family, "add"), new, set_to(0))?;
    let changed = &existing[..ops.min(existing.len())];
    let change = timed(bench, timer, (family, "change"), changed, set_to(1))?;
    let remove = timed(
        bench,
        timer,
        (family, "remove"),
        new,
        |bench, batch, _, prefix| {
            bench.fib.remove_route(batch, Source::Static, prefix);
            Ok(())
        },
    )?;
    Ok(FamilyUpdates {
        add,
        change,
        remove,
    })
}

/// Applies `change` to each prefix as a batch of its own, timing each.
fn timed(
    bench: &mut Bench,
    timer: &mut Timer,
    (family, op): (&str, &str),
    prefixes: &[IpNet],
    mut change: impl FnMut(&mut Bench, &mut Batch, usize, IpNet) -> Result<()>,
) -> Result<Latency> {
    let mut times = Vec::with_capacity(prefixes.len());
    let mut ticked = Vec::with_capacity(prefixes.len());
    let (mut failures, mut first_failure) = (0, None);
    for (i, &prefix) in prefixes.iter().enumerate() {
        if i % RELEASE_EVERY == 0 {
            let now = Instant::now();
            bench.fib.release_quarantined(now);
            bench.datapath.release_quarantined(now);
        }
        let timing = timer.start();
        let mut batch = Batch::default();
        change(bench, &mut batch, i, prefix)?;
        // A refused operation is what the daemon logs and goes on from (the prefix follows a
        // covering route): counted, and the bench goes on too.
        let applied = bench.apply(&batch);
        let (ns, tick) = timer.stop(timing, || format!("{family} {op} {prefix}"));
        times.push(ns);
        ticked.push(tick);
        if let Err(err) = applied {
            failures += 1;
            first_failure.get_or_insert_with(|| format!("{prefix}: {err:#}"));
        }
    }
    let mut latency = Latency::of(times, &ticked);
    latency.failures = failures;
    latency.first_failure = first_failure;
    Ok(latency)
}
