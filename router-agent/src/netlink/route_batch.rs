//! Route changes in bulk: many RTM_NEWROUTE / RTM_DELROUTE messages per sendmsg(2).
//!
//! The kernel handles NETLINK_ROUTE messages synchronously, inside the sender's sendmsg, one
//! after the other when the buffer holds several; with NLM_F_ACK each one is answered by an
//! NLMSG_ERROR carrying its sequence number (errno 0: done). One request at a time costs a
//! round trip per route (two syscalls and a wakeup of the connection task): mirroring a full
//! table into the kernel that way took longer than BIRD. Here a buffer of up to
//! [`MESSAGES_PER_SEND`] messages costs one sendmsg, and the answers, already queued when it
//! returns, are read back without waiting.
//!
//! ```text
//!   sendmsg: [NEWROUTE seq n][NEWROUTE seq n+1][DELROUTE seq n+2] ...
//!   recvmsg: [ERROR seq n, 0] [ERROR seq n+1, -EINVAL + extack] [ERROR seq n+2, -ESRCH] ...
//! ```
//!
//! Blocking (a plain socket): the daemon runs it on a thread of its own.

use std::os::fd::AsRawFd as _;

use anyhow::Context as _;
use rtnetlink::{
    packet_core::{
        NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
    },
    packet_route::{RouteNetlinkMessage, route::RouteMessage},
    sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE},
};

use super::{
    KernelRoute, NetlinkError, extack_message,
    route_message::{delete_message, describe, new_route_message},
    set_rcvbuf, set_sndbuf,
};

/// Messages per sendmsg: a few tens of KiB of requests, and as many answers, which must all fit
/// the receive buffer ([`RECEIVE_BUFFER`]) since the kernel drops what does not.
pub const MESSAGES_PER_SEND: usize = 256;

/// Receive buffer: an answer costs about 1 KiB of buffer accounting (an error echoes the
/// request), so 256 answers fit with a wide margin.
const RECEIVE_BUFFER: usize = 4 << 20;

/// Request bytes per sendmsg at most (one message may take it past): an ECMP route with 64
/// IPv6 nexthops is about 2 KB, and the kernel refuses a sendmsg larger than the socket's
/// send buffer (EMSGSIZE), which is only ~200 KiB by default.
const SEND_BYTES: usize = 64 << 10;

/// Send buffer asked for: room for [`SEND_BYTES`] plus the largest message, with margin.
const SEND_BUFFER: usize = 1 << 20;

/// One change of our routes in the kernel's main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    /// Install, replacing the route of the same prefix (and metric) atomically.
    Replace(KernelRoute),
    /// Delete our route for the prefix, if there is one.
    Delete(KernelRoute),
}

/// A change the kernel (or the encoder) refused.
#[derive(Debug)]
pub struct RouteFailure {
    /// Index of the change in what was given to [`RouteWriter::apply`].
    pub index: usize,
    pub error: anyhow::Error,
}

/// A netlink socket of its own for bulk route changes.
pub struct RouteWriter {
    socket: Socket,
    next_sequence: u32,
    send_buffer: Vec<u8>,
    receive_buffer: Vec<u8>,
}

