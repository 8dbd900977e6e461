//! Forward exactly what the kernel would (issue 8), seen from outside: router-agent in a
//! namespace between a client, a sink and a third network; frames built by hand and sent raw
//! from the client (foreign MACs, spoofed sources), UDP counted at the sink, the verdict
//! counters of `router-agent show counters --json`, nftables counters in the router.
//! Needs root and nft.
//!
//! ```text
//!   client ── c0 ═══ hc ── [host: router-agent] ── h1 ═══ s1 ── sink (10.10.0.1, 10.9.0.1)
//!  10.0.0.2        10.0.0.1          10.0.1.1 │             10.0.1.2
//!                                    10.0.2.1 └─ h2 ═══ o2 ── other (10.20.0.0/16 behind it)
//! ```
//!
//! - promiscuous ingress: frames for another host's MAC are the kernel's business (it drops
//!   them), never forwarded;
//! - unicast RPF (`rpf = "strict" | "loose"`) against the FIB;
//! - `pass_to_kernel` prefixes go through netfilter;
//! - IPv4 options go to the kernel.

mod netns;
mod scenarios;

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    process::Child,
    thread,
    time::Duration,
};

use netns::{AGENT, Namespaces, sh, spawn_logged, stop, tail, wait_for};
use scenarios::{
    format_mac,
    frames::{UdpSink, send_raw, udp_v4},
    link_info, verdict,
};
use serde_json::Value;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Behind the sink, forwarded by XDP.
const ROUTED: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
/// Behind the sink, inside `pass_to_kernel`.
const TO_KERNEL: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const SINK_PORT: u16 = 4789;
/// A unicast MAC nobody in the lab has (locally administered).
const FOREIGN_MAC: [u8; 6] = [0x0a, 0x00, 0x00, 0x00, 0x00, 0x99];
const SETTLE: Duration = Duration::from_millis(500);

struct PolicyLab {
    agent: Option<Child>,
    /// MAC of the router's client-facing interface hc, and of the client's c0.
    router_mac: [u8; 6],
    client_mac: [u8; 6],
    client_ifindex: u32,
    /// Last: dropped after the agent is stopped.
    net: Namespaces,
}

impl PolicyLab {
    fn new(tag: &str) -> Self {
        let net = Namespaces::new("hrk-", tag, &["client", "host", "sink", "other"]);
        net.veth(("client", "c0"), ("host", "hc"));
        net.veth(("sink", "s1"), ("host", "h1"));
        net.veth(("other", "o2"), ("host", "h2"));
        let setup: &[(&str, &[&str])] = &[
            ("client", &["ip", "addr", "add", "10.0.0.2/24", "dev", "c0"]),
            ("client", &["ip", "link", "set", "c0", "up"]),
            (
                "client",
                &["ip", "route", "add", "default", "via", "10.0.0.1"],
            ),
            // Checksums computed before the "wire" (veth leaves them partial otherwise).
            ("client", &["ethtool", "-K", "c0", "tx", "off"]),
            ("host", &["ip", "addr", "add", "10.0.0.1/24", "dev", "hc"]),
            ("host", &["ip", "addr", "add", "10.0.1.1/24", "dev", "h1"]),
            ("host", &["ip", "addr", "add", "10.0.2.1/24", "dev", "h2"]),
            ("host", &["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"]),
            ("host", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            ("sink", &["ip", "addr", "add", "10.0.1.2/24", "dev", "s1"]),
            ("sink", &["ip", "addr", "add", "10.10.0.1/32", "dev", "lo"]),
            ("sink", &["ip", "addr", "add", "10.9.0.1/32", "dev", "lo"]),
            ("sink", &["ip", "link", "set", "s1", "up"]),
            (
                "sink",
                &["ip", "route", "add", "default", "via", "10.0.1.1"],
            ),
            // The sink takes spoofed sources too: only the router may filter them.
            ("sink", &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]),
            ("sink", &["sysctl", "-qw", "net.ipv4.conf.s1.rp_filter=0"]),
            ("sink", &["ethtool", "-K", "s1", "tx", "off"]),
            ("other", &["ip", "addr", "add", "10.0.2.2/24", "dev", "o2"]),
            ("other", &["ip", "link", "set", "o2", "up"]),
        ];
        for (role, args) in setup {
            net.exec(role, args);
        }
        for iface in ["hc", "h1", "h2"] {
            net.exec("host", &["ip", "link", "set", iface, "up"]);
        }
        let (_, router_mac) = link_info(&net.ns("host"), "hc");
        let (client_ifindex, client_mac) = link_info(&net.ns("client"), "c0");
        Self {
            agent: None,
            router_mac,
            client_mac,
            client_ifindex,
            net,
        }
    }

