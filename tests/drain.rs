//! Drain (RFC 8326 graceful shutdown) end to end: two hosts announce the same anycast VIP to
//! one ToR, a client opens TCP connections to it all along, and draining one host moves the
//! traffic to the other with no connection lost.
//!
//! ```text
//!   client ── c0 ═══ tc ── tor ── ta ═══ ha ── [hostA: agent AS 65101] ── hab ═══ ba ── backendA
//!                             └─ tb ═══ hb ── [hostB: agent AS 65101] ── hbb ═══ bb ── backendB
//! ```
//!
//! Each backend holds the VIP (198.51.100.53) and answers on TCP 8080; each host routes the
//! VIP to its backend (XDP, whose per-nexthop counters say which host carries the traffic)
//! and announces it (`[[bgp.originate]]`). The ToR installs both paths (ECMP, L4 hash).
//!
//! - `drain_with_frr`: FRR with the RFC 8326 receiver policy (GRACEFUL_SHUTDOWN → LOCAL_PREF
//!   0). `drain --wait` on A: the ToR forwards to B only while A's path is still there, tagged
//!   65535:0; A's backend stops getting packets, B's gets them; `undrain` brings A back;
//!   `--withdraw-after` withdraws A's path later; `restart` while drained comes back drained
//!   (the state file); `stop` with `on_stop` tags the path before the session ends. No client
//!   connection fails at any point.
//! - `drain_with_bird`: BIRD without that policy; `drain.prepend = 2` makes A's path longer,
//!   so the ToR prefers B by AS path length alone.
//!
//! Needs root, FRR and BIRD. `HRGX_KEEP_LOGS=1` keeps the lab's directory.

mod netns;

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    path::PathBuf,
    process::Child,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use netns::{AGENT, Namespaces, spawn_logged, stop, tail, wait_for};
use serde_json::Value;

const VIP: &str = "198.51.100.53";
const PORT: u16 = 8080;
const HOST_ASN: u32 = 65101;
const TOR_ASN: u32 = 65001;
const SESSION: Duration = Duration::from_secs(40);
const CONVERGE: Duration = Duration::from_secs(10);

/// One of the two hosts: its index (1: A, 2: B) names its interfaces and subnets.
#[derive(Clone, Copy)]
struct Host {
    index: u8,
}

const A: Host = Host { index: 1 };
const B: Host = Host { index: 2 };

impl Host {
    fn role(self) -> &'static str {
        ["", "hostA", "hostB"][self.index as usize]
    }
    fn backend(self) -> &'static str {
        ["", "backendA", "backendB"][self.index as usize]
    }
    fn letter(self) -> &'static str {
        ["", "a", "b"][self.index as usize]
    }
    /// The host's uplink address (the ToR's neighbor).
    fn address(self) -> String {
        format!("10.2.{}.2", self.index)
    }
    fn tor_address(self) -> String {
        format!("10.2.{}.1", self.index)
    }
    fn backend_address(self) -> String {
        format!("10.3.{}.2", self.index)
    }
}

enum Tor {
    Frr,
    Bird,
}

struct Lab {
    agents: [Option<Child>; 3],
    tor: Tor,
    stop_clients: Arc<AtomicBool>,
    /// Connections that succeeded / failed, and per backend connections accepted.
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    accepted: [Arc<AtomicU64>; 3],
    /// Last: dropped after the processes are stopped.
    net: Namespaces,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_clients.store(true, Ordering::Relaxed);
        for agent in self.agents.iter_mut().filter_map(Option::take) {
            stop(agent, libc::SIGTERM);
        }
        let pidfiles: Vec<PathBuf> = ["bgpd.pid", "zebra.pid", "bird.pid"]
            .iter()
            .map(|p| self.net.path(p))
            .collect();
        netns::stop_pidfiles(&pidfiles);
    }
}

