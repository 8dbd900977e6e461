//! `cargo xtask bench workloads`: how fast workload routes reach the ToR. N `/32 dev veth`
//! routes (`proto boot`) are added to the host's kernel at once (`ip -batch`); measured: the
//! time until the FRR ToR's kernel holds all N (zebra installed them), then the same for
//! deleting them all. The agent redistributes them with `[[redistribute]]` (limit above N).
//!
//! Anchors, in the same run, each in a fresh lab after the agent's: FRR on the host (zebra
//! reads `proto boot` routes as kernel routes, bgpd has `redistribute kernel`) and BIRD 2
//! (`protocol kernel { learn; }`, default scan time 60 s), both with the same prefix list
//! (10.200/16) as the agent; see [`daemons`].
//!
//! ```text
//!   tor ns: FRR (bgpd + zebra), AS 65001 ── th ═══ ht ── host ns: router-agent | FRR | BIRD
//!   10.0.11.1                                   10.0.11.2   AS 65101
//!                                                           └─ veth-c0 ═══ eth0 ── ctr ns
//! ```
//!
//! The ToR's count is `ip -4 route show proto bgp` polled every 20 ms (about 10 ms to list
//! 10,000 routes): the figures have that resolution.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Child,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use netns_lab::{Namespaces, spawn_logged, stop, stop_pidfiles};

use crate::bench_bgp::dut::agent_binary;

mod daemons;

#[derive(clap::Args)]
pub struct Args {
    /// Workload routes added (and then deleted) at once.
    #[arg(long, default_value_t = 10_000)]
    routes: usize,
    /// Seconds the ToR may take to hold them all (and none after the delete).
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Anchors measured after router-agent in the same run, in the host's place: FRR
    /// (`redistribute kernel`) and BIRD 2 (`protocol kernel { learn; }`).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Dut::Frr, Dut::Bird])]
    anchor: Vec<Dut>,
}

/// What announces the host's routes to the ToR.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Dut {
    Agent,
    Frr,
    Bird,
}

impl Dut {
    fn label(self) -> &'static str {
        match self {
            Dut::Agent => "router-agent",
            Dut::Frr => "FRR 8.4 (anchor)",
            Dut::Bird => "BIRD 2.0 (anchor)",
        }
    }
}

struct Lab {
    agent: Option<Child>,
    pidfiles: Vec<PathBuf>,
    net: Namespaces,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            stop(agent, libc::SIGTERM);
        }
        stop_pidfiles(&self.pidfiles);
    }
}

/// (`ip -batch` add, ToR holds all, `ip -batch` del, ToR holds none), seconds.
type Figures = [f64; 4];

pub fn run(args: Args) -> Result<()> {
    if args.routes == 0 || args.routes > 60_000 {
        bail!("--routes: 1..60000 (10.200.0.0/16, 250 a /24)");
    }
    let binary = agent_binary()?;
    let mut duts = vec![Dut::Agent];
    duts.extend(args.anchor.iter().filter(|&&d| d != Dut::Agent));
    println!(
        "{} workload routes (/32 dev veth-c0 proto boot), FRR ToR, `ip -batch` at once:",
        args.routes
    );
    let mut rows = Vec::new();
    for dut in duts {
        println!("{}:", dut.label());
        // One lab after the other (the same names): the previous one is gone first.
        let figures = measure(dut, &binary, &args)?;
        rows.push((dut, figures));
    }
    println!(
        "\n{:<18} {:>9} {:>9} {:>9} {:>9}",
        "", "batch add", "ToR all", "batch del", "ToR none"
    );
    for (dut, [add, all, del, none]) in rows {
        println!(
            "{:<18} {add:>7.3} s {all:>7.3} s {del:>7.3} s {none:>7.3} s",
            dut.label()
        );
    }
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average: {}", load.trim());
    Ok(())
}

