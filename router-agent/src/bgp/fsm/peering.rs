//! The connections to one peer (RFC 4271 6.8 connection collision detection), sans-IO.
//!
//! A [`Peering`] holds the *primary* [`Session`], made from the neighbor's configuration and
//! started once, and at most one *second* session for a connection the peer opened while the
//! primary was already past Active. Events and actions are tagged with the [`Conn`] they
//! belong to; the driver keeps one TCP connection (and one set of timers) per `Conn`.
//!
//! - An incoming connection ([`Peering::incoming`]) goes to the primary in Connect or Active
//!   (aborting its own attempt), is refused in Idle (a damped peer stays out, see below), in
//!   Established and while a second session exists, and in OpenSent or OpenConfirm goes to a
//!   new passive second session.
//! - When a session's OPEN is accepted (OpenSent to OpenConfirm) while the other one is in
//!   OpenSent or OpenConfirm, the collision is resolved at once: the connection initiated by
//!   the speaker with the higher BGP Identifier survives ([`Session::wins_collision`]), the
//!   other gets `OpenCollisionDump` (Cease / Connection Collision Resolution, subcode 7).
//!   The peer's identifier is the one in the OPEN just accepted: both connections come from
//!   the same address, so RFC 4271 6.8's "known by other means" holds for one in OpenSent.
//! - **Established.** RFC 4271 6.8 keeps an Established connection (our
//!   CollisionDetectEstablishedState is false): a new connection is closed at once. A peer
//!   that restarted (rebooted, crashed, its daemon restarted) without closing its old
//!   connection would be locked out until our hold timer expires, so each connection refused
//!   while Established also sends a KEEPALIVE on the Established connection (`probe` in
//!   [`Incoming`]): a peer whose old connection is gone answers it with a TCP reset, that
//!   session goes down at once (routes withdrawn) and the peer's next attempt gets in.
//! - **Idle after one failure.** A connection is accepted in Idle if the primary failed once
//!   since its last start or Established (e.g. the peer resolved a collision against our
//!   connection and now connects with the one it keeps); after more failures, Idle refuses
//!   until IdleHold expires (damping).
//! - A second session is disposed of when it falls back to Active or Idle (RFC 4271 8.2.1.2:
//!   a passive connection does not outlive its TCP connection). While one lives, the primary
//!   does not run on its own: if it goes to Idle it stays there, if it falls back to Connect
//!   or Active it is stopped (its retries would only collide again). When the second session
//!   is gone, the primary restarts with `AutomaticStart` (damped as usual).
//! - `Down` reaches the driver only when it matters to the routing side: a session that was
//!   Established went down, or no session of the peer is left. A collision loser's `Down`
//!   is dropped (the routes are on the other connection, which is fine).
//! - Automatic restarts are done here: after a `Down` of the primary (unless stopped, or the
//!   peering is one-shot: [`Restart::Never`], for dynamic neighbors) it gets `AutomaticStart`.
//! - **Held down** ([`Peering::hold_down`], a max-prefix teardown): the primary ignores
//!   `AutomaticStart` and Idle refuses the peer's connections until its `restart_after` has
//!   passed or [`Peering::clear`] (`clear neighbor`) starts it again.

use super::{
    Action, CeaseSubcode, DownReason, Event, NotificationInfo, Session, SessionConfig, State,
};

/// Which of a peer's two connections an event or action is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Conn {
    /// The configured session: ours when we initiate, or the peer's when it connected first.
    Primary,
    /// A connection the peer opened while the primary was past Active.
    Second,
}

impl Conn {
    pub fn index(self) -> usize {
        match self {
            Conn::Primary => 0,
            Conn::Second => 1,
        }
    }

    fn other(self) -> Conn {
        match self {
            Conn::Primary => Conn::Second,
            Conn::Second => Conn::Primary,
        }
    }
}

/// What happens when the primary session goes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Restart automatically (damped by the FSM): a configured neighbor.
    Always,
    /// The peering ends ([`Peering::finished`]): a dynamic neighbor, which exists only while
    /// its session does.
    Never,
}

/// What to do with a connection the peer opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Close it; with `probe`, after sending a KEEPALIVE on that Established connection.
    Refuse {
        reason: &'static str,
        probe: Option<Conn>,
    },
    /// Attach it to `conn` (for the primary: abort its own attempt first), then feed
    /// `TcpConnectionConfirmed` to `conn`. With `probe`, first send a KEEPALIVE on that
    /// Established connection (see the module documentation).
    Accept { conn: Conn, probe: Option<Conn> },
}

/// The sessions of one peer.
#[derive(Debug)]
pub struct Peering {
    primary: Session,
    second: Option<Session>,
    restart: Restart,
    stopped: bool,
    /// The primary has had a connection (reached OpenSent) since the peering began.
    had_connection: bool,
    finished: bool,
}

