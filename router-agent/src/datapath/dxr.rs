//! DXR route tables for IPv4 and IPv6, userspace side: the agent's rule set, and the
//! incremental writer of the arrays the XDP program reads (`router_common::DXR*`), after Zec,
//! Rizzo and Mikuc's DXR.
//!
//! ```text
//!   family key: IPv4 address, or the upper 64 bits of an IPv6 address
//!   direct[key >> (width - D)]   D = 16 (IPv4) / 18 (IPv6): one 64-bit descriptor per chunk
//!     default (16) | base (26) | count (22)
//!     default: group of the longest prefix of at most /D covering the chunk, or NONE
//!     count 0: a leaf, no longer prefix in the chunk: the default is the answer
//!     else ranges[base .. base+count]: the chunk cut into ranges of equal answer, sorted,
//!          the first at offset 0; a search finds the last range starting at or before the
//!          address; value NONE: "no prefix longer than /D here", the default applies
//!   IPv6 range value EXT | id: a /64 holding prefixes longer than /64:
//!     ext[id]: a descriptor (default: the answer for the /64 itself) over xranges, searched
//!     on the lower 64 bits
//!   DEFAULT[family]: the /0 route, for NONE defaults
//!   IPv6 count SPLIT: a dense chunk (or node) split 256 ways on the next 8 address bits,
//!     sub[base * 256 + those bits]: a child descriptor, its default (if not NONE) overriding
//!     the chunk's; up to four levels deep (`split.rs`)
//! ```
//!
//! Prefixes of at most /D (few in a real table) are expanded into the defaults of the chunks
//! they cover; each chunk records which length owns its default (`depth`), so a remove hands the
//! chunks it owned to the next shorter covering prefix, as DIR-24-8 does with its entries.
//! Longer prefixes are kept per chunk, sorted; a change rebuilds the chunk's range block from
//! them (a sweep over nested intervals), once per [`Dxr::apply`] batch however many of its
//! prefixes changed; in a split IPv6 chunk, only the children the changes fall in.
//!
//! Invariants (the XDP program reads without locks while the agent writes):
//! - I1: a block (extension id, split group) reachable from a published descriptor is never
//!   written; one unhooked is reused only after t + [`DXR_QUARANTINE`] (XDP handles one
//!   packet per RCU read-side section, microseconds), or once an RCU grace period of the
//!   program that started after t has ended (`datapath/grace.rs`: waited for, or run in the
//!   background), t taken after a full fence that follows the unhooking store (one fence
//!   for all of a batch's stores, `unhooked.rs`).
//! - I2: descriptors and `DEFAULT` change only by single aligned 64-bit stores, so default,
//!   base and count always describe one consistent chunk or node.
//! - I3: a block (and the extension blocks and descriptors it names) is complete before the
//!   release fence that precedes the store publishing it.
//! - I4: blocks start at a line of their arena (the searches pick a short block's line
//!   first), are sorted, start at their node's first key (offset 0 for a chunk), and hold at
//!   most 2^16 (IPv4) or `DXR_MAX_RANGES` (IPv6) ranges, so the searches' constant bounds
//!   reach every answer.
//! - I5: a changed chunk (or split child) whose range keys change is a new block swapped in
//!   by one store, never rewritten in place: a reader sees the old answer or the new one for
//!   every address, never a third (a search over a block being rewritten could land on an
//!   unrelated range). Where only values change (a route moved to another group) and the
//!   node's default stays, each changed range is rewritten in place by one aligned store of
//!   its whole entry: searches compare keys only, so they take the same path and read the
//!   old value or the new one.
//!
//! While no reader exists (before the program is attached, [`Dxr::set_published`]), blocks
//! are freed without quarantine, so a bulk load reuses space at once.

mod alloc;
mod build;
mod free_lines;
mod lists;
mod lookup;
mod maps;
mod quarantine;
pub mod readback;
mod rules;
mod split;
mod storage;
#[cfg(test)]
mod tests;
mod unhooked;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use router_common::{
    DXR_DEFAULT_V4, DXR_DEFAULT_V6, DXR_DEFAULT_VALID, DXR_MAX_GROUP, DXR_VALUE_NONE,
    DXR4_DIRECT_BITS, DXR6_DIRECT_BITS, dxr_desc_default, dxr_desc_with_default,
};

