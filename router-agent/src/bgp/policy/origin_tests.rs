//! Sources and modifiers of originated routes (`origin.rs`, `origins.rs`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::IpNet;

use super::*;
use crate::bgp::packet::types::GRACEFUL_SHUTDOWN;
use crate::bgp::route_source::NextHop;
use crate::netlink::{AddressInfo, FollowedRoute, FollowedRouteKey, RouteHop, RouteKind};

const LOCAL_AS: u32 = 65000;
const OWN_PROTOCOL: u8 = 201;

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn session(ebgp: bool) -> ExportSession {
    ExportSession {
        local_as: LOCAL_AS,
        ebgp,
        ipv4_next_hop: Some(NextHop::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)))),
        ipv6_next_hop: None,
        peer_address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    }
}

fn kernel_route(prefix: &str, protocol: u8) -> FollowedRoute {
    FollowedRoute {
        key: FollowedRouteKey {
            table: 254,
            prefix: net(prefix),
            selector: 0,
            metric: 0,
        },
        protocol,
        kind: RouteKind::Unicast(vec![RouteHop {
            gateway: None,
            ifindex: 7,
            weight: 1,
        }]),
    }
}

fn address(addr: &str, prefix_len: u8) -> AddressInfo {
    AddressInfo {
        ifindex: 7,
        addr: addr.parse().unwrap(),
        prefix_len,
        broadcast: None,
    }
}

fn export() -> OriginExport {
    OriginExport {
        communities: vec!["65000:53".parse().unwrap()],
        large_communities: vec![],
        med: Some(10),
    }
}

fn attrs_of(route: OriginatedRoute, ebgp: bool) -> crate::bgp::packet::types::PathAttributes {
    let mut table = Originated::new();
    table.insert(route);
    let target = build_adj_rib_out(&table, &session(ebgp), &ExportPolicy::all_originated());
    let (_, advertisement) = target.iter().next().expect("exported");
    (*advertisement.attrs).clone()
}

#[test]
fn a_service_route_carries_its_med_and_communities() {
    let name: Arc<str> = Arc::from("dns");
    let route = OriginatedRoute::for_service(&name, net("192.0.2.53/32"), &export()).unwrap();
    assert_eq!(route.source(), &OriginSource::Service(name));
    let attrs = attrs_of(route, true);
    assert_eq!(attrs.med, Some(10));
    assert_eq!(attrs.communities, vec![(65000 << 16) | 53]);
    assert_eq!(attrs.as_path.length(), 1);
}

#[test]
fn prepend_applies_on_ebgp_only_and_graceful_shutdown_tags_sorted() {
    let name: Arc<str> = Arc::from("dns");
    let drained = OriginatedRoute::for_service(&name, net("192.0.2.53/32"), &export())
        .unwrap()
        .with_modifiers(ExportModifiers {
            med: None,
            prepend: 2,
            graceful_shutdown: true,
        });
    let ebgp = attrs_of(drained.clone(), true);
    assert_eq!(ebgp.as_path.length(), 3, "our AS three times");
    // 65000:53 sorts before 65535:0.
    assert_eq!(
        ebgp.communities,
        vec![(65000 << 16) | 53, GRACEFUL_SHUTDOWN]
    );
    assert_eq!(ebgp.local_pref, None);
    assert_eq!(ebgp.med, Some(10), "the service's MED is kept");
    let ibgp = attrs_of(drained, false);
    assert_eq!(ibgp.as_path.length(), 0, "no prepend inside our AS");
    assert_eq!(
        ibgp.local_pref,
        Some(0),
        "RFC 8326 receiver action for our iBGP peers"
    );
    // A configured graceful-shutdown community is not doubled.
    let tagged = OriginatedRoute::new(
        net("192.0.2.1/32"),
        &["graceful-shutdown".parse().unwrap()],
        &[],
    )
    .unwrap()
    .with_modifiers(ExportModifiers {
        graceful_shutdown: true,
        ..Default::default()
    });
    assert_eq!(attrs_of(tagged, true).communities, vec![GRACEFUL_SHUTDOWN]);
}

