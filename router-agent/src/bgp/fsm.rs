//! The BGP session finite state machine (RFC 4271 section 8), sans-IO.
//!
//! A [`Session`] owns no socket, timer or clock: the driver feeds it [`Event`]s (named after
//! the RFC 4271 8.1 events) and carries out the [`Action`]s it returns, in order. Everything
//! here is therefore deterministic and tested without a network.
//!
//! # Driver contract
//!
//! - **Actions in order.** `SendNotification` followed by `Disconnect` means: write the
//!   NOTIFICATION, then close (flush before closing, or the peer never learns why).
//! - **Timers.** One timer per [`Timer`] kind. `StartTimer(t, d)` arms `t` to expire `d` from
//!   now, replacing any pending expiry of `t`; `StopTimer(t)` cancels it. Deliver
//!   `<t>TimerExpires` only for the latest arming (e.g. one `tokio::time::Sleep` per timer,
//!   reset in place, polled by the task that owns the session). An expiry for a timer the
//!   session does not consider running is stale and ignored.
//! - **TCP.** `Connect`: open a connection to the peer (port 179) and report `TcpCrAcked`
//!   when it is up or `TcpConnectionFails` when it fails. `Disconnect`: close the session's
//!   connection or abort its attempt (idempotent). Report `TcpConnectionFails` whenever the
//!   connection of a session past Connect/Active closes or errors.
//! - **Messages.** OPEN: `BgpOpen` (the session validates it). KEEPALIVE: `KeepAliveMsg`.
//!   NOTIFICATION: [`Event::notification`]. ROUTE-REFRESH: `RouteRefreshMsg`. UPDATE: hand it
//!   to the RIB only if [`Session::state`] is `Established`, then feed `UpdateMsg` (it restarts
//!   the hold timer; in any other state it is an FSM error and must not reach the RIB).
//!   Decoding errors are fed with the NOTIFICATION the codec chose: `BgpHeaderErr`,
//!   `BgpOpenMsgErr` (malformed OPEN), `UpdateMsgErr`.
//! - **Down.** `Down` is emitted on every transition to Idle. The driver then withdraws what
//!   the peer announced if the session had been Established ("deletes all routes associated
//!   with this connection"), and, unless the peer was stopped on purpose, feeds
//!   `AutomaticStart`: the session damps restarts itself (IdleHold timer, exponential backoff
//!   over consecutive failures, [`SessionConfig::idle_hold_time`]).
//!
//! # Connections and collisions (RFC 4271 6.8, 8.2.1)
//!
//! A session owns at most one TCP connection. The connections to one peer, and their
//! collisions, are [`Peering`]'s (`fsm/peering.rs`, sans-IO too): a primary session per peer and
//! a second one for a connection the peer opens while the primary is past Active, resolved
//! with [`Session::wins_collision`] (from [`collision_winner`] and [`Session::initiator`]) and
//! `OpenCollisionDump` (Cease / Connection Collision Resolution) to the loser.

//! # Deviations from RFC 4271 8.2.2
//!
//! Optional session attributes: none of DelayOpen (events 12, 20), TrackTcpState (14, 15),
//! SendNOTIFICATIONwithoutOPEN (no NOTIFICATION before our OPEN is sent: errors in Connect
//! and Active close silently), CollisionDetectEstablishedState, or
//! AcceptConnectionsUnconfiguredPeers. Besides:
//! 1. PassiveTcpEstablishment is [`SessionConfig::passive`], not events 4/5. A passive session
//!    runs no ConnectRetry timer: the RFC's expiry in Active would initiate a connection.
//! 2. DampPeerOscillations: in Idle, `AutomaticStart` after failures (ConnectRetryCounter > 0)
//!    arms the IdleHold timer and starts on its expiry (events 6 and 13 folded into 3 and 13).
//!    So that the counter counts consecutive failures, `AutomaticStart` does not zero it;
//!    `ManualStart`, `ManualStop` and reaching Established do. `ManualStop` in Idle cancels a
//!    pending IdleHold (the RFC ignores it there).
//! 3. TcpConnectionFails in Connect goes to Active and restarts ConnectRetry (RFC 1771, and RFC
//!    4271's own DelayOpen branch) instead of Idle: a refused connection is retried every
//!    ConnectRetry while listening. In Active it goes to Idle without restarting ConnectRetry
//!    (the RFC restarts it while entering Idle).
//! 4. A NOTIFICATION received in OpenSent (event 25) closes without answering: RFC 4271 lists
//!    it among the events answered with an FSM Error, but a NOTIFICATION's sender has already
//!    closed, and NOTIFICATIONs are never answered.
//! 5. A message header error in Established sends the codec's Message Header Error (RFC 4271
//!    6.1), not the FSM Error of 8.2.2's "any other event" list.
//! 6. An OPEN (valid or not) in OpenConfirm or Established arrived on this session's own
//!    connection: FSM Error. Collisions between connections are resolved by [`Peering`] with
//!    `OpenCollisionDump`.
//! 7. FSM Errors carry the RFC 6608 subcodes (unexpected message in OpenSent, OpenConfirm,
//!    Established).
//! 8. Timer expiries for timers that are not running are ignored (see the driver contract);
//!    in the RFC's model they cannot occur, so its "any other event" clauses for timer events
//!    are unreachable.
//! 9. ROUTE-REFRESH (RFC 2918, not an RFC 4271 event) restarts the hold timer in Established
//!    like any message from a live peer, and is an FSM Error before Established.
//! 10. The KeepaliveTimer is not restarted when an UPDATE is sent: KEEPALIVEs go out every
//!     hold/3 regardless, which the peer cannot tell from an idle session.
//! 11. OPEN checks follow the updates to RFC 4271: the BGP Identifier is any non-zero value and
//!     only an internal peer may not share ours (RFC 6286); AS 0 is a Bad Peer AS (RFC 7607), and
//!     so is a 4-octet AS capability whose AS is neither My Autonomous System nor AS_TRANS
//!     (RFC 6793).
//! 12. `HoldDown` (max-prefix teardowns) is `AutomaticStop` plus the optional session attribute
//!     AllowAutomaticStart set to false: in Idle, `AutomaticStart` is ignored until the
//!     IdleHold timer armed with `restart_after` expires, or, without one, until `ManualStart`.

