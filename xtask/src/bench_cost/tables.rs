//! The human-readable tables of a `bench cost` report.

use std::io::Write;

use super::report::{
    FamilyPackets, Latency, Report, Run, TextTable, mib, ns, rate, signed_mib, table_name,
};

pub fn write_tables(out: &mut dyn Write, report: &Report) -> std::io::Result<()> {
    let runs = &report.runs;
    write_packet_table(out, report)?;
    write_rpf_table(out, runs)?;
    write_programming_table(out, report)?;
    write_update_table(out, runs)?;
    write_memory_table(out, runs)?;
    write_read_latency(out, report)?;
    writeln!(out, "elapsed: {:.1} s", report.elapsed_s)
}

/// The families a run measured, with their packets.
fn families(run: &Run) -> impl Iterator<Item = (&'static str, &FamilyPackets)> {
    std::iter::once(("v4", &run.packets.v4)).chain(run.packets.v6.as_ref().map(|p| ("v6", p)))
}

fn write_packet_table(out: &mut dyn Write, report: &Report) -> std::io::Result<()> {
    let runs = &report.runs;
    writeln!(
        out,
        "Per-packet cost of the XDP program, ns/packet, kernel-timed (BPF_PROG_TEST_RUN duration)"
    )?;
    writeln!(
        out,
        "  spread: each destination once (repeat 1), inside random prefixes of the whole table; \
         -floor: spread p50 - floor p50, the lookup's share"
    )?;
    writeln!(
        out,
        "  warm -floor: the first {} of those destinations, run twice, the second pass's p50 - \
         floor p50: the lookup with the lines it reads in cache (few active destinations)",
        super::WARM_DESTINATIONS
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
        "family",
        "spread mean",
        "p50",
        "p99",
        "-floor",
        "warm -floor",
        "hot r1 p50",
        "hot",
        "floor p50",
        "failures",
    ]);
    for run in runs {
        for (family, p) in families(run) {
            table.row(vec![
                run.engine.into(),
                table_name(run),
                family.into(),
                ns(p.spread.mean_ns),
                p.spread.p50_ns.to_string(),
                p.spread.p99_ns.to_string(),
                p.spread_p50_over_floor_ns.to_string(),
                p.warm_p50_over_floor_ns.to_string(),
                p.hot_repeat1.p50_ns.to_string(),
                ns(p.hot.ns),
                run.packets.floor.p50_ns.to_string(),
                (p.spread.failures
                    + p.warm.failures
                    + p.hot_repeat1.failures
                    + p.hot.failures as usize)
                    .to_string(),
            ]);
        }
    }
    table.write(out)?;
    for run in runs {
        let floor = std::iter::once(("floor", &run.packets.floor));
        let series = families(run).flat_map(|(family, p)| {
            [
                (format!("{family} spread"), &p.spread),
                (format!("{family} warm"), &p.warm),
                (format!("{family} hot r1"), &p.hot_repeat1),
            ]
        });
        let floor = floor.map(|(name, s)| (name.to_string(), s));
        for (name, s) in floor.chain(series) {
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
        for (family, p) in families(run) {
            if p.hot.failures > 0 {
                writeln!(
                    out,
                    "  FAILED {} {} {family} hot: {} of {} packets not forwarded (verdicts {:?})",
                    run.engine,
                    table_name(run),
                    p.hot.failures,
                    p.hot.packets,
                    p.hot.verdicts
                )?;
            }
        }
    }
    // The kernel engine is the anchor: how many times cheaper each engine's lookup is.
    let mut ratios = Vec::new();
    for kernel in runs.iter().filter(|r| r.engine == "kernel") {
        for run in runs.iter().filter(|r| {
            r.engine != "kernel"
                && r.v4_routes == kernel.v4_routes
                && r.v6_routes == kernel.v6_routes
        }) {
            for ((family, k), (_, e)) in families(kernel).zip(families(run)) {
                let ratio = |k: i64, e: i64| {
                    if e > 0 {
                        format!("{:.1}x", k as f64 / e as f64)
                    } else {
                        "-".into()
                    }
                };
                ratios.push(format!(
                    "{} {family} {} ({} warm)",
                    run.engine,
                    ratio(k.spread_p50_over_floor_ns, e.spread_p50_over_floor_ns),
                    ratio(k.warm_p50_over_floor_ns, e.warm_p50_over_floor_ns),
                ));
            }
        }
        if !ratios.is_empty() {
            writeln!(
                out,
                "  kernel / engine, p50 - floor, spread (warm), {}: {}",
                table_name(kernel),
                ratios.join(", ")
            )?;
            ratios.clear();
        }
    }
    writeln!(out)
}

