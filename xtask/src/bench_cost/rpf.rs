//! The per-packet measurements with reverse-path filtering on the ingress interface.

use std::net::IpAddr;

use anyhow::{Context, Result};
use ipnet::IpNet;
use router_agent::fib::{Batch, FibOp, Source};
use router_common::{INTERFACE_F_FORWARD_V4, INTERFACE_F_FORWARD_V6, Interface, RpfMode};

use super::{
    Bench, INGRESS_MAC, PROBE_SRC_V4, Probes,
    packets::{XDP_REDIRECT, frames, hot, series},
    report::{RpfPackets, Settings},
};

/// `INTERFACES[bc0]`, the ingress interface of the test runs.
pub(super) fn ingress(rpf: RpfMode) -> Interface {
    Interface {
        mac: INGRESS_MAC,
        rpf: rpf as u8,
        flags: INTERFACE_F_FORWARD_V4 | INTERFACE_F_FORWARD_V6,
    }
}

/// The IPv4 spread and hot measurements again with loose, then strict reverse-path filtering
/// on the ingress interface (the main ones run with it off). The probes' source gets a /32
/// route of its own through the first group, whose egress list names the ingress interface:
/// every probe takes the accept path, the one that costs the source lookup and (strict) the
/// group read. The route is removed afterwards.
pub(super) fn rpf_packets(
    bench: &mut Bench,
    probes: &Probes,
    settings: &Settings,
) -> Result<Vec<RpfPackets>> {
    let source = IpNet::from(IpAddr::V4(PROBE_SRC_V4));
    let mut batch = Batch::default();
    bench
        .fib
        .set_route(
            &mut batch,
            Source::Static,
            source,
            bench.v4_targets[0].clone(),
        )
        .context("route for the probes' source")?;
    bench.apply(&batch)?;
    let group_id = bench
        .datapath
        .lookup_group(IpAddr::V4(PROBE_SRC_V4))?
        .context("the source's route is not in the datapath")?;
    let mut group = bench.datapath.group(group_id)?;
    let ingress = bench.ifindex;
    if !group.egress.contains(&ingress) {
        // A FIB that does not record egress interfaces yet: the accept path needs it.
        group.egress[0] = ingress;
        let op = FibOp::WriteGroup {
            id: group_id,
            group: Box::new(group),
        };
        bench.datapath.apply_ops([&op])?;
    }
    let mut runs = Vec::new();
    for (mode, name) in [(RpfMode::Loose, "loose"), (RpfMode::Strict, "strict")] {
        bench.datapath.set_interface(ingress, self::ingress(mode))?;
        runs.push(RpfPackets {
            mode: name,
            v4_spread: series(
                &mut bench.datapath,
                ingress,
                frames(&probes.v4),
                XDP_REDIRECT,
            )?,
            v4_hot: hot(
                &mut bench.datapath,
                ingress,
                &probes.hot_v4,
                settings.hot_pairs,
            )?,
        });
    }
    bench
        .datapath
        .set_interface(ingress, self::ingress(RpfMode::Off))?;
    let mut batch = Batch::default();
    bench.fib.remove_route(&mut batch, Source::Static, source);
    bench.apply(&batch)?;
    Ok(runs)
}
