//! IPv4 routes over IPv6 sessions (RFC 8950 extended next hop) with FRR 8.4 and BIRD 2, end to
//! end: the peer learns our IPv4 loopback with an IPv6 next hop (global + link-local, RFC
//! 2545), we install its IPv4 prefix via its link-local address in the XDP FIB and the kernel
//! (RTA_VIA), and client traffic to it is forwarded by XDP. Needs root, FRR and BIRD.
//!
//! ```text
//!   client ── c0 ═══ hc ── [host: router-agent] ── xh ═══ xp ── peer (FRR or BIRD)
//!   10.9.0.2/24   10.9.0.1/24        2001:db8:N::2/64   2001:db8:N::1/64, no IPv4 on the link
//! ```
//!
//! - `frr_ipv4_over_ipv6_session` / `bird_ipv4_over_ipv6_session`: both families both ways
//!   over one IPv6 session with extended next hop; forwarding over the IPv6 next hop.
//! - `frr_ipv6_session_without_extended_next_hop`: FRR negotiates IPv4 unicast on the IPv6
//!   session but not extended next hop: our IPv4 route is not sent (IPv6 is), and the agent
//!   says why once per session.

mod interop;
mod netns;

use std::{
    net::{Ipv4Addr, SocketAddr},
    thread,
    time::Duration,
};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab, bird::Bird, frr::Frr};
use netns::wait_for;
use serde_json::Value;

const PEER_V4_PREFIX: &str = "198.51.100.0/24";
const PEER_V4_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER_V6_PREFIX: &str = "2001:db8:aa::/48";
const HOST_V6_PREFIX: &str = "2001:db8:20::20/128";
const TIMEOUT: Duration = Duration::from_secs(60);

/// The interop lab plus the addressing of this file: IPv6 only on the host-peer link, and a
/// client namespace behind the host whose traffic XDP forwards.
struct Rfc8950Lab {
    /// The peer's daemons, stopped before the lab's agent and namespaces.
    frr: Option<Frr>,
    bird: Option<Bird>,
    lab: Lab,
    subnet: u8,
}

