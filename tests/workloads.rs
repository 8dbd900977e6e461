//! Workload routes followed live (`[[redistribute]]`): a container's `/32 dev veth` route
//! appears in the kernel and the ToR has it within 100 ms; traffic to it is forwarded by XDP;
//! deleting it withdraws it; the limit holds back what exceeds it; an address on a dummy
//! interface is announced and removed. Needs root and FRR (scripts/setup).
//!
//! ```text
//!   client ── c0 ═══ tc ── tor (FRR, AS 65001) ── th ═══ ht ── [host: router-agent AS 65101]
//!   10.0.10.2        10.0.10.1        10.0.11.1        10.0.11.2      └─ veth-c0 ═══ eth0 ── ctr
//!                                                                 10.200.255.1   10.200.0.5/32
//! ```
//!
//! Arrival times come from `ip -ts monitor route` in the ToR's and the host's namespaces,
//! both started before the change: the same clock, no vtysh polling in the measurement.

mod interop;
mod netns;

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::Child,
    thread,
    time::Duration,
};

use interop::frr::Frr;
use netns::{AGENT, Namespaces, spawn_logged, stop, wait_for};
use serde_json::Value;

const CONTAINER: &str = "10.200.0.5";
/// The route's arrival at the ToR, from the host kernel's event: the issue's target.
const TARGET_MS: f64 = 100.0;

struct Lab {
    agent: Option<Child>,
    monitors: Vec<Child>,
    frr: Option<Frr>,
    /// Last: dropped after the processes are stopped.
    net: Namespaces,
}

