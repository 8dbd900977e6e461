//! The kernel's routes in the XDP FIB (issue 8: "a default route captures connected
//! subnets"), end to end in network namespaces. Needs root, iproute2 and ethtool.
//!
//! ```text
//!   cli ── c0 ═══ r0 ── [rtr: router-agent, XDP on r0 r1 r2] ── r1 ═══ u0 up  (default next hop)
//!                        static 0.0.0.0/0 via 10.1.0.2      ├─ r2 ═══ k0 ctr (10.2.0.2, "container")
//!                                                            └─ r3 ═══ o0 oth (r3 not attached)
//! ```
//!
//! `up`, `ctr` and `oth` all hold the test destinations (10.9.0.5, 10.8.0.8, 10.7.0.5) on their
//! loopback: which one counts a datagram (UDP NoPorts) shows where the router sent it.

mod netns;

use std::{
    fs,
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    process::Child,
    thread,
    time::Duration,
};

use netns::{AGENT, Namespaces, sh, spawn_logged, wait_for};
use serde_json::Value;

const CONTAINER: &str = "10.2.0.2";

struct Lab {
    agent: Option<Child>,
    /// Last: dropped after the agent is killed.
    net: Namespaces,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }
}

impl Lab {
    fn new(tag: &str) -> Self {
        let net = Namespaces::new("hrc-", tag, &["cli", "rtr", "up", "ctr", "oth"]);
        for (peer, local, remote) in [
            ("cli", "c0", "r0"),
            ("up", "u0", "r1"),
            ("ctr", "k0", "r2"),
            ("oth", "o0", "r3"),
        ] {
            net.veth((peer, local), ("rtr", remote));
        }
        let lab = Self { agent: None, net };
        let run = |role: &str, cmd: &str| {
            lab.exec(role, &cmd.split_whitespace().collect::<Vec<_>>());
        };
        for (i, iface) in ["r0", "r1", "r2", "r3"].iter().enumerate() {
            run("rtr", &format!("ip addr add 10.{i}.0.1/24 dev {iface}"));
            run("rtr", &format!("ip link set {iface} up"));
        }
        run("rtr", "sysctl -qw net.ipv4.ip_forward=1");
        run("rtr", "sysctl -qw net.ipv6.conf.all.forwarding=1");
        for (role, iface, i) in [
            ("cli", "c0", 0),
            ("up", "u0", 1),
            ("ctr", "k0", 2),
            ("oth", "o0", 3),
        ] {
            run(role, &format!("ip addr add 10.{i}.0.2/24 dev {iface}"));
            run(role, &format!("ip link set {iface} up"));
            run(role, &format!("ip route add default via 10.{i}.0.1"));
            // Real UDP/TCP senders over veth: checksums computed before the "wire".
            run(role, &format!("ethtool -K {iface} tx off"));
            run(role, "sysctl -qw net.ipv4.conf.all.rp_filter=0");
        }
        for role in ["up", "ctr", "oth"] {
            for dest in ["10.9.0.5", "10.8.0.8", "10.7.0.5"] {
                run(role, &format!("ip addr add {dest}/32 dev lo"));
            }
        }
        lab
    }

    fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    fn rtr(&self, cmd: &str) {
        self.exec("rtr", &cmd.split_whitespace().collect::<Vec<_>>());
    }

