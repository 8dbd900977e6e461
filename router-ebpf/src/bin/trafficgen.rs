//! Benchmark and lab helpers, not part of the router:
//!
//! - `trafficgen`: run with `BPF_PROG_TEST_RUN` + `BPF_F_TEST_XDP_LIVE_FRAMES` on the generator's
//!   veth, it writes a complete Ethernet/IP/UDP frame on every run (live-frame pages are
//!   recycled, so nothing may be assumed about their contents) and returns `XDP_TX`. Destinations
//!   cycle through `GEN_DESTINATIONS`, so a run spreads over the whole routing table.
//! - `sink`: counts and drops what arrives at a sink, so that the sink's cost does not bound the
//!   measurement (and a veth peer with an XDP program accepts redirected frames).
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, PerCpuArray},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use router_common::trafficgen::{GenConfig, MAX_DESTINATIONS};

#[btf_map]
static GEN_CONFIG: Array<GenConfig, 1> = Array::new();

/// Destination addresses (IPv4 in the first 4 bytes).
#[btf_map]
static GEN_DESTINATIONS: Array<[u8; 16], { MAX_DESTINATIONS as usize }> = Array::new();

/// Per-CPU position in `GEN_DESTINATIONS`.
#[btf_map]
static GEN_CURSOR: PerCpuArray<u32, 1> = PerCpuArray::new();

/// Packets and bytes seen by `sink`.
#[btf_map]
static SINK_STATS: PerCpuArray<u64, 2> = PerCpuArray::new();

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
/// Bytes of headers written: Ethernet + IPv6 + UDP, the larger family.
const FRAME_HEADERS: usize = 64;

#[xdp]
pub fn trafficgen(ctx: XdpContext) -> u32 {
    match generate(&ctx) {
        Ok(()) => xdp_action::XDP_TX,
        Err(()) => xdp_action::XDP_ABORTED,
    }
}

#[xdp]
pub fn sink(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    if let Some(packets) = SINK_STATS.get_ptr_mut(0) {
        // SAFETY: per-CPU value.
        unsafe { *packets += 1 };
    }
    if let Some(bytes) = SINK_STATS.get_ptr_mut(1) {
        // SAFETY: per-CPU value.
        unsafe { *bytes += len };
    }
    xdp_action::XDP_DROP
}

#[inline(always)]
fn generate(ctx: &XdpContext) -> Result<(), ()> {
    let config = GEN_CONFIG.get(0).ok_or(())?;
    let cursor = GEN_CURSOR.get_ptr_mut(0).ok_or(())?;
    // SAFETY: per-CPU value.
    let index = unsafe { *cursor };
    let next = index + 1;
    // SAFETY: per-CPU value.
    unsafe { *cursor = if next >= config.destinations { 0 } else { next } };
    let dst = GEN_DESTINATIONS.get(index).ok_or(())?;

    // The frame is as long as the test run's input (at least 64 bytes, at most a page): write
    // every header byte, the payload is whatever the page holds.
    let start = ctx.data();
    let end = ctx.data_end();
    if start + FRAME_HEADERS > end || end - start > 4096 {
        return Err(());
    }
    let frame_len = end - start;
    let frame = start as *mut [u8; FRAME_HEADERS];
    // SAFETY: FRAME_HEADERS bytes checked above.
    let frame = unsafe { &mut *frame };
    frame[0..6].copy_from_slice(&config.dst_mac);
    frame[6..12].copy_from_slice(&config.src_mac);
    let sport = (index as u16) | 0x8000;
    if config.ip_version == 6 {
        frame[12] = 0x86;
        frame[13] = 0xdd;
        let payload = (frame_len - ETH_LEN - IPV6_LEN) as u16;
        let ip = ETH_LEN;
        frame[ip] = 0x60;
        frame[ip + 1] = 0;
        frame[ip + 2] = 0;
        frame[ip + 3] = 0;
        frame[ip + 4..ip + 6].copy_from_slice(&payload.to_be_bytes());
        frame[ip + 6] = 17;
        frame[ip + 7] = 64;
        frame[ip + 8..ip + 24].copy_from_slice(&config.src_ip);
        frame[ip + 24..ip + 40].copy_from_slice(dst);
        write_udp(frame, ETH_LEN + IPV6_LEN, sport, payload);
    } else {
        frame[12] = 0x08;
        frame[13] = 0x00;
        let total = (frame_len - ETH_LEN) as u16;
        let ip = ETH_LEN;
        frame[ip] = 0x45;
        frame[ip + 1] = 0;
        frame[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        frame[ip + 4] = 0;
        frame[ip + 5] = 0;
        frame[ip + 6] = 0x40; // DF
        frame[ip + 7] = 0;
        frame[ip + 8] = 64;
        frame[ip + 9] = 17;
        frame[ip + 10] = 0;
        frame[ip + 11] = 0;
        frame[ip + 12..ip + 16].copy_from_slice(&config.src_ip[..4]);
        frame[ip + 16..ip + 20].copy_from_slice(&dst[..4]);
        let mut sum = 0u32;
        let mut i = 0;
        while i < IPV4_LEN {
            sum += u32::from(u16::from_be_bytes([frame[ip + i], frame[ip + i + 1]]));
            i += 2;
        }
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        frame[ip + 10..ip + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        write_udp(frame, ETH_LEN + IPV4_LEN, sport, total - IPV4_LEN as u16);
    }
    Ok(())
}

/// UDP header with checksum 0 (allowed for IPv4; the IPv6 sink drops in XDP before checking).
#[inline(always)]
fn write_udp(frame: &mut [u8; FRAME_HEADERS], at: usize, sport: u16, len: u16) {
    frame[at..at + 2].copy_from_slice(&sport.to_be_bytes());
    frame[at + 2..at + 4].copy_from_slice(&9u16.to_be_bytes());
    frame[at + 4..at + 6].copy_from_slice(&len.to_be_bytes());
    frame[at + 6] = 0;
    frame[at + 7] = 0;
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
