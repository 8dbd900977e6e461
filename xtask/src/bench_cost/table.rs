//! The benchmark's route tables, destinations and frames.
//!
//! Tables are random but shaped like the Internet's: IPv4 prefix lengths weighted like the public
//! table (mostly /24, then /22, /23, /20...), all in forwardable unicast space, so that every
//! destination drawn inside a prefix is one the XDP program forwards (not link-scope, multicast
//! or loopback, which it hands to the kernel whatever the table says). Same seed, same table.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use rand::{Rng, rngs::SmallRng};

/// IPv4 prefix length, weighted like a real table (the idea of `v4_len` in
/// tests/lookup_differential.rs): 55% /24, then /22, /23, /20, /21, /16, /19, /18, /17, 3.5%
/// longer than /24 and 2% shorter than /16. Unlike the test, no prefix is shorter than /8: the
/// public table has none, and a default route would turn every miss into a hit.
fn v4_len(rng: &mut SmallRng) -> u8 {
    match rng.random_range(0..1000) {
        0..=549 => 24,
        550..=649 => 22,
        650..=739 => 23,
        740..=799 => 20,
        800..=839 => 21,
        840..=879 => 16,
        880..=909 => 19,
        910..=929 => 18,
        930..=944 => 17,
        945..=979 => rng.random_range(25..=32),
        _ => rng.random_range(8..=15),
    }
}

/// IPv6 prefix length: mostly /48, then /32, /44, a few longer, a few in between (no default).
fn v6_len(rng: &mut SmallRng) -> u8 {
    match rng.random_range(0..10) {
        0..=5 => 48,
        6 => 32,
        7 => 44,
        8 => rng.random_range(49..=128),
        _ => rng.random_range(16..=47),
    }
}

/// The XDP program's `ipv4_is_link_scope`: destinations it never forwards.
pub fn v4_is_link_scope(addr: Ipv4Addr) -> bool {
    let o = addr.octets();
    o[0] == 0 || o[0] == 127 || o[0] >= 224 || (o[0] == 169 && o[1] == 254)
}

/// A random IPv4 prefix whose network address is forwardable unicast.
fn random_v4(rng: &mut SmallRng) -> Ipv4Net {
    loop {
        let prefix = Ipv4Net::new(Ipv4Addr::from(rng.random::<u32>()), v4_len(rng))
            .expect("length <= 32")
            .trunc();
        if !v4_is_link_scope(prefix.network()) {
            return prefix;
        }
    }
}

/// A random IPv6 prefix in 2000::/3 (global unicast: never link-scope, never multicast).
fn random_v6(rng: &mut SmallRng) -> Ipv6Net {
    let addr = (rng.random::<u128>() >> 3) | (1u128 << 125);
    Ipv6Net::new(Ipv6Addr::from(addr), v6_len(rng))
        .expect("length <= 128")
        .trunc()
}

/// `count` distinct prefixes from `draw`.
fn distinct<P: Eq + std::hash::Hash + Copy>(
    count: usize,
    rng: &mut SmallRng,
    draw: fn(&mut SmallRng) -> P,
) -> Vec<P> {
    let mut seen = HashSet::with_capacity(count);
    let mut prefixes = Vec::with_capacity(count);
    while prefixes.len() < count {
        let prefix = draw(rng);
        if seen.insert(prefix) {
            prefixes.push(prefix);
        }
    }
    prefixes
}

/// A route table: distinct prefixes, in the (random) order they are installed.
pub struct Table {
    pub v4: Vec<Ipv4Net>,
    pub v6: Vec<Ipv6Net>,
}

impl Table {
    pub fn generate(rng: &mut SmallRng, v4: usize, v6: usize) -> Self {
        Self {
            v4: distinct(v4, rng, random_v4),
            v6: distinct(v6, rng, random_v6),
        }
    }

