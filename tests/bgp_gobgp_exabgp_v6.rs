//! router-agent's BGP speaker against GoBGP 3 (AS 65010) and ExaBGP 4.2 (AS 65020) over IPv6
//! sessions: the IPv6 counterpart of `bgp_gobgp_exabgp.rs`, in the same two-namespace lab
//! (`interop/mod.rs`) with global addresses on the link (`2001:db8:N::2` host,
//! `2001:db8:N::1` peer, [`Lab::add_ipv6`]). The host (AS 4200000001) originates
//! 2001:db8:20::20/128 and 192.0.2.20/32; the peers negotiate IPv6 unicast only, so only the
//! /128 goes out. Needs root and the Debian packages `gobgpd` and `exabgp`.
//!
//! - `gobgp_ipv6_session_routes_withdraw_disable_restart`: the session establishes (both
//!   sides); GoBGP's ::/0 reaches the XDP FIB and the kernel while a more-specific is
//!   filtered (`default-only`); GoBGP receives the /128 with AS path [4200000001] and the
//!   host's global next hop; a withdrawal takes ::/0 out; the session comes back after an
//!   administrative shutdown (NOTIFICATION Cease) and after gobgpd is killed and restarted.
//! - `exabgp_ipv6_session_announce_withdraw_refresh_teardown`: ExaBGP's routes through the
//!   host's IPv6 prefix list; API announce / withdraw; ROUTE-REFRESH for IPv6 unicast (the
//!   host re-sends its /128); `teardown` (Cease) survived, routes back.
//!
//! Set `HRGX_KEEP_LOGS=1` to keep each lab's directory (configs and logs).

mod interop;
mod netns;

use std::time::{Duration, Instant};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab, exabgp};
use netns::wait_for;
use serde_json::Value;

/// The host's IPv6 route, on its loopback.
const HOST_V6_PREFIX: &str = "2001:db8:20::20/128";
/// Generous for a loaded 2-core machine (see the timings the tests print).
const SESSION: Duration = Duration::from_secs(20);
const ROUTE: Duration = Duration::from_secs(10);

/// An interop lab with IPv6 on the link and the host's /128 on its loopback.
fn ipv6_lab(tag: &str, host_if: &str, peer_if: &str, subnet: u8) -> (Lab, String, String) {
    let lab = Lab::new(tag, host_if, peer_if, subnet);
    let (host, peer) = lab.add_ipv6(subnet);
    lab.exec("host", &["ip", "addr", "add", HOST_V6_PREFIX, "dev", "lo"]);
    (lab, host, peer)
}

/// The host's `[bgp]`: one IPv6 neighbor, both of its prefixes originated and exported.
fn agent_bgp_config(neighbor: &str, remote_as: u32, import: &str, extra: &str) -> String {
    format!(
        r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_V6_PREFIX}" }}, {{ prefix = "{HOST_PREFIX}" }}]
{extra}
[[bgp.neighbor]]
address = "{neighbor}"
remote_as = {remote_as}
import = {import}
export = "all"
hold_time = 9
"#
    )
}

/// The IPv6 routes the agent mirrored into the host's kernel table (protocol 201).
fn kernel_routes_v6(lab: &Lab) -> String {
    lab.exec("host", &["ip", "-6", "route", "show", "proto", "201"])
}

// ---------------------------------------------------------------------------------------------
// GoBGP

const GOBGP_ASN: u32 = 65010;

struct GoBgp<'a> {
    lab: &'a Lab,
    /// The host's IPv6 address: GoBGP's neighbor.
    host: &'a str,
}

