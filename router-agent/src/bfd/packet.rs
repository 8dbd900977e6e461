//! BFD Control packets (RFC 5880 4.1): the codec and the stateless reception checks of 6.8.6.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! |   Auth Type   |   Auth Len    |    Authentication Data...     |
//! ```
//!
//! Authentication is not implemented: the section is framed and kept opaque, and a packet that
//! carries one is discarded because no session of ours uses authentication (6.8.6).

use std::fmt;

/// The BFD protocol version (RFC 5880 4.1).
pub const VERSION: u8 = 1;
/// Length of a Control packet without an authentication section.
pub const MANDATORY_LEN: usize = 24;
/// Minimum length of a Control packet with an authentication section (type and length bytes).
pub const MIN_LEN_WITH_AUTH: usize = MANDATORY_LEN + 2;

/// bfd.SessionState and the packet's Sta field (RFC 5880 4.1, 6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    fn from_bits(bits: u8) -> State {
        match bits & 0b11 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// The Diag field (RFC 5880 4.1): why the sender's session last changed state. Values 9-31 are
/// reserved; they are kept as received rather than discarded (the field is informational).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    NoDiagnostic,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    Reserved(u8),
}

impl Diagnostic {
    pub fn from_code(code: u8) -> Diagnostic {
        match code & 0x1f {
            0 => Diagnostic::NoDiagnostic,
            1 => Diagnostic::ControlDetectionTimeExpired,
            2 => Diagnostic::EchoFunctionFailed,
            3 => Diagnostic::NeighborSignaledSessionDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdministrativelyDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            other => Diagnostic::Reserved(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Diagnostic::NoDiagnostic => 0,
            Diagnostic::ControlDetectionTimeExpired => 1,
            Diagnostic::EchoFunctionFailed => 2,
            Diagnostic::NeighborSignaledSessionDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdministrativelyDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Reserved(code) => code & 0x1f,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::NoDiagnostic => f.write_str("no diagnostic"),
            Diagnostic::ControlDetectionTimeExpired => {
                f.write_str("control detection time expired")
            }
            Diagnostic::EchoFunctionFailed => f.write_str("echo function failed"),
            Diagnostic::NeighborSignaledSessionDown => {
                f.write_str("neighbor signaled session down")
            }
            Diagnostic::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Diagnostic::PathDown => f.write_str("path down"),
            Diagnostic::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diagnostic::AdministrativelyDown => f.write_str("administratively down"),
            Diagnostic::ReverseConcatenatedPathDown => {
                f.write_str("reverse concatenated path down")
            }
            Diagnostic::Reserved(code) => write!(f, "reserved diagnostic {code}"),
        }
    }
}

/// The P, F, C, A, D and M bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    pub poll: bool,
    pub final_: bool,
    pub control_plane_independent: bool,
    pub authentication_present: bool,
    pub demand: bool,
    pub multipoint: bool,
}

impl Flags {
    fn from_bits(byte: u8) -> Flags {
        Flags {
            poll: byte & 0x20 != 0,
            final_: byte & 0x10 != 0,
            control_plane_independent: byte & 0x08 != 0,
            authentication_present: byte & 0x04 != 0,
            demand: byte & 0x02 != 0,
            multipoint: byte & 0x01 != 0,
        }
    }

    fn bits(self) -> u8 {
        (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.control_plane_independent) << 3)
            | (u8::from(self.authentication_present) << 2)
            | (u8::from(self.demand) << 1)
            | u8::from(self.multipoint)
    }
}

/// An authentication section, framed but not interpreted (no authentication is implemented).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuthSection {
    pub auth_type: u8,
    /// The bytes after Auth Type and Auth Len (Auth Len - 2 of them).
    pub data: Vec<u8>,
}

/// A BFD Control packet. Intervals are in microseconds, as on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ControlPacket {
    pub diag: Diagnostic,
    pub state: State,
    pub flags: Flags,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
    /// Present iff `flags.authentication_present` on decoded packets.
    pub auth: Option<AuthSection>,
}

