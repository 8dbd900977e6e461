//! `cargo xtask bench datapath`: forwarding throughput of the Linux kernel and of hostrouter's
//! XDP engines, measured in one run on one topology (see `topology.rs`):
//!
//! ```text
//!   gen ns: trafficgen (XDP live frames, XDP_TX) ─veth─> rtr ns: router under test
//!     ─veth─> sink ns: sink (XDP, counts and drops)
//! ```
//!
//! Modes, on the same namespaces, routes and destinations:
//! 1. kernel forwarding (no XDP on rtr0; routes in rtr's kernel FIB),
//! 2. XDP + `bpf_fib_lookup` (router-agent's datapath, `LookupEngine::Kernel`; kernel FIB),
//! 3. XDP + LPM trie and 4. XDP + DIR-24-8 (routes programmed through `Fib` + `Datapath`).
//!
//! Tables: 1 route, and a synthetic full table (1M IPv4 + 200k IPv6 routes, `table.rs`).
//!
//! The figure of merit is packets arriving at the sink per second. The machine is small and
//! shared, so the modes are measured in interleaved rounds (kernel, fib-lookup, trie, dir24,
//! kernel, ...) and the median is reported with the spread: a background burst then hits every
//! mode alike instead of one. Each XDP datapath is loaded and programmed once per table; a
//! round only attaches its program to rtr0 and detaches it again.
//!
//! By default the veths hand frames over in softirq on the sending CPU, so the generator, the
//! router and the sink all run on the generator's CPU: the result is what one core pushes
//! through the whole chain, and the generator's own ("offered") rate equals it. With
//! `--threaded-napi` rtr0's processing moves to a kernel thread the scheduler may place on the
//! other CPU.

pub mod table;
mod topology;
mod trafficgen;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use aya::programs::xdp::XdpMode;
use ipnet::IpNet;
use router_agent::{
    datapath::{Datapath, DatapathOptions},
    fib::{Batch, Fib, FibLimits, LinkState, NexthopKey, RouteTarget, Source},
};
use router_common::{
    INTERFACE_F_FORWARD_V4, INTERFACE_F_FORWARD_V6, Interface, LookupEngine, Verdict,
};
use serde::Serialize;

use table::{Table, thousands};
use topology::Topology;
use trafficgen::{Generator, GeneratorStop, Placement, Sink};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds measured per run (after a 0.5 s warm-up) [default: 5, 2 with --quick].
    #[arg(long)]
    seconds: Option<f64>,
    /// Interleaved rounds over the modes; the median is reported [default: 3, 1 with --quick].
    #[arg(long)]
    rounds: Option<usize>,
    /// CI smoke test: 1 route and a 10,000-route table (+2,000 IPv6), 2 s, one round.
    #[arg(long)]
    quick: bool,
    /// Print the results as JSON (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// IPv4 routes of the full table [default: 1,000,000, 10,000 with --quick].
    #[arg(long)]
    v4_routes: Option<usize>,
    /// IPv6 routes of the full table [default: 200,000, 2,000 with --quick].
    #[arg(long)]
    v6_routes: Option<usize>,
    /// Distinct destination addresses the generator cycles through.
    #[arg(long, default_value_t = 131_072)]
    destinations: usize,
    /// Also measure IPv6 traffic.
    #[arg(long)]
    ipv6: bool,
    /// Only these modes, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',')]
    modes: Vec<Mode>,
    /// CPU the generator thread is pinned to [default: the last one].
    #[arg(long)]
    cpu: Option<usize>,
    /// Run the generator thread with a real-time priority (SCHED_FIFO), so that other programs
    /// on a shared machine do not take its CPU (they still get 5% of it, and all of the others).
    #[arg(long)]
    realtime: bool,
    /// Run rtr0's NAPI (the router's receive processing) in a kernel thread, off the
    /// generator's CPU, instead of in softirq right behind the generator.
    #[arg(long)]
    threaded_napi: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    /// No router: rtr0 counts and drops (the chain's cost without forwarding).
    Baseline,
    /// Linux forwarding, no XDP on the router.
    Kernel,
    /// XDP with bpf_fib_lookup (the kernel's FIB).
    FibLookup,
    /// XDP with hostrouter's LPM trie.
    LpmTrie,
    /// XDP with hostrouter's DIR-24-8.
    Dir24,
}

