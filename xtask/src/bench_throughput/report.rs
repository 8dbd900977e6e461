//! What `bench datapath` reports: samples, their summaries and ratios, as JSON and as text.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{Mode, table::thousands};

/// One measurement: a table, a traffic family, a mode, a round.
#[derive(Serialize)]
pub struct Sample {
    pub table: String,
    pub family: &'static str,
    pub mode: Mode,
    /// Generator threads, each on a CPU of its own (the chain behind each runs there too).
    pub cores: usize,
    /// Share of rtr0's received frames per receive queue during the run: with 2 cores, both
    /// queues carry traffic when the sending CPUs pick distinct queues.
    pub rtr0_queue_share: Vec<f64>,
    pub round: usize,
    /// Length of the measured window.
    pub seconds: f64,
    /// Packets per second arriving at the sink during the window, in millions.
    pub sink_mpps: f64,
    /// The generator's rate during the window (frames gen0 transmitted), in millions.
    pub offered_mpps: f64,
    /// User time on the generator's CPU during the window, in percent. Everything of ours on
    /// that CPU runs in the kernel, so this is other programs taking the CPU away.
    pub others_cpu_percent: Option<f64>,
    /// Totals over the whole run (warm-up and drain included).
    pub generated: u64,
    pub at_sink: u64,
    /// rtr's kernel ForwDatagrams (IPv4) or OutForwDatagrams (IPv6) during the run.
    pub kernel_forwarded: u64,
    /// The router's XDP verdicts during the run (XDP modes only).
    pub xdp_forwarded: Option<u64>,
    pub xdp_passed: Option<u64>,
    pub xdp_dropped: Option<u64>,
}

/// The samples of one table, family, mode and core count over all rounds.
#[derive(Serialize)]
pub struct Summary {
    pub table: String,
    pub family: &'static str,
    pub mode: Mode,
    pub cores: usize,
    pub rounds: usize,
    pub sink_mpps_median: f64,
    pub sink_mpps_min: f64,
    pub sink_mpps_max: f64,
    pub offered_mpps_median: f64,
    /// Highest `others_cpu_percent` of the rounds.
    pub others_cpu_percent_max: Option<f64>,
    pub generated: u64,
    pub at_sink: u64,
    pub kernel_forwarded: u64,
    pub xdp_forwarded: Option<u64>,
    pub xdp_passed: Option<u64>,
    pub xdp_dropped: Option<u64>,
}

#[derive(Serialize)]
pub struct TableInfo {
    pub name: String,
    pub v4_routes: usize,
    pub v6_routes: usize,
    /// Prefixes the destinations are drawn from (inside the test ranges).
    pub v4_prefixes_hit: usize,
    pub v6_prefixes_hit: usize,
    pub v4_mix: String,
    /// `ip -batch` of every route into rtr's kernel FIB.
    pub kernel_install_seconds: f64,
    /// Fib bookkeeping + Datapath::apply, per XDP engine that has its own table.
    pub xdp_programming_seconds: Vec<(Mode, f64)>,
}

#[derive(Serialize)]
pub struct Ratio {
    pub table: String,
    pub family: &'static str,
    pub cores: usize,
    pub name: String,
    pub value: f64,
}

