//! BFD end to end (RFC 5880/5881/5882): router-agent between two ToRs in ECMP, FRR (bfdd,
//! `neighbor X bfd`) and BIRD 2 (`protocol bfd`, `bfd on`), with a server behind both.
//! Needs root, FRR (with bfdd), BIRD and nftables (scripts/setup).
//!
//! ```text
//!   client ── c0 ═══ hc ── [host: router-agent AS 65101] ── h1 ═══ t1 ── tor1 (FRR, 65001) ── s1 ═══ e1 ─┐
//!                                                        └─ h2 ═══ t2 ── tor2 (BIRD, 65002) ── s2 ═══ e2 ─┴ server
//! ```
//!
//! UDP at one datagram per millisecond runs from the client to the server (198.18.0.1, by the
//! default route the ToRs send, ECMP in XDP). The ToR that carries the flow is frozen: its
//! BGP (and BFD) daemons SIGSTOPped and all its packets dropped by nftables while its link
//! stays up (its kernel still answers ARP: nothing but BFD or the hold timer can tell).
//! - With BFD (300 ms x 3) the survivor carries everything within 1 s; the BFD sessions come
//!   up with both daemons first, and again (with the BGP session) once the ToR thaws.
//! - Without BFD, the hold timer (9 s) detects it: the loss is measured and printed too.
//!
//! Run with `-- --nocapture` to see the figures (BENCHMARKS.md, "BFD failover").

mod bfd_lab;
mod interop;
mod netns;
#[path = "restart_lab/probe.rs"]
#[allow(dead_code)]
mod probe;

use std::{
    net::SocketAddr,
    thread,
    time::{Duration, Instant},
};

use netns::{AGENT, wait_for};

use bfd_lab::{Lab, SERVER, TORS};

/// What a freeze cost: the datagrams lost, and the time from the first one lost (the freeze
/// in effect) to the end of the last (each datagram is a millisecond).
struct Outage {
    lost: u64,
    span_ms: u64,
    ranges: Vec<(u64, u64)>,
}

/// The ToRs and the agent, with or without BFD, until the default route uses both ToRs.
fn bring_up(lab: &mut Lab, bfd: bool) {
    lab.start_tors(bfd);
    lab.start_agent(bfd);
    wait_for(
        "a default route via both ToRs",
        Duration::from_secs(60),
        || lab.default_nexthops() == TORS,
        || format!("{}\nfib: {}", lab.log(), lab.show("fib")),
    );
}

/// Freezes the ToR that carries the probe, waits for the FIB to leave it and `settle` more,
/// and says what was lost.
fn freeze_and_measure(lab: &mut Lab, bfd: bool, settle: Duration) -> (usize, Outage) {
    let client = lab.net.ns("client");
    let server = lab.net.ns("server");
    let destination: SocketAddr = format!("{SERVER}:9000").parse().unwrap();
    lab.probe = Some(probe::Probe::start(
        "client -> server",
        &client,
        &server,
        destination,
    ));
    let probe = lab.probe.as_ref().unwrap();
    assert!(probe.flowing(Duration::from_secs(10)), "{}", lab.log());
    let tor = lab.carrying_tor();

    let from = lab.probe.as_ref().unwrap().mark();
    lab.freeze(tor);
    let frozen_at = Instant::now();
    let survivor = TORS[1 - tor];
    wait_for(
        "the FIB to leave the frozen ToR",
        Duration::from_secs(30),
        || lab.default_nexthops() == [survivor],
        || format!("{}\nfib: {}", lab.log(), lab.show("fib")),
    );
    let seen_after = frozen_at.elapsed();
    thread::sleep(settle);
    let probe = lab.probe.as_ref().unwrap();
    let to = probe.mark();
    let losses = probe.losses(from, to);
    let ranges = probe.lost_ranges(from, to);
    let span_ms = match (ranges.first(), ranges.last()) {
        (Some((first, _)), Some((_, end))) => end - first,
        _ => 0,
    };
    eprintln!(
        "BFD failover ({}): froze {} (tor{}); FIB without it seen after {} ms; {losses} \
         (1 datagram/ms: {} ms of traffic); first to last loss {span_ms} ms; lost at {ranges:?}",
        if bfd {
            "BFD 300 ms x 3"
        } else {
            "no BFD, hold time 9 s"
        },
        TORS[tor],
        tor + 1,
        seen_after.as_millis(),
        losses.lost,
    );
    (
        tor,
        Outage {
            lost: losses.lost,
            span_ms,
            ranges,
        },
    )
}

