//! hostrouter's XDP forwarding program.
//!
//! For each received frame: parse Ethernet and IPv4/IPv6, hand everything that is not plain
//! transit traffic to the kernel, look the destination up in our FIB (LPM trie, DIR-24-8 or the
//! kernel's FIB), pick a nexthop from the route's ECMP group by flow hash, rewrite the MACs,
//! decrement the TTL and redirect to the egress port.
//!
//! The rule is "forward what we are sure of, pass the rest": every case this program does not
//! handle (another host's frame, local, martian, options, bad IPv4 header checksum, a source
//! that is the host's own address, TTL expiry, unresolved neighbor, too big, not IP) returns
//! `XDP_PASS` so the kernel does what it always did. Only frames whose headers are broken,
//! and (if configured) sources failing the reverse-path filter, are dropped.
#![no_std]
#![no_main]
// `asm!` on BPF: the DXR search's branch-free comparison (`dxr::at_most`).
#![feature(asm_experimental_arch)]

mod debug_log;
mod dxr;
mod headers;
mod local;
mod lookup;
mod restart;

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, DevMapHash, HashMap, PerCpuArray},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use router_common::{
    CachedInterface, INTERFACE_F_ACCEPT_LOCAL_V4, INTERFACE_F_FORWARD_V4, INTERFACE_F_FORWARD_V6,
    Interface, LookupEngine, MAX_EGRESS_PORTS, MAX_INTERFACES, MAX_NEXTHOP_IDS, Nexthop,
    NexthopStats, RpfMode, VERDICT_COUNT, Verdict,
};

use headers::{ETH_HDR_LEN, EtherType, IPPROTO_HOPOPTS, Ipv4Header, Ipv6Header, L4Ports};
use lookup::{Destination, ReversePath, Route, Source};

#[btf_map]
static EGRESS_PORTS: DevMapHash<{ MAX_EGRESS_PORTS as usize }> = DevMapHash::new();

/// The attached interfaces: their MAC (the L2 check), RPF mode and forwarding switches.
#[btf_map]
static INTERFACES: HashMap<u32, Interface, { MAX_INTERFACES as usize }> = HashMap::new();

/// Bumped by the agent after every `INTERFACES` change (see `CachedInterface`).
#[btf_map]
static INTERFACES_GENERATION: Array<u64, 1> = Array::new();

/// Per CPU: the last `INTERFACES` lookup (array lookups are inlined, hash lookups are not).
#[btf_map]
static INTERFACE_CACHE: PerCpuArray<CachedInterface, 1> = PerCpuArray::new();

#[btf_map]
static VERDICT_STATS: PerCpuArray<u64, { VERDICT_COUNT as usize }> = PerCpuArray::new();

#[btf_map]
static NEXTHOP_STATS: PerCpuArray<NexthopStats, { MAX_NEXTHOP_IDS as usize }> = PerCpuArray::new();

#[xdp]
pub fn hostrouter(ctx: XdpContext) -> u32 {
    let (verdict, action) = forward(&ctx);
    count(verdict);
    debug_log::verdict(&ctx, verdict);
    action
}

#[inline(always)]
fn count(verdict: Verdict) {
    if let Some(counter) = VERDICT_STATS.get_ptr_mut(verdict as u32) {
        // SAFETY: per-CPU value, only this CPU writes it.
        unsafe { *counter += 1 };
    }
}

#[inline(always)]
fn pass(verdict: Verdict) -> (Verdict, u32) {
    (verdict, xdp_action::XDP_PASS)
}

/// `INTERFACES[ifindex]`, through this CPU's cache.
#[inline(always)]
fn interface(ifindex: u32) -> Option<Interface> {
    let generation = INTERFACES_GENERATION.get(0).copied().unwrap_or(0);
    let Some(cache) = INTERFACE_CACHE.get_ptr_mut(0) else {
        // SAFETY: a map value pointer the helper returned, copied out at once.
        return INTERFACES.get_ptr(ifindex).map(|value| unsafe { *value });
    };
    // SAFETY: per-CPU value, only this CPU reads and writes it.
    let cache = unsafe { &mut *cache };
    if cache.ifindex != ifindex || cache.generation != generation {
        // SAFETY: as above.
        let found = INTERFACES.get_ptr(ifindex).map(|value| unsafe { *value });
        cache.generation = generation;
        cache.ifindex = ifindex;
        cache.present = u32::from(found.is_some());
        cache.interface = found.unwrap_or_default();
    }
    (cache.present != 0).then_some(cache.interface)
}

