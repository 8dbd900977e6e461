//! One BFD session's state machine (RFC 5880 6.2, 6.8), Asynchronous mode, sans-IO.
//!
//! Like `bgp/fsm.rs`, a [`Session`] owns no socket, timer or clock: the driver feeds it
//! [`Event`]s named after RFC 5880 and carries out the [`Output`]s, in order.
//!
//! # Driver contract
//!
//! - **Packets.** Decode with [`ControlPacket::decode`] (the stateless 6.8.6 checks), select the
//!   session by Your Discriminator (or by addresses when it is zero), then feed
//!   `ControlPacketReceived`. `Send(p)`: transmit `p` now (RFC 5881: TTL 255, to port 3784).
//! - **Timers.** Two: transmit and detection. `Arm*(d)` arms it to expire `d` from now, replacing
//!   any pending expiry; `Stop*` cancels it. Deliver the expiry only for the latest arming.
//!   Transmit intervals come jittered (6.8.7): the driver must not add its own.
//! - **State.** `StateChanged` reports every transition, with the local diagnostic.
//!   `path_failed` is what fails the neighbour's next hops and its BGP session: Up to Down,
//!   except when the peer went AdminDown (RFC 5882 3.2: not a failure of the path; our own
//!   AdminDown is not either).
//!
//! # Deviations and choices
//!
//! 1. A packet is sent at once on every state change, as FRR's bfdd does, besides the periodic
//!    ones, so that the three-way handshake is not paced by the 1 s slow rate. It is the one
//!    exception to 6.8.7's minimum spacing, besides Final answers.
//! 2. Interval changes are negotiated with a Poll Sequence only while Up (6.8.3's constraints
//!    are about Up sessions); outside Up they take effect at once. A poll in progress is
//!    abandoned when the session leaves Up.
//! 3. Demand mode and the Echo function are not implemented: we never set D, and advertise a
//!    Required Min Echo RX of 0. A peer in Demand mode is honoured (6.8.6: we stop periodic
//!    transmission while both ends are Up).
//! 4. In AdminDown we keep sending at the slow rate (6.8.16 allows ceasing after a Detection
//!    Time; continuing tells a restarted peer why we are down).

use std::num::NonZeroU32;
use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::SmallRng};

use super::packet::{ControlPacket, Diagnostic, Flags, State};

/// 6.8.3: while not Up, bfd.DesiredMinTxInterval is at least one second.
pub const SLOW_TX_US: u32 = 1_000_000;

/// The intervals we ask for (bfd.DesiredMinTxInterval, bfd.RequiredMinRxInterval) and
/// bfd.DetectMult. Both intervals must be non-zero and fit in u32 microseconds (config checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub detect_mult: u8,
}

impl Default for SessionConfig {
    /// 300 ms x 3, the defaults of FRR's bfdd.
    fn default() -> Self {
        SessionConfig {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
        }
    }
}

/// What the driver feeds the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A packet that passed [`ControlPacket::decode`] and was demultiplexed to this session.
    ControlPacketReceived(ControlPacket),
    /// The transmit timer armed by [`Output::ArmTransmitTimer`] expired.
    TransmitTimerExpired,
    /// The detection timer armed by [`Output::ArmDetectionTimer`] expired (6.8.4).
    DetectionTimeExpired,
    /// 6.8.16: the operator disables the session.
    AdminDown,
    /// 6.8.16: the operator enables it again.
    AdminUp,
    /// New configured intervals (a reload): negotiated with a Poll Sequence when Up.
    ParametersChanged(SessionConfig),
}

/// What the driver does, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Send(ControlPacket),
    ArmTransmitTimer(Duration),
    StopTransmitTimer,
    ArmDetectionTimer(Duration),
    StopDetectionTimer,
    StateChanged {
        from: State,
        to: State,
        diag: Diagnostic,
        path_failed: bool,
    },
}

/// The intervals in packets (advertised) or in use for timing (in effect), microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Intervals {
    desired_min_tx_us: u32,
    required_min_rx_us: u32,
}

/// One session: the state variables of RFC 5880 6.8.1 and the Poll Sequence in progress.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    remote_state: State,
    local_discr: NonZeroU32,
    remote_discr: u32,
    local_diag: Diagnostic,
    /// bfd.RemoteMinRxInterval; 1 us until the peer says (6.8.1).
    remote_min_rx_us: u32,
    /// The last Desired Min TX received: the peer's rate, for the detection time.
    remote_desired_min_tx_us: u32,
    remote_detect_mult: u8,
    remote_demand: bool,
    /// What our packets carry: changes only when a Poll Sequence starts (or outside Up).
    advertised: Intervals,
    /// What timing uses. Differs from `advertised` during a poll, on the unsafe side only.
    in_effect: Intervals,
    polling: bool,
    /// A packet arrived since the last detection expiry: the detection timer is running.
    detecting: bool,
    /// The nominal interval the transmit timer was last armed with; None when stopped.
    transmit_armed: Option<Duration>,
    rng: SmallRng,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX).max(1)
}

