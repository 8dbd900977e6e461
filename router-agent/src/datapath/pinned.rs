//! Reading the pinned maps of a running (or crashed, still forwarding) datapath, with no help
//! from the daemon: what `show fib` and `show counters` print is what the XDP program uses.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use aya::maps::{Array, LpmTrie, Map, MapData, PerCpuArray};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use router_common::{
    DIR24_EXTENDED, DIR24_ID_MASK, DIR24_VALID, Dir24Chunk, LookupEngine, Nexthop, NexthopGroup,
    NexthopStats, VERDICT_COUNT, map_names,
};

pub struct PinnedDatapath {
    pin_dir: PathBuf,
    pub engine: LookupEngine,
}

impl PinnedDatapath {
    pub fn open(pin_dir: &Path) -> Result<Self> {
        let max_entries = |name: &str| -> Result<u32> {
            let path = pin_dir.join(name);
            let info = aya::maps::MapInfo::from_pin(&path).with_context(|| {
                format!("opening {} (is router-agent running?)", path.display())
            })?;
            Ok(info.max_entries())
        };
        // Tables an engine does not use are created with one entry (see Datapath::load).
        // An older layout has no DXR maps: not DXR.
        let engine = if max_entries(map_names::DXR4_DIRECT).unwrap_or(1) > 1 {
            LookupEngine::Dxr
        } else if max_entries(map_names::DIR24_TBL24)? > 1 {
            LookupEngine::Dir24
        } else if max_entries(map_names::ROUTES_V4)? > 1 {
            LookupEngine::LpmTrie
        } else {
            LookupEngine::Kernel
        };
        Ok(Self {
            pin_dir: pin_dir.to_owned(),
            engine,
        })
    }

    fn map(&self, name: &str) -> Result<Map> {
        open_map(&self.pin_dir, name)
    }

    /// Every route and its group id, sorted. For DIR-24-8 the prefixes are recovered from the
    /// expanded table: the smallest set of prefixes that forwards exactly as the table does.
    pub fn routes(&self) -> Result<Vec<(IpNet, u32)>> {
        let mut routes = Vec::new();
        match self.engine {
            LookupEngine::Kernel => return Ok(routes),
            LookupEngine::Dxr => return self.dxr_routes(),
            LookupEngine::LpmTrie => {
                let data = self.map(map_names::ROUTES_V4)?;
                let trie: LpmTrie<&MapData, [u8; 4], u32> = LpmTrie::try_from(&data)?;
                for item in trie.iter() {
                    let (key, group) = item?;
                    let prefix = Ipv4Net::new(Ipv4Addr::from(key.data()), key.prefix_len() as u8)?;
                    routes.push((IpNet::V4(prefix), group));
                }
            }
            LookupEngine::Dir24 => routes.extend(self.dir24_routes()?),
        }
        let data = self.map(map_names::ROUTES_V6)?;
        let trie: LpmTrie<&MapData, [u8; 16], u32> = LpmTrie::try_from(&data)?;
        for item in trie.iter() {
            let (key, group) = item?;
            let prefix = Ipv6Net::new(Ipv6Addr::from(key.data()), key.prefix_len() as u8)?;
            routes.push((IpNet::V6(prefix), group));
        }
        routes.sort();
        Ok(routes)
    }

    /// Both families' routes from the DXR tables, read through mmap (a full table is a few
    /// hundred thousand range lines).
    fn dxr_routes(&self) -> Result<Vec<(IpNet, u32)>> {
        let tables = super::dxr::MmapDxr {
            direct4: mmap_pinned(&self.pin_dir, map_names::DXR4_DIRECT)?,
            ranges4: mmap_pinned(&self.pin_dir, map_names::DXR4_RANGES)?,
            direct6: mmap_pinned(&self.pin_dir, map_names::DXR6_DIRECT)?,
            ranges6: mmap_pinned(&self.pin_dir, map_names::DXR6_RANGES)?,
            ext6: mmap_pinned(&self.pin_dir, map_names::DXR6_EXT)?,
            xranges6: mmap_pinned(&self.pin_dir, map_names::DXR6_XRANGES)?,
            // Layout version 2 (an upgrade's first start) had no split nodes and no map.
            sub6: if self.pin_dir.join(map_names::DXR6_SUB).exists() {
                Some(mmap_pinned(&self.pin_dir, map_names::DXR6_SUB)?)
            } else {
                None
            },
            default: mmap_pinned(&self.pin_dir, map_names::DXR_DEFAULT)?,
            grace: None,
        };
        Ok(super::dxr::readback::routes(&tables))
    }

