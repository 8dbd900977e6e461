//! Route lookup: destination -> nexthop group -> nexthop, behind one function for all engines
//! (LPM trie, DIR-24-8 and DXR (`dxr.rs`) tables, or the kernel's FIB).

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, bpf_fib_lookup as FibLookup},
    btf_maps::{Array, HashMap, LpmTrie, lpm_trie::Key},
    helpers::generated::bpf_fib_lookup,
    macros::btf_map,
    programs::XdpContext,
};
use router_common::{
    DIR24_EXTENDED, DIR24_ID_MASK, DIR24_TBL24_CHUNKS, DIR24_VALID, Dir24Chunk,
    GROUP_EGRESS_IFINDEXES, GROUP_F_EGRESS_OVERFLOW, GROUP_LOCAL, GROUP_PASS, LookupEngine,
    MAX_DIR24_TBL8_GROUPS, MAX_NEIGHBORS, MAX_NEXTHOP_GROUPS, MAX_NEXTHOP_SLOTS, MAX_ROUTES_V4,
    MAX_ROUTES_V6, NEXTHOP_BUCKETS, NEXTHOP_F_CONNECTED, NEXTHOP_F_RESOLVED, NO_NEXTHOP, Neighbor,
    NeighborKey, Nexthop, NexthopGroup, RpfMode,
};

use crate::headers::{IPV6_HDR_LEN, Ipv4Header, Ipv6Header, L4Ports};

const MMAPABLE: usize = BPF_F_MMAPABLE as usize;
const NO_PREALLOC: usize = aya_ebpf::bindings::BPF_F_NO_PREALLOC as usize;

/// Set by the agent at load time (`router_common::ENGINE_GLOBAL`); read-only, so the verifier
/// prunes the engines not in use.
#[unsafe(no_mangle)]
static LOOKUP_ENGINE: u32 = LookupEngine::LpmTrie as u32;

/// Per-host seed of the flow hash, so that hosts in one fabric do not all split flows alike.
#[unsafe(no_mangle)]
static FLOW_HASH_SEED: u32 = 0;

#[btf_map]
static ROUTES_V4: LpmTrie<[u8; 4], u32, { MAX_ROUTES_V4 as usize }, NO_PREALLOC> = LpmTrie::new();

#[btf_map]
static ROUTES_V6: LpmTrie<[u8; 16], u32, { MAX_ROUTES_V6 as usize }, NO_PREALLOC> = LpmTrie::new();

#[btf_map]
static DIR24_TBL24: Array<Dir24Chunk, { DIR24_TBL24_CHUNKS as usize }, MMAPABLE> = Array::new();

#[btf_map]
static DIR24_TBL8: Array<Dir24Chunk, { MAX_DIR24_TBL8_GROUPS as usize }, MMAPABLE> = Array::new();

/// The IPv4 default route, kept out of the 16M `TBL24` entries (DIR-24-8 would otherwise write
/// all of them to install or change 0.0.0.0/0).
#[btf_map]
static DIR24_DEFAULT: Array<u64, 1, MMAPABLE> = Array::new();

#[btf_map]
static NEXTHOP_GROUPS: Array<NexthopGroup, { MAX_NEXTHOP_GROUPS as usize }, MMAPABLE> =
    Array::new();

#[btf_map]
static NEXTHOPS: Array<Nexthop, { MAX_NEXTHOP_SLOTS as usize }, MMAPABLE> = Array::new();

/// Link-layer addresses of hosts on connected subnets, for `NEXTHOP_F_CONNECTED` nexthops.
#[btf_map]
static NEIGHBORS: HashMap<NeighborKey, Neighbor, { MAX_NEIGHBORS as usize }, NO_PREALLOC> =
    HashMap::new();

