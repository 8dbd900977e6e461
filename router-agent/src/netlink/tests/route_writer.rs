//! Namespace tests (root): route writes, the kernel mirror, flushing our routes.

use super::*;

/// One route change through a [`RouteWriter`] of its own: the error of its refusal, if any.
fn change_route(change: RouteChange) -> anyhow::Result<()> {
    match RouteWriter::open()?.apply(&[change])?.into_iter().next() {
        Some(failure) => Err(failure.error),
        None => Ok(()),
    }
}

fn replace_route(route: &KernelRoute) -> anyhow::Result<()> {
    change_route(RouteChange::Replace(route.clone()))
}

fn delete_route(route: &KernelRoute) -> anyhow::Result<()> {
    change_route(RouteChange::Delete(route.clone()))
}

fn hops(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(g, d)| (g.to_string(), d.to_string()))
        .collect()
}

#[test]
fn replace_and_delete_routes() {
    in_netns(|| async {
        let (va, wa) = two_links().await;

        for (family, prefix, gw_a, gw_b) in [
            ("-4", "198.51.100.0/24", "10.1.0.2", "10.2.0.2"),
            ("-6", "2001:db8:100::/48", "2001:db8:1::2", "2001:db8:2::2"),
            // RFC 5549: IPv4 prefix, IPv6 link-local gateways (RTA_VIA).
            ("-4", "203.0.113.0/24", "fe80::2", "fe80::3"),
        ] {
            let one = route(prefix, &[(gw_a, va)]);
            replace_route(&one).unwrap();
            assert_eq!(
                our_routes(family),
                vec![(prefix.to_string(), hops(&[(gw_a, "va")]))]
            );

            let two = route(prefix, &[(gw_a, va), (gw_b, wa)]);
            replace_route(&two).unwrap();
            assert_eq!(
                our_routes(family),
                vec![(prefix.to_string(), hops(&[(gw_a, "va"), (gw_b, "wa")]))]
            );

            // Back to one nexthop, the other one: no leftover sibling.
            let other = route(prefix, &[(gw_b, wa)]);
            replace_route(&other).unwrap();
            assert_eq!(
                our_routes(family),
                vec![(prefix.to_string(), hops(&[(gw_b, "wa")]))]
            );

            replace_route(&two).unwrap();
            delete_route(&two).unwrap();
            assert_eq!(our_routes(family), vec![]);
            // Deleting what is not there is fine.
            delete_route(&two).unwrap();
        }

        // Kernel errors carry the kernel's explanation.
        let unreachable_gw = route("198.51.100.0/24", &[("192.0.2.1", va)]);
        let err = format!("{:#}", replace_route(&unreachable_gw).unwrap_err());
        assert!(
            err.starts_with("cannot install route 198.51.100.0/24 via [192.0.2.1@"),
            "{err}"
        );
        assert!(err.contains("Nexthop has invalid gateway"), "{err}");
    });
}

#[test]
fn route_writer_applies_changes_in_bulk_and_reports_each_refusal() {
    in_netns(|| async {
        let (va, wa) = two_links().await;
        let mut writer = RouteWriter::open().unwrap();
        // More than one sendmsg's worth, both families, single and multipath routes.
        let mut changes: Vec<RouteChange> = (0..1500u32)
            .map(|i| {
                let prefix = format!("100.{}.{}.0/24", i / 256, i % 256);
                RouteChange::Replace(route(&prefix, &[("10.1.0.2", va)]))
            })
            .collect();
        changes.extend((0..300u32).map(|i| {
            let prefix = format!("2001:db8:{i:x}::/48");
            RouteChange::Replace(route(
                &prefix,
                &[("2001:db8:1::2", va), ("2001:db8:2::2", wa)],
            ))
        }));
        // Refused by the kernel (gateway not on the link), and by the encoder (IPv4 gateway
        // for an IPv6 prefix); everything around them still goes in.
        let refused = 700;
        changes.insert(
            refused,
            RouteChange::Replace(route("198.51.100.0/24", &[("192.0.2.1", va)])),
        );
        let malformed = 1600;
        changes.insert(
            malformed,
            RouteChange::Replace(route("2001:db8:ffff::/48", &[("10.1.0.2", va)])),
        );
        let failures = writer.apply(&changes).unwrap();
        let failed: Vec<usize> = failures.iter().map(|f| f.index).collect();
        assert_eq!(failed, [refused, malformed]);
        let message = format!("{:#}", failures[0].error);
        assert!(
            message.starts_with("cannot install route 198.51.100.0/24 via [192.0.2.1@")
                && message.contains("Nexthop has invalid gateway"),
            "{message}"
        );
        assert_eq!(our_routes("-4").len(), 1500);
        let v6 = our_routes("-6");
        assert_eq!(v6.len(), 300);
        assert_eq!(
            v6[0].1,
            hops(&[("2001:db8:1::2", "va"), ("2001:db8:2::2", "wa")])
        );

        // Wide ECMP: 300 IPv6 routes over 40 gateways each (~1.2 KB a message, 360 KB in
        // all: more than a default send buffer takes in one sendmsg).
        let gateways: Vec<String> = (0..40)
            .map(|i| format!("2001:db8:1::{:x}", 0x10 + i))
            .collect();
        let wide: Vec<(&str, u32)> = gateways.iter().map(|gw| (gw.as_str(), va)).collect();
        let wide_changes: Vec<RouteChange> = (0..300u32)
            .map(|i| RouteChange::Replace(route(&format!("2001:db8:e{i:03x}::/48"), &wide)))
            .collect();
        let failures = writer.apply(&wide_changes).unwrap();
        assert!(
            failures.is_empty(),
            "{:?}",
            failures.first().map(|f| format!("{:#}", f.error))
        );
        let v6 = our_routes("-6");
        assert_eq!(v6.len(), 600, "300 + 300 routes");
        assert!(
            v6.iter()
                .filter(|(_, hops_now)| hops_now.len() == 40)
                .count()
                == 300
        );
        let wide_deletes: Vec<RouteChange> = wide_changes
            .into_iter()
            .map(|change| match change {
                RouteChange::Replace(route) | RouteChange::Delete(route) => {
                    RouteChange::Delete(route)
                }
            })
            .collect();
        assert!(writer.apply(&wide_deletes).unwrap().is_empty());

        // Replacing keeps the order of a batch: the last change of a prefix wins.
        let prefix = "100.0.0.0/24";
        let changes = [
            RouteChange::Replace(route(prefix, &[("10.2.0.2", wa)])),
            RouteChange::Delete(route(prefix, &[])),
            RouteChange::Replace(route(prefix, &[("10.1.0.2", va), ("10.2.0.2", wa)])),
        ];
        assert!(writer.apply(&changes).unwrap().is_empty());
        let routes = our_routes("-4");
        let (_, hops_now) = routes.iter().find(|(p, _)| p == prefix).unwrap();
        assert_eq!(*hops_now, hops(&[("10.1.0.2", "va"), ("10.2.0.2", "wa")]));

        // Deleting everything, twice: an absent route is not a failure.
        let deletes: Vec<RouteChange> = (0..1500u32)
            .map(|i| RouteChange::Delete(route(&format!("100.{}.{}.0/24", i / 256, i % 256), &[])))
            .chain(
                (0..300u32)
                    .map(|i| RouteChange::Delete(route(&format!("2001:db8:{i:x}::/48"), &[]))),
            )
            .collect();
        assert!(writer.apply(&deletes).unwrap().is_empty());
        assert!(writer.apply(&deletes).unwrap().is_empty());
        assert_eq!((our_routes("-4").len(), our_routes("-6").len()), (0, 0));
    });
}