impl RouteWriter {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> anyhow::Result<Self> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).context("cannot open a netlink route socket")?;
        socket
            .bind_auto()
            .context("cannot bind the netlink route socket")?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .context("cannot connect the netlink route socket")?;
        // The kernel's explanation of a refusal ("Nexthop has invalid gateway").
        socket.set_ext_ack(true).ok();
        set_rcvbuf(socket.as_raw_fd(), RECEIVE_BUFFER);
        set_sndbuf(socket.as_raw_fd(), SEND_BUFFER);
        Ok(Self {
            socket,
            next_sequence: 1,
            send_buffer: Vec::with_capacity(64 << 10),
            receive_buffer: vec![0; 64 << 10],
        })
    }

    /// Applies `changes` in order. Deleting a route that is not there is not a failure.
    /// Fails as a whole only if the socket does; the failures of single changes are returned.
    pub fn apply(&mut self, changes: &[RouteChange]) -> anyhow::Result<Vec<RouteFailure>> {
        let mut failures = Vec::new();
        let mut messages = Vec::with_capacity(changes.len().min(MESSAGES_PER_SEND));
        for (offset, chunk) in (0..)
            .step_by(MESSAGES_PER_SEND)
            .zip(changes.chunks(MESSAGES_PER_SEND))
        {
            messages.clear();
            for (i, change) in chunk.iter().enumerate() {
                match encode(change) {
                    Ok(message) => messages.push((offset + i, message)),
                    Err(error) => failures.push(RouteFailure {
                        index: offset + i,
                        error,
                    }),
                }
            }
            let refused = match self.exchange(&messages, Answers::Each) {
                Ok(refused) => refused,
                // Whatever the socket did, the changes of this chunk are reported failed and
                // the next chunks are still tried.
                Err(err) => {
                    let err = format!("{err:#}");
                    failures.extend(messages.iter().map(|(index, _)| RouteFailure {
                        index: *index,
                        error: anyhow::anyhow!("route change not applied: {err}"),
                    }));
                    continue;
                }
            };
            for (index, error) in refused {
                let error = match &changes[index] {
                    RouteChange::Delete(_) if is_absent(&error) => continue,
                    RouteChange::Replace(route) => anyhow::Error::new(error)
                        .context(format!("cannot install route {}", describe(route))),
                    RouteChange::Delete(route) => anyhow::Error::new(error)
                        .context(format!("cannot delete route {}", route.prefix)),
                };
                failures.push(RouteFailure { index, error });
            }
        }
        failures.sort_by_key(|failure| failure.index);
        Ok(failures)
    }

    /// Deletes our routes to `prefixes` (absent ones are fine), asking the kernel to answer
    /// only refusals: at a full table's size the acknowledgements of the others cost a
    /// sizeable part of the time. Fails as a whole if the socket does, or if refusals were
    /// lost (the receive buffer overflowed): then which deletes worked is unknown.
    pub fn delete_quietly(
        &mut self,
        prefixes: &[ipnet::IpNet],
        protocol: u8,
    ) -> anyhow::Result<Vec<RouteFailure>> {
        let mut failures = Vec::new();
        let mut messages = Vec::with_capacity(prefixes.len().min(MESSAGES_PER_SEND));
        for (offset, chunk) in (0..)
            .step_by(MESSAGES_PER_SEND)
            .zip(prefixes.chunks(MESSAGES_PER_SEND))
        {
            messages.clear();
            messages.extend(chunk.iter().enumerate().map(|(i, &prefix)| {
                let route = KernelRoute {
                    prefix,
                    nexthops: Vec::new(),
                    protocol,
                };
                (
                    offset + i,
                    (
                        RouteNetlinkMessage::DelRoute(delete_message(&route)),
                        NLM_F_REQUEST,
                    ),
                )
            }));
            for (index, error) in self.exchange(&messages, Answers::RefusalsOnly)? {
                if !is_absent(&error) {
                    failures.push(RouteFailure {
                        index,
                        error: anyhow::Error::new(error)
                            .context(format!("cannot delete route {}", prefixes[index])),
                    });
                }
            }
        }
        Ok(failures)
    }

    /// Deletes routes given by their deletion keys (from a dump); returns how many were there.
    pub(super) fn delete_keys(&mut self, keys: Vec<RouteMessage>) -> anyhow::Result<usize> {
        let mut deleted = 0;
        let mut messages = Vec::with_capacity(MESSAGES_PER_SEND);
        let mut keys = keys.into_iter().enumerate().peekable();
        while keys.peek().is_some() {
            messages.clear();
            messages.extend(keys.by_ref().take(MESSAGES_PER_SEND).map(|(index, key)| {
                (
                    index,
                    (
                        RouteNetlinkMessage::DelRoute(key),
                        NLM_F_REQUEST | NLM_F_ACK,
                    ),
                )
            }));
            let failures = self.exchange(&messages, Answers::Each)?;
            let absent = failures
                .iter()
                .filter(|(_, error)| is_absent(error))
                .count();
            if let Some((_, error)) = failures.iter().find(|(_, error)| !is_absent(error)) {
                anyhow::bail!("cannot delete a route: {error}");
            }
            deleted += messages.len() - absent;
        }
        Ok(deleted)
    }

    /// Sends `messages` (index, message, flags), as many per sendmsg as [`SEND_BYTES`] allows,
    /// and reads one answer per message. Returns the kernel's refusals by index, an absent
    /// route included.
    fn exchange(
        &mut self,
        messages: &[(usize, (RouteNetlinkMessage, u16))],
        answers: Answers,
    ) -> anyhow::Result<Vec<(usize, NetlinkError)>> {
        let mut refused = Vec::new();
        let mut start = 0;
        while start < messages.len() {
            let first = self.next_sequence;
            self.send_buffer.clear();
            let mut end = start;
            while end < messages.len() && (end == start || self.send_buffer.len() < SEND_BYTES) {
                let (message, flags) = &messages[end].1;
                let mut request = NetlinkMessage::from(message.clone());
                request.header.flags = *flags;
                request.header.sequence_number = first.wrapping_add((end - start) as u32);
                request.finalize();
                let at = self.send_buffer.len();
                self.send_buffer.resize(at + request.buffer_len(), 0);
                request.serialize(&mut self.send_buffer[at..]);
                end += 1;
            }
            self.next_sequence = first.wrapping_add((end - start) as u32);
            refused.extend(self.send_and_collect(&messages[start..end], first, answers)?);
            start = end;
        }
        Ok(refused)
    }

    /// Sends what `exchange` serialized for `messages` (sequence numbers from `first`) and
    /// reads their answers.
    fn send_and_collect(
        &mut self,
        messages: &[(usize, (RouteNetlinkMessage, u16))],
        first: u32,
        answers: Answers,
    ) -> anyhow::Result<Vec<(usize, NetlinkError)>> {
        let sent = self
            .socket
            .send(&self.send_buffer, 0)
            .context("cannot send route changes to the kernel")?;
        anyhow::ensure!(
            sent == self.send_buffer.len(),
            "the kernel took {sent} of {} bytes of route changes",
            self.send_buffer.len()
        );

        let mut answered = vec![false; messages.len()];
        let mut outstanding = messages.len();
        let mut refused = Vec::new();
        while outstanding > 0 {
            let received = match answers {
                Answers::Each => self.socket.recv(&mut &mut self.receive_buffer[..], 0),
                // The kernel handled every message inside the sendmsg: the refusals are all
                // queued already, and nothing more is coming.
                Answers::RefusalsOnly => {
                    match self
                        .socket
                        .recv(&mut &mut self.receive_buffer[..], libc::MSG_DONTWAIT)
                    {
                        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                        other => other,
                    }
                }
            }
            .context("cannot read the kernel's answers to route changes")?;
            let mut rest = &self.receive_buffer[..received];
            while rest.len() >= 16 {
                let length = u32::from_ne_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
                if length < 16 || length > rest.len() {
                    break;
                }
                let (bytes, tail) = rest.split_at(length.next_multiple_of(4).min(rest.len()));
                rest = tail;
                let Ok(answer) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) else {
                    tracing::debug!("undecodable netlink answer skipped");
                    continue;
                };
                let n = answer.header.sequence_number.wrapping_sub(first) as usize;
                if n >= messages.len() || answered[n] {
                    continue; // not an answer to this exchange
                }
                let NetlinkPayload::Error(error) = &answer.payload else {
                    continue;
                };
                answered[n] = true;
                outstanding -= 1;
                if let Some(code) = error.code {
                    refused.push((
                        messages[n].0,
                        NetlinkError::Kernel {
                            errno: code.get().saturating_abs(),
                            extack: extack_message(&answer.header, &error.header),
                        },
                    ));
                }
            }
        }
        Ok(refused)
    }
}

/// What the kernel answers to a request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answers {
    /// Every message (NLM_F_ACK): an error or a success each.
    Each,
    /// Refusals only (no NLM_F_ACK).
    RefusalsOnly,
}

fn encode(change: &RouteChange) -> anyhow::Result<(RouteNetlinkMessage, u16)> {
    Ok(match change {
        RouteChange::Replace(route) => (
            RouteNetlinkMessage::NewRoute(new_route_message(route)?),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        ),
        RouteChange::Delete(route) => (
            RouteNetlinkMessage::DelRoute(delete_message(route)),
            NLM_F_REQUEST | NLM_F_ACK,
        ),
    })
}

/// ESRCH/ENOENT: the route to delete was not there (or went with a sibling already).
fn is_absent(error: &NetlinkError) -> bool {
    matches!(error.errno(), Some(libc::ESRCH | libc::ENOENT))
}
