//! Chunk rebuilds: a chunk's prefixes swept into sorted ranges, written into a fresh block
//! (with fresh extension blocks for IPv6 /64s holding longer prefixes), published by one
//! descriptor store; the old block and extensions go to quarantine at the batch's end
//! (`unhooked.rs`; I1, I3, I5).

use std::time::Instant;

use ipnet::IpNet;
use router_common::{
    DXR_MAX_RANGES, DXR_SPLIT_BITS, DXR_VALUE_EXT, DXR_VALUE_NONE, DXR6_DIRECT_BITS,
    DXR6_SPLIT_LEVELS, dxr_desc, dxr_desc_base, dxr_desc_count, dxr_desc_default,
    dxr_desc_with_default, dxr_ext_id, dxr_range_value, dxr4_range, dxr6_range,
};

use super::rules::{Change, EXT_MARKER, Entry, node_key, node_last, node_len, span_end};
use super::{Arena, Directory, Dxr, DxrStorage};

/// What a span of keys holds: a group (or NONE), or an IPv6 /64's extension.
#[derive(Clone, Copy)]
enum Span {
    Value(u16),
    /// The /64 with this upper key; its value is made when the sweep reaches it.
    Ext(u64),
}

/// Cuts a key space into ranges of equal answer. `spans` are prefixes as (first key, last key,
/// what), sorted by first key, outer prefixes first (prefixes nest or are disjoint). Returns
/// (first key, value) per range, the first at key 0, neighbours with equal values merged.
/// `ext` makes an extension's value from its /64 and the value covering it.
/// The ranges go to `out`; `open` is a work buffer (both cleared first, their room reused).
fn sweep<E>(
    spans: impl IntoIterator<Item = (u64, u64, Span)>,
    out: &mut Vec<(u64, u16)>,
    open: &mut Vec<(u64, u16)>,
    mut ext: impl FnMut(u64, u16) -> Result<u16, E>,
) -> Result<(), E> {
    out.clear();
    out.push((0, DXR_VALUE_NONE));
    // Open prefixes, innermost last: (last key, value).
    open.clear();
    for (first, last, span) in spans {
        close(out, open, Some(first));
        let covering = open.last().map_or(DXR_VALUE_NONE, |&(_, value)| value);
        let value = match span {
            Span::Value(value) => value,
            Span::Ext(hi) => ext(hi, covering)?,
        };
        emit(out, first, value);
        open.push((last, value));
    }
    close(out, open, None);
    Ok(())
}

/// Closes the open prefixes that end before `next` (all of them if `None`): the keys after
/// each belong to the prefix around it.
fn close(out: &mut Vec<(u64, u16)>, open: &mut Vec<(u64, u16)>, next: Option<u64>) {
    while let Some(&(last, _)) = open.last() {
        if next.is_some_and(|next| next <= last) {
            break;
        }
        open.pop();
        if last == u64::MAX {
            continue; // the key space ends here
        }
        let outer = open.last().map_or(DXR_VALUE_NONE, |&(_, value)| value);
        emit(out, last + 1, outer);
    }
}

/// Starts a range at `first` (replacing one that starts there), merged with its predecessor
/// when equal.
fn emit(out: &mut Vec<(u64, u16)>, first: u64, value: u16) {
    let last = out.last_mut().expect("starts with key 0");
    if last.0 == first {
        last.1 = value;
        if out.len() >= 2 && out[out.len() - 2].1 == value {
            out.pop();
        }
    } else if last.1 != value {
        out.push((first, value));
    }
}

/// A rebuild's IPv6 extensions.
#[derive(Default)]
pub(super) struct Extensions {
    /// Built for the new block: (id, first line, lines), freed at once if the rebuild fails.
    pub made: Vec<(u32, u32, u32)>,
    /// The old block's unchanged ones, by /64, and those the new block keeps.
    pub reusable: Vec<(u64, u32)>,
    pub kept: Vec<u32>,
}

