//! OPEN message (RFC 4271 4.2) with capabilities as optional parameters (RFC 5492) and the
//! extended optional parameters length (RFC 9072).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Optional parameter:
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Parm. Type   | Parm. Length  |  Parameter Value (variable)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! RFC 9072 lets the parameters exceed 255 octets: Opt Parm Len and the first parameter's
//! type are both 255, a two-octet length follows, and every parameter's length is two
//! octets:
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Non-Ext OP Len.|Non-Ext OP Type|  Extended Opt. Parm. Length   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Parm. Type   |        Parm. Length           | Value ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use super::capability::Capability;
use super::error::MessageError;
use super::notification::OpenMessageSubcode;
use super::types::{Afi, Safi};
use super::wire::Reader;

/// The two-octet AS that stands in for a four-octet one (RFC 6793 9).
pub const AS_TRANS: u32 = 23456;

/// Optional parameter type of capabilities (RFC 5492 4).
const PARAMETER_CAPABILITIES: u8 = 2;
/// RFC 9072 2: Opt Parm Len and parameter type values that announce the extended encoding.
const EXTENDED_PARAMETERS_MARK: u8 = 255;

/// A decoded OPEN.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Open {
    pub version: u8,
    /// The four-octet AS from the capability when present (RFC 6793 4.1), else the My
    /// Autonomous System field. Encoding writes AS_TRANS in that field for ASNs above 65535.
    pub my_as: u32,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    /// In the order received, across all capability parameters.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// BGP-4.
    pub const VERSION: u8 = 4;

    pub fn new(
        my_as: u32,
        hold_time: u16,
        router_id: Ipv4Addr,
        capabilities: Vec<Capability>,
    ) -> Self {
        Open {
            version: Self::VERSION,
            my_as,
            hold_time,
            router_id,
            capabilities,
        }
    }

    /// The four-octet AS capability's value (RFC 6793).
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities
            .iter()
            .find_map(|capability| match capability {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
    }

    /// The families of the multiprotocol capabilities (RFC 4760 8).
    pub fn multiprotocol(&self) -> impl Iterator<Item = (Afi, Safi)> + '_ {
        self.capabilities
            .iter()
            .filter_map(|capability| match capability {
                Capability::Multiprotocol { afi, safi } => Some((*afi, *safi)),
                _ => None,
            })
    }

    pub fn route_refresh(&self) -> bool {
        self.capabilities.contains(&Capability::RouteRefresh)
    }

    /// Whether the sender accepts `next_hop_afi` next hops for `afi`/`safi` NLRI (RFC 8950).
    pub fn extended_next_hop(&self, afi: Afi, safi: Safi, next_hop_afi: Afi) -> bool {
        self.capabilities.iter().any(|capability| {
            matches!(capability, Capability::ExtendedNextHop(tuples)
                if tuples.contains(&(afi, safi, next_hop_afi)))
        })
    }

    /// Decodes and checks the body (after the header). Only message-internal checks are made
    /// here (RFC 4271 6.2 order: version, AS, hold time, BGP Identifier; the optional
    /// parameters are parsed between version and AS because the AS may come from them);
    /// whether the peer AS and hold time are the configured/acceptable ones, and whether the
    /// BGP Identifier collides with ours, is the FSM's call.
    pub(crate) fn decode_body(body: &[u8]) -> Result<Open, MessageError> {
        let mut reader = Reader::new(body);
        let (Some(version), Some(as2), Some(hold_time), Some(router_id), Some(parameters_len)) = (
            reader.u8(),
            reader.u16(),
            reader.u16(),
            reader.ipv4(),
            reader.u8(),
        ) else {
            // The header check guarantees 10 octets; this keeps decoding total anyway.
            return Err(MessageError::open_unspecific("OPEN shorter than 29 octets"));
        };

        // RFC 4271 6.2: Data is the largest version we support.
        if version != Self::VERSION {
            return Err(MessageError::open(
                OpenMessageSubcode::UnsupportedVersionNumber,
                u16::from(Self::VERSION).to_be_bytes().to_vec(),
                format!("peer speaks BGP version {version}"),
            ));
        }

        let capabilities = decode_parameters(parameters_len, reader.rest())?;
        let open = Open {
            version,
            my_as: u32::from(as2),
            hold_time,
            router_id,
            capabilities,
        };
        let my_as = open.four_octet_as().unwrap_or(open.my_as);

        // RFC 7607 3: AS 0 in the OPEN, in either field, is a Bad Peer AS.
        if as2 == 0 || my_as == 0 {
            return Err(MessageError::open(
                OpenMessageSubcode::BadPeerAs,
                Vec::new(),
                "peer claims AS 0 (RFC 7607)",
            ));
        }
        // RFC 6793 4.2.1: My Autonomous System is the AS itself or AS_TRANS. An OPEN that
        // names two different ASes is rejected, as FRR does, rather than guessing.
        if u32::from(as2) != my_as && u32::from(as2) != AS_TRANS {
            return Err(MessageError::open(
                OpenMessageSubcode::BadPeerAs,
                Vec::new(),
                format!("My Autonomous System {as2} contradicts the four-octet AS {my_as}"),
            ));
        }
        // RFC 4271 4.2: the hold time is zero or at least three seconds.
        if matches!(hold_time, 1 | 2) {
            return Err(MessageError::open(
                OpenMessageSubcode::UnacceptableHoldTime,
                Vec::new(),
                format!("hold time {hold_time} s"),
            ));
        }
        // RFC 6286 2.2: any non-zero four-octet value is a valid BGP Identifier.
        if router_id == Ipv4Addr::UNSPECIFIED {
            return Err(MessageError::open(
                OpenMessageSubcode::BadBgpIdentifier,
                Vec::new(),
                "BGP Identifier 0.0.0.0",
            ));
        }
        Ok(Open { my_as, ..open })
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.version);
        // RFC 6793 4.2.1 (and 9): AS_TRANS when the AS does not fit in two octets.
        out.put_u16(u16::try_from(self.my_as).unwrap_or(AS_TRANS as u16));
        out.put_u16(self.hold_time);
        out.put_slice(&self.router_id.octets());

        let mut capabilities = BytesMut::new();
        for capability in &self.capabilities {
            capability.encode(&mut capabilities);
        }
        if capabilities.is_empty() {
            out.put_u8(0);
        } else if let Ok(len) = u8::try_from(capabilities.len() + 2) {
            // One optional parameter carrying every capability (RFC 5492 4 allows either that
            // or one parameter per capability).
            out.put_u8(len);
            out.put_u8(PARAMETER_CAPABILITIES);
            out.put_u8(len - 2);
            out.put_slice(&capabilities);
        } else {
            // RFC 9072 2: more than 255 octets of parameters.
            out.put_u8(EXTENDED_PARAMETERS_MARK);
            out.put_u8(EXTENDED_PARAMETERS_MARK);
            out.put_u16(u16::try_from(capabilities.len() + 3).unwrap_or(u16::MAX));
            out.put_u8(PARAMETER_CAPABILITIES);
            out.put_u16(u16::try_from(capabilities.len()).unwrap_or(u16::MAX));
            out.put_slice(&capabilities);
        }
    }
}

