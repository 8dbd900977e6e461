//! Tests. Most need root: each runs in a brand-new anonymous network namespace created with
//! `unshare(CLONE_NEWNET)` on a dedicated thread (only that thread moves; the namespace dies
//! with the thread, so there is nothing to clean up), with its own current-thread tokio
//! runtime. `ip` commands spawned from that thread inherit its namespace (fork copies the
//! calling thread's namespaces; checked by `child_processes_inherit_the_thread_netns`).
//! This module is the harness they share.

mod dump_and_events;
mod parsing;
mod resolution;
mod route_writer;

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

/// va (10.3.0.1/24, 2001:db8:3::1/64) here, its peer vp (10.3.0.2, 2001:db8:3::2, MAC
/// 02:00:00:00:03:02) in `peer`.
pub(super) async fn link_to_peer(peer: &PeerNs) -> u32 {
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
