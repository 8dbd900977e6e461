//! Synthetic route tables with a realistic prefix-length distribution, for tests and benches.
//!
//! Prefixes are random but shaped like the public Internet table: IPv4 mostly /24, then /22,
//! /23, /20...; IPv6 mostly /48, then /32 and /44. Same seed, same prefixes: every draw goes
//! through the caller's RNG in a fixed order.
//!
//! Two shapes: [`PrefixShape::INTERNET`] (no prefix shorter than /8 or /16, network addresses
//! the XDP program forwards: what a benchmark wants) and [`PrefixShape::ALL_LENGTHS`] (every
//! length down to /0, anywhere: what a longest-prefix-match test wants).
//!
//! Stable API for the benches (`cargo xtask bench ...`): [`Table::generate`], its fields, and
//! [`Table::v4_destinations`] / [`Table::v6_destinations`].

use std::collections::HashSet;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use rand::Rng;

/// Which lengths and addresses random prefixes may have; the weights are the same in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixShape {
    /// The shortest IPv4 prefix drawn (the 2% "short" bucket is `shortest_v4..=15`).
    pub shortest_v4: u8,
    /// The shortest IPv6 prefix drawn (the 10% "short" bucket is `shortest_v6..=47`).
    pub shortest_v6: u8,
    /// Redraw IPv4 prefixes whose network address is link-scope (see [`v4_is_link_scope`]).
    pub forwardable_only: bool,
}

impl PrefixShape {
    /// Like the public table: nothing shorter than /8 (IPv4) or /16 (IPv6), so no default
    /// route turns every miss into a hit, and every IPv4 network address is forwardable.
    pub const INTERNET: Self = Self {
        shortest_v4: 8,
        shortest_v6: 16,
        forwardable_only: true,
    };

    /// Every length from /0, anywhere in the IPv4 space: default routes and very short
    /// prefixes covering link-scope space included (longest-prefix-match corner cases).
    pub const ALL_LENGTHS: Self = Self {
        shortest_v4: 0,
        shortest_v6: 0,
        forwardable_only: false,
    };

    /// IPv4 prefix length, weighted like a real table: 55% /24, then /22, /23, /20, /21, /16,
    /// /19, /18, /17; 3.5% longer than /24 and 2% shorter than /16.
    pub fn v4_len(&self, rng: &mut impl Rng) -> u8 {
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
            _ => rng.random_range(self.shortest_v4..=15),
        }
    }

    /// IPv6 prefix length: 60% /48, then /32, /44, 10% longer than /48, 10% shorter.
    pub fn v6_len(&self, rng: &mut impl Rng) -> u8 {
        match rng.random_range(0..10) {
            0..=5 => 48,
            6 => 32,
            7 => 44,
            8 => rng.random_range(49..=128),
            _ => rng.random_range(self.shortest_v6..=47),
        }
    }

    /// A random IPv4 prefix (host bits cleared).
    pub fn v4(&self, rng: &mut impl Rng) -> Ipv4Net {
        loop {
            let addr = Ipv4Addr::from(rng.random::<u32>());
            let prefix = Ipv4Net::new(addr, self.v4_len(rng))
                .expect("length <= 32")
                .trunc();
            if !self.forwardable_only || !v4_is_link_scope(prefix.network()) {
                return prefix;
            }
        }
    }

    /// A random IPv6 prefix in 2000::/3 (global unicast: never link-scope, never multicast).
    pub fn v6(&self, rng: &mut impl Rng) -> Ipv6Net {
        let addr = (rng.random::<u128>() >> 3) | (1u128 << 125);
        Ipv6Net::new(Ipv6Addr::from(addr), self.v6_len(rng))
            .expect("length <= 128")
            .trunc()
    }
}

/// The XDP program's `ipv4_is_link_scope`: destinations it hands to the kernel whatever the
/// table says (this network, loopback, multicast and above, link-local).
pub fn v4_is_link_scope(addr: Ipv4Addr) -> bool {
    let o = addr.octets();
    o[0] == 0 || o[0] == 127 || o[0] >= 224 || (o[0] == 169 && o[1] == 254)
}

/// The XDP program's IPv6 counterpart: multicast, link-local, loopback, unspecified.
pub fn v6_is_link_scope(addr: Ipv6Addr) -> bool {
    let o = addr.octets();
    o[0] == 0xff || (o[0] == 0xfe && o[1] & 0xc0 == 0x80) || u128::from(addr) <= 1
}

/// A random address inside `prefix`.
pub fn v4_host(rng: &mut impl Rng, prefix: Ipv4Net) -> Ipv4Addr {
    let host = rng.random::<u32>() & !u32::from(prefix.netmask());
    Ipv4Addr::from(u32::from(prefix.network()) | host)
}