/// What a rebuild carries down: buffers it reuses (a full-table load rebuilds hundreds of
/// thousands of chunks, and allocating these each time was a quarter of its time), and
/// whether the old tree may name extensions.
#[derive(Default)]
pub(super) struct Scratch {
    spans: Vec<(u64, u64, Span)>,
    ranges: Vec<(u64, u16)>,
    open: Vec<(u64, u16)>,
    /// IPv6: the chunk's published blocks may name extensions, so they are read for them
    /// (false: they cannot, and a cache miss on each old block is saved).
    old_exts: bool,
}

/// Whether two descriptors name the same block (a node rewritten in place).
fn same_block(old: u64, new: u64) -> bool {
    let count = dxr_desc_count(new);
    count != 0 && count == dxr_desc_count(old) && dxr_desc_base(new) == dxr_desc_base(old)
}

/// Lines a block of `count` ranges takes.
pub(super) fn lines(arena: Arena, count: u32) -> u32 {
    count.div_ceil(arena.per_line())
}

impl<S: DxrStorage> Dxr<S> {
    /// Rebuilds chunk `chunk` of a family from its rules; `changed`: the batch's prefixes in
    /// it (a split IPv6 chunk rebuilds only the nodes they touch), `None`: everything. On
    /// failure nothing reachable has changed and what was allocated is freed; the error names
    /// what was full (the caller degrades the chunk).
    pub(super) fn rebuild_chunk(
        &mut self,
        v6: bool,
        chunk: u32,
        changed: Option<&[IpNet]>,
    ) -> Result<(), &'static str> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.rebuild_with(v6, chunk, changed, &mut scratch);
        self.scratch = scratch;
        result
    }

    fn rebuild_with(
        &mut self,
        v6: bool,
        chunk: u32,
        changed: Option<&[IpNet]>,
        scratch: &mut Scratch,
    ) -> Result<(), &'static str> {
        let directory = if v6 {
            Directory::Direct6
        } else {
            Directory::Direct4
        };
        let old = self
            .storage
            .descriptor(directory, chunk)
            .unwrap_or_default();
        // A block names an extension only for a /64 that has a marker in the chunk's list, or
        // had one before this batch changed a prefix longer than /64 in it.
        scratch.old_exts = v6
            && changed.is_none_or(|changed| {
                changed.iter().any(|prefix| prefix.prefix_len() > 64)
                    || self.v6.has_ext_marker(chunk)
            });
        if let Some(changed) = changed
            && v6
            && self.stays_split(old, self.node_entries(chunk, 0, 0))
        {
            let changes: Vec<Change> = changed.iter().map(|&p| Change::of(p)).collect();
            return self.update_split(chunk, 0, 0, old, &changes, scratch);
        }
        let default = match self.degraded.get(&(v6, chunk)) {
            Some(&real) => real,
            None => dxr_desc_default(old),
        };
        let with_default = |desc| dxr_desc_with_default(desc, default);
        self.replace_node(
            v6,
            chunk,
            0,
            0,
            (directory, chunk),
            old,
            with_default,
            scratch,
        )?;
        self.degraded.remove(&(v6, chunk));
        Ok(())
    }

    /// Builds the node of `chunk` at `level` from `start` anew, publishes it at `at` (with
    /// `finish` applied to its descriptor) in place of `old`, and lets `old` go, keeping the
    /// unchanged extensions the new node still names. On failure nothing reachable changed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn replace_node(
        &mut self,
        v6: bool,
        chunk: u32,
        level: u32,
        start: u64,
        at: (Directory, u32),
        old: u64,
        finish: impl FnOnce(u64) -> u64,
        scratch: &mut Scratch,
    ) -> Result<(), &'static str> {
        let mut exts = Extensions {
            reusable: if scratch.old_exts {
                self.unchanged_exts(chunk, old)
            } else {
                Vec::new()
            },
            ..Extensions::default()
        };
        let reuse = Some(old);
        let desc = match self.build_node(v6, chunk, level, start, reuse, &mut exts, scratch) {
            Ok(desc) => desc,
            Err(what) => {
                self.drop_unpublished_exts(&exts.made);
                return Err(what);
            }
        };
        let published = finish(desc);
        if same_block(old, desc) {
            // Rewritten in place: only a default may still change.
            if published != old {
                self.publish(at.0, at.1, published);
            }
            return Ok(());
        }
        self.publish(at.0, at.1, published);
        let kept = scratch.old_exts.then_some(exts.kept.as_slice());
        self.unhook_tree(v6, old, kept);
        Ok(())
    }

    /// Builds the node of `chunk` at split `level` (IPv4: always 0, the whole chunk) whose
    /// keys start at the chunk-relative `start`: a split node and its children, a block, or
    /// a leaf, none reachable yet. Returns its descriptor (level 0: default NONE, the caller
    /// sets the chunk's). With `reuse`, the node's published descriptor, a block whose ranges
    /// keep their keys gets its new values in place instead ([`Dxr::rewrite_values`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn build_node(
        &mut self,
        v6: bool,
        chunk: u32,
        level: u32,
        start: u64,
        reuse: Option<u64>,
        exts: &mut Extensions,
        scratch: &mut Scratch,
    ) -> Result<u64, &'static str> {
        let family = if v6 { &self.v6 } else { &self.v4 };
        let bits = u32::from(family.direct_bits());
        let last = node_last(level, start);
        // Chunk-relative keys: the key's bits after the direct bits, left-aligned.
        let span = |e: Entry| {
            let first = e.key << bits;
            if e.len == EXT_MARKER {
                (first, span_end(first, 64 - bits as u8), Span::Ext(e.key))
            } else {
                (
                    first,
                    span_end(first, e.len - bits as u8),
                    Span::Value(e.group),
                )
            }
        };
        scratch.spans.clear();
        // A child's default is the longest prefix covering all of it that does not cover all
        // of its parent (shorter ones are an ancestor's default); its block holds only the
        // prefixes inside it, so a change to a prefix covering whole children rewrites their
        // descriptors, not their blocks. The chunk's default is the caller's.
        let mut default = DXR_VALUE_NONE;
        if level == 0 {
            family.for_each_in_chunk(chunk, |e| scratch.spans.push(span(e)));
        } else {
            let (first_key, node_len) = (node_key(chunk, start), node_len(level));
            default = family
                .longest_covering(first_key, node_len - DXR_SPLIT_BITS as u8, node_len)
                .unwrap_or(DXR_VALUE_NONE);
            let inside = family.inside(chunk, first_key, node_key(chunk, last), node_len);
            scratch
                .spans
                .extend(inside.iter().map(|e| span(e.entry(chunk))));
        }
        if v6
            && level < DXR6_SPLIT_LEVELS
            && self.splits(scratch.spans.len())
            && let Some(group) = self.sub_groups.alloc()
        {
            let split = self.build_split(chunk, level, start, group, exts, scratch)?;
            return Ok(dxr_desc_with_default(split, default));
        }

        let swept = sweep(
            scratch.spans.iter().copied(),
            &mut scratch.ranges,
            &mut scratch.open,
            |hi, covering| self.build_ext(hi, covering, exts),
        );
        swept?;
        // The node's share of the ranges, the first moved to its start (invariant I4).
        let ranges = &mut scratch.ranges;
        let from = ranges.partition_point(|&(key, _)| key <= start) - 1;
        let to = ranges.partition_point(|&(key, _)| key <= last);
        let ranges = &mut ranges[from..to];
        ranges[0].0 = start;
        if let [(_, DXR_VALUE_NONE)] = *ranges {
            return Ok(dxr_desc(default, 0, 0)); // a leaf: nothing inside the node
        }
        let (arena, what) = if v6 {
            (Arena::Ranges6, "IPv6 range arena")
        } else {
            (Arena::Ranges4, "IPv4 range arena")
        };
        let encode = |(first, value): (u64, u16)| {
            if v6 {
                dxr6_range(first >> bits, value)
            } else {
                u64::from(dxr4_range((first >> 48) as u16, value))
            }
        };
        // A split child's default lives in its descriptor: in place, only if it stays, so
        // that no reader pairs a new range value with an old default (level 0: the chunk's
        // default is the caller's and a rebuild keeps it).
        let reusable = |old: &u64| level == 0 || dxr_desc_default(*old) == default;
        if let Some(desc) = reuse
            .filter(reusable)
            .and_then(|old| self.rewrite_values(arena, old, ranges, encode, default))
        {
            return Ok(desc);
        }
        let count = ranges.len() as u32;
        let room = if count <= DXR_MAX_RANGES {
            self.alloc_lines(arena, lines(arena, count))
        } else {
            None
        };
        let start_line = room.ok_or(what)?;
        let base = start_line * arena.per_line();
        for (i, &(first, value)) in ranges.iter().enumerate() {
            let entry = encode((first, value));
            self.storage
                .write_unpublished(arena, base + i as u32, entry, value);
        }
        Ok(dxr_desc(default, base, count))
    }

    /// Writes `ranges` over the published block of `old` if they start at the same keys and
    /// neither names an extension (a route moved to another group, the commonest BGP
    /// update): each changed range is one aligned store of its whole entry, and a search
    /// compares keys only, so a reader takes the same path and finds the old value or the
    /// new one (I5). No block is allocated or quarantined. Returns the descriptor, `None`
    /// (nothing written) if the keys differ.
    fn rewrite_values(
        &mut self,
        arena: Arena,
        old: u64,
        ranges: &[(u64, u16)],
        encode: impl Fn((u64, u16)) -> u64,
        default: u16,
    ) -> Option<u64> {
        let (base, count) = (dxr_desc_base(old), dxr_desc_count(old));
        if count as usize != ranges.len() {
            return None; // also a leaf or a split node: never `ranges.len()`
        }
        let mut rewrite = Vec::new();
        for (index, &range) in (base..).zip(ranges) {
            let (entry, new) = (self.storage.range_key(arena, index)?, encode(range));
            let names_ext = |entry: u64| dxr_ext_id(dxr_range_value(entry)).is_some();
            if entry >> 16 != new >> 16 || names_ext(entry) || names_ext(new) {
                return None;
            }
            if entry != new {
                rewrite.push((index, new));
            }
        }
        for (index, entry) in rewrite {
            self.storage.rewrite_range(arena, index, entry);
        }
        Some(dxr_desc(default, base, count))
    }

    /// The extensions of the published node `old` of IPv6 chunk `chunk` (its block, or the
    /// blocks under a split node) whose prefixes this batch did not change: (/64, id). A
    /// rebuild keeps them rather than copy them.
    pub(super) fn unchanged_exts(&self, chunk: u32, old: u64) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        self.for_each_block(true, old, &mut |dxr, base, count| {
            let arena = Arena::Ranges6;
            out.extend((base..base + count).filter_map(|index| {
                let id = dxr_ext_id(dxr.storage.range_value(arena, index)?)?;
                // An extension's range is exactly its /64: the range starts at its key46.
                let key46 = dxr.storage.range_key(arena, index)? >> 16;
                let hi = u64::from(chunk) << (64 - DXR6_DIRECT_BITS) | key46;
                (!dxr.dirty_ext.contains(&hi)).then_some((hi, id))
            }));
        });
        out
    }

    /// The extension for the /64 `hi` inside a chunk being rebuilt: a fresh block and id,
    /// complete (not yet reachable); returns the range value naming it.
    fn build_ext(
        &mut self,
        hi: u64,
        covering: u16,
        exts: &mut Extensions,
    ) -> Result<u16, &'static str> {
        if let Some(&(_, id)) = exts.reusable.iter().find(|&&(at, _)| at == hi) {
            let desc = self.storage.descriptor(Directory::Ext6, id);
            if desc.map(dxr_desc_default) == Some(covering) {
                exts.kept.push(id);
                return Ok(DXR_VALUE_EXT | id as u16);
            }
        }
        let spans: Vec<(u64, u64, Span)> = self
            .v6
            .ext_entries(hi)
            .iter()
            .map(|e| (e.key, span_end(e.key, e.len), Span::Value(e.group)))
            .collect();
        let (mut ranges, mut open) = (Vec::new(), Vec::new());
        sweep(spans, &mut ranges, &mut open, |_, _| {
            Err("nested extension")
        })?;
        let count = ranges.len() as u32;
        let arena = Arena::XRanges6;
        if count > DXR_MAX_RANGES {
            return Err("IPv6 extension range arena");
        }
        let start = self
            .alloc_lines(arena, lines(arena, count))
            .ok_or("IPv6 extension range arena")?;
        let Some(id) = self.alloc_ext_id() else {
            self.xranges
                .release(start, lines(arena, count), false, Instant::now());
            return Err("IPv6 extension ids");
        };
        exts.made.push((id, start, lines(arena, count)));
        let base = start * arena.per_line();
        for (i, &(key, value)) in ranges.iter().enumerate() {
            self.storage
                .write_unpublished(arena, base + i as u32, key, value);
        }
        // Not reachable until the chunk's block naming it is published.
        self.storage
            .set_descriptor(Directory::Ext6, id, dxr_desc(covering, base, count));
        Ok(DXR_VALUE_EXT | id as u16)
    }

    /// Frees extensions built for a rebuild that failed: never published, no quarantine.
    pub(super) fn drop_unpublished_exts(&mut self, made: &[(u32, u32, u32)]) {
        let now = Instant::now();
        for &(id, start, lines) in made {
            self.xranges.release(start, lines, false, now);
            self.ext_ids.release(id, false, now);
        }
    }

    /// Releases the block (and, IPv6, the extensions but `kept`) an old descriptor pointed at.
    pub(super) fn unhook_block(&mut self, v6: bool, old: u64, kept: Option<&[u32]>) {
        let count = dxr_desc_count(old);
        if count == 0 {
            return;
        }
        let arena = if v6 { Arena::Ranges6 } else { Arena::Ranges4 };
        let base = dxr_desc_base(old);
        if let Some(kept) = kept.filter(|_| v6) {
            for index in base..base + count {
                let value = self
                    .storage
                    .range_value(arena, index)
                    .unwrap_or(DXR_VALUE_NONE);
                let Some(id) = dxr_ext_id(value).filter(|id| !kept.contains(id)) else {
                    continue;
                };
                let ext = self
                    .storage
                    .descriptor(Directory::Ext6, id)
                    .unwrap_or_default();
                let (xbase, xcount) = (dxr_desc_base(ext), dxr_desc_count(ext));
                let xarena = Arena::XRanges6;
                self.unhook_lines(xarena, xbase / xarena.per_line(), lines(xarena, xcount));
                self.unhook_ext_id(id);
            }
        }
        self.unhook_lines(arena, base / arena.per_line(), lines(arena, count));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(spans: Vec<(u64, u64, u16)>) -> Vec<(u64, u16)> {
        let spans = spans.into_iter().map(|(a, b, v)| (a, b, Span::Value(v)));
        let (mut out, mut open) = (Vec::new(), vec![(7, 7)]);
        sweep(spans, &mut out, &mut open, |_, _| Err::<u16, ()>(())).unwrap();
        out
    }

    #[test]
    fn sweep_nests_merges_and_ends() {
        const N: u16 = DXR_VALUE_NONE;
        assert_eq!(values(vec![]), vec![(0, N)]);
        // Nested, sharing first and last keys, then a disjoint one reaching the end.
        let got = values(vec![
            (10, 99, 1),
            (10, 19, 2),
            (90, 99, 3),
            (200, u64::MAX, 4),
        ]);
        assert_eq!(
            got,
            vec![(0, N), (10, 2), (20, 1), (90, 3), (100, N), (200, 4)]
        );
        // Equal neighbours merge; a child equal to its parent disappears.
        let got = values(vec![(0, 9, 1), (5, 5, 1), (10, 19, 1)]);
        assert_eq!(got, vec![(0, 1), (20, N)]);
    }
}
