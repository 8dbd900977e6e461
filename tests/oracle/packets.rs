//! Random frames for the oracle: destinations over every prefix and host class of the
//! scenario, random sources (martians included), TTL, destination MACs, IPv4 options,
//! fragments, L4 protocols, sizes, and a few malformed frames. Each frame comes with the
//! fields the kernel's lookup needs and what the kernel's input path checks beyond it.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;
use rand::{Rng, rngs::SmallRng, seq::IndexedRandom};

use super::scenario::Scenario;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum L2 {
    /// The ingress interface's MAC.
    Ours,
    Foreign,
    Broadcast,
    Multicast,
}

/// IPv4 options (one each; padded with NOP/EOL to a 4-byte multiple).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Options {
    None,
    /// NOPs and EOL: the kernel forwards them unchanged.
    Padding,
    /// Router Alert: unchanged without local listeners.
    RouterAlert,
    /// Record Route / Timestamp: the kernel writes into them when forwarding.
    RecordRoute,
    Timestamp,
    /// Source routes: dropped (accept_source_route is off).
    Lsrr,
    Ssrr,
}

pub struct Packet {
    /// Index into the scenario's links (an attached one).
    pub ingress: usize,
    pub frame: Vec<u8>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l2: L2,
    pub ttl: u8,
    pub proto: u8,
    pub ports: (u16, u16),
    /// IPv4 TOS byte / IPv6 first header word (version, traffic class, flow label).
    pub tos: u8,
    pub flowinfo: u32,
    pub options: Options,
    pub fragment: bool,
    /// Why the kernel's ip_rcv would refuse the frame, if it would.
    pub malformed: Option<&'static str>,
    /// IPv4 total length / IPv6 payload length + 40.
    pub tot_len: u16,
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            6 => "tcp".into(),
            17 => "udp".into(),
            1 | 58 => "icmp".into(),
            0 => "hbh".into(),
            44 => "frag".into(),
            p => format!("proto {p}"),
        };
        write!(
            f,
            "{} -> {} {proto} {}->{} ttl {} len {} l2 {:?}",
            self.src, self.dst, self.ports.0, self.ports.1, self.ttl, self.tot_len, self.l2
        )?;
        if self.options != Options::None {
            write!(f, " options {:?}", self.options)?;
        }
        if self.fragment {
            write!(f, " fragment")?;
        }
        if let Some(why) = self.malformed {
            write!(f, " MALFORMED({why})")?;
        }
        write!(f, " frame {}B", self.frame.len())
    }
}

/// Where a packet may be sent to.
#[derive(Clone)]
enum Target {
    Prefix(IpNet),
    Host(IpAddr),
    /// Anywhere in 10.0.0.0/8 or 2001:db8::/32 (mostly unrouted without a default).
    Lab {
        v6: bool,
    },
    /// Any address at all (multicast, 0/8, 127/8, class E, ff00::/8 ...).
    Anything {
        v6: bool,
    },
}

pub struct Generator {
    targets: Vec<Target>,
    locals: Vec<IpAddr>,
}

impl Generator {
    pub fn new(scenario: &Scenario) -> Self {
        let mut targets: Vec<Target> = Vec::new();
        for prefix in scenario.prefixes() {
            // Route prefixes twice: they are what the fast path forwards.
            targets.push(Target::Prefix(prefix));
            targets.push(Target::Prefix(prefix));
        }
        let locals = scenario.local_addresses();
        targets.extend(locals.iter().map(|a| Target::Host(*a)));
        targets.extend(scenario.neighbors.iter().map(|n| Target::Host(n.addr)));
        targets.extend(
            scenario
                .unresolved
                .iter()
                .step_by(3)
                .map(|a| Target::Host(*a)),
        );
        for link in &scenario.links {
            // Network and broadcast addresses.
            targets.push(Target::Host(link.host4(0)));
            targets.push(Target::Host(link.host4(255)));
            targets.push(Target::Host(link.host6(0)));
        }
        for v6 in [false, true] {
            for _ in 0..4 {
                targets.push(Target::Lab { v6 });
            }
            targets.push(Target::Anything { v6 });
        }
        for special in [
            "255.255.255.255",
            "0.0.0.7",
            "127.0.0.9",
            "224.0.0.5",
            "239.1.2.3",
            "240.0.0.1",
            "169.254.1.1",
            "ff02::1",
            "ff0e::1",
            "fe80::1",
            "::",
            "::1",
        ] {
            targets.push(Target::Host(special.parse().unwrap()));
        }
        Self { targets, locals }
    }

