use super::super::types::AsSegmentKind;
use super::as_path::merge_as4_path;
use super::*;

const TWO_OCTET: Codec = Codec {
    four_octet_as: false,
    extended_next_hop_ipv4: false,
};
const FOUR_OCTET: Codec = Codec {
    four_octet_as: true,
    extended_next_hop_ipv4: false,
};

fn sequence(asns: &[u32]) -> AsSegment {
    AsSegment {
        kind: AsSegmentKind::Sequence,
        asns: asns.to_vec(),
    }
}

fn segment(kind: AsSegmentKind, asns: &[u32]) -> AsSegment {
    AsSegment {
        kind,
        asns: asns.to_vec(),
    }
}

fn decode(field: &[u8], codec: &Codec) -> (DecodedAttributes, Option<super::super::UpdateError>) {
    let mut problems = UpdateProblems::default();
    let decoded = decode_attributes(field, codec, &mut problems).unwrap();
    (decoded, problems.into_outcome())
}

/// Every attribute we implement, with values that exercise their encodings.
pub(crate) fn all_attributes() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Incomplete),
        as_path: AsPath {
            segments: vec![
                segment(AsSegmentKind::ConfedSequence, &[64512, 64513]),
                sequence(&[65001, 4_200_000_000, 65002]),
                segment(AsSegmentKind::Set, &[65010, 65011, 70000]),
            ],
        },
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        med: Some(50),
        local_pref: Some(200),
        atomic_aggregate: true,
        aggregator: Some((4_200_000_001, Ipv4Addr::new(10, 0, 0, 9))),
        communities: vec![0xfde9_0064, 0xffff_ff01],
        extended_communities: vec![[0x00, 0x02, 0xfd, 0xe9, 0, 0, 0, 100]],
        large_communities: vec![[4_200_000_000, 1, 2], [65001, 0, 0]],
        originator_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)],
        unknown: vec![RawAttribute {
            flags: flag::OPTIONAL_TRANSITIVE | flag::PARTIAL,
            type_code: 35, // OTC (RFC 9234), which we do not implement
            value: vec![0, 0, 0xfd, 0xe9],
        }],
    }
}

#[test]
fn every_attribute_round_trips_with_both_as_widths() {
    for codec in [TWO_OCTET, FOUR_OCTET] {
        let attributes = all_attributes();
        let field = encode_attributes(&attributes, &codec, true).unwrap();
        let (decoded, outcome) = decode(&field, &codec);
        assert_eq!(outcome, None, "{codec:?}");
        assert_eq!(decoded.attributes, attributes, "{codec:?}");
    }
}

#[test]
fn attributes_are_encoded_in_type_code_order() {
    let field = encode_attributes(&all_attributes(), &TWO_OCTET, true).unwrap();
    let mut reader = Reader::new(&field);
    let mut codes = Vec::new();
    while let (Some(flags), Some(code)) = (reader.u8(), reader.u8()) {
        let len = if flags & flag::EXTENDED_LENGTH != 0 {
            reader.u16().unwrap()
        } else {
            u16::from(reader.u8().unwrap())
        };
        reader.take(usize::from(len)).unwrap();
        codes.push(code);
    }
    assert_eq!(codes, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 17, 18, 32, 35]);
}

#[test]
fn two_octet_session_carries_as_trans_and_as4_attributes() {
    let attributes = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath {
            segments: vec![sequence(&[65001, 70000])],
        },
        aggregator: Some((70000, Ipv4Addr::new(10, 0, 0, 9))),
        ..Default::default()
    };
    let field = encode_attributes(&attributes, &TWO_OCTET, false).unwrap();
    #[rustfmt::skip]
    let expected = [
        0x40, 1, 1, 0, // ORIGIN IGP
        0x40, 2, 6, 2, 2, 0xfd, 0xe9, 0x5b, 0xa0, // AS_PATH 65001 AS_TRANS
        0xc0, 7, 6, 0x5b, 0xa0, 10, 0, 0, 9, // AGGREGATOR AS_TRANS 10.0.0.9
        0xc0, 17, 10, 2, 2, 0, 0, 0xfd, 0xe9, 0, 1, 0x11, 0x70, // AS4_PATH 65001 70000
        0xc0, 18, 8, 0, 1, 0x11, 0x70, 10, 0, 0, 9, // AS4_AGGREGATOR 70000 10.0.0.9
    ];
    assert_eq!(&field[..], expected);
    assert_eq!(decode(&field, &TWO_OCTET).0.attributes, attributes);
}

