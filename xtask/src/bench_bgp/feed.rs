//! The feed: a synthetic full table as pre-encoded UPDATE messages, built before the session so
//! that sending costs nothing but `write`.
//!
//! A real full table shares path attributes: a few thousand distinct sets (AS path, origin,
//! MED, communities) carry a million prefixes, a few sets carrying many prefixes and most sets
//! few. Here every prefix draws a set from a pool of `--attribute-sets` with a skewed
//! distribution (set `i` with probability falling like 1/sqrt), and each set's prefixes go out
//! packed into UPDATEs of at most 4096 octets by the agent's own encoder
//! (`router_agent::bgp::packet`): IPv4 in the NLRI field with NEXT_HOP, IPv6 in MP_REACH_NLRI.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use router_agent::bgp::packet::{
    Codec, Message, Update,
    types::{Afi, AsPath, AsSegment, AsSegmentKind, MpReach, Origin, PathAttributes, Safi},
};

use crate::bench_cost::table::Table;

/// Pre-encoded UPDATEs, back to back, ready for the socket.
pub struct Feed {
    pub bytes: Vec<u8>,
    pub messages: usize,
    pub v4_routes: usize,
    pub v6_routes: usize,
    /// Distinct attribute sets actually used.
    pub attribute_sets: usize,
    /// Mean AS path length over the routes.
    pub mean_as_path: f64,
}

/// Who sends the feed, as the attributes name it.
#[derive(Clone, Copy)]
pub struct Sender {
    pub asn: u32,
    pub next_hop_v4: Ipv4Addr,
    pub next_hop_v6: Ipv6Addr,
}

/// The codec the messages are encoded for: every receiver here offers four-octet ASNs (checked
/// when the session comes up).
pub const CODEC: Codec = Codec::FOUR_OCTET_AS;

pub fn build(table: &Table, sender: Sender, pool_size: usize, seed: u64) -> Feed {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xfeed);
    let pool: Vec<PathAttributes> = (0..pool_size.max(1))
        .map(|_| attribute_set(&mut rng, sender))
        .collect();
    // Skewed popularity: u^2 puts a quarter of the prefixes on the first 1/16 of the sets.
    let pick = |rng: &mut SmallRng| {
        let u: f64 = rng.random();
        ((u * u) * pool.len() as f64) as usize % pool.len()
    };
    let mut v4_by_set: Vec<Vec<Ipv4Net>> = vec![Vec::new(); pool.len()];
    let mut v6_by_set: Vec<Vec<IpNet>> = vec![Vec::new(); pool.len()];
    for prefix in &table.v4 {
        v4_by_set[pick(&mut rng)].push(*prefix);
    }
    for prefix in &table.v6 {
        v6_by_set[pick(&mut rng)].push(IpNet::V6(*prefix));
    }

    let mut feed = Feed {
        bytes: Vec::new(),
        messages: 0,
        v4_routes: table.v4.len(),
        v6_routes: table.v6.len(),
        attribute_sets: 0,
        mean_as_path: 0.0,
    };
    let mut path_hops = 0usize;
    for (set, attributes) in pool.iter().enumerate() {
        let (v4, v6) = (&v4_by_set[set], &v6_by_set[set]);
        if v4.is_empty() && v6.is_empty() {
            continue;
        }
        feed.attribute_sets += 1;
        path_hops += attributes.as_path.length() * (v4.len() + v6.len());
        if !v4.is_empty() {
            let update = Update {
                attributes: attributes.clone(),
                nlri: v4.clone(),
                ..Update::default()
            };
            feed.append(&update);
        }
        if !v6.is_empty() {
            let update = Update {
                attributes: PathAttributes {
                    next_hop: None,
                    ..attributes.clone()
                },
                mp_reach: Some(MpReach {
                    afi: Afi::Ipv6,
                    safi: Safi::Unicast,
                    next_hop: IpAddr::V6(sender.next_hop_v6),
                    link_local_next_hop: None,
                    nlri: v6.clone(),
                }),
                ..Update::default()
            };
            feed.append(&update);
        }
    }
    let routes = (feed.v4_routes + feed.v6_routes).max(1);
    feed.mean_as_path = path_hops as f64 / routes as f64;
    feed
}

impl Feed {
    fn append(&mut self, update: &Update) {
        let encoded = Message::Update(update.clone()).encode(&CODEC);
        self.messages += count_messages(&encoded);
        self.bytes.extend_from_slice(&encoded);
    }
}

/// End-of-RIB for IPv4 then IPv6 unicast (RFC 4724 2).
pub fn end_of_rib() -> Vec<u8> {
    let mut bytes = Message::Update(Update::end_of_rib(Afi::Ipv4))
        .encode(&CODEC)
        .to_vec();
    bytes.extend_from_slice(&Message::Update(Update::end_of_rib(Afi::Ipv6)).encode(&CODEC));
    bytes
}

