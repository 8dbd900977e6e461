//! DXR lookup tables (Zec, Rizzo and Mikuc, 2012), shared by the XDP program and the agent.
//!
//! ```text
//!   IPv4 a.b.c.d                     IPv6 (upper 64 bits `hi`)
//!   DXR4_DIRECT[a.b] (top 16 bits)   DXR6_DIRECT[hi >> 46] (top 18 bits)
//!      │ descriptor: default | base | count
//!      ├─ count 0: a leaf, the default is the answer
//!      └─ DXR4_RANGES[base .. base+count]: sorted `offset16 << 16 | value16`,
//!         binary search for the last entry <= `offset << 16 | 0xffff`
//!         (IPv6: DXR6_RANGES, `key46 << 16 | value16`, key46 = bits 18..63 of `hi`)
//!   IPv6 value `DXR_VALUE_EXT | id`: a /64 holding longer prefixes:
//!         DXR6_EXT[id] (a descriptor) -> DXR6_XRANGES, searched on the lower 64 bits
//!   value `DXR_VALUE_NONE`: no prefix longer than the direct bits: the descriptor's default;
//!   default `DXR_VALUE_NONE`: DXR_DEFAULT[0 (v4) | 1 (v6)], the /0 route.
//!   IPv6 count `DXR_DESC_SPLIT`: a dense node split on the next 8 bits of `hi`:
//!         DXR6_SUB[base * 256 + those bits] is the descriptor of that 1/256th (its default,
//!         if not NONE, is the answer there unless a range says otherwise), and so on for at
//!         most `DXR6_SPLIT_LEVELS` levels
//! ```
//!
//! Range blocks live in arrays of 64-byte lines (one cache line, one mmap-able element), so a
//! search touches few lines and the element size needs no padding. Every block starts with
//! offset/key 0, so the search never runs off its start.

/// Address bits indexing the direct table.
pub const DXR4_DIRECT_BITS: u32 = 16;
pub const DXR6_DIRECT_BITS: u32 = 18;
pub const DXR4_DIRECT_ENTRIES: u32 = 1 << DXR4_DIRECT_BITS;
pub const DXR6_DIRECT_ENTRIES: u32 = 1 << DXR6_DIRECT_BITS;

/// Arena sizes in 64-byte lines for a full table: 23.3 MiB, 1.7x the 13.65 MiB of blocks
/// 1M IPv4 + 200k IPv6 routes of the benchmark's shape take (`dxr_full_table_install`); the
/// slack holds blocks in quarantine. The agent scales them with the routes it expects.
pub const DXR4_LINES_FULL_TABLE: u32 = 240_000;
pub const DXR6_LINES_FULL_TABLE: u32 = 110_000;
pub const DXRX_LINES_FULL_TABLE: u32 = 32_768;
/// Extension descriptors (IPv6 /64s holding longer prefixes).
pub const DXR6_EXT_ENTRIES: u32 = 32_768;

/// Range value / descriptor default: "nothing here", fall through to the next level up.
pub const DXR_VALUE_NONE: u16 = 0xFFFF;
/// IPv6 range value flag: the low 15 bits are an extension id (`DXR6_EXT` index).
pub const DXR_VALUE_EXT: u16 = 0x8000;
pub const DXR_EXT_ID_MASK: u16 = 0x7FFF;
/// Extension ids: `0x7FFF` is excluded, because `EXT | 0x7FFF` is `DXR_VALUE_NONE`.
pub const DXR6_MAX_EXT: u32 = DXR_EXT_ID_MASK as u32;
/// Nexthop group ids must stay below the EXT bit (and never equal NONE).
pub const DXR_MAX_GROUP: u32 = 0x4000;

/// Descriptor (direct entry, extension descriptor): bits 0-15 default, 16-41 base (index of
/// the block's first range), 42-63 count (0: no ranges, a leaf).
pub const DXR_DESC_BASE_SHIFT: u32 = 16;
pub const DXR_DESC_BASE_MASK: u64 = (1 << 26) - 1;
pub const DXR_DESC_COUNT_SHIFT: u32 = 42;
/// The largest block, in ranges (22-bit count, one value reserved for `DXR_DESC_SPLIT`).
pub const DXR_MAX_RANGES: u32 = (1 << 22) - 2;
/// Descriptor count of a split node: `base` is a group of 256 descriptors in `DXR6_SUB`.
pub const DXR_DESC_SPLIT: u32 = (1 << 22) - 1;

