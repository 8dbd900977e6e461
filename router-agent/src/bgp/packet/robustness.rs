//! Whole-codec properties: every message round-trips, decoding never panics whatever the
//! bytes, and whatever we manage to decode we can encode into messages that decode again.
//! Seeded, so that a failure reproduces; the cargo-fuzz target in `router-agent/fuzz/`
//! explores further.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::attribute::{flag, type_code};
use super::notification::FsmSubcode;
use super::types::{
    AsPath, AsSegment, AsSegmentKind, MpReach, MpUnreach, Origin, PathAttributes, RawAttribute,
};
use super::*;

const TWO_OCTET: Codec = Codec {
    four_octet_as: false,
    extended_next_hop_ipv4: false,
};
const ALL_NEGOTIATED: Codec = Codec {
    four_octet_as: true,
    extended_next_hop_ipv4: true,
};
const CODECS: [Codec; 3] = [TWO_OCTET, Codec::FOUR_OCTET_AS, ALL_NEGOTIATED];

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn ipv4_net(text: &str) -> Ipv4Net {
    text.parse().unwrap()
}

fn attributes() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Egp),
        as_path: AsPath {
            segments: vec![
                AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: vec![65001, 4_200_000_000],
                },
                AsSegment {
                    kind: AsSegmentKind::Set,
                    asns: vec![65002, 70000],
                },
            ],
        },
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        med: Some(10),
        local_pref: Some(100),
        atomic_aggregate: true,
        aggregator: Some((70000, Ipv4Addr::new(10, 0, 0, 1))),
        communities: vec![0xfde9_0001],
        extended_communities: vec![[0, 2, 0, 0, 0xfd, 0xe9, 0, 1]],
        large_communities: vec![[70000, 1, 2]],
        originator_id: Some(Ipv4Addr::new(10, 0, 0, 2)),
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 3)],
        unknown: vec![RawAttribute {
            flags: flag::OPTIONAL_TRANSITIVE | flag::PARTIAL,
            type_code: 200,
            value: vec![1, 2, 3],
        }],
    }
}

/// One message of every kind and shape, each of which encodes as a single message.
fn sample_messages() -> Vec<Message> {
    let mp_attributes = PathAttributes {
        next_hop: None,
        ..attributes()
    };
    vec![
        Message::Keepalive,
        Message::Open(Open::new(
            4_200_000_000,
            180,
            Ipv4Addr::new(10, 0, 0, 1),
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
                Capability::EnhancedRouteRefresh,
                Capability::FourOctetAs(4_200_000_000),
                Capability::ExtendedNextHop(vec![(Afi::Ipv4, Safi::Unicast, Afi::Ipv6)]),
                Capability::GracefulRestart(
                    crate::bgp::graceful_restart::GracefulRestartCapability::decode(&[
                        0x40, 0x78, 0, 1, 1, 0x80,
                    ])
                    .expect("well-formed"),
                ),
                Capability::Unknown {
                    code: 73,
                    value: vec![2, b'r', b'1', 0],
                },
            ],
        )),
        Message::Open(Open::new(65001, 0, Ipv4Addr::new(10, 0, 0, 2), vec![])),
        Message::Update(Update {
            attributes: attributes(),
            nlri: vec![ipv4_net("10.0.0.0/8"), ipv4_net("0.0.0.0/0")],
            ..Default::default()
        }),
        Message::Update(Update {
            attributes: mp_attributes.clone(),
            mp_reach: Some(MpReach {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
                next_hop: "2001:db8::1".parse().unwrap(),
                link_local_next_hop: Some("fe80::1".parse().unwrap()),
                nlri: vec![net("2001:db8:1::/48"), net("::/0")],
            }),
            ..Default::default()
        }),
        Message::Update(Update {
            attributes: mp_attributes,
            mp_reach: Some(MpReach {
                afi: Afi::Ipv4,
                safi: Safi::Unicast,
                next_hop: "2001:db8::2".parse().unwrap(),
                link_local_next_hop: None,
                nlri: vec![net("198.51.100.0/24")],
            }),
            ..Default::default()
        }),
        Message::Update(Update {
            withdrawn: vec![ipv4_net("10.0.0.0/8")],
            ..Default::default()
        }),
        Message::Update(Update {
            mp_unreach: Some(MpUnreach {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
                withdrawn: vec![net("2001:db8::/32")],
            }),
            ..Default::default()
        }),
        Message::Update(Update::end_of_rib(Afi::Ipv4)),
        Message::Update(Update::end_of_rib(Afi::Ipv6)),
        Message::Notification(Notification::administrative_shutdown("maintenance")),
        Message::Notification(Notification::fsm_error(
            FsmSubcode::UnexpectedMessageInOpenSent,
        )),
        Message::RouteRefresh(RouteRefresh::new(Afi::Ipv4, Safi::Unicast)),
        Message::RouteRefresh(RouteRefresh {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
            subtype: RouteRefresh::END_OF_RIB,
        }),
        Message::RouteRefreshUnknownFamily {
            afi: 25,
            safi: 70,
            subtype: 0,
        },
    ]
}

