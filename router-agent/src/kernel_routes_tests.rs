use super::*;
use crate::{
    fib::{FibLimits, FibOp},
    netlink::{RouteHop, TABLE_MAIN},
};
use router_common::{GROUP_LOCAL, GROUP_PASS};

// ---------------------------------------------------------------------------------------------
// Into the FIB

const ATTACHED: u32 = 2;
const OTHER: u32 = 9;

fn attached() -> BTreeMap<u32, String> {
    BTreeMap::from([(ATTACHED, "r2".to_owned()), (3, "r1".to_owned())])
}

fn route(prefix: &str, metric: u32, kind: RouteKind) -> FollowedRoute {
    FollowedRoute {
        key: FollowedRouteKey {
            table: TABLE_MAIN,
            prefix: prefix.parse().unwrap(),
            selector: 0,
            metric,
        },
        protocol: 2,
        kind,
        followed: true,
    }
}

fn hop(gateway: Option<&str>, ifindex: u32) -> RouteHop {
    RouteHop {
        gateway: gateway.map(|g| g.parse().unwrap()),
        ifindex,
        weight: 0,
    }
}

struct Harness {
    fib: Fib,
    routes: KernelRoutes,
}

impl Harness {
    fn new() -> Self {
        Self {
            fib: Fib::new(FibLimits::default()),
            routes: KernelRoutes::default(),
        }
    }

    fn add(&mut self, route: FollowedRoute) -> Batch {
        let mut batch = Batch::default();
        self.routes
            .on_route(&mut self.fib, &mut batch, route, &attached());
        batch
    }

    fn observe(&mut self, route: FollowedRoute) -> Batch {
        let mut batch = Batch::default();
        self.routes
            .on_observed_route(&mut self.fib, &mut batch, route, &attached());
        batch
    }

    fn remove(&mut self, key: FollowedRouteKey) -> Batch {
        let mut batch = Batch::default();
        self.routes
            .on_route_removed(&mut self.fib, &mut batch, key, &attached());
        batch
    }

    fn group(&self, prefix: &str) -> Option<u32> {
        self.fib.installed_group(&prefix.parse().unwrap())
    }

    /// The nexthop keys of the FIB (one group in these tests at most).
    fn keys(&self) -> BTreeSet<NexthopKey> {
        self.fib.nexthops().map(|(key, _)| key).collect()
    }
}

#[test]
fn connected_and_gateway_routes_forward_on_attached_interfaces() {
    let mut h = Harness::new();
    // Connected IPv4 subnet: metric 0, on link.
    h.add(route(
        "10.2.0.0/24",
        0,
        RouteKind::Unicast(vec![hop(None, ATTACHED)]),
    ));
    let group = h.group("10.2.0.0/24").unwrap();
    assert!(group >= router_common::FIRST_GROUP);
    assert_eq!(
        h.keys(),
        BTreeSet::from([NexthopKey::on_link(ATTACHED, false)])
    );
    assert_eq!(
        h.routes.installed[&"10.2.0.0/24".parse().unwrap()],
        Source::KernelPreferred
    );

    // A gateway route through it.
    let gw = route(
        "10.9.0.0/24",
        0,
        RouteKind::Unicast(vec![hop(Some("10.2.0.2"), ATTACHED)]),
    );
    let batch = h.add(gw.clone());
    assert!(
        batch.kernel.is_empty(),
        "kernel routes are never mirrored back"
    );
    assert!(
        h.keys()
            .contains(&NexthopKey::host("10.2.0.2".parse().unwrap(), ATTACHED))
    );

    // Removed: gone from the FIB.
    let batch = h.remove(gw.key);
    assert!(
        batch
            .ops()
            .any(|op| matches!(op, FibOp::DeleteRoute { prefix } if *prefix == gw.key.prefix))
    );
    assert_eq!(h.group("10.9.0.0/24"), None);
}

