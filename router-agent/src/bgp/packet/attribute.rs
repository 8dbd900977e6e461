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

use bytes::{BufMut, BytesMut};

use super::Codec;
use super::error::{MessageError, UpdateProblems};
use super::multiprotocol::{self, Multiprotocol};
use super::notification::{ErrorCode, Notification, UpdateMessageSubcode};
use super::open::AS_TRANS;
use super::types::{
    AsPath, AsSegment, AsSegmentKind, MpReach, MpUnreach, Origin, PathAttributes, RawAttribute,
};
use super::wire::{Reader, hex};

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

/// RFC 7607 2: AS 0 makes AS_PATH / AS4_PATH malformed.
fn reject_as_zero(segments: &[AsSegment]) -> Result<(), Malformed> {
    if segments.iter().any(|segment| segment.asns.contains(&0)) {
        return Err(Malformed::new(
            UpdateMessageSubcode::MalformedAsPath,
            "contains AS 0 (RFC 7607)",
        ));
    }
    Ok(())
}

fn segment_kind(value: u8) -> Option<AsSegmentKind> {
    match value {
        1 => Some(AsSegmentKind::Set),
        2 => Some(AsSegmentKind::Sequence),
        3 => Some(AsSegmentKind::ConfedSequence),
        4 => Some(AsSegmentKind::ConfedSet),
        _ => None,
    }
}

fn is_confederation(kind: AsSegmentKind) -> bool {
    matches!(
        kind,
        AsSegmentKind::ConfedSequence | AsSegmentKind::ConfedSet
    )
}

/// Decodes AS_PATH / AS4_PATH segments with `asn_len`-octet ASNs, malformed per RFC 7606 7.2:
/// an unrecognised segment type, a segment overrunning the attribute, a single octet left
/// after the last segment, or a zero-length segment. An empty value is a valid empty path.
fn decode_as_path(value: &[u8], asn_len: usize) -> Result<Vec<AsSegment>, Malformed> {
    let malformed = |reason: String| Malformed::new(UpdateMessageSubcode::MalformedAsPath, reason);
    let mut reader = Reader::new(value);
    let mut segments = Vec::new();
    while !reader.is_empty() {
        let (Some(kind), Some(count)) = (reader.u8(), reader.u8()) else {
            return Err(malformed("one octet left after the last segment".into()));
        };
        let kind = segment_kind(kind).ok_or_else(|| malformed(format!("segment type {kind}")))?;
        if count == 0 {
            return Err(malformed("zero-length segment".into()));
        }
        let asns = reader
            .take(usize::from(count) * asn_len)
            .ok_or_else(|| malformed(format!("segment of {count} ASNs overruns the attribute")))?;
        let asns = if asn_len == 4 {
            asns.chunks_exact(4)
                .map(|asn| u32::from_be_bytes([asn[0], asn[1], asn[2], asn[3]]))
                .collect()
        } else {
            asns.chunks_exact(2)
                .map(|asn| u32::from(u16::from_be_bytes([asn[0], asn[1]])))
                .collect()
        };
        segments.push(AsSegment { kind, asns });
    }
    Ok(segments)
}

/// RFC 6793 4.2.3: on a two-octet session, rebuild the real AS path and aggregator from
/// AS4_PATH and AS4_AGGREGATOR.
fn apply_as4_attributes(
    attributes: &mut PathAttributes,
    compat: TwoOctetCompat,
    problems: &mut UpdateProblems,
) {
    let use_as4_path = match (attributes.aggregator, compat.as4_aggregator) {
        (Some((asn, _)), Some(as4_aggregator)) if asn == AS_TRANS => {
            attributes.aggregator = Some(as4_aggregator);
            true
        }
        // The aggregating speaker was an old one, so whatever AS4_PATH says predates the
        // aggregation: the AS_PATH is the path.
        (Some(_), Some(_)) => false,
        // A lone AS4_AGGREGATOR has no AGGREGATOR to stand for; it is dropped.
        _ => true,
    };
    let Some(as4_path) = compat.as4_path.filter(|_| use_as4_path) else {
        return;
    };
    // RFC 6793 6: confederation segments must not be in AS4_PATH; drop them and go on.
    let (confederation, as4_path): (Vec<AsSegment>, Vec<AsSegment>) = as4_path
        .into_iter()
        .partition(|segment| is_confederation(segment.kind));
    if !confederation.is_empty() {
        problems.discard("AS4_PATH: confederation segments were discarded (RFC 6793 6)".into());
    }
    attributes.as_path = merge_as4_path(&attributes.as_path, as4_path);
}

/// RFC 6793 4.2.3: if AS_PATH holds fewer ASNs than AS4_PATH, AS4_PATH is ignored (a peer
/// cannot lengthen a path that way). Otherwise the leading ASNs that AS_PATH has in excess
/// (prepended by two-octet speakers after the AS4_PATH was written) are put in front of
/// AS4_PATH; confederation segments that lead or follow a taken segment come along. ASNs are
/// counted as for path length: a set counts one, confederation segments none.
fn merge_as4_path(as_path: &AsPath, as4_path: Vec<AsSegment>) -> AsPath {
    let as4_path = AsPath { segments: as4_path };
    let (as_path_len, as4_path_len) = (as_path.length(), as4_path.length());
    if as_path_len < as4_path_len {
        return as_path.clone();
    }
    let mut wanted = as_path_len - as4_path_len;
    let mut merged = Vec::new();
    let mut cut_sequence = false;
    for segment in &as_path.segments {
        match segment.kind {
            AsSegmentKind::ConfedSequence | AsSegmentKind::ConfedSet => {
                merged.push(segment.clone())
            }
            _ if wanted == 0 => break,
            AsSegmentKind::Set => {
                merged.push(segment.clone());
                wanted -= 1;
            }
            AsSegmentKind::Sequence => {
                let taken = wanted.min(segment.asns.len());
                merged.push(AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: segment.asns[..taken].to_vec(),
                });
                wanted -= taken;
                if taken < segment.asns.len() {
                    // The rest of this sequence is what AS4_PATH carries.
                    cut_sequence = true;
                    break;
                }
            }
        }
    }
    let mut as4_segments = as4_path.segments.into_iter().peekable();
    // Rejoin a sequence that the merge cut in two, so that the path reads as it was sent.
    if cut_sequence
        && let Some(last) = merged.last_mut()
        && let Some(first) = as4_segments.next_if(|first| {
            first.kind == AsSegmentKind::Sequence
                && last.asns.len() + first.asns.len() <= usize::from(u8::MAX)
        })
    {
        last.asns.extend(first.asns);
    }
    merged.extend(as4_segments);
    AsPath { segments: merged }
}

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

#[cfg(test)]
pub(crate) mod tests {
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

    fn decode(
        field: &[u8],
        codec: &Codec,
    ) -> (DecodedAttributes, Option<super::super::UpdateError>) {
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
}
