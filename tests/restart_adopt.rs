//! Restarts that adopt the previous run's datapath, with GoBGP as the peer the routes come
//! from (see `interop/mod.rs` for the lab):
//! - `--keep-datapath` SIGTERM leaves the program attached, the maps pinned with a stamp that
//!   says "restarting" and the BGP nexthops' owners recorded; the next start adopts the
//!   previous BGP routes at once (before any session is back) and the FIB is as before;
//! - `router-agent restart` does the same in place (same PID);
//! - an upgrade from layout version 2 (no `DXR6_SUB`) adopts too;
//! - a corrupted stamp is a cold start with one clear line, never a crash;
//! - `router-agent stop` is a full stop whatever the flag.
//!
//! Needs root and gobgpd.

mod interop;
mod netns;

use std::{
    collections::BTreeMap,
    fs,
    net::Ipv4Addr,
    path::Path,
    process::Child,
    time::{Duration, Instant},
};

use aya::maps::{Array, Map, MapData};
use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab};
use netns::{AGENT, process_alive, sh, spawn_logged, wait_for};
use router_common::{
    DatapathStamp, LAYOUT_VERSION, NexthopOwner, OWNER_BGP, OWNER_F_PEER_UNKNOWN, STAMP_MAGIC,
    STAMP_RESTARTING, map_names,
};

const GOBGP_ASN: u32 = 65050;
const LEARNED: [&str; 2] = ["198.18.0.0/24", "198.18.7.0/24"];
const SESSION: Duration = Duration::from_secs(30);
const ADOPTED: &str = "adopted the previous datapath";

fn config(lab: &Lab, engine: &str) -> String {
    format!(
        r#"[datapath]
engine = "{engine}"
pin_dir = "{pin_dir}"
[control]
socket = "{socket}"
[[interface]]
name = "{interface}"

[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_PREFIX}" }}]
[bgp.graceful_restart]
selection_deferral = "8s"
[[bgp.neighbor]]
address = "{peer}"
remote_as = {GOBGP_ASN}
import = "all"
export = "all"
hold_time = 9
"#,
        pin_dir = lab.net.pin_dir.display(),
        socket = lab.path_str("agent.sock"),
        interface = lab.host_if,
        peer = lab.peer_ip,
    )
}

/// Starts the agent with `--keep-datapath`; its log goes on in `agent.log`.
fn start_agent(lab: &Lab) -> Child {
    let mut command = lab.command_in("host", AGENT);
    command
        .args(["run", "--keep-datapath", "-c", &lab.path_str("agent.toml")])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    spawn_logged(command, &lab.path("agent.log"))
}