    /// Starts the agent: `hc` with `rpf` (None: the key absent), `pass_to_kernel` in
    /// `[datapath]` if given; static routes to the sink's and the other network's prefixes.
    /// Waits until the route to the sink is resolved in the XDP FIB.
    fn start_agent(&mut self, rpf: Option<&str>, pass_to_kernel: Option<&str>) {
        if let Some(agent) = self.agent.take() {
            stop(agent, libc::SIGTERM);
        }
        let rpf = rpf.map_or_else(String::new, |mode| format!("rpf = \"{mode}\"\n"));
        let pass =
            pass_to_kernel.map_or_else(String::new, |p| format!("pass_to_kernel = [\"{p}\"]\n"));
        let config = format!(
            r#"[datapath]
pin_dir = "{pin_dir}"
{pass}[control]
socket = "{socket}"
[[interface]]
name = "hc"
{rpf}[[interface]]
name = "h1"
[[interface]]
name = "h2"

[[route]]
prefix = "10.10.0.0/24"
nexthops = [{{ via = "10.0.1.2" }}]
[[route]]
prefix = "10.9.0.0/16"
nexthops = [{{ via = "10.0.1.2" }}]
[[route]]
prefix = "10.20.0.0/16"
nexthops = [{{ via = "10.0.2.2" }}]
"#,
            pin_dir = self.net.pin_dir.display(),
            socket = self.net.path_str("agent.sock"),
        );
        let path = self.net.path_str("agent.toml");
        fs::write(&path, config).unwrap();
        sh(&[AGENT, "check", "-c", &path]);
        let started = self.started();
        let mut command = self.net.command_in("host", AGENT);
        command.args(["run", "-c", &path]).env("NO_COLOR", "1");
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
        // Up: the startup is over (its log line), and the routes used here are resolved.
        wait_for(
            "the agent up, the route to the sink resolved in the XDP FIB",
            Duration::from_secs(30),
            || {
                self.started() > started
                    && self.resolved("10.10.0.0/24")
                    && self.resolved("10.20.0.0/16")
            },
            || format!("fib: {}\n{}", self.show("fib"), self.log()),
        );
    }

    /// Agent startups completed so far (the log is appended to across restarts).
    fn started(&self) -> usize {
        fs::read_to_string(self.net.path("agent.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("forwarding routes="))
            .count()
    }

    fn resolved(&self, prefix: &str) -> bool {
        self.show("fib")["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["prefix"] == prefix)
            .flat_map(|r| r["nexthops"].as_array().cloned().unwrap_or_default())
            .any(|n| n["resolved"] == true)
    }

    fn show(&self, what: &str) -> Value {
        self.net
            .agent_show(AGENT, "host", what, Some(&self.net.path("agent.toml")))
            .unwrap_or(Value::Null)
    }

    fn counters(&self) -> Value {
        self.show("counters")
    }

    fn log(&self) -> String {
        format!("--- agent log:\n{}", tail(&self.net.path("agent.log"), 80))
    }

    /// `count` UDP frames from `src` to `dst` sent raw by the client, Ethernet destination
    /// `dst_mac`; one flow per frame (source ports vary). Returns the verdict counters'
    /// change.
    fn send(&self, dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, count: usize) -> Delta {
        let frames = (0..count)
            .map(|i| {
                udp_v4(
                    (dst_mac, self.client_mac),
                    (src, dst),
                    (30000 + (i % 30000) as u16, SINK_PORT),
                )
            })
            .collect();
        let before = self.counters();
        let sent = send_raw(&self.net.ns("client"), self.client_ifindex, frames, 32);
        assert_eq!(sent, count, "the client's raw socket sent every frame");
        thread::sleep(SETTLE);
        Delta {
            before,
            after: self.counters(),
        }
    }
}

impl Drop for PolicyLab {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            stop(agent, libc::SIGTERM);
        }
    }
}

/// Verdict counters before and after.
struct Delta {
    before: Value,
    after: Value,
}

impl Delta {
    fn of(&self, name: &str) -> u64 {
        verdict(&self.after, name) - verdict(&self.before, name)
    }

