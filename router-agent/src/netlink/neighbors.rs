//! Neighbors (ARP / ND): RTM_NEWNEIGH / RTM_DELNEIGH -> [`NeighborInfo`], and resolution of
//! nexthops the kernel has no entry for ([`Netlink::resolve`]).

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket},
    os::fd::AsRawFd,
};

use anyhow::Context as _;
use rtnetlink::{
    packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST},
    packet_route::{
        AddressFamily, RouteNetlinkMessage,
        neighbour::{
            NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourFlags,
            NeighbourMessage, NeighbourState,
        },
        route::RouteProtocol,
    },
};

use super::{Mac, NeighborInfo, Netlink, NetlinkError, RTPROT_HOSTROUTER};

// NUD_* bits (include/uapi/linux/neighbour.h). The state is a bit mask in the kernel; the
// crate maps single bits to named variants and anything else to `Other`.
const NUD_REACHABLE: u16 = 0x02;
const NUD_STALE: u16 = 0x04;
const NUD_DELAY: u16 = 0x08;
const NUD_PROBE: u16 = 0x10;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;
/// The kernel's NUD_VALID: states in which the entry's MAC may be used to send.
const NUD_VALID: u16 =
    NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY;

/// Whether XDP may forward with the entry's MAC: in every state the kernel itself sends on
/// (NUD_VALID), STALE included.
///
/// The kernel also *confirms* a STALE entry it sends on: the send moves it to DELAY, then PROBE
/// (unicast ARP/NS), then REACHABLE or FAILED. Traffic XDP forwards never passes through the
/// kernel, so the agent asks for that confirmation itself when an entry turns STALE
/// ([`needs_confirmation`], `Netlink::confirm_neighbor`): a host that left goes FAILED as it
/// would under kernel forwarding, and XDP stops sending to it. (Handing STALE entries to the
/// kernel instead cost ~5 s of kernel forwarding to an active host every reachable time: the
/// kernel does not report STALE -> DELAY, only the REACHABLE at the end.)
pub(super) fn nud_usable(state: NeighbourState) -> bool {
    u16::from(state) & NUD_VALID != 0
}

/// An entry the kernel will not confirm by itself: STALE and not managed (the kernel
/// re-probes managed entries, the agent's gateway nexthops, on its own).
pub(super) fn needs_confirmation(msg: &NeighbourMessage) -> bool {
    u16::from(msg.header.state) & NUD_STALE != 0 && !is_managed(msg)
}

fn is_managed(msg: &NeighbourMessage) -> bool {
    msg.attributes.iter().any(|attr| {
        matches!(attr, NeighbourAttribute::ExtFlags(f) if f.contains(NeighbourExtFlags::Managed))
    })
}

/// (ifindex, address) of an IPv4/IPv6 neighbor message; `None` for anything else (bridge FDB
/// entries share the RTNLGRP_NEIGH group, proxy entries are not neighbors).
pub(super) fn neighbor_key(msg: &NeighbourMessage) -> Option<(u32, IpAddr)> {
    if !matches!(
        msg.header.family,
        AddressFamily::Inet | AddressFamily::Inet6
    ) || msg.header.flags.contains(NeighbourFlags::Proxy)
    {
        return None;
    }
    let addr = msg.attributes.iter().find_map(|attr| match attr {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    });
    match addr {
        Some(addr) => Some((msg.header.ifindex, addr)),
        None => {
            tracing::debug!(
                "skipping neighbor message without IP destination: {:?}",
                msg.header
            );
            None
        }
    }
}

/// RTM_NEWNEIGH -> [`NeighborInfo`], the MAC set only when the entry is usable
/// ([`nud_usable`]).
pub(super) fn parse_neighbor(msg: &NeighbourMessage) -> Option<NeighborInfo> {
    let (ifindex, addr) = neighbor_key(msg)?;
    let lladdr = msg.attributes.iter().find_map(|attr| match attr {
        NeighbourAttribute::LinkLayerAddress(l) => Some(l.as_slice()),
        _ => None,
    });
    let mac = match lladdr.map(<Mac>::try_from) {
        Some(Ok(mac)) if nud_usable(msg.header.state) => Some(mac),
        _ => None,
    };
    Some(NeighborInfo { ifindex, addr, mac })
}

/// UDP discard port: where the fallback probe is sent. Nobody is expected to listen there; the
/// point is the ARP/ND resolution the kernel performs to send it.
const DISCARD_PORT: u16 = 9;

