//! Route programming in bulk: the table in and out through the agent's path, timed.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ipnet::IpNet;
use router_agent::fib::{Batch, Fib, Source};

use super::{Bench, report::Phase};

/// Installs `prefixes` (route `i` to group `i % GROUPS` of its family) through the FIB and the
/// datapath, `batch` routes per `Batch`.
pub fn install<P: Copy + Into<IpNet>>(
    bench: &mut Bench,
    prefixes: &[P],
    ipv6: bool,
    batch: usize,
) -> Result<Phase> {
    let targets = if ipv6 {
        bench.v6_targets.clone()
    } else {
        bench.v4_targets.clone()
    };
    program(bench, prefixes, batch, |fib, batch, index, prefix| {
        let target = targets[index % targets.len()].clone();
        fib.set_route(batch, Source::Static, prefix, target)
            .with_context(|| format!("Fib::set_route {prefix}"))
    })
}

pub fn remove<P: Copy + Into<IpNet>>(
    bench: &mut Bench,
    prefixes: &[P],
    batch: usize,
) -> Result<Phase> {
    program(bench, prefixes, batch, |fib, batch, _, prefix| {
        fib.remove_route(batch, Source::Static, prefix);
        Ok(())
    })
}

/// Runs `change` on every prefix (with its index), `batch_routes` to a `Batch` that is then
/// applied; times the FIB part (`change`) and the apply part apart.
fn program<P: Copy + Into<IpNet>>(
    bench: &mut Bench,
    prefixes: &[P],
    batch_routes: usize,
    mut change: impl FnMut(&mut Fib, &mut Batch, usize, IpNet) -> Result<()>,
) -> Result<Phase> {
    let (mut fib_time, mut apply_time) = (Duration::ZERO, Duration::ZERO);
    for (chunk_index, chunk) in prefixes.chunks(batch_routes).enumerate() {
        let started = Instant::now();
        let mut batch = Batch::default();
        for (i, &prefix) in chunk.iter().enumerate() {
            change(
                &mut bench.fib,
                &mut batch,
                chunk_index * batch_routes + i,
                prefix.into(),
            )?;
        }
        let built = Instant::now();
        // The agent engines' kernel mirror (`batch.kernel`) is the daemon's business, not
        // measured here; the kernel engine's is its table.
        bench.apply(&batch)?;
        apply_time += built.elapsed();
        fib_time += built - started;
    }
    Ok(Phase::new(
        prefixes.len(),
        fib_time.as_secs_f64(),
        apply_time.as_secs_f64(),
    ))
}
