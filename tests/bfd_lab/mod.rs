//! The lab of `bgp_bfd.rs`: namespaces, FRR, BIRD, the server and the agent, and what the
//! tests read from them.

use std::{fs, path::PathBuf, process::Child, thread, time::Duration};

use crate::interop::{bird::Bird, frr::Frr};
use crate::netns::{AGENT, Namespaces, signal_pidfile, spawn_logged};
use crate::probe;
use serde_json::Value;

pub(crate) const SERVER: &str = "198.18.0.1";
pub(crate) const TORS: [&str; 2] = ["10.0.1.1", "10.0.2.1"];

pub(crate) struct Lab {
    pub(crate) agent: Option<Child>,
    pub(crate) frr: Option<Frr>,
    pub(crate) bird: Option<Bird>,
    pub(crate) probe: Option<probe::Probe>,
    /// The ToR frozen, thawed on Drop (its daemons must get their SIGTERM).
    pub(crate) frozen: Option<usize>,
    /// BIRD's `bfd` in its BGP protocol: "on", or "graceful" (a BFD down is a graceful
    /// restart of the session).
    pub(crate) bird_bfd: &'static str,
    /// FRR's neighbour BFD lines.
    pub(crate) frr_bfd: &'static str,
    /// Last: dropped after the processes are stopped.
    pub(crate) net: Namespaces,
}

