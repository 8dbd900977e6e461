//! The XDP datapath: loads the program, owns its maps, and applies FIB operations to them.
//!
//! A datapath is built complete before it takes traffic: maps are created unpinned, filled
//! from the FIB, and only then attached (replacing a previous agent's program atomically
//! through its pinned link) and pinned. A restart or upgrade therefore never shows packets an
//! empty or half-written table; a crash leaves the pinned link and maps forwarding. The pin
//! directory's `STAMP` (`stamp.rs`) lets the next run adopt the previous one's BGP routes
//! (`adopt.rs`).

pub mod adopt;
mod batch;
pub mod dir24;
pub mod dxr;
pub mod grace;
pub mod interfaces;
mod local;
pub mod mmap;
pub mod pinned;
pub mod pinned_links;
mod pins;
pub use pins::link_pin_path;
mod stamp;
mod trie_pending;
pub mod xdp_log;

use std::{collections::BTreeMap, net::IpAddr, os::fd::AsFd, path::PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{DevMapHash, LpmTrie, Map, MapData, PerCpuArray, PerCpuValues, lpm_trie::Key},
    programs::{Xdp, links::PinnedLink},
    util::nr_cpus,
};
use ipnet::{IpNet, Ipv4Net};
use router_common::{
    DIR24_TBL24_CHUNKS, DXR4_DIRECT_ENTRIES, DXR6_DIRECT_ENTRIES, DXR6_EXT_ENTRIES,
    DXR6_SUB_ENTRIES, Dir24Chunk, ENGINE_GLOBAL, LookupEngine, MAX_DIR24_TBL8_GROUPS,
    MAX_ROUTES_V4, MAX_ROUTES_V6, NEXTHOP_BUCKETS, Nexthop, NexthopGroup, NexthopOwner,
    NexthopStats, map_names,
};

use crate::fib::{Batch, FibOp};
use dir24::{Dir24, Dir24Storage};
use dxr::{Dxr, MmapDxr};
use mmap::MmapArray;
use trie_pending::TriePending;

/// The forwarding program, built by build.rs from `router-ebpf`.
pub static ROUTER_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/router.bpf.o"));
/// Benchmark traffic generator and sink programs.
pub static TRAFFICGEN_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/trafficgen.bpf.o"));
/// Benchmark instrument: one read of a line of a BPF array per run (`bench cost`).
pub static READ_PROBE_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/read_probe.bpf.o"));

pub const PROGRAM_NAME: &str = "hostrouter";
pub const FLOW_HASH_SEED_GLOBAL: &str = "FLOW_HASH_SEED";

#[derive(Clone, Debug)]
pub struct DatapathOptions {
    pub engine: LookupEngine,
    pub pin_dir: PathBuf,
    pub flow_hash_seed: u32,
    pub max_routes_v4: u32,
    pub max_routes_v6: u32,
    pub dir24_tbl8_groups: u32,
    /// DXR arenas in 64-byte lines, and extension descriptors (see [`dxr::MmapDxr`]).
    pub dxr: DxrSizes,
    /// The program's debug events on (`xdp_log.rs`); off, the verifier prunes them.
    pub xdp_log: bool,
}

/// Sizes of the DXR engine's arenas (`router_common::DXR*_LINES_FULL_TABLE` for a full table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DxrSizes {
    pub lines_v4: u32,
    pub lines_v6: u32,
    pub xlines: u32,
}

impl DxrSizes {
    /// Room for a full table (1M IPv4 + 200k IPv6 routes), scaled up for larger ones.
    pub fn for_routes(v4: usize, v6: usize) -> Self {
        let scale = |full: u32, routes: usize, full_routes: usize| {
            let lines = u64::from(full) * routes.max(full_routes) as u64 / full_routes as u64;
            lines.min(u64::from(u32::MAX / 16)) as u32
        };
        Self {
            lines_v4: scale(router_common::DXR4_LINES_FULL_TABLE, v4, 1_000_000),
            lines_v6: scale(router_common::DXR6_LINES_FULL_TABLE, v6, 200_000),
            xlines: scale(router_common::DXRX_LINES_FULL_TABLE, v6, 200_000),
        }
    }
}

