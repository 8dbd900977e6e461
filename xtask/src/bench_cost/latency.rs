//! The anchor under every spread figure: what one random memory read costs on this machine at
//! the spread measurement's pace (one `BPF_PROG_TEST_RUN` between reads), by working-set size.
//!
//! A lookup's cost over a large table is its dependent cache misses, and whether a structure
//! of N MiB stays in cache depends on how often its lines are touched and on what else runs
//! (other tenants of a shared L3, the syscall itself). Reads here chase a random cycle of
//! 64-byte lines, so each waits for the one before, as a lookup's levels do. The same reads
//! from inside an XDP program (`xdp_read.rs`) are the figure to read a lookup against.

use std::time::Instant;

use anyhow::Result;
use aya::programs::Xdp;
use rand::{Rng, SeedableRng, rngs::SmallRng};
use serde::Serialize;

use super::packets::test_run;

/// Working sets measured, in KiB.
const SIZES_KIB: [usize; 9] = [256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];
/// Timed reads per working set.
const READS: usize = 30_000;
const ROUNDS: usize = 3;
const LINE_WORDS: usize = 8;

#[derive(Clone, Debug, Serialize)]
pub struct ReadLatency {
    pub working_set_kib: usize,
    /// One read from inside an XDP program, one test run each (`xdp_read.rs`): p50 above
    /// the p50 of reading one line over and over.
    pub xdp_ns: u64,
    /// One dependent read paced by test runs: mean of the middle 80% of the reads (the
    /// clock ticks in 10 ns here: a median would be one tick or another), the clock's own
    /// cost subtracted.
    pub paced_ns: f64,
    /// The same reads back to back (no test run between them): the cache when it is kept warm.
    pub back_to_back_ns: f64,
}

/// One dependent read after each test run of `frame` (the floor's ARP frame: the spread's
/// pace without its lookups), for each working set.
pub fn measure(program: &Xdp, ingress: u32, frame: &[u8]) -> Result<Vec<ReadLatency>> {
    let xdp = super::xdp_read::measure(&SIZES_KIB, ingress)?;
    let overhead = timer_overhead();
    let mut rng = SmallRng::seed_from_u64(7);
    let chains: Vec<Chain> = SIZES_KIB
        .iter()
        .map(|kib| Chain::new(kib * 1024 / 64, &mut rng))
        .collect();
    // Rounds over all sizes, the median round reported: a neighbour's burst hits one round.
    let mut rounds: Vec<Vec<(f64, f64)>> = vec![Vec::new(); chains.len()];
    for _ in 0..ROUNDS {
        for (chain, figures) in chains.iter().zip(&mut rounds) {
            figures.push(round(chain, program, ingress, frame, overhead)?);
        }
    }
    Ok(SIZES_KIB
        .iter()
        .zip(rounds)
        .zip(xdp)
        .map(|((&kib, figures), xdp_ns)| ReadLatency {
            working_set_kib: kib,
            xdp_ns,
            paced_ns: median(figures.iter().map(|f| f.0).collect()),
            back_to_back_ns: median(figures.iter().map(|f| f.1).collect()),
        })
        .collect())
}

/// One round over `chain`: (paced, back to back) ns per read.
fn round(
    chain: &Chain,
    program: &Xdp,
    ingress: u32,
    frame: &[u8],
    overhead: f64,
) -> Result<(f64, f64)> {
    let mut at = chain.walk(0, chain.lines());
    let steps = chain.lines().max(1_000_000);
    let started = Instant::now();
    at = chain.walk(at, steps);
    let back_to_back = started.elapsed().as_nanos() as f64 / steps as f64;
    let mut times = Vec::with_capacity(READS);
    let tick_ns = clock::tick_ns();
    for _ in 0..READS {
        test_run(program, ingress, frame, 1)?;
        let started = clock::ticks();
        at = chain.next(at);
        let took = clock::ticks_after(started, at);
        times.push(took as f64 * tick_ns);
    }
    Ok(((trimmed_mean(times) - overhead).max(0.0), back_to_back))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The cost of reading the clock twice around nothing (trimmed mean).
fn timer_overhead() -> f64 {
    let tick_ns = clock::tick_ns();
    let times: Vec<f64> = (0..READS)
        .map(|_| {
            let started = clock::ticks();
            clock::ticks_after(started, 0) as f64 * tick_ns
        })
        .collect();
    trimmed_mean(times)
}

/// A clock for one load: on x86-64 the TSC between fences (the second waits for the load to
/// complete; `Instant` does not, so a lone miss could hide behind it), elsewhere `Instant`.
mod clock {
    use std::hint::black_box;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    #[cfg(target_arch = "x86_64")]
    pub fn ticks() -> u64 {
        use std::arch::x86_64::{_mm_lfence, _rdtsc};
        // SAFETY: lfence and rdtsc exist on every x86-64 CPU.
        unsafe {
            _mm_lfence();
            let t = _rdtsc();
            _mm_lfence();
            t
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn ticks() -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }

    /// Ticks since `started`, read once `value` (the load being timed) is there.
    pub fn ticks_after(started: u64, value: usize) -> u64 {
        black_box(value);
        ticks() - started
    }

    /// Nanoseconds per tick, measured once over 20 ms.
    pub fn tick_ns() -> f64 {
        static NS: OnceLock<f64> = OnceLock::new();
        *NS.get_or_init(|| {
            let (wall, first) = (Instant::now(), ticks());
            while wall.elapsed() < Duration::from_millis(20) {}
            wall.elapsed().as_nanos() as f64 / (ticks() - first) as f64
        })
    }
}

/// The mean of the middle 80%: the outliers (an interrupt, a migration) left out.
fn trimmed_mean(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    let cut = times.len() / 10;
    let middle = &times[cut..times.len() - cut];
    middle.iter().sum::<f64>() / middle.len() as f64
}

/// Lines linked in one random cycle: each line's first word is the index of the next.
struct Chain {
    words: Vec<u64>,
}

impl Chain {
    fn new(lines: usize, rng: &mut SmallRng) -> Self {
        let mut order: Vec<usize> = (0..lines).collect();
        for i in (1..lines).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut words = vec![0u64; lines * LINE_WORDS];
        for (i, &line) in order.iter().enumerate() {
            words[line * LINE_WORDS] = order[(i + 1) % lines] as u64;
        }
        Self { words }
    }

    fn lines(&self) -> usize {
        self.words.len() / LINE_WORDS
    }

    #[inline]
    fn next(&self, line: usize) -> usize {
        self.words[line * LINE_WORDS] as usize
    }

    fn walk(&self, mut line: usize, steps: usize) -> usize {
        for _ in 0..steps {
            line = self.next(line);
        }
        line
    }
}
