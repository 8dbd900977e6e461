//! Connection collisions with FRR and GoBGP, both sides active.

use super::*;

/// A peer daemon the collision rounds drive.
trait Peer {
    const LABEL: &'static str;
    fn start(lab: &mut Lab);
    fn established(lab: &Lab) -> bool;
}

/// The collision rounds (see the module documentation); `agent_neighbor` configures the peer
/// on the agent's side.
fn collision_rounds<P: Peer>(lab: &mut Lab, agent_neighbor: &str, expect_collisions: bool) {
    let started = Instant::now();
    P::start(lab);
    for round in 0..ROUNDS {
        // Frozen, the peer neither connects nor answers; its kernel still accepts.
        lab.signal_daemon(P::LABEL, libc::SIGSTOP);
        if round == 0 {
            lab.start_agent(&agent_config(agent_neighbor));
        }
        let peer_port = format!("{}:179", lab.peer_ip);
        wait_for(
            &format!("round {round}: the agent's connection to the frozen peer"),
            SESSION,
            || {
                lab.bgp_connections("host")
                    .iter()
                    .any(|c| c.ends_with(&peer_port))
            },
            || lab.logs(),
        );
        // The peer's connect timer runs out while it is frozen. Then the agent is frozen and
        // the peer thawed: it answers our connection and opens its own, which the agent's
        // kernel accepts; thawed, the agent has both.
        thread::sleep(Duration::from_secs(3));
        lab.signal_agent(libc::SIGSTOP);
        lab.signal_daemon(P::LABEL, libc::SIGCONT);
        thread::sleep(Duration::from_secs(3));
        lab.signal_agent(libc::SIGCONT);
        wait_for(
            &format!("round {round}: the session, both sides"),
            SESSION,
            || P::established(lab) && agent_state(lab, &lab.peer_ip) == "Established",
            || {
                format!(
                    "host: {:?}\npeer established: {}\nagent: {:?}\n{}",
                    lab.bgp_connections("host"),
                    P::established(lab),
                    agent_neighbors(lab),
                    lab.logs()
                )
            },
        );
        // Let the loser's close and any retry settle, then look at the sockets.
        thread::sleep(Duration::from_secs(4));
        let host = lab.bgp_connections("host");
        let peer = lab.bgp_connections("peer");
        assert_eq!(
            host.len(),
            1,
            "round {round}: host {host:?}\n{}",
            lab.logs()
        );
        assert_eq!(
            peer.len(),
            1,
            "round {round}: peer {peer:?}\n{}",
            lab.logs()
        );
        assert!(
            P::established(lab) && agent_state(lab, &lab.peer_ip) == "Established",
            "round {round}: the surviving connection carries the session: peer {}, agent {}\n{}",
            P::established(lab),
            agent_state(lab, &lab.peer_ip),
            lab.logs()
        );
        // `show neighbors` reports what the session agreed: both sides propose 9 s.
        let negotiated = agent_neighbors(lab)
            .into_iter()
            .find(|n| n["address"] == lab.peer_ip.as_str())
            .map(|n| n["negotiated"].clone())
            .unwrap_or_default();
        let capabilities = negotiated["capabilities"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            negotiated["hold_time_seconds"] == 9
                && negotiated["keepalive_seconds"] == 3
                && capabilities.contains(&Value::from("ipv4-unicast"))
                && capabilities.contains(&Value::from("four-octet-as")),
            "round {round}: negotiated {negotiated}"
        );
        eprintln!(
            "round {round}: one connection left: {}; collisions resolved so far: {}",
            host[0],
            collisions(lab)
        );
        if round + 1 < ROUNDS {
            lab.stop_daemon(P::LABEL, libc::SIGKILL);
            P::start(lab);
        }
    }
    let collisions = collisions(lab);
    eprintln!(
        "{} rounds, {collisions} collisions resolved, {:.1?}",
        ROUNDS,
        started.elapsed()
    );
    assert!(
        collisions >= 1 || !expect_collisions,
        "no collision happened: the test did not test anything\n{}",
        lab.logs()
    );
}

/// Collisions resolved so far, by either side: the agent's log lines for a collision resolved
/// in OpenSent / OpenConfirm or a connection closed because of an Established one, and the
/// peer's logged Cease / Connection Collision Resolution (FRR's log).
fn collisions(lab: &Lab) -> usize {
    let agent = lab.agent_log_count(&["BGP connection collision"])
        + lab.agent_log_count(&["refusing a connection: Established"]);
    let peer = fs::read_to_string(lab.path("frr-bgpd.log"))
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("sent to neighbor") && line.contains("Collision Resolution"))
        .count();
    agent + peer
}

impl Peer for GoBgp {
    const LABEL: &'static str = "gobgp";

    fn start(lab: &mut Lab) {
        let (router_id, host) = (lab.peer_ip.clone(), lab.host_ip.clone());
        GoBgp::start_with(lab, "gobgp", &router_id, &[&host], true);
    }

    fn established(lab: &Lab) -> bool {
        GoBgp::cli(lab, &["neighbor", &lab.host_ip, "-j"])
            .and_then(|out| serde_json::from_str::<Value>(&out).ok())
            .is_some_and(|n| n["state"]["session_state"] == 6)
    }
}

#[test]
fn collisions_with_gobgp_both_active() {
    // GoBGP's identifier (10.0.61.1) is lower than the agent's (192.0.2.20).
    let mut lab = Lab::new("collgo", "hcg", "pcg", 61);
    let neighbor = format!(
        "[[bgp.neighbor]]\naddress = \"{}\"\nremote_as = {GOBGP_ASN}\nimport = \"all\"\n\
         export = \"all\"\nhold_time = 9\n",
        lab.peer_ip
    );
    // GoBGP does not dial while a connection to it is pending: it takes ours, so this checks
    // that both-active restarts converge rather than collisions (FRR's test has those).
    collision_rounds::<GoBgp>(&mut lab, &neighbor, false);
}

impl Peer for Frr {
    const LABEL: &'static str = "bgpd";

    fn start(lab: &mut Lab) {
        let host = lab.host_ip.clone();
        let config = format!(
            "log file {log} debugging\nfrr defaults datacenter\n\
             router bgp {FRR_ASN}\n bgp router-id {FRR_ROUTER_ID}\n no bgp ebgp-requires-policy\n\
             no bgp network import-check\n neighbor {host} remote-as {HOST_ASN}\n\
             neighbor {host} timers 3 9\n neighbor {host} timers connect 1\n\
             address-family ipv4 unicast\n  network 198.51.100.0/24\n exit-address-family\n",
            log = lab.path_str("frr-bgpd.log"),
        );
        fs::write(lab.path("bgpd.conf"), config).unwrap();
        Frr::launch(lab, "");
    }

    fn established(lab: &Lab) -> bool {
        let neighbors = Frr::vtysh(lab, &format!("show bgp neighbors {} json", lab.host_ip));
        neighbors[&lab.host_ip]["bgpState"] == "Established"
    }
}

#[test]
fn collisions_with_frr_both_active() {
    let mut lab = Lab::new("collfrr", "hcf", "pcf", 62);
    let neighbor = format!(
        "[[bgp.neighbor]]\naddress = \"{}\"\nremote_as = {FRR_ASN}\nimport = \"all\"\n\
         export = \"all\"\nhold_time = 9\n",
        lab.peer_ip
    );
    collision_rounds::<Frr>(&mut lab, &neighbor, true);
}
