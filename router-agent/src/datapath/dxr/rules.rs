//! One family's rule set: the prefixes the tables are built from, in the shape the builder
//! wants them (short prefixes by length, longer ones sorted per chunk, IPv6 prefixes longer
//! than /64 per /64).

use std::collections::HashMap;
use std::ops::Range;

use ipnet::IpNet;
use router_common::{DXR_SPLIT_BITS, DXR_VALUE_NONE, DXR4_DIRECT_BITS, DXR6_DIRECT_BITS};

use super::lists::{DenseLists, ListStore, Lists, SlotLists};

type Hasher = foldhash::fast::RandomState;

/// A prefix reduced to the family's 64-bit key space: IPv4 `addr << 32`, IPv6 the upper 64
/// bits (`hi`) and the lower 64 (`lo`); host bits clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rule {
    pub hi: u64,
    pub lo: u64,
    pub len: u8,
}

impl Rule {
    /// The family (true: IPv6) and position of a truncated prefix.
    pub fn of(prefix: IpNet) -> (bool, Rule) {
        match prefix {
            IpNet::V4(v4) => {
                let hi = u64::from(u32::from(v4.network())) << 32;
                (
                    false,
                    Rule {
                        hi,
                        lo: 0,
                        len: v4.prefix_len(),
                    },
                )
            }
            IpNet::V6(v6) => {
                let addr = u128::from(v6.network());
                let (hi, lo) = ((addr >> 64) as u64, addr as u64);
                (
                    true,
                    Rule {
                        hi,
                        lo,
                        len: v6.prefix_len(),
                    },
                )
            }
        }
    }
}

/// A stored prefix: `key` (the family key, or for IPv6 prefixes longer than /64 the lower 64
/// bits), `len` (minus 64 for those), `group`. 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub key: u64,
    pub len: u8,
    pub group: u16,
}

/// A chunk's prefix as stored: the family key's bits after the `DIRECT` bits, left-aligned in
/// `WORDS` u16, then length and group. These lists are most of the agent's DXR memory at a
/// full table: 6 bytes per IPv4 prefix, 10 per IPv6 one, against [`Entry`]'s 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ChunkEntry<const WORDS: usize, const DIRECT: u32> {
    offset: [u16; WORDS],
    len: u8,
    group: u16,
}

/// IPv4: the 16 bits after the 16 direct bits.
type Entry4 = ChunkEntry<1, DXR4_DIRECT_BITS>;
/// IPv6: the 46 bits after the 18 direct bits (in 48).
pub(super) type Entry6 = ChunkEntry<3, DXR6_DIRECT_BITS>;

const _: () = assert!(32 - DXR4_DIRECT_BITS <= 16);
const _: () = assert!(64 - DXR6_DIRECT_BITS <= 48);
const _: () = assert!(size_of::<Entry4>() == 6 && size_of::<Entry6>() == 10);

impl<const WORDS: usize, const DIRECT: u32> ChunkEntry<WORDS, DIRECT> {
    const BITS: u32 = 16 * WORDS as u32;

    /// The family key's bits after the direct bits, left-aligned in `BITS`: ordered as the
    /// keys are inside one chunk.
    fn offset_of(key: u64) -> u64 {
        (key << DIRECT) >> (64 - Self::BITS)
    }

    fn offset(&self) -> u64 {
        self.offset
            .iter()
            .fold(0, |acc, &word| acc << 16 | u64::from(word))
    }

    /// Back to an [`Entry`] with the family key, in chunk `chunk`.
    pub fn entry(self, chunk: u32) -> Entry {
        Entry {
            key: u64::from(chunk) << (64 - DIRECT) | (self.offset() << (64 - Self::BITS)) >> DIRECT,
            len: self.len,
            group: self.group,
        }
    }
}

/// What a sorted prefix list holds: ordered by (key, length) inside one chunk or /64.
trait Sorted: Copy {
    /// The list order of a prefix with this family key and length.
    fn order_of(key: u64, len: u8) -> (u64, u8);
    fn order(&self) -> (u64, u8);
    fn make(key: u64, len: u8, group: u16) -> Self;
    fn group(&self) -> u16;
    fn group_mut(&mut self) -> &mut u16;
}

