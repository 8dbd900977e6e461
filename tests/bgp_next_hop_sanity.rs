//! Next hops nobody may forward to (RFC 4271 9.1.2.1), announced by ExaBGP (see
//! `interop/mod.rs` for the lab; needs root and the Debian package `exabgp`):
//!
//! - `unusable_next_hops_are_never_installed`: a configured neighbor announces prefixes
//!   through the agent's own address (on the link and on its loopback), the link's broadcast
//!   address, 127.0.0.1, 224.0.0.1, and one good next hop. Only the good one reaches `show
//!   fib` and the kernel; no neighbor entry is created for the bad ones; `show routes --json`
//!   gives each one's reason; the log says it once per cause. An address the host takes later
//!   makes the route through it unusable, and giving it up again makes it usable.
//! - `dynamic_neighbor_third_party_next_hop`: a dynamic neighbor's route through another
//!   host is kept but unused, until its range allows third-party next hops (reload).
//!
//! Set `HRGX_KEEP_LOGS=1` to keep each lab's directory (configs and logs).

mod interop;
mod netns;

use std::time::Duration;

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab, exabgp};
use netns::{AGENT, wait_for};

const SESSION: Duration = Duration::from_secs(20);
const ROUTE: Duration = Duration::from_secs(10);
const EXABGP_ASN: u32 = 65020;

fn exabgp_neighbor(lab: &Lab, routes: &[(&str, &str)]) -> String {
    let statics: String = routes
        .iter()
        .map(|(prefix, next_hop)| format!("    route {prefix} next-hop {next_hop};\n"))
        .collect();
    format!(
        r#"neighbor {host} {{
  router-id {peer};
  local-address {peer};
  local-as {EXABGP_ASN};
  peer-as {HOST_ASN};
  hold-time 9;
  family {{ ipv4 unicast; }}
{api}  static {{
{statics}  }}
}}
"#,
        host = lab.host_ip,
        peer = lab.peer_ip,
        api = exabgp::NEIGHBOR_API,
    )
}

fn agent_config(neighbors: &str) -> String {
    format!(
        r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_PREFIX}" }}]

{neighbors}
"#
    )
}

/// `show routes --json`: prefix -> status of its (only) path.
fn path_status(lab: &Lab) -> std::collections::BTreeMap<String, String> {
    lab.show("routes")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|route| {
            let status = route["paths"].get(0)?["status"].as_str()?.to_owned();
            Some((route["prefix"].as_str()?.to_owned(), status))
        })
        .collect()
}

