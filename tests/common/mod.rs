//! Shared helpers for the datapath tests: a FIB + loaded XDP program driven by
//! `BPF_PROG_TEST_RUN`, and packet builders.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::IpAddr;

use aya::programs::{TestRun, TestRunOptions};
use ipnet::IpNet;
use router_agent::{
    datapath::{Datapath, DatapathOptions},
    fib::{Batch, Fib, FibLimits, FibOp, LinkState, NexthopKey, RouteTarget, Source},
};
use router_common::{
    INTERFACE_F_FORWARD_V4, INTERFACE_F_FORWARD_V6, Interface, LookupEngine, NEXTHOP_F_CONNECTED,
    NEXTHOP_F_RESOLVED, NEXTHOP_F_VIA_IPV6, Nexthop, NexthopGroup, RpfMode, Verdict,
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

/// The loopback interface: always present, so the egress port map accepts it. Test runs
/// never transmit, they only report the verdict. It is the ingress interface too:
/// `BPF_PROG_TEST_RUN` runs XDP as if on the namespace's loopback.
pub const EGRESS: u32 = 1;
pub const INGRESS: u32 = 1;
pub const EGRESS_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xee, 0x01];
/// The ingress interface's MAC (`INTERFACES[INGRESS]`): test frames are addressed to it.
pub const INGRESS_DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xaa, 0x01];
pub const SENDER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x55, 0x01];

pub struct Harness {
    pub datapath: Datapath,
    pub fib: Fib,
}

impl Harness {
    pub fn new(engine: LookupEngine) -> Self {
        Self::with_options(DatapathOptions::new(engine, "/sys/fs/bpf/unused-by-tests"))
    }

    pub fn with_options(mut options: DatapathOptions) -> Self {
        options.flow_hash_seed = 0x5eed;
        let mut datapath = Datapath::load(options).expect("load the XDP program (root needed)");
        datapath.add_egress_port(EGRESS).unwrap();
        let mut harness = Self {
            datapath,
            fib: Fib::new(FibLimits::default()),
        };
        harness.ingress(
            RpfMode::Off,
            INTERFACE_F_FORWARD_V4 | INTERFACE_F_FORWARD_V6,
        );
        harness.link(1500, true);
        harness
    }

    /// `INTERFACES[INGRESS]`: its MAC is `INGRESS_DST_MAC`.
    pub fn ingress(&mut self, rpf: RpfMode, flags: u8) {
        let interface = Interface {
            mac: INGRESS_DST_MAC,
            rpf: rpf as u8,
            flags,
        };
        self.datapath.set_interface(INGRESS, interface).unwrap();
    }

    /// A route the kernel forwards (`GROUP_PASS`).
    pub fn pass_route(&mut self, prefix: &str) {
        let mut batch = Batch::default();
        self.fib
            .set_route(
                &mut batch,
                Source::Static,
                prefix.parse().unwrap(),
                RouteTarget::Pass,
            )
            .unwrap();
        self.commit(batch);
    }

    /// The group `addr`'s route uses, as the program reads it.
    pub fn group_of(&self, addr: &str) -> (u32, NexthopGroup) {
        let id = self
            .datapath
            .lookup_group(addr.parse().unwrap())
            .unwrap()
            .expect("a route");
        (id, self.datapath.group(id).unwrap())
    }

    /// Sets the egress interfaces (and flags) strict RPF reads in the group of `addr`'s route,
    /// as the FIB records them.
    pub fn group_egress(&mut self, addr: &str, egress: &[u32], flags: u32) {
        let (id, mut group) = self.group_of(addr);
        group.egress = [0; router_common::GROUP_EGRESS_IFINDEXES];
        group.egress[..egress.len()].copy_from_slice(egress);
        group.flags = flags;
        let op = FibOp::WriteGroup {
            id,
            group: Box::new(group),
        };
        self.datapath.apply_ops([&op]).unwrap();
    }