/// The IPv4-with-IPv6-next-hop sample needs RFC 8950.
fn codec_allows(message: &Message, codec: &Codec) -> bool {
    let ipv4_with_ipv6_next_hop = matches!(
        message,
        Message::Update(Update {
            mp_reach: Some(MpReach {
                afi: Afi::Ipv4,
                next_hop: std::net::IpAddr::V6(_),
                ..
            }),
            ..
        })
    );
    !ipv4_with_ipv6_next_hop || codec.extended_next_hop_ipv4
}

fn encoded_samples() -> Vec<(Vec<u8>, Codec)> {
    let mut samples = Vec::new();
    for codec in CODECS {
        for message in sample_messages() {
            if codec_allows(&message, &codec) {
                samples.push((message.encode(&codec).to_vec(), codec));
            }
        }
    }
    samples
}

#[test]
fn every_message_round_trips_with_every_codec() {
    for codec in CODECS {
        for message in sample_messages()
            .into_iter()
            .filter(|message| codec_allows(message, &codec))
        {
            let encoded = message.encode(&codec);
            assert_eq!(message_length(&encoded), Ok(Some(encoded.len())));
            let decoded = Message::decode(&encoded, &codec)
                .unwrap_or_else(|error| panic!("{message:?} with {codec:?}: {error}"));
            assert_eq!(decoded.update_error, None, "{message:?}");
            assert_eq!(decoded.message, message, "{codec:?}");
        }
    }
}

/// Decodes a stream of messages we encoded; each must decode without a session reset.
fn decode_stream(stream: &[u8], codec: &Codec) -> Vec<Message> {
    let mut messages = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let len = match message_length(rest) {
            Ok(Some(len)) if len <= rest.len() => len,
            other => panic!("our own encoding does not frame: {other:?} for {rest:02x?}"),
        };
        match Message::decode(&rest[..len], codec) {
            Ok(decoded) => messages.push(decoded.message),
            Err(error) => panic!(
                "our own encoding does not decode: {error} for {:02x?}",
                &rest[..len]
            ),
        }
        rest = &rest[len..];
    }
    messages
}

/// How a decode ended, to check that the random inputs reach every outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Outcome {
    SessionReset,
    Clean,
    TreatAsWithdraw,
    AttributeDiscard,
}

/// Decodes `bytes` (which must not panic) and, if that succeeds, checks that re-encoding
/// gives messages that decode, and that a second round changes nothing. (The first round may
/// normalise: drop unknown families, merge AS4_PATH, split mixed UPDATEs.)
fn check(bytes: &[u8], codec: &Codec) -> Outcome {
    let first = match Message::decode(bytes, codec) {
        Ok(first) => first,
        Err(_) => return Outcome::SessionReset,
    };
    let second = decode_stream(&first.message.encode(codec), codec);
    let third: Vec<Message> = second
        .iter()
        .flat_map(|message| decode_stream(&message.encode(codec), codec))
        .collect();
    assert_eq!(second, third, "re-encoding is not stable for {bytes:02x?}");
    match first.update_error {
        None => Outcome::Clean,
        Some(UpdateError::TreatAsWithdraw { .. }) => Outcome::TreatAsWithdraw,
        Some(UpdateError::AttributeDiscard { .. }) => Outcome::AttributeDiscard,
    }
}

fn with_length(mut message: Vec<u8>) -> Vec<u8> {
    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    message[16..18].copy_from_slice(&len.to_be_bytes());
    message
}

#[test]
fn every_truncation_of_valid_messages() {
    for (message, codec) in encoded_samples() {
        for len in 0..message.len() {
            let truncated = &message[..len];
            assert!(Message::decode(truncated, &codec).is_err());
            let _ = message_length(truncated);
            // Also with the length field telling the truth, so that the body decoders see
            // every short body.
            if len >= 19 {
                check(&with_length(truncated.to_vec()), &codec);
            }
        }
    }
}

#[test]
fn single_octet_mutations_of_valid_messages() {
    let mut rng = SmallRng::seed_from_u64(0x6267_7001);
    let samples = encoded_samples();
    // Every position with a few values...
    for (message, codec) in &samples {
        for position in 0..message.len() {
            for value in [0, 1, 0x7f, 0x80, 0xff, rng.random()] {
                let mut mutated = message.clone();
                mutated[position] = value;
                check(&mutated, codec);
            }
        }
    }
    // ...and random ones.
    for _ in 0..50_000 {
        let (message, codec) = &samples[rng.random_range(0..samples.len())];
        let mut mutated = message.clone();
        let position = rng.random_range(0..mutated.len());
        mutated[position] = rng.random();
        check(&mutated, codec);
    }
}

