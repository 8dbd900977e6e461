//! Synthetic routing tables and the traffic destinations that go with them.
//!
//! The full table imitates an Internet (DFZ) table: prefixes spread over the unicast space
//! with a realistic prefix-length mix (mostly /24, then /22, /23, /20, /16, /21, /19, ...; a
//! few /25-/32). Traffic may only go to the test ranges we assign inside our namespaces
//! (10.0.0.0/8, 2001:db8::/32), so a share of the table ([`TEST_RANGE_SHARE`]) is generated
//! inside those ranges with the same mix, and the destinations are drawn from those prefixes
//! only. The rest of the table is there for its size (trie depth, kernel FIB size, memory,
//! programming time); the packets never touch it.

use std::{
    collections::HashSet,
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
};

use anyhow::{Context, Result};
use ipnet::{Ipv4Net, Ipv6Net};
use rand::{Rng, SeedableRng, rngs::SmallRng};

use super::topology::{ROUTE_PROTOCOL, SINK_V4, SINK_V6};
use netns_lab::Namespace;

/// Share of the full table inside 10.0.0.0/8 and 2001:db8::/32: the prefixes traffic hits.
pub const TEST_RANGE_SHARE: f64 = 0.06;

/// Link subnets of the benchmark topology: no table prefix may overlap them, or a destination
/// could be one of the routers' own addresses.
const LINKS_V4: [(u32, u8); 2] = [(0x0a0a_0000, 16), (0x0a14_0000, 16)]; // 10.10/16, 10.20/16
const LINKS_V6: [(u128, u8); 2] = [
    (0x2001_0db8_0010_0000_0000_0000_0000_0000, 48),
    (0x2001_0db8_0020_0000_0000_0000_0000_0000, 48),
];

/// Ranges that are not part of a public table (besides 0/8, 10/8, 127/8 and 224/3).
const RESERVED_V4: [(u32, u8); 5] = [
    (0x6440_0000, 10), // 100.64/10
    (0xa9fe_0000, 16), // 169.254/16
    (0xac10_0000, 12), // 172.16/12
    (0xc0a8_0000, 16), // 192.168/16
    (0xc612_0000, 15), // 198.18/15
];

/// IPv4 prefix lengths, per 10,000 routes.
const MIX_V4: [(u8, u32); 25] = [
    (8, 1),
    (9, 1),
    (10, 2),
    (11, 3),
    (12, 6),
    (13, 12),
    (14, 25),
    (15, 40),
    (16, 420),
    (17, 80),
    (18, 120),
    (19, 250),
    (20, 460),
    (21, 400),
    (22, 1200),
    (23, 1000),
    (24, 5950),
    (25, 10),
    (26, 10),
    (27, 5),
    (28, 5),
    (29, 5),
    (30, 3),
    (31, 1),
    (32, 10),
];

/// IPv6 prefix lengths, per 10,000 routes.
const MIX_V6: [(u8, u32); 26] = [
    (19, 5),
    (20, 10),
    (24, 10),
    (28, 100),
    (29, 300),
    (30, 50),
    (31, 50),
    (32, 1200),
    (33, 100),
    (34, 100),
    (35, 100),
    (36, 300),
    (37, 50),
    (38, 80),
    (39, 80),
    (40, 500),
    (41, 50),
    (42, 150),
    (43, 50),
    (44, 800),
    (45, 150),
    (46, 200),
    (47, 200),
    (48, 5000),
    (56, 100),
    (64, 50),
];

pub struct Table {
    /// "1 route", "full table", ...
    pub name: String,
    pub v4: Vec<Ipv4Net>,
    pub v6: Vec<Ipv6Net>,
    /// Traffic destinations, each inside a prefix of the table drawn at random.
    pub dst_v4: Vec<Ipv4Addr>,
    pub dst_v6: Vec<Ipv6Addr>,
    /// How many distinct prefixes the destinations were drawn from.
    pub hit_v4: usize,
    pub hit_v6: usize,
}

impl Table {
    /// One IPv4 route (a /16) and one IPv6 route (a /48) that cover every destination.
    pub fn single(destinations: usize, seed: u64) -> Self {
        let v4 = Ipv4Net::new(Ipv4Addr::new(10, 128, 0, 0), 16).expect("valid");
        let v6 = Ipv6Net::new("2001:db8:8000::".parse().expect("valid"), 48).expect("valid");
        let mut rng = SmallRng::seed_from_u64(seed);
        Self {
            name: "1 route".into(),
            dst_v4: (0..destinations).map(|_| host_v4(&mut rng, v4)).collect(),
            dst_v6: (0..destinations).map(|_| host_v6(&mut rng, v6)).collect(),
            v4: vec![v4],
            v6: vec![v6],
            hit_v4: 1,
            hit_v6: 1,
        }
    }

