//! Namespace tests (root): neighbor resolution, overflow resynchronisation, stale entries.

use super::*;

/// `ip -d neigh show ADDR dev va`.
fn neigh_details(a: &str) -> String {
    ip(&format!("-d neigh show {a} dev va"))
}

#[test]
fn resolve_creates_managed_neighbors() {
    in_netns(|| async {
        let peer = PeerNs::new();
        let va = link_to_peer(&peer).await;
        let (nl, mut rx) = Netlink::connect().await.unwrap();
        dump(&mut rx).await;

        let peer_mac = Some(mac("02:00:00:00:03:02"));
        for target in ["10.3.0.2", "2001:db8:3::2"] {
            nl.resolve(va, addr(target)).await.unwrap();
            let details = neigh_details(target);
            assert!(details.contains("managed"), "{details}");
            assert!(
                details.contains(&format!("proto {RTPROT_HOSTROUTER}")),
                "{details}"
            );
            let want = KernelEvent::Neighbor(NeighborInfo {
                ifindex: va,
                addr: addr(target),
                mac: peer_mac,
            });
            wait_event(&mut rx, "resolved neighbor", |e| *e == want).await;
            // Again: the entry exists and is managed already.
            nl.resolve(va, addr(target)).await.unwrap();
        }

        // Nobody answers: the entry exists, managed, unusable.
        nl.resolve(va, addr("10.3.0.99")).await.unwrap();
        assert!(neigh_details("10.3.0.99").contains("managed"));
        let want = KernelEvent::Neighbor(NeighborInfo {
            ifindex: va,
            addr: addr("10.3.0.99"),
            mac: None,
        });
        wait_event(&mut rx, "unresolved neighbor", |e| *e == want).await;

        // An existing dynamic entry becomes managed...
        ip("neigh del 10.3.0.2 dev va");
        ip("neigh add 10.3.0.2 lladdr 02:00:00:00:03:02 nud stale dev va");
        assert!(!neigh_details("10.3.0.2").contains("managed"));
        nl.resolve(va, addr("10.3.0.2")).await.unwrap();
        assert!(neigh_details("10.3.0.2").contains("managed"));

        // ... and so does a failed one (an admin change drops the managed flag), which the
        // kernel then resolves again.
        ip("neigh change 10.3.0.2 dev va nud failed");
        assert!(!neigh_details("10.3.0.2").contains("managed"));
        let failed = KernelEvent::Neighbor(NeighborInfo {
            ifindex: va,
            addr: addr("10.3.0.2"),
            mac: None,
        });
        wait_event(&mut rx, "failed neighbor", |e| *e == failed).await;
        nl.resolve(va, addr("10.3.0.2")).await.unwrap();
        assert!(neigh_details("10.3.0.2").contains("managed"));
        let want = KernelEvent::Neighbor(NeighborInfo {
            ifindex: va,
            addr: addr("10.3.0.2"),
            mac: peer_mac,
        });
        wait_event(&mut rx, "re-resolved neighbor", |e| *e == want).await;

        // ... but a static one is left alone.
        ip("neigh add 10.3.0.4 lladdr 02:00:00:00:00:04 nud permanent dev va");
        nl.resolve(va, addr("10.3.0.4")).await.unwrap();
        let details = neigh_details("10.3.0.4");
        assert!(
            details.contains("PERMANENT") && !details.contains("managed"),
            "{details}"
        );
    });
}

#[test]
fn udp_probe_resolves_without_managed_entry() {
    in_netns(|| async {
        let peer = PeerNs::new();
        let va = link_to_peer(&peer).await;
        let (_nl, mut rx) = Netlink::connect().await.unwrap();
        dump(&mut rx).await;

        let peer_mac = Some(mac("02:00:00:00:03:02"));
        for target in ["10.3.0.2", "2001:db8:3::2"] {
            neighbors::udp_probe(va, addr(target)).unwrap();
            let want = KernelEvent::Neighbor(NeighborInfo {
                ifindex: va,
                addr: addr(target),
                mac: peer_mac,
            });
            wait_event(&mut rx, "neighbor resolved by the probe", |e| *e == want).await;
            assert!(!neigh_details(target).contains("managed"));
        }
    });
}

