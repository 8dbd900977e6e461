//! Space the current batch unhooked, quarantined together once the batch is visible.
//!
//! A block's quarantine starts once the store that unhooked it is visible to every CPU (I1):
//! a reader that starts later cannot reach it. Taking that time after each store costs a full
//! fence per rebuilt chunk, which waits for the block just written to leave the store buffer
//! (at a full-table load, most of a chunk rebuild's own time). So the unhooked space waits
//! here, unreachable and unused, and [`Dxr::settle`] quarantines all of it from one time taken
//! after one fence: later than each store's own, so never sooner reused.

use std::sync::atomic::{Ordering, fence};
use std::time::Instant;

use super::{Arena, Dxr, DxrStorage};

#[derive(Debug, Default)]
pub(super) struct Unhooked {
    /// (arena, first line, lines).
    lines: Vec<(Arena, u32, u32)>,
    ext_ids: Vec<u32>,
    sub_groups: Vec<u32>,
}

impl Unhooked {
    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.ext_ids.is_empty() && self.sub_groups.is_empty()
    }

    pub(super) fn bookkeeping_bytes(&self) -> usize {
        self.lines.capacity() * size_of::<(Arena, u32, u32)>()
            + (self.ext_ids.capacity() + self.sub_groups.capacity()) * size_of::<u32>()
    }
}

impl<S: DxrStorage> Dxr<S> {
    /// Lets a block no published descriptor names any more go: to the next [`Dxr::settle`]
    /// while readers may exist, else free at once.
    pub(super) fn unhook_lines(&mut self, arena: Arena, first_line: u32, lines: u32) {
        if self.published {
            self.unhooked.lines.push((arena, first_line, lines));
        } else {
            self.allocator(arena)
                .release(first_line, lines, false, Instant::now());
        }
    }

    /// As [`Dxr::unhook_lines`], for an extension id.
    pub(super) fn unhook_ext_id(&mut self, id: u32) {
        if self.published {
            self.unhooked.ext_ids.push(id);
        } else {
            self.ext_ids.release(id, false, Instant::now());
        }
    }

    /// As [`Dxr::unhook_lines`], for a split node's group.
    pub(super) fn unhook_sub_group(&mut self, group: u32) {
        if self.published {
            self.unhooked.sub_groups.push(group);
        } else {
            self.sub_groups.release(group, false, Instant::now());
        }
    }

    /// Quarantines what was unhooked since the last call, from now: after a fence, so every
    /// store that unhooked it is visible to every CPU first.
    pub(super) fn settle(&mut self) {
        if self.unhooked.is_empty() {
            return;
        }
        fence(Ordering::SeqCst);
        let now = Instant::now();
        let mut unhooked = std::mem::take(&mut self.unhooked);
        for &(arena, first_line, lines) in &unhooked.lines {
            self.allocator(arena).release(first_line, lines, true, now);
        }
        for &id in &unhooked.ext_ids {
            self.ext_ids.release(id, true, now);
        }
        for &group in &unhooked.sub_groups {
            self.sub_groups.release(group, true, now);
        }
        // Keep the room for the next batch.
        unhooked.lines.clear();
        unhooked.ext_ids.clear();
        unhooked.sub_groups.clear();
        self.unhooked = unhooked;
    }
}
