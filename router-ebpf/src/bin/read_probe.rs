//! Benchmark instrument, not part of the router: one read of a 64-byte line of `PROBE_LINES`,
//! the line whose index the frame's first four bytes hold (little endian).
//!
//! `bench cost` runs it with `BPF_PROG_TEST_RUN`, one frame per run, as it runs the router's
//! lookups: what one read out of a working set of a given size costs from inside an XDP
//! program, at the spread measurement's pace, in a BPF array like the route tables (mmap-able,
//! 4 KiB pages). The lookup engines' spread figures are read against it. It returns
//! `XDP_PASS`, or `XDP_ABORTED` for a frame shorter than 4 bytes or an index out of the map.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, xdp_action},
    btf_maps::Array,
    macros::{btf_map, xdp},
    programs::XdpContext,
};

/// Sized by the loader (`map_max_entries`): one entry per 64-byte line of the working set.
#[btf_map]
static PROBE_LINES: Array<[u64; 8], 1, { BPF_F_MMAPABLE as usize }> = Array::new();

#[xdp]
pub fn read_probe(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + 4 > ctx.data_end() {
        return xdp_action::XDP_ABORTED;
    }
    // SAFETY: 4 bytes checked above.
    let index = u32::from_le_bytes(unsafe { *(start as *const [u8; 4]) });
    match PROBE_LINES.get(index) {
        // SAFETY: a map value the verifier bounds; volatile, so that the read is kept.
        Some(line) => {
            unsafe { core::ptr::read_volatile(&line[0]) };
            xdp_action::XDP_PASS
        }
        None => xdp_action::XDP_ABORTED,
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