#[test]
fn no_as4_attributes_when_every_asn_fits_in_two_octets() {
    let attributes = PathAttributes {
        as_path: AsPath {
            segments: vec![sequence(&[65001, 65002])],
        },
        aggregator: Some((65001, Ipv4Addr::new(10, 0, 0, 9))),
        ..Default::default()
    };
    let field = encode_attributes(&attributes, &TWO_OCTET, false).unwrap();
    let (decoded, _) = decode(&field, &TWO_OCTET);
    assert!(!decoded.present.contains(type_code::AS4_PATH));
    assert!(!decoded.present.contains(type_code::AS4_AGGREGATOR));
    assert_eq!(decoded.attributes, attributes);
}

#[test]
fn as4_path_merge_takes_leading_asns_prepended_by_two_octet_speakers() {
    // A path 70000 80000 that then crossed two-octet speakers 65002 and 65001, which
    // prepended themselves to AS_PATH only.
    let as_path = AsPath {
        segments: vec![sequence(&[65001, 65002, 23456, 23456])],
    };
    let merged = merge_as4_path(&as_path, vec![sequence(&[70000, 80000])]);
    assert_eq!(
        merged.segments,
        vec![sequence(&[65001, 65002, 70000, 80000])]
    );
}

#[test]
fn as4_path_longer_than_as_path_is_ignored() {
    let as_path = AsPath {
        segments: vec![sequence(&[65001, 23456])],
    };
    let merged = merge_as4_path(&as_path, vec![sequence(&[70000, 80000, 90000])]);
    assert_eq!(merged, as_path);
}

#[test]
fn as4_path_merge_counts_sets_as_one_and_keeps_leading_confederation_segments() {
    let as_path = AsPath {
        segments: vec![
            segment(AsSegmentKind::ConfedSequence, &[64512]),
            sequence(&[65001]),
            segment(AsSegmentKind::ConfedSet, &[64513]),
            sequence(&[23456]),
            segment(AsSegmentKind::Set, &[23456, 65005]),
        ],
    };
    let as4_path = vec![
        sequence(&[70000]),
        segment(AsSegmentKind::Set, &[70001, 65005]),
    ];
    assert_eq!(
        merge_as4_path(&as_path, as4_path).segments,
        vec![
            segment(AsSegmentKind::ConfedSequence, &[64512]),
            sequence(&[65001]),
            segment(AsSegmentKind::ConfedSet, &[64513]),
            sequence(&[70000]),
            segment(AsSegmentKind::Set, &[70001, 65005]),
        ]
    );
}

/// AS_PATH (two-octet ASNs) then AS4_PATH and AGGREGATOR/AS4_AGGREGATOR as given.
fn two_octet_field(aggregator_as: Option<u16>, as4_aggregator_as: Option<u32>) -> Vec<u8> {
    let mut field = vec![0x40, 2, 6, 2, 2, 0xfd, 0xe9, 0x5b, 0xa0]; // 65001 AS_TRANS
    field.extend_from_slice(&[0xc0, 17, 6, 2, 1, 0, 1, 0x11, 0x70]); // AS4_PATH 70000
    if let Some(asn) = aggregator_as {
        field.extend_from_slice(&[0xc0, 7, 6]);
        field.extend_from_slice(&asn.to_be_bytes());
        field.extend_from_slice(&[10, 0, 0, 1]);
    }
    if let Some(asn) = as4_aggregator_as {
        field.extend_from_slice(&[0xc0, 18, 8]);
        field.extend_from_slice(&asn.to_be_bytes());
        field.extend_from_slice(&[10, 0, 0, 2]);
    }
    field
}

