//! `cargo xtask bench restart`: what a restart of the BGP daemon costs the traffic through the
//! host, and how long until its FIB is clean again, router-agent against FRR's bgpd.
//!
//! A client sends UDP at one datagram per millisecond through the DUT to an address inside one
//! of the routes the sender announces (`lab.rs`). The sender is `bench bgp`'s fast sender
//! (offering graceful restart, forwarding preserved), with one route or the full table
//! (1,000,000 IPv4 + 200,000 IPv6 by default). Once the DUT has every route and the probe
//! flows, the DUT is restarted:
//!
//! - `planned`: router-agent started with `--keep-datapath` gets SIGTERM, a new one is started
//!   on the same configuration;
//! - `restart`: `router-agent restart` (the agent re-executes itself);
//! - `kill -9`: router-agent is SIGKILLed, a new one is started;
//! - FRR (the anchor, `--duts frr`): bgpd (with `bgp graceful-restart`, `preserve-fw-state`) is
//!   SIGKILLed and started again; zebra keeps its routes in the kernel meanwhile.
//!
//! The sender's session drops with the DUT; it reconnects, sends the whole feed again and its
//! End-of-RIB. Reported: datagrams lost (from the restart until the FIB is clean), seconds from
//! the restart to the session back, to the End-of-RIB sent, and to a clean FIB (router-agent:
//! every route in the FIB and no adopted entry left in `status`; FRR: every prefix received
//! again, its stale sweep is not visible from outside), and the sweep's delay after the
//! End-of-RIB (the goal: within 2 s).

mod lab;
mod probe;

use std::{
    io::Write,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use ipnet::Ipv4Net;
use rand::{SeedableRng, rngs::SmallRng};

use crate::{
    bench_bgp::{
        Link,
        dut::agent_binary,
        feed, load_average,
        sender::{SenderConfig, Session},
    },
    bench_cost::{
        report::{self, TextTable},
        sys::Machine,
        table::Table,
    },
    bench_throughput::table::thousands,
};
use lab::{Dut, Topology};
use probe::Probe;

const PROBE_PORT: u16 = 9000;
/// What the agent logs when a peer's End-of-RIB sweeps the adopted routes.
const SWEPT_ON_EOR: &str = "End-of-RIB: routes adopted from the previous run swept";
/// Losses are counted until this long after the FIB is clean.
const SETTLE: Duration = Duration::from_secs(1);
/// The restart time the sender offers (and FRR's default).
const RESTART_TIME: u16 = 120;

#[derive(clap::Args)]
pub struct Args {
    /// CI-sized run: 1 route and 10,000 IPv4 + 2,000 IPv6 routes.
    #[arg(long)]
    quick: bool,
    /// IPv4 routes of the full feed [default: 1,000,000; --quick: 10,000].
    #[arg(long)]
    v4_routes: Option<usize>,
    /// IPv6 routes of the full feed [default: 200,000; --quick: 2,000].
    #[arg(long)]
    v6_routes: Option<usize>,
    /// DUTs, in order, comma-separated: router-agent (`hostrouter`) and FRR's bgpd + zebra
    /// (`frr`, the anchor rows).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "hostrouter,frr"
    )]
    duts: Vec<DutKind>,
    /// router-agent's `bgp.kernel_routes` (none, default-only, all).
    #[arg(long, default_value = "none")]
    kernel_routes: String,
    /// router-agent's `datapath.engine`: auto picks DXR for the full table, the LPM trie for
    /// 1 route (the runs recorded at 60d56b0 and before pinned dir24: `--engine dir24`).
    #[arg(long, default_value = "auto", value_parser = ["auto", "lpm-trie", "dir24", "dxr", "kernel"])]
    engine: String,
    /// Seconds each restart may take to come back clean before the run fails.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DutKind {
    Hostrouter,
    Frr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restart {
    Planned,
    Command,
    Kill,
    /// Not a restart: the full stop at the end (detach, unpin, kernel routes removed), timed.
    Stop,
    FrrBgpdKill,
}

