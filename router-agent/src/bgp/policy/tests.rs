use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::config::*;
use super::export::*;
use super::import::*;
use super::prefix_list::*;
use super::*;
use crate::bgp::packet::types::{AsPath, AsSegment, AsSegmentKind, Origin, PathAttributes};
use crate::bgp::rib::{NextHop, PathSpec, PeerId, PeerInfo, Rib};

const LOCAL_AS: u32 = 65000;

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn peer(id: u32, ebgp: bool) -> PeerInfo {
    PeerInfo {
        id: PeerId(id),
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8)),
        router_id: Ipv4Addr::new(192, 0, 2, id as u8),
        remote_as: if ebgp { 65100 + id } else { LOCAL_AS },
        local_as: LOCAL_AS,
        ebgp,
        ifindex: Some(id),
        own_next_hops_only: false,
    }
}

fn path_from(asns: &[u32]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath {
            segments: vec![AsSegment {
                kind: AsSegmentKind::Sequence,
                asns: asns.to_vec(),
            }],
        },
        ..Default::default()
    }
}

fn entry(
    action: PolicyAction,
    prefix: &str,
    ge: Option<u8>,
    le: Option<u8>,
) -> PrefixListEntryConfig {
    PrefixListEntryConfig {
        action,
        prefix: net(prefix),
        ge,
        le,
    }
}

fn list_v4(entries: Vec<PrefixListEntryConfig>) -> PrefixList {
    PrefixList::compile(
        "test",
        &PrefixListConfig {
            ipv4: entries,
            ipv6: Vec::new(),
        },
    )
    .unwrap()
}

use PolicyAction::{Deny, Permit};

#[test]
fn prefix_list_entry_without_ge_le_matches_exactly() {
    let list = list_v4(vec![entry(Permit, "10.0.0.0/8", None, None)]);
    assert!(list.permits(&net("10.0.0.0/8")));
    assert!(!list.permits(&net("10.0.0.0/9")));
    assert!(!list.permits(&net("10.1.0.0/16")));
    assert!(!list.permits(&net("0.0.0.0/0")));
}

#[test]
fn prefix_list_ge_le_bounds_are_inclusive() {
    let list = list_v4(vec![entry(Permit, "10.0.0.0/8", Some(24), Some(32))]);
    assert!(
        !list.permits(&net("10.0.0.0/8")),
        "the covering prefix itself is below ge"
    );
    assert!(!list.permits(&net("10.1.2.0/23")));
    assert!(list.permits(&net("10.1.2.0/24")));
    assert!(list.permits(&net("10.255.255.255/32")));
    assert!(
        !list.permits(&net("11.0.0.0/24")),
        "outside the covering prefix"
    );

    // ge alone: up to the family's maximum.
    let ge_only = list_v4(vec![entry(Permit, "10.0.0.0/8", Some(16), None)]);
    assert!(!ge_only.permits(&net("10.0.0.0/15")));
    assert!(ge_only.permits(&net("10.0.0.0/16")));
    assert!(ge_only.permits(&net("10.0.0.1/32")));

    // le alone: from the entry's own length.
    let le_only = list_v4(vec![entry(Permit, "10.0.0.0/8", None, Some(16))]);
    assert!(le_only.permits(&net("10.0.0.0/8")));
    assert!(le_only.permits(&net("10.3.0.0/16")));
    assert!(!le_only.permits(&net("10.3.0.0/17")));

    // ge = le = length: the same as exact.
    let exact = list_v4(vec![entry(Permit, "10.0.0.0/8", Some(8), Some(8))]);
    assert!(exact.permits(&net("10.0.0.0/8")));
    assert!(!exact.permits(&net("10.0.0.0/9")));

    // 0.0.0.0/0 le 32: every IPv4 prefix, and no IPv6 one (per-family lists).
    let any = list_v4(vec![entry(Permit, "0.0.0.0/0", None, Some(32))]);
    assert!(any.permits(&net("0.0.0.0/0")));
    assert!(any.permits(&net("203.0.113.7/32")));
    assert!(!any.permits(&net("::/0")));
    assert!(!any.permits(&net("2001:db8::/32")));
}

#[test]
fn prefix_list_first_match_wins_and_no_match_denies() {
    let list = list_v4(vec![
        entry(Deny, "10.1.0.0/16", None, Some(32)),
        entry(Permit, "10.0.0.0/8", None, Some(32)),
    ]);
    assert_eq!(list.evaluate(&net("10.1.2.0/24")), Deny);
    assert_eq!(list.evaluate(&net("10.2.0.0/16")), Permit);
    assert_eq!(list.evaluate(&net("192.168.0.0/16")), Deny);
    let empty = list_v4(Vec::new());
    assert_eq!(empty.evaluate(&net("10.0.0.0/8")), Deny);
}