#[test]
fn ipv6_connected_is_a_fallback_and_ipv4_via_ipv6_works() {
    let mut h = Harness::new();
    h.add(route(
        "2001:db8:2::/64",
        256,
        RouteKind::Unicast(vec![hop(None, ATTACHED)]),
    ));
    assert_eq!(
        h.routes.installed[&"2001:db8:2::/64".parse().unwrap()],
        Source::KernelFallback
    );
    assert!(h.keys().contains(&NexthopKey::on_link(ATTACHED, true)));
    // Our static route for the same prefix wins over a fallback...
    let mut batch = Batch::default();
    let ours = NexthopKey::host("2001:db8:2::9".parse().unwrap(), 3);
    h.fib
        .set_route(
            &mut batch,
            Source::Static,
            "2001:db8:2::/64".parse().unwrap(),
            RouteTarget::Via(BTreeSet::from([ours])),
        )
        .unwrap();
    assert!(
        batch.ops().any(|op| matches!(op, FibOp::SetRoute { .. })),
        "static replaces the fallback"
    );
    // RTA_VIA: an IPv4 prefix through an IPv6 gateway.
    h.add(route(
        "10.7.0.0/16",
        0,
        RouteKind::Unicast(vec![hop(Some("fe80::2"), ATTACHED)]),
    ));
    assert!(
        h.keys()
            .contains(&NexthopKey::host("fe80::2".parse().unwrap(), ATTACHED))
    );
}

#[test]
fn what_xdp_cannot_reproduce_is_passed() {
    let mut h = Harness::new();
    let cases = [
        ("10.3.0.0/24", RouteKind::Unicast(vec![hop(None, OTHER)])),
        (
            "10.4.0.0/24",
            RouteKind::Unicast(vec![
                hop(Some("10.2.0.2"), ATTACHED),
                hop(Some("10.5.0.1"), OTHER),
            ]),
        ),
        ("10.5.0.0/24", RouteKind::Blackhole),
        ("10.6.0.0/24", RouteKind::Unreachable),
        ("10.7.0.0/24", RouteKind::Prohibit),
        ("10.8.0.0/24", RouteKind::Throw),
        ("10.9.0.0/24", RouteKind::NexthopObject(7)),
        (
            "10.10.0.0/24",
            RouteKind::Unsupported("encapsulation (lwtunnel)".into()),
        ),
        ("10.11.0.0/24", RouteKind::Other(2)),
        (
            "10.12.0.0/24",
            RouteKind::Unicast(vec![
                hop(Some("10.2.0.2"), ATTACHED),
                RouteHop {
                    weight: 4,
                    ..hop(Some("10.2.0.3"), ATTACHED)
                },
            ]),
        ),
    ];
    for (prefix, kind) in cases {
        h.add(route(prefix, 0, kind.clone()));
        assert_eq!(h.group(prefix), Some(GROUP_PASS), "{prefix} {kind:?}");
    }
    // A TOS route makes the whole prefix go to the kernel.
    h.add(route(
        "10.20.0.0/24",
        0,
        RouteKind::Unicast(vec![hop(None, ATTACHED)]),
    ));
    assert_ne!(h.group("10.20.0.0/24"), Some(GROUP_PASS));
    let mut tos = route("10.20.0.0/24", 0, RouteKind::Unicast(vec![hop(None, 3)]));
    tos.key.selector = 0x10;
    h.add(tos.clone());
    assert_eq!(h.group("10.20.0.0/24"), Some(GROUP_PASS));
    h.remove(tos.key);
    assert_ne!(h.group("10.20.0.0/24"), Some(GROUP_PASS));
    assert_ne!(h.group("10.20.0.0/24"), Some(GROUP_LOCAL));
}

#[test]
fn lowest_metric_wins_and_ranks_against_ours() {
    let mut h = Harness::new();
    let prefix = "0.0.0.0/0";
    let dhcp = route(
        prefix,
        100,
        RouteKind::Unicast(vec![hop(Some("10.1.0.1"), 3)]),
    );
    h.add(dhcp.clone());
    assert_eq!(
        h.routes.installed[&prefix.parse().unwrap()],
        Source::KernelFallback
    );
    let better = route(
        prefix,
        5,
        RouteKind::Unicast(vec![hop(Some("10.2.0.1"), ATTACHED)]),
    );
    h.add(better.clone());
    assert_eq!(
        h.routes.installed[&prefix.parse().unwrap()],
        Source::KernelPreferred
    );
    let group = h.group(prefix).unwrap();
    h.remove(better.key);
    assert_eq!(
        h.routes.installed[&prefix.parse().unwrap()],
        Source::KernelFallback
    );
    assert_ne!(h.group(prefix), Some(group), "back to the metric-100 route");
    // Equal to our metric: ranked as a fallback (and logged once).
    let equal = route("10.30.0.0/16", KERNEL_ROUTE_METRIC, RouteKind::Blackhole);
    h.add(equal);
    assert_eq!(
        h.routes.installed[&"10.30.0.0/16".parse().unwrap()],
        Source::KernelFallback
    );
    h.remove(dhcp.key);
    assert_eq!(h.group(prefix), None);
    assert!(!h.routes.installed.contains_key(&prefix.parse().unwrap()));
}

