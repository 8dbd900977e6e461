//! `cargo run --release -p xtask -- bench cost`: what a packet, a route and a table cost, per
//! lookup engine: LPM trie, DIR-24-8, and the kernel's FIB (`bpf_fib_lookup`) as the anchor,
//! all in one harness: a namespace of the bench's own with one veth end, `bc0`, the ingress
//! of every test run and the egress of every nexthop (see [`lab`]).
//!
//! For each engine and each table size (random, Internet-shaped, see [`table`]; IPv6 in the
//! same share of every size as in the largest):
//!
//! 1. **Route programming**: the routes go in through the agent's own path, `Fib::set_route`
//!    into a `Batch`, then `Datapath::apply` (kernel engine: the agent's `RouteWriter` writes
//!    the batch's kernel routes), in batches of `--batch` routes; both are timed separately,
//!    IPv4 then IPv6. At the end, the same for `remove_route`. The FIB reserves room for the
//!    table first, as the daemon does with `datapath.expected_ipv4_routes`. The program is
//!    attached to `bc0` (`Datapath::attach`) before the routes go in, as when BGP feeds a
//!    running agent; `--cold-start` attaches after them (a starting agent's static routes).
//! 2. **Memory** with the table in: each map's kernel memory (`memlock` in the fdinfo of the
//!    program's maps), the process's RSS change, the engine's bookkeeping.
//! 3. **Per-packet cost** of the XDP program with `BPF_PROG_TEST_RUN`, whose `duration` the
//!    kernel measures around the program runs only (not the syscall, not the copies):
//!    - *spread*: `--destinations` frames, each to an address inside a random prefix of the
//!      table, each run once (`repeat: 1`): lookups all over the table, caches cold-ish;
//!    - *hot*: one destination, many runs per call: the cache-hot best case. Not one call of
//!      `repeat: 1_000_000`: the kernel repeats a test on the *same* buffer and the program
//!      decrements the TTL in it, so a TTL-64 frame is forwarded 63 times and the other 999,937
//!      runs take the TTL-expired exit (measured: 43 ns/run, `passed-ttl` 999,937, action
//!      XDP_PASS). Hence a TTL-255 frame, at most 254 runs per call, and calls of two lengths
//!      whose difference cancels the fixed cost of a call (see [`packets::hot`]). The verdict counters
//!      confirm that every run was forwarded;
//!    - *hot r1* and *floor* (an ARP frame, the shortest path), `repeat: 1`: calibration. Every
//!      `repeat: 1` number includes the kernel's timer overhead (two clock reads) that floor
//!      bounds, so spread − hot r1 is what the table's size costs in cache misses.
//!
//!    Both families, each with its spread, hot r1 and hot. Every IP frame must come back
//!    `XDP_REDIRECT` (four ECMP groups of two resolved nexthops on `bc0`; test runs never
//!    transmit): failures are counted and the first ones printed. `bc0`'s `INTERFACES` record
//!    carries the MAC the probes are addressed to;
//!    - *rpf loose / strict* ([`rpf`]): IPv4 spread and hot again with the ingress interface's
//!      reverse-path filter on, the probes' source routed through it (the accept path).
//! 4. **Single-route updates** at the largest table ([`updates`]): p50/p99 of one-route
//!    batches (add, change, remove) per family.
//!
//! Results go to stdout as tables (with the machine and command, to paste into BENCHMARKS.md)
//! and with `--json FILE` as JSON too, `--plot FILE.svg` as a chart. `--quick` is a smoke run
//! (CI): small tables, < 30 s.

mod chart;
mod lab;
mod latency;
mod memory;
mod packets;
mod probes;
mod programming;
pub mod report;
mod rpf;
pub mod sys;
pub mod table;
mod tables;
mod ticks;
mod updates;
mod xdp_read;

