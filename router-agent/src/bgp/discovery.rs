//! Finding unnumbered neighbors: IPv6 Router Advertisements on their interfaces.
//!
//! FRR (`neighbor eth0 interface`) learns the peer's link-local address from the Router
//! Advertisements it hears on the interface, and sends its own. We do the same: every
//! [`RA_INTERVAL`] an RA with router lifetime 0 (RFC 4861 4.2: "not a default router", so hosts
//! on the link do not route through us because of it) goes to all-nodes (ff02::1) with hop
//! limit 255, and the source of every RA heard with hop limit 255 (RFC 4861 6.1.2: it was not
//! forwarded) is reported as the neighbor on that interface.
//!
//! One task per interface, on a raw ICMPv6 socket bound to it (the kernel fills in the
//! checksum and the link-local source). An interface that does not exist yet, or has no usable
//! link-local address yet (duplicate address detection), is retried every interval.

use std::{
    io,
    mem::{size_of, zeroed},
    net::Ipv6Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use tokio::io::unix::AsyncFd;

/// How often we advertise: short, so that a peer restarting finds us quickly.
pub const RA_INTERVAL: Duration = Duration::from_secs(3);

const ICMPV6_ROUTER_ADVERTISEMENT: u8 = 134;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const HOP_LIMIT: libc::c_int = 255;

/// An RA that says nothing but "a router is here": no default route (lifetime 0), no
/// prefixes, no managed/other flags (RFC 4861 4.2).
fn router_advertisement() -> [u8; 16] {
    let mut ra = [0u8; 16];
    ra[0] = ICMPV6_ROUTER_ADVERTISEMENT;
    // Code 0; checksum by the kernel; Cur Hop Limit 0 (unspecified); flags 0; Router Lifetime
    // 0; Reachable Time 0; Retrans Timer 0.
    ra
}

/// Starts advertising and listening on `interface`; `found` gets each neighbor's link-local
/// address as it is heard (again at every RA: the receiver ignores repeats). Aborting the
/// handle stops both (its socket closes with the task): interfaces come and go on reload.
pub fn spawn(
    interface: String,
    found: impl Fn(Ipv6Addr) + Send + 'static,
) -> tokio::task::AbortHandle {
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(RA_INTERVAL);
        let mut socket: Option<AsyncFd<OwnedFd>> = None;
        loop {
            let Some(fd) = socket.as_ref() else {
                ticker.tick().await;
                match open(&interface) {
                    Ok(fd) => socket = Some(fd),
                    Err(err) => {
                        tracing::debug!(interface, "router advertisements: {err}");
                        continue;
                    }
                }
                continue;
            };
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(err) = send(fd.get_ref(), &interface) {
                        // No link-local address yet (DAD), or the interface went away.
                        tracing::debug!(interface, "sending a router advertisement: {err}");
                        if err.raw_os_error() == Some(libc::ENODEV) {
                            socket = None;
                        }
                    }
                }
                readable = fd.readable() => {
                    let Ok(mut guard) = readable else {
                        socket = None;
                        continue;
                    };
                    match guard.try_io(|fd| receive(fd.get_ref())) {
                        Ok(Ok(Some(source))) => found(source),
                        Ok(Ok(None)) => {}
                        Ok(Err(err)) => tracing::debug!(interface, "receiving: {err}"),
                        Err(_would_block) => {}
                    }
                }
            }
        }
    });
    task.abort_handle()
}

fn check(result: libc::c_int, what: &str) -> io::Result<()> {
    if result < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("{what}: {err}")));
    }
    Ok(())
}

fn set_option<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> io::Result<()> {
    // SAFETY: `value` is a live T of the size passed.
    let result = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    check(result, what)
}

