//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 3, 4), with IPv6 next hops (RFC 2545 3) and
//! IPv6 next hops for IPv4 NLRI (RFC 8950 3).
//!
//! MP_REACH_NLRI value:
//!
//! ```text
//! +---------------------------------------------------------+
//! | Address Family Identifier (2 octets)                    |
//! +---------------------------------------------------------+
//! | Subsequent Address Family Identifier (1 octet)          |
//! +---------------------------------------------------------+
//! | Length of Next Hop Network Address (1 octet)            |
//! +---------------------------------------------------------+
//! | Network Address of Next Hop (variable)                  |
//! +---------------------------------------------------------+
//! | Reserved (1 octet)                                      |
//! +---------------------------------------------------------+
//! | Network Layer Reachability Information (variable)       |
//! +---------------------------------------------------------+
//! ```
//!
//! MP_UNREACH_NLRI value:
//!
//! ```text
//! +---------------------------------------------------------+
//! | Address Family Identifier (2 octets)                    |
//! +---------------------------------------------------------+
//! | Subsequent Address Family Identifier (1 octet)          |
//! +---------------------------------------------------------+
//! | Withdrawn Routes (variable)                             |
//! +---------------------------------------------------------+
//! ```
//!
//! Next hop lengths accepted: 16 (global) or 32 (global, then link-local) for IPv6; 4 for
//! IPv4, and 16 or 32 for IPv4 when the session negotiated RFC 8950. Anything else is
//! "inconsistent with that which was expected" (RFC 7606 7.11): the NLRI that follows
//! cannot be located, so the caller resets the session.

