//! Opt-in debug events (`[datapath] log = "debug"` or `router-agent run --xdp-log`): why a
//! frame went to the kernel or was dropped, as aya-log records (aya-log-common's wire format)
//! in the `AYA_LOGS` ring buffer, which the agent reads with aya-log's `EbpfLogger` into its
//! log. Off (the default), `XDP_LOG` is 0 in read-only data: the verifier proves the branch
//! dead and removes it, so the program runs what it ran before this existed.
//!
//! Not aya-log-ebpf's macros: its `AYA_LOG_LEVEL` global carries BTF the kernel rejects
//! (a zero-sized `()` INT in `MaybeUninit<u8>`, aya-rs/aya#1490), which fails the whole load.
//! The record below is what its `debug!(ctx, "{} ifindex {} len {}", ...)` writes.

use aya_ebpf::{btf_maps::RingBuf, macros::btf_map, programs::XdpContext};
use aya_log_common::{Argument, DisplayHint, Field, Header, Level, LogValueLength};
use router_common::Verdict;

/// Set by the agent at load time (`datapath::xdp_log::XDP_LOG_GLOBAL`): 1 emits the events.
#[unsafe(no_mangle)]
static XDP_LOG: u8 = 0;

/// aya-log's ring buffer, by the name `EbpfLogger` looks for; the agent sizes it at load.
#[btf_map]
static AYA_LOGS: RingBuf<u8, { 128 << 10 }> = RingBuf::new();

/// One event per frame not forwarded: the verdict, the ingress interface and the length.
#[inline(always)]
pub(crate) fn verdict(ctx: &XdpContext, verdict: Verdict) {
    // SAFETY: a plain read of a global the loader may rewrite before load.
    if unsafe { core::ptr::read_volatile(&XDP_LOG) } == 0 {
        return;
    }
    // SAFETY: the context the kernel handed to this program.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let len = (ctx.data_end() - ctx.data()) as u32;
    // A literal per verdict: every record's size is a constant the verifier can check.
    macro_rules! emit {
        ($($verdict:ident)*) => {
            match verdict {
                Verdict::Forwarded => {}
                $(Verdict::$verdict => {
                    let _ = emit(Verdict::$verdict.name(), ifindex, len);
                })*
            }
        };
    }
    emit!(PassedLocal PassedTtl PassedNoRoute PassedUnresolved PassedMtu PassedIpOptions
        PassedNotIp PassedVlan PassedOtherHost PassedMartian PassedBadChecksum
        PassedForwardingOff PassedLocalSource PassedByRoute PassedRpfKernel DroppedMalformed
        DroppedRedirect DroppedRpf);
}

/// "{reason} ifindex {ifindex} len {len}", as aya-log-ebpf's macro lays it out.
#[inline(always)]
fn emit(reason: &'static str, ifindex: u32, len: u32) -> Option<()> {
    let hint = DisplayHint::Default;
    let header = Header::new("xdp", Level::Debug, "router", "debug_log.rs", 0, 8)?;
    let (kind, value) = hint.as_argument();
    let hint0 = Field::new(kind, value)?;
    let (kind, value) = reason.as_argument();
    let arg0 = Field::new(kind, value)?;
    let (kind, value) = " ifindex ".as_argument();
    let lit1 = Field::new(kind, value)?;
    let (kind, value) = hint.as_argument();
    let hint1 = Field::new(kind, value)?;
    let (kind, value) = ifindex.as_argument();
    let arg1 = Field::new(kind, value)?;
    let (kind, value) = " len ".as_argument();
    let lit2 = Field::new(kind, value)?;
    let (kind, value) = hint.as_argument();
    let hint2 = Field::new(kind, value)?;
    let (kind, value) = len.as_argument();
    let arg2 = Field::new(kind, value)?;

    let mut size = size_of::<LogValueLength>();
    let mut count = |slice: &[u8]| {
        size += slice.len();
        Some(())
    };
    header.with_bytes(&mut count)?;
    hint0.with_bytes(&mut count)?;
    arg0.with_bytes(&mut count)?;
    lit1.with_bytes(&mut count)?;
    hint1.with_bytes(&mut count)?;
    arg1.with_bytes(&mut count)?;
    lit2.with_bytes(&mut count)?;
    hint2.with_bytes(&mut count)?;
    arg2.with_bytes(&mut count)?;
    let size = LogValueLength::try_from(size).ok()?;
    let mut capacity: LogValueLength = 64;
    while capacity < size {
        capacity <<= 1;
    }
    let mut buf = AYA_LOGS.reserve_bytes(capacity.into(), 0)?;
    let written = (|| {
        let mut pos = 0;
        let mut write = |slice: &[u8]| {
            let buf = buf.get_mut(pos..)?;
            let buf = buf.get_mut(..slice.len())?;
            buf.copy_from_slice(slice);
            pos += slice.len();
            Some(())
        };
        write(size.to_ne_bytes().as_ref())?;
        header.with_bytes(&mut write)?;
        hint0.with_bytes(&mut write)?;
        arg0.with_bytes(&mut write)?;
        lit1.with_bytes(&mut write)?;
        hint1.with_bytes(&mut write)?;
        arg1.with_bytes(&mut write)?;
        lit2.with_bytes(&mut write)?;
        hint2.with_bytes(&mut write)?;
        arg2.with_bytes(&mut write)?;
        Some(())
    })();
    match written {
        Some(()) => buf.submit(0),
        None => buf.discard(0),
    }
    Some(())
}
