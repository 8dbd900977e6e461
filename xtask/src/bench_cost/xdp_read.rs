//! The same anchor as [`super::latency`], measured where the lookups run: one read of a random
//! 64-byte line from inside an XDP program (`router-ebpf/src/bin/read_probe.rs`), in a BPF
//! array like the route tables, one `BPF_PROG_TEST_RUN` per read as the spread runs its
//! lookups, kernel-timed as they are. A user-space read after the same syscall is cheaper
//! here (a working set of 2-8 MiB costs the program 3-4x more), so this is the figure a
//! lookup's cost is read against: a structure touched at random beyond the L2 costs at least
//! one such read per packet.

use anyhow::{Context, Result};
use aya::{EbpfLoader, programs::Xdp};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use router_agent::datapath::READ_PROBE_OBJECT;

use super::packets::{XDP_PASS, test_run};

const LINE: usize = 64;
/// Runs per working set and round.
const READS: usize = 20_000;
const ROUNDS: usize = 3;
/// The probe's frame: the line index, then padding to a minimum Ethernet frame.
const FRAME_LEN: usize = 64;

/// Per working set (KiB): the p50 ns of one read, above the p50 of reading one line over and
/// over (the program's own cost and the timer's).
pub fn measure(sizes_kib: &[usize], ingress: u32) -> Result<Vec<u64>> {
    let largest = sizes_kib.iter().max().copied().unwrap_or(1) * 1024 / LINE;
    let mut ebpf = EbpfLoader::new()
        .map_max_entries("PROBE_LINES", largest as u32)
        .load(READ_PROBE_OBJECT)
        .context("loading the read probe object")?;
    let program: &mut Xdp = ebpf
        .program_mut("read_probe")
        .context("no read_probe program")?
        .try_into()?;
    program.load().context("loading the read probe")?;

    let mut rng = SmallRng::seed_from_u64(11);
    let frames = |lines: usize, rng: &mut SmallRng| -> Vec<[u8; FRAME_LEN]> {
        (0..READS)
            .map(|_| {
                let mut frame = [0u8; FRAME_LEN];
                let index = rng.random_range(0..lines) as u32;
                frame[..4].copy_from_slice(&index.to_le_bytes());
                frame
            })
            .collect()
    };
    let sets: Vec<Vec<[u8; FRAME_LEN]>> = sizes_kib
        .iter()
        .map(|kib| frames(kib * 1024 / LINE, &mut rng))
        .collect();
    let hot = frames(1, &mut rng);
    // Rounds over all sizes, the median round reported: a neighbour's burst hits one round.
    let mut hot_rounds = Vec::new();
    let mut rounds: Vec<Vec<u64>> = vec![Vec::new(); sets.len()];
    for _ in 0..ROUNDS {
        hot_rounds.push(p50(program, ingress, &hot)?);
        for (set, figures) in sets.iter().zip(&mut rounds) {
            figures.push(p50(program, ingress, set)?);
        }
    }
    let hot_p50_ns = median(hot_rounds);
    Ok(rounds
        .into_iter()
        .map(|figures| median(figures).saturating_sub(hot_p50_ns))
        .collect())
}

/// The p50 of the kernel-timed runs of `frames`, each run once.
fn p50(program: &Xdp, ingress: u32, frames: &[[u8; FRAME_LEN]]) -> Result<u64> {
    let mut times = Vec::with_capacity(frames.len());
    for frame in frames {
        let (action, time) = test_run(program, ingress, frame, 1)?;
        anyhow::ensure!(action == XDP_PASS, "the read probe returned {action}");
        times.push(time.as_nanos() as u64);
    }
    Ok(median(times))
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}
