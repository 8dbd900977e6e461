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

// ---- golden bytes and round trips ----

#[test]
fn golden_update_two_octet_as() {
    assert_eq!(
        &encode_one(&golden_update(), &TWO_OCTET)[..],
        UPDATE_TWO_OCTET
    );
    assert_eq!(
        decode_update(UPDATE_TWO_OCTET, &TWO_OCTET),
        (golden_update(), None)
    );
}

#[test]
fn golden_update_four_octet_as() {
    assert_eq!(
        &encode_one(&golden_update(), &FOUR_OCTET)[..],
        UPDATE_FOUR_OCTET
    );
    assert_eq!(
        decode_update(UPDATE_FOUR_OCTET, &FOUR_OCTET),
        (golden_update(), None)
    );
}

#[test]
fn every_attribute_round_trips_in_an_update() {
    let mut attributes = attribute::tests::all_attributes();
    for codec in [TWO_OCTET, FOUR_OCTET] {
        round_trip(
            &Update {
                attributes: attributes.clone(),
                nlri: vec![net("10.0.0.0/8"), net("0.0.0.0/0"), net("192.0.2.128/25")],
                ..Default::default()
            },
            &codec,
        );
    }
    // With MP_REACH_NLRI alone there is no NEXT_HOP attribute.
    attributes.next_hop = None;
    for codec in [TWO_OCTET, FOUR_OCTET] {
        round_trip(
            &Update {
                attributes: attributes.clone(),
                mp_reach: Some(MpReach {
                    afi: Afi::Ipv6,
                    safi: Safi::Unicast,
                    next_hop: "2001:db8::1".parse().unwrap(),
                    link_local_next_hop: None,
                    nlri: vec![ip_net("2001:db8:1::/48")],
                }),
                ..Default::default()
            },
            &codec,
        );
    }
}

#[test]
fn ipv6_with_global_and_link_local_next_hop() {
    let update = Update {
        attributes: PathAttributes {
            next_hop: None,
            ..basic_attributes()
        },
        mp_reach: Some(MpReach {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
            next_hop: "2001:db8::1".parse().unwrap(),
            link_local_next_hop: Some("fe80::1".parse().unwrap()),
            nlri: vec![
                ip_net("2001:db8:1::/48"),
                ip_net("::/0"),
                ip_net("2001:db8::5/128"),
            ],
        }),
        ..Default::default()
    };
    for codec in [TWO_OCTET, FOUR_OCTET] {
        round_trip(&update, &codec);
    }
}

#[test]
fn ipv4_nlri_with_ipv6_next_hop_rfc_8950() {
    let update = Update {
        attributes: PathAttributes {
            next_hop: None,
            ..basic_attributes()
        },
        mp_reach: Some(MpReach {
            afi: Afi::Ipv4,
            safi: Safi::Unicast,
            next_hop: "2001:db8::1".parse().unwrap(),
            link_local_next_hop: Some("fe80::1".parse().unwrap()),
            nlri: vec![ip_net("198.51.100.0/24"), ip_net("10.0.0.0/8")],
        }),
        ..Default::default()
    };
    round_trip(&update, &EXTENDED_NEXT_HOP);
    round_trip(
        &Update {
            mp_reach: update.mp_reach.clone().map(|reach| MpReach {
                link_local_next_hop: None,
                ..reach
            }),
            ..update.clone()
        },
        &EXTENDED_NEXT_HOP,
    );
    // Without the capability the peer could not have sent it: session reset.
    let bytes = encode_one(&update, &EXTENDED_NEXT_HOP);
    assert_eq!(error_codes(decode(&bytes, &FOUR_OCTET)), (3, 9));
}

#[test]
fn ipv4_nlri_with_ipv4_next_hop_in_mp_reach() {
    round_trip(
        &Update {
            attributes: PathAttributes {
                next_hop: None,
                ..basic_attributes()
            },
            mp_reach: Some(MpReach {
                afi: Afi::Ipv4,
                safi: Safi::Unicast,
                next_hop: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
                link_local_next_hop: None,
                nlri: vec![ip_net("10.0.0.0/8")],
            }),
            ..Default::default()
        },
        &TWO_OCTET,
    );
}