/// A raw ICMPv6 socket on `interface` that hears only Router Advertisements.
fn open(interface: &str) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: plain socket(2); the descriptor is owned below.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        )
    };
    check(raw, "raw ICMPv6 socket")?;
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let name = interface.as_bytes();
    // SAFETY: the name's bytes, with their length.
    let bound = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    check(bound, "binding to the interface")?;
    // ICMP6_FILTER: block every type but Router Advertisement (a set bit blocks).
    let mut filter = [u32::MAX; 8];
    let ra = ICMPV6_ROUTER_ADVERTISEMENT as usize;
    filter[ra >> 5] &= !(1u32 << (ra & 31));
    set_option(&fd, libc::IPPROTO_ICMPV6, 1, &filter, "ICMP6_FILTER")?;
    set_option(
        &fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_HOPS,
        &HOP_LIMIT,
        "hop limit",
    )?;
    set_option(
        &fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_UNICAST_HOPS,
        &HOP_LIMIT,
        "hop limit",
    )?;
    let off: libc::c_int = 0;
    set_option(
        &fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_LOOP,
        &off,
        "multicast loop",
    )?;
    let on: libc::c_int = 1;
    set_option(
        &fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_RECVHOPLIMIT,
        &on,
        "IPV6_RECVHOPLIMIT",
    )?;
    // SAFETY: an OwnedFd keeps its one descriptor open until it is dropped with the AsyncFd.
    unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
}

fn send(fd: &OwnedFd, interface: &str) -> io::Result<()> {
    let ifindex = interface_index(interface)?;
    // SAFETY: zeroed sockaddr_in6 is valid; fields set below.
    let mut to: libc::sockaddr_in6 = unsafe { zeroed() };
    to.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    to.sin6_addr.s6_addr = ALL_NODES.octets();
    to.sin6_scope_id = ifindex;
    let ra = router_advertisement();
    // SAFETY: the buffer and address are live for the call, with their sizes.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            ra.as_ptr().cast(),
            ra.len(),
            0,
            (&to as *const libc::sockaddr_in6).cast(),
            size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    check(sent as libc::c_int, "sendto ff02::1")
}

/// One datagram: the source of a Router Advertisement that came with hop limit 255 from a
/// link-local address; None for anything else.
fn receive(fd: &OwnedFd) -> io::Result<Option<Ipv6Addr>> {
    let mut buffer = [0u8; 1500];
    // Room for one IPV6_HOPLIMIT control message (an int), aligned.
    let mut control = [0u64; 8];
    // SAFETY: zeroed sockaddr_in6 / msghdr are valid; pointers set to live buffers.
    let mut from: libc::sockaddr_in6 = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    let mut message: libc::msghdr = unsafe { zeroed() };
    message.msg_name = (&mut from as *mut libc::sockaddr_in6).cast();
    message.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = size_of::<[u64; 8]>() as _;
    // SAFETY: every pointer in `message` refers to a live local buffer of the stated size.
    let length = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut message, 0) };
    if length < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut hop_limit = None;
    // SAFETY: walking the control messages the kernel wrote, with the libc macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&message);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IPV6 && (*cmsg).cmsg_type == libc::IPV6_HOPLIMIT
            {
                hop_limit = Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(cmsg).cast::<libc::c_int>(),
                ));
            }
            cmsg = libc::CMSG_NXTHDR(&message, cmsg);
        }
    }
    let source = Ipv6Addr::from(from.sin6_addr.s6_addr);
    let is_ra = length >= 16 && buffer[0] == ICMPV6_ROUTER_ADVERTISEMENT && buffer[1] == 0;
    let link_local = source.segments()[0] & 0xffc0 == 0xfe80;
    Ok((is_ra && link_local && hop_limit == Some(HOP_LIMIT)).then_some(source))
}

pub(crate) fn interface_index(name: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name with NUL"))?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertisement_is_not_a_default_router() {
        let ra = router_advertisement();
        assert_eq!(ra[0], 134);
        assert_eq!(u16::from_be_bytes([ra[6], ra[7]]), 0, "router lifetime");
        assert_eq!(ra[5] & 0xc0, 0, "no managed / other configuration flags");
    }
}