#[cfg(test)]
mod hardening_tests;
mod notification;
mod open;
mod peering;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

pub use notification::{
    CeaseSubcode, MAX_SHUTDOWN_MESSAGE_LEN, NotificationInfo, error_code, fsm_error, open_error,
};
pub use open::{AS_TRANS, BGP_VERSION, Capabilities, Negotiated, OpenInfo};
pub use peering::{Conn, Incoming, Peering, Restart};

use crate::bgp::packet::types::{Afi, Safi};

/// HoldTimer while waiting for the peer's OPEN: "a large value", 4 minutes suggested
/// (RFC 4271 8.2.2).
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// Ceiling of the IdleHold backoff (the RFC 4271 8.1.1 example value), unless
/// [`SessionConfig::idle_hold_time`] is larger.
pub const MAX_IDLE_HOLD_TIME: Duration = Duration::from_secs(120);

/// The AS numbers the peer may open with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemoteAs {
    Exact(u32),
    /// Any AS but ours (eBGP).
    External,
    /// Ours (iBGP).
    Internal,
}

impl RemoteAs {
    pub fn accepts(self, peer_as: u32, local_as: u32) -> bool {
        match self {
            RemoteAs::Exact(asn) => peer_as == asn,
            RemoteAs::External => peer_as != local_as,
            RemoteAs::Internal => peer_as == local_as,
        }
    }
}

/// One peering's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_as: u32,
    pub remote_as: RemoteAs,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Proposed hold time in seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// ConnectRetryTime: delay between connection attempts.
    pub connect_retry: Duration,
    /// IdleHoldTime: the delay before an `AutomaticStart` after one failure, doubled for each
    /// further consecutive failure up to [`MAX_IDLE_HOLD_TIME`]. Zero: no damping.
    pub idle_hold_time: Duration,
    /// Never initiate a connection: wait for the peer's.
    pub passive: bool,
    /// What we offer. `four_octet_as` is ignored: the local AS is always announced.
    pub capabilities: Capabilities,
}

impl SessionConfig {
    pub const DEFAULT_HOLD_TIME: u16 = 90;
    /// Short: a host wants its uplinks back quickly (RFC 4271 suggests 120 s).
    pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_secs(5);
    pub const DEFAULT_IDLE_HOLD_TIME: Duration = Duration::from_secs(5);

