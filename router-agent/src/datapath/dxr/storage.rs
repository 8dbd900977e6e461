//! Where DXR tables live: the agent implements [`DxrStorage`] over the mmap-ed BPF arrays;
//! tests and benchmarks use [`VecStorage`].

use std::time::Instant;

use router_common::{
    DXR_SPLIT_FANOUT, DXR4_DIRECT_ENTRIES, DXR4_LINE, DXR6_DIRECT_ENTRIES, DXR6_LINE,
    DXR6_SUB_ENTRIES, DXRX_LINE, DxrXRange, dxr_range_value,
};

/// The descriptor arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directory {
    /// `DXR4_DIRECT`: one descriptor per IPv4 chunk.
    Direct4,
    /// `DXR6_DIRECT`: one descriptor per IPv6 chunk.
    Direct6,
    /// `DXR6_EXT`: one descriptor per extension id.
    Ext6,
    /// `DXR6_SUB`: split IPv6 nodes, 256 descriptors per group.
    Sub6,
}

/// The range arrays (arenas of 64-byte lines holding range blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arena {
    /// `DXR4_RANGES`: u32 `offset16 << 16 | value`.
    Ranges4,
    /// `DXR6_RANGES`: u64 `key46 << 16 | value`.
    Ranges6,
    /// `DXR6_XRANGES`: `DxrXRange { key: lower 64 bits, value }`.
    XRanges6,
}

impl Arena {
    /// Ranges per 64-byte line.
    pub const fn per_line(self) -> u32 {
        match self {
            Arena::Ranges4 => DXR4_LINE as u32,
            Arena::Ranges6 => DXR6_LINE as u32,
            Arena::XRanges6 => DXRX_LINE as u32,
        }
    }
}

/// Stores must be single aligned stores of the whole entry (descriptors and `DEFAULT`: 64
/// bits), as the XDP program reads concurrently: over shared memory, `AtomicU64::store` with
/// `Relaxed` (the writer issues the fences that order its stores). Reads must return what the
/// last store wrote; indexes out of the arrays read as `None`, as the program's map lookups
/// fail.
pub trait DxrStorage {
    fn descriptor(&self, directory: Directory, index: u32) -> Option<u64>;
    /// A published descriptor: one aligned 64-bit store.
    fn set_descriptor(&mut self, directory: Directory, index: u32, desc: u64);
    /// The word a search compares: the IPv4 or IPv6 range entry, or an extension range's key.
    fn range_key(&self, arena: Arena, index: u32) -> Option<u64>;
    /// The range's value (the entry's low 16 bits; an extension range's value field).
    fn range_value(&self, arena: Arena, index: u32) -> Option<u16>;
    /// Writes range `index` of a block no reader can reach yet. `key` is the whole encoded
    /// entry for `Ranges4` / `Ranges6` (value included, `value` ignored), the key of an
    /// extension range otherwise.
    fn write_unpublished(&mut self, arena: Arena, index: u32, key: u64, value: u16);
    /// Rewrites range `index` of a published `Ranges4` / `Ranges6` block with `entry` (its
    /// key unchanged): one aligned store of the whole entry, as `write_unpublished` makes.
    fn rewrite_range(&mut self, arena: Arena, index: u32, entry: u64) {
        debug_assert!(arena != Arena::XRanges6);
        self.write_unpublished(arena, index, entry, dxr_range_value(entry));
    }
    /// `DXR_DEFAULT[family]` (`DXR_DEFAULT_V4` / `DXR_DEFAULT_V6`).
    fn default_entry(&self, family: u32) -> u64;
    fn set_default_entry(&mut self, family: u32, entry: u64);
    /// Ranges the arena holds (its lines times ranges per line).
    fn capacity(&self, arena: Arena) -> u32;
    /// Extension descriptors (`DXR6_EXT` entries).
    fn ext_capacity(&self) -> u32;
    /// Groups of 256 split-node descriptors (`DXR6_SUB` entries / 256).
    fn sub_groups(&self) -> u32;
    /// Waits until no reader still holds what it read before the call (an RCU grace period
    /// of the XDP program); `false` if this storage cannot tell, and the quarantine's time
    /// bound applies.
    fn wait_for_readers(&mut self) -> bool {
        false
    }
    /// The start of the latest grace period of the readers that ended (space unhooked before
    /// it has no reader left), without waiting; with `more`, another one is started if none
    /// is under way. `None` if this storage cannot tell.
    fn readers_gone_before(&mut self, more: bool) -> Option<Instant> {
        let _ = more;
        None
    }
}

