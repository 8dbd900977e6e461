//! Sessions driven on a fake clock: alone with scripted peer packets, or two of them wired
//! back to back through the codec.

use std::num::NonZeroU32;
use std::time::Duration;

use super::*;
use crate::bfd::packet::{ControlPacket, Diagnostic, Flags, State};

const MS: Duration = Duration::from_millis(1);
const A_DISCR: u32 = 0x0a0a_0a0a;
const B_DISCR: u32 = 0x0b0b_0b0b;

/// One session and its two timers on a fake clock.
struct Driven {
    session: Session,
    transmit_at: Option<Duration>,
    detect_at: Option<Duration>,
    sent: Vec<(Duration, ControlPacket)>,
    changes: Vec<(Duration, State, State, Diagnostic)>,
    transmit_arms: Vec<Duration>,
    path_failures: usize,
}

impl Driven {
    fn new(config: SessionConfig, discr: u32, seed: u64) -> Driven {
        Driven {
            session: Session::new(config, NonZeroU32::new(discr).unwrap(), seed),
            transmit_at: None,
            detect_at: None,
            sent: Vec::new(),
            changes: Vec::new(),
            transmit_arms: Vec::new(),
            path_failures: 0,
        }
    }

    fn apply(&mut self, now: Duration, outputs: Vec<Output>) -> Vec<ControlPacket> {
        let mut packets = Vec::new();
        for output in outputs {
            match output {
                Output::Send(p) => {
                    assert!(!(p.flags.poll && p.flags.final_), "P and F together: {p:?}");
                    self.sent.push((now, p.clone()));
                    packets.push(p);
                }
                Output::ArmTransmitTimer(d) => {
                    self.transmit_arms.push(d);
                    self.transmit_at = Some(now + d);
                }
                Output::StopTransmitTimer => self.transmit_at = None,
                Output::ArmDetectionTimer(d) => self.detect_at = Some(now + d),
                Output::StopDetectionTimer => self.detect_at = None,
                Output::StateChanged {
                    from,
                    to,
                    diag,
                    path_failed,
                } => {
                    assert_eq!(to, self.session.state());
                    self.changes.push((now, from, to, diag));
                    self.path_failures += usize::from(path_failed);
                }
            }
        }
        packets
    }

    fn feed(&mut self, now: Duration, event: Event) -> Vec<ControlPacket> {
        let outputs = self.session.handle(event);
        self.apply(now, outputs)
    }

    fn next_timer(&self) -> Option<Duration> {
        [self.transmit_at, self.detect_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires the timers due at `now`, detection first.
    fn fire(&mut self, now: Duration) -> Vec<ControlPacket> {
        let mut packets = Vec::new();
        if self.detect_at == Some(now) {
            self.detect_at = None;
            packets.extend(self.feed(now, Event::DetectionTimeExpired));
        }
        if self.transmit_at == Some(now) {
            self.transmit_at = None;
            packets.extend(self.feed(now, Event::TransmitTimerExpired));
        }
        packets
    }

    fn periodic_sends_after(&self, from: Duration) -> Vec<Duration> {
        self.sent
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| *t >= from)
            .collect()
    }
}

/// Two sessions back to back; each packet goes through encode and decode.
struct Pair {
    now: Duration,
    a: Driven,
    b: Driven,
    /// Packets from b to a are lost (b frozen, or filtered).
    b_to_a_lost: bool,
}

fn through_the_wire(p: &ControlPacket) -> ControlPacket {
    ControlPacket::decode(&p.encode()).expect("we sent a packet we would discard")
}

impl Pair {
    fn new(config: SessionConfig) -> Pair {
        Pair {
            now: Duration::ZERO,
            a: Driven::new(config, A_DISCR, 1),
            b: Driven::new(config, B_DISCR, 2),
            b_to_a_lost: false,
        }
    }

    fn start(&mut self) {
        let outputs = self.a.session.start();
        let from_a = self.a.apply(self.now, outputs);
        self.deliver(from_a, Vec::new());
        self.now += 10 * MS;
        let outputs = self.b.session.start();
        let from_b = self.b.apply(self.now, outputs);
        self.deliver(Vec::new(), from_b);
    }

