//! Dense IPv6 chunks, split. A chunk (or node) holding more than [`SplitLimits::split`]
//! prefixes becomes a *split node*: its descriptor's count is `DXR_DESC_SPLIT` and its base
//! a group of 256 descriptors in `DXR6_SUB`, one per value of the next 8 address bits; each
//! child is a leaf, a block, or split again, down to `DXR6_SPLIT_LEVELS` levels.
//!
//! Why: a change rebuilds the block of the node holding it. Unsplit, one /18 holding 12k
//! prefixes (2001:db8::/32 in the benchmark's table) meant a 1,500-line block written and
//! quarantined per update, and bursts of updates there outran the grace periods that free the
//! old blocks (updates of up to 14 ms at 60d56b0). Split, an update rebuilds the child it
//! falls in (a prefix wider than a child: each child it covers), publishes it with one store
//! to that child's descriptor (invariants I2, I5 per node), and quarantines the child's old
//! block only.
//!
//! A split node stays split while it holds more than [`SplitLimits::unsplit`] prefixes (the
//! gap keeps a node near the limit from flapping), and is rebuilt whole as a block below.
//! Children's blocks keep chunk-relative keys, so a split node's blocks are the unsplit
//! block's ranges cut at the children's edges, each starting at its child's first key (I4).
//! When `DXR6_SUB` has no free group the node stays one block: slower updates, same answers.

use std::time::Instant;

use router_common::{
    DXR_DESC_SPLIT, DXR_SPLIT_BITS, DXR_SPLIT_FANOUT, DXR_VALUE_NONE, DXR6_DIRECT_BITS,
    DXR6_SPLIT_LEVELS, dxr_desc, dxr_desc_base, dxr_desc_count,
};

use super::build::{Extensions, Scratch, lines};
use super::rules::node_last;
use super::{Arena, Directory, Dxr, DxrStorage};

/// When IPv6 nodes split and merge back, in prefixes held.
#[derive(Clone, Copy, Debug)]
pub struct SplitLimits {
    /// A node holding more splits (if a `DXR6_SUB` group is free).
    pub split: usize,
    /// A split node holding this many or fewer becomes one block again.
    pub unsplit: usize,
}

impl Default for SplitLimits {
    /// A block of at most ~2 * 256 ranges is 64 lines, 4 KiB written per update; a split
    /// costs a 2 KiB group and a line per child holding ranges.
    fn default() -> Self {
        Self {
            split: 256,
            unsplit: 128,
        }
    }
}

fn is_split(desc: u64) -> bool {
    dxr_desc_count(desc) == DXR_DESC_SPLIT
}

impl<S: DxrStorage> Dxr<S> {
    /// Sets when IPv6 nodes split (tests use tiny limits, so small tables split too).
    pub fn set_split_limits(&mut self, limits: SplitLimits) {
        assert!(limits.unsplit < limits.split, "{limits:?}");
        self.split_limits = limits;
    }

    /// Whether an unsplit node holding `entries` prefixes splits.
    pub(super) fn splits(&self, entries: usize) -> bool {
        entries > self.split_limits.split
    }

    /// Whether `old` is split and stays so holding `entries` prefixes.
    pub(super) fn stays_split(&self, old: u64, entries: usize) -> bool {
        is_split(old) && entries > self.split_limits.unsplit
    }

    /// Prefixes (extension markers included) held by the node of IPv6 `chunk` at `level`
    /// starting at `start`; the whole chunk at level 0.
    pub(super) fn node_entries(&self, chunk: u32, level: u32, start: u64) -> usize {
        if level == 0 {
            return self.v6.chunk_len(chunk);
        }
        let chunk_key = u64::from(chunk) << (64 - DXR6_DIRECT_BITS);
        let (first, last) = (start, node_last(level, start));
        self.v6
            .entries_between(
                chunk,
                chunk_key | first >> DXR6_DIRECT_BITS,
                chunk_key | last >> DXR6_DIRECT_BITS,
            )
            .len()
    }