/// IPv4 per-packet cost by reverse-path filter mode: `off` is the main measurement.
fn write_rpf_table(out: &mut dyn Write, runs: &[Run]) -> std::io::Result<()> {
    writeln!(
        out,
        "Reverse-path filter cost, IPv4, ns/packet (source routed through the ingress \
         interface: the accept path; off = the table above; not for the kernel engine)"
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
    for run in runs.iter().filter(|r| !r.rpf.is_empty()) {
        let off = ("off", &run.packets.v4.spread, &run.packets.v4.hot);
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

fn write_programming_table(out: &mut dyn Write, report: &Report) -> std::io::Result<()> {
    let runs = &report.runs;
    writeln!(
        out,
        "Route programming: Fib::set_route / remove_route (fib) + Datapath::apply (apply; the \
         kernel engine: + the agent's RouteWriter into the kernel FIB), in batches of {} routes; \
         load = Datapath::load",
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
            let first_only = |text: String| if first { text } else { String::new() };
            table.row(vec![
                first_only(run.engine.into()),
                first_only(table_name(run)),
                first_only(format!("{:.0}", run.load_ms)),
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
    let after = |f: fn(&Run) -> usize| {
        runs.iter()
            .map(|r| f(r).to_string())
            .collect::<Vec<_>>()
            .join("/")
    };
    writeln!(
        out,
        "  goal: >= 1M routes/s per family (reported, not asserted); forwarded after remove: {}; \
         kernel routes left after remove: {}",
        after(|r| r.forwarded_after_remove),
        after(|r| r.kernel_routes_after_remove)
    )?;
    for run in runs {
        if let Some(waits) = run.quarantine_waits {
            writeln!(
                out,
                "  {} {}: {waits} waits for a quarantined block (install + updates); degraded \
                 chunks after the updates: {}",
                run.engine,
                table_name(run),
                run.degraded_after_updates.unwrap_or(0)
            )?;
        }
    }
    writeln!(out)
}

fn write_update_table(out: &mut dyn Write, runs: &[Run]) -> std::io::Result<()> {
    writeln!(
        out,
        "Single-route updates with the largest table in, µs per update (each a batch of one: \
         Fib + Datapath::apply, + the kernel FIB write for the kernel engine); add: new \
         prefixes, change: table prefixes to another group, remove: the added ones; >50µs: \
         updates over issue 12's goal; ticked: the updates during which the thread took a \
         timer interrupt (a per-thread perf count of irq_vectors:local_timer_entry; on the Intel \
         VM of BENCHMARKS.md a tick costs 20-60 µs and leaves the update's caches cold), in \
         parentheses those over 50 µs; spin: the machine's own, a 2 µs spin reading memory at random, \
         timed as an update, as many times, right after the engine's updates"
    )?;
    let mut table = TextTable::new(&[
        "engine",
        "routes",
        "family",
        "op",
        "ops",
        "p50",
        "p99",
        "p99.9",
        "mean",
        "max",
        ">50µs",
        "ticked (>50µs)",
        "refused",
    ]);
    let us = |ns: u64| format!("{:.1}", ns as f64 / 1e3);
    for run in runs {
        let Some(updates) = &run.updates else {
            continue;
        };
        let mut row = |family: &str, op: &str, l: &Latency, refused: String| {
            table.row(vec![
                run.engine.into(),
                table_name(run),
                family.into(),
                op.into(),
                l.ops.to_string(),
                us(l.p50_ns),
                us(l.p99_ns),
                us(l.p999_ns),
                format!("{:.1}", l.mean_ns / 1e3),
                us(l.max_ns),
                l.over_50us.to_string(),
                match (l.ticked, l.over_50us_ticked) {
                    (Some(ticked), Some(over)) => format!("{ticked} ({over})"),
                    _ => "-".into(),
                },
                refused,
            ])
        };
        let families =
            std::iter::once(("v4", &updates.v4)).chain(updates.v6.as_ref().map(|u| ("v6", u)));
        for (family, u) in families {
            for (op, l) in [
                ("add", &u.add),
                ("change", &u.change),
                ("remove", &u.remove),
            ] {
                row(family, op, l, l.failures.to_string());
            }
        }
        row("-", "spin", &updates.spin, "-".into());
    }
    table.write(out)?;
    for run in runs {
        let Some(updates) = &run.updates else {
            continue;
        };
        let families =
            std::iter::once(("v4", &updates.v4)).chain(updates.v6.as_ref().map(|u| ("v6", u)));
        for (family, u) in families {
            for (op, l) in [
                ("add", &u.add),
                ("change", &u.change),
                ("remove", &u.remove),
            ] {
                if let Some(first) = &l.first_failure {
                    writeln!(
                        out,
                        "  REFUSED {} {family} {op}: {} of {}, first: {first}",
                        run.engine, l.failures, l.ops
                    )?;
                }
            }
        }
    }
    writeln!(out, "  goal: < 50 µs per update")?;
    writeln!(out)
}

fn write_memory_table(out: &mut dyn Write, runs: &[Run]) -> std::io::Result<()> {
    writeln!(
        out,
        "Memory with the table installed (MiB; per route: bytes / (v4 + v6 routes))"
    )?;
    writeln!(
        out,
        "  route maps / all maps: sum of memlock in /proc/self/fdinfo of the program's maps \
         (LPM trie: leaf nodes only, a lower bound); live: DXR range blocks in use or in quarantine"
    )?;
    writeln!(
        out,
        "  meminfo: change of SUnreclaim + VmallocUsed over load + install (system-wide, noisy; \
         counts what memlock misses: trie inner nodes, allocator rounding; the kernel engine: \
         its FIB)"
    )?;
    writeln!(
        out,
        "  RSS: change of VmRSS (includes the mmap-ed arrays); anon: change of RssAnon (the \
         agent's own data: FIB, the engine's bookkeeping)"
    )?;
    let mut table = TextTable::new(&[
        "engine",
        "routes",
        "route maps",
        "live",
        "all maps",
        "meminfo",
        "RSS",
        "anon",
        "bookkeeping",
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
            m.live_bytes.map_or("-".into(), |b| mib(b as f64)),
            mib(m.kernel_maps_bytes as f64),
            signed_mib(m.meminfo_delta_bytes),
            signed_mib(m.rss_delta_bytes),
            signed_mib(m.rss_anon_delta_bytes),
            mib(m.bookkeeping_bytes as f64),
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
            let m = &run.memory;
            let dxr = match (m.live_bytes, m.dxr_fixed_bytes, m.dxr_degraded_chunks) {
                (Some(live), Some(fixed), Some(degraded)) => format!(
                    "; DXR blocks {} MiB + fixed tables {} MiB, degraded chunks {degraded}",
                    mib(live as f64),
                    mib(fixed as f64)
                ),
                _ => String::new(),
            };
            writeln!(
                out,
                "  {} {}: maps >= 64 KiB: {}; program {} KiB{tbl8}{dxr}",
                run.engine,
                table_name(run),
                maps.join(", "),
                run.memory.program_bytes / 1024
            )?;
        }
    }
    writeln!(out)
}

fn write_read_latency(out: &mut dyn Write, report: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "\nMemory read latency: one read of a random 64-byte line in a working set of each \
         size (4 KiB pages, as the route tables), ns"
    )?;
    writeln!(
        out,
        "  from XDP: a BPF array read by an XDP program, one BPF_PROG_TEST_RUN per read as the \
         spread runs its lookups, p50 above the p50 of re-reading one line (the lookups' anchor)"
    )?;
    writeln!(
        out,
        "  paced: the same from user space, one dependent read after each test run of the \
         floor's ARP frame (mean of the middle 80%); back to back: reads only"
    )?;
    let mut table = TextTable::new(&["working set", "from XDP", "paced", "back to back"]);
    for row in &report.read_latency {
        table.row(vec![
            format!("{} KiB", row.working_set_kib),
            row.xdp_ns.to_string(),
            format!("{:.1}", row.paced_ns),
            format!("{:.1}", row.back_to_back_ns),
        ]);
    }
    table.write(out)
}