impl DatapathOptions {
    pub fn new(engine: LookupEngine, pin_dir: impl Into<PathBuf>) -> Self {
        Self {
            engine,
            pin_dir: pin_dir.into(),
            flow_hash_seed: rand::random(),
            max_routes_v4: MAX_ROUTES_V4,
            max_routes_v6: MAX_ROUTES_V6,
            dir24_tbl8_groups: MAX_DIR24_TBL8_GROUPS,
            dxr: DxrSizes::for_routes(0, 0),
            xdp_log: false,
        }
    }
}

/// DIR-24-8 tables as the XDP program sees them, through mmap.
pub struct MmapDir24 {
    tbl24: MmapArray<Dir24Chunk>,
    tbl8: MmapArray<Dir24Chunk>,
    /// One entry; mmap-able arrays pad the `u32` to 8 bytes.
    default: MmapArray<u64>,
}

impl Dir24Storage for MmapDir24 {
    fn tbl24(&self, index: u32) -> u32 {
        self.tbl24.load_u32(index >> 8, (index & 0xff) as usize)
    }
    fn set_tbl24(&mut self, index: u32, entry: u32) {
        self.tbl24
            .store_u32(index >> 8, (index & 0xff) as usize, entry);
    }
    fn tbl8(&self, group: u32, index: u8) -> u32 {
        self.tbl8.load_u32(group, usize::from(index))
    }
    fn set_tbl8(&mut self, group: u32, index: u8, entry: u32) {
        self.tbl8.store_u32(group, usize::from(index), entry);
    }
    fn default_entry(&self) -> u32 {
        self.default.load_u32(0, 0)
    }
    fn set_default_entry(&mut self, entry: u32) {
        self.default.store_u32(0, 0, entry);
    }
    fn tbl8_groups(&self) -> u32 {
        self.tbl8.entries()
    }
}

pub struct Datapath {
    ebpf: Ebpf,
    options: DatapathOptions,
    maps: BTreeMap<&'static str, Map>,
    dir24: Option<Dir24<MmapDir24>>,
    dxr: Option<Dxr<MmapDxr>>,
    groups: MmapArray<NexthopGroup>,
    nexthops: MmapArray<Nexthop>,
    /// Beside `nexthops`, slot for slot: whose nexthop it is (for the next run's adoption).
    owners: MmapArray<NexthopOwner>,
    links: BTreeMap<String, PinnedLink>,
    /// Interfaces whose pinned link (a previous run's) now runs this program.
    replaced: std::collections::BTreeSet<String>,
    pinned: bool,
    interfaces: interfaces::InterfaceState,
    local: local::LocalAddresses,
}

