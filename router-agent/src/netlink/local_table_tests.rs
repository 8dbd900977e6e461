//! The local table followed, in a private network namespace (needs root).

use super::{
    KernelEvent, LocalKind, LocalRoute, Netlink, RouteFilter,
    tests::{dump, in_netns, ip, veth, wait_event},
};

fn local(prefix: &str, kind: LocalKind, ifindex: u32) -> LocalRoute {
    LocalRoute {
        prefix: prefix.parse().unwrap(),
        kind,
        ifindex,
        metric: 0,
    }
}

fn ipv6_forwarding(on: bool) {
    // /proc/sys/net belongs to the opening thread's namespace: this test's own.
    std::fs::write(
        "/proc/sys/net/ipv6/conf/all/forwarding",
        if on { "1" } else { "0" },
    )
    .unwrap();
}

/// Waits for `event`, ignoring the others.
async fn expect(rx: &mut tokio::sync::mpsc::UnboundedReceiver<KernelEvent>, event: KernelEvent) {
    let what = format!("{event:?}");
    wait_event(rx, &what, |e| *e == event).await;
}

#[test]
fn local_broadcast_and_anycast_routes_follow_addresses() {
    in_netns(|| async {
        let va = veth("va", "vb", "02:00:00:00:00:0a");
        ipv6_forwarding(true);
        ip("addr add 10.1.0.1/24 dev va");
        // Followed whatever the filter says (here: no table but 100).
        let filter = RouteFilter {
            tables: [100].into(),
            ..RouteFilter::default()
        };
        let (_nl, mut rx) = Netlink::connect_following(filter).await.unwrap();
        let events = dump(&mut rx).await;
        // No explicit brd: the kernel still has the subnet broadcast.
        for route in [
            local("10.1.0.1/32", LocalKind::Local, va),
            local("10.1.0.255/32", LocalKind::Broadcast, va),
        ] {
            assert!(
                events.contains(&KernelEvent::LocalRoute(route)),
                "{events:?}"
            );
        }
        assert!(
            !events.iter().any(|e| matches!(e, KernelEvent::Route(_))),
            "{events:?}"
        );

        ip("addr add 2001:db8:1::1/64 dev va nodad");
        expect(
            &mut rx,
            KernelEvent::LocalRoute(local("2001:db8:1::1/128", LocalKind::Local, va)),
        )
        .await;
        let anycast = local("2001:db8:1::/128", LocalKind::Anycast, va);
        expect(&mut rx, KernelEvent::LocalRoute(anycast)).await;
        // Forwarding off: no subnet-router anycast; back on: again.
        ipv6_forwarding(false);
        expect(&mut rx, KernelEvent::LocalRouteRemoved(anycast)).await;
        ipv6_forwarding(true);
        expect(&mut rx, KernelEvent::LocalRoute(anycast)).await;

        // The same address on a second interface: a second holder, reported apart.
        let vb = super::ifindex_by_name("vb").unwrap();
        ip("addr add 10.1.0.1/24 dev vb");
        expect(
            &mut rx,
            KernelEvent::LocalRoute(local("10.1.0.1/32", LocalKind::Local, vb)),
        )
        .await;

        ip("addr del 10.1.0.1/24 dev va");
        expect(
            &mut rx,
            KernelEvent::LocalRouteRemoved(local("10.1.0.1/32", LocalKind::Local, va)),
        )
        .await;
        ip("addr del 2001:db8:1::1/64 dev va");
        expect(&mut rx, KernelEvent::LocalRouteRemoved(anycast)).await;
        // The link goes: what it held goes with it (IPv4 local routes are flushed silently).
        ip("link del vb");
        expect(
            &mut rx,
            KernelEvent::LocalRouteRemoved(local("10.1.0.1/32", LocalKind::Local, vb)),
        )
        .await;
    });
}
