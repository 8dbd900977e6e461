//! Golden messages: real OPENs, UPDATEs, NOTIFICATIONs, ROUTE-REFRESHes and KEEPALIVEs of
//! FRR 8.4, BIRD 2.0, GoBGP 3.10 and ExaBGP 4.2, recorded by `scripts/capture-bgp-golden`
//! (lab, configs and versions there; each file in `testdata/` says who sent it to whom).
//!
//! Each message must decode to what its sender meant (capabilities, AS numbers, prefixes,
//! next hops, attributes), and encode back to the same octets where our encoder writes the
//! sender's canonical form; where it legitimately writes another form, decoding our encoding
//! must give the same message (the reason is next to each such case).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

use super::attribute::flag;
use super::types::{
    AsPath, AsSegment, AsSegmentKind, MpUnreach, Origin, PathAttributes, RawAttribute,
};
use super::*;

/// Every file of testdata/, by name (a test checks that none is left out).
const GOLDEN: &[(&str, &str)] = &[
    ("eor_bird_ipv6", include_str!("testdata/eor_bird_ipv6.hex")),
    ("eor_frr_ipv4", include_str!("testdata/eor_frr_ipv4.hex")),
    ("eor_frr_ipv6", include_str!("testdata/eor_frr_ipv6.hex")),
    (
        "eor_gobgp_ipv4",
        include_str!("testdata/eor_gobgp_ipv4.hex"),
    ),
    ("keepalive_frr", include_str!("testdata/keepalive_frr.hex")),
    (
        "notification_frr_shutdown",
        include_str!("testdata/notification_frr_shutdown.hex"),
    ),
    ("open_bird", include_str!("testdata/open_bird.hex")),
    ("open_exabgp", include_str!("testdata/open_exabgp.hex")),
    ("open_frr", include_str!("testdata/open_frr.hex")),
    ("open_gobgp", include_str!("testdata/open_gobgp.hex")),
    (
        "route_refresh_bird_borr",
        include_str!("testdata/route_refresh_bird_borr.hex"),
    ),
    (
        "route_refresh_bird_eorr",
        include_str!("testdata/route_refresh_bird_eorr.hex"),
    ),
    (
        "route_refresh_frr",
        include_str!("testdata/route_refresh_frr.hex"),
    ),
    (
        "update_bird_ipv4_communities",
        include_str!("testdata/update_bird_ipv4_communities.hex"),
    ),
    (
        "update_bird_ipv6_link_local",
        include_str!("testdata/update_bird_ipv6_link_local.hex"),
    ),
    (
        "update_exabgp_as_set",
        include_str!("testdata/update_exabgp_as_set.hex"),
    ),
    (
        "update_exabgp_unknown_attribute",
        include_str!("testdata/update_exabgp_unknown_attribute.hex"),
    ),
    (
        "update_frr_as4_path",
        include_str!("testdata/update_frr_as4_path.hex"),
    ),
    (
        "update_frr_ipv4_communities",
        include_str!("testdata/update_frr_ipv4_communities.hex"),
    ),
    (
        "update_frr_ipv4_ipv6_next_hop",
        include_str!("testdata/update_frr_ipv4_ipv6_next_hop.hex"),
    ),
    (
        "update_frr_ipv4_mp_unreach",
        include_str!("testdata/update_frr_ipv4_mp_unreach.hex"),
    ),
    (
        "update_frr_ipv4_partial_unknown",
        include_str!("testdata/update_frr_ipv4_partial_unknown.hex"),
    ),
    (
        "update_frr_ipv4_withdraw",
        include_str!("testdata/update_frr_ipv4_withdraw.hex"),
    ),
    (
        "update_frr_ipv6_link_local",
        include_str!("testdata/update_frr_ipv6_link_local.hex"),
    ),
    (
        "update_frr_ipv6_withdraw",
        include_str!("testdata/update_frr_ipv6_withdraw.hex"),
    ),
    (
        "update_gobgp_ipv4",
        include_str!("testdata/update_gobgp_ipv4.hex"),
    ),
];