#[test]
fn kernel_mirror_applies_batches_in_order() {
    use crate::fib::{KernelChange, NexthopKey};
    use crate::kernel_mirror::KernelMirror;

    in_netns(|| async {
        let (va, wa) = two_links().await;
        let mirror = KernelMirror::start(RTPROT_HOSTROUTER).unwrap();
        let set = |via: &str, ifindex| {
            std::sync::Arc::new(std::collections::BTreeSet::from([NexthopKey::host(
                addr(via),
                ifindex,
            )]))
        };
        let (to_va, to_wa) = (set("10.1.0.2", va), set("10.2.0.2", wa));
        for round in 0..50u32 {
            let nexthops = if round % 2 == 0 { &to_va } else { &to_wa };
            let changes = (0..100u32)
                .map(|i| KernelChange::Replace {
                    prefix: format!("100.64.{i}.0/24").parse().unwrap(),
                    nexthops: nexthops.clone(),
                })
                .collect();
            // More batches than the queue holds: submit waits for room.
            mirror.submit(changes).await;
        }
        let prefix = "100.64.0.0/24".parse().unwrap();
        mirror.submit(vec![KernelChange::Delete { prefix }]).await;
        mirror.finish(true);
        let routes = our_routes("-4");
        assert_eq!(routes.len(), 99, "all but the deleted one");
        // Round 49 (odd) came last.
        assert!(
            routes
                .iter()
                .all(|(_, hops_now)| *hops_now == hops(&[("10.2.0.2", "wa")]))
        );
    });
}

#[test]
fn flush_routes_deletes_only_ours() {
    in_netns(|| async {
        let (va, wa) = two_links().await;
        let (nl, _rx) = Netlink::connect().await.unwrap();
        replace_route(&route(
            "198.51.100.0/24",
            &[("10.1.0.2", va), ("10.2.0.2", wa)],
        ))
        .unwrap();
        replace_route(&route("198.51.101.0/24", &[("10.1.0.2", va)])).unwrap();
        replace_route(&route("203.0.113.0/24", &[("fe80::2", va)])).unwrap();
        replace_route(&route(
            "2001:db8:100::/48",
            &[("2001:db8:1::2", va), ("2001:db8:2::2", wa)],
        ))
        .unwrap();
        replace_route(&route("::/0", &[("fe80::2", va)])).unwrap();
        // Not ours: other protocol, or our protocol in another table.
        ip("route add 192.0.2.0/24 via 10.1.0.2");
        ip(&format!(
            "route add 192.0.2.128/25 via 10.1.0.2 table 100 proto {RTPROT_HOSTROUTER}"
        ));

        assert_eq!(nl.flush_routes(RTPROT_HOSTROUTER).await.unwrap(), 5);
        assert_eq!(our_routes("-4"), vec![]);
        assert_eq!(our_routes("-6"), vec![]);
        assert_eq!(ip_json("route show 192.0.2.0/24").len(), 1);
        assert_eq!(ip_json("route show table 100").len(), 1);
        assert_eq!(nl.flush_routes(RTPROT_HOSTROUTER).await.unwrap(), 0);
    });
}
