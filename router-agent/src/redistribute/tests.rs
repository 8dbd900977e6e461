//! The Redistributor against scripted kernel events: matching, limit, renames, reload.

use std::net::IpAddr;

use ipnet::IpNet;

use super::*;
use crate::{
    config::Config,
    netlink::{LinkInfo, RouteHop},
};

const OWN: u8 = 201;
const BOOT: u8 = 3;

fn rules(fields: &str) -> Vec<Rule> {
    let text = format!(
        "{fields}\n[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n\
         [bgp.prefix_list.workloads]\n\
         ipv4 = [{{ action = \"permit\", prefix = \"10.200.0.0/16\", le = 32 }},\n\
                 {{ action = \"permit\", prefix = \"192.0.2.0/24\", le = 32 }},\n\
                 {{ action = \"permit\", prefix = \"0.0.0.0/0\" }}]\n\
         ipv6 = [{{ action = \"permit\", prefix = \"2001:db8::/32\", le = 128 }}]\n"
    );
    Config::parse(&text, std::path::Path::new("t.toml"))
        .unwrap()
        .redistribute_rules()
        .unwrap()
}

fn containers(limit: u32) -> Vec<Rule> {
    rules(&format!(
        "[[redistribute]]\nname = \"containers\"\nprefix_list = \"workloads\"\nlimit = {limit}\n\
         kernel_routes = {{ protocols = [\"boot\"], interfaces = [\"veth-c*\"] }}\n\
         addresses = {{ interfaces = [\"dummy*\"] }}\n\
         connected = {{ interfaces = [\"eth2\"] }}\n"
    ))
}