    pub fn packet(&self, rng: &mut SmallRng, scenario: &Scenario) -> Packet {
        let attached: Vec<usize> = scenario.attached().map(|(i, _)| i).collect();
        let ingress = *attached.choose(rng).unwrap();
        let dst = match self.targets.choose(rng).unwrap() {
            Target::Prefix(prefix) => random_in(rng, *prefix),
            Target::Host(addr) => *addr,
            Target::Lab { v6: false } => random_in(rng, "10.0.0.0/8".parse().unwrap()),
            Target::Lab { v6: true } => random_in(rng, "2001:db8::/32".parse().unwrap()),
            Target::Anything { v6: false } => IpAddr::V4(Ipv4Addr::from(rng.random::<u32>())),
            Target::Anything { v6: true } => IpAddr::V6(Ipv6Addr::from(rng.random::<u128>())),
        };
        let v6 = dst.is_ipv6();
        let link = &scenario.links[ingress];
        let src = match rng.random_range(0..100) {
            0..70 => link.host(v6, rng.random_range(2..=250)),
            70..85 => random_in(
                rng,
                if v6 { "2001:db8::/32" } else { "10.0.0.0/8" }
                    .parse()
                    .unwrap(),
            ),
            85..90 => *self
                .locals
                .iter()
                .filter(|a| a.is_ipv6() == v6)
                .collect::<Vec<_>>()
                .choose(rng)
                .unwrap()
                .to_owned(),
            _ => {
                let martians: &[&str] = if v6 {
                    &["::", "::1", "fe80::7", "ff02::2", "ff0e::5"]
                } else {
                    &[
                        "0.0.0.0",
                        "0.1.2.3",
                        "127.0.0.1",
                        "224.0.0.1",
                        "255.255.255.255",
                    ]
                };
                martians.choose(rng).unwrap().parse().unwrap()
            }
        };
        let l2 = match rng.random_range(0..100) {
            0..85 => L2::Ours,
            85..92 => L2::Foreign,
            92..96 => L2::Broadcast,
            _ => L2::Multicast,
        };
        let ttl = match rng.random_range(0..10) {
            0 => 0,
            1 => 1,
            2 => 2,
            3 => 255,
            4..6 => rng.random(),
            _ => 64,
        };
        let eth_dst = match l2 {
            L2::Ours => link.mac,
            L2::Foreign => [0x02, 0x0f, 0, 0, rng.random(), rng.random()],
            L2::Broadcast => [0xff; 6],
            L2::Multicast if v6 => [0x33, 0x33, 0, 0, 0, rng.random()],
            L2::Multicast => [0x01, 0x00, 0x5e, 0, 0, rng.random()],
        };
        let mut eth = Vec::with_capacity(14);
        eth.extend_from_slice(&eth_dst);
        eth.extend_from_slice(&link.peer_mac);
        let payload_len = if rng.random_bool(0.03) {
            rng.random_range(1400..1700)
        } else {
            rng.random_range(0..80)
        };
        let (proto, l4) = l4(rng, v6, payload_len);
        let mut packet = if v6 {
            ipv6(rng, eth, src, dst, ttl, proto, l4)
        } else {
            ipv4(rng, eth, src, dst, ttl, proto, l4)
        };
        packet.ingress = ingress;
        packet.l2 = l2;
        if rng.random_bool(0.02) {
            malform(rng, &mut packet);
        }
        packet
    }
}

fn random_in(rng: &mut SmallRng, prefix: IpNet) -> IpAddr {
    match prefix {
        IpNet::V4(net) => {
            let host_bits = 32 - u32::from(net.prefix_len());
            let mask = if host_bits == 32 {
                u32::MAX
            } else {
                (1u32 << host_bits) - 1
            };
            IpAddr::V4(Ipv4Addr::from(
                u32::from(net.network()) | (rng.random::<u32>() & mask),
            ))
        }
        IpNet::V6(net) => {
            let host_bits = 128 - u32::from(net.prefix_len());
            let mask = if host_bits == 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            // Small host numbers half of the time: hosts the neighbor table may know.
            let host = if rng.random_bool(0.5) {
                rng.random_range(0..40)
            } else {
                rng.random::<u128>()
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(net.network()) | (host & mask)))
        }
    }
}

