//! BFD end to end (RFC 5880/5881/5882): router-agent between two ToRs in ECMP, FRR (bfdd,
//! `neighbor X bfd`) and BIRD 2 (`protocol bfd`, `bfd on`), with a server behind both.
//! Needs root, FRR (with bfdd), BIRD and nftables (scripts/setup).
//!
//! ```text
//!   client ── c0 ═══ hc ── [host: router-agent AS 65101] ── h1 ═══ t1 ── tor1 (FRR, 65001) ── s1 ═══ e1 ─┐
//!                                                        └─ h2 ═══ t2 ── tor2 (BIRD, 65002) ── s2 ═══ e2 ─┴ server
//! ```
//!
//! UDP at one datagram per millisecond runs from the client to the server (198.18.0.1, by the
//! default route the ToRs send, ECMP in XDP). The ToR that carries the flow is frozen: its
//! BGP (and BFD) daemons SIGSTOPped and all its packets dropped by nftables while its link
//! stays up (its kernel still answers ARP: nothing but BFD or the hold timer can tell).
//! - With BFD (300 ms x 3) the survivor carries everything within 1 s; the BFD sessions come
//!   up with both daemons first, and again (with the BGP session) once the ToR thaws.
//! - Without BFD, the hold timer (9 s) detects it: the loss is measured and printed too.
//!
//! Run with `-- --nocapture` to see the figures (BENCHMARKS.md, "BFD failover").

mod interop;
mod netns;
#[path = "restart_lab/probe.rs"]
#[allow(dead_code)]
mod probe;

use std::{
    fs,
    net::SocketAddr,
    path::PathBuf,
    process::Child,
    thread,
    time::{Duration, Instant},
};

use interop::{bird::Bird, frr::Frr};
use netns::{AGENT, Namespaces, signal_pidfile, spawn_logged, wait_for};
use serde_json::Value;

const SERVER: &str = "198.18.0.1";
const TORS: [&str; 2] = ["10.0.1.1", "10.0.2.1"];

struct Lab {
    agent: Option<Child>,
    frr: Option<Frr>,
    bird: Option<Bird>,
    probe: Option<probe::Probe>,
    /// The ToR frozen, thawed on Drop (its daemons must get their SIGTERM).
    frozen: Option<usize>,
    /// BIRD's `bfd` in its BGP protocol: "on", or "graceful" (a BFD down is a graceful
    /// restart of the session).
    bird_bfd: &'static str,
    /// FRR's neighbour BFD lines.
    frr_bfd: &'static str,
    /// Last: dropped after the processes are stopped.
    net: Namespaces,
}

