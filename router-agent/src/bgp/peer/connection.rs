//! One TCP connection of a peer: its halves, its receive buffer, its FSM timers, and its
//! writes, bounded by RFC 9687's send hold timer.
//!
//! A write that makes no progress (not one byte accepted by the socket) for the send hold
//! time marks the connection stalled: the peer stopped reading. The session task then feeds
//! `SendHoldTimerExpires` to the FSM, which ends the session (NOTIFICATION 8/0). Writes on a
//! stalled connection never wait again (the NOTIFICATION is tried without blocking), so the
//! task is back to its other connections, commands and timers at once.

use std::time::Duration;

use bytes::BytesMut;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    time::Instant,
};

use super::super::{
    fsm::{OPEN_HOLD_TIME, Timer, send_hold_time},
    graceful_restart::NegotiatedGracefulRestart,
    packet::Codec,
};

/// One TCP connection of a peer and its FSM timers.
pub(super) struct Connection {
    pub(super) reader: Option<OwnedReadHalf>,
    pub(super) writer: Option<OwnedWriteHalf>,
    pub(super) buffer: BytesMut,
    /// Wire format negotiated for this connection (RFC 4271 baseline until Established).
    pub(super) codec: Codec,
    /// Deadline of each FSM timer, indexed by `timer_index`.
    pub(super) timers: [Option<Instant>; 4],
    /// Graceful restart as negotiated by this connection's session, once Established.
    pub(super) graceful_restart: Option<NegotiatedGracefulRestart>,
    /// How long a write may make no progress (RFC 9687): from the OPEN hold time until
    /// Established, then from the negotiated one.
    pub(super) send_hold: Duration,
    /// A write made no progress for `send_hold`: the FSM has yet to hear of it.
    pub(super) stalled: bool,
}

/// What became of a write.
#[derive(Debug)]
pub(super) enum Written {
    Done,
    /// No connection, or a stalled one: nothing to wait for.
    Skipped,
    /// The socket failed; the read side sees it too and feeds `TcpConnectionFails`.
    Failed(std::io::Error),
    /// Nothing was accepted for the send hold time: the connection is now stalled.
    Stalled,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            reader: None,
            writer: None,
            buffer: BytesMut::with_capacity(64 * 1024),
            codec: Codec::default(),
            timers: [None; 4],
            graceful_restart: None,
            send_hold: send_hold_time(OPEN_HOLD_TIME.as_secs() as u16),
            stalled: false,
        }
    }
}

impl Connection {
    pub(super) fn attach(&mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        self.reader = Some(reader);
        self.writer = Some(writer);
        self.buffer.clear();
        self.codec = Codec::default();
        self.graceful_restart = None;
        self.send_hold = send_hold_time(OPEN_HOLD_TIME.as_secs() as u16);
        self.stalled = false;
    }

    pub(super) fn detach(&mut self) {
        self.reader = None;
        self.writer = None;
        self.buffer.clear();
    }

    /// The earliest armed timer.
    pub(super) fn next_timer(&self) -> Option<(Instant, Timer)> {
        self.timers
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (t, TIMERS[i])))
            .min()
    }

    pub(super) async fn read(&mut self) -> std::io::Result<usize> {
        match self.reader.as_mut() {
            Some(reader) => reader.read_buf(&mut self.buffer).await,
            None => std::future::pending().await,
        }
    }

    /// Writes all of `bytes`, each chunk the socket takes restarting the send hold timer.
    pub(super) async fn write(&mut self, bytes: &[u8]) -> Written {
        let Some(writer) = self.writer.as_mut() else {
            return Written::Skipped;
        };
        if self.stalled {
            // Best effort, never waiting (the NOTIFICATION after the expiry).
            let _ = writer.try_write(bytes);
            return Written::Skipped;
        }
        let mut written = 0;
        while written < bytes.len() {
            match tokio::time::timeout(self.send_hold, writer.write(&bytes[written..])).await {
                Ok(Ok(0)) => return Written::Failed(std::io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => written += n,
                Ok(Err(err)) => return Written::Failed(err),
                Err(_) => {
                    self.stalled = true;
                    return Written::Stalled;
                }
            }
        }
        Written::Done
    }
}

pub(super) fn timer_index(timer: Timer) -> usize {
    match timer {
        Timer::ConnectRetry => 0,
        Timer::Hold => 1,
        Timer::Keepalive => 2,
        Timer::IdleHold => 3,
    }
}

const TIMERS: [Timer; 4] = [
    Timer::ConnectRetry,
    Timer::Hold,
    Timer::Keepalive,
    Timer::IdleHold,
];
