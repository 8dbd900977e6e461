//! The FSM's inputs, named and numbered after RFC 4271 8.1, and its timers.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::notification::NotificationInfo;
use super::open::OpenInfo;

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
    pub(super) fn timer(&self) -> Option<Timer> {
        match self {
            Event::ConnectRetryTimerExpires => Some(Timer::ConnectRetry),
            Event::HoldTimerExpires => Some(Timer::Hold),
            Event::KeepaliveTimerExpires => Some(Timer::Keepalive),
            Event::IdleHoldTimerExpires => Some(Timer::IdleHold),
            _ => None,
        }
    }

    /// Whether this is the receipt of a message (for the RFC 6608 FSM Error subcodes).
    pub(super) fn is_message(&self) -> bool {
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
