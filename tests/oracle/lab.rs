//! Builds a [`Scenario`] in network namespaces: the router (`rtr`, running `router-agent`) with
//! a veth to one peer namespace per link, gobgpd in the first peer announcing the BGP routes,
//! the neighbor entries and the "other software" routes; then waits until the agent and the
//! kernel have settled, so that every packet sees one stable state.
//!
//! ```text
//!   p0 [gobgpd] v0 ═══ a0 ┐
//!   p1          v1 ═══ a1 ├ rtr [router-agent, XDP on a0..aN]
//!   ...                   │
//!   px          vx ═══ x0 ┘ (not attached)
//! ```

use std::{
    collections::BTreeMap,
    fs,
    net::IpAddr,
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use serde_json::Value;

use super::scenario::{BGP_PEER_LINK, PEER_ASN, ROUTER_ASN, Scenario};
use crate::netns::{AGENT, Namespaces, sh, spawn_logged, stop, tail, wait_for};

pub struct Lab {
    agent: Option<Child>,
    gobgpd: Option<Child>,
    /// Router interface name -> ifindex.
    pub ifindex: BTreeMap<String, u32>,
    /// Last: dropped after the processes are stopped.
    pub net: Namespaces,
}

pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Lab {
    pub fn new(scenario: &Scenario) -> Self {
        let mut roles = vec!["rtr".to_owned()];
        roles.extend(scenario.links.iter().map(|l| format!("p-{}", l.name)));
        let role_refs: Vec<&str> = roles.iter().map(String::as_str).collect();
        let net = Namespaces::new("hro-", "ora", &role_refs);
        let mut lab = Self {
            agent: None,
            gobgpd: None,
            ifindex: BTreeMap::new(),
            net,
        };
        // Before the links exist: devices copy `default` when they are created. No reverse
        // path filter and no redirects, so the kernel's input checks are the plain ones.
        for sysctl in [
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.ipv4.conf.all.send_redirects=0",
            "net.ipv4.conf.default.send_redirects=0",
        ] {
            lab.net.exec("rtr", &["sysctl", "-qw", sysctl]);
        }
        for (index, link) in scenario.links.iter().enumerate() {
            let peer = lab.peer(scenario, index);
            let peer_if = format!("v{}", &link.name[1..]);
            lab.net.veth(("rtr", &link.name), (&peer, &peer_if));
            let (name, mac) = (&link.name, mac_text(&link.mac));
            lab.run("rtr", &format!("ip link set {name} address {mac}"));
            lab.run(
                "rtr",
                &format!("ip addr add {}/24 dev {name}", link.host4(1)),
            );
            lab.run(
                "rtr",
                &format!("ip addr add {}/64 dev {name} nodad", link.host6(1)),
            );
            lab.run("rtr", &format!("ip link set {name} up"));
            let mac = mac_text(&link.peer_mac);
            lab.run(&peer, &format!("ip link set {peer_if} address {mac}"));
            for host in super::scenario::REAL_HOSTS {
                lab.run(
                    &peer,
                    &format!("ip addr add {}/24 dev {peer_if}", link.host4(host)),
                );
                let v6 = link.host6(host);
                lab.run(&peer, &format!("ip addr add {v6}/64 dev {peer_if} nodad"));
            }
            lab.run(&peer, &format!("ip link set {peer_if} up"));
        }
        for lo in &scenario.loopbacks {
            let len = if lo.is_ipv6() { 128 } else { 32 };
            lab.run("rtr", &format!("ip addr add {lo}/{len} dev lo"));
        }
        for neighbor in &scenario.neighbors {
            let (addr, mac) = (neighbor.addr, mac_text(&neighbor.mac));
            let dev = &scenario.links[neighbor.link].name;
            let nud = neighbor.nud;
            lab.run(
                "rtr",
                &format!("ip neigh replace {addr} lladdr {mac} dev {dev} nud {nud}"),
            );
        }
        for route in &scenario.kernel {
            let family = if route.prefix.addr().is_ipv6() {
                "-6"
            } else {
                "-4"
            };
            lab.run(
                "rtr",
                &format!("ip {family} route add {}", route.args.join(" ")),
            );
        }
        let links = lab.net.exec("rtr", &["ip", "-j", "link", "show"]);
        let links: Value = serde_json::from_str(&links).unwrap();
        for link in links.as_array().unwrap() {
            lab.ifindex.insert(
                link["ifname"].as_str().unwrap().to_owned(),
                link["ifindex"].as_u64().unwrap() as u32,
            );
        }
        lab
    }

    pub fn peer(&self, scenario: &Scenario, link: usize) -> String {
        format!("p-{}", scenario.links[link].name)
    }

    /// A command line (split at spaces) in `role`'s namespace.
    fn run(&self, role: &str, command: &str) -> String {
        let words: Vec<&str> = command.split_whitespace().collect();
        self.net.exec(role, &words)
    }

    pub fn exec(&self, args: &[&str]) -> String {
        self.net.exec("rtr", args)
    }

    pub fn agent_log(&self) -> String {
        tail(&self.net.path("agent.log"), 200)
    }

    /// Writes the agent's config (attached links, static routes, the BGP neighbor) and starts
    /// it in the router namespace; returns once it forwards.
    pub fn start_agent(&mut self, scenario: &Scenario) {
        // ORACLE_ENGINE picks the lookup engine (default: the agent's choice); `kernel` makes
        // XDP use bpf_fib_lookup itself, a check of the oracle's own comparisons.
        let engine = std::env::var("ORACLE_ENGINE").unwrap_or_else(|_| "auto".into());
        let mut config = format!(
            "[datapath]\npin_dir = \"{}\"\nengine = \"{engine}\"\n\n[control]\nsocket = \"{}\"\n\n",
            self.net.pin_dir.display(),
            self.net.path_str("agent.sock"),
        );
        for (_, link) in scenario.attached() {
            config += &format!("[[interface]]\nname = \"{}\"\n", link.name);
        }
        for route in &scenario.statics {
            let vias: Vec<String> = route
                .gateways
                .iter()
                .map(|g| format!("{{ via = \"{}\" }}", g.addr))
                .collect();
            config += &format!(
                "\n[[route]]\nprefix = \"{}\"\nnexthops = [{}]\n",
                route.prefix,
                vias.join(", ")
            );
        }
        let peer = &scenario.links[BGP_PEER_LINK];
        config += &format!(
            "\n[bgp]\nasn = {ROUTER_ASN}\nrouter_id = \"{}\"\n",
            peer.host4(1)
        );
        for address in [peer.host4(2), peer.host6(2)] {
            config += &format!(
                "\n[[bgp.neighbor]]\naddress = \"{address}\"\nremote_as = {PEER_ASN}\nimport = \"all\"\nexport = \"all\"\n"
            );
        }
        let path = self.net.path_str("agent.toml");
        fs::write(&path, config).unwrap();
        sh(&[AGENT, "check", "-c", &path]);
        let mut command = self.net.command_in("rtr", AGENT);
        command.args(["run", "-c", &path]).env("NO_COLOR", "1");
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
        wait_for(
            "the agent to attach",
            Duration::from_secs(30),
            || {
                fs::read_to_string(self.net.path("agent.log"))
                    .unwrap_or_default()
                    .contains("forwarding")
            },
            || self.agent_log(),
        );
    }

    /// Starts gobgpd in the BGP peer's namespace (sessions over IPv4 and IPv6 with the
    /// router) and announces the scenario's BGP routes through its CLI.
    pub fn start_bgp_peer(&mut self, scenario: &Scenario) {
        let peer = &scenario.links[BGP_PEER_LINK];
        let (p4, p6, r4, r6) = (peer.host4(2), peer.host6(2), peer.host4(1), peer.host6(1));
        let mut config = format!(
            "[global.config]\n  as = {PEER_ASN}\n  router-id = \"{p4}\"\n  local-address-list = [\"{p4}\", \"{p6}\"]\n"
        );
        for (router, source, family) in [(r4, p4, "ipv4-unicast"), (r6, p6, "ipv6-unicast")] {
            config += &format!(
                r#"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{router}"
    peer-as = {ROUTER_ASN}
  [neighbors.transport.config]
    local-address = "{source}"
  [neighbors.timers.config]
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "{family}"
"#
            );
        }
        let config_path = self.net.path_str("gobgpd.toml");
        fs::write(&config_path, config).unwrap();
        let role = self.peer(scenario, BGP_PEER_LINK);
        let mut command = self.net.command_in(&role, "gobgpd");
        command.args(["-f", &config_path, "--api-hosts", &self.gobgp_api()]);
        command.args(["--pprof-disable", "--log-plain"]);
        self.gobgpd = Some(spawn_logged(command, &self.net.path("gobgpd.log")));
        wait_for(
            "gobgpd's API",
            Duration::from_secs(10),
            || self.gobgp(&["neighbor"]).is_ok(),
            || tail(&self.net.path("gobgpd.log"), 50),
        );
        for route in &scenario.bgp {
            let family = if route.prefix.addr().is_ipv6() {
                "ipv6"
            } else {
                "ipv4"
            };
            let (prefix, next_hop) = (route.prefix.to_string(), route.next_hop.to_string());
            self.gobgp(&[
                "global", "rib", "add", "-a", family, &prefix, "nexthop", &next_hop,
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    fn gobgp_api(&self) -> String {
        format!("unix://{}", self.net.path_str("gobgpd.sock"))
    }

    fn gobgp(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("gobgp")
            .args(["--target", &self.gobgp_api()])
            .args(args)
            .output()
            .map_err(|e| format!("running gobgp: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "gobgp {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Waits until the agent has put every BGP route into the kernel (so it has learned
    /// them), then until neighbor resolution is over and the XDP FIB stops changing.
    pub fn settle(&self, scenario: &Scenario) {
        // A kernel route of the same prefix with a better metric than ours (20) wins: ours
        // is then not mirrored, as the kernel would not use it.
        let outranked = |prefix: &IpNet| {
            scenario.kernel.iter().any(|k| {
                k.prefix == *prefix
                    && k.args
                        .windows(2)
                        .any(|w| w[0] == "metric" && w[1].parse::<u32>().is_ok_and(|m| m < 20))
            })
        };
        let installed = || {
            let table = self.exec(&["ip", "route", "show", "proto", "201"])
                + &self.exec(&["ip", "-6", "route", "show", "proto", "201"]);
            scenario
                .bgp
                .iter()
                .filter(|r| !outranked(&r.prefix))
                .all(|r| {
                    let text = if r.prefix.prefix_len() == 0 {
                        "default".to_owned()
                    } else {
                        r.prefix.to_string()
                    };
                    table.lines().any(|l| l.starts_with(&text))
                })
        };
        wait_for(
            "the BGP routes in the kernel",
            Duration::from_secs(60),
            installed,
            || {
                format!(
                    "{}\n--- gobgpd:\n{}\n--- kernel:\n{}",
                    self.agent_log(),
                    tail(&self.net.path("gobgpd.log"), 40),
                    self.exec(&["ip", "route", "show", "proto", "201"])
                )
            },
        );
        // Unresolved gateways stay INCOMPLETE/FAILED (managed entries keep probing): only
        // the entries with a MAC and the XDP FIB must stop changing.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        let mut stable_since = Instant::now();
        loop {
            let fib = self
                .net
                .agent_show(AGENT, "rtr", "fib", None)
                .map(|v| v.to_string())
                .unwrap_or_default();
            let state = format!("{:?}{fib}", self.resolved_neighbors());
            if state != last {
                last = state;
                stable_since = Instant::now();
            } else if stable_since.elapsed() > Duration::from_secs(2) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the router never settled:\n{last}"
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// The oracle models the kernel's IPv4 source validation with rp_filter off as "a local
    /// address is a martian", which holds only without policy rules and without local routes
    /// added by anyone but the kernel (fib_validate_source's fast path).
    pub fn assert_plain_source_validation(&self) {
        let rules = self.exec(&["ip", "rule", "show"]);
        assert_eq!(
            rules.lines().count(),
            3,
            "policy rules in the router:\n{rules}"
        );
        let local = self.exec(&["ip", "route", "show", "table", "local", "type", "local"]);
        let custom: Vec<&str> = local
            .lines()
            .filter(|l| !l.contains("proto kernel"))
            .collect();
        assert!(
            custom.is_empty(),
            "local routes not from the kernel: {custom:?}"
        );
    }

    /// The kernel's route for each address (`ip route get fibmatch`), asked in one batch:
    /// only addresses the kernel has a route for may be passed.
    pub fn fibmatch(&self, addrs: &[IpAddr]) -> Vec<Value> {
        if addrs.is_empty() {
            return Vec::new();
        }
        let script: String = addrs
            .iter()
            .map(|a| format!("route get fibmatch {a}\n"))
            .collect();
        let path = self.net.path_str("fibmatch.batch");
        fs::write(&path, script).unwrap();
        let out = self.exec(&["ip", "-j", "-batch", &path]);
        let answers: Vec<Value> = out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<Value>(l).unwrap()[0].clone())
            .collect();
        assert_eq!(
            answers.len(),
            addrs.len(),
            "one fibmatch answer per address:\n{out}"
        );
        answers
    }

    /// Kernel neighbor entries with a MAC, valid for forwarding: (dev, address) -> MAC.
    pub fn resolved_neighbors(&self) -> BTreeMap<(String, IpAddr), [u8; 6]> {
        let mut found = BTreeMap::new();
        for family in ["-4", "-6"] {
            let out = self.exec(&["ip", family, "-j", "neigh", "show"]);
            let entries: Value = serde_json::from_str(&out).unwrap();
            for entry in entries.as_array().unwrap() {
                let states: Vec<&str> = entry["state"]
                    .as_array()
                    .map(|s| s.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let valid = states.iter().any(|s| {
                    ["REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"].contains(s)
                });
                let (Some(mac), Some(dst), Some(dev)) = (
                    entry["lladdr"].as_str(),
                    entry["dst"].as_str(),
                    entry["dev"].as_str(),
                ) else {
                    continue;
                };
                if !valid {
                    continue;
                }
                let mut bytes = [0u8; 6];
                for (i, part) in mac.split(':').enumerate().take(6) {
                    bytes[i] = u8::from_str_radix(part, 16).unwrap();
                }
                found.insert((dev.to_owned(), dst.parse().unwrap()), bytes);
            }
        }
        found
    }

    /// The kernel's routing tables and neighbors, for failure messages.
    pub fn kernel_state(&self) -> String {
        format!(
            "--- ip route:\n{}--- ip -6 route:\n{}--- ip neigh:\n{}{}",
            self.exec(&["ip", "route", "show"]),
            self.exec(&["ip", "-6", "route", "show"]),
            self.exec(&["ip", "neigh", "show"]),
            self.exec(&["ip", "-6", "neigh", "show"]),
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            stop(agent, libc::SIGTERM);
        }
        if let Some(gobgpd) = self.gobgpd.take() {
            stop(gobgpd, libc::SIGTERM);
        }
    }
}
