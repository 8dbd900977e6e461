//! Connection handling against real peers (see `interop/mod.rs` for the lab):
//!
//! - `collisions_with_gobgp_both_active`, `collisions_with_frr_both_active`: both sides
//!   configured active. Each round freezes the peer (SIGSTOP) so that the agent's connection is
//!   accepted by the peer's kernel and waits in OpenSent, lets the peer's own connect timer
//!   run out, freezes the agent and thaws the peer: the peer answers our connection and opens
//!   its own (FRR does; GoBGP does not dial while a connection to it is pending), and the agent,
//!   thawed, finds both: a connection collision (RFC 4271 6.8), resolved by FRR (its higher
//!   identifier keeps its connection and it closes ours) or by the agent (whose Established
//!   connection refuses the new one); the OpenSent / OpenConfirm resolution by BGP Identifier
//!   on the agent's side is tested event by event in `bgp/fsm/peering/tests.rs`. Then the peer is killed and restarted for

//! - `dynamic_neighbors_from_a_range`: GoBGP, ExaBGP and BIRD connect from three addresses of a
//!   `dynamic_neighbor` range with no per-peer config; what the range's prefix list allows is
//!   installed, the rest rejected; one leaves and its routes and its neighbor entry go; the
//!   range's limit refuses one more.
//! - `dynamic_interface_range_with_gobgp_neighbor_interface` is in `bgp_interface_range.rs`.
//!
//! Needs root, `gobgpd`, FRR, ExaBGP and BIRD. `HRGX_KEEP_LOGS=1` keeps each lab's directory.

mod interop;
mod netns;

use std::{
    fs,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab};
use netns::wait_for;
use serde_json::Value;

/// Session (re-)establishment on a loaded 2-core machine, IdleHold damping included.
const SESSION: Duration = Duration::from_secs(40);
const ROUTE: Duration = Duration::from_secs(15);
const ROUNDS: usize = 3;

fn agent_config(neighbors: &str) -> String {
    format!(
        r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_PREFIX}" }}]

{neighbors}
"#
    )
}

