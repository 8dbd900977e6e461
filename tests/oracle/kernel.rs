//! The kernel's answer for a packet: `bpf_fib_lookup` (flags 0, the full input lookup) run by
//! the `fib_oracle` program with the packet's fields and ingress device, plus the checks the
//! kernel's input path makes that the helper does not (L2 destination, header validity, TTL,
//! martian addresses, IPv4 options it acts on).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd, OwnedFd},
};

use aya::{
    Ebpf,
    programs::{
        Xdp,
        links::{FdLink, PinnedLink},
        loaded_programs,
    },
};

use super::packets::{L2, Options, Packet};

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

static ORACLE_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fib_oracle.bpf.o"));

/// `struct bpf_fib_lookup` + 8 bytes for the helper's return code.
const PARAMS_LEN: usize = 64;

pub const RC_SUCCESS: i64 = 0;
pub const RC_NO_NEIGH: i64 = 7;

pub fn rc_name(rc: i64) -> &'static str {
    match rc {
        0 => "SUCCESS",
        1 => "BLACKHOLE",
        2 => "UNREACHABLE",
        3 => "PROHIBIT",
        4 => "NOT_FWDED",
        5 => "FWD_DISABLED",
        6 => "UNSUPP_LWT",
        7 => "NO_NEIGH",
        8 => "FRAG_NEEDED",
        9 => "NO_SRC_ADDR",
        _ => "?",
    }
}

/// What `bpf_fib_lookup` said.
#[derive(Clone, Copy, Debug)]
pub struct FibAnswer {
    pub rc: i64,
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
}

/// Runs XDP programs with `BPF_PROG_TEST_RUN` and an `xdp_md` context naming the ingress
/// device; must be used from a thread inside the router's network namespace (the kernel
/// resolves `ingress_ifindex` in the caller's namespace).
pub struct Runner {
    _oracle_object: Ebpf,
    oracle: OwnedFd,
}

impl Runner {
    pub fn new() -> Self {
        let mut object = Ebpf::load(ORACLE_OBJECT).expect("load fib_oracle.bpf.o");
        let program: &mut Xdp = object
            .program_mut("fib_oracle")
            .unwrap()
            .try_into()
            .unwrap();
        program.load().expect("verify fib_oracle");
        let oracle = program.fd().unwrap().as_fd().try_clone_to_owned().unwrap();
        Self {
            _oracle_object: object,
            oracle,
        }
    }

    /// The program behind the agent's pinned XDP link of an interface.
    pub fn attached_program(pin: &std::path::Path) -> OwnedFd {
        let link = PinnedLink::from_pin(pin).unwrap_or_else(|e| panic!("{}: {e}", pin.display()));
        let id = FdLink::from(link).info().unwrap().program_id();
        let info = loaded_programs()
            .flatten()
            .find(|p| p.id() == id)
            .unwrap_or_else(|| panic!("program {id} of {}", pin.display()));
        info.fd().unwrap().as_fd().try_clone_to_owned().unwrap()
    }

