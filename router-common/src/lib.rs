//! Map layouts shared by the XDP program (`router-ebpf`) and the agent (`router-agent`).
//!
//! Everything here is `#[repr(C)]` plain data: the XDP program reads it from BPF maps, the agent
//! writes it, and `bpftool map dump` prints it with the BTF the eBPF object carries.
//!
//! The forwarding state is three levels, written bottom-up and removed top-down so that no packet
//! ever follows a reference to something missing (make-before-break):
//!
//! ```text
//!   route (LPM trie or DIR-24-8 entry) ──> nexthop group id
//!   NEXTHOP_GROUPS[group id]            ──> NEXTHOP_BUCKETS nexthop slots (resilient ECMP)
//!   NEXTHOPS[slot]                      ──> egress ifindex, MACs, MTU, state
//! ```
//!
//! Nexthop slots are copy-on-write: the agent never rewrites a slot that a bucket points at. It
//! writes a fresh slot, then switches the buckets with single aligned 32-bit stores, so a reader
//! sees either the old or the new record, never half of each.
#![no_std]

mod dxr;
pub use dxr::*;

/// Map names. The agent pins each map as `<pin dir>/<name>`; they are part of the operator
/// interface (`bpftool map dump pinned /sys/fs/bpf/hostrouter/NEXTHOPS`), so keep them stable.
pub mod map_names {
    pub const ROUTES_V4: &str = "ROUTES_V4";
    pub const ROUTES_V6: &str = "ROUTES_V6";
    pub const DIR24_TBL24: &str = "DIR24_TBL24";
    pub const DIR24_TBL8: &str = "DIR24_TBL8";
    pub const DIR24_DEFAULT: &str = "DIR24_DEFAULT";
    pub const NEXTHOP_GROUPS: &str = "NEXTHOP_GROUPS";
    pub const NEXTHOPS: &str = "NEXTHOPS";
    pub const NEXTHOP_STATS: &str = "NEXTHOP_STATS";
    pub const VERDICT_STATS: &str = "VERDICT_STATS";
    pub const EGRESS_PORTS: &str = "EGRESS_PORTS";
    pub const INTERFACES: &str = "INTERFACES";
    pub const NEIGHBORS: &str = "NEIGHBORS";
    pub const INTERFACES_GENERATION: &str = "INTERFACES_GENERATION";
    pub const INTERFACE_CACHE: &str = "INTERFACE_CACHE";
    pub const LOCAL_V4_FILTER: &str = "LOCAL_V4_FILTER";
    pub const LOCAL_V4: &str = "LOCAL_V4";
    pub const STAMP: &str = "STAMP";
    pub const NEXTHOP_OWNERS: &str = "NEXTHOP_OWNERS";
    pub const DXR4_DIRECT: &str = "DXR4_DIRECT";
    pub const DXR4_RANGES: &str = "DXR4_RANGES";
    pub const DXR6_DIRECT: &str = "DXR6_DIRECT";
    pub const DXR6_RANGES: &str = "DXR6_RANGES";
    pub const DXR6_EXT: &str = "DXR6_EXT";
    pub const DXR6_XRANGES: &str = "DXR6_XRANGES";
    pub const DXR6_SUB: &str = "DXR6_SUB";
    pub const DXR_DEFAULT: &str = "DXR_DEFAULT";

    /// Every map the forwarding program owns, in pinning order.
    pub const ALL: [&str; 26] = [
        ROUTES_V4,
        ROUTES_V6,
        DIR24_TBL24,
        DIR24_TBL8,
        DIR24_DEFAULT,
        NEXTHOP_GROUPS,
        NEXTHOPS,
        NEXTHOP_STATS,
        VERDICT_STATS,
        EGRESS_PORTS,
        INTERFACES,
        NEIGHBORS,
        INTERFACES_GENERATION,
        INTERFACE_CACHE,
        LOCAL_V4_FILTER,
        LOCAL_V4,
        STAMP,
        NEXTHOP_OWNERS,
        DXR4_DIRECT,
        DXR4_RANGES,
        DXR6_DIRECT,
        DXR6_RANGES,
        DXR6_EXT,
        DXR6_XRANGES,
        DXR6_SUB,
        DXR_DEFAULT,
    ];
}

/// Name of the read-only global that selects the lookup engine at load time. The verifier sees
/// its value, so the branches of the engines not chosen are pruned from the program.
pub const ENGINE_GLOBAL: &str = "LOOKUP_ENGINE";

