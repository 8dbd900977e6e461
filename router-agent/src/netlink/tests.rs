//! Tests. Most need root: each runs in a brand-new anonymous network namespace created with
//! `unshare(CLONE_NEWNET)` on a dedicated thread (only that thread moves; the namespace dies
//! with the thread, so there is nothing to clean up), with its own current-thread tokio
//! runtime. `ip` commands spawned from that thread inherit its namespace (fork copies the
//! calling thread's namespaces; checked by `child_processes_inherit_the_thread_netns`).

use std::{
    future::Future,
    net::IpAddr,
    process::Command,
    sync::mpsc as std_mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use super::*;

// ---------------------------------------------------------------------------------------------
// Harness

/// Moves the calling thread into a new, empty network namespace.
fn unshare_netns() {
    // SAFETY: unshare only affects the calling thread's namespace membership.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET) failed (these tests need root): {}",
        std::io::Error::last_os_error()
    );
}

/// Runs `body` on its own thread inside a fresh network namespace (loopback up).
pub(super) fn in_netns<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = thread::spawn(move || {
        unshare_netns();
        ip("link set lo up");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(90), body())
                .await
                .expect("test timed out")
        });
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Runs `ip ARGS` (in the calling thread's namespace) and returns its stdout; panics on failure.
pub(super) fn ip(args: &str) -> String {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("cannot run ip");
    assert!(
        out.status.success(),
        "ip {args} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(super) fn ip_json(args: &str) -> Vec<Value> {
    let out = ip(&format!("-j {args}"));
    if out.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str::<Vec<Value>>(&out).unwrap_or_else(|e| panic!("ip -j {args}: {e}: {out}"))
}

type Job = (String, std_mpsc::Sender<String>);

/// A second namespace, for a real neighbor: a parked thread that unshared its own netns and
/// runs `ip` commands on request. Interfaces are moved into it with `netns <tid>` (the kernel
/// resolves a thread id like a pid). Dropping it ends the thread, hence the namespace.
pub(super) struct PeerNs {
    tid: i32,
    jobs: Option<std_mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl PeerNs {
    pub(super) fn new() -> PeerNs {
        let (jobs, rx) = std_mpsc::channel::<Job>();
        let (tid_tx, tid_rx) = std_mpsc::channel();
        let thread = thread::spawn(move || {
            unshare_netns();
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            ip("link set lo up");
            for (args, reply) in rx {
                let _ = reply.send(ip(&args));
            }
        });
        let tid = tid_rx.recv().expect("peer namespace thread died");
        PeerNs {
            tid,
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    pub(super) fn ip(&self, args: &str) -> String {
        let (tx, rx) = std_mpsc::channel();
        self.jobs
            .as_ref()
            .unwrap()
            .send((args.to_string(), tx))
            .unwrap();
        rx.recv()
            .unwrap_or_else(|_| panic!("ip {args} failed in the peer namespace"))
    }
}

impl Drop for PeerNs {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until `ip link show dev DEV` reports operstate UP (the kernel's linkwatch applies
/// carrier changes asynchronously).
pub(super) async fn wait_oper_up(dev: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let link = ip_json(&format!("link show dev {dev}"));
        if link[0]["operstate"] == "UP" {
            return;
        }
        assert!(Instant::now() < deadline, "{dev} never came up: {link:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Events up to (excluding) DumpDone.
pub(super) async fn dump(rx: &mut UnboundedReceiver<KernelEvent>) -> Vec<KernelEvent> {
    let mut events = Vec::new();
    loop {
        match rx.recv().await.expect("event stream ended") {
            KernelEvent::DumpDone => return events,
            e => events.push(e),
        }
    }
}

/// The first event satisfying `pred` within 10 s (others are skipped).
pub(super) async fn wait_event(
    rx: &mut UnboundedReceiver<KernelEvent>,
    what: &str,
    pred: impl Fn(&KernelEvent) -> bool,
) -> KernelEvent {
    let waiting = async {
        loop {
            let event = rx.recv().await.expect("event stream ended");
            if pred(&event) {
                return event;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub(super) fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn mac(s: &str) -> Mac {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

/// veth pair `a` <-> `b`, both up, `a` with MAC `a_mac`.
pub(super) fn veth(a: &str, b: &str, a_mac: &str) -> u32 {
    ip(&format!(
        "link add {a} address {a_mac} type veth peer name {b}"
    ));
    ip(&format!("link set {a} up"));
    ip(&format!("link set {b} up"));
    ifindex_by_name(a).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Pure unit tests (no root needed)

#[test]
fn mac_formatting() {
    assert_eq!(
        mac_to_string(&[0x02, 0, 0xab, 0x10, 0xff, 1]),
        "02:00:ab:10:ff:01"
    );
}

#[test]
fn nud_states() {
    use rtnetlink::packet_route::neighbour::NeighbourState as S;
    // Every state the kernel sends on, STALE included (the agent has it confirmed).
    for usable in [
        S::Reachable,
        S::Stale,
        S::Delay,
        S::Probe,
        S::Permanent,
        S::Noarp,
    ] {
        assert!(neighbors::nud_usable(usable), "{usable:?}");
    }
    for unusable in [S::Incomplete, S::Failed, S::None] {
        assert!(!neighbors::nud_usable(unusable), "{unusable:?}");
    }
    // Combined bits, as the kernel's state is a mask: usable if any valid bit is set.
    assert!(neighbors::nud_usable(S::Other(0x02 | 0x80)));
}

#[test]
fn neighbor_message_parsing() {
    use rtnetlink::packet_route::{
        AddressFamily,
        neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState},
    };
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = 4;
    msg.header.state = NeighbourState::Reachable;
    msg.attributes = vec![
        NeighbourAttribute::Destination(addr("10.0.0.1").into()),
        NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 1]),
    ];
    assert_eq!(
        neighbors::parse_neighbor(&msg),
        Some(NeighborInfo {
            ifindex: 4,
            addr: addr("10.0.0.1"),
            mac: Some([2, 0, 0, 0, 0, 1])
        })
    );
    assert!(!neighbors::needs_confirmation(&msg));
    // STALE: usable, and to be confirmed unless the kernel re-probes it anyway (managed).
    msg.header.state = NeighbourState::Stale;
    assert_eq!(
        neighbors::parse_neighbor(&msg).unwrap().mac,
        Some([2, 0, 0, 0, 0, 1])
    );
    assert!(neighbors::needs_confirmation(&msg));
    msg.attributes.push(NeighbourAttribute::ExtFlags(
        rtnetlink::packet_route::neighbour::NeighbourExtFlags::Managed,
    ));
    assert_eq!(
        neighbors::parse_neighbor(&msg).unwrap().mac,
        Some([2, 0, 0, 0, 0, 1])
    );
    assert!(!neighbors::needs_confirmation(&msg));
    msg.header.state = NeighbourState::Failed;
    assert_eq!(neighbors::parse_neighbor(&msg).unwrap().mac, None);
    msg.header.flags = NeighbourFlags::Proxy;
    assert_eq!(neighbors::parse_neighbor(&msg), None);
    msg.header.flags = NeighbourFlags::empty();
    msg.header.family = AddressFamily::Bridge;
    assert_eq!(neighbors::parse_neighbor(&msg), None);
}

#[test]
fn extack_parsing() {
    use rtnetlink::packet_core::NetlinkHeader;
    let mut outer = NetlinkHeader::default();
    outer.flags = NLM_F_CAPPED | NLM_F_ACK_TLVS;
    let mut payload = vec![0u8; 16]; // echoed request header
    let text = b"Nexthop has invalid gateway\0";
    let len = 4 + text.len();
    payload.extend((len as u16).to_ne_bytes());
    payload.extend(NLMSGERR_ATTR_MSG.to_ne_bytes());
    payload.extend(text);
    payload.resize(payload.len().next_multiple_of(4), 0);
    assert_eq!(
        extack_message(&outer, &payload).as_deref(),
        Some("Nexthop has invalid gateway")
    );
    outer.flags = NLM_F_CAPPED;
    assert_eq!(extack_message(&outer, &payload), None);
    // Garbage never panics.
    outer.flags = NLM_F_ACK_TLVS;
    assert_eq!(extack_message(&outer, &[0xff; 20]), None);
}

// ---------------------------------------------------------------------------------------------
// Namespace tests (root)

#[test]
fn child_processes_inherit_the_thread_netns() {
    let outer = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    in_netns(move || async move {
        let inner = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        assert_ne!(inner, outer);
        // `ip` sees the new namespace: only lo.
        let links = ip_json("link show");
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0]["ifname"], "lo");
    });
}

#[test]
fn dump_reports_links_addresses_and_neighbors() {
    in_netns(|| async {
        let va = veth("va", "vb", "02:00:00:00:00:0a");
        ip("link set va mtu 1400");
        ip("addr add 10.1.0.1/24 brd + dev va");
        ip("addr add 2001:db8:1::1/64 dev va nodad");
        ip("neigh add 10.1.0.2 lladdr 02:00:00:00:00:0b nud permanent dev va");
        ip("neigh add 2001:db8:1::2 lladdr 02:00:00:00:00:0c nud reachable dev va");
        ip("neigh add 2001:db8:1::3 lladdr 02:00:00:00:00:0d nud stale dev va");
        ip("neigh add 10.1.0.3 dev va nud incomplete");
        wait_oper_up("va").await;

        let (_nl, mut rx) = Netlink::connect().await.unwrap();
        let events = dump(&mut rx).await;

        assert!(events.contains(&KernelEvent::Link(LinkInfo {
            ifindex: va,
            name: "va".into(),
            mac: Some(mac("02:00:00:00:00:0a")),
            mtu: 1400,
            up: true,
        })));
        let lo = events
            .iter()
            .find_map(|e| match e {
                KernelEvent::Link(l) if l.name == "lo" => Some(l.clone()),
                _ => None,
            })
            .expect("lo in the dump");
        assert_eq!((lo.mac, lo.up), (None, true));
        assert!(events.contains(&KernelEvent::Address(AddressInfo {
            ifindex: va,
            addr: addr("10.1.0.1"),
            prefix_len: 24,
            broadcast: Some("10.1.0.255".parse().unwrap()),
        })));
        assert!(events.contains(&KernelEvent::Address(AddressInfo {
            ifindex: va,
            addr: addr("2001:db8:1::1"),
            prefix_len: 64,
            broadcast: None,
        })));
        assert!(events.contains(&KernelEvent::Neighbor(NeighborInfo {
            ifindex: va,
            addr: addr("10.1.0.2"),
            mac: Some(mac("02:00:00:00:00:0b")),
        })));
        assert!(events.contains(&KernelEvent::Neighbor(NeighborInfo {
            ifindex: va,
            addr: addr("2001:db8:1::2"),
            mac: Some(mac("02:00:00:00:00:0c")),
        })));
        assert!(events.contains(&KernelEvent::Neighbor(NeighborInfo {
            ifindex: va,
            addr: addr("10.1.0.3"),
            mac: None,
        })));
        // STALE, not managed: usable, and to be confirmed.
        assert!(events.contains(&KernelEvent::Neighbor(NeighborInfo {
            ifindex: va,
            addr: addr("2001:db8:1::3"),
            mac: Some(mac("02:00:00:00:00:0d")),
        })));
        assert!(events.contains(&KernelEvent::NeighborStale {
            ifindex: va,
            addr: addr("2001:db8:1::3"),
        }));
        // Links, then addresses, then neighbors, then routes.
        let rank = |e: &KernelEvent| match e {
            KernelEvent::Link(_) => 0,
            KernelEvent::Address(_) => 1,
            KernelEvent::Neighbor(_) | KernelEvent::NeighborStale { .. } => 2,
            KernelEvent::Route(_) | KernelEvent::LocalRoute(_) => 3,
            other => panic!("unexpected event in the dump: {other:?}"),
        };
        assert!(
            events.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
            "{events:?}"
        );
    });
}

#[test]
fn link_events() {
    in_netns(|| async {
        let (_nl, mut rx) = Netlink::connect().await.unwrap();
        dump(&mut rx).await;

        let va = veth("va", "vb", "02:00:00:00:00:0a");
        let vb = ifindex_by_name("vb").unwrap();
        wait_event(
            &mut rx,
            "va up",
            |e| matches!(e, KernelEvent::Link(l) if l.ifindex == va && l.up),
        )
        .await;

        // Peer down: va is admin up but LOWERLAYERDOWN.
        ip("link set vb down");
        let e = wait_event(
            &mut rx,
            "va not up",
            |e| matches!(e, KernelEvent::Link(l) if l.ifindex == va && !l.up),
        )
        .await;
        assert_eq!(
            e,
            KernelEvent::Link(LinkInfo {
                ifindex: va,
                name: "va".into(),
                mac: Some(mac("02:00:00:00:00:0a")),
                mtu: 1500,
                up: false
            })
        );
        ip("link set va mtu 1300");
        wait_event(
            &mut rx,
            "mtu 1300",
            |e| matches!(e, KernelEvent::Link(l) if l.ifindex == va && l.mtu == 1300),
        )
        .await;

        ip("link del va");
        for gone in [va, vb] {
            wait_event(&mut rx, "link removal", |e| {
                *e == KernelEvent::LinkRemoved { ifindex: gone }
            })
            .await;
        }
    });
}

#[test]
fn neighbor_events() {
    in_netns(|| async {
        let va = veth("va", "vb", "02:00:00:00:00:0a");
        ip("addr add 10.1.0.1/24 dev va");
        let (_nl, mut rx) = Netlink::connect().await.unwrap();
        dump(&mut rx).await;

        let neighbor = |a: &str, m: Option<&str>| {
            KernelEvent::Neighbor(NeighborInfo {
                ifindex: va,
                addr: addr(a),
                mac: m.map(mac),
            })
        };
        ip("neigh add 10.1.0.2 lladdr 02:00:00:00:00:02 nud permanent dev va");
        let want = neighbor("10.1.0.2", Some("02:00:00:00:00:02"));
        wait_event(&mut rx, "new neighbor", |e| *e == want).await;

        ip("neigh replace 10.1.0.2 lladdr 02:00:00:00:00:03 nud reachable dev va");
        let want = neighbor("10.1.0.2", Some("02:00:00:00:00:03"));
        wait_event(&mut rx, "changed MAC", |e| *e == want).await;

        ip("neigh change 10.1.0.2 dev va nud failed");
        let want = neighbor("10.1.0.2", None);
        wait_event(&mut rx, "failed neighbor", |e| *e == want).await;

        ip("neigh del 10.1.0.2 dev va");
        let want = KernelEvent::NeighborRemoved {
            ifindex: va,
            addr: addr("10.1.0.2"),
        };
        wait_event(&mut rx, "deleted neighbor", |e| *e == want).await;

        ip("neigh add fe80::2 lladdr 02:00:00:00:00:04 nud reachable dev va");
        let want = neighbor("fe80::2", Some("02:00:00:00:00:04"));
        wait_event(&mut rx, "IPv6 neighbor", |e| *e == want).await;
    });
}

#[test]
fn address_events() {
    in_netns(|| async {
        let va = veth("va", "vb", "02:00:00:00:00:0a");
        let (_nl, mut rx) = Netlink::connect().await.unwrap();
        dump(&mut rx).await;

        let v4 = AddressInfo {
            ifindex: va,
            addr: addr("10.1.0.1"),
            prefix_len: 24,
            broadcast: Some("10.1.0.255".parse().unwrap()),
        };
        ip("addr add 10.1.0.1/24 brd + dev va");
        wait_event(&mut rx, "IPv4 address", |e| {
            *e == KernelEvent::Address(v4.clone())
        })
        .await;

        let v6 = AddressInfo {
            ifindex: va,
            addr: addr("2001:db8::1"),
            prefix_len: 64,
            broadcast: None,
        };
        ip("addr add 2001:db8::1/64 dev va nodad");
        wait_event(&mut rx, "IPv6 address", |e| {
            *e == KernelEvent::Address(v6.clone())
        })
        .await;

        ip("addr del 10.1.0.1/24 dev va");
        wait_event(&mut rx, "IPv4 removal", |e| {
            *e == KernelEvent::AddressRemoved(v4.clone())
        })
        .await;
        ip("addr del 2001:db8::1/64 dev va");
        wait_event(&mut rx, "IPv6 removal", |e| {
            *e == KernelEvent::AddressRemoved(v6.clone())
        })
        .await;
    });
}

#[test]
fn egress_lookup() {
    in_netns(|| async {
        let va = veth("va", "vb", "02:00:00:00:00:0a");
        ip("addr add 10.1.0.1/24 dev va");
        ip("addr add 2001:db8:1::1/64 dev va nodad");
        wait_oper_up("va").await;
        ip("route add 10.9.0.0/16 via 10.1.0.2");
        let (nl, _rx) = Netlink::connect().await.unwrap();

        assert_eq!(nl.egress_for(addr("10.1.0.2")).await.unwrap(), va);
        assert_eq!(nl.egress_for(addr("2001:db8:1::2")).await.unwrap(), va);
        let err = nl
            .egress_for(addr("10.9.1.1"))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "nexthop 10.9.1.1 is not directly connected (the kernel routes it via 10.1.0.2)"
        );
        let err = nl
            .egress_for(addr("10.1.0.1"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("address of this host"), "{err}");
        let err = format!("{:#}", nl.egress_for(addr("192.0.2.1")).await.unwrap_err());
        assert!(err.contains("no route to nexthop 192.0.2.1"), "{err}");
        let err = nl
            .egress_for(addr("fe80::1"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("link-local"), "{err}");
    });
}

/// Two veth pairs, va (10.1.0.1/24, 2001:db8:1::1/64) and wa (10.2.0.1/24, 2001:db8:2::1/64).
pub(super) async fn two_links() -> (u32, u32) {
    let va = veth("va", "vb", "02:00:00:00:00:0a");
    let wa = veth("wa", "wb", "02:00:00:00:00:0b");
    ip("addr add 10.1.0.1/24 dev va");
    ip("addr add 2001:db8:1::1/64 dev va nodad");
    ip("addr add 10.2.0.1/24 dev wa");
    ip("addr add 2001:db8:2::1/64 dev wa nodad");
    wait_oper_up("va").await;
    wait_oper_up("wa").await;
    (va, wa)
}

pub(super) fn route(prefix: &str, nexthops: &[(&str, u32)]) -> KernelRoute {
    KernelRoute {
        prefix: prefix.parse().unwrap(),
        nexthops: nexthops
            .iter()
            .map(|(gw, ifindex)| KernelNexthop {
                gateway: addr(gw),
                ifindex: *ifindex,
            })
            .collect(),
        protocol: RTPROT_HOSTROUTER,
    }
}

/// Our routes as (prefix, [(gateway, dev)]) from `ip -j [-6] route show proto 201`.
pub(super) fn our_routes(family: &str) -> Vec<(String, Vec<(String, String)>)> {
    let hop = |v: &Value| {
        let gw = v["gateway"]
            .as_str()
            .or_else(|| v["via"]["host"].as_str())
            .unwrap();
        (gw.to_string(), v["dev"].as_str().unwrap().to_string())
    };
    ip_json(&format!("{family} route show proto {RTPROT_HOSTROUTER}"))
        .iter()
        .map(|r| {
            assert_eq!(r["metric"], KERNEL_ROUTE_METRIC, "{r}");
            let hops = match r["nexthops"].as_array() {
                Some(hops) => hops.iter().map(hop).collect(),
                None => vec![hop(r)],
            };
            (r["dst"].as_str().unwrap().to_string(), hops)
        })
        .collect()
}

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

/// va (10.3.0.1/24, 2001:db8:3::1/64) here, its peer vp (10.3.0.2, 2001:db8:3::2, MAC
/// 02:00:00:00:03:02) in `peer`.
async fn link_to_peer(peer: &PeerNs) -> u32 {
    ip(&format!(
        "link add va type veth peer name vp netns {}",
        peer.tid
    ));
    ip("addr add 10.3.0.1/24 dev va");
    ip("addr add 2001:db8:3::1/64 dev va nodad");
    ip("link set va up");
    peer.ip("link set vp address 02:00:00:00:03:02");
    peer.ip("addr add 10.3.0.2/24 dev vp");
    peer.ip("addr add 2001:db8:3::2/64 dev vp nodad");
    peer.ip("link set vp up");
    wait_oper_up("va").await;
    ifindex_by_name("va").unwrap()
}

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

/// Runs `ip -batch -` with `commands` on stdin.
pub(super) fn ip_batch(commands: &str) {
    use std::io::Write as _;
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run ip");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(commands.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "ip -batch failed");
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
