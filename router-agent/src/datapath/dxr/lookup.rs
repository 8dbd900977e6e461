//! The XDP program's DXR lookups (`router-ebpf/src/dxr.rs`), step for step over any storage:
//! what the agent's `lookup`, `show` and tests read, and what the unit tests hold to a
//! reference LPM.

use router_common::{
    DXR_DEFAULT_V4, DXR_DEFAULT_V6, DXR_DEFAULT_VALID, DXR_DESC_SPLIT, DXR_SHORT_BLOCK_LINES,
    DXR_VALUE_NONE, DXR4_DIRECT_BITS, DXR4_SEARCH_STEPS, DXR6_DIRECT_BITS, DXR6_SEARCH_STEPS,
    DXR6_SPLIT_LEVELS, dxr_desc_base, dxr_desc_count, dxr_desc_default, dxr_ext_id,
    dxr4_search_key, dxr6_search_key, dxr6_sub_index,
};

use super::{Arena, Directory, DxrStorage};

/// The last range of `arena[base .. base + count]` whose key is at most `key` (the XDP
/// program's search: constant bound `steps`, `n -= half` either way). `None` where the
/// program's array lookup would fail.
#[inline]
fn search(
    storage: &impl DxrStorage,
    arena: Arena,
    base: u32,
    count: u32,
    key: u64,
    steps: u32,
) -> Option<u32> {
    let (mut lo, mut n) = (0u32, count);
    for _ in 0..steps {
        if n <= 1 {
            break;
        }
        let half = n / 2;
        if storage.range_key(arena, base + lo + half)? <= key {
            lo += half;
        }
        n -= half;
    }
    Some(base + lo)
}

/// The XDP program's IPv4 lookup over any storage.
pub fn lookup_v4(storage: &impl DxrStorage, addr: u32) -> Option<u32> {
    let desc = storage.descriptor(Directory::Direct4, addr >> (32 - DXR4_DIRECT_BITS))?;
    let mut value = dxr_desc_default(desc);
    let count = dxr_desc_count(desc);
    if count != 0 {
        let key = u64::from(dxr4_search_key(addr));
        let base = dxr_desc_base(desc);
        let index = search_block(storage, Arena::Ranges4, base, count, key, DXR4_SEARCH_STEPS)?;
        let range = storage.range_value(Arena::Ranges4, index)?;
        if range != DXR_VALUE_NONE {
            value = range;
        }
    }
    resolve_default(storage, value, DXR_DEFAULT_V4)
}

/// The program's block search (`search_block`): a block of up to `DXR_SHORT_BLOCK_LINES`
/// lines searches the last of its lines that starts at most `key` (counted over all of them,
/// the first starting at key 0), then that line; a longer one is searched whole, in up to
/// `long_steps`.
fn search_block(
    storage: &impl DxrStorage,
    arena: Arena,
    base: u32,
    count: u32,
    key: u64,
    long_steps: u32,
) -> Option<u32> {
    let per_line = arena.per_line();
    let lines = count.div_ceil(per_line);
    if lines > DXR_SHORT_BLOCK_LINES {
        return search(storage, arena, base, count, key, long_steps);
    }
    let mut starting = 0;
    for i in 0..lines {
        starting += u32::from(storage.range_key(arena, base + i * per_line)? <= key);
    }
    let line = starting.saturating_sub(1);
    let in_line = (count - line * per_line).min(per_line);
    let steps = per_line.ilog2();
    search(storage, arena, base + line * per_line, in_line, key, steps)
}

/// The XDP program's IPv6 lookup over any storage.
pub fn lookup_v6(storage: &impl DxrStorage, addr: &[u8; 16]) -> Option<u32> {
    let hi = u64::from_be_bytes(addr[..8].try_into().expect("8 bytes"));
    let mut desc =
        storage.descriptor(Directory::Direct6, (hi >> (64 - DXR6_DIRECT_BITS)) as u32)?;
    let mut value = dxr_desc_default(desc);
    for level in 0..DXR6_SPLIT_LEVELS {
        if dxr_desc_count(desc) != DXR_DESC_SPLIT {
            break;
        }
        desc = storage.descriptor(
            Directory::Sub6,
            dxr6_sub_index(dxr_desc_base(desc), hi, level),
        )?;
        if dxr_desc_default(desc) != DXR_VALUE_NONE {
            value = dxr_desc_default(desc);
        }
    }
    let count = dxr_desc_count(desc);
    if count != 0 && count != DXR_DESC_SPLIT {
        let (base, key) = (dxr_desc_base(desc), dxr6_search_key(hi));
        let index = search_block(storage, Arena::Ranges6, base, count, key, DXR6_SEARCH_STEPS)?;
        let range = storage.range_value(Arena::Ranges6, index)?;
        if let Some(id) = dxr_ext_id(range) {
            let lo = u64::from_be_bytes(addr[8..].try_into().expect("8 bytes"));
            let ext = storage.descriptor(Directory::Ext6, id)?;
            let (base, count) = (dxr_desc_base(ext), dxr_desc_count(ext));
            let index = search(storage, Arena::XRanges6, base, count, lo, DXR6_SEARCH_STEPS)?;
            let long = storage.range_value(Arena::XRanges6, index)?;
            if long != DXR_VALUE_NONE {
                value = long;
            } else if dxr_desc_default(ext) != DXR_VALUE_NONE {
                value = dxr_desc_default(ext);
            }
        } else if range != DXR_VALUE_NONE {
            value = range;
        }
    }
    resolve_default(storage, value, DXR_DEFAULT_V6)
}

/// NONE goes to the family's /0 route, if any.
#[inline]
fn resolve_default(storage: &impl DxrStorage, value: u16, family: u32) -> Option<u32> {
    if value != DXR_VALUE_NONE {
        return Some(u32::from(value));
    }
    let entry = storage.default_entry(family);
    (entry & DXR_DEFAULT_VALID != 0).then_some((entry & 0xFFFF) as u32)
}
