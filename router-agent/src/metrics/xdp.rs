//! The XDP program's counters, read from the pinned per-CPU maps at scrape time and summed
//! over CPUs: what `show counters` reads.

use std::{net::IpAddr, path::Path};

use router_common::Verdict;

use super::exposition::{Exposition, count, set};
use crate::{bgp::northbound::NeighborMetrics, show::CountersView};

/// What `show counters` reads: None when the pinned maps cannot be read (no datapath yet).
pub fn read(pin_dir: &Path) -> Option<CountersView> {
    crate::show::counters(pin_dir)
        .map_err(|err| {
            // Each scrape would say it again: debug only; `hostrouter_xdp_maps_readable` says
            // it to alerts.
            tracing::debug!("metrics: datapath counters unreadable: {err:#}");
        })
        .ok()
}

pub fn record(
    out: &mut Exposition,
    counters: Option<&CountersView>,
    neighbors: &[NeighborMetrics],
) {
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
    let Some(view) = counters else {
        set(&readable, Vec::new(), 0.0);
        return;
    };
    set(&readable, Vec::new(), 1.0);
    for verdict in Verdict::ALL {
        let packets = view.verdicts.get(verdict.name()).copied().unwrap_or(0);
        count(
            &verdicts,
            vec![("verdict", verdict.name().to_owned())],
            packets as f64,
        );
    }
    for nexthop in &view.nexthops {
        let via: Option<IpAddr> = nexthop.via.parse().ok();
        let family = match via {
            Some(IpAddr::V6(_)) => "ipv6",
            _ => "ipv4",
        };
        // The BGP neighbor this next hop is, so that traffic joins with the session series.
        let neighbor = neighbors
            .iter()
            .find(|n| via.is_some() && n.status.address == via)
            .map(super::bgp::neighbor_label)
            .unwrap_or_default();
        let labels = vec![
            ("nexthop", nexthop.via.clone()),
            ("interface", nexthop.interface.clone()),
            ("family", family.to_owned()),
            ("neighbor", neighbor),
        ];
        count(&nexthop_packets, labels.clone(), nexthop.packets as f64);
        count(&nexthop_bytes, labels, nexthop.bytes as f64);
    }
}