#[test]
fn aggregator_decides_whether_as4_attributes_are_used() {
    // AGGREGATOR is AS_TRANS: AS4_AGGREGATOR and AS4_PATH are the truth.
    let (decoded, _) = decode(&two_octet_field(Some(23456), Some(70000)), &TWO_OCTET);
    assert_eq!(
        decoded.attributes.aggregator,
        Some((70000, Ipv4Addr::new(10, 0, 0, 2)))
    );
    assert_eq!(
        decoded.attributes.as_path.segments,
        vec![sequence(&[65001, 70000])]
    );

    // A real two-octet aggregator: the AS4_* attributes predate it and are ignored.
    let (decoded, _) = decode(&two_octet_field(Some(65009), Some(70000)), &TWO_OCTET);
    assert_eq!(
        decoded.attributes.aggregator,
        Some((65009, Ipv4Addr::new(10, 0, 0, 1)))
    );
    assert_eq!(
        decoded.attributes.as_path.segments,
        vec![sequence(&[65001, 23456])]
    );

    // No aggregation at all: AS4_PATH is used.
    let (decoded, _) = decode(&two_octet_field(None, None), &TWO_OCTET);
    assert_eq!(
        decoded.attributes.as_path.segments,
        vec![sequence(&[65001, 70000])]
    );

    // A lone AS4_AGGREGATOR is dropped.
    let (decoded, _) = decode(&two_octet_field(None, Some(70000)), &TWO_OCTET);
    assert_eq!(decoded.attributes.aggregator, None);
}

#[test]
fn confederation_segments_in_as4_path_are_dropped() {
    let mut field = vec![0x40, 2, 6, 2, 2, 0xfd, 0xe9, 0x5b, 0xa0];
    // AS4_PATH: CONFED_SEQUENCE 64512, SEQUENCE 70000.
    field.extend_from_slice(&[0xc0, 17, 12, 3, 1, 0, 0, 0xfc, 0, 2, 1, 0, 1, 0x11, 0x70]);
    let (decoded, outcome) = decode(&field, &TWO_OCTET);
    assert_eq!(
        decoded.attributes.as_path.segments,
        vec![sequence(&[65001, 70000])]
    );
    assert!(matches!(
        outcome,
        Some(super::super::UpdateError::AttributeDiscard { .. })
    ));
}

#[test]
fn long_segments_are_split_and_long_values_use_extended_length() {
    let asns: Vec<u32> = (1..=600).collect();
    let attributes = PathAttributes {
        as_path: AsPath {
            segments: vec![sequence(&asns)],
        },
        ..Default::default()
    };
    let field = encode_attributes(&attributes, &FOUR_OCTET, false).unwrap();
    assert_eq!(field[0], flag::TRANSITIVE | flag::EXTENDED_LENGTH);
    let (decoded, _) = decode(&field, &FOUR_OCTET);
    let segments = &decoded.attributes.as_path.segments;
    assert_eq!(
        segments
            .iter()
            .map(|segment| segment.asns.len())
            .collect::<Vec<_>>(),
        [255, 255, 90]
    );
    assert_eq!(decoded.attributes.as_path.length(), 600);
}

#[test]
fn unknown_attributes_are_kept_only_when_optional_transitive() {
    let field = [
        0xc0, 99, 2, 0xaa, 0xbb, // optional transitive: kept, Partial set
        0x80, 98, 1, 0xcc, // optional non-transitive: quietly ignored
        0xf0, 97, 0, 1, 0xdd, // extended length, already Partial
    ];
    let (decoded, outcome) = decode(&field, &FOUR_OCTET);
    assert_eq!(outcome, None);
    assert_eq!(
        decoded.attributes.unknown,
        vec![
            RawAttribute {
                flags: 0xe0,
                type_code: 99,
                value: vec![0xaa, 0xbb]
            },
            RawAttribute {
                flags: 0xe0,
                type_code: 97,
                value: vec![0xdd]
            },
        ]
    );
}

#[test]
fn unknown_well_known_attributes_and_duplicate_codes_are_not_encoded() {
    let attributes = PathAttributes {
        unknown: vec![
            RawAttribute {
                flags: flag::WELL_KNOWN,
                type_code: 99,
                value: vec![],
            },
            RawAttribute {
                flags: flag::OPTIONAL_TRANSITIVE,
                type_code: type_code::COMMUNITIES,
                value: vec![0; 4],
            },
        ],
        ..Default::default()
    };
    let field = encode_attributes(&attributes, &FOUR_OCTET, false).unwrap();
    assert_eq!(&field[..], [0x40, 2, 0]); // the empty AS_PATH alone
}
