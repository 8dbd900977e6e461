//! Path attributes (RFC 4271 4.3 and 5) with their RFC 7606 error handling, and the
//! two-octet AS compatibility of RFC 6793 (AS_TRANS, AS4_PATH, AS4_AGGREGATOR).
//!
//! Every attribute is a TLV:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |O|T|P|E|0 0 0 0|   Type Code   | Length (1 octet, 2 if E set)  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Value (Length octets)                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  O: optional (else well-known)   T: transitive
//!  P: partial (an optional transitive attribute some speaker did not recognise)
//!  E: extended length
//! ```
//!
//! AS_PATH and AS4_PATH values are a list of segments; an ASN is 2 octets in AS_PATH
//! between two-octet sessions and 4 octets otherwise (RFC 6793 4):
//!
//! ```text
//! +---------------+---------------+-------------------------------+
//! | Segment Type  | Segment Length| ASNs (Length x 2 or 4 octets) |
//! +---------------+---------------+-------------------------------+
//!  Type: 1 AS_SET, 2 AS_SEQUENCE, 3 AS_CONFED_SEQUENCE, 4 AS_CONFED_SET (RFC 5065)
//!  Length: number of ASNs
//! ```
//!
//! AGGREGATOR is AS (2 or 4 octets) and router id (4); AS4_AGGREGATOR is always 4 + 4.
//! COMMUNITIES is a list of 4-octet values (RFC 1997), EXTENDED_COMMUNITIES of 8-octet
//! values (RFC 4360), LARGE_COMMUNITY of 12-octet (global admin, local 1, local 2) values
//! (RFC 8092), CLUSTER_LIST of 4-octet cluster ids (RFC 4456).
//!
//! # Error handling (RFC 7606)
//!
//! | attribute                    | malformed when (besides O/T flags)    | approach          |
//! |------------------------------|---------------------------------------|-------------------|
//! | ORIGIN                       | length != 1, value > 2                | treat-as-withdraw |
//! | AS_PATH                      | 7606 7.2 segment errors, AS 0 (7607)  | treat-as-withdraw |
//! | NEXT_HOP, MED, LOCAL_PREF, ORIGINATOR_ID | length != 4               | treat-as-withdraw |
//! | COMMUNITIES, CLUSTER_LIST    | length not a non-zero multiple of 4   | treat-as-withdraw |
//! | EXTENDED_COMMUNITIES         | length not a non-zero multiple of 8   | treat-as-withdraw |
//! | LARGE_COMMUNITY              | length not a non-zero multiple of 12  | treat-as-withdraw |
//! | ATOMIC_AGGREGATE             | length != 0                           | attribute discard |
//! | AGGREGATOR                   | length != 6 / 8 (per session), AS 0   | attribute discard |
//! | AS4_PATH, AS4_AGGREGATOR     | as AS_PATH / length != 8, or sent on a four-octet session | attribute discard (RFC 6793 6) |
//! | MP_REACH_NLRI, MP_UNREACH_NLRI | RFC 7606 7.11 / 5.3                 | session reset     |
//!
//! A flags mismatch uses the attribute's own approach (RFC 7606 3.c defers to the attribute's
//! specification; for AGGREGATOR and ATOMIC_AGGREGATE that is discard, as FRR does, which is
//! safe because neither affects route selection). Checks that need the session type (LOCAL_PREF,
//! ORIGINATOR_ID, CLUSTER_LIST from an external peer are discarded, RFC 7606 7.5, 7.9, 7.10;
//! the first AS of the path, confederation segments from an external peer) are the RIB's.

use std::net::Ipv4Addr;

use super::Codec;
use super::error::{MessageError, UpdateProblems};
use super::multiprotocol::{self, Multiprotocol};
use super::notification::{ErrorCode, Notification, UpdateMessageSubcode};
use super::types::{AsPath, AsSegment, MpReach, MpUnreach, Origin, PathAttributes, RawAttribute};
use super::wire::{Reader, hex};

mod as_path;
mod encode;
#[cfg(test)]
pub(crate) mod tests;

use as_path::{apply_as4_attributes, decode_as_path, reject_as_zero};
pub(crate) use encode::{encode_attributes, put_attribute};

