//! The lab of `bgp_frr_bird_v6.rs`: namespaces, FRR, BIRD and the agent, and what the tests
//! read from them; the IPv6 scenario two of its tests run (`scenario.rs`).

mod scenario;

use std::{
    fs,
    net::{Ipv6Addr, SocketAddr},
    path::PathBuf,
    process::Child,
    sync::{Mutex, MutexGuard},
    thread,
    time::Duration,
};

use crate::interop::{bird::Bird, frr::Frr};
use crate::netns::{AGENT, Namespaces, spawn_logged, strip_ansi, tail, wait_for};
use serde_json::Value;

pub(crate) use scenario::ipv6_scenario;

/// The anycast address both ToRs hold on their loopback (IPv6 test).
pub(crate) const REMOTE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);

/// One lab at a time (see the module docs).
static SERIAL: Mutex<()> = Mutex::new(());

pub(crate) struct Lab {
    agent: Option<Child>,
    frr: Option<Frr>,
    bird: Option<Bird>,
    /// Dropped after the processes are stopped.
    net: Namespaces,
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    /// Namespaces `roles` with loopbacks up and IPv6 DAD off (addresses usable at once).
    pub(crate) fn new(test: &str, roles: &[&'static str]) -> Self {
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

    pub(crate) fn path(&self, name: &str) -> String {
        self.net.path_str(name)
    }

    pub(crate) fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    /// A veth pair between two namespaces, both ends up.
    pub(crate) fn link(&self, (role_a, if_a): (&str, &str), (role_b, if_b): (&str, &str)) {
        self.net.veth((role_a, if_a), (role_b, if_b));
        self.exec(role_a, &["ip", "link", "set", if_a, "up"]);
        self.exec(role_b, &["ip", "link", "set", if_b, "up"]);
    }

    pub(crate) fn addr(&self, role: &str, dev: &str, cidr: &str) {
        let mut args = vec!["ip", "addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.exec(role, &args);
    }

    /// The IPv4 lab: host h1 10.0.1.2/24 ═══ t1 10.0.1.1/24 tor1; the host's loopback
    /// 192.0.2.10/32.
    pub(crate) fn ipv4_host_and_tor(test: &str) -> Self {
        let lab = Self::new(test, &["host", "tor1"]);
        lab.link(("host", "h1"), ("tor1", "t1"));
        lab.addr("host", "h1", "10.0.1.2/24");
        lab.addr("host", "lo", "192.0.2.10/32");
        lab.addr("tor1", "t1", "10.0.1.1/24");
        lab
    }

    // ---- FRR -------------------------------------------------------------------------

    /// zebra and bgpd in `role`'s namespace, bgpd with `config`, logging to bgpd.log.
    pub(crate) fn start_frr(&mut self, role: &'static str, config: &str) {
        let config = format!("log file {} debugging\n{config}", self.path("bgpd.log"));
        self.frr = Some(Frr::start(&self.net, role, &config));
    }

    pub(crate) fn frr(&self) -> &Frr {
        self.frr.as_ref().expect("FRR started")
    }

    pub(crate) fn start_bgpd(&self) {
        self.frr().start_bgpd(&self.net);
    }

    /// vtysh with each of `commands` as a `-c`; stdout.
    pub(crate) fn vtysh_text(&self, commands: &[&str]) -> String {
        self.frr().vtysh_text(commands)
    }

    pub(crate) fn vtysh(&self, command: &str) -> Value {
        self.frr().vtysh(command)
    }

    /// The last lines of bgpd's log.
    pub(crate) fn frr_log(&self) -> String {
        format!("bgpd log:\n{}", tail(&self.net.path("bgpd.log"), 40))
    }

    /// FRR's neighbor record (`show bgp neighbors ADDR json`), Null if none.
    pub(crate) fn frr_neighbor(&self, address: &str) -> Value {
        self.vtysh(&format!("show bgp neighbors {address} json"))[address].clone()
    }

    /// FRR's AS_PATH strings for `prefix` (`family`: ipv4 / ipv6).
    pub(crate) fn frr_as_paths(&self, family: &str, prefix: &str) -> Vec<String> {
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

    pub(crate) fn start_bird(&mut self, role: &'static str, config: &str) {
        self.bird = Some(Bird::start(&self.net, role, config));
    }

    pub(crate) fn birdc(&self, command: &str) -> String {
        self.bird.as_ref().expect("BIRD started").birdc(command)
    }

    // ---- router-agent ----------------------------------------------------------------

    /// Starts router-agent in the host namespace with `interfaces` and this `[bgp]` body.
    pub(crate) fn start_agent(&mut self, interfaces: &[&str], bgp: &str) {
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
    pub(crate) fn agent_log(&self) -> String {
        strip_ansi(&fs::read_to_string(self.path("agent.log")).unwrap_or_default())
    }

    /// The agent log (its last 150 lines), for failure messages.
    pub(crate) fn log(&self) -> String {
        let agent = self.agent_log();
        let lines: Vec<&str> = agent.lines().collect();
        let last = lines[lines.len().saturating_sub(150)..].join("\n");
        format!("agent log:\n{last}")
    }

    /// How many times the agent logged `needle`.
    pub(crate) fn log_count(&self, needle: &str) -> usize {
        self.agent_log().matches(needle).count()
    }

    /// `router-agent show WHAT --json`: fib and counters from the pinned maps, neighbors and
    /// routes from the running agent (control socket). Null if it failed.
    pub(crate) fn show(&self, what: &str) -> Value {
        let config = PathBuf::from(self.path("host.toml"));
        self.net
            .agent_show(AGENT, "host", what, Some(&config))
            .unwrap_or(Value::Null)
    }

    /// The agent's view of one neighbor (`show neighbors`), Null if unknown.
    pub(crate) fn agent_neighbor(&self, address: &str) -> Value {
        self.show("neighbors")
            .as_array()
            .and_then(|all| all.iter().find(|n| n["address"] == address).cloned())
            .unwrap_or(Value::Null)
    }

    /// The agent's paths for `prefix` (`show routes`) as (peer, status, AS path), sorted.
    pub(crate) fn agent_paths(&self, prefix: &str) -> Vec<(String, String, Vec<u64>)> {
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
    pub(crate) fn nexthops(&self, prefix: &str) -> Vec<(String, String)> {
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

    pub(crate) fn nexthop_interfaces(&self, prefix: &str) -> Vec<String> {
        self.nexthops(prefix).into_iter().map(|(i, _)| i).collect()
    }

    /// Packets forwarded by XDP through the nexthops on `interface`.
    pub(crate) fn packets_via(&self, interface: &str) -> u64 {
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
    pub(crate) fn send6(&self, count: usize) {
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
pub(crate) fn frr_ipv4_config(asn: u32, host_as: u32, extra: &str, extra_af: &str) -> String {
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
pub(crate) fn agent_ipv4_bgp(local_as: u32, remote_as: u32) -> String {
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
pub(crate) fn agent_ipv4_bgp_passive(local_as: u32, remote_as: u32) -> String {
    agent_ipv4_bgp(local_as, remote_as) + "passive = true\n"
}