pub enum Destination<'a> {
    V4 { ip: &'a Ipv4Header, ports: L4Ports },
    V6 { ip: &'a Ipv6Header, ports: L4Ports },
}

pub enum Route {
    None,
    Local,
    /// `GROUP_PASS`, or (kernel engine) an egress interface the program is not attached to.
    Pass,
    /// (kernel engine) `bpf_fib_lookup` says forwarding is off on the ingress interface.
    ForwardingOff,
    Unresolved,
    TooBig,
    Nexthop(Nexthop),
    /// From `bpf_fib_lookup`: MTU already checked by the kernel.
    Kernel(Nexthop),
}

#[inline(always)]
pub fn engine() -> u32 {
    // SAFETY: a plain read of a global the loader may rewrite before load.
    unsafe { core::ptr::read_volatile(&LOOKUP_ENGINE) }
}

#[inline(always)]
pub fn route(ctx: &XdpContext, dst: Destination) -> Route {
    if engine() == LookupEngine::Kernel as u32 {
        return kernel_fib(ctx, &dst);
    }
    let (group, hash) = match &dst {
        Destination::V4 { ip, ports } => {
            let addr = ip.dst();
            (group_v4(addr), flow_hash_v4(ip.src(), addr, ports))
        }
        Destination::V6 { ip, ports } => {
            (group_v6(ip.dst()), flow_hash_v6(ip.src(), ip.dst(), ports))
        }
    };
    match group {
        None => Route::None,
        Some(GROUP_LOCAL) => Route::Local,
        Some(GROUP_PASS) => Route::Pass,
        Some(group) => match select_nexthop(group, hash) {
            Route::Nexthop(nexthop) if nexthop.flags & NEXTHOP_F_CONNECTED != 0 => {
                on_link(nexthop, &dst)
            }
            other => other,
        },
    }
}

/// A connected nexthop: the destination itself is the neighbor, its MAC from `NEIGHBORS`;
/// unknown, the kernel resolves it.
#[inline(always)]
fn on_link(mut nexthop: Nexthop, dst: &Destination) -> Route {
    let key = match dst {
        Destination::V4 { ip, .. } => NeighborKey::ipv4(nexthop.ifindex, ip.dst()),
        Destination::V6 { ip, .. } => NeighborKey::ipv6(nexthop.ifindex, *ip.dst()),
    };
    match NEIGHBORS.get_ptr(key) {
        Some(neighbor) => {
            // SAFETY: a map value pointer the helper returned, read once.
            nexthop.dst_mac = unsafe { (*neighbor).mac };
            Route::Nexthop(nexthop)
        }
        None => Route::Unresolved,
    }
}

/// What the reverse-path filter says of a packet's source.
pub enum ReversePath {
    Accept,
    Drop,
    /// The source's route goes to the kernel, or its group lists too few interfaces.
    Kernel,
}

/// Unicast RPF, as the kernel's rp_filter: loose wants a route (not a local address) for the
/// source, strict wants that route to use the ingress interface. Same engine as the
/// destination lookup. Not called with the kernel engine (config refuses it). An IPv4 local
/// source with `accept_local` is the kernel's to judge (it then checks the local route's
/// device).
#[inline(always)]
pub fn reverse_path(src: Source, mode: u8, ingress: u32, accept_local: bool) -> ReversePath {
    let v4 = matches!(src, Source::V4(_));
    let group = match src {
        Source::V4(addr) => group_v4(addr),
        Source::V6(addr) => group_v6(addr),
    };
    let group = match group {
        Some(GROUP_LOCAL) if v4 && accept_local => return ReversePath::Kernel,
        None | Some(GROUP_LOCAL) => return ReversePath::Drop,
        Some(GROUP_PASS) => return ReversePath::Kernel,
        Some(group) => group,
    };
    if mode != RpfMode::Strict as u8 {
        return ReversePath::Accept;
    }
    let Some(group) = NEXTHOP_GROUPS.get(group) else {
        return ReversePath::Drop;
    };
    let mut i = 0;
    while i < GROUP_EGRESS_IFINDEXES {
        let ifindex = group.egress[i];
        if ifindex == ingress {
            return ReversePath::Accept;
        }
        if ifindex == 0 {
            break;
        }
        i += 1;
    }
    if group.flags & GROUP_F_EGRESS_OVERFLOW != 0 {
        ReversePath::Kernel
    } else {
        ReversePath::Drop
    }
}

pub enum Source<'a> {
    V4([u8; 4]),
    V6(&'a [u8; 16]),
}

/// The nexthop group of the longest prefix holding `addr`, from the engine's own tables (not
/// the kernel engine's: it looks up whole packets).
#[inline(always)]
fn group_v4(addr: [u8; 4]) -> Option<u32> {
    if engine() == LookupEngine::Dxr as u32 {
        crate::dxr::lookup_v4(u32::from_be_bytes(addr))
    } else if engine() == LookupEngine::Dir24 as u32 {
        dir24_lookup(u32::from_be_bytes(addr))
    } else {
        ROUTES_V4.get(&Key::new(32, addr)).copied()
    }
}

#[inline(always)]
fn group_v6(addr: &[u8; 16]) -> Option<u32> {
    if engine() == LookupEngine::Dxr as u32 {
        crate::dxr::lookup_v6(addr)
    } else {
        ROUTES_V6.get(&Key::new(128, *addr)).copied()
    }
}

/// Follows the bucket the flow hash picks to its nexthop slot.
#[inline(always)]
fn select_nexthop(group: u32, hash: u32) -> Route {
    let Some(group) = NEXTHOP_GROUPS.get(group) else {
        return Route::None;
    };
    let slot = group.buckets[hash as usize % NEXTHOP_BUCKETS];
    if slot == NO_NEXTHOP {
        return Route::None;
    }
    match NEXTHOPS.get(slot) {
        Some(nexthop) if nexthop.is_resolved() => Route::Nexthop(*nexthop),
        Some(_) => Route::Unresolved,
        None => Route::None,
    }
}

/// DIR-24-8: one array read for prefixes up to /24, two for longer ones.
#[inline(always)]
fn dir24_lookup(addr: u32) -> Option<u32> {
    let chunk = DIR24_TBL24.get(addr >> 16)?;
    let mut entry = chunk.entries[((addr >> 8) & 0xff) as usize];
    if entry & DIR24_EXTENDED != 0 {
        let tbl8 = DIR24_TBL8.get(entry & DIR24_ID_MASK)?;
        entry = tbl8.entries[(addr & 0xff) as usize];
    }
    if entry & DIR24_VALID == 0 {
        // A u64 only because mmap-able arrays pad elements to 8 bytes anyway.
        entry = *DIR24_DEFAULT.get(0)? as u32;
        if entry & DIR24_VALID == 0 {
            return None;
        }
    }
    Some(entry & DIR24_ID_MASK)
}

// Flow hash: murmur3's 32-bit mixing steps over the 5-tuple words.
#[inline(always)]
fn mix(hash: u32, word: u32) -> u32 {
    let word = word
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (hash ^ word)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline(always)]
fn finish(mut hash: u32) -> u32 {
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^ (hash >> 16)
}

#[inline(always)]
fn seed() -> u32 {
    // SAFETY: a plain read of a global the loader may rewrite before load.
    unsafe { core::ptr::read_volatile(&FLOW_HASH_SEED) }
}

#[inline(always)]
fn mix_l4(hash: u32, ports: &L4Ports) -> u32 {
    match ports {
        L4Ports::Ports { proto, ports } => mix(mix(hash, u32::from(*proto)), *ports),
        L4Ports::L3Only { proto } => mix(hash, u32::from(*proto)),
        L4Ports::NeighborDiscovery => hash,
    }
}

#[inline(always)]
fn flow_hash_v4(src: [u8; 4], dst: [u8; 4], ports: &L4Ports) -> u32 {
    let hash = mix(
        mix(seed(), u32::from_ne_bytes(src)),
        u32::from_ne_bytes(dst),
    );
    finish(mix_l4(hash, ports))
}

#[inline(always)]
fn fold_v6(addr: &[u8; 16]) -> u32 {
    let word = |i: usize| u32::from_ne_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    word(0) ^ word(4) ^ word(8) ^ word(12)
}

#[inline(always)]
fn flow_hash_v6(src: &[u8; 16], dst: &[u8; 16], ports: &L4Ports) -> u32 {
    let hash = mix(mix(seed(), fold_v6(src)), fold_v6(dst));
    finish(mix_l4(hash, ports))
}

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const BPF_FIB_LKUP_RET_SUCCESS: i64 = 0;
const BPF_FIB_LKUP_RET_FWD_DISABLED: i64 = 5;
const BPF_FIB_LKUP_RET_NOT_FWDED: i64 = 4;
const BPF_FIB_LKUP_RET_NO_NEIGH: i64 = 7;
const BPF_FIB_LKUP_RET_FRAG_NEEDED: i64 = 8;

/// The kernel's FIB through `bpf_fib_lookup`, as xdp-forward does: for routes another daemon
/// installed, and as the benchmark's middle ground.
#[inline(always)]
fn kernel_fib(ctx: &XdpContext, dst: &Destination) -> Route {
    // SAFETY: bpf_fib_lookup is plain old data; all-zero is its documented initial state.
    let mut params: FibLookup = unsafe { core::mem::zeroed() };
    params.ifindex = ctx.ingress_ifindex() as u32;
    let ports = match dst {
        Destination::V4 { ip, ports } => {
            params.family = AF_INET;
            params.__bindgen_anon_1.tot_len = ip.total_len();
            params.__bindgen_anon_2.tos = ip.tos();
            params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(ip.src());
            params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(ip.dst());
            ports
        }
        Destination::V6 { ip, ports } => {
            params.family = AF_INET6;
            params.__bindgen_anon_1.tot_len = ip.payload_len() + IPV6_HDR_LEN as u16;
            params.__bindgen_anon_2.flowinfo = u32::from_ne_bytes(ip.flow_info());
            params.__bindgen_anon_3.ipv6_src = words(ip.src());
            params.__bindgen_anon_4.ipv6_dst = words(ip.dst());
            ports
        }
    };
    match ports {
        L4Ports::Ports { proto, ports } => {
            params.l4_protocol = *proto;
            params.sport = ((*ports >> 16) as u16).to_be();
            params.dport = (*ports as u16).to_be();
        }
        L4Ports::L3Only { proto } => params.l4_protocol = *proto,
        L4Ports::NeighborDiscovery => {}
    }
    // SAFETY: params is a valid, initialised bpf_fib_lookup of the size we pass.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.ctx.cast(),
            &mut params,
            core::mem::size_of::<FibLookup>() as i32,
            0,
        )
    };
    match rc {
        // Out of an interface we are not attached to: the kernel's business, and the frame
        // still as it came (a redirect there would fail after the rewrite).
        BPF_FIB_LKUP_RET_SUCCESS if !crate::is_attached(params.ifindex) => Route::Pass,
        BPF_FIB_LKUP_RET_SUCCESS => Route::Kernel(Nexthop {
            id: u32::MAX,
            ifindex: params.ifindex,
            mtu: u16::MAX,
            flags: NEXTHOP_F_RESOLVED,
            dst_mac: params.dmac,
            src_mac: params.smac,
            via: [0; 16],
        }),
        BPF_FIB_LKUP_RET_NOT_FWDED => Route::Local,
        BPF_FIB_LKUP_RET_FWD_DISABLED => Route::ForwardingOff,
        BPF_FIB_LKUP_RET_NO_NEIGH => Route::Unresolved,
        BPF_FIB_LKUP_RET_FRAG_NEEDED => Route::TooBig,
        _ => Route::None,
    }
}

#[inline(always)]
fn words(addr: &[u8; 16]) -> [u32; 4] {
    let word = |i: usize| u32::from_ne_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    [word(0), word(4), word(8), word(12)]
}
