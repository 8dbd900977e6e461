//! router-agent's BGP speaker against two more implementations, each in its own pair of
//! network namespaces (see `interop/mod.rs`): GoBGP 3 (AS 65010) and ExaBGP 4.2 (AS 65020).
//! The host runs a 4-byte AS (4200000001, RFC 6793), imports only what its policy allows,
//! originates 192.0.2.20/32 and exports it. Needs root and the Debian packages `gobgpd` and
//! `exabgp`.
//!
//! GoBGP: routes added and withdrawn with the `gobgp` CLI reach the XDP FIB (the default
//! route) or are filtered (a more-specific); GoBGP receives the host's /32 with AS path
//! [4200000001]; the session survives GoBGP re-sending its Adj-RIB-Out, comes back after an
//! administrative shutdown (NOTIFICATION Cease) and after gobgpd is killed and restarted.
//! (`gobgp neighbor X softresetin` sends no ROUTE-REFRESH, it re-filters GoBGP's own
//! Adj-RIB-In, so route refresh is tested with ExaBGP.)
//!
//! ExaBGP, driven through its API (`interop/exabgp.rs`):
//! announce, withdraw, announce again, ROUTE-REFRESH (the host must re-send its /32), and
//! `teardown` (NOTIFICATION Cease): the agent survives, the session comes back and the routes
//! are reinstalled. ExaBGP logs every UPDATE it receives as JSON, which the test reads.
//! A passive neighbor must recover from the same teardown too
//! (`exabgp_passive_neighbor_comes_back_after_teardown`).
//!
//! Set `HRGX_KEEP_LOGS=1` to keep each lab's directory (configs and logs) in the temporary
//! directory.

mod interop;
mod netns;

use std::time::{Duration, Instant};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab, exabgp};
use netns::wait_for;
use serde_json::Value;

/// Session establishment, re-establishment and route propagation; generous for a loaded
/// 2-core machine (typical: 1-6 s, see the timings the test prints).
const SESSION: Duration = Duration::from_secs(20);
const ROUTE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// GoBGP

const GOBGP_ASN: u32 = 65010;

struct GoBgp<'a> {
    lab: &'a Lab,
}

impl GoBgp<'_> {
    fn start(lab: &mut Lab) {
        interop::gobgp::start(lab, GOBGP_ASN, 2);
    }

    /// The `gobgp` CLI over gobgpd's unix socket.
    fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        interop::gobgp::cli(self.lab, args)
    }

    fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.lab.logs()))
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("-j");
        self.try_cli(&args)
            .ok()
            .and_then(|out| serde_json::from_str(&out).ok())
            .unwrap_or(Value::Null)
    }

    /// GoBGP's view of the host as a neighbor.
    fn neighbor(&self) -> Value {
        self.json(&["neighbor", &self.lab.host_ip])
    }

    /// BGP_FSM_ESTABLISHED is 6 in GoBGP's API (`session_state`).
    fn established(&self) -> bool {
        self.neighbor()["state"]["session_state"] == 6
    }

    fn messages(&self, direction: &str, kind: &str) -> u64 {
        self.neighbor()["state"]["messages"][direction][kind]
            .as_u64()
            .unwrap_or(0)
    }

    /// The paths GoBGP received from the host, by prefix.
    fn adj_in(&self) -> serde_json::Map<String, Value> {
        self.json(&["neighbor", &self.lab.host_ip, "adj-in", "-a", "ipv4"])
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    /// What GoBGP advertises to the host, by prefix.
    fn adj_out(&self) -> serde_json::Map<String, Value> {
        self.json(&["neighbor", &self.lab.host_ip, "adj-out", "-a", "ipv4"])
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    /// (AS path, next hop) of the host's /32 as GoBGP received it, if it did.
    fn host_route(&self) -> Option<(Vec<u64>, String)> {
        let adj_in = self.adj_in();
        let path = adj_in.get(HOST_PREFIX)?.as_array()?.first()?.clone();
        let attrs = path["attrs"].as_array()?;
        let as_path = attrs
            .iter()
            .find(|a| a["type"] == 2)?
            .get("as_paths")?
            .as_array()?
            .iter()
            .flat_map(|segment| segment["asns"].as_array().cloned().unwrap_or_default())
            .filter_map(|asn| asn.as_u64())
            .collect();
        let next_hop = attrs.iter().find(|a| a["type"] == 3)?["nexthop"]
            .as_str()?
            .to_owned();
        Some((as_path, next_hop))
    }

    fn add_routes(&self, prefixes: &[&str]) {
        for prefix in prefixes {
            self.cli(&[
                "global",
                "rib",
                "add",
                "-a",
                "ipv4",
                prefix,
                "nexthop",
                &self.lab.peer_ip,
            ]);
        }
    }
}

fn agent_bgp_config(neighbor: &str, remote_as: u32, import: &str, extra: &str) -> String {
    format!(
        r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_PREFIX}" }}]
{extra}
[[bgp.neighbor]]
address = "{neighbor}"
remote_as = {remote_as}
import = {import}
export = "all"
hold_time = 9
"#
    )
}