impl Restart {
    fn label(self) -> &'static str {
        match self {
            Restart::Planned => "router-agent: SIGTERM (--keep-datapath), run",
            Restart::Command => "router-agent: `router-agent restart`",
            Restart::Kill => "router-agent: kill -9, run",
            Restart::Stop => "router-agent: `router-agent stop` (full stop)",
            Restart::FrrBgpdKill => "FRR: kill -9 bgpd, start (GR, zebra keeps routes)",
        }
    }
}

struct Row {
    routes: usize,
    restart: Restart,
    sent: u64,
    lost: u64,
    /// SIGTERM -> the process gone (planned only).
    exit_s: Option<f64>,
    established_s: f64,
    eor_s: f64,
    /// The agent read the End-of-RIB and swept the adopted routes (its log's time).
    eor_read_s: Option<f64>,
    clean_s: f64,
}

/// One feed: its bytes, route count and the destination the probe aims at.
struct Case {
    feed: feed::Feed,
    routes: usize,
    v4_routes: usize,
    destination: Ipv4Addr,
}

pub fn run(args: Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench restart creates network namespaces and loads XDP programs: run it as root");
    }
    crate::ensure_bpffs()?;
    netns_lab::catch_interrupts();
    netns_lab::remove_stale_labs(&format!("{}-", lab::TAG));
    let link = Link::new();
    let binary = agent_binary()?;
    let v4 = args
        .v4_routes
        .unwrap_or(if args.quick { 10_000 } else { 1_000_000 });
    let v6 = args
        .v6_routes
        .unwrap_or(if args.quick { 2_000 } else { 200_000 });
    let timeout = Duration::from_secs(args.timeout);

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "command: cargo xtask bench restart {}",
        std::env::args().skip(3).collect::<Vec<_>>().join(" ")
    )?;
    report::write_machine(&mut out, &Machine::probe())?;
    writeln!(out, "load average at start: {}", load_average())?;
    drop(out);

    let mut rows = Vec::new();
    for (v4_routes, v6_routes) in [(1, 0), (v4, v6)] {
        let case = build_case(&link, v4_routes, v6_routes, args.seed)?;
        progress(&format!(
            "{} routes: feed of {:.1} MiB",
            thousands(case.routes),
            case.feed.bytes.len() as f64 / (1024.0 * 1024.0)
        ));
        for dut in &args.duts {
            match dut {
                DutKind::Hostrouter => rows.extend(bench_agent(
                    &link,
                    &binary,
                    &case,
                    &args.kernel_routes,
                    &args.engine,
                    timeout,
                )?),
                DutKind::Frr => rows.push(bench_frr(&link, &binary, &case, timeout)?),
            }
        }
    }
    print_rows(&rows)
}

/// The feed (one /24 for a single route), with the probe's destination inside its first
/// IPv4 prefix.
fn build_case(link: &Link, v4_routes: usize, v6_routes: usize, seed: u64) -> Result<Case> {
    let mut table = if v4_routes == 1 && v6_routes == 0 {
        Table {
            v4: vec!["198.18.0.0/24".parse()?],
            v6: Vec::new(),
        }
    } else {
        Table::generate(&mut SmallRng::seed_from_u64(seed), v4_routes, v6_routes)
    };
    let client: Ipv4Net = "10.254.0.0/24".parse()?;
    let (v4_link, v6_link) = (link.v4_subnet(), link.v6_subnet());
    table
        .v4
        .retain(|p| !v4_link.contains(p) && !client.contains(p) && !p.contains(&client));
    table.v6.retain(|p| !v6_link.contains(p));
    let target = table
        .v4
        .iter()
        .find(|p| p.prefix_len() <= 30 && !p.contains(&link.sender_v4) && !p.contains(&link.dut_v4))
        .context("no IPv4 prefix for the probe")?;
    let destination = Ipv4Addr::from(u32::from(target.network()) + 1);
    let feed = feed::build(
        &table,
        feed::Sender {
            asn: link.sender_asn,
            next_hop_v4: link.sender_v4,
            next_hop_v6: link.sender_v6,
        },
        if v4_routes > 1 { 4_000 } else { 1 },
        seed,
    );
    Ok(Case {
        routes: feed.v4_routes + feed.v6_routes,
        v4_routes: feed.v4_routes,
        feed,
        destination,
    })
}

