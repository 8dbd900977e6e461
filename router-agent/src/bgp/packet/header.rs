//! Message header (RFC 4271 4.1) and stream framing.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                                                               +
//! |                                                               |
//! +                                                               +
//! |                           Marker                              |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Marker is all ones. Length counts the whole message, header included: 19..=4096 (we do not
//! implement RFC 8654 extended messages).

use bytes::{BufMut, BytesMut};

use super::error::MessageError;
use super::notification::MessageHeaderSubcode;

pub const MARKER: [u8; 16] = [0xff; 16];
pub const HEADER_LEN: usize = 19;
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Smallest OPEN: version, My AS, Hold Time, BGP Identifier, Opt Parm Len (RFC 4271 4.2).
pub const MIN_OPEN_LEN: usize = HEADER_LEN + 10;
/// Smallest UPDATE: the two length fields (RFC 4271 4.3).
pub const MIN_UPDATE_LEN: usize = HEADER_LEN + 4;
/// Smallest NOTIFICATION: code and subcode (RFC 4271 4.5).
pub const MIN_NOTIFICATION_LEN: usize = HEADER_LEN + 2;
/// KEEPALIVE is the header alone (RFC 4271 4.4).
pub const KEEPALIVE_LEN: usize = HEADER_LEN;
/// ROUTE-REFRESH: AFI, subtype, SAFI (RFC 2918 3).
pub const ROUTE_REFRESH_LEN: usize = HEADER_LEN + 4;

/// The Type octet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    /// RFC 2918.
    RouteRefresh = 5,
}

impl MessageType {
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(MessageType::Open),
            2 => Some(MessageType::Update),
            3 => Some(MessageType::Notification),
            4 => Some(MessageType::Keepalive),
            5 => Some(MessageType::RouteRefresh),
            _ => None,
        }
    }
}

/// A validated header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Whole message length, header included.
    pub length: u16,
    pub message_type: MessageType,
}

impl Header {
    /// Checks the header at the start of `buf` the way RFC 4271 6.1 asks: marker, then length
    /// bounds, then type, then the per-type minimum length. Returns `Ok(None)` while fewer than
    /// 19 octets are available, but reports a bad marker as soon as one of its octets arrives.
    pub fn decode(buf: &[u8]) -> Result<Option<Header>, MessageError> {
        let marker = &buf[..buf.len().min(MARKER.len())];
        if marker.iter().any(|&octet| octet != 0xff) {
            return Err(MessageError::header(
                MessageHeaderSubcode::ConnectionNotSynchronized,
                Vec::new(),
                "message marker is not all ones",
            ));
        }
        let Some(&[length_high, length_low, type_octet]) = buf.get(16..HEADER_LEN) else {
            return Ok(None);
        };
        let length = u16::from_be_bytes([length_high, length_low]);
        let len = usize::from(length);
        if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
            return Err(MessageError::bad_length(
                length,
                format!("message length {len} outside {HEADER_LEN}..={MAX_MESSAGE_LEN}"),
            ));
        }
        let Some(message_type) = MessageType::from_u8(type_octet) else {
            return Err(MessageError::header(
                MessageHeaderSubcode::BadMessageType,
                vec![type_octet],
                format!("unknown message type {type_octet}"),
            ));
        };
        let length_fits = match message_type {
            MessageType::Open => len >= MIN_OPEN_LEN,
            MessageType::Update => len >= MIN_UPDATE_LEN,
            MessageType::Notification => len >= MIN_NOTIFICATION_LEN,
            MessageType::Keepalive => len == KEEPALIVE_LEN,
            // A wrong ROUTE-REFRESH length has its own NOTIFICATION (RFC 7313 5), which needs
            // the whole message; route_refresh.rs checks it.
            MessageType::RouteRefresh => true,
        };
        if !length_fits {
            return Err(MessageError::bad_length(
                length,
                format!("{message_type:?} message with length {len}"),
            ));
        }
        Ok(Some(Header {
            length,
            message_type,
        }))
    }

    /// Writes a header with a placeholder length; [`finish_message`] fills it in.
    pub(crate) fn encode_start(out: &mut BytesMut, message_type: MessageType) -> usize {
        let start = out.len();
        out.put_slice(&MARKER);
        out.put_u16(0);
        out.put_u8(message_type as u8);
        start
    }
}

