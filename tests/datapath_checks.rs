//! What the XDP program leaves to the kernel before forwarding (issue 8: forward exactly what
//! the kernel would): another host's frames, forwarding switched off, IP options, martian
//! addresses, routes to the kernel, on-link destinations without a neighbor. Through
//! `BPF_PROG_TEST_RUN`, for the LPM trie and DIR-24-8; the kernel engine's egress check in a
//! network namespace. Needs root. The reverse-path filter: `datapath_rpf`.

mod common;
mod netns;

use common::*;
use router_agent::fib::FibOp;
use router_common::{
    INTERFACE_F_ACCEPT_LOCAL_V4, INTERFACE_F_FORWARD_V4, INTERFACE_F_FORWARD_V6, Interface,
    LookupEngine, RpfMode, Verdict, local_filter_bit,
};

#[test]
fn frames_for_other_hosts_or_group_addresses_go_to_the_kernel() {
    for engine in ENGINES {
        let mut h = checks_harness(engine);
        let v4 = udp4("10.0.0.1", "198.51.100.9");
        let v6 = udp6("2001:db8:aaaa::1", "2001:db8:100::9");
        let cases = [
            ("foreign unicast", [0x02, 0, 0, 0, 0xaa, 0x02]),
            (
                "foreign, same first four bytes",
                [0x02, 0, 0, 0, 0xab, 0x01],
            ),
            ("broadcast", [0xff; 6]),
            ("IPv4 multicast", [0x01, 0x00, 0x5e, 0x00, 0x00, 0x05]),
            ("IPv6 multicast", [0x33, 0x33, 0x00, 0x00, 0x00, 0x01]),
            // The interface's own MAC with the group bit set is a group address.
            ("own MAC as group", [0x03, 0x00, 0x00, 0x00, 0xaa, 0x01]),
        ];
        for (name, mac) in cases {
            let what = format!("{engine:?} v4 {name}");
            expect(
                &mut h,
                &what,
                &to_mac(v4.clone(), mac),
                XDP_PASS,
                Verdict::PassedOtherHost,
            );
            let what = format!("{engine:?} v6 {name}");
            expect(
                &mut h,
                &what,
                &to_mac(v6.clone(), mac),
                XDP_PASS,
                Verdict::PassedOtherHost,
            );
        }
        // A malformed IP packet to another host is not ours to drop either.
        let mut broken = to_mac(v4.clone(), [0x02, 0, 0, 0, 0xaa, 0x02]);
        broken[14] = 0x55;
        expect(
            &mut h,
            "malformed, other host",
            &broken,
            XDP_PASS,
            Verdict::PassedOtherHost,
        );
        // Addressed to the interface: forwarded.
        let out = expect(&mut h, "own MAC v4", &v4, XDP_REDIRECT, Verdict::Forwarded);
        assert_eq!(&out[0..6], &NH_A);
        expect(&mut h, "own MAC v6", &v6, XDP_REDIRECT, Verdict::Forwarded);
        // An interface the program has no record of: everything to the kernel.
        h.datapath.remove_interface(INGRESS).unwrap();
        expect(&mut h, "no record", &v4, XDP_PASS, Verdict::PassedOtherHost);
        // A new MAC for the interface takes effect.
        h.datapath
            .update_link_mac(INGRESS, Some(INGRESS_DST_MAC))
            .unwrap();
        h.datapath
            .set_interface(
                INGRESS,
                Interface {
                    mac: [0x02, 0, 0, 0, 0xaa, 0x02],
                    rpf: 0,
                    flags: BOTH,
                },
            )
            .unwrap();
        expect(&mut h, "old MAC", &v4, XDP_PASS, Verdict::PassedOtherHost);
        assert!(
            h.datapath
                .update_link_mac(INGRESS, Some(INGRESS_DST_MAC))
                .unwrap()
        );
        assert_eq!(h.datapath.interface(INGRESS).unwrap().mac, INGRESS_DST_MAC);
        expect(
            &mut h,
            "MAC changed back",
            &v4,
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
    }
}

#[test]
fn forwarding_off_is_per_family() {
    for engine in ENGINES {
        let mut h = checks_harness(engine);
        h.local("198.51.100.1");
        let v4 = udp4("10.0.0.1", "198.51.100.9");
        let v6 = udp6("2001:db8:aaaa::1", "2001:db8:100::9");
        h.ingress(RpfMode::Off, INTERFACE_F_FORWARD_V6);
        expect(
            &mut h,
            "v4 off",
            &v4,
            XDP_PASS,
            Verdict::PassedForwardingOff,
        );
        expect(&mut h, "v6 on", &v6, XDP_REDIRECT, Verdict::Forwarded);
        // Traffic for the host still counts as local.
        let local = udp4("10.0.0.1", "198.51.100.1");
        expect(&mut h, "v4 local", &local, XDP_PASS, Verdict::PassedLocal);
        h.ingress(RpfMode::Off, INTERFACE_F_FORWARD_V4);
        expect(&mut h, "v4 on", &v4, XDP_REDIRECT, Verdict::Forwarded);
        expect(
            &mut h,
            "v6 off",
            &v6,
            XDP_PASS,
            Verdict::PassedForwardingOff,
        );
        h.ingress(RpfMode::Off, 0);
        expect(
            &mut h,
            "v4 all off",
            &v4,
            XDP_PASS,
            Verdict::PassedForwardingOff,
        );
        expect(
            &mut h,
            "v6 all off",
            &v6,
            XDP_PASS,
            Verdict::PassedForwardingOff,
        );
    }
}

#[test]
fn ip_options_and_hop_by_hop_go_to_the_kernel() {
    for engine in ENGINES {
        let mut h = checks_harness(engine);
        for words in 1..=10 {
            let frame = ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 64, (1, 2), 0, words);
            let what = format!("{engine:?} {words} option words");
            expect(&mut h, &what, &frame, XDP_PASS, Verdict::PassedIpOptions);
        }
        let plain = ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 64, (1, 2), 0, 0);
        expect(
            &mut h,
            "no options",
            &plain,
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
        let mut hop_by_hop = udp6("2001:db8:aaaa::1", "2001:db8:100::9");
        hop_by_hop[20] = 0;
        expect(
            &mut h,
            "hop-by-hop",
            &hop_by_hop,
            XDP_PASS,
            Verdict::PassedIpOptions,
        );
    }
}

