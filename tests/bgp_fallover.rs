//! Fast external fallover with GoBGP as a directly connected eBGP peer (see `interop/mod.rs`
//! for the lab): GoBGP announces a prefix, the agent installs it (XDP FIB and the kernel's
//! table), then the peer's end of the link goes down. With `fast_external_fallover` (the
//! default) the session ends at once and the route leaves the FIB and the kernel's table
//! well within the 9 s hold time; with it off, the session lingers until hold expiry.
//! Needs root and gobgpd.

mod interop;
mod netns;

use std::{
    thread,
    time::{Duration, Instant},
};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab};
use netns::wait_for;

const GOBGP_ASN: u32 = 65040;
const PREFIX: &str = "10.78.1.0/24";
/// Well under the 9 s hold time, with room for a loaded CI machine.
const FAST: Duration = Duration::from_secs(3);

fn lab(tag: &str, subnet: u8, fallover: Option<bool>) -> Lab {
    let mut lab = Lab::new(tag, "fh", "fp", subnet);
    interop::gobgp::start(&mut lab, GOBGP_ASN, 1);
    interop::gobgp::cli(&lab, &["global", "rib", "add", "-a", "ipv4", PREFIX]).unwrap();
    let fallover =
        fallover.map_or_else(String::new, |on| format!("fast_external_fallover = {on}\n"));
    let bgp = format!(
        r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_PREFIX}" }}]

[[bgp.neighbor]]
address = "{peer}"
remote_as = {GOBGP_ASN}
import = "all"
export = "all"
hold_time = 9
{fallover}"#,
        peer = lab.peer_ip,
    );
    lab.start_agent(&bgp);
    wait_for(
        "the route from GoBGP in the FIB and the kernel",
        Duration::from_secs(30),
        || !lab.fib_vias(PREFIX).is_empty() && lab.kernel_routes().contains(PREFIX),
        || lab.fib_and_logs(),
    );
    lab
}

fn state(lab: &Lab) -> String {
    let neighbors = lab.show("neighbors");
    neighbors[0]["state"].as_str().unwrap_or("?").to_owned()
}

/// Takes the peer's end of the link down (the host's end loses its carrier) and returns
/// when that happened.
fn cut_link(lab: &Lab) -> Instant {
    lab.exec("peer", &["ip", "link", "set", &lab.peer_if, "down"]);
    Instant::now()
}

#[test]
fn link_down_ends_a_directly_connected_ebgp_session_at_once() {
    let lab = lab("fallover-on", 81, None);
    let cut = cut_link(&lab);
    wait_for(
        "the route to leave the FIB and the kernel's table",
        FAST,
        || lab.fib_vias(PREFIX).is_empty() && !lab.kernel_routes().contains(PREFIX),
        || format!("kernel: {}\n{}", lab.kernel_routes(), lab.fib_and_logs()),
    );
    let withdrawn = cut.elapsed();
    assert_ne!(state(&lab), "Established", "{}", lab.logs());
    assert_eq!(
        lab.agent_log_count(&["fast external fallover"]),
        1,
        "{}",
        lab.logs()
    );
    assert_eq!(lab.agent_log_count(&["hold timer expired"]), 0);
    eprintln!("link down -> session ended, route withdrawn (FIB and kernel) in {withdrawn:?}");
    // The link back: the session comes back and so does the route.
    lab.exec("peer", &["ip", "link", "set", &lab.peer_if, "up"]);
    wait_for(
        "the session and the route back",
        Duration::from_secs(30),
        || !lab.fib_vias(PREFIX).is_empty() && lab.kernel_routes().contains(PREFIX),
        || lab.fib_and_logs(),
    );
}

#[test]
fn without_fast_external_fallover_the_session_waits_for_hold_expiry() {
    let lab = lab("fallover-off", 82, Some(false));
    let cut = cut_link(&lab);
    thread::sleep(FAST);
    assert_eq!(state(&lab), "Established", "{}", lab.logs());
    assert!(lab.kernel_routes().contains(PREFIX));
    wait_for(
        "hold expiry",
        Duration::from_secs(15),
        || lab.agent_log_count(&["hold timer expired"]) > 0,
        || lab.logs(),
    );
    eprintln!(
        "without fast external fallover: hold expiry after {:?}",
        cut.elapsed()
    );
    assert_eq!(lab.agent_log_count(&["fast external fallover"]), 0);
}
