//! ROUTE-REFRESH message (RFC 2918 3), with the message subtypes of enhanced route refresh
//! (RFC 7313 3.2) in the octet RFC 2918 reserved.
//!
//! ```text
//!  0       7      15      23      31
//! +-------+-------+-------+-------+
//! |      AFI      |Subtype| SAFI  |
//! +-------+-------+-------+-------+
//! ```
//!
//! Subtype: 0 normal route refresh, 1 Beginning of Route Refresh (BoRR), 2 End of Route
//! Refresh (EoRR), 255 reserved.

use bytes::{BufMut, BytesMut};

use super::error::MessageError;
use super::header::ROUTE_REFRESH_LEN;
use super::notification::{ErrorCode, Notification, RouteRefreshSubcode};
use super::types::{Afi, Safi};
use super::wire::{Reader, afi_from_wire, safi_from_wire};

/// A request to re-advertise (or, with RFC 7313, a demarcation of) one address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    pub afi: Afi,
    pub safi: Safi,
    /// [`RouteRefresh::NORMAL`], [`RouteRefresh::BEGIN_OF_RIB`] or
    /// [`RouteRefresh::END_OF_RIB`]; RFC 7313 4 says to ignore any other value, which is
    /// the FSM's business (kept raw so that it can).
    pub subtype: u8,
}

impl RouteRefresh {
    /// RFC 2918 request to re-advertise the Adj-RIB-Out.
    pub const NORMAL: u8 = 0;
    /// RFC 7313 BoRR: the re-advertisement starts.
    pub const BEGIN_OF_RIB: u8 = 1;
    /// RFC 7313 EoRR: the re-advertisement is complete.
    pub const END_OF_RIB: u8 = 2;

    /// A plain RFC 2918 request.
    pub fn new(afi: Afi, safi: Safi) -> Self {
        RouteRefresh {
            afi,
            safi,
            subtype: Self::NORMAL,
        }
    }
}

/// What a received ROUTE-REFRESH body decodes to.
pub(crate) enum DecodedRouteRefresh {
    Known(RouteRefresh),
    /// An AFI/SAFI we do not implement, so never advertised: RFC 2918 3 says to ignore it.
    UnknownFamily {
        afi: u16,
        safi: u8,
        subtype: u8,
    },
}

/// Decodes the body. `message` is the whole message: RFC 7313 5 wants it as the Data of the
/// NOTIFICATION for a wrong length.
pub(crate) fn decode_body(
    body: &[u8],
    message: &[u8],
) -> Result<DecodedRouteRefresh, MessageError> {
    let mut reader = Reader::new(body);
    let (Some(afi), Some(subtype), Some(safi), true) =
        (reader.u16(), reader.u8(), reader.u8(), reader.is_empty())
    else {
        return Err(MessageError::new(
            Notification::new(
                ErrorCode::RouteRefreshMessage as u8,
                RouteRefreshSubcode::InvalidMessageLength as u8,
                message.to_vec(),
            ),
            format!(
                "ROUTE-REFRESH of {} octets, expected {ROUTE_REFRESH_LEN}",
                message.len()
            ),
        ));
    };
    Ok(
        match (afi_from_wire(afi), safi_from_wire(u16::from(safi))) {
            (Some(afi), Some(safi)) => {
                DecodedRouteRefresh::Known(RouteRefresh { afi, safi, subtype })
            }
            _ => DecodedRouteRefresh::UnknownFamily { afi, safi, subtype },
        },
    )
}

pub(crate) fn encode_body(afi: u16, safi: u8, subtype: u8, out: &mut BytesMut) {
    out.put_u16(afi);
    out.put_u8(subtype);
    out.put_u8(safi);
}

#[cfg(test)]
mod tests {
    use super::super::{Codec, Message};
    use super::*;

    /// Hand-assembled from RFC 2918 3 (a capture from FRR/BIRD will be added by the interop
    /// tests): route refresh for IPv6 unicast.
    const REFRESH_IPV6: &[u8] = &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
        0x00, 0x17, // length 23
        0x05, // type ROUTE-REFRESH
        0x00, 0x02, // AFI IPv6
        0x00, // subtype: normal
        0x01, // SAFI unicast
    ];

    #[test]
    fn golden_route_refresh() {
        let refresh = Message::RouteRefresh(RouteRefresh::new(Afi::Ipv6, Safi::Unicast));
        assert_eq!(&refresh.encode(&Codec::default())[..], REFRESH_IPV6);
        assert_eq!(
            Message::decode(REFRESH_IPV6, &Codec::default())
                .unwrap()
                .message,
            refresh
        );
    }

    #[test]
    fn round_trip_every_subtype() {
        for subtype in [
            RouteRefresh::NORMAL,
            RouteRefresh::BEGIN_OF_RIB,
            RouteRefresh::END_OF_RIB,
            255,
        ] {
            for afi in [Afi::Ipv4, Afi::Ipv6] {
                let message = Message::RouteRefresh(RouteRefresh {
                    afi,
                    safi: Safi::Unicast,
                    subtype,
                });
                let encoded = message.encode(&Codec::default());
                assert_eq!(
                    Message::decode(&encoded, &Codec::default())
                        .unwrap()
                        .message,
                    message
                );
            }
        }
    }

    #[test]
    fn unknown_family_is_reported_for_the_fsm_to_ignore() {
        let mut bytes = REFRESH_IPV6.to_vec();
        bytes[19..].copy_from_slice(&[0x00, 0x19, 0x00, 0x41]); // L2VPN EVPN
        let message = Message::decode(&bytes, &Codec::default()).unwrap().message;
        assert_eq!(
            message,
            Message::RouteRefreshUnknownFamily {
                afi: 25,
                safi: 65,
                subtype: 0
            }
        );
        assert_eq!(&message.encode(&Codec::default())[..], &bytes[..]);
    }

    #[test]
    fn wrong_length_is_route_refresh_error_with_the_message_as_data() {
        for body_len in [0usize, 3, 5] {
            let mut bytes = REFRESH_IPV6[..19].to_vec();
            bytes.extend(std::iter::repeat_n(1, body_len));
            bytes[17] = (19 + body_len) as u8;
            let error = Message::decode(&bytes, &Codec::default()).unwrap_err();
            assert_eq!(
                (error.notification.code, error.notification.subcode),
                (7, 1)
            );
            assert_eq!(error.notification.data, bytes);
        }
    }
}
