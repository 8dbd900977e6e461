//! AS_PATH and AS4_PATH values: segments (RFC 4271 4.3), their RFC 7606 7.2 checks, AS 0
//! (RFC 7607), and the merge of AS4_PATH into a two-octet session's AS_PATH (RFC 6793 4.2.3).

use super::super::error::UpdateProblems;
use super::super::notification::UpdateMessageSubcode;
use super::super::open::AS_TRANS;
use super::super::types::{AsPath, AsSegment, AsSegmentKind, PathAttributes};
use super::super::wire::Reader;
use super::{Malformed, TwoOctetCompat};

/// RFC 7607 2: AS 0 makes AS_PATH / AS4_PATH malformed.
pub(super) fn reject_as_zero(segments: &[AsSegment]) -> Result<(), Malformed> {
    if segments.iter().any(|segment| segment.asns.contains(&0)) {
        return Err(Malformed::new(
            UpdateMessageSubcode::MalformedAsPath,
            "contains AS 0 (RFC 7607)",
        ));
    }
    Ok(())
}

pub(super) fn segment_kind(value: u8) -> Option<AsSegmentKind> {
    match value {
        1 => Some(AsSegmentKind::Set),
        2 => Some(AsSegmentKind::Sequence),
        3 => Some(AsSegmentKind::ConfedSequence),
        4 => Some(AsSegmentKind::ConfedSet),
        _ => None,
    }
}

pub(super) fn is_confederation(kind: AsSegmentKind) -> bool {
    matches!(
        kind,
        AsSegmentKind::ConfedSequence | AsSegmentKind::ConfedSet
    )
}

/// Decodes AS_PATH / AS4_PATH segments with `asn_len`-octet ASNs, malformed per RFC 7606 7.2:
/// an unrecognised segment type, a segment overrunning the attribute, a single octet left
/// after the last segment, or a zero-length segment. An empty value is a valid empty path.
pub(super) fn decode_as_path(value: &[u8], asn_len: usize) -> Result<Vec<AsSegment>, Malformed> {
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
pub(super) fn apply_as4_attributes(
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
pub(super) fn merge_as4_path(as_path: &AsPath, as4_path: Vec<AsSegment>) -> AsPath {
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
