//! [`DxrStorage`] over the XDP program's mmap-ed `DXR*` arrays.
//!
//! Every store is one aligned atomic store of the whole entry (a `u32` IPv4 range, a `u64`
//! IPv6 range, descriptor or default, an extension range's two words), so a reader racing a
//! write sees the old or the new entry. Ordering between a block and the descriptor that
//! publishes it is the writer's release fence (`Dxr`, invariant I3).

use router_common::{
    DXR_SPLIT_FANOUT, DXR4_LINE, DXR6_LINE, DXRX_LINE, Dxr4Line, Dxr6Line, DxrXLine,
};

use super::{Arena, Directory, DxrStorage};
use crate::datapath::{grace::BackgroundGrace, mmap::MmapArray};

pub struct MmapDxr {
    pub direct4: MmapArray<u64>,
    pub ranges4: MmapArray<Dxr4Line>,
    pub direct6: MmapArray<u64>,
    pub ranges6: MmapArray<Dxr6Line>,
    pub ext6: MmapArray<u64>,
    pub xranges6: MmapArray<DxrXLine>,
    /// `DXR6_SUB`: split IPv6 nodes' descriptors (`None`: maps of layout version 2, read
    /// back on an upgrade, which had neither the map nor split nodes).
    pub sub6: Option<MmapArray<u64>>,
    /// `DXR_DEFAULT`: the /0 routes, IPv4 then IPv6.
    pub default: MmapArray<u64>,
    /// Ends quarantines early, at a grace period (`None`: they run their course).
    pub grace: Option<BackgroundGrace>,
}

impl MmapDxr {
    fn directory(&self, directory: Directory) -> Option<&MmapArray<u64>> {
        match directory {
            Directory::Direct4 => Some(&self.direct4),
            Directory::Direct6 => Some(&self.direct6),
            Directory::Ext6 => Some(&self.ext6),
            Directory::Sub6 => self.sub6.as_ref(),
        }
    }
}

/// (line, entry within the line) of range `index`; `None` past the arena, as the program's
/// array lookup fails there.
fn slot(index: u32, per_line: usize, lines: u32) -> Option<(u32, usize)> {
    let line = index / per_line as u32;
    (line < lines).then_some((line, index as usize % per_line))
}

impl DxrStorage for MmapDxr {
    fn descriptor(&self, directory: Directory, index: u32) -> Option<u64> {
        let table = self.directory(directory)?;
        (index < table.entries()).then(|| table.load_u64(index, 0))
    }

    fn set_descriptor(&mut self, directory: Directory, index: u32, desc: u64) {
        let table = match directory {
            Directory::Direct4 => &mut self.direct4,
            Directory::Direct6 => &mut self.direct6,
            Directory::Ext6 => &mut self.ext6,
            Directory::Sub6 => self.sub6.as_mut().expect("no split group without DXR6_SUB"),
        };
        table.store_u64(index, 0, desc);
    }

    fn range_key(&self, arena: Arena, index: u32) -> Option<u64> {
        match arena {
            Arena::Ranges4 => {
                let (line, at) = slot(index, DXR4_LINE, self.ranges4.entries())?;
                Some(u64::from(self.ranges4.load_u32(line, at)))
            }
            Arena::Ranges6 => {
                let (line, at) = slot(index, DXR6_LINE, self.ranges6.entries())?;
                Some(self.ranges6.load_u64(line, at))
            }
            Arena::XRanges6 => {
                let (line, at) = slot(index, DXRX_LINE, self.xranges6.entries())?;
                Some(self.xranges6.load_u64(line, 2 * at))
            }
        }
    }

    fn range_value(&self, arena: Arena, index: u32) -> Option<u16> {
        match arena {
            Arena::XRanges6 => {
                let (line, at) = slot(index, DXRX_LINE, self.xranges6.entries())?;
                Some(self.xranges6.load_u64(line, 2 * at + 1) as u16)
            }
            _ => self.range_key(arena, index).map(|entry| entry as u16),
        }
    }

    fn write_unpublished(&mut self, arena: Arena, index: u32, key: u64, value: u16) {
        match arena {
            Arena::Ranges4 => {
                let (line, at) = (index / DXR4_LINE as u32, index as usize % DXR4_LINE);
                self.ranges4.store_u32(line, at, key as u32);
            }
            Arena::Ranges6 => {
                let (line, at) = (index / DXR6_LINE as u32, index as usize % DXR6_LINE);
                self.ranges6.store_u64(line, at, key);
            }
            Arena::XRanges6 => {
                let (line, at) = (index / DXRX_LINE as u32, index as usize % DXRX_LINE);
                self.xranges6.store_u64(line, 2 * at, key);
                self.xranges6.store_u64(line, 2 * at + 1, u64::from(value));
            }
        }
    }

    fn default_entry(&self, family: u32) -> u64 {
        self.default.load_u64(family, 0)
    }

    fn set_default_entry(&mut self, family: u32, entry: u64) {
        self.default.store_u64(family, 0, entry);
    }

    fn capacity(&self, arena: Arena) -> u32 {
        let lines = match arena {
            Arena::Ranges4 => self.ranges4.entries(),
            Arena::Ranges6 => self.ranges6.entries(),
            Arena::XRanges6 => self.xranges6.entries(),
        };
        lines * arena.per_line()
    }

    fn ext_capacity(&self) -> u32 {
        self.ext6.entries()
    }

    fn sub_groups(&self) -> u32 {
        self.sub6
            .as_ref()
            .map_or(0, |sub6| sub6.entries() / DXR_SPLIT_FANOUT)
    }

    fn wait_for_readers(&mut self) -> bool {
        self.grace
            .as_ref()
            .is_some_and(|grace| grace.wait().is_ok())
    }

    fn readers_gone_before(&mut self, more: bool) -> Option<std::time::Instant> {
        self.grace.as_ref()?.poll(more)
    }
}
