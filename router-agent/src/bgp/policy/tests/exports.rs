//! Export: attributes for eBGP and iBGP, shared attributes, never transit, the Adj-RIB-Out.

use super::*;

#[test]
fn export_attributes_for_ebgp_and_ibgp() {
    let mut table = originated(&["2001:db8:1::/48"]);
    table.insert(
        OriginatedRoute::new(net("192.0.2.1/32"), &["65000:7".parse().unwrap()], &[]).unwrap(),
    );
    let target = build_adj_rib_out(&table, &session(true), &ExportPolicy::all_originated());
    let routes: BTreeMap<IpNet, Advertisement> =
        target.iter().map(|(p, a)| (*p, a.clone())).collect();

    let v4 = &routes[&net("192.0.2.1/32")];
    assert_eq!(v4.attrs.origin, Some(Origin::Igp));
    assert_eq!(
        v4.attrs.as_path,
        AsPath {
            segments: vec![AsSegment {
                kind: AsSegmentKind::Sequence,
                asns: vec![LOCAL_AS]
            }]
        }
    );
    assert_eq!(v4.attrs.next_hop, Some(Ipv4Addr::new(10, 0, 0, 100)));
    assert_eq!(
        v4.next_hop.address,
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100))
    );
    assert_eq!(v4.attrs.med, None);
    assert_eq!(v4.attrs.local_pref, None);
    assert_eq!(v4.attrs.communities, vec![(65000 << 16) | 7]);

    let v6 = &routes[&net("2001:db8:1::/48")];
    assert_eq!(
        v6.attrs.next_hop, None,
        "IPv6 routes carry their next hop in MP_REACH"
    );
    assert_eq!(
        v6.next_hop.link_local,
        Some("fe80::100".parse::<Ipv6Addr>().unwrap())
    );

    let target = build_adj_rib_out(&table, &session(false), &ExportPolicy::all_originated());
    for (_, advertisement) in target.iter() {
        assert!(advertisement.attrs.as_path.segments.is_empty());
        assert_eq!(advertisement.attrs.local_pref, Some(IBGP_LOCAL_PREF));
        assert_eq!(advertisement.attrs.med, None);
    }

    // A session without an IPv6 next hop gets no IPv6 routes.
    let mut v4_only = session(true);
    v4_only.ipv6_next_hop = None;
    let target = build_adj_rib_out(&table, &v4_only, &ExportPolicy::all_originated());
    assert_eq!(target.len(), 1);
}

#[test]
fn export_routes_with_equal_attributes_share_them() {
    let table = originated(&["192.0.2.1/32", "192.0.2.2/32"]);
    let target = build_adj_rib_out(&table, &session(true), &ExportPolicy::all_originated());
    let attrs: Vec<&Arc<PathAttributes>> = target.iter().map(|(_, a)| &a.attrs).collect();
    assert!(Arc::ptr_eq(attrs[0], attrs[1]));
}