    fn deliver(&mut self, mut from_a: Vec<ControlPacket>, mut from_b: Vec<ControlPacket>) {
        while !from_a.is_empty() || !from_b.is_empty() {
            let mut next_a = Vec::new();
            let mut next_b = Vec::new();
            for p in from_a.drain(..) {
                let event = Event::ControlPacketReceived(through_the_wire(&p));
                next_b.extend(self.b.feed(self.now, event));
            }
            for p in from_b.drain(..) {
                if !self.b_to_a_lost {
                    let event = Event::ControlPacketReceived(through_the_wire(&p));
                    next_a.extend(self.a.feed(self.now, event));
                }
            }
            from_a = next_a;
            from_b = next_b;
        }
    }

    fn run_until(&mut self, end: Duration) {
        loop {
            let next = [self.a.next_timer(), self.b.next_timer()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = t;
                    let from_a = self.a.fire(t);
                    let from_b = self.b.fire(t);
                    self.deliver(from_a, from_b);
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn admin(&mut self, event: Event) {
        let from_b = self.b.feed(self.now, event);
        self.deliver(Vec::new(), from_b);
    }
}

fn up_pair() -> Pair {
    let mut pair = Pair::new(SessionConfig::default());
    pair.start();
    pair.run_until(Duration::from_secs(5));
    assert_eq!(pair.a.session.state(), State::Up);
    assert_eq!(pair.b.session.state(), State::Up);
    pair
}

#[test]
fn comes_up_three_way_then_polls_to_300ms() {
    let mut pair = Pair::new(SessionConfig::default());
    pair.start();
    // a sent Down; b answered Init at once (state changes are sent without waiting); a went Up.
    let states = |d: &Driven| d.changes.iter().map(|c| (c.1, c.2)).collect::<Vec<_>>();
    assert_eq!(
        states(&pair.b),
        [(State::Down, State::Init), (State::Init, State::Up)]
    );
    assert_eq!(states(&pair.a), [(State::Down, State::Up)]);
    // Before Up, both advertised the slow 1 s TX (6.8.3).
    assert!(
        pair.a.sent[0].1.desired_min_tx_us == SLOW_TX_US && pair.a.sent[0].1.state == State::Down
    );
    pair.run_until(Duration::from_secs(5));
    for d in [&pair.a, &pair.b] {
        assert!(!d.session.polling(), "the poll to 300 ms completed");
        assert_eq!(d.session.transmit_interval(), 300 * MS);
        assert_eq!(d.session.detection_time(), 900 * MS);
        let last = &d.sent.last().unwrap().1;
        assert_eq!(
            (last.desired_min_tx_us, last.required_min_rx_us),
            (300_000, 300_000)
        );
        assert!(
            d.sent
                .iter()
                .any(|(_, p)| p.flags.poll && p.state == State::Up)
        );
        assert!(d.sent.iter().any(|(_, p)| p.flags.final_));
    }
    assert_eq!(pair.a.session.remote_discriminator(), B_DISCR);
    assert_eq!(pair.b.session.remote_discriminator(), A_DISCR);
    // Steady state: a sends every 225..300 ms, and never loses the session.
    let sends = pair.a.periodic_sends_after(Duration::from_secs(2));
    assert!(sends.len() >= 10);
    for gap in sends.windows(2).map(|w| w[1] - w[0]) {
        assert!((225 * MS..=300 * MS).contains(&gap), "gap {gap:?}");
    }
    assert_eq!(pair.a.changes.len(), 1);
}

#[test]
fn detection_time_expiry_takes_the_session_down() {
    let mut pair = up_pair();
    pair.b_to_a_lost = true;
    let frozen_at = pair.now;
    pair.run_until(frozen_at + Duration::from_secs(3));
    let (at, from, to, diag) = *pair.a.changes.last().unwrap();
    assert_eq!(
        (from, to, diag),
        (
            State::Up,
            State::Down,
            Diagnostic::ControlDetectionTimeExpired
        )
    );
    // Within one detection time of the last packet heard, and at least 900 ms after it.
    let down_after = at - frozen_at;
    assert!(
        down_after <= 900 * MS,
        "down {down_after:?} after the freeze"
    );
    assert!(
        down_after >= 900 * MS - 300 * MS,
        "down {down_after:?} after the freeze"
    );
    assert_eq!(pair.a.session.remote_discriminator(), 0);
    assert_eq!(pair.a.path_failures, 1);
    // b learns of it from a's Down (diag 3): a failure for b too.
    assert_eq!(pair.b.path_failures, 1);
    assert_eq!(
        pair.a.session.local_diag(),
        Diagnostic::ControlDetectionTimeExpired
    );
    // Down: slow 1 s TX again, announcing Down with diag 1 and Your Discriminator 0.
    let last = &pair.a.sent.last().unwrap().1;
    assert_eq!(
        (last.state, last.diag.code(), last.your_discriminator),
        (State::Down, 1, 0)
    );
    assert_eq!(last.desired_min_tx_us, SLOW_TX_US);
    let sends = pair.a.periodic_sends_after(at + 10 * MS);
    for gap in sends.windows(2).map(|w| w[1] - w[0]) {
        assert!((750 * MS..=1000 * MS).contains(&gap), "gap {gap:?}");
    }
    // b heard a's Down and followed with diag 3, then went to Init on a's next Down (its
    // own packets are lost, so a cannot answer).
    let b_changes: Vec<_> = pair.b.changes.iter().map(|c| (c.1, c.2, c.3)).collect();
    let diag3 = Diagnostic::NeighborSignaledSessionDown;
    assert_eq!(
        b_changes[b_changes.len() - 2..],
        [
            (State::Up, State::Down, diag3),
            (State::Down, State::Init, diag3)
        ]
    );
    // The path heals: up again.
    pair.b_to_a_lost = false;
    pair.run_until(pair.now + Duration::from_secs(5));
    assert_eq!(pair.a.session.state(), State::Up);
}

#[test]
fn remote_admin_down_is_diag_3_and_admin_up_recovers() {
    let mut pair = up_pair();
    pair.admin(Event::AdminDown);
    assert_eq!(pair.b.session.state(), State::AdminDown);
    assert_eq!(
        pair.b.session.local_diag(),
        Diagnostic::AdministrativelyDown
    );
    let (_, from, to, diag) = *pair.a.changes.last().unwrap();
    assert_eq!(
        (from, to, diag),
        (
            State::Up,
            State::Down,
            Diagnostic::NeighborSignaledSessionDown
        )
    );
    // RFC 5882 3.2: the peer's AdminDown, like ours, is not a path failure.
    assert_eq!((pair.a.path_failures, pair.b.path_failures), (0, 0));
    // AdminDown ignores a's packets and keeps announcing itself: nothing comes up.
    pair.run_until(pair.now + Duration::from_secs(5));
    assert_eq!(
        (pair.a.session.state(), pair.b.session.state()),
        (State::Down, State::AdminDown)
    );
    let last = &pair.b.sent.last().unwrap().1;
    assert_eq!((last.state, last.diag.code()), (State::AdminDown, 7));
    pair.admin(Event::AdminUp);
    pair.run_until(pair.now + Duration::from_secs(5));
    assert_eq!(
        (pair.a.session.state(), pair.b.session.state()),
        (State::Up, State::Up)
    );
}

/// A scripted peer for one session: what it sends, with discriminator 99.
fn peer(state: State, flags: Flags, tx_us: u32, rx_us: u32) -> Event {
    Event::ControlPacketReceived(ControlPacket {
        diag: Diagnostic::NoDiagnostic,
        state,
        flags,
        detect_mult: 3,
        my_discriminator: 99,
        your_discriminator: A_DISCR,
        desired_min_tx_us: tx_us,
        required_min_rx_us: rx_us,
        required_min_echo_rx_us: 0,
        auth: None,
    })
}

const POLL: Flags = Flags {
    poll: true,
    final_: false,
    control_plane_independent: false,
    authentication_present: false,
    demand: false,
    multipoint: false,
};
const FINAL: Flags = Flags {
    poll: false,
    final_: true,
    ..POLL
};
const NONE: Flags = Flags {
    poll: false,
    ..POLL
};

/// A session brought Up by a scripted peer at 300 ms, its own poll completed.
fn up_alone() -> Driven {
    let mut d = Driven::new(SessionConfig::default(), A_DISCR, 3);
    let outputs = d.session.start();
    d.apply(Duration::ZERO, outputs);
    d.feed(Duration::ZERO, peer(State::Init, NONE, 1_000_000, 300_000));
    assert_eq!(d.session.state(), State::Up);
    assert!(d.session.polling());
    d.feed(Duration::ZERO, peer(State::Up, FINAL, 300_000, 300_000));
    assert!(!d.session.polling());
    d
}

#[test]
fn poll_sequence_defers_slower_tx_and_faster_rx_until_final() {
    let mut d = up_alone();
    assert_eq!(d.session.transmit_interval(), 300 * MS);
    let slower = SessionConfig {
        desired_min_tx: Duration::from_secs(1),
        required_min_rx: 100 * MS,
        detect_mult: 3,
    };
    let sent = d.feed(MS, Event::ParametersChanged(slower));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].flags.poll);
    assert_eq!(
        (sent[0].desired_min_tx_us, sent[0].required_min_rx_us),
        (1_000_000, 100_000)
    );
    // Until the Final: still sending every 300 ms, still expecting 900 ms detection.
    assert_eq!(d.session.transmit_interval(), 300 * MS);
    assert_eq!(d.session.detection_time(), 900 * MS);
    // Periodic packets keep the P bit; the peer's plain packets do not end the poll.
    let periodic = d.feed(2 * MS, Event::TransmitTimerExpired);
    assert!(periodic[0].flags.poll);
    d.feed(3 * MS, peer(State::Up, NONE, 300_000, 300_000));
    assert!(d.session.polling());
    // A second change during the poll waits for it (6.5).
    let faster = SessionConfig {
        desired_min_tx: 50 * MS,
        ..slower
    };
    assert!(d.feed(4 * MS, Event::ParametersChanged(faster)).is_empty());
    assert_eq!(d.session.transmit_interval(), 300 * MS);
    // The Final applies the first change and starts the queued one at once.
    let sent = d.feed(5 * MS, peer(State::Up, FINAL, 300_000, 300_000));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].flags.poll);
    assert_eq!(sent[0].desired_min_tx_us, 50_000);
    // Faster TX applies at once; the 100 ms RX already applied with the first Final.
    assert_eq!(
        d.session.transmit_interval(),
        300 * MS,
        "remote min RX 300 ms bounds us"
    );
    assert_eq!(
        d.session.detection_time(),
        900 * MS,
        "remote TX 300 ms bounds detection"
    );
    d.feed(6 * MS, peer(State::Up, FINAL, 100_000, 50_000));
    assert!(!d.session.polling());
    assert_eq!(d.session.transmit_interval(), 50 * MS);
    assert_eq!(
        d.session.detection_time(),
        300 * MS,
        "3 x max(our 100 ms RX, its 100 ms TX)"
    );
}