#[test]
fn prefix_list_validation_names_the_entry() {
    let compile = |e: PrefixListEntryConfig| {
        PrefixList::compile(
            "bad",
            &PrefixListConfig {
                ipv4: vec![entry(Permit, "192.0.2.0/24", None, None), e],
                ipv6: Vec::new(),
            },
        )
        .unwrap_err()
    };
    let err = compile(entry(Permit, "10.0.0.1/8", None, None));
    assert_eq!(err.key, "bgp.prefix_list.bad.ipv4[1]");
    assert!(err.reason.contains("did you mean 10.0.0.0/8"), "{err}");
    assert!(
        compile(entry(Permit, "10.0.0.0/8", Some(7), None))
            .reason
            .contains("ge = 7")
    );
    assert!(
        compile(entry(Permit, "10.0.0.0/8", None, Some(33)))
            .reason
            .contains("le = 33")
    );
    assert!(
        compile(entry(Permit, "10.0.0.0/8", None, Some(7)))
            .reason
            .contains("le = 7")
    );
    assert!(
        compile(entry(Permit, "10.0.0.0/8", Some(25), Some(24)))
            .reason
            .contains("greater than le")
    );
    assert!(
        compile(entry(Permit, "2001:db8::/32", None, None))
            .reason
            .contains("not an IPv4")
    );
}

#[test]
fn default_only_permits_exactly_the_default_routes() {
    let policy = ImportPolicy::default_only();
    let tor = peer(1, true);
    let attrs = path_from(&[65101]);
    for prefix in ["0.0.0.0/0", "::/0"] {
        assert_eq!(
            policy.evaluate(&net(prefix), &attrs, &tor),
            Ok(()),
            "{prefix}"
        );
    }
    for prefix in ["0.0.0.0/1", "128.0.0.0/1", "10.0.0.0/8", "::/1", "2000::/3"] {
        assert_eq!(
            policy.evaluate(&net(prefix), &attrs, &tor),
            Err(ImportRejection::Denied),
            "{prefix}"
        );
    }
}

#[test]
fn rfc8212_unconfigured_ebgp_imports_and_exports_nothing() {
    let attrs = path_from(&[65101]);
    let unconfigured = ImportPolicy::not_configured();
    assert_eq!(
        unconfigured.evaluate(&net("0.0.0.0/0"), &attrs, &peer(1, true)),
        Err(ImportRejection::NotConfigured)
    );
    // RFC 8212 is about eBGP: an iBGP session without policy takes everything.
    assert_eq!(
        unconfigured.evaluate(&net("0.0.0.0/0"), &path_from(&[65101]), &peer(2, false)),
        Ok(())
    );
    // Configured to deny is a different thing (and says so).
    let lists = PrefixLists::compile(&BTreeMap::from([(
        "empty".to_owned(),
        PrefixListConfig::default(),
    )]))
    .unwrap();
    let empty = ImportPolicy::from_config(
        Some(&PolicyRef::PrefixList("empty".into())),
        None,
        &lists,
        "bgp.neighbor[0].import",
    )
    .unwrap();
    assert_ne!(empty, unconfigured);
    assert_eq!(
        empty.evaluate(&net("0.0.0.0/0"), &attrs, &peer(1, true)),
        Err(ImportRejection::Denied)
    );

    // Export side.
    let originated = originated(&["192.0.2.1/32"]);
    let ebgp = session(true);
    assert!(build_adj_rib_out(&originated, &ebgp, &ExportPolicy::not_configured()).is_empty());
    let ibgp = session(false);
    assert_eq!(
        build_adj_rib_out(&originated, &ibgp, &ExportPolicy::not_configured()).len(),
        1
    );
}

#[test]
fn as_path_loop_is_rejected_whatever_the_filter() {
    let looped = path_from(&[65101, LOCAL_AS, 65200]);
    let all = ImportPolicy {
        filter: Filter::All,
        max_prefix: None,
    };
    for tor in [peer(1, true), peer(2, false)] {
        assert_eq!(
            all.evaluate(&net("0.0.0.0/0"), &looped, &tor),
            Err(ImportRejection::AsPathLoop(LOCAL_AS))
        );
    }
    // Inside an AS_SET too.
    let mut in_set = path_from(&[65101]);
    in_set.as_path.segments.push(AsSegment {
        kind: AsSegmentKind::Set,
        asns: vec![1, LOCAL_AS],
    });
    assert!(
        all.evaluate(&net("0.0.0.0/0"), &in_set, &peer(1, true))
            .is_err()
    );
}