    fn dir24_routes(&self) -> Result<Vec<(IpNet, u32)>> {
        let tbl24_data = self.map(map_names::DIR24_TBL24)?;
        let tbl24: Array<&MapData, Dir24Chunk> = Array::try_from(&tbl24_data)?;
        let tbl8_data = self.map(map_names::DIR24_TBL8)?;
        let tbl8: Array<&MapData, Dir24Chunk> = Array::try_from(&tbl8_data)?;
        let default_data = self.map(map_names::DIR24_DEFAULT)?;
        let default: Array<&MapData, u64> = Array::try_from(&default_data)?;

        let mut routes = Vec::new();
        let default_entry = default.get(&0, 0)? as u32;
        if default_entry & DIR24_VALID != 0 {
            routes.push((IpNet::V4(Ipv4Net::default()), default_entry & DIR24_ID_MASK));
        }
        // Runs of equal groups over the 2^32 address space: (first address, group). Entries
        // are compared by group id alone (masked with DIR24_ID_MASK), not by their depth
        // fields: adjacent prefixes of different lengths to one group make one run. Tables
        // pinned by an agent from before depths moved into the entries read the same (their
        // ids are below 2^24, so their depth bits are zero).
        let mut run: Option<(u64, u32)> = None;
        let mut emit = |run: &mut Option<(u64, u32)>, end: u64, next: Option<(u64, u32)>| {
            if run.map(|r| r.1) != next.map(|n| n.1) {
                if let Some((start, group)) = run.take() {
                    for prefix in range_to_prefixes(start, end) {
                        routes.push((IpNet::V4(prefix), group));
                    }
                }
                *run = next;
            }
        };
        for chunk_index in 0..tbl24.len() {
            let chunk = tbl24.get(&chunk_index, 0)?;
            for (i, entry) in chunk.entries.iter().enumerate() {
                let base = (u64::from(chunk_index) << 16) | ((i as u64) << 8);
                if entry & DIR24_EXTENDED != 0 {
                    let group = tbl8.get(&(entry & DIR24_ID_MASK), 0)?;
                    for (j, entry) in group.entries.iter().enumerate() {
                        let address = base | j as u64;
                        let next =
                            (entry & DIR24_VALID != 0).then(|| (address, entry & DIR24_ID_MASK));
                        emit(&mut run, address, next);
                    }
                } else {
                    let next = (entry & DIR24_VALID != 0).then(|| (base, entry & DIR24_ID_MASK));
                    emit(&mut run, base, next);
                }
            }
        }
        emit(&mut run, 1 << 32, None);
        Ok(routes)
    }

    pub fn group(&self, id: u32) -> Result<NexthopGroup> {
        let data = self.map(map_names::NEXTHOP_GROUPS)?;
        let groups: Array<&MapData, NexthopGroup> = Array::try_from(&data)?;
        Ok(groups.get(&id, 0)?)
    }

    pub fn nexthop(&self, slot: u32) -> Result<Nexthop> {
        let data = self.map(map_names::NEXTHOPS)?;
        let nexthops: Array<&MapData, Nexthop> = Array::try_from(&data)?;
        Ok(nexthops.get(&slot, 0)?)
    }

    /// Verdict counters summed over CPUs, indexed by `Verdict`.
    pub fn verdicts(&self) -> Result<Vec<u64>> {
        let data = self.map(map_names::VERDICT_STATS)?;
        let stats: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(&data)?;
        (0..VERDICT_COUNT)
            .map(|i| Ok(stats.get(&i, 0)?.iter().sum()))
            .collect()
    }