/// Attribute Flags bits.
pub mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
    /// The bits whose expected value each attribute's specification fixes.
    pub(crate) const CATEGORY: u8 = OPTIONAL | TRANSITIVE;
    pub(crate) const WELL_KNOWN: u8 = TRANSITIVE;
    pub(crate) const OPTIONAL_TRANSITIVE: u8 = OPTIONAL | TRANSITIVE;
    pub(crate) const OPTIONAL_NON_TRANSITIVE: u8 = OPTIONAL;
}

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod type_code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// RFC 7606 2: what a malformed attribute does to its UPDATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Approach {
    TreatAsWithdraw,
    AttributeDiscard,
    SessionReset,
}

/// What an attribute must look like, and what happens when it does not.
struct Spec {
    name: &'static str,
    /// Expected Optional and Transitive bits.
    category: u8,
    on_error: Approach,
}

fn spec(code: u8) -> Option<Spec> {
    use Approach::*;
    let (name, category, on_error) = match code {
        type_code::ORIGIN => ("ORIGIN", flag::WELL_KNOWN, TreatAsWithdraw),
        type_code::AS_PATH => ("AS_PATH", flag::WELL_KNOWN, TreatAsWithdraw),
        type_code::NEXT_HOP => ("NEXT_HOP", flag::WELL_KNOWN, TreatAsWithdraw),
        type_code::MULTI_EXIT_DISC => (
            "MULTI_EXIT_DISC",
            flag::OPTIONAL_NON_TRANSITIVE,
            TreatAsWithdraw,
        ),
        type_code::LOCAL_PREF => ("LOCAL_PREF", flag::WELL_KNOWN, TreatAsWithdraw),
        type_code::ATOMIC_AGGREGATE => ("ATOMIC_AGGREGATE", flag::WELL_KNOWN, AttributeDiscard),
        type_code::AGGREGATOR => ("AGGREGATOR", flag::OPTIONAL_TRANSITIVE, AttributeDiscard),
        type_code::COMMUNITIES => ("COMMUNITIES", flag::OPTIONAL_TRANSITIVE, TreatAsWithdraw),
        type_code::ORIGINATOR_ID => (
            "ORIGINATOR_ID",
            flag::OPTIONAL_NON_TRANSITIVE,
            TreatAsWithdraw,
        ),
        type_code::CLUSTER_LIST => (
            "CLUSTER_LIST",
            flag::OPTIONAL_NON_TRANSITIVE,
            TreatAsWithdraw,
        ),
        type_code::MP_REACH_NLRI => ("MP_REACH_NLRI", flag::OPTIONAL_NON_TRANSITIVE, SessionReset),
        type_code::MP_UNREACH_NLRI => (
            "MP_UNREACH_NLRI",
            flag::OPTIONAL_NON_TRANSITIVE,
            SessionReset,
        ),
        type_code::EXTENDED_COMMUNITIES => (
            "EXTENDED_COMMUNITIES",
            flag::OPTIONAL_TRANSITIVE,
            TreatAsWithdraw,
        ),
        type_code::AS4_PATH => ("AS4_PATH", flag::OPTIONAL_TRANSITIVE, AttributeDiscard),
        type_code::AS4_AGGREGATOR => (
            "AS4_AGGREGATOR",
            flag::OPTIONAL_TRANSITIVE,
            AttributeDiscard,
        ),
        type_code::LARGE_COMMUNITY => (
            "LARGE_COMMUNITY",
            flag::OPTIONAL_TRANSITIVE,
            TreatAsWithdraw,
        ),
        _ => return None,
    };
    Some(Spec {
        name,
        category,
        on_error,
    })
}

/// Why an attribute value is malformed, with the RFC 4271 subcode it would have had.
struct Malformed {
    subcode: UpdateMessageSubcode,
    reason: String,
}

impl Malformed {
    fn new(subcode: UpdateMessageSubcode, reason: impl Into<String>) -> Self {
        Malformed {
            subcode,
            reason: reason.into(),
        }
    }

    fn length(actual: usize, expected: &str) -> Self {
        Self::new(
            UpdateMessageSubcode::AttributeLengthError,
            format!("length {actual}, expected {expected}"),
        )
    }
}

/// A set of attribute type codes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TypeCodes([u64; 4]);

impl TypeCodes {
    /// Adds `code`; false if it was already there.
    fn insert(&mut self, code: u8) -> bool {
        let (word, bit) = (usize::from(code / 64), 1u64 << (code % 64));
        let new = self.0[word] & bit == 0;
        self.0[word] |= bit;
        new
    }

