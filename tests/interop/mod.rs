//! A two-namespace lab for interop tests: router-agent in `<name>-host`, a third-party BGP
//! daemon in `<name>-peer`, one veth between them.
//!
//! ```text
//!   [host: router-agent, lo 192.0.2.20/32] host_if ═══ peer_if [peer: gobgpd / exabgp]
//!                           10.0.N.2/24                        10.0.N.1/24
//! ```
//!
//! Processes are started with setns(2) into the network namespace only (not `ip netns exec`,
//! whose private mount namespace hides the agent's bpffs pins), die with the test thread
//! (PR_SET_PDEATHSIG), and are stopped by pid on Drop. Labs of dead test processes (netns,
//! pins, temporary directory, and any process whose command line names that directory) are
//! removed when a new lab starts.
#![allow(dead_code)]

pub mod bird;
pub mod exabgp;
pub mod frr;
pub mod gobgp;

use std::{
    collections::BTreeMap,
    fs,
    net::{IpAddr, SocketAddr},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command},
    time::Duration,
};

use serde_json::Value;

use crate::netns::{AGENT, Namespaces, sh, spawn_logged, stop, tail, wait_for};

/// A 4-byte AS number: the OPEN carries AS_TRANS and the 4-octet AS capability (RFC 6793).
pub const HOST_ASN: u32 = 4_200_000_001;
pub const HOST_LOOPBACK: &str = "192.0.2.20";
pub const HOST_PREFIX: &str = "192.0.2.20/32";
const LAB_PREFIX: &str = "hrgx-";

pub struct Lab {
    pub host_if: String,
    pub peer_if: String,
    pub host_ip: String,
    pub peer_ip: String,
    agent: Option<Child>,
    /// Third-party daemons by label, stopped on Drop.
    daemons: BTreeMap<String, Child>,
    /// Last: dropped after the processes are stopped.
    pub net: Namespaces,
}

impl Lab {
    /// `tag` names the lab (`hrgx-<pid>-<tag>`); `subnet` is N in 10.0.N.0/24.
    pub fn new(tag: &str, host_if: &str, peer_if: &str, subnet: u8) -> Self {
        let net = Namespaces::new(LAB_PREFIX, tag, &["host", "peer"]);
        net.veth(("host", host_if), ("peer", peer_if));
        let lab = Self {
            host_if: host_if.to_owned(),
            peer_if: peer_if.to_owned(),
            host_ip: format!("10.0.{subnet}.2"),
            peer_ip: format!("10.0.{subnet}.1"),
            agent: None,
            daemons: BTreeMap::new(),
            net,
        };
        let host_cidr = format!("{}/24", lab.host_ip);
        let peer_cidr = format!("{}/24", lab.peer_ip);
        let loopback = format!("{HOST_LOOPBACK}/32");
        lab.exec("host", &["ip", "addr", "add", &host_cidr, "dev", host_if]);
        lab.exec("host", &["ip", "addr", "add", &loopback, "dev", "lo"]);
        lab.exec("host", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        lab.exec("host", &["ip", "link", "set", host_if, "up"]);
        lab.exec("peer", &["ip", "addr", "add", &peer_cidr, "dev", peer_if]);
        lab.exec("peer", &["ip", "link", "set", peer_if, "up"]);
        lab
    }

    /// Global IPv6 addresses on the lab link for IPv6 sessions, beside the IPv4 ones:
    /// `2001:db8:N::2/64` on the host, `2001:db8:N::1/64` on the peer (`nodad`: usable at
    /// once). Waits until both ends' link-local addresses have passed duplicate address
    /// detection: only then does the agent send its link-local next hop (RFC 2545) and can a
    /// peer's be used. Returns (host, peer).
    pub fn add_ipv6(&self, subnet: u8) -> (String, String) {
        let (host, peer) = (
            format!("2001:db8:{subnet}::2"),
            format!("2001:db8:{subnet}::1"),
        );
        for (role, interface, address) in [
            ("host", &self.host_if, &host),
            ("peer", &self.peer_if, &peer),
        ] {
            let cidr = format!("{address}/64");
            self.exec(
                role,
                &["ip", "addr", "add", &cidr, "dev", interface, "nodad"],
            );
            wait_for(
                &format!("the link-local address of {interface} to be usable"),
                Duration::from_secs(10),
                || {
                    self.exec(
                        role,
                        &["ip", "-6", "addr", "show", "dev", interface, "tentative"],
                    )
                    .trim()
                    .is_empty()
                },
                || self.exec(role, &["ip", "-6", "addr", "show", "dev", interface]),
            );
        }
        (host, peer)
    }

    /// The kernel's link-local address of `interface` in `role`'s namespace.
    pub fn link_local(&self, role: &str, interface: &str) -> String {
        let out = self.exec(
            role,
            &[
                "ip", "-6", "-o", "addr", "show", "dev", interface, "scope", "link",
            ],
        );
        out.split_whitespace()
            .skip_while(|word| *word != "inet6")
            .nth(1)
            .and_then(|cidr| cidr.split('/').next())
            .unwrap_or_else(|| panic!("no link-local address on {interface}: {out}"))
            .to_owned()
    }

    pub fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.net.path(name)
    }

