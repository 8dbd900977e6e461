//! A flood: a feeder in the peer namespace (this test, speaking raw BGP) sends 1.2M IPv4
//! routes as fast as TCP takes them, while GoBGP keeps a second session with the agent (hold
//! time 9 s, keepalives every 3 s). The agent's peak memory stays bounded (VmHWM, printed),
//! every route arrives, and neither session expires its hold timer or goes down: the
//! feeder's session is held back by TCP (bounded per-peer queues), not by the other's
//! keepalives. `HRGX_FLOOD_ROUTES` overrides the count. Needs root and gobgpd.

mod interop;
mod netns;

use std::{
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::fd::AsRawFd,
    thread,
    time::{Duration, Instant},
};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab};
use netns::wait_for;

const SUBNET: u8 = 85;
const GOBGP_ASN: u32 = 65070;
const FEEDER_ASN: u32 = 65071;
/// Peak RSS ceiling for the agent, DIR-24-8 arrays (128 MiB) included.
const MAX_PEAK_KB: u64 = 768 * 1024;

fn routes() -> u32 {
    std::env::var("HRGX_FLOOD_ROUTES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_200_000)
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

fn open(router_id: Ipv4Addr) -> Vec<u8> {
    let capabilities = [
        // Multiprotocol IPv4 unicast; four-octet AS.
        &[1, 4, 0, 1, 0, 1][..],
        &[65, 4][..],
        &FEEDER_ASN.to_be_bytes()[..],
    ]
    .concat();
    let mut body = vec![4];
    body.extend_from_slice(&23456u16.to_be_bytes()); // AS_TRANS
    body.extend_from_slice(&90u16.to_be_bytes());
    body.extend_from_slice(&router_id.octets());
    body.push(capabilities.len() as u8 + 2);
    body.push(2);
    body.push(capabilities.len() as u8);
    body.extend_from_slice(&capabilities);
    message(1, &body)
}

/// UPDATEs announcing `count` /32s from 10.128.0.0 with next hop `next_hop`, at most 4096
/// octets each.
fn updates(count: u32, next_hop: Ipv4Addr) -> Vec<u8> {
    let mut attributes = vec![0x40, 1, 1, 0]; // ORIGIN IGP
    attributes.extend_from_slice(&[0x40, 2, 6, 2, 1]); // AS_PATH: one AS_SEQUENCE of 1
    attributes.extend_from_slice(&FEEDER_ASN.to_be_bytes());
    attributes.extend_from_slice(&[0x40, 3, 4]);
    attributes.extend_from_slice(&next_hop.octets());
    let per_message = (4096 - 19 - 4 - attributes.len()) / 5;
    let first = u32::from(Ipv4Addr::new(10, 128, 0, 0));
    let mut out = Vec::new();
    let mut next = 0;
    while next < count {
        let mut body = vec![0, 0];
        body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
        body.extend_from_slice(&attributes);
        for i in next..(next + per_message as u32).min(count) {
            body.push(32);
            body.extend_from_slice(&(first + i).to_be_bytes());
        }
        next = (next + per_message as u32).min(count);
        out.extend_from_slice(&message(2, &body));
    }
    out
}

fn status_kb(pid: u32, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

fn received(lab: &Lab, address: &str) -> u64 {
    let status = lab.show("status");
    status["neighbors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["address"] == address)
        .and_then(|n| n["prefixes_received"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_flooding_peer_is_held_back_and_other_sessions_keep_their_keepalives() {
    let count = routes();
    let mut lab = Lab::new("flood", "xh", "xp", SUBNET);
    let feeder_ip = format!("10.0.{SUBNET}.5");
    lab.exec(
        "peer",
        &["ip", "addr", "add", &format!("{feeder_ip}/24"), "dev", "xp"],
    );
    interop::gobgp::start(&mut lab, GOBGP_ASN, 1);
    let bgp = format!(
        r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_PREFIX}" }}]
kernel_routes = "none"

[[bgp.neighbor]]
address = "{gobgp}"
remote_as = {GOBGP_ASN}
import = "all"
export = "all"
hold_time = 9

[[bgp.neighbor]]
address = "{feeder_ip}"
remote_as = {FEEDER_ASN}
import = "all"
passive = true
hold_time = 90
"#,
        gobgp = lab.peer_ip,
    );
    lab.start_agent_with(
        &format!("engine = \"dir24\"\nexpected_ipv4_routes = {count}\n"),
        &bgp,
    );
    wait_for(
        "the GoBGP session",
        Duration::from_secs(30),
        || lab.agent_established() == 1,
        || lab.logs(),
    );
    let pid = lab.agent_pid().expect("agent started");
    let start_kb = status_kb(pid, "VmRSS");

    let feed = updates(count, feeder_ip.parse().unwrap());
    let netns = fs::File::open(format!("/run/netns/{}", lab.net.ns("peer"))).unwrap();
    let (from, to): (SocketAddr, SocketAddr) = (
        format!("{feeder_ip}:0").parse().unwrap(),
        format!("{}:179", lab.host_ip).parse().unwrap(),
    );
    let feed_len = feed.len();
    let feeder = thread::spawn(move || {
        // SAFETY: setns on this thread only.
        assert_eq!(
            unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut stream: TcpStream = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(from).unwrap();
            socket.connect(to).await.unwrap().into_std().unwrap()
        });
        stream.set_nonblocking(false).unwrap();
        stream
            .write_all(&[open(Ipv4Addr::new(10, 0, SUBNET, 5)), message(4, &[])].concat())
            .unwrap();
        // The agent's OPEN and KEEPALIVE, then drain whatever it sends from another thread.
        let mut reader = stream.try_clone().unwrap();
        let mut first = [0u8; 64];
        let _ = reader.read(&mut first).unwrap();
        thread::sleep(Duration::from_millis(300));
        thread::spawn(move || {
            let mut sink = [0u8; 4096];
            while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
        });
        let started = Instant::now();
        stream.write_all(&feed).unwrap();
        let fed = started.elapsed();
        // Keep the session: KEEPALIVEs until the test ends (the write then fails).
        let keepalives = stream.try_clone().unwrap();
        thread::spawn(move || {
            let mut keepalives = keepalives;
            while keepalives.write_all(&message(4, &[])).is_ok() {
                thread::sleep(Duration::from_secs(10));
            }
        });
        (fed, stream)
    });

    let flood = Instant::now();
    let mut peak_sampled = 0;
    while received(&lab, &feeder_ip) < u64::from(count) {
        peak_sampled = peak_sampled.max(status_kb(pid, "VmRSS"));
        assert!(
            flood.elapsed() < Duration::from_secs(300),
            "{} of {count} routes after 300 s\n{}",
            received(&lab, &feeder_ip),
            lab.logs()
        );
        thread::sleep(Duration::from_millis(250));
    }
    let all_in = flood.elapsed();
    let (fed, _stream) = feeder.join().unwrap();
    let peak = status_kb(pid, "VmHWM");
    // Past the flood, a few more keepalive intervals of the GoBGP session.
    thread::sleep(Duration::from_secs(6));
    eprintln!(
        "flood: {count} routes ({:.1} MiB of UPDATEs) in {all_in:.2?} (feeder's writes done \
         after {fed:.2?}); agent VmRSS {start_kb} kB before, {peak_sampled} kB at most \
         sampled, VmHWM {peak} kB ({} B/route)",
        feed_len as f64 / (1 << 20) as f64,
        peak * 1024 / u64::from(count)
    );
    assert_eq!(
        lab.agent_log_count(&["hold timer expired"]),
        0,
        "{}",
        lab.logs()
    );
    assert_eq!(lab.agent_log_count(&["session down"]), 0, "{}", lab.logs());
    assert_eq!(lab.agent_established(), 1, "{}", lab.logs());
    assert!(peak < MAX_PEAK_KB, "agent peak RSS {peak} kB");
}