    /// Builds the 256 children of a node into `group`, none reachable yet; the split node's
    /// descriptor. On failure the children built so far and the group are freed.
    pub(super) fn build_split(
        &mut self,
        chunk: u32,
        level: u32,
        start: u64,
        group: u32,
        exts: &mut Extensions,
        scratch: &mut Scratch,
    ) -> Result<u64, &'static str> {
        let shift = 64 - DXR_SPLIT_BITS * (level + 1);
        for child in 0..DXR_SPLIT_FANOUT {
            let child_start = start | u64::from(child) << shift;
            match self.build_node(true, chunk, level + 1, child_start, exts, scratch) {
                Ok(desc) => {
                    let index = group * DXR_SPLIT_FANOUT + child;
                    self.storage.set_descriptor(Directory::Sub6, index, desc);
                }
                Err(what) => {
                    for built in 0..child {
                        let index = group * DXR_SPLIT_FANOUT + built;
                        let desc = self.storage.descriptor(Directory::Sub6, index);
                        self.free_unpublished(desc.unwrap_or_default());
                    }
                    self.sub_groups.release(group, false, Instant::now());
                    return Err(what);
                }
            }
        }
        Ok(dxr_desc(DXR_VALUE_NONE, group, DXR_DESC_SPLIT))
    }

    /// Rebuilds the children of the published split node `desc` (at `level`, from `start`)
    /// that the changed spans touch; each is published by one store to its descriptor.
    pub(super) fn update_split(
        &mut self,
        chunk: u32,
        level: u32,
        start: u64,
        desc: u64,
        changed: &[(u64, u64)],
        scratch: &mut Scratch,
    ) -> Result<(), &'static str> {
        let group = dxr_desc_base(desc);
        let (last, shift) = (node_last(level, start), 64 - DXR_SPLIT_BITS * (level + 1));
        let child_of = |key: u64| (key >> shift) as u32 & (DXR_SPLIT_FANOUT - 1);
        // (child, span) for every child a change reaches, by child (stable: batch order).
        let mut touched: Vec<(u32, (u64, u64))> = Vec::new();
        for &(first, end) in changed {
            let (first, end) = (first.max(start), end.min(last));
            if first > end {
                continue; // not in this node
            }
            touched.extend((child_of(first)..=child_of(end)).map(|child| (child, (first, end))));
        }
        touched.sort_by_key(|&(child, _)| child);
        for spans in touched.chunk_by(|a, b| a.0 == b.0) {
            let child = spans[0].0;
            let child_start = start | u64::from(child) << shift;
            let index = group * DXR_SPLIT_FANOUT + child;
            let old = self
                .storage
                .descriptor(Directory::Sub6, index)
                .unwrap_or_default();
            let entries = self.node_entries(chunk, level + 1, child_start);
            if self.stays_split(old, entries) {
                let spans: Vec<(u64, u64)> = spans.iter().map(|&(_, span)| span).collect();
                self.update_split(chunk, level + 1, child_start, old, &spans, scratch)?;
                continue;
            }
            let mut exts = Extensions {
                reusable: self.unchanged_exts(chunk, old),
                ..Extensions::default()
            };
            let new = match self.build_node(true, chunk, level + 1, child_start, &mut exts, scratch)
            {
                Ok(new) => new,
                Err(what) => {
                    self.drop_unpublished_exts(&exts.made);
                    return Err(what);
                }
            };
            self.publish(Directory::Sub6, index, new);
            self.unhook_tree(true, old, &exts.kept);
        }
        Ok(())
    }

    /// Calls `f(self, base, count)` for the block of `desc` or each block under it if split.
    pub(super) fn for_each_block(&self, v6: bool, desc: u64, f: &mut impl FnMut(&Self, u32, u32)) {
        if v6 && is_split(desc) {
            let group = dxr_desc_base(desc);
            for child in 0..DXR_SPLIT_FANOUT {
                let index = group * DXR_SPLIT_FANOUT + child;
                let child = self.storage.descriptor(Directory::Sub6, index);
                self.for_each_block(v6, child.unwrap_or_default(), f);
            }
        } else if dxr_desc_count(desc) != 0 {
            f(self, dxr_desc_base(desc), dxr_desc_count(desc));
        }
    }

    /// Releases what an unhooked descriptor reached: its block, or its group and everything
    /// under it; IPv6 extensions but `kept` with them.
    pub(super) fn unhook_tree(&mut self, v6: bool, old: u64, kept: &[u32]) {
        if !(v6 && is_split(old)) {
            self.unhook_block(v6, old, kept);
            return;
        }
        let group = dxr_desc_base(old);
        for child in 0..DXR_SPLIT_FANOUT {
            let index = group * DXR_SPLIT_FANOUT + child;
            let desc = self.storage.descriptor(Directory::Sub6, index);
            self.unhook_tree(true, desc.unwrap_or_default(), kept);
        }
        let published = self.published;
        self.sub_groups.release(group, published, Instant::now());
    }

    /// Frees a node built and never published: its blocks and groups (the extensions are
    /// the rebuild's `Extensions::made`, freed by its caller).
    fn free_unpublished(&mut self, desc: u64) {
        let now = Instant::now();
        if is_split(desc) {
            let group = dxr_desc_base(desc);
            for child in 0..DXR_SPLIT_FANOUT {
                let index = group * DXR_SPLIT_FANOUT + child;
                let child = self.storage.descriptor(Directory::Sub6, index);
                self.free_unpublished(child.unwrap_or_default());
            }
            self.sub_groups.release(group, false, now);
        } else if dxr_desc_count(desc) != 0 {
            let arena = Arena::Ranges6;
            let first_line = dxr_desc_base(desc) / arena.per_line();
            let count = lines(arena, dxr_desc_count(desc));
            self.ranges6.release(first_line, count, false, now);
        }
    }

    /// `DXR6_SUB` groups in use or in quarantine.
    pub fn split_groups(&self) -> usize {
        self.storage.sub_groups() as usize - self.sub_groups.free_len()
    }
}

const _: () = assert!(DXR6_SPLIT_LEVELS >= 1);
