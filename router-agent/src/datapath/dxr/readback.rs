//! Prefixes back from DXR tables (`show fib`, and adopting a previous run's routes): the
//! fewest prefixes that forward exactly as the tables do, read with the lookup's own rules.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use router_common::{
    DXR_DEFAULT_V4, DXR_DEFAULT_V6, DXR_DEFAULT_VALID, DXR_DESC_SPLIT, DXR_SPLIT_BITS,
    DXR_SPLIT_FANOUT, DXR_VALUE_NONE, DXR4_DIRECT_BITS, DXR6_DIRECT_BITS, DXR6_SPLIT_LEVELS,
    dxr_desc_base, dxr_desc_count, dxr_desc_default, dxr_ext_id,
};

use super::{Arena, Directory, DxrStorage};

/// Every route of both families, as (prefix, group), sorted.
pub fn routes(storage: &impl DxrStorage) -> Vec<(IpNet, u32)> {
    let mut out = Runs::new(32);
    let default = slash0(storage, DXR_DEFAULT_V4);
    for chunk in 0..1u32 << DXR4_DIRECT_BITS {
        let start = u128::from(chunk) << (32 - DXR4_DIRECT_BITS);
        let Some(desc) = storage.descriptor(Directory::Direct4, chunk) else {
            break;
        };
        let chunk_default = value_or(dxr_desc_default(desc), default);
        // A block starts at offset 0 (invariant I4): a leaf alone pushes the default.
        if dxr_desc_count(desc) == 0 {
            out.push(start, chunk_default);
        }
        let base = dxr_desc_base(desc);
        for index in base..base + dxr_desc_count(desc) {
            let entry = storage.range_key(Arena::Ranges4, index).unwrap_or_default();
            let value = storage
                .range_value(Arena::Ranges4, index)
                .unwrap_or(DXR_VALUE_NONE);
            out.push(
                start | u128::from(entry >> 16),
                value_or(value, chunk_default),
            );
        }
    }
    let mut routes = out.finish();

    let mut out = Runs::new(128);
    let default = slash0(storage, DXR_DEFAULT_V6);
    for chunk in 0..1u32 << DXR6_DIRECT_BITS {
        let Some(desc) = storage.descriptor(Directory::Direct6, chunk) else {
            break;
        };
        node6(storage, &mut out, chunk, desc, 0, 0, default);
    }
    routes.extend(out.finish());
    routes.sort();
    routes
}

/// The routes of an IPv6 node (a chunk at level 0, or a split node's child) starting at the
/// chunk-relative key `start`; `outer`: the answer where the node has none of its own.
fn node6(
    storage: &impl DxrStorage,
    out: &mut Runs,
    chunk: u32,
    desc: u64,
    level: u32,
    start: u64,
    outer: Option<u32>,
) {
    let hi_start = u64::from(chunk) << (64 - DXR6_DIRECT_BITS) | start >> DXR6_DIRECT_BITS;
    let node_default = value_or(dxr_desc_default(desc), outer);
    let count = dxr_desc_count(desc);
    if count == DXR_DESC_SPLIT && level < DXR6_SPLIT_LEVELS {
        let shift = 64 - DXR_SPLIT_BITS * (level + 1);
        for child in 0..DXR_SPLIT_FANOUT {
            let index = dxr_desc_base(desc) * DXR_SPLIT_FANOUT + child;
            let sub = storage
                .descriptor(Directory::Sub6, index)
                .unwrap_or_default();
            let child_start = start | u64::from(child) << shift;
            node6(
                storage,
                out,
                chunk,
                sub,
                level + 1,
                child_start,
                node_default,
            );
        }
        return;
    }
    // A block starts at the node's first key (invariant I4): a leaf alone pushes the default.
    if count == 0 || count == DXR_DESC_SPLIT {
        out.push(u128::from(hi_start) << 64, node_default);
        return;
    }
    let chunk_start = u64::from(chunk) << (64 - DXR6_DIRECT_BITS);
    let base = dxr_desc_base(desc);
    for index in base..base + count {
        let entry = storage.range_key(Arena::Ranges6, index).unwrap_or_default();
        let value = storage
            .range_value(Arena::Ranges6, index)
            .unwrap_or(DXR_VALUE_NONE);
        let hi = u128::from(chunk_start | entry >> 16) << 64;
        match dxr_ext_id(value) {
            Some(id) => {
                let ext = storage.descriptor(Directory::Ext6, id).unwrap_or_default();
                let ext_default = value_or(dxr_desc_default(ext), node_default);
                if dxr_desc_count(ext) == 0 {
                    out.push(hi, ext_default);
                }
                let xbase = dxr_desc_base(ext);
                for x in xbase..xbase + dxr_desc_count(ext) {
                    let low = storage.range_key(Arena::XRanges6, x).unwrap_or_default();
                    let long = storage
                        .range_value(Arena::XRanges6, x)
                        .unwrap_or(DXR_VALUE_NONE);
                    out.push(hi | u128::from(low), value_or(long, ext_default));
                }
            }
            None => out.push(hi, value_or(value, node_default)),
        }
    }
}