/// How the XDP program finds the route for a destination.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupEngine {
    /// `BPF_MAP_TYPE_LPM_TRIE` for IPv4 and IPv6.
    LpmTrie = 0,
    /// DIR-24-8 arrays for IPv4, the LPM trie for IPv6.
    Dir24 = 1,
    /// `bpf_fib_lookup`: the kernel's FIB (routes any daemon installed), XDP only forwards.
    Kernel = 2,
    /// DXR for both families: a direct table plus sorted range blocks (`DXR*` maps).
    Dxr = 3,
}

impl LookupEngine {
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::LpmTrie),
            1 => Some(Self::Dir24),
            2 => Some(Self::Kernel),
            3 => Some(Self::Dxr),
            _ => None,
        }
    }
}

/// Default capacities; the agent may resize the maps at load time.
pub const MAX_ROUTES_V4: u32 = 2_000_000;
pub const MAX_ROUTES_V6: u32 = 500_000;
pub const MAX_NEXTHOP_GROUPS: u32 = 16_384;
pub const MAX_NEXTHOP_SLOTS: u32 = 8_192;
/// Nexthop ids (stable identities, indexes of `NEXTHOP_STATS`).
pub const MAX_NEXTHOP_IDS: u32 = 4_096;
pub const MAX_EGRESS_PORTS: u32 = 1_024;
/// Attached interfaces (`INTERFACES`): the same set as `EGRESS_PORTS`.
pub const MAX_INTERFACES: u32 = MAX_EGRESS_PORTS;
/// Hosts on connected subnets whose link-layer address the program may use (`NEIGHBORS`).
pub const MAX_NEIGHBORS: u32 = 65_536;
/// The host's own IPv4 addresses (and broadcasts) the program knows exactly (`LOCAL_V4`).
pub const MAX_LOCAL_V4: u32 = 16_384;

/// `LOCAL_V4_FILTER`: a bit per hash value of the host's IPv4 addresses, 64 bits per array
/// element. A clear bit proves a source is not local with one inlined array read; a set bit
/// sends the source to the exact `LOCAL_V4` lookup. 2^16 bits (8 KiB): with a few hundred
/// local addresses, under 1% of foreign sources take the hash lookup.
pub const LOCAL_FILTER_BITS_LOG2: u32 = 16;
pub const LOCAL_FILTER_WORDS: u32 = (1 << LOCAL_FILTER_BITS_LOG2) / 64;

/// The filter bit of an IPv4 address (network-order octets): Fibonacci hashing, the top bits
/// of the product. The program and the agent must agree on it.
pub const fn local_filter_bit(addr: [u8; 4]) -> u32 {
    u32::from_be_bytes(addr).wrapping_mul(0x9e37_79b1) >> (32 - LOCAL_FILTER_BITS_LOG2)
}

/// Group id reserved for "deliver to this host": routes for the host's own addresses point here,
/// and the program hands those packets to the kernel.
pub const GROUP_LOCAL: u32 = 0;

/// Group id reserved for "the kernel forwards this": routes the fast path must not forward
/// itself (`pass_to_kernel` prefixes, kernel routes it cannot follow, a route that could not be
/// installed in full). The program passes those packets to the kernel.
pub const GROUP_PASS: u32 = 1;

/// The first group id the agent allocates; lower ids are reserved.
pub const FIRST_GROUP: u32 = 2;

/// Buckets per nexthop group. A flow hash picks a bucket; a bucket names a nexthop slot.
/// 64 buckets split traffic within 1/64 of even over up to 64 nexthops, and when a nexthop
/// leaves a group only its own buckets are reassigned (resilient hashing).
pub const NEXTHOP_BUCKETS: usize = 64;

/// Bucket value meaning "no nexthop": the packet goes to the kernel.
pub const NO_NEXTHOP: u32 = u32::MAX;

/// Distinct egress interfaces a group lists for strict reverse-path filtering.
pub const GROUP_EGRESS_IFINDEXES: usize = 8;

/// The group's members use more than `GROUP_EGRESS_IFINDEXES` interfaces: `egress` is
/// incomplete, and a strict RPF check against this group is left to the kernel.
pub const GROUP_F_EGRESS_OVERFLOW: u32 = 1 << 0;