    pub fn routes(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Per prefix length, how many IPv4 prefixes (for the report).
    pub fn v4_lengths(&self) -> [usize; 33] {
        let mut lengths = [0; 33];
        for prefix in &self.v4 {
            lengths[usize::from(prefix.prefix_len())] += 1;
        }
        lengths
    }

    /// DIR-24-8 TBL8 groups the IPv4 prefixes need: one per /24 holding a prefix longer than /24.
    pub fn tbl8_groups(&self) -> usize {
        self.v4
            .iter()
            .filter(|prefix| prefix.prefix_len() > 24)
            .map(|prefix| u32::from(prefix.network()) >> 8)
            .collect::<HashSet<_>>()
            .len()
    }

    /// `count` IPv4 destinations, each inside a prefix of the table picked at random (so they
    /// spread over the whole table, whichever prefix ends up matching them: a longer prefix
    /// inside the picked one may). Empty if the table has no IPv4 prefix.
    pub fn v4_destinations(&self, rng: &mut SmallRng, count: usize) -> Vec<Ipv4Addr> {
        if self.v4.is_empty() {
            return Vec::new();
        }
        (0..count)
            .map(|_| {
                loop {
                    let prefix = self.v4[rng.random_range(0..self.v4.len())];
                    let host = rng.random::<u32>() & !u32::from(prefix.netmask());
                    let addr = Ipv4Addr::from(u32::from(prefix.network()) | host);
                    // A short prefix can cover link-scope space (a /8 around 169.254/16).
                    if !v4_is_link_scope(addr) {
                        break addr;
                    }
                }
            })
            .collect()
    }

    /// As [`Self::v4_destinations`], for IPv6 (2000::/3 holds no link-scope address).
    pub fn v6_destinations(&self, rng: &mut SmallRng, count: usize) -> Vec<Ipv6Addr> {
        if self.v6.is_empty() {
            return Vec::new();
        }
        (0..count)
            .map(|_| {
                let prefix = self.v6[rng.random_range(0..self.v6.len())];
                let host = rng.random::<u128>() & !u128::from(prefix.netmask());
                Ipv6Addr::from(u128::from(prefix.network()) | host)
            })
            .collect()
    }
}

const INGRESS_DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xaa, 0x01];
const SENDER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x55, 0x01];
/// UDP payload: the IPv4 frame is 60 bytes, the smallest Ethernet frame (without FCS).
const PAYLOAD: usize = 18;

/// Ethernet + IPv4 (valid checksum) + UDP: what a sender would put on the wire.
pub fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, ports: (u16, u16)) -> Vec<u8> {
    let total = 20 + 8 + PAYLOAD;
    let mut frame = Vec::with_capacity(14 + total);
    frame.extend_from_slice(&INGRESS_DST_MAC);
    frame.extend_from_slice(&SENDER_MAC);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&[0x45, 0x00]);
    frame.extend_from_slice(&(total as u16).to_be_bytes());
    // Identification, don't fragment, TTL, UDP, checksum (filled below).
    frame.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, ttl, 17, 0, 0]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    let checksum = ipv4_checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&ports.0.to_be_bytes());
    frame.extend_from_slice(&ports.1.to_be_bytes());
    frame.extend_from_slice(&((8 + PAYLOAD) as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.resize(14 + total, 0xab);
    frame
}

/// Ethernet + IPv6 + UDP.
pub fn ipv6_udp(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, ports: (u16, u16)) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + 40 + 8 + PAYLOAD);
    frame.extend_from_slice(&INGRESS_DST_MAC);
    frame.extend_from_slice(&SENDER_MAC);
    frame.extend_from_slice(&[0x86, 0xdd]);
    frame.extend_from_slice(&[0x60, 0x01, 0x23, 0x45]);
    frame.extend_from_slice(&((8 + PAYLOAD) as u16).to_be_bytes());
    frame.push(17);
    frame.push(hop_limit);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend_from_slice(&ports.0.to_be_bytes());
    frame.extend_from_slice(&ports.1.to_be_bytes());
    frame.extend_from_slice(&((8 + PAYLOAD) as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.resize(14 + 40 + 8 + PAYLOAD, 0xcd);
    frame
}

/// A broadcast ARP request: the program's cheapest path (not IP: straight to the kernel).
pub fn arp() -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&SENDER_MAC);
    frame.extend_from_slice(&[0x08, 0x06]);
    frame.resize(60, 0);
    frame
}

/// RFC 1071 checksum of an IPv4 header (checksum field zero).
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn tables_are_distinct_forwardable_and_destinations_fall_inside() {
        let mut rng = SmallRng::seed_from_u64(7);
        let table = Table::generate(&mut rng, 20_000, 2_000);
        let v4: HashSet<_> = table.v4.iter().collect();
        assert_eq!(v4.len(), 20_000);
        assert!(table.v4.iter().all(|p| p.prefix_len() >= 8));
        let lengths = table.v4_lengths();
        assert!(lengths[24] > 10_000 && lengths[24] < 12_000, "{lengths:?}");
        for addr in table.v4_destinations(&mut rng, 10_000) {
            assert!(!v4_is_link_scope(addr));
            assert!(table.v4.iter().any(|p| p.contains(&addr)), "{addr}");
        }
        for addr in table.v6_destinations(&mut rng, 1_000) {
            assert!(table.v6.iter().any(|p| p.contains(&addr)), "{addr}");
        }
    }

    #[test]
    fn frames_are_well_formed() {
        let frame = ipv4_udp(
            "10.0.0.1".parse().unwrap(),
            "198.51.100.9".parse().unwrap(),
            64,
            (1, 2),
        );
        assert_eq!(frame.len(), 60);
        assert_eq!(ipv4_checksum(&frame[14..34]), 0);
        let frame = ipv6_udp(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            64,
            (1, 2),
        );
        assert_eq!(frame.len(), 14 + 40 + 8 + PAYLOAD);
    }
}