/// Decodes the optional parameters that follow Opt Parm Len (`rest` is everything after it)
/// into the capabilities they carry.
fn decode_parameters(parameters_len: u8, rest: &[u8]) -> Result<Vec<Capability>, MessageError> {
    let mut reader = Reader::new(rest);
    // RFC 9072 2: Opt Parm Len is non-zero and the first parameter type is 255.
    let extended = parameters_len != 0 && rest.first() == Some(&EXTENDED_PARAMETERS_MARK);
    let parameters = if extended {
        reader.u8();
        reader
            .u16()
            .and_then(|len| reader.take(usize::from(len)))
            .ok_or_else(|| {
                MessageError::open_unspecific("extended optional parameters overrun the OPEN")
            })?
    } else {
        reader.take(usize::from(parameters_len)).ok_or_else(|| {
            MessageError::open_unspecific(format!(
                "optional parameters length {parameters_len} overruns the OPEN"
            ))
        })?
    };
    if !reader.is_empty() {
        return Err(MessageError::open_unspecific(format!(
            "{} octets after the optional parameters",
            reader.remaining()
        )));
    }

    let mut capabilities = Vec::new();
    let mut reader = Reader::new(parameters);
    while !reader.is_empty() {
        let parameter_type = reader.u8();
        let len = if extended {
            reader.u16()
        } else {
            reader.u8().map(u16::from)
        };
        let (Some(parameter_type), Some(value)) = (
            parameter_type,
            len.and_then(|len| reader.take(usize::from(len))),
        ) else {
            return Err(MessageError::open_unspecific(
                "optional parameter overruns the optional parameters length",
            ));
        };
        if parameter_type != PARAMETER_CAPABILITIES {
            // Type 1 (authentication) is deprecated by RFC 5492; nothing else is defined.
            return Err(MessageError::open(
                OpenMessageSubcode::UnsupportedOptionalParameter,
                Vec::new(),
                format!("optional parameter type {parameter_type}"),
            ));
        }
        decode_capabilities(value, &mut capabilities)?;
    }
    Ok(capabilities)
}

