//! Unnumbered sessions with FRR.

use super::*;

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
