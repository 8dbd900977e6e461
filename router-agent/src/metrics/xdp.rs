//! The XDP program's counters, read from the pinned per-CPU maps at scrape time and summed
//! over CPUs. The nexthops are the FIB's (by id), so a scrape never walks the route tables:
//! a full table costs it nothing, whatever the lookup engine.

use std::{net::IpAddr, path::Path};

use router_common::{NexthopStats, Verdict};

use super::{
    NexthopLabel, Snapshot,
    exposition::{Exposition, count, set},
};
use crate::datapath::pinned::PinnedDatapath;

pub struct XdpCounters {
    /// Per [`Verdict::ALL`].
    pub verdicts: Vec<u64>,
    /// Per nexthop of the snapshot, in its order.
    pub nexthops: Vec<NexthopStats>,
}

/// None when the pinned maps cannot be read (no datapath yet).
pub fn read(pin_dir: &Path, nexthops: &[NexthopLabel]) -> Option<XdpCounters> {
    let read = || -> anyhow::Result<XdpCounters> {
        let datapath = PinnedDatapath::open(pin_dir)?;
        let ids: Vec<u32> = nexthops.iter().map(|nexthop| nexthop.id).collect();
        Ok(XdpCounters {
            verdicts: datapath.verdicts()?,
            nexthops: datapath.nexthops_stats(&ids)?,
        })
    };
    read()
        .map_err(|err| {
            // Each scrape would say it again: debug only; `hostrouter_xdp_maps_readable` says
            // it to alerts.
            tracing::debug!("metrics: datapath counters unreadable: {err:#}");
        })
        .ok()
}

pub fn record(out: &mut Exposition, counters: Option<&XdpCounters>, snapshot: &Snapshot) {
    let verdicts = out.counter(
        "hostrouter_xdp_packets",
        "Packets the XDP program handled, by verdict, summed over CPUs",
    );
    let nexthop_packets = out.counter(
        "hostrouter_xdp_nexthop_packets",
        "Packets XDP forwarded to a nexthop, summed over CPUs",
    );
    let nexthop_bytes = out.counter(
        "hostrouter_xdp_nexthop_bytes",
        "Bytes XDP forwarded to a nexthop, summed over CPUs",
    );
    let readable = out.gauge(
        "hostrouter_xdp_maps_readable",
        "1 when the scrape could read the datapath's pinned maps",
    );
    let Some(counters) = counters else {
        set(&readable, Vec::new(), 0.0);
        return;
    };
    set(&readable, Vec::new(), 1.0);
    for (verdict, packets) in Verdict::ALL.iter().zip(&counters.verdicts) {
        let labels = vec![("verdict", verdict.name().to_owned())];
        count(&verdicts, labels, *packets as f64);
    }
    for (nexthop, stats) in snapshot.nexthops.iter().zip(&counters.nexthops) {
        let family = match nexthop.via {
            IpAddr::V4(_) => "ipv4",
            IpAddr::V6(_) => "ipv6",
        };
        // The BGP neighbor this next hop is, so that traffic joins with the session series.
        let neighbor = snapshot
            .neighbors
            .iter()
            .find(|n| n.status.address == Some(nexthop.via))
            .map(super::bgp::neighbor_label)
            .unwrap_or_default();
        let labels = vec![
            ("nexthop", nexthop.via.to_string()),
            ("interface", nexthop.interface.clone()),
            ("family", family.to_owned()),
            ("neighbor", neighbor),
        ];
        count(&nexthop_packets, labels.clone(), stats.packets as f64);
        count(&nexthop_bytes, labels, stats.bytes as f64);
    }
}
