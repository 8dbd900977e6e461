//! The event mirror's bookkeeping, without a kernel.

use super::*;

fn neigh(ifindex: u32, addr: &str, mac: Option<Mac>) -> Update {
    Update::Neighbor(
        NeighborInfo {
            ifindex,
            addr: addr.parse().unwrap(),
            mac,
        },
        false,
    )
}

fn link(ifindex: u32, up: bool) -> Update {
    Update::Link(LinkInfo {
        ifindex,
        name: format!("eth{ifindex}"),
        mac: None,
        mtu: 1500,
        up,
    })
}

#[test]
fn duplicates_are_suppressed() {
    let mut m = Mirror::default();
    let mut out = Vec::new();
    m.apply(link(2, true), &mut out);
    m.apply(link(2, true), &mut out);
    m.apply(neigh(2, "10.0.0.1", Some([1; 6])), &mut out);
    m.apply(neigh(2, "10.0.0.1", Some([1; 6])), &mut out);
    m.apply(neigh(2, "10.0.0.1", None), &mut out);
    m.apply(
        Update::NeighborGone(2, "10.0.0.9".parse().unwrap()),
        &mut out,
    );
    assert_eq!(out.len(), 3, "{out:?}");
}

#[test]
fn link_removal_removes_its_neighbors_and_addresses() {
    let mut m = Mirror::default();
    let mut out = Vec::new();
    m.apply(link(2, true), &mut out);
    m.apply(link(3, true), &mut out);
    m.apply(neigh(2, "10.0.0.1", Some([1; 6])), &mut out);
    m.apply(neigh(2, "fe80::1", Some([1; 6])), &mut out);
    m.apply(neigh(3, "10.0.1.1", Some([1; 6])), &mut out);
    let addr = AddressInfo {
        ifindex: 2,
        addr: "10.0.0.2".parse().unwrap(),
        prefix_len: 24,
        broadcast: Some("10.0.0.255".parse().unwrap()),
    };
    m.apply(Update::Address(addr.clone()), &mut out);
    out.clear();
    m.apply(Update::LinkGone(2), &mut out);
    assert_eq!(
        out,
        vec![
            KernelEvent::NeighborRemoved {
                ifindex: 2,
                addr: "10.0.0.1".parse().unwrap()
            },
            KernelEvent::NeighborRemoved {
                ifindex: 2,
                addr: "fe80::1".parse().unwrap()
            },
            KernelEvent::AddressRemoved(addr),
            KernelEvent::LinkRemoved { ifindex: 2 },
        ]
    );
    // The kernel's own DELNEIGH arriving afterwards is not reported twice.
    out.clear();
    m.apply(
        Update::NeighborGone(2, "10.0.0.1".parse().unwrap()),
        &mut out,
    );
    assert!(out.is_empty());
}

#[test]
fn address_broadcast_change_is_a_replacement() {
    let mut m = Mirror::default();
    let mut out = Vec::new();
    let a = AddressInfo {
        ifindex: 2,
        addr: "10.0.0.2".parse().unwrap(),
        prefix_len: 24,
        broadcast: None,
    };
    let b = AddressInfo {
        broadcast: Some("10.0.0.255".parse().unwrap()),
        ..a.clone()
    };
    m.apply(Update::Address(a.clone()), &mut out);
    out.clear();
    m.apply(Update::Address(b.clone()), &mut out);
    assert_eq!(
        out,
        vec![
            KernelEvent::AddressRemoved(a),
            KernelEvent::Address(b.clone())
        ]
    );
    out.clear();
    m.apply(Update::AddressGone(b.clone()), &mut out);
    assert_eq!(out, vec![KernelEvent::AddressRemoved(b)]);
}

#[test]
fn resync_reports_only_differences() {
    let mut m = Mirror::default();
    let mut out = Vec::new();
    m.apply(link(2, true), &mut out);
    m.apply(link(3, true), &mut out);
    m.apply(neigh(2, "10.0.0.1", Some([1; 6])), &mut out);
    m.apply(neigh(2, "10.0.0.2", Some([2; 6])), &mut out);
    m.apply(neigh(3, "10.0.1.1", Some([3; 6])), &mut out);
    out.clear();

    // Meanwhile (notifications lost): link 3 went away, 10.0.0.2 failed, 10.0.0.1 is gone,
    // 10.0.0.3 appeared, link 2 went down.
    let mut fresh = Mirror::default();
    let mut discard = Vec::new();
    fresh.apply(link(2, false), &mut discard);
    fresh.apply(neigh(2, "10.0.0.2", None), &mut discard);
    fresh.apply(neigh(2, "10.0.0.3", Some([4; 6])), &mut discard);

    m.resync(fresh.clone(), &mut out);
    assert!(
        m.take_routes_stale(),
        "link 3 went away: routes are re-dumped"
    );
    assert_eq!(
        out,
        vec![
            KernelEvent::NeighborRemoved {
                ifindex: 2,
                addr: "10.0.0.1".parse().unwrap()
            },
            KernelEvent::NeighborRemoved {
                ifindex: 3,
                addr: "10.0.1.1".parse().unwrap()
            },
            KernelEvent::LinkRemoved { ifindex: 3 },
            KernelEvent::Link(LinkInfo {
                ifindex: 2,
                name: "eth2".into(),
                mac: None,
                mtu: 1500,
                up: false
            }),
            KernelEvent::Neighbor(NeighborInfo {
                ifindex: 2,
                addr: "10.0.0.2".parse().unwrap(),
                mac: None
            }),
            KernelEvent::Neighbor(NeighborInfo {
                ifindex: 2,
                addr: "10.0.0.3".parse().unwrap(),
                mac: Some([4; 6])
            }),
        ]
    );
    assert_eq!(m, fresh);
}

fn local_route(prefix: &str, ifindex: u32) -> LocalRoute {
    LocalRoute {
        prefix: prefix.parse().unwrap(),
        kind: super::local_table::LocalKind::Local,
        ifindex,
        metric: 0,
    }
}

#[test]
fn local_routes_go_with_their_link_and_resync_by_difference() {
    let mut m = Mirror::default();
    let mut out = Vec::new();
    m.apply(link(2, true), &mut out);
    m.apply(link(3, true), &mut out);
    let (on_2, on_3) = (local_route("10.0.0.2/32", 2), local_route("10.0.0.2/32", 3));
    m.apply(Update::LocalRoute(on_2), &mut out);
    m.apply(Update::LocalRoute(on_2), &mut out); // duplicate: nothing
    m.apply(Update::LocalRoute(on_3), &mut out);
    assert_eq!(
        out[2..],
        [KernelEvent::LocalRoute(on_2), KernelEvent::LocalRoute(on_3)]
    );
    out.clear();
    m.apply(Update::LinkGone(2), &mut out);
    assert_eq!(
        out,
        [
            KernelEvent::LocalRouteRemoved(on_2),
            KernelEvent::LinkRemoved { ifindex: 2 }
        ]
    );
    // A fresh route dump: on_3 gone (flushed silently), another one new.
    out.clear();
    let other = local_route("10.0.9.9/32", 3);
    let mut fresh = Mirror::default();
    fresh.apply(Update::LocalRoute(other), &mut Vec::new());
    m.resync_routes(fresh, &mut out);
    assert_eq!(
        out,
        [
            KernelEvent::LocalRouteRemoved(on_3),
            KernelEvent::LocalRoute(other)
        ]
    );
}