/// One ECMP group: `NEXTHOP_BUCKETS` nexthop slot indexes, and the group's members.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NexthopGroup {
    pub buckets: [u32; NEXTHOP_BUCKETS],
    /// Slots of all the group's nexthops, usable or not, then `NO_NEXTHOP`: a failed nexthop
    /// holds no bucket, and this is how `show fib` / `show counters` still list it. The program
    /// does not read it. A group has at most `NEXTHOP_BUCKETS` nexthops.
    pub members: [u32; NEXTHOP_BUCKETS],
    /// The members' egress interfaces (ifindexes, then 0): strict RPF accepts a source whose
    /// route's group lists the ingress interface here, as the kernel's rp_filter = 1 does.
    pub egress: [u32; GROUP_EGRESS_IFINDEXES],
    /// `GROUP_F_*`.
    pub flags: u32,
    pub _reserved: u32,
}

impl NexthopGroup {
    pub const EMPTY: Self = Self {
        buckets: [NO_NEXTHOP; NEXTHOP_BUCKETS],
        members: [NO_NEXTHOP; NEXTHOP_BUCKETS],
        egress: [0; GROUP_EGRESS_IFINDEXES],
        flags: 0,
        _reserved: 0,
    };
}

/// The nexthop's layer-2 address is known: the program may forward to it.
pub const NEXTHOP_F_RESOLVED: u16 = 1 << 0;
/// `via` holds an IPv6 address (else IPv4 in its first 4 bytes).
pub const NEXTHOP_F_VIA_IPV6: u16 = 1 << 1;
/// A connected subnet: the destination itself is the neighbor. `dst_mac` is not used; the
/// program finds the destination's link-layer address in `NEIGHBORS` (passing the packet to the
/// kernel, which resolves it, when it is not there).
pub const NEXTHOP_F_CONNECTED: u16 = 1 << 2;

/// Where and how to send a packet. 40 bytes, a multiple of 8 as mmap-able arrays require.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nexthop {
    /// Stable identity of the nexthop (index of `NEXTHOP_STATS`); the slot holding it changes
    /// with every update, the id does not.
    pub id: u32,
    /// Egress interface; must be present in `EGRESS_PORTS`.
    pub ifindex: u32,
    /// Largest IP packet (L3 bytes) the egress link carries.
    pub mtu: u16,
    /// `NEXTHOP_F_*`.
    pub flags: u16,
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// The gateway's address, for operators (`show fib`, bpftool); the program does not read it.
    pub via: [u8; 16],
}

impl Nexthop {
    pub const fn is_resolved(&self) -> bool {
        self.flags & NEXTHOP_F_RESOLVED != 0
    }
}

/// `NEIGHBORS` key: a host on a connected subnet of an attached interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NeighborKey {
    pub ifindex: u32,
    /// IPv6, or IPv4 mapped (`::ffff:a.b.c.d`).
    pub addr: [u8; 16],
}

impl NeighborKey {
    pub const fn ipv4(ifindex: u32, addr: [u8; 4]) -> Self {
        Self {
            ifindex,
            addr: [
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, addr[0], addr[1], addr[2], addr[3],
            ],
        }
    }

    pub const fn ipv6(ifindex: u32, addr: [u8; 16]) -> Self {
        Self { ifindex, addr }
    }
}

/// `NEIGHBORS` value: the host's link-layer address, present only while the kernel's neighbor
/// entry is usable without a probe (REACHABLE, PERMANENT, NOARP, DELAY, PROBE).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Neighbor {
    pub mac: [u8; 6],
    pub _reserved: [u8; 2],
}

/// Unicast reverse-path filtering of an attached interface (`INTERFACES`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RpfMode {
    #[default]
    Off = 0,
    /// The source must have a route (any interface), as rp_filter = 2.
    Loose = 1,
    /// The source's route must go out of the ingress interface, as rp_filter = 1.
    Strict = 2,
}

/// The kernel forwards IPv4 arriving on this interface (`net.ipv4.conf.IF.forwarding`).
pub const INTERFACE_F_FORWARD_V4: u8 = 1 << 0;
/// The kernel forwards IPv6 arriving on this interface (`net.ipv6.conf.IF.forwarding`).
pub const INTERFACE_F_FORWARD_V6: u8 = 1 << 1;
/// `net.ipv4.conf.{all,IF}.accept_local`: the kernel accepts IPv4 sources that are the
/// host's own addresses on this interface (`fib_validate_source`); without it they are
/// martians the program leaves to the kernel.
pub const INTERFACE_F_ACCEPT_LOCAL_V4: u8 = 1 << 2;

