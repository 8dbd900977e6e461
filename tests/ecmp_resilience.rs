//! Resilient ECMP through real BGP peers (issue 8): three ToRs, FRR (AS 65001), BIRD 2
//! (AS 65002) and GoBGP (AS 65003), announce the same anycast prefix to router-agent
//! (AS 65101), which forwards it over a 3-way group (64 buckets: 22/21/21). For every way a
//! next hop can leave the set (a BGP withdrawal, a session going down, a policy change by
//! `router-agent reload`, a link going down, a neighbor entry failing) only the flows that
//! were on it may move, and they spread over the survivors; when it comes back, the only
//! flows that move are those moving to it. Needs root, FRR, BIRD and gobgpd.
//!
//! ```text
//!   client ── c0 ═══ hc ── [host: router-agent AS 65101] ── h1 ═══ t1 ── tor1 (FRR)
//!                                                        ├─ h2 ═══ t2 ── tor2 (BIRD)
//!                                                        └─ h3 ═══ t3 ── tor3 (GoBGP)
//! ```
//!
//! No traffic is sent: each of 200 UDP flows (source ports 20000..20199) runs through the
//! attached XDP program with BPF_PROG_TEST_RUN, as received on hc, and the rewritten
//! destination MAC tells which ToR it goes to (see `scenarios/flows.rs`).

mod ecmp_lab;
mod interop;
mod netns;
mod scenarios;

use ecmp_lab::{ANYCAST, EcmpLab, MIN_JOIN_FLOWS, SESSIONS, tor_address};
use netns::wait_for;
use scenarios::flows::{FlowTable, check_join, check_leave};

/// Each step's outcome: (step, None if resilient or the problem with both flow tables).
type Outcomes = Vec<(String, Option<String>)>;

/// A next hop leaves: waits for the survivors to hold all buckets, then checks the flows.
fn leave(
    lab: &EcmpLab,
    outcomes: &mut Outcomes,
    step: &str,
    before: &FlowTable,
    leaver: &str,
    survivors: &[&str],
) -> FlowTable {
    lab.wait_for_set(
        survivors,
        &format!("{step}: the route over {survivors:?} only"),
    );
    let after = lab.table();
    outcomes.push((
        step.to_owned(),
        check_leave(before, &after, leaver, survivors),
    ));
    after
}

/// A next hop joins: waits for all three to hold buckets, then checks the flows.
fn join(
    lab: &EcmpLab,
    outcomes: &mut Outcomes,
    step: &str,
    before: &FlowTable,
    joiner: &str,
) -> FlowTable {
    lab.wait_for_set(
        &["frr", "bird", "gobgp"],
        &format!("{step}: the route over all three ToRs"),
    );
    let after = lab.table();
    outcomes.push((
        step.to_owned(),
        check_join(before, &after, joiner, MIN_JOIN_FLOWS),
    ));
    after
}

/// A next hop already out of the set loses its BGP session too (its path is withdrawn):
/// waits for the session to leave Established, then checks that no flow moved.
fn session_lost(
    lab: &EcmpLab,
    outcomes: &mut Outcomes,
    step: &str,
    before: &FlowTable,
    label: &str,
) -> FlowTable {
    let address = tor_address(label);
    wait_for(
        &format!("{step}: {label}'s session down"),
        SESSIONS,
        || lab.session_state(address) != "Established",
        || lab.logs(),
    );
    let after = lab.table();
    let moved = before.moves(&after);
    let problem = (!moved.is_empty()).then(|| {
        format!(
            "{} flows moved (must be 0)\n{}",
            moved.len(),
            before.side_by_side(&after)
        )
    });
    outcomes.push((step.to_owned(), problem));
    after
}