#[test]
fn gobgp_peer_four_byte_as_routes_withdraw_reset_restart() {
    let started = Instant::now();
    let mut lab = Lab::new("gobgp", "hg", "pg", 4);
    GoBgp::start(&mut lab);
    lab.start_agent(&agent_bgp_config(
        &lab.peer_ip,
        GOBGP_ASN,
        "\"default-only\"",
        "",
    ));
    let peer_ip = lab.peer_ip.clone();
    let gobgp = GoBgp { lab: &lab };

    // The session, seen from both sides.
    wait_for(
        "the GoBGP session to be established (GoBGP's view)",
        SESSION,
        || gobgp.established(),
        || format!("gobgp neighbor: {}\n{}", gobgp.neighbor(), lab.logs()),
    );
    wait_for(
        "the GoBGP session to be established (router-agent's log)",
        SESSION,
        || lab.agent_established() == 1,
        || lab.logs(),
    );
    let neighbor = gobgp.neighbor();
    assert_eq!(neighbor["state"]["peer_asn"], HOST_ASN, "{neighbor}");
    let remote_caps = neighbor["state"]["remote_cap"].to_string();
    assert!(
        remote_caps.contains("FourOctetASNCapability")
            && remote_caps.contains("RouteRefreshCapability"),
        "the host's OPEN lacks the 4-octet AS or route refresh capability: {remote_caps}"
    );

    // GoBGP learns the host's /32 with the host's 4-byte AS as the whole path, next hop the
    // host's side of the link; and nothing else.
    wait_for(
        "GoBGP to receive 192.0.2.20/32 from the host",
        ROUTE,
        || gobgp.host_route().is_some(),
        || format!("adj-in: {:?}\n{}", gobgp.adj_in(), lab.logs()),
    );
    assert_eq!(
        gobgp.host_route(),
        Some((vec![u64::from(HOST_ASN)], lab.host_ip.clone())),
        "the host's /32 as GoBGP received it (AS path, next hop)"
    );
    let received: Vec<String> = gobgp.adj_in().keys().cloned().collect();
    assert_eq!(received, [HOST_PREFIX], "the host exports only its own /32");

    // GoBGP advertises a more-specific, then a default: only the default passes the host's
    // `default-only` import policy, into the XDP FIB and the kernel. (One TCP stream, handled
    // in order: once the default is in the FIB, the more-specific has been through the
    // policy too.)
    gobgp.add_routes(&["10.77.0.0/24", "0.0.0.0/0"]);
    wait_for(
        "0.0.0.0/0 via GoBGP in the FIB",
        ROUTE,
        || lab.fib_vias("0.0.0.0/0") == [peer_ip.as_str()],
        || lab.fib_and_logs(),
    );
    let adj_out = gobgp.adj_out();
    assert!(
        adj_out.contains_key("10.77.0.0/24") && adj_out.contains_key("0.0.0.0/0"),
        "GoBGP's Adj-RIB-Out towards the host: {adj_out:?}"
    );
    let fib = lab.fib();
    assert!(
        !fib.contains_key("10.77.0.0/24"),
        "10.77.0.0/24 must be rejected by default-only: {fib:?}"
    );
    let kernel = lab.kernel_routes();
    assert!(
        kernel.contains(&format!("default via {peer_ip}")) && !kernel.contains("10.77.0.0"),
        "kernel routes (proto 201): {kernel}"
    );

    // GoBGP re-sends its whole Adj-RIB-Out (soft reset out): the same routes again are no
    // change for the host, and the session stays up.
    let sent_before = gobgp.messages("sent", "update");
    let (ups_before, downs_before) = (
        lab.agent_established(),
        lab.agent_log_count(&["session down"]),
    );
    gobgp.cli(&["neighbor", &lab.host_ip, "softresetout", "-a", "ipv4"]);
    wait_for(
        "GoBGP to re-send its routes (softresetout)",
        ROUTE,
        || gobgp.messages("sent", "update") > sent_before,
        || format!("gobgp neighbor: {}\n{}", gobgp.neighbor(), lab.logs()),
    );
    assert_eq!(
        lab.fib_vias("0.0.0.0/0"),
        [peer_ip.as_str()],
        "{}",
        lab.logs()
    );

    // Withdraw the default: it leaves the FIB and the kernel; announce it again. (The
    // withdraw follows the repeated routes on the same connection: the session that carries
    // it is the one that took the repeat.)
    gobgp.cli(&["global", "rib", "del", "-a", "ipv4", "0.0.0.0/0"]);
    wait_for(
        "0.0.0.0/0 to leave the FIB after GoBGP's withdraw",
        ROUTE,
        || !lab.fib().contains_key("0.0.0.0/0"),
        || lab.fib_and_logs(),
    );
    assert!(
        gobgp.established()
            && lab.agent_established() == ups_before
            && lab.agent_log_count(&["session down"]) == downs_before,
        "the session did not survive GoBGP's repeated routes\n{}",
        lab.logs()
    );
    assert!(
        !lab.kernel_routes().contains("default"),
        "kernel: {}",
        lab.kernel_routes()
    );
    gobgp.add_routes(&["0.0.0.0/0"]);
    wait_for(
        "0.0.0.0/0 back in the FIB",
        ROUTE,
        || lab.fib_vias("0.0.0.0/0") == [peer_ip.as_str()],
        || lab.fib_and_logs(),
    );

    // Hard reset from GoBGP's side: administrative shutdown (NOTIFICATION Cease/2), then
    // enable. (`gobgp neighbor X reset` works the same but GoBGP then refuses connections for
    // its idle-hold-time-after-reset, 30 s, which gobgpd 3.10 does not take from its config.)
    gobgp.cli(&["neighbor", &lab.host_ip, "disable"]);
    wait_for(
        "the agent to get GoBGP's Cease and withdraw its routes",
        ROUTE,
        || {
            lab.agent_log_count(&["NOTIFICATION received: Cease/Administrative Shutdown"]) == 1
                && !lab.fib().contains_key("0.0.0.0/0")
        },
        || lab.fib_and_logs(),
    );
    gobgp.cli(&["neighbor", &lab.host_ip, "enable"]);
    wait_for(
        "the session to come back after disable/enable",
        SESSION,
        || gobgp.established() && lab.agent_established() == 2,
        || format!("gobgp neighbor: {}\n{}", gobgp.neighbor(), lab.logs()),
    );
    wait_for(
        "0.0.0.0/0 reinstalled and 192.0.2.20/32 re-advertised after the reset",
        ROUTE,
        || lab.fib_vias("0.0.0.0/0") == [peer_ip.as_str()] && gobgp.host_route().is_some(),
        || lab.fib_and_logs(),
    );
    assert!(lab.agent_running(), "router-agent exited\n{}", lab.logs());

    // gobgpd dies (SIGKILL: no NOTIFICATION, the TCP connection just closes) and starts
    // again from its config: the host drops its routes, reconnects and learns them anew.
    lab.stop_daemon("gobgpd", libc::SIGKILL);
    wait_for(
        "0.0.0.0/0 to leave the FIB when gobgpd dies",
        ROUTE,
        || !lab.fib().contains_key("0.0.0.0/0"),
        || lab.fib_and_logs(),
    );
    GoBgp::start(&mut lab);
    let gobgp = GoBgp { lab: &lab };
    wait_for(
        "the session to re-establish with the restarted gobgpd",
        SESSION,
        || gobgp.established() && lab.agent_established() == 3,
        || format!("gobgp neighbor: {}\n{}", gobgp.neighbor(), lab.logs()),
    );
    gobgp.add_routes(&["0.0.0.0/0", "10.77.0.0/24"]);
    wait_for(
        "routes back after the gobgpd restart",
        ROUTE,
        || {
            lab.fib_vias("0.0.0.0/0") == [peer_ip.as_str()]
                && gobgp.host_route() == Some((vec![u64::from(HOST_ASN)], lab.host_ip.clone()))
        },
        || format!("adj-in: {:?}\n{}", gobgp.adj_in(), lab.fib_and_logs()),
    );
    assert!(!lab.fib().contains_key("10.77.0.0/24"), "{:?}", lab.fib());
    assert!(lab.agent_running(), "router-agent exited\n{}", lab.logs());
    eprintln!("gobgp test took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// ExaBGP

const EXABGP_ASN: u32 = 65020;

struct ExaBgp<'a> {
    lab: &'a Lab,
}

impl ExaBgp<'_> {
    fn config(lab: &Lab) -> String {
        format!(
            r#"neighbor {host} {{
  router-id {peer};
  local-address {peer};
  local-as {EXABGP_ASN};
  peer-as {HOST_ASN};
  hold-time 9;
  family {{ ipv4 unicast; }}
  capability {{ route-refresh; }}
{api}  static {{
    route 0.0.0.0/0 next-hop {peer};
    route 10.88.1.0/24 next-hop {peer};
    route 10.77.7.0/24 next-hop {peer};
  }}
}}
"#,
            host = lab.host_ip,
            peer = lab.peer_ip,
            api = exabgp::NEIGHBOR_API,
        )
    }

    fn start(lab: &mut Lab) {
        let config = Self::config(lab);
        exabgp::start(lab, &config);
    }

    /// Sends one API command (a line).
    fn command(&self, line: &str) {
        exabgp::command(self.lab, line);
    }

    /// UPDATEs announcing the host's /32: (AS path, next hop, origin) of each (of each next
    /// hop, if an UPDATE had several).
    fn host_announcements(&self) -> Vec<(Vec<u64>, String, String)> {
        exabgp::announcements(self.lab, "ipv4 unicast", HOST_PREFIX)
            .into_iter()
            .flat_map(|(as_path, next_hops, origin)| {
                next_hops
                    .into_iter()
                    .map(move |next_hop| (as_path.clone(), next_hop, origin.clone()))
            })
            .collect()
    }

    /// Everything the host announced, withdrew or marked (End-of-RIB), for failure messages.
    fn updates(&self) -> String {
        exabgp::updates(self.lab)
    }

    fn states(&self) -> Vec<String> {
        exabgp::states(self.lab)
    }

    fn ups(&self) -> usize {
        exabgp::ups(self.lab)
    }
}

