//! Encoding path attributes for our UPDATEs (the TLV framing, AS_PATH and AGGREGATOR in the
//! session's AS width).

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use super::super::Codec;
use super::super::open::AS_TRANS;
use super::super::types::{AsSegment, PathAttributes};
use super::as_path::is_confederation;
use super::{flag, spec, type_code};

/// Appends one attribute TLV, with the Extended Length bit when the value needs it. `None`
/// if the value cannot be encoded at all (over 65535 octets).
pub(crate) fn put_attribute(out: &mut BytesMut, flags: u8, code: u8, value: &[u8]) -> Option<()> {
    let flags = flags & !flag::EXTENDED_LENGTH;
    match u8::try_from(value.len()) {
        Ok(len) => {
            out.put_u8(flags);
            out.put_u8(code);
            out.put_u8(len);
        }
        Err(_) => {
            let len = u16::try_from(value.len()).ok()?;
            out.put_u8(flags | flag::EXTENDED_LENGTH);
            out.put_u8(code);
            out.put_u16(len);
        }
    }
    out.put_slice(value);
    Some(())
}

/// AS_PATH / AS4_PATH value: segments longer than 255 ASNs are split, empty ones left out;
/// in two octets, ASNs that do not fit are AS_TRANS (RFC 6793 4.2.2).
fn encode_as_path(segments: &[AsSegment], four_octet: bool, confederation: bool) -> Vec<u8> {
    let mut value = Vec::new();
    for segment in segments {
        if !confederation && is_confederation(segment.kind) {
            continue;
        }
        for asns in segment.asns.chunks(usize::from(u8::MAX)) {
            value.push(segment.kind as u8);
            // chunks() of 255 at most.
            value.push(asns.len() as u8);
            for &asn in asns {
                if four_octet {
                    value.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let asn = u16::try_from(asn).unwrap_or(AS_TRANS as u16);
                    value.extend_from_slice(&asn.to_be_bytes());
                }
            }
        }
    }
    value
}

fn encode_aggregator((asn, router_id): (u32, Ipv4Addr), four_octet: bool) -> Vec<u8> {
    let mut value = if four_octet {
        asn.to_be_bytes().to_vec()
    } else {
        u16::try_from(asn)
            .unwrap_or(AS_TRANS as u16)
            .to_be_bytes()
            .to_vec()
    };
    value.extend_from_slice(&router_id.octets());
    value
}

/// Encodes `attributes` (without MP_REACH_NLRI / MP_UNREACH_NLRI, which the UPDATE encoder
/// places first) in ascending type code order (RFC 4271 5 "SHOULD"). NEXT_HOP only when the
/// UPDATE carries IPv4 NLRI in its body (RFC 4760 3: not with MP_REACH_NLRI alone). AS_PATH
/// is always present: an empty one is what an iBGP originator sends. `None` if an attribute
/// is too long to encode.
pub(crate) fn encode_attributes(
    attributes: &PathAttributes,
    codec: &Codec,
    with_next_hop: bool,
) -> Option<BytesMut> {
    let four_octet = codec.four_octet_as;
    let mut entries: Vec<(u8, u8, Vec<u8>)> = Vec::new();
    let mut add = |code: u8, value: Vec<u8>| {
        let category = spec(code).map_or(flag::OPTIONAL_TRANSITIVE, |spec| spec.category);
        entries.push((code, category, value));
    };

    if let Some(origin) = attributes.origin {
        add(type_code::ORIGIN, vec![origin as u8]);
    }
    let segments = &attributes.as_path.segments;
    add(
        type_code::AS_PATH,
        encode_as_path(segments, four_octet, true),
    );
    let needs_as4_path = !four_octet
        && segments
            .iter()
            .filter(|segment| !is_confederation(segment.kind))
            .any(|segment| segment.asns.iter().any(|&asn| asn > u32::from(u16::MAX)));
    if needs_as4_path {
        add(type_code::AS4_PATH, encode_as_path(segments, true, false));
    }
    if let Some(next_hop) = attributes.next_hop.filter(|_| with_next_hop) {
        add(type_code::NEXT_HOP, next_hop.octets().to_vec());
    }
    if let Some(med) = attributes.med {
        add(type_code::MULTI_EXIT_DISC, med.to_be_bytes().to_vec());
    }
    if let Some(local_pref) = attributes.local_pref {
        add(type_code::LOCAL_PREF, local_pref.to_be_bytes().to_vec());
    }
    if attributes.atomic_aggregate {
        add(type_code::ATOMIC_AGGREGATE, Vec::new());
    }
    if let Some(aggregator) = attributes.aggregator {
        add(
            type_code::AGGREGATOR,
            encode_aggregator(aggregator, four_octet),
        );
        if !four_octet && aggregator.0 > u32::from(u16::MAX) {
            add(
                type_code::AS4_AGGREGATOR,
                encode_aggregator(aggregator, true),
            );
        }
    }
    if !attributes.communities.is_empty() {
        add(
            type_code::COMMUNITIES,
            attributes
                .communities
                .iter()
                .flat_map(|c| c.to_be_bytes())
                .collect(),
        );
    }
    if let Some(originator_id) = attributes.originator_id {
        add(type_code::ORIGINATOR_ID, originator_id.octets().to_vec());
    }
    if !attributes.cluster_list.is_empty() {
        add(
            type_code::CLUSTER_LIST,
            attributes
                .cluster_list
                .iter()
                .flat_map(|id| id.octets())
                .collect(),
        );
    }
    if !attributes.extended_communities.is_empty() {
        add(
            type_code::EXTENDED_COMMUNITIES,
            attributes.extended_communities.concat(),
        );
    }
    if !attributes.large_communities.is_empty() {
        add(
            type_code::LARGE_COMMUNITY,
            attributes
                .large_communities
                .iter()
                .flatten()
                .flat_map(|word| word.to_be_bytes())
                .collect(),
        );
    }
    for raw in &attributes.unknown {
        // Only optional attributes that we do not implement ourselves: a well-known one we
        // do not know would make the peer reset the session, and a code we do implement
        // would be a duplicate.
        if raw.flags & flag::OPTIONAL != 0
            && spec(raw.type_code).is_none()
            && !matches!(
                raw.type_code,
                type_code::MP_REACH_NLRI | type_code::MP_UNREACH_NLRI
            )
        {
            entries.push((raw.type_code, raw.flags, raw.value.clone()));
        }
    }

    entries.sort_by_key(|(code, _, _)| *code);
    let mut out = BytesMut::new();
    for (code, flags, value) in entries {
        put_attribute(&mut out, flags, code, &value)?;
    }
    Some(out)
}
