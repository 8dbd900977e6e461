//! Interop of the BGP speaker with FRR 8.4 and BIRD 2 beyond the IPv4 two-ToR case: IPv6
//! sessions, 4-byte AS numbers, ROUTE-REFRESH, and a peer resetting the session (Cease
//! NOTIFICATION) or dying. Needs root, FRR and BIRD installed (scripts/setup).
//!
//! ```text
//!   client ── c0 ═══ hc ── [host: router-agent AS 65101] ── h1 ═══ t1 ── tor1 (FRR)
//!                                                        └─ h2 ═══ t2 ── tor2 (BIRD)
//! ```
//!
//! Every test builds its own namespaces (`hrv6-<pid>-<test>-<role>`) and tears them down on
//! drop, FRR and BIRD included. The tests run one at a time (a 2-core machine runs FRR, BIRD,
//! the agent and the traffic of one lab comfortably; four at once make timings flaky).
//!
//! Tests:
//! - `ipv6_sessions_with_frr_and_bird`: IPv6 sessions to FRR (AS 65001) and BIRD (AS 65002);
//!   both send ::/0 and a more-specific `default-only` rejects; the host originates
//!   2001:db8:10::1/128. Both ToRs learn it with AS path 65101; ::/0 is ECMP over both in
//!   XDP (client traffic counted per nexthop); a ToR down, or FRR withdrawing ::/0
//!   (MP_UNREACH_NLRI), takes its nexthop out. The ToRs send RFC 2545 global + link-local
//!   next hops, as on any shared link.
//! - `ipv6_sessions_global_next_hops_only`: the same with global next hops only, to tell a
//!   link-local next hop problem apart from the rest.
//! - `four_byte_asn_with_frr`: FRR in AS 4200000100, the host in AS 65101, then in AS
//!   4200000200.
//! - `route_refresh_from_frr`: `clear bgp ... soft in` on FRR (ROUTE-REFRESH) makes the host
//!   re-send its routes on the same session.
//! - `frr_reset_and_restart`: `clear bgp` (Cease NOTIFICATION), then bgpd killed and
//!   restarted; the session and the default route come back each time.
//! - `frr_reset_passive_neighbor`: the same reset with `passive = true` on the host.
//!
//! `HOSTROUTER_TEST_LOGS=DIR` keeps each lab's agent log as `DIR/<lab>.log`.
//!
//! The speaker's documented limitation: IPv6 routes only go out over IPv6 sessions, and IPv4
//! routes over an IPv6 session need RFC 8950 extended next hop (bgp/next_hop_out.rs).
//! The IPv6 test checks that side too: FRR negotiates IPv4 unicast on its IPv6 session
//! without extended next hop, so our IPv4 route must not reach it (and nothing else breaks).

mod interop;
mod netns;

