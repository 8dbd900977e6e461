//! The session's timers: which run, and starting, stopping and deriving them (RFC 4271 8,
//! with the IdleHold damping of 8.1.1's DampPeerOscillations).

use std::time::Duration;

use super::{Action, MAX_IDLE_HOLD_TIME, Negotiated, Session, Timer};

/// The set of running timers.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Timers(u8);

impl Timers {
    fn bit(timer: Timer) -> u8 {
        1 << timer as u8
    }

    pub(super) fn contains(self, timer: Timer) -> bool {
        self.0 & Self::bit(timer) != 0
    }

    pub(super) fn insert(&mut self, timer: Timer) {
        self.0 |= Self::bit(timer);
    }

    /// Whether it was running.
    pub(super) fn remove(&mut self, timer: Timer) -> bool {
        let was = self.contains(timer);
        self.0 &= !Self::bit(timer);
        was
    }
}

impl Session {
    pub(super) fn send_keepalive(&mut self, out: &mut Vec<Action>) {
        out.push(Action::SendKeepalive);
        if let Some(negotiated) = &self.negotiated
            && negotiated.hold_time != 0
        {
            let keepalive = negotiated.keepalive;
            self.start_timer(out, Timer::Keepalive, keepalive);
        }
    }

    pub(super) fn restart_hold_timer(&mut self, out: &mut Vec<Action>) {
        if let Some(hold) = self.negotiated.as_ref().and_then(Negotiated::hold_timer) {
            self.start_timer(out, Timer::Hold, hold);
        }
    }

    /// The IdleHold delay for an automatic restart: none before a failure or without damping.
    pub(super) fn idle_hold_delay(&self) -> Option<Duration> {
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

    pub(super) fn start_timer(&mut self, out: &mut Vec<Action>, timer: Timer, duration: Duration) {
        self.timers.insert(timer);
        out.push(Action::StartTimer(timer, duration));
    }

    pub(super) fn stop_timer(&mut self, out: &mut Vec<Action>, timer: Timer) {
        if self.timers.remove(timer) {
            out.push(Action::StopTimer(timer));
        }
    }
}