/// The octets of a golden file: hex pairs, `#` lines are notes.
fn golden(name: &str) -> Vec<u8> {
    let (_, text) = GOLDEN
        .iter()
        .find(|(file, _)| *file == name)
        .unwrap_or_else(|| panic!("no golden file {name}"));
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|pair| u8::from_str_radix(pair, 16).unwrap_or_else(|e| panic!("{name}: {pair}: {e}")))
        .collect()
}

/// The golden message decoded with `codec`, without an UPDATE error.
fn decode(name: &str, codec: &Codec) -> Message {
    let bytes = golden(name);
    let decoded = Message::decode(&bytes, codec).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_eq!(decoded.update_error, None, "{name}");
    decoded.message
}

/// Our encoding is the captured octets.
fn assert_encodes_as_captured(name: &str, message: &Message, codec: &Codec) {
    assert_eq!(
        message.encode(codec)[..],
        golden(name)[..],
        "{name}: our encoding differs from the capture"
    );
}

/// Our encoding differs from the captured octets (the caller says why) but decodes to the
/// same message.
fn assert_encodes_equivalently(name: &str, message: &Message, codec: &Codec) {
    let ours = message.encode(codec);
    assert_ne!(ours[..], golden(name)[..], "{name}: now byte for byte");
    let again = Message::decode(&ours, codec).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_eq!(again.update_error, None, "{name}");
    assert_eq!(&again.message, message, "{name}: decode(encode(x)) != x");
}

fn open(name: &str) -> Open {
    match decode(name, &Codec::default()) {
        Message::Open(open) => open,
        other => panic!("{name}: {other:?}"),
    }
}

fn update(name: &str, codec: &Codec) -> Update {
    match decode(name, codec) {
        Message::Update(update) => update,
        other => panic!("{name}: {other:?}"),
    }
}

fn net4(text: &str) -> Ipv4Net {
    text.parse().unwrap()
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn sequence(asns: &[u32]) -> AsSegment {
    AsSegment {
        kind: AsSegmentKind::Sequence,
        asns: asns.to_vec(),
    }
}

fn community(asn: u16, value: u16) -> u32 {
    (u32::from(asn) << 16) | u32::from(value)
}

const V4: (Afi, Safi) = (Afi::Ipv4, Safi::Unicast);
const V6: (Afi, Safi) = (Afi::Ipv6, Safi::Unicast);
const FRR_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x1201);
const BIRD_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x1202);

/// FRR <-> BIRD over IPv6: both sent the extended next hop capability for IPv4.
fn frr_bird_ipv6_session() -> Codec {
    Codec::negotiated(&open("open_frr"), &open("open_bird"))
}

/// FRR <-> ExaBGP: ExaBGP has no four-octet AS capability.
fn frr_exabgp_session() -> Codec {
    Codec::negotiated(&open("open_frr"), &open("open_exabgp"))
}

#[test]
fn every_golden_file_is_tested() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bgp/packet/testdata");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|file| file.strip_suffix(".hex").map(str::to_owned))
        .collect();
    files.sort();
    let listed: Vec<&str> = GOLDEN.iter().map(|(name, _)| *name).collect();
    assert_eq!(files, listed);
}

#[test]
fn negotiated_codecs_of_the_captured_sessions() {
    assert_eq!(
        frr_bird_ipv6_session(),
        Codec {
            four_octet_as: true,
            extended_next_hop_ipv4: true
        }
    );
    assert_eq!(frr_exabgp_session(), Codec::default());
    assert_eq!(
        Codec::negotiated(&open("open_frr"), &open("open_gobgp")),
        Codec {
            four_octet_as: true,
            extended_next_hop_ipv4: true
        }
    );
}

// ---- OPEN ---------------------------------------------------------------------------------