    pub(crate) fn contains(&self, code: u8) -> bool {
        self.0[usize::from(code / 64)] & (1u64 << (code % 64)) != 0
    }
}

/// The path attribute field of an UPDATE, decoded.
#[derive(Debug, Default)]
pub(crate) struct DecodedAttributes {
    pub(crate) attributes: PathAttributes,
    pub(crate) mp_reach: Option<MpReach>,
    pub(crate) mp_unreach: Option<MpUnreach>,
    /// (AFI, SAFI) of MP_* attributes of families we do not implement, which were skipped.
    pub(crate) unknown_families: Vec<(u16, u8)>,
    /// An MP_REACH_NLRI of an unknown family was skipped: the UPDATE does announce routes.
    pub(crate) unknown_family_reach: bool,
    /// Type codes that appeared, valid or not.
    pub(crate) present: TypeCodes,
    /// RFC 7606 5.2 cares whether anything but MP_UNREACH_NLRI was present.
    pub(crate) has_attribute_other_than_mp_unreach: bool,
}

/// AS4_PATH / AS4_AGGREGATOR as received, merged after all attributes are read because the
/// merge depends on AGGREGATOR (RFC 6793 4.2.3).
#[derive(Default)]
struct TwoOctetCompat {
    as4_path: Option<Vec<AsSegment>>,
    as4_aggregator: Option<(u32, Ipv4Addr)>,
}

/// Decodes the Path Attributes field. Problems that RFC 7606 lets the session survive go to
/// `problems`; the rest are the returned error.
pub(crate) fn decode_attributes(
    field: &[u8],
    codec: &Codec,
    problems: &mut UpdateProblems,
) -> Result<DecodedAttributes, MessageError> {
    let mut decoded = DecodedAttributes::default();
    let mut compat = TwoOctetCompat::default();
    let mut reader = Reader::new(field);
    while !reader.is_empty() {
        let offset = field.len() - reader.remaining();
        let flags = reader.u8();
        let code = reader.u8();
        let len = match flags {
            Some(flags) if flags & flag::EXTENDED_LENGTH != 0 => reader.u16(),
            _ => reader.u8().map(u16::from),
        };
        let (Some(flags), Some(code), Some(len)) = (flags, code, len) else {
            // RFC 7606 4, second case: not even an attribute header left. The Total Path
            // Attribute Length still locates the NLRI, so the UPDATE can be withdrawn.
            let rest = &field[offset..];
            problems.treat_as_withdraw(
                format!(
                    "{} octets left after the last attribute: {}",
                    rest.len(),
                    hex(rest)
                ),
                update_notification(UpdateMessageSubcode::MalformedAttributeList, rest.to_vec()),
            );
            break;
        };
        let Some(value) = reader.take(usize::from(len)) else {
            // RFC 7606 4, first case: the last attribute overruns the field.
            problems.treat_as_withdraw(
                format!(
                    "attribute type {code} of length {len} overruns the path attributes by {} octets",
                    usize::from(len) - reader.remaining()
                ),
                update_notification(
                    UpdateMessageSubcode::AttributeLengthError,
                    field[offset..].to_vec(),
                ),
            );
            break;
        };
        // The whole attribute: RFC 4271 6.3 puts it in the NOTIFICATION data.
        let raw = &field[offset..field.len() - reader.remaining()];

        if code != type_code::MP_UNREACH_NLRI {
            decoded.has_attribute_other_than_mp_unreach = true;
        }
        let spec = spec(code);
        let name = spec.as_ref().map_or_else(
            || format!("attribute type {code}"),
            |spec| spec.name.to_string(),
        );
        if !decoded.present.insert(code) {
            // RFC 7606 3.g.
            if matches!(code, type_code::MP_REACH_NLRI | type_code::MP_UNREACH_NLRI) {
                return Err(MessageError::update(
                    UpdateMessageSubcode::MalformedAttributeList,
                    Vec::new(),
                    format!("{name} appears more than once"),
                ));
            }
            problems.discard(format!(
                "{name} appears more than once; the repeats were discarded"
            ));
            continue;
        }

        let Some(spec) = spec else {
            decode_unrecognized(flags, code, value, raw, &mut decoded.attributes)?;
            continue;
        };
        let outcome = if flags & flag::CATEGORY != spec.category {
            Err(Malformed::new(
                UpdateMessageSubcode::AttributeFlagsError,
                format!(
                    "flags {flags:#04x} conflict with the attribute's optional/transitive bits {:#04x}",
                    spec.category
                ),
            ))
        } else {
            decode_value(code, value, codec, &mut decoded, &mut compat)
        };
        if let Err(malformed) = outcome {
            let reason = format!("{}: {}", spec.name, malformed.reason);
            match spec.on_error {
                Approach::TreatAsWithdraw => problems.treat_as_withdraw(
                    reason,
                    update_notification(malformed.subcode, raw.to_vec()),
                ),
                Approach::AttributeDiscard => {
                    problems.discard(format!("{reason}; the attribute was discarded"))
                }
                // RFC 7606 7.11 and RFC 4760 7: "Optional Attribute Error".
                Approach::SessionReset => {
                    return Err(MessageError::update(
                        UpdateMessageSubcode::OptionalAttributeError,
                        raw.to_vec(),
                        reason,
                    ));
                }
            }
        }
    }

    if !codec.four_octet_as {
        apply_as4_attributes(&mut decoded.attributes, compat, problems);
    }
    Ok(decoded)
}