impl Lab {
    fn new() -> Self {
        let net = Namespaces::new("wl-", "workloads", &["client", "tor", "host", "ctr"]);
        net.veth(("client", "c0"), ("tor", "tc"));
        net.veth(("tor", "th"), ("host", "ht"));
        net.veth(("host", "veth-c0"), ("ctr", "eth0"));
        let lab = Self {
            agent: None,
            monitors: Vec::new(),
            frr: None,
            net,
        };
        let setup: &[(&str, &[&str])] = &[
            (
                "client",
                &["ip", "addr", "add", "10.0.10.2/24", "dev", "c0"],
            ),
            ("client", &["ip", "link", "set", "c0", "up"]),
            (
                "client",
                &["ip", "route", "add", "default", "via", "10.0.10.1"],
            ),
            ("client", &["ethtool", "-K", "c0", "tx", "off"]),
            ("tor", &["ip", "addr", "add", "10.0.10.1/24", "dev", "tc"]),
            ("tor", &["ip", "addr", "add", "10.0.11.1/24", "dev", "th"]),
            ("tor", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            ("tor", &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]),
            ("tor", &["ethtool", "-K", "tc", "tx", "off"]),
            ("tor", &["ethtool", "-K", "th", "tx", "off"]),
            // Frames XDP redirects into a veth need NAPI (GRO) on the receiving end.
            ("tor", &["ethtool", "-K", "th", "gro", "on"]),
            ("host", &["ip", "addr", "add", "10.0.11.2/24", "dev", "ht"]),
            ("host", &["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"]),
            // The container's gateway, CNI point-to-point style.
            (
                "host",
                &["ip", "addr", "add", "10.200.255.1/32", "dev", "veth-c0"],
            ),
            ("host", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            (
                "ctr",
                &["ip", "addr", "add", "10.200.0.5/32", "dev", "eth0"],
            ),
            ("ctr", &["ip", "link", "set", "eth0", "up"]),
            (
                "ctr",
                &["ip", "route", "add", "10.200.255.1", "dev", "eth0"],
            ),
            (
                "ctr",
                &["ip", "route", "add", "default", "via", "10.200.255.1"],
            ),
            ("ctr", &["ethtool", "-K", "eth0", "tx", "off"]),
            ("ctr", &["ethtool", "-K", "eth0", "gro", "on"]),
        ];
        for (role, args) in setup {
            lab.net.exec(role, args);
        }
        for (role, iface) in [
            ("tor", "tc"),
            ("tor", "th"),
            ("host", "ht"),
            ("host", "veth-c0"),
        ] {
            lab.net.exec(role, &["ip", "link", "set", iface, "up"]);
        }
        lab
    }

    fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    fn start_frr(&mut self) {
        let config = "hostname tor
router bgp 65001
 bgp router-id 10.0.11.1
 no bgp ebgp-requires-policy
 neighbor 10.0.11.2 remote-as 65101
 neighbor 10.0.11.2 timers 3 9
 neighbor 10.0.11.2 advertisement-interval 0
 address-family ipv4 unicast
  neighbor 10.0.11.2 default-originate
 exit-address-family
!
";
        self.frr = Some(Frr::start(&self.net, "tor", config));
    }

    fn start_agent(&mut self) {
        let path = self.write_config(5, r#"["main"]"#);
        let mut command = self.net.command_in("host", AGENT);
        command
            .args(["run", "-c", &path])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
    }

    /// `router-agent reload` after writing the config with `limit` and `tables`: (success,
    /// stdout + stderr).
    fn reload(&self, limit: usize, tables: &str) -> (bool, String) {
        let path = self.write_config(limit, tables);
        let out = self
            .net
            .command_in("host", AGENT)
            .args(["reload", "-c", &path])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn write_config(&self, limit: usize, tables: &str) -> String {
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
kernel_routes = {{ protocols = ["boot"], tables = {tables}, interfaces = ["veth-c*"] }}
addresses = {{ interfaces = ["dummy*"] }}
limit = {limit}

[bgp]
asn = 65101
router_id = "192.0.2.10"

[bgp.prefix_list.workloads]
ipv4 = [{{ action = "permit", prefix = "10.200.0.0/16", le = 32 }},
        {{ action = "permit", prefix = "192.0.2.0/24", le = 32 }}]

[[bgp.neighbor]]
address = "10.0.11.1"
remote_as = 65001
import = "default-only"
export = {{ prefix_list = "workloads" }}
hold_time = 9
"#,
            pin_dir = self.net.pin_dir.display(),
            socket = self.net.path_str("agent.sock"),
        );
        let path = self.net.path_str("host.toml");
        fs::write(&path, config).unwrap();
        path
    }

    /// `ip -ts monitor route` in `role`'s namespace, to `<name>.log`.
    fn monitor(&mut self, role: &str, name: &str) -> PathBuf {
        let path = self.net.path(&format!("{name}.log"));
        let mut command = self.net.command_in(role, "ip");
        command.args(["-ts", "monitor", "route"]);
        self.monitors.push(spawn_logged(command, &path));
        path
    }

    fn log(&self) -> String {
        let agent = fs::read_to_string(self.net.path("agent.log")).unwrap_or_default();
        format!("agent log:\n{agent}")
    }

    fn log_count(&self, needle: &str) -> usize {
        fs::read_to_string(self.net.path("agent.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn show(&self, what: &str) -> Value {
        let config = PathBuf::from(self.net.path_str("host.toml"));
        self.net
            .agent_show(AGENT, "host", what, Some(&config))
            .unwrap_or(Value::Null)
    }

    /// The prefixes FRR has from the host (its Adj-RIB-In after policy).
    fn tor_prefixes(&self) -> Vec<String> {
        let routes = self
            .frr
            .as_ref()
            .unwrap()
            .vtysh("show bgp ipv4 unicast neighbors 10.0.11.2 routes json");
        routes["routes"]
            .as_object()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn tor_kernel_has(&self, prefix: &str) -> bool {
        self.exec("tor", &["ip", "route", "show", prefix, "proto", "bgp"])
            .contains(prefix.trim_end_matches("/32"))
    }

    fn container_packets(&self) -> u64 {
        self.show("counters")["nexthops"]
            .as_array()
            .map(|nhs| {
                nhs.iter()
                    .filter(|n| n["interface"] == "veth-c0")
                    .map(|n| n["packets"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// A TCP connection client -> container, 64 KiB each way.
    fn tcp_exchange(&self) {
        let listener = self
            .net
            .namespace("ctr")
            .run_in(|| Ok(TcpListener::bind((CONTAINER, 7000))?))
            .unwrap();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = vec![0u8; 65536];
            conn.read_exact(&mut got).unwrap();
            conn.write_all(&got).unwrap();
        });
        self.net
            .namespace("client")
            .run_in(|| {
                let addr = SocketAddr::new(CONTAINER.parse().unwrap(), 7000);
                let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                conn.set_read_timeout(Some(Duration::from_secs(5)))?;
                let sent: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
                conn.write_all(&sent)?;
                let mut back = vec![0u8; 65536];
                conn.read_exact(&mut back)?;
                assert_eq!(back, sent, "echoed intact");
                Ok(())
            })
            .unwrap_or_else(|e| panic!("TCP client -> container: {e:#}\n{}", self.log()));
        server.join().expect("TCP container side");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for monitor in self.monitors.drain(..) {
            stop(monitor, libc::SIGTERM);
        }
        if let Some(agent) = self.agent.take() {
            stop(agent, libc::SIGTERM);
        }
    }
}

/// Seconds of the day of an `ip -ts` line (`[2026-12-05T09:40:01.123456] ...`).
fn stamp(line: &str) -> Option<f64> {
    let time = line
        .strip_prefix('[')?
        .split(']')
        .next()?
        .split('T')
        .nth(1)?;
    let mut parts = time.split(':');
    let (h, m, s): (f64, f64, f64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The time of the first line of `log` for which `wanted` holds, once there is one.
fn first_stamp(log: &PathBuf, wanted: impl Fn(&str) -> bool) -> Option<f64> {
    fs::read_to_string(log)
        .ok()?
        .lines()
        .find(|line| wanted(line))
        .and_then(stamp)
}

/// Waits for `wanted` in both monitors; the delay from the host's line to the ToR's, in ms.
fn delay_ms(host: &PathBuf, tor: &PathBuf, what: &str, wanted: impl Fn(&str) -> bool) -> f64 {
    let mut times = (None, None);
    wait_for(
        what,
        Duration::from_secs(10),
        || {
            times = (first_stamp(host, &wanted), first_stamp(tor, &wanted));
            times.0.is_some() && times.1.is_some()
        },
        || {
            format!(
                "host monitor:\n{}\ntor monitor:\n{}",
                fs::read_to_string(host).unwrap_or_default(),
                fs::read_to_string(tor).unwrap_or_default()
            )
        },
    );
    (times.1.unwrap() - times.0.unwrap()) * 1000.0
}

#[test]
fn workload_routes_are_announced_live_and_forwarded_by_xdp() {
    let mut lab = Lab::new();
    lab.start_frr();
    lab.start_agent();
    wait_for(
        "the session with the ToR",
        Duration::from_secs(30),
        || {
            lab.show("neighbors")
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n["state"] == "Established"))
        },
        || lab.log(),
    );
    // No dummy interface yet: said once at start, naming the key.
    wait_for(
        "the unmatched pattern warning",
        Duration::from_secs(5),
        || {
            lab.log_count(r#"redistribute[0].addresses.interfaces[0] "dummy*" matches nothing yet"#)
                == 1
        },
        || lab.log(),
    );
    assert!(lab.tor_prefixes().is_empty(), "{:?}", lab.tor_prefixes());

    // A workload appears: announced, within 100 ms of the kernel route.
    let host_mon = lab.monitor("host", "host-monitor");
    let tor_mon = lab.monitor("tor", "tor-monitor");
    thread::sleep(Duration::from_millis(300)); // both monitors listening
    lab.exec(
        "host",
        &[
            "ip",
            "route",
            "add",
            "10.200.0.5/32",
            "dev",
            "veth-c0",
            "proto",
            "boot",
        ],
    );
    let added = delay_ms(&host_mon, &tor_mon, "10.200.0.5 at the ToR", |l| {
        l.contains("10.200.0.5 ") && !l.contains("Deleted")
    });
    eprintln!("workload route: kernel (host) -> ToR kernel in {added:.1} ms");
    assert!(
        added <= TARGET_MS,
        "announced in {added:.1} ms (target {TARGET_MS} ms)\n{}",
        lab.log()
    );
    let path = lab
        .frr
        .as_ref()
        .unwrap()
        .vtysh("show bgp ipv4 unicast 10.200.0.5/32 json");
    assert_eq!(path["paths"][0]["aspath"]["string"], "65101", "{path}");

    // Client -> container over TCP, forwarded by XDP to the container's veth.
    let before = lab.container_packets();
    lab.tcp_exchange();
    let after = lab.container_packets();
    assert!(
        after > before + 10,
        "container nexthop counters {before} -> {after}: {}",
        lab.show("counters")
    );

    // The workload goes: withdrawn within 100 ms.
    lab.exec(
        "host",
        &[
            "ip",
            "route",
            "del",
            "10.200.0.5/32",
            "dev",
            "veth-c0",
            "proto",
            "boot",
        ],
    );
    let withdrawn = delay_ms(&host_mon, &tor_mon, "10.200.0.5 gone from the ToR", |l| {
        l.contains("Deleted 10.200.0.5 ")
    });
    eprintln!("workload route: deleted (host) -> gone at the ToR in {withdrawn:.1} ms");
    assert!(
        withdrawn <= TARGET_MS,
        "withdrawn in {withdrawn:.1} ms (target {TARGET_MS} ms)\n{}",
        lab.log()
    );

    // An address on a dummy interface: announced as /32, then removed.
    // A veth named like a dummy: not every kernel has the dummy driver (this one does not).
    lab.net.veth(("host", "dummy1"), ("ctr", "dpeer"));
    lab.exec("host", &["ip", "link", "set", "dummy1", "up"]);
    lab.exec(
        "host",
        &["ip", "addr", "add", "192.0.2.77/32", "dev", "dummy1"],
    );
    wait_for(
        "192.0.2.77/32 at the ToR",
        Duration::from_secs(5),
        || lab.tor_kernel_has("192.0.2.77/32"),
        || lab.log(),
    );
    lab.exec(
        "host",
        &["ip", "addr", "del", "192.0.2.77/32", "dev", "dummy1"],
    );
    wait_for(
        "192.0.2.77/32 withdrawn",
        Duration::from_secs(5),
        || !lab.tor_kernel_has("192.0.2.77/32"),
        || lab.log(),
    );

    // Limit 5, seven workloads: five announced (the lowest), two held back, one warning.
    let mut batch = String::new();
    for i in 11..=17 {
        batch += &format!("route add 10.200.0.{i}/32 dev veth-c0 proto boot\n");
    }
    let batch_path = lab.net.path("routes.batch");
    fs::write(&batch_path, batch).unwrap();
    lab.exec("host", &["ip", "-batch", batch_path.to_str().unwrap()]);
    let five: Vec<String> = (11..=15).map(|i| format!("10.200.0.{i}/32")).collect();
    wait_for(
        "five workloads at the ToR",
        Duration::from_secs(5),
        || lab.tor_prefixes() == five,
        || format!("tor: {:?}\n{}", lab.tor_prefixes(), lab.log()),
    );
    thread::sleep(Duration::from_millis(500)); // nothing more arrives
    assert_eq!(lab.tor_prefixes(), five);
    let status = lab.show("redistribute");
    assert_eq!(status[0]["announced"], 5, "{status}");
    assert_eq!(status[0]["held_back"], 2, "{status}");
    // One warning for the crossing; how many were over at that moment depends on whether the
    // kernel's notifications of the batch arrived in one read or several.
    assert_eq!(
        lab.log_count("5 prefixes, over its limit;"),
        1,
        "{}",
        lab.log()
    );
    // One goes: the lowest held back takes its place.
    lab.exec(
        "host",
        &[
            "ip",
            "route",
            "del",
            "10.200.0.12/32",
            "dev",
            "veth-c0",
            "proto",
            "boot",
        ],
    );
    let now: Vec<String> = [11, 13, 14, 15, 16]
        .iter()
        .map(|i| format!("10.200.0.{i}/32"))
        .collect();
    wait_for(
        "a held-back workload admitted",
        Duration::from_secs(5),
        || lab.tor_prefixes() == now,
        || format!("tor: {:?}\n{}", lab.tor_prefixes(), lab.log()),
    );
    assert_eq!(
        lab.log_count("over its limit"),
        1,
        "still one warning for this crossing\n{}",
        lab.log()
    );

    // Reload: a table the running agent does not observe is restart-only, nothing applied.
    let (ok, text) = lab.reload(10, r#"["main", 100]"#);
    assert!(
        !ok && text.contains("redistribute[0].kernel_routes.tables[1]")
            && text.contains("needs a restart"),
        "{text}"
    );
    assert_eq!(lab.tor_prefixes(), now);
    // A higher limit: re-evaluated in memory, the held-back route is announced.
    let (ok, text) = lab.reload(10, r#"["main"]"#);
    assert!(ok, "{text}");
    let all: Vec<String> = [11, 13, 14, 15, 16, 17]
        .iter()
        .map(|i| format!("10.200.0.{i}/32"))
        .collect();
    wait_for(
        "the held-back workload announced after the reload",
        Duration::from_secs(5),
        || lab.tor_prefixes() == all,
        || format!("tor: {:?}\n{}", lab.tor_prefixes(), lab.log()),
    );
    assert_eq!(lab.show("redistribute")[0]["held_back"], 0);
}