    pub fn path_str(&self, name: &str) -> String {
        self.net.path_str(name)
    }

    /// `program` in the `role` namespace (setns only), killed if the spawning thread dies.
    pub fn command_in(&self, role: &str, program: &str) -> Command {
        self.net.command_in(role, program)
    }

    /// Spawns a daemon in the peer namespace with stdout and stderr to `<label>.log`.
    pub fn spawn_daemon(&mut self, label: &str, mut command: Command) {
        // Its own process group, so that helpers it forks can be ended with it.
        command.process_group(0);
        let child = spawn_logged(command, &self.path(&format!("{label}.log")));
        self.daemons.insert(label.to_owned(), child);
    }

    /// Stops a daemon: `signal`, then SIGKILL to its process group after 5 s.
    pub fn stop_daemon(&mut self, label: &str, signal: libc::c_int) {
        if let Some(child) = self.daemons.remove(label) {
            stop(child, signal);
        }
    }

    /// The pid of a daemon started with [`Lab::spawn_daemon`].
    pub fn daemon_pid(&self, label: &str) -> Option<u32> {
        self.daemons.get(label).map(Child::id)
    }

    /// Sends `signal` to a daemon (e.g. SIGSTOP / SIGCONT to freeze it).
    pub fn signal_daemon(&self, label: &str, signal: libc::c_int) {
        let pid = self.daemon_pid(label).expect("daemon started") as libc::pid_t;
        // SAFETY: kill(2) on our own, unreaped child.
        unsafe { libc::kill(pid, signal) };
    }