/// One lab (ToR, host with `dut`, container), the add then the delete.
fn measure(dut: Dut, binary: &Path, args: &Args) -> Result<Figures> {
    let mut lab = Lab {
        agent: None,
        pidfiles: Vec::new(),
        net: Namespaces::new("wlb-", "bench", &["tor", "host", "ctr"]),
    };
    setup(&lab.net);
    lab.pidfiles = daemons::start_frr(&lab.net, "tor", daemons::TOR_BGPD)?;
    match dut {
        Dut::Agent => lab.agent = Some(start_agent(&lab.net, binary, args.routes)?),
        Dut::Frr => {
            let pidfiles = daemons::start_frr(&lab.net, "host", daemons::HOST_BGPD)?;
            lab.pidfiles.extend(pidfiles);
        }
        Dut::Bird => {
            let pidfile = daemons::start_bird(&lab.net, "host", daemons::HOST_BIRD)?;
            lab.pidfiles.push(pidfile);
        }
    }
    wait("the BGP session", Duration::from_secs(60), || {
        Ok(lab
            .net
            .exec(
                "tor",
                &[
                    "ss",
                    "-Htn",
                    "state",
                    "established",
                    "( sport = :179 or dport = :179 )",
                ],
            )
            .lines()
            .count()
            > 0
            && tor_count(&lab.net)? == 0)
    })?;
    // FRR's session is up a moment after the TCP connection; let it settle.
    std::thread::sleep(Duration::from_secs(2));

    let add = batch_file(&lab.net, "add", args.routes)?;
    let del = batch_file(&lab.net, "del", args.routes)?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let (batch_add, all) = timed(&lab.net, &add, timeout, |n| n >= args.routes)?;
    println!(
        "  added:   ip -batch {batch_add:>7.3} s; ToR holds all {:>7.3} s",
        all
    );
    let (batch_del, none) = timed(&lab.net, &del, timeout, |n| n == 0)?;
    println!(
        "  deleted: ip -batch {batch_del:>7.3} s; ToR holds none {:>6.3} s",
        none
    );
    Ok([batch_add, all, batch_del, none])
}

/// Runs `ip -batch file` in the host; returns (its duration, time until `done(count)`).
fn timed(
    net: &Namespaces,
    file: &Path,
    timeout: Duration,
    done: impl Fn(usize) -> bool,
) -> Result<(f64, f64)> {
    let start = Instant::now();
    net.exec("host", &["ip", "-batch", file.to_str().context("path")?]);
    let batch = start.elapsed().as_secs_f64();
    loop {
        let count = tor_count(net)?;
        if done(count) {
            return Ok((batch, start.elapsed().as_secs_f64()));
        }
        if start.elapsed() > timeout {
            bail!("timed out: the ToR holds {count} routes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Workload routes (10.200/16) FRR's zebra installed in the ToR's kernel.
fn tor_count(net: &Namespaces) -> Result<usize> {
    Ok(net
        .exec("tor", &["ip", "-4", "route", "show", "proto", "bgp"])
        .lines()
        .filter(|l| l.starts_with("10.200."))
        .count())
}

fn batch_file(net: &Namespaces, verb: &str, routes: usize) -> Result<PathBuf> {
    let mut text = String::with_capacity(routes * 48);
    for i in 0..routes {
        let (hi, lo) = (i / 250, i % 250 + 1);
        text += &format!("route {verb} 10.200.{hi}.{lo}/32 dev veth-c0 proto boot\n");
    }
    let path = net.path(&format!("{verb}.batch"));
    fs::write(&path, text)?;
    Ok(path)
}

fn setup(net: &Namespaces) {
    net.veth(("tor", "th"), ("host", "ht"));
    net.veth(("host", "veth-c0"), ("ctr", "eth0"));
    let steps: &[(&str, &[&str])] = &[
        ("tor", &["ip", "addr", "add", "10.0.11.1/24", "dev", "th"]),
        ("tor", &["ip", "link", "set", "th", "up"]),
        ("host", &["ip", "addr", "add", "10.0.11.2/24", "dev", "ht"]),
        ("host", &["ip", "link", "set", "ht", "up"]),
        ("host", &["ip", "link", "set", "veth-c0", "up"]),
        ("ctr", &["ip", "link", "set", "eth0", "up"]),
    ];
    for (role, args) in steps {
        net.exec(role, args);
    }
}

fn start_agent(net: &Namespaces, binary: &Path, routes: usize) -> Result<Child> {
    let config = format!(
        r#"
[datapath]
pin_dir = "{pin_dir}"
[control]
socket = "{socket}"
[[interface]]
name = "ht"
[[interface]]
name = "veth-c0"

[[redistribute]]
name = "containers"
prefix_list = "workloads"
kernel_routes = {{ protocols = ["boot"], interfaces = ["veth-c*"] }}
limit = {limit}

[bgp]
asn = 65101
router_id = "192.0.2.10"

[bgp.prefix_list.workloads]
ipv4 = [{{ action = "permit", prefix = "10.200.0.0/16", le = 32 }}]

[[bgp.neighbor]]
address = "10.0.11.1"
remote_as = 65001
import = "default-only"
export = {{ prefix_list = "workloads" }}
hold_time = 9
"#,
        pin_dir = net.pin_dir.display(),
        socket = net.path_str("agent.sock"),
        limit = routes * 2,
    );
    let path = net.path_str("host.toml");
    fs::write(&path, config)?;
    let mut command = net.command_in("host", binary.to_str().context("agent path")?);
    command.args(["run", "-c", &path]).env("NO_COLOR", "1");
    Ok(spawn_logged(command, &net.path("agent.log")))
}

/// Polls `check` every 100 ms.
fn wait(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    while !check()? {
        if start.elapsed() > timeout {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
