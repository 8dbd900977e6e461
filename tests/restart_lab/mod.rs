//! The restart lab of `graceful_restart.rs`: a client, the host (router-agent, AS 65101) and
//! one ToR (AS 65001: FRR, BIRD or GoBGP, graceful restart on), with UDP probes at 1 ms in
//! both directions.
//!
//! ```text
//!   client ── c0 ═══ hc ── [host: router-agent AS 65101] ── h1 ═══ t1 ── tor (AS 65001)
//!   10.1.0.2/24    10.1.0.1/24    originates 10.1.0.0/24    10.0.1.2   10.0.1.1, lo 198.18.0.1
//! ```
//!
//! Probes: client -> 198.18.0.1 (the ToR's prefix, learned by BGP, forwarded by XDP on hc)
//! and ToR -> 10.1.0.2 (the host's originated prefix, forwarded by XDP on h1 to the client).
#![allow(dead_code)]

pub mod probe;
pub mod tor;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::Child,
    thread,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use serde_json::Value;

use crate::netns::{AGENT, Namespaces, process_alive, sh, spawn_logged, stop, tail, wait_for};
use probe::Probe;
use tor::{Tor, TorKind, TorView};

pub const TOR_PREFIX: &str = "198.18.0.0/24";
pub const TOR_ADDRESS: &str = "198.18.0.1";
pub const HOST_PREFIX: &str = "10.1.0.0/24";
pub const CLIENT: &str = "10.1.0.2";
pub const HOST_LINK: &str = "10.0.1.2";
pub const TOR_LINK: &str = "10.0.1.1";
const PROBE_PORT: u16 = 9000;

pub struct RestartLab {
    agent: Option<Child>,
    pub tor: Option<Tor>,
    probes: Vec<Probe>,
    /// Last: dropped after the processes are stopped.
    pub net: Namespaces,
}

/// The routes of `show fib`, compared across a restart: per prefix its action and its
/// nexthops (address, interface, resolved, on-link, bucket share), and which prefixes share a
/// group; and the agent's routes in the host's kernel table (protocol 201). Ids are left out:
/// they are the FIB's to allocate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibSnapshot {
    pub routes: BTreeMap<String, (String, Vec<String>)>,
    pub groups: BTreeSet<Vec<String>>,
    pub kernel: Vec<String>,
}

impl FibSnapshot {
    /// What the longest prefix containing `address` says: (prefix, action, nexthops).
    fn lookup(&self, address: IpAddr) -> Option<(&String, &(String, Vec<String>))> {
        self.routes
            .iter()
            .filter_map(|(prefix, route)| Some((prefix.parse::<IpNet>().ok()?, prefix, route)))
            .filter(|(net, _, _)| net.contains(&address))
            .max_by_key(|(net, _, _)| net.prefix_len())
            .map(|(_, prefix, route)| (prefix, route))
    }

    /// The differences in forwarding between two FIBs that may list their routes in other
    /// shapes (DIR-24-8 lists the ranges left between longer prefixes, not the prefixes): for
    /// the first, second and last address of every prefix of either, the action and nexthops
    /// of the longest match in each. Empty: they forward alike.
    pub fn forwarding_differences(&self, other: &Self) -> Vec<String> {
        let mut addresses = BTreeSet::new();
        for prefix in self.routes.keys().chain(other.routes.keys()) {
            let Ok(net) = prefix.parse::<IpNet>() else {
                continue;
            };
            addresses.insert(net.network());
            addresses.insert(net.broadcast());
            if let Some(second) = net.hosts().nth(1) {
                addresses.insert(second);
            }
        }
        addresses
            .into_iter()
            .filter_map(|address| {
                let (ours, theirs) = (self.lookup(address), other.lookup(address));
                (ours.map(|m| m.1) != theirs.map(|m| m.1))
                    .then(|| format!("{address}: {ours:?} against {theirs:?}"))
            })
            .collect()
    }
}