#[test]
fn withdrawals_round_trip() {
    for codec in [TWO_OCTET, FOUR_OCTET] {
        round_trip(
            &Update {
                withdrawn: vec![net("10.0.0.0/8"), net("192.0.2.0/24")],
                ..Default::default()
            },
            &codec,
        );
        round_trip(
            &Update {
                mp_unreach: Some(MpUnreach {
                    afi: Afi::Ipv6,
                    safi: Safi::Unicast,
                    withdrawn: vec![ip_net("2001:db8::/32")],
                }),
                ..Default::default()
            },
            &codec,
        );
    }
}

#[test]
fn unknown_transitive_attribute_is_passed_on_with_the_partial_bit() {
    let attributes = with_attribute(&[0xc0, 99, 2, 0xaa, 0xbb]);
    let (update, error) = decode_update(&update_message(&[], &attributes, NLRI), &FOUR_OCTET);
    assert_eq!(error, None);
    assert_eq!(
        update.attributes.unknown,
        vec![RawAttribute {
            flags: 0xe0,
            type_code: 99,
            value: vec![0xaa, 0xbb]
        }]
    );
    let encoded = encode_one(&update, &FOUR_OCTET);
    let tail = &encoded[encoded.len() - NLRI.len() - 5..encoded.len() - NLRI.len()];
    assert_eq!(tail, [0xe0, 99, 2, 0xaa, 0xbb]);
}

// ---- End-of-RIB ----

#[test]
fn end_of_rib_markers() {
    let ipv4 = encode_one(&Update::end_of_rib(Afi::Ipv4), &FOUR_OCTET);
    assert_eq!(&ipv4[16..], [0, 23, 2, 0, 0, 0, 0]);
    let (decoded, _) = decode_update(&ipv4, &FOUR_OCTET);
    assert_eq!(
        decoded.end_of_rib_family(),
        Some((Afi::Ipv4, Safi::Unicast))
    );

    let ipv6 = encode_one(&Update::end_of_rib(Afi::Ipv6), &FOUR_OCTET);
    assert_eq!(&ipv6[16..], [0, 29, 2, 0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]);
    let (decoded, _) = decode_update(&ipv6, &FOUR_OCTET);
    assert_eq!(
        decoded.end_of_rib_family(),
        Some((Afi::Ipv6, Safi::Unicast))
    );

    // IPv4 may also be marked through MP_UNREACH_NLRI.
    let mp_ipv4 = update_message(&[], &[0x80, 15, 3, 0, 1, 1], &[]);
    let (decoded, _) = decode_update(&mp_ipv4, &FOUR_OCTET);
    assert_eq!(
        decoded.end_of_rib_family(),
        Some((Afi::Ipv4, Safi::Unicast))
    );
}

#[test]
fn not_end_of_rib() {
    assert_eq!(golden_update().end_of_rib_family(), None);
    let withdraw = Update {
        withdrawn: vec![net("10.0.0.0/8")],
        ..Default::default()
    };
    assert_eq!(withdraw.end_of_rib_family(), None);
    // The End-of-RIB of a family we do not implement is not an IPv4 one.
    let evpn = update_message(&[], &[0x80, 15, 3, 0, 25, 70], &[]);
    let (decoded, error) = decode_update(&evpn, &FOUR_OCTET);
    assert_eq!(error, None);
    assert_eq!(decoded.unknown_families, vec![(25, 70)]);
    assert_eq!(decoded.end_of_rib_family(), None);
}

// ---- splitting into 4096-octet messages ----

fn many_ipv4_prefixes(count: u32) -> Vec<Ipv4Net> {
    (0..count)
        .map(|index| Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (index << 8)), 24).unwrap())
        .collect()
}

