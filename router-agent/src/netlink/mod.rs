//! The agent's view of the kernel through rtnetlink.
//!
//! * **In**: links, neighbors (ARP/ND), the host's own addresses and the kernel's routes
//!   (filtered by [`RouteFilter`]; the local table always), as a stream of [`KernelEvent`]s: a full dump first, then
//!   [`KernelEvent::DumpDone`], then live changes.
//! * **Out**: kernel routes (so that traffic the host itself originates follows our routes),
//!   neighbor resolution requests ([`Netlink::resolve`]) and egress lookups
//!   ([`Netlink::egress_for`]).
//!
//! Two netlink sockets are used:
//! * a *request* socket, behind [`Netlink`] (cheap to clone), for dumps and changes; it asks for
//!   extended acks so that kernel errors come with the kernel's own explanation;
//! * an *event* socket, subscribed to RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR,
//!   RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE and RTNLGRP_IPV6_ROUTE *before* the initial dump is taken, so that no change can fall between
//!   the dump and the subscription (see `events.rs` for why replaying the queued notifications
//!   after the dump is correct).
//!
//! Nothing here panics on unexpected kernel content: messages that cannot be understood are
//! logged at debug level and skipped.

mod addresses;
mod events;
mod kernel_routes;
#[cfg(test)]
mod kernel_routes_tests;
mod links;
mod local_table;
#[cfg(test)]
mod local_table_tests;
mod neighbors;
#[cfg(test)]
mod removal_tests;
mod route_batch;
mod route_message;
mod routes;
#[cfg(test)]
mod tests;
mod veth;

use std::{
    ffi::CString,
    fmt,
    net::{IpAddr, Ipv4Addr},
    os::fd::AsRawFd,
};

use anyhow::Context as _;
use futures::StreamExt as _;
use rtnetlink::{
    MulticastGroup,
    packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload},
    packet_route::RouteNetlinkMessage,
    sys::AsyncSocket as _,
};
use tokio::sync::mpsc;

pub use kernel_routes::{
    FollowedRoute, FollowedRouteKey, ROUTING_DAEMON_PROTOCOLS, RouteFilter, RouteHop, RouteKind,
    TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN,
};
pub use local_table::{LocalKind, LocalRoute};
pub use route_batch::{MESSAGES_PER_SEND, RouteChange, RouteFailure, RouteWriter};
pub use route_message::{KERNEL_ROUTE_METRIC, RTPROT_HOSTROUTER};
pub use veth::PeerGro;

/// A 48-bit Ethernet MAC address.
pub type Mac = [u8; 6];

/// A network interface as the agent needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkInfo {
    pub ifindex: u32,
    pub name: String,
    /// `None` for interfaces that are not Ethernet-like (loopback, tun, ip tunnels...).
    pub mac: Option<Mac>,
    pub mtu: u32,
    /// Admin up (IFF_UP) *and* operationally up or `unknown` (interfaces without carrier
    /// reporting, e.g. loopback, report `unknown`). A veth whose peer is down reports
    /// `LOWERLAYERDOWN` and is therefore not up.
    pub up: bool,
}

/// A neighbor (ARP or ND) entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NeighborInfo {
    pub ifindex: u32,
    pub addr: IpAddr,
    /// `Some(mac)` when XDP may forward with it (NUD_REACHABLE, DELAY, PROBE, PERMANENT or
    /// NOARP with a MAC, and STALE for managed entries); `None` while unresolved, after
    /// resolution failed (NUD_INCOMPLETE, FAILED, NONE) and for an unmanaged STALE entry,
    /// which the kernel must confirm first (see `neighbors::nud_usable`).
    pub mac: Option<Mac>,
}

/// One address of the host itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressInfo {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// IPv4 only, when configured (`ip addr add ... brd +`).
    pub broadcast: Option<Ipv4Addr>,
}

/// What the kernel tells the agent, see [`Netlink::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// A link appeared or changed (only sent when one of the [`LinkInfo`] fields changed).
    Link(LinkInfo),
    /// A link disappeared. Its neighbors and addresses have been reported removed just before.
    LinkRemoved {
        ifindex: u32,
    },
    /// A neighbor appeared or changed usability or MAC (pure NUD churn such as
    /// REACHABLE -> DELAY -> PROBE with the same MAC is not reported).
    Neighbor(NeighborInfo),
    NeighborRemoved {
        ifindex: u32,
        addr: IpAddr,
    },
    /// A neighbor turned STALE that the kernel will not confirm by itself (not managed):
    /// XDP keeps using it, so ask the kernel to confirm it (`Netlink::confirm_neighbor`).
    NeighborStale {
        ifindex: u32,
        addr: IpAddr,
    },
    Address(AddressInfo),
    AddressRemoved(AddressInfo),
    /// An observed kernel route appeared or changed (complete: replaces what was reported for
    /// its key). [`FollowedRoute::followed`] says whether the XDP FIB follows it; it changes
    /// when the route moves on or off the followed interfaces.
    Route(FollowedRoute),
    /// An observed kernel route is gone (deleted, or flushed with its link).
    RouteRemoved(FollowedRouteKey),
    /// A route of the local table (the host's own, broadcast and anycast destinations)
    /// appeared; always followed.
    LocalRoute(LocalRoute),
    /// A route of the local table is gone (deleted, or flushed with its link).
    LocalRouteRemoved(LocalRoute),
    /// The initial dump is complete: everything sent before this is the kernel's state at
    /// start. Sent exactly once.
    DumpDone,
}

