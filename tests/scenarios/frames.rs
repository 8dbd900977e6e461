//! Frames built by hand (any MAC, any source address, IPv4 options), sent raw from a
//! namespace with an AF_PACKET socket, and UDP sinks that count what arrives by source.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use super::in_netns;

/// One IPv4/UDP frame: Ethernet addresses, IP addresses and UDP ports as given, TTL 64, a
/// correct header checksum, UDP checksum 0 (none, legal over IPv4), 16 bytes of payload.
pub fn udp_v4(
    (dst_mac, src_mac): ([u8; 6], [u8; 6]),
    (src, dst): (Ipv4Addr, Ipv4Addr),
    (sport, dport): (u16, u16),
) -> Vec<u8> {
    let payload = 16usize;
    let total = 20 + 8 + payload;
    let mut frame = Vec::with_capacity(14 + total);
    frame.extend_from_slice(&dst_mac);
    frame.extend_from_slice(&src_mac);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&(total as u16).to_be_bytes());
    // Identification, DF, TTL 64, UDP, checksum (filled below).
    frame.extend_from_slice(&[0x4e, 0x21, 0x40, 0x00, 64, 17, 0, 0]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    let checksum = ipv4_checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&sport.to_be_bytes());
    frame.extend_from_slice(&dport.to_be_bytes());
    frame.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.resize(14 + total, 0x5a);
    frame
}

/// RFC 1071 checksum of an IPv4 header whose checksum field is zero.
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends `frames` as they are out of `ifindex` in namespace `ns` (AF_PACKET, SOCK_RAW),
/// `burst` at a time with a pause after each burst: a veth peer running XDP takes frames
/// through a ring of a few hundred, and a sender that outruns it loses frames silently.
/// Returns how many the kernel accepted.
pub fn send_raw(ns: &str, ifindex: u32, frames: Vec<Vec<u8>>, burst: usize) -> usize {
    in_netns(ns, move || {
        // SAFETY: plain socket(2); the fd is closed below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: sockaddr_ll is plain data; zero is a valid start.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = ifindex as i32;
        address.sll_halen = 6;
        let mut sent = 0;
        for (i, frame) in frames.iter().enumerate() {
            address.sll_addr[..6].copy_from_slice(&frame[..6]);
            // SAFETY: the buffer and the address outlive the call; lengths are theirs.
            let n = unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const address).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if n == frame.len() as isize {
                sent += 1;
            }
            if (i + 1) % burst == 0 {
                thread::sleep(Duration::from_millis(2));
            }
        }
        // SAFETY: our own fd.
        unsafe { libc::close(fd) };
        sent
    })
}

/// A UDP socket in a namespace counting the datagrams it receives, by source address, until
/// dropped.
pub struct UdpSink {
    counts: Arc<Mutex<BTreeMap<IpAddr, u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpSink {
    /// Listens on 0.0.0.0:`port` in `ns`.
    pub fn start(ns: &str, port: u16) -> Self {
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let socket = in_netns(ns, move || {
            UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port))).expect("bind the sink")
        });
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let (counts2, stop2) = (counts.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut buffer = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((_, from)) = socket.recv_from(&mut buffer) {
                    *counts2.lock().unwrap().entry(from.ip()).or_default() += 1;
                }
            }
        });
        Self {
            counts,
            stop,
            thread: Some(thread),
        }
    }

    /// Datagrams received from `source` so far.
    pub fn from(&self, source: Ipv4Addr) -> u64 {
        let source = IpAddr::V4(source);
        self.counts
            .lock()
            .unwrap()
            .get(&source)
            .copied()
            .unwrap_or(0)
    }

    /// Datagrams received so far, from anyone.
    pub fn total(&self) -> u64 {
        self.counts.lock().unwrap().values().sum()
    }

    pub fn summary(&self) -> String {
        format!("{:?}", self.counts.lock().unwrap())
    }
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