use alloc::{IdAllocator, LineAllocator};
pub use lookup::{lookup_v4, lookup_v6};
pub use maps::MmapDxr;
use rules::{Family, Rule};
pub use split::SplitLimits;
pub use storage::{Arena, Directory, DxrStorage, VecStorage};

/// Quarantined blocks of each kind a batch frees at least, at its start and at its end.
const RECLAIM_BLOCKS: usize = 8;

/// How long an unhooked block or extension id waits before reuse (as DIR-24-8's TBL8 groups).
pub const DXR_QUARANTINE: Duration = super::dir24::TBL8_QUARANTINE;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DxrError {
    #[error(
        "nexthop group id {group} of {prefix} does not fit a DXR range (must be below {DXR_MAX_GROUP})"
    )]
    InvalidGroup { prefix: IpNet, group: u32 },
    /// The chunk's new block (or an extension) found no room: the chunk's addresses go to
    /// the kernel (`GROUP_PASS`) until a rebuild finds room ([`Dxr::release_quarantined`]
    /// retries). Keeping the old block instead would keep forwarding to a removed route.
    #[error("cannot apply {prefix}: the DXR {what} is full; its chunk goes to the kernel")]
    Full { prefix: IpNet, what: &'static str },
}

/// Both families' DXR tables over `storage`.
pub struct Dxr<S: DxrStorage> {
    storage: S,
    v4: Family,
    v6: Family,
    ranges4: LineAllocator,
    ranges6: LineAllocator,
    xranges: LineAllocator,
    ext_ids: IdAllocator,
    /// `DXR6_SUB` groups (split IPv6 nodes).
    sub_groups: IdAllocator,
    split_limits: SplitLimits,
    /// Readers may exist: unhooked space goes to quarantine.
    published: bool,
    /// Times an allocation waited for a quarantine to end.
    quarantine_waits: u64,
    /// IPv6 /64s whose longer prefixes the current batch changed: their extensions are
    /// rebuilt, the others' kept.
    dirty_ext: HashSet<u64, foldhash::fast::RandomState>,
    /// Chunks whose block found no room, published as `GROUP_PASS` leaves: (IPv6, chunk) ->
    /// the default the chunk really has, for when it is rebuilt.
    degraded: BTreeMap<(bool, u32), u16>,
    /// Allocations may sleep until a quarantine ends (not while retrying degraded chunks).
    may_wait: bool,
    /// Unhooked during this batch, quarantined at its end ([`Dxr::settle`]).
    unhooked: unhooked::Unhooked,
    scratch: build::Scratch,
}

impl<S: DxrStorage> Dxr<S> {
    /// Tables over `storage`, which must be all zero (freshly created maps). Every direct
    /// descriptor is written as an empty leaf (default NONE). Before that, a zero descriptor
    /// reads as group 0 (`GROUP_LOCAL`): the program passes such packets to the kernel.
    pub fn new(mut storage: S) -> Self {
        let none = router_common::dxr_desc(DXR_VALUE_NONE, 0, 0);
        for index in 0..1 << DXR4_DIRECT_BITS {
            storage.set_descriptor(Directory::Direct4, index, none);
        }
        for index in 0..1 << DXR6_DIRECT_BITS {
            storage.set_descriptor(Directory::Direct6, index, none);
        }
        let lines = |arena| storage.capacity(arena) / arena.per_line();
        Self {
            ranges4: LineAllocator::new(lines(Arena::Ranges4)),
            ranges6: LineAllocator::new(lines(Arena::Ranges6)),
            xranges: LineAllocator::new(lines(Arena::XRanges6)),
            ext_ids: IdAllocator::new(storage.ext_capacity().min(router_common::DXR6_MAX_EXT)),
            sub_groups: IdAllocator::new(storage.sub_groups()),
            split_limits: SplitLimits::default(),
            v4: Family::new(false),
            v6: Family::new(true),
            storage,
            published: true,
            quarantine_waits: 0,
            dirty_ext: HashSet::default(),
            degraded: BTreeMap::new(),
            may_wait: true,
            unhooked: unhooked::Unhooked::default(),
            scratch: build::Scratch::default(),
        }
    }