#[test]
fn frr_open() {
    let open = open("open_frr");
    assert_eq!(
        (open.version, open.my_as, open.hold_time, open.router_id),
        (4, 65001, 180, Ipv4Addr::new(10, 0, 0, 1))
    );
    assert_eq!(open.multiprotocol().collect::<Vec<_>>(), [V4, V6]);
    assert!(open.route_refresh());
    assert_eq!(open.four_octet_as(), Some(65001));
    assert!(open.extended_next_hop(Afi::Ipv4, Safi::Unicast, Afi::Ipv6));
    let codes: Vec<u8> = open.capabilities.iter().map(Capability::code).collect();
    // MP IPv4, extended next hop, MP IPv6, Cisco route refresh, route refresh, enhanced route
    // refresh, 4-octet AS, extended message, ADD-PATH, FQDN, graceful restart, LLGR.
    assert_eq!(codes, [1, 5, 1, 128, 2, 70, 65, 6, 69, 73, 64, 71]);
    assert!(
        open.capabilities
            .contains(&Capability::EnhancedRouteRefresh)
    );
    // RFC 5492 3: capabilities we do not implement are kept, value and all.
    let unknown = |code: u8| {
        open.capabilities
            .iter()
            .find_map(|capability| match capability {
                Capability::Unknown { code: c, value } if *c == code => Some(value.clone()),
                _ => None,
            })
    };
    // ADD-PATH: receive (1) for IPv4 and IPv6 unicast.
    assert_eq!(unknown(69).unwrap(), [0, 1, 1, 1, 0, 2, 1, 1]);
    // FQDN: host name "capfrr", no domain name.
    assert_eq!(unknown(73).unwrap(), b"\x06capfrr\x00");
    assert_eq!(unknown(6).unwrap(), b"");
    assert_eq!(unknown(128).unwrap(), b"");
    // Graceful restart: restart and notification flags, 120 s, IPv4 and IPv6 unicast.
    assert!(
        open.capabilities.contains(&Capability::GracefulRestart(
            crate::bgp::graceful_restart::GracefulRestartCapability::decode(&[
                0xc0, 0x78, 0, 1, 1, 0, 0, 2, 1, 0
            ])
            .expect("well-formed")
        ))
    );
    // FRR sends one optional parameter per capability, we one for all (RFC 5492 4 allows
    // both).
    assert_encodes_equivalently("open_frr", &Message::Open(open), &Codec::default());
}

#[test]
fn bird_open() {
    let open = open("open_bird");
    assert_eq!(
        (open.my_as, open.hold_time, open.router_id),
        (65002, 240, Ipv4Addr::new(10, 0, 0, 2))
    );
    assert_eq!(
        open.capabilities,
        [
            Capability::Multiprotocol {
                afi: Afi::Ipv4,
                safi: Safi::Unicast
            },
            Capability::Multiprotocol {
                afi: Afi::Ipv6,
                safi: Safi::Unicast
            },
            Capability::RouteRefresh,
            Capability::ExtendedNextHop(vec![(Afi::Ipv4, Safi::Unicast, Afi::Ipv6)]),
            // Restart time 120 s, no family preserved.
            Capability::GracefulRestart(
                crate::bgp::graceful_restart::GracefulRestartCapability::decode(&[0x00, 0x78])
                    .expect("well-formed")
            ),
            Capability::FourOctetAs(65002),
            Capability::EnhancedRouteRefresh,
            Capability::Unknown {
                code: 71,
                value: Vec::new()
            },
        ]
    );
    // BIRD, like us, puts every capability in one optional parameter.
    assert_encodes_as_captured("open_bird", &Message::Open(open), &Codec::default());
}

#[test]
fn gobgp_open_from_a_four_octet_as() {
    let open = open("open_gobgp");
    // My Autonomous System is AS_TRANS on the wire; the capability gives the real AS.
    assert_eq!(golden("open_gobgp")[20..22], [0x5b, 0xa0]);
    assert_eq!(
        (open.my_as, open.hold_time, open.router_id),
        (4_200_000_003, 90, Ipv4Addr::new(10, 0, 0, 3))
    );
    assert_eq!(open.four_octet_as(), Some(4_200_000_003));
    assert_eq!(open.multiprotocol().collect::<Vec<_>>(), [V4]);
    assert!(open.extended_next_hop(Afi::Ipv4, Safi::Unicast, Afi::Ipv6));
    assert!(
        open.capabilities.contains(&Capability::GracefulRestart(
            crate::bgp::graceful_restart::GracefulRestartCapability::decode(&[0, 90, 0, 1, 1, 0])
                .expect("well-formed")
        ))
    );
    assert!(open.route_refresh());
    // FQDN next: the host name of the machine that made the capture, kept opaque.
    assert!(matches!(
        &open.capabilities[1],
        Capability::Unknown { code: 73, .. }
    ));
    // One parameter for all, capabilities in order, AS_TRANS for a four-octet AS: GoBGP's
    // form is ours.
    assert_encodes_as_captured("open_gobgp", &Message::Open(open), &Codec::default());
}

