//! The host's own IPv4 addresses for the program's local-source check (`LOCAL_V4` and its bit
//! filter `LOCAL_V4_FILTER`), kept from the route operations the datapath applies: a /32 the
//! FIB sends to `GROUP_LOCAL` is one of the host's addresses (or a broadcast, which the kernel
//! refuses as a source as well, or at worst passing is safe).
//!
//! Only host routes count: the kernel's check (`inet_lookup_ifaddr_rcu` in
//! `fib_validate_source`, rp_filter off) looks at interface addresses, not local prefixes.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, MapData, MapError};
use ipnet::IpNet;
use router_common::{GROUP_LOCAL, LOCAL_FILTER_WORDS, local_filter_bit, map_names};

use super::Datapath;

/// What `LOCAL_V4` and `LOCAL_V4_FILTER` hold.
#[derive(Default)]
pub(super) struct LocalAddresses {
    addresses: BTreeSet<Ipv4Addr>,
    /// Addresses per filter bit: a bit is cleared only when its last address goes.
    bit_users: BTreeMap<u32, u32>,
}

impl Datapath {
    /// Follows a route operation: `Some(group)` sets `prefix`, `None` deletes it.
    pub(super) fn track_local_route(&mut self, prefix: &IpNet, group: Option<u32>) -> Result<()> {
        let IpNet::V4(net) = prefix else {
            return Ok(());
        };
        if net.prefix_len() != 32 {
            return Ok(());
        }
        let addr = net.addr();
        if group == Some(GROUP_LOCAL) {
            self.add_local(addr)
        } else if self.local.addresses.contains(&addr) {
            self.remove_local(addr)
        } else {
            Ok(())
        }
    }

    /// Whether the program takes `addr` for one of the host's addresses (tests, `show`).
    pub fn is_local_v4(&self, addr: Ipv4Addr) -> bool {
        self.local.addresses.contains(&addr)
    }

    /// The exact entry first, then the filter bit: a packet that sees the bit finds the entry.
    fn add_local(&mut self, addr: Ipv4Addr) -> Result<()> {
        if self.local.addresses.contains(&addr) {
            return Ok(());
        }
        let mut map: HashMap<&mut MapData, [u8; 4], u32> =
            HashMap::try_from(self.map_mut(map_names::LOCAL_V4))?;
        map.insert(addr.octets(), 0, 0)
            .with_context(|| format!("writing LOCAL_V4[{addr}]"))?;
        self.local.addresses.insert(addr);
        let bit = local_filter_bit(addr.octets());
        *self.local.bit_users.entry(bit).or_default() += 1;
        self.write_filter_word(bit / 64)
    }

    /// The exact entry first: a packet racing this sees the bit and no entry, and forwards,
    /// as it may now.
    fn remove_local(&mut self, addr: Ipv4Addr) -> Result<()> {
        let mut map: HashMap<&mut MapData, [u8; 4], u32> =
            HashMap::try_from(self.map_mut(map_names::LOCAL_V4))?;
        match map.remove(&addr.octets()) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(err) => return Err(err).context(format!("removing LOCAL_V4[{addr}]")),
        }
        self.local.addresses.remove(&addr);
        let bit = local_filter_bit(addr.octets());
        if let Some(users) = self.local.bit_users.get_mut(&bit) {
            *users -= 1;
            if *users == 0 {
                self.local.bit_users.remove(&bit);
            }
        }
        self.write_filter_word(bit / 64)
    }

    /// Rewrites one 64-bit filter word from the bits in use.
    fn write_filter_word(&mut self, word: u32) -> Result<()> {
        debug_assert!(word < LOCAL_FILTER_WORDS);
        let value = self
            .local
            .bit_users
            .range(word * 64..(word + 1) * 64)
            .fold(0u64, |value, (bit, _)| value | 1 << (bit % 64));
        let mut filter: Array<&mut MapData, u64> =
            Array::try_from(self.map_mut(map_names::LOCAL_V4_FILTER))?;
        filter
            .set(word, value, 0)
            .with_context(|| format!("writing LOCAL_V4_FILTER[{word}]"))
    }
}
