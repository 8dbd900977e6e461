//! Namespace tests (root): the dump, link, neighbor and address events, egress lookups.

use super::*;

#[test]
fn child_processes_inherit_the_thread_netns() {
    let outer = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    in_netns(move || async move {
        let inner = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        assert_ne!(inner, outer);
        // `ip` sees the new namespace: only lo.
        let links = ip_json("link show");
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0]["ifname"], "lo");
    });
}

#[test]
fn dump_reports_links_addresses_and_neighbors() {
    in_netns(|| async {
        let va = veth("va", "vb", "02:00:00:00:00:0a");
        ip("link set va mtu 1400");
        ip("addr add 10.1.0.1/24 brd + dev va");
        ip("addr add 2001:db8:1::1/64 dev va nodad");
        ip("neigh add 10.1.0.2 lladdr 02:00:00:00:00:0b nud permanent dev va");
        ip("neigh add 2001:db8:1::2 lladdr 02:00:00:00:00:0c nud reachable dev va");
        ip("neigh add 2001:db8:1::3 lladdr 02:00:00:00:00:0d nud stale dev va");
        ip("neigh add 10.1.0.3 dev va nud incomplete");
        wait_oper_up("va").await;

        let (_nl, mut rx) = Netlink::connect().await.unwrap();
        let events = dump(&mut rx).await;

        assert!(events.contains(&KernelEvent::Link(LinkInfo {
            ifindex: va,
            name: "va".into(),
            mac: Some(mac("02:00:00:00:00:0a")),
            mtu: 1400,
            up: true,
        })));
        let lo = events
            .iter()
            .find_map(|e| match e {
                KernelEvent::Link(l) if l.name == "lo" => Some(l.clone()),
                _ => None,
            })
            .expect("lo in the dump");
        assert_eq!((lo.mac, lo.up), (None, true));
        assert!(events.contains(&KernelEvent::Address(AddressInfo {
            ifindex: va,
            addr: addr("10.1.0.1"),
            prefix_len: 24,
            broadcast: Some("10.1.0.255".parse().unwrap()),
        })));
        assert!(events.contains(&KernelEvent::Address(AddressInfo {
            ifindex: va,
            addr: addr("2001:db8:1::1"),
            prefix_len: 64,
            broadcast: None,
        })));
        assert!(events.contains(&KernelEvent::Neighbor(NeighborInfo {
            ifindex: va,
            addr: addr("10.1.0.2"),
            mac: Some(mac("02:00:00:00:00:0b")),
        })));
        assert!(events.contains(&KernelEvent::Neighbor(NeighborInfo {
            ifindex: va,
            addr: addr("2001:db8:1::2"),
            mac: Some(mac("02:00:00:00:00:0c")),
        })));
        assert!(events.contains(&KernelEvent::Neighbor(NeighborInfo {
            ifindex: va,
            addr: addr("10.1.0.3"),
            mac: None,
        })));
        // STALE, not managed: usable, and to be confirmed.
        assert!(events.contains(&KernelEvent::Neighbor(NeighborInfo {
            ifindex: va,
            addr: addr("2001:db8:1::3"),
            mac: Some(mac("02:00:00:00:00:0d")),
        })));
        assert!(events.contains(&KernelEvent::NeighborStale {
            ifindex: va,
            addr: addr("2001:db8:1::3"),
        }));
        // Links, then addresses, then neighbors, then routes.
        let rank = |e: &KernelEvent| match e {
            KernelEvent::Link(_) => 0,
            KernelEvent::Address(_) => 1,
            KernelEvent::Neighbor(_) | KernelEvent::NeighborStale { .. } => 2,
            KernelEvent::Route(_) | KernelEvent::LocalRoute(_) => 3,
            other => panic!("unexpected event in the dump: {other:?}"),
        };
        assert!(
            events.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
            "{events:?}"
        );
    });
}

#[test]
fn link_events() {
    in_netns(|| async {
        let (_nl, mut rx) = Netlink::connect().await.unwrap();
        dump(&mut rx).await;

        let va = veth("va", "vb", "02:00:00:00:00:0a");
        let vb = ifindex_by_name("vb").unwrap();
        wait_event(
            &mut rx,
            "va up",
            |e| matches!(e, KernelEvent::Link(l) if l.ifindex == va && l.up),
        )
        .await;

        // Peer down: va is admin up but LOWERLAYERDOWN.
        ip("link set vb down");
        let e = wait_event(
            &mut rx,
            "va not up",
            |e| matches!(e, KernelEvent::Link(l) if l.ifindex == va && !l.up),
        )
        .await;
        assert_eq!(
            e,
            KernelEvent::Link(LinkInfo {
                ifindex: va,
                name: "va".into(),
                mac: Some(mac("02:00:00:00:00:0a")),
                mtu: 1500,
                up: false
            })
        );
        ip("link set va mtu 1300");
        wait_event(
            &mut rx,
            "mtu 1300",
            |e| matches!(e, KernelEvent::Link(l) if l.ifindex == va && l.mtu == 1300),
        )
        .await;

        ip("link del va");
        for gone in [va, vb] {
            wait_event(&mut rx, "link removal", |e| {
                *e == KernelEvent::LinkRemoved { ifindex: gone }
            })
            .await;
        }
    });
}