/// A random address inside `prefix`.
pub fn v6_host(rng: &mut impl Rng, prefix: Ipv6Net) -> Ipv6Addr {
    let host = rng.random::<u128>() & !u128::from(prefix.netmask());
    Ipv6Addr::from(u128::from(prefix.network()) | host)
}

/// `count` distinct values from `draw`, in the order drawn.
fn distinct<R: Rng, P: Eq + Hash + Copy>(
    count: usize,
    rng: &mut R,
    mut draw: impl FnMut(&mut R) -> P,
) -> Vec<P> {
    let mut seen = HashSet::with_capacity(count);
    let mut values = Vec::with_capacity(count);
    while values.len() < count {
        let value = draw(rng);
        if seen.insert(value) {
            values.push(value);
        }
    }
    values
}

/// A route table: distinct prefixes, in the (random) order they are installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub v4: Vec<Ipv4Net>,
    pub v6: Vec<Ipv6Net>,
}

impl Table {
    /// `v4` + `v6` distinct prefixes shaped like [`PrefixShape::INTERNET`].
    pub fn generate(rng: &mut impl Rng, v4: usize, v6: usize) -> Self {
        Self::generate_shaped(rng, PrefixShape::INTERNET, v4, v6)
    }

    /// `v4` + `v6` distinct prefixes of the given shape.
    pub fn generate_shaped(rng: &mut impl Rng, shape: PrefixShape, v4: usize, v6: usize) -> Self {
        Self {
            v4: distinct(v4, rng, |rng| shape.v4(rng)),
            v6: distinct(v6, rng, |rng| shape.v6(rng)),
        }
    }

    pub fn routes(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Per prefix length, how many IPv4 prefixes.
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
    /// inside the picked one may), never link-scope. Empty if the table has no IPv4 prefix.
    pub fn v4_destinations(&self, rng: &mut impl Rng, count: usize) -> Vec<Ipv4Addr> {
        if self.v4.is_empty() {
            return Vec::new();
        }
        (0..count)
            .map(|_| {
                loop {
                    let prefix = self.v4[rng.random_range(0..self.v4.len())];
                    let addr = v4_host(rng, prefix);
                    // A short prefix can cover link-scope space (a /8 around 169.254/16).
                    if !v4_is_link_scope(addr) {
                        break addr;
                    }
                }
            })
            .collect()
    }

    /// As [`Self::v4_destinations`], for IPv6 (2000::/3 holds no link-scope address).
    pub fn v6_destinations(&self, rng: &mut impl Rng, count: usize) -> Vec<Ipv6Addr> {
        if self.v6.is_empty() {
            return Vec::new();
        }
        (0..count)
            .map(|_| {
                let prefix = self.v6[rng.random_range(0..self.v6.len())];
                v6_host(rng, prefix)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::SmallRng};

    #[test]
    fn internet_tables_are_distinct_forwardable_and_destinations_fall_inside() {
        let mut rng = SmallRng::seed_from_u64(7);
        let table = Table::generate(&mut rng, 20_000, 2_000);
        let v4: HashSet<_> = table.v4.iter().collect();
        assert_eq!(v4.len(), 20_000);
        assert!(table.v4.iter().all(|p| p.prefix_len() >= 8));
        assert!(table.v4.iter().all(|p| !v4_is_link_scope(p.network())));
        assert!(table.v6.iter().all(|p| p.prefix_len() >= 16));
        let lengths = table.v4_lengths();
        assert!(lengths[24] > 10_000 && lengths[24] < 12_000, "{lengths:?}");
        for addr in table.v4_destinations(&mut rng, 10_000) {
            assert!(!v4_is_link_scope(addr));
            assert!(table.v4.iter().any(|p| p.contains(&addr)), "{addr}");
        }
        for addr in table.v6_destinations(&mut rng, 1_000) {
            assert!(!v6_is_link_scope(addr));
            assert!(table.v6.iter().any(|p| p.contains(&addr)), "{addr}");
        }
    }

    #[test]
    fn all_lengths_reaches_the_default_route() {
        let mut rng = SmallRng::seed_from_u64(1);
        let shape = PrefixShape::ALL_LENGTHS;
        let v4: HashSet<u8> = (0..200_000).map(|_| shape.v4_len(&mut rng)).collect();
        let v6: HashSet<u8> = (0..200_000).map(|_| shape.v6_len(&mut rng)).collect();
        assert_eq!(v4, (0..=32).collect());
        assert_eq!(v6, (0..=128).collect());
    }

    #[test]
    fn same_seed_same_table() {
        let draw = |seed| Table::generate(&mut SmallRng::seed_from_u64(seed), 1_000, 100);
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
