//! A container link behind a BGP default route (issue 8): the host learns its default route
//! from FRR (`default-originate`) and originates the container subnet; a client behind the
//! ToR and a container on the host's veth talk TCP both ways, forwarded by XDP in both
//! directions: the default route toward the ToR, the connected container link (an on-link
//! next hop: the destination is the neighbor) toward the container. An nftables counter in
//! the host's forward chain proves the kernel forwarded none of it. Needs root, FRR, nft.
//!
//! ```text
//!   client ── cl ═══ tl ── tor (FRR AS 65001) ── t1 ═══ r1 ── [host: router-agent] ── r2 ═══ ct ── container
//!  10.5.0.2        10.5.0.1              10.0.1.1    10.0.1.2     AS 65101      10.2.0.1   10.2.0.2
//! ```

mod interop;
mod netns;
mod scenarios;

use std::{
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    process::Child,
    thread,
    time::{Duration, Instant},
};

use interop::frr::Frr;
use netns::{AGENT, Namespaces, sh, spawn_logged, stop, tail, wait_for};
use scenarios::{in_netns, verdict};
use serde_json::Value;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 5, 0, 2);
const CONTAINER: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const PORT: u16 = 7007;

struct ContainerLab {
    agent: Option<Child>,
    frr: Option<Frr>,
    /// Last: dropped after the processes are stopped.
    net: Namespaces,
}

impl ContainerLab {
    fn new() -> Self {
        let net = Namespaces::new("hrd-", "ctr", &["client", "tor", "host", "container"]);
        net.veth(("client", "cl"), ("tor", "tl"));
        net.veth(("tor", "t1"), ("host", "r1"));
        net.veth(("container", "ct"), ("host", "r2"));
        let setup: &[(&str, &[&str])] = &[
            ("client", &["ip", "addr", "add", "10.5.0.2/24", "dev", "cl"]),
            ("client", &["ip", "link", "set", "cl", "up"]),
            (
                "client",
                &["ip", "route", "add", "default", "via", "10.5.0.1"],
            ),
            ("client", &["ethtool", "-K", "cl", "tx", "off"]),
            ("tor", &["ip", "addr", "add", "10.5.0.1/24", "dev", "tl"]),
            ("tor", &["ip", "addr", "add", "10.0.1.1/24", "dev", "t1"]),
            ("tor", &["ip", "link", "set", "tl", "up"]),
            ("tor", &["ip", "link", "set", "t1", "up"]),
            ("tor", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            ("tor", &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]),
            ("host", &["ip", "addr", "add", "10.0.1.2/24", "dev", "r1"]),
            ("host", &["ip", "addr", "add", "10.2.0.1/24", "dev", "r2"]),
            ("host", &["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"]),
            ("host", &["ip", "link", "set", "r1", "up"]),
            ("host", &["ip", "link", "set", "r2", "up"]),
            ("host", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            (
                "container",
                &["ip", "addr", "add", "10.2.0.2/24", "dev", "ct"],
            ),
            ("container", &["ip", "link", "set", "ct", "up"]),
            (
                "container",
                &["ip", "route", "add", "default", "via", "10.2.0.1"],
            ),
            ("container", &["ethtool", "-K", "ct", "tx", "off"]),
        ];
        for (role, args) in setup {
            net.exec(role, args);
        }
        Self {
            agent: None,
            frr: None,
            net,
        }
    }

    fn start(&mut self) {
        let frr = "hostname tor
router bgp 65001
 bgp router-id 10.0.1.1
 no bgp ebgp-requires-policy
 neighbor 10.0.1.2 remote-as 65101
 neighbor 10.0.1.2 timers 3 9
 address-family ipv4 unicast
  neighbor 10.0.1.2 default-originate
 exit-address-family
!
";
        self.frr = Some(Frr::start(&self.net, "tor", frr));
        let config = format!(
            r#"[datapath]
pin_dir = "{pin_dir}"
[control]
socket = "{socket}"
[[interface]]
name = "r1"
[[interface]]
name = "r2"

[bgp]
asn = 65101
router_id = "192.0.2.10"
originate = [{{ prefix = "192.0.2.10/32" }}, {{ prefix = "10.2.0.0/24" }}]

[[bgp.neighbor]]
address = "10.0.1.1"
remote_as = 65001
import = "default-only"
export = "all"
hold_time = 9
"#,
            pin_dir = self.net.pin_dir.display(),
            socket = self.net.path_str("agent.sock"),
        );
        let path = self.net.path_str("agent.toml");
        fs::write(&path, config).unwrap();
        sh(&[AGENT, "check", "-c", &path]);
        let mut command = self.net.command_in("host", AGENT);
        command.args(["run", "-c", &path]).env("NO_COLOR", "1");
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
    }

    fn show(&self, what: &str) -> Value {
        self.net
            .agent_show(AGENT, "host", what, Some(&self.net.path("agent.toml")))
            .unwrap_or(Value::Null)
    }

    /// The FIB's route for `prefix` forwards over a resolved next hop.
    fn forwards(&self, prefix: &str) -> bool {
        self.show("fib")["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["prefix"] == prefix && r["action"] == "forward")
            .flat_map(|r| r["nexthops"].as_array().cloned().unwrap_or_default())
            .any(|n| n["resolved"] == true)
    }

    fn log(&self) -> String {
        format!(
            "fib: {}\n--- agent log:\n{}",
            self.show("fib"),
            tail(&self.net.path("agent.log"), 80)
        )
    }

    /// Packets the host's kernel forwarded between the client and the container (nftables
    /// counters in its forward chain, both directions).
    fn kernel_forwarded(&self) -> u64 {
        let out = self.net.exec(
            "host",
            &["nft", "-j", "list", "chain", "inet", "hrc", "counted"],
        );
        let json: Value = serde_json::from_str(&out).expect("nft -j");
        json["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["rule"]["expr"].as_array())
            .filter_map(|exprs| exprs.iter().find_map(|e| e["counter"]["packets"].as_u64()))
            .sum()
    }
}

impl Drop for ContainerLab {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            stop(agent, libc::SIGTERM);
        }
        self.frr.take();
    }
}

/// A TCP echo server at `server` in `server_ns` for one connection, and a client in
/// `client_ns` that sends `rounds` messages over it and checks each echo.
fn tcp_echo(server_ns: &str, server: SocketAddr, client_ns: &str, rounds: usize) {
    let listener = in_netns(server_ns, move || TcpListener::bind(server).expect("bind"));
    listener.set_nonblocking(true).unwrap();
    let echo = thread::spawn(move || {
        // Gives up after 10 s without a connection, so that a failed connect ends the test.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("no connection to {server}: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        let mut buffer = [0u8; 64];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => stream.write_all(&buffer[..n]).expect("echo"),
            }
        }
    });
    let client = client_ns.to_owned();
    in_netns(client_ns, move || {
        let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("TCP connect to {server} from {client}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for round in 0..rounds {
            let message = format!("hello {round:04}");
            stream.write_all(message.as_bytes()).unwrap();
            let mut answer = vec![0u8; message.len()];
            stream
                .read_exact(&mut answer)
                .unwrap_or_else(|e| panic!("echo {round} from {server}: {e}"));
            assert_eq!(answer, message.as_bytes());
        }
    });
    echo.join().unwrap();
}