/// Messages in a buffer of whole messages (length field at octets 16-17).
fn count_messages(mut bytes: &[u8]) -> usize {
    let mut count = 0;
    while bytes.len() >= 19 {
        let length = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
        bytes = &bytes[length.max(19).min(bytes.len())..];
        count += 1;
    }
    count
}

/// One attribute set as a transit provider's full table would carry it.
fn attribute_set(rng: &mut SmallRng, sender: Sender) -> PathAttributes {
    // AS path length: mostly 3-5 hops, a tail up to ~12 with prepending.
    let hops = match rng.random_range(0..100) {
        0..=1 => 1,
        2..=11 => 2,
        12..=36 => 3,
        37..=64 => 4,
        65..=82 => 5,
        83..=91 => 6,
        92..=95 => 7,
        _ => rng.random_range(8..=12),
    };
    let mut asns = vec![sender.asn];
    while asns.len() < hops {
        // A third of today's ASNs are four-octet ones.
        let asn = if rng.random_bool(0.3) {
            rng.random_range(131_072..=400_000)
        } else {
            rng.random_range(1..=64_511)
        };
        asns.push(asn);
    }
    if hops > 2 && rng.random_bool(0.1) {
        // Prepending: the origin AS repeated.
        let origin = *asns.last().expect("at least one AS");
        asns.extend(std::iter::repeat_n(origin, rng.random_range(1..=3)));
    }
    let communities = if rng.random_bool(0.6) {
        (0..rng.random_range(1..=8))
            .map(|_| (sender.asn & 0xffff) << 16 | rng.random_range(1..=4000))
            .collect()
    } else {
        Vec::new()
    };
    let large_communities = if rng.random_bool(0.1) {
        (0..rng.random_range(1..=3))
            .map(|_| {
                [
                    sender.asn,
                    rng.random_range(1..=10),
                    rng.random_range(1..=1000),
                ]
            })
            .collect()
    } else {
        Vec::new()
    };
    let aggregated = rng.random_bool(0.05);
    PathAttributes {
        origin: Some(if rng.random_bool(0.85) {
            Origin::Igp
        } else {
            Origin::Incomplete
        }),
        as_path: AsPath {
            segments: vec![AsSegment {
                kind: AsSegmentKind::Sequence,
                asns,
            }],
        },
        next_hop: Some(sender.next_hop_v4),
        med: rng.random_bool(0.3).then(|| rng.random_range(0..1000)),
        atomic_aggregate: aggregated,
        aggregator: aggregated.then(|| {
            (
                rng.random_range(1..=64_511),
                Ipv4Addr::from(rng.random::<u32>()),
            )
        }),
        communities,
        large_communities,
        ..PathAttributes::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use router_agent::bgp::packet::Message;

    #[test]
    fn feed_decodes_back_to_every_prefix_with_its_next_hop() {
        let mut rng = SmallRng::seed_from_u64(3);
        let table = Table::generate(&mut rng, 5_000, 1_000);
        let sender = Sender {
            asn: 65001,
            next_hop_v4: Ipv4Addr::new(10, 0, 0, 1),
            next_hop_v6: "fd00::1".parse().unwrap(),
        };
        let feed = build(&table, sender, 200, 3);
        assert!(feed.attribute_sets > 100 && feed.attribute_sets <= 200);
        assert!(feed.mean_as_path > 3.0 && feed.mean_as_path < 6.0);
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        let mut rest = &feed.bytes[..];
        let mut messages = 0;
        while !rest.is_empty() {
            let length = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            assert!(length <= 4096);
            let decoded = Message::decode(&rest[..length], &CODEC).unwrap();
            assert_eq!(decoded.update_error, None);
            let Message::Update(update) = decoded.message else {
                panic!("not an UPDATE")
            };
            assert_eq!(update.attributes.as_path.first_as(), Some(65001));
            if !update.nlri.is_empty() {
                assert_eq!(update.attributes.next_hop, Some(sender.next_hop_v4));
            }
            v4.extend(update.nlri.iter().copied());
            if let Some(reach) = update.mp_reach {
                assert_eq!(reach.next_hop, IpAddr::V6(sender.next_hop_v6));
                v6.extend(reach.nlri);
            }
            rest = &rest[length..];
            messages += 1;
        }
        assert_eq!(messages, feed.messages);
        v4.sort();
        v6.sort();
        let mut want_v4 = table.v4.clone();
        want_v4.sort();
        let mut want_v6: Vec<IpNet> = table.v6.iter().map(|p| IpNet::V6(*p)).collect();
        want_v6.sort();
        assert_eq!(v4, want_v4);
        assert_eq!(v6, want_v6);
        // Prefixes are packed: 6,000 routes over 200 sets is 30 per set, several per message.
        assert!(messages * 10 < 6_000, "{messages} messages");
    }

    #[test]
    fn end_of_rib_is_two_messages() {
        assert_eq!(count_messages(&end_of_rib()), 2);
    }
}