#[test]
fn exabgp_open_without_four_octet_as() {
    let open = open("open_exabgp");
    assert_eq!(
        (open.my_as, open.hold_time, open.router_id),
        (65004, 30, Ipv4Addr::new(10, 0, 0, 4))
    );
    assert_eq!(open.four_octet_as(), None);
    assert!(open.route_refresh());
    assert!(
        open.capabilities
            .contains(&Capability::EnhancedRouteRefresh)
    );
    // Graceful restart: the restart flag (it "restarted"), 120 s, IPv4 forwarding preserved.
    assert!(
        open.capabilities.contains(&Capability::GracefulRestart(
            crate::bgp::graceful_restart::GracefulRestartCapability::decode(&[
                0x80, 0x78, 0, 1, 1, 0x80
            ])
            .expect("well-formed")
        ))
    );
    // ADD-PATH receive for IPv4 unicast, kept opaque.
    assert!(open.capabilities.contains(&Capability::Unknown {
        code: 69,
        value: vec![0, 1, 1, 1]
    }));
    // One parameter per capability on the wire.
    assert_encodes_equivalently("open_exabgp", &Message::Open(open), &Codec::default());
}

// ---- UPDATE -------------------------------------------------------------------------------

#[test]
fn frr_ipv4_route_with_communities_and_large_communities() {
    let codec = Codec::FOUR_OCTET_AS;
    let update = update("update_frr_ipv4_communities", &codec);
    assert_eq!(update.nlri, [net4("10.10.0.0/16")]);
    assert!(update.withdrawn.is_empty() && update.mp_reach.is_none());
    let attributes = &update.attributes;
    assert_eq!(attributes.origin, Some(Origin::Igp));
    assert_eq!(attributes.as_path.segments, [sequence(&[65001])]);
    assert_eq!(attributes.next_hop, Some(Ipv4Addr::new(10, 0, 12, 1)));
    assert_eq!(attributes.med, Some(0));
    assert_eq!(
        attributes.communities,
        [community(65001, 100), community(65001, 200)]
    );
    assert_eq!(attributes.large_communities, [[65001, 1, 2], [65001, 3, 4]]);
    assert!(attributes.unknown.is_empty());
    // FRR writes AS_PATH with the extended length flag (0x50) although it is short; we use
    // the one-octet length.
    assert_encodes_equivalently(
        "update_frr_ipv4_communities",
        &Message::Update(update),
        &codec,
    );
}

#[test]
fn bird_ipv4_route_with_communities_and_large_communities() {
    let codec = Codec::FOUR_OCTET_AS;
    let update = update("update_bird_ipv4_communities", &codec);
    assert_eq!(update.nlri, [net4("10.21.0.0/24")]);
    let attributes = &update.attributes;
    assert_eq!(attributes.as_path.segments, [sequence(&[65002])]);
    assert_eq!(attributes.next_hop, Some(Ipv4Addr::new(10, 0, 12, 2)));
    assert_eq!(attributes.med, None);
    assert_eq!(attributes.communities, [community(65002, 7)]);
    assert_eq!(attributes.large_communities, [[65002, 8, 9]]);
    assert_encodes_as_captured(
        "update_bird_ipv4_communities",
        &Message::Update(update),
        &codec,
    );
}