    /// `prefix` on link on `ifindex` (a connected subnet: the destination is the neighbor),
    /// written as records with group `group` and nexthop slot/id `slot`, above what the FIB
    /// of these tests allocates.
    pub fn on_link_route(&mut self, prefix: &str, ifindex: u32, group: u32, slot: u32) {
        let prefix: IpNet = prefix.parse().unwrap();
        let nexthop = Nexthop {
            id: slot,
            ifindex,
            mtu: 1500,
            flags: NEXTHOP_F_CONNECTED
                | NEXTHOP_F_RESOLVED
                | if prefix.addr().is_ipv6() {
                    NEXTHOP_F_VIA_IPV6
                } else {
                    0
                },
            dst_mac: [0; 6],
            src_mac: EGRESS_MAC,
            via: [0; 16],
        };
        let mut record = NexthopGroup {
            buckets: [slot; router_common::NEXTHOP_BUCKETS],
            ..NexthopGroup::EMPTY
        };
        record.members[0] = slot;
        record.egress[0] = ifindex;
        let ops = [
            FibOp::WriteNexthop {
                slot,
                nexthop,
                owner: Default::default(),
            },
            FibOp::WriteGroup {
                id: group,
                group: Box::new(record),
            },
            FibOp::SetRoute { prefix, group },
        ];
        self.datapath.apply_ops(&ops).unwrap();
    }

    pub fn commit(&mut self, batch: Batch) {
        self.datapath.apply(&batch).unwrap();
    }

    pub fn link(&mut self, mtu: u32, up: bool) {
        let mut batch = Batch::default();
        let state = LinkState {
            mac: EGRESS_MAC,
            mtu,
            up,
        };
        self.fib.update_link(&mut batch, EGRESS, Some(state));
        self.commit(batch);
    }

    pub fn neighbor(&mut self, via: &str, mac: Option<[u8; 6]>) {
        let mut batch = Batch::default();
        self.fib
            .update_neighbor(&mut batch, EGRESS, via.parse().unwrap(), mac);
        self.commit(batch);
    }

    pub fn route(&mut self, prefix: &str, vias: &[&str]) {
        let keys: BTreeSet<NexthopKey> = vias
            .iter()
            .map(|via| NexthopKey::host(via.parse().unwrap(), EGRESS))
            .collect();
        let mut batch = Batch::default();
        self.fib
            .set_route(
                &mut batch,
                Source::Static,
                prefix.parse().unwrap(),
                RouteTarget::Via(keys),
            )
            .unwrap();
        self.commit(batch);
    }

    pub fn local(&mut self, addr: &str) {
        let mut batch = Batch::default();
        let host = IpNet::from(addr.parse::<IpAddr>().unwrap());
        self.fib
            .set_route(&mut batch, Source::Local, host, RouteTarget::Local)
            .unwrap();
        self.commit(batch);
    }

    pub fn remove(&mut self, prefix: &str) {
        let mut batch = Batch::default();
        self.fib
            .remove_route(&mut batch, Source::Static, prefix.parse().unwrap());
        self.commit(batch);
    }

    /// Runs one frame through the program: (action, frame after the program).
    pub fn run(&mut self, frame: &[u8]) -> (u32, Vec<u8>) {
        let mut out = vec![0u8; frame.len() + 256];
        let result = self
            .datapath
            .program_mut()
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..TestRunOptions::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        out.truncate(result.data_size_out as usize);
        (result.return_value, out)
    }

    pub fn verdicts(&self) -> Vec<u64> {
        self.datapath.verdict_counts().unwrap()
    }
}

/// Ethernet + IPv4 (with `options` words of IPv4 options) + UDP + zero payload.
pub fn ipv4_udp(
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    ports: (u16, u16),
    payload: usize,
    option_words: usize,
) -> Vec<u8> {
    let header_len = 20 + option_words * 4;
    let total = header_len + 8 + payload;
    let mut frame = Vec::with_capacity(14 + total);
    frame.extend_from_slice(&INGRESS_DST_MAC);
    frame.extend_from_slice(&SENDER_MAC);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.push(0x40 | (header_len / 4) as u8);
    frame.push(0);
    frame.extend_from_slice(&(total as u16).to_be_bytes());
    frame.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, ttl, 17, 0, 0]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&dst);
    // NOP options, then End of Options.
    for i in 0..option_words * 4 {
        frame.push(if i + 1 == option_words * 4 { 0 } else { 1 });
    }
    let checksum = ipv4_checksum(&frame[14..14 + header_len]);
    frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&ports.0.to_be_bytes());
    frame.extend_from_slice(&ports.1.to_be_bytes());
    frame.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.resize(14 + total, 0xab);
    frame
}