#[test]
fn a_poll_is_answered_at_once_with_final_only() {
    let mut d = up_alone();
    let before = d.transmit_at;
    let sent = d.feed(7 * MS, peer(State::Up, POLL, 500_000, 300_000));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].flags.final_ && !sent[0].flags.poll);
    // The answer does not push the periodic schedule back.
    assert_eq!(d.transmit_at, before);
    // The peer's slower TX lengthens our detection time at once.
    assert_eq!(d.session.detection_time(), 1500 * MS);
}

#[test]
fn slow_tx_while_not_up_and_the_peer_min_rx_bounds_us() {
    let config = SessionConfig {
        desired_min_tx: 10 * MS,
        required_min_rx: 10 * MS,
        detect_mult: 3,
    };
    let mut d = Driven::new(config, A_DISCR, 4);
    let outputs = d.session.start();
    let sent = d.apply(Duration::ZERO, outputs);
    assert_eq!(sent[0].desired_min_tx_us, SLOW_TX_US);
    assert_eq!(sent[0].required_min_rx_us, 10_000);
    assert_eq!(d.session.transmit_interval(), Duration::from_secs(1));
    // A peer asking for packets no faster than every 2 s is obeyed, and re-timed at once.
    d.feed(MS, peer(State::Down, NONE, 1_000_000, 2_000_000));
    assert_eq!(d.session.transmit_interval(), Duration::from_secs(2));
    let armed = *d.transmit_arms.last().unwrap();
    assert!((1500 * MS..=2000 * MS).contains(&armed), "{armed:?}");
    // Required Min RX 0: no periodic packets at all (6.8.7).
    d.feed(2 * MS, peer(State::Init, NONE, 1_000_000, 0));
    assert_eq!(d.transmit_at, None);
}