#[test]
fn host_prefixes_refuse_our_own_routes_and_meaningless_addresses() {
    assert_eq!(
        HostPrefix::from_kernel_route(&kernel_route("10.200.0.5/32", OWN_PROTOCOL), OWN_PROTOCOL),
        None,
        "a route our BGP mirror installed is a learned route"
    );
    let boot = HostPrefix::from_kernel_route(&kernel_route("10.200.0.5/32", 3), OWN_PROTOCOL);
    assert_eq!(boot.map(|p| p.prefix()), Some(net("10.200.0.5/32")));
    assert_eq!(
        HostPrefix::from_kernel_route(&kernel_route("0.0.0.0/0", 3), OWN_PROTOCOL),
        None
    );
    let host = HostPrefix::from_address(&address("192.0.2.77", 24)).unwrap();
    assert_eq!(host.prefix(), net("192.0.2.77/32"));
    let subnet = HostPrefix::connected(&address("192.0.2.77", 24)).unwrap();
    assert_eq!(subnet.prefix(), net("192.0.2.0/24"));
    for skipped in ["127.0.0.1", "169.254.1.1", "fe80::1", "::1", "224.0.0.1"] {
        assert_eq!(
            HostPrefix::from_address(&address(skipped, 8)),
            None,
            "{skipped}"
        );
        assert_eq!(
            HostPrefix::connected(&address(skipped, 8)),
            None,
            "{skipped}"
        );
    }
}

/// The twin of the `compile_fail` example in `origin.rs`: the same call with a kernel route.
#[test]
fn host_prefix_example_twin_compiles() {
    fn no_leak(route: &FollowedRoute) -> Option<HostPrefix> {
        HostPrefix::from_kernel_route(route, 201)
    }
    assert!(no_leak(&kernel_route("10.0.0.0/24", 2)).is_some());
}

fn redistributed(rule: &str, prefix: &str) -> OriginatedRoute {
    let host = HostPrefix::from_kernel_route(&kernel_route(prefix, 3), OWN_PROTOCOL).unwrap();
    OriginatedRoute::redistributed(&Arc::from(rule), host, &OriginExport::default()).unwrap()
}

fn prefixes(table: &Originated) -> Vec<IpNet> {
    table.iter().map(|route| route.prefix()).collect()
}

#[test]
fn one_origin_per_prefix_and_a_service_prefix_is_never_redistributed() {
    let mut config = Originated::new();
    config.insert(OriginatedRoute::new(net("192.0.2.1/32"), &[], &[]).unwrap());
    let mut origins = Origins::new(config);
    let dns: Arc<str> = Arc::from("dns");
    let vip = net("198.51.100.53/32");
    // Down: configured but not announced.
    origins.set_service("dns", vec![vip], vec![]);
    origins.set_redistributed(
        "dummies",
        vec![
            redistributed("dummies", "198.51.100.53/32"),
            redistributed("dummies", "192.0.2.1/32"),
            redistributed("dummies", "10.200.0.5/32"),
        ],
    );
    let plain = |_: &OriginSource| Some(ExportModifiers::default());
    let effective = origins.effective(plain);
    assert_eq!(
        prefixes(&effective),
        vec![net("10.200.0.5/32"), net("192.0.2.1/32")]
    );
    let config_route = effective
        .iter()
        .find(|r| r.prefix() == net("192.0.2.1/32"))
        .unwrap();
    assert_eq!(config_route.source(), &OriginSource::Config);
    // Up: the service announces it, as the service.
    let route = OriginatedRoute::for_service(&dns, vip, &export()).unwrap();
    origins.set_service("dns", vec![vip], vec![route]);
    let effective = origins.effective(plain);
    let vip_route = effective.iter().find(|r| r.prefix() == vip).unwrap();
    assert_eq!(vip_route.source(), &OriginSource::Service(dns));
    origins.remove_service("dns");
    assert!(
        origins.effective(plain).contains(&vip),
        "no service claims it any more"
    );
}

#[test]
fn adjust_tags_or_leaves_out_by_source() {
    let mut config = Originated::new();
    config.insert(OriginatedRoute::new(net("192.0.2.1/32"), &[], &[]).unwrap());
    let mut origins = Origins::new(config);
    origins.set_redistributed("r", vec![redistributed("r", "10.200.0.5/32")]);
    let effective = origins.effective(|source| match source {
        OriginSource::Config => Some(ExportModifiers {
            graceful_shutdown: true,
            ..Default::default()
        }),
        _ => None,
    });
    assert_eq!(prefixes(&effective), vec![net("192.0.2.1/32")]);
    assert!(
        effective
            .iter()
            .next()
            .unwrap()
            .modifiers()
            .graceful_shutdown
    );
}