impl Mode {
    const ALL: [Mode; 5] = [
        Mode::Baseline,
        Mode::Kernel,
        Mode::FibLookup,
        Mode::LpmTrie,
        Mode::Dir24,
    ];

    fn label(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline (rtr0 drops)",
            Mode::Kernel => "kernel forwarding",
            Mode::FibLookup => "XDP bpf_fib_lookup",
            Mode::LpmTrie => "XDP LPM trie",
            Mode::Dir24 => "XDP DIR-24-8",
        }
    }

    fn engine(self) -> Option<LookupEngine> {
        match self {
            Mode::Baseline | Mode::Kernel => None,
            Mode::FibLookup => Some(LookupEngine::Kernel),
            Mode::LpmTrie => Some(LookupEngine::LpmTrie),
            Mode::Dir24 => Some(LookupEngine::Dir24),
        }
    }
}

/// One measurement: a table, a traffic family, a mode, a round.
#[derive(Serialize)]
struct Sample {
    table: String,
    family: &'static str,
    mode: Mode,
    round: usize,
    /// Length of the measured window.
    seconds: f64,
    /// Packets per second arriving at the sink during the window, in millions.
    sink_mpps: f64,
    /// The generator's rate during the window (frames gen0 transmitted), in millions.
    offered_mpps: f64,
    /// User time on the generator's CPU during the window, in percent. Everything of ours on
    /// that CPU runs in the kernel, so this is other programs taking the CPU away.
    others_cpu_percent: Option<f64>,
    /// Totals over the whole run (warm-up and drain included).
    generated: u64,
    at_sink: u64,
    /// rtr's kernel ForwDatagrams (IPv4) or OutForwDatagrams (IPv6) during the run.
    kernel_forwarded: u64,
    /// The router's XDP verdicts during the run (XDP modes only).
    xdp_forwarded: Option<u64>,
    xdp_passed: Option<u64>,
    xdp_dropped: Option<u64>,
}

/// The samples of one table, family and mode over all rounds.
#[derive(Serialize)]
struct Summary {
    table: String,
    family: &'static str,
    mode: Mode,
    rounds: usize,
    sink_mpps_median: f64,
    sink_mpps_min: f64,
    sink_mpps_max: f64,
    offered_mpps_median: f64,
    /// Highest `others_cpu_percent` of the rounds.
    others_cpu_percent_max: Option<f64>,
    generated: u64,
    at_sink: u64,
    kernel_forwarded: u64,
    xdp_forwarded: Option<u64>,
    xdp_passed: Option<u64>,
    xdp_dropped: Option<u64>,
}

#[derive(Serialize)]
struct TableInfo {
    name: String,
    v4_routes: usize,
    v6_routes: usize,
    /// Prefixes the destinations are drawn from (inside the test ranges).
    v4_prefixes_hit: usize,
    v6_prefixes_hit: usize,
    v4_mix: String,
    /// `ip -batch` of every route into rtr's kernel FIB.
    kernel_install_seconds: f64,
    /// Fib bookkeeping + Datapath::apply, per XDP engine that has its own table.
    xdp_programming_seconds: Vec<(Mode, f64)>,
}

#[derive(Serialize)]
struct Ratio {
    table: String,
    family: &'static str,
    name: &'static str,
    value: f64,
}

