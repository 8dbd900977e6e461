//! `dynamic_interface_range_with_gobgp_neighbor_interface`: GoBGP configured with
//! `neighbor-interface` only (no address) finds the agent by its Router Advertisements on an
//! `interface =` dynamic range added by reload (no restart); the RAs make the VM namespace see
//! a router but give it no default route (router lifetime 0); removing the range by reload
//! stops them. (The lab is `interop/mod.rs`'s, as in `bgp_neighbors.rs`.)
//!
//! Needs root and `gobgpd`. `HRGX_KEEP_LOGS=1` keeps the lab's directory.

mod interop;
mod netns;

use std::{
    fs, thread,
    time::{Duration, Instant},
};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab};
use netns::wait_for;
use serde_json::Value;

/// Session (re-)establishment on a loaded 2-core machine.
const SESSION: Duration = Duration::from_secs(40);
const ROUTE: Duration = Duration::from_secs(15);
const GOBGP_ASN: u32 = 65010;

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

/// The agent's dynamic neighbors: address -> state.
fn dynamic_peers(lab: &Lab) -> std::collections::BTreeMap<String, String> {
    lab.show("neighbors")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|n: &&Value| n["dynamic"] == true)
        .map(|n| {
            (
                n["address"].as_str().unwrap_or("?").to_owned(),
                n["state"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

/// Router Advertisements received in `role`'s namespace (`/proc/net/snmp6` is the reader's
/// namespace's).
fn ras_received(lab: &Lab, role: &str) -> u64 {
    lab.exec(role, &["cat", "/proc/net/snmp6"])
        .lines()
        .find_map(|line| line.strip_prefix("Icmp6InRouterAdvertisements"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn dynamic_interface_range_with_gobgp_neighbor_interface() {
    let started = Instant::now();
    let mut lab = Lab::new("dynif", "hdi", "pdi", 66);
    let peer_if = lab.peer_if.clone();
    // A VM that takes RAs as a host does (not forwarding, accept_ra 1): a router lifetime
    // other than 0 would give it a default route.
    lab.exec(
        "peer",
        &[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{peer_if}.accept_ra=1"),
        ],
    );
    lab.exec(
        "peer",
        &[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{peer_if}.forwarding=0"),
        ],
    );
    // GoBGP knows only the interface: it takes the peer's link-local address from its
    // neighbor table, which our RAs fill. GTSM, as the agent requires of link-local peers.
    let gobgp = format!(
        r#"[global.config]
  as = {GOBGP_ASN}
  router-id = "{router_id}"
  port = -1

[[neighbors]]
  [neighbors.config]
    neighbor-interface = "{peer_if}"
    peer-as = {HOST_ASN}
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [neighbors.ttl-security.config]
    enabled = true
    ttl-min = 255
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#,
        router_id = lab.peer_ip,
    );

    let without_range = agent_config("");
    lab.start_agent(&without_range);
    wait_for(
        "the agent's control socket",
        SESSION,
        || lab.show("neighbors").is_array(),
        || lab.logs(),
    );
    let reload = |lab: &Lab| {
        let out = lab
            .command_in("host", netns::AGENT)
            .args(["reload", "-c", &lab.path_str("agent.toml")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "reload: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let header = {
        let config = fs::read_to_string(lab.path("agent.toml")).unwrap();
        config[..config.find("[bgp]").unwrap()].to_owned()
    };
    let range = format!(
        "[[bgp.dynamic_neighbor]]\ninterface = \"{}\"\nremote_as = {GOBGP_ASN}\n\
         import = \"all\"\nexport = \"all\"\nhold_time = 9\n",
        lab.host_if
    );
    // No range, no RAs: the VM has heard none (after more than one RA interval).
    thread::sleep(Duration::from_secs(4));
    assert_eq!(ras_received(&lab, "peer"), 0, "RAs without a range");

    // The range added by reload: RAs start, GoBGP finds us and connects.
    fs::write(
        lab.path("agent.toml"),
        format!("{header}{}", agent_config(&range)),
    )
    .unwrap();
    reload(&lab);
    // gobgpd resolves `neighbor-interface` once, when it reads its configuration, from the
    // kernel's neighbor table ("no ipv6 link-local neighbor found" is fatal): only our RAs
    // put the host there.
    let host_link_local = lab.link_local("host", &lab.host_if);
    let neighbors = |lab: &Lab| {
        lab.exec(
            "peer",
            &["ip", "-6", "neigh", "show", "nud", "all", "dev", &peer_if],
        )
    };
    wait_for(
        "the host in the VM's neighbor table, from its RAs",
        ROUTE,
        || {
            neighbors(&lab)
                .lines()
                .any(|line| line.starts_with(&host_link_local) && !line.contains("FAILED"))
        },
        || neighbors(&lab),
    );
    interop::gobgp::spawn(&mut lab, "gobgp", &gobgp);
    let gobgp_established = |lab: &Lab| {
        interop::gobgp::cli_of(lab, "gobgp", &["neighbor", "-j"])
            .ok()
            .and_then(|out| serde_json::from_str::<Value>(&out).ok())
            .and_then(|n| n.as_array().cloned())
            .is_some_and(|n| n.iter().any(|n| n["state"]["session_state"] == 6))
    };
    wait_for(
        "GoBGP (neighbor-interface) established over the interface range",
        SESSION,
        || {
            gobgp_established(&lab)
                && dynamic_peers(&lab)
                    .iter()
                    .any(|(address, state)| address.starts_with("fe80:") && state == "Established")
        },
        || {
            format!(
                "agent: {:?}\nGoBGP: {:?}\n{}",
                dynamic_peers(&lab),
                interop::gobgp::cli_of(&lab, "gobgp", &["neighbor"]).ok(),
                lab.logs()
            )
        },
    );
    // The VM took our RAs as a router's (its neighbor entry says so) and has no default
    // route from them: router lifetime 0.
    wait_for(
        "the VM to mark the host a router",
        ROUTE,
        || {
            neighbors(&lab)
                .lines()
                .any(|line| line.starts_with(&host_link_local) && line.contains("router"))
        },
        || neighbors(&lab),
    );
    let ras = ras_received(&lab, "peer");
    assert!(ras > 0, "no RA received");
    let routes = lab.exec("peer", &["ip", "-6", "route", "show"]);
    assert!(
        !routes.contains("default"),
        "a default route from our RA: {routes}"
    );

    // The range removed by reload: its session ends and the RAs stop.
    fs::write(lab.path("agent.toml"), format!("{header}{without_range}")).unwrap();
    reload(&lab);
    wait_for(
        "the range's session to end",
        ROUTE,
        || dynamic_peers(&lab).is_empty(),
        || format!("{:?}\n{}", dynamic_peers(&lab), lab.logs()),
    );
    let after_removal = ras_received(&lab, "peer");
    // Two RA intervals (3 s each).
    thread::sleep(Duration::from_secs(7));
    assert_eq!(
        ras_received(&lab, "peer"),
        after_removal,
        "RAs still sent after the range was removed"
    );
    eprintln!(
        "dynamic interface range: {ras} RAs heard, {:.1?}",
        started.elapsed()
    );
}
