//! The DXR engine's lookups (layout: `router_common::dxr`): a direct table indexed by the
//! address's top bits, then a search in the chunk's sorted range block (a short one line by
//! line, `search_block`). The agent's `datapath::dxr::lookup_v4` / `lookup_v6` run the same
//! steps over its storage, and the unit tests hold that copy to a reference LPM;
//! `tests/lookup_differential.rs` holds this one to it.
//!
//! Every loop has a constant bound (`DXR*_SEARCH_STEPS`, `DXR6_SPLIT_LEVELS`), each probe is an array lookup the
//! verifier inlines, and reads follow the address dependency descriptor -> block, so a reader
//! sees a block complete before the descriptor that publishes it (the agent's invariants I1-I5).

use aya_ebpf::{bindings::BPF_F_MMAPABLE, btf_maps::Array, macros::btf_map};
use router_common::{
    DXR_DEFAULT_V4, DXR_DEFAULT_V6, DXR_DEFAULT_VALID, DXR_DESC_SPLIT, DXR_SHORT_BLOCK_LINES,
    DXR_VALUE_NONE, DXR4_DIRECT_BITS, DXR4_DIRECT_ENTRIES, DXR4_LINES_FULL_TABLE,
    DXR4_SEARCH_STEPS, DXR6_DIRECT_BITS, DXR6_DIRECT_ENTRIES, DXR6_EXT_ENTRIES,
    DXR6_LINES_FULL_TABLE, DXR6_SEARCH_STEPS, DXR6_SPLIT_LEVELS, DXR6_SUB_ENTRIES, DXRX_LINE,
    DXRX_LINES_FULL_TABLE, Dxr4Line, Dxr6Line, DxrXLine, dxr_desc_base, dxr_desc_count,
    dxr_desc_default, dxr_ext_id, dxr4_search_key, dxr6_search_key, dxr6_sub_index,
};

const MMAPABLE: usize = BPF_F_MMAPABLE as usize;

#[btf_map]
static DXR4_DIRECT: Array<u64, { DXR4_DIRECT_ENTRIES as usize }, MMAPABLE> = Array::new();

#[btf_map]
static DXR4_RANGES: Array<Dxr4Line, { DXR4_LINES_FULL_TABLE as usize }, MMAPABLE> = Array::new();

#[btf_map]
static DXR6_DIRECT: Array<u64, { DXR6_DIRECT_ENTRIES as usize }, MMAPABLE> = Array::new();

#[btf_map]
static DXR6_RANGES: Array<Dxr6Line, { DXR6_LINES_FULL_TABLE as usize }, MMAPABLE> = Array::new();

/// Split IPv6 nodes' descriptors, 256 per group.
#[btf_map]
static DXR6_SUB: Array<u64, { DXR6_SUB_ENTRIES as usize }, MMAPABLE> = Array::new();

#[btf_map]
static DXR6_EXT: Array<u64, { DXR6_EXT_ENTRIES as usize }, MMAPABLE> = Array::new();

#[btf_map]
static DXR6_XRANGES: Array<DxrXLine, { DXRX_LINES_FULL_TABLE as usize }, MMAPABLE> = Array::new();

/// The /0 routes: `DXR_DEFAULT_VALID | group`, IPv4 then IPv6.
#[btf_map]
static DXR_DEFAULT: Array<u64, 2, MMAPABLE> = Array::new();

/// The nexthop group of the longest prefix holding `addr`.
#[inline(always)]
pub fn lookup_v4(addr: u32) -> Option<u32> {
    let desc = *DXR4_DIRECT.get(addr >> (32 - DXR4_DIRECT_BITS))?;
    let mut value = dxr_desc_default(desc);
    let count = dxr_desc_count(desc);
    if count != 0 {
        let (base, key) = (dxr_desc_base(desc), dxr4_search_key(addr));
        let line = |i| DXR4_RANGES.get(i).map(|line| &line.e);
        let range = search_block(base, count, key, DXR4_SEARCH_STEPS, line)? as u16;
        if range != DXR_VALUE_NONE {
            value = range;
        }
    }
    resolve(value, DXR_DEFAULT_V4)
}

/// The nexthop group of the longest prefix holding `addr`.
#[inline(always)]
pub fn lookup_v6(addr: &[u8; 16]) -> Option<u32> {
    let hi = u64::from_be_bytes([
        addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], addr[6], addr[7],
    ]);
    let mut desc = *DXR6_DIRECT.get((hi >> (64 - DXR6_DIRECT_BITS)) as u32)?;
    let mut value = dxr_desc_default(desc);
    // A dense chunk: down its split nodes to the one holding `hi`.
    for level in 0..DXR6_SPLIT_LEVELS {
        if dxr_desc_count(desc) != DXR_DESC_SPLIT {
            break;
        }
        desc = *DXR6_SUB.get(dxr6_sub_index(dxr_desc_base(desc), hi, level))?;
        if dxr_desc_default(desc) != DXR_VALUE_NONE {
            value = dxr_desc_default(desc);
        }
    }
    let count = dxr_desc_count(desc);
    if count != 0 && count != DXR_DESC_SPLIT {
        let (base, key) = (dxr_desc_base(desc), dxr6_search_key(hi));
        let line = |i| DXR6_RANGES.get(i).map(|line| &line.e);
        let range = search_block(base, count, key, DXR6_SEARCH_STEPS, line)? as u16;
        // NONE has the EXT bit set too: `dxr_ext_id` tells them apart.
        if let Some(id) = dxr_ext_id(range) {
            let low = u64::from_be_bytes([
                addr[8], addr[9], addr[10], addr[11], addr[12], addr[13], addr[14], addr[15],
            ]);
            let long = extension(id, low)?;
            if long != DXR_VALUE_NONE {
                value = long;
            }
        } else if range != DXR_VALUE_NONE {
            value = range;
        }
    }
    resolve(value, DXR_DEFAULT_V6)
}