impl Rfc8950Lab {
    fn new(tag: &str, subnet: u8) -> Self {
        let mut lab = Lab::new(tag, "xh", "xp", subnet);
        lab.net.add("client");
        let this = Self {
            frr: None,
            bird: None,
            lab,
            subnet,
        };
        let lab = &this.lab;
        // RFC 8950's case: no IPv4 on the link, IPv4 reachability over IPv6 next hops.
        for (role, interface, address) in [
            ("host", "xh", this.host_v6()),
            ("peer", "xp", this.peer_v6()),
        ] {
            lab.exec(role, &["ip", "-4", "addr", "flush", "dev", interface]);
            let cidr = format!("{address}/64");
            lab.exec(
                role,
                &["ip", "addr", "add", &cidr, "dev", interface, "nodad"],
            );
        }
        // The peers send (and we install) link-local next hops only once the link-local
        // addresses have passed duplicate address detection.
        for (role, interface) in [("host", "xh"), ("peer", "xp")] {
            wait_for(
                &format!("the link-local address of {interface} to be usable"),
                Duration::from_secs(10),
                || {
                    let tentative = lab.exec(
                        role,
                        &["ip", "-6", "addr", "show", "dev", interface, "tentative"],
                    );
                    tentative.trim().is_empty()
                },
                || lab.exec(role, &["ip", "-6", "addr", "show", "dev", interface]),
            );
        }
        lab.exec("host", &["ip", "addr", "add", HOST_V6_PREFIX, "dev", "lo"]);
        lab.exec("host", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        let peer_v4 = format!("{PEER_V4_ADDRESS}/32");
        lab.exec("peer", &["ip", "addr", "add", &peer_v4, "dev", "lo"]);
        lab.exec(
            "peer",
            &["ip", "addr", "add", "2001:db8:aa::1/128", "dev", "lo"],
        );
        // Frames XDP redirects into a veth need NAPI (GRO) on the receiving end.
        lab.exec("peer", &["ethtool", "-K", "xp", "gro", "on"]);

        lab.net.veth(("host", "hc"), ("client", "c0"));
        lab.exec("host", &["ip", "addr", "add", "10.9.0.1/24", "dev", "hc"]);
        lab.exec("host", &["ip", "link", "set", "hc", "up"]);
        for args in [
            &["ip", "addr", "add", "10.9.0.2/24", "dev", "c0"][..],
            &["ip", "link", "set", "c0", "up"],
            &["ip", "route", "add", "default", "via", "10.9.0.1"],
            // Compute checksums before the "wire" (veth leaves them partial otherwise).
            &["ethtool", "-K", "c0", "tx", "off"],
        ] {
            lab.exec("client", args);
        }
        this
    }

    fn host_v6(&self) -> String {
        format!("2001:db8:{}::2", self.subnet)
    }

    fn peer_v6(&self) -> String {
        format!("2001:db8:{}::1", self.subnet)
    }

    /// The agent with the client's interface too, and one IPv6
    /// neighbor (the peer) exchanging everything.
    fn start_agent(&mut self, peer_as: u32) {
        let bgp = format!(
            r#"[[interface]]
name = "hc"
[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_PREFIX}" }}, {{ prefix = "{HOST_V6_PREFIX}" }}]

[[bgp.neighbor]]
address = "{peer}"
remote_as = {peer_as}
import = "all"
export = "all"
hold_time = 9
"#,
            peer = self.peer_v6(),
        );
        self.lab.start_agent(&bgp);
    }

    // ---- FRR (zebra + bgpd, stopped before the lab) ------------------------------------

    fn start_frr(&mut self, extended_next_hop: bool) {
        let host = self.host_v6();
        let capability = if extended_next_hop {
            format!(" neighbor {host} capability extended-nexthop\n")
        } else {
            String::new()
        };
        let config = format!(
            "log file {log} informational
hostname peer
router bgp 65001
 bgp router-id 10.255.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {host} remote-as {HOST_ASN}
 neighbor {host} timers 3 9
 neighbor {host} timers connect 2
{capability} address-family ipv4 unicast
  network {PEER_V4_PREFIX}
 exit-address-family
 address-family ipv6 unicast
  neighbor {host} activate
  network {PEER_V6_PREFIX}
 exit-address-family
!
",
            log = self.lab.path_str("bgpd.log"),
        );
        self.frr = Some(Frr::start(&self.lab.net, "peer", &config));
    }

    fn frr(&self) -> &Frr {
        self.frr.as_ref().expect("FRR started")
    }

    fn vtysh(&self, command: &str) -> Value {
        self.frr().vtysh(command)
    }

    fn vtysh_text(&self, command: &str) -> String {
        self.frr().vtysh_text(&[command])
    }

    /// FRR's next hops of its best path to `prefix` (`family`: ipv4 / ipv6), as
    /// (address, scope) pairs; empty if it has no path.
    fn frr_next_hops(&self, family: &str, prefix: &str) -> Vec<(String, String)> {
        let route = self.vtysh(&format!("show bgp {family} unicast {prefix} json"));
        route["paths"][0]["nexthops"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|nh| {
                (
                    nh["ip"].as_str().unwrap_or("?").to_owned(),
                    nh["scope"].as_str().unwrap_or("?").to_owned(),
                )
            })
            .collect()
    }

    // ---- BIRD ------------------------------------------------------------------------

    fn start_bird(&mut self) {
        let config = format!(
            "router id 10.255.0.2;
protocol device {{}}
protocol static {{ ipv4; route {PEER_V4_PREFIX} blackhole; }}
protocol static {{ ipv6; route {PEER_V6_PREFIX} blackhole; }}
protocol bgp host {{
  local {peer} as 65002;
  neighbor {host} as {HOST_ASN};
  hold time 9;
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 5;
  ipv4 {{ import all; export all; extended next hop on; }};
  ipv6 {{ import all; export all; }};
}}
",
            peer = self.peer_v6(),
            host = self.host_v6(),
        );
        self.bird = Some(Bird::start(&self.lab.net, "peer", &config));
    }

    fn birdc(&self, command: &str) -> String {
        self.bird.as_ref().expect("BIRD started").birdc(command)
    }

    // ---- the host ----------------------------------------------------------------------

    /// Packets XDP forwarded through the nexthop `via`.
    fn packets_via(&self, via: &str) -> u64 {
        self.lab.show("counters")["nexthops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["via"] == via)
            .map(|n| n["packets"].as_u64().unwrap_or(0))
            .sum()
    }

    /// UDP datagrams from the client to the peer's IPv4 address, one flow each.
    fn send_to_peer(&self, count: usize) {
        let peer = SocketAddr::from((PEER_V4_ADDRESS, 9));
        self.lab.net.send_udp("client", peer, count);
        thread::sleep(Duration::from_millis(300));
    }

    /// The peer's IPv4 and IPv6 prefixes are in the XDP FIB via its link-local address, the
    /// IPv4 one in the kernel too (an IPv6 gateway: RTA_VIA), and client traffic to it is
    /// forwarded by XDP over that nexthop.
    fn check_host_side(&self) {
        let peer_ll = self.lab.link_local("peer", "xp");
        let lab = &self.lab;
        wait_for(
            "the peer's IPv4 and IPv6 prefixes in the XDP FIB via its link-local address",
            TIMEOUT,
            || {
                lab.fib_vias(PEER_V4_PREFIX) == [peer_ll.clone()]
                    && lab.fib_vias(PEER_V6_PREFIX) == [peer_ll.clone()]
            },
            || lab.fib_and_logs(),
        );
        let kernel_route = format!("{PEER_V4_PREFIX} via inet6 {peer_ll} dev xh");
        wait_for(
            "the IPv4 kernel route via the IPv6 link-local gateway",
            Duration::from_secs(10),
            || lab.kernel_routes().contains(&kernel_route),
            || format!("kernel: {}\n{}", lab.kernel_routes(), lab.logs()),
        );
        let before = self.packets_via(&peer_ll);
        self.send_to_peer(50);
        let forwarded = self.packets_via(&peer_ll) - before;
        // The first datagrams may go to the kernel while the neighbor entry resolves.
        assert!(
            forwarded >= 40,
            "XDP forwarded {forwarded} of 50 IPv4 packets via {peer_ll}\ncounters: {}\n{}",
            lab.show("counters"),
            lab.logs()
        );
    }
}

#[test]
fn frr_ipv4_over_ipv6_session() {
    let mut lab = Rfc8950Lab::new("enh-frr", 61);
    lab.start_frr(true);
    lab.start_agent(65001);
    let host_ll = lab.lab.link_local("host", "xh");
    let expected = vec![
        (lab.host_v6(), "global".to_owned()),
        (host_ll.clone(), "link-local".to_owned()),
    ];
    wait_for(
        "FRR to learn our IPv4 loopback with our global + link-local IPv6 next hop",
        TIMEOUT,
        || lab.frr_next_hops("ipv4", HOST_PREFIX) == expected,
        || {
            format!(
                "{:?}\n{}\n{}",
                lab.frr_next_hops("ipv4", HOST_PREFIX),
                lab.vtysh_text("show bgp neighbors"),
                lab.lab.logs()
            )
        },
    );
    let bgp_route = lab.vtysh(&format!("show bgp ipv4 unicast {HOST_PREFIX} json"));
    assert_eq!(
        bgp_route["paths"][0]["valid"], true,
        "FRR must consider the route usable: {bgp_route}"
    );
    wait_for(
        "FRR to learn our IPv6 prefix with the same next hops",
        TIMEOUT,
        || lab.frr_next_hops("ipv6", HOST_V6_PREFIX) == expected,
        || format!("{:?}", lab.frr_next_hops("ipv6", HOST_V6_PREFIX)),
    );
    lab.check_host_side();
}

#[test]
fn bird_ipv4_over_ipv6_session() {
    let mut lab = Rfc8950Lab::new("enh-bird", 62);
    lab.start_bird();
    lab.start_agent(65002);
    let host_ll = lab.lab.link_local("host", "xh");
    let next_hop = format!("BGP.next_hop: {} {host_ll}", lab.host_v6());
    for prefix in [HOST_PREFIX, HOST_V6_PREFIX] {
        wait_for(
            &format!("BIRD to learn {prefix} with our global + link-local IPv6 next hop"),
            TIMEOUT,
            || {
                let route = lab.birdc(&format!("show route {prefix} all"));
                route.contains(&next_hop) && route.contains("unicast")
            },
            || {
                format!(
                    "{}\n{}\n{}",
                    lab.birdc(&format!("show route {prefix} all")),
                    lab.birdc("show protocols all host"),
                    lab.lab.logs()
                )
            },
        );
    }
    lab.check_host_side();
}

#[test]
fn frr_ipv6_session_without_extended_next_hop() {
    let mut lab = Rfc8950Lab::new("noenh-frr", 63);
    lab.start_frr(false);
    lab.start_agent(65001);
    wait_for(
        "FRR to learn our IPv6 prefix",
        TIMEOUT,
        || !lab.frr_next_hops("ipv6", HOST_V6_PREFIX).is_empty(),
        || format!("{}\n{}", lab.vtysh_text("show bgp summary"), lab.lab.logs()),
    );
    // The IPv4 route would have gone out with the IPv6 one; give FRR a moment anyway.
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lab.frr_next_hops("ipv4", HOST_PREFIX),
        Vec::<(String, String)>::new(),
        "an IPv4 route went out on an IPv6 session without extended next hop:\n{}",
        lab.vtysh_text(&format!("show bgp ipv4 unicast {HOST_PREFIX}"))
    );
    let negotiated = lab.vtysh(&format!("show bgp neighbors {} json", lab.host_v6()));
    let ipv4_family = &negotiated[lab.host_v6()]["addressFamilyInfo"]["ipv4Unicast"];
    assert!(
        !ipv4_family.is_null(),
        "FRR should run IPv4 unicast on the session (what makes the case): {negotiated}"
    );
    let why = "IPv4 routes are not sent on this IPv6 session";
    let sessions = lab.lab.agent_log_count(&["session established"]);
    assert_eq!(
        lab.lab.agent_log_count(&[why]),
        sessions,
        "the agent says why once per session\n{}",
        lab.lab.logs()
    );
}