#[test]
fn tcp_both_ways_between_a_bgp_default_and_a_container_link_forwarded_by_xdp() {
    let mut lab = ContainerLab::new();
    lab.start();
    wait_for(
        "the default route from FRR in the XDP FIB",
        Duration::from_secs(40),
        || lab.forwards("0.0.0.0/0"),
        || lab.log(),
    );
    let frr = lab.frr.as_ref().unwrap();
    wait_for(
        "FRR to learn the container subnet",
        Duration::from_secs(20),
        || frr.vtysh("show bgp ipv4 unicast 10.2.0.0/24 json")["paths"].is_array(),
        || lab.log(),
    );
    // The container speaks first, as a container does: the host learns its neighbor entry.
    lab.net
        .exec("container", &["ping", "-c", "1", "-W", "2", "10.2.0.1"]);

    let ruleset = "table inet hrc {
  chain counted {
    type filter hook forward priority 0; policy accept;
    ip saddr 10.2.0.0/24 ip daddr 10.5.0.0/24 counter
    ip saddr 10.5.0.0/24 ip daddr 10.2.0.0/24 counter
  }
}
";
    fs::write(lab.net.path("hrc.nft"), ruleset).unwrap();
    lab.net
        .exec("host", &["nft", "-f", &lab.net.path_str("hrc.nft")]);

    // Short exchanges until the kernel forwards none of one: everything on the way is
    // resolved and the agent has the container link (it follows the kernel live).
    let mut port = PORT;
    wait_for(
        "a TCP exchange between client and container that the kernel did not forward",
        Duration::from_secs(20),
        || {
            port += 1;
            // Anonymous rule counters are not reset by `nft reset counters`: compare.
            let before = lab.kernel_forwarded();
            let server = SocketAddr::from((CONTAINER, port));
            tcp_echo(&lab.net.ns("container"), server, &lab.net.ns("client"), 1);
            lab.kernel_forwarded() == before
        },
        || {
            format!(
                "{}\nnft: {}\nneighbors: {}\ncounters: {}",
                lab.log(),
                lab.net.exec("host", &["nft", "list", "ruleset"]),
                lab.net.exec("host", &["ip", "neigh"]),
                lab.show("counters")
            )
        },
    );
    let before = lab.show("counters");
    let kernel_before = lab.kernel_forwarded();

    // Client -> container, then container -> client.
    tcp_echo(
        &lab.net.ns("container"),
        SocketAddr::from((CONTAINER, port + 1)),
        &lab.net.ns("client"),
        20,
    );
    tcp_echo(
        &lab.net.ns("client"),
        SocketAddr::from((CLIENT, port + 2)),
        &lab.net.ns("container"),
        20,
    );
    thread::sleep(Duration::from_millis(300));
    let after = lab.show("counters");
    let forwarded = verdict(&after, "forwarded") - verdict(&before, "forwarded");
    // Two connections of 20 rounds: at least the handshakes, 40 messages and 40 echoes.
    assert!(
        forwarded >= 80,
        "forwarded by XDP: {forwarded}\nbefore {}\nafter  {}",
        before["verdicts"],
        after["verdicts"]
    );
    assert_eq!(
        lab.kernel_forwarded() - kernel_before,
        0,
        "the kernel forwarded some of it: {}",
        lab.net.exec("host", &["nft", "list", "ruleset"])
    );
}
