//! The frames the per-packet measurements run.

use std::net::IpAddr;

use ipnet::IpNet;
use rand::rngs::SmallRng;

use super::{HOT_TTL, PROBE_SRC_V4, PROBE_SRC_V6, lab, table, table::Table};

/// The frames the per-packet measurements run, built once per table.
pub struct Probes {
    /// One frame per destination: (destination, frame), TTL 64, source ports varied so that
    /// flows spread over the ECMP buckets.
    pub v4: Vec<(IpAddr, Vec<u8>)>,
    pub v6: Vec<(IpAddr, Vec<u8>)>,
    /// The first destination of each family, TTL 255, for the hot measurement.
    pub hot_v4: Vec<u8>,
    pub hot_v6: Option<Vec<u8>>,
    pub arp: Vec<u8>,
}

impl Probes {
    pub fn new(table: &Table, rng: &mut SmallRng, count: usize) -> Self {
        let (src4, src6) = (PROBE_SRC_V4, PROBE_SRC_V6);
        let ports = |i: usize| (1024 + (i % 50_000) as u16, 443);
        // Not into bc0's own subnets: the kernel's connected routes would take those.
        let subnet_v4: IpNet = lab::SUBNET_V4.parse().expect("literal");
        let subnet_v6: IpNet = lab::SUBNET_V6.parse().expect("literal");
        let v4: Vec<_> = table
            .v4_destinations(rng, count)
            .into_iter()
            .filter(|dst| !subnet_v4.contains(&IpAddr::V4(*dst)))
            .enumerate()
            .map(|(i, dst)| (dst.into(), table::ipv4_udp(src4, dst, 64, ports(i))))
            .collect();
        let v6: Vec<_> = table
            .v6_destinations(rng, count)
            .into_iter()
            .filter(|dst| !subnet_v6.contains(&IpAddr::V6(*dst)))
            .enumerate()
            .map(|(i, dst)| (dst.into(), table::ipv6_udp(src6, dst, 64, ports(i))))
            .collect();
        let hot_v4 = match v4.first().map(|(dst, _)| *dst) {
            Some(IpAddr::V4(dst)) => table::ipv4_udp(src4, dst, HOT_TTL, ports(0)),
            _ => unreachable!("tables hold at least one IPv4 route"),
        };
        let hot_v6 = match v6.first().map(|(dst, _)| *dst) {
            Some(IpAddr::V6(dst)) => Some(table::ipv6_udp(src6, dst, HOT_TTL, ports(0))),
            _ => None,
        };
        Self {
            v4,
            v6,
            hot_v4,
            hot_v6,
            arp: table::arp(),
        }
    }
}