impl Peering {
    /// The peering, primary session in Idle: feed it `ManualStart` (or, for a passive
    /// one-shot peering created by an incoming connection, accept it with
    /// [`Peering::incoming`] after `ManualStart`).
    pub fn new(config: SessionConfig, restart: Restart) -> Result<Self, super::ConfigError> {
        Ok(Peering {
            primary: Session::new(config)?,
            second: None,
            restart,
            stopped: false,
            had_connection: false,
            finished: false,
        })
    }

    pub fn session(&self, conn: Conn) -> Option<&Session> {
        match conn {
            Conn::Primary => Some(&self.primary),
            Conn::Second => self.second.as_ref(),
        }
    }

    fn session_mut(&mut self, conn: Conn) -> Option<&mut Session> {
        match conn {
            Conn::Primary => Some(&mut self.primary),
            Conn::Second => self.second.as_mut(),
        }
    }

    /// The peer's state as the operator sees it: the furthest of its sessions.
    pub fn state(&self) -> State {
        let rank = |state: State| match state {
            State::Idle => 0,
            State::Connect => 1,
            State::Active => 2,
            State::OpenSent => 3,
            State::OpenConfirm => 4,
            State::Established => 5,
        };
        let mut state = self.primary.state();
        if let Some(second) = &self.second
            && rank(second.state()) > rank(state)
        {
            state = second.state();
        }
        state
    }

    /// The Established connection, which UPDATEs go on.
    pub fn established(&self) -> Option<Conn> {
        [Conn::Primary, Conn::Second]
            .into_iter()
            .find(|&conn| self.session(conn).map(Session::state) == Some(State::Established))
    }

    /// Whether the second session exists.
    pub fn has_second(&self) -> bool {
        self.second.is_some()
    }

    /// A one-shot peering whose session ended, or any peering after [`Peering::stop`].
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The peer opened a connection: where it goes (see [`Incoming`]).
    pub fn incoming(&mut self) -> Incoming {
        if self.stopped || self.finished {
            return Incoming::Refuse {
                reason: "the peering is stopped",
                probe: None,
            };
        }
        if self.second.is_some() {
            return Incoming::Refuse {
                reason: "two connections already",
                probe: self.established(),
            };
        }
        match self.primary.state() {
            // The first failure since the last start or Established may be a collision the
            // peer resolved against our connection (its Cease may even be lost to a reset):
            // the connection it keeps is let in rather than refused until IdleHold expires.
            // From the second consecutive failure on, damping keeps the peer out.
            // Held down (max-prefix): only the hold-down's end or `clear` lets it in.
            State::Idle if self.primary.held_down() => Incoming::Refuse {
                reason: "held down",
                probe: None,
            },
            State::Idle
                if self.primary.connect_retry_counter() == 1 && self.restart == Restart::Always =>
            {
                // IdleHold expiring now starts the session (Connect, or Active if passive);
                // its actions are dropped: the connection attempt is superseded by this
                // connection, whose TcpConnectionConfirmed stops ConnectRetry, and the
                // driver's IdleHold deadline will be a stale expiry.
                self.primary.handle(Event::IdleHoldTimerExpires);
                debug_assert!(matches!(
                    self.primary.state(),
                    State::Connect | State::Active
                ));
                Incoming::Accept {
                    conn: Conn::Primary,
                    probe: None,
                }
            }
            State::Idle => Incoming::Refuse {
                reason: "Idle (restart pending)",
                probe: None,
            },
            State::Connect | State::Active => Incoming::Accept {
                conn: Conn::Primary,
                probe: None,
            },
            // RFC 4271 6.8 keeps an Established connection: the new one is closed at once
            // (some peers never send an OPEN on a connection that collides with their
            // Established session, and it would linger until the open hold time).
            State::Established => Incoming::Refuse {
                reason: "Established (RFC 4271 6.8 keeps that connection)",
                probe: Some(Conn::Primary),
            },
            State::OpenSent | State::OpenConfirm => {
                let mut config = self.primary.config().clone();
                config.passive = true;
                let mut second = Session::new(config).expect("validated with the primary");
                // Idle to Active, no action for a passive session.
                let actions = second.handle(Event::AutomaticStart);
                debug_assert!(actions.is_empty());
                self.second = Some(second);
                Incoming::Accept {
                    conn: Conn::Second,
                    probe: None,
                }
            }
        }
    }

    /// Ends the peering: every session gets `ManualStop` with this Cease.
    pub fn stop(&mut self, cease: NotificationInfo) -> Vec<(Conn, Action)> {
        self.stopped = true;
        self.finished = true;
        let mut out = self.handle(Conn::Second, Event::ManualStop(cease.clone()));
        out.extend(self.handle(Conn::Primary, Event::ManualStop(cease)));
        out
    }

