//! TCP Authentication Option (RFC 5925) for BGP sessions, where the kernel has it (Linux 6.7+
//! built with CONFIG_TCP_AO): a neighbor's Master Key Tuple from `tcp_ao = { ... }` and the
//! socket options that install it. As for TCP MD5 (`auth.rs`), the listening socket carries a
//! key per neighbor address (and per dynamic range, as a prefix) and an outgoing socket gets
//! its neighbor's key before it connects. The secret never appears in logs, errors or `show`.
//!
//! ```toml
//! tcp_ao = { key_id = 1, algorithm = "hmac(sha256)", key_file = "/etc/hostrouter/tor1.ao" }
//! # or send_id / recv_id instead of key_id, and key = "..." instead of key_file
//! ```

use std::{
    net::IpAddr,
    os::fd::{AsRawFd, BorrowedFd},
};

use super::{
    auth::{Family, KeyScope, link_local_prefix},
    config::{BgpSetup, DynamicSource, PeerAddress, SessionSecurity},
    policy::PolicyError,
};

pub mod key;

pub use key::{AoAlgorithm, AoKey, MAX_KEY_LEN, TcpAoConfig};

/// MAC length, octets: the -96 of RFC 5926's HMAC-SHA-1-96 and AES-128-CMAC-96 (and the
/// kernel's default, used for hmac(sha256) as well).
const MAC_LEN: u8 = 12;

// include/uapi/linux/tcp.h (Linux 6.7); the installed libc headers predate them.
const TCP_AO_ADD_KEY: libc::c_int = 38;
const TCP_AO_DEL_KEY: libc::c_int = 39;

// struct tcp_ao_add (include/uapi/linux/tcp.h, Linux 6.7+). The two one-bit fields
// set_current and set_rnext share a u32 with 30 reserved bits: `flags` below.
#[repr(C, align(8))]
pub(super) struct TcpAoAdd {
    addr: libc::sockaddr_storage,
    alg_name: [u8; 64],
    ifindex: i32,
    flags: u32,
    reserved2: u16,
    prefix: u8,
    sndid: u8,
    rcvid: u8,
    maclen: u8,
    keyflags: u8,
    keylen: u8,
    key: [u8; MAX_KEY_LEN],
}

// struct tcp_ao_del: set_current, set_rnext and del_async in `flags`.
#[repr(C, align(8))]
pub(super) struct TcpAoDel {
    addr: libc::sockaddr_storage,
    ifindex: i32,
    flags: u32,
    reserved2: u16,
    prefix: u8,
    sndid: u8,
    rcvid: u8,
    current_key: u8,
    rnext: u8,
    keyflags: u8,
}

/// set_current and set_rnext: bit fields are allocated from the low bit on little-endian
/// targets, from the high bit on big-endian ones.
fn current_and_rnext_bits() -> u32 {
    if cfg!(target_endian = "little") {
        0b11
    } else {
        0b11 << 30
    }
}

/// The address and prefix length of a key for `scope` on a socket of `family`: a v4 peer on
/// a (dual-stack) v6 socket is mapped, with its v4 prefix length (as the kernel wants).
fn key_address(family: Family, scope: KeyScope) -> std::io::Result<(libc::sockaddr_storage, u8)> {
    let (address, prefix) = match scope {
        KeyScope::Address(IpAddr::V4(v4)) => (IpAddr::V4(v4), 32),
        KeyScope::Address(IpAddr::V6(v6)) => (IpAddr::V6(v6), 128),
        KeyScope::Prefix(net) => (net.network(), net.prefix_len()),
    };
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
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
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
        }
        (Family::V4, IpAddr::V6(_)) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an IPv6 key on an IPv4 socket",
            ));
        }
        (Family::V6, address) => {
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
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
        }
    }
    Ok((storage, prefix))
}

