//! Followed kernel routes, in private network namespaces (root; see `tests.rs`).

use std::collections::BTreeSet;

use super::{
    tests::{addr, dump, in_netns, ip, veth, wait_event, wait_oper_up},
    *,
};

fn routes(events: &[KernelEvent]) -> Vec<FollowedRoute> {
    events
        .iter()
        .filter_map(|e| match e {
            KernelEvent::Route(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn find<'a>(routes: &'a [FollowedRoute], prefix: &str) -> Option<&'a FollowedRoute> {
    let prefix: ipnet::IpNet = prefix.parse().unwrap();
    routes.iter().find(|r| r.key.prefix == prefix)
}

fn hop(gateway: Option<&str>, ifindex: u32) -> RouteHop {
    RouteHop {
        gateway: gateway.map(addr),
        ifindex,
        weight: 0,
    }
}

/// Two links with addresses: va 10.1.0.1/24 + 2001:db8:1::1/64, vc 10.3.0.1/24.
async fn lab() -> (u32, u32) {
    let va = veth("va", "vb", "02:00:00:00:00:0a");
    let vc = veth("vc", "vd", "02:00:00:00:00:0c");
    ip("addr add 10.1.0.1/24 dev va");
    ip("addr add 2001:db8:1::1/64 dev va nodad");
    ip("addr add 10.3.0.1/24 dev vc");
    wait_oper_up("va").await;
    wait_oper_up("vc").await;
    (va, vc)
}

#[test]
fn dump_parses_every_kind_of_route() {
    in_netns(|| async {
        let (va, vc) = lab().await;
        ip("route add 10.9.0.0/24 via 10.1.0.2");
        ip("route add 10.8.0.8/32 dev va metric 50");
        ip("route add 10.7.0.0/24 nexthop via 10.1.0.2 dev va nexthop via 10.3.0.2 dev vc");
        ip("route add blackhole 10.6.0.0/24");
        ip("route add unreachable 10.6.1.0/24");
        ip("route add prohibit 10.6.2.0/24");
        ip("route add 10.5.0.0/24 via inet6 fe80::2 dev va");
        ip("nexthop add id 7 via 10.1.0.2 dev va");
        ip("route add 10.4.0.0/24 nhid 7");
        ip("route add 10.4.1.0/24 via 10.1.0.2 mtu 1400");
        ip("-6 route add 2001:db8:9::/48 via 2001:db8:1::2");
        // Not followed: our own protocol, other tables, link-local and multicast prefixes.
        ip("route add 10.99.0.0/24 via 10.1.0.2 proto 201 metric 20");
        ip("route add 10.98.0.0/24 via 10.1.0.2 table 100");
        ip("route add 169.254.7.0/24 dev va");
        ip("route add 239.1.0.0/16 dev va");

        let (_nl, mut rx) = Netlink::connect().await.unwrap();
        let events = dump(&mut rx).await;
        let routes = routes(&events);

        let connected = find(&routes, "10.1.0.0/24").expect("connected subnet");
        assert_eq!(connected.protocol, 2, "proto kernel");
        assert_eq!(connected.key.metric, 0);
        assert_eq!(connected.key.table, TABLE_MAIN);
        assert_eq!(connected.kind, RouteKind::Unicast(vec![hop(None, va)]));
        let connected6 = find(&routes, "2001:db8:1::/64").expect("IPv6 connected subnet");
        assert_eq!(connected6.key.metric, 256);
        assert_eq!(connected6.kind, RouteKind::Unicast(vec![hop(None, va)]));
        assert!(find(&routes, "fe80::/64").is_none(), "link-local skipped");

        assert_eq!(
            find(&routes, "10.9.0.0/24").unwrap().kind,
            RouteKind::Unicast(vec![hop(Some("10.1.0.2"), va)])
        );
        let device = find(&routes, "10.8.0.8/32").unwrap();
        assert_eq!(device.key.metric, 50);
        assert_eq!(device.kind, RouteKind::Unicast(vec![hop(None, va)]));
        assert_eq!(
            find(&routes, "10.7.0.0/24").unwrap().kind,
            RouteKind::Unicast(vec![hop(Some("10.1.0.2"), va), hop(Some("10.3.0.2"), vc)])
        );
        assert_eq!(
            find(&routes, "10.6.0.0/24").unwrap().kind,
            RouteKind::Blackhole
        );
        assert_eq!(
            find(&routes, "10.6.1.0/24").unwrap().kind,
            RouteKind::Unreachable
        );
        assert_eq!(
            find(&routes, "10.6.2.0/24").unwrap().kind,
            RouteKind::Prohibit
        );
        assert_eq!(
            find(&routes, "10.5.0.0/24").unwrap().kind,
            RouteKind::Unicast(vec![hop(Some("fe80::2"), va)])
        );
        assert_eq!(
            find(&routes, "10.4.0.0/24").unwrap().kind,
            RouteKind::NexthopObject(7)
        );
        assert!(matches!(
            &find(&routes, "10.4.1.0/24").unwrap().kind,
            RouteKind::Unsupported(why) if why.contains("MTU")
        ));
        assert_eq!(
            find(&routes, "2001:db8:9::/48").unwrap().kind,
            RouteKind::Unicast(vec![hop(Some("2001:db8:1::2"), va)])
        );
        for ignored in [
            "10.99.0.0/24",
            "10.98.0.0/24",
            "169.254.7.0/24",
            "239.1.0.0/16",
        ] {
            assert!(find(&routes, ignored).is_none(), "{ignored} followed");
        }
        // Nothing from the local table among the followed routes (it comes as LocalRoute).
        assert!(
            routes.iter().all(|r| r.key.table == TABLE_MAIN),
            "{routes:?}"
        );
        // Routes come after links, addresses and neighbors.
        let first_route = events
            .iter()
            .position(|e| matches!(e, KernelEvent::Route(_)))
            .unwrap();
        assert!(
            events[first_route..]
                .iter()
                .all(|e| matches!(e, KernelEvent::Route(_) | KernelEvent::LocalRoute(_)))
        );
    });
}

#[test]
fn filters_by_table_protocol_and_interface() {
    in_netns(|| async {
        let (va, _vc) = lab().await;
        ip("route add 10.9.0.0/24 via 10.1.0.2 proto static");
        ip("route add 10.9.1.0/24 via 10.1.0.2 proto boot");
        ip("route add 10.9.2.0/24 via 10.3.0.2 proto static");
        ip("route add 10.9.3.0/24 via 10.1.0.2 proto static table 100");
        ip("route add 10.9.4.0/24 via 10.1.0.2 proto static table 101");
        ip("route add 10.9.5.0/24 via 10.1.0.2 proto 77");
        let filter = RouteFilter {
            tables: BTreeSet::from([TABLE_MAIN, 100]),
            observe_tables: BTreeSet::new(),
            protocols: Some(BTreeSet::from([4, 77])),
            interfaces: Some(BTreeSet::from(["va".to_owned()])),
            own_protocol: 77,
        };
        let (_nl, mut rx) = Netlink::connect_following(filter).await.unwrap();
        let routes = routes(&dump(&mut rx).await);
        let prefixes = |followed: bool| -> BTreeSet<String> {
            routes
                .iter()
                .filter(|r| r.followed == followed)
                .map(|r| r.key.prefix.to_string())
                .collect()
        };
        assert_eq!(
            prefixes(true),
            BTreeSet::from(["10.9.0.0/24".to_owned(), "10.9.3.0/24".to_owned()]),
            "static on va in main and 100; not boot, not vc, not table 101, not our own 77"
        );
        // The rest of the followed tables is observed (for [[redistribute]]), never our own
        // protocol nor a table not observed.
        let observed = prefixes(false);
        for prefix in ["10.9.1.0/24", "10.9.2.0/24", "10.1.0.0/24", "10.3.0.0/24"] {
            assert!(observed.contains(prefix), "{prefix} observed: {observed:?}");
        }
        for prefix in ["10.9.4.0/24", "10.9.5.0/24"] {
            assert!(
                !observed.contains(prefix) && !prefixes(true).contains(prefix),
                "{prefix}"
            );
        }
        let in_100 = find(&routes, "10.9.3.0/24").unwrap();
        assert_eq!(in_100.key.table, 100);
        assert_eq!(
            in_100.kind,
            RouteKind::Unicast(vec![hop(Some("10.1.0.2"), va)])
        );

        // Live too: a followed route moving to vc is reported no longer followed, and back.
        ip("route replace 10.9.0.0/24 via 10.3.0.2 proto static");
        let key = find(&routes, "10.9.0.0/24").unwrap().key;
        wait_event(
            &mut rx,
            "route moved off va",
            |e| matches!(e, KernelEvent::Route(r) if r.key == key && !r.followed),
        )
        .await;
        ip("route replace 10.9.0.0/24 via 10.1.0.2 proto static");
        wait_event(
            &mut rx,
            "route back on va",
            |e| matches!(e, KernelEvent::Route(r) if r.key == key && r.followed),
        )
        .await;
        ip("route del 10.9.0.0/24 proto static");
        wait_event(&mut rx, "route deleted", |e| {
            *e == KernelEvent::RouteRemoved(key)
        })
        .await;
    });
}

#[test]
fn observe_tables_report_routes_not_followed() {
    in_netns(|| async {
        let (va, _vc) = lab().await;
        ip("route add 10.9.3.0/24 via 10.1.0.2 proto boot table 100");
        ip("route add 10.9.4.0/24 via 10.1.0.2 proto boot table 101");
        ip("route add 10.9.5.0/32 dev va proto boot");
        ip("route add 10.9.6.0/32 dev va proto 201");
        ip("route add 10.9.8.0/24 via 10.1.0.2 proto bird");
        ip("route add 10.9.9.0/24 via 10.1.0.2 proto 186 table 100");
        let filter = RouteFilter {
            protocols: Some(BTreeSet::from([4])),
            observe_tables: BTreeSet::from([100]),
            ..RouteFilter::default()
        };
        let (_nl, mut rx) = Netlink::connect_following(filter).await.unwrap();
        let routes = routes(&dump(&mut rx).await);
        let in_100 = find(&routes, "10.9.3.0/24").expect("table 100 observed");
        assert!(!in_100.followed && in_100.key.table == 100);
        assert!(
            find(&routes, "10.9.4.0/24").is_none(),
            "table 101 not observed"
        );
        assert!(
            find(&routes, "10.9.6.0/32").is_none(),
            "our own protocol never"
        );
        // Routing daemons' routes (never redistributed) only when followed.
        assert!(find(&routes, "10.9.8.0/24").is_none(), "bird, not followed");
        assert!(find(&routes, "10.9.9.0/24").is_none(), "bgp, not followed");
        let boot = find(&routes, "10.9.5.0/32").expect("main observed");
        assert!(!boot.followed, "boot is not a followed protocol");
        assert_eq!(boot.kind, RouteKind::Unicast(vec![hop(None, va)]));
        // Live: a workload route appears and goes, observed only.
        ip("route add 10.9.7.0/32 dev va proto boot table 100");
        let e = wait_event(
            &mut rx,
            "observed route",
            |e| matches!(e, KernelEvent::Route(r) if r.key.prefix.to_string() == "10.9.7.0/32"),
        )
        .await;
        assert!(matches!(e, KernelEvent::Route(r) if !r.followed));
        ip("route del 10.9.7.0/32 dev va proto boot table 100");
        wait_event(
            &mut rx,
            "observed route gone",
            |e| matches!(e, KernelEvent::RouteRemoved(k) if k.prefix.to_string() == "10.9.7.0/32"),
        )
        .await;
    });
}

#[test]
fn live_route_events() {
    in_netns(|| async {
        let (va, vc) = lab().await;
        let (_nl, mut rx) = Netlink::connect().await.unwrap();
        dump(&mut rx).await;
        let is_route = |prefix: &'static str| {
            let prefix: ipnet::IpNet = prefix.parse().unwrap();
            move |e: &KernelEvent| matches!(e, KernelEvent::Route(r) if r.key.prefix == prefix)
        };
        let removed = |prefix: &'static str| {
            let prefix: ipnet::IpNet = prefix.parse().unwrap();
            move |e: &KernelEvent| matches!(e, KernelEvent::RouteRemoved(k) if k.prefix == prefix)
        };

        ip("route add 10.9.0.0/24 via 10.1.0.2");
        let e = wait_event(&mut rx, "new route", is_route("10.9.0.0/24")).await;
        assert_eq!(
            e,
            KernelEvent::Route(FollowedRoute {
                key: FollowedRouteKey {
                    table: TABLE_MAIN,
                    prefix: "10.9.0.0/24".parse().unwrap(),
                    selector: 0,
                    metric: 0
                },
                protocol: 3,
                kind: RouteKind::Unicast(vec![hop(Some("10.1.0.2"), va)]),
                followed: true,
            })
        );
        ip("route replace 10.9.0.0/24 via 10.3.0.2");
        let e = wait_event(&mut rx, "replaced route", is_route("10.9.0.0/24")).await;
        assert!(
            matches!(e, KernelEvent::Route(r) if r.kind == RouteKind::Unicast(vec![hop(Some("10.3.0.2"), vc)]))
        );
        ip("route del 10.9.0.0/24");
        wait_event(&mut rx, "deleted route", removed("10.9.0.0/24")).await;

        // Our own routes are never reported.
        ip("route add 10.99.0.0/24 via 10.1.0.2 proto 201 metric 20");
        ip("route add 10.98.0.0/24 via 10.1.0.2");
        let e = wait_event(&mut rx, "any route", |e| matches!(e, KernelEvent::Route(_))).await;
        assert!(matches!(e, KernelEvent::Route(r) if r.key.prefix.to_string() == "10.98.0.0/24"));

        // IPv6 multipath: deleting one sibling keeps the other.
        ip(
            "-6 route add 2001:db8:9::/48 nexthop via 2001:db8:1::2 dev va nexthop via 2001:db8:1::3 dev va",
        );
        let both = RouteKind::Unicast(vec![
            hop(Some("2001:db8:1::2"), va),
            hop(Some("2001:db8:1::3"), va),
        ]);
        wait_event(
            &mut rx,
            "IPv6 multipath",
            |e| matches!(e, KernelEvent::Route(r) if r.kind == both),
        )
        .await;
        ip("-6 route del 2001:db8:9::/48 via 2001:db8:1::2 dev va");
        let one = RouteKind::Unicast(vec![hop(Some("2001:db8:1::3"), va)]);
        wait_event(
            &mut rx,
            "one sibling left",
            |e| matches!(e, KernelEvent::Route(r) if r.kind == one),
        )
        .await;

        // Link down: the kernel flushes its IPv4 routes without a word; they are reported gone.
        ip("route add 10.97.0.0/24 via 10.3.0.2");
        wait_event(&mut rx, "route via vc", is_route("10.97.0.0/24")).await;
        ip("link set vc down");
        let mut gone = BTreeSet::new();
        while gone.len() < 2 {
            let e = wait_event(&mut rx, "routes flushed with vc", |e| {
                matches!(e, KernelEvent::RouteRemoved(_))
            })
            .await;
            if let KernelEvent::RouteRemoved(key) = e {
                gone.insert(key.prefix.to_string());
            }
        }
        assert_eq!(
            gone,
            BTreeSet::from(["10.97.0.0/24".to_owned(), "10.3.0.0/24".to_owned()])
        );
        // An address removed takes its connected route.
        ip("addr del 10.1.0.1/24 dev va");
        wait_event(&mut rx, "connected route gone", removed("10.1.0.0/24")).await;
    });
}