impl RestartLab {
    /// `tag` names the lab (`hrgr-<pid>-<tag>`).
    pub fn new(tag: &str, tor: TorKind) -> Self {
        let net = Namespaces::new("hrgr-", tag, &["client", "host", "tor"]);
        net.veth(("client", "c0"), ("host", "hc"));
        net.veth(("tor", "t1"), ("host", "h1"));
        let setup: &[(&str, &[&str])] = &[
            ("client", &["ip", "addr", "add", "10.1.0.2/24", "dev", "c0"]),
            ("client", &["ip", "link", "set", "c0", "up"]),
            (
                "client",
                &["ip", "route", "add", "default", "via", "10.1.0.1"],
            ),
            ("host", &["ip", "addr", "add", "10.1.0.1/24", "dev", "hc"]),
            ("host", &["ip", "addr", "add", "10.0.1.2/24", "dev", "h1"]),
            ("host", &["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"]),
            ("host", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            ("host", &["ip", "link", "set", "hc", "up"]),
            ("host", &["ip", "link", "set", "h1", "up"]),
            ("tor", &["ip", "addr", "add", "10.0.1.1/24", "dev", "t1"]),
            ("tor", &["ip", "addr", "add", "198.18.0.1/32", "dev", "lo"]),
            ("tor", &["ip", "link", "set", "t1", "up"]),
            ("tor", &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]),
            (
                "client",
                &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"],
            ),
        ];
        for (role, args) in setup {
            net.exec(role, args);
        }
        for (role, iface) in [("client", "c0"), ("tor", "t1")] {
            // Real UDP from these ends: checksums computed before the veth.
            net.exec(role, &["ethtool", "-K", iface, "tx", "off"]);
            // XDP redirects into a veth need NAPI (GRO) on the receiving end.
            net.exec(role, &["ethtool", "-K", iface, "gro", "on"]);
        }
        let mut lab = Self {
            agent: None,
            tor: None,
            probes: Vec::new(),
            net,
        };
        lab.tor = Some(Tor::start(tor, &lab.net));
        lab
    }

    pub fn tor(&self) -> &Tor {
        self.tor.as_ref().expect("ToR started")
    }

    pub fn config_path(&self) -> PathBuf {
        self.net.path("agent.toml")
    }

    /// Writes the agent's configuration with `engine` (`lpm-trie`, `dir24`).
    pub fn write_config(&self, engine: &str) {
        let config = format!(
            r#"[datapath]
pin_dir = "{pin_dir}"
engine = "{engine}"
[control]
socket = "{socket}"
[[interface]]
name = "hc"
[[interface]]
name = "h1"

[bgp]
asn = 65101
router_id = "192.0.2.10"
originate = [{{ prefix = "{HOST_PREFIX}" }}]

[bgp.graceful_restart]
restart_time = "120s"
selection_deferral = "60s"

[[bgp.neighbor]]
address = "{TOR_LINK}"
remote_as = 65001
import = "all"
export = "all"
hold_time = 9
"#,
            pin_dir = self.net.pin_dir.display(),
            socket = self.net.path_str("agent.sock"),
        );
        let path = self.config_path();
        fs::write(&path, config).unwrap();
        sh(&[AGENT, "check", "-c", path.to_str().unwrap()]);
    }

    /// `router-agent run --keep-datapath` (SIGTERM is then a planned restart); its log is
    /// appended to across runs.
    pub fn start_agent(&mut self) {
        assert!(self.agent.is_none(), "an agent is already running");
        let mut command = self.net.command_in("host", AGENT);
        command
            .args(["run", "--keep-datapath", "-c"])
            .arg(self.config_path())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,router_agent::bgp=debug");
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
    }

