//! Dense IPv6 chunks, split. A chunk (or node) holding more than [`SplitLimits::split`]
//! prefixes becomes a *split node*: its descriptor's count is `DXR_DESC_SPLIT` and its base
//! a group of 256 descriptors in `DXR6_SUB`, one per value of the next 8 address bits; each
//! child is a leaf, a block, or split again, down to `DXR6_SPLIT_LEVELS` levels.
//!
//! Why: a change rebuilds the block of the node holding it. Unsplit, one /18 holding 12k
//! prefixes (2001:db8::/32 in the benchmark's table) meant a 1,500-line block written and
//! quarantined per update, and bursts of updates there outran the grace periods that free the
//! old blocks (updates of up to 14 ms at 60d56b0).
//!
//! A child's descriptor default is the longest prefix covering all of the child but not all
//! of its parent (a lookup keeps the deepest default it meets that is not NONE), and its block
//! holds only the prefixes inside it. So a change to a prefix inside a child rebuilds that
//! child alone, published by one store to its descriptor, and only that child's old block
//! goes to quarantine (invariants I2, I5 per node); a change to a prefix covering whole
//! children (2001:db8::/32 over four /34s) is one default store per child, no block written.
//!
//! A split node stays split while it holds more than [`SplitLimits::unsplit`] prefixes (the
//! gap keeps a node near the limit from flapping), and is rebuilt whole as a block below.
//! Blocks keep chunk-relative keys and start at their node's first key (I4). When `DXR6_SUB`
//! has no free group the node stays one block: slower updates, the same answers.

use std::time::Instant;

use router_common::{
    DXR_DESC_SPLIT, DXR_SPLIT_BITS, DXR_SPLIT_FANOUT, DXR_VALUE_NONE, DXR6_SPLIT_LEVELS, dxr_desc,
    dxr_desc_base, dxr_desc_count, dxr_desc_default, dxr_desc_with_default,
};

use super::build::{Extensions, Scratch, lines};
use super::rules::{Change, node_key, node_last, node_len};
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

    /// Prefixes (extension markers included) inside the node of IPv6 `chunk` at `level`
    /// starting at `start`: the whole chunk's at level 0.
    pub(super) fn node_entries(&self, chunk: u32, level: u32, start: u64) -> usize {
        if level == 0 {
            return self.v6.chunk_len(chunk);
        }
        let (first, last) = (
            node_key(chunk, start),
            node_key(chunk, node_last(level, start)),
        );
        self.v6.inside(chunk, first, last, node_len(level)).len()
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
            match self.build_node(true, chunk, level + 1, child_start, None, exts, scratch) {
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

    /// Applies changes to the published split node `desc` (at `level`, from `start`): a
    /// prefix covering whole children changes their defaults, one store each; one inside a
    /// child rebuilds that child (or goes down into it if it stays split), published by one
    /// store to its descriptor.
    pub(super) fn update_split(
        &mut self,
        chunk: u32,
        level: u32,
        start: u64,
        desc: u64,
        changes: &[Change],
        scratch: &mut Scratch,
    ) -> Result<(), &'static str> {
        let group = dxr_desc_base(desc);
        let (last, shift) = (node_last(level, start), 64 - DXR_SPLIT_BITS * (level + 1));
        let child_len = node_len(level + 1);
        let child_of = |key: u64| (key >> shift) as u32 & (DXR_SPLIT_FANOUT - 1);
        // (child, change inside it, or None: a change covering it), by child.
        let mut touched: Vec<(u32, Option<Change>)> = Vec::new();
        for &change in changes {
            if change.last < start || change.first > last {
                continue; // not in this node
            }
            if change.len > child_len {
                touched.push((child_of(change.first), Some(change)));
            } else {
                let (first, end) = (change.first.max(start), change.last.min(last));
                touched.extend((child_of(first)..=child_of(end)).map(|child| (child, None)));
            }
        }
        touched.sort_by_key(|&(child, _)| child);
        for of_child in touched.chunk_by(|a, b| a.0 == b.0) {
            let child = of_child[0].0;
            let child_start = start | u64::from(child) << shift;
            let index = group * DXR_SPLIT_FANOUT + child;
            let inside: Vec<Change> = of_child.iter().filter_map(|&(_, c)| c).collect();
            if !inside.is_empty()
                && !self.update_child(chunk, level + 1, child_start, index, &inside, scratch)?
            {
                continue; // rebuilt whole, its default with it
            }
            if inside.len() < of_child.len() {
                self.update_default(chunk, level + 1, child_start, index);
            }
        }
        Ok(())
    }

    /// Applies changes inside child `index` of a split node: `Ok(true)` if the child stayed
    /// split (its own descriptor unchanged), `Ok(false)` if it was rebuilt whole.
    fn update_child(
        &mut self,
        chunk: u32,
        level: u32,
        start: u64,
        index: u32,
        changes: &[Change],
        scratch: &mut Scratch,
    ) -> Result<bool, &'static str> {
        let old = self
            .storage
            .descriptor(Directory::Sub6, index)
            .unwrap_or_default();
        if self.stays_split(old, self.node_entries(chunk, level, start)) {
            self.update_split(chunk, level, start, old, changes, scratch)?;
            return Ok(true);
        }
        let at = (Directory::Sub6, index);
        self.replace_node(true, chunk, level, start, at, old, |desc| desc, scratch)?;
        Ok(false)
    }

    /// Recomputes the default of child `index` (at `level`, from `start`) after a change to
    /// a prefix covering it: one store, if it changed.
    fn update_default(&mut self, chunk: u32, level: u32, start: u64, index: u32) {
        let len = node_len(level);
        let default = self
            .v6
            .longest_covering(node_key(chunk, start), len - DXR_SPLIT_BITS as u8, len)
            .unwrap_or(DXR_VALUE_NONE);
        let desc = self
            .storage
            .descriptor(Directory::Sub6, index)
            .unwrap_or_default();
        if dxr_desc_default(desc) != default {
            // The block and children stay: only the answer where nothing inside applies.
            self.storage.set_descriptor(
                Directory::Sub6,
                index,
                dxr_desc_with_default(desc, default),
            );
        }
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
    /// under it; IPv6 extensions but `kept` with them (`None`: it names none).
    pub(super) fn unhook_tree(&mut self, v6: bool, old: u64, kept: Option<&[u32]>) {
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
        self.unhook_sub_group(group);
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