#[test]
fn neighbor_events() {
    in_netns(|| async {
        let va = veth("va", "vb", "02:00:00:00:00:0a");
        ip("addr add 10.1.0.1/24 dev va");
        let (_nl, mut rx) = Netlink::connect().await.unwrap();
        dump(&mut rx).await;

        let neighbor = |a: &str, m: Option<&str>| {
            KernelEvent::Neighbor(NeighborInfo {
                ifindex: va,
                addr: addr(a),
                mac: m.map(mac),
            })
        };
        ip("neigh add 10.1.0.2 lladdr 02:00:00:00:00:02 nud permanent dev va");
        let want = neighbor("10.1.0.2", Some("02:00:00:00:00:02"));
        wait_event(&mut rx, "new neighbor", |e| *e == want).await;

        ip("neigh replace 10.1.0.2 lladdr 02:00:00:00:00:03 nud reachable dev va");
        let want = neighbor("10.1.0.2", Some("02:00:00:00:00:03"));
        wait_event(&mut rx, "changed MAC", |e| *e == want).await;

        ip("neigh change 10.1.0.2 dev va nud failed");
        let want = neighbor("10.1.0.2", None);
        wait_event(&mut rx, "failed neighbor", |e| *e == want).await;

        ip("neigh del 10.1.0.2 dev va");
        let want = KernelEvent::NeighborRemoved {
            ifindex: va,
            addr: addr("10.1.0.2"),
        };
        wait_event(&mut rx, "deleted neighbor", |e| *e == want).await;

        ip("neigh add fe80::2 lladdr 02:00:00:00:00:04 nud reachable dev va");
        let want = neighbor("fe80::2", Some("02:00:00:00:00:04"));
        wait_event(&mut rx, "IPv6 neighbor", |e| *e == want).await;
    });
}

#[test]
fn address_events() {
    in_netns(|| async {
        let va = veth("va", "vb", "02:00:00:00:00:0a");
        let (_nl, mut rx) = Netlink::connect().await.unwrap();
        dump(&mut rx).await;

        let v4 = AddressInfo {
            ifindex: va,
            addr: addr("10.1.0.1"),
            prefix_len: 24,
            broadcast: Some("10.1.0.255".parse().unwrap()),
        };
        ip("addr add 10.1.0.1/24 brd + dev va");
        wait_event(&mut rx, "IPv4 address", |e| {
            *e == KernelEvent::Address(v4.clone())
        })
        .await;

        let v6 = AddressInfo {
            ifindex: va,
            addr: addr("2001:db8::1"),
            prefix_len: 64,
            broadcast: None,
        };
        ip("addr add 2001:db8::1/64 dev va nodad");
        wait_event(&mut rx, "IPv6 address", |e| {
            *e == KernelEvent::Address(v6.clone())
        })
        .await;

        ip("addr del 10.1.0.1/24 dev va");
        wait_event(&mut rx, "IPv4 removal", |e| {
            *e == KernelEvent::AddressRemoved(v4.clone())
        })
        .await;
        ip("addr del 2001:db8::1/64 dev va");
        wait_event(&mut rx, "IPv6 removal", |e| {
            *e == KernelEvent::AddressRemoved(v6.clone())
        })
        .await;
    });
}

#[test]
fn egress_lookup() {
    in_netns(|| async {
        let va = veth("va", "vb", "02:00:00:00:00:0a");
        ip("addr add 10.1.0.1/24 dev va");
        ip("addr add 2001:db8:1::1/64 dev va nodad");
        wait_oper_up("va").await;
        ip("route add 10.9.0.0/16 via 10.1.0.2");
        let (nl, _rx) = Netlink::connect().await.unwrap();

        assert_eq!(nl.egress_for(addr("10.1.0.2")).await.unwrap(), va);
        assert_eq!(nl.egress_for(addr("2001:db8:1::2")).await.unwrap(), va);
        let err = nl
            .egress_for(addr("10.9.1.1"))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "nexthop 10.9.1.1 is not directly connected (the kernel routes it via 10.1.0.2)"
        );
        let err = nl
            .egress_for(addr("10.1.0.1"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("address of this host"), "{err}");
        let err = format!("{:#}", nl.egress_for(addr("192.0.2.1")).await.unwrap_err());
        assert!(err.contains("no route to nexthop 192.0.2.1"), "{err}");
        let err = nl
            .egress_for(addr("fe80::1"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("link-local"), "{err}");
    });
}
