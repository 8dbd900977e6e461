//! The FSM's outputs, for the driver to carry out, and why a session went down.

use std::fmt;
use std::time::Duration;

use super::event::Timer;
use super::notification::NotificationInfo;
use super::open::{Negotiated, OpenInfo};

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
