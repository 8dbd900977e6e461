//! Health-checked anycast (`[[service]]`, issue 11): two hosts announce the same VIP to an
//! FRR ToR, which spreads clients over both (ECMP). A host whose service fails is gone from
//! the ToR within `interval × fall` (plus the update's travel), comes back only after its
//! hold-down, and a check flapping faster than rise/fall sends no UPDATE at all. Needs root
//! and FRR.
//!
//! ```text
//!   client ── c0 ═══ tc ── tor (FRR AS 65000, maximum-paths 8) ── ta ═══ uplink ── hostA (agent AS 65101)
//!   10.0.0.2/24        10.0.0.1/24                              └─ tb ═══ uplink ── hostB (agent AS 65102)
//! ```
//! Each host runs `python3 -m http.server 8080` and the agent with `web` (VIP
//! 198.51.100.53/32, `assign = true` on `hostrouter0`, HTTP check on 127.0.0.1:8080,
//! interval 1 s, fall 1, rise 2, hold-down 3 s); hostA also has `flappy` (198.51.100.54/32,
//! an exec check that alternates when told to, rise = fall = 3).

mod interop;
mod netns;

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpStream},
    process::{Child, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use interop::frr::Frr;
use netns::{AGENT, Namespaces, sh, spawn_logged, stop, tail, wait_for};
use serde_json::Value;

const VIP: &str = "198.51.100.53";
const FLAPPY: &str = "198.51.100.54";
const INTERVAL: Duration = Duration::from_secs(1);
const FALL: u32 = 1;
const RISE: u32 = 2;
const HOLD_DOWN: Duration = Duration::from_secs(3);
/// interval × fall + 100 ms (the design's bound), measured from the kill.
const WITHDRAW_BOUND: Duration = Duration::from_millis(1100);

/// Hosts: role, ToR-side interface, host address, ToR address, AS.
const HOSTS: [(&str, &str, &str, &str, u32); 2] = [
    ("a", "ta", "10.0.1.2", "10.0.1.1", 65101),
    ("b", "tb", "10.0.2.2", "10.0.2.1", 65102),
];

struct ServiceLab {
    agents: Vec<Option<Child>>,
    servers: Vec<Option<Child>>,
    monitor: Option<Child>,
    frr: Option<Frr>,
    /// Route lines from `ip -ts monitor route` in the ToR, stamped when read.
    routes_seen: Arc<Mutex<Vec<(Instant, String)>>>,
    net: Namespaces,
}

impl ServiceLab {
    fn new() -> Self {
        let net = Namespaces::new("svc-", "anycast", &["client", "tor", "a", "b"]);
        net.veth(("client", "c0"), ("tor", "tc"));
        net.exec("client", &["ip", "addr", "add", "10.0.0.2/24", "dev", "c0"]);
        net.exec("client", &["ip", "link", "set", "c0", "up"]);
        net.exec(
            "client",
            &["ip", "route", "add", "default", "via", "10.0.0.1"],
        );
        net.exec("tor", &["ip", "addr", "add", "10.0.0.1/24", "dev", "tc"]);
        net.exec("tor", &["ip", "link", "set", "tc", "up"]);
        net.exec("tor", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // Spread the client's connections by port, not only by address.
        net.exec(
            "tor",
            &["sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"],
        );
        for (role, tor_if, host, tor, _) in HOSTS {
            net.veth(("tor", tor_if), (role, "uplink"));
            net.exec(
                "tor",
                &["ip", "addr", "add", &format!("{tor}/24"), "dev", tor_if],
            );
            net.exec("tor", &["ip", "link", "set", tor_if, "up"]);
            net.exec(
                role,
                &["ip", "addr", "add", &format!("{host}/24"), "dev", "uplink"],
            );
            net.exec(role, &["ip", "link", "set", "uplink", "up"]);
            net.exec(role, &["ip", "route", "add", "default", "via", tor]);
            net.exec(role, &["ethtool", "-K", "uplink", "tx", "off"]);
            net.exec("tor", &["ethtool", "-K", tor_if, "tx", "off"]);
        }
        // The agent creates hostrouter0 as a dummy; kernels without CONFIG_DUMMY get one
        // made here, of a kind they have (the agent uses whatever it finds by that name).
        let probe = net
            .namespace("a")
            .ip(&["link", "add", "svc-probe0", "type", "dummy"]);
        if probe.is_ok() {
            net.exec("a", &["ip", "link", "del", "svc-probe0"]);
        } else {
            eprintln!(
                "services_anycast: no dummy interfaces in this kernel: hostrouter0 is a bridge"
            );
            for (role, ..) in HOSTS {
                net.exec(
                    role,
                    &["ip", "link", "add", "hostrouter0", "type", "bridge"],
                );
            }
        }
        net.exec("client", &["ethtool", "-K", "c0", "tx", "off"]);
        net.exec("tor", &["ethtool", "-K", "tc", "tx", "off"]);
        let mut lab = Self {
            agents: vec![None, None],
            servers: vec![None, None],
            monitor: None,
            frr: None,
            routes_seen: Arc::default(),
            net,
        };
        lab.start_monitor();
        lab
    }

    fn start_monitor(&mut self) {
        let mut command = self.net.command_in("tor", "ip");
        command
            .args(["-ts", "monitor", "route"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = self.routes_seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                seen.lock().unwrap().push((Instant::now(), line));
            }
        });
        self.monitor = Some(child);
    }

    fn start_tor(&mut self) {
        let config = "hostname tor
router bgp 65000
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 bgp bestpath as-path multipath-relax
 neighbor 10.0.1.2 remote-as 65101
 neighbor 10.0.1.2 timers 3 9
 neighbor 10.0.1.2 timers connect 1
 neighbor 10.0.2.2 remote-as 65102
 neighbor 10.0.2.2 timers 3 9
 neighbor 10.0.2.2 timers connect 1
 address-family ipv4 unicast
  maximum-paths 8
 exit-address-family
!
";
        self.frr = Some(Frr::start(&self.net, "tor", config));
    }

    fn config_path(&self, index: usize) -> String {
        self.net.path_str(&format!("agent-{}.toml", HOSTS[index].0))
    }

    fn start_agent(&mut self, index: usize) {
        let (role, _, host, tor, asn) = HOSTS[index];
        let flappy = if index == 0 {
            let dir = self.net.path_str("");
            format!(
                r#"
[[service]]
name = "flappy"
prefixes = ["{FLAPPY}/32"]
interval = "1s"
timeout = "500ms"
rise = 3
fall = 3
hold_down = "3s"
[[service.check]]
exec = {{ command = ["/bin/sh", "-c", "echo run >> {dir}/flappy.runs; [ -e {dir}/flap ] || exit 0; if [ -e {dir}/odd ]; then rm {dir}/odd; echo fail >> {dir}/flappy.runs; exit 1; fi; touch {dir}/odd"] }}
"#
            )
        } else {
            String::new()
        };
        let config = format!(
            r#"[datapath]
pin_dir = "{pins}/{role}"
[control]
socket = "{socket}"
[drain]
state_file = "{drain_file}"
[[interface]]
name = "uplink"
[bgp]
asn = {asn}
router_id = "{host}"
[[bgp.neighbor]]
address = "{tor}"
remote_as = 65000
import = "none"
export = "all"
hold_time = 9
[[service]]
name = "web"
prefixes = ["{VIP}/32"]
interval = "1s"
timeout = "500ms"
rise = {RISE}
fall = {FALL}
hold_down = "3s"
assign = true
[[service.check]]
http = {{ url = "http://127.0.0.1:8080/" }}
{flappy}"#,
            pins = self.net.pin_dir.display(),
            socket = self.net.path_str(&format!("agent-{role}.sock")),
            drain_file = self.net.path_str(&format!("drain-{role}.json")),
        );
        let path = self.config_path(index);
        std::fs::write(&path, config).unwrap();
        sh(&[AGENT, "check", "-c", &path]);
        let mut command = self.net.command_in(role, AGENT);
        command
            .args(["run", "-c", &path])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        let log = self.net.path(&format!("agent-{role}.log"));
        self.agents[index] = Some(spawn_logged(command, &log));
    }

    fn start_server(&mut self, index: usize) {
        let role = HOSTS[index].0;
        let mut command = self.net.command_in(role, "python3");
        command
            .args(["-m", "http.server", "8080", "--bind", "0.0.0.0"])
            .current_dir(&self.net.dir);
        let log = self.net.path(&format!("http-{role}.log"));
        self.servers[index] = Some(spawn_logged(command, &log));
    }

    fn kill_server(&mut self, index: usize) {
        if let Some(mut server) = self.servers[index].take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// The ToR kernel's next hops for `prefix` (empty: no route).
    fn tor_nexthops(&self, prefix: &str) -> Vec<String> {
        let out = self
            .net
            .namespace("tor")
            .ip(&["-j", "route", "show", prefix])
            .unwrap_or_default();
        let routes: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        let mut vias = Vec::new();
        for route in routes.as_array().into_iter().flatten() {
            if let Some(gateway) = route["gateway"].as_str() {
                vias.push(gateway.to_owned());
            }
            for hop in route["nexthops"].as_array().into_iter().flatten() {
                if let Some(gateway) = hop["gateway"].as_str() {
                    vias.push(gateway.to_owned());
                }
            }
        }
        vias.sort();
        vias
    }

    fn services(&self, index: usize) -> Value {
        let out = self
            .net
            .command_in(HOSTS[index].0, AGENT)
            .args(["show", "services", "--json", "-c", &self.config_path(index)])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    fn service(&self, index: usize, name: &str) -> Value {
        self.services(index)
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// How many times FRR's session with A came up: a reset would count one more.
    fn sessions_with_a(&self) -> u64 {
        let frr = self.frr.as_ref().unwrap();
        frr.vtysh("show bgp neighbors 10.0.1.2 json")["10.0.1.2"]["connectionsEstablished"]
            .as_u64()
            .unwrap_or(0)
    }

    fn updates_from_a(&self) -> u64 {
        let frr = self.frr.as_ref().unwrap();
        frr.vtysh("show bgp neighbors 10.0.1.2 json")["10.0.1.2"]["messageStats"]["updatesRecv"]
            .as_u64()
            .unwrap_or(0)
    }

    fn vip_on_a(&self) -> bool {
        let vip = format!("inet {VIP}/32");
        self.net
            .namespace("a")
            .ip(&["-o", "addr", "show"])
            .unwrap_or_default()
            .lines()
            .any(|line| line.contains("hostrouter0") && line.contains(&vip))
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (role, ..) in HOSTS {
            let path = self.net.path(&format!("agent-{role}.log"));
            out.push_str(&format!("--- agent {role}:\n{}\n", tail(&path, 60)));
        }
        let seen = self.routes_seen.lock().unwrap();
        out.push_str("--- tor route monitor:\n");
        for (_, line) in seen.iter().rev().take(20).rev() {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!(
            "--- tor: {:?}\n",
            self.net.exec("tor", &["ip", "route"])
        ));
        out
    }
}

impl Drop for ServiceLab {
    fn drop(&mut self) {
        for agent in self.agents.iter_mut().filter_map(Option::take) {
            stop(agent, libc::SIGTERM);
        }
        for index in 0..self.servers.len() {
            self.kill_server(index);
        }
        if let Some(mut monitor) = self.monitor.take() {
            let _ = monitor.kill();
            let _ = monitor.wait();
        }
        self.frr = None;
    }
}

/// Opens a TCP connection to the VIP every 10 ms from the client namespace until `stop`;
/// returns when each failed attempt started.
fn client_loop(lab: &ServiceLab, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Instant>> {
    let namespace_fd = std::fs::File::open(format!("/run/netns/{}", lab.net.ns("client"))).unwrap();
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on an open namespace file, for this thread only.
        assert_eq!(
            unsafe { libc::setns(namespace_fd.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let target: SocketAddr = format!("{VIP}:8080").parse().unwrap();
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
                failures.push(started);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        failures
    })
}

#[test]
fn services_follow_their_health_checks() {
    let mut lab = ServiceLab::new();
    lab.start_tor();
    for index in 0..2 {
        lab.start_server(index);
        lab.start_agent(index);
    }
    let both = vec!["10.0.1.2".to_owned(), "10.0.2.2".to_owned()];
    wait_for(
        "the ToR to reach the VIP over both hosts",
        Duration::from_secs(30),
        || lab.tor_nexthops(VIP) == both,
        || lab.logs(),
    );
    assert!(
        lab.vip_on_a(),
        "VIP assigned on hostrouter0: {}",
        lab.logs()
    );
    let web = lab.service(0, "web");
    assert_eq!(web["state"], "up", "{web}");

    // Kill A's server: A's path leaves the ToR within interval × fall (+ travel).
    let stop_client = Arc::new(AtomicBool::new(false));
    let client = client_loop(&lab, stop_client.clone());
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    lab.kill_server(0);
    while lab.tor_nexthops(VIP) != ["10.0.2.2"] {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "A never withdrawn\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let polled = killed.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop_client.store(true, Ordering::Relaxed);
    let failures = client.join().unwrap();
    // The monitor's first line for the VIP after the kill is the replacement (B only).
    let gone_at = lab
        .routes_seen
        .lock()
        .unwrap()
        .iter()
        .find(|(at, line)| *at > killed && line.contains(VIP) && line.contains("via 10.0.2.2"))
        .map(|(at, line)| (at.duration_since(killed), line.clone()));
    // Polling is the fallback (an upper bound: each poll runs `ip`).
    let (withdrawn, line) = gone_at.unwrap_or((polled, format!("none; polled {polled:?}")));
    let failed_in_window = failures
        .iter()
        .filter(|at| **at > killed && at.duration_since(killed) <= withdrawn)
        .count();
    let failed_after = failures.len() - failed_in_window;
    eprintln!(
        "services_anycast: A withdrawn from the ToR {:.0} ms after the kill (bound {} ms; \
         monitor: {line}); client connections failed in that window: {failed_in_window}, \
         after it: {failed_after}",
        withdrawn.as_secs_f64() * 1000.0,
        WITHDRAW_BOUND.as_millis()
    );
    assert!(
        withdrawn <= WITHDRAW_BOUND,
        "withdrawn after {withdrawn:?}\n{}",
        lab.logs()
    );
    assert_eq!(failed_after, 0, "no failure once A is withdrawn");
    let web = lab.service(0, "web");
    assert_eq!(web["state"], "down", "{web}");
    assert_eq!(web["checks"][0]["error"], "connection refused", "{web}");
    wait_for(
        "the VIP to leave hostrouter0",
        Duration::from_secs(2),
        || !lab.vip_on_a(),
        || lab.logs(),
    );

    // Restart it: back only after rise passes and the hold-down.
    let restarted = Instant::now();
    lab.start_server(0);
    let earliest = INTERVAL * (RISE - 1) + HOLD_DOWN;
    let latest = INTERVAL * RISE + HOLD_DOWN + Duration::from_secs(1);
    wait_for(
        "A back in the ToR's ECMP set",
        latest + Duration::from_secs(2),
        || lab.tor_nexthops(VIP) == both,
        || lab.logs(),
    );
    let back = restarted.elapsed();
    eprintln!(
        "services_anycast: A re-announced {:.2} s after its server restarted (window {:?}..{:?})",
        back.as_secs_f64(),
        earliest,
        latest
    );
    assert!(
        back >= earliest && back <= latest,
        "re-announced after {back:?}, want {earliest:?}..{latest:?}\n{}",
        lab.logs()
    );
    assert!(lab.vip_on_a(), "VIP assigned again");

    // A check alternating pass/fail every round, rise = fall = 3: never leaves Up.
    wait_for(
        "flappy announced",
        Duration::from_secs(10),
        || !lab.tor_nexthops(FLAPPY).is_empty(),
        || lab.logs(),
    );
    let updates = lab.updates_from_a();
    let runs = lab.net.path("flappy.runs");
    std::fs::write(lab.net.path("flap"), "").unwrap();
    let fails_before = std::fs::read_to_string(&runs)
        .unwrap_or_default()
        .matches("fail")
        .count();
    std::thread::sleep(Duration::from_secs(10));
    let fails = std::fs::read_to_string(&runs)
        .unwrap_or_default()
        .matches("fail")
        .count()
        - fails_before;
    let flappy = lab.service(0, "flappy");
    assert!(fails >= 4, "the check really alternated: {fails} failures");
    assert_eq!(flappy["state"], "up", "{flappy}");
    assert_eq!(flappy["flaps"], 0, "{flappy}");
    assert_eq!(
        lab.updates_from_a(),
        updates,
        "no UPDATE from A while flappy flapped\n{}",
        lab.logs()
    );
    assert_eq!(lab.tor_nexthops(FLAPPY), ["10.0.1.2"]);

    let sessions = lab.sessions_with_a();
    // Reload: `web` changed (a new task in its current state: still announced), `flappy`
    // removed (withdrawn).
    let path = lab.config_path(0);
    let config = std::fs::read_to_string(&path).unwrap();
    let web_only = config[..config.find("\n[[service]]\nname = \"flappy\"").unwrap()]
        .replace(&format!("rise = {RISE}"), "rise = 3");
    std::fs::write(&path, web_only).unwrap();
    let reload = lab
        .net
        .command_in("a", AGENT)
        .args(["reload", "-c", &path])
        .output()
        .unwrap();
    assert!(reload.status.success(), "{reload:?}\n{}", lab.logs());
    wait_for(
        "flappy withdrawn by the reload",
        Duration::from_secs(3),
        || lab.tor_nexthops(FLAPPY).is_empty(),
        || lab.logs(),
    );
    assert_eq!(lab.tor_nexthops(VIP), both, "web kept across the reload");
    let web = lab.service(0, "web");
    assert_eq!(web["state"], "up", "{web}");
    assert!(sessions >= 1);
    assert_eq!(
        lab.sessions_with_a(),
        sessions,
        "the reload reset the session"
    );
    assert_eq!(lab.services(0).as_array().map(Vec::len), Some(1));

    // Planned restart of A (`router-agent restart`): FRR keeps A's path as a GR helper, and
    // A's End-of-RIB waits for web's first check after the restart, so the VIP never leaves
    // the ToR's ECMP set.
    let restart = lab
        .net
        .command_in("a", AGENT)
        .args(["restart", "-c", &path])
        .output()
        .unwrap();
    assert!(restart.status.success(), "{restart:?}\n{}", lab.logs());
    let log_a = lab.net.path("agent-a.log");
    let settled = || {
        std::fs::read_to_string(&log_a)
            .unwrap_or_default()
            .contains("every service checked since the restart")
    };
    let restarted = Instant::now();
    let mut missing = Vec::new();
    let mut settled_after = None;
    while restarted.elapsed() < Duration::from_secs(10) {
        let hops = lab.tor_nexthops(VIP);
        if hops != both {
            missing.push((restarted.elapsed(), hops));
        }
        match settled_after {
            None if settled() => settled_after = Some(restarted.elapsed()),
            // FRR sweeps what End-of-RIB did not refresh: watch a little longer.
            Some(at) if restarted.elapsed() > at + Duration::from_secs(2) => break,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        missing.is_empty(),
        "the VIP left the ToR's ECMP set during A's planned restart: {missing:?}\n{}",
        lab.logs()
    );
    let settled_after = settled_after.unwrap_or_else(|| {
        panic!(
            "A's End-of-RIB not released after the restart\n{}",
            lab.logs()
        )
    });
    eprintln!(
        "services_anycast: planned restart of A: End-of-RIB after {:.2} s",
        settled_after.as_secs_f64()
    );
    assert!(lab.vip_on_a(), "VIP kept assigned across the restart");

    // Drain one service with a prepend (this ToR has no GRACEFUL_SHUTDOWN policy): A's path
    // is longer, so the ToR uses B only; undrain brings A back. An unknown service is named.
    let agent_a = |args: &[&str]| {
        let mut full = args.to_vec();
        full.extend(["-c", &path]);
        lab.net.command_in("a", AGENT).args(&full).output().unwrap()
    };
    let unknown = agent_a(&["drain", "--service", "nosuch"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no service \"nosuch\""),
        "{unknown:?}"
    );
    let drain = agent_a(&["drain", "--service", "web", "--prepend", "2", "--wait"]);
    assert!(drain.status.success(), "{drain:?}\n{}", lab.logs());
    wait_for(
        "the ToR to leave A for the drained service",
        Duration::from_secs(5),
        || lab.tor_nexthops(VIP) == ["10.0.2.2"],
        || lab.logs(),
    );
    let undrain = agent_a(&["undrain", "--service", "web"]);
    assert!(undrain.status.success(), "{undrain:?}\n{}", lab.logs());
    wait_for(
        "A back after undrain",
        Duration::from_secs(5),
        || lab.tor_nexthops(VIP) == both,
        || lab.logs(),
    );
}
