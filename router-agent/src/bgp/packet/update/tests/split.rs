//! Splitting routes into messages of at most 4096 octets.

use super::*;

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