#[test]
fn jitter_stays_within_75_to_100_percent_and_90_with_detect_mult_1() {
    for (detect_mult, high) in [(3u8, 1000 * MS), (1, 900 * MS)] {
        let config = SessionConfig {
            detect_mult,
            ..SessionConfig::default()
        };
        let mut d = Driven::new(config, A_DISCR, 5);
        for _ in 0..5000 {
            d.feed(Duration::ZERO, Event::TransmitTimerExpired);
        }
        let min = *d.transmit_arms.iter().min().unwrap();
        let max = *d.transmit_arms.iter().max().unwrap();
        assert!(
            min >= 750 * MS && max <= high,
            "mult {detect_mult}: {min:?}..{max:?}"
        );
        // Actually spread, not a constant.
        assert!(
            min < 760 * MS && max > high - 10 * MS,
            "mult {detect_mult}: {min:?}..{max:?}"
        );
    }
}

#[test]
fn foreign_admin_down_and_stale_events_change_nothing() {
    let mut d = up_alone();
    // Another session's discriminator.
    let mut foreign = peer(State::Down, NONE, 300_000, 300_000);
    if let Event::ControlPacketReceived(p) = &mut foreign {
        p.your_discriminator = 12345;
    }
    assert!(d.feed(MS, foreign).is_empty());
    assert_eq!(d.session.state(), State::Up);
    // AdminDown: packets are discarded, detection stops, a stale expiry is ignored.
    d.feed(2 * MS, Event::AdminDown);
    assert_eq!(d.detect_at, None);
    assert!(
        d.feed(3 * MS, peer(State::Down, NONE, 300_000, 300_000))
            .is_empty()
    );
    assert!(d.feed(4 * MS, Event::DetectionTimeExpired).is_empty());
    assert_eq!(d.session.state(), State::AdminDown);
    assert_eq!(d.session.transmit_interval(), Duration::from_secs(1));
}

