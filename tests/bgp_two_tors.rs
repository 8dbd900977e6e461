//! The two-ToR scenario with real BGP daemons: FRR as ToR1 (AS 65001), BIRD 2 as ToR2
//! (AS 65002), hostrouter (AS 65101) in between them and a client namespace (a VM or container
//! the host serves). Needs root, FRR and BIRD installed (scripts/setup).
//!
//! ```text
//!   client ── c0 ═══ hc ── [host: router-agent AS 65101] ── h1 ═══ t1 ── tor1 (FRR, AS 65001)
//!                                                        └─ h2 ═══ t2 ── tor2 (BIRD, AS 65002)
//! ```
//!
//! Both ToRs send a default route and a more-specific the host's import policy
//! (`default-only`) must reject; the host advertises its loopback /32. The host must use
//! both ToRs for the default route (ECMP across neighbor ASes, forwarded by XDP), must never
//! pass one ToR's routes to the other, and must stop using a ToR whose session goes down.

use std::{
    fs,
    net::UdpSocket,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_router-agent");
const REMOTE: &str = "203.0.113.1";

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            log()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

struct Lab {
    prefix: String,
    dir: PathBuf,
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

    fn new() -> Self {
        remove_stale_labs();
        let prefix = format!("hrbgp-{}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // FRR and BIRD drop privileges; let them write their sockets here.
        sh(&["chmod", "777", dir.to_str().unwrap()]);
        let lab = Self {
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/{prefix}")),
            prefix,
            dir,
            agent: None,
        };
        for role in ["client", "host", "tor1", "tor2"] {
            sh(&["ip", "netns", "add", &lab.ns(role)]);
            lab.exec(role, &["ip", "link", "set", "lo", "up"]);
        }
        let host = lab.ns("host");
        for (peer, local, remote) in [
            ("client", "c0", "hc"),
            ("tor1", "t1", "h1"),
            ("tor2", "t2", "h2"),
        ] {
            sh(&[
                "ip",
                "link",
                "add",
                local,
                "netns",
                &lab.ns(peer),
                "type",
                "veth",
                "peer",
                "name",
                remote,
                "netns",
                &host,
            ]);
        }
        let setup: &[(&str, &[&str])] = &[
            ("client", &["ip", "addr", "add", "10.0.0.2/24", "dev", "c0"]),
            ("client", &["ip", "link", "set", "c0", "up"]),
            (
                "client",
                &["ip", "route", "add", "default", "via", "10.0.0.1"],
            ),
            // Compute checksums before the "wire" (veth leaves them partial otherwise).
            ("client", &["ethtool", "-K", "c0", "tx", "off"]),
            ("host", &["ip", "addr", "add", "10.0.0.1/24", "dev", "hc"]),
            ("host", &["ip", "addr", "add", "10.0.1.2/24", "dev", "h1"]),
            ("host", &["ip", "addr", "add", "10.0.2.2/24", "dev", "h2"]),
            ("host", &["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"]),
            ("host", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            ("tor1", &["ip", "addr", "add", "10.0.1.1/24", "dev", "t1"]),
            (
                "tor1",
                &["ip", "addr", "add", "203.0.113.1/32", "dev", "lo"],
            ),
            ("tor2", &["ip", "addr", "add", "10.0.2.1/24", "dev", "t2"]),
            (
                "tor2",
                &["ip", "addr", "add", "203.0.113.1/32", "dev", "lo"],
            ),
        ];
        for (role, args) in setup {
            lab.exec(role, args);
        }
        for iface in ["hc", "h1", "h2"] {
            lab.exec("host", &["ip", "link", "set", iface, "up"]);
        }
        for (tor, iface) in [("tor1", "t1"), ("tor2", "t2")] {
            lab.exec(tor, &["ip", "link", "set", iface, "up"]);
            // Frames XDP redirects into a veth need NAPI (GRO) on the receiving end.
            lab.exec(tor, &["ethtool", "-K", iface, "gro", "on"]);
            lab.exec(tor, &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
        }
        lab
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    fn start_frr(&self) {
        let config = "hostname tor1
router bgp 65001
 bgp router-id 10.0.1.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.0.1.2 remote-as 65101
 neighbor 10.0.1.2 timers 3 9
 address-family ipv4 unicast
  neighbor 10.0.1.2 default-originate
  network 10.99.0.0/24
 exit-address-family
!
";
        fs::write(self.path("bgpd.conf"), config).unwrap();
        let (pathspace, zserv) = (format!("{}tor1", self.prefix), self.path("zserv.api"));
        let dir = self.path("");
        self.exec(
            "tor1",
            &[
                "/usr/lib/frr/zebra",
                "-d",
                "-i",
                &self.path("zebra.pid"),
                "-z",
                &zserv,
                "--vty_socket",
                &dir,
                "-N",
                &pathspace,
            ],
        );
        self.exec(
            "tor1",
            &[
                "/usr/lib/frr/bgpd",
                "-d",
                "-i",
                &self.path("bgpd.pid"),
                "-f",
                &self.path("bgpd.conf"),
                "-z",
                &zserv,
                "--vty_socket",
                &dir,
                "-N",
                &pathspace,
            ],
        );
    }

    fn vtysh(&self, command: &str) -> Value {
        let out = Command::new("vtysh")
            .args(["--vty_socket", &self.path(""), "-c", command])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    fn start_bird(&self) {
        let config = "router id 10.0.2.1;
protocol device {}
protocol static {
  ipv4;
  route 0.0.0.0/0 blackhole;
  route 10.98.0.0/24 blackhole;
}
protocol bgp host {
  local 10.0.2.1 as 65002;
  neighbor 10.0.2.2 as 65101;
  hold time 9;
  ipv4 { import all; export all; };
}
";
        fs::write(self.path("bird.conf"), config).unwrap();
        self.exec(
            "tor2",
            &[
                "bird",
                "-c",
                &self.path("bird.conf"),
                "-s",
                &self.path("bird.ctl"),
                "-P",
                &self.path("bird.pid"),
            ],
        );
    }

    fn birdc(&self, command: &str) -> String {
        let out = Command::new("birdc")
            .args(["-s", &self.path("bird.ctl")])
            .args(command.split(' '))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start_agent(&mut self) {
        let config = format!(
            r#"
[datapath]
pin_dir = "{pin_dir}"
[control]
socket = "{socket}"
[[interface]]
name = "hc"
[[interface]]
name = "h1"
[[interface]]
name = "h2"

[bgp]
asn = 65101
router_id = "192.0.2.10"
originate = [{{ prefix = "192.0.2.10/32" }}]

[[bgp.neighbor]]
address = "10.0.1.1"
remote_as = 65001
import = "default-only"
export = "all"
hold_time = 9

[[bgp.neighbor]]
address = "10.0.2.1"
remote_as = "external"
import = "default-only"
export = "all"
hold_time = 9
"#,
            pin_dir = self.pin_dir.display(),
            socket = self.path("agent.sock"),
        );
        let path = self.path("host.toml");
        fs::write(&path, config).unwrap();
        let log = fs::File::create(self.path("agent.log")).unwrap();
        let child = self
            .agent_command()
            .args(["run", "-c", &path])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    /// router-agent in the host's network namespace (setns only: see tests/forwarding.rs).
    fn agent_command(&self) -> Command {
        let netns = fs::File::open(format!("/run/netns/{}", self.ns("host"))).unwrap();
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

    fn log(&self) -> String {
        let agent = fs::read_to_string(self.path("agent.log")).unwrap_or_default();
        format!("agent log:\n{agent}")
    }

    fn show(&self, what: &str) -> Value {
        let out = self
            .agent_command()
            .args([
                "show",
                what,
                "--json",
                "-c",
                &self.path("host.toml"),
                "--pin-dir",
            ])
            .arg(&self.pin_dir)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// The default route's nexthop addresses in the XDP FIB.
    fn default_nexthops(&self) -> Vec<String> {
        let fib = self.show("fib");
        let Some(routes) = fib["routes"].as_array() else {
            return Vec::new();
        };
        let mut vias: Vec<String> = routes
            .iter()
            .filter(|r| r["prefix"] == "0.0.0.0/0")
            .flat_map(|r| r["nexthops"].as_array().cloned().unwrap_or_default())
            .filter(|n| n["resolved"] == true)
            .map(|n| n["via"].as_str().unwrap().to_owned())
            .collect();
        vias.sort();
        vias
    }

    fn nexthop_packets(&self, via: &str) -> u64 {
        self.show("counters")["nexthops"]
            .as_array()
            .map(|nhs| {
                nhs.iter()
                    .filter(|n| n["via"] == via)
                    .map(|n| n["packets"].as_u64().unwrap())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// UDP datagrams from the client, each from a new source port (a new flow).
    fn send(&self, count: usize) {
        let netns = fs::File::open(format!("/run/netns/{}", self.ns("client"))).unwrap();
        thread::spawn(move || {
            // SAFETY: setns on this thread only; it ends right after.
            assert_eq!(
                unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            for _ in 0..count {
                let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
                socket.send_to(b"hostrouter", (REMOTE, 9)).unwrap();
            }
        })
        .join()
        .unwrap();
        thread::sleep(Duration::from_millis(200));
    }

    fn kill_pidfile(&self, name: &str) {
        if let Ok(pid) = fs::read_to_string(self.path(name)) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
        for pidfile in ["bgpd.pid", "zebra.pid", "bird.pid"] {
            self.kill_pidfile(pidfile);
        }
        let _ = fs::remove_dir_all(&self.pin_dir);
        for role in ["client", "host", "tor1", "tor2"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(role)])
                .status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn remove_stale_labs() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("hrbgp-")
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
            let _ = fs::remove_dir_all(format!("/sys/fs/bpf/hrbgp-{pid}"));
        }
    }
}

#[test]
fn host_between_frr_and_bird_uses_both_and_is_never_transit() {
    let mut lab = Lab::new();
    lab.start_frr();
    lab.start_bird();
    lab.start_agent();

    // Both sessions up; the default route over both ToRs (ECMP across AS 65001 and 65002).
    wait_for(
        "a default route via both ToRs",
        Duration::from_secs(40),
        || lab.default_nexthops() == ["10.0.1.1", "10.0.2.1"],
        || format!("{}\nfib: {}", lab.log(), lab.show("fib")),
    );
    // The daemon's view: both neighbors up; the default route best + multipath; the
    // more-specifics in the Adj-RIB-In only, rejected by policy.
    let neighbors = lab.show("neighbors");
    let states: Vec<&str> = neighbors
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["Established", "Established"], "{neighbors}");
    assert_eq!(neighbors[0]["remote_as"], 65001);
    assert_eq!(neighbors[1]["remote_as"], 65002);
    let routes = lab.show("routes");
    let status = |prefix: &str| -> Vec<String> {
        let mut statuses: Vec<String> = routes
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["prefix"] == prefix)
            .flat_map(|r| r["paths"].as_array().unwrap().clone())
            .map(|p| p["status"].as_str().unwrap().to_owned())
            .collect();
        statuses.sort();
        statuses
    };
    assert_eq!(status("0.0.0.0/0"), ["best", "multipath"], "{routes}");
    assert!(
        status("10.99.0.0/24")[0].starts_with("rejected"),
        "{routes}"
    );
    assert!(
        status("10.98.0.0/24")[0].starts_with("rejected"),
        "{routes}"
    );

    // The more-specifics the ToRs sent were rejected by `import = "default-only"`.
    let fib = lab.show("fib").to_string();
    assert!(
        !fib.contains("10.99.0.0/24") && !fib.contains("10.98.0.0/24"),
        "{fib}"
    );
    // The kernel has the route too, for the host's own traffic.
    let kernel = lab.exec("host", &["ip", "route", "show", "proto", "201"]);
    assert!(
        kernel.contains("default") && kernel.contains("10.0.1.1") && kernel.contains("10.0.2.1"),
        "{kernel}"
    );

    // Both ToRs learned the host's loopback, with the host's AS as the path.
    wait_for(
        "FRR to learn 192.0.2.10/32",
        Duration::from_secs(20),
        || lab.vtysh("show bgp ipv4 unicast 192.0.2.10/32 json")["paths"].is_array(),
        || lab.log(),
    );
    let frr_path = lab.vtysh("show bgp ipv4 unicast 192.0.2.10/32 json");
    assert_eq!(
        frr_path["paths"][0]["aspath"]["string"], "65101",
        "{frr_path}"
    );
    let bird_route = lab.birdc("show route 192.0.2.10/32 all");
    assert!(
        bird_route.contains("192.0.2.10/32") && bird_route.contains("65101"),
        "{bird_route}"
    );

    // Never transit: FRR gets from the host exactly the host's own prefix, not BIRD's
    // default or 10.98.0.0/24; BIRD gets nothing of FRR's either.
    let from_host = lab.vtysh("show bgp ipv4 unicast neighbors 10.0.1.2 routes json");
    let prefixes: Vec<&String> = from_host["routes"]
        .as_object()
        .map(|r| r.keys().collect())
        .unwrap_or_default();
    assert_eq!(prefixes, ["192.0.2.10/32"], "{from_host}");
    let bird_from_host = lab.birdc("show route protocol host");
    assert!(
        !bird_from_host.contains("10.99.0.0") && !bird_from_host.contains("0.0.0.0/0 "),
        "{bird_from_host}"
    );

    // Traffic from the client to a destination behind the ToRs goes over both, in XDP.
    let (before1, before2) = (
        lab.nexthop_packets("10.0.1.1"),
        lab.nexthop_packets("10.0.2.1"),
    );
    lab.send(400);
    let (d1, d2) = (
        lab.nexthop_packets("10.0.1.1") - before1,
        lab.nexthop_packets("10.0.2.1") - before2,
    );
    assert_eq!(
        d1 + d2,
        400,
        "tor1 {d1} tor2 {d2}; {}",
        lab.show("counters")
    );
    assert!(
        d1 > 100 && d2 > 100,
        "ECMP over both ToRs: tor1 {d1} tor2 {d2}"
    );

    // ToR2's session goes down: the withdraw removes it from the group, and no packet is
    // sent to it after that.
    lab.birdc("disable host");
    wait_for(
        "the default route via ToR1 only",
        Duration::from_secs(20),
        || lab.default_nexthops() == ["10.0.1.1"],
        || format!("{}\nfib: {}", lab.log(), lab.show("fib")),
    );
    let (before1, before2) = (
        lab.nexthop_packets("10.0.1.1"),
        lab.nexthop_packets("10.0.2.1"),
    );
    lab.send(300);
    assert_eq!(lab.nexthop_packets("10.0.1.1") - before1, 300);
    assert_eq!(
        lab.nexthop_packets("10.0.2.1"),
        before2,
        "nothing sent to the dead ToR"
    );

    // And back.
    lab.birdc("enable host");
    wait_for(
        "the default route via both ToRs again",
        Duration::from_secs(40),
        || lab.default_nexthops() == ["10.0.1.1", "10.0.2.1"],
        || lab.log(),
    );
}
