//! The bench's network namespace, and the kernel FIB the `kernel` engine reads.
//!
//! Every engine runs in one namespace of its own, on one veth end (`bc0`) that is the ingress
//! interface of the test runs (`ctx.ingress_ifindex`) and the egress of every nexthop: the
//! kernel engine's `bpf_fib_lookup` needs a real input device and routes whose gateways
//! resolve, and the other engines then run on the same device. Test runs never transmit.
//!
//! The kernel engine's routes go where the agent puts them: `Fib::set_route` emits a
//! [`KernelChange`] per route (static routes are always mirrored), and the agent's
//! [`RouteWriter`] (netlink, 256 messages per sendmsg) writes them, as its kernel-routes
//! thread does.

use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use netns_lab::Namespace;
use router_agent::{
    fib::{Batch, KernelChange},
    netlink::{KernelNexthop, KernelRoute, RTPROT_HOSTROUTER, RouteChange, RouteWriter},
};

use super::INGRESS_MAC;

/// Namespace names start with this, then the pid (stale ones are removed at start).
pub const TAG: &str = "xtask-cost-";

/// The interface everything runs on, and its peer (only there to make the link up).
pub const DEVICE: &str = "bc0";
const PEER: &str = "bc1";
const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xbb, 0x01];
/// `bc0`'s subnets, which the nexthops' gateways are in.
pub const SUBNET_V4: &str = "192.0.2.254/24";
pub const SUBNET_V6: &str = "2001:db8:ffff::fe/64";

/// The namespace, entered by the calling (main) thread for the whole bench.
pub struct Lab {
    pub ns: Namespace,
    /// `bc0`'s ifindex.
    pub ifindex: u32,
}

impl Lab {
    /// Creates the namespace, moves the calling thread into it, and sets up `bc0` with the
    /// gateways `vias` as permanent neighbors (MAC [`INGRESS_MAC`]: a frame the program
    /// rewrote is still addressed to `bc0`, which the hot measurement's reruns need).
    pub fn create(vias: &[IpAddr]) -> Result<Self> {
        netns_lab::remove_stale_labs(TAG);
        let ns = Namespace::create(&format!("{TAG}{}", std::process::id()))?;
        netns_lab::veth((&ns, DEVICE, INGRESS_MAC), (&ns, PEER, PEER_MAC))?;
        ns.ip(&["addr", "add", SUBNET_V4, "dev", DEVICE])?;
        ns.ip(&["addr", "add", SUBNET_V6, "dev", DEVICE, "nodad"])?;
        // The peer stays silent (no router solicitations, MLD): the attached program sees
        // test runs only.
        ns.sysctl(&format!("net.ipv6.conf.{PEER}.disable_ipv6"), "1")?;
        // bpf_fib_lookup answers "forwarding disabled" otherwise.
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        let mac = netns_lab::mac_string(&INGRESS_MAC);
        for via in vias {
            ns.ip(&[
                "neigh",
                "replace",
                &via.to_string(),
                "lladdr",
                &mac,
                "dev",
                DEVICE,
                "nud",
                "permanent",
            ])?;
        }
        let ifindex = ns.link(DEVICE)?.ifindex;
        ns.enter_current_thread()?;
        Ok(Self { ns, ifindex })
    }

    /// Where the datapath under test pins its link (stale ones go with the namespace's).
    pub fn pin_dir(&self) -> String {
        format!("/sys/fs/bpf/{}", self.ns.name())
    }
}

/// Writes a batch's kernel changes through the agent's [`RouteWriter`]; every change must be
/// taken.
pub fn write_kernel_routes(writer: &mut RouteWriter, batch: &Batch) -> Result<()> {
    if batch.kernel.is_empty() {
        return Ok(());
    }
    let changes: Vec<RouteChange> = batch.kernel.iter().map(route_change).collect();
    let failures = writer.apply(&changes)?;
    if let Some(first) = failures.into_iter().next() {
        bail!("the kernel refused a route change: {:#}", first.error);
    }
    Ok(())
}

/// The agent's conversion (`kernel_mirror::route_change`, private there).
fn route_change(change: &KernelChange) -> RouteChange {
    let route = |prefix, nexthops| KernelRoute {
        prefix,
        nexthops,
        protocol: RTPROT_HOSTROUTER,
    };
    match change {
        KernelChange::Replace { prefix, nexthops } => RouteChange::Replace(route(
            *prefix,
            nexthops
                .iter()
                .map(|key| KernelNexthop {
                    gateway: key.via,
                    ifindex: key.ifindex,
                })
                .collect(),
        )),
        KernelChange::Delete { prefix } => RouteChange::Delete(route(*prefix, Vec::new())),
    }
}

/// Routes of ours left in the namespace's kernel FIB (must be 0 after removal).
pub fn kernel_route_count(ns: &Namespace) -> Result<usize> {
    let proto = RTPROT_HOSTROUTER.to_string();
    let mut count = 0;
    for family in ["-4", "-6"] {
        let text = ns
            .ip(&[family, "route", "show", "proto", &proto])
            .context("listing kernel routes")?;
        // Multipath routes continue on indented `nexthop` lines.
        count += text
            .lines()
            .filter(|l| !l.starts_with(char::is_whitespace))
            .count();
    }
    Ok(count)
}