impl Lab {
    pub(crate) fn new(tag: &str) -> Self {
        let net = Namespaces::new("hrbfd-", tag, &["client", "host", "tor1", "tor2", "server"]);
        for (a, b) in [
            (("client", "c0"), ("host", "hc")),
            (("tor1", "t1"), ("host", "h1")),
            (("tor2", "t2"), ("host", "h2")),
            (("tor1", "s1"), ("server", "e1")),
            (("tor2", "s2"), ("server", "e2")),
        ] {
            net.veth(a, b);
        }
        let lab = Self {
            agent: None,
            frr: None,
            bird: None,
            probe: None,
            frozen: None,
            bird_bfd: "on",
            frr_bfd: " neighbor 10.0.1.2 bfd\n",
            net,
        };
        let addresses = [
            ("client", "c0", "10.0.0.2/24"),
            ("host", "hc", "10.0.0.1/24"),
            ("host", "h1", "10.0.1.2/24"),
            ("host", "h2", "10.0.2.2/24"),
            ("tor1", "t1", "10.0.1.1/24"),
            ("tor2", "t2", "10.0.2.1/24"),
            ("tor1", "s1", "10.1.1.1/24"),
            ("tor2", "s2", "10.1.2.1/24"),
            ("server", "e1", "10.1.1.2/24"),
            ("server", "e2", "10.1.2.2/24"),
            ("server", "lo", "198.18.0.1/32"),
            ("host", "lo", "192.0.2.10/32"),
        ];
        for (role, dev, address) in addresses {
            lab.exec(role, &["ip", "addr", "add", address, "dev", dev]);
            lab.exec(role, &["ip", "link", "set", dev, "up"]);
        }
        let setup: &[(&str, &[&str])] = &[
            (
                "client",
                &["ip", "route", "add", "default", "via", "10.0.0.1"],
            ),
            // Real UDP over veth: checksums computed before the "wire".
            ("client", &["ethtool", "-K", "c0", "tx", "off"]),
            ("host", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            (
                "tor1",
                &["ip", "route", "add", "198.18.0.0/24", "via", "10.1.1.2"],
            ),
            (
                "tor2",
                &["ip", "route", "add", "198.18.0.0/24", "via", "10.1.2.2"],
            ),
            // The server answers nothing (one-way probe) and takes the flow from either ToR.
            (
                "server",
                &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"],
            ),
            ("server", &["sysctl", "-qw", "net.ipv4.conf.e1.rp_filter=0"]),
            ("server", &["sysctl", "-qw", "net.ipv4.conf.e2.rp_filter=0"]),
        ];
        for (role, args) in setup {
            lab.exec(role, args);
        }
        for (tor, iface) in [("tor1", "t1"), ("tor2", "t2")] {
            lab.exec(tor, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
            lab.exec(tor, &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
            // Frames XDP redirects into a veth need NAPI (GRO) on the receiving end.
            lab.exec(tor, &["ethtool", "-K", iface, "gro", "on"]);
        }
        lab
    }

    pub(crate) fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    pub(crate) fn path(&self, name: &str) -> String {
        self.net.path_str(name)
    }

    pub(crate) fn start_tors(&mut self, bfd: bool) {
        let frr_bfd = if bfd { self.frr_bfd } else { "" };
        let frr = format!(
            "hostname tor1
router bgp 65001
 bgp router-id 10.0.1.1
 no bgp ebgp-requires-policy
 neighbor 10.0.1.2 remote-as 65101
 neighbor 10.0.1.2 timers 3 9
{frr_bfd} address-family ipv4 unicast
  neighbor 10.0.1.2 default-originate
 exit-address-family
!
"
        );
        self.frr = Some(Frr::start_with(&self.net, "tor1", &frr, bfd));
        let (bird_bfd, bgp_bfd) = if bfd {
            (
                "protocol bfd {\n  interface \"t2\" {\n    min rx interval 300 ms;\n    \
                 min tx interval 300 ms;\n    multiplier 3;\n  };\n}\n",
                format!("  bfd {};\n", self.bird_bfd),
            )
        } else {
            ("", String::new())
        };
        let bird = format!(
            "router id 10.0.2.1;
protocol device {{}}
{bird_bfd}protocol static {{
  ipv4;
  route 0.0.0.0/0 blackhole;
}}
protocol bgp host {{
  local 10.0.2.1 as 65002;
  neighbor 10.0.2.2 as 65101;
  hold time 9;
  error wait time 1, 5;  # after the freeze: back at once, not in 60 s
{bgp_bfd}  ipv4 {{ import all; export all; }};
}}
"
        );
        self.bird = Some(Bird::start(&self.net, "tor2", &bird));
    }

    pub(crate) fn start_agent(&mut self, bfd: bool) {
        let line = if bfd { "bfd = true" } else { "" };
        self.write_config([line, line], "");
        let path = self.path("host.toml");
        let mut command = self.net.command_in("host", AGENT);
        command.args(["run", "-c", &path]);
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
    }

    /// host.toml with `bfd` the BFD line of each neighbour (ToR1, ToR2) and `tail` appended.
    pub(crate) fn write_config(&self, bfd: [&str; 2], tail: &str) {
        let neighbors: String = [("10.0.1.1", "65001"), ("10.0.2.1", "65002")]
            .iter()
            .zip(bfd)
            .map(|((address, asn), bfd)| {
                format!(
                    "[[bgp.neighbor]]\naddress = \"{address}\"\nremote_as = {asn}\n\
                     import = \"default-only\"\nexport = \"all\"\nhold_time = 9\n{bfd}\n"
                )
            })
            .collect();
        let config = format!(
            r#"
[datapath]
pin_dir = "{pin_dir}"
[control]
socket = "{socket}"
[[interface]]
name = "hc"
[[interface]]
name = "h1"
[[interface]]
name = "h2"

[bgp]
asn = 65101
router_id = "192.0.2.10"
originate = [{{ prefix = "192.0.2.10/32" }}]

{neighbors}
{tail}"#,
            pin_dir = self.net.pin_dir.display(),
            socket = self.path("agent.sock"),
        );
        fs::write(self.path("host.toml"), config).unwrap();
    }

    /// `router-agent reload`; its output, or a panic with the log.
    pub(crate) fn reload(&self) -> String {
        let mut command = self.net.command_in("host", AGENT);
        command.args(["reload", "-c", &self.path("host.toml")]);
        let out = command.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "reload: {text}\n{}", self.log());
        text
    }

    pub(crate) fn log(&self) -> String {
        let agent = fs::read_to_string(self.path("agent.log")).unwrap_or_default();
        format!("agent log:\n{agent}")
    }

    pub(crate) fn show(&self, what: &str) -> Value {
        let config = PathBuf::from(self.path("host.toml"));
        self.net
            .agent_show(AGENT, "host", what, Some(&config))
            .unwrap_or(Value::Null)
    }

    /// The default route's resolved next hops in the XDP FIB, sorted.
    pub(crate) fn default_nexthops(&self) -> Vec<String> {
        let fib = self.show("fib");
        let mut vias: Vec<String> = fib["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["prefix"] == "0.0.0.0/0")
            .flat_map(|r| r["nexthops"].as_array().cloned().unwrap_or_default())
            .filter(|n| n["resolved"] == true)
            .map(|n| n["via"].as_str().unwrap_or_default().to_owned())
            .collect();
        vias.sort();
        vias
    }

    pub(crate) fn nexthop_packets(&self, via: &str) -> u64 {
        self.show("counters")["nexthops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["via"] == via)
            .filter_map(|n| n["packets"].as_u64())
            .sum()
    }

    pub(crate) fn bfd_states(&self) -> Vec<(String, String)> {
        self.show("bfd")
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let text = |key: &str| s[key].as_str().unwrap_or_default().to_owned();
                (text("peer"), text("state"))
            })
            .collect()
    }

    /// The ToR (index into TORS) the probe's flow goes through.
    pub(crate) fn carrying_tor(&self) -> usize {
        let before: Vec<u64> = TORS.iter().map(|t| self.nexthop_packets(t)).collect();
        thread::sleep(Duration::from_millis(500));
        let grown: Vec<u64> = TORS
            .iter()
            .zip(&before)
            .map(|(t, b)| self.nexthop_packets(t) - b)
            .collect();
        assert!(
            grown.iter().filter(|g| **g >= 400).count() == 1,
            "the probe is one flow, on one ToR: {grown:?}"
        );
        grown.iter().position(|g| *g >= 400).unwrap()
    }

    /// The ToR's daemons stopped and every packet it gets or sends dropped; links stay up.
    pub(crate) fn freeze(&mut self, tor: usize) {
        let role = ["tor1", "tor2"][tor];
        // One transaction: everything stops at once.
        let rules = "table inet freeze {\n\
             chain in { type filter hook prerouting priority -400; policy drop; }\n\
             chain out { type filter hook output priority -400; policy drop; }\n}\n";
        let path = self.path("freeze.nft");
        fs::write(&path, rules).unwrap();
        self.exec(role, &["nft", "-f", &path]);
        self.frozen = Some(tor);
        for pidfile in self.daemon_pidfiles(tor) {
            signal_pidfile(&pidfile, libc::SIGSTOP);
        }
    }

    pub(crate) fn thaw(&mut self) {
        let Some(tor) = self.frozen.take() else {
            return;
        };
        for pidfile in self.daemon_pidfiles(tor) {
            signal_pidfile(&pidfile, libc::SIGCONT);
        }
        let role = ["tor1", "tor2"][tor];
        let _ = self
            .net
            .exec(role, &["nft", "delete", "table", "inet", "freeze"]);
    }

    pub(crate) fn daemon_pidfiles(&self, tor: usize) -> Vec<PathBuf> {
        let names: &[&str] = if tor == 0 {
            &["bgpd.pid", "bfdd.pid"]
        } else {
            &["bird.pid"]
        };
        names.iter().map(|name| self.net.path(name)).collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.probe = None;
        self.thaw();
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }
}