fn link(ifindex: u32, name: &str, up: bool) -> KernelEvent {
    KernelEvent::Link(LinkInfo {
        ifindex,
        name: name.into(),
        mac: None,
        mtu: 1500,
        up,
    })
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn route_with(prefix: &str, protocol: u8, kind: RouteKind) -> FollowedRoute {
    FollowedRoute {
        key: FollowedRouteKey {
            table: 254,
            prefix: net(prefix),
            selector: 0,
            metric: 0,
        },
        protocol,
        kind,
        followed: false,
    }
}

fn dev_route(prefix: &str, protocol: u8, ifindex: u32) -> KernelEvent {
    KernelEvent::Route(route_with(
        prefix,
        protocol,
        RouteKind::Unicast(vec![RouteHop {
            gateway: None,
            ifindex,
            weight: 0,
        }]),
    ))
}

fn removed(prefix: &str) -> KernelEvent {
    KernelEvent::RouteRemoved(route_with(prefix, 0, RouteKind::Blackhole).key)
}

fn address(ifindex: u32, addr: &str, prefix_len: u8) -> AddressInfo {
    AddressInfo {
        ifindex,
        addr: addr.parse::<IpAddr>().unwrap(),
        prefix_len,
        broadcast: None,
    }
}

/// A redistributor with links 10 `veth-c0`, 11 `veth-c1`, 12 `dummy1`, 13 `eth2`, 14 `eth9`.
fn with_links(rules: Vec<Rule>) -> Redistributor {
    let mut r = Redistributor::new(rules, OWN);
    for (i, name) in [
        (10, "veth-c0"),
        (11, "veth-c1"),
        (12, "dummy1"),
        (13, "eth2"),
        (14, "eth9"),
    ] {
        r.on_event(&link(i, name, true));
    }
    r.take_changes();
    r
}

fn announced(r: &mut Redistributor) -> Option<Vec<IpNet>> {
    let changes = r.take_changes();
    assert!(changes.len() <= 1, "{changes:?}");
    changes.into_iter().next().map(|change| match change {
        RuleChange::Set { prefixes, .. } => prefixes.iter().map(HostPrefix::prefix).collect(),
        RuleChange::Removed { rule } => panic!("{rule} removed"),
    })
}

#[test]
fn workload_route_on_a_matching_veth_is_announced_and_withdrawn() {
    let mut r = with_links(containers(1000));
    assert!(r.on_event(&dev_route("10.200.0.5/32", BOOT, 10)));
    assert_eq!(announced(&mut r), Some(vec![net("10.200.0.5/32")]));
    // Nothing changed: no change reported.
    assert_eq!(announced(&mut r), None);
    r.on_event(&removed("10.200.0.5/32"));
    assert_eq!(announced(&mut r), Some(vec![]));
}

#[test]
fn what_the_rule_does_not_take_is_kept_but_not_announced() {
    let mut r = with_links(containers(1000));
    r.on_event(&dev_route("10.200.0.6/32", 4, 10)); // static: not a listed protocol
    r.on_event(&dev_route("10.200.0.7/32", BOOT, 14)); // eth9: not a matching interface
    r.on_event(&dev_route("10.99.0.1/32", BOOT, 10)); // outside the prefix list
    r.on_event(&dev_route("10.200.0.8/32", OWN, 10)); // our BGP mirror: never
    let mut other_table = route_with(
        "10.200.0.9/32",
        BOOT,
        RouteKind::Unicast(vec![RouteHop {
            gateway: None,
            ifindex: 10,
            weight: 0,
        }]),
    );
    other_table.key.table = 100;
    r.on_event(&KernelEvent::Route(other_table));
    assert_eq!(announced(&mut r), None);
    // A reload that takes static routes and table 100 re-evaluates what is held: no re-dump.
    r.set_rules(rules(
        "[[redistribute]]\nname = \"containers\"\nprefix_list = \"workloads\"\n\
         kernel_routes = { protocols = [\"boot\", \"static\"], tables = [\"main\", 100], interfaces = [\"veth-c*\"] }\n",
    ));
    assert_eq!(
        announced(&mut r),
        Some(vec![net("10.200.0.6/32"), net("10.200.0.9/32")])
    );
}

#[test]
fn kinds_a_host_does_not_deliver_are_not_announced() {
    let mut r = with_links(rules(
        "[[redistribute]]\nname = \"any\"\nprefix_list = \"workloads\"\n\
         kernel_routes = { protocols = [\"boot\"] }\n",
    ));
    r.on_event(&KernelEvent::Route(route_with(
        "10.200.1.0/24",
        BOOT,
        RouteKind::Unreachable,
    )));
    r.on_event(&KernelEvent::Route(route_with(
        "10.200.2.0/24",
        BOOT,
        RouteKind::Throw,
    )));
    let mut tos = route_with("10.200.3.0/24", BOOT, RouteKind::Blackhole);
    tos.key.selector = 0x10;
    r.on_event(&KernelEvent::Route(tos));
    assert_eq!(announced(&mut r), None);
    // A blackhole aggregate is taken when the rule names no interface.
    r.on_event(&KernelEvent::Route(route_with(
        "10.200.0.0/16",
        BOOT,
        RouteKind::Blackhole,
    )));
    assert_eq!(announced(&mut r), Some(vec![net("10.200.0.0/16")]));
}

#[test]
fn blackholes_are_not_taken_by_interface_patterns() {
    let mut r = with_links(containers(1000));
    r.on_event(&KernelEvent::Route(route_with(
        "10.200.0.0/16",
        BOOT,
        RouteKind::Blackhole,
    )));
    r.on_event(&KernelEvent::Route(route_with(
        "10.200.4.0/24",
        BOOT,
        RouteKind::Unsupported("encapsulation".into()),
    )));
    assert_eq!(announced(&mut r), None);
}

#[test]
fn default_route_is_never_announced() {
    let mut r = with_links(rules(
        "[[redistribute]]\nname = \"any\"\nprefix_list = \"workloads\"\n\
         kernel_routes = { protocols = [\"boot\"] }\n",
    ));
    r.on_event(&dev_route("0.0.0.0/0", BOOT, 14));
    r.on_event(&dev_route("192.0.2.0/24", BOOT, 14));
    assert_eq!(announced(&mut r), Some(vec![net("192.0.2.0/24")]));
    assert!(r.states["any"].default_logged);
}

#[test]
fn addresses_and_connected_subnets() {
    let mut r = with_links(containers(1000));
    r.on_event(&KernelEvent::Address(address(12, "192.0.2.77", 24)));
    r.on_event(&KernelEvent::Address(address(12, "127.0.0.2", 8))); // loopback range: never
    r.on_event(&KernelEvent::Address(address(13, "10.200.7.1", 24))); // eth2: its subnet
    r.on_event(&KernelEvent::Address(address(14, "10.200.8.1", 24))); // eth9: nothing
    r.on_event(&KernelEvent::Address(address(13, "fe80::1", 64))); // link-local: never
    assert_eq!(
        announced(&mut r),
        Some(vec![net("10.200.7.0/24"), net("192.0.2.77/32")])
    );
    r.on_event(&KernelEvent::AddressRemoved(address(12, "192.0.2.77", 24)));
    assert_eq!(announced(&mut r), Some(vec![net("10.200.7.0/24")]));
}

#[test]
fn a_rename_follows_the_pattern() {
    let mut r = with_links(containers(1000));
    r.on_event(&dev_route("10.200.0.5/32", BOOT, 14)); // eth9: not matched
    assert_eq!(announced(&mut r), None);
    assert!(r.on_event(&link(14, "veth-c9", true)));
    assert_eq!(announced(&mut r), Some(vec![net("10.200.0.5/32")]));
    r.on_event(&link(14, "other", true));
    assert_eq!(announced(&mut r), Some(vec![]));
}

#[test]
fn a_link_going_down_withdraws_its_routes() {
    let mut r = with_links(containers(1000));
    r.on_event(&dev_route("10.200.0.5/32", BOOT, 10));
    assert_eq!(announced(&mut r), Some(vec![net("10.200.0.5/32")]));
    r.on_event(&link(10, "veth-c0", false));
    assert_eq!(announced(&mut r), Some(vec![]));
    r.on_event(&link(10, "veth-c0", true));
    assert_eq!(announced(&mut r), Some(vec![net("10.200.0.5/32")]));
    r.on_event(&KernelEvent::LinkRemoved { ifindex: 10 });
    assert_eq!(announced(&mut r), Some(vec![]));
}

#[test]
fn limit_keeps_announced_holds_back_new_and_admits_in_prefix_order() {
    let mut r = with_links(containers(5));
    // Added out of order, one burst: the five lowest win.
    for last in [7, 3, 1, 6, 2, 5, 4] {
        r.on_event(&dev_route(&format!("10.200.0.{last}/32"), BOOT, 10));
    }
    let first: Vec<IpNet> = (1..=5).map(|i| net(&format!("10.200.0.{i}/32"))).collect();
    assert_eq!(announced(&mut r), Some(first.clone()));
    assert_eq!(r.status()[0].held_back, 2);
    assert_eq!(r.status()[0].announced, 5);
    // A lower prefix arriving later does not push out an announced one.
    r.on_event(&dev_route("10.200.0.0/32", BOOT, 10));
    assert_eq!(announced(&mut r), None);
    assert_eq!(r.status()[0].held_back, 3);
    // One announced goes: the lowest held back (10.200.0.0) takes its place.
    r.on_event(&removed("10.200.0.3/32"));
    let now: Vec<IpNet> = ["0", "1", "2", "4", "5"]
        .iter()
        .map(|i| net(&format!("10.200.0.{i}/32")))
        .collect();
    assert_eq!(announced(&mut r), Some(now));
    assert_eq!(r.status()[0].held_back, 2);
    // Raising the limit by reload admits the rest.
    r.set_rules(containers(10));
    assert_eq!(announced(&mut r).unwrap().len(), 7);
    assert_eq!(r.status()[0].held_back, 0);
    // Lowering it keeps what is announced (no withdrawal of working routes).
    r.set_rules(containers(2));
    assert_eq!(announced(&mut r).unwrap().len(), 7);
    r.on_event(&dev_route("10.200.0.9/32", BOOT, 10));
    assert_eq!(announced(&mut r), None);
    assert_eq!(r.status()[0].held_back, 1);
}

#[test]
fn reload_removes_and_adds_rules() {
    let mut r = with_links(containers(1000));
    r.on_event(&dev_route("10.200.0.5/32", BOOT, 10));
    r.on_event(&KernelEvent::Address(address(12, "192.0.2.77", 32)));
    announced(&mut r);
    r.set_rules(rules(
        "[[redistribute]]\nname = \"dummies\"\nprefix_list = \"workloads\"\n\
         addresses = { interfaces = [\"dummy*\"] }\n",
    ));
    let changes: Vec<(String, Option<Vec<IpNet>>)> = r
        .take_changes()
        .into_iter()
        .map(|change| match change {
            RuleChange::Removed { rule } => (rule.to_string(), None),
            RuleChange::Set { rule, prefixes } => (
                rule.to_string(),
                Some(prefixes.iter().map(HostPrefix::prefix).collect()),
            ),
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            ("containers".to_owned(), None),
            ("dummies".to_owned(), Some(vec![net("192.0.2.77/32")])),
        ]
    );
    assert_eq!(r.status().len(), 1);
}

#[test]
fn a_reload_with_the_same_set_still_resends_it() {
    // Communities or MED may have changed: the speaker gets the rule's set again.
    let mut r = with_links(containers(1000));
    r.on_event(&dev_route("10.200.0.5/32", BOOT, 10));
    announced(&mut r);
    r.set_rules(containers(1000));
    assert_eq!(announced(&mut r), Some(vec![net("10.200.0.5/32")]));
}

#[test]
fn events_without_rules_are_not_dirty() {
    let mut r = Redistributor::new(Vec::new(), OWN);
    assert!(!r.on_event(&link(1, "veth-c0", true)));
    assert!(!r.on_event(&dev_route("10.200.0.5/32", BOOT, 1)));
    assert!(r.take_changes().is_empty());
    // Still held: a reload adding a rule finds it.
    r.set_rules(containers(1000));
    assert_eq!(announced(&mut r), Some(vec![net("10.200.0.5/32")]));
}

#[test]
fn ipv6_routes_and_neighbors_are_irrelevant() {
    let mut r = with_links(rules(
        "[[redistribute]]\nname = \"v6\"\nprefix_list = \"workloads\"\n\
         kernel_routes = { protocols = [\"boot\"], interfaces = [\"veth-c*\"] }\n",
    ));
    assert!(!r.on_event(&KernelEvent::NeighborRemoved {
        ifindex: 10,
        addr: "10.0.0.1".parse().unwrap()
    }));
    r.on_event(&dev_route("2001:db8:5::/64", BOOT, 10));
    assert_eq!(announced(&mut r), Some(vec![net("2001:db8:5::/64")]));
}