#[derive(Serialize)]
pub struct Report {
    pub command: String,
    pub nproc: usize,
    pub kernel: String,
    pub cpu_model: String,
    pub seconds_per_run: f64,
    pub rounds: usize,
    pub destinations: usize,
    pub generator_cpu: Option<usize>,
    /// Core counts measured (generator threads; 2: the CPU above and the one below it).
    pub cores: Vec<usize>,
    /// Queues of each veth.
    pub veth_queues: usize,
    pub realtime: bool,
    pub threaded_napi: bool,
    pub tables: Vec<TableInfo>,
    pub summaries: Vec<Summary>,
    pub ratios: Vec<Ratio>,
    pub samples: Vec<Sample>,
    pub total_seconds: f64,
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Groups the samples by (table, family, mode, cores), in the order they were measured.
pub fn summarize(samples: &[Sample]) -> Vec<Summary> {
    let mut out: Vec<Summary> = Vec::new();
    let mut done = BTreeSet::new();
    for first in samples {
        let key = |s: &Sample| (s.table.clone(), s.family, s.mode, s.cores);
        if !done.insert(key(first)) {
            continue;
        }
        let group: Vec<&Sample> = samples.iter().filter(|s| key(s) == key(first)).collect();
        let mut sink: Vec<f64> = group.iter().map(|s| s.sink_mpps).collect();
        let mut offered: Vec<f64> = group.iter().map(|s| s.offered_mpps).collect();
        let total = |f: fn(&Sample) -> u64| group.iter().map(|s| f(s)).sum::<u64>();
        let total_opt = |f: fn(&Sample) -> Option<u64>| -> Option<u64> {
            group.iter().map(|s| f(s)).sum::<Option<u64>>()
        };
        out.push(Summary {
            table: first.table.clone(),
            family: first.family,
            mode: first.mode,
            cores: first.cores,
            rounds: group.len(),
            sink_mpps_min: sink.iter().copied().fold(f64::INFINITY, f64::min),
            sink_mpps_max: sink.iter().copied().fold(0.0, f64::max),
            sink_mpps_median: median(&mut sink),
            offered_mpps_median: median(&mut offered),
            others_cpu_percent_max: group
                .iter()
                .filter_map(|s| s.others_cpu_percent)
                .reduce(f64::max),
            generated: total(|s| s.generated),
            at_sink: total(|s| s.at_sink),
            kernel_forwarded: total(|s| s.kernel_forwarded),
            xdp_forwarded: total_opt(|s| s.xdp_forwarded),
            xdp_passed: total_opt(|s| s.xdp_passed),
            xdp_dropped: total_opt(|s| s.xdp_dropped),
        });
    }
    out
}

/// Same-run ratios of the median rates: engines against each other and the kernel (per
/// table, family and core count), each mode's full table against its 1-route table, and each
/// mode's 2 cores against its 1 core.
pub fn ratios(summaries: &[Summary], first_table: &str) -> Vec<Ratio> {
    let mut out = Vec::new();
    let find = |table: &str, family: &str, mode: Mode, cores: usize| {
        summaries
            .iter()
            .find(|s| s.table == table && s.family == family && s.mode == mode && s.cores == cores)
            .map(|s| s.sink_mpps_median)
    };
    let mut push = |s: &Summary, name: String, over: Option<f64>, under: Option<f64>| {
        if let (Some(a), Some(b)) = (over, under)
            && b > 0.0
        {
            out.push(Ratio {
                table: s.table.clone(),
                family: s.family,
                cores: s.cores,
                name,
                value: a / b,
            });
        }
    };
    let mut seen = BTreeSet::new();
    for summary in summaries {
        let (table, family, cores) = (summary.table.as_str(), summary.family, summary.cores);
        if !seen.insert((table.to_owned(), family, cores)) {
            continue;
        }
        for (over, under) in [
            (Mode::Dxr, Mode::Kernel),
            (Mode::Dxr, Mode::FibLookup),
            (Mode::Dxr, Mode::Dir24),
            (Mode::Dxr, Mode::LpmTrie),
            (Mode::Dir24, Mode::Kernel),
            (Mode::Dir24, Mode::FibLookup),
            (Mode::LpmTrie, Mode::Kernel),
            (Mode::Dir24, Mode::LpmTrie),
            (Mode::FibLookup, Mode::Kernel),
        ] {
            push(
                summary,
                format!("{} / {}", over.short(), under.short()),
                find(table, family, over, cores),
                find(table, family, under, cores),
            );
        }
    }
    for summary in summaries {
        let (table, family, mode, cores) = (
            summary.table.as_str(),
            summary.family,
            summary.mode,
            summary.cores,
        );
        if table != first_table && mode != Mode::Baseline {
            push(
                summary,
                format!("{}: this table / {first_table}", mode.short()),
                Some(summary.sink_mpps_median),
                find(first_table, family, mode, cores),
            );
        }
        if cores > 1 {
            push(
                summary,
                format!("{}: {cores} cores / 1 core", mode.short()),
                Some(summary.sink_mpps_median),
                find(table, family, mode, 1),
            );
        }
    }
    // Grouped for printing: by table (in measuring order), family, cores.
    let order: Vec<&str> = summaries.iter().map(|s| s.table.as_str()).collect();
    out.sort_by_key(|r| (order.iter().position(|t| *t == r.table), r.family, r.cores));
    out
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub fn print_header(report: &Report) {
    println!("hostrouter datapath throughput");
    println!("command: {}", report.command);
    println!(
        "machine: {} CPUs ({}), Linux {}",
        report.nproc, report.cpu_model, report.kernel
    );
    println!(
        "method:  gen --veth--> rtr (router under test) --veth--> sink (XDP: count, drop)\n         \
         64-byte UDP frames from an XDP live-frames generator pinned to CPU {} (2 cores: a second \
         thread on the CPU below), {} destinations\n         \
         veths with {} queues (a frame goes to the queue of the sending CPU); cores measured: {}\n         \
         {} round(s) over the modes, {} s measured per run after 0.5 s warm-up; generator {}; rtr0 NAPI {}",
        report.generator_cpu.map_or("any".into(), |c| c.to_string()),
        thousands(report.destinations),
        report.veth_queues,
        report
            .cores
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        report.rounds,
        report.seconds_per_run,
        if report.realtime {
            "SCHED_FIFO"
        } else {
            "normal priority"
        },
        if report.threaded_napi {
            "threaded"
        } else {
            "in softirq (the whole chain runs on the generator's CPU)"
        }
    );
    println!();
}

pub fn print_results(report: &Report) {
    println!("tables:");
    for table in &report.tables {
        println!(
            "  {}: {} IPv4 + {} IPv6 routes; traffic to {} IPv4 / {} IPv6 prefixes of it \
             (those in 10.0.0.0/8, 2001:db8::/32)",
            table.name,
            thousands(table.v4_routes),
            thousands(table.v6_routes),
            thousands(table.v4_prefixes_hit),
            thousands(table.v6_prefixes_hit)
        );
        println!("    IPv4 prefix lengths: {}", table.v4_mix);
        let programming: Vec<String> = table
            .xdp_programming_seconds
            .iter()
            .map(|(mode, s)| format!("{} {s:.2} s", mode.label()))
            .collect();
        println!(
            "    route install: kernel FIB (ip -batch) {:.2} s{}{}",
            table.kernel_install_seconds,
            if programming.is_empty() { "" } else { "; " },
            programming.join(", ")
        );
    }
    println!();
    println!(
        "{:<18} {:<5} {:>5} {:<21} {:>9} {:>13} {:>8} {:>7} {:>13} {:>13} {:>9}",
        "table",
        "",
        "cores",
        "mode",
        "sink Mpps",
        "(min-max)",
        "offered",
        "others",
        "kernel fwd",
        "XDP fwd",
        "XDP pass"
    );
    let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| thousands(v as usize));
    for s in &report.summaries {
        println!(
            "{:<18} {:<5} {:>5} {:<21} {:>9.3} {:>13} {:>8.3} {:>7} {:>13} {:>13} {:>9}",
            s.table,
            s.family,
            s.cores,
            s.mode.label(),
            s.sink_mpps_median,
            format!("({:.2}-{:.2})", s.sink_mpps_min, s.sink_mpps_max),
            s.offered_mpps_median,
            percent(s.others_cpu_percent_max),
            thousands(s.kernel_forwarded as usize),
            opt(s.xdp_forwarded),
            opt(s.xdp_passed),
        );
    }
    println!();
    println!("ratios (median sink Mpps):");
    let mut current = None;
    for r in &report.ratios {
        let key = (r.table.as_str(), r.family, r.cores);
        if current != Some(key) {
            let cores = if r.cores == 1 { "core" } else { "cores" };
            println!("  {} {} {} {cores}:", r.table, r.family, r.cores);
            current = Some(key);
        }
        println!("    {:<44} {:.2}x", r.name, r.value);
    }
    println!();
    println!(
        "sink Mpps: median over rounds of packets/s counted by the sink's XDP program (for the \
         baseline: by the same program on rtr0, no forwarding).\n\
         baseline: the generator and one veth hop, no forwarding: the ceiling of this rig. A \
         mode close to it is limited by the rig, not by the router.\n\
         offered: frames/s gen0 transmitted in the window (median); the same as the sink's \
         rate when nothing is lost on the way.\n\
         others: the highest user-time share of the generator's CPU over the rounds (all our \
         work there is kernel time, so this is roughly other programs); a rough disturbance \
         indicator: the VM's own neighbours do not show up in it.\n\
         kernel fwd: rtr's ForwDatagrams; XDP fwd / pass: the router program's verdicts (totals \
         over all rounds, warm-up included).\n\
         IPv6 traffic: the DIR-24-8 mode looks IPv6 up in its LPM trie (DIR-24-8 is IPv4 only); \
         DXR has both families.\n\
         cores: generator threads on distinct CPUs; each thread's frames take the veth queue of its \
         CPU and are forwarded and sunk there (softirq), so N cores run N chains side by side."
    );
    println!("total time: {:.1} s", report.total_seconds);
}

pub fn percent(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:.0}%"))
}

