//! Path attribute interning: every prefix carrying the same attributes shares one
//! `Arc<PathAttributes>`.
//!
//! A ToR sends a handful of attribute sets for any number of prefixes, so the attributes are
//! stored once per set and each route holds a pointer. Equality of interned attributes is a
//! pointer comparison (`Arc::ptr_eq`), which the RIB uses to tell whether a route changed.

use std::collections::HashSet;
use std::mem::size_of;
use std::sync::Arc;

use crate::bgp::packet::types::PathAttributes;

/// Set size below which pruning is not worth a pass over the set.
const MIN_PRUNE_THRESHOLD: usize = 1024;

/// The attribute sets in use. Entries that only the interner still holds are dropped by
/// [`AttrInterner::prune`], which also runs automatically whenever the set has doubled since
/// the last pass (amortized O(1) per insertion, bounded waste).
#[derive(Debug)]
pub struct AttrInterner {
    set: HashSet<Arc<PathAttributes>>,
    /// The most recently interned set: the prefixes of one UPDATE share their attributes, so
    /// consecutive calls usually ask for the same set and skip hashing it.
    last: Option<Arc<PathAttributes>>,
    prune_threshold: usize,
}

impl Default for AttrInterner {
    fn default() -> Self {
        Self {
            set: HashSet::new(),
            last: None,
            prune_threshold: MIN_PRUNE_THRESHOLD,
        }
    }
}

impl AttrInterner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared instance equal to `attrs`, inserted if new.
    pub fn intern(&mut self, attrs: PathAttributes) -> Arc<PathAttributes> {
        if let Some(last) = &self.last
            && **last == attrs
        {
            return last.clone();
        }
        if let Some(existing) = self.set.get(&attrs) {
            let existing = existing.clone();
            self.last = Some(existing.clone());
            return existing;
        }
        self.insert(Arc::new(attrs))
    }

    /// Like [`intern`](Self::intern) for attributes already in an `Arc` (the codec may share
    /// one between the prefixes of an UPDATE): returns the interned instance, which is `attrs`
    /// itself when it is new or already the interned one.
    pub fn intern_arc(&mut self, attrs: Arc<PathAttributes>) -> Arc<PathAttributes> {
        if let Some(last) = &self.last
            && (Arc::ptr_eq(last, &attrs) || **last == *attrs)
        {
            return last.clone();
        }
        if let Some(existing) = self.set.get(&*attrs) {
            let existing = existing.clone();
            self.last = Some(existing.clone());
            return existing;
        }
        self.insert(attrs)
    }

    fn insert(&mut self, attrs: Arc<PathAttributes>) -> Arc<PathAttributes> {
        self.set.insert(attrs.clone());
        self.last = Some(attrs.clone());
        if self.set.len() >= self.prune_threshold {
            self.prune();
        }
        attrs
    }

    /// Drops the sets no route uses any more; returns how many were dropped.
    pub fn prune(&mut self) -> usize {
        // The one-entry cache holds a reference of its own; it must not keep a set alive.
        self.last = None;
        let before = self.set.len();
        // Only the set holds it: no route (and no caller) can reach it any more. Nothing else
        // can clone it meanwhile: the set is only reachable through `&mut self`.
        self.set.retain(|attrs| Arc::strong_count(attrs) > 1);
        self.prune_threshold = (self.set.len() * 2).max(MIN_PRUNE_THRESHOLD);
        before - self.set.len()
    }

    /// Attribute sets held (including ones no longer used that the next prune will drop).
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Approximate heap bytes: the set's table, each `Arc` allocation and the vectors inside
    /// the attributes.
    pub fn memory_estimate(&self) -> usize {
        let table = self.set.capacity() * (size_of::<Arc<PathAttributes>>() + 1);
        let entries: usize = self
            .set
            .iter()
            .map(|attrs| 2 * size_of::<usize>() + size_of::<PathAttributes>() + attrs_heap(attrs))
            .sum();
        table + entries
    }
}

/// Heap bytes owned by the vectors of one attribute set.
fn attrs_heap(attrs: &PathAttributes) -> usize {
    let segments: usize = attrs
        .as_path
        .segments
        .iter()
        .map(|segment| size_of_val(segment) + segment.asns.capacity() * size_of::<u32>())
        .sum();
    segments
        + attrs.communities.capacity() * size_of::<u32>()
        + attrs.extended_communities.capacity() * 8
        + attrs.large_communities.capacity() * 12
        + attrs.cluster_list.capacity() * 4
        + attrs
            .unknown
            .iter()
            .map(|raw| size_of_val(raw) + raw.value.capacity())
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_med(med: u32) -> PathAttributes {
        PathAttributes {
            med: Some(med),
            ..Default::default()
        }
    }

    #[test]
    fn equal_attributes_share_one_arc() {
        let mut interner = AttrInterner::new();
        let a = interner.intern(with_med(1));
        let b = interner.intern(with_med(2));
        let a_again = interner.intern(with_med(1));
        assert!(Arc::ptr_eq(&a, &a_again));
        assert!(!Arc::ptr_eq(&a, &b));
        // An equal set in a foreign Arc is replaced by the interned one.
        let foreign = Arc::new(with_med(2));
        assert!(Arc::ptr_eq(&interner.intern_arc(foreign), &b));
        assert_eq!(interner.len(), 2);
    }

    #[test]
    fn prune_drops_only_unused_sets() {
        let mut interner = AttrInterner::new();
        let kept = interner.intern(with_med(1));
        let dropped = interner.intern(with_med(2));
        drop(dropped);
        assert_eq!(interner.prune(), 1);
        assert_eq!(interner.len(), 1);
        // The survivor is still the interned instance.
        assert!(Arc::ptr_eq(&interner.intern(with_med(1)), &kept));
        // The last-used cache does not keep a set alive.
        drop(kept);
        assert_eq!(interner.prune(), 1);
        assert!(interner.is_empty());
    }

    #[test]
    fn pruning_runs_automatically_as_the_set_grows() {
        let mut interner = AttrInterner::new();
        for med in 0..10 * MIN_PRUNE_THRESHOLD as u32 {
            // Each set is dropped right away, as when a route flaps through many attributes.
            interner.intern(with_med(med));
        }
        assert!(interner.len() < MIN_PRUNE_THRESHOLD, "{}", interner.len());
    }
}
