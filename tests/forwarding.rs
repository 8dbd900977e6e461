//! End to end, in network namespaces: a generator, a router running the real `router-agent`,
//! two sinks holding the same service address. Traffic to the service is forwarded by XDP over
//! both sinks (ECMP), moves to the survivor when a link goes down, and keeps flowing after the
//! agent is killed. Needs root, iproute2 and ethtool.
//!
//! ```text
//!   gen ── g0 ═══ r0 ── [rtr: router-agent, XDP on r0 r1 r2] ── r1 ═══ s1 (198.18.0.1)
//!                                                            └─ r2 ═══ s2 (198.18.0.1)
//! ```

mod netns;

use std::{
    fs,
    net::{IpAddr, SocketAddr},
    process::Child,
    thread,
    time::{Duration, Instant},
};

use netns::{AGENT, Namespaces, sh, spawn_logged};
use serde_json::{Value, json};

const SERVICE: &str = "198.18.0.1";
const SERVICE_V6: &str = "2001:db8:5::1";

/// Namespaces and pins of one test; removed on drop, also when the test fails.
struct Lab {
    agent: Option<Child>,
    /// Last: dropped after the agent is killed.
    net: Namespaces,
}

impl Lab {
    fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    fn new(tag: &str) -> Self {
        let net = Namespaces::new("hrt-", tag, &["gen", "rtr", "s1", "s2"]);
        for (peer, local, remote) in [("gen", "g0", "r0"), ("s1", "s1", "r1"), ("s2", "s2", "r2")] {
            net.veth((peer, local), ("rtr", remote));
        }
        let lab = Self { agent: None, net };
        let setup: &[(&str, &[&str])] = &[
            ("gen", &["ip", "addr", "add", "10.1.0.2/24", "dev", "g0"]),
            (
                "gen",
                &[
                    "ip",
                    "addr",
                    "add",
                    "2001:db8:1::2/64",
                    "dev",
                    "g0",
                    "nodad",
                ],
            ),
            ("gen", &["ip", "link", "set", "g0", "up"]),
            // veth leaves UDP checksums to "hardware" (CHECKSUM_PARTIAL); an XDP-redirected
            // frame becomes a new skb whose checksum the sink verifies. Compute them here, as
            // a real NIC would before the wire.
            ("gen", &["ethtool", "-K", "g0", "tx", "off"]),
            (
                "gen",
                &["ip", "route", "add", "198.18.0.0/24", "via", "10.1.0.1"],
            ),
            (
                "gen",
                &[
                    "ip",
                    "route",
                    "add",
                    "2001:db8:5::/64",
                    "via",
                    "2001:db8:1::1",
                ],
            ),
            ("rtr", &["ip", "addr", "add", "10.1.0.1/24", "dev", "r0"]),
            (
                "rtr",
                &[
                    "ip",
                    "addr",
                    "add",
                    "2001:db8:1::1/64",
                    "dev",
                    "r0",
                    "nodad",
                ],
            ),
            ("rtr", &["ip", "addr", "add", "10.2.0.1/24", "dev", "r1"]),
            (
                "rtr",
                &[
                    "ip",
                    "addr",
                    "add",
                    "2001:db8:2::1/64",
                    "dev",
                    "r1",
                    "nodad",
                ],
            ),
            ("rtr", &["ip", "addr", "add", "10.3.0.1/24", "dev", "r2"]),
            (
                "rtr",
                &[
                    "ip",
                    "addr",
                    "add",
                    "2001:db8:3::1/64",
                    "dev",
                    "r2",
                    "nodad",
                ],
            ),
            ("rtr", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            ("rtr", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]),
            ("s1", &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]),
            ("s2", &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]),
            ("s1", &["ip", "addr", "add", "10.2.0.2/24", "dev", "s1"]),
            (
                "s1",
                &[
                    "ip",
                    "addr",
                    "add",
                    "2001:db8:2::2/64",
                    "dev",
                    "s1",
                    "nodad",
                ],
            ),
            ("s2", &["ip", "addr", "add", "10.3.0.2/24", "dev", "s2"]),
            (
                "s2",
                &[
                    "ip",
                    "addr",
                    "add",
                    "2001:db8:3::2/64",
                    "dev",
                    "s2",
                    "nodad",
                ],
            ),
        ];
        for (role, args) in setup {
            lab.exec(role, args);
        }
        for iface in ["r0", "r1", "r2"] {
            lab.exec("rtr", &["ip", "link", "set", iface, "up"]);
        }
        for sink in ["s1", "s2"] {
            lab.exec(
                sink,
                &["ip", "addr", "add", &format!("{SERVICE}/32"), "dev", "lo"],
            );
            lab.exec(
                sink,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{SERVICE_V6}/128"),
                    "dev",
                    "lo",
                ],
            );
            lab.exec(sink, &["ip", "link", "set", sink, "up"]);
            // XDP_REDIRECT into a veth is delivered only if the peer runs NAPI (GRO or XDP):
            // GRO stays off here, the agent must turn it on at these peers of its interfaces.
            lab.exec(sink, &["ethtool", "-K", sink, "gro", "off"]);
            // No route back: the sinks' ICMP port-unreachable replies stay home, so the
            // router's kernel forwards nothing in these tests.
        }
        lab
    }

    fn start_agent(&mut self, engine: &str) {
        let config = format!(
            r#"
            [datapath]
            pin_dir = "{pin_dir}"
            engine = "{engine}"

            [control]
            socket = "{socket}"

            [[interface]]
            name = "r0"
            [[interface]]
            name = "r1"
            [[interface]]
            name = "r2"

            [[route]]
            prefix = "198.18.0.0/24"
            nexthops = [{{ via = "10.2.0.2" }}, {{ via = "10.3.0.2" }}]
            [[route]]
            prefix = "2001:db8:5::/64"
            nexthops = [{{ via = "2001:db8:2::2" }}, {{ via = "2001:db8:3::2" }}]
            "#,
            pin_dir = self.net.pin_dir.display(),
            socket = self.net.path_str("agent.sock"),
        );
        let path = self.net.path_str("agent.toml");
        fs::write(&path, config).unwrap();
        sh(&[AGENT, "check", "-c", &path]);
        let mut command = self.net.command_in("rtr", AGENT);
        command.args(["run", "-c", &path]);
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
        // Ready once it has attached and pinned (a previous agent's pins may still be there).
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.agent_log().contains("forwarding") {
            assert!(
                Instant::now() < deadline,
                "agent not up:\n{}",
                self.agent_log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn agent_log(&self) -> String {
        fs::read_to_string(self.net.path("agent.log")).unwrap_or_default()
    }

    fn show(&self, what: &str) -> Option<Value> {
        self.net.agent_show(AGENT, "rtr", what, None)
    }

    /// Waits until both static routes point at two resolved nexthops.
    fn wait_resolved(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(fib) = self.show("fib") {
                let ready = fib["routes"]
                    .as_array()
                    .map(|routes| {
                        // The static routes (the connected subnets forward too).
                        let forward: Vec<_> = routes
                            .iter()
                            .filter(|r| {
                                r["prefix"] == "198.18.0.0/24" || r["prefix"] == "2001:db8:5::/64"
                            })
                            .filter(|r| r["action"] == "forward")
                            .collect();
                        forward.len() == 2
                            && forward.iter().all(|r| {
                                let nhs = r["nexthops"].as_array().unwrap();
                                nhs.len() == 2 && nhs.iter().all(|n| n["resolved"] == true)
                            })
                    })
                    .unwrap_or(false);
                if ready {
                    return fib;
                }
            }
            assert!(
                Instant::now() < deadline,
                "nexthops never resolved; agent log:\n{}",
                self.agent_log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `count` UDP datagrams from the generator, each from a new source port.
    fn send(&self, dst: &str, count: usize) {
        let dst: IpAddr = dst.parse().unwrap();
        self.net.send_udp("gen", SocketAddr::new(dst, 9), count);
        // Let the last packets land.
        thread::sleep(Duration::from_millis(200));
    }

    /// Datagrams a sink received for the closed port 9 (UDP NoPorts), v4 + v6.
    fn received(&self, sink: &str) -> u64 {
        snmp(
            &self.exec(sink, &["cat", "/proc/net/snmp"]),
            "Udp:",
            "NoPorts",
        ) + snmp(
            &self.exec(sink, &["cat", "/proc/net/snmp6"]),
            "Udp6NoPorts",
            "",
        )
    }

    fn kernel_forwarded(&self) -> u64 {
        snmp(
            &self.exec("rtr", &["cat", "/proc/net/snmp"]),
            "Ip:",
            "ForwDatagrams",
        ) + snmp(
            &self.exec("rtr", &["cat", "/proc/net/snmp6"]),
            "Ip6OutForwDatagrams",
            "",
        )
    }

    fn counters(&self) -> Value {
        self.show("counters").expect("show counters")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }
}

/// A counter from /proc/net/snmp ("Ip:" header/value line pairs) or snmp6 ("Name value").
fn snmp(text: &str, section: &str, field: &str) -> u64 {
    if field.is_empty() {
        return text
            .lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(section)).then(|| it.next().unwrap().parse().unwrap())
            })
            .unwrap_or(0);
    }
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(section)).collect();
    let names: Vec<&str> = lines[0].split_whitespace().collect();
    let values: Vec<&str> = lines[1].split_whitespace().collect();
    let i = names.iter().position(|n| *n == field).unwrap();
    values[i].parse().unwrap()
}