    /// Defaults: hold time 90 s, ConnectRetry 5 s, IdleHold 5 s, active, offering IPv4 unicast
    /// and Route Refresh.
    pub fn new(local_as: u32, remote_as: RemoteAs, router_id: Ipv4Addr) -> Self {
        SessionConfig {
            local_as,
            remote_as,
            router_id,
            hold_time: Self::DEFAULT_HOLD_TIME,
            connect_retry: Self::DEFAULT_CONNECT_RETRY,
            idle_hold_time: Self::DEFAULT_IDLE_HOLD_TIME,
            passive: false,
            capabilities: Capabilities {
                multiprotocol: [(Afi::Ipv4, Safi::Unicast)].into(),
                route_refresh: true,
                ..Capabilities::default()
            },
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if matches!(self.hold_time, 1 | 2) {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if self.local_as == 0 || self.remote_as == RemoteAs::Exact(0) {
            return Err(ConfigError::ZeroAs);
        }
        if self.router_id.is_unspecified() {
            return Err(ConfigError::ZeroRouterId);
        }
        if self.connect_retry.is_zero() {
            return Err(ConfigError::ZeroConnectRetry);
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("hold time {0} s: must be 0 or at least 3 s (RFC 4271 4.2)")]
    HoldTime(u16),
    #[error("AS 0 is reserved and cannot be peered with (RFC 7607)")]
    ZeroAs,
    #[error("the BGP Identifier must be non-zero (RFC 6286)")]
    ZeroRouterId,
    #[error("the ConnectRetry time must be non-zero")]
    ZeroConnectRetry,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    ConnectRetry,
    Hold,
    Keepalive,
    /// Damping of automatic restarts (RFC 4271 8.1.1, DampPeerOscillations).
    IdleHold,
}

/// An end of a TCP connection, as the initiator of the connection (the sender of the first
/// SYN, RFC 4271 8.2.1): `Local` for a connection we opened, `Remote` for one we accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Local,
    Remote,
}

/// Collision resolution (RFC 4271 6.8): of two connections between the same two speakers, the
/// one initiated by the speaker with the higher BGP Identifier survives, the identifiers
/// compared as unsigned 32-bit integers. Equal identifiers (legal between ASes, RFC 6286 2.3):
/// the one initiated by the speaker with the larger AS survives. Fully equal pairs cannot come
/// from an OPEN the FSM accepted; they give `Local`.
pub fn collision_winner(
    local_id: Ipv4Addr,
    local_as: u32,
    remote_id: Ipv4Addr,
    remote_as: u32,
) -> Side {
    if (u32::from(remote_id), remote_as) > (u32::from(local_id), local_as) {
        Side::Remote
    } else {
        Side::Local
    }
}

/// The inputs of the FSM, named after the RFC 4271 8.1 events (the numbers are the RFC's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// 1 (4 for a passive session).
    ManualStart,
    /// 2, with the Cease to send if our OPEN is out (see [`NotificationInfo::cease`]; RFC 9003
    /// Administrative Shutdown with a message is the usual one).
    ManualStop(NotificationInfo),
    /// 3 (5 for a passive session; 6/7 behaviour with damping, see the module deviations).
    AutomaticStart,
    /// 8, e.g. too many prefixes ([`NotificationInfo::cease_max_prefixes`]), with the Cease
    /// to send if our OPEN is out.
    AutomaticStop(NotificationInfo),
    /// 9.
    ConnectRetryTimerExpires,
    /// 10.
    HoldTimerExpires,
    /// 11.
    KeepaliveTimerExpires,
    /// 13.
    IdleHoldTimerExpires,
    /// 16: our connection attempt succeeded.
    TcpCrAcked,
    /// 17: we accepted the peer's connection.
    TcpConnectionConfirmed,
    /// 18: the connection attempt failed, or the connection closed or failed.
    TcpConnectionFails,
    /// 19: an OPEN was received; the session checks it (an invalid one is event 22 for the
    /// FSM).
    BgpOpen(OpenInfo),
    /// 21: message header error, with the NOTIFICATION to send.
    BgpHeaderErr(NotificationInfo),
    /// 22: malformed OPEN found by the codec, with the NOTIFICATION to send.
    BgpOpenMsgErr(NotificationInfo),
    /// 23: this connection loses a collision.
    OpenCollisionDump,
    /// 24: NOTIFICATION received, Unsupported Version Number.
    NotifMsgVerErr(NotificationInfo),
    /// 25: NOTIFICATION received, anything else.
    NotifMsg(NotificationInfo),
    /// 26.
    KeepAliveMsg,
    /// 27: a valid UPDATE was received.
    UpdateMsg,
    /// 28: an invalid UPDATE was received, with the NOTIFICATION to send.
    UpdateMsgErr(NotificationInfo),
    /// A ROUTE-REFRESH was received (RFC 2918; not an RFC 4271 event).
    RouteRefreshMsg,
    /// Stop and stay down (not an RFC 4271 event): `AutomaticStop` with the session attribute
    /// AllowAutomaticStart (RFC 4271 8.1.1) false until `restart_after` has passed (the
    /// IdleHold timer runs it) or, without it, until `ManualStart`. Incoming connections are
    /// refused meanwhile (Idle). For max-prefix teardowns (RFC 4486 Cease subcode 1).
    HoldDown {
        notification: NotificationInfo,
        restart_after: Option<Duration>,
    },
    /// RFC 9687 SendHoldTimer_Expires: a write made no progress for the send hold time (the
    /// driver owns that timer: only it sees its writes wait; see [`send_hold_time`]).
    SendHoldTimerExpires,
}

/// RFC 9687's send hold time of a session with this negotiated hold time: twice the hold
/// time (FRR's default; RFC 9687 suggests at least 8 minutes, but a stalled write also
/// stalls this session's other timers, so a host wants it as short as the hold time allows),
/// and with hold time 0 (no hold timer) the RFC's 8 minutes.
pub fn send_hold_time(hold_time: u16) -> Duration {
    const RFC_9687_DEFAULT: Duration = Duration::from_secs(8 * 60);
    if hold_time == 0 {
        RFC_9687_DEFAULT
    } else {
        Duration::from_secs(2 * u64::from(hold_time))
    }
}

impl Event {
    /// The event for a received NOTIFICATION: `NotifMsgVerErr` or `NotifMsg`.
    pub fn notification(notification: NotificationInfo) -> Event {
        if notification.is_version_error() {
            Event::NotifMsgVerErr(notification)
        } else {
            Event::NotifMsg(notification)
        }
    }

