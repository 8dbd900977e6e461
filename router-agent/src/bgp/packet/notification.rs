//! NOTIFICATION message (RFC 4271 4.5), its error codes and subcodes (IANA "BGP Error
//! (Notification) Codes" and "... Subcodes"), and the shutdown communication carried by
//! Cease/Administrative Shutdown and Cease/Administrative Reset (RFC 9003, which obsoletes
//! RFC 8203).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The shutdown communication (RFC 9003 2) is the Data of Cease subcodes 2 and 4:
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code 6  |    Subcode    |    Length     |     ...       \
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+               /
//! \                                                               \
//! /                 ... Shutdown Communication ...                /
//! \                                                               \
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Length is the number of octets (0..=255) of UTF-8 text that follow.

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::types::{Afi, Safi};
use super::wire::{Reader, afi_from_wire, family_name, hex, safi_from_wire};

/// Defines a `#[repr(u8)]` enum of IANA code points with `from_u8` and the registry name.
macro_rules! code_points {
    ($(#[$meta:meta])* pub enum $name:ident { $($variant:ident = $value:literal => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name { $($variant = $value,)* }

        impl $name {
            pub fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// The name in the IANA registry.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
    };
}

code_points! {
    /// NOTIFICATION error codes (RFC 4271 4.5, RFC 7313).
    pub enum ErrorCode {
        MessageHeader = 1 => "Message Header Error",
        OpenMessage = 2 => "OPEN Message Error",
        UpdateMessage = 3 => "UPDATE Message Error",
        HoldTimerExpired = 4 => "Hold Timer Expired",
        FiniteStateMachine = 5 => "Finite State Machine Error",
        Cease = 6 => "Cease",
        RouteRefreshMessage = 7 => "ROUTE-REFRESH Message Error",
    }
}

code_points! {
    /// Message Header Error subcodes (RFC 4271 6.1).
    pub enum MessageHeaderSubcode {
        ConnectionNotSynchronized = 1 => "Connection Not Synchronized",
        BadMessageLength = 2 => "Bad Message Length",
        BadMessageType = 3 => "Bad Message Type",
    }
}

code_points! {
    /// OPEN Message Error subcodes (RFC 4271 6.2, RFC 5492, RFC 9234). 5, 8, 9 and 10 are
    /// deprecated.
    pub enum OpenMessageSubcode {
        UnsupportedVersionNumber = 1 => "Unsupported Version Number",
        BadPeerAs = 2 => "Bad Peer AS",
        BadBgpIdentifier = 3 => "Bad BGP Identifier",
        UnsupportedOptionalParameter = 4 => "Unsupported Optional Parameter",
        UnacceptableHoldTime = 6 => "Unacceptable Hold Time",
        UnsupportedCapability = 7 => "Unsupported Capability",
        RoleMismatch = 11 => "Role Mismatch",
    }
}

code_points! {
    /// UPDATE Message Error subcodes (RFC 4271 6.3). 7 (AS Routing Loop) is deprecated.
    pub enum UpdateMessageSubcode {
        MalformedAttributeList = 1 => "Malformed Attribute List",
        UnrecognizedWellKnownAttribute = 2 => "Unrecognized Well-known Attribute",
        MissingWellKnownAttribute = 3 => "Missing Well-known Attribute",
        AttributeFlagsError = 4 => "Attribute Flags Error",
        AttributeLengthError = 5 => "Attribute Length Error",
        InvalidOriginAttribute = 6 => "Invalid ORIGIN Attribute",
        InvalidNextHopAttribute = 8 => "Invalid NEXT_HOP Attribute",
        OptionalAttributeError = 9 => "Optional Attribute Error",
        InvalidNetworkField = 10 => "Invalid Network Field",
        MalformedAsPath = 11 => "Malformed AS_PATH",
    }
}

code_points! {
    /// Finite State Machine Error subcodes (RFC 6608).
    pub enum FsmSubcode {
        Unspecified = 0 => "Unspecified Error",
        UnexpectedMessageInOpenSent = 1 => "Receive Unexpected Message in OpenSent State",
        UnexpectedMessageInOpenConfirm = 2 => "Receive Unexpected Message in OpenConfirm State",
        UnexpectedMessageInEstablished = 3 => "Receive Unexpected Message in Established State",
    }
}

code_points! {
    /// Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
    pub enum CeaseSubcode {
        MaximumPrefixesReached = 1 => "Maximum Number of Prefixes Reached",
        AdministrativeShutdown = 2 => "Administrative Shutdown",
        PeerDeconfigured = 3 => "Peer De-configured",
        AdministrativeReset = 4 => "Administrative Reset",
        ConnectionRejected = 5 => "Connection Rejected",
        OtherConfigurationChange = 6 => "Other Configuration Change",
        ConnectionCollisionResolution = 7 => "Connection Collision Resolution",
        OutOfResources = 8 => "Out of Resources",
        HardReset = 9 => "Hard Reset",
        BfdDown = 10 => "BFD Down",
    }
}

code_points! {
    /// ROUTE-REFRESH Message Error subcodes (RFC 7313).
    pub enum RouteRefreshSubcode {
        InvalidMessageLength = 1 => "Invalid Message Length",
    }
}

/// Longest shutdown communication (RFC 9003 2: the Length octet).
pub const MAX_SHUTDOWN_COMMUNICATION_LEN: usize = 255;

/// A NOTIFICATION: the error that closes the session, as raw code points so that codes we do
/// not know are still carried and shown.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    /// Code, subcode and data octets (RFC 4271 4.5: Data may be empty).
    pub const MIN_BODY_LEN: usize = 2;

    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Notification {
            code,
            subcode,
            data,
        }
    }

    pub fn hold_timer_expired() -> Self {
        Self::new(ErrorCode::HoldTimerExpired as u8, 0, Vec::new())
    }

    /// RFC 6608: a message that is not allowed in the current FSM state.
    pub fn fsm_error(subcode: FsmSubcode) -> Self {
        Self::new(
            ErrorCode::FiniteStateMachine as u8,
            subcode as u8,
            Vec::new(),
        )
    }

    /// RFC 4271 6.2: the peer bid a version we do not speak; Data is the version we do.
    pub fn unsupported_version(supported: u8) -> Self {
        Self::open_error(
            OpenMessageSubcode::UnsupportedVersionNumber,
            u16::from(supported).to_be_bytes().to_vec(),
        )
    }

    /// The peer's AS is not the one configured for it (the FSM knows the configuration).
    pub fn bad_peer_as() -> Self {
        Self::open_error(OpenMessageSubcode::BadPeerAs, Vec::new())
    }

    pub fn bad_bgp_identifier() -> Self {
        Self::open_error(OpenMessageSubcode::BadBgpIdentifier, Vec::new())
    }

    pub fn unacceptable_hold_time() -> Self {
        Self::open_error(OpenMessageSubcode::UnacceptableHoldTime, Vec::new())
    }

    /// RFC 5492 3: a capability we require but the peer did not advertise. `capabilities` is
    /// the Data: the missing capabilities as TLVs (code, length, value).
    pub fn unsupported_capability(capabilities: &[u8]) -> Self {
        Self::open_error(
            OpenMessageSubcode::UnsupportedCapability,
            capabilities.to_vec(),
        )
    }

    /// RFC 9234 4.2: the BGP roles of the two ends do not fit.
    pub fn role_mismatch() -> Self {
        Self::open_error(OpenMessageSubcode::RoleMismatch, Vec::new())
    }

    /// RFC 4486 4: Data is AFI (2), SAFI (1) and the configured prefix limit (4).
    pub fn maximum_prefixes_reached(afi: Afi, safi: Safi, limit: u32) -> Self {
        let mut data = Vec::with_capacity(7);
        data.extend_from_slice(&(afi as u16).to_be_bytes());
        data.push(safi as u8);
        data.extend_from_slice(&limit.to_be_bytes());
        Self::cease(CeaseSubcode::MaximumPrefixesReached, data)
    }

    /// RFC 9003: Cease/Administrative Shutdown with an operator message ("" for none). The
    /// message is cut to 255 octets at a character boundary.
    pub fn administrative_shutdown(communication: &str) -> Self {
        Self::cease(
            CeaseSubcode::AdministrativeShutdown,
            encode_shutdown_communication(communication),
        )
    }

    /// RFC 9003: Cease/Administrative Reset with an operator message ("" for none).
    pub fn administrative_reset(communication: &str) -> Self {
        Self::cease(
            CeaseSubcode::AdministrativeReset,
            encode_shutdown_communication(communication),
        )
    }

    pub fn peer_deconfigured() -> Self {
        Self::cease(CeaseSubcode::PeerDeconfigured, Vec::new())
    }

    pub fn connection_rejected() -> Self {
        Self::cease(CeaseSubcode::ConnectionRejected, Vec::new())
    }

    pub fn other_configuration_change() -> Self {
        Self::cease(CeaseSubcode::OtherConfigurationChange, Vec::new())
    }

    pub fn connection_collision_resolution() -> Self {
        Self::cease(CeaseSubcode::ConnectionCollisionResolution, Vec::new())
    }

    pub fn out_of_resources() -> Self {
        Self::cease(CeaseSubcode::OutOfResources, Vec::new())
    }

    pub fn bfd_down() -> Self {
        Self::cease(CeaseSubcode::BfdDown, Vec::new())
    }

    /// RFC 8538 3: Cease/Hard Reset, carrying the NOTIFICATION that caused it as Data
    /// (its code, subcode and data).
    pub fn hard_reset(cause: &Notification) -> Self {
        let mut data = Vec::with_capacity(2 + cause.data.len());
        data.push(cause.code);
        data.push(cause.subcode);
        data.extend_from_slice(&cause.data);
        Self::cease(CeaseSubcode::HardReset, data)
    }

    fn open_error(subcode: OpenMessageSubcode, data: Vec<u8>) -> Self {
        Self::new(ErrorCode::OpenMessage as u8, subcode as u8, data)
    }

    fn cease(subcode: CeaseSubcode, data: Vec<u8>) -> Self {
        Self::new(ErrorCode::Cease as u8, subcode as u8, data)
    }

    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u8(self.code)
    }

    fn is_cease(&self, subcode: CeaseSubcode) -> bool {
        self.code == ErrorCode::Cease as u8 && self.subcode == subcode as u8
    }

    /// The operator's message of a Cease/Administrative Shutdown or Administrative Reset
    /// (RFC 9003), when one is present and well-formed: its Length fits the data and the text
    /// is valid UTF-8. An empty communication (Length 0) is `None`.
    pub fn shutdown_communication(&self) -> Option<&str> {
        match self.parse_shutdown_communication()? {
            Ok(text) if !text.is_empty() => Some(text),
            _ => None,
        }
    }

    /// `None`: not a shutdown/reset or no data at all; `Some(Err)`: data present but not a
    /// valid communication (RFC 9003 5 asks that this be reported to the operator).
    fn parse_shutdown_communication(&self) -> Option<Result<&str, ()>> {
        if !(self.is_cease(CeaseSubcode::AdministrativeShutdown)
            || self.is_cease(CeaseSubcode::AdministrativeReset))
            || self.data.is_empty()
        {
            return None;
        }
        let mut reader = Reader::new(&self.data);
        let length = reader.u8()?;
        Some(
            reader
                .take(usize::from(length))
                .and_then(|text| std::str::from_utf8(text).ok())
                .ok_or(()),
        )
    }

    /// Decodes the body (after the 19-octet header): `None` if it lacks code and subcode
    /// (the caller, which knows the header, reports the length error).
    pub(crate) fn decode_body(body: &[u8]) -> Option<Notification> {
        let mut reader = Reader::new(body);
        let (code, subcode) = (reader.u8()?, reader.u8()?);
        Some(Notification::new(code, subcode, reader.rest().to_vec()))
    }

    /// Encodes the body in at most `room` octets (what the message size leaves after the
    /// header): data that would not fit is cut.
    pub(crate) fn encode_body(&self, out: &mut BytesMut, room: usize) {
        let max_data_len = room.saturating_sub(Notification::MIN_BODY_LEN);
        out.put_u8(self.code);
        out.put_u8(self.subcode);
        out.put_slice(&self.data[..self.data.len().min(max_data_len)]);
    }
}