/// A route we install in the kernel's main table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelRoute {
    pub prefix: ipnet::IpNet,
    /// One nexthop: a plain route; more: an ECMP route (RTA_MULTIPATH). Duplicates are ignored.
    pub nexthops: Vec<KernelNexthop>,
    /// Route protocol (`ip route ... proto N`), normally [`RTPROT_HOSTROUTER`]; it is how our
    /// routes are told apart from everybody else's, e.g. by [`Netlink::flush_routes`].
    pub protocol: u8,
}

/// A directly connected nexthop. An IPv4 prefix may have an IPv6 gateway (normally link-local,
/// RFC 5549 / "unnumbered" BGP): it is installed with RTA_VIA as FRR does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelNexthop {
    pub gateway: IpAddr,
    pub ifindex: u32,
}

/// An error the kernel returned to a netlink request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetlinkError {
    /// `errno` is positive (e.g. `libc::EEXIST`); `extack` is the kernel's explanation when it
    /// gave one (extended ack), e.g. "Nexthop has invalid gateway".
    #[error("{}{}", std::io::Error::from_raw_os_error(*errno),
            extack.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kernel { errno: i32, extack: Option<String> },
    /// The connection task is gone (only happens if the netlink socket itself failed).
    #[error("netlink connection closed")]
    Closed,
}

impl NetlinkError {
    /// The errno (positive) if the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { errno, .. } => Some(*errno),
            Self::Closed => None,
        }
    }
}

/// Handle on the kernel's routing netlink. Cheap to clone; all clones share one socket.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Netlink")
    }
}

/// Receive buffer asked for the event socket. Bursts (a link going down flushes all of its
/// neighbors, a bond flap, thousands of ND entries) must not overflow it; if they still do, the
/// kernel tells us (ENOBUFS) and we resynchronise with a fresh dump.
const EVENT_SOCKET_RCVBUF: usize = 8 << 20;