#[test]
fn exabgp_peer_api_announce_withdraw_refresh_teardown() {
    let started = Instant::now();
    let mut lab = Lab::new("exabgp", "hx", "px", 3);
    let prefix_list = r#"
[bgp.prefix_list.from-exabgp]
ipv4 = [
  { action = "permit", prefix = "0.0.0.0/0" },
  { action = "permit", prefix = "10.88.0.0/16", ge = 24, le = 24 },
]
"#;
    // The agent first: ExaBGP only connects out, with a growing back-off after failures.
    lab.start_agent(&agent_bgp_config(
        &lab.peer_ip,
        EXABGP_ASN,
        "{ prefix_list = \"from-exabgp\" }",
        prefix_list,
    ));
    ExaBgp::start(&mut lab);
    let peer_ip = lab.peer_ip.clone();
    let via = [peer_ip.as_str()];
    let exabgp = ExaBgp { lab: &lab };
    let evidence = || format!("exabgp saw:\n{}\n{}", exabgp.updates(), lab.fib_and_logs());

    // Established; ExaBGP's static routes in the FIB as far as the import policy allows.
    wait_for(
        "the ExaBGP session to be established (both sides)",
        SESSION,
        || exabgp.ups() == 1 && lab.agent_established() == 1,
        evidence,
    );
    wait_for(
        "0.0.0.0/0 and 10.88.1.0/24 via ExaBGP in the FIB",
        ROUTE,
        || lab.fib_vias("0.0.0.0/0") == via && lab.fib_vias("10.88.1.0/24") == via,
        evidence,
    );
    assert!(
        !lab.fib().contains_key("10.77.7.0/24"),
        "10.77.7.0/24 is not in the prefix list: {:?}",
        lab.fib()
    );

    // ExaBGP received the host's /32: AS path [4200000001], next hop the host's address.
    wait_for(
        "ExaBGP to receive 192.0.2.20/32",
        ROUTE,
        || !exabgp.host_announcements().is_empty(),
        evidence,
    );
    let expected = (
        vec![u64::from(HOST_ASN)],
        lab.host_ip.clone(),
        "igp".to_owned(),
    );
    assert_eq!(
        exabgp.host_announcements(),
        std::slice::from_ref(&expected),
        "{}",
        evidence()
    );

    // API: withdraw the more-specific, announce another one.
    exabgp.command(&format!("withdraw route 10.88.1.0/24 next-hop {peer_ip}"));
    exabgp.command(&format!("announce route 10.88.2.0/24 next-hop {peer_ip}"));
    wait_for(
        "10.88.1.0/24 out of and 10.88.2.0/24 into the FIB",
        ROUTE,
        || {
            let fib = lab.fib();
            !fib.contains_key("10.88.1.0/24")
                && fib.get("10.88.2.0/24").is_some_and(|v| v == &via)
                && fib.get("0.0.0.0/0").is_some_and(|v| v == &via)
        },
        evidence,
    );

    // ROUTE-REFRESH (RFC 2918): the host sends its Adj-RIB-Out again.
    exabgp.command(&format!(
        "neighbor {} announce route-refresh ipv4 unicast",
        lab.host_ip
    ));
    wait_for(
        "the host to re-send 192.0.2.20/32 after ROUTE-REFRESH",
        ROUTE,
        || exabgp.host_announcements().len() >= 2,
        evidence,
    );
    assert_eq!(
        exabgp.host_announcements(),
        [expected.clone(), expected.clone()],
        "one re-advertisement per ROUTE-REFRESH\n{}",
        evidence()
    );

    // Withdraw the default and announce it again.
    exabgp.command(&format!("withdraw route 0.0.0.0/0 next-hop {peer_ip}"));
    wait_for(
        "0.0.0.0/0 to leave the FIB after ExaBGP's withdraw",
        ROUTE,
        || !lab.fib().contains_key("0.0.0.0/0") && lab.fib_vias("10.88.2.0/24") == via,
        evidence,
    );
    exabgp.command(&format!("announce route 0.0.0.0/0 next-hop {peer_ip}"));
    wait_for(
        "0.0.0.0/0 back in the FIB",
        ROUTE,
        || lab.fib_vias("0.0.0.0/0") == via,
        evidence,
    );

    // NOTIFICATION: ExaBGP tears the session down (Cease, Administrative Shutdown). The host
    // drops ExaBGP's routes, survives, and the session comes back with them. ExaBGP
    // reconnects at once and the agent lets a peer that failed once straight back in
    // (fsm/peering.rs), so the routes may be back before a poll sees them gone: the agent's
    // log says they were withdrawn (both of ExaBGP's prefixes).
    exabgp.command(&format!("neighbor {} teardown 2", lab.host_ip));
    wait_for(
        "the agent to receive the Cease and withdraw ExaBGP's two routes",
        ROUTE,
        || {
            lab.agent_log_count(&["NOTIFICATION received: Cease/Administrative Shutdown"]) == 1
                && lab.agent_log_count(&["session down", "Cease / Administrative Shutdown"]) == 1
                && lab.agent_log_count(&[
                    "BGP neighbor down: its routes withdrawn",
                    &format!("{}:", lab.peer_ip),
                    "prefixes=2",
                ]) == 1
        },
        evidence,
    );
    wait_for(
        "the ExaBGP session to come back after the teardown",
        SESSION,
        || exabgp.ups() == 2 && lab.agent_established() == 2,
        || format!("exabgp states: {:?}\n{}", exabgp.states(), evidence()),
    );
    wait_for(
        "ExaBGP's routes reinstalled and the host's /32 re-sent after the teardown",
        ROUTE,
        || {
            lab.fib_vias("0.0.0.0/0") == via
                && lab.fib_vias("10.88.2.0/24") == via
                && exabgp.host_announcements().len() >= 3
        },
        evidence,
    );
    let fib = lab.fib();
    assert!(
        !fib.contains_key("10.88.1.0/24") && !fib.contains_key("10.77.7.0/24"),
        "{fib:?}"
    );
    assert_eq!(
        exabgp.host_announcements(),
        [expected.clone(), expected.clone(), expected],
        "{}",
        evidence()
    );
    assert!(lab.agent_running(), "router-agent exited\n{}", lab.logs());
    eprintln!("exabgp test took {:?}", started.elapsed());
}

