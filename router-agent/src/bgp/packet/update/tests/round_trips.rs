//! Golden bytes, round trips of every attribute and family, End-of-RIB markers.

use super::*;

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

// End-of-RIB.

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