use std::net::{IpAddr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::IpNet;

use super::Codec;
use super::nlri;
use super::types::{Afi, MpReach, MpUnreach, Safi};
use super::wire::{Reader, afi_from_wire, family_name, safi_from_wire};

/// An MP_* attribute is either of a family we implement, or skipped.
#[derive(Debug)]
pub(crate) enum Multiprotocol<T> {
    Known(T),
    /// RFC 4760 7 leaves unknown AFI/SAFIs to the implementation; we ignore the attribute
    /// (its length is known, so the rest of the UPDATE is still parsed).
    UnknownFamily {
        afi: u16,
        safi: u8,
    },
}

/// AFI (2) + SAFI (1).
const FAMILY_LEN: usize = 3;
/// AFI, SAFI, next hop length, reserved.
pub(crate) const MP_REACH_FIXED_LEN: usize = 5;

/// The AFI/SAFI that starts both attributes.
enum Family {
    Known(Afi, Safi),
    Unknown(u16, u8),
}

fn read_family(reader: &mut Reader) -> Result<Family, String> {
    let (Some(afi), Some(safi)) = (reader.u16(), reader.u8()) else {
        return Err("shorter than AFI and SAFI".into());
    };
    Ok(
        match (afi_from_wire(afi), safi_from_wire(u16::from(safi))) {
            (Some(afi), Some(safi)) => Family::Known(afi, safi),
            _ => Family::Unknown(afi, safi),
        },
    )
}

pub(crate) fn decode_mp_reach(
    value: &[u8],
    codec: &Codec,
) -> Result<Multiprotocol<MpReach>, String> {
    let mut reader = Reader::new(value);
    let (afi, safi) = match read_family(&mut reader)? {
        Family::Known(afi, safi) => (afi, safi),
        Family::Unknown(afi, safi) => return Ok(Multiprotocol::UnknownFamily { afi, safi }),
    };
    let next_hop_len = reader.u8().ok_or("no next hop length")?;
    let next_hop = reader
        .take(usize::from(next_hop_len))
        .ok_or_else(|| format!("next hop of {next_hop_len} octets overruns the attribute"))?;
    let (next_hop, link_local_next_hop) =
        decode_next_hop(afi, next_hop, codec).ok_or_else(|| {
            format!(
                "next hop length {next_hop_len} is not valid for {}{}",
                family_name(afi, safi),
                if afi == Afi::Ipv4 && !codec.extended_next_hop_ipv4 {
                    " (IPv6 next hops need the RFC 8950 extended next hop capability)"
                } else {
                    ""
                }
            )
        })?;
    // Was "Number of SNPAs" in RFC 2858; RFC 4760 3 says to ignore it.
    reader.u8().ok_or("no reserved octet")?;
    let nlri =
        nlri::decode_prefixes(reader.rest(), afi).map_err(|reason| format!("NLRI: {reason}"))?;
    Ok(Multiprotocol::Known(MpReach {
        afi,
        safi,
        next_hop,
        link_local_next_hop,
        nlri,
    }))
}

/// The next hop field as (global, link-local) for the lengths RFC 2545 and RFC 8950 allow.
fn decode_next_hop(afi: Afi, octets: &[u8], codec: &Codec) -> Option<(IpAddr, Option<Ipv6Addr>)> {
    let mut reader = Reader::new(octets);
    match (afi, octets.len()) {
        (Afi::Ipv4, 4) => Some((IpAddr::V4(reader.ipv4()?), None)),
        (Afi::Ipv4, 16 | 32) if !codec.extended_next_hop_ipv4 => None,
        (Afi::Ipv4 | Afi::Ipv6, 16) => Some((IpAddr::V6(reader.ipv6()?), None)),
        (Afi::Ipv4 | Afi::Ipv6, 32) => Some((IpAddr::V6(reader.ipv6()?), Some(reader.ipv6()?))),
        _ => None,
    }
}

pub(crate) fn decode_mp_unreach(value: &[u8]) -> Result<Multiprotocol<MpUnreach>, String> {
    let mut reader = Reader::new(value);
    let (afi, safi) = match read_family(&mut reader)? {
        Family::Known(afi, safi) => (afi, safi),
        Family::Unknown(afi, safi) => return Ok(Multiprotocol::UnknownFamily { afi, safi }),
    };
    let withdrawn = nlri::decode_prefixes(reader.rest(), afi)
        .map_err(|reason| format!("withdrawn routes: {reason}"))?;
    Ok(Multiprotocol::Known(MpUnreach {
        afi,
        safi,
        withdrawn,
    }))
}

/// The Network Address of Next Hop octets for `reach`. An IPv4 next hop for IPv6 NLRI is sent
/// as an IPv4-mapped IPv6 address, the only form RFC 2545 allows (it decodes as IPv6).
pub(crate) fn next_hop_octets(reach: &MpReach) -> Vec<u8> {
    let global = match (reach.afi, reach.next_hop) {
        (Afi::Ipv4, IpAddr::V4(address)) => return address.octets().to_vec(),
        (Afi::Ipv6, IpAddr::V4(address)) => address.to_ipv6_mapped(),
        (_, IpAddr::V6(address)) => address,
    };
    let mut octets = global.octets().to_vec();
    if let Some(link_local) = reach.link_local_next_hop {
        octets.extend_from_slice(&link_local.octets());
    }
    octets
}

/// The MP_REACH_NLRI value for `reach`'s family and next hop, carrying `nlri`.
pub(crate) fn encode_mp_reach_value(reach: &MpReach, next_hop: &[u8], nlri: &[IpNet]) -> BytesMut {
    let mut value = BytesMut::with_capacity(MP_REACH_FIXED_LEN + next_hop.len() + nlri.len() * 17);
    value.put_u16(reach.afi as u16);
    value.put_u8(reach.safi as u8);
    // At most 32 octets (see next_hop_octets).
    value.put_u8(next_hop.len() as u8);
    value.put_slice(next_hop);
    value.put_u8(0);
    for net in nlri {
        nlri::encode_prefix(net, &mut value);
    }
    value
}

pub(crate) fn encode_mp_unreach_value(afi: Afi, safi: Safi, withdrawn: &[IpNet]) -> BytesMut {
    let mut value = BytesMut::with_capacity(FAMILY_LEN + withdrawn.len() * 17);
    value.put_u16(afi as u16);
    value.put_u8(safi as u8);
    for net in withdrawn {
        nlri::encode_prefix(net, &mut value);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXTENDED: Codec = Codec {
        four_octet_as: true,
        extended_next_hop_ipv4: true,
    };

    fn reach(afi: Afi, next_hop: IpAddr, link_local: Option<Ipv6Addr>, nlri: &[&str]) -> MpReach {
        MpReach {
            afi,
            safi: Safi::Unicast,
            next_hop,
            link_local_next_hop: link_local,
            nlri: nlri.iter().map(|net| net.parse().unwrap()).collect(),
        }
    }

    fn round_trip(reach: &MpReach, codec: &Codec) -> MpReach {
        let value = encode_mp_reach_value(reach, &next_hop_octets(reach), &reach.nlri);
        match decode_mp_reach(&value, codec).unwrap() {
            Multiprotocol::Known(decoded) => decoded,
            Multiprotocol::UnknownFamily { .. } => panic!("unknown family"),
        }
    }

    #[test]
    fn golden_ipv6_with_link_local_next_hop() {
        let reach = reach(
            Afi::Ipv6,
            "2001:db8::1".parse().unwrap(),
            Some("fe80::1".parse().unwrap()),
            &["2001:db8:1::/48"],
        );
        let value = encode_mp_reach_value(&reach, &next_hop_octets(&reach), &reach.nlri);
        let mut expected = vec![0, 2, 1, 32];
        expected.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        expected.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        expected.extend_from_slice(&[0, 48, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01]);
        assert_eq!(&value[..], expected);
        assert_eq!(round_trip(&reach, &Codec::default()), reach);
    }

    #[test]
    fn next_hop_forms_round_trip() {
        let cases = [
            reach(
                Afi::Ipv6,
                "2001:db8::1".parse().unwrap(),
                None,
                &["2001:db8::/32"],
            ),
            reach(
                Afi::Ipv4,
                "192.0.2.1".parse().unwrap(),
                None,
                &["10.0.0.0/8"],
            ),
            reach(
                Afi::Ipv4,
                "2001:db8::1".parse().unwrap(),
                None,
                &["10.0.0.0/8", "0.0.0.0/0"],
            ),
            reach(
                Afi::Ipv4,
                "2001:db8::1".parse().unwrap(),
                Some("fe80::2".parse().unwrap()),
                &["198.51.100.0/24"],
            ),
        ];
        for reach in cases {
            assert_eq!(round_trip(&reach, &EXTENDED), reach);
        }
    }

    #[test]
    fn ipv4_next_hop_for_ipv6_nlri_is_sent_ipv4_mapped() {
        let reach = reach(
            Afi::Ipv6,
            "192.0.2.1".parse().unwrap(),
            None,
            &["2001:db8::/32"],
        );
        assert_eq!(
            round_trip(&reach, &Codec::default()).next_hop,
            "::ffff:192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ipv6_next_hop_for_ipv4_nlri_needs_rfc_8950() {
        let reach = reach(
            Afi::Ipv4,
            "2001:db8::1".parse().unwrap(),
            None,
            &["10.0.0.0/8"],
        );
        let value = encode_mp_reach_value(&reach, &next_hop_octets(&reach), &reach.nlri);
        let error = decode_mp_reach(&value, &Codec::default()).unwrap_err();
        assert!(error.contains("RFC 8950"), "{error}");
    }

    #[test]
    fn inconsistent_next_hop_lengths_are_errors() {
        for (afi, len) in [
            (1u8, 0u8),
            (1, 5),
            (1, 12),
            (2, 4),
            (2, 17),
            (2, 0),
            (2, 48),
        ] {
            let mut value = vec![0, afi, 1, len];
            value.extend(std::iter::repeat_n(0x20, usize::from(len)));
            value.push(0);
            assert!(
                decode_mp_reach(&value, &EXTENDED).is_err(),
                "AFI {afi} length {len}"
            );
        }
    }

    #[test]
    fn truncated_attributes_are_errors() {
        let reach = reach(
            Afi::Ipv6,
            "2001:db8::1".parse().unwrap(),
            None,
            &["2001:db8::/32"],
        );
        let value = encode_mp_reach_value(&reach, &next_hop_octets(&reach), &reach.nlri);
        // AFI, SAFI, next hop length, next hop, reserved: 21 octets, then the NLRI.
        let without_nlri = 21;
        for len in (0..value.len()).filter(|&len| len != without_nlri) {
            assert!(
                decode_mp_reach(&value[..len], &EXTENDED).is_err(),
                "{len} octets"
            );
        }
        assert!(decode_mp_reach(&value[..without_nlri], &EXTENDED).is_ok());
        assert!(decode_mp_unreach(&[0, 2]).is_err());
        assert!(decode_mp_unreach(&[0, 2, 1, 64, 0x20]).is_err());
    }

    #[test]
    fn unknown_families_are_skipped() {
        // L2VPN EVPN (25/70) with an arbitrary body.
        assert!(matches!(
            decode_mp_reach(&[0, 25, 70, 4, 1, 2, 3, 4, 0, 9, 9], &EXTENDED),
            Ok(Multiprotocol::UnknownFamily { afi: 25, safi: 70 })
        ));
        assert!(matches!(
            decode_mp_unreach(&[0, 1, 128, 1, 2, 3]),
            Ok(Multiprotocol::UnknownFamily { afi: 1, safi: 128 })
        ));
    }

    #[test]
    fn unreach_round_trip() {
        let withdrawn: Vec<IpNet> = vec!["2001:db8::/32".parse().unwrap(), "::/0".parse().unwrap()];
        let value = encode_mp_unreach_value(Afi::Ipv6, Safi::Unicast, &withdrawn);
        match decode_mp_unreach(&value).unwrap() {
            Multiprotocol::Known(unreach) => {
                assert_eq!(
                    unreach,
                    MpUnreach {
                        afi: Afi::Ipv6,
                        safi: Safi::Unicast,
                        withdrawn
                    }
                )
            }
            Multiprotocol::UnknownFamily { .. } => panic!("unknown family"),
        }
    }
}