/// A passive neighbor (the host never connects, ExaBGP always does) must come back after a
/// NOTIFICATION as an active one does. ExaBGP reconnects within milliseconds, while the host's
/// session is damped in Idle (IdleHold, 5 s): the host must refuse that connection (Idle
/// refuses connections, see the driver contract in `bgp/fsm.rs`) so that ExaBGP retries.
/// (A connection accepted in Idle used to be held silently; the session never came back.)
#[test]
fn exabgp_passive_neighbor_comes_back_after_teardown() {
    let started = Instant::now();
    let mut lab = Lab::new("exapassive", "hy", "py", 5);
    let mut config = agent_bgp_config(&lab.peer_ip, EXABGP_ASN, "\"default-only\"", "");
    config.push_str("passive = true\n");
    lab.start_agent(&config);
    ExaBgp::start(&mut lab);
    let exabgp = ExaBgp { lab: &lab };
    let evidence = || {
        format!(
            "exabgp states: {:?}\n{}",
            exabgp.states(),
            lab.fib_and_logs()
        )
    };
    wait_for(
        "the passive session to be established",
        SESSION,
        || exabgp.ups() == 1 && lab.agent_established() == 1,
        evidence,
    );
    exabgp.command(&format!("neighbor {} teardown 2", lab.host_ip));
    wait_for(
        "the passive session to come back after ExaBGP's teardown",
        Duration::from_secs(30),
        || exabgp.ups() == 2 && lab.agent_established() == 2,
        evidence,
    );
    wait_for(
        "0.0.0.0/0 via ExaBGP back in the FIB",
        ROUTE,
        || lab.fib_vias("0.0.0.0/0") == [lab.peer_ip.as_str()],
        evidence,
    );
    eprintln!("exabgp passive test took {:?}", started.elapsed());
}