/// The TCP_AO_ADD_KEY argument. `current`: make it the key we send with and ask the peer
/// for (an outgoing socket); a listening socket has no current key (its connections take the
/// one their peer's SYN asks for).
pub(super) fn encode_add(
    family: Family,
    scope: KeyScope,
    key: &AoKey,
    current: bool,
) -> std::io::Result<TcpAoAdd> {
    let (addr, prefix) = key_address(family, scope)?;
    let mut alg_name = [0u8; 64];
    let name = key.algorithm.kernel_name().as_bytes();
    alg_name[..name.len()].copy_from_slice(name);
    let mut secret = [0u8; MAX_KEY_LEN];
    secret[..key.secret.len()].copy_from_slice(&key.secret);
    Ok(TcpAoAdd {
        addr,
        alg_name,
        ifindex: 0,
        flags: if current { current_and_rnext_bits() } else { 0 },
        reserved2: 0,
        prefix,
        sndid: key.send_id,
        rcvid: key.recv_id,
        maclen: MAC_LEN,
        keyflags: 0,
        keylen: key.secret.len() as u8,
        key: secret,
    })
}

/// The TCP_AO_DEL_KEY argument: the kernel finds the key by address, prefix and both IDs.
pub(super) fn encode_del(
    family: Family,
    scope: KeyScope,
    key: &AoKey,
) -> std::io::Result<TcpAoDel> {
    let (addr, prefix) = key_address(family, scope)?;
    Ok(TcpAoDel {
        addr,
        ifindex: 0,
        flags: 0,
        reserved2: 0,
        prefix,
        sndid: key.send_id,
        rcvid: key.recv_id,
        current_key: 0,
        rnext: 0,
        keyflags: 0,
    })
}

fn setsockopt<T>(socket: BorrowedFd<'_>, option: libc::c_int, value: &T) -> std::io::Result<()> {
    // SAFETY: value is a valid, initialised T that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            option,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The kernel's errors in words: which of them mean "no TCP-AO here".
fn explain(err: std::io::Error) -> std::io::Error {
    let why = match err.raw_os_error() {
        Some(libc::ENOPROTOOPT) => {
            "this kernel has no TCP-AO (it needs Linux 6.7+ built with CONFIG_TCP_AO)"
        }
        Some(libc::ENOENT) => "the kernel lacks this MAC algorithm",
        Some(libc::EKEYREJECTED) => "a TCP MD5 key covers the same peer",
        Some(libc::EEXIST) => "another TCP-AO key with this send_id or recv_id covers the peer",
        _ => return err,
    };
    std::io::Error::new(err.kind(), format!("{why}: {err}"))
}

/// Installs `key` for `scope` on a socket of `family` (see [`encode_add`] for `current`).
pub fn add_key(
    socket: BorrowedFd<'_>,
    family: Family,
    scope: KeyScope,
    key: &AoKey,
    current: bool,
) -> std::io::Result<()> {
    setsockopt(
        socket,
        TCP_AO_ADD_KEY,
        &encode_add(family, scope, key, current)?,
    )
    .map_err(explain)
}

/// Removes `key` for `scope`; a key that is not there is removed already.
pub fn del_key(
    socket: BorrowedFd<'_>,
    family: Family,
    scope: KeyScope,
    key: &AoKey,
) -> std::io::Result<()> {
    match setsockopt(socket, TCP_AO_DEL_KEY, &encode_del(family, scope, key)?) {
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other.map_err(explain),
    }
}

/// The TCP-AO keys a listening socket carries, by the remote addresses they cover.
pub type ListenerAoKeys = std::collections::BTreeMap<KeyScope, AoKey>;

/// Brings a listening (AF_INET6, dual-stack) socket from the `old` keys to the `new`: keys
/// gone or changed are removed first (the kernel refuses a second key with the same IDs for a
/// peer), then new and changed ones installed. Failures are logged by scope (never the key)
/// and the rest still applied; returns how many failed.
pub fn sync_listener(socket: BorrowedFd<'_>, old: &ListenerAoKeys, new: &ListenerAoKeys) -> usize {
    let mut failed = 0;
    for (scope, key) in old
        .iter()
        .filter(|(scope, key)| new.get(scope) != Some(key))
    {
        if let Err(err) = del_key(socket, Family::V6, *scope, key) {
            tracing::error!(peer = %scope, "TCP-AO key not removed from the BGP listener: {err}");
            failed += 1;
        }
    }
    for (scope, key) in new
        .iter()
        .filter(|(scope, key)| old.get(scope) != Some(key))
    {
        if let Err(err) = add_key(socket, Family::V6, *scope, key, false) {
            tracing::error!(peer = %scope, "TCP-AO key not set on the BGP listener: {err}");
            failed += 1;
        }
    }
    failed
}

/// Each neighbor and dynamic range with its configuration key, the addresses its connections
/// come from (fe80::/10 for link-local ones: the kernel scopes keys by VRF, not by interface)
/// and its protection.
fn scopes(setup: &BgpSetup) -> Vec<(String, KeyScope, &SessionSecurity)> {
    let neighbors = setup.neighbors.iter().enumerate().map(|(i, neighbor)| {
        let scope = match &neighbor.address {
            PeerAddress::Ip(ip) => KeyScope::Address(*ip),
            PeerAddress::Interface(_) => KeyScope::Prefix(link_local_prefix()),
        };
        (format!("bgp.neighbor[{i}]"), scope, &neighbor.security)
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
                &dynamic.template.security,
            )
        });
    neighbors.chain(dynamic).collect()
}

