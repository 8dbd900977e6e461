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

mod interop;
mod netns;
mod scenarios;

use std::{
    collections::BTreeMap,
    fs,
    net::Ipv4Addr,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command},
    time::Duration,
};

use interop::{bird::Bird, frr::Frr};
use netns::{AGENT, Namespaces, sh, spawn_logged, stop, tail, wait_for};
use scenarios::{
    flows::{FlowTable, check_join, check_leave, udp_flows},
    link_info,
};
use serde_json::Value;

const ANYCAST: &str = "198.18.0.0/24";
const SERVICE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const FLOWS: u16 = 200;
/// A joining next hop gets about 21/64 of the flows (~65 of 200); far fewer means it did not
/// really join.
const MIN_JOIN_FLOWS: usize = 30;
const SESSIONS: Duration = Duration::from_secs(60);
const CHANGE: Duration = Duration::from_secs(30);

/// The ToRs: label (as the flow tables name them), namespace role, its interface and
/// address, and the host's interface facing it.
const TORS: [(&str, &str, &str, &str, &str); 3] = [
    ("frr", "tor1", "t1", "10.0.1.1", "h1"),
    ("bird", "tor2", "t2", "10.0.2.1", "h2"),
    ("gobgp", "tor3", "t3", "10.0.3.1", "h3"),
];

fn tor_address(label: &str) -> &'static str {
    TORS.iter().find(|t| t.0 == label).unwrap().3
}

struct EcmpLab {
    agent: Option<Child>,
    gobgpd: Option<Child>,
    frr: Option<Frr>,
    bird: Option<Bird>,
    flows: Vec<(u16, Vec<u8>)>,
    labels: BTreeMap<[u8; 6], String>,
    ingress_ifindex: u32,
    /// Last: dropped after the processes are stopped.
    net: Namespaces,
}

