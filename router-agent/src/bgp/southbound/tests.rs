use std::sync::Arc;

use ipnet::IpNet;

use super::*;
use crate::bgp::packet::types::PathAttributes;
use crate::bgp::rib::{NextHop, Path};
use crate::fib::{FibLimits, LinkState};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn path(peer: u32, next_hop: NextHop, ifindex: Option<u32>) -> Path {
    Path {
        peer: PeerId(peer),
        attrs: Arc::new(PathAttributes::default()),
        next_hop,
        ifindex,
    }
}

/// IPv4 next hops 10.0.N.x are on interface 100 + N; nothing else is connected.
fn resolver(via: IpAddr) -> Result<u32, Unresolved> {
    match via {
        IpAddr::V4(v4) if v4.octets()[0] == 10 => Ok(100 + u32::from(v4.octets()[2])),
        _ => Err(Unresolved::NotConnected),
    }
}

#[test]
fn ecmp_paths_become_nexthops_owned_by_their_sessions() {
    let best = BestRoute {
        paths: vec![
            path(1, NextHop::new(ip("10.0.1.1")), Some(101)),
            path(2, NextHop::new(ip("10.0.2.1")), Some(102)),
        ],
    };
    assert_eq!(
        fib_nexthops(&best, &resolver),
        BTreeSet::from([
            NexthopKey {
                via: ip("10.0.1.1"),
                ifindex: 101,
                owner: Owner::Bgp(1),
            },
            NexthopKey {
                via: ip("10.0.2.1"),
                ifindex: 102,
                owner: Owner::Bgp(2),
            },
        ])
    );
}

#[test]
fn unnumbered_link_local_next_hops_use_the_session_interface() {
    let link_local: Ipv6Addr = "fe80::1".parse().unwrap();
    // IPv4 route over an IPv6 next hop (RFC 8950), global + link-local.
    let with_both = NextHop {
        address: ip("2001:db8::1"),
        link_local: Some(link_local),
    };
    let best = BestRoute {
        paths: vec![path(1, with_both, Some(101))],
    };
    let no_resolver = |_: IpAddr| Err(Unresolved::NotConnected);
    assert_eq!(
        fib_nexthops(&best, &no_resolver),
        BTreeSet::from([NexthopKey {
            via: IpAddr::V6(link_local),
            ifindex: 101,
            owner: Owner::Bgp(1),
        }])
    );
    // A global next hop the resolver does not know is left out; none left: no target.
    let mut global_only = best.clone();
    global_only.paths[0].next_hop = NextHop::new(ip("2001:db8::1"));
    assert!(fib_target(&global_only, &no_resolver).is_none());
    let resolver = |_: IpAddr| Ok(7);
    assert!(fib_target(&global_only, &resolver).is_some());
}

#[test]
fn an_unusable_next_hop_never_becomes_a_nexthop() {
    // Even if the RIB had chosen it: the resolver's verdict is final.
    let own = ip("10.0.1.2");
    let resolve = |via: IpAddr| {
        if via == own {
            Err(Unresolved::Unusable(Unusable::OwnAddress(own)))
        } else {
            resolver(via)
        }
    };
    let best = BestRoute {
        paths: vec![path(1, NextHop::new(own), Some(101))],
    };
    assert_eq!(fib_target(&best, &resolve), None);
    assert_eq!(unusable(&resolve, own), Some(Unusable::OwnAddress(own)));
    assert_eq!(unusable(&resolve, ip("10.0.1.1")), None);
    assert_eq!(
        unusable(&resolve, ip("192.0.2.1")),
        None,
        "not connected is not unusable"
    );
}

#[test]
fn a_sessions_gateway_failure_leaves_static_routes_and_other_sessions_alone() {
    let mut fib = Fib::new(FibLimits::default());
    let mut batch = Batch::default();
    let gateway = ip("10.0.1.1");
    let link = LinkState {
        mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
        up: true,
    };
    fib.update_link(&mut batch, 101, Some(link));
    fib.update_neighbor(&mut batch, 101, gateway, Some([2, 0, 0, 0, 0, 2]));
    let net = |text: &str| text.parse::<IpNet>().unwrap();
    fib.set_route(
        &mut batch,
        Source::Static,
        net("10.9.0.0/16"),
        RouteTarget::Via(BTreeSet::from([NexthopKey::host(gateway, 101)])),
    )
    .unwrap();
    for (peer, prefix) in [(1, "198.51.100.0/24"), (2, "203.0.113.0/24")] {
        let change = LocRibChange {
            prefix: net(prefix),
            best: Some(BestRoute {
                paths: vec![path(peer, NextHop::new(gateway), Some(101))],
            }),
        };
        apply_change(change, &mut fib, &mut batch, &resolver);
    }
    let usable = |fib: &Fib, owner: Owner| {
        fib.nexthops()
            .find(|(key, _)| key.via == gateway && key.owner == owner)
            .map(|(_, usable)| usable)
    };
    for owner in [Owner::Host, Owner::Bgp(1), Owner::Bgp(2)] {
        assert_eq!(usable(&fib, owner), Some(true), "{owner:?}");
    }

    // Session 1 goes down: only its own nexthop through the gateway fails.
    set_gateways_failed(&mut fib, &mut batch, PeerId(1), &[gateway], true);
    assert_eq!(usable(&fib, Owner::Bgp(1)), Some(false));
    assert_eq!(usable(&fib, Owner::Host), Some(true));
    assert_eq!(usable(&fib, Owner::Bgp(2)), Some(true));
    // And comes back.
    set_gateways_failed(&mut fib, &mut batch, PeerId(1), &[gateway], false);
    assert_eq!(usable(&fib, Owner::Bgp(1)), Some(true));
}
