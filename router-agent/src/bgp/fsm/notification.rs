//! NOTIFICATION contents (RFC 4271 4.5), the error codes and subcodes the FSM and its callers
//! use, and the Cease subcodes (RFC 4486) with the Shutdown Communication (RFC 9003).

use std::fmt;

use crate::bgp::packet::types::{Afi, Safi};

/// NOTIFICATION error codes (RFC 4271 4.5, RFC 7313).
pub mod error_code {
    pub const MESSAGE_HEADER_ERROR: u8 = 1;
    pub const OPEN_MESSAGE_ERROR: u8 = 2;
    pub const UPDATE_MESSAGE_ERROR: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM_ERROR: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH_MESSAGE_ERROR: u8 = 7;
    /// RFC 9687 5.
    pub const SEND_HOLD_TIMER_EXPIRED: u8 = 8;
}

/// Subcodes of OPEN Message Error (RFC 4271 6.2, RFC 5492).
pub mod open_error {
    /// A recognized optional parameter is malformed.
    pub const UNSPECIFIC: u8 = 0;
    /// Data: the 2-octet version we support.
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// Subcodes of Finite State Machine Error (RFC 6608).
pub mod fsm_error {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_MESSAGE_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_MESSAGE_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_MESSAGE_IN_ESTABLISHED: u8 = 3;
}

/// Longest Shutdown Communication, in bytes of UTF-8 (RFC 9003 2).
pub const MAX_SHUTDOWN_MESSAGE_LEN: usize = 255;

/// Cease subcodes (RFC 4486; Hard Reset is RFC 8538's, BFD Down RFC 9384's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum CeaseSubcode {
    /// Data: AFI, SAFI and the prefix limit (see [`NotificationInfo::cease_max_prefixes`]).
    MaximumPrefixesReached = 1,
    /// Data: optional Shutdown Communication (RFC 9003).
    AdministrativeShutdown = 2,
    PeerDeConfigured = 3,
    /// Data: optional Shutdown Communication (RFC 9003).
    AdministrativeReset = 4,
    ConnectionRejected = 5,
    OtherConfigurationChange = 6,
    /// Sent on the connection closed by collision resolution (RFC 4271 6.8).
    ConnectionCollisionResolution = 7,
    OutOfResources = 8,
    HardReset = 9,
    BfdDown = 10,
}

impl CeaseSubcode {
    pub fn name(self) -> &'static str {
        match self {
            CeaseSubcode::MaximumPrefixesReached => "Maximum Number of Prefixes Reached",
            CeaseSubcode::AdministrativeShutdown => "Administrative Shutdown",
            CeaseSubcode::PeerDeConfigured => "Peer De-configured",
            CeaseSubcode::AdministrativeReset => "Administrative Reset",
            CeaseSubcode::ConnectionRejected => "Connection Rejected",
            CeaseSubcode::OtherConfigurationChange => "Other Configuration Change",
            CeaseSubcode::ConnectionCollisionResolution => "Connection Collision Resolution",
            CeaseSubcode::OutOfResources => "Out of Resources",
            CeaseSubcode::HardReset => "Hard Reset",
            CeaseSubcode::BfdDown => "BFD Down",
        }
    }

    /// Whether RFC 9003 defines a Shutdown Communication for this subcode.
    pub fn carries_shutdown_message(self) -> bool {
        matches!(
            self,
            CeaseSubcode::AdministrativeShutdown | CeaseSubcode::AdministrativeReset
        )
    }
}

impl TryFrom<u8> for CeaseSubcode {
    /// The unknown subcode.
    type Error = u8;

    fn try_from(subcode: u8) -> Result<Self, u8> {
        Ok(match subcode {
            1 => CeaseSubcode::MaximumPrefixesReached,
            2 => CeaseSubcode::AdministrativeShutdown,
            3 => CeaseSubcode::PeerDeConfigured,
            4 => CeaseSubcode::AdministrativeReset,
            5 => CeaseSubcode::ConnectionRejected,
            6 => CeaseSubcode::OtherConfigurationChange,
            7 => CeaseSubcode::ConnectionCollisionResolution,
            8 => CeaseSubcode::OutOfResources,
            9 => CeaseSubcode::HardReset,
            10 => CeaseSubcode::BfdDown,
            other => return Err(other),
        })
    }
}