    /// The agent's pid (for its memory in /proc).
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(Child::id)
    }

    /// Sends `signal` to the agent (e.g. SIGSTOP / SIGCONT to freeze it).
    pub fn signal_agent(&self, signal: libc::c_int) {
        let pid = self.agent.as_ref().expect("agent started").id() as libc::pid_t;
        // SAFETY: kill(2) on our own, unreaped child.
        unsafe { libc::kill(pid, signal) };
    }

    /// TCP connections in `role`'s namespace that are established to or from port 179.
    pub fn bgp_connections(&self, role: &str) -> Vec<String> {
        self.exec(
            role,
            &[
                "ss",
                "-Htn",
                "state",
                "established",
                "( sport = :179 or dport = :179 )",
            ],
        )
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect()
    }

    pub fn daemon_running(&mut self, label: &str) -> bool {
        self.daemons
            .get_mut(label)
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Writes the agent's config (`[datapath]`, the interface, then `bgp`) and starts it.
    /// The agent's control socket is the lab's own (`agent.sock`): labs run in parallel.
    pub fn start_agent(&mut self, bgp: &str) {
        self.start_agent_with("", bgp);
    }

    /// [`Lab::start_agent`] with more `[datapath]` lines (`datapath`, newline-terminated).
    pub fn start_agent_with(&mut self, datapath: &str, bgp: &str) {
        let config = format!(
            "[datapath]\npin_dir = \"{}\"\n{datapath}[control]\nsocket = \"{}\"\n[[interface]]\nname = \"{}\"\n\n{bgp}",
            self.net.pin_dir.display(),
            self.path_str("agent.sock"),
            self.host_if
        );
        let path = self.path_str("agent.toml");
        fs::write(&path, config).unwrap();
        sh(&[AGENT, "check", "-c", &path]);
        let _ = fs::remove_file(self.path("agent.log"));
        let mut command = self.command_in("host", AGENT);
        command
            .args(["run", "-c", &path])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,router_agent::bgp=debug");
        self.agent = Some(spawn_logged(command, &self.path("agent.log")));
    }

    /// The agent process exists and is not a zombie.
    pub fn agent_running(&self) -> bool {
        self.agent
            .as_ref()
            .is_some_and(|child| crate::netns::process_alive(child.id()))
    }

    pub fn agent_log(&self) -> String {
        fs::read_to_string(self.path("agent.log")).unwrap_or_default()
    }

    /// Lines of the agent's log containing every one of `needles`.
    pub fn agent_log_count(&self, needles: &[&str]) -> usize {
        self.agent_log()
            .lines()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .count()
    }

    /// Sessions the agent reported established with the peer.
    pub fn agent_established(&self) -> usize {
        self.agent_established_with(&self.peer_ip)
    }

    /// Sessions the agent reported established with the neighbor at `address` (IPv4 or
    /// IPv6: the log names the socket address, `[2001:db8::1]:179`).
    pub fn agent_established_with(&self, address: &str) -> usize {
        let ip: IpAddr = address.parse().expect("an IP address");
        let peer = format!("peer={}", SocketAddr::new(ip, 179));
        self.agent_log_count(&["session established", &peer])
    }

    /// The agent's log (tail) and each daemon's log (tail), for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!(
            "--- agent log ({}):\n{}\n",
            self.path("agent.log").display(),
            tail(&self.path("agent.log"), 150)
        );
        let mut logs: Vec<PathBuf> = fs::read_dir(&self.net.dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.retain(|p| p.extension().is_some_and(|e| e == "log") && !p.ends_with("agent.log"));
        logs.sort();
        for path in logs {
            out.push_str(&format!("--- {}:\n{}\n", path.display(), tail(&path, 60)));
        }
        out
    }

    pub fn show(&self, what: &str) -> Value {
        // The config names the lab's own control socket.
        self.net
            .agent_show(AGENT, "host", what, Some(&self.path("agent.toml")))
            .unwrap_or(Value::Null)
    }

    /// Forwarded routes in the XDP FIB: prefix -> nexthop addresses.
    pub fn fib(&self) -> BTreeMap<String, Vec<String>> {
        let fib = self.show("fib");
        let mut routes = BTreeMap::new();
        for route in fib["routes"].as_array().cloned().unwrap_or_default() {
            if route["action"] != "forward" {
                continue;
            }
            let mut vias: Vec<String> = route["nexthops"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|n| n["via"].as_str().map(str::to_owned))
                .collect();
            vias.sort();
            routes.insert(route["prefix"].as_str().unwrap_or("?").to_owned(), vias);
        }
        routes
    }

    /// The FIB's nexthops for `prefix` (empty: no such route).
    pub fn fib_vias(&self, prefix: &str) -> Vec<String> {
        self.fib().remove(prefix).unwrap_or_default()
    }

    /// The routes the agent mirrored into the host's kernel table (protocol 201).
    pub fn kernel_routes(&self) -> String {
        self.exec("host", &["ip", "-4", "route", "show", "proto", "201"])
    }

    pub fn fib_and_logs(&self) -> String {
        format!("fib: {:?}\n{}", self.fib(), self.logs())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // SIGTERM: the agent sends Cease, detaches, unpins and removes its kernel routes.
        if let Some(agent) = self.agent.take() {
            stop(agent, libc::SIGTERM);
        }
        let labels: Vec<String> = self.daemons.keys().cloned().collect();
        for label in labels {
            self.stop_daemon(&label, libc::SIGTERM);
        }
    }
}