/// Whether the program is attached to `ifindex` (the agent lists exactly those).
#[inline(always)]
pub(crate) fn is_attached(ifindex: u32) -> bool {
    INTERFACES.get_ptr(ifindex).is_some()
}

#[inline(always)]
fn forward(ctx: &XdpContext) -> (Verdict, u32) {
    let ipv6 = match headers::ether_type(ctx) {
        Ok(EtherType::Ipv4) => false,
        Ok(EtherType::Ipv6) => true,
        Ok(EtherType::Vlan) => return pass(Verdict::PassedVlan),
        Ok(EtherType::Other) => return pass(Verdict::PassedNotIp),
        Err(()) => return (Verdict::DroppedMalformed, xdp_action::XDP_DROP),
    };
    // The L2 check, before the IP header is even parsed: a frame for another host (or a group
    // address) is the kernel's (PACKET_OTHERHOST: dropped, bridged, captured, a macvlan's),
    // never ours to route or to drop. No entry: not an interface we know, the same.
    let ingress = ctx.ingress_ifindex() as u32;
    let Some(iface) = interface(ingress) else {
        return pass(Verdict::PassedOtherHost);
    };
    if !headers::is_addressed_to(ctx, &iface.mac) {
        return pass(Verdict::PassedOtherHost);
    }
    if ipv6 {
        forward_ipv6(ctx, &iface, ingress)
    } else {
        forward_ipv4(ctx, &iface, ingress)
    }
}

/// Where a route sends a packet, or the verdict for passing it up.
#[inline(always)]
fn nexthop_of(route: Route) -> Result<Nexthop, Verdict> {
    match route {
        Route::None => Err(Verdict::PassedNoRoute),
        Route::Local => Err(Verdict::PassedLocal),
        Route::Pass => Err(Verdict::PassedByRoute),
        Route::ForwardingOff => Err(Verdict::PassedForwardingOff),
        Route::Unresolved => Err(Verdict::PassedUnresolved),
        Route::TooBig => Err(Verdict::PassedMtu),
        Route::Nexthop(nexthop) => Ok(nexthop),
        Route::Kernel(nexthop) => Ok(nexthop),
    }
}

/// The interface's reverse-path filter, for a packet about to be forwarded: `Some` verdict
/// if it must not be.
#[inline(always)]
fn reverse_path_verdict(iface: &Interface, ingress: u32, src: Source) -> Option<(Verdict, u32)> {
    // The kernel engine has no FIB of its own to check against (config refuses `rpf` there).
    if iface.rpf == RpfMode::Off as u8 || lookup::engine() == LookupEngine::Kernel as u32 {
        return None;
    }
    let accept_local = iface.flags & INTERFACE_F_ACCEPT_LOCAL_V4 != 0;
    match lookup::reverse_path(src, iface.rpf, ingress, accept_local) {
        ReversePath::Accept => None,
        ReversePath::Drop => Some((Verdict::DroppedRpf, xdp_action::XDP_DROP)),
        ReversePath::Kernel => Some(pass(Verdict::PassedRpfKernel)),
    }
}