    /// The RFC 4271 event number (8.2.1.4: may be used for network management).
    pub fn number(&self) -> Option<u8> {
        Some(match self {
            Event::ManualStart => 1,
            Event::ManualStop(_) => 2,
            Event::AutomaticStart => 3,
            Event::AutomaticStop(_) => 8,
            Event::ConnectRetryTimerExpires => 9,
            Event::HoldTimerExpires => 10,
            Event::KeepaliveTimerExpires => 11,
            Event::IdleHoldTimerExpires => 13,
            Event::TcpCrAcked => 16,
            Event::TcpConnectionConfirmed => 17,
            Event::TcpConnectionFails => 18,
            Event::BgpOpen(_) => 19,
            Event::BgpHeaderErr(_) => 21,
            Event::BgpOpenMsgErr(_) => 22,
            Event::OpenCollisionDump => 23,
            Event::NotifMsgVerErr(_) => 24,
            Event::NotifMsg(_) => 25,
            Event::KeepAliveMsg => 26,
            Event::UpdateMsg => 27,
            Event::UpdateMsgErr(_) => 28,
            Event::RouteRefreshMsg | Event::HoldDown { .. } | Event::SendHoldTimerExpires => {
                return None;
            }
        })
    }

    /// The RFC 4271 name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ManualStart => "ManualStart",
            Event::ManualStop(_) => "ManualStop",
            Event::AutomaticStart => "AutomaticStart",
            Event::AutomaticStop(_) => "AutomaticStop",
            Event::ConnectRetryTimerExpires => "ConnectRetryTimer_Expires",
            Event::HoldTimerExpires => "HoldTimer_Expires",
            Event::KeepaliveTimerExpires => "KeepaliveTimer_Expires",
            Event::IdleHoldTimerExpires => "IdleHoldTimer_Expires",
            Event::TcpCrAcked => "Tcp_CR_Acked",
            Event::TcpConnectionConfirmed => "TcpConnectionConfirmed",
            Event::TcpConnectionFails => "TcpConnectionFails",
            Event::BgpOpen(_) => "BGPOpen",
            Event::BgpHeaderErr(_) => "BGPHeaderErr",
            Event::BgpOpenMsgErr(_) => "BGPOpenMsgErr",
            Event::OpenCollisionDump => "OpenCollisionDump",
            Event::NotifMsgVerErr(_) => "NotifMsgVerErr",
            Event::NotifMsg(_) => "NotifMsg",
            Event::KeepAliveMsg => "KeepAliveMsg",
            Event::UpdateMsg => "UpdateMsg",
            Event::UpdateMsgErr(_) => "UpdateMsgErr",
            Event::RouteRefreshMsg => "RouteRefreshMsg",
            Event::HoldDown { .. } => "HoldDown",
            Event::SendHoldTimerExpires => "SendHoldTimer_Expires",
        }
    }

    /// The timer whose expiry this is.
    fn timer(&self) -> Option<Timer> {
        match self {
            Event::ConnectRetryTimerExpires => Some(Timer::ConnectRetry),
            Event::HoldTimerExpires => Some(Timer::Hold),
            Event::KeepaliveTimerExpires => Some(Timer::Keepalive),
            Event::IdleHoldTimerExpires => Some(Timer::IdleHold),
            _ => None,
        }
    }

    /// Whether this is the receipt of a message (for the RFC 6608 FSM Error subcodes).
    fn is_message(&self) -> bool {
        matches!(
            self,
            Event::BgpOpen(_)
                | Event::BgpOpenMsgErr(_)
                | Event::KeepAliveMsg
                | Event::UpdateMsg
                | Event::UpdateMsgErr(_)
                | Event::RouteRefreshMsg
        )
    }
}

/// The outputs of the FSM, for the driver to carry out in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Initiate a TCP connection to the peer.
    Connect,
    /// Close the connection (after writing what was queued before) or abort the attempt.
    Disconnect,
    SendOpen(OpenInfo),
    SendKeepalive,
    SendNotification(NotificationInfo),
    /// Arm the timer, replacing a pending expiry.
    StartTimer(Timer, Duration),
    StopTimer(Timer),
    /// The session is up: UPDATEs may flow, with these parameters.
    Established(Negotiated),
    /// The session went to Idle. If it had been Established, its routes must go.
    Down {
        reason: DownReason,
    },
}

