//! DIR-24-8 IPv4 route table, userspace side: the agent's copy of the rule set, and the
//! incremental writer of the arrays the XDP program reads (`router_common::DIR24_*`), as DPDK's
//! `rte_lpm` does it.
//!
//! ```text
//!   destination a.b.c.d          index = a.b.c (24 bits)        d (8 bits)
//!                                      │                              │
//!   TBL24: 2^24 entries (2^16 chunks of 256)                          │
//!   ┌─────────────────────────────────┐                               │
//!   │ 0                               │ no route <= /24: DEFAULT      │
//!   │ VALID | depth | nexthop group   │ route <= /24: done, one read  │
//!   │ VALID | EXTENDED | depth | g ───┼──> TBL8 group g: 256 entries ─┘
//!   └─────────────────────────────────┘    ┌───────────────────────────────┐
//!                                          │ 0: no route: DEFAULT          │
//!                                          │ VALID | depth | nexthop group │ longest route
//!                                          └───────────────────────────────┘
//!   DEFAULT: 1 entry, 0.0.0.0/0 (VALID | nexthop group, or 0)
//!
//!   entry bits:  31      30         29..24   23..0
//!                VALID | EXTENDED | depth  | nexthop group id, or TBL8 group index
//! ```
//!
//! Entries (`router_common::DIR24_*`): `0` is no route; `VALID | depth | group` is a route to
//! nexthop group `group` (below 2^24); in TBL24 only, `VALID | EXTENDED | depth | g` sends the
//! lookup to TBL8 group `g`. TBL8 entries are never extended. The program tests EXTENDED before
//! VALID, so VALID on an extended entry is not needed for lookups; it is set so that, in TBL24,
//! 0 is the only "nothing here" value (for dumps, and for any code that tests VALID alone). The
//! program ignores the depth field (it masks ids with `DIR24_ID_MASK`); only this module reads
//! it.
//!
//! A `/d` prefix with `d <= 24` is expanded into the `2^(24-d)` TBL24 entries it covers; a longer
//! one into `2^(32-d)` entries of the TBL8 group of its /24. An entry belongs to the longest
//! prefix covering it, so every entry records, in its depth field, the length of the prefix that
//! wrote it (its *depth*, 0 for no route): an insert of `/d` overwrites the entries of depth
//! `<= d` in its range; a remove of `/d` rewrites the entries of depth `== d` (exactly the ones
//! it owns) with the longest prefix still covering them. Replacing a prefix's nexthop group is
//! an insert of the same prefix, so it rewrites only the entries it owns. As in DPDK's rte_lpm,
//! the depth lives in the entry rather than in a userspace array beside the table (which took a
//! byte per entry: 16 MiB for TBL24, 16 MiB for 65536 TBL8 groups); the table is read back
//! through [`Dir24Storage`], over the mmap of the BPF arrays in the agent. The price is 6 bits
//! of the id, which `router_common` checks every map's ids still fit.
//!
//! An extended TBL24 entry's depth field holds the depth of the longest prefix `<= /24`
//! covering its /24 (0 if none), which is also the depth (and value) of every entry of the
//! group not owned by a prefix longer than /24. A group exists exactly as long as its /24 holds
//! a prefix longer than /24: when the last one goes, the group is folded back into the TBL24
//! entry.
//!
//! The default route is not expanded (it would take 2^24 writes to add or change): it lives in
//! the single `DEFAULT` entry, which the XDP program reads when the entry it found is not valid.
//!
//! Concurrency: the XDP program reads while the agent writes, without locks. Every entry is
//! written with one aligned 32-bit store, so a reader sees the old or the new entry, never a mix,
//! and an entry goes straight from its old route to its new one (a route change never makes
//! addresses briefly unroutable). A new TBL8 group is filled completely before the TBL24 entry
//! is switched to it (a release fence orders the two). A group the TBL24 entry stopped pointing
//! at is quarantined for [`TBL8_QUARANTINE`] before it is reused, because a reader may have
//! loaded the old TBL24 entry just before the switch (XDP runs one packet per RCU read-side
//! section: microseconds; 100 ms is generous). Changing the depth field of an extended TBL24
//! entry (its /24's covering prefix changed) is one such store too, and keeps the group index:
//! readers follow the same group before and after.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use router_common::{
    DIR24_CHUNK_ENTRIES, DIR24_DEPTH_MASK, DIR24_DEPTH_SHIFT, DIR24_EXTENDED, DIR24_ID_MASK,
    DIR24_TBL24_CHUNKS, DIR24_VALID,
};

