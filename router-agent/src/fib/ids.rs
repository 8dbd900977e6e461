//! Id allocation: nexthop ids (reused at once: a fresh one only resets its counters), and
//! nexthop slots and group ids, which are quarantined before reuse.
//!
//! An XDP program that read a slot or group id just before the FIB let go of it may still be
//! reading that slot or group: reusing it at once would hand the packet someone else's
//! record. So a released slot or group id waits `slot_quarantine` first, and never comes back
//! within the batch that released it (that batch's `ClearGroup` runs at its end and would wipe
//! a group the same batch had just written under the id).

use std::{
    collections::{BTreeSet, VecDeque},
    time::{Duration, Instant},
};

use super::FibError;

/// Lowest-free id allocator.
pub(super) struct Ids {
    free: BTreeSet<u32>,
    next: u32,
    capacity: u32,
}

impl Ids {
    pub(super) fn new(first: u32, capacity: u32) -> Self {
        Self {
            free: BTreeSet::new(),
            next: first,
            capacity,
        }
    }

    pub(super) fn allocate(&mut self, what: &'static str) -> Result<u32, FibError> {
        if let Some(id) = self.free.pop_first() {
            return Ok(id);
        }
        if self.next >= self.capacity {
            return Err(FibError::Full {
                what,
                capacity: self.capacity,
            });
        }
        self.next += 1;
        Ok(self.next - 1)
    }

    pub(super) fn release(&mut self, id: u32) {
        self.free.insert(id);
    }
}

/// Ids that rest for a grace period between release and reuse.
pub(super) struct QuarantinedIds {
    ids: Ids,
    what: &'static str,
    period: Duration,
    /// Released ids in release order: when, by which batch (its serial).
    waiting: VecDeque<(Instant, u64, u32)>,
}

impl QuarantinedIds {
    pub(super) fn new(what: &'static str, first: u32, capacity: u32, period: Duration) -> Self {
        Self {
            ids: Ids::new(first, capacity),
            what,
            period,
            waiting: VecDeque::new(),
        }
    }

    /// A free id for `batch` (its serial), taking back those whose quarantine is over.
    pub(super) fn allocate(&mut self, batch: u64) -> Result<u32, FibError> {
        self.release_due(Instant::now(), Some(batch));
        self.ids.allocate(self.what)
    }

    pub(super) fn release(&mut self, batch: u64, id: u32) {
        self.waiting.push_back((Instant::now(), batch, id));
    }

    /// Frees the ids whose quarantine is over at `now`, except those `current` (a batch still
    /// being built) released. Returns whether any was freed.
    pub(super) fn release_due(&mut self, now: Instant, current: Option<u64>) -> bool {
        let mut freed = false;
        while let Some(&(released, batch, id)) = self.waiting.front() {
            // Release order is batch order: once one is too recent, so are the rest.
            if now.saturating_duration_since(released) < self.period || Some(batch) == current {
                break;
            }
            self.waiting.pop_front();
            self.ids.release(id);
            freed = true;
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_first_then_full() {
        let mut ids = Ids::new(2, 4);
        assert_eq!((ids.allocate("x"), ids.allocate("x")), (Ok(2), Ok(3)));
        assert!(matches!(
            ids.allocate("x"),
            Err(FibError::Full { capacity: 4, .. })
        ));
        ids.release(2);
        assert_eq!(ids.allocate("x"), Ok(2));
    }

    #[test]
    fn quarantine_holds_ids_for_the_period_and_the_releasing_batch() {
        let mut ids = QuarantinedIds::new("x", 0, 1, Duration::from_secs(3600));
        assert_eq!(ids.allocate(1), Ok(0));
        ids.release(1, 0);
        assert!(ids.allocate(2).is_err(), "within the period");
        let later = Instant::now() + Duration::from_secs(7200);
        assert!(!ids.release_due(later, Some(1)), "the releasing batch");
        assert!(ids.release_due(later, None));
        assert_eq!(ids.allocate(3), Ok(0));
    }
}
