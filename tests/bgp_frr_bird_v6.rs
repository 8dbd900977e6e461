//! Interop of the BGP speaker with FRR 8.4 and BIRD 2 beyond the IPv4 two-ToR case: IPv6
//! sessions, 4-byte AS numbers, ROUTE-REFRESH, and a peer resetting the session (Cease
//! NOTIFICATION) or dying. Needs root, FRR and BIRD installed (scripts/setup).
//!
//! ```text
//!   client ── c0 ═══ hc ── [host: router-agent AS 65101] ── h1 ═══ t1 ── tor1 (FRR)
//!                                                        └─ h2 ═══ t2 ── tor2 (BIRD)
//! ```
//!
//! Every test builds its own namespaces (`hrv6-<pid>-<test>-<role>`) and tears them down on
//! drop, FRR and BIRD included. The tests run one at a time (a 2-core machine runs FRR, BIRD,
//! the agent and the traffic of one lab comfortably; four at once make timings flaky).
//!
//! Tests:
//! - `ipv6_sessions_with_frr_and_bird`: IPv6 sessions to FRR (AS 65001) and BIRD (AS 65002);
//!   both send ::/0 and a more-specific `default-only` rejects; the host originates
//!   2001:db8:10::1/128. Both ToRs learn it with AS path 65101; ::/0 is ECMP over both in
//!   XDP (client traffic counted per nexthop); a ToR down, or FRR withdrawing ::/0
//!   (MP_UNREACH_NLRI), takes its nexthop out. The ToRs send RFC 2545 global + link-local
//!   next hops, as on any shared link.
//! - `ipv6_sessions_global_next_hops_only`: the same with global next hops only, to tell a
//!   link-local next hop problem apart from the rest.
//! - `four_byte_asn_with_frr`: FRR in AS 4200000100, the host in AS 65101, then in AS
//!   4200000200.
//! - `route_refresh_from_frr`: `clear bgp ... soft in` on FRR (ROUTE-REFRESH) makes the host
//!   re-send its routes on the same session.
//! - `frr_reset_and_restart`: `clear bgp` (Cease NOTIFICATION), then bgpd killed and
//!   restarted; the session and the default route come back each time.
//! - `frr_reset_passive_neighbor`: the same reset with `passive = true` on the host.
//!
//! `HOSTROUTER_TEST_LOGS=DIR` keeps each lab's agent log as `DIR/<lab>.log`.
//!
//! The speaker's documented limitation: IPv6 routes only go out over IPv6 sessions, and IPv4
//! routes over an IPv6 session need RFC 8950 extended next hop (bgp/next_hop_out.rs).
//! The IPv6 test checks that side too: FRR negotiates IPv4 unicast on its IPv6 session
//! without extended next hop, so our IPv4 route must not reach it (and nothing else breaks).

mod frr_bird_v6;
mod interop;
mod netns;

use std::{
    thread,
    time::{Duration, Instant},
};

use netns::wait_for;
use serde_json::Value;

use frr_bird_v6::{Lab, agent_ipv4_bgp, agent_ipv4_bgp_passive, frr_ipv4_config, ipv6_scenario};

/// Both sessions up over IPv6; the host's /128 at both ToRs with AS path 65101; ::/0 from
/// FRR and BIRD installed as ECMP and used by XDP; a ToR going down leaves the group.
///
/// On a shared link FRR and BIRD send IPv6 routes with two next hops, their global address
/// and their link-local one (RFC 2545), as every real ToR does.
#[test]
fn ipv6_sessions_with_frr_and_bird() {
    ipv6_scenario("v6", true);
}

/// The same with ToRs that send the global next hop alone, which tells a link-local next hop
/// problem apart from the rest of the IPv6 path (sessions, export, XDP forwarding,
/// withdrawal). BIRD: no link-local address on its link (address generation off). FRR
/// refuses to run a session on a shared link without a link-local address ("nexthop_set
/// failed"), so its link is not shared as FRR sees it: its address is a /128 with an on-link
/// route to the host's subnet, and the session needs `disable-connected-check`.
#[test]
fn ipv6_sessions_global_next_hops_only() {
    ipv6_scenario("v6g", false);
}