    /// Applies route changes (`Some(group)`: insert or replace, `None`: remove), in address
    /// order (stable: changes to one prefix keep their order). Every chunk a batch touches is
    /// rebuilt once, as soon as the batch's changes to it are in its list (sorted, they are
    /// neighbours), while that list is still in the cache; a prefix of at most the direct
    /// bits sorts before every chunk it covers. `changes` are left truncated and sorted.
    /// Returns the changes that could not be made.
    pub fn apply(&mut self, changes: &mut [(IpNet, Option<u32>)]) -> Vec<DxrError> {
        // Space freed per batch grows with it: a single update frees a few dozen blocks (a
        // few µs), so freeing never lands on one update as the thousands of blocks one grace
        // period frees (ms), and the quarantine still drains faster than updates fill it.
        let reclaim_budget = RECLAIM_BLOCKS + 2 * changes.len();
        self.reclaim(reclaim_budget);
        // Truncated first: `IpNet`'s order is then family, network, length (stable, no keys
        // to compute or cache).
        for (prefix, _) in changes.iter_mut() {
            *prefix = prefix.trunc();
        }
        changes.sort_by_key(|&(prefix, _)| prefix);
        let mut errors = Vec::new();
        // The chunk being changed (IPv6?, chunk) and its changed prefixes so far.
        let mut pending: Option<(bool, u32)> = None;
        let mut changed: Vec<IpNet> = Vec::new();
        for &(prefix, group) in changes.iter() {
            let group = match group {
                Some(group) if group >= DXR_MAX_GROUP => {
                    errors.push(DxrError::InvalidGroup { prefix, group });
                    continue;
                }
                group => group.map(|group| group as u16),
            };
            let (v6, rule) = Rule::of(prefix);
            let family = if v6 { &mut self.v6 } else { &mut self.v4 };
            if rule.len <= family.direct_bits() {
                self.set_short(v6, rule, group);
                continue;
            }
            let chunk = family.chunk_of(rule.hi);
            let previous = family.set_long(rule, group);
            if previous == group {
                continue;
            }
            if rule.len > 64 {
                self.dirty_ext.insert(rule.hi);
            }
            // Sorted: a chunk's changes are neighbours, so a new chunk means the last is done.
            if pending != Some((v6, chunk))
                && let Some((v6, chunk)) = pending.replace((v6, chunk))
            {
                self.rebuild_changed(v6, chunk, &mut changed, &mut errors);
            }
            changed.push(prefix);
        }
        if let Some((v6, chunk)) = pending {
            self.rebuild_changed(v6, chunk, &mut changed, &mut errors);
        }
        self.dirty_ext.clear();
        // Ask for the grace period that frees this batch's old blocks before the next batch.
        self.settle();
        self.reclaim(reclaim_budget);
        errors
    }

    /// Rebuilds a chunk the batch changed (`changed`: its changed prefixes, emptied); if it
    /// found no room, the chunk goes to the kernel and each of those prefixes is reported.
    fn rebuild_changed(
        &mut self,
        v6: bool,
        chunk: u32,
        changed: &mut Vec<IpNet>,
        errors: &mut Vec<DxrError>,
    ) {
        if let Err(what) = self.rebuild_chunk(v6, chunk, Some(changed)) {
            self.degrade(v6, chunk);
            errors.extend(
                changed
                    .iter()
                    .map(|&prefix| DxrError::Full { prefix, what }),
            );
        }
        changed.clear();
    }

    /// Longest-prefix match of `addr`, reading the storage exactly as the XDP program does.
    pub fn lookup(&self, addr: IpAddr) -> Option<u32> {
        match addr {
            IpAddr::V4(v4) => lookup_v4(&self.storage, u32::from(v4)),
            IpAddr::V6(v6) => lookup_v6(&self.storage, &v6.octets()),
        }
    }

    /// The nexthop group of exactly `prefix` (host bits ignored).
    pub fn get(&self, prefix: IpNet) -> Option<u32> {
        let (v6, rule) = Rule::of(prefix.trunc());
        let family = if v6 { &self.v6 } else { &self.v4 };
        family.get(rule).map(u32::from)
    }

    /// Frees the blocks and extension ids whose quarantine ended at `now`, drops the
    /// allocators' stale candidates, then rebuilds the degraded chunks that now fit (without
    /// waiting for more).
    pub fn release_quarantined(&mut self, now: Instant) {
        self.release_space(now, usize::MAX);
        self.reclaim(usize::MAX);
        // Here, on the daemon's timer, not in an update: a rebuild of the candidate lists
        // costs ~100 µs at a full table.
        for lines in [&mut self.ranges4, &mut self.ranges6, &mut self.xranges] {
            lines.drop_stale_candidates();
        }
        let chunks: Vec<(bool, u32)> = self.degraded.keys().copied().collect();
        self.may_wait = false;
        for (v6, chunk) in chunks {
            // Failing again leaves the chunk degraded: nothing changed.
            let _ = self.rebuild_chunk(v6, chunk, None);
        }
        self.settle();
        // Ask for the grace period that frees what those rebuilds unhooked.
        self.reclaim(0);
        self.may_wait = true;
    }