/// Enters the network namespace `ns` on this thread.
fn enter(ns: &str) {
    let file = fs::File::open(format!("/run/netns/{ns}")).unwrap();
    // SAFETY: setns(2) on an open namespace file, for this thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

impl Lab {
    fn new(tag: &str, tor: Tor) -> Self {
        let net = Namespaces::new(
            "hrdrain-",
            tag,
            &["client", "tor", "hostA", "hostB", "backendA", "backendB"],
        );
        net.veth(("client", "c0"), ("tor", "tc"));
        let lab = Self {
            agents: [None, None, None],
            tor,
            stop_clients: Arc::new(AtomicBool::new(false)),
            ok: Default::default(),
            failed: Default::default(),
            accepted: Default::default(),
            net,
        };
        lab.exec("client", &["ip", "addr", "add", "10.1.0.2/24", "dev", "c0"]);
        lab.exec("client", &["ip", "link", "set", "c0", "up"]);
        lab.exec(
            "client",
            &["ip", "route", "add", "default", "via", "10.1.0.1"],
        );
        lab.exec("client", &["ethtool", "-K", "c0", "tx", "off"]);
        lab.exec("tor", &["ip", "addr", "add", "10.1.0.1/24", "dev", "tc"]);
        lab.exec("tor", &["ip", "link", "set", "tc", "up"]);
        lab.exec("tor", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // ECMP by ports too: each connection is a new flow.
        lab.exec(
            "tor",
            &["sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"],
        );
        for host in [A, B] {
            let (role, backend, i) = (host.role(), host.backend(), host.index);
            let (uplink, tor_if) = (format!("h{}", host.letter()), format!("t{}", host.letter()));
            let (down, backend_if) = (
                format!("h{}b", host.letter()),
                format!("b{}", host.letter()),
            );
            lab.net.veth(("tor", &tor_if), (role, &uplink));
            lab.net.veth((role, &down), (backend, &backend_if));
            lab.exec(
                "tor",
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("10.2.{i}.1/24"),
                    "dev",
                    &tor_if,
                ],
            );
            lab.exec("tor", &["ip", "link", "set", &tor_if, "up"]);
            lab.exec(
                role,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("10.2.{i}.2/24"),
                    "dev",
                    &uplink,
                ],
            );
            lab.exec(
                role,
                &["ip", "addr", "add", &format!("10.3.{i}.1/24"), "dev", &down],
            );
            lab.exec(role, &["ip", "link", "set", &uplink, "up"]);
            lab.exec(role, &["ip", "link", "set", &down, "up"]);
            lab.exec(role, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
            lab.exec(
                role,
                &[
                    "ip",
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("10.2.{i}.1"),
                ],
            );
            let cidr = format!("{}/24", host.backend_address());
            lab.exec(backend, &["ip", "addr", "add", &cidr, "dev", &backend_if]);
            lab.exec(
                backend,
                &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"],
            );
            lab.exec(backend, &["ip", "link", "set", &backend_if, "up"]);
            lab.exec(
                backend,
                &[
                    "ip",
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("10.3.{i}.1"),
                ],
            );
            // XDP-redirected frames reach a veth peer only with GRO on; the backend's replies
            // are real TCP (complete checksums).
            lab.exec(backend, &["ethtool", "-K", &backend_if, "gro", "on"]);
            lab.exec(backend, &["ethtool", "-K", &backend_if, "tx", "off"]);
            lab.serve(host);
        }
        lab
    }

    fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    /// The backend's TCP service: accepts, says "ok", closes; counts what it accepted.
    fn serve(&self, host: Host) {
        let ns = self.net.ns(host.backend());
        let accepted = self.accepted[host.index as usize].clone();
        let stopping = self.stop_clients.clone();
        let (ready, wait_ready) = std::sync::mpsc::channel();
        thread::spawn(move || {
            enter(&ns);
            let listener = TcpListener::bind((VIP, PORT)).unwrap();
            listener.set_nonblocking(true).unwrap();
            ready.send(()).unwrap();
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.write_all(b"ok\n");
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        wait_ready.recv().unwrap();
    }

    /// The client: a new TCP connection to the VIP every 20 ms (50/s), each one a new flow,
    /// until the lab ends. A connection fails if it is not answered "ok" within 2 s.
    fn start_clients(&self) {
        let ns = self.net.ns("client");
        let (ok, failed, stopping) = (
            self.ok.clone(),
            self.failed.clone(),
            self.stop_clients.clone(),
        );
        thread::spawn(move || {
            enter(&ns);
            let vip: SocketAddr = format!("{VIP}:{PORT}").parse().unwrap();
            let once = || -> std::io::Result<bool> {
                let mut stream = TcpStream::connect_timeout(&vip, Duration::from_secs(2))?;
                stream.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut answer = [0u8; 3];
                stream.read_exact(&mut answer)?;
                Ok(&answer == b"ok\n")
            };
            while !stopping.load(Ordering::Relaxed) {
                match once() {
                    Ok(true) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                thread::sleep(Duration::from_millis(20));
            }
        });
    }

    fn config_path(&self, host: Host) -> String {
        self.net.path_str(&format!("agent-{}.toml", host.letter()))
    }

    fn start_agent(&mut self, host: Host, prepend: u8) {
        let l = host.letter();
        let config = format!(
            r#"[datapath]
pin_dir = "{pin}"
[control]
socket = "{socket}"
[[interface]]
name = "h{l}"
[[interface]]
name = "h{l}b"
[[route]]
prefix = "{VIP}/32"
nexthops = [{{ via = "{backend}" }}]
[drain]
state_file = "{state}"
prepend = {prepend}
on_stop = "2s"
[bgp]
asn = {HOST_ASN}
router_id = "{address}"
originate = [{{ prefix = "{VIP}/32" }}]
[[bgp.neighbor]]
address = "{tor}"
remote_as = {TOR_ASN}
import = "all"
export = "all"
hold_time = 9
"#,
            pin = self.net.pin_dir.join(l).display(),
            socket = self.net.path_str(&format!("agent-{l}.sock")),
            backend = host.backend_address(),
            state = self.net.path_str(&format!("drain-{l}.json")),
            address = host.address(),
            tor = host.tor_address(),
        );
        let path = self.config_path(host);
        fs::write(&path, config).unwrap();
        let mut command = self.net.command_in(host.role(), AGENT);
        command
            .args(["run", "-c", &path])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        let log = self.net.path(&format!("agent-{l}.log"));
        self.agents[host.index as usize] = Some(spawn_logged(command, &log));
    }

    /// `router-agent ARGS -c CONFIG` against `host`'s agent: (success, stdout + stderr).
    fn cli(&self, host: Host, args: &[&str]) -> (bool, String) {
        let out = self
            .net
            .command_in(host.role(), AGENT)
            .args(args)
            .args(["-c", &self.config_path(host)])
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn cli_ok(&self, host: Host, args: &[&str]) -> Value {
        let (ok, text) = self.cli(host, args);
        assert!(ok, "router-agent {args:?}: {text}\n{}", self.logs());
        let start = text.find('{').unwrap_or(0);
        serde_json::from_str(&text[start..]).unwrap_or(Value::Null)
    }

    fn show(&self, host: Host, what: &str) -> Value {
        let pin = self.net.pin_dir.join(host.letter());
        let (ok, text) = self.cli(
            host,
            &["show", what, "--json", "--pin-dir", pin.to_str().unwrap()],
        );
        if !ok {
            return Value::Null;
        }
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Packets XDP sent to `host`'s backend.
    fn backend_packets(&self, host: Host) -> u64 {
        self.show(host, "counters")["nexthops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["via"] == host.backend_address().as_str())
            .filter_map(|n| n["packets"].as_u64())
            .sum()
    }

    /// The ToR's kernel next hops for the VIP.
    fn tor_vias(&self) -> Vec<String> {
        let out = self.exec("tor", &["ip", "-4", "route", "show", &format!("{VIP}/32")]);
        let mut vias: Vec<String> = out
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .map(|w| w[1].to_owned())
            .collect();
        vias.sort();
        vias
    }

    /// The ToR's BGP paths for the VIP: (from host, tagged GRACEFUL_SHUTDOWN, AS path length).
    fn tor_paths(&self) -> Vec<(String, bool, usize)> {
        match self.tor {
            Tor::Frr => {
                let json = self.vtysh(&format!("show bgp ipv4 unicast {VIP}/32 json"));
                json["paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let from = p["peer"]["peerId"].as_str().unwrap_or("?").to_owned();
                        let gshut = p["community"]["string"]
                            .as_str()
                            .is_some_and(|c| c.contains("graceful-shutdown"));
                        let length = p["aspath"]["length"].as_u64().unwrap_or(0) as usize;
                        (from, gshut, length)
                    })
                    .collect()
            }
            Tor::Bird => {
                // One block per route: "via X on IF", then its attributes.
                let text = self.birdc(&format!("show route for {VIP}/32 all"));
                let mut paths = Vec::new();
                for line in text.lines() {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    if let Some(at) = words.iter().position(|w| *w == "via") {
                        paths.push((words.get(at + 1).unwrap_or(&"?").to_string(), false, 0));
                    } else if let Some(last) = paths.last_mut() {
                        if line.contains("BGP.community") && line.contains("(65535,0)") {
                            last.1 = true;
                        }
                        if let Some(path) = line.trim().strip_prefix("BGP.as_path:") {
                            last.2 = path.split_whitespace().count();
                        }
                    }
                }
                paths
            }
        }
    }

    fn vtysh(&self, command: &str) -> Value {
        let out = std::process::Command::new("vtysh")
            .args(["--vty_socket", &self.net.path_str(""), "-c", command])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    fn birdc(&self, command: &str) -> String {
        let out = std::process::Command::new("birdc")
            .arg("-s")
            .arg(self.net.path("bird.ctl"))
            .args(command.split(' '))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start_tor(&self) {
        match self.tor {
            Tor::Frr => {
                let config = format!(
                    "log file {log} debugging\nfrr defaults datacenter\n\
                     bgp community-list standard GSHUT seq 5 permit graceful-shutdown\n\
                     route-map HOSTS-IN permit 10\n match community GSHUT\n set local-preference 0\n\
                     route-map HOSTS-IN permit 20\n!\n\
                     router bgp {TOR_ASN}\n bgp router-id 10.2.0.1\n\
                     no bgp ebgp-requires-policy\n\
                     neighbor 10.2.1.2 remote-as {HOST_ASN}\n neighbor 10.2.2.2 remote-as {HOST_ASN}\n\
                     neighbor 10.2.1.2 timers 3 9\n neighbor 10.2.2.2 timers 3 9\n\
                     neighbor 10.2.1.2 timers connect 1\n neighbor 10.2.2.2 timers connect 1\n\
                     address-family ipv4 unicast\n  maximum-paths 8\n\
                       neighbor 10.2.1.2 route-map HOSTS-IN in\n\
                       neighbor 10.2.2.2 route-map HOSTS-IN in\n exit-address-family\n",
                    log = self.net.path_str("frr-bgpd.log"),
                );
                fs::write(self.net.path("bgpd.conf"), config).unwrap();
                let pathspace = format!("{}tor", self.net.name);
                let (zserv, vty) = (self.net.path_str("zserv.api"), self.net.path_str(""));
                for (program, extra) in [
                    ("/usr/lib/frr/zebra", vec!["-i", "zebra.pid"]),
                    (
                        "/usr/lib/frr/bgpd",
                        vec!["-i", "bgpd.pid", "-f", "bgpd.conf"],
                    ),
                ] {
                    let extra: Vec<String> = extra
                        .iter()
                        .map(|a| {
                            if a.ends_with(".pid") || a.ends_with(".conf") {
                                self.net.path_str(a)
                            } else {
                                a.to_string()
                            }
                        })
                        .collect();
                    let mut args = vec![program, "-d"];
                    args.extend(extra.iter().map(String::as_str));
                    args.extend(["-z", &zserv, "--vty_socket", &vty, "-N", &pathspace]);
                    self.exec("tor", &args);
                }
            }
            Tor::Bird => {
                let neighbors: String = [A, B]
                    .iter()
                    .map(|h| {
                        format!(
                            "protocol bgp host{} {{\n  local {} as {TOR_ASN};\n  \
                             neighbor {} as {HOST_ASN};\n  hold time 9;\n  connect retry time 1;\n  \
                             ipv4 {{ import all; export none; }};\n}}\n",
                            h.letter(),
                            h.tor_address(),
                            h.address()
                        )
                    })
                    .collect();
                let config = format!(
                    "log \"{log}\" all;\nrouter id 10.2.0.1;\nprotocol device {{}}\n\
                     protocol kernel {{\n  ipv4 {{ export all; }};\n  merge paths yes limit 8;\n}}\n\
                     {neighbors}",
                    log = self.net.path_str("bird-tor.log"),
                );
                fs::write(self.net.path("bird.conf"), config).unwrap();
                let (conf, ctl, pid) = (
                    self.net.path_str("bird.conf"),
                    self.net.path_str("bird.ctl"),
                    self.net.path_str("bird.pid"),
                );
                self.exec("tor", &["bird", "-c", &conf, "-s", &ctl, "-P", &pid]);
            }
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["agent-a.log", "agent-b.log", "frr-bgpd.log", "bird-tor.log"] {
            let path = self.net.path(name);
            if path.exists() {
                out.push_str(&format!("--- {name}:\n{}\n", tail(&path, 40)));
            }
        }
        out
    }

    fn counts(&self) -> String {
        format!(
            "ok {}, failed {}, accepted A {} B {}",
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.accepted[1].load(Ordering::Relaxed),
            self.accepted[2].load(Ordering::Relaxed)
        )
    }

    fn failures(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits until the ToR forwards the VIP to exactly `hosts`.
    fn wait_tor_vias(&self, what: &str, hosts: &[Host], within: Duration) {
        let mut want: Vec<String> = hosts.iter().map(|h| h.address()).collect();
        want.sort();
        wait_for(
            what,
            within,
            || self.tor_vias() == want,
            || {
                format!(
                    "tor vias {:?}, paths {:?}\n{}",
                    self.tor_vias(),
                    self.tor_paths(),
                    self.logs()
                )
            },
        );
    }

    /// A's path at the ToR: Some(tagged) while present.
    fn path_of(&self, host: Host) -> Option<(bool, usize)> {
        self.tor_paths()
            .into_iter()
            .find(|(from, _, _)| *from == host.address())
            .map(|(_, gshut, length)| (gshut, length))
    }

    /// Both hosts up, announcing, the ToR forwarding to both, the clients running and both
    /// backends serving.
    fn bring_up(&mut self, prepend: u8) {
        self.start_tor();
        self.start_agent(A, prepend);
        self.start_agent(B, prepend);
        self.wait_tor_vias("ECMP to both hosts at the ToR", &[A, B], SESSION);
        self.start_clients();
        wait_for(
            "connections to both backends",
            CONVERGE,
            || {
                self.accepted[1].load(Ordering::Relaxed) > 5
                    && self.accepted[2].load(Ordering::Relaxed) > 5
            },
            || self.counts(),
        );
    }

    /// `drain --wait` on A (options `extra`): the ToR forwards to B only while A's path stays,
    /// tagged; A's backend stops getting packets while B's gets them.
    fn drain_a_moves_traffic_to_b(&self, extra: &[&str], expect_length: Option<usize>) {
        let mut args = vec!["drain", "--wait", "--max-wait", "5s"];
        args.extend_from_slice(extra);
        let drained_at = Instant::now();
        let answer = self.cli_ok(A, &args);
        assert_eq!(answer["peers_flushed"], 1, "{answer}");
        assert_eq!(answer["peers_timed_out"], 0, "{answer}");
        assert!(!answer["drained"]["all"].is_null(), "{answer}");
        self.wait_tor_vias("the ToR forwarding to B only", &[B], CONVERGE);
        let converged = drained_at.elapsed();
        let (gshut, length) = self.path_of(A).expect("A's path kept while drained");
        assert!(gshut, "A's path not tagged 65535:0: {:?}", self.tor_paths());
        if let Some(expect) = expect_length {
            assert_eq!(length, expect, "{:?}", self.tor_paths());
        }
        // Connections already in flight to A finish; then A gets nothing.
        thread::sleep(Duration::from_millis(500));
        let (a0, b0) = (self.backend_packets(A), self.backend_packets(B));
        thread::sleep(Duration::from_secs(2));
        let (a1, b1) = (self.backend_packets(A), self.backend_packets(B));
        assert!(b1 > b0 + 100, "B's backend got {} packets", b1 - b0);
        assert!(
            (a1 - a0) * 100 <= b1 - b0,
            "A's backend got {} packets while drained, B's {}",
            a1 - a0,
            b1 - b0
        );
        eprintln!(
            "drained: ToR on B only {converged:.1?} after `drain --wait`; 2 s later: A +{} B +{} packets; {}",
            a1 - a0,
            b1 - b0,
            self.counts()
        );
        assert_eq!(self.failures(), 0, "{}", self.counts());
    }

    fn undrain_a(&self) {
        let answer = self.cli_ok(A, &["undrain"]);
        assert!(answer["drained"]["all"].is_null(), "{answer}");
        self.wait_tor_vias("ECMP to both hosts again after undrain", &[A, B], CONVERGE);
        assert_eq!(self.path_of(A).map(|p| p.0), Some(false));
    }
}

#[test]
fn drain_with_frr() {
    let started = Instant::now();
    let mut lab = Lab::new("frr", Tor::Frr);
    lab.bring_up(0);
    let status = lab.show(A, "status");
    assert!(status["drain"]["all"].is_null(), "{status}");

    lab.drain_a_moves_traffic_to_b(&[], None);
    let status = lab.show(A, "status");
    assert!(!status["drain"]["all"].is_null(), "{status}");
    lab.undrain_a();

    // Withdrawn after a while: tagged first, then gone from the ToR's table.
    lab.cli_ok(A, &["drain", "--withdraw-after", "2s"]);
    wait_for(
        "A's path tagged",
        CONVERGE,
        || lab.path_of(A) == Some((true, 1)),
        || format!("{:?}", lab.tor_paths()),
    );
    let tagged_at = Instant::now();
    wait_for(
        "A's path withdrawn",
        CONVERGE,
        || lab.path_of(A).is_none(),
        || format!("{:?}\n{}", lab.tor_paths(), lab.logs()),
    );
    let withdrawn_after = tagged_at.elapsed();
    assert!(
        withdrawn_after >= Duration::from_millis(800),
        "withdrawn {withdrawn_after:?} after being tagged"
    );
    lab.undrain_a();

    // A planned restart while drained comes back drained (the state file).
    lab.cli_ok(A, &["drain"]);
    wait_for(
        "A's path tagged",
        CONVERGE,
        || lab.path_of(A) == Some((true, 1)),
        || format!("{:?}", lab.tor_paths()),
    );
    let state: Value =
        serde_json::from_str(&fs::read_to_string(lab.net.path("drain-a.json")).unwrap()).unwrap();
    assert_eq!(state["version"], 1, "{state}");
    assert!(!state["all"].is_null(), "{state}");
    let (ok, text) = lab.cli(A, &["restart"]);
    assert!(ok, "restart: {text}");
    wait_for(
        "A's agent back, drained, its session up again",
        SESSION,
        || {
            !lab.show(A, "status")["drain"]["all"].is_null()
                && lab.show(A, "neighbors")[0]["state"] == "Established"
        },
        || lab.logs(),
    );
    assert!(
        fs::read_to_string(lab.net.path("agent-a.log"))
            .unwrap()
            .contains("starting drained"),
        "{}",
        lab.logs()
    );
    // What FRR holds now came from the new process (not a path kept stale over the graceful
    // restart), and it is tagged.
    wait_for(
        "A's path from the restarted agent, tagged",
        CONVERGE,
        || {
            let json = lab.vtysh(&format!("show bgp ipv4 unicast {VIP}/32 json"));
            json["paths"].as_array().into_iter().flatten().any(|p| {
                p["peer"]["peerId"] == A.address().as_str()
                    && p["stale"].as_bool() != Some(true)
                    && p["community"]["string"]
                        .as_str()
                        .is_some_and(|c| c.contains("graceful-shutdown"))
            })
        },
        || {
            format!(
                "{}",
                lab.vtysh(&format!("show bgp ipv4 unicast {VIP}/32 json"))
            )
        },
    );
    assert_eq!(lab.tor_vias(), [B.address()]);
    lab.undrain_a();

    // A full stop with on_stop: tagged while the session is still up, then gone.
    let (ok, text) = lab.cli(A, &["stop"]);
    assert!(ok, "stop: {text}");
    let stop_at = Instant::now();
    let mut tagged_while_up = false;
    while stop_at.elapsed() < CONVERGE {
        match lab.path_of(A) {
            Some((true, _)) => tagged_while_up = true,
            None => break,
            Some((false, _)) => {}
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        tagged_while_up,
        "no GRACEFUL_SHUTDOWN before A's session ended\n{}",
        lab.logs()
    );
    lab.wait_tor_vias("B only after A stopped", &[B], CONVERGE);
    assert_eq!(lab.failures(), 0, "{}", lab.counts());
    eprintln!(
        "drain with FRR: {}, {:.1?}",
        lab.counts(),
        started.elapsed()
    );
}

#[test]
fn drain_with_bird() {
    let started = Instant::now();
    let mut lab = Lab::new("bird", Tor::Bird);
    lab.bring_up(2);
    // No receiver policy at BIRD: the prepends alone move the traffic.
    lab.drain_a_moves_traffic_to_b(&[], Some(3));
    lab.undrain_a();
    assert_eq!(lab.failures(), 0, "{}", lab.counts());
    eprintln!(
        "drain with BIRD: {}, {:.1?}",
        lab.counts(),
        started.elapsed()
    );
}
