//! Results: the structures the JSON output is made of, and the human tables.

use std::{collections::BTreeMap, io::Write};

use serde::Serialize;

use super::sys::{Machine, MapMemory};

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    /// The command that reproduces this run.
    pub command: String,
    pub settings: Settings,
    pub runs: Vec<Run>,
    /// One random read's cost by working set, at the spread's pace: the memory under the
    /// lookups.
    pub read_latency: Vec<super::latency::ReadLatency>,
    pub elapsed_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub engines: Vec<&'static str>,
    pub v4_routes: Vec<usize>,
    /// IPv6 routes of the largest table (the others get the same share of their IPv4 size).
    pub v6_routes: usize,
    pub destinations: usize,
    /// Single-route updates of each kind (add, change, remove) per family at the largest table.
    pub update_ops: usize,
    /// Pairs of calls of the hot measurement.
    pub hot_pairs: u32,
    /// Program runs per `BPF_PROG_TEST_RUN` call of a pair.
    pub hot_repeat: [u32; 2],
    pub batch_routes: usize,
    pub seed: u64,
    /// Routes installed before the program was attached (else after).
    pub cold_start: bool,
    /// The program loaded with its debug events on (`--xdp-log`).
    pub xdp_log: bool,
}

/// One engine with one table: load, program, measure, remove.
#[derive(Debug, Serialize)]
pub struct Run {
    pub engine: &'static str,
    pub v4_routes: usize,
    pub v6_routes: usize,
    /// IPv4 prefixes per length, /0 to /32.
    pub v4_lengths: Vec<usize>,
    /// `Datapath::load` (object load, verifier, map creation, mmap), ms.
    pub load_ms: f64,
    pub install: Programming,
    pub packets: Packets,
    /// The IPv4 measurements with reverse-path filtering on (`packets` has it off).
    pub rpf: Vec<RpfPackets>,
    pub memory: Memory,
    /// Single-route updates at this table (the largest table only).
    pub updates: Option<Updates>,
    /// DXR: writes that waited for a quarantined block to come free (install + updates).
    pub quarantine_waits: Option<u64>,
    /// DXR: chunks passed to the kernel for want of room, after the updates (must be 0).
    pub degraded_after_updates: Option<usize>,
    pub remove: Programming,
    /// Destinations still forwarded after every route was removed (must be 0).
    pub forwarded_after_remove: usize,
    /// Routes of ours left in the namespace's kernel FIB after removal (must be 0).
    pub kernel_routes_after_remove: usize,
}

/// Single-route updates with the table in: each one a batch of its own through
/// `Fib` + `Datapath::apply` (+ the kernel FIB write for the kernel engine), timed whole.
#[derive(Debug, Serialize)]
pub struct Updates {
    pub v4: FamilyUpdates,
    pub v6: Option<FamilyUpdates>,
    /// The machine's own: a fixed spin timed as an update, as many times as the updates
    /// above, right after them. What exceeds 50 µs here is the VM's, not the engine's.
    pub spin: Latency,
    /// The updates and spins over 30 µs, in the order they ran.
    pub slow: Vec<SlowUpdate>,
}

