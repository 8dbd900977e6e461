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
//! 3. XDP + LPM trie, 4. XDP + DIR-24-8 and 5. XDP + DXR (routes programmed through `Fib` +
//!    `Datapath`).
//!
//! Tables: 1 route, and a synthetic full table (1M IPv4 + 200k IPv6 routes, `table.rs`).
//! Traffic: IPv4 and IPv6 (`--families`), each family's rows and ratios apart.
//!
//! The figure of merit is packets arriving at the sink per second. The machine is small and
//! shared, so the modes are measured in interleaved rounds (kernel, fib-lookup, trie, dir24,
//! dxr, kernel, ...) and the median is reported with the spread: a background burst then hits
//! every mode alike instead of one. Each XDP datapath is loaded and programmed once per table; a
//! round only attaches its program to rtr0 and detaches it again.
//!
//! By default the veths hand frames over in softirq on the sending CPU, so the generator, the
//! router and the sink all run on the generator's CPU: the result is what one core pushes
//! through the whole chain, and the generator's own ("offered") rate equals it. With
//! `--threaded-napi` rtr0's processing moves to a kernel thread the scheduler may place on the
//! other CPU.
//!
//! Multi-core (`--cores 1,2`): every veth has two queues, and a frame sent on CPU n goes to the
//! receive queue n % 2 of the peer, whose NAPI then runs on CPU n. Two generator threads on two
//! CPUs therefore run two complete chains (generator, router, sink) side by side; the router's
//! fast path writes nothing shared but per-CPU counters, so its rate should double. The
//! samples record how rtr0's frames split over its queues. On a shared machine, `--realtime`
//! keeps other programs from deciding the second core's figure.

mod measure;
mod report;
pub mod table;
mod topology;
mod trafficgen;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use aya::programs::xdp::XdpMode;
use ipnet::IpNet;
use router_agent::{
    datapath::{Datapath, DatapathOptions, DxrSizes},
    fib::{Batch, Fib, FibLimits, LinkState, NexthopKey, RouteTarget, Source},
};
use router_common::{INTERFACE_F_FORWARD_V4, INTERFACE_F_FORWARD_V6, Interface, LookupEngine};
use serde::Serialize;

use report::{Report, TableInfo};
use table::{Table, thousands};
use topology::Topology;
use trafficgen::{Generator, LiveFramesRefused, Placement, Sink};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds measured per run (after a 0.5 s warm-up) [default: 5, 1 with --quick].
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
    /// Traffic families, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ipv4,ipv6")]
    families: Vec<Family>,
    /// Core counts to measure, comma-separated: generator threads on that many CPUs, each
    /// driving its own chain through the router [default: 1,2; --quick: 1].
    #[arg(long, value_delimiter = ',')]
    cores: Option<Vec<usize>>,
    /// Also draw the median sink Mpps per mode, family, table and core count as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Only these modes, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',')]
    modes: Vec<Mode>,
    /// CPU the generator thread is pinned to (with 2 cores, the second goes to the CPU below)
    /// [default: the last one].
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
    /// XDP with hostrouter's DXR (both families).
    Dxr,
}

impl Mode {
    const ALL: [Mode; 6] = [
        Mode::Baseline,
        Mode::Kernel,
        Mode::FibLookup,
        Mode::LpmTrie,
        Mode::Dir24,
        Mode::Dxr,
    ];

