//! Who may ask what over the control socket. The socket is created mode 0600 (under a
//! restrictive umask: no moment where it is wider); with `[control] show_group = "NAME"` it
//! is opened to that group (0660), and each connection's peer, from SO_PEERCRED and
//! SO_PEERGROUPS, may then only read (`show`): root and the agent's own user may do anything.

use std::{
    ffi::CString,
    os::fd::{AsRawFd, BorrowedFd},
};

use anyhow::{Result, bail};

use super::Query;

/// What a connection may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Root or the agent's user: everything.
    Full,
    /// A member of `show_group`: the read-only queries.
    ShowOnly,
    /// Nobody we know (the socket's mode should have stopped them).
    None,
}

impl Access {
    pub fn allows(self, query: Query) -> bool {
        match self {
            Access::Full => true,
            Access::ShowOnly => matches!(
                query,
                Query::Neighbors
                    | Query::Routes
                    | Query::Status
                    | Query::Redistribute
                    | Query::Services
            ),
            Access::None => false,
        }
    }
}

/// The gid of `[control] show_group`.
pub fn group_id(name: &str) -> Result<u32> {
    let c_name = CString::new(name)?;
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: valid C string, group struct, buffer and out pointer, all living across the call.
    let rc = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut group,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        bail!("control.show_group: no group named {name:?} on this host");
    }
    Ok(group.gr_gid)
}

/// The connection's peer, judged by its credentials.
pub fn of_peer(socket: BorrowedFd<'_>, show_group: Option<u32>) -> Access {
    let Some((uid, gid)) = peer_cred(socket) else {
        return Access::None;
    };
    // SAFETY: geteuid has no preconditions.
    if uid == 0 || uid == unsafe { libc::geteuid() } {
        return Access::Full;
    }
    match show_group {
        Some(group) if gid == group || peer_groups(socket).contains(&group) => Access::ShowOnly,
        _ => Access::None,
    }
}

fn peer_cred(socket: BorrowedFd<'_>) -> Option<(u32, u32)> {
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a ucred-sized buffer and its length.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some((cred.uid, cred.gid))
}

/// The peer's supplementary groups (Linux 4.13+; none if unknown).
fn peer_groups(socket: BorrowedFd<'_>) -> Vec<u32> {
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
    // SAFETY: a buffer of `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERGROUPS,
            groups.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Vec::new();
    }
    groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_only_allows_the_read_only_queries() {
        for query in [
            Query::Neighbors,
            Query::Routes,
            Query::Status,
            Query::Redistribute,
            Query::Services,
        ] {
            assert!(Access::ShowOnly.allows(query));
        }
        for query in [
            Query::Reload,
            Query::Restart,
            Query::Stop,
            Query::ClearNeighbor("10.0.0.1".parse().unwrap()),
        ] {
            assert!(!Access::ShowOnly.allows(query.clone()), "{query:?}");
            assert!(Access::Full.allows(query));
        }
        assert!(!Access::None.allows(Query::Status));
    }

    #[test]
    fn show_only_may_not_drain_or_undrain() {
        for query in [
            Query::Drain(Default::default()),
            Query::Undrain(Default::default()),
        ] {
            assert!(!Access::ShowOnly.allows(query.clone()), "{query:?}");
            assert!(Access::Full.allows(query));
        }
    }

    #[test]
    fn our_own_connections_have_full_access() {
        use std::os::fd::AsFd;
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(of_peer(a.as_fd(), None), Access::Full);
        assert!(group_id("no-such-group-hostrouter").is_err());
        assert_eq!(group_id("root").unwrap(), 0);
    }
}