    /// BPF_PROG_TEST_RUN with an `xdp_md` naming the ingress device: (action, frame after
    /// the program). aya's own test_run cannot be had for a program of another process.
    pub fn run(program: &OwnedFd, frame: &[u8], ingress_ifindex: u32) -> (u32, Vec<u8>) {
        let mut out = vec![0u8; frame.len() + 256];
        let ctx = xdp_md(frame.len(), ingress_ifindex);
        // union bpf_attr, the `test` member (BPF_PROG_TEST_RUN).
        let mut attr = [0u64; 10];
        let words = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
        attr[0] = words(program.as_raw_fd() as u32, 0);
        attr[1] = words(frame.len() as u32, out.len() as u32);
        attr[2] = frame.as_ptr() as u64;
        attr[3] = out.as_mut_ptr() as u64;
        attr[4] = words(1, 0);
        attr[5] = words(ctx.len() as u32, 0);
        attr[6] = ctx.as_ptr() as u64;
        // SAFETY: attr is a valid bpf_attr for BPF_PROG_TEST_RUN; the buffers it points to
        // outlive the call and have the sizes it names.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                10,
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr) as u32,
            )
        };
        assert_eq!(
            rc,
            0,
            "BPF_PROG_TEST_RUN ({} bytes, ingress {ingress_ifindex}): {}",
            frame.len(),
            std::io::Error::last_os_error()
        );
        let retval = (attr[0] >> 32) as u32;
        out.truncate((attr[1] >> 32) as usize);
        (retval, out)
    }

    /// `bpf_fib_lookup` for the packet, as the kernel's input path would ask it.
    pub fn lookup(&mut self, packet: &Packet, ingress_ifindex: u32) -> FibAnswer {
        let mut params = [0u8; PARAMS_LEN + 8];
        params[0] = if packet.dst.is_ipv6() { 10 } else { 2 };
        params[1] = packet.proto;
        params[2..4].copy_from_slice(&packet.ports.0.to_be_bytes());
        params[4..6].copy_from_slice(&packet.ports.1.to_be_bytes());
        params[6..8].copy_from_slice(&packet.tot_len.to_ne_bytes());
        params[8..12].copy_from_slice(&ingress_ifindex.to_ne_bytes());
        match (packet.src, packet.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                params[12] = packet.tos;
                params[16..20].copy_from_slice(&src.octets());
                params[32..36].copy_from_slice(&dst.octets());
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                params[12..16].copy_from_slice(&packet.flowinfo.to_be_bytes());
                params[16..32].copy_from_slice(&src.octets());
                params[32..48].copy_from_slice(&dst.octets());
            }
            _ => unreachable!("one family per packet"),
        }
        let (action, out) = Self::run(&self.oracle, &params, ingress_ifindex);
        assert_eq!(action, XDP_PASS, "fib_oracle rejected its input");
        let mut smac = [0u8; 6];
        let mut dmac = [0u8; 6];
        smac.copy_from_slice(&out[52..58]);
        dmac.copy_from_slice(&out[58..64]);
        FibAnswer {
            rc: i64::from_le_bytes(out[PARAMS_LEN..PARAMS_LEN + 8].try_into().unwrap()),
            ifindex: u32::from_ne_bytes(out[8..12].try_into().unwrap()),
            smac,
            dmac,
        }
    }
}

/// `struct xdp_md`: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
/// egress_ifindex.
fn xdp_md(len: usize, ingress_ifindex: u32) -> [u8; 24] {
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ingress_ifindex.to_ne_bytes());
    ctx
}

/// Why the kernel would not forward the packet whatever its FIB says: the checks of
/// ip_rcv / ip_route_input / ip_forward (with rp_filter and send_redirects off, as the lab
/// sets them) and ipv6_rcv / ip6_forward that `bpf_fib_lookup` does not make. `hairpin`:
/// the egress is the ingress device (ip6_forward then skips its source checks).
pub fn input_refusal(packet: &Packet, locals: &[IpAddr], hairpin: bool) -> Option<&'static str> {
    if let Some(why) = packet.malformed {
        return Some(why);
    }
    match packet.l2 {
        L2::Ours => {}
        L2::Foreign => return Some("frame for another host (PACKET_OTHERHOST)"),
        L2::Broadcast | L2::Multicast => return Some("L2 broadcast/multicast (not PACKET_HOST)"),
    }
    if packet.ttl <= 1 {
        return Some("TTL/hop limit expires");
    }
    match (packet.src, packet.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => v4_refusal(packet, src, dst, locals),
        (IpAddr::V6(src), IpAddr::V6(dst)) => v6_refusal(src, dst, hairpin),
        _ => unreachable!(),
    }
}

fn v4_refusal(
    packet: &Packet,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    locals: &[IpAddr],
) -> Option<&'static str> {
    if src.is_multicast() || src.is_broadcast() || src.octets()[0] == 0 || src.is_loopback() {
        return Some("martian source");
    }
    if dst.octets()[0] == 0 || dst.is_loopback() {
        return Some("martian destination");
    }
    if dst.is_multicast() || dst.is_broadcast() {
        return Some("multicast/broadcast destination");
    }
    if locals.contains(&IpAddr::V4(src)) {
        return Some("source is a local address");
    }
    match packet.options {
        Options::RecordRoute | Options::Timestamp => {
            Some("IPv4 option the kernel rewrites (RR/TS)")
        }
        Options::Lsrr | Options::Ssrr => Some("IPv4 source route (accept_source_route off)"),
        Options::None | Options::Padding | Options::RouterAlert => None,
    }
}

fn v6_refusal(src: Ipv6Addr, dst: Ipv6Addr, hairpin: bool) -> Option<&'static str> {
    if src.is_multicast() || src.is_loopback() || dst.is_loopback() {
        return Some("martian source/destination");
    }
    if dst.is_multicast() {
        return Some("multicast destination");
    }
    if !hairpin && (src.is_unspecified() || src.is_unicast_link_local()) {
        return Some("unspecified or link-local source");
    }
    None
}