/// Waits for the agent to exit by itself (after a signal or a `stop`).
fn wait_exit(lab: &Lab, agent: &mut Child) {
    let start = Instant::now();
    while agent.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the agent did not exit\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn term(lab: &Lab, agent: &mut Child) {
    // SAFETY: kill(2) on our own, unreaped child.
    unsafe { libc::kill(agent.id() as libc::pid_t, libc::SIGTERM) };
    wait_exit(lab, agent);
}

fn open_array<V: aya::Pod>(pin_dir: &Path, name: &str) -> Array<MapData, V> {
    let data = MapData::from_pin(pin_dir.join(name)).unwrap();
    Array::try_from(Map::from_map_data(data).unwrap()).unwrap()
}

fn stamp(pin_dir: &Path) -> DatapathStamp {
    open_array::<DatapathStamp>(pin_dir, map_names::STAMP)
        .get(&0, 0)
        .unwrap()
}

/// The BGP peers NEXTHOP_OWNERS names (IPv4 ones; None: a BGP session's nexthop whose peer
/// address the FIB was not told).
fn owner_peers(pin_dir: &Path) -> Vec<Option<Ipv4Addr>> {
    let owners = open_array::<NexthopOwner>(pin_dir, map_names::NEXTHOP_OWNERS);
    let mut peers: Vec<Option<Ipv4Addr>> = owners
        .iter()
        .filter_map(Result::ok)
        .filter(|owner| owner.kind == OWNER_BGP)
        .map(|owner| {
            (owner.flags & OWNER_F_PEER_UNKNOWN == 0)
                .then(|| Ipv4Addr::new(owner.peer[0], owner.peer[1], owner.peer[2], owner.peer[3]))
        })
        .collect();
    peers.sort();
    peers.dedup();
    peers
}

fn learned_in(fib: &BTreeMap<String, Vec<String>>, peer: &str) -> bool {
    LEARNED
        .iter()
        .all(|prefix| fib.get(*prefix).is_some_and(|vias| vias == &[peer]))
}

/// Polls the FIB and the kernel routes until the `count`th "adoption over": both must stay
/// `fib` and `kernel` the whole time, the session must be back by then (its routes took over
/// before the deferral swept the adopted ones), and nothing is flushed from the kernel.
/// A kernel route of our protocol that no run of the agent installed: put there while the agent
/// is away, as a route the previous run held and the peer withdrew meanwhile.
const STRAY: &str = "10.0.77.0/24";

fn without_stray(routes: &str) -> String {
    routes
        .lines()
        .filter(|line| !line.starts_with(STRAY))
        .map(|line| format!("{line}\n"))
        .collect()
}

fn fib_steady_until_adoption_over(
    lab: &Lab,
    fib: &BTreeMap<String, Vec<String>>,
    kernel: &str,
    count: usize,
) {
    let start = Instant::now();
    while lab.agent_log_count(&["adoption over"]) < count {
        assert!(
            start.elapsed() < SESSION,
            "no end of adoption\n{}",
            lab.logs()
        );
        // `show fib` opens the pinned maps one by one, and a starting agent replaces the pins
        // one by one: a read that straddles the swap mixes two runs' group ids (the XDP
        // program itself holds one run's maps). A real difference is still there 50 ms later.
        let mut now = lab.fib();
        if &now != fib {
            std::thread::sleep(Duration::from_millis(50));
            now = lab.fib();
        }
        assert_eq!(&now, fib, "{}", lab.logs());
        assert_eq!(
            without_stray(&lab.kernel_routes()),
            without_stray(kernel),
            "{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(&lab.fib(), fib, "{}", lab.logs());
    // A route of ours the FIB does not hold (the previous run's, withdrawn meanwhile) goes
    // once the adoption is over, listed in the background and deleted in the kernel
    // writer's order.
    wait_for(
        "the previous run's stray kernel route removed",
        Duration::from_secs(5),
        || lab.kernel_routes() == kernel,
        || format!("{}\n{}", lab.kernel_routes(), lab.logs()),
    );
    assert_eq!(
        lab.agent_log_count(&["selection deferral over", "swept=2"]),
        count,
        "the adopted routes waited behind the fresh ones until the deferral\n{}",
        lab.logs()
    );
    assert_eq!(
        lab.agent_log_count(&["removed kernel routes a previous run left behind"]),
        0,
        "{}",
        lab.logs()
    );
}

#[test]
fn restarts_adopt_the_previous_datapath_and_refuse_a_corrupted_one() {
    restarts(Lab::new("adopt", "ah", "ap", 74), "lpm-trie");
}

/// The same over DIR-24-8: IPv4 routes are read back from the expanded tables.
#[test]
fn restarts_adopt_dir24_tables() {
    restarts(Lab::new("adopt24", "ah", "ap", 75), "dir24");
}

/// The same over DXR: both families are read back from the range tables.
#[test]
fn restarts_adopt_dxr_tables() {
    restarts(Lab::new("adoptdxr", "ah", "ap", 76), "dxr");
}

fn restarts(mut lab: Lab, engine: &str) {
    interop::gobgp::start(&mut lab, GOBGP_ASN, 1);
    for prefix in LEARNED {
        interop::gobgp::cli(&lab, &["global", "rib", "add", "-a", "ipv4", prefix]).unwrap();
    }
    fs::write(lab.path("agent.toml"), config(&lab, engine)).unwrap();
    sh(&[AGENT, "check", "-c", &lab.path_str("agent.toml")]);
    let pin_dir = lab.net.pin_dir.clone();
    let peer = lab.peer_ip.clone();

    let mut agent = start_agent(&lab);
    wait_for(
        "the session and GoBGP's routes in the FIB",
        SESSION,
        || learned_in(&lab.fib(), &peer),
        || lab.fib_and_logs(),
    );
    let before = lab.fib();
    let kernel_before = lab.kernel_routes();
    assert!(kernel_before.contains(LEARNED[0]), "{kernel_before}");
    // The session names its peer to the FIB (`Fib::name_owner`, called by BGP's southbound
    // when a session is established): the next run sweeps per peer address.
    let owners = owner_peers(&pin_dir);
    assert_eq!(
        owners,
        [Some(peer.parse::<Ipv4Addr>().unwrap())],
        "one BGP owner, the peer"
    );

    // A planned restart: everything stays, and says so.
    term(&lab, &mut agent);
    let stamped = stamp(&pin_dir);
    assert_eq!(
        (stamped.magic, stamped.layout_version, stamped.state),
        (STAMP_MAGIC, LAYOUT_VERSION, STAMP_RESTARTING)
    );
    let link = lab.exec("host", &["ip", "link", "show", "dev", &lab.host_if]);
    assert!(link.contains("xdp"), "the program stays attached: {link}");
    assert_eq!(lab.fib(), before, "the pinned maps still hold the FIB");
    assert_eq!(
        lab.kernel_routes(),
        kernel_before,
        "kernel routes left in place"
    );
    let stray = [
        "ip", "route", "add", STRAY, "via", &peer, "proto", "201", "metric", "20",
    ];
    lab.exec("host", &stray);

    // The next start adopts: the FIB is complete before any session is back.
    let mut agent = start_agent(&lab);
    wait_for(
        "the adoption",
        Duration::from_secs(10),
        || {
            lab.agent_log_count(&[ADOPTED]) == 1
                && lab.agent_log_count(&["forwarding routes="]) == 2
        },
        || lab.logs(),
    );
    assert_eq!(
        lab.agent_log_count(&[ADOPTED, "adopted=2"]),
        1,
        "{}",
        lab.logs()
    );
    let status = lab.show("status");
    assert_eq!(
        (
            &status["adoption"]["adopting"],
            &status["adoption"]["adopted_routes"]
        ),
        (&serde_json::json!(true), &serde_json::json!(2)),
        "{status}"
    );
    assert_eq!(
        stamp(&pin_dir).flow_hash_seed,
        stamped.flow_hash_seed,
        "the flow hash seed is kept"
    );
    // The session comes back, its fresh routes take over, the selection deferral sweeps the
    // adopted ones: the FIB and the kernel routes stay as they were all along.
    fib_steady_until_adoption_over(&lab, &before, &kernel_before, 1);

    // `router-agent restart` with a file the new process would refuse: refused, still running.
    let agent_toml = lab.path("agent.toml");
    let good = fs::read_to_string(&agent_toml).unwrap();
    fs::write(lab.path("cli.toml"), &good).unwrap();
    fs::write(&agent_toml, format!("{good}\n[bgp.graceful_restart]\n")).unwrap();
    let out = lab
        .command_in("host", AGENT)
        .args(["restart", "-c", &lab.path_str("cli.toml")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("restart refused"),
        "{stderr}"
    );
    fs::write(&agent_toml, &good).unwrap();
    assert!(agent.try_wait().unwrap().is_none(), "{}", lab.logs());

    // `router-agent restart`: the same in place, same PID.
    let pid = agent.id();
    sh(&[AGENT, "restart", "-c", &lab.path_str("agent.toml")]);
    wait_for(
        "the re-executed agent's adoption",
        Duration::from_secs(10),
        || lab.agent_log_count(&[ADOPTED, "adopted=2"]) == 2,
        || lab.logs(),
    );
    assert!(process_alive(pid) && agent.try_wait().unwrap().is_none());
    fib_steady_until_adoption_over(&lab, &before, &kernel_before, 2);

    // An upgrade from layout version 2 (the same maps without DXR6_SUB): adopted, not a cold
    // start, and `show fib` reads the old pins meanwhile.
    term(&lab, &mut agent);
    fs::remove_file(pin_dir.join(map_names::DXR6_SUB)).unwrap();
    {
        let mut stamps = open_array::<DatapathStamp>(&pin_dir, map_names::STAMP);
        let mut older = stamps.get(&0, 0).unwrap();
        older.layout_version = 2;
        stamps.set(0, older, 0).unwrap();
    }
    assert_eq!(lab.fib(), before, "layout 2 pins read back");
    let mut agent = start_agent(&lab);
    wait_for(
        "the upgraded agent's adoption",
        Duration::from_secs(10),
        || lab.agent_log_count(&[ADOPTED, "adopted=2"]) == 3,
        || lab.logs(),
    );
    fib_steady_until_adoption_over(&lab, &before, &kernel_before, 3);
    assert_eq!(
        stamp(&pin_dir).layout_version,
        LAYOUT_VERSION,
        "stamped anew"
    );
    assert!(pin_dir.join(map_names::DXR6_SUB).exists(), "pinned anew");

    // A corrupted stamp: a cold start with one clear line, no crash.
    term(&lab, &mut agent);
    {
        let mut stamps = open_array::<DatapathStamp>(&pin_dir, map_names::STAMP);
        let mut corrupted = stamps.get(&0, 0).unwrap();
        corrupted.magic = 0x0bad_0bad_0bad_0bad;
        stamps.set(0, corrupted, 0).unwrap();
    }
    let mut agent = start_agent(&lab);
    wait_for(
        "the cold start",
        Duration::from_secs(10),
        || lab.agent_log_count(&["forwarding routes="]) == 5,
        || lab.logs(),
    );
    assert_eq!(
        lab.agent_log_count(&["cold start: not adopting the previous datapath", "magic"]),
        1,
        "{}",
        lab.logs()
    );
    assert_eq!(
        lab.agent_log_count(&[ADOPTED]),
        3,
        "nothing adopted: {}",
        lab.logs()
    );
    wait_for(
        "the routes learned again",
        SESSION,
        || learned_in(&lab.fib(), &peer),
        || lab.fib_and_logs(),
    );
    assert!(agent.try_wait().unwrap().is_none(), "{}", lab.logs());
    assert_eq!(stamp(&pin_dir).magic, STAMP_MAGIC, "stamped anew");

    // `router-agent stop`: a full stop despite --keep-datapath.
    sh(&[AGENT, "stop", "-c", &lab.path_str("agent.toml")]);
    wait_exit(&lab, &mut agent);
    assert!(!pin_dir.join(map_names::STAMP).exists(), "unpinned");
    let link = lab.exec("host", &["ip", "link", "show", "dev", &lab.host_if]);
    assert!(!link.contains("xdp"), "detached: {link}");
    assert_eq!(lab.kernel_routes().trim(), "", "kernel routes removed");
}

/// Without BGP nothing is BGP-owned, but a restart still adopts: the flow hash seed is kept,
/// the FIB comes back the same, and a crash (`kill -9`, stamp still "running") adopts too;
/// maps of another layout version are a cold start.
#[test]
fn restarts_without_bgp_keep_the_seed_and_survive_a_crash() {
    let lab = Lab::new("adoptstatic", "ah", "ap", 76);
    let config = config(&lab, "lpm-trie");
    let config = format!(
        "{}[[route]]\nprefix = \"{}\"\nnexthops = [{{ via = \"{}\" }}]\n",
        &config[..config.find("[bgp]").unwrap()],
        LEARNED[0],
        lab.peer_ip
    );
    fs::write(lab.path("agent.toml"), config).unwrap();
    let pin_dir = lab.net.pin_dir.clone();
    let forwarding = |runs: usize| {
        wait_for(
            "the agent forwarding",
            Duration::from_secs(10),
            || lab.agent_log_count(&["forwarding routes="]) == runs,
            || lab.logs(),
        )
    };

    let mut agent = start_agent(&lab);
    forwarding(1);
    let before = lab.fib();
    assert!(before.contains_key(LEARNED[0]), "{before:?}");
    let seed = stamp(&pin_dir).flow_hash_seed;

    term(&lab, &mut agent);
    let mut agent = start_agent(&lab);
    forwarding(2);
    assert_eq!(
        lab.agent_log_count(&[ADOPTED, "adopted=0", "planned restart"]),
        1,
        "{}",
        lab.logs()
    );
    assert_eq!(stamp(&pin_dir).flow_hash_seed, seed);
    assert_eq!(lab.fib(), before);
    wait_for(
        "the adoption to end at once",
        Duration::from_secs(5),
        || lab.agent_log_count(&["adoption over"]) == 1,
        || lab.logs(),
    );

    // A crash: the stamp still says running, and the next start adopts all the same.
    // SAFETY: kill(2) on our own, unreaped child.
    unsafe { libc::kill(agent.id() as libc::pid_t, libc::SIGKILL) };
    wait_exit(&lab, &mut agent);
    let mut agent = start_agent(&lab);
    forwarding(3);
    assert_eq!(
        lab.agent_log_count(&[ADOPTED, "adopted=0", "crashed"]),
        1,
        "{}",
        lab.logs()
    );
    assert_eq!(stamp(&pin_dir).flow_hash_seed, seed);
    assert_eq!(lab.fib(), before);

    // Maps of another layout version (an upgrade that changed a map): a cold start, a new
    // seed, the FIB rebuilt the same.
    term(&lab, &mut agent);
    {
        let mut stamps = open_array::<DatapathStamp>(&pin_dir, map_names::STAMP);
        let mut older = stamps.get(&0, 0).unwrap();
        older.layout_version = LAYOUT_VERSION + 1;
        stamps.set(0, older, 0).unwrap();
    }
    let mut agent = start_agent(&lab);
    forwarding(4);
    assert_eq!(
        lab.agent_log_count(&["cold start: not adopting", "layout version"]),
        1,
        "{}",
        lab.logs()
    );
    assert_eq!(lab.agent_log_count(&[ADOPTED]), 2, "{}", lab.logs());
    assert_eq!(stamp(&pin_dir).layout_version, LAYOUT_VERSION);
    assert_eq!(lab.fib(), before);
    assert!(agent.try_wait().unwrap().is_none(), "{}", lab.logs());
    sh(&[AGENT, "stop", "-c", &lab.path_str("agent.toml")]);
    wait_exit(&lab, &mut agent);
}
