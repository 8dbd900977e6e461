//! One neighbor's session: the I/O around the sans-IO FSM. It owns the TCP connection and
//! the timers, turns bytes into FSM events and FSM actions into bytes, and reports to the
//! speaker what the routing side needs (established, UPDATEs, route refresh, down).
//!
//! ```text
//!   TCP ──bytes──> framing ──> Message::decode ──> fsm::Event ──> Session::handle
//!                                   │ UPDATE / ROUTE-REFRESH          │ actions
//!                                   v                                 v
//!                           PeerEvent (speaker)       send, timers, connect, established
//! ```

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use bytes::BytesMut;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::mpsc,
    time::Instant,
};

use super::{
    fsm::{
        Action, CeaseSubcode, Event, Negotiated, NotificationInfo, Session, SessionConfig, State,
        Timer,
    },
    packet::{
        Codec, Message, MessageError, MessageType, Update, UpdateError, encode_updates,
        message_length,
        types::{Afi, Safi},
    },
    rib::PeerId,
};

/// From the speaker to a session.
#[derive(Debug)]
pub enum PeerCommand {
    /// The neighbor connected to us.
    Incoming(TcpStream),
    /// Advertise or withdraw (Established only; dropped otherwise).
    Send(Vec<Update>),
    /// Tear the session down with this NOTIFICATION and keep it down (refusing the neighbor's
    /// connections) for `restart_after`, or until `Clear` when None.
    HoldDown {
        notification: NotificationInfo,
        restart_after: Option<Duration>,
    },
    /// The operator's hard reset (`clear neighbor`): Cease / Administrative Reset if a
    /// connection is up, then start again at once, ending any hold-down.
    Clear,
    /// Tear the session down with a Cease, and end the task.
    Stop(Option<String>),
}

/// From a session to the speaker.
#[derive(Debug)]
pub enum PeerEvent {
    Established {
        peer: PeerId,
        negotiated: Negotiated,
        local: SocketAddr,
        remote: SocketAddr,
    },
    Update {
        peer: PeerId,
        update: Box<Update>,
        error: Option<UpdateError>,
    },
    RouteRefresh {
        peer: PeerId,
        afi: Afi,
    },
    Down {
        peer: PeerId,
        reason: String,
    },
    State {
        peer: PeerId,
        state: State,
    },
}

pub struct PeerHandle {
    pub commands: mpsc::UnboundedSender<PeerCommand>,
}

/// Starts the session task of the neighbor at `address`.
pub fn spawn(
    peer: PeerId,
    remote: SocketAddr,
    config: SessionConfig,
    events: mpsc::UnboundedSender<PeerEvent>,
) -> anyhow::Result<PeerHandle> {
    let session = Session::new(config)?;
    let (commands, command_rx) = mpsc::unbounded_channel();
    let task = PeerTask {
        peer,
        remote,
        session,
        events,
        reader: None,
        writer: None,
        buffer: BytesMut::with_capacity(64 * 1024),
        codec: Codec::default(),
        timers: [None; 4],
        connecting: None,
    };
    tokio::spawn(task.run(command_rx));
    Ok(PeerHandle { commands })
}

type Connecting =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<TcpStream>> + Send>>;

struct PeerTask {
    peer: PeerId,
    remote: SocketAddr,
    session: Session,
    events: mpsc::UnboundedSender<PeerEvent>,
    reader: Option<OwnedReadHalf>,
    writer: Option<OwnedWriteHalf>,
    buffer: BytesMut,
    /// Wire format negotiated for this connection (RFC 4271 baseline until Established).
    codec: Codec,
    /// Deadline of each FSM timer, indexed by `timer_index`.
    timers: [Option<Instant>; 4],
    connecting: Option<Connecting>,
}