/// (protocol, L4 header + payload) with the ports in the header.
fn l4(rng: &mut SmallRng, v6: bool, payload_len: usize) -> (u8, Vec<u8>) {
    let mut payload = vec![0u8; payload_len];
    rng.fill(&mut payload[..]);
    let (sport, dport): (u16, u16) = (rng.random(), rng.random());
    let mut header = Vec::new();
    let proto = match rng.random_range(0..10) {
        0..5 => {
            header.extend_from_slice(&sport.to_be_bytes());
            header.extend_from_slice(&dport.to_be_bytes());
            header.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
            header.extend_from_slice(&[0, 0]);
            17
        }
        5..8 => {
            header.extend_from_slice(&sport.to_be_bytes());
            header.extend_from_slice(&dport.to_be_bytes());
            header.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
            6
        }
        8 => {
            // Echo request (ICMPv6 128, never neighbor discovery).
            header.extend_from_slice(&[if v6 { 128 } else { 8 }, 0, 0, 0, 0, 1, 0, 1]);
            if v6 { 58 } else { 1 }
        }
        _ => *[47u8, 50, 132, 253].choose(rng).unwrap(),
    };
    header.extend_from_slice(&payload);
    (proto, header)
}

fn ports_of(proto: u8, l4: &[u8]) -> (u16, u16) {
    if matches!(proto, 6 | 17 | 132) && l4.len() >= 4 {
        (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        )
    } else {
        (0, 0)
    }
}

fn ipv4(
    rng: &mut SmallRng,
    mut frame: Vec<u8>,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    proto: u8,
    l4: Vec<u8>,
) -> Packet {
    let (IpAddr::V4(src4), IpAddr::V4(dst4)) = (src, dst) else {
        unreachable!()
    };
    let options = if rng.random_bool(0.1) {
        *[
            Options::Padding,
            Options::RouterAlert,
            Options::RecordRoute,
            Options::Timestamp,
            Options::Lsrr,
            Options::Ssrr,
        ]
        .choose(rng)
        .unwrap()
    } else {
        Options::None
    };
    let option_bytes: Vec<u8> = match options {
        Options::None => vec![],
        Options::Padding => vec![1, 1, 1, 0],
        Options::RouterAlert => vec![0x94, 4, 0, 0],
        Options::RecordRoute => vec![7, 7, 4, 0, 0, 0, 0, 0],
        Options::Timestamp => vec![0x44, 8, 5, 0, 0, 0, 0, 0],
        Options::Lsrr | Options::Ssrr => {
            let kind = if options == Options::Lsrr { 0x83 } else { 0x89 };
            let hop = dst4.octets();
            vec![kind, 7, 4, hop[0], hop[1], hop[2], hop[3], 0]
        }
    };
    // A first fragment (MF) keeps its L4 header; a later one (offset) carries only data.
    let fragment = rng.random_bool(0.08);
    let later_fragment = fragment && rng.random_bool(0.5);
    let flags_offset: u16 = match (fragment, later_fragment) {
        (false, _) => {
            if rng.random_bool(0.5) {
                0x4000
            } else {
                0
            }
        }
        (true, false) => 0x2000,
        (true, true) => (0x2000 * u16::from(rng.random_bool(0.5))) | rng.random_range(1..0x1fff),
    };
    let header_len = 20 + option_bytes.len();
    let total = header_len + l4.len();
    let tos: u8 = if rng.random_bool(0.2) {
        rng.random()
    } else {
        0
    };
    let start = frame.len() + 2;
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.push(0x40 | (header_len / 4) as u8);
    frame.push(tos);
    frame.extend_from_slice(&(total as u16).to_be_bytes());
    frame.extend_from_slice(&rng.random::<u16>().to_be_bytes());
    frame.extend_from_slice(&flags_offset.to_be_bytes());
    frame.extend_from_slice(&[ttl, proto, 0, 0]);
    frame.extend_from_slice(&src4.octets());
    frame.extend_from_slice(&dst4.octets());
    frame.extend_from_slice(&option_bytes);
    let checksum = checksum(&frame[start..start + header_len]);
    frame[start + 10..start + 12].copy_from_slice(&checksum.to_be_bytes());
    let ports = if later_fragment {
        (0, 0)
    } else {
        ports_of(proto, &l4)
    };
    frame.extend_from_slice(&l4);
    Packet {
        ingress: 0,
        frame,
        src,
        dst,
        l2: L2::Ours,
        ttl,
        proto,
        ports,
        tos,
        flowinfo: 0,
        options,
        fragment,
        malformed: None,
        tot_len: total as u16,
    }
}