fn slash0(storage: &impl DxrStorage, family: u32) -> Option<u32> {
    let entry = storage.default_entry(family);
    (entry & DXR_DEFAULT_VALID != 0).then_some((entry & 0xFFFF) as u32)
}

fn value_or(value: u16, fallback: Option<u32>) -> Option<u32> {
    if value == DXR_VALUE_NONE {
        fallback
    } else {
        Some(u32::from(value))
    }
}

/// Runs of equal answers over one family's address space, turned into prefixes.
struct Runs {
    bits: u32,
    run: Option<(u128, u32)>,
    routes: Vec<(IpNet, u32)>,
}

impl Runs {
    fn new(bits: u32) -> Self {
        Self {
            bits,
            run: None,
            routes: Vec::new(),
        }
    }

    /// From `start` on (until the next push), addresses go to `group` (`None`: no route).
    fn push(&mut self, start: u128, group: Option<u32>) {
        if self.run.map(|(_, g)| g) == group {
            return;
        }
        // Starts only grow in tables we wrote; anything else must not underflow.
        if let Some((first, g)) = self.run.take()
            && start > first
        {
            self.emit(first, start - 1, g);
        }
        self.run = group.map(|g| (start, g));
    }

    fn finish(mut self) -> Vec<(IpNet, u32)> {
        let last = if self.bits == 128 {
            u128::MAX
        } else {
            (1u128 << self.bits) - 1
        };
        if let Some((first, g)) = self.run.take() {
            self.emit(first, last, g);
        }
        self.routes
    }

    /// The fewest prefixes covering exactly `first..=last`.
    fn emit(&mut self, mut first: u128, last: u128, group: u32) {
        loop {
            // The largest aligned block at `first` that ends by `last`.
            let mut size_bits = first.trailing_zeros().min(self.bits);
            while size_bits > 0 && block_end(first, size_bits) > last {
                size_bits -= 1;
            }
            let len = (self.bits - size_bits) as u8;
            let prefix = if self.bits == 32 {
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(first as u32), len).expect("len <= 32"))
            } else {
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(first), len).expect("len <= 128"))
            };
            self.routes.push((prefix, group));
            let end = block_end(first, size_bits);
            if end >= last {
                return;
            }
            first = end + 1;
        }
    }
}

/// The last address of the block of 2^`size_bits` addresses starting at `first`.
fn block_end(first: u128, size_bits: u32) -> u128 {
    if size_bits >= 128 {
        u128::MAX
    } else {
        first.saturating_add((1u128 << size_bits) - 1)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use rand::{Rng, SeedableRng, rngs::SmallRng};

    use super::*;
    use crate::datapath::dxr::{Dxr, VecStorage};
    use crate::fib::reference::ReferenceLpm;
    use crate::fib::synthetic::PrefixShape;

    /// The prefixes read back forward every address as the tables do (checked with a
    /// reference LPM over them), and a table of one family reads back as nothing of the other.
    #[test]
    fn routes_read_back_forward_as_the_tables() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut dxr = Dxr::new(VecStorage::new(1 << 14, 1 << 14, 1 << 12, 1 << 12));
        let mut changes = Vec::new();
        for i in 0..20_000u32 {
            let prefix = if i % 4 == 3 {
                IpNet::V6(PrefixShape::ALL_LENGTHS.v6(&mut rng))
            } else {
                IpNet::V4(PrefixShape::ALL_LENGTHS.v4(&mut rng))
            };
            changes.push((prefix, Some(2 + i % 300)));
        }
        assert_eq!(dxr.apply(&mut changes), vec![]);
        let routes = routes(dxr.storage());
        let (mut v4, mut v6) = (ReferenceLpm::new(), ReferenceLpm::new());
        for &(prefix, group) in &routes {
            match prefix {
                IpNet::V4(p) => v4.insert(p, group),
                IpNet::V6(p) => v6.insert(p, group),
            };
        }
        for &(prefix, _) in changes.iter().take(5_000) {
            for addr in [prefix.network(), prefix.broadcast()] {
                let read_back = match addr {
                    IpAddr::V4(a) => v4.lookup(a).copied(),
                    IpAddr::V6(a) => v6.lookup(a).copied(),
                };
                assert_eq!(read_back, dxr.lookup(addr), "{addr}");
            }
        }
        for _ in 0..100_000 {
            let addr = if rng.random_bool(0.5) {
                IpAddr::V4(rng.random::<u32>().into())
            } else {
                IpAddr::V6(rng.random::<u128>().into())
            };
            let read_back = match addr {
                IpAddr::V4(a) => v4.lookup(a).copied(),
                IpAddr::V6(a) => v6.lookup(a).copied(),
            };
            assert_eq!(read_back, dxr.lookup(addr), "{addr}");
        }
        let empty = Dxr::new(VecStorage::new(1, 1, 1, 1));
        assert_eq!(super::routes(empty.storage()), vec![]);
    }
}