/// `INTERFACES` value, keyed by ifindex: what the program needs of an attached interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    /// Frames to any other unicast address are another host's (PACKET_OTHERHOST).
    pub mac: [u8; 6],
    /// `RpfMode` as u8.
    pub rpf: u8,
    /// `INTERFACE_F_*`.
    pub flags: u8,
}

/// `INTERFACE_CACHE` value (per CPU, one entry): the last `INTERFACES` record this CPU looked
/// up, and the `INTERFACES_GENERATION` it read before the lookup. A hash lookup per packet
/// costs ~35 ns; a CPU mostly serves one interface's queue, so the cache almost always hits.
/// The agent bumps the generation after every `INTERFACES` change, which invalidates every
/// CPU's copy; reading the generation before the lookup makes a lookup that raced a change
/// carry the old generation, so it is not trusted for long.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachedInterface {
    pub generation: u64,
    pub ifindex: u32,
    /// 1 if `INTERFACES[ifindex]` exists (and is `interface`), else 0.
    pub present: u32,
    pub interface: Interface,
}

/// Per-nexthop traffic counters (per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NexthopStats {
    pub packets: u64,
    pub bytes: u64,
}

/// DIR-24-8, as DPDK's rte_lpm: the first 24 bits of the destination index `TBL24`; prefixes
/// longer than /24 live in 256-entry `TBL8` groups. `TBL24` is stored as 2^16 chunks of 256
/// entries (chunk = first 16 bits, entry = third byte) so that one mmap-able array element holds
/// many entries: mmap-able arrays pad every element to 8 bytes, which would double a `u32` array.
pub const DIR24_CHUNK_ENTRIES: usize = 256;
pub const DIR24_TBL24_CHUNKS: u32 = 1 << 16;
pub const MAX_DIR24_TBL8_GROUPS: u32 = 65_536;

/// DIR-24-8 entry (`TBL24`, `TBL8` and the default route), as rte_lpm's:
///
/// ```text
///   31      30         29..24    23..0
///   VALID | EXTENDED | depth   | id
/// ```
///
/// An entry holds a nexthop group id (or, in `TBL24`, a `TBL8` group index).
pub const DIR24_VALID: u32 = 1 << 31;
/// In `TBL24`: the id is a `TBL8` group index, not a nexthop group.
pub const DIR24_EXTENDED: u32 = 1 << 30;
/// The length of the prefix that wrote the entry (for an extended entry: of the longest prefix
/// of at most /24 covering its /24, 0 if none). Only the agent uses it (it replaces a separate
/// per-entry depth array); lookups must mask it off with `DIR24_ID_MASK`.
pub const DIR24_DEPTH_SHIFT: u32 = 24;
pub const DIR24_DEPTH_MASK: u32 = 0x3f << DIR24_DEPTH_SHIFT;
/// Nexthop group id or `TBL8` group index: 24 bits.
pub const DIR24_ID_MASK: u32 = (1 << DIR24_DEPTH_SHIFT) - 1;

// The fields do not overlap, and every value fits its field.
const _: () = assert!(DIR24_ID_MASK & DIR24_DEPTH_MASK == 0);
const _: () = assert!((DIR24_ID_MASK | DIR24_DEPTH_MASK) & (DIR24_VALID | DIR24_EXTENDED) == 0);
const _: () = assert!((32 << DIR24_DEPTH_SHIFT) & !DIR24_DEPTH_MASK == 0);
const _: () = assert!(MAX_NEXTHOP_GROUPS - 1 <= DIR24_ID_MASK);
const _: () = assert!(MAX_DIR24_TBL8_GROUPS - 1 <= DIR24_ID_MASK);

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dir24Chunk {
    pub entries: [u32; DIR24_CHUNK_ENTRIES],
}