    fn start_agent(&mut self) {
        let config = format!(
            r#"
            [datapath]
            pin_dir = "{pin_dir}"
            [control]
            socket = "{socket}"
            [[interface]]
            name = "r0"
            [[interface]]
            name = "r1"
            [[interface]]
            name = "r2"
            [[route]]
            prefix = "0.0.0.0/0"
            nexthops = [{{ via = "10.1.0.2" }}]
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
        wait_for(
            "agent forwarding",
            Duration::from_secs(20),
            || netns::strip_ansi(&self.log()).contains(" forwarding routes="),
            || self.log(),
        );
    }

    fn log(&self) -> String {
        fs::read_to_string(self.net.path("agent.log")).unwrap_or_default()
    }

    fn fib(&self) -> Vec<Value> {
        self.net
            .agent_show(AGENT, "rtr", "fib", None)
            .and_then(|fib| fib["routes"].as_array().cloned())
            .unwrap_or_default()
    }

    fn route(&self, prefix: &str) -> Option<Value> {
        self.fib().into_iter().find(|r| r["prefix"] == prefix)
    }

    /// Waits until `prefix` is in the FIB as `check` wants it.
    fn wait_route(&self, prefix: &str, what: &str, check: impl Fn(Option<&Value>) -> bool) {
        wait_for(
            &format!("{prefix}: {what}"),
            Duration::from_secs(10),
            || check(self.route(prefix).as_ref()),
            || format!("{:#?}\n{}", self.fib(), self.log()),
        );
    }

    fn counters(&self) -> Value {
        self.net
            .agent_show(AGENT, "rtr", "counters", None)
            .expect("show counters")
    }

    fn forwarded(&self) -> u64 {
        self.counters()["verdicts"]["forwarded"].as_u64().unwrap()
    }

    /// UDP datagrams `role` answered with port unreachable (NoPorts).
    fn received(&self, role: &str) -> u64 {
        let snmp = self.exec(role, &["cat", "/proc/net/snmp"]);
        let lines: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
        let names: Vec<&str> = lines[0].split_whitespace().collect();
        let values: Vec<&str> = lines[1].split_whitespace().collect();
        let i = names.iter().position(|n| *n == "NoPorts").unwrap();
        values[i].parse().unwrap()
    }

    /// Sends `count` datagrams from the client to `dst`:9 and returns who got how many.
    fn send(&self, dst: &str, count: usize) -> [u64; 3] {
        let roles = ["up", "ctr", "oth"];
        let before = roles.map(|r| self.received(r));
        let dst: IpAddr = dst.parse().unwrap();
        self.net.send_udp("cli", SocketAddr::new(dst, 9), count);
        thread::sleep(Duration::from_millis(300));
        let after = roles.map(|r| self.received(r));
        [0, 1, 2].map(|i| after[i] - before[i])
    }

    /// Runs `body` on a thread inside `role`'s network namespace.
    fn in_ns<T: Send + 'static>(
        &self,
        role: &str,
        body: impl FnOnce() -> T + Send + 'static,
    ) -> thread::JoinHandle<T> {
        let netns = fs::File::open(format!("/run/netns/{}", self.net.ns(role))).unwrap();
        thread::spawn(move || {
            // SAFETY: setns on this thread only.
            assert_eq!(
                unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            body()
        })
    }

    /// A TCP connection client -> container, 64 KiB each way.
    fn tcp_exchange(&self) {
        let listener = self
            .in_ns("ctr", || TcpListener::bind((CONTAINER, 7000)).unwrap())
            .join()
            .unwrap();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = vec![0u8; 65536];
            conn.read_exact(&mut got).unwrap();
            conn.write_all(&got).unwrap();
        });
        let client = self.in_ns("cli", || {
            let addr = SocketAddr::new(CONTAINER.parse().unwrap(), 7000);
            let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let sent: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
            conn.write_all(&sent).unwrap();
            let mut back = vec![0u8; 65536];
            conn.read_exact(&mut back).unwrap();
            assert_eq!(back, sent, "echoed intact");
        });
        client.join().expect("TCP client -> container");
        server.join().expect("TCP container side");
    }
}

fn nexthop_on(route: Option<&Value>, via: &str, interface: &str) -> bool {
    route.is_some_and(|r| {
        r["action"] == "forward"
            && r["group"] != 1
            && r["nexthops"].as_array().is_some_and(|n| {
                n.len() == 1 && n[0]["via"] == via && n[0]["interface"] == interface
            })
    })
}

fn local(route: Option<&Value>) -> bool {
    route.is_some_and(|r| r["action"] == "local")
}

fn passed(route: Option<&Value>) -> bool {
    route.is_some_and(|r| r["group"] == 1)
}

