//! The XDP program, packet in -> verdict + packet out, through `BPF_PROG_TEST_RUN`.
//! Needs root (CAP_BPF + CAP_NET_ADMIN). Every test runs for each lookup engine that keeps its
//! own routes (LPM trie and DIR-24-8); the kernel engine is covered by the netns tests.

mod common;

use std::collections::HashMap;

use common::*;
use router_common::{LookupEngine, Verdict};

const ENGINES: [LookupEngine; 3] = [
    LookupEngine::LpmTrie,
    LookupEngine::Dir24,
    LookupEngine::Dxr,
];

const NH_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

/// One route, 198.51.100.0/24 and 2001:db8:100::/48, via one resolved nexthop.
fn one_route(engine: LookupEngine) -> Harness {
    let mut h = Harness::new(engine);
    h.neighbor("192.0.2.1", Some(NH_A));
    h.route("198.51.100.0/24", &["192.0.2.1"]);
    h.route("2001:db8:100::/48", &["192.0.2.1"]);
    h
}

fn delta(before: &[u64], after: &[u64], verdict: Verdict) -> u64 {
    after[verdict as usize] - before[verdict as usize]
}

#[test]
fn ipv4_forward_rewrites_macs_ttl_and_checksum() {
    for engine in ENGINES {
        let mut h = one_route(engine);
        let frame = ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 64, (1234, 80), 18, 0);
        let before = h.verdicts();
        let (action, out) = h.run(&frame);
        assert_eq!(action, XDP_REDIRECT, "{engine:?}");
        assert_eq!(&out[0..6], &NH_A, "destination MAC is the nexthop's");
        assert_eq!(&out[6..12], &EGRESS_MAC, "source MAC is the egress port's");
        assert_eq!(out[22], 63, "TTL decremented");
        assert_eq!(
            ipv4_checksum(&out[14..34]),
            0,
            "header checksum still valid"
        );
        // Nothing else changed: the rest of the header and the payload.
        let mut expected = frame.clone();
        expected[0..12].copy_from_slice(&out[0..12]);
        expected[22] = 63;
        expected[24..26].copy_from_slice(&out[24..26]);
        assert_eq!(out, expected);
        assert_eq!(delta(&before, &h.verdicts(), Verdict::Forwarded), 1);
        let stats = h.datapath.nexthop_stats(0).unwrap();
        assert_eq!((stats.packets, stats.bytes), (1, frame.len() as u64));
    }
}

#[test]
fn ipv4_checksum_update_is_right_for_every_ttl_and_checksum() {
    let mut h = one_route(LookupEngine::LpmTrie);
    // Vary TTL and the identification field so the checksum takes many values, including
    // the ones whose incremental update wraps.
    for ttl in 2..=255u8 {
        for id in [0u16, 0x00ff, 0xfeff, 0xffff, 0x1234] {
            let mut frame = ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), ttl, (1, 2), 0, 0);
            frame[18..20].copy_from_slice(&id.to_be_bytes());
            frame[24..26].copy_from_slice(&[0, 0]);
            let checksum = ipv4_checksum(&frame[14..34]);
            frame[24..26].copy_from_slice(&checksum.to_be_bytes());
            let (action, out) = h.run(&frame);
            assert_eq!(action, XDP_REDIRECT);
            assert_eq!(out[22], ttl - 1);
            assert_eq!(ipv4_checksum(&out[14..34]), 0, "ttl {ttl} id {id:#x}");
        }
    }
}

#[test]
fn ipv6_forward_rewrites_macs_and_hop_limit() {
    for engine in ENGINES {
        let mut h = one_route(engine);
        let frame = ipv6_udp(v6("2001:db8::1"), v6("2001:db8:100::9"), 64, (1234, 53), 30);
        let (action, out) = h.run(&frame);
        assert_eq!(action, XDP_REDIRECT, "{engine:?}");
        let mut expected = frame.clone();
        expected[0..6].copy_from_slice(&NH_A);
        expected[6..12].copy_from_slice(&EGRESS_MAC);
        expected[21] = 63;
        assert_eq!(out, expected);
    }
}