    /// Chunks whose addresses go to the kernel for want of room.
    pub fn degraded_chunks(&self) -> usize {
        self.degraded.len()
    }

    /// Publishes `chunk` as a `GROUP_PASS` leaf (one store), keeping its real default for
    /// the rebuild, and lets its old block go.
    fn degrade(&mut self, v6: bool, chunk: u32) {
        let directory = if v6 {
            Directory::Direct6
        } else {
            Directory::Direct4
        };
        let old = self
            .storage
            .descriptor(directory, chunk)
            .unwrap_or_default();
        self.degraded
            .entry((v6, chunk))
            .or_insert(dxr_desc_default(old));
        let pass = router_common::dxr_desc(router_common::GROUP_PASS as u16, 0, 0);
        self.publish(directory, chunk, pass);
        self.unhook_tree(v6, old, Some(&[]));
    }

    /// Bytes of range blocks in use or in quarantine (the direct tables, extension
    /// descriptors and `DEFAULT` are fixed: see [`Dxr::fixed_bytes`]).
    pub fn memory_bytes(&self) -> usize {
        let lines =
            self.ranges4.used_lines() + self.ranges6.used_lines() + self.xranges.used_lines();
        lines as usize * 64
    }

    /// Bytes of the fixed tables: both direct tables, the extension descriptors and the
    /// split nodes' groups.
    pub fn fixed_bytes(&self) -> usize {
        let groups = self.storage.sub_groups() as usize * router_common::DXR_SPLIT_FANOUT as usize;
        ((1 << DXR4_DIRECT_BITS)
            + (1 << DXR6_DIRECT_BITS)
            + self.storage.ext_capacity() as usize
            + groups)
            * 8
    }

    /// Userspace bookkeeping, in bytes (approximate): the rules and the allocators.
    pub fn bookkeeping_bytes(&self) -> usize {
        size_of::<Self>()
            + self.v4.bookkeeping_bytes()
            + self.v6.bookkeeping_bytes()
            + self.ranges4.bookkeeping_bytes()
            + self.ranges6.bookkeeping_bytes()
            + self.xranges.bookkeeping_bytes()
            + self.ext_ids.bookkeeping_bytes()
            + self.sub_groups.bookkeeping_bytes()
            + self.unhooked.bookkeeping_bytes()
    }

    /// Whether readers may see the tables. While not (a fresh datapath before the program is
    /// attached), unhooked space is reused at once instead of waiting out the quarantine.
    pub fn set_published(&mut self, yes: bool) {
        self.settle();
        self.published = yes;
    }

    /// Times an allocation had to wait for a quarantine to end (back-pressure).
    pub fn quarantine_waits(&self) -> u64 {
        self.quarantine_waits
    }

    /// Number of prefixes, both families, default routes included.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Adds, changes or removes a prefix of at most /D: the defaults of the chunks it covers,
    /// one 64-bit store each (the /0 route: `DEFAULT`).
    fn set_short(&mut self, v6: bool, rule: Rule, group: Option<u16>) {
        let family = if v6 { &mut self.v6 } else { &mut self.v4 };
        let previous = family.set_short(rule, group);
        if previous == group {
            return;
        }
        if rule.len == 0 {
            let entry = group.map_or(0, |group| DXR_DEFAULT_VALID | u64::from(group));
            let index = if v6 { DXR_DEFAULT_V6 } else { DXR_DEFAULT_V4 };
            self.storage.set_default_entry(index, entry);
            return;
        }
        // Chunks owned by this length or a shorter one take an insert; a remove hands the
        // chunks this length owned to the longest shorter prefix covering them.
        let (depth, value, owns): (u8, u16, fn(u8, u8) -> bool) = match group {
            Some(group) => (rule.len, group, |current, len| current <= len),
            None => {
                let (len, value) = family.short_cover(rule);
                (len, value, |current, len| current == len)
            }
        };
        let directory = if v6 {
            Directory::Direct6
        } else {
            Directory::Direct4
        };
        for chunk in family.chunk_span(rule) {
            if !owns(family.depth(chunk), rule.len) {
                continue; // a longer short prefix owns this chunk's default
            }
            family.set_depth(chunk, depth);
            if let Some(default) = self.degraded.get_mut(&(v6, chunk)) {
                *default = value; // stays a GROUP_PASS leaf until rebuilt
                continue;
            }
            let desc = self
                .storage
                .descriptor(directory, chunk)
                .unwrap_or_default();
            if dxr_desc_default(desc) != value {
                self.storage
                    .set_descriptor(directory, chunk, dxr_desc_with_default(desc, value));
            }
        }
    }