impl Sorted for Entry {
    fn order_of(key: u64, len: u8) -> (u64, u8) {
        (key, len)
    }
    fn order(&self) -> (u64, u8) {
        (self.key, self.len)
    }
    fn make(key: u64, len: u8, group: u16) -> Self {
        Entry { key, len, group }
    }
    fn group(&self) -> u16 {
        self.group
    }
    fn group_mut(&mut self) -> &mut u16 {
        &mut self.group
    }
}

impl<const WORDS: usize, const DIRECT: u32> Sorted for ChunkEntry<WORDS, DIRECT> {
    fn order_of(key: u64, len: u8) -> (u64, u8) {
        (Self::offset_of(key), len)
    }
    fn order(&self) -> (u64, u8) {
        (self.offset(), self.len)
    }
    fn make(key: u64, len: u8, group: u16) -> Self {
        let offset = Self::offset_of(key);
        ChunkEntry {
            offset: std::array::from_fn(|i| (offset >> (16 * (WORDS - 1 - i))) as u16),
            len,
            group,
        }
    }
    fn group(&self) -> u16 {
        self.group
    }
    fn group_mut(&mut self) -> &mut u16 {
        &mut self.group
    }
}

/// Per chunk: its longer prefixes (and IPv6 extension markers), sorted by (key, len). IPv6
/// by slot: most of its 2^18 chunks stay empty.
enum Chunks {
    V4(DenseLists<Entry4>),
    V6(SlotLists<Entry6>),
}

/// `Entry::len` of a chunk's marker for a /64 (`key`) holding prefixes longer than /64: sorts
/// after a /64 route at the same key, which the extension then sits inside.
pub(super) const EXT_MARKER: u8 = u8::MAX;

/// Network mask of `len` bits (0..=64) of a 64-bit key.
pub(super) fn mask(len: u8) -> u64 {
    u64::MAX.checked_shl(64 - u32::from(len)).unwrap_or(0)
}

/// The last key of a prefix of `len` bits (0..=64) starting at `key`.
pub(super) fn span_end(key: u64, len: u8) -> u64 {
    key | u64::MAX.checked_shr(u32::from(len)).unwrap_or(0)
}

/// The last chunk-relative key of the node at split `level` starting at `start`.
pub(super) fn node_last(level: u32, start: u64) -> u64 {
    start | u64::MAX.checked_shr(DXR_SPLIT_BITS * level).unwrap_or(0)
}

/// The prefix length of an IPv6 node at split `level` (the chunk: the direct bits).
pub(super) fn node_len(level: u32) -> u8 {
    (DXR6_DIRECT_BITS + DXR_SPLIT_BITS * level) as u8
}

/// The IPv6 family key of chunk-relative key `relative` in `chunk`.
pub(super) fn node_key(chunk: u32, relative: u64) -> u64 {
    u64::from(chunk) << (64 - DXR6_DIRECT_BITS) | relative >> DXR6_DIRECT_BITS
}

/// A changed IPv6 prefix in its chunk: first and last chunk-relative key, and length (a
/// prefix longer than /64 changes its /64's extension range: that /64).
#[derive(Clone, Copy, Debug)]
pub(super) struct Change {
    pub first: u64,
    pub last: u64,
    pub len: u8,
}

impl Change {
    pub fn of(prefix: IpNet) -> Self {
        let (_, rule) = Rule::of(prefix);
        let first = rule.hi << DXR6_DIRECT_BITS;
        let len = rule.len.min(64);
        Change {
            first,
            last: span_end(first, len - DXR6_DIRECT_BITS as u8),
            len,
        }
    }
}

pub(super) struct Family {
    bits: u8,
    /// `short[len]` (`len <= bits`): network key -> group.
    short: Vec<HashMap<u64, u16, Hasher>>,
    /// Per chunk: the length of the short prefix that owns its default (0: none).
    depth: Vec<u8>,
    chunks: Chunks,
    /// IPv6: /64 (upper key) -> its prefixes longer than /64 (lower key), sorted.
    ext: Lists<u64, Entry>,
    /// IPv6: chunk -> how many of its /64s hold longer prefixes (have a marker in its list).
    markers: HashMap<u32, u32, Hasher>,
    len: usize,
}

impl Family {
    pub fn new(v6: bool) -> Self {
        let bits = if v6 {
            DXR6_DIRECT_BITS
        } else {
            DXR4_DIRECT_BITS
        } as u8;
        Self {
            bits,
            short: (0..=bits).map(|_| HashMap::default()).collect(),
            depth: vec![0; 1 << bits],
            chunks: if v6 {
                Chunks::V6(SlotLists::new(1 << DXR6_DIRECT_BITS))
            } else {
                Chunks::V4(DenseLists::new(1 << DXR4_DIRECT_BITS))
            },
            ext: HashMap::default(),
            markers: HashMap::default(),
            len: 0,
        }
    }