#[derive(Serialize)]
struct Report {
    command: String,
    nproc: usize,
    kernel: String,
    cpu_model: String,
    seconds_per_run: f64,
    rounds: usize,
    destinations: usize,
    generator_cpu: Option<usize>,
    realtime: bool,
    threaded_napi: bool,
    tables: Vec<TableInfo>,
    summaries: Vec<Summary>,
    ratios: Vec<Ratio>,
    samples: Vec<Sample>,
    total_seconds: f64,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    netns_lab::catch_interrupts();
    crate::ensure_bpffs()?;
    netns_lab::remove_stale_labs(&format!("{}-", topology::TAG));

    let seconds = args.seconds.unwrap_or(if args.quick { 2.0 } else { 5.0 });
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let (v4_routes, v6_routes) = if args.quick {
        (
            args.v4_routes.unwrap_or(10_000),
            args.v6_routes.unwrap_or(2_000),
        )
    } else {
        (
            args.v4_routes.unwrap_or(1_000_000),
            args.v6_routes.unwrap_or(200_000),
        )
    };
    let modes: Vec<Mode> = if args.modes.is_empty() {
        Mode::ALL.to_vec()
    } else {
        let set: BTreeSet<Mode> = args.modes.iter().copied().collect();
        set.into_iter().collect()
    };
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = Some(args.cpu.unwrap_or(nproc - 1));
    let placement = Placement {
        cpu,
        realtime: args.realtime,
    };
    let families: &[&'static str] = if args.ipv6 {
        &["IPv4", "IPv6"]
    } else {
        &["IPv4"]
    };