/// One slow update (or spin), to be matched with a trace of the run.
#[derive(Debug, Serialize)]
pub struct SlowUpdate {
    /// Family, kind and prefix (`v4 add 10.1.0.0/16`), or `spin`.
    pub what: String,
    /// Its start on `CLOCK_MONOTONIC` (`perf record -k mono` stamps).
    pub monotonic_ns: u64,
    pub ns: u64,
    /// Whether the thread took a timer tick meanwhile (`None`: not known here).
    pub ticked: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct FamilyUpdates {
    /// A new prefix (not in the table).
    pub add: Latency,
    /// A prefix of the table to another nexthop group.
    pub change: Latency,
    /// The added prefixes again.
    pub remove: Latency,
}

/// Latency of single operations (ns).
#[derive(Debug, Serialize)]
pub struct Latency {
    pub ops: usize,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    /// Updates that took longer than issue 12's 50 µs goal.
    pub over_50us: usize,
    /// Updates during which the thread took a timer tick, and those of them over 50 µs
    /// (`None`: the tick counter is not available here).
    pub ticked: Option<usize>,
    pub over_50us_ticked: Option<usize>,
    /// Updates the datapath refused (timed all the same).
    pub failures: usize,
    pub first_failure: Option<String>,
}

impl Latency {
    /// From wall times and (same order) whether each operation took a timer tick.
    pub fn of(mut times: Vec<u64>, ticked: &[Option<bool>]) -> Self {
        let known = ticked.iter().all(Option::is_some);
        let count_ticked = |over_ns: u64| {
            known.then(|| {
                times
                    .iter()
                    .zip(ticked)
                    .filter(|&(&ns, &tick)| ns > over_ns && tick == Some(true))
                    .count()
            })
        };
        let (all_ticked, over_50us_ticked) = (count_ticked(0), count_ticked(50_000));
        times.sort_unstable();
        let at = |p: f64| {
            times
                .get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        Self {
            ops: times.len(),
            mean_ns: times.iter().sum::<u64>() as f64 / times.len().max(1) as f64,
            p50_ns: at(0.5),
            p99_ns: at(0.99),
            p999_ns: at(0.999),
            max_ns: times.last().copied().unwrap_or(0),
            over_50us: times.iter().filter(|&&t| t > 50_000).count(),
            ticked: all_ticked,
            over_50us_ticked,
            failures: 0,
            first_failure: None,
        }
    }
}

/// Route programming through `Fib` + `Datapath::apply`, per family and in total.
#[derive(Debug, Serialize)]
pub struct Programming {
    pub v4: Phase,
    pub v6: Phase,
    pub total: Phase,
}

impl Programming {
    pub fn new(v4: Phase, v6: Phase) -> Self {
        let total = Phase::new(
            v4.routes + v6.routes,
            v4.fib_s + v6.fib_s,
            v4.apply_s + v6.apply_s,
        );
        Self { v4, v6, total }
    }
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Phase {
    pub routes: usize,
    /// Time in `Fib::set_route` / `remove_route` (building the batches).
    pub fib_s: f64,
    /// Time in `Datapath::apply` (writing the maps).
    pub apply_s: f64,
    pub total_s: f64,
    pub routes_per_s: f64,
}

impl Phase {
    pub fn new(routes: usize, fib_s: f64, apply_s: f64) -> Self {
        let total_s = fib_s + apply_s;
        Self {
            routes,
            fib_s,
            apply_s,
            total_s,
            routes_per_s: if total_s > 0.0 {
                routes as f64 / total_s
            } else {
                0.0
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Packets {
    /// An ARP frame, `repeat: 1`: the program's shortest path plus the kernel's timing overhead
    /// that every `repeat: 1` number includes.
    pub floor: Series,
    pub v4: FamilyPackets,
    /// When the table has IPv6 routes.
    pub v6: Option<FamilyPackets>,
}

/// One family's per-packet cost.
#[derive(Debug, Serialize)]
pub struct FamilyPackets {
    /// Every destination once, `repeat: 1`, each inside a random prefix of the whole table.
    pub spread: Series,
    /// One destination, `repeat: 1` each time: comparable with `spread`.
    pub hot_repeat1: Series,
    /// One destination, many runs per call: cache-hot, without the timer overhead.
    pub hot: Hot,
    /// `spread.p50_ns - floor.p50_ns`: the lookup's share of a packet (issue 12's figure).
    pub spread_p50_over_floor_ns: i64,
    /// The first [`super::WARM_DESTINATIONS`] destinations of `spread`, run twice, the second
    /// pass timed: what a lookup costs with the lines it reads in cache (few active
    /// destinations), the table's branches still as random as the spread's.
    pub warm: Series,
    /// `warm.p50_ns - floor.p50_ns`.
    pub warm_p50_over_floor_ns: i64,
}

/// IPv4 spread and hot with the ingress interface's RPF mode set; every probe's source has a
/// route through the ingress interface (the accept path).
#[derive(Debug, Serialize)]
pub struct RpfPackets {
    /// `loose` or `strict`.
    pub mode: &'static str,
    pub v4_spread: Series,
    pub v4_hot: Hot,
}

/// Per-packet times of `repeat: 1` runs, as the kernel reported them (ns).
#[derive(Debug, Serialize)]
pub struct Series {
    pub packets: usize,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    /// Runs whose action was not the one expected.
    pub failures: usize,
    /// The first few of them.
    pub failed: Vec<String>,
    /// Verdict counters (`VERDICT_STATS`) the series moved.
    pub verdicts: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
pub struct Hot {
    pub packets: u64,
    pub calls: u32,
    /// Steady-state time per run: per pair, the difference of the long and short calls' totals
    /// over the difference of their runs; the median over the pairs (ns; the kernel rounds each
    /// call's per-run time down: ±2 ns).
    pub ns: f64,
    /// Plain mean over the long calls, including each call's fixed cost (ns).
    pub long_call_mean_ns: f64,
    /// Calls whose last run's action was not XDP_REDIRECT.
    pub failed_calls: u32,
    /// Runs not counted as forwarded.
    pub failures: u64,
    pub verdicts: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
pub struct Memory {
    /// Every map of the program, memlock from fdinfo.
    pub maps: Vec<MapMemory>,
    /// Sum over all maps.
    pub kernel_maps_bytes: u64,
    /// The route tables: ROUTES_V4, ROUTES_V6, DIR24_* (the engine's unused ones are 1 entry).
    pub route_maps_bytes: u64,
    /// The program itself (JIT image, instructions), from its info.
    pub program_bytes: u64,
    /// Change of SUnreclaim + VmallocUsed over load + install (system-wide, noisy).
    pub meminfo_delta_bytes: i64,
    /// Change of VmRSS over load + install (counts the mmap-ed arrays too).
    pub rss_delta_bytes: i64,
    /// Change of RssAnon: the agent's own userspace memory (FIB, DIR-24-8 bookkeeping).
    pub rss_anon_delta_bytes: i64,
    /// The engine's own user-space bookkeeping (DIR-24-8 rule maps, DXR rules), bytes.
    pub bookkeeping_bytes: usize,
    /// DXR: bytes of the range blocks in use or in quarantine, as opposed to the arenas'
    /// memlock.
    pub live_bytes: Option<u64>,
    /// DXR: bytes of the fixed tables (both direct tables, the extension descriptors).
    pub dxr_fixed_bytes: Option<u64>,
    /// DXR: chunks that found no room and pass to the kernel (must be 0).
    pub dxr_degraded_chunks: Option<usize>,
    /// DIR-24-8 TBL8 groups in use (one per /24 holding a prefix longer than /24), and the
    /// capacity; 0 for the LPM trie.
    pub dir24_tbl8_groups: usize,
    pub dir24_tbl8_capacity: u32,
}

/// Column-aligned text table: first column left-aligned, the rest right-aligned.
/// Columns padded to their widest cell: the first left-aligned, the others right-aligned.
pub struct TextTable {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl TextTable {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn write(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(String::len).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let line = |out: &mut dyn Write, cells: &[String]| -> std::io::Result<()> {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                if i == 0 {
                    text.push_str(&format!("{cell:<width$}"));
                } else {
                    text.push_str(&format!("  {cell:>width$}"));
                }
            }
            writeln!(out, "{}", text.trim_end())
        };
        line(out, &self.header)?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(out, &rule)?;
        for row in &self.rows {
            line(out, row)?;
        }
        Ok(())
    }
}

pub fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / (1024.0 * 1024.0))
}

pub fn signed_mib(bytes: i64) -> String {
    format!("{:+.1}", bytes as f64 / (1024.0 * 1024.0))
}

pub fn ns(value: f64) -> String {
    format!("{value:.1}")
}

pub fn rate(routes_per_s: f64) -> String {
    if routes_per_s >= 1e6 {
        format!("{:.2}M", routes_per_s / 1e6)
    } else {
        format!("{:.0}k", routes_per_s / 1e3)
    }
}

pub fn table_name(run: &Run) -> String {
    if run.v6_routes > 0 {
        format!("{} + {} v6", run.v4_routes, run.v6_routes)
    } else {
        run.v4_routes.to_string()
    }
}

/// What the machine is (CPUs, kernel, build, commit), its mitigations, and a warning for debug
/// builds: the first lines of every benchmark report.
pub fn write_machine(out: &mut dyn Write, machine: &Machine) -> std::io::Result<()> {
    writeln!(
        out,
        "machine: {} CPUs, {}, kernel {}, {} build{}",
        machine.cpus,
        machine.cpu_model,
        machine.kernel,
        machine.profile,
        machine
            .commit
            .as_deref()
            .map(|c| format!(", commit {c}"))
            .unwrap_or_default()
    )?;
    if !machine.mitigations.is_empty() {
        writeln!(out, "mitigations: {}", machine.mitigations.join("; "))?;
    }
    if machine.profile != "release" {
        writeln!(
            out,
            "WARNING: debug build; run with --release for numbers that mean something"
        )?;
    }
    Ok(())
}

/// The header: machine and command, so that a pasted result says where it came from.
pub fn write_header(
    out: &mut dyn Write,
    machine: &Machine,
    command: &str,
    settings: &Settings,
) -> std::io::Result<()> {
    writeln!(out, "command: {command}")?;
    write_machine(out, machine)?;
    writeln!(
        out,
        "settings: seed {}, {} destinations, {} hot call pairs, {} routes per batch, \
         {} single-route updates per kind and family at the largest table, 4 ECMP groups of 2 \
         resolved nexthops per family on bc0 (ingress and egress, in the bench's namespace; \
         the kernel engine: the same groups as ECMP routes in that namespace's kernel FIB); \
         routes installed {} the program was attached",
        settings.seed,
        settings.destinations,
        settings.hot_pairs,
        settings.batch_routes,
        settings.update_ops,
        if settings.cold_start {
            "before"
        } else {
            "after"
        }
    )?;
    if settings.xdp_log {
        writeln!(
            out,
            "XDP debug events ON (--xdp-log): an event per frame not forwarded (floor, \
             after-remove), the ring buffer drained after each call"
        )?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::Latency;

    #[test]
    fn latency_percentiles() {
        // Update i (1..=1000) took i µs, and every tenth took a tick.
        let wall: Vec<u64> = (1..=1000).rev().map(|us| us * 1000).collect();
        let ticked: Vec<Option<bool>> = wall.iter().map(|ns| Some(ns % 10_000 == 0)).collect();
        let latency = Latency::of(wall, &ticked);
        assert_eq!(latency.ops, 1000);
        assert_eq!(latency.p50_ns, 501_000);
        assert_eq!(latency.p99_ns, 991_000);
        assert_eq!(latency.p999_ns, 1_000_000);
        assert_eq!(latency.max_ns, 1_000_000);
        assert_eq!(latency.over_50us, 950);
        assert_eq!(latency.ticked, Some(100));
        assert_eq!(latency.over_50us_ticked, Some(95));
        assert_eq!(latency.mean_ns, 500_500.0);
        assert_eq!(Latency::of(Vec::new(), &[]).p99_ns, 0);
        let unknown = Latency::of(vec![60_000, 1_000], &[None, None]);
        assert_eq!((unknown.over_50us, unknown.over_50us_ticked), (1, None));
    }
}