    /// Tears down every live session with this NOTIFICATION and holds the primary down
    /// (`HoldDown`): no automatic restart and the peer's connections refused until
    /// `restart_after` has passed or, without it, until [`Peering::clear`]. A one-shot
    /// peering ends.
    pub fn hold_down(
        &mut self,
        notification: NotificationInfo,
        restart_after: Option<std::time::Duration>,
    ) -> Vec<(Conn, Action)> {
        // The primary first: once it is held, the restart that follows the second's end is
        // ignored.
        let mut out = self.handle(
            Conn::Primary,
            Event::HoldDown {
                notification: notification.clone(),
                restart_after,
            },
        );
        out.extend(self.handle(Conn::Second, Event::AutomaticStop(notification)));
        out
    }

    /// The operator's hard reset (`clear neighbor`): every session gets `ManualStop` with
    /// this Cease, then the primary `ManualStart` at once (ending a hold-down and the
    /// damping). A one-shot peering ends instead (its peer may connect again).
    pub fn clear(&mut self, cease: NotificationInfo) -> Vec<(Conn, Action)> {
        let mut out = self.handle(Conn::Second, Event::ManualStop(cease.clone()));
        out.extend(self.handle(Conn::Primary, Event::ManualStop(cease)));
        if !self.finished {
            out.extend(self.handle(Conn::Primary, Event::ManualStart));
        }
        out
    }

    /// Processes one event of one connection; returns the actions to carry out, in order.
    /// Events for a second session that no longer exists are stale and ignored.
    pub fn handle(&mut self, conn: Conn, event: Event) -> Vec<(Conn, Action)> {
        let mut out = Vec::new();
        let mut pending = vec![(conn, event)];
        while let Some((conn, event)) = pending.pop() {
            let other_alive = self.alive(conn.other());
            let Some(session) = self.session_mut(conn) else {
                continue;
            };
            let before = session.state();
            let actions = session.handle(event);
            let after = session.state();
            for action in actions {
                if let Action::Down { reason } = &action {
                    if before != State::Established && other_alive {
                        tracing::debug!(?conn, %reason, "connection closed, the other one lives");
                        continue;
                    }
                    if conn == Conn::Primary
                        && !other_alive
                        && self.restart == Restart::Always
                        && !matches!(reason, DownReason::ManualStop)
                    {
                        pending.push((Conn::Primary, Event::AutomaticStart));
                    }
                }
                out.push((conn, action));
            }
            if before == State::OpenSent && after == State::OpenConfirm {
                pending.extend(self.resolve_collision(conn));
            }
            pending.extend(self.settle());
        }
        out
    }

    /// A session of `conn` is running (not Idle).
    fn alive(&self, conn: Conn) -> bool {
        self.session(conn)
            .is_some_and(|session| session.state() != State::Idle)
    }

    /// `conn` just accepted the peer's OPEN: the collision, if any, and who is dumped.
    fn resolve_collision(&self, conn: Conn) -> Option<(Conn, Event)> {
        let this = self.session(conn)?;
        let other = self.session(conn.other())?;
        let loser = match other.state() {
            State::Established => conn,
            State::OpenSent | State::OpenConfirm => {
                if this.wins_collision()? {
                    conn.other()
                } else {
                    conn
                }
            }
            _ => return None,
        };
        tracing::info!(kept = ?loser.other(), closed = ?loser,
            "BGP connection collision (RFC 4271 6.8)");
        Some((loser, Event::OpenCollisionDump))
    }

    /// After an event: dispose of a second session that fell back, hold or restart the
    /// primary, end a one-shot or stopped peering. Returns a follow-up event.
    fn settle(&mut self) -> Option<(Conn, Event)> {
        let primary = self.primary.state();
        if primary == State::OpenSent {
            self.had_connection = true;
        }
        let ends = self.stopped || self.restart == Restart::Never;
        match &self.second {
            Some(second) if matches!(second.state(), State::Idle | State::Active) => {
                // An Active passive session has no timers; a torn down one stopped them.
                self.second = None;
                if primary != State::Idle {
                    None
                } else if ends {
                    self.finished = true;
                    None
                } else {
                    Some((Conn::Primary, Event::AutomaticStart))
                }
            }
            // The primary waits while the second lives (its retries would collide again).
            // No NOTIFICATION goes out in these states: the Cease is never sent.
            Some(_) if matches!(primary, State::Connect | State::Active) => Some((
                Conn::Primary,
                Event::AutomaticStop(NotificationInfo::cease(
                    CeaseSubcode::ConnectionCollisionResolution,
                    None,
                )),
            )),
            Some(_) => None,
            None => {
                // A passive one-shot session back in Active lost its connection: it ends too.
                if ends
                    && (primary == State::Idle || (primary == State::Active && self.had_connection))
                {
                    self.finished = true;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
