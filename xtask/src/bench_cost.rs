//! `cargo run --release -p xtask -- bench cost`: what a packet, a route and a table cost, for
//! the lookup engines that keep their own routes (LPM trie, DIR-24-8). The kernel engine
//! (`bpf_fib_lookup`) needs routes in the kernel's FIB and is measured by `bench datapath`.
//!
//! For each engine and each table size (random, Internet-shaped, see [`table`]):
//!
//! 1. **Route programming**: the routes go in through the agent's own path, `Fib::set_route`
//!    into a `Batch`, then `Datapath::apply`, in batches of `--batch` routes; both are timed
//!    separately, IPv4 then IPv6. At the end, the same for `remove_route`. The FIB reserves
//!    room for the table first, as the daemon does with `datapath.expected_ipv4_routes`.
//! 2. **Memory** with the table in: each map's kernel memory (`memlock` in the fdinfo of the
//!    program's maps), the process's RSS change, `Datapath::dir24_bookkeeping_bytes()`.
//! 3. **Per-packet cost** of the XDP program with `BPF_PROG_TEST_RUN`, whose `duration` the
//!    kernel measures around the program runs only (not the syscall, not the copies):
//!    - *spread*: `--destinations` frames, each to an address inside a random prefix of the
//!      table, each run once (`repeat: 1`): lookups all over the table, caches cold-ish;
//!    - *hot*: one destination, many runs per call: the cache-hot best case. Not one call of
//!      `repeat: 1_000_000`: the kernel repeats a test on the *same* buffer and the program
//!      decrements the TTL in it, so a TTL-64 frame is forwarded 63 times and the other 999,937
//!      runs take the TTL-expired exit (measured: 43 ns/run, `passed-ttl` 999,937, action
//!      XDP_PASS). Hence a TTL-255 frame, at most 254 runs per call, and calls of two lengths
//!      whose difference cancels the fixed cost of a call (see [`hot`]). The verdict counters
//!      confirm that every run was forwarded;
//!    - *hot r1* and *floor* (an ARP frame, the shortest path), `repeat: 1`: calibration. Every
//!      `repeat: 1` number includes the kernel's timer overhead (two clock reads) that floor
//!      bounds, so spread − hot r1 is what the table's size costs in cache misses.
//!
//!    Every IP frame must come back `XDP_REDIRECT` (four ECMP groups of two resolved nexthops on
//!    `lo`, which the egress devmap accepts; test runs never transmit): failures are counted and
//!    the first ones printed. `lo` is the ingress interface too: its `INTERFACES` record carries
//!    the MAC the probes are addressed to;
//!    - *rpf loose / strict* ([`rpf`]): IPv4 spread and hot again with the ingress interface's
//!      reverse-path filter on, the probes' source routed through it (the accept path).
//!
//! Results go to stdout as tables (with the machine and command, to paste into BENCHMARKS.md)
//! and with `--json FILE` as JSON too. `--quick` is a smoke run (CI): small tables, < 30 s.

pub mod report;
mod rpf;
pub mod sys;
pub mod table;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use ipnet::IpNet;
use rand::{SeedableRng, rngs::SmallRng};
use router_agent::{
    datapath::{Datapath, DatapathOptions, xdp_log::XdpLog},
    fib::{Batch, Fib, FibLimits, LinkState, NexthopKey, RouteTarget, Source},
};
use router_common::{LookupEngine, RpfMode, Verdict, map_names};

use report::{Hot, Memory, Packets, Phase, Programming, Report, Run, Series, Settings};
use sys::{Machine, Rss};
use table::Table;

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

