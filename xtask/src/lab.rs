//! `cargo xtask lab`: router-agent forwarding between a client and two anycast servers, in
//! network namespaces, end to end: start, traffic, `show`, a failure, stop.
//!
//! By default (`--routes bgp`) the servers announce the anycast prefixes by BGP, server1 with
//! FRR and server2 with BIRD (see [`peers`]); the failure is server1's bgpd stopping. With
//! `--routes static` the agent has static routes, and the failure is server1's link going down.
//!
//! ```text
//!   client  c-eth0 10.1.0.2/24  ── r-client 10.1.0.1 ┐
//!                                                     ├ router: router-agent (XDP on all three)
//!   server1 s1-eth0 10.2.1.2/24 ── r-srv1  10.2.1.1  ┤   198.18.0.0/24 and 2001:db8:ffff::/48
//!   server2 s2-eth0 10.2.2.2/24 ── r-srv2  10.2.2.1  ┘   via server1 + server2 (ECMP)
//!   (IPv6: 2001:db8:1::/64, 2001:db8:2:1::/64, 2001:db8:2:2::/64)
//! ```
//!
//! Both servers hold 198.18.0.1 and 2001:db8:ffff::1 on their loopback (anycast), and each runs
//! a small UDP counter (port 9000) and TCP responder (port 8080, answers its name), so the
//! client's traffic shows which server each flow went to.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use netns_lab::{Namespace, remove_stale_labs, run};

mod agent;
mod narration;
mod peers;
mod traffic;

use agent::{Agent, agent_binary};
use narration::{print_log, step, within, yes_no};
use traffic::{
    DATAGRAMS_PER_FLOW, ServerCounters, TCP_CONNECTIONS, UDP_FLOWS, connect_tcp, ping, send_udp,
    serve,
};