#[test]
fn random_bodies_behind_a_valid_header() {
    let mut rng = SmallRng::seed_from_u64(0x6267_7002);
    let mut outcomes = std::collections::HashMap::new();
    for _ in 0..200_000 {
        let message_type: u8 = match rng.random_range(0..20) {
            0 => rng.random(),
            1..=3 => 1,
            4..=13 => 2,
            14..=15 => 3,
            16 => 4,
            _ => 5,
        };
        let body = match (message_type, rng.random_range(0..10)) {
            (2, 0..=6) => random_update_body(&mut rng),
            (1, 0..=5) => random_open_body(&mut rng),
            _ => random_bytes(&mut rng),
        };
        let mut message = vec![0xff; 16];
        let len = (19 + body.len()).min(MAX_MESSAGE_LEN);
        message.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        message.push(message_type);
        message.extend_from_slice(&body[..len - 19]);
        let codec = CODECS[rng.random_range(0..CODECS.len())];
        let outcome = check(&message, &codec);
        let known_type = MessageType::from_u8(message_type).map_or(0, |known| known as u8);
        *outcomes.entry((known_type, outcome)).or_insert(0) += 1;
    }
    // The structured bodies must get deep enough, often enough, to exercise every outcome.
    let count =
        |message_type, outcome| outcomes.get(&(message_type, outcome)).copied().unwrap_or(0);
    for outcome in [
        Outcome::Clean,
        Outcome::TreatAsWithdraw,
        Outcome::AttributeDiscard,
        Outcome::SessionReset,
    ] {
        assert!(count(2, outcome) > 1000, "UPDATE {outcome:?}: {outcomes:?}");
    }
    assert!(count(1, Outcome::Clean) > 1000, "OPEN: {outcomes:?}");
}

fn random_bytes(rng: &mut SmallRng) -> Vec<u8> {
    let len = if rng.random_bool(0.9) {
        rng.random_range(0..64)
    } else {
        rng.random_range(0..MAX_MESSAGE_LEN)
    };
    (0..len).map(|_| rng.random()).collect()
}