#[test]
fn bad_ipv4_header_checksums_go_to_the_kernel() {
    for engine in ENGINES {
        let mut h = checks_harness(engine);
        let good = udp4("10.0.0.1", "198.51.100.9");
        assert_eq!(ipv4_checksum(&good[14..34]), 0);
        let out = expect(&mut h, "good", &good, XDP_REDIRECT, Verdict::Forwarded);
        assert_eq!(
            ipv4_checksum(&out[14..34]),
            0,
            "{engine:?}: updated checksum"
        );
        // Off by one in either byte, zeroed, and a changed header field under the old sum.
        let mut cases = Vec::new();
        for (at, delta) in [(24, 1u8), (25, 1), (24, 0x80), (25, 0xff)] {
            let mut bad = good.clone();
            bad[at] = bad[at].wrapping_add(delta);
            cases.push((format!("checksum byte {at} + {delta}"), bad));
        }
        let mut zeroed = good.clone();
        zeroed[24..26].fill(0);
        cases.push(("checksum zeroed".to_owned(), zeroed));
        let mut changed = good.clone();
        changed[22] = 65;
        cases.push(("TTL changed, sum not".to_owned(), changed));
        for (name, frame) in cases {
            let what = format!("{engine:?} {name}");
            expect(&mut h, &what, &frame, XDP_PASS, Verdict::PassedBadChecksum);
        }
        // Options are the kernel's before the checksum is looked at.
        let mut options = ipv4_udp(v4("10.0.0.1"), v4("198.51.100.9"), 64, (1, 2), 0, 1);
        options[24] ^= 0x55;
        expect(
            &mut h,
            "options",
            &options,
            XDP_PASS,
            Verdict::PassedIpOptions,
        );
        // IPv6 has no header checksum.
        let v6 = udp6("2001:db8:aaaa::1", "2001:db8:100::9");
        expect(&mut h, "v6", &v6, XDP_REDIRECT, Verdict::Forwarded);
    }
}