/// Why the program did what it did with a packet. Index of `VERDICT_STATS`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten and redirected to the nexthop.
    Forwarded = 0,
    /// For this host: one of its addresses, multicast, broadcast, link-local.
    PassedLocal = 1,
    /// TTL or hop limit would expire: the kernel sends ICMP time exceeded.
    PassedTtl = 2,
    /// No route in our FIB (or an empty group): the kernel decides.
    PassedNoRoute = 3,
    /// The nexthop's MAC is not known yet: the kernel resolves it.
    PassedUnresolved = 4,
    /// Larger than the egress MTU: the kernel fragments or sends ICMP.
    PassedMtu = 5,
    /// Not IPv4/IPv6 (ARP, LLDP, ...), or ICMPv6 neighbor discovery.
    PassedNotIp = 6,
    /// 802.1Q / 802.1ad tagged frames are left to the kernel.
    PassedVlan = 7,
    /// Truncated or inconsistent headers, dropped.
    DroppedMalformed = 8,
    /// The egress port vanished between lookup and redirect, dropped.
    DroppedRedirect = 9,
    /// Addressed to another host's MAC, or to a group address: the kernel's (it drops
    /// PACKET_OTHERHOST, bridges, captures).
    PassedOtherHost = 10,
    /// IPv4 with options, or IPv6 with a hop-by-hop header: the kernel applies its option,
    /// source-route and router-alert policy.
    PassedIpOptions = 11,
    /// A route sends it to the kernel: `pass_to_kernel`, a kernel route the fast path does not
    /// follow, a route not installed in full; with the kernel engine, a route out of an
    /// interface the program is not attached to.
    PassedByRoute = 12,
    /// The source failed the interface's reverse-path filter, dropped.
    DroppedRpf = 13,
    /// The kernel does not forward this family from the ingress interface (`forwarding` = 0).
    PassedForwardingOff = 14,
    /// An address the kernel never forwards (IPv4 source multicast, limited broadcast, 0/8,
    /// 127/8, destination 0/8, 127/8; IPv6 source multicast, link-local, loopback,
    /// unspecified, IPv4-mapped, destination loopback, unspecified): the kernel drops or
    /// delivers it.
    PassedMartian = 15,
    /// The reverse-path filter cannot decide: the source's route goes to the kernel
    /// (`GROUP_PASS`), or (strict) its group has more egress interfaces than it lists.
    PassedRpfKernel = 16,
    /// IPv4 header checksum wrong: `ip_rcv_core` drops it (and counts it), so the kernel's.
    PassedBadChecksum = 17,
    /// IPv4 source is one of the host's own addresses and the interface does not set
    /// `accept_local`: `fib_validate_source` refuses it, the kernel's.
    PassedLocalSource = 18,
}

pub const VERDICT_COUNT: u32 = 19;

impl Verdict {
    pub const ALL: [Verdict; VERDICT_COUNT as usize] = [
        Verdict::Forwarded,
        Verdict::PassedLocal,
        Verdict::PassedTtl,
        Verdict::PassedNoRoute,
        Verdict::PassedUnresolved,
        Verdict::PassedMtu,
        Verdict::PassedNotIp,
        Verdict::PassedVlan,
        Verdict::DroppedMalformed,
        Verdict::DroppedRedirect,
        Verdict::PassedOtherHost,
        Verdict::PassedIpOptions,
        Verdict::PassedByRoute,
        Verdict::DroppedRpf,
        Verdict::PassedForwardingOff,
        Verdict::PassedMartian,
        Verdict::PassedRpfKernel,
        Verdict::PassedBadChecksum,
        Verdict::PassedLocalSource,
    ];

    /// The name operators see in `show counters` and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Forwarded => "forwarded",
            Verdict::PassedLocal => "passed-local",
            Verdict::PassedTtl => "passed-ttl",
            Verdict::PassedNoRoute => "passed-no-route",
            Verdict::PassedUnresolved => "passed-unresolved",
            Verdict::PassedMtu => "passed-mtu",
            Verdict::PassedNotIp => "passed-not-ip",
            Verdict::PassedVlan => "passed-vlan",
            Verdict::DroppedMalformed => "dropped-malformed",
            Verdict::DroppedRedirect => "dropped-redirect",
            Verdict::PassedOtherHost => "passed-other-host",
            Verdict::PassedIpOptions => "passed-ip-options",
            Verdict::PassedByRoute => "passed-by-route",
            Verdict::DroppedRpf => "dropped-rpf",
            Verdict::PassedForwardingOff => "passed-forwarding-off",
            Verdict::PassedMartian => "passed-martian",
            Verdict::PassedRpfKernel => "passed-rpf-kernel",
            Verdict::PassedBadChecksum => "passed-bad-checksum",
            Verdict::PassedLocalSource => "passed-local-source",
        }
    }
}