    let mut report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        nproc,
        kernel: netns_lab::run(std::process::Command::new("uname").arg("-r"))?
            .trim()
            .to_owned(),
        cpu_model: cpu_model(),
        seconds_per_run: seconds,
        rounds,
        destinations: args.destinations,
        generator_cpu: cpu,
        realtime: args.realtime,
        threaded_napi: args.threaded_napi,
        tables: Vec::new(),
        summaries: Vec::new(),
        ratios: Vec::new(),
        samples: Vec::new(),
        total_seconds: 0.0,
    };
    if !args.json {
        print_header(&report);
    }

    progress("creating namespaces, veths, sink");
    let topo = Topology::create(args.threaded_napi)?;
    let sink = Sink::attach(&topo.sink, "sink0")?;
    let mut generators = Vec::new();
    for family in families {
        generators.push((*family, Generator::load()?));
    }

    let tables = [
        Table::single(args.destinations, 1),
        Table::internet(v4_routes, v6_routes, args.destinations, 2),
    ];
    for (index, table) in tables.iter().enumerate() {
        progress(&format!(
            "table {}: installing {} IPv4 + {} IPv6 routes in rtr's kernel FIB (ip -batch)",
            table.name,
            thousands(table.v4.len()),
            thousands(table.v6.len())
        ));
        let scratch =
            std::env::temp_dir().join(format!("{}-{}-routes", topology::TAG, std::process::id()));
        let install = Instant::now();
        table.install_kernel(&topo.rtr, &scratch)?;
        let install = install.elapsed();
        progress(&format!(
            "  kernel FIB install: {:.2} s",
            install.as_secs_f64()
        ));

        for (family, generator) in &mut generators {
            let (src, dsts) = if *family == "IPv4" {
                (topology::GEN_V4, trafficgen::v4_destinations(&table.dst_v4))
            } else {
                (topology::GEN_V6, trafficgen::v6_destinations(&table.dst_v6))
            };
            generator.configure(topo.gen0.mac, topo.rtr0.mac, src.parse()?, &dsts)?;
        }

        let mut info = TableInfo {
            name: table.name.clone(),
            v4_routes: table.v4.len(),
            v6_routes: table.v6.len(),
            v4_prefixes_hit: table.hit_v4,
            v6_prefixes_hit: table.hit_v6,
            v4_mix: table.v4_mix(8),
            kernel_install_seconds: install.as_secs_f64(),
            xdp_programming_seconds: Vec::new(),
        };

        // Every XDP datapath, loaded and programmed (not attached) before the first round.
        let mut datapaths: BTreeMap<Mode, Datapath> = BTreeMap::new();
        for &mode in &modes {
            let Some(engine) = mode.engine() else {
                continue;
            };
            let (datapath, programming) = setup_datapath(&topo, table, engine, mode)?;
            if let Some(programming) = programming {
                progress(&format!(
                    "  {}: programmed {} routes in {:.2} s",
                    mode.label(),
                    thousands(table.v4.len() + table.v6.len()),
                    programming.as_secs_f64()
                ));
                info.xdp_programming_seconds
                    .push((mode, programming.as_secs_f64()));
            }
            datapaths.insert(mode, datapath);
        }

        for round in 0..rounds {
            for &mode in &modes {
                // The baseline does not depend on the table: measured with the first only.
                if mode == Mode::Baseline && index > 0 {
                    continue;
                }
                // For the baseline, rtr0 runs the sink program and is where packets are counted.
                let rtr0_sink = match mode {
                    Mode::Baseline => Some(Sink::attach(&topo.rtr, "rtr0")?),
                    _ => None,
                };
                // Attaching resolves the ifindex in the calling thread's namespace: from rtr.
                let link = match datapaths.get_mut(&mode) {
                    Some(datapath) => Some(topo.rtr.run_in(|| {
                        datapath
                            .program_mut()
                            .attach_to_if_index(topo.rtr0.ifindex, XdpMode::Driver)
                            .context("attaching the router's XDP program to rtr0")
                    })?),
                    None => None,
                };
                for (family, generator) in &generators {
                    let sample = measure(
                        &topo,
                        rtr0_sink.as_ref().unwrap_or(&sink),
                        generator,
                        datapaths.get(&mode),
                        placement,
                        seconds,
                        (&table.name, family, mode, round),
                    )?;
                    progress(&format!(
                        "  round {}/{rounds}  {:<21} {}: {:.3} Mpps at the sink (offered {:.3}; \
                         others took {} of the generator's CPU)",
                        round + 1,
                        mode.label(),
                        family,
                        sample.sink_mpps,
                        sample.offered_mpps,
                        percent(sample.others_cpu_percent)
                    ));
                    report.samples.push(sample);
                }
                if let (Some(datapath), Some(link)) = (datapaths.get_mut(&mode), link) {
                    datapath.program_mut().detach(link)?;
                }
                // Dropping the baseline's sink detaches it from rtr0.
                drop(rtr0_sink);
            }
        }
        // Nothing is pinned (the links above are not); this removes the pin directories.
        for (_, datapath) in datapaths {
            datapath.detach_and_unpin(&[])?;
        }
        report.tables.push(info);
        if index + 1 < tables.len() {
            Table::flush_kernel(&topo.rtr)?;
        }
    }

    report.summaries = summarize(&report.samples);
    report.ratios = ratios(&report.summaries);
    progress("cleaning up (deleting the namespaces also frees the kernel routes)");
    drop(generators);
    drop(sink);
    drop(topo);
    report.total_seconds = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_results(&report);
    }
    Ok(())
}

/// Loads router-agent's datapath for `engine`, allows redirects to rtr1, and programs the
/// table through `Fib` (not for the kernel engine, which reads the kernel's FIB). Returns the
/// datapath and how long programming took.
fn setup_datapath(
    topo: &Topology,
    table: &Table,
    engine: LookupEngine,
    mode: Mode,
) -> Result<(Datapath, Option<Duration>)> {
    let pin_dir = format!("{}-{mode:?}", topo.pin_dir.0.display()).to_lowercase();
    let mut datapath = Datapath::load(DatapathOptions::new(engine, pin_dir))?;
    // The kernel binds a devmap entry to the device that has the ifindex in the *updating
    // thread's* network namespace: from the host namespace, EGRESS_PORTS would name a host
    // interface and the router would redirect benchmark frames out of it. So: from rtr.
    topo.rtr
        .run_in(|| datapath.add_egress_port(topo.rtr1.ifindex))?;
    // The program forwards only frames addressed to the interface they arrive on, and (kernel
    // engine) out of interfaces it knows: both as the agent writes them at attach.
    for link in [&topo.rtr0, &topo.rtr1] {
        let interface = Interface {
            mac: link.mac,
            rpf: 0,
            flags: INTERFACE_F_FORWARD_V4 | INTERFACE_F_FORWARD_V6,
        };
        datapath.set_interface(link.ifindex, interface)?;
    }
    let programming = if engine == LookupEngine::Kernel {
        None
    } else {
        let start = Instant::now();
        program_routes(&mut datapath, topo, table)?;
        Some(start.elapsed())
    };
    Ok((datapath, programming))
}