impl Session {
    /// A session in Down with discriminator `local_discr` (unique on the system; 6.8.1 makes
    /// it non-zero).
    /// `jitter_seed` seeds the 6.8.7 jitter (random in production, fixed in tests).
    pub fn new(config: SessionConfig, local_discr: NonZeroU32, jitter_seed: u64) -> Session {
        let mut session = Session {
            config,
            state: State::Down,
            remote_state: State::Down,
            local_discr,
            remote_discr: 0,
            local_diag: Diagnostic::NoDiagnostic,
            remote_min_rx_us: 1,
            remote_desired_min_tx_us: 0,
            remote_detect_mult: 0,
            remote_demand: false,
            advertised: Intervals {
                desired_min_tx_us: 0,
                required_min_rx_us: 0,
            },
            in_effect: Intervals {
                desired_min_tx_us: 0,
                required_min_rx_us: 0,
            },
            polling: false,
            detecting: false,
            transmit_armed: None,
            rng: SmallRng::seed_from_u64(jitter_seed),
        };
        session.advertised = session.wanted();
        session.in_effect = session.advertised;
        session
    }

    /// Starts transmitting: the first packet goes out now.
    pub fn start(&mut self) -> Vec<Output> {
        let mut out = vec![Output::Send(self.packet(Flags::default()))];
        self.rearm_transmit(&mut out);
        out
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// bfd.RemoteSessionState: the state in the peer's last packet.
    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    pub fn local_diag(&self) -> Diagnostic {
        self.local_diag
    }

    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    pub fn polling(&self) -> bool {
        self.polling
    }

    /// The interval periodic packets are sent at before jitter (6.8.7).
    pub fn transmit_interval(&self) -> Duration {
        Duration::from_micros(u64::from(
            self.in_effect.desired_min_tx_us.max(self.remote_min_rx_us),
        ))
    }

    /// Asynchronous mode (6.8.4): the remote Detect Mult times the larger of our Required Min
    /// RX and the remote's Desired Min TX.
    pub fn detection_time(&self) -> Duration {
        let interval = self
            .in_effect
            .required_min_rx_us
            .max(self.remote_desired_min_tx_us);
        Duration::from_micros(u64::from(self.remote_detect_mult) * u64::from(interval))
    }

    pub fn handle(&mut self, event: Event) -> Vec<Output> {
        let mut out = Vec::new();
        match event {
            Event::ControlPacketReceived(packet) => self.receive(packet, &mut out),
            Event::TransmitTimerExpired => {
                if self.transmits_periodically() {
                    let flags = Flags {
                        poll: self.polling,
                        ..Flags::default()
                    };
                    out.push(Output::Send(self.packet(flags)));
                }
                self.rearm_transmit(&mut out);
            }
            Event::DetectionTimeExpired => {
                if !self.detecting {
                    return out;
                }
                self.detecting = false;
                // 6.8.1: forget the peer once it has been silent for a Detection Time.
                self.remote_discr = 0;
                self.remote_state = State::Down;
                self.remote_demand = false;
                if matches!(self.state, State::Init | State::Up) {
                    self.transition(
                        State::Down,
                        Diagnostic::ControlDetectionTimeExpired,
                        &mut out,
                    );
                }
            }
            Event::AdminDown => {
                if self.state != State::AdminDown {
                    self.detecting = false;
                    out.push(Output::StopDetectionTimer);
                    self.transition(State::AdminDown, Diagnostic::AdministrativelyDown, &mut out);
                }
            }
            Event::AdminUp => {
                if self.state == State::AdminDown {
                    self.transition(State::Down, Diagnostic::NoDiagnostic, &mut out);
                }
            }
            Event::ParametersChanged(config) => {
                self.config = config;
                self.renegotiate(&mut out);
                // Outside Up the new TX interval applies at once: so does its timer.
                if self.transmit_armed != self.periodic_interval() {
                    self.rearm_transmit(&mut out);
                }
            }
        }
        out
    }

    fn receive(&mut self, packet: ControlPacket, out: &mut Vec<Output>) {
        // 6.8.6: the demultiplexer should not hand us another session's packet; if it did, it
        // must not move this one.
        if packet.your_discriminator != 0 && packet.your_discriminator != self.local_discr.get() {
            return;
        }
        if self.state == State::AdminDown {
            return;
        }
        self.remote_discr = packet.my_discriminator;
        self.remote_state = packet.state;
        self.remote_demand = packet.flags.demand;
        self.remote_min_rx_us = packet.required_min_rx_us;
        self.remote_desired_min_tx_us = packet.desired_min_tx_us;
        self.remote_detect_mult = packet.detect_mult;

        if packet.flags.final_ && self.polling {
            self.polling = false;
            self.in_effect = self.advertised;
        }

        match (self.state, packet.state) {
            (State::Init | State::Up, State::AdminDown) => {
                self.transition(State::Down, Diagnostic::NeighborSignaledSessionDown, out)
            }
            (State::Down, State::Down) => self.transition(State::Init, self.local_diag, out),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.transition(State::Up, Diagnostic::NoDiagnostic, out)
            }
            (State::Up, State::Down) => {
                self.transition(State::Down, Diagnostic::NeighborSignaledSessionDown, out)
            }
            _ => {}
        }

        // A poll that ended may bring queued changes; after the transition, the wanted values.
        self.renegotiate(out);

        if packet.flags.poll {
            let flags = Flags {
                final_: true,
                ..Flags::default()
            };
            out.push(Output::Send(self.packet(flags)));
        }
        self.detecting = true;
        out.push(Output::ArmDetectionTimer(self.detection_time()));
        // The peer's Required Min RX may have changed how often we may send, or Demand mode
        // may have started or ended. Re-arming on every packet would starve our own TX.
        if self.transmit_armed != self.periodic_interval() {
            self.rearm_transmit(out);
        }
    }