#[test]
fn ipv4_route_with_ipv6_nexthop_forwards() {
    // BGP unnumbered: an IPv4 prefix via an IPv6 link-local gateway.
    for engine in ENGINES {
        let mut h = Harness::new(engine);
        h.neighbor("fe80::1", Some(NH_A));
        h.route("203.0.113.0/24", &["fe80::1"]);
        let frame = ipv4_udp(v4("10.0.0.1"), v4("203.0.113.5"), 9, (1, 2), 0, 0);
        let (action, out) = h.run(&frame);
        assert_eq!(action, XDP_REDIRECT);
        assert_eq!(&out[0..6], &NH_A);
    }
}

#[test]
fn cases_left_to_the_kernel_pass_untouched() {
    for engine in ENGINES {
        let mut h = one_route(engine);
        h.local("198.51.100.1");
        h.local("2001:db8:100::1");
        h.neighbor("192.0.2.99", None);
        h.route("192.0.2.128/25", &["192.0.2.99"]);
        let cases: Vec<(&str, Vec<u8>, Verdict)> = vec![
            (
                "ttl 1",
                ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 1, (1, 2), 0, 0),
                Verdict::PassedTtl,
            ),
            (
                "ttl 0",
                ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 0, (1, 2), 0, 0),
                Verdict::PassedTtl,
            ),
            (
                "hop limit 1",
                ipv6_udp(v6("2001:db8::1"), v6("2001:db8:100::9"), 1, (1, 2), 0),
                Verdict::PassedTtl,
            ),
            (
                "local v4",
                ipv4_udp(v4("10.0.0.1"), v4("198.51.100.1"), 64, (1, 2), 0, 0),
                Verdict::PassedLocal,
            ),
            (
                "local v6",
                ipv6_udp(v6("2001:db8::1"), v6("2001:db8:100::1"), 64, (1, 2), 0),
                Verdict::PassedLocal,
            ),
            (
                "multicast",
                ipv4_udp(v4("10.0.0.1"), v4("224.0.0.5"), 64, (1, 2), 0, 0),
                Verdict::PassedLocal,
            ),
            (
                "broadcast",
                ipv4_udp(v4("10.0.0.1"), v4("255.255.255.255"), 64, (1, 2), 0, 0),
                Verdict::PassedLocal,
            ),
            (
                "link-local v4",
                ipv4_udp(v4("10.0.0.1"), v4("169.254.1.1"), 64, (1, 2), 0, 0),
                Verdict::PassedLocal,
            ),
            (
                "link-local v6",
                ipv6_udp(v6("fe80::2"), v6("fe80::1"), 64, (1, 2), 0),
                Verdict::PassedLocal,
            ),
            (
                "multicast v6",
                ipv6_udp(v6("fe80::2"), v6("ff02::1"), 64, (1, 2), 0),
                Verdict::PassedLocal,
            ),
            (
                "no route v4",
                ipv4_udp(v4("10.0.0.1"), v4("203.0.113.1"), 64, (1, 2), 0, 0),
                Verdict::PassedNoRoute,
            ),
            (
                "no route v6",
                ipv6_udp(v6("2001:db8::1"), v6("2001:db8:999::1"), 64, (1, 2), 0),
                Verdict::PassedNoRoute,
            ),
            (
                "unresolved",
                ipv4_udp(v4("10.0.0.1"), v4("192.0.2.200"), 64, (1, 2), 0, 0),
                Verdict::PassedUnresolved,
            ),
        ];
        for (name, frame, verdict) in cases {
            let before = h.verdicts();
            let (action, out) = h.run(&frame);
            assert_eq!(action, XDP_PASS, "{engine:?} {name}");
            assert_eq!(
                out, frame,
                "{engine:?} {name}: passed frames are not modified"
            );
            assert_eq!(
                delta(&before, &h.verdicts(), verdict),
                1,
                "{engine:?} {name}"
            );
        }
    }
}