/// The neighbor table is integrated elsewhere; this mirrors its policy keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestNeighbor {
    address: IpAddr,
    import: Option<ImportConfig>,
    export: Option<ExportConfig>,
    max_prefix: Option<MaxPrefix>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBgp {
    #[serde(default)]
    neighbor: Vec<TestNeighbor>,
    #[serde(default)]
    prefix_list: BTreeMap<String, PrefixListConfig>,
    #[serde(default)]
    originate: Vec<OriginateConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    bgp: TestBgp,
}

const EXAMPLE: &str = r#"
[[bgp.neighbor]]
address = "10.0.0.1"
import = { prefix_list = "from-tor" }
export = { prefix_list = "ours" }
max_prefix = { limit = 100, action = "teardown", restart_after = "60s" }

[[bgp.neighbor]]
address = "fe80::1"
import = "default-only"
export = "all"
max_prefix = { limit = 10, action = "warn" }

[[bgp.neighbor]]
address = "10.0.0.3"

[bgp.prefix_list.from-tor]
ipv4 = [ { action = "permit", prefix = "0.0.0.0/0" }, { action = "permit", prefix = "10.0.0.0/8", ge = 24, le = 32 } ]

[bgp.prefix_list.ours]
ipv4 = [ { action = "permit", prefix = "192.0.2.0/24", le = 32 } ]
ipv6 = [ { action = "permit", prefix = "2001:db8::/32", le = 128 } ]

[[bgp.originate]]
prefix = "192.0.2.10/32"
communities = ["65000:100", "graceful-shutdown"]
large_communities = ["4200000000:1:2"]

[[bgp.originate]]
prefix = "198.51.100.0/24"
"#;