/// Never transit: routes learned from peer A are in the RIB (and best), yet peer B's
/// Adj-RIB-Out holds only what the host originates. There is no code path to try
/// otherwise: `build_adj_rib_out` takes no RIB (see the compile_fail example in the
/// module docs), so the test shows the outcome, the types guarantee it.
#[test]
fn never_transit_learned_routes_are_not_exported() {
    let mut rib = Rib::default();
    let tor_a = peer(1, true);
    rib.peer_up(
        tor_a.clone(),
        ImportPolicy {
            filter: Filter::All,
            max_prefix: None,
        },
    )
    .unwrap();
    let learned = ["0.0.0.0/0", "10.0.0.0/8", "192.0.2.0/24", "192.0.2.1/32"];
    for prefix in learned {
        let spec = PathSpec {
            attrs: Arc::new(path_from(&[tor_a.remote_as, 64999])),
            next_hop: NextHop::new(tor_a.address),
        };
        assert!(rib.update(tor_a.id, net(prefix), Some(spec)).is_some());
    }
    assert_eq!(rib.len(), learned.len());
    assert!(rib.best(&net("192.0.2.1/32")).is_some());

    // The host originates its loopback; one prefix overlaps a learned one.
    let ours = originated(&["192.0.2.1/32", "2001:db8::1/128"]);
    let mut out_b = AdjRibOut::new();
    let diff = out_b.update(&ours, &session(true), &ExportPolicy::all_originated());
    let announced: Vec<IpNet> = diff.announce.iter().map(|(p, _)| *p).collect();
    assert_eq!(announced, vec![net("192.0.2.1/32"), net("2001:db8::1/128")]);
    for (_, advertisement) in out_b.advertised() {
        // Our attributes, not the learned ones: AS_PATH is our AS alone.
        assert_eq!(advertisement.attrs.as_path.length(), 1);
        assert_eq!(advertisement.attrs.as_path.first_as(), Some(LOCAL_AS));
        assert!(!advertisement.attrs.as_path.contains(tor_a.remote_as));
    }
    // Even a policy that permits everything exports nothing learned.
    let permit_all = PrefixList::compile(
        "everything",
        &PrefixListConfig {
            ipv4: vec![entry(Permit, "0.0.0.0/0", None, Some(32))],
            ipv6: vec![PrefixListEntryConfig {
                action: Permit,
                prefix: net("::/0"),
                ge: None,
                le: Some(128),
            }],
        },
    )
    .unwrap();
    let policy = ExportPolicy {
        filter: Filter::PrefixList(Arc::new(permit_all)),
    };
    let target = build_adj_rib_out(&ours, &session(true), &policy);
    assert_eq!(target.len(), 2);
    assert!(
        target
            .iter()
            .all(|(prefix, _)| ours.iter().any(|r| r.prefix() == *prefix))
    );
}

/// The module docs' compile_fail example with the leak replaced by what is allowed.
#[test]
fn compile_fail_example_twin_compiles() {
    fn no_leak(rib: &Rib, session: &ExportSession, policy: &ExportPolicy) -> ExportTarget {
        let learned: Vec<crate::bgp::rib::Path> =
            rib.routes().flat_map(|r| r.paths).map(|p| p.path).collect();
        assert!(learned.is_empty());
        build_adj_rib_out(&Originated::new(), session, policy)
    }
    let target = no_leak(
        &Rib::default(),
        &session(true),
        &ExportPolicy::all_originated(),
    );
    assert!(target.is_empty());
}

#[test]
fn adj_rib_out_sends_only_differences() {
    let policy = ExportPolicy::all_originated();
    let session = session(true);
    let mut out = AdjRibOut::new();
    let mut table = originated(&["192.0.2.1/32", "192.0.2.2/32"]);

    let diff = out.update(&table, &session, &policy);
    assert_eq!(diff.announce.len(), 2);
    assert!(diff.withdraw.is_empty());
    assert!(
        out.update(&table, &session, &policy).is_empty(),
        "no change, nothing to send"
    );

    // A changed community re-announces that prefix only.
    table.insert(
        OriginatedRoute::new(net("192.0.2.2/32"), &["65000:1".parse().unwrap()], &[]).unwrap(),
    );
    table.insert(OriginatedRoute::new(net("192.0.2.3/32"), &[], &[]).unwrap());
    table.remove(&net("192.0.2.1/32"));
    let diff = out.update(&table, &session, &policy);
    let announced: Vec<IpNet> = diff.announce.iter().map(|(p, _)| *p).collect();
    assert_eq!(announced, vec![net("192.0.2.2/32"), net("192.0.2.3/32")]);
    assert_eq!(diff.withdraw, vec![net("192.0.2.1/32")]);

    // A policy change is a diff like any other.
    let diff = out.update(
        &table,
        &session,
        &ExportPolicy {
            filter: Filter::None,
        },
    );
    assert!(diff.announce.is_empty());
    assert_eq!(diff.withdraw.len(), 2);
    out.update(&table, &session, &policy);

    // Route refresh: everything again.
    let refresh = out.refresh();
    assert_eq!(refresh.announce.len(), 2);
    assert!(refresh.withdraw.is_empty());

    // After a session reset, everything is new again.
    out.clear();
    assert_eq!(out.update(&table, &session, &policy).announce.len(), 2);
}
