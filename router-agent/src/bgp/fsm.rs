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

mod action;
mod config;
mod event;
#[cfg(test)]
mod hardening_tests;
mod notification;
mod open;
mod peering;
#[cfg(test)]
mod tests;
mod timers;

use std::fmt;
use std::time::Duration;

pub use notification::{
    CeaseSubcode, MAX_SHUTDOWN_MESSAGE_LEN, NotificationInfo, error_code, fsm_error, open_error,
};
pub use open::{AS_TRANS, BGP_VERSION, Capabilities, Negotiated, OpenInfo};
pub use peering::{Conn, Incoming, Peering, Restart};

pub use action::{Action, DownReason};
pub use config::{ConfigError, MAX_IDLE_HOLD_TIME, OPEN_HOLD_TIME, RemoteAs, SessionConfig};
pub use event::{Event, Side, Timer, collision_winner, send_hold_time};
use timers::Timers;

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
}