impl Netlink {
    /// Makes the kernel resolve `addr` on interface `ifindex` (a nexthop it may have no
    /// neighbor entry for). The result arrives as [`super::KernelEvent::Neighbor`] events.
    ///
    /// Preferred: create a *managed* neighbor entry (NTF_EXT_MANAGED, kernel >= 5.16, what
    /// `ip neigh add ADDR dev DEV managed` does): the kernel resolves it at once and keeps it
    /// resolved (re-probing even with no traffic, which matters because XDP-forwarded traffic
    /// never confirms kernel neighbor entries), and never garbage-collects it. The entry is
    /// tagged with protocol [`RTPROT_HOSTROUTER`] (`ip neigh show proto 201`).
    /// * If an entry already exists, PERMANENT/NOARP ones are left alone (the kernel would
    ///   otherwise turn them into dynamic ones); others are switched to managed.
    /// * NTF_USE is set as well: kernels older than 5.16 ignore the managed flag but still
    ///   start a resolution.
    /// * If the kernel refuses the request, falls back to sending a zero-length UDP datagram to
    ///   `addr` port 9 through `ifindex`, which makes the kernel resolve `addr` once.
    pub async fn resolve(&self, ifindex: u32, addr: IpAddr) -> anyhow::Result<()> {
        let refused = match self.add_managed_neighbor(ifindex, addr, true).await {
            Ok(()) => return Ok(()),
            Err(NetlinkError::Kernel {
                errno: libc::EEXIST,
                ..
            }) => match self.convert_to_managed(ifindex, addr).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            },
            Err(e) => e,
        };
        tracing::debug!(
            "managed neighbor {addr} on ifindex {ifindex} refused ({refused}); probing with UDP"
        );
        udp_probe(ifindex, addr)
            .with_context(|| format!("cannot make the kernel resolve {addr} on ifindex {ifindex}"))
    }

    /// Asks the kernel to confirm an existing STALE entry, as its own send on it would
    /// (RTM_NEWNEIGH with NTF_USE: STALE -> DELAY -> PROBE -> REACHABLE or FAILED). An entry
    /// that is gone meanwhile is not created.
    pub async fn confirm_neighbor(&self, ifindex: u32, addr: IpAddr) -> Result<(), NetlinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.ifindex = ifindex;
        msg.header.state = NeighbourState::Stale;
        msg.header.flags = NeighbourFlags::Use;
        msg.attributes = vec![NeighbourAttribute::Destination(addr.into())];
        self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .await?;
        Ok(())
    }

    /// RTM_NEWNEIGH NUD_NONE + NTF_USE + NTF_EXT_MANAGED; with `exclusive`, fails with EEXIST
    /// rather than touching an existing entry.
    async fn add_managed_neighbor(
        &self,
        ifindex: u32,
        addr: IpAddr,
        exclusive: bool,
    ) -> Result<(), NetlinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.ifindex = ifindex;
        // NUD_NONE: managed entries may not be PERMANENT; the kernel moves the entry to
        // INCOMPLETE when it starts resolving.
        msg.header.state = NeighbourState::None;
        msg.header.flags = NeighbourFlags::Use;
        msg.attributes = vec![
            NeighbourAttribute::Destination(addr.into()),
            NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed),
            NeighbourAttribute::Protocol(RouteProtocol::from(RTPROT_HOSTROUTER)),
        ];
        let mut flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
        if exclusive {
            flags |= NLM_F_EXCL;
        }
        self.request(RouteNetlinkMessage::NewNeighbour(msg), flags)
            .await?;
        Ok(())
    }

    /// An entry exists for (ifindex, addr): make it managed unless it is static.
    async fn convert_to_managed(&self, ifindex: u32, addr: IpAddr) -> Result<(), NetlinkError> {
        let Some(existing) = self.get_neighbor(ifindex, addr).await? else {
            // Deleted in the meantime: try creating it again.
            return self.add_managed_neighbor(ifindex, addr, true).await;
        };
        let state = u16::from(existing.header.state);
        let managed = existing.attributes.iter().any(|attr| {
            matches!(attr, NeighbourAttribute::ExtFlags(f) if f.contains(NeighbourExtFlags::Managed))
        });
        if state & (NUD_PERMANENT | NUD_NOARP) != 0 {
            return Ok(()); // static entry: usable as it is, and not ours to change
        }
        if managed && state & NUD_VALID != 0 {
            return Ok(()); // the kernel already keeps it resolved
        }
        // Not exclusive: updates the entry in place (keeps its state and MAC, adds the managed
        // flag) and kicks a resolution (NTF_USE).
        self.add_managed_neighbor(ifindex, addr, false).await
    }

    /// RTM_GETNEIGH for one entry (kernel >= 5.0); `None` if there is none.
    async fn get_neighbor(
        &self,
        ifindex: u32,
        addr: IpAddr,
    ) -> Result<Option<NeighbourMessage>, NetlinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.ifindex = ifindex;
        msg.attributes = vec![NeighbourAttribute::Destination(addr.into())];
        match self
            .request(RouteNetlinkMessage::GetNeighbour(msg), NLM_F_REQUEST)
            .await
        {
            Ok(answer) => Ok(answer.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => Some(n),
                _ => None,
            })),
            Err(NetlinkError::Kernel {
                errno: libc::ENOENT,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Sends a zero-length UDP datagram to `addr`:9 bound to interface `ifindex`: the kernel has
/// to resolve `addr` (ARP/ND) to send it. If `addr` is not on-link on that interface, the
/// kernel resolves the gateway it routes `addr` through instead (or fails with ENETUNREACH).
pub(super) fn udp_probe(ifindex: u32, addr: IpAddr) -> io::Result<()> {
    let (bind, dest): (SocketAddr, SocketAddr) = match addr {
        IpAddr::V4(a) => ((Ipv4Addr::UNSPECIFIED, 0).into(), (a, DISCARD_PORT).into()),
        IpAddr::V6(a) => {
            // Link-local destinations need the zone; harmless for others.
            let scope = if a.is_unicast_link_local() {
                ifindex
            } else {
                0
            };
            (
                (Ipv6Addr::UNSPECIFIED, 0).into(),
                SocketAddrV6::new(a, DISCARD_PORT, 0, scope).into(),
            )
        }
    };
    let socket = UdpSocket::bind(bind)?;
    bind_to_interface(&socket, ifindex)?;
    socket.set_nonblocking(true)?;
    socket.send_to(&[], dest)?;
    Ok(())
}

/// SO_BINDTOIFINDEX (kernel >= 5.0), else SO_BINDTODEVICE with the interface's name.
fn bind_to_interface(socket: &UdpSocket, ifindex: u32) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    let index = libc::c_int::try_from(ifindex).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: setsockopt with a c_int option value on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTOIFINDEX,
            (&index as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOPROTOOPT) {
        return Err(err);
    }
    let name = super::ifname_by_index(ifindex).ok_or(io::ErrorKind::NotFound)?;
    // SAFETY: SO_BINDTODEVICE takes the name bytes and their length.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