fn decode_all(messages: &[Bytes], codec: &Codec) -> Vec<Update> {
    messages
        .iter()
        .map(|message| {
            assert!(message.len() <= MAX_MESSAGE_LEN);
            let (update, error) = decode_update(message, codec);
            assert_eq!(error, None);
            update
        })
        .collect()
}

#[test]
fn many_ipv4_prefixes_are_split_into_full_messages() {
    let prefixes = many_ipv4_prefixes(5000);
    let update = Update {
        attributes: basic_attributes(),
        nlri: prefixes.clone(),
        ..Default::default()
    };
    let messages = encode_updates(&update, &FOUR_OCTET);
    // 4 octets per /24, about 4040 octets of room per message.
    assert_eq!(messages.len(), 5000usize.div_ceil((UPDATE_ROOM - 24) / 4));
    let decoded = decode_all(&messages, &FOUR_OCTET);
    assert!(
        decoded
            .iter()
            .all(|update| update.attributes == basic_attributes())
    );
    let nlri: Vec<Ipv4Net> = decoded.into_iter().flat_map(|update| update.nlri).collect();
    assert_eq!(nlri, prefixes);
    assert!(
        messages[..messages.len() - 1]
            .iter()
            .all(|message| message.len() > MAX_MESSAGE_LEN - 4)
    );
}

#[test]
fn many_ipv6_prefixes_are_split_into_mp_reach_messages() {
    let prefixes: Vec<IpNet> = (0..3000u128)
        .map(|index| {
            IpNet::V6(
                ipnet::Ipv6Net::new((0x2001_0db8u128 << 96 | index << 64).into(), 64).unwrap(),
            )
        })
        .collect();
    let reach = MpReach {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        next_hop: "2001:db8::1".parse().unwrap(),
        link_local_next_hop: Some("fe80::1".parse().unwrap()),
        nlri: prefixes.clone(),
    };
    let update = Update {
        attributes: PathAttributes {
            next_hop: None,
            communities: (0..200).collect(),
            ..basic_attributes()
        },
        mp_reach: Some(reach.clone()),
        ..Default::default()
    };
    let messages = encode_updates(&update, &FOUR_OCTET);
    assert!(messages.len() > 1);
    let decoded = decode_all(&messages, &FOUR_OCTET);
    let mut nlri = Vec::new();
    for update in decoded {
        let mp = update.mp_reach.unwrap();
        assert_eq!(
            (mp.next_hop, mp.link_local_next_hop),
            (reach.next_hop, reach.link_local_next_hop)
        );
        assert_eq!(update.attributes.communities.len(), 200);
        nlri.extend(mp.nlri);
    }
    assert_eq!(nlri, prefixes);
}

#[test]
fn many_withdrawals_are_split() {
    let prefixes = many_ipv4_prefixes(3000);
    let update = Update {
        withdrawn: prefixes.clone(),
        mp_unreach: Some(MpUnreach {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
            withdrawn: vec![ip_net("2001:db8::/32"); 1000],
        }),
        ..Default::default()
    };
    let decoded = decode_all(&encode_updates(&update, &FOUR_OCTET), &FOUR_OCTET);
    let withdrawn: Vec<Ipv4Net> = decoded
        .iter()
        .flat_map(|update| update.withdrawn.clone())
        .collect();
    assert_eq!(withdrawn, prefixes);
    let mp_withdrawn: usize = decoded
        .iter()
        .filter_map(|update| update.mp_unreach.as_ref())
        .map(|unreach| unreach.withdrawn.len())
        .sum();
    assert_eq!(mp_withdrawn, 1000);
}

