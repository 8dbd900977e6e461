//! One parsing helper per header. Every access is bounds-checked against `data_end` right where
//! it happens, which is what the verifier needs to see.

use aya_ebpf::programs::XdpContext;

pub const ETH_HDR_LEN: usize = 14;
pub const IPV4_MIN_HDR_LEN: usize = 20;
pub const IPV6_HDR_LEN: usize = 40;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;

/// A pointer to `T` at `offset` into the frame, or `Err` if the frame is too short.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*mut T, ()> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return Err(());
    }
    Ok((start + offset) as *mut T)
}

#[inline(always)]
fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}

pub enum EtherType {
    Ipv4,
    Ipv6,
    Vlan,
    Other,
}

/// ```text
///  0                   6                  12        14
///  +-------------------+-------------------+---------+
///  | destination MAC   | source MAC        | type    |
///  +-------------------+-------------------+---------+
/// ```
#[inline(always)]
pub fn ether_type(ctx: &XdpContext) -> Result<EtherType, ()> {
    let ether_type: *const [u8; 2] = ptr_at(ctx, 12)?;
    // SAFETY: bounds checked by ptr_at.
    Ok(match u16::from_be_bytes(unsafe { *ether_type }) {
        ETH_P_IPV4 => EtherType::Ipv4,
        ETH_P_IPV6 => EtherType::Ipv6,
        ETH_P_8021Q | ETH_P_8021AD => EtherType::Vlan,
        _ => EtherType::Other,
    })
}

/// Whether the frame is addressed to `mac` (unicast): not a group address, not another
/// host's. Compared as a 32-bit and a 16-bit word: no memcmp in BPF.
#[inline(always)]
pub fn is_addressed_to(ctx: &XdpContext, mac: &[u8; 6]) -> bool {
    let Ok(dst) = ptr_at::<[u8; 6]>(ctx, 0) else {
        return false;
    };
    // SAFETY: bounds checked by ptr_at.
    let dst = unsafe { *dst };
    let high = |m: &[u8; 6]| u32::from_ne_bytes([m[0], m[1], m[2], m[3]]);
    let low = |m: &[u8; 6]| u16::from_ne_bytes([m[4], m[5]]);
    // The I/G bit: broadcast and multicast are never one interface's own address.
    dst[0] & 0x01 == 0 && high(&dst) == high(mac) && low(&dst) == low(mac)
}

#[inline(always)]
pub fn rewrite_macs(ctx: &XdpContext, dst: &[u8; 6], src: &[u8; 6]) -> Result<(), ()> {
    let macs: *mut [u8; 12] = ptr_at(ctx, 0)?;
    // SAFETY: bounds checked by ptr_at.
    let macs = unsafe { &mut *macs };
    macs[..6].copy_from_slice(dst);
    macs[6..].copy_from_slice(src);
    Ok(())
}

/// What the flow hash may use beyond the addresses.
pub enum L4Ports {
    /// TCP, UDP or SCTP with both ports (source port in the high half).
    Ports { proto: u8, ports: u32 },
    /// Fragments, other protocols, and headers we do not walk: hash on L3 (+ protocol) only,
    /// so all fragments of a datagram take the same path.
    L3Only { proto: u8 },
    /// ICMPv6 router/neighbor solicitation/advertisement and redirect: always the kernel's.
    NeighborDiscovery,
}

#[inline(always)]
fn read_ports(ctx: &XdpContext, offset: usize, proto: u8) -> L4Ports {
    match proto {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => match ptr_at::<[u8; 4]>(ctx, offset) {
            // SAFETY: bounds checked by ptr_at.
            Ok(ports) => L4Ports::Ports {
                proto,
                ports: u32::from_be_bytes(unsafe { *ports }),
            },
            Err(()) => L4Ports::L3Only { proto },
        },
        _ => L4Ports::L3Only { proto },
    }
}

#[repr(C)]
struct Ipv4Raw {
    version_ihl: u8,
    tos: u8,
    total_len: [u8; 2],
    id: [u8; 2],
    frag_off: [u8; 2],
    ttl: u8,
    protocol: u8,
    checksum: [u8; 2],
    src: [u8; 4],
    dst: [u8; 4],
}

/// A validated IPv4 header: version 4, IHL >= 5, the header (options included) and the whole
/// datagram inside the frame.
///
/// ```text
///  0       4       8              16      19             31
///  +-------+-------+--------------+-------+--------------+
///  |version|  IHL  |     TOS      |      total length     |
///  |        identification        |flags| fragment offset |
///  |      TTL      |   protocol   |    header checksum    |
///  |                    source address                    |
///  |                 destination address                  |
///  |              options (IHL > 5), 4-byte words         |
///  +------------------------------------------------------+
/// ```
pub struct Ipv4Header {
    raw: *mut Ipv4Raw,
    header_len: usize,
}