fn decode_capabilities(
    value: &[u8],
    capabilities: &mut Vec<Capability>,
) -> Result<(), MessageError> {
    let mut reader = Reader::new(value);
    while !reader.is_empty() {
        let code = reader.u8();
        let value = reader.u8().and_then(|len| reader.take(usize::from(len)));
        let (Some(code), Some(value)) = (code, value) else {
            return Err(MessageError::open_unspecific(
                "capability overruns its optional parameter",
            ));
        };
        capabilities.push(Capability::decode(code, value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::capability::code;
    use super::super::notification::Notification;
    use super::super::{Codec, Message};
    use super::*;

    /// Hand-assembled OPEN with the capabilities FRR 8.4 advertises by default for an IPv4
    /// unicast neighbor, one capability per optional parameter as bgpd writes them. Built from
    /// the RFC layouts, not captured: the interop tests will add real FRR/BIRD captures.
    const FRR_OPEN: &[u8] = &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
        0x00, 0x53, // length 83
        0x01, // type OPEN
        0x04, // version 4
        0xfd, 0xe9, // my AS 65001
        0x00, 0xb4, // hold time 180
        0x0a, 0x00, 0x00, 0x01, // BGP identifier 10.0.0.1
        0x36, // optional parameters length 54
        0x02, 0x06, 0x01, 0x04, 0x00, 0x01, 0x00, 0x01, // multiprotocol IPv4 unicast
        0x02, 0x02, 0x80, 0x00, // route refresh (Cisco, pre-standard)
        0x02, 0x02, 0x02, 0x00, // route refresh
        0x02, 0x02, 0x46, 0x00, // enhanced route refresh
        0x02, 0x06, 0x41, 0x04, 0x00, 0x00, 0xfd, 0xe9, // four-octet AS 65001
        0x02, 0x06, 0x45, 0x04, 0x00, 0x01, 0x01, 0x01, // ADD-PATH IPv4 unicast receive
        0x02, 0x02, 0x06, 0x00, // extended message
        0x02, 0x06, 0x49, 0x04, 0x02, b'r', b'1', 0x00, // FQDN: hostname "r1", no domain
        0x02, 0x04, 0x40, 0x02, 0x40, 0x78, // graceful restart: N bit, restart time 120 s
    ];

    /// What we send: our capability set in one optional parameter. Hand-assembled from RFC
    /// 4271 4.2, RFC 5492 4 and the capability RFCs.
    const OUR_OPEN: &[u8] = &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
        0x00, 0x3b, // length 59
        0x01, // type OPEN
        0x04, // version 4
        0x5b, 0xa0, // my AS: AS_TRANS (23456)
        0x00, 0x5a, // hold time 90
        0xc0, 0x00, 0x02, 0x01, // BGP identifier 192.0.2.1
        0x1e, // optional parameters length 30
        0x02, 0x1c, // capabilities, 28 octets
        0x01, 0x04, 0x00, 0x01, 0x00, 0x01, // multiprotocol IPv4 unicast
        0x01, 0x04, 0x00, 0x02, 0x00, 0x01, // multiprotocol IPv6 unicast
        0x02, 0x00, // route refresh
        0x41, 0x04, 0x00, 0x01, 0x11, 0x70, // four-octet AS 70000
        0x05, 0x06, 0x00, 0x01, 0x00, 0x01, 0x00, 0x02, // extended next hop IPv4/unicast/IPv6
    ];

    fn our_open() -> Open {
        Open::new(
            70000,
            90,
            Ipv4Addr::new(192, 0, 2, 1),
            vec![
                Capability::Multiprotocol {
                    afi: Afi::Ipv4,
                    safi: Safi::Unicast,
                },
                Capability::Multiprotocol {
                    afi: Afi::Ipv6,
                    safi: Safi::Unicast,
                },
                Capability::RouteRefresh,
                Capability::FourOctetAs(70000),
                Capability::ExtendedNextHop(vec![(Afi::Ipv4, Safi::Unicast, Afi::Ipv6)]),
            ],
        )
    }

    fn decode(bytes: &[u8]) -> Result<Open, MessageError> {
        match Message::decode(bytes, &Codec::default())?.message {
            Message::Open(open) => Ok(open),
            other => panic!("not an OPEN: {other:?}"),
        }
    }

    /// An OPEN message around `body`, with the header length set.
    fn open_message(body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0xff; 16];
        bytes.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
        bytes.push(1);
        bytes.extend_from_slice(body);
        bytes
    }

    /// The fixed part of an OPEN body: version 4, AS 65001, hold 90, id 10.0.0.1.
    fn fixed_body() -> Vec<u8> {
        vec![4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1]
    }

    fn error_codes(result: Result<Open, MessageError>) -> (u8, u8) {
        let error = result.unwrap_err();
        (error.notification.code, error.notification.subcode)
    }

    #[test]
    fn golden_frr_open() {
        assert_eq!(usize::from(FRR_OPEN[17]), FRR_OPEN.len());
        let open = decode(FRR_OPEN).unwrap();
        assert_eq!(
            open,
            Open {
                version: 4,
                my_as: 65001,
                hold_time: 180,
                router_id: Ipv4Addr::new(10, 0, 0, 1),
                capabilities: vec![
                    Capability::Multiprotocol {
                        afi: Afi::Ipv4,
                        safi: Safi::Unicast
                    },
                    Capability::Unknown {
                        code: code::ROUTE_REFRESH_CISCO,
                        value: vec![]
                    },
                    Capability::RouteRefresh,
                    Capability::EnhancedRouteRefresh,
                    Capability::FourOctetAs(65001),
                    Capability::Unknown {
                        code: code::ADD_PATH,
                        value: vec![0, 1, 1, 1]
                    },
                    Capability::Unknown {
                        code: code::EXTENDED_MESSAGE,
                        value: vec![]
                    },
                    Capability::Unknown {
                        code: code::FQDN,
                        value: vec![2, b'r', b'1', 0]
                    },
                    Capability::GracefulRestart(
                        crate::bgp::graceful_restart::GracefulRestartCapability::decode(&[
                            0x40, 0x78
                        ])
                        .expect("well-formed")
                    ),
                ],
            }
        );
        assert!(open.route_refresh());
        assert_eq!(open.four_octet_as(), Some(65001));
        assert_eq!(
            open.multiprotocol().collect::<Vec<_>>(),
            [(Afi::Ipv4, Safi::Unicast)]
        );
    }

    #[test]
    fn golden_our_open() {
        let open = our_open();
        assert_eq!(
            &Message::Open(open.clone()).encode(&Codec::default())[..],
            OUR_OPEN
        );
        assert_eq!(decode(OUR_OPEN).unwrap(), open);
        assert!(open.extended_next_hop(Afi::Ipv4, Safi::Unicast, Afi::Ipv6));
        assert!(!open.extended_next_hop(Afi::Ipv6, Safi::Unicast, Afi::Ipv4));
    }

    #[test]
    fn two_octet_speaker_open_round_trips() {
        let open = Open::new(65001, 0, Ipv4Addr::new(10, 0, 0, 2), vec![]);
        let encoded = Message::Open(open.clone()).encode(&Codec::default());
        assert_eq!(encoded.len(), 29);
        assert_eq!(decode(&encoded).unwrap(), open);
    }

    #[test]
    fn capabilities_longer_than_255_octets_use_rfc_9072_extended_parameters() {
        let mut open = our_open();
        for code in 100..180 {
            open.capabilities.push(Capability::Unknown {
                code,
                value: vec![code; 2],
            });
        }
        let encoded = Message::Open(open.clone()).encode(&Codec::default());
        assert_eq!(&encoded[28..30], &[255, 255]);
        assert_eq!(decode(&encoded).unwrap(), open);
    }

    #[test]
    fn decodes_rfc_9072_extended_parameters_from_a_peer() {
        // Two parameters, each with a two-octet length.
        let mut body = fixed_body();
        body.extend_from_slice(&[255, 255, 0, 14]);
        body.extend_from_slice(&[2, 0, 6, 65, 4, 0, 0, 0xfd, 0xe9]);
        body.extend_from_slice(&[2, 0, 2, 2, 0]);
        let open = decode(&open_message(&body)).unwrap();
        assert_eq!(
            open.capabilities,
            vec![Capability::FourOctetAs(65001), Capability::RouteRefresh]
        );
    }

    #[test]
    fn my_as_comes_from_the_four_octet_capability() {
        let mut body = fixed_body();
        body[1..3].copy_from_slice(&23456u16.to_be_bytes());
        body.extend_from_slice(&[8, 2, 6, 65, 4, 0, 1, 0x11, 0x70]);
        assert_eq!(decode(&open_message(&body)).unwrap().my_as, 70000);
    }

    #[test]
    fn unsupported_version_names_version_4() {
        let mut body = fixed_body();
        body[0] = 3;
        body.push(0);
        let error = decode(&open_message(&body)).unwrap_err();
        assert_eq!(error.notification, Notification::unsupported_version(4));
    }

    #[test]
    fn hold_time_of_one_or_two_seconds_is_unacceptable() {
        for hold_time in [1u16, 2] {
            let mut body = fixed_body();
            body[3..5].copy_from_slice(&hold_time.to_be_bytes());
            body.push(0);
            assert_eq!(error_codes(decode(&open_message(&body))), (2, 6));
        }
        for hold_time in [0u16, 3, 65535] {
            let mut body = fixed_body();
            body[3..5].copy_from_slice(&hold_time.to_be_bytes());
            body.push(0);
            assert_eq!(decode(&open_message(&body)).unwrap().hold_time, hold_time);
        }
    }

    #[test]
    fn zero_bgp_identifier_is_bad_bgp_identifier() {
        let mut body = fixed_body();
        body[5..9].fill(0);
        body.push(0);
        assert_eq!(error_codes(decode(&open_message(&body))), (2, 3));
    }

    #[test]
    fn as_zero_is_bad_peer_as() {
        let mut body = fixed_body();
        body[1..3].fill(0);
        body.push(0);
        assert_eq!(error_codes(decode(&open_message(&body))), (2, 2));

        let mut body = fixed_body();
        body.extend_from_slice(&[8, 2, 6, 65, 4, 0, 0, 0, 0]);
        assert_eq!(error_codes(decode(&open_message(&body))), (2, 2));
    }

    #[test]
    fn my_as_contradicting_the_four_octet_capability_is_bad_peer_as() {
        let mut body = fixed_body(); // My AS 65001
        body.extend_from_slice(&[8, 2, 6, 65, 4, 0, 0, 0xfd, 0xea]); // four-octet AS 65002
        assert_eq!(error_codes(decode(&open_message(&body))), (2, 2));
        // AS_TRANS in My AS is fine whatever the four-octet AS.
        let mut body = fixed_body();
        body[1..3].copy_from_slice(&23456u16.to_be_bytes());
        body.extend_from_slice(&[8, 2, 6, 65, 4, 0, 0, 0xfd, 0xea]);
        assert_eq!(decode(&open_message(&body)).unwrap().my_as, 65002);
    }

    #[test]
    fn unknown_optional_parameter_is_unsupported_optional_parameter() {
        let mut body = fixed_body();
        body.extend_from_slice(&[4, 1, 2, 0xaa, 0xbb]); // type 1: authentication (deprecated)
        assert_eq!(error_codes(decode(&open_message(&body))), (2, 4));
    }

    #[test]
    fn structural_errors_are_open_message_errors() {
        let cases: [&[u8]; 5] = [
            &[9, 2, 2, 2, 0],           // Opt Parm Len overruns the message
            &[2, 2, 2, 2, 0],           // octets after the parameters
            &[3, 2, 4, 2],              // parameter overruns Opt Parm Len
            &[4, 2, 2, 65, 4],          // capability overruns its parameter
            &[255, 255, 0, 9, 2, 0, 2], // extended length overruns the message
        ];
        for parameters in cases {
            let mut body = fixed_body();
            body.extend_from_slice(parameters);
            assert_eq!(
                error_codes(decode(&open_message(&body))),
                (2, 0),
                "{parameters:?}"
            );
        }
    }

    #[test]
    fn empty_capability_parameter_is_accepted() {
        let mut body = fixed_body();
        body.extend_from_slice(&[2, 2, 0]);
        assert_eq!(decode(&open_message(&body)).unwrap().capabilities, vec![]);
    }
}
