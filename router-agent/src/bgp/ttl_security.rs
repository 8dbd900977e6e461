//! The Generalized TTL Security Mechanism (RFC 5082) for directly connected BGP peers: we
//! send with TTL / hop limit 255 and the kernel drops anything that arrives with less, so a
//! spoofed segment from beyond the link cannot reach the session.
//!
//! The listening socket sends with 255 so that the SYN-ACK to a GTSM peer already carries it
//! (accepted sockets inherit it); once the accepted connection's neighbor is known, its socket
//! gets the minimum (GTSM) or goes back to the default TTL (not GTSM). An outgoing socket
//! gets both before it connects.
//!
//! The listener is shared by all neighbors, and the minimum set after accept comes too late
//! for the segments already queued (a peer's OPEN follows its handshake at once). So when
//! every neighbor and dynamic range uses GTSM the listener itself requires 255 (its SYNs and
//! everything after are checked by the kernel, accepted sockets inherit it); with a mix, the
//! GTSM neighbors' inbound connections are checked from accept on only (as FRR does), their
//! outbound ones entirely.

use std::os::fd::{AsRawFd, BorrowedFd};

/// What GTSM peers send and what we require (RFC 5082: one hop).
const GTSM_TTL: libc::c_int = 255;
/// For IP_TTL / IPV6_UNICAST_HOPS: the system's default.
const DEFAULT_TTL: libc::c_int = -1;

fn set_int(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: an int option, its value outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            &value as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The TTL / hop limit our segments leave with, for both families (a dual-stack socket
/// carries v4 peers too; IPPROTO_IP options apply to them).
fn set_send_ttl(socket: BorrowedFd<'_>, v6: bool, ttl: libc::c_int) -> std::io::Result<()> {
    set_int(socket, libc::IPPROTO_IP, libc::IP_TTL, ttl)?;
    if v6 {
        set_int(socket, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, ttl)?;
    }
    Ok(())
}

/// The listening socket (AF_INET6, dual-stack): send with 255 so that SYN-ACKs to GTSM peers
/// pass their minimum; `enforce` (every neighbor uses GTSM): require 255 of everything.
pub fn prepare_listener(socket: BorrowedFd<'_>, enforce: bool) -> std::io::Result<()> {
    set_send_ttl(socket, true, GTSM_TTL)?;
    set_min_ttl(socket, true, if enforce { GTSM_TTL } else { 0 })
}

/// The minimum TTL / hop limit the kernel accepts (0: any).
fn set_min_ttl(socket: BorrowedFd<'_>, v6: bool, min: libc::c_int) -> std::io::Result<()> {
    set_int(socket, libc::IPPROTO_IP, libc::IP_MINTTL, min)?;
    if v6 {
        set_int(socket, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, min)?;
    }
    Ok(())
}

/// A socket about to connect or just accepted, for a neighbor with (`gtsm`) or without GTSM.
/// `v6`: an AF_INET6 socket (its v4-mapped peers use the IPv4 options too).
pub fn apply(socket: BorrowedFd<'_>, v6: bool, gtsm: bool) -> std::io::Result<()> {
    if !gtsm {
        // An accepted socket inherited the listener's 255 (and its minimum, if it had one).
        set_send_ttl(socket, v6, DEFAULT_TTL)?;
        return set_min_ttl(socket, v6, 0);
    }
    set_send_ttl(socket, v6, GTSM_TTL)?;
    set_min_ttl(socket, v6, GTSM_TTL)
}