/// Every route of the table via the sink, as the agent would program it.
fn program_routes(datapath: &mut Datapath, topo: &Topology, table: &Table) -> Result<()> {
    let mut fib = Fib::new(FibLimits::default());
    let mut batch = Batch::default();
    let rtr1 = topo.rtr1.ifindex;
    let link = LinkState {
        mac: topo.rtr1.mac,
        mtu: 1500,
        up: true,
    };
    fib.update_link(&mut batch, rtr1, Some(link));
    let sink_v4: IpAddr = topology::SINK_V4.parse()?;
    let sink_v6: IpAddr = topology::SINK_V6.parse()?;
    fib.update_neighbor(&mut batch, rtr1, sink_v4, Some(topo.sink0.mac));
    fib.update_neighbor(&mut batch, rtr1, sink_v6, Some(topo.sink0.mac));
    datapath.apply(&batch)?;

    let via = |addr| RouteTarget::Via(BTreeSet::from([NexthopKey::host(addr, rtr1)]));
    let (via_v4, via_v6) = (via(sink_v4), via(sink_v6));
    let prefixes = table
        .v4
        .iter()
        .map(|p| (IpNet::V4(*p), &via_v4))
        .chain(table.v6.iter().map(|p| (IpNet::V6(*p), &via_v6)));
    // Batches of 64k routes keep the memory of pending operations small.
    let mut batch = Batch::default();
    for (count, (prefix, target)) in prefixes.enumerate() {
        fib.set_route(&mut batch, Source::Static, prefix, target.clone())
            .with_context(|| format!("route {prefix}"))?;
        if count % 65_536 == 65_535 {
            datapath.apply(&std::mem::take(&mut batch))?;
        }
    }
    datapath.apply(&batch)?;
    Ok(())
}

/// What happened during the measured window.
struct Window {
    elapsed: Duration,
    at_sink: u64,
    generated: u64,
    /// See `Sample::others_cpu_percent`.
    others: Option<f64>,
}

/// Counters read before and after a run.
struct Snapshot {
    sink: u64,
    generated: u64,
    kernel: (u64, u64),
    verdicts: Option<Vec<u64>>,
}

fn snapshot(topo: &Topology, sink: &Sink, datapath: Option<&Datapath>) -> Result<Snapshot> {
    Ok(Snapshot {
        sink: sink.counters()?.0,
        generated: topo.generated()?,
        kernel: topo.kernel_forwarded()?,
        verdicts: datapath.map(Datapath::verdict_counts).transpose()?,
    })
}

