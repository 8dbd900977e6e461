//! `cargo xtask bench workloads`: how fast workload routes reach the ToR. N `/32 dev veth`
//! routes (`proto boot`) are added to the host's kernel at once (`ip -batch`); measured: the
//! time until the FRR ToR's kernel holds all N (zebra installed them), then the same for
//! deleting them all. The agent redistributes them with `[[redistribute]]` (limit above N).
//!
//! ```text
//!   tor ns: FRR (bgpd + zebra), AS 65001 ── th ═══ ht ── host ns: router-agent, AS 65101
//!   10.0.11.1                                   10.0.11.2   └─ veth-c0 ═══ eth0 ── ctr ns
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

#[derive(clap::Args)]
pub struct Args {
    /// Workload routes added (and then deleted) at once.
    #[arg(long, default_value_t = 10_000)]
    routes: usize,
    /// Seconds the ToR may take to hold them all (and none after the delete).
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

struct Lab {
    agent: Option<Child>,
    net: Namespaces,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            stop(agent, libc::SIGTERM);
        }
        stop_pidfiles(&[self.net.path("bgpd.pid"), self.net.path("zebra.pid")]);
    }
}

pub fn run(args: Args) -> Result<()> {
    if args.routes == 0 || args.routes > 60_000 {
        bail!("--routes: 1..60000 (10.200.0.0/16, 250 a /24)");
    }
    let binary = agent_binary()?;
    let mut lab = Lab {
        agent: None,
        net: Namespaces::new("wlb-", "bench", &["tor", "host", "ctr"]),
    };
    setup(&lab.net);
    start_frr(&lab.net)?;
    lab.agent = Some(start_agent(&lab.net, &binary, args.routes)?);
    wait("the BGP session", Duration::from_secs(60), || {
        Ok(lab
            .net
            .exec(
                "tor",
                &["ss", "-Htn", "state", "established", "( sport = :179 )"],
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
    println!(
        "{} workload routes (/32 dev veth-c0 proto boot), FRR ToR, `ip -batch` at once:",
        args.routes
    );
    let timeout = Duration::from_secs(args.timeout_secs);
    let (batch, all) = timed(&lab.net, &add, timeout, |n| n >= args.routes)?;
    println!(
        "  added:   ip -batch {batch:>7.3} s; ToR holds all {:>7.3} s",
        all
    );
    let (batch, none) = timed(&lab.net, &del, timeout, |n| n == 0)?;
    println!(
        "  deleted: ip -batch {batch:>7.3} s; ToR holds none {:>6.3} s",
        none
    );
    Ok(())
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

fn start_frr(net: &Namespaces) -> Result<()> {
    let config = "hostname tor
router bgp 65001
 bgp router-id 10.0.11.1
 no bgp ebgp-requires-policy
 neighbor 10.0.11.2 remote-as 65101
 neighbor 10.0.11.2 timers 3 9
!
";
    fs::write(net.path("bgpd.conf"), config)?;
    let (zserv, vty) = (net.path_str("zserv.api"), net.path_str(""));
    let pathspace = format!("{}tor", net.name);
    for (program, pid, extra) in [
        ("/usr/lib/frr/zebra", "zebra.pid", None),
        (
            "/usr/lib/frr/bgpd",
            "bgpd.pid",
            Some(net.path_str("bgpd.conf")),
        ),
    ] {
        let pidfile = net.path_str(pid);
        let mut args = vec![program, "-d", "-i", &pidfile];
        if let Some(config) = &extra {
            args.extend(["-f", config]);
        }
        args.extend(["-z", &zserv, "--vty_socket", &vty, "-N", &pathspace]);
        net.exec("tor", &args);
    }
    Ok(())
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