#[test]
fn overflow_resynchronises() {
    in_netns(|| async {
        let va = veth("va", "vb", "02:00:00:00:00:0a");
        ip("neigh add 10.1.9.9 lladdr 02:00:00:00:09:09 nud permanent dev va");
        // A tiny event socket buffer (the kernel rounds it up to a few KiB).
        TEST_EVENT_RCVBUF.set(Some(1));
        let (_nl, mut rx) = Netlink::connect().await.unwrap();

        // The consumer's view, built from the events only.
        let mut view = std::collections::BTreeMap::new();
        let apply = |e: KernelEvent, view: &mut std::collections::BTreeMap<_, _>| match e {
            KernelEvent::Neighbor(n) => {
                view.insert((n.ifindex, n.addr), n.mac);
            }
            KernelEvent::NeighborRemoved { ifindex, addr } => {
                view.remove(&(ifindex, addr));
            }
            _ => {}
        };
        for e in dump(&mut rx).await {
            apply(e, &mut view);
        }
        assert!(view.contains_key(&(va, addr("10.1.9.9"))));

        // A burst while this thread (the runtime's only one) is blocked in ip: nobody reads the
        // event socket, it overflows, and the deletion at the end is lost with the rest.
        let mut batch = String::new();
        for i in 0..400u32 {
            let (hi, lo) = (i / 200 + 1, i % 200 + 1);
            batch += &format!(
                "neigh add 10.1.{hi}.{lo} lladdr 02:00:00:00:{hi:02x}:{lo:02x} nud permanent dev va\n"
            );
        }
        batch += "neigh del 10.1.9.9 dev va\n";
        ip_batch(&batch);

        let converged = |view: &std::collections::BTreeMap<(u32, IpAddr), Option<Mac>>| {
            // (IPv6 multicast entries come and go on their own: only count ours.)
            view.keys().filter(|(i, a)| *i == va && a.is_ipv4()).count() == 400
                && !view.contains_key(&(va, addr("10.1.9.9")))
                && view.get(&(va, addr("10.1.2.200"))) == Some(&Some(mac("02:00:00:00:02:c8")))
        };
        let waiting = async {
            while !converged(&view) {
                apply(rx.recv().await.expect("event stream ended"), &mut view);
            }
        };
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the consumer's view never converged: {} entries, 10.1.9.9 {:?}, {} resyncs",
                    view.len(),
                    view.get(&(va, addr("10.1.9.9"))),
                    TEST_RESYNCS.get()
                )
            });
        assert!(
            TEST_RESYNCS.get() >= 1,
            "the socket did not overflow: test ineffective"
        );
    });
}

#[test]
fn stale_neighbors_are_confirmed_on_request() {
    in_netns(|| async {
        let va = veth("va", "vb", "02:00:00:00:00:0a");
        ip("addr add 10.1.0.1/24 dev va");
        wait_oper_up("va").await;
        ip("neigh add 10.1.0.7 lladdr 02:00:00:00:00:07 nud stale dev va");
        let (nl, _rx) = Netlink::connect().await.unwrap();
        let state = || ip("neigh show 10.1.0.7 dev va");
        assert!(state().contains("STALE"), "{}", state());
        // What the kernel's own send on the entry does: STALE -> DELAY (then PROBE, and here
        // FAILED, as nobody answers at 10.1.0.7).
        nl.confirm_neighbor(va, addr("10.1.0.7")).await.unwrap();
        let now = state();
        assert!(
            ["DELAY", "PROBE", "FAILED", "INCOMPLETE"]
                .iter()
                .any(|s| now.contains(s)),
            "not confirming: {now}"
        );
        // An entry that is gone is not created.
        assert!(nl.confirm_neighbor(va, addr("10.1.0.8")).await.is_err());
        assert!(ip("neigh show 10.1.0.8 dev va").trim().is_empty());
    });
}
