//! Space for range blocks in one arena (an array of 64-byte lines) and for extension ids:
//! best-fit over coalescing free spans, a bump pointer, and the quarantine that keeps a block
//! unhooked at time t untouched until t + [`DXR_QUARANTINE`] (readers may still search it).
//!
//! Blocks take exactly the lines they need. Free spans merge with free neighbours, so churn
//! between block sizes does not strand space in fragments of the wrong size.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::quarantine::Quarantine;

/// One arena's lines.
#[derive(Debug)]
pub(super) struct LineAllocator {
    capacity: u32,
    /// Lines at and above this were never handed out (or came back at the top).
    bump: u32,
    /// Free spans below `bump`: start -> lines, and the same as (lines, start) for best fit.
    free_by_start: BTreeMap<u32, u32>,
    free_by_size: BTreeSet<(u32, u32)>,
    /// Unhooked blocks (start, lines).
    quarantine: Quarantine<(u32, u32)>,
    /// Lines in blocks not free (published, being built, or quarantined).
    used: u64,
    /// Lines handed out so far (measurements: lines written per update).
    #[cfg(test)]
    pub(super) allocated: u64,
}

impl LineAllocator {
    pub(super) fn new(capacity: u32) -> Self {
        Self {
            capacity,
            bump: 0,
            free_by_start: BTreeMap::new(),
            free_by_size: BTreeSet::new(),
            quarantine: Quarantine::new(),
            used: 0,
            #[cfg(test)]
            allocated: 0,
        }
    }

    /// The first line of a block of `lines` lines (`> 0`), or `None` if no free span fits it.
    pub(super) fn alloc(&mut self, lines: u32) -> Option<u32> {
        debug_assert!(lines > 0);
        let start = if let Some(&(size, start)) = self.free_by_size.range((lines, 0)..).next() {
            self.take_span(start, size);
            if size > lines {
                self.put_span(start + lines, size - lines);
            }
            start
        } else if self.capacity - self.bump >= lines {
            self.bump += lines;
            self.bump - lines
        } else {
            return None;
        };
        self.used += u64::from(lines);
        #[cfg(test)]
        {
            self.allocated += u64::from(lines);
        }
        Some(start)
    }

    /// Gives back a block of `lines` lines starting at `start`: straight to the free spans
    /// if no reader can see it (`published` false), else into the quarantine.
    pub(super) fn release(&mut self, start: u32, lines: u32, published: bool, now: Instant) {
        if published {
            self.quarantine.push(now, (start, lines));
        } else {
            self.free(start, lines);
        }
    }

    /// Frees the blocks whose quarantine is over at `now`, at most `max` of them (oldest
    /// first; the rest wait for the next call). Returns how many it freed.
    pub(super) fn release_quarantined(&mut self, now: Instant, max: usize) -> usize {
        let mut freed = 0;
        while freed < max
            && let Some((start, lines)) = self.quarantine.pop_due(now)
        {
            self.free(start, lines);
            freed += 1;
        }
        freed
    }

    /// When the oldest quarantined block may be reused.
    pub(super) fn oldest_release(&self) -> Option<Instant> {
        self.quarantine.oldest_release()
    }

    /// Lines not free (published, or waiting out their quarantine).
    pub(super) fn used_lines(&self) -> u64 {
        self.used
    }

    /// Quarantined blocks: (first line, lines).
    #[cfg(test)]
    pub(super) fn quarantined(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.quarantine.iter()
    }

    pub(super) fn bookkeeping_bytes(&self) -> usize {
        // B-tree nodes hold up to 11 entries; count ~2 words of overhead per entry.
        self.free_by_start.len() * 24
            + self.free_by_size.len() * 24
            + self.quarantine.bookkeeping_bytes()
    }

