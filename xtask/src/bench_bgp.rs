//! `cargo xtask bench bgp`: BGP convergence and memory of hostrouter's router-agent against
//! BIRD 2 and FRR, fed the same full table in the same run.
//!
//! ```text
//!   sender ns: fast sender (this process) ──veth── dut ns: router-agent | bird | bgpd+zebra
//!   10.255.0.1, fd00:255::1, AS 65001            10.255.0.2, fd00:255::2, AS 65000
//! ```
//!
//! The table is the synthetic Internet-shaped one of `bench cost` (`bench_cost/table.rs`): by
//! default 1,000,000 IPv4 + 200,000 IPv6 prefixes. The sender (`sender.rs`) pre-encodes it as
//! UPDATEs with realistic, shared attributes (`feed.rs`), next hop = its own address on the
//! link, and, once the session is Established (from its side: the DUT's KEEPALIVE after the
//! OPENs), writes them as fast as the DUT reads, then End-of-RIB for both families.
//!
//! Each DUT runs in a fresh pair of namespaces, one after the other, and is polled (`dut.rs`)
//! until every route is both received (RIB) and installed (FIB: XDP maps for hostrouter, the
//! kernel for BIRD and FRR). Reported: seconds from Established to the last route in each, and
//! the DUT's peak resident memory (VmHWM, summed over its processes) per route. A DUT that does
//! not converge within `--timeout`, or drops the session, fails the run.

pub mod dut;
pub mod feed;
pub mod sender;

use std::{
    io::Write,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use ipnet::{Ipv4Net, Ipv6Net};
use rand::{SeedableRng, rngs::SmallRng};
use serde::Serialize;

use crate::{
    bench_cost::{
        report::{self, TextTable},
        sys::{self, Machine},
        table::Table,
    },
    bench_throughput::table::thousands,
};
use dut::{Dut, Kind, Memory};
use netns_lab::Namespace;
use sender::{SenderConfig, Session};

/// Namespaces, pin and scratch directories: `hrbb-<pid>-<role>`. Not `hrbgp`: that is
/// tests/bgp_two_tors.rs's, and each side's stale cleanup would remove the other's.
const TAG: &str = "hrbb";
const SENDER_ASN: u32 = 65001;
/// How long a DUT may take to stop before it is killed and the run fails.
const STOP_PATIENCE: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub struct Args {
    /// CI smoke run: 10,000 IPv4 + 2,000 IPv6 routes, every DUT, about a minute.
    #[arg(long)]
    quick: bool,
    /// IPv4 routes [default: 1,000,000; --quick: 10,000].
    #[arg(long)]
    v4_routes: Option<usize>,
    /// IPv6 routes [default: 200,000; --quick: 2,000].
    #[arg(long)]
    v6_routes: Option<usize>,
    /// DUTs, in order, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "hostrouter,bird,frr"
    )]
    duts: Vec<Kind>,
    /// Distinct path attribute sets the routes share [default: 4000; --quick: 400].
    #[arg(long)]
    attribute_sets: Option<usize>,
    /// Run router-agent under this command, e.g. `--agent-wrapper "heaptrack -o /tmp/agent"`
    /// for a heap profile (split on whitespace; the agent's command line follows it).
    #[arg(long)]
    agent_wrapper: Option<String>,
    /// Seconds a DUT may take to converge before the run fails [default: 900; --quick: 60].
    #[arg(long)]
    timeout: Option<u64>,
    /// Seed of the table and attributes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Close the session before stopping the DUT (stop s): it stops with the withdrawal of
    /// the whole table under way instead of with the table installed.
    #[arg(long)]
    close_before_stop: bool,
    /// router-agent's `datapath.engine`: auto picks DXR for a full table (the runs recorded
    /// at 60d56b0 and before pinned dir24: `--engine dir24` repeats them).
    #[arg(long, default_value = "auto", value_parser = ["auto", "lpm-trie", "dir24", "dxr", "kernel"])]
    engine: String,
}

/// The link between sender and DUT.
pub struct Link {
    pub sender_if: &'static str,
    pub dut_if: &'static str,
    pub sender_v4: Ipv4Addr,
    pub dut_v4: Ipv4Addr,
    pub sender_v6: Ipv6Addr,
    pub dut_v6: Ipv6Addr,
    pub sender_asn: u32,
}

impl Link {
    pub fn new() -> Self {
        Self {
            sender_if: "snd0",
            dut_if: "dut0",
            sender_v4: Ipv4Addr::new(10, 255, 0, 1),
            dut_v4: Ipv4Addr::new(10, 255, 0, 2),
            sender_v6: "fd00:255::1".parse().expect("valid"),
            dut_v6: "fd00:255::2".parse().expect("valid"),
            sender_asn: SENDER_ASN,
        }
    }

