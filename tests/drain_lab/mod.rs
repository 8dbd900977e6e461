//! The lab of `tests/drain.rs`: client, ToR (FRR or BIRD, `tor.rs`), two hosts running the
//! agent, a backend behind each; the client's TCP connections and the backends' counters.

mod tor;

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
    time::Duration,
};

use serde_json::Value;

use crate::netns::{AGENT, Namespaces, spawn_logged, stop, tail, wait_for};

pub const VIP: &str = "198.51.100.53";
pub const PORT: u16 = 8080;
pub const HOST_ASN: u32 = 65101;
pub const TOR_ASN: u32 = 65001;
pub const SESSION: Duration = Duration::from_secs(40);
pub const CONVERGE: Duration = Duration::from_secs(10);

/// One of the two hosts: its index (1: A, 2: B) names its interfaces and subnets.
#[derive(Clone, Copy)]
pub struct Host {
    pub index: u8,
}

pub const A: Host = Host { index: 1 };
pub const B: Host = Host { index: 2 };

impl Host {
    pub fn role(self) -> &'static str {
        ["", "hostA", "hostB"][self.index as usize]
    }
    pub fn backend(self) -> &'static str {
        ["", "backendA", "backendB"][self.index as usize]
    }
    pub fn letter(self) -> &'static str {
        ["", "a", "b"][self.index as usize]
    }
    /// The host's uplink address (the ToR's neighbor).
    pub fn address(self) -> String {
        format!("10.2.{}.2", self.index)
    }
    pub fn tor_address(self) -> String {
        format!("10.2.{}.1", self.index)
    }
    pub fn backend_address(self) -> String {
        format!("10.3.{}.2", self.index)
    }
}

pub enum Tor {
    Frr,
    Bird,
}

pub struct Lab {
    pub agents: [Option<Child>; 3],
    pub tor: Tor,
    pub stop_clients: Arc<AtomicBool>,
    /// Connections that succeeded / failed, and per backend connections accepted.
    pub ok: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    pub accepted: [Arc<AtomicU64>; 3],
    /// Last: dropped after the processes are stopped.
    pub net: Namespaces,
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
        crate::netns::stop_pidfiles(&pidfiles);
    }
}

/// Enters the network namespace `ns` on this thread.
pub fn enter(ns: &str) {
    let file = fs::File::open(format!("/run/netns/{ns}")).unwrap();
    // SAFETY: setns(2) on an open namespace file, for this thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}
impl Lab {
    pub fn new(tag: &str, tor: Tor) -> Self {
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

    pub fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    /// The backend's TCP service: accepts, says "ok", closes; counts what it accepted.
    pub fn serve(&self, host: Host) {
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
    pub fn start_clients(&self) {
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

    pub fn config_path(&self, host: Host) -> String {
        self.net.path_str(&format!("agent-{}.toml", host.letter()))
    }

    pub fn start_agent(&mut self, host: Host, prepend: u8) {
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
    pub fn cli(&self, host: Host, args: &[&str]) -> (bool, String) {
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

    pub fn cli_ok(&self, host: Host, args: &[&str]) -> Value {
        let (ok, text) = self.cli(host, args);
        assert!(ok, "router-agent {args:?}: {text}\n{}", self.logs());
        let start = text.find('{').unwrap_or(0);
        serde_json::from_str(&text[start..]).unwrap_or(Value::Null)
    }

    pub fn show(&self, host: Host, what: &str) -> Value {
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
    pub fn backend_packets(&self, host: Host) -> u64 {
        self.show(host, "counters")["nexthops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["via"] == host.backend_address().as_str())
            .filter_map(|n| n["packets"].as_u64())
            .sum()
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["agent-a.log", "agent-b.log", "frr-bgpd.log", "bird-tor.log"] {
            let path = self.net.path(name);
            if path.exists() {
                out.push_str(&format!("--- {name}:\n{}\n", tail(&path, 40)));
            }
        }
        out
    }

    pub fn counts(&self) -> String {
        format!(
            "ok {}, failed {}, accepted A {} B {}",
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.accepted[1].load(Ordering::Relaxed),
            self.accepted[2].load(Ordering::Relaxed)
        )
    }

    pub fn failures(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Both hosts up, announcing, the ToR forwarding to both, the clients running and both
    /// backends serving.
    pub fn bring_up(&mut self, prepend: u8) {
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
}