/// An address in 10.0.0.0/8 (routed, not local) whose filter bit is `local`'s.
fn filter_collision(local: [u8; 4]) -> String {
    let bit = local_filter_bit(local);
    (1u32..1 << 24)
        .map(|n| {
            let b = n.to_be_bytes();
            [10, b[1], b[2], b[3]]
        })
        .find(|addr| *addr != local && local_filter_bit(*addr) == bit)
        .map(|addr| std::net::Ipv4Addr::from(addr).to_string())
        .expect("a collision in a /8")
}

#[test]
fn sources_that_are_local_addresses_go_to_the_kernel() {
    for engine in ENGINES {
        let mut h = checks_harness(engine);
        h.local("10.0.0.1");
        h.local("10.255.255.255");
        assert!(h.datapath.is_local_v4("10.0.0.1".parse().unwrap()));
        let local = udp4("10.0.0.1", "198.51.100.9");
        expect(
            &mut h,
            "local",
            &local,
            XDP_PASS,
            Verdict::PassedLocalSource,
        );
        let broadcast = udp4("10.255.255.255", "198.51.100.9");
        expect(
            &mut h,
            "broadcast",
            &broadcast,
            XDP_PASS,
            Verdict::PassedLocalSource,
        );
        // Same filter bit, not local: the exact check forwards it.
        let twin = filter_collision(v4("10.0.0.1"));
        let what = format!("{engine:?} collision {twin}");
        expect(
            &mut h,
            &what,
            &udp4(&twin, "198.51.100.9"),
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
        expect(
            &mut h,
            "neighbor address",
            &udp4("10.0.0.2", "198.51.100.9"),
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
        // Traffic for the host is still local first.
        let to_host = udp4("10.0.0.1", "10.255.255.255");
        expect(
            &mut h,
            "to the host",
            &to_host,
            XDP_PASS,
            Verdict::PassedLocal,
        );
        // accept_local on the ingress interface: the kernel forwards it.
        h.ingress(RpfMode::Off, BOTH | INTERFACE_F_ACCEPT_LOCAL_V4);
        expect(
            &mut h,
            "accept_local",
            &local,
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
        h.ingress(RpfMode::Off, BOTH);
        // IPv6 has no such check (ip6_forward).
        h.local("2001:db8:aaaa::1");
        let v6 = udp6("2001:db8:aaaa::1", "2001:db8:100::9");
        expect(&mut h, "v6", &v6, XDP_REDIRECT, Verdict::Forwarded);
        // The address goes (its route removed, or replaced by a unicast one): forwarded.
        let mut batch = router_agent::fib::Batch::default();
        let host = "10.0.0.1/32".parse().unwrap();
        h.fib
            .remove_route(&mut batch, router_agent::fib::Source::Local, host);
        h.commit(batch);
        assert!(!h.datapath.is_local_v4("10.0.0.1".parse().unwrap()));
        expect(
            &mut h,
            "no longer local",
            &local,
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
        h.local("10.0.0.1");
        expect(
            &mut h,
            "local again",
            &local,
            XDP_PASS,
            Verdict::PassedLocalSource,
        );
        let (unicast, _) = h.group_of("10.0.0.2");
        let op = FibOp::SetRoute {
            prefix: host,
            group: unicast,
        };
        h.datapath.apply_ops([&op]).unwrap();
        expect(&mut h, "replaced", &local, XDP_REDIRECT, Verdict::Forwarded);
        // The broadcast sharing nothing with it is still there.
        expect(
            &mut h,
            "broadcast kept",
            &broadcast,
            XDP_PASS,
            Verdict::PassedLocalSource,
        );
    }
}

#[test]
fn multicast_neighbors_are_not_kept() {
    let mut h = checks_harness(LookupEngine::LpmTrie);
    for addr in [
        "ff02::16",
        "ff02::2",
        "224.0.0.22",
        "255.255.255.255",
        "0.0.0.0",
        "::",
    ] {
        let op = FibOp::SetNeighbor {
            ifindex: EGRESS,
            addr: addr.parse().unwrap(),
            mac: mac(1),
        };
        h.datapath.apply_ops([&op]).unwrap();
        assert_eq!(
            h.datapath.neighbor(EGRESS, addr.parse().unwrap()).unwrap(),
            None,
            "{addr}"
        );
    }
    let op = FibOp::SetNeighbor {
        ifindex: EGRESS,
        addr: "2001:db8:300::7".parse().unwrap(),
        mac: mac(1),
    };
    h.datapath.apply_ops([&op]).unwrap();
    assert_eq!(
        h.datapath
            .neighbor(EGRESS, "2001:db8:300::7".parse().unwrap())
            .unwrap(),
        Some(mac(1))
    );
}

#[test]
fn martian_addresses_go_to_the_kernel() {
    for engine in ENGINES {
        let mut h = checks_harness(engine);
        // Every destination has a route: only the addresses decide.
        h.route("0.0.0.0/0", &["192.0.2.1"]);
        h.route("::/0", &["192.0.2.1"]);
        for (src, dst) in [
            ("224.0.0.1", "198.51.100.9"),
            ("239.255.1.1", "198.51.100.9"),
            ("255.255.255.255", "198.51.100.9"),
            ("0.0.0.0", "198.51.100.9"),
            ("0.1.2.3", "198.51.100.9"),
            ("127.0.0.1", "198.51.100.9"),
            ("127.255.0.1", "198.51.100.9"),
            ("10.0.0.1", "0.0.0.0"),
            ("10.0.0.1", "0.1.2.3"),
            ("10.0.0.1", "127.0.0.1"),
            ("10.0.0.1", "127.1.2.3"),
        ] {
            let what = format!("{engine:?} {src} -> {dst}");
            expect(
                &mut h,
                &what,
                &udp4(src, dst),
                XDP_PASS,
                Verdict::PassedMartian,
            );
        }
        for (src, dst) in [
            ("ff02::1", "2001:db8:100::9"),
            ("ff0e::1", "2001:db8:100::9"),
            ("fe80::1", "2001:db8:100::9"),
            ("febf::1", "2001:db8:100::9"),
            ("::1", "2001:db8:100::9"),
            ("::", "2001:db8:100::9"),
            ("::ffff:10.0.0.1", "2001:db8:100::9"),
            ("2001:db8:aaaa::1", "::1"),
            ("2001:db8:aaaa::1", "::"),
        ] {
            let what = format!("{engine:?} {src} -> {dst}");
            expect(
                &mut h,
                &what,
                &udp6(src, dst),
                XDP_PASS,
                Verdict::PassedMartian,
            );
        }
        // Near misses the kernel forwards.
        for (src, dst) in [
            ("1.0.0.1", "198.51.100.9"),
            ("126.255.255.255", "198.51.100.9"),
            ("240.0.0.1", "198.51.100.9"),
            ("255.255.255.254", "198.51.100.9"),
            ("10.0.0.1", "1.0.0.0"),
            ("10.0.0.1", "128.0.0.1"),
        ] {
            let what = format!("{engine:?} {src} -> {dst}");
            expect(
                &mut h,
                &what,
                &udp4(src, dst),
                XDP_REDIRECT,
                Verdict::Forwarded,
            );
        }
        for (src, dst) in [
            ("fec0::1", "2001:db8:100::9"),
            ("::2", "2001:db8:100::9"),
            ("::ffff:0:1:1", "2001:db8:100::9"),
            ("64:ff9b::a00:1", "2001:db8:100::9"),
            ("2001:db8:aaaa::1", "::2"),
        ] {
            let what = format!("{engine:?} {src} -> {dst}");
            expect(
                &mut h,
                &what,
                &udp6(src, dst),
                XDP_REDIRECT,
                Verdict::Forwarded,
            );
        }
    }
}

#[test]
fn routes_to_the_kernel_pass() {
    for engine in ENGINES {
        let mut h = checks_harness(engine);
        h.pass_route("203.0.113.0/24");
        h.pass_route("2001:db8:300::/48");
        let v4 = udp4("10.0.0.1", "203.0.113.7");
        expect(&mut h, "v4", &v4, XDP_PASS, Verdict::PassedByRoute);
        let v6 = udp6("2001:db8:aaaa::1", "2001:db8:300::7");
        expect(&mut h, "v6", &v6, XDP_PASS, Verdict::PassedByRoute);
        // A longer prefix inside it still forwards.
        h.route("203.0.113.128/25", &["192.0.2.1"]);
        let inner = udp4("10.0.0.1", "203.0.113.200");
        expect(&mut h, "inner", &inner, XDP_REDIRECT, Verdict::Forwarded);
    }
}

#[test]
fn on_link_destinations_use_the_neighbor_table() {
    for engine in ENGINES {
        let mut h = checks_harness(engine);
        h.on_link_route("203.0.113.0/24", EGRESS, 16_000, 8_000);
        h.on_link_route("2001:db8:300::/64", EGRESS, 16_001, 8_001);
        let v4 = udp4("10.0.0.1", "203.0.113.7");
        let v6 = udp6("2001:db8:aaaa::1", "2001:db8:300::7");
        expect(
            &mut h,
            "v4 no neighbor",
            &v4,
            XDP_PASS,
            Verdict::PassedUnresolved,
        );
        expect(
            &mut h,
            "v6 no neighbor",
            &v6,
            XDP_PASS,
            Verdict::PassedUnresolved,
        );

        let host4 = mac(0x0407);
        let host6 = mac(0x0607);
        h.neighbor("203.0.113.7", Some(host4));
        h.neighbor("2001:db8:300::7", Some(host6));
        assert_eq!(
            h.datapath
                .neighbor(EGRESS, "203.0.113.7".parse().unwrap())
                .unwrap(),
            Some(host4)
        );
        let out = expect(&mut h, "v4 neighbor", &v4, XDP_REDIRECT, Verdict::Forwarded);
        let mut expected = v4.clone();
        expected[0..6].copy_from_slice(&host4);
        expected[6..12].copy_from_slice(&EGRESS_MAC);
        expected[22] = 63;
        expected[24..26].copy_from_slice(&out[24..26]);
        assert_eq!(out, expected, "{engine:?} v4 frame");
        assert_eq!(ipv4_checksum(&out[14..34]), 0);
        let out = expect(&mut h, "v6 neighbor", &v6, XDP_REDIRECT, Verdict::Forwarded);
        let mut expected = v6.clone();
        expected[0..6].copy_from_slice(&host6);
        expected[6..12].copy_from_slice(&EGRESS_MAC);
        expected[21] = 63;
        assert_eq!(out, expected, "{engine:?} v6 frame");

        // Another host on the same subnet is not known yet.
        let other = udp4("10.0.0.1", "203.0.113.8");
        expect(
            &mut h,
            "v4 other host",
            &other,
            XDP_PASS,
            Verdict::PassedUnresolved,
        );
        // The neighbor fails: to the kernel again.
        h.neighbor("203.0.113.7", None);
        expect(
            &mut h,
            "v4 neighbor gone",
            &v4,
            XDP_PASS,
            Verdict::PassedUnresolved,
        );
        // Neighbors of interfaces the program does not redirect to are not kept.
        let mut batch = router_agent::fib::Batch::default();
        h.fib
            .update_neighbor(&mut batch, 77, "203.0.113.9".parse().unwrap(), Some(host4));
        h.commit(batch);
        assert_eq!(
            h.datapath
                .neighbor(77, "203.0.113.9".parse().unwrap())
                .unwrap(),
            None
        );
    }
}

/// The kernel engine (`bpf_fib_lookup`) in a namespace: a route out of an attached interface
/// is forwarded, one out of an interface the program is not attached to is passed with the
/// frame as it came (it used to be rewritten, then dropped by the failed redirect).
#[test]
fn kernel_engine_passes_routes_out_of_unattached_interfaces() {
    let net = netns::Namespaces::new("hrt-", "dpk", &["rtr"]);
    let run = |args: &[&str]| net.exec("rtr", args);
    run(&["ip", "link", "set", "lo", "up"]);
    run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    run(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    for (name, peer, subnet) in [("att", "att-p", "10.9.1"), ("ext", "ext-p", "10.9.2")] {
        run(&[
            "ip", "link", "add", name, "type", "veth", "peer", "name", peer,
        ]);
        run(&["ip", "link", "set", name, "up"]);
        run(&["ip", "link", "set", peer, "up"]);
        run(&["ip", "addr", "add", &format!("{subnet}.1/24"), "dev", name]);
        let gateway = format!("{subnet}.2");
        let mac = format!("02:00:00:00:{}:02", &subnet[5..]);
        run(&[
            "ip",
            "neigh",
            "replace",
            &gateway,
            "lladdr",
            &mac,
            "dev",
            name,
            "nud",
            "permanent",
        ]);
    }
    run(&["ip", "route", "add", "198.51.100.0/24", "via", "10.9.1.2"]);
    run(&["ip", "route", "add", "203.0.113.0/24", "via", "10.9.2.2"]);
    let netns_path = format!("/run/netns/{}", net.ns("rtr"));

    let result = std::thread::spawn(move || {
        let netns = std::fs::File::open(&netns_path).unwrap();
        // SAFETY: setns on this thread only; it ends with the test.
        let rc =
            unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&netns), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns");
        let options = router_agent::datapath::DatapathOptions::new(
            LookupEngine::Kernel,
            "/sys/fs/bpf/unused-by-tests",
        );
        let mut h = Harness::with_options(options);
        let attached = router_agent::netlink::ifindex_by_name("att").unwrap();
        h.datapath.add_egress_port(attached).unwrap();
        let record = Interface {
            mac: [0x02, 0, 0, 0, 0xa7, 0x01],
            rpf: 0,
            flags: BOTH,
        };
        h.datapath.set_interface(attached, record).unwrap();

        let out = expect(
            &mut h,
            "attached egress",
            &udp4("10.0.0.1", "198.51.100.9"),
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
        assert_eq!(
            &out[0..6],
            &[0x02, 0, 0, 0, 0x01, 0x02],
            "the gateway's MAC"
        );
        expect(
            &mut h,
            "unattached egress",
            &udp4("10.0.0.1", "203.0.113.9"),
            XDP_PASS,
            Verdict::PassedByRoute,
        );
        // bpf_fib_lookup does not validate sources: the program's own check does.
        h.local("10.0.0.1");
        expect(
            &mut h,
            "local source",
            &udp4("10.0.0.1", "198.51.100.9"),
            XDP_PASS,
            Verdict::PassedLocalSource,
        );
        // The L2 check holds for this engine too.
        let foreign = to_mac(
            udp4("10.0.0.1", "198.51.100.9"),
            [0x02, 0, 0, 0, 0xaa, 0x09],
        );
        expect(
            &mut h,
            "other host",
            &foreign,
            XDP_PASS,
            Verdict::PassedOtherHost,
        );
    })
    .join();
    drop(net);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
