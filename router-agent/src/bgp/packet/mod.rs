//! BGP messages: types and the wire codec, one module per RFC concern.
//!
//! ```text
//!   socket ──> message_length (framing, header.rs) ──> Message::decode ──> Decoded ──> FSM
//!   FSM ──> Message::encode (UPDATEs split by update::encode_updates) ──> socket
//! ```
//!
//! | module            | RFC                                                          |
//! |-------------------|--------------------------------------------------------------|
//! | `header`          | 4271 4.1 marker, length, type; stream framing                |
//! | `open`            | 4271 4.2 OPEN, 9072 extended optional parameters length      |
//! | `capability`      | 5492 capabilities: 4760, 2918, 7313, 6793, 8950, 4724        |
//! | `update`          | 4271 4.3 UPDATE, 7606 error handling, 4724 End-of-RIB        |
//! | `attribute`       | 4271 5 path attributes, 1997, 4360, 4456, 6793, 7607, 8092   |
//! | `multiprotocol`   | 4760 MP_REACH_NLRI / MP_UNREACH_NLRI, 2545, 8950 next hops    |
//! | `nlri`            | 4271 4.3 / 4760 5 prefix encoding                            |
//! | `notification`    | 4271 4.5, 4486, 6608, 8538, 9003 NOTIFICATION                |
//! | `route_refresh`   | 2918, 7313 ROUTE-REFRESH                                     |
//! | `keepalive`       | 4271 4.4 KEEPALIVE                                           |
//!
//! Decoding never panics, whatever the input (the `robustness` tests and the cargo-fuzz
//! target in `router-agent/fuzz/` check this): every read is bounds-checked (`wire::Reader`).
//! Intra-codec paths are relative (`super::`) so that the fuzz target can compile this
//! directory on its own.

pub mod attribute;
pub mod capability;
pub mod error;
pub mod header;
mod keepalive;
mod multiprotocol;
mod nlri;
pub mod notification;
pub mod open;
pub mod route_refresh;
pub mod types;
pub mod update;
mod wire;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod robustness;

use bytes::{Bytes, BytesMut};

pub use capability::Capability;
pub use error::{MessageError, UpdateError};
pub use header::{Header, MAX_MESSAGE_LEN, MessageType, message_length};
pub use notification::Notification;
pub use open::{AS_TRANS, Open};
pub use route_refresh::RouteRefresh;
pub use update::{Update, encode_updates};

use header::{HEADER_LEN, finish_message};
use route_refresh::DecodedRouteRefresh;
use types::{Afi, Safi};

/// What the session negotiated that changes the wire format. The default (nothing
/// negotiated) is the RFC 4271 baseline, which is also what OPENs are exchanged with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Codec {
    /// Both sides advertised the four-octet AS capability (RFC 6793): AS_PATH and AGGREGATOR
    /// carry four-octet ASNs, and AS4_PATH / AS4_AGGREGATOR are not used.
    pub four_octet_as: bool,
    /// IPv4 NLRI may carry IPv6 next hops (RFC 8950): MP_REACH_NLRI for IPv4 unicast with a
    /// 16- or 32-octet next hop is accepted. Without it such an attribute is malformed.
    pub extended_next_hop_ipv4: bool,
}

impl Codec {
    /// A four-octet AS session without RFC 8950: what most modern sessions negotiate.
    pub const FOUR_OCTET_AS: Codec = Codec {
        four_octet_as: true,
        extended_next_hop_ipv4: false,
    };

    /// The codec for a session where we sent `local` and received `remote`. A capability
    /// counts when both sides advertised it: RFC 6793 requires that for four-octet ASNs, and
    /// for RFC 8950 it means IPv6 next hops may flow both ways.
    pub fn negotiated(local: &Open, remote: &Open) -> Codec {
        let extended_next_hop =
            |open: &Open| open.extended_next_hop(Afi::Ipv4, Safi::Unicast, Afi::Ipv6);
        Codec {
            four_octet_as: local.four_octet_as().is_some() && remote.four_octet_as().is_some(),
            extended_next_hop_ipv4: extended_next_hop(local) && extended_next_hop(remote),
        }
    }
}

/// A BGP message.
// UPDATE is by far the largest variant, and the most frequent: boxing it would cost an
// allocation per UPDATE to save stack space in a value that is moved once or twice.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
    /// A ROUTE-REFRESH for an AFI/SAFI we do not implement (so never advertised): RFC 2918 3
    /// says to ignore it. Kept raw so that it can be logged and re-encoded.
    RouteRefreshUnknownFamily {
        afi: u16,
        safi: u8,
        subtype: u8,
    },
}