fn update_notification(subcode: UpdateMessageSubcode, data: Vec<u8>) -> Notification {
    Notification::new(ErrorCode::UpdateMessage as u8, subcode as u8, data)
}

/// An attribute type we do not implement (RFC 4271 5, 6.3).
fn decode_unrecognized(
    flags: u8,
    code: u8,
    value: &[u8],
    raw: &[u8],
    attributes: &mut PathAttributes,
) -> Result<(), MessageError> {
    if flags & flag::OPTIONAL == 0 {
        // RFC 7606 leaves this RFC 4271 rule alone: we cannot know whether it matters.
        return Err(MessageError::update(
            UpdateMessageSubcode::UnrecognizedWellKnownAttribute,
            raw.to_vec(),
            format!("unrecognized well-known attribute type {code}"),
        ));
    }
    if flags & flag::TRANSITIVE != 0 {
        // Kept for propagation with the Partial bit set: "some speaker on the path did not
        // recognise this". The Extended Length bit is recomputed when encoding.
        attributes.unknown.push(RawAttribute {
            flags: (flags & !flag::EXTENDED_LENGTH) | flag::PARTIAL,
            type_code: code,
            value: value.to_vec(),
        });
    }
    // Unrecognised optional non-transitive attributes are quietly ignored.
    Ok(())
}