    /// The traffic of each nexthop of `ids`, summed over CPUs; the map opened once.
    pub fn nexthops_stats(&self, ids: &[u32]) -> Result<Vec<NexthopStats>> {
        let data = self.map(map_names::NEXTHOP_STATS)?;
        let stats: PerCpuArray<&MapData, NexthopStats> = PerCpuArray::try_from(&data)?;
        ids.iter()
            .map(|id| {
                Ok(stats
                    .get(id, 0)?
                    .iter()
                    .fold(NexthopStats::default(), |sum, cpu| NexthopStats {
                        packets: sum.packets + cpu.packets,
                        bytes: sum.bytes + cpu.bytes,
                    }))
            })
            .collect()
    }

    /// A nexthop's traffic, summed over CPUs.
    pub fn nexthop_stats(&self, id: u32) -> Result<NexthopStats> {
        let data = self.map(map_names::NEXTHOP_STATS)?;
        let stats: PerCpuArray<&MapData, NexthopStats> = PerCpuArray::try_from(&data)?;
        Ok(stats
            .get(&id, 0)?
            .iter()
            .fold(NexthopStats::default(), |sum, cpu| NexthopStats {
                packets: sum.packets + cpu.packets,
                bytes: sum.bytes + cpu.bytes,
            }))
    }
}

/// A pinned array, mmap-ed (it must be `BPF_F_MMAPABLE` and hold `T`s).
fn mmap_pinned<T: Copy>(pin_dir: &Path, name: &str) -> Result<super::mmap::MmapArray<T>> {
    let path = pin_dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    let info = data.info()?;
    anyhow::ensure!(
        info.value_size() as usize == size_of::<T>(),
        "{name}: value size {} is not {}",
        info.value_size(),
        size_of::<T>()
    );
    super::mmap::MmapArray::new(data.fd().as_fd(), info.max_entries())
        .with_context(|| format!("mmap of {name}"))
}

pub(super) fn open_map(pin_dir: &Path, name: &str) -> Result<Map> {
    let path = pin_dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| {
        format!(
            "opening {} (is router-agent running, or did it run with --keep-datapath?)",
            path.display()
        )
    })?;
    Ok(Map::from_map_data(data)?)
}

/// The fewest prefixes covering exactly the addresses `start..end` (end exclusive).
pub fn range_to_prefixes(mut start: u64, end: u64) -> Vec<Ipv4Net> {
    let mut prefixes = Vec::new();
    while start < end {
        // Largest aligned block starting at `start` that fits before `end`.
        let mut size = if start == 0 {
            1u64 << 32
        } else {
            1u64 << start.trailing_zeros().min(32)
        };
        while start + size > end {
            size >>= 1;
        }
        let len = 32 - size.trailing_zeros() as u8;
        prefixes.push(Ipv4Net::new(Ipv4Addr::from(start as u32), len).expect("len <= 32"));
        start += size;
    }
    prefixes
}

/// The gateway address a nexthop record carries.
pub fn nexthop_via(nexthop: &Nexthop) -> IpAddr {
    if nexthop.flags & router_common::NEXTHOP_F_VIA_IPV6 != 0 {
        IpAddr::V6(Ipv6Addr::from(nexthop.via))
    } else {
        IpAddr::V4(Ipv4Addr::new(
            nexthop.via[0],
            nexthop.via[1],
            nexthop.via[2],
            nexthop.via[3],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(start: &str, end_inclusive: &str) -> Vec<String> {
        let start = u64::from(u32::from(start.parse::<Ipv4Addr>().unwrap()));
        let end = u64::from(u32::from(end_inclusive.parse::<Ipv4Addr>().unwrap())) + 1;
        range_to_prefixes(start, end)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn ranges_become_minimal_prefix_sets() {
        assert_eq!(prefixes("10.0.0.0", "10.0.0.255"), ["10.0.0.0/24"]);
        assert_eq!(
            prefixes("10.0.0.128", "10.0.2.255"),
            ["10.0.0.128/25", "10.0.1.0/24", "10.0.2.0/24"]
        );
        assert_eq!(prefixes("0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(prefixes("192.0.2.7", "192.0.2.7"), ["192.0.2.7/32"]);
    }
}