impl GoBgp<'_> {
    fn start(lab: &mut Lab, host: &str, peer: &str) {
        interop::gobgp::start_v6(lab, GOBGP_ASN, 2, host, peer);
    }

    fn cli(&self, args: &[&str]) -> String {
        interop::gobgp::cli(self.lab, args).unwrap_or_else(|e| panic!("{e}\n{}", self.lab.logs()))
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("-j");
        interop::gobgp::cli(self.lab, &args)
            .ok()
            .and_then(|out| serde_json::from_str(&out).ok())
            .unwrap_or(Value::Null)
    }

    /// GoBGP's view of the host as a neighbor.
    fn neighbor(&self) -> Value {
        self.json(&["neighbor", self.host])
    }

    /// BGP_FSM_ESTABLISHED is 6 in GoBGP's API (`session_state`).
    fn established(&self) -> bool {
        self.neighbor()["state"]["session_state"] == 6
    }

    /// The IPv6 paths GoBGP received from the host, by prefix.
    fn adj_in(&self) -> serde_json::Map<String, Value> {
        self.json(&["neighbor", self.host, "adj-in", "-a", "ipv6"])
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    /// (ORIGIN, AS path, MP_REACH_NLRI next hop) of the host's /128 as GoBGP received it, if
    /// it did. (GoBGP's JSON leaves out a link-local next hop; the ExaBGP test checks it.)
    fn host_route(&self) -> Option<(u64, Vec<u64>, String)> {
        let adj_in = self.adj_in();
        let path = adj_in.get(HOST_V6_PREFIX)?.as_array()?.first()?.clone();
        let attrs = path["attrs"].as_array()?;
        let origin = attrs.iter().find(|a| a["type"] == 1)?["value"].as_u64()?;
        let as_path = attrs
            .iter()
            .find(|a| a["type"] == 2)?
            .get("as_paths")?
            .as_array()?
            .iter()
            .flat_map(|segment| segment["asns"].as_array().cloned().unwrap_or_default())
            .filter_map(|asn| asn.as_u64())
            .collect();
        let next_hop = attrs.iter().find(|a| a["type"] == 14)?["nexthop"]
            .as_str()?
            .to_owned();
        Some((origin, as_path, next_hop))
    }

    fn add_routes(&self, prefixes: &[&str], next_hop: &str) {
        for prefix in prefixes {
            self.cli(&[
                "global", "rib", "add", "-a", "ipv6", prefix, "nexthop", next_hop,
            ]);
        }
    }
}