#[test]
fn connected_subnets_and_kernel_routes_forward_like_the_kernel() {
    let mut lab = Lab::new("conn");
    lab.start_agent();

    // 1. The FIB holds the connected subnets (on link), the static default, and passes the
    //    subnet of the interface XDP does not run on.
    lab.wait_route("10.2.0.0/24", "on link via r2", |r| {
        nexthop_on(r, "0.0.0.0", "r2")
    });
    lab.wait_route("10.0.0.0/24", "on link via r0", |r| {
        nexthop_on(r, "0.0.0.0", "r0")
    });
    lab.wait_route("0.0.0.0/0", "via 10.1.0.2", |r| {
        nexthop_on(r, "10.1.0.2", "r1")
    });
    lab.wait_route("10.3.0.0/24", "passed (r3 not attached)", passed);

    // 2. Ping and TCP client <-> container: the connected subnet, not the default.
    lab.exec(
        "cli",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", CONTAINER],
    );
    lab.exec(
        "ctr",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.0.2"],
    );
    lab.tcp_exchange();
    // The router learnt the client from its ARP request: STALE, which XDP leaves to the kernel
    // until the kernel confirms it (DELAY then REACHABLE, ~5 s, notified only at the end).
    wait_for(
        "the router's neighbor 10.0.0.2 confirmed",
        Duration::from_secs(15),
        || {
            lab.exec("rtr", &["ip", "neigh", "show", "10.0.0.2", "dev", "r0"])
                .contains("REACHABLE")
        },
        || lab.exec("rtr", &["ip", "neigh", "show"]),
    );
    // Neighbors confirmed: XDP forwards, both ways.
    let before = lab.forwarded();
    lab.exec(
        "cli",
        &["ping", "-c", "20", "-i", "0.01", "-W", "2", CONTAINER],
    );
    let forwarded = lab.forwarded() - before;
    assert!(
        forwarded >= 40,
        "echo requests and replies forwarded by XDP: {forwarded}; counters {}",
        lab.counters()
    );
    let [up, ctr, _] = lab.send(CONTAINER, 100);
    assert_eq!((up, ctr), (0, 100), "to the container, not the default");

    // 3. Before any kernel route: 10.9.0.0/24 follows the default, to `up`.
    assert_eq!(lab.send("10.9.0.5", 100), [100, 0, 0]);
    lab.rtr("ip route add 10.9.0.0/24 via 10.2.0.2");
    lab.wait_route("10.9.0.0/24", "via the container", |r| {
        nexthop_on(r, CONTAINER, "r2")
    });
    let before = lab.forwarded();
    assert_eq!(lab.send("10.9.0.5", 200), [0, 200, 0], "out r2");
    assert!(
        lab.forwarded() - before >= 200,
        "in XDP: {}",
        lab.counters()
    );
    lab.rtr("ip route del 10.9.0.0/24 via 10.2.0.2");
    lab.wait_route("10.9.0.0/24", "gone", |r| r.is_none());
    assert_eq!(
        lab.send("10.9.0.5", 100),
        [100, 0, 0],
        "back to the default"
    );

    // 4. A /32 device route (what a CNI installs for a pod).
    lab.rtr("ip route add 10.8.0.8/32 dev r2");
    lab.wait_route("10.8.0.8/32", "on link via r2", |r| {
        nexthop_on(r, "0.0.0.0", "r2")
    });
    // The first packets resolve the neighbor through the kernel; then XDP forwards.
    assert_eq!(lab.send("10.8.0.8", 20), [0, 20, 0]);
    let before = lab.forwarded();
    assert_eq!(lab.send("10.8.0.8", 200), [0, 200, 0]);
    assert!(
        lab.forwarded() - before >= 200,
        "in XDP: {}",
        lab.counters()
    );
    lab.rtr("ip route del 10.8.0.8/32 dev r2");
    lab.wait_route("10.8.0.8/32", "gone", |r| r.is_none());
    assert_eq!(lab.send("10.8.0.8", 100), [100, 0, 0]);

    // 5. A route through an interface XDP does not run on: passed, the kernel forwards it.
    lab.rtr("ip route add 10.7.0.0/24 via 10.3.0.2");
    lab.wait_route("10.7.0.0/24", "passed", passed);
    let before = lab.counters();
    assert_eq!(
        lab.send("10.7.0.5", 100),
        [0, 0, 100],
        "out r3, by the kernel"
    );
    let after = lab.counters();
    let by_route = |c: &Value| c["verdicts"]["passed-by-route"].as_u64().unwrap_or(0);
    assert!(
        by_route(&after) - by_route(&before) >= 100,
        "passed by route: {after}"
    );
}

/// The kernel's local table decides what is the host's: a directed broadcast to a connected
/// subnet and the IPv6 subnet-router anycast address are delivered to the router itself (not
/// forwarded on link, which XDP did before only because no neighbor entry exists for them).
#[test]
fn subnet_broadcast_and_subnet_router_anycast_are_local() {
    let mut lab = Lab::new("local");
    lab.rtr("ip addr add 2001:db8::1/64 dev r0 nodad");
    lab.rtr("ip addr add 2001:db8:2::1/64 dev r2 nodad");
    lab.exec(
        "cli",
        &["ip", "addr", "add", "2001:db8::2/64", "dev", "c0", "nodad"],
    );
    lab.exec(
        "cli",
        &["ip", "-6", "route", "add", "default", "via", "2001:db8::1"],
    );
    lab.exec(
        "ctr",
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:2::2/64",
            "dev",
            "k0",
            "nodad",
        ],
    );
    lab.start_agent();

    lab.wait_route("10.2.0.255/32", "local (broadcast)", local);
    lab.wait_route("10.2.0.1/32", "local (address)", local);
    lab.wait_route("2001:db8:2::/128", "local (anycast)", local);
    lab.wait_route("2001:db8:2::1/128", "local (address)", local);
    lab.wait_route("2001:db8:2::/64", "on link via r2", |r| {
        nexthop_on(r, "::", "r2")
    });

    let passed_local = |lab: &Lab| {
        lab.counters()["verdicts"]["passed-local"]
            .as_u64()
            .unwrap_or(0)
    };
    for dst in ["10.2.0.255", "2001:db8:2::"] {
        // The first datagrams may wait for the client's own neighbor resolution.
        lab.send(dst, 5);
        let before = passed_local(&lab);
        let [_, ctr, _] = lab.send(dst, 50);
        assert_eq!(ctr, 0, "{dst}: not forwarded to the subnet");
        assert!(
            passed_local(&lab) - before >= 50,
            "{dst}: passed as local: {}",
            lab.counters()
        );
    }

    // Forwarding off: the kernel drops the subnet-router anycast address, and so does the FIB.
    lab.rtr("sysctl -qw net.ipv6.conf.all.forwarding=0");
    lab.wait_route("2001:db8:2::/128", "gone (forwarding off)", |r| r.is_none());
    lab.rtr("sysctl -qw net.ipv6.conf.all.forwarding=1");
    lab.wait_route("2001:db8:2::/128", "local again", local);

    // The address goes: its local routes go with it.
    lab.rtr("ip addr del 10.2.0.1/24 dev r2");
    lab.wait_route("10.2.0.255/32", "gone", |r| r.is_none());
    lab.wait_route("10.2.0.1/32", "gone", |r| r.is_none());
}