impl Lab {
    fn new(tag: &str) -> Self {
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

    fn exec(&self, role: &str, args: &[&str]) -> String {
        self.net.exec(role, args)
    }

    fn path(&self, name: &str) -> String {
        self.net.path_str(name)
    }

    fn start_tors(&mut self, bfd: bool) {
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

    fn start_agent(&mut self, bfd: bool) {
        let line = if bfd { "bfd = true" } else { "" };
        self.write_config([line, line], "");
        let path = self.path("host.toml");
        let mut command = self.net.command_in("host", AGENT);
        command.args(["run", "-c", &path]);
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
    }

    /// host.toml with `bfd` the BFD line of each neighbour (ToR1, ToR2) and `tail` appended.
    fn write_config(&self, bfd: [&str; 2], tail: &str) {
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
    fn reload(&self) -> String {
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

    fn log(&self) -> String {
        let agent = fs::read_to_string(self.path("agent.log")).unwrap_or_default();
        format!("agent log:\n{agent}")
    }

    fn show(&self, what: &str) -> Value {
        let config = PathBuf::from(self.path("host.toml"));
        self.net
            .agent_show(AGENT, "host", what, Some(&config))
            .unwrap_or(Value::Null)
    }

    /// The default route's resolved next hops in the XDP FIB, sorted.
    fn default_nexthops(&self) -> Vec<String> {
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

    fn nexthop_packets(&self, via: &str) -> u64 {
        self.show("counters")["nexthops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["via"] == via)
            .filter_map(|n| n["packets"].as_u64())
            .sum()
    }

    fn bfd_states(&self) -> Vec<(String, String)> {
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
    fn carrying_tor(&self) -> usize {
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
    fn freeze(&mut self, tor: usize) {
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

    fn thaw(&mut self) {
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

    fn daemon_pidfiles(&self, tor: usize) -> Vec<PathBuf> {
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

/// What a freeze cost: the datagrams lost, and the time from the first one lost (the freeze
/// in effect) to the end of the last (each datagram is a millisecond).
struct Outage {
    lost: u64,
    span_ms: u64,
    ranges: Vec<(u64, u64)>,
}

/// The ToRs and the agent, with or without BFD, until the default route uses both ToRs.
fn bring_up(lab: &mut Lab, bfd: bool) {
    lab.start_tors(bfd);
    lab.start_agent(bfd);
    wait_for(
        "a default route via both ToRs",
        Duration::from_secs(60),
        || lab.default_nexthops() == TORS,
        || format!("{}\nfib: {}", lab.log(), lab.show("fib")),
    );
}

/// Freezes the ToR that carries the probe, waits for the FIB to leave it and `settle` more,
/// and says what was lost.
fn freeze_and_measure(lab: &mut Lab, bfd: bool, settle: Duration) -> (usize, Outage) {
    let client = lab.net.ns("client");
    let server = lab.net.ns("server");
    let destination: SocketAddr = format!("{SERVER}:9000").parse().unwrap();
    lab.probe = Some(probe::Probe::start(
        "client -> server",
        &client,
        &server,
        destination,
    ));
    let probe = lab.probe.as_ref().unwrap();
    assert!(probe.flowing(Duration::from_secs(10)), "{}", lab.log());
    let tor = lab.carrying_tor();

    let from = lab.probe.as_ref().unwrap().mark();
    lab.freeze(tor);
    let frozen_at = Instant::now();
    let survivor = TORS[1 - tor];
    wait_for(
        "the FIB to leave the frozen ToR",
        Duration::from_secs(30),
        || lab.default_nexthops() == [survivor],
        || format!("{}\nfib: {}", lab.log(), lab.show("fib")),
    );
    let seen_after = frozen_at.elapsed();
    thread::sleep(settle);
    let probe = lab.probe.as_ref().unwrap();
    let to = probe.mark();
    let losses = probe.losses(from, to);
    let ranges = probe.lost_ranges(from, to);
    let span_ms = match (ranges.first(), ranges.last()) {
        (Some((first, _)), Some((_, end))) => end - first,
        _ => 0,
    };
    eprintln!(
        "BFD failover ({}): froze {} (tor{}); FIB without it seen after {} ms; {losses} \
         (1 datagram/ms: {} ms of traffic); first to last loss {span_ms} ms; lost at {ranges:?}",
        if bfd {
            "BFD 300 ms x 3"
        } else {
            "no BFD, hold time 9 s"
        },
        TORS[tor],
        tor + 1,
        seen_after.as_millis(),
        losses.lost,
    );
    (
        tor,
        Outage {
            lost: losses.lost,
            span_ms,
            ranges,
        },
    )
}

#[test]
fn bfd_with_frr_and_bird_fails_a_frozen_tor_over_within_a_second() {
    let mut lab = Lab::new("bfd");
    // Sessions come up with both daemons' BFD (FRR's bfdd, BIRD's protocol bfd).
    bring_up(&mut lab, true);
    wait_for(
        "both BFD sessions up",
        Duration::from_secs(60),
        || {
            lab.bfd_states()
                == [
                    (TORS[0].to_owned(), "Up".to_owned()),
                    (TORS[1].to_owned(), "Up".to_owned()),
                ]
        },
        || format!("{}\nbfd: {}", lab.log(), lab.show("bfd")),
    );
    let frr_peers = lab.frr.as_ref().unwrap().vtysh("show bfd peers json");
    assert!(
        frr_peers.as_array().is_some_and(|peers| peers
            .iter()
            .any(|p| p["peer"] == "10.0.1.2" && p["status"] == "up")),
        "{frr_peers}"
    );
    let bird_sessions = lab.bird.as_ref().unwrap().birdc("show bfd sessions");
    assert!(
        bird_sessions.contains("10.0.2.2") && bird_sessions.contains("Up"),
        "{bird_sessions}"
    );
    let bfd = lab.show("bfd");
    assert_eq!(bfd[0]["detection_time_ms"], 900.0, "{bfd}");
    assert_eq!(bfd[0]["transmit_interval_ms"], 300.0, "{bfd}");
    let neighbors = lab.show("neighbors");
    assert_eq!(neighbors[0]["bfd"]["state"], "Up", "{neighbors}");

    let (tor, outage) = freeze_and_measure(&mut lab, true, Duration::from_secs(2));
    assert!(
        outage.lost < 1000 && outage.span_ms < 1000,
        "with BFD the survivor carries everything within 1 s: {} lost over {} ms ({:?})\n{}",
        outage.lost,
        outage.span_ms,
        outage.ranges,
        lab.log()
    );
    // Detected by BFD, not by the hold timer; the BGP session is down and held down.
    let bfd = lab.show("bfd");
    let session = &bfd[tor];
    assert_eq!(session["state"], "Down", "{bfd}");
    assert_eq!(
        session["last_down"]["diagnostic"], "control detection time expired",
        "{bfd}"
    );
    let neighbors = lab.show("neighbors");
    let neighbor = &neighbors[tor];
    assert_ne!(neighbor["state"], "Established", "{neighbors}");
    assert!(
        neighbor["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("BFD down")),
        "{neighbors}"
    );

    // The ToR thaws: BFD comes up, the session is established again, both ToRs forward.
    lab.thaw();
    wait_for(
        "BFD, the session and the ECMP route back",
        Duration::from_secs(60),
        || {
            lab.default_nexthops() == TORS
                && lab.bfd_states().iter().all(|(_, state)| state == "Up")
        },
        || format!("{}\nbfd: {}", lab.log(), lab.show("bfd")),
    );
}

#[test]
fn without_bfd_the_hold_timer_detects_a_frozen_tor() {
    let mut lab = Lab::new("hold");
    bring_up(&mut lab, false);
    let (_, outage) = freeze_and_measure(&mut lab, false, Duration::from_secs(1));
    // Hold time 9 s, keepalives every 3 s: the last one came 0 to 3 s before the freeze.
    assert!(
        (5000..=10_500).contains(&outage.lost) && outage.span_ms >= 5000,
        "hold-time detection: {} lost over {} ms\n{}",
        outage.lost,
        outage.span_ms,
        lab.log()
    );
    assert!(lab.show("bfd").as_array().is_none_or(Vec::is_empty));
}

#[test]
fn reload_adds_re_times_and_removes_bfd_sessions() {
    let mut lab = Lab::new("reload");
    lab.start_tors(true);
    lab.start_agent(false);
    wait_for(
        "a default route via both ToRs",
        Duration::from_secs(60),
        || lab.default_nexthops() == TORS,
        || format!("{}\nfib: {}", lab.log(), lab.show("fib")),
    );
    assert!(lab.show("bfd").as_array().is_some_and(Vec::is_empty));
    let uptime = || {
        lab.show("neighbors")[0]["uptime_seconds"]
            .as_u64()
            .unwrap_or(0)
    };
    let established_for = uptime();

    // Added: BFD with FRR comes up, the BGP session is not reset.
    lab.write_config(["bfd = true", ""], "");
    let summary = lab.reload();
    assert!(summary.contains("\"neighbors_reset\": []"), "{summary}");
    wait_for(
        "BFD with FRR up",
        Duration::from_secs(20),
        || lab.bfd_states() == [(TORS[0].to_owned(), "Up".to_owned())],
        || format!("{}\nbfd: {}", lab.log(), lab.show("bfd")),
    );
    let first = lab.show("bfd")[0].clone();
    assert_eq!(first["detection_time_ms"], 900.0, "{first}");

    // Re-timed (a profile at 500 ms): the same session, its detection time negotiated anew.
    lab.write_config(
        ["bfd = \"slow\"", ""],
        "[bfd.profile.slow]\ndesired_min_tx = \"500ms\"\nrequired_min_rx = \"500ms\"\n",
    );
    lab.reload();
    wait_for(
        "500 ms both ways (after the Poll Sequence): detection 1.5 s",
        Duration::from_secs(20),
        || {
            let session = &lab.show("bfd")[0];
            session["detection_time_ms"] == 1500.0 && session["transmit_interval_ms"] == 500.0
        },
        || format!("{}\nbfd: {}", lab.log(), lab.show("bfd")),
    );
    let retimed = lab.show("bfd")[0].clone();
    assert_eq!(retimed["state"], "Up", "{retimed}");
    assert_eq!(
        retimed["local_discriminator"], first["local_discriminator"],
        "not restarted"
    );
    assert_eq!(retimed["transmit_interval_ms"], 500.0, "{retimed}");
    assert!(
        uptime() >= established_for,
        "adding and re-timing BFD reset no session: {}",
        lab.show("neighbors")
    );

    // Removed: FRR hears AdminDown. For us that is no failure (RFC 5882 3.2); FRR 8.4 resets
    // its BGP session on it all the same (Cease / Hard Reset: its BFD client sees "down").
    // Our side holds nothing down: the session is back at once, both ToRs forwarding.
    lab.write_config(["", ""], "");
    lab.reload();
    assert!(lab.show("bfd").as_array().is_some_and(Vec::is_empty));
    wait_for(
        "FRR's BFD peer down by our AdminDown",
        Duration::from_secs(10),
        || {
            let peers = lab.frr.as_ref().unwrap().vtysh("show bfd peers json");
            peers[0]["status"] == "down"
        },
        || lab.log(),
    );
    wait_for(
        "both sessions established, the ECMP route intact",
        Duration::from_secs(30),
        || {
            let neighbors = lab.show("neighbors");
            neighbors[0]["state"] == "Established" && lab.default_nexthops() == TORS
        },
        || format!("{}\nneighbors: {}", lab.log(), lab.show("neighbors")),
    );
    let neighbors = lab.show("neighbors");
    assert!(
        !neighbors[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("BFD"),
        "not a BFD failure of ours: {neighbors}"
    );
    assert!(neighbors[0]["bfd"].is_null(), "{neighbors}");
}

#[test]
fn a_planned_restart_with_bfd_keeps_our_route_at_both_tors() {
    let mut lab = Lab::new("restart");
    // BIRD's plain `bfd on` takes the restart's BFD down as a failure and drops our route
    // for the restart's duration; `bfd graceful` makes it a graceful restart instead.
    lab.bird_bfd = "graceful";
    // FRR alike: with the C bit clear (our BFD shares fate with our control plane), a BFD down
    // during graceful restart is ignored.
    lab.frr_bfd = " neighbor 10.0.1.2 bfd\n neighbor 10.0.1.2 bfd check-control-plane-failure\n";
    bring_up(&mut lab, true);
    let both_up = |lab: &Lab| lab.bfd_states().iter().filter(|(_, s)| s == "Up").count() == 2;
    wait_for(
        "both BFD sessions up",
        Duration::from_secs(60),
        || both_up(&lab),
        || lab.log(),
    );
    let routes_at_tors = |lab: &Lab| {
        let frr = lab.frr.as_ref().unwrap();
        let at_frr = frr.vtysh("show bgp ipv4 unicast 192.0.2.10/32 json")["paths"].is_array();
        let bird = lab.bird.as_ref().unwrap();
        (
            at_frr,
            bird.birdc("show route 192.0.2.10/32")
                .contains("192.0.2.10/32"),
        )
    };
    wait_for(
        "our route at both ToRs",
        Duration::from_secs(20),
        || routes_at_tors(&lab) == (true, true),
        || lab.log(),
    );

    let mut command = lab.net.command_in("host", AGENT);
    command.args(["restart", "-c", &lab.path("host.toml")]);
    assert!(command.status().unwrap().success());
    // Through the restart (AdminDown from the old process, a new BFD session from the new
    // one): our route never leaves either ToR.
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        assert_eq!(routes_at_tors(&lab), (true, true), "{}", lab.log());
        thread::sleep(Duration::from_millis(100));
    }
    wait_for(
        "both BFD sessions up again",
        Duration::from_secs(30),
        || both_up(&lab),
        || lab.log(),
    );
    let neighbors = lab.show("neighbors");
    for neighbor in neighbors.as_array().unwrap() {
        assert_eq!(neighbor["state"], "Established", "{neighbors}");
    }
}