/// Why a session went to Idle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    ManualStop,
    AutomaticStop,
    /// This connection lost a collision.
    OpenCollisionDump,
    /// We sent Hold Timer Expired.
    HoldTimerExpired,
    /// The peer stopped reading: a write made no progress for the send hold time (RFC 9687).
    SendHoldTimerExpired,
    /// The connection failed or the peer closed it.
    TcpConnectionFails,
    /// The peer sent this NOTIFICATION.
    NotificationReceived(NotificationInfo),
    /// Something the peer sent is wrong (header, OPEN, UPDATE); this NOTIFICATION says what,
    /// and was sent if our OPEN was out.
    ErrorDetected(NotificationInfo),
    /// The event is not valid in the state the session was in (an FSM Error NOTIFICATION was
    /// sent if our OPEN was out).
    FsmError {
        event: &'static str,
    },
    /// `HoldDown`: the session stays down for this long, or until started by the operator.
    HeldDown {
        restart_after: Option<Duration>,
    },
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::ManualStop => f.write_str("stopped by the operator"),
            DownReason::AutomaticStop => f.write_str("stopped automatically"),
            DownReason::OpenCollisionDump => f.write_str("connection collision, this one closed"),
            DownReason::HoldTimerExpired => f.write_str("hold timer expired"),
            DownReason::SendHoldTimerExpired => {
                f.write_str("send hold timer expired: the peer stopped reading")
            }
            DownReason::TcpConnectionFails => f.write_str("TCP connection failed or closed"),
            DownReason::NotificationReceived(n) => write!(f, "NOTIFICATION received: {n}"),
            DownReason::ErrorDetected(n) => write!(f, "error in a received message: {n}"),
            DownReason::FsmError { event } => write!(f, "unexpected event {event}"),
            DownReason::HeldDown {
                restart_after: Some(after),
            } => write!(f, "held down for {after:?}"),
            DownReason::HeldDown {
                restart_after: None,
            } => f.write_str("held down until cleared by the operator"),
        }
    }
}

/// The set of running timers.
#[derive(Clone, Copy, Debug, Default)]
struct Timers(u8);

impl Timers {
    fn bit(timer: Timer) -> u8 {
        1 << timer as u8
    }

    fn contains(self, timer: Timer) -> bool {
        self.0 & Self::bit(timer) != 0
    }

    fn insert(&mut self, timer: Timer) {
        self.0 |= Self::bit(timer);
    }

    /// Whether it was running.
    fn remove(&mut self, timer: Timer) -> bool {
        let was = self.contains(timer);
        self.0 &= !Self::bit(timer);
        was
    }
}

/// What a teardown does to the ConnectRetryCounter.
#[derive(Clone, Copy, Debug)]
enum Counter {
    Zero,
    Increment,
    Keep,
}

/// The FSM of one BGP connection (see the module documentation).
#[derive(Clone, Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    timers: Timers,
    connect_retry_counter: u32,
    initiator: Option<Side>,
    peer_open: Option<OpenInfo>,
    negotiated: Option<Negotiated>,
    /// AllowAutomaticStart is false (a `HoldDown`): `AutomaticStart` is ignored in Idle.
    held_down: bool,
}

impl Session {
    /// A session in Idle; nothing happens until a start event.
    pub fn new(config: SessionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Session {
            config,
            state: State::Idle,
            timers: Timers::default(),
            connect_retry_counter: 0,
            initiator: None,
            peer_open: None,
            negotiated: None,
            held_down: false,
        })
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Held down by `HoldDown`: only the IdleHold expiry (if `restart_after` was given) or
    /// `ManualStart` starts it again.
    pub fn held_down(&self) -> bool {
        self.held_down
    }

    /// The session parameters, in OpenConfirm and Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The peer's OPEN, in OpenConfirm and Established.
    pub fn peer_open(&self) -> Option<&OpenInfo> {
        self.peer_open.as_ref()
    }

    /// Who initiated this session's connection, from OpenSent on.
    pub fn initiator(&self) -> Option<Side> {
        self.initiator
    }

    /// ConnectRetryCounter: failures since the last start by the operator or Established.
    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// Whether this session's connection survives a collision with another connection to the
    /// same peer (RFC 4271 6.8); `None` before the peer's OPEN was accepted. The other
    /// connection, initiated by the other side, has the opposite fate.
    pub fn wins_collision(&self) -> Option<bool> {
        let negotiated = self.negotiated.as_ref()?;
        let winner = collision_winner(
            self.config.router_id,
            self.config.local_as,
            negotiated.peer_router_id,
            negotiated.peer_as,
        );
        Some(self.initiator? == winner)
    }