#[test]
fn neighbor_discovery_arp_and_vlan_pass() {
    let mut h = one_route(LookupEngine::LpmTrie);
    // ICMPv6 neighbor solicitation to a routed (global) address still goes to the kernel.
    let mut ns = ipv6_udp(v6("2001:db8::1"), v6("2001:db8:100::9"), 255, (0, 0), 16);
    ns[20] = 58;
    ns[54] = 135;
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&SENDER_MAC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.resize(60, 0);
    let mut vlan = ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 64, (1, 2), 0, 0);
    vlan.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
    for (name, frame, verdict) in [
        ("ND", ns, Verdict::PassedNotIp),
        ("ARP", arp, Verdict::PassedNotIp),
        ("VLAN", vlan, Verdict::PassedVlan),
    ] {
        let before = h.verdicts();
        let (action, out) = h.run(&frame);
        assert_eq!(action, XDP_PASS, "{name}");
        assert_eq!(out, frame);
        assert_eq!(delta(&before, &h.verdicts(), verdict), 1, "{name}");
    }
}

#[test]
fn larger_than_the_egress_mtu_passes() {
    for engine in ENGINES {
        let mut h = one_route(engine);
        h.link(1000, true);
        let fits = ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 64, (1, 2), 1000 - 28, 0);
        assert_eq!(h.run(&fits).0, XDP_REDIRECT, "exactly the MTU is forwarded");
        let big = ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 64, (1, 2), 1000 - 27, 0);
        let before = h.verdicts();
        assert_eq!(h.run(&big), (XDP_PASS, big.clone()));
        assert_eq!(delta(&before, &h.verdicts(), Verdict::PassedMtu), 1);
        let big6 = ipv6_udp(
            v6("2001:db8::1"),
            v6("2001:db8:100::9"),
            64,
            (1, 2),
            1000 - 47,
        );
        assert_eq!(h.run(&big6).0, XDP_PASS);
    }
}

#[test]
fn link_down_nexthop_is_not_used() {
    let mut h = one_route(LookupEngine::LpmTrie);
    h.link(1500, false);
    let frame = ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 64, (1, 2), 0, 0);
    assert_eq!(h.run(&frame).0, XDP_PASS);
    h.link(1500, true);
    assert_eq!(h.run(&frame).0, XDP_REDIRECT);
}

#[test]
fn truncated_frames_at_every_length_are_dropped_or_passed_never_forwarded() {
    for engine in ENGINES {
        let mut h = one_route(engine);
        let v4_frame = ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 64, (1, 2), 18, 0);
        let v6_frame = ipv6_udp(v6("2001:db8::1"), v6("2001:db8:100::9"), 64, (1, 2), 0);
        // BPF_PROG_TEST_RUN refuses XDP frames shorter than an Ethernet header, so lengths
        // 0..14 cannot be fed; the parser's first bounds check covers them.
        for len in 14..=60 {
            for (family, full) in [("v4", &v4_frame), ("v6", &v6_frame)] {
                if len > full.len() {
                    continue;
                }
                let frame = &full[..len];
                let (action, out) = h.run(frame);
                if len == full.len() {
                    assert_eq!(action, XDP_REDIRECT, "{family} complete frame");
                } else {
                    assert_eq!(action, XDP_DROP, "{engine:?} {family} cut at {len}");
                    assert_eq!(out, frame);
                }
            }
        }
    }
}

#[test]
fn malformed_ip_headers_are_dropped() {
    let mut h = one_route(LookupEngine::Dir24);
    let good = ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 64, (1, 2), 0, 0);
    let mut cases = Vec::new();
    let mut bad_version = good.clone();
    bad_version[14] = 0x55;
    cases.push(("version 5", bad_version));
    for ihl in 0..5u8 {
        let mut bad_ihl = good.clone();
        bad_ihl[14] = 0x40 | ihl;
        cases.push(("ihl < 5", bad_ihl));
    }
    let mut short_total = good.clone();
    short_total[16..18].copy_from_slice(&19u16.to_be_bytes());
    cases.push(("total length < header", short_total));
    let mut long_total = good.clone();
    long_total[16..18].copy_from_slice(&1500u16.to_be_bytes());
    cases.push(("total length > frame", long_total));
    let mut ihl_past_end = good.clone();
    ihl_past_end[14] = 0x4f;
    cases.push(("options past the datagram", ihl_past_end));
    let mut v6_bad = ipv6_udp(v6("2001:db8::1"), v6("2001:db8:100::9"), 64, (1, 2), 0);
    v6_bad[14] = 0x40;
    cases.push(("v6 version 4", v6_bad));
    let mut v6_long = ipv6_udp(v6("2001:db8::1"), v6("2001:db8:100::9"), 64, (1, 2), 0);
    v6_long[18..20].copy_from_slice(&9u16.to_be_bytes());
    cases.push(("v6 payload > frame", v6_long));
    for (name, frame) in cases {
        let before = h.verdicts();
        assert_eq!(h.run(&frame).0, XDP_DROP, "{name}");
        assert_eq!(
            delta(&before, &h.verdicts(), Verdict::DroppedMalformed),
            1,
            "{name}"
        );
    }
    // Ethernet padding after a complete datagram is fine.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 20]);
    assert_eq!(h.run(&padded).0, XDP_REDIRECT);
}

