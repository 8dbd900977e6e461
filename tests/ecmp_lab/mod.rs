//! The lab of `ecmp_resilience.rs`: three ToRs (FRR, BIRD, GoBGP), the client and the agent,
//! and what the test reads from them.

use std::{
    collections::BTreeMap,
    fs,
    net::Ipv4Addr,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command},
    time::Duration,
};

use crate::interop::{bird::Bird, frr::Frr};
use crate::netns::{AGENT, Namespaces, sh, spawn_logged, stop, tail, wait_for};
use crate::scenarios::{
    flows::{FlowTable, udp_flows},
    link_info,
};
use serde_json::Value;

pub(crate) const ANYCAST: &str = "198.18.0.0/24";
const SERVICE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const FLOWS: u16 = 200;
/// A joining next hop gets about 21/64 of the flows (~65 of 200); far fewer means it did not
/// really join.
pub(crate) const MIN_JOIN_FLOWS: usize = 30;
pub(crate) const SESSIONS: Duration = Duration::from_secs(60);
const CHANGE: Duration = Duration::from_secs(30);

/// The ToRs: label (as the flow tables name them), namespace role, its interface and
/// address, and the host's interface facing it.
const TORS: [(&str, &str, &str, &str, &str); 3] = [
    ("frr", "tor1", "t1", "10.0.1.1", "h1"),
    ("bird", "tor2", "t2", "10.0.2.1", "h2"),
    ("gobgp", "tor3", "t3", "10.0.3.1", "h3"),
];

pub(crate) fn tor_address(label: &str) -> &'static str {
    TORS.iter().find(|t| t.0 == label).unwrap().3
}

pub(crate) struct EcmpLab {
    pub(crate) agent: Option<Child>,
    pub(crate) gobgpd: Option<Child>,
    pub(crate) frr: Option<Frr>,
    pub(crate) bird: Option<Bird>,
    pub(crate) flows: Vec<(u16, Vec<u8>)>,
    pub(crate) labels: BTreeMap<[u8; 6], String>,
    pub(crate) ingress_ifindex: u32,
    /// Last: dropped after the processes are stopped.
    pub(crate) net: Namespaces,
}

impl EcmpLab {
    pub(crate) fn new() -> Self {
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

    pub(crate) fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    pub(crate) fn start_tors(&mut self) {
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

    pub(crate) fn gobgp_api(&self) -> String {
        format!("unix://{}", self.net.path_str("gobgpd.sock"))
    }

    pub(crate) fn gobgp_try(&self, args: &[&str]) -> Result<String, String> {
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

    pub(crate) fn gobgp(&self, args: &[&str]) -> String {
        self.gobgp_try(args)
            .unwrap_or_else(|e| panic!("gobgp {args:?}: {e}\n{}", self.logs()))
    }

    pub(crate) fn birdc(&self, command: &str) -> String {
        self.bird.as_ref().unwrap().birdc(command)
    }

    pub(crate) fn vtysh(&self, commands: &[&str]) -> String {
        self.frr.as_ref().unwrap().vtysh_text(commands)
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self.net.path("agent.toml")
    }

    /// The agent's config; `rejected`: the ToR whose paths the import policy rejects.
    pub(crate) fn write_config(&self, rejected: Option<&str>) {
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

    pub(crate) fn start_agent(&mut self) {
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
    pub(crate) fn reload(&self, rejected: Option<&str>) {
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

    pub(crate) fn show(&self, what: &str) -> Value {
        self.net
            .agent_show(AGENT, "host", what, Some(&self.config_path()))
            .unwrap_or(Value::Null)
    }

    /// The anycast route's nexthops holding buckets: via -> buckets.
    pub(crate) fn buckets(&self) -> BTreeMap<String, u64> {
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
    pub(crate) fn wait_for_set(&self, labels: &[&str], what: &str) {
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

    pub(crate) fn table(&self) -> FlowTable {
        let link = self.net.pin_dir.join("link_hc");
        FlowTable::take(
            &self.net.ns("host"),
            link,
            self.ingress_ifindex,
            &self.flows,
            &self.labels,
        )
    }

    pub(crate) fn session_state(&self, address: &str) -> String {
        self.show("neighbors")
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["address"] == address)
            .and_then(|n| n["state"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub(crate) fn logs(&self) -> String {
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