/// Runs the generator for a warm-up plus `seconds`, and measures the sink's and the
/// generator's rates over the `seconds` window.
fn measure(
    topo: &Topology,
    sink: &Sink,
    generator: &Generator,
    datapath: Option<&Datapath>,
    placement: Placement,
    seconds: f64,
    (table, family, mode, round): (&str, &'static str, Mode, usize),
) -> Result<Sample> {
    const WARMUP: Duration = Duration::from_millis(500);
    let before = snapshot(topo, sink, datapath)?;
    let stop = GeneratorStop::new();
    let window = std::thread::scope(|scope| {
        let generator =
            scope.spawn(|| generator.run(&topo.gen_ns, topo.gen0.ifindex, placement, &stop));
        let measured = (|| -> Result<Window> {
            netns_lab::sleep(WARMUP)?;
            if generator.is_finished() {
                bail!("the generator stopped during warm-up");
            }
            let cpu0 = placement.cpu.and_then(cpu_times);
            let (t0, p0, g0) = (Instant::now(), sink.counters()?.0, topo.generated()?);
            netns_lab::sleep(Duration::from_secs_f64(seconds))?;
            let (t1, p1, g1) = (Instant::now(), sink.counters()?.0, topo.generated()?);
            let cpu1 = placement.cpu.and_then(cpu_times);
            let others = match (cpu0, cpu1) {
                (Some(a), Some(b)) if b.total > a.total => {
                    Some(100.0 * (b.user - a.user) as f64 / (b.total - a.total) as f64)
                }
                _ => None,
            };
            Ok(Window {
                elapsed: t1 - t0,
                at_sink: p1 - p0,
                generated: g1 - g0,
                others,
            })
        })();
        // Always stop the generator, also when measuring failed or was interrupted.
        stop.stop(|| generator.is_finished());
        generator
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        measured
    })?;
    // Let frames in flight reach the sink before the final counters.
    std::thread::sleep(Duration::from_millis(200));
    let after = snapshot(topo, sink, datapath)?;

    let kernel_forwarded = if family == "IPv4" {
        after.kernel.0 - before.kernel.0
    } else {
        after.kernel.1 - before.kernel.1
    };
    let verdicts = match (&before.verdicts, &after.verdicts) {
        (Some(b), Some(a)) => Some(a.iter().zip(b).map(|(a, b)| a - b).collect::<Vec<_>>()),
        _ => None,
    };
    let sum = |verdicts: &[u64], first: Verdict, last: Verdict| -> u64 {
        verdicts[first as usize..=last as usize].iter().sum()
    };
    let sample = Sample {
        table: table.to_owned(),
        family,
        mode,
        round,
        seconds: window.elapsed.as_secs_f64(),
        sink_mpps: window.at_sink as f64 / window.elapsed.as_secs_f64() / 1e6,
        others_cpu_percent: window.others,
        offered_mpps: window.generated as f64 / window.elapsed.as_secs_f64() / 1e6,
        generated: after.generated - before.generated,
        at_sink: after.sink - before.sink,
        kernel_forwarded,
        xdp_forwarded: verdicts.as_ref().map(|v| v[Verdict::Forwarded as usize]),
        xdp_passed: verdicts
            .as_ref()
            .map(|v| sum(v, Verdict::PassedLocal, Verdict::PassedVlan)),
        xdp_dropped: verdicts
            .as_ref()
            .map(|v| sum(v, Verdict::DroppedMalformed, Verdict::DroppedRedirect)),
    };
    check_sample(topo, &sample)?;
    Ok(sample)
}

/// A run where (next to) nothing arrived is a broken setup, not a result: say what the veths
/// saw and stop.
fn check_sample(topo: &Topology, sample: &Sample) -> Result<()> {
    if sample.at_sink * 10 >= sample.generated {
        return Ok(());
    }
    let mut details = String::new();
    for (ns, dev) in [
        (&topo.gen_ns, "gen0"),
        (&topo.rtr, "rtr0"),
        (&topo.rtr, "rtr1"),
        (&topo.sink, "sink0"),
    ] {
        if let Ok(stats) = Topology::ethtool_stats(ns, dev) {
            let nonzero: Vec<String> = stats
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            details.push_str(&format!("\n  {dev}: {}", nonzero.join(" ")));
        }
    }
    bail!(
        "{} / {} / {}: only {} of {} generated frames reached the sink (kernel forwarded {}, \
         XDP forwarded {:?}, passed {:?}, dropped {:?}); veth counters:{details}",
        sample.table,
        sample.family,
        sample.mode.label(),
        sample.at_sink,
        sample.generated,
        sample.kernel_forwarded,
        sample.xdp_forwarded,
        sample.xdp_passed,
        sample.xdp_dropped
    )
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Groups the samples by (table, family, mode), in the order they were measured.
fn summarize(samples: &[Sample]) -> Vec<Summary> {
    let mut out: Vec<Summary> = Vec::new();
    let mut done = BTreeSet::new();
    for first in samples {
        if !done.insert((first.table.clone(), first.family, first.mode)) {
            continue;
        }
        let group: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.table == first.table && s.family == first.family && s.mode == first.mode)
            .collect();
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

fn ratios(summaries: &[Summary]) -> Vec<Ratio> {
    let mut out = Vec::new();
    let find = |table: &str, family: &str, mode: Mode| {
        summaries
            .iter()
            .find(|s| s.table == table && s.family == family && s.mode == mode)
            .map(|s| s.sink_mpps_median)
    };
    let mut seen = BTreeSet::new();
    for summary in summaries {
        if !seen.insert((summary.table.clone(), summary.family)) {
            continue;
        }
        for (name, over, under) in [
            ("DIR-24-8 / kernel", Mode::Dir24, Mode::Kernel),
            ("DIR-24-8 / bpf_fib_lookup", Mode::Dir24, Mode::FibLookup),
            ("LPM trie / kernel", Mode::LpmTrie, Mode::Kernel),
            ("DIR-24-8 / LPM trie", Mode::Dir24, Mode::LpmTrie),
            ("bpf_fib_lookup / kernel", Mode::FibLookup, Mode::Kernel),
        ] {
            if let (Some(a), Some(b)) = (
                find(&summary.table, summary.family, over),
                find(&summary.table, summary.family, under),
            ) && b > 0.0
            {
                out.push(Ratio {
                    table: summary.table.clone(),
                    family: summary.family,
                    name,
                    value: a / b,
                });
            }
        }
    }
    out
}

/// Jiffies of one CPU from /proc/stat: user + nice, and the total.
struct CpuTimes {
    user: u64,
    total: u64,
}

fn cpu_times(cpu: usize) -> Option<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let name = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    Some(CpuTimes {
        user: values.first()? + values.get(1)?,
        total: values.iter().take(8).sum(),
    })
}

fn percent(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:.0}%"))
}

fn progress(message: &str) {
    eprintln!("[bench] {message}");
}

fn cpu_model() -> String {
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

fn print_header(report: &Report) {
    println!("hostrouter datapath throughput");
    println!("command: {}", report.command);
    println!(
        "machine: {} CPUs ({}), Linux {}",
        report.nproc, report.cpu_model, report.kernel
    );
    println!(
        "method:  gen --veth--> rtr (router under test) --veth--> sink (XDP: count, drop)\n         \
         64-byte UDP frames from an XDP live-frames generator pinned to CPU {}, {} destinations\n         \
         {} round(s) over the modes, {} s measured per run after 0.5 s warm-up; generator {}; rtr0 NAPI {}",
        report.generator_cpu.map_or("any".into(), |c| c.to_string()),
        thousands(report.destinations),
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

fn print_results(report: &Report) {
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
        "{:<18} {:<5} {:<21} {:>9} {:>13} {:>8} {:>7} {:>13} {:>13} {:>9}",
        "table",
        "",
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
            "{:<18} {:<5} {:<21} {:>9.3} {:>13} {:>8.3} {:>7} {:>13} {:>13} {:>9}",
            s.table,
            s.family,
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
        let key = (r.table.as_str(), r.family);
        if current != Some(key) {
            println!("  {} {}:", r.table, r.family);
            current = Some(key);
        }
        println!("    {:<28} {:.2}x", r.name, r.value);
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
         IPv6 traffic: the DIR-24-8 mode looks IPv6 up in its LPM trie (DIR-24-8 is IPv4 only)."
    );
    println!("total time: {:.1} s", report.total_seconds);
}
