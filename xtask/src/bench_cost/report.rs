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
    pub elapsed_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub engines: Vec<&'static str>,
    pub v4_routes: Vec<usize>,
    /// IPv6 routes added to the largest table.
    pub v6_routes: usize,
    pub destinations: usize,
    /// Pairs of calls of the hot measurement.
    pub hot_pairs: u32,
    /// Program runs per `BPF_PROG_TEST_RUN` call of a pair.
    pub hot_repeat: [u32; 2],
    pub batch_routes: usize,
    pub seed: u64,
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
    pub remove: Programming,
    /// Destinations still forwarded after every route was removed (must be 0).
    pub forwarded_after_remove: usize,
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
    /// One IPv4 destination, `repeat: 1` each time: comparable with `v4_spread`.
    pub v4_hot_repeat1: Series,
    /// Every destination once, `repeat: 1`.
    pub v4_spread: Series,
    /// One IPv4 destination, many runs per call: cache-hot, without the timer overhead.
    pub v4_hot: Hot,
    /// IPv6 destinations over the IPv6 table, when the run has one.
    pub v6_spread: Option<Series>,
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
    pub dir24_bookkeeping_bytes: usize,
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

fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / (1024.0 * 1024.0))
}

fn signed_mib(bytes: i64) -> String {
    format!("{:+.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn ns(value: f64) -> String {
    format!("{value:.1}")
}

fn rate(routes_per_s: f64) -> String {
    if routes_per_s >= 1e6 {
        format!("{:.2}M", routes_per_s / 1e6)
    } else {
        format!("{:.0}k", routes_per_s / 1e3)
    }
}

fn table_name(run: &Run) -> String {
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
         4 ECMP groups of 2 resolved nexthops per family (egress lo)",
        settings.seed, settings.destinations, settings.hot_pairs, settings.batch_routes
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

pub fn write_tables(out: &mut dyn Write, report: &Report) -> std::io::Result<()> {
    let runs = &report.runs;
    writeln!(
        out,
        "Per-packet cost of the XDP program, ns/packet, kernel-timed (BPF_PROG_TEST_RUN duration)"
    )?;
    writeln!(
        out,
        "  spread: each destination once (repeat 1), inside random prefixes of the whole table"
    )?;
    writeln!(
        out,
        "  hot r1: one destination, repeat 1 (same timing overhead as spread: spread p50 - hot r1 \
         p50 is what the table's size costs)"
    )?;
    writeln!(
        out,
        "  hot: one destination, calls of {} and {} runs (their difference: per-run cost without \
         the fixed per-call cost): cache-hot best case",
        report.settings.hot_repeat[0], report.settings.hot_repeat[1]
    )?;
    writeln!(
        out,
        "  floor: ARP frame, repeat 1: parse + pass, plus the timing overhead in every repeat-1 \
         number"
    )?;
    let mut table = TextTable::new(&[
        "engine",
        "routes",
        "spread mean",
        "p50",
        "p99",
        "hot r1 p50",
        "hot",
        "floor p50",
        "v6 spread",
        "failures",
    ]);
    for run in runs {
        let p = &run.packets;
        let failures = p.floor.failures
            + p.v4_hot_repeat1.failures
            + p.v4_spread.failures
            + p.v4_hot.failures as usize
            + p.v6_spread.as_ref().map_or(0, |s| s.failures);
        table.row(vec![
            run.engine.into(),
            table_name(run),
            ns(p.v4_spread.mean_ns),
            p.v4_spread.p50_ns.to_string(),
            p.v4_spread.p99_ns.to_string(),
            p.v4_hot_repeat1.p50_ns.to_string(),
            ns(p.v4_hot.ns),
            p.floor.p50_ns.to_string(),
            p.v6_spread.as_ref().map_or("-".into(), |s| ns(s.mean_ns)),
            failures.to_string(),
        ]);
    }
    table.write(out)?;
    for run in runs {
        let p = &run.packets;
        let series = [
            ("floor", &p.floor),
            ("v4 hot r1", &p.v4_hot_repeat1),
            ("v4 spread", &p.v4_spread),
        ];
        for (name, s) in series
            .into_iter()
            .chain(p.v6_spread.as_ref().map(|s| ("v6 spread", s)))
        {
            if s.failures > 0 {
                writeln!(
                    out,
                    "  FAILED {} {} {name}: {} of {} (verdicts {:?}), first: {}",
                    run.engine,
                    table_name(run),
                    s.failures,
                    s.packets,
                    s.verdicts,
                    s.failed.join("; ")
                )?;
            }
        }
        if p.v4_hot.failures > 0 {
            writeln!(
                out,
                "  FAILED {} {} hot: {} of {} packets not forwarded (verdicts {:?})",
                run.engine,
                table_name(run),
                p.v4_hot.failures,
                p.v4_hot.packets,
                p.v4_hot.verdicts
            )?;
        }
    }
    writeln!(out)?;
    write_rpf_table(out, runs)?;

    writeln!(
        out,
        "Route programming: Fib::set_route / remove_route (fib) + Datapath::apply (apply), \
         in batches of {} routes; load = Datapath::load",
        report.settings.batch_routes
    )?;
    let mut table = TextTable::new(&[
        "engine",
        "routes",
        "load ms",
        "family",
        "install s",
        "fib s",
        "apply s",
        "routes/s",
        "remove s",
        "fib s",
        "apply s",
        "removes/s",
    ]);
    for run in runs {
        let families = [
            ("v4", &run.install.v4, &run.remove.v4),
            ("v6", &run.install.v6, &run.remove.v6),
            ("total", &run.install.total, &run.remove.total),
        ];
        for (i, (family, install, remove)) in families.into_iter().enumerate() {
            if install.routes == 0 || (i == 2 && run.v6_routes == 0) {
                continue;
            }
            let first = i == 0;
            table.row(vec![
                if first {
                    run.engine.into()
                } else {
                    String::new()
                },
                if first {
                    table_name(run)
                } else {
                    String::new()
                },
                if first {
                    format!("{:.0}", run.load_ms)
                } else {
                    String::new()
                },
                family.into(),
                format!("{:.3}", install.total_s),
                format!("{:.3}", install.fib_s),
                format!("{:.3}", install.apply_s),
                rate(install.routes_per_s),
                format!("{:.3}", remove.total_s),
                format!("{:.3}", remove.fib_s),
                format!("{:.3}", remove.apply_s),
                rate(remove.routes_per_s),
            ]);
        }
    }
    table.write(out)?;
    writeln!(
        out,
        "  target: >= 1M routes/s into DIR-24-8 (reported, not asserted); \
         forwarded after remove: {}",
        runs.iter()
            .map(|r| r.forwarded_after_remove.to_string())
            .collect::<Vec<_>>()
            .join("/")
    )?;
    writeln!(out)?;

    writeln!(
        out,
        "Memory with the table installed (MiB; per route: bytes / (v4 + v6 routes))"
    )?;
    writeln!(
        out,
        "  route maps / all maps: sum of memlock in /proc/self/fdinfo of the program's maps \
         (LPM trie: leaf nodes only, a lower bound)"
    )?;
    writeln!(
        out,
        "  meminfo: change of SUnreclaim + VmallocUsed over load + install (system-wide, noisy; \
         counts what memlock misses: trie inner nodes, allocator rounding)"
    )?;
    writeln!(
        out,
        "  RSS: change of VmRSS (includes the mmap-ed DIR-24-8 arrays); anon: change of RssAnon \
         (the agent's own data: FIB, DIR-24-8 bookkeeping)"
    )?;
    let mut table = TextTable::new(&[
        "engine",
        "routes",
        "route maps",
        "all maps",
        "meminfo",
        "RSS",
        "anon",
        "dir24 bookkeeping",
        "memlock B/route",
        "meminfo B/route",
        "anon B/route",
    ]);
    for run in runs {
        let m = &run.memory;
        let routes = run.v4_routes + run.v6_routes;
        // Per route only where the table dominates the fixed costs.
        let per_route = |bytes: f64| {
            if routes >= 1_000 {
                format!("{:.0}", bytes / routes as f64)
            } else {
                "-".into()
            }
        };
        table.row(vec![
            run.engine.into(),
            table_name(run),
            mib(m.route_maps_bytes as f64),
            mib(m.kernel_maps_bytes as f64),
            signed_mib(m.meminfo_delta_bytes),
            signed_mib(m.rss_delta_bytes),
            signed_mib(m.rss_anon_delta_bytes),
            mib(m.dir24_bookkeeping_bytes as f64),
            per_route(m.route_maps_bytes as f64),
            per_route(m.meminfo_delta_bytes as f64),
            per_route(m.rss_anon_delta_bytes as f64),
        ]);
    }
    table.write(out)?;
    if let Some(largest) = runs.iter().map(|r| r.v4_routes + r.v6_routes).max() {
        for run in runs.iter().filter(|r| r.v4_routes + r.v6_routes == largest) {
            let maps: Vec<String> = run
                .memory
                .maps
                .iter()
                .filter(|m| m.memlock >= 64 * 1024)
                .map(|m| format!("{} {}", m.name, mib(m.memlock as f64)))
                .collect();
            let tbl8 = if run.memory.dir24_tbl8_capacity > 0 {
                format!(
                    "; TBL8 groups in use: {} of {}",
                    run.memory.dir24_tbl8_groups, run.memory.dir24_tbl8_capacity
                )
            } else {
                String::new()
            };
            writeln!(
                out,
                "  {} {}: maps >= 64 KiB: {}; program {} KiB{tbl8}",
                run.engine,
                table_name(run),
                maps.join(", "),
                run.memory.program_bytes / 1024
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "elapsed: {:.1} s", report.elapsed_s)
}

/// IPv4 per-packet cost by reverse-path filter mode: `off` is the main measurement.
fn write_rpf_table(out: &mut dyn Write, runs: &[Run]) -> std::io::Result<()> {
    writeln!(
        out,
        "Reverse-path filter cost, IPv4, ns/packet (source routed through the ingress \
         interface: the accept path; off = the table above)"
    )?;
    let mut table = TextTable::new(&[
        "engine",
        "routes",
        "rpf",
        "spread mean",
        "p50",
        "p99",
        "hot",
        "failures",
    ]);
    for run in runs {
        let off = ("off", &run.packets.v4_spread, &run.packets.v4_hot);
        let modes = run.rpf.iter().map(|r| (r.mode, &r.v4_spread, &r.v4_hot));
        for (mode, spread, hot) in std::iter::once(off).chain(modes) {
            table.row(vec![
                run.engine.into(),
                table_name(run),
                mode.into(),
                ns(spread.mean_ns),
                spread.p50_ns.to_string(),
                spread.p99_ns.to_string(),
                ns(hot.ns),
                (spread.failures + hot.failures as usize).to_string(),
            ]);
        }
    }
    table.write(out)?;
    for run in runs {
        for r in &run.rpf {
            if r.v4_spread.failures > 0 || r.v4_hot.failures > 0 {
                writeln!(
                    out,
                    "  FAILED {} {} rpf {}: spread {} of {} (verdicts {:?}), hot {} (verdicts {:?})",
                    run.engine,
                    table_name(run),
                    r.mode,
                    r.v4_spread.failures,
                    r.v4_spread.packets,
                    r.v4_spread.verdicts,
                    r.v4_hot.failures,
                    r.v4_hot.verdicts
                )?;
            }
        }
    }
    writeln!(out)
}