#[test]
fn a_peer_in_demand_mode_stops_our_periodic_packets() {
    let mut d = up_alone();
    let demand = Flags {
        demand: true,
        ..NONE
    };
    d.feed(MS, peer(State::Up, demand, 300_000, 300_000));
    assert_eq!(d.transmit_at, None);
    d.feed(2 * MS, peer(State::Up, NONE, 300_000, 300_000));
    assert!(d.transmit_at.is_some());
}

#[test]
fn interval_changes_outside_up_apply_at_once_without_a_poll() {
    let mut d = Driven::new(SessionConfig::default(), A_DISCR, 6);
    let outputs = d.session.start();
    d.apply(Duration::ZERO, outputs);
    let slower = SessionConfig {
        desired_min_tx: Duration::from_secs(3),
        ..SessionConfig::default()
    };
    let sent = d.feed(MS, Event::ParametersChanged(slower));
    assert!(sent.is_empty(), "no poll outside Up: {sent:?}");
    assert!(!d.session.polling());
    assert_eq!(d.session.transmit_interval(), Duration::from_secs(3));
    let armed = *d.transmit_arms.last().unwrap();
    assert!((2250 * MS..=3000 * MS).contains(&armed), "{armed:?}");
    let periodic = d.feed(2 * MS, Event::TransmitTimerExpired);
    assert_eq!(periodic[0].desired_min_tx_us, 3_000_000);
}