#[test]
fn a_leaving_or_joining_next_hop_moves_only_its_own_flows_whatever_the_cause() {
    let mut lab = EcmpLab::new();
    lab.start_tors();
    lab.start_agent();
    lab.wait_for_set(
        &["frr", "bird", "gobgp"],
        "a 3-way group over FRR, BIRD and GoBGP",
    );
    let mut table = lab.table();
    let spread = table.spread();
    assert_eq!(
        spread.keys().collect::<Vec<_>>(),
        ["bird", "frr", "gobgp"],
        "every flow redirected to one of the three ToRs: {spread:?}\n{:?}",
        table
    );
    assert!(
        spread.values().all(|n| *n >= 40),
        "an even spread: {spread:?}"
    );
    eprintln!("3-way group: {:?} buckets, flows {spread:?}", lab.buckets());

    let all = ["frr", "bird", "gobgp"];
    let without =
        |leaver: &str| -> Vec<&str> { all.iter().copied().filter(|l| *l != leaver).collect() };
    let mut outcomes: Outcomes = Vec::new();

    // (a) BGP withdrawal: GoBGP withdraws the prefix, then announces it again.
    lab.gobgp(&["global", "rib", "del", "-a", "ipv4", ANYCAST]);
    table = leave(
        &lab,
        &mut outcomes,
        "(a) GoBGP withdraws",
        &table,
        "gobgp",
        &without("gobgp"),
    );
    lab.gobgp(&[
        "global", "rib", "add", "-a", "ipv4", ANYCAST, "origin", "igp",
    ]);
    table = join(
        &lab,
        &mut outcomes,
        "(a) GoBGP re-announces",
        &table,
        "gobgp",
    );

    // (a') The same from FRR: `no network`, then `network` again.
    let frr_network = |no: &str| {
        lab.vtysh(&[
            "configure terminal",
            "router bgp 65001",
            "address-family ipv4 unicast",
            &format!("{no}network {ANYCAST}"),
        ])
    };
    frr_network("no ");
    table = leave(
        &lab,
        &mut outcomes,
        "(a') FRR withdraws",
        &table,
        "frr",
        &without("frr"),
    );
    frr_network("");
    table = join(&lab, &mut outcomes, "(a') FRR re-announces", &table, "frr");

    // (b) Session down: BIRD's BGP protocol disabled (Cease), then enabled again.
    lab.birdc("disable host");
    table = leave(
        &lab,
        &mut outcomes,
        "(b) BIRD session down",
        &table,
        "bird",
        &without("bird"),
    );
    lab.birdc("enable host");
    table = join(&lab, &mut outcomes, "(b) BIRD session up", &table, "bird");

    // (c) Policy: a reload whose import policy rejects FRR's path, then accepts it again.
    lab.reload(Some("frr"));
    table = leave(
        &lab,
        &mut outcomes,
        "(c) reload rejects FRR",
        &table,
        "frr",
        &without("frr"),
    );
    lab.reload(None);
    table = join(&lab, &mut outcomes, "(c) reload accepts FRR", &table, "frr");

    // (d) Link down at GoBGP's end: the nexthop fails at once; its BGP session ends too
    // (fast external fallover) and the path is withdrawn, which must move nothing more. Then
    // the link comes back.
    lab.exec("tor3", &["ip", "link", "set", "t3", "down"]);
    table = leave(
        &lab,
        &mut outcomes,
        "(d) GoBGP's link down",
        &table,
        "gobgp",
        &without("gobgp"),
    );
    table = session_lost(
        &lab,
        &mut outcomes,
        "(d) GoBGP's session lost after its link",
        &table,
        "gobgp",
    );
    lab.exec("tor3", &["ip", "link", "set", "t3", "up"]);
    table = join(
        &lab,
        &mut outcomes,
        "(e) GoBGP's link up, session back",
        &table,
        "gobgp",
    );

    // (f) Neighbor failure: BIRD's ToR stops answering ARP and the host's entry for it
    // fails; its session times out later, which must move nothing more. Then ARP is back.
    lab.exec("tor2", &["ip", "link", "set", "t2", "arp", "off"]);
    lab.exec(
        "host",
        &[
            "ip", "neigh", "change", "10.0.2.1", "dev", "h2", "nud", "failed",
        ],
    );
    table = leave(
        &lab,
        &mut outcomes,
        "(f) BIRD's neighbor entry failed",
        &table,
        "bird",
        &without("bird"),
    );
    table = session_lost(
        &lab,
        &mut outcomes,
        "(f) BIRD's session lost after its neighbor",
        &table,
        "bird",
    );
    lab.exec("tor2", &["ip", "link", "set", "t2", "arp", "on"]);
    join(
        &lab,
        &mut outcomes,
        "(f) BIRD reachable again, session back",
        &table,
        "bird",
    );

    let mut failed = String::new();
    for (step, problem) in &outcomes {
        let first = problem
            .as_deref()
            .map_or("ok", |p| p.lines().next().unwrap_or(""));
        eprintln!("{step}: {first}");
        if let Some(problem) = problem {
            failed.push_str(&format!("=== {step}: {problem}\n"));
        }
    }
    assert!(
        failed.is_empty(),
        "flows moved that must not have:\n{failed}"
    );
}