fn ipv6(
    rng: &mut SmallRng,
    mut frame: Vec<u8>,
    src: IpAddr,
    dst: IpAddr,
    hop_limit: u8,
    proto: u8,
    l4: Vec<u8>,
) -> Packet {
    let (IpAddr::V6(src6), IpAddr::V6(dst6)) = (src, dst) else {
        unreachable!()
    };
    // Extension headers before L4: hop-by-hop (PadN only) or a fragment header.
    let (first, extension, fragment) = match rng.random_range(0..20) {
        0 => (0u8, vec![proto, 0, 1, 4, 0, 0, 0, 0], false),
        1 => {
            let offset: u16 = if rng.random_bool(0.5) {
                rng.random_range(1..0x1fff) << 3
            } else {
                0
            };
            let mut header = vec![proto, 0];
            header.extend_from_slice(&(offset | 1).to_be_bytes());
            header.extend_from_slice(&rng.random::<u32>().to_be_bytes());
            (44u8, header, true)
        }
        _ => (proto, vec![], false),
    };
    let flowinfo: u32 = 0x6000_0000
        | if rng.random_bool(0.5) {
            rng.random::<u32>() & 0x0fff_ffff
        } else {
            0
        };
    let payload_len = extension.len() + l4.len();
    frame.extend_from_slice(&[0x86, 0xdd]);
    frame.extend_from_slice(&flowinfo.to_be_bytes());
    frame.extend_from_slice(&(payload_len as u16).to_be_bytes());
    frame.push(first);
    frame.push(hop_limit);
    frame.extend_from_slice(&src6.octets());
    frame.extend_from_slice(&dst6.octets());
    frame.extend_from_slice(&extension);
    let ports = ports_of(proto, &l4);
    frame.extend_from_slice(&l4);
    Packet {
        ingress: 0,
        frame,
        src,
        dst,
        l2: L2::Ours,
        ttl: hop_limit,
        proto,
        ports,
        tos: 0,
        flowinfo,
        options: Options::None,
        fragment,
        malformed: None,
        tot_len: (payload_len + 40) as u16,
    }
}

/// Breaks the frame in one of the ways the kernel's ip_rcv / ipv6_rcv refuses.
fn malform(rng: &mut SmallRng, packet: &mut Packet) {
    let v6 = packet.dst.is_ipv6();
    let ip = 14;
    let why = match rng.random_range(0..5) {
        0 => {
            let header = if v6 { 40 } else { 20 };
            let cut = rng.random_range(ip..ip + header);
            packet.frame.truncate(cut.max(14));
            "truncated header"
        }
        1 => {
            let len_at = if v6 { ip + 4 } else { ip + 2 };
            let too_long = (packet.frame.len() - ip + rng.random_range(1..100)) as u16;
            packet.frame[len_at..len_at + 2].copy_from_slice(&too_long.to_be_bytes());
            if !v6 {
                fix_checksum(packet);
            }
            "length beyond the frame"
        }
        2 => {
            packet.frame[ip] = (packet.frame[ip] & 0x0f) | if v6 { 0x40 } else { 0x60 };
            "wrong IP version"
        }
        3 if !v6 => {
            packet.frame[ip] = 0x40 | rng.random_range(0..5);
            fix_checksum(packet);
            "IHL below 5"
        }
        _ if !v6 => {
            packet.frame[ip + 10] ^= 0x5a;
            "bad header checksum"
        }
        _ => {
            packet.frame.truncate(ip + 40 + rng.random_range(0..4));
            if packet.tot_len as usize == packet.frame.len() - ip {
                return;
            }
            "payload beyond the frame"
        }
    };
    packet.malformed = Some(why);
}

fn fix_checksum(packet: &mut Packet) {
    let ip = 14;
    let ihl = usize::from(packet.frame[ip] & 0x0f).max(5) * 4;
    if packet.frame.len() < ip + ihl {
        return;
    }
    packet.frame[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
    let sum = checksum(&packet.frame[ip..ip + ihl]);
    packet.frame[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
}

/// RFC 1071 checksum (a correct header sums to 0).
pub fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