    pub fn v4_subnet(&self) -> Ipv4Net {
        Ipv4Net::new(self.sender_v4, 24).expect("valid").trunc()
    }

    pub fn v6_subnet(&self) -> Ipv6Net {
        Ipv6Net::new(self.sender_v6, 64).expect("valid").trunc()
    }
}

/// One DUT's run.
#[derive(Serialize)]
struct Outcome {
    dut: &'static str,
    fib_signal: &'static str,
    /// Established -> every route received.
    rib_s: f64,
    /// Established -> every route installed.
    fib_s: f64,
    /// Established -> the sender's last write returned (the DUT read the whole feed).
    sent_s: f64,
    /// Resident memory before the session.
    start: Memory,
    /// After convergence; `peak` is VmHWM.
    end: Memory,
    /// Largest RssAnon seen while polling (the kernel keeps no peak of it).
    max_anon: u64,
    /// Change of the kernel's own memory (unreclaimable slab + vmalloc, system-wide) from
    /// before the DUT started to convergence: the kernel FIB BIRD and FRR (and router-agent
    /// with `kernel_routes = all`) fill, router-agent's BPF maps.
    kernel_growth: i64,
    /// SIGTERM -> the DUT's processes exited, the session still up (a full stop: the
    /// routes it put in the kernel removed).
    stop_s: f64,
    routes: usize,
}

impl Outcome {
    fn peak_per_route(&self) -> f64 {
        self.end.peak as f64 / self.routes as f64
    }

    fn growth_per_route(&self) -> f64 {
        self.end.peak.saturating_sub(self.start.rss) as f64 / self.routes as f64
    }

    /// The DUT's own heap plus what it made the kernel hold, per route.
    fn anon_and_kernel_per_route(&self) -> f64 {
        (self.max_anon as i64 + self.kernel_growth) as f64 / self.routes as f64
    }
}

pub fn run(args: Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench bgp creates network namespaces and loads XDP programs: run it as root");
    }
    ensure!(!args.duts.is_empty(), "--duts needs at least one DUT");
    crate::ensure_bpffs()?;
    netns_lab::catch_interrupts();
    netns_lab::remove_stale_labs(&format!("{}-", TAG));

    let pick = |given: Option<usize>, full: usize, quick: usize| {
        given.unwrap_or(if args.quick { quick } else { full })
    };
    let v4_routes = pick(args.v4_routes, 1_000_000, 10_000);
    let v6_routes = pick(args.v6_routes, 200_000, 2_000);
    let attribute_sets = pick(args.attribute_sets, 4_000, 400);
    let timeout = Duration::from_secs(args.timeout.unwrap_or(if args.quick { 60 } else { 900 }));
    let agent = if args
        .duts
        .iter()
        .any(|k| matches!(k, Kind::Hostrouter | Kind::HostrouterKernel))
    {
        dut::Agent {
            binary: dut::agent_binary()?,
            wrapper: args
                .agent_wrapper
                .iter()
                .flat_map(|w| w.split_whitespace())
                .map(str::to_owned)
                .collect(),
            engine: args.engine.clone(),
        }
    } else {
        dut::Agent::default()
    };
    let link = Link::new();

    let started = Instant::now();
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut table = Table::generate(&mut rng, v4_routes, v6_routes);
    // Routes to or inside the link's own subnets would compete with the connected routes.
    let (v4_link, v6_link) = (link.v4_subnet(), link.v6_subnet());
    table.v4.retain(|p| !v4_link.contains(p));
    table.v6.retain(|p| !v6_link.contains(p));
    let feed = feed::build(
        &table,
        feed::Sender {
            asn: SENDER_ASN,
            next_hop_v4: link.sender_v4,
            next_hop_v6: link.sender_v6,
        },
        attribute_sets,
        args.seed,
    );
    let routes = feed.v4_routes + feed.v6_routes;
    let machine = Machine::probe();
    let command = format!(
        "cargo xtask bench bgp {}",
        std::env::args().skip(3).collect::<Vec<_>>().join(" ")
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "command: {}", command.trim_end())?;
    report::write_machine(&mut out, &machine)?;
    // The machine is shared: a busy start means noisy numbers.
    writeln!(out, "load average at start: {}", load_average())?;
    drop(out);
    println!(
        "feed: {} routes ({} IPv4 + {} IPv6), {} distinct attribute sets, mean AS path {:.2}, \
         {} UPDATEs, {:.1} MiB (built in {:.1} s)",
        thousands(routes),
        thousands(feed.v4_routes),
        thousands(feed.v6_routes),
        thousands(feed.attribute_sets),
        feed.mean_as_path,
        thousands(feed.messages),
        feed.bytes.len() as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    );
    println!();
    std::io::stdout().flush()?;

    let mut outcomes = Vec::new();
    for &kind in &args.duts {
        progress(&format!("{}: starting", kind.label()));
        let outcome = measure(
            kind,
            &link,
            &agent,
            &feed,
            routes,
            timeout,
            args.close_before_stop,
        )
        .with_context(|| format!("{} did not converge", kind.label()))?;
        progress(&format!(
            "{}: RIB {:.2} s, FIB {:.2} s, peak {:.1} MiB",
            kind.label(),
            outcome.rib_s,
            outcome.fib_s,
            outcome.end.peak as f64 / (1024.0 * 1024.0)
        ));
        outcomes.push(outcome);
    }
    print_results(&outcomes)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    }
    progress(&format!("done in {:.0} s", started.elapsed().as_secs_f64()));
    Ok(())
}