    fn label(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline (rtr0 drops)",
            Mode::Kernel => "kernel forwarding",
            Mode::FibLookup => "XDP bpf_fib_lookup",
            Mode::LpmTrie => "XDP LPM trie",
            Mode::Dir24 => "XDP DIR-24-8",
            Mode::Dxr => "XDP DXR",
        }
    }

    /// The name in ratios.
    fn short(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::Kernel => "kernel",
            Mode::FibLookup => "bpf_fib_lookup",
            Mode::LpmTrie => "LPM trie",
            Mode::Dir24 => "DIR-24-8",
            Mode::Dxr => "DXR",
        }
    }

    fn engine(self) -> Option<LookupEngine> {
        match self {
            Mode::Baseline | Mode::Kernel => None,
            Mode::FibLookup => Some(LookupEngine::Kernel),
            Mode::LpmTrie => Some(LookupEngine::LpmTrie),
            Mode::Dir24 => Some(LookupEngine::Dir24),
            Mode::Dxr => Some(LookupEngine::Dxr),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    netns_lab::catch_interrupts();
    crate::ensure_bpffs()?;
    netns_lab::remove_stale_labs(&format!("{}-", topology::TAG));

    let seconds = args.seconds.unwrap_or(if args.quick { 1.0 } else { 5.0 });
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
    let cpu = args.cpu.unwrap_or(nproc - 1);
    let mut cores = args
        .cores
        .clone()
        .unwrap_or_else(|| if args.quick { vec![1] } else { vec![1, 2] });
    cores.sort_unstable();
    cores.dedup();
    ensure!(
        cores.iter().all(|&n| (1..=nproc).contains(&n)),
        "--cores: between 1 and {nproc} (the CPUs here)"
    );
    // Generator thread i on CPU `cpu - i` (wrapping): distinct CPUs.
    let placements = |count: usize| -> Vec<Placement> {
        (0..count)
            .map(|i| Placement {
                cpu: Some((cpu + nproc - i) % nproc),
                realtime: args.realtime,
            })
            .collect()
    };
    let mut families: Vec<&'static str> = args.families.iter().map(|f| f.name()).collect();
    families.sort_unstable();
    families.dedup();
    ensure!(!families.is_empty(), "--families: at least one");
    let veth_queues = cores.iter().copied().max().unwrap_or(1).max(2);

    let mut report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        nproc,
        kernel: netns_lab::run(std::process::Command::new("uname").arg("-r"))?
            .trim()
            .to_owned(),
        cpu_model: report::cpu_model(),
        seconds_per_run: seconds,
        rounds,
        destinations: args.destinations,
        generator_cpu: Some(cpu),
        cores: cores.clone(),
        veth_queues,
        realtime: args.realtime,
        threaded_napi: args.threaded_napi,
        tables: Vec::new(),
        summaries: Vec::new(),
        ratios: Vec::new(),
        samples: Vec::new(),
        total_seconds: 0.0,
    };
    if !args.json {
        report::print_header(&report);
    }

    progress("creating namespaces, veths, sink");
    let topo = Topology::create(args.threaded_napi, veth_queues)?;
    let sink = Sink::attach(&topo.sink, "sink0")?;
    let mut generators = Vec::new();
    for &family in &families {
        generators.push((family, Generator::load()?));
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
                    for &count in &cores {
                        let sample = match measure::measure(
                            &topo,
                            rtr0_sink.as_ref().unwrap_or(&sink),
                            generator,
                            datapaths.get(&mode),
                            &placements(count),
                            seconds,
                            (&table.name, family, mode, round),
                        ) {
                            // A smoke run has set up and programmed everything by now: that
                            // is what it checks where no frame can be sent.
                            Err(err)
                                if args.quick
                                    && err.downcast_ref::<LiveFramesRefused>().is_some() =>
                            {
                                println!("bench datapath --quick: no traffic measured: {err:#}");
                                return Ok(());
                            }
                            sample => sample?,
                        };
                        progress(&format!(
                            "  round {}/{rounds}  {:<21} {} {count} core(s): {:.3} Mpps at the \
                             sink (offered {:.3}; others took {} of the generators' CPUs; rtr0 \
                             queues {})",
                            round + 1,
                            mode.label(),
                            family,
                            sample.sink_mpps,
                            sample.offered_mpps,
                            report::percent(sample.others_cpu_percent),
                            sample
                                .rtr0_queue_share
                                .iter()
                                .map(|share| format!("{:.0}%", share * 100.0))
                                .collect::<Vec<_>>()
                                .join("/")
                        ));
                        report.samples.push(sample);
                    }
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

    report.summaries = report::summarize(&report.samples);
    report.ratios = report::ratios(&report.summaries, &tables[0].name);
    progress("cleaning up (deleting the namespaces also frees the kernel routes)");
    drop(generators);
    drop(sink);
    drop(topo);
    report.total_seconds = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report::print_results(&report);
    }
    if let Some(path) = &args.plot {
        report::plot(path, &report)?;
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
    let mut options = DatapathOptions::new(engine, pin_dir);
    options.dxr = DxrSizes::for_routes(table.v4.len(), table.v6.len());
    let mut datapath = Datapath::load(options)?;
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

fn progress(message: &str) {
    eprintln!("[bench] {message}");
}