#[test]
fn observed_only_routes_never_reach_the_fib() {
    let mut h = Harness::new();
    let mut observed = route(
        "10.50.0.5/32",
        0,
        RouteKind::Unicast(vec![hop(None, ATTACHED)]),
    );
    observed.followed = false;
    let batch = h.observe(observed.clone());
    assert_eq!(batch.ops().count(), 0, "observed only: not the FIB's");
    assert_eq!(h.group("10.50.0.5/32"), None);
    assert_eq!(h.remove(observed.key).ops().count(), 0);

    // Followed, then no longer (moved off the followed interfaces): taken out.
    let followed = FollowedRoute {
        followed: true,
        ..observed.clone()
    };
    h.observe(followed.clone());
    assert!(h.group("10.50.0.5/32").is_some());
    let batch = h.observe(observed.clone());
    assert!(
        batch.ops().any(
            |op| matches!(op, FibOp::DeleteRoute { prefix } if *prefix == observed.key.prefix)
        )
    );
    assert_eq!(h.group("10.50.0.5/32"), None);

    // An observed-only route sharing a followed route's prefix (another table, metric)
    // leaves it alone, coming and going.
    h.observe(followed.clone());
    let group = h.group("10.50.0.5/32");
    let mut beside = observed.clone();
    beside.key.metric = 10;
    assert_eq!(h.observe(beside.clone()).ops().count(), 0);
    assert_eq!(h.remove(beside.key).ops().count(), 0);
    assert_eq!(h.group("10.50.0.5/32"), group);
}

#[test]
fn a_prefix_in_two_tables_is_passed() {
    let mut h = Harness::new();
    h.add(route(
        "10.40.0.0/16",
        0,
        RouteKind::Unicast(vec![hop(None, ATTACHED)]),
    ));
    let mut other = route("10.40.0.0/16", 0, RouteKind::Unicast(vec![hop(None, 3)]));
    other.key.table = 100;
    h.add(other);
    assert_eq!(h.group("10.40.0.0/16"), Some(GROUP_PASS));
}

#[test]
fn local_table_prefix_stays_local_until_its_last_holder_goes() {
    use crate::netlink::LocalKind;
    let mut fib = Fib::new(FibLimits::default());
    let mut local = LocalRoutes::default();
    let held = |prefix: &str, kind, ifindex| LocalRoute {
        prefix: prefix.parse().unwrap(),
        kind,
        ifindex,
        metric: 0,
    };
    let group = |fib: &Fib, prefix: &str| fib.installed_group(&prefix.parse().unwrap());
    // The same address on two interfaces.
    let (on_a, on_b) = (
        held("10.5.0.1/32", LocalKind::Local, 3),
        held("10.5.0.1/32", LocalKind::Local, 4),
    );
    let mut batch = Batch::default();
    local.on_route(&mut fib, &mut batch, on_a);
    local.on_route(&mut fib, &mut batch, on_b);
    local.on_route(&mut fib, &mut batch, on_b); // repeated: still two holders
    assert_eq!(group(&fib, "10.5.0.1/32"), Some(GROUP_LOCAL));
    local.on_route_removed(&mut fib, &mut batch, on_a);
    assert_eq!(
        group(&fib, "10.5.0.1/32"),
        Some(GROUP_LOCAL),
        "b still holds it"
    );
    local.on_route_removed(&mut fib, &mut batch, on_a); // unknown now: nothing
    assert_eq!(group(&fib, "10.5.0.1/32"), Some(GROUP_LOCAL));
    local.on_route_removed(&mut fib, &mut batch, on_b);
    assert_eq!(group(&fib, "10.5.0.1/32"), None);

    // Broadcast and anycast routes are local too.
    let broadcast = held("10.5.0.255/32", LocalKind::Broadcast, 3);
    let anycast = held("2001:db8:5::/128", LocalKind::Anycast, 3);
    local.on_route(&mut fib, &mut batch, broadcast);
    local.on_route(&mut fib, &mut batch, anycast);
    assert_eq!(group(&fib, "10.5.0.255/32"), Some(GROUP_LOCAL));
    assert_eq!(group(&fib, "2001:db8:5::/128"), Some(GROUP_LOCAL));
    local.on_route_removed(&mut fib, &mut batch, anycast);
    assert_eq!(group(&fib, "2001:db8:5::/128"), None);
}