/// Why a received packet was discarded: its layout (decode) or the RFC 5880 6.8.6 checks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    #[error("{0} bytes, shorter than a BFD Control packet (24)")]
    Truncated(usize),
    #[error("version {0}, not 1")]
    Version(u8),
    #[error("Length field {length} is below the minimum {minimum}")]
    LengthTooSmall { length: u8, minimum: usize },
    #[error("Length field {length} exceeds the {received} bytes received")]
    LengthExceedsPayload { length: u8, received: usize },
    #[error("Auth Len {auth_len} does not fit the packet's Length {length}")]
    BadAuthLength { auth_len: u8, length: u8 },
    #[error("Detect Mult is zero")]
    DetectMultZero,
    #[error("Multipoint (M) bit set")]
    Multipoint,
    #[error("My Discriminator is zero")]
    MyDiscriminatorZero,
    #[error("Your Discriminator is zero in state {0}")]
    YourDiscriminatorZero(State),
    #[error("authentication type {0} present, but no authentication is configured")]
    AuthenticationNotConfigured(u8),
    #[error("Poll and Final bits both set")]
    PollAndFinal,
}

impl ControlPacket {
    /// Decodes a packet and applies every reception check of RFC 5880 6.8.6 that needs no
    /// session: the caller then selects the session by Your Discriminator (or by addresses
    /// when it is zero). `received` is the whole UDP payload.
    pub fn decode(received: &[u8]) -> Result<ControlPacket, Discard> {
        let packet = Self::decode_layout(received)?;
        packet.check_reception()?;
        Ok(packet)
    }

    /// Layout only: version, lengths and the authentication section's framing.
    fn decode_layout(received: &[u8]) -> Result<ControlPacket, Discard> {
        if received.len() < MANDATORY_LEN {
            return Err(Discard::Truncated(received.len()));
        }
        let version = received[0] >> 5;
        if version != VERSION {
            return Err(Discard::Version(version));
        }
        let flags = Flags::from_bits(received[1]);
        let length = received[3];
        let minimum = if flags.authentication_present {
            MIN_LEN_WITH_AUTH
        } else {
            MANDATORY_LEN
        };
        if usize::from(length) < minimum {
            return Err(Discard::LengthTooSmall { length, minimum });
        }
        if usize::from(length) > received.len() {
            return Err(Discard::LengthExceedsPayload {
                length,
                received: received.len(),
            });
        }
        // Bytes past Length are the encapsulation's business, not ours: ignored.
        let auth = if flags.authentication_present {
            let auth_len = received[MANDATORY_LEN + 1];
            let end = MANDATORY_LEN + usize::from(auth_len);
            if auth_len < 2 || end > usize::from(length) {
                return Err(Discard::BadAuthLength { auth_len, length });
            }
            Some(AuthSection {
                auth_type: received[MANDATORY_LEN],
                data: received[MANDATORY_LEN + 2..end].to_vec(),
            })
        } else {
            None
        };
        let word = |at: usize| u32::from_be_bytes(received[at..at + 4].try_into().unwrap());
        Ok(ControlPacket {
            diag: Diagnostic::from_code(received[0]),
            state: State::from_bits(received[1] >> 6),
            flags,
            detect_mult: received[2],
            my_discriminator: word(4),
            your_discriminator: word(8),
            desired_min_tx_us: word(12),
            required_min_rx_us: word(16),
            required_min_echo_rx_us: word(20),
            auth,
        })
    }

    /// RFC 5880 6.8.6, the checks before session selection, plus its authentication rule for a
    /// system where no session uses authentication.
    fn check_reception(&self) -> Result<(), Discard> {
        if self.detect_mult == 0 {
            return Err(Discard::DetectMultZero);
        }
        if self.flags.multipoint {
            return Err(Discard::Multipoint);
        }
        if self.my_discriminator == 0 {
            return Err(Discard::MyDiscriminatorZero);
        }
        if self.your_discriminator == 0 && !matches!(self.state, State::Down | State::AdminDown) {
            return Err(Discard::YourDiscriminatorZero(self.state));
        }
        if let Some(auth) = &self.auth {
            return Err(Discard::AuthenticationNotConfigured(auth.auth_type));
        }
        // 6.8.7 forbids sending both; a packet with both cannot be both a poll and its answer.
        if self.flags.poll && self.flags.final_ {
            return Err(Discard::PollAndFinal);
        }
        Ok(())
    }

    /// Encodes the packet. We never send authentication, so the A bit and any section are
    /// dropped: what is encoded is always the 24-byte mandatory section.
    pub fn encode(&self) -> [u8; MANDATORY_LEN] {
        let mut out = [0u8; MANDATORY_LEN];
        let flags = Flags {
            authentication_present: false,
            ..self.flags
        };
        out[0] = (VERSION << 5) | self.diag.code();
        out[1] = ((self.state as u8) << 6) | flags.bits();
        out[2] = self.detect_mult;
        out[3] = MANDATORY_LEN as u8;
        out[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        out[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        out[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        out[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        out[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        out
    }
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
