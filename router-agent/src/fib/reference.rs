//! A deliberately simple longest-prefix match: the oracle the fast engines (DIR-24-8, the BPF
//! LPM trie) are checked against in differential tests.
//!
//! One hash map per prefix length; a lookup masks the address to each length, longest first,
//! and stops at the first hit. Slow (up to 33 or 129 probes) but obviously correct, which is the
//! point. Works for IPv4 (`Ipv4Net`, `u32` keys) and IPv6 (`Ipv6Net`, `u128` keys).

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// A prefix type the reference can hold: an address family's prefix, reduced to an integer key
/// (the network address, host bits cleared) and a length.
pub trait LpmPrefix: Copy + Eq + Debug {
    /// The address looked up.
    type Addr: Copy;
    /// The address as an integer, most significant bit first.
    type Key: Copy + Eq + Hash + Debug;
    /// Address width in bits: 32 or 128.
    const MAX_LEN: u8;

    /// Network address (host bits cleared) and prefix length.
    fn key_len(&self) -> (Self::Key, u8);
    /// The prefix of `len` bits whose network address is `key` (host bits already clear).
    fn from_key_len(key: Self::Key, len: u8) -> Self;
    /// `addr` with everything past the first `len` bits cleared.
    fn addr_key(addr: Self::Addr, len: u8) -> Self::Key;
}

impl LpmPrefix for Ipv4Net {
    type Addr = Ipv4Addr;
    type Key = u32;
    const MAX_LEN: u8 = 32;

    fn key_len(&self) -> (u32, u8) {
        let len = self.prefix_len();
        (Self::addr_key(self.addr(), len), len)
    }

    fn from_key_len(key: u32, len: u8) -> Self {
        Ipv4Net::new(Ipv4Addr::from(key), len).expect("prefix length <= 32")
    }

    fn addr_key(addr: Ipv4Addr, len: u8) -> u32 {
        // checked_shl: a shift by the full width (len 0) is not defined for `<<`.
        u32::from(addr) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
    }
}

impl LpmPrefix for Ipv6Net {
    type Addr = Ipv6Addr;
    type Key = u128;
    const MAX_LEN: u8 = 128;

    fn key_len(&self) -> (u128, u8) {
        let len = self.prefix_len();
        (Self::addr_key(self.addr(), len), len)
    }

    fn from_key_len(key: u128, len: u8) -> Self {
        Ipv6Net::new(Ipv6Addr::from(key), len).expect("prefix length <= 128")
    }

    fn addr_key(addr: Ipv6Addr, len: u8) -> u128 {
        u128::from(addr) & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
    }
}

/// Longest-prefix match over a map per prefix length. Prefixes with host bits set are
/// normalised (as `trunc()` does), like the engines it checks.
#[derive(Clone, Debug)]
pub struct ReferenceLpm<P: LpmPrefix, V = u32> {
    /// `by_len[l]`: the prefixes of length `l`, keyed by network address.
    by_len: Vec<HashMap<P::Key, V>>,
    len: usize,
}

impl<P: LpmPrefix, V> Default for ReferenceLpm<P, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: LpmPrefix, V> ReferenceLpm<P, V> {
    pub fn new() -> Self {
        Self {
            by_len: (0..=P::MAX_LEN).map(|_| HashMap::new()).collect(),
            len: 0,
        }
    }

    /// Adds or replaces `prefix`; returns the value it replaced.
    pub fn insert(&mut self, prefix: P, value: V) -> Option<V> {
        let (key, len) = prefix.key_len();
        let previous = self.by_len[usize::from(len)].insert(key, value);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    pub fn remove(&mut self, prefix: P) -> Option<V> {
        let (key, len) = prefix.key_len();
        let removed = self.by_len[usize::from(len)].remove(&key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Exact match.
    pub fn get(&self, prefix: P) -> Option<&V> {
        let (key, len) = prefix.key_len();
        self.by_len[usize::from(len)].get(&key)
    }

    /// The value of the longest prefix containing `addr`.
    pub fn lookup(&self, addr: P::Addr) -> Option<&V> {
        self.lookup_prefix(addr).map(|(_, value)| value)
    }

    /// The longest prefix containing `addr`, and its value.
    pub fn lookup_prefix(&self, addr: P::Addr) -> Option<(P, &V)> {
        (0..=P::MAX_LEN).rev().find_map(|len| {
            let map = &self.by_len[usize::from(len)];
            if map.is_empty() {
                return None;
            }
            let key = P::addr_key(addr, len);
            map.get(&key)
                .map(|value| (P::from_key_len(key, len), value))
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every prefix and its value, shortest prefixes first, in no particular order within a
    /// length.
    pub fn iter(&self) -> impl Iterator<Item = (P, &V)> + '_ {
        self.by_len.iter().enumerate().flat_map(|(len, map)| {
            map.iter()
                .map(move |(key, value)| (P::from_key_len(*key, len as u8), value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn v6(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn longest_match_v4() {
        let mut lpm = ReferenceLpm::<Ipv4Net>::new();
        assert_eq!(lpm.lookup(Ipv4Addr::new(10, 1, 2, 3)), None);
        lpm.insert(v4("0.0.0.0/0"), 0);
        lpm.insert(v4("10.0.0.0/8"), 8);
        lpm.insert(v4("10.1.2.3/24"), 24); // host bits: stored as 10.1.2.0/24
        lpm.insert(v4("10.1.2.3/32"), 32);
        assert_eq!(lpm.len(), 4);
        assert_eq!(lpm.get(v4("10.1.2.0/24")), Some(&24));
        assert_eq!(lpm.lookup(Ipv4Addr::new(10, 1, 2, 3)), Some(&32));
        assert_eq!(lpm.lookup(Ipv4Addr::new(10, 1, 2, 4)), Some(&24));
        assert_eq!(lpm.lookup(Ipv4Addr::new(10, 9, 9, 9)), Some(&8));
        assert_eq!(lpm.lookup(Ipv4Addr::new(11, 0, 0, 0)), Some(&0));
        assert_eq!(
            lpm.lookup_prefix(Ipv4Addr::new(10, 1, 2, 200)),
            Some((v4("10.1.2.0/24"), &24))
        );
        assert_eq!(lpm.remove(v4("10.1.2.0/24")), Some(24));
        assert_eq!(lpm.remove(v4("10.1.2.0/24")), None);
        assert_eq!(lpm.lookup(Ipv4Addr::new(10, 1, 2, 4)), Some(&8));
        assert_eq!(lpm.iter().count(), 3);
    }

    #[test]
    fn longest_match_v6() {
        let mut lpm = ReferenceLpm::<Ipv6Net, &str>::new();
        lpm.insert(v6("::/0"), "default");
        lpm.insert(v6("2001:db8::/32"), "doc");
        lpm.insert(v6("2001:db8:1::1/128"), "host");
        let addr = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        assert_eq!(lpm.lookup(addr("2001:db8:1::1")), Some(&"host"));
        assert_eq!(lpm.lookup(addr("2001:db8:1::2")), Some(&"doc"));
        assert_eq!(lpm.lookup(addr("fe80::1")), Some(&"default"));
        lpm.remove(v6("::/0"));
        assert_eq!(lpm.lookup(addr("fe80::1")), None);
    }
}