    /// Space for a block of `lines` lines in `arena`, waiting for quarantines to end when
    /// that is what stands in the way.
    fn alloc_lines(&mut self, arena: Arena, lines: u32) -> Option<u32> {
        loop {
            let may_wait = self.may_wait;
            let allocator = self.allocator(arena);
            if let Some(start) = allocator.alloc(lines) {
                return Some(start);
            }
            // What this batch unhooked joins the quarantine first, so that one wait covers it.
            self.settle();
            let ready = self
                .allocator(arena)
                .oldest_release()
                .filter(|_| may_wait)?;
            self.wait_until(ready);
        }
    }

    fn alloc_ext_id(&mut self) -> Option<u32> {
        loop {
            if let Some(id) = self.ext_ids.alloc() {
                return Some(id);
            }
            self.settle();
            let ready = self.ext_ids.oldest_release().filter(|_| self.may_wait)?;
            self.wait_until(ready);
        }
    }

    /// Waits until the oldest quarantine (ending at `ready`) is over: a grace period of the
    /// readers if the storage can wait for one, else the quarantine's time.
    fn wait_until(&mut self, ready: Instant) {
        // What a finished grace period freed and a batch's budget left in quarantine first.
        if self.reclaim(usize::MAX) > 0 {
            return;
        }
        let started = Instant::now();
        if ready <= started {
            self.release_space(started, usize::MAX);
            return;
        }
        self.quarantine_waits += 1;
        if self.storage.wait_for_readers() {
            // Whatever was unhooked before `started` has no reader left.
            self.release_space(started + DXR_QUARANTINE, usize::MAX);
            return;
        }
        std::thread::sleep(ready - started);
        self.release_space(Instant::now().max(ready), usize::MAX);
    }

    /// Frees the quarantined space a grace period that ran in the background has made safe,
    /// and asks for the next one while anything is in quarantine: allocations then rarely
    /// wait for one ([`Dxr::wait_until`]).
    fn reclaim(&mut self, max: usize) -> usize {
        let waiting = self.ranges4.oldest_release().is_some()
            || self.ranges6.oldest_release().is_some()
            || self.xranges.oldest_release().is_some()
            || self.ext_ids.oldest_release().is_some()
            || self.sub_groups.oldest_release().is_some();
        match self.storage.readers_gone_before(waiting) {
            // Whatever was unhooked before `gone` has no reader left.
            Some(gone) => self.release_space(gone + DXR_QUARANTINE, max),
            None => 0,
        }
    }

    /// Frees the quarantined space whose time is up at `now`, at most `max` blocks (or ids)
    /// of each kind (no rebuilds: callers may be in the middle of one).
    /// Returns how many it freed.
    fn release_space(&mut self, now: Instant, max: usize) -> usize {
        self.ranges4.release_quarantined(now, max)
            + self.ranges6.release_quarantined(now, max)
            + self.xranges.release_quarantined(now, max)
            + self.ext_ids.release_quarantined(now, max)
            + self.sub_groups.release_quarantined(now, max)
    }

    fn allocator(&mut self, arena: Arena) -> &mut LineAllocator {
        match arena {
            Arena::Ranges4 => &mut self.ranges4,
            Arena::Ranges6 => &mut self.ranges6,
            Arena::XRanges6 => &mut self.xranges,
        }
    }

    /// Publishing fence: everything written before it is visible to a reader that sees the
    /// store after it.
    fn publish(&mut self, directory: Directory, index: u32, desc: u64) {
        fence(Ordering::Release);
        self.storage.set_descriptor(directory, index, desc);
        // The old block's quarantine starts once this store is visible everywhere: at the
        // batch's end, after one fence for all its stores ([`Dxr::settle`]).
    }
}
