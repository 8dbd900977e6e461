//! Drain (RFC 8326 graceful shutdown) end to end: two hosts announce the same anycast VIP to
//! one ToR, a client opens TCP connections to it all along, and draining one host moves the
//! traffic to the other with no connection lost.
//!
//! ```text
//!   client ── c0 ═══ tc ── tor ── ta ═══ ha ── [hostA: agent AS 65101] ── hab ═══ ba ── backendA
//!                             └─ tb ═══ hb ── [hostB: agent AS 65101] ── hbb ═══ bb ── backendB
//! ```
//!
//! Each backend holds the VIP (198.51.100.53) and answers on TCP 8080; each host routes the
//! VIP to its backend (XDP, whose per-nexthop counters say which host carries the traffic)
//! and announces it (`[[bgp.originate]]`). The ToR installs both paths (ECMP, L4 hash).
//!
//! - `drain_with_frr`: FRR with the RFC 8326 receiver policy (GRACEFUL_SHUTDOWN → LOCAL_PREF
//!   0). `drain --wait` on A: the ToR forwards to B only while A's path is still there, tagged
//!   65535:0; A's backend stops getting packets, B's gets them; `undrain` brings A back;
//!   `--withdraw-after` withdraws A's path later; `restart` while drained comes back drained
//!   (the state file); `stop` with `on_stop` tags the path before the session ends. No client
//!   connection fails at any point.
//! - `drain_with_bird`: BIRD without that policy; `drain.prepend = 2` makes A's path longer,
//!   so the ToR prefers B by AS path length alone.
//!
//! Needs root, FRR and BIRD. `HRGX_KEEP_LOGS=1` keeps the lab's directory.

mod drain_lab;
mod netns;

use std::{
    fs, thread,
    time::{Duration, Instant},
};

use drain_lab::{A, B, CONVERGE, Lab, SESSION, Tor, VIP};
use netns::wait_for;
use serde_json::Value;

/// `drain --wait` on A (options `extra`): the ToR forwards to B only while A's path stays,
/// tagged; A's backend stops getting packets while B's gets them.
fn drain_a_moves_traffic_to_b(lab: &Lab, extra: &[&str], expect_length: Option<usize>) {
    let mut args = vec!["drain", "--wait", "--max-wait", "8s"];
    args.extend_from_slice(extra);
    let drained_at = Instant::now();
    let answer = lab.cli_ok(A, &args);
    assert_eq!(answer["peers_flushed"], 1, "{answer}");
    assert_eq!(answer["peers_timed_out"], 0, "{answer}");
    assert!(!answer["drained"]["all"].is_null(), "{answer}");
    if extra.contains(&"--wait-traffic") {
        // Answered once A's backend nexthop went quiet: the ToR has moved already.
        let traffic = &answer["traffic"];
        assert_eq!(traffic["nexthops"], 1, "{answer}");
        assert_eq!(traffic["idle"], true, "{answer}\n{}", lab.logs());
        assert_eq!(lab.tor_vias(), [B.address()], "{answer}");
        eprintln!(
            "drain --wait-traffic answered after {:.1?}: {traffic}",
            drained_at.elapsed()
        );
    }
    lab.wait_tor_vias("the ToR forwarding to B only", &[B], CONVERGE);
    let converged = drained_at.elapsed();
    let (gshut, length) = lab.path_of(A).expect("A's path kept while drained");
    assert!(gshut, "A's path not tagged 65535:0: {:?}", lab.tor_paths());
    if let Some(expect) = expect_length {
        assert_eq!(length, expect, "{:?}", lab.tor_paths());
    }
    // Connections already in flight to A finish; then A gets nothing.
    thread::sleep(Duration::from_millis(500));
    let (a0, b0) = (lab.backend_packets(A), lab.backend_packets(B));
    thread::sleep(Duration::from_secs(2));
    let (a1, b1) = (lab.backend_packets(A), lab.backend_packets(B));
    assert!(b1 > b0 + 100, "B's backend got {} packets", b1 - b0);
    assert!(
        (a1 - a0) * 100 <= b1 - b0,
        "A's backend got {} packets while drained, B's {}",
        a1 - a0,
        b1 - b0
    );
    eprintln!(
        "drained: ToR on B only {converged:.1?} after `drain --wait`; 2 s later: A +{} B +{} packets; {}",
        a1 - a0,
        b1 - b0,
        lab.counts()
    );
    assert_eq!(lab.failures(), 0, "{}", lab.counts());
}

fn undrain_a(lab: &Lab) {
    let answer = lab.cli_ok(A, &["undrain"]);
    assert!(answer["drained"]["all"].is_null(), "{answer}");
    lab.wait_tor_vias("ECMP to both hosts again after undrain", &[A, B], CONVERGE);
    assert_eq!(lab.path_of(A).map(|p| p.0), Some(false));
}