    /// `v4_routes` + `v6_routes` synthetic Internet-like routes (deterministic for a seed).
    pub fn internet(v4_routes: usize, v6_routes: usize, destinations: usize, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let in_test_v4 = ((v4_routes as f64 * TEST_RANGE_SHARE) as usize).max(1);
        let in_test_v6 = ((v6_routes as f64 * TEST_RANGE_SHARE) as usize).max(1);
        let v4 = internet_v4(&mut rng, v4_routes, in_test_v4);
        let v6 = internet_v6(&mut rng, v6_routes, in_test_v6);
        // The first `in_test_*` prefixes are the ones inside the test ranges.
        let dst_v4 = (0..destinations)
            .map(|_| {
                let prefix = v4[rng.random_range(0..in_test_v4)];
                host_v4(&mut rng, prefix)
            })
            .collect();
        let dst_v6 = (0..destinations)
            .map(|_| {
                let prefix = v6[rng.random_range(0..in_test_v6)];
                host_v6(&mut rng, prefix)
            })
            .collect();
        Self {
            name: format!("{} routes", thousands(v4_routes + v6_routes)),
            v4,
            v6,
            dst_v4,
            dst_v6,
            hit_v4: in_test_v4,
            hit_v6: in_test_v6,
        }
    }

    /// Prefix-length histogram of the IPv4 routes, "/24 59.5%, /22 12.0%, ..." (top `n`).
    pub fn v4_mix(&self, n: usize) -> String {
        let mut counts = [0usize; 33];
        for prefix in &self.v4 {
            counts[usize::from(prefix.prefix_len())] += 1;
        }
        let mut by_count: Vec<(usize, usize)> = counts.iter().copied().enumerate().collect();
        by_count.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
        let mut out = String::new();
        for (len, count) in by_count.into_iter().take(n).filter(|(_, c)| *c > 0) {
            let share = 100.0 * count as f64 / self.v4.len() as f64;
            let _ = write!(out, "/{len} {share:.1}%, ");
        }
        let long: usize = counts[25..].iter().sum();
        let _ = write!(out, "/25-/32 {long}");
        out
    }

    /// Installs the table in the namespace's kernel FIB with `ip -batch` (one netlink request
    /// per route, as fast as iproute2 goes), via the sink-side nexthop.
    pub fn install_kernel(&self, ns: &Namespace, scratch: &std::path::Path) -> Result<()> {
        let mut text = String::with_capacity((self.v4.len() + self.v6.len()) * 48);
        for prefix in &self.v4 {
            let _ = writeln!(
                text,
                "route add {prefix} via {SINK_V4} proto {ROUTE_PROTOCOL}"
            );
        }
        for prefix in &self.v6 {
            let _ = writeln!(
                text,
                "route add {prefix} via {SINK_V6} proto {ROUTE_PROTOCOL}"
            );
        }
        std::fs::write(scratch, text).with_context(|| format!("writing {}", scratch.display()))?;
        let result = ns.ip(&["-batch", &scratch.display().to_string()]);
        let _ = std::fs::remove_file(scratch);
        result.map(|_| ())
    }

    /// Removes what [`Table::install_kernel`] installed.
    pub fn flush_kernel(ns: &Namespace) -> Result<()> {
        let proto = ROUTE_PROTOCOL.to_string();
        ns.ip(&["-4", "route", "flush", "proto", &proto])?;
        ns.ip(&["-6", "route", "flush", "proto", &proto])?;
        Ok(())
    }
}

fn sampler(mix: &[(u8, u32)]) -> impl Fn(&mut SmallRng) -> u8 + '_ {
    let total: u32 = mix.iter().map(|(_, w)| w).sum();
    move |rng| {
        let mut pick = rng.random_range(0..total);
        for &(len, weight) in mix {
            if pick < weight {
                return len;
            }
            pick -= weight;
        }
        unreachable!("pick < total")
    }
}