/// Egress interface of every nexthop: `lo` exists everywhere and the devmap accepts it. It is
/// the ingress interface too (`BPF_PROG_TEST_RUN` runs XDP as if on the loopback).
const EGRESS: u32 = 1;
const EGRESS_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xee, 0x01];
/// The ingress interface's MAC, which the probes are addressed to (`table::INGRESS_DST_MAC`).
/// The nexthops' MAC too: the hot measurement reruns the frame the program rewrote, which
/// must still pass the program's check that a frame is addressed to the interface.
const INGRESS_MAC: [u8; 6] = table::INGRESS_DST_MAC;
/// Source of the IPv4 probes; the RPF measurements give it a route.
const PROBE_SRC_V4: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
/// ECMP groups per family, and nexthops per group.
const GROUPS: usize = 4;
const GROUP_SIZE: usize = 2;

/// The hot measurement's frame: TTL 255, so that it is forwarded 254 times in a row before
/// its TTL, decremented in place at each run, expires.
const HOT_TTL: u8 = 255;
/// Program runs of the hot measurement's long and short calls (see [`hot`]).
const HOT_LONG: u32 = 254;
const HOT_SHORT: u32 = 127;

/// Never used: the bench pins nothing.
const PIN_DIR: &str = "/sys/fs/bpf/hostrouter-bench-cost";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// BPF LPM trie for IPv4 and IPv6.
    Lpm,
    /// DIR-24-8 for IPv4, the LPM trie for IPv6.
    Dir24,
}