/// RFC 9003 2: Length octet and UTF-8 text, cut to 255 octets without splitting a character.
fn encode_shutdown_communication(communication: &str) -> Vec<u8> {
    let mut end = communication.len().min(MAX_SHUTDOWN_COMMUNICATION_LEN);
    while !communication.is_char_boundary(end) {
        end -= 1;
    }
    let text = &communication.as_bytes()[..end];
    let mut data = Vec::with_capacity(1 + text.len());
    // `end` <= 255, so it fits the Length octet.
    data.push(end as u8);
    data.extend_from_slice(text);
    data
}

/// The subcode's name, or `None` for an unknown one. Subcode 0 is "Unspecific" for every
/// code (IANA), and "Unspecified Error" for the FSM (RFC 6608).
fn subcode_name(code: ErrorCode, subcode: u8) -> Option<&'static str> {
    match code {
        ErrorCode::MessageHeader => MessageHeaderSubcode::from_u8(subcode).map(|s| s.name()),
        ErrorCode::OpenMessage => OpenMessageSubcode::from_u8(subcode).map(|s| s.name()),
        ErrorCode::UpdateMessage => UpdateMessageSubcode::from_u8(subcode).map(|s| s.name()),
        ErrorCode::FiniteStateMachine => FsmSubcode::from_u8(subcode).map(|s| s.name()),
        ErrorCode::Cease => CeaseSubcode::from_u8(subcode).map(|s| s.name()),
        ErrorCode::RouteRefreshMessage => RouteRefreshSubcode::from_u8(subcode).map(|s| s.name()),
        ErrorCode::HoldTimerExpired => None,
    }
    .or((subcode == 0).then_some("Unspecific"))
}