#[test]
fn gobgp_ipv4_route_from_a_four_octet_as() {
    let codec = Codec::FOUR_OCTET_AS;
    let update = update("update_gobgp_ipv4", &codec);
    assert_eq!(update.nlri, [net4("10.30.0.0/24")]);
    let attributes = &update.attributes;
    // Injected with the gobgp CLI: origin incomplete.
    assert_eq!(attributes.origin, Some(Origin::Incomplete));
    assert_eq!(attributes.as_path.segments, [sequence(&[4_200_000_003])]);
    assert_eq!(attributes.next_hop, Some(Ipv4Addr::new(10, 0, 13, 2)));
    assert_eq!(attributes.communities, [community(4200, 3)]);
    assert_eq!(attributes.large_communities, [[4_200_000_003, 1, 1]]);
    assert_encodes_as_captured("update_gobgp_ipv4", &Message::Update(update), &codec);
}

#[test]
fn frr_ipv6_route_with_global_and_link_local_next_hops() {
    let codec = frr_bird_ipv6_session();
    let update = update("update_frr_ipv6_link_local", &codec);
    assert!(update.nlri.is_empty());
    let reach = update.mp_reach.as_ref().unwrap();
    assert_eq!((reach.afi, reach.safi), V6);
    assert_eq!(reach.next_hop, "2001:db8:12::1".parse::<IpAddr>().unwrap());
    assert_eq!(reach.link_local_next_hop, Some(FRR_LINK_LOCAL));
    assert_eq!(
        reach.nlri,
        [net("2001:db8:100::/48"), net("2001:db8:101::/48")]
    );
    assert_eq!(update.attributes.as_path.segments, [sequence(&[65001])]);
    assert_eq!(update.attributes.next_hop, None);
    assert_eq!(update.attributes.med, Some(0));
    // FRR: MP_REACH_NLRI first and AS_PATH with the extended length flag; we put
    // MP_REACH_NLRI first too, with one-octet lengths where they fit.
    assert_encodes_equivalently(
        "update_frr_ipv6_link_local",
        &Message::Update(update),
        &codec,
    );
}

#[test]
fn bird_ipv6_route_with_global_and_link_local_next_hops() {
    let codec = frr_bird_ipv6_session();
    let update = update("update_bird_ipv6_link_local", &codec);
    let reach = update.mp_reach.as_ref().unwrap();
    assert_eq!((reach.afi, reach.safi), V6);
    assert_eq!(reach.next_hop, "2001:db8:12::2".parse::<IpAddr>().unwrap());
    assert_eq!(reach.link_local_next_hop, Some(BIRD_LINK_LOCAL));
    assert_eq!(reach.nlri, [net("2001:db8:200::/48")]);
    assert_eq!(update.attributes.origin, Some(Origin::Igp));
    assert_eq!(update.attributes.as_path.segments, [sequence(&[65002])]);
    // BIRD writes MP_REACH_NLRI with the extended length flag (0x90) whatever its length;
    // we use the one-octet length where it fits.
    assert_encodes_equivalently(
        "update_bird_ipv6_link_local",
        &Message::Update(update),
        &codec,
    );
}

#[test]
fn frr_ipv4_route_with_ipv6_next_hops() {
    // RFC 8950: IPv4 NLRI in MP_REACH_NLRI with a 32-octet IPv6 next hop (global and
    // link-local), on the IPv6 session where both sides sent the capability.
    let codec = frr_bird_ipv6_session();
    let update = update("update_frr_ipv4_ipv6_next_hop", &codec);
    let reach = update.mp_reach.as_ref().unwrap();
    assert_eq!((reach.afi, reach.safi), V4);
    assert_eq!(reach.next_hop, "2001:db8:12::1".parse::<IpAddr>().unwrap());
    assert_eq!(reach.link_local_next_hop, Some(FRR_LINK_LOCAL));
    assert_eq!(reach.nlri, [net("10.10.0.0/16")]);
    assert!(update.nlri.is_empty());
    assert_eq!(update.attributes.next_hop, None);
    assert_encodes_equivalently(
        "update_frr_ipv4_ipv6_next_hop",
        &Message::Update(update),
        &codec,
    );
}