/// FRR with a 4-byte AS (4200000100): the session comes up (the OPEN carries AS_TRANS, the
/// capability the real AS), our FIB gets FRR's default route, FRR sees AS 65101 and our route
/// with AS path 65101; then the host with a 4-byte AS of its own (4200000200).
#[test]
fn four_byte_asn_with_frr() {
    for local_as in [65101u32, 4_200_000_200] {
        let mut lab = Lab::ipv4_host_and_tor(&format!("as4-{local_as}"));
        lab.start_frr("tor1", &frr_ipv4_config(4_200_000_100, local_as, "", ""));
        lab.start_agent(&["h1"], &agent_ipv4_bgp(local_as, 4_200_000_100));
        let diagnostics = || {
            format!(
                "{}\nfib: {}\n{}\nFRR: {}",
                lab.log(),
                lab.show("fib"),
                lab.frr_log(),
                lab.vtysh_text(&["show bgp neighbors 10.0.1.2"])
            )
        };
        wait_for(
            "the default route via FRR (AS 4200000100)",
            Duration::from_secs(25),
            || {
                lab.nexthops("0.0.0.0/0")
                    .iter()
                    .any(|(_, via)| via == "10.0.1.1")
            },
            diagnostics,
        );
        // The agent's view of the peer: its real 4-byte AS, in the session and in the AS
        // paths of its routes (the accepted default and the rejected more-specific).
        assert!(
            lab.agent_log().contains("asn=4200000100"),
            "the session should report AS 4200000100\n{}",
            lab.log()
        );
        let neighbor = lab.agent_neighbor("10.0.1.1");
        assert_eq!(neighbor["state"], "Established", "{neighbor}");
        assert_eq!(neighbor["remote_as"], 4_200_000_100u32, "{neighbor}");
        let paths = lab.agent_paths("0.0.0.0/0");
        assert_eq!(
            paths,
            [(
                "10.0.1.1".to_owned(),
                "best".to_owned(),
                vec![4_200_000_100]
            )],
            "{}",
            lab.show("routes")
        );
        wait_for(
            "10.99.0.0/24 in the agent's RIB, rejected, AS path 4200000100",
            Duration::from_secs(10),
            || {
                let paths = lab.agent_paths("10.99.0.0/24");
                paths.len() == 1
                    && paths[0].1.starts_with("rejected")
                    && paths[0].2 == [4_200_000_100]
            },
            || format!("{}\nroutes: {}", diagnostics(), lab.show("routes")),
        );
        let fib = lab.show("fib").to_string();
        assert!(!fib.contains("10.99.0.0/24"), "{fib}");
        // FRR's view: we are AS `local_as`, 4-byte AS capability on both sides, and our
        // route's AS path is exactly our AS.
        let neighbor = lab.frr_neighbor("10.0.1.2");
        assert_eq!(neighbor["bgpState"], "Established", "{neighbor}");
        assert_eq!(neighbor["remoteAs"], local_as, "{neighbor}");
        assert_eq!(neighbor["localAs"], 4_200_000_100u32, "{neighbor}");
        assert_eq!(
            neighbor["neighborCapabilities"]["4byteAs"], "advertisedAndReceived",
            "{neighbor}"
        );
        wait_for(
            "FRR to learn 192.0.2.10/32",
            Duration::from_secs(10),
            || !lab.frr_as_paths("ipv4", "192.0.2.10/32").is_empty(),
            diagnostics,
        );
        assert_eq!(
            lab.frr_as_paths("ipv4", "192.0.2.10/32"),
            [local_as.to_string()],
            "{}",
            lab.vtysh_text(&["show bgp ipv4 unicast 192.0.2.10/32"])
        );
    }
}