/// Messages `ip` cannot produce: unknown attributes, wrong gateway families. Never a panic,
/// never a forwarding route: the route is reported unsupported (the FIB passes it).
#[test]
fn odd_route_messages_become_unsupported() {
    use rtnetlink::packet_core::DefaultNla;
    use rtnetlink::packet_route::{
        AddressFamily,
        route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType, RouteVia},
    };
    let base = |family, len| {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family;
        msg.header.destination_prefix_length = len;
        msg.header.table = 254;
        msg.header.kind = RouteType::Unicast;
        msg.header.protocol = RouteProtocol::Boot;
        msg
    };
    let filter = RouteFilter::default();
    let unsupported = |msg: &RouteMessage| {
        matches!(
            kernel_routes::parse_route(msg, &filter).map(|r| r.kind),
            Some(RouteKind::Unsupported(_))
        )
    };

    let mut msg = base(AddressFamily::Inet, 24);
    msg.attributes = vec![
        RouteAttribute::Destination(RouteAddress::Inet("10.1.0.0".parse().unwrap())),
        RouteAttribute::Oif(2),
        RouteAttribute::Other(DefaultNla::new(99, vec![1, 2, 3, 4])),
    ];
    assert!(unsupported(&msg), "unknown attribute");

    let mut msg = base(AddressFamily::Inet6, 64);
    msg.attributes = vec![
        RouteAttribute::Destination(RouteAddress::Inet6("2001:db8::".parse().unwrap())),
        RouteAttribute::Gateway(RouteAddress::Inet("10.0.0.1".parse().unwrap())),
        RouteAttribute::Oif(2),
    ];
    assert!(unsupported(&msg), "IPv4 gateway for an IPv6 prefix");

    let mut msg = base(AddressFamily::Inet, 24);
    msg.attributes = vec![
        RouteAttribute::Destination(RouteAddress::Inet("10.1.0.0".parse().unwrap())),
        RouteAttribute::Via(RouteVia::Other((AddressFamily::Packet, vec![1]))),
        RouteAttribute::Oif(2),
    ];
    assert!(unsupported(&msg), "RTA_VIA of an unknown family");

    let mut msg = base(AddressFamily::Inet, 24);
    msg.attributes = vec![RouteAttribute::Destination(RouteAddress::Inet(
        "10.1.0.0".parse().unwrap(),
    ))];
    assert!(unsupported(&msg), "unicast without interface");

    // Our own protocol and the local table: not reported at all.
    let mut ours = base(AddressFamily::Inet, 0);
    ours.header.protocol = RouteProtocol::Other(201);
    assert_eq!(kernel_routes::parse_route(&ours, &filter), None);
    let mut local = base(AddressFamily::Inet, 0);
    local.header.table = 255;
    assert_eq!(kernel_routes::parse_route(&local, &filter), None);
    // A destination longer than the family allows is dropped, not a panic.
    let mut bad = base(AddressFamily::Inet, 40);
    bad.attributes = vec![RouteAttribute::Oif(2)];
    assert_eq!(kernel_routes::parse_route(&bad, &filter), None);
}

