//! Test oracle, not part of the router: asks the kernel's FIB what it would do with a packet.
//!
//! Run with `BPF_PROG_TEST_RUN` (with `ingress_ifindex` set in the `xdp_md` context, so that
//! the helper looks up in the ingress device's namespace). The input "frame" is not a packet
//! but a `struct bpf_fib_lookup` (64 bytes, filled in by the test from the packet's fields)
//! followed by 8 bytes for the answer. The program calls `bpf_fib_lookup` with flags 0 (the
//! kernel's full input lookup: policy rules, forwarding sysctl, route type, MTU, neighbor
//! resolution) and writes the updated struct back, then the helper's return code (i64, little
//! endian) after it. It returns `XDP_PASS`, or `XDP_ABORTED` if the input is too short.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{bpf_fib_lookup as FibLookup, xdp_action},
    helpers::generated::bpf_fib_lookup,
    macros::xdp,
    programs::XdpContext,
};

const PARAMS_LEN: usize = core::mem::size_of::<FibLookup>();
const FRAME_LEN: usize = PARAMS_LEN + 8;

#[xdp]
pub fn fib_oracle(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + FRAME_LEN > ctx.data_end() {
        return xdp_action::XDP_ABORTED;
    }
    let frame = start as *mut [u8; FRAME_LEN];
    // SAFETY: FRAME_LEN bytes checked above.
    let frame = unsafe { &mut *frame };
    // SAFETY: bpf_fib_lookup is plain old data; every byte pattern is valid.
    let mut params: FibLookup = unsafe { core::mem::zeroed() };
    // SAFETY: both are PARAMS_LEN bytes; the helper needs the struct on the stack.
    unsafe {
        core::ptr::copy_nonoverlapping(
            frame.as_ptr(),
            (&mut params as *mut FibLookup).cast::<u8>(),
            PARAMS_LEN,
        )
    };
    // SAFETY: params is a valid, initialised bpf_fib_lookup of the size we pass.
    let rc = unsafe { bpf_fib_lookup(ctx.ctx.cast(), &mut params, PARAMS_LEN as i32, 0) };
    // SAFETY: as above, the other way round.
    unsafe {
        core::ptr::copy_nonoverlapping(
            (&params as *const FibLookup).cast::<u8>(),
            frame.as_mut_ptr(),
            PARAMS_LEN,
        )
    };
    frame[PARAMS_LEN..FRAME_LEN].copy_from_slice(&rc.to_le_bytes());
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
