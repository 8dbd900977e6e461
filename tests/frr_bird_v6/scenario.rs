//! Both ToRs over IPv6: sessions, the host's /128 at both, ::/0 as ECMP in XDP, a ToR down
//! and a withdrawal.

use super::*;

/// The IPv6 sessions test, ToRs sending link-local next hops or not (`tor_link_local`).
pub(crate) fn ipv6_scenario(test: &str, tor_link_local: bool) {
    let mut lab = Lab::new(test, &["client", "host", "tor1", "tor2"]);
    lab.link(("client", "c0"), ("host", "hc"));
    lab.link(("tor1", "t1"), ("host", "h1"));
    lab.link(("tor2", "t2"), ("host", "h2"));
    lab.addr("client", "c0", "2001:db8:c::2/64");
    lab.exec(
        "client",
        &[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:c::1",
        ],
    );
    // Compute checksums before the "wire" (veth leaves them partial otherwise).
    lab.exec("client", &["ethtool", "-K", "c0", "tx", "off"]);
    lab.addr("host", "hc", "2001:db8:c::1/64");
    lab.addr("host", "h1", "2001:db8:1::2/64");
    lab.addr("host", "h2", "2001:db8:2::2/64");
    lab.addr("host", "lo", "2001:db8:10::1/128");
    lab.exec("host", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    for (tor, iface, cidr) in [
        ("tor1", "t1", "2001:db8:1::1/64"),
        ("tor2", "t2", "2001:db8:2::1/64"),
    ] {
        match (tor_link_local, tor) {
            (true, _) => lab.addr(tor, iface, cidr),
            (false, "tor1") => {
                lab.addr(tor, iface, "2001:db8:1::1/128");
                lab.exec(
                    tor,
                    &["ip", "-6", "route", "add", "2001:db8:1::/64", "dev", iface],
                );
            }
            (false, _) => {
                // Remove the link-local address and keep the kernel from making another.
                lab.exec(tor, &["ip", "link", "set", iface, "down"]);
                lab.exec(tor, &["ip", "link", "set", iface, "addrgenmode", "none"]);
                lab.exec(tor, &["ip", "link", "set", iface, "up"]);
                lab.addr(tor, iface, cidr);
            }
        }
        lab.addr(tor, "lo", "2001:db8:ff::1/128");
        // Frames XDP redirects into a veth need NAPI (GRO) on the receiving end.
        lab.exec(tor, &["ethtool", "-K", iface, "gro", "on"]);
    }

    // FRR: IPv4 unicast stays active on the IPv6 session (FRR's default) without extended
    // next hop, so the host must keep its IPv4 route off this session.
    let connected_check = if tor_link_local {
        ""
    } else {
        " neighbor 2001:db8:1::2 disable-connected-check\n"
    };
    lab.start_frr(
        "tor1",
        &format!(
            "hostname tor1
router bgp 65001
 bgp router-id 10.0.1.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 2001:db8:1::2 remote-as 65101
 neighbor 2001:db8:1::2 timers 3 9
 neighbor 2001:db8:1::2 timers connect 2
{connected_check} address-family ipv6 unicast
  neighbor 2001:db8:1::2 activate
  neighbor 2001:db8:1::2 default-originate
  network 2001:db8:99::/48
 exit-address-family
!
"
        ),
    );
    lab.start_bird(
        "tor2",
        "router id 10.0.2.1;
protocol device {}
protocol static {
  ipv6;
  route ::/0 blackhole;
  route 2001:db8:98::/48 blackhole;
}
protocol bgp host {
  local 2001:db8:2::1 as 65002;
  neighbor 2001:db8:2::2 as 65101;
  hold time 9;
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 5;
  ipv6 { import all; export all; };
}
",
    );
    lab.start_agent(
        &["hc", "h1", "h2"],
        r#"
[bgp]
asn = 65101
router_id = "192.0.2.10"
originate = [{ prefix = "2001:db8:10::1/128" }, { prefix = "192.0.2.10/32" }]

[[bgp.neighbor]]
address = "2001:db8:1::1"
remote_as = 65001
import = "default-only"
export = "all"
hold_time = 9

[[bgp.neighbor]]
address = "2001:db8:2::1"
remote_as = 65002
import = "default-only"
export = "all"
hold_time = 9
"#,
    );

    let diagnostics = || {
        format!(
            "{}\nfib: {}\n{}\nFRR: {}{}\nBIRD: {}\nBIRD ::/0: {}",
            lab.log(),
            lab.show("fib"),
            lab.frr_log(),
            lab.vtysh_text(&["show bgp ipv6 unicast summary"]),
            lab.vtysh_text(&["show bgp ipv6 unicast neighbors 2001:db8:1::2 advertised-routes"]),
            lab.birdc("show protocols all host"),
            lab.birdc("show route ::/0 all"),
        )
    };
    wait_for(
        "both IPv6 sessions established",
        Duration::from_secs(25),
        || lab.log_count("session established") >= 2,
        diagnostics,
    );

    // Both ToRs learned the host's /128, with the host's AS as the path.
    wait_for(
        "FRR to learn 2001:db8:10::1/128",
        Duration::from_secs(10),
        || !lab.frr_as_paths("ipv6", "2001:db8:10::1/128").is_empty(),
        diagnostics,
    );
    assert_eq!(lab.frr_as_paths("ipv6", "2001:db8:10::1/128"), ["65101"]);
    wait_for(
        "BIRD to learn 2001:db8:10::1/128 with AS path 65101",
        Duration::from_secs(10),
        || {
            let route = lab.birdc("show route 2001:db8:10::1/128 all");
            route.contains("2001:db8:10::1/128") && route.contains("BGP.as_path: 65101")
        },
        || format!("{}\n{}", diagnostics(), lab.birdc("show route all")),
    );
    // The documented limitation: FRR negotiated IPv4 unicast on this IPv6 session but no
    // extended next hop (RFC 8950), so the IPv4 route has no next hop to go with and is not
    // sent; FRR neither gets it nor anything bogus. Never transit: only our own prefixes.
    let frr_neighbor = lab.frr_neighbor("2001:db8:1::2");
    assert_eq!(frr_neighbor["bgpState"], "Established", "{frr_neighbor}");
    assert!(
        lab.frr_as_paths("ipv4", "192.0.2.10/32").is_empty(),
        "IPv4 route over an IPv6 session without extended next hop:\n{}",
        lab.vtysh_text(&["show bgp ipv4 unicast"])
    );
    let from_host = lab.vtysh("show bgp ipv6 unicast neighbors 2001:db8:1::2 routes json");
    let prefixes: Vec<&String> = from_host["routes"]
        .as_object()
        .map(|r| r.keys().collect())
        .unwrap_or_default();
    assert_eq!(prefixes, ["2001:db8:10::1/128"], "{from_host}");
    let bird_from_host = lab.birdc("show route protocol host");
    assert!(
        !bird_from_host.contains("2001:db8:99::") && !bird_from_host.contains("::/0 "),
        "{bird_from_host}"
    );
    // The ToRs did send their more-specifics (which `default-only` must reject).
    wait_for(
        "FRR to advertise 2001:db8:99::/48 to the host",
        Duration::from_secs(10),
        || {
            lab.vtysh("show bgp ipv6 unicast neighbors 2001:db8:1::2 advertised-routes json")
                ["advertisedRoutes"]
                .as_object()
                .is_some_and(|r| r.contains_key("2001:db8:99::/48"))
        },
        diagnostics,
    );

    // The agent's view: both neighbors up with their ASes, one prefix advertised to each
    // (the /128; the IPv4 route has no next hop on an IPv6 session); ::/0 from both ToRs as
    // best + multipath; the more-specifics held but rejected by `default-only`.
    for (address, asn) in [("2001:db8:1::1", 65001), ("2001:db8:2::1", 65002)] {
        let neighbor = lab.agent_neighbor(address);
        assert_eq!(neighbor["state"], "Established", "{neighbor}");
        assert_eq!(neighbor["remote_as"], asn, "{neighbor}");
        assert_eq!(neighbor["prefixes_advertised"], 1, "{neighbor}");
    }
    let statuses = |prefix: &str| -> Vec<String> {
        lab.agent_paths(prefix)
            .into_iter()
            .map(|(_, s, _)| s)
            .collect()
    };
    wait_for(
        "the agent's RIB: ::/0 best + multipath, the more-specifics rejected",
        Duration::from_secs(10),
        || statuses("::/0") == ["best", "multipath"] || statuses("::/0") == ["multipath", "best"],
        || format!("{}\nroutes: {}", diagnostics(), lab.show("routes")),
    );
    let default_paths = lab.agent_paths("::/0");
    assert_eq!(default_paths[0].0, "2001:db8:1::1", "{default_paths:?}");
    assert_eq!(default_paths[0].2, [65001], "{default_paths:?}");
    assert_eq!(default_paths[1].0, "2001:db8:2::1", "{default_paths:?}");
    assert_eq!(default_paths[1].2, [65002], "{default_paths:?}");
    wait_for(
        "the agent to hold and reject both more-specifics",
        Duration::from_secs(10),
        || {
            ["2001:db8:99::/48", "2001:db8:98::/48"]
                .iter()
                .all(|prefix| {
                    let s = statuses(prefix);
                    !s.is_empty() && s.iter().all(|s| s.starts_with("rejected"))
                })
        },
        || format!("{}\nroutes: {}", diagnostics(), lab.show("routes")),
    );
    // `show status`: prefixes received count every path of the neighbor in the Adj-RIB-In
    // (rejected ones too: at least ::/0 and the more-specific), as `show routes` lists them;
    // the FIB count is what `show fib` lists from the maps.
    let status = lab.show("status");
    let routes = lab.show("routes");
    for address in ["2001:db8:1::1", "2001:db8:2::1"] {
        let neighbor = status["neighbors"]
            .as_array()
            .and_then(|all| all.iter().find(|n| n["address"] == address))
            .unwrap_or_else(|| panic!("{address} not in {status}"));
        let listed = routes
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|route| route["paths"].as_array().cloned().unwrap_or_default())
            .filter(|path| path["peer"] == address)
            .count();
        assert!(listed >= 2, "{address}: {routes}");
        assert_eq!(neighbor["prefixes_received"], listed, "{status}\n{routes}");
    }
    let fib_routes = lab.show("fib")["routes"].as_array().map(Vec::len);
    assert_eq!(
        status["fib"]["routes"].as_u64(),
        fib_routes.map(|n| n as u64),
        "{status}"
    );

    // ::/0 via both ToRs (ECMP across AS 65001 and 65002), nexthops resolved.
    wait_for(
        "::/0 in the FIB via both ToRs (h1 and h2), resolved",
        Duration::from_secs(15),
        || lab.nexthop_interfaces("::/0") == ["h1", "h2"],
        diagnostics,
    );
    eprintln!("::/0 nexthops: {:?}", lab.nexthops("::/0"));
    let fib = lab.show("fib").to_string();
    assert!(
        !fib.contains("2001:db8:99::") && !fib.contains("2001:db8:98::"),
        "{fib}"
    );
    // The kernel has the route too, for the host's own traffic.
    let kernel = lab.exec("host", &["ip", "-6", "route", "show", "proto", "201"]);
    assert!(
        kernel.contains("default") && kernel.contains("h1") && kernel.contains("h2"),
        "{kernel}"
    );

    // IPv6 traffic from the client to the ToRs' anycast loopback: over both, in XDP.
    let (before1, before2) = (lab.packets_via("h1"), lab.packets_via("h2"));
    lab.send6(400);
    let (d1, d2) = (
        lab.packets_via("h1") - before1,
        lab.packets_via("h2") - before2,
    );
    assert_eq!(
        d1 + d2,
        400,
        "tor1 {d1} tor2 {d2}; {}\n{}",
        lab.show("counters"),
        lab.show("fib")
    );
    assert!(
        d1 > 100 && d2 > 100,
        "ECMP over both ToRs: tor1 {d1} tor2 {d2}"
    );

    // BIRD's session goes down: its nexthop leaves the group, and nothing is sent to it.
    lab.birdc("disable host");
    wait_for(
        "::/0 via tor1 (h1) only",
        Duration::from_secs(15),
        || lab.nexthop_interfaces("::/0") == ["h1"],
        diagnostics,
    );
    let (before1, before2) = (lab.packets_via("h1"), lab.packets_via("h2"));
    lab.send6(200);
    assert_eq!(
        lab.packets_via("h1") - before1,
        200,
        "{}",
        lab.show("counters")
    );
    assert_eq!(
        lab.packets_via("h2"),
        before2,
        "nothing sent to the dead ToR"
    );

    // And back.
    lab.birdc("enable host");
    wait_for(
        "::/0 via both ToRs again",
        Duration::from_secs(20),
        || lab.nexthop_interfaces("::/0") == ["h1", "h2"],
        diagnostics,
    );

    // FRR withdraws ::/0 on a live session (MP_UNREACH_NLRI): its nexthop leaves.
    lab.vtysh_text(&[
        "configure terminal",
        "router bgp 65001",
        "address-family ipv6 unicast",
        "no neighbor 2001:db8:1::2 default-originate",
    ]);
    wait_for(
        "::/0 via tor2 (h2) only after FRR's withdrawal",
        Duration::from_secs(10),
        || lab.nexthop_interfaces("::/0") == ["h2"],
        diagnostics,
    );
    let paths = lab.agent_paths("::/0");
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert_eq!(paths[0].0, "2001:db8:2::1", "{paths:?}");
    assert_eq!(
        lab.agent_neighbor("2001:db8:1::1")["state"],
        "Established",
        "a withdrawal, not a reset"
    );
}