fn mask_v4(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

fn mask_v6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

/// Whether the prefixes `a` and `b` share any address (one contains the other).
fn overlap_v4((a, a_len): (u32, u8), (b, b_len): (u32, u8)) -> bool {
    let len = a_len.min(b_len);
    a & mask_v4(len) == b & mask_v4(len)
}

fn overlap_v6((a, a_len): (u128, u8), (b, b_len): (u128, u8)) -> bool {
    let len = a_len.min(b_len);
    a & mask_v6(len) == b & mask_v6(len)
}

/// `total` unique IPv4 prefixes; the first `in_test` inside 10.0.0.0/8.
fn internet_v4(rng: &mut SmallRng, total: usize, in_test: usize) -> Vec<Ipv4Net> {
    let sample = sampler(&MIX_V4);
    let mut seen = HashSet::with_capacity(total);
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let len = sample(rng);
        let candidate = if out.len() < in_test {
            // Inside 10/8: shorter prefixes than /9 cannot be.
            if len < 9 {
                continue;
            }
            (0x0a00_0000 | (rng.random::<u32>() & 0x00ff_ffff)) & mask_v4(len)
        } else {
            let addr = rng.random::<u32>() & mask_v4(len);
            let first = addr >> 24;
            if first == 0 || first == 10 || first == 127 || first >= 224 {
                continue;
            }
            if RESERVED_V4.iter().any(|&r| overlap_v4((addr, len), r)) {
                continue;
            }
            addr
        };
        if LINKS_V4.iter().any(|&l| overlap_v4((candidate, len), l)) {
            continue;
        }
        if seen.insert((candidate, len)) {
            out.push(Ipv4Net::new(Ipv4Addr::from(candidate), len).expect("len <= 32"));
        }
    }
    out
}

/// `total` unique IPv6 prefixes in 2000::/3; the first `in_test` inside 2001:db8::/32.
fn internet_v6(rng: &mut SmallRng, total: usize, in_test: usize) -> Vec<Ipv6Net> {
    const DOC: (u128, u8) = (0x2001_0db8 << 96, 32);
    let sample = sampler(&MIX_V6);
    let mut seen = HashSet::with_capacity(total);
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let len = sample(rng);
        let candidate = if out.len() < in_test {
            if len <= 32 {
                continue;
            }
            (DOC.0 | (rng.random::<u128>() & !mask_v6(32))) & mask_v6(len)
        } else {
            // 2000::/3 (global unicast), outside the documentation prefix.
            let addr = ((1u128 << 125) | (rng.random::<u128>() >> 3)) & mask_v6(len);
            if overlap_v6((addr, len), DOC) {
                continue;
            }
            addr
        };
        if LINKS_V6.iter().any(|&l| overlap_v6((candidate, len), l)) {
            continue;
        }
        if seen.insert((candidate, len)) {
            out.push(Ipv6Net::new(Ipv6Addr::from(candidate), len).expect("len <= 128"));
        }
    }
    out
}

fn host_v4(rng: &mut SmallRng, prefix: Ipv4Net) -> Ipv4Addr {
    let host = rng.random::<u32>() & !mask_v4(prefix.prefix_len());
    Ipv4Addr::from(u32::from(prefix.network()) | host)
}

fn host_v6(rng: &mut SmallRng, prefix: Ipv6Net) -> Ipv6Addr {
    let host = rng.random::<u128>() & !mask_v6(prefix.prefix_len());
    Ipv6Addr::from(u128::from(prefix.network()) | host)
}

/// 1200000 -> "1,200,000".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_unique_and_destinations_hit_test_ranges() {
        let table = Table::internet(20_000, 4_000, 5_000, 1);
        assert_eq!(table.v4.len(), 20_000);
        assert_eq!(table.v6.len(), 4_000);
        let unique: HashSet<_> = table.v4.iter().collect();
        assert_eq!(unique.len(), table.v4.len());
        let ten: Ipv4Net = "10.0.0.0/8".parse().unwrap();
        let doc: Ipv6Net = "2001:db8::/32".parse().unwrap();
        for dst in &table.dst_v4 {
            assert!(ten.contains(dst));
            assert!(table.v4.iter().any(|p| p.contains(dst)));
        }
        for dst in &table.dst_v6 {
            assert!(doc.contains(dst));
        }
        for prefix in &table.v4 {
            assert!(!prefix.contains(&Ipv4Addr::new(10, 10, 0, 1)));
            assert!(!prefix.contains(&Ipv4Addr::new(10, 20, 0, 2)));
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1_200_000), "1,200,000");
        assert_eq!(thousands(999), "999");
    }
}