/// An IPv6 /64 holding longer prefixes: the value for the lower 64 bits `low`, NONE if no
/// prefix of the /64 or longer holds it.
#[inline(always)]
fn extension(id: u32, low: u64) -> Option<u16> {
    let desc = *DXR6_EXT.get(id)?;
    let (base, count) = (dxr_desc_base(desc), dxr_desc_count(desc));
    let key = |i| Some(xrange(base + i)?.key);
    let lo = last_at_or_before(count, DXR6_SEARCH_STEPS, low, key)?;
    let long = xrange(base + lo)?.value as u16;
    Some(if long != DXR_VALUE_NONE {
        long
    } else {
        dxr_desc_default(desc)
    })
}

/// The last entry of the block of `count` entries at `base` (it starts a line, invariant I4)
/// that is at most `key` (entries compare as their keys); `line(i)` reads line `i` of the
/// block's arena. A short block first picks the line from the first keys of all its lines
/// (independent reads, their misses overlap), then searches that one line through one map
/// value, neither step branching on a key. A search whose probes each looked the array up
/// kept its state on the stack and cost more than the block's cache miss; one that branched
/// on the keys paid the predictor's misses (a coin flip each), and one that read the first
/// line only once it was chosen waited for two misses in a row. A longer block is searched
/// whole.
#[inline(always)]
fn search_block<E: Copy + PartialOrd + Into<u64> + 'static, const N: usize>(
    base: u32,
    count: u32,
    key: E,
    long_steps: u32,
    line: impl Fn(u32) -> Option<&'static [E; N]>,
) -> Option<E> {
    let first = base / N as u32;
    let lines = count.div_ceil(N as u32);
    let entry = |i: u32| Some(line(i / N as u32)?[i as usize % N]);
    if lines > DXR_SHORT_BLOCK_LINES {
        let lo = last_at_or_before(count, long_steps, key, |i| entry(base + i))?;
        return entry(base + lo);
    }
    // The line to search is the last that starts at most `key`: lines are sorted, and the
    // first starts at key 0. Every line's first key is read, the first line's too: all of
    // the block's lines are fetched at once, before any is needed.
    let mut starting = 0;
    for i in 0..DXR_SHORT_BLOCK_LINES {
        if i < lines {
            starting += at_most(line(first + i)?[0].into(), key.into()) as u32;
        }
    }
    let at = starting.saturating_sub(1);
    let entries = line(first + at)?;
    // Binary search of the line's `n` entries, with a step count that fits any `n <= N`: a
    // step with `half == 0` moves nothing.
    let (mut lo, mut n) = (0u32, (count - at * N as u32).min(N as u32));
    for _ in 0..N.ilog2() {
        let half = n / 2;
        let probe = entries[(lo + half) as usize % N];
        lo += half * at_most(probe.into(), key.into()) as u32;
        n -= half;
    }
    Some(entries[lo as usize % N])
}

/// 1 if `a <= b`, else 0 (both below 2^63), without a branch. BPF has neither `setcc` nor a
/// conditional move: LLVM lowers a comparison whose result becomes a number to a jump, so
/// the arithmetic is written in assembly, where it cannot be recognised as one.
#[inline(always)]
fn at_most(a: u64, b: u64) -> u64 {
    let r: u64;
    // SAFETY: register arithmetic only; `b - a` borrows into bit 63 exactly when `a > b`.
    unsafe {
        core::arch::asm!(
            "{r} = {b}",
            "{r} -= {a}",
            "{r} >>= 63",
            "{r} ^= 1",
            r = out(reg) r,
            a = in(reg) a,
            b = in(reg) b,
            options(pure, nomem, nostack),
        );
    }
    r
}

/// The offset of the last of `count` sorted keys at or before `key`, `key_at(i)` reading
/// the i-th: a binary search of constant bound `steps` (each halves the candidates, rounding
/// up); `None` where an array lookup fails.
#[inline(always)]
fn last_at_or_before<K: PartialOrd>(
    count: u32,
    steps: u32,
    key: K,
    key_at: impl Fn(u32) -> Option<K>,
) -> Option<u32> {
    let (mut lo, mut n) = (0u32, count);
    for _ in 0..steps {
        if n <= 1 {
            break;
        }
        let half = n / 2;
        if key_at(lo + half)? <= key {
            lo += half;
        }
        n -= half;
    }
    Some(lo)
}

#[inline(always)]
fn xrange(index: u32) -> Option<router_common::DxrXRange> {
    let line = DXR6_XRANGES.get(index / DXRX_LINE as u32)?;
    Some(line.e[index as usize % DXRX_LINE])
}

/// NONE: the family's /0 route, if there is one.
#[inline(always)]
fn resolve(value: u16, family: u32) -> Option<u32> {
    if value != DXR_VALUE_NONE {
        return Some(u32::from(value));
    }
    let entry = *DXR_DEFAULT.get(family)?;
    if entry & DXR_DEFAULT_VALID == 0 {
        return None;
    }
    Some((entry & 0xFFFF) as u32)
}