impl Engine {
    fn lookup(self) -> LookupEngine {
        match self {
            Engine::Lpm => LookupEngine::LpmTrie,
            Engine::Dir24 => LookupEngine::Dir24,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Engine::Lpm => "lpm-trie",
            Engine::Dir24 => "dir-24-8",
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// IPv4 table sizes, comma-separated [default: 1,10000,1000000; --quick: 1,1000,20000].
    #[arg(long, value_delimiter = ',')]
    routes: Option<Vec<usize>>,
    /// IPv6 routes added to the largest table [default: 200000; --quick: 4000].
    #[arg(long)]
    v6_routes: Option<usize>,
    /// Destinations of the spread measurement, each run once [default: 65536; --quick: 4096].
    #[arg(long)]
    destinations: Option<usize>,
    /// Call pairs of the hot measurement (254 + 127 runs each; a call with more than one run
    /// costs ~20-60 ms of RCU grace periods in the kernel) [default: 40; --quick: 3].
    #[arg(long)]
    hot_pairs: Option<u32>,
    /// Routes per FIB batch (default: the daemon's, `MAX_BGP_BATCH_OPS`).
    #[arg(long, default_value_t = router_agent::daemon::MAX_BGP_BATCH_OPS)]
    batch: usize,
    /// Engines to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "lpm,dir24")]
    engines: Vec<Engine>,
    /// Seed of the tables and destinations (same seed, same tables).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Small sizes, for a smoke run (CI).
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to this file (`-`: to stdout, the tables then go to
    /// stderr).
    #[arg(long)]
    json: Option<PathBuf>,
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
            hot_pairs: self.hot_pairs.unwrap_or(if self.quick { 3 } else { 40 }),
            hot_repeat: [HOT_LONG, HOT_SHORT],
            batch_routes: self.batch.max(1),
            seed: self.seed,
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

    let started = Instant::now();
    let mut rng = SmallRng::seed_from_u64(settings.seed);
    let largest = *settings.v4_routes.iter().max().expect("not empty");
    let mut runs = Vec::new();
    for &v4_routes in &settings.v4_routes {
        let v6_routes = if v4_routes == largest {
            settings.v6_routes
        } else {
            0
        };
        // Tables and frames exist before any measurement starts, so that they are not in the
        // RSS deltas, and both engines get the same ones.
        let table = Table::generate(&mut rng, v4_routes, v6_routes);
        let probes = Probes::new(&table, &mut rng, settings.destinations);
        for &engine in &args.engines {
            eprintln!(
                "bench cost: {}, {v4_routes} IPv4 + {v6_routes} IPv6 routes...",
                engine.name()
            );
            let run = measure(engine, &table, &probes, &settings)
                .with_context(|| format!("{} with {v4_routes} routes", engine.name()))?;
            runs.push(run);
        }
    }

    let report = Report {
        machine,
        command,
        settings,
        runs,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    report::write_tables(&mut out, &report)?;
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
    Ok(())
}

/// The frames the per-packet measurements run, built once per table.
struct Probes {
    /// One frame per destination: (destination, frame), TTL 64, source ports varied so that
    /// flows spread over the ECMP buckets.
    v4: Vec<(IpAddr, Vec<u8>)>,
    v6: Vec<(IpAddr, Vec<u8>)>,
    /// The first IPv4 destination, TTL 255, for the hot measurement.
    hot: Vec<u8>,
    arp: Vec<u8>,
}

impl Probes {
    fn new(table: &Table, rng: &mut SmallRng, count: usize) -> Self {
        let src4 = PROBE_SRC_V4;
        let src6: Ipv6Addr = "2001:db8:5::1".parse().expect("literal");
        let ports = |i: usize| (1024 + (i % 50_000) as u16, 443);
        let v4: Vec<_> = table
            .v4_destinations(rng, count)
            .into_iter()
            .enumerate()
            .map(|(i, dst)| (dst.into(), table::ipv4_udp(src4, dst, 64, ports(i))))
            .collect();
        let v6 = table
            .v6_destinations(rng, count)
            .into_iter()
            .enumerate()
            .map(|(i, dst)| (dst.into(), table::ipv6_udp(src6, dst, 64, ports(i))))
            .collect();
        let hot = match v4.first().map(|(dst, _)| *dst) {
            Some(IpAddr::V4(dst)) => table::ipv4_udp(src4, dst, HOT_TTL, ports(0)),
            _ => unreachable!("tables hold at least one IPv4 route"),
        };
        Self {
            v4,
            v6,
            hot,
            arp: table::arp(),
        }
    }
}

/// A loaded datapath and the FIB that programs it, with the link, neighbors and the nexthop
/// sets routes use.
struct Bench {
    datapath: Datapath,
    fib: Fib,
    /// Route `i` of a family goes to group `i % GROUPS`.
    v4_targets: Vec<RouteTarget>,
    v6_targets: Vec<RouteTarget>,
}

impl Bench {
    /// `v4_routes`, `v6_routes`: the table, which the FIB reserves room for, as the daemon does with
    /// `datapath.expected_ipv4_routes`.
    fn load(engine: Engine, v4_routes: usize, v6_routes: usize, xdp_log: bool) -> Result<Self> {
        let mut options = DatapathOptions::new(engine.lookup(), PIN_DIR);
        options.flow_hash_seed = 0x5eed;
        options.xdp_log = xdp_log;
        let mut datapath = Datapath::load(options)?;
        *XDP_LOG.lock().expect("not poisoned") = datapath.xdp_log()?;
        datapath.add_egress_port(EGRESS)?;
        datapath.set_interface(EGRESS, rpf::ingress(RpfMode::Off))?;
        let mut fib = Fib::new(FibLimits::default());
        fib.reserve_routes(v4_routes, v6_routes);
        let mut batch = Batch::default();
        let link = LinkState {
            mac: EGRESS_MAC,
            mtu: 1500,
            up: true,
        };
        fib.update_link(&mut batch, EGRESS, Some(link));
        // IPv4 routes via IPv4 gateways, IPv6 routes via IPv6 gateways; all resolved.
        let v4_vias: Vec<IpAddr> = (1..=GROUPS * GROUP_SIZE)
            .map(|n| IpAddr::V4(Ipv4Addr::new(192, 0, 2, n as u8)))
            .collect();
        let v6_vias: Vec<IpAddr> = (1..=GROUPS * GROUP_SIZE)
            .map(|n| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, n as u16)))
            .collect();
        for via in v4_vias.iter().chain(&v6_vias) {
            fib.update_neighbor(&mut batch, EGRESS, *via, Some(INGRESS_MAC));
        }
        datapath
            .apply(&batch)
            .context("applying links and neighbors")?;
        let targets = |vias: &[IpAddr]| -> Vec<RouteTarget> {
            vias.chunks(GROUP_SIZE)
                .map(|group| {
                    let keys: BTreeSet<NexthopKey> = group
                        .iter()
                        .map(|&via| NexthopKey::host(via, EGRESS))
                        .collect();
                    RouteTarget::Via(keys)
                })
                .collect()
        };
        Ok(Self {
            datapath,
            fib,
            v4_targets: targets(&v4_vias),
            v6_targets: targets(&v6_vias),
        })
    }
}

/// Load, install, measure, remove: one engine with one table.
fn measure(engine: Engine, table: &Table, probes: &Probes, settings: &Settings) -> Result<Run> {
    sys::trim_heap();
    let rss_before = Rss::now()?;
    let kernel_before = sys::kernel_memory()?;

    let started = Instant::now();
    let mut bench = Bench::load(engine, table.v4.len(), table.v6.len(), settings.xdp_log)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;

    let batch = settings.batch_routes;
    let Bench {
        datapath,
        fib,
        v4_targets,
        v6_targets,
    } = &mut bench;
    let install = Programming::new(
        install(fib, datapath, &table.v4, v4_targets, batch).context("installing IPv4")?,
        install(fib, datapath, &table.v6, v6_targets, batch).context("installing IPv6")?,
    );
    ensure!(
        fib.route_count() == table.routes(),
        "the FIB holds {} routes, {} were installed",
        fib.route_count(),
        table.routes()
    );

    // Memory with the full table in, before anything else allocates.
    sys::trim_heap();
    let rss_after = Rss::now()?;
    let kernel_after = sys::kernel_memory()?;
    let maps = sys::map_memory(datapath.program_mut())?;
    let is_route_map = |name: &str| {
        [
            map_names::ROUTES_V4,
            map_names::ROUTES_V6,
            map_names::DIR24_TBL24,
            map_names::DIR24_TBL8,
            map_names::DIR24_DEFAULT,
        ]
        .contains(&name)
    };
    let memory = Memory {
        kernel_maps_bytes: maps.iter().map(|m| m.memlock).sum(),
        route_maps_bytes: maps
            .iter()
            .filter(|m| is_route_map(&m.name))
            .map(|m| m.memlock)
            .sum(),
        program_bytes: u64::from(datapath.program_mut().info()?.memory_locked()?),
        maps,
        meminfo_delta_bytes: kernel_after as i64 - kernel_before as i64,
        rss_delta_bytes: rss_after.total as i64 - rss_before.total as i64,
        rss_anon_delta_bytes: rss_after.anon as i64 - rss_before.anon as i64,
        dir24_bookkeeping_bytes: datapath.dir24_bookkeeping_bytes(),
        dir24_tbl8_groups: if engine == Engine::Dir24 {
            table.tbl8_groups()
        } else {
            0
        },
        dir24_tbl8_capacity: if engine == Engine::Dir24 {
            router_common::MAX_DIR24_TBL8_GROUPS
        } else {
            0
        },
    };

    let packets = Packets {
        floor: series(datapath, repeat(&probes.arp, probes.v4.len()), XDP_PASS)?,
        v4_hot_repeat1: series(
            datapath,
            repeat(&probes.v4[0].1, probes.v4.len()),
            XDP_REDIRECT,
        )?,
        v4_spread: series(datapath, frames(&probes.v4), XDP_REDIRECT)?,
        v4_hot: hot(datapath, &probes.hot, settings.hot_pairs)?,
        v6_spread: if table.v6.is_empty() {
            None
        } else {
            Some(series(datapath, frames(&probes.v6), XDP_REDIRECT)?)
        },
    };

    let rpf = rpf::rpf_packets(&mut bench, probes, settings)?;
    let Bench {
        datapath,
        fib,
        v4_targets: _,
        v6_targets: _,
    } = &mut bench;

    let remove = Programming::new(
        remove(fib, datapath, &table.v4, batch).context("removing IPv4")?,
        remove(fib, datapath, &table.v6, batch).context("removing IPv6")?,
    );
    ensure!(
        fib.route_count() == 0,
        "routes left in the FIB after removal"
    );
    // No route left: every destination must go to the kernel now.
    let leftover = series(
        datapath,
        frames(&probes.v4).chain(frames(&probes.v6)),
        XDP_PASS,
    )?;

    // Free the maps now, and wait until the kernel did (it frees them asynchronously: RCU, work
    // queues, a big trie takes a while), so that the next run's baseline does not include them.
    drop(bench);
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
        remove,
        forwarded_after_remove: leftover.failures,
    })
}