#[test]
fn gobgp_ipv6_session_routes_withdraw_disable_restart() {
    let started = Instant::now();
    let (mut lab, host, peer) = ipv6_lab("gobgp6", "hg6", "pg6", 81);
    GoBgp::start(&mut lab, &host, &peer);
    lab.start_agent(&agent_bgp_config(&peer, GOBGP_ASN, "\"default-only\"", ""));
    let gobgp = GoBgp {
        lab: &lab,
        host: &host,
    };
    // ORIGIN IGP (0), the host's AS alone.
    let expected_host_route = Some((0, vec![u64::from(HOST_ASN)], host.clone()));

    // The session, seen from both sides, over the IPv6 addresses.
    wait_for(
        "the GoBGP IPv6 session to be established (both sides)",
        SESSION,
        || gobgp.established() && lab.agent_established_with(&peer) == 1,
        || format!("gobgp neighbor: {}\n{}", gobgp.neighbor(), lab.logs()),
    );
    let neighbor = gobgp.neighbor();
    assert_eq!(neighbor["state"]["peer_asn"], HOST_ASN, "{neighbor}");
    let connections = lab.bgp_connections("host");
    assert!(
        connections.len() == 1 && connections[0].contains(&format!("[{peer}]")),
        "one BGP connection, over IPv6: {connections:?}"
    );

    // GoBGP learns the host's /128: ORIGIN IGP, AS path [4200000001], next hop the host's
    // global address on the link; and nothing else (the IPv4 /32 has no family on this session).
    wait_for(
        "GoBGP to receive 2001:db8:20::20/128 from the host",
        ROUTE,
        || gobgp.host_route().is_some(),
        || format!("adj-in: {:?}\n{}", gobgp.adj_in(), lab.logs()),
    );
    assert_eq!(
        gobgp.host_route(),
        expected_host_route,
        "the host's /128 as GoBGP received it (origin, AS path, next hop): {:?}",
        gobgp.adj_in()
    );
    let received: Vec<String> = gobgp.adj_in().keys().cloned().collect();
    assert_eq!(received, [HOST_V6_PREFIX], "the host sends only its /128");

    // GoBGP advertises a more-specific and a default: only ::/0 passes `default-only`, into
    // the XDP FIB and the kernel, via GoBGP's address. (One TCP stream, handled in order:
    // once ::/0 is in the FIB, the more-specific has been through the policy too.)
    gobgp.add_routes(&["2001:db8:77::/48", "::/0"], &peer);
    let via = [peer.as_str()];
    wait_for(
        "::/0 via GoBGP in the FIB",
        ROUTE,
        || lab.fib_vias("::/0") == via,
        || lab.fib_and_logs(),
    );
    let fib = lab.fib();
    assert!(
        !fib.contains_key("2001:db8:77::/48"),
        "2001:db8:77::/48 must be rejected by default-only: {fib:?}"
    );
    let kernel = kernel_routes_v6(&lab);
    assert!(
        kernel.contains(&format!("default via {peer}")) && !kernel.contains("2001:db8:77::"),
        "kernel routes (proto 201): {kernel}"
    );

    // Withdraw ::/0 (MP_UNREACH_NLRI): it leaves the FIB and the kernel; announce it again.
    gobgp.cli(&["global", "rib", "del", "-a", "ipv6", "::/0"]);
    wait_for(
        "::/0 to leave the FIB after GoBGP's withdraw",
        ROUTE,
        || !lab.fib().contains_key("::/0"),
        || lab.fib_and_logs(),
    );
    assert!(
        !kernel_routes_v6(&lab).contains("default"),
        "kernel: {}",
        kernel_routes_v6(&lab)
    );
    assert!(gobgp.established() && lab.agent_established_with(&peer) == 1);
    gobgp.add_routes(&["::/0"], &peer);
    wait_for(
        "::/0 back in the FIB",
        ROUTE,
        || lab.fib_vias("::/0") == via,
        || lab.fib_and_logs(),
    );

    // Administrative shutdown from GoBGP's side (NOTIFICATION Cease/2), then enable (see the
    // IPv4 test for why not `reset`).
    gobgp.cli(&["neighbor", &host, "disable"]);
    wait_for(
        "the agent to get GoBGP's Cease and withdraw ::/0",
        ROUTE,
        || {
            lab.agent_log_count(&["NOTIFICATION received: Cease/Administrative Shutdown"]) == 1
                && !lab.fib().contains_key("::/0")
        },
        || lab.fib_and_logs(),
    );
    gobgp.cli(&["neighbor", &host, "enable"]);
    wait_for(
        "the session to come back after disable/enable",
        SESSION,
        || gobgp.established() && lab.agent_established_with(&peer) == 2,
        || format!("gobgp neighbor: {}\n{}", gobgp.neighbor(), lab.logs()),
    );
    wait_for(
        "::/0 reinstalled and the /128 re-advertised after the shutdown",
        ROUTE,
        || lab.fib_vias("::/0") == via && gobgp.host_route() == expected_host_route,
        || lab.fib_and_logs(),
    );
    assert!(lab.agent_running(), "router-agent exited\n{}", lab.logs());

    // gobgpd dies (SIGKILL: no NOTIFICATION) and starts again from its config: the host drops
    // its routes, reconnects and learns them anew.
    lab.stop_daemon("gobgpd", libc::SIGKILL);
    wait_for(
        "::/0 to leave the FIB when gobgpd dies",
        ROUTE,
        || !lab.fib().contains_key("::/0"),
        || lab.fib_and_logs(),
    );
    GoBgp::start(&mut lab, &host, &peer);
    let gobgp = GoBgp {
        lab: &lab,
        host: &host,
    };
    wait_for(
        "the session to re-establish with the restarted gobgpd",
        SESSION,
        || gobgp.established() && lab.agent_established_with(&peer) == 3,
        || format!("gobgp neighbor: {}\n{}", gobgp.neighbor(), lab.logs()),
    );
    gobgp.add_routes(&["::/0", "2001:db8:77::/48"], &peer);
    wait_for(
        "routes back after the gobgpd restart",
        ROUTE,
        || lab.fib_vias("::/0") == via && gobgp.host_route() == expected_host_route,
        || format!("adj-in: {:?}\n{}", gobgp.adj_in(), lab.fib_and_logs()),
    );
    assert!(
        !lab.fib().contains_key("2001:db8:77::/48"),
        "{:?}",
        lab.fib()
    );
    assert!(lab.agent_running(), "router-agent exited\n{}", lab.logs());
    eprintln!("gobgp IPv6 test took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// ExaBGP

const EXABGP_ASN: u32 = 65020;

/// ExaBGP's neighbor block: the host over IPv6, IPv6 unicast only, three static routes.
fn exabgp_config(lab: &Lab, host: &str, peer: &str) -> String {
    format!(
        r#"neighbor {host} {{
  router-id {router_id};
  local-address {peer};
  local-as {EXABGP_ASN};
  peer-as {HOST_ASN};
  hold-time 9;
  family {{ ipv6 unicast; }}
  capability {{ route-refresh; }}
{api}  static {{
    route ::/0 next-hop {peer};
    route 2001:db8:88:1::/64 next-hop {peer};
    route 2001:db8:77:7::/64 next-hop {peer};
  }}
}}
"#,
        router_id = lab.peer_ip,
        api = exabgp::NEIGHBOR_API,
    )
}