impl Datapath {
    /// Loads the program with fresh, unpinned, empty maps sized for `options`. A previous
    /// agent's pinned maps are never written: `pin_maps` replaces them, and what is taken over
    /// from them is read before, through the FIB (`adopt.rs`, only from maps whose stamp has
    /// this layout version).
    pub fn load(options: DatapathOptions) -> Result<Self> {
        let engine = options.engine as u32;
        let uses_trie_v4 = options.engine == LookupEngine::LpmTrie;
        let uses_trie_v6 = !matches!(options.engine, LookupEngine::Kernel | LookupEngine::Dxr);
        let uses_dir24 = options.engine == LookupEngine::Dir24;
        let uses_dxr = options.engine == LookupEngine::Dxr;
        // Tables an engine does not use shrink to one entry (the verifier prunes their code).
        let size = |used: bool, n: u32| if used { n } else { 1 };
        let mut ebpf = EbpfLoader::new()
            .override_global(ENGINE_GLOBAL, &engine, true)
            .override_global(FLOW_HASH_SEED_GLOBAL, &options.flow_hash_seed, true)
            .override_global(xdp_log::XDP_LOG_GLOBAL, &u8::from(options.xdp_log), true)
            .map_max_entries("AYA_LOGS", xdp_log::ring_bytes(options.xdp_log))
            .map_max_entries(
                map_names::ROUTES_V4,
                size(uses_trie_v4, options.max_routes_v4),
            )
            .map_max_entries(
                map_names::ROUTES_V6,
                size(uses_trie_v6, options.max_routes_v6),
            )
            .map_max_entries(map_names::DIR24_TBL24, size(uses_dir24, DIR24_TBL24_CHUNKS))
            .map_max_entries(
                map_names::DIR24_TBL8,
                size(uses_dir24, options.dir24_tbl8_groups),
            )
            .map_max_entries(map_names::DXR4_DIRECT, size(uses_dxr, DXR4_DIRECT_ENTRIES))
            .map_max_entries(map_names::DXR4_RANGES, size(uses_dxr, options.dxr.lines_v4))
            .map_max_entries(map_names::DXR6_DIRECT, size(uses_dxr, DXR6_DIRECT_ENTRIES))
            .map_max_entries(map_names::DXR6_RANGES, size(uses_dxr, options.dxr.lines_v6))
            .map_max_entries(map_names::DXR6_EXT, size(uses_dxr, DXR6_EXT_ENTRIES))
            .map_max_entries(map_names::DXR6_XRANGES, size(uses_dxr, options.dxr.xlines))
            .map_max_entries(map_names::DXR6_SUB, size(uses_dxr, DXR6_SUB_ENTRIES))
            .load(ROUTER_OBJECT)
            .context("loading the XDP object")?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .context("program missing from the object")?
            .try_into()?;
        program
            .load()
            .context("the kernel rejected the XDP program")?;

        let mut maps = BTreeMap::new();
        for name in map_names::ALL {
            let map = ebpf
                .take_map(name)
                .with_context(|| format!("map {name} missing from the object"))?;
            maps.insert(name, map);
        }
        let groups = mmap_array(&maps, map_names::NEXTHOP_GROUPS)?;
        let nexthops = mmap_array(&maps, map_names::NEXTHOPS)?;
        let owners = mmap_array(&maps, map_names::NEXTHOP_OWNERS)?;
        let dir24 = if uses_dir24 {
            Some(Dir24::new(MmapDir24 {
                tbl24: mmap_array(&maps, map_names::DIR24_TBL24)?,
                tbl8: mmap_array(&maps, map_names::DIR24_TBL8)?,
                default: mmap_array(&maps, map_names::DIR24_DEFAULT)?,
            }))
        } else {
            None
        };
        let dxr = if uses_dxr {
            let mut dxr = Dxr::new(MmapDxr {
                direct4: mmap_array(&maps, map_names::DXR4_DIRECT)?,
                ranges4: mmap_array(&maps, map_names::DXR4_RANGES)?,
                direct6: mmap_array(&maps, map_names::DXR6_DIRECT)?,
                ranges6: mmap_array(&maps, map_names::DXR6_RANGES)?,
                ext6: mmap_array(&maps, map_names::DXR6_EXT)?,
                xranges6: mmap_array(&maps, map_names::DXR6_XRANGES)?,
                sub6: Some(mmap_array(&maps, map_names::DXR6_SUB)?),
                default: mmap_array(&maps, map_names::DXR_DEFAULT)?,
                grace: grace::BackgroundGrace::new()
                    .inspect_err(|err| {
                        tracing::warn!(%err, "no map-in-map grace periods: DXR waits out quarantines")
                    })
                    .ok(),
            });
            // No reader until `attach`: a bulk load reuses freed blocks at once.
            dxr.set_published(false);
            Some(dxr)
        } else {
            None
        };
        Ok(Self {
            ebpf,
            options,
            maps,
            dir24,
            dxr,
            groups,
            nexthops,
            owners,
            links: BTreeMap::new(),
            replaced: Default::default(),
            pinned: false,
            interfaces: interfaces::InterfaceState::default(),
            local: local::LocalAddresses::default(),
        })
    }

    pub fn engine(&self) -> LookupEngine {
        self.options.engine
    }

    pub fn program_mut(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(PROGRAM_NAME)
            .expect("loaded")
            .try_into()
            .expect("an XDP program")
    }

    /// Allows redirects to `ifindex`. The kernel resolves the ifindex in the calling
    /// thread's network namespace: call this from the namespace the program forwards in, or
    /// the entry names another namespace's device.
    pub fn add_egress_port(&mut self, ifindex: u32) -> Result<()> {
        let mut ports: DevMapHash<&mut MapData> =
            DevMapHash::try_from(self.map_mut(map_names::EGRESS_PORTS))?;
        ports
            .insert(ifindex, ifindex, None, 0)
            .with_context(|| format!("adding ifindex {ifindex} to EGRESS_PORTS"))?;
        self.interfaces.attached.insert(ifindex);
        Ok(())
    }

