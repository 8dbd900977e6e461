//! End to end, in network namespaces: a generator, a router running the real `router-agent`,
//! two sinks holding the same service address. Traffic to the service is forwarded by XDP over
//! both sinks (ECMP), moves to the survivor when a link goes down, and keeps flowing after the
//! agent is killed. Needs root, iproute2 and ethtool.
//!
//! ```text
//!   gen ── g0 ═══ r0 ── [rtr: router-agent, XDP on r0 r1 r2] ── r1 ═══ s1 (198.18.0.1)
//!                                                            └─ r2 ═══ s2 (198.18.0.1)
//! ```

use std::{
    fs,
    net::UdpSocket,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

const AGENT: &str = env!("CARGO_BIN_EXE_router-agent");
const SERVICE: &str = "198.18.0.1";
const SERVICE_V6: &str = "2001:db8:5::1";

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Namespaces and pins of one test; removed on drop, also when the test fails.
struct Lab {
    prefix: String,
    pin_dir: PathBuf,
    agent: Option<Child>,
}

impl Lab {
    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn exec(&self, role: &str, args: &[&str]) -> String {
        let ns = self.ns(role);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        sh(&full)
    }

    fn new(tag: &str) -> Self {
        remove_stale_labs();
        let prefix = format!("hrt-{}-{tag}", std::process::id());
        let lab = Self {
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/{prefix}")),
            prefix,
            agent: None,
        };
        for role in ["gen", "rtr", "s1", "s2"] {
            sh(&["ip", "netns", "add", &lab.ns(role)]);
            lab.exec(role, &["ip", "link", "set", "lo", "up"]);
        }
        let rtr = lab.ns("rtr");
        for (peer, local, remote) in [("gen", "g0", "r0"), ("s1", "s1", "r1"), ("s2", "s2", "r2")] {
            let peer_ns = lab.ns(peer);
            sh(&[
                "ip", "link", "add", local, "netns", &peer_ns, "type", "veth", "peer", "name",
                remote, "netns", &rtr,
            ]);
        }
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
            socket = "/run/{prefix}.sock"

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
            pin_dir = self.pin_dir.display(),
            prefix = self.prefix,
        );
        let path = std::env::temp_dir().join(format!("{}.toml", self.prefix));
        fs::write(&path, config).unwrap();
        let check = Command::new(AGENT)
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log =
            fs::File::create(std::env::temp_dir().join(format!("{}.log", self.prefix))).unwrap();
        let child = self
            .agent_command()
            .args(["run", "-c"])
            .arg(&path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.agent = Some(child);
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
        fs::read_to_string(std::env::temp_dir().join(format!("{}.log", self.prefix)))
            .unwrap_or_default()
    }

    /// router-agent in the router's network namespace. Not `ip netns exec`: that also gives
    /// the process a private mount namespace with a fresh /sys, where our bpffs pins would
    /// be invisible to everyone else (and die with the process).
    fn agent_command(&self) -> Command {
        let netns = fs::File::open(format!("/run/netns/{}", self.ns("rtr"))).unwrap();
        let mut command = Command::new(AGENT);
        // SAFETY: setns is async-signal-safe; the fd stays open in the closure.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    }

    fn show(&self, what: &str) -> Option<Value> {
        let out = self
            .agent_command()
            .args(["show", what, "--json", "--pin-dir"])
            .arg(&self.pin_dir)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Waits until both routes point at two resolved nexthops.
    fn wait_resolved(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(fib) = self.show("fib") {
                let ready = fib["routes"]
                    .as_array()
                    .map(|routes| {
                        let forward: Vec<_> =
                            routes.iter().filter(|r| r["action"] == "forward").collect();
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
        let netns = fs::File::open(format!("/run/netns/{}", self.ns("gen"))).unwrap();
        let dst = dst.to_owned();
        thread::spawn(move || {
            // SAFETY: setns on this thread only; the thread ends right after.
            assert_eq!(
                unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            let bind = if dst.contains(':') {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let port = if dst.contains(':') {
                format!("[{dst}]:9")
            } else {
                format!("{dst}:9")
            };
            for _ in 0..count {
                let socket = UdpSocket::bind(bind).unwrap();
                socket.send_to(b"hostrouter", &port).unwrap();
            }
        })
        .join()
        .unwrap();
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
        // Unpinning the link detaches the program; then the namespaces can go.
        let _ = fs::remove_dir_all(&self.pin_dir);
        for role in ["gen", "rtr", "s1", "s2"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(role)])
                .status();
        }
        let _ = fs::remove_file(std::env::temp_dir().join(format!("{}.toml", self.prefix)));
    }
}

/// Removes namespaces and pins left by runs whose process is gone (a killed test run).
fn remove_stale_labs() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("hrt-").and_then(|r| r.split('-').next()) else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
            let prefix = name.rsplit_once('-').map(|(p, _)| p).unwrap_or(&name);
            let _ = fs::remove_dir_all(format!("/sys/fs/bpf/{prefix}"));
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
    assert!(!lab.pin_dir.exists(), "pins removed");
    assert_eq!(
        lab.exec("rtr", &["ip", "route", "show", "proto", "201"]),
        ""
    );
}