use std::{
    collections::BTreeSet,
    io::Write,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use aya::programs::xdp::XdpMode;
use rand::{SeedableRng, rngs::SmallRng};
use router_agent::{
    datapath::{Datapath, DatapathOptions, DxrSizes},
    fib::{Batch, Fib, FibLimits, LinkState, NexthopKey, RouteTarget},
    netlink::RouteWriter,
};
use router_common::{LookupEngine, RpfMode};

use lab::Lab;
use packets::{XDP_PASS, XDP_REDIRECT, frames, hot, repeat, series};
use probes::Probes;
use programming::{install, remove};
use report::{FamilyPackets, Memory, Packets, Programming, Report, Run, Settings};
use sys::{Machine, Rss};
use table::Table;

/// The nexthops' MAC (the egress link's own is the ingress MAC).
const EGRESS_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xee, 0x01];
/// `bc0`'s MAC, which the probes are addressed to (`table::INGRESS_DST_MAC`). The nexthops'
/// MAC too: the hot measurement reruns the frame the program rewrote, which must still pass
/// the program's check that a frame is addressed to the interface.
const INGRESS_MAC: [u8; 6] = table::INGRESS_DST_MAC;
/// Sources of the probes; the RPF measurements give the IPv4 one a route.
const PROBE_SRC_V4: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
const PROBE_SRC_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 1);
/// ECMP groups per family, and nexthops per group.
const GROUPS: usize = 4;
const GROUP_SIZE: usize = 2;

/// Destinations of the warm measurement: DIR-24-8 and DXR read one to five lines of the table
/// a lookup, so that these destinations' lines fit in the L2 of any current server core (this
/// machine's: 2 MiB), where a whole table does not. The trie's and the kernel's lookups read
/// more, and some of theirs do not stay.
pub const WARM_DESTINATIONS: usize = 1024;

/// The hot measurement's frames: TTL 255, so that each is forwarded 254 times in a row before
/// its TTL, decremented in place at each run, expires.
const HOT_TTL: u8 = 255;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// BPF LPM trie for IPv4 and IPv6.
    Lpm,
    /// DIR-24-8 for IPv4, the LPM trie for IPv6.
    Dir24,
    /// bpf_fib_lookup: the kernel's FIB, holding the same table (the anchor).
    Kernel,
    /// DXR for both families: a direct table plus sorted range blocks.
    Dxr,
}