/// A NOTIFICATION, sent or received. The codec converts it from and to the wire message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NotificationInfo {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl NotificationInfo {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        NotificationInfo {
            code,
            subcode,
            data,
        }
    }

    /// Hold Timer Expired (RFC 4271 6.5): no subcode, no data.
    pub fn hold_timer_expired() -> Self {
        NotificationInfo::new(error_code::HOLD_TIMER_EXPIRED, 0, Vec::new())
    }

    /// Send Hold Timer Expired (RFC 9687 5): subcode 0, no data.
    pub fn send_hold_timer_expired() -> Self {
        NotificationInfo::new(error_code::SEND_HOLD_TIMER_EXPIRED, 0, Vec::new())
    }

    /// OPEN Message Error with one of the [`open_error`] subcodes.
    pub fn open_error(subcode: u8, data: Vec<u8>) -> Self {
        NotificationInfo::new(error_code::OPEN_MESSAGE_ERROR, subcode, data)
    }

    /// Finite State Machine Error with one of the [`fsm_error`] subcodes.
    pub fn fsm_error(subcode: u8) -> Self {
        NotificationInfo::new(error_code::FSM_ERROR, subcode, Vec::new())
    }

    /// Cease. For Administrative Shutdown and Administrative Reset, `shutdown_message` becomes
    /// the RFC 9003 Shutdown Communication: a length octet and UTF-8, cut on a character boundary
    /// to [`MAX_SHUTDOWN_MESSAGE_LEN`] bytes. RFC 9003 defines no message for the other
    /// subcodes, so it is left out for them (data empty).
    pub fn cease(subcode: CeaseSubcode, shutdown_message: Option<&str>) -> Self {
        let data = match shutdown_message {
            Some(message) if subcode.carries_shutdown_message() => {
                let mut end = message.len().min(MAX_SHUTDOWN_MESSAGE_LEN);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                let mut data = Vec::with_capacity(1 + end);
                // `end` <= 255 by construction.
                data.push(end as u8);
                data.extend_from_slice(&message.as_bytes()[..end]);
                data
            }
            _ => Vec::new(),
        };
        NotificationInfo::new(error_code::CEASE, subcode as u8, data)
    }

    /// Cease / Maximum Number of Prefixes Reached with the RFC 4486 data: AFI (2 octets),
    /// SAFI (1 octet) and the configured upper bound (4 octets).
    pub fn cease_max_prefixes(afi: Afi, safi: Safi, limit: u32) -> Self {
        let mut data = Vec::with_capacity(7);
        data.extend_from_slice(&(afi as u16).to_be_bytes());
        data.push(safi as u8);
        data.extend_from_slice(&limit.to_be_bytes());
        NotificationInfo::new(
            error_code::CEASE,
            CeaseSubcode::MaximumPrefixesReached as u8,
            data,
        )
    }

    /// OPEN Message Error / Unsupported Version Number: the peer does not speak our version.
    /// It is its own FSM event (NotifMsgVerErr, RFC 4271 8.1.5).
    pub fn is_version_error(&self) -> bool {
        self.code == error_code::OPEN_MESSAGE_ERROR
            && self.subcode == open_error::UNSUPPORTED_VERSION_NUMBER
    }

    /// The Cease subcode, for a known Cease.
    pub fn cease_subcode(&self) -> Option<CeaseSubcode> {
        if self.code != error_code::CEASE {
            return None;
        }
        CeaseSubcode::try_from(self.subcode).ok()
    }

    /// The RFC 9003 Shutdown Communication of an Administrative Shutdown or Reset. `None` when
    /// there is none, it is empty, or it is malformed (length past the data, invalid UTF-8):
    /// RFC 9003 says not to display a malformed one as text.
    pub fn shutdown_message(&self) -> Option<&str> {
        if !self.cease_subcode()?.carries_shutdown_message() {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let message = rest.get(..usize::from(len))?;
        std::str::from_utf8(message)
            .ok()
            .filter(|message| !message.is_empty())
    }

    fn code_name(&self) -> Option<&'static str> {
        Some(match self.code {
            error_code::MESSAGE_HEADER_ERROR => "Message Header Error",
            error_code::OPEN_MESSAGE_ERROR => "OPEN Message Error",
            error_code::UPDATE_MESSAGE_ERROR => "UPDATE Message Error",
            error_code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            error_code::FSM_ERROR => "Finite State Machine Error",
            error_code::CEASE => "Cease",
            error_code::ROUTE_REFRESH_MESSAGE_ERROR => "ROUTE-REFRESH Message Error",
            error_code::SEND_HOLD_TIMER_EXPIRED => "Send Hold Timer Expired",
            _ => return None,
        })
    }

    fn subcode_name(&self) -> Option<&'static str> {
        Some(match (self.code, self.subcode) {
            (error_code::MESSAGE_HEADER_ERROR, 1) => "Connection Not Synchronized",
            (error_code::MESSAGE_HEADER_ERROR, 2) => "Bad Message Length",
            (error_code::MESSAGE_HEADER_ERROR, 3) => "Bad Message Type",
            (error_code::OPEN_MESSAGE_ERROR, 1) => "Unsupported Version Number",
            (error_code::OPEN_MESSAGE_ERROR, 2) => "Bad Peer AS",
            (error_code::OPEN_MESSAGE_ERROR, 3) => "Bad BGP Identifier",
            (error_code::OPEN_MESSAGE_ERROR, 4) => "Unsupported Optional Parameter",
            (error_code::OPEN_MESSAGE_ERROR, 6) => "Unacceptable Hold Time",
            (error_code::OPEN_MESSAGE_ERROR, 7) => "Unsupported Capability",
            (error_code::UPDATE_MESSAGE_ERROR, 1) => "Malformed Attribute List",
            (error_code::UPDATE_MESSAGE_ERROR, 2) => "Unrecognized Well-known Attribute",
            (error_code::UPDATE_MESSAGE_ERROR, 3) => "Missing Well-known Attribute",
            (error_code::UPDATE_MESSAGE_ERROR, 4) => "Attribute Flags Error",
            (error_code::UPDATE_MESSAGE_ERROR, 5) => "Attribute Length Error",
            (error_code::UPDATE_MESSAGE_ERROR, 6) => "Invalid ORIGIN Attribute",
            (error_code::UPDATE_MESSAGE_ERROR, 8) => "Invalid NEXT_HOP Attribute",
            (error_code::UPDATE_MESSAGE_ERROR, 9) => "Optional Attribute Error",
            (error_code::UPDATE_MESSAGE_ERROR, 10) => "Invalid Network Field",
            (error_code::UPDATE_MESSAGE_ERROR, 11) => "Malformed AS_PATH",
            (error_code::FSM_ERROR, 1) => "Receive Unexpected Message in OpenSent State",
            (error_code::FSM_ERROR, 2) => "Receive Unexpected Message in OpenConfirm State",
            (error_code::FSM_ERROR, 3) => "Receive Unexpected Message in Established State",
            (error_code::CEASE, _) => return self.cease_subcode().map(CeaseSubcode::name),
            (error_code::ROUTE_REFRESH_MESSAGE_ERROR, 1) => "Invalid Message Length",
            _ => return None,
        })
    }
}

/// `6/2 (Cease / Administrative Shutdown) "maintenance"`: codes, names when known, and the
/// Shutdown Communication or the data length.
impl fmt::Display for NotificationInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.code, self.subcode)?;
        match (self.code_name(), self.subcode_name()) {
            (Some(code), Some(subcode)) => write!(f, " ({code} / {subcode})")?,
            (Some(code), None) => write!(f, " ({code})")?,
            _ => {}
        }
        if let Some(message) = self.shutdown_message() {
            write!(f, " {message:?}")?;
        } else if !self.data.is_empty() {
            write!(f, " [{} bytes of data]", self.data.len())?;
        }
        Ok(())
    }
}