/// Decodes the value of a recognised attribute whose flags are right.
fn decode_value(
    code: u8,
    value: &[u8],
    codec: &Codec,
    decoded: &mut DecodedAttributes,
    compat: &mut TwoOctetCompat,
) -> Result<(), Malformed> {
    let attributes = &mut decoded.attributes;
    let asn_len = if codec.four_octet_as { 4 } else { 2 };
    match code {
        type_code::ORIGIN => {
            let [origin] = exact::<1>(value)?;
            attributes.origin = Some(match origin {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                _ => {
                    return Err(Malformed::new(
                        UpdateMessageSubcode::InvalidOriginAttribute,
                        format!("undefined value {origin}"),
                    ));
                }
            });
        }
        type_code::AS_PATH => {
            let segments = decode_as_path(value, asn_len)?;
            reject_as_zero(&segments)?;
            attributes.as_path = AsPath { segments };
        }
        type_code::NEXT_HOP => attributes.next_hop = Some(Ipv4Addr::from(exact::<4>(value)?)),
        type_code::MULTI_EXIT_DISC => attributes.med = Some(u32::from_be_bytes(exact(value)?)),
        type_code::LOCAL_PREF => attributes.local_pref = Some(u32::from_be_bytes(exact(value)?)),
        type_code::ATOMIC_AGGREGATE => {
            exact::<0>(value)?;
            attributes.atomic_aggregate = true;
        }
        type_code::AGGREGATOR => {
            let mut reader = Reader::new(value);
            let aggregator = match (value.len(), asn_len) {
                (6, 2) => reader.u16().map(u32::from).zip(reader.ipv4()),
                (8, 4) => reader.u32().zip(reader.ipv4()),
                _ => None,
            }
            .ok_or_else(|| Malformed::length(value.len(), if asn_len == 4 { "8" } else { "6" }))?;
            attributes.aggregator = Some(aggregator_with_nonzero_as(aggregator)?);
        }
        type_code::COMMUNITIES => {
            attributes.communities = multiple_of::<4>(value)?.map(u32::from_be_bytes).collect();
        }
        type_code::ORIGINATOR_ID => {
            attributes.originator_id = Some(Ipv4Addr::from(exact::<4>(value)?));
        }
        type_code::CLUSTER_LIST => {
            attributes.cluster_list = multiple_of::<4>(value)?.map(Ipv4Addr::from).collect();
        }
        type_code::MP_REACH_NLRI => {
            match multiprotocol::decode_mp_reach(value, codec).map_err(optional_attribute_error)? {
                Multiprotocol::Known(reach) => decoded.mp_reach = Some(reach),
                Multiprotocol::UnknownFamily { afi, safi } => {
                    decoded.unknown_families.push((afi, safi));
                    decoded.unknown_family_reach = true;
                }
            }
        }
        type_code::MP_UNREACH_NLRI => {
            match multiprotocol::decode_mp_unreach(value).map_err(optional_attribute_error)? {
                Multiprotocol::Known(unreach) => decoded.mp_unreach = Some(unreach),
                Multiprotocol::UnknownFamily { afi, safi } => {
                    decoded.unknown_families.push((afi, safi))
                }
            }
        }
        type_code::EXTENDED_COMMUNITIES => {
            attributes.extended_communities = multiple_of::<8>(value)?.collect();
        }
        type_code::AS4_PATH | type_code::AS4_AGGREGATOR if codec.four_octet_as => {
            return Err(Malformed::new(
                UpdateMessageSubcode::OptionalAttributeError,
                "sent on a four-octet AS session (RFC 6793 4.1)",
            ));
        }
        type_code::AS4_PATH => {
            let segments = decode_as_path(value, 4)?;
            reject_as_zero(&segments)?;
            compat.as4_path = Some(segments);
        }
        type_code::AS4_AGGREGATOR => {
            let mut reader = Reader::new(value);
            let aggregator = (value.len() == 8)
                .then(|| reader.u32().zip(reader.ipv4()))
                .flatten()
                .ok_or_else(|| Malformed::length(value.len(), "8"))?;
            compat.as4_aggregator = Some(aggregator_with_nonzero_as(aggregator)?);
        }
        type_code::LARGE_COMMUNITY => {
            attributes.large_communities = multiple_of::<12>(value)?
                .map(|octets: [u8; 12]| {
                    let word = |index: usize| {
                        u32::from_be_bytes([
                            octets[index],
                            octets[index + 1],
                            octets[index + 2],
                            octets[index + 3],
                        ])
                    };
                    [word(0), word(4), word(8)]
                })
                .collect();
        }
        _ => unreachable!("decode_value is only called for codes that have a spec"),
    }
    Ok(())
}

fn optional_attribute_error(reason: String) -> Malformed {
    Malformed::new(UpdateMessageSubcode::OptionalAttributeError, reason)
}

/// The value, which must be exactly `N` octets.
fn exact<const N: usize>(value: &[u8]) -> Result<[u8; N], Malformed> {
    value
        .try_into()
        .map_err(|_| Malformed::length(value.len(), &N.to_string()))
}

/// The value split in `N`-octet items; the length must be a non-zero multiple of `N`.
fn multiple_of<const N: usize>(
    value: &[u8],
) -> Result<impl Iterator<Item = [u8; N]> + '_, Malformed> {
    if value.is_empty() || !value.len().is_multiple_of(N) {
        return Err(Malformed::length(
            value.len(),
            &format!("a non-zero multiple of {N}"),
        ));
    }
    Ok(value
        .chunks_exact(N)
        .map(|chunk| chunk.try_into().unwrap_or([0; N])))
}

/// RFC 7607 2: AS 0 makes AGGREGATOR / AS4_AGGREGATOR malformed.
fn aggregator_with_nonzero_as(aggregator: (u32, Ipv4Addr)) -> Result<(u32, Ipv4Addr), Malformed> {
    if aggregator.0 == 0 {
        return Err(Malformed::new(
            UpdateMessageSubcode::OptionalAttributeError,
            "aggregator AS 0 (RFC 7607)",
        ));
    }
    Ok(aggregator)
}