impl Ipv4Header {
    #[inline(always)]
    pub fn parse(ctx: &XdpContext) -> Result<Self, ()> {
        let raw: *mut Ipv4Raw = ptr_at(ctx, ETH_HDR_LEN)?;
        // SAFETY: bounds checked by ptr_at.
        let (version_ihl, total_len) = unsafe { ((*raw).version_ihl, (*raw).total_len) };
        let header_len = usize::from(version_ihl & 0x0f) * 4;
        let total_len = usize::from(u16::from_be_bytes(total_len));
        if version_ihl >> 4 != 4
            || header_len < IPV4_MIN_HDR_LEN
            || total_len < header_len
            || ETH_HDR_LEN + total_len > frame_len(ctx)
        {
            return Err(());
        }
        Ok(Self { raw, header_len })
    }

    /// IHL > 5: the header carries options.
    #[inline(always)]
    pub fn has_options(&self) -> bool {
        self.header_len > IPV4_MIN_HDR_LEN
    }

    /// Whether an option-less header's checksum holds (RFC 1071: the ten 16-bit words sum
    /// to 0xffff in one's complement), as `ip_rcv_core` checks before routing. The even bytes
    /// are the words' high halves: summing the two byte columns apart and joining them gives
    /// the word sum with byte loads only, which the unaligned IP header needs anyway.
    #[inline(always)]
    pub fn checksum_ok(&self) -> bool {
        // SAFETY: validated in parse; only called for IHL = 5 (the 20 bytes of `Ipv4Raw`).
        let bytes: &[u8; IPV4_MIN_HDR_LEN] = unsafe { &*(self.raw as *const [u8; 20]) };
        let mut high = 0u32;
        let mut low = 0u32;
        let mut i = 0;
        while i < IPV4_MIN_HDR_LEN {
            high += u32::from(bytes[i]);
            low += u32::from(bytes[i + 1]);
            i += 2;
        }
        let sum = (high << 8) + low;
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = (sum & 0xffff) + (sum >> 16);
        sum == 0xffff
    }

    #[inline(always)]
    pub fn dst(&self) -> [u8; 4] {
        // SAFETY: validated in parse.
        unsafe { (*self.raw).dst }
    }

    #[inline(always)]
    pub fn src(&self) -> [u8; 4] {
        // SAFETY: validated in parse.
        unsafe { (*self.raw).src }
    }

    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        // SAFETY: validated in parse.
        unsafe { (*self.raw).ttl }
    }

    #[inline(always)]
    pub fn tos(&self) -> u8 {
        // SAFETY: validated in parse.
        unsafe { (*self.raw).tos }
    }

    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        // SAFETY: validated in parse.
        u16::from_be_bytes(unsafe { (*self.raw).total_len })
    }

    /// Ports for the flow hash; first fragments too hash on L3 only, so that a datagram's
    /// fragments stay together.
    #[inline(always)]
    pub fn l4_ports(&self, ctx: &XdpContext) -> L4Ports {
        // SAFETY: validated in parse.
        let (frag_off, proto) = unsafe { ((*self.raw).frag_off, (*self.raw).protocol) };
        // More-fragments flag or a non-zero offset.
        if u16::from_be_bytes(frag_off) & 0x3fff != 0 {
            return L4Ports::L3Only { proto };
        }
        read_ports(ctx, ETH_HDR_LEN + self.header_len, proto)
    }

    /// TTL minus one, with the RFC 1624 incremental checksum update: the 16-bit word
    /// (TTL, protocol) drops by 0x0100, so the one's complement sum rises by 0x0100.
    #[inline(always)]
    pub fn decrement_ttl(&self) {
        // SAFETY: validated in parse.
        unsafe {
            (*self.raw).ttl -= 1;
            let sum = u32::from(u16::from_be_bytes((*self.raw).checksum)) + 0x0100;
            let folded = (sum & 0xffff) + (sum >> 16);
            (*self.raw).checksum = (folded as u16).to_be_bytes();
        }
    }
}

/// 169.254/16, multicast, class E and the limited broadcast: never transit (the kernel
/// delivers them or decides).
#[inline(always)]
pub fn ipv4_is_link_scope(dst: [u8; 4]) -> bool {
    dst[0] >= 224 || (dst[0] == 169 && dst[1] == 254)
}

/// Destinations `ip_route_input_slow` rejects as martian: 0/8 and 127/8 (route_localnet is a
/// local-delivery knob; the kernel still decides).
#[inline(always)]
pub fn ipv4_is_martian_dst(dst: [u8; 4]) -> bool {
    dst[0] == 0 || dst[0] == 127
}

/// Sources `ip_route_input_slow` rejects as martian: multicast (224/4), the limited
/// broadcast, 0/8 and 127/8.
#[inline(always)]
pub fn ipv4_is_martian_src(src: [u8; 4]) -> bool {
    src[0] == 0 || src[0] == 127 || (src[0] & 0xf0) == 224 || u32::from_ne_bytes(src) == u32::MAX
}

#[repr(C)]
struct Ipv6Raw {
    version_class_flow: [u8; 4],
    payload_len: [u8; 2],
    next_header: u8,
    hop_limit: u8,
    src: [u8; 16],
    dst: [u8; 16],
}

