//! TCP MD5 signatures for BGP sessions (RFC 2385): the keys from the configuration
//! (`password` or `password_file`) and the socket options that make the kernel sign and check
//! segments. The listening socket carries a key per neighbor address (and per dynamic range,
//! as a prefix); an outgoing socket gets its neighbor's key before it connects. A key never
//! appears in logs, errors or `show`: [`Md5Key`] prints as `<redacted>`.

use std::{
    net::IpAddr,
    os::fd::{AsRawFd, BorrowedFd},
};

use super::{
    config::{BgpSetup, DynamicSource, PeerAddress},
    policy::PolicyError,
};

pub mod key;

pub use key::{KeyScope, MAX_KEY_LEN, Md5Key, link_local_prefix};

// struct tcp_md5sig (include/uapi/linux/tcp.h); libc does not define it.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_KEY_LEN],
}

const TCP_MD5SIG_FLAG_PREFIX: u8 = 1;

/// Where the socket is: an AF_INET6 (dual-stack) socket sees a v4 peer as ::ffff:a.b.c.d.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// Installs (`Some`) or removes (`None`) the key for `scope` on a socket of `family`.
pub fn set_key(
    socket: BorrowedFd<'_>,
    family: Family,
    scope: KeyScope,
    key: Option<&Md5Key>,
) -> std::io::Result<()> {
    // SAFETY: all-zero is a valid tcp_md5sig.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let (address, prefix) = match scope {
        KeyScope::Address(ip) => (ip, None),
        KeyScope::Prefix(net) => (net.network(), Some(net.prefix_len())),
    };
    match (family, address) {
        (Family::V4, IpAddr::V4(v4)) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(v4).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write(&mut sig.addr as *mut _ as *mut libc::sockaddr_in, sin) };
        }
        (Family::V4, IpAddr::V6(_)) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an IPv6 key on an IPv4 socket",
            ));
        }
        (Family::V6, address) => {
            // A v4 address on a v6 socket: mapped, and the kernel takes the v4 prefix length.
            let v6 = match address {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in6 and suitably aligned.
            unsafe { std::ptr::write(&mut sig.addr as *mut _ as *mut libc::sockaddr_in6, sin6) };
        }
    }
    if let Some(prefix) = prefix {
        sig.flags = TCP_MD5SIG_FLAG_PREFIX;
        sig.prefix_len = prefix;
    }
    if let Some(key) = key {
        let bytes = key.bytes();
        sig.key[..bytes.len()].copy_from_slice(bytes);
        sig.key_len = bytes.len() as u16;
    }
    let option = if prefix.is_some() {
        libc::TCP_MD5SIG_EXT
    } else {
        libc::TCP_MD5SIG
    };
    // SAFETY: sig is a valid tcp_md5sig that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            option,
            &sig as *const _ as *const libc::c_void,
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    // Removing a key that is not there is done.
    if key.is_none() && err.raw_os_error() == Some(libc::ENOENT) {
        return Ok(());
    }
    Err(err)
}

/// The keys a listening socket carries, by the remote addresses they cover.
pub type ListenerKeys = std::collections::BTreeMap<KeyScope, Md5Key>;

/// Brings a listening (AF_INET6, dual-stack) socket from the `old` keys to the `new`: keys
/// gone are removed, new and changed ones installed. Failures are logged by scope (never the
/// key) and the rest still applied; returns how many failed.
pub fn sync_listener(socket: BorrowedFd<'_>, old: &ListenerKeys, new: &ListenerKeys) -> usize {
    let mut failed = 0;
    for scope in old.keys().filter(|scope| !new.contains_key(scope)) {
        if let Err(err) = set_key(socket, Family::V6, *scope, None) {
            tracing::error!(peer = %scope, "TCP MD5 key not removed from the BGP listener: {err}");
            failed += 1;
        }
    }
    for (scope, key) in new {
        if old.get(scope) == Some(key) {
            continue;
        }
        if let Err(err) = set_key(socket, Family::V6, *scope, Some(key)) {
            tracing::error!(peer = %scope, "TCP MD5 key not set on the BGP listener: {err}");
            failed += 1;
        }
    }
    failed
}

/// The keys the listening socket needs for a configuration: each neighbor's address, each
/// dynamic range as a prefix, fe80::/10 for unnumbered neighbors and interface ranges. Two
/// keys for the same addresses are an error naming the second neighbor's key (the kernel
/// cannot tell link-local peers on different interfaces apart).
pub fn listener_keys(setup: &BgpSetup) -> Result<ListenerKeys, PolicyError> {
    let mut keys = ListenerKeys::new();
    let neighbors = setup.neighbors.iter().enumerate().map(|(i, neighbor)| {
        let scope = match &neighbor.address {
            PeerAddress::Ip(ip) => KeyScope::Address(*ip),
            PeerAddress::Interface(_) => KeyScope::Prefix(link_local_prefix()),
        };
        (format!("bgp.neighbor[{i}]"), scope, &neighbor.security.md5)
    });
    let dynamic = setup
        .dynamic_neighbors
        .iter()
        .enumerate()
        .map(|(i, dynamic)| {
            let scope = match &dynamic.source {
                DynamicSource::Range(range) => KeyScope::Prefix(*range),
                DynamicSource::Interface(_) => KeyScope::Prefix(link_local_prefix()),
            };
            (
                format!("bgp.dynamic_neighbor[{i}]"),
                scope,
                &dynamic.template.security.md5,
            )
        });
    let mut unkeyed = std::collections::BTreeSet::new();
    for (key, scope, md5) in neighbors.chain(dynamic) {
        let clash = match md5 {
            Some(md5) => {
                unkeyed.contains(&scope)
                    || keys.insert(scope, md5.clone()).is_some_and(|k| k != *md5)
            }
            None => {
                unkeyed.insert(scope);
                keys.contains_key(&scope)
            }
        };
        if clash {
            return Err(PolicyError {
                key: format!("{key}.password"),
                reason: format!(
                    "another neighbor at {scope} has a different TCP MD5 key (or none): link-local \
                     peers on all interfaces share one key"
                ),
            });
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests;
