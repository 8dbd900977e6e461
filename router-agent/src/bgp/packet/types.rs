//! BGP data types shared by the codec (this module), the RIB and policy. Owned, decoded
//! values: the codec turns wire bytes into these and back.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// Address family identifier (RFC 4760).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Afi {
    Ipv4 = 1,
    Ipv6 = 2,
}

/// Subsequent address family identifier; only unicast is supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Safi {
    Unicast = 1,
}

/// ORIGIN attribute values; lower is preferred by the decision process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AsSegmentKind {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AsSegment {
    pub kind: AsSegmentKind,
    pub asns: Vec<u32>,
}

/// AS_PATH with 4-byte ASNs (AS4_PATH already merged in for 2-byte peers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// Path length for the decision process (RFC 4271 9.1.2.2 a): a set counts as one,
    /// confederation segments do not count.
    pub fn length(&self) -> usize {
        self.segments
            .iter()
            .map(|segment| match segment.kind {
                AsSegmentKind::Sequence => segment.asns.len(),
                AsSegmentKind::Set => 1,
                AsSegmentKind::ConfedSequence | AsSegmentKind::ConfedSet => 0,
            })
            .sum()
    }

    /// The neighbor AS: the first AS of the first (non-confederation) sequence.
    pub fn first_as(&self) -> Option<u32> {
        self.segments
            .iter()
            .find(|segment| segment.kind == AsSegmentKind::Sequence)
            .and_then(|segment| segment.asns.first().copied())
    }

    pub fn contains(&self, asn: u32) -> bool {
        self.segments
            .iter()
            .any(|segment| segment.asns.contains(&asn))
    }

    /// This path with `asn` prepended (what an eBGP speaker sends).
    pub fn prepended(&self, asn: u32) -> AsPath {
        let mut segments = self.segments.clone();
        match segments.first_mut() {
            Some(first) if first.kind == AsSegmentKind::Sequence && first.asns.len() < 255 => {
                first.asns.insert(0, asn)
            }
            _ => segments.insert(
                0,
                AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: vec![asn],
                },
            ),
        }
        AsPath { segments }
    }
}

/// An attribute we do not interpret, kept as received (optional transitive ones are passed on
/// with the Partial bit set, RFC 4271 5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// The GRACEFUL_SHUTDOWN well-known community, 65535:0 (RFC 8326).
pub const GRACEFUL_SHUTDOWN: u32 = 0xFFFF_0000;

/// Path attributes of a route, without the reachability information (NLRI, MP_REACH /
/// MP_UNREACH are carried by `Update`). One instance is shared by every prefix that carries
/// it (the RIB interns them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    pub origin: Option<Origin>,
    pub as_path: AsPath,
    /// NEXT_HOP (IPv4 unicast NLRI in the UPDATE body).
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    /// (AS, router id)
    pub aggregator: Option<(u32, Ipv4Addr)>,
    pub communities: Vec<u32>,
    pub extended_communities: Vec<[u8; 8]>,
    pub large_communities: Vec<[u32; 3]>,
    /// ORIGINATOR_ID / CLUSTER_LIST (route reflection; compared by the decision process).
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub unknown: Vec<RawAttribute>,
}

/// MP_REACH_NLRI (RFC 4760): next hop(s) and prefixes of one AFI/SAFI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpReach {
    pub afi: Afi,
    pub safi: Safi,
    /// The global next hop: IPv4 (RFC 8950 extended next hop for IPv4 NLRI may be IPv6) or
    /// IPv6.
    pub next_hop: IpAddr,
    /// The IPv6 link-local next hop when the peer sent 32 bytes of next hop.
    pub link_local_next_hop: Option<std::net::Ipv6Addr>,
    pub nlri: Vec<IpNet>,
}

/// MP_UNREACH_NLRI (RFC 4760): withdrawn prefixes of one AFI/SAFI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpUnreach {
    pub afi: Afi,
    pub safi: Safi,
    pub withdrawn: Vec<IpNet>,
}
