//! Receiving on veth peers. A frame that XDP redirects into a veth is queued to the peer end's
//! NAPI instance, which exists only while the peer runs an XDP program or has GRO on; without
//! one the frame is dropped (counted as a TX drop of the veth). So for every attached veth the
//! agent turns GRO on at the peer end, which usually lives in another network namespace (a
//! container, a VM's tap side, a lab host): the peer's namespace is found by its namespace id,
//! and a short-lived thread enters it to make the ethtool call.
//!
//! ```text
//!   this namespace                     peer's namespace
//!   veth0 (XDP attached) ── link ───> eth0: GRO on (ETHTOOL_SGRO), or XDP_REDIRECT drops
//!   IFLA_LINK = peer ifindex, IFLA_LINK_NETNSID = id of the peer's namespace, as seen from here
//! ```

use std::{
    collections::HashSet,
    fs::File,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::PathBuf,
};

use anyhow::{Context, bail};
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST};
use rtnetlink::packet_route::{
    RouteNetlinkMessage,
    link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage},
    nsid::{NsidAttribute, NsidMessage},
};

use super::Netlink;

/// What [`Netlink::enable_veth_peer_gro`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerGro {
    /// Not a veth: nothing to do.
    NotVeth,
    /// The peer already had GRO on.
    AlreadyOn { peer: String },
    /// GRO turned on at the peer.
    Enabled { peer: String },
}

/// Where a veth's peer is.
struct VethPeer {
    ifindex: u32,
    /// The peer's namespace id as this namespace knows it; `None`: the peer is here.
    netns_id: Option<i32>,
}

impl Netlink {
    /// Turns GRO on at the peer end of veth `ifindex` (see the module documentation).
    pub async fn enable_veth_peer_gro(&self, ifindex: u32) -> anyhow::Result<PeerGro> {
        let Some(peer) = self.veth_peer(ifindex).await? else {
            return Ok(PeerGro::NotVeth);
        };
        let namespace = match peer.netns_id {
            None => None,
            Some(id) => Some(self.namespace_by_id(id).await?.with_context(|| {
                format!("the namespace of the peer (id {id}) has no name or process to enter")
            })?),
        };
        let peer_ifindex = peer.ifindex;
        tokio::task::spawn_blocking(move || in_namespace(namespace, move || set_gro(peer_ifindex)))
            .await
            .context("the ethtool thread panicked")?
    }

    async fn veth_peer(&self, ifindex: u32) -> anyhow::Result<Option<VethPeer>> {
        let mut request = LinkMessage::default();
        request.header.index = ifindex;
        let answer = self
            .request(RouteNetlinkMessage::GetLink(request), NLM_F_REQUEST)
            .await
            .with_context(|| format!("reading link {ifindex}"))?;
        let Some(RouteNetlinkMessage::NewLink(link)) = answer.into_iter().next() else {
            bail!("no answer for link {ifindex}");
        };
        let mut is_veth = false;
        let (mut peer, mut netns_id) = (None, None);
        for attribute in &link.attributes {
            match attribute {
                LinkAttribute::LinkInfo(infos) => {
                    is_veth = infos
                        .iter()
                        .any(|info| matches!(info, LinkInfo::Kind(InfoKind::Veth)));
                }
                LinkAttribute::Link(index) => peer = Some(*index),
                LinkAttribute::LinkNetNsId(id) => netns_id = Some(*id),
                _ => {}
            }
        }
        Ok(match (is_veth, peer) {
            (true, Some(ifindex)) if ifindex != 0 => Some(VethPeer { ifindex, netns_id }),
            _ => None,
        })
    }

    /// Opens the namespace this namespace calls `id`: a named one (`/run/netns`) or one a
    /// process lives in (`/proc/PID/ns/net`), asking the kernel each candidate's id.
    async fn namespace_by_id(&self, id: i32) -> anyhow::Result<Option<File>> {
        let mut seen = HashSet::new();
        for path in namespace_candidates() {
            let Ok(file) = File::open(&path) else {
                continue; // gone meanwhile, or not ours to open
            };
            let Ok(meta) = file.metadata() else { continue };
            // Many processes share a namespace: ask once per namespace (inode).
            if !seen.insert(std::os::unix::fs::MetadataExt::ino(&meta)) {
                continue;
            }
            if self.namespace_id(&file).await == Some(id) {
                return Ok(Some(file));
            }
        }
        Ok(None)
    }

    /// RTM_GETNSID: the id this namespace has for the namespace behind `file`, if any.
    async fn namespace_id(&self, file: &File) -> Option<i32> {
        let mut request = NsidMessage::default();
        request
            .attributes
            .push(NsidAttribute::Fd(file.as_raw_fd() as u32));
        let answer = self
            .request(
                RouteNetlinkMessage::GetNsId(request),
                NLM_F_REQUEST | NLM_F_ACK,
            )
            .await
            .ok()?;
        answer.into_iter().find_map(|message| match message {
            RouteNetlinkMessage::NewNsId(message) => {
                message
                    .attributes
                    .iter()
                    .find_map(|attribute| match attribute {
                        NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                        _ => None,
                    })
            }
            _ => None,
        })
    }
}

/// Named namespaces first (cheap, and what labs use), then every process's.
fn namespace_candidates() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    paths.extend(
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
            .map(|entry| entry.path().join("ns/net")),
    );
    paths
}

/// Runs `work` on a fresh thread inside `namespace` (or here, for `None`). A thread of its
/// own: `setns` changes the calling thread's namespace for good.
fn in_namespace<T: Send + 'static>(
    namespace: Option<File>,
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    std::thread::spawn(move || {
        if let Some(namespace) = namespace {
            // SAFETY: setns on a valid namespace fd, affecting only this thread.
            if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error()).context("entering the namespace");
            }
        }
        work()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_SGRO: u32 = 0x2c;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the `ifr_data` member.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

/// Turns GRO on for interface `ifindex` of the calling thread's namespace.
fn set_gro(ifindex: u32) -> anyhow::Result<PeerGro> {
    let name = super::ifname_by_index(ifindex)
        .with_context(|| format!("no interface {ifindex} in the peer's namespace"))?;
    // SAFETY: a plain datagram socket, owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket for ethtool");
    }
    // SAFETY: fd is a fresh socket nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let ethtool = |cmd: u32, data: u32| -> std::io::Result<u32> {
        let mut value = EthtoolValue { cmd, data };
        let mut request = IfreqData {
            name: [0; libc::IFNAMSIZ],
            data: &mut value,
            _pad: [0; 16],
        };
        for (slot, byte) in request
            .name
            .iter_mut()
            .zip(name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *slot = byte as libc::c_char;
        }
        // SAFETY: SIOCETHTOOL with an ifreq naming the interface and pointing at a live
        // ethtool_value, as ethtool(8) does.
        if unsafe { libc::ioctl(socket.as_raw_fd(), SIOCETHTOOL, &mut request) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(value.data)
    };
    let on = ethtool(ETHTOOL_GGRO, 0).with_context(|| format!("reading GRO of {name}"))?;
    if on != 0 {
        return Ok(PeerGro::AlreadyOn { peer: name });
    }
    ethtool(ETHTOOL_SGRO, 1).with_context(|| format!("turning GRO on for {name}"))?;
    Ok(PeerGro::Enabled { peer: name })
}
