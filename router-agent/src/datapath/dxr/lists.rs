//! Where the rule set keeps its sorted prefix lists: per key in a map, or per chunk in
//! structures a batch (sorted by address) walks in order.

use std::collections::HashMap;

type Hasher = foldhash::fast::RandomState;

/// Lists by key in a map.
pub(super) type Lists<K, E> = HashMap<K, Vec<E>, Hasher>;

/// Sorted prefix lists by key: a list is created when first written and dropped when emptied.
pub(super) trait ListStore<K, E> {
    fn list(&self, at: K) -> Option<&Vec<E>>;
    fn list_mut(&mut self, at: K) -> &mut Vec<E>;
    /// Frees `at`'s list if it is empty.
    fn drop_if_empty(&mut self, at: K);
    /// Bytes held, lists and index.
    fn bytes(&self) -> usize;
}

impl<K: std::hash::Hash + Eq + Copy, E> ListStore<K, E> for Lists<K, E> {
    fn list(&self, at: K) -> Option<&Vec<E>> {
        self.get(&at)
    }
    fn list_mut(&mut self, at: K) -> &mut Vec<E> {
        self.entry(at).or_default()
    }
    fn drop_if_empty(&mut self, at: K) {
        if self.get(&at).is_some_and(Vec::is_empty) {
            self.remove(&at);
        }
    }
    fn bytes(&self) -> usize {
        let slot = size_of::<(K, Vec<E>)>() + 1;
        self.capacity() * slot
            + self
                .values()
                .map(|list| list.capacity() * size_of::<E>())
                .sum::<usize>()
    }
}

/// A list per chunk, indexed by the chunk: IPv4's 2^16 chunks are nearly all in use at a full
/// table, and a batch, sorted by address, walks this index in order where a map's buckets
/// cost a cache miss per prefix.
pub(super) struct DenseLists<E>(Vec<Vec<E>>);

impl<E> DenseLists<E> {
    pub(super) fn new(chunks: usize) -> Self {
        Self((0..chunks).map(|_| Vec::new()).collect())
    }
}

impl<E> ListStore<u32, E> for DenseLists<E> {
    fn list(&self, at: u32) -> Option<&Vec<E>> {
        self.0.get(at as usize)
    }
    fn list_mut(&mut self, at: u32) -> &mut Vec<E> {
        &mut self.0[at as usize]
    }
    fn drop_if_empty(&mut self, at: u32) {
        let list = &mut self.0[at as usize];
        if list.is_empty() {
            *list = Vec::new();
        }
    }
    fn bytes(&self) -> usize {
        self.0.capacity() * size_of::<Vec<E>>()
            + self
                .0
                .iter()
                .map(|list| list.capacity() * size_of::<E>())
                .sum::<usize>()
    }
}

/// Lists of a few of many chunks: a slot number per chunk (4 bytes) and the lists in slots,
/// which a bulk load into empty tables fills in address order. Walks in order as
/// [`DenseLists`] does, for a sixth of its fixed size.
pub(super) struct SlotLists<E> {
    /// Per chunk: its slot, or `NO_SLOT`.
    slot: Vec<u32>,
    lists: Vec<Vec<E>>,
    /// Slots of dropped lists, for the next new one.
    free: Vec<u32>,
}

const NO_SLOT: u32 = u32::MAX;

impl<E> SlotLists<E> {
    pub(super) fn new(chunks: usize) -> Self {
        Self {
            slot: vec![NO_SLOT; chunks],
            lists: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<E> ListStore<u32, E> for SlotLists<E> {
    fn list(&self, at: u32) -> Option<&Vec<E>> {
        match *self.slot.get(at as usize)? {
            NO_SLOT => None,
            slot => self.lists.get(slot as usize),
        }
    }
    fn list_mut(&mut self, at: u32) -> &mut Vec<E> {
        let mut slot = self.slot[at as usize];
        if slot == NO_SLOT {
            slot = self.free.pop().unwrap_or_else(|| {
                self.lists.push(Vec::new());
                (self.lists.len() - 1) as u32
            });
            self.slot[at as usize] = slot;
        }
        &mut self.lists[slot as usize]
    }
    fn drop_if_empty(&mut self, at: u32) {
        let slot = self.slot[at as usize];
        if slot != NO_SLOT && self.lists[slot as usize].is_empty() {
            self.lists[slot as usize] = Vec::new();
            self.slot[at as usize] = NO_SLOT;
            self.free.push(slot);
        }
    }
    fn bytes(&self) -> usize {
        (self.slot.capacity() + self.free.capacity()) * size_of::<u32>()
            + self.lists.capacity() * size_of::<Vec<E>>()
            + self
                .lists
                .iter()
                .map(|list| list.capacity() * size_of::<E>())
                .sum::<usize>()
    }
}
