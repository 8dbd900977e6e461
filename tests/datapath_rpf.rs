//! The XDP program's unicast reverse-path filter (`[[interface]] rpf`), loose and strict, for
//! the LPM trie and DIR-24-8, through `BPF_PROG_TEST_RUN`. Needs root.

mod common;

use common::*;
use router_common::{GROUP_F_EGRESS_OVERFLOW, INTERFACE_F_ACCEPT_LOCAL_V4, RpfMode, Verdict};

#[test]
fn loose_rpf_wants_a_route_for_the_source() {
    for engine in ENGINES {
        let mut h = checks_harness(engine);
        h.local("10.0.0.5");
        h.local("2001:db8:aaaa::5");
        h.pass_route("172.16.0.0/12");
        h.pass_route("2001:db8:bbbb::/48");
        let dst4 = "198.51.100.9";
        let dst6 = "2001:db8:100::9";
        // Off: anything goes.
        expect(
            &mut h,
            "off",
            &udp4("192.0.2.77", dst4),
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
        h.ingress(RpfMode::Loose, BOTH);
        let cases = [
            (
                "routed",
                udp4("10.0.0.1", dst4),
                XDP_REDIRECT,
                Verdict::Forwarded,
            ),
            (
                "no route",
                udp4("192.0.2.77", dst4),
                XDP_DROP,
                Verdict::DroppedRpf,
            ),
            (
                "local",
                udp4("10.0.0.5", dst4),
                XDP_DROP,
                Verdict::DroppedRpf,
            ),
            (
                "to kernel",
                udp4("172.16.0.1", dst4),
                XDP_PASS,
                Verdict::PassedRpfKernel,
            ),
            (
                "v6 routed",
                udp6("2001:db8:aaaa::1", dst6),
                XDP_REDIRECT,
                Verdict::Forwarded,
            ),
            (
                "v6 no route",
                udp6("2001:db8:cccc::1", dst6),
                XDP_DROP,
                Verdict::DroppedRpf,
            ),
            (
                "v6 local",
                udp6("2001:db8:aaaa::5", dst6),
                XDP_DROP,
                Verdict::DroppedRpf,
            ),
            (
                "v6 to kernel",
                udp6("2001:db8:bbbb::1", dst6),
                XDP_PASS,
                Verdict::PassedRpfKernel,
            ),
            // Only packets about to be forwarded are checked.
            (
                "for the host",
                udp4("192.0.2.77", "10.0.0.5"),
                XDP_PASS,
                Verdict::PassedLocal,
            ),
            (
                "no route to dst",
                udp4("192.0.2.77", "203.0.113.1"),
                XDP_PASS,
                Verdict::PassedNoRoute,
            ),
        ];
        for (name, frame, action, verdict) in cases {
            expect(
                &mut h,
                &format!("{engine:?} {name}"),
                &frame,
                action,
                verdict,
            );
        }
        // accept_local: a local IPv4 source is the kernel's to judge (IPv6 has no switch).
        h.ingress(RpfMode::Loose, BOTH | INTERFACE_F_ACCEPT_LOCAL_V4);
        let local = udp4("10.0.0.5", dst4);
        expect(
            &mut h,
            "accept_local",
            &local,
            XDP_PASS,
            Verdict::PassedRpfKernel,
        );
        let local6 = udp6("2001:db8:aaaa::5", dst6);
        expect(
            &mut h,
            "v6 accept_local",
            &local6,
            XDP_DROP,
            Verdict::DroppedRpf,
        );
        h.ingress(RpfMode::Loose, BOTH);
        // Loose ignores which interface the source's route uses.
        h.group_egress("10.0.0.1", &[7], 0);
        let frame = udp4("10.0.0.1", dst4);
        expect(
            &mut h,
            "other interface",
            &frame,
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
        // A default route accepts every source, as in the kernel.
        h.route("0.0.0.0/0", &["192.0.2.2"]);
        let frame = udp4("192.0.2.77", dst4);
        expect(
            &mut h,
            "default route",
            &frame,
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
    }
}

#[test]
fn strict_rpf_wants_the_source_route_on_the_ingress_interface() {
    for engine in ENGINES {
        let mut h = checks_harness(engine);
        h.pass_route("172.16.0.0/12");
        h.ingress(RpfMode::Strict, BOTH);
        let v4 = udp4("10.0.0.1", "198.51.100.9");
        let v6 = udp6("2001:db8:aaaa::1", "2001:db8:100::9");
        let what = |case: &str| format!("{engine:?} {case}");
        h.group_egress("10.0.0.1", &[INGRESS], 0);
        h.group_egress("2001:db8:aaaa::1", &[INGRESS], 0);
        expect(
            &mut h,
            &what("ingress"),
            &v4,
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
        expect(
            &mut h,
            &what("v6 ingress"),
            &v6,
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
        // ECMP over several interfaces: any of them will do, in any position.
        h.group_egress("10.0.0.1", &[3, 4, 5, 6, 7, 8, 9, INGRESS], 0);
        expect(
            &mut h,
            &what("last of 8"),
            &v4,
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
        h.group_egress("10.0.0.1", &[3, INGRESS, 5], 0);
        expect(
            &mut h,
            &what("second of 3"),
            &v4,
            XDP_REDIRECT,
            Verdict::Forwarded,
        );
        // Another interface: dropped.
        h.group_egress("10.0.0.1", &[7], 0);
        h.group_egress("2001:db8:aaaa::1", &[7, 8], 0);
        expect(&mut h, &what("other"), &v4, XDP_DROP, Verdict::DroppedRpf);
        expect(
            &mut h,
            &what("v6 other"),
            &v6,
            XDP_DROP,
            Verdict::DroppedRpf,
        );
        // More interfaces than listed: the kernel decides.
        h.group_egress(
            "10.0.0.1",
            &[3, 4, 5, 6, 7, 8, 9, 10],
            GROUP_F_EGRESS_OVERFLOW,
        );
        expect(
            &mut h,
            &what("overflow"),
            &v4,
            XDP_PASS,
            Verdict::PassedRpfKernel,
        );
        // Source routed to the kernel, no route, local: as in loose.
        let frame = udp4("172.16.0.1", "198.51.100.9");
        expect(
            &mut h,
            &what("to kernel"),
            &frame,
            XDP_PASS,
            Verdict::PassedRpfKernel,
        );
        let frame = udp4("192.0.2.77", "198.51.100.9");
        expect(
            &mut h,
            &what("no route"),
            &frame,
            XDP_DROP,
            Verdict::DroppedRpf,
        );
        h.local("10.0.0.5");
        let frame = udp4("10.0.0.5", "198.51.100.9");
        expect(
            &mut h,
            &what("local"),
            &frame,
            XDP_DROP,
            Verdict::DroppedRpf,
        );
        // Back to off: no check at all.
        h.ingress(RpfMode::Off, BOTH);
        h.group_egress("10.0.0.1", &[7], 0);
        expect(&mut h, &what("off"), &v4, XDP_REDIRECT, Verdict::Forwarded);
    }
}
