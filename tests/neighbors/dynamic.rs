//! Dynamic neighbors from a range: GoBGP, ExaBGP and BIRD with no per-peer config.

use super::*;

const EXABGP_ASN: u32 = 65020;
const BIRD_ASN: u32 = 65040;

fn start_exabgp(lab: &mut Lab, address: &str) {
    let config = format!(
        r#"neighbor {host} {{
    router-id {address};
    local-address {address};
    local-as {EXABGP_ASN};
    peer-as {HOST_ASN};
    hold-time 9;
    family {{ ipv4 unicast; }}
    static {{ route 198.51.100.3/32 next-hop {address}; }}
}}
"#,
        host = lab.host_ip
    );
    let path = lab.path_str("exabgp.conf");
    fs::write(&path, config).unwrap();
    let mut command = lab.command_in("peer", "exabgp");
    command
        .arg(&path)
        .env("exabgp.daemon.user", "root")
        .env("exabgp.daemon.drop", "false")
        .env("exabgp.daemon.daemonize", "false")
        .env("exabgp.api.cli", "false")
        .env("exabgp.log.destination", "stdout");
    lab.spawn_daemon("exabgp", command);
}

fn start_bird(lab: &mut Lab, address: &str) {
    let config = format!(
        r#"router id {address};
protocol device {{ }}
protocol static {{
    ipv4;
    route 198.51.100.4/32 blackhole;
}}
protocol bgp host {{
    local {address} as {BIRD_ASN};
    neighbor {host} as {HOST_ASN};
    hold time 9;
    connect retry time 1;
    ipv4 {{ import all; export all; }};
}}
"#,
        host = lab.host_ip
    );
    let path = lab.path_str("bird.conf");
    fs::write(&path, config).unwrap();
    let mut command = lab.command_in("peer", "bird");
    command.args(["-f", "-c", &path, "-s", &lab.path_str("bird.ctl")]);
    lab.spawn_daemon("bird", command);
}

/// The agent's dynamic neighbors: address -> state.
fn dynamic_peers(lab: &Lab) -> std::collections::BTreeMap<String, String> {
    agent_neighbors(lab)
        .iter()
        .filter(|n| n["dynamic"] == true)
        .map(|n| {
            (
                n["address"].as_str().unwrap_or("?").to_owned(),
                n["state"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

#[test]
fn dynamic_neighbors_from_a_range() {
    let started = Instant::now();
    let mut lab = Lab::new("dyn", "hdy", "pdy", 63);
    let (gobgp_ip, exabgp_ip, bird_ip, late_ip) =
        ("10.0.63.1", "10.0.63.3", "10.0.63.4", "10.0.63.5");
    for extra in [exabgp_ip, bird_ip, late_ip] {
        lab.exec(
            "peer",
            &[
                "ip",
                "addr",
                "add",
                &format!("{extra}/24"),
                "dev",
                &lab.peer_if,
            ],
        );
    }
    lab.start_agent(&agent_config(
        r#"[bgp.prefix_list.vm-hosts]
ipv4 = [{ action = "permit", prefix = "198.51.100.0/24", ge = 32, le = 32 }]

[[bgp.dynamic_neighbor]]
range = "10.0.63.0/24"
remote_as = "external"
import = { prefix_list = "vm-hosts" }
export = "all"
hold_time = 9
limit = 3
"#,
    ));
    let host = lab.host_ip.clone();
    // Three peers from three addresses, none configured on the agent; none listens (the
    // dynamic peers are passive on the agent's side: they connect).
    GoBgp::start_with(&mut lab, "gobgp", gobgp_ip, &[&host], false);
    start_exabgp(&mut lab, exabgp_ip);
    start_bird(&mut lab, bird_ip);
    for (prefix, next_hop) in [("198.51.100.1/32", gobgp_ip), ("203.0.113.0/24", gobgp_ip)] {
        GoBgp::cli(
            &lab,
            &[
                "global", "rib", "add", prefix, "-a", "ipv4", "nexthop", next_hop,
            ],
        )
        .expect("gobgp global rib add");
    }
    let all_up = || {
        let peers = dynamic_peers(&lab);
        [gobgp_ip, exabgp_ip, bird_ip]
            .iter()
            .all(|ip| peers.get(*ip).is_some_and(|state| state == "Established"))
    };
    wait_for("three dynamic sessions", SESSION, all_up, || {
        format!("{:?}\n{}", agent_neighbors(&lab), lab.logs())
    });
    let allowed = [
        ("198.51.100.1/32", gobgp_ip),
        ("198.51.100.3/32", exabgp_ip),
        ("198.51.100.4/32", bird_ip),
    ];
    wait_for(
        "each peer's allowed route in the XDP FIB",
        ROUTE,
        || {
            allowed
                .iter()
                .all(|(prefix, via)| lab.fib_vias(prefix) == [via.to_string()])
        },
        || lab.fib_and_logs(),
    );
    assert!(
        lab.fib_vias("203.0.113.0/24").is_empty(),
        "the range's prefix list rejects it\n{}",
        lab.fib_and_logs()
    );
    // `show neighbors` marks them.
    let table = lab
        .command_in("host", netns::AGENT)
        .args(["show", "neighbors", "-c"])
        .arg(lab.path("agent.toml"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains(&format!("{bird_ip} (dynamic)")),
        "show neighbors:\n{table}"
    );

    // A fourth peer: the range's limit (3) refuses it.
    GoBgp::start_with(&mut lab, "gobgp-late", late_ip, &[&host], false);
    wait_for(
        "the agent refusing a fourth dynamic peer",
        SESSION,
        || lab.agent_log_count(&["session limit is reached", late_ip]) >= 1,
        || lab.logs(),
    );
    assert_eq!(dynamic_peers(&lab).len(), 3, "{:?}", agent_neighbors(&lab));

    // ExaBGP leaves: its routes and its neighbor entry go; the late peer gets its place.
    lab.stop_daemon("exabgp", libc::SIGTERM);
    wait_for(
        "ExaBGP's route and neighbor gone",
        SESSION,
        || {
            lab.fib_vias("198.51.100.3/32").is_empty()
                && !dynamic_peers(&lab).contains_key(exabgp_ip)
        },
        || format!("{:?}\n{}", agent_neighbors(&lab), lab.fib_and_logs()),
    );
    assert_eq!(lab.fib_vias("198.51.100.1/32"), [gobgp_ip]);
    assert_eq!(lab.fib_vias("198.51.100.4/32"), [bird_ip]);
    wait_for(
        "the late peer in, once there is room",
        SESSION,
        || {
            dynamic_peers(&lab)
                .get(late_ip)
                .is_some_and(|s| s == "Established")
        },
        || format!("{:?}\n{}", agent_neighbors(&lab), lab.logs()),
    );
    eprintln!("dynamic neighbors: {:.1?}", started.elapsed());
}
