//! UPDATE message (RFC 4271 4.3): decoding with the revised error handling of RFC 7606,
//! encoding split into messages of at most 4096 octets, and End-of-RIB (RFC 4724 2).
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```
//!
//! Withdrawn Routes and NLRI are IPv4 unicast prefixes (nlri.rs); other families, and IPv4
//! with IPv6 next hops (RFC 8950), travel in MP_REACH_NLRI / MP_UNREACH_NLRI
//! (multiprotocol.rs); the attributes are in attribute.rs.
//!
//! # What resets the session, and what does not (RFC 7606)
//!
//! The session is reset only when the routes of the UPDATE cannot be known for sure: the
//! length fields contradict the message (3.b: Malformed Attribute List), the Withdrawn Routes
//! or NLRI field is syntactically incorrect (5.3: Invalid Network Field), MP_REACH_NLRI or
//! MP_UNREACH_NLRI is malformed (7.11: Optional Attribute Error) or repeated (3.g: Malformed
//! Attribute List), an unrecognised well-known attribute appears (RFC 4271 6.3), or an
//! attribute error other than discard hits an UPDATE that has path attributes but announces
//! nothing (5.2). Every other problem is reported next to the decoded UPDATE as an
//! [`UpdateError`].

use bytes::{Bytes, BytesMut};
use ipnet::{IpNet, Ipv4Net};

use super::Codec;
use super::attribute::{self, DecodedAttributes, flag, type_code};
use super::error::{MessageError, UpdateError, UpdateProblems};
use super::header::{HEADER_LEN, Header, MAX_MESSAGE_LEN, MessageType, finish_message};
use super::multiprotocol::{self, MP_REACH_FIXED_LEN};
use super::nlri;
use super::notification::{ErrorCode, Notification, UpdateMessageSubcode};
use super::types::{Afi, MpReach, MpUnreach, PathAttributes, Safi};
use super::wire::Reader;

/// An UPDATE: withdrawals and announcements sharing one set of path attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// IPv4 unicast prefixes withdrawn in the Withdrawn Routes field.
    pub withdrawn: Vec<Ipv4Net>,
    pub attributes: PathAttributes,
    /// IPv4 unicast prefixes announced in the NLRI field (next hop: `attributes.next_hop`).
    pub nlri: Vec<Ipv4Net>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    /// (AFI, SAFI) of MP_REACH_NLRI / MP_UNREACH_NLRI attributes of families we do not
    /// implement, skipped when decoding (RFC 4760 7 leaves them to us). Never encoded.
    pub unknown_families: Vec<(u16, u8)>,
}

impl Update {
    /// The End-of-RIB marker of RFC 4724 2: an empty UPDATE for IPv4 unicast, an UPDATE with
    /// only an empty MP_UNREACH_NLRI for other families.
    pub fn end_of_rib(afi: Afi) -> Update {
        match afi {
            Afi::Ipv4 => Update::default(),
            Afi::Ipv6 => Update {
                mp_unreach: Some(MpUnreach {
                    afi,
                    safi: Safi::Unicast,
                    withdrawn: Vec::new(),
                }),
                ..Update::default()
            },
        }
    }

    /// The family this UPDATE is the End-of-RIB marker of, if it is one. IPv4 unicast may
    /// also be marked with an empty MP_UNREACH_NLRI of AFI 1.
    pub fn end_of_rib_family(&self) -> Option<(Afi, Safi)> {
        let nothing_else = self.withdrawn.is_empty()
            && self.nlri.is_empty()
            && self.mp_reach.is_none()
            && self.unknown_families.is_empty()
            && self.attributes == PathAttributes::default();
        match &self.mp_unreach {
            _ if !nothing_else => None,
            None => Some((Afi::Ipv4, Safi::Unicast)),
            Some(unreach) if unreach.withdrawn.is_empty() => Some((unreach.afi, unreach.safi)),
            Some(_) => None,
        }
    }

    /// Every prefix this UPDATE announces (NLRI field, then MP_REACH_NLRI). Under
    /// [`UpdateError::TreatAsWithdraw`] these are the ones to withdraw.
    pub fn announced(&self) -> impl Iterator<Item = IpNet> + '_ {
        let mp = self
            .mp_reach
            .iter()
            .flat_map(|reach| reach.nlri.iter().copied());
        self.nlri.iter().map(|&net| IpNet::V4(net)).chain(mp)
    }

    /// Every prefix this UPDATE withdraws (Withdrawn Routes field, then MP_UNREACH_NLRI).
    pub fn withdrawals(&self) -> impl Iterator<Item = IpNet> + '_ {
        let mp = self
            .mp_unreach
            .iter()
            .flat_map(|unreach| unreach.withdrawn.iter().copied());
        self.withdrawn.iter().map(|&net| IpNet::V4(net)).chain(mp)
    }

    /// Decodes the body (after the header); the header check guarantees 4 octets.
    pub(crate) fn decode_body(
        body: &[u8],
        codec: &Codec,
    ) -> Result<(Update, Option<UpdateError>), MessageError> {
        let mut reader = Reader::new(body);
        // RFC 4271 6.3 / RFC 7606 3.b: length fields that overrun the message leave the NLRI
        // nowhere to be found.
        let withdrawn_len = reader.u16().unwrap_or(0);
        let withdrawn = reader.take(usize::from(withdrawn_len)).ok_or_else(|| {
            malformed_attribute_list(format!(
                "withdrawn routes length {withdrawn_len} overruns the UPDATE"
            ))
        })?;
        let attributes_len = reader.u16().ok_or_else(|| {
            malformed_attribute_list("no room for the total path attribute length".into())
        })?;
        let attributes = reader.take(usize::from(attributes_len)).ok_or_else(|| {
            malformed_attribute_list(format!(
                "total path attribute length {attributes_len} overruns the UPDATE"
            ))
        })?;

        // RFC 7606 5.3: treat-as-withdraw needs every prefix; without them, reset.
        let withdrawn = nlri::decode_ipv4_prefixes(withdrawn)
            .map_err(|reason| invalid_network_field(format!("withdrawn routes: {reason}")))?;
        let nlri = nlri::decode_ipv4_prefixes(reader.rest())
            .map_err(|reason| invalid_network_field(format!("NLRI: {reason}")))?;

        let mut problems = UpdateProblems::default();
        let DecodedAttributes {
            attributes,
            mp_reach,
            mp_unreach,
            unknown_families,
            unknown_family_reach,
            present,
            has_attribute_other_than_mp_unreach,
        } = attribute::decode_attributes(attributes, codec, &mut problems)?;

        // RFC 7606 3.d: a missing well-known mandatory attribute is treat-as-withdraw.
        // NEXT_HOP is only mandatory for NLRI in the body (RFC 4760 3).
        let mut mandatory = Vec::new();
        if !nlri.is_empty() || mp_reach.is_some() {
            mandatory.extend([
                ("ORIGIN", type_code::ORIGIN),
                ("AS_PATH", type_code::AS_PATH),
            ]);
        }
        if !nlri.is_empty() {
            mandatory.push(("NEXT_HOP", type_code::NEXT_HOP));
        }
        for (name, code) in mandatory {
            if !present.contains(code) {
                problems.treat_as_withdraw(
                    format!("missing well-known attribute {name}"),
                    Notification::new(
                        ErrorCode::UpdateMessage as u8,
                        UpdateMessageSubcode::MissingWellKnownAttribute as u8,
                        vec![code],
                    ),
                );
            }
        }

        let announces = !nlri.is_empty()
            || mp_reach
                .as_ref()
                .is_some_and(|reach| !reach.nlri.is_empty())
            || unknown_family_reach;
        if problems.needs_withdraw() && !announces && has_attribute_other_than_mp_unreach {
            return Err(problems.into_session_reset());
        }

        let update = Update {
            withdrawn,
            attributes,
            nlri,
            mp_reach,
            mp_unreach,
            unknown_families,
        };
        Ok((update, problems.into_outcome()))
    }
}

fn malformed_attribute_list(reason: String) -> MessageError {
    MessageError::update(
        UpdateMessageSubcode::MalformedAttributeList,
        Vec::new(),
        reason,
    )
}

fn invalid_network_field(reason: String) -> MessageError {
    MessageError::update(
        UpdateMessageSubcode::InvalidNetworkField,
        Vec::new(),
        reason,
    )
}

/// Room for Withdrawn Routes, Path Attributes and NLRI in one message: everything but the
/// header and the two length fields.
const UPDATE_ROOM: usize = MAX_MESSAGE_LEN - HEADER_LEN - 4;
/// Attribute header with a two-octet length (what MP attributes with many prefixes need).
const LONG_ATTRIBUTE_HEADER_LEN: usize = 4;

/// Encodes `update` as as many UPDATE messages (each at most 4096 octets) as it takes.
///
/// Following RFC 7606 5.1, each message carries only one kind of route field: IPv4
/// withdrawals, then MP_UNREACH_NLRI, then IPv4 NLRI, then MP_REACH_NLRI, with the MP
/// attribute first among the attributes. Announcements repeat the full attribute set in every
/// message. If the attributes alone leave no room for a single prefix, the prefixes cannot be
/// announced with them at all; they are withdrawn instead so that the peer does not keep a
/// stale route (and a warning is logged). An `Update` without any route field encodes as the
/// IPv4 End-of-RIB, the empty UPDATE (attributes without routes mean nothing); one whose only
/// route field is an MP_REACH_NLRI without prefixes encodes as no message at all.
pub fn encode_updates(update: &Update, codec: &Codec) -> Vec<Bytes> {
    let mut messages = Vec::new();
    let mut withdrawn_ipv4: Vec<IpNet> =
        update.withdrawn.iter().map(|&net| IpNet::V4(net)).collect();
    let mut withdrawn_mp: Vec<(Afi, Safi, Vec<IpNet>)> = Vec::new();
    if let Some(unreach) = &update.mp_unreach {
        let withdrawn = of_family(&unreach.withdrawn, unreach.afi);
        withdrawn_mp.push((unreach.afi, unreach.safi, withdrawn));
    }

    let mut announcements = Vec::new();
    if !update.nlri.is_empty() {
        let nlri: Vec<IpNet> = update.nlri.iter().map(|&net| IpNet::V4(net)).collect();
        let attributes = attribute::encode_attributes(&update.attributes, codec, true);
        match attributes.and_then(|attributes| {
            let room = UPDATE_ROOM.checked_sub(attributes.len())?;
            let chunks = split_prefixes(&nlri, room, false)?;
            Some((attributes, chunks))
        }) {
            Some((attributes, chunks)) => {
                for chunk in chunks {
                    announcements.push(build_update(&[], None, &attributes, chunk));
                }
            }
            None => {
                warn_attributes_too_long(&update.attributes, nlri.len());
                withdrawn_ipv4.extend(nlri);
            }
        }
    }
    // An MP_REACH_NLRI without prefixes announces nothing; sending it alone would even reset
    // the session if the attributes were broken (RFC 7606 5.2).
    if let Some(reach) = update
        .mp_reach
        .as_ref()
        .filter(|reach| !reach.nlri.is_empty())
    {
        let nlri = of_family(&reach.nlri, reach.afi);
        let next_hop = multiprotocol::next_hop_octets(reach);
        let attributes = attribute::encode_attributes(&update.attributes, codec, false);
        match attributes.and_then(|attributes| {
            let room = UPDATE_ROOM.checked_sub(
                attributes.len() + LONG_ATTRIBUTE_HEADER_LEN + MP_REACH_FIXED_LEN + next_hop.len(),
            )?;
            let chunks = split_prefixes(&nlri, room, false)?;
            Some((attributes, chunks))
        }) {
            Some((attributes, chunks)) => {
                for chunk in chunks {
                    let value = multiprotocol::encode_mp_reach_value(reach, &next_hop, chunk);
                    let mp = (type_code::MP_REACH_NLRI, &value[..]);
                    announcements.push(build_update(&[], Some(mp), &attributes, &[]));
                }
            }
            None => {
                warn_attributes_too_long(&update.attributes, nlri.len());
                withdrawn_mp.push((reach.afi, reach.safi, nlri));
            }
        }
    }

    let ipv4_chunks = split_prefixes(&withdrawn_ipv4, UPDATE_ROOM, false).unwrap_or_default();
    for chunk in ipv4_chunks {
        messages.push(build_update(chunk, None, &[], &[]));
    }
    for (afi, safi, withdrawn) in &withdrawn_mp {
        const ROOM: usize = UPDATE_ROOM - LONG_ATTRIBUTE_HEADER_LEN - 3;
        // At least one message, even when empty: that is the End-of-RIB marker.
        for chunk in split_prefixes(withdrawn, ROOM, true).unwrap_or_default() {
            let value = multiprotocol::encode_mp_unreach_value(*afi, *safi, chunk);
            let mp = (type_code::MP_UNREACH_NLRI, &value[..]);
            messages.push(build_update(&[], Some(mp), &[], &[]));
        }
    }
    messages.extend(announcements);
    let no_routes = update.withdrawn.is_empty()
        && update.nlri.is_empty()
        && update.mp_reach.is_none()
        && update.mp_unreach.is_none();
    if no_routes {
        messages.push(build_update(&[], None, &[], &[]));
    }
    messages
}

/// The prefixes that belong in an MP attribute of family `afi`; others cannot be encoded
/// there (a caller's mistake, logged).
fn of_family(prefixes: &[IpNet], afi: Afi) -> Vec<IpNet> {
    let (matching, others): (Vec<IpNet>, Vec<IpNet>) = prefixes
        .iter()
        .partition(|net| nlri::is_of_family(net, afi));
    if !others.is_empty() {
        tracing::warn!(?afi, prefixes = ?others, "prefixes of another family left out of an MP attribute");
    }
    matching
}

fn warn_attributes_too_long(attributes: &PathAttributes, prefixes: usize) {
    tracing::warn!(
        prefixes,
        communities = attributes.communities.len(),
        as_path_length = attributes.as_path.length(),
        "path attributes leave no room for a prefix in a 4096-octet UPDATE; withdrawing instead"
    );
}

/// Splits `prefixes` into runs whose encodings fit in `room` octets each. With
/// `at_least_one`, no prefixes still make one (empty) run. `None` if a prefix alone does not
/// fit.
fn split_prefixes(prefixes: &[IpNet], room: usize, at_least_one: bool) -> Option<Vec<&[IpNet]>> {
    let mut chunks = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (index, net) in prefixes.iter().enumerate() {
        let len = nlri::ip_net_wire_len(net);
        if len > room {
            return None;
        }
        if used + len > room {
            chunks.push(&prefixes[start..index]);
            (start, used) = (index, 0);
        }
        used += len;
    }
    if start < prefixes.len() || (at_least_one && chunks.is_empty()) {
        chunks.push(&prefixes[start..]);
    }
    Some(chunks)
}

/// One UPDATE message: `withdrawn` in its field, the MP attribute (type code, value) if any,
/// then the other attributes already encoded, then `nlri` in its field.
fn build_update(
    withdrawn: &[IpNet],
    multiprotocol: Option<(u8, &[u8])>,
    attributes: &[u8],
    nlri: &[IpNet],
) -> Bytes {
    let mut out = BytesMut::with_capacity(MAX_MESSAGE_LEN);
    let start = Header::encode_start(&mut out, MessageType::Update);

    let withdrawn_len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    for net in withdrawn {
        nlri::encode_prefix(net, &mut out);
    }
    let withdrawn_len = out.len() - withdrawn_len_at - 2;
    patch_u16(&mut out, withdrawn_len_at, withdrawn_len);

    let attributes_len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    if let Some((code, value)) = multiprotocol {
        // RFC 7606 5.1: MP_REACH_NLRI / MP_UNREACH_NLRI first. The value fits in a message,
        // so its length fits in two octets.
        let _ = attribute::put_attribute(&mut out, flag::OPTIONAL, code, value);
    }
    out.extend_from_slice(attributes);
    let attributes_len = out.len() - attributes_len_at - 2;
    patch_u16(&mut out, attributes_len_at, attributes_len);

    for net in nlri {
        nlri::encode_prefix(net, &mut out);
    }
    finish_message(&mut out, start);
    out.freeze()
}

fn patch_u16(out: &mut BytesMut, at: usize, value: usize) {
    let value = u16::try_from(value).unwrap_or(u16::MAX);
    out[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests;