/// Installs `prefixes` (route `i` to `targets[i % len]`) through the FIB and the datapath,
/// `batch` routes per `Batch`.
fn install<P: Copy + Into<IpNet>>(
    fib: &mut Fib,
    datapath: &mut Datapath,
    prefixes: &[P],
    targets: &[RouteTarget],
    batch: usize,
) -> Result<Phase> {
    let mut index = 0;
    program(datapath, prefixes, batch, |batch, prefix| {
        let target = targets[index % targets.len()].clone();
        index += 1;
        fib.set_route(batch, Source::Static, prefix, target)
            .with_context(|| format!("Fib::set_route {prefix}"))
    })
}

fn remove<P: Copy + Into<IpNet>>(
    fib: &mut Fib,
    datapath: &mut Datapath,
    prefixes: &[P],
    batch: usize,
) -> Result<Phase> {
    program(datapath, prefixes, batch, |batch, prefix| {
        fib.remove_route(batch, Source::Static, prefix);
        Ok(())
    })
}

/// Runs `change` on every prefix, `batch_routes` to a `Batch` that is then applied; times the
/// FIB part (`change`) and the datapath part (`apply`) apart.
fn program<P: Copy + Into<IpNet>>(
    datapath: &mut Datapath,
    prefixes: &[P],
    batch_routes: usize,
    mut change: impl FnMut(&mut Batch, IpNet) -> Result<()>,
) -> Result<Phase> {
    let (mut fib_time, mut apply_time) = (Duration::ZERO, Duration::ZERO);
    for chunk in prefixes.chunks(batch_routes) {
        let started = Instant::now();
        let mut batch = Batch::default();
        for &prefix in chunk {
            change(&mut batch, prefix.into())?;
        }
        let built = Instant::now();
        // The kernel mirror (`batch.kernel`) is the daemon's business, not measured here.
        datapath.apply(&batch)?;
        apply_time += built.elapsed();
        fib_time += built - started;
    }
    Ok(Phase::new(
        prefixes.len(),
        fib_time.as_secs_f64(),
        apply_time.as_secs_f64(),
    ))
}

