//! RFC 7606 error handling: session reset, treat-as-withdraw, attribute discard.

use super::*;

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