/// A received message that did not reset the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub message: Message,
    /// RFC 7606 outcome for UPDATEs whose attributes were malformed; `None` otherwise.
    pub update_error: Option<UpdateError>,
}

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) | Message::RouteRefreshUnknownFamily { .. } => {
                MessageType::RouteRefresh
            }
        }
    }

    /// Decodes one whole message, header included (`buf` is exactly the length that
    /// [`message_length`] announced). An `Err` is a session reset: send its NOTIFICATION.
    pub fn decode(buf: &[u8], codec: &Codec) -> Result<Decoded, MessageError> {
        let length_field = buf
            .get(16..HEADER_LEN - 1)
            .map(|field| u16::from_be_bytes([field[0], field[1]]));
        let Some(header) = Header::decode(buf)? else {
            return Err(MessageError::header(
                notification::MessageHeaderSubcode::BadMessageLength,
                length_field
                    .map(|length| length.to_be_bytes().to_vec())
                    .unwrap_or_default(),
                format!("{} octets, shorter than a message header", buf.len()),
            ));
        };
        if usize::from(header.length) != buf.len() {
            return Err(MessageError::bad_length(
                header.length,
                format!(
                    "length field {} but {} octets given",
                    header.length,
                    buf.len()
                ),
            ));
        }
        let body = &buf[HEADER_LEN..];
        let message = match header.message_type {
            MessageType::Open => Message::Open(Open::decode_body(body)?),
            MessageType::Update => {
                let (update, update_error) = Update::decode_body(body, codec)?;
                return Ok(Decoded {
                    message: Message::Update(update),
                    update_error,
                });
            }
            MessageType::Notification => {
                // The header checked the minimum length, so this is a second line of defence.
                Message::Notification(Notification::decode_body(body).ok_or_else(|| {
                    MessageError::bad_length(header.length, "NOTIFICATION shorter than 21 octets")
                })?)
            }
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => match route_refresh::decode_body(body, buf)? {
                DecodedRouteRefresh::Known(refresh) => Message::RouteRefresh(refresh),
                DecodedRouteRefresh::UnknownFamily { afi, safi, subtype } => {
                    Message::RouteRefreshUnknownFamily { afi, safi, subtype }
                }
            },
        };
        Ok(Decoded {
            message,
            update_error: None,
        })
    }

    /// Encodes the message. An UPDATE too large for one message, or mixing route fields,
    /// comes out as several messages back to back (see [`encode_updates`]); write the bytes
    /// to the socket as they are.
    pub fn encode(&self, codec: &Codec) -> Bytes {
        let mut out = BytesMut::with_capacity(HEADER_LEN + 64);
        let start = header::Header::encode_start(&mut out, self.message_type());
        match self {
            Message::Update(update) => {
                let mut messages = encode_updates(update, codec);
                return match messages.len() {
                    1 => messages.pop().unwrap_or_default(),
                    _ => Bytes::from(messages.concat()),
                };
            }
            Message::Open(open) => open.encode_body(&mut out),
            Message::Notification(notification) => {
                notification.encode_body(&mut out, MAX_MESSAGE_LEN - HEADER_LEN)
            }
            Message::Keepalive => {}
            Message::RouteRefresh(refresh) => route_refresh::encode_body(
                refresh.afi as u16,
                refresh.safi as u8,
                refresh.subtype,
                &mut out,
            ),
            Message::RouteRefreshUnknownFamily { afi, safi, subtype } => {
                route_refresh::encode_body(*afi, *safi, *subtype, &mut out)
            }
        }
        finish_message(&mut out, start);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn open(capabilities: Vec<Capability>) -> Open {
        Open::new(65001, 90, Ipv4Addr::new(10, 0, 0, 1), capabilities)
    }

    #[test]
    fn codec_needs_both_sides() {
        let four_octet = Capability::FourOctetAs(65001);
        let extended = Capability::ExtendedNextHop(vec![(Afi::Ipv4, Safi::Unicast, Afi::Ipv6)]);
        let both = open(vec![four_octet.clone(), extended.clone()]);
        assert_eq!(
            Codec::negotiated(&both, &both),
            Codec {
                four_octet_as: true,
                extended_next_hop_ipv4: true
            }
        );
        assert_eq!(
            Codec::negotiated(&both, &open(vec![four_octet])),
            Codec::FOUR_OCTET_AS
        );
        assert_eq!(
            Codec::negotiated(&open(vec![extended]), &both),
            Codec {
                four_octet_as: false,
                extended_next_hop_ipv4: true
            }
        );
        assert_eq!(Codec::negotiated(&both, &open(vec![])), Codec::default());
    }

    #[test]
    fn decode_wants_exactly_one_message() {
        let keepalive = Message::Keepalive.encode(&Codec::default());
        let mut two = keepalive.to_vec();
        two.extend_from_slice(&keepalive);
        let error = Message::decode(&two, &Codec::default()).unwrap_err();
        assert_eq!(error.notification, Notification::new(1, 2, vec![0, 19]));
        let error = Message::decode(&keepalive[..18], &Codec::default()).unwrap_err();
        assert_eq!(error.notification, Notification::new(1, 2, vec![0, 19]));
        let error = Message::decode(&keepalive[..10], &Codec::default()).unwrap_err();
        assert_eq!(error.notification, Notification::new(1, 2, vec![]));
    }
}
