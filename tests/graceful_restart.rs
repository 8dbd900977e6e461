//! Restart and upgrade without losing a packet (issue 9), end to end with real BGP peers:
//! client -> host (router-agent, AS 65101) -> ToR (AS 65001: FRR, BIRD 2 or GoBGP, each with
//! graceful restart on in its own configuration). UDP probes at 1 ms run both ways the whole
//! time: client -> 198.18.0.1 (the ToR's prefix, learned by BGP) and ToR -> 10.1.0.2 (in the
//! host's originated 10.1.0.0/24). See `restart_lab/` for the topology.
//!
//! - Agent restarts, per ToR: a planned restart (`run --keep-datapath`, SIGTERM, a fresh
//!   `run`) and `router-agent restart` lose nothing; `kill -9` then a start loses at most a
//!   loose bound (the ToR's helper mode keeps our routes, XDP keeps forwarding). While the
//!   agent is away the ToR keeps the host's prefix, marked stale; afterwards the FIB equals
//!   the one before and no adopted entry is left. Then `router-agent stop`, the full stop:
//!   the ToR drops the host's prefix at once, pins and kernel routes are gone.
//! - The ToR restarts (FRR's bgpd killed and started again, GR on both sides): the agent
//!   as helper keeps the ToR's routes in XDP until the ToR's End-of-RIB.
//! - Upgrade: the next run loads another XDP program (engine lpm-trie -> dir24 and back),
//!   adopting the maps: nothing lost.
//!
//! Needs root, FRR, BIRD and GoBGP; a ToR daemon that is not installed makes its test print
//! `SKIPPED: ...` and return.

mod interop;
mod netns;
mod restart_lab;

use std::{
    thread,
    time::{Duration, Instant},
};

use restart_lab::{RestartLab, TOR_LINK, TOR_PREFIX, tor::TorKind};

const UP: Duration = Duration::from_secs(60);
/// How long the agent stays away in the stop-then-start cases: long enough for the ToR to
/// have noticed (the session's TCP connection is closed).
const AWAY: Duration = Duration::from_millis(1500);
/// kill -9: the peers' helper mode keeps our routes and XDP keeps forwarding; what may be
/// lost is the start of the next agent. A loose bound: 1 s of traffic.
const KILL_LOSS_BOUND: u64 = 1000;