/// The agent's view of its neighbors (`show neighbors --json`).
fn agent_neighbors(lab: &Lab) -> Vec<Value> {
    lab.show("neighbors")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn agent_state(lab: &Lab, address: &str) -> String {
    agent_neighbors(lab)
        .iter()
        .find(|n| n["address"] == address)
        .and_then(|n| n["state"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Collisions

/// A peer daemon the collision rounds drive.
trait Peer {
    const LABEL: &'static str;
    fn start(lab: &mut Lab);
    fn established(lab: &Lab) -> bool;
}

/// The collision rounds (see the module documentation); `agent_neighbor` configures the peer
/// on the agent's side.
fn collision_rounds<P: Peer>(lab: &mut Lab, agent_neighbor: &str, expect_collisions: bool) {
    let started = Instant::now();
    P::start(lab);
    for round in 0..ROUNDS {
        // Frozen, the peer neither connects nor answers; its kernel still accepts.
        lab.signal_daemon(P::LABEL, libc::SIGSTOP);
        if round == 0 {
            lab.start_agent(&agent_config(agent_neighbor));
        }
        let peer_port = format!("{}:179", lab.peer_ip);
        wait_for(
            &format!("round {round}: the agent's connection to the frozen peer"),
            SESSION,
            || {
                lab.bgp_connections("host")
                    .iter()
                    .any(|c| c.ends_with(&peer_port))
            },
            || lab.logs(),
        );
        // The peer's connect timer runs out while it is frozen. Then the agent is frozen and
        // the peer thawed: it answers our connection and opens its own, which the agent's
        // kernel accepts; thawed, the agent has both.
        thread::sleep(Duration::from_secs(3));
        lab.signal_agent(libc::SIGSTOP);
        lab.signal_daemon(P::LABEL, libc::SIGCONT);
        thread::sleep(Duration::from_secs(3));
        lab.signal_agent(libc::SIGCONT);
        wait_for(
            &format!("round {round}: the session, both sides"),
            SESSION,
            || P::established(lab) && agent_state(lab, &lab.peer_ip) == "Established",
            || {
                format!(
                    "host: {:?}\npeer established: {}\nagent: {:?}\n{}",
                    lab.bgp_connections("host"),
                    P::established(lab),
                    agent_neighbors(lab),
                    lab.logs()
                )
            },
        );
        // Let the loser's close and any retry settle, then look at the sockets.
        thread::sleep(Duration::from_secs(4));
        let host = lab.bgp_connections("host");
        let peer = lab.bgp_connections("peer");
        assert_eq!(
            host.len(),
            1,
            "round {round}: host {host:?}\n{}",
            lab.logs()
        );
        assert_eq!(
            peer.len(),
            1,
            "round {round}: peer {peer:?}\n{}",
            lab.logs()
        );
        assert!(
            P::established(lab) && agent_state(lab, &lab.peer_ip) == "Established",
            "round {round}: the surviving connection carries the session: peer {}, agent {}\n{}",
            P::established(lab),
            agent_state(lab, &lab.peer_ip),
            lab.logs()
        );
        // `show neighbors` reports what the session agreed: both sides propose 9 s.
        let negotiated = agent_neighbors(lab)
            .into_iter()
            .find(|n| n["address"] == lab.peer_ip.as_str())
            .map(|n| n["negotiated"].clone())
            .unwrap_or_default();
        let capabilities = negotiated["capabilities"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            negotiated["hold_time_seconds"] == 9
                && negotiated["keepalive_seconds"] == 3
                && capabilities.contains(&Value::from("ipv4-unicast"))
                && capabilities.contains(&Value::from("four-octet-as")),
            "round {round}: negotiated {negotiated}"
        );
        eprintln!(
            "round {round}: one connection left: {}; collisions resolved so far: {}",
            host[0],
            collisions(lab)
        );
        if round + 1 < ROUNDS {
            lab.stop_daemon(P::LABEL, libc::SIGKILL);
            P::start(lab);
        }
    }
    let collisions = collisions(lab);
    eprintln!(
        "{} rounds, {collisions} collisions resolved, {:.1?}",
        ROUNDS,
        started.elapsed()
    );
    assert!(
        collisions >= 1 || !expect_collisions,
        "no collision happened: the test did not test anything\n{}",
        lab.logs()
    );
}

/// Collisions resolved so far, by either side: the agent's log lines for a collision resolved
/// in OpenSent / OpenConfirm or a connection closed because of an Established one, and the
/// peer's logged Cease / Connection Collision Resolution (FRR's log).
fn collisions(lab: &Lab) -> usize {
    let agent = lab.agent_log_count(&["BGP connection collision"])
        + lab.agent_log_count(&["refusing a connection: Established"]);
    let peer = fs::read_to_string(lab.path("frr-bgpd.log"))
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("sent to neighbor") && line.contains("Collision Resolution"))
        .count();
    agent + peer
}

const GOBGP_ASN: u32 = 65010;

struct GoBgp;

impl GoBgp {
    fn cli(lab: &Lab, args: &[&str]) -> Option<String> {
        interop::gobgp::cli_of(lab, "gobgp", args).ok()
    }

    /// gobgpd active towards `neighbors` (address, our AS as they see it), listening or not.
    fn start_with(lab: &mut Lab, label: &str, router_id: &str, neighbors: &[&str], listen: bool) {
        let mut config = format!(
            "[global.config]\n  as = {GOBGP_ASN}\n  router-id = \"{router_id}\"\n  \
             local-address-list = [\"{router_id}\"]\n{}",
            if listen { "" } else { "  port = -1\n" }
        );
        for neighbor in neighbors {
            config.push_str(&format!(
                r#"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{neighbor}"
    peer-as = {HOST_ASN}
  [neighbors.transport.config]
    local-address = "{router_id}"
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"#
            ));
        }
        interop::gobgp::spawn(lab, label, &config);
    }
}

impl Peer for GoBgp {
    const LABEL: &'static str = "gobgp";

    fn start(lab: &mut Lab) {
        let (router_id, host) = (lab.peer_ip.clone(), lab.host_ip.clone());
        GoBgp::start_with(lab, "gobgp", &router_id, &[&host], true);
    }

    fn established(lab: &Lab) -> bool {
        GoBgp::cli(lab, &["neighbor", &lab.host_ip, "-j"])
            .and_then(|out| serde_json::from_str::<Value>(&out).ok())
            .is_some_and(|n| n["state"]["session_state"] == 6)
    }
}

#[test]
fn collisions_with_gobgp_both_active() {
    // GoBGP's identifier (10.0.61.1) is lower than the agent's (192.0.2.20).
    let mut lab = Lab::new("collgo", "hcg", "pcg", 61);
    let neighbor = format!(
        "[[bgp.neighbor]]\naddress = \"{}\"\nremote_as = {GOBGP_ASN}\nimport = \"all\"\n\
         export = \"all\"\nhold_time = 9\n",
        lab.peer_ip
    );
    // GoBGP does not dial while a connection to it is pending: it takes ours, so this checks
    // that both-active restarts converge rather than collisions (FRR's test has those).
    collision_rounds::<GoBgp>(&mut lab, &neighbor, false);
}

const FRR_ASN: u32 = 65030;
/// Higher than the agent's 192.0.2.20: FRR's connection wins.
const FRR_ROUTER_ID: &str = "203.0.113.1";

struct Frr;

impl Frr {
    /// zebra (once, with `zebra_config`) and bgpd (with `bgpd.conf`) in the peer namespace,
    /// in the foreground so that the lab stops them.
    fn launch(lab: &mut Lab, zebra_config: &str) {
        // The pathspace (`-N`) the lab's Drop knows: `<lab><role>`.
        let pathspace = format!("{}peer", lab.net.name);
        let (zserv, dir) = (lab.path_str("zserv.api"), lab.path_str(""));
        if lab.daemon_pid("zebra").is_none() {
            fs::write(lab.path("zebra.conf"), zebra_config).unwrap();
            let mut zebra = lab.command_in("peer", "/usr/lib/frr/zebra");
            zebra
                .args(["-i", &lab.path_str("zebra.pid"), "-z", &zserv])
                .args(["-f", &lab.path_str("zebra.conf")])
                .args(["--vty_socket", &dir, "-N", &pathspace]);
            lab.spawn_daemon("zebra", zebra);
            wait_for(
                "zebra's API socket",
                Duration::from_secs(10),
                || lab.path("zserv.api").exists(),
                || lab.logs(),
            );
        }
        let mut bgpd = lab.command_in("peer", "/usr/lib/frr/bgpd");
        bgpd.args([
            "-i",
            &lab.path_str("bgpd.pid"),
            "-f",
            &lab.path_str("bgpd.conf"),
        ])
        .args(["-z", &zserv, "--vty_socket", &dir, "-N", &pathspace]);
        lab.spawn_daemon("bgpd", bgpd);
        wait_for(
            "bgpd's vty",
            Duration::from_secs(10),
            || !Frr::vtysh(lab, "show bgp summary json").is_null(),
            || lab.logs(),
        );
    }

    fn vtysh(lab: &Lab, command: &str) -> Value {
        Command::new("vtysh")
            .args(["--vty_socket", &lab.path_str(""), "-c", command])
            .output()
            .ok()
            .and_then(|out| serde_json::from_slice(&out.stdout).ok())
            .unwrap_or(Value::Null)
    }
}

impl Peer for Frr {
    const LABEL: &'static str = "bgpd";

    fn start(lab: &mut Lab) {
        let host = lab.host_ip.clone();
        let config = format!(
            "log file {log} debugging\nfrr defaults datacenter\n\
             router bgp {FRR_ASN}\n bgp router-id {FRR_ROUTER_ID}\n no bgp ebgp-requires-policy\n\
             no bgp network import-check\n neighbor {host} remote-as {HOST_ASN}\n\
             neighbor {host} timers 3 9\n neighbor {host} timers connect 1\n\
             address-family ipv4 unicast\n  network 198.51.100.0/24\n exit-address-family\n",
            log = lab.path_str("frr-bgpd.log"),
        );
        fs::write(lab.path("bgpd.conf"), config).unwrap();
        Frr::launch(lab, "");
    }

    fn established(lab: &Lab) -> bool {
        let neighbors = Frr::vtysh(lab, &format!("show bgp neighbors {} json", lab.host_ip));
        neighbors[&lab.host_ip]["bgpState"] == "Established"
    }
}

#[test]
fn collisions_with_frr_both_active() {
    let mut lab = Lab::new("collfrr", "hcf", "pcf", 62);
    let neighbor = format!(
        "[[bgp.neighbor]]\naddress = \"{}\"\nremote_as = {FRR_ASN}\nimport = \"all\"\n\
         export = \"all\"\nhold_time = 9\n",
        lab.peer_ip
    );
    collision_rounds::<Frr>(&mut lab, &neighbor, true);
}

// ---------------------------------------------------------------------------------------------
// Dynamic neighbors

const EXABGP_ASN: u32 = 65020;
const BIRD_ASN: u32 = 65040;

fn start_exabgp(lab: &mut Lab, address: &str) {
    let config = format!(
        r#"neighbor {host} {{
    router-id {address};
    local-address {address};
    local-as {EXABGP_ASN};
    peer-as {HOST_ASN};
    hold-time 9;
    family {{ ipv4 unicast; }}
    static {{ route 198.51.100.3/32 next-hop {address}; }}
}}
"#,
        host = lab.host_ip
    );
    let path = lab.path_str("exabgp.conf");
    fs::write(&path, config).unwrap();
    let mut command = lab.command_in("peer", "exabgp");
    command
        .arg(&path)
        .env("exabgp.daemon.user", "root")
        .env("exabgp.daemon.drop", "false")
        .env("exabgp.daemon.daemonize", "false")
        .env("exabgp.api.cli", "false")
        .env("exabgp.log.destination", "stdout");
    lab.spawn_daemon("exabgp", command);
}

fn start_bird(lab: &mut Lab, address: &str) {
    let config = format!(
        r#"router id {address};
protocol device {{ }}
protocol static {{
    ipv4;
    route 198.51.100.4/32 blackhole;
}}
protocol bgp host {{
    local {address} as {BIRD_ASN};
    neighbor {host} as {HOST_ASN};
    hold time 9;
    connect retry time 1;
    ipv4 {{ import all; export all; }};
}}
"#,
        host = lab.host_ip
    );
    let path = lab.path_str("bird.conf");
    fs::write(&path, config).unwrap();
    let mut command = lab.command_in("peer", "bird");
    command.args(["-f", "-c", &path, "-s", &lab.path_str("bird.ctl")]);
    lab.spawn_daemon("bird", command);
}

/// The agent's dynamic neighbors: address -> state.
fn dynamic_peers(lab: &Lab) -> std::collections::BTreeMap<String, String> {
    agent_neighbors(lab)
        .iter()
        .filter(|n| n["dynamic"] == true)
        .map(|n| {
            (
                n["address"].as_str().unwrap_or("?").to_owned(),
                n["state"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

#[test]
fn dynamic_neighbors_from_a_range() {
    let started = Instant::now();
    let mut lab = Lab::new("dyn", "hdy", "pdy", 63);
    let (gobgp_ip, exabgp_ip, bird_ip, late_ip) =
        ("10.0.63.1", "10.0.63.3", "10.0.63.4", "10.0.63.5");
    for extra in [exabgp_ip, bird_ip, late_ip] {
        lab.exec(
            "peer",
            &[
                "ip",
                "addr",
                "add",
                &format!("{extra}/24"),
                "dev",
                &lab.peer_if,
            ],
        );
    }
    lab.start_agent(&agent_config(
        r#"[bgp.prefix_list.vm-hosts]
ipv4 = [{ action = "permit", prefix = "198.51.100.0/24", ge = 32, le = 32 }]

[[bgp.dynamic_neighbor]]
range = "10.0.63.0/24"
remote_as = "external"
import = { prefix_list = "vm-hosts" }
export = "all"
hold_time = 9
limit = 3
"#,
    ));
    let host = lab.host_ip.clone();
    // Three peers from three addresses, none configured on the agent; none listens (the
    // dynamic peers are passive on the agent's side: they connect).
    GoBgp::start_with(&mut lab, "gobgp", gobgp_ip, &[&host], false);
    start_exabgp(&mut lab, exabgp_ip);
    start_bird(&mut lab, bird_ip);
    for (prefix, next_hop) in [("198.51.100.1/32", gobgp_ip), ("203.0.113.0/24", gobgp_ip)] {
        GoBgp::cli(
            &lab,
            &[
                "global", "rib", "add", prefix, "-a", "ipv4", "nexthop", next_hop,
            ],
        )
        .expect("gobgp global rib add");
    }
    let all_up = || {
        let peers = dynamic_peers(&lab);
        [gobgp_ip, exabgp_ip, bird_ip]
            .iter()
            .all(|ip| peers.get(*ip).is_some_and(|state| state == "Established"))
    };
    wait_for("three dynamic sessions", SESSION, all_up, || {
        format!("{:?}\n{}", agent_neighbors(&lab), lab.logs())
    });
    let allowed = [
        ("198.51.100.1/32", gobgp_ip),
        ("198.51.100.3/32", exabgp_ip),
        ("198.51.100.4/32", bird_ip),
    ];
    wait_for(
        "each peer's allowed route in the XDP FIB",
        ROUTE,
        || {
            allowed
                .iter()
                .all(|(prefix, via)| lab.fib_vias(prefix) == [via.to_string()])
        },
        || lab.fib_and_logs(),
    );
    assert!(
        lab.fib_vias("203.0.113.0/24").is_empty(),
        "the range's prefix list rejects it\n{}",
        lab.fib_and_logs()
    );
    // `show neighbors` marks them.
    let table = lab
        .command_in("host", netns::AGENT)
        .args(["show", "neighbors", "-c"])
        .arg(lab.path("agent.toml"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains(&format!("{bird_ip} (dynamic)")),
        "show neighbors:\n{table}"
    );

    // A fourth peer: the range's limit (3) refuses it.
    GoBgp::start_with(&mut lab, "gobgp-late", late_ip, &[&host], false);
    wait_for(
        "the agent refusing a fourth dynamic peer",
        SESSION,
        || lab.agent_log_count(&["session limit is reached", late_ip]) >= 1,
        || lab.logs(),
    );
    assert_eq!(dynamic_peers(&lab).len(), 3, "{:?}", agent_neighbors(&lab));

    // ExaBGP leaves: its routes and its neighbor entry go; the late peer gets its place.
    lab.stop_daemon("exabgp", libc::SIGTERM);
    wait_for(
        "ExaBGP's route and neighbor gone",
        SESSION,
        || {
            lab.fib_vias("198.51.100.3/32").is_empty()
                && !dynamic_peers(&lab).contains_key(exabgp_ip)
        },
        || format!("{:?}\n{}", agent_neighbors(&lab), lab.fib_and_logs()),
    );
    assert_eq!(lab.fib_vias("198.51.100.1/32"), [gobgp_ip]);
    assert_eq!(lab.fib_vias("198.51.100.4/32"), [bird_ip]);
    wait_for(
        "the late peer in, once there is room",
        SESSION,
        || {
            dynamic_peers(&lab)
                .get(late_ip)
                .is_some_and(|s| s == "Established")
        },
        || format!("{:?}\n{}", agent_neighbors(&lab), lab.logs()),
    );
    eprintln!("dynamic neighbors: {:.1?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Unnumbered

const FRR_UNNUMBERED_ASN: u32 = 65050;
/// FRR's IPv4 prefix (on its loopback) and IPv6 prefix.
const FRR_V4_PREFIX: &str = "198.51.100.0/24";
const FRR_V4_ADDRESS: &str = "198.51.100.1";
const FRR_V6_PREFIX: &str = "2001:db8:51::/48";

/// zebra's config: Router Advertisements on `interface`, as FRR needs for unnumbered peers.
fn zebra_unnumbered_config(interface: &str) -> String {
    format!("interface {interface}\n ipv6 nd ra-interval 1\n no ipv6 nd suppress-ra\n!\n")
}

/// bgpd's config for an unnumbered session on `interface`, with GTSM (the agent's default for
/// unnumbered neighbors: FRR's eBGP TTL of 1 would be dropped).
fn bgpd_unnumbered_config(lab: &Lab, interface: &str) -> String {
    format!(
        "log file {log} debugging\nfrr defaults datacenter\n\
         router bgp {FRR_UNNUMBERED_ASN}\n bgp router-id 203.0.113.5\n\
         no bgp ebgp-requires-policy\n no bgp network import-check\n\
         neighbor {interface} interface remote-as external\n\
         neighbor {interface} timers 3 9\n neighbor {interface} timers connect 1\n\
         neighbor {interface} capability extended-nexthop\n\
         neighbor {interface} ttl-security hops 1\n\
         address-family ipv4 unicast\n  network {FRR_V4_PREFIX}\n exit-address-family\n\
         address-family ipv6 unicast\n  neighbor {interface} activate\n\
           network {FRR_V6_PREFIX}\n exit-address-family\n",
        log = lab.path_str("frr-bgpd.log"),
    )
}

#[test]
fn unnumbered_with_frr() {
    let started = Instant::now();
    let mut lab = Lab::new("unnum", "hun", "pun", 64);
    // A client namespace behind the host, to send IPv4 traffic through it to FRR's prefix.
    lab.net.add("client");
    lab.net.veth(("host", "hcl"), ("client", "ccl"));
    lab.exec(
        "client",
        &["ip", "addr", "add", "10.0.65.2/24", "dev", "ccl"],
    );
    lab.exec("client", &["ip", "link", "set", "ccl", "up"]);
    lab.exec(
        "client",
        &["ip", "route", "add", "default", "via", "10.0.65.1"],
    );
    // Locally generated UDP over veth carries partial checksums (see README).
    lab.exec("client", &["ethtool", "-K", "ccl", "tx", "off"]);
    lab.exec("host", &["ip", "addr", "add", "10.0.65.1/24", "dev", "hcl"]);
    lab.exec("host", &["ip", "link", "set", "hcl", "up"]);
    lab.exec("host", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    // The peer end receives XDP-redirected frames only with GRO on.
    lab.exec("peer", &["ethtool", "-K", &lab.peer_if, "gro", "on"]);
    lab.exec(
        "peer",
        &[
            "ip",
            "addr",
            "add",
            &format!("{FRR_V4_ADDRESS}/32"),
            "dev",
            "lo",
        ],
    );
    // The link's IPv4 addresses are not used: the session and the next hops are IPv6
    // link-local.
    let (host_ip, peer_ip) = (lab.host_ip.clone(), lab.peer_ip.clone());
    lab.exec(
        "host",
        &[
            "ip",
            "addr",
            "del",
            &format!("{host_ip}/24"),
            "dev",
            &lab.host_if,
        ],
    );
    lab.exec(
        "peer",
        &[
            "ip",
            "addr",
            "del",
            &format!("{peer_ip}/24"),
            "dev",
            &lab.peer_if,
        ],
    );

    // FRR: zebra (sends RAs) and bgpd.
    let peer_if = lab.peer_if.clone();
    fs::write(
        lab.path("bgpd.conf"),
        bgpd_unnumbered_config(&lab, &peer_if),
    )
    .unwrap();
    Frr::launch(&mut lab, &zebra_unnumbered_config(&peer_if));

    lab.start_agent(&format!(
        r#"[[interface]]
name = "hcl"

[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "10.0.65.0/24" }}, {{ prefix = "2001:db8:65::/48" }}]

[[bgp.neighbor]]
interface = "{}"
remote_as = "external"
import = "all"
export = "all"
hold_time = 9
"#,
        lab.host_if
    ));
    let frr_state = || {
        Frr::vtysh(&lab, &format!("show bgp neighbors {peer_if} json"))[&peer_if]["bgpState"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let agent_neighbor = || {
        agent_neighbors(&lab)
            .into_iter()
            .find(|n| n["interface"] == lab.host_if)
            .unwrap_or(Value::Null)
    };
    wait_for(
        "the unnumbered session, both sides",
        SESSION,
        || frr_state() == "Established" && agent_neighbor()["state"] == "Established",
        || {
            format!(
                "agent: {}\nFRR: {}\n{}",
                agent_neighbor(),
                frr_state(),
                lab.logs()
            )
        },
    );
    let frr_link_local = agent_neighbor()["address"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(frr_link_local.starts_with("fe80:"), "{}", agent_neighbor());

    // Both families both ways: FRR's prefixes in the agent's FIB via FRR's link-local address
    // (IPv4 over an IPv6 next hop, RFC 8950), the agent's in FRR's RIB.
    wait_for(
        "FRR's IPv4 and IPv6 prefixes in the XDP FIB via its link-local address",
        ROUTE,
        || {
            lab.fib_vias(FRR_V4_PREFIX) == [frr_link_local.clone()]
                && lab.fib_vias(FRR_V6_PREFIX) == [frr_link_local.clone()]
        },
        || lab.fib_and_logs(),
    );
    wait_for(
        "the agent's prefixes in FRR",
        ROUTE,
        || {
            !Frr::vtysh(&lab, "show bgp ipv4 unicast 10.0.65.0/24 json")["paths"].is_null()
                && !Frr::vtysh(&lab, "show bgp ipv6 unicast 2001:db8:65::/48 json")["paths"]
                    .is_null()
        },
        || lab.logs(),
    );

    // IPv4 traffic from the client to FRR's address, forwarded by XDP through the link-local
    // next hop (its counters), answered by FRR back through the host.
    let packets_before = nexthop_packets(&lab, &frr_link_local);
    lab.exec(
        "client",
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", FRR_V4_ADDRESS],
    );
    let forwarded = nexthop_packets(&lab, &frr_link_local) - packets_before;
    assert!(
        forwarded >= 5,
        "XDP forwarded {forwarded} packets via {frr_link_local}: {}",
        lab.show("counters")
    );
    eprintln!(
        "unnumbered: {forwarded} packets forwarded by XDP, {:.1?}",
        started.elapsed()
    );
}

/// Packets the XDP program sent to `via`.
fn nexthop_packets(lab: &Lab, via: &str) -> u64 {
    lab.show("counters")["nexthops"]
        .as_array()
        .map(|nexthops| {
            nexthops
                .iter()
                .filter(|n| n["via"] == via)
                .filter_map(|n| n["packets"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}