#[test]
fn frr_withdrawals() {
    let codec = Codec::FOUR_OCTET_AS;
    let update = update("update_frr_ipv4_withdraw", &codec);
    assert_eq!(update.withdrawn, [net4("10.30.0.0/24")]);
    assert!(update.nlri.is_empty() && update.mp_reach.is_none() && update.mp_unreach.is_none());
    assert_eq!(update.attributes, PathAttributes::default());
    assert_encodes_as_captured("update_frr_ipv4_withdraw", &Message::Update(update), &codec);

    let codec = frr_bird_ipv6_session();
    let ipv6 = update_with_unreach("update_frr_ipv6_withdraw", &codec);
    assert_eq!(
        ipv6,
        MpUnreach {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
            withdrawn: vec![net("2001:db8:101::/48")]
        }
    );
    // IPv4 routes of the IPv6 session (extended next hop) are withdrawn in MP_UNREACH_NLRI.
    let ipv4 = update_with_unreach("update_frr_ipv4_mp_unreach", &codec);
    assert_eq!(
        ipv4,
        MpUnreach {
            afi: Afi::Ipv4,
            safi: Safi::Unicast,
            withdrawn: vec![net("10.30.0.0/24")]
        }
    );
}

/// The UPDATE's MP_UNREACH_NLRI, checking that it is all the UPDATE holds. FRR writes
/// MP_UNREACH_NLRI with the extended length flag, we with a one-octet length.
fn update_with_unreach(name: &str, codec: &Codec) -> MpUnreach {
    let update = update(name, codec);
    let unreach = update.mp_unreach.clone().unwrap();
    assert_eq!(
        Update {
            mp_unreach: Some(unreach.clone()),
            ..Update::default()
        },
        update,
        "{name}"
    );
    assert_encodes_equivalently(name, &Message::Update(update), codec);
    unreach
}

#[test]
fn end_of_rib_markers() {
    for (name, family) in [
        ("eor_frr_ipv4", V4),
        ("eor_gobgp_ipv4", V4),
        ("eor_frr_ipv6", V6),
        ("eor_bird_ipv6", V6),
    ] {
        let codec = Codec::FOUR_OCTET_AS;
        let update = update(name, &codec);
        assert_eq!(update.end_of_rib_family(), Some(family), "{name}");
        assert_eq!(update, Update::end_of_rib(family.0), "{name}");
        assert_encodes_as_captured(name, &Message::Update(update), &codec);
    }
}

#[test]
fn exabgp_as_set_and_no_export_from_a_two_octet_speaker() {
    let codec = frr_exabgp_session();
    let update = update("update_exabgp_as_set", &codec);
    assert_eq!(update.nlri, [net4("10.40.0.0/24")]);
    let attributes = &update.attributes;
    assert_eq!(
        attributes.as_path,
        AsPath {
            segments: vec![
                sequence(&[65004]),
                AsSegment {
                    kind: AsSegmentKind::Set,
                    asns: vec![65010, 65011]
                },
            ]
        }
    );
    // A set counts as one AS in the path length (RFC 4271 9.1.2.2).
    assert_eq!(attributes.as_path.length(), 2);
    assert_eq!(attributes.next_hop, Some(Ipv4Addr::new(10, 0, 14, 2)));
    // NO_EXPORT (RFC 1997).
    assert_eq!(attributes.communities, [community(65004, 1), 0xffff_ff01]);
    // Two-octet AS numbers on this session; ExaBGP's order and flags are ours.
    assert_encodes_as_captured("update_exabgp_as_set", &Message::Update(update), &codec);
}