/// With `--xdp-log`: the loaded program's debug events, read after every call so that the
/// ring buffer never fills (a full one makes an event cheaper than the real thing).
static XDP_LOG: std::sync::Mutex<Option<XdpLog>> = std::sync::Mutex::new(None);

/// One `BPF_PROG_TEST_RUN` call: (action, kernel-measured time per run).
fn test_run(program: &Xdp, frame: &[u8], repeat: u32) -> Result<(u32, Duration)> {
    let result = program
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::default()
        })
        .context("BPF_PROG_TEST_RUN")?;
    // Outside the kernel-timed duration.
    if let Some(log) = XDP_LOG.lock().expect("not poisoned").as_mut() {
        log.drain();
    }
    Ok((result.return_value, result.duration))
}

/// Verdict counter changes, by name, the ones that moved.
fn verdict_delta(before: &[u64], after: &[u64]) -> BTreeMap<&'static str, u64> {
    Verdict::ALL
        .iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (b, a))| a > b)
        .map(|(verdict, (b, a))| (verdict.name(), a - b))
        .collect()
}

/// (destination, frame) pairs, borrowed.
fn frames(probes: &[(IpAddr, Vec<u8>)]) -> impl Iterator<Item = (IpAddr, &[u8])> {
    probes.iter().map(|(dst, frame)| (*dst, frame.as_slice()))
}