/// Every prefix `show fib` holds, whatever its action.
fn fib_prefixes(lab: &Lab) -> Vec<String> {
    lab.show("fib")["routes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|route| route["prefix"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn unusable_next_hops_are_never_installed() {
    let mut lab = Lab::new("nhsane", "hn", "pn", 91);
    let (host, peer) = (lab.host_ip.clone(), lab.peer_ip.clone());
    let later_own = "10.0.91.7";
    let cases = [
        (
            "198.51.100.1/32",
            host.as_str(),
            "host's own address 10.0.91.2",
        ),
        (
            "198.51.100.2/32",
            "10.0.91.255",
            "10.0.91.255 is the broadcast address of 10.0.91.0/24",
        ),
        (
            "198.51.100.3/32",
            "127.0.0.1",
            "127.0.0.1 is a loopback address",
        ),
        (
            "198.51.100.4/32",
            "224.0.0.1",
            "224.0.0.1 is a multicast address",
        ),
        (
            "198.51.100.6/32",
            HOST_LOOPBACK,
            "host's own address 192.0.2.20",
        ),
        (
            "198.51.100.8/32",
            "10.0.91.0",
            "10.0.91.0 is the network address of 10.0.91.0/24",
        ),
    ];
    let good = ("198.51.100.5/32", peer.as_str());
    let becomes_own = ("198.51.100.7/32", later_own);
    let mut routes: Vec<(&str, &str)> = cases.iter().map(|(p, nh, _)| (*p, *nh)).collect();
    routes.extend([good, becomes_own]);

    lab.start_agent(&agent_config(&format!(
        "[[bgp.neighbor]]\naddress = \"{peer}\"\nremote_as = {EXABGP_ASN}\nimport = \"all\"\n\
         export = \"all\"\nhold_time = 9\n"
    )));
    let config = exabgp_neighbor(&lab, &routes);
    exabgp::start(&mut lab, &config);

    wait_for(
        "the good routes in the XDP FIB",
        SESSION + ROUTE,
        || lab.fib_vias(good.0) == [good.1] && lab.fib_vias(becomes_own.0) == [becomes_own.1],
        || lab.fib_and_logs(),
    );
    wait_for(
        "every announced prefix in show routes",
        ROUTE,
        || path_status(&lab).len() == routes.len(),
        || format!("{:?}\n{}", path_status(&lab), lab.logs()),
    );
    let statuses = path_status(&lab);
    assert_eq!(statuses[good.0], "best");
    for (prefix, _, why) in &cases {
        assert_eq!(
            statuses[*prefix],
            format!("next hop unusable: {why}"),
            "{prefix}: {statuses:?}"
        );
    }
    // Nothing of them in the FIB, the kernel, or the neighbor table.
    let fib = fib_prefixes(&lab);
    let kernel = lab.kernel_routes();
    let neighbors = lab.exec("host", &["ip", "-4", "neigh", "show"]);
    for (prefix, next_hop, _) in &cases {
        let address = prefix.trim_end_matches("/32");
        assert!(!fib.iter().any(|p| p == prefix), "{prefix} in {fib:?}");
        assert!(
            !kernel.contains(address),
            "{prefix} in the kernel:\n{kernel}"
        );
        assert!(
            !neighbors
                .lines()
                .any(|l| l.starts_with(&format!("{next_hop} "))),
            "neighbor entry for {next_hop}:\n{neighbors}"
        );
    }
    assert!(kernel.contains("198.51.100.5 via 10.0.91.1"), "{kernel}");
    // The table view says why too.
    let table = lab
        .command_in("host", AGENT)
        .args(["show", "routes", "-c"])
        .arg(lab.path("agent.toml"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("(next hop unusable: 127.0.0.1 is a loopback address)"),
        "{table}"
    );
    // Said once per cause, not per prefix or UPDATE.
    for (_, _, why) in &cases {
        assert_eq!(
            lab.agent_log_count(&[&format!("next hop unusable: {why}: routes")]),
            1,
            "{why}\n{}",
            lab.logs()
        );
    }

    // The host takes 10.0.91.7: the route through it goes, and comes back when it is gone.
    let cidr = format!("{later_own}/24");
    lab.exec("host", &["ip", "addr", "add", &cidr, "dev", &lab.host_if]);
    wait_for(
        "the route through a new own address out of the FIB",
        ROUTE,
        || {
            lab.fib_vias(becomes_own.0).is_empty()
                && path_status(&lab)[becomes_own.0]
                    == "next hop unusable: host's own address 10.0.91.7"
        },
        || format!("{:?}\n{}", path_status(&lab), lab.fib_and_logs()),
    );
    assert!(!lab.kernel_routes().contains("198.51.100.7"));
    lab.exec("host", &["ip", "addr", "del", &cidr, "dev", &lab.host_if]);
    wait_for(
        "the route back once the address is gone",
        ROUTE,
        || lab.fib_vias(becomes_own.0) == [becomes_own.1],
        || format!("{:?}\n{}", path_status(&lab), lab.fib_and_logs()),
    );
    assert_eq!(lab.fib_vias(good.0), [good.1]);
    assert!(lab.agent_running(), "router-agent exited\n{}", lab.logs());
}

#[test]
fn dynamic_neighbor_third_party_next_hop() {
    let mut lab = Lab::new("nhdyn", "hd", "pd", 92);
    let peer = lab.peer_ip.clone();
    let (own, third_party) = (
        ("198.51.100.10/32", peer.as_str()),
        ("198.51.100.11/32", "10.0.92.3"),
    );
    let dynamic = |allowed: bool| {
        agent_config(&format!(
            "[[bgp.dynamic_neighbor]]\nrange = \"10.0.92.0/24\"\nremote_as = \"external\"\n\
             import = \"all\"\nexport = \"all\"\nhold_time = 9\nthird_party_next_hop = {allowed}\n"
        ))
    };
    lab.start_agent(&dynamic(false));
    let config = exabgp_neighbor(&lab, &[own, third_party]);
    exabgp::start(&mut lab, &config);

    wait_for(
        "the dynamic peer's own-next-hop route in the FIB",
        SESSION + ROUTE,
        || lab.fib_vias(own.0) == [own.1],
        || lab.fib_and_logs(),
    );
    wait_for(
        "the third-party route shown unusable",
        ROUTE,
        || {
            path_status(&lab).get(third_party.0).map(String::as_str)
                == Some("next hop unusable: not the neighbor's own address")
        },
        || format!("{:?}\n{}", path_status(&lab), lab.logs()),
    );
    assert!(lab.fib_vias(third_party.0).is_empty(), "{:?}", lab.fib());
    assert!(!lab.kernel_routes().contains("198.51.100.11"));

    // The range allows it: the dynamic peer goes (its template changed) and comes back.
    let path = lab.path_str("agent.toml");
    let header = {
        let text = std::fs::read_to_string(&path).unwrap();
        text[..text.find("[bgp]").unwrap()].to_owned()
    };
    std::fs::write(&path, format!("{header}{}", dynamic(true))).unwrap();
    let out = lab
        .command_in("host", AGENT)
        .args(["reload", "-c", &path])
        .output()
        .unwrap();
    assert!(out.status.success(), "reload: {out:?}");
    wait_for(
        "the third-party route in the FIB once allowed",
        SESSION + ROUTE,
        || lab.fib_vias(third_party.0) == [third_party.1] && lab.fib_vias(own.0) == [own.1],
        || format!("{:?}\n{}", path_status(&lab), lab.fib_and_logs()),
    );
    assert!(lab.agent_running(), "router-agent exited\n{}", lab.logs());
}
