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

mod interop;
mod netns;

use std::{
    fs,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::Child,
    thread,
    time::Duration,
};

use interop::{bird::Bird, frr::Frr};
use netns::{AGENT, Namespaces, spawn_logged, wait_for};
use serde_json::Value;

const REMOTE: &str = "203.0.113.1";

struct Lab {
    agent: Option<Child>,
    frr: Option<Frr>,
    bird: Option<Bird>,
    /// Last: dropped after the processes are stopped.
    net: Namespaces,
}

impl Lab {
    fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    fn new() -> Self {
        let net = Namespaces::new("hrbgp-", "tors", &["client", "host", "tor1", "tor2"]);
        for (peer, local, remote) in [
            ("client", "c0", "hc"),
            ("tor1", "t1", "h1"),
            ("tor2", "t2", "h2"),
        ] {
            net.veth((peer, local), ("host", remote));
        }
        let lab = Self {
            agent: None,
            frr: None,
            bird: None,
            net,
        };
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
        self.net.path_str(name)
    }

    fn start_frr(&mut self) {
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
        self.frr = Some(Frr::start(&self.net, "tor1", config));
    }

    fn vtysh(&self, command: &str) -> Value {
        self.frr.as_ref().expect("FRR started").vtysh(command)
    }

    fn start_bird(&mut self) {
        let config = "router id 10.0.2.1;
protocol device {}
protocol static {
  ipv4;
  route 0.0.0.0/0 blackhole;
  route 10.98.0.0/24 blackhole;
  route 198.51.100.0/24 blackhole;
}
protocol bgp host {
  local 10.0.2.1 as 65002;
  neighbor 10.0.2.2 as 65101;
  hold time 9;
  ipv4 {
    import all;
    export filter {
      if net = 198.51.100.0/24 then bgp_community.add((65002, 77));
      accept;
    };
  };
}
";
        self.bird = Some(Bird::start(&self.net, "tor2", config));
    }

    fn birdc(&self, command: &str) -> String {
        self.bird.as_ref().expect("BIRD started").birdc(command)
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

[[redistribute]]
name = "host-routes"
prefix_list = "host-routes"
kernel_routes = {{ protocols = ["boot"], interfaces = ["hc"] }}

[bgp]
asn = 65101
router_id = "192.0.2.10"
originate = [{{ prefix = "192.0.2.10/32" }}]

[bgp.prefix_list.host-routes]
ipv4 = [{{ action = "permit", prefix = "198.51.100.0/24" }}]

[bgp.prefix_list.from-tor2]
ipv4 = [{{ action = "permit", prefix = "0.0.0.0/0" }},
        {{ action = "permit", prefix = "198.51.100.0/24" }}]

[[bgp.neighbor]]
address = "10.0.1.1"
remote_as = 65001
import = "default-only"
export = "all"
hold_time = 9

[[bgp.neighbor]]
address = "10.0.2.1"
remote_as = "external"
import = {{ prefix_list = "from-tor2" }}
export = "all"
hold_time = 9
"#,
            pin_dir = self.net.pin_dir.display(),
            socket = self.path("agent.sock"),
        );
        let path = self.path("host.toml");
        fs::write(&path, config).unwrap();
        let mut command = self.net.command_in("host", AGENT);
        command.args(["run", "-c", &path]);
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
    }

    fn log(&self) -> String {
        let agent = fs::read_to_string(self.path("agent.log")).unwrap_or_default();
        format!("agent log:\n{agent}")
    }

    fn show(&self, what: &str) -> Value {
        let config = PathBuf::from(self.path("host.toml"));
        self.net
            .agent_show(AGENT, "host", what, Some(&config))
            .unwrap_or(Value::Null)
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
        let remote: IpAddr = REMOTE.parse().unwrap();
        self.net
            .send_udp("client", SocketAddr::new(remote, 9), count);
        thread::sleep(Duration::from_millis(200));
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

    never_transit_with_a_redistributed_prefix_bird_also_announces(&lab);
}

/// The host redistributes kernel route P (`ip route add P dev hc proto boot`) while BIRD
/// also announces P (with a community), and the host accepts BIRD's P: FRR gets P from the
/// host as the host's own (AS_PATH = [65101], none of BIRD's communities). Deleting the kernel
/// route withdraws P from FRR although the host's RIB still holds BIRD's P, whose kernel copy
/// (protocol 201) is never taken for redistribution.
fn never_transit_with_a_redistributed_prefix_bird_also_announces(lab: &Lab) {
    const P: &str = "198.51.100.0/24";
    let bird_path = |lab: &Lab| {
        lab.show("routes")
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["prefix"] == P)
            .flat_map(|r| r["paths"].as_array().cloned().unwrap_or_default())
            .any(|p| p["status"] == "best" && p.to_string().contains("10.0.2.1"))
    };
    wait_for(
        "the host's RIB to hold BIRD's P",
        Duration::from_secs(20),
        || bird_path(lab),
        || {
            format!(
                "{}
routes: {}",
                lab.log(),
                lab.show("routes")
            )
        },
    );
    let frr_p = |lab: &Lab| lab.vtysh(&format!("show bgp ipv4 unicast {P} json"));
    assert!(
        !frr_p(lab)["paths"].is_array(),
        "BIRD's P is never passed on: {}",
        frr_p(lab)
    );

    lab.exec(
        "host",
        &["ip", "route", "add", P, "dev", "hc", "proto", "boot"],
    );
    wait_for(
        "FRR to get P from the host",
        Duration::from_secs(10),
        || frr_p(lab)["paths"].is_array(),
        || lab.log(),
    );
    let path = frr_p(lab);
    assert_eq!(path["paths"][0]["aspath"]["string"], "65101", "{path}");
    assert!(
        !path.to_string().contains("65002:77"),
        "no BIRD community: {path}"
    );

    lab.exec(
        "host",
        &["ip", "route", "del", P, "dev", "hc", "proto", "boot"],
    );
    wait_for(
        "FRR to lose P",
        Duration::from_secs(10),
        || !frr_p(lab)["paths"].is_array(),
        || lab.log(),
    );
    // BIRD's P is still the host's best path, and in the kernel as ours (protocol 201): not
    // taken for redistribution.
    assert!(bird_path(lab), "{}", lab.show("routes"));
    let kernel = lab.exec("host", &["ip", "route", "show", P]);
    assert!(kernel.contains("proto 201"), "{kernel}");
    thread::sleep(Duration::from_secs(1));
    assert!(
        !frr_p(lab)["paths"].is_array(),
        "P stays withdrawn: {}",
        frr_p(lab)
    );
}