#[derive(clap::Args)]
pub struct LabArgs {
    /// The agent's lookup engine.
    #[arg(long, value_enum, default_value_t = Engine::Auto)]
    engine: Engine,
    /// Where the router's routes to the anycast service come from.
    #[arg(long, value_enum, default_value_t = Routes::Bgp)]
    routes: Routes,
    /// Leave the lab running (namespaces, agent, FRR and BIRD) and print how to use and
    /// remove it.
    #[arg(long, conflicts_with = "stop")]
    keep: bool,
    /// Stop and remove a lab left running by `--keep` (its processes, namespaces, pins and
    /// files), then exit.
    #[arg(long)]
    stop: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Engine {
    Auto,
    LpmTrie,
    Dir24,
    Kernel,
    Dxr,
}

impl Engine {
    /// The value of `engine` in router-agent's config.
    fn config_value(self) -> &'static str {
        match self {
            Engine::Auto => "auto",
            Engine::LpmTrie => "lpm-trie",
            Engine::Dir24 => "dir24",
            Engine::Kernel => "kernel",
            Engine::Dxr => "dxr",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Routes {
    /// Learned from FRR (server1) and BIRD (server2) over BGP.
    Bgp,
    /// Static routes in the agent's configuration.
    Static,
}

/// Namespace names and the pin directory start with this, then the pid.
const TAG: &str = "hrl";
const ANYCAST_V4: &str = "198.18.0.1";
const ANYCAST_V6: &str = "2001:db8:ffff::1";
const SERVER1_V4: &str = "10.2.1.2";
const SERVER2_V4: &str = "10.2.2.2";

struct Lab {
    client: Namespace,
    router: Namespace,
    server1: Namespace,
    server2: Namespace,
    /// Config and log of the agent (and FRR's and BIRD's files).
    dir: PathBuf,
    pin_dir: PathBuf,
    routes: Routes,
}

pub fn lab(args: LabArgs) -> Result<()> {
    let started = Instant::now();
    netns_lab::catch_interrupts();
    crate::ensure_bpffs()?;
    // A lab whose xtask is gone (a kept one, or one killed mid-run) is removed here.
    remove_stale_labs(&format!("{TAG}-"));
    if args.stop {
        println!("lab stopped: no `{TAG}-*` namespace, pin directory or FRR/BIRD left");
        return Ok(());
    }
    let agent_bin = agent_binary()?;

    let lab = Lab::create(args.routes)?;
    lab.print_intro(args.engine);

    let config = lab.dir.join("router.toml");
    std::fs::write(&config, lab.agent_config(args.engine))
        .with_context(|| format!("writing {}", config.display()))?;
    let peers = match args.routes {
        Routes::Bgp => {
            step("starting FRR (bgpd + zebra) in server1 and BIRD in server2");
            Some(peers::Peers::start(&lab.server1, &lab.server2, &lab.dir)?)
        }
        Routes::Static => None,
    };
    let log = lab.dir.join("agent.log");
    step(&format!(
        "starting router-agent in the router namespace\n    {} run -c {}\n    (log: {})",
        agent_bin.display(),
        config.display(),
        log.display()
    ));
    let mut agent = Agent::start(&lab.router, &agent_bin, &config, &log)?;
    let ready = agent.wait_ready(&lab.pin_dir, Duration::from_secs(15))?;
    println!(
        "    ready after {:.1} s: XDP on r-client, r-srv1, r-srv2; maps pinned in {}",
        ready.as_secs_f64(),
        lab.pin_dir.display()
    );
    if peers.is_some() {
        let up =
            peers::wait_established(&lab.router, &agent_bin, &config, 4, Duration::from_secs(60))?;
        println!(
            "    4 BGP sessions established and routes received {} (IPv4 and IPv6, FRR and BIRD)",
            within(up, "the agent's start")
        );
    }

    if args.keep {
        lab.wait_for_neighbors(&agent_bin)?;
        lab.print_keep_instructions(&agent_bin, agent.child.id());
        // The agent (its own session, output to the log file), FRR and BIRD (daemons, not
        // our children) keep running; the namespaces stay. `--stop` removes them all.
        std::mem::forget(agent);
        std::mem::forget(peers);
        lab.persist();
        return Ok(());
    }

    let counters = [ServerCounters::default(), ServerCounters::default()];
    let stop = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        let servers = [
            scope.spawn(|| serve(&lab.server1, "server1", &counters[0], &stop)),
            scope.spawn(|| serve(&lab.server2, "server2", &counters[1], &stop)),
        ];
        let result = lab.demo(&agent_bin, &config, peers.as_ref(), &counters);
        stop.store(true, Ordering::Relaxed);
        for server in servers {
            match server.join() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => eprintln!("warning: a server thread failed: {err:#}"),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        result
    });
    if let Err(err) = result {
        eprintln!("\nthe lab failed; router-agent's log so far:");
        print_log(&log, usize::MAX);
        return Err(err);
    }

    step("stopping router-agent (SIGTERM)");
    let status = agent.stop()?;
    let attached = lab.router.ip(&["link", "show"])?.contains("xdp");
    println!(
        "    {status}; XDP program still attached: {}; pin directory left: {}",
        yes_no(attached),
        yes_no(lab.pin_dir.exists())
    );
    println!("    router-agent's log:");
    print_log(&log, usize::MAX);
    if !status.success() || attached {
        bail!("router-agent did not shut down cleanly (see above)");
    }

    step("removing the namespaces");
    drop(peers);
    drop(lab);
    println!("\nlab done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

impl Lab {
    fn create(routes: Routes) -> Result<Self> {
        let pid = std::process::id();
        let name = |role: &str| format!("{TAG}-{pid}-{role}");
        let dir = std::env::temp_dir().join(format!("{TAG}-{pid}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let lab = Self {
            client: Namespace::create(&name("client"))?,
            router: Namespace::create(&name("router"))?,
            server1: Namespace::create(&name("server1"))?,
            server2: Namespace::create(&name("server2"))?,
            dir,
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/{TAG}-{pid}")),
            routes,
        };
        for ns in [&lab.client, &lab.router, &lab.server1, &lab.server2] {
            // No duplicate address detection on the veths created below (their link-local
            // addresses would stay tentative for a second), and IPv6 addresses that survive
            // a link going down (as IPv4 ones do).
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
            ns.sysctl("net.ipv6.conf.default.keep_addr_on_down", "1")?;
        }
        let mac = |n: u8| [0x02, 0x00, 0x00, 0x00, 0x00, n];
        netns_lab::veth(
            (&lab.client, "c-eth0", mac(0x11)),
            (&lab.router, "r-client", mac(0x01)),
        )?;
        netns_lab::veth(
            (&lab.server1, "s1-eth0", mac(0x21)),
            (&lab.router, "r-srv1", mac(0x02)),
        )?;
        netns_lab::veth(
            (&lab.server2, "s2-eth0", mac(0x31)),
            (&lab.router, "r-srv2", mac(0x03)),
        )?;
        for (ns, dev, v4, v6) in [
            (&lab.client, "c-eth0", "10.1.0.2/24", "2001:db8:1::2/64"),
            (&lab.router, "r-client", "10.1.0.1/24", "2001:db8:1::1/64"),
            (&lab.router, "r-srv1", "10.2.1.1/24", "2001:db8:2:1::1/64"),
            (&lab.router, "r-srv2", "10.2.2.1/24", "2001:db8:2:2::1/64"),
            (&lab.server1, "s1-eth0", "10.2.1.2/24", "2001:db8:2:1::2/64"),
            (&lab.server2, "s2-eth0", "10.2.2.2/24", "2001:db8:2:2::2/64"),
        ] {
            ns.ip(&["addr", "add", v4, "dev", dev])?;
            ns.ip(&["addr", "add", v6, "dev", dev, "nodad"])?;
        }
        lab.client
            .ip(&["route", "add", "default", "via", "10.1.0.1"])?;
        lab.client
            .ip(&["-6", "route", "add", "default", "via", "2001:db8:1::1"])?;
        for ns in [&lab.server1, &lab.server2] {
            ns.ip(&["addr", "add", &format!("{ANYCAST_V4}/32"), "dev", "lo"])?;
            ns.ip(&["addr", "add", &format!("{ANYCAST_V6}/128"), "dev", "lo"])?;
            server_default_routes(ns)?;
        }
        for (ns, dev) in [
            (&lab.client, "c-eth0"),
            (&lab.server1, "s1-eth0"),
            (&lab.server2, "s2-eth0"),
        ] {
            // Frames the router XDP-redirects into a veth are only taken if the receiving end
            // has NAPI: an XDP program or GRO.
            // Checksum offload off: a local stack sending through a veth leaves TCP/UDP
            // checksums to be filled in later (CHECKSUM_PARTIAL); a frame that XDP redirects
            // loses that mark and arrives with a bad checksum (TcpInCsumErrors). Real NICs
            // receive complete checksums, so this is a lab-only setting.
            ns.exec("ethtool", &["-K", dev, "gro", "on", "tx", "off"])?;
        }
        // ICMP datagram sockets (our ping) for every group, root included.
        lab.client
            .sysctl("net.ipv4.ping_group_range", "0 2147483647")?;
        lab.router.sysctl("net.ipv4.ip_forward", "1")?;
        lab.router.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        // Replies come back on another interface than the ECMP route's choice may say.
        lab.router.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
        lab.router.sysctl("net.ipv4.conf.default.rp_filter", "0")?;
        Ok(lab)
    }

    fn agent_config(&self, engine: Engine) -> String {
        format!(
            r#"# Generated by `cargo xtask lab`.
[datapath]
pin_dir = "{pin_dir}"
engine = "{engine}"

[[interface]]
name = "r-client"
[[interface]]
name = "r-srv1"
[[interface]]
name = "r-srv2"
{routes}"#,
            pin_dir = self.pin_dir.display(),
            engine = engine.config_value(),
            routes = match self.routes {
                Routes::Bgp => peers::agent_bgp_config(&self.dir.join("agent.sock")),
                Routes::Static => format!(
                    r#"
[[route]]
prefix = "198.18.0.0/24"
nexthops = [{{ via = "{SERVER1_V4}" }}, {{ via = "{SERVER2_V4}" }}]

[[route]]
prefix = "2001:db8:ffff::/48"
nexthops = [{{ via = "2001:db8:2:1::2" }}, {{ via = "2001:db8:2:2::2" }}]
"#
                ),
            }
        )
    }

    /// Everything after the agent is up; the servers are listening.
    fn demo(
        &self,
        agent_bin: &Path,
        config: &Path,
        peers: Option<&peers::Peers>,
        counters: &[ServerCounters; 2],
    ) -> Result<()> {
        if peers.is_some() {
            step("router-agent show neighbors");
            self.show_bgp(agent_bin, config, "neighbors")?;
            step("router-agent show routes (only the anycast prefixes pass the import policy)");
            self.show_bgp(agent_bin, config, "routes")?;
        }
        step("ping from the client (3 ICMP echo requests each)");
        for target in [ANYCAST_V4, ANYCAST_V6] {
            let target: IpAddr = target.parse()?;
            let replies = self.client.run_in(|| ping(target, 3))?;
            let answered = replies.iter().filter(|r| r.is_some()).count();
            let rtts: Vec<String> = replies
                .iter()
                .map(|r| {
                    r.map_or("timeout".into(), |d| {
                        format!("{:.2} ms", d.as_secs_f64() * 1e3)
                    })
                })
                .collect();
            println!(
                "    {target:<18} {answered}/{} replies ({})",
                replies.len(),
                rtts.join(", ")
            );
        }

        step(&format!(
            "traffic from the client: {} UDP datagrams from {UDP_FLOWS} source ports and \
             {TCP_CONNECTIONS} TCP connections, to {ANYCAST_V4} and to {ANYCAST_V6}",
            UDP_FLOWS * DATAGRAMS_PER_FLOW
        ));
        self.traffic(counters)?;
        step("router-agent show fib");
        self.show(agent_bin, "fib")?;
        step("router-agent show counters");
        self.show(agent_bin, "counters")?;
        println!(
            "    (passed-no-route: the servers' replies. The client's subnet is a connected route,\n     \
             which the agent does not program, so XDP hands them to the kernel to forward.)"
        );

        if let Some(peers) = peers {
            return self.bgp_failure(agent_bin, config, peers, counters);
        }

        step("server1's link goes down (ip link set s1-eth0 down, in server1)");
        self.server1.ip(&["link", "set", "s1-eth0", "down"])?;
        let moved = self.wait_for_buckets(SERVER1_V4, |n| n == 0)?;
        println!(
            "    the agent moved server1's buckets to server2 {} ({})",
            within(moved, "the link change"),
            self.bucket_summary()?
        );
        self.traffic(counters)?;
        step("router-agent show counters");
        self.show(agent_bin, "counters")?;

        step("server1's link comes back up");
        self.server1.ip(&["link", "set", "s1-eth0", "up"])?;
        let back = self.wait_for_buckets(SERVER1_V4, |n| n > 0)?;
        println!(
            "    server1 is back in the group {} ({})",
            within(back, "the link change"),
            self.bucket_summary()?
        );
        // The server's own default routes went with its link; put them back for the replies.
        server_default_routes(&self.server1)?;
        self.traffic(counters)?;
        Ok(())
    }

    /// BGP mode: what the servers learned from the host, then server1's bgpd stops.
    fn bgp_failure(
        &self,
        agent_bin: &Path,
        config: &Path,
        peers: &peers::Peers,
        counters: &[ServerCounters; 2],
    ) -> Result<()> {
        step(
            "FRR's table on server1: the client's subnet from the host (AS 65101); BIRD's \
             anycast route is not there via the host: a host never transits",
        );
        for line in peers.vtysh("show bgp ipv4 unicast")?.lines() {
            println!("    {line}");
        }
        step("BIRD's table on server2");
        for line in peers.birdc("show route")?.lines() {
            println!("    {line}");
        }

        step("server1's bgpd stops (SIGTERM: FRR sends a Cease NOTIFICATION)");
        peers.stop_frr_bgpd()?;
        let moved = self.wait_for_buckets(SERVER1_V4, |n| n == 0)?;
        println!(
            "    the withdrawn next hop left the ECMP group {} ({})",
            within(moved, "the bgpd stop"),
            self.bucket_summary()?
        );
        self.traffic(counters)?;
        step("router-agent show neighbors");
        self.show_bgp(agent_bin, config, "neighbors")?;
        step("router-agent show fib");
        self.show(agent_bin, "fib")?;
        Ok(())
    }

    /// One bounded run of client traffic; prints where it went.
    fn traffic(&self, counters: &[ServerCounters; 2]) -> Result<()> {
        let before: Vec<(u64, u64)> = counters
            .iter()
            .map(|c| {
                (
                    c.datagrams.load(Ordering::Relaxed),
                    c.connections.load(Ordering::Relaxed),
                )
            })
            .collect();
        let (sent, tcp_failed) = self.client.run_in(|| {
            let mut sent = 0;
            let mut tcp_failed = 0;
            for target in [ANYCAST_V4, ANYCAST_V6] {
                let target: IpAddr = target.parse()?;
                sent += send_udp(target)?;
                tcp_failed += connect_tcp(target);
            }
            Ok((sent, tcp_failed))
        })?;
        // Let the last datagrams arrive.
        netns_lab::sleep(Duration::from_millis(300))?;
        for (i, counter) in counters.iter().enumerate() {
            let datagrams = counter.datagrams.load(Ordering::Relaxed) - before[i].0;
            let connections = counter.connections.load(Ordering::Relaxed) - before[i].1;
            println!(
                "    server{}: {datagrams:>5} datagrams, {connections:>3} TCP connections",
                i + 1
            );
        }
        let received: u64 = counters
            .iter()
            .zip(&before)
            .map(|(c, b)| c.datagrams.load(Ordering::Relaxed) - b.0)
            .sum();
        println!(
            "    (sent {sent} datagrams, {received} arrived; {} of {} TCP connections failed)",
            tcp_failed,
            2 * TCP_CONNECTIONS
        );
        Ok(())
    }

    /// `router-agent show <what>` in the router namespace (interface names are per namespace),
    /// from the pinned maps.
    fn show(&self, agent_bin: &Path, what: &str) -> Result<()> {
        let pin_dir = self.pin_dir.display().to_string();
        self.print_agent_output(agent_bin, &["show", what, "--pin-dir", &pin_dir])
    }

    /// `router-agent show neighbors|routes`, asked of the agent over its control socket.
    fn show_bgp(&self, agent_bin: &Path, config: &Path, what: &str) -> Result<()> {
        let config = config.display().to_string();
        self.print_agent_output(agent_bin, &["show", what, "-c", &config])
    }

    fn print_agent_output(&self, agent_bin: &Path, args: &[&str]) -> Result<()> {
        let text = run(self.router.command(agent_bin).args(args))?;
        for line in text.lines() {
            println!("    {line}");
        }
        Ok(())
    }

    /// Buckets of 198.18.0.0/24 held by the nexthop `via`, read from the pinned maps.
    fn buckets_of(&self, via: &str) -> Result<usize> {
        let view = self
            .router
            .run_in(|| router_agent::show::fib(&self.pin_dir))?;
        Ok(view
            .routes
            .iter()
            .filter(|r| r.prefix == "198.18.0.0/24")
            .flat_map(|r| &r.nexthops)
            .filter(|nh| nh.via == via && nh.resolved)
            .map(|nh| nh.buckets)
            .sum())
    }

    fn bucket_summary(&self) -> Result<String> {
        Ok(format!(
            "server1 {}/64, server2 {}/64",
            self.buckets_of(SERVER1_V4)?,
            self.buckets_of(SERVER2_V4)?
        ))
    }

    /// Polls the datapath until `done(buckets of via)`; how long it took.
    fn wait_for_buckets(&self, via: &str, done: impl Fn(usize) -> bool) -> Result<Duration> {
        let start = Instant::now();
        loop {
            if done(self.buckets_of(via)?) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!(
                    "after 10 s the datapath still shows {} for 198.18.0.0/24",
                    self.bucket_summary()?
                );
            }
            netns_lab::sleep(Duration::from_millis(20))?;
        }
    }

    /// For `--keep`: a ping each way resolves the servers' MACs, so the printed state is the
    /// forwarding one.
    fn wait_for_neighbors(&self, agent_bin: &Path) -> Result<()> {
        for target in [ANYCAST_V4, ANYCAST_V6] {
            let target: IpAddr = target.parse()?;
            self.client.run_in(|| ping(target, 2))?;
        }
        step("router-agent show fib");
        self.show(agent_bin, "fib")
    }

    /// Leaves the namespaces in place (for `--keep`).
    fn persist(self) {
        for ns in [self.client, self.router, self.server1, self.server2] {
            std::mem::forget(ns);
        }
    }
}

/// A server's default routes via the router (the kernel drops them when the link goes down).
fn server_default_routes(server: &Namespace) -> Result<()> {
    let (gw4, gw6) = if server.name().ends_with("server1") {
        ("10.2.1.1", "2001:db8:2:1::1")
    } else {
        ("10.2.2.1", "2001:db8:2:2::1")
    };
    // Right after a link comes up its connected routes may not be back yet: retry a little.
    let start = Instant::now();
    loop {
        let result = server
            .ip(&["route", "replace", "default", "via", gw4])
            .and_then(|_| server.ip(&["-6", "route", "replace", "default", "via", gw6]));
        match result {
            Ok(_) => return Ok(()),
            Err(err) if start.elapsed() > Duration::from_secs(3) => return Err(err),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
