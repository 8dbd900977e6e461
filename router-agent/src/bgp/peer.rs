//! One neighbor's session: the I/O around the sans-IO FSM ([`Peering`]: a session per
//! connection, RFC 4271 6.8 collisions between two). It owns the TCP connections and
//! the timers, turns bytes into FSM events and FSM actions into bytes, and reports to the
//! speaker what the routing side needs (established, UPDATEs, route refresh, down).
//!
//! ```text
//!   TCP ──bytes──> framing ──> Message::decode ──> fsm::Event ──> Session::handle
//!                                   │ UPDATE / ROUTE-REFRESH          │ actions
//!                                   v                                 v
//!                           PeerEvent (speaker)       send, timers, connect, established
//! ```
//!
//! Bounded both ways: at most `MAX_UPDATES_IN_FLIGHT` decoded UPDATEs wait for the speaker
//! (then reading stops: TCP back-pressure, `peer/credit.rs`), and a write that makes no
//! progress for the send hold time ends the session (RFC 9687, `peer/connection.rs`).

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use tokio::{io::AsyncWriteExt, net::TcpStream, sync::mpsc, time::Instant};

use super::{
    config::SessionSecurity,
    fsm::{
        Action, CeaseSubcode, Conn, Event, Incoming, NotificationInfo, Peering, Restart,
        SessionConfig, State, Timer, send_hold_time,
    },
    packet::{
        Codec, Message, MessageError, MessageType, Update, UpdateError, encode_updates,
        message_length,
        types::{Afi, Safi},
    },
    rib::PeerId,
    session_socket,
};
mod counters;
mod interface;

use connection::{Connection, Written, timer_index};
pub use counters::{MESSAGE_TYPES, SessionCounters, SessionCountersView};
use credit::Credits;
pub use credit::{MAX_UPDATES_IN_FLIGHT, UpdateCredit};
pub use interface::{PeerCommand, PeerEvent, PeerHandle, SessionEvent};
use unanswered::UnansweredConnects;

/// How a session task starts.
pub struct PeerSpec {
    pub peer: PeerId,
    /// Where to connect (a link-local address carries its interface as scope id).
    pub remote: Option<SocketAddr>,
    pub config: SessionConfig,
    /// TCP MD5 and GTSM for our connections.
    pub security: SessionSecurity,
    pub restart: Restart,
    /// The connection that created a dynamic peer.
    pub incoming: Option<TcpStream>,
}

/// Starts the session task of one neighbor. It sends [`SessionEvent::Closed`] when it ends.
pub fn spawn(
    spec: PeerSpec,
    events: mpsc::UnboundedSender<PeerEvent>,
) -> anyhow::Result<PeerHandle> {
    let peering = Peering::new(spec.config, spec.restart)?;
    let (commands, command_rx) = mpsc::unbounded_channel();
    let counters = std::sync::Arc::new(SessionCounters::default());
    let task = PeerTask {
        peer: spec.peer,
        remote: spec.remote,
        security: spec.security,
        peering,
        events,
        connections: [Connection::default(), Connection::default()],
        connecting: None,
        reported_state: State::Idle,
        malformed_graceful_restart_logged: false,
        credits: Credits::new(),
        unanswered_connects: UnansweredConnects::default(),
        counters: counters.clone(),
    };
    tokio::spawn(task.run(command_rx, spec.incoming));
    Ok(PeerHandle { commands, counters })
}

type Connecting =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<TcpStream>> + Send>>;

struct PeerTask {
    peer: PeerId,
    /// None: not known yet (an unnumbered neighbor before discovery); connecting fails.
    remote: Option<SocketAddr>,
    security: SessionSecurity,
    peering: Peering,
    events: mpsc::UnboundedSender<PeerEvent>,
    /// Indexed by [`Conn::index`].
    connections: [Connection; 2],
    /// Our connection attempt (the primary's).
    connecting: Option<Connecting>,
    reported_state: State,
    /// A malformed Graceful Restart capability is said once per peer, not per OPEN.
    malformed_graceful_restart_logged: bool,
    /// UPDATEs handed to the speaker and not applied yet: bounded (`peer/credit.rs`).
    credits: Credits,
    /// Our connection attempts without an answer, said once per streak (`peer/unanswered.rs`).
    unanswered_connects: UnansweredConnects,
    /// Messages, flaps and the last NOTIFICATION, for the metrics.
    counters: std::sync::Arc<SessionCounters>,
}

