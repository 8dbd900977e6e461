//! The lab's traffic: servers that count what reaches them, and the client's ping, UDP
//! flows and TCP connections.

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use netns_lab::Namespace;

const UDP_PORT: u16 = 9000;
const TCP_PORT: u16 = 8080;
/// Client traffic per run: datagrams from this many source ports, and TCP connections.
pub(super) const UDP_FLOWS: usize = 200;
pub(super) const DATAGRAMS_PER_FLOW: usize = 5;
pub(super) const TCP_CONNECTIONS: usize = 40;

/// What a server saw.
#[derive(Default)]
pub(super) struct ServerCounters {
    pub(super) datagrams: AtomicU64,
    pub(super) connections: AtomicU64,
}

/// A server: counts UDP datagrams on port 9000, answers TCP connections on 8080 with its name.
pub(super) fn serve(
    ns: &Namespace,
    name: &str,
    counters: &ServerCounters,
    stop: &AtomicBool,
) -> Result<()> {
    ns.enter_current_thread()?;
    // [::] takes IPv4 too (dual stack).
    let udp = UdpSocket::bind(("::", UDP_PORT)).context("binding the UDP server")?;
    udp.set_read_timeout(Some(Duration::from_millis(10)))?;
    let tcp = TcpListener::bind(("::", TCP_PORT)).context("binding the TCP server")?;
    tcp.set_nonblocking(true)?;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        while let Ok((_, _)) = udp.recv_from(&mut buf) {
            counters.datagrams.fetch_add(1, Ordering::Relaxed);
        }
        while let Ok((mut stream, _)) = tcp.accept() {
            stream.set_nonblocking(false)?;
            let _ = stream.write_all(name.as_bytes());
            counters.connections.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// ICMP echo to `target` through an ICMP datagram ("ping") socket: the kernel fills in the
/// identifier and checksum. `count` requests, 200 ms apart; the round-trip time of each reply.
pub(super) fn ping(target: IpAddr, count: u16) -> Result<Vec<Option<Duration>>> {
    use std::os::fd::FromRawFd;
    let (domain, protocol, request, reply) = match target {
        IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP, 8u8, 0u8),
        IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128u8, 129u8),
    };
    // SAFETY: plain socket(2); the fd is owned by the UdpSocket below.
    let fd = unsafe { libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("opening an ICMP socket");
    }
    // SAFETY: `fd` is a fresh datagram socket nobody else owns; std only uses send/recv on it.
    let socket = unsafe { UdpSocket::from_raw_fd(fd) };
    socket.connect((target, 0))?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut replies = Vec::new();
    for seq in 1..=count {
        let mut packet = [0u8; 16];
        packet[0] = request;
        packet[6..8].copy_from_slice(&seq.to_be_bytes());
        packet[8..].copy_from_slice(b"hostrtr!");
        let sent = Instant::now();
        socket.send(&packet)?;
        let mut rtt = None;
        let mut buf = [0u8; 128];
        while sent.elapsed() < Duration::from_millis(1000) {
            match socket.recv(&mut buf) {
                Ok(n) if n >= 8 && buf[0] == reply && buf[6..8] == seq.to_be_bytes() => {
                    rtt = Some(sent.elapsed());
                    break;
                }
                Ok(_) => {}
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(err) => return Err(err).context("receiving an ICMP reply"),
            }
        }
        replies.push(rtt);
        if rtt.is_some() {
            std::thread::sleep(Duration::from_millis(200).saturating_sub(sent.elapsed()));
        }
    }
    Ok(replies)
}

/// UDP_FLOWS sockets (one source port each) send DATAGRAMS_PER_FLOW datagrams each.
pub(super) fn send_udp(target: IpAddr) -> Result<usize> {
    let local: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let mut sent = 0;
    for flow in 0..UDP_FLOWS {
        let socket = UdpSocket::bind(local)?;
        for _ in 0..DATAGRAMS_PER_FLOW {
            socket.send_to(b"hello from the client", (target, UDP_PORT))?;
            sent += 1;
        }
        if flow % 20 == 19 {
            // Gentle: the veth rings are short.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(sent)
}

/// TCP_CONNECTIONS connections, each reading the server's name; returns how many failed.
/// Gives up after 5 failures in a row (each may take a 1 s time-out).
pub(super) fn connect_tcp(target: IpAddr) -> usize {
    let mut failed = 0;
    let mut in_a_row = 0;
    for attempt in 0..TCP_CONNECTIONS {
        if in_a_row == 5 {
            return failed + TCP_CONNECTIONS - attempt;
        }
        let answer = (|| -> std::io::Result<String> {
            let mut stream =
                TcpStream::connect_timeout(&(target, TCP_PORT).into(), Duration::from_secs(1))?;
            stream.set_read_timeout(Some(Duration::from_secs(1)))?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        })();
        if matches!(answer.as_deref(), Ok("server1" | "server2")) {
            in_a_row = 0;
        } else {
            failed += 1;
            in_a_row += 1;
        }
    }
    failed
}