    /// A span back to the free set, merged with free neighbours (and the bump space).
    fn free(&mut self, mut start: u32, mut lines: u32) {
        self.used -= u64::from(lines);
        if let Some((&before, &size)) = self.free_by_start.range(..start).next_back()
            && before + size == start
        {
            self.take_span(before, size);
            start = before;
            lines += size;
        }
        if let Some(&size) = self.free_by_start.get(&(start + lines)) {
            self.take_span(start + lines, size);
            lines += size;
        }
        if start + lines == self.bump {
            self.bump = start;
        } else {
            self.put_span(start, lines);
        }
    }

    fn put_span(&mut self, start: u32, lines: u32) {
        self.free_by_start.insert(start, lines);
        self.free_by_size.insert((lines, start));
    }

    fn take_span(&mut self, start: u32, lines: u32) {
        self.free_by_start.remove(&start);
        self.free_by_size.remove(&(lines, start));
    }
}

/// Extension ids (`DXR6_EXT` indexes) or split-node groups (`DXR6_SUB`), with the same
/// quarantine as blocks.
#[derive(Debug)]
pub(super) struct IdAllocator {
    free: Vec<u32>,
    quarantine: Quarantine<u32>,
}

impl IdAllocator {
    pub(super) fn new(capacity: u32) -> Self {
        Self {
            // Reversed so that ids are handed out from 0 up.
            free: (0..capacity).rev().collect(),
            quarantine: Quarantine::new(),
        }
    }

    pub(super) fn alloc(&mut self) -> Option<u32> {
        self.free.pop()
    }

    pub(super) fn release(&mut self, id: u32, published: bool, now: Instant) {
        if published {
            self.quarantine.push(now, id);
        } else {
            self.free.push(id);
        }
    }

    /// As [`LineAllocator::release_quarantined`].
    pub(super) fn release_quarantined(&mut self, now: Instant, max: usize) -> usize {
        self.quarantine.release(now, max, |id| self.free.push(id))
    }

    pub(super) fn oldest_release(&self) -> Option<Instant> {
        self.quarantine.oldest_release()
    }

    #[cfg(test)]
    pub(super) fn quarantined(&self) -> impl Iterator<Item = u32> + '_ {
        self.quarantine.iter()
    }

    /// Ids ready for use.
    pub(super) fn free_len(&self) -> usize {
        self.free.len()
    }

    pub(super) fn bookkeeping_bytes(&self) -> usize {
        self.free.capacity() * 4 + self.quarantine.bookkeeping_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::dxr::DXR_QUARANTINE;
    use std::time::Duration;

    #[test]
    fn quarantined_lines_are_not_reused_early_and_nothing_leaks() {
        let t0 = Instant::now();
        let mut lines = LineAllocator::new(8);
        let a = lines.alloc(3).unwrap();
        let b = lines.alloc(5).unwrap();
        assert_eq!(lines.alloc(1), None, "full");
        lines.release(a, 3, true, t0);
        assert_eq!(lines.alloc(3), None, "quarantined");
        lines.release_quarantined(t0 + DXR_QUARANTINE - Duration::from_millis(1), usize::MAX);
        assert_eq!(lines.alloc(3), None, "still quarantined");
        lines.release_quarantined(t0 + DXR_QUARANTINE, usize::MAX);
        // Freed space is reused, also split into smaller blocks.
        assert_eq!(lines.alloc(1), Some(a));
        assert_eq!(lines.alloc(2), Some(a + 1));
        // Neighbours merge: the three freed spans make room for one block of all 8 lines.
        lines.release(a + 1, 2, false, t0);
        lines.release(b, 5, false, t0);
        assert_eq!(lines.alloc(8), None);
        lines.release(a, 1, false, t0);
        assert_eq!(lines.used_lines(), 0);
        assert_eq!(lines.alloc(8), Some(0));

        let mut ids = IdAllocator::new(1);
        let id = ids.alloc().unwrap();
        assert_eq!(ids.alloc(), None);
        ids.release(id, true, t0);
        assert_eq!(ids.alloc(), None);
        ids.release_quarantined(t0 + DXR_QUARANTINE, usize::MAX);
        assert_eq!(ids.alloc(), Some(id));
    }
}
