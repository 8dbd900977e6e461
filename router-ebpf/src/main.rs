//! hostrouter's XDP forwarding program.
//!
//! For each received frame: parse Ethernet and IPv4/IPv6, hand everything that is not plain
//! transit traffic to the kernel, look the destination up in our FIB (LPM trie, DIR-24-8 or the
//! kernel's FIB), pick a nexthop from the route's ECMP group by flow hash, rewrite the MACs,
//! decrement the TTL and redirect to the egress port.
//!
//! The rule is "forward what we are sure of, pass the rest": every case this program does not
//! handle (local, TTL expiry, unresolved neighbor, too big, not IP) returns `XDP_PASS` so the
//! kernel does what it always did. Only frames whose headers are broken are dropped.
#![no_std]
#![no_main]

mod headers;
mod lookup;

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{DevMapHash, PerCpuArray},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use router_common::{
    MAX_EGRESS_PORTS, MAX_NEXTHOP_IDS, Nexthop, NexthopStats, VERDICT_COUNT, Verdict,
};

use headers::{ETH_HDR_LEN, EtherType, Ipv4Header, Ipv6Header, L4Ports};
use lookup::{Destination, Route};

#[btf_map]
static EGRESS_PORTS: DevMapHash<{ MAX_EGRESS_PORTS as usize }> = DevMapHash::new();

#[btf_map]
static VERDICT_STATS: PerCpuArray<u64, { VERDICT_COUNT as usize }> = PerCpuArray::new();

#[btf_map]
static NEXTHOP_STATS: PerCpuArray<NexthopStats, { MAX_NEXTHOP_IDS as usize }> =
    PerCpuArray::new();

#[xdp]
pub fn hostrouter(ctx: XdpContext) -> u32 {
    let (verdict, action) = forward(&ctx);
    count(verdict);
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

#[inline(always)]
fn forward(ctx: &XdpContext) -> (Verdict, u32) {
    match headers::ether_type(ctx) {
        Ok(EtherType::Ipv4) => forward_ipv4(ctx),
        Ok(EtherType::Ipv6) => forward_ipv6(ctx),
        Ok(EtherType::Vlan) => pass(Verdict::PassedVlan),
        Ok(EtherType::Other) => pass(Verdict::PassedNotIp),
        Err(()) => (Verdict::DroppedMalformed, xdp_action::XDP_DROP),
    }
}

#[inline(always)]
fn forward_ipv4(ctx: &XdpContext) -> (Verdict, u32) {
    let Ok(ip) = Ipv4Header::parse(ctx) else {
        return (Verdict::DroppedMalformed, xdp_action::XDP_DROP);
    };
    let dst = ip.dst();
    if headers::ipv4_is_link_scope(dst) {
        return pass(Verdict::PassedLocal);
    }
    if ip.ttl() <= 1 {
        return pass(Verdict::PassedTtl);
    }
    let ports = ip.l4_ports(ctx);
    let route = lookup::route(ctx, Destination::V4 { ip: &ip, ports });
    let nexthop = match route {
        Route::None => return pass(Verdict::PassedNoRoute),
        Route::Local => return pass(Verdict::PassedLocal),
        Route::Unresolved => return pass(Verdict::PassedUnresolved),
        Route::TooBig => return pass(Verdict::PassedMtu),
        Route::Nexthop(nexthop) => nexthop,
        Route::Kernel(nexthop) => nexthop,
    };
    if u32::from(ip.total_len()) > u32::from(nexthop.mtu) {
        return pass(Verdict::PassedMtu);
    }
    ip.decrement_ttl();
    let len = ip.total_len();
    transmit(ctx, &nexthop, u64::from(len) + ETH_HDR_LEN as u64)
}

#[inline(always)]
fn forward_ipv6(ctx: &XdpContext) -> (Verdict, u32) {
    let Ok(ip) = Ipv6Header::parse(ctx) else {
        return (Verdict::DroppedMalformed, xdp_action::XDP_DROP);
    };
    if headers::ipv6_is_link_scope(ip.dst()) {
        return pass(Verdict::PassedLocal);
    }
    let ports = ip.l4_ports(ctx);
    if let L4Ports::NeighborDiscovery = ports {
        return pass(Verdict::PassedNotIp);
    }
    if ip.hop_limit() <= 1 {
        return pass(Verdict::PassedTtl);
    }
    let route = lookup::route(ctx, Destination::V6 { ip: &ip, ports });
    let nexthop = match route {
        Route::None => return pass(Verdict::PassedNoRoute),
        Route::Local => return pass(Verdict::PassedLocal),
        Route::Unresolved => return pass(Verdict::PassedUnresolved),
        Route::TooBig => return pass(Verdict::PassedMtu),
        Route::Nexthop(nexthop) => nexthop,
        Route::Kernel(nexthop) => nexthop,
    };
    let len = u32::from(ip.payload_len()) + headers::IPV6_HDR_LEN as u32;
    if len > u32::from(nexthop.mtu) {
        return pass(Verdict::PassedMtu);
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