/// Entries of TBL24: one per /24.
pub const TBL24_ENTRIES: u32 = 1 << 24;
/// Entries of one TBL8 group: one per address of a /24.
pub const TBL8_GROUP_ENTRIES: usize = 256;
/// How long a TBL8 group that left the table waits before it is reused.
pub const TBL8_QUARANTINE: Duration = Duration::from_millis(100);

const _: () = assert!(DIR24_TBL24_CHUNKS as usize * DIR24_CHUNK_ENTRIES == TBL24_ENTRIES as usize);
const _: () = assert!(DIR24_CHUNK_ENTRIES == TBL8_GROUP_ENTRIES);

/// Where the table lives: the agent implements this over the mmap-ed BPF arrays, tests and
/// benchmarks use [`VecStorage`].
///
/// Stores must be single aligned 32-bit stores: the XDP program reads concurrently. Over shared
/// memory, use `AtomicU32::store` (`Relaxed` is enough: [`Dir24`] issues the fences that order
/// its stores) or `write_volatile`. [`Dir24`] reads entries back through this trait too (their
/// depth fields are its only record of which prefix owns an entry), so reads should be cheap,
/// and must return what the last store wrote (the XDP program never writes the table).
pub trait Dir24Storage {
    /// TBL24 entry `index` (`< 2^24`): chunk `index >> 8`, entry `index & 0xff`.
    fn tbl24(&self, index: u32) -> u32;
    fn set_tbl24(&mut self, index: u32, entry: u32);
    /// Entry `index` of TBL8 group `group` (`< tbl8_groups()`).
    fn tbl8(&self, group: u32, index: u8) -> u32;
    fn set_tbl8(&mut self, group: u32, index: u8, entry: u32);
    /// The default route's entry (0.0.0.0/0).
    fn default_entry(&self) -> u32;
    fn set_default_entry(&mut self, entry: u32);
    /// How many TBL8 groups the storage holds.
    fn tbl8_groups(&self) -> u32;
}

/// In-memory storage, for tests and benchmarks: 64 MiB of TBL24 plus 1 KiB per TBL8 group
/// (zeroed lazily by the OS, so untouched pages cost nothing).
#[derive(Clone)]
pub struct VecStorage {
    tbl24: Vec<u32>,
    tbl8: Vec<u32>,
    default: u32,
    tbl8_groups: u32,
}

impl VecStorage {
    pub fn new(tbl8_groups: u32) -> Self {
        assert!(
            tbl8_groups <= DIR24_ID_MASK + 1,
            "a TBL8 group index must fit an entry"
        );
        Self {
            tbl24: vec![0; TBL24_ENTRIES as usize],
            tbl8: vec![0; tbl8_groups as usize * TBL8_GROUP_ENTRIES],
            default: 0,
            tbl8_groups,
        }
    }

    pub fn tbl24_entries(&self) -> &[u32] {
        &self.tbl24
    }

    /// All TBL8 groups, one after the other.
    pub fn tbl8_entries(&self) -> &[u32] {
        &self.tbl8
    }

    /// True if no entry holds anything (as after removing every route).
    pub fn is_zero(&self) -> bool {
        self.default == 0
            && self.tbl24.iter().all(|&entry| entry == 0)
            && self.tbl8.iter().all(|&entry| entry == 0)
    }
}

impl Dir24Storage for VecStorage {
    #[inline]
    fn tbl24(&self, index: u32) -> u32 {
        self.tbl24[index as usize]
    }

    #[inline]
    fn set_tbl24(&mut self, index: u32, entry: u32) {
        self.tbl24[index as usize] = entry;
    }

    #[inline]
    fn tbl8(&self, group: u32, index: u8) -> u32 {
        self.tbl8[tbl8_slot(group, index)]
    }

    #[inline]
    fn set_tbl8(&mut self, group: u32, index: u8, entry: u32) {
        self.tbl8[tbl8_slot(group, index)] = entry;
    }

