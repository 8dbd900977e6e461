//! Space for range blocks in one arena (an array of 64-byte lines) and for extension ids:
//! best fit over coalescing free spans, a bump pointer, and the quarantine that keeps a block
//! unhooked at time t untouched until t + [`DXR_QUARANTINE`] (readers may still search it).
//!
//! Blocks take exactly the lines they need. The free spans are the runs of a bitmap of free
//! lines ([`FreeLines`]), so a freed block merges with free neighbours by setting its bits,
//! and churn between block sizes does not strand space in fragments of the wrong size. Best
//! fit picks from candidate lists by size; a candidate goes stale when its span merges or is
//! taken, and is checked against the bitmap when it comes up.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::Instant;

use super::free_lines::FreeLines;
use super::quarantine::Quarantine;

/// Span sizes with a candidate list of their own (larger ones share an ordered set).
const LISTED_SIZES: u32 = 64;

/// One arena's lines.
#[derive(Debug)]
pub(super) struct LineAllocator {
    capacity: u32,
    /// Lines at and above this were never handed out (or came back at the top).
    bump: u32,
    free: FreeLines,
    /// `by_size[n - 1]`: first lines of spans of `n` lines (some stale), lowest first:
    /// filling the arena from the bottom keeps large free spans whole.
    by_size: Vec<BinaryHeap<Reverse<u32>>>,
    /// Spans above [`LISTED_SIZES`] lines: (lines, first line) (some stale).
    large: BTreeSet<(u32, u32)>,
    /// Free spans (runs) now, and candidates held: when stale candidates outnumber the
    /// spans, the lists are rebuilt from the bitmap.
    spans: usize,
    candidates: usize,
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
        let mut free = FreeLines::default();
        free.cover(0);
        Self {
            capacity,
            bump: 0,
            free,
            by_size: (0..LISTED_SIZES).map(|_| BinaryHeap::new()).collect(),
            large: BTreeSet::new(),
            spans: 0,
            candidates: 0,
            quarantine: Quarantine::new(),
            used: 0,
            #[cfg(test)]
            allocated: 0,
        }
    }

    /// The first line of a block of `lines` lines (`> 0`), or `None` if no free span fits it.
    pub(super) fn alloc(&mut self, lines: u32) -> Option<u32> {
        debug_assert!(lines > 0);
        let start = if let Some((start, size)) = self.best_fit(lines) {
            self.free.mark(start, start + lines, false);
            self.spans -= 1;
            if size > lines {
                self.add_span(start + lines, size - lines);
            }
            start
        } else if self.capacity - self.bump >= lines {
            self.bump += lines;
            self.free.cover(self.bump);
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
            // No reader, no update latency to keep: a bulk load (or a test).
            self.free(start, lines);
            self.drop_stale_candidates();
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

    /// Free spans below the bump pointer.
    #[cfg(test)]
    pub(super) fn free_spans(&self) -> usize {
        self.spans
    }

    pub(super) fn bookkeeping_bytes(&self) -> usize {
        self.free.bytes()
            + self
                .by_size
                .iter()
                .map(|list| size_of::<BinaryHeap<Reverse<u32>>>() + list.capacity() * 4)
                .sum::<usize>()
            // B-tree nodes hold up to 11 entries; ~1.5 words of overhead per entry.
            + self.large.len() * 20
            + self.quarantine.bookkeeping_bytes()
    }

    /// The smallest free span of at least `lines` lines: (first line, lines). Stale
    /// candidates met on the way are dropped.
    fn best_fit(&mut self, lines: u32) -> Option<(u32, u32)> {
        for size in lines..=LISTED_SIZES {
            while let Some(Reverse(start)) = self.by_size[size as usize - 1].pop() {
                self.candidates -= 1;
                if self.free.is_run(start, size) {
                    return Some((start, size));
                }
            }
        }
        while let Some(&(size, start)) = self.large.range((lines, 0)..).next() {
            self.large.remove(&(size, start));
            self.candidates -= 1;
            if self.free.is_run(start, size) {
                return Some((start, size));
            }
        }
        None
    }

    /// A span back to the free set, merged with free neighbours (and the bump space).
    fn free(&mut self, start: u32, lines: u32) {
        self.used -= u64::from(lines);
        self.free.mark(start, start + lines, true);
        let first = self.free.run_start(start);
        let end = self.free.run_end(start + lines);
        // Merged neighbours stop being spans of their own (their candidates go stale).
        self.spans -= usize::from(first < start) + usize::from(end > start + lines);
        if end == self.bump {
            self.free.mark(first, end, false);
            self.bump = first;
        } else {
            self.add_span(first, end - first);
        }
    }

    fn add_span(&mut self, start: u32, lines: u32) {
        self.spans += 1;
        self.add_candidate(start, lines);
    }

    fn add_candidate(&mut self, start: u32, lines: u32) {
        self.candidates += 1;
        if lines <= LISTED_SIZES {
            self.by_size[lines as usize - 1].push(Reverse(start));
        } else {
            self.large.insert((lines, start));
        }
    }

    /// Candidates again from the bitmap, one per span, once stale ones outnumber the spans:
    /// a bound on their memory and on the stale candidates one `alloc` may meet (called by
    /// the owner off the update path; `alloc` drops those it meets either way).
    pub(super) fn drop_stale_candidates(&mut self) {
        if self.candidates <= 2 * self.spans + 1024 {
            return;
        }
        let mut by_size: Vec<Vec<Reverse<u32>>> = (0..LISTED_SIZES).map(|_| Vec::new()).collect();
        self.large.clear();
        self.candidates = 0;
        for (start, lines) in self.free.runs(self.bump) {
            self.candidates += 1;
            if lines <= LISTED_SIZES {
                by_size[lines as usize - 1].push(Reverse(start));
            } else {
                self.large.insert((lines, start));
            }
        }
        debug_assert_eq!(self.candidates, self.spans);
        // Heapified whole: linear, where pushing one by one is not.
        self.by_size = by_size.into_iter().map(BinaryHeap::from).collect();
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

    /// Random blocks in and out against a model of the arena: blocks never overlap, `alloc`
    /// fails only when no free span (nor the bump space) fits, and the spans the allocator
    /// counts are the model's gaps.
    #[test]
    fn random_churn_against_a_model() {
        use rand::{Rng, SeedableRng, rngs::SmallRng};
        use std::collections::BTreeMap;

        const CAPACITY: u32 = 4096;
        let mut rng = SmallRng::seed_from_u64(5);
        let mut lines = LineAllocator::new(CAPACITY);
        // Blocks not free (live or quarantined): start -> lines.
        let mut taken: BTreeMap<u32, u32> = BTreeMap::new();
        let mut live: Vec<(u32, u32)> = Vec::new();
        let t0 = Instant::now();
        for step in 0..200_000u32 {
            let now = t0 + Duration::from_millis(u64::from(step / 50));
            if rng.random_bool(0.52) {
                let want = if rng.random_bool(0.9) {
                    rng.random_range(1..=24)
                } else {
                    rng.random_range(1..=300)
                };
                // The model's gaps (the last one reaches the capacity: the bump space).
                let mut gaps = Vec::new();
                let mut at = 0;
                for (&start, &size) in &taken {
                    if start > at {
                        gaps.push((at, start - at));
                    }
                    at = start + size;
                }
                let fits = gaps.iter().any(|&(_, size)| size >= want) || CAPACITY - at >= want;
                match lines.alloc(want) {
                    Some(start) => {
                        let end = start + want;
                        assert!(end <= CAPACITY);
                        let before = taken.range(..end).next_back();
                        assert!(before.is_none_or(|(&s, &n)| s + n <= start), "overlap");
                        taken.insert(start, want);
                        live.push((start, want));
                    }
                    None => assert!(!fits, "step {step}: {want} lines fit but were refused"),
                }
            } else if !live.is_empty() {
                let (start, size) = live.swap_remove(rng.random_range(0..live.len()));
                let published = rng.random_bool(0.5);
                lines.release(start, size, published, now);
                if !published {
                    taken.remove(&start);
                }
            }
            if step % 64 == 0 {
                let before: Vec<(u32, u32)> = lines.quarantined().collect();
                lines.release_quarantined(now, usize::MAX);
                lines.drop_stale_candidates();
                let after: Vec<(u32, u32)> = lines.quarantined().collect();
                for block in before.iter().filter(|block| !after.contains(block)) {
                    taken.remove(&block.0);
                }
            }
            let used: u64 = taken.values().map(|&n| u64::from(n)).sum();
            assert_eq!(lines.used_lines(), used);
            let mut gaps = 0;
            let mut at = 0;
            for (&start, &size) in &taken {
                gaps += usize::from(start > at);
                at = start + size;
            }
            assert_eq!(lines.free_spans(), gaps, "step {step}");
        }
    }
}