    pub fn direct_bits(&self) -> u8 {
        self.bits
    }

    pub fn chunk_of(&self, hi: u64) -> u32 {
        (hi >> (64 - self.bits)) as u32
    }

    /// The chunks a short prefix (`1..=bits`) covers.
    pub fn chunk_span(&self, rule: Rule) -> Range<u32> {
        let first = self.chunk_of(rule.hi);
        first..first + (1 << (self.bits - rule.len))
    }

    pub fn depth(&self, chunk: u32) -> u8 {
        self.depth[chunk as usize]
    }

    pub fn set_depth(&mut self, chunk: u32, depth: u8) {
        self.depth[chunk as usize] = depth;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Sets (`Some`) or removes a prefix of at most /bits; returns its previous group.
    pub fn set_short(&mut self, rule: Rule, group: Option<u16>) -> Option<u16> {
        let map = &mut self.short[usize::from(rule.len)];
        let previous = match group {
            Some(group) => map.insert(rule.hi, group),
            None => map.remove(&rule.hi),
        };
        self.count(previous, group);
        previous
    }

    /// The longest prefix shorter than `rule` (and at least /1) covering it: (length, group),
    /// or (0, NONE).
    pub fn short_cover(&self, rule: Rule) -> (u8, u16) {
        (1..rule.len)
            .rev()
            .find_map(|len| {
                let map = &self.short[usize::from(len)];
                map.get(&(rule.hi & mask(len))).map(|&group| (len, group))
            })
            .unwrap_or((0, DXR_VALUE_NONE))
    }

    /// Sets (`Some`) or removes a prefix longer than /bits; returns its previous group.
    pub fn set_long(&mut self, rule: Rule, group: Option<u16>) -> Option<u16> {
        let chunk = self.chunk_of(rule.hi);
        let previous = if rule.len <= 64 {
            self.set_in_chunk(chunk, rule.hi, rule.len, group)
        } else {
            let list = self.ext.entry(rule.hi).or_default();
            let was_empty = list.is_empty();
            let previous = set_sorted(list, rule.lo, rule.len - 64, group);
            // The chunk's marker exists exactly while the /64 has longer prefixes.
            if list.is_empty() {
                self.ext.remove(&rule.hi);
                if !was_empty {
                    self.set_in_chunk(chunk, rule.hi, EXT_MARKER, None);
                    if let Some(count) = self.markers.get_mut(&chunk) {
                        *count -= 1;
                        if *count == 0 {
                            self.markers.remove(&chunk);
                        }
                    }
                }
            } else if was_empty {
                self.set_in_chunk(chunk, rule.hi, EXT_MARKER, Some(0));
                *self.markers.entry(chunk).or_default() += 1;
            }
            previous
        };
        self.count(previous, group);
        previous
    }

    pub fn get(&self, rule: Rule) -> Option<u16> {
        if rule.len <= self.bits {
            return self.short[usize::from(rule.len)].get(&rule.hi).copied();
        }
        if rule.len > 64 {
            return find(self.ext.get(&rule.hi)?, rule.lo, rule.len - 64);
        }
        let chunk = self.chunk_of(rule.hi);
        match &self.chunks {
            Chunks::V4(lists) => find(lists.list(chunk)?, rule.hi, rule.len),
            Chunks::V6(lists) => find(lists.list(chunk)?, rule.hi, rule.len),
        }
    }

    /// A chunk's prefixes (`key`: the family key), sorted, into `f`.
    pub fn for_each_in_chunk(&self, chunk: u32, f: impl FnMut(Entry)) {
        match &self.chunks {
            Chunks::V4(lists) => lists
                .list(chunk)
                .into_iter()
                .flatten()
                .map(|e| e.entry(chunk))
                .for_each(f),
            Chunks::V6(lists) => lists
                .list(chunk)
                .into_iter()
                .flatten()
                .map(|e| e.entry(chunk))
                .for_each(f),
        }
    }

    /// IPv6: whether a /64 of `chunk` holds longer prefixes (its list has their marker).
    pub fn has_ext_marker(&self, chunk: u32) -> bool {
        self.markers.contains_key(&chunk)
    }

    /// Prefixes (and extension markers) of `chunk`.
    pub fn chunk_len(&self, chunk: u32) -> usize {
        match &self.chunks {
            Chunks::V4(lists) => lists.list(chunk).map_or(0, Vec::len),
            Chunks::V6(lists) => lists.list(chunk).map_or(0, Vec::len),
        }
    }

    /// IPv6: the prefixes of `chunk` inside the node of `len` bits whose family keys are
    /// `first..=last` (longer than the node: not the ones covering it), sorted; `.entry(chunk)`
    /// gives each one's family key.
    pub fn inside(&self, chunk: u32, first: u64, last: u64, len: u8) -> &[Entry6] {
        let Chunks::V6(lists) = &self.chunks else {
            return &[];
        };
        let Some(list) = lists.list(chunk) else {
            return &[];
        };
        let (first, last) = (Entry6::offset_of(first), Entry6::offset_of(last));
        let from = list.partition_point(|e| e.offset() < first);
        let to = list.partition_point(|e| e.offset() <= last);
        // Those covering the node start at its first key and sort first there.
        let covering = list[from..to].iter().take_while(|e| e.len <= len).count();
        &list[from + covering..to]
    }

    /// The group of the longest prefix of length `above+1..=up_to` (both longer than the
    /// direct bits, at most 64) covering `key`.
    pub fn longest_covering(&self, key: u64, above: u8, up_to: u8) -> Option<u16> {
        (above + 1..=up_to).rev().find_map(|len| {
            let rule = Rule {
                hi: key & mask(len),
                lo: 0,
                len,
            };
            self.get(rule)
        })
    }

    pub fn ext_entries(&self, hi: u64) -> &[Entry] {
        self.ext.get(&hi).map_or(&[], Vec::as_slice)
    }

    pub fn bookkeeping_bytes(&self) -> usize {
        let slot = size_of::<(u64, u16)>() + 1;
        self.short
            .iter()
            .map(|m| m.capacity() * slot)
            .sum::<usize>()
            + self.depth.capacity()
            + match &self.chunks {
                Chunks::V4(lists) => lists.bytes(),
                Chunks::V6(lists) => lists.bytes(),
            }
            + self.ext.bytes()
            + self.markers.capacity() * (size_of::<(u32, u32)>() + 1)
    }

    fn set_in_chunk(&mut self, chunk: u32, key: u64, len: u8, group: Option<u16>) -> Option<u16> {
        match &mut self.chunks {
            Chunks::V4(lists) => set_in(lists, chunk, key, len, group),
            Chunks::V6(lists) => set_in(lists, chunk, key, len, group),
        }
    }

    fn count(&mut self, previous: Option<u16>, group: Option<u16>) {
        match (previous, group) {
            (None, Some(_)) => self.len += 1,
            (Some(_), None) => self.len -= 1,
            _ => {}
        }
    }
}

/// Sets or removes (`key`, `len`) in the list of `at`, dropping a list that empties.
fn set_in<K: Copy, E: Sorted>(
    lists: &mut impl ListStore<K, E>,
    at: K,
    key: u64,
    len: u8,
    group: Option<u16>,
) -> Option<u16> {
    let list = lists.list_mut(at);
    let previous = set_sorted(list, key, len, group);
    if list.is_empty() {
        lists.drop_if_empty(at);
    }
    previous
}

fn find<E: Sorted>(list: &[E], key: u64, len: u8) -> Option<u16> {
    let index = list
        .binary_search_by_key(&E::order_of(key, len), E::order)
        .ok()?;
    Some(list[index].group())
}

/// Sets or removes (`key`, `len`) in a list sorted by (key, len); returns the previous group.
fn set_sorted<E: Sorted>(list: &mut Vec<E>, key: u64, len: u8, group: Option<u16>) -> Option<u16> {
    match (
        list.binary_search_by_key(&E::order_of(key, len), E::order),
        group,
    ) {
        (Ok(index), Some(group)) => Some(std::mem::replace(list[index].group_mut(), group)),
        (Ok(index), None) => Some(list.remove(index).group()),
        (Err(index), Some(group)) => {
            // Grow by an eighth, not double: these lists are most of the bookkeeping.
            if list.len() == list.capacity() {
                list.reserve_exact(list.len() / 8 + 1);
            }
            list.insert(index, E::make(key, len, group));
            None
        }
        (Err(_), None) => None,
    }
}