    /// The intervals our configuration and state call for (6.8.3's slow rate while not Up).
    fn wanted(&self) -> Intervals {
        let tx = micros(self.config.desired_min_tx);
        Intervals {
            desired_min_tx_us: if self.state == State::Up {
                tx
            } else {
                tx.max(SLOW_TX_US)
            },
            required_min_rx_us: micros(self.config.required_min_rx),
        }
    }

    /// Brings `advertised` to `wanted`: at once outside Up, by a Poll Sequence in Up (one at
    /// a time, 6.5: a change during a poll waits for its Final).
    fn renegotiate(&mut self, out: &mut Vec<Output>) {
        let wanted = self.wanted();
        if wanted == self.advertised {
            return;
        }
        if self.state != State::Up {
            self.advertised = wanted;
            self.in_effect = wanted;
            return;
        }
        if self.polling {
            return;
        }
        // 6.8.3: in Up, a slower TX and a faster RX wait for the Final; the safe halves of
        // the change apply now.
        self.in_effect = Intervals {
            desired_min_tx_us: self
                .in_effect
                .desired_min_tx_us
                .min(wanted.desired_min_tx_us),
            required_min_rx_us: self
                .in_effect
                .required_min_rx_us
                .max(wanted.required_min_rx_us),
        };
        self.advertised = wanted;
        self.polling = true;
        let flags = Flags {
            poll: true,
            ..Flags::default()
        };
        out.push(Output::Send(self.packet(flags)));
        self.rearm_transmit(out);
    }

    fn transition(&mut self, to: State, diag: Diagnostic, out: &mut Vec<Output>) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        if to != State::Up {
            self.polling = false;
        }
        let path_failed =
            from == State::Up && to == State::Down && self.remote_state != State::AdminDown;
        out.push(Output::StateChanged {
            from,
            to,
            diag,
            path_failed,
        });
        // Coming Up starts the poll to our real rate, and that poll packet is the prompt
        // announcement; otherwise send one now (deviation 1).
        self.renegotiate(out);
        if !self.polling {
            out.push(Output::Send(self.packet(Flags::default())));
            self.rearm_transmit(out);
        }
    }

    /// 6.8.7: no periodic packets while the peer asks for none (Required Min RX 0) or, both
    /// ends Up, is in Demand mode.
    fn transmits_periodically(&self) -> bool {
        let remote_demand_active =
            self.remote_demand && self.state == State::Up && self.remote_state == State::Up;
        self.remote_min_rx_us != 0 && !remote_demand_active
    }

    fn periodic_interval(&self) -> Option<Duration> {
        self.transmits_periodically()
            .then(|| self.transmit_interval())
    }

    /// Arms the transmit timer for a full (jittered) interval from now, after a send or when
    /// the interval changed. An earlier arming in the same output list is superseded anyway.
    fn rearm_transmit(&mut self, out: &mut Vec<Output>) {
        out.retain(|o| !matches!(o, Output::ArmTransmitTimer(_) | Output::StopTransmitTimer));
        self.transmit_armed = self.periodic_interval();
        match self.transmit_armed {
            Some(interval) => {
                let jittered = self.jittered(interval);
                out.push(Output::ArmTransmitTimer(jittered));
            }
            None => out.push(Output::StopTransmitTimer),
        }
    }

    /// 6.8.7: each interval is 75 to 100% of the nominal one, at most 90% when bfd.DetectMult
    /// is 1 (so that one late packet does not always expire the peer's detection).
    fn jittered(&mut self, interval: Duration) -> Duration {
        let nominal = interval.as_micros() as u64;
        let high = if self.config.detect_mult == 1 {
            nominal * 9 / 10
        } else {
            nominal
        };
        let low = nominal * 3 / 4;
        Duration::from_micros(self.rng.random_range(low..=high.max(low)))
    }

    fn packet(&self, flags: Flags) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            flags,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr.get(),
            your_discriminator: self.remote_discr,
            desired_min_tx_us: self.advertised.desired_min_tx_us,
            required_min_rx_us: self.advertised.required_min_rx_us,
            required_min_echo_rx_us: 0,
            auth: None,
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