fn sender_config(link: &Link) -> SenderConfig {
    SenderConfig {
        asn: link.sender_asn,
        router_id: link.sender_v4,
        remote: SocketAddr::new(IpAddr::V4(link.dut_v4), 179),
        graceful_restart: Some(RESTART_TIME),
    }
}

/// Connects (retrying while the DUT is away), sends the feed and the End-of-RIB. Returns the
/// session and when it was Established and when the End-of-RIB was handed to the kernel.
fn feed_session(
    topology: &Topology,
    link: &Link,
    case: &Case,
) -> Result<(Session, Instant, Instant)> {
    // A restarting DUT may accept a connection and then drop it (the old process on its way
    // out): retried until the deadline.
    let deadline = Instant::now() + Duration::from_secs(120);
    let session = loop {
        match topology
            .sender
            .run_in(|| Session::establish(&sender_config(link), Duration::from_secs(10)))
        {
            Ok(session) => break session,
            Err(err) if Instant::now() > deadline => {
                return Err(err.context("opening the session"));
            }
            Err(_) => netns_lab::sleep(Duration::from_millis(100))?,
        }
    };
    let established = session.established_at;
    session.send(&case.feed.bytes)?;
    session.send(&feed::end_of_rib())?;
    Ok((session, established, Instant::now()))
}

/// Waits until `clean(dut)` holds, polling every 50 ms; errors past `timeout` or if a DUT
/// process exits.
fn wait(
    what: &str,
    timeout: Duration,
    dut: &mut Dut,
    mut clean: impl FnMut(&Dut) -> Result<bool>,
) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        dut.check_running()?;
        match clean(dut) {
            Ok(true) => return Ok(Instant::now()),
            Ok(false) => {}
            // A DUT busy with a full table may not answer in time.
            Err(err) => last_error = Some(err),
        }
        if Instant::now() > deadline {
            bail!(
                "{what}: not within {timeout:?}{}",
                last_error
                    .map(|e| format!(" (last error: {e:#})"))
                    .unwrap_or_default()
            );
        }
        netns_lab::sleep(Duration::from_millis(50))?;
    }
}