/// A lab with the agent up, its session established, the probes flowing; None (after a
/// plain message) if the ToR daemon is not installed here.
fn lab_up(tag: &str, tor: TorKind, engine: &str) -> Option<RestartLab> {
    if let Some(why) = tor.missing() {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    let mut lab = RestartLab::new(tag, tor);
    lab.write_config(engine);
    lab.start_agent();
    lab.wait_clean("the session up and the FIB complete", UP);
    assert_eq!(
        lab.fib_vias(TOR_PREFIX).len(),
        1,
        "{TOR_PREFIX} via the ToR: {:?}",
        lab.fib()
    );
    lab.start_probes();
    Some(lab)
}

/// Prints the losses of every probe since `marks`; asserts each is at most `bound`.
fn check_losses(lab: &RestartLab, what: &str, marks: &[u64], bound: u64) {
    let losses = lab.losses_since(marks);
    for (probe, loss, ranges) in &losses {
        eprintln!("{what}: {probe}: {loss} {ranges}");
    }
    for (probe, loss, ranges) in &losses {
        assert!(
            loss.lost <= bound,
            "{what}: {probe}: {loss} (bound {bound}); lost at {ranges}\n{}",
            lab.logs()
        );
    }
}

/// While the agent is away: the ToR still has the host's prefix, marked stale, and XDP
/// still has the ToR's.
fn check_away(lab: &RestartLab, what: &str) {
    let view = lab.host_route();
    assert!(
        view.present && view.stale,
        "{what}: the ToR keeps the host's prefix, stale (present {}, stale {}):\n{}\n{}",
        view.present,
        view.stale,
        view.raw,
        lab.logs()
    );
    let fib = lab.fib();
    assert!(
        fib.routes.contains_key(TOR_PREFIX),
        "{what}: the pinned FIB keeps {TOR_PREFIX}: {fib:?}"
    );
    assert!(
        fib.kernel.iter().any(|route| route.starts_with(TOR_PREFIX)),
        "{what}: the host's kernel keeps {TOR_PREFIX} (protocol 201): {:?}",
        fib.kernel
    );
}

/// After an engine change the FIB lists its routes in another shape: the same forwarding
/// for every address of interest, the same kernel routes, no adopted entry left.
fn check_same_forwarding(lab: &RestartLab, what: &str, before: &restart_lab::FibSnapshot) {
    let after = lab.fib();
    let differences = before.forwarding_differences(&after);
    assert!(
        differences.is_empty(),
        "{what}: the FIB forwards otherwise than before:\n{}",
        differences.join("\n")
    );
    assert_eq!(after.kernel, before.kernel, "{what}: kernel routes");
    assert_eq!(
        lab.leftover_adopted(),
        Some(0),
        "{what}: {}",
        lab.show("status")
    );
}

fn check_same_fib(lab: &RestartLab, what: &str, before: &restart_lab::FibSnapshot) {
    let after = lab.fib();
    assert_eq!(
        &after, before,
        "{what}: the FIB after the restart differs from the FIB before"
    );
    assert_eq!(
        lab.leftover_adopted(),
        Some(0),
        "{what}: {}",
        lab.show("status")
    );
}

/// The three restarts, in turn, against one ToR.
fn agent_restarts(tag: &str, tor: TorKind) {
    let Some(mut lab) = lab_up(tag, tor, "lpm-trie") else {
        return;
    };
    let before = lab.fib();

    // Planned: SIGTERM under --keep-datapath, away for a while, then a fresh run.
    let what = format!("{tor:?}: planned restart (SIGTERM, run)");
    let marks = lab.marks();
    lab.stop_agent_planned();
    thread::sleep(AWAY);
    check_away(&lab, &what);
    lab.start_agent();
    lab.wait_clean(&format!("{what}: back and swept"), UP);
    check_losses(&lab, &what, &marks, 0);
    check_same_fib(&lab, &what, &before);

    // `router-agent restart`: the same in place; the ToR's RIB is sampled until the agent is
    // back and must hold the host's prefix in every sample.
    let what = format!("{tor:?}: router-agent restart");
    let marks = lab.marks();
    lab.restart_command();
    let started = Instant::now();
    let mut samples = 0;
    let mut stale_seen = false;
    while started.elapsed() < UP {
        let view = lab.host_route();
        samples += 1;
        stale_seen |= view.stale;
        assert!(
            view.present,
            "{what}: the ToR withdrew the host's prefix after {:?}:\n{}\n{}",
            started.elapsed(),
            view.raw,
            lab.logs()
        );
        if !view.stale && lab.neighbor_state() == "Established" && lab.leftover_adopted() == Some(0)
        {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{what}: {samples} samples of the ToR's RIB, stale seen: {stale_seen}");
    lab.wait_clean(&format!("{what}: back and swept"), UP);
    check_losses(&lab, &what, &marks, 0);
    check_same_fib(&lab, &what, &before);

    // kill -9: nothing said to anyone; the next start adopts what the dead one left.
    let what = format!("{tor:?}: kill -9, run");
    let marks = lab.marks();
    lab.kill_agent();
    thread::sleep(AWAY);
    check_away(&lab, &what);
    lab.start_agent();
    lab.wait_clean(&format!("{what}: back and swept"), UP);
    check_losses(&lab, &what, &marks, KILL_LOSS_BOUND);
    check_same_fib(&lab, &what, &before);

    // `router-agent stop` is the full stop whatever --keep-datapath says: the ToR is told to
    // drop the host's prefix at once (no graceful restart), the pins and kernel routes go.
    lab.stop_command();
    netns::wait_for(
        &format!("{tor:?}: the ToR withdraws the host's prefix after a full stop"),
        Duration::from_secs(10),
        || !lab.host_route().present,
        || format!("{}\n{}", lab.host_route().raw, lab.logs()),
    );
    assert!(
        !lab.net.pin_dir.exists() || lab.net.pin_dir.read_dir().unwrap().next().is_none(),
        "{tor:?}: the full stop unpins everything: {:?}",
        lab.net
            .pin_dir
            .read_dir()
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    let kernel = lab
        .net
        .exec("host", &["ip", "-4", "route", "show", "proto", "201"]);
    assert!(
        kernel.trim().is_empty(),
        "{tor:?}: kernel routes after a full stop: {kernel}"
    );
}

#[test]
fn frr_tor_keeps_traffic_across_agent_restarts() {
    agent_restarts("frr", TorKind::Frr);
}

#[test]
fn bird_tor_keeps_traffic_across_agent_restarts() {
    agent_restarts("bird", TorKind::Bird);
}

#[test]
fn gobgp_tor_keeps_traffic_across_agent_restarts() {
    agent_restarts("gobgp", TorKind::Gobgp);
}

/// The agent's paths to the ToR's prefix marked stale in `show routes`.
fn stale_paths(lab: &RestartLab) -> usize {
    lab.show("routes")
        .as_array()
        .into_iter()
        .flatten()
        .filter(|route| route["prefix"] == TOR_PREFIX)
        .flat_map(|route| route["paths"].as_array().cloned().unwrap_or_default())
        .filter(|path| path["stale"] == true)
        .count()
}

/// FRR's bgpd dies and comes back with graceful restart (zebra keeps its kernel routes): the
/// agent, as helper, keeps the ToR's routes in XDP, marked stale, until the ToR's End-of-RIB.
#[test]
fn frr_bgpd_restart_with_the_agent_as_helper() {
    let Some(lab) = lab_up("torgr", TorKind::Frr, "lpm-trie") else {
        return;
    };
    let before = lab.fib();
    let frr = lab.tor().frr().expect("FRR");
    let marks = lab.marks();
    frr.kill_bgpd();
    // While bgpd is away: the session is down, the route stays in XDP and in the agent's RIB
    // marked stale; the ToR's kernel keeps forwarding to the host if zebra kept its route.
    let mut tor_kernel_kept = true;
    let away = Instant::now();
    let mut stale_marked = false;
    while away.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            lab.fib_vias(TOR_PREFIX).len(),
            1,
            "{TOR_PREFIX} stays in XDP while the ToR restarts: {:?}\n{}",
            lab.fib(),
            lab.logs()
        );
        tor_kernel_kept &= lab.tor().kernel_has_host_route(&lab.net);
        let routes = lab.show("routes").to_string();
        assert!(
            routes.contains(TOR_PREFIX),
            "the agent's RIB keeps {TOR_PREFIX}: {routes}"
        );
        stale_marked |= stale_paths(&lab) > 0;
        thread::sleep(Duration::from_millis(200));
    }
    assert!(
        stale_marked,
        "`show routes` marks {TOR_PREFIX} stale while the ToR restarts: {}",
        lab.show("routes")
    );
    frr.start_bgpd(&lab.net);
    // Back: the session, the ToR's End-of-RIB (the route no longer stale), the same FIB.
    let what = "FRR bgpd restart";
    lab.wait_clean(&format!("{what}: the session back"), UP);
    netns::wait_for(
        "the ToR's route no longer stale",
        Duration::from_secs(30),
        || stale_paths(&lab) == 0 && lab.show("routes").to_string().contains(TOR_PREFIX),
        || format!("{}\n{}", lab.show("routes"), lab.logs()),
    );
    assert_eq!(lab.fib_vias(TOR_PREFIX).len(), 1);
    assert!(lab.fib_vias(TOR_PREFIX)[0].contains(TOR_LINK));
    let losses = lab.losses_since(&marks);
    for (probe, loss, ranges) in &losses {
        eprintln!("{what}: {probe}: {loss} {ranges}");
    }
    // Through the host (XDP) nothing may be lost; towards the host only if the ToR's own
    // forwarding stopped (zebra dropped its route).
    assert_eq!(
        losses[0].1.lost, 0,
        "{what}: {}: {}",
        losses[0].0, losses[0].2
    );
    if tor_kernel_kept {
        assert_eq!(
            losses[1].1.lost, 0,
            "{what}: {}: {}",
            losses[1].0, losses[1].2
        );
    } else {
        eprintln!("{what}: zebra did not keep 10.1.0.0/24 in the ToR's kernel: not asserted");
    }
    check_same_fib(&lab, what, &before);
}

/// An upgrade whose XDP program differs: the engine changes between runs (lpm-trie ->
/// dir24 by SIGTERM and run, dir24 -> lpm-trie by `router-agent restart`), the new program
/// replaces the old one behind the pinned link, the maps are adopted: nothing lost.
#[test]
fn upgrade_to_another_xdp_program_loses_nothing() {
    let Some(mut lab) = lab_up("upgrade", TorKind::Bird, "lpm-trie") else {
        return;
    };
    let before = lab.fib();
    assert_eq!(lab.show("fib")["engine"], "lpm-trie");

    let what = "upgrade lpm-trie -> dir24 (SIGTERM, run)";
    let marks = lab.marks();
    lab.stop_agent_planned();
    lab.write_config("dir24");
    lab.start_agent();
    lab.wait_clean(&format!("{what}: back and swept"), UP);
    check_losses(&lab, what, &marks, 0);
    assert_eq!(lab.show("fib")["engine"], "dir24", "{what}");
    check_same_forwarding(&lab, what, &before);

    let what = "upgrade dir24 -> lpm-trie (router-agent restart)";
    let marks = lab.marks();
    lab.write_config("lpm-trie");
    lab.restart_command();
    netns::wait_for(
        "the re-executed agent on lpm-trie",
        UP,
        || lab.show("fib")["engine"] == "lpm-trie",
        || lab.logs(),
    );
    lab.wait_clean(&format!("{what}: back and swept"), UP);
    check_losses(&lab, what, &marks, 0);
    check_same_fib(&lab, what, &before);
}