#[test]
fn drain_with_frr() {
    let started = Instant::now();
    let mut lab = Lab::new("frr", Tor::Frr);
    lab.bring_up(0);
    let status = lab.show(A, "status");
    assert!(status["drain"]["all"].is_null(), "{status}");

    drain_a_moves_traffic_to_b(&lab, &["--wait-traffic", "--idle-below", "5"], None);
    let status = lab.show(A, "status");
    assert!(!status["drain"]["all"].is_null(), "{status}");
    undrain_a(&lab);

    // Withdrawn after a while: tagged first, then gone from the ToR's table.
    lab.cli_ok(A, &["drain", "--withdraw-after", "2s"]);
    wait_for(
        "A's path tagged",
        CONVERGE,
        || lab.path_of(A) == Some((true, 1)),
        || format!("{:?}", lab.tor_paths()),
    );
    let tagged_at = Instant::now();
    wait_for(
        "A's path withdrawn",
        CONVERGE,
        || lab.path_of(A).is_none(),
        || format!("{:?}\n{}", lab.tor_paths(), lab.logs()),
    );
    let withdrawn_after = tagged_at.elapsed();
    assert!(
        withdrawn_after >= Duration::from_millis(800),
        "withdrawn {withdrawn_after:?} after being tagged"
    );
    undrain_a(&lab);

    // A planned restart while drained comes back drained (the state file).
    lab.cli_ok(A, &["drain"]);
    wait_for(
        "A's path tagged",
        CONVERGE,
        || lab.path_of(A) == Some((true, 1)),
        || format!("{:?}", lab.tor_paths()),
    );
    let state: Value =
        serde_json::from_str(&fs::read_to_string(lab.net.path("drain-a.json")).unwrap()).unwrap();
    assert_eq!(state["version"], 1, "{state}");
    assert!(!state["all"].is_null(), "{state}");
    // A reload moving the state file takes the drain along (the restart reads the new one).
    let config = fs::read_to_string(lab.config_path(A)).unwrap();
    fs::write(
        lab.config_path(A),
        config.replace("drain-a.json", "drain-a2.json"),
    )
    .unwrap();
    lab.cli_ok(A, &["reload"]);
    let moved: Value =
        serde_json::from_str(&fs::read_to_string(lab.net.path("drain-a2.json")).unwrap()).unwrap();
    assert!(!moved["all"].is_null(), "{moved}");
    let (ok, text) = lab.cli(A, &["restart"]);
    assert!(ok, "restart: {text}");
    wait_for(
        "A's agent back, drained, its session up again",
        SESSION,
        || {
            !lab.show(A, "status")["drain"]["all"].is_null()
                && lab.show(A, "neighbors")[0]["state"] == "Established"
        },
        || lab.logs(),
    );
    assert!(
        fs::read_to_string(lab.net.path("agent-a.log"))
            .unwrap()
            .contains("starting drained"),
        "{}",
        lab.logs()
    );
    // What FRR holds now came from the new process (not a path kept stale over the graceful
    // restart), and it is tagged.
    wait_for(
        "A's path from the restarted agent, tagged",
        CONVERGE,
        || {
            let json = lab.vtysh(&format!("show bgp ipv4 unicast {VIP}/32 json"));
            json["paths"].as_array().into_iter().flatten().any(|p| {
                p["peer"]["peerId"] == A.address().as_str()
                    && p["stale"].as_bool() != Some(true)
                    && p["community"]["string"]
                        .as_str()
                        .is_some_and(|c| c.contains("graceful-shutdown"))
            })
        },
        || {
            format!(
                "{}",
                lab.vtysh(&format!("show bgp ipv4 unicast {VIP}/32 json"))
            )
        },
    );
    assert_eq!(lab.tor_vias(), [B.address()]);
    undrain_a(&lab);

    // A full stop with on_stop: tagged while the session is still up, then gone.
    let (ok, text) = lab.cli(A, &["stop"]);
    assert!(ok, "stop: {text}");
    let stop_at = Instant::now();
    let mut tagged_while_up = false;
    while stop_at.elapsed() < CONVERGE {
        match lab.path_of(A) {
            Some((true, _)) => tagged_while_up = true,
            None => break,
            Some((false, _)) => {}
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        tagged_while_up,
        "no GRACEFUL_SHUTDOWN before A's session ended\n{}",
        lab.logs()
    );
    lab.wait_tor_vias("B only after A stopped", &[B], CONVERGE);
    assert_eq!(lab.failures(), 0, "{}", lab.counts());
    eprintln!(
        "drain with FRR: {}, {:.1?}",
        lab.counts(),
        started.elapsed()
    );
}

#[test]
fn drain_with_bird() {
    let started = Instant::now();
    let mut lab = Lab::new("bird", Tor::Bird);
    lab.bring_up(2);
    // No receiver policy at BIRD: the prepends alone move the traffic.
    drain_a_moves_traffic_to_b(&lab, &[], Some(3));
    undrain_a(&lab);
    assert_eq!(lab.failures(), 0, "{}", lab.counts());
    eprintln!(
        "drain with BIRD: {}, {:.1?}",
        lab.counts(),
        started.elapsed()
    );
}