use std::{
    fs,
    net::{Ipv6Addr, SocketAddr},
    path::PathBuf,
    process::Child,
    sync::{Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use interop::{bird::Bird, frr::Frr};
use netns::{AGENT, Namespaces, spawn_logged, strip_ansi, tail, wait_for};
use serde_json::Value;

/// The anycast address both ToRs hold on their loopback (IPv6 test).
const REMOTE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);

/// One lab at a time (see the module docs).
static SERIAL: Mutex<()> = Mutex::new(());

struct Lab {
    agent: Option<Child>,
    frr: Option<Frr>,
    bird: Option<Bird>,
    /// Dropped after the processes are stopped.
    net: Namespaces,
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    /// Namespaces `roles` with loopbacks up and IPv6 DAD off (addresses usable at once).
    fn new(test: &str, roles: &[&'static str]) -> Self {
        let serial = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let lab = Self {
            agent: None,
            frr: None,
            bird: None,
            net: Namespaces::new("hrv6-", test, roles),
            _serial: serial,
        };
        for role in roles {
            for key in ["all", "default"] {
                lab.exec(
                    role,
                    &[
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{key}.accept_dad=0"),
                    ],
                );
            }
        }
        lab
    }

    fn path(&self, name: &str) -> String {
        self.net.path_str(name)
    }

    fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    /// A veth pair between two namespaces, both ends up.
    fn link(&self, (role_a, if_a): (&str, &str), (role_b, if_b): (&str, &str)) {
        self.net.veth((role_a, if_a), (role_b, if_b));
        self.exec(role_a, &["ip", "link", "set", if_a, "up"]);
        self.exec(role_b, &["ip", "link", "set", if_b, "up"]);
    }

    fn addr(&self, role: &str, dev: &str, cidr: &str) {
        let mut args = vec!["ip", "addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.exec(role, &args);
    }

    /// The IPv4 lab: host h1 10.0.1.2/24 ═══ t1 10.0.1.1/24 tor1; the host's loopback
    /// 192.0.2.10/32.
    fn ipv4_host_and_tor(test: &str) -> Self {
        let lab = Self::new(test, &["host", "tor1"]);
        lab.link(("host", "h1"), ("tor1", "t1"));
        lab.addr("host", "h1", "10.0.1.2/24");
        lab.addr("host", "lo", "192.0.2.10/32");
        lab.addr("tor1", "t1", "10.0.1.1/24");
        lab
    }

    // ---- FRR -------------------------------------------------------------------------

    /// zebra and bgpd in `role`'s namespace, bgpd with `config`, logging to bgpd.log.
    fn start_frr(&mut self, role: &'static str, config: &str) {
        let config = format!("log file {} debugging\n{config}", self.path("bgpd.log"));
        self.frr = Some(Frr::start(&self.net, role, &config));
    }

    fn frr(&self) -> &Frr {
        self.frr.as_ref().expect("FRR started")
    }

    fn start_bgpd(&self) {
        self.frr().start_bgpd(&self.net);
    }

    /// vtysh with each of `commands` as a `-c`; stdout.
    fn vtysh_text(&self, commands: &[&str]) -> String {
        self.frr().vtysh_text(commands)
    }

    fn vtysh(&self, command: &str) -> Value {
        self.frr().vtysh(command)
    }

    /// The last lines of bgpd's log.
    fn frr_log(&self) -> String {
        format!("bgpd log:\n{}", tail(&self.net.path("bgpd.log"), 40))
    }

    /// FRR's neighbor record (`show bgp neighbors ADDR json`), Null if none.
    fn frr_neighbor(&self, address: &str) -> Value {
        self.vtysh(&format!("show bgp neighbors {address} json"))[address].clone()
    }

    /// FRR's AS_PATH strings for `prefix` (`family`: ipv4 / ipv6).
    fn frr_as_paths(&self, family: &str, prefix: &str) -> Vec<String> {
        let route = self.vtysh(&format!("show bgp {family} unicast {prefix} json"));
        route["paths"]
            .as_array()
            .map(|paths| {
                paths
                    .iter()
                    .map(|p| p["aspath"]["string"].as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    // ---- BIRD ------------------------------------------------------------------------

    fn start_bird(&mut self, role: &'static str, config: &str) {
        self.bird = Some(Bird::start(&self.net, role, config));
    }

    fn birdc(&self, command: &str) -> String {
        self.bird.as_ref().expect("BIRD started").birdc(command)
    }

    // ---- router-agent ----------------------------------------------------------------

    /// Starts router-agent in the host namespace with `interfaces` and this `[bgp]` body.
    fn start_agent(&mut self, interfaces: &[&str], bgp: &str) {
        // A control socket of its own: the default path would be shared by concurrent labs.
        let mut config = format!(
            "[datapath]\npin_dir = \"{}\"\n[control]\nsocket = \"{}\"\n",
            self.net.pin_dir.display(),
            self.path("agent.sock")
        );
        for interface in interfaces {
            config += &format!("[[interface]]\nname = \"{interface}\"\n");
        }
        config += bgp;
        let path = self.path("host.toml");
        fs::write(&path, config).unwrap();
        let mut command = self.net.command_in("host", AGENT);
        command
            .args(["run", "-c", &path])
            .env("RUST_LOG", "info,router_agent::bgp=debug")
            .env("NO_COLOR", "1");
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
    }

    /// The agent's log, without terminal colours.
    fn agent_log(&self) -> String {
        strip_ansi(&fs::read_to_string(self.path("agent.log")).unwrap_or_default())
    }

    /// The agent log (its last 150 lines), for failure messages.
    fn log(&self) -> String {
        let agent = self.agent_log();
        let lines: Vec<&str> = agent.lines().collect();
        let last = lines[lines.len().saturating_sub(150)..].join("\n");
        format!("agent log:\n{last}")
    }

    /// How many times the agent logged `needle`.
    fn log_count(&self, needle: &str) -> usize {
        self.agent_log().matches(needle).count()
    }

    /// `router-agent show WHAT --json`: fib and counters from the pinned maps, neighbors and
    /// routes from the running agent (control socket). Null if it failed.
    fn show(&self, what: &str) -> Value {
        let config = PathBuf::from(self.path("host.toml"));
        self.net
            .agent_show(AGENT, "host", what, Some(&config))
            .unwrap_or(Value::Null)
    }

    /// The agent's view of one neighbor (`show neighbors`), Null if unknown.
    fn agent_neighbor(&self, address: &str) -> Value {
        self.show("neighbors")
            .as_array()
            .and_then(|all| all.iter().find(|n| n["address"] == address).cloned())
            .unwrap_or(Value::Null)
    }

    /// The agent's paths for `prefix` (`show routes`) as (peer, status, AS path), sorted.
    fn agent_paths(&self, prefix: &str) -> Vec<(String, String, Vec<u64>)> {
        let routes = self.show("routes");
        let mut paths: Vec<(String, String, Vec<u64>)> = routes
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["prefix"] == prefix)
            .flat_map(|r| r["paths"].as_array().cloned().unwrap_or_default())
            .map(|p| {
                (
                    p["peer"].as_str().unwrap_or("-").to_owned(),
                    p["status"].as_str().unwrap_or("?").to_owned(),
                    p["as_path"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_u64)
                        .collect(),
                )
            })
            .collect();
        paths.sort();
        paths
    }

    /// The resolved nexthops of `prefix` in the XDP FIB as (interface, via), sorted.
    fn nexthops(&self, prefix: &str) -> Vec<(String, String)> {
        let fib = self.show("fib");
        let Some(routes) = fib["routes"].as_array() else {
            return Vec::new();
        };
        let mut hops: Vec<(String, String)> = routes
            .iter()
            .filter(|r| r["prefix"] == prefix)
            .flat_map(|r| r["nexthops"].as_array().cloned().unwrap_or_default())
            .filter(|n| n["resolved"] == true)
            .map(|n| {
                (
                    n["interface"].as_str().unwrap_or("?").to_owned(),
                    n["via"].as_str().unwrap_or("?").to_owned(),
                )
            })
            .collect();
        hops.sort();
        hops
    }

    fn nexthop_interfaces(&self, prefix: &str) -> Vec<String> {
        self.nexthops(prefix).into_iter().map(|(i, _)| i).collect()
    }

    /// Packets forwarded by XDP through the nexthops on `interface`.
    fn packets_via(&self, interface: &str) -> u64 {
        self.show("counters")["nexthops"]
            .as_array()
            .map(|nhs| {
                nhs.iter()
                    .filter(|n| n["interface"] == interface)
                    .map(|n| n["packets"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// UDP datagrams from the client to REMOTE6, each from a new source port (a new flow).
    fn send6(&self, count: usize) {
        self.net
            .send_udp("client", SocketAddr::new(REMOTE6.into(), 9), count);
        thread::sleep(Duration::from_millis(300));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
        // HOSTROUTER_TEST_LOGS=DIR keeps the agent's log as DIR/<lab>.log.
        if let Some(keep) = std::env::var_os("HOSTROUTER_TEST_LOGS") {
            let _ = fs::create_dir_all(&keep);
            let _ = fs::copy(
                self.net.path("agent.log"),
                PathBuf::from(keep).join(format!("{}.log", self.net.name)),
            );
        }
    }
}

/// FRR in AS `asn` peering with the host (AS `host_as`) at 10.0.1.2 over IPv4: a default
/// route and a more-specific to the host, timers short enough for the tests. `extra` goes
/// into `router bgp` before the address family; `extra_af` into the address family.
fn frr_ipv4_config(asn: u32, host_as: u32, extra: &str, extra_af: &str) -> String {
    format!(
        "hostname tor1
router bgp {asn}
 bgp router-id 10.0.1.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.0.1.2 remote-as {host_as}
 neighbor 10.0.1.2 timers 3 9
 neighbor 10.0.1.2 timers connect 2
{extra} address-family ipv4 unicast
  neighbor 10.0.1.2 default-originate
  network 10.99.0.0/24
{extra_af} exit-address-family
!
"
    )
}

/// The host's `[bgp]` for one IPv4 neighbor, FRR at 10.0.1.1.
fn agent_ipv4_bgp(local_as: u32, remote_as: u32) -> String {
    format!(
        r#"
[bgp]
asn = {local_as}
router_id = "192.0.2.10"
originate = [{{ prefix = "192.0.2.10/32" }}]

[[bgp.neighbor]]
address = "10.0.1.1"
remote_as = {remote_as}
import = "default-only"
export = "all"
hold_time = 9
"#
    )
}

/// The same with a passive neighbor (the host waits for FRR to connect).
fn agent_ipv4_bgp_passive(local_as: u32, remote_as: u32) -> String {
    agent_ipv4_bgp(local_as, remote_as) + "passive = true\n"
}

/// Both sessions up over IPv6; the host's /128 at both ToRs with AS path 65101; ::/0 from
/// FRR and BIRD installed as ECMP and used by XDP; a ToR going down leaves the group.
///
/// On a shared link FRR and BIRD send IPv6 routes with two next hops, their global address
/// and their link-local one (RFC 2545), as every real ToR does.
#[test]
fn ipv6_sessions_with_frr_and_bird() {
    ipv6_scenario("v6", true);
}

/// The same with ToRs that send the global next hop alone, which tells a link-local next hop
/// problem apart from the rest of the IPv6 path (sessions, export, XDP forwarding,
/// withdrawal). BIRD: no link-local address on its link (address generation off). FRR
/// refuses to run a session on a shared link without a link-local address ("nexthop_set
/// failed"), so its link is not shared as FRR sees it: its address is a /128 with an on-link
/// route to the host's subnet, and the session needs `disable-connected-check`.
#[test]
fn ipv6_sessions_global_next_hops_only() {
    ipv6_scenario("v6g", false);
}

fn ipv6_scenario(test: &str, tor_link_local: bool) {
    let mut lab = Lab::new(test, &["client", "host", "tor1", "tor2"]);
    lab.link(("client", "c0"), ("host", "hc"));
    lab.link(("tor1", "t1"), ("host", "h1"));
    lab.link(("tor2", "t2"), ("host", "h2"));
    lab.addr("client", "c0", "2001:db8:c::2/64");
    lab.exec(
        "client",
        &[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:c::1",
        ],
    );
    // Compute checksums before the "wire" (veth leaves them partial otherwise).
    lab.exec("client", &["ethtool", "-K", "c0", "tx", "off"]);
    lab.addr("host", "hc", "2001:db8:c::1/64");
    lab.addr("host", "h1", "2001:db8:1::2/64");
    lab.addr("host", "h2", "2001:db8:2::2/64");
    lab.addr("host", "lo", "2001:db8:10::1/128");
    lab.exec("host", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    for (tor, iface, cidr) in [
        ("tor1", "t1", "2001:db8:1::1/64"),
        ("tor2", "t2", "2001:db8:2::1/64"),
    ] {
        match (tor_link_local, tor) {
            (true, _) => lab.addr(tor, iface, cidr),
            (false, "tor1") => {
                lab.addr(tor, iface, "2001:db8:1::1/128");
                lab.exec(
                    tor,
                    &["ip", "-6", "route", "add", "2001:db8:1::/64", "dev", iface],
                );
            }
            (false, _) => {
                // Remove the link-local address and keep the kernel from making another.
                lab.exec(tor, &["ip", "link", "set", iface, "down"]);
                lab.exec(tor, &["ip", "link", "set", iface, "addrgenmode", "none"]);
                lab.exec(tor, &["ip", "link", "set", iface, "up"]);
                lab.addr(tor, iface, cidr);
            }
        }
        lab.addr(tor, "lo", "2001:db8:ff::1/128");
        // Frames XDP redirects into a veth need NAPI (GRO) on the receiving end.
        lab.exec(tor, &["ethtool", "-K", iface, "gro", "on"]);
    }

    // FRR: IPv4 unicast stays active on the IPv6 session (FRR's default) without extended
    // next hop, so the host must keep its IPv4 route off this session.
    let connected_check = if tor_link_local {
        ""
    } else {
        " neighbor 2001:db8:1::2 disable-connected-check\n"
    };
    lab.start_frr(
        "tor1",
        &format!(
            "hostname tor1
router bgp 65001
 bgp router-id 10.0.1.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 2001:db8:1::2 remote-as 65101
 neighbor 2001:db8:1::2 timers 3 9
 neighbor 2001:db8:1::2 timers connect 2
{connected_check} address-family ipv6 unicast
  neighbor 2001:db8:1::2 activate
  neighbor 2001:db8:1::2 default-originate
  network 2001:db8:99::/48
 exit-address-family
!
"
        ),
    );
    lab.start_bird(
        "tor2",
        "router id 10.0.2.1;
protocol device {}
protocol static {
  ipv6;
  route ::/0 blackhole;
  route 2001:db8:98::/48 blackhole;
}
protocol bgp host {
  local 2001:db8:2::1 as 65002;
  neighbor 2001:db8:2::2 as 65101;
  hold time 9;
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 5;
  ipv6 { import all; export all; };
}
",
    );
    lab.start_agent(
        &["hc", "h1", "h2"],
        r#"
[bgp]
asn = 65101
router_id = "192.0.2.10"
originate = [{ prefix = "2001:db8:10::1/128" }, { prefix = "192.0.2.10/32" }]

[[bgp.neighbor]]
address = "2001:db8:1::1"
remote_as = 65001
import = "default-only"
export = "all"
hold_time = 9

[[bgp.neighbor]]
address = "2001:db8:2::1"
remote_as = 65002
import = "default-only"
export = "all"
hold_time = 9
"#,
    );

    let diagnostics = || {
        format!(
            "{}\nfib: {}\n{}\nFRR: {}{}\nBIRD: {}\nBIRD ::/0: {}",
            lab.log(),
            lab.show("fib"),
            lab.frr_log(),
            lab.vtysh_text(&["show bgp ipv6 unicast summary"]),
            lab.vtysh_text(&["show bgp ipv6 unicast neighbors 2001:db8:1::2 advertised-routes"]),
            lab.birdc("show protocols all host"),
            lab.birdc("show route ::/0 all"),
        )
    };
    wait_for(
        "both IPv6 sessions established",
        Duration::from_secs(25),
        || lab.log_count("session established") >= 2,
        diagnostics,
    );

    // Both ToRs learned the host's /128, with the host's AS as the path.
    wait_for(
        "FRR to learn 2001:db8:10::1/128",
        Duration::from_secs(10),
        || !lab.frr_as_paths("ipv6", "2001:db8:10::1/128").is_empty(),
        diagnostics,
    );
    assert_eq!(lab.frr_as_paths("ipv6", "2001:db8:10::1/128"), ["65101"]);
    wait_for(
        "BIRD to learn 2001:db8:10::1/128 with AS path 65101",
        Duration::from_secs(10),
        || {
            let route = lab.birdc("show route 2001:db8:10::1/128 all");
            route.contains("2001:db8:10::1/128") && route.contains("BGP.as_path: 65101")
        },
        || format!("{}\n{}", diagnostics(), lab.birdc("show route all")),
    );
    // The documented limitation: FRR negotiated IPv4 unicast on this IPv6 session but no
    // extended next hop (RFC 8950), so the IPv4 route has no next hop to go with and is not
    // sent; FRR neither gets it nor anything bogus. Never transit: only our own prefixes.
    let frr_neighbor = lab.frr_neighbor("2001:db8:1::2");
    assert_eq!(frr_neighbor["bgpState"], "Established", "{frr_neighbor}");
    assert!(
        lab.frr_as_paths("ipv4", "192.0.2.10/32").is_empty(),
        "IPv4 route over an IPv6 session without extended next hop:\n{}",
        lab.vtysh_text(&["show bgp ipv4 unicast"])
    );
    let from_host = lab.vtysh("show bgp ipv6 unicast neighbors 2001:db8:1::2 routes json");
    let prefixes: Vec<&String> = from_host["routes"]
        .as_object()
        .map(|r| r.keys().collect())
        .unwrap_or_default();
    assert_eq!(prefixes, ["2001:db8:10::1/128"], "{from_host}");
    let bird_from_host = lab.birdc("show route protocol host");
    assert!(
        !bird_from_host.contains("2001:db8:99::") && !bird_from_host.contains("::/0 "),
        "{bird_from_host}"
    );
    // The ToRs did send their more-specifics (which `default-only` must reject).
    wait_for(
        "FRR to advertise 2001:db8:99::/48 to the host",
        Duration::from_secs(10),
        || {
            lab.vtysh("show bgp ipv6 unicast neighbors 2001:db8:1::2 advertised-routes json")
                ["advertisedRoutes"]
                .as_object()
                .is_some_and(|r| r.contains_key("2001:db8:99::/48"))
        },
        diagnostics,
    );

    // The agent's view: both neighbors up with their ASes, one prefix advertised to each
    // (the /128; the IPv4 route has no next hop on an IPv6 session); ::/0 from both ToRs as
    // best + multipath; the more-specifics held but rejected by `default-only`.
    for (address, asn) in [("2001:db8:1::1", 65001), ("2001:db8:2::1", 65002)] {
        let neighbor = lab.agent_neighbor(address);
        assert_eq!(neighbor["state"], "Established", "{neighbor}");
        assert_eq!(neighbor["remote_as"], asn, "{neighbor}");
        assert_eq!(neighbor["prefixes_advertised"], 1, "{neighbor}");
    }
    let statuses = |prefix: &str| -> Vec<String> {
        lab.agent_paths(prefix)
            .into_iter()
            .map(|(_, s, _)| s)
            .collect()
    };
    wait_for(
        "the agent's RIB: ::/0 best + multipath, the more-specifics rejected",
        Duration::from_secs(10),
        || statuses("::/0") == ["best", "multipath"] || statuses("::/0") == ["multipath", "best"],
        || format!("{}\nroutes: {}", diagnostics(), lab.show("routes")),
    );
    let default_paths = lab.agent_paths("::/0");
    assert_eq!(default_paths[0].0, "2001:db8:1::1", "{default_paths:?}");
    assert_eq!(default_paths[0].2, [65001], "{default_paths:?}");
    assert_eq!(default_paths[1].0, "2001:db8:2::1", "{default_paths:?}");
    assert_eq!(default_paths[1].2, [65002], "{default_paths:?}");
    wait_for(
        "the agent to hold and reject both more-specifics",
        Duration::from_secs(10),
        || {
            ["2001:db8:99::/48", "2001:db8:98::/48"]
                .iter()
                .all(|prefix| {
                    let s = statuses(prefix);
                    !s.is_empty() && s.iter().all(|s| s.starts_with("rejected"))
                })
        },
        || format!("{}\nroutes: {}", diagnostics(), lab.show("routes")),
    );
    // `show status`: prefixes received count every path of the neighbor in the Adj-RIB-In
    // (rejected ones too: at least ::/0 and the more-specific), as `show routes` lists them;
    // the FIB count is what `show fib` lists from the maps.
    let status = lab.show("status");
    let routes = lab.show("routes");
    for address in ["2001:db8:1::1", "2001:db8:2::1"] {
        let neighbor = status["neighbors"]
            .as_array()
            .and_then(|all| all.iter().find(|n| n["address"] == address))
            .unwrap_or_else(|| panic!("{address} not in {status}"));
        let listed = routes
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|route| route["paths"].as_array().cloned().unwrap_or_default())
            .filter(|path| path["peer"] == address)
            .count();
        assert!(listed >= 2, "{address}: {routes}");
        assert_eq!(neighbor["prefixes_received"], listed, "{status}\n{routes}");
    }
    let fib_routes = lab.show("fib")["routes"].as_array().map(Vec::len);
    assert_eq!(
        status["fib"]["routes"].as_u64(),
        fib_routes.map(|n| n as u64),
        "{status}"
    );

    // ::/0 via both ToRs (ECMP across AS 65001 and 65002), nexthops resolved.
    wait_for(
        "::/0 in the FIB via both ToRs (h1 and h2), resolved",
        Duration::from_secs(15),
        || lab.nexthop_interfaces("::/0") == ["h1", "h2"],
        diagnostics,
    );
    eprintln!("::/0 nexthops: {:?}", lab.nexthops("::/0"));
    let fib = lab.show("fib").to_string();
    assert!(
        !fib.contains("2001:db8:99::") && !fib.contains("2001:db8:98::"),
        "{fib}"
    );
    // The kernel has the route too, for the host's own traffic.
    let kernel = lab.exec("host", &["ip", "-6", "route", "show", "proto", "201"]);
    assert!(
        kernel.contains("default") && kernel.contains("h1") && kernel.contains("h2"),
        "{kernel}"
    );

    // IPv6 traffic from the client to the ToRs' anycast loopback: over both, in XDP.
    let (before1, before2) = (lab.packets_via("h1"), lab.packets_via("h2"));
    lab.send6(400);
    let (d1, d2) = (
        lab.packets_via("h1") - before1,
        lab.packets_via("h2") - before2,
    );
    assert_eq!(
        d1 + d2,
        400,
        "tor1 {d1} tor2 {d2}; {}\n{}",
        lab.show("counters"),
        lab.show("fib")
    );
    assert!(
        d1 > 100 && d2 > 100,
        "ECMP over both ToRs: tor1 {d1} tor2 {d2}"
    );

    // BIRD's session goes down: its nexthop leaves the group, and nothing is sent to it.
    lab.birdc("disable host");
    wait_for(
        "::/0 via tor1 (h1) only",
        Duration::from_secs(15),
        || lab.nexthop_interfaces("::/0") == ["h1"],
        diagnostics,
    );
    let (before1, before2) = (lab.packets_via("h1"), lab.packets_via("h2"));
    lab.send6(200);
    assert_eq!(
        lab.packets_via("h1") - before1,
        200,
        "{}",
        lab.show("counters")
    );
    assert_eq!(
        lab.packets_via("h2"),
        before2,
        "nothing sent to the dead ToR"
    );

    // And back.
    lab.birdc("enable host");
    wait_for(
        "::/0 via both ToRs again",
        Duration::from_secs(20),
        || lab.nexthop_interfaces("::/0") == ["h1", "h2"],
        diagnostics,
    );

    // FRR withdraws ::/0 on a live session (MP_UNREACH_NLRI): its nexthop leaves.
    lab.vtysh_text(&[
        "configure terminal",
        "router bgp 65001",
        "address-family ipv6 unicast",
        "no neighbor 2001:db8:1::2 default-originate",
    ]);
    wait_for(
        "::/0 via tor2 (h2) only after FRR's withdrawal",
        Duration::from_secs(10),
        || lab.nexthop_interfaces("::/0") == ["h2"],
        diagnostics,
    );
    let paths = lab.agent_paths("::/0");
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert_eq!(paths[0].0, "2001:db8:2::1", "{paths:?}");
    assert_eq!(
        lab.agent_neighbor("2001:db8:1::1")["state"],
        "Established",
        "a withdrawal, not a reset"
    );
}

/// FRR with a 4-byte AS (4200000100): the session comes up (the OPEN carries AS_TRANS, the
/// capability the real AS), our FIB gets FRR's default route, FRR sees AS 65101 and our route
/// with AS path 65101; then the host with a 4-byte AS of its own (4200000200).
#[test]
fn four_byte_asn_with_frr() {
    for local_as in [65101u32, 4_200_000_200] {
        let mut lab = Lab::ipv4_host_and_tor(&format!("as4-{local_as}"));
        lab.start_frr("tor1", &frr_ipv4_config(4_200_000_100, local_as, "", ""));
        lab.start_agent(&["h1"], &agent_ipv4_bgp(local_as, 4_200_000_100));
        let diagnostics = || {
            format!(
                "{}\nfib: {}\n{}\nFRR: {}",
                lab.log(),
                lab.show("fib"),
                lab.frr_log(),
                lab.vtysh_text(&["show bgp neighbors 10.0.1.2"])
            )
        };
        wait_for(
            "the default route via FRR (AS 4200000100)",
            Duration::from_secs(25),
            || {
                lab.nexthops("0.0.0.0/0")
                    .iter()
                    .any(|(_, via)| via == "10.0.1.1")
            },
            diagnostics,
        );
        // The agent's view of the peer: its real 4-byte AS, in the session and in the AS
        // paths of its routes (the accepted default and the rejected more-specific).
        assert!(
            lab.agent_log().contains("asn=4200000100"),
            "the session should report AS 4200000100\n{}",
            lab.log()
        );
        let neighbor = lab.agent_neighbor("10.0.1.1");
        assert_eq!(neighbor["state"], "Established", "{neighbor}");
        assert_eq!(neighbor["remote_as"], 4_200_000_100u32, "{neighbor}");
        let paths = lab.agent_paths("0.0.0.0/0");
        assert_eq!(
            paths,
            [(
                "10.0.1.1".to_owned(),
                "best".to_owned(),
                vec![4_200_000_100]
            )],
            "{}",
            lab.show("routes")
        );
        wait_for(
            "10.99.0.0/24 in the agent's RIB, rejected, AS path 4200000100",
            Duration::from_secs(10),
            || {
                let paths = lab.agent_paths("10.99.0.0/24");
                paths.len() == 1
                    && paths[0].1.starts_with("rejected")
                    && paths[0].2 == [4_200_000_100]
            },
            || format!("{}\nroutes: {}", diagnostics(), lab.show("routes")),
        );
        let fib = lab.show("fib").to_string();
        assert!(!fib.contains("10.99.0.0/24"), "{fib}");
        // FRR's view: we are AS `local_as`, 4-byte AS capability on both sides, and our
        // route's AS path is exactly our AS.
        let neighbor = lab.frr_neighbor("10.0.1.2");
        assert_eq!(neighbor["bgpState"], "Established", "{neighbor}");
        assert_eq!(neighbor["remoteAs"], local_as, "{neighbor}");
        assert_eq!(neighbor["localAs"], 4_200_000_100u32, "{neighbor}");
        assert_eq!(
            neighbor["neighborCapabilities"]["4byteAs"], "advertisedAndReceived",
            "{neighbor}"
        );
        wait_for(
            "FRR to learn 192.0.2.10/32",
            Duration::from_secs(10),
            || !lab.frr_as_paths("ipv4", "192.0.2.10/32").is_empty(),
            diagnostics,
        );
        assert_eq!(
            lab.frr_as_paths("ipv4", "192.0.2.10/32"),
            [local_as.to_string()],
            "{}",
            lab.vtysh_text(&["show bgp ipv4 unicast 192.0.2.10/32"])
        );
    }
}

/// `clear bgp ... soft in` on FRR sends a ROUTE-REFRESH; the host must send its routes
/// again, on the same session. FRR keeps no Adj-RIB-In copy (no soft-reconfiguration
/// inbound) and processes route-map changes only on demand (delay-timer 0), so a changed
/// inbound route-map shows on our route only if we re-sent it.
#[test]
fn route_refresh_from_frr() {
    let mut lab = Lab::ipv4_host_and_tor("refresh");
    lab.start_frr(
        "tor1",
        &(frr_ipv4_config(
            65001,
            65101,
            " bgp route-map delay-timer 0\n",
            "  neighbor 10.0.1.2 route-map FROM-HOST in\n",
        ) + "route-map FROM-HOST permit 10\n!\n"),
    );
    lab.start_agent(&["h1"], &agent_ipv4_bgp(65101, 65001));
    let diagnostics = || {
        format!(
            "{}\nfib: {}\n{}\nFRR: {}\n{}",
            lab.log(),
            lab.show("fib"),
            lab.frr_log(),
            lab.vtysh_text(&["show bgp neighbors 10.0.1.2"]),
            lab.vtysh_text(&["show bgp ipv4 unicast"])
        )
    };
    wait_for(
        "FRR to learn 192.0.2.10/32",
        Duration::from_secs(25),
        || !lab.frr_as_paths("ipv4", "192.0.2.10/32").is_empty(),
        diagnostics,
    );
    wait_for(
        "the default route via FRR",
        Duration::from_secs(10),
        || !lab.nexthops("0.0.0.0/0").is_empty(),
        diagnostics,
    );
    let local_pref =
        || lab.vtysh("show bgp ipv4 unicast 192.0.2.10/32 json")["paths"][0]["locPrf"].as_u64();
    assert_ne!(local_pref(), Some(250));
    let before = lab.frr_neighbor("10.0.1.2");
    let agent_before = lab.agent_neighbor("10.0.1.1");
    assert_eq!(agent_before["state"], "Established", "{agent_before}");
    let stat = |n: &Value, key: &str| n["messageStats"][key].as_u64().unwrap_or(0);
    assert!(
        before["neighborCapabilities"]["routeRefresh"]
            .as_str()
            .is_some_and(|s| s.starts_with("advertisedAndReceived")),
        "route refresh negotiated: {before}"
    );

    // A new inbound policy, not applied until FRR asks us for our routes again.
    lab.vtysh_text(&[
        "configure terminal",
        "route-map FROM-HOST permit 10",
        "set local-preference 250",
    ]);
    thread::sleep(Duration::from_secs(1));
    assert_ne!(local_pref(), Some(250), "applied without a refresh?");
    let out = lab.vtysh_text(&["clear bgp ipv4 unicast 10.0.1.2 soft in"]);
    wait_for(
        "192.0.2.10/32 re-sent after the ROUTE-REFRESH (local-pref 250 at FRR)",
        Duration::from_secs(10),
        || local_pref() == Some(250),
        || format!("clear: {out}\n{}", diagnostics()),
    );
    let after = lab.frr_neighbor("10.0.1.2");
    assert!(
        stat(&after, "routeRefreshSent") > stat(&before, "routeRefreshSent"),
        "FRR sent a ROUTE-REFRESH: {after}"
    );
    assert!(
        stat(&after, "updatesRecv") > stat(&before, "updatesRecv"),
        "we answered with UPDATEs: {after}"
    );
    // Same session: nothing reset on either side.
    assert_eq!(after["bgpState"], "Established", "{after}");
    assert_eq!(
        after["connectionsEstablished"], before["connectionsEstablished"],
        "{after}"
    );
    assert_eq!(
        after["connectionsDropped"], before["connectionsDropped"],
        "{after}"
    );
    assert!(
        after["bgpTimerUpMsec"].as_u64() >= before["bgpTimerUpMsec"].as_u64(),
        "uptime went back: {before} -> {after}"
    );
    assert_eq!(lab.log_count("session established"), 1, "{}", lab.log());
    assert_eq!(lab.log_count("session down"), 0, "{}", lab.log());
    let agent_after = lab.agent_neighbor("10.0.1.1");
    assert_eq!(agent_after["state"], "Established", "{agent_after}");
    assert!(
        agent_after["uptime_seconds"].as_u64() >= agent_before["uptime_seconds"].as_u64(),
        "the agent's session restarted: {agent_before} -> {agent_after}"
    );
    assert_eq!(agent_after["last_error"], Value::Null, "{agent_after}");
    assert_eq!(lab.frr_as_paths("ipv4", "192.0.2.10/32"), ["65101"]);
    assert!(!lab.nexthops("0.0.0.0/0").is_empty(), "{}", lab.show("fib"));
}

/// FRR resets the session (`clear bgp`: Cease NOTIFICATION, Administrative Reset): the host's
/// session comes back and the default route is installed again. Then bgpd dies (SIGKILL: the
/// connection just closes): the route leaves; bgpd starts again: the route is back.
#[test]
fn frr_reset_and_restart() {
    let mut lab = Lab::ipv4_host_and_tor("reset");
    lab.start_frr("tor1", &frr_ipv4_config(65001, 65101, "", ""));
    lab.start_agent(&["h1"], &agent_ipv4_bgp(65101, 65001));
    let diagnostics = || {
        format!(
            "{}\nfib: {}\n{}\nFRR: {}",
            lab.log(),
            lab.show("fib"),
            lab.frr_log(),
            lab.vtysh_text(&["show bgp neighbors 10.0.1.2"]),
        )
    };
    let has_default =
        || lab.nexthops("0.0.0.0/0") == vec![("h1".to_owned(), "10.0.1.1".to_owned())];
    wait_for(
        "the default route via FRR",
        Duration::from_secs(25),
        &has_default,
        diagnostics,
    );
    assert_eq!(lab.log_count("session established"), 1, "{}", lab.log());

    // Hard reset by FRR: it sends a Cease NOTIFICATION and closes.
    let out = lab.vtysh_text(&["clear bgp 10.0.1.2"]);
    wait_for(
        "the NOTIFICATION from FRR to take the session down",
        Duration::from_secs(5),
        || lab.log_count("session down") >= 1,
        || format!("clear: {out}\n{}", diagnostics()),
    );
    assert!(
        lab.agent_log().contains("NOTIFICATION received"),
        "{}",
        lab.log()
    );
    let reset_at = Instant::now();
    wait_for(
        "the session back after FRR's reset",
        Duration::from_secs(20),
        || lab.log_count("session established") >= 2,
        diagnostics,
    );
    wait_for(
        "the default route reinstalled",
        Duration::from_secs(10),
        &has_default,
        diagnostics,
    );
    eprintln!("session back {:?} after the reset", reset_at.elapsed());
    let neighbor = lab.agent_neighbor("10.0.1.1");
    assert_eq!(neighbor["state"], "Established", "{neighbor}");
    assert!(
        neighbor["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("Cease")),
        "the reset's reason: {neighbor}"
    );
    wait_for(
        "FRR to relearn 192.0.2.10/32",
        Duration::from_secs(10),
        || lab.frr_as_paths("ipv4", "192.0.2.10/32") == ["65101"],
        diagnostics,
    );

    // bgpd dies without a word: the connection closes, the session drops, the route leaves.
    lab.frr().kill_bgpd();
    wait_for(
        "the session down after bgpd died",
        Duration::from_secs(10),
        || lab.log_count("session down") >= 2,
        diagnostics,
    );
    wait_for(
        "the default route removed",
        Duration::from_secs(5),
        || lab.nexthops("0.0.0.0/0").is_empty(),
        diagnostics,
    );
    let kernel = lab.exec("host", &["ip", "route", "show", "proto", "201"]);
    assert!(!kernel.contains("default"), "{kernel}");

    // bgpd back: session and route back.
    lab.start_bgpd();
    let restart_at = Instant::now();
    wait_for(
        "the session back after bgpd restarted",
        Duration::from_secs(25),
        || lab.log_count("session established") >= 3,
        diagnostics,
    );
    wait_for(
        "the default route back",
        Duration::from_secs(10),
        &has_default,
        diagnostics,
    );
    eprintln!(
        "session back {:?} after bgpd restarted",
        restart_at.elapsed()
    );
    wait_for(
        "FRR to relearn 192.0.2.10/32 after its restart",
        Duration::from_secs(10),
        || lab.frr_as_paths("ipv4", "192.0.2.10/32") == ["65101"],
        diagnostics,
    );
}

/// A passive neighbor (the host only accepts FRR's connections) after FRR's reset: FRR
/// reconnects within seconds (`timers connect 2`), while the host's session may still wait
/// out its restart damping (IdleHold, 5 s after a first failure). The session must come back
/// all the same, once the damping is over.
#[test]
fn frr_reset_passive_neighbor() {
    let mut lab = Lab::ipv4_host_and_tor("passive");
    lab.start_frr("tor1", &frr_ipv4_config(65001, 65101, "", ""));
    lab.start_agent(&["h1"], &agent_ipv4_bgp_passive(65101, 65001));
    let diagnostics = || {
        format!(
            "{}\nfib: {}\n{}\nFRR: {}\nhost TCP: {}",
            lab.log(),
            lab.show("fib"),
            lab.frr_log(),
            lab.vtysh_text(&["show bgp summary"]),
            lab.exec("host", &["ss", "-tn"]),
        )
    };
    let has_default =
        || lab.nexthops("0.0.0.0/0") == vec![("h1".to_owned(), "10.0.1.1".to_owned())];
    wait_for(
        "the default route via FRR (FRR connecting to the passive host)",
        Duration::from_secs(25),
        &has_default,
        diagnostics,
    );
    let out = lab.vtysh_text(&["clear bgp 10.0.1.2"]);
    wait_for(
        "the NOTIFICATION from FRR to take the session down",
        Duration::from_secs(5),
        || lab.log_count("session down") >= 1,
        || format!("clear: {out}\n{}", diagnostics()),
    );
    wait_for(
        "the passive session back after FRR's reset",
        Duration::from_secs(30),
        || lab.log_count("session established") >= 2,
        diagnostics,
    );
    wait_for(
        "the default route reinstalled",
        Duration::from_secs(10),
        &has_default,
        diagnostics,
    );
}