fn nexthop_packets(counters: &Value, via: &str) -> u64 {
    counters["nexthops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["via"] == via)
        .map(|n| n["packets"].as_u64().unwrap())
        .sum()
}

fn forwarded(counters: &Value) -> u64 {
    counters["verdicts"]["forwarded"].as_u64().unwrap()
}

fn xdp_forwards_over_both_paths_survives_link_loss_and_agent_kill(engine: &str) {
    let mut lab = Lab::new(&engine[..3]);
    lab.start_agent(engine);
    let fib = lab.wait_resolved();
    assert_eq!(fib["engine"], engine);
    for sink in ["s1", "s2"] {
        let features = lab.exec(sink, &["ethtool", "-k", sink]);
        assert!(
            features.contains("generic-receive-offload: on"),
            "the agent turned GRO on at its veth peer {sink}"
        );
    }

    // 1. ECMP: both sinks receive, XDP forwarded everything, the kernel nothing.
    let kernel_before = lab.kernel_forwarded();
    let (s1, s2) = (lab.received("s1"), lab.received("s2"));
    lab.send(SERVICE, 500);
    lab.send(SERVICE_V6, 500);
    let (d1, d2) = (lab.received("s1") - s1, lab.received("s2") - s2);
    assert_eq!(
        d1 + d2,
        1000,
        "all datagrams arrived (s1 {d1}, s2 {d2}); counters {}; s1 link {} snmp {}",
        lab.counters(),
        lab.exec("s1", &["ip", "-s", "-s", "link", "show", "s1"]),
        lab.exec("s1", &["nstat", "-az"]),
    );
    assert!(d1 > 300 && d2 > 300, "ECMP spreads flows: s1 {d1}, s2 {d2}");
    assert_eq!(
        lab.kernel_forwarded(),
        kernel_before,
        "the kernel forwarded nothing"
    );
    let counters = lab.counters();
    assert!(forwarded(&counters) >= 1000);
    assert!(nexthop_packets(&counters, "10.2.0.2") > 150);
    assert!(nexthop_packets(&counters, "10.3.0.2") > 150);

    // 2. s1's link goes down: everything moves to s2, nothing is lost.
    lab.exec("s1", &["ip", "link", "set", "s1", "down"]);
    thread::sleep(Duration::from_millis(500));
    let (s1, s2) = (lab.received("s1"), lab.received("s2"));
    lab.send(SERVICE, 300);
    assert_eq!(lab.received("s1"), s1);
    assert_eq!(
        lab.received("s2") - s2,
        300,
        "flows moved to s2 without loss"
    );
    // The failed nexthop is still listed, unresolved, without buckets, with its counters.
    let fib = lab.show("fib").expect("show fib");
    let service = fib["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["prefix"] == "198.18.0.0/24")
        .expect("the service route");
    let down = service["nexthops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["via"] == "10.2.0.2")
        .unwrap_or_else(|| panic!("the failed nexthop is listed: {service}"));
    assert_eq!(
        (&down["resolved"], &down["buckets"]),
        (&json!(false), &json!(0))
    );
    assert!(nexthop_packets(&lab.counters(), "10.2.0.2") > 150);

    // 3. The agent dies: the pinned program and maps keep forwarding.
    let mut agent = lab.agent.take().unwrap();
    agent.kill().unwrap();
    agent.wait().unwrap();
    let before = forwarded(&lab.counters());
    let s2 = lab.received("s2");
    lab.send(SERVICE, 200);
    assert_eq!(
        lab.received("s2") - s2,
        200,
        "forwarding continued without the agent"
    );
    assert_eq!(forwarded(&lab.counters()) - before, 200);
}

#[test]
fn dir24_engine_end_to_end() {
    xdp_forwards_over_both_paths_survives_link_loss_and_agent_kill("dir24");
}

#[test]
fn dxr_engine_end_to_end() {
    xdp_forwards_over_both_paths_survives_link_loss_and_agent_kill("dxr");
}

#[test]
fn lpm_trie_engine_end_to_end() {
    xdp_forwards_over_both_paths_survives_link_loss_and_agent_kill("lpm-trie");
}

/// The kernel engine forwards with bpf_fib_lookup over the routes the agent put in the
/// kernel (proto 201), and the agent removes them when it exits cleanly.
#[test]
fn kernel_engine_uses_the_kernel_routes_we_install() {
    let mut lab = Lab::new("ker");
    lab.start_agent("kernel");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab
        .exec("rtr", &["ip", "route", "show", "proto", "201"])
        .contains("198.18.0.0/24")
    {
        assert!(
            Instant::now() < deadline,
            "no kernel route; log:\n{}",
            lab.agent_log()
        );
        thread::sleep(Duration::from_millis(100));
    }
    // bpf_fib_lookup needs neighbor entries: the agent asked the kernel to keep them
    // resolved (managed neighbors).
    for sink in ["10.2.0.2", "10.3.0.2"] {
        while !lab
            .exec("rtr", &["ip", "neigh", "show", sink])
            .contains("lladdr")
        {
            assert!(Instant::now() < deadline, "{sink} never resolved");
            thread::sleep(Duration::from_millis(100));
        }
    }
    let kernel_before = lab.kernel_forwarded();
    let before = forwarded(&lab.counters());
    lab.send(SERVICE, 400);
    let arrived = lab.received("s1") + lab.received("s2");
    assert_eq!(arrived, 400, "log:\n{}", lab.agent_log());
    assert_eq!(forwarded(&lab.counters()) - before, 400, "forwarded by XDP");
    assert_eq!(lab.kernel_forwarded(), kernel_before);

    // Clean exit: detached, unpinned, kernel routes gone.
    let agent = lab.agent.take().unwrap();
    sh(&["kill", "-TERM", &agent.id().to_string()]);
    let output = agent.wait_with_output().unwrap();
    assert!(output.status.success(), "log:\n{}", lab.agent_log());
    assert!(!lab.net.pin_dir.exists(), "pins removed");
    assert_eq!(
        lab.exec("rtr", &["ip", "route", "show", "proto", "201"]),
        ""
    );
}