/// IPv6 split nodes: each level indexes a group of `DXR_SPLIT_FANOUT` descriptors with the
/// next `DXR_SPLIT_BITS` bits of the address, below the direct bits.
pub const DXR_SPLIT_BITS: u32 = 8;
pub const DXR_SPLIT_FANOUT: u32 = 1 << DXR_SPLIT_BITS;
pub const DXR6_SPLIT_LEVELS: u32 = 4;
/// Groups of `DXR6_SUB` (each 256 descriptors, 2 KiB).
pub const DXR6_SUB_GROUPS: u32 = 512;
pub const DXR6_SUB_ENTRIES: u32 = DXR6_SUB_GROUPS * DXR_SPLIT_FANOUT;

/// Ranges per 64-byte line.
pub const DXR4_LINE: usize = 16;
pub const DXR6_LINE: usize = 8;
pub const DXRX_LINE: usize = 4;

/// Binary-search iterations: each halves (rounding up) the candidates, so `k` iterations
/// resolve up to `2^k` ranges. An IPv4 chunk has at most 2^16 ranges (16-bit offsets).
pub const DXR4_SEARCH_STEPS: u32 = 17;
pub const DXR6_SEARCH_STEPS: u32 = 22;
/// Range blocks of up to this many lines are searched line by line: the line from the lines'
/// first keys, then within it (a block starts at a line).
pub const DXR_SHORT_BLOCK_LINES: u32 = 4;

