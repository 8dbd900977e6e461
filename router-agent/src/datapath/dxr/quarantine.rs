//! Unhooked blocks and ids waiting out their quarantine, oldest first.
//!
//! Stored in segments of [`SEGMENT`] entries rather than one ring buffer: a ring that fills up
//! copies itself into one twice its size, and at the thousands of blocks one grace period
//! holds under steady updates that copy (and the page faults of its fresh memory) landed on
//! a single update as 100-250 µs (measured at 4144cfb). A segment is allocated when the last
//! one fills and freed when drained, so a push or a pop never moves more than one entry, and
//! a drained quarantine keeps at most one segment.

use std::collections::VecDeque;
use std::time::Instant;

use super::DXR_QUARANTINE;

/// Entries per segment (24 KiB of line-block entries).
const SEGMENT: usize = 1024;

#[derive(Debug)]
pub(super) struct Quarantine<T> {
    segments: VecDeque<VecDeque<(Instant, T)>>,
}

impl<T: Copy> Quarantine<T> {
    pub(super) fn new() -> Self {
        Self {
            segments: VecDeque::new(),
        }
    }

    /// `item` was unhooked at `now` (not earlier than anything pushed before).
    pub(super) fn push(&mut self, now: Instant, item: T) {
        match self.segments.back_mut() {
            Some(last) if last.len() < SEGMENT => last.push_back((now, item)),
            _ => {
                let mut segment = VecDeque::with_capacity(SEGMENT);
                segment.push_back((now, item));
                self.segments.push_back(segment);
            }
        }
    }

    /// The oldest item, if its quarantine is over at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<T> {
        let first = self.segments.front_mut()?;
        // Only the last segment is kept empty.
        let &(since, item) = first.front()?;
        if now.saturating_duration_since(since) < DXR_QUARANTINE {
            return None; // the rest are younger
        }
        first.pop_front();
        if first.is_empty() && self.segments.len() > 1 {
            self.segments.pop_front();
        }
        Some(item)
    }

    /// Pops the items due at `now` into `free`, at most `max`; returns how many.
    pub(super) fn release(&mut self, now: Instant, max: usize, mut free: impl FnMut(T)) -> usize {
        let mut freed = 0;
        while freed < max
            && let Some(item) = self.pop_due(now)
        {
            free(item);
            freed += 1;
        }
        freed
    }

    /// When the oldest item may be reused.
    pub(super) fn oldest_release(&self) -> Option<Instant> {
        let first = self.segments.iter().find_map(|segment| segment.front())?;
        Some(first.0 + DXR_QUARANTINE)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.segments.iter().map(VecDeque::len).sum()
    }

    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.segments.iter().flatten().map(|&(_, item)| item)
    }

    pub(super) fn bookkeeping_bytes(&self) -> usize {
        let segment = SEGMENT * size_of::<(Instant, T)>();
        self.segments.capacity() * size_of::<VecDeque<(Instant, T)>>()
            + self.segments.len() * segment
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn releases_in_order_within_budget_and_frees_segments() {
        let t0 = Instant::now();
        let mut q = Quarantine::new();
        let n = 3 * SEGMENT + 5;
        for i in 0..n {
            q.push(t0 + Duration::from_nanos(i as u64), i);
        }
        assert_eq!(q.len(), n);
        assert_eq!(q.segments.len(), 4);
        let mut out = Vec::new();
        // Not yet: nothing leaves before its time.
        assert_eq!(q.release(t0, usize::MAX, |i| out.push(i)), 0);
        let later = t0 + DXR_QUARANTINE + Duration::from_secs(1);
        assert_eq!(q.release(later, SEGMENT + 2, |i| out.push(i)), SEGMENT + 2);
        assert_eq!(out, (0..SEGMENT + 2).collect::<Vec<_>>());
        assert_eq!(q.segments.len(), 3, "a drained segment is freed");
        assert_eq!(
            q.release(later, usize::MAX, |i| out.push(i)),
            n - SEGMENT - 2
        );
        assert_eq!(out, (0..n).collect::<Vec<_>>());
        assert_eq!((q.len(), q.segments.len()), (0, 1));
        assert_eq!(q.oldest_release(), None);
        q.push(later, 7);
        assert_eq!(q.oldest_release(), Some(later + DXR_QUARANTINE));
    }
}