/// Median sink Mpps per mode and family (a line each) over the tables and core counts.
pub fn plot(path: &std::path::Path, report: &Report) -> anyhow::Result<()> {
    let mut columns: Vec<(String, usize)> = Vec::new();
    for s in &report.summaries {
        if !columns.contains(&(s.table.clone(), s.cores)) {
            columns.push((s.table.clone(), s.cores));
        }
    }
    // Tables in measuring order, then cores.
    let tables: Vec<&str> = report.tables.iter().map(|t| t.name.as_str()).collect();
    columns.sort_by_key(|(table, cores)| (tables.iter().position(|t| t == table), *cores));
    let names: Vec<String> = columns
        .iter()
        .map(|(table, cores)| {
            format!(
                "{table}, {cores} core{}",
                if *cores == 1 { "" } else { "s" }
            )
        })
        .collect();
    let mut lines = Vec::new();
    let mut keys: Vec<(Mode, &str)> = report
        .summaries
        .iter()
        .map(|s| (s.mode, s.family))
        .collect();
    keys.sort();
    keys.dedup();
    for (mode, family) in keys {
        let values = columns
            .iter()
            .map(|(table, cores)| {
                report
                    .summaries
                    .iter()
                    .find(|s| {
                        s.mode == mode
                            && s.family == family
                            && &s.table == table
                            && s.cores == *cores
                    })
                    .map(|s| s.sink_mpps_median)
            })
            .collect();
        lines.push(crate::plot::Line {
            name: format!("{} {family}", mode.label()),
            values,
        });
    }
    crate::plot::lines(
        path,
        "Forwarding rate at the sink (64-byte frames, median over rounds)",
        "Mpps",
        "table, cores",
        &names,
        &lines,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(table: &str, family: &'static str, mode: Mode, cores: usize, mpps: f64) -> Summary {
        Summary {
            table: table.into(),
            family,
            mode,
            cores,
            rounds: 1,
            sink_mpps_median: mpps,
            sink_mpps_min: mpps,
            sink_mpps_max: mpps,
            offered_mpps_median: mpps,
            others_cpu_percent_max: None,
            generated: 0,
            at_sink: 0,
            kernel_forwarded: 0,
            xdp_forwarded: None,
            xdp_passed: None,
            xdp_dropped: None,
        }
    }

    #[test]
    fn ratios_per_family_table_and_cores() {
        let summaries = [
            summary("1 route", "IPv4", Mode::Kernel, 1, 1.0),
            summary("1 route", "IPv4", Mode::Dir24, 1, 4.0),
            summary("1 route", "IPv6", Mode::Kernel, 1, 0.5),
            summary("1 route", "IPv6", Mode::Dir24, 1, 3.0),
            summary("1 route", "IPv4", Mode::Dir24, 2, 7.0),
            summary("full", "IPv4", Mode::Kernel, 1, 0.5),
            summary("full", "IPv4", Mode::Dir24, 1, 3.6),
        ];
        let ratios = ratios(&summaries, "1 route");
        let find = |table: &str, family: &str, cores: usize, name: &str| {
            ratios
                .iter()
                .find(|r| {
                    r.table == table && r.family == family && r.cores == cores && r.name == name
                })
                .map(|r| r.value)
        };
        assert_eq!(find("1 route", "IPv4", 1, "DIR-24-8 / kernel"), Some(4.0));
        assert_eq!(find("1 route", "IPv6", 1, "DIR-24-8 / kernel"), Some(6.0));
        assert_eq!(find("full", "IPv4", 1, "DIR-24-8 / kernel"), Some(7.2));
        assert_eq!(
            find("full", "IPv4", 1, "DIR-24-8: this table / 1 route"),
            Some(0.9)
        );
        assert_eq!(
            find("1 route", "IPv4", 2, "DIR-24-8: 2 cores / 1 core"),
            Some(1.75)
        );
        // No 2-core kernel sample: no such ratio, and none across families.
        assert_eq!(find("1 route", "IPv4", 2, "DIR-24-8 / kernel"), None);
        assert!(ratios.iter().all(|r| r.value.is_finite()));
        // Printed grouped: tables in measuring order.
        let first_full = ratios.iter().position(|r| r.table == "full").unwrap();
        assert!(ratios[first_full..].iter().all(|r| r.table == "full"));
    }
}