    pub fn remove_egress_port(&mut self, ifindex: u32) -> Result<()> {
        let mut ports: DevMapHash<&mut MapData> =
            DevMapHash::try_from(self.map_mut(map_names::EGRESS_PORTS))?;
        ports
            .remove(ifindex)
            .with_context(|| format!("removing ifindex {ifindex} from EGRESS_PORTS"))?;
        self.interfaces.attached.remove(&ifindex);
        self.forget_neighbors(ifindex)
    }

    fn map_mut(&mut self, name: &str) -> &mut Map {
        self.maps.get_mut(name).expect("all maps are taken at load")
    }

    /// Applies a FIB batch in order. Every op is safe on its own, so a failing one (a full
    /// table) is reported and the rest still applied. A route that failed is missing from the
    /// datapath: its packets follow whatever covering route the datapath holds (or go to the
    /// kernel when none does), so a full map is an error to fix, not a fallback.
    pub fn apply(&mut self, batch: &Batch) -> Result<()> {
        self.apply_ops(batch.ops())
    }

    /// `apply` for operations not from a FIB batch (tests, benchmarks writing records by
    /// hand), in the same order rules.
    pub fn apply_ops<'a>(&mut self, ops: impl IntoIterator<Item = &'a FibOp>) -> Result<()> {
        let mut errors = Vec::new();
        // LPM trie route changes go in batches of consecutive route ops (same order).
        let mut pending = TriePending::default();
        // DIR-24-8 and DXR route changes are gathered too, and written in address order.
        let mut pending_dir24 = Vec::new();
        let mut pending_dxr = Vec::new();
        for op in ops {
            let route = match op {
                FibOp::SetRoute { prefix, group } => Some((prefix, Some(*group))),
                FibOp::DeleteRoute { prefix } => Some((prefix, None)),
                _ => None,
            };
            // The local-source check follows host routes to GROUP_LOCAL, whatever the engine
            // (the kernel engine too: `bpf_fib_lookup` does not validate sources).
            if let Some((prefix, group)) = route
                && let Err(err) = self.track_local_route(prefix, group)
            {
                errors.push(err);
            }
            let result = match route {
                Some((IpNet::V4(v4), group)) if self.dir24.is_some() => {
                    pending_dir24.push((*v4, group));
                    Ok(())
                }
                Some((prefix, group)) if self.dxr.is_some() => {
                    pending_dxr.push((*prefix, group));
                    Ok(())
                }
                Some((prefix, group)) => match self.trie_key(prefix) {
                    Some(key) => match group {
                        Some(group) => pending.set(self, prefix, &key, group),
                        None => pending.delete(self, prefix, &key),
                    },
                    None => Ok(()), // the kernel engine: the kernel FIB has the route
                },
                None => {
                    // Route changes commute with each other, not with nexthop and group ops.
                    errors.extend(self.flush_dir24(&mut pending_dir24));
                    errors.extend(self.flush_dxr(&mut pending_dxr));
                    pending
                        .flush(self)
                        .and_then(|()| self.apply_op(op).with_context(|| format!("{op:?}")))
                }
            };
            if let Err(err) = result {
                errors.push(err);
            }
        }
        errors.extend(self.flush_dir24(&mut pending_dir24));
        errors.extend(self.flush_dxr(&mut pending_dxr));
        if let Err(err) = pending.flush(self) {
            errors.push(err);
        }
        match errors.len() {
            0 => Ok(()),
            n => Err(errors.swap_remove(0).context(format!(
                "{n} datapath operation(s) failed; their prefixes may follow a covering route"
            ))),
        }
    }

    /// The LPM trie key of a route that lives in a trie under this engine.
    fn trie_key(&self, prefix: &IpNet) -> Option<Vec<u8>> {
        // Checked before allocating: DIR-24-8 routes (most of a table) take no trie key.
        if matches!(
            (prefix, self.options.engine),
            (_, LookupEngine::Kernel | LookupEngine::Dxr) | (IpNet::V4(_), LookupEngine::Dir24)
        ) {
            return None;
        }
        let mut key = Vec::with_capacity(20);
        key.extend_from_slice(&u32::from(prefix.prefix_len()).to_ne_bytes());
        match prefix {
            IpNet::V4(v4) => key.extend_from_slice(&v4.addr().octets()),
            IpNet::V6(v6) => key.extend_from_slice(&v6.addr().octets()),
        }
        Some(key)
    }

    pub(super) fn map_fd(&self, name: &str) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match &self.maps[name] {
            Map::LpmTrie(data) | Map::Array(data) => data.fd().as_fd().as_raw_fd(),
            _ => unreachable!("{name} is an array or a trie"),
        }
    }

    fn apply_op(&mut self, op: &FibOp) -> Result<()> {
        match op {
            FibOp::WriteNexthop {
                slot,
                nexthop,
                owner,
            } => {
                check_index(*slot, self.nexthops.entries(), "nexthop slot")?;
                self.nexthops.write_unpublished(*slot, nexthop);
                if *slot < self.owners.entries() {
                    self.owners.write_unpublished(*slot, owner);
                }
            }
            FibOp::WriteGroup { id, group } => {
                check_index(*id, self.groups.entries(), "nexthop group")?;
                self.write_group(*id, group);
            }
            FibOp::ClearGroup { id } => {
                check_index(*id, self.groups.entries(), "nexthop group")?;
                self.write_group(*id, &NexthopGroup::EMPTY);
            }
            FibOp::SetRoute { .. } | FibOp::DeleteRoute { .. } => {
                unreachable!("apply gathers route ops for the tries and DIR-24-8")
            }
            FibOp::ResetNexthopStats { id } => {
                let mut stats: PerCpuArray<&mut MapData, NexthopStats> =
                    PerCpuArray::try_from(self.map_mut(map_names::NEXTHOP_STATS))?;
                let cpus = nr_cpus().map_err(|(what, err)| anyhow!("{what}: {err}"))?;
                let zeros = PerCpuValues::try_from(vec![NexthopStats::default(); cpus])?;
                stats.set(*id, zeros, 0)?;
            }
            FibOp::SetNeighbor { ifindex, addr, mac } => {
                self.apply_neighbor(*ifindex, *addr, Some(*mac))?
            }
            FibOp::DeleteNeighbor { ifindex, addr } => {
                self.apply_neighbor(*ifindex, *addr, None)?
            }
        }
        Ok(())
    }

    /// Writes a group record: the buckets the program reads one 32-bit store at a time (a
    /// reader sees each bucket old or new, never torn), then the members list (only `show`
    /// reads it; a dump racing this write may see a mix), then the egress interfaces and flags
    /// strict RPF reads (each word old or new: for the moment of the change, a source may be
    /// judged by either member set).
    fn write_group(&mut self, id: u32, group: &NexthopGroup) {
        for (bucket, &slot) in group.buckets.iter().enumerate() {
            if self.groups.load_u32(id, bucket) != slot {
                self.groups.store_u32(id, bucket, slot);
            }
        }
        // `members` follows `buckets` in the record.
        for (index, &slot) in group.members.iter().enumerate() {
            self.groups.store_u32(id, NEXTHOP_BUCKETS + index, slot);
        }
        let egress_at = 2 * NEXTHOP_BUCKETS;
        for (index, &ifindex) in group.egress.iter().enumerate() {
            self.groups.store_u32(id, egress_at + index, ifindex);
        }
        self.groups
            .store_u32(id, egress_at + group.egress.len(), group.flags);
    }

    /// A group record as the program reads it (tests, `show`).
    pub fn group(&self, id: u32) -> Result<NexthopGroup> {
        check_index(id, self.groups.entries(), "nexthop group")?;
        Ok(self.groups.get(id))
    }

    /// Writes the gathered DIR-24-8 route changes; returns one error per failed change.
    fn flush_dir24(&mut self, pending: &mut Vec<(Ipv4Net, Option<u32>)>) -> Vec<anyhow::Error> {
        let Some(dir24) = self.dir24.as_mut() else {
            return Vec::new();
        };
        let errors = dir24.apply(pending);
        pending.clear();
        errors.into_iter().map(anyhow::Error::from).collect()
    }

    /// Writes the gathered DXR route changes; returns one error per failed change.
    fn flush_dxr(&mut self, pending: &mut Vec<(IpNet, Option<u32>)>) -> Vec<anyhow::Error> {
        let Some(dxr) = self.dxr.as_mut() else {
            return Vec::new();
        };
        let errors = dxr.apply(pending);
        pending.clear();
        errors.into_iter().map(anyhow::Error::from).collect()
    }

    /// Where the XDP program would send `addr` (for tests and `show`): the group id.
    pub fn lookup_group(&self, addr: IpAddr) -> Result<Option<u32>> {
        match (addr, self.options.engine) {
            (_, LookupEngine::Kernel) => bail!("the kernel engine has no routes of its own"),
            (addr, LookupEngine::Dxr) => Ok(self.dxr.as_ref().expect("tables").lookup(addr)),
            (IpAddr::V4(v4), LookupEngine::Dir24) => {
                Ok(self.dir24.as_ref().expect("tables").lookup(v4))
            }
            (IpAddr::V4(v4), _) => {
                let trie: LpmTrie<&MapData, [u8; 4], u32> =
                    LpmTrie::try_from(&self.maps[map_names::ROUTES_V4])?;
                optional(trie.get(&Key::new(32, v4.octets()), 0))
            }
            (IpAddr::V6(v6), _) => {
                let trie: LpmTrie<&MapData, [u8; 16], u32> =
                    LpmTrie::try_from(&self.maps[map_names::ROUTES_V6])?;
                optional(trie.get(&Key::new(128, v6.octets()), 0))
            }
        }
    }

    /// Verdict counters summed over CPUs, indexed by `router_common::Verdict`.
    pub fn verdict_counts(&self) -> Result<Vec<u64>> {
        let stats: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(&self.maps[map_names::VERDICT_STATS])?;
        (0..router_common::VERDICT_COUNT)
            .map(|i| Ok(stats.get(&i, 0)?.iter().sum()))
            .collect()
    }

    /// A nexthop's packet and byte counters summed over CPUs.
    pub fn nexthop_stats(&self, id: u32) -> Result<NexthopStats> {
        let stats: PerCpuArray<&MapData, NexthopStats> =
            PerCpuArray::try_from(&self.maps[map_names::NEXTHOP_STATS])?;
        Ok(stats
            .get(&id, 0)?
            .iter()
            .fold(NexthopStats::default(), |sum, cpu| NexthopStats {
                packets: sum.packets + cpu.packets,
                bytes: sum.bytes + cpu.bytes,
            }))
    }

    /// Lets DIR-24-8 reuse TBL8 groups freed long enough ago that no reader holds them.
    pub fn release_quarantined(&mut self, now: std::time::Instant) {
        if let Some(dir24) = self.dir24.as_mut() {
            dir24.release_quarantined(now);
        }
        if let Some(dxr) = self.dxr.as_mut() {
            dxr.release_quarantined(now);
        }
    }

    /// Userspace bookkeeping of the DIR-24-8 tables, in bytes.
    pub fn dir24_bookkeeping_bytes(&self) -> usize {
        self.dir24.as_ref().map_or(0, Dir24::memory_bytes)
    }

    /// The DXR tables, if the engine is DXR (benchmarks: bytes, quarantine waits).
    pub fn dxr(&self) -> Option<&Dxr<MmapDxr>> {
        self.dxr.as_ref()
    }

    /// Tells the DXR writer that the program may now read its tables (first attach).
    fn publish_tables(&mut self) {
        if let Some(dxr) = self.dxr.as_mut() {
            dxr.set_published(true);
        }
    }
}

fn optional(result: Result<u32, aya::maps::MapError>) -> Result<Option<u32>> {
    match result {
        Ok(group) => Ok(Some(group)),
        Err(aya::maps::MapError::KeyNotFound) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

fn check_index(index: u32, entries: u32, what: &str) -> Result<()> {
    if index >= entries {
        bail!("{what} {index} out of range (map holds {entries})");
    }
    Ok(())
}

fn mmap_array<T: Copy>(maps: &BTreeMap<&str, Map>, name: &str) -> Result<MmapArray<T>> {
    let Map::Array(data) = &maps[name] else {
        bail!("map {name} is not an array");
    };
    let info = data.info()?;
    if info.value_size() as usize != size_of::<T>() {
        bail!(
            "map {name}: value size {} does not match {} (agent and XDP object disagree)",
            info.value_size(),
            size_of::<T>()
        );
    }
    MmapArray::new(data.fd().as_fd(), info.max_entries())
        .with_context(|| format!("mmap of {name} (needs BPF_F_MMAPABLE)"))
}