#[test]
fn one_kind_of_route_field_per_message() {
    let update = Update {
        withdrawn: vec![net("10.1.0.0/16")],
        attributes: basic_attributes(),
        nlri: vec![net("10.2.0.0/16")],
        mp_reach: Some(MpReach {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
            next_hop: "2001:db8::1".parse().unwrap(),
            link_local_next_hop: None,
            nlri: vec![ip_net("2001:db8:2::/48")],
        }),
        mp_unreach: Some(MpUnreach {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
            withdrawn: vec![ip_net("2001:db8:1::/48")],
        }),
        unknown_families: Vec::new(),
    };
    let decoded = decode_all(&encode_updates(&update, &FOUR_OCTET), &FOUR_OCTET);
    assert_eq!(decoded.len(), 4);
    assert_eq!(decoded[0].withdrawn, update.withdrawn);
    assert_eq!(decoded[1].mp_unreach, update.mp_unreach);
    assert_eq!(decoded[2].nlri, update.nlri);
    assert_eq!(decoded[3].mp_reach, update.mp_reach);
    // Withdrawals carry no attributes.
    assert_eq!(decoded[0].attributes, PathAttributes::default());
    // Message::encode writes them back to back.
    let messages = encode_updates(&update, &FOUR_OCTET);
    assert_eq!(
        Message::Update(update).encode(&FOUR_OCTET),
        messages.concat()
    );
}

#[test]
fn attributes_too_long_for_any_prefix_turn_into_withdrawals() {
    let update = Update {
        attributes: PathAttributes {
            communities: (0..1100).collect(), // 4400 octets
            ..basic_attributes()
        },
        nlri: vec![net("10.0.0.0/8")],
        ..Default::default()
    };
    let decoded = decode_all(&encode_updates(&update, &FOUR_OCTET), &FOUR_OCTET);
    assert_eq!(
        decoded,
        vec![Update {
            withdrawn: vec![net("10.0.0.0/8")],
            ..Default::default()
        }]
    );
}

// ---- RFC 7606: errors that reset the session ----

#[test]
fn withdrawn_routes_length_overrun_is_malformed_attribute_list() {
    let mut bytes = update_message(&[8, 10], &[], &[]);
    bytes[20] = 9; // withdrawn routes length 9 of 2
    assert_eq!(error_codes(decode(&bytes, &FOUR_OCTET)), (3, 1));
}

#[test]
fn total_attribute_length_overrun_is_malformed_attribute_list() {
    let mut bytes = update_message(&[], VALID_ATTRIBUTES, NLRI);
    bytes[22] += 3;
    assert_eq!(error_codes(decode(&bytes, &FOUR_OCTET)), (3, 1));
}

#[test]
fn syntactically_incorrect_nlri_and_withdrawn_routes_are_invalid_network_field() {
    let cases = [
        update_message(&[], VALID_ATTRIBUTES, &[33, 10, 0, 0, 0, 0]),
        update_message(&[], VALID_ATTRIBUTES, &[24, 10, 0]),
        update_message(&[33, 1, 2, 3, 4, 5], &[], &[]),
        update_message(&[16, 10], &[], &[]),
    ];
    for bytes in cases {
        assert_eq!(error_codes(decode(&bytes, &FOUR_OCTET)), (3, 10));
    }
}

#[test]
fn repeated_mp_attributes_are_malformed_attribute_list() {
    let unreach = [0x80, 15, 3, 0, 2, 1];
    let twice = [unreach, unreach].concat();
    assert_eq!(
        error_codes(decode(&update_message(&[], &twice, &[]), &FOUR_OCTET)),
        (3, 1)
    );

    let reach = [
        0x80, 14, 21, 0, 2, 1, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
    ];
    let twice = with_attribute(&[reach, reach].concat());
    assert_eq!(
        error_codes(decode(&update_message(&[], &twice, &[]), &FOUR_OCTET)),
        (3, 1)
    );
}