/// Patches the Length field of the message that starts at `start` in `out`.
pub(crate) fn finish_message(out: &mut BytesMut, start: usize) {
    let length = out.len() - start;
    // Every encoder keeps its message within 4096 octets, so the length fits in u16.
    let length = u16::try_from(length).unwrap_or(u16::MAX);
    out[start + 16..start + 18].copy_from_slice(&length.to_be_bytes());
}

/// Framing for a stream reader: how long the next message in `buf` is, once its header has
/// arrived (`Ok(None)` until then). An invalid header is an error that resets the session.
///
/// ```text
/// loop {
///     match message_length(&buffer)? {
///         Some(len) if buffer.len() >= len => { Message::decode(&buffer[..len], &codec)?; buffer.advance(len) }
///         _ => read more from the socket,
///     }
/// }
/// ```
pub fn message_length(buf: &[u8]) -> Result<Option<usize>, MessageError> {
    Ok(Header::decode(buf)?.map(|header| usize::from(header.length)))
}

#[cfg(test)]
mod tests {
    use super::super::notification::{ErrorCode, Notification};
    use super::*;

    fn header(length: u16, message_type: u8) -> Vec<u8> {
        let mut bytes = MARKER.to_vec();
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.push(message_type);
        bytes
    }

    fn notification(result: Result<Option<usize>, MessageError>) -> Notification {
        result.unwrap_err().notification
    }

    #[test]
    fn waits_for_a_whole_header() {
        let bytes = header(19, 4);
        for len in 0..HEADER_LEN {
            assert_eq!(message_length(&bytes[..len]), Ok(None), "{len} octets");
        }
        assert_eq!(message_length(&bytes), Ok(Some(19)));
        // The body need not have arrived yet.
        assert_eq!(message_length(&header(100, 2)), Ok(Some(100)));
    }

    #[test]
    fn bad_marker_is_reported_as_soon_as_it_arrives() {
        let mut bytes = header(19, 4);
        bytes[3] = 0;
        let error = notification(message_length(&bytes[..4]));
        assert_eq!(
            (error.code, error.subcode),
            (ErrorCode::MessageHeader as u8, 1)
        );
    }

    #[test]
    fn length_outside_bounds_is_bad_message_length_with_the_length_as_data() {
        for length in [0u16, 18, 4097, u16::MAX] {
            let error = notification(message_length(&header(length, 2)));
            assert_eq!((error.code, error.subcode), (1, 2), "length {length}");
            assert_eq!(error.data, length.to_be_bytes());
        }
        assert_eq!(message_length(&header(4096, 2)), Ok(Some(4096)));
    }

    #[test]
    fn unknown_type_is_bad_message_type_with_the_type_as_data() {
        for message_type in [0u8, 6, 255] {
            let error = notification(message_length(&header(19, message_type)));
            assert_eq!((error.code, error.subcode), (1, 3));
            assert_eq!(error.data, vec![message_type]);
        }
    }

    #[test]
    fn per_type_minimum_lengths() {
        let too_short = [(1, 28), (2, 22), (3, 20), (4, 20)];
        for (message_type, length) in too_short {
            let error = notification(message_length(&header(length, message_type)));
            assert_eq!((error.code, error.subcode), (1, 2), "type {message_type}");
        }
        let shortest = [(1, 29), (2, 23), (3, 21), (4, 19), (5, 23)];
        for (message_type, length) in shortest {
            assert_eq!(
                message_length(&header(length, message_type)),
                Ok(Some(usize::from(length)))
            );
        }
    }
}