/// Two key scopes cover a common address.
fn overlap(a: KeyScope, b: KeyScope) -> bool {
    let net = |scope| match scope {
        KeyScope::Address(ip) => ipnet::IpNet::from(ip),
        KeyScope::Prefix(net) => net,
    };
    let (a, b) = (net(a), net(b));
    a.contains(&b) || b.contains(&a)
}

/// The TCP-AO keys the listening socket needs for a configuration. Two neighbors at the same
/// addresses (link-local peers on different interfaces) with different keys, or one with a
/// key and one without, are an error naming the second one's `tcp_ao`; so is a TCP-AO key
/// whose addresses overlap a TCP MD5 key's (a neighbor inside a dynamic range, say): the
/// kernel refuses an AO key for a peer an MD5 key covers.
pub fn listener_keys(setup: &BgpSetup) -> Result<ListenerAoKeys, PolicyError> {
    let mut keys = ListenerAoKeys::new();
    let mut unkeyed = std::collections::BTreeSet::new();
    let scopes = scopes(setup);
    for (key, scope, security) in &scopes {
        let (key, scope) = (key, *scope);
        let clash = match &security.ao {
            Some(ao) => {
                unkeyed.contains(&scope) || keys.insert(scope, ao.clone()).is_some_and(|k| k != *ao)
            }
            None => {
                unkeyed.insert(scope);
                keys.contains_key(&scope)
            }
        };
        if clash {
            return Err(PolicyError {
                key: format!("{key}.tcp_ao"),
                reason: format!(
                    "another neighbor at {scope} has a different TCP-AO key (or none): link-local \
                     peers on all interfaces share one key"
                ),
            });
        }
    }
    for (key, scope, security) in &scopes {
        if security.ao.is_none() {
            continue;
        }
        let md5 = scopes.iter().find(|(_, other, other_security)| {
            other_security.md5.is_some() && overlap(*scope, *other)
        });
        if let Some((md5_key, md5_scope, _)) = md5 {
            return Err(PolicyError {
                key: format!("{key}.tcp_ao"),
                reason: format!(
                    "{scope} overlaps {md5_scope} of {md5_key}, which has a TCP MD5 key: the \
                     kernel takes only one kind of key for a peer"
                ),
            });
        }
    }
    Ok(keys)
}

/// Whether the kernel can do what the configuration asks: each TCP-AO key is tried on a
/// scratch socket. The error names the first neighbor it fails for, and why (no TCP-AO in this
/// kernel, or not this algorithm); it is meant for start-up and reload, before any key is set.
pub fn check_kernel(setup: &BgpSetup) -> Result<(), PolicyError> {
    let mut tried = Vec::new();
    for (key, scope, security) in scopes(setup) {
        let Some(ao) = &security.ao else { continue };
        if tried.contains(&ao.algorithm) {
            continue;
        }
        tried.push(ao.algorithm);
        let probe = probe(ao).map_err(|err| PolicyError {
            key: format!("{key}.tcp_ao"),
            reason: format!("neighbor {scope}: {err}"),
        });
        probe?;
    }
    Ok(())
}

/// Installs `key` on a fresh, unconnected socket (closed at once).
fn probe(key: &AoKey) -> std::io::Result<()> {
    let socket = scratch_v6_socket()?;
    use std::os::fd::AsFd;
    add_key(
        socket.as_fd(),
        Family::V6,
        KeyScope::Address(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
        key,
        false,
    )
}

/// A plain AF_INET6 TCP socket (no tokio: this runs outside any runtime too).
fn scratch_v6_socket() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: socket has no preconditions; a non-negative result is a new descriptor we own.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests;
