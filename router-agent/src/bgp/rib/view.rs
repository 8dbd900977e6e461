//! What the RIB shows: routes with every path and its status, a peer's Adj-RIB-In, and an
//! estimate of its memory.

use std::mem::size_of;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::entry::PrefixEntry;
use super::{BestRoute, Path, PathStatus, PeerId, Rib};
use crate::bgp::policy::ImportRejection;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathView {
    pub path: Path,
    pub status: PathStatus,
}

/// A prefix and every path to it, best first, for `show routes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteView {
    pub prefix: IpNet,
    pub paths: Vec<PathView>,
}

/// Sizes and approximate heap bytes of the RIB (see [`Rib::memory_estimate`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    pub prefixes: usize,
    pub paths: usize,
    pub attribute_sets: usize,
    pub next_hops: usize,
    /// Prefix tables (B-tree nodes).
    pub table_bytes: usize,
    /// Per-prefix path arrays.
    pub path_bytes: usize,
    /// Interned attributes and the next hop table.
    pub shared_bytes: usize,
}

impl MemoryEstimate {
    pub fn total_bytes(&self) -> usize {
        self.table_bytes + self.path_bytes + self.shared_bytes
    }
}

impl Rib {
    /// The Loc-RIB route of `prefix`.
    pub fn best(&self, prefix: &IpNet) -> Option<BestRoute> {
        let entry = match prefix.trunc() {
            IpNet::V4(net) => self.v4.get(&net),
            IpNet::V6(net) => self.v6.get(&net),
        }?;
        self.context().best_route(entry)
    }

    /// Every prefix (IPv4 then IPv6, in prefix order) with all its paths and their status.
    pub fn routes(&self) -> impl Iterator<Item = RouteView> + '_ {
        let v4 = self.v4.iter().map(|(net, entry)| (IpNet::V4(*net), entry));
        let v6 = self.v6.iter().map(|(net, entry)| (IpNet::V6(*net), entry));
        v4.chain(v6)
            .map(|(prefix, entry)| self.route_view(prefix, entry))
    }

    /// The paths `peer` sent (its Adj-RIB-In, pre-policy), with whether import accepted each.
    pub fn adj_rib_in(&self, peer: PeerId) -> impl Iterator<Item = (IpNet, Path, bool)> + '_ {
        let context = self.context();
        let v4 = self.v4.iter().map(|(net, entry)| (IpNet::V4(*net), entry));
        let v6 = self.v6.iter().map(|(net, entry)| (IpNet::V6(*net), entry));
        v4.chain(v6).filter_map(move |(prefix, entry)| {
            let index = entry.paths().iter().position(|path| path.peer == peer)?;
            let accepted = index < entry.accepted();
            Some((prefix, context.view(&entry.paths()[index]), accepted))
        })
    }

    fn route_view(&self, prefix: IpNet, entry: &PrefixEntry) -> RouteView {
        let context = self.context();
        let paths = entry
            .paths()
            .iter()
            .enumerate()
            .map(|(index, stored)| {
                let path = context.view(stored);
                let status = if index == 0 && entry.installed() > 0 {
                    PathStatus::Best
                } else if index < entry.installed() {
                    PathStatus::Multipath
                } else if index < entry.accepted() {
                    context
                        .next_hop_bar(stored)
                        .unwrap_or(PathStatus::Candidate)
                } else {
                    let peer = &self.peers[&stored.peer];
                    // Re-evaluated rather than stored (that would cost a byte per path); the
                    // policy only changes through reapply_import, which re-sorts the paths.
                    let reason = peer
                        .import
                        .evaluate(&prefix, &stored.attrs, &peer.info)
                        .err()
                        .unwrap_or(ImportRejection::Denied);
                    PathStatus::Rejected(reason)
                };
                PathView { path, status }
            })
            .collect();
        RouteView { prefix, paths }
    }

    /// Prefixes held (with at least one path, accepted or not).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap use. B-tree nodes are counted at the fill ratio random insertion
    /// leaves them with (about 2/3), so this is an estimate, not an allocator measurement.
    pub fn memory_estimate(&self) -> MemoryEstimate {
        // A leaf holds up to 11 entries plus a parent pointer and two u16s.
        const BTREE_CAPACITY: usize = 11;
        const FILL: f64 = 2.0 / 3.0;
        fn table_bytes<K>(len: usize) -> usize {
            let node = size_of::<usize>()
                + 2 * size_of::<u16>()
                + BTREE_CAPACITY * (size_of::<K>() + size_of::<PrefixEntry>());
            (len as f64 / (BTREE_CAPACITY as f64 * FILL)).ceil() as usize * node
        }
        // Allocators round small blocks up and add a header; 16-byte granularity plus 8.
        fn allocation(bytes: usize) -> usize {
            if bytes == 0 {
                0
            } else {
                (bytes + 8).div_ceil(16) * 16
            }
        }
        let entries = self.v4.values().chain(self.v6.values());
        let (mut paths, mut path_bytes) = (0, 0);
        for entry in entries {
            paths += entry.paths().len();
            path_bytes += allocation(entry.heap_bytes());
        }
        MemoryEstimate {
            prefixes: self.len(),
            paths,
            attribute_sets: self.interner.len(),
            next_hops: self.next_hops.len(),
            table_bytes: table_bytes::<Ipv4Net>(self.v4.len())
                + table_bytes::<Ipv6Net>(self.v6.len()),
            path_bytes,
            shared_bytes: self.interner.memory_estimate() + self.next_hops.memory_estimate(),
        }
    }
}