    fn show(&self) -> String {
        format!(
            "before {}\nafter  {}",
            self.before["verdicts"], self.after["verdicts"]
        )
    }
}

#[test]
fn promiscuous_ingress_passes_frames_for_other_hosts() {
    let mut lab = PolicyLab::new("promisc");
    lab.start_agent(None, None);
    let sink = UdpSink::start(&lab.net.ns("sink"), SINK_PORT);
    // A bridge port, a packet capture, a VM's tap: the NIC takes every frame on the wire.
    lab.net
        .exec("host", &["ip", "link", "set", "hc", "promisc", "on"]);

    let delta = lab.send(FOREIGN_MAC, CLIENT, ROUTED, 10_000);
    assert_eq!(
        sink.total(),
        0,
        "frames for {} must not be forwarded (the kernel would drop them): {}\n{}",
        format_mac(&FOREIGN_MAC),
        sink.summary(),
        delta.show()
    );
    let other_host = delta.of("passed-other-host");
    assert!(
        // Multicast the client's stack sends meanwhile (IPv6 neighbor discovery) counts too.
        (9_500..=10_100).contains(&other_host),
        "passed-other-host rose by {other_host}, expected about 10,000\n{}",
        delta.show()
    );
    assert_eq!(delta.of("forwarded"), 0, "{}", delta.show());

    // Frames for the router itself are still forwarded, promiscuous or not.
    let delta = lab.send(lab.router_mac, CLIENT, ROUTED, 200);
    assert_eq!(delta.of("forwarded"), 200, "{}", delta.show());
    wait_for(
        "200 datagrams at the sink",
        Duration::from_secs(5),
        || sink.from(CLIENT) == 200,
        || sink.summary(),
    );
}

#[test]
fn unicast_rpf_drops_spoofed_sources_strict_and_loose() {
    let mut lab = PolicyLab::new("rpf");
    lab.start_agent(Some("strict"), None);
    let sink = UdpSink::start(&lab.net.ns("sink"), SINK_PORT);
    let elsewhere = Ipv4Addr::new(10, 20, 0, 5); // routed via h2, not hc
    let unroutable = Ipv4Addr::new(172, 31, 255, 5); // no route at all (no default)
    let own = Ipv4Addr::new(10, 0, 0, 1); // the router's own address on hc
    let count = 50;

    for (what, source) in [
        ("routed via another interface", elsewhere),
        ("unroutable", unroutable),
        ("the router's own", own),
    ] {
        let delta = lab.send(lab.router_mac, source, ROUTED, count);
        assert_eq!(
            delta.of("dropped-rpf"),
            count as u64,
            "strict, {what} source {source}: {}",
            delta.show()
        );
        assert_eq!(
            delta.of("forwarded"),
            0,
            "strict, {what} source {source}: {}",
            delta.show()
        );
        assert_eq!(
            sink.from(source),
            0,
            "strict, {what} source {source} reached the sink: {}",
            sink.summary()
        );
    }
    let delta = lab.send(lab.router_mac, CLIENT, ROUTED, count);
    assert_eq!(
        delta.of("forwarded"),
        count as u64,
        "strict, the legitimate source: {}",
        delta.show()
    );
    assert_eq!(delta.of("dropped-rpf"), 0, "{}", delta.show());
    wait_for(
        "the legitimate source's datagrams at the sink",
        Duration::from_secs(5),
        || sink.from(CLIENT) == count as u64,
        || sink.summary(),
    );

    // Loose (an interface setting: a restart, which takes over the pinned program): any
    // route back will do, but there must be one.
    lab.start_agent(Some("loose"), None);
    let delta = lab.send(lab.router_mac, elsewhere, ROUTED, count);
    assert_eq!(
        delta.of("forwarded"),
        count as u64,
        "loose, a source routed elsewhere: {}",
        delta.show()
    );
    wait_for(
        "loose: the source routed elsewhere at the sink",
        Duration::from_secs(5),
        || sink.from(elsewhere) == count as u64,
        || sink.summary(),
    );
    let delta = lab.send(lab.router_mac, unroutable, ROUTED, count);
    assert_eq!(
        delta.of("dropped-rpf"),
        count as u64,
        "loose, an unroutable source: {}",
        delta.show()
    );
    assert_eq!(sink.from(unroutable), 0, "{}", sink.summary());
}

/// The packet counters of the rules of `inet hrk counted`, in order.
fn nft_counters(lab: &PolicyLab) -> Vec<u64> {
    let out = lab.net.exec(
        "host",
        &["nft", "-j", "list", "chain", "inet", "hrk", "counted"],
    );
    let json: Value = serde_json::from_str(&out).expect("nft -j");
    json["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["rule"]["expr"].as_array())
        .filter_map(|exprs| exprs.iter().find_map(|e| e["counter"]["packets"].as_u64()))
        .collect()
}

#[test]
fn pass_to_kernel_prefixes_go_through_netfilter() {
    let mut lab = PolicyLab::new("p2k");
    lab.start_agent(None, Some("10.9.0.0/16"));
    let sink = UdpSink::start(&lab.net.ns("sink"), SINK_PORT);
    let ruleset = "table inet hrk {
  chain counted {
    type filter hook forward priority 0; policy accept;
    ip daddr 10.9.0.0/16 counter
    ip daddr 10.10.0.0/24 counter
  }
}
";
    fs::write(lab.net.path("hrk.nft"), ruleset).unwrap();
    lab.net
        .exec("host", &["nft", "-f", &lab.net.path_str("hrk.nft")]);
    assert_eq!(nft_counters(&lab), [0, 0]);

    // Real UDP from the client's stack, one flow per datagram.
    let count = 100;
    let before = lab.counters();
    lab.net
        .send_udp("client", SocketAddr::from((TO_KERNEL, SINK_PORT)), count);
    wait_for(
        "the datagrams to 10.9.0.1 at the sink",
        Duration::from_secs(5),
        || sink.from(CLIENT) == count as u64,
        || sink.summary(),
    );
    let delta = Delta {
        before,
        after: lab.counters(),
    };
    assert_eq!(
        nft_counters(&lab),
        [count as u64, 0],
        "netfilter saw every packet to the pass_to_kernel prefix"
    );
    assert_eq!(
        delta.of("passed-by-route"),
        count as u64,
        "{}",
        delta.show()
    );
    assert_eq!(delta.of("forwarded"), 0, "{}", delta.show());

    // Outside the prefix: XDP forwards, netfilter sees nothing.
    let before = lab.counters();
    lab.net
        .send_udp("client", SocketAddr::from((ROUTED, SINK_PORT)), count);
    wait_for(
        "the datagrams to 10.10.0.1 at the sink",
        Duration::from_secs(5),
        || sink.from(CLIENT) == 2 * count as u64,
        || sink.summary(),
    );
    let delta = Delta {
        before,
        after: lab.counters(),
    };
    assert_eq!(delta.of("forwarded"), count as u64, "{}", delta.show());
    assert_eq!(
        nft_counters(&lab),
        [count as u64, 0],
        "XDP-forwarded packets bypass netfilter"
    );
}

#[test]
fn ipv4_options_go_to_the_kernel() {
    let mut lab = PolicyLab::new("opts");
    lab.start_agent(None, None);
    let before = lab.counters();
    // Record route: every router on the way must write its address into the option, which
    // only the kernel does.
    let out = lab.net.exec(
        "client",
        &[
            "ping",
            "-R",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            &ROUTED.to_string(),
        ],
    );
    let delta = Delta {
        before,
        after: lab.counters(),
    };
    assert!(out.contains("3 received"), "{out}");
    assert!(
        out.contains("RR:") && out.contains("10.0.1.1"),
        "the router recorded its route: {out}"
    );
    // Requests on hc and replies on h1.
    assert!(delta.of("passed-ip-options") >= 6, "{}", delta.show());
    assert_eq!(delta.of("forwarded"), 0, "{}", delta.show());
}

#[test]
fn forwarding_turned_off_at_run_time_stops_xdp_forwarding_too() {
    let mut lab = PolicyLab::new("fwdoff");
    lab.start_agent(None, None);
    let sink = UdpSink::start(&lab.net.ns("sink"), SINK_PORT);
    let delta = lab.send(lab.router_mac, CLIENT, ROUTED, 200);
    assert!(delta.of("forwarded") >= 200, "{}", delta.show());

    // The operator stops routing on the ingress interface: the kernel forwards nothing from
    // it, and neither may XDP (the agent re-reads the switch every second).
    lab.net
        .exec("host", &["sysctl", "-qw", "net.ipv4.conf.hc.forwarding=0"]);
    thread::sleep(Duration::from_millis(1500));
    let arrived = sink.total();
    let delta = lab.send(lab.router_mac, CLIENT, ROUTED, 200);
    assert_eq!(delta.of("forwarded"), 0, "{}", delta.show());
    assert!(delta.of("passed-forwarding-off") >= 200, "{}", delta.show());
    assert_eq!(
        sink.total(),
        arrived,
        "the kernel forwarded with forwarding off"
    );

    lab.net
        .exec("host", &["sysctl", "-qw", "net.ipv4.conf.hc.forwarding=1"]);
    thread::sleep(Duration::from_millis(1500));
    let delta = lab.send(lab.router_mac, CLIENT, ROUTED, 200);
    assert!(delta.of("forwarded") >= 200, "{}", delta.show());
    assert!(lab.log().contains("kernel forwarding switches changed"));
}