/// Ethernet + IPv6 + UDP + zero payload.
pub fn ipv6_udp(
    src: [u8; 16],
    dst: [u8; 16],
    hop_limit: u8,
    ports: (u16, u16),
    payload: usize,
) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&INGRESS_DST_MAC);
    frame.extend_from_slice(&SENDER_MAC);
    frame.extend_from_slice(&[0x86, 0xdd]);
    frame.extend_from_slice(&[0x60, 0x01, 0x23, 0x45]);
    frame.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    frame.push(17);
    frame.push(hop_limit);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&ports.0.to_be_bytes());
    frame.extend_from_slice(&ports.1.to_be_bytes());
    frame.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.resize(14 + 40 + 8 + payload, 0xcd);
    frame
}

/// RFC 1071 checksum of an IPv4 header whose checksum field is zero or present: a correct
/// header sums to 0.
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn v4(addr: &str) -> [u8; 4] {
    addr.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

pub fn v6(addr: &str) -> [u8; 16] {
    addr.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

/// A MAC that encodes a number, to tell nexthops apart in the output frame.
pub fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0x42, b[0], b[1], b[2], b[3]]
}

/// The frame with another destination MAC.
pub fn to_mac(mut frame: Vec<u8>, mac: [u8; 6]) -> Vec<u8> {
    frame[0..6].copy_from_slice(&mac);
    frame
}

pub fn mac_number(mac: &[u8]) -> u32 {
    u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]])
}

// The checks before forwarding (datapath_checks, datapath_rpf).

pub const ENGINES: [LookupEngine; 3] = [
    LookupEngine::LpmTrie,
    LookupEngine::Dir24,
    LookupEngine::Dxr,
];
pub const BOTH: u8 = INTERFACE_F_FORWARD_V4 | INTERFACE_F_FORWARD_V6;

pub const NH_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const NH_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// 198.51.100.0/24 and 2001:db8:100::/48 via 192.0.2.1 (NH_A); sources 10.0.0.0/8 and
/// 2001:db8:aaaa::/48 via 192.0.2.2 (NH_B), a group of their own.
pub fn checks_harness(engine: LookupEngine) -> Harness {
    let mut h = Harness::new(engine);
    h.neighbor("192.0.2.1", Some(NH_A));
    h.neighbor("192.0.2.2", Some(NH_B));
    h.route("198.51.100.0/24", &["192.0.2.1"]);
    h.route("2001:db8:100::/48", &["192.0.2.1"]);
    h.route("10.0.0.0/8", &["192.0.2.2"]);
    h.route("2001:db8:aaaa::/48", &["192.0.2.2"]);
    h
}

pub fn udp4(src: &str, dst: &str) -> Vec<u8> {
    ipv4_udp(v4(src), v4(dst), 64, (1234, 80), 10, 0)
}

pub fn udp6(src: &str, dst: &str) -> Vec<u8> {
    ipv6_udp(v6(src), v6(dst), 64, (1234, 80), 10)
}

/// Runs `frame`; checks the action, that exactly `verdict` counted it, and that a frame not
/// forwarded comes back as it went in.
pub fn expect(h: &mut Harness, what: &str, frame: &[u8], action: u32, verdict: Verdict) -> Vec<u8> {
    let before = h.verdicts();
    let (got, out) = h.run(frame);
    let after = h.verdicts();
    let moved: Vec<(&str, u64)> = Verdict::ALL
        .iter()
        .filter(|v| after[**v as usize] != before[**v as usize])
        .map(|v| (v.name(), after[*v as usize] - before[*v as usize]))
        .collect();
    assert_eq!(moved, [(verdict.name(), 1)], "{what}: verdict");
    assert_eq!(got, action, "{what}: action");
    if action != XDP_REDIRECT {
        assert_eq!(out, frame, "{what}: frame not modified");
    }
    out
}