/// Namespaces and the veth between them, deleted on drop.
struct Topology {
    sender: Namespace,
    dut: Namespace,
}

impl Topology {
    fn create(link: &Link) -> Result<Self> {
        let pid = std::process::id();
        let sender = Namespace::create(&format!("{TAG}-{pid}-snd"))?;
        let dut = Namespace::create(&format!("{TAG}-{pid}-dut"))?;
        netns_lab::veth(
            (&sender, link.sender_if, [0x02, 0, 0, 0, 0x5e, 0x01]),
            (&dut, link.dut_if, [0x02, 0, 0, 0, 0xd0, 0x01]),
        )?;
        for (ns, ifname, v4, v6) in [
            (&sender, link.sender_if, link.sender_v4, link.sender_v6),
            (&dut, link.dut_if, link.dut_v4, link.dut_v6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname])?;
            // nodad: usable at once (the DUTs check next hops against connected subnets).
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"])?;
        }
        dut.sysctl("net.ipv4.ip_forward", "1")?;
        dut.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        Ok(Self { sender, dut })
    }
}

fn measure(
    kind: Kind,
    link: &Link,
    agent: &dut::Agent,
    feed: &feed::Feed,
    routes: usize,
    timeout: Duration,
    close_before_stop: bool,
) -> Result<Outcome> {
    let topology = Topology::create(link)?;
    let dir = std::env::temp_dir().join(format!("{TAG}-{}-{kind:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pin_dir = Path::new("/sys/fs/bpf").join(format!("{TAG}-{}", std::process::id()));
    let kernel_before = settled_kernel_memory()?;
    let mut dut = Dut::start(
        kind,
        &topology.dut,
        link,
        &dir,
        &pin_dir,
        agent,
        feed.v4_routes,
    )?;
    let result = converge(
        &mut dut,
        &topology,
        link,
        feed,
        routes,
        timeout,
        kernel_before,
    );
    // Stopped with the session up, as a host with a full table is (or just after it closed).
    let result = result.and_then(|(mut outcome, session)| {
        if close_before_stop {
            drop(session);
            // The DUT notices, and starts withdrawing.
            netns_lab::sleep(Duration::from_millis(300))?;
        }
        outcome.stop_s = dut.stop(STOP_PATIENCE)?.as_secs_f64();
        Ok(outcome)
    });
    match result {
        Ok(outcome) => {
            drop(dut);
            let _ = std::fs::remove_dir_all(&dir);
            Ok(outcome)
        }
        Err(err) => Err(err.context(format!("logs (kept in {}):\n{}", dir.display(), dut.logs()))),
    }
}

fn converge(
    dut: &mut Dut,
    topology: &Topology,
    link: &Link,
    feed: &feed::Feed,
    routes: usize,
    timeout: Duration,
    kernel_before: u64,
) -> Result<(Outcome, Session)> {
    let start = dut.memory()?;
    let config = SenderConfig {
        asn: link.sender_asn,
        router_id: link.sender_v4,
        remote: SocketAddr::new(IpAddr::V4(link.dut_v4), 179),
        graceful_restart: None,
    };
    let session = topology
        .sender
        .run_in(|| Session::establish(&config, Duration::from_secs(30)))
        .context("opening the session")?;
    let established = session.established_at;
    let deadline = established + timeout;
    let poll = match dut.kind {
        // The agent answers from its event loop; the others cost a process spawn per query.
        Kind::Hostrouter | Kind::HostrouterKernel => Duration::from_millis(100),
        Kind::Bird | Kind::Frr => Duration::from_millis(250),
    };
    let end_of_rib = feed::end_of_rib();
    let (mut rib_at, mut fib_at) = (None, None);
    let mut last = dut::Progress::default();
    let mut max_anon = start.anon;
    let mut unanswered: Option<anyhow::Error> = None;
    let sent_at = std::thread::scope(|scope| -> Result<Instant> {
        let sending = scope.spawn(|| -> Result<Instant> {
            session.send(&feed.bytes)?;
            session.send(&end_of_rib)?;
            Ok(Instant::now())
        });
        while rib_at.is_none() || fib_at.is_none() {
            netns_lab::sleep(poll)?;
            session.check()?;
            dut.check_running()?;
            if Instant::now() > deadline {
                bail!(
                    "not converged after {:.0} s: {} of {} routes received, {} installed{}",
                    timeout.as_secs_f64(),
                    last.rib,
                    routes,
                    last.fib,
                    unanswered
                        .as_ref()
                        .map(|err| format!("; last unanswered query: {err:#}"))
                        .unwrap_or_default()
                );
            }
            // A DUT busy with the feed may not answer in time (the agent's control socket
            // gives up after 10 s): that is not a failure, the deadline decides.
            match dut.progress() {
                Ok(progress) => last = progress,
                Err(err) => {
                    unanswered = Some(err);
                    continue;
                }
            }
            // After the answer: a busy DUT answers late, and what it says holds from then.
            let now = Instant::now();
            max_anon = max_anon.max(dut.memory()?.anon);
            if last.rib >= routes && rib_at.is_none() {
                rib_at = Some(now);
            }
            if last.fib >= routes && fib_at.is_none() {
                fib_at = Some(now);
            }
        }
        sending
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })?;
    let end = dut.memory()?;
    let kernel_growth = sys::kernel_memory()? as i64 - kernel_before as i64;
    session.check()?;
    let errors = dut.install_errors();
    ensure!(
        errors.is_empty(),
        "the agent did not install every route:\n{}",
        errors.join("\n")
    );
    let seconds = |at: Option<Instant>| at.map_or(f64::NAN, |at| (at - established).as_secs_f64());
    Ok((
        Outcome {
            dut: dut.kind.label(),
            fib_signal: dut.kind.fib_signal(),
            rib_s: seconds(rib_at),
            fib_s: seconds(fib_at),
            sent_s: (sent_at - established).as_secs_f64(),
            start,
            max_anon: max_anon.max(end.anon),
            kernel_growth,
            end,
            stop_s: f64::NAN,
            routes,
        },
        session,
    ))
}

fn print_results(outcomes: &[Outcome]) -> Result<()> {
    let mib = |bytes: u64| format!("{:.1}", bytes as f64 / (1024.0 * 1024.0));
    let mut table = TextTable::new(&[
        "DUT",
        "fed s",
        "RIB s",
        "FIB s",
        "FIB is",
        "start MiB",
        "peak MiB",
        "peak B/route",
        "growth B/route",
        "max anon MiB",
        "kernel MiB",
        "anon+kernel B/route",
        "stop s",
    ]);
    for o in outcomes {
        table.row(vec![
            o.dut.to_owned(),
            format!("{:.2}", o.sent_s),
            format!("{:.2}", o.rib_s),
            format!("{:.2}", o.fib_s),
            o.fib_signal.to_owned(),
            mib(o.start.rss),
            mib(o.end.peak),
            format!("{:.0}", o.peak_per_route()),
            format!("{:.0}", o.growth_per_route()),
            mib(o.max_anon),
            format!("{:+.1}", o.kernel_growth as f64 / (1024.0 * 1024.0)),
            format!("{:.0}", o.anon_and_kernel_per_route()),
            format!("{:.2}", o.stop_s),
        ]);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "seconds from Established (sender's view) until the DUT read the whole feed (fed), \
         received every route (RIB), installed every route (FIB)"
    )?;
    writeln!(
        out,
        "memory summed over the DUT's processes: resident before the session (start), VmHWM \
         after convergence (peak); growth = peak - start; max anon: largest RssAnon sampled \
         (heap and stacks only: not the BPF maps router-agent maps); kernel: change of \
         SUnreclaim + VmallocUsed (system-wide) from before the DUT started to convergence: \
         the kernel FIB, BPF maps"
    )?;
    writeln!(
        out,
        "stop: SIGTERM (session up) until the DUT's processes exited, its kernel routes \
         removed"
    )?;
    writeln!(out)?;
    table.write(&mut out)?;
    Ok(())
}

/// The kernel's own memory once the previous DUT's is freed (the kernel frees BPF maps and a
/// deleted namespace's routes asynchronously): sampled until it stops falling.
fn settled_kernel_memory() -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = sys::kernel_memory()?;
    loop {
        netns_lab::sleep(Duration::from_millis(500))?;
        let now = sys::kernel_memory()?;
        if now + 1024 * 1024 > last || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn progress(message: &str) {
    eprintln!("[bench bgp] {message}");
}