    /// SIGTERM to the agent started with `--keep-datapath` and waits for it to exit by
    /// itself (a planned restart); panics if it takes over 10 s or fails.
    pub fn stop_agent_planned(&mut self) {
        let mut agent = self.agent.take().expect("agent running");
        // SAFETY: kill(2) on our own, unreaped child.
        unsafe { libc::kill(agent.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = agent.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "the agent exited with {status}\n{}",
                    self.logs()
                );
                return;
            }
            if Instant::now() > deadline {
                stop(agent, libc::SIGKILL);
                panic!(
                    "the agent did not exit within 10 s of SIGTERM\n{}",
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9: no goodbye to anyone.
    pub fn kill_agent(&mut self) {
        let agent = self.agent.take().expect("agent running");
        stop(agent, libc::SIGKILL);
    }

    /// `router-agent restart`: a planned restart in place (same pid, re-executed binary).
    pub fn restart_command(&self) -> String {
        let pid = self.agent_pid().expect("agent running");
        let mut command = self.net.command_in("host", AGENT);
        command.args(["restart", "-c"]).arg(self.config_path());
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "router-agent restart failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        assert!(
            process_alive(pid),
            "router-agent restart keeps the pid: {pid} is gone\n{}",
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `router-agent stop`: the full stop; waits (up to 10 s) for the agent to exit and
    /// asserts it exited cleanly.
    pub fn stop_command(&mut self) {
        let mut agent = self.agent.take().expect("agent running");
        let mut command = self.net.command_in("host", AGENT);
        command.args(["stop", "-c"]).arg(self.config_path());
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "router-agent stop failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = agent.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "the agent exited with {status}\n{}",
                    self.logs()
                );
                return;
            }
            if Instant::now() > deadline {
                stop(agent, libc::SIGKILL);
                panic!("the agent did not exit within 10 s of `router-agent stop`");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(Child::id)
    }

    pub fn agent_running(&mut self) -> bool {
        self.agent
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    pub fn show(&self, what: &str) -> Value {
        self.net
            .agent_show(AGENT, "host", what, Some(&self.config_path()))
            .unwrap_or(Value::Null)
    }

    /// The FIB as the pinned maps hold it (see [`FibSnapshot`]).
    pub fn fib(&self) -> FibSnapshot {
        let fib = self.show("fib");
        let mut routes = BTreeMap::new();
        let mut groups: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for route in fib["routes"].as_array().cloned().unwrap_or_default() {
            let prefix = route["prefix"].as_str().unwrap_or("?").to_owned();
            let mut nexthops: Vec<String> = route["nexthops"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|n| {
                    format!(
                        "{} dev {} resolved={} on_link={} buckets={}",
                        n["via"], n["interface"], n["resolved"], n["on_link"], n["buckets"]
                    )
                })
                .collect();
            nexthops.sort();
            let action = route["action"].as_str().unwrap_or("?").to_owned();
            if action == "forward" {
                groups
                    .entry(route["group"].as_u64().unwrap_or(0))
                    .or_default()
                    .push(prefix.clone());
            }
            routes.insert(prefix, (action, nexthops));
        }
        let mut kernel: Vec<String> = self
            .net
            .exec("host", &["ip", "-4", "route", "show", "proto", "201"])
            .lines()
            .map(|line| line.trim().to_owned())
            .collect();
        kernel.sort();
        FibSnapshot {
            routes,
            groups: groups.into_values().collect(),
            kernel,
        }
    }

    /// The vias of `prefix` in the XDP FIB.
    pub fn fib_vias(&self, prefix: &str) -> Vec<String> {
        self.fib()
            .routes
            .get(prefix)
            .map(|(_, nexthops)| nexthops.clone())
            .unwrap_or_default()
    }

    /// Adopted (previous run's) and stale entries the running agent still holds, from
    /// `show status`: the sum of every number under a key naming "adopted" or "stale" (not a
    /// timer's setting). None if the agent does not answer or reports no "adopted" key.
    pub fn leftover_adopted(&self) -> Option<u64> {
        let status = self.show("status");
        if status.is_null() || status.get("error").is_some() {
            return None;
        }
        let mut sums = Leftovers::default();
        sums.add(&status);
        Some(sums.adopted? + sums.stale)
    }

    /// The neighbor's state as the agent reports it.
    pub fn neighbor_state(&self) -> String {
        self.show("neighbors")[0]["state"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub fn host_route(&self) -> TorView {
        self.tor().host_route()
    }

    /// Waits until the agent is back in full: the session Established, the ToR's prefix in
    /// the FIB, no adopted entry left, and the ToR holding the host's prefix not stale.
    pub fn wait_clean(&self, what: &str, timeout: Duration) {
        wait_for(
            what,
            timeout,
            || {
                self.neighbor_state() == "Established"
                    && !self.fib_vias(TOR_PREFIX).is_empty()
                    && self.leftover_adopted() == Some(0)
                    && {
                        let view = self.host_route();
                        view.present && !view.stale
                    }
            },
            || {
                format!(
                    "neighbor {:?}, status {}, ToR: {}\n{}",
                    self.neighbor_state(),
                    self.show("status"),
                    self.host_route().raw,
                    self.logs()
                )
            },
        );
    }

    /// Starts the two probes (client -> ToR prefix, ToR -> host prefix) and waits until both
    /// flow.
    pub fn start_probes(&mut self) {
        let to_tor: SocketAddr = format!("{TOR_ADDRESS}:{PROBE_PORT}").parse().unwrap();
        let to_host: SocketAddr = format!("{CLIENT}:{PROBE_PORT}").parse().unwrap();
        self.probes = vec![
            Probe::start(
                "client -> ToR's 198.18.0.1",
                &self.net.ns("client"),
                &self.net.ns("tor"),
                to_tor,
            ),
            Probe::start(
                "ToR -> host's 10.1.0.2",
                &self.net.ns("tor"),
                &self.net.ns("client"),
                to_host,
            ),
        ];
        for probe in &self.probes {
            assert!(
                probe.flowing(Duration::from_secs(20)),
                "no traffic on {}\nfib: {:?}\n{}",
                probe.name,
                self.fib(),
                self.logs()
            );
        }
    }

    /// Marks the start of a measured window on every probe.
    pub fn marks(&self) -> Vec<u64> {
        self.probes.iter().map(Probe::mark).collect()
    }

    /// Per probe: (name, losses since `marks`, lost ranges).
    pub fn losses_since(&self, marks: &[u64]) -> Vec<(String, probe::Losses, String)> {
        self.probes
            .iter()
            .zip(marks)
            .map(|(probe, from)| {
                let to = probe.mark();
                let losses = probe.losses(*from, to);
                let ranges = probe.lost_ranges(*from, to);
                let shown: Vec<String> = ranges
                    .iter()
                    .take(10)
                    .map(|(a, b)| format!("{}..{} ({} ms)", a - from, b - from, b - a))
                    .collect();
                (probe.name.clone(), losses, shown.join(", "))
            })
            .collect()
    }

    /// The agent's log (tail) and the ToR's, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!(
            "--- agent log:\n{}\n",
            tail(&self.net.path("agent.log"), 120)
        );
        for name in ["gobgpd.log", "bgpd.log", "bird.log"] {
            let path = self.net.path(name);
            if path.exists() {
                out.push_str(&format!("--- {name}:\n{}\n", tail(&path, 40)));
            }
        }
        out
    }
}

/// Numbers under keys naming "adopted" or "stale" in a JSON document, summed (and the
/// `adopting` flag of `show status`'s `adoption`).
#[derive(Default)]
struct Leftovers {
    adopted: Option<u64>,
    stale: u64,
}

impl Leftovers {
    fn add(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let key = key.to_ascii_lowercase();
                    // Not a timer's setting ("stale_routes_time").
                    let counted = !key.contains("time");
                    // `"adopting": false` once the adoption is over (no count then); while
                    // it runs the count comes with it, and it counts as one more.
                    let number = match inner {
                        Value::Bool(adopting) if key == "adopting" => {
                            Some(u64::from(*adopting)).map(|n| (n, "adopted"))
                        }
                        _ => inner.as_u64().map(|n| (n, key.as_str())),
                    };
                    match number {
                        Some((n, name)) if counted && name.contains("adopted") => {
                            self.adopted = Some(self.adopted.unwrap_or(0) + n)
                        }
                        Some((n, name)) if counted && name.contains("stale") => self.stale += n,
                        _ => self.add(inner),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| self.add(item)),
            _ => {}
        }
    }
}

impl Drop for RestartLab {
    fn drop(&mut self) {
        self.probes.clear();
        // A full stop: the agent started with --keep-datapath would leave its program and
        // pins; `stop` (full) is asked first, then SIGKILL; the namespaces' removal takes
        // the pins and the attached program with the interfaces.
        if let Some(mut agent) = self.agent.take() {
            let mut command = self.net.command_in("host", AGENT);
            command.args(["stop", "-c"]).arg(self.config_path());
            let _ = command.output();
            // The stop is acknowledged before it is done: let it finish (the Cease that ends
            // graceful restart at the ToR goes out), then kill whatever is left.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(agent.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(20));
            }
            stop(agent, libc::SIGKILL);
        }
        self.tor = None;
    }
}
