//! Configuration reload for `dynamic_neighbor` ranges, with two GoBGPs connecting from the
//! range (see `interop/mod.rs` for the lab): a new import prefix list is applied to the
//! running dynamic sessions (no reset: same session, its uptime going on) and a VM's /32
//! never leaves the XDP FIB meanwhile (`show fib` polled through the reload); a lowered
//! `limit` ends only the newest session, logged once, and keeps refusing it.
//! Needs root and gobgpd.

mod interop;
mod netns;

use std::{
    fs,
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab};
use netns::{AGENT, wait_for};
use serde_json::Value;

const GOBGP_ASN: u32 = 65060;
/// The first GoBGP's VM: allowed by the range's prefix list from the start.
const VM: &str = "198.51.100.1/32";
/// Its second VM: let in by the reload.
const LATE_VM: &str = "198.51.100.2/32";
/// The second GoBGP's VM.
const OTHER_VM: &str = "198.51.100.3/32";
const SESSION: Duration = Duration::from_secs(40);
const ROUTE: Duration = Duration::from_secs(15);

/// The agent's `[bgp]`: one dynamic range over the lab subnet, importing `vms`, at most
/// `limit` sessions.
fn bgp(lab: &Lab, vms: &[&str], limit: usize) -> String {
    let permits: Vec<String> = vms
        .iter()
        .map(|p| format!(r#"{{ action = "permit", prefix = "{p}" }}"#))
        .collect();
    let subnet = lab.peer_ip.rsplit_once('.').unwrap().0;
    format!(
        r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_PREFIX}" }}]

[bgp.prefix_list.vms]
ipv4 = [{}]

[[bgp.dynamic_neighbor]]
range = "{subnet}.0/24"
remote_as = "external"
import = {{ prefix_list = "vms" }}
export = "all"
hold_time = 9
limit = {limit}
"#,
        permits.join(", ")
    )
}

/// gobgpd `label` at `address` (on the peer's side of the lab link), active towards the
/// host, not listening (the agent's dynamic peers connect to it).
fn start_gobgp(lab: &mut Lab, label: &str, address: &str) {
    let config = format!(
        r#"[global.config]
  as = {GOBGP_ASN}
  router-id = "{address}"
  local-address-list = ["{address}"]
  port = -1

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{host}"
    peer-as = {HOST_ASN}
  [neighbors.transport.config]
    local-address = "{address}"
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"#,
        host = lab.host_ip
    );
    interop::gobgp::spawn(lab, label, &config);
}

fn announce(lab: &Lab, label: &str, prefix: &str, next_hop: &str) {
    interop::gobgp::cli_of(
        lab,
        label,
        &[
            "global", "rib", "add", prefix, "-a", "ipv4", "nexthop", next_hop,
        ],
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
}

/// The agent's dynamic neighbors: address -> (state, uptime in seconds).
fn dynamic_peers(lab: &Lab) -> std::collections::BTreeMap<String, (String, u64)> {
    lab.show("neighbors")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|n| n["dynamic"] == true)
        .map(|n| {
            (
                n["address"].as_str().unwrap_or("?").to_owned(),
                (
                    n["state"].as_str().unwrap_or("?").to_owned(),
                    n["uptime_seconds"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

fn established(lab: &Lab, address: &str) -> Option<u64> {
    dynamic_peers(lab)
        .get(address)
        .filter(|(state, _)| state == "Established")
        .map(|(_, uptime)| *uptime)
}

/// `router-agent reload`: (success, stdout + stderr).
fn reload(lab: &Lab) -> (bool, String) {
    let out = lab
        .command_in("host", AGENT)
        .args(["reload", "-c", &lab.path_str("agent.toml")])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The list `key` of the reload's BGP summary (the CLI prints the agent's JSON answer).
fn summary_list(text: &str, key: &str) -> Vec<String> {
    let start = text.find('{').unwrap_or_else(|| panic!("no JSON: {text}"));
    let value: Value = serde_json::Deserializer::from_str(&text[start..])
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no JSON: {text}"));
    value["bgp"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key}: {text}"))
        .iter()
        .map(|v| v.as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Polls the XDP FIB (`show fib` reads the pinned maps) while `during` runs: how many
/// answers did not have `prefix`, of how many.
fn absent_while(lab: &Lab, prefix: &str, during: impl FnOnce()) -> (usize, usize) {
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        let poller = scope.spawn(|| {
            let (mut absent, mut polls) = (0, 0);
            // At least a few polls after `during` too: a reset shows a while later.
            let mut after = 0;
            while after < 20 {
                if done.load(Ordering::Relaxed) {
                    after += 1;
                }
                let fib = lab.show("fib");
                let Some(routes) = fib["routes"].as_array() else {
                    continue; // no answer: says nothing either way
                };
                polls += 1;
                if !routes.iter().any(|r| r["prefix"] == prefix) {
                    absent += 1;
                }
            }
            (absent, polls)
        });
        // Some polls before, too.
        thread::sleep(Duration::from_millis(300));
        during();
        done.store(true, Ordering::Relaxed);
        poller.join().unwrap()
    })
}

#[test]
fn reload_keeps_dynamic_sessions_and_their_routes() {
    let started = Instant::now();
    let mut lab = Lab::new("rdyn", "hrd", "prd", 74);
    let (first, second) = (lab.peer_ip.clone(), "10.0.74.3".to_owned());
    lab.exec(
        "peer",
        &[
            "ip",
            "addr",
            "add",
            &format!("{second}/24"),
            "dev",
            &lab.peer_if,
        ],
    );
    lab.start_agent(&bgp(&lab, &[VM, OTHER_VM], 3));
    start_gobgp(&mut lab, "gobgp-a", &first);
    announce(&lab, "gobgp-a", VM, &first);
    announce(&lab, "gobgp-a", LATE_VM, &first);
    // The second connects once the first is up: it is the newer session.
    wait_for(
        "the first dynamic session",
        SESSION,
        || established(&lab, &first).is_some(),
        || format!("{:?}\n{}", dynamic_peers(&lab), lab.logs()),
    );
    start_gobgp(&mut lab, "gobgp-b", &second);
    announce(&lab, "gobgp-b", OTHER_VM, &second);
    wait_for(
        "both sessions, their allowed VMs in the FIB, for 2 s at least",
        SESSION,
        || {
            let fib = lab.fib();
            established(&lab, &first).is_some_and(|uptime| uptime >= 2)
                && established(&lab, &second).is_some()
                && fib.get(VM).is_some_and(|v| *v == [first.clone()])
                && fib.get(OTHER_VM).is_some_and(|v| *v == [second.clone()])
        },
        || format!("{:?}\n{}", dynamic_peers(&lab), lab.fib_and_logs()),
    );
    assert!(!lab.fib().contains_key(LATE_VM), "{:?}", lab.fib());
    let header = {
        let config = fs::read_to_string(lab.path("agent.toml")).unwrap();
        config[..config.find("[bgp]").unwrap()].to_owned()
    };
    let write_config = |bgp: &str| fs::write(lab.path("agent.toml"), format!("{header}{bgp}"));

    // A new import prefix list: applied to both running sessions, the VM's route never out
    // of the FIB.
    let uptime_before = established(&lab, &first).unwrap();
    let reloaded_at = Instant::now();
    write_config(&bgp(&lab, &[VM, LATE_VM, OTHER_VM], 3)).unwrap();
    let mut text = String::new();
    let (absent, polls) = absent_while(&lab, VM, || {
        let (ok, answer) = reload(&lab);
        assert!(ok, "reload: {answer}");
        text = answer;
    });
    assert_eq!(absent, 0, "{VM} missing from {absent} of {polls} FIB reads");
    assert!(polls >= 20, "only {polls} FIB reads");
    assert_eq!(
        summary_list(&text, "neighbors_removed"),
        Vec::<String>::new()
    );
    let mut reapplied = summary_list(&text, "import_reapplied");
    reapplied.sort();
    assert_eq!(reapplied, [first.clone(), second.clone()], "{text}");
    wait_for(
        "the VM let in by the reload",
        ROUTE,
        || lab.fib_vias(LATE_VM) == [first.clone()],
        || lab.fib_and_logs(),
    );
    let uptime_after = established(&lab, &first).expect("still established");
    assert!(
        uptime_after >= uptime_before + reloaded_at.elapsed().as_secs().saturating_sub(1),
        "the session was reset: uptime {uptime_before} s before, {uptime_after} s after"
    );
    assert!(established(&lab, &second).is_some());
    assert_eq!(lab.agent_log_count(&["session down"]), 0, "{}", lab.logs());

    // The limit lowered to 1: the newer session ends (and is refused when it comes back),
    // the older one goes on, one log line.
    write_config(&bgp(&lab, &[VM, LATE_VM, OTHER_VM], 1)).unwrap();
    let (absent, polls) = absent_while(&lab, VM, || {
        let (ok, answer) = reload(&lab);
        assert!(ok, "reload: {answer}");
        text = answer;
    });
    assert_eq!(absent, 0, "{VM} missing from {absent} of {polls} FIB reads");
    assert_eq!(summary_list(&text, "dynamic_over_limit"), [second.as_str()]);
    assert_eq!(
        summary_list(&text, "neighbors_removed"),
        Vec::<String>::new()
    );
    wait_for(
        "the newer session's VM gone, the newer session refused when it comes back",
        SESSION,
        || {
            lab.fib_vias(OTHER_VM).is_empty()
                && lab.agent_log_count(&["session limit is reached", &second]) >= 1
        },
        || format!("{:?}\n{}", dynamic_peers(&lab), lab.fib_and_logs()),
    );
    assert_eq!(
        lab.agent_log_count(&["dynamic_neighbor limit lowered", &second]),
        1,
        "{}",
        lab.logs()
    );
    let peers = dynamic_peers(&lab);
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert!(
        established(&lab, &first).is_some_and(|uptime| uptime >= uptime_after),
        "{peers:?}"
    );
    assert_eq!(lab.fib_vias(VM), [first.as_str()]);
    assert!(lab.agent_running(), "router-agent exited\n{}", lab.logs());
    eprintln!("dynamic reload: {:.1?}", started.elapsed());
}
