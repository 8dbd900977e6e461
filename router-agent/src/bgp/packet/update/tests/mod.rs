//! UPDATE codec tests; this module holds the fixtures they share.

mod rfc7606;
mod round_trips;
mod split;

use std::net::{IpAddr, Ipv4Addr};

use super::super::types::{AsPath, AsSegment, AsSegmentKind, Origin, RawAttribute};
use super::super::{Decoded, Message};
use super::*;

const TWO_OCTET: Codec = Codec {
    four_octet_as: false,
    extended_next_hop_ipv4: false,
};
const FOUR_OCTET: Codec = Codec {
    four_octet_as: true,
    extended_next_hop_ipv4: false,
};
const EXTENDED_NEXT_HOP: Codec = Codec {
    four_octet_as: true,
    extended_next_hop_ipv4: true,
};

/// Hand-assembled from RFC 4271 4.3 and 5.1 (a capture from FRR/BIRD will be added by the
/// interop tests), on a two-octet AS session: ORIGIN IGP, AS_PATH 65001 65002, NEXT_HOP
/// 192.0.2.1, NLRI 198.51.100.0/24 and 203.0.113.0/24.
const UPDATE_TWO_OCTET: &[u8] = &[
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
    0x00, 0x33, // length 51
    0x02, // type UPDATE
    0x00, 0x00, // withdrawn routes length 0
    0x00, 0x14, // total path attribute length 20
    0x40, 0x01, 0x01, 0x00, // ORIGIN (well-known transitive), 1 octet: IGP
    0x40, 0x02, 0x06, // AS_PATH, 6 octets:
    0x02, 0x02, 0xfd, 0xe9, 0xfd, 0xea, //   AS_SEQUENCE of 2: 65001 65002
    0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01, // NEXT_HOP 192.0.2.1
    0x18, 0xc6, 0x33, 0x64, // 198.51.100.0/24
    0x18, 0xcb, 0x00, 0x71, // 203.0.113.0/24
];

/// The same UPDATE on a four-octet AS session: the ASNs take four octets.
const UPDATE_FOUR_OCTET: &[u8] = &[
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
    0x00, 0x37, // length 55
    0x02, // type UPDATE
    0x00, 0x00, // withdrawn routes length 0
    0x00, 0x18, // total path attribute length 24
    0x40, 0x01, 0x01, 0x00, // ORIGIN IGP
    0x40, 0x02, 0x0a, // AS_PATH, 10 octets:
    0x02, 0x02, 0x00, 0x00, 0xfd, 0xe9, 0x00, 0x00, 0xfd, 0xea, //   AS_SEQUENCE 65001 65002
    0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01, // NEXT_HOP 192.0.2.1
    0x18, 0xc6, 0x33, 0x64, // 198.51.100.0/24
    0x18, 0xcb, 0x00, 0x71, // 203.0.113.0/24
];

fn net(text: &str) -> Ipv4Net {
    text.parse().unwrap()
}

fn ip_net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn basic_attributes() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath {
            segments: vec![AsSegment {
                kind: AsSegmentKind::Sequence,
                asns: vec![65001, 65002],
            }],
        },
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..Default::default()
    }
}

fn golden_update() -> Update {
    Update {
        attributes: basic_attributes(),
        nlri: vec![net("198.51.100.0/24"), net("203.0.113.0/24")],
        ..Default::default()
    }
}

fn decode(bytes: &[u8], codec: &Codec) -> Result<Decoded, MessageError> {
    Message::decode(bytes, codec)
}

fn decode_update(bytes: &[u8], codec: &Codec) -> (Update, Option<UpdateError>) {
    match decode(bytes, codec).unwrap() {
        Decoded {
            message: Message::Update(update),
            update_error,
        } => (update, update_error),
        other => panic!("not an UPDATE: {other:?}"),
    }
}

fn encode_one(update: &Update, codec: &Codec) -> Bytes {
    let mut messages = encode_updates(update, codec);
    assert_eq!(messages.len(), 1, "{update:?}");
    messages.pop().unwrap()
}

fn round_trip(update: &Update, codec: &Codec) {
    let (decoded, error) = decode_update(&encode_one(update, codec), codec);
    assert_eq!(error, None, "{codec:?}");
    assert_eq!(&decoded, update, "{codec:?}");
}

/// An UPDATE message from raw fields, lengths filled in.
fn update_message(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u16::try_from(withdrawn.len()).unwrap().to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&u16::try_from(attributes.len()).unwrap().to_be_bytes());
    body.extend_from_slice(attributes);
    body.extend_from_slice(nlri);
    let mut message = vec![0xff; 16];
    message.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    message.push(2);
    message.extend_from_slice(&body);
    message
}

/// ORIGIN IGP, AS_PATH 65001 (four-octet), NEXT_HOP 192.0.2.1.
const VALID_ATTRIBUTES: &[u8] = &[
    0x40, 1, 1, 0, //
    0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9, //
    0x40, 3, 4, 192, 0, 2, 1,
];
/// 10.0.0.0/8
const NLRI: &[u8] = &[8, 10];

fn with_attribute(extra: &[u8]) -> Vec<u8> {
    let mut attributes = VALID_ATTRIBUTES.to_vec();
    attributes.extend_from_slice(extra);
    attributes
}

fn error_codes(result: Result<Decoded, MessageError>) -> (u8, u8) {
    let error = result.unwrap_err();
    (error.notification.code, error.notification.subcode)
}

fn assert_withdraw(bytes: &[u8], codec: &Codec, reason: &str) -> Update {
    let (update, error) = decode_update(bytes, codec);
    match error {
        Some(UpdateError::TreatAsWithdraw { reason: actual }) => {
            assert!(
                actual.contains(reason),
                "{actual:?} does not mention {reason:?}"
            )
        }
        other => panic!("expected treat-as-withdraw for {reason}, got {other:?}"),
    }
    update
}

fn assert_discard(bytes: &[u8], codec: &Codec, reason: &str) -> Update {
    let (update, error) = decode_update(bytes, codec);
    match error {
        Some(UpdateError::AttributeDiscard { reason: actual }) => {
            assert!(
                actual.contains(reason),
                "{actual:?} does not mention {reason:?}"
            )
        }
        other => panic!("expected attribute discard for {reason}, got {other:?}"),
    }
    update
}
