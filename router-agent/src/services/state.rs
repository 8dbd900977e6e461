//! A service's health, sans I/O: rounds of check results in, state changes out.
//!
//! ```text
//! Init --rise passes--> Up (announce)                 first start: no hold-down
//! Init --fall failures--> Down                        never announced
//! Up --fall consecutive failures--> Down, flaps += 1  withdraw | degrade
//! Down --rise consecutive passes--> HoldDown(until = now + hold_down)
//!                                   (Up at once if it was never Up: nothing to flap)
//! HoldDown --any failure--> Down                      counters reset
//! HoldDown --timer expired, last result pass--> Up
//! ```
//! A check flapping each round with rise = fall = 3 never leaves Up: no UPDATE is sent.
//!
//! After a planned restart a service is *resuming* ([`ServiceMachine::resuming`]): its first
//! round decides (pass: Up, fail: Down), so the routes the network kept for us are confirmed
//! or withdrawn within one check timeout instead of rise x interval.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Where a service is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Phase {
    Init,
    Up,
    Down,
    HoldDown {
        #[serde(skip)]
        until: Instant,
    },
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Init => "init",
            Phase::Up => "up",
            Phase::Down => "down",
            Phase::HoldDown { .. } => "hold-down",
        }
    }
}

/// What the service's prefixes should be doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Announce {
    Withdraw,
    Announce,
    /// Announced, made less preferred (`on_failure = "degrade"`).
    Degraded,
}

/// A change of state: one per change, hence one log line each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: Phase,
    pub to: Phase,
    pub announce: Announce,
}

/// The parameters a machine runs with (from `[[service]]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub rise: u32,
    pub fall: u32,
    pub hold_down: Duration,
    /// Down announces `Degraded` instead of withdrawing.
    pub degrade: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceMachine {
    thresholds: Thresholds,
    phase: Phase,
    passes: u32,
    failures: u32,
    ever_up: bool,
    flaps: u64,
    since: Instant,
    /// Init after a planned restart: the first verdict decides.
    resuming: bool,
}

impl ServiceMachine {
    pub fn new(thresholds: Thresholds, now: Instant) -> Self {
        ServiceMachine {
            thresholds,
            phase: Phase::Init,
            passes: 0,
            failures: 0,
            ever_up: false,
            flaps: 0,
            since: now,
            resuming: false,
        }
    }

    /// A service the previous run may have announced (planned restart): its first round
    /// decides.
    pub fn resuming(thresholds: Thresholds, now: Instant) -> Self {
        ServiceMachine {
            resuming: true,
            ..Self::new(thresholds, now)
        }
    }

    /// Still waiting for its first verdict after a planned restart.
    pub fn is_resuming(&self) -> bool {
        self.resuming && self.phase == Phase::Init
    }

    /// The same service with new parameters (reload): state, flaps and since are kept, and so
    /// is a hold-down's end; only the consecutive counts start over.
    pub fn with_thresholds(&self, thresholds: Thresholds) -> Self {
        ServiceMachine {
            thresholds,
            passes: 0,
            failures: 0,
            ..self.clone()
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }
    pub fn flaps(&self) -> u64 {
        self.flaps
    }
    pub fn since(&self) -> Instant {
        self.since
    }

    /// What the prefixes do in the current state.
    pub fn announce(&self) -> Announce {
        match self.phase {
            Phase::Up => Announce::Announce,
            Phase::Init => Announce::Withdraw,
            Phase::Down | Phase::HoldDown { .. } if self.thresholds.degrade => Announce::Degraded,
            Phase::Down | Phase::HoldDown { .. } => Announce::Withdraw,
        }
    }

    /// When `on_timer` has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::HoldDown { until } => Some(until),
            _ => None,
        }
    }

    /// One round's verdict (every check passed, or not).
    pub fn on_result(&mut self, now: Instant, pass: bool) -> Option<Transition> {
        if pass {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
        }
        let rose = self.passes >= self.thresholds.rise;
        let fell = self.failures >= self.thresholds.fall;
        match self.phase {
            Phase::Init if self.resuming => {
                self.go(now, if pass { Phase::Up } else { Phase::Down })
            }
            Phase::Init if rose => self.go(now, Phase::Up),
            Phase::Init if fell => self.go(now, Phase::Down),
            Phase::Up if fell => {
                self.flaps += 1;
                self.go(now, Phase::Down)
            }
            Phase::Down if rose && (!self.ever_up || self.thresholds.hold_down.is_zero()) => {
                self.go(now, Phase::Up)
            }
            Phase::Down if rose => {
                let until = now + self.thresholds.hold_down;
                self.go(now, Phase::HoldDown { until })
            }
            Phase::HoldDown { .. } if !pass => self.go(now, Phase::Down),
            Phase::HoldDown { .. } => self.on_timer(now),
            _ => None,
        }
    }

    /// Ends a hold-down whose time has come (its last result was a pass, or it would be
    /// Down already).
    pub fn on_timer(&mut self, now: Instant) -> Option<Transition> {
        match self.phase {
            Phase::HoldDown { until } if now >= until => self.go(now, Phase::Up),
            _ => None,
        }
    }

    fn go(&mut self, now: Instant, to: Phase) -> Option<Transition> {
        let from = self.phase;
        self.phase = to;
        self.since = now;
        // Each state counts its own streak from its start.
        self.passes = 0;
        self.failures = 0;
        if to == Phase::Up {
            self.ever_up = true;
        }
        Some(Transition {
            from,
            to,
            announce: self.announce(),
        })
    }
}

/// Check latencies in log2 microsecond buckets: bucket `i` counts latencies below 2^i µs
/// (and at least 2^(i-1)); fixed size, merged by adding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencyHistogram {
    pub buckets: Vec<u64>,
}

const BUCKETS: usize = 32;

impl LatencyHistogram {
    pub fn record(&mut self, latency: Duration) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
        }
        let micros = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = (64 - micros.leading_zeros() as usize).min(BUCKETS - 1);
        self.buckets[bucket] += 1;
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1): an over-estimate by at
    /// most 2x, which is what a log2 histogram can say.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(1u64 << i));
            }
        }
        None
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
