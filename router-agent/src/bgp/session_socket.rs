//! The TCP sockets of BGP sessions with their protection (`auth.rs`: TCP MD5, `tcp_ao.rs`:
//! TCP-AO, `ttl_security.rs`: GTSM): an outgoing socket gets them before it connects, so its SYN
//! is already signed and sent with TTL 255; an accepted one (which inherited the listener's keys
//! and TTL) gets its neighbor's GTSM setting.

use std::{net::SocketAddr, os::fd::AsFd};

use tokio::net::{TcpSocket, TcpStream};

use super::{
    auth::{self, Family, KeyScope},
    config::SessionSecurity,
    tcp_ao, ttl_security,
};

/// Connects to `remote` with the neighbor's TCP MD5 or TCP-AO key and GTSM set first. Errors
/// say which option failed, never the key.
pub async fn connect(remote: SocketAddr, security: &SessionSecurity) -> std::io::Result<TcpStream> {
    let (socket, family) = if remote.is_ipv6() {
        (TcpSocket::new_v6()?, Family::V6)
    } else {
        (TcpSocket::new_v4()?, Family::V4)
    };
    if let Some(key) = &security.md5 {
        auth::set_key(
            socket.as_fd(),
            family,
            KeyScope::Address(remote.ip()),
            Some(key),
        )
        .map_err(|err| context(err, "setting the TCP MD5 key"))?;
    }
    if let Some(key) = &security.ao {
        tcp_ao::add_key(
            socket.as_fd(),
            family,
            KeyScope::Address(remote.ip()),
            key,
            true,
        )
        .map_err(|err| context(err, "setting the TCP-AO key"))?;
    }
    ttl_security::apply(socket.as_fd(), family == Family::V6, security.ttl_security)
        .map_err(|err| context(err, "setting the TTL (GTSM)"))?;
    socket.connect(remote).await
}

/// An accepted connection of a neighbor with this protection.
pub fn accepted(stream: &TcpStream, security: &SessionSecurity) -> std::io::Result<()> {
    // The dual-stack listener's sockets are AF_INET6, their v4 peers' addresses mapped.
    let v6 = stream.local_addr()?.is_ipv6();
    ttl_security::apply(stream.as_fd(), v6, security.ttl_security)
        .map_err(|err| context(err, "setting the TTL (GTSM)"))
}

fn context(err: std::io::Error, what: &str) -> std::io::Error {
    std::io::Error::new(err.kind(), format!("{what}: {err}"))
}