fn bench_agent(
    link: &Link,
    binary: &Path,
    case: &Case,
    kernel_routes: &str,
    engine: &str,
    timeout: Duration,
) -> Result<Vec<Row>> {
    let name = format!("a{}", case.routes);
    let topology = Topology::create(link, &name)?;
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("{}-{pid}-{name}", lab::TAG));
    let pin_dir = Path::new("/sys/fs/bpf").join(format!("{}-{pid}-{name}", lab::TAG));
    let mut dut = Dut::new(&dir, &pin_dir, binary)?;
    dut.write_agent_config(link, case.v4_routes, kernel_routes, engine)?;
    dut.start_agent(&topology.dut)?;
    let result = (|| -> Result<Vec<Row>> {
        let (session, _, _) = feed_session(&topology, link, case)?;
        let mut session = Some(session);
        let baseline = wait("the first feed installed", timeout, &mut dut, |dut| {
            let (routes, _) = dut.agent_status()?;
            Ok(routes >= case.routes)
        })?;
        let _ = baseline;
        let (full, _) = dut.agent_status()?;
        topology.sender.ip(&[
            "addr",
            "add",
            &format!("{}/32", case.destination),
            "dev",
            "lo",
        ])?;
        let probe = Probe::start(
            topology.client.name(),
            topology.sender.name(),
            SocketAddr::new(IpAddr::V4(case.destination), PROBE_PORT),
        );
        ensure!(
            probe.flowing(Duration::from_secs(20)),
            "the probe to {} does not flow",
            case.destination
        );
        let mut rows = Vec::new();
        for restart in [Restart::Planned, Restart::Command, Restart::Kill] {
            progress(&format!(
                "{} routes: {}",
                thousands(case.routes),
                restart.label()
            ));
            let from = probe.mark();
            let start = Instant::now();
            let wall_start = std::time::SystemTime::now();
            let mut exit_s = None;
            match restart {
                Restart::Planned => {
                    exit_s = Some(dut.stop_planned("router-agent")?.as_secs_f64());
                    dut.start_agent(&topology.dut)?;
                }
                Restart::Command => dut.restart_command()?,
                Restart::Kill => {
                    dut.kill("router-agent")?;
                    dut.start_agent(&topology.dut)?;
                }
                Restart::Stop | Restart::FrrBgpdKill => unreachable!(),
            }
            // The old session is gone with the old agent (or goes when the sender notices).
            drop(session.take());
            let (new_session, established, eor) = feed_session(&topology, link, case)?;
            session = Some(new_session);
            let clean = wait(restart.label(), timeout, &mut dut, |dut| {
                let (routes, adopted) = dut.agent_status()?;
                let adopted = adopted.context("`status` reports no adopted count")?;
                Ok(routes == full && adopted == 0)
            })?;
            // What a clean FIB changes only after (a late sweep) counts too.
            netns_lab::sleep(SETTLE)?;
            let to = probe.mark();
            let losses = probe.losses(from, to);
            let row = Row {
                routes: case.routes,
                restart,
                sent: losses.sent,
                lost: losses.lost,
                exit_s,
                established_s: (established - start).as_secs_f64(),
                eor_s: (eor - start).as_secs_f64(),
                eor_read_s: dut
                    .log_time_of_day(SWEPT_ON_EOR)
                    .map(|at| seconds_since(wall_start, at)),
                clean_s: (clean - start).as_secs_f64(),
            };
            progress(&format!(
                "  lost {} of {}, clean after {:.2} s (End-of-RIB sent at {:.2} s, read at {})",
                row.lost,
                row.sent,
                row.clean_s,
                row.eor_s,
                row.eor_read_s.map_or("?".into(), |s| format!("{s:.2} s"))
            ));
            rows.push(row);
        }
        // The full stop, timed: it must not take long with a full table in the kernel.
        drop(session);
        let stopped = dut.stop_command()?;
        rows.push(Row {
            routes: case.routes,
            restart: Restart::Stop,
            sent: 0,
            lost: 0,
            exit_s: Some(stopped.as_secs_f64()),
            established_s: f64::NAN,
            eor_s: f64::NAN,
            eor_read_s: None,
            clean_s: f64::NAN,
        });
        Ok(rows)
    })();
    let result = result.map_err(|err| {
        err.context(format!(
            "router-agent log (in {}):\n{}",
            dir.display(),
            dut.log_tail("router-agent", 30)
        ))
    });
    finish(dut, &dir, result)
}