const CONNS: [Conn; 2] = [Conn::Primary, Conn::Second];

/// How long an outgoing TCP connection may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl PeerTask {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<PeerCommand>,
        incoming: Option<TcpStream>,
    ) {
        self.handle(Conn::Primary, Event::ManualStart).await;
        if let Some(stream) = incoming {
            self.incoming(stream).await;
        }
        while !self.peering.finished() {
            self.report_stalls().await;
            let next_timer = CONNS
                .iter()
                .filter_map(|&conn| {
                    let (at, timer) = self.connections[conn.index()].next_timer()?;
                    Some((at, conn, timer))
                })
                .min_by_key(|(at, _, _)| *at);
            let [primary, second] = &mut self.connections;
            // Out of credit: the connections are not read (TCP back-pressure) until the
            // speaker has applied some of what they sent.
            let reading = self.credits.available();
            let credits = self.credits.clone();
            tokio::select! {
                command = commands.recv() => {
                    let message = match command {
                        Some(PeerCommand::Remote(remote)) => {
                            self.remote = Some(remote);
                            continue;
                        }
                        Some(PeerCommand::Incoming(stream)) => {
                            self.incoming(stream).await;
                            continue;
                        }
                        Some(PeerCommand::Send(updates)) => {
                            self.send_updates(&updates).await;
                            continue;
                        }
                        Some(PeerCommand::HoldDown { notification, restart_after }) => {
                            let notification = self.hard(notification);
                            let actions = self.peering.hold_down(notification, restart_after);
                            self.carry_out(actions).await;
                            continue;
                        }
                        Some(PeerCommand::Clear) => {
                            let reset = self.hard(NotificationInfo::cease(
                                CeaseSubcode::AdministrativeReset,
                                None,
                            ));
                            let actions = self.peering.clear(reset);
                            self.carry_out(actions).await;
                            continue;
                        }
                        Some(PeerCommand::LinkDown(interface)) => {
                            // Administrative Reset: should the link come back before the
                            // connection times out, the peer learns why.
                            let reset = self.hard(NotificationInfo::cease(
                                CeaseSubcode::AdministrativeReset,
                                Some(&format!("link {interface} down")),
                            ));
                            let actions = self.peering.clear(reset);
                            self.carry_out(actions).await;
                            continue;
                        }
                        Some(PeerCommand::GracefulStop(message)) => {
                            self.graceful_stop(&message).await;
                            continue;
                        }
                        Some(PeerCommand::Flush(done)) => {
                            // Commands run in order and `Send` writes before it returns.
                            let _ = done.send(());
                            continue;
                        }
                        Some(PeerCommand::Stop(message)) => message,
                        None => None,
                    };
                    let cease = self.hard(NotificationInfo::cease(
                        CeaseSubcode::AdministrativeShutdown,
                        message.as_deref(),
                    ));
                    let actions = self.peering.stop(cease);
                    self.carry_out(actions).await;
                }
                result = async { self.connecting.as_mut().expect("guarded").await },
                    if self.connecting.is_some() =>
                {
                    self.connecting = None;
                    match result {
                        Ok(stream) => {
                            self.unanswered_connects.connected();
                            self.connections[0].attach(stream);
                            self.handle(Conn::Primary, Event::TcpCrAcked).await;
                        }
                        Err(err) => {
                            tracing::debug!(peer = %label(self.remote), "connect: {err}");
                            if err.kind() == std::io::ErrorKind::TimedOut {
                                self.connect_unanswered();
                            }
                            self.handle(Conn::Primary, Event::TcpConnectionFails).await;
                        }
                    }
                }
                read = primary.read(), if reading => self.on_read(Conn::Primary, read).await,
                read = second.read(), if reading => self.on_read(Conn::Second, read).await,
                () = credits.returned(), if !reading => {
                    // What was read before the pause.
                    for conn in CONNS {
                        self.receive(conn).await;
                    }
                }
                _ = tokio::time::sleep_until(next_timer.map_or_else(far_future, |(at, _, _)| at)),
                    if next_timer.is_some() =>
                {
                    let (_, conn, timer) = next_timer.expect("guarded");
                    self.connections[conn.index()].timers[timer_index(timer)] = None;
                    let event = match timer {
                        Timer::ConnectRetry => {
                            // Our attempt still pending: the FSM gives it up for a new one,
                            // and in all that time it got neither a SYN-ACK nor a reset. With
                            // the default ConnectRetry (5 s) this comes before CONNECT_TIMEOUT.
                            if conn == Conn::Primary && self.connecting.is_some() {
                                tracing::debug!(peer = %label(self.remote),
                                    "connect: no answer before ConnectRetry expired");
                                self.connect_unanswered();
                            }
                            Event::ConnectRetryTimerExpires
                        }
                        Timer::Hold => Event::HoldTimerExpires,
                        Timer::Keepalive => Event::KeepaliveTimerExpires,
                        Timer::IdleHold => Event::IdleHoldTimerExpires,
                    };
                    self.handle(conn, event).await;
                }
            }
        }
        self.emit(SessionEvent::Closed);
    }

    /// Tells the speaker. It may have stopped (shutdown): nothing to do then.
    fn emit(&self, event: SessionEvent) {
        let _ = self.events.send(PeerEvent::Session {
            peer: self.peer,
            event,
        });
    }

    async fn on_read(&mut self, conn: Conn, read: std::io::Result<usize>) {
        match read {
            Ok(0) | Err(_) => {
                self.connections[conn.index()].detach();
                self.handle(conn, Event::TcpConnectionFails).await;
            }
            Ok(_) => self.receive(conn).await,
        }
    }

    /// The neighbor connected: the peering decides (collision detection, RFC 4271 6.8).
    async fn incoming(&mut self, stream: TcpStream) {
        match self.peering.incoming() {
            Incoming::Refuse { reason, probe } => {
                tracing::debug!(peer = %label(self.remote), "refusing a connection: {reason}");
                if let Some(probe) = probe {
                    self.probe(probe).await;
                }
            }
            Incoming::Accept { conn, probe } => {
                self.unanswered_connects.connected();
                if conn == Conn::Primary {
                    self.connecting = None;
                }
                if let Some(probe) = probe {
                    self.probe(probe).await;
                }
                self.connections[conn.index()].attach(stream);
                self.handle(conn, Event::TcpConnectionConfirmed).await;
            }
        }
    }

    /// Our connection attempt got no answer. With signed segments that is what a key mismatch
    /// looks like (`peer/unanswered.rs`): said once per streak, naming the neighbor and the
    /// option, never the key.
    fn connect_unanswered(&mut self) {
        let Some(signature) = unanswered::signature(&self.security) else {
            return;
        };
        if self.unanswered_connects.first_of_streak() {
            tracing::warn!(peer = %label(self.remote),
                "no answer to TCP connection attempts; {signature} is configured: a key \
                 mismatch at either end looks like this");
        }
    }

    /// A KEEPALIVE on an Established connection, to learn whether the peer still has it (a
    /// restarted peer answers with a reset, see `fsm/peering.rs`).
    async fn probe(&mut self, conn: Conn) {
        let keepalive = Message::Keepalive.encode(&self.connections[conn.index()].codec);
        self.write(conn, &keepalive).await;
    }

    /// Decodes every complete message in the buffer of `conn`.
    async fn receive(&mut self, conn: Conn) {
        loop {
            if !self.credits.available() {
                // Paused: the rest stays in the buffer until credit comes back.
                return;
            }
            let connection = &mut self.connections[conn.index()];
            let length = match message_length(&connection.buffer) {
                Ok(Some(length)) if connection.buffer.len() >= length => length,
                Ok(_) => return,
                Err(err) => {
                    self.handle(conn, Event::BgpHeaderErr((&err.notification).into()))
                        .await;
                    return;
                }
            };
            let frame = connection.buffer.split_to(length);
            self.counters.received(&frame);
            let event = match Message::decode(&frame, &connection.codec) {
                Ok(decoded) => self.message_event(conn, decoded.message, decoded.update_error),
                Err(err) => self.error_event(frame[18], err),
            };
            self.handle(conn, event).await;
            if self.connections[conn.index()].reader.is_none() {
                return;
            }
        }
    }

    fn message_event(
        &mut self,
        conn: Conn,
        message: Message,
        update_error: Option<UpdateError>,
    ) -> Event {
        let established = self.peering.session(conn).map(|s| s.state()) == Some(State::Established);
        match message {
            Message::Open(open) => {
                self.log_malformed_graceful_restart(&open);
                Event::BgpOpen((&open).into())
            }
            Message::Keepalive => Event::KeepAliveMsg,
            Message::Notification(notification) => {
                tracing::warn!(peer = %label(self.remote), "NOTIFICATION received: {notification}");
                Event::notification((&notification).into())
            }
            Message::Update(update) => {
                if established {
                    if let Some(error) = &update_error {
                        tracing::warn!(peer = %label(self.remote), "malformed UPDATE: {error:?}");
                    }
                    self.emit(SessionEvent::Update {
                        update: Box::new(update),
                        error: update_error,
                        credit: self.credits.take(),
                    });
                }
                Event::UpdateMsg
            }
            Message::RouteRefresh(refresh) => {
                if established {
                    self.emit(SessionEvent::RouteRefresh { afi: refresh.afi });
                }
                Event::RouteRefreshMsg
            }
            // RFC 2918 3: ignore a refresh for a family we never advertised.
            Message::RouteRefreshUnknownFamily { afi, safi, .. } => {
                tracing::debug!(peer = %label(self.remote), afi, safi, "ROUTE-REFRESH for an unknown family");
                Event::RouteRefreshMsg
            }
        }
    }

    /// The FSM event for a message that failed to decode: which one depends on its type.
    fn error_event(&self, message_type: u8, err: MessageError) -> Event {
        tracing::warn!(peer = %label(self.remote), "bad message: {}", err.reason);
        let notification = (&err.notification).into();
        match MessageType::from_u8(message_type) {
            Some(MessageType::Open) => Event::BgpOpenMsgErr(notification),
            Some(MessageType::Update) => Event::UpdateMsgErr(notification),
            _ => Event::BgpHeaderErr(notification),
        }
    }

    /// Feeds an event of one connection to the peering and carries out its actions.
    async fn handle(&mut self, conn: Conn, event: Event) {
        let actions = self.peering.handle(conn, event);
        self.carry_out(actions).await;
    }

    /// Carries out actions in order, then reports a change of the peer's state.
    async fn carry_out(&mut self, actions: Vec<(Conn, Action)>) {
        for (conn, action) in actions {
            self.act(conn, action).await;
        }
        let state = self.peering.state();
        if state != self.reported_state {
            if self.reported_state == State::Established {
                self.counters.left_established();
            }
            self.reported_state = state;
            self.emit(SessionEvent::State { state });
        }
    }

    async fn act(&mut self, conn: Conn, action: Action) {
        let connection = &mut self.connections[conn.index()];
        match action {
            Action::Connect => {
                let remote = self.remote;
                let security = self.security.clone();
                self.connecting = Some(Box::pin(async move {
                    let Some(remote) = remote else {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::AddrNotAvailable,
                            "the neighbor's address is not known yet",
                        ));
                    };
                    tokio::time::timeout(
                        CONNECT_TIMEOUT,
                        session_socket::connect(remote, &security),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "connect timed out",
                        ))
                    })
                }));
            }
            Action::Disconnect => {
                if conn == Conn::Primary {
                    self.connecting = None;
                }
                if let Some(mut writer) = connection.writer.take() {
                    let _ = writer.shutdown().await;
                }
                connection.detach();
            }
            Action::SendOpen(open) => {
                let message = Message::Open((&open).into());
                self.write(conn, &message.encode(&Codec::default())).await;
            }
            Action::SendKeepalive => {
                let message = Message::Keepalive.encode(&connection.codec);
                self.write(conn, &message).await;
            }
            Action::SendNotification(notification) => {
                tracing::warn!(peer = %label(self.remote), "NOTIFICATION sent: {notification}");
                self.counters.notification(&notification);
                let message = Message::Notification((&notification).into());
                let bytes = message.encode(&connection.codec);
                self.write(conn, &bytes).await;
            }
            Action::StartTimer(timer, after) => {
                connection.timers[timer_index(timer)] = Some(Instant::now() + after);
            }
            Action::StopTimer(timer) => connection.timers[timer_index(timer)] = None,
            Action::Established(negotiated) => {
                connection.graceful_restart = negotiated.graceful_restart.clone();
                connection.codec = Codec {
                    four_octet_as: negotiated.four_octet_as,
                    extended_next_hop_ipv4: negotiated.extended_next_hop.contains(&(
                        Afi::Ipv4,
                        Safi::Unicast,
                        Afi::Ipv6,
                    )),
                };
                connection.send_hold = send_hold_time(negotiated.hold_time);
                let local = connection.writer.as_ref().and_then(|w| w.local_addr().ok());
                let remote = connection.writer.as_ref().and_then(|w| w.peer_addr().ok());
                if let (Some(local), Some(remote)) = (local, remote) {
                    tracing::info!(peer = %label(self.remote), ?conn, asn = negotiated.peer_as,
                        hold = negotiated.hold_time, "session established");
                    self.emit(SessionEvent::Established {
                        negotiated,
                        local: canonical(local),
                        remote: canonical(remote),
                    });
                }
            }
            Action::Down { reason } => {
                tracing::warn!(peer = %label(self.remote), "session down: {reason}");
                self.counters.down(&reason);
                self.emit(SessionEvent::Down {
                    reason: reason.to_string(),
                    cause: reason,
                });
            }
        }
    }

    async fn send_updates(&mut self, updates: &[Update]) {
        let Some(conn) = self.peering.established() else {
            return;
        };
        for update in updates {
            for message in encode_updates(update, &self.connections[conn.index()].codec) {
                self.write(conn, &message).await;
                if self.connections[conn.index()].stalled {
                    return;
                }
            }
        }
    }

    /// Writes, bounded by the send hold timer (`connection.rs`). A stall is reported to the
    /// FSM by `report_stalls`, once the action or command that wrote is over.
    async fn write(&mut self, conn: Conn, bytes: &[u8]) {
        match self.connections[conn.index()].write(bytes).await {
            Written::Done => self.counters.sent(bytes),
            Written::Skipped => {}
            Written::Failed(err) => {
                tracing::debug!(peer = %label(self.remote), "write: {err}");
            }
            Written::Stalled => {
                tracing::warn!(peer = %label(self.remote),
                    send_hold = ?self.connections[conn.index()].send_hold,
                    "the peer stopped reading: nothing written for the send hold time (RFC 9687)");
            }
        }
    }

    /// Feeds `SendHoldTimerExpires` for each connection whose writes stalled.
    async fn report_stalls(&mut self) {
        for conn in CONNS {
            let connection = &self.connections[conn.index()];
            if connection.stalled && connection.writer.is_some() {
                self.handle(conn, Event::SendHoldTimerExpires).await;
                // The FSM disconnected it; should it not have, never report it again.
                self.connections[conn.index()].detach();
            }
        }
    }
}

/// The peer in logs: its address and port, as configured or learned.
fn label(remote: Option<SocketAddr>) -> String {
    remote.map_or_else(|| "unknown".to_owned(), |remote| remote.to_string())
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// IPv4-mapped IPv6 addresses (from a dual-stack socket) as plain IPv4; IPv6 ones keep their
/// scope (the interface of a link-local address).
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

mod connection;
mod credit;
mod graceful;
#[cfg(test)]
mod hardening_tests;
#[cfg(test)]
mod tests;
mod unanswered;