/// `STAMP` magic: the pin directory was written by hostrouter (b"hostrtr\0", little-endian).
pub const STAMP_MAGIC: u64 = u64::from_le_bytes(*b"hostrtr\0");

/// The layout of every pinned map (names, key and value types, the meaning of their fields).
/// A restarting agent adopts a previous run's maps only when their stamp carries this very
/// version: bump it with any change the fingerprint test below reports, or with a change of
/// meaning it cannot see (a flag bit, an entry encoding).
pub const LAYOUT_VERSION: u32 = 3;

/// `DatapathStamp::state`: an agent runs this datapath (or crashed while it did).
pub const STAMP_RUNNING: u32 = 1;
/// `DatapathStamp::state`: the agent left it forwarding for a planned restart.
pub const STAMP_RESTARTING: u32 = 2;

/// `STAMP` value (one entry): who wrote the pin directory and how to read it back. The XDP
/// program does not read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatapathStamp {
    /// `STAMP_MAGIC`.
    pub magic: u64,
    /// `LAYOUT_VERSION` of the agent that wrote the maps.
    pub layout_version: u32,
    /// `STAMP_RUNNING` or `STAMP_RESTARTING`.
    pub state: u32,
    /// The program's flow hash seed: kept by the next run so flows keep their buckets.
    pub flow_hash_seed: u32,
    /// `LookupEngine` as u32: which route tables hold the routes.
    pub engine: u32,
    /// The agent's process id (for operators).
    pub pid: u32,
    pub _reserved: u32,
}

/// `NexthopOwner::kind`: the slot is free or holds a nexthop of static or kernel routes.
pub const OWNER_HOST: u32 = 0;
/// `NexthopOwner::kind`: a BGP session's nexthop; `peer` is the session's peer address.
pub const OWNER_BGP: u32 = 1;
/// `NexthopOwner::flags`: `peer` holds an IPv6 address (else IPv4 in its first 4 bytes).
pub const OWNER_F_PEER_IPV6: u32 = 1 << 0;
/// `NexthopOwner::flags`: the BGP peer's address was not known when the slot was written.
pub const OWNER_F_PEER_UNKNOWN: u32 = 1 << 1;

/// `NEXTHOP_OWNERS` value, indexed like `NEXTHOPS`: whose nexthop a slot holds, so that the
/// next run adopts only routes learned from BGP and sweeps them per peer. Userspace
/// bookkeeping only; the XDP program does not read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NexthopOwner {
    /// `OWNER_*`.
    pub kind: u32,
    /// `OWNER_F_*`.
    pub flags: u32,
    pub peer: [u8; 16],
}

/// The benchmark traffic generator's configuration (`router-ebpf/src/bin/trafficgen.rs`).
pub mod trafficgen {
    /// Up to this many destinations; the generator walks them in order, per CPU.
    pub const MAX_DESTINATIONS: u32 = 1 << 20;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub struct GenConfig {
        pub src_mac: [u8; 6],
        pub dst_mac: [u8; 6],
        /// 4 for IPv4, 6 for IPv6.
        pub ip_version: u32,
        /// How many entries of `GEN_DESTINATIONS` are in use (at least 1).
        pub destinations: u32,
        /// IPv4 source in the first 4 bytes, or the IPv6 source.
        pub src_ip: [u8; 16],
    }
}

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::trafficgen::GenConfig {}
    // SAFETY: all of these are repr(C), Copy, without padding holes the kernel could trip over.
    unsafe impl aya::Pod for super::NexthopGroup {}
    unsafe impl aya::Pod for super::Nexthop {}
    unsafe impl aya::Pod for super::NexthopStats {}
    unsafe impl aya::Pod for super::Dir24Chunk {}
    unsafe impl aya::Pod for super::NeighborKey {}
    unsafe impl aya::Pod for super::Neighbor {}
    unsafe impl aya::Pod for super::Interface {}
    unsafe impl aya::Pod for super::CachedInterface {}
    unsafe impl aya::Pod for super::DatapathStamp {}
    unsafe impl aya::Pod for super::NexthopOwner {}
    unsafe impl aya::Pod for super::Dxr4Line {}
    unsafe impl aya::Pod for super::Dxr6Line {}
    unsafe impl aya::Pod for super::DxrXRange {}
    unsafe impl aya::Pod for super::DxrXLine {}
}

#[cfg(test)]
mod tests;