    fn default_entry(&self) -> u32 {
        self.default
    }

    fn set_default_entry(&mut self, entry: u32) {
        self.default = entry;
    }

    fn tbl8_groups(&self) -> u32 {
        self.tbl8_groups
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Dir24Error {
    /// The prefix is longer than /24 and its /24 has no TBL8 group yet, and none is free.
    #[error("cannot add {prefix}: all {capacity} DIR-24-8 TBL8 groups are in use")]
    TableFull { prefix: Ipv4Net, capacity: u32 },
    /// Nexthop group ids share an entry with two flag bits and the depth.
    #[error("nexthop group id {0} does not fit a DIR-24-8 entry (must be below 2^24)")]
    InvalidGroup(u32),
}

/// Prefixes of one length, network address -> nexthop group.
type RuleMap = HashMap<u32, u32, RuleHasher>;

/// Hashes the `u32` keys of the rule maps: murmur3's 64-bit finaliser over the key xor a
/// per-table random seed. std's SipHash costs a third of the insert and remove time, and
/// removes probe up to 23 maps. Not cryptographic, but keyed: nobody can precompute colliding
/// prefixes without the seed (and prefixes come from configuration and trusted peers anyway).
#[derive(Clone, Copy)]
struct RuleHasher {
    state: u64,
}

impl RuleHasher {
    fn random() -> Self {
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new().hash_one(0x0d12_2408_u64);
        Self { state }
    }
}

impl std::hash::BuildHasher for RuleHasher {
    type Hasher = Self;

    fn build_hasher(&self) -> Self {
        *self
    }
}

impl std::hash::Hasher for RuleHasher {
    fn write_u32(&mut self, key: u32) {
        self.state ^= u64::from(key);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by u32 keys; any input still hashes correctly.
        for &byte in bytes {
            self.state =
                (self.state.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        let mut x = self.state;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
}

/// The DIR-24-8 table: the rule set, and the storage the XDP program reads (whose entries also
/// carry their depth).
pub struct Dir24<S: Dir24Storage> {
    storage: S,
    /// `rules[len]`: the prefixes of length `len` (host bits clear) and their nexthop group.
    rules: [RuleMap; 33],
    /// TBL8 groups ready for use.
    free_tbl8: Vec<u32>,
    /// TBL8 groups recently unhooked, with the time they were, oldest first.
    quarantine: VecDeque<(Instant, u32)>,
    tbl8_in_use: u32,
    len: usize,
}

impl<S: Dir24Storage> Dir24<S> {
    /// A table over `storage`, which must be all zero (no route): freshly created maps, or
    /// zeroed ones. The table reads back only entries it wrote itself (for their depth).
    pub fn new(storage: S) -> Self {
        let groups = storage.tbl8_groups();
        assert!(
            groups <= DIR24_ID_MASK + 1,
            "a TBL8 group index must fit an entry"
        );
        Self {
            storage,
            rules: {
                let hasher = RuleHasher::random();
                std::array::from_fn(|_| RuleMap::with_hasher(hasher))
            },
            // Reversed so that groups are handed out from 0 up.
            free_tbl8: (0..groups).rev().collect(),
            quarantine: VecDeque::new(),
            tbl8_in_use: 0,
            len: 0,
        }
    }

    /// Adds `prefix` (host bits ignored) towards nexthop group `group`, or changes its group.
    /// Returns the group it had.
    ///
    /// Fails, changing nothing, if `group` does not fit an entry or if the prefix is longer than
    /// /24 and needs a TBL8 group when none is left. If the only groups left are quarantined,
    /// this waits (at most [`TBL8_QUARANTINE`]) for the oldest one.
    pub fn insert(&mut self, prefix: Ipv4Net, group: u32) -> Result<Option<u32>, Dir24Error> {
        if group > DIR24_ID_MASK {
            return Err(Dir24Error::InvalidGroup(group));
        }
        let prefix = prefix.trunc();
        let (net, depth) = (u32::from(prefix.network()), prefix.prefix_len());
        let entry = route_entry(group, depth);

        // The only step that can fail comes first. A /24 without a TBL8 group has no prefix
        // longer than /24, so this is never a replacement.
        if depth > 24 {
            let index = net >> 8;
            if self.storage.tbl24(index) & DIR24_EXTENDED == 0 {
                self.extend(index, prefix)?;
            }
        }

        let previous = self.rules[usize::from(depth)].insert(net, group);
        match previous {
            Some(old) if old == group => return Ok(previous),
            Some(_) => {}
            None => self.len += 1,
        }

        // Entries of depth <= `depth` are owned by this prefix or a shorter one: take them.
        // For a replacement they are exactly this prefix's entries (none is shorter any more).
        let take = |current: u8| current <= depth;
        if depth == 0 {
            self.storage.set_default_entry(entry);
        } else if depth <= 24 {
            self.write_tbl24(net, depth, take, entry);
        } else {
            let group_index = self.storage.tbl24(net >> 8) & DIR24_ID_MASK;
            self.write_tbl8(group_index, net, depth, take, entry);
        }
        Ok(previous)
    }

    /// Removes `prefix` (host bits ignored); returns its group, or `None` if it was not there.
    /// The addresses it covered fall back to the longest prefix still covering them, or to the
    /// default route.
    pub fn remove(&mut self, prefix: Ipv4Net) -> Option<u32> {
        let prefix = prefix.trunc();
        let (net, depth) = (u32::from(prefix.network()), prefix.prefix_len());
        let group = self.rules[usize::from(depth)].remove(&net)?;
        self.len -= 1;

        if depth == 0 {
            self.storage.set_default_entry(0);
            return Some(group);
        }
        // The entries of depth `depth` in range are exactly this prefix's: hand them over.
        let cover_entry = self.covering(net, depth);
        let owned = |current: u8| current == depth;
        if depth <= 24 {
            self.write_tbl24(net, depth, owned, cover_entry);
        } else {
            let index = net >> 8;
            let group_index = self.storage.tbl24(index) & DIR24_ID_MASK;
            self.write_tbl8(group_index, net, depth, owned, cover_entry);
            // Only when the fallback is a prefix <= /24 can this have been the last long one.
            if entry_depth(cover_entry) <= 24 {
                self.try_collapse(index, group_index);
            }
        }
        Some(group)
    }

    /// Applies route changes (`Some(group)`: insert or replace, `None`: remove) in address
    /// order rather than the given one, which only changes the order readers see them land in:
    /// changes to distinct prefixes commute, and the sort is stable, so changes to one prefix
    /// keep their order. Sorted, consecutive changes touch neighbouring entries of the 64 MiB
    /// TBL24 (which holds the depths too), so most of a table load hits cached pages instead of
    /// missing the cache and the TLB on every route. Every change is attempted; the failures
    /// are returned.
    pub fn apply(&mut self, changes: &mut [(Ipv4Net, Option<u32>)]) -> Vec<Dir24Error> {
        changes.sort_by_key(|(prefix, _)| u32::from(prefix.network()));
        let mut errors = Vec::new();
        for &(prefix, group) in changes.iter() {
            match group {
                Some(group) => {
                    if let Err(err) = self.insert(prefix, group) {
                        errors.push(err);
                    }
                }
                None => {
                    self.remove(prefix);
                }
            }
        }
        errors
    }

    /// The nexthop group of exactly `prefix` (host bits ignored).
    pub fn get(&self, prefix: Ipv4Net) -> Option<u32> {
        let prefix = prefix.trunc();
        self.rules[usize::from(prefix.prefix_len())]
            .get(&u32::from(prefix.network()))
            .copied()
    }

    /// Longest-prefix match of `addr`, reading the storage exactly as the XDP program's
    /// `dir24_lookup` does (so tests of this check what the datapath sees).
    pub fn lookup(&self, addr: Ipv4Addr) -> Option<u32> {
        lookup_in(&self.storage, u32::from(addr))
    }

    /// Number of prefixes, the default route included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// TBL8 groups the table points at (not counting quarantined ones).
    pub fn tbl8_in_use(&self) -> u32 {
        self.tbl8_in_use
    }

    /// TBL8 groups waiting out their quarantine.
    pub fn tbl8_quarantined(&self) -> usize {
        self.quarantine.len()
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Userspace bookkeeping, in bytes (approximate): the rule maps (estimated from their
    /// capacity at key + value + one control byte per slot; hashbrown may hold up to 1/7 more
    /// slots than its capacity) and the TBL8 free list and quarantine. Nothing is kept per
    /// entry: depths live in the entries. Excludes the storage itself (the BPF arrays: 64 MiB +
    /// 1 KiB per TBL8 group).
    pub fn memory_bytes(&self) -> usize {
        let slot = size_of::<(u32, u32)>() + 1;
        size_of::<Self>()
            + self
                .rules
                .iter()
                .map(|map| map.capacity() * slot)
                .sum::<usize>()
            + self.free_tbl8.capacity() * size_of::<u32>()
            + self.quarantine.capacity() * size_of::<(Instant, u32)>()
    }

    /// Returns to the free list the TBL8 groups unhooked at least [`TBL8_QUARANTINE`] before
    /// `now`, zeroing them (so that dumps of the map show only live groups).
    pub fn release_quarantined(&mut self, now: Instant) {
        while let Some(&(since, group)) = self.quarantine.front() {
            if now.saturating_duration_since(since) < TBL8_QUARANTINE {
                break; // the rest are younger
            }
            self.quarantine.pop_front();
            for index in 0..=u8::MAX {
                self.storage.set_tbl8(group, index, 0);
            }
            self.free_tbl8.push(group);
        }
    }

    /// Writes `entry` into every TBL24 entry of `/prefix_len` prefix `net` (`1..=24`) whose
    /// current depth satisfies `take`, descending into TBL8 groups for extended entries.
    #[inline]
    fn write_tbl24(&mut self, net: u32, prefix_len: u8, take: impl Fn(u8) -> bool, entry: u32) {
        let first = net >> 8;
        let count = 1u32 << (24 - prefix_len);
        for index in first..first + count {
            let current = self.storage.tbl24(index);
            if !take(entry_depth(current)) {
                continue; // a longer prefix owns this /24
            }
            if current & DIR24_EXTENDED != 0 {
                // The group's entries not owned by a longer-than-/24 prefix carry this /24's
                // depth: update them, leave the longer prefixes' entries alone. Then record the
                // /24's new depth in the TBL24 entry, still pointing at the same group.
                let group = current & DIR24_ID_MASK;
                self.write_tbl8_range(group, 0..=u8::MAX, &take, entry);
                let extended = (current & !DIR24_DEPTH_MASK) | (entry & DIR24_DEPTH_MASK);
                self.storage.set_tbl24(index, extended);
            } else {
                self.storage.set_tbl24(index, entry);
            }
        }
    }

    /// Writes `entry` into the entries of TBL8 group `group` that `/prefix_len` prefix `net`
    /// (`25..=32`) covers and whose current depth satisfies `take`.
    #[inline]
    fn write_tbl8(
        &mut self,
        group: u32,
        net: u32,
        prefix_len: u8,
        take: impl Fn(u8) -> bool,
        entry: u32,
    ) {
        let first = net as u8;
        let last = first + ((1u16 << (32 - prefix_len)) - 1) as u8;
        self.write_tbl8_range(group, first..=last, &take, entry);
    }

    #[inline]
    fn write_tbl8_range(
        &mut self,
        group: u32,
        range: RangeInclusive<u8>,
        take: &impl Fn(u8) -> bool,
        entry: u32,
    ) {
        for index in range {
            if take(entry_depth(self.storage.tbl8(group, index))) {
                self.storage.set_tbl8(group, index, entry);
            }
        }
    }

    /// The entry of the longest prefix shorter than `/depth` covering `net`, or 0 (invalid: the
    /// default route, which is never expanded, applies).
    fn covering(&self, net: u32, depth: u8) -> u32 {
        let mut shortest_probe = 1;
        if depth > 24 {
            // Below /25 the answer is already known: the depth kept for the /24.
            shortest_probe = 25;
        }
        for len in (shortest_probe..depth).rev() {
            if let Some(&group) = self.rules[usize::from(len)].get(&(net & mask(len))) {
                return route_entry(group, len);
            }
        }
        if depth > 24 {
            // The /24 is extended: its TBL24 entry holds the depth of the /24's cover.
            let len = entry_depth(self.storage.tbl24(net >> 8));
            if len > 0 {
                let group = self.rules[usize::from(len)][&(net & mask(len))];
                return route_entry(group, len);
            }
        }
        0
    }

    /// Gives TBL24 entry `index` a TBL8 group holding its current value (and depth) everywhere.
    /// The group is complete before the TBL24 entry points at it.
    fn extend(&mut self, index: u32, prefix: Ipv4Net) -> Result<(), Dir24Error> {
        let group = self.alloc_tbl8(prefix)?;
        let entry = self.storage.tbl24(index);
        for slot in 0..=u8::MAX {
            self.storage.set_tbl8(group, slot, entry);
        }
        // Publish the group only once its entries are visible.
        fence(Ordering::Release);
        // The extended entry keeps the depth of the /24's cover.
        let extended = DIR24_VALID | DIR24_EXTENDED | (entry & DIR24_DEPTH_MASK) | group;
        self.storage.set_tbl24(index, extended);
        self.tbl8_in_use += 1;
        Ok(())
    }

    /// Folds TBL8 group `group` back into TBL24 entry `index` if no prefix longer than /24 is
    /// left in it: its entries then all hold the /24's value (and depth).
    fn try_collapse(&mut self, index: u32, group: u32) {
        if (0..=u8::MAX).any(|slot| entry_depth(self.storage.tbl8(group, slot)) > 24) {
            return;
        }
        let entry = self.storage.tbl8(group, 0);
        self.storage.set_tbl24(index, entry);
        // Readers may still be inside the group: reuse it only after the quarantine.
        self.quarantine.push_back((Instant::now(), group));
        self.tbl8_in_use -= 1;
    }

    fn alloc_tbl8(&mut self, prefix: Ipv4Net) -> Result<u32, Dir24Error> {
        if !self.quarantine.is_empty() {
            self.release_quarantined(Instant::now());
        }
        if let Some(group) = self.free_tbl8.pop() {
            return Ok(group);
        }
        if let Some(&(since, _)) = self.quarantine.front() {
            // Everything is in use or quarantined: waiting out the oldest quarantine (at most
            // 100 ms) beats failing the route.
            let ready = since + TBL8_QUARANTINE;
            std::thread::sleep(ready.saturating_duration_since(Instant::now()));
            self.release_quarantined(Instant::now().max(ready));
            if let Some(group) = self.free_tbl8.pop() {
                return Ok(group);
            }
        }
        Err(Dir24Error::TableFull {
            prefix,
            capacity: self.storage.tbl8_groups(),
        })
    }
}

/// The XDP program's `dir24_lookup`, over any storage.
fn lookup_in(storage: &impl Dir24Storage, addr: u32) -> Option<u32> {
    let mut entry = storage.tbl24(addr >> 8);
    if entry & DIR24_EXTENDED != 0 {
        let group = entry & DIR24_ID_MASK;
        if group >= storage.tbl8_groups() {
            return None; // the array lookup fails in the program
        }
        entry = storage.tbl8(group, addr as u8);
    }
    if entry & DIR24_VALID == 0 {
        entry = storage.default_entry();
        if entry & DIR24_VALID == 0 {
            return None;
        }
    }
    Some(entry & DIR24_ID_MASK)
}

/// A route entry: nexthop group `group`, written by a prefix of length `depth`.
#[inline]
fn route_entry(group: u32, depth: u8) -> u32 {
    debug_assert!(group <= DIR24_ID_MASK && depth <= 32);
    DIR24_VALID | (u32::from(depth) << DIR24_DEPTH_SHIFT) | group
}

/// The depth field of an entry: the length of the prefix that wrote it (for an extended TBL24
/// entry, of its /24's cover), 0 for no route.
#[inline]
fn entry_depth(entry: u32) -> u8 {
    ((entry & DIR24_DEPTH_MASK) >> DIR24_DEPTH_SHIFT) as u8
}

#[inline]
fn tbl8_slot(group: u32, index: u8) -> usize {
    group as usize * TBL8_GROUP_ENTRIES + usize::from(index)
}

/// Netmask of a prefix length (`1..=32`).
#[inline]
fn mask(len: u8) -> u32 {
    u32::MAX << (32 - u32::from(len))
}

#[cfg(test)]
mod tests;