/// Stops the DUT (its drop needs its configuration), then removes its directory unless the
/// run failed (its logs are kept for the error message's reader).
fn finish<T>(dut: Dut, dir: &Path, result: Result<T>) -> Result<T> {
    drop(dut);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn bench_frr(link: &Link, binary: &Path, case: &Case, timeout: Duration) -> Result<Row> {
    let name = format!("f{}", case.routes);
    let topology = Topology::create(link, &name)?;
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("{}-{pid}-{name}", lab::TAG));
    let pin_dir = Path::new("/sys/fs/bpf").join(format!("{}-{pid}-{name}", lab::TAG));
    let mut dut = Dut::new(&dir, &pin_dir, binary)?;
    dut.start_frr(&topology.dut, link)?;
    let result = (|| -> Result<Row> {
        let (session, _, _) = feed_session(&topology, link, case)?;
        wait("FRR: the first feed received", timeout, &mut dut, |dut| {
            Ok(dut.frr_received()? >= case.routes)
        })?;
        topology.sender.ip(&[
            "addr",
            "add",
            &format!("{}/32", case.destination),
            "dev",
            "lo",
        ])?;
        let probe = Probe::start(
            topology.client.name(),
            topology.sender.name(),
            SocketAddr::new(IpAddr::V4(case.destination), PROBE_PORT),
        );
        ensure!(
            probe.flowing(timeout),
            "the probe to {} does not flow through FRR",
            case.destination
        );
        progress(&format!(
            "{} routes: {}",
            thousands(case.routes),
            Restart::FrrBgpdKill.label()
        ));
        let from = probe.mark();
        let start = Instant::now();
        dut.kill("bgpd")?;
        dut.start_bgpd(&topology.dut)?;
        drop(session);
        let (_session, established, eor) = feed_session(&topology, link, case)?;
        let clean = wait(
            "FRR: every prefix received again",
            timeout,
            &mut dut,
            |dut| Ok(dut.frr_received()? >= case.routes),
        )?;
        netns_lab::sleep(SETTLE)?;
        let losses = probe.losses(from, probe.mark());
        Ok(Row {
            routes: case.routes,
            restart: Restart::FrrBgpdKill,
            sent: losses.sent,
            lost: losses.lost,
            exit_s: None,
            established_s: (established - start).as_secs_f64(),
            eor_s: (eor - start).as_secs_f64(),
            eor_read_s: None,
            clean_s: (clean - start).as_secs_f64(),
        })
    })();
    let result = result.map_err(|err| {
        err.context(format!(
            "bgpd log (in {}):\n{}",
            dir.display(),
            dut.log_tail("bgpd", 30)
        ))
    });
    finish(dut, &dir, result)
}

/// Seconds from `start` to a UTC time of day (seconds since midnight) shortly after it.
fn seconds_since(start: std::time::SystemTime, time_of_day: f64) -> f64 {
    let since_epoch = start
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let delta = time_of_day - since_epoch % 86_400.0;
    // Past midnight.
    if delta < -43_200.0 {
        delta + 86_400.0
    } else {
        delta
    }
}

fn print_rows(rows: &[Row]) -> Result<()> {
    let mut table = TextTable::new(&[
        "routes",
        "restart",
        "lost",
        "sent",
        "exit s",
        "session s",
        "EoR sent s",
        "EoR read s",
        "clean s",
        "clean - EoR read s",
    ]);
    let seconds = |s: f64| {
        if s.is_nan() {
            "-".to_owned()
        } else {
            format!("{s:.2}")
        }
    };
    for row in rows {
        let stop = row.restart == Restart::Stop;
        table.row(vec![
            thousands(row.routes),
            row.restart.label().to_owned(),
            if stop {
                "-".into()
            } else {
                row.lost.to_string()
            },
            if stop {
                "-".into()
            } else {
                row.sent.to_string()
            },
            row.exit_s.map_or("-".into(), seconds),
            seconds(row.established_s),
            seconds(row.eor_s),
            row.eor_read_s.map_or("-".into(), seconds),
            seconds(row.clean_s),
            row.eor_read_s
                .map_or("-".into(), |read| format!("{:+.2}", row.clean_s - read)),
        ]);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\nUDP datagrams at 1 ms from the client through the DUT to a route of the feed, lost \
         from the restart until 1 s after the FIB is clean; seconds from the restart (SIGTERM, the \
         restart command, SIGKILL) until the process exited (exit), the sender's session was \
         back (session), its End-of-RIB was sent (EoR sent: handed to its socket, behind the whole \
         feed) and read (EoR read: the agent's log line of the sweep it triggers), the FIB was clean (router-agent: every \
         route in the FIB and no adopted entry left; FRR: every prefix received again); the \
         full stop's exit: from `router-agent stop` until the process is gone"
    )?;
    writeln!(out)?;
    table.write(&mut out)?;
    Ok(())
}

fn progress(message: &str) {
    eprintln!("[bench restart] {message}");
}