/// Shows the error the way an operator reads it, e.g.
/// `Cease/Administrative Shutdown: "maintenance"` or
/// `UPDATE Message Error/Malformed AS_PATH (data: 4002...)`.
impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(code) = self.error_code() else {
            write!(f, "error code {}/subcode {}", self.code, self.subcode)?;
            return write_data(f, &self.data);
        };
        f.write_str(code.name())?;
        match subcode_name(code, self.subcode) {
            // Hold Timer Expired has no subcodes, and a bare Cease needs no "/Unspecific".
            _ if self.subcode == 0
                && matches!(code, ErrorCode::HoldTimerExpired | ErrorCode::Cease) => {}
            Some(name) => write!(f, "/{name}")?,
            None => write!(f, "/subcode {}", self.subcode)?,
        }

        if let Some(communication) = self.parse_shutdown_communication() {
            return match communication {
                Ok("") => Ok(()),
                Ok(text) => write!(f, ": {text:?}"),
                Err(()) => write!(
                    f,
                    " (malformed shutdown communication: {})",
                    hex(&self.data)
                ),
            };
        }
        if self.is_cease(CeaseSubcode::HardReset) {
            let mut reader = Reader::new(&self.data);
            if let (Some(code), Some(subcode)) = (reader.u8(), reader.u8()) {
                let cause = Notification::new(code, subcode, reader.rest().to_vec());
                return write!(f, " ({cause})");
            }
        }
        if self.is_cease(CeaseSubcode::MaximumPrefixesReached) {
            let mut reader = Reader::new(&self.data);
            if let (Some(afi), Some(safi), Some(limit), true) =
                (reader.u16(), reader.u8(), reader.u32(), reader.is_empty())
            {
                let family = match (afi_from_wire(afi), safi_from_wire(u16::from(safi))) {
                    (Some(afi), Some(safi)) => family_name(afi, safi),
                    _ => format!("AFI {afi} SAFI {safi}"),
                };
                return write!(f, " ({family}, limit {limit})");
            }
        }
        write_data(f, &self.data)
    }
}

/// Raw data as hex, cut after 64 octets: enough to recognise an attribute in a log line.
fn write_data(f: &mut fmt::Formatter<'_>, data: &[u8]) -> fmt::Result {
    const SHOWN: usize = 64;
    if data.is_empty() {
        return Ok(());
    }
    let ellipsis = if data.len() > SHOWN { "..." } else { "" };
    write!(
        f,
        " (data: {}{ellipsis})",
        hex(&data[..data.len().min(SHOWN)])
    )
}

#[cfg(test)]
mod tests;