#[test]
fn malformed_mp_attributes_are_optional_attribute_errors() {
    let cases: [&[u8]; 5] = [
        &[0x80, 14, 2, 0, 2],                            // too short for AFI/SAFI
        &[0x80, 14, 8, 0, 2, 1, 4, 1, 2, 3, 4], // IPv6 with a 4-octet next hop, no reserved
        &[0x80, 14, 10, 0, 1, 1, 4, 10, 0, 0, 1, 0, 33], // IPv4 NLRI of length 33
        &[0x80, 14, 10, 0, 1, 1, 4, 10, 0, 0, 1, 0, 24], // IPv4 NLRI overrun
        &[0x80, 15, 5, 0, 2, 1, 64, 0x20],      // MP_UNREACH prefix overrun
    ];
    for attribute in cases {
        let bytes = update_message(&[], &with_attribute(attribute), &[]);
        let error = decode(&bytes, &FOUR_OCTET).unwrap_err();
        assert_eq!(
            (error.notification.code, error.notification.subcode),
            (3, 9),
            "{attribute:?}"
        );
        assert_eq!(
            error.notification.data, attribute,
            "the attribute is the data"
        );
    }
    // MP_REACH_NLRI flags that are not optional non-transitive.
    let transitive = [0xc0, 15, 3, 0, 2, 1];
    assert_eq!(
        error_codes(decode(&update_message(&[], &transitive, &[]), &FOUR_OCTET)),
        (3, 9)
    );
}

#[test]
fn mp_attributes_of_unknown_families_are_ignored() {
    // MP_REACH_NLRI for L2VPN EVPN with an EVPN-looking body.
    let attributes = with_attribute(&[0x80, 14, 12, 0, 25, 70, 4, 10, 0, 0, 1, 0, 2, 1, 0]);
    let (update, error) = decode_update(&update_message(&[], &attributes, &[]), &FOUR_OCTET);
    assert_eq!(error, None);
    assert_eq!(update.mp_reach, None);
    assert_eq!(update.unknown_families, vec![(25, 70)]);
}

#[test]
fn unrecognized_well_known_attribute_resets_the_session() {
    let bytes = update_message(&[], &with_attribute(&[0x40, 99, 1, 0]), NLRI);
    let error = decode(&bytes, &FOUR_OCTET).unwrap_err();
    assert_eq!(
        (error.notification.code, error.notification.subcode),
        (3, 2)
    );
    assert_eq!(error.notification.data, [0x40, 99, 1, 0]);
}

#[test]
fn attribute_error_without_reachable_nlri_resets_the_session() {
    // RFC 7606 5.2: withdrawals plus a malformed ORIGIN.
    let bytes = update_message(&[8, 10], &[0x40, 1, 2, 0, 0], &[]);
    let error = decode(&bytes, &FOUR_OCTET).unwrap_err();
    assert_eq!(
        (error.notification.code, error.notification.subcode),
        (3, 5)
    );
    assert_eq!(error.notification.data, [0x40, 1, 2, 0, 0]);
    // MP_UNREACH_NLRI plus a malformed MED.
    let attributes = [&[0x80, 15, 3, 0, 2, 1][..], &[0x80, 4, 3, 0, 0, 0]].concat();
    assert_eq!(
        error_codes(decode(&update_message(&[], &attributes, &[]), &FOUR_OCTET)),
        (3, 5)
    );
    // Attribute discard is still fine there.
    let attributes = [&[0x80, 15, 3, 0, 2, 1][..], &[0x40, 6, 1, 0]].concat();
    assert_discard(
        &update_message(&[], &attributes, &[]),
        &FOUR_OCTET,
        "ATOMIC_AGGREGATE",
    );
}

// ---- RFC 7606: treat-as-withdraw ----

#[test]
fn attribute_overrunning_the_attribute_field_is_treat_as_withdraw() {
    // RFC 7606 4, first case: the last attribute's length runs past the field; the NLRI is
    // still found through the Total Path Attribute Length.
    let attributes = with_attribute(&[0xc0, 8, 8, 0, 0, 0, 1]);
    let update = assert_withdraw(
        &update_message(&[], &attributes, NLRI),
        &FOUR_OCTET,
        "overruns",
    );
    assert_eq!(update.nlri, vec![net("10.0.0.0/8")]);
    // Second case: fewer octets than an attribute header.
    for tail in [&[0x40][..], &[0x40, 5], &[0x50, 5, 0]] {
        let update = assert_withdraw(
            &update_message(&[], &with_attribute(tail), NLRI),
            &FOUR_OCTET,
            "left after the last attribute",
        );
        assert_eq!(update.announced().count(), 1);
    }
}