/// `clear bgp ... soft in` on FRR sends a ROUTE-REFRESH; the host must send its routes
/// again, on the same session. FRR keeps no Adj-RIB-In copy (no soft-reconfiguration
/// inbound) and processes route-map changes only on demand (delay-timer 0), so a changed
/// inbound route-map shows on our route only if we re-sent it.
#[test]
fn route_refresh_from_frr() {
    let mut lab = Lab::ipv4_host_and_tor("refresh");
    lab.start_frr(
        "tor1",
        &(frr_ipv4_config(
            65001,
            65101,
            " bgp route-map delay-timer 0\n",
            "  neighbor 10.0.1.2 route-map FROM-HOST in\n",
        ) + "route-map FROM-HOST permit 10\n!\n"),
    );
    lab.start_agent(&["h1"], &agent_ipv4_bgp(65101, 65001));
    let diagnostics = || {
        format!(
            "{}\nfib: {}\n{}\nFRR: {}\n{}",
            lab.log(),
            lab.show("fib"),
            lab.frr_log(),
            lab.vtysh_text(&["show bgp neighbors 10.0.1.2"]),
            lab.vtysh_text(&["show bgp ipv4 unicast"])
        )
    };
    wait_for(
        "FRR to learn 192.0.2.10/32",
        Duration::from_secs(25),
        || !lab.frr_as_paths("ipv4", "192.0.2.10/32").is_empty(),
        diagnostics,
    );
    wait_for(
        "the default route via FRR",
        Duration::from_secs(10),
        || !lab.nexthops("0.0.0.0/0").is_empty(),
        diagnostics,
    );
    let local_pref =
        || lab.vtysh("show bgp ipv4 unicast 192.0.2.10/32 json")["paths"][0]["locPrf"].as_u64();
    assert_ne!(local_pref(), Some(250));
    let before = lab.frr_neighbor("10.0.1.2");
    let agent_before = lab.agent_neighbor("10.0.1.1");
    assert_eq!(agent_before["state"], "Established", "{agent_before}");
    let stat = |n: &Value, key: &str| n["messageStats"][key].as_u64().unwrap_or(0);
    assert!(
        before["neighborCapabilities"]["routeRefresh"]
            .as_str()
            .is_some_and(|s| s.starts_with("advertisedAndReceived")),
        "route refresh negotiated: {before}"
    );

    // A new inbound policy, not applied until FRR asks us for our routes again.
    lab.vtysh_text(&[
        "configure terminal",
        "route-map FROM-HOST permit 10",
        "set local-preference 250",
    ]);
    thread::sleep(Duration::from_secs(1));
    assert_ne!(local_pref(), Some(250), "applied without a refresh?");
    let out = lab.vtysh_text(&["clear bgp ipv4 unicast 10.0.1.2 soft in"]);
    wait_for(
        "192.0.2.10/32 re-sent after the ROUTE-REFRESH (local-pref 250 at FRR)",
        Duration::from_secs(10),
        || local_pref() == Some(250),
        || format!("clear: {out}\n{}", diagnostics()),
    );
    let after = lab.frr_neighbor("10.0.1.2");
    assert!(
        stat(&after, "routeRefreshSent") > stat(&before, "routeRefreshSent"),
        "FRR sent a ROUTE-REFRESH: {after}"
    );
    assert!(
        stat(&after, "updatesRecv") > stat(&before, "updatesRecv"),
        "we answered with UPDATEs: {after}"
    );
    // Same session: nothing reset on either side.
    assert_eq!(after["bgpState"], "Established", "{after}");
    assert_eq!(
        after["connectionsEstablished"], before["connectionsEstablished"],
        "{after}"
    );
    assert_eq!(
        after["connectionsDropped"], before["connectionsDropped"],
        "{after}"
    );
    assert!(
        after["bgpTimerUpMsec"].as_u64() >= before["bgpTimerUpMsec"].as_u64(),
        "uptime went back: {before} -> {after}"
    );
    assert_eq!(lab.log_count("session established"), 1, "{}", lab.log());
    assert_eq!(lab.log_count("session down"), 0, "{}", lab.log());
    let agent_after = lab.agent_neighbor("10.0.1.1");
    assert_eq!(agent_after["state"], "Established", "{agent_after}");
    assert!(
        agent_after["uptime_seconds"].as_u64() >= agent_before["uptime_seconds"].as_u64(),
        "the agent's session restarted: {agent_before} -> {agent_after}"
    );
    assert_eq!(agent_after["last_error"], Value::Null, "{agent_after}");
    assert_eq!(lab.frr_as_paths("ipv4", "192.0.2.10/32"), ["65101"]);
    assert!(!lab.nexthops("0.0.0.0/0").is_empty(), "{}", lab.show("fib"));
}