/// The same frame `count` times (its destination is not reported).
fn repeat(frame: &[u8], count: usize) -> impl Iterator<Item = (IpAddr, &[u8])> {
    std::iter::repeat_n((IpAddr::from([0, 0, 0, 0]), frame), count)
}

/// Runs each frame once (`repeat: 1`); counts the runs whose action is not `expect`.
fn series<'a>(
    datapath: &mut Datapath,
    frames: impl Iterator<Item = (IpAddr, &'a [u8])>,
    expect: u32,
) -> Result<Series> {
    let before = datapath.verdict_counts()?;
    let program = datapath.program_mut();
    let mut times = Vec::new();
    let mut failed = Vec::new();
    let mut failures = 0;
    for (dst, frame) in frames {
        let (action, time) = test_run(program, frame, 1)?;
        times.push(time.as_nanos() as u64);
        if action != expect {
            failures += 1;
            if failed.len() < 5 {
                failed.push(format!("{dst}: action {action}"));
            }
        }
    }
    let verdicts = verdict_delta(&before, &datapath.verdict_counts()?);
    times.sort_unstable();
    let percentile = |p: f64| {
        times
            .get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Ok(Series {
        packets: times.len(),
        mean_ns: times.iter().sum::<u64>() as f64 / times.len().max(1) as f64,
        p50_ns: percentile(0.5),
        p99_ns: percentile(0.99),
        failures,
        failed,
        verdicts,
    })
}

/// One TTL-255 frame, in `pairs` pairs of calls of [`HOT_LONG`] and [`HOT_SHORT`] runs; each run
/// must be forwarded.
///
/// A call with `repeat > 1` switches the kernel's XDP dispatcher to the program and back (text
/// patching, RCU grace periods: the call takes tens of ms), and its first run is much slower than
/// the others (cold after the patching: µs). That fixed cost is inside the kernel's duration, so
/// a plain average over 254 runs overstates the steady state. The difference between a long and
/// a short call cancels it: (total of long − total of short) / (254 − 127) runs; the result is
/// the median over the pairs.
fn hot(datapath: &mut Datapath, frame: &[u8], pairs: u32) -> Result<Hot> {
    let before = datapath.verdict_counts()?;
    let program = datapath.program_mut();
    let mut slopes = Vec::new();
    let mut long_ns = 0.0;
    let mut failed_calls = 0;
    for _ in 0..pairs {
        let mut totals = [0.0; 2];
        for (repeat, total) in [HOT_LONG, HOT_SHORT].into_iter().zip(&mut totals) {
            let (action, time) = test_run(program, frame, repeat)?;
            // The kernel reports the call's time divided by `repeat` (rounded down).
            *total = time.as_nanos() as f64 * f64::from(repeat);
            if action != XDP_REDIRECT {
                failed_calls += 1;
            }
        }
        slopes.push((totals[0] - totals[1]) / f64::from(HOT_LONG - HOT_SHORT));
        long_ns += totals[0];
    }
    let verdicts = verdict_delta(&before, &datapath.verdict_counts()?);
    let packets = u64::from(pairs) * u64::from(HOT_LONG + HOT_SHORT);
    // The action is the last run's only: the counters tell about every run.
    let forwarded = verdicts
        .get(Verdict::Forwarded.name())
        .copied()
        .unwrap_or(0);
    // The median pair: a pair that a host preemption or an interrupt hit does not move it.
    slopes.sort_by(f64::total_cmp);
    Ok(Hot {
        packets,
        calls: 2 * pairs,
        ns: slopes.get(slopes.len() / 2).copied().unwrap_or(0.0),
        long_call_mean_ns: long_ns / (f64::from(pairs) * f64::from(HOT_LONG)).max(1.0),
        failed_calls,
        failures: packets.saturating_sub(forwarded),
        verdicts,
    })
}
