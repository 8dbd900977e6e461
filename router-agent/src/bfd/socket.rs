//! RFC 5881 sockets: one receive socket per family on UDP 3784, which reports each packet's
//! TTL / hop limit (only 255 is accepted: the peer is one hop away, RFC 5881 5) and its
//! interface; and one send socket per session, from a source port of its own in
//! 49152-65535 (RFC 5881 4), sending with TTL / hop limit 255, bound to the interface of a
//! link-local or unnumbered peer.

use std::{
    io,
    mem::{size_of, size_of_val},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

/// Where BFD Control packets go (RFC 5881 4).
pub const CONTROL_PORT: u16 = 3784;
/// RFC 5881 4: source ports of single-hop Control packets.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// What a one-hop BFD packet carries and what we require (RFC 5881 5).
pub const ONE_HOP_TTL: u8 = 255;

/// A received datagram's envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub len: usize,
    pub source: IpAddr,
    /// The interface it arrived on (IP_PKTINFO / IPV6_PKTINFO); 0 if the kernel did not say.
    pub ifindex: u32,
    /// TTL / hop limit; None if the kernel did not say (treated as not 255).
    pub ttl: Option<u8>,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: an int option; its value outlives the call.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const _ as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn udp_socket(v6: bool) -> io::Result<OwnedFd> {
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = check(unsafe {
        libc::socket(
            family,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// (sockaddr_storage, its length) for `address`.
fn sockaddr(address: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match address {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn bind(fd: RawFd, address: SocketAddr) -> io::Result<()> {
    let (storage, len) = sockaddr(address);
    // SAFETY: a valid sockaddr of `len` bytes.
    check(unsafe { libc::bind(fd, &storage as *const _ as *const libc::sockaddr, len) }).map(drop)
}

fn into_tokio(fd: OwnedFd) -> io::Result<tokio::net::UdpSocket> {
    tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// The receive socket of a family, bound to UDP 3784 (`port` in tests), asking the kernel for
/// each packet's TTL / hop limit and interface. Call [`ReceiveSocket::register`] inside the
/// runtime that polls it.
pub struct ReceiveSocket {
    fd: OwnedFd,
    v6: bool,
}

impl ReceiveSocket {
    pub fn bind(v6: bool, port: u16) -> io::Result<ReceiveSocket> {
        let fd = udp_socket(v6)?;
        let raw = fd.as_raw_fd();
        if v6 {
            // The IPv4 socket takes IPv4: no v4-mapped packets here.
            set_int(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
            set_int(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
            set_int(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
            bind(raw, SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port))?;
        } else {
            set_int(raw, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
            set_int(raw, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
            bind(raw, SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port))?;
        }
        Ok(ReceiveSocket { fd, v6 })
    }

    pub fn register(self) -> io::Result<RegisteredReceiveSocket> {
        Ok(RegisteredReceiveSocket {
            socket: into_tokio(self.fd)?,
            v6: self.v6,
        })
    }
}

pub struct RegisteredReceiveSocket {
    socket: tokio::net::UdpSocket,
    v6: bool,
}

impl RegisteredReceiveSocket {
    /// The next datagram into `buf` (truncated to it), with its envelope.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Envelope> {
        let fd = self.socket.as_raw_fd();
        self.socket
            .async_io(tokio::io::Interest::READABLE, || receive(fd, buf, self.v6))
            .await
    }
}

/// recvmsg(2) with the TTL / hop limit and packet-info control messages.
fn receive(fd: RawFd, buf: &mut [u8], v6: bool) -> io::Result<Envelope> {
    // SAFETY: all-zero is valid for these plain C structs.
    let mut source: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &mut source as *mut _ as *mut libc::c_void;
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: every pointer in msg is valid for the call.
    let len = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut envelope = Envelope {
        len: len as usize,
        source: if v6 {
            // SAFETY: an AF_INET6 socket fills a sockaddr_in6.
            let sin6 = unsafe { *(&source as *const _ as *const libc::sockaddr_in6) };
            Ipv6Addr::from(sin6.sin6_addr.s6_addr).into()
        } else {
            // SAFETY: an AF_INET socket fills a sockaddr_in.
            let sin = unsafe { *(&source as *const _ as *const libc::sockaddr_in) };
            Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into()
        },
        ifindex: 0,
        ttl: None,
    };
    // SAFETY: the CMSG_* walk stays within msg_controllen, as the kernel filled it; data is
    // read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let data = libc::CMSG_DATA(cmsg);
            match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                    let ttl = std::ptr::read_unaligned(data as *const libc::c_int);
                    envelope.ttl = u8::try_from(ttl).ok();
                }
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let info = std::ptr::read_unaligned(data as *const libc::in_pktinfo);
                    envelope.ifindex = info.ipi_ifindex as u32;
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info = std::ptr::read_unaligned(data as *const libc::in6_pktinfo);
                    envelope.ifindex = info.ipi6_ifindex;
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(envelope)
}

/// One session's sending socket: its own source port, TTL / hop limit 255, and bound to
/// `ifindex` (link-local and unnumbered peers; 0: routed by the kernel).
pub struct SendSocket {
    socket: std::net::UdpSocket,
    destination: SocketAddr,
    pub source_port: u16,
}

impl SendSocket {
    /// `port`: the peer's BFD port (3784; tests use others). Ports are tried from a random
    /// start, so that restarts do not reuse the last run's (a peer may still hold it).
    pub fn open(
        peer: IpAddr,
        ifindex: u32,
        interface: Option<&str>,
        port: u16,
    ) -> io::Result<SendSocket> {
        let fd = udp_socket(peer.is_ipv6())?;
        let raw = fd.as_raw_fd();
        let ttl = libc::c_int::from(ONE_HOP_TTL);
        match peer {
            IpAddr::V4(_) => set_int(raw, libc::IPPROTO_IP, libc::IP_TTL, ttl)?,
            IpAddr::V6(_) => set_int(raw, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, ttl)?,
        }
        if let Some(name) = interface {
            // SAFETY: the option value is the name's bytes, of the length given.
            check(unsafe {
                libc::setsockopt(
                    raw,
                    libc::SOL_SOCKET,
                    libc::SO_BINDTODEVICE,
                    name.as_ptr() as *const libc::c_void,
                    name.len() as libc::socklen_t,
                )
            })?;
        }
        let unspecified: IpAddr = match peer {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let span = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
        let start = rand::random::<u32>() % span;
        let mut bound = None;
        for step in 0..span {
            let port = SOURCE_PORTS.start() + ((start + step) % span) as u16;
            match bind(raw, SocketAddr::new(unspecified, port)) {
                Ok(()) => {
                    bound = Some(port);
                    break;
                }
                Err(err) if err.raw_os_error() == Some(libc::EADDRINUSE) => continue,
                Err(err) => return Err(err),
            }
        }
        let source_port = bound.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                "no free source port in 49152-65535",
            )
        })?;
        let destination = match peer {
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, ifindex)),
            IpAddr::V4(_) => SocketAddr::new(peer, port),
        };
        Ok(SendSocket {
            socket: std::net::UdpSocket::from(fd),
            destination,
            source_port,
        })
    }

    /// Sends without waiting: a full socket buffer drops the packet, as a lossy link would
    /// (the next one follows within an interval).
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        self.socket.send_to(packet, self.destination).map(drop)
    }
}