/// FRR resets the session (`clear bgp`: Cease NOTIFICATION, Administrative Reset): the host's
/// session comes back and the default route is installed again. Then bgpd dies (SIGKILL: the
/// connection just closes): the route leaves; bgpd starts again: the route is back.
#[test]
fn frr_reset_and_restart() {
    let mut lab = Lab::ipv4_host_and_tor("reset");
    lab.start_frr("tor1", &frr_ipv4_config(65001, 65101, "", ""));
    lab.start_agent(&["h1"], &agent_ipv4_bgp(65101, 65001));
    let diagnostics = || {
        format!(
            "{}\nfib: {}\n{}\nFRR: {}",
            lab.log(),
            lab.show("fib"),
            lab.frr_log(),
            lab.vtysh_text(&["show bgp neighbors 10.0.1.2"]),
        )
    };
    let has_default =
        || lab.nexthops("0.0.0.0/0") == vec![("h1".to_owned(), "10.0.1.1".to_owned())];
    wait_for(
        "the default route via FRR",
        Duration::from_secs(25),
        &has_default,
        diagnostics,
    );
    assert_eq!(lab.log_count("session established"), 1, "{}", lab.log());

    // Hard reset by FRR: it sends a Cease NOTIFICATION and closes.
    let out = lab.vtysh_text(&["clear bgp 10.0.1.2"]);
    wait_for(
        "the NOTIFICATION from FRR to take the session down",
        Duration::from_secs(5),
        || lab.log_count("session down") >= 1,
        || format!("clear: {out}\n{}", diagnostics()),
    );
    assert!(
        lab.agent_log().contains("NOTIFICATION received"),
        "{}",
        lab.log()
    );
    let reset_at = Instant::now();
    wait_for(
        "the session back after FRR's reset",
        Duration::from_secs(20),
        || lab.log_count("session established") >= 2,
        diagnostics,
    );
    wait_for(
        "the default route reinstalled",
        Duration::from_secs(10),
        &has_default,
        diagnostics,
    );
    eprintln!("session back {:?} after the reset", reset_at.elapsed());
    let neighbor = lab.agent_neighbor("10.0.1.1");
    assert_eq!(neighbor["state"], "Established", "{neighbor}");
    assert!(
        neighbor["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("Cease")),
        "the reset's reason: {neighbor}"
    );
    wait_for(
        "FRR to relearn 192.0.2.10/32",
        Duration::from_secs(10),
        || lab.frr_as_paths("ipv4", "192.0.2.10/32") == ["65101"],
        diagnostics,
    );

    // bgpd dies without a word: the connection closes, the session drops, the route leaves.
    lab.frr().kill_bgpd();
    wait_for(
        "the session down after bgpd died",
        Duration::from_secs(10),
        || lab.log_count("session down") >= 2,
        diagnostics,
    );
    wait_for(
        "the default route removed",
        Duration::from_secs(5),
        || lab.nexthops("0.0.0.0/0").is_empty(),
        diagnostics,
    );
    let kernel = lab.exec("host", &["ip", "route", "show", "proto", "201"]);
    assert!(!kernel.contains("default"), "{kernel}");

    // bgpd back: session and route back.
    lab.start_bgpd();
    let restart_at = Instant::now();
    wait_for(
        "the session back after bgpd restarted",
        Duration::from_secs(25),
        || lab.log_count("session established") >= 3,
        diagnostics,
    );
    wait_for(
        "the default route back",
        Duration::from_secs(10),
        &has_default,
        diagnostics,
    );
    eprintln!(
        "session back {:?} after bgpd restarted",
        restart_at.elapsed()
    );
    wait_for(
        "FRR to relearn 192.0.2.10/32 after its restart",
        Duration::from_secs(10),
        || lab.frr_as_paths("ipv4", "192.0.2.10/32") == ["65101"],
        diagnostics,
    );
}

/// A passive neighbor (the host only accepts FRR's connections) after FRR's reset: FRR
/// reconnects within seconds (`timers connect 2`), while the host's session may still wait
/// out its restart damping (IdleHold, 5 s after a first failure). The session must come back
/// all the same, once the damping is over.
#[test]
fn frr_reset_passive_neighbor() {
    let mut lab = Lab::ipv4_host_and_tor("passive");
    lab.start_frr("tor1", &frr_ipv4_config(65001, 65101, "", ""));
    lab.start_agent(&["h1"], &agent_ipv4_bgp_passive(65101, 65001));
    let diagnostics = || {
        format!(
            "{}\nfib: {}\n{}\nFRR: {}\nhost TCP: {}",
            lab.log(),
            lab.show("fib"),
            lab.frr_log(),
            lab.vtysh_text(&["show bgp summary"]),
            lab.exec("host", &["ss", "-tn"]),
        )
    };
    let has_default =
        || lab.nexthops("0.0.0.0/0") == vec![("h1".to_owned(), "10.0.1.1".to_owned())];
    wait_for(
        "the default route via FRR (FRR connecting to the passive host)",
        Duration::from_secs(25),
        &has_default,
        diagnostics,
    );
    let out = lab.vtysh_text(&["clear bgp 10.0.1.2"]);
    wait_for(
        "the NOTIFICATION from FRR to take the session down",
        Duration::from_secs(5),
        || lab.log_count("session down") >= 1,
        || format!("clear: {out}\n{}", diagnostics()),
    );
    wait_for(
        "the passive session back after FRR's reset",
        Duration::from_secs(30),
        || lab.log_count("session established") >= 2,
        diagnostics,
    );
    wait_for(
        "the default route reinstalled",
        Duration::from_secs(10),
        &has_default,
        diagnostics,
    );
}