    /// Processes one event and returns the actions to carry out, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(timer) = event.timer()
            && !self.timers.remove(timer)
        {
            tracing::trace!(event = event.name(), state = %self.state, "stale timer expiry ignored");
            return out;
        }
        let from = self.state;
        let name = event.name();
        match (self.state, event) {
            (
                _,
                Event::HoldDown {
                    notification,
                    restart_after,
                },
            ) => self.hold_down(notification, restart_after, &mut out),
            // No connection to write to: nothing can have stalled.
            (State::Idle | State::Connect | State::Active, Event::SendHoldTimerExpires) => {}
            (State::Idle, event) => self.idle(event, &mut out),
            (State::Connect, event) => self.connect(event, &mut out),
            (State::Active, event) => self.active(event, &mut out),
            (State::OpenSent, event) => self.open_sent(event, &mut out),
            (State::OpenConfirm, event) => self.open_confirm(event, &mut out),
            (State::Established, event) => self.established(event, &mut out),
        }
        if self.state != from {
            tracing::debug!(event = name, from = %from, to = %self.state, "BGP FSM transition");
        }
        out
    }

    fn idle(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::ManualStart => {
                self.stop_timer(out, Timer::IdleHold);
                self.connect_retry_counter = 0;
                self.held_down = false;
                self.start(out);
            }
            Event::AutomaticStart => {
                if self.held_down || self.timers.contains(Timer::IdleHold) {
                    // Held down, or damping in progress: the IdleHold expiry (if running)
                    // starts the session.
                } else if let Some(delay) = self.idle_hold_delay() {
                    self.start_timer(out, Timer::IdleHold, delay);
                } else {
                    self.start(out);
                }
            }
            // Only reached when the timer was running (see `handle`).
            Event::IdleHoldTimerExpires => {
                self.held_down = false;
                self.start(out);
            }
            Event::ManualStop(_) => {
                self.stop_timer(out, Timer::IdleHold);
                self.connect_retry_counter = 0;
            }
            // Idle refuses connections and ignores everything else.
            _ => {}
        }
    }

    fn connect(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::ManualStart | Event::AutomaticStart => {}
            Event::ManualStop(_) => {
                self.tear_down(out, None, DownReason::ManualStop, Counter::Zero)
            }
            Event::ConnectRetryTimerExpires => {
                out.push(Action::Disconnect);
                self.start_timer(out, Timer::ConnectRetry, self.config.connect_retry);
                out.push(Action::Connect);
            }
            Event::TcpCrAcked => self.connection_up(out, Side::Local),
            Event::TcpConnectionConfirmed => self.connection_up(out, Side::Remote),
            Event::TcpConnectionFails => {
                // Deviation 3: retry after ConnectRetry, listening meanwhile.
                out.push(Action::Disconnect);
                self.listen(out);
            }
            other => self.abort_before_open(out, other),
        }
    }

    fn active(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::ManualStart | Event::AutomaticStart => {}
            Event::ManualStop(_) => {
                self.tear_down(out, None, DownReason::ManualStop, Counter::Zero)
            }
            Event::ConnectRetryTimerExpires => {
                // Never running for a passive session.
                self.start_timer(out, Timer::ConnectRetry, self.config.connect_retry);
                out.push(Action::Connect);
                self.state = State::Connect;
            }
            Event::TcpCrAcked => self.connection_up(out, Side::Local),
            Event::TcpConnectionConfirmed => self.connection_up(out, Side::Remote),
            Event::TcpConnectionFails => self.tear_down(
                out,
                None,
                DownReason::TcpConnectionFails,
                Counter::Increment,
            ),
            other => self.abort_before_open(out, other),
        }
    }

    fn open_sent(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::ManualStart | Event::AutomaticStart => {}
            // A second connection: tracked by the driver in its own session.
            Event::TcpCrAcked | Event::TcpConnectionConfirmed => {}
            Event::TcpConnectionFails => {
                self.stop_timer(out, Timer::Hold);
                out.push(Action::Disconnect);
                self.initiator = None;
                self.listen(out);
            }
            Event::BgpOpen(open) => match open::validate(&self.config, &open) {
                Ok(peer_as) => self.open_received(out, open, peer_as),
                Err(notification) => self.tear_down(
                    out,
                    Some(notification.clone()),
                    DownReason::ErrorDetected(notification),
                    Counter::Increment,
                ),
            },
            // Deviation 4: no FSM Error in answer to a NOTIFICATION.
            Event::NotifMsg(notification) => self.tear_down(
                out,
                None,
                DownReason::NotificationReceived(notification),
                Counter::Increment,
            ),
            other => self.common_after_open(out, other),
        }
    }

    fn open_confirm(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::ManualStart | Event::AutomaticStart => {}
            Event::TcpCrAcked | Event::TcpConnectionConfirmed => {}
            Event::KeepaliveTimerExpires => self.send_keepalive(out),
            Event::TcpConnectionFails => self.tear_down(
                out,
                None,
                DownReason::TcpConnectionFails,
                Counter::Increment,
            ),
            Event::NotifMsg(notification) => self.tear_down(
                out,
                None,
                DownReason::NotificationReceived(notification),
                Counter::Increment,
            ),
            Event::KeepAliveMsg => {
                self.restart_hold_timer(out);
                self.state = State::Established;
                self.connect_retry_counter = 0;
                let negotiated = self
                    .negotiated
                    .clone()
                    .expect("OpenConfirm has negotiated parameters");
                out.push(Action::Established(negotiated));
            }
            other => self.common_after_open(out, other),
        }
    }

    fn established(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::ManualStart | Event::AutomaticStart => {}
            Event::TcpCrAcked | Event::TcpConnectionConfirmed => {}
            Event::KeepaliveTimerExpires => self.send_keepalive(out),
            Event::TcpConnectionFails => self.tear_down(
                out,
                None,
                DownReason::TcpConnectionFails,
                Counter::Increment,
            ),
            // Unlike OpenSent and OpenConfirm, a version error counts as a failure here.
            Event::NotifMsg(notification) | Event::NotifMsgVerErr(notification) => self.tear_down(
                out,
                None,
                DownReason::NotificationReceived(notification),
                Counter::Increment,
            ),
            // Deviation 9 for ROUTE-REFRESH.
            Event::KeepAliveMsg | Event::UpdateMsg | Event::RouteRefreshMsg => {
                self.restart_hold_timer(out)
            }
            Event::UpdateMsgErr(notification) => self.tear_down(
                out,
                Some(notification.clone()),
                DownReason::ErrorDetected(notification),
                Counter::Increment,
            ),
            other => self.common_after_open(out, other),
        }
    }

    /// `HoldDown` in any state: close like `AutomaticStop` (a Cease if our OPEN is out), then
    /// stay in Idle; the IdleHold timer, if any, ends the hold-down.
    fn hold_down(
        &mut self,
        notification: NotificationInfo,
        restart_after: Option<Duration>,
        out: &mut Vec<Action>,
    ) {
        // Held first: the driver answers the `Down` below with `AutomaticStart`. The timer
        // goes first too, so that `Down` stays the last action.
        self.held_down = true;
        match restart_after {
            Some(after) => self.start_timer(out, Timer::IdleHold, after),
            None => self.stop_timer(out, Timer::IdleHold),
        }
        let reason = DownReason::HeldDown { restart_after };
        match self.state {
            State::Idle => {}
            State::Connect | State::Active => self.tear_down(out, None, reason, Counter::Increment),
            State::OpenSent | State::OpenConfirm | State::Established => {
                self.tear_down(out, Some(notification), reason, Counter::Increment)
            }
        }
    }

    /// Connect and Active: events that close the connection. Our OPEN is not out, so no
    /// NOTIFICATION is sent (SendNOTIFICATIONwithoutOPEN is false).
    fn abort_before_open(&mut self, out: &mut Vec<Action>, event: Event) {
        let reason = match event {
            Event::AutomaticStop(_) => DownReason::AutomaticStop,
            Event::OpenCollisionDump => DownReason::OpenCollisionDump,
            Event::BgpHeaderErr(n) | Event::BgpOpenMsgErr(n) => DownReason::ErrorDetected(n),
            Event::NotifMsgVerErr(n) | Event::NotifMsg(n) => DownReason::NotificationReceived(n),
            other => DownReason::FsmError {
                event: other.name(),
            },
        };
        self.tear_down(out, None, reason, Counter::Increment);
    }

    /// OpenSent, OpenConfirm and Established: what they handle alike. Our OPEN is out, so a
    /// NOTIFICATION precedes every close but those caused by the peer's NOTIFICATION or the
    /// loss of the connection.
    fn common_after_open(&mut self, out: &mut Vec<Action>, event: Event) {
        match event {
            Event::ManualStop(cease) => {
                self.tear_down(out, Some(cease), DownReason::ManualStop, Counter::Zero)
            }
            Event::AutomaticStop(cease) => self.tear_down(
                out,
                Some(cease),
                DownReason::AutomaticStop,
                Counter::Increment,
            ),
            Event::HoldTimerExpires => self.tear_down(
                out,
                Some(NotificationInfo::hold_timer_expired()),
                DownReason::HoldTimerExpired,
                Counter::Increment,
            ),
            // RFC 9687 4: the NOTIFICATION is attempted, the connection closed regardless.
            Event::SendHoldTimerExpires => self.tear_down(
                out,
                Some(NotificationInfo::send_hold_timer_expired()),
                DownReason::SendHoldTimerExpired,
                Counter::Increment,
            ),
            Event::OpenCollisionDump => self.tear_down(
                out,
                Some(NotificationInfo::cease(
                    CeaseSubcode::ConnectionCollisionResolution,
                    None,
                )),
                DownReason::OpenCollisionDump,
                Counter::Increment,
            ),
            // Deviation 5 for Established.
            Event::BgpHeaderErr(notification) => self.tear_down(
                out,
                Some(notification.clone()),
                DownReason::ErrorDetected(notification),
                Counter::Increment,
            ),
            // OpenSent and OpenConfirm; an OPEN in Established is an FSM error (deviation 6).
            Event::BgpOpenMsgErr(notification) if self.state != State::Established => self
                .tear_down(
                    out,
                    Some(notification.clone()),
                    DownReason::ErrorDetected(notification),
                    Counter::Increment,
                ),
            // The peer does not speak BGP-4: nothing to retry (not counted as a failure).
            Event::NotifMsgVerErr(notification) => self.tear_down(
                out,
                None,
                DownReason::NotificationReceived(notification),
                Counter::Keep,
            ),
            other => {
                let subcode = match self.state {
                    _ if !other.is_message() => fsm_error::UNSPECIFIED,
                    State::OpenSent => fsm_error::UNEXPECTED_MESSAGE_IN_OPEN_SENT,
                    State::OpenConfirm => fsm_error::UNEXPECTED_MESSAGE_IN_OPEN_CONFIRM,
                    _ => fsm_error::UNEXPECTED_MESSAGE_IN_ESTABLISHED,
                };
                self.tear_down(
                    out,
                    Some(NotificationInfo::fsm_error(subcode)),
                    DownReason::FsmError {
                        event: other.name(),
                    },
                    Counter::Increment,
                );
            }
        }
    }

    /// Idle to Connect (initiating a connection) or, for a passive session, Active.
    fn start(&mut self, out: &mut Vec<Action>) {
        if self.config.passive {
            self.state = State::Active;
        } else {
            self.start_timer(out, Timer::ConnectRetry, self.config.connect_retry);
            out.push(Action::Connect);
            self.state = State::Connect;
        }
    }

    /// To Active: wait for the peer's connection, and ours after ConnectRetry unless passive.
    fn listen(&mut self, out: &mut Vec<Action>) {
        if !self.config.passive {
            self.start_timer(out, Timer::ConnectRetry, self.config.connect_retry);
        }
        self.state = State::Active;
    }

    /// Connect or Active, the TCP connection is up: send our OPEN (no DelayOpen).
    fn connection_up(&mut self, out: &mut Vec<Action>, initiator: Side) {
        self.stop_timer(out, Timer::ConnectRetry);
        out.push(Action::SendOpen(OpenInfo::local(&self.config)));
        self.start_timer(out, Timer::Hold, OPEN_HOLD_TIME);
        self.initiator = Some(initiator);
        self.state = State::OpenSent;
    }

    /// OpenSent, a valid OPEN: confirm it and run the negotiated timers (none for hold 0).
    fn open_received(&mut self, out: &mut Vec<Action>, open: OpenInfo, peer_as: u32) {
        let negotiated = open::negotiate(&self.config, &open, peer_as);
        out.push(Action::SendKeepalive);
        match negotiated.hold_timer() {
            Some(hold) => {
                self.start_timer(out, Timer::Keepalive, negotiated.keepalive);
                self.start_timer(out, Timer::Hold, hold);
            }
            None => self.stop_timer(out, Timer::Hold),
        }
        self.peer_open = Some(open);
        self.negotiated = Some(negotiated);
        self.state = State::OpenConfirm;
    }

    fn send_keepalive(&mut self, out: &mut Vec<Action>) {
        out.push(Action::SendKeepalive);
        if let Some(negotiated) = &self.negotiated
            && negotiated.hold_time != 0
        {
            let keepalive = negotiated.keepalive;
            self.start_timer(out, Timer::Keepalive, keepalive);
        }
    }

    fn restart_hold_timer(&mut self, out: &mut Vec<Action>) {
        if let Some(hold) = self.negotiated.as_ref().and_then(Negotiated::hold_timer) {
            self.start_timer(out, Timer::Hold, hold);
        }
    }

    /// To Idle: NOTIFICATION if any, timers stopped, connection dropped, `Down`.
    fn tear_down(
        &mut self,
        out: &mut Vec<Action>,
        notification: Option<NotificationInfo>,
        reason: DownReason,
        counter: Counter,
    ) {
        if let Some(notification) = notification {
            out.push(Action::SendNotification(notification));
        }
        for timer in [Timer::ConnectRetry, Timer::Hold, Timer::Keepalive] {
            self.stop_timer(out, timer);
        }
        out.push(Action::Disconnect);
        self.connect_retry_counter = match counter {
            Counter::Zero => 0,
            Counter::Increment => self.connect_retry_counter.saturating_add(1),
            Counter::Keep => self.connect_retry_counter,
        };
        self.initiator = None;
        self.peer_open = None;
        self.negotiated = None;
        self.state = State::Idle;
        out.push(Action::Down { reason });
    }

    /// The IdleHold delay for an automatic restart: none before a failure or without damping.
    fn idle_hold_delay(&self) -> Option<Duration> {
        let base = self.config.idle_hold_time;
        if self.connect_retry_counter == 0 || base.is_zero() {
            return None;
        }
        let doublings = (self.connect_retry_counter - 1).min(16);
        Some(
            base.saturating_mul(1 << doublings)
                .min(MAX_IDLE_HOLD_TIME.max(base)),
        )
    }

    fn start_timer(&mut self, out: &mut Vec<Action>, timer: Timer, duration: Duration) {
        self.timers.insert(timer);
        out.push(Action::StartTimer(timer, duration));
    }

    fn stop_timer(&mut self, out: &mut Vec<Action>, timer: Timer) {
        if self.timers.remove(timer) {
            out.push(Action::StopTimer(timer));
        }
    }
}