#[test]
fn frr_as4_path_to_a_two_octet_speaker() {
    // FRR to ExaBGP (no four-octet AS): AS_PATH [65001 AS_TRANS] plus AS4_PATH
    // [65001 4200000003]; RFC 6793 4.2.3 merges them into the real path.
    let codec = frr_exabgp_session();
    let update = update("update_frr_as4_path", &codec);
    assert_eq!(update.nlri, [net4("10.30.0.0/24")]);
    assert_eq!(
        update.attributes.as_path.segments,
        [sequence(&[65001, 4_200_000_003])]
    );
    assert_eq!(update.attributes.origin, Some(Origin::Incomplete));
    assert_eq!(update.attributes.communities, [community(4200, 3)]);
    assert_eq!(update.attributes.large_communities, [[4_200_000_003, 1, 1]]);
    // AS4_PATH is consumed by the merge, not kept as an unknown attribute.
    assert!(update.attributes.unknown.is_empty());
    // We write AS_PATH and AS4_PATH too, in another order and with other flags than FRR.
    assert_encodes_equivalently("update_frr_as4_path", &Message::Update(update), &codec);
}

#[test]
fn unknown_optional_transitive_attribute_is_kept_and_marked_partial() {
    // ExaBGP sends attribute 0x99, optional transitive (0xc0), that nobody knows.
    let codec = frr_exabgp_session();
    let from_exabgp = update("update_exabgp_unknown_attribute", &codec);
    assert_eq!(from_exabgp.nlri, [net4("10.41.0.0/24")]);
    let kept = RawAttribute {
        flags: flag::OPTIONAL_TRANSITIVE | flag::PARTIAL,
        type_code: 0x99,
        value: vec![1, 2, 3, 4, 5],
    };
    // RFC 4271 5 / 9: kept, to be passed on with the Partial bit set.
    assert_eq!(from_exabgp.attributes.unknown, std::slice::from_ref(&kept));
    // So our encoding differs from ExaBGP's exactly there: flags 0xe0 instead of 0xc0.
    let ours = Message::Update(from_exabgp.clone()).encode(&codec);
    let mut expected = golden("update_exabgp_unknown_attribute");
    let flags_at = expected.windows(2).position(|w| w == [0xc0, 0x99]).unwrap();
    expected[flags_at] = 0xe0;
    assert_eq!(ours[..], expected[..]);

    // FRR did the same when it passed the route on to BIRD.
    let codec = Codec::FOUR_OCTET_AS;
    let from_frr = update("update_frr_ipv4_partial_unknown", &codec);
    assert_eq!(from_frr.nlri, [net4("10.41.0.0/24")]);
    assert_eq!(from_frr.attributes.unknown, [kept]);
    assert_eq!(
        from_frr.attributes.as_path.segments,
        [sequence(&[65001, 65004])]
    );
    assert_encodes_equivalently(
        "update_frr_ipv4_partial_unknown",
        &Message::Update(from_frr),
        &codec,
    );
}

// ---- NOTIFICATION, ROUTE-REFRESH, KEEPALIVE -----------------------------------------------

#[test]
fn frr_shutdown_notification_with_communication() {
    let message = decode("notification_frr_shutdown", &Codec::default());
    let Message::Notification(notification) = &message else {
        panic!("{message:?}");
    };
    assert_eq!((notification.code, notification.subcode), (6, 2));
    assert_eq!(
        notification.shutdown_communication(),
        Some("golden capture: maintenance")
    );
    assert_eq!(
        notification,
        &Notification::administrative_shutdown("golden capture: maintenance")
    );
    assert_encodes_as_captured("notification_frr_shutdown", &message, &Codec::default());
}

#[test]
fn route_refresh_and_enhanced_route_refresh_demarcations() {
    for (name, subtype) in [
        ("route_refresh_frr", RouteRefresh::NORMAL),
        ("route_refresh_bird_borr", RouteRefresh::BEGIN_OF_RIB),
        ("route_refresh_bird_eorr", RouteRefresh::END_OF_RIB),
    ] {
        let message = decode(name, &Codec::default());
        assert_eq!(
            message,
            Message::RouteRefresh(RouteRefresh {
                afi: Afi::Ipv4,
                safi: Safi::Unicast,
                subtype
            }),
            "{name}"
        );
        assert_encodes_as_captured(name, &message, &Codec::default());
    }
}

#[test]
fn keepalive() {
    let message = decode("keepalive_frr", &Codec::default());
    assert_eq!(message, Message::Keepalive);
    assert_encodes_as_captured("keepalive_frr", &message, &Codec::default());
}