#[test]
fn exabgp_ipv6_session_announce_withdraw_refresh_teardown() {
    let started = Instant::now();
    let (mut lab, host, peer) = ipv6_lab("exabgp6", "hx6", "px6", 82);
    let prefix_list = r#"
[bgp.prefix_list.from-exabgp]
ipv6 = [
  { action = "permit", prefix = "::/0" },
  { action = "permit", prefix = "2001:db8:88::/48", ge = 64, le = 64 },
]
"#;
    // The agent first: ExaBGP only connects out, with a growing back-off after failures.
    lab.start_agent(&agent_bgp_config(
        &peer,
        EXABGP_ASN,
        "{ prefix_list = \"from-exabgp\" }",
        prefix_list,
    ));
    let config = exabgp_config(&lab, &host, &peer);
    exabgp::start(&mut lab, &config);
    let lab = &lab;
    let via = [peer.as_str()];
    let evidence = || {
        format!(
            "exabgp states: {:?}\nexabgp saw:\n{}\n{}",
            exabgp::states(lab),
            exabgp::updates(lab),
            lab.fib_and_logs()
        )
    };
    let host_announcements = || exabgp::announcements(lab, "ipv6 unicast", HOST_V6_PREFIX);

    // Established; ExaBGP's static routes in the FIB as far as the prefix list allows.
    wait_for(
        "the ExaBGP IPv6 session to be established (both sides)",
        SESSION,
        || exabgp::ups(lab) == 1 && lab.agent_established_with(&peer) == 1,
        evidence,
    );
    wait_for(
        "::/0 and 2001:db8:88:1::/64 via ExaBGP in the FIB",
        ROUTE,
        || lab.fib_vias("::/0") == via && lab.fib_vias("2001:db8:88:1::/64") == via,
        evidence,
    );
    assert!(
        !lab.fib().contains_key("2001:db8:77:7::/64"),
        "2001:db8:77:7::/64 is not in the prefix list: {:?}",
        lab.fib()
    );

    // ExaBGP received the host's /128: AS path [4200000001], next hops the host's global and
    // link-local addresses (RFC 2545: they share the link); the IPv4 /32 not at all (no IPv4
    // family on this session).
    wait_for(
        "ExaBGP to receive 2001:db8:20::20/128",
        ROUTE,
        || !host_announcements().is_empty(),
        evidence,
    );
    let mut next_hops = vec![host.clone(), lab.link_local("host", &lab.host_if)];
    next_hops.sort();
    let expected = (vec![u64::from(HOST_ASN)], next_hops, "igp".to_owned());
    assert_eq!(
        host_announcements(),
        std::slice::from_ref(&expected),
        "{}",
        evidence()
    );
    assert!(
        exabgp::announcements(lab, "ipv4 unicast", HOST_PREFIX).is_empty(),
        "{}",
        evidence()
    );

    // API: withdraw the more-specific, announce another one.
    exabgp::command(
        lab,
        &format!("withdraw route 2001:db8:88:1::/64 next-hop {peer}"),
    );
    exabgp::command(
        lab,
        &format!("announce route 2001:db8:88:2::/64 next-hop {peer}"),
    );
    wait_for(
        "2001:db8:88:1::/64 out of and 2001:db8:88:2::/64 into the FIB",
        ROUTE,
        || {
            let fib = lab.fib();
            !fib.contains_key("2001:db8:88:1::/64")
                && fib.get("2001:db8:88:2::/64").is_some_and(|v| v == &via)
                && fib.get("::/0").is_some_and(|v| v == &via)
        },
        evidence,
    );

    // ROUTE-REFRESH for IPv6 unicast: the host sends its /128 again.
    exabgp::command(
        lab,
        &format!("neighbor {host} announce route-refresh ipv6 unicast"),
    );
    wait_for(
        "the host to re-send 2001:db8:20::20/128 after ROUTE-REFRESH",
        ROUTE,
        || host_announcements().len() >= 2,
        evidence,
    );
    assert_eq!(
        host_announcements(),
        [expected.clone(), expected.clone()],
        "{}",
        evidence()
    );

    // Withdraw ::/0 and announce it again.
    exabgp::command(lab, &format!("withdraw route ::/0 next-hop {peer}"));
    wait_for(
        "::/0 to leave the FIB after ExaBGP's withdraw",
        ROUTE,
        || !lab.fib().contains_key("::/0") && lab.fib_vias("2001:db8:88:2::/64") == via,
        evidence,
    );
    exabgp::command(lab, &format!("announce route ::/0 next-hop {peer}"));
    wait_for(
        "::/0 back in the FIB",
        ROUTE,
        || lab.fib_vias("::/0") == via,
        evidence,
    );

    // NOTIFICATION: ExaBGP tears the session down (Cease, Administrative Shutdown). ExaBGP
    // reconnects at once, so the routes may be back before a poll sees them gone: the agent's
    // log says both of ExaBGP's routes were withdrawn.
    exabgp::command(lab, &format!("neighbor {host} teardown 2"));
    wait_for(
        "the agent to receive the Cease and withdraw ExaBGP's two routes",
        ROUTE,
        || {
            lab.agent_log_count(&["NOTIFICATION received: Cease/Administrative Shutdown"]) == 1
                && lab.agent_log_count(&[
                    "BGP neighbor down: its routes withdrawn",
                    &format!("[{peer}]:"),
                    "prefixes=2",
                ]) == 1
        },
        evidence,
    );
    wait_for(
        "the ExaBGP session to come back after the teardown",
        SESSION,
        || exabgp::ups(lab) == 2 && lab.agent_established_with(&peer) == 2,
        evidence,
    );
    wait_for(
        "ExaBGP's routes reinstalled and the host's /128 re-sent after the teardown",
        ROUTE,
        || {
            lab.fib_vias("::/0") == via
                && lab.fib_vias("2001:db8:88:2::/64") == via
                && host_announcements().len() >= 3
        },
        evidence,
    );
    let fib = lab.fib();
    assert!(
        !fib.contains_key("2001:db8:88:1::/64") && !fib.contains_key("2001:db8:77:7::/64"),
        "{fib:?}"
    );
    assert_eq!(
        host_announcements(),
        [expected.clone(), expected.clone(), expected],
        "{}",
        evidence()
    );
    assert!(lab.agent_running(), "router-agent exited\n{}", lab.logs());
    eprintln!("exabgp IPv6 test took {:?}", started.elapsed());
}