#[test]
fn fragments_of_a_datagram_take_one_path() {
    let mut h = Harness::new(LookupEngine::LpmTrie);
    let vias: Vec<String> = (1..=8).map(|i| format!("192.0.2.{i}")).collect();
    for (i, via) in vias.iter().enumerate() {
        h.neighbor(via, Some(mac(i as u32)));
    }
    let via_refs: Vec<&str> = vias.iter().map(String::as_str).collect();
    h.route("198.51.100.0/24", &via_refs);
    let mut chosen = std::collections::HashSet::new();
    for (port, offset_flags) in [(1u16, 0x2000u16), (7, 0x0010), (9, 0x2020), (11, 0x00b9)] {
        // Fragments: the bytes where ports would be are payload; they must not matter.
        let mut frame = ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 64, (port, port), 0, 0);
        frame[20..22].copy_from_slice(&offset_flags.to_be_bytes());
        frame[24..26].copy_from_slice(&[0, 0]);
        let checksum = ipv4_checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&checksum.to_be_bytes());
        let (action, out) = h.run(&frame);
        assert_eq!(action, XDP_REDIRECT);
        chosen.insert(mac_number(&out[0..6]));
    }
    assert_eq!(chosen.len(), 1, "all fragments on one nexthop");
}

/// 10k flows over 4 nexthops: even within 10%, sticky, and removing one moves only its flows.
#[test]
fn ecmp_spreads_flows_and_is_resilient() {
    for engine in ENGINES {
        let mut h = Harness::new(engine);
        let vias: Vec<String> = (1..=4).map(|i| format!("192.0.2.{i}")).collect();
        for (i, via) in vias.iter().enumerate() {
            h.neighbor(via, Some(mac(i as u32)));
        }
        let via_refs: Vec<&str> = vias.iter().map(String::as_str).collect();
        h.route("0.0.0.0/0", &via_refs);
        let flow = |i: u32| {
            let src = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            ipv4_udp(
                src,
                v4("203.0.113.50"),
                64,
                (1024 + (i % 50000) as u16, 443),
                0,
                0,
            )
        };
        let mut assignment = HashMap::new();
        let mut per_nexthop = [0u32; 4];
        for i in 0..10_000 {
            let (action, out) = h.run(&flow(i));
            assert_eq!(action, XDP_REDIRECT);
            let nexthop = mac_number(&out[0..6]);
            per_nexthop[nexthop as usize] += 1;
            assignment.insert(i, nexthop);
        }
        for count in per_nexthop {
            assert!((2250..=2750).contains(&count), "{engine:?} {per_nexthop:?}");
        }
        for i in (0..10_000).step_by(97) {
            assert_eq!(
                mac_number(&h.run(&flow(i)).1[0..6]),
                assignment[&i],
                "sticky"
            );
        }
        // Nexthop 192.0.2.3 (mac 2) fails.
        h.neighbor("192.0.2.3", None);
        let mut moved_to = [0u32; 4];
        for i in 0..10_000 {
            let now = mac_number(&h.run(&flow(i)).1[0..6]);
            if assignment[&i] == 2 {
                assert_ne!(now, 2);
                moved_to[now as usize] += 1;
            } else {
                assert_eq!(
                    now, assignment[&i],
                    "{engine:?}: flow {i} on a healthy nexthop moved"
                );
            }
        }
        assert!(
            moved_to.iter().filter(|c| **c > 0).count() == 3,
            "{moved_to:?}"
        );
    }
}