/// The kernel copy of a big table (our protocol) is dropped by the event socket's filter:
/// a burst of it neither overflows a tiny socket buffer nor reaches the consumer.
#[test]
fn own_route_notifications_are_dropped_in_the_kernel() {
    in_netns(|| async {
        lab().await;
        // A tiny event socket buffer (the kernel rounds it up to a few KiB): 2000 queued
        // notifications would overflow it many times over.
        super::TEST_EVENT_RCVBUF.set(Some(1));
        let (_nl, mut rx) = Netlink::connect().await.unwrap();
        dump(&mut rx).await;
        let mut batch = String::new();
        for i in 0..2000u32 {
            let (hi, lo) = (i / 250, i % 250);
            batch += &format!("route add 10.200.{hi}.{lo}/32 via 10.1.0.2 proto 201 metric 20\n");
        }
        // Then one route of somebody else's: the only route event to arrive.
        batch += "route add 10.201.0.0/24 via 10.1.0.2\n";
        super::tests::ip_batch(&batch);
        let e = wait_event(&mut rx, "a route event", |e| {
            matches!(e, KernelEvent::Route(_) | KernelEvent::RouteRemoved(_))
        })
        .await;
        assert!(
            matches!(&e, KernelEvent::Route(r) if r.key.prefix.to_string() == "10.201.0.0/24"),
            "{e:?}"
        );
        assert_eq!(super::TEST_RESYNCS.get(), 0, "the event socket overflowed");
    });
}