impl Engine {
    fn lookup(self) -> LookupEngine {
        match self {
            Engine::Lpm => LookupEngine::LpmTrie,
            Engine::Dir24 => LookupEngine::Dir24,
            Engine::Kernel => LookupEngine::Kernel,
            Engine::Dxr => LookupEngine::Dxr,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Engine::Lpm => "lpm-trie",
            Engine::Dir24 => "dir-24-8",
            Engine::Kernel => "kernel",
            Engine::Dxr => "dxr",
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// IPv4 table sizes, comma-separated [default: 1,10000,1000000; --quick: 1,1000,20000].
    #[arg(long, value_delimiter = ',')]
    routes: Option<Vec<usize>>,
    /// IPv6 routes of the largest table; the smaller ones get the same share of their IPv4
    /// size (at least 1) [default: 200000; --quick: 4000].
    #[arg(long)]
    v6_routes: Option<usize>,
    /// Destinations of the spread measurement per family, each run once [default: 65536;
    /// --quick: 4096].
    #[arg(long)]
    destinations: Option<usize>,
    /// Call pairs of the hot measurement (254 + 127 runs each; a call with more than one run
    /// costs ~20-60 ms of RCU grace periods in the kernel) [default: 40; --quick: 3].
    #[arg(long)]
    hot_pairs: Option<u32>,
    /// Single-route updates per kind (add, change, remove) and family at the largest table
    /// [default: 10000; --quick: 500].
    #[arg(long)]
    update_ops: Option<usize>,
    /// Routes per FIB batch (default: the daemon's, `MAX_BGP_BATCH_OPS`).
    #[arg(long, default_value_t = router_agent::daemon::MAX_BGP_BATCH_OPS)]
    batch: usize,
    /// Engines to measure, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "lpm,dir24,dxr,kernel"
    )]
    engines: Vec<Engine>,
    /// Seed of the tables and destinations (same seed, same tables).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Install the table before attaching the program (a starting agent's static routes; an
    /// engine may bulk-load then) instead of after (BGP into a running agent).
    #[arg(long)]
    cold_start: bool,
    /// Small sizes, for a smoke run (CI).
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to this file (`-`: to stdout, the tables then go to
    /// stderr).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw ns/packet (spread p50 - floor) per engine, family and table size as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Load the program with its debug events on (`[datapath] log = "debug"`), to measure
    /// what they cost; the events are read and discarded after every call.
    #[arg(long)]
    xdp_log: bool,
}

impl Args {
    fn settings(&self) -> Settings {
        let pick = |given: Option<usize>, full: usize, quick: usize| {
            given.unwrap_or(if self.quick { quick } else { full })
        };
        Settings {
            engines: self.engines.iter().map(|e| e.name()).collect(),
            v4_routes: self.routes.clone().unwrap_or_else(|| {
                if self.quick {
                    vec![1, 1_000, 20_000]
                } else {
                    vec![1, 10_000, 1_000_000]
                }
            }),
            v6_routes: pick(self.v6_routes, 200_000, 4_000),
            destinations: pick(self.destinations, 65_536, 4_096),
            update_ops: pick(self.update_ops, 10_000, 500),
            hot_pairs: self.hot_pairs.unwrap_or(if self.quick { 3 } else { 40 }),
            hot_repeat: [packets::HOT_LONG, packets::HOT_SHORT],
            batch_routes: self.batch.max(1),
            seed: self.seed,
            cold_start: self.cold_start,
            xdp_log: self.xdp_log,
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench cost loads XDP programs and BPF maps: run it as root");
    }
    let settings = args.settings();
    ensure!(
        !settings.v4_routes.is_empty() && settings.v4_routes.iter().all(|&n| n > 0),
        "--routes needs table sizes of at least 1"
    );
    ensure!(
        settings.destinations > 0,
        "--destinations must be at least 1"
    );
    let json_to_stdout = args.json.as_deref() == Some(std::path::Path::new("-"));
    let mut out: Box<dyn Write> = if json_to_stdout {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };

    let machine = Machine::probe();
    let command = format!(
        "{} {}",
        if cfg!(debug_assertions) {
            "cargo xtask"
        } else {
            "cargo run --release -p xtask --"
        },
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    report::write_header(&mut out, &machine, &command, &settings)?;
    out.flush()?;

    let (v4_vias, v6_vias) = vias();
    let lab = Lab::create(&[v4_vias, v6_vias].concat())?;
    let started = Instant::now();
    let mut rng = SmallRng::seed_from_u64(settings.seed);
    let largest = *settings.v4_routes.iter().max().expect("not empty");
    let mut runs = Vec::new();
    for &v4_routes in &settings.v4_routes {
        let v6_routes = if v4_routes == largest || settings.v6_routes == 0 {
            settings.v6_routes
        } else {
            (v4_routes * settings.v6_routes / largest).max(1)
        };
        // Tables and frames exist before any measurement starts, so that they are not in the
        // RSS deltas, and every engine gets the same ones.
        let table = Table::generate(&mut rng, v4_routes, v6_routes);
        let probes = Probes::new(&table, &mut rng, settings.destinations);
        let update_seed = (v4_routes == largest).then_some(settings.seed ^ 0x00bd_a7e5);
        for &engine in &args.engines {
            eprintln!(
                "bench cost: {}, {v4_routes} IPv4 + {v6_routes} IPv6 routes...",
                engine.name()
            );
            let run = measure(engine, &lab, &table, &probes, &settings, update_seed)
                .with_context(|| format!("{} with {v4_routes} routes", engine.name()))?;
            runs.push(run);
        }
    }

    let read_latency = {
        let engine = args.engines[0];
        eprintln!("bench cost: memory read latency at the spread's pace...");
        let mut bench = Bench::load(engine, &lab, 1, 1, settings.xdp_log)?;
        bench.attach()?;
        latency::measure(bench.datapath.program_mut(), lab.ifindex, &table::arp())
            .context("memory read latency")?
    };

    let report = Report {
        machine,
        command,
        settings,
        runs,
        read_latency,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    tables::write_tables(&mut out, &report)?;
    out.flush()?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        if json_to_stdout {
            println!("{json}");
        } else {
            std::fs::write(path, json + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if let Some(path) = &args.plot {
        chart::plot(path, &report)?;
    }
    Ok(())
}

/// The IPv4 and IPv6 gateways of the nexthops, on `bc0`.
fn vias() -> (Vec<IpAddr>, Vec<IpAddr>) {
    let v4 = (1..=GROUPS * GROUP_SIZE)
        .map(|n| IpAddr::V4(Ipv4Addr::new(192, 0, 2, n as u8)))
        .collect();
    let v6 = (1..=GROUPS * GROUP_SIZE)
        .map(|n| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, n as u16)))
        .collect();
    (v4, v6)
}

/// A loaded datapath and the FIB that programs it, with the link, neighbors and the nexthop
/// sets routes use.
struct Bench {
    datapath: Datapath,
    fib: Fib,
    /// Route `i` of a family goes to group `i % GROUPS`.
    v4_targets: Vec<RouteTarget>,
    v6_targets: Vec<RouteTarget>,
    /// `bc0`: ingress of the test runs, egress of every nexthop.
    ifindex: u32,
    /// The kernel engine's: the agent's netlink writer into the kernel FIB.
    kernel: Option<RouteWriter>,
}

impl Bench {
    /// `v4_routes`, `v6_routes`: the table, which the FIB reserves room for, as the daemon does with
    /// `datapath.expected_ipv4_routes`.
    fn load(
        engine: Engine,
        lab: &Lab,
        v4_routes: usize,
        v6_routes: usize,
        xdp_log: bool,
    ) -> Result<Self> {
        let ifindex = lab.ifindex;
        let mut options = DatapathOptions::new(engine.lookup(), lab.pin_dir());
        options.flow_hash_seed = 0x5eed;
        // The DXR arenas sized for the table, as the daemon sizes them from its config.
        options.dxr = DxrSizes::for_routes(v4_routes, v6_routes);
        options.xdp_log = xdp_log;
        let mut datapath = Datapath::load(options)?;
        *packets::XDP_LOG.lock().expect("not poisoned") = datapath.xdp_log()?;
        datapath.add_egress_port(ifindex)?;
        datapath.set_interface(ifindex, rpf::ingress(RpfMode::Off))?;
        let mut fib = Fib::new(FibLimits::default());
        fib.reserve_routes(v4_routes, v6_routes);
        let mut batch = Batch::default();
        let link = LinkState {
            mac: EGRESS_MAC,
            mtu: 1500,
            up: true,
        };
        fib.update_link(&mut batch, ifindex, Some(link));
        // IPv4 routes via IPv4 gateways, IPv6 routes via IPv6 gateways; all resolved.
        let (v4_vias, v6_vias) = vias();
        for via in v4_vias.iter().chain(&v6_vias) {
            fib.update_neighbor(&mut batch, ifindex, *via, Some(INGRESS_MAC));
        }
        datapath
            .apply(&batch)
            .context("applying links and neighbors")?;
        let targets = |vias: &[IpAddr]| -> Vec<RouteTarget> {
            vias.chunks(GROUP_SIZE)
                .map(|group| {
                    let keys: BTreeSet<NexthopKey> = group
                        .iter()
                        .map(|&via| NexthopKey::host(via, ifindex))
                        .collect();
                    RouteTarget::Via(keys)
                })
                .collect()
        };
        let kernel = match engine {
            Engine::Kernel => Some(RouteWriter::open()?),
            _ => None,
        };
        Ok(Self {
            datapath,
            fib,
            v4_targets: targets(&v4_vias),
            v6_targets: targets(&v6_vias),
            ifindex,
            kernel,
        })
    }

    fn attach(&mut self) -> Result<()> {
        self.datapath
            .attach(lab::DEVICE, self.ifindex, XdpMode::Driver)
    }

    /// What the agent does with a batch: the maps, then (kernel engine) the kernel FIB.
    fn apply(&mut self, batch: &Batch) -> Result<()> {
        self.datapath.apply(batch)?;
        if let Some(writer) = &mut self.kernel {
            lab::write_kernel_routes(writer, batch)?;
        }
        Ok(())
    }
}

/// Load, install, measure, remove: one engine with one table. `update_seed`: measure
/// single-route updates too, with prefixes drawn from this seed.
fn measure(
    engine: Engine,
    lab: &Lab,
    table: &Table,
    probes: &Probes,
    settings: &Settings,
    update_seed: Option<u64>,
) -> Result<Run> {
    sys::trim_heap();
    let rss_before = Rss::now()?;
    let kernel_before = sys::kernel_memory()?;

    let started = Instant::now();
    let mut bench = Bench::load(
        engine,
        lab,
        table.v4.len(),
        table.v6.len(),
        settings.xdp_log,
    )?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    // Attached as the agent attaches (pinned link), before the routes by default: they then go
    // in as BGP's do into a running agent, readers possibly in the tables. `--cold-start`:
    // after them, as the static routes of a starting agent (an engine may bulk-load then).
    // The peer of bc0 sends nothing: the program sees the test runs only.
    if !settings.cold_start {
        bench.attach()?;
    }

    let batch = settings.batch_routes;
    let install = Programming::new(
        install(&mut bench, &table.v4, false, batch).context("installing IPv4")?,
        install(&mut bench, &table.v6, true, batch).context("installing IPv6")?,
    );
    ensure!(
        bench.fib.route_count() == table.routes(),
        "the FIB holds {} routes, {} were installed",
        bench.fib.route_count(),
        table.routes()
    );

    if settings.cold_start {
        bench.attach()?;
    }

    // Memory with the full table in, before anything else allocates.
    sys::trim_heap();
    let rss_after = Rss::now()?;
    let kernel_after = sys::kernel_memory()?;
    let memory = memory::measure(&mut bench, engine, table, (rss_before, rss_after))?;
    let memory = Memory {
        meminfo_delta_bytes: kernel_after as i64 - kernel_before as i64,
        ..memory
    };

    let ingress = bench.ifindex;
    let datapath = &mut bench.datapath;
    let floor = series(
        datapath,
        ingress,
        repeat(&probes.arp, probes.v4.len()),
        XDP_PASS,
    )?;
    let v4 = family_packets(
        datapath,
        ingress,
        &probes.v4,
        &probes.hot_v4,
        &floor,
        settings,
    )?;
    let v6 = match &probes.hot_v6 {
        Some(hot_v6) if !table.v6.is_empty() => Some(family_packets(
            datapath, ingress, &probes.v6, hot_v6, &floor, settings,
        )?),
        _ => None,
    };
    let packets = Packets { floor, v4, v6 };

    // The kernel engine's reverse-path check reads the kernel FIB: not this bench's concern.
    let rpf = if engine == Engine::Kernel {
        Vec::new()
    } else {
        rpf::rpf_packets(&mut bench, probes, settings)?
    };
    let updates = match update_seed {
        Some(seed) => Some(
            updates::measure(&mut bench, table, settings.update_ops, seed)
                .context("single-route updates")?,
        ),
        None => None,
    };

    // DXR: how often a write waited for a quarantined block (install and updates).
    let quarantine_waits = bench.datapath.dxr().map(|dxr| dxr.quarantine_waits());
    let degraded_after_updates = bench.datapath.dxr().map(|dxr| dxr.degraded_chunks());

    let remove = Programming::new(
        remove(&mut bench, &table.v4, batch).context("removing IPv4")?,
        remove(&mut bench, &table.v6, batch).context("removing IPv6")?,
    );
    ensure!(
        bench.fib.route_count() == 0,
        "routes left in the FIB after removal"
    );
    // No route left: every destination must go to the kernel now.
    let leftover = series(
        &mut bench.datapath,
        ingress,
        frames(&probes.v4).chain(frames(&probes.v6)),
        XDP_PASS,
    )?;
    let kernel_routes_after_remove = match engine {
        Engine::Kernel => lab::kernel_route_count(&lab.ns)?,
        _ => 0,
    };

    // Free the maps now, and wait until the kernel did (it frees them asynchronously: RCU, work
    // queues, a big trie takes a while), so that the next run's baseline does not include them.
    bench.datapath.detach_and_unpin(&[lab::DEVICE.to_owned()])?;
    sys::wait_kernel_memory_below(kernel_before + 16 * 1024 * 1024, Duration::from_secs(10))?;

    Ok(Run {
        engine: engine.name(),
        v4_routes: table.v4.len(),
        v6_routes: table.v6.len(),
        v4_lengths: table.v4_lengths().to_vec(),
        load_ms,
        install,
        packets,
        rpf,
        memory,
        updates,
        quarantine_waits,
        degraded_after_updates,
        remove,
        forwarded_after_remove: leftover.failures,
        kernel_routes_after_remove,
    })
}

/// Spread, hot r1 and hot of one family.
fn family_packets(
    datapath: &mut Datapath,
    ingress: u32,
    probes: &[(IpAddr, Vec<u8>)],
    hot_frame: &[u8],
    floor: &report::Series,
    settings: &Settings,
) -> Result<FamilyPackets> {
    let spread = series(datapath, ingress, frames(probes), XDP_REDIRECT)?;
    let active = &probes[..WARM_DESTINATIONS.min(probes.len())];
    series(datapath, ingress, frames(active), XDP_REDIRECT)?;
    let warm = series(datapath, ingress, frames(active), XDP_REDIRECT)?;
    let hot_repeat1 = series(
        datapath,
        ingress,
        repeat(&probes[0].1, probes.len()),
        XDP_REDIRECT,
    )?;
    let hot = hot(datapath, ingress, hot_frame, settings.hot_pairs)?;
    Ok(FamilyPackets {
        spread_p50_over_floor_ns: spread.p50_ns as i64 - floor.p50_ns as i64,
        spread,
        warm_p50_over_floor_ns: warm.p50_ns as i64 - floor.p50_ns as i64,
        warm,
        hot_repeat1,
        hot,
    })
}
