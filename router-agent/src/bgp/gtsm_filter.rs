//! GTSM for inbound connections when only some neighbors use it: a classic BPF socket filter
//! on the listening socket, inherited by every accepted socket, that drops segments from a
//! GTSM neighbor's addresses unless they arrived with TTL / hop limit 255. It checks the SYN
//! and everything after, which a minimum TTL set after accept cannot (the peer's OPEN may be
//! queued already). When every neighbor uses GTSM the listener's IP_MINTTL does the same
//! (`ttl_security.rs`).
//!
//! Scopes are tried most specific first, so that a neighbor inside a range follows its own
//! setting; addresses no scope takes pass.

use std::os::fd::{AsRawFd, BorrowedFd};

use ipnet::IpNet;

use super::config::{BgpSetup, DynamicSource, PeerAddress};

/// The source scopes of a configuration with their GTSM setting: each neighbor's address,
/// each range, fe80::/10 for unnumbered neighbors and interface ranges.
pub fn scopes(setup: &BgpSetup) -> Vec<(IpNet, bool)> {
    let link_local = super::auth::link_local_prefix();
    let neighbors = setup.neighbors.iter().map(|n| {
        let scope = match &n.address {
            PeerAddress::Ip(ip) => IpNet::from(*ip),
            PeerAddress::Interface(_) => link_local,
        };
        (scope, n.security.ttl_security)
    });
    let dynamic = setup.dynamic_neighbors.iter().map(|d| {
        let scope = match &d.source {
            DynamicSource::Range(range) => *range,
            DynamicSource::Interface(_) => link_local,
        };
        (scope, d.template.security.ttl_security)
    });
    neighbors.chain(dynamic).collect()
}

/// Where the filter reads: offsets from the network header (SKF_NET_OFF).
const NET: i32 = -0x100000;
const ACCEPT: u32 = u32::MAX;
const DROP: u32 = 0;

const LD_W: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const LD_B: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
const RSH: u16 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const AND: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const RET: u16 = 0x06; // BPF_RET | BPF_K

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn net(offset: i32) -> u32 {
    (NET + offset) as u32
}

/// The filter for these source scopes (`true`: GTSM required); None: nothing to check.
pub fn program(scopes: &[(IpNet, bool)]) -> Option<Vec<libc::sock_filter>> {
    if !scopes.iter().any(|(_, gtsm)| *gtsm) {
        return None;
    }
    let mut sorted = scopes.to_vec();
    sorted.sort_by_key(|(scope, _)| std::cmp::Reverse(scope.prefix_len()));
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for (scope, gtsm) in sorted {
        // (source address offset, TTL offset, the address's words, prefix length)
        let (section, words, ttl_offset): (&mut Vec<_>, Vec<u32>, i32) = match scope {
            IpNet::V4(v4net) => (&mut v4, vec![u32::from(v4net.network())], 8),
            IpNet::V6(v6net) => {
                let octets = v6net.network().octets();
                let words = octets
                    .chunks(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                (&mut v6, words, 7)
            }
        };
        let source_offset = if ttl_offset == 8 { 12 } else { 8 };
        block(
            section,
            &words,
            scope.prefix_len(),
            source_offset,
            ttl_offset,
            gtsm,
        );
    }
    v4.push(insn(RET, 0, 0, ACCEPT));
    v6.push(insn(RET, 0, 0, ACCEPT));
    let mut program = vec![
        insn(LD_B, 0, 0, net(0)),
        insn(RSH, 0, 0, 4),
        insn(JEQ, 1, 0, 6),
        insn(JA, 0, 0, v6.len() as u32),
    ];
    program.extend(v6);
    program.extend(v4);
    Some(program)
}

/// One scope: if the source matches, accept (no GTSM) or require TTL 255; else fall through.
fn block(
    out: &mut Vec<libc::sock_filter>,
    words: &[u32],
    prefix_len: u8,
    source_offset: i32,
    ttl_offset: i32,
    gtsm: bool,
) {
    let action: Vec<libc::sock_filter> = if gtsm {
        vec![
            insn(LD_B, 0, 0, net(ttl_offset)),
            insn(JEQ, 0, 1, 255),
            insn(RET, 0, 0, ACCEPT),
            insn(RET, 0, 0, DROP),
        ]
    } else {
        vec![insn(RET, 0, 0, ACCEPT)]
    };
    let mut compares = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let bits = (prefix_len as i32 - 32 * i as i32).clamp(0, 32) as u32;
        if bits == 0 {
            break;
        }
        let mask = if bits == 32 {
            u32::MAX
        } else {
            !(u32::MAX >> bits)
        };
        compares.push((source_offset + 4 * i as i32, mask, word & mask));
    }
    // Each compare is 3 instructions; a mismatch skips the rest of the block.
    let total = compares.len() * 3 + action.len();
    for (n, (offset, mask, value)) in compares.into_iter().enumerate() {
        let rest = total - (n + 1) * 3;
        out.push(insn(LD_W, 0, 0, net(offset)));
        out.push(insn(AND, 0, 0, mask));
        out.push(insn(JEQ, 0, rest as u8, value));
    }
    out.extend(action);
}

#[cfg(test)]
mod tests;

/// Attaches the filter for `scopes` to the listening socket, or removes it (no GTSM scope).
pub fn attach(socket: BorrowedFd<'_>, scopes: &[(IpNet, bool)]) -> std::io::Result<()> {
    let Some(mut program) = program(scopes) else {
        // SO_DETACH_FILTER ignores its value, but the kernel wants an int's length.
        let unused: libc::c_int = 0;
        // SAFETY: an int that outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_DETACH_FILTER,
                &unused as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        let err = std::io::Error::last_os_error();
        return if rc == 0 || err.raw_os_error() == Some(libc::ENOENT) {
            Ok(())
        } else {
            Err(err)
        };
    };
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: fprog points at the program, which outlives the call (the kernel copies it).
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