/// `DXR_DEFAULT` entries: `DXR_DEFAULT_VALID | group` for the /0 route, else 0.
pub const DXR_DEFAULT_VALID: u64 = 1 << 31;
pub const DXR_DEFAULT_V4: u32 = 0;
pub const DXR_DEFAULT_V6: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dxr4Line {
    pub e: [u32; DXR4_LINE],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dxr6Line {
    pub e: [u64; DXR6_LINE],
}

/// An extension range: the lower 64 bits of the IPv6 address where it starts, and its value
/// (low 16 bits; a u64 so the element has no padding).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DxrXRange {
    pub key: u64,
    pub value: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DxrXLine {
    pub e: [DxrXRange; DXRX_LINE],
}

const _: () = assert!(core::mem::size_of::<Dxr4Line>() == 64);
const _: () = assert!(core::mem::size_of::<Dxr6Line>() == 64);
const _: () = assert!(core::mem::size_of::<DxrXLine>() == 64);
// Group ids fit below the EXT bit, so no group reads as an extension or as NONE.
const _: () = assert!(crate::MAX_NEXTHOP_GROUPS <= DXR_MAX_GROUP);
const _: () = assert!(DXR_MAX_GROUP <= DXR_VALUE_EXT as u32);
// The search bounds reach every range of the largest block.
const _: () = assert!(1u64 << DXR4_SEARCH_STEPS >= 1 << 16);
const _: () = assert!(1u64 << DXR6_SEARCH_STEPS >= DXR_MAX_RANGES as u64);
// The deepest split level still indexes bits of `hi`, and the group ids fit a base.
const _: () = assert!(DXR6_DIRECT_BITS + DXR_SPLIT_BITS * DXR6_SPLIT_LEVELS <= 64);
const _: () = assert!(DXR6_SUB_GROUPS as u64 <= DXR_DESC_BASE_MASK + 1);
// Descriptor fields tile the word exactly.
const _: () = assert!(DXR_DESC_BASE_SHIFT + 26 == DXR_DESC_COUNT_SHIFT);
const _: () = assert!(64 - DXR_DESC_COUNT_SHIFT == 22);

/// A descriptor: `default` (group or NONE), block at range index `base` of `count` ranges.
#[inline(always)]
pub const fn dxr_desc(default: u16, base: u32, count: u32) -> u64 {
    default as u64
        | (base as u64 & DXR_DESC_BASE_MASK) << DXR_DESC_BASE_SHIFT
        | (count as u64) << DXR_DESC_COUNT_SHIFT
}

#[inline(always)]
pub const fn dxr_desc_default(desc: u64) -> u16 {
    desc as u16
}

#[inline(always)]
pub const fn dxr_desc_base(desc: u64) -> u32 {
    ((desc >> DXR_DESC_BASE_SHIFT) & DXR_DESC_BASE_MASK) as u32
}

#[inline(always)]
pub const fn dxr_desc_count(desc: u64) -> u32 {
    (desc >> DXR_DESC_COUNT_SHIFT) as u32
}

/// The descriptor with another default, base and count kept (one store changes a default).
#[inline(always)]
pub const fn dxr_desc_with_default(desc: u64, default: u16) -> u64 {
    (desc & !0xFFFF) | default as u64
}

/// IPv4 range: starts at `offset` (the address's low 16 bits) with `value`.
#[inline(always)]
pub const fn dxr4_range(offset: u16, value: u16) -> u32 {
    (offset as u32) << 16 | value as u32
}

/// What an IPv4 search compares ranges against: the last range `<=` this one holds `addr`.
#[inline(always)]
pub const fn dxr4_search_key(addr: u32) -> u32 {
    (addr & 0xFFFF) << 16 | 0xFFFF
}

/// IPv6 range: starts at `key46` (bits 18..63 of the address) with `value`.
#[inline(always)]
pub const fn dxr6_range(key46: u64, value: u16) -> u64 {
    (key46 & ((1 << 46) - 1)) << 16 | value as u64
}

/// What an IPv6 search compares ranges against (`hi`: the upper 64 address bits).
#[inline(always)]
pub const fn dxr6_search_key(hi: u64) -> u64 {
    (hi & ((1 << 46) - 1)) << 16 | 0xFFFF
}

/// The `DXR6_SUB` index a lookup of `hi` reads at split `level` (0: right below the direct
/// bits) in group `group`.
#[inline(always)]
pub const fn dxr6_sub_index(group: u32, hi: u64, level: u32) -> u32 {
    let shift = 64 - DXR6_DIRECT_BITS - DXR_SPLIT_BITS * (level + 1);
    group << DXR_SPLIT_BITS | ((hi >> shift) as u32 & (DXR_SPLIT_FANOUT - 1))
}

/// The value of a range entry (IPv4 or IPv6).
#[inline(always)]
pub const fn dxr_range_value(entry: u64) -> u16 {
    entry as u16
}

/// `Some(id)` if a range value sends the lookup to extension `id`.
#[inline(always)]
pub const fn dxr_ext_id(value: u16) -> Option<u32> {
    if value != DXR_VALUE_NONE && value & DXR_VALUE_EXT != 0 {
        Some((value & DXR_EXT_ID_MASK) as u32)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip() {
        let desc = dxr_desc(0x1234, (1 << 26) - 1, DXR_MAX_RANGES);
        assert_eq!(dxr_desc_default(desc), 0x1234);
        assert_eq!(dxr_desc_base(desc), (1 << 26) - 1);
        assert_eq!(dxr_desc_count(desc), DXR_MAX_RANGES);
        let changed = dxr_desc_with_default(desc, DXR_VALUE_NONE);
        assert_eq!(dxr_desc_default(changed), DXR_VALUE_NONE);
        assert_eq!(dxr_desc_base(changed), (1 << 26) - 1);
        assert_eq!(dxr_desc_count(changed), DXR_MAX_RANGES);

        // A range starting at the address's own offset is <= its search key; the next is not.
        let addr = 0x0a01_0203;
        assert!(dxr4_range(0x0203, 7) <= dxr4_search_key(addr));
        assert!(dxr4_range(0x0204, 0) > dxr4_search_key(addr));
        let hi = 0x2001_0db8_0000_0001u64;
        let key46 = hi & ((1 << 46) - 1);
        assert!(dxr6_range(key46, DXR_VALUE_NONE) <= dxr6_search_key(hi));
        assert!(dxr6_range(key46 + 1, 0) > dxr6_search_key(hi));
        assert_eq!(dxr_range_value(dxr6_range(key46, 9)), 9);

        assert_eq!(dxr_ext_id(DXR_VALUE_EXT | 5), Some(5));
        assert_eq!(dxr_ext_id(DXR_VALUE_NONE), None);
        assert_eq!(dxr_ext_id((DXR_MAX_GROUP - 1) as u16), None);
    }
}