impl EcmpLab {
    fn new() -> Self {
        let net = Namespaces::new("hre-", "ecmp", &["client", "host", "tor1", "tor2", "tor3"]);
        net.veth(("client", "c0"), ("host", "hc"));
        for (_, role, tor_if, _, host_if) in TORS {
            net.veth((role, tor_if), ("host", host_if));
        }
        net.exec("client", &["ip", "addr", "add", "10.0.0.2/24", "dev", "c0"]);
        net.exec("client", &["ip", "link", "set", "c0", "up"]);
        net.exec("host", &["ip", "addr", "add", "10.0.0.1/24", "dev", "hc"]);
        net.exec("host", &["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"]);
        net.exec("host", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        net.exec("host", &["ip", "link", "set", "hc", "up"]);
        for (i, (_, role, tor_if, address, host_if)) in TORS.into_iter().enumerate() {
            let host_cidr = format!("10.0.{}.2/24", i + 1);
            net.exec("host", &["ip", "addr", "add", &host_cidr, "dev", host_if]);
            net.exec("host", &["ip", "link", "set", host_if, "up"]);
            let tor_cidr = format!("{address}/24");
            net.exec(role, &["ip", "addr", "add", &tor_cidr, "dev", tor_if]);
            net.exec(role, &["ip", "link", "set", tor_if, "up"]);
            net.exec(role, &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
        }
        let (ingress_ifindex, ingress_mac) = link_info(&net.ns("host"), "hc");
        let (_, client_mac) = link_info(&net.ns("client"), "c0");
        let labels = TORS
            .iter()
            .map(|(label, role, tor_if, _, _)| {
                (link_info(&net.ns(role), tor_if).1, label.to_string())
            })
            .collect();
        let flows = udp_flows((ingress_mac, client_mac), (CLIENT, SERVICE), FLOWS);
        Self {
            agent: None,
            gobgpd: None,
            frr: None,
            bird: None,
            flows,
            labels,
            ingress_ifindex,
            net,
        }
    }

    fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    fn start_tors(&mut self) {
        let frr = format!(
            "hostname tor1
router bgp 65001
 bgp router-id 10.0.1.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.0.1.2 remote-as 65101
 neighbor 10.0.1.2 timers 3 9
 neighbor 10.0.1.2 timers connect 3
 address-family ipv4 unicast
  network {ANYCAST}
 exit-address-family
!
"
        );
        self.frr = Some(Frr::start(&self.net, "tor1", &frr));
        let bird = format!(
            "router id 10.0.2.1;
protocol device {{}}
protocol static anycast {{
  ipv4;
  route {ANYCAST} blackhole;
}}
protocol bgp host {{
  local 10.0.2.1 as 65002;
  neighbor 10.0.2.2 as 65101;
  hold time 9;
  connect retry time 3;
  error wait time 1, 5;
  ipv4 {{ import all; export all; }};
}}
"
        );
        self.bird = Some(Bird::start(&self.net, "tor2", &bird));
        let gobgp = r#"[global.config]
  as = 65003
  router-id = "10.0.3.1"
  local-address-list = ["10.0.3.1"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.0.3.2"
    peer-as = 65101
  [neighbors.timers.config]
    connect-retry = 3
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"#;
        let config = self.net.path_str("gobgpd.toml");
        fs::write(&config, gobgp).unwrap();
        let mut command = self.net.command_in("tor3", "gobgpd");
        command.args(["-f", &config, "--api-hosts", &self.gobgp_api()]);
        command.args(["--pprof-disable", "--log-plain"]);
        command.process_group(0);
        self.gobgpd = Some(spawn_logged(command, &self.net.path("gobgpd.log")));
        wait_for(
            "gobgpd's API",
            Duration::from_secs(10),
            || self.gobgp_try(&["neighbor"]).is_ok(),
            || self.logs(),
        );
        // Origin IGP as FRR's `network` and BIRD's static route: GoBGP's default,
        // incomplete, would lose the decision process before the multipath step.
        self.gobgp(&[
            "global", "rib", "add", "-a", "ipv4", ANYCAST, "origin", "igp",
        ]);
    }

    fn gobgp_api(&self) -> String {
        format!("unix://{}", self.net.path_str("gobgpd.sock"))
    }

    fn gobgp_try(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("gobgp")
            .args(["--target", &self.gobgp_api()])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    fn gobgp(&self, args: &[&str]) -> String {
        self.gobgp_try(args)
            .unwrap_or_else(|e| panic!("gobgp {args:?}: {e}\n{}", self.logs()))
    }

    fn birdc(&self, command: &str) -> String {
        self.bird.as_ref().unwrap().birdc(command)
    }

    fn vtysh(&self, commands: &[&str]) -> String {
        self.frr.as_ref().unwrap().vtysh_text(commands)
    }

    fn config_path(&self) -> PathBuf {
        self.net.path("agent.toml")
    }

    /// The agent's config; `rejected`: the ToR whose paths the import policy rejects.
    fn write_config(&self, rejected: Option<&str>) {
        let mut neighbors = String::new();
        for (label, _, _, address, _) in TORS {
            let import = if Some(label) == rejected {
                r#""none""#
            } else {
                r#"{ prefix_list = "anycast" }"#
            };
            neighbors.push_str(&format!(
                "\n[[bgp.neighbor]]\naddress = \"{address}\"\nremote_as = \"external\"\nimport = {import}\nexport = \"all\"\nhold_time = 9\n"
            ));
        }
        let config = format!(
            r#"[datapath]
pin_dir = "{pin_dir}"
[control]
socket = "{socket}"
[[interface]]
name = "hc"
[[interface]]
name = "h1"
[[interface]]
name = "h2"
[[interface]]
name = "h3"

[bgp]
asn = 65101
router_id = "192.0.2.10"
originate = [{{ prefix = "192.0.2.10/32" }}]
{neighbors}
[bgp.prefix_list.anycast]
ipv4 = [{{ action = "permit", prefix = "{ANYCAST}" }}]
"#,
            pin_dir = self.net.pin_dir.display(),
            socket = self.net.path_str("agent.sock"),
        );
        fs::write(self.config_path(), config).unwrap();
    }

    fn start_agent(&mut self) {
        self.write_config(None);
        let config = self.config_path();
        sh(&[AGENT, "check", "-c", config.to_str().unwrap()]);
        let mut command = self.net.command_in("host", AGENT);
        command
            .arg("run")
            .arg("-c")
            .arg(&config)
            .env("NO_COLOR", "1");
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
    }

    /// `router-agent reload` with the import policy rejecting `rejected`'s paths.
    fn reload(&self, rejected: Option<&str>) {
        self.write_config(rejected);
        let out = self
            .net
            .command_in("host", AGENT)
            .arg("reload")
            .arg("-c")
            .arg(self.config_path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "reload: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
    }

    fn show(&self, what: &str) -> Value {
        self.net
            .agent_show(AGENT, "host", what, Some(&self.config_path()))
            .unwrap_or(Value::Null)
    }

    /// The anycast route's nexthops holding buckets: via -> buckets.
    fn buckets(&self) -> BTreeMap<String, u64> {
        let fib = self.show("fib");
        fib["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["prefix"] == ANYCAST)
            .flat_map(|r| r["nexthops"].as_array().cloned().unwrap_or_default())
            .filter(|n| n["resolved"] == true && n["buckets"].as_u64().unwrap_or(0) > 0)
            .map(|n| {
                (
                    n["via"].as_str().unwrap().to_owned(),
                    n["buckets"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// Waits until exactly the ToRs `labels` hold the anycast route's buckets, split evenly.
    fn wait_for_set(&self, labels: &[&str], what: &str) {
        let mut want: Vec<&str> = labels.iter().map(|l| tor_address(l)).collect();
        want.sort();
        wait_for(
            what,
            CHANGE.max(SESSIONS),
            || {
                let buckets = self.buckets();
                let vias: Vec<&str> = buckets.keys().map(String::as_str).collect();
                let even = buckets.values().all(|b| {
                    64 / want.len() as u64 <= *b && *b <= 64_u64.div_ceil(want.len() as u64)
                });
                vias == want && buckets.values().sum::<u64>() == 64 && even
            },
            || {
                let routes = self.show("routes");
                let anycast: Vec<&Value> = routes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["prefix"] == ANYCAST)
                    .collect();
                format!(
                    "FIB buckets: {:?}\nBGP paths: {anycast:?}\n{}",
                    self.buckets(),
                    self.logs()
                )
            },
        );
    }

    fn table(&self) -> FlowTable {
        let link = self.net.pin_dir.join("link_hc");
        FlowTable::take(
            &self.net.ns("host"),
            link,
            self.ingress_ifindex,
            &self.flows,
            &self.labels,
        )
    }

    fn session_state(&self, address: &str) -> String {
        self.show("neighbors")
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["address"] == address)
            .and_then(|n| n["state"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for log in ["agent.log", "gobgpd.log"] {
            out.push_str(&format!("--- {log}:\n{}\n", tail(&self.net.path(log), 80)));
        }
        out
    }
}

impl Drop for EcmpLab {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            stop(agent, libc::SIGTERM);
        }
        if let Some(gobgpd) = self.gobgpd.take() {
            stop(gobgpd, libc::SIGTERM);
        }
        self.frr.take();
        self.bird.take();
    }
}

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