#[cfg(test)]
thread_local! {
    /// Tests shrink the event socket buffer to provoke overflows (per thread: each namespace
    /// test runs on its own thread).
    static TEST_EVENT_RCVBUF: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    /// How many times the event task resynchronised after an overflow, on this thread.
    static TEST_RESYNCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Netlink {
    /// [`Self::connect_following`] the main table's routes (our own excepted).
    pub async fn connect() -> anyhow::Result<(Netlink, mpsc::UnboundedReceiver<KernelEvent>)> {
        Self::connect_following(RouteFilter::default()).await
    }

    /// Opens the netlink sockets, subscribes to link, neighbor, address and route changes,
    /// dumps the current state and returns the event stream: the dump ([`KernelEvent::Link`]s,
    /// then [`KernelEvent::Address`]es, then [`KernelEvent::Neighbor`]s, then the
    /// [`KernelEvent::Route`]s `routes` selects and the [`KernelEvent::LocalRoute`]s), one [`KernelEvent::DumpDone`], then live
    /// changes.
    ///
    /// Must be called inside a tokio runtime (it spawns the connection tasks). The sockets
    /// belong to the network namespace of the calling thread. Dropping the receiver stops the
    /// event task; the request socket lives as long as a clone of the returned [`Netlink`].
    /// The event stream only ends if the event socket itself fails (logged as an error).
    ///
    /// If the event socket overflows (notifications lost), the state is re-dumped and only the
    /// differences with what was already reported are sent, removals included: the consumer
    /// needs no special handling, and `DumpDone` is not sent again.
    pub async fn connect_following(
        routes: RouteFilter,
    ) -> anyhow::Result<(Netlink, mpsc::UnboundedReceiver<KernelEvent>)> {
        // Request socket. Its unsolicited-message channel is dropped: it joins no group.
        let (mut conn, handle, _) =
            rtnetlink::new_connection().context("cannot open the netlink request socket")?;
        let sock = conn.socket_mut().socket_mut();
        // Extended acks give the kernel's error string; "capped" acks keep error messages
        // small (the kernel echoes only our header, not the whole request).
        if let Err(e) = sock.set_ext_ack(true).and_then(|()| sock.set_cap_ack(true)) {
            tracing::debug!("netlink extended acks unavailable: {e}");
        }
        tokio::spawn(conn);
        let netlink = Netlink { handle };

        // Event socket: joined to the groups at creation (bind), i.e. before the dump below.
        let (mut ev_conn, ev_handle, ev_messages) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Neigh,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
            MulticastGroup::Ipv4Route,
            MulticastGroup::Ipv6Route,
        ])
        .context("cannot open the netlink event socket")?;
        #[cfg(not(test))]
        let rcvbuf = EVENT_SOCKET_RCVBUF;
        #[cfg(test)]
        let rcvbuf = TEST_EVENT_RCVBUF.get().unwrap_or(EVENT_SOCKET_RCVBUF);
        let ev_fd = ev_conn.socket_mut().socket_mut().as_raw_fd();
        set_rcvbuf(ev_fd, rcvbuf);
        kernel_routes::drop_own_route_notifications(ev_fd, routes.own_protocol);
        // We never send on the event socket: with its handle dropped, the connection task ends
        // once the event task drops `ev_messages`.
        drop(ev_handle);
        tokio::spawn(ev_conn);

        let (tx, rx) = mpsc::unbounded_channel();
        events::start(netlink.clone(), ev_messages, tx, routes)
            .await
            .context("cannot dump the kernel's links, addresses, neighbors and routes")?;
        Ok((netlink, rx))
    }

    /// Sends one request and collects the messages of the answer (none for a plain ack, many
    /// for a dump). A kernel error becomes [`NetlinkError::Kernel`].
    pub(crate) async fn request(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut req = NetlinkMessage::from(message);
        req.header.flags = flags;
        let mut handle = self.handle.clone();
        let mut responses = handle.request(req).map_err(|_| NetlinkError::Closed)?;
        let mut out = Vec::new();
        while let Some(msg) = responses.next().await {
            match msg.payload {
                NetlinkPayload::InnerMessage(inner) => out.push(inner),
                NetlinkPayload::Error(ref err) => {
                    if let Some(code) = err.code {
                        return Err(NetlinkError::Kernel {
                            errno: code.get().saturating_abs(),
                            extack: extack_message(&msg.header, &err.header),
                        });
                    }
                    // code 0: the ack of a successful change.
                }
                NetlinkPayload::Overrun(_) => {
                    // Only possible for multicast traffic, which this socket does not receive.
                    tracing::debug!("unexpected overrun on the netlink request socket");
                }
                other => tracing::debug!("ignoring netlink message {other:?}"),
            }
        }
        Ok(out)
    }
}

/// NLM_F_CAPPED: the error message echoes only the request's header.
const NLM_F_CAPPED: u16 = 0x100;
/// NLM_F_ACK_TLVS: extended ack attributes follow the echoed request.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// NLMSGERR_ATTR_MSG: the human-readable error string.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Extracts the kernel's error string from an NLMSG_ERROR payload (after the errno field):
/// the echoed request (header only if capped), then netlink attributes.
fn extack_message(outer: &NetlinkHeader, payload: &[u8]) -> Option<String> {
    if outer.flags & NLM_F_ACK_TLVS == 0 || payload.len() < 16 {
        return None;
    }
    let echoed = if outer.flags & NLM_F_CAPPED != 0 {
        16
    } else {
        u32::from_ne_bytes(payload[0..4].try_into().ok()?) as usize
    };
    let mut attrs = payload.get(echoed.next_multiple_of(4)..)?;
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &attrs[4..len];
            let text = text.split(|&b| b == 0).next().unwrap_or(text);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    None
}

/// Enlarges a socket's send buffer, beyond net.core.wmem_max when we are allowed to
/// (SO_SNDBUFFORCE needs CAP_NET_ADMIN, which the agent has).
fn set_sndbuf(fd: i32, size: usize) {
    set_socket_buffer(fd, [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF], size, "send");
}

/// Enlarges a socket's receive buffer, beyond net.core.rmem_max when we are allowed to.
fn set_rcvbuf(fd: i32, size: usize) {
    set_socket_buffer(fd, [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF], size, "receive");
}

fn set_socket_buffer(fd: i32, options: [libc::c_int; 2], size: usize, which: &str) {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    for opt in options {
        // SAFETY: plain setsockopt on a socket we own, with a c_int option value.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
    tracing::debug!(
        "cannot enlarge a netlink socket's {which} buffer: {}",
        std::io::Error::last_os_error()
    );
}

/// The ifindex of the interface called `name` (in the calling thread's network namespace).
pub fn ifindex_by_name(name: &str) -> anyhow::Result<u32> {
    let cname = CString::new(name).with_context(|| format!("invalid interface name {name:?}"))?;
    // SAFETY: cname is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("no interface called {name:?}"));
    }
    Ok(index)
}

/// The name of interface `ifindex`, if it exists.
pub fn ifname_by_index(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf is IF_NAMESIZE bytes long, as if_indextoname requires.
    let ptr = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into buf.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_to_string(mac: &Mac) -> String {
    let [a, b, c, d, e, f] = *mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}