#[inline(always)]
fn forward_ipv4(ctx: &XdpContext, iface: &Interface, ingress: u32) -> (Verdict, u32) {
    let Ok(ip) = Ipv4Header::parse(ctx) else {
        return (Verdict::DroppedMalformed, xdp_action::XDP_DROP);
    };
    if ip.has_options() {
        return pass(Verdict::PassedIpOptions);
    }
    // ip_rcv_core drops it before routing.
    if !ip.checksum_ok() {
        return pass(Verdict::PassedBadChecksum);
    }
    let (src, dst) = (ip.src(), ip.dst());
    if headers::ipv4_is_martian_dst(dst) {
        return pass(Verdict::PassedMartian);
    }
    if headers::ipv4_is_link_scope(dst) {
        return pass(Verdict::PassedLocal);
    }
    if headers::ipv4_is_martian_src(src) {
        return pass(Verdict::PassedMartian);
    }
    if ip.ttl() <= 1 {
        return pass(Verdict::PassedTtl);
    }
    let ports = ip.l4_ports(ctx);
    let nexthop = match nexthop_of(lookup::route(ctx, Destination::V4 { ip: &ip, ports })) {
        Ok(nexthop) => nexthop,
        Err(verdict) => return pass(verdict),
    };
    // After the lookup, so that traffic for the host counts as local.
    if iface.flags & INTERFACE_F_FORWARD_V4 == 0 {
        return pass(Verdict::PassedForwardingOff);
    }
    if u32::from(ip.total_len()) > u32::from(nexthop.mtu) {
        return pass(Verdict::PassedMtu);
    }
    if let Some(verdict) = reverse_path_verdict(iface, ingress, Source::V4(src)) {
        return verdict;
    }
    // fib_validate_source refuses a local source even with rp_filter off (with it on, the
    // reverse-path filter above has judged local sources already).
    if iface.flags & INTERFACE_F_ACCEPT_LOCAL_V4 == 0 && local::is_local_v4(src) {
        return pass(Verdict::PassedLocalSource);
    }
    ip.decrement_ttl();
    let len = ip.total_len();
    transmit(ctx, &nexthop, u64::from(len) + ETH_HDR_LEN as u64)
}

#[inline(always)]
fn forward_ipv6(ctx: &XdpContext, iface: &Interface, ingress: u32) -> (Verdict, u32) {
    let Ok(ip) = Ipv6Header::parse(ctx) else {
        return (Verdict::DroppedMalformed, xdp_action::XDP_DROP);
    };
    if headers::ipv6_is_martian_dst(ip.dst()) {
        return pass(Verdict::PassedMartian);
    }
    if headers::ipv6_is_link_scope(ip.dst()) {
        return pass(Verdict::PassedLocal);
    }
    let ports = ip.l4_ports(ctx);
    if let L4Ports::NeighborDiscovery = ports {
        return pass(Verdict::PassedNotIp);
    }
    // Hop-by-hop options (router alert: MLD, RSVP) are the kernel's to process.
    if ip.next_header() == IPPROTO_HOPOPTS {
        return pass(Verdict::PassedIpOptions);
    }
    if headers::ipv6_is_martian_src(ip.src()) {
        return pass(Verdict::PassedMartian);
    }
    if ip.hop_limit() <= 1 {
        return pass(Verdict::PassedTtl);
    }
    let nexthop = match nexthop_of(lookup::route(ctx, Destination::V6 { ip: &ip, ports })) {
        Ok(nexthop) => nexthop,
        Err(verdict) => return pass(verdict),
    };
    // ip6_forward reads the `all` switch (and per interface `force_forwarding`): the agent
    // folds them into this flag.
    if iface.flags & INTERFACE_F_FORWARD_V6 == 0 {
        return pass(Verdict::PassedForwardingOff);
    }
    let len = u32::from(ip.payload_len()) + headers::IPV6_HDR_LEN as u32;
    if len > u32::from(nexthop.mtu) {
        return pass(Verdict::PassedMtu);
    }
    if let Some(verdict) = reverse_path_verdict(iface, ingress, Source::V6(ip.src())) {
        return verdict;
    }
    ip.decrement_hop_limit();
    transmit(ctx, &nexthop, u64::from(len) + ETH_HDR_LEN as u64)
}

/// Rewrites the Ethernet header for `nexthop` and redirects through `EGRESS_PORTS`.
#[inline(always)]
fn transmit(ctx: &XdpContext, nexthop: &Nexthop, frame_len: u64) -> (Verdict, u32) {
    if headers::rewrite_macs(ctx, &nexthop.dst_mac, &nexthop.src_mac).is_err() {
        return (Verdict::DroppedMalformed, xdp_action::XDP_DROP);
    }
    // On a miss the helper returns the low bits of `flags`: drop, as the packet is rewritten
    // already and the kernel would see a frame addressed to someone else.
    match EGRESS_PORTS.redirect(nexthop.ifindex, u64::from(xdp_action::XDP_DROP)) {
        Ok(action) => {
            if let Some(stats) = NEXTHOP_STATS.get_ptr_mut(nexthop.id) {
                // SAFETY: per-CPU value, only this CPU writes it.
                unsafe {
                    (*stats).packets += 1;
                    (*stats).bytes += frame_len;
                }
            }
            (Verdict::Forwarded, action)
        }
        Err(_) => (Verdict::DroppedRedirect, xdp_action::XDP_DROP),
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