fn pick<T: Copy>(rng: &mut SmallRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// Prefixes, mostly well-formed, for a family whose longest prefix is `max_len`.
fn random_prefixes(rng: &mut SmallRng, max_len: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..rng.random_range(0..4) {
        let len: u8 = if rng.random_bool(0.95) {
            rng.random_range(0..=max_len)
        } else {
            rng.random()
        };
        bytes.push(len);
        let octets = usize::from(len).div_ceil(8);
        let octets = if rng.random_bool(0.95) {
            octets
        } else {
            rng.random_range(0..=octets)
        };
        bytes.extend((0..octets).map(|_| rng.random::<u8>()));
    }
    bytes
}

fn random_as_path(rng: &mut SmallRng, asn_len: usize) -> Vec<u8> {
    let mut value = Vec::new();
    for _ in 0..rng.random_range(0..3) {
        let kind = if rng.random_bool(0.95) {
            rng.random_range(1..=4)
        } else {
            rng.random()
        };
        let count: u8 = rng.random_range(0..5);
        value.push(kind);
        value.push(count);
        for _ in 0..usize::from(count) * asn_len {
            value.push(rng.random());
        }
    }
    value
}

fn random_attribute_value(rng: &mut SmallRng, code: u8) -> Vec<u8> {
    match code {
        type_code::AS_PATH => {
            let asn_len = pick(rng, &[2, 4]);
            random_as_path(rng, asn_len)
        }
        type_code::AS4_PATH => random_as_path(rng, 4),
        type_code::MP_REACH_NLRI => {
            let afi: u16 = pick(rng, &[1, 2, 1, 2, 25]);
            let next_hop_len: u8 = pick(rng, &[4, 16, 32, 16, 0, 5]);
            let mut value = afi.to_be_bytes().to_vec();
            value.push(pick(rng, &[1, 1, 1, 128]));
            value.push(next_hop_len);
            let mut next_hop: Vec<u8> = (0..next_hop_len).map(|_| rng.random()).collect();
            if next_hop_len == 32 {
                next_hop[16..18].copy_from_slice(&[0xfe, 0x80]);
            }
            value.extend(next_hop);
            value.push(0);
            value.extend(random_prefixes(rng, if afi == 1 { 32 } else { 128 }));
            value
        }
        type_code::MP_UNREACH_NLRI => {
            let afi: u16 = pick(rng, &[1, 2, 2, 25]);
            let mut value = afi.to_be_bytes().to_vec();
            value.push(pick(rng, &[1, 1, 128]));
            value.extend(random_prefixes(rng, if afi == 1 { 32 } else { 128 }));
            value
        }
        type_code::ORIGIN => vec![rng.random_range(0..4)],
        _ => {
            let any_len = rng.random_range(0..300);
            let len = pick(rng, &[0, 1, 4, 4, 6, 8, 8, 12, 24, any_len]);
            (0..len).map(|_| rng.random()).collect()
        }
    }
}

/// An UPDATE body whose structure is mostly right, so that decoding gets deep.
fn random_update_body(rng: &mut SmallRng) -> Vec<u8> {
    let withdrawn = if rng.random_bool(0.3) {
        random_prefixes(rng, 32)
    } else {
        Vec::new()
    };
    let mut attributes = Vec::new();
    let codes = [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32, 35, 0, 255,
    ];
    for _ in 0..rng.random_range(0..8) {
        let code: u8 = if rng.random_bool(0.9) {
            pick(rng, &codes)
        } else {
            rng.random()
        };
        let category = match code {
            1 | 2 | 3 | 5 | 6 => flag::WELL_KNOWN,
            4 | 9 | 10 | 14 | 15 => flag::OPTIONAL_NON_TRANSITIVE,
            _ => flag::OPTIONAL_TRANSITIVE,
        };
        let flags = if rng.random_bool(0.8) {
            category
        } else {
            rng.random::<u8>() & 0xf0
        };
        let value = random_attribute_value(rng, code);
        let extended = flags & flag::EXTENDED_LENGTH != 0 || value.len() > 255;
        attributes.push(if extended {
            flags | flag::EXTENDED_LENGTH
        } else {
            flags
        });
        attributes.push(code);
        let len = if rng.random_bool(0.95) {
            value.len()
        } else {
            rng.random_range(0..300)
        };
        if extended {
            attributes.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        } else {
            attributes.push(len as u8);
        }
        attributes.extend(value);
    }
    if rng.random_bool(0.05) {
        attributes.truncate(rng.random_range(0..=attributes.len()));
    }
    let nlri = if rng.random_bool(0.6) {
        random_prefixes(rng, 32)
    } else {
        Vec::new()
    };

    let mut withdrawn_len = withdrawn.len();
    let mut attributes_len = attributes.len();
    if rng.random_bool(0.05) {
        withdrawn_len = rng.random_range(0..64);
    }
    if rng.random_bool(0.05) {
        attributes_len = rng.random_range(0..512);
    }
    let mut body = Vec::new();
    body.extend_from_slice(&u16::try_from(withdrawn_len).unwrap().to_be_bytes());
    body.extend(withdrawn);
    body.extend_from_slice(&u16::try_from(attributes_len).unwrap().to_be_bytes());
    body.extend(attributes);
    body.extend(nlri);
    body
}

/// An OPEN body whose structure is mostly right.
fn random_open_body(rng: &mut SmallRng) -> Vec<u8> {
    let mut body = vec![pick(rng, &[4, 4, 4, 3])];
    body.extend_from_slice(&pick(rng, &[65001u16, 23456, 0]).to_be_bytes());
    body.extend_from_slice(&pick(rng, &[0u16, 1, 3, 90, 180]).to_be_bytes());
    body.extend_from_slice(&pick(rng, &[[10, 0, 0, 1], [0, 0, 0, 0]]));
    let mut capabilities = Vec::new();
    for _ in 0..rng.random_range(0..6) {
        let (any_code, any_len) = (rng.random(), rng.random_range(0..20));
        let code = pick(rng, &[1, 2, 5, 64, 65, 69, 70, 73, 128, any_code]);
        let len = pick(rng, &[0, 4, 6, 12, any_len]);
        capabilities.push(code);
        capabilities.push(len);
        capabilities.extend((0..len).map(|_| rng.random_range(0..3u8)));
    }
    let extended = rng.random_bool(0.1);
    if extended {
        body.extend_from_slice(&[255, 255]);
        body.extend_from_slice(&u16::try_from(capabilities.len() + 3).unwrap().to_be_bytes());
        body.push(pick(rng, &[2, 2, 1]));
        body.extend_from_slice(&u16::try_from(capabilities.len()).unwrap().to_be_bytes());
    } else {
        let capabilities_len = u8::try_from(capabilities.len()).unwrap_or(u8::MAX);
        body.push(capabilities_len.saturating_add(2));
        body.push(pick(rng, &[2, 2, 2, 1]));
        body.push(capabilities_len);
    }
    body.extend(capabilities);
    if rng.random_bool(0.05) {
        body.truncate(rng.random_range(0..=body.len()));
    }
    body
}

#[test]
fn random_addresses_are_not_special() {
    // A guard for the generators above: IPv6 link-local next hops are what they look like.
    let link_local: Ipv6Addr = "fe80::1".parse().unwrap();
    assert!(link_local.is_unicast_link_local());
}