#[test]
fn example_configuration_parses_and_compiles() {
    let config: TestConfig = toml::from_str(EXAMPLE).unwrap();
    let lists = PrefixLists::compile(&config.bgp.prefix_list).unwrap();
    let [first, second, third] = &config.bgp.neighbor[..] else {
        panic!("three neighbors");
    };
    assert_eq!(first.address, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    let import =
        ImportPolicy::from_config(first.import.as_ref(), first.max_prefix, &lists, "n0").unwrap();
    assert!(matches!(&import.filter, Filter::PrefixList(list) if list.name == "from-tor"));
    assert_eq!(
        import.max_prefix,
        Some(MaxPrefix {
            limit: 100,
            action: MaxPrefixAction::Teardown {
                restart_after: Some(Duration::from_secs(60))
            }
        })
    );
    let tor = peer(1, true);
    let attrs = path_from(&[65101]);
    assert!(import.evaluate(&net("0.0.0.0/0"), &attrs, &tor).is_ok());
    assert!(import.evaluate(&net("10.1.1.0/24"), &attrs, &tor).is_ok());
    assert!(import.evaluate(&net("10.1.0.0/16"), &attrs, &tor).is_err());

    assert_eq!(
        second.import,
        Some(PolicyRef::Preset(ImportPreset::DefaultOnly))
    );
    assert_eq!(second.export, Some(PolicyRef::Preset(ExportPreset::All)));
    assert_eq!(
        second.max_prefix.map(|m| m.action),
        Some(MaxPrefixAction::Warn)
    );
    // Nothing configured is kept apart from anything configured.
    assert!(third.import.is_none() && third.export.is_none());
    let unconfigured =
        ImportPolicy::from_config(third.import.as_ref(), None, &lists, "n2").unwrap();
    assert_eq!(unconfigured.filter, Filter::NotConfigured);

    let export = ExportPolicy::from_config(first.export.as_ref(), &lists, "n0").unwrap();
    let originated = Originated::from_config(&config.bgp.originate).unwrap();
    let target = build_adj_rib_out(&originated, &session(true), &export);
    // 198.51.100.0/24 is originated but not in "ours".
    let prefixes: Vec<IpNet> = target.iter().map(|(prefix, _)| *prefix).collect();
    assert_eq!(prefixes, vec![net("192.0.2.10/32")]);
    let (_, advertisement) = target.iter().next().unwrap();
    // Sorted, so that equal sets compare equal whatever the configured order.
    assert_eq!(
        advertisement.attrs.communities,
        vec![(65000 << 16) | 100, 0xFFFF_0000]
    );
    assert_eq!(
        advertisement.attrs.large_communities,
        vec![[4_200_000_000, 1, 2]]
    );
}

#[test]
fn configuration_errors_are_clear() {
    let parse_error = |text: &str| match toml::from_str::<TestConfig>(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(err) => err.to_string(),
    };
    let neighbor = |line: &str| format!("[[bgp.neighbor]]\naddress = \"10.0.0.1\"\n{line}\n");

    let err = parse_error(&neighbor("import = \"default\""));
    assert!(err.contains("unknown policy \"default\""), "{err}");
    assert!(err.contains("\"default-only\""), "{err}");
    let err = parse_error(&neighbor("import = { prefix-list = \"x\" }"));
    assert!(err.contains("unknown field `prefix-list`"), "{err}");
    let err = parse_error(&neighbor("export = \"default-only\""));
    assert!(err.contains("expected one of \"all\", \"none\""), "{err}");
    let err = parse_error(&neighbor(
        "max_prefix = { limit = 5, action = \"warn\", restart_after = \"1m\" }",
    ));
    assert!(err.contains("restart_after only applies"), "{err}");
    let err = parse_error(&neighbor(
        "max_prefix = { limit = 5, restart_after = \"60\" }",
    ));
    assert!(err.contains("unit must be"), "{err}");
    let err = parse_error(&neighbor("max_prefix = { limit = 0 }"));
    assert!(err.contains("at least 1"), "{err}");
    let err = parse_error(&neighbor("max_prefix = { limit = 5, action = \"drop\" }"));
    assert!(err.contains("unknown variant `drop`"), "{err}");
    let err = parse_error(
        "[bgp.prefix_list.x]\nipv4 = [ { action = \"permit\", prefix = \"10.0.0.0/8\", lt = 9 } ]\n",
    );
    assert!(err.contains("unknown field `lt`"), "{err}");
    let err =
        parse_error("[[bgp.originate]]\nprefix = \"192.0.2.1/32\"\ncommunities = [\"65536:1\"]\n");
    assert!(err.contains("invalid community"), "{err}");

    // Errors found once everything is parsed name the key.
    let config: TestConfig =
        toml::from_str(&neighbor("import = { prefix_list = \"from-tor\" }")).unwrap();
    let err = ImportPolicy::from_config(
        config.bgp.neighbor[0].import.as_ref(),
        None,
        &PrefixLists::default(),
        "bgp.neighbor[0].import",
    )
    .unwrap_err();
    assert_eq!(err.key, "bgp.neighbor[0].import.prefix_list");
    assert!(
        err.reason.contains("unknown prefix list \"from-tor\""),
        "{err}"
    );

    let default_route = OriginateConfig {
        prefix: net("0.0.0.0/0"),
        communities: Vec::new(),
        large_communities: Vec::new(),
    };
    let err = Originated::from_config(&[default_route]).unwrap_err();
    assert_eq!(err.key, "bgp.originate[0].prefix");
    assert!(
        err.reason.contains("must not originate a default route"),
        "{err}"
    );
    let twice = OriginateConfig {
        prefix: net("192.0.2.1/32"),
        communities: Vec::new(),
        large_communities: Vec::new(),
    };
    assert!(Originated::from_config(&[twice.clone(), twice]).is_err());
}

#[test]
fn durations_and_communities() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("1.5s").is_err());
    assert_eq!("65000:100".parse(), Ok(Community((65000 << 16) | 100)));
    assert_eq!("no-export".parse(), Ok(Community(0xFFFF_FF01)));
    assert!("65000".parse::<Community>().is_err());
    assert!("1:2:3".parse::<Community>().is_err());
    assert_eq!("1:2:3".parse(), Ok(LargeCommunity([1, 2, 3])));
    assert!("1:2".parse::<LargeCommunity>().is_err());
}

fn originated(prefixes: &[&str]) -> Originated {
    let mut table = Originated::new();
    for prefix in prefixes {
        table.insert(OriginatedRoute::new(net(prefix), &[], &[]).unwrap());
    }
    table
}

fn session(ebgp: bool) -> ExportSession {
    ExportSession {
        local_as: LOCAL_AS,
        ebgp,
        ipv4_next_hop: Some(NextHop::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)))),
        ipv6_next_hop: Some(NextHop {
            address: "2001:db8::100".parse().unwrap(),
            link_local: Some("fe80::100".parse().unwrap()),
        }),
        peer_address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    }
}

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