/// A validated IPv6 header: version 6, header and payload inside the frame.
///
/// ```text
///  0       4               12                              31
///  +-------+---------------+-------------------------------+
///  |version| traffic class |           flow label          |
///  |        payload length         |  next header | hop lim |
///  |                 source address (128 bits)             |
///  |              destination address (128 bits)           |
///  +-------------------------------------------------------+
/// ```
pub struct Ipv6Header {
    raw: *mut Ipv6Raw,
}

impl Ipv6Header {
    #[inline(always)]
    pub fn parse(ctx: &XdpContext) -> Result<Self, ()> {
        let raw: *mut Ipv6Raw = ptr_at(ctx, ETH_HDR_LEN)?;
        // SAFETY: bounds checked by ptr_at.
        let (version, payload_len) =
            unsafe { ((*raw).version_class_flow[0] >> 4, (*raw).payload_len) };
        let payload_len = usize::from(u16::from_be_bytes(payload_len));
        if version != 6 || ETH_HDR_LEN + IPV6_HDR_LEN + payload_len > frame_len(ctx) {
            return Err(());
        }
        Ok(Self { raw })
    }

    #[inline(always)]
    pub fn dst(&self) -> &[u8; 16] {
        // SAFETY: validated in parse.
        unsafe { &(*self.raw).dst }
    }

    #[inline(always)]
    pub fn src(&self) -> &[u8; 16] {
        // SAFETY: validated in parse.
        unsafe { &(*self.raw).src }
    }

    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        // SAFETY: validated in parse.
        unsafe { (*self.raw).next_header }
    }

    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        // SAFETY: validated in parse.
        unsafe { (*self.raw).hop_limit }
    }

    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        // SAFETY: validated in parse.
        u16::from_be_bytes(unsafe { (*self.raw).payload_len })
    }

    /// Traffic class and flow label word, as `bpf_fib_lookup` wants it (network order).
    #[inline(always)]
    pub fn flow_info(&self) -> [u8; 4] {
        // SAFETY: validated in parse.
        let word = unsafe { (*self.raw).version_class_flow };
        [word[0] & 0x0f, word[1], word[2], word[3]]
    }

    /// Ports when the upper-layer header follows directly; extension headers (a fragment
    /// header included) hash on L3 only.
    #[inline(always)]
    pub fn l4_ports(&self, ctx: &XdpContext) -> L4Ports {
        // SAFETY: validated in parse.
        let proto = unsafe { (*self.raw).next_header };
        let l4 = ETH_HDR_LEN + IPV6_HDR_LEN;
        if proto == IPPROTO_ICMPV6 {
            if let Ok(icmp_type) = ptr_at::<u8>(ctx, l4) {
                // SAFETY: bounds checked by ptr_at.
                // 133..=137: router/neighbor solicitation/advertisement, redirect.
                if (133..=137).contains(&unsafe { *icmp_type }) {
                    return L4Ports::NeighborDiscovery;
                }
            }
            return L4Ports::L3Only { proto };
        }
        read_ports(ctx, l4, proto)
    }

    #[inline(always)]
    pub fn decrement_hop_limit(&self) {
        // SAFETY: validated in parse.
        unsafe { (*self.raw).hop_limit -= 1 };
    }
}

/// IPv6 next header value of a hop-by-hop options header.
pub const IPPROTO_HOPOPTS: u8 = 0;

/// Multicast and link-local unicast: never transit (the kernel delivers them).
#[inline(always)]
pub fn ipv6_is_link_scope(dst: &[u8; 16]) -> bool {
    dst[0] == 0xff || is_ipv6_link_local(dst)
}

#[inline(always)]
fn is_ipv6_link_local(addr: &[u8; 16]) -> bool {
    addr[0] == 0xfe && addr[1] & 0xc0 == 0x80
}

/// ::/127: the unspecified address and loopback.
#[inline(always)]
fn is_ipv6_unspecified_or_loopback(addr: &[u8; 16]) -> bool {
    let word = |i: usize| u32::from_ne_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    word(0) | word(4) | word(8) == 0 && u32::from_be(word(12)) <= 1
}

/// Destinations `ip6_rcv_core` drops: loopback, and the unspecified address.
#[inline(always)]
pub fn ipv6_is_martian_dst(dst: &[u8; 16]) -> bool {
    is_ipv6_unspecified_or_loopback(dst)
}

/// Sources the kernel never forwards: multicast (`ip6_rcv_core` drops it), link-local and
/// loopback (`ip6_forward`: "security critical"), unspecified, IPv4-mapped (`ip6_rcv_core`,
/// RFC 4291 2.5.5.2).
#[inline(always)]
pub fn ipv6_is_martian_src(src: &[u8; 16]) -> bool {
    let word = |i: usize| u32::from_ne_bytes([src[i], src[i + 1], src[i + 2], src[i + 3]]);
    let v4_mapped = word(0) | word(4) == 0 && u32::from_be(word(8)) == 0xffff;
    src[0] == 0xff || is_ipv6_link_local(src) || is_ipv6_unspecified_or_loopback(src) || v4_mapped
}