#[test]
fn malformed_well_known_attributes_are_treat_as_withdraw() {
    let origin_and_next_hop = [0x40, 1, 1, 0, 0x40, 3, 4, 192, 0, 2, 1];
    let cases: [(&[u8], &str); 9] = [
        (&[0x40, 1, 2, 0, 0], "ORIGIN: length 2"),
        (&[0x40, 1, 1, 3], "ORIGIN: undefined value 3"),
        (&[0x40, 3, 5, 1, 2, 3, 4, 5], "NEXT_HOP: length 5"),
        (&[0x80, 4, 3, 0, 0, 0], "MULTI_EXIT_DISC: length 3"),
        (&[0x40, 5, 0], "LOCAL_PREF: length 0"),
        (&[0xc0, 8, 0], "COMMUNITIES: length 0"),
        (&[0xc0, 8, 5, 0, 0, 0, 1, 2], "COMMUNITIES: length 5"),
        (&[0x80, 9, 3, 10, 0, 0], "ORIGINATOR_ID: length 3"),
        (&[0x80, 10, 6, 10, 0, 0, 1, 10, 0], "CLUSTER_LIST: length 6"),
    ];
    for (attribute, reason) in cases {
        // The malformed attribute comes after a valid one of the same code when both are
        // present, so put it first to be the one decoded.
        let attributes = [attribute, &VALID_ATTRIBUTES[4..13], &origin_and_next_hop].concat();
        let update = assert_withdraw(&update_message(&[], &attributes, NLRI), &FOUR_OCTET, reason);
        assert_eq!(update.nlri, vec![net("10.0.0.0/8")]);
    }
    let more: [(&[u8], &str); 3] = [
        (
            &[0xc0, 16, 7, 0, 2, 0, 0, 0, 0, 0],
            "EXTENDED_COMMUNITIES: length 7",
        ),
        (
            &[0xc0, 32, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            "LARGE_COMMUNITY: length 11",
        ),
        (&[0xc0, 32, 0], "LARGE_COMMUNITY: length 0"),
    ];
    for (attribute, reason) in more {
        assert_withdraw(
            &update_message(&[], &with_attribute(attribute), NLRI),
            &FOUR_OCTET,
            reason,
        );
    }
}

#[test]
fn malformed_as_path_is_treat_as_withdraw() {
    let origin_and_next_hop = [0x40, 1, 1, 0, 0x40, 3, 4, 192, 0, 2, 1];
    let cases: [(&[u8], &str); 5] = [
        (&[0x40, 2, 6, 5, 1, 0, 0, 0xfd, 0xe9], "segment type 5"),
        (&[0x40, 2, 2, 2, 0], "zero-length segment"),
        (&[0x40, 2, 6, 2, 2, 0, 0, 0xfd, 0xe9], "overruns"),
        (&[0x40, 2, 7, 2, 1, 0, 0, 0xfd, 0xe9, 2], "one octet left"),
        (&[0x40, 2, 6, 2, 1, 0, 0, 0, 0], "AS 0"),
    ];
    for (as_path, reason) in cases {
        let attributes = [as_path, &origin_and_next_hop].concat();
        assert_withdraw(&update_message(&[], &attributes, NLRI), &FOUR_OCTET, reason);
    }
    // An empty AS_PATH is valid (iBGP).
    let attributes = [&[0x40, 2, 0][..], &origin_and_next_hop].concat();
    assert_eq!(
        decode_update(&update_message(&[], &attributes, NLRI), &FOUR_OCTET).1,
        None
    );
    // Two-octet ASNs in a four-octet session are an overrun or leftover octets.
    let two_octet_path = [&[0x40, 2, 4, 2, 1, 0xfd, 0xe9][..], &origin_and_next_hop].concat();
    assert_withdraw(
        &update_message(&[], &two_octet_path, NLRI),
        &FOUR_OCTET,
        "AS_PATH",
    );
}

#[test]
fn missing_well_known_attributes_are_treat_as_withdraw() {
    let origin = [0x40, 1, 1, 0];
    let as_path = [0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];
    let next_hop = [0x40, 3, 4, 192, 0, 2, 1];
    let cases = [
        ([&as_path[..], &next_hop].concat(), "ORIGIN"),
        ([&origin[..], &next_hop].concat(), "AS_PATH"),
        ([&origin[..], &as_path].concat(), "NEXT_HOP"),
    ];
    for (attributes, missing) in cases {
        assert_withdraw(
            &update_message(&[], &attributes, NLRI),
            &FOUR_OCTET,
            &format!("missing well-known attribute {missing}"),
        );
    }
    // With MP_REACH_NLRI alone, NEXT_HOP is not needed (RFC 4760 3)...
    let reach = [0x80, 14, 11, 0, 1, 1, 4, 10, 0, 0, 1, 0, 8, 10];
    let attributes = [&origin[..], &as_path, &reach].concat();
    assert_eq!(
        decode_update(&update_message(&[], &attributes, &[]), &FOUR_OCTET).1,
        None
    );
    // ... but ORIGIN and AS_PATH are.
    let attributes = [&origin[..], &reach].concat();
    let update = assert_withdraw(
        &update_message(&[], &attributes, &[]),
        &FOUR_OCTET,
        "AS_PATH",
    );
    assert_eq!(
        update.announced().collect::<Vec<_>>(),
        vec![ip_net("10.0.0.0/8")]
    );
    // Withdrawals need nothing.
    assert_eq!(
        decode_update(&update_message(&[8, 10], &[], &[]), &FOUR_OCTET).1,
        None
    );
}

#[test]
fn attribute_flags_conflicts_use_the_attributes_approach() {
    // Well-known ORIGIN marked optional: treat-as-withdraw.
    let attributes = [&[0xc0, 1, 1, 0][..], &VALID_ATTRIBUTES[4..]].concat();
    assert_withdraw(
        &update_message(&[], &attributes, NLRI),
        &FOUR_OCTET,
        "ORIGIN: flags 0xc0",
    );
    // Optional non-transitive MED marked transitive: treat-as-withdraw.
    let attributes = with_attribute(&[0xc0, 4, 4, 0, 0, 0, 1]);
    assert_withdraw(
        &update_message(&[], &attributes, NLRI),
        &FOUR_OCTET,
        "MULTI_EXIT_DISC: flags",
    );
    // AGGREGATOR marked well-known: discard.
    let attributes = with_attribute(&[0x40, 7, 8, 0, 0, 0xfd, 0xe9, 10, 0, 0, 1]);
    let update = assert_discard(
        &update_message(&[], &attributes, NLRI),
        &FOUR_OCTET,
        "AGGREGATOR: flags",
    );
    assert_eq!(update.attributes.aggregator, None);
    // The Partial and Extended Length bits do not matter.
    let attributes = [&[0x70, 1, 0, 1, 0][..], &VALID_ATTRIBUTES[4..]].concat();
    assert_eq!(
        decode_update(&update_message(&[], &attributes, NLRI), &FOUR_OCTET).1,
        None
    );
}

// ---- RFC 7606: attribute discard ----

#[test]
fn malformed_atomic_aggregate_and_aggregator_are_discarded() {
    let update = assert_discard(
        &update_message(&[], &with_attribute(&[0x40, 6, 1, 0]), NLRI),
        &FOUR_OCTET,
        "ATOMIC_AGGREGATE: length 1",
    );
    assert!(!update.attributes.atomic_aggregate);
    assert_eq!(update.nlri, vec![net("10.0.0.0/8")]);

    // Six octets is the two-octet form: wrong on a four-octet session, and vice versa.
    let six = [0xc0, 7, 6, 0xfd, 0xe9, 10, 0, 0, 1];
    let eight = [0xc0, 7, 8, 0, 0, 0xfd, 0xe9, 10, 0, 0, 1];
    let update = assert_discard(
        &update_message(&[], &with_attribute(&six), NLRI),
        &FOUR_OCTET,
        "AGGREGATOR: length 6",
    );
    assert_eq!(update.attributes.aggregator, None);
    let two_octet_attributes = [
        &[
            0x40, 1, 1, 0, 0x40, 2, 4, 2, 1, 0xfd, 0xe9, 0x40, 3, 4, 192, 0, 2, 1,
        ][..],
        &eight,
    ]
    .concat();
    assert_discard(
        &update_message(&[], &two_octet_attributes, NLRI),
        &TWO_OCTET,
        "AGGREGATOR: length 8",
    );
    // RFC 7607: AS 0.
    let zero = [0xc0, 7, 8, 0, 0, 0, 0, 10, 0, 0, 1];
    assert_discard(
        &update_message(&[], &with_attribute(&zero), NLRI),
        &FOUR_OCTET,
        "AS 0",
    );
}

#[test]
fn repeated_attributes_are_discarded_after_the_first() {
    let attributes = with_attribute(&[0x40, 1, 1, 2, 0xc0, 99, 1, 1, 0xc0, 99, 1, 2]);
    let update = assert_discard(
        &update_message(&[], &attributes, NLRI),
        &FOUR_OCTET,
        "ORIGIN appears more than once",
    );
    assert_eq!(update.attributes.origin, Some(Origin::Igp));
    assert_eq!(update.attributes.unknown.len(), 1);
    assert_eq!(update.attributes.unknown[0].value, vec![1]);
}

#[test]
fn malformed_as4_attributes_are_discarded_and_as_path_used() {
    let base = [
        0x40, 1, 1, 0, 0x40, 2, 4, 2, 1, 0xfd, 0xe9, 0x40, 3, 4, 192, 0, 2, 1,
    ];
    let cases: [(&[u8], &str); 4] = [
        (&[0xc0, 17, 5, 2, 1, 0, 1, 0x11], "AS4_PATH"),
        (&[0xc0, 17, 6, 2, 1, 0, 0, 0, 0], "AS4_PATH: contains AS 0"),
        (
            &[0xc0, 18, 7, 0, 1, 0x11, 0x70, 10, 0, 0],
            "AS4_AGGREGATOR: length 7",
        ),
        (&[0x40, 17, 6, 2, 1, 0, 1, 0x11, 0x70], "AS4_PATH: flags"),
    ];
    for (as4_attribute, reason) in cases {
        let attributes = [&base[..], as4_attribute].concat();
        let update = assert_discard(&update_message(&[], &attributes, NLRI), &TWO_OCTET, reason);
        assert_eq!(update.attributes.as_path.segments[0].asns, vec![65001]);
    }
}

#[test]
fn as4_attributes_from_a_four_octet_speaker_are_discarded() {
    let attributes = with_attribute(&[0xc0, 17, 6, 2, 1, 0, 1, 0x11, 0x70]);
    let update = assert_discard(
        &update_message(&[], &attributes, NLRI),
        &FOUR_OCTET,
        "RFC 6793 4.1",
    );
    assert_eq!(update.attributes.as_path.segments[0].asns, vec![65001]);
}

#[test]
fn strongest_approach_wins() {
    let attributes = with_attribute(&[0x40, 6, 1, 0, 0x80, 4, 2, 0, 0]);
    let update = assert_withdraw(
        &update_message(&[], &attributes, NLRI),
        &FOUR_OCTET,
        "MULTI_EXIT_DISC",
    );
    assert_eq!(update.nlri, vec![net("10.0.0.0/8")]);
    let (_, error) = decode_update(&update_message(&[], &attributes, NLRI), &FOUR_OCTET);
    assert!(error.unwrap().reason().contains("ATOMIC_AGGREGATE"));
}