/// In-memory storage for tests and benchmarks.
#[derive(Clone)]
pub struct VecStorage {
    direct4: Vec<u64>,
    direct6: Vec<u64>,
    ext: Vec<u64>,
    sub6: Vec<u64>,
    ranges4: Vec<u32>,
    ranges6: Vec<u64>,
    xranges: Vec<DxrXRange>,
    default: [u64; 2],
}

impl VecStorage {
    /// Arenas of the given sizes in 64-byte lines, `ext` extension descriptors, and
    /// `DXR6_SUB_GROUPS` split-node groups.
    pub fn new(lines4: u32, lines6: u32, xlines: u32, ext: u32) -> Self {
        Self {
            direct4: vec![0; DXR4_DIRECT_ENTRIES as usize],
            direct6: vec![0; DXR6_DIRECT_ENTRIES as usize],
            ext: vec![0; ext as usize],
            sub6: vec![0; DXR6_SUB_ENTRIES as usize],
            ranges4: vec![0; lines4 as usize * DXR4_LINE],
            ranges6: vec![0; lines6 as usize * DXR6_LINE],
            xranges: vec![DxrXRange::default(); xlines as usize * DXRX_LINE],
            default: [0; 2],
        }
    }

    /// The raw range arrays (`Ranges4` entries widened), for tests comparing snapshots.
    pub fn range_words(&self, arena: Arena, start: u32, len: u32) -> Vec<(u64, u16)> {
        (start..start + len)
            .map(|i| {
                (
                    self.range_key(arena, i).unwrap_or_default(),
                    self.range_value(arena, i).unwrap_or_default(),
                )
            })
            .collect()
    }
}

impl DxrStorage for VecStorage {
    fn descriptor(&self, directory: Directory, index: u32) -> Option<u64> {
        let table = match directory {
            Directory::Direct4 => &self.direct4,
            Directory::Direct6 => &self.direct6,
            Directory::Ext6 => &self.ext,
            Directory::Sub6 => &self.sub6,
        };
        table.get(index as usize).copied()
    }

    fn set_descriptor(&mut self, directory: Directory, index: u32, desc: u64) {
        let table = match directory {
            Directory::Direct4 => &mut self.direct4,
            Directory::Direct6 => &mut self.direct6,
            Directory::Ext6 => &mut self.ext,
            Directory::Sub6 => &mut self.sub6,
        };
        table[index as usize] = desc;
    }

    fn range_key(&self, arena: Arena, index: u32) -> Option<u64> {
        let index = index as usize;
        match arena {
            Arena::Ranges4 => self.ranges4.get(index).map(|&e| u64::from(e)),
            Arena::Ranges6 => self.ranges6.get(index).copied(),
            Arena::XRanges6 => self.xranges.get(index).map(|r| r.key),
        }
    }

    fn range_value(&self, arena: Arena, index: u32) -> Option<u16> {
        let index = index as usize;
        match arena {
            Arena::Ranges4 => self.ranges4.get(index).map(|&e| e as u16),
            Arena::Ranges6 => self.ranges6.get(index).map(|&e| e as u16),
            Arena::XRanges6 => self.xranges.get(index).map(|r| r.value as u16),
        }
    }

    fn write_unpublished(&mut self, arena: Arena, index: u32, key: u64, value: u16) {
        let index = index as usize;
        match arena {
            Arena::Ranges4 => self.ranges4[index] = key as u32,
            Arena::Ranges6 => self.ranges6[index] = key,
            Arena::XRanges6 => {
                self.xranges[index] = DxrXRange {
                    key,
                    value: u64::from(value),
                }
            }
        }
    }

    fn default_entry(&self, family: u32) -> u64 {
        self.default[family as usize]
    }

    fn set_default_entry(&mut self, family: u32, entry: u64) {
        self.default[family as usize] = entry;
    }

    fn capacity(&self, arena: Arena) -> u32 {
        match arena {
            Arena::Ranges4 => self.ranges4.len() as u32,
            Arena::Ranges6 => self.ranges6.len() as u32,
            Arena::XRanges6 => self.xranges.len() as u32,
        }
    }

    fn ext_capacity(&self) -> u32 {
        self.ext.len() as u32
    }

    fn sub_groups(&self) -> u32 {
        self.sub6.len() as u32 / DXR_SPLIT_FANOUT
    }
}
