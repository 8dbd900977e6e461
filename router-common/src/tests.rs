//! Layout checks: what the pinned maps look like, and that `LAYOUT_VERSION` follows it.

use super::*;

#[test]
fn layouts_fit_mmapable_arrays() {
    // mmap-able array elements are padded to 8 bytes; keep every element a multiple of 8
    // so the agent can index the mapping by `size_of`.
    assert_eq!(core::mem::size_of::<Nexthop>(), 40);
    assert_eq!(core::mem::size_of::<NexthopGroup>() % 8, 0);
    assert_eq!(core::mem::size_of::<Dir24Chunk>(), 1024);
    assert_eq!(core::mem::size_of::<NexthopStats>(), 16);
    assert_eq!(core::mem::size_of::<NeighborKey>(), 20);
    assert_eq!(core::mem::size_of::<Neighbor>(), 8);
    assert_eq!(core::mem::size_of::<Interface>(), 8);
    assert_eq!(core::mem::size_of::<CachedInterface>(), 24);
    assert_eq!(core::mem::size_of::<Dxr4Line>(), 64);
    assert_eq!(core::mem::size_of::<Dxr6Line>(), 64);
    assert_eq!(core::mem::size_of::<DxrXLine>(), 64);
}

/// FNV-1a, fed with bytes (this crate is `no_std`: no `Hasher` boxes or strings needed).
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[test]
fn map_layouts_match_layout_version() {
    use core::mem::{offset_of, size_of};
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    for name in map_names::ALL.iter() {
        hash.bytes(name.as_bytes());
        hash.bytes(b"/");
    }
    let layout = [
        size_of::<NexthopGroup>() as u64,
        offset_of!(NexthopGroup, buckets) as u64,
        offset_of!(NexthopGroup, members) as u64,
        offset_of!(NexthopGroup, egress) as u64,
        offset_of!(NexthopGroup, flags) as u64,
        size_of::<Nexthop>() as u64,
        offset_of!(Nexthop, id) as u64,
        offset_of!(Nexthop, ifindex) as u64,
        offset_of!(Nexthop, mtu) as u64,
        offset_of!(Nexthop, flags) as u64,
        offset_of!(Nexthop, dst_mac) as u64,
        offset_of!(Nexthop, src_mac) as u64,
        offset_of!(Nexthop, via) as u64,
        size_of::<NexthopStats>() as u64,
        size_of::<NeighborKey>() as u64,
        size_of::<Neighbor>() as u64,
        size_of::<Interface>() as u64,
        offset_of!(Interface, rpf) as u64,
        offset_of!(Interface, flags) as u64,
        size_of::<CachedInterface>() as u64,
        size_of::<Dir24Chunk>() as u64,
        size_of::<DatapathStamp>() as u64,
        offset_of!(DatapathStamp, layout_version) as u64,
        offset_of!(DatapathStamp, state) as u64,
        offset_of!(DatapathStamp, flow_hash_seed) as u64,
        offset_of!(DatapathStamp, engine) as u64,
        size_of::<NexthopOwner>() as u64,
        offset_of!(NexthopOwner, flags) as u64,
        offset_of!(NexthopOwner, peer) as u64,
        NEXTHOP_BUCKETS as u64,
        GROUP_EGRESS_IFINDEXES as u64,
        u64::from(GROUP_LOCAL),
        u64::from(GROUP_PASS),
        u64::from(NO_NEXTHOP),
        u64::from(DIR24_VALID | DIR24_EXTENDED),
        u64::from(DIR24_DEPTH_MASK),
        u64::from(DIR24_ID_MASK),
        u64::from(NEXTHOP_F_RESOLVED | NEXTHOP_F_VIA_IPV6 | NEXTHOP_F_CONNECTED),
        u64::from(OWNER_HOST) << 8 | u64::from(OWNER_BGP),
        u64::from(OWNER_F_PEER_IPV6 | OWNER_F_PEER_UNKNOWN),
        STAMP_MAGIC,
        u64::from(DXR4_DIRECT_BITS) << 8 | u64::from(DXR6_DIRECT_BITS),
        u64::from(DXR_VALUE_NONE) << 16 | u64::from(DXR_VALUE_EXT),
        u64::from(DXR_DESC_BASE_SHIFT) << 8 | u64::from(DXR_DESC_COUNT_SHIFT),
        DXR_DESC_BASE_MASK,
        size_of::<Dxr4Line>() as u64,
        size_of::<Dxr6Line>() as u64,
        size_of::<DxrXLine>() as u64,
        offset_of!(DxrXRange, value) as u64,
        DXR_DEFAULT_VALID,
        u64::from(DXR_DEFAULT_V4) << 8 | u64::from(DXR_DEFAULT_V6),
        u64::from(dxr4_range(1, 2)),
        dxr6_range(1, 2),
        u64::from(DXR_DESC_SPLIT) << 8 | u64::from(DXR_SPLIT_BITS),
        u64::from(dxr6_sub_index(3, u64::MAX, 1)),
    ];
    // When this fails, a pinned map's layout changed: bump LAYOUT_VERSION (so that a
    // restarting agent never reads an older run's maps as its own) and record the new
    // fingerprint with it.
    for value in layout {
        hash.bytes(&value.to_le_bytes());
    }
    assert_eq!(
        (LAYOUT_VERSION, hash.0),
        (3, 0x9467_d7be_222b_d5fa),
        "the pinned maps' layout changed: bump LAYOUT_VERSION and record the new fingerprint"
    );
}

#[test]
fn verdict_table_is_complete() {
    for (index, verdict) in Verdict::ALL.iter().enumerate() {
        assert_eq!(*verdict as usize, index);
    }
}