#[test]
fn bfd_with_frr_and_bird_fails_a_frozen_tor_over_within_a_second() {
    let mut lab = Lab::new("bfd");
    // Sessions come up with both daemons' BFD (FRR's bfdd, BIRD's protocol bfd).
    bring_up(&mut lab, true);
    wait_for(
        "both BFD sessions up",
        Duration::from_secs(60),
        || {
            lab.bfd_states()
                == [
                    (TORS[0].to_owned(), "Up".to_owned()),
                    (TORS[1].to_owned(), "Up".to_owned()),
                ]
        },
        || format!("{}\nbfd: {}", lab.log(), lab.show("bfd")),
    );
    let frr_peers = lab.frr.as_ref().unwrap().vtysh("show bfd peers json");
    assert!(
        frr_peers.as_array().is_some_and(|peers| peers
            .iter()
            .any(|p| p["peer"] == "10.0.1.2" && p["status"] == "up")),
        "{frr_peers}"
    );
    let bird_sessions = lab.bird.as_ref().unwrap().birdc("show bfd sessions");
    assert!(
        bird_sessions.contains("10.0.2.2") && bird_sessions.contains("Up"),
        "{bird_sessions}"
    );
    let bfd = lab.show("bfd");
    assert_eq!(bfd[0]["detection_time_ms"], 900.0, "{bfd}");
    assert_eq!(bfd[0]["transmit_interval_ms"], 300.0, "{bfd}");
    let neighbors = lab.show("neighbors");
    assert_eq!(neighbors[0]["bfd"]["state"], "Up", "{neighbors}");

    let (tor, outage) = freeze_and_measure(&mut lab, true, Duration::from_secs(2));
    assert!(
        outage.lost < 1000 && outage.span_ms < 1000,
        "with BFD the survivor carries everything within 1 s: {} lost over {} ms ({:?})\n{}",
        outage.lost,
        outage.span_ms,
        outage.ranges,
        lab.log()
    );
    // Detected by BFD, not by the hold timer; the BGP session is down and held down.
    let bfd = lab.show("bfd");
    let session = &bfd[tor];
    assert_eq!(session["state"], "Down", "{bfd}");
    assert_eq!(
        session["last_down"]["diagnostic"], "control detection time expired",
        "{bfd}"
    );
    let neighbors = lab.show("neighbors");
    let neighbor = &neighbors[tor];
    assert_ne!(neighbor["state"], "Established", "{neighbors}");
    assert!(
        neighbor["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("BFD down")),
        "{neighbors}"
    );

    // The ToR thaws: BFD comes up, the session is established again, both ToRs forward.
    lab.thaw();
    wait_for(
        "BFD, the session and the ECMP route back",
        Duration::from_secs(60),
        || {
            lab.default_nexthops() == TORS
                && lab.bfd_states().iter().all(|(_, state)| state == "Up")
        },
        || format!("{}\nbfd: {}", lab.log(), lab.show("bfd")),
    );
}

#[test]
fn without_bfd_the_hold_timer_detects_a_frozen_tor() {
    let mut lab = Lab::new("hold");
    bring_up(&mut lab, false);
    let (_, outage) = freeze_and_measure(&mut lab, false, Duration::from_secs(1));
    // Hold time 9 s, keepalives every 3 s: the last one came 0 to 3 s before the freeze.
    assert!(
        (5000..=10_500).contains(&outage.lost) && outage.span_ms >= 5000,
        "hold-time detection: {} lost over {} ms\n{}",
        outage.lost,
        outage.span_ms,
        lab.log()
    );
    assert!(lab.show("bfd").as_array().is_none_or(Vec::is_empty));
}

#[test]
fn reload_adds_re_times_and_removes_bfd_sessions() {
    let mut lab = Lab::new("reload");
    lab.start_tors(true);
    lab.start_agent(false);
    wait_for(
        "a default route via both ToRs",
        Duration::from_secs(60),
        || lab.default_nexthops() == TORS,
        || format!("{}\nfib: {}", lab.log(), lab.show("fib")),
    );
    assert!(lab.show("bfd").as_array().is_some_and(Vec::is_empty));
    let uptime = || {
        lab.show("neighbors")[0]["uptime_seconds"]
            .as_u64()
            .unwrap_or(0)
    };
    let established_for = uptime();

    // Added: BFD with FRR comes up, the BGP session is not reset.
    lab.write_config(["bfd = true", ""], "");
    let summary = lab.reload();
    assert!(summary.contains("\"neighbors_reset\": []"), "{summary}");
    wait_for(
        "BFD with FRR up",
        Duration::from_secs(20),
        || lab.bfd_states() == [(TORS[0].to_owned(), "Up".to_owned())],
        || format!("{}\nbfd: {}", lab.log(), lab.show("bfd")),
    );
    let first = lab.show("bfd")[0].clone();
    assert_eq!(first["detection_time_ms"], 900.0, "{first}");

    // Re-timed (a profile at 500 ms): the same session, its detection time negotiated anew.
    lab.write_config(
        ["bfd = \"slow\"", ""],
        "[bfd.profile.slow]\ndesired_min_tx = \"500ms\"\nrequired_min_rx = \"500ms\"\n",
    );
    lab.reload();
    wait_for(
        "500 ms both ways (after the Poll Sequence): detection 1.5 s",
        Duration::from_secs(20),
        || {
            let session = &lab.show("bfd")[0];
            session["detection_time_ms"] == 1500.0 && session["transmit_interval_ms"] == 500.0
        },
        || format!("{}\nbfd: {}", lab.log(), lab.show("bfd")),
    );
    let retimed = lab.show("bfd")[0].clone();
    assert_eq!(retimed["state"], "Up", "{retimed}");
    assert_eq!(
        retimed["local_discriminator"], first["local_discriminator"],
        "not restarted"
    );
    assert_eq!(retimed["transmit_interval_ms"], 500.0, "{retimed}");
    assert!(
        uptime() >= established_for,
        "adding and re-timing BFD reset no session: {}",
        lab.show("neighbors")
    );

    // Removed: FRR hears AdminDown. For us that is no failure (RFC 5882 3.2); FRR 8.4 resets
    // its BGP session on it all the same (Cease / Hard Reset: its BFD client sees "down").
    // Our side holds nothing down: the session is back at once, both ToRs forwarding.
    lab.write_config(["", ""], "");
    lab.reload();
    assert!(lab.show("bfd").as_array().is_some_and(Vec::is_empty));
    wait_for(
        "FRR's BFD peer down by our AdminDown",
        Duration::from_secs(10),
        || {
            let peers = lab.frr.as_ref().unwrap().vtysh("show bfd peers json");
            peers[0]["status"] == "down"
        },
        || lab.log(),
    );
    wait_for(
        "both sessions established, the ECMP route intact",
        Duration::from_secs(30),
        || {
            let neighbors = lab.show("neighbors");
            neighbors[0]["state"] == "Established" && lab.default_nexthops() == TORS
        },
        || format!("{}\nneighbors: {}", lab.log(), lab.show("neighbors")),
    );
    let neighbors = lab.show("neighbors");
    assert!(
        !neighbors[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("BFD"),
        "not a BFD failure of ours: {neighbors}"
    );
    assert!(neighbors[0]["bfd"].is_null(), "{neighbors}");
}

#[test]
fn a_planned_restart_with_bfd_keeps_our_route_at_both_tors() {
    let mut lab = Lab::new("restart");
    // BIRD's plain `bfd on` takes the restart's BFD down as a failure and drops our route
    // for the restart's duration; `bfd graceful` makes it a graceful restart instead.
    lab.bird_bfd = "graceful";
    // FRR alike: with the C bit clear (our BFD shares fate with our control plane), a BFD down
    // during graceful restart is ignored.
    lab.frr_bfd = " neighbor 10.0.1.2 bfd\n neighbor 10.0.1.2 bfd check-control-plane-failure\n";
    bring_up(&mut lab, true);
    let both_up = |lab: &Lab| lab.bfd_states().iter().filter(|(_, s)| s == "Up").count() == 2;
    wait_for(
        "both BFD sessions up",
        Duration::from_secs(60),
        || both_up(&lab),
        || lab.log(),
    );
    let routes_at_tors = |lab: &Lab| {
        let frr = lab.frr.as_ref().unwrap();
        let at_frr = frr.vtysh("show bgp ipv4 unicast 192.0.2.10/32 json")["paths"].is_array();
        let bird = lab.bird.as_ref().unwrap();
        (
            at_frr,
            bird.birdc("show route 192.0.2.10/32")
                .contains("192.0.2.10/32"),
        )
    };
    wait_for(
        "our route at both ToRs",
        Duration::from_secs(20),
        || routes_at_tors(&lab) == (true, true),
        || lab.log(),
    );

    let mut command = lab.net.command_in("host", AGENT);
    command.args(["restart", "-c", &lab.path("host.toml")]);
    assert!(command.status().unwrap().success());
    // Through the restart (AdminDown from the old process, a new BFD session from the new
    // one): our route never leaves either ToR.
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        assert_eq!(routes_at_tors(&lab), (true, true), "{}", lab.log());
        thread::sleep(Duration::from_millis(100));
    }
    wait_for(
        "both BFD sessions up again",
        Duration::from_secs(30),
        || both_up(&lab),
        || lab.log(),
    );
    let neighbors = lab.show("neighbors");
    for neighbor in neighbors.as_array().unwrap() {
        assert_eq!(neighbor["state"], "Established", "{neighbors}");
    }
}
