//! Removing our routes at exit: by prefix, unacknowledged, IPv4 and IPv6 in parallel
//! (`kernel_mirror::remove`), and what the kernel writer had not applied when it stopped.

use super::tests::{in_netns, ip, our_routes, route, two_links};
use super::*;
use crate::fib::KernelChange;
use crate::kernel_mirror::{self, KernelMirror};

fn v4(i: u32) -> String {
    format!("100.{}.{}.0/24", 64 + i / 256, i % 256)
}

fn v6(i: u32) -> String {
    format!("2001:db8:{i:x}::/48")
}

#[test]
fn remove_deletes_our_routes_by_prefix_and_nothing_else() {
    in_netns(|| async {
        let (va, _) = two_links().await;
        let mut writer = RouteWriter::open().unwrap();
        let installs: Vec<RouteChange> = (0..3000)
            .map(|i| RouteChange::Replace(route(&v4(i), &[("10.1.0.2", va)])))
            .chain((0..700).map(|i| RouteChange::Replace(route(&v6(i), &[("2001:db8:1::2", va)]))))
            .collect();
        assert!(writer.apply(&installs).unwrap().is_empty());
        // Not ours: another protocol, our protocol in another table.
        ip("route add 192.0.2.0/24 via 10.1.0.2");
        ip(&format!(
            "route add 192.0.2.128/25 via 10.1.0.2 table 100 proto {RTPROT_HOSTROUTER}"
        ));

        // Every prefix, some twice, and some that were never installed (absent is fine).
        let prefixes: Vec<ipnet::IpNet> = (0..3000)
            .map(v4)
            .chain((0..700).map(v6))
            .chain((2000..3500).map(v4))
            .chain((600..800).map(v6))
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(
            kernel_mirror::remove(RTPROT_HOSTROUTER, &prefixes).unwrap(),
            3500 + 800,
            "each distinct prefix once"
        );
        assert_eq!((our_routes("-4").len(), our_routes("-6").len()), (0, 0));
        assert!(ip("route show 192.0.2.0/24").contains("192.0.2.0/24"));
        assert!(ip("route show table 100").contains("192.0.2.128/25"));
        // Again: all absent now, still no failure; the route of the other protocol stays.
        assert_eq!(
            kernel_mirror::remove(RTPROT_HOSTROUTER, &prefixes).unwrap(),
            4300
        );
        assert!(ip("route show 192.0.2.0/24").contains("192.0.2.0/24"));
        // Asked by its prefix, the other protocol's route is not matched (deletes carry our
        // protocol): it stays.
        let theirs = ["192.0.2.0/24".parse().unwrap()];
        assert_eq!(
            kernel_mirror::remove(RTPROT_HOSTROUTER, &theirs).unwrap(),
            1
        );
        assert!(ip("route show 192.0.2.0/24").contains("192.0.2.0/24"));
    });
}

#[test]
fn a_stopped_kernel_writer_names_what_it_did_not_apply() {
    in_netns(|| async {
        let (va, _) = two_links().await;
        let set = std::sync::Arc::new(std::collections::BTreeSet::from([
            crate::fib::NexthopKey::host("10.1.0.2".parse().unwrap(), va),
        ]));
        let mirror = KernelMirror::start(RTPROT_HOSTROUTER).unwrap();
        let prefixes: Vec<ipnet::IpNet> = (0..20_000).map(|i| v4(i).parse().unwrap()).collect();
        for chunk in prefixes.chunks(5000) {
            let installs = chunk
                .iter()
                .map(|&prefix| KernelChange::Replace {
                    prefix,
                    nexthops: set.clone(),
                })
                .collect();
            mirror.submit(installs).await;
        }
        // Withdrawn at once (a session lost), and the agent stops before the deletes land.
        let deletes: Vec<KernelChange> = prefixes
            .iter()
            .map(|&prefix| KernelChange::Delete { prefix })
            .collect();
        mirror.submit(deletes).await;
        let unapplied = mirror.finish(false);
        // Whatever is left in the kernel, the exit knows by prefix.
        let left: Vec<String> = our_routes("-4").into_iter().map(|(p, _)| p).collect();
        let named: std::collections::HashSet<String> =
            unapplied.iter().map(|p| p.to_string()).collect();
        assert!(
            left.iter().all(|prefix| named.contains(prefix)),
            "{} routes left, {} named",
            left.len(),
            named.len()
        );
        kernel_mirror::remove(RTPROT_HOSTROUTER, &unapplied).unwrap();
        assert!(our_routes("-4").is_empty());
    });
}