fn timer_index(timer: Timer) -> usize {
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

/// How long an outgoing TCP connection may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl PeerTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<PeerCommand>) {
        self.handle(Event::ManualStart).await;
        loop {
            let next_timer = self
                .timers
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.map(|t| (t, i)))
                .min();
            tokio::select! {
                command = commands.recv() => {
                    let message = match command {
                        Some(PeerCommand::Incoming(stream)) => {
                            self.incoming(stream).await;
                            continue;
                        }
                        Some(PeerCommand::Send(updates)) => {
                            self.send_updates(&updates).await;
                            continue;
                        }
                        Some(PeerCommand::HoldDown { notification, restart_after }) => {
                            self.handle(Event::HoldDown { notification, restart_after }).await;
                            continue;
                        }
                        Some(PeerCommand::Clear) => {
                            let reset =
                                NotificationInfo::cease(CeaseSubcode::AdministrativeReset, None);
                            self.handle(Event::ManualStop(reset)).await;
                            self.handle(Event::ManualStart).await;
                            continue;
                        }
                        Some(PeerCommand::Stop(message)) => message,
                        None => None,
                    };
                    let cease =
                        NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, message.as_deref());
                    self.handle(Event::ManualStop(cease)).await;
                    return;
                }
                result = async { self.connecting.as_mut().expect("guarded").await },
                    if self.connecting.is_some() =>
                {
                    self.connecting = None;
                    match result {
                        Ok(stream) => {
                            self.attach(stream);
                            self.handle(Event::TcpCrAcked).await;
                        }
                        Err(err) => {
                            tracing::debug!(peer = %self.remote, "connect: {err}");
                            self.handle(Event::TcpConnectionFails).await;
                        }
                    }
                }
                read = async { self.reader.as_mut().expect("guarded").read_buf(&mut self.buffer).await },
                    if self.reader.is_some() =>
                {
                    match read {
                        Ok(0) | Err(_) => {
                            self.detach();
                            self.handle(Event::TcpConnectionFails).await;
                        }
                        Ok(_) => self.receive().await,
                    }
                }
                _ = tokio::time::sleep_until(next_timer.map_or_else(far_future, |(t, _)| t)),
                    if next_timer.is_some() =>
                {
                    let (_, index) = next_timer.expect("guarded");
                    self.timers[index] = None;
                    let event = match TIMERS[index] {
                        Timer::ConnectRetry => Event::ConnectRetryTimerExpires,
                        Timer::Hold => Event::HoldTimerExpires,
                        Timer::Keepalive => Event::KeepaliveTimerExpires,
                        Timer::IdleHold => Event::IdleHoldTimerExpires,
                    };
                    self.handle(event).await;
                }
            }
        }
    }

    fn attach(&mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        self.reader = Some(reader);
        self.writer = Some(writer);
        self.buffer.clear();
        self.codec = Codec::default();
    }

    fn detach(&mut self) {
        self.reader = None;
        self.writer = None;
        self.buffer.clear();
    }

    /// The neighbor connected. We keep one connection: an incoming one replaces a pending
    /// outgoing attempt, and is refused in Idle and once our own connection has reached
    /// OpenSent (the neighbor keeps the connection we opened: a simplified RFC 4271 6.8 that
    /// needs no second FSM).
    async fn incoming(&mut self, stream: TcpStream) {
        match self.session.state() {
            // Not in Idle: the FSM ignores the connection there (it is waiting out its restart
            // damping), and a held, silent connection would stop the neighbor's retries.
            State::Connect | State::Active if self.writer.is_none() => {
                self.connecting = None;
                self.attach(stream);
                self.handle(Event::TcpConnectionConfirmed).await;
            }
            state => {
                tracing::debug!(peer = %self.remote, ?state, "refusing a second connection");
            }
        }
    }

    /// Decodes every complete message in the buffer.
    async fn receive(&mut self) {
        loop {
            let length = match message_length(&self.buffer) {
                Ok(Some(length)) if self.buffer.len() >= length => length,
                Ok(_) => return,
                Err(err) => {
                    self.handle(Event::BgpHeaderErr((&err.notification).into()))
                        .await;
                    return;
                }
            };
            let frame = self.buffer.split_to(length);
            let event = match Message::decode(&frame, &self.codec) {
                Ok(decoded) => self.message_event(decoded.message, decoded.update_error),
                Err(err) => self.error_event(frame[18], err),
            };
            self.handle(event).await;
            if self.reader.is_none() {
                return;
            }
        }
    }

    fn message_event(&mut self, message: Message, update_error: Option<UpdateError>) -> Event {
        match message {
            Message::Open(open) => Event::BgpOpen((&open).into()),
            Message::Keepalive => Event::KeepAliveMsg,
            Message::Notification(notification) => {
                tracing::warn!(peer = %self.remote, "NOTIFICATION received: {notification}");
                Event::notification((&notification).into())
            }
            Message::Update(update) => {
                if self.session.state() == State::Established {
                    if let Some(error) = &update_error {
                        tracing::warn!(peer = %self.remote, "malformed UPDATE: {error:?}");
                    }
                    let _ = self.events.send(PeerEvent::Update {
                        peer: self.peer,
                        update: Box::new(update),
                        error: update_error,
                    });
                }
                Event::UpdateMsg
            }
            Message::RouteRefresh(refresh) => {
                if self.session.state() == State::Established {
                    let _ = self.events.send(PeerEvent::RouteRefresh {
                        peer: self.peer,
                        afi: refresh.afi,
                    });
                }
                Event::RouteRefreshMsg
            }
            // RFC 2918 3: ignore a refresh for a family we never advertised.
            Message::RouteRefreshUnknownFamily { afi, safi, .. } => {
                tracing::debug!(peer = %self.remote, afi, safi, "ROUTE-REFRESH for an unknown family");
                Event::RouteRefreshMsg
            }
        }
    }

    /// The FSM event for a message that failed to decode: which one depends on its type.
    fn error_event(&self, message_type: u8, err: MessageError) -> Event {
        tracing::warn!(peer = %self.remote, "bad message: {}", err.reason);
        let notification = (&err.notification).into();
        match MessageType::from_u8(message_type) {
            Some(MessageType::Open) => Event::BgpOpenMsgErr(notification),
            Some(MessageType::Update) => Event::UpdateMsgErr(notification),
            _ => Event::BgpHeaderErr(notification),
        }
    }

    /// Feeds an event to the FSM and carries out its actions in order.
    async fn handle(&mut self, event: Event) {
        let before = self.session.state();
        let mut pending = vec![event];
        while let Some(event) = pending.pop() {
            for action in self.session.handle(event) {
                if let Some(next) = self.act(action).await {
                    pending.push(next);
                }
            }
        }
        let after = self.session.state();
        if after != before {
            let _ = self.events.send(PeerEvent::State {
                peer: self.peer,
                state: after,
            });
        }
    }

    /// Carries out one action; a follow-up event (automatic restart) is returned.
    async fn act(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Connect => {
                let remote = self.remote;
                self.connecting = Some(Box::pin(async move {
                    tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote))
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
                if let Some(mut writer) = self.writer.take() {
                    let _ = writer.shutdown().await;
                }
                self.detach();
            }
            Action::SendOpen(open) => {
                let message = Message::Open((&open).into());
                self.write(&message.encode(&Codec::default())).await;
            }
            Action::SendKeepalive => {
                self.write(&Message::Keepalive.encode(&self.codec)).await;
            }
            Action::SendNotification(notification) => {
                tracing::warn!(peer = %self.remote, "NOTIFICATION sent: {notification}");
                let message = Message::Notification((&notification).into());
                self.write(&message.encode(&self.codec)).await;
            }
            Action::StartTimer(timer, after) => {
                self.timers[timer_index(timer)] = Some(Instant::now() + after);
            }
            Action::StopTimer(timer) => self.timers[timer_index(timer)] = None,
            Action::Established(negotiated) => {
                self.codec = Codec {
                    four_octet_as: negotiated.four_octet_as,
                    extended_next_hop_ipv4: negotiated.extended_next_hop.contains(&(
                        Afi::Ipv4,
                        Safi::Unicast,
                        Afi::Ipv6,
                    )),
                };
                let local = self.writer.as_ref().and_then(|w| w.local_addr().ok());
                let remote = self.writer.as_ref().and_then(|w| w.peer_addr().ok());
                if let (Some(local), Some(remote)) = (local, remote) {
                    tracing::info!(peer = %self.remote, asn = negotiated.peer_as,
                        hold = negotiated.hold_time, "session established");
                    let _ = self.events.send(PeerEvent::Established {
                        peer: self.peer,
                        negotiated,
                        local: canonical(local),
                        remote: canonical(remote),
                    });
                }
            }
            Action::Down { reason } => {
                tracing::warn!(peer = %self.remote, "session down: {reason}");
                let _ = self.events.send(PeerEvent::Down {
                    peer: self.peer,
                    reason: reason.to_string(),
                });
                return Some(Event::AutomaticStart);
            }
        }
        None
    }

    async fn send_updates(&mut self, updates: &[Update]) {
        if self.session.state() != State::Established {
            return;
        }
        for update in updates {
            for message in encode_updates(update, &self.codec) {
                self.write(&message).await;
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        if let Err(err) = writer.write_all(bytes).await {
            tracing::debug!(peer = %self.remote, "write: {err}");
            // The read side sees the failure too and feeds TcpConnectionFails.
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// IPv4-mapped IPv6 addresses (from a dual-stack socket) as plain IPv4; other IPv6 addresses
/// keep their scope (the interface of a link-local session).
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => {
            SocketAddr::new(canonical_ip(addr.ip()), addr.port())
        }
        addr => addr,
    }
}

pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
